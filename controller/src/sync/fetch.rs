//! The `source` stage: fetch one revision with gix and read the files under `spec.path`.
//!
//! Each GitSync keeps a bare repository (no work tree) in the controller's data directory.
//! A fetch lists the remote refs first; when the wanted ref still points at a commit the
//! repository holds, no pack is downloaded, which is what keeps a short interval cheap.
//! Branches and tags are fetched shallow (depth 1). Files are read straight from the object
//! database, never checked out.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gix::bstr::ByteSlice;
use gix::remote::Direction;
use sealsync_core::redact::{redact_url, redact_url_in};
use sealsync_core::render::SourceFile;
use sealsync_core::Revision;
use zeroize::Zeroizing;

use super::tree::{self, read_blobs, read_tree, KeptFile, Tree};

/// How much one fetch may download and read. Each limit is named in its error.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SourceLimits {
    /// Bytes of the repository's object store after the fetch.
    pub max_repository_bytes: u64,
    /// Bytes of one file under the path.
    pub max_file_bytes: u64,
    /// Files (blobs) under the path.
    pub max_files: usize,
    /// Tree entries walked under the path, files and directories together.
    pub max_tree_entries: usize,
    /// Bytes of all manifest files read, together.
    pub max_total_bytes: u64,
}

impl Default for SourceLimits {
    fn default() -> Self {
        Self {
            max_repository_bytes: 512 * 1024 * 1024,
            max_file_bytes: 16 * 1024 * 1024,
            max_files: 10_000,
            max_tree_entries: 100_000,
            max_total_bytes: 128 * 1024 * 1024,
        }
    }
}

/// Credentials from the Secret named by `spec.secretRef`.
pub(crate) enum Credentials {
    /// HTTP basic authentication.
    Basic {
        /// `username`.
        username: String,
        /// `password`.
        password: Zeroizing<String>,
    },
    /// `Authorization: Bearer`.
    Bearer(Zeroizing<String>),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Credentials::Basic { .. } => "Credentials::Basic(..)",
            Credentials::Bearer(_) => "Credentials::Bearer(..)",
        })
    }
}

/// What to fetch.
#[derive(Debug)]
pub(crate) struct FetchRequest {
    /// The repository URL (checked by [`check_url`]).
    pub url: String,
    /// The revision to follow.
    pub revision: Revision,
    /// The normalised `spec.path`, `""` for the root.
    pub path: String,
    /// Credentials, if the GitSync names a Secret.
    pub credentials: Option<Credentials>,
    /// Where this GitSync's bare repository lives.
    pub repo_dir: PathBuf,
    /// Limits.
    pub limits: SourceLimits,
    /// The whole fetch's deadline.
    pub timeout: Duration,
    /// The commit applied last: when the ref still points at it, the tree is not read and
    /// [`Snapshot::files`] stays empty (a poll that finds nothing new costs one ref listing).
    pub known_commit: Option<String>,
    /// Path → blob of the files whose objects are known (the applied revision's): a file
    /// with the same blob is listed in [`Snapshot::kept`], not read.
    pub known_files: Option<Arc<HashMap<String, gix::ObjectId>>>,
    /// Read the raw commit (and tag) for signature verification.
    pub read_signatures: bool,
}

/// One fetched revision.
pub(crate) struct Snapshot {
    /// `<branch>@sha1:<hex>`, `<tag>@sha1:<hex>` or `sha1:<hex>`, as Flux writes it.
    pub revision: String,
    /// The commit id.
    pub commit: String,
    /// The files under the path that were read, relative to the repository root.
    pub files: Vec<SourceFile>,
    /// The files under the path that were not read: their blobs are known.
    pub kept: Vec<KeptFile>,
    /// Every manifest file's blob, read or kept.
    pub blobs: HashMap<String, gix::ObjectId>,
    /// The raw commit and tag, when the request asked for them.
    pub signed: super::verify::SignedObjects,
    /// The repository it was read from, for [`read_kept`].
    repo_dir: PathBuf,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("revision", &self.revision)
            .field("files", &self.files.len())
            .field("kept", &self.kept.len())
            .finish_non_exhaustive()
    }
}

