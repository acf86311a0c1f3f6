//! The controller's command line, checked before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::Parser;

use crate::keys;
use crate::support::TrustedNamespaces;
use crate::vault;

/// The sealsync controller: applies GitSyncs, decrypting SealedSecrets on the way.
#[derive(Debug, Parser)]
#[command(name = "sealsync-controller", version)]
pub struct Args {
    /// A kubeconfig file; without it, the in-cluster service account (or `KUBECONFIG`).
    #[arg(long)]
    pub(super) kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    pub(super) context: Option<String>,
    /// The namespace of the controller's keys.
    #[arg(long, short = 'n', default_value = "sealsync-system")]
    pub(super) namespace: String,
    /// Where `/healthz`, `/readyz`, `/metrics` and `/v1/keys` are served. Port 0 picks one and
    /// logs it.
    #[arg(long, default_value = "0.0.0.0:8080")]
    pub(super) http_addr: SocketAddr,
    /// Where bare repositories are kept between fetches.
    #[arg(long)]
    pub(super) data_dir: Option<PathBuf>,
    /// The program that builds kustomize overlays and renders Helm charts. Default:
    /// `sealsync-renderer` beside the controller's executable, where the image puts it.
    #[arg(long, env = "SEALSYNC_RENDERER", value_name = "PATH")]
    pub(super) renderer: Option<PathBuf>,
    /// kustomize builds and Helm renders run at once; each may use 256 MiB, which the pod's
    /// memory limit must leave room for.
    #[arg(long, default_value_t = 2, value_name = "COUNT")]
    pub(super) concurrent_renders: usize,
    /// How long one render may take before the renderer is killed (`spec.timeout` may make
    /// it shorter).
    #[arg(long, default_value = "60s", value_parser = parse_period)]
    pub(super) render_timeout: Duration,
    /// The resident memory one render may use before the renderer is killed, in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub(super) render_memory_mib: u64,
    /// Writes in flight at once during an apply.
    #[arg(long, default_value_t = 8)]
    pub(super) apply_concurrency: usize,
    /// GitSyncs reconciled at once.
    #[arg(long, default_value_t = 4)]
    pub(super) concurrent: u16,
    /// How often a GitSync whose revision has not changed is re-planned in full although its
    /// watches report no drift: a safety net under watch-based self-heal (`0s` re-plans at
    /// every poll, as Flux does).
    #[arg(long, default_value = "1h", value_parser = parse_period)]
    pub(super) full_resync_period: Duration,
    /// The most objects a GitSync's status lists in `status.inventory.entries`. A larger
    /// inventory is kept in ConfigMaps of the GitSync's namespace (`sealsync-inventory-…`, owned
    /// by it), which the status names and vouches for with a digest: a status write then costs
    /// the same whatever the repository's size.
    #[arg(long, default_value_t = 1000, value_name = "COUNT")]
    pub(super) inventory_inline_entries: usize,
    /// A file of recovery recipients (one `age1…` a line; in-cluster, a mounted ConfigMap).
    /// With it the controller keeps every private key, encrypted only to these recipients, in
    /// the Secret `sealsync-key-backup`, rewritten after each rotation (`sealsync keys backup`
    /// reads it). Without it no key ever leaves the cluster in any form.
    #[arg(long, value_name = "FILE")]
    pub(super) recovery_recipients_file: Option<PathBuf>,
    /// A file of the recipients of peer clusters (one `age1…` a line) that `POST /v1/rewrap`
    /// may wrap to besides this cluster's own keys and recovery recipients: a file sealed for
    /// staging and prod stays sealed for both.
    #[arg(long, value_name = "FILE")]
    pub(super) peer_recipients_file: Option<PathBuf>,
    /// Requests a second each caller of `POST /v1/rewrap` may make (and as many at once).
    #[arg(long, default_value_t = 2.0)]
    pub(super) rewrap_rate: f64,
    /// Rotate automatically: generate a new current key once the current one is this old
    /// (such as `720h`). Off by default: nothing is rotated behind your back.
    #[arg(long, value_name = "DURATION", value_parser = parse_period)]
    pub(super) key_rotation_period: Option<Duration>,
    /// Retire automatically a key that is not current and that no synced document has needed
    /// for this long (such as `168h`). Off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_period)]
    pub(super) retire_unused_after: Option<Duration>,
    /// Elect a leader among the replicas on a Lease in the controller's namespace: only the
    /// leader reconciles; the others serve the HTTP endpoints and take over within the
    /// lease's 15 s when the leader goes. The key manager elects its own leader (the Lease
    /// `<id>-keys`), shared by every shard.
    #[arg(long)]
    pub(super) leader_elect: bool,
    /// The Lease's name; with `--watch-label-selector`, a digest of the selector is appended,
    /// so that each shard elects its own leader.
    #[arg(long, default_value = "sealsync-controller")]
    pub(super) leader_election_id: String,
    /// Reconcile only the GitSyncs whose labels match (such as `sealsync.dev/shard=a`, or
    /// `!sealsync.dev/shard` for the unsharded rest): several controller Deployments split
    /// the GitSyncs of one cluster.
    #[arg(long, value_name = "SELECTOR")]
    pub(super) watch_label_selector: Option<String>,
    /// After SIGTERM, how long the reconciles in flight may take to finish before they are
    /// abandoned (their revision is applied again by the next leader); then the Lease is
    /// released. Keep it under the pod's `terminationGracePeriodSeconds`.
    #[arg(long, default_value = "20s", value_parser = parse_period)]
    pub(super) shutdown_timeout: Duration,
    /// The service account, in each GitSync's namespace, that a GitSync without
    /// `spec.serviceAccountName` applies and prunes as (impersonated). With it, every GitSync
    /// is bound by RBAC granted to service accounts of its own namespace; without it, such a
    /// GitSync applies as the controller.
    #[arg(long, value_name = "NAME")]
    pub(super) default_service_account: Option<String>,
    /// Namespaces (comma-separated) whose GitSyncs may act with the controller's own identity:
    /// apply as the controller when they name no `spec.serviceAccountName`, and use its
    /// `VAULT_TOKEN`. The controller's namespace is always trusted, and by default only it:
    /// elsewhere a GitSync must name a service account (or `--default-service-account` names
    /// one for all). `*` trusts every namespace (the open mode: anyone who can create a GitSync
    /// can then do what the controller can); it is logged as a warning at start.
    #[arg(long, value_name = "NAMESPACES")]
    pub(super) trusted_namespaces: Option<String>,
    /// Refuse every GitSync without `spec.verify` (reason `InvalidSpec`): nothing reaches the
    /// cluster unless a trusted key signed it. For security teams that want the rule to hold
    /// cluster-wide.
    #[arg(long)]
    pub(super) require_verified_sources: bool,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    pub(super) log_format: String,
}

