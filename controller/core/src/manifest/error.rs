use std::fmt;

/// Why a manifest could not be read, or a document in it is not a valid Secret or
/// SealedSecret.
///
/// No variant carries text from the input beyond names that were checked to be safe to
/// print: the input may hold secret values anywhere, a value pasted in place of a key
/// included.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The text is not a YAML or JSON object stream, or a document does not have the shape
    /// its kind requires.
    #[error("malformed document at {location}: {reason}")]
    Malformed {
        /// Where: a document number with line and column, or a field path such as
        /// `stringData.password`.
        location: String,
        /// What is wrong.
        reason: String,
    },

    /// The input goes over one of the reader's bounds.
    #[error("{what} exceeds the limit of {limit}")]
    LimitExceeded {
        /// What was too large.
        what: String,
        /// The limit, with its unit.
        limit: String,
    },

    /// The document has the right shape but fails the sealed format's own checks.
    #[error(transparent)]
    Format(#[from] sealsync_crypto::Error),
}

impl ManifestError {
    /// A short stable label, for metrics and test assertions.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ManifestError::Malformed { .. } => "malformed",
            ManifestError::LimitExceeded { .. } => "limit_exceeded",
            ManifestError::Format(inner) => inner.metric_label(),
        }
    }

    /// Where the document breaks the rules and how, when that is the problem (from the
    /// reader, or from the sealed format's own checks).
    pub fn malformed_at(&self) -> Option<(&str, &str)> {
        match self {
            ManifestError::Malformed { location, reason }
            | ManifestError::Format(sealsync_crypto::Error::Malformed { location, reason }) => {
                Some((location, reason))
            }
            _ => None,
        }
    }

    pub(crate) fn malformed(location: impl fmt::Display, reason: impl Into<String>) -> Self {
        ManifestError::Malformed {
            location: location.to_string(),
            reason: reason.into(),
        }
    }
}
