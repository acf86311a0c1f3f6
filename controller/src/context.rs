//! What every reconcile shares: the client, the keys, metrics, the event recorder and the
//! settings from the command line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::Client;
use tokio::sync::RwLock;

use crate::keys::KeyRing;
use crate::support::metrics::Metrics;

/// Settings from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where the controller's keys live.
    pub namespace: String,
    /// Where each GitSync's bare repository is kept.
    pub data_dir: PathBuf,
    /// Writes in flight at once during an apply.
    pub apply_concurrency: usize,
    /// How long CRDs and Namespaces of a revision may take to become ready.
    pub ready_timeout: Duration,
    /// The recovery recipients the key backup is encrypted to; no backup without it.
    pub recovery_recipients_file: Option<PathBuf>,
    /// Recipients of peer clusters `/v1/rewrap` may also wrap to.
    pub peer_recipients_file: Option<PathBuf>,
    /// Rotate the current key once it is this old; never without it.
    pub key_rotation_period: Option<Duration>,
    /// Retire a non-current key once no synced document has needed it for this long; never
    /// without it.
    pub retire_unused_after: Option<Duration>,
    /// The service account (in each GitSync's namespace) a GitSync without
    /// `spec.serviceAccountName` applies as; without it such a GitSync applies as the
    /// controller, if its namespace is trusted.
    pub default_service_account: Option<String>,
    /// Namespaces whose GitSyncs may act with the controller's own identity.
    pub trusted_namespaces: TrustedNamespaces,
}

/// The namespaces whose GitSyncs may act with the controller's own identity: apply and prune
/// as the controller when they name no service account, and log in to Vault with the
/// controller's `VAULT_TOKEN`. Anyone who can create a GitSync there can do what the
/// controller can, so by default only the controller's own namespace is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TrustedNamespaces {
    /// Every namespace (`--trusted-namespaces='*'`): the open mode, as Flux runs by default.
    All,
    /// These namespaces only.
    Only(Vec<String>),
}

impl TrustedNamespaces {
    /// Parses `--trusted-namespaces`: `*`, or namespace names separated by commas; the
    /// controller's namespace is always trusted.
    pub(crate) fn parse(flag: Option<&str>, controller_namespace: &str) -> Result<Self, String> {
        let Some(flag) = flag else {
            return Ok(Self::Only(vec![controller_namespace.to_owned()]));
        };
        if flag.trim() == "*" {
            return Ok(Self::All);
        }
        let mut names = vec![controller_namespace.to_owned()];
        for name in flag.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let label = name.len() <= 63 && is_dns_subdomain(name) && !name.contains('.');
            if !label {
                return Err(format!("{name:?} is not a namespace name"));
            }
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
        Ok(Self::Only(names))
    }

    /// Whether GitSyncs in `namespace` are trusted.
    pub(crate) fn contains(&self, namespace: &str) -> bool {
        match self {
            Self::All => true,
            Self::Only(names) => names.iter().any(|n| n == namespace),
        }
    }

    /// For messages: `sealsync-system, platform`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::All => "every namespace".to_owned(),
            Self::Only(names) => names.join(", "),
        }
    }
}

/// Shared state.
pub(crate) struct Shared {
    /// The API client.
    pub client: Client,
    /// The configuration `client` was built from, for the clients that impersonate a
    /// GitSync's service account.
    pub config: kube::Config,
    /// Those clients, by user name (one connection pool each).
    pub impersonating: Mutex<HashMap<String, Client>>,
    /// The settings.
    pub settings: Settings,
    /// The cluster keys.
    pub keys: RwLock<KeyRing>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Events.
    pub recorder: crate::support::events::EventRecorder,
    /// Consecutive failures per GitSync uid, for the retry backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// The registered push webhooks.
    pub webhooks: crate::http::webhook::Webhooks,
    /// Asks for a reconcile of one GitSync now (a webhook push, new keys for a GitSync that
    /// failed to decrypt).
    pub reconcile_now: futures::channel::mpsc::UnboundedSender<
        kube::runtime::reflector::ObjectRef<sealsync_core::GitSync>,
    >,
    /// The applied objects self-heal watches.
    pub healer: crate::heal::Healer,
    /// Vault sessions and refreshes.
    pub vault: crate::vault::Vault,
    /// The key of the restart checksums.
    pub checksum_key: crate::sync::restarts::ChecksumKey,
    /// GitSyncs whose next reconcile must re-plan every object although their revision did
    /// not change (a Vault refresh changed a Secret that workloads restart on).
    pub replans: Mutex<std::collections::HashSet<crate::heal::SyncKey>>,
    /// Keeps GitSyncs whose Git server does not answer from holding every reconcile slot.
    pub fetch_gate: crate::sync::fetch::FetchGate,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Who a GitSync applies and prunes as.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Actor {
    /// The controller's own identity.
    Controller,
    /// `system:serviceaccount:NAMESPACE:NAME`, impersonated.
    ServiceAccount(String),
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Actor::Controller => f.write_str("the controller"),
            Actor::ServiceAccount(user) => f.write_str(user),
        }
    }
}

