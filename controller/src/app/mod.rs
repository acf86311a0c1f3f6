//! The controller's wiring: its flags, the shared state, and the loops it runs until it is
//! told to stop.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::reconcile::Shared;
use crate::support::events::EventRecorder;
use crate::support::Settings;
use crate::sync::engine::Engine;
use crate::{
    heal, http, http::webhook, keys, leader, leader::standby, reconcile, support::metrics, vault,
};
use anyhow::{Context as _, Result};
use clap::Parser;
use futures::StreamExt;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use sealsync_core::{GitSync, REQUESTED_AT_ANNOTATION};

/// The sealsync controller: applies GitSyncs, decrypting SealedSecrets on the way.
#[derive(Debug, Parser)]
#[command(name = "sealsync-controller", version)]
pub struct Args {
    /// A kubeconfig file; without it, the in-cluster service account (or `KUBECONFIG`).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long)]
    context: Option<String>,
    /// The namespace of the controller's keys.
    #[arg(long, short = 'n', default_value = "sealsync-system")]
    namespace: String,
    /// Where `/healthz`, `/readyz`, `/metrics` and `/v1/keys` are served. Port 0 picks one and
    /// logs it.
    #[arg(long, default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Where bare repositories are kept between fetches.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Writes in flight at once during an apply.
    #[arg(long, default_value_t = 8)]
    apply_concurrency: usize,
    /// GitSyncs reconciled at once.
    #[arg(long, default_value_t = 4)]
    concurrent: u16,
    /// How often a GitSync whose revision has not changed is re-planned in full although its
    /// watches report no drift: a safety net under watch-based self-heal (`0s` re-plans at
    /// every poll, as Flux does).
    #[arg(long, default_value = "1h", value_parser = parse_period)]
    full_resync_period: Duration,
    /// A file of recovery recipients (one `age1…` a line; in-cluster, a mounted ConfigMap).
    /// With it the controller keeps every private key, encrypted only to these recipients, in
    /// the Secret `sealsync-key-backup`, rewritten after each rotation (`sealsync keys backup`
    /// reads it). Without it no key ever leaves the cluster in any form.
    #[arg(long, value_name = "FILE")]
    recovery_recipients_file: Option<PathBuf>,
    /// A file of the recipients of peer clusters (one `age1…` a line) that `POST /v1/rewrap`
    /// may wrap to besides this cluster's own keys and recovery recipients: a file sealed for
    /// staging and prod stays sealed for both.
    #[arg(long, value_name = "FILE")]
    peer_recipients_file: Option<PathBuf>,
    /// Requests a second each caller of `POST /v1/rewrap` may make (and as many at once).
    #[arg(long, default_value_t = 2.0)]
    rewrap_rate: f64,
    /// Rotate automatically: generate a new current key once the current one is this old
    /// (such as `720h`). Off by default: nothing is rotated behind your back.
    #[arg(long, value_name = "DURATION", value_parser = parse_period)]
    key_rotation_period: Option<Duration>,
    /// Retire automatically a key that is not current and that no synced document has needed
    /// for this long (such as `168h`). Off by default.
    #[arg(long, value_name = "DURATION", value_parser = parse_period)]
    retire_unused_after: Option<Duration>,
    /// Elect a leader among the replicas on a Lease in the controller's namespace: only the
    /// leader reconciles; the others serve the HTTP endpoints and take over within the
    /// lease's 15 s when the leader goes. The key manager elects its own leader (the Lease
    /// `<id>-keys`), shared by every shard.
    #[arg(long)]
    leader_elect: bool,
    /// The Lease's name; with `--watch-label-selector`, a digest of the selector is appended,
    /// so that each shard elects its own leader.
    #[arg(long, default_value = "sealsync-controller")]
    leader_election_id: String,
    /// Reconcile only the GitSyncs whose labels match (such as `sealsync.dev/shard=a`, or
    /// `!sealsync.dev/shard` for the unsharded rest): several controller Deployments split
    /// the GitSyncs of one cluster.
    #[arg(long, value_name = "SELECTOR")]
    watch_label_selector: Option<String>,
    /// After SIGTERM, how long the reconciles in flight may take to finish before they are
    /// abandoned (their revision is applied again by the next leader); then the Lease is
    /// released. Keep it under the pod's `terminationGracePeriodSeconds`.
    #[arg(long, default_value = "20s", value_parser = parse_period)]
    shutdown_timeout: Duration,
    /// The service account, in each GitSync's namespace, that a GitSync without
    /// `spec.serviceAccountName` applies and prunes as (impersonated). With it, every GitSync
    /// is bound by RBAC granted to service accounts of its own namespace; without it, such a
    /// GitSync applies as the controller.
    #[arg(long, value_name = "NAME")]
    default_service_account: Option<String>,
    /// Namespaces (comma-separated) whose GitSyncs may act with the controller's own identity:
    /// apply as the controller when they name no `spec.serviceAccountName`, and use its
    /// `VAULT_TOKEN`. The controller's namespace is always trusted, and by default only it:
    /// elsewhere a GitSync must name a service account (or `--default-service-account` names
    /// one for all). `*` trusts every namespace (the open mode: anyone who can create a GitSync
    /// can then do what the controller can); it is logged as a warning at start.
    #[arg(long, value_name = "NAMESPACES")]
    trusted_namespaces: Option<String>,
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    log_format: String,
}

