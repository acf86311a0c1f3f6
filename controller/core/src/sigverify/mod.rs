//! Verifying the signature of a Git commit or tag against a set of trusted keys, in pure Rust:
//! SSH signatures (`gpg.format ssh`, the `git` namespace) with `ssh-key`'s `SshSig`, and
//! OpenPGP signatures with rPGP (`pgp`), whose key model this module completes with what git
//! users expect of GnuPG: a key counts only through valid self-signatures, expired and revoked
//! keys and subkeys sign nothing, and a subkey signs only when its binding says it may and its
//! back-signature holds.
//!
//! The trusted keys come from a Secret's entries ([`TrustedKeys::from_entries`]): `*.sshpub`
//! (`authorized_keys` or `allowed_signers` lines) and `*.asc` (armored OpenPGP public keys).
//! The signed payload and the signature come from [`crate::gitsig`], which splits a raw
//! object as git does. Every message names keys by fingerprint and entry, never by content
//! beyond that, and every input is bounded.

mod keyring;
mod openpgp;
mod ssh;
#[cfg(test)]
mod tests;

use std::time::SystemTime;

pub use keyring::{KeyringError, TrustedKeys, MAX_ENTRIES, MAX_ENTRY_BYTES};

use crate::gitsig::Signed;

/// The longest signature read: an RSA-4096 OpenPGP signature with its armor is under 1 KiB.
pub const MAX_SIGNATURE_BYTES: usize = 16 * 1024;

/// How an object was signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// An SSH signature (`ssh-keygen -Y sign -n git`).
    Ssh,
    /// An OpenPGP detached signature (`gpg --detach-sign`).
    OpenPgp,
}

impl Method {
    /// `ssh` or `openpgp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ssh => "ssh",
            Method::OpenPgp => "openpgp",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Method::Ssh => "SSH",
            Method::OpenPgp => "OpenPGP",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.describe())
    }
}

/// The trusted key that made a good signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// How it signed.
    pub method: Method,
    /// The fingerprint of the key that signed: `SHA256:<base64>` for SSH (as `ssh-keygen -l`
    /// prints it), the uppercase hex fingerprint of the (sub)key for OpenPGP.
    pub fingerprint: String,
    /// For an OpenPGP subkey, the fingerprint of its primary key.
    pub primary_fingerprint: Option<String>,
    /// The Secret entry that holds the key (`alice.sshpub`).
    pub entry: String,
    /// The OpenPGP primary user ID or the SSH key's comment, when it has one.
    pub identity: Option<String>,
}

/// Why a signature was not accepted. Messages name the key by fingerprint, never more.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The object has no signature.
    #[error("it is not signed")]
    Unsigned,
    /// The signature is neither SSH nor OpenPGP (an X.509 signature, say).
    #[error("its signature is neither an SSH nor an OpenPGP signature")]
    UnknownFormat,
    /// The signature is larger than [`MAX_SIGNATURE_BYTES`].
    #[error("its signature is larger than {MAX_SIGNATURE_BYTES} bytes")]
    TooLarge,
    /// The signature could not be read.
    #[error("its {method} signature is malformed: {reason}")]
    Malformed {
        /// How it claims to be signed.
        method: Method,
        /// What is wrong.
        reason: String,
    },
    /// An SSH signature made for another purpose than git (`ssh-keygen -Y sign -n file`).
    #[error("its SSH signature is for the namespace {namespace:?}, not \"git\"")]
    WrongNamespace {
        /// The namespace it was made for.
        namespace: String,
    },
    /// A hash algorithm too weak to rely on.
    #[error("its OpenPGP signature uses the weak hash {hash}; sign with SHA-256 or stronger")]
    WeakHash {
        /// The algorithm.
        hash: String,
    },
    /// No trusted key made it.
    #[error("it is signed by the {method} key {fingerprint}, which is not among the trusted keys")]
    UntrustedKey {
        /// How it is signed.
        method: Method,
        /// The fingerprint (or, for an OpenPGP signature that names none, the key id) of the
        /// key that claims to have signed it.
        fingerprint: String,
    },
    /// A trusted key did not make this signature over this object: it covers another object,
    /// or was altered.
    #[error("its {method} signature by {fingerprint} does not match its content (it was made over other content, or altered)")]
    BadSignature {
        /// How it is signed.
        method: Method,
        /// The trusted key.
        fingerprint: String,
    },
    /// The trusted key has expired.
    #[error("it is signed by the {method} key {fingerprint}, which expired at {expired} (Unix time); extend the key's expiry and update the trusted keys, or sign with a valid key")]
    ExpiredKey {
        /// How it is signed.
        method: Method,
        /// The key.
        fingerprint: String,
        /// When it expired, in seconds since the Unix epoch.
        expired: u64,
    },
    /// The trusted key is not valid yet (an SSH `valid-after` option).
    #[error("it is signed by the {method} key {fingerprint}, which is not valid before {valid_after} (Unix time)")]
    NotYetValid {
        /// How it is signed.
        method: Method,
        /// The key.
        fingerprint: String,
        /// When it becomes valid.
        valid_after: u64,
    },
    /// The trusted key, or its primary key, has been revoked.
    #[error("it is signed by the {method} key {fingerprint}, which has been revoked")]
    RevokedKey {
        /// How it is signed.
        method: Method,
        /// The key.
        fingerprint: String,
    },
    /// The key may not sign: an OpenPGP subkey bound for encryption only, or an SSH key whose
    /// `namespaces` option leaves out `git`.
    #[error("the {method} key {fingerprint} is not allowed to sign git objects: {why}")]
    NotForSigning {
        /// How it is signed.
        method: Method,
        /// The key.
        fingerprint: String,
        /// Why.
        why: &'static str,
    },
    /// The signature is dated outside the life of its key, or has itself expired.
    #[error("its {method} signature by {fingerprint} {why}")]
    BadTime {
        /// How it is signed.
        method: Method,
        /// The key.
        fingerprint: String,
        /// What is wrong.
        why: &'static str,
    },
}

