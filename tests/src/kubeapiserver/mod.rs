//! The real kube-apiserver and etcd, built from their Go modules by
//! `scripts/kube-apiserver.sh`, started on loopback ports for one test (or one
//! `sealsync-testcluster --kube-apiserver`), the way envtest runs them.
//!
//! - etcd with a temporary data directory (no fsync: the data dies with the test);
//! - kube-apiserver with a serving certificate from a fresh CA, RBAC authorization, a static
//!   admin token in `system:masters`, and a service-account signing key, so that TokenRequest
//!   and TokenReview work;
//! - a [`FaultProxy`] in front of it, which every kubeconfig points at, so that tests inject
//!   failures, latency and dropped watches on the real server too.
//!
//! - kube-controller-manager with two of its controllers, the namespace controller and the
//!   garbage collector, so that a deleted Namespace goes once empty and dependents follow
//!   their owners, as in a cluster. The others stay off: no ReplicaSets or Pods appear for a
//!   Deployment, and no `default` ServiceAccount or `kube-root-ca.crt` ConfigMap per
//!   namespace, so both test servers hold the same objects.

pub mod binaries;
mod pki;
pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;

use crate::apiserver::kubeconfig;
use crate::process::{free_loopback_port, wait_for_tcp, ChildGuard};
pub use pki::Pki;
pub use proxy::FaultProxy;

/// How long kube-apiserver may take to report ready (its first start on a busy 2-core machine
/// takes several seconds: storage, RBAC bootstrap, post-start hooks).
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// A running etcd, kube-apiserver and fault proxy. Everything stops on drop.
#[derive(Debug)]
pub struct KubeApiServer {
    // Field order is drop order: the proxy first, then the server, then its store.
    proxy: FaultProxy,
    controller_manager: ChildGuard,
    apiserver: ChildGuard,
    etcd: ChildGuard,
    pki: Pki,
    admin_token: String,
    apiserver_addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl KubeApiServer {
    /// Starts etcd and kube-apiserver and waits until the server is ready, with the proxy on a
    /// free loopback port. Fails with what to do when the binaries are not built.
    pub async fn start() -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Like [`KubeApiServer::start`], with the proxy listening on `listen`.
    pub async fn start_on(listen: SocketAddr) -> Result<Self> {
        let bins = binaries::find().map_err(anyhow::Error::msg)?;
        // Ports are probed, then bound by the child: another process may take one in between,
        // so a failed start is tried again with fresh ports.
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(listen, &bins).await {
                Ok(server) => return Ok(server),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("kube-apiserver did not start")))
    }

    async fn start_once(listen: SocketAddr, bins: &binaries::Binaries) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("sealsync-kube-apiserver-")
            .tempdir()
            .context("creating the data directory")?;
        let pki = Pki::generate(dir.path())?;
        let admin_token = format!("sealsync-admin-{}", uuid::Uuid::new_v4().simple());
        let token_file = dir.path().join("tokens.csv");
        std::fs::write(
            &token_file,
            // The admin's name is the embedded server's, so that both answer `whoami` alike.
            format!(
                "{admin_token},{},,\"system:masters\"\n",
                crate::apiserver::authz::ADMIN_USER
            ),
        )
        .context("writing the token file")?;

        let client_port = free_loopback_port()?;
        let peer_port = free_loopback_port()?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut etcd = ChildGuard::spawn(
            "etcd",
            Command::new(&bins.etcd)
                .arg("--name=sealsync")
                .arg(format!("--data-dir={}", dir.path().join("etcd").display()))
                .arg(format!("--listen-client-urls={client_url}"))
                .arg(format!("--advertise-client-urls={client_url}"))
                .arg(format!("--listen-peer-urls={peer_url}"))
                .arg(format!("--initial-advertise-peer-urls={peer_url}"))
                .arg(format!("--initial-cluster=sealsync={peer_url}"))
                .arg("--unsafe-no-fsync")
                .arg("--log-level=warn"),
        )?;
        let etcd_addr = SocketAddr::from(([127, 0, 0, 1], client_port));
        if let Err(e) = wait_for_tcp(etcd_addr, Duration::from_secs(20)).await {
            bail!("etcd did not start: {e:#}\n{}", etcd.log_tail(20));
        }
        etcd.ensure_running()?;

        let secure_port = free_loopback_port()?;
        let apiserver_addr = SocketAddr::from(([127, 0, 0, 1], secure_port));
        let apiserver = ChildGuard::spawn_redacted(
            "kube-apiserver",
            Command::new(&bins.apiserver)
                .arg(format!("--etcd-servers={client_url}"))
                .arg("--bind-address=127.0.0.1")
                .arg("--advertise-address=127.0.0.1")
                .arg(format!("--secure-port={secure_port}"))
                .arg(format!("--cert-dir={}", dir.path().join("certs").display()))
                .arg(format!(
                    "--tls-cert-file={}",
                    pki.serving_cert_file.display()
                ))
                .arg(format!(
                    "--tls-private-key-file={}",
                    pki.serving_key_file.display()
                ))
                .arg(format!("--token-auth-file={}", token_file.display()))
                .arg("--authorization-mode=RBAC")
                .arg(format!(
                    "--service-account-issuer=https://127.0.0.1:{secure_port}"
                ))
                .arg(format!(
                    "--service-account-key-file={}",
                    pki.service_account_public_file.display()
                ))
                .arg(format!(
                    "--service-account-signing-key-file={}",
                    pki.service_account_key_file.display()
                ))
                .arg("--service-cluster-ip-range=10.0.0.0/24")
                // Without kube-controller-manager no `default` ServiceAccount is ever created,
                // and the ServiceAccount admission plugin would refuse every Pod.
                .arg("--disable-admission-plugins=ServiceAccount")
                .arg("--allow-privileged=true")
                .arg("--profiling=false")
                .arg("--v=0"),
            vec![admin_token.clone()],
        )?;

