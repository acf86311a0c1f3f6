//! The writes a user makes to a GitSync, shared by `sealsync sync`, `suspend`, `resume` and
//! the buttons of `sealsync ui`. Each is one merge patch sent with the user's own
//! credentials, so the API server's authorization decides, as it does for kubectl.

use kube::api::{Api, Patch, PatchParams};
use sealsync_core::{GitSync, REQUESTED_AT_ANNOTATION};

/// Asks the controller for a reconcile of `name` now, as `flux reconcile` does: sets the
/// `sealsync.dev/requestedAt` annotation to a fresh value, which the controller echoes in
/// `status.lastHandledReconcileAt` once handled. Returns that value.
pub async fn request_reconcile(api: &Api<GitSync>, name: &str) -> Result<String, kube::Error> {
    let requested = now_token();
    let patch = serde_json::json!({
        "metadata": {"annotations": {REQUESTED_AT_ANNOTATION: requested}}
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(requested)
}

/// Sets `spec.suspend` of `name`: a suspended GitSync is neither synced nor healed.
pub async fn set_suspended(
    api: &Api<GitSync>,
    name: &str,
    suspend: bool,
) -> Result<GitSync, kube::Error> {
    let patch = serde_json::json!({"spec": {"suspend": suspend}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// A value that tells two requests apart; it is echoed, never parsed.
fn now_token() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}
