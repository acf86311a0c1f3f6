//! Plain Kubernetes Secrets: what goes into sealing and comes out of opening.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_yaml::{Mapping, Value};
use zeroize::{Zeroize, Zeroizing};

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

/// Fields of a Secret manifest that are read.
const SECRET_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "data",
    "stringData",
    "type",
    "immutable",
];
/// Metadata carried into the sealed file.
const CARRIED_METADATA: &[&str] = &["name", "namespace", "labels", "annotations"];
/// Metadata the API server sets, which `kubectl get -o yaml` prints: accepted, dropped.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
];

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

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "no value (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn string_map(value: Option<&Value>, field: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return Ok(out) };
    if value.is_null() {
        return Ok(out);
    }
    let map = value
        .as_mapping()
        .ok_or_else(|| Error::malformed(field, "expected a mapping of strings"))?;
    for (i, (k, v)) in map.iter().enumerate() {
        let k = k.as_str().ok_or_else(|| {
            Error::malformed(format!("{field}[#{}]", i + 1), "keys must be strings")
        })?;
        let v = match v {
            Value::String(s) => s.clone(),
            other => {
                let at = if is_label_key(k) {
                    format!("{field}.{k:?}")
                } else {
                    format!("{field}[#{}]", i + 1)
                };
                return Err(Error::malformed(
                    at,
                    format!(
                        "the value is {}; Kubernetes takes only strings here: quote it",
                        type_name(other)
                    ),
                ));
            }
        };
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

/// A qualified name as labels and annotations use (`prefix/name`), safe to print.
fn is_label_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= 317
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/'))
}

