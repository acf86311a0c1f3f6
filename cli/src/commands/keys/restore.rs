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

use super::lifecycle::{list_keys, parse_timeout, POLL};
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
            let created = if key.created.is_empty() {
                super::generate::created_stamp()
            } else {
                key.created.clone()
            };
            // The backup's name first; another key may hold it in a rebuilt cluster (its own
            // first key), then a name of the key id.
            let mut stored_as = None;
            for name in [key.name.clone(), format!("sealsync-key-{id}")] {
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
            let active: BTreeSet<String> = list_keys(client.clone(), &namespace)
                .await?
                .iter()
                .filter_map(|sk| sk.status.as_ref())
                .filter(|s| s.state == Some(KeyState::Active))
                .filter_map(|s| s.key_id.clone())
                .collect();
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
