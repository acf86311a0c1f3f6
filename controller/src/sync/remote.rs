//! Remote kustomize bases (`spec.render.kustomize.allowRemoteBases: true`): a base that
//! names another Git repository (`https://host/org/repo//path?ref=v1`) is fetched by the
//! controller with the same client and the same bounds as the GitSync's own repository, put
//! in the render's copy of the tree under `.sealsync-remote/`, and the kustomization is
//! pointed at that copy. The renderer itself never reaches the network. Only the
//! kustomizations of the GitSync's repository are read for remote bases: a remote base that
//! names another remote base fails the render.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use sealsync_core::render::RenderError;
use sealsync_core::renderer::TreeFile;
use sealsync_core::Revision;

use super::checkout::CheckoutError;
use super::error::Error;
use super::fetch::{self, FetchRequest, SourceError, SourceLimits};

/// Remote repositories one render may fetch.
const MAX_REMOTES: usize = 8;
/// The directory of the tree copy that holds them.
const REMOTE_DIR: &str = ".sealsync-remote";

/// A remote base as kustomize names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RemoteBase {
    /// The repository to clone.
    pub url: String,
    /// The directory in it.
    pub subpath: String,
    /// `?ref=` (or `?version=`): a branch, a tag or a commit.
    pub git_ref: Option<String>,
}

/// A kustomization entry read as a remote base; `None` for a local path. `Err` for a remote
/// form sealsync does not fetch (ssh, a single remote file).
pub(crate) fn parse_remote(entry: &str) -> Option<Result<RemoteBase, &'static str>> {
    let entry = entry.trim();
    let entry = entry.strip_prefix("git::").unwrap_or(entry);
    let (location, query) = entry.split_once('?').unwrap_or((entry, ""));
    let (scheme, rest) = if let Some(rest) = location.strip_prefix("https://") {
        ("https://", rest)
    } else if let Some(rest) = location.strip_prefix("http://") {
        ("http://", rest)
    } else if let Some(rest) = location.strip_prefix("git://") {
        ("git://", rest)
    } else if location.starts_with("ssh://") || location.starts_with("git@") {
        return Some(Err(
            "remote bases over ssh are not fetched: name the repository by its https:// URL",
        ));
    } else if ["github.com/", "gitlab.com/", "bitbucket.org/"]
        .iter()
        .any(|host| location.starts_with(host))
    {
        ("https://", location)
    } else {
        return None;
    };
    let git_ref = query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        matches!(key, "ref" | "version").then(|| value.to_owned())
    });
    let (repo, subpath) = match rest.split_once("//") {
        Some((repo, subpath)) => (repo.to_owned(), subpath.to_owned()),
        None => {
            let parts: Vec<&str> = rest.split('/').collect();
            if let Some(i) = parts.iter().position(|p| p.ends_with(".git")) {
                (parts[..=i].join("/"), parts[i + 1..].join("/"))
            } else if parts.len() >= 3
                && ["github.com", "gitlab.com", "bitbucket.org"].contains(&parts[0])
            {
                (parts[..3].join("/"), parts[3..].join("/"))
            } else {
                return Some(Err("a remote file resource is not fetched (only bases in Git repositories are): vendor it into the repository"));
            }
        }
    };
    let subpath = subpath.trim_matches('/').to_owned();
    if subpath.split('/').any(|p| p == "..") {
        return Some(Err(
            "a remote base's path may not climb out of its repository",
        ));
    }
    Some(Ok(RemoteBase {
        url: format!("{scheme}{repo}"),
        subpath,
        git_ref,
    }))
}

const KUSTOMIZATION_NAMES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fetches every remote base the repository's kustomizations name into `files` and points
/// the kustomizations at the copies.
pub(crate) async fn vendor(
    files: &mut Vec<TreeFile>,
    data_dir: &std::path::Path,
    timeout: Duration,
) -> Result<(), Error> {
    let mut wanted: BTreeMap<(String, Option<String>), String> = BTreeMap::new();
    let mut rewrites: Vec<(usize, String, RemoteBase)> = Vec::new();
    for (index, file) in files.iter().enumerate() {
        let name = file.path.rsplit('/').next().unwrap_or(&file.path);
        if !KUSTOMIZATION_NAMES.contains(&name) {
            continue;
        }
        let Ok(document) = serde_yaml::from_slice::<serde_yaml::Value>(&file.contents) else {
            continue;
        };
        for field in ["resources", "components", "bases"] {
            for entry in document[field].as_sequence().into_iter().flatten() {
                let Some(entry) = entry.as_str() else {
                    continue;
                };
                let Some(parsed) = parse_remote(entry) else {
                    continue;
                };
                let remote = parsed.map_err(|why| refused(&file.path, entry, why))?;
                let key = (remote.url.clone(), remote.git_ref.clone());
                let next = wanted.len();
                wanted.entry(key).or_insert_with(|| format!("{next}"));
                rewrites.push((index, entry.to_owned(), remote));
            }
        }
    }
    if wanted.len() > MAX_REMOTES {
        return Err(Error::Render(RenderError::Limit {
            what: "the number of remote repositories of the kustomizations".to_owned(),
            limit: MAX_REMOTES,
        }));
    }
    for ((url, git_ref), slot) in &wanted {
        let fetched = fetch_remote(url, git_ref.as_deref(), data_dir, timeout).await?;
        files.extend(fetched.into_iter().map(|f| TreeFile {
            path: format!("{REMOTE_DIR}/{slot}/{}", f.path),
            contents: f.contents,
        }));
    }
    for (index, entry, remote) in rewrites {
        let slot = &wanted[&(remote.url.clone(), remote.git_ref.clone())];
        let kustomization = &files[index].path;
        let depth = kustomization.matches('/').count();
        let local = format!(
            "{}{REMOTE_DIR}/{slot}{}{}",
            "../".repeat(depth),
            if remote.subpath.is_empty() { "" } else { "/" },
            remote.subpath
        );
        let text = String::from_utf8_lossy(&files[index].contents).replace(&entry, &local);
        files[index].contents = text.into_bytes();
    }
    Ok(())
}

