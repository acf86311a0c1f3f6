//! The controller's settings, from its command line.

use std::path::PathBuf;
use std::time::Duration;

use super::{is_dns_subdomain, Actor, TrustedNamespaces};

/// Settings from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where the controller's keys live.
    pub namespace: String,
    /// Where each GitSync's bare repository is kept.
    pub data_dir: PathBuf,
    /// Writes in flight at once during an apply.
    pub apply_concurrency: usize,
    /// The renderer of kustomize overlays and Helm charts.
    pub renderer: sealsync_core::renderer::Renderer,
    /// Renders allowed at once.
    pub render_slots: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long CRDs and Namespaces of a revision may take to become ready.
    pub ready_timeout: Duration,
    /// The recovery recipients the key backup is encrypted to; no backup without it.
    pub recovery_recipients_file: Option<PathBuf>,
    /// Recipients of peer clusters `/v1/rewrap` may also wrap to.
    pub peer_recipients_file: Option<PathBuf>,
    /// Rotate the current key once it is this old; never without it.
    pub key_rotation_period: Option<Duration>,
    /// Retire a non-current key once no synced document has needed it for this long; never
    /// without it.
    pub retire_unused_after: Option<Duration>,
    /// The service account (in each GitSync's namespace) a GitSync without
    /// `spec.serviceAccountName` applies as; without it such a GitSync applies as the
    /// controller, if its namespace is trusted.
    pub default_service_account: Option<String>,
    /// Namespaces whose GitSyncs may act with the controller's own identity.
    pub trusted_namespaces: TrustedNamespaces,
    /// `--require-verified-sources`: every GitSync must have `spec.verify`.
    pub require_verified_sources: bool,
}

impl Settings {
    /// Who the GitSync in `namespace` with `spec.serviceAccountName` = `service_account`
    /// acts as.
    pub(crate) fn actor(
        &self,
        namespace: &str,
        service_account: Option<&str>,
    ) -> Result<Actor, String> {
        let Some(name) = service_account.or(self.default_service_account.as_deref()) else {
            if self.trusted_namespaces.contains(namespace) {
                return Ok(Actor::Controller);
            }
            return Err(format!(
                "spec.serviceAccountName is required in namespace {namespace}: only GitSyncs in \
                 the trusted namespaces ({}; --trusted-namespaces) may apply with the \
                 controller's own permissions; name a service account of {namespace} with a \
                 Role for what the repository holds",
                self.trusted_namespaces.describe()
            ));
        };
        if !is_dns_subdomain(name) {
            return Err(format!(
                "spec.serviceAccountName: {name:?} is not a service account name"
            ));
        }
        Ok(Actor::ServiceAccount(format!(
            "system:serviceaccount:{namespace}:{name}"
        )))
    }
}
