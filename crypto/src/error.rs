use std::fmt;

use crate::keys::KeyId;

/// Which part of a value's binding did not match the document it sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BindingField {
    /// The value was sealed with a different scope (strict, namespace or cluster).
    Scope,
    /// The value was sealed for another namespace.
    Namespace,
    /// The value was sealed for a Secret of another name.
    Name,
    /// The value was sealed under another data key of the Secret.
    Key,
}

impl fmt::Display for BindingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindingField::Scope => "scope",
            BindingField::Namespace => "namespace",
            BindingField::Name => "name",
            BindingField::Key => "key",
        })
    }
}

/// Everything that can go wrong while reading, sealing or opening sealed documents.
///
/// No variant ever carries a secret value, a data key or an identity: every message is safe
/// to log. Names, namespaces, data key names and key ids are not secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// None of the given identities can unwrap the data key of an envelope.
    #[error(
        "none of the given identities{} can open {}; it is sealed to key id(s) {}",
        fmt_tried(.tried),
        fmt_envelope(.envelope.as_deref(), .values),
        fmt_key_ids(.key_ids)
    )]
    NoMatchingIdentity {
        /// The key ids listed in the document (unauthenticated: read from the document).
        key_ids: Vec<KeyId>,
        /// The envelope that could not be opened, when one was tried.
        envelope: Option<String>,
        /// The data keys whose values are in that envelope.
        values: Vec<String>,
        /// The key ids of the identities that were tried.
        tried: Vec<KeyId>,
    },

    /// A value, or a whole envelope, was moved to a place it was not sealed for.
    #[error("{field} mismatch: the value was sealed for {field} {sealed:?} but sits at {field} {found:?}{}",
        .data_key.as_ref().map(|k| format!(" (data key {k:?})")).unwrap_or_default())]
    BindingMismatch {
        /// The field that differs.
        field: BindingField,
        /// What the value was sealed for.
        sealed: String,
        /// What the document says now.
        found: String,
        /// The data key whose value failed, when the failure is per value.
        data_key: Option<String>,
    },

    /// Authentication failed: the ciphertext or the wrapped data key was altered.
    #[error("{what} failed authentication: it was altered or corrupted")]
    Tampered {
        /// Where: `data key "password"` or `envelope 1f2e…`.
        what: String,
    },

    /// The document declares a format version this build does not read.
    #[error(
        "unsupported format version {found:?}: this build reads {}",
        crate::API_VERSION
    )]
    UnsupportedVersion {
        /// The apiVersion found.
        found: String,
    },

    /// The document does not follow the format.
    #[error("malformed document at {location}: {reason}")]
    Malformed {
        /// Where, as a field path (for example `spec.encryptedData.password`), with a line
        /// number when the YAML parser gives one.
        location: String,
        /// What is wrong.
        reason: String,
    },

    /// A recipient string could not be parsed. The text given is never included: it may be
    /// a private key pasted in the wrong place.
    #[error("invalid recipient: {reason}")]
    InvalidRecipient {
        /// Why, and where (a line number), never the text.
        reason: String,
    },

    /// An identity could not be parsed. The identity text itself is never included.
    #[error("invalid identity: {reason}")]
    InvalidIdentity {
        /// Why (never the identity text).
        reason: String,
    },

    /// Sealing needs at least one recipient.
    #[error("no recipients: a value must be sealed to at least one recipient")]
    NoRecipients,

    /// An input is larger than the bounds this library accepts.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was too large.
        what: String,
        /// The limit, with its unit.
        limit: String,
    },

    /// age could not wrap the data key.
    #[error("wrapping the data key failed")]
    Wrap(#[source] BoxError),

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// The document could not be written as YAML or JSON.
    #[error("writing the document failed")]
    Encode(#[source] BoxError),

    /// A key backup could not be written or read.
    #[error("key backup: {reason}")]
    Backup {
        /// What is wrong, never with key material.
        reason: String,
    },
}

/// The cause of an error from another crate, kept for [`std::error::Error::source`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

fn fmt_tried(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" (key id(s) {})", fmt_key_ids(ids))
    }
}

fn fmt_envelope(envelope: Option<&str>, values: &[String]) -> String {
    match envelope {
        None => "this document".to_owned(),
        Some(id) if values.is_empty() => format!("envelope {id}"),
        Some(id) => format!(
            "envelope {id} (the value(s) of {})",
            values
                .iter()
                .map(|v| format!("{v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn fmt_key_ids(ids: &[KeyId]) -> String {
    if ids.is_empty() {
        return "(none listed)".to_owned();
    }
    ids.iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Error {
    /// A short stable label, for metrics and test assertions.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NoMatchingIdentity { .. } => "no_matching_identity",
            Error::BindingMismatch { .. } => "binding_mismatch",
            Error::Tampered { .. } => "tampered",
            Error::UnsupportedVersion { .. } => "unsupported_version",
            Error::Malformed { .. } => "malformed",
            Error::InvalidRecipient { .. } => "invalid_recipient",
            Error::InvalidIdentity { .. } => "invalid_identity",
            Error::NoRecipients => "no_recipients",
            Error::LimitExceeded { .. } => "limit_exceeded",
            Error::Wrap(_) => "wrap",
            Error::Random => "random",
            Error::Encode(_) => "encode",
            Error::Backup { .. } => "backup",
        }
    }

    pub(crate) fn malformed(location: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Malformed {
            location: location.into(),
            reason: reason.into(),
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
