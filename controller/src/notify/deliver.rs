//! One Notifier's outbox and the task that empties it: duplicates within 5 minutes dropped,
//! each notice posted with a timeout and retried with backoff and jitter, the outcome in the
//! Notifier's status and the metrics. Credentials never follow a redirect: none is followed.

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};
use sealsync_core::Notifier;
use tokio::sync::Notify;
use zeroize::Zeroizing;

use super::providers;
use super::Notice;
use crate::support::metrics::Metrics;
use sealsync_core::giturl::{host_of_git_url, repository_of};

/// Notices one Notifier may have waiting; a full outbox drops its oldest.
const OUTBOX: usize = 256;
/// How long an identical notice is not sent again.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(300);
/// Attempts per notice.
const ATTEMPTS: u32 = 5;
/// The first retry's delay; it doubles.
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// One request's limit, connecting included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest CA bundle read from the Secret.
const MAX_CA_BYTES: usize = 256 * 1024;

/// A Notifier's queue; its task stops when this is dropped.
pub(super) struct Outbox {
    queue: Arc<Mutex<VecDeque<Notice>>>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
    metrics: Arc<Metrics>,
    kind: &'static str,
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Outbox {
    pub(super) fn start(
        client: Client,
        metrics: Arc<Metrics>,
        instance: String,
        notifiers: Store<Notifier>,
        notifier: &Notifier,
    ) -> Self {
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let wake = Arc::new(Notify::new());
        let worker = Worker {
            client,
            metrics: metrics.clone(),
            instance,
            notifiers,
            namespace: notifier.namespace().unwrap_or_default(),
            name: notifier.name_any(),
            queue: queue.clone(),
            wake: wake.clone(),
            sent: HashMap::new(),
        };
        Self {
            queue,
            wake,
            task: tokio::spawn(worker.run()),
            metrics,
            kind: notifier.spec.type_.name(),
        }
    }

    /// Queues `notice`, dropping the oldest when full.
    pub(super) fn push(&self, notice: Notice) {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if queue.len() >= OUTBOX {
            queue.pop_front();
            self.metrics.count_notification(self.kind, "dropped");
        }
        queue.push_back(notice);
        drop(queue);
        self.wake.notify_one();
    }
}

struct Worker {
    client: Client,
    metrics: Arc<Metrics>,
    instance: String,
    notifiers: Store<Notifier>,
    namespace: String,
    name: String,
    queue: Arc<Mutex<VecDeque<Notice>>>,
    wake: Arc<Notify>,
    /// The last notice sent about each object (kind, namespace, name): its digest and when.
    /// Only a repeat of that one is suppressed, so a failure after a success is sent again.
    sent: HashMap<(&'static str, String, String), (u64, Instant)>,
}

/// What a delivery needs from the Notifier and its Secret.
struct Target {
    address: Option<String>,
    token: Option<Zeroizing<Vec<u8>>>,
    ca: Option<Vec<u8>>,
}

impl Worker {
    async fn run(mut self) {
        loop {
            let next = self
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            let Some(notice) = next else {
                self.wake.notified().await;
                continue;
            };
            let key = kube::runtime::reflector::ObjectRef::<Notifier>::new(&self.name)
                .within(&self.namespace);
            let Some(notifier) = self.notifiers.get(&key) else {
                return;
            };
            let digest = digest(&notice);
            let about = (notice.kind, notice.namespace.clone(), notice.name.clone());
            self.sent
                .retain(|_, (_, at)| at.elapsed() < DUPLICATE_WINDOW);
            if self
                .sent
                .get(&about)
                .is_some_and(|(last, _)| *last == digest)
            {
                continue;
            }
            let kind = notifier.spec.type_.name();
            let outcome = self.deliver(&notifier, &notice).await;
            if outcome == Ok(Delivery::Skipped) {
                continue;
            }
            if outcome.is_ok() {
                self.sent.insert(about, (digest, Instant::now()));
            }
            self.metrics
                .count_notification(kind, if outcome.is_ok() { "sent" } else { "failed" });
            if let Err(e) = &outcome {
                tracing::warn!(notifier = %format!("{}/{}", self.namespace, self.name), error = %e, "notification not delivered");
            }
            let outcome = outcome.map(drop);
            // The Notifier as it is now: its spec may have changed during the delivery.
            let Some(notifier) = self.notifiers.get(&key) else {
                return;
            };
            self.report(&notifier, outcome).await;
        }
    }

