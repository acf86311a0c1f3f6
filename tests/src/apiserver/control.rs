//! The HTTP control API under `/_testcluster/`, a prefix no Kubernetes path uses:
//!
//! - `POST /_testcluster/faults/failures` with a [`FailureRule`] as JSON;
//! - `POST /_testcluster/faults/latency` with a [`LatencyRule`] as JSON;
//! - `DELETE /_testcluster/faults` clears all rules;
//! - `POST /_testcluster/watches/drop` ends every open watch;
//! - `POST /_testcluster/restart` with `{"wipe": bool, "downMs": n}`;
//! - `POST /_testcluster/tokens` with `{"namespace", "name", "audiences"}` returns `{"token"}`;
//! - `GET /_testcluster/stats`: objects stored, the resourceVersion, and the requests received
//!   (total, writes, watches) outside this control API.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::{Method, Response};
use serde_json::{json, Value};

use super::error::ApiError;
use super::faults::{FailureRule, LatencyRule};
use super::handlers::{error_response, json_response};
use super::server::Shared;

/// The control API's path prefix.
pub const PREFIX: &str = "/_testcluster/";

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RestartBody {
    #[serde(default)]
    wipe: bool,
    #[serde(default)]
    down_ms: u64,
}

#[derive(Debug, serde::Deserialize)]
struct TokenBody {
    namespace: String,
    name: String,
    #[serde(default)]
    audiences: Vec<String>,
}

fn parse<T: serde::de::DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid control request: {e}")))
}

/// Handles one control request.
pub async fn handle(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    body: &Bytes,
) -> Response<Body> {
    let rest = path.trim_start_matches(PREFIX).trim_end_matches('/');
    let result: Result<Value, ApiError> = match (method, rest) {
        (&Method::POST, "faults/failures") => serde_json::from_slice::<FailureRule>(body)
            .map_err(|e| ApiError::bad_request(format!("invalid failure rule: {e}")))
            .map(|r| {
                shared.faults.add_failure(r);
                json!({"ok": true})
            }),
        (&Method::POST, "faults/latency") => serde_json::from_slice::<LatencyRule>(body)
            .map_err(|e| ApiError::bad_request(format!("invalid latency rule: {e}")))
            .map(|r| {
                shared.faults.add_latency(r);
                json!({"ok": true})
            }),
        (&Method::DELETE, "faults") => {
            shared.faults.clear();
            Ok(json!({"ok": true}))
        }
        (&Method::POST, "watches/drop") => {
            shared.drop_watches();
            Ok(json!({"ok": true}))
        }
        (&Method::POST, "restart") => parse::<RestartBody>(body).map(|b| {
            let s = Arc::clone(shared);
            // Answer first: the restart closes this very connection.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                s.restart(b.wipe, Duration::from_millis(b.down_ms));
            });
            json!({"ok": true})
        }),
        (&Method::POST, "tokens") => serde_json::from_slice::<TokenBody>(body)
            .map_err(|e| ApiError::bad_request(format!("invalid token request: {e}")))
            .and_then(|b| {
                shared
                    .issue_service_account_token(&b.namespace, &b.name, &b.audiences)
                    .map(|t| json!({"token": t}))
                    .map_err(ApiError::internal)
            }),
        (&Method::GET, "stats") => {
            let requests = shared.faults.requests();
            let s = shared.lock();
            Ok(json!({
                "objects": s.len(),
                "resourceVersion": s.rv().to_string(),
                "requests": {
                    "total": requests.total,
                    "writes": requests.writes,
                    "watches": requests.watches,
                },
            }))
        }
        _ => Err(ApiError::page_not_found()),
    };
    match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e),
    }
}