/// Runs the controller until SIGTERM, or until it loses its Lease.
pub async fn run(args: Args) -> Result<()> {
    // reqwest (gix over HTTPS) and kube use rustls with this provider; no aws-lc is linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging(&args.log_format);

    // Read before anything else runs; VAULT_TOKEN is only ever sent to VAULT_ADDR.
    let vault_defaults = vault::Defaults::from_env()?;
    let trusted_namespaces = crate::support::TrustedNamespaces::parse(
        args.trusted_namespaces.as_deref(),
        &args.namespace,
    )
    .map_err(|e| anyhow::anyhow!("--trusted-namespaces: {e}"))?;
    if trusted_namespaces == crate::support::TrustedNamespaces::All {
        tracing::warn!(
            "--trusted-namespaces='*': a GitSync in any namespace that names no service account \
             applies with the controller's own permissions and may use its VAULT_TOKEN, so \
             anyone who can create a GitSync can do what the controller can; list the \
             namespaces you trust, or set --default-service-account"
        );
    }
    if let Some(file) = &args.peer_recipients_file {
        keys::backup::read_recipients_setting("--peer-recipients-file", file)?;
    }
    if let Some(name) = &args.default_service_account {
        if !crate::support::is_dns_subdomain(name) {
            anyhow::bail!("--default-service-account: {name:?} is not a service account name");
        }
    }
    if !(args.rewrap_rate.is_finite() && args.rewrap_rate >= 1.0) {
        anyhow::bail!("--rewrap-rate: a number of requests a second, at least 1");
    }
    if let Some(file) = &args.recovery_recipients_file {
        let recipients = keys::backup::read_recovery_recipients(file)?;
        tracing::info!(
            recovery_recipients = ?recipients.iter().map(|r| r.key_id().to_string()).collect::<Vec<_>>(),
            "keys: backups are encrypted to the recovery recipients"
        );
    }
    let (client, config) = client(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {}", args.http_addr))?;
    let http_addr = listener.local_addr().context("reading the HTTP address")?;
    tracing::info!(addr = %http_addr, "http: listening");

    let ring = load_keys(&client, &args.namespace).await;
    let checksum_key = load_checksum_key(&client, &args.namespace).await;
    tracing::info!(key_ids = ?ring.key_ids(), "keys loaded");

    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sealsync-controller"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let (trigger_tx, trigger_rx) = futures::channel::mpsc::unbounded();
    let metrics = Arc::new(metrics::Metrics::default());
    let (healer, heal_queue) =
        heal::Healer::new(client.clone(), metrics.clone(), args.full_resync_period);
    let settings = Arc::new(Settings {
        namespace: args.namespace.clone(),
        data_dir,
        apply_concurrency: args.apply_concurrency,
        ready_timeout: Duration::from_secs(60),
        recovery_recipients_file: args.recovery_recipients_file.clone(),
        peer_recipients_file: args.peer_recipients_file.clone(),
        key_rotation_period: args.key_rotation_period,
        retire_unused_after: args.retire_unused_after,
        default_service_account: args.default_service_account.clone(),
        trusted_namespaces,
    });
    let engine = Engine {
        clients: crate::support::Clients::new(client.clone(), config),
        keys: Arc::new(tokio::sync::RwLock::new(ring)),
        vault: Arc::new(vault::Vault::new(vault_defaults)),
        checksum_key: Arc::new(checksum_key),
        metrics: metrics.clone(),
        settings: settings.clone(),
    };
    let recorder = Arc::new(EventRecorder::new(
        client.clone(),
        "sealsync-controller",
        std::env::var("POD_NAME").ok(),
    ));
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
        recorder: recorder.clone(),
        failures: Default::default(),
        webhooks: webhooks.clone(),
        triggers,
        healer,
        refresher,
        // Slow Git servers get one reconcile slot of the `--concurrent` ones, so a few
        // unresponsive repositories cannot stall every other GitSync.
        fetch_gate: crate::sync::fetch::FetchGate::new(1),
    });
    let ready = Arc::new(AtomicBool::new(false));
    let (reader, writer) = reflector::store();
    let server = tokio::spawn(http::serve(
        listener,
        http_handles,
        ready.clone(),
        reader.clone(),
        args.rewrap_rate,
    ));

    // SIGTERM (or Ctrl-C) asks everything to stop; `finished` says that nothing reconciles
    // any more, so that the Leases may be released.
    let (shutdown_tx, shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("controller: stopping (signal)");
        shutdown_tx.send_replace(true);
    });
    let (finished, finished_rx) = tokio::sync::watch::channel(false);
    let mut elections = Vec::new();
    let identity = leader::identity();
    let mut elect = |name: String| {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let gauge = metrics
            .leader
            .get_or_create(&metrics::LeaseLabels {
                lease: name.clone(),
            })
            .clone();
        let mut observed = rx.clone();
        tokio::spawn(async move {
            loop {
                gauge.set(i64::from(*observed.borrow_and_update()));
                if observed.changed().await.is_err() {
                    return;
                }
            }
        });
        let election = leader::Election {
            namespace: args.namespace.clone(),
            name,
            identity: identity.clone(),
        };
        elections.push(tokio::spawn(leader::run(
            client.clone(),
            election,
            tx,
            wait_until_owned(finished_rx.clone(), true),
        )));
        rx
    };
    let shard_leading = if args.leader_elect {
        elect(leader::lease_name(
            &args.leader_election_id,
            args.watch_label_selector.as_deref(),
        ))
    } else {
        leader::always()
    };
    // Shards share the keys: one replica of them all manages the keys, even when the shards
    // run without leader election.
    let keys_leading = if args.leader_elect || args.watch_label_selector.is_some() {
        elect(format!("{}-keys", args.leader_election_id))
    } else {
        leader::always()
    };

    // The key manager follows every GitSync's status (which keys opened what), whatever
    // shard this replica serves, and answers rotation and retirement requests.
    let gitsyncs_api: Api<GitSync> = Api::all(client.clone());
    let mut watch_config = watcher::Config::default();
    if let Some(selector) = &args.watch_label_selector {
        watch_config = watch_config.labels(selector);
    }
    let usage_changed = Arc::new(tokio::sync::Notify::new());
    let (all_gitsyncs, all_watch) = if args.watch_label_selector.is_some() {
        let (all_reader, all_writer) = reflector::store();
        let notify = usage_changed.clone();
        let watch = watcher(gitsyncs_api.clone(), watcher::Config::default())
            .default_backoff()
            .reflect(all_writer)
            .for_each(move |_| {
                notify.notify_one();
                futures::future::ready(())
            });
        (all_reader, Some(tokio::spawn(watch)))
    } else {
        (reader.clone(), None)
    };
    let first_key_pass = Arc::new(tokio::sync::Notify::new());
    let key_manager = tokio::spawn(keys::manager::run(
        key_handles,
        all_gitsyncs,
        usage_changed.clone(),
        first_key_pass.clone(),
        keys_leading,
    ));
    // The keys' bootstrap (SealingKeys, published recipients) comes before the first
    // reconcile; a slow API server delays the start by at most this.
    if tokio::time::timeout(Duration::from_secs(10), first_key_pass.notified())
        .await
        .is_err()
    {
        tracing::warn!("keys: the key manager's first pass took over 10 s; reconciling meanwhile");
    }

    // Reconcile on spec changes, on `sealsync.dev/requestedAt`, and on deletion; not on the
    // controller's own status writes. The watch runs on every replica (a standby's webhooks
    // and key manager read the cache); only the leader's controller gets its events.
    let (objects_tx, objects_rx) = futures::channel::mpsc::unbounded::<GitSync>();
    let watch_leading = shard_leading.clone();
    let gitsync_watch = tokio::spawn(
        watcher(gitsyncs_api, watch_config.clone())
            .default_backoff()
            .reflect(writer)
            .inspect(move |_| usage_changed.notify_one())
            .applied_objects()
            .predicate_filter(trigger_hash, Default::default())
            .for_each(move |event| {
                match event {
                    Ok(gs) if *watch_leading.borrow() => {
                        let _ = objects_tx.unbounded_send(gs);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!(error = %e, "GitSync watch"),
                }
                futures::future::ready(())
            }),
    );
    let (controller_tx, controller_rx) = futures::channel::mpsc::unbounded();
    let dispatcher = tokio::spawn(standby::dispatch(
        client.clone(),
        trigger_rx,
        shard_leading.clone(),
        controller_tx.clone(),
    ));
    let registrar = tokio::spawn(standby::register_webhooks(
        client.clone(),
        webhooks,
        recorder,
        reader.clone(),
        shard_leading.clone(),
    ));
    ready.store(true, Ordering::Relaxed);

    // Stand by until this replica leads (or is told to stop first).
    let mut leading_now = shard_leading.clone();
    let led = tokio::select! {
        led = leading_now.wait_for(|leading| *leading) => led.is_ok(),
        () = wait_until(&shutdown, true) => false,
    };
    if led {
        if args.leader_elect {
            // Whatever the watch delivered while standing by is reconciled now.
            crate::support::cache::until_listed(&reader).await;
            for gs in reader.state() {
                let _ = controller_tx
                    .unbounded_send(kube::runtime::reflector::ObjectRef::from_obj(&*gs));
            }
        }
        tracing::info!("controller: running");
        let mut signalled = shutdown.clone();
        let lost = shard_leading.clone();
        let controller = Controller::for_stream(objects_rx.map(Ok), reader)
            .with_config(kube::runtime::controller::Config::default().concurrency(args.concurrent))
            // Pushes announced by webhooks reconcile their GitSyncs at once.
            .reconcile_on(controller_rx)
            // Stop taking new work on SIGTERM, or as soon as the Lease is lost: another
            // replica may lead already.
            .graceful_shutdown_on(async move {
                let mut lost = lost;
                tokio::select! {
                    _ = signalled.wait_for(|stop| *stop) => {}
                    _ = lost.wait_for(|leading| !*leading) => {}
                }
            })
            .run(reconcile::reconcile, reconcile::error_policy, shared)
            .for_each(|result| async move {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "controller event");
                }
            });
        tokio::pin!(controller);
        // In-flight reconciles get `--shutdown-timeout` to finish once asked to stop.
        let stopping = async {
            let bound = tokio::select! {
                () = wait_until(&shutdown, true) => args.shutdown_timeout,
                // Another replica may take over once the lease expires: stop well before.
                () = wait_until(&shard_leading, false) => LOST_LEASE_BOUND,
            };
            tokio::time::sleep(bound).await;
        };
        tokio::select! {
            () = &mut controller => {}
            () = stopping => tracing::warn!(
                timeout = ?args.shutdown_timeout,
                "controller: reconciles still running at the shutdown timeout were abandoned; the next leader applies their revisions again"
            ),
        }
    }
    let lost_lease = args.leader_elect && !*shard_leading.borrow() && !*shutdown.borrow();
    // Nothing reconciles any more: the Leases may go to a standby now.
    let _ = finished.send(true);
    for election in elections {
        let _ = tokio::time::timeout(Duration::from_secs(5), election).await;
    }
    gitsync_watch.abort();
    dispatcher.abort();
    registrar.abort();
    if let Some(watch) = all_watch {
        watch.abort();
    }
    server.abort();
    corrections.abort();
    refreshes.abort();
    key_manager.abort();
    if lost_lease {
        // As client-go's controllers do: a replica that lost its Lease restarts and stands by
        // afresh, rather than reconcile beside another leader.
        anyhow::bail!(
            "leader election: lost the Lease; exiting so that this replica restarts as a standby"
        );
    }
    tracing::info!("controller: stopped");
    Ok(())
}

