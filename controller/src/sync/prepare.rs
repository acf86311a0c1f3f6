//! The `prepare` stage: one decrypted object made ready to apply. Its namespace is filled in
//! or removed by the kind's scope, and the owner labels name the GitSync. The full reconcile
//! and the self-heal of a single object both go through here, so both apply the same object.

use sealsync_core::{OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL};
use serde_json::Value as Json;

use crate::sync::error::Error;

/// Who an object is prepared for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Owner<'a> {
    /// The GitSync's namespace.
    pub namespace: &'a str,
    /// The GitSync's name.
    pub name: &'a str,
    /// The namespace of namespaced objects whose manifests name none.
    pub default_namespace: &'a str,
    /// The controller's own namespace, where no revision may write.
    pub controller_namespace: &'a str,
}

/// Prepares `object` (decrypted, from `location`) for apply.
pub(crate) fn prepare(
    mut object: Json,
    location: &str,
    namespaced: bool,
    owner: Owner<'_>,
) -> Result<Json, Error> {
    let meta = object
        .get_mut("metadata")
        .and_then(Json::as_object_mut)
        .ok_or_else(|| Error::Spec(format!("{location}: metadata is not a map")))?;
    if namespaced {
        if !meta.contains_key("namespace") {
            meta.insert(
                "namespace".to_owned(),
                Json::String(owner.default_namespace.to_owned()),
            );
        }
    } else {
        meta.remove("namespace");
    }
    if meta.get("namespace").and_then(Json::as_str) == Some(owner.controller_namespace) {
        // The controller's keys live there; no revision may write next to them.
        return Err(Error::Spec(format!(
            "{location}: objects in the controller's namespace {} are refused",
            owner.controller_namespace
        )));
    }
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Json::Object(Default::default()));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert(
            OWNER_NAME_LABEL.to_owned(),
            Json::String(owner.name.to_owned()),
        );
        labels.insert(
            OWNER_NAMESPACE_LABEL.to_owned(),
            Json::String(owner.namespace.to_owned()),
        );
    }
    Ok(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: Owner<'static> = Owner {
        namespace: "team",
        name: "app",
        default_namespace: "apps",
        controller_namespace: "sealsync-system",
    };

    #[test]
    fn namespaces_follow_the_scope_and_owner_labels_are_set() {
        let cm =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
        let out = prepare(cm, "c.yaml", true, OWNER).expect("prepared");
        assert_eq!(out["metadata"]["namespace"], "apps");
        assert_eq!(out["metadata"]["labels"][OWNER_NAME_LABEL], "app");
        assert_eq!(out["metadata"]["labels"][OWNER_NAMESPACE_LABEL], "team");

        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "namespace": "x"}});
        let out = prepare(ns, "n.yaml", false, OWNER).expect("prepared");
        assert!(out["metadata"].get("namespace").is_none());

        let inside = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "sealsync-system"}});
        let err = prepare(inside, "c.yaml", true, OWNER).expect_err("refused");
        assert!(err.to_string().contains("controller's namespace"), "{err}");
    }
}
