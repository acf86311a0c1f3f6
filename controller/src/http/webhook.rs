//! The `webhook` stage: `POST /hook/<path>` reconciles GitSyncs at once when their repository
//! receives a push, instead of at the next poll.
//!
//! - The path is `sha256(token ‖ namespace ‖ "/" ‖ name)` in hex, as Flux's Receiver derives
//!   its path from the token and the object's name: it cannot be guessed without the token,
//!   and it is published in `status.webhookPath`. The separator keeps `ab`/`c` and `a`/`bc`
//!   apart. The token lives in the Secret `spec.webhook.secretRef` names.
//! - GitHub's `X-Hub-Signature-256` (HMAC-SHA256 of the raw body, compared in constant time;
//!   there is no SHA-1 fallback) and GitLab's `X-Gitlab-Token` are checked against it.
//! - `ping` is answered; a `push` reconciles every GitSync in the hook's namespace that
//!   follows the pushed repository and branch (or tag); other events are acknowledged and
//!   ignored. Tenants cannot trigger each other's GitSyncs: only the hook's own namespace is
//!   searched.
//! - Bodies are bounded ([`MAX_BODY`]), each hook is rate-limited (429 with `Retry-After`),
//!   and a refused request says why without saying anything about the token.

use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use std::time::Instant;

use axum::http::StatusCode;
use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::ResourceExt;
use ring::hmac;
use sealsync_core::{GitSync, Revision};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use sealsync_core::Chain;

use crate::support::events::EventRecorder;
use crate::support::ratelimit::KeyedRateLimit;

/// The largest webhook body read (GitHub caps payloads at 25 MB, but a push of even many
/// commits is far smaller; GitLab's are smaller still).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// Requests per second one hook answers; more get 429.
const PER_HOOK_PER_SECOND: f64 = 10.0;
/// The most hooks whose rate limits are remembered (one per registered GitSync at most).
const MAX_LIMITERS: usize = 10_000;

/// One GitSync's registered hook.
struct Hook {
    namespace: String,
    name: String,
    token: Zeroizing<Vec<u8>>,
}

/// The registered hooks, by path digest, and what a push triggers.
pub(crate) struct Webhooks {
    hooks: RwLock<HashMap<String, Hook>>,
    limits: KeyedRateLimit,
    trigger: UnboundedSender<ObjectRef<GitSync>>,
    /// When the oldest push not yet applied arrived, per GitSync, for the push → applied
    /// latency.
    pushed: Mutex<HashMap<(String, String), Instant>>,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks").finish_non_exhaustive()
    }
}

/// The path digest of a GitSync's hook.
pub(crate) fn digest(token: &[u8], namespace: &str, name: &str) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(token);
    ctx.update(namespace.as_bytes());
    ctx.update(b"/");
    ctx.update(name.as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Why a webhook request was refused (the metric label; the text is the response body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No hook at this path.
    Unknown,
    /// No signature or token header.
    Unsigned,
    /// Only GitHub's SHA-1 signature, which is not accepted.
    Sha1Only,
    /// The signature or token does not match.
    BadSignature,
    /// The body is not a JSON push payload.
    BadPayload,
    /// Over the rate limit.
    RateLimited,
}

impl Refusal {
    /// The label of `sealsync_webhooks_rejected_total`.
    pub(crate) fn metric_label(self) -> &'static str {
        match self {
            Self::Unknown => "unknown_hook",
            Self::Unsigned => "unsigned",
            Self::Sha1Only => "sha1_signature",
            Self::BadSignature => "bad_signature",
            Self::BadPayload => "bad_payload",
            Self::RateLimited => "rate_limited",
        }
    }

    /// The HTTP status and the body: what to do, never anything about the token.
    pub(crate) fn response(self) -> (StatusCode, &'static str) {
        match self {
            Self::Unknown => (StatusCode::NOT_FOUND, "no webhook at this path\n"),
            Self::Unsigned => (
                StatusCode::UNAUTHORIZED,
                "missing X-Hub-Signature-256 (GitHub) or X-Gitlab-Token (GitLab); set the webhook's secret to the token in spec.webhook.secretRef\n",
            ),
            Self::Sha1Only => (
                StatusCode::UNAUTHORIZED,
                "only X-Hub-Signature (SHA-1) was sent; sealsync accepts X-Hub-Signature-256\n",
            ),
            Self::BadSignature => (
                StatusCode::UNAUTHORIZED,
                "the signature does not match; check the webhook's secret\n",
            ),
            Self::BadPayload => (StatusCode::BAD_REQUEST, "the body is not a JSON push event\n"),
            Self::RateLimited => (
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests for this webhook; retry in a second\n",
            ),
        }
    }
}

