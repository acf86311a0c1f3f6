//! Building pages as strings: escaping, the page shell, and the small pieces every page uses.
//! Every value from the cluster goes through [`esc`] (text and attributes alike); the only
//! links made from cluster data are our own paths, percent-encoded, and commit pages that
//! `sealsync_core::giturl::commit_page` built from a checked path and a hex commit id.

use std::fmt::Write as _;

/// `text` escaped for an HTML text node or a double-quoted attribute.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\r' => out.push_str("&#13;"),
            c => out.push(c),
        }
    }
    out
}

/// One path segment, percent-encoded (names are DNS labels, but nothing here relies on it);
/// `.` and `..` are encoded too, so a segment never walks up the path.
pub fn seg(text: &str) -> String {
    if text == "." || text == ".." {
        return text.replace('.', "%2E");
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The path of one GitSync's page.
pub fn gitsync_path(namespace: &str, name: &str) -> String {
    format!("/gitsyncs/{}/{}", seg(namespace), seg(name))
}

/// Which navigation entry is the current page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    GitSyncs,
    Keys,
}

/// A whole page: the shell around `main` (which live updates replace), with `flash` (an
/// alert about the last action) above it.
pub fn page(
    title: &str,
    section: Section,
    context: &str,
    live_path: &str,
    flash: &str,
    main: &str,
) -> String {
    let current = |s: Section| {
        if s == section {
            " aria-current=\"page\""
        } else {
            ""
        }
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · sealsync</title>\n\
         <link rel=\"stylesheet\" href=\"/static/ui.css\">\n\
         <script src=\"/static/live.js\" defer></script>\n</head>\n<body>\n\
         <header>\n<a class=\"brand\" href=\"/\">sealsync</a>\n\
         <nav aria-label=\"Sections\"><ul>\
         <li><a href=\"/\"{gs}>GitSyncs</a></li>\
         <li><a href=\"/keys\"{keys}>Keys</a></li></ul></nav>\n\
         <p class=\"context\">Cluster context: <span>{context}</span></p>\n\
         <p id=\"live-status\" class=\"live\" role=\"status\" aria-live=\"polite\">Live updates need script; reload to refresh.</p>\n\
         </header>\n{flash}\
         <main id=\"main\" data-live=\"{live}\">\n{main}</main>\n</body>\n</html>\n",
        title = esc(title),
        gs = current(Section::GitSyncs),
        keys = current(Section::Keys),
        context = esc(context),
        live = esc(live_path),
    )
}

/// A page's content in parts, which live updates send and replace one by one: a change to a
/// GitSync's state does not send its tree of thousands of objects again.
#[derive(Debug, Default)]
pub struct Parts(pub Vec<(&'static str, String)>);

impl Parts {
    /// Content of one part.
    pub fn one(html: String) -> Parts {
        Parts(vec![("all", html)])
    }

    /// The content as served: each part in an element that names it.
    pub fn html(&self) -> String {
        let mut out = String::new();
        for (id, html) in &self.0 {
            out.push_str(&format!(
                "<div class=\"part\" data-part=\"{id}\">\n{html}</div>\n"
            ));
        }
        out
    }
}

/// An alert above the content about the outcome of an action.
pub fn flash(ok: bool, message: &str) -> String {
    let class = if ok { "flash ok" } else { "flash error" };
    format!(
        "<div class=\"{class}\" role=\"alert\">{}</div>\n",
        esc(message)
    )
}

/// A notice inside the content: why a list is empty or partial (forbidden, not reachable).
pub fn notice(class: &str, message: &str) -> String {
    format!("<p class=\"notice {class}\">{}</p>\n", esc(message))
}

/// A status badge: `Ready`, `False`, `Current`, …, with a class for its colour.
pub fn badge(text: &str, tone: Tone) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        tone.class(),
        esc(text)
    )
}

/// The colour of a badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Busy,
    Quiet,
}

