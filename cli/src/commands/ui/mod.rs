//! `sealsync ui`: a read-only web view of the GitSyncs, their objects, drift and the sealing
//! keys, served on loopback with the user's own kubeconfig and permissions. Pages are rendered
//! on the server and kept current by watches over server-sent events; the only writes are the
//! CLI's own actions (`sync`, `suspend`, `resume`), guarded by a CSRF token and decided by the
//! API server's authorization. No Secret is ever read: Secrets are listed by metadata only.

mod actions;
mod cache;
mod html;
mod listen;
mod live;
mod objects_view;
mod page_gitsync;
mod page_gitsyncs;
mod page_keys;
#[cfg(test)]
mod render_tests;
mod server;
mod state;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use kube::api::Api;
use sealsync_core::GitSync;

use crate::cluster::{self, ClusterArgs};
use crate::error::{CliError, CliResult};
use state::{Scope, State};

#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Where to listen, as ADDRESS:PORT (port 0: any free port). Loopback only, unless
    /// --allow-remote is given.
    #[arg(long, value_name = "ADDRESS:PORT", default_value = "127.0.0.1:7480")]
    pub listen: String,
    /// Allow a --listen address other than loopback. Whoever reaches it sees what you may
    /// see and acts as you.
    #[arg(long)]
    pub allow_remote: bool,
    /// Only this namespace's GitSyncs (default: every namespace you may list, else the
    /// context's namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// The namespace of sealsync-controller and its SealingKeys.
    #[arg(long, value_name = "NS", default_value = "sealsync-system")]
    pub controller_namespace: String,
    #[command(flatten)]
    pub cluster: ClusterArgs,
}

pub fn run(args: Args) -> CliResult<ExitCode> {
    let addr = listen::parse(&args.listen, args.allow_remote)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(format!("starting the async runtime: {e}")))?;
    runtime.block_on(serve(args, addr))
}

async fn serve(args: Args, addr: std::net::SocketAddr) -> CliResult<ExitCode> {
    let (client, default_ns) = args.cluster.connect().await?;
    let scope = match &args.namespace {
        Some(ns) => Scope::Namespace {
            name: ns.clone(),
            why: None,
        },
        None => match cache::probe(&Api::<GitSync>::all(client.clone())).await {
            Err(kube::Error::Api(status)) if status.code == 403 => Scope::Namespace {
                name: default_ns,
                why: Some(status.message.clone()),
            },
            _ => Scope::All,
        },
    };
    // A cluster that cannot be reached is said now, not on every page.
    let probed: Api<GitSync> = match &scope {
        Scope::All => Api::all(client.clone()),
        Scope::Namespace { name, .. } => Api::namespaced(client.clone(), name),
    };
    match cache::probe(&probed).await {
        Ok(()) | Err(kube::Error::Api(_)) => {}
        Err(e) => return Err(cluster::api_error("listing GitSyncs", e)),
    }
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        CliError::new(format!("cannot listen on {addr}: {e}"))
            .with_hint("pass --listen 127.0.0.1:0 for any free port")
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::new(format!("cannot listen on {addr}: {e}")))?;
    let state = State::start(
        client,
        context_name(&args.cluster),
        scope.clone(),
        args.controller_namespace.clone(),
        csrf_token()?,
    );
    let app = server::App {
        state: state.clone(),
    };
    // The URL first, alone on its line, for scripts and for the reader.
    {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{}", listen::url(bound));
        let _ = stdout.flush();
    }
    match &scope {
        Scope::All => eprintln!("► showing GitSyncs of every namespace you may list"),
        Scope::Namespace { name, why: Some(_) } => eprintln!(
            "► listing GitSyncs in every namespace is forbidden to you; showing namespace {name}"
        ),
        Scope::Namespace { name, why: None } => eprintln!("► showing namespace {name}"),
    }
    eprintln!("► read-only: Secret values are never requested; press Ctrl-C to stop");
    axum::serve(listener, server::router(app))
        .with_graceful_shutdown(shutdown(state))
        .await
        .map_err(|e| CliError::new(format!("serving on {bound}: {e}")))?;
    Ok(ExitCode::SUCCESS)
}

/// A Kubernetes time as RFC 3339 to the second, which sorts as text.
pub(crate) fn timestamp(t: &k8s_openapi::jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The kubeconfig context shown in the page header.
fn context_name(args: &ClusterArgs) -> String {
    if let Some(context) = &args.context {
        return context.clone();
    }
    let file = match &args.kubeconfig {
        Some(path) => kube::config::Kubeconfig::read_from(path).ok(),
        None => kube::config::Kubeconfig::read().ok(),
    };
    file.and_then(|k| k.current_context)
        .unwrap_or_else(|| "in-cluster".to_owned())
}

/// 32 random bytes, hex: the token every action form must carry.
fn csrf_token() -> CliResult<String> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CliError::new("no randomness for the CSRF token"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Resolves on Ctrl-C or SIGTERM, after telling the live streams to end (they would keep
/// their connections, and the graceful shutdown, open for ever). Whatever is still running
/// a few seconds later is cut short.
async fn shutdown(state: std::sync::Arc<State>) {
    signalled().await;
    state.stop();
    tokio::spawn(async {
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
        std::process::exit(0);
    });
}

async fn signalled() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
