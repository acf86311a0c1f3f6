//! Post-build variable substitution, with Flux's semantics: `${var}` in the rendered objects is
//! replaced by a value from `spec.postBuild`, so one repository serves many clusters.
//!
//! The rules are those of Flux's kustomize-controller (its `envsubst`, a dialect of bash
//! parameter expansion), so that a repository moves over unchanged:
//! - only the braced form is substituted (`$var` stays as it is) and `$$` is a literal `$`;
//! - `${var}`, `${#var}` (length), `${var^}` `${var^^}` `${var,}` `${var,,}` (case),
//!   `${var:offset}` `${var:offset:length}`, `${var#glob}` `${var##glob}` `${var%glob}`
//!   `${var%%glob}` (trims), `${var/from/to}` `${var//from/to}` `${var/#from/to}`
//!   `${var/%from/to}` (replacements), and the default forms `${var:=default}`, `${var:-d}`,
//!   `${var=d}`, `${var-d}`, `${var:+d}`, `${var+d}`, `${var:?d}`, `${var?d}`, which all use
//!   the default when the variable is unset or empty (Flux treats them alike); defaults may
//!   hold `${other}`;
//! - strict: a variable that is not set and has no default fails the render, naming it;
//! - variable names are `[_a-zA-Z][_a-zA-Z0-9]*`, and newlines are removed from values.
//!
//! Substitution is textual, over each object's YAML, as in Flux: a value can change an
//! object's structure. An object labelled or annotated
//! `kustomize.toolkit.fluxcd.io/substitute: disabled` is left alone.

mod expand;
mod glob;

use std::collections::BTreeMap;

use zeroize::Zeroizing;

pub use expand::expand;

/// The label or annotation that opts an object out, as in Flux.
pub const DISABLE_KEY: &str = "kustomize.toolkit.fluxcd.io/substitute";

/// Why substitution failed. Messages name variables and places, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubstituteError {
    /// A variable name is not `[_a-zA-Z][_a-zA-Z0-9]*`.
    #[error("{name:?} is not a valid variable name ([_a-zA-Z][_a-zA-Z0-9]*)")]
    InvalidName {
        /// The name.
        name: String,
    },
    /// `${name}` names a variable that is not set, with no default.
    #[error("variable {name:?} is not set (set it in spec.postBuild, or give a default: ${{{name}:=default}})")]
    NotSet {
        /// The name.
        name: String,
    },
    /// A `${` without its `}`, or an expression that is not one of the forms.
    #[error("malformed substitution at byte {offset}: {problem} (write $$ for a literal $)")]
    Malformed {
        /// Where, in the object's YAML.
        offset: usize,
        /// What is wrong.
        problem: &'static str,
    },
}

/// The variables of a substitution. Values are zeroized when dropped: they may come from
/// Secrets.
#[derive(Default, Clone)]
pub struct Variables {
    values: BTreeMap<String, Zeroizing<String>>,
    /// The names whose values came from Secrets.
    secret: std::collections::BTreeSet<String>,
}

impl std::fmt::Debug for Variables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Variables {
    /// Sets `name` (a later value of a name replaces an earlier one). Newlines are removed
    /// from the value, as Flux removes them.
    pub fn insert(&mut self, name: &str, value: &str) -> Result<(), SubstituteError> {
        if !is_variable_name(name) {
            return Err(SubstituteError::InvalidName {
                name: name.to_owned(),
            });
        }
        self.values
            .insert(name.to_owned(), Zeroizing::new(value.replace('\n', "")));
        self.secret.remove(name);
        Ok(())
    }

    /// [`Variables::insert`] of a value read from a Secret: messages never show it.
    pub fn insert_secret(&mut self, name: &str, value: &str) -> Result<(), SubstituteError> {
        self.insert(name, value)?;
        self.secret.insert(name.to_owned());
        Ok(())
    }

    /// The values that came from Secrets, for masking them in messages.
    pub fn secret_values(&self) -> Vec<Zeroizing<String>> {
        self.secret
            .iter()
            .filter_map(|name| self.values.get(name).cloned())
            .collect()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(|v| v.as_str())
    }

    /// Whether no variable is set.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

fn is_variable_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'_' | b'a'..=b'z' | b'A'..=b'Z'))
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Whether an object opted out with the label or annotation.
pub fn is_disabled(object: &serde_json::Value) -> bool {
    ["labels", "annotations"].iter().any(|field| {
        object["metadata"][field][DISABLE_KEY]
            .as_str()
            .is_some_and(|v| v == "disabled")
    })
}

/// Replaces every one of `values` in `text` with `***`: an error from a later stage (an API
/// server's message) may quote substituted text, as Flux learnt.
pub fn mask_values(text: &str, values: &[Zeroizing<String>]) -> String {
    let mut masked = text.to_owned();
    let mut values: Vec<&str> = values
        .iter()
        .map(|v| v.as_str())
        .filter(|v| !v.is_empty())
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for value in values {
        if masked.contains(value) {
            masked = masked.replace(value, "***");
        }
    }
    masked
}

/// Variables from `(name, value)` pairs.
pub fn variables_from<'a>(
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Result<Variables, SubstituteError> {
    let mut vars = Variables::default();
    for (name, value) in pairs {
        vars.insert(name, value)?;
    }
    Ok(vars)
}

#[cfg(test)]
mod tests;
