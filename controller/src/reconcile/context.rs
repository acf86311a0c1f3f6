//! What the reconciles share: the sync engine, the event recorder, self-heal, the Vault
//! refresher, the webhooks, and the reconcile triggers. The layers below get narrow handles
//! of their own, never this.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;

use crate::support::metrics::Metrics;
use crate::support::Settings;
use crate::sync::engine::Engine;

/// Shared state of the reconciles.
pub(crate) struct Shared {
    /// The controller's API client.
    pub client: Client,
    /// The sync engine (the clients, the keys, Vault, the checksum key).
    pub engine: Engine,
    /// The settings.
    pub settings: Arc<Settings>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The one writer of GitSync status.
    pub status: Arc<crate::status::StatusWriter>,
    /// Where each GitSync's inventory is kept.
    pub inventories: crate::status::InventoryStore,
    /// Events.
    pub recorder: Arc<crate::support::events::EventRecorder>,
    /// Consecutive failures per GitSync uid, for the retry backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// The registered push webhooks.
    pub webhooks: Arc<crate::http::webhook::Webhooks>,
    /// Reconciles asked for (pushes, new keys) and full re-plans asked for (Vault refreshes).
    pub triggers: Arc<crate::support::Triggers>,
    /// The applied objects self-heal watches.
    pub healer: crate::heal::Healer,
    /// The manifest files of each applied revision, for incremental fetches.
    pub files: super::incremental::FileIndexes,
    /// Periodic re-reads of Vault references.
    pub refresher: Arc<crate::refresh::Refresher>,
    /// Keeps GitSyncs whose Git server does not answer from holding every reconcile slot.
    pub fetch_gate: crate::sync::fetch::FetchGate,
    /// The cluster's version and API versions, for Helm's `.Capabilities`.
    pub capabilities: crate::sync::capabilities::CapabilitiesCache,
    /// The client of HTTP chart repositories.
    pub charts: crate::sync::charts::ChartRepositories,
    /// Who waits for whom through `spec.dependsOn`.
    pub dependents: super::dependencies::Dependents,
    /// The trusted keys of `spec.verify`, parsed once per version of their Secret.
    pub keyrings: crate::sync::verify::KeyringCache,
    /// Where applied and failed revisions are announced.
    pub notify: crate::notify::Notifications,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}
