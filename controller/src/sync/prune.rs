//! The `prune` stage: delete what the last applied revision had and the new one does not,
//! the last wave (`sealsync.dev/wave`) first.
//!
//! Only objects that carry both owner labels of this GitSync are deleted; an object annotated
//! `sealsync.dev/prune: disabled` is left in place. An entry leaves the inventory only once the
//! object is confirmed gone (or is being deleted, held only by its finalizers); an entry whose
//! deletion failed stays, so the next reconcile tries again.
//!
//! Some objects are never deleted by a prune, only orphaned (they leave the inventory and stay
//! in the cluster, with a warning Event), as Flux and Argo CD protect their own install:
//! - the controller's own: its Namespace, the `sealsync.dev` CRDs (deleting one deletes every
//!   GitSync, whose finalizers would then prune every team's objects), and anything in its
//!   namespace (key Secrets, Leases, ConfigMaps);
//! - a Namespace or a CRD without `sealsync.dev/prune: enabled`: deleting one deletes
//!   everything in it, or every object of its kind, in Git or not.

use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject};
use kube::{Api, Client};
use sealsync_core::{
    InventoryEntry, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL, PRUNE_ANNOTATION, WAVE_ANNOTATION,
};

use crate::sync::apply::Resolver;

/// Whose objects are protected from prune.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PruneScope<'a> {
    /// The GitSync's namespace.
    pub owner_namespace: &'a str,
    /// The GitSync's name.
    pub owner_name: &'a str,
    /// The controller's own namespace.
    pub controller_namespace: &'a str,
}

/// What prune did.
#[derive(Debug, Default)]
pub(crate) struct PruneOutcome {
    /// Objects deleted.
    pub deleted: Vec<String>,
    /// Entries that must stay in the inventory: the deletion failed or is not confirmed.
    pub retained: Vec<InventoryEntry>,
    /// Objects left alone: not ours any more, or annotated `prune: disabled`.
    pub skipped: usize,
    /// Objects left in place and dropped from the inventory, each with the reason.
    pub orphaned: Vec<String>,
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

/// Why prune must not delete an object of this kind, name and namespace whatever its
/// annotations say: it belongs to the controller itself.
fn controller_own(
    kind: &str,
    group: &str,
    namespace: Option<&str>,
    name: &str,
    controller_namespace: &str,
) -> Option<&'static str> {
    if namespace == Some(controller_namespace)
        || (kind == "Namespace" && group.is_empty() && name == controller_namespace)
    {
        return Some("it is the controller's namespace or lives in it (its keys)");
    }
    let sealsync_crd = kind == "CustomResourceDefinition"
        && group == "apiextensions.k8s.io"
        && name
            .strip_suffix(sealsync_core::GROUP)
            .and_then(|plural| plural.strip_suffix('.'))
            .is_some_and(|plural| !plural.is_empty() && !plural.contains('.'));
    sealsync_crd.then_some("it is a sealsync CRD: deleting it would delete every GitSync")
}

/// Whether deleting an object of this kind deletes other objects with it.
fn cascades(kind: &str, group: &str) -> bool {
    (kind == "Namespace" && group.is_empty())
        || (kind == "CustomResourceDefinition" && group == "apiextensions.k8s.io")
}

