//! The parts of a GitSync's spec and status about health: which objects a revision waits
//! for, and which of them are not healthy.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The annotation that orders a revision's objects in waves (`"<integer>"`, default 0).
pub const WAVE_ANNOTATION: &str = "sealsync.dev/wave";

/// An object a GitSync waits for before it is Ready, as Flux's `healthChecks` names one.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckRef {
    /// Its API version, such as `apps/v1`.
    #[schemars(length(min = 1, max = 316))]
    pub api_version: String,
    /// Its kind, such as `Deployment`.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Its name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace; default: the namespace of namespaced objects whose manifests name none.
    /// An object the revision does not hold is read with the GitSync's own permissions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

/// One object that was not healthy when the GitSync last looked.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnhealthyObject {
    /// Its API version.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
    /// Its namespace, for a namespaced object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// `InProgress`, `Failed`, `Terminating` or `NotFound`.
    pub status: String,
    /// What it waits for, or why it failed (counts and reasons, never a value).
    pub message: String,
}

impl UnhealthyObject {
    /// `Job db/migrate is Failed (the Job failed); …` for at most five of `objects`, then how
    /// many more `status.health` lists.
    pub fn summarize(objects: &[UnhealthyObject]) -> String {
        let mut text = objects
            .iter()
            .take(5)
            .map(|o| format!("{} is {} ({})", o.describe(), o.status, o.message))
            .collect::<Vec<_>>()
            .join("; ");
        if objects.len() > 5 {
            text.push_str(&format!(
                "; and {} more in status.health",
                objects.len() - 5
            ));
        }
        text
    }

    /// `Kind namespace/name` (or `Kind name`), as messages name it.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{} {ns}/{}", self.kind, self.name),
            None => format!("{} {}", self.kind, self.name),
        }
    }
}

/// A GitSync this one waits for: it is reconciled only once that one is Ready at the
/// revision it last tried.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyRef {
    /// Its name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Its namespace; default: this GitSync's. Only GitSyncs of the trusted namespaces
    /// (`--trusted-namespaces`) may wait for one of another namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub namespace: Option<String>,
}

/// What the controller does when a revision does not become healthy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthFailurePolicy {
    /// Leave the revision applied, report it, and retry it.
    #[default]
    Keep,
    /// Apply the last revision that was healthy again, and do not retry the failed one until
    /// a new commit or `sealsync sync`.
    Rollback,
}

/// How objects of one kind are judged healthy, by CEL expressions over the object (`self`),
/// in Flux's shape. Evaluated in the order `inProgress`, `failed`, `current`: the first that is
/// true decides; when none is, the object is still in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheckExpr {
    /// The objects' API version, such as `example.com/v1`.
    #[schemars(length(min = 1, max = 316))]
    pub api_version: String,
    /// Their kind.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// True when the object is healthy, such as
    /// `self.status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')`.
    #[schemars(length(min = 1, max = 1024))]
    pub current: String,
    /// True while it is on its way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub in_progress: Option<String>,
    /// True when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub failed: Option<String>,
}