/// Why a fetch failed. Messages never hold credentials: URLs with user info are refused
/// before any fetch, and every URL is shown redacted (query values and fragments as `***`,
/// where tokens such as `?access_token=` travel).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum SourceError {
    /// The URL is not one the controller fetches.
    #[error("spec.url: {reason}")]
    InvalidUrl {
        /// Why.
        reason: &'static str,
    },
    /// The server refused the credentials, or asked for some.
    #[error("authentication failed for {}: check the username and password or bearerToken in spec.secretRef", redact_url(url))]
    Authentication {
        /// The URL.
        url: String,
    },
    /// The ref does not exist on the remote.
    #[error("{what} was not found in {}", redact_url(url))]
    RefNotFound {
        /// `branch main`, `tag v1`, `commit abc…`.
        what: String,
        /// The URL.
        url: String,
    },
    /// A limit was reached.
    #[error("{what} exceeds the limit of {limit}")]
    Limit {
        /// What was counted.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// The fetch took longer than `spec.timeout`.
    #[error(
        "fetching {} took longer than the timeout of {timeout:?}",
        redact_url(url)
    )]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// Git failed: the server is unreachable, the repository is broken.
    #[error("fetching {}: {}", redact_url(url), redact_url_in(message, url))]
    Git {
        /// The URL.
        url: String,
        /// gix's message.
        message: String,
    },
    /// The local repository could not be created or read.
    #[error("the local copy of the repository at {path}: {message}")]
    Local {
        /// The directory.
        path: String,
        /// What failed.
        message: String,
    },
}

impl SourceError {
    /// Whether this is an authentication failure (the `AuthenticationFailed` reason).
    pub(crate) fn is_authentication(&self) -> bool {
        matches!(self, SourceError::Authentication { .. })
    }

    /// Whether the server was unreachable, silent or too slow: the next fetch of the same
    /// repository may well cost a reconcile slot for as long again.
    pub(crate) fn is_slow_server(&self) -> bool {
        matches!(self, SourceError::Timeout { .. } | SourceError::Git { .. })
    }
}

/// What [`FetchGate::enter`] decided.
#[derive(Debug)]
pub(crate) enum FetchTurn {
    /// The GitSync is not slow: go ahead.
    Ordinary,
    /// It is slow, and fetches while it holds the permit.
    Slow {
        /// Held until the fetch ends.
        _permit: tokio::sync::OwnedSemaphorePermit,
    },
    /// It is slow and another slow one is fetching: try again later.
    Wait,
}

