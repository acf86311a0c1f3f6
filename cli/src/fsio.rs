//! Bounded reads, directory walks and atomic writes.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// No single input file or stdin may exceed this.
pub const MAX_INPUT_BYTES: u64 = 16 * 1024 * 1024;
/// A directory walk stops with an error past this many files.
pub const MAX_WALK_FILES: usize = 100_000;

/// Where input comes from, for messages.
pub fn display_source(path: Option<&Path>) -> String {
    match path {
        Some(p) => p.display().to_string(),
        None => "<stdin>".to_owned(),
    }
}

/// Reads a file, or stdin for `None` or `-`, into a buffer that is wiped on drop (the input
/// may be a plain Secret).
pub fn read_input(path: Option<&Path>) -> CliResult<Zeroizing<String>> {
    let mut buf = Zeroizing::new(Vec::new());
    let source = display_source(path);
    let result = match path {
        Some(p) if p != Path::new("-") => {
            // A FIFO or device named as a file would block or never end: read regular files
            // only (stdin is the way to pipe).
            let meta = fs::metadata(p).map_err(|e| io_error(&source, "read", &e))?;
            if !meta.is_file() {
                return Err(CliError::new(format!(
                    "{source}: not a regular file (a directory, FIFO, socket or device)"
                ))
                .with_hint("pass a manifest file, or pipe the input to stdin"));
            }
            fs::File::open(p).and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf))
        }
        _ => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Err(CliError::new("no input: stdin is a terminal")
                    .with_hint("pipe a Secret in, or pass -f FILE"));
            }
            stdin.lock().take(MAX_INPUT_BYTES + 1).read_to_end(&mut buf)
        }
    };
    result.map_err(|e| io_error(&source, "read", &e))?;
    text_of(buf, &source)
}

/// Checks the size and encoding of what was read.
fn text_of(buf: Zeroizing<Vec<u8>>, source: &str) -> CliResult<Zeroizing<String>> {
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::new(format!(
            "{source}: larger than the {MAX_INPUT_BYTES}-byte input limit"
        ))
        .with_hint("split the input into smaller files"));
    }
    if buf.contains(&0) {
        return Err(
            CliError::new(format!("{source}: a binary file, not a manifest"))
                .with_hint("pass a YAML or JSON manifest"),
        );
    }
    match std::str::from_utf8(&buf) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(CliError::new(format!("{source}: not UTF-8 text"))
            .with_hint("pass a YAML or JSON manifest")),
    }
}

/// A file held under an exclusive advisory lock for a read-modify-write (`--merge-into`,
/// `reseal`), so that two runs on one file cannot both read the old text and one of them lose
/// the other's change. The lock is on the file itself; because the write replaces the file by
/// a rename, a waiter checks after locking that the path still names the file it locked, and
/// starts again on the new file if not.
#[derive(Debug)]
pub struct LockedFile {
    _file: fs::File,
    pub text: Zeroizing<String>,
}

impl LockedFile {
    pub fn open(path: &Path) -> CliResult<LockedFile> {
        use std::os::unix::fs::MetadataExt;
        let place = path.display().to_string();
        for _ in 0..100 {
            let mut file = fs::OpenOptions::new()
                .read(true)
                .open(path)
                .map_err(|e| io_error(&place, "read", &e))?;
            file.lock().map_err(|e| io_error(&place, "lock", &e))?;
            let held = file.metadata().map_err(|e| io_error(&place, "read", &e))?;
            let now = fs::metadata(path).map_err(|e| io_error(&place, "read", &e))?;
            if held.dev() != now.dev() || held.ino() != now.ino() {
                continue;
            }
            let mut buf = Zeroizing::new(Vec::new());
            (&mut file)
                .take(MAX_INPUT_BYTES + 1)
                .read_to_end(&mut buf)
                .map_err(|e| io_error(&place, "read", &e))?;
            let text = text_of(buf, &place)?;
            return Ok(LockedFile { _file: file, text });
        }
        Err(
            CliError::new(format!("{place}: changed 100 times while waiting for it"))
                .with_hint("stop the other process that rewrites the file, then try again"),
        )
    }
}

/// Refuses to replace what is not a regular, writable file: a device node or a FIFO would be
/// swapped for a regular file, and a read-only file is read-only for a reason. A symbolic link
/// is followed (the file it points to is replaced, and the link stays) only when it stays
/// inside the repository: see [`check_link_boundary`].
pub fn writable_target(path: &Path) -> CliResult<std::path::PathBuf> {
    let place = path.display().to_string();
    check_link_boundary(path, &place)?;
    let link = fs::symlink_metadata(path);
    let target = match &link {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).map_err(|e| io_error(&place, "follow the link", &e))?
        }
        _ => path.to_path_buf(),
    };
    match fs::metadata(&target) {
        Ok(meta) if !meta.is_file() => {
            let what = if meta.is_dir() {
                "a directory"
            } else {
                "not a regular file (a device, FIFO or socket)"
            };
            Err(
                CliError::new(format!("{place}: is {what}; it will not be replaced"))
                    .with_hint("write to a regular file path"),
            )
        }
        Ok(meta) if meta.permissions().readonly() => Err(CliError::new(format!(
            "{place}: is read-only; it will not be replaced"
        ))
        .with_hint("make it writable (chmod u+w) if it should change, or write elsewhere")),
        Ok(_) => Ok(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(target),
        Err(e) => Err(io_error(&place, "write", &e)),
    }
}

