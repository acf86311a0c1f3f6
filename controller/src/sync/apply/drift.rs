//! The `drift` stage: taking back fields that a manual edit added.
//!
//! A forced server-side apply already restores every field the revision sets. A field that
//! `kubectl edit`, `kubectl patch` or a client-side `kubectl apply` *added* is owned by that
//! manager, so an apply leaves it in place. As Flux does, the controller hands those managers'
//! field sets to its own manager (merged into its Apply entry); the next apply then removes
//! every field the revision does not set. Only `Update` entries of kubectl's managers and
//! `before-first-apply` are taken over: other controllers' fields are left alone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::api::{DynamicObject, Patch, PatchParams};
use kube::Api;
use sealsync_core::FIELD_MANAGER;
use serde_json::Value as Json;

/// Whether an entry belongs to a manual edit: kubectl's managers or `before-first-apply`,
/// with an `Update` operation (an SSA user's `Apply` entries are left alone).
fn is_manual_edit(entry: &ManagedFieldsEntry) -> bool {
    let manager = entry.manager.as_deref().unwrap_or_default();
    entry.operation.as_deref() == Some("Update")
        && (manager.starts_with("kubectl") || manager == "before-first-apply")
        && entry.subresource.as_deref().unwrap_or_default().is_empty()
}

/// Whether the live object carries fields a manual edit set.
pub(crate) fn has_manual_edits(live: &DynamicObject) -> bool {
    live.metadata
        .managed_fields
        .as_ref()
        .is_some_and(|entries| entries.iter().any(is_manual_edit))
}

/// The managedFields with every manual-edit entry merged into the controller's Apply entry.
pub(crate) fn taken_over(
    entries: &[ManagedFieldsEntry],
    api_version: &str,
) -> Vec<ManagedFieldsEntry> {
    let mut kept = Vec::with_capacity(entries.len());
    let mut ours: Option<ManagedFieldsEntry> = None;
    let mut taken = Vec::new();
    for entry in entries {
        if is_manual_edit(entry) {
            taken.push(entry.clone());
        } else if entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some("Apply")
            && ours.is_none()
        {
            ours = Some(entry.clone());
        } else {
            kept.push(entry.clone());
        }
    }
    let mut ours = ours.unwrap_or_else(|| ManagedFieldsEntry {
        api_version: Some(api_version.to_owned()),
        fields_type: Some("FieldsV1".to_owned()),
        fields_v1: Some(FieldsV1(Json::Object(Default::default()))),
        manager: Some(FIELD_MANAGER.to_owned()),
        operation: Some("Apply".to_owned()),
        subresource: None,
        time: None,
    });
    let mut fields = ours
        .fields_v1
        .take()
        .map(|f| f.0)
        .unwrap_or_else(|| Json::Object(Default::default()));
    for entry in taken {
        if let Some(FieldsV1(other)) = entry.fields_v1 {
            merge_fields(&mut fields, other);
        }
    }
    ours.fields_v1 = Some(FieldsV1(fields));
    kept.push(ours);
    kept
}

/// Deep union of two FieldsV1 trees.
fn merge_fields(into: &mut Json, from: Json) {
    if let (Json::Object(a), Json::Object(b)) = (into, from) {
        for (key, value) in b {
            match a.get_mut(&key) {
                Some(existing) => merge_fields(existing, value),
                None => {
                    a.insert(key, value);
                }
            }
        }
    }
}

/// Rewrites the live object's managedFields so the controller owns what manual edits set.
/// Guarded by the resourceVersion read, so a concurrent change fails the patch instead of
/// being overwritten.
pub(crate) async fn take_over(
    api: &Api<DynamicObject>,
    live: &DynamicObject,
    api_version: &str,
) -> Result<DynamicObject, kube::Error> {
    let entries = live.metadata.managed_fields.clone().unwrap_or_default();
    let rewritten = taken_over(&entries, api_version);
    let name = live.metadata.name.clone().unwrap_or_default();
    // A merge patch that names the resourceVersion it read is refused with 409 when the
    // object changed in between.
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": live.metadata.resource_version,
            "managedFields": rewritten,
        }
    });
    api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, fields: Json) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            api_version: Some("v1".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(fields)),
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: None,
            time: None,
        }
    }

    #[test]
    fn manual_edits_are_merged_into_our_apply_entry() {
        let entries = vec![
            entry(
                "sealsync",
                "Apply",
                serde_json::json!({"f:data": {"f:mode": {}}}),
            ),
            entry(
                "kubectl-edit",
                "Update",
                serde_json::json!({"f:metadata": {"f:labels": {"f:extra": {}}}}),
            ),
            entry(
                "other-controller",
                "Update",
                serde_json::json!({"f:metadata": {"f:annotations": {}}}),
            ),
            entry(
                "kubectl",
                "Apply",
                serde_json::json!({"f:data": {"f:x": {}}}),
            ),
        ];
        let out = taken_over(&entries, "v1");
        let managers: Vec<_> = out
            .iter()
            .map(|e| e.manager.clone().unwrap_or_default())
            .collect();
        assert_eq!(managers, ["other-controller", "kubectl", "sealsync"]);
        let ours = out
            .last()
            .and_then(|e| e.fields_v1.clone())
            .expect("ours")
            .0;
        assert_eq!(
            ours,
            serde_json::json!({"f:data": {"f:mode": {}}, "f:metadata": {"f:labels": {"f:extra": {}}}})
        );
    }
}
