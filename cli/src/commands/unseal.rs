//! `sealsync unseal`: open sealed documents with an identity file (recovery, break-glass).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use sealsync_core::manifest::{
    read_documents, sealed_from_manifest, secret_to_manifest, wipe_value, Limits,
};
use sealsync_crypto::OpenOptions;

use crate::commands::{check_open_budget, load_identities};
use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::habits::Habits;
use crate::output::{self, Format};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// An age identity file (recovery key or cluster key backup). Repeatable. Default: the
    /// file that SEALSYNC_AGE_KEY_FILE, else SOPS_AGE_KEY_FILE, names.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
    /// The sealed file; stdin when absent.
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Namespace for documents that name none.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Yaml)]
    pub output: Format,
    #[command(flatten)]
    pub habits: Habits,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    args.habits.refuse("unseal")?;
    let identities = load_identities(&args.identities)?;
    let source = fsio::display_source(args.file.as_deref());
    let text = fsio::read_input(args.file.as_deref())?;
    let docs = read_documents(&text, Limits::default())
        .map_err(|e| CliError::from_manifest(&e).context(&source))?;
    let options = OpenOptions {
        default_namespace: args.namespace.as_deref(),
    };
    let mut sealed_docs = Vec::with_capacity(docs.len());
    for doc in &docs {
        let place = format!("{source}: {}", doc.describe());
        if doc.kind() == Some("Secret") {
            return Err(
                CliError::new(format!("{place}: is a plain Secret, not a SealedSecret")).with_hint(
                    "there is nothing to unseal; seal it with `sealsync seal` before committing it",
                ),
            );
        }
        // A file sealed for its rendered identity (`seal --rendered-as`) opens as that one.
        let sealed_as = crate::rendered_as::as_sealed(&doc.value);
        let sealed = sealed_from_manifest(sealed_as.as_ref().unwrap_or(&doc.value))
            .map_err(|e| CliError::from_manifest(&e).context(&place))?;
        sealed_docs.push((place, sealed));
    }
    let stanzas = sealed_docs.iter().map(|(_, s)| s.stanza_count()).sum();
    check_open_budget(stanzas, identities.len(), &source)?;
    let mut secrets = Vec::with_capacity(sealed_docs.len());
    for (place, sealed) in &sealed_docs {
        let opened = sealed
            .open(&identities, &options)
            .map_err(|e| CliError::from_crypto(&e).context(place))?;
        secrets.push(secret_to_manifest(&opened.secret));
    }
    if secrets.is_empty() {
        return Err(CliError::new(format!("{source}: holds no SealedSecret"))
            .with_hint("pass a file written by `sealsync seal`"));
    }
    let rendered = output::render(&secrets, args.output);
    secrets.iter_mut().for_each(wipe_value);
    output::write_stdout(&rendered?)?;
    Ok(ExitCode::SUCCESS)
}
