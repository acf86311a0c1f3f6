//! Envelopes: a random data key, wrapped with age to every recipient, plus the binding it was
//! sealed for.

use std::io::{Read, Write};

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

use crate::binding::Binding;
use crate::error::{Error, Result};
use crate::keys::{Identity, KeyId, Recipient};

/// A wrapped key is a few hundred bytes a recipient; this bounds what we ask age to parse.
pub(crate) const MAX_WRAPPED_KEY_BYTES: usize = 64 * 1024;
const DATA_KEY_LEN: usize = 32;
pub(crate) const MAX_PAYLOAD_BYTES: u64 = 4096;

/// A 256-bit ChaCha20-Poly1305 key, wiped on drop.
pub(crate) struct DataKey(Zeroizing<[u8; DATA_KEY_LEN]>);

impl DataKey {
    pub(crate) fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
        SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| Error::Random)?;
        Ok(DataKey(key))
    }

    pub(crate) fn from_bytes(bytes: [u8; DATA_KEY_LEN]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    /// `hex(SHA-256("sealsync/v1 envelope-id" ‖ 0x00 ‖ key)[..8])`: stable across re-wraps,
    /// fresh on re-key, and reveals nothing usable about a 256-bit key.
    pub(crate) fn envelope_id(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(b"sealsync/v1 envelope-id\0");
        ctx.update(self.as_bytes());
        hex::encode(&ctx.finish().as_ref()[..8])
    }
}

/// An unwrapped envelope: the data key, the binding it was sealed for, and the identity that
/// opened it.
pub(crate) struct OpenedEnvelope {
    pub(crate) data_key: DataKey,
    pub(crate) binding: Binding,
    pub(crate) opened_by: KeyId,
}

/// Wraps `data_key ‖ binding` to every recipient with age; returns the binary age file.
pub(crate) fn wrap(
    data_key: &DataKey,
    binding: &Binding,
    recipients: &[Recipient],
) -> Result<Vec<u8>> {
    if recipients.is_empty() {
        return Err(Error::NoRecipients);
    }
    let mut payload = Zeroizing::new(Vec::with_capacity(DATA_KEY_LEN + 64));
    payload.extend_from_slice(data_key.as_bytes());
    payload.extend_from_slice(&binding.encode());

    // One stanza per distinct recipient, so that the stanzas match the listed key ids.
    let mut seen = std::collections::BTreeSet::new();
    let distinct: Vec<&Recipient> = recipients
        .iter()
        .filter(|r| seen.insert(r.as_str()))
        .collect();
    let encryptor =
        age::Encryptor::with_recipients(distinct.iter().map(|r| r.as_age() as &dyn age::Recipient))
            .map_err(|e| Error::Wrap(Box::new(e)))?;
    let mut out = Vec::with_capacity(200 + 100 * recipients.len());
    let mut writer = encryptor
        .wrap_output(&mut out)
        .map_err(|e| Error::Wrap(Box::new(e)))?;
    writer
        .write_all(&payload)
        .and_then(|()| writer.finish().map(|_| ()))
        .map_err(|e| Error::Wrap(Box::new(e)))?;
    Ok(out)
}

/// Unwraps an age-wrapped envelope with the first identity that fits.
///
/// Identities are tried one at a time so that the controller can record which key actually
/// opened the document: the key ids listed in a document are not authenticated.
pub(crate) fn unwrap(
    envelope_id: &str,
    wrapped: &[u8],
    listed_key_ids: &[KeyId],
    identities: &[Identity],
) -> Result<OpenedEnvelope> {
    let tampered = || Error::Tampered {
        what: format!("envelope {envelope_id}"),
    };
    // Listed keys first: the usual file opens on the first try. Unlisted ones still follow,
    // since the listed ids are not authenticated.
    let ordered = identities
        .iter()
        .filter(|i| listed_key_ids.contains(i.key_id()))
        .chain(
            identities
                .iter()
                .filter(|i| !listed_key_ids.contains(i.key_id())),
        );
    for identity in ordered {
        let decryptor = age::Decryptor::new_buffered(wrapped).map_err(|_| tampered())?;
        let mut reader = match decryptor.decrypt(std::iter::once(identity.as_age() as _)) {
            Ok(reader) => reader,
            Err(age::DecryptError::NoMatchingKeys) => continue,
            Err(_) => return Err(tampered()),
        };
        let mut payload = Zeroizing::new(Vec::with_capacity(DATA_KEY_LEN + 64));
        // Read one byte past the limit so that an over-long payload is refused rather than
        // silently truncated (trailing data would be accepted, and never authenticated).
        reader
            .by_ref()
            .take(MAX_PAYLOAD_BYTES + 1)
            .read_to_end(&mut payload)
            .map_err(|_| tampered())?;
        if payload.len() as u64 > MAX_PAYLOAD_BYTES {
            return Err(tampered());
        }
        let mut key_bytes = [0u8; DATA_KEY_LEN];
        let Some(head) = payload.get(..DATA_KEY_LEN) else {
            return Err(tampered());
        };
        key_bytes.copy_from_slice(head);
        let data_key = DataKey::from_bytes(key_bytes);
        key_bytes.zeroize();
        let (binding, rest) =
            Binding::decode(&payload[DATA_KEY_LEN..]).ok_or_else(|| Error::Malformed {
                location: format!("envelope {envelope_id}"),
                reason: "the wrapped payload is not a sealsync v1 data key and binding".to_owned(),
            })?;
        if !rest.is_empty() {
            return Err(tampered());
        }
        if data_key.envelope_id() != envelope_id {
            // The id is derived from the key, so a mismatch means the envelope was swapped.
            return Err(Error::Tampered {
                what: format!("envelope {envelope_id} (its id does not match its data key)"),
            });
        }
        return Ok(OpenedEnvelope {
            data_key,
            binding,
            opened_by: identity.key_id().clone(),
        });
    }
    Err(Error::NoMatchingIdentity {
        key_ids: listed_key_ids.to_vec(),
        envelope: Some(envelope_id.to_owned()),
        values: Vec::new(),
        tried: identities.iter().map(|i| i.key_id().clone()).collect(),
    })
}

/// The most recipient stanzas one wrapped key may have: each costs an X25519 operation per
/// identity tried, so a header of thousands would be a denial of service.
pub(crate) const MAX_STANZAS: usize = 64;

/// Counts the recipient stanzas of an age header (`-> TYPE …` lines before the `---` MAC
/// line) and how many of them are X25519, without parsing anything else. `None` when the
/// header does not have that shape.
pub(crate) fn count_stanzas(wrapped: &[u8]) -> Option<(usize, usize)> {
    let header_end = wrapped.windows(4).position(|w| w == b"\n---")?;
    let header = &wrapped[..header_end];
    let (mut all, mut x25519) = (0usize, 0usize);
    for line in header.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"-> ") {
            all += 1;
            if rest.starts_with(b"X25519 ") {
                x25519 += 1;
            }
        }
    }
    Some((all, x25519))
}

/// Checks that `wrapped` parses as an age v1 file, without any key.
pub(crate) fn check_structure(wrapped: &[u8]) -> bool {
    age::Decryptor::new_buffered(wrapped).is_ok()
}
