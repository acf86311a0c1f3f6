//! The HTTP side of every Vault call. vaultrs describes the requests (paths, bodies, the
//! token and namespace headers); this sends them with a bounded read of the answer, no
//! redirects (a redirect would carry the token elsewhere), timeouts, and the GitSync's CAs.
//! Answers are kept in zeroizing buffers: they hold values and tokens.

use std::time::Duration;

use rustify::endpoint::{Endpoint, MiddleWare};
use zeroize::Zeroizing;

use super::config::VaultConfig;
use super::error::VaultError;

/// The largest answer read: a Kubernetes Secret holds at most 1 MiB.
pub(super) const MAX_RESPONSE: usize = 2 * 1024 * 1024;
/// Connecting may take this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One request may take this long in all.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// An answer: its status and body.
pub(super) struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The body, wiped when dropped.
    pub body: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .field("bytes", &self.body.len())
            .finish()
    }
}

impl Reply {
    /// Vault's `errors` array, each cut to 200 bytes, at most three.
    pub(super) fn errors(&self) -> Vec<String> {
        #[derive(serde::Deserialize)]
        struct Errors {
            #[serde(default)]
            errors: Vec<String>,
        }
        serde_json::from_slice::<Errors>(&self.body)
            .map(|e| {
                e.errors
                    .into_iter()
                    .take(3)
                    .map(|mut s| {
                        let mut end = s.len().min(200);
                        while !s.is_char_boundary(end) {
                            end -= 1;
                        }
                        s.truncate(end);
                        s.replace(['\n', '\t'], " ")
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the status is 2xx.
    pub(super) fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why no answer came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum CallError {
    /// No connection, TLS refused, or a timeout.
    #[error("{0}")]
    Unreachable(String),
    /// The answer was larger than [`MAX_RESPONSE`].
    #[error("the answer is larger than {} MiB", MAX_RESPONSE / (1024 * 1024))]
    TooLarge,
}

/// One Vault server, as one GitSync reaches it.
pub(super) struct Transport {
    client: reqwest::Client,
    address: String,
    namespace: Option<String>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A client for `config`'s server.
    pub(super) fn new(config: &VaultConfig) -> Result<Self, VaultError> {
        let mut builder = reqwest::Client::builder()
            .tls_backend_rustls()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .no_proxy();
        if let Some(pem) = &config.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|_| VaultError::Spec("caBundle: not PEM certificates".to_owned()))?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder
            .build()
            .map_err(|e| VaultError::Spec(format!("building the HTTP client: {e}")))?;
        Ok(Self {
            client,
            address: config.address.clone(),
            namespace: config.namespace.clone(),
        })
    }

    /// The server's address, for messages.
    pub(super) fn address(&self) -> &str {
        &self.address
    }

    /// Sends a request vaultrs describes, with `token`.
    pub(super) async fn call<E: Endpoint>(
        &self,
        endpoint: &E,
        token: Option<&str>,
    ) -> Result<Reply, CallError> {
        let mut middleware = vaultrs::api::EndpointMiddleware {
            token: token.unwrap_or_default().to_owned(),
            version: "v1".to_owned(),
            wrap: None,
            namespace: self.namespace.clone(),
        };
        let built = endpoint.request(&self.address).and_then(|mut request| {
            middleware.request(endpoint, &mut request)?;
            Ok(request)
        });
        // The header holds its own copy now.
        zeroize::Zeroize::zeroize(&mut middleware.token);
        let request =
            built.map_err(|e| CallError::Unreachable(format!("building the request: {e}")))?;
        let request = reqwest::Request::try_from(request)
            .map_err(|e| CallError::Unreachable(format!("building the request: {e}")))?;
        self.send(request).await
    }

    /// Sends `method` to the API path `path` (below `/v1/`), with `token` and a JSON `body`.
    pub(super) async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Zeroizing<Vec<u8>>>,
    ) -> Result<Reply, CallError> {
        let mut url = reqwest::Url::parse(&self.address)
            .map_err(|e| CallError::Unreachable(format!("the address: {e}")))?;
        url.path_segments_mut()
            .map_err(|()| CallError::Unreachable("the address cannot take a path".to_owned()))?
            .push("v1")
            .extend(path.split('/').filter(|s| !s.is_empty()));
        let mut request = self
            .client
            .request(method, url)
            .header("X-Vault-Request", "true");
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(ns) = &self.namespace {
            request = request.header("X-Vault-Namespace", ns);
        }
        if let Some(body) = body {
            request = request
                .header("Content-Type", "application/json")
                .body(body.to_vec());
        }
        let request = request
            .build()
            .map_err(|e| CallError::Unreachable(format!("building the request: {e}")))?;
        self.send(request).await
    }

    async fn send(&self, request: reqwest::Request) -> Result<Reply, CallError> {
        let mut response = self
            .client
            .execute(request)
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = response.status().as_u16();
        let announced = response.content_length().unwrap_or(0);
        if announced > MAX_RESPONSE as u64 {
            return Err(CallError::TooLarge);
        }
        let mut body = Zeroizing::new(Vec::with_capacity(announced as usize));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE {
                return Err(CallError::TooLarge);
            }
            if body.capacity() < body.len() + chunk.len() {
                // Growing in place would leave a copy behind in the old allocation.
                let mut bigger = Zeroizing::new(Vec::with_capacity(
                    (body.len() + chunk.len()).max(body.capacity() * 2),
                ));
                bigger.extend_from_slice(&body);
                body = bigger;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply { status, body })
    }
}

/// The innermost cause of a transport error (`Connection refused`, a TLS verdict), or
/// `timed out`: the URL it also holds names only the API path.
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return format!("timed out after {}s", REQUEST_TIMEOUT.as_secs());
    }
    let mut cause: &dyn std::error::Error = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}
