//! The Kubernetes client both binaries build, with kubectl's habits: `--kubeconfig`, else
//! `KUBECONFIG`, else `~/.kube/config`, else the in-cluster service account; `--context`; the
//! context's namespace as the default.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Why no client could be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The kubeconfig file could not be read or parsed.
    #[error("reading the kubeconfig {path}")]
    Kubeconfig {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// No configuration was found, or the context does not exist.
    #[error("no usable Kubernetes configuration")]
    Infer {
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The client could not be created (TLS settings).
    #[error("creating the Kubernetes client")]
    Client {
        /// Why.
        #[source]
        source: kube::Error,
    },
}

/// Builds a client and returns it with the default namespace of the chosen context.
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<(Client, String), ClientError> {
    let config = config(kubeconfig, context).await?;
    let namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|source| ClientError::Client { source })?;
    Ok((client, namespace))
}

/// The configuration [`client`] builds a client from: its credentials, when a caller must pass
/// them on (a bearer token for the controller's `/v1/rewrap`).
pub async fn config(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> Result<Config, ClientError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|source| ClientError::Kubeconfig {
                path: path.display().to_string(),
                source,
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|source| ClientError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?
        }
        None if context.is_some() => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|e| ClientError::Infer {
                    source: Box::new(e),
                })?
        }
        None => Config::infer().await.map_err(|e| ClientError::Infer {
            source: Box::new(e),
        })?,
    };
    Ok(config)
}
