//! Chart versions and version constraints with the semantics Helm uses (the Masterminds
//! `semver` package): `1.2.3` alone is an exact version (unlike Cargo's caret), `^1.2`, `~1.2.3`,
//! `>=1.0 <2.0` (AND by space or comma), `a || b` (OR), `1.2.x` and `*` wildcards, hyphen
//! ranges `1.2 - 1.4.5`, a leading `v`, and prereleases matched only by a comparator that
//! names a prerelease of its own.

use std::cmp::Ordering;
use std::fmt;

/// A chart version: `MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]`, with a leading `v` and missing
/// minor or patch allowed, as Helm reads index files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartVersion {
    major: u64,
    minor: u64,
    patch: u64,
    pre: Vec<String>,
    text: String,
}

impl fmt::Display for ChartVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ChartVersion {
    /// Parses a version; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        let body = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let (body, _build) = body.split_once('+').unwrap_or((body, ""));
        let (core, pre) = match body.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (body, None),
        };
        let mut parts = core.split('.');
        let number = |p: Option<&str>| -> Option<u64> {
            match p {
                None => Some(0),
                Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => p.parse().ok(),
                Some(_) => None,
            }
        };
        let major = number(Some(parts.next()?))?;
        let minor = number(parts.next())?;
        let patch = number(parts.next())?;
        if parts.next().is_some() {
            return None;
        }
        let pre: Vec<String> = match pre {
            Some("") => return None,
            Some(pre) => pre.split('.').map(str::to_owned).collect(),
            None => Vec::new(),
        };
        if pre
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
            pre,
            text: trimmed.to_owned(),
        })
    }

    /// Whether it is a prerelease.
    pub fn is_prerelease(&self) -> bool {
        !self.pre.is_empty()
    }

    fn triple(&self) -> (u64, u64, u64) {
        (self.major, self.minor, self.patch)
    }
}

impl PartialOrd for ChartVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ChartVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.triple().cmp(&other.triple()).then_with(|| {
            match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre(&self.pre, &other.pre),
            }
        })
    }
}

