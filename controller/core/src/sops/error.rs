/// Why a SOPS document could not be opened. Every message names the file, document and field;
/// none quotes a value, which could be a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SopsError {
    /// The metadata or the tree does not have the shape sops writes.
    #[error("{location}: malformed SOPS document at {field}: {reason}")]
    Malformed {
        /// `file: document N`.
        location: String,
        /// The field, as `sops.mac` or `stringData.password`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// The file uses a part of sops that sealsync does not open.
    #[error("{location}: {reason}")]
    Unsupported {
        /// `file: document N`.
        location: String,
        /// What, and what to do instead.
        reason: String,
    },
    /// No cluster key is among the file's age recipients.
    #[error("{location}: no key of this cluster opens this SOPS file (its age recipients: {recipients}); add the cluster's recipient (`sealsync keys fetch`) to the age keys of its .sops.yaml creation rule and run `sops updatekeys` on it")]
    NoMatchingKey {
        /// `file: document N`.
        location: String,
        /// The age recipients the file lists, comma-separated, or `none`.
        recipients: String,
    },
    /// An `enc` entry of the metadata is damaged.
    #[error("{location}: the SOPS data key does not open")]
    Key {
        /// `file: document N`.
        location: String,
        /// What the age layer found, naming the entry.
        #[source]
        source: sealsync_crypto::Error,
    },
    /// A value does not decrypt at its path: altered, moved, or from another file.
    #[error("{location}: {field} does not decrypt: the value was altered or moved, or the file was edited without sops; edit SOPS files with `sops edit`")]
    Tampered {
        /// `file: document N`.
        location: String,
        /// The field.
        field: String,
    },
    /// The MAC does not match the values.
    #[error("{location}: its SOPS MAC does not match its values: the file was changed without sops (a value removed, added or edited by hand); edit SOPS files with `sops edit`")]
    MacMismatch {
        /// `file: document N`.
        location: String,
    },
    /// A value the file's rule encrypts is plaintext.
    #[error("{location}: {field} is plaintext, but the file's SOPS rule ({rule}) encrypts it; encrypt the file again with `sops encrypt`")]
    Plaintext {
        /// `file: document N`.
        location: String,
        /// The field.
        field: String,
        /// The rule, as `encrypted_regex: ^(data|stringData)$`.
        rule: String,
    },
    /// A rendered copy is not what the file it came from was verified as.
    #[error("{location}: the rendered SOPS document does not match the file it was verified as: {reason}")]
    NotAsVerified {
        /// `file: document N`.
        location: String,
        /// What differs.
        reason: String,
    },
}

impl SopsError {
    /// A short stable label, for metrics and test assertions.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SopsError::Malformed { .. } => "malformed",
            SopsError::Unsupported { .. } => "unsupported",
            SopsError::NoMatchingKey { .. } => "no_matching_key",
            SopsError::Key { .. } => "key",
            SopsError::Tampered { .. } => "tampered",
            SopsError::MacMismatch { .. } => "mac_mismatch",
            SopsError::Plaintext { .. } => "plaintext",
            SopsError::NotAsVerified { .. } => "not_as_verified",
        }
    }

    /// The message for keys given on a command line rather than held by the cluster: without
    /// the cluster's migration advice when none of them opens the file.
    pub fn with_given_keys(&self) -> String {
        match self {
            SopsError::NoMatchingKey {
                location,
                recipients,
            } => format!(
                "{location}: no identity given opens this SOPS file (its age recipients: {recipients})"
            ),
            other => other.to_string(),
        }
    }

    /// `file: document N`: where.
    pub fn location(&self) -> &str {
        match self {
            SopsError::Malformed { location, .. }
            | SopsError::Unsupported { location, .. }
            | SopsError::NoMatchingKey { location, .. }
            | SopsError::Key { location, .. }
            | SopsError::Tampered { location, .. }
            | SopsError::MacMismatch { location }
            | SopsError::Plaintext { location, .. }
            | SopsError::NotAsVerified { location, .. } => location,
        }
    }

    /// The field at fault, when one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            SopsError::Malformed { field, .. }
            | SopsError::Tampered { field, .. }
            | SopsError::Plaintext { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(super) fn malformed(location: &str, field: &str, reason: impl Into<String>) -> Self {
        SopsError::Malformed {
            location: location.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}