impl Shared {
    /// Who the GitSync in `namespace` with `spec.serviceAccountName` = `service_account`
    /// acts as.
    pub(crate) fn actor(
        &self,
        namespace: &str,
        service_account: Option<&str>,
    ) -> Result<Actor, crate::Error> {
        let Some(name) = service_account.or(self.settings.default_service_account.as_deref())
        else {
            if self.settings.trusted_namespaces.contains(namespace) {
                return Ok(Actor::Controller);
            }
            return Err(crate::Error::Spec(format!(
                "spec.serviceAccountName is required in namespace {namespace}: only GitSyncs in \
                 the trusted namespaces ({}; --trusted-namespaces) may apply with the \
                 controller's own permissions; name a service account of {namespace} with a \
                 Role for what the repository holds",
                self.settings.trusted_namespaces.describe()
            )));
        };
        if !is_dns_subdomain(name) {
            return Err(crate::Error::Spec(format!(
                "spec.serviceAccountName: {name:?} is not a service account name"
            )));
        }
        Ok(Actor::ServiceAccount(format!(
            "system:serviceaccount:{namespace}:{name}"
        )))
    }

    /// The client that acts as `actor`.
    pub(crate) fn client_as(&self, actor: &Actor) -> Result<Client, crate::Error> {
        let Actor::ServiceAccount(user) = actor else {
            return Ok(self.client.clone());
        };
        let mut clients = self.impersonating.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(user) {
            return Ok(client.clone());
        }
        let mut config = self.config.clone();
        config.auth_info.impersonate = Some(user.clone());
        // The API server adds the service account's groups itself.
        config.auth_info.impersonate_groups = None;
        let client = Client::try_from(config).map_err(|source| crate::Error::Kube {
            action: "creating the client that impersonates the service account",
            source,
        })?;
        // Bounded by the service accounts GitSyncs name; cleared if it ever grows large.
        if clients.len() >= 1024 {
            clients.clear();
        }
        clients.insert(user.clone(), client.clone());
        Ok(client)
    }

    /// Asks for a full re-plan of `key` at its next reconcile, and for that reconcile now.
    pub(crate) fn request_replan(&self, key: &crate::heal::SyncKey) {
        self.replans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        let _ = self
            .reconcile_now
            .unbounded_send(kube::runtime::reflector::ObjectRef::new(&key.1).within(&key.0));
    }

    /// Whether a full re-plan of `key` was asked for (and forgets the request).
    pub(crate) fn take_replan(&self, key: &crate::heal::SyncKey) -> bool {
        self.replans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }

    /// The published recipients file.
    pub(crate) async fn recipients_file(&self) -> Option<String> {
        let keys = self.keys.read().await;
        if keys.identities().is_empty() {
            None
        } else {
            Some(keys.recipients_file(&self.settings.namespace))
        }
    }
}

/// A Kubernetes object name (RFC 1123 subdomain).
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_namespaces_always_hold_the_controllers_own() {
        let default = TrustedNamespaces::parse(None, "sealsync-system").expect("default");
        assert!(default.contains("sealsync-system"));
        assert!(!default.contains("team-a"));
        let listed =
            TrustedNamespaces::parse(Some("platform, infra"), "sealsync-system").expect("list");
        assert!(listed.contains("platform") && listed.contains("infra"));
        assert!(listed.contains("sealsync-system"));
        assert_eq!(listed.describe(), "sealsync-system, platform, infra");
        assert_eq!(
            TrustedNamespaces::parse(Some("*"), "x"),
            Ok(TrustedNamespaces::All)
        );
        assert!(TrustedNamespaces::parse(Some("Bad_Name"), "x").is_err());
    }
}
