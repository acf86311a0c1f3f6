//! The handles each layer gets, built once at start: the sync engine, self-heal's
//! corrections, the Vault refresher, the key manager's and the HTTP surface's handles, and
//! the reconciler's shared state.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::UnboundedReceiver;
use kube::runtime::reflector::ObjectRef;
use kube::Client;
use sealsync_core::GitSync;
use tokio::task::JoinHandle;

use super::args::{Args, Checked};
use crate::http::webhook;
use crate::reconcile::Shared;
use crate::support::events::EventRecorder;
use crate::support::metrics;
use crate::support::Settings;
use crate::sync::engine::Engine;
use crate::sync::restarts::ChecksumKey;
use crate::{heal, http, keys, vault};

/// What [`wire`] built.
pub(super) struct Wired {
    pub(super) shared: Arc<Shared>,
    pub(super) metrics: Arc<metrics::Metrics>,
    pub(super) key_handles: Arc<keys::KeyHandles>,
    pub(super) http_handles: Arc<http::Handles>,
    pub(super) webhooks: Arc<webhook::Webhooks>,
    pub(super) recorder: Arc<EventRecorder>,
    /// Reconciles asked for by pushes and new keys.
    pub(super) trigger_rx: UnboundedReceiver<ObjectRef<GitSync>>,
    /// The Vault refresh loop.
    pub(super) refreshes: JoinHandle<()>,
    /// Self-heal's corrections.
    pub(super) corrections: JoinHandle<()>,
}

/// Builds every layer's handles and starts the refresh and correction loops.
pub(super) fn wire(
    args: &Args,
    checked: Checked,
    client: Client,
    config: kube::Config,
    ring: keys::KeyRing,
    checksum_key: ChecksumKey,
    data_dir: std::path::PathBuf,
) -> Wired {
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded();
    let metrics = Arc::new(metrics::Metrics::default());
    let (healer, heal_queue) =
        heal::Healer::new(client.clone(), metrics.clone(), args.full_resync_period);
    let renderer = sealsync_core::renderer::Renderer::new(
        args.renderer
            .clone()
            .unwrap_or_else(sealsync_core::renderer::Renderer::beside_current_exe),
        data_dir.join("render"),
        sealsync_core::renderer::RendererLimits::default()
            .with_timeout(args.render_timeout)
            .with_memory_bytes(args.render_memory_mib.saturating_mul(1024 * 1024)),
    );
    let settings = Arc::new(Settings {
        namespace: args.namespace.clone(),
        data_dir,
        apply_concurrency: args.apply_concurrency,
        renderer,
        render_slots: Arc::new(tokio::sync::Semaphore::new(args.concurrent_renders.max(1))),
        ready_timeout: Duration::from_secs(60),
        recovery_recipients_file: args.recovery_recipients_file.clone(),
        peer_recipients_file: args.peer_recipients_file.clone(),
        key_rotation_period: args.key_rotation_period,
        retire_unused_after: args.retire_unused_after,
        default_service_account: args.default_service_account.clone(),
        trusted_namespaces: checked.trusted_namespaces,
        require_verified_sources: args.require_verified_sources,
    });
    let engine = Engine {
        clients: crate::support::Clients::new(client.clone(), config),
        keys: Arc::new(tokio::sync::RwLock::new(ring)),
        vault: Arc::new(vault::Vault::new(checked.vault_defaults)),
        checksum_key: Arc::new(checksum_key),
        metrics: metrics.clone(),
        settings: settings.clone(),
        health: crate::health::HealthWatches::new(client.clone(), metrics.clone()),
    };
    let recorder = Arc::new(EventRecorder::new(
        client.clone(),
        "sealsync-controller",
        std::env::var("POD_NAME").ok(),
    ));
    let (notify, _notifications) = crate::notify::start(
        client.clone(),
        metrics.clone(),
        std::env::var("POD_NAME").unwrap_or_else(|_| "sealsync-controller".to_owned()),
    );
    let webhooks = Arc::new(webhook::Webhooks::new(trigger_tx.clone()));
    let triggers = Arc::new(crate::support::Triggers::new(trigger_tx));
    let refresher = Arc::new(crate::refresh::Refresher::default());
    let status_writer = Arc::new(crate::status::StatusWriter::new(client.clone()));
    let refreshes = tokio::spawn(crate::refresh::run_refreshes(Arc::new(
        crate::refresh::Refreshes {
            engine: engine.clone(),
            refresher: refresher.clone(),
            healer: healer.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            triggers: triggers.clone(),
            status: status_writer.clone(),
        },
    )));
    let corrections = tokio::spawn(heal::run_corrections(
        Arc::new(heal::Corrections {
            engine: engine.clone(),
            healer: healer.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            notify: notify.clone(),
            status: status_writer.clone(),
        }),
        heal_queue,
    ));
    let key_handles = Arc::new(keys::KeyHandles {
        client: client.clone(),
        keys: engine.keys.clone(),
        settings: settings.clone(),
        metrics: metrics.clone(),
        recorder: recorder.clone(),
        triggers: triggers.clone(),
        notify: notify.clone(),
    });
    let http_handles = Arc::new(http::Handles {
        client: client.clone(),
        keys: engine.keys.clone(),
        settings: settings.clone(),
        metrics: metrics.clone(),
        webhooks: webhooks.clone(),
    });
    let shared = Arc::new(Shared {
        client: client.clone(),
        engine,
        settings,
        metrics: metrics.clone(),
        status: status_writer,
        inventories: crate::status::InventoryStore::new(
            client.clone(),
            args.inventory_inline_entries,
        ),
        recorder: recorder.clone(),
        failures: Default::default(),
        webhooks: webhooks.clone(),
        triggers,
        healer,
        refresher,
        // Slow Git servers get one reconcile slot of the `--concurrent` ones, so a few
        // unresponsive repositories cannot stall every other GitSync.
        fetch_gate: crate::sync::fetch::FetchGate::new(1),
        capabilities: Default::default(),
        charts: Default::default(),
        files: Default::default(),
        dependents: Default::default(),
        keyrings: Default::default(),
        notify,
    });
    Wired {
        shared,
        metrics,
        key_handles,
        http_handles,
        webhooks,
        recorder,
        trigger_rx,
        refreshes,
        corrections,
    }
}
