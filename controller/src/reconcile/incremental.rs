//! Incremental revisions: when a new revision arrives and self-heal vouches for the applied
//! one (every object watched, listed and unchanged since its write), only the objects that
//! differ from the applied revision are planned and written. The others are carried over:
//! they stay in the inventory, in self-heal and in the status, and prune still covers what
//! the new revision dropped.
//!
//! A file whose blob is the one the applied revision held is not even read: every object it
//! rendered to is carried over (the fetch lists it, [`FileIndexes`] knows its objects), so a
//! push that changes one file of thousands reads, parses and plans that file. In a file that
//! changed, an object is carried over when its document and its manifest as Git holds it (a
//! SealedSecret still sealed) are byte for byte those of an applied object. Everything is
//! planned again when the difference cannot be trusted:
//! - the revision is the applied one (a full re-plan was asked for: `sealsync sync`, a Vault
//!   refresh that restarts workloads, or the idle poll's own checks);
//! - self-heal does not vouch for the applied revision (first sync after a start, a changed
//!   spec, a watch not listed, a pending correction, the periodic full resync);
//! - a CustomResourceDefinition or a Namespace is added, changed or removed (it changes how
//!   other objects validate, or deletes them);
//! - a workload restarts on Secret changes (its checksum covers Secrets elsewhere);
//! - a Secret holds Vault references (its values are read again with every revision; its
//!   file is always read).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use kube::Resource;
use sealsync_core::vaultref::secret_values;
use sealsync_core::{GitSync, InventoryEntry, SealedSecretUsage};

use super::Shared;
use crate::heal::{AppliedObject, Fingerprint, TrackedSource};
use crate::support::metrics::PlanLabels;
use crate::support::SyncKey;
use crate::sync::fetch::Snapshot;
use crate::sync::object::SyncObject;
use crate::sync::plan::CarriedObjects;
use crate::sync::restarts;
use crate::sync::tree::KeptFile;
use sealsync_core::render::Kept;

/// Per GitSync, the manifest files of its applied revision whose objects are all known:
/// a new revision reads only the files whose blob differs.
#[derive(Debug, Default)]
pub(crate) struct FileIndexes(Mutex<HashMap<SyncKey, Arc<FileIndex>>>);

/// The manifest files of one applied revision.
#[derive(Debug)]
pub(crate) struct FileIndex {
    /// The revision, as `status.lastAppliedRevision` says it.
    revision: String,
    /// The spec's generation it was applied for.
    generation: Option<i64>,
    /// Path → blob, for the fetch. Files whose objects are planned with every revision
    /// (Secrets with Vault references, workloads that restart on Secret changes) are left
    /// out, so they are always read.
    blobs: Arc<HashMap<String, gix::ObjectId>>,
    /// Path → how many objects the file rendered to.
    objects: HashMap<String, usize>,
}

impl FileIndexes {
    pub(super) fn get(&self, key: &SyncKey) -> Option<Arc<FileIndex>> {
        let map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key).cloned()
    }

    /// Records the files of the revision just applied.
    pub(super) fn record(&self, key: &SyncKey, index: FileIndex) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.insert(key.clone(), Arc::new(index));
    }

    /// Forgets a GitSync (deleted, or its revision failed).
    pub(super) fn forget(&self, key: &SyncKey) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(key);
    }
}

/// The files a fetch need not read: those of the applied revision, when the GitSync may be
/// planned incrementally at all. The reconcile checks the rest ([`applied_before`]) after
/// the fetch; a file listed here but needed after all is read then.
pub(super) fn known_files(
    gs: &GitSync,
    ctx: &Shared,
    key: &SyncKey,
) -> Option<Arc<HashMap<String, gix::ObjectId>>> {
    if !gs.spec.self_heal || gs.spec.restart_on_secret_change {
        return None;
    }
    let applied = gs.status.as_ref()?.last_applied_revision.as_deref()?;
    let index = ctx.files.get(key)?;
    (index.revision == applied && index.generation == gs.meta().generation)
        .then(|| Arc::clone(&index.blobs))
}

