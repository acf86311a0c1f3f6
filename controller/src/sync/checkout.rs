//! The whole tree of a commit, for kustomize and Helm: an overlay loads `../base`, a chart its
//! `.tpl` helpers and `charts/*.tgz`, so more than the manifests under the path is needed.
//!
//! Symbolic links are resolved here, inside the commit's tree, and given to the renderer as
//! copies of what they point to: the renderer's copy holds regular files only, so no link can
//! lead outside it. A link that is absolute or climbs out of the repository fails the render,
//! naming the link, as does a chain of links longer than [`MAX_LINK_HOPS`].

use std::collections::BTreeMap;

use gix::bstr::ByteSlice;
use sealsync_core::render::RenderError;
use sealsync_core::renderer::TreeFile;

use super::fetch::{SourceError, SourceLimits};

/// Links followed from one link before giving up.
const MAX_LINK_HOPS: usize = 8;

/// Why the tree could not be read for rendering.
#[derive(Debug)]
pub(crate) enum CheckoutError {
    Source(SourceError),
    Render(RenderError),
}

enum Entry {
    File(gix::ObjectId),
    Link(String),
}

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
                for (copy, id) in resolve(&entries, path, target)? {
                    reader.read(copy, id)?;
                }
            }
        }
    }
    Ok(reader.files)
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
    let mut walked = 0usize;
    let mut stack = vec![(root.id, String::new())];
    while let Some((tree_id, prefix)) = stack.pop() {
        let tree = repo.find_tree(tree_id).map_err(|e| local(e.to_string()))?;
        for entry in tree.iter() {
            let entry = entry.map_err(|e| local(e.to_string()))?;
            walked += 1;
            if walked > limits.max_tree_entries {
                return Err(SourceError::Limit {
                    what: "the number of tree entries in the repository".to_owned(),
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
            } else if mode.is_link() {
                let target = repo
                    .find_object(entry.oid())
                    .map_err(|e| local(e.to_string()))?;
                entries.insert(
                    full,
                    Entry::Link(String::from_utf8_lossy(&target.data).into_owned()),
                );
            } else if mode.is_blob() {
                entries.insert(full, Entry::File(entry.oid().to_owned()));
            }
            // Submodules (commits) have no content in this repository.
        }
    }
    Ok(entries)
}

/// The files a link stands for, as `(path of the copy, blob)`: one for a link to a file, every
/// file below for a link to a directory, none for a dangling link.
fn resolve(
    entries: &BTreeMap<String, Entry>,
    link: &str,
    target: &str,
) -> Result<Vec<(String, gix::ObjectId)>, CheckoutError> {
    let refuse = |problem: &'static str| {
        CheckoutError::Render(RenderError::Link {
            file: link.to_owned(),
            target: target.to_owned(),
            problem,
        })
    };
    let mut current_link = link.to_owned();
    let mut current_target = target.to_owned();
    for _ in 0..MAX_LINK_HOPS {
        if current_target.starts_with('/') {
            return Err(refuse("is absolute"));
        }
        let resolved =
            join(&current_link, &current_target).ok_or_else(|| refuse("leaves the repository"))?;
        match entries.get(&resolved) {
            Some(Entry::File(id)) => return Ok(vec![(link.to_owned(), *id)]),
            Some(Entry::Link(next)) => {
                current_link = resolved;
                current_target = next.clone();
            }
            None => {
                let prefix = format!("{resolved}/");
                let mut files = Vec::new();
                for (path, entry) in entries.range(prefix.clone()..) {
                    let Some(rest) = path.strip_prefix(&prefix) else {
                        break;
                    };
                    match entry {
                        Entry::File(id) => files.push((format!("{link}/{rest}"), *id)),
                        // Links inside a linked directory would need their own resolution
                        // relative to the copy; they are refused rather than guessed.
                        Entry::Link(_) => {
                            return Err(refuse("is a directory that holds symbolic links"))
                        }
                    }
                }
                if resolved.is_empty() || link.starts_with(&prefix) {
                    return Err(refuse("contains itself"));
                }
                return Ok(files);
            }
        }
    }
    Err(refuse("starts a chain of more than 8 links"))
}

/// The path `target` names, relative to the directory of `link`; `None` if it climbs out.
fn join(link: &str, target: &str) -> Option<String> {
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, Option<&str>)]) -> BTreeMap<String, Entry> {
        list.iter()
            .map(|(path, link)| {
                let entry = match link {
                    Some(target) => Entry::Link((*target).to_owned()),
                    None => Entry::File(gix::ObjectId::null(gix::hash::Kind::Sha1)),
                };
                ((*path).to_owned(), entry)
            })
            .collect()
    }

    fn copies(result: Result<Vec<(String, gix::ObjectId)>, CheckoutError>) -> Vec<String> {
        result
            .expect("resolves")
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    }

    #[test]
    fn links_inside_the_repository_become_copies() {
        let tree = entries(&[
            ("base/cm.yaml", None),
            ("base/deep/x.yaml", None),
            ("prod/cm.yaml", Some("../base/cm.yaml")),
            ("prod/base", Some("../base")),
            ("prod/hop", Some("cm.yaml")),
        ]);
        assert_eq!(
            copies(resolve(&tree, "prod/cm.yaml", "../base/cm.yaml")),
            ["prod/cm.yaml"]
        );
        assert_eq!(
            copies(resolve(&tree, "prod/base", "../base")),
            ["prod/base/cm.yaml", "prod/base/deep/x.yaml"]
        );
        assert_eq!(copies(resolve(&tree, "prod/hop", "cm.yaml")), ["prod/hop"]);
        assert!(resolve(&tree, "prod/gone", "nothing.yaml")
            .expect("resolves")
            .is_empty());
    }

    #[test]
    fn links_that_leave_the_repository_are_refused() {
        let tree = entries(&[("a/loop", Some("../a/loop")), ("self", Some("."))]);
        for (link, target) in [
            ("x/passwd.yaml", "/etc/passwd"),
            (
                "x/token",
                "/var/run/secrets/kubernetes.io/serviceaccount/token",
            ),
            ("x/up", "../../etc"),
            ("x/y/up", "../../../data"),
            ("a/loop", "../a/loop"),
            ("self", "."),
        ] {
            let error = resolve(&tree, link, target).expect_err(link);
            let CheckoutError::Render(error) = error else {
                panic!("{link}: not a render error");
            };
            let message = error.to_string();
            assert!(
                message.starts_with(&format!("{link}: a symbolic link")),
                "{message}"
            );
        }
    }
}
