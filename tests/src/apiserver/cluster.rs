//! Which cluster a test runs against. End-to-end tests ask [`TestCluster::from_env_or_start`]
//! and get, in this order:
//!
//! 1. the cluster that `SEALSYNC_E2E_KUBECONFIG` points at (kind, k3d, a real one);
//! 2. with `SEALSYNC_TEST_APISERVER=kube-apiserver` (what `scripts/test.sh` sets), the real
//!    kube-apiserver and etcd built by `scripts/kube-apiserver.sh`, behind a fault proxy; with
//!    `SEALSYNC_TEST_APISERVER=embedded`, the embedded test server, which starts in
//!    milliseconds;
//! 3. unset: the real kube-apiserver when it is built, else the embedded server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::TestClusterError;
use super::{kubeconfig, TestApiServer};
use crate::kubeapiserver::{FaultProxy, KubeApiServer};

/// Environment variable naming a real cluster's kubeconfig.
pub const E2E_KUBECONFIG_ENV: &str = "SEALSYNC_E2E_KUBECONFIG";

/// Environment variable choosing the server of [`TestCluster::from_env_or_start`]:
/// `kube-apiserver` or `embedded`.
pub const TEST_APISERVER_ENV: &str = "SEALSYNC_TEST_APISERVER";

/// What a test needs to inject faults, on either server.
pub trait FaultInjector {
    /// Fails the next `count` requests whose method and path prefix match with `status`
    /// (method None matches any).
    fn fail_next(&self, count: u32, method: Option<&str>, path_prefix: &str, status: u16);
    /// Adds latency to requests whose method and path prefix match.
    fn add_latency(&self, method: Option<&str>, path_prefix: &str, delay: Duration);
    /// Removes all failure and latency rules.
    fn clear_faults(&self);
    /// Ends every open watch stream.
    fn drop_watches(&self);
    /// The requests received so far.
    fn requests(&self) -> super::faults::RequestCounts;
}

impl FaultInjector for TestApiServer {
    fn fail_next(&self, count: u32, method: Option<&str>, path_prefix: &str, status: u16) {
        TestApiServer::fail_next(self, count, method, path_prefix, status);
    }
    fn add_latency(&self, method: Option<&str>, path_prefix: &str, delay: Duration) {
        TestApiServer::add_latency(self, method, path_prefix, delay);
    }
    fn clear_faults(&self) {
        TestApiServer::clear_faults(self);
    }
    fn drop_watches(&self) {
        TestApiServer::drop_watches(self);
    }
    fn requests(&self) -> super::faults::RequestCounts {
        self.shared.faults.requests()
    }
}

impl FaultInjector for FaultProxy {
    fn fail_next(&self, count: u32, method: Option<&str>, path_prefix: &str, status: u16) {
        FaultProxy::fail_next(self, count, method, path_prefix, status);
    }
    fn add_latency(&self, method: Option<&str>, path_prefix: &str, delay: Duration) {
        FaultProxy::add_latency(self, method, path_prefix, delay);
    }
    fn clear_faults(&self) {
        FaultProxy::clear_faults(self);
    }
    fn drop_watches(&self) {
        FaultProxy::drop_watches(self);
    }
    fn requests(&self) -> super::faults::RequestCounts {
        self.faults().requests()
    }
}

/// A cluster for end-to-end tests.
#[derive(Debug)]
pub enum TestCluster {
    /// The in-process test server, with a kubeconfig in a temporary directory.
    InProcess {
        /// The server.
        server: TestApiServer,
        /// Holds the kubeconfig file.
        dir: tempfile::TempDir,
        /// The kubeconfig path inside `dir`.
        kubeconfig: PathBuf,
    },
    /// The real kube-apiserver and etcd, behind the fault proxy.
    KubeApiServer {
        /// The servers.
        server: Box<KubeApiServer>,
        /// Holds the kubeconfig file.
        dir: tempfile::TempDir,
        /// The kubeconfig path inside `dir`.
        kubeconfig: PathBuf,
    },
    /// A real cluster given by `SEALSYNC_E2E_KUBECONFIG`.
    Real {
        /// The kubeconfig path.
        kubeconfig: PathBuf,
    },
}

