//! `sealsync-testcluster --listen 127.0.0.1:PORT --kubeconfig-out FILE`: runs the
//! Kubernetes API test server until SIGTERM or SIGINT, printing its URL on stdout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use sealsync_tests::apiserver::{ServerOptions, TestApiServer};

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
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
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
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the signal runtime")?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("installing the SIGTERM handler")?;
        tokio::select! {
            _ = term.recv() => {}
            r = tokio::signal::ctrl_c() => r.context("waiting for SIGINT")?,
        }
        anyhow::Ok(())
    })?;
    server.shutdown();
    Ok(())
}