/// A parser's message, bounded and on one line: it may quote the bytes it choked on, which
/// someone pushed.
pub(crate) fn bounded_reason(message: &str) -> String {
    const MAX: usize = 160;
    let mut reason: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX)
        .collect();
    if message.chars().count() > MAX {
        reason.push('…');
    }
    reason
}

impl VerifyError {
    /// The fingerprint of the key the signature names, when it names one.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            VerifyError::UntrustedKey { fingerprint, .. }
            | VerifyError::BadSignature { fingerprint, .. }
            | VerifyError::ExpiredKey { fingerprint, .. }
            | VerifyError::NotYetValid { fingerprint, .. }
            | VerifyError::RevokedKey { fingerprint, .. }
            | VerifyError::NotForSigning { fingerprint, .. }
            | VerifyError::BadTime { fingerprint, .. } => Some(fingerprint),
            _ => None,
        }
    }

    /// A short stable label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            VerifyError::Unsigned => "unsigned",
            VerifyError::UnknownFormat | VerifyError::TooLarge | VerifyError::Malformed { .. } => {
                "malformed"
            }
            VerifyError::WrongNamespace { .. } => "wrong_namespace",
            VerifyError::WeakHash { .. } => "weak_hash",
            VerifyError::UntrustedKey { .. } => "untrusted_key",
            VerifyError::BadSignature { .. } => "bad_signature",
            VerifyError::ExpiredKey { .. } | VerifyError::NotYetValid { .. } => "expired_key",
            VerifyError::RevokedKey { .. } => "revoked_key",
            VerifyError::NotForSigning { .. } => "not_for_signing",
            VerifyError::BadTime { .. } => "bad_time",
        }
    }
}

/// Verifies `signed` (from [`crate::gitsig`]) against `keys`, at the time `now`: which trusted
/// key made it, or why it is not accepted. The signature's type is detected from its armor.
pub fn verify(
    signed: Option<&Signed>,
    keys: &TrustedKeys,
    now: SystemTime,
) -> Result<Signer, VerifyError> {
    let signed = signed.ok_or(VerifyError::Unsigned)?;
    if signed.signature.len() > MAX_SIGNATURE_BYTES {
        return Err(VerifyError::TooLarge);
    }
    let now = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let armor = signed.signature.trim_ascii_start();
    if armor.starts_with(b"-----BEGIN SSH SIGNATURE-----") {
        ssh::verify(&signed.payload, &signed.signature, keys, now)
    } else if armor.starts_with(b"-----BEGIN PGP SIGNATURE-----") {
        openpgp::verify(&signed.payload, &signed.signature, keys, now)
    } else {
        Err(VerifyError::UnknownFormat)
    }
}
