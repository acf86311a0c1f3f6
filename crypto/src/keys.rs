use std::fmt;
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use ring::digest;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Identity files larger than this are refused; a real one is a few hundred bytes a key.
pub const MAX_IDENTITY_FILE_BYTES: usize = 1024 * 1024;
/// The most identities one file may hold: each is tried against every recipient stanza of a
/// document that it does not open, so thousands of keys would make opening a denial of
/// service.
pub const MAX_IDENTITIES: usize = 64;

/// A short, readable id of a recipient: the first 8 bytes of SHA-256 over the recipient's
/// canonical string, in lowercase hex. Anyone with the public key can compute it, so it tells
/// which keys a document is sealed to without decrypting anything.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyId(String);

impl KeyId {
    /// Computes the id of a canonical recipient string.
    pub fn of_recipient_str(recipient: &str) -> Self {
        let hash = digest::digest(&digest::SHA256, recipient.as_bytes());
        KeyId(hex::encode(&hash.as_ref()[..8]))
    }

    /// Wraps an id read from a document, checking only its shape.
    pub fn parse(s: &str) -> Result<Self> {
        if s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(KeyId(s.to_owned()))
        } else {
            Err(Error::malformed(
                "spec.envelopes[].recipients",
                "not a key id (16 lowercase hex digits)",
            ))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A public key that data keys are wrapped to: an age X25519 recipient (`age1…`).
#[derive(Clone)]
pub struct Recipient {
    inner: age::x25519::Recipient,
    canonical: String,
    id: KeyId,
}

impl Recipient {
    /// The recipient's key id.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// The canonical `age1…` string.
    pub fn as_str(&self) -> &str {
        &self.canonical
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Recipient {
        &self.inner
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Recipient").field(&self.canonical).finish()
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.canonical == other.canonical
    }
}
impl Eq for Recipient {}

impl FromStr for Recipient {
    type Err = Error;
    /// Parses an `age1…` recipient. The error never repeats the input: a private key pasted
    /// where a recipient belongs must not be printed back.
    fn from_str(s: &str) -> Result<Self> {
        let trimmed = s.trim();
        if looks_like_identity(trimmed) {
            return Err(Error::InvalidRecipient {
                reason: "this is a private identity (AGE-SECRET-KEY-1…), not a public \
                         recipient; pass the age1… public key printed by `sealsync keys \
                         generate` instead, and treat this identity as exposed if it was \
                         shared"
                    .to_owned(),
            });
        }
        let inner =
            trimmed
                .parse::<age::x25519::Recipient>()
                .map_err(|_| Error::InvalidRecipient {
                    reason: if trimmed
                        .get(..4)
                        .is_some_and(|p| p.eq_ignore_ascii_case("age1"))
                    {
                        format!(
                            "not a valid age X25519 recipient ({} characters; one is 62, age1 and \
                         58 more, with a valid checksum)",
                            trimmed.chars().count()
                        )
                    } else {
                        "expected an age X25519 recipient starting with age1".to_owned()
                    },
                })?;
        let canonical = inner.to_string();
        let id = KeyId::of_recipient_str(&canonical);
        Ok(Recipient {
            inner,
            canonical,
            id,
        })
    }
}

/// Whether `text` holds an age identity in any letter case (bech32 is case-insensitive, so
/// `age-secret-key-1…` is the same key).
pub fn looks_like_identity(text: &str) -> bool {
    const HRP: &[u8] = b"age-secret-key-1";
    text.as_bytes()
        .windows(HRP.len())
        .any(|w| w.eq_ignore_ascii_case(HRP))
}

/// Parses a recipients file: one `age1…` per line, `#` comments and blank lines ignored.
/// Errors name the line, never its text.
pub fn parse_recipients_file(text: &str) -> Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let recipient = line.parse::<Recipient>().map_err(|e| match e {
            Error::InvalidRecipient { reason } => Error::InvalidRecipient {
                reason: format!("line {}: {reason}", index + 1),
            },
            other => other,
        })?;
        out.push(recipient);
    }
    Ok(out)
}

/// A private key that can unwrap data keys, with the id of its public half. The key is wiped
/// when an `Identity` (or a clone of it) is dropped.
#[derive(Clone)]
pub struct Identity {
    inner: age::x25519::Identity,
    id: KeyId,
    recipient: String,
}

impl Identity {
    /// Generates a fresh X25519 identity.
    pub fn generate() -> Self {
        Self::from_age(age::x25519::Identity::generate())
    }

