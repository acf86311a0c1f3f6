//! The tree a render reads, whatever it is read from (a commit's object database in the
//! controller, a directory on disk in the CLI): symbolic links resolved inside the repository
//! into copies of what they point to, so the renderer's copy holds regular files only and no
//! link can lead outside it. A link that is absolute or climbs out of the repository is an
//! error naming the link, as is a chain of links longer than [`MAX_LINK_HOPS`].

use std::collections::BTreeMap;

use crate::render::RenderError;

/// Links followed from one link before giving up.
pub const MAX_LINK_HOPS: usize = 8;

/// One entry of a tree, by repository path: a file (`B` says where its bytes are) or a
/// symbolic link with its target as written.
#[derive(Debug, Clone)]
pub enum TreeEntry<B> {
    /// A regular file.
    File(B),
    /// A symbolic link.
    Link(String),
}

/// The files a link stands for, as `(path of the copy, file)`: one for a link to a file, every
/// file below for a link to a directory, none for a dangling link.
pub fn resolve_link<B: Clone>(
    entries: &BTreeMap<String, TreeEntry<B>>,
    link: &str,
    target: &str,
) -> Result<Vec<(String, B)>, RenderError> {
    let refuse = |problem: &'static str| RenderError::Link {
        file: link.to_owned(),
        target: target.to_owned(),
        problem,
    };
    let mut current_link = link.to_owned();
    let mut current_target = target.to_owned();
    for _ in 0..MAX_LINK_HOPS {
        if current_target.starts_with('/') {
            return Err(refuse("is absolute"));
        }
        let resolved = join_in_repository(parent(&current_link), &current_target)
            .ok_or_else(|| refuse("leaves the repository"))?;
        match entries.get(&resolved) {
            Some(TreeEntry::File(file)) => return Ok(vec![(link.to_owned(), file.clone())]),
            Some(TreeEntry::Link(next)) => {
                current_link = resolved;
                current_target = next.clone();
            }
            None => {
                let prefix = format!("{resolved}/");
                if resolved.is_empty() || link.starts_with(&prefix) {
                    return Err(refuse("contains itself"));
                }
                let mut files = Vec::new();
                for (path, entry) in entries.range(prefix.clone()..) {
                    let Some(rest) = path.strip_prefix(&prefix) else {
                        break;
                    };
                    match entry {
                        TreeEntry::File(file) => {
                            files.push((format!("{link}/{rest}"), file.clone()))
                        }
                        // Links inside a linked directory would need their own resolution
                        // relative to the copy; they are refused rather than guessed.
                        TreeEntry::Link(_) => {
                            return Err(refuse("is a directory that holds symbolic links"))
                        }
                    }
                }
                return Ok(files);
            }
        }
    }
    Err(refuse("starts a chain of more than 8 links"))
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `relative` taken from the repository directory `dir` (`""` for the root), as a repository
/// path; `None` if it is absolute or climbs out of the repository. `""` is the root itself.
pub fn join_in_repository(dir: &str, relative: &str) -> Option<String> {
    if relative.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for part in relative.split('/') {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &[(&str, Option<&str>)]) -> BTreeMap<String, TreeEntry<u8>> {
        list.iter()
            .map(|(path, link)| {
                let entry = match link {
                    Some(target) => TreeEntry::Link((*target).to_owned()),
                    None => TreeEntry::File(0),
                };
                ((*path).to_owned(), entry)
            })
            .collect()
    }

    fn copies(result: Result<Vec<(String, u8)>, RenderError>) -> Vec<String> {
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
            copies(resolve_link(&tree, "prod/cm.yaml", "../base/cm.yaml")),
            ["prod/cm.yaml"]
        );
        assert_eq!(
            copies(resolve_link(&tree, "prod/base", "../base")),
            ["prod/base/cm.yaml", "prod/base/deep/x.yaml"]
        );
        assert_eq!(
            copies(resolve_link(&tree, "prod/hop", "cm.yaml")),
            ["prod/hop"]
        );
        assert!(copies(resolve_link(&tree, "prod/gone", "nothing.yaml")).is_empty());
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
            ("x/y/parent", ".."),
        ] {
            let message = resolve_link(&tree, link, target)
                .expect_err(link)
                .to_string();
            assert!(
                message.starts_with(&format!("{link}: a symbolic link")),
                "{message}"
            );
        }
    }

    #[test]
    fn joined_paths_stay_inside_the_repository() {
        assert_eq!(
            join_in_repository("charts/web", "values-prod.yaml").as_deref(),
            Some("charts/web/values-prod.yaml")
        );
        assert_eq!(
            join_in_repository("charts/web", "../../env/prod.yaml").as_deref(),
            Some("env/prod.yaml")
        );
        assert_eq!(
            join_in_repository("charts/web", "../../../etc/passwd"),
            None
        );
        assert_eq!(join_in_repository("charts/web", "/etc/passwd"), None);
        assert_eq!(
            join_in_repository("", "values.yaml").as_deref(),
            Some("values.yaml")
        );
    }
}