/// Keeps GitSyncs whose Git server failed to answer from taking every reconcile slot.
///
/// A GitSync whose last fetch timed out or could not reach its server is "slow". Slow GitSyncs
/// fetch one at a time across the controller (or as many as `permits`): a slow one that finds
/// the permit taken is requeued at once without fetching, so the other reconcile slots stay
/// free for everyone else. One success makes a GitSync ordinary again.
#[derive(Debug)]
pub(crate) struct FetchGate {
    slow: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl FetchGate {
    /// A gate letting `permits` slow GitSyncs fetch at once.
    pub(crate) fn new(permits: usize) -> Self {
        Self {
            slow: Default::default(),
            permits: Arc::new(tokio::sync::Semaphore::new(permits.max(1))),
        }
    }

    /// Whether the GitSync `key` may fetch now.
    pub(crate) fn enter(&self, key: &(String, String)) -> FetchTurn {
        let slow = self
            .slow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key);
        if !slow {
            return FetchTurn::Ordinary;
        }
        match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => FetchTurn::Slow { _permit: permit },
            Err(_) => FetchTurn::Wait,
        }
    }

    /// Records how a fetch of `key` went.
    pub(crate) fn record(&self, key: &(String, String), slow_server: bool) {
        let mut slow = self.slow.lock().unwrap_or_else(|p| p.into_inner());
        if slow_server {
            slow.insert(key.clone());
        } else {
            slow.remove(key);
        }
    }

    /// Forgets a deleted GitSync.
    pub(crate) fn forget(&self, key: &(String, String)) {
        self.slow
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// Refuses URLs the controller does not fetch: other schemes, `file://` (gix would spawn
/// `git`), and user info (credentials belong in `spec.secretRef`, never in a URL that is
/// printed in status and logs).
pub(crate) fn check_url(url: &str) -> Result<(), SourceError> {
    let rest = if let Some(rest) = url.strip_prefix("https://") {
        rest
    } else if let Some(rest) = url.strip_prefix("http://") {
        rest
    } else if let Some(rest) = url.strip_prefix("git://") {
        rest
    } else {
        return Err(SourceError::InvalidUrl {
            reason: "use a git://, http:// or https:// URL (ssh:// and file:// are not supported)",
        });
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.contains('@') {
        return Err(SourceError::InvalidUrl {
            reason:
                "the URL holds user info; put credentials in the Secret named by spec.secretRef",
        });
    }
    if authority.is_empty() || url.len() > 2048 || url.chars().any(char::is_control) {
        return Err(SourceError::InvalidUrl {
            reason: "not a valid URL",
        });
    }
    Ok(())
}

/// Fetches `request` on a blocking thread and reads the files under its path.
pub(crate) async fn fetch(request: FetchRequest) -> Result<Snapshot, SourceError> {
    check_url(&request.url)?;
    let interrupt = Arc::new(AtomicBool::new(false));
    let url = request.url.clone();
    let timeout = request.timeout;
    let flag = Arc::clone(&interrupt);
    let task = tokio::task::spawn_blocking(move || fetch_blocking(&request, &flag));
    match tokio::time::timeout(timeout, task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(SourceError::Git {
            url,
            message: format!("the fetch task failed: {join}"),
        }),
        Err(_) => {
            // The blocking thread stops at its next check of the flag.
            interrupt.store(true, Ordering::Relaxed);
            Err(SourceError::Timeout { url, timeout })
        }
    }
}

/// Repository directories a fetch thread is working in. A fetch abandoned at its timeout
/// keeps its thread until gix returns; a new fetch must not rebuild the directory under it.
static BUSY: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

/// Marks a repository directory busy for as long as it lives.
struct BusyGuard(PathBuf);

impl BusyGuard {
    fn take(dir: &Path, url: &str) -> Result<Self, SourceError> {
        let mut busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        if busy.iter().any(|d| d == dir) {
            return Err(SourceError::Git {
                url: url.to_owned(),
                message: "an earlier fetch of this repository has not stopped yet (it timed out); retrying".to_owned(),
            });
        }
        busy.push(dir.to_path_buf());
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut busy = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        busy.retain(|d| d != &self.0);
    }
}

fn fetch_blocking(
    request: &FetchRequest,
    interrupt: &Arc<AtomicBool>,
) -> Result<Snapshot, SourceError> {
    let _busy = BusyGuard::take(&request.repo_dir, &request.url)?;
    let repo = open_or_init(&request.repo_dir)?;
    let url = request.url.as_str();
    let git_err = |message: String| SourceError::Git {
        url: url.to_owned(),
        message,
    };

    let (refspec, want_ref, shallow) = match &request.revision {
        Revision::Branch(b) => (
            format!("+refs/heads/{b}:refs/remotes/origin/{b}"),
            Some(format!("refs/remotes/origin/{b}")),
            true,
        ),
        Revision::Tag(t) => (
            format!("+refs/tags/{t}:refs/tags/{t}"),
            Some(format!("refs/tags/{t}")),
            true,
        ),
        // An arbitrary commit can only be fetched through the branches that contain it: not
        // every server lets a client ask for an unadvertised commit.
        Revision::Commit(_) => (
            "+refs/heads/*:refs/remotes/origin/*".to_owned(),
            None,
            false,
        ),
    };

    let commit_hex = match &request.revision {
        Revision::Commit(c) if repo_has_commit(&repo, c) => {
            // A pinned commit never changes: nothing to list or download.
            Some(c.clone())
        }
        _ => None,
    };

    // The commit, and the object the ref pointed at on the remote (a tag's own id).
    let (commit_hex, listed) = match commit_hex {
        Some(c) => (c, None),
        None => {
            let remote = repo
                .remote_at(url)
                .map_err(|e| git_err(e.to_string()))?
                .with_fetch_tags(gix::remote::fetch::Tags::None)
                .with_refspecs([refspec.as_str()], Direction::Fetch)
                .map_err(|e| git_err(e.to_string()))?;
            let mut connection = if url.starts_with("git://") {
                // gix's own git:// connection has a connect timeout but no read timeout: a
                // server that accepts and never answers would hold the thread for ever.
                remote.to_connection_with_transport(connect_git_daemon(url)?)
            } else {
                remote
                    .connect(Direction::Fetch)
                    .map_err(|e| classify(url, &e))?
            };
            if let Some(options) = transport_options(&repo, url, request.credentials.as_ref()) {
                connection = connection.with_transport_options(options);
            }
            let basic = match &request.credentials {
                Some(Credentials::Basic { username, password }) => {
                    Some((username.clone(), password.clone()))
                }
                _ => None,
            };
            let authority = url_authority(url).to_owned();
            let connection = connection.with_credentials(move |action| match action {
                // Only the host of spec.url gets the credentials: after a redirect to another
                // host gix asks again, and the answer is no.
                gix::credentials::helper::Action::Get(ctx)
                    if !same_host(ctx.host.as_deref(), ctx.url.as_ref(), &authority) =>
                {
                    Ok(None)
                }
                gix::credentials::helper::Action::Get(ctx) => match &basic {
                    Some((username, password)) => Ok(Some(gix::credentials::protocol::Outcome {
                        identity: gix::sec::identity::Account {
                            username: username.clone(),
                            password: password.as_str().to_owned(),
                            oauth_refresh_token: None,
                        },
                        next: ctx.into(),
                    })),
                    None => Ok(None),
                },
                _ => Ok(None),
            });
            let prepare = connection
                .prepare_fetch(gix::progress::Discard, Default::default())
                .map_err(|e| classify(url, &e))?;
            let remote_id = prepare.ref_map().mappings.iter().find_map(|m| {
                let id = m.remote.as_id()?;
                match &request.revision {
                    Revision::Commit(_) => None,
                    _ => Some(id.to_owned()),
                }
            });
            if want_ref.is_some() && remote_id.is_none() {
                return Err(SourceError::RefNotFound {
                    what: describe_revision(&request.revision),
                    url: url.to_owned(),
                });
            }
            let have_it = remote_id
                .as_ref()
                .is_some_and(|id| repo_has_commit(&repo, &id.to_string()));
            if !have_it {
                let mut prepare = prepare;
                if shallow {
                    prepare = prepare
                        .with_shallow(gix::remote::fetch::Shallow::DepthAtRemote(NonZeroU32::MIN));
                }
                let watch = SizeWatch::start(
                    request.repo_dir.join("objects"),
                    request.limits.max_repository_bytes,
                    Arc::clone(interrupt),
                );
                let outcome = prepare.receive(gix::progress::Discard, &watch.flag);
                let exceeded = watch.stop();
                if exceeded {
                    // Start from an empty store next time: history kept from earlier fetches
                    // must not push every later fetch over the limit.
                    drop(repo);
                    let _ = std::fs::remove_dir_all(&request.repo_dir);
                    return Err(SourceError::Limit {
                        what: "the repository size in bytes".to_owned(),
                        limit: request.limits.max_repository_bytes,
                    });
                }
                if interrupt.load(Ordering::Relaxed) {
                    return Err(git_err("interrupted".to_owned()));
                }
                outcome.map_err(|e| classify(url, &e))?;
            }
            match (&request.revision, remote_id) {
                (Revision::Commit(c), _) => {
                    if !repo_has_commit(&repo, c) {
                        return Err(SourceError::RefNotFound {
                            what: describe_revision(&request.revision),
                            url: url.to_owned(),
                        });
                    }
                    (c.clone(), None)
                }
                (_, Some(id)) => (peel_to_commit(&repo, id).map_err(git_err)?, Some(id)),
                (_, None) => (unreachable_ref(url, &request.revision)?, None),
            }
        }
    };

    let tree = if request.known_commit.as_deref() == Some(commit_hex.as_str()) {
        Tree::default()
    } else {
        read_tree(
            &repo,
            &commit_hex,
            &request.path,
            &request.limits,
            request.known_files.as_deref(),
        )?
    };
    let signed = if request.read_signatures {
        let id =
            gix::ObjectId::from_hex(commit_hex.as_bytes()).map_err(|e| git_err(e.to_string()))?;
        // The tag object the remote listed, not the local ref: a fetch that found the commit
        // already here does not move the local ref.
        let tag = match (&request.revision, listed) {
            (Revision::Tag(t), Some(target)) => Some((t.as_str(), target)),
            _ => None,
        };
        super::verify::SignedObjects::read(&repo, id, tag).map_err(git_err)?
    } else {
        super::verify::SignedObjects::default()
    };
    let revision = match &request.revision {
        Revision::Branch(b) => format!("{b}@sha1:{commit_hex}"),
        Revision::Tag(t) => format!("{t}@sha1:{commit_hex}"),
        Revision::Commit(_) => format!("sha1:{commit_hex}"),
    };
    Ok(Snapshot {
        revision,
        commit: commit_hex,
        files: tree.files,
        kept: tree.kept,
        blobs: tree.blobs,
        signed,
        repo_dir: request.repo_dir.clone(),
    })
}

/// Reads the files a fetch kept (listed, not read) into [`Snapshot::files`]: every object
/// of the revision is planned after all.
pub(crate) async fn read_kept(snapshot: &mut Snapshot) -> Result<(), SourceError> {
    if snapshot.kept.is_empty() {
        return Ok(());
    }
    let kept = std::mem::take(&mut snapshot.kept);
    let dir = snapshot.repo_dir.clone();
    let read = tokio::task::spawn_blocking(move || {
        let _busy = BusyGuard::take(&dir, "the repository store")?;
        read_blobs(&tree::open(&dir)?, &kept)
    })
    .await
    .map_err(|join| SourceError::Local {
        path: snapshot.repo_dir.display().to_string(),
        message: format!("the read task failed: {join}"),
    })??;
    snapshot.files.extend(read);
    Ok(())
}

/// The file at `path` of the snapshot's commit, if there is one, within the file size limit.
pub(crate) async fn read_path(
    snapshot: &Snapshot,
    path: &str,
    limits: SourceLimits,
) -> Result<Option<Vec<u8>>, SourceError> {
    let dir = snapshot.repo_dir.clone();
    let commit = snapshot.commit.clone();
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let _busy = BusyGuard::take(&dir, "the repository store")?;
        super::checkout::read_one(&tree::open(&dir)?, &commit, &path, &limits)
    })
    .await
    .map_err(|join| SourceError::Local {
        path: snapshot.repo_dir.display().to_string(),
        message: format!("the read task failed: {join}"),
    })?
}

