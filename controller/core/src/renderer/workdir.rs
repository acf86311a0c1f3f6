//! The private copy of a revision's tree that one render reads.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::TreeFile;

/// A directory that holds one render's copy of the tree, removed when dropped. Only its owner
/// may read it (mode 0700), every file is created new, and it holds regular files only: a
/// symbolic link in the repository was resolved (or refused) before it got here.
pub(super) struct WorkDir {
    path: PathBuf,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl WorkDir {
    /// Writes `files` into a new directory under `parent`.
    pub(super) fn create(parent: &Path, files: &[TreeFile]) -> std::io::Result<Self> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let name = format!(
            "render-{}-{}-{nanos:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = parent.join(name);
        // Not recursive: fails if the name exists, so nothing else's directory is reused.
        DirBuilder::new().mode(0o700).create(&path)?;
        let dir = Self { path };
        let root = dir.path.join("repo");
        DirBuilder::new().mode(0o700).create(&root)?;
        for file in files {
            let target = root.join(relative(&file.path)?);
            if let Some(parent) = target.parent() {
                DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&target)?
                .write_all(&file.contents)?;
        }
        Ok(dir)
    }

    /// The directory the program runs in.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// The root of the tree.
    pub(super) fn root(&self) -> PathBuf {
        self.path.join("repo")
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A tree path as a relative path with no `..`, `.` or empty parts: the tree reader already
/// refuses such names; this keeps a copy from ever leaving its directory.
fn relative(path: &str) -> std::io::Result<&Path> {
    let valid = !path.is_empty()
        && !path.starts_with('/')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != ".." && !part.contains('\0'));
    if valid {
        Ok(Path::new(path))
    } else {
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{path:?} is not a path inside the repository"),
        ))
    }
}
