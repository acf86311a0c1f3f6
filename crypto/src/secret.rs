//! Plain Kubernetes Secrets: what goes into sealing and comes out of opening.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Plaintext values by data key name, each wiped on drop.
pub type SecretData = BTreeMap<String, Zeroizing<Vec<u8>>>;

/// The most values one Secret may hold.
pub const MAX_VALUES: usize = 4096;
/// Kubernetes refuses Secrets over 1 MiB; so do we.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// A Kubernetes Secret with its values in plaintext. `Debug` never shows the values.
#[derive(Default)]
pub struct PlainSecret {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`, if set.
    pub namespace: Option<String>,
    /// `type`, if set (Kubernetes defaults it to Opaque).
    pub type_: Option<String>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `immutable`, if set.
    pub immutable: Option<bool>,
    /// The values.
    pub data: SecretData,
}

impl std::fmt::Debug for PlainSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainSecret")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("type", &self.type_)
            .field("keys", &self.data.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Checks a data key name the way the API server does: `[-._a-zA-Z0-9]+`, at most 253 bytes.
pub fn validate_data_key(key: &str) -> Result<()> {
    let ok = !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        && key != "."
        && key != "..";
    if ok {
        Ok(())
    } else {
        // The key is not repeated: it may be a value typed where a key belongs.
        Err(Error::malformed(
            "a data key",
            "a data key must consist of alphanumerics, '-', '_' or '.' (at most 253)",
        ))
    }
}

/// The annotation kubectl writes on `apply --save-config` and `create --save-config`: a
/// copy of the whole object as applied, values included. Never carried into a sealed file.
pub const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kube-apiserver refuses annotations larger than this in total; so do we.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// Values shorter than this are not searched for inside other strings: a short value such
/// as `true` or `8080` occurs by chance.
pub const MIN_EXPOSURE_SEARCH_BYTES: usize = 8;

/// `FIELD.KEY` when `key` is a valid data key (safe to print), else `FIELD[#N]`: a key that is
/// not a valid name may be a value typed in the wrong place, or arbitrarily long.
pub fn entry_location(field: &str, key: Option<&str>, index: usize) -> String {
    match key {
        Some(k) if validate_data_key(k).is_ok() => format!("{field}.{k}"),
        _ => format!("{field}[#{}]", index + 1),
    }
}

impl PlainSecret {
    /// Checks what the API server would refuse, and what must never be sealed: the name and
    /// namespace, the type, the number and size of values, data key names, the size of the
    /// annotations, and a label or annotation that holds one of the values. No error quotes a
    /// value.
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::malformed("metadata.name", "the Secret has no name"));
        }
        if !crate::names::is_object_name(&self.name) {
            return Err(Error::malformed(
                "metadata.name",
                "not a valid Secret name (a lowercase RFC 1123 subdomain, at most 253 characters)",
            ));
        }
        if let Some(ns) = &self.namespace {
            if !crate::names::is_dns_label(ns) {
                return Err(Error::malformed(
                    "metadata.namespace",
                    "not a valid namespace (a lowercase RFC 1123 label, at most 63 characters)",
                ));
            }
        }
        if let Some(t) = &self.type_ {
            if !(crate::names::is_qualified_name(t) && t.len() <= 253) {
                return Err(Error::malformed(
                    "type",
                    "not a valid Secret type (letters, digits, '-', '.', '_' and '/')",
                ));
            }
        }
        let annotation_bytes: usize = self
            .annotations
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum();
        if annotation_bytes > MAX_ANNOTATION_BYTES {
            return Err(Error::LimitExceeded {
                what: "the size of metadata.annotations".to_owned(),
                limit: format!("{MAX_ANNOTATION_BYTES} bytes"),
            });
        }
        for (i, key) in self.data.keys().enumerate() {
            validate_data_key(key).map_err(|_| {
                Error::malformed(
                    entry_location("data", None, i),
                    "a data key must consist of alphanumerics, '-', '_' or '.' (at most 253)",
                )
            })?;
        }
        check_size(self.data.len(), self.data.values().map(|v| v.len()).sum())?;
        if let Some((field, key)) = self.value_in_metadata() {
            return Err(Error::malformed(
                field,
                format!(
                    "holds the value of data key {key:?}; a value must only be in data or \
                     stringData: remove it from the metadata"
                ),
            ));
        }
        Ok(())
    }

    /// The first label or annotation that contains one of the values (or its base64), with
    /// the data key whose value it holds.
    pub fn value_in_metadata(&self) -> Option<(String, String)> {
        if self.labels.is_empty() && self.annotations.is_empty() {
            return None;
        }
        let finder = self.value_finder();
        let fields = self
            .labels
            .iter()
            .map(|(k, v)| ("metadata.labels", k, v))
            .chain(
                self.annotations
                    .iter()
                    .map(|(k, v)| ("metadata.annotations", k, v)),
            );
        for (field, name, text) in fields {
            for haystack in [name.as_str(), text.as_str()] {
                if let Some(key) = finder.find(haystack) {
                    // The label's own name is printed only when it does not hold the value.
                    let at = if crate::names::is_qualified_name(name) && finder.find(name).is_none()
                    {
                        format!("{field}.{name:?}")
                    } else {
                        field.to_owned()
                    };
                    return Some((at, key.to_owned()));
                }
            }
        }
        None
    }

    /// A searcher for this Secret's values (as they are, and in base64) inside other text.
    /// Values shorter than [`MIN_EXPOSURE_SEARCH_BYTES`] are not searched for.
    pub fn value_finder(&self) -> ValueFinder<'_> {
        let mut patterns: Vec<Zeroizing<Vec<u8>>> = Vec::new();
        let mut keys = Vec::new();
        for (key, value) in &self.data {
            if value.len() < MIN_EXPOSURE_SEARCH_BYTES {
                continue;
            }
            patterns.push(value.clone());
            keys.push(key.as_str());
            let encoded = Zeroizing::new(B64.encode(value.as_slice()));
            // Padding differs with the value's position inside a larger base64 text; search
            // for the unpadded prefix that does not depend on it.
            let stable = encoded.trim_end_matches('=').len() / 4 * 4;
            if stable >= MIN_EXPOSURE_SEARCH_BYTES {
                patterns.push(Zeroizing::new(encoded.as_bytes()[..stable].to_vec()));
                keys.push(key.as_str());
            }
            // As other tools copy it: escaped inside a JSON string (a value with a newline or
            // a quote looks different there), and in hex.
            if let Ok(text) = std::str::from_utf8(value) {
                let json = Zeroizing::new(serde_json::to_string(text).unwrap_or_default());
                let inner = json.get(1..json.len().saturating_sub(1)).unwrap_or("");
                if inner.as_bytes() != value.as_slice() && !inner.is_empty() {
                    patterns.push(Zeroizing::new(inner.as_bytes().to_vec()));
                    keys.push(key.as_str());
                }
            }
            patterns.push(Zeroizing::new(hex::encode(value.as_slice()).into_bytes()));
            keys.push(key.as_str());
        }
        let matcher = if patterns.is_empty() {
            None
        } else {
            // A contiguous NFA builds in time linear in the patterns; a DFA over a few KiB of
            // value would take a tenth of a second per Secret.
            aho_corasick::AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::ContiguousNFA))
                .build(patterns.iter().map(|p| p.as_slice()))
                .ok()
        };
        ValueFinder { matcher, keys }
    }
}

/// Finds a Secret's values inside other text in one pass over it, whatever the number of
/// values.
pub struct ValueFinder<'a> {
    matcher: Option<aho_corasick::AhoCorasick>,
    keys: Vec<&'a str>,
}

impl std::fmt::Debug for ValueFinder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueFinder")
            .field("keys", &self.keys)
            .finish()
    }
}

impl ValueFinder<'_> {
    /// The data key of a value that `text` contains, if any.
    pub fn find(&self, text: &str) -> Option<&str> {
        let m = self.matcher.as_ref()?.find(text)?;
        self.keys.get(m.pattern().as_usize()).copied()
    }
}

pub(crate) fn check_size(values: usize, bytes: usize) -> Result<()> {
    if values > MAX_VALUES {
        return Err(Error::LimitExceeded {
            what: "the number of values in one Secret".to_owned(),
            limit: MAX_VALUES.to_string(),
        });
    }
    if bytes > MAX_SECRET_BYTES {
        return Err(Error::LimitExceeded {
            what: "the size of one Secret's values".to_owned(),
            limit: format!("{MAX_SECRET_BYTES} bytes"),
        });
    }
    Ok(())
}