/// Every file of the snapshot's commit, for kustomize and Helm (see [`super::checkout`]).
pub(crate) async fn read_whole_tree(
    snapshot: &Snapshot,
    limits: SourceLimits,
) -> Result<Vec<sealsync_core::renderer::TreeFile>, super::checkout::CheckoutError> {
    let dir = snapshot.repo_dir.clone();
    let commit = snapshot.commit.clone();
    tokio::task::spawn_blocking(move || {
        let _busy = BusyGuard::take(&dir, "the repository store")
            .map_err(super::checkout::CheckoutError::Source)?;
        let repo = tree::open(&dir).map_err(super::checkout::CheckoutError::Source)?;
        super::checkout::read_whole(&repo, &commit, &limits)
    })
    .await
    .map_err(|join| {
        super::checkout::CheckoutError::Source(SourceError::Local {
            path: snapshot.repo_dir.display().to_string(),
            message: format!("the read task failed: {join}"),
        })
    })?
}

/// How long a Git server may take to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a Git server may stay silent (before its first byte, or between two reads) before
/// the fetch fails: a server that accepts connections and never answers (a tarpit) costs a
/// reconcile this long, not the whole fetch timeout, and leaves no thread behind.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// A git:// connection with connect, read and write timeouts.
fn connect_git_daemon(
    url: &str,
) -> Result<Box<dyn gix::protocol::transport::client::blocking_io::Transport + Send>, SourceError> {
    use gix::protocol::transport::client::git::{self, blocking_io::Connection};
    use std::net::{TcpStream, ToSocketAddrs};
    let failed = |message: String| SourceError::Git {
        url: url.to_owned(),
        message,
    };
    let authority = url_authority(url);
    let path = url
        .strip_prefix("git://")
        .and_then(|rest| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let (host, port) = split_host_port(authority)
        .ok_or_else(|| failed(format!("not a host and port: {authority}")))?;
    let addresses: Vec<std::net::SocketAddr> = (host, port.unwrap_or(9418))
        .to_socket_addrs()
        .map_err(|e| failed(format!("resolving {host}: {e}")))?
        .collect();
    let mut last_error = format!("{host} has no address");
    let mut stream = None;
    for address in addresses {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last_error = format!("connecting to {address}: {e}"),
        }
    }
    let read = stream.ok_or_else(|| failed(last_error))?;
    // No Nagle: the protocol's small packets would each wait for a delayed ACK (40 ms).
    let options = read
        .set_read_timeout(Some(IDLE_TIMEOUT))
        .and_then(|()| read.set_write_timeout(Some(IDLE_TIMEOUT)))
        .and_then(|()| read.set_nodelay(true));
    options.map_err(|e| failed(format!("setting socket options: {e}")))?;
    let write = read
        .try_clone()
        .map_err(|e| failed(format!("cloning the connection: {e}")))?;
    Ok(Box::new(Connection::new(
        read,
        write,
        gix::protocol::transport::Protocol::V2,
        path,
        Some((host.to_owned(), port)),
        git::ConnectMode::Daemon,
        false,
    )))
}

