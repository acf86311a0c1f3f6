//! Which recipients and scope to seal with: flags first, then `.sealsync.yaml`.

use std::path::{Path, PathBuf};

use clap::Args as ClapArgs;
use sealsync_crypto::{parse_recipients_file, Recipient, Scope};

use crate::error::{CliError, CliResult};
use crate::fsio;
use crate::rules::{Resolved, RulesCache, RULES_FILE};

#[derive(Debug, Clone, ClapArgs)]
pub struct RecipientArgs {
    /// An age X25519 recipient (age1…) to seal to. Repeatable. Overrides .sealsync.yaml.
    #[arg(short = 'r', long = "recipient", value_name = "AGE1…")]
    pub recipients: Vec<String>,
    /// A file of recipients, one per line (# comments allowed). Overrides .sealsync.yaml.
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
}

impl RecipientArgs {
    fn explicit(&self) -> CliResult<Vec<Recipient>> {
        let mut out = Vec::new();
        for (i, r) in self.recipients.iter().enumerate() {
            out.push(r.parse::<Recipient>().map_err(|e| {
                CliError::from_crypto(&e).context(format!("--recipient #{}", i + 1))
            })?);
        }
        if let Some(file) = &self.recipients_file {
            let text = fsio::read_input(Some(file))?;
            let parsed = parse_recipients_file(&text)
                .map_err(|e| CliError::from_crypto(&e).context(file.display()))?;
            if parsed.is_empty() {
                return Err(
                    CliError::new(format!("{}: holds no recipients", file.display()))
                        .with_hint("put one age1… recipient per line"),
                );
            }
            out.extend(parsed);
        }
        Ok(out)
    }

    /// Reads the explicit recipients once; rules files are read as paths need them.
    pub fn resolver(&self) -> CliResult<RecipientResolver> {
        Ok(RecipientResolver {
            explicit: self.explicit()?,
            rules: RulesCache::default(),
        })
    }
}

/// Answers "which recipients for this path" for many paths without re-reading anything.
#[derive(Debug)]
pub struct RecipientResolver {
    explicit: Vec<Recipient>,
    rules: RulesCache,
}

impl RecipientResolver {
    /// The recipients for a file at `path`: the explicit ones, else the `.sealsync.yaml` rule
    /// that matches `path` (None: only explicit recipients can apply).
    pub fn resolve(&mut self, path: Option<&Path>) -> CliResult<Resolved> {
        if !self.explicit.is_empty() {
            return Ok(Resolved {
                recipients: self.explicit.clone(),
                scope: None,
                source: "--recipient".to_owned(),
            });
        }
        let Some(path) = path else {
            return Err(no_recipients());
        };
        match self.rules.for_path(path)? {
            Some(rules) => rules.resolve(path),
            None => Err(no_recipients()),
        }
    }
}

fn no_recipients() -> CliError {
    CliError::new("no recipients to seal to").with_hint(format!(
        "pass --recipient age1… or --recipients-file FILE, or add a {RULES_FILE} with creation \
         rules (match it with -w FILE or --rules-path PATH)"
    ))
}

/// The scope to use: the flag, else the rule's, else strict.
pub fn pick_scope(flag: Option<Scope>, resolved: &Resolved) -> Scope {
    flag.or(resolved.scope).unwrap_or_default()
}