impl Tone {
    fn class(self) -> &'static str {
        match self {
            Tone::Good => "good",
            Tone::Bad => "bad",
            Tone::Busy => "busy",
            Tone::Quiet => "quiet",
        }
    }
}

/// `<branch>@sha1:<hex>` split into the branch (or tag) and the commit id.
pub fn split_revision(revision: &str) -> (&str, Option<&str>) {
    match revision.rsplit_once("@sha1:") {
        Some((name, sha)) => (name, Some(sha)),
        None => match revision.strip_prefix("sha1:") {
            Some(sha) => ("", Some(sha)),
            None => (revision, None),
        },
    }
}

/// A revision as `branch@1a2b3c4`, linked to the commit's page where the host is known.
pub fn revision(url: &str, revision: Option<&str>) -> String {
    let Some(revision) = revision else {
        return "<span class=\"quiet\">none</span>".to_owned();
    };
    let (name, sha) = split_revision(revision);
    let Some(sha) = sha else {
        return format!("<code>{}</code>", esc(revision));
    };
    let short = sha.get(..7).unwrap_or(sha);
    let label = if name.is_empty() {
        short.to_owned()
    } else {
        format!("{name}@{short}")
    };
    let code = format!(
        "<code title=\"{}\" data-sha=\"{}\">{}</code>",
        esc(revision),
        esc(sha),
        esc(&label)
    );
    match sealsync_core::giturl::commit_page(url, sha) {
        Some(page) => format!(
            "<a href=\"{}\" rel=\"noreferrer noopener\" target=\"_blank\">{code}</a>",
            esc(&page)
        ),
        None => code,
    }
}

/// A Git URL fit to show: any user name or password in it replaced by `***`.
pub fn display_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        // scp-like `user@host:path`: whatever comes before the host is hidden.
        let head = url.split('/').next().unwrap_or_default();
        return match head.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_owned(),
        };
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{path}"),
        None => format!("{scheme}://{authority}{path}"),
    }
}

/// A Kubernetes timestamp as `2026-12-07 21:52:12 UTC`, in a `<time>` element.
pub fn time(rfc3339: Option<&str>) -> String {
    match rfc3339 {
        Some(t) if !t.is_empty() => {
            let shown = t.replacen('T', " ", 1).replace('Z', " UTC");
            format!("<time datetime=\"{}\">{}</time>", esc(t), esc(&shown))
        }
        _ => "<span class=\"quiet\">never</span>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_text_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\" onclick='y'>&</a>"),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(seg("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(
            display_url("https://bot:s3cret@git.example/acme/shop.git?token=x#y"),
            "https://***@git.example/acme/shop.git"
        );
        assert_eq!(
            display_url("ssh://git@github.com/acme/shop"),
            "ssh://***@github.com/acme/shop"
        );
        assert_eq!(
            display_url("git@github.com:acme/shop.git"),
            "***@github.com:acme/shop.git"
        );
        assert_eq!(
            display_url("bot:tok@git.example:acme/shop"),
            "***@git.example:acme/shop"
        );
        assert_eq!(seg(".."), "%2E%2E");
    }

    #[test]
    fn revisions_are_short_and_linked_on_known_hosts() {
        let sha = "5d1e2a0b9c8f7e6d5c4b3a291807f6e5d4c3b2a1";
        let rev = format!("main@sha1:{sha}");
        let linked = revision("https://github.com/acme/shop.git", Some(&rev));
        assert!(linked.contains(&format!("https://github.com/acme/shop/commit/{sha}")));
        assert!(linked.contains(">main@5d1e2a0<"));
        let plain = revision("git://127.0.0.1/acme/shop.git", Some(&rev));
        assert!(!plain.contains("href"));
        let hostile = revision("https://github.com/a/b", Some("<script>@sha1:zz"));
        assert!(!hostile.contains("<script>"), "{hostile}");
    }
}
