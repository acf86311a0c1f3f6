//! A real browser for the web view's tests: Debian's headless Chromium driven over the W3C
//! WebDriver protocol by `chromedriver` (both installed by `scripts/ensure-test-tools.sh`).
//! The protocol is a few JSON calls over HTTP, spoken here with the harness's own blocking
//! client, so no driver library and no downloaded browser are needed.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::process::{free_loopback_port, wait_for_tcp_blocking, ChildGuard};

/// The element id key of the W3C protocol.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `chromedriver` and `chromium`: `$SEALSYNC_CHROMEDRIVER` and `$SEALSYNC_CHROMIUM`, else
/// the Debian packages' paths, else the first on `PATH`.
fn tools() -> Result<(PathBuf, PathBuf)> {
    let find = |var: &str, names: &[&str]| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Some(PathBuf::from(p));
        }
        for name in names {
            for dir in ["/usr/bin", "/usr/lib/chromium"] {
                let p = Path::new(dir).join(name);
                if p.is_file() {
                    return Some(p);
                }
            }
            if let Some(path) = std::env::var_os("PATH") {
                for dir in std::env::split_paths(&path) {
                    let p = dir.join(name);
                    if p.is_file() {
                        return Some(p);
                    }
                }
            }
        }
        None
    };
    let driver = find("SEALSYNC_CHROMEDRIVER", &["chromedriver"]).context(
        "chromedriver not found: run scripts/ensure-test-tools.sh (Debian chromium-driver)",
    )?;
    let browser = find("SEALSYNC_CHROMIUM", &["chromium", "chromium-browser"])
        .context("chromium not found: run scripts/ensure-test-tools.sh (Debian chromium)")?;
    Ok((driver, browser))
}

/// One headless browser session; the browser stops when this is dropped.
pub struct Browser {
    driver: ChildGuard,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser")
            .field("addr", &self.addr)
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = send(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.session),
            &[],
        );
        let _ = self.driver.kill();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a fresh profile.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Like [`Browser::start`], with JavaScript turned off: what a page shows without script.
    pub fn start_without_script() -> Result<Self> {
        Self::start_with(&["--blink-settings=scriptEnabled=false"])
    }

    fn start_with(extra: &[&str]) -> Result<Self> {
        let (driver_bin, browser_bin) = tools()?;
        let port = free_loopback_port()?;
        let mut driver = ChildGuard::spawn(
            "chromedriver",
            Command::new(&driver_bin)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1"),
        )?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
        wait_for_tcp_blocking(addr, Duration::from_secs(20))
            .with_context(|| format!("chromedriver: {}", driver.log_tail(20)))?;
        driver.ensure_running()?;
        let profile = tempfile::tempdir()?;
        let mut args = vec![
            "--headless=new".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-first-run".to_owned(),
            "--window-size=1400,1000".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // Chromium's sandbox needs user namespaces, which containers (and root) lack.
        args.push("--no-sandbox".to_owned());
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser_bin, "args": args},
        }}});
        let (status, body) = send(
            addr,
            "POST",
            "/session",
            capabilities.to_string().as_bytes(),
        )?;
        let answer: Value = serde_json::from_str(&body).context("the new-session answer")?;
        let Some(session) = answer["value"]["sessionId"].as_str() else {
            bail!(
                "chromedriver could not start Chromium ({status}): {body}\n{}",
                driver.log_tail(20)
            );
        };
        Ok(Self {
            session: session.to_owned(),
            driver,
            addr,
            _profile: profile,
        })
    }

    /// One WebDriver command; its `value`.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let (status, text) = send(
            self.addr,
            method,
            &format!("/session/{}{path}", self.session),
            body.as_bytes(),
        )?;
        let answer: Value = serde_json::from_str(&text)
            .with_context(|| format!("WebDriver {method} {path}: {status} {text}"))?;
        if status != 200 {
            bail!(
                "WebDriver {method} {path}: {status} {}",
                answer["value"]["message"]
            );
        }
        Ok(answer["value"].clone())
    }

    /// Opens `url` and waits for it to load.
    pub fn goto(&self, url: &str) -> Result<()> {
        self.command("POST", "/url", Some(json!({"url": url})))
            .map(|_| ())
    }

    /// The URL shown now.
    pub fn url(&self) -> Result<String> {
        Ok(self
            .command("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its result.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
    }

    /// The document as it is now, script changes included.
    pub fn dom(&self) -> Result<String> {
        Ok(self
            .execute("return document.documentElement.outerHTML;", json!([]))?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The rendered text of the first element `css` selects, if any.
    pub fn text(&self, css: &str) -> Result<Option<String>> {
        let value = self.execute(
            "var e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            json!([css]),
        )?;
        Ok(value.as_str().map(str::to_owned))
    }

    /// Clicks the first element `css` selects, as a user would.
    pub fn click(&self, css: &str) -> Result<()> {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        let id = found[ELEMENT]
            .as_str()
            .with_context(|| format!("no element {css}"))?
            .to_owned();
        self.command("POST", &format!("/element/{id}/click"), Some(json!({})))
            .map(|_| ())
    }

    /// Waits until the text of `css` satisfies `check`; returns it.
    pub fn wait_text(
        &self,
        css: &str,
        timeout: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(css)?.unwrap_or_default();
            if check(&text) {
                return Ok(text);
            }
            if Instant::now() >= deadline {
                bail!("{css} never showed what was expected within {timeout:?}; it shows: {text}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Saves a PNG of the page as it is now.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let png = self.command("GET", "/screenshot", None)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .context("decoding the screenshot")?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
    }
}

/// One request to chromedriver, reading the answer by its `Content-Length`: chromedriver keeps
/// connections open, so reading to the end would wait for its idle timeout.
fn send(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> Result<(u16, String)> {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to chromedriver at {addr}"))?;
    // Page loads and script runs are bounded by the session's own timeouts (5 min).
    stream.set_read_timeout(Some(Duration::from_secs(330)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no HTTP status from chromedriver: {status_line:?}"))?;
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let mut raw = Vec::new();
    match length {
        Some(n) if n <= 64 << 20 => {
            raw.resize(n, 0);
            reader.read_exact(&mut raw)?;
        }
        Some(n) => bail!("chromedriver answered {n} bytes, more than 64 MiB"),
        None => {
            reader.take(64 << 20).read_to_end(&mut raw)?;
        }
    }
    Ok((status, String::from_utf8_lossy(&raw).into_owned()))
}
