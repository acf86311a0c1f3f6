//! Vault references inside Secret values, in the two forms users already write:
//!
//! - vals: `ref+vault://PATH#KEY` (also `#/KEY`, and `secretref+vault://`), with `?version=N`
//!   for a KV v2 version. Inside a longer string a reference ends at a `+`, as vals reads it:
//!   `postgres://ref+vault://db#user+:ref+vault://db#pass+@host/app`.
//! - The Argo CD Vault Plugin's inline form: `<path:MOUNT/data/PATH#KEY>` and
//!   `<path:MOUNT/data/PATH#KEY#VERSION>`.
//!
//! A reference names only a path, a key and a version. Where Vault is, how to log in, and
//! which namespace to use come from the GitSync, never from Git: vals's `address`,
//! `token_file`, `token_env` and `namespace` parameters, and AVP's modifiers, are refused, so a
//! commit cannot send a secret to another server.

use std::fmt;

mod objects;

pub use objects::{
    reference_outside_secret, secret_values, SecretValue, SecretValues, ValueError, ValueSource,
};

/// The most references one value may hold.
pub const MAX_REFS_PER_VALUE: usize = 16;
/// The longest path of a reference, in bytes.
const MAX_PATH: usize = 1024;
/// The longest key, in bytes.
const MAX_KEY: usize = 256;

/// Which syntax a reference was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RefSyntax {
    /// `ref+vault://…`: the path is the secret's logical path; the KV version of its mount is
    /// found out when it is read.
    Vals,
    /// `<path:…>`: the path is the API path, with `data/` for KV v2.
    Avp,
}

/// One reference to a value in Vault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VaultRef {
    /// The path, without a leading or trailing `/`.
    pub path: String,
    /// The key inside the secret.
    pub key: String,
    /// A KV v2 version; the latest when `None`.
    pub version: Option<u64>,
    /// The syntax it was written in.
    pub syntax: RefSyntax,
}

impl fmt::Display for VaultRef {
    /// The reference as it names a value, for messages: never the value itself.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.path, self.key)?;
        if let Some(v) = self.version {
            write!(f, " (version {v})")?;
        }
        Ok(())
    }
}

/// A piece of a value: literal text, or a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// Text kept as it is.
    Literal(String),
    /// A reference, replaced by its value when resolved.
    Ref(VaultRef),
}

/// Why a value's references could not be read. Messages quote only the reference text, which
/// names a path, never a secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefError {
    /// The reference is malformed.
    #[error("{reference:?}: {reason}")]
    Malformed {
        /// The reference text (cut to 200 bytes).
        reference: String,
        /// What is wrong and how to write it.
        reason: &'static str,
    },
    /// Too many references in one value.
    #[error("more than {limit} Vault references in one value")]
    TooMany {
        /// The limit.
        limit: usize,
    },
}

const VALS_PREFIXES: [&str; 2] = ["ref+vault://", "secretref+vault://"];
const AVP_PREFIX: &str = "<path:";

fn malformed(reference: &str, reason: &'static str) -> RefError {
    let mut end = reference.len().min(200);
    while !reference.is_char_boundary(end) {
        end -= 1;
    }
    RefError::Malformed {
        reference: reference[..end].to_owned(),
        reason,
    }
}

/// Splits `value` into literal text and references. A value without references is one
/// literal (or none, when empty).
pub fn parse(value: &str) -> Result<Vec<Segment>, RefError> {
    let mut segments = Vec::new();
    let mut literal = String::new();
    let mut rest = value;
    let mut refs = 0;
    while !rest.is_empty() {
        let next = next_start(rest);
        let Some((at, kind)) = next else {
            literal.push_str(rest);
            break;
        };
        literal.push_str(&rest[..at]);
        let (reference, used) = match kind {
            Start::Vals(prefix) => parse_vals(&rest[at..], prefix)?,
            Start::Avp => parse_avp(&rest[at..])?,
        };
        refs += 1;
        if refs > MAX_REFS_PER_VALUE {
            return Err(RefError::TooMany {
                limit: MAX_REFS_PER_VALUE,
            });
        }
        if !literal.is_empty() {
            segments.push(Segment::Literal(std::mem::take(&mut literal)));
        }
        segments.push(Segment::Ref(reference));
        rest = &rest[at + used..];
    }
    if !literal.is_empty() {
        segments.push(Segment::Literal(literal));
    }
    Ok(segments)
}

