//! SealedSecret resources: the sealed document applied as a resource by Argo CD, Flux,
//! `kubectl` or a Helm chart, wherever it is applied. The controller opens each with the
//! cluster keys and writes the Secret it describes, owned by the resource (so deleted with it),
//! with the binding, keys and tenancy a GitSync's SealedSecret has: the Secret is the
//! resource's own namespace and name. A Secret a GitSync applies is never written here, and
//! a GitSync never writes a Secret written here.
//!
//! Every replica follows the resources (key retirement counts what they use); the replica
//! that holds the keys' Lease reconciles them.

mod error;
mod reconcile;
mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client};
use sealsync_core::{Chain, SealedSecretResource, SEALED_SECRET_LABEL};
use tokio::sync::{watch, Notify, RwLock};

pub(crate) use error::ResourceError;

use crate::keys::KeyRing;
use crate::support::events::EventRecorder;
use crate::support::metrics::Metrics;
use crate::support::Leading;

/// What reconciling SealedSecret resources uses of the controller.
pub(crate) struct Resources {
    /// The controller's client: it writes the Secrets itself.
    pub(crate) client: Client,
    /// The cluster keys.
    pub(crate) keys: Arc<RwLock<KeyRing>>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Events on the resources.
    pub(crate) recorder: Arc<EventRecorder>,
}

/// Concurrent reconciles of resources: each is a Secret GET, an open and at most one write.
const CONCURRENCY: u16 = 8;

/// Follows every SealedSecret resource into the returned cache (telling `usage_changed`), and
/// reconciles them while `leading`, until `shutdown`.
pub(crate) fn start(
    ctx: Arc<Resources>,
    usage_changed: Arc<Notify>,
    leading: Leading,
    shutdown: watch::Receiver<bool>,
) -> (Store<SealedSecretResource>, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let (objects_tx, objects_rx) = futures::channel::mpsc::unbounded::<SealedSecretResource>();
    let api: Api<SealedSecretResource> = Api::all(ctx.client.clone());
    let watch_leading = leading.clone();
    let watch = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .inspect(move |_| usage_changed.notify_one())
        .applied_objects()
        // Spec changes and deletions; not the controller's own status writes.
        .predicate_filter(kube::runtime::predicates::generation, Default::default())
        .for_each(move |event| {
            match event {
                Ok(resource) if *watch_leading.borrow() => {
                    let _ = objects_tx.unbounded_send(resource);
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %Chain(&e), "SealedSecret watch"),
            }
            futures::future::ready(())
        });
    let store = reader.clone();
    let task = tokio::spawn(async move {
        let watch = tokio::spawn(watch);
        let mut leading_now = leading.clone();
        let mut stop = shutdown.clone();
        let led = tokio::select! {
            led = leading_now.wait_for(|l| *l) => led.is_ok(),
            _ = stop.wait_for(|s| *s) => false,
        };
        if led {
            run_controller(ctx, reader, objects_rx, leading, shutdown).await;
        }
        watch.abort();
    });
    (store, task)
}

async fn run_controller(
    ctx: Arc<Resources>,
    reader: Store<SealedSecretResource>,
    objects: futures::channel::mpsc::UnboundedReceiver<SealedSecretResource>,
    leading: Leading,
    shutdown: watch::Receiver<bool>,
) {
    // What was watched before this replica led is reconciled now.
    crate::support::cache::until_listed(&reader).await;
    let (all_tx, all_rx) = futures::channel::mpsc::unbounded();
    for resource in reader.state() {
        let _ = all_tx.unbounded_send(ObjectRef::from_obj(&*resource));
    }
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let mut signalled = shutdown;
    let mut lost = leading;
    Controller::for_stream(objects.map(Ok), reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY))
        .reconcile_on(all_rx)
        // An owned Secret edited or deleted by hand is written again.
        .owns(
            secrets,
            watcher::Config::default().labels(SEALED_SECRET_LABEL),
        )
        .graceful_shutdown_on(async move {
            tokio::select! {
                _ = signalled.wait_for(|stop| *stop) => {}
                _ = lost.wait_for(|leading| !*leading) => {}
            }
        })
        .run(reconcile::reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %Chain(&e), "SealedSecret controller event");
            }
        })
        .await;
    drop(all_tx);
}

fn error_policy(
    _resource: Arc<SealedSecretResource>,
    error: &ResourceError,
    _ctx: Arc<Resources>,
) -> Action {
    tracing::warn!(error = %Chain(error), "SealedSecret resource: reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
