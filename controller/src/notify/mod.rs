//! Notifications: what GitSyncs did, sent to the Notifiers of their namespace. A provider that
//! is down or slow delays nothing in the sync: a notice goes into a bounded channel without
//! waiting, each Notifier has a bounded outbox of its own (a full one drops its oldest notice,
//! counted), and one task per Notifier delivers with retries, a timeout per request and
//! duplicates suppressed for 5 minutes. Messages are the reasons and messages of status and
//! Events, which never hold a secret value.

mod deliver;
mod matching;
mod payload;
mod providers;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use sealsync_core::{Chain, GitSync, Notifier, NotifyEvent};
use tokio::sync::mpsc;

use crate::support::metrics::Metrics;

/// One thing a GitSync did.
#[derive(Debug, Clone)]
pub(crate) struct Notice {
    /// `GitSync`, or `SealingKey` for a key rotation.
    pub(crate) kind: &'static str,
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) uid: String,
    /// The GitSync's labels, for the Notifiers' selectors (read from the API when the
    /// sender did not have them).
    pub(crate) labels: Option<BTreeMap<String, String>>,
    /// The GitSync's Git URL, whose path names the repository of a commit status.
    pub(crate) url: Option<String>,
    pub(crate) event: NotifyEvent,
    /// The reason, as status and Events give it.
    pub(crate) reason: String,
    /// The message, as status and Events give it.
    pub(crate) message: String,
    /// The revision it is about, when there is one.
    pub(crate) revision: Option<String>,
    /// When, RFC 3339.
    pub(crate) at: String,
}

/// Notices waiting for the dispatcher; beyond this they are dropped (and counted).
const CHANNEL: usize = 4096;

/// Where the controller sends notices.
#[derive(Clone)]
pub(crate) struct Notifications {
    tx: Option<mpsc::Sender<Notice>>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").finish_non_exhaustive()
    }
}

impl Notifications {
    /// Notifications that go nowhere (tests of other parts).
    #[cfg(test)]
    pub(crate) fn disabled(metrics: Arc<Metrics>) -> Self {
        Self { tx: None, metrics }
    }

    /// Sends a notice about `gs`, without waiting.
    pub(crate) fn emit(
        &self,
        gs: &GitSync,
        event: NotifyEvent,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) {
        let key = (gs.namespace().unwrap_or_default(), gs.name_any());
        let who = (
            &key,
            gs.uid().unwrap_or_default(),
            Some(gs.labels().clone()),
        );
        let url = Some(gs.spec.url.clone());
        self.send(who, url, event, (reason, message), revision);
    }

    /// Sends a notice about the GitSync `key` (namespace, name) of `uid`, without waiting.
    pub(crate) fn emit_for(
        &self,
        who: (&(String, String), String, Option<BTreeMap<String, String>>),
        event: NotifyEvent,
        reason: &str,
        message: &str,
        revision: Option<&str>,
    ) {
        self.send(who, None, event, (reason, message), revision);
    }

    fn send(
        &self,
        (key, uid, labels): (&(String, String), String, Option<BTreeMap<String, String>>),
        url: Option<String>,
        event: NotifyEvent,
        (reason, message): (&str, &str),
        revision: Option<&str>,
    ) {
        let Some(tx) = &self.tx else {
            return;
        };
        let notice = Notice {
            kind: "GitSync",
            namespace: key.0.clone(),
            name: key.1.clone(),
            uid,
            labels,
            url,
            event,
            reason: reason.to_owned(),
            message: message.to_owned(),
            revision: revision.map(str::to_owned),
            at: k8s_openapi::jiff::Timestamp::now().to_string(),
        };
        if tx.try_send(notice).is_err() {
            self.metrics.count_notification("any", "dropped");
        }
    }
}

impl Notifications {
    /// Announces a key rotation on the SealingKey `name` (of `uid`) in the controller's
    /// `namespace`, without waiting.
    pub(crate) fn key_rotated(&self, namespace: &str, name: &str, uid: String, message: &str) {
        let Some(tx) = &self.tx else {
            return;
        };
        let notice = Notice {
            kind: "SealingKey",
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            uid,
            labels: Some(BTreeMap::new()),
            url: None,
            event: NotifyEvent::KeyRotated,
            reason: "KeyGenerated".to_owned(),
            message: message.to_owned(),
            revision: None,
            at: k8s_openapi::jiff::Timestamp::now().to_string(),
        };
        if tx.try_send(notice).is_err() {
            self.metrics.count_notification("any", "dropped");
        }
    }
}

/// The event a failure's reason is.
pub(crate) fn failure_event(reason: &str) -> NotifyEvent {
    match reason {
        "VerificationFailed" => NotifyEvent::VerificationFailed,
        "HealthCheckFailed" | "Unhealthy" => NotifyEvent::Unhealthy,
        _ => NotifyEvent::Failed,
    }
}

