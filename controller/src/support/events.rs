//! Kubernetes Events (`events.k8s.io/v1`), with repeats folded into a series.
//!
//! kube-runtime's `Recorder` folds repeats by object, reason and type but not by message: a
//! second `DriftCorrected` about another object, or a `ReconciliationSucceeded` of a new
//! revision, only bumps the count of the first Event and keeps its old message. Here the message
//! is part of the key, so each distinct message is its own Event and an identical one within
//! [`SERIES_TTL`] becomes a series, as client-go's recorder does.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;

/// How long an Event is extended rather than created again.
const SERIES_TTL: Duration = Duration::from_secs(600);
/// The most Events remembered for folding; older ones are forgotten first.
const MAX_REMEMBERED: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    uid: String,
    warning: bool,
    reason: String,
    note: String,
}

#[derive(Debug)]
struct Published {
    name: String,
    count: i32,
    at: Instant,
}

/// Publishes Events as the controller.
pub(crate) struct EventRecorder {
    client: Client,
    controller: String,
    instance: String,
    published: Mutex<HashMap<Key, Published>>,
}

impl std::fmt::Debug for EventRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventRecorder")
            .field("controller", &self.controller)
            .finish_non_exhaustive()
    }
}

impl EventRecorder {
    /// A recorder reporting as `controller` (`instance`, the pod, defaults to it).
    pub(crate) fn new(client: Client, controller: &str, instance: Option<String>) -> Self {
        Self {
            client,
            controller: controller.to_owned(),
            instance: instance.unwrap_or_else(|| controller.to_owned()),
            published: Mutex::new(HashMap::new()),
        }
    }

    /// Publishes an Event about `regarding`; a repeat of the same message within
    /// [`SERIES_TTL`] extends the earlier Event's series instead.
    pub(crate) async fn publish(
        &self,
        regarding: &ObjectReference,
        warning: bool,
        reason: &str,
        action: &str,
        note: &str,
    ) -> Result<(), kube::Error> {
        let namespace = regarding.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let key = Key {
            namespace,
            uid: regarding.uid.clone().unwrap_or_default(),
            warning,
            reason: reason.to_owned(),
            note: note.to_owned(),
        };
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let repeat = {
            let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
            published.retain(|_, p| p.at.elapsed() < SERIES_TTL);
            published.get_mut(&key).map(|p| {
                p.count = p.count.saturating_add(1);
                p.at = Instant::now();
                (p.name.clone(), p.count)
            })
        };
        if let Some((name, count)) = repeat {
            let patch = serde_json::json!({
                "series": EventSeries { count, last_observed_time: now.clone() },
            });
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => return Ok(()),
                // Deleted meanwhile (Events expire): create it again below.
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        let event = Event {
            metadata: ObjectMeta {
                // client-go's form: `<object>.<nanoseconds in hex>`.
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.0.as_nanosecond()
                )),
                namespace: Some(key.namespace.clone()),
                ..Default::default()
            },
            action: Some(action.to_owned()),
            reason: Some(reason.to_owned()),
            note: Some(note.to_owned()),
            regarding: Some(regarding.clone()),
            event_time: Some(now),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(if warning { "Warning" } else { "Normal" }.to_owned()),
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if published.len() >= MAX_REMEMBERED {
            if let Some(oldest) = published
                .iter()
                .min_by_key(|(_, p)| p.at)
                .map(|(k, _)| k.clone())
            {
                published.remove(&oldest);
            }
        }
        published.insert(
            key,
            Published {
                name: created.metadata.name.unwrap_or_default(),
                count: 1,
                at: Instant::now(),
            },
        );
        Ok(())
    }
}
