//! The `http` stage: `/healthz`, `/readyz`, `/metrics` and `GET /v1/keys`.
//!
//! `/v1/keys` serves only public recipients, the same text as the ConfigMap
//! `sealsync-public-keys`, like `kubeseal --fetch-cert` reads the public certificate. It is
//! still rate-limited, so that it cannot be used to load the controller.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::context::Shared;

/// Requests per second `/v1/keys` answers; more get 429.
const KEYS_PER_SECOND: f64 = 20.0;

/// A token bucket.
#[derive(Debug)]
pub struct RateLimit {
    state: Mutex<(f64, Instant)>,
    per_second: f64,
}

impl RateLimit {
    /// A bucket of `per_second` tokens, refilled continuously.
    pub fn new(per_second: f64) -> Self {
        Self {
            state: Mutex::new((per_second, Instant::now())),
            per_second,
        }
    }

    /// Takes a token if there is one.
    pub fn try_take(&self) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.per_second;
        state.0 = (state.0 + refill).min(self.per_second);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// State the handlers read.
#[derive(Debug)]
pub struct HttpState {
    /// Keys, metrics and the namespace.
    pub shared: Arc<Shared>,
    /// Set once the keys are loaded and the controller runs.
    pub ready: Arc<AtomicBool>,
    keys_limit: RateLimit,
}

/// Serves the endpoints on `listener` until the process ends.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    ready: Arc<AtomicBool>,
) -> std::io::Result<()> {
    let state = Arc::new(HttpState {
        shared,
        ready,
        keys_limit: RateLimit::new(KEYS_PER_SECOND),
    });
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/keys", get(keys))
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
        state.shared.metrics.encode(),
    )
        .into_response()
}

async fn keys(State(state): State<Arc<HttpState>>) -> Response {
    if !state.keys_limit.try_take() {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "1")],
            "too many requests; retry in a second\n",
        )
            .into_response();
    }
    let text = state.shared.recipients_file().await;
    match text {
        Some(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "keys not loaded yet\n").into_response(),
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