/// `host` and the optional port of `host[:port]` or `[v6]:port`.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => Some((host, Some(port.parse().ok()?))),
        None => Some((authority, None)),
    }
}

/// `host[:port]` of a URL checked by [`check_url`].
fn url_authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    rest.split('/').next().unwrap_or_default()
}

/// Whether a credential request is for `authority`, by its host or, without one, its URL.
fn same_host(host: Option<&str>, url: Option<&gix::bstr::BString>, authority: &str) -> bool {
    let bare = |a: &str| a.split(':').next().unwrap_or_default().to_ascii_lowercase();
    match (host, url) {
        (Some(host), _) => host.eq_ignore_ascii_case(authority) || bare(host) == bare(authority),
        (None, Some(url)) => url_authority(&url.to_str_lossy()).eq_ignore_ascii_case(authority),
        (None, None) => false,
    }
}

fn unreachable_ref(url: &str, revision: &Revision) -> Result<String, SourceError> {
    Err(SourceError::RefNotFound {
        what: describe_revision(revision),
        url: url.to_owned(),
    })
}

fn describe_revision(revision: &Revision) -> String {
    match revision {
        Revision::Branch(b) => format!("branch {b:?}"),
        Revision::Tag(t) => format!("tag {t:?}"),
        Revision::Commit(c) => format!("commit {c}"),
    }
}

