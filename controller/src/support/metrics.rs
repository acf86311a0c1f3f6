//! Prometheus metrics, all prefixed `sealsync_`. Labels hold only fixed words (a reason, an
//! action), the name of a kind or resource, or a GitSync's namespace and name; never a value.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `reason` of a finished reconcile: `Succeeded` or the failure reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ReasonLabels {
    /// The reason.
    pub reason: &'static str,
}

/// `action` of an applied object: `created`, `configured`, `unchanged`, `pruned`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ActionLabels {
    /// The action.
    pub action: &'static str,
}

/// `event` of a verified webhook request (`ping`, `push`, `other`), or `reason` of a refused
/// one.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WebhookLabels {
    /// The event or the refusal.
    pub kind: &'static str,
}

/// `mode` of a planned revision: `incremental` (only what changed since the applied
/// revision) or `full` (every object).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PlanLabels {
    /// The mode.
    pub mode: &'static str,
}

/// `engine` (`kustomize`, `helm`) and `result` (`success`, `failure`) of a render.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct RenderLabels {
    /// The engine.
    pub engine: &'static str,
    /// How it ended.
    pub result: &'static str,
}

/// `kind` of a corrected object (`ConfigMap`, `Deployment`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    /// The object's kind.
    pub kind: String,
}

/// `resource` of a self-heal watch (`configmaps`, `deployments`, …).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct WatchLabels {
    /// The plural resource name.
    pub resource: String,
}

/// `source` of an apply: `reconcile` (a full reconcile) or `heal` (a drift correction).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct SourceLabels {
    /// Which path applied.
    pub source: &'static str,
}

/// `operation` (`login`, `renew`, `mount`, `read`) and `result` (`ok` or why not) of a
/// Vault request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct VaultLabels {
    /// What was asked.
    pub operation: &'static str,
    /// How it went.
    pub result: &'static str,
}

/// A GitSync's `namespace` and `name`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct GitSyncLabels {
    /// The GitSync's namespace.
    pub namespace: String,
    /// The GitSync's name.
    pub name: String,
}

/// `result` of a request: `ok` or why not.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ResultLabels {
    /// How it went.
    pub result: &'static str,
}

/// A notification's provider type and what became of it (`sent`, `failed`, `dropped`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct NotificationLabels {
    /// The Notifier's type (`any` for a notice dropped before it was matched).
    pub r#type: &'static str,
    /// What became of it.
    pub result: &'static str,
}

/// `state` of a key: `Active`, `Retired`, `Missing`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabels {
    /// The state.
    pub state: &'static str,
}

/// `key_id` of a cluster key (public: derived from the recipient).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KeyLabels {
    /// The key id.
    pub key_id: String,
}

/// `lease` of a leader election.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct LeaseLabels {
    /// The Lease's name.
    pub lease: String,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    /// Reconcile durations by result.
    pub reconcile_duration: Family<ReasonLabels, Histogram>,
    /// Objects by what was done to them.
    pub objects: Family<ActionLabels, Counter>,
    /// SealedSecrets that could not be opened.
    pub decrypt_failures: Counter,
    /// Verified webhook requests, by event.
    pub webhooks_received: Family<WebhookLabels, Counter>,
    /// Refused webhook requests, by reason.
    pub webhooks_rejected: Family<WebhookLabels, Counter>,
    /// Objects written back after drift, by kind.
    pub drift_corrections: Family<KindLabels, Counter>,
    /// Self-heal watches started again after a failure, by resource.
    pub watch_restarts: Family<WatchLabels, Counter>,
    /// Objects written to the API server, by source.
    pub apply_writes: Family<SourceLabels, Counter>,
    /// Applies skipped because the dry-run matched the live object, by source.
    pub apply_noops: Family<SourceLabels, Counter>,
    /// Polls that found the revision unchanged and every object watched and in sync: one ref
    /// listing, no API request.
    pub polls_unchanged: Counter,
    /// New revisions planned, by mode (`incremental`, `full`).
    pub revisions_planned: Family<PlanLabels, Counter>,
    /// kustomize builds and Helm renders, by engine and result.
    pub renders: Family<RenderLabels, Counter>,
    /// Reconciles that did nothing, by why (`suspended`).
    pub reconciles_skipped: Family<ReasonLabels, Counter>,
    /// Seconds from a verified push webhook to its revision applied.
    pub push_to_applied: Histogram,
    /// Vault requests by operation and result.
    pub vault_requests: Family<VaultLabels, Counter>,
    /// Seconds to resolve every reference of a revision or a refresh.
    pub vault_resolve: Histogram,
    /// When each GitSync's references were last refreshed successfully (Unix seconds).
    pub vault_last_refresh: Family<GitSyncLabels, Gauge>,
    /// Re-wrap requests by result.
    pub rewrap_requests: Family<ResultLabels, Counter>,
    /// Cluster keys by state.
    pub keys: Family<StateLabels, Gauge>,
    /// Synced documents each key opens.
    pub key_documents: Family<KeyLabels, Gauge>,
    /// When the oldest key that opens a synced document was created (Unix seconds; 0 when no
    /// document is synced).
    pub oldest_key_in_use: Gauge,
    /// 1 while this replica holds the Lease, 0 while it stands by.
    pub leader: Family<LeaseLabels, Gauge>,
    /// Health waits of revisions, by result (`healthy`, `failed`, `timeout`).
    pub health_checks: Family<ResultLabels, Counter>,
    /// Seconds a revision waited for its objects to become healthy.
    pub health_wait: Histogram,
    /// Revisions `spec.verify` did not accept, by reason.
    pub verification_failures: Family<ReasonLabels, Counter>,
    /// Reconciles of SealedSecret resources, by result (`written`, `unchanged`, or the
    /// failure's reason).
    pub sealed_secret_resources: Family<ResultLabels, Counter>,
    /// Notifications by provider type and result.
    pub notifications: Family<NotificationLabels, Counter>,
}

