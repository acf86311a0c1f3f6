//! `sealsync-controller` as a real process: started against a kubeconfig, with its HTTP
//! address read from its log, and stopped (or killed with SIGKILL) by the test.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::process::{http_request_blocking, ChildGuard};

/// How long the controller may take to load its keys and start serving.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running controller.
#[derive(Debug)]
pub struct ControllerProcess {
    guard: ChildGuard,
    http_addr: SocketAddr,
    data_dir: PathBuf,
    kubeconfig: PathBuf,
    namespace: String,
    /// The extra arguments, kept for [`ControllerProcess::restart`].
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

impl ControllerProcess {
    /// Starts the controller with `--kubeconfig`, keys in `namespace`, bare repositories in
    /// `data_dir`, and an HTTP port picked by the kernel; waits until `/readyz` answers 200.
    pub fn start(kubeconfig: &Path, namespace: &str, data_dir: &Path) -> Result<Self> {
        Self::start_with(kubeconfig, namespace, data_dir, &[])
    }

    /// Like [`ControllerProcess::start`], with extra arguments.
    pub fn start_with(
        kubeconfig: &Path,
        namespace: &str,
        data_dir: &Path,
        extra: &[&str],
    ) -> Result<Self> {
        Self::start_with_env(kubeconfig, namespace, data_dir, extra, &[])
    }

    /// Like [`ControllerProcess::start_with`], with environment variables (such as
    /// `VAULT_ADDR`), kept for [`ControllerProcess::restart`].
    pub fn start_with_env(
        kubeconfig: &Path,
        namespace: &str,
        data_dir: &Path,
        extra: &[&str],
        env: &[(String, String)],
    ) -> Result<Self> {
        let binary = crate::bins::controller()?;
        let mut cmd = Command::new(binary);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--namespace", namespace]);
        // Loopback by default; a test that needs the API server to reach the controller (its
        // service proxy) passes an address of its own.
        if !extra.contains(&"--http-addr") {
            cmd.args(["--http-addr", "127.0.0.1:0"]);
        }
        // The suites create GitSyncs in many namespaces, most without a service account: they
        // run in the open mode, explicitly, unless a test chooses what to trust.
        if !extra.iter().any(|a| a.starts_with("--trusted-namespaces")) {
            cmd.arg("--trusted-namespaces=*");
        }
        if !extra.iter().any(|a| a.starts_with("--renderer")) {
            cmd.arg("--renderer").arg(crate::bins::renderer()?);
        }
        cmd.arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "info,kube=warn")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut guard = ChildGuard::spawn("sealsync-controller", &mut cmd)?;
        guard.wait_for_log_line("http: listening", START_TIMEOUT)?;
        let log =
            std::fs::read_to_string(guard.log_path()).context("reading the controller log")?;
        let http_addr = log
            .lines()
            .find(|l| l.contains("http: listening"))
            .and_then(|l| l.split("addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .context("the controller logged no HTTP address")?;
        let mut process = Self {
            guard,
            http_addr,
            data_dir: data_dir.to_path_buf(),
            kubeconfig: kubeconfig.to_path_buf(),
            namespace: namespace.to_owned(),
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            env: env.to_vec(),
        };
        process.wait_ready(START_TIMEOUT)?;
        Ok(process)
    }

    /// The controller's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Polls `/readyz` until it answers 200.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.guard.ensure_running()?;
            if let Ok((200, _)) = self.get("/readyz") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "the controller was not ready within {timeout:?}; last output:\n{}",
                    self.guard.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on the controller's HTTP server: status and body.
    pub fn get(&self, path: &str) -> Result<(u16, String)> {
        http_request_blocking(self.http_addr, "GET", path)
    }

    /// `POST path` with headers and a body to the controller's HTTP server.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Result<(u16, String)> {
        crate::process::http_send_blocking(self.http_addr, "POST", path, headers, body)
    }

    /// The process id (for `/proc/PID`: threads, memory).
    pub fn pid(&self) -> u32 {
        self.guard.id()
    }

    /// The HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.guard.log_path()).unwrap_or_default()
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.guard.log_tail(lines)
    }

    /// Kills the process group with SIGKILL, as `kill -9` would.
    pub fn kill(&mut self) -> Result<()> {
        self.guard.kill()
    }

    /// SIGTERM, then waits up to `timeout` for the exit: its status, or `None` if it had to
    /// be killed.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<std::process::ExitStatus>> {
        self.guard.terminate(timeout)
    }

    /// Starts a new controller with the same settings (after [`ControllerProcess::kill`]).
    pub fn restart(&mut self) -> Result<()> {
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        let next = Self::start_with_env(
            &self.kubeconfig,
            &self.namespace,
            &self.data_dir,
            &extra,
            &self.env,
        )?;
        let old = std::mem::replace(self, next);
        // The previous log is kept only as long as the old guard lives; its output was read.
        drop(old);
        Ok(())
    }

    /// Whether the process still runs.
    pub fn ensure_running(&mut self) -> Result<()> {
        self.guard.ensure_running()
    }
}