/// Follows every Notifier and delivers notices to them until the process ends.
pub(crate) fn start(
    client: Client,
    metrics: Arc<Metrics>,
    instance: String,
) -> (Notifications, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(CHANNEL);
    let (reader, writer) = reflector::store();
    let api: Api<Notifier> = Api::all(client.clone());
    let status_client = client.clone();
    let follow = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .for_each(move |event| {
            let client = status_client.clone();
            async move {
                match event {
                    Ok(notifier) => check(&client, &notifier).await,
                    Err(e) => tracing::debug!(error = %Chain(&e), "Notifier watch"),
                }
            }
        });
    let dispatcher = Dispatcher {
        client,
        metrics: metrics.clone(),
        instance,
        notifiers: reader,
        outboxes: HashMap::new(),
    };
    let task = tokio::spawn(async move {
        let follow = tokio::spawn(follow);
        dispatcher.run(rx).await;
        follow.abort();
    });
    (
        Notifications {
            tx: Some(tx),
            metrics,
        },
        task,
    )
}

struct Dispatcher {
    client: Client,
    metrics: Arc<Metrics>,
    instance: String,
    notifiers: Store<Notifier>,
    /// One outbox per Notifier, by uid.
    outboxes: HashMap<String, deliver::Outbox>,
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Notice>) {
        // Notices that come before the Notifiers are known would match none.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            self.notifiers.wait_until_ready(),
        )
        .await;
        while let Some(mut notice) = rx.recv().await {
            let notifiers = self.notifiers.state();
            let selecting = notifiers.iter().any(|n| {
                n.namespace().as_deref() == Some(notice.namespace.as_str())
                    && n.spec.selector.is_some()
            });
            if notice.labels.is_none() && !selecting {
                notice.labels = Some(BTreeMap::new());
            }
            if notice.labels.is_none() {
                let api: Api<GitSync> = Api::namespaced(self.client.clone(), &notice.namespace);
                notice.labels = match api.get_opt(&notice.name).await {
                    Ok(gs) => Some(gs.map(|gs| gs.labels().clone()).unwrap_or_default()),
                    Err(e) => {
                        tracing::debug!(error = %Chain(&e), "reading a GitSync's labels for a notification");
                        Some(BTreeMap::new())
                    }
                };
            }
            // Outboxes of Notifiers that are gone stop.
            self.outboxes.retain(|uid, _| {
                notifiers
                    .iter()
                    .any(|n| n.uid().as_deref() == Some(uid.as_str()))
            });
            for notifier in notifiers.iter().filter(|n| matching::takes(n, &notice)) {
                let uid = notifier.uid().unwrap_or_default();
                let outbox = self.outboxes.entry(uid).or_insert_with(|| {
                    deliver::Outbox::start(
                        self.client.clone(),
                        self.metrics.clone(),
                        self.instance.clone(),
                        self.notifiers.clone(),
                        notifier,
                    )
                });
                outbox.push(notice.clone());
            }
        }
    }
}

/// What is wrong with a Notifier's spec, before anything is sent.
fn invalid(notifier: &Notifier) -> Option<String> {
    use sealsync_core::NotifierType;
    let spec = &notifier.spec;
    if let Some(address) = &spec.address {
        if !(address.starts_with("https://") || address.starts_with("http://")) {
            return Some("spec.address: not an http:// or https:// URL".to_owned());
        }
    }
    if spec
        .secret_ref
        .as_ref()
        .and_then(|r| r.namespace.as_deref())
        .is_some_and(|ns| Some(ns) != notifier.namespace().as_deref())
    {
        return Some(
            "spec.secretRef.namespace: a Notifier reads Secrets of its own namespace only"
                .to_owned(),
        );
    }
    if spec
        .repository
        .as_deref()
        .is_some_and(|r| !sealsync_core::giturl::is_repository_path(r))
    {
        return Some("spec.repository: not an owner/name path".to_owned());
    }
    match spec.type_ {
        NotifierType::Webhook | NotifierType::Slack | NotifierType::Msteams
            if spec.address.is_none() && spec.secret_ref.is_none() =>
        {
            Some(
                "spec.address, or an address in the Secret of spec.secretRef, is required"
                    .to_owned(),
            )
        }
        NotifierType::Github | NotifierType::Gitlab | NotifierType::Gitea
            if spec.secret_ref.is_none() =>
        {
            Some("spec.secretRef is required: its token is the API token".to_owned())
        }
        _ => None,
    }
}

/// Reports a new generation's spec in its status: `Ready` with `Configured` or `InvalidSpec`.
/// Deliveries report themselves afterwards.
async fn check(client: &Client, notifier: &Notifier) {
    let generation = notifier.metadata.generation;
    if notifier.status.as_ref().and_then(|s| s.observed_generation) == generation {
        return;
    }
    let (status, reason, message) = match invalid(notifier) {
        None => (
            "True",
            "Configured",
            "waiting for the first notification".to_owned(),
        ),
        Some(why) => ("False", "InvalidSpec", why),
    };
    let patch = serde_json::json!({"status": {
        "observedGeneration": generation,
        "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
        }],
    }});
    let api: Api<Notifier> =
        Api::namespaced(client.clone(), &notifier.namespace().unwrap_or_default());
    if let Err(e) = api
        .patch_status(
            &notifier.name_any(),
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
    {
        tracing::debug!(error = %Chain(&e), "writing a Notifier's status");
    }
}
