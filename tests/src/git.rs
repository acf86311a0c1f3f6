//! Temporary bare Git repositories served over git daemon and smart HTTP.
//!
//! A [`GitServer`] owns a temporary directory of bare repositories and serves it two ways:
//!
//! - the real `git daemon` on `127.0.0.1` (`git://`), with `receive-pack` enabled so tests may
//!   push through it;
//! - smart HTTP: a small in-process HTTP server on `127.0.0.1:0` that runs the real
//!   `git http-backend` as a CGI program, optionally behind HTTP basic auth.
//!
//! [`BareRepo`] helpers commit, delete, branch and tag with the `git` CLI in a scratch work tree
//! and push into the bare repository, the way a person would. Every `git` the harness runs gets
//! a cleared environment with its own `HOME`, so neither the developer's `~/.gitconfig`, the
//! system config nor proxy variables leak in.
//!
//! Lifetimes: repositories keep the server alive (they share it through an `Arc`); the daemon,
//! the HTTP server and the directories go away when the server and all its repositories are
//! dropped.

use std::ffi::OsString;
use std::fmt;
use std::net::{SocketAddr, TcpListener};
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use tempfile::TempDir;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::process::{free_loopback_port, ChildGuard};

/// The branch every new repository starts on.
pub const DEFAULT_BRANCH: &str = "main";

/// Largest request body the smart-HTTP server buffers (a push). Bigger requests get 413.
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;
/// Largest CGI response (a fetch pack) the smart-HTTP server buffers.
const MAX_CGI_RESPONSE: usize = 256 * 1024 * 1024;
/// How much of `git http-backend`'s stderr is kept for error responses.
const MAX_CGI_STDERR: usize = 16 * 1024;
/// Upper bound on the CGI response header block.
const MAX_CGI_HEADER: usize = 64 * 1024;
/// A single CGI run (one request) may not take longer than this.
const CGI_TIMEOUT: Duration = Duration::from_secs(120);
/// How long `git daemon` may take to listen.
const DAEMON_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Basic-auth realm announced in `WWW-Authenticate`.
const REALM: &str = "sealsync-test-git";

const COMMIT_IDENTITY: [&str; 6] = [
    "-c",
    "user.name=sealsync-tests",
    "-c",
    "user.email=sealsync-tests@example.invalid",
    "-c",
    "commit.gpgsign=false",
];

/// Username and password the smart-HTTP server demands. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    pub username: String,
    pub password: String,
}

impl BasicAuth {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"[REDACTED]")
            .finish()
    }
}

/// A `git daemon` plus a smart-HTTP server over one temporary directory of bare repositories.
#[derive(Debug, Clone)]
pub struct GitServer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Field order is drop order: stop both servers before their directories disappear.
    daemon: ChildGuard,
    daemon_addr: SocketAddr,
    http: HttpGitServer,
    auth: Option<BasicAuth>,
    root: TempDir,
    home: TempDir,
}

impl GitServer {
    /// Starts `git daemon` and an unauthenticated smart-HTTP server.
    pub fn start() -> Result<Self> {
        Self::start_inner(None)
    }

    /// Starts `git daemon` and a smart-HTTP server that demands `username`/`password`
    /// (HTTP basic auth). The `git://` daemon stays anonymous: the protocol has no auth.
    pub fn start_with_basic_auth(username: &str, password: &str) -> Result<Self> {
        Self::start_inner(Some(BasicAuth::new(username, password)))
    }

    fn start_inner(auth: Option<BasicAuth>) -> Result<Self> {
        let root = tempfile::Builder::new()
            .prefix("sealsync-git-repos-")
            .tempdir()
            .context("creating the repository root")?;
        let home = tempfile::Builder::new()
            .prefix("sealsync-git-home-")
            .tempdir()
            .context("creating the isolated HOME for git")?;
        let (daemon, daemon_addr) = start_daemon(root.path(), home.path())?;
        let http = HttpGitServer::start(HttpConfig {
            project_root: root.path().to_owned(),
            home: home.path().to_owned(),
            path_env: std::env::var_os("PATH").unwrap_or_default(),
            auth: auth.clone(),
        })?;
        Ok(Self {
            inner: Arc::new(Inner {
                daemon,
                daemon_addr,
                http,
                auth,
                root,
                home,
            }),
        })
    }

