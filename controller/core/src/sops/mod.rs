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
//! The MAC needs the file as written, in its order: [`open_file`] and [`verify_file`] check it
//! over all the documents of a file that share a metadata block, as sops computes it. A
//! renderer may then change a document (kustomize sets a namespace or labels, post-build
//! substitution fills variables), so a rendered copy is opened against the file it was
//! verified as ([`Provenance::RenderedFrom`]): the same metadata block, walked with that
//! file's rule, and only encrypted values that file holds, each at its own path. Errors name
//! the file and field, never a value.

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

/// The SOPS documents of one file that share one metadata block (sops writes the same block,
/// with one MAC over all of them, into each document of a file), verified as written: what a
/// rendered copy of any of them is opened against.
pub struct VerifiedSops {
    key: SopsDataKey,
    key_id: KeyId,
    metadata: SopsMetadata,
    block: Value,
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
    /// matched with the file it came from.
    pub fn mac(&self) -> &str {
        &self.metadata.mac
    }
}

/// Where a document to open comes from, which says how its integrity is known.
#[derive(Debug, Clone, Copy)]
pub enum Provenance<'a> {
    /// A rendered copy of documents verified as written ([`verify_file`]): its `sops` block
    /// must be theirs, it is walked with their rule, and each encrypted value must be one they
    /// hold.
    RenderedFrom(&'a VerifiedSops),
    /// Recorded by the controller from a revision whose copy passed the above (a self-heal
    /// applies it again): decrypted without a MAC, which the recorded form no longer has in
    /// its order.
    Recorded,
}

/// A SOPS document, decrypted: the plaintext tree without its `sops` metadata (wiped on drop),
/// the cluster key that opened it, and the values of `data` and `stringData` that its rule
/// leaves in plaintext.
pub struct OpenedSops {
    /// The plaintext document.
    pub document: Value,
    /// The id of the cluster key that opened it.
    pub key_id: KeyId,
    /// Fields of `data` and `stringData` written in plaintext (the rule does not encrypt
    /// them), as `data.KEY`: plaintext in Git, refused where plaintext Secrets are.
    pub plaintext_fields: Vec<String>,
}

impl std::fmt::Debug for OpenedSops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSops")
            .field("key_id", &self.key_id)
            .field("plaintext_fields", &self.plaintext_fields)
            .finish_non_exhaustive()
    }
}

impl Drop for OpenedSops {
    fn drop(&mut self) {
        crate::manifest::wipe_value(&mut self.document);
    }
}

/// One document of a file, and where it is (`file: document N (Kind ns/name)`) for messages.
pub type Located<'a> = (&'a Value, &'a str);

