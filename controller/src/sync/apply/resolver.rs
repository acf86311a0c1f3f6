//! Which resource serves an `apiVersion`/`kind`, and whether it is namespaced.
//!
//! A kind the cluster serves is remembered for the whole reconcile: a CRD's plural and scope
//! cannot change once it exists, so what discovery said stays true. A kind the cluster does
//! not serve is remembered only until the revision's own definitions are written
//! ([`Resolver::forget_unserved`]), since a CRD of the revision may serve it afterwards. A
//! failed discovery (the API server down, a 503 from an aggregated API, an answer that does not
//! parse) is never remembered at all: it is an error for the caller, not "not served".

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::{self, Scope};
use kube::error::DiscoveryError;
use kube::Client;

/// `(apiVersion, kind)`.
type KindKey = (String, String);

/// Resolves kinds to resources, once per reconcile.
#[derive(Default)]
pub(crate) struct Resolver {
    served: HashMap<KindKey, (ApiResource, bool)>,
    unserved: HashSet<KindKey>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("served", &self.served.len())
            .field("unserved", &self.unserved.len())
            .finish()
    }
}

fn key(api_version: &str, kind: &str) -> KindKey {
    (api_version.to_owned(), kind.to_owned())
}

impl Resolver {
    /// `(resource, namespaced)`, or `None` when the cluster does not serve the kind.
    pub(crate) async fn resolve(
        &mut self,
        client: &Client,
        api_version: &str,
        kind: &str,
    ) -> Result<Option<(ApiResource, bool)>, kube::Error> {
        let key = key(api_version, kind);
        if let Some(hit) = self.served.get(&key) {
            return Ok(Some(hit.clone()));
        }
        if self.unserved.contains(&key) {
            return Ok(None);
        }
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind::gvk(group, version, kind);
        match discovery::pinned_kind(client, &gvk).await {
            Ok((resource, caps)) => {
                let found = (resource, caps.scope == Scope::Namespaced);
                self.served.insert(key, found.clone());
                Ok(Some(found))
            }
            // The group-version is not served at all, or is served without this kind.
            Err(kube::Error::Api(status)) if status.code == 404 => {
                self.unserved.insert(key);
                Ok(None)
            }
            Err(kube::Error::Discovery(DiscoveryError::MissingKind(_))) => {
                self.unserved.insert(key);
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// What discovery said of a kind that was resolved before, without asking again.
    pub(crate) fn known(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        self.served.get(&key(api_version, kind)).cloned()
    }

    /// Forgets every kind found not served: after the revision's CRDs were written.
    pub(crate) fn forget_unserved(&mut self) {
        self.unserved.clear();
    }

    /// Resolves a kind that a CRD written moments ago serves. The CRD being Established does
    /// not mean discovery lists it yet, so "not served" is asked again until `timeout`.
    pub(crate) async fn wait_served(
        &mut self,
        client: &Client,
        api_version: &str,
        kind: &str,
        timeout: Duration,
    ) -> Result<Option<(ApiResource, bool)>, kube::Error> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.resolve(client, api_version, kind).await? {
                return Ok(Some(found));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            self.unserved.remove(&key(api_version, kind));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use axum::http::StatusCode;

    const CORE: &str = r#"{"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1","resources":[{"name":"configmaps","singularName":"configmap","namespaced":true,"kind":"ConfigMap","verbs":["get","list","create","patch"]}]}"#;
    const UNAVAILABLE: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server is currently unable to handle the request","reason":"ServiceUnavailable","code":503}"#;
    const NOT_FOUND: &str = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"the server could not find the requested resource","reason":"NotFound","code":404}"#;

    /// An API server whose discovery of `v1` fails while `healthy` is false (the client's own
    /// retries included); every other group-version is not served. Counts the requests.
    async fn scripted(
        healthy: Arc<std::sync::atomic::AtomicBool>,
    ) -> (Client, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let core_calls = Arc::new(AtomicUsize::new(0));
        let other_calls = Arc::new(AtomicUsize::new(0));
        let (core, other) = (core_calls.clone(), other_calls.clone());
        let app = axum::Router::new()
            .route(
                "/api/v1",
                axum::routing::get(move || {
                    core.fetch_add(1, Ordering::SeqCst);
                    let up = healthy.load(Ordering::SeqCst);
                    async move {
                        if !up {
                            (StatusCode::SERVICE_UNAVAILABLE, UNAVAILABLE)
                        } else {
                            (StatusCode::OK, CORE)
                        }
                    }
                }),
            )
            .fallback(move || {
                other.fetch_add(1, Ordering::SeqCst);
                async { (StatusCode::NOT_FOUND, NOT_FOUND) }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let mut config = kube::Config::new(format!("http://{addr}").parse().expect("url"));
        // kube retries a 503 fifteen times with backoff up to minutes: one answer is enough.
        config.default_retry = false;
        let client = Client::try_from(config).expect("client");
        (client, core_calls, other_calls)
    }

    #[tokio::test]
    async fn a_failed_discovery_is_an_error_and_is_not_remembered() {
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (client, core_calls, _) = scripted(healthy.clone()).await;
        let mut resolver = Resolver::default();
        let first = resolver.resolve(&client, "v1", "ConfigMap").await;
        assert!(first.is_err(), "a 503 is not 'not served': {first:?}");
        healthy.store(true, Ordering::SeqCst);
        let failed_calls = core_calls.load(Ordering::SeqCst);
        let (resource, namespaced) = resolver
            .resolve(&client, "v1", "ConfigMap")
            .await
            .expect("answered")
            .expect("served");
        assert_eq!(resource.plural, "configmaps");
        assert!(namespaced);
        // Served kinds are remembered for the reconcile, even across forget_unserved.
        resolver.forget_unserved();
        assert!(resolver.known("v1", "ConfigMap").is_some());
        resolver
            .resolve(&client, "v1", "ConfigMap")
            .await
            .expect("cached")
            .expect("served");
        assert_eq!(core_calls.load(Ordering::SeqCst), failed_calls + 1);
    }

    #[tokio::test]
    async fn unserved_kinds_are_asked_again_after_the_definitions_are_written() {
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (client, _, other_calls) = scripted(healthy).await;
        let mut resolver = Resolver::default();
        for _ in 0..2 {
            let found = resolver
                .resolve(&client, "example.com/v1", "Widget")
                .await
                .expect("a 404 is an answer");
            assert!(found.is_none());
        }
        assert_eq!(other_calls.load(Ordering::SeqCst), 1, "remembered");
        resolver.forget_unserved();
        assert!(resolver
            .resolve(&client, "example.com/v1", "Widget")
            .await
            .expect("answer")
            .is_none());
        assert_eq!(other_calls.load(Ordering::SeqCst), 2, "asked again");
    }
}
