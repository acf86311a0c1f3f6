//! Garbage collection by `metadata.ownerReferences`, standing in for kube-controller-manager's
//! garbage collector:
//!
//! - when an owner is gone, a dependent whose every owner is gone is deleted (background
//!   propagation), and a reference to a gone owner is dropped from a dependent that has
//!   another owner left;
//! - `propagationPolicy: Orphan` (the `orphan` finalizer) drops the references to the owner
//!   from its dependents before the owner goes;
//! - `propagationPolicy: Foreground` (the `foregroundDeletion` finalizer) deletes the
//!   dependents before the owner goes;
//! - a dependent written with references to owners that do not exist (a dangling reference) is
//!   treated as if its owners had just gone.
//!
//! The store keeps the owner-to-dependents index ([`Store::dependents_of`]); cascades run
//! synchronously inside the deleting request, while dangling references written later are
//! found by [`run`], which follows the store's change events as the real collector does.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::watch;

use super::handlers::{delete_one, remove_and_cascade};
use super::resources::str_list;
use super::server::Shared;
use super::store::{EventType, ObjKey, Store};

/// The finalizer that makes the collector orphan the dependents first.
pub const ORPHAN_FINALIZER: &str = "orphan";
/// The finalizer that makes the collector delete the dependents first.
pub const FOREGROUND_FINALIZER: &str = "foregroundDeletion";

/// How dependents are treated when their owner is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Owner goes now; the collector deletes the dependents afterwards.
    Background,
    /// Dependents go first, then the owner.
    Foreground,
    /// References to the owner are dropped; dependents stay.
    Orphan,
}

impl Propagation {
    /// The policy kube-apiserver uses when a DELETE names none: `orphanDependents`, then
    /// `propagationPolicy`, then the object's own GC finalizers, then the resource's default
    /// (orphan for `v1` ReplicationControllers and `batch/v1` Jobs, for compatibility).
    pub fn resolve(
        orphan_dependents: Option<bool>,
        policy: Option<&str>,
        obj: &Value,
        group: &str,
        plural: &str,
    ) -> Self {
        if let Some(orphan) = orphan_dependents {
            return if orphan {
                Self::Orphan
            } else {
                Self::Background
            };
        }
        match policy {
            Some("Orphan") => return Self::Orphan,
            Some("Foreground") => return Self::Foreground,
            Some("Background") => return Self::Background,
            _ => {}
        }
        for f in finalizers_of(obj) {
            if f == ORPHAN_FINALIZER {
                return Self::Orphan;
            }
            if f == FOREGROUND_FINALIZER {
                return Self::Foreground;
            }
        }
        match (group, plural) {
            ("", "replicationcontrollers") | ("batch", "jobs") => Self::Orphan,
            _ => Self::Background,
        }
    }

    /// The finalizer this policy leaves on the owner while the collector works, if any.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            Self::Background => None,
            Self::Foreground => Some(FOREGROUND_FINALIZER),
            Self::Orphan => Some(ORPHAN_FINALIZER),
        }
    }
}

/// The owner uids an object names.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .filter(|u| !u.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers_of(obj: &Value) -> Vec<String> {
    str_list(obj.pointer("/metadata/finalizers"))
}

/// Where the owner a reference names would be stored: found by apiVersion, kind and name in
/// the dependent's namespace (or cluster-wide for a cluster-scoped owner kind). None for an
/// owner kind the server does not serve.
fn owner_key(store: &Store, dependent_namespace: &str, reference: &Value) -> Option<ObjKey> {
    let field = |f: &str| reference.get(f).and_then(Value::as_str).unwrap_or("");
    let group = field("apiVersion")
        .rsplit_once('/')
        .map(|(g, _)| g)
        .unwrap_or("");
    let resources = store.resources();
    let def = resources
        .iter()
        .find(|d| d.group == group && d.kind == field("kind"))?;
    Some(ObjKey::new(def, dependent_namespace, field("name")))
}

/// Whether the owner a reference names exists with the reference's uid. An owner kind the
/// server does not serve counts as existing: the real collector cannot resolve it either and
/// leaves the dependent alone.
fn owner_exists(store: &Store, dependent_namespace: &str, reference: &Value) -> bool {
    let Some(key) = owner_key(store, dependent_namespace, reference) else {
        return true;
    };
    let uid = reference.get("uid").and_then(Value::as_str);
    store
        .get(&key)
        .is_some_and(|owner| owner.pointer("/metadata/uid").and_then(Value::as_str) == uid)
}

