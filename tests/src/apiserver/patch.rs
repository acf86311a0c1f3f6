//! JSON merge patch, JSON patch and strategic merge patch.

use serde_json::Value;

/// Why a patch could not be applied (HTTP 422 or 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch document itself is malformed.
    #[error("malformed patch: {0}")]
    Malformed(String),
    /// A JSON patch `test` failed or a path did not exist.
    #[error("patch failed: {0}")]
    Failed(String),
}

/// RFC 7386 JSON merge patch.
pub fn json_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let _ = (target, patch);
    Err(PatchError::Malformed("not implemented yet".into()))
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let _ = (target, patch);
    Err(PatchError::Malformed("not implemented yet".into()))
}

/// Strategic merge patch as kubectl sends it, for the given apiVersion and kind.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    let _ = (target, patch, api_version, kind);
    Err(PatchError::Malformed("not implemented yet".into()))
}