    fn from_age(inner: age::x25519::Identity) -> Self {
        let recipient = inner.to_public().to_string();
        Identity {
            id: KeyId::of_recipient_str(&recipient),
            recipient,
            inner,
        }
    }

    /// The id of this identity's recipient.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// The public `age1…` recipient.
    pub fn recipient(&self) -> Recipient {
        // Our own recipient string always parses.
        Recipient {
            inner: self.inner.to_public(),
            canonical: self.recipient.clone(),
            id: self.id.clone(),
        }
    }

    /// The `AGE-SECRET-KEY-1…` text, in a buffer that is wiped on drop.
    pub fn to_secret_string(&self) -> Zeroizing<String> {
        Zeroizing::new(self.inner.to_string().expose_secret().to_owned())
    }

    pub(crate) fn as_age(&self) -> &age::x25519::Identity {
        &self.inner
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only the public half: Debug output may reach logs.
        f.debug_struct("Identity")
            .field("key_id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Parses an age identity file (`AGE-SECRET-KEY-1…` lines, `#` comments), as written by
/// `age-keygen` or `sealsync keys generate`. Errors name line numbers, never contents.
pub fn parse_identity_file(text: &str) -> Result<Vec<Identity>> {
    if text.len() > MAX_IDENTITY_FILE_BYTES {
        return Err(Error::LimitExceeded {
            what: "identity file".to_owned(),
            limit: format!("{MAX_IDENTITY_FILE_BYTES} bytes"),
        });
    }
    let mut identities = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // Go age accepts only the upper-case form; so do we, so that a key file works with
        // both tools or with neither.
        let upper_case =
            line.starts_with("AGE-SECRET-KEY-1") && !line.bytes().any(|b| b.is_ascii_lowercase());
        let parsed = Some(line)
            .filter(|_| upper_case)
            .ok_or(())
            .and_then(|l| l.parse::<age::x25519::Identity>().map_err(|_| ()))
            .map_err(|_| Error::InvalidIdentity {
                reason: format!(
                    "line {} is not an age X25519 identity (AGE-SECRET-KEY-1…)",
                    index + 1
                ),
            })?;
        if identities.len() == MAX_IDENTITIES {
            return Err(Error::LimitExceeded {
                what: "the identities in one identity file".to_owned(),
                limit: MAX_IDENTITIES.to_string(),
            });
        }
        identities.push(Identity::from_age(parsed));
    }
    if identities.is_empty() {
        return Err(Error::InvalidIdentity {
            reason: "the file holds no AGE-SECRET-KEY-1… line".to_owned(),
        });
    }
    Ok(identities)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_is_stable_and_readable() {
        let id = KeyId::of_recipient_str(
            "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p",
        );
        assert_eq!(id.as_str().len(), 16);
        assert_eq!(id, KeyId::parse(id.as_str()).expect("parses"));
    }

    #[test]
    fn private_key_as_recipient_is_refused_without_echo() {
        let identity = Identity::generate();
        let secret = identity.to_secret_string();
        let err = secret.parse::<Recipient>().expect_err("refused");
        assert!(!err.to_string().contains(secret.as_str()));
    }

    #[test]
    fn identity_file_errors_name_lines_not_contents() {
        let err = parse_identity_file("# c\nAGE-SECRET-KEY-1NOTREAL\n").expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("line 2"), "{msg}");
        assert!(!msg.contains("NOTREAL"), "{msg}");
    }
}
