//! Reading a fetched commit's files under `spec.path` straight from the object database.
//!
//! Every manifest file is listed with its blob id. A file whose blob the applied revision
//! already held (the caller says which) is not read again: its objects are known, so a push
//! that changes one file of thousands reads one file. [`read_blobs`] reads such files later
//! when every object must be planned after all.

use std::collections::HashMap;
use std::path::Path;

use gix::bstr::ByteSlice;
use sealsync_core::render::SourceFile;

use super::fetch::{SourceError, SourceLimits};

/// A file under the path that was listed but not read: its blob is one the applied revision
/// held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeptFile {
    /// Path relative to the repository root.
    pub path: String,
    /// Its blob.
    pub blob: gix::ObjectId,
    /// Its size in bytes.
    pub bytes: u64,
}

/// The manifest files under the path.
#[derive(Default)]
pub(crate) struct Tree {
    /// The files read.
    pub files: Vec<SourceFile>,
    /// The files not read (their blob is known).
    pub kept: Vec<KeptFile>,
    /// Every manifest file's blob, read or kept.
    pub blobs: HashMap<String, gix::ObjectId>,
}

/// Lists the manifest files under `path` in `commit` and reads those whose blob `known` does
/// not hold for the same path. The limits cover every file, read or not.
pub(crate) fn read_tree(
    repo: &gix::Repository,
    commit: &str,
    path: &str,
    limits: &SourceLimits,
    known: Option<&HashMap<String, gix::ObjectId>>,
) -> Result<Tree, SourceError> {
    let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| local(e.to_string()))?;
    let tree = repo
        .find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| local(e.to_string()))?;
    let mut reader = Reader {
        repo,
        limits,
        known,
        tree: Tree::default(),
        total: 0,
    };
    let start = if path.is_empty() {
        tree
    } else {
        match tree
            .lookup_entry_by_path(path)
            .map_err(|e| local(e.to_string()))?
        {
            Some(entry) if entry.mode().is_tree() => entry
                .object()
                .map_err(|e| local(e.to_string()))?
                .into_tree(),
            Some(entry) if entry.mode().is_blob() => {
                reader.blob(entry.oid().to_owned(), path.to_owned())?;
                return Ok(reader.tree);
            }
            _ => return Ok(reader.tree),
        }
    };
    let root_prefix = if path.is_empty() {
        String::new()
    } else {
        format!("{path}/")
    };
    walk(
        repo,
        (start.id, path),
        limits,
        "under the path",
        |full, id, mode| {
            if mode.is_blob() {
                // Only what render would read is loaded: a README or a binary blob under the
                // path costs nothing.
                let relative = full.strip_prefix(&root_prefix).unwrap_or(&full);
                if sealsync_core::render::is_candidate(relative) {
                    reader.blob(id, full)?;
                }
            }
            // Symlinks and submodules are not followed: their targets are outside the tree.
            Ok(())
        },
    )?;
    Ok(reader.tree)
}

/// Visits every entry below the tree `start` (its path `prefix`), depth first, counting each
/// against the tree-entry limit (`scope` says where, for the message): `visit` gets the path,
/// id and mode of each entry that is not a tree.
pub(crate) fn walk(
    repo: &gix::Repository,
    (start, prefix): (gix::ObjectId, &str),
    limits: &SourceLimits,
    scope: &str,
    mut visit: impl FnMut(String, gix::ObjectId, gix::objs::tree::EntryMode) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    let mut walked = 0usize;
    let mut stack = vec![(start, prefix.to_owned())];
    while let Some((tree_id, prefix)) = stack.pop() {
        let tree = repo.find_tree(tree_id).map_err(|e| local(e.to_string()))?;
        for entry in tree.iter() {
            let entry = entry.map_err(|e| local(e.to_string()))?;
            walked += 1;
            if walked > limits.max_tree_entries {
                return Err(SourceError::Limit {
                    what: format!("the number of tree entries {scope}"),
                    limit: limits.max_tree_entries as u64,
                });
            }
            let name = entry.filename().to_str_lossy();
            let full = if prefix.is_empty() {
                name.into_owned()
            } else {
                format!("{prefix}/{name}")
            };
            let mode = entry.mode();
            if mode.is_tree() {
                stack.push((entry.oid().to_owned(), full));
            } else {
                visit(full, entry.oid().to_owned(), mode)?;
            }
        }
    }
    Ok(())
}

/// Reads the files `kept` named, after all (every object is planned).
pub(crate) fn read_blobs(
    repo: &gix::Repository,
    kept: &[KeptFile],
) -> Result<Vec<SourceFile>, SourceError> {
    kept.iter()
        .map(|file| {
            let object = repo
                .find_object(file.blob)
                .map_err(|e| local(e.to_string()))?;
            Ok(SourceFile {
                path: file.path.clone(),
                contents: object.detach().data,
            })
        })
        .collect()
}

/// Opens the repository a fetch wrote, to read more of it.
pub(crate) fn open(dir: &Path) -> Result<gix::Repository, SourceError> {
    gix::open_opts(dir, gix::open::Options::isolated()).map_err(|e| SourceError::Local {
        path: dir.display().to_string(),
        message: e.to_string(),
    })
}

fn local(message: String) -> SourceError {
    SourceError::Local {
        path: "the object database".to_owned(),
        message,
    }
}

struct Reader<'a> {
    repo: &'a gix::Repository,
    limits: &'a SourceLimits,
    known: Option<&'a HashMap<String, gix::ObjectId>>,
    tree: Tree,
    total: u64,
}

impl Reader<'_> {
    fn blob(&mut self, id: gix::ObjectId, path: String) -> Result<(), SourceError> {
        let limits = self.limits;
        if self.tree.blobs.len() >= limits.max_files {
            return Err(SourceError::Limit {
                what: "the number of files under the path".to_owned(),
                limit: limits.max_files as u64,
            });
        }
        let header = self
            .repo
            .find_header(id)
            .map_err(|e| local(e.to_string()))?;
        if header.size() > limits.max_file_bytes {
            return Err(SourceError::Limit {
                what: format!("{path}: the file size in bytes"),
                limit: limits.max_file_bytes,
            });
        }
        self.total += header.size();
        if self.total > limits.max_total_bytes {
            return Err(SourceError::Limit {
                what: "the total size of manifest files under the path in bytes".to_owned(),
                limit: limits.max_total_bytes,
            });
        }
        self.tree.blobs.insert(path.clone(), id);
        if self.known.and_then(|k| k.get(&path)) == Some(&id) {
            self.tree.kept.push(KeptFile {
                path,
                blob: id,
                bytes: header.size(),
            });
            return Ok(());
        }
        let object = self
            .repo
            .find_object(id)
            .map_err(|e| local(e.to_string()))?;
        self.tree.files.push(SourceFile {
            path,
            contents: object.detach().data,
        });
        Ok(())
    }
}
