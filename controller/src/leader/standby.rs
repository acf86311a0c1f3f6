//! What a replica does while another one leads: it serves `/v1/keys`, `/v1/rewrap` and the
//! push webhooks, and hands each verified push to the leader by setting
//! `sealsync.dev/requestedAt` on the GitSync, which the leader's watch turns into a
//! reconcile (as `sealsync sync` does).

use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures::StreamExt;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use sealsync_core::Chain;
use sealsync_core::{GitSync, REQUESTED_AT_ANNOTATION};

use crate::http::webhook::{register_from_spec, Webhooks};
use crate::support::events::EventRecorder;
use crate::support::Leading;

/// How often a standby reads the webhook Secrets again (a rotated token takes effect).
const REGISTER_EVERY: Duration = Duration::from_secs(10);

/// Routes reconcile requests (pushes, new keys): to this replica's controller while it leads,
/// else to the leader through the GitSync's annotation.
pub(crate) async fn dispatch(
    client: kube::Client,
    mut requests: UnboundedReceiver<ObjectRef<GitSync>>,
    leading: Leading,
    controller: UnboundedSender<ObjectRef<GitSync>>,
) {
    while let Some(request) = requests.next().await {
        if *leading.borrow() {
            // The receiver lives as long as the controller runs.
            let _ = controller.unbounded_send(request);
        } else {
            forward(&client, &request).await;
        }
    }
}

async fn forward(client: &kube::Client, request: &ObjectRef<GitSync>) {
    let Some(namespace) = request.namespace.as_deref() else {
        return;
    };
    let api: Api<GitSync> = Api::namespaced(client.clone(), namespace);
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let patch = serde_json::json!({"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: now}}});
    match api
        .patch(
            &request.name,
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => tracing::info!(
            gitsync = %format!("{namespace}/{}", request.name),
            "standby: asked the leader to reconcile"
        ),
        Err(e) => tracing::warn!(
            gitsync = %format!("{namespace}/{}", request.name),
            error = %Chain(&e),
            "standby: could not ask the leader to reconcile"
        ),
    }
}

/// Keeps the push webhooks registered while this replica stands by (the leader registers
/// them as it reconciles), so that a push reaching any replica is accepted.
pub(crate) async fn register_webhooks(
    client: kube::Client,
    webhooks: Arc<Webhooks>,
    recorder: Arc<EventRecorder>,
    gitsyncs: Store<GitSync>,
    mut leading: Leading,
) {
    crate::support::cache::until_listed(&gitsyncs).await;
    loop {
        if *leading.borrow() {
            return;
        }
        for gs in gitsyncs.state() {
            register_from_spec(&client, &webhooks, &recorder, &gs, false).await;
        }
        tokio::select! {
            _ = leading.changed() => {}
            () = tokio::time::sleep(REGISTER_EVERY) => {}
        }
    }
}
