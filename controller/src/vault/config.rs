//! The Vault settings one GitSync resolves with: its `spec.vault` over the controller's
//! `VAULT_*` defaults, checked before anything is sent.

use std::hash::{Hash, Hasher};
use std::time::Duration;

use sealsync_core::{parse_duration, VaultSpec};
use zeroize::Zeroizing;

use super::error::VaultError;
use crate::support::TrustedNamespaces;

/// The default `refreshInterval`, as External Secrets Operator's.
pub(super) const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);
/// The keys an AppRole secret id is looked for under when `secretRef.key` is unset: the
/// documented default, then the spellings `kubectl create secret` users and the `bao` CLI
/// (`secret_id`) produce.
pub(super) const DEFAULT_SECRET_ID_KEYS: [&str; 3] = ["secretId", "secret-id", "secret_id"];
/// The shortest `refreshInterval`: Vault is not a message bus.
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// The largest `VAULT_CACERT` file read.
const MAX_CA_FILE: u64 = 1024 * 1024;

/// The controller's `VAULT_ADDR`, `VAULT_NAMESPACE`, `VAULT_CACERT` and `VAULT_TOKEN`, read
/// once at start.
#[derive(Default)]
pub(crate) struct Defaults {
    /// `VAULT_ADDR`.
    pub address: Option<String>,
    /// `VAULT_NAMESPACE`.
    pub namespace: Option<String>,
    /// The PEM file `VAULT_CACERT` names.
    pub ca_pem: Option<Vec<u8>>,
    /// `VAULT_TOKEN`: used only with the controller's own address, for GitSyncs in the
    /// trusted namespaces.
    pub token: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for Defaults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Defaults")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

impl Defaults {
    /// Reads the environment. A `VAULT_CACERT` that cannot be read is an error at start.
    pub(crate) fn from_env() -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use std::io::Read as _;
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let ca_pem = match var("VAULT_CACERT") {
            Some(path) => {
                let mut bytes = Vec::new();
                std::fs::File::open(&path)
                    .and_then(|f| f.take(MAX_CA_FILE + 1).read_to_end(&mut bytes))
                    .with_context(|| format!("reading VAULT_CACERT {path}"))?;
                if bytes.len() as u64 > MAX_CA_FILE {
                    anyhow::bail!("VAULT_CACERT {path}: larger than 1 MiB");
                }
                Some(bytes)
            }
            None => None,
        };
        Ok(Self {
            address: var("VAULT_ADDR").map(|a| a.trim_end_matches('/').to_owned()),
            namespace: var("VAULT_NAMESPACE"),
            ca_pem,
            token: var("VAULT_TOKEN").map(|t| Zeroizing::new(t.trim().to_owned())),
        })
    }
}

/// How a GitSync logs in.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Auth {
    /// The controller's `VAULT_TOKEN`.
    ControllerToken,
    /// A token from a Secret in the GitSync's namespace.
    Token {
        /// The Secret.
        secret: String,
        /// Its key.
        key: String,
    },
    /// AppRole, the secret id from a Secret in the GitSync's namespace.
    AppRole {
        /// The auth mount.
        mount: String,
        /// The role id.
        role_id: String,
        /// The Secret.
        secret: String,
        /// Its key; unset, the first of [`DEFAULT_SECRET_ID_KEYS`] it holds.
        key: Option<String>,
    },
    /// Kubernetes, with a requested token of the GitSync's service account.
    Kubernetes {
        /// The auth mount.
        mount: String,
        /// The Vault role.
        role: String,
        /// The service account, in the GitSync's namespace.
        service_account: String,
        /// The token's audience.
        audience: Option<String>,
    },
}

impl Auth {
    /// The method's name in `spec.vault`, for messages.
    pub(crate) fn method(&self) -> &'static str {
        match self {
            Auth::ControllerToken => "the controller's VAULT_TOKEN",
            Auth::Token { .. } => "token",
            Auth::AppRole { .. } => "appRole",
            Auth::Kubernetes { .. } => "kubernetes",
        }
    }
}

