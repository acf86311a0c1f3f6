//! `sealsync check`: a pre-commit style scan for plaintext Secrets, broken or tampered sealed
//! files, and files whose recipients differ from what `.sealsync.yaml` requires.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args as ClapArgs;
use sealsync_crypto::{read_documents, Identity, KeyId, Limits, OpenOptions, SealedSecret};

use crate::commands::load_identities;
use crate::error::CliResult;
use crate::fsio;
use crate::output;
use crate::rules::RulesCache;

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Files or directories to check (recursively). Default: the current directory.
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Also open every sealed value with this identity, to prove it decrypts (nothing is
    /// printed). Repeatable.
    #[arg(short = 'i', long = "identity", value_name = "IDENTITY_FILE")]
    pub identities: Vec<PathBuf>,
}

/// One finding: file, document, field, what is wrong.
struct Problem {
    file: String,
    document: String,
    field: String,
    message: String,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    let identities = if args.identities.is_empty() {
        Vec::new()
    } else {
        load_identities(&args.identities)?
    };
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let files = fsio::expand_paths(&paths)?;
    let mut rules_cache = RulesCache::default();
    let mut problems = Vec::new();
    for file in &files {
        check_file(file, &identities, &mut rules_cache, &mut problems)?;
    }
    let mut report = String::new();
    for p in &problems {
        report.push_str(&format!(
            "{}: {}: {}: {}\n",
            p.file, p.document, p.field, p.message
        ));
    }
    output::write_stdout(&report)?;
    if problems.is_empty() {
        eprintln!("checked {} file(s): no problems", files.len());
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "checked {} file(s): {} problem(s); seal plaintext Secrets with `sealsync seal`, \
             and run `sealsync reseal` for files on the wrong keys",
            files.len(),
            problems.len()
        );
        Ok(ExitCode::FAILURE)
    }
}

fn check_file(
    file: &Path,
    identities: &[Identity],
    rules_cache: &mut RulesCache,
    problems: &mut Vec<Problem>,
) -> CliResult<()> {
    let place = file.display().to_string();
    let mut problem = |document: String, field: &str, message: String| {
        problems.push(Problem {
            file: place.clone(),
            document,
            field: field.to_owned(),
            message,
        })
    };
    let text = fsio::read_input(Some(file))?;
    let docs = match read_documents(&text, Limits::default()) {
        Ok(docs) => docs,
        // Other YAML (Helm templates, CI configs) is not ours to judge; a file that
        // mentions Secrets but does not parse may hide one, so that one is reported.
        Err(e) if text.contains("Secret") => {
            problem("-".to_owned(), "-", format!("not a readable manifest: {e}"));
            return Ok(());
        }
        Err(_) => return Ok(()),
    };
    for doc in &docs {
        let at = doc.describe();
        match doc.kind() {
            Some("Secret") => {
                for field in ["data", "stringData"] {
                    let has_values = doc
                        .value
                        .get(field)
                        .and_then(|v| v.as_mapping())
                        .is_some_and(|m| !m.is_empty());
                    if has_values {
                        // Name the keys, never the values.
                        let keys: Vec<String> = doc.value[field]
                            .as_mapping()
                            .map(|m| {
                                m.keys()
                                    .filter_map(|k| k.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default();
                        problem(
                            at.clone(),
                            field,
                            format!(
                                "plaintext Secret values ({}): seal them with `sealsync seal`",
                                keys.join(", ")
                            ),
                        );
                    }
                }
            }
            Some("SealedSecret") => {
                let sealed = match SealedSecret::from_value(&doc.value) {
                    Ok(s) => s,
                    Err(e) => {
                        match &e {
                            sealsync_crypto::Error::Malformed { location, reason } => {
                                problem(at.clone(), location, format!("malformed: {reason}"))
                            }
                            _ => problem(at.clone(), "spec", e.to_string()),
                        }
                        continue;
                    }
                };
                if let Some(rules) = rules_cache.for_path(file)? {
                    match rules.resolve(file) {
                        Ok(resolved) => {
                            let wanted: BTreeSet<KeyId> = resolved
                                .recipients
                                .iter()
                                .map(|r| r.key_id().clone())
                                .collect();
                            for (i, env) in sealed.envelopes().iter().enumerate() {
                                let listed: BTreeSet<KeyId> =
                                    env.recipients.iter().cloned().collect();
                                if listed != wanted {
                                    let missing: Vec<&str> =
                                        wanted.difference(&listed).map(KeyId::as_str).collect();
                                    let extra: Vec<&str> =
                                        listed.difference(&wanted).map(KeyId::as_str).collect();
                                    problem(
                                        at.clone(),
                                        &format!("spec.envelopes[{i}].recipients"),
                                        format!(
                                            "recipients differ from {} (missing: {}; not listed there: {}): run `sealsync reseal`",
                                            resolved.source,
                                            list_or_none(&missing),
                                            list_or_none(&extra)
                                        ),
                                    );
                                }
                            }
                        }
                        Err(e) => problem(at.clone(), "-", e.message().to_owned()),
                    }
                }
                if !identities.is_empty() {
                    if let Err(e) = sealed.open(identities, &OpenOptions::default()) {
                        problem(at.clone(), "spec.encryptedData", e.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn list_or_none(ids: &[&str]) -> String {
    if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    }
}
