//! Child processes stopped even on panic, and free loopback ports.
//!
//! Every external process the harness starts (`git daemon`, `bao server -dev`, ...) is wrapped
//! in a [`ChildGuard`]. The guard puts the child into its own process group and, on drop, kills
//! the whole group and reaps the leader. Drop runs during unwinding, so a panicking test still
//! stops its servers. What a guard cannot cover: a test binary killed with SIGKILL or aborted
//! (`panic = "abort"`) never runs destructors; the children then outlive it until their port
//! is needed again. Setting `PR_SET_PDEATHSIG` would need `unsafe` `pre_exec`, which the
//! workspace forbids.
//!
//! Ports: [`free_loopback_port`] finds a free port below the ephemeral range and closes the socket
//! again. Between that and the child's own `bind` another process may take the port, so
//! callers retry a failed start with a fresh port. Servers the harness writes itself (the
//! smart-HTTP Git server) bind port 0 directly and have no race at all; prefer that wherever
//! a server can report the port it got.

use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

/// How often readiness helpers poll. Short enough that start-up stays well under a second,
/// long enough not to spin a core (the CI machines have two).
const POLL_INTERVAL: Duration = Duration::from_millis(15);

/// Upper bound on how much of a child's output log is read back for error messages.
const LOG_TAIL_BYTES: u64 = 64 * 1024;

/// Lines containing any of these markers are never echoed into error messages: `bao server
/// -dev` prints its unseal key and root token on start-up.
const SENSITIVE_LINE_MARKERS: &[&str] = &["Root Token", "Unseal Key", "root_token", "secret_id"];

/// Owns a child process and stops it, together with everything it forked, when dropped.
///
/// The child's stdout and stderr both go to a temporary log file so that a failed start can
/// report the last lines ([`ChildGuard::log_tail`]) without a reader thread and without the
/// child ever blocking on a full pipe.
pub struct ChildGuard {
    name: String,
    child: Child,
    /// Process group id; equal to the child's pid because of `process_group(0)`.
    pgid: u32,
    log: tempfile::NamedTempFile,
    /// Strings replaced by `[REDACTED]` whenever the log is echoed (tokens, passwords).
    redactions: Vec<String>,
    /// Set once the group has been killed and the leader reaped, so drop does nothing.
    stopped: bool,
}