    async fn target(&self, notifier: &Notifier) -> Result<Target, String> {
        let mut target = Target {
            address: notifier.spec.address.clone(),
            token: None,
            ca: None,
        };
        if let Some(secret_ref) = &notifier.spec.secret_ref {
            let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
            let secret = secrets
                .get_opt(&secret_ref.name)
                .await
                .map_err(|e| format!("reading Secret {}: {}", secret_ref.name, api_reason(&e)))?
                .ok_or_else(|| format!("spec.secretRef: Secret {} not found", secret_ref.name))?;
            if secret.type_.as_deref() == Some("kubernetes.io/service-account-token") {
                return Err(format!(
                    "spec.secretRef: Secret {} is a service-account token, which a Notifier never sends",
                    secret_ref.name
                ));
            }
            let mut data = secret.data.unwrap_or_default();
            target.token = data.remove("token").map(|b| {
                let token = Zeroizing::new(b.0);
                // As a Secret made with `echo token > file` holds it: without the newline.
                Zeroizing::new(token.trim_ascii().to_vec())
            });
            if let Some(address) = data.remove("address") {
                target.address = Some(
                    String::from_utf8(address.0)
                        .map_err(|_| format!("Secret {}: address is not text", secret_ref.name))?
                        .trim()
                        .to_owned(),
                );
            }
            if let Some(ca) = data.remove("ca.crt") {
                if ca.0.len() > MAX_CA_BYTES {
                    return Err(format!(
                        "Secret {}: ca.crt is larger than {MAX_CA_BYTES} bytes",
                        secret_ref.name
                    ));
                }
                target.ca = Some(ca.0);
            }
            for value in data.values_mut() {
                zeroize::Zeroize::zeroize(&mut value.0);
            }
        }
        if target
            .address
            .as_deref()
            .is_some_and(|a| !(a.starts_with("https://") || a.starts_with("http://")))
        {
            return Err("the address is not an http:// or https:// URL".to_owned());
        }
        // A token travels over TLS, unless to this host.
        if target.token.is_some()
            && target
                .address
                .as_deref()
                .is_some_and(|a| a.starts_with("http://") && !is_loopback(&host_of(a)))
        {
            return Err(
                "a token is sent over https:// only (http:// only to a loopback address)"
                    .to_owned(),
            );
        }
        Ok(target)
    }

    async fn deliver(&self, notifier: &Notifier, notice: &Notice) -> Result<Delivery, String> {
        let target = self.target(notifier).await?;
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .no_proxy();
        if let Some(pem) = &target.ca {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| "ca.crt: not PEM certificates".to_owned())?;
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder
            .build()
            .map_err(|e| format!("building the HTTP client: {e}"))?;
        let repository = notifier
            .spec
            .repository
            .clone()
            .or_else(|| notice.url.as_deref().and_then(repository_of));
        let git_host = notice.url.as_deref().and_then(host_of_git_url);
        let request = providers::request(
            &providers::Target {
                kind: notifier.spec.type_,
                address: target.address.as_deref(),
                token: target.token.as_deref().map(Vec::as_slice),
                repository: repository.as_deref(),
                git_host: git_host.as_deref(),
                instance: &self.instance,
            },
            notice,
        )?;
        let Some(request) = request else {
            return Ok(Delivery::Skipped);
        };
        let mut last = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let mut sent = http
                .post(&request.url)
                .header("Content-Type", "application/json")
                .body(request.body.clone());
            for (name, value) in &request.headers {
                sent = sent.header(*name, value);
            }
            match sent.send().await {
                Ok(response) if response.status().is_success() => return Ok(Delivery::Sent),
                Ok(response) => {
                    let status = response.status();
                    last = format!("{} answered {}", host_of(&request.url), status.as_u16());
                    // A request the receiver refuses will be refused again; a redirect is not
                    // followed (credentials would go with it).
                    let refused = status.is_client_error()
                        && status.as_u16() != 429
                        && status.as_u16() != 408;
                    if refused || status.is_redirection() {
                        return Err(last);
                    }
                }
                Err(e) => {
                    last = format!(
                        "{}: {}",
                        host_of(&request.url),
                        if e.is_timeout() {
                            "no answer within the timeout"
                        } else if e.is_connect() {
                            "the connection failed"
                        } else {
                            "the request failed"
                        }
                    );
                }
            }
        }
        Err(format!("{last} (after {ATTEMPTS} attempts)"))
    }

