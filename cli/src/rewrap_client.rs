//! Calls the controller's `POST /v1/rewrap`: through the API server's service proxy by
//! default, as kubeseal reaches its controller, or at `--controller-url`.
//!
//! The caller authenticates with its Kubernetes bearer token (from `--token-file`, else the
//! kubeconfig). The API server consumes `Authorization` on proxied requests, so through the
//! proxy the token travels in `X-Sealsync-Token`. What comes back is checked before it is
//! used: the same documents with the same value lines, only their envelopes re-wrapped.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args as ClapArgs;
use http_body_util::BodyExt;
use kube::Client;
use sealsync_crypto::{KeyId, SealedSecret};
use zeroize::Zeroizing;

use sealsync_core::rewrap::{RewrapRequest, RewrapResponse, MAX_BODY, MAX_DOCUMENTS};
use sealsync_core::Chain;

use crate::cluster::ClusterArgs;
use crate::error::{CliError, CliResult};

/// The most documents one request carries (the controller's limit).
const BATCH_DOCUMENTS: usize = MAX_DOCUMENTS;
/// The most bytes of documents one request carries, under the controller's limit on the body.
const BATCH_BYTES: usize = MAX_BODY / 4 * 3;
/// The largest answer read.
const MAX_ANSWER_BYTES: usize = 16 * 1024 * 1024;
/// How often a request refused with 429 is tried again.
const RETRIES: u32 = 10;

/// Where the controller is and who the caller is.
#[derive(Debug, Clone, ClapArgs)]
pub struct ControllerArgs {
    /// The controller's URL, such as http://127.0.0.1:8080. Default: through the API
    /// server's service proxy to the Service sealsync-controller (port `http`).
    #[arg(long, value_name = "URL")]
    pub controller_url: Option<String>,
    /// The namespace sealsync-controller runs in.
    #[arg(long, value_name = "NS", default_value = "sealsync-system")]
    pub controller_namespace: String,
    /// A file with the bearer token to present (such as `kubectl create token NAME`'s
    /// output). Default: the kubeconfig user's token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

/// A connection to `/v1/rewrap`.
pub struct Rewrapper {
    client: Client,
    path: String,
    header: &'static str,
    token: Zeroizing<String>,
    place: String,
}

impl std::fmt::Debug for Rewrapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rewrapper")
            .field("place", &self.place)
            .finish_non_exhaustive()
    }
}

fn read_token(file: &std::path::Path) -> CliResult<Zeroizing<String>> {
    let text = crate::fsio::read_input(Some(file))?;
    let token = text.trim();
    if token.is_empty() || token.contains(char::is_whitespace) {
        return Err(
            CliError::new(format!("{}: not a bearer token", file.display())).with_hint(
                "put the token alone in the file, as `kubectl create token NAME > FILE` writes it",
            ),
        );
    }
    Ok(Zeroizing::new(token.to_owned()))
}

