//! A TLS proxy in front of the real kube-apiserver that keeps the fault matrix of the
//! embedded server: fail the next N requests matching a method and path with a status, add
//! latency, and drop every open watch. Clients reach the cluster only through it, with the
//! same CA and token as the server itself.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use futures::stream;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::apiserver::error::ApiError;
use crate::apiserver::faults::Faults;

type ProxyBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// Headers that describe one connection, not the request: never forwarded.
const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
];

struct Shared {
    faults: Faults,
    watch_epoch: watch::Sender<u64>,
    upstream: String,
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
}

/// The proxy: serving on a loopback port until dropped.
pub struct FaultProxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// An HTTPS client that trusts only `ca`.
pub fn https_client(
    ca: &CertificateDer<'static>,
) -> Result<Client<HttpsConnector<HttpConnector>, Incoming>> {
    https_client_for(ca)
}

fn https_client_for<B>(
    ca: &CertificateDer<'static>,
) -> Result<Client<HttpsConnector<HttpConnector>, B>>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
{
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).context("trusting the test CA")?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(connector))
}

/// A GET with a bearer token on a fresh client: the status and up to 1 MiB of body.
pub async fn get(
    ca: &CertificateDer<'static>,
    url: &str,
    token: &str,
) -> Result<(StatusCode, String)> {
    let client = https_client_for::<Full<Bytes>>(ca)?;
    let request = Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .context("building the request")?;
    let response = client
        .request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let body = http_body_util::Limited::new(response.into_body(), 1 << 20)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the response: {e}"))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

impl FaultProxy {
    /// Listens on `listen` (port 0: a free one) with `chain`/`key`, forwarding to `upstream`
    /// (`127.0.0.1:PORT`, trusted through `ca`).
    pub async fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        ca: &CertificateDer<'static>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self> {
        let server_tls = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .context("the proxy's serving certificate")?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_tls));
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the fault proxy to {listen}"))?;
        let addr = listener.local_addr().context("the proxy's address")?;
        let shared = Arc::new(Shared {
            faults: Faults::default(),
            watch_epoch: watch::channel(0).0,
            upstream: upstream.to_string(),
            client: https_client(ca)?,
        });
        let serving = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                // As kube-apiserver (Go) does: without it, a response written in parts waits
                // for the client's delayed ACK (40 ms) on every request.
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let shared = Arc::clone(&serving);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let shared = Arc::clone(&shared);
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self { shared, addr, task })
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The fault rules in force.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Fails the next `count` requests whose method and path prefix match with `status`.
    pub fn fail_next(&self, count: u32, method: Option<&str>, path_prefix: &str, status: u16) {
        self.shared
            .faults
            .fail_next(count, method, path_prefix, status);
    }

    /// Adds latency to requests whose method and path prefix match.
    pub fn add_latency(&self, method: Option<&str>, path_prefix: &str, delay: Duration) {
        self.shared.faults.delay(method, path_prefix, delay);
    }

    /// Removes all failure and latency rules.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Ends every open watch stream; clients see the stream close and re-watch.
    pub fn drop_watches(&self) {
        self.shared.watch_epoch.send_modify(|e| *e += 1);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn status_response(error: &ApiError) -> Response<ProxyBody> {
    let body = serde_json::to_vec(&error.status()).unwrap_or_default();
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *response.status_mut() =
        StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn is_watch(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    })
}

async fn handle(shared: &Shared, req: Request<Incoming>) -> Response<ProxyBody> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    shared.faults.count(&method, req.uri().query());
    let delay = shared.faults.latency_for(&method, &path);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(error) = shared.faults.take_failure(&method, &path) {
        return status_response(&error);
    }
    let watch = is_watch(req.uri().query());
    let path_and_query = req
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), ToString::to_string);
    let (mut parts, body) = req.into_parts();
    let Ok(uri) = format!("https://{}{path_and_query}", shared.upstream).parse() else {
        return status_response(&ApiError::bad_request(
            "proxy: the request URI does not parse",
        ));
    };
    parts.uri = uri;
    for header in HOP_HEADERS {
        parts.headers.remove(*header);
    }
    let response = match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(response) => response,
        Err(e) => {
            return status_response(&ApiError::new(
                503,
                "ServiceUnavailable",
                format!("proxy: kube-apiserver unreachable: {e}"),
            ))
        }
    };
    let (mut parts, body) = response.into_parts();
    for header in HOP_HEADERS {
        parts.headers.remove(*header);
    }
    let body = if watch {
        cut_on_epoch(body, shared.watch_epoch.subscribe())
    } else {
        body.map_err(Into::into).boxed()
    };
    Response::from_parts(parts, body)
}

/// The watch body, ended when the epoch changes (as if the server dropped the connection).
fn cut_on_epoch(body: Incoming, epoch: watch::Receiver<u64>) -> ProxyBody {
    let frames = stream::unfold(Some((body, epoch)), |state| async move {
        let (mut body, mut epoch) = state?;
        tokio::select! {
            _ = epoch.changed() => None,
            frame = body.frame() => match frame {
                Some(Ok(frame)) => Some((Ok(frame), Some((body, epoch)))),
                Some(Err(e)) => Some((Err(e.into()), None)),
                None => None,
            },
        }
    });
    BodyExt::boxed(StreamBody::new(frames))
}