/// Whether `value` holds at least one reference (well-formed or not): such a value is not
/// plaintext in Git.
pub fn mentions_reference(value: &str) -> bool {
    next_start(value).is_some()
}

#[derive(Clone, Copy)]
enum Start {
    Vals(&'static str),
    Avp,
}

fn next_start(text: &str) -> Option<(usize, Start)> {
    let vals = VALS_PREFIXES
        .iter()
        .filter_map(|p| text.find(p).map(|at| (at, Start::Vals(p))))
        .min_by_key(|(at, _)| *at);
    let avp = text.find(AVP_PREFIX).map(|at| (at, Start::Avp));
    match (vals, avp) {
        (Some(v), Some(a)) => Some(if a.0 < v.0 { a } else { v }),
        (v, a) => v.or(a),
    }
}

/// `ref+vault://PATH[?version=N]#KEY[+]`: returns the reference and the bytes it used.
fn parse_vals(text: &str, prefix: &'static str) -> Result<(VaultRef, usize), RefError> {
    let body_start = prefix.len();
    let body_len = text[body_start..]
        .find(|c: char| c == '+' || c.is_whitespace())
        .unwrap_or(text.len() - body_start);
    let body = &text[body_start..body_start + body_len];
    let whole = &text[..body_start + body_len];
    // The `+` that ends an embedded reference belongs to it.
    let used = body_start + body_len + usize::from(text[body_start + body_len..].starts_with('+'));
    let (locator, key) = body.split_once('#').ok_or_else(|| {
        malformed(
            whole,
            "no key: write ref+vault://PATH#KEY (a `+` after the key ends it inside a longer string)",
        )
    })?;
    let key = key.strip_prefix('/').unwrap_or(key);
    let (path, query) = match locator.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (locator, None),
    };
    let mut version = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("version", n)) => {
                version = Some(n.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                    malformed(whole, "version must be a positive whole number")
                })?);
            }
            _ => {
                return Err(malformed(
                    whole,
                    "only ?version=N may follow the path: the Vault address, namespace and login come from the GitSync's spec.vault, never from Git",
                ))
            }
        }
    }
    Ok((
        VaultRef {
            path: check_path(whole, path)?,
            key: check_key(whole, key)?,
            version,
            syntax: RefSyntax::Vals,
        },
        used,
    ))
}

/// `<path:MOUNT/data/PATH#KEY[#VERSION]>`: returns the reference and the bytes it used.
fn parse_avp(text: &str) -> Result<(VaultRef, usize), RefError> {
    let end = text.find('>').ok_or_else(|| {
        // Only the reference's own first word is quoted: what follows may be a literal value.
        let word = text.split(char::is_whitespace).next().unwrap_or_default();
        malformed(
            word,
            "no closing `>`: write <path:MOUNT/data/PATH#KEY> or <path:MOUNT/data/PATH#KEY#VERSION>",
        )
    })?;
    let whole = &text[..=end];
    let body = &text[AVP_PREFIX.len()..end];
    if body.contains('|') {
        return Err(malformed(
            whole,
            "AVP modifiers (| base64encode, | jsonPath, …) are not supported: reference the value itself",
        ));
    }
    let mut parts = body.split('#');
    let path = parts.next().unwrap_or_default().trim();
    let key = parts
        .next()
        .map(str::trim)
        .ok_or_else(|| malformed(whole, "no key: write <path:MOUNT/data/PATH#KEY>"))?;
    let version = match parts.next() {
        None => None,
        Some(v) => Some(
            v.trim()
                .parse::<u64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| {
                    malformed(
                        whole,
                        "the version after the second # must be a positive whole number",
                    )
                })?,
        ),
    };
    if parts.next().is_some() {
        return Err(malformed(
            whole,
            "too many #: write <path:MOUNT/data/PATH#KEY#VERSION>",
        ));
    }
    Ok((
        VaultRef {
            path: check_path(whole, path)?,
            key: check_key(whole, key)?,
            version,
            syntax: RefSyntax::Avp,
        },
        end + 1,
    ))
}

fn check_path(whole: &str, path: &str) -> Result<String, RefError> {
    let path = path.trim_matches('/');
    if path.is_empty() {
        return Err(malformed(whole, "the path is empty"));
    }
    if path.len() > MAX_PATH {
        return Err(malformed(whole, "the path is longer than 1024 bytes"));
    }
    let clean = path.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@=:,".contains(&b))
    });
    if !clean {
        return Err(malformed(
            whole,
            "the path may hold letters, digits and - _ . @ = : , between single slashes, and no . or .. segment",
        ));
    }
    Ok(path.to_owned())
}