        // The controller manager talks to kube-apiserver directly: injected faults are for the
        // clients under test.
        let ca_base64 = base64::engine::general_purpose::STANDARD.encode(pki.ca_pem.as_bytes());
        let controller_kubeconfig = dir.path().join("controller-manager.kubeconfig");
        kubeconfig::write(
            &controller_kubeconfig,
            &kubeconfig::kubeconfig_with_ca(
                &format!("https://{apiserver_addr}"),
                &admin_token,
                &ca_base64,
            ),
        )
        .map_err(anyhow::Error::from)?;
        let controller_manager = ChildGuard::spawn_redacted(
            "kube-controller-manager",
            Command::new(&bins.controller_manager)
                .arg(format!("--kubeconfig={}", controller_kubeconfig.display()))
                .arg("--controllers=namespace-controller,garbage-collector-controller")
                .arg("--leader-elect=false")
                // No serving port: nothing reads its metrics or health here.
                .arg("--secure-port=0")
                // Namespace clean-up lists every resource type; the default 20 requests per
                // second would make it take seconds.
                .arg("--kube-api-qps=500")
                .arg("--kube-api-burst=1000")
                .arg("--v=0"),
            vec![admin_token.clone()],
        )?;

        let proxy = FaultProxy::start(
            listen,
            apiserver_addr,
            &pki.ca_der,
            pki.serving_chain.clone(),
            pki.serving_key(),
        )
        .await?;
        let mut server = Self {
            proxy,
            controller_manager,
            apiserver,
            etcd,
            pki,
            admin_token,
            apiserver_addr,
            dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        let readyz = format!("https://{}/readyz", self.apiserver_addr);
        // The system namespaces are created by a loop that may finish after /readyz.
        let default_ns = format!("https://{}/api/v1/namespaces/default", self.apiserver_addr);
        let mut last = String::new();
        loop {
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "kube-apiserver was not ready after {} s (last answer: {last})\n{}",
                    READY_TIMEOUT.as_secs(),
                    self.apiserver.log_tail(30)
                );
            }
            if let Some(status) = self.apiserver.try_wait()? {
                bail!(
                    "kube-apiserver exited ({status}) while starting\n{}",
                    self.apiserver.log_tail(30)
                );
            }
            match proxy::get(&self.pki.ca_der, &readyz, &self.admin_token).await {
                Ok((status, _)) if status.is_success() => {
                    if let Ok((status, _)) =
                        proxy::get(&self.pki.ca_der, &default_ns, &self.admin_token).await
                    {
                        if status.is_success() {
                            return Ok(());
                        }
                    }
                }
                Ok((status, body)) => last = format!("{status}: {}", first_line(&body)),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The proxy's URL: where clients connect.
    pub fn url(&self) -> String {
        self.proxy.url()
    }

    /// The kube-apiserver's own URL, bypassing the fault proxy.
    pub fn direct_url(&self) -> String {
        format!("https://{}", self.apiserver_addr)
    }

    /// The token of the `system:masters` user the kubeconfigs carry.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// The CA that signed the serving certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.pki.ca_pem
    }

    /// The data directory (etcd data, certificates, the token file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The fault proxy in front of the server.
    pub fn proxy(&self) -> &FaultProxy {
        &self.proxy
    }

    /// A kubeconfig for the admin user through the fault proxy, trusting the test CA.
    pub fn kubeconfig(&self) -> serde_yaml::Value {
        kubeconfig::kubeconfig_with_ca(
            &self.url(),
            &self.admin_token,
            &base64::engine::general_purpose::STANDARD.encode(self.pki.ca_pem.as_bytes()),
        )
    }

    /// Writes [`KubeApiServer::kubeconfig`] to `path` (mode 0600).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        kubeconfig::write(path, &self.kubeconfig()).map_err(anyhow::Error::from)
    }

    /// The log files of the processes, for a test that failed.
    pub fn log_paths(&self) -> Vec<PathBuf> {
        vec![
            self.etcd.log_path().to_path_buf(),
            self.apiserver.log_path().to_path_buf(),
            self.controller_manager.log_path().to_path_buf(),
        ]
    }

    /// Stops everything now (drop does the same).
    pub fn shutdown(mut self) -> Result<()> {
        self.controller_manager.kill()?;
        self.apiserver.kill()?;
        self.etcd.kill()
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
