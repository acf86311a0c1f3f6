//! `.sealsync.yaml`: which recipients and scope a path is sealed with, in the manner of
//! `.sops.yaml` creation rules.
//!
//! ```yaml
//! clusters:
//!   staging: { recipients: [age1…] }
//!   prod:    { recipients: [age1…, age1…] }
//! recovery:
//!   recipients: [age1…]          # added to every rule unless it says recovery: false
//! creation_rules:
//!   - path_regex: ^apps/prod/
//!     clusters: [prod]
//!   - path_regex: .*
//!     clusters: [staging, prod]
//!     scope: strict              # optional; strict when absent
//! ```
//! The first rule whose `path_regex` matches the path (relative to the directory that holds
//! `.sealsync.yaml`, with `/` separators) wins.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use regex::Regex;
use sealsync_crypto::{Recipient, Scope};
use serde::Deserialize;

use sealsync_core::manifest::{read_documents, Limits};

use crate::error::{CliError, CliResult};
use crate::fsio;

pub const RULES_FILE: &str = ".sealsync.yaml";
const MAX_RULES_BYTES: usize = 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default)]
    clusters: BTreeMap<String, RecipientList>,
    #[serde(default)]
    recovery: Option<RecipientList>,
    #[serde(default)]
    creation_rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipientList {
    recipients: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path_regex: String,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    recipients: Vec<String>,
    #[serde(default)]
    scope: Option<Scope>,
    #[serde(default = "yes")]
    recovery: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug)]
struct Rule {
    regex: Regex,
    recipients: Vec<Recipient>,
    scope: Option<Scope>,
}

/// A loaded `.sealsync.yaml`.
#[derive(Debug)]
pub struct Rules {
    file: PathBuf,
    root: PathBuf,
    rules: Vec<Rule>,
}

/// What a rule says for one path.
#[derive(Debug)]
pub struct Resolved {
    pub recipients: Vec<Recipient>,
    pub scope: Option<Scope>,
    /// `.sealsync.yaml` rule N, for messages.
    pub source: String,
}

impl Rules {
    /// Finds `.sealsync.yaml` in `start` (a directory, or a file's directory) or the nearest
    /// parent directory, stopping at the root of the Git repository (a directory with `.git`):
    /// a rules file planted above the repository must not choose the recipients.
    fn find(start: &Path) -> Option<PathBuf> {
        let start = absolute(start);
        let mut dir = if start.is_dir() {
            Some(start.as_path())
        } else {
            start.parent()
        };
        while let Some(d) = dir {
            let candidate = d.join(RULES_FILE);
            if candidate.is_file() {
                return Some(candidate);
            }
            if d.join(".git").exists() {
                return None;
            }
            dir = d.parent();
        }
        None
    }

    pub fn load(file: &Path) -> CliResult<Rules> {
        let place = relative_to_cwd(file).display().to_string();
        let text = fsio::read_input(Some(file))?;
        if text.len() > MAX_RULES_BYTES {
            return Err(CliError::new(format!("{place}: larger than 1 MiB")));
        }
        let format_hint = "see the `.sealsync.yaml` section of the README for the format";
        // The same bounded reader as manifests: aliases, nesting and size are limited.
        let docs = read_documents(&text, Limits::small(MAX_RULES_BYTES, 1)).map_err(|e| {
            CliError::from_manifest(&e)
                .context(&place)
                .with_hint(format_hint)
        })?;
        let value = docs
            .first()
            .map(|d| d.value.clone())
            .unwrap_or(serde_yaml::Value::Null);
        let raw: RulesFile = serde_yaml::from_value(value).map_err(|e| {
            CliError::new(format!("{place}: {}", safe_serde_message(&e))).with_hint(format_hint)
        })?;
        let parse_list = |list: &[String], what: &str| -> CliResult<Vec<Recipient>> {
            list.iter()
                .enumerate()
                .map(|(i, r)| {
                    r.parse::<Recipient>().map_err(|e| {
                        CliError::from_crypto(&e).context(format!("{place}: {what}[{i}]"))
                    })
                })
                .collect()
        };
        let mut clusters = BTreeMap::new();
        for (name, list) in &raw.clusters {
            clusters.insert(
                name.clone(),
                parse_list(&list.recipients, &format!("clusters.{name}.recipients"))?,
            );
        }
        let recovery = match &raw.recovery {
            Some(list) => parse_list(&list.recipients, "recovery.recipients")?,
            None => Vec::new(),
        };
        let mut rules = Vec::new();
        for (i, rule) in raw.creation_rules.iter().enumerate() {
            let at = format!("creation_rules[{i}]");
            let regex = Regex::new(&rule.path_regex).map_err(|_| {
                CliError::new(format!(
                    "{place}: {at}.path_regex: not a valid regular expression"
                ))
                .with_hint("path_regex is a regular expression matched against the path")
            })?;
            let mut recipients = Vec::new();
            for cluster in &rule.clusters {
                let list = clusters.get(cluster).ok_or_else(|| {
                    CliError::new(format!(
                        "{place}: {at} names cluster {cluster:?}, which `clusters` does not define"
                    ))
                    .with_hint("add the cluster under `clusters:` with its recipients")
                })?;
                recipients.extend(list.iter().cloned());
            }
            recipients.extend(parse_list(&rule.recipients, &format!("{at}.recipients"))?);
            if rule.recovery {
                recipients.extend(recovery.iter().cloned());
            }
            let mut seen = std::collections::BTreeSet::new();
            recipients.retain(|r| seen.insert(r.as_str().to_owned()));
            rules.push(Rule {
                regex,
                recipients,
                scope: rule.scope,
            });
        }
        let root = absolute(file.parent().unwrap_or(Path::new(".")));
        Ok(Rules {
            file: relative_to_cwd(file),
            root,
            rules,
        })
    }

