use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{BindingField, Error, Result};

/// The format version string that is bound into every value and envelope.
pub(crate) const VERSION_TAG: &str = "sealsync/v1";

/// How widely a sealed value may be used, in the Sealed Secrets sense.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only for a Secret of this name in this namespace (the default).
    #[default]
    Strict,
    /// For a Secret of any name in this namespace.
    Namespace,
    /// For a Secret of any name in any namespace.
    Cluster,
}

impl Scope {
    /// The lowercase name used in documents and in the associated data.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Strict => "strict",
            Scope::Namespace => "namespace",
            Scope::Cluster => "cluster",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "strict" => Ok(Scope::Strict),
            "namespace" => Ok(Scope::Namespace),
            "cluster" => Ok(Scope::Cluster),
            other => Err(Error::malformed(
                "spec.scope",
                format!(
                    "unknown scope{}: expected strict, namespace or cluster",
                    if other.len() <= 20 && other.bytes().all(|b| b.is_ascii_alphabetic()) {
                        format!(" {other:?}")
                    } else {
                        String::new()
                    }
                ),
            )),
        }
    }
}

/// Where a sealed value may be opened: the scope, plus the namespace and name that the scope
/// binds. Fields the scope does not bind are empty, so that they cannot influence the
/// associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    scope: Scope,
    namespace: String,
    name: String,
}

impl Binding {
    /// The binding for a Secret at `namespace`/`name` with `scope`.
    pub fn new(scope: Scope, namespace: &str, name: &str) -> Self {
        let namespace = match scope {
            Scope::Cluster => String::new(),
            Scope::Strict | Scope::Namespace => namespace.to_owned(),
        };
        let name = match scope {
            Scope::Strict => name.to_owned(),
            Scope::Namespace | Scope::Cluster => String::new(),
        };
        Binding {
            scope,
            namespace,
            name,
        }
    }

    /// The scope.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The bound namespace (empty for cluster scope).
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The bound name (empty unless strict).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `lp(version) ‖ lp(scope) ‖ lp(namespace) ‖ lp(name)`; see docs/format.md.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(16 + VERSION_TAG.len() + 9 + self.namespace.len() + self.name.len());
        push_lp(&mut out, VERSION_TAG.as_bytes());
        push_lp(&mut out, self.scope.as_str().as_bytes());
        push_lp(&mut out, self.namespace.as_bytes());
        push_lp(&mut out, self.name.as_bytes());
        out
    }

    /// The associated data of one value: the binding followed by `lp(data key name)`.
    pub(crate) fn value_aad(&self, data_key_name: &str) -> Vec<u8> {
        let mut aad = self.encode();
        push_lp(&mut aad, data_key_name.as_bytes());
        aad
    }

    /// Reads an encoded binding from the front of `bytes`, returning it and the rest.
    pub(crate) fn decode(bytes: &[u8]) -> Option<(Binding, &[u8])> {
        let (version, rest) = take_lp(bytes)?;
        if version != VERSION_TAG.as_bytes() {
            return None;
        }
        let (scope, rest) = take_lp(rest)?;
        let scope = std::str::from_utf8(scope).ok()?.parse::<Scope>().ok()?;
        let (namespace, rest) = take_lp(rest)?;
        let (name, rest) = take_lp(rest)?;
        let binding = Binding {
            scope,
            namespace: String::from_utf8(namespace.to_vec()).ok()?,
            name: String::from_utf8(name.to_vec()).ok()?,
        };
        // A binding whose unbound fields are set was not made by `Binding::new`.
        if binding != Binding::new(scope, &binding.namespace, &binding.name) {
            return None;
        }
        Some((binding, rest))
    }

    /// Checks that a value sealed for `self` may sit at `found`, naming the first field that
    /// differs. Scope is checked first: a widened scope must never pass as a rename.
    pub(crate) fn check_matches(&self, found: &Binding) -> Result<()> {
        let mismatch = |field, sealed: &str, found: &str| Error::BindingMismatch {
            field,
            sealed: sealed.to_owned(),
            found: found.to_owned(),
            data_key: None,
        };
        if self.scope != found.scope {
            return Err(mismatch(
                BindingField::Scope,
                self.scope.as_str(),
                found.scope.as_str(),
            ));
        }
        if self.namespace != found.namespace {
            return Err(mismatch(
                BindingField::Namespace,
                &self.namespace,
                &found.namespace,
            ));
        }
        if self.name != found.name {
            return Err(mismatch(BindingField::Name, &self.name, &found.name));
        }
        Ok(())
    }
}

fn push_lp(out: &mut Vec<u8>, field: &[u8]) {
    // Fields are bounded far below 4 GiB by the document limits, so the cast cannot truncate.
    out.extend_from_slice(&(field.len() as u32).to_be_bytes());
    out.extend_from_slice(field);
}

fn take_lp(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len_bytes: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let field = bytes.get(4..4 + len)?;
    Some((field, &bytes[4 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unbound_fields_are_empty() {
        let b = Binding::new(Scope::Namespace, "app", "db");
        assert_eq!(b.name(), "");
        let c = Binding::new(Scope::Cluster, "app", "db");
        assert_eq!((c.namespace(), c.name()), ("", ""));
    }

    #[test]
    fn encode_decode_round_trip() {
        let b = Binding::new(Scope::Strict, "app", "db");
        let mut enc = b.encode();
        enc.extend_from_slice(b"tail");
        let (d, rest) = Binding::decode(&enc).expect("decodes");
        assert_eq!(d, b);
        assert_eq!(rest, b"tail");
    }

    #[test]
    fn aad_is_unambiguous() {
        // Moving a byte between namespace and name must change the associated data.
        let a = Binding::new(Scope::Strict, "ab", "c").value_aad("k");
        let b = Binding::new(Scope::Strict, "a", "bc").value_aad("k");
        assert_ne!(a, b);
    }
}
