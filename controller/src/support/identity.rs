//! Who a GitSync acts as, and the API clients that act so.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::Client;

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

/// The controller's API client, and the clients that impersonate GitSyncs' service accounts
/// (one connection pool each, by user name).
#[derive(Clone)]
pub(crate) struct Clients {
    /// The controller's own client.
    pub(crate) client: Client,
    /// The configuration `client` was built from.
    config: kube::Config,
    impersonating: Arc<Mutex<HashMap<String, Client>>>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients").finish_non_exhaustive()
    }
}

impl Clients {
    /// The controller's client and the configuration it was built from.
    pub(crate) fn new(client: Client, config: kube::Config) -> Self {
        Self {
            client,
            config,
            impersonating: Arc::default(),
        }
    }

    /// The client that acts as `actor`.
    pub(crate) fn client_as(&self, actor: &Actor) -> Result<Client, kube::Error> {
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
        let client = Client::try_from(config)?;
        // Bounded by the service accounts GitSyncs name; cleared if it ever grows large.
        if clients.len() >= 1024 {
            clients.clear();
        }
        clients.insert(user.clone(), client.clone());
        Ok(client)
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