/// Refuses a write through a symbolic link (the file itself, or a directory on the way) that
/// leads outside the repository: the root of the Git repository that holds the path, or the
/// current directory when there is none. A link planted in a repository
/// (`apps/db.sealed.yaml -> ~/.bashrc`) must not make `sealsync seal -w` or `--merge-into`
/// overwrite a file elsewhere. Links that stay inside are followed as before.
fn check_link_boundary(path: &Path, place: &str) -> CliResult<()> {
    let cwd =
        std::env::current_dir().map_err(|e| io_error(place, "find the current directory", &e))?;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    let parent = absolute.parent().unwrap_or(Path::new("/"));
    let root = parent
        .ancestors()
        .find(|d| d.join(".git").exists())
        .map_or(cwd, Path::to_path_buf);
    let is_link = |p: &Path| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink());
    let through_link = is_link(&absolute)
        || absolute
            .ancestors()
            .skip(1)
            .take_while(|a| a.starts_with(&root) && *a != root)
            .any(is_link);
    if !through_link {
        return Ok(());
    }
    let outside = || {
        CliError::new(format!(
            "{place}: is reached through a symbolic link that leads outside {}; it will not be \
             written through",
            root.display()
        ))
        .with_hint("write to a path inside the repository, or replace the link with the file")
    };
    let resolved = match fs::canonicalize(&absolute) {
        Ok(real) => real,
        // A link to a file that does not exist yet: where it would be created.
        Err(_) => {
            let target = fs::read_link(&absolute)
                .map(|t| parent.join(t))
                .unwrap_or_else(|_| absolute.clone());
            let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
                return Err(outside());
            };
            fs::canonicalize(dir).map_err(|_| outside())?.join(name)
        }
    };
    let root_real = fs::canonicalize(&root).unwrap_or(root.clone());
    if resolved.starts_with(&root_real) {
        Ok(())
    } else {
        Err(outside())
    }
}

pub fn io_error(place: &str, action: &str, err: &io::Error) -> CliError {
    let hint = match err.kind() {
        io::ErrorKind::NotFound => "check the path",
        io::ErrorKind::PermissionDenied => "check the file's permissions",
        io::ErrorKind::AlreadyExists => "choose another path, or remove the existing file",
        _ => "check the path and try again",
    };
    CliError::new(format!("cannot {action} {place}: {}", plain_io(err))).with_hint(hint)
}

fn plain_io(err: &io::Error) -> String {
    match err.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::AlreadyExists => "it already exists".to_owned(),
        _ => err.to_string(),
    }
}

fn is_manifest(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["yaml", "yml", "json"]
            .iter()
            .any(|m| e.eq_ignore_ascii_case(m))
    })
}

/// Expands paths into manifest files: files as given, directories walked recursively for
/// `*.yaml`, `*.yml` and `*.json`, hidden files and directories included (kubectl and Flux
/// read them too); only `.git` itself is skipped. Symbolic links are not followed, so a walk
/// stays inside the tree. Sorted for stable output.
pub fn expand_paths(paths: &[PathBuf]) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta =
            fs::metadata(path).map_err(|e| io_error(&path.display().to_string(), "read", &e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            let mut visited = std::collections::HashSet::new();
            if let Ok(real) = fs::canonicalize(path) {
                visited.insert(real);
            }
            walk(path, &mut found, &mut visited)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// Symbolic links are followed, to files and to directories, so that a linked manifest is
/// checked and resealed like any other; each real directory is walked once, so a link loop
/// ends.
fn walk(
    dir: &Path,
    out: &mut Vec<PathBuf>,
    visited: &mut std::collections::HashSet<PathBuf>,
) -> CliResult<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| io_error(&dir.display().to_string(), "read", &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&dir.display().to_string(), "read", &e))?;
        let name = entry.file_name();
        if name == ".git" {
            continue;
        }
        let path = entry.path();
        let mut kind = entry
            .file_type()
            .map_err(|e| io_error(&path.display().to_string(), "read", &e))?;
        if kind.is_symlink() {
            match fs::metadata(&path) {
                Ok(target) => kind = target.file_type(),
                // A dangling link names no manifest.
                Err(_) => continue,
            }
            if kind.is_dir() {
                let first_visit = fs::canonicalize(&path).is_ok_and(|real| visited.insert(real));
                if !first_visit {
                    continue;
                }
            }
        }
        // `./x` reads better as `x` in every message that names the file.
        let path = path
            .strip_prefix(".")
            .map(Path::to_path_buf)
            .unwrap_or(path);
        if kind.is_dir() {
            walk(&path, out, visited)?;
        } else if kind.is_file() && is_manifest(&path) {
            if out.len() == MAX_WALK_FILES {
                return Err(CliError::new(format!(
                    "{}: more than {MAX_WALK_FILES} manifest files",
                    dir.display()
                ))
                .with_hint("pass a narrower directory"));
            }
            out.push(path);
        }
    }
    Ok(())
}

/// Writes `contents` to `path` atomically: a temporary file in the same directory, then a
/// rename. Only ever used for sealed (non-secret) output.
pub fn write_atomic(path: &Path, contents: &[u8]) -> CliResult<()> {
    let place = path.display().to_string();
    let resolved = writable_target(path)?;
    let path = resolved.as_path();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".sealsync-")
        .tempfile_in(dir)
        .map_err(|e| io_error(&place, "write", &e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| io_error(&place, "write", &e))?;
    if let Ok(meta) = fs::metadata(path) {
        // Keep the permissions of the file being replaced.
        let _ = fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path)
        .map_err(|e| io_error(&place, "write", &e.error))?;
    Ok(())
}

/// The Helm chart whose `templates/` holds `file`, if any: such a file is a template, not YAML,
/// until the chart is rendered.
pub fn chart_of_template(file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .find(|dir| dir.file_name().is_some_and(|n| n == "templates"))
        .and_then(Path::parent)
        .filter(|chart| chart.join("Chart.yaml").is_file())
        .map(Path::to_path_buf)
}
