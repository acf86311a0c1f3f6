//! Logging in to Vault with the GitSync's method, and keeping the token alive: renewed at two
//! thirds of its lease, and replaced by a new login when renewal fails or Vault refuses it.

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, PostParams};
use serde::Deserialize;
use zeroize::Zeroizing;

use super::config::{Auth, Defaults, VaultConfig};
use super::error::VaultError;
use super::transport::{Reply, Transport};
use crate::support::secretkeys::{read_first_key, KeyLookup};

/// How long a requested service-account token lives (the API server's minimum).
const SERVICE_ACCOUNT_TOKEN_SECONDS: i64 = 600;

/// A token and when to renew it.
pub(super) struct Lease {
    /// The Vault token.
    pub token: Zeroizing<String>,
    /// When to renew it; never for a token without a TTL.
    pub renew_at: Option<Instant>,
    /// Whether `renew-self` may extend it.
    pub renewable: bool,
}

impl std::fmt::Debug for Lease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lease")
            .field("renew_at", &self.renew_at)
            .field("renewable", &self.renewable)
            .finish_non_exhaustive()
    }
}

impl Lease {
    fn new(token: Zeroizing<String>, ttl_seconds: u64, renewable: bool) -> Self {
        let renew_at = (ttl_seconds > 0)
            .then(|| Instant::now() + Duration::from_secs(ttl_seconds.saturating_mul(2) / 3));
        Self {
            token,
            renew_at,
            renewable,
        }
    }

    /// Whether the lease is past its renewal time.
    pub(super) fn due(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }
}

#[derive(Deserialize)]
struct AuthReply {
    auth: Option<AuthBody>,
}

#[derive(Deserialize)]
struct AuthBody {
    client_token: String,
    #[serde(default)]
    lease_duration: u64,
    #[serde(default)]
    renewable: bool,
}

#[derive(Deserialize)]
struct LookupReply {
    data: LookupBody,
}

#[derive(Deserialize)]
struct LookupBody {
    #[serde(default)]
    ttl: u64,
    #[serde(default)]
    renewable: Option<bool>,
}

fn login_error(method: &'static str, reason: impl Into<String>) -> VaultError {
    VaultError::Login {
        method,
        reason: reason.into(),
    }
}

/// Vault's answer to a refused login or lookup, in words.
fn refused(transport: &Transport, reply: &Reply) -> String {
    match reply.status {
        503 => format!(
            "Vault at {} is sealed or unavailable (503)",
            transport.address()
        ),
        status => {
            let errors = reply.errors();
            if errors.is_empty() {
                format!("Vault answered {status}")
            } else {
                format!("Vault answered {status}: {}", errors.join("; "))
            }
        }
    }
}

/// No answer at all, in words.
fn unreachable(
    transport: &Transport,
    method: &'static str,
    e: super::transport::CallError,
) -> VaultError {
    login_error(
        method,
        format!(
            "Vault at {} is unreachable ({e}); check spec.vault.address and that Vault is running",
            transport.address()
        ),
    )
}

/// A token as Vault accepts it in a header: printable ASCII.
fn check_token(method: &'static str, token: &str, what: &str) -> Result<(), VaultError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(login_error(
            method,
            format!("{what} is not a Vault token (it must be printable ASCII without spaces)"),
        ));
    }
    Ok(())
}