/// Deletes the objects of `stale` that belong to the GitSync `scope` names.
pub(crate) async fn prune(
    client: &Client,
    resolver: &mut Resolver,
    stale: Vec<InventoryEntry>,
    scope: PruneScope<'_>,
) -> PruneOutcome {
    let PruneScope {
        owner_namespace,
        owner_name,
        controller_namespace,
    } = scope;
    let mut outcome = PruneOutcome::default();
    let mut doomed = Vec::new();
    let mut stale = stale;
    stale.sort_by_key(|e| {
        e.parts()
            .map(|(_, _, _, kind)| delete_rank(kind))
            .unwrap_or(0)
    });
    for entry in stale {
        let (Some((namespace, name, group, kind)), Some(api_version)) =
            (entry.parts(), entry.api_version())
        else {
            // Not an id this controller writes: drop it rather than guess what it names.
            continue;
        };
        let what = format!(
            "{kind} {}{name}",
            namespace.map(|n| format!("{n}/")).unwrap_or_default()
        );
        if let Some(why) = controller_own(kind, group, namespace, name, controller_namespace) {
            outcome.orphaned.push(format!("{what}: not deleted, {why}"));
            continue;
        }
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
        // Metadata only: a Secret's values are never read to delete it.
        let live = match api.get_metadata_opt(name).await {
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
        let prune_setting = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(PRUNE_ANNOTATION))
            .map(|v| v.to_ascii_lowercase());
        if !ours || prune_setting.as_deref() == Some("disabled") {
            outcome.skipped += 1;
            continue;
        }
        if cascades(kind, group) && prune_setting.as_deref() != Some("enabled") {
            outcome.orphaned.push(format!(
                "{what}: not deleted, since deleting it deletes everything in it; annotate it \
                 {PRUNE_ANNOTATION}: enabled in Git first to let sealsync delete it, or delete it \
                 yourself"
            ));
            continue;
        }
        if live.metadata.deletion_timestamp.is_some() {
            outcome.deleted.push(what);
            continue;
        }
        let wave = live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(WAVE_ANNOTATION))
            .and_then(|w| w.trim().parse::<i64>().ok())
            .unwrap_or(0);
        doomed.push(Doomed {
            wave,
            rank: delete_rank(kind),
            name: name.to_owned(),
            what,
            api,
            entry: entry.clone(),
        });
    }
    // The last wave goes first, as the first was applied first; within a wave, Namespaces
    // and CRDs after what they hold (the sort is stable, so the rank order above stays).
    doomed.sort_by_key(|d| (std::cmp::Reverse(d.wave), d.rank));
    for Doomed {
        name,
        what,
        api,
        entry,
        ..
    } in doomed
    {
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                outcome.deleted.push(what);
                continue;
            }
            Err(e) => {
                outcome.error.get_or_insert(format!("deleting {what}: {e}"));
                outcome.retained.push(entry);
                continue;
            }
        }
        if confirm_deleted(&api, &name).await {
            outcome.deleted.push(what);
        } else {
            outcome
                .error
                .get_or_insert(format!("deleting {what}: not confirmed"));
            outcome.retained.push(entry);
        }
    }
    outcome
}

/// A stale object that is ours to delete.
struct Doomed {
    /// Its wave (`sealsync.dev/wave`).
    wave: i64,
    /// Its rank among the kinds ([`delete_rank`]).
    rank: u8,
    name: String,
    /// `Kind namespace/name`, for messages.
    what: String,
    api: Api<DynamicObject>,
    entry: InventoryEntry,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_controllers_own_objects_are_recognised() {
        let own = |kind, group, ns, name| controller_own(kind, group, ns, name, "sealsync-system");
        assert!(own("Namespace", "", None, "sealsync-system").is_some());
        assert!(own("Secret", "", Some("sealsync-system"), "sealsync-key-1").is_some());
        assert!(own("Lease", "coordination.k8s.io", Some("sealsync-system"), "l").is_some());
        assert!(own(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            None,
            "gitsyncs.sealsync.dev"
        )
        .is_some());
        assert!(own("Namespace", "", None, "shop").is_none());
        // Another group under the same domain is not sealsync's.
        assert!(own(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            None,
            "gadgets.model.sealsync.dev"
        )
        .is_none());
        assert!(own(
            "CustomResourceDefinition",
            "apiextensions.k8s.io",
            None,
            "widgets.notsealsync.dev"
        )
        .is_none());
        assert!(own("ConfigMap", "", Some("shop"), "sealsync-system").is_none());
        assert!(cascades("Namespace", ""));
        assert!(cascades("CustomResourceDefinition", "apiextensions.k8s.io"));
        assert!(!cascades("Namespace", "example.com"));
    }
}