/// How long reconciles in flight may go on once the Lease is lost.
const LOST_LEASE_BOUND: Duration = Duration::from_secs(3);

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves once the flag equals `value` (or its sender is gone).
async fn wait_until(flag: &tokio::sync::watch::Receiver<bool>, value: bool) {
    let mut flag = flag.clone();
    let _ = flag.wait_for(|v| *v == value).await;
}

async fn wait_until_owned(flag: tokio::sync::watch::Receiver<bool>, value: bool) {
    wait_until(&flag, value).await;
}

fn trigger_hash(gs: &GitSync) -> Option<u64> {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    gs.metadata.generation.hash(&mut hasher);
    gs.annotations()
        .get(REQUESTED_AT_ANNOTATION)
        .hash(&mut hasher);
    gs.metadata.deletion_timestamp.is_some().hash(&mut hasher);
    gs.finalizers().hash(&mut hasher);
    Some(hasher.finish())
}

fn parse_period(text: &str) -> Result<Duration, String> {
    sealsync_core::parse_duration(text).map_err(|e| e.to_string())
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,gix=warn"))
        // vaultrs and rustify trace requests and errors of their own; the vault stage reports
        // every failure itself, with the GitSync, the Secret and the reference.
        .add_directive(quiet("vaultrs"))
        .add_directive(quiet("rustify"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn quiet(target: &str) -> tracing_subscriber::filter::Directive {
    format!("{target}=off")
        .parse()
        .unwrap_or_else(|_| tracing_subscriber::filter::LevelFilter::OFF.into())
}

async fn client(args: &Args) -> Result<(Client, kube::Config)> {
    let config =
        sealsync_core::kubeclient::config(args.kubeconfig.as_deref(), args.context.as_deref())
            .await?;
    let client = Client::try_from(config.clone()).context("creating the Kubernetes client")?;
    Ok((client, config))
}

/// Loads the restart checksums' key, retrying with backoff like the keys: a new key would
/// restart every opted-in workload.
async fn load_checksum_key(client: &Client, namespace: &str) -> crate::sync::restarts::ChecksumKey {
    let mut delay = Duration::from_millis(500);
    loop {
        match crate::sync::restarts::ChecksumKey::load_or_create(client, namespace).await {
            Ok(key) => return key,
            Err(e) => {
                tracing::warn!(error = %e, "could not load the restart checksum key; retrying")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}

/// Loads the keys, retrying with backoff while the API server is unreachable: without keys
/// nothing can be decrypted, and readiness stays false.
async fn load_keys(client: &Client, namespace: &str) -> keys::KeyRing {
    let mut delay = Duration::from_millis(500);
    loop {
        match keys::load_or_create(client, namespace).await {
            Ok(ring) => match keys::publish(client, namespace, &ring).await {
                Ok(()) => return ring,
                Err(e) => tracing::warn!(error = %e, "could not publish the public keys; retrying"),
            },
            Err(e) => tracing::warn!(error = %e, "could not load the keys; retrying"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(30));
    }
}