/// Groups the SOPS documents of one file by their metadata block (by `sops.mac`), in order.
fn groups<'a>(documents: &[Located<'a>]) -> Vec<Vec<(usize, Located<'a>)>> {
    let mut out: Vec<Vec<(usize, Located<'a>)>> = Vec::new();
    for (index, &(document, location)) in documents.iter().enumerate() {
        let mac = document[METADATA_KEY]["mac"].as_str();
        match out
            .iter_mut()
            .find(|g| g[0].1 .0[METADATA_KEY]["mac"].as_str() == mac)
        {
            Some(group) => group.push((index, (document, location))),
            None => out.push(vec![(index, (document, location))]),
        }
    }
    out
}

/// Opens the SOPS `documents` of one file as written, with one of `identities`: each group of
/// documents that shares a metadata block has one MAC over all of them, in order, checked
/// before any value is returned. The opened documents come back in the order given.
pub fn open_file(
    documents: &[Located<'_>],
    identities: &[Identity],
) -> Result<Vec<OpenedSops>, SopsError> {
    let mut opened: Vec<Option<OpenedSops>> = documents.iter().map(|_| None).collect();
    for group in groups(documents) {
        let (first, first_location) = group[0].1;
        let metadata = SopsMetadata::parse(first, first_location)?;
        let (key, key_id) = open_data_key(&metadata, identities, first_location)?;
        let mut walk = Walk::new(&metadata, &key).with_mac();
        let mut plaintexts = Vec::with_capacity(group.len());
        for &(index, (document, location)) in &group {
            same_block(document, first, location)?;
            plaintexts.push((index, walk.document(document, location)?));
        }
        walk.finish(first_location)?;
        for (index, (document, plaintext_fields)) in plaintexts {
            opened[index] = Some(OpenedSops {
                document,
                key_id: key_id.clone(),
                plaintext_fields,
            });
        }
    }
    Ok(opened.into_iter().flatten().collect())
}

/// Checks the MAC of the SOPS `documents` of one file that share the metadata block whose
/// `sops.mac` is `mac`, and keeps what opening a rendered copy of them needs; the plaintext
/// is wiped before this returns.
pub fn verify_file(
    documents: &[Located<'_>],
    mac: &str,
    identities: &[Identity],
) -> Result<Option<VerifiedSops>, SopsError> {
    let Some(group) = groups(documents)
        .into_iter()
        .find(|g| g[0].1 .0[METADATA_KEY]["mac"].as_str() == Some(mac))
    else {
        return Ok(None);
    };
    let (first, first_location) = group[0].1;
    let metadata = SopsMetadata::parse(first, first_location)?;
    let (key, key_id) = open_data_key(&metadata, identities, first_location)?;
    let mut walk = Walk::new(&metadata, &key).with_mac().collecting_values();
    for &(_, (document, location)) in &group {
        same_block(document, first, location)?;
        let (mut plaintext, _) = walk.document(document, location)?;
        crate::manifest::wipe_value(&mut plaintext);
    }
    let values = walk.finish(first_location)?;
    Ok(Some(VerifiedSops {
        key,
        key_id,
        block: first[METADATA_KEY].clone(),
        metadata,
        values,
    }))
}

/// Every document of a group carries the same metadata block, as sops writes it.
fn same_block(document: &Value, first: &Value, location: &str) -> Result<(), SopsError> {
    if document[METADATA_KEY] == first[METADATA_KEY] {
        Ok(())
    } else {
        Err(SopsError::malformed(
            location,
            "sops",
            "its metadata differs from that of the file's other documents with the same MAC",
        ))
    }
}

/// Opens `document` (at `location`, `file: document N` for messages), a copy of documents
/// verified elsewhere or recorded, as `provenance` says.
pub fn open_document(
    document: &Value,
    identities: &[Identity],
    location: &str,
    provenance: Provenance<'_>,
) -> Result<OpenedSops, SopsError> {
    let (plaintext, key_id) = match provenance {
        Provenance::RenderedFrom(verified) => {
            if document.get(METADATA_KEY) != Some(&verified.block) {
                return Err(SopsError::NotAsVerified {
                    location: location.to_owned(),
                    reason: "its sops metadata is not that of the file it was rendered from"
                        .to_owned(),
                });
            }
            let mut walk =
                Walk::new(&verified.metadata, &verified.key).allowing_only(&verified.values);
            (walk.document(document, location)?, verified.key_id.clone())
        }
        Provenance::Recorded => {
            let metadata = SopsMetadata::parse(document, location)?;
            let (key, key_id) = open_data_key(&metadata, identities, location)?;
            let mut walk = Walk::new(&metadata, &key);
            (walk.document(document, location)?, key_id)
        }
    };
    let (document, plaintext_fields) = plaintext;
    Ok(OpenedSops {
        document,
        key_id,
        plaintext_fields,
    })
}

/// What is wrong with `document` as a SOPS file, without any key: metadata that does not
/// parse, no MAC, or a value its rule encrypts held in plaintext. The fields of `data` and
/// `stringData` its rule leaves in plaintext come back.
pub fn check_document(document: &Value, location: &str) -> Result<Vec<String>, SopsError> {
    let metadata = SopsMetadata::parse(document, location)?;
    walk::check_encrypted(document, &metadata, location)
}

/// The data key, from the first `sops.age` entry wrapped to one of `identities`. Entries for
/// other recipients are not tried, so neither their number nor their damage costs anything.
fn open_data_key(
    metadata: &SopsMetadata,
    identities: &[Identity],
    location: &str,
) -> Result<(SopsDataKey, KeyId), SopsError> {
    for (index, entry) in metadata.age.iter().enumerate() {
        let id = KeyId::of_recipient_str(entry.recipient.trim());
        let Some(identity) = identities.iter().find(|i| *i.key_id() == id) else {
            continue;
        };
        let field = format!("sops.age[{index}].enc");
        match open_sops_data_key(&entry.enc, std::slice::from_ref(identity), &field) {
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
