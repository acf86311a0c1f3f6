//! The whole tree of a commit, for kustomize and Helm: an overlay loads `../base`, a chart its
//! `.tpl` helpers and `charts/*.tgz`, so more than the manifests under the path is needed.
//!
//! Symbolic links are resolved inside the commit's tree by `sealsync_core::renderer`'s rules
//! (shared with `sealsync render`) and given to the renderer as copies of what they point to.

use std::collections::BTreeMap;

use sealsync_core::render::RenderError;
use sealsync_core::renderer::{resolve_link, TreeEntry, TreeFile};

use super::fetch::{SourceError, SourceLimits};

/// Why the tree could not be read for rendering.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    Source(SourceError),
    Render(RenderError),
}

type Entry = TreeEntry<gix::ObjectId>;

/// Every regular file of `commit`, with symbolic links inside the repository replaced by
/// copies. Submodules are left out. The limits cover every file, copies included.
pub(crate) fn read_whole(
    repo: &gix::Repository,
    commit: &str,
    limits: &SourceLimits,
) -> Result<Vec<TreeFile>, CheckoutError> {
    let entries = list(repo, commit, limits).map_err(CheckoutError::Source)?;
    let mut reader = Reader {
        repo,
        limits,
        total: 0,
        files: Vec::new(),
    };
    for (path, entry) in &entries {
        match entry {
            Entry::File(id) => reader.read(path.clone(), *id)?,
            Entry::Link(target) => {
                let resolved =
                    resolve_link(&entries, path, target).map_err(CheckoutError::Render)?;
                for (copy, id) in resolved {
                    reader.read(copy, id)?;
                }
            }
        }
    }
    Ok(reader.files)
}

/// The regular file at `path` of `commit`, if there is one (a link or a directory is none).
pub(crate) fn read_one(
    repo: &gix::Repository,
    commit: &str,
    path: &str,
    limits: &SourceLimits,
) -> Result<Option<Vec<u8>>, SourceError> {
    let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| local(e.to_string()))?;
    let tree = repo
        .find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| local(e.to_string()))?;
    let Some(entry) = tree
        .lookup_entry_by_path(path)
        .map_err(|e| local(e.to_string()))?
    else {
        return Ok(None);
    };
    if !entry.mode().is_blob() {
        return Ok(None);
    }
    let header = repo
        .find_header(entry.oid())
        .map_err(|e| local(e.to_string()))?;
    if header.size() > limits.max_file_bytes {
        return Err(SourceError::Limit {
            what: format!("{path}: the file size in bytes"),
            limit: limits.max_file_bytes,
        });
    }
    let object = repo
        .find_object(entry.oid())
        .map_err(|e| local(e.to_string()))?;
    Ok(Some(object.detach().data))
}

fn list(
    repo: &gix::Repository,
    commit: &str,
    limits: &SourceLimits,
) -> Result<BTreeMap<String, Entry>, SourceError> {
    let id = gix::ObjectId::from_hex(commit.as_bytes()).map_err(|e| local(e.to_string()))?;
    let root = repo
        .find_commit(id)
        .and_then(|c| c.tree())
        .map_err(|e| local(e.to_string()))?;
    let mut entries = BTreeMap::new();
    super::tree::walk(
        repo,
        (root.id, ""),
        limits,
        "in the repository",
        |full, id, mode| {
            if mode.is_link() {
                let header = repo.find_header(id).map_err(|e| local(e.to_string()))?;
                // A link's target is a path: anything longer is not one.
                if header.size() > 4096 {
                    return Err(SourceError::Limit {
                        what: format!("{full}: the symbolic link's target in bytes"),
                        limit: 4096,
                    });
                }
                let target = repo.find_object(id).map_err(|e| local(e.to_string()))?;
                entries.insert(
                    full,
                    Entry::Link(String::from_utf8_lossy(&target.data).into_owned()),
                );
            } else if mode.is_blob() {
                entries.insert(full, Entry::File(id));
            }
            // Submodules (commits) have no content in this repository.
            Ok(())
        },
    )?;
    Ok(entries)
}

struct Reader<'a> {
    repo: &'a gix::Repository,
    limits: &'a SourceLimits,
    total: u64,
    files: Vec<TreeFile>,
}

impl Reader<'_> {
    fn read(&mut self, path: String, id: gix::ObjectId) -> Result<(), CheckoutError> {
        let limits = self.limits;
        let limit =
            |what: String, limit: u64| CheckoutError::Source(SourceError::Limit { what, limit });
        if self.files.len() >= limits.max_files {
            return Err(limit(
                "the number of files in the repository".to_owned(),
                limits.max_files as u64,
            ));
        }
        let header = self
            .repo
            .find_header(id)
            .map_err(|e| CheckoutError::Source(local(e.to_string())))?;
        if header.size() > limits.max_file_bytes {
            return Err(limit(
                format!("{path}: the file size in bytes"),
                limits.max_file_bytes,
            ));
        }
        self.total += header.size();
        if self.total > limits.max_total_bytes {
            return Err(limit(
                "the total size of the repository's files in bytes".to_owned(),
                limits.max_total_bytes,
            ));
        }
        let object = self
            .repo
            .find_object(id)
            .map_err(|e| CheckoutError::Source(local(e.to_string())))?;
        self.files.push(TreeFile {
            path,
            contents: object.detach().data,
        });
        Ok(())
    }
}

fn local(message: String) -> SourceError {
    SourceError::Local {
        path: "the object database".to_owned(),
        message,
    }
}