impl TestCluster {
    /// The cluster the environment asks for (see the module documentation).
    pub async fn from_env_or_start() -> Result<Self, TestClusterError> {
        if let Some(path) = std::env::var_os(E2E_KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            let kubeconfig = PathBuf::from(path);
            if !kubeconfig.is_file() {
                return Err(TestClusterError::Kubeconfig(format!(
                    "{E2E_KUBECONFIG_ENV}={} does not name a readable file",
                    kubeconfig.display()
                )));
            }
            return Ok(Self::Real { kubeconfig });
        }
        match std::env::var(TEST_APISERVER_ENV).as_deref() {
            Ok("kube-apiserver") => Self::start_kube_apiserver().await,
            Ok("embedded") => Self::start_embedded().await,
            Ok("") | Err(_) if crate::kubeapiserver::binaries::find().is_ok() => {
                Self::start_kube_apiserver().await
            }
            Ok("") | Err(_) => Self::start_embedded().await,
            Ok(other) => Err(TestClusterError::Kubeconfig(format!(
                "{TEST_APISERVER_ENV}={other:?}: expected kube-apiserver or embedded"
            ))),
        }
    }

    /// A fresh embedded test server.
    pub async fn start_embedded() -> Result<Self, TestClusterError> {
        let server = TestApiServer::start().await?;
        let dir = tempfile::tempdir()
            .map_err(|e| TestClusterError::io("creating a temporary directory", e))?;
        let kubeconfig = dir.path().join("kubeconfig");
        server.write_kubeconfig(&kubeconfig)?;
        Ok(Self::InProcess {
            server,
            dir,
            kubeconfig,
        })
    }

    /// A fresh real kube-apiserver and etcd; fails with what to run when they are not built.
    pub async fn start_kube_apiserver() -> Result<Self, TestClusterError> {
        let server = KubeApiServer::start()
            .await
            .map_err(|e| TestClusterError::KubeApiServer(format!("{e:#}")))?;
        let dir = tempfile::tempdir()
            .map_err(|e| TestClusterError::io("creating a temporary directory", e))?;
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .map_err(|e| TestClusterError::Kubeconfig(format!("{e:#}")))?;
        Ok(Self::KubeApiServer {
            server: Box::new(server),
            dir,
            kubeconfig,
        })
    }

    /// Whether this is a real cluster.
    pub fn is_real(&self) -> bool {
        matches!(self, Self::Real { .. })
    }

    /// The kubeconfig to hand to kubectl (`--kubeconfig`) or kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            Self::InProcess { kubeconfig, .. }
            | Self::KubeApiServer { kubeconfig, .. }
            | Self::Real { kubeconfig } => kubeconfig,
        }
    }

    /// The API server URL of the current context.
    pub fn url(&self) -> Result<String, TestClusterError> {
        match self {
            Self::InProcess { server, .. } => Ok(server.url().to_string()),
            Self::KubeApiServer { server, .. } => Ok(server.url()),
            Self::Real { kubeconfig } => {
                let text = std::fs::read_to_string(kubeconfig).map_err(|e| {
                    TestClusterError::io(format!("reading {}", kubeconfig.display()), e)
                })?;
                let doc: serde_yaml::Value = serde_yaml::from_str(&text)
                    .map_err(|e| TestClusterError::Kubeconfig(e.to_string()))?;
                kubeconfig::current_server(&doc).ok_or_else(|| {
                    TestClusterError::Kubeconfig(format!(
                        "{} has no server for its current context",
                        kubeconfig.display()
                    ))
                })
            }
        }
    }

    /// The in-process server, for what only it can do (token issuing, restarts, counting
    /// objects); an error against any other cluster.
    pub fn server(&self) -> Result<&TestApiServer, TestClusterError> {
        match self {
            Self::InProcess { server, .. } => Ok(server),
            Self::KubeApiServer { .. } | Self::Real { .. } => Err(TestClusterError::RealCluster(
                "the embedded server's own API",
            )),
        }
    }

    /// The real kube-apiserver, when that is what runs.
    pub fn kube_apiserver(&self) -> Option<&KubeApiServer> {
        match self {
            Self::KubeApiServer { server, .. } => Some(server),
            _ => None,
        }
    }

    /// Fault injection: the embedded server's own, or the proxy in front of kube-apiserver;
    /// an error against an external cluster.
    pub fn faults(&self) -> Result<&dyn FaultInjector, TestClusterError> {
        match self {
            Self::InProcess { server, .. } => Ok(server),
            Self::KubeApiServer { server, .. } => Ok(server.proxy()),
            Self::Real { .. } => Err(TestClusterError::RealCluster("fault injection")),
        }
    }
}