/// What a verified request asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A `ping`.
    Pong,
    /// A push: the GitSyncs reconciled now.
    Triggered(usize),
    /// Another event, acknowledged.
    Ignored,
}

/// A push, as GitHub and GitLab describe it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Push {
    /// Every URL the payload gives for the repository.
    pub urls: Vec<String>,
    /// The pushed ref: `refs/heads/<branch>` or `refs/tags/<tag>`.
    pub git_ref: String,
}

impl Webhooks {
    /// An empty registry whose pushes are sent to `trigger`.
    pub(crate) fn new(trigger: UnboundedSender<ObjectRef<GitSync>>) -> Self {
        Self {
            hooks: RwLock::new(HashMap::new()),
            limits: KeyedRateLimit::new(PER_HOOK_PER_SECOND, MAX_LIMITERS),
            trigger,
            pushed: Mutex::new(HashMap::new()),
        }
    }

    /// Registers (or replaces) a GitSync's hook; returns its path.
    pub(crate) fn register(
        &self,
        namespace: &str,
        name: &str,
        token: Zeroizing<Vec<u8>>,
    ) -> String {
        let digest = digest(&token, namespace, name);
        let mut hooks = self.hooks.write().unwrap_or_else(|p| p.into_inner());
        // One hook per GitSync: an old token's path stops working when the token changes.
        hooks.retain(|_, h| !(h.namespace == namespace && h.name == name));
        hooks.insert(
            digest.clone(),
            Hook {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                token,
            },
        );
        format!("/hook/{digest}")
    }

    /// The path of a GitSync's registered hook.
    pub(crate) fn path_of(&self, namespace: &str, name: &str) -> Option<String> {
        let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner());
        hooks
            .iter()
            .find(|(_, h)| h.namespace == namespace && h.name == name)
            .map(|(digest, _)| format!("/hook/{digest}"))
    }

    /// Forgets a GitSync's hook.
    pub(crate) fn unregister(&self, namespace: &str, name: &str) {
        let mut hooks = self.hooks.write().unwrap_or_else(|p| p.into_inner());
        hooks.retain(|_, h| !(h.namespace == namespace && h.name == name));
        self.take_push(namespace, name);
    }

    /// When the oldest push to the GitSync that no reconcile has applied yet arrived.
    pub(crate) fn take_push(&self, namespace: &str, name: &str) -> Option<Instant> {
        let mut pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
        pushed.remove(&(namespace.to_owned(), name.to_owned()))
    }

    /// Handles one request to `/hook/<digest>`: checks the rate limit and the signature,
    /// then triggers the GitSyncs a push concerns.
    pub(crate) fn handle(
        &self,
        digest: &str,
        headers: &axum::http::HeaderMap,
        body: &[u8],
        gitsyncs: &Store<GitSync>,
    ) -> Result<Outcome, Refusal> {
        let namespace = {
            let hooks = self.hooks.read().unwrap_or_else(|p| p.into_inner());
            let hook = hooks.get(digest).ok_or(Refusal::Unknown)?;
            if !self.allow(digest) {
                return Err(Refusal::RateLimited);
            }
            verify(headers, body, &hook.token)?;
            hook.namespace.clone()
        };
        let event = header(headers, "x-github-event")
            .or_else(|| header(headers, "x-gitlab-event"))
            .unwrap_or_default();
        match event.as_str() {
            "ping" => return Ok(Outcome::Pong),
            "push" | "Push Hook" | "Tag Push Hook" => {}
            _ => return Ok(Outcome::Ignored),
        }
        let push = parse_push(body).ok_or(Refusal::BadPayload)?;
        let mut triggered = 0;
        for gs in gitsyncs.state() {
            if gs.namespace().as_deref() == Some(namespace.as_str()) && concerns(&gs, &push) {
                // The receiver lives as long as the controller; a send fails only at shutdown.
                if self
                    .trigger
                    .unbounded_send(ObjectRef::from_obj(&*gs))
                    .is_ok()
                {
                    triggered += 1;
                    // Keyed by GitSyncs that exist, so the map is bounded by their number.
                    let mut pushed = self.pushed.lock().unwrap_or_else(|p| p.into_inner());
                    pushed
                        .entry((namespace.clone(), gs.name_any()))
                        .or_insert_with(Instant::now);
                }
            }
        }
        Ok(Outcome::Triggered(triggered))
    }

    fn allow(&self, digest: &str) -> bool {
        self.limits.try_take(digest)
    }
}

