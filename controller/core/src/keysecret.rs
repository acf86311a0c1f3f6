//! The Secrets that hold cluster keys, and the names around them: written by the controller
//! (a generated key) and by `sealsync keys restore` (a key from a backup), read by both.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use sealsync_crypto::{parse_identity_file, Identity};
use zeroize::{Zeroize, Zeroizing};

/// The label on every key Secret; its value is the key's state (`active`).
pub const KEY_LABEL: &str = "sealsync.dev/sealing-key";
/// The label with the key's id, so `kubectl get secrets -L sealsync.dev/key-id` lists them.
pub const KEY_ID_LABEL: &str = "sealsync.dev/key-id";
/// The annotation with the time the key was generated (RFC 3339): it orders the keys, and
/// survives a backup and restore, unlike the Secret's creation time.
pub const CREATED_ANNOTATION: &str = "sealsync.dev/created-at";
/// The Secret key that holds an identity.
pub const IDENTITY_KEY: &str = "identity.txt";
/// The Secret of the key generated on first start.
pub const FIRST_KEY_SECRET: &str = "sealsync-key-1";
/// The ConfigMap with the public recipients.
pub const PUBLIC_KEYS_CONFIGMAP: &str = "sealsync-public-keys";
/// The ConfigMap key that holds the recipients file.
pub const RECIPIENTS_KEY: &str = "recipients.txt";
/// The Secret with the key backup, encrypted to the recovery recipients.
pub const BACKUP_SECRET: &str = "sealsync-key-backup";
/// Its data key: an armored age file.
pub const BACKUP_DATA_KEY: &str = "backup.age";
/// On the backup Secret: the key ids it holds, comma-separated, newest first.
pub const BACKUP_KEY_IDS_ANNOTATION: &str = "sealsync.dev/key-ids";
/// On the backup Secret: the key ids of the recovery recipients it is encrypted to.
pub const BACKUP_RECIPIENTS_ANNOTATION: &str = "sealsync.dev/recovery-recipients";
/// On the backup Secret: when it was written (RFC 3339).
pub const BACKUP_WRITTEN_ANNOTATION: &str = "sealsync.dev/written-at";

/// One key read from its Secret.
pub struct KeySecret {
    /// The Secret's name, which is also its SealingKey's name.
    pub name: String,
    /// When the key was generated (RFC 3339).
    pub created: String,
    /// The private key.
    pub identity: Identity,
    /// The Secret's uid, for a delete that cannot hit a replacement.
    pub uid: Option<String>,
}

impl std::fmt::Debug for KeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySecret")
            .field("name", &self.name)
            .field("key_id", self.identity.key_id())
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// A key Secret holds something that is not one identity. Its contents are never shown.
#[derive(Debug, thiserror::Error)]
#[error("Secret {namespace}/{name} is labelled {KEY_LABEL} but its {IDENTITY_KEY} is not one age identity; restore it from a backup or remove the label")]
pub struct CorruptKeySecret {
    /// The namespace.
    pub namespace: String,
    /// The Secret.
    pub name: String,
}

/// The Secret that stores `identity` as key `name` of `namespace`. Its data is key material:
/// [`wipe_secret`] it once sent.
pub fn key_secret(namespace: &str, name: &str, identity: &Identity, created: &str) -> Secret {
    let text = Zeroizing::new(format!(
        "# sealsync cluster key {}\n{}\n",
        identity.key_id(),
        identity.to_secret_string().as_str()
    ));
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([
                (KEY_LABEL.to_owned(), "active".to_owned()),
                (KEY_ID_LABEL.to_owned(), identity.key_id().to_string()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sealsync".to_owned(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                CREATED_ANNOTATION.to_owned(),
                created.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        // Only the controller reads it; immutable keeps a stray edit from replacing a key in
        // place.
        immutable: Some(true),
        data: Some(BTreeMap::from([(
            IDENTITY_KEY.to_owned(),
            ByteString(text.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Overwrites every value of `secret`.
pub fn wipe_secret(secret: &mut Secret) {
    if let Some(data) = secret.data.as_mut() {
        for v in data.values_mut() {
            v.0.zeroize();
        }
    }
    if let Some(data) = secret.string_data.as_mut() {
        for v in data.values_mut() {
            v.zeroize();
        }
    }
}

/// Reads the key of a key Secret, taking its bytes out (the rest is wiped too).
pub fn read_key_secret(
    secret: &mut Secret,
    namespace: &str,
) -> Result<KeySecret, CorruptKeySecret> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let result = read(secret, namespace, &name);
    wipe_secret(secret);
    result
}

fn read(secret: &mut Secret, namespace: &str, name: &str) -> Result<KeySecret, CorruptKeySecret> {
    let created = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CREATED_ANNOTATION).cloned())
        .or_else(|| {
            secret
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.to_string())
        })
        .unwrap_or_default();
    let corrupt = || CorruptKeySecret {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    };
    let bytes = secret
        .data
        .as_mut()
        .and_then(|d| d.remove(IDENTITY_KEY))
        .ok_or_else(corrupt)?;
    let text = Zeroizing::new(String::from_utf8(bytes.0).map_err(|e| {
        let mut bytes = e.into_bytes();
        bytes.zeroize();
        corrupt()
    })?);
    let mut identities = parse_identity_file(&text).map_err(|_| corrupt())?;
    if identities.len() != 1 {
        return Err(corrupt());
    }
    Ok(KeySecret {
        name: name.to_owned(),
        created,
        identity: identities.remove(0),
        uid: secret.metadata.uid.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_secret_reads_back_and_is_wiped() {
        let identity = Identity::generate();
        let mut secret = key_secret("keys", "sealsync-key-1", &identity, "2026-12-01T19:00:00Z");
        let read = read_key_secret(&mut secret, "keys").expect("reads");
        assert_eq!(read.identity.key_id(), identity.key_id());
        assert_eq!(read.created, "2026-12-01T19:00:00Z");
        assert!(secret.data.unwrap_or_default().is_empty());

        let mut broken = key_secret("keys", "k", &identity, "");
        if let Some(d) = broken.data.as_mut() {
            d.insert(
                IDENTITY_KEY.to_owned(),
                ByteString(b"AGE-SECRET-KEY-1NOPE".to_vec()),
            );
        }
        let err = read_key_secret(&mut broken, "keys").expect_err("corrupt");
        assert!(!err.to_string().contains("NOPE"), "{err}");
    }
}