/// How many objects each file of a revision rendered to, and which files hold objects that
/// are planned with every revision.
#[derive(Debug, Default)]
pub(super) struct Census {
    objects: HashMap<String, usize>,
    always_read: HashSet<String>,
}

impl Census {
    /// Counts the rendered `objects` (before any is carried over).
    pub(super) fn of(objects: &[SyncObject]) -> Self {
        let mut census = Self::default();
        for object in objects {
            *census.objects.entry(object.file.clone()).or_default() += 1;
            if holds_references(object) || restarts::restarts_on_secrets(&object.object, false) {
                census.always_read.insert(object.file.clone());
            }
        }
        census
    }

    /// The index of the revision just applied: the files it read, with the files it kept
    /// from `previous` (the files a full reconcile read are all in `self`).
    pub(super) fn index(
        self,
        gs: &GitSync,
        revision: &str,
        snapshot: &Snapshot,
        previous: Option<&FileIndex>,
    ) -> FileIndex {
        self.index_of(gs, revision, &snapshot.kept, &snapshot.blobs, previous)
    }

    fn index_of(
        mut self,
        gs: &GitSync,
        revision: &str,
        kept: &[KeptFile],
        blobs: &HashMap<String, gix::ObjectId>,
        previous: Option<&FileIndex>,
    ) -> FileIndex {
        for kept in kept {
            if let Some(count) = previous.and_then(|p| p.objects.get(&kept.path)) {
                self.objects.insert(kept.path.clone(), *count);
            }
        }
        let blobs = blobs
            .iter()
            .filter(|(path, _)| !self.always_read.contains(*path))
            .map(|(path, blob)| (path.clone(), *blob))
            .collect();
        FileIndex {
            revision: revision.to_owned(),
            generation: gs.meta().generation,
            blobs: Arc::new(blobs),
            objects: self.objects,
        }
    }
}

/// The files a revision kept (not read), with what the applied revision knows of them.
#[derive(Debug)]
pub(super) struct KeptFiles {
    /// Their paths, each with the number of objects it rendered to.
    paths: HashMap<String, usize>,
    /// What [`sealsync_core::render::render_with`] counts for them.
    pub(super) kept: Kept,
}

/// The kept files of `snapshot`, or why they must be read after all.
pub(super) fn kept_files(
    ctx: &Shared,
    key: &SyncKey,
    snapshot: &Snapshot,
) -> Result<KeptFiles, &'static str> {
    let mut kept = KeptFiles {
        paths: HashMap::with_capacity(snapshot.kept.len()),
        kept: Kept::default(),
    };
    if snapshot.kept.is_empty() {
        return Ok(kept);
    }
    let index = ctx
        .files
        .get(key)
        .ok_or("the files of the applied revision are not known")?;
    let (mut bytes, mut objects) = (0usize, 0usize);
    for file in &snapshot.kept {
        let count = index
            .objects
            .get(&file.path)
            .ok_or("the files of the applied revision are not known")?;
        objects += count;
        bytes = bytes.saturating_add(usize::try_from(file.bytes).unwrap_or(usize::MAX));
        kept.paths.insert(file.path.clone(), *count);
    }
    kept.kept = Kept::new(snapshot.kept.len(), bytes, objects);
    Ok(kept)
}

/// The objects of the applied revision that the new one holds unchanged.
#[derive(Debug, Default)]
pub(super) struct Carried {
    /// For self-heal.
    pub(super) sources: Vec<Arc<TrackedSource>>,
    /// Their states, as self-heal knows them.
    pub(super) observed: Vec<(String, Fingerprint)>,
    /// Their inventory entries.
    pub(super) entries: Vec<InventoryEntry>,
    /// The keys that opened the SealedSecrets among them, from the status.
    pub(super) usage: Vec<SealedSecretUsage>,
}

