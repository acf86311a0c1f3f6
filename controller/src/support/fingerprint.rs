//! What a watch event must change before an applied object is checked for drift.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealsync_core::FIELD_MANAGER;

/// The part of an object's state that drift can change.
///
/// Objects with a `metadata.generation` bump it on every change outside `metadata` and
/// `status`; their status updates (a Deployment's replica counts, every few seconds) leave the
/// generation alone and are not drift. Those objects are compared by generation, labels and
/// annotations. Objects without a generation (ConfigMaps, Secrets, Services) are compared by
/// resourceVersion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Fingerprint {
    /// `metadata.generation` and a hash of the labels and annotations.
    Generation {
        /// The generation.
        generation: i64,
        /// The labels and annotations, hashed.
        metadata: u64,
        /// The object's uid: a recreated object starts at generation 1 again.
        uid: String,
    },
    /// The resourceVersion.
    Version(String),
}

impl Fingerprint {
    /// The fingerprint of an object's metadata.
    pub(crate) fn of(meta: &ObjectMeta) -> Self {
        match meta.generation {
            Some(generation) if generation > 0 => {
                let mut hasher = DefaultHasher::new();
                meta.labels.hash(&mut hasher);
                meta.annotations.hash(&mut hasher);
                Fingerprint::Generation {
                    generation,
                    metadata: hasher.finish(),
                    uid: meta.uid.clone().unwrap_or_default(),
                }
            }
            _ => Fingerprint::Version(meta.resource_version.clone().unwrap_or_default()),
        }
    }
}

/// The manager that wrote an object last, other than the controller, as `name (Operation)`:
/// what a drift event names. `None` when managedFields name no one else.
pub(crate) fn last_other_manager(meta: &ObjectMeta) -> Option<String> {
    meta.managed_fields
        .as_ref()?
        .iter()
        .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
        .filter(|e| e.subresource.as_deref().unwrap_or_default().is_empty())
        .max_by_key(|e| e.time.as_ref().map(|t| t.0))
        .map(|e| {
            format!(
                "{} ({})",
                e.manager.as_deref().unwrap_or("an unnamed manager"),
                e.operation.as_deref().unwrap_or("Update")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn meta(generation: Option<i64>, rv: &str) -> ObjectMeta {
        ObjectMeta {
            generation,
            resource_version: Some(rv.to_owned()),
            ..Default::default()
        }
    }

    #[test]
    fn status_updates_are_not_drift_but_label_changes_are() {
        let a = Fingerprint::of(&meta(Some(3), "10"));
        let status_update = Fingerprint::of(&meta(Some(3), "11"));
        assert_eq!(a, status_update);
        let mut labelled = meta(Some(3), "12");
        labelled.labels = Some([("x".to_owned(), "y".to_owned())].into());
        assert_ne!(a, Fingerprint::of(&labelled));
        assert_ne!(a, Fingerprint::of(&meta(Some(4), "13")));
        // Without a generation every write counts.
        assert_ne!(
            Fingerprint::of(&meta(None, "10")),
            Fingerprint::of(&meta(None, "11"))
        );
    }

    #[test]
    fn the_latest_other_manager_is_named() {
        let entry = |manager: &str, op: &str, secs: i64, sub: Option<&str>| ManagedFieldsEntry {
            manager: Some(manager.to_owned()),
            operation: Some(op.to_owned()),
            time: k8s_openapi::jiff::Timestamp::from_second(secs)
                .ok()
                .map(Time),
            subresource: sub.map(str::to_owned),
            ..Default::default()
        };
        let mut m = meta(None, "1");
        m.managed_fields = Some(vec![
            entry("kubectl-edit", "Update", 100, None),
            entry(FIELD_MANAGER, "Apply", 300, None),
            entry("hpa", "Update", 200, None),
            entry("kube-controller-manager", "Update", 400, Some("status")),
        ]);
        assert_eq!(last_other_manager(&m).as_deref(), Some("hpa (Update)"));
        assert_eq!(last_other_manager(&meta(None, "1")), None);
    }
}
