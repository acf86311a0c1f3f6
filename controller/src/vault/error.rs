//! Why references could not be resolved. Every message names the file, the Secret, the data
//! key and the reference's path, and never a value or a token.

use sealsync_core::vaultref::ValueError;

/// Why one read from Vault failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ReadError {
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("Vault at {address} is unreachable ({reason}); check spec.vault.address and that Vault is running")]
    Unreachable {
        /// The server.
        address: String,
        /// What the transport reported.
        reason: String,
    },
    /// Vault answered that it is sealed or on standby without an active node.
    #[error("Vault at {address} is sealed or unavailable ({status}); unseal it, the next retry picks it up")]
    Unavailable {
        /// The server.
        address: String,
        /// The HTTP status.
        status: u16,
    },
    /// The login succeeded but the token may not read the path.
    #[error("permission denied reading {path}: the Vault policy of this login does not allow it")]
    Forbidden {
        /// The API path.
        path: String,
    },
    /// Nothing at the path (or that version).
    #[error("no secret at {path}")]
    NotFound {
        /// The API path.
        path: String,
    },
    /// The secret exists but has no such key.
    #[error("the secret at {path} has no key {key:?}")]
    MissingKey {
        /// The API path.
        path: String,
        /// The key.
        key: String,
    },
    /// The version asked for was deleted or destroyed.
    #[error("version {version} of {path} was {what}")]
    VersionGone {
        /// The API path.
        path: String,
        /// The version.
        version: String,
        /// `deleted` or `destroyed`.
        what: &'static str,
    },
    /// The reference does not fit the mount (a version on KV v1, a non-KV engine, an AVP path
    /// without `data/` on KV v2).
    #[error("{0}")]
    Mount(String),
    /// Any other answer.
    #[error("Vault answered {status} for {path}{}", errors_suffix(.errors))]
    Status {
        /// The API path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Vault's `errors`, cut short.
        errors: Vec<String>,
    },
    /// The answer was not what the Vault API returns.
    #[error("an unexpected answer from Vault for {path}: {reason}")]
    BadResponse {
        /// The API path.
        path: String,
        /// What was wrong (never the body).
        reason: String,
    },
}

impl ReadError {
    /// A short stable label, for metrics.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            ReadError::Unreachable { .. } => "unreachable",
            ReadError::Unavailable { .. } => "sealed",
            ReadError::Forbidden { .. } => "forbidden",
            ReadError::NotFound { .. } | ReadError::VersionGone { .. } => "not_found",
            ReadError::MissingKey { .. } => "missing_key",
            ReadError::Mount(_) => "mount",
            ReadError::Status { .. } | ReadError::BadResponse { .. } => "error",
        }
    }
}

fn errors_suffix(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// Why a revision's (or a refresh's) references could not be resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum VaultError {
    /// `spec.vault` cannot be acted on.
    #[error("spec.vault: {0}")]
    Spec(String),
    /// A Secret holds references but no Vault is configured.
    #[error("{location}: {field} holds a Vault reference, but the GitSync has no spec.vault and the controller no VAULT_ADDR; set spec.vault.address and a login method")]
    NotConfigured {
        /// `file: document`.
        location: String,
        /// `stringData.KEY` or `data.KEY`.
        field: String,
    },
    /// A reference outside a Secret's values, where its value would be stored unencrypted.
    #[error("{location}: {field} holds a Vault reference; references are resolved only in the data and stringData of a v1 Secret, since anywhere else the value would be stored unencrypted: move it into a Secret")]
    Outside {
        /// `file: document`.
        location: String,
        /// The field path.
        field: String,
    },
    /// A Secret value holds a malformed reference.
    #[error("{location}")]
    Malformed {
        /// `file: document`.
        location: String,
        /// Which field and what is wrong.
        #[source]
        source: ValueError,
    },
    /// A refresh took too long.
    #[error(
        "the refresh did not finish within {seconds}s: Vault answers too slowly; it is retried"
    )]
    TimedOut {
        /// The bound.
        seconds: u64,
    },
    /// The login failed.
    #[error("logging in to Vault with {method}: {reason}")]
    Login {
        /// `token`, `appRole` or `kubernetes`.
        method: &'static str,
        /// What failed (never the credential).
        reason: String,
    },
    /// One reference could not be read.
    #[error("{location}: Secret {secret}, {field}: reference {reference}")]
    Read {
        /// `file: document`.
        location: String,
        /// `namespace/name`.
        secret: String,
        /// `stringData.KEY` or `data.KEY`.
        field: String,
        /// `PATH#KEY`, as written.
        reference: String,
        /// Why.
        #[source]
        source: Box<ReadError>,
    },
}

impl VaultError {
    /// Whether a change in Git or in the spec is needed (`Stalled`); a Vault that is down, or
    /// a value not yet written, may heal by itself.
    pub(crate) fn is_terminal(&self) -> bool {
        matches!(
            self,
            VaultError::Spec(_)
                | VaultError::NotConfigured { .. }
                | VaultError::Outside { .. }
                | VaultError::Malformed { .. }
        )
    }
}
