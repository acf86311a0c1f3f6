//! Server-side apply and managedFields bookkeeping.
//!
//! Pure functions over `serde_json::Value`: the HTTP layer owns metadata such as
//! resourceVersion, uid and generation; this module owns the object content and
//! `metadata.managedFields`.

use serde_json::Value;

/// One field that another manager owns, reported on an apply conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager that owns the field now.
    pub manager: String,
    /// The field path in the Kubernetes message style, e.g. `.spec.replicas` or
    /// `.data.password`.
    pub field: String,
}

/// Why an apply or update could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldManagerError {
    /// Fields owned by other managers would change and `force` was not set (HTTP 409).
    #[error("apply conflicts with {} field(s) owned by other managers", .0.len())]
    Conflict(Vec<FieldConflict>),
    /// The applied configuration is not a valid object (HTTP 400/422).
    #[error("invalid applied configuration: {0}")]
    Invalid(String),
}

/// Server-side apply of `applied` by `manager` onto `live` (None when the object does not exist).
///
/// Returns the merged object with `metadata.managedFields` updated. `now` is an RFC 3339 time
/// stamp for the managedFields entry.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, FieldManagerError> {
    let _ = (live, applied, manager, force, now);
    Err(FieldManagerError::Invalid("server-side apply is not implemented yet".into()))
}

/// Records an `Update` operation (create, replace, or a non-apply patch) by `manager`:
/// the fields that changed between `old` and `new` move to `manager`. `subresource` is
/// `Some("status")` for status writes. Returns `new` with managedFields set.
pub fn record_update(
    old: Option<&Value>,
    new: Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) -> Value {
    let _ = (old, manager, subresource, now);
    new
}