/// Re-examines one dependent: when none of its owners exists it is deleted (background), and
/// references to owners that are gone are dropped when another owner is left. `foreground`
/// deletes it in the foreground, as the collector does for the dependents of an owner being
/// deleted in the foreground.
pub fn collect(store: &mut Store, key: &ObjKey, foreground: bool) {
    let Some(obj) = store.get(key) else {
        return;
    };
    let Some(refs) = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    else {
        return;
    };
    let (live, gone): (Vec<&Value>, Vec<&Value>) = refs
        .iter()
        .partition(|r| owner_exists(store, &key.namespace, r));
    if gone.is_empty() {
        return;
    }
    let Some(def) = store.find(&key.group, &key.plural).cloned() else {
        return;
    };
    if live.is_empty() {
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            let policy = if foreground {
                Propagation::Foreground
            } else {
                Propagation::Background
            };
            delete_one(store, &def, key, false, policy);
        }
        return;
    }
    let kept: Vec<Value> = live.into_iter().cloned().collect();
    let mut updated = (*obj).clone();
    if let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("ownerReferences".into(), Value::Array(kept));
    }
    store.put(key.clone(), updated, Some(obj));
}

/// After `removed` left the store: its dependents are collected, and an owner that was
/// waiting in the foreground for it may now go.
pub fn removed(store: &mut Store, key: &ObjKey, removed: &Value) {
    if let Some(uid) = removed.pointer("/metadata/uid").and_then(Value::as_str) {
        for dependent in store.dependents_of(uid) {
            collect(store, &dependent, false);
        }
    }
    let refs = removed
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for reference in refs {
        let Some(owner_key) = owner_key(store, &key.namespace, &reference) else {
            continue;
        };
        let waiting = store.get(&owner_key).is_some_and(|owner| {
            owner.pointer("/metadata/uid") == reference.get("uid")
                && finalizers_of(&owner)
                    .iter()
                    .any(|f| f == FOREGROUND_FINALIZER)
        });
        if waiting {
            finish_owner(store, &owner_key);
        }
    }
}

/// Finishes the GC finalizer of an owner being deleted: orphans or deletes its dependents,
/// then removes the finalizer (which deletes the owner when no other finalizer is left).
/// Returns whether the owner is gone.
pub fn finish_owner(store: &mut Store, key: &ObjKey) -> bool {
    let Some(owner) = store.get(key) else {
        return true;
    };
    let Some(uid) = owner
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return false;
    };
    let pending = finalizers_of(&owner);
    if pending.iter().any(|f| f == ORPHAN_FINALIZER) {
        for dep in store.dependents_of(&uid) {
            drop_reference(store, &dep, &uid);
        }
    } else if pending.iter().any(|f| f == FOREGROUND_FINALIZER) {
        for dep in store.dependents_of(&uid) {
            if let Some(def) = store.find(&dep.group, &dep.plural).cloned() {
                delete_one(store, &def, &dep, false, Propagation::Foreground);
            }
        }
        if !store.dependents_of(&uid).is_empty() {
            // A dependent waits on a finalizer of its own: the owner waits for it.
            return false;
        }
    } else {
        return false;
    }
    let Some(owner) = store.get(key) else {
        return true;
    };
    let kept: Vec<String> = finalizers_of(&owner)
        .into_iter()
        .filter(|f| f != ORPHAN_FINALIZER && f != FOREGROUND_FINALIZER)
        .collect();
    let mut updated = (*owner).clone();
    if let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut) {
        if kept.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(kept));
        }
    }
    let done = kept.is_empty();
    store.put(key.clone(), updated, Some(owner));
    if done {
        remove_and_cascade(store, key);
    }
    done
}

/// Drops the references to `owner_uid` from one dependent.
fn drop_reference(store: &mut Store, key: &ObjKey, owner_uid: &str) {
    let Some(obj) = store.get(key) else {
        return;
    };
    let mut updated = (*obj).clone();
    let Some(meta) = updated.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let kept: Vec<Value> = meta
        .get("ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter(|r| r.get("uid").and_then(Value::as_str) != Some(owner_uid))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    if kept.is_empty() {
        meta.remove("ownerReferences");
    } else {
        meta.insert("ownerReferences".into(), Value::Array(kept));
    }
    store.put(key.clone(), updated, Some(obj));
}

/// Follows the store's changes and collects dependents written with dangling owner
/// references, as the real collector does when its informers see them. Ends with `shutdown`.
pub async fn run(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut events = shared.lock().subscribe();
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    // A substring test first: most objects have no owners, and parsing every
                    // change twice would double the cost of writes.
                    if ev.kind == EventType::Deleted
                        || !ev.object.text().contains("\"ownerReferences\"")
                        || owner_uids(&ev.object.value()).is_empty()
                    {
                        continue;
                    }
                    let mut store = shared.lock();
                    collect(&mut store, &ev.key, false);
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed changes: look at every object with owners once.
                    let mut store = shared.lock();
                    for key in store.keys_with_owners() {
                        collect(&mut store, &key, false);
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
            _ = shutdown.changed() => return,
        }
    }
}
