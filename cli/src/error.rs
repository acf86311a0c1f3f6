//! One error type for the CLI: what went wrong, and what to do about it.

use std::fmt;

use sealsync_core::manifest::ManifestError;
use sealsync_core::Chain;
use sealsync_crypto::Error as CryptoError;

/// A user-facing failure. `message` says what is wrong; `hint` says what to do.
#[derive(Debug)]
pub struct CliError {
    message: String,
    hint: Option<String>,
}

impl CliError {
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            hint: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with where it happened (a file, a document).
    pub fn context(mut self, place: impl fmt::Display) -> Self {
        self.message = format!("{place}: {}", self.message);
        self
    }

    /// Turns a crypto error into a CLI error with the advice that fits it.
    pub fn from_crypto(err: &CryptoError) -> Self {
        let hint = match err {
            CryptoError::NoMatchingIdentity { .. } => {
                "pass an identity file of one of those key ids with -i (a recovery key, or a \
                 cluster key backup)"
            }
            CryptoError::BindingMismatch { .. } => {
                "a sealed value opens only where it was sealed for; seal it again for its new \
                 place, or seal it with --scope namespace|cluster if it must move"
            }
            CryptoError::Tampered { .. } => {
                "the file was altered after sealing: restore it from version control, or seal \
                 the value again"
            }
            CryptoError::UnsupportedVersion { .. } => {
                "this document was written by a newer sealsync: upgrade sealsync"
            }
            CryptoError::Malformed { .. } => {
                "fix the document at that place, or seal the Secret again with `sealsync seal`"
            }
            CryptoError::InvalidRecipient { .. } => {
                "recipients are age X25519 public keys (age1…): print one with `sealsync keys \
                 generate`, or ask the cluster operator for the cluster's public keys"
            }
            CryptoError::InvalidIdentity { .. } => {
                "pass an age identity file (AGE-SECRET-KEY-1… lines), as written by `sealsync \
                 keys generate` or age-keygen"
            }
            CryptoError::NoRecipients => {
                "pass --recipient age1…, --recipients-file FILE, or add a rule to .sealsync.yaml"
            }
            CryptoError::LimitExceeded { .. } => {
                "split the input into smaller Secrets or files (YAML aliases count once per use)"
            }
            CryptoError::Backup { .. } => {
                "pass the file `sealsync keys backup` wrote, with -i the recovery identity whose \
                 public recipient is in the controller's --recovery-recipients-file"
            }
            _ => "report this as a bug in sealsync",
        };
        CliError::new(Chain(err).to_string()).with_hint(hint)
    }

    /// Turns a manifest reading error into a CLI error with the advice that fits it.
    pub fn from_manifest(err: &ManifestError) -> Self {
        let hint = match err {
            ManifestError::Format(inner) => return CliError::from_crypto(inner),
            ManifestError::Malformed { .. } => {
                "fix the document at that place, or seal the Secret again with `sealsync seal`"
            }
            ManifestError::LimitExceeded { .. } => {
                "split the input into smaller Secrets or files (YAML aliases count once per use)"
            }
            _ => "report this as a bug in sealsync",
        };
        CliError::new(Chain(err).to_string()).with_hint(hint)
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn hint(&self) -> Option<&str> {
        self.hint.as_deref()
    }
}

impl From<ManifestError> for CliError {
    fn from(err: ManifestError) -> Self {
        CliError::from_manifest(&err)
    }
}

impl From<CryptoError> for CliError {
    fn from(err: CryptoError) -> Self {
        CliError::from_crypto(&err)
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

pub type CliResult<T> = Result<T, CliError>;
