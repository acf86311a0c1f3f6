//! `sealsync reseal`: re-wrap sealed files to the recipients `.sealsync.yaml` lists now, or
//! re-key them after a compromise. With `--controller` the cluster's controller re-wraps them
//! ([`controller`]), for developers who hold no recovery key.

mod controller;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::BTreeSet;

use sealsync_core::manifest::{read_documents, sealed_from_manifest, sealed_to_manifest, Limits};
use sealsync_crypto::{Identity, KeyId};

use crate::commands::{check_open_budget, load_identities};
use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::output::{self, Format};
use crate::recipients::{RecipientArgs, RecipientResolver};
use crate::splice;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// An identity that opens the files today (recovery key or cluster key backup).
    /// Repeatable. Default: the file that SEALSYNC_AGE_KEY_FILE, else SOPS_AGE_KEY_FILE, names.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
    /// Sealed files or directories (recursively). Default: the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Re-encrypt every value under fresh data keys (after a key compromise), instead of
    /// only re-wrapping the data keys.
    #[arg(long, conflicts_with = "controller")]
    pub rekey: bool,
    /// Have the cluster's controller re-wrap the files (`POST /v1/rewrap`), without any
    /// identity here. It wraps only to recipients the cluster trusts.
    #[arg(long, conflicts_with = "identities")]
    pub controller: bool,
    #[command(flatten)]
    pub controller_args: crate::rewrap_client::ControllerArgs,
    #[command(flatten)]
    pub recipients: RecipientArgs,
}

enum Outcome {
    Changed(usize),
    Unchanged,
    NotSealed,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let files = fsio::expand_paths(&paths)?;
    if args.controller {
        return controller::run(&args, &files);
    }
    let identities = load_identities(&args.identities)?;
    let progress = if std::io::stderr().is_terminal() && files.len() > 1 {
        let bar = ProgressBar::new(files.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let (mut files_changed, mut docs_changed) = (0usize, 0usize);
    let mut resolver = args.recipients.resolver()?;
    for file in &files {
        progress.set_message(file.display().to_string());
        match reseal_file(file, &identities, &mut resolver, args.rekey)? {
            Outcome::Changed(n) => {
                files_changed += 1;
                docs_changed += n;
            }
            Outcome::Unchanged | Outcome::NotSealed => {}
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    let verb = if args.rekey { "re-keyed" } else { "re-wrapped" };
    eprintln!("{verb} {docs_changed} sealed document(s) in {files_changed} file(s)");
    Ok(ExitCode::SUCCESS)
}

fn reseal_file(
    file: &Path,
    identities: &[Identity],
    resolver: &mut RecipientResolver,
    rekey: bool,
) -> CliResult<Outcome> {
    let place = file.display().to_string();
    let locked = fsio::LockedFile::open(file)?;
    let docs = match read_documents(&locked.text, Limits::default()) {
        Ok(docs) => docs,
        // A chart's template is not YAML until rendered, and holds no sealed document.
        Err(_) if fsio::chart_of_template(file).is_some() => return Ok(Outcome::NotSealed),
        Err(e) => return Err(CliError::from_manifest(&e).context(&place)),
    };
    if !only_sealed(&docs, &place)? {
        return Ok(Outcome::NotSealed);
    }
    let resolved = resolver.resolve(Some(file))?;
    let wanted = key_ids(&resolved.recipients);
    let mut parsed = Vec::with_capacity(docs.len());
    for doc in &docs {
        let at = format!("{place}: {}", doc.describe());
        let sealed_as = crate::rendered_as::as_sealed(&doc.value);
        let sealed = sealed_from_manifest(sealed_as.as_ref().unwrap_or(&doc.value))
            .map_err(|e| CliError::from_manifest(&e).context(&at))?;
        parsed.push((doc, at, sealed));
    }
    let stanzas: usize = parsed.iter().map(|(_, _, s)| s.stanza_count()).sum();
    // Verifying and re-wrapping each try every identity: twice the opening work.
    check_open_budget(stanzas.saturating_mul(2), identities.len(), &place)?;
    let mut out = Vec::with_capacity(docs.len());
    for (doc, at, mut sealed) in parsed {
        let listed_right = lists_exactly(&sealed, &wanted);
        // Listed key ids are not authenticated: a file may list the new key and still be
        // wrapped to an old one. Check with the keys at hand before calling it done.
        let wrapped_right = listed_right
            && sealed
                .verify_recipients(identities)
                .map_err(|e| CliError::from_crypto(&e).context(&at))?
                .is_empty();
        if wrapped_right && !rekey {
            // Re-wrapping anyway would churn every envelope line in review for nothing.
            out.push(doc.value.clone());
            continue;
        }
        let result = if rekey {
            sealed.rekey(identities, &resolved.recipients)
        } else {
            sealed.rewrap(identities, &resolved.recipients)
        };
        result.map_err(|e| CliError::from_crypto(&e).context(&at))?;
        let mut rewrapped = sealed_to_manifest(&sealed);
        crate::rendered_as::restore(&mut rewrapped, &doc.value);
        out.push(rewrapped);
    }
    if out.iter().zip(&docs).all(|(new, old)| *new == old.value) {
        return Ok(Outcome::Unchanged);
    }
    let old: Vec<&serde_yaml::Value> = docs.iter().map(|d| &d.value).collect();
    write_out(file, &locked.text, &old, &out)?;
    drop(locked);
    Ok(Outcome::Changed(out.len()))
}

/// Whether a file's documents are all SealedSecrets (`false`: none is, so there is nothing to
/// reseal); a file that mixes them with other objects is an error.
fn only_sealed(docs: &[sealsync_core::manifest::Document], place: &str) -> CliResult<bool> {
    let sealed_count = docs
        .iter()
        .filter(|d| d.kind() == Some("SealedSecret"))
        .count();
    if sealed_count != 0 && sealed_count != docs.len() {
        return Err(
            CliError::new(format!("{place}: mixes SealedSecrets with other objects"))
                .with_hint("keep each SealedSecret in a file of its own, then reseal"),
        );
    }
    Ok(sealed_count != 0)
}

/// The key ids of `recipients`.
fn key_ids(recipients: &[sealsync_crypto::Recipient]) -> BTreeSet<KeyId> {
    recipients.iter().map(|r| r.key_id().clone()).collect()
}

/// Whether every envelope of `sealed` lists exactly `wanted` (listed ids are not
/// authenticated; this only says whether re-wrapping is asked for).
fn lists_exactly(sealed: &sealsync_crypto::SealedSecret, wanted: &BTreeSet<KeyId>) -> bool {
    sealed
        .envelopes()
        .iter()
        .all(|e| e.recipients.iter().cloned().collect::<BTreeSet<_>>() == *wanted)
}

/// Writes the re-wrapped documents `out` over `old` in `file` (whose text is `text`): only the
/// changed lines are replaced, so a review shows envelopes changing and nothing else.
fn write_out(
    file: &Path,
    text: &str,
    old: &[&serde_yaml::Value],
    out: &[serde_yaml::Value],
) -> CliResult<()> {
    let json = file.extension().and_then(|e| e.to_str()) == Some("json");
    let rendered = match splice::splice(text, old, out) {
        Some(text) if !json => zeroize::Zeroizing::new(text),
        _ => output::render(out, if json { Format::Json } else { Format::Yaml })?,
    };
    fsio::write_atomic(file, rendered.as_bytes())
}