/// The settings of one GitSync, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct VaultConfig {
    /// `scheme://host[:port]`, no trailing `/`.
    pub address: String,
    /// The Vault namespace.
    pub namespace: Option<String>,
    /// How often references are read again.
    pub refresh_interval: Duration,
    /// Extra trusted CAs, PEM.
    pub ca_pem: Option<Vec<u8>>,
    /// The KV version of every mount, when set.
    pub kv_version: Option<u8>,
    /// The login.
    pub auth: Auth,
    /// The GitSync's namespace, where Secrets and the service account are read.
    pub gitsync_namespace: String,
}

impl VaultConfig {
    /// A hash of every setting: a changed spec starts a new session (and a new login).
    pub(crate) fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        hasher.finish()
    }

    /// The settings of a GitSync in `gitsync_namespace` with `spec` (absent: the controller's
    /// defaults alone) and `service_account` (`spec.serviceAccountName`); `trusted` are the
    /// namespaces whose GitSyncs may log in with the controller's `VAULT_TOKEN`.
    pub(crate) fn resolve(
        spec: Option<&VaultSpec>,
        service_account: Option<&str>,
        gitsync_namespace: &str,
        defaults: &Defaults,
        trusted: &TrustedNamespaces,
    ) -> Result<Option<Self>, VaultError> {
        let empty = VaultSpec::default();
        let spec_given = spec.is_some();
        let spec = spec.unwrap_or(&empty);
        let address = match spec.address.as_deref().or(defaults.address.as_deref()) {
            Some(a) => check_address(a)?,
            None if spec_given => {
                return Err(VaultError::Spec(
                    "address is not set and the controller has no VAULT_ADDR".to_owned(),
                ))
            }
            None => return Ok(None),
        };
        let methods = [
            spec.token.is_some(),
            spec.app_role.is_some(),
            spec.kubernetes.is_some(),
        ]
        .iter()
        .filter(|set| **set)
        .count();
        if methods > 1 {
            return Err(VaultError::Spec(
                "set only one of token, appRole or kubernetes".to_owned(),
            ));
        }
        let auth = if let Some(token) = &spec.token {
            Auth::Token {
                secret: check_name(&token.secret_ref.name, "token.secretRef.name")?,
                key: token
                    .secret_ref
                    .key
                    .clone()
                    .unwrap_or_else(|| "token".to_owned()),
            }
        } else if let Some(app_role) = &spec.app_role {
            if app_role.role_id.trim().is_empty() {
                return Err(VaultError::Spec("appRole.roleId is empty".to_owned()));
            }
            Auth::AppRole {
                mount: check_mount(
                    app_role.mount.as_deref().unwrap_or("approle"),
                    "appRole.mount",
                )?,
                role_id: app_role.role_id.clone(),
                secret: check_name(&app_role.secret_ref.name, "appRole.secretRef.name")?,
                key: app_role.secret_ref.key.clone().filter(|k| !k.is_empty()),
            }
        } else if let Some(kubernetes) = &spec.kubernetes {
            if kubernetes.role.trim().is_empty() {
                return Err(VaultError::Spec("kubernetes.role is empty".to_owned()));
            }
            Auth::Kubernetes {
                mount: check_mount(
                    kubernetes.mount.as_deref().unwrap_or("kubernetes"),
                    "kubernetes.mount",
                )?,
                role: kubernetes.role.clone(),
                service_account: check_name(
                    service_account.unwrap_or("default"),
                    "serviceAccountName",
                )?,
                audience: kubernetes.audience.clone().filter(|a| !a.is_empty()),
            }
        } else if defaults.token.is_some() && defaults.address.as_deref() == Some(address.as_str())
        {
            // The controller's token goes only to the controller's own Vault: a GitSync that
            // names another address cannot have it sent there. And only GitSyncs an
            // administrator trusts get it, or any tenant could read what it may read.
            if !trusted.contains(gitsync_namespace) {
                return Err(VaultError::Spec(format!(
                    "no login method: the controller's VAULT_TOKEN serves only GitSyncs in the \
                     trusted namespaces ({}; --trusted-namespaces), not in {gitsync_namespace}; \
                     set token, appRole or kubernetes",
                    trusted.describe()
                )));
            }
            Auth::ControllerToken
        } else {
            return Err(VaultError::Spec(
                "no login method: set token, appRole or kubernetes".to_owned(),
            ));
        };
        let refresh_interval = match &spec.refresh_interval {
            Some(text) => {
                let d = parse_duration(text)
                    .map_err(|e| VaultError::Spec(format!("refreshInterval: {e}")))?;
                if d < MIN_REFRESH {
                    return Err(VaultError::Spec("refreshInterval: at least 5s".to_owned()));
                }
                d
            }
            None => DEFAULT_REFRESH,
        };
        if let Some(v) = spec.kv_version {
            if !(1..=2).contains(&v) {
                return Err(VaultError::Spec("kvVersion: 1 or 2".to_owned()));
            }
        }
        let namespace = spec
            .namespace
            .clone()
            .or_else(|| defaults.namespace.clone())
            .filter(|n| !n.is_empty());
        if let Some(ns) = &namespace {
            if !ns.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(VaultError::Spec(
                    "namespace: printable ASCII without spaces".to_owned(),
                ));
            }
        }
        let ca_pem = match &spec.ca_bundle {
            Some(bundle) => {
                use base64::Engine as _;
                let compact: String = bundle.chars().filter(|c| !c.is_whitespace()).collect();
                let pem = base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .ok()
                    .filter(|pem| {
                        reqwest::Certificate::from_pem_bundle(pem).is_ok_and(|c| !c.is_empty())
                    })
                    .ok_or_else(|| {
                        VaultError::Spec("caBundle: not base64 of PEM certificates".to_owned())
                    })?;
                Some(pem)
            }
            None => defaults.ca_pem.clone(),
        };
        Ok(Some(Self {
            address,
            namespace,
            refresh_interval,
            ca_pem,
            kv_version: spec.kv_version,
            auth,
            gitsync_namespace: gitsync_namespace.to_owned(),
        }))
    }
}

