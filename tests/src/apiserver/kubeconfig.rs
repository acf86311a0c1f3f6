//! Kubeconfig documents for the test server.

use std::path::Path;

use super::error::TestClusterError;

/// The cluster, context and user name used in generated kubeconfigs.
pub const NAME: &str = "sealsync-testcluster";

/// A kubeconfig with one cluster (`server`), one token user and a current context whose
/// default namespace is `default`.
pub fn kubeconfig(server: &str, token: &str) -> serde_yaml::Value {
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": NAME, "cluster": {"server": server}}],
        "users": [{"name": format!("{NAME}-admin"), "user": {"token": token}}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": format!("{NAME}-admin"), "namespace": "default"}}],
        "current-context": NAME,
    });
    serde_yaml::to_value(doc).unwrap_or(serde_yaml::Value::Null)
}

/// Like [`kubeconfig`], for an HTTPS server whose certificate `ca_data` (base64 of a PEM CA)
/// signed.
pub fn kubeconfig_with_ca(server: &str, token: &str, ca_data: &str) -> serde_yaml::Value {
    let mut doc = kubeconfig(server, token);
    if let Some(cluster) = doc
        .get_mut("clusters")
        .and_then(|c| c.get_mut(0))
        .and_then(|c| c.get_mut("cluster"))
        .and_then(|c| c.as_mapping_mut())
    {
        cluster.insert("certificate-authority-data".into(), ca_data.into());
    }
    doc
}

/// Writes `doc` to `path` (mode 0600, like kubectl's own files).
pub fn write(path: &Path, doc: &serde_yaml::Value) -> Result<(), TestClusterError> {
    let text =
        serde_yaml::to_string(doc).map_err(|e| TestClusterError::Kubeconfig(e.to_string()))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| TestClusterError::io(format!("creating {}", parent.display()), e))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .map_err(|e| TestClusterError::io(format!("writing {}", tmp.display()), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    }
    // Rename so a reader polling for the file never sees a half-written one.
    std::fs::rename(&tmp, path)
        .map_err(|e| TestClusterError::io(format!("renaming to {}", path.display()), e))
}

/// The server URL of the current context of a kubeconfig document.
pub fn current_server(doc: &serde_yaml::Value) -> Option<String> {
    let ctx_name = doc.get("current-context")?.as_str()?;
    let ctx = doc
        .get("contexts")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(ctx_name))?;
    let cluster_name = ctx.get("context")?.get("cluster")?.as_str()?;
    let cluster = doc
        .get("clusters")?
        .as_sequence()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(cluster_name))?;
    Some(cluster.get("cluster")?.get("server")?.as_str()?.to_string())
}