fn check_key(whole: &str, key: &str) -> Result<String, RefError> {
    if key.is_empty() {
        return Err(malformed(whole, "the key after # is empty"));
    }
    if key.len() > MAX_KEY || key.chars().any(char::is_control) {
        return Err(malformed(
            whole,
            "the key must be at most 256 bytes, without control characters",
        ));
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only_ref(value: &str) -> VaultRef {
        match parse(value).expect("parses").as_slice() {
            [Segment::Ref(r)] => r.clone(),
            other => panic!("{value}: {other:?}"),
        }
    }

    #[test]
    fn vals_references_with_and_without_versions() {
        let r = only_ref("ref+vault://secret/app/db#password");
        assert_eq!(
            r,
            VaultRef {
                path: "secret/app/db".into(),
                key: "password".into(),
                version: None,
                syntax: RefSyntax::Vals
            }
        );
        let r = only_ref("ref+vault://secret/app/db?version=3#/password");
        assert_eq!((r.key.as_str(), r.version), ("password", Some(3)));
        assert_eq!(only_ref("secretref+vault://kv/x#k").path, "kv/x");
        assert_eq!(r.to_string(), "secret/app/db#password (version 3)");
    }

    #[test]
    fn avp_references_with_and_without_versions() {
        let r = only_ref("<path:secret/data/app#password>");
        assert_eq!(
            (r.path.as_str(), r.key.as_str(), r.version, r.syntax),
            ("secret/data/app", "password", None, RefSyntax::Avp)
        );
        assert_eq!(
            only_ref("<path:secret/data/app#password#2>").version,
            Some(2)
        );
    }

    #[test]
    fn references_inside_a_longer_string() {
        let segments =
            parse("postgres://ref+vault://db/app#user+:<path:kv/data/db#pass>@db:5432/app")
                .expect("parses");
        let shapes: Vec<String> = segments
            .iter()
            .map(|s| match s {
                Segment::Literal(t) => format!("'{t}'"),
                Segment::Ref(r) => format!("<{r}>"),
            })
            .collect();
        assert_eq!(
            shapes,
            [
                "'postgres://'",
                "<db/app#user>",
                "':'",
                "<kv/data/db#pass>",
                "'@db:5432/app'"
            ]
        );
        assert!(mentions_reference("x ref+vault://a#b"));
        assert!(!mentions_reference("plain value"));
        assert_eq!(
            parse("plain").expect("parses"),
            [Segment::Literal("plain".into())]
        );
        assert!(parse("").expect("parses").is_empty());
    }

    #[test]
    fn the_server_and_login_cannot_come_from_git() {
        for bad in [
            "ref+vault://secret/app?address=https://evil.example#k",
            "ref+vault://secret/app?token_file=/var/run/token#k",
            "ref+vault://secret/app?namespace=other&version=1#k",
        ] {
            let err = parse(bad).expect_err(bad).to_string();
            assert!(err.contains("spec.vault"), "{err}");
        }
    }

    #[test]
    fn malformed_references_say_how_to_write_them() {
        let cases = [
            ("ref+vault://secret/app", "no key"),
            ("ref+vault://secret/app#", "key after # is empty"),
            (
                "ref+vault://secret/app?version=0#k",
                "positive whole number",
            ),
            ("ref+vault://secret/../keys#k", "no . or .. segment"),
            ("ref+vault://#k", "path is empty"),
            ("<path:secret/data/app#k", "no closing"),
            ("<path:secret/data/app>", "no key"),
            ("<path:secret/data/app#k#x>", "positive whole number"),
            ("<path:secret/data/app#k#1#2>", "too many #"),
            ("<path:secret/data/app#k | base64encode>", "modifiers"),
        ];
        for (value, want) in cases {
            let err = parse(value).expect_err(value).to_string();
            assert!(err.contains(want), "{value}: {err}");
        }
        let many = "ref+vault://a#b+".repeat(MAX_REFS_PER_VALUE + 1);
        assert_eq!(
            parse(&many),
            Err(RefError::TooMany {
                limit: MAX_REFS_PER_VALUE
            })
        );
    }

    #[test]
    fn errors_never_quote_more_than_the_reference() {
        for value in [
            "ref+vault://secret/app s3cr3t-literal",
            "<path:secret/data/app#k s3cr3t-literal",
        ] {
            let err = parse(value).expect_err(value).to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
    }
}
