//! The GitSync fields of signature verification: `spec.verify` and the signers the status
//! records.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::SecretRef;

/// Which objects must carry a trusted signature before anything of a revision is rendered,
/// decrypted, resolved or applied (Flux's `spec.verify`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifySpec {
    /// `HEAD` (the default): the commit applied. `Tag`: the annotated tag of `spec.ref.tag`.
    /// `TagAndHEAD`: both.
    #[serde(default)]
    pub mode: VerifyMode,
    /// A Secret in the GitSync's namespace whose entries are the trusted keys: `NAME.sshpub`
    /// (`authorized_keys` or `allowed_signers` lines; SSH signatures in the `git` namespace)
    /// and `NAME.asc` (armored OpenPGP public keys, subkeys, expiry and revocations honoured).
    pub secret_ref: SecretRef,
}

/// What `spec.verify` checks.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
pub enum VerifyMode {
    /// The commit the revision points at.
    #[default]
    #[serde(rename = "HEAD")]
    Head,
    /// The annotated tag `spec.ref.tag` names.
    Tag,
    /// The tag and the commit it points at.
    TagAndHEAD,
}

impl VerifyMode {
    /// Whether the commit's own signature is checked.
    pub fn checks_commit(self) -> bool {
        matches!(self, VerifyMode::Head | VerifyMode::TagAndHEAD)
    }

    /// Whether the tag's signature is checked.
    pub fn checks_tag(self) -> bool {
        matches!(self, VerifyMode::Tag | VerifyMode::TagAndHEAD)
    }

    /// As written in the spec.
    pub fn as_str(self) -> &'static str {
        match self {
            VerifyMode::Head => "HEAD",
            VerifyMode::Tag => "Tag",
            VerifyMode::TagAndHEAD => "TagAndHEAD",
        }
    }
}

/// Who signed one object of a verified revision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionSigner {
    /// `commit` or `tag`.
    pub object: String,
    /// The commit or tag object id.
    pub id: String,
    /// `ssh` or `openpgp`.
    pub method: String,
    /// The fingerprint of the key that signed: `SHA256:…` for SSH, hex for OpenPGP (the
    /// subkey's, when a subkey signed).
    pub fingerprint: String,
    /// For an OpenPGP subkey, its primary key's fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_fingerprint: Option<String>,
    /// The entry of the keys Secret that holds the key.
    pub key: String,
    /// The OpenPGP user ID or the SSH key's comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

impl RevisionSigner {
    /// `commit 5d1e0c2a9b7f signed by SSH key SHA256:… (alice.sshpub, alice@example.com)`: one
    /// line, for the `SourceVerified` condition and for `sealsync status`.
    pub fn describe(&self) -> String {
        let method = if self.method == "ssh" {
            "SSH"
        } else {
            "OpenPGP"
        };
        let id = self.id.get(..12).unwrap_or(&self.id);
        let who = match &self.identity {
            Some(identity) => format!("{}, {identity}", self.key),
            None => self.key.clone(),
        };
        format!(
            "{} {id} signed by {method} key {} ({who})",
            self.object, self.fingerprint
        )
    }
}
