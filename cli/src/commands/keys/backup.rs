//! `sealsync keys backup`: the controller's backup of every cluster key, encrypted to the
//! recovery recipients the cluster admin configured. The CLI only copies it out: it never
//! chooses a recipient and never sees a private key.

use std::process::ExitCode;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use sealsync_core::keysecret::{
    BACKUP_DATA_KEY, BACKUP_KEY_IDS_ANNOTATION, BACKUP_RECIPIENTS_ANNOTATION, BACKUP_SECRET,
    BACKUP_WRITTEN_ANNOTATION,
};

use super::lifecycle::{active_key_ids, parse_timeout, POLL};
use super::BackupArgs;
use crate::cluster;
use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::output;

const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";

fn ids(text: Option<&String>) -> Vec<String> {
    let mut ids: Vec<String> = text
        .map(|t| {
            t.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

pub fn run(args: BackupArgs) -> CliResult<ExitCode> {
    let controller = &args.controller;
    let wait = parse_timeout(controller)?;
    let namespace = controller.controller_namespace.clone();
    let what = format!("Secret {namespace}/{BACKUP_SECRET}");
    let (armored, key_ids, recipients, written) = cluster::block_on(async {
        let (client, _) = controller.cluster.connect().await?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let secret = secrets.get_opt(BACKUP_SECRET).await.map_err(|e| {
                let err = cluster::api_error(&what, e);
                match err.hint() {
                    Some(h) if h.starts_with("ask the cluster admin") => err.with_hint(format!(
                        "reading the backup needs `get` on secrets/{BACKUP_SECRET} in {namespace}; ask the cluster admin"
                    )),
                    _ => err,
                }
            })?;
            let Some(secret) = secret else {
                return Err(CliError::new(format!("{what} not found: the controller keeps no key backup")).with_hint(
                    "the cluster admin starts sealsync-controller with --recovery-recipients-file FILE (public age1… recipients of offline recovery keys); it then writes the backup within seconds",
                ));
            };
            let annotations = secret.metadata.annotations.clone().unwrap_or_default();
            let held = ids(annotations.get(BACKUP_KEY_IDS_ANNOTATION));
            // Sorted, as `ids` sorts what the backup holds.
            let active: Vec<String> = active_key_ids(client.clone(), &namespace)
                .await?
                .into_iter()
                .collect();
            if held == active {
                let armored = secret
                    .data
                    .as_ref()
                    .and_then(|d| d.get(BACKUP_DATA_KEY))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
                    .filter(|t| t.starts_with(ARMOR_BEGIN))
                    .ok_or_else(|| {
                        CliError::new(format!(
                            "{what} does not hold an age-encrypted {BACKUP_DATA_KEY}"
                        ))
                        .with_hint("restart sealsync-controller: it rewrites the backup on start")
                    })?;
                return Ok((
                    armored,
                    held,
                    ids(annotations.get(BACKUP_RECIPIENTS_ANNOTATION)),
                    annotations
                        .get(BACKUP_WRITTEN_ANNOTATION)
                        .cloned()
                        .unwrap_or_default(),
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::new(format!(
                    "{what} holds key(s) {} but the cluster's active keys are {}",
                    held.join(", "),
                    active.join(", ")
                ))
                .with_hint(
                    "the controller rewrites the backup within seconds of every key change; if it does not, its log says why (such as an unreadable --recovery-recipients-file)",
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    })?;
    let summary = format!(
        "the backup of {} key(s) ({}), written {written}, encrypted to recovery recipient(s) with key id(s) {}",
        key_ids.len(),
        key_ids.join(", "),
        recipients.join(", ")
    );
    match &args.output {
        Some(path) => {
            fsio::write_atomic(path, armored.as_bytes())?;
            eprintln!(
                "Wrote {summary} to {}.\nOpen it with `age -d -i RECOVERY_KEY {0}`; load it into a cluster with `sealsync keys restore -f {0} -i RECOVERY_KEY`.",
                path.display()
            );
        }
        None => {
            output::write_stdout(&armored)?;
            eprintln!("Printed {summary}.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
