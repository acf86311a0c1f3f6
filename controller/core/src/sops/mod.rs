//! SOPS-encrypted manifests (sops v3 with age recipients), opened with the cluster's keys.
//!
//! A Flux user keeps Secrets in Git encrypted by `sops`; adding the cluster's age recipient to
//! a file's `sops.age` list is all it takes for sealsync to apply it. The cryptography (the
//! data key, `ENC[AES256_GCM,…]` values, the MAC) is `sealsync-crypto`'s; this module walks the
//! document as sops does:
//!
//! - The selection rule in the metadata (`unencrypted_suffix`, the default `_unencrypted`;
//!   `encrypted_suffix`; `unencrypted_regex`; `encrypted_regex`) is tested against every key on a
//!   value's path, ancestors included. A value the rule encrypts must be an `ENC[…]` string (or
//!   empty, or null); plaintext there is refused, naming the field.
//! - A value's additional data is its path of map keys joined by `:` with a trailing `:`; list
//!   positions are not part of it.
//! - The MAC covers the plaintext of the values in document order (only the encrypted ones with
//!   `mac_only_encrypted`) and is checked before any value is returned.
//!
//! The MAC needs the document as written, in its order: [`open_document`] checks it on the
//! file. A renderer may then change the document (kustomize sets a namespace or labels,
//! post-build substitution fills variables), so a rendered copy is opened against the source
//! it was verified as ([`Provenance::RenderedFrom`]): same MAC, and only encrypted values the
//! source holds, each at its own path. Errors name the file and field, never a value.

mod error;
mod metadata;
mod walk;

#[cfg(test)]
mod tests;

use std::collections::HashSet;

use serde_json::Value as Json;
use serde_yaml::Value;

use sealsync_crypto::{open_sops_data_key, Identity, KeyId, SopsDataKey};

pub use error::SopsError;
pub use metadata::SopsMetadata;
use walk::Walk;

/// The top-level key that holds the metadata.
pub const METADATA_KEY: &str = "sops";

/// Whether `document` is SOPS-encrypted: a mapping with a `sops` mapping at the top.
pub fn is_sops_document(document: &Value) -> bool {
    document.get(METADATA_KEY).is_some_and(Value::is_mapping)
}

/// Whether the rendered `object` is SOPS-encrypted.
pub fn is_sops_object(object: &Json) -> bool {
    object.get(METADATA_KEY).is_some_and(Json::is_object)
}

/// A SOPS document whose MAC was checked, as written in its file: what a rendered copy of it
/// is opened against.
pub struct VerifiedSops {
    key: SopsDataKey,
    key_id: KeyId,
    mac: String,
    values: HashSet<String>,
}

impl std::fmt::Debug for VerifiedSops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedSops")
            .field("key_id", &self.key_id)
            .field("values", &self.values.len())
            .finish_non_exhaustive()
    }
}

impl VerifiedSops {
    /// The id of the cluster key that opened it.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// Its `sops.mac`, which no other file holds (its IV is random): how a rendered copy is
    /// matched to the file it came from.
    pub fn mac(&self) -> &str {
        &self.mac
    }
}

/// Where a document to open comes from, which says how its integrity is known.
#[derive(Debug, Clone, Copy)]
pub enum Provenance<'a> {
    /// As written in its file: its MAC is checked.
    AsWritten,
    /// A rendered copy of a document verified as written: its `sops.mac` must be that
    /// document's and every encrypted value one that document holds.
    RenderedFrom(&'a VerifiedSops),
    /// Recorded by the controller from a revision whose copy passed one of the above (a
    /// self-heal applies it again): decrypted without a MAC, which the recorded form no
    /// longer has in its order.
    Recorded,
}

/// A SOPS document, decrypted: the plaintext tree without its `sops` metadata (wiped on drop),
/// and the cluster key that opened it.
pub struct OpenedSops {
    /// The plaintext document.
    pub document: Value,
    /// The id of the cluster key that opened it.
    pub key_id: KeyId,
}

impl std::fmt::Debug for OpenedSops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSops")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Drop for OpenedSops {
    fn drop(&mut self) {
        crate::manifest::wipe_value(&mut self.document);
    }
}

/// Opens `document` (at `location`, `file: document N` for messages) with one of
/// `identities`, checking its integrity as `provenance` says.
pub fn open_document(
    document: &Value,
    identities: &[Identity],
    location: &str,
    provenance: Provenance<'_>,
) -> Result<OpenedSops, SopsError> {
    let metadata = SopsMetadata::parse(document, location)?;
    let (key, key_id, owned);
    match provenance {
        Provenance::RenderedFrom(verified) => {
            if metadata.mac != verified.mac {
                return Err(SopsError::NotAsVerified {
                    location: location.to_owned(),
                    reason: "its sops.mac is not the one of the file it was rendered from"
                        .to_owned(),
                });
            }
            key = &verified.key;
            key_id = verified.key_id.clone();
        }
        Provenance::AsWritten | Provenance::Recorded => {
            let (opened, id) = open_data_key(&metadata, identities, location)?;
            owned = opened;
            key = &owned;
            key_id = id;
        }
    }
    let mut walk = Walk::new(&metadata, key, location);
    match provenance {
        Provenance::AsWritten => walk = walk.with_mac(),
        Provenance::RenderedFrom(verified) => walk = walk.allowing_only(&verified.values),
        Provenance::Recorded => {}
    }
    let (plaintext, _) = walk.run(document)?;
    Ok(OpenedSops {
        document: plaintext,
        key_id,
    })
}

/// Checks the MAC of `document` as written and keeps what opening a rendered copy of it
/// needs; the plaintext is wiped before this returns.
pub fn verify_document(
    document: &Value,
    identities: &[Identity],
    location: &str,
) -> Result<VerifiedSops, SopsError> {
    let metadata = SopsMetadata::parse(document, location)?;
    let (key, key_id) = open_data_key(&metadata, identities, location)?;
    let (mut plaintext, values) = Walk::new(&metadata, &key, location)
        .with_mac()
        .collecting_values()
        .run(document)?;
    crate::manifest::wipe_value(&mut plaintext);
    Ok(VerifiedSops {
        key,
        key_id,
        mac: metadata.mac.clone(),
        values,
    })
}

/// What is wrong with `document` as a SOPS file, without any key: metadata that does not
/// parse, no MAC, or a value its rule encrypts held in plaintext. For `sealsync check`.
pub fn check_document(document: &Value, location: &str) -> Result<(), SopsError> {
    let metadata = SopsMetadata::parse(document, location)?;
    walk::check_encrypted(document, &metadata, location)
}

fn open_data_key(
    metadata: &SopsMetadata,
    identities: &[Identity],
    location: &str,
) -> Result<(SopsDataKey, KeyId), SopsError> {
    for (index, entry) in metadata.age.iter().enumerate() {
        let field = format!("sops.age[{index}].enc");
        match open_sops_data_key(&entry.enc, identities, &field) {
            Ok(Some(opened)) => return Ok(opened),
            Ok(None) => {}
            Err(source) => {
                return Err(SopsError::Key {
                    location: location.to_owned(),
                    source,
                })
            }
        }
    }
    Err(SopsError::NoMatchingKey {
        location: location.to_owned(),
        recipients: metadata.recipients(),
    })
}