impl Rewrapper {
    /// Connects as `args` say.
    pub async fn connect(args: &ControllerArgs) -> CliResult<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = sealsync_core::kubeclient::config(
            args.cluster.kubeconfig.as_deref(),
            args.cluster.context.as_deref(),
        )
        .await
        .map_err(|e| {
            CliError::new(Chain(&e).to_string()).with_hint(
                "pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG, as for kubectl",
            )
        })?;
        let token = match &args.token_file {
            Some(file) => read_token(file)?,
            None => {
                use secrecy::ExposeSecret;
                match (&config.auth_info.token, &config.auth_info.token_file) {
                    (Some(token), _) => Zeroizing::new(token.expose_secret().to_owned()),
                    (None, Some(file)) => read_token(std::path::Path::new(file))?,
                    (None, None) => {
                        return Err(CliError::new(
                            "the kubeconfig user has no bearer token to present to the controller",
                        )
                        .with_hint(
                            "pass --token-file FILE with a token of an account allowed `create` on sealingkeys/rewrap (for example `kubectl create token NAME > FILE`)",
                        ))
                    }
                }
            }
        };
        let namespace = &args.controller_namespace;
        let (client, path, header, place) = match &args.controller_url {
            Some(url) => {
                let uri: http::Uri = url.parse().map_err(|_| {
                    CliError::new(format!("--controller-url {url}: not a URL"))
                        .with_hint("pass the controller's address, such as http://127.0.0.1:8080")
                })?;
                let client = Client::try_from(kube::Config::new(uri))
                    .map_err(|e| CliError::new(format!("--controller-url {url}: {e}")))?;
                (
                    client,
                    "/v1/rewrap".to_owned(),
                    "authorization",
                    url.clone(),
                )
            }
            None => {
                let client = Client::try_from(config)
                    .map_err(|e| CliError::new(format!("creating the Kubernetes client: {e}")))?;
                (
                    client,
                    format!("/api/v1/namespaces/{namespace}/services/http:sealsync-controller:http/proxy/v1/rewrap"),
                    crate::rewrap_client::PROXY_TOKEN_HEADER,
                    format!("the Service {namespace}/sealsync-controller"),
                )
            }
        };
        Ok(Self {
            client,
            path,
            header,
            token,
            place,
        })
    }

    /// Re-wraps `documents` (YAML texts of SealedSecrets) to `recipients`, in batches.
    pub async fn rewrap(
        &self,
        documents: &[String],
        recipients: &[String],
    ) -> CliResult<Vec<String>> {
        let mut out = Vec::with_capacity(documents.len());
        let mut batch: Vec<&String> = Vec::new();
        let mut bytes = 0;
        for doc in documents {
            if !batch.is_empty()
                && (batch.len() == BATCH_DOCUMENTS || bytes + doc.len() > BATCH_BYTES)
            {
                out.extend(self.send(&batch, recipients).await?);
                batch.clear();
                bytes = 0;
            }
            bytes += doc.len();
            batch.push(doc);
        }
        if !batch.is_empty() {
            out.extend(self.send(&batch, recipients).await?);
        }
        Ok(out)
    }

    async fn send(&self, documents: &[&String], recipients: &[String]) -> CliResult<Vec<String>> {
        let request = RewrapRequest {
            documents: documents.iter().map(|d| (*d).clone()).collect(),
            recipients: recipients.to_vec(),
        };
        let body = serde_json::to_vec(&request)
            .map_err(|e| CliError::new(format!("encoding the request: {e}")))?;
        let value = if self.header == "authorization" {
            Zeroizing::new(format!("Bearer {}", self.token.as_str()))
        } else {
            self.token.clone()
        };
        let mut delay = Duration::from_millis(500);
        for attempt in 0..=RETRIES {
            let request = http::Request::post(&self.path)
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(self.header, value.as_str())
                .body(body.clone())
                .map_err(|e| CliError::new(format!("building the request: {e}")))?;
            let response = self.client.send(request.map(kube::client::Body::from)).await.map_err(|e| {
                CliError::new(format!("{}: cannot reach the controller ({e})", self.place)).with_hint(
                    "check that sealsync-controller runs; pass --controller-url URL to call it directly",
                )
            })?;
            let status = response.status();
            let limited = http_body_util::Limited::new(response.into_body(), MAX_ANSWER_BYTES);
            let answer = limited
                .collect()
                .await
                .map_err(|e| CliError::new(format!("{}: reading the answer: {e}", self.place)))?
                .to_bytes();
            let text = String::from_utf8_lossy(&answer).trim().to_owned();
            match status.as_u16() {
                200 => {
                    let parsed: RewrapResponse = serde_json::from_slice(&answer).map_err(|e| {
                        CliError::new(format!("{}: the answer is not a re-wrap response: {e}", self.place))
                    })?;
                    let docs = parsed.documents;
                    if docs.len() != documents.len() {
                        return Err(CliError::new(format!(
                            "{}: sent {} documents, got {} back",
                            self.place,
                            documents.len(),
                            docs.len()
                        )));
                    }
                    return Ok(docs);
                }
                429 if attempt < RETRIES => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
                401 => {
                    return Err(CliError::new(format!("{}: not authenticated: {text}", self.place))
                        .with_hint("pass --token-file FILE with a valid token (such as `kubectl create token NAME`)"))
                }
                403 => {
                    return Err(CliError::new(format!("{}: refused: {text}", self.place)).with_hint(
                        "re-wrapping needs `create` on sealingkeys/rewrap in the controller's namespace, and recipients the cluster trusts (its keys, its recovery recipients, its peers)",
                    ))
                }
                _ => {
                    return Err(CliError::new(format!(
                        "{}: the controller answered {status}: {text}",
                        self.place
                    )))
                }
            }
        }
        Err(CliError::new(format!(
            "{}: still rate-limited after {RETRIES} tries",
            self.place
        ))
        .with_hint("try again in a minute, or reseal fewer files at once"))
    }
}

/// The header the token travels in through the API server's service proxy.
pub const PROXY_TOKEN_HEADER: &str = "x-sealsync-token";

/// Checks that `after` is `before` with only its envelopes re-wrapped to `wanted`: the same
/// metadata, scope, template and value lines, the same envelope ids.
pub fn check_rewrapped(
    before: &SealedSecret,
    after: &SealedSecret,
    wanted: &BTreeSet<KeyId>,
) -> Result<(), String> {
    let (b, a) = (before.wire(), after.wire());
    if a.metadata != b.metadata
        || a.spec.scope != b.spec.scope
        || a.spec.template != b.spec.template
    {
        return Err("the controller changed the document's metadata, scope or template".to_owned());
    }
    if a.spec.encrypted_data != b.spec.encrypted_data {
        return Err(
            "the controller changed value lines; a re-wrap changes only envelopes".to_owned(),
        );
    }
    let ids = |s: &SealedSecret| {
        s.envelopes()
            .iter()
            .map(|e| e.id.clone())
            .collect::<BTreeSet<_>>()
    };
    if ids(after) != ids(before) {
        return Err("the controller changed the envelopes' ids".to_owned());
    }
    // Listed key ids are not authenticated: the wrapped keys must at least hold as many
    // recipients as they list.
    let mismatches = after
        .verify_recipients(&[])
        .map_err(|e| format!("the re-wrapped envelopes do not parse: {e}"))?;
    if let Some(first) = mismatches.first() {
        return Err(format!(
            "the re-wrapped document does not hold what it lists: {first}"
        ));
    }
    for envelope in after.envelopes() {
        let listed: BTreeSet<KeyId> = envelope.recipients.iter().cloned().collect();
        if &listed != wanted {
            return Err(format!(
                "envelope {} is not wrapped to the recipients asked for",
                envelope.id
            ));
        }
    }
    Ok(())
}
