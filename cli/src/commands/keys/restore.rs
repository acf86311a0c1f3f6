//! `sealsync keys restore`: loads the keys of a backup into a cluster (a rebuilt one after a
//! disaster), so that its controller opens every file sealed for the old cluster.
//!
//! The backup is opened here, in memory, with the recovery identity; the keys go straight into
//! key Secrets of the controller's namespace. Nothing is written to disk, and the recovery
//! identity never reaches the cluster.

use std::collections::BTreeSet;
use std::process::ExitCode;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use sealsync_core::keysecret::{key_secret, wipe_secret, KEY_ID_LABEL, KEY_LABEL};
use sealsync_core::KeyState;
use sealsync_crypto::open_backup;

use super::lifecycle::{active_key_ids, list_keys, parse_timeout, POLL};
use super::RestoreArgs;
use crate::cluster;
use crate::commands::load_identities;
use crate::error::{CliError, CliResult};
use crate::fsio;

pub fn run(args: RestoreArgs) -> CliResult<ExitCode> {
    let controller = &args.controller;
    let wait = parse_timeout(controller)?;
    let namespace = controller.controller_namespace.clone();
    let identities = load_identities(&args.identities)?;
    let source = args.file.display().to_string();
    let text = fsio::read_input(Some(&args.file))?;
    let keys = open_backup(text.as_bytes(), &identities)
        .map_err(|e| CliError::from_crypto(&e).context(&source))?;
    drop(identities);
    cluster::block_on(async {
        let (client, _) = controller.cluster.connect().await?;
        let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        // Metadata only: which keys and names the cluster has, without reading any key.
        let present = secrets
            .list_metadata(&ListParams::default().labels(KEY_LABEL))
            .await
            .map_err(|e| {
                cluster::api_error(&format!("listing the key Secrets in {namespace}"), e)
            })?;
        let present_ids: BTreeSet<String> = present
            .items
            .iter()
            .filter_map(|m| m.metadata.labels.as_ref()?.get(KEY_ID_LABEL).cloned())
            .collect();
        let sealing_keys = list_keys(client.clone(), &namespace).await?;
        // Which key each SealingKey records (none yet for a pending rotation).
        let records: std::collections::BTreeMap<String, Option<String>> = sealing_keys
            .iter()
            .map(|sk| {
                (
                    kube::ResourceExt::name_any(sk),
                    sk.status.as_ref().and_then(|s| s.key_id.clone()),
                )
            })
            .collect();
        let retired: BTreeSet<String> = sealing_keys
            .iter()
            .filter_map(|sk| sk.status.as_ref())
            .filter(|s| s.state == Some(KeyState::Retired))
            .filter_map(|s| s.key_id.clone())
            .collect();
        let mut restored = Vec::new();
        for key in &keys {
            let id = key.identity.key_id().to_string();
            if present_ids.contains(&id) {
                eprintln!("Key {id}: already in the cluster.");
                continue;
            }
            if retired.contains(&id) && !args.include_retired {
                eprintln!("Key {id}: skipped, this cluster retired it (pass --include-retired to bring it back).");
                continue;
            }
            let created = restored_creation_time(&key.created)
                .map_err(|reason| CliError::new(format!("{source}: key {id}: {reason}")))?;
            // The backup's name first; another key may hold it in a rebuilt cluster (its own
            // first key), then a name of the key id.
            let mut stored_as = None;
            for name in [key.name.clone(), format!("sealsync-key-{id}")] {
                // A SealingKey of that name that records another key (a retired one keeps its
                // record) keeps it: the restored key takes the other name. Its own record (a
                // Missing key) is restored in place.
                if records
                    .get(&name)
                    .is_some_and(|recorded| recorded.as_deref() != Some(id.as_str()))
                {
                    continue;
                }
                let mut secret = key_secret(&namespace, &name, &key.identity, &created);
                let result = secrets.create(&PostParams::default(), &secret).await;
                wipe_secret(&mut secret);
                match result {
                    Ok(mut written) => {
                        wipe_secret(&mut written);
                        stored_as = Some(name);
                        break;
                    }
                    Err(kube::Error::Api(s)) if s.code == 409 => continue,
                    Err(e) => {
                        return Err(cluster::api_error(
                            &format!("creating the key Secret {namespace}/{name}"),
                            e,
                        )
                        .with_hint(format!(
                        "restoring needs `create` on secrets in {namespace}; ask the cluster admin"
                    )))
                    }
                }
            }
            let name = stored_as.ok_or_else(|| {
                CliError::new(format!("key {id}: the Secret names {} and sealsync-key-{id} are both taken by other objects", key.name))
                    .with_hint(format!("see `kubectl -n {namespace} get secrets -l {KEY_LABEL}`"))
            })?;
            eprintln!("Key {id}: restored as Secret {namespace}/{name}.");
            restored.push(id);
        }
        if restored.is_empty() {
            eprintln!("Nothing to restore: the cluster holds every key of the backup.");
            return Ok(ExitCode::SUCCESS);
        }
        // The controller loads them from its watch; wait until it reports them active.
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let active = active_key_ids(client.clone(), &namespace).await?;
            if restored.iter().all(|id| active.contains(id)) {
                eprintln!(
                    "Restored {} key(s); sealsync-controller opens documents with them now.",
                    restored.len()
                );
                return Ok(ExitCode::SUCCESS);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CliError::new(format!(
                    "restored {} key(s), but sealsync-controller did not report them active within {}",
                    restored.len(),
                    controller.timeout
                ))
                .with_hint(format!(
                    "the keys are stored; is sealsync-controller running in namespace {namespace}? It loads them when it runs"
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    })
}

/// The creation time a restored key keeps: the backup's, if it is an RFC 3339 time not in the
/// future; the oldest possible one when the backup does not say (a plain identity file), so
/// that a restore never makes a key current by itself.
fn restored_creation_time(created: &str) -> Result<String, String> {
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    if created.is_empty() {
        return Ok("1970-01-01T00:00:00Z".to_owned());
    }
    let time: Timestamp = created
        .parse()
        .map_err(|_| format!("its creation time {created:?} is not an RFC 3339 time"))?;
    let allowed = Timestamp::now()
        .checked_add(SignedDuration::from_secs(300))
        .unwrap_or(Timestamp::MAX);
    if time > allowed {
        return Err(format!(
            "its creation time {created} is in the future; a backup written by the controller never says so"
        ));
    }
    Ok(Timestamp::from_second(time.as_second())
        .map(|t| t.to_string())
        .unwrap_or_else(|_| created.to_owned()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn creation_times_of_restored_keys() {
        use super::restored_creation_time as t;
        assert_eq!(t("").as_deref(), Ok("1970-01-01T00:00:00Z"));
        assert_eq!(
            t("2026-12-01T19:00:00Z").as_deref(),
            Ok("2026-12-01T19:00:00Z")
        );
        assert!(t("9999-01-01T00:00:00Z").is_err());
        assert!(t("yesterday").is_err());
    }
}
