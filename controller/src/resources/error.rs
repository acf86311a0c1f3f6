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
    /// The API server refused or failed a request. Only its code and reason are reported:
    /// an admission webhook's message may quote the Secret it was sent.
    #[error("{action}: {}", describe_api_error(source))]
    Api {
        /// What was being done.
        action: String,
        /// The error.
        source: kube::Error,
    },
}

/// `the API server answered 422 (Invalid)`, or the transport's failure.
fn describe_api_error(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!(
            "the API server answered {} ({})",
            status.code,
            if status.reason.is_empty() {
                "no reason"
            } else {
                status.reason.as_str()
            }
        ),
        other => format!("the request failed ({})", sealsync_core::Chain(other)),
    }
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

    /// Whether it may pass without a change to the resource (the API, a conflict resolved by
    /// hand): retried on a backoff rather than at the resync interval. A request the API server
    /// found invalid is not.
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            ResourceError::Api {
                source: kube::Error::Api(status),
                ..
            } => !matches!(status.code, 400 | 403 | 422),
            ResourceError::Api { .. } | ResourceError::Conflict(_) => true,
            _ => false,
        }
    }

    pub(crate) fn api(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| ResourceError::Api { action, source }
    }
}
