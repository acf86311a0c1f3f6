//! The `prune` stage: delete what the last applied revision had and the new one does not.
//!
//! Only objects that carry both owner labels of this GitSync are deleted; an object annotated
//! `sealsync.dev/prune: disabled` is left in place. An entry leaves the inventory only once the
//! object is confirmed gone (or is being deleted, held only by its finalizers); an entry whose
//! deletion failed stays, so the next reconcile tries again.

use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject};
use kube::{Api, Client};
use sealsync_core::{InventoryEntry, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL, PRUNE_ANNOTATION};

use crate::apply::Resolver;

/// What prune did.
#[derive(Debug, Default)]
pub struct PruneOutcome {
    /// Objects deleted.
    pub deleted: Vec<String>,
    /// Entries that must stay in the inventory: the deletion failed or is not confirmed.
    pub retained: Vec<InventoryEntry>,
    /// Objects left alone: not ours any more, or annotated `prune: disabled`.
    pub skipped: usize,
    /// The first failure, if any.
    pub error: Option<String>,
}

fn delete_rank(kind: &str) -> u8 {
    // The reverse of the apply stages: what others live in goes last.
    match kind {
        "Namespace" => 2,
        "CustomResourceDefinition" => 1,
        _ => 0,
    }
}

/// Deletes the objects of `stale` that belong to the GitSync `owner_namespace/owner_name`.
pub async fn prune(
    client: &Client,
    resolver: &mut Resolver,
    stale: Vec<InventoryEntry>,
    owner_namespace: &str,
    owner_name: &str,
) -> PruneOutcome {
    let mut outcome = PruneOutcome::default();
    let mut stale = stale;
    stale.sort_by_key(|e| {
        e.parts()
            .map(|(_, _, _, kind)| delete_rank(kind))
            .unwrap_or(0)
    });
    for entry in stale {
        let Some((namespace, name, group, kind)) = entry.parts() else {
            // Not an id this controller writes: drop it rather than guess what it names.
            continue;
        };
        let api_version = if group.is_empty() {
            entry.v.clone()
        } else {
            format!("{group}/{}", entry.v)
        };
        let what = format!(
            "{kind} {}{name}",
            namespace.map(|n| format!("{n}/")).unwrap_or_default()
        );
        let resolved = match resolver.resolve(client, &api_version, kind).await {
            Ok(Some(r)) => r,
            // The kind is no longer served (its CRD is gone): so are its objects.
            Ok(None) => continue,
            Err(e) => {
                outcome.error.get_or_insert(format!("{what}: {e}"));
                outcome.retained.push(entry.clone());
                continue;
            }
        };
        let (resource, namespaced) = resolved;
        let api: Api<DynamicObject> = match (namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        let live = match api.get_opt(name).await {
            Ok(Some(live)) => live,
            Ok(None) => continue,
            Err(e) => {
                outcome.error.get_or_insert(format!("{what}: {e}"));
                outcome.retained.push(entry.clone());
                continue;
            }
        };
        let labels = live.metadata.labels.clone().unwrap_or_default();
        let ours = labels.get(OWNER_NAME_LABEL).map(String::as_str) == Some(owner_name)
            && labels.get(OWNER_NAMESPACE_LABEL).map(String::as_str) == Some(owner_namespace);
        let disabled = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PRUNE_ANNOTATION))
            .is_some_and(|v| v.eq_ignore_ascii_case("disabled"));
        if !ours || disabled {
            outcome.skipped += 1;
            continue;
        }
        if live.metadata.deletion_timestamp.is_some() {
            outcome.deleted.push(what);
            continue;
        }
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                outcome.deleted.push(what);
                continue;
            }
            Err(e) => {
                outcome.error.get_or_insert(format!("deleting {what}: {e}"));
                outcome.retained.push(entry.clone());
                continue;
            }
        }
        if confirm_deleted(&api, name).await {
            outcome.deleted.push(what);
        } else {
            outcome
                .error
                .get_or_insert(format!("deleting {what}: not confirmed"));
            outcome.retained.push(entry.clone());
        }
    }
    outcome
}

/// Gone, or marked for deletion and held only by finalizers.
async fn confirm_deleted(api: &Api<DynamicObject>, name: &str) -> bool {
    for _ in 0..50 {
        match api.get_opt(name).await {
            Ok(None) => return true,
            Ok(Some(o)) if o.metadata.deletion_timestamp.is_some() => return true,
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(_) => return false,
        }
    }
    false
}