impl fmt::Debug for ChildGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately leaves out `redactions`: they are secrets.
        f.debug_struct("ChildGuard")
            .field("name", &self.name)
            .field("pid", &self.pgid)
            .field("log", &self.log.path())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl ChildGuard {
    /// Spawns `cmd` in a new process group with stdin closed and stdout+stderr captured to a
    /// temporary log file. `name` is used in error messages only.
    pub fn spawn(name: &str, cmd: &mut Command) -> Result<Self> {
        Self::spawn_redacted(name, cmd, Vec::new())
    }

    /// Like [`ChildGuard::spawn`], but every string in `redactions` is masked whenever the
    /// child's log is echoed into an error message.
    pub fn spawn_redacted(name: &str, cmd: &mut Command, redactions: Vec<String>) -> Result<Self> {
        let log = tempfile::Builder::new()
            .prefix(&format!("sealsync-{}-", sanitize_name(name)))
            .suffix(".log")
            .tempfile()
            .with_context(|| format!("creating the output log for {name}"))?;
        let stdout = log
            .as_file()
            .try_clone()
            .with_context(|| format!("duplicating the log handle for {name}"))?;
        let stderr = log
            .as_file()
            .try_clone()
            .with_context(|| format!("duplicating the log handle for {name}"))?;
        // Own process group: `bao` and `git daemon` fork, and killing only the leader would
        // leave the forked children (and their listening sockets) behind.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        let pgid = child.id();
        Ok(Self {
            name: name.to_owned(),
            child,
            pgid,
            log,
            redactions: redactions.into_iter().filter(|s| !s.is_empty()).collect(),
            stopped: false,
        })
    }

    /// The process id of the child (also its process group id).
    pub fn id(&self) -> u32 {
        self.pgid
    }

    /// The name given at spawn time.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the log file holding the child's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        self.log.path()
    }

    /// Returns the exit status if the child has exited, `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<ExitStatus>> {
        if self.stopped {
            bail!("{} was already stopped", self.name);
        }
        let status = self
            .child
            .try_wait()
            .with_context(|| format!("checking whether {} is still running", self.name))?;
        if status.is_some() {
            // The leader is gone and reaped now; take its forked children down too while the
            // group id still belongs to them, and never signal that id again afterwards.
            kill_group(self.pgid);
            self.stopped = true;
        }
        Ok(status)
    }

    /// Fails with the log tail if the child has already exited.
    pub fn ensure_running(&mut self) -> Result<()> {
        if self.stopped {
            bail!("{} was already stopped", self.name);
        }
        match self.try_wait()? {
            None => Ok(()),
            Some(status) => Err(anyhow!(
                "{} exited early ({status}); last output:\n{}",
                self.name,
                self.log_tail(20)
            )),
        }
    }

    /// The last `lines` lines of the child's output, with secrets masked. Reads at most 64 KiB.
    pub fn log_tail(&self, lines: usize) -> String {
        match read_tail(self.log.path(), LOG_TAIL_BYTES) {
            Ok(text) => redact_log(&text, lines, &self.redactions),
            Err(e) => format!("<could not read the log of {}: {e:#}>", self.name),
        }
    }

    /// Polls the child's output until it contains `needle` (within the last 64 KiB), failing
    /// early (with the log tail) if the child exits first.
    pub fn wait_for_log_line(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if read_tail(self.log.path(), LOG_TAIL_BYTES)
                .map(|t| t.contains(needle))
                .unwrap_or(false)
            {
                return Ok(());
            }
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not log {needle:?} within {timeout:?}; last output:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Polls until `addr` accepts TCP connections, failing early (with the log tail) if the
    /// child exits first.
    pub fn wait_for_tcp_blocking(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running()?;
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept connections on {addr} within {timeout:?}; last output:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Polls until `GET url` answers 2xx, failing early (with the log tail) if the child exits.
    pub async fn wait_for_http_ok(&mut self, url: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.ensure_running()?;
            let last = match http_get_status(url, Duration::from_millis(500)).await {
                Ok(status) if status.is_success() => return Ok(()),
                Ok(status) => format!("status {status}"),
                Err(e) => format!("{e:#}"),
            };
            if Instant::now() >= deadline {
                bail!(
                    "{} did not answer GET {url} with 2xx within {timeout:?} (last: {last}); \
                     last output:\n{}",
                    self.name,
                    self.log_tail(20)
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Sends SIGTERM to the child (not its group), as the kubelet does to a container, and
    /// waits up to `timeout` for it to exit; kills the group after that. Returns the exit
    /// status, or `None` when it had to be killed.
    pub fn terminate(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        if self.stopped {
            bail!("{} was already stopped", self.name);
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pgid.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()?;
        Ok(None)
    }

    /// Kills the whole process group and reaps the leader. Idempotent.
    pub fn kill(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        kill_group(self.pgid);
        // Fallback for the leader in case the `kill` binary is unavailable; harmless if the
        // group kill already delivered SIGKILL.
        let _ = self.child.kill();
        self.child
            .wait()
            .with_context(|| format!("reaping {}", self.name))?;
        self.stopped = true;
        Ok(())
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Err(e) = self.kill() {
            // Drop cannot fail; report instead of panicking (we may already be unwinding).
            eprintln!("sealsync-tests: stopping {}: {e:#}", self.name);
        }
    }
}

/// Sends SIGKILL to process group `pgid` through the `kill` binary (no `unsafe` needed).
/// Errors are ignored: the group may already be empty.
fn kill_group(pgid: u32) {
    // Never signal group 0 or 1: that would be our own group / init.
    if pgid <= 1 {
        return;
    }
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn sanitize_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(32)
        .collect()
}

fn read_tail(path: &Path, max: u64) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity(usize::try_from(len - start).unwrap_or(0));
    file.take(max).read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Keeps the last `lines` lines of `text`, drops lines that carry well-known secrets and masks
/// every string in `redactions`.
pub(crate) fn redact_log(text: &str, lines: usize, redactions: &[String]) -> String {
    let kept: Vec<&str> = text.lines().collect();
    let start = kept.len().saturating_sub(lines);
    kept[start..]
        .iter()
        .map(|line| {
            if SENSITIVE_LINE_MARKERS.iter().any(|m| line.contains(m)) {
                return "[line withheld: contains a secret]".to_owned();
            }
            redact(line, redactions)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Replaces every occurrence of each non-empty secret in `text` by `[REDACTED]`.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s.as_str(), "[REDACTED]");
    }
    out
}

/// A loopback port that was free a moment ago.
///
/// The port is released before the caller's server binds it, so use it only for servers that
/// cannot bind port 0 and report the result (`git daemon`, `bao server -dev`), and retry their
/// start with a fresh port when the bind fails. Ports are taken below the kernel's ephemeral
/// range (32768 and up), which `bind(0)` never hands out, and each port is handed out once per
/// process: so a parallel test that binds port 0, or asks here, cannot take it in between.
///
/// The probe binds with `SO_REUSEADDR` but never listens. A parallel test that forks while the
/// probe is open leaves a copy of its descriptor in the child until `exec`; a listening copy
/// would make the caller's bind fail with "address in use", a bound-only copy does not.
pub fn free_loopback_port() -> Result<u16> {
    for _ in 0..PORT_SPAN {
        let port = next_candidate_port(1);
        if probe_port(port) {
            return Ok(port);
        }
    }
    bail!(
        "found no free loopback port in {PORT_LOW}..{}",
        PORT_LOW + PORT_SPAN
    )
}

/// Like [`free_loopback_port`], but `port + 1` is free as well at the time of the check.
/// `bao server -dev` listens on `port` and its cluster listener on `port + 1`.
pub fn free_loopback_port_pair() -> Result<u16> {
    for _ in 0..PORT_SPAN / 2 {
        let port = next_candidate_port(2);
        if port + 1 < PORT_LOW + PORT_SPAN && probe_port(port) && probe_port(port + 1) {
            return Ok(port);
        }
    }
    bail!("found no two adjacent free loopback ports")
}

/// Whether `127.0.0.1:port` can be bound by a server that sets `SO_REUSEADDR` (Rust, Go and
/// `git daemon --reuseaddr` all do). Binding fails while anything listens on the port.
fn probe_port(port: u16) -> bool {
    use socket2::{Domain, Socket, Type};
    let Ok(socket) = Socket::new(Domain::IPV4, Type::STREAM, None) else {
        return false;
    };
    socket.set_reuse_address(true).is_ok()
        && socket
            .bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .is_ok()
}

const PORT_LOW: u16 = 20_000;
const PORT_SPAN: u16 = 12_000;

/// The next port of this process's walk over `PORT_LOW..PORT_LOW + PORT_SPAN`, starting at an
/// offset derived from the process id so that concurrent test processes walk apart.
fn next_candidate_port(step: u32) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(7919) % u32::from(PORT_SPAN);
    let n = NEXT.fetch_add(step, Ordering::Relaxed);
    let offset = (start + n) % u32::from(PORT_SPAN);
    PORT_LOW + offset as u16
}

/// A plain HTTP/1.1 request without a body on a fresh connection: status and body (at most
/// 4 MiB). For the controller's small endpoints in blocking tests.
pub fn http_request_blocking(addr: SocketAddr, method: &str, path: &str) -> Result<(u16, String)> {
    http_send_blocking(addr, method, path, &[], &[])
}

/// Like [`http_request_blocking`], with request headers and a body.
pub fn http_send_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String)> {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.take(4 * 1024 * 1024).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status from {addr}"))?;
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls until `addr` accepts TCP connections or `timeout` passes.
pub async fn wait_for_tcp(addr: impl ToSocketAddrs + fmt::Debug, timeout: Duration) -> Result<()> {
    let addrs: Vec<SocketAddr> = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr:?}"))?
        .collect();
    let deadline = Instant::now() + timeout;
    loop {
        for a in &addrs {
            let attempt = tokio::time::timeout(
                Duration::from_millis(250),
                tokio::net::TcpStream::connect(a),
            )
            .await;
            if matches!(attempt, Ok(Ok(_))) {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            bail!("{addr:?} did not accept TCP connections within {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Blocking version of [`wait_for_tcp`] for synchronous tests and helpers.
pub fn wait_for_tcp_blocking(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("{addr} did not accept TCP connections within {timeout:?}");
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Polls until `GET url` (plain `http://` only) answers with a 2xx status or `timeout` passes.
pub async fn wait_for_http_ok(url: &str, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match http_get_status(url, Duration::from_millis(500)).await {
            Ok(status) if status.is_success() => return Ok(()),
            Ok(status) => format!("status {status}"),
            Err(e) => format!("{e:#}"),
        };
        if Instant::now() >= deadline {
            bail!("GET {url} did not answer 2xx within {timeout:?} (last: {last})");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn http_get_status(url: &str, timeout: Duration) -> Result<StatusCode> {
    let resp = http_request(Method::GET, url, &[], None, 64 * 1024, timeout).await?;
    Ok(resp.status)
}

/// A buffered HTTP response from [`http_request`].
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub status: StatusCode,
    #[allow(dead_code)] // kept for helpers that need response headers
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Minimal HTTP/1.1 client for loopback test servers: one connection per request, plain
/// `http://` only (the harness never needs TLS, which keeps OpenSSL and aws-lc out), the
/// response body read up to `body_limit` bytes, the whole exchange bounded by `timeout`.
pub(crate) async fn http_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    body_limit: usize,
    timeout: Duration,
) -> Result<HttpResponse> {
    tokio::time::timeout(
        timeout,
        http_request_inner(method, url, headers, body, body_limit),
    )
    .await
    .map_err(|_| anyhow!("HTTP request to {url} timed out after {timeout:?}"))?
}

async fn http_request_inner(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<Bytes>,
    body_limit: usize,
) -> Result<HttpResponse> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("parsing URL {url}"))?;
    if uri.scheme_str() != Some("http") {
        bail!("only plain http:// URLs are supported by the harness client, got {url}");
    }
    let host = uri
        .host()
        .with_context(|| format!("URL {url} has no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .with_context(|| format!("connecting to {host}:{port}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP handshake with {host}:{port}"))?;
    // The connection task ends when the response is read and `sender` is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, format!("{host}:{port}"));
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder
        .body(Full::new(body.unwrap_or_default()))
        .context("building the HTTP request")?;
    let resp = sender
        .send_request(req)
        .await
        .with_context(|| format!("sending the request to {host}:{port}"))?;
    let (parts, body) = resp.into_parts();
    let body = Limited::new(body, body_limit)
        .collect()
        .await
        .map_err(|e| anyhow!("reading the response body from {host}:{port}: {e}"))?
        .to_bytes();
    Ok(HttpResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn redaction_masks_secrets_and_withholds_token_lines() {
        let text = "a\nRoot Token: s.abc\nlogin with hunter2 failed\nz";
        let out = redact_log(text, 10, &["hunter2".to_owned()]);
        assert!(!out.contains("s.abc"));
        assert!(!out.contains("hunter2"));
        assert!(out.contains("[REDACTED]"));
        assert!(out.ends_with('z'));
        assert_eq!(redact_log(text, 1, &[]), "z");
    }

    #[test]
    fn guard_kills_the_whole_group_on_drop() {
        // The shell forks a background sleep; both must be gone after drop.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 30 & echo child=$!; wait"]);
        let guard = ChildGuard::spawn("sleeper", &mut cmd).expect("spawn sh");
        let pgid = guard.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !guard.log_tail(5).contains("child=") {
            assert!(Instant::now() < deadline, "sh never started its child");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(guard);
        // The killed background child is reaped by init asynchronously; poll briefly.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let alive = Command::new("kill")
                .args(["-0", "--", &format!("-{pgid}")])
                .stderr(Stdio::null())
                .status()
                .expect("run kill -0");
            if !alive.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "process group {pgid} still has members"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn early_exit_is_reported_with_the_log_tail() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo boom >&2; exit 3"]);
        let mut guard = ChildGuard::spawn("failing", &mut cmd).expect("spawn sh");
        let err = guard
            .wait_for_tcp_blocking("127.0.0.1:9".parse().expect("addr"), Duration::from_secs(5))
            .expect_err("must fail");
        let msg = format!("{err:#}");
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn free_ports_are_bindable() {
        let port = free_loopback_port().expect("port");
        TcpListener::bind(("127.0.0.1", port)).expect("bind the free port");
        let pair = free_loopback_port_pair().expect("pair");
        assert!(pair < u16::MAX);
    }
}
