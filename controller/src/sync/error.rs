//! The controller's one error type. Each variant maps to the `Ready=False` reason it reports
//! and to a metric label; messages name files, documents and fields, never values.

use crate::keys::KeysError;
use crate::sync::apply::ApplyError;
use crate::sync::decrypt::DecryptError;
use crate::sync::fetch::SourceError;
use crate::sync::verify::VerificationError;
use crate::vault::VaultError;
use sealsync_core::render::RenderError;
use sealsync_core::{SpecError, UnhealthyObject};

use super::progress::SyncStage;

/// Why a reconcile failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum Error {
    /// The GitSync's spec cannot be acted on.
    #[error("{0}")]
    Spec(String),
    /// `spec.ref` is invalid.
    #[error(transparent)]
    Ref(#[from] SpecError),
    /// The credentials Secret is missing or incomplete.
    #[error("{0}")]
    Credentials(String),
    /// Fetching failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// `spec.verify` did not accept the revision: nothing of it was read further.
    #[error(transparent)]
    Verification(#[from] VerificationError),
    /// The tree did not render.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// A SealedSecret did not open, or a plaintext Secret was refused.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// Vault references could not be resolved.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// The apply failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// Prune failed for some objects.
    #[error("prune: {0}")]
    Prune(String),
    /// The cluster keys could not be read.
    #[error(transparent)]
    Keys(#[from] KeysError),
    /// The sync did not finish within `spec.timeout`.
    #[error("the {} stage did not finish within the timeout of {seconds}s (spec.timeout); it is retried", stage.name())]
    Timeout {
        /// The stage it was in.
        stage: SyncStage,
        /// The timeout.
        seconds: u64,
    },
    /// A wave of the revision did not become healthy, so the waves after it were not applied.
    #[error(
        "wave {wave} {}: {}; {skipped}",
        if *timed_out { "did not become healthy within spec.timeout" } else { "failed its health check" },
        UnhealthyObject::summarize(objects)
    )]
    Unhealthy {
        /// The wave.
        wave: i64,
        /// Its objects that were not healthy.
        objects: Vec<UnhealthyObject>,
        /// Time ran out (rather than an object failing).
        timed_out: bool,
        /// What was not done because of it: `wave 1 was not applied`.
        skipped: String,
    },
    /// A hook failed, or did not succeed within `spec.timeout`.
    #[error(
        "{phase} hook {}: {}; {skipped}",
        if *timed_out { "did not succeed within spec.timeout" } else { "failed" },
        UnhealthyObject::summarize(objects)
    )]
    HookFailed {
        /// `pre-sync` or `post-sync`.
        phase: &'static str,
        /// The hooks that did not succeed.
        objects: Vec<UnhealthyObject>,
        /// Time ran out (rather than a hook failing).
        timed_out: bool,
        /// What was not done because of it.
        skipped: &'static str,
    },
    /// A GitSync of `spec.dependsOn` is not Ready yet.
    #[error("{0}")]
    DependencyNotReady(String),
    /// `spec.dependsOn` leads back to this GitSync.
    #[error("spec.dependsOn: a cycle: {0}; remove one of these dependencies")]
    DependencyCycle(String),
    /// Another error whose message had values of Secret-sourced substitution variables masked
    /// (an API server's message may quote the object it refused).
    #[error("{message}")]
    Masked {
        /// The original error's reason.
        reason: &'static str,
        /// Whether the original error was terminal.
        terminal: bool,
        /// The masked message.
        message: String,
    },
    /// Writing status or reading the GitSync failed.
    #[error("{action}")]
    Kube {
        /// What was being done.
        action: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// This error with every one of `values` masked in its message; itself when none shows.
    pub(crate) fn masking(mut self, values: &[zeroize::Zeroizing<String>]) -> Self {
        if values.is_empty() {
            return self;
        }
        // Health failures keep their kind (status.health, rollback): their objects are masked.
        if let Error::Unhealthy { objects, .. } | Error::HookFailed { objects, .. } = &mut self {
            mask_objects(objects, values);
            return self;
        }
        let message = sealsync_core::Chain(&self).to_string();
        let masked = sealsync_core::substitute::mask_values(&message, values);
        if masked == message {
            return self;
        }
        Error::Masked {
            reason: self.reason(),
            terminal: self.is_terminal(),
            message: masked,
        }
    }

    /// The `Ready=False` reason.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Error::Spec(_) | Error::Ref(_) => "InvalidSpec",
            Error::Credentials(_) => "AuthenticationFailed",
            Error::Source(e) if e.is_authentication() => "AuthenticationFailed",
            Error::Source(_) => "FetchFailed",
            // The API did not answer: not a verdict on the revision.
            Error::Verification(e) if e.is_transient() => "ApiFailed",
            Error::Verification(_) => "VerificationFailed",
            Error::Render(_) => "RenderFailed",
            Error::Decrypt(_) => "DecryptionFailed",
            Error::Vault(_) => "VaultFailed",
            Error::Apply(_) => "ApplyFailed",
            Error::Prune(_) => "PruneFailed",
            Error::Keys(_) => "KeysUnavailable",
            Error::Timeout { stage, .. } => stage.timeout_reason(),
            Error::Kube { .. } => "ApiFailed",
            Error::Unhealthy { .. } => "HealthCheckFailed",
            Error::HookFailed { .. } => "HookFailed",
            Error::DependencyNotReady(_) => "DependencyNotReady",
            Error::DependencyCycle(_) => "DependencyCycle",
            Error::Masked { reason, .. } => reason,
        }
    }

    /// A short stable label for metrics.
    pub(crate) fn metric_label(&self) -> &'static str {
        self.reason()
    }

    /// Whether retrying the same revision and spec cannot succeed: a change in Git or in the
    /// spec is needed. Reported as `Stalled=True`.
    pub(crate) fn is_terminal(&self) -> bool {
        match self {
            Error::Render(e) => !e.is_retryable(),
            Error::Spec(_) | Error::Ref(_) | Error::Decrypt(_) => true,
            // A new commit or new trusted keys are needed; the interval looks again.
            Error::Verification(e) => !e.is_transient(),
            Error::Apply(e) => !e.is_transient(),
            Error::Vault(e) => e.is_terminal(),
            Error::Masked { terminal, .. } => *terminal,
            // Running a failed migration again and again on its own could do harm: it runs
            // again at the next interval, a new commit or `sealsync sync`.
            Error::HookFailed { .. } | Error::DependencyCycle(_) => true,
            _ => false,
        }
    }
}

/// `object` with `mask` applied to every text it names.
fn mask_object(object: &mut UnhealthyObject, mask: &impl Fn(&mut String)) {
    mask(&mut object.name);
    mask(&mut object.message);
    if let Some(namespace) = &mut object.namespace {
        mask(namespace);
    }
}

/// `objects` with every one of `values` masked in the texts they name.
pub(crate) fn mask_objects(objects: &mut [UnhealthyObject], values: &[zeroize::Zeroizing<String>]) {
    if values.is_empty() {
        return;
    }
    let mask = |text: &mut String| {
        *text = sealsync_core::substitute::mask_values(text, values);
    };
    objects.iter_mut().for_each(|o| mask_object(o, &mask));
}
