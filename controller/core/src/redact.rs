//! Masking Secret values for display, as Flux and Argo CD mask them in diffs.

use serde_json::Value as Json;

/// What a masked value prints as.
pub const MASK: &str = "***";

/// Replaces every value under `data` and `stringData` of a `v1` Secret with [`MASK`], and
/// drops kubectl's last-applied copy, which repeats them. Values that hold Vault references
/// are shown as they are: a reference names a path, not a value. Other objects are left as
/// they are.
pub fn mask_secret(object: &mut Json) {
    let is_secret = object["apiVersion"] == "v1" && object["kind"] == "Secret";
    if !is_secret {
        return;
    }
    let references: Vec<(&'static str, String)> = crate::vaultref::secret_values(object)
        .map(|v| {
            v.references
                .into_iter()
                .map(|r| (r.source.field(), r.key))
                .collect()
        })
        .unwrap_or_default();
    for field in ["data", "stringData"] {
        if let Some(Json::Object(values)) = object.get_mut(field) {
            for (key, value) in values.iter_mut() {
                if references.iter().any(|(f, k)| *f == field && k == key) {
                    continue;
                }
                crate::render::wipe_json(value);
                *value = Json::String(MASK.to_owned());
            }
        }
    }
    if let Some(Json::Object(annotations)) = object
        .get_mut("metadata")
        .and_then(|m| m.get_mut("annotations"))
    {
        annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_secret_values_only() {
        let mut secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "aHVudGVyMg=="}, "stringData": {"b": "hunter2"}
        });
        mask_secret(&mut secret);
        assert_eq!(secret["data"]["a"], MASK);
        assert_eq!(secret["stringData"]["b"], MASK);
        let mut cm =
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "x"}});
        mask_secret(&mut cm);
        assert_eq!(cm["data"]["a"], "x");
    }

    #[test]
    fn references_are_shown_unresolved() {
        let mut secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"a": "ref+vault://secret/db#password", "b": "hunter2"}
        });
        mask_secret(&mut secret);
        assert_eq!(secret["stringData"]["a"], "ref+vault://secret/db#password");
        assert_eq!(secret["stringData"]["b"], MASK);
    }
}
