//! The `http` stage: `/healthz`, `/readyz`, `/metrics`, `GET /v1/keys`, `POST /v1/rewrap`
//! ([`crate::http::rewrap`]) and the push webhooks (`POST /hook/<path>`, [`crate::http::webhook`]).
//!
//! `/v1/keys` serves only public recipients, the same text as the ConfigMap
//! `sealsync-public-keys`, like `kubeseal --fetch-cert` reads the public certificate. It is
//! still rate-limited, so that it cannot be used to load the controller.

pub(crate) mod callers;
pub(crate) mod rewrap;
pub(crate) mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use kube::runtime::reflector::Store;
use sealsync_core::GitSync;

use crate::http::callers::{Callers, Permission, Refusal};
use crate::http::rewrap::{RewrapError, RewrapRequest};
use crate::http::webhook::{Outcome, MAX_BODY};
use crate::support::metrics::{ResultLabels, WebhookLabels};
use crate::support::ratelimit::RateLimit;

/// Requests per second `/v1/keys` answers; more get 429.
const KEYS_PER_SECOND: f64 = 20.0;
/// Requests per second `/v1/rewrap` takes to a token review at all, whoever sends them: the
/// per-caller limit applies only once a caller is known, and each review costs the API server.
const REWRAP_PER_SECOND: f64 = 20.0;
/// Re-wraps served at once; more get 429.
const REWRAP_AT_ONCE: usize = 2;

/// A token bucket.
/// What the endpoints work with.
pub(crate) struct Handles {
    /// The controller's client (TokenReviews, SubjectAccessReviews).
    pub(crate) client: kube::Client,
    /// The cluster keys.
    pub(crate) keys: Arc<tokio::sync::RwLock<crate::keys::KeyRing>>,
    /// The settings.
    pub(crate) settings: Arc<crate::support::Settings>,
    /// Metrics.
    pub(crate) metrics: Arc<crate::support::metrics::Metrics>,
    /// The registered push webhooks.
    pub(crate) webhooks: Arc<webhook::Webhooks>,
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handles").finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub(crate) struct HttpState {
    /// Keys, metrics and the namespace.
    pub handles: Arc<Handles>,
    /// Set once the keys are loaded and the controller runs.
    pub ready: Arc<AtomicBool>,
    keys_limit: RateLimit,
    rewrap_limit: RateLimit,
    /// Re-wraps in progress at once: each may cost many X25519 operations.
    rewrap_slots: tokio::sync::Semaphore,
    callers: Callers,
    gitsyncs: Store<GitSync>,
}

/// Serves the endpoints on `listener` until the process ends.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    handles: Arc<Handles>,
    ready: Arc<AtomicBool>,
    gitsyncs: Store<GitSync>,
    rewrap_per_caller: f64,
) -> std::io::Result<()> {
    let state = Arc::new(HttpState {
        handles,
        ready,
        keys_limit: RateLimit::new(KEYS_PER_SECOND),
        rewrap_limit: RateLimit::new(REWRAP_PER_SECOND),
        rewrap_slots: tokio::sync::Semaphore::new(REWRAP_AT_ONCE),
        callers: Callers::new(rewrap_per_caller),
        gitsyncs,
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/keys", get(keys))
        .route(
            "/v1/rewrap",
            post(rewrap).layer(DefaultBodyLimit::max(crate::http::rewrap::MAX_BODY)),
        )
        .route(
            "/hook/{digest}",
            post(hook).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .with_state(state);
    axum::serve(listener, app).await
}

async fn readyz(State(state): State<Arc<HttpState>>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(state): State<Arc<HttpState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.handles.metrics.encode(),
    )
        .into_response()
}

async fn keys(State(state): State<Arc<HttpState>>) -> Response {
    if !state.keys_limit.try_take() {
        return too_many();
    }
    let text =
        crate::keys::recipients_file(&state.handles.keys, &state.handles.settings.namespace).await;
    match text {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "keys not loaded yet\n").into_response(),
    }
}

fn too_many() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::RETRY_AFTER, "1")],
        "too many requests; retry in a second\n",
    )
        .into_response()
}