/// What the command line says once checked.
#[derive(Debug)]
pub(super) struct Checked {
    /// The controller's `VAULT_*` defaults (read before anything else runs: `VAULT_TOKEN` is
    /// only ever sent to `VAULT_ADDR`).
    pub(super) vault_defaults: vault::Defaults,
    /// `--trusted-namespaces`.
    pub(super) trusted_namespaces: TrustedNamespaces,
}

impl Args {
    /// Checks the flags that can be wrong, and says what each one means for safety.
    pub(super) fn check(&self) -> Result<Checked> {
        let vault_defaults = vault::Defaults::from_env()?;
        let trusted_namespaces =
            TrustedNamespaces::parse(self.trusted_namespaces.as_deref(), &self.namespace)
                .map_err(|e| anyhow::anyhow!("--trusted-namespaces: {e}"))?;
        if trusted_namespaces == TrustedNamespaces::All {
            tracing::warn!(
                "--trusted-namespaces='*': a GitSync in any namespace that names no service account \
                 applies with the controller's own permissions and may use its VAULT_TOKEN, so \
                 anyone who can create a GitSync can do what the controller can; list the \
                 namespaces you trust, or set --default-service-account"
            );
        }
        if let Some(file) = &self.peer_recipients_file {
            keys::backup::read_recipients_setting("--peer-recipients-file", file)?;
        }
        if let Some(name) = &self.default_service_account {
            if !crate::support::is_dns_subdomain(name) {
                anyhow::bail!("--default-service-account: {name:?} is not a service account name");
            }
        }
        if !(self.rewrap_rate.is_finite() && self.rewrap_rate >= 1.0) {
            anyhow::bail!("--rewrap-rate: a number of requests a second, at least 1");
        }
        if let Some(file) = &self.recovery_recipients_file {
            let recipients = keys::backup::read_recovery_recipients(file)?;
            tracing::info!(
                recovery_recipients = ?recipients.iter().map(|r| r.key_id().to_string()).collect::<Vec<_>>(),
                "keys: backups are encrypted to the recovery recipients"
            );
        }
        Ok(Checked {
            vault_defaults,
            trusted_namespaces,
        })
    }
}

pub(super) fn parse_period(text: &str) -> Result<Duration, String> {
    sealsync_core::parse_duration(text).map_err(|e| e.to_string())
}