/// `http(s)://host[:port]` with nothing else: a path, query or user would be surprising in a
/// server address, and a user part would be a credential in the spec.
fn check_address(address: &str) -> Result<String, VaultError> {
    let bad = |why: &str| VaultError::Spec(format!("address {address:?}: {why}"));
    let trimmed = address.trim_end_matches('/');
    let (scheme, rest) = trimmed
        .split_once("://")
        .ok_or_else(|| bad("write it as https://HOST:PORT"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("only https:// and http:// are supported"));
    }
    if rest.is_empty()
        || rest.contains(['/', '?', '#', '@'])
        || rest.chars().any(char::is_whitespace)
    {
        return Err(bad("only a scheme, a host and a port: https://HOST:PORT"));
    }
    Ok(trimmed.to_owned())
}

/// A Kubernetes object name.
fn check_name(name: &str, field: &str) -> Result<String, VaultError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(VaultError::Spec(format!(
            "{field}: {name:?} is not a valid name"
        )))
    }
}

/// An auth mount path.
fn check_mount(mount: &str, field: &str) -> Result<String, VaultError> {
    let mount = mount.trim_matches('/');
    let ok = !mount.is_empty()
        && mount.len() <= 256
        && !mount
            .split('/')
            .any(|s| s.is_empty() || s == "." || s == "..")
        && mount
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
    if ok {
        Ok(mount.to_owned())
    } else {
        Err(VaultError::Spec(format!(
            "{field}: {mount:?} is not a mount path"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sealsync_core::{KeyedSecretRef, VaultKubernetesAuth, VaultTokenAuth};

    fn token_spec(address: Option<&str>) -> VaultSpec {
        VaultSpec {
            address: address.map(str::to_owned),
            token: Some(VaultTokenAuth {
                secret_ref: KeyedSecretRef {
                    name: "vault".into(),
                    key: None,
                    namespace: None,
                },
            }),
            ..VaultSpec::default()
        }
    }

    #[test]
    fn spec_over_defaults() {
        let defaults = Defaults {
            address: Some("http://127.0.0.1:8200".into()),
            namespace: Some("team".into()),
            ..Defaults::default()
        };
        let config = VaultConfig::resolve(
            Some(&token_spec(None)),
            None,
            "apps",
            &defaults,
            &TrustedNamespaces::All,
        )
        .expect("valid")
        .expect("configured");
        assert_eq!(config.address, "http://127.0.0.1:8200");
        assert_eq!(config.namespace.as_deref(), Some("team"));
        assert_eq!(config.refresh_interval, DEFAULT_REFRESH);
        assert_eq!(
            config.auth,
            Auth::Token {
                secret: "vault".into(),
                key: "token".into()
            }
        );
        // No spec and no VAULT_ADDR: no Vault at all.
        assert!(VaultConfig::resolve(
            None,
            None,
            "apps",
            &Defaults::default(),
            &TrustedNamespaces::All
        )
        .expect("valid")
        .is_none());
    }

    #[test]
    fn the_controller_token_goes_only_to_the_controller_address() {
        let defaults = Defaults {
            address: Some("http://127.0.0.1:8200".into()),
            token: Some(Zeroizing::new("s.root".into())),
            ..Defaults::default()
        };
        let trusted = TrustedNamespaces::Only(vec!["apps".into()]);
        let own = VaultConfig::resolve(None, None, "apps", &defaults, &trusted)
            .expect("valid")
            .expect("configured");
        assert_eq!(own.auth, Auth::ControllerToken);
        // A tenant's GitSync outside the trusted namespaces never gets the controller's token.
        let err = VaultConfig::resolve(None, None, "team-a", &defaults, &trusted)
            .expect_err("an untrusted namespace");
        let message = err.to_string();
        assert!(
            message.contains("trusted namespaces (apps") && message.contains("team-a"),
            "{message}"
        );
        assert!(!message.contains("s.root"), "{message}");
        let elsewhere = VaultSpec {
            address: Some("https://evil.example".into()),
            ..VaultSpec::default()
        };
        let err = VaultConfig::resolve(Some(&elsewhere), None, "apps", &defaults, &trusted)
            .expect_err("no token for another server");
        assert!(err.to_string().contains("no login method"), "{err}");
    }

    #[test]
    fn bad_specs_are_refused_with_the_field() {
        let d = Defaults::default();
        for (spec, needle) in [
            (token_spec(Some("vault:8200")), "https://HOST:PORT"),
            (token_spec(Some("https://u:p@vault")), "only a scheme"),
            (token_spec(Some("ftp://vault")), "only https://"),
            (
                VaultSpec {
                    kubernetes: Some(VaultKubernetesAuth {
                        mount: None,
                        role: "r".into(),
                        audience: None,
                    }),
                    ..token_spec(Some("https://v"))
                },
                "only one of",
            ),
            (
                VaultSpec {
                    refresh_interval: Some("1s".into()),
                    ..token_spec(Some("https://v"))
                },
                "at least 5s",
            ),
            (
                VaultSpec {
                    kv_version: Some(3),
                    ..token_spec(Some("https://v"))
                },
                "kvVersion",
            ),
            (
                VaultSpec {
                    ca_bundle: Some("bm90IHBlbQ==".into()),
                    ..token_spec(Some("https://v"))
                },
                "caBundle",
            ),
            (VaultSpec::default(), "address is not set"),
        ] {
            let err = VaultConfig::resolve(Some(&spec), None, "apps", &d, &TrustedNamespaces::All)
                .expect_err(needle);
            assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        }
    }
}
