//! The `decrypt` stage: every SealedSecret of the revision becomes a Secret, in memory only,
//! and plaintext Secrets in Git are refused unless the GitSync allows them.

use sealsync_core::manifest::{
    sealed_from_manifest, secret_to_manifest, wipe_value, ManifestError,
};
use sealsync_core::render::Manifest;
use sealsync_core::SealedSecretUsage;
use sealsync_crypto::OpenOptions;

use crate::keys::KeyRing;
use serde_json::Value as Json;

/// Why a revision could not be decrypted. Messages name the file and document, never a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum DecryptError {
    /// A SealedSecret could not be opened: wrong key, tampered, moved.
    #[error("{location}")]
    Open {
        /// `file: document`.
        location: String,
        /// What the format found.
        #[source]
        source: ManifestError,
    },
    /// A SealedSecret is sealed only to keys this cluster retired.
    #[error("{location}: it is sealed to key(s) {retired}, which this cluster retired (the private key is deleted), and to no current key; reseal it to the current keys (`sealsync keys fetch`, then `sealsync reseal -i` with a recovery identity it is also sealed to) or seal its values again with `sealsync seal`")]
    RetiredKey {
        /// `file: document`.
        location: String,
        /// `KEYID (retired DATE)`, comma-separated.
        retired: String,
    },
    /// A SOPS document did not open: no cluster key, a failed MAC, a value altered.
    #[error(transparent)]
    Sops(Box<sealsync_core::sops::SopsError>),
    /// A Secret in Git holds values in plaintext.
    #[error("{location}: a plaintext Secret in Git ({keys}); seal it with `sealsync seal` or put Vault references in its values (or set spec.allowPlaintextSecrets: true to apply it as it is)")]
    Plaintext {
        /// `file: document`.
        location: String,
        /// The fields with literal values, as `stringData.KEY`.
        keys: String,
    },
}

impl From<sealsync_core::sops::SopsError> for DecryptError {
    fn from(error: sealsync_core::sops::SopsError) -> Self {
        DecryptError::Sops(Box::new(error))
    }
}

/// What [`open`] made of one object.
pub(crate) enum Opened {
    /// Not a SealedSecret: applied as it is.
    Plain,
    /// A SealedSecret, opened: its Secret (plaintext), and the keys that opened it.
    Sealed {
        /// The Secret.
        secret: Json,
        /// For `status.sealedSecrets`.
        usage: SealedSecretUsage,
    },
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Opened::Plain => f.write_str("Plain"),
            Opened::Sealed { usage, .. } => f
                .debug_struct("Sealed")
                .field("usage", usage)
                .finish_non_exhaustive(),
        }
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        if let Opened::Sealed { secret, .. } = self {
            sealsync_core::render::wipe_json(secret);
        }
    }
}

/// Whether `m` is a SealedSecret: its values are opened, never read as Vault references.
pub(crate) fn is_sealed(m: &Manifest) -> bool {
    is_sealed_object(&m.object)
}

/// Whether `object` is a SealedSecret.
pub(crate) fn is_sealed_object(object: &Json) -> bool {
    object["apiVersion"] == sealsync_crypto::API_VERSION && object["kind"] == sealsync_crypto::KIND
}

/// The fields of a `v1` Secret manifest that carry literal values; values that hold Vault
/// references are not plaintext. A malformed reference is reported by the vault stage.
fn plaintext_fields(object: &Json) -> Vec<String> {
    if object["apiVersion"] != "v1" || object["kind"] != "Secret" {
        return Vec::new();
    }
    let mut fields: Vec<String> = ["data", "stringData"]
        .into_iter()
        .filter(|field| !matches!(&object[*field], Json::Object(_) | Json::Null))
        .map(str::to_owned)
        .collect();
    if let Ok(values) = sealsync_core::vaultref::secret_values(object) {
        fields.extend(values.literal);
    }
    fields
}

/// Why `sealed` did not open: a document sealed only to retired keys gets a message that says
/// so; anything else is reported as the format found it.
fn open_failure(
    location: &str,
    sealed: &sealsync_crypto::SealedSecret,
    ring: &KeyRing,
    error: sealsync_crypto::Error,
) -> DecryptError {
    if matches!(error, sealsync_crypto::Error::NoMatchingIdentity { .. }) {
        let listed = sealed.key_ids();
        let current: Vec<String> = ring.key_ids();
        let retired: Vec<String> = listed
            .iter()
            .filter_map(|id| {
                ring.retired
                    .get(id)
                    .map(|at| format!("{id} (retired {at})"))
            })
            .collect();
        if !retired.is_empty() && !listed.iter().any(|id| current.contains(&id.to_string())) {
            return DecryptError::RetiredKey {
                location: location.to_owned(),
                retired: retired.join(", "),
            };
        }
    }
    DecryptError::Open {
        location: location.to_owned(),
        source: error.into(),
    }
}

