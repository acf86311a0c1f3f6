//! `sealsync import sops`: SOPS-encrypted Secrets (age recipients) opened with an identity,
//! their MAC checked, and sealed to sealsync recipients.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use sealsync_core::manifest::{read_documents, secret_from_manifest, Limits};
use sealsync_core::sops::{is_sops_document, open_file, SopsError};
use sealsync_core::Chain;
use sealsync_crypto::Identity;

use super::SealTo;
use crate::commands::load_identities;
use crate::commands::seal::Input;
use crate::error::{CliError, CliResult};
use crate::fsio;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// An age identity file that opens the files (one of their `sops.age` recipients).
    /// Repeatable. Default: SEALSYNC_AGE_KEY_FILE, else SOPS_AGE_KEY_FILE.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
    /// SOPS-encrypted Secret manifests (YAML or JSON); directories are read recursively.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub to: SealTo,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    if let Some(path) = &args.to.write {
        fsio::writable_target(path)?;
    }
    let identities = load_identities(&args.identities)?;
    let inputs = super::gather(&args.files, |file| read_file(file, &identities))?;
    super::seal_and_write(&inputs, &args.to)
}

fn read_file(file: &std::path::Path, identities: &[Identity]) -> CliResult<Vec<Input>> {
    let source = file.display().to_string();
    let text = fsio::read_input(Some(file))?;
    let docs = read_documents(&text, Limits::secrets())
        .map_err(|e| CliError::from_manifest(&e).context(&source))?;
    let places: Vec<String> = docs
        .iter()
        .map(|doc| format!("{source}: {}", doc.describe()))
        .collect();
    for (doc, place) in docs.iter().zip(&places) {
        if !is_sops_document(&doc.value) {
            return Err(CliError::new(format!(
                "{place}: not encrypted by sops (no sops metadata)"
            ))
            .with_hint("seal plaintext Secrets with `sealsync seal`"));
        }
    }
    // One MAC covers all the documents of a file.
    let located: Vec<(&serde_yaml::Value, &str)> = docs
        .iter()
        .zip(&places)
        .map(|(doc, place)| (&doc.value, place.as_str()))
        .collect();
    let opened = open_file(&located, identities).map_err(sops_error)?;
    let mut out = Vec::with_capacity(docs.len());
    for (opened, place) in opened.iter().zip(places) {
        let secret = secret_from_manifest(&opened.document).map_err(|e| {
            CliError::from_manifest(&e).context(&place).with_hint(
                "import sops converts Secrets only: move other objects to their own files",
            )
        })?;
        out.push(Input {
            secret,
            place,
            rules_path: Some(file.to_path_buf()),
            scope: None,
        });
    }
    Ok(out)
}

fn sops_error(error: SopsError) -> CliError {
    let hint = match &error {
        SopsError::NoMatchingKey { .. } => {
            "pass -i with an age identity among the file's recipients (or set SOPS_AGE_KEY_FILE)"
        }
        SopsError::MacMismatch { .. } | SopsError::Tampered { .. } => {
            "the file was changed without sops: check it with `sops decrypt`, and fix it with `sops edit`"
        }
        _ => "encrypt the file again with `sops encrypt`",
    };
    let message = match &error {
        SopsError::Key { .. } => Chain(&error).to_string(),
        _ => error.with_given_keys(),
    };
    CliError::new(message).with_hint(hint)
}