fn header(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
}

/// Checks GitHub's HMAC-SHA256 signature or GitLab's token, in constant time.
pub(crate) fn verify(
    headers: &axum::http::HeaderMap,
    body: &[u8],
    token: &[u8],
) -> Result<(), Refusal> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, token);
    if let Some(signature) = header(headers, "x-hub-signature-256") {
        let hex = signature
            .strip_prefix("sha256=")
            .ok_or(Refusal::BadSignature)?;
        let expected = decode_hex(hex).ok_or(Refusal::BadSignature)?;
        return hmac::verify(&key, body, &expected).map_err(|_| Refusal::BadSignature);
    }
    if let Some(given) = header(headers, "x-gitlab-token") {
        // Compare MACs of both rather than the strings (ring verifies in constant time), so
        // the time taken says nothing about how much of the token matched.
        let want = hmac::sign(&key, token);
        return hmac::verify(&key, given.as_bytes(), want.as_ref())
            .map_err(|_| Refusal::BadSignature);
    }
    if headers.contains_key("x-hub-signature") {
        return Err(Refusal::Sha1Only);
    }
    Err(Refusal::Unsigned)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The repository URLs and the ref of a GitHub or GitLab push payload.
pub(crate) fn parse_push(body: &[u8]) -> Option<Push> {
    let payload: Json = serde_json::from_slice(body).ok()?;
    let git_ref = payload.get("ref")?.as_str()?.to_owned();
    let mut urls = Vec::new();
    for section in ["repository", "project"] {
        let Some(repo) = payload.get(section) else {
            continue;
        };
        for key in [
            "clone_url",
            "git_url",
            "ssh_url",
            "html_url",
            "url",
            "git_http_url",
            "git_ssh_url",
            "http_url",
            "web_url",
            "homepage",
        ] {
            if let Some(u) = repo.get(key).and_then(Json::as_str) {
                urls.push(u.to_owned());
            }
        }
    }
    Some(Push { urls, git_ref })
}

/// `host/path` of a repository URL, whatever its form (`https://`, `git://`, `ssh://`,
/// `git@host:path`), without credentials, port, `.git` or trailing slashes, lowercased host.
pub(crate) fn normalize_url(url: &str) -> String {
    let url = url.trim();
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest.to_owned(),
        // scp-like `user@host:path`
        None => url.replacen(':', "/", 1),
    };
    let rest = rest.rsplit_once('@').map_or(rest.as_str(), |(_, r)| r);
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.split(':').next().unwrap_or(host).to_ascii_lowercase();
    let path = path.trim_end_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    format!("{host}/{path}")
}

/// Whether a push concerns a GitSync: the same repository, and its branch (or tag) pushed.
pub(crate) fn concerns(gs: &GitSync, push: &Push) -> bool {
    let wanted = normalize_url(&gs.spec.url);
    if !push.urls.iter().any(|u| normalize_url(u) == wanted) {
        return false;
    }
    match gs.spec.revision() {
        Ok(Revision::Branch(b)) => push.git_ref == format!("refs/heads/{b}"),
        Ok(Revision::Tag(t)) => push.git_ref == format!("refs/tags/{t}"),
        Ok(Revision::Commit(_)) | Err(_) => false,
    }
}