fn open_or_init(dir: &Path) -> Result<gix::Repository, SourceError> {
    let local = |message: String| SourceError::Local {
        path: dir.display().to_string(),
        message,
    };
    let isolated = gix::open::Options::isolated();
    if dir.join("HEAD").is_file() {
        if let Ok(repo) = gix::open_opts(dir, isolated.clone()) {
            return Ok(repo);
        }
        // A repository left broken (a kill -9 mid-fetch) is rebuilt from scratch.
        std::fs::remove_dir_all(dir).map_err(|e| local(e.to_string()))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| local(e.to_string()))?;
    gix::ThreadSafeRepository::init_opts(
        dir,
        gix::create::Kind::Bare,
        gix::create::Options::default(),
        isolated,
    )
    .map(|repo| repo.to_thread_local())
    .map_err(|e| local(e.to_string()))
}

fn repo_has_commit(repo: &gix::Repository, hex: &str) -> bool {
    gix::ObjectId::from_hex(hex.as_bytes())
        .ok()
        .and_then(|id| repo.find_commit(id).ok())
        .is_some()
}

/// Peels an annotated tag to its commit.
fn peel_to_commit(repo: &gix::Repository, id: gix::ObjectId) -> Result<String, String> {
    let object = repo.find_object(id).map_err(|e| e.to_string())?;
    let commit = object
        .peel_to_commit()
        .map_err(|_| "the ref does not point at a commit".to_owned())?;
    Ok(commit.id.to_string())
}

fn transport_options(
    repo: &gix::Repository,
    url: &str,
    credentials: Option<&Credentials>,
) -> Option<Box<dyn std::any::Any>> {
    if !url.starts_with("http") {
        return None;
    }
    let mut options = gix::protocol::transport::client::blocking_io::http::Options::default();
    if let Ok(Some(configured)) = repo.transport_options(url, None) {
        if let Ok(http) =
            configured.downcast::<gix::protocol::transport::client::blocking_io::http::Options>()
        {
            options = *http;
        }
    }
    // A stalled server must not hold a reconcile for ever; the reconcile timeout is the outer
    // bound.
    options.low_speed_limit_bytes_per_second = 1;
    options.low_speed_time_seconds = 30;
    options.connect_timeout = Some(Duration::from_secs(15));
    options.follow_redirects =
        gix::protocol::transport::client::blocking_io::http::options::FollowRedirects::Initial;
    if let Some(Credentials::Bearer(token)) = credentials {
        options
            .extra_headers
            .push(format!("Authorization: Bearer {}", token.as_str()));
    }
    Some(Box::new(options))
}

