//! Kubernetes API test server.
//!
//! An in-process HTTP server that answers like kube-apiserver v1.33 for what kubectl and
//! kube-rs do: discovery, CRUD, lists with selectors and paging, watches, patches and
//! server-side apply, the status and scale subresources, CRDs, service-account tokens and
//! TokenReview, plus fault injection. See `tests/TESTCLUSTER.md` for what is modelled.
//!
//! ```no_run
//! # async fn demo() -> Result<(), sealsync_tests::apiserver::TestClusterError> {
//! let server = sealsync_tests::apiserver::TestApiServer::start().await?;
//! server.write_kubeconfig(std::path::Path::new("/tmp/kubeconfig"))?;
//! println!("{}", server.url());
//! # Ok(()) }
//! ```

mod fieldmanager;
mod patch;
mod printers;
mod protobuf;

pub(crate) mod authz;
mod builtin_schemas;
mod cluster;
mod control;
mod crdschema;
mod defaults;
mod discovery;
pub(crate) mod error;
mod eventsview;
pub(crate) mod faults;
mod gc;
mod handlers;
mod kinds;
pub(crate) mod kubeconfig;
mod openapi;
mod openapi_v2;
mod resources;
mod scale;
mod selectors;
mod server;
mod serviceproxy;
mod store;
mod table;
mod tokens;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

pub use cluster::{FaultInjector, TestCluster, TEST_APISERVER_ENV};
pub use error::TestClusterError;
pub use faults::{FailureRule, LatencyRule, RequestCounts};

use server::Shared;

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// How many change events to keep for watch resumption.
    pub history: usize,
    /// Interval between BOOKMARK events on watches that allow them.
    pub bookmark_interval: Duration,
    /// `iss` of service-account tokens; defaults to the server URL, so that OIDC discovery
    /// at `ISSUER/.well-known/openid-configuration` works.
    pub issuer: Option<String>,
    /// Worker threads of the server's own runtime.
    pub worker_threads: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            history: store::DEFAULT_HISTORY,
            bookmark_interval: Duration::from_secs(1),
            issuer: None,
            worker_threads: 2,
        }
    }
}

/// Options for [`TestApiServer::restart`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartOptions {
    /// Forget every object (the default namespaces are recreated).
    pub wipe: bool,
    /// Refuse connections for this long after the restart.
    pub down_for: Duration,
}

/// A running test API server. It runs on its own runtime threads, so tests may block
/// (e.g. run kubectl) while it serves. Dropping it stops the server.
#[derive(Debug)]
pub struct TestApiServer {
    shared: Arc<Shared>,
    shutdown: tokio::sync::watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestApiServer {
    /// Starts a server on 127.0.0.1 with a free port.
    pub async fn start() -> Result<Self, TestClusterError> {
        Self::start_blocking_with(ServerOptions::default())
    }

    /// Starts a server with options.
    pub async fn start_with(opts: ServerOptions) -> Result<Self, TestClusterError> {
        Self::start_blocking_with(opts)
    }

    /// Starts a server from synchronous code.
    pub fn start_blocking() -> Result<Self, TestClusterError> {
        Self::start_blocking_with(ServerOptions::default())
    }

    /// Starts a server with options from synchronous code.
    pub fn start_blocking_with(opts: ServerOptions) -> Result<Self, TestClusterError> {
        let std_listener = std::net::TcpListener::bind(opts.listen)
            .map_err(|e| TestClusterError::io(format!("binding {}", opts.listen), e))?;
        std_listener
            .set_nonblocking(true)
            .map_err(|e| TestClusterError::io("making the listener non-blocking", e))?;
        let addr = std_listener
            .local_addr()
            .map_err(|e| TestClusterError::io("reading the bound address", e))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(opts.worker_threads.max(1))
            .thread_name("sealsync-testcluster")
            .enable_all()
            .build()
            .map_err(|e| TestClusterError::io("building the server runtime", e))?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|e| TestClusterError::io("registering the listener", e))?
        };
        let shared = Arc::new(Shared::new(
            addr,
            opts.history,
            opts.bookmark_interval,
            opts.issuer,
        )?);
        let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
        runtime.spawn(server::serve(listener, Arc::clone(&shared), shutdown_rx));
        Ok(Self {
            shared,
            shutdown,
            runtime: Some(runtime),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The bearer token in generated kubeconfigs (the server accepts any token; TokenReview
    /// authenticates this one as an admin).
    pub fn admin_token(&self) -> &str {
        &self.shared.admin_token
    }

    /// A kubeconfig document for this server.
    pub fn kubeconfig(&self) -> serde_yaml::Value {
        kubeconfig::kubeconfig(self.url(), self.admin_token())
    }

    /// The kubeconfig as YAML text.
    pub fn kubeconfig_yaml(&self) -> Result<String, TestClusterError> {
        serde_yaml::to_string(&self.kubeconfig())
            .map_err(|e| TestClusterError::Kubeconfig(e.to_string()))
    }

    /// Writes a kubeconfig for this server to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), TestClusterError> {
        kubeconfig::write(path, &self.kubeconfig())
    }

    /// Issues a service-account token (an ES256 JWT shaped like kube-apiserver's), creating
    /// the namespace and service account if needed. Empty `audiences` means the issuer.
    pub fn issue_service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
    ) -> Result<String, TestClusterError> {
        let aud: Vec<String> = audiences.iter().map(|s| s.to_string()).collect();
        self.shared
            .issue_service_account_token(namespace, name, &aud)
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        self.shared.tokens.issuer()
    }

    /// Fails the next `count` requests whose method and path prefix match with `status`
    /// (method None matches any).
    pub fn fail_next(&self, count: u32, method: Option<&str>, path_prefix: &str, status: u16) {
        self.shared
            .faults
            .fail_next(count, method, path_prefix, status);
    }

    /// Adds a failure rule.
    pub fn add_failure(&self, rule: FailureRule) {
        self.shared.faults.add_failure(rule);
    }

    /// Adds latency to every request.
    pub fn set_latency(&self, delay: Duration) {
        self.add_latency(None, "", delay);
    }

    /// Adds latency to requests whose method and path prefix match.
    pub fn add_latency(&self, method: Option<&str>, path_prefix: &str, delay: Duration) {
        self.shared.faults.delay(method, path_prefix, delay);
    }

    /// Removes all failure and latency rules.
    pub fn clear_faults(&self) {
        self.shared.faults.clear();
    }

    /// Ends every open watch stream.
    pub fn drop_watches(&self) {
        self.shared.drop_watches();
    }

    /// Simulates a restart on the same port (see [`RestartOptions`]).
    pub fn restart(&self, opts: RestartOptions) {
        self.shared.restart(opts.wipe, opts.down_for);
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.lock().rv()
    }

    /// Number of stored objects.
    pub fn object_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// Stops the server now (also done on drop).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(rt) = self.runtime.take() {
            // Never blocks, so dropping inside an async test is fine.
            rt.shutdown_background();
        }
    }
}

impl Drop for TestApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}
