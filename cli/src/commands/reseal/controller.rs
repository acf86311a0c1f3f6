//! `sealsync reseal --controller`: the cluster's controller re-wraps the files, for developers
//! who hold no recovery key.
//!
//! Every file is read first; the documents whose envelopes do not list the wanted recipients go
//! to `/v1/rewrap` in as few requests as the controller's limits allow (one per distinct set of
//! recipients, split into batches), so that a caller's rate limit is not spent one file at a
//! time. Each answer is checked (same value lines, same binding, only envelopes changed)
//! before any file is written, and a file changed meanwhile is not overwritten.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use sealsync_core::manifest::{read_documents, sealed_from_manifest, sealed_to_manifest, Limits};
use sealsync_crypto::{KeyId, SealedSecret};

use super::{key_ids, lists_exactly, only_sealed, write_out, Args};
use crate::cluster;
use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::rewrap_client::{check_rewrapped, Rewrapper};

/// One file to re-wrap: its text as read, its documents, and which of them need the controller.
struct FilePlan {
    file: PathBuf,
    text: String,
    documents: Vec<serde_yaml::Value>,
    places: Vec<String>,
    todo: Vec<(usize, SealedSecret)>,
    wanted: BTreeSet<KeyId>,
    recipients: Vec<String>,
}

fn plan(
    file: &Path,
    args_resolver: &mut crate::recipients::RecipientResolver,
) -> CliResult<Option<FilePlan>> {
    let place = file.display().to_string();
    let text = fsio::read_input(Some(file))?;
    let docs = match read_documents(&text, Limits::default()) {
        Ok(docs) => docs,
        // A chart's template is not YAML until rendered, and holds no sealed document.
        Err(_) if fsio::chart_of_template(file).is_some() => return Ok(None),
        Err(e) => return Err(CliError::from_manifest(&e).context(&place)),
    };
    if !only_sealed(&docs, &place)? {
        return Ok(None);
    }
    let resolved = args_resolver.resolve(Some(file))?;
    let wanted = key_ids(&resolved.recipients);
    let mut todo = Vec::new();
    let mut places = Vec::new();
    for (index, doc) in docs.iter().enumerate() {
        let at = format!("{place}: {}", doc.describe());
        let sealed_as = crate::rendered_as::as_sealed(&doc.value);
        let sealed = sealed_from_manifest(sealed_as.as_ref().unwrap_or(&doc.value))
            .map_err(|e| CliError::from_manifest(&e).context(&at))?;
        // Without an identity only the listed ids can be compared; the controller opens the
        // document, so a file listing the right keys but wrapped to others is not seen here
        // (`sealsync check -i` finds those).
        let listed_right = lists_exactly(&sealed, &wanted);
        if !listed_right {
            todo.push((index, sealed));
        }
        places.push(at);
    }
    if todo.is_empty() {
        return Ok(None);
    }
    Ok(Some(FilePlan {
        file: file.to_path_buf(),
        text: text.to_string(),
        documents: docs.iter().map(|d| d.value.clone()).collect(),
        places,
        todo,
        wanted,
        recipients: resolved
            .recipients
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
    }))
}

pub fn run(args: &Args, files: &[PathBuf]) -> CliResult<ExitCode> {
    let mut resolver = args.recipients.resolver()?;
    let mut plans = Vec::new();
    for file in files {
        if let Some(p) = plan(file, &mut resolver)? {
            plans.push(p);
        }
    }
    if plans.is_empty() {
        eprintln!(
            "re-wrapped 0 sealed document(s) in 0 file(s): every file already lists its recipients"
        );
        return Ok(ExitCode::SUCCESS);
    }
    // One call per distinct set of recipients, in batches.
    let mut groups: BTreeMap<Vec<String>, Vec<(usize, usize)>> = BTreeMap::new();
    for (p, plan) in plans.iter().enumerate() {
        for (t, _) in plan.todo.iter().enumerate() {
            groups
                .entry(plan.recipients.clone())
                .or_default()
                .push((p, t));
        }
    }
    let answers = cluster::block_on(async {
        let rewrapper = Rewrapper::connect(&args.controller_args).await?;
        let mut answers: BTreeMap<(usize, usize), String> = BTreeMap::new();
        for (recipients, members) in &groups {
            let texts = members
                .iter()
                .map(|(p, t)| {
                    let (index, _) = &plans[*p].todo[*t];
                    let document = &plans[*p].documents[*index];
                    let sealed_as = crate::rendered_as::as_sealed(document);
                    serde_yaml::to_string(sealed_as.as_ref().unwrap_or(document))
                        .map_err(|e| CliError::new(format!("{}: {e}", plans[*p].places[*index])))
                })
                .collect::<CliResult<Vec<String>>>()?;
            let rewrapped = rewrapper.rewrap(&texts, recipients).await?;
            for (member, text) in members.iter().zip(rewrapped) {
                answers.insert(*member, text);
            }
        }
        Ok(answers)
    })?;
    // Check every answer before writing anything.
    for (p, plan) in plans.iter_mut().enumerate() {
        for (t, (index, before)) in plan.todo.iter().enumerate() {
            let at = &plan.places[*index];
            let text = answers.get(&(p, t)).ok_or_else(|| {
                CliError::new(format!("{at}: the controller did not answer for it"))
            })?;
            let docs = read_documents(text, Limits::default()).map_err(|e| {
                CliError::from_manifest(&e).context(format!("{at} (as re-wrapped)"))
            })?;
            let [doc] = docs.as_slice() else {
                return Err(CliError::new(format!(
                    "{at}: the controller answered {} documents for one",
                    docs.len()
                )));
            };
            let after = sealed_from_manifest(&doc.value).map_err(|e| {
                CliError::from_manifest(&e).context(format!("{at} (as re-wrapped)"))
            })?;
            check_rewrapped(before, &after, &plan.wanted).map_err(|reason| {
                CliError::new(format!("{at}: {reason}")).with_hint(
                    "nothing was written; report this, since the controller should never do that",
                )
            })?;
            let mut rewrapped = sealed_to_manifest(&after);
            crate::rendered_as::restore(&mut rewrapped, &plan.documents[*index]);
            plan.documents[*index] = rewrapped;
        }
    }
    // Every file as read, before any is written: a file changed meanwhile stops the run with
    // nothing written.
    for plan in &plans {
        let now = fsio::read_input(Some(&plan.file))?;
        if now.as_str() != plan.text {
            return Err(CliError::new(format!(
                "{}: changed while it was being re-wrapped; nothing was written",
                plan.file.display()
            ))
            .with_hint("run `sealsync reseal --controller` again"));
        }
    }
    let (mut files_changed, mut docs_changed) = (0usize, 0usize);
    for plan in &plans {
        let locked = fsio::LockedFile::open(&plan.file)?;
        if locked.text.as_str() != plan.text {
            return Err(CliError::new(format!(
                "{}: changed while it was being re-wrapped; the {files_changed} file(s) before it were written",
                plan.file.display()
            ))
            .with_hint("run `sealsync reseal --controller` again"));
        }
        let old_docs = read_documents(&locked.text, Limits::default())
            .map_err(|e| CliError::from_manifest(&e).context(plan.file.display()))?;
        let old: Vec<&serde_yaml::Value> = old_docs.iter().map(|d| &d.value).collect();
        write_out(&plan.file, &locked.text, &old, &plan.documents)?;
        drop(locked);
        files_changed += 1;
        docs_changed += plan.todo.len();
    }
    eprintln!("re-wrapped {docs_changed} sealed document(s) in {files_changed} file(s) through the controller");
    Ok(ExitCode::SUCCESS)
}
