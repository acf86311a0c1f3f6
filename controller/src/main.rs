//! `sealsync-controller`: runs in the cluster with its service account, or anywhere with
//! `--kubeconfig`.

use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use futures::StreamExt;
use kube::runtime::{reflector, watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use sealsync_controller::context::{Settings, Shared};
use sealsync_controller::events::EventRecorder;
use sealsync_controller::{heal, http, keys, metrics, reconcile, vault, webhook};
use sealsync_core::{GitSync, REQUESTED_AT_ANNOTATION};

/// The sealsync controller: applies GitSyncs, decrypting SealedSecrets on the way.
#[derive(Debug, Parser)]
#[command(name = "sealsync-controller", version)]
struct Args {
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
    /// Log format: `text` or `json`.
    #[arg(long, default_value = "text")]
    log_format: String,
}

#[tokio::main]
async fn main() -> Result<()> {
    // reqwest (gix over HTTPS) and kube use rustls with this provider; no aws-lc is linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = Args::parse();
    init_logging(&args.log_format);

    // Read before anything else runs; VAULT_TOKEN is only ever sent to VAULT_ADDR.
    let vault_defaults = vault::Defaults::from_env()?;
    if let Some(file) = &args.peer_recipients_file {
        keys::backup::read_recipients_setting("--peer-recipients-file", file)?;
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
    let client = client(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding the HTTP address {}", args.http_addr))?;
    let http_addr = listener.local_addr().context("reading the HTTP address")?;
    tracing::info!(addr = %http_addr, "http: listening");

    let ring = load_keys(&client, &args.namespace).await;
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
    let shared = Arc::new(Shared {
        client: client.clone(),
        settings: Settings {
            namespace: args.namespace.clone(),
            data_dir,
            apply_concurrency: args.apply_concurrency,
            ready_timeout: Duration::from_secs(60),
            recovery_recipients_file: args.recovery_recipients_file.clone(),
            peer_recipients_file: args.peer_recipients_file.clone(),
            key_rotation_period: args.key_rotation_period,
            retire_unused_after: args.retire_unused_after,
        },
        keys: tokio::sync::RwLock::new(ring),
        metrics: metrics.clone(),
        recorder: EventRecorder::new(
            client.clone(),
            "sealsync-controller",
            std::env::var("POD_NAME").ok(),
        ),
        failures: Default::default(),
        webhooks: webhook::Webhooks::new(trigger_tx.clone()),
        reconcile_now: trigger_tx,
        healer,
        vault: vault::Vault::new(vault_defaults),
    });
    let refreshes = tokio::spawn(vault::run_refreshes(shared.clone()));
    let corrections = tokio::spawn(heal::run_corrections(shared.clone(), heal_queue));
    let ready = Arc::new(AtomicBool::new(false));
    let (reader, writer) = reflector::store();
    let server = tokio::spawn(http::serve(
        listener,
        shared.clone(),
        ready.clone(),
        reader.clone(),
        args.rewrap_rate,
    ));

    // The key manager follows the GitSyncs' status (which keys opened what), and answers
    // rotation and retirement requests.
    let usage_changed = Arc::new(tokio::sync::Notify::new());
    let first_key_pass = Arc::new(tokio::sync::Notify::new());
    let key_manager = tokio::spawn(keys::manager::run(
        shared.clone(),
        reader.clone(),
        usage_changed.clone(),
        first_key_pass.clone(),
    ));
    // The keys' bootstrap (SealingKeys, published recipients) comes before the first
    // reconcile; a slow API server delays the start by at most this.
    if tokio::time::timeout(Duration::from_secs(10), first_key_pass.notified())
        .await
        .is_err()
    {
        tracing::warn!("keys: the key manager's first pass took over 10 s; reconciling meanwhile");
    }

    let api: Api<GitSync> = Api::all(client.clone());
    // Reconcile on spec changes, on `sealsync.dev/requestedAt`, and on deletion; not on the
    // controller's own status writes.
    let trigger = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect(move |_| usage_changed.notify_one())
        .applied_objects()
        .predicate_filter(trigger_hash, Default::default());
    ready.store(true, Ordering::Relaxed);
    tracing::info!("controller: running");
    Controller::for_stream(trigger, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(args.concurrent))
        // Pushes announced by webhooks reconcile their GitSyncs at once.
        .reconcile_on(trigger_rx)
        .shutdown_on_signal()
        .run(reconcile::reconcile, reconcile::error_policy, shared)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller event");
            }
        })
        .await;
    server.abort();
    corrections.abort();
    refreshes.abort();
    key_manager.abort();
    tracing::info!("controller: stopped");
    Ok(())
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

async fn client(args: &Args) -> Result<Client> {
    let (client, _) =
        sealsync_core::kubeclient::client(args.kubeconfig.as_deref(), args.context.as_deref())
            .await?;
    Ok(client)
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
