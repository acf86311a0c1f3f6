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
        Err(Error::malformed(
            format!("data key {key:?}"),
            "a data key must consist of alphanumerics, '-', '_' or '.' (at most 253)",
        ))
    }
}

fn string_map(value: Option<&Value>, location: &str) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Some(value) = value else { return Ok(out) };
    if value.is_null() {
        return Ok(out);
    }
    let map = value
        .as_mapping()
        .ok_or_else(|| Error::malformed(location, "expected a mapping of strings"))?;
    for (k, v) in map {
        let k = k
            .as_str()
            .ok_or_else(|| Error::malformed(location, "keys must be strings"))?;
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(Error::malformed(
                    format!("{location}.{k}"),
                    "expected a string value",
                ))
            }
        };
        out.insert(k.to_owned(), v);
    }
    Ok(out)
}

impl PlainSecret {
    /// Reads a `v1` `Secret` manifest: base64 `data` is decoded and `stringData` folded in
    /// (winning on a clash, as the API server does).
    pub fn from_manifest(doc: &Value) -> Result<Self> {
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
        if kind != "Secret" {
            return Err(Error::malformed(
                "kind",
                format!("expected kind Secret, found {:?}", kind),
            ));
        }
        match doc.get("apiVersion").and_then(Value::as_str) {
            Some("v1") => {}
            other => {
                return Err(Error::malformed(
                    "apiVersion",
                    format!("a Secret has apiVersion v1, found {other:?}"),
                ))
            }
        }
        let metadata = doc.get("metadata");
        let name = metadata
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| Error::malformed("metadata.name", "the Secret has no name"))?
            .to_owned();
        let namespace = metadata
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .map(str::to_owned);
        let labels = string_map(metadata.and_then(|m| m.get("labels")), "metadata.labels")?;
        let annotations = string_map(
            metadata.and_then(|m| m.get("annotations")),
            "metadata.annotations",
        )?;
        let type_ = doc.get("type").and_then(Value::as_str).map(str::to_owned);
        let immutable = doc.get("immutable").and_then(Value::as_bool);

        let mut data = SecretData::new();
        let mut total = 0usize;
        if let Some(section) = doc.get("data").filter(|v| !v.is_null()) {
            let map = section
                .as_mapping()
                .ok_or_else(|| Error::malformed("data", "expected a mapping"))?;
            for (k, v) in map {
                let key = k
                    .as_str()
                    .ok_or_else(|| Error::malformed("data", "keys must be strings"))?;
                validate_data_key(key)?;
                let encoded = v.as_str().unwrap_or("");
                let decoded = B64.decode(encoded.trim()).map_err(|_| {
                    // Never echo the value: it is the secret.
                    Error::malformed(
                        format!("data.{key}"),
                        "the value is not valid base64 (use stringData for plain text)",
                    )
                })?;
                total += decoded.len();
                data.insert(key.to_owned(), Zeroizing::new(decoded));
            }
        }
        if let Some(section) = doc.get("stringData").filter(|v| !v.is_null()) {
            let map = section
                .as_mapping()
                .ok_or_else(|| Error::malformed("stringData", "expected a mapping"))?;
            for (k, v) in map {
                let key = k
                    .as_str()
                    .ok_or_else(|| Error::malformed("stringData", "keys must be strings"))?;
                validate_data_key(key)?;
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => {
                        return Err(Error::malformed(
                            format!("stringData.{key}"),
                            "expected a string value",
                        ))
                    }
                };
                total += text.len();
                data.insert(key.to_owned(), Zeroizing::new(text.into_bytes()));
            }
        }
        check_size(data.len(), total)?;
        Ok(PlainSecret {
            name,
            namespace,
            type_,
            labels,
            annotations,
            immutable,
            data,
        })
    }

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
