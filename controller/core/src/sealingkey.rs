//! The `SealingKey` custom resource (`sealsync.dev/v1`): one cluster sealing key as a security
//! team sees it with kubectl, without its private part.
//!
//! The private key lives in a Secret of the same name and namespace that only the controller
//! reads; the SealingKey shows its id, recipient, state and which synced documents it opens.
//! Creating a SealingKey (with any name, spec empty) asks the controller to generate a new key
//! inside the cluster: that is rotation. Setting [`RETIRE_REQUESTED_AT_ANNOTATION`] asks the
//! controller to retire it, which it refuses while a synced document needs the key.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Set on a SealingKey (to any new value, such as the time) to ask the controller to retire
/// the key; the controller echoes the value in `status.lastHandledRetireAt` once it has
/// decided, and reports a refusal in the `Retired` condition.
pub const RETIRE_REQUESTED_AT_ANNOTATION: &str = "sealsync.dev/retireRequestedAt";
/// The most documents a SealingKey's status lists by name; `documents` counts them all.
pub const MAX_LISTED_DOCUMENTS: usize = 50;

/// A cluster sealing key. Its private part stays in the Secret of the same name.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "sealsync.dev",
    version = "v1",
    kind = "SealingKey",
    plural = "sealingkeys",
    shortname = "sk",
    namespaced,
    status = "SealingKeyStatus",
    printcolumn = r#"{"name":"Key ID","type":"string","jsonPath":".status.keyId"}"#,
    printcolumn = r#"{"name":"State","type":"string","jsonPath":".status.state"}"#,
    printcolumn = r#"{"name":"Current","type":"boolean","jsonPath":".status.current"}"#,
    printcolumn = r#"{"name":"Documents","type":"integer","jsonPath":".status.documents"}"#,
    printcolumn = r#"{"name":"Created","type":"date","jsonPath":".status.created"}"#,
    printcolumn = r#"{"name":"Recipient","type":"string","priority":1,"jsonPath":".status.recipient"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SealingKeySpec {}

/// The states of a key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum KeyState {
    /// The controller opens documents with it; `keys fetch` publishes it.
    Active,
    /// Retired: its private part was deleted and documents sealed only to it no longer open.
    Retired,
    /// The status names a key whose Secret is gone although it was never retired: restore it
    /// from a backup (`sealsync keys restore`).
    Missing,
}

impl KeyState {
    /// The state as the status spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Active => "Active",
            KeyState::Retired => "Retired",
            KeyState::Missing => "Missing",
        }
    }
}

/// What the controller reports about a key. Written only through the status subresource, so
/// that nobody who may merely create SealingKeys can claim a key id.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealingKeyStatus {
    /// The key id documents list (16 hex digits of SHA-256 over the recipient).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// The public recipient (`age1…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// `Active`, `Retired` or `Missing`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<KeyState>,
    /// Whether new documents are sealed to this key: the newest active key, the one
    /// `sealsync keys fetch` prints first.
    #[serde(default)]
    pub current: bool,
    /// When the key was generated (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// When the key was retired (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired: Option<String>,
    /// How many synced SealedSecrets this key opened (the newest key that opens a document is
    /// the one counted).
    #[serde(default)]
    pub documents: u32,
    /// Which ones, by GitSync and file: at most 50 are listed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub used_by: Vec<KeyUse>,
    /// Since when no synced document has needed this active key (RFC 3339): what
    /// `--retire-unused-after` measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unused_since: Option<String>,
    /// The value of the retire request annotation the controller last decided on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_retire_at: Option<String>,
    /// `Ready` (the private key is loaded) and `Retired` (with the reason of a refusal).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One synced document a key opens.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyUse {
    /// The GitSync, as `namespace/name`.
    pub git_sync: String,
    /// The file in its repository.
    pub file: String,
    /// The Secret it became, as `namespace/name`.
    pub secret: String,
}

impl SealingKeyStatus {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}
