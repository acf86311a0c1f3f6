//! Incremental revisions: when a new revision arrives and self-heal vouches for the applied
//! one (every object watched, listed and unchanged since its write), only the objects that
//! differ from the applied revision are planned and written. The others are carried over:
//! they stay in the inventory, in self-heal and in the status, and prune still covers what
//! the new revision dropped.
//!
//! An object is carried over only when its file, its document and its manifest as Git holds
//! it (a SealedSecret still sealed) are byte for byte those of an applied object. Everything
//! is planned again when the difference cannot be trusted:
//! - the revision is the applied one (a full re-plan was asked for: `sealsync sync`, a Vault
//!   refresh that restarts workloads, or the idle poll's own checks);
//! - self-heal does not vouch for the applied revision (first sync after a start, a changed
//!   spec, a watch not listed, a pending correction, the periodic full resync);
//! - a CustomResourceDefinition or a Namespace is added, changed or removed (it changes how
//!   other objects validate, or deletes them);
//! - a workload restarts on Secret changes (its checksum covers Secrets elsewhere);
//! - a Secret holds Vault references (its values are read again with every revision).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use kube::Resource;
use sealsync_core::vaultref::secret_values;
use sealsync_core::{GitSync, InventoryEntry, SealedSecretUsage};

use super::Shared;
use crate::heal::{AppliedObject, Fingerprint, TrackedSource};
use crate::support::metrics::PlanLabels;
use crate::support::SyncKey;
use crate::sync::object::SyncObject;
use crate::sync::restarts;

/// The objects of the applied revision that the new one holds unchanged.
#[derive(Debug, Default)]
pub(super) struct Carried {
    /// For self-heal.
    pub(super) sources: Vec<Arc<TrackedSource>>,
    /// Their states, as self-heal knows them.
    pub(super) observed: Vec<(String, Fingerprint)>,
    /// Their inventory entries.
    pub(super) entries: Vec<InventoryEntry>,
    /// Inventory id → location: what no planned object may also be.
    pub(super) locations: HashMap<String, String>,
    /// The keys that opened the SealedSecrets among them, from the status.
    pub(super) usage: Vec<SealedSecretUsage>,
}

/// The applied revision's objects, taken before the reconcile makes self-heal stand aside,
/// or why every object is planned.
pub(super) fn applied_before(
    gs: &GitSync,
    ctx: &Shared,
    key: &SyncKey,
    revision: &str,
) -> Result<Vec<AppliedObject>, &'static str> {
    if !gs.spec.self_heal {
        return Err("selfHeal is off, so nothing watches the applied objects");
    }
    if gs.spec.restart_on_secret_change {
        return Err("workloads restart on Secret changes (spec.restartOnSecretChange)");
    }
    let Some(status) = gs.status.as_ref() else {
        return Err("no revision is applied yet");
    };
    match status.last_applied_revision.as_deref() {
        None => return Err("no revision is applied yet"),
        // The applied revision again, past the idle poll's shortcut: something asked for
        // every object to be planned (`sealsync sync`, a Vault refresh, the full resync).
        Some(applied) if applied == revision => {
            return Err("the revision is unchanged and a full re-plan was asked for")
        }
        Some(_) => {}
    }
    // After a failure some writes of the failed revision may have stayed: plan everything.
    if !status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
    {
        return Err("the last reconcile failed");
    }
    ctx.healer.applied(key, gs.meta().generation)
}

/// Takes the objects that `applied` holds unchanged out of `objects`, or says why every
/// object must be planned (and leaves `objects` whole). Logs the choice and counts it.
pub(super) fn carry_over(
    gs: &GitSync,
    ctx: &Shared,
    applied: Result<Vec<AppliedObject>, &'static str>,
    objects: &mut Vec<SyncObject>,
) -> Option<Carried> {
    let split = applied.and_then(|applied| split(gs, applied, objects));
    let mode = match split {
        Ok(carried) => {
            tracing::info!(
                planned = objects.len(),
                carried = carried.entries.len(),
                "incremental revision: planning only the objects that changed"
            );
            ctx.metrics
                .revisions_planned
                .get_or_create(&PlanLabels {
                    mode: "incremental",
                })
                .inc();
            return Some(carried);
        }
        Err(reason) => reason,
    };
    tracing::info!(reason = mode, "re-planning every object");
    ctx.metrics
        .revisions_planned
        .get_or_create(&PlanLabels { mode: "full" })
        .inc();
    None
}

fn split(
    gs: &GitSync,
    applied: Vec<AppliedObject>,
    objects: &mut Vec<SyncObject>,
) -> Result<Carried, &'static str> {
    if objects.iter().any(|o| o.manifest.is_empty()) {
        return Err("the manifests of the new revision are not kept");
    }
    if objects
        .iter()
        .any(|o| restarts::restarts_on_secrets(&o.object, false))
    {
        return Err("a workload restarts on Secret changes");
    }
    let by_place: HashMap<(&str, &str, &[u8]), &AppliedObject> = applied
        .iter()
        .map(|a| {
            let s = &a.source;
            (
                (s.file.as_str(), s.document.as_str(), s.manifest.as_slice()),
                a,
            )
        })
        .collect();
    let mut unchanged: HashSet<usize> = HashSet::new();
    let mut kept: HashSet<&str> = HashSet::new();
    for (index, object) in objects.iter().enumerate() {
        let place = (
            object.file.as_str(),
            object.document.as_str(),
            object.manifest.as_slice(),
        );
        match by_place.get(&place) {
            Some(found) if !holds_references(object) => {
                unchanged.insert(index);
                kept.insert(found.source.id.as_str());
            }
            _ if is_definition(object.kind()) => {
                return Err("a CustomResourceDefinition or Namespace changed");
            }
            _ => {}
        }
    }
    if applied
        .iter()
        .any(|a| !kept.contains(a.source.id.as_str()) && is_definition(&a.source.resource.kind))
    {
        return Err("a CustomResourceDefinition or Namespace changed");
    }

    let previous_usage: &[SealedSecretUsage] = gs
        .status
        .as_ref()
        .map(|s| s.sealed_secrets.as_slice())
        .unwrap_or_default();
    let mut carried = Carried::default();
    for found in applied
        .iter()
        .filter(|a| kept.contains(a.source.id.as_str()))
    {
        let source = &found.source;
        carried.entries.push(InventoryEntry {
            id: source.id.clone(),
            v: source.resource.version.clone(),
        });
        carried.locations.insert(
            source.id.clone(),
            format!("{}: {}", source.file, source.document),
        );
        carried
            .observed
            .push((source.id.clone(), found.synced.clone()));
        let secret = format!(
            "{}/{}",
            source.namespace.as_deref().unwrap_or_default(),
            source.name
        );
        carried.usage.extend(
            previous_usage
                .iter()
                .filter(|u| u.file == source.file && u.secret == secret)
                .cloned(),
        );
        carried.sources.push(Arc::clone(source));
    }
    let mut index = 0;
    objects.retain(|_| {
        let keep = !unchanged.contains(&index);
        index += 1;
        keep
    });
    Ok(carried)
}

/// A Secret whose values hold Vault references: read again with every revision.
fn holds_references(object: &SyncObject) -> bool {
    object.kind() == "Secret"
        && !object.sealed
        && secret_values(&object.object).map_or(true, |v| !v.references.is_empty())
}

fn is_definition(kind: &str) -> bool {
    matches!(kind, "CustomResourceDefinition" | "Namespace")
}
