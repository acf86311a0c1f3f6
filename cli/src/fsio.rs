//! Bounded reads, directory walks and atomic writes.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::error::{CliError, CliResult};

/// No single input file or stdin may exceed this.
pub const MAX_INPUT_BYTES: u64 = 64 * 1024 * 1024;
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
    if buf.len() as u64 > MAX_INPUT_BYTES {
        return Err(CliError::new(format!(
            "{source}: larger than the {MAX_INPUT_BYTES}-byte input limit"
        ))
        .with_hint("split the input into smaller files"));
    }
    match std::str::from_utf8(&buf) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(CliError::new(format!("{source}: not UTF-8 text"))
            .with_hint("pass a YAML or JSON manifest")),
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
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// Expands paths into manifest files: files as given, directories walked recursively for
/// `*.yaml`, `*.yml` and `*.json`, skipping hidden entries. Sorted for stable output.
pub fn expand_paths(paths: &[PathBuf]) -> CliResult<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let meta =
            fs::metadata(path).map_err(|e| io_error(&path.display().to_string(), "read", &e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            found.sort();
            out.extend(found);
        } else {
            out.push(path.clone());
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> CliResult<()> {
    let entries =
        fs::read_dir(dir).map_err(|e| io_error(&dir.display().to_string(), "read", &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error(&dir.display().to_string(), "read", &e))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| io_error(&path.display().to_string(), "read", &e))?;
        // `./x` reads better as `x` in every message that names the file.
        let path = path
            .strip_prefix(".")
            .map(Path::to_path_buf)
            .unwrap_or(path);
        if kind.is_dir() {
            walk(&path, out)?;
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
