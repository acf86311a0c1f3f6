//! The listener, per-connection serving, and the state shared by all requests.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::error::TestClusterError;
use super::faults::Faults;
use super::handlers::{self, now};
use super::store::{ObjKey, Store};
use super::tokens::TokenIssuer;

/// State shared by every request of one server.
#[derive(Debug)]
pub struct Shared {
    store: Mutex<Store>,
    /// Fault rules.
    pub faults: Faults,
    /// Service-account token issuer.
    pub tokens: TokenIssuer,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// Bumped to end every open watch.
    pub watch_epoch: watch::Sender<u64>,
    /// Bumped to close every open connection (restart).
    pub conn_epoch: watch::Sender<u64>,
    /// How often BOOKMARK events are sent to watches that allow them.
    pub bookmark_interval: Duration,
    /// The bearer token written into kubeconfigs.
    pub admin_token: String,
    down_until: Mutex<Option<Instant>>,
}

impl Shared {
    /// Builds the state.
    pub fn new(
        addr: SocketAddr,
        history: usize,
        bookmark_interval: Duration,
        issuer: Option<String>,
    ) -> Result<Self, TestClusterError> {
        let url = format!("http://{addr}");
        let issuer = issuer.unwrap_or_else(|| url.clone());
        let admin_token = format!("sealsync-testcluster-{}", uuid::Uuid::new_v4().simple());
        Ok(Self {
            store: Mutex::new(Store::new(history, &now())),
            faults: Faults::default(),
            tokens: TokenIssuer::new(&issuer)?,
            url,
            addr,
            watch_epoch: watch::channel(0).0,
            conn_epoch: watch::channel(0).0,
            bookmark_interval,
            admin_token,
            down_until: Mutex::new(None),
        })
    }

    /// Locks the store (a panic elsewhere does not make the store unusable for tests).
    pub fn lock(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every open watch stream; clients see the stream close and re-watch.
    pub fn drop_watches(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    /// Simulates a kube-apiserver restart: closes every connection and watch, forgets the
    /// watch history (so resumes get 410 Expired and clients relist), optionally wipes all
    /// objects, and refuses connections for `down_for`.
    pub fn restart(&self, wipe: bool, down_for: Duration) {
        {
            let mut s = self.lock();
            if wipe {
                s.wipe(&now());
            } else {
                s.forget_history();
            }
        }
        *self.down_until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + down_for);
        self.drop_watches();
        self.conn_epoch.send_modify(|e| *e += 1);
    }

    fn is_down(&self) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| Instant::now() < t)
    }

    /// Issues a service-account token, creating the namespace and service account when they
    /// do not exist yet.
    pub fn issue_service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[String],
    ) -> Result<String, TestClusterError> {
        let uid = {
            let mut s = self.lock();
            let ns_def = s
                .find("", "namespaces")
                .cloned()
                .ok_or_else(|| TestClusterError::Crypto("namespaces are not served".into()))?;
            let sa_def = s.find("", "serviceaccounts").cloned().ok_or_else(|| {
                TestClusterError::Crypto("service accounts are not served".into())
            })?;
            let t = now();
            let ns_key = ObjKey::new(&ns_def, "", namespace);
            if s.get(&ns_key).is_none() {
                s.put(
                    ns_key,
                    json!({
                        "apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": namespace, "uid": uuid::Uuid::new_v4().to_string(), "creationTimestamp": t,
                                     "labels": {"kubernetes.io/metadata.name": namespace}},
                        "spec": {"finalizers": ["kubernetes"]},
                        "status": {"phase": "Active"},
                    }),
                    None,
                );
            }
            let sa_key = ObjKey::new(&sa_def, namespace, name);
            match s.get(&sa_key) {
                Some(sa) => sa
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                None => {
                    let uid = uuid::Uuid::new_v4().to_string();
                    s.put(
                        sa_key,
                        json!({
                            "apiVersion": "v1", "kind": "ServiceAccount",
                            "metadata": {"name": name, "namespace": namespace, "uid": uid, "creationTimestamp": t},
                        }),
                        None,
                    );
                    uid
                }
            }
        };
        let aud: Vec<String> = if audiences.is_empty() {
            vec![self.tokens.issuer().to_string()]
        } else {
            audiences.to_vec()
        };
        self.tokens
            .issue(namespace, name, &uid, &aud, 3600)
            .map(|(t, _)| t)
    }
}

/// Accepts connections until `shutdown` flips; each connection is served until it closes,
/// the server shuts down, or a restart closes it.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    let collector = tokio::spawn(super::gc::run(Arc::clone(&shared), shutdown.clone()));
    loop {
        tokio::select! {
            r = listener.accept() => {
                let Ok((stream, _)) = r else {
                    // Transient accept errors (e.g. too many open files) must not end the server.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if shared.is_down() {
                    drop(stream);
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let s = Arc::clone(&shared);
                let mut epoch = shared.conn_epoch.subscribe();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let s = Arc::clone(&s);
                        async move { Ok::<_, Infallible>(handlers::handle(s, req).await) }
                    });
                    let conn = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = epoch.changed() => {}
                    }
                });
            }
            _ = shutdown.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.abort_all();
    collector.abort();
}