/// One key of a Secret in the GitSync's namespace, as text without a trailing newline.
async fn secret_text(
    kube: &kube::Client,
    config: &VaultConfig,
    method: &'static str,
    field: &str,
    name: &str,
    keys: &[&str],
) -> Result<Zeroizing<String>, VaultError> {
    let namespace = &config.gitsync_namespace;
    let key = keys
        .iter()
        .map(|k| format!("{k:?}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let lookup = read_first_key(kube, namespace, name, keys)
        .await
        .map_err(|e| login_error(method, format!("reading Secret {namespace}/{name}: {e}")))?;
    let bytes = match lookup {
        KeyLookup::Found(bytes) => bytes,
        KeyLookup::NoSecret => {
            return Err(login_error(
                method,
                format!("{field}: Secret {namespace}/{name} not found"),
            ))
        }
        KeyLookup::NoKey => {
            return Err(login_error(
                method,
                format!("{field}: Secret {namespace}/{name} has no key {key}"),
            ))
        }
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| {
        login_error(
            method,
            format!("{field}: key {key} of Secret {namespace}/{name} is not text"),
        )
    })?;
    Ok(Zeroizing::new(
        text.trim_end_matches(['\n', '\r']).to_owned(),
    ))
}

/// Logs in with `config`'s method.
pub(super) async fn login(
    transport: &Transport,
    config: &VaultConfig,
    defaults: &Defaults,
    kube: &kube::Client,
) -> Result<Lease, VaultError> {
    let method = config.auth.method();
    match &config.auth {
        Auth::ControllerToken => {
            let token = defaults
                .token
                .clone()
                .ok_or_else(|| login_error(method, "VAULT_TOKEN is not set"))?;
            check_token(method, &token, "VAULT_TOKEN")?;
            lookup(transport, method, token).await
        }
        Auth::Token { secret, key } => {
            let token = secret_text(
                kube,
                config,
                method,
                "spec.vault.token.secretRef",
                secret,
                &[key.as_str()],
            )
            .await?;
            check_token(method, &token, &format!("key {key:?} of Secret {secret}"))?;
            lookup(transport, method, token).await
        }
        Auth::AppRole {
            mount,
            role_id,
            secret,
            key,
        } => {
            let keys: Vec<&str> = match key {
                Some(key) => vec![key.as_str()],
                None => super::config::DEFAULT_SECRET_ID_KEYS.to_vec(),
            };
            let secret_id = secret_text(
                kube,
                config,
                method,
                "spec.vault.appRole.secretRef",
                secret,
                &keys,
            )
            .await?;
            let request = vaultrs::api::auth::approle::requests::LoginWithApproleRequest {
                mount: mount.clone(),
                role_id: role_id.clone(),
                secret_id: secret_id.as_str().to_owned(),
            };
            let reply = transport.call(&request, None).await;
            let mut request = request;
            zeroize::Zeroize::zeroize(&mut request.secret_id);
            token_from(
                transport,
                method,
                reply.map_err(|e| unreachable(transport, method, e))?,
            )
        }
        Auth::Kubernetes {
            mount,
            role,
            service_account,
            audience,
        } => {
            let jwt =
                service_account_token(kube, config, service_account, audience.as_deref()).await?;
            let request = vaultrs::api::auth::kubernetes::requests::LoginWithKubernetesRequest {
                mount: mount.clone(),
                role: role.clone(),
                jwt: jwt.as_str().to_owned(),
            };
            let reply = transport.call(&request, None).await;
            let mut request = request;
            zeroize::Zeroize::zeroize(&mut request.jwt);
            token_from(
                transport,
                method,
                reply.map_err(|e| unreachable(transport, method, e))?,
            )
        }
    }
}

/// The token of a login answer.
fn token_from(
    transport: &Transport,
    method: &'static str,
    reply: Reply,
) -> Result<Lease, VaultError> {
    if !reply.ok() {
        return Err(login_error(method, refused(transport, &reply)));
    }
    let parsed: AuthReply = serde_json::from_slice(&reply.body)
        .map_err(|_| login_error(method, "the login answer is not Vault's"))?;
    let auth = parsed
        .auth
        .ok_or_else(|| login_error(method, "the login answer holds no token"))?;
    let token = Zeroizing::new(auth.client_token);
    check_token(method, &token, "the token Vault returned")?;
    Ok(Lease::new(token, auth.lease_duration, auth.renewable))
}

/// Checks a given token with `lookup-self` and learns its TTL.
async fn lookup(
    transport: &Transport,
    method: &'static str,
    token: Zeroizing<String>,
) -> Result<Lease, VaultError> {
    let reply = transport
        .raw(
            reqwest::Method::GET,
            "auth/token/lookup-self",
            Some(&token),
            None,
        )
        .await
        .map_err(|e| unreachable(transport, method, e))?;
    if !reply.ok() {
        let why = if reply.status == 403 {
            "Vault refused the token (403): it is invalid, expired or revoked; put a valid token in the Secret".to_owned()
        } else {
            refused(transport, &reply)
        };
        return Err(login_error(method, why));
    }
    let parsed: LookupReply = serde_json::from_slice(&reply.body)
        .map_err(|_| login_error(method, "the token lookup answer is not Vault's"))?;
    Ok(Lease::new(
        token,
        parsed.data.ttl,
        parsed.data.renewable.unwrap_or(false),
    ))
}

/// Extends `lease` with `renew-self`; `None` when Vault will not (a new login is needed).
pub(super) async fn renew(transport: &Transport, lease: &Lease) -> Option<Lease> {
    if !lease.renewable {
        return None;
    }
    let reply = transport
        .raw(
            reqwest::Method::POST,
            "auth/token/renew-self",
            Some(&lease.token),
            Some(Zeroizing::new(b"{}".to_vec())),
        )
        .await
        .ok()?;
    token_from(transport, "renew", reply).ok()
}

/// A token of the GitSync's service account, through the TokenRequest API.
async fn service_account_token(
    kube: &kube::Client,
    config: &VaultConfig,
    service_account: &str,
    audience: Option<&str>,
) -> Result<Zeroizing<String>, VaultError> {
    let namespace = &config.gitsync_namespace;
    let accounts: Api<ServiceAccount> = Api::namespaced(kube.clone(), namespace);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: audience.map(|a| vec![a.to_owned()]).unwrap_or_default(),
            expiration_seconds: Some(SERVICE_ACCOUNT_TOKEN_SECONDS),
            bound_object_ref: None,
        },
        ..TokenRequest::default()
    };
    let answer = accounts
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .map_err(|e| {
            login_error(
                "kubernetes",
                format!(
                    "requesting a token of service account {namespace}/{service_account}: {}",
                    kube_reason(&e)
                ),
            )
        })?;
    let token = answer
        .status
        .map(|s| Zeroizing::new(s.token))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            login_error(
                "kubernetes",
                format!("the TokenRequest for {namespace}/{service_account} returned no token"),
            )
        })?;
    Ok(token)
}

/// The API server's message, or the client error.
fn kube_reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}
