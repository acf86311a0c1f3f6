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
pub struct Resolver {
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
    pub async fn resolve(
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
    pub fn known(&self, api_version: &str, kind: &str) -> Option<(ApiResource, bool)> {
        self.served.get(&key(api_version, kind)).cloned()
    }

    /// Forgets every kind found not served: after the revision's CRDs were written.
    pub fn forget_unserved(&mut self) {
        self.unserved.clear();
    }

    /// Resolves a kind that a CRD written moments ago serves. The CRD being Established does
    /// not mean discovery lists it yet, so "not served" is asked again until `timeout`.
    pub async fn wait_served(
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
