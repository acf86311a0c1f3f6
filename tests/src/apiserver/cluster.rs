//! Real-cluster mode: end-to-end tests ask [`TestCluster::from_env_or_start`] for a cluster
//! and get either the in-process test server or, when `SEALSYNC_E2E_KUBECONFIG` is set, the
//! cluster that kubeconfig points at (kind, k3d, …).

use std::path::{Path, PathBuf};

use super::error::TestClusterError;
use super::{kubeconfig, TestApiServer};

/// Environment variable naming a real cluster's kubeconfig.
pub const E2E_KUBECONFIG_ENV: &str = "SEALSYNC_E2E_KUBECONFIG";

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
    /// A real cluster given by `SEALSYNC_E2E_KUBECONFIG`.
    Real {
        /// The kubeconfig path.
        kubeconfig: PathBuf,
    },
}

impl TestCluster {
    /// The real cluster when `SEALSYNC_E2E_KUBECONFIG` is set and non-empty, else a fresh
    /// in-process test server.
    pub async fn from_env_or_start() -> Result<Self, TestClusterError> {
        match std::env::var_os(E2E_KUBECONFIG_ENV).filter(|v| !v.is_empty()) {
            Some(path) => {
                let kubeconfig = PathBuf::from(path);
                if !kubeconfig.is_file() {
                    return Err(TestClusterError::Kubeconfig(format!(
                        "{E2E_KUBECONFIG_ENV}={} does not name a readable file",
                        kubeconfig.display()
                    )));
                }
                Ok(Self::Real { kubeconfig })
            }
            None => {
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
        }
    }

    /// Whether this is a real cluster.
    pub fn is_real(&self) -> bool {
        matches!(self, Self::Real { .. })
    }

    /// The kubeconfig to hand to kubectl (`--kubeconfig`) or kube-rs.
    pub fn kubeconfig_path(&self) -> &Path {
        match self {
            Self::InProcess { kubeconfig, .. } | Self::Real { kubeconfig } => kubeconfig,
        }
    }

    /// The API server URL of the current context.
    pub fn url(&self) -> Result<String, TestClusterError> {
        match self {
            Self::InProcess { server, .. } => Ok(server.url().to_string()),
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

    /// The in-process server, for fault injection and token issuing; an error against a
    /// real cluster, so tests that need faults can skip or fail with a clear message.
    pub fn server(&self) -> Result<&TestApiServer, TestClusterError> {
        match self {
            Self::InProcess { server, .. } => Ok(server),
            Self::Real { .. } => Err(TestClusterError::RealCluster("fault injection")),
        }
    }
}
