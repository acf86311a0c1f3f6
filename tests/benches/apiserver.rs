//! Benchmark of the `sealsync-testcluster` binary (not a test; no assertions on time):
//!
//! - sustained server-side applies per second: 5,000 applies of ConfigMaps (half creates, half
//!   updates) over keep-alive HTTP/1.1 from a few concurrent connections;
//! - the peer tool, side by side: `kubectl apply --server-side -f DIR` of 1,000 ConfigMaps against
//!   the same server, as whole-process time, and the ratio;
//! - memory with 10,000 objects (ConfigMaps and Secrets of about 1 KiB) loaded by server-side
//!   apply: VmRSS and VmHWM of the server process;
//! - start-up time until `/version` answers (median of 10).
//!
//! Run with `cargo bench -p sealsync-tests --bench apiserver` (the binary is built with the
//! bench profile, i.e. optimised). Environment: `BENCH_APPLIES`, `BENCH_CONNECTIONS`,
//! `BENCH_KUBECTL_OBJECTS`, `BENCH_MEMORY_OBJECTS` override the sizes; kubectl is skipped with a
//! note when it is not on PATH.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};

const BINARY: &str = env!("CARGO_BIN_EXE_sealsync-testcluster");

/// One running server process, killed on drop.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
    kubeconfig: std::path::PathBuf,
}

