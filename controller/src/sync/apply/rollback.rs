//! Undoing what a revision wrote when a later step of the same apply fails, so that a revision
//! is applied whole or not at all.
//!
//! The first stage (Namespaces, CRDs, ClusterRoles) has to be written before the objects that
//! live in it can be validated by a dry-run; a later failure (an invalid custom resource, an
//! object refused in a new namespace, an API server error half-way) would otherwise leave it
//! behind. Each write records how to undo it:
//! - an object the revision created is deleted;
//! - an object it changed gets back the configuration the controller applied before (the live
//!   object cut down to the controller's managed fields, see [`super::fieldset`]), applied by
//!   the same field manager, so fields this revision added are dropped again;
//! - an object that cannot be put back (recreated under `spec.force`, or adopted: it had no
//!   fields of the controller before) stays as written and joins the inventory, so that a later
//!   revision without it prunes it.
//!
//! Undo runs in the reverse order of the writes: custom resources before their CRDs, objects
//! before their Namespace.

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::Api;
use sealsync_core::{InventoryEntry, FIELD_MANAGER};
use serde_json::Value as Json;

/// The configuration the controller had applied to an object before this revision changed it.
/// Wiped when dropped: for a Secret it holds the values.
pub(super) struct Previous(Json);

impl Previous {
    /// `live` cut down to the fields of the controller's Apply entry, with its identity; `None`
    /// when the controller owned none of it (an object this revision adopts).
    pub(super) fn of(live: &DynamicObject, api_version: &str, kind: &str) -> Option<Previous> {
        let fields = live.metadata.managed_fields.as_ref()?.iter().find(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER)
                && e.operation.as_deref() == Some("Apply")
                && e.subresource.as_deref().unwrap_or_default().is_empty()
        })?;
        let fields = &fields.fields_v1.as_ref()?.0;
        let mut whole = serde_json::to_value(live).ok()?;
        let mut applied = super::fieldset::extract(&whole, fields);
        sealsync_core::render::wipe_json(&mut whole);
        let object = applied.as_object_mut()?;
        object.insert(
            "apiVersion".to_owned(),
            Json::String(api_version.to_owned()),
        );
        object.insert("kind".to_owned(), Json::String(kind.to_owned()));
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Json::Object(Default::default()));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert(
                "name".to_owned(),
                Json::String(live.metadata.name.clone().unwrap_or_default()),
            );
            if let Some(ns) = &live.metadata.namespace {
                meta.insert("namespace".to_owned(), Json::String(ns.clone()));
            }
        }
        Some(Previous(applied))
    }
}

impl Drop for Previous {
    fn drop(&mut self) {
        sealsync_core::render::wipe_json(&mut self.0);
    }
}

/// How to undo one write.
pub(super) enum Undo {
    /// The object did not exist: delete it.
    Delete,
    /// Apply what the controller had applied before.
    Restore(Previous),
    /// It cannot be put back; it stays, and joins the inventory.
    Keep,
}

/// One write of the revision, with how to undo it.
pub(super) struct WriteRecord {
    /// The object's inventory entry.
    pub entry: InventoryEntry,
    /// `file: document N (Kind ns/name)`, for messages.
    pub location: String,
    /// Where the object is read and written.
    pub api: Api<DynamicObject>,
    /// Its name.
    pub name: String,
    /// How to undo the write.
    pub undo: Undo,
}

impl std::fmt::Debug for WriteRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteRecord")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

/// What undoing the writes left behind.
#[derive(Debug, Default)]
pub(super) struct RollbackOutcome {
    /// Writes undone.
    pub undone: usize,
    /// Entries of objects that stay as written (not restorable, or the undo failed).
    pub remaining: Vec<InventoryEntry>,
    /// Why an undo failed, per object.
    pub failures: Vec<String>,
}

/// Undoes `writes`, last first.
pub(super) async fn roll_back(writes: Vec<WriteRecord>) -> RollbackOutcome {
    let mut outcome = RollbackOutcome::default();
    for record in writes.into_iter().rev() {
        let result = match &record.undo {
            Undo::Keep => {
                outcome.remaining.push(record.entry);
                continue;
            }
            Undo::Delete => match record
                .api
                .delete(&record.name, &DeleteParams::background())
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(e) => Err(e),
            },
            Undo::Restore(previous) => {
                let params = PatchParams::apply(FIELD_MANAGER).force();
                record
                    .api
                    .patch(&record.name, &params, &Patch::Apply(&previous.0))
                    .await
                    // The restored object holds a Secret's values again: wiped at once.
                    .map(|mut restored| sealsync_core::render::wipe_json(&mut restored.data))
            }
        };
        match result {
            Ok(()) => outcome.undone += 1,
            Err(e) => {
                // The API server's words only: the object's content is never quoted here.
                let reason = match &e {
                    kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
                    other => other.to_string(),
                };
                outcome.failures.push(format!(
                    "{}: could not be undone: {reason}",
                    record.location
                ));
                outcome.remaining.push(record.entry);
            }
        }
    }
    outcome
}