    /// The delivery's outcome in the Notifier's status.
    async fn report(&self, notifier: &Notifier, outcome: Result<(), String>) {
        let previous = notifier.status.as_ref();
        let (ready, reason, message) = match &outcome {
            Ok(()) => (
                "True",
                "Delivered",
                "the last notification was delivered".to_owned(),
            ),
            Err(e) => ("False", "DeliveryFailed", e.clone()),
        };
        let mut conditions = previous.map(|s| s.conditions.clone()).unwrap_or_default();
        crate::status::set_condition(
            &mut conditions,
            "Ready",
            ready == "True",
            reason,
            &message,
            notifier.metadata.generation,
        );
        let condition: Vec<&Condition> = conditions.iter().filter(|c| c.type_ == "Ready").collect();
        let mut status = serde_json::json!({
            "conditions": condition,
            "observedGeneration": notifier.metadata.generation,
        });
        match outcome {
            Ok(()) => {
                status["lastDelivery"] =
                    serde_json::json!(Time(k8s_openapi::jiff::Timestamp::now()));
                status["lastError"] = serde_json::Value::Null;
            }
            Err(e) => status["lastError"] = serde_json::Value::from(e),
        }
        let api: Api<Notifier> = Api::namespaced(self.client.clone(), &self.namespace);
        if let Err(e) = api
            .patch_status(
                &self.name,
                &PatchParams::default(),
                &Patch::Merge(&serde_json::json!({ "status": status })),
            )
            .await
        {
            tracing::debug!(error = %api_reason(&e), "writing a Notifier's status");
        }
    }
}

/// What became of a notice that did not fail.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Delivered.
    Sent,
    /// This type says nothing about it (a commit status for a drift correction).
    Skipped,
}

/// A notice's identity for duplicate suppression: what it says, about what, and which
/// revision.
fn digest(notice: &Notice) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (
        &notice.namespace,
        &notice.name,
        notice.event,
        &notice.reason,
        &notice.message,
        &notice.revision,
    )
        .hash(&mut hasher);
    hasher.finish()
}

/// The delay before attempt `attempt` (1-based retries): doubling, with up to 25 % jitter so
/// that many Notifiers retrying at once spread out.
fn backoff(attempt: u32) -> Duration {
    let base = FIRST_RETRY.saturating_mul(1 << attempt.min(8));
    let jitter = rand_fraction() * 0.25;
    base.mul_f64(1.0 + jitter)
}

fn rand_fraction() -> f64 {
    let mut byte = [0u8; 1];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut byte);
    f64::from(byte[0]) / 255.0
}

/// The scheme and host of `address`, for messages (never its path or query, which may hold a
/// token, as Slack's and Teams' webhook URLs do).
fn host_of(address: &str) -> String {
    let (scheme, rest) = address.split_once("://").unwrap_or(("", address));
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{scheme}://{host}")
}

/// Whether `scheme://host[:port]` names this host.
fn is_loopback(origin: &str) -> bool {
    let host = origin.split_once("://").map_or(origin, |(_, h)| h);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn api_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("the API server answered {}", status.code),
        _ => "the request failed".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_host_never_the_path_or_credentials() {
        assert_eq!(
            host_of("https://hooks.slack.com/services/T0/B0/secret-token"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            host_of("http://user:pass@127.0.0.1:8080/x?token=y"),
            "http://127.0.0.1:8080"
        );
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1250));
    }
}
