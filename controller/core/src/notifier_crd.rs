//! `sealsync.dev/v1` `Notifier`: where the controller tells people what its GitSyncs did.
//! A Notifier serves the GitSyncs of its own namespace that its selector picks, never another
//! namespace's; messages are built from the same reasons as status and Events, so no secret
//! value can be in one.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::crd::SecretRef;

/// A destination for notifications about the GitSyncs of its namespace.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "sealsync.dev",
    version = "v1",
    kind = "Notifier",
    plural = "notifiers",
    namespaced,
    status = "NotifierStatus",
    printcolumn = r#"{"name":"Type","type":"string","jsonPath":".spec.type"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Last delivery","type":"date","jsonPath":".status.lastDelivery"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct NotifierSpec {
    /// Where notifications go. `webhook`: JSON as Flux's events carry it, signed with
    /// HMAC-SHA256 in `X-Signature: sha256=<hex>` when the Secret has a `token` (Flux's
    /// `generic-hmac`). `slack`, `msteams`: their incoming webhooks. `github`, `gitlab`,
    /// `gitea`: a commit status on the commit a GitSync attempts.
    #[serde(rename = "type")]
    pub type_: NotifierType,
    /// The URL to post to; for the Git providers, the API's base URL, by default the public
    /// service's (`https://api.github.com`, `https://gitlab.com`, `https://gitea.com`). An
    /// `address` in the Secret wins (Slack's and Teams' URLs are credentials).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub address: Option<String>,
    /// A Secret of this namespace: `token` (the HMAC key of a `webhook`, the API token of a
    /// Git provider), `address`, and `ca.crt`, the CA bundle the server's certificate is
    /// checked against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// For the Git providers, `owner/name` (a GitLab group path included): by default the
    /// path of the GitSync's URL without `.git`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512))]
    pub repository: Option<String>,
    /// The GitSyncs of this namespace it serves; empty means all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// The events it sends; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<NotifyEvent>,
    /// `info` sends everything; `error` only failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

/// The kinds of Notifier.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifierType {
    /// A JSON POST signed with HMAC-SHA256, as Flux's `generic-hmac` provider sends.
    Webhook,
    /// A Slack incoming webhook.
    Slack,
    /// A Microsoft Teams incoming webhook (an Adaptive Card).
    Msteams,
    /// GitHub commit statuses.
    Github,
    /// GitLab commit statuses.
    Gitlab,
    /// Gitea (and Forgejo) commit statuses.
    Gitea,
}

impl NotifierType {
    /// The name in `spec.type` and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            NotifierType::Webhook => "webhook",
            NotifierType::Slack => "slack",
            NotifierType::Msteams => "msteams",
            NotifierType::Github => "github",
            NotifierType::Gitlab => "gitlab",
            NotifierType::Gitea => "gitea",
        }
    }
}

/// What a GitSync did.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyEvent {
    /// A new revision was fetched and is being applied (a commit status's `pending`).
    Progressing,
    /// A revision was applied.
    Applied,
    /// A revision failed (any reason but the two below).
    Failed,
    /// A manual edit was undone.
    DriftCorrected,
    /// The cluster generated a new current key (to the Notifiers of the controller's
    /// namespace, where the SealingKeys are).
    KeyRotated,
    /// The revision's objects became healthy (`spec.wait`, `spec.healthChecks`).
    Healthy,
    /// The revision's objects did not become healthy.
    Unhealthy,
    /// `spec.verify` did not accept the revision.
    VerificationFailed,
}

impl NotifyEvent {
    /// The name in `spec.events`.
    pub fn name(self) -> &'static str {
        match self {
            NotifyEvent::Progressing => "progressing",
            NotifyEvent::Applied => "applied",
            NotifyEvent::Failed => "failed",
            NotifyEvent::DriftCorrected => "drift-corrected",
            NotifyEvent::KeyRotated => "key-rotated",
            NotifyEvent::Healthy => "healthy",
            NotifyEvent::Unhealthy => "unhealthy",
            NotifyEvent::VerificationFailed => "verification-failed",
        }
    }

    /// How severe it is.
    pub fn severity(self) -> Severity {
        match self {
            NotifyEvent::Progressing
            | NotifyEvent::Applied
            | NotifyEvent::Healthy
            | NotifyEvent::DriftCorrected
            | NotifyEvent::KeyRotated => Severity::Info,
            NotifyEvent::Failed | NotifyEvent::Unhealthy | NotifyEvent::VerificationFailed => {
                Severity::Error
            }
        }
    }
}

/// How severe an event is.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Everything.
    Info,
    /// Failures only.
    Error,
}

impl Severity {
    /// As Flux's events spell it.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Error => "error",
        }
    }
}

/// What the controller knows of a Notifier's deliveries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotifierStatus {
    /// `Ready`: its address and Secret are usable, and whether the last delivery succeeded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When the last notification was delivered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_delivery: Option<Time>,
    /// Why the last delivery failed, if it did (the HTTP status or the connection's failure,
    /// never a body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