impl Carried {
    /// The carried objects by inventory id, for the plan stage's duplicate check. Built when
    /// asked, without a copy of any id: a location is written only for the error that names it.
    pub(super) fn index(&self) -> CarriedIndex<'_> {
        CarriedIndex(
            self.sources
                .iter()
                .map(|source| (source.id.as_str(), source.as_ref()))
                .collect(),
        )
    }
}

/// The carried objects by inventory id.
#[derive(Debug)]
pub(super) struct CarriedIndex<'a>(HashMap<&'a str, &'a TrackedSource>);

impl CarriedObjects for CarriedIndex<'_> {
    fn location_of(&self, id: &str) -> Option<String> {
        self.0
            .get(id)
            .map(|source| format!("{}: {}", source.file, source.document))
    }
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

/// Takes the objects that `applied` holds unchanged out of `objects` (those of the files
/// read) and adds every object of the `kept` files, or says why every object must be
/// planned. Logs and counts an incremental revision.
pub(super) fn carry_over(
    gs: &GitSync,
    ctx: &Shared,
    applied: Vec<AppliedObject>,
    kept: &KeptFiles,
    objects: &mut Vec<SyncObject>,
) -> Result<Carried, &'static str> {
    let carried = split(gs, applied, kept, objects)?;
    tracing::info!(
        planned = objects.len(),
        carried = carried.entries.len(),
        files_kept = kept.paths.len(),
        "incremental revision: planning only the objects that changed"
    );
    ctx.metrics
        .revisions_planned
        .get_or_create(&PlanLabels {
            mode: "incremental",
        })
        .inc();
    Ok(carried)
}

/// Logs and counts a revision whose every object is planned.
pub(super) fn plan_fully(ctx: &Shared, reason: &str) {
    tracing::info!(reason, "re-planning every object");
    ctx.metrics
        .revisions_planned
        .get_or_create(&PlanLabels { mode: "full" })
        .inc();
}

fn split(
    gs: &GitSync,
    applied: Vec<AppliedObject>,
    kept_files: &KeptFiles,
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
    // Every object of a kept file is carried over; only those of the files read are compared.
    let mut in_kept: HashMap<&str, usize> = HashMap::new();
    let mut kept: HashSet<&str> = HashSet::new();
    for found in &applied {
        let file = found.source.file.as_str();
        if kept_files.paths.contains_key(file) {
            *in_kept.entry(file).or_default() += 1;
            kept.insert(found.source.id.as_str());
        }
    }
    // Each kept file's objects must all be watched: one that is not would leave the inventory.
    if kept_files
        .paths
        .iter()
        .any(|(path, count)| in_kept.get(path.as_str()).copied().unwrap_or(0) != *count)
    {
        return Err("an object of an unchanged file is not watched");
    }
    let by_place: HashMap<(&str, &str, &[u8]), &AppliedObject> = applied
        .iter()
        .filter(|a| !kept_files.paths.contains_key(a.source.file.as_str()))
        .map(|a| {
            let s = &a.source;
            (
                (s.file.as_str(), s.document.as_str(), s.manifest.as_slice()),
                a,
            )
        })
        .collect();
    let mut unchanged: HashSet<usize> = HashSet::new();
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
    let mut usage_of: HashMap<(&str, &str), Vec<&SealedSecretUsage>> = HashMap::new();
    for usage in previous_usage {
        usage_of
            .entry((usage.file.as_str(), usage.secret.as_str()))
            .or_default()
            .push(usage);
    }
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
        carried
            .observed
            .push((source.id.clone(), found.synced.clone()));
        if !usage_of.is_empty() {
            let secret = format!(
                "{}/{}",
                source.namespace.as_deref().unwrap_or_default(),
                source.name
            );
            if let Some(usage) = usage_of.get(&(source.file.as_str(), secret.as_str())) {
                carried.usage.extend(usage.iter().map(|u| (*u).clone()));
            }
        }
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

#[cfg(test)]
#[path = "incremental_tests.rs"]
mod incremental_tests;