fn check_fields(
    map: &serde_yaml::Mapping,
    allowed: &[&str],
    ignored: &[&str],
    field: &str,
) -> Result<()> {
    for (i, key) in map.keys().enumerate() {
        let name = key.as_str();
        if name.is_some_and(|n| allowed.contains(&n) || ignored.contains(&n)) {
            continue;
        }
        // The field's own text is shown only when it is a known name in the wrong letter case
        // (`stringdata`): anything else may be a value typed where a key belongs.
        let near = name.and_then(|n| {
            allowed
                .iter()
                .find(|a| a.eq_ignore_ascii_case(n))
                .map(|a| (n, *a))
        });
        let shown = match near {
            Some((n, known)) => format!("{field}{n} (did you mean {known}?)"),
            None => format!("{field}[#{}]", i + 1),
        };
        return Err(Error::malformed(
            shown,
            format!(
                "unknown field (a Secret{} has {})",
                if field.is_empty() { "" } else { "'s metadata" },
                allowed.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Decodes a `data` value as kube-apiserver does: standard padded base64, where line breaks
/// (`\n`, `\r`) are ignored, so a block scalar or a line-wrapped value is accepted.
fn decode_data_value(encoded: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut compact = Zeroizing::new(String::with_capacity(encoded.len()));
    compact.extend(encoded.chars().filter(|c| !matches!(c, '\n' | '\r')));
    B64.decode(compact.as_bytes()).ok().map(Zeroizing::new)
}

impl PlainSecret {
    /// Reads a `v1` `Secret` manifest: base64 `data` is decoded and `stringData` folded in
    /// (winning on a clash, as the API server does).
    ///
    /// Strict, like kube-apiserver's field validation: an unknown field (`stringdata`), a
    /// value that is not a string (`port: 5432` would lose its spelling), or invalid base64 is
    /// refused, never sealed as something else. Of the metadata only name, namespace, labels
    /// and annotations are carried, without kubectl's last-applied-configuration annotation
    /// (a copy of the values); server-set fields are dropped. A label or annotation that holds
    /// one of the values is refused. No error quotes a value.
    pub fn from_manifest(doc: &Value) -> Result<Self> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "Secret" {
            let shown = if kind.len() <= 63 && kind.bytes().all(|b| b.is_ascii_alphanumeric()) {
                kind
            } else {
                "(not a kind name)"
            };
            return Err(Error::malformed(
                "kind",
                format!("expected kind Secret, found {shown:?}"),
            ));
        }
        match doc.get("apiVersion").and_then(Value::as_str) {
            Some("v1") => {}
            _ => return Err(Error::malformed("apiVersion", "a Secret has apiVersion v1")),
        }
        let top = doc
            .as_mapping()
            .ok_or_else(|| Error::malformed("document", "expected a mapping"))?;
        check_fields(top, SECRET_FIELDS, &[], "")?;
        let metadata = doc.get("metadata").filter(|m| !m.is_null());
        if let Some(m) = metadata {
            let m = m
                .as_mapping()
                .ok_or_else(|| Error::malformed("metadata", "expected a mapping"))?;
            check_fields(m, CARRIED_METADATA, SERVER_METADATA, "metadata.")?;
        }
        let name = match metadata.and_then(|m| m.get("name")) {
            None | Some(Value::Null) => {
                return Err(Error::malformed("metadata.name", "the Secret has no name"))
            }
            Some(Value::String(n)) if crate::manifest::is_object_name(n) => n.clone(),
            Some(_) => return Err(Error::malformed(
                "metadata.name",
                "not a valid Secret name (a lowercase RFC 1123 subdomain, at most 253 characters)",
            )),
        };
        let namespace = match metadata.and_then(|m| m.get("namespace")) {
            None | Some(Value::Null) => None,
            Some(Value::String(n)) if n.is_empty() => None,
            Some(Value::String(n))
                if crate::manifest::is_object_name(n) && n.len() <= 63 && !n.contains('.') =>
            {
                Some(n.clone())
            }
            Some(_) => {
                return Err(Error::malformed(
                    "metadata.namespace",
                    "not a valid namespace (a lowercase RFC 1123 label, at most 63 characters)",
                ))
            }
        };
        let labels = string_map(metadata.and_then(|m| m.get("labels")), "metadata.labels")?;
        let mut annotations = string_map(
            metadata.and_then(|m| m.get("annotations")),
            "metadata.annotations",
        )?;
        annotations.remove(LAST_APPLIED_ANNOTATION);
        let annotation_bytes: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
        if annotation_bytes > MAX_ANNOTATION_BYTES {
            return Err(Error::LimitExceeded {
                what: "the size of metadata.annotations".to_owned(),
                limit: format!("{MAX_ANNOTATION_BYTES} bytes"),
            });
        }
        let type_ = match doc.get("type") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if is_label_key(t) && t.len() <= 253 => Some(t.clone()),
            Some(Value::String(_)) => {
                return Err(Error::malformed(
                    "type",
                    "not a valid Secret type (letters, digits, '-', '.', '_' and '/')",
                ))
            }
            Some(other) => {
                return Err(Error::malformed(
                    "type",
                    format!(
                        "the value is {}; a Secret type is a string",
                        type_name(other)
                    ),
                ))
            }
        };
        let immutable = match doc.get("immutable") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(Error::malformed(
                    "immutable",
                    format!(
                        "the value is {}; immutable is true or false",
                        type_name(other)
                    ),
                ))
            }
        };

        let mut data = SecretData::new();
        let mut total = 0usize;
        for field in ["data", "stringData"] {
            let Some(section) = doc.get(field).filter(|v| !v.is_null()) else {
                continue;
            };
            let map = section.as_mapping().ok_or_else(|| {
                Error::malformed(field, "expected a mapping of data keys to values")
            })?;
            if map.len() > MAX_VALUES {
                return Err(Error::LimitExceeded {
                    what: "the number of values in one Secret".to_owned(),
                    limit: MAX_VALUES.to_string(),
                });
            }
            for (i, (k, v)) in map.iter().enumerate() {
                let key = k.as_str();
                let at = entry_location(field, key, i);
                let key =
                    match key {
                        Some(k) if validate_data_key(k).is_ok() => k,
                        _ => return Err(Error::malformed(
                            at,
                            "the key is not a valid data key (letters, digits, '-', '_' and '.', \
                             at most 253); if a value was meant, put ': ' between key and value",
                        )),
                    };
                let text = match v {
                    Value::String(s) => s,
                    Value::Null => {
                        return Err(Error::malformed(
                            entry_location(field, None, i),
                            "the entry has no value; write '' for an empty value, or put ': ' \
                             between key and value",
                        ))
                    }
                    other => {
                        return Err(Error::malformed(
                            at,
                            format!(
                                "the value is {}, not a string; quote it so that it is sealed \
                                 exactly as written",
                                type_name(other)
                            ),
                        ))
                    }
                };
                let value = if field == "data" {
                    decode_data_value(text).ok_or_else(|| {
                        Error::malformed(
                            at.clone(),
                            "the value is not valid base64 (use stringData for plain text)",
                        )
                    })?
                } else {
                    Zeroizing::new(text.as_bytes().to_vec())
                };
                total += value.len();
                if total > MAX_SECRET_BYTES {
                    return Err(Error::LimitExceeded {
                        what: "the size of one Secret's values".to_owned(),
                        limit: format!("{MAX_SECRET_BYTES} bytes"),
                    });
                }
                data.insert(key.to_owned(), value);
            }
        }
        check_size(data.len(), total)?;
        let secret = PlainSecret {
            name,
            namespace,
            type_,
            labels,
            annotations,
            immutable,
            data,
        };
        if let Some((field, key)) = secret.value_in_metadata() {
            return Err(Error::malformed(
                field,
                format!(
                    "holds the value of data key {key:?}; a value must only be in data or \
                     stringData: remove it from the metadata"
                ),
            ));
        }
        Ok(secret)
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
                    let at = if is_label_key(name) && finder.find(name).is_none() {
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

impl PlainSecret {
    /// The Secret as a manifest with base64 `data`. The returned value holds plaintext:
    /// wipe it with [`crate::wipe_value`] when done.
    pub fn to_manifest(&self) -> Value {
        let mut metadata = Mapping::new();
        metadata.insert("name".into(), self.name.clone().into());
        if let Some(ns) = &self.namespace {
            metadata.insert("namespace".into(), ns.clone().into());
        }
        if !self.labels.is_empty() {
            metadata.insert("labels".into(), to_mapping(&self.labels));
        }
        if !self.annotations.is_empty() {
            metadata.insert("annotations".into(), to_mapping(&self.annotations));
        }
        let mut out = Mapping::new();
        out.insert("apiVersion".into(), "v1".into());
        out.insert("kind".into(), "Secret".into());
        out.insert("metadata".into(), Value::Mapping(metadata));
        if let Some(t) = &self.type_ {
            out.insert("type".into(), t.clone().into());
        }
        if let Some(immutable) = self.immutable {
            out.insert("immutable".into(), immutable.into());
        }
        let mut data = Mapping::new();
        for (k, v) in &self.data {
            let mut encoded = B64.encode(v.as_slice());
            data.insert(k.clone().into(), encoded.clone().into());
            encoded.zeroize();
        }
        out.insert("data".into(), Value::Mapping(data));
        Value::Mapping(out)
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

fn to_mapping(map: &BTreeMap<String, String>) -> Value {
    Value::Mapping(
        map.iter()
            .map(|(k, v)| (Value::from(k.clone()), Value::from(v.clone())))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<PlainSecret> {
        PlainSecret::from_manifest(&serde_yaml::from_str(yaml).expect("yaml"))
    }

    #[test]
    fn string_data_folds_into_data_and_wins() {
        let s = parse(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: n}\n\
             data: {x: eA==, y: eQ==}\nstringData: {y: why}\n",
        )
        .expect("parses");
        assert_eq!(s.data["x"].as_slice(), b"x");
        assert_eq!(s.data["y"].as_slice(), b"why");
    }

    #[test]
    fn bad_base64_names_the_field_not_the_value() {
        let err =
            parse("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\ndata: {pw: 'canary-!!'}\n")
                .expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("data.pw"), "{msg}");
        assert!(!msg.contains("canary"), "{msg}");
    }

    #[test]
    fn debug_hides_values() {
        let s = parse(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {pw: canary-dbg}\n",
        )
        .expect("parses");
        assert!(!format!("{s:?}").contains("canary"));
    }
}