impl Server {
    /// Starts the binary on a free port; returns once it printed its URL.
    fn start() -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        let mut child = Command::new(BINARY)
            .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {BINARY}"))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let addr = line
            .trim()
            .strip_prefix("http://")
            .with_context(|| format!("unexpected first line {line:?}"))?
            .to_string();
        Ok(Self {
            child,
            addr,
            _dir: dir,
            kubeconfig,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in bytes from /proc/PID/status.
    fn memory(&self) -> Result<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        let field = |name: &str| -> Result<u64> {
            let line = status
                .lines()
                .find(|l| l.starts_with(name))
                .with_context(|| format!("{name} missing"))?;
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .context("no value")?
                .parse()?;
            Ok(kib * 1024)
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 connection.
async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    addr: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<(u16, Bytes)> {
    sender.ready().await?;
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr)
        .header("content-type", content_type)
        .header("user-agent", "sealsync-bench/1.0")
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn create_namespace(addr: &str, name: &str) -> Result<()> {
    let mut c = connect(addr).await?;
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    let (status, body) = send(
        &mut c,
        addr,
        "POST",
        "/api/v1/namespaces",
        "application/json",
        serde_json::to_vec(&ns)?,
    )
    .await?;
    if status != 201 {
        bail!(
            "creating namespace {name}: {status} {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(())
}

/// A ConfigMap of about `size` bytes of data.
fn config_map(ns: &str, name: &str, generation: u32, size: usize) -> Value {
    let filler: String = std::iter::repeat_n('x', size.saturating_sub(80) / 4).collect();
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": "bench", "tier": "backend"}},
        "data": {
            "generation": generation.to_string(),
            "a.conf": filler, "b.conf": filler, "c.conf": filler, "d.conf": filler,
        },
    })
}

/// A Secret of about `size` bytes of (base64) data.
fn secret(ns: &str, name: &str, size: usize) -> Value {
    use base64::Engine as _;
    let raw = vec![0x5au8; size.saturating_sub(120) * 3 / 8];
    let enc = base64::engine::general_purpose::STANDARD.encode(raw);
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/name": "bench"}},
        "type": "Opaque",
        "data": {"username": "YWRtaW4=", "password": enc, "token": enc},
    })
}

/// Applies `objects` ((path, body) pairs) from `connections` concurrent connections; returns
/// the wall time.
async fn apply_all(
    addr: &str,
    objects: Vec<(String, Vec<u8>)>,
    connections: usize,
) -> Result<Duration> {
    let connections = connections.max(1);
    let mut shards: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); connections];
    for (i, o) in objects.into_iter().enumerate() {
        shards[i % connections].push(o);
    }
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for shard in shards {
        let addr = addr.to_string();
        tasks.spawn(async move {
            let mut c = connect(&addr).await?;
            for (path, body) in shard {
                let (status, resp) = send(
                    &mut c,
                    &addr,
                    "PATCH",
                    &path,
                    "application/apply-patch+yaml",
                    body,
                )
                .await?;
                if status != 200 && status != 201 {
                    bail!("apply {path}: {status} {}", String::from_utf8_lossy(&resp));
                }
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(start.elapsed())
}

fn apply_path(obj: &Value) -> String {
    let ns = obj["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let plural = match obj["kind"].as_str() {
        Some("Secret") => "secrets",
        _ => "configmaps",
    };
    format!("/api/v1/namespaces/{ns}/{plural}/{name}?fieldManager=bench")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Start-up: spawn until `/version` answers 200.
async fn startup_once() -> Result<Duration> {
    let start = Instant::now();
    let server = Server::start()?;
    loop {
        if let Ok(mut c) = connect(&server.addr).await {
            let (status, _) = send(&mut c, &server.addr, "GET", "/version", "", Vec::new()).await?;
            if status == 200 {
                return Ok(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn kubectl_apply(server: &Server, dir: &Path, cache: &Path) -> Result<Duration> {
    let start = Instant::now();
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&server.kubeconfig)
        .arg("--cache-dir")
        .arg(cache)
        .args(["apply", "--server-side", "-f"])
        .arg(dir)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let wall = start.elapsed();
    if !out.status.success() {
        bail!("kubectl failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(wall)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and then there is
    // nothing to check: the benchmark only measures.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sealsync-testcluster benchmark: run it with `cargo bench`");
        return Ok(());
    }
    let applies = env_usize("BENCH_APPLIES", 5_000);
    let connections = env_usize("BENCH_CONNECTIONS", 4);
    let kubectl_objects = env_usize("BENCH_KUBECTL_OBJECTS", 1_000);
    let memory_objects = env_usize("BENCH_MEMORY_OBJECTS", 10_000);
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. Sustained server-side applies: every ConfigMap is applied twice (create, update).
    let server = Server::start()?;
    create_namespace(&server.addr, "bench").await?;
    let distinct = applies.div_ceil(2);
    let mut objects = Vec::with_capacity(applies);
    for round in 0..2u32 {
        for i in 0..distinct {
            if objects.len() == applies {
                break;
            }
            let cm = config_map("bench", &format!("cm-{i}"), round, 512);
            objects.push((apply_path(&cm), serde_json::to_vec(&cm)?));
        }
    }
    // The creates go first so that the second half are updates of existing objects.
    let (creates, updates) = objects.split_at(distinct.min(objects.len()));
    let t_create = apply_all(&server.addr, creates.to_vec(), connections).await?;
    let t_update = apply_all(&server.addr, updates.to_vec(), connections).await?;
    let wall = t_create + t_update;
    let per_sec = applies as f64 / wall.as_secs_f64();
    rows.push((
        format!("server-side applies over HTTP ({applies}: {} creates + {} updates, {connections} connections)", creates.len(), updates.len()),
        format!("{:.2} s -> {:.0} applies/s", wall.as_secs_f64(), per_sec),
    ));

    // 2. The peer: kubectl apply --server-side -f DIR against the same server.
    let kubectl_available = Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if kubectl_available && kubectl_objects > 0 {
        create_namespace(&server.addr, "bench-kubectl").await?;
        let dir = tempfile::tempdir()?;
        let manifests = dir.path().join("manifests");
        std::fs::create_dir(&manifests)?;
        for i in 0..kubectl_objects {
            let cm = config_map("bench-kubectl", &format!("cm-{i}"), 0, 512);
            std::fs::write(
                manifests.join(format!("cm-{i:05}.yaml")),
                serde_yaml::to_string(&cm)?,
            )?;
        }
        let cache = dir.path().join("cache");
        let wall = tokio::task::block_in_place(|| kubectl_apply(&server, &manifests, &cache))?;
        let kubectl_per_sec = kubectl_objects as f64 / wall.as_secs_f64();
        rows.push((
            format!(
                "kubectl apply --server-side -f DIR ({kubectl_objects} ConfigMaps, whole process)"
            ),
            format!(
                "{:.2} s -> {:.0} objects/s",
                wall.as_secs_f64(),
                kubectl_per_sec
            ),
        ));
        rows.push((
            "ratio: HTTP applies/s / kubectl objects/s".into(),
            format!("{:.1}x", per_sec / kubectl_per_sec),
        ));
    } else {
        rows.push((
            "kubectl apply --server-side -f DIR".into(),
            "skipped (kubectl not on PATH)".into(),
        ));
    }
    drop(server);

    // 3. Memory with 10,000 objects of about 1 KiB (half ConfigMaps, half Secrets).
    let server = Server::start()?;
    let (rss0, _) = server.memory()?;
    create_namespace(&server.addr, "bench").await?;
    let mut objects = Vec::with_capacity(memory_objects);
    for i in 0..memory_objects {
        let obj = if i % 2 == 0 {
            config_map("bench", &format!("cm-{i}"), 0, 1024)
        } else {
            secret("bench", &format!("secret-{i}"), 1024)
        };
        objects.push((apply_path(&obj), serde_json::to_vec(&obj)?));
    }
    let avg_body = objects.iter().map(|(_, b)| b.len()).sum::<usize>() / objects.len().max(1);
    apply_all(&server.addr, objects, connections).await?;
    let (rss, hwm) = server.memory()?;
    rows.push((
        "server RSS right after start".into(),
        format!("{:.1} MiB", mib(rss0)),
    ));
    rows.push((
        format!(
            "server with {memory_objects} objects (avg. applied body {avg_body} B): VmRSS / VmHWM"
        ),
        format!("{:.1} MiB / {:.1} MiB", mib(rss), mib(hwm)),
    ));
    rows.push((
        "per object ((VmRSS - start RSS) / objects; includes managedFields and watch history)"
            .into(),
        format!(
            "{:.0} bytes",
            rss.saturating_sub(rss0) as f64 / memory_objects.max(1) as f64
        ),
    ));
    drop(server);

    // 4. Start-up until /version answers.
    let mut times = Vec::new();
    for _ in 0..10 {
        times.push(startup_once().await?);
    }
    let (min, max) = (
        times.iter().min().copied().unwrap_or_default(),
        times.iter().max().copied().unwrap_or_default(),
    );
    rows.push((
        "start-up until /version answers (median of 10)".into(),
        format!(
            "{:.1} ms (min {:.1}, max {:.1})",
            median(times).as_secs_f64() * 1e3,
            min.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3
        ),
    ));

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!(
        "sealsync-testcluster benchmark ({} CPUs)",
        std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(1)
    );
    println!("{:-<w$}", "", w = width + 40);
    for (k, v) in &rows {
        println!("{k:<width$}  {v}");
    }
    Ok(())
}