    /// Creates an empty bare repository `NAME.git` (HEAD on [`DEFAULT_BRANCH`]).
    /// `name` may contain ASCII letters, digits, `-`, `_` and `.`.
    pub fn create_repo(&self, name: &str) -> Result<BareRepo> {
        validate_repo_name(name)?;
        let path = self.inner.root.path().join(format!("{name}.git"));
        if path.exists() {
            bail!("repository {name} already exists");
        }
        let mut cmd = self.git_command();
        cmd.arg("init")
            .arg("--quiet")
            .arg("--bare")
            .arg(format!("--initial-branch={DEFAULT_BRANCH}"))
            .arg(&path);
        run(&mut cmd, &format!("git init --bare {name}"))?;
        Ok(BareRepo {
            name: name.to_owned(),
            path,
            server: self.clone(),
            scratch: Mutex::new(None),
        })
    }

    /// A `git` command with the harness's isolated environment (cleared env, own `HOME`,
    /// no system config, no terminal prompts). Use it to clone or push in tests.
    pub fn git_command(&self) -> Command {
        isolated_git_command(self.inner.home.path())
    }

    /// The isolated `HOME` used by every `git` the harness runs.
    pub fn home(&self) -> &Path {
        self.inner.home.path()
    }

    /// The directory holding the bare repositories (`--base-path` / `GIT_PROJECT_ROOT`).
    pub fn root(&self) -> &Path {
        self.inner.root.path()
    }

    /// Where `git daemon` listens.
    pub fn daemon_addr(&self) -> SocketAddr {
        self.inner.daemon_addr
    }

    /// Where the smart-HTTP server listens.
    pub fn http_addr(&self) -> SocketAddr {
        self.inner.http.addr
    }

    /// The credentials the smart-HTTP server demands, if any.
    pub fn basic_auth(&self) -> Option<&BasicAuth> {
        self.inner.auth.as_ref()
    }

    /// Process id of `git daemon` (for tests that check it is gone).
    pub fn daemon_pid(&self) -> u32 {
        self.inner.daemon.id()
    }
}

/// A `git` command with a cleared environment: only `PATH` (to find git and its helpers),
/// `HOME`/`XDG_CONFIG_HOME` pointing at `home`, no system config and no prompts. Clearing the
/// environment also keeps proxy variables away from loopback URLs.
pub fn isolated_git_command(home: &Path) -> Command {
    let mut cmd = Command::new("git");
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join(".config"))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LANG", "C")
        .env("LC_ALL", "C")
        .stdin(Stdio::null());
    if let Some(tmp) = std::env::var_os("TMPDIR") {
        cmd.env("TMPDIR", tmp);
    }
    cmd
}

fn start_daemon(root: &Path, home: &Path) -> Result<(ChildGuard, SocketAddr)> {
    // git daemon cannot report an OS-assigned port, so pick one and retry on the rare race.
    let mut last_err = None;
    for _ in 0..5 {
        let port = free_loopback_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = isolated_git_command(home);
        cmd.arg("daemon")
            .arg("--reuseaddr")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--informative-errors")
            // --verbose makes the daemon log "Ready to rumble" once it has bound the port.
            .arg("--verbose")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", root.display()));
        let mut guard = ChildGuard::spawn("git daemon", &mut cmd)?;
        // Wait for the daemon's own "bound" message before probing the port: a bare TCP probe
        // could reach another process that took the port first while this daemon is still
        // about to fail with "address in use".
        let ready = guard
            .wait_for_log_line("Ready to rumble", DAEMON_START_TIMEOUT)
            .and_then(|()| guard.wait_for_tcp_blocking(addr, DAEMON_START_TIMEOUT));
        match ready {
            Ok(()) => return Ok((guard, addr)),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| anyhow!("git daemon never started")))
        .context("starting git daemon on a free loopback port")
}

