//! The trusted keys, read from a Secret's entries: each `*.sshpub` entry holds
//! `authorized_keys` (or `allowed_signers`) lines, each `*.asc` entry armored OpenPGP public
//! keys. Parsed once per version of the Secret; the OpenPGP self-signatures are checked here,
//! so that a verification only looks keys up.

use super::openpgp::Certificate;
use super::ssh::TrustedSshKey;

/// The most entries a keys Secret may hold.
pub const MAX_ENTRIES: usize = 256;
/// The largest entry read: a few hundred keys.
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// The most keys (lines, or OpenPGP certificates) one entry may hold.
pub(super) const MAX_KEYS_PER_ENTRY: usize = 512;

/// Why the trusted keys could not be read. Every message names the entry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// The Secret holds no `*.sshpub` or `*.asc` entry.
    #[error("it holds no trusted key: add entries named *.sshpub (authorized_keys lines) or *.asc (armored OpenPGP public keys)")]
    Empty,
    /// An entry whose name says neither format.
    #[error("entry {entry:?}: name it *.sshpub for SSH keys or *.asc for OpenPGP keys")]
    UnknownEntry {
        /// The entry.
        entry: String,
    },
    /// More entries, or larger ones, than are read.
    #[error("{what} is over the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: String,
        /// The limit.
        limit: usize,
    },
    /// An entry that could not be read.
    #[error("entry {entry:?}: {reason}")]
    Invalid {
        /// The entry.
        entry: String,
        /// What is wrong.
        reason: String,
    },
}

/// The keys a signature must come from.
#[derive(Debug, Default)]
pub struct TrustedKeys {
    pub(super) ssh: Vec<TrustedSshKey>,
    pub(super) openpgp: Vec<Certificate>,
}

impl TrustedKeys {
    /// Reads the entries of a keys Secret (name, content). Expiry is judged later, when a
    /// signature is verified.
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    ) -> Result<Self, KeyringError> {
        let mut keys = TrustedKeys::default();
        for (count, (name, content)) in entries.into_iter().enumerate() {
            if count >= MAX_ENTRIES {
                return Err(KeyringError::TooLarge {
                    what: "the number of entries".to_owned(),
                    limit: MAX_ENTRIES,
                });
            }
            if content.len() > MAX_ENTRY_BYTES {
                return Err(KeyringError::TooLarge {
                    what: format!("entry {name:?} ({} bytes)", content.len()),
                    limit: MAX_ENTRY_BYTES,
                });
            }
            let invalid = |reason: String| KeyringError::Invalid {
                entry: name.to_owned(),
                reason,
            };
            if name.ends_with(".sshpub") {
                let text = std::str::from_utf8(content)
                    .map_err(|_| invalid("not UTF-8 text".to_owned()))?;
                keys.ssh
                    .extend(TrustedSshKey::parse_entry(name, text).map_err(invalid)?);
            } else if name.ends_with(".asc") {
                keys.openpgp
                    .extend(Certificate::parse_entry(name, content).map_err(invalid)?);
            } else {
                return Err(KeyringError::UnknownEntry {
                    entry: name.to_owned(),
                });
            }
        }
        if keys.ssh.is_empty() && keys.openpgp.is_empty() {
            return Err(KeyringError::Empty);
        }
        Ok(keys)
    }
}