    /// The rule for `path` (absolute or relative to the working directory).
    pub fn resolve(&self, path: &Path) -> CliResult<Resolved> {
        let abs = absolute(path);
        let rel = abs.strip_prefix(&self.root).unwrap_or(&abs);
        let rel = rel
            .components()
            .filter_map(|c| match c {
                Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/");
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.regex.is_match(&rel) {
                if rule.recipients.is_empty() {
                    return Err(CliError::new(format!(
                        "{}: creation_rules[{i}] matches {rel:?} but lists no recipients",
                        self.file.display()
                    ))
                    .with_hint("give the rule clusters or recipients"));
                }
                return Ok(Resolved {
                    recipients: rule.recipients.clone(),
                    scope: rule.scope,
                    source: format!("{} creation_rules[{i}]", self.file.display()),
                });
            }
        }
        Err(CliError::new(format!(
            "no rule in {} matches {rel:?}",
            self.file.display()
        ))
        .with_hint("add a creation rule whose path_regex matches this path, or pass --recipient"))
    }
}

/// Loaded `.sealsync.yaml` files, so that a walk over many files finds and parses each rules
/// file once rather than once per file.
#[derive(Debug, Default)]
pub struct RulesCache {
    by_dir: HashMap<PathBuf, Option<PathBuf>>,
    by_file: HashMap<PathBuf, Rc<Rules>>,
}

impl RulesCache {
    /// The rules that govern `path`, if any `.sealsync.yaml` lies above it.
    pub fn for_path(&mut self, path: &Path) -> CliResult<Option<Rc<Rules>>> {
        let abs = absolute(path);
        let dir = if abs.is_dir() {
            abs
        } else {
            abs.parent().map(Path::to_path_buf).unwrap_or(abs)
        };
        let file = self
            .by_dir
            .entry(dir)
            .or_insert_with_key(|dir| Rules::find(dir))
            .clone();
        let Some(file) = file else { return Ok(None) };
        if let Some(rules) = self.by_file.get(&file) {
            return Ok(Some(Rc::clone(rules)));
        }
        let rules = Rc::new(Rules::load(&file)?);
        self.by_file.insert(file, Rc::clone(&rules));
        Ok(Some(rules))
    }
}

/// `path` relative to the working directory when it lies below it, for shorter messages.
fn relative_to_cwd(path: &Path) -> PathBuf {
    let abs = absolute(path);
    match std::env::current_dir() {
        Ok(cwd) => abs.strip_prefix(&cwd).map(Path::to_path_buf).unwrap_or(abs),
        Err(_) => abs,
    }
}

/// Lexically absolute (no symlink resolution, so paths that do not exist yet work).
pub fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// serde's message about the rules file without any text it quotes from the file (a
/// recipient, which may be a private key pasted in the wrong place).
fn safe_serde_message(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    let (path, rest) = match msg.split_once(": ") {
        Some((p, r)) if !p.contains(' ') => (format!("{p}: "), r.to_owned()),
        _ => (String::new(), msg.clone()),
    };
    let reason = if rest.starts_with("unknown field") {
        let expected = rest
            .split_once("expected ")
            .map(|(_, e)| e.replace('`', ""));
        format!(
            "an unknown field (expected {})",
            expected.unwrap_or_else(|| "clusters, recovery, creation_rules".to_owned())
        )
    } else if rest.starts_with("missing field") {
        rest.replace('`', "")
    } else if let Some((_, expected)) = rest.split_once("expected ") {
        format!(
            "a value of the wrong type (expected {})",
            expected.replace('`', "")
        )
    } else {
        "does not follow the .sealsync.yaml format".to_owned()
    };
    // The path part names fields of our own format, and map keys (cluster names) the file
    // chose; keep it only when it is made of plain names.
    let path_ok = path.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'[' | b']' | b':' | b' ')
    });
    if path_ok && path.len() <= 120 {
        format!("{path}{reason}")
    } else {
        reason
    }
}
