//! Fault injection: failing requests with a given status, and added latency.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::error::ApiError;

/// Fail requests that match a method and path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRule {
    /// HTTP method to match (any when None), e.g. "GET", "PATCH".
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match, e.g. `/api/v1/namespaces/default/secrets`; empty matches all.
    #[serde(default)]
    pub path_prefix: String,
    /// HTTP status to answer with; the Status reason follows kube-apiserver's mapping.
    pub status: u16,
    /// How many requests to fail; None fails until cleared.
    #[serde(default = "one")]
    pub count: Option<u32>,
    /// The Status message; a default names the injected fault.
    #[serde(default)]
    pub message: Option<String>,
}

#[allow(clippy::unnecessary_wraps)]
fn one() -> Option<u32> {
    Some(1)
}

/// Delay requests that match a method and path prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyRule {
    /// HTTP method to match (any when None).
    #[serde(default)]
    pub method: Option<String>,
    /// Path prefix to match; empty matches all.
    #[serde(default)]
    pub path_prefix: String,
    /// Delay in milliseconds.
    pub delay_ms: u64,
}

#[derive(Debug, Default)]
struct State {
    failures: Vec<FailureRule>,
    latency: Vec<LatencyRule>,
    requests: RequestCounts,
}

/// Requests the server received: what a benchmark or an idle-cost test reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RequestCounts {
    /// Every request.
    pub total: u64,
    /// Requests that change state: POST, PUT, PATCH and DELETE without `dryRun`.
    pub writes: u64,
    /// Watch requests (a watch is one long request).
    pub watches: u64,
}

/// The fault rules in force.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

fn matches(method: &Option<String>, prefix: &str, req_method: &str, path: &str) -> bool {
    method
        .as_deref()
        .is_none_or(|m| m.eq_ignore_ascii_case(req_method))
        && path.starts_with(prefix)
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one request.
    pub fn count(&self, method: &str, query: Option<&str>) {
        let params = || query.into_iter().flat_map(|q| q.split('&'));
        let dry_run = params().any(|p| p.starts_with("dryRun="));
        let watch = params().any(|p| p == "watch=true" || p == "watch=1");
        let write = matches!(method, "POST" | "PUT" | "PATCH" | "DELETE") && !dry_run;
        let mut state = self.state();
        state.requests.total += 1;
        state.requests.writes += u64::from(write);
        state.requests.watches += u64::from(watch);
    }

    /// The requests counted so far.
    pub fn requests(&self) -> RequestCounts {
        self.state().requests
    }

    /// Adds a failure rule.
    pub fn add_failure(&self, rule: FailureRule) {
        self.state().failures.push(rule);
    }

    /// Adds a latency rule.
    pub fn add_latency(&self, rule: LatencyRule) {
        self.state().latency.push(rule);
    }

    /// Fails the next `count` requests whose method and path prefix match with `status`
    /// (method None matches any).
    pub fn fail_next(&self, count: u32, method: Option<&str>, path_prefix: &str, status: u16) {
        self.add_failure(FailureRule {
            method: method.map(str::to_string),
            path_prefix: path_prefix.to_string(),
            status,
            count: Some(count),
            message: None,
        });
    }

    /// Delays requests whose method and path prefix match.
    pub fn delay(&self, method: Option<&str>, path_prefix: &str, delay: Duration) {
        self.add_latency(LatencyRule {
            method: method.map(str::to_string),
            path_prefix: path_prefix.to_string(),
            delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
        });
    }

    /// Removes every rule.
    pub fn clear(&self) {
        let mut s = self.state();
        s.failures.clear();
        s.latency.clear();
    }

    /// The total delay for a request.
    pub fn latency_for(&self, method: &str, path: &str) -> Duration {
        let ms: u64 = self
            .state()
            .latency
            .iter()
            .filter(|r| matches(&r.method, &r.path_prefix, method, path))
            .map(|r| r.delay_ms)
            .sum();
        Duration::from_millis(ms)
    }

    /// Consumes one matching failure rule, returning the error to answer with.
    pub fn take_failure(&self, method: &str, path: &str) -> Option<ApiError> {
        let mut s = self.state();
        let idx = s
            .failures
            .iter()
            .position(|r| matches(&r.method, &r.path_prefix, method, path))?;
        let rule = s.failures[idx].clone();
        match s.failures[idx].count.as_mut() {
            Some(n) if *n <= 1 => {
                s.failures.remove(idx);
            }
            Some(n) => *n -= 1,
            None => {}
        }
        let reason = ApiError::reason_for_code(rule.status);
        let message = rule.message.unwrap_or_else(|| {
            format!(
                "injected fault: {} {} answered with {}",
                method, path, rule.status
            )
        });
        Some(ApiError::new(rule.status, reason, message).with_details(serde_json::json!({})))
    }
}