impl Metrics {
    /// Counts one notification.
    pub(crate) fn count_notification(&self, kind: &'static str, result: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels {
                r#type: kind,
                result,
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sealsync");
        let reconcile_duration = Family::<ReasonLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 14))
        });
        registry.register(
            "reconcile_duration_seconds",
            "How long each reconcile took, by result reason",
            reconcile_duration.clone(),
        );
        let objects = Family::<ActionLabels, Counter>::default();
        registry.register(
            "objects",
            "Objects handled by reconciles, by action",
            objects.clone(),
        );
        let decrypt_failures = Counter::default();
        registry.register(
            "decrypt_failures",
            "SealedSecrets that could not be opened",
            decrypt_failures.clone(),
        );
        let webhooks_received = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks_received",
            "Verified webhook requests, by event (kind: ping, push, other)",
            webhooks_received.clone(),
        );
        let webhooks_rejected = Family::<WebhookLabels, Counter>::default();
        registry.register(
            "webhooks_rejected",
            "Refused webhook requests, by reason (kind)",
            webhooks_rejected.clone(),
        );
        let drift_corrections = Family::<KindLabels, Counter>::default();
        registry.register(
            "drift_corrections",
            "Objects written back by self-heal after a change or deletion, by kind",
            drift_corrections.clone(),
        );
        let watch_restarts = Family::<WatchLabels, Counter>::default();
        registry.register(
            "watch_restarts",
            "Self-heal watches listed and started again after a failure, by resource",
            watch_restarts.clone(),
        );
        let apply_writes = Family::<SourceLabels, Counter>::default();
        registry.register(
            "apply_writes",
            "Objects written by server-side apply, by source (reconcile, heal)",
            apply_writes.clone(),
        );
        let apply_noops = Family::<SourceLabels, Counter>::default();
        registry.register(
            "apply_noops",
            "Applies skipped because the dry-run matched the live object, by source (reconcile, heal)",
            apply_noops.clone(),
        );
        let polls_unchanged = Counter::default();
        registry.register(
            "polls_unchanged",
            "Polls that found the revision unchanged and every object watched and in sync",
            polls_unchanged.clone(),
        );
        let revisions_planned = Family::<PlanLabels, Counter>::default();
        registry.register(
            "revisions_planned",
            "New revisions planned, by mode: incremental (only what changed since the applied revision) or full",
            revisions_planned.clone(),
        );
        let renders = Family::<RenderLabels, Counter>::default();
        registry.register(
            "renders",
            "kustomize builds and Helm renders, by engine and result",
            renders.clone(),
        );
        let reconciles_skipped = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "reconciles_skipped",
            "Reconciles that did nothing, by why (suspended)",
            reconciles_skipped.clone(),
        );
        let push_to_applied = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register(
            "push_to_applied_seconds",
            "Seconds from a verified push webhook to its revision applied",
            push_to_applied.clone(),
        );
        let vault_requests = Family::<VaultLabels, Counter>::default();
        registry.register(
            "vault_requests",
            "Vault requests, by operation (login, renew, mount, read) and result",
            vault_requests.clone(),
        );
        let vault_resolve = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "vault_resolve_seconds",
            "Seconds to resolve every Vault reference of a revision or a refresh",
            vault_resolve.clone(),
        );
        let vault_last_refresh = Family::<GitSyncLabels, Gauge>::default();
        registry.register(
            "vault_last_refresh_timestamp_seconds",
            "When each GitSync's Vault references were last refreshed successfully",
            vault_last_refresh.clone(),
        );
        let rewrap_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "rewrap_requests",
            "Requests to /v1/rewrap, by result (ok, unauthenticated, forbidden, rate_limited, bad_request, untrusted_recipient, unopenable, unavailable)",
            rewrap_requests.clone(),
        );
        let keys = Family::<StateLabels, Gauge>::default();
        registry.register(
            "keys",
            "Cluster sealing keys, by state (Active, Retired, Missing)",
            keys.clone(),
        );
        let key_documents = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "key_documents",
            "Synced SealedSecrets each key opens (the newest key that opens a document counts)",
            key_documents.clone(),
        );
        let oldest_key_in_use = Gauge::default();
        registry.register(
            "oldest_key_in_use_created_timestamp_seconds",
            "When the oldest key that still opens a synced document was created",
            oldest_key_in_use.clone(),
        );
        let leader = Family::<LeaseLabels, Gauge>::default();
        registry.register(
            "leader",
            "1 while this replica holds the Lease (it reconciles, or manages the keys), 0 while it stands by",
            leader.clone(),
        );
        let health_checks = Family::<ResultLabels, Counter>::default();
        registry.register(
            "health_checks",
            "Health waits of revisions, by result (healthy, failed, timeout)",
            health_checks.clone(),
        );
        let notifications = Family::<NotificationLabels, Counter>::default();
        registry.register(
            "notifications",
            "Notifications by Notifier type and result (sent, failed, dropped)",
            notifications.clone(),
        );
        let sealed_secret_resources = Family::<ResultLabels, Counter>::default();
        registry.register(
            "sealedsecret_resource_reconciles",
            "Reconciles of SealedSecret resources, by result",
            sealed_secret_resources.clone(),
        );
        let verification_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "verification_failures",
            "Revisions whose signatures spec.verify did not accept, by reason (unsigned, untrusted_key, bad_signature, expired_key, revoked_key, keys, …)",
            verification_failures.clone(),
        );
        let health_wait = Histogram::new(exponential_buckets(0.01, 2.0, 16));
        registry.register(
            "health_wait_seconds",
            "Seconds a revision waited for its objects to become healthy",
            health_wait.clone(),
        );
        Self {
            registry,
            leader,
            health_checks,
            health_wait,
            verification_failures,
            sealed_secret_resources,
            notifications,
            rewrap_requests,
            keys,
            key_documents,
            oldest_key_in_use,
            vault_requests,
            vault_resolve,
            vault_last_refresh,
            drift_corrections,
            watch_restarts,
            apply_writes,
            apply_noops,
            polls_unchanged,
            revisions_planned,
            renders,
            reconciles_skipped,
            push_to_applied,
            reconcile_duration,
            objects,
            decrypt_failures,
            webhooks_received,
            webhooks_rejected,
        }
    }
}

impl Metrics {
    /// The text exposition format.
    pub(crate) fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts writes and skipped no-op applies of `source`.
    pub(crate) fn count_applies(&self, source: &'static str, writes: usize, noops: usize) {
        self.apply_writes
            .get_or_create(&SourceLabels { source })
            .inc_by(writes as u64);
        self.apply_noops
            .get_or_create(&SourceLabels { source })
            .inc_by(noops as u64);
    }

    /// Counts one Vault request.
    pub(crate) fn count_vault(&self, operation: &'static str, result: &'static str) {
        self.vault_requests
            .get_or_create(&VaultLabels { operation, result })
            .inc();
    }

    /// Counts objects under `action`.
    pub(crate) fn count_objects(&self, action: &'static str, n: usize) {
        self.objects
            .get_or_create(&ActionLabels { action })
            .inc_by(n as u64);
    }
}