fn refused(file: &str, entry: &str, why: &str) -> Error {
    Error::Render(RenderError::Renderer {
        path: file.to_owned(),
        engine: "kustomize",
        reason: "RemoteBase".to_owned(),
        message: format!("{}: {why}", sealsync_core::redact::redact_url(entry)),
    })
}

/// Fetches one remote repository at `git_ref` (a commit, else a tag, else a branch; the
/// default branch `main`, else `master`, without one) and reads its whole tree.
async fn fetch_remote(
    url: &str,
    git_ref: Option<&str>,
    data_dir: &std::path::Path,
    timeout: Duration,
) -> Result<Vec<TreeFile>, Error> {
    let revisions: Vec<Revision> = match git_ref {
        Some(r) if r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()) => {
            vec![Revision::Commit(r.to_ascii_lowercase())]
        }
        Some(r) => vec![Revision::Tag(r.to_owned()), Revision::Branch(r.to_owned())],
        None => vec![
            Revision::Branch("main".to_owned()),
            Revision::Branch("master".to_owned()),
        ],
    };
    let digest: String = ring::digest::digest(&ring::digest::SHA256, url.as_bytes())
        .as_ref()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    let repo_dir: PathBuf = data_dir.join("remote-bases").join(digest);
    let mut last = None;
    for revision in revisions {
        let request = FetchRequest {
            url: url.to_owned(),
            revision,
            path: String::new(),
            credentials: None,
            repo_dir: repo_dir.clone(),
            limits: SourceLimits::default(),
            timeout,
            known_commit: None,
            known_files: None,
            read_signatures: false,
        };
        match fetch::fetch(request).await {
            Ok(snapshot) => {
                return fetch::read_whole_tree(&snapshot, SourceLimits::default())
                    .await
                    .map_err(|e| match e {
                        CheckoutError::Source(e) => Error::Source(e),
                        CheckoutError::Render(e) => Error::Render(e),
                    });
            }
            Err(e @ SourceError::RefNotFound { .. }) => last = Some(e),
            Err(e) => return Err(Error::Source(e)),
        }
    }
    Err(Error::Source(last.unwrap_or(SourceError::InvalidUrl {
        reason: "no revision to fetch",
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(entry: &str) -> RemoteBase {
        parse_remote(entry).expect("remote").expect("fetchable")
    }

    #[test]
    fn remote_bases_are_read_as_kustomize_names_them() {
        assert_eq!(
            remote("https://github.com/org/repo//deploy/base?ref=v1.2.0"),
            RemoteBase {
                url: "https://github.com/org/repo".to_owned(),
                subpath: "deploy/base".to_owned(),
                git_ref: Some("v1.2.0".to_owned()),
            }
        );
        assert_eq!(
            remote("github.com/org/repo/deploy?ref=main").url,
            "https://github.com/org/repo"
        );
        assert_eq!(
            remote("github.com/org/repo/deploy?ref=main").subpath,
            "deploy"
        );
        assert_eq!(
            remote("git::https://git.example/team/bases.git/overlay?version=abc").url,
            "https://git.example/team/bases.git"
        );
        assert_eq!(
            remote("git://127.0.0.1:9418/bases.git//base").subpath,
            "base"
        );
        assert!(parse_remote("../base").is_none());
        assert!(parse_remote("deployment.yaml").is_none());
        assert!(matches!(
            parse_remote("git@github.com:org/repo.git"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_remote("https://raw.example/x.yaml"),
            Some(Err(_))
        ));
        assert!(matches!(
            parse_remote("https://h/r.git//../x"),
            Some(Err(_))
        ));
    }
}
