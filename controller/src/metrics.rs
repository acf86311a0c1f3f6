//! Prometheus metrics, all prefixed `sealsync_`. Labels hold only fixed words (a reason, an
//! action), never names or values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `reason` of a finished reconcile: `Succeeded` or the failure reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The reason.
    pub reason: &'static str,
}

/// `action` of an applied object: `created`, `configured`, `unchanged`, `pruned`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    /// The action.
    pub action: &'static str,
}

/// `event` of a verified webhook request (`ping`, `push`, `other`), or `reason` of a refused
/// one.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// The event or the refusal.
    pub kind: &'static str,
}

/// Every metric the controller exports.
#[derive(Debug)]
pub struct Metrics {
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
        Self {
            registry,
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
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts objects under `action`.
    pub fn count_objects(&self, action: &'static str, n: usize) {
        self.objects
            .get_or_create(&ActionLabels { action })
            .inc_by(n as u64);
    }
}