/// Sorts a gix error into an authentication failure or a generic one. gix reports HTTP 401
/// and 403 and refused credentials in its message chain.
fn classify(url: &str, err: &dyn std::error::Error) -> SourceError {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    // The URL itself (`…/team-403/…`) must not decide the reason.
    let lower = message.replace(url, "").to_ascii_lowercase();
    if lower.contains("401")
        || lower.contains("403")
        || lower.contains("authenticat")
        || lower.contains("credentials")
    {
        return SourceError::Authentication {
            url: url.to_owned(),
        };
    }
    SourceError::Git {
        url: url.to_owned(),
        message: message.chars().take(1024).collect(),
    }
}

/// Reads every blob under `path` at `commit`, bounded in count and size.
/// Watches the size of the object store while a pack is received, and raises the interrupt
/// flag gix checks once it passes the limit: a hostile or huge repository stops downloading
/// instead of filling the disk.
struct SizeWatch {
    flag: Arc<AtomicBool>,
    exceeded: Arc<AtomicBool>,
    /// Dropped to stop the thread at once, not at its next look.
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SizeWatch {
    fn start(dir: PathBuf, limit: u64, outer: Arc<AtomicBool>) -> Self {
        let flag = Arc::new(AtomicBool::new(outer.load(Ordering::Relaxed)));
        let exceeded = Arc::new(AtomicBool::new(false));
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = {
            let (flag, exceeded) = (flag.clone(), exceeded.clone());
            std::thread::spawn(move || loop {
                // The reconcile's timeout raises `outer`; pass it on to gix.
                if outer.load(Ordering::Relaxed) {
                    flag.store(true, Ordering::Relaxed);
                    return;
                }
                if dir_size(&dir) > limit {
                    exceeded.store(true, Ordering::Relaxed);
                    flag.store(true, Ordering::Relaxed);
                    return;
                }
                match stopped.recv_timeout(Duration::from_millis(50)) {
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    _ => return,
                }
            })
        };
        Self {
            flag,
            exceeded,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> bool {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.exceeded.load(Ordering::Relaxed)
    }
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_credentials_or_other_schemes_are_refused() {
        assert!(check_url("https://example.com/r.git").is_ok());
        assert!(check_url("git://127.0.0.1:9418/r").is_ok());
        assert!(check_url("https://user:pw@example.com/r.git").is_err());
        assert!(check_url("file:///tmp/r").is_err());
        assert!(check_url("ssh://git@example.com/r").is_err());
    }

    #[test]
    fn hosts_and_ports_split() {
        assert_eq!(split_host_port("h"), Some(("h", None)));
        assert_eq!(split_host_port("h:9419"), Some(("h", Some(9419))));
        assert_eq!(split_host_port("[::1]:9418"), Some(("::1", Some(9418))));
        assert_eq!(split_host_port("[::1]"), Some(("::1", None)));
        assert_eq!(split_host_port("h:x"), None);
    }

    #[test]
    fn a_server_that_never_answers_fails_the_fetch_within_the_idle_timeout() {
        // Accepts the connection and says nothing, as a tarpit does.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
        let dir = tempfile::tempdir().expect("tmp");
        let started = std::time::Instant::now();
        let result = fetch_blocking(
            &FetchRequest {
                url: format!("git://127.0.0.1:{port}/r.git?access_token=canary-77"),
                revision: Revision::Branch("main".to_owned()),
                path: String::new(),
                credentials: None,
                repo_dir: dir.path().join("repo"),
                limits: SourceLimits::default(),
                timeout: Duration::from_secs(120),
                known_commit: None,
                known_files: None,
                read_signatures: false,
            },
            &Arc::new(AtomicBool::new(false)),
        );
        let Err(err) = result else {
            panic!("a server that never answers gave a snapshot");
        };
        assert!(
            started.elapsed() < IDLE_TIMEOUT + Duration::from_secs(10),
            "{err}"
        );
        let message = err.to_string();
        assert!(!message.contains("canary-77"), "{message}");
        drop(held.join());
    }
}
