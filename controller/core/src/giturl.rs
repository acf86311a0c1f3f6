//! What a Git URL says about where its repository lives: the host, the `owner/name` path, and
//! the web page of a commit on the hosts whose page layout is known. Notifications use the
//! first two for commit statuses; `sealsync ui` links revisions with the third.

/// Whether `path` is an `owner/name` path a URL may carry: no empty, `.` or `..` segment, and
/// nothing but letters, digits, `-`, `_` and `.`.
pub fn is_repository_path(path: &str) -> bool {
    path.contains('/')
        && path.len() <= 512
        && path.split('/').all(|s| {
            !s.is_empty()
                && s != "."
                && s != ".."
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
}

/// The host of a Git URL (`https://`, `ssh://`, `git://` or scp-like), lowercase.
pub fn host_of_git_url(url: &str) -> Option<String> {
    let rest = match url.split_once("://") {
        Some((_, rest)) => rest,
        None => url.split_once(':').map(|(host, _)| host)?,
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or(authority);
    let host = host.split(':').next().unwrap_or(host);
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// `owner/name` of a Git URL: its path without `.git`, for `https://`, `ssh://`, `git://`
/// and scp-like `git@host:owner/name.git` URLs alike.
pub fn repository_of(url: &str) -> Option<String> {
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/').map(|(_, path)| path)?,
        // scp-like: user@host:path
        None => url.split_once(':').map(|(_, path)| path)?,
    };
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .trim_matches('/');
    let path = path.strip_suffix(".git").unwrap_or(path);
    is_repository_path(path).then(|| path.to_owned())
}

/// The web page of `commit` (40 hex digits) in the repository of `url`, on the public hosts
/// whose commit page is known: GitHub, GitLab, Codeberg, Gitea and Bitbucket. `None`
/// elsewhere: a self-hosted server's layout cannot be told from its URL.
pub fn commit_page(url: &str, commit: &str) -> Option<String> {
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let host = host_of_git_url(url)?;
    let repository = repository_of(url)?;
    let page = match host.as_str() {
        "github.com" | "codeberg.org" | "gitea.com" => "commit",
        "gitlab.com" => "-/commit",
        "bitbucket.org" => "commits",
        _ => return None,
    };
    Some(format!("https://{host}/{repository}/{page}/{commit}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_is_the_url_path_without_git() {
        for (url, want) in [
            ("https://github.com/acme/shop.git", Some("acme/shop")),
            (
                "https://gitlab.example/group/sub/shop",
                Some("group/sub/shop"),
            ),
            ("ssh://git@github.com:22/acme/shop.git", Some("acme/shop")),
            ("git@github.com:acme/shop.git", Some("acme/shop")),
            ("git://127.0.0.1:9418/acme/shop.git/", Some("acme/shop")),
            ("https://host/shop.git", None),
            ("https://host/a/../b", None),
        ] {
            assert_eq!(repository_of(url).as_deref(), want, "{url}");
        }
    }

    #[test]
    fn the_host_is_lowercase_without_user_or_port() {
        assert_eq!(
            host_of_git_url("git@GitHub.com:acme/shop.git").as_deref(),
            Some("github.com")
        );
        assert_eq!(
            host_of_git_url("ssh://git@ghe.example:2222/a/b").as_deref(),
            Some("ghe.example")
        );
    }

    #[test]
    fn commit_pages_are_linked_on_known_hosts_only() {
        let sha = "5d1e2a0b9c8f7e6d5c4b3a291807f6e5d4c3b2a1";
        for (url, want) in [
            (
                "https://github.com/acme/shop.git",
                Some(format!("https://github.com/acme/shop/commit/{sha}")),
            ),
            (
                "git@gitlab.com:group/sub/shop.git",
                Some(format!("https://gitlab.com/group/sub/shop/-/commit/{sha}")),
            ),
            (
                "ssh://git@bitbucket.org/acme/shop",
                Some(format!("https://bitbucket.org/acme/shop/commits/{sha}")),
            ),
            ("https://git.example/acme/shop.git", None),
            ("https://github.com/acme/shop/../../evil", None),
        ] {
            assert_eq!(commit_page(url, sha), want, "{url}");
        }
        assert_eq!(
            commit_page("https://github.com/acme/shop", "main\"><script>"),
            None
        );
    }
}