/// Registers the GitSync's push webhook with the token from its Secret, or forgets it. A
/// missing Secret or key does not fail the sync (polling goes on); it is reported as a
/// warning Event, and `status.webhookPath` stays empty until the Secret exists.
pub(crate) async fn register_from_spec(
    client: &kube::Client,
    webhooks: &Webhooks,
    recorder: &EventRecorder,
    gs: &GitSync,
    report: bool,
) {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let Some(webhook) = &gs.spec.webhook else {
        webhooks.unregister(&namespace, &name);
        return;
    };
    let key = webhook.secret_ref.key.as_deref().unwrap_or("token");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let found = match secrets.get_opt(&webhook.secret_ref.name).await {
        Ok(secret) => secret,
        Err(e) => {
            // Keep the registered hook: the API being down says nothing about the token.
            tracing::warn!(error = %Chain(&e), "reading the webhook Secret");
            return;
        }
    };
    let token = found.and_then(|s| {
        let mut data = s.data.unwrap_or_default();
        let token = data.remove(key).map(|b| Zeroizing::new(b.0));
        for (_, mut v) in data {
            zeroize::Zeroize::zeroize(&mut v.0);
        }
        token
    });
    match token.filter(|t| !t.is_empty()) {
        Some(token) => {
            webhooks.register(&namespace, &name, token);
        }
        None => {
            webhooks.unregister(&namespace, &name);
            if !report {
                return;
            }
            crate::status::event(
                recorder,
                gs,
                true,
                "WebhookSecretMissing",
                format!(
                    "spec.webhook.secretRef: Secret {namespace}/{} has no key {key:?}; create it with the webhook's token",
                    webhook.secret_ref.name
                ),
            )
            .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    fn signed(body: &[u8], token: &[u8]) -> HeaderMap {
        let key = hmac::Key::new(hmac::HMAC_SHA256, token);
        let tag = hmac::sign(&key, body);
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-hub-signature-256",
            HeaderValue::from_str(&format!("sha256={hex}")).expect("header"),
        );
        headers
    }

    #[test]
    fn github_signatures_are_checked() {
        let body = br#"{"ref":"refs/heads/main"}"#;
        assert_eq!(verify(&signed(body, b"s3cret"), body, b"s3cret"), Ok(()));
        assert_eq!(
            verify(&signed(body, b"other"), body, b"s3cret"),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            verify(&signed(b"{}", b"s3cret"), body, b"s3cret"),
            Err(Refusal::BadSignature)
        );
        let mut sha1 = HeaderMap::new();
        sha1.insert("x-hub-signature", HeaderValue::from_static("sha1=00"));
        assert_eq!(verify(&sha1, body, b"s3cret"), Err(Refusal::Sha1Only));
        assert_eq!(
            verify(&HeaderMap::new(), body, b"s3cret"),
            Err(Refusal::Unsigned)
        );
    }

    #[test]
    fn gitlab_tokens_are_checked() {
        let mut headers = HeaderMap::new();
        headers.insert("x-gitlab-token", HeaderValue::from_static("s3cret"));
        assert_eq!(verify(&headers, b"{}", b"s3cret"), Ok(()));
        assert_eq!(
            verify(&headers, b"{}", b"s3cret2"),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn urls_of_one_repository_compare_equal() {
        let want = "github.com/acme/apps";
        for url in [
            "https://github.com/acme/apps.git",
            "https://user:pw@GitHub.com/acme/apps/",
            "git://github.com/acme/apps.git",
            "git@github.com:acme/apps.git",
            "ssh://git@github.com:22/acme/apps",
        ] {
            assert_eq!(normalize_url(url), want, "{url}");
        }
        assert_ne!(normalize_url("https://github.com/acme/apps2"), want);
    }

    #[test]
    fn pushes_are_parsed_from_github_and_gitlab_payloads() {
        let github = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://github.com/acme/apps.git","ssh_url":"git@github.com:acme/apps.git"}}"#;
        let push = parse_push(github).expect("push");
        assert_eq!(push.git_ref, "refs/heads/main");
        assert_eq!(push.urls.len(), 2);
        let gitlab = br#"{"ref":"refs/heads/dev","project":{"git_http_url":"https://gitlab.com/acme/apps.git"}}"#;
        assert_eq!(parse_push(gitlab).expect("push").urls.len(), 1);
        assert!(parse_push(b"not json").is_none());
    }

    #[test]
    fn the_path_depends_on_the_token_namespace_and_name() {
        let a = digest(b"t", "ns", "apps");
        assert_eq!(a.len(), 64);
        assert_ne!(a, digest(b"u", "ns", "apps"));
        assert_ne!(a, digest(b"t", "ns2", "apps"));
        assert_ne!(a, digest(b"t", "ns", "apps2"));
    }
}