fn compare_pre(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if order != Ordering::Equal {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// A constraint such as `^1.2 || >=2.1.0-0 <3`.
#[derive(Debug, Clone)]
pub struct Constraint {
    /// OR of AND groups.
    groups: Vec<Vec<Comparator>>,
}

#[derive(Debug, Clone)]
struct Comparator {
    op: Op,
    version: ChartVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// Why a constraint did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{constraint:?} is not a version constraint: {problem}")]
pub struct ConstraintError {
    constraint: String,
    problem: &'static str,
}

/// The longest constraint read, as Masterminds bounds it.
const MAX_CONSTRAINT_LEN: usize = 1024;

impl Constraint {
    /// Parses a constraint; `""` means any version.
    pub fn parse(text: &str) -> Result<Self, ConstraintError> {
        let error = |problem| ConstraintError {
            constraint: text.chars().take(80).collect(),
            problem,
        };
        if text.len() > MAX_CONSTRAINT_LEN {
            return Err(error("longer than 1024 characters"));
        }
        let mut groups = Vec::new();
        for alternative in text.split("||") {
            let mut group = Vec::new();
            let normalized = alternative.replace(',', " ");
            let tokens: Vec<&str> = normalized.split_whitespace().collect();
            let mut i = 0;
            while i < tokens.len() {
                // `1.2 - 1.4.5` (also `1.2 -1.4.5`? no: Masterminds needs the spaces).
                if tokens.get(i + 1) == Some(&"-") && i + 2 < tokens.len() {
                    let low = parse_partial(tokens[i]).ok_or_else(|| error("a bad version"))?;
                    let high =
                        parse_partial(tokens[i + 2]).ok_or_else(|| error("a bad version"))?;
                    group.push(Comparator {
                        op: Op::Ge,
                        version: low.floor(),
                    });
                    group.extend(high.upper_inclusive());
                    i += 3;
                    continue;
                }
                let (op, rest) = split_operator(tokens[i]);
                let rest = if rest.is_empty() {
                    // `>= 1.2`: the operator and its version apart.
                    i += 1;
                    tokens
                        .get(i)
                        .copied()
                        .ok_or_else(|| error("an operator without a version"))?
                } else {
                    rest
                };
                let partial = parse_partial(rest).ok_or_else(|| error("a bad version"))?;
                group.extend(
                    partial
                        .comparators(op)
                        .ok_or_else(|| error("an unsupported operator"))?,
                );
                i += 1;
            }
            if group.is_empty() {
                // `*`-like: any release.
                group.push(Comparator {
                    op: Op::Ge,
                    version: zero(),
                });
            }
            groups.push(group);
        }
        Ok(Self { groups })
    }

    /// Whether `version` satisfies the constraint.
    pub fn matches(&self, version: &ChartVersion) -> bool {
        self.groups.iter().any(|group| {
            // A prerelease is considered only by a group that names a prerelease of the same
            // major.minor.patch.
            if version.is_prerelease()
                && !group
                    .iter()
                    .any(|c| c.version.is_prerelease() && c.version.triple() == version.triple())
            {
                return false;
            }
            group.iter().all(|c| c.matches(version))
        })
    }

    /// The version of `available` Helm picks: an exact string match first, else the highest
    /// that satisfies the constraint.
    pub fn pick<'a>(
        text: &str,
        available: &'a [ChartVersion],
    ) -> Result<Option<&'a ChartVersion>, ConstraintError> {
        if let Some(exact) = available.iter().find(|v| v.text == text.trim()) {
            return Ok(Some(exact));
        }
        let constraint = Constraint::parse(text)?;
        Ok(available.iter().filter(|v| constraint.matches(v)).max())
    }
}

fn zero() -> ChartVersion {
    ChartVersion {
        major: 0,
        minor: 0,
        patch: 0,
        pre: Vec::new(),
        text: "0.0.0".to_owned(),
    }
}

impl Comparator {
    fn matches(&self, v: &ChartVersion) -> bool {
        let order = v.cmp(&self.version);
        match self.op {
            Op::Eq => order == Ordering::Equal,
            Op::Ne => order != Ordering::Equal,
            Op::Gt => order == Ordering::Greater,
            Op::Ge => order != Ordering::Less,
            Op::Lt => order == Ordering::Less,
            Op::Le => order != Ordering::Greater,
        }
    }
}

fn split_operator(token: &str) -> (&str, &str) {
    for op in [">=", "<=", "!=", "=>", "=<", ">", "<", "=", "~>", "~", "^"] {
        if let Some(rest) = token.strip_prefix(op) {
            return (op, rest);
        }
    }
    ("", token)
}

/// A version in a constraint, where parts may be missing or wildcards (`1`, `1.2`, `1.2.x`).
struct Partial {
    parts: [Option<u64>; 3],
    pre: Vec<String>,
    text: String,
}

fn parse_partial(text: &str) -> Option<Partial> {
    let body = text.strip_prefix('v').unwrap_or(text);
    let (body, _) = body.split_once('+').unwrap_or((body, ""));
    let (core, pre) = match body.split_once('-') {
        Some((c, p)) => (c, p.split('.').map(str::to_owned).collect()),
        None => (body, Vec::new()),
    };
    let mut parts = [None, None, None];
    let pieces: Vec<&str> = core.split('.').collect();
    if pieces.len() > 3 || pieces.is_empty() {
        return None;
    }
    let mut wildcard = false;
    for (i, piece) in pieces.iter().enumerate() {
        if matches!(*piece, "x" | "X" | "*") {
            wildcard = true;
        } else if wildcard {
            return None;
        } else {
            parts[i] = Some(piece.parse().ok()?);
        }
    }
    Some(Partial {
        parts,
        pre,
        text: text.to_owned(),
    })
}

impl Partial {
    fn version(&self, parts: [u64; 3]) -> ChartVersion {
        ChartVersion {
            major: parts[0],
            minor: parts[1],
            patch: parts[2],
            pre: self.pre.clone(),
            text: self.text.clone(),
        }
    }

    fn release(parts: [u64; 3], text: &str) -> ChartVersion {
        ChartVersion {
            major: parts[0],
            minor: parts[1],
            patch: parts[2],
            pre: Vec::new(),
            text: text.to_owned(),
        }
    }

    /// The lowest version it names.
    fn floor(&self) -> ChartVersion {
        self.version(self.parts.map(|p| p.unwrap_or(0)))
    }

    /// `<=` this partial version, missing parts as wildcards.
    fn upper_inclusive(&self) -> Vec<Comparator> {
        match self.parts {
            [Some(_), Some(_), Some(_)] => vec![Comparator {
                op: Op::Le,
                version: self.floor(),
            }],
            [Some(major), Some(minor), None] => vec![Comparator {
                op: Op::Lt,
                version: Self::release([major, minor.saturating_add(1), 0], &self.text),
            }],
            [Some(major), None, _] => vec![Comparator {
                op: Op::Lt,
                version: Self::release([major.saturating_add(1), 0, 0], &self.text),
            }],
            _ => Vec::new(),
        }
    }

    fn comparators(&self, op: &str) -> Option<Vec<Comparator>> {
        let floor = self.floor();
        let [major, minor, patch] = self.parts;
        let any = major.is_none();
        Some(match op {
            "" | "=" => match (major, minor, patch) {
                (Some(_), Some(_), Some(_)) => vec![Comparator {
                    op: Op::Eq,
                    version: floor,
                }],
                _ if any => Vec::new(),
                _ => {
                    let mut range = vec![Comparator {
                        op: Op::Ge,
                        version: floor,
                    }];
                    range.extend(self.upper_inclusive());
                    range
                }
            },
            "!=" => {
                if any {
                    return None;
                }
                vec![Comparator {
                    op: Op::Ne,
                    version: floor,
                }]
            }
            ">" => match (major, minor, patch) {
                (Some(_), Some(_), Some(_)) => vec![Comparator {
                    op: Op::Gt,
                    version: floor,
                }],
                (Some(ma), Some(mi), None) => vec![Comparator {
                    op: Op::Ge,
                    version: Self::release([ma, mi.saturating_add(1), 0], &self.text),
                }],
                (Some(ma), None, _) => vec![Comparator {
                    op: Op::Ge,
                    version: Self::release([ma.saturating_add(1), 0, 0], &self.text),
                }],
                _ => return None,
            },
            ">=" | "=>" => {
                if any {
                    Vec::new()
                } else {
                    vec![Comparator {
                        op: Op::Ge,
                        version: floor,
                    }]
                }
            }
            "<" => {
                if any {
                    return None;
                }
                vec![Comparator {
                    op: Op::Lt,
                    version: floor,
                }]
            }
            "<=" | "=<" => {
                if any {
                    Vec::new()
                } else {
                    self.upper_inclusive()
                }
            }
            "~" | "~>" => {
                let ma = major?;
                let upper = match minor {
                    Some(mi) => [ma, mi.saturating_add(1), 0],
                    None => [ma.saturating_add(1), 0, 0],
                };
                vec![
                    Comparator {
                        op: Op::Ge,
                        version: floor,
                    },
                    Comparator {
                        op: Op::Lt,
                        version: Self::release(upper, &self.text),
                    },
                ]
            }
            "^" => {
                let ma = major?;
                let upper = match (ma, minor, patch) {
                    (0, Some(0), Some(p)) => [0, 0, p.saturating_add(1)],
                    (0, Some(mi), _) if mi > 0 || patch.is_none() => [0, mi.saturating_add(1), 0],
                    (0, None, _) => [1, 0, 0],
                    (ma, _, _) => [ma.saturating_add(1), 0, 0],
                };
                vec![
                    Comparator {
                        op: Op::Ge,
                        version: floor,
                    },
                    Comparator {
                        op: Op::Lt,
                        version: Self::release(upper, &self.text),
                    },
                ]
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn versions(list: &[&str]) -> Vec<ChartVersion> {
        list.iter()
            .map(|v| ChartVersion::parse(v).expect(v))
            .collect()
    }

    fn picks(constraint: &str, list: &[&str]) -> Option<String> {
        let available = versions(list);
        Constraint::pick(constraint, &available)
            .expect(constraint)
            .map(|v| v.to_string())
    }

    #[test]
    fn constraints_read_as_helm_reads_them() {
        let all = [
            "0.9.0",
            "1.0.0",
            "1.2.3",
            "1.2.9",
            "1.3.0",
            "1.10.0",
            "2.0.0-rc.1",
            "2.0.0",
            "2.1.0",
            "v3.0.0",
        ];
        for (constraint, want) in [
            ("1.2.3", Some("1.2.3")),
            ("=1.2.3", Some("1.2.3")),
            ("1.2", Some("1.2.9")),
            ("1.2.x", Some("1.2.9")),
            ("1", Some("1.10.0")),
            ("^1.2.3", Some("1.10.0")),
            ("~1.2.3", Some("1.2.9")),
            ("~1", Some("1.10.0")),
            (">=1.0 <2.0", Some("1.10.0")),
            (">=1.0, <1.3", Some("1.2.9")),
            ("> 1.2.9 < 1.10", Some("1.3.0")),
            ("<1.0.0 || 2.0.0", Some("2.0.0")),
            ("1.2 - 1.3", Some("1.3.0")),
            ("!=2.1.0 >=2 <3", Some("2.0.0")),
            ("*", Some("v3.0.0")),
            ("", Some("v3.0.0")),
            ("3.0.0", Some("v3.0.0")),
            ("v2.0.0", Some("2.0.0")),
            ("^0.9", Some("0.9.0")),
            (">=2.0.0-0 <2.0.0", Some("2.0.0-rc.1")),
            ("2.0.0-rc.1", Some("2.0.0-rc.1")),
            (">5", None),
        ] {
            assert_eq!(picks(constraint, &all).as_deref(), want, "{constraint}");
        }
    }

    #[test]
    fn prereleases_only_when_asked_for() {
        let all = ["1.0.0", "1.1.0-beta.1", "1.1.0-beta.2"];
        assert_eq!(picks(">=1.0.0", &all).as_deref(), Some("1.0.0"));
        assert_eq!(
            picks(">=1.1.0-beta.1", &all).as_deref(),
            Some("1.1.0-beta.2")
        );
        let order = versions(&[
            "1.1.0-alpha",
            "1.1.0-alpha.1",
            "1.1.0-beta",
            "1.1.0-beta.2",
            "1.1.0-beta.11",
            "1.1.0-rc.1",
            "1.1.0",
        ]);
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }

    #[test]
    fn bad_constraints_and_versions_are_refused() {
        for bad in ["^", ">= ", "1.2.3.4", "a.b", "~x"] {
            assert!(Constraint::parse(bad).is_err(), "{bad}");
        }
        assert!(Constraint::parse(&"1 ".repeat(600)).is_err());
        for bad in ["", "1.x.3", "1.2.3-", "01a"] {
            assert!(ChartVersion::parse(bad).is_none(), "{bad}");
        }
    }
}
