//! `sealsync-testcluster --listen 127.0.0.1:PORT --kubeconfig-out FILE`: runs the
//! Kubernetes API test server until SIGTERM or SIGINT, printing its URL on stdout.
//!
//! With `--kube-apiserver` it runs the real kube-apiserver and etcd instead (built by
//! `scripts/kube-apiserver.sh`), behind the fault proxy, with the same interface: the URL on
//! stdout once the server is ready, the kubeconfig written before, everything stopped and
//! deleted on SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use sealsync_tests::apiserver::{ServerOptions, TestApiServer};
use sealsync_tests::kubeapiserver::KubeApiServer;

/// A Kubernetes API test server that kubectl and kube-rs can use.
#[derive(Debug, Parser)]
#[command(name = "sealsync-testcluster", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write a kubeconfig for the server.
    #[arg(long)]
    kubeconfig_out: Option<PathBuf>,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 1)]
    bookmark_interval_secs: u64,
    /// `iss` of service-account tokens (default: the server URL).
    #[arg(long)]
    issuer: Option<String>,
    /// Run the real kube-apiserver and etcd (built by scripts/kube-apiserver.sh) instead of
    /// the embedded server. `--listen` is where the fault proxy in front of it listens.
    #[arg(long)]
    kube_apiserver: bool,
}

fn wait_for_signal() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal runtime")?;
    rt.block_on(wait_for_signal_async())
}

async fn wait_for_signal_async() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
    }
    Ok(())
}

fn run_kube_apiserver(args: &Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("building the runtime")?;
    rt.block_on(async {
        let server = KubeApiServer::start_on(args.listen).await?;
        if let Some(path) = &args.kubeconfig_out {
            server
                .write_kubeconfig(path)
                .with_context(|| format!("writing the kubeconfig to {}", path.display()))?;
        }
        println!("{}", server.url());
        wait_for_signal_async().await?;
        server.shutdown()
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    if args.kube_apiserver {
        return run_kube_apiserver(&args);
    }
    let server = TestApiServer::start_blocking_with(ServerOptions {
        listen: args.listen,
        bookmark_interval: Duration::from_secs(args.bookmark_interval_secs.max(1)),
        issuer: args.issuer,
        ..ServerOptions::default()
    })
    .with_context(|| format!("starting the test API server on {}", args.listen))?;
    if let Some(path) = &args.kubeconfig_out {
        server
            .write_kubeconfig(path)
            .with_context(|| format!("writing the kubeconfig to {}", path.display()))?;
    }
    // The URL goes out after the kubeconfig exists, so a parent reading stdout can use both.
    println!("{}", server.url());
    wait_for_signal()?;
    server.shutdown();
    Ok(())
}
