//! A `v1` Secret manifest to and from the typed [`PlainSecret`] of `sealsync-crypto`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use sealsync_crypto::{
    entry_location, is_qualified_name, validate_data_key, PlainSecret, SecretData,
    LAST_APPLIED_ANNOTATION, MAX_SECRET_BYTES, MAX_VALUES,
};
use serde_yaml::{Mapping, Value};
use zeroize::{Zeroize, Zeroizing};

use super::error::ManifestError as Error;

type Result<T, E = Error> = std::result::Result<T, E>;

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
                let at = if is_qualified_name(k) {
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
pub(crate) fn decode_data_value(encoded: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut compact = Zeroizing::new(String::with_capacity(encoded.len()));
    compact.extend(encoded.chars().filter(|c| !matches!(c, '\n' | '\r')));
    B64.decode(compact.as_bytes()).ok().map(Zeroizing::new)
}

/// Reads a `v1` `Secret` manifest: base64 `data` is decoded and `stringData` folded in
/// (winning on a clash, as the API server does).
///
/// Strict, like kube-apiserver's field validation: an unknown field (`stringdata`), a
/// value that is not a string (`port: 5432` would lose its spelling), or invalid base64 is
/// refused, never sealed as something else. Of the metadata only name, namespace, labels
/// and annotations are carried, without kubectl's last-applied-configuration annotation
/// (a copy of the values); server-set fields are dropped. A label or annotation that holds
/// one of the values is refused. No error quotes a value.
pub fn secret_from_manifest(doc: &Value) -> Result<PlainSecret> {
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
    // Only the shape is checked here; what a valid name or namespace is, the typed
    // Secret's own validation says.
    let name =
        match metadata.and_then(|m| m.get("name")) {
            None | Some(Value::Null) => {
                return Err(Error::malformed("metadata.name", "the Secret has no name"))
            }
            Some(Value::String(n)) => n.clone(),
            Some(_) => return Err(Error::malformed(
                "metadata.name",
                "not a valid Secret name (a lowercase RFC 1123 subdomain, at most 253 characters)",
            )),
        };
    let namespace = match metadata.and_then(|m| m.get("namespace")) {
        None | Some(Value::Null) => None,
        Some(Value::String(n)) if n.is_empty() => None,
        Some(Value::String(n)) => Some(n.clone()),
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
    let type_ = match doc.get("type") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(t.clone()),
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
        let map = section
            .as_mapping()
            .ok_or_else(|| Error::malformed(field, "expected a mapping of data keys to values"))?;
        if map.len() > MAX_VALUES {
            return Err(Error::LimitExceeded {
                what: "the number of values in one Secret".to_owned(),
                limit: MAX_VALUES.to_string(),
            });
        }
        for (i, (k, v)) in map.iter().enumerate() {
            let key = k.as_str();
            let at = entry_location(field, key, i);
            let key = match key {
                Some(k) if validate_data_key(k).is_ok() => k,
                _ => {
                    return Err(Error::malformed(
                        at,
                        "the key is not a valid data key (letters, digits, '-', '_' and '.', \
                             at most 253); if a value was meant, put ': ' between key and value",
                    ))
                }
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
    let secret = PlainSecret {
        name,
        namespace,
        type_,
        labels,
        annotations,
        immutable,
        data,
    };
    secret.validate()?;
    Ok(secret)
}

/// The Secret as a manifest with base64 `data`. The returned value holds plaintext: wipe it
/// with [`super::wipe_value`] when done.
pub fn secret_to_manifest(secret: &PlainSecret) -> Value {
    let mut metadata = Mapping::new();
    metadata.insert("name".into(), secret.name.clone().into());
    if let Some(ns) = &secret.namespace {
        metadata.insert("namespace".into(), ns.clone().into());
    }
    if !secret.labels.is_empty() {
        metadata.insert("labels".into(), to_mapping(&secret.labels));
    }
    if !secret.annotations.is_empty() {
        metadata.insert("annotations".into(), to_mapping(&secret.annotations));
    }
    let mut out = Mapping::new();
    out.insert("apiVersion".into(), "v1".into());
    out.insert("kind".into(), "Secret".into());
    out.insert("metadata".into(), Value::Mapping(metadata));
    if let Some(t) = &secret.type_ {
        out.insert("type".into(), t.clone().into());
    }
    if let Some(immutable) = secret.immutable {
        out.insert("immutable".into(), immutable.into());
    }
    let mut data = Mapping::new();
    for (k, v) in &secret.data {
        let mut encoded = B64.encode(v.as_slice());
        data.insert(k.clone().into(), encoded.clone().into());
        encoded.zeroize();
    }
    out.insert("data".into(), Value::Mapping(data));
    Value::Mapping(out)
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
        secret_from_manifest(&serde_yaml::from_str(yaml).expect("yaml"))
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