fn validate_repo_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!("invalid repository name {name:?}: use ASCII letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// A bare repository inside a [`GitServer`].
#[derive(Debug)]
pub struct BareRepo {
    name: String,
    path: PathBuf,
    server: GitServer,
    /// Scratch work tree used by the commit helpers; created on first use. The mutex also
    /// serialises helpers on the same repository.
    scratch: Mutex<Option<TempDir>>,
}

impl BareRepo {
    /// The repository name without `.git`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the bare repository on disk.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The server this repository lives in.
    pub fn server(&self) -> &GitServer {
        &self.server
    }

    /// `git://127.0.0.1:PORT/NAME.git`
    pub fn git_url(&self) -> String {
        format!("git://{}/{}.git", self.server.daemon_addr(), self.name)
    }

    /// `http://127.0.0.1:PORT/NAME.git`
    pub fn http_url(&self) -> String {
        format!("http://{}/{}.git", self.server.http_addr(), self.name)
    }

    /// `http://USER:PASS@127.0.0.1:PORT/NAME.git`, with the user info percent-encoded.
    pub fn http_url_with_credentials(&self, username: &str, password: &str) -> String {
        format!(
            "http://{}:{}@{}/{}.git",
            percent_encode(username),
            percent_encode(password),
            self.server.http_addr(),
            self.name
        )
    }

    /// `file:///…/NAME.git`
    pub fn file_url(&self) -> String {
        format!("file://{}", self.path.display())
    }

    /// Writes `files` (path, contents) on [`DEFAULT_BRANCH`], commits and pushes. Returns the
    /// new commit id. Parent directories are created; existing files are overwritten. A commit
    /// is made even when nothing changed, so every call yields a new id.
    pub fn commit_files<P, C>(&self, files: &[(P, C)], message: &str) -> Result<String>
    where
        P: AsRef<str>,
        C: AsRef<[u8]>,
    {
        self.commit_files_on(DEFAULT_BRANCH, files, message)
    }

    /// Like [`BareRepo::commit_files`] on `branch` (created as an orphan if it does not exist).
    pub fn commit_files_on<P, C>(
        &self,
        branch: &str,
        files: &[(P, C)],
        message: &str,
    ) -> Result<String>
    where
        P: AsRef<str>,
        C: AsRef<[u8]>,
    {
        self.change_and_push(branch, message, |work| write_files(work, files))
            .with_context(|| format!("committing files to {}:{branch}", self.name))
    }

    /// Like [`BareRepo::commit_files`], the commit signed by `signer` (`git commit -S`).
    pub fn commit_files_signed<P, C>(
        &self,
        files: &[(P, C)],
        message: &str,
        signer: &crate::signing::GitSigner,
    ) -> Result<String>
    where
        P: AsRef<str>,
        C: AsRef<[u8]>,
    {
        self.commit_files_signed_on(DEFAULT_BRANCH, files, message, signer)
    }

    /// Like [`BareRepo::commit_files_on`], the commit signed by `signer`.
    pub fn commit_files_signed_on<P, C>(
        &self,
        branch: &str,
        files: &[(P, C)],
        message: &str,
        signer: &crate::signing::GitSigner,
    ) -> Result<String>
    where
        P: AsRef<str>,
        C: AsRef<[u8]>,
    {
        self.change_and_push_signed(branch, message, Some(signer), |work| {
            write_files(work, files)
        })
        .with_context(|| format!("committing signed files to {}:{branch}", self.name))
    }

    /// Creates an annotated tag `name` at `rev` signed by `signer` (`git tag -s`); returns the
    /// tag object's id.
    pub fn create_signed_tag(
        &self,
        name: &str,
        rev: &str,
        message: &str,
        signer: &crate::signing::GitSigner,
    ) -> Result<String> {
        let options = signer.git_options();
        let mut args: Vec<&str> = COMMIT_IDENTITY.to_vec();
        args.extend(options.iter().map(String::as_str));
        args.extend(["tag", "-s", "-m", message, "--", name, rev]);
        self.bare_git(&args)
            .with_context(|| format!("creating signed tag {name} at {rev} in {}", self.name))?;
        self.bare_git(&["rev-parse", "--verify", &format!("refs/tags/{name}")])
    }

    /// Writes a commit object with the content of commit `onto` and the signature of commit
    /// `signed` (a valid signature over other content, as an attacker could copy one), and
    /// returns its id. No branch moves.
    pub fn graft_signature(&self, signed: &str, onto: &str) -> Result<String> {
        let signed_raw = self.bare_git_raw(&["cat-file", "commit", signed])?;
        let onto_raw = self.bare_git_raw(&["cat-file", "commit", onto])?;
        let text = String::from_utf8(signed_raw).context("commit is not UTF-8")?;
        let mut header = String::new();
        let mut in_signature = false;
        for line in text.split_inclusive('\n') {
            if line.starts_with("gpgsig ") {
                in_signature = true;
            } else if !line.starts_with(' ') {
                in_signature = false;
            }
            if in_signature {
                header.push_str(line);
            }
            if line == "\n" {
                break;
            }
        }
        if header.is_empty() {
            bail!("commit {signed} is not signed");
        }
        let onto_text = String::from_utf8(onto_raw).context("commit is not UTF-8")?;
        let (headers, body) = onto_text
            .split_once("\n\n")
            .context("a commit without a message")?;
        let grafted = format!("{headers}\n{header}\n{body}");
        let file = tempfile::NamedTempFile::new().context("a temporary commit file")?;
        std::fs::write(file.path(), grafted).context("writing the grafted commit")?;
        let path = file.path().to_string_lossy().into_owned();
        self.bare_git(&["hash-object", "-t", "commit", "-w", &path])
    }

    /// Makes `files` the whole tree of [`DEFAULT_BRANCH`] in one commit and pushes it: every
    /// file not listed is deleted. Returns the new commit id.
    pub fn commit_tree<P, C>(&self, files: &[(P, C)], message: &str) -> Result<String>
    where
        P: AsRef<str>,
        C: AsRef<[u8]>,
    {
        self.change_and_push(DEFAULT_BRANCH, message, |work| {
            for entry in std::fs::read_dir(work).context("listing the work tree")? {
                let entry = entry.context("listing the work tree")?;
                if entry.file_name() == ".git" {
                    continue;
                }
                let path = entry.path();
                if entry.file_type().context("file type")?.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                }
                .with_context(|| format!("deleting {}", path.display()))?;
            }
            write_files(work, files)
        })
        .with_context(|| format!("replacing the tree of {}", self.name))
    }

    /// Adds symbolic links (path, target) on [`DEFAULT_BRANCH`], commits and pushes: Git keeps
    /// the target as written, whether or not it exists. Returns the new commit id.
    pub fn commit_symlinks<P: AsRef<str>, T: AsRef<str>>(
        &self,
        links: &[(P, T)],
        message: &str,
    ) -> Result<String> {
        self.change_and_push(DEFAULT_BRANCH, message, |work| {
            for (path, target) in links {
                let rel = safe_relative_path(path.as_ref())?;
                let full = work.join(&rel);
                if let Some(parent) = full.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let _ = std::fs::remove_file(&full);
                std::os::unix::fs::symlink(target.as_ref(), &full)
                    .with_context(|| format!("linking {}", rel.display()))?;
            }
            Ok(())
        })
        .with_context(|| format!("committing links to {}", self.name))
    }

    /// Deletes `paths` (files or directories) on [`DEFAULT_BRANCH`], commits and pushes.
    pub fn delete_files<P: AsRef<str>>(&self, paths: &[P], message: &str) -> Result<String> {
        self.delete_files_on(DEFAULT_BRANCH, paths, message)
    }

    /// Deletes `paths` on `branch`, commits and pushes. Missing paths are an error.
    pub fn delete_files_on<P: AsRef<str>>(
        &self,
        branch: &str,
        paths: &[P],
        message: &str,
    ) -> Result<String> {
        self.change_and_push(branch, message, |work| {
            for path in paths {
                let rel = safe_relative_path(path.as_ref())?;
                let full = work.join(&rel);
                if full.is_dir() {
                    std::fs::remove_dir_all(&full)
                } else {
                    std::fs::remove_file(&full)
                }
                .with_context(|| format!("deleting {}", rel.display()))?;
            }
            Ok(())
        })
        .with_context(|| format!("deleting files on {}:{branch}", self.name))
    }

    /// The commit id `refs/heads/BRANCH` points at.
    pub fn head(&self, branch: &str) -> Result<String> {
        self.rev_parse(&format!("refs/heads/{branch}"))
    }

    /// Resolves `rev` to a commit id in the bare repository.
    pub fn rev_parse(&self, rev: &str) -> Result<String> {
        self.bare_git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .with_context(|| format!("resolving {rev} in {}", self.name))
    }

    /// Whether `refs/heads/BRANCH` exists.
    pub fn has_branch(&self, branch: &str) -> Result<bool> {
        let mut cmd = self.server.git_command();
        cmd.arg("--git-dir").arg(&self.path).args([
            "show-ref",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}"),
        ]);
        let out = cmd
            .output()
            .with_context(|| format!("running git show-ref in {}", self.name))?;
        Ok(out.status.success())
    }

    /// Creates branch `name` at `rev` (fails if it exists).
    pub fn create_branch(&self, name: &str, rev: &str) -> Result<()> {
        self.bare_git(&["branch", "--", name, rev])
            .with_context(|| format!("creating branch {name} at {rev} in {}", self.name))?;
        Ok(())
    }

    /// Moves branch `name` to `rev`, creating it if needed; non-fast-forward moves are allowed
    /// (for history-rewrite tests).
    pub fn set_branch(&self, name: &str, rev: &str) -> Result<()> {
        let sha = self.rev_parse(rev)?;
        self.bare_git(&["update-ref", &format!("refs/heads/{name}"), &sha])
            .with_context(|| format!("moving branch {name} to {rev} in {}", self.name))?;
        Ok(())
    }

    /// Deletes branch `name`.
    pub fn delete_branch(&self, name: &str) -> Result<()> {
        self.bare_git(&["update-ref", "-d", &format!("refs/heads/{name}")])
            .with_context(|| format!("deleting branch {name} in {}", self.name))?;
        Ok(())
    }

    /// Creates a lightweight tag `name` at `rev`.
    pub fn create_tag(&self, name: &str, rev: &str) -> Result<()> {
        self.bare_git(&["tag", "--", name, rev])
            .with_context(|| format!("creating tag {name} at {rev} in {}", self.name))?;
        Ok(())
    }

    /// Points `refs/tags/NAME` at `object` (a commit, or a tag object), creating or moving it
    /// as a force-push of a tag does.
    pub fn point_tag(&self, name: &str, object: &str) -> Result<()> {
        self.bare_git(&["update-ref", &format!("refs/tags/{name}"), object])
            .with_context(|| format!("pointing tag {name} at {object} in {}", self.name))?;
        Ok(())
    }

    /// Creates an annotated tag `name` at `rev`; returns the tag object's id.
    pub fn create_annotated_tag(&self, name: &str, rev: &str, message: &str) -> Result<String> {
        let mut args: Vec<&str> = COMMIT_IDENTITY.to_vec();
        args.extend(["tag", "-a", "-m", message, "--", name, rev]);
        self.bare_git(&args)
            .with_context(|| format!("creating annotated tag {name} at {rev} in {}", self.name))?;
        self.bare_git(&["rev-parse", "--verify", &format!("refs/tags/{name}")])
    }

    /// Runs `git --git-dir=BARE args…` and returns trimmed stdout.
    fn bare_git(&self, args: &[&str]) -> Result<String> {
        let mut cmd = self.server.git_command();
        cmd.arg("--git-dir").arg(&self.path).args(args);
        run(&mut cmd, &format!("git {}", args.join(" ")))
    }

    /// Runs `git --git-dir=BARE args…` and returns its stdout untouched.
    fn bare_git_raw(&self, args: &[&str]) -> Result<Vec<u8>> {
        let mut cmd = self.server.git_command();
        cmd.arg("--git-dir").arg(&self.path).args(args);
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running git {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "git {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(out.stdout)
    }

    /// Prepares the scratch work tree at the tip of `branch` (or an empty orphan), lets
    /// `change` edit files, commits everything and pushes to the bare repository.
    fn change_and_push(
        &self,
        branch: &str,
        message: &str,
        change: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<String> {
        self.change_and_push_signed(branch, message, None, change)
    }

    /// [`BareRepo::change_and_push`], the commit signed by `signer` when there is one.
    fn change_and_push_signed(
        &self,
        branch: &str,
        message: &str,
        signer: Option<&crate::signing::GitSigner>,
        change: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<String> {
        let options = signer.map(crate::signing::GitSigner::git_options);
        self.commit_and_push(branch, |work, git| {
            change(work)?;
            git(&["add", "--all", "--", "."])?;
            let mut commit: Vec<&str> = COMMIT_IDENTITY.to_vec();
            if let Some(options) = &options {
                commit.extend(options.iter().map(String::as_str));
            }
            commit.extend([
                "commit",
                "--quiet",
                "--allow-empty",
                "--no-verify",
                "-m",
                message,
            ]);
            if options.is_some() {
                commit.push("-S");
            }
            git(&commit)?;
            Ok(())
        })
    }

    /// Runs `git revert` of `commit` on [`DEFAULT_BRANCH`] and pushes: a new commit that undoes
    /// it, as a user rolls back. Returns the new commit id.
    pub fn revert(&self, commit: &str) -> Result<String> {
        self.commit_and_push(DEFAULT_BRANCH, |_, git| {
            let mut revert: Vec<&str> = COMMIT_IDENTITY.to_vec();
            revert.extend(["revert", "--no-edit", commit]);
            git(&revert)?;
            Ok(())
        })
        .with_context(|| format!("reverting {commit} on {}", self.name))
    }

    /// Prepares the scratch work tree at the tip of `branch` (or an empty orphan), lets
    /// `commit` make a commit there with the given git runner, and pushes it.
    fn commit_and_push(
        &self,
        branch: &str,
        commit: impl FnOnce(&Path, &dyn Fn(&[&str]) -> Result<String>) -> Result<()>,
    ) -> Result<String> {
        let mut scratch = self
            .scratch
            .lock()
            .map_err(|_| anyhow!("a previous helper on {} panicked", self.name))?;
        if scratch.is_none() {
            *scratch = Some(self.init_scratch()?);
        }
        let work = scratch
            .as_ref()
            .map(|d| d.path().to_owned())
            .context("scratch work tree missing")?;
        let git = |args: &[&str]| -> Result<String> {
            let mut cmd = self.server.git_command();
            cmd.current_dir(&work).args(args);
            run(&mut cmd, &format!("git {}", args.join(" ")))
        };
        let branch_ref = format!("refs/heads/{branch}");
        if self.has_branch(branch)? {
            git(&["fetch", "--quiet", "--no-tags", "origin", &branch_ref])?;
            git(&["checkout", "--quiet", "--force", "-B", branch, "FETCH_HEAD"])?;
        } else {
            // Orphan branch: point HEAD at the unborn ref and empty the index.
            git(&["symbolic-ref", "HEAD", &branch_ref])?;
            git(&["read-tree", "--empty"])?;
        }
        // Leftovers of an earlier failed helper must not end up in this commit.
        git(&["clean", "--quiet", "-d", "-x", "--force"])?;
        commit(&work, &git)?;
        let sha = git(&["rev-parse", "HEAD"])?;
        git(&[
            "-c",
            "protocol.file.allow=always",
            "push",
            "--quiet",
            "origin",
            &format!("HEAD:{branch_ref}"),
        ])?;
        Ok(sha)
    }

    fn init_scratch(&self) -> Result<TempDir> {
        let dir = tempfile::Builder::new()
            .prefix("sealsync-git-work-")
            .tempdir()
            .context("creating a scratch work tree")?;
        let mut init = self.server.git_command();
        init.arg("init")
            .arg("--quiet")
            .arg(format!("--initial-branch={DEFAULT_BRANCH}"))
            .arg(dir.path());
        run(&mut init, "git init (scratch work tree)")?;
        let mut remote = self.server.git_command();
        remote
            .current_dir(dir.path())
            .args(["remote", "add", "origin"])
            .arg(&self.path);
        run(&mut remote, "git remote add origin")?;
        Ok(dir)
    }
}

/// Runs a command to completion and returns its trimmed stdout; on failure the error names
/// `what` and carries the (bounded) stderr.
fn run(cmd: &mut Command, what: &str) -> Result<String> {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {what}"))?;
    if !out.status.success() {
        // Only the end of stderr: that is where git puts the fatal error.
        let start = out.stderr.len().saturating_sub(4000);
        let tail = String::from_utf8_lossy(&out.stderr[start..]);
        bail!("{what} failed ({}): {}", out.status, tail.trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Writes `files` (path, contents) under `work`, creating parent directories.
fn write_files<P: AsRef<str>, C: AsRef<[u8]>>(work: &Path, files: &[(P, C)]) -> Result<()> {
    for (path, contents) in files {
        let rel = safe_relative_path(path.as_ref())?;
        let full = work.join(&rel);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&full, contents.as_ref())
            .with_context(|| format!("writing {}", rel.display()))?;
    }
    Ok(())
}

/// Accepts only plain relative paths inside the work tree (no `..`, no absolute paths, nothing
/// under `.git`).
fn safe_relative_path(path: &str) -> Result<PathBuf> {
    let p = Path::new(path);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(part) => {
                if out.as_os_str().is_empty() && part == ".git" {
                    bail!("refusing to touch {path:?}: it is inside .git");
                }
                out.push(part);
            }
            Component::CurDir => {}
            _ => bail!("path {path:?} must be relative and must not contain '..'"),
        }
    }
    if out.as_os_str().is_empty() {
        bail!("empty path");
    }
    Ok(out)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Smart HTTP: `git http-backend` behind a small axum server.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct HttpConfig {
    project_root: PathBuf,
    home: PathBuf,
    path_env: OsString,
    auth: Option<BasicAuth>,
}

/// The smart-HTTP server. It runs on its own thread with its own single-threaded runtime, so
/// it works from synchronous tests and keeps serving while an async test blocks on a `git`
/// subprocess. Dropping it stops the runtime, which closes the listener and every connection.
#[derive(Debug)]
struct HttpGitServer {
    addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpGitServer {
    fn start(config: HttpConfig) -> Result<Self> {
        // Port 0: the OS picks a free port and there is no race.
        let listener =
            TcpListener::bind(("127.0.0.1", 0)).context("binding the smart-HTTP server")?;
        let addr = listener
            .local_addr()
            .context("reading the smart-HTTP address")?;
        listener
            .set_nonblocking(true)
            .context("making the smart-HTTP listener non-blocking")?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building the smart-HTTP runtime")?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let config = Arc::new(config);
        let thread = std::thread::Builder::new()
            .name(format!("git-http-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("sealsync-tests: smart-HTTP listener: {e}");
                            return;
                        }
                    };
                    let app = Router::new().fallback(handle_git_http).with_state(config);
                    tokio::select! {
                        res = axum::serve(listener, app) => {
                            if let Err(e) = res {
                                eprintln!("sealsync-tests: smart-HTTP server stopped: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Dropping the runtime here cancels every connection task and kills running
                // `git http-backend` children (`kill_on_drop`).
                drop(runtime);
            })
            .context("spawning the smart-HTTP thread")?;
        Ok(Self {
            addr,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!("sealsync-tests: the smart-HTTP thread panicked");
            }
        }
    }
}

async fn handle_git_http(State(config): State<Arc<HttpConfig>>, req: Request) -> Response {
    match serve_cgi(&config, req).await {
        Ok(resp) => resp,
        Err(e) => {
            eprintln!("sealsync-tests: smart-HTTP request failed: {e:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}\n")).into_response()
        }
    }
}

/// Checks basic auth; `Ok(Some(user))` when authenticated, `Ok(None)` when no auth is
/// configured, `Err(401 response)` otherwise.
fn check_auth(config: &HttpConfig, req: &Request) -> Result<Option<String>, Box<Response>> {
    let Some(auth) = &config.auth else {
        return Ok(None);
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        })
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|raw| String::from_utf8(raw).ok());
    let ok = presented.as_deref().and_then(|cred| cred.split_once(':'))
        == Some((auth.username.as_str(), auth.password.as_str()));
    if ok {
        return Ok(Some(auth.username.clone()));
    }
    let mut resp = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
        resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    Err(Box::new(resp))
}

async fn serve_cgi(config: &HttpConfig, req: Request) -> Result<Response> {
    let remote_user = match check_auth(config, &req) {
        Ok(user) => user,
        Err(resp) => return Ok(*resp),
    };
    let path = req.uri().path().to_owned();
    if path.split('/').any(|seg| seg == "..") {
        return Ok((StatusCode::BAD_REQUEST, "bad path\n").into_response());
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let method = req.method().as_str().to_owned();
    // Copy the headers out first: `Request` is not `Sync`, so no borrow of it may live
    // across the `.await` below (the handler future must be `Send`).
    let (content_type, content_encoding, git_protocol) = {
        let header_str = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        (
            header_str("content-type").unwrap_or_default(),
            header_str("content-encoding"),
            header_str("git-protocol"),
        )
    };

    // Buffering with a bound (instead of streaming) also turns chunked pushes into a request
    // with a known CONTENT_LENGTH, which CGI needs.
    let body = match axum::body::to_bytes(req.into_body(), MAX_REQUEST_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Ok((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body larger than {MAX_REQUEST_BODY} bytes\n"),
            )
                .into_response())
        }
    };

    let mut cmd = tokio::process::Command::new("git");
    cmd.arg("http-backend")
        .env_clear()
        .env("PATH", &config.path_env)
        .env("HOME", &config.home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // Allow pushes over HTTP even without REMOTE_USER (http-backend refuses them by
        // default for anonymous users).
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "http.receivepack")
        .env("GIT_CONFIG_VALUE_0", "true")
        .env("GIT_PROJECT_ROOT", &config.project_root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("PATH_INFO", &path)
        .env("QUERY_STRING", &query)
        .env("REQUEST_METHOD", &method)
        .env("CONTENT_TYPE", &content_type)
        .env("CONTENT_LENGTH", body.len().to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(user) = &remote_user {
        cmd.env("REMOTE_USER", user).env("AUTH_TYPE", "Basic");
    }
    if let Some(enc) = &content_encoding {
        // git clients gzip large upload-pack requests; http-backend inflates them itself.
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    if let Some(proto) = git_protocol.filter(|p| is_safe_git_protocol(p)) {
        // Protocol v2 negotiation (git's docs: `SetEnvIf Git-Protocol ".*" GIT_PROTOCOL=$0`).
        cmd.env("GIT_PROTOCOL", proto);
    }

    let mut child = cmd.spawn().context("starting git http-backend")?;
    let stdin = child.stdin.take();
    let stdout = child.stdout.take().context("http-backend stdout missing")?;
    let stderr = child.stderr.take().context("http-backend stderr missing")?;
    let run = async {
        let write = async move {
            if let Some(mut stdin) = stdin {
                // A write error means http-backend answered without reading everything
                // (e.g. 404); its response still tells the client what happened.
                let _ = stdin.write_all(&body).await;
                let _ = stdin.shutdown().await;
            }
        };
        let (_, out, err) = tokio::join!(
            write,
            read_bounded(stdout, MAX_CGI_RESPONSE),
            read_bounded(stderr, MAX_CGI_STDERR)
        );
        let status = child.wait().await.context("waiting for git http-backend")?;
        Ok::<_, anyhow::Error>((status, out?, err?))
    };
    let (status, (out, out_truncated), (err, _)) =
        tokio::time::timeout(CGI_TIMEOUT, run)
            .await
            .map_err(|_| anyhow!("git http-backend took longer than {CGI_TIMEOUT:?}"))??;
    if out_truncated {
        bail!("git http-backend answered more than {MAX_CGI_RESPONSE} bytes");
    }
    if out.is_empty() {
        bail!(
            "git http-backend produced no output ({status}): {}",
            String::from_utf8_lossy(&err).trim()
        );
    }
    parse_cgi_response(&out)
}

fn is_safe_git_protocol(value: &str) -> bool {
    value.len() <= 256
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b':' | b'.' | b'-' | b'_'))
}

/// Reads `reader` to EOF, keeping at most `limit` bytes; the rest is drained and dropped so the
/// child never blocks on a full pipe. Returns the bytes and whether anything was dropped.
async fn read_bounded(mut reader: impl AsyncRead + Unpin, limit: usize) -> Result<(Vec<u8>, bool)> {
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .context("reading from git http-backend")?;
        if n == 0 {
            return Ok((kept, truncated));
        }
        let room = limit.saturating_sub(kept.len());
        if n > room {
            truncated = true;
        }
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
}

/// Splits a CGI response into its header block (with `Status:`) and body.
fn parse_cgi_response(out: &[u8]) -> Result<Response> {
    let (head, body) = split_cgi_head(out)
        .with_context(|| "git http-backend response has no header/body separator")?;
    if head.len() > MAX_CGI_HEADER {
        bail!("git http-backend header block is larger than {MAX_CGI_HEADER} bytes");
    }
    let head = std::str::from_utf8(head).context("CGI headers are not UTF-8")?;
    let mut status = StatusCode::OK;
    let mut resp = Response::new(Body::from(body.to_vec()));
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("malformed CGI header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or("");
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .with_context(|| format!("bad CGI Status header {value:?}"))?;
            continue;
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .with_context(|| format!("bad CGI header name {name:?}"))?;
        let value = HeaderValue::from_str(value)
            .with_context(|| format!("bad CGI header value for {name}"))?;
        resp.headers_mut().append(name, value);
    }
    *resp.status_mut() = status;
    Ok(resp)
}

fn split_cgi_head(out: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = find(out, b"\r\n\r\n").map(|i| (i, 4));
    let lf = find(out, b"\n\n").map(|i| (i, 2));
    let (i, sep) = match (crlf, lf) {
        (Some(a), Some(b)) => {
            if a.0 <= b.0 {
                a
            } else {
                b
            }
        }
        (Some(a), None) => a,
        (None, Some(b)) => b,
        (None, None) => return None,
    };
    Some((&out[..i], &out[i + sep..]))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_headers_and_status_are_parsed() {
        let out = b"Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnope";
        let resp = parse_cgi_response(out).expect("parse");
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(resp.headers()["content-type"], "text/plain");

        let out = b"Content-Type: application/x-git-upload-pack-advertisement\n\n001e# service";
        let resp = parse_cgi_response(out).expect("parse");
        assert_eq!(resp.status(), StatusCode::OK);
    }

    #[test]
    fn paths_must_stay_inside_the_work_tree() {
        assert!(safe_relative_path("a/b.yaml").is_ok());
        assert!(safe_relative_path("./a").is_ok());
        assert!(safe_relative_path("../a").is_err());
        assert!(safe_relative_path("/etc/passwd").is_err());
        assert!(safe_relative_path(".git/config").is_err());
        assert!(safe_relative_path("").is_err());
    }

    #[test]
    fn repo_names_are_validated() {
        assert!(validate_repo_name("apps-1.x").is_ok());
        assert!(validate_repo_name("../x").is_err());
        assert!(validate_repo_name("a/b").is_err());
        assert!(validate_repo_name(".hidden").is_err());
    }

    #[test]
    fn userinfo_is_percent_encoded() {
        assert_eq!(percent_encode("p@ss:w/rd"), "p%40ss%3Aw%2Frd");
    }
}
