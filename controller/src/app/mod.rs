//! The controller's wiring: its flags, the shared state, and the loops it runs until it is
//! told to stop.

mod args;
mod elections;
mod lead;
mod startup;
mod wiring;

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt;
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::{Api, ResourceExt};
use sealsync_core::Chain;
use sealsync_core::{GitSync, REQUESTED_AT_ANNOTATION};

pub use args::Args;
use elections::Elections;
use startup::{client, init_logging, load_checksum_key, load_keys, wait_for_signal, wait_until};

use crate::{http, keys, leader, leader::standby, resources};

/// Runs the controller until SIGTERM, or until it loses its Lease.
pub async fn run(args: Args) -> Result<()> {
    // reqwest (gix over HTTPS) and kube use rustls with this provider; no aws-lc is linked.
    let _ = rustls::crypto::ring::default_provider().install_default();
    init_logging(&args.log_format);

    let checked = args.check()?;
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
    let wiring::Wired {
        shared,
        metrics,
        key_handles,
        http_handles,
        webhooks,
        recorder,
        trigger_rx,
        refreshes,
        corrections,
    } = wiring::wire(
        &args,
        checked,
        client.clone(),
        config,
        ring,
        checksum_key,
        data_dir,
    );
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
    let mut elections = Elections::new(
        client.clone(),
        args.namespace.clone(),
        metrics.clone(),
        finished_rx,
    );
    let shard_leading = if args.leader_elect {
        elections.elect(leader::lease_name(
            &args.leader_election_id,
            args.watch_label_selector.as_deref(),
        ))
    } else {
        leader::always()
    };
    // Shards share the keys: one replica of them all manages the keys, even when the shards
    // run without leader election.
    let keys_leading = if args.leader_elect || args.watch_label_selector.is_some() {
        elections.elect(format!("{}-keys", args.leader_election_id))
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
    // SealedSecret resources, wherever they are applied: followed by every replica (their
    // usage of the keys counts), reconciled by the one that manages the keys.
    let (resources_store, resources_task) = resources::start(
        Arc::new(resources::Resources {
            client: client.clone(),
            clients: shared.engine.clients.clone(),
            settings: shared.settings.clone(),
            keys: key_handles.keys.clone(),
            metrics: metrics.clone(),
            recorder: recorder.clone(),
            failed: Default::default(),
        }),
        usage_changed.clone(),
        keys_leading.clone(),
        shutdown.clone(),
    );
    let first_key_pass = Arc::new(tokio::sync::Notify::new());
    let key_manager = tokio::spawn(keys::manager::run(
        key_handles,
        (all_gitsyncs, resources_store),
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
                    Err(e) => tracing::debug!(error = %Chain(&e), "GitSync watch"),
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
        lead::reconcile_while_leading(
            &args,
            shared,
            lead::Streams {
                reader,
                objects: objects_rx,
                requests: controller_rx,
                requests_tx: controller_tx,
            },
            shard_leading.clone(),
            shutdown.clone(),
        )
        .await;
    }
    let lost_lease = args.leader_elect && !*shard_leading.borrow() && !*shutdown.borrow();
    // Nothing reconciles any more: the Leases may go to a standby now.
    let _ = finished.send(true);
    elections.release().await;
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
    resources_task.abort();
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
