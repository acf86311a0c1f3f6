//! Why a SealedSecret resource's Secret was not written. Messages name the resource, its
//! fields and the keys, never a value.

use crate::sync::decrypt::DecryptError;

/// Why a reconcile of a SealedSecret resource failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ResourceError {
    /// The document breaks the sealed format.
    #[error("{0}")]
    Invalid(String),
    /// It did not open: sealed to other keys, tampered, moved.
    #[error(transparent)]
    Decrypt(#[from] Box<DecryptError>),
    /// The Secret is managed by something else.
    #[error("{0}")]
    Conflict(String),
    /// The API server refused or failed a request.
    #[error("{action}: {source}")]
    Api {
        /// What was being done.
        action: String,
        /// The error.
        #[source]
        source: kube::Error,
    },
}

impl ResourceError {
    /// The `Ready=False` reason, as a GitSync reports it.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            ResourceError::Invalid(_) => "InvalidSpec",
            ResourceError::Decrypt(_) => "DecryptionFailed",
            ResourceError::Conflict(_) => "Conflict",
            ResourceError::Api { .. } => "ApiFailed",
        }
    }

    /// A short stable label, for metrics.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            ResourceError::Invalid(_) => "invalid",
            ResourceError::Decrypt(_) => "decryption_failed",
            ResourceError::Conflict(_) => "conflict",
            ResourceError::Api { .. } => "api_failed",
        }
    }

    /// Whether it may pass without a change to the resource (API errors, keys not loaded
    /// yet): retried on a backoff rather than at the resync interval.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, ResourceError::Api { .. } | ResourceError::Conflict(_))
    }

    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| ResourceError::Api { action, source }
    }
}
