//! Small types and services every layer uses: the reflector cache check, Events, metrics, and
//! reading one key of a Secret.

pub(crate) mod cache;
pub(crate) mod events;
pub(crate) mod fingerprint;
pub(crate) mod identity;
pub(crate) mod metrics;
pub(crate) mod ratelimit;
pub(crate) mod retry;
pub(crate) mod secretkeys;
pub(crate) mod settings;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod triggers;
pub(crate) mod watchloop;

pub(crate) use fingerprint::Fingerprint;
pub(crate) use identity::{is_dns_subdomain, Actor, Clients, TrustedNamespaces};
pub(crate) use settings::Settings;
pub(crate) use triggers::{Leading, Triggers};

/// A GitSync: `(namespace, name)`.
pub(crate) type SyncKey = (String, String);

/// A resource a watch follows: group, version and plural.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Gvr {
    group: String,
    version: String,
    plural: String,
}

impl Gvr {
    /// The resource of `resource`.
    pub(crate) fn of(resource: &kube::core::ApiResource) -> Self {
        Self {
            group: resource.group.clone(),
            version: resource.version.clone(),
            plural: resource.plural.clone(),
        }
    }
}