async fn rewrap(State(state): State<Arc<HttpState>>, headers: HeaderMap, body: Bytes) -> Response {
    let count = |result: &'static str| {
        state
            .handles
            .metrics
            .rewrap_requests
            .get_or_create(&ResultLabels { result })
            .inc();
    };
    if !state.rewrap_limit.try_take() {
        count("rate_limited");
        return too_many();
    }
    let Ok(_slot) = state.rewrap_slots.try_acquire() else {
        count("rate_limited");
        return too_many();
    };
    let handles = &state.handles;
    let caller = match state
        .callers
        .admit(
            &handles.client,
            &handles.settings.namespace,
            &headers,
            Permission {
                verb: "create",
                subresource: "rewrap",
            },
        )
        .await
    {
        Ok(caller) => caller,
        Err(refusal) => {
            count(refusal.metric_label());
            tracing::info!(reason = refusal.metric_label(), "rewrap refused");
            return refusal_response(refusal);
        }
    };
    let request: RewrapRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            count("bad_request");
            return (
                StatusCode::BAD_REQUEST,
                format!("the body is not a re-wrap request ({{\"documents\": [\"…\"], \"recipients\": [\"age1…\"]}}): {e}\n"),
            )
                .into_response();
        }
    };
    // A peer cluster's recipient moves documents to another cluster: a permission of its own.
    match crate::http::rewrap::names_peers(handles, &request).await {
        Ok(false) => {}
        Ok(true) => {
            let peers = Permission {
                verb: "create",
                subresource: "rewrap-peers",
            };
            if let Err(refusal) = crate::http::callers::authorize(
                &handles.client,
                &handles.settings.namespace,
                &caller,
                peers,
            )
            .await
            {
                count(refusal.metric_label());
                return refusal_response(refusal);
            }
        }
        Err(error) => {
            count(error.metric_label());
            return rewrap_error_response(error);
        }
    }
    let documents = request.documents.len();
    match crate::http::rewrap::rewrap(handles, request).await {
        Ok(response) => {
            count("ok");
            tracing::info!(caller = %caller.name, documents, "rewrap");
            axum::Json(response).into_response()
        }
        Err(error) => {
            count(error.metric_label());
            tracing::info!(caller = %caller.name, reason = error.metric_label(), "rewrap refused");
            rewrap_error_response(error)
        }
    }
}

fn refusal_response(refusal: Refusal) -> Response {
    let (status, message) = match refusal {
        Refusal::RateLimited => return too_many(),
        Refusal::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, m),
        Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        Refusal::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
    };
    (status, format!("{message}\n")).into_response()
}

fn rewrap_error_response(error: RewrapError) -> Response {
    let (status, message) = match error {
        RewrapError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
        RewrapError::UntrustedRecipient(m) => (StatusCode::FORBIDDEN, m),
        RewrapError::Unopenable(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
        RewrapError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
    };
    (status, format!("{message}\n")).into_response()
}

async fn hook(
    State(state): State<Arc<HttpState>>,
    Path(digest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let metrics = &state.handles.metrics;
    match state
        .handles
        .webhooks
        .handle(&digest, &headers, &body, &state.gitsyncs)
    {
        Ok(outcome) => {
            let (kind, text) = match outcome {
                Outcome::Pong => ("ping", "pong\n".to_owned()),
                Outcome::Triggered(n) => ("push", format!("reconciling {n} GitSync(s)\n")),
                Outcome::Ignored => ("other", "event ignored\n".to_owned()),
            };
            metrics
                .webhooks_received
                .get_or_create(&WebhookLabels { kind })
                .inc();
            tracing::info!(event = kind, "webhook");
            (StatusCode::OK, text).into_response()
        }
        Err(refusal) => {
            metrics
                .webhooks_rejected
                .get_or_create(&WebhookLabels {
                    kind: refusal.metric_label(),
                })
                .inc();
            tracing::info!(reason = refusal.metric_label(), "webhook refused");
            let (status, text) = refusal.response();
            if status == StatusCode::TOO_MANY_REQUESTS {
                (status, [(header::RETRY_AFTER, "1")], text).into_response()
            } else {
                (status, text).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_empties_and_refills() {
        let limit = RateLimit::new(2.0);
        assert!(limit.try_take());
        assert!(limit.try_take());
        assert!(!limit.try_take());
        std::thread::sleep(std::time::Duration::from_millis(600));
        assert!(limit.try_take());
    }
}
