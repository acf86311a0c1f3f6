//! The sealed document as an in-cluster resource: `sealsync.dev/v1` `SealedSecret`, the same
//! document `sealsync seal` writes, applied by Argo CD, Flux, `kubectl` or a Helm chart. The
//! controller opens it with the cluster keys and writes the Secret it describes, owned by the
//! resource. These types give the resource its schema; `sealsync-crypto`'s wire form is what
//! the controller reads, and a test checks that both accept the same documents.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The label on a Secret written for a SealedSecret resource: the resource's name.
pub const SEALED_SECRET_LABEL: &str = "sealsync.dev/sealed-secret";
/// Set to `"true"` on an existing Secret that no SealedSecret owns, to let one take it over.
pub const MANAGED_ANNOTATION: &str = "sealsync.dev/managed";

/// A Secret sealed to the cluster's keys, opened in the cluster: the document `sealsync seal`
/// writes, as a resource any tool may apply.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "sealsync.dev",
    version = "v1",
    kind = "SealedSecret",
    root = "SealedSecretResource",
    plural = "sealedsecrets",
    namespaced,
    status = "SealedSecretStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Message","type":"string","priority":1,"jsonPath":".status.conditions[?(@.type==\"Ready\")].message"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretResourceSpec {
    /// Where the values may be opened: `strict` (this name in this namespace), `namespace`
    /// (any name in this namespace) or `cluster`.
    pub scope: SealedScope,
    /// The unencrypted parts of the Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<SealedTemplate>,
    /// The wrapped data keys.
    pub envelopes: Vec<SealedEnvelope>,
    /// `ENVELOPE_ID:BASE64_CIPHERTEXT` by data key name.
    pub encrypted_data: BTreeMap<String, String>,
}

/// What sealed values are bound to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SealedScope {
    /// This name in this namespace.
    Strict,
    /// Any name in this namespace.
    Namespace,
    /// Anywhere.
    Cluster,
}

/// The unencrypted parts of the Secret to write.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedTemplate {
    /// The Secret's `type`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The Secret's `immutable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// The Secret's labels and annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<SealedTemplateMeta>,
}

/// Labels and annotations for the Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedTemplateMeta {
    /// Labels for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One wrapped data key.
#[derive(Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedEnvelope {
    /// Derived from the data key; values name their envelope by it.
    pub id: String,
    /// Key ids of the recipients the data key is wrapped to.
    pub recipients: Vec<String>,
    /// The age-encrypted data key and binding, base64.
    pub wrapped_key: String,
}

/// What the controller made of a SealedSecret resource.
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// `Ready`: the Secret holds the values of this generation, or why not (`reason` as a
    /// GitSync's: `DecryptionFailed`, `Conflict`, `ApiFailed`, `InvalidSpec`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The ids of the cluster keys that opened it: what key retirement counts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
}

impl SealedSecretStatus {
    /// The condition of `type_`, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document as `sealsync seal` writes it, and as the cluster returns it, reads as the
    /// resource and as the sealed format alike.
    #[test]
    fn the_sealed_document_is_the_resource() {
        let text = "apiVersion: sealsync.dev/v1\nkind: SealedSecret\nmetadata:\n  name: db\n  namespace: app\n  uid: 0d5a\n  resourceVersion: \"7\"\nspec:\n  scope: strict\n  template:\n    type: Opaque\n    metadata:\n      labels: {app: db}\n  envelopes:\n  - id: 1f15d5ea5661c79c\n    recipients: [47945b10246d38b8]\n    wrappedKey: YWdl\n  encryptedData:\n    password: 1f15d5ea5661c79c:7vyv\nstatus:\n  keyIds: [47945b10246d38b8]\n";
        let resource: SealedSecretResource = serde_yaml::from_str(text).expect("resource");
        assert_eq!(resource.spec.scope, SealedScope::Strict);
        assert_eq!(resource.spec.encrypted_data.len(), 1);
        let wire: sealsync_crypto::SealedSecretWire = serde_yaml::from_str(text).expect("wire");
        assert_eq!(wire.metadata.name, "db");
        // And back: what the resource serializes is a document of the format.
        let again = serde_yaml::to_value(&resource).expect("yaml");
        let wire: sealsync_crypto::SealedSecretWire = serde_yaml::from_value(again).expect("wire");
        assert_eq!(wire.spec.encrypted_data.len(), 1);
    }
}