/// Opens `object` (at `location`, from `file`) if it is a SealedSecret, with the keys of
/// `ring`, newest first; without a namespace it is opened for `default_namespace`, where it
/// will be applied. Any other object is checked for plaintext values, refused unless
/// `allow_plaintext`.
pub(crate) fn open(
    object: &Json,
    location: &str,
    file: &str,
    ring: &KeyRing,
    default_namespace: &str,
    allow_plaintext: bool,
) -> Result<Opened, DecryptError> {
    if !is_sealed_object(object) {
        if !allow_plaintext {
            let fields = plaintext_fields(object);
            if !fields.is_empty() {
                return Err(DecryptError::Plaintext {
                    location: location.to_owned(),
                    keys: fields.join(", "),
                });
            }
        }
        return Ok(Opened::Plain);
    }
    let open_err = |source: ManifestError| DecryptError::Open {
        location: location.to_owned(),
        source,
    };
    let yaml: serde_yaml::Value = serde_yaml::to_value(object).map_err(|_| DecryptError::Open {
        location: location.to_owned(),
        source: ManifestError::Malformed {
            location: "the document".to_owned(),
            reason: "not representable as YAML".to_owned(),
        },
    })?;
    let sealed = sealed_from_manifest(&yaml).map_err(open_err)?;
    let opened = sealed
        .open(
            ring.identities(),
            &OpenOptions {
                default_namespace: Some(default_namespace),
            },
        )
        .map_err(|e| open_failure(location, &sealed, ring, e))?;
    // The YAML form holds the values in base64: wiped once converted.
    let mut manifest = secret_to_manifest(&opened.secret);
    let converted = serde_json::to_value(&manifest);
    wipe_value(&mut manifest);
    let secret = converted.map_err(|_| DecryptError::Open {
        location: location.to_owned(),
        source: ManifestError::Malformed {
            location: "the opened Secret".to_owned(),
            reason: "not representable as JSON".to_owned(),
        },
    })?;
    let usage = SealedSecretUsage {
        file: file.to_owned(),
        secret: format!(
            "{}/{}",
            opened
                .secret
                .namespace
                .as_deref()
                .unwrap_or(default_namespace),
            opened.secret.name
        ),
        key_ids: opened.opened_by.iter().map(|k| k.to_string()).collect(),
    };
    Ok(Opened::Sealed { secret, usage })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(object: Json) -> Manifest {
        Manifest {
            file: "db.yaml".to_owned(),
            document: "document 1 (Secret app/db)".to_owned(),
            object,
        }
    }

    fn decrypt(
        manifests: &[Manifest],
        ring: &KeyRing,
        default_namespace: &str,
        allow_plaintext: bool,
    ) -> Result<Vec<Opened>, DecryptError> {
        manifests
            .iter()
            .map(|m| {
                open(
                    &m.object,
                    &m.location(),
                    &m.file,
                    ring,
                    default_namespace,
                    allow_plaintext,
                )
            })
            .collect()
    }

    #[test]
    fn values_with_vault_references_are_not_plaintext() {
        let refs_only = manifest(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app"},
            "stringData": {"password": "ref+vault://secret/db#password", "url": "pg://<path:secret/data/db#user>@h"},
        }));
        let opened = decrypt(
            std::slice::from_ref(&refs_only),
            &KeyRing::default(),
            "app",
            false,
        )
        .expect("not plaintext");
        assert!(matches!(opened.as_slice(), [Opened::Plain]));

        let mixed = manifest(serde_json::json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "app"},
            "stringData": {"password": "ref+vault://secret/db#password", "user": "admin"},
            "data": {"other": "c2VjcmV0"},
        }));
        let err = decrypt(
            std::slice::from_ref(&mixed),
            &KeyRing::default(),
            "app",
            false,
        )
        .expect_err("plaintext");
        assert_eq!(
            err.to_string(),
            "db.yaml: document 1 (Secret app/db): a plaintext Secret in Git (data.other, stringData.user); seal it with `sealsync seal` or put Vault references in its values (or set spec.allowPlaintextSecrets: true to apply it as it is)"
        );
        assert!(decrypt(
            std::slice::from_ref(&mixed),
            &KeyRing::default(),
            "app",
            true
        )
        .is_ok());
    }
}
