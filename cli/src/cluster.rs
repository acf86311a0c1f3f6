//! Talking to a cluster: kubectl's flags, a small runtime, and errors that say what to do.

use std::path::PathBuf;

use clap::Args as ClapArgs;
use kube::Client;
use sealsync_core::Chain;

use crate::error::{CliError, CliResult};

/// `--kubeconfig` and `--context`, as kubectl and flux take them.
#[derive(Debug, Clone, ClapArgs)]
pub struct ClusterArgs {
    /// The kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, value_name = "NAME", global = true)]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// A client and the context's default namespace.
    pub async fn connect(&self) -> CliResult<(Client, String)> {
        // kube's TLS is rustls with ring; without a process-wide provider it panics.
        let _ = rustls::crypto::ring::default_provider().install_default();
        sealsync_core::kubeclient::client(self.kubeconfig.as_deref(), self.context.as_deref())
            .await
            .map_err(|e| {
                CliError::new(Chain(&e).to_string()).with_hint(
                    "pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG, as for kubectl",
                )
            })
    }
}

/// One GitSync named on the command line: `NAME`, `-n NAMESPACE` and the cluster flags.
#[derive(Debug, Clone, ClapArgs)]
pub struct GitSyncArgs {
    /// The GitSync.
    #[arg(value_name = "NAME")]
    pub name: String,
    /// Its namespace (default: the kubeconfig context's).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

impl GitSyncArgs {
    /// The API of the GitSync's namespace, the namespace, and `GitSync ns/name` for messages.
    pub async fn connect(&self) -> CliResult<(kube::Api<sealsync_core::GitSync>, String, String)> {
        let (client, default_ns) = self.cluster.connect().await?;
        let namespace = self.namespace.clone().unwrap_or(default_ns);
        let what = format!("GitSync {namespace}/{}", self.name);
        Ok((kube::Api::namespaced(client, &namespace), namespace, what))
    }
}

/// Runs `future` on a small runtime: the commands that talk to a cluster are the only async
/// code in the CLI.
pub fn block_on<T>(future: impl std::future::Future<Output = CliResult<T>>) -> CliResult<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("starting the async runtime: {e}")))?
        .block_on(future)
}

/// An API error as a CLI error; `what` names the object or the call.
pub fn api_error(what: &str, err: kube::Error) -> CliError {
    match err {
        kube::Error::Api(status) if status.code == 401 => {
            CliError::new(format!("{what}: the cluster refused the credentials (401)"))
                .with_hint("refresh the kubeconfig credentials, then try again")
        }
        kube::Error::Api(status) if status.code == 403 => {
            CliError::new(format!("{what}: forbidden ({})", status.message))
                .with_hint("ask the cluster admin for read access to that resource")
        }
        kube::Error::Api(status) => {
            CliError::new(format!("{what}: {} ({})", status.message, status.code))
        }
        other => CliError::new(format!("{what}: cannot reach the API server ({other})")).with_hint(
            "check that the cluster is reachable with `kubectl get ns` using the same kubeconfig",
        ),
    }
}
