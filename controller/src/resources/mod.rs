//! SealedSecret resources: the sealed document applied as a resource by Argo CD, Flux,
//! `kubectl` or a Helm chart, wherever it is applied. The controller opens each with the
//! cluster keys and writes the Secret it describes, owned by the resource (so deleted with it),
//! with the binding and keys a GitSync's SealedSecret has: the Secret is the resource's own
//! namespace and name. It writes as a GitSync of that namespace without a service account
//! would: as `--default-service-account` of the namespace when one is set, with its own
//! identity in the trusted namespaces, not at all elsewhere. A Secret a GitSync applies is
//! never written here, and a GitSync never writes a Secret written here.
//!
//! Every replica follows the resources (key retirement counts what they use); the replica
//! that holds the keys' Lease reconciles them, for as long as it holds it.

mod error;
mod reconcile;
mod status;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::reflector;
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client};
use sealsync_core::{Chain, SealedSecretResource, SEALED_SECRET_LABEL};
use tokio::sync::{watch, Notify, RwLock};

pub(crate) use error::ResourceError;

use crate::keys::usage::ResourceCache;
use crate::keys::KeyRing;
use crate::support::events::EventRecorder;
use crate::support::metrics::Metrics;
use crate::support::settings::Settings;
use crate::support::{Clients, Leading};

/// What reconciling SealedSecret resources uses of the controller.
pub(crate) struct Resources {
    /// The controller's client: it reads and reports the resources.
    pub(crate) client: Client,
    /// The clients that write Secrets, as the namespace's default service account.
    pub(crate) clients: Clients,
    /// The controller's settings (trusted namespaces, the default service account).
    pub(crate) settings: Arc<Settings>,
    /// The cluster keys.
    pub(crate) keys: Arc<RwLock<KeyRing>>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Events on the resources.
    pub(crate) recorder: Arc<EventRecorder>,
    /// Consecutive failures by resource uid, for the backoff.
    pub(crate) failed: Mutex<HashMap<String, u32>>,
}

impl Resources {
    /// The client that writes the Secrets of `namespace`, or why none may.
    pub(crate) fn client_for(&self, namespace: &str) -> Result<Client, String> {
        let actor = self.settings.actor(namespace, None).map_err(|_| {
            format!(
                "SealedSecret resources in namespace {namespace} are written as the namespace's default service account (--default-service-account) or, in the trusted namespaces ({}; --trusted-namespaces), as the controller: neither applies here",
                self.settings.trusted_namespaces.describe()
            )
        })?;
        self.clients
            .client_as(&actor)
            .map_err(|e| format!("the client for {actor}: {}", Chain(&e)))
    }

    /// Counts a failure (or clears the count after a success); the count before this one.
    pub(crate) fn failures(&self, uid: &str, failed: bool) -> u32 {
        let mut counts = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            let count = counts.entry(uid.to_owned()).or_default();
            let before = *count;
            *count = count.saturating_add(1);
            before
        } else {
            counts.remove(uid);
            0
        }
    }
}

/// Concurrent reconciles of resources: each is a Secret GET, an open and at most one write.
const CONCURRENCY: u16 = 8;

/// Follows every SealedSecret resource into the returned cache for the life of the process
/// (telling `usage_changed`), and reconciles them during each period this replica leads.
pub(crate) fn start(
    ctx: Arc<Resources>,
    usage_changed: Arc<Notify>,
    leading: Leading,
    shutdown: watch::Receiver<bool>,
) -> (ResourceCache, tokio::task::JoinHandle<()>) {
    let (reader, writer) = reflector::store();
    let absent = Arc::new(AtomicBool::new(false));
    let api: Api<SealedSecretResource> = Api::all(ctx.client.clone());
    let flag = absent.clone();
    let follow = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .for_each(move |event| {
            match event {
                Ok(_) => {
                    flag.store(false, Ordering::Relaxed);
                    usage_changed.notify_one();
                }
                Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))
                    if status.code == 404 =>
                {
                    if !flag.swap(true, Ordering::Relaxed) {
                        tracing::error!("SealedSecret resources: the API server does not serve sealedsecrets.sealsync.dev; apply deploy/crds/ (the resources are not reconciled until it does)");
                        usage_changed.notify_one();
                    }
                }
                Err(e) => tracing::debug!(error = %Chain(&e), "SealedSecret watch"),
            }
            futures::future::ready(())
        });
    let cache = ResourceCache {
        store: reader,
        absent,
    };
    let task = tokio::spawn(async move {
        let follow = tokio::spawn(follow);
        let mut leading_now = leading.clone();
        let mut stop = shutdown.clone();
        loop {
            let led = tokio::select! {
                led = leading_now.wait_for(|l| *l) => led.is_ok(),
                _ = stop.wait_for(|s| *s) => false,
            };
            if !led {
                break;
            }
            run_controller(ctx.clone(), leading.clone(), shutdown.clone()).await;
            if *shutdown.borrow() {
                break;
            }
        }
        follow.abort();
    });
    (cache, task)
}

/// Reconciles every resource until this replica stops leading or is told to stop. Each period
/// lists afresh, so what changed while another replica led is reconciled.
async fn run_controller(ctx: Arc<Resources>, leading: Leading, shutdown: watch::Receiver<bool>) {
    let resources: Api<SealedSecretResource> = Api::all(ctx.client.clone());
    let secrets: Api<Secret> = Api::all(ctx.client.clone());
    let mut signalled = shutdown;
    let mut lost = leading;
    tracing::info!("SealedSecret resources: reconciling");
    Controller::new(resources, watcher::Config::default())
        .with_config(kube::runtime::controller::Config::default().concurrency(CONCURRENCY))
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
    tracing::info!("SealedSecret resources: stopped reconciling");
}

/// A status that could not be written: retried soon.
fn error_policy(
    _resource: Arc<SealedSecretResource>,
    error: &ResourceError,
    _ctx: Arc<Resources>,
) -> Action {
    tracing::warn!(error = %Chain(error), "SealedSecret resource: reconcile failed");
    Action::requeue(Duration::from_secs(10))
}
