//! What the leader does: reconcile GitSyncs with the controller runtime until it is told to
//! stop or loses its Lease, giving reconciles in flight a bounded time to finish.

use std::sync::Arc;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::Controller;
use sealsync_core::Chain;
use sealsync_core::GitSync;
use tokio::sync::watch;

use super::startup::{wait_until, LOST_LEASE_BOUND};
use super::Args;
use crate::reconcile::{self, Shared};
use crate::support::Leading;

/// The streams the controller runtime reconciles from.
pub(super) struct Streams {
    /// The GitSync cache.
    pub(super) reader: Store<GitSync>,
    /// GitSyncs whose spec, `requestedAt` or deletion changed.
    pub(super) objects: UnboundedReceiver<GitSync>,
    /// Reconciles asked for (pushes, new keys).
    pub(super) requests: UnboundedReceiver<ObjectRef<GitSync>>,
    /// Where those are sent.
    pub(super) requests_tx: UnboundedSender<ObjectRef<GitSync>>,
}

/// Reconciles until `shutdown`, or until `leading` turns false.
pub(super) async fn reconcile_while_leading(
    args: &Args,
    shared: Arc<Shared>,
    streams: Streams,
    shard_leading: Leading,
    shutdown: watch::Receiver<bool>,
) {
    if args.leader_elect {
        // Whatever the watch delivered while standing by is reconciled now.
        crate::support::cache::until_listed(&streams.reader).await;
        for gs in streams.reader.state() {
            let _ = streams
                .requests_tx
                .unbounded_send(kube::runtime::reflector::ObjectRef::from_obj(&*gs));
        }
    }
    tracing::info!("controller: running");
    let mut signalled = shutdown.clone();
    let lost = shard_leading.clone();
    let controller = Controller::for_stream(streams.objects.map(Ok), streams.reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(args.concurrent))
        // Pushes announced by webhooks reconcile their GitSyncs at once.
        .reconcile_on(streams.requests)
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
                tracing::debug!(error = %Chain(&e), "controller event");
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
