//! Start-up and shutdown: logging, the API client, the keys and the checksum key loaded with
//! retries, and the signals that stop the controller.

use std::time::Duration;

use anyhow::{Context as _, Result};
use kube::Client;
use sealsync_core::Chain;

use super::Args;
use crate::keys;
use crate::support::retry::Backoff;

pub(super) fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn,gix=warn"))
        // vaultrs and rustify trace requests and errors of their own; the vault stage reports
        // every failure itself, with the GitSync, the Secret and the reference.
        .add_directive(quiet("vaultrs"))
        .add_directive(quiet("rustify"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn quiet(target: &str) -> tracing_subscriber::filter::Directive {
    format!("{target}=off")
        .parse()
        .unwrap_or_else(|_| tracing_subscriber::filter::LevelFilter::OFF.into())
}

pub(super) async fn client(args: &Args) -> Result<(Client, kube::Config)> {
    let config =
        sealsync_core::kubeclient::config(args.kubeconfig.as_deref(), args.context.as_deref())
            .await?;
    let client = Client::try_from(config.clone()).context("creating the Kubernetes client")?;
    Ok((client, config))
}

/// How start-up retries while the API server does not answer.
const START_UP: Backoff =
    Backoff::new(Duration::from_millis(500), 2.0, Duration::from_secs(30)).jittered();

/// Loads the restart checksums' key, retrying with backoff like the keys: a new key would
/// restart every opted-in workload.
pub(super) async fn load_checksum_key(
    client: &Client,
    namespace: &str,
) -> crate::sync::restarts::ChecksumKey {
    START_UP
        .retry("could not load the restart checksum key", || {
            crate::sync::restarts::ChecksumKey::load_or_create(client, namespace)
        })
        .await
}

/// Loads and publishes the keys, retrying with backoff while the API server is unreachable:
/// without keys nothing can be decrypted, and readiness stays false.
pub(super) async fn load_keys(client: &Client, namespace: &str) -> keys::KeyRing {
    START_UP
        .retry("could not load or publish the keys", || async {
            let ring = keys::load_or_create(client, namespace).await?;
            keys::publish(client, namespace, &ring).await?;
            Ok::<_, keys::KeysError>(ring)
        })
        .await
}

/// How long reconciles in flight may go on once the Lease is lost.
pub(super) const LOST_LEASE_BOUND: Duration = Duration::from_secs(3);

pub(super) async fn wait_for_signal() {
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %Chain(&e), "cannot listen for SIGTERM; stopping on Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Resolves once the flag equals `value` (or its sender is gone).
pub(super) async fn wait_until(flag: &tokio::sync::watch::Receiver<bool>, value: bool) {
    let mut flag = flag.clone();
    let _ = flag.wait_for(|v| *v == value).await;
}

pub(super) async fn wait_until_owned(flag: tokio::sync::watch::Receiver<bool>, value: bool) {
    wait_until(&flag, value).await;
}
