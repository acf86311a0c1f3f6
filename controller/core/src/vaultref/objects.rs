//! Where references may sit in a manifest. Inside a plain `v1` Secret's `data` and
//! `stringData` they are resolved; anywhere else (a ConfigMap, an annotation, an env value)
//! the resolved value would be stored unencrypted, so they are found and refused.
//!
//! The controller's decrypt and resolve stages and `sealsync check` all classify a Secret's
//! values here, so that what the CLI accepts is exactly what the controller applies.

use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::{parse, RefError, Segment};
use crate::manifest::decode_data_value;

/// Which field of a Secret a value sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueSource {
    /// `stringData`: the value as text.
    StringData,
    /// `data`: the value in base64, decoded before references are looked for.
    Data,
}

impl ValueSource {
    /// The field's name in a manifest.
    pub fn field(self) -> &'static str {
        match self {
            ValueSource::StringData => "stringData",
            ValueSource::Data => "data",
        }
    }
}

/// One value of a Secret, with the references it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretValue {
    /// The field it sits in.
    pub source: ValueSource,
    /// The data key.
    pub key: String,
    /// The value split into literal text and references; empty for a value without any.
    pub segments: Vec<Segment>,
}

impl SecretValue {
    /// Whether the value holds at least one reference.
    pub fn has_references(&self) -> bool {
        self.segments.iter().any(|s| matches!(s, Segment::Ref(_)))
    }
}

/// The values of one Secret manifest: those that hold references, and the keys of those that
/// are literal (plaintext in Git).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretValues {
    /// Values holding at least one reference, in field then key order.
    pub references: Vec<SecretValue>,
    /// `field.key` of every value without a reference.
    pub literal: Vec<String>,
}

/// A reference that cannot be read, or one in a place where it would be stored unencrypted.
/// Messages name the field path and quote only the reference text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// A Secret value holds a malformed reference.
    #[error("{field}")]
    Malformed {
        /// `stringData.KEY` or `data.KEY`.
        field: String,
        /// What is wrong.
        #[source]
        source: RefError,
    },
}

/// Whether `object` is a plain `v1` Secret.
fn is_secret(object: &Json) -> bool {
    object["apiVersion"] == "v1" && object["kind"] == "Secret"
}

/// Classifies the values of a plain `v1` Secret manifest. A `data` value is decoded first; one
/// that is not base64 or not UTF-8 is literal (the API server reports bad base64). Returns
/// empty lists for any other object.
pub fn secret_values(object: &Json) -> Result<SecretValues, ValueError> {
    let mut out = SecretValues::default();
    if !is_secret(object) {
        return Ok(out);
    }
    for source in [ValueSource::Data, ValueSource::StringData] {
        let Some(values) = object[source.field()].as_object() else {
            continue;
        };
        for (key, value) in values {
            let text: Option<Zeroizing<String>> = match (source, value) {
                (ValueSource::StringData, Json::String(s)) => Some(Zeroizing::new(s.clone())),
                (ValueSource::Data, Json::String(s)) => decode_data_value(s)
                    .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
                    .map(Zeroizing::new),
                _ => None,
            };
            let segments = match text {
                Some(text) if super::mentions_reference(&text) => {
                    parse(&text).map_err(|reason| ValueError::Malformed {
                        field: format!("{}.{key}", source.field()),
                        source: reason,
                    })?
                }
                _ => Vec::new(),
            };
            let classified = SecretValue {
                source,
                key: key.clone(),
                segments,
            };
            if classified.has_references() {
                out.references.push(classified);
            } else if !value.is_null() {
                out.literal.push(format!("{}.{key}", source.field()));
            }
        }
    }
    Ok(out)
}

/// The field path of the first string in `object` that holds a well-formed reference, when
/// `object` is not a plain Secret, or is a Secret and the reference sits outside its values
/// (in its metadata). Such a value would be stored unencrypted if it were resolved, and left
/// as it is it would reach the cluster as a dangling reference.
///
/// Text written for people is not a reference even when it looks like one: the descriptions
/// of a CustomResourceDefinition's schema (a CRD documenting the syntax, sealsync's own among
/// them) and, on objects other than Secrets, annotations named `description`, `summary`,
/// `notes`, `docs` or `documentation` (with any prefix, as `kubernetes.io/description`).
pub fn reference_outside_secret(object: &Json) -> Option<String> {
    let kind = Kind {
        secret: is_secret(object),
        crd: object["kind"] == "CustomResourceDefinition"
            && object["apiVersion"]
                .as_str()
                .is_some_and(|v| v.starts_with("apiextensions.k8s.io/")),
    };
    let mut path = String::new();
    find_reference(object, &mut path, kind, 0)
}

/// What the walked object is.
#[derive(Debug, Clone, Copy)]
struct Kind {
    secret: bool,
    crd: bool,
}

/// Annotation names (after any `prefix/`) that hold documentation.
const DOCUMENTATION_ANNOTATIONS: &[&str] =
    &["description", "summary", "notes", "docs", "documentation"];

/// Whether the field `key` under `parent` (a field path) is documentation for people.
fn is_documentation(kind: Kind, parent: &str, key: &str) -> bool {
    if kind.crd && (parent == "spec" || parent.starts_with("spec.")) && key == "description" {
        return true;
    }
    if !kind.secret && parent == "metadata.annotations" {
        let name = key.rsplit_once('/').map_or(key, |(_, name)| name);
        return DOCUMENTATION_ANNOTATIONS.contains(&name);
    }
    false
}

/// Walks `value` depth-first; `path` is the field path so far. Manifests are bounded in
/// depth when read, and `depth` guards objects built in memory.
fn find_reference(value: &Json, path: &mut String, kind: Kind, depth: usize) -> Option<String> {
    if depth > 256 {
        return None;
    }
    match value {
        Json::String(s) => {
            let holds = super::mentions_reference(s)
                && parse(s).is_ok_and(|segments| {
                    segments.iter().any(|seg| matches!(seg, Segment::Ref(_)))
                });
            holds.then(|| path.clone())
        }
        Json::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            let found = find_reference(item, path, kind, depth + 1);
            path.truncate(len);
            found
        }),
        Json::Object(map) => map.iter().find_map(|(key, item)| {
            if kind.secret && depth == 0 && (key == "data" || key == "stringData") {
                return None;
            }
            if is_documentation(kind, path, key) {
                return None;
            }
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let found = find_reference(item, path, kind, depth + 1);
            path.truncate(len);
            found
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vaultref::VaultRef;
    use serde_json::json;

    #[test]
    fn secret_values_split_references_from_literals() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "stringData": {
                "password": "ref+vault://secret/db#password",
                "url": "postgres://ref+vault://secret/db#user+:<path:secret/data/db#pass>@h/app",
                "mode": "literal",
            },
            // base64 of `ref+vault://kv/app#token` and of `plain`
            "data": {"token": "cmVmK3ZhdWx0Oi8va3YvYXBwI3Rva2Vu", "other": "cGxhaW4="},
        });
        let values = secret_values(&secret).expect("classified");
        assert_eq!(values.literal, vec!["data.other", "stringData.mode"]);
        let keys: Vec<_> = values
            .references
            .iter()
            .map(|v| (v.source, v.key.as_str()))
            .collect();
        assert_eq!(
            keys,
            vec![
                (ValueSource::Data, "token"),
                (ValueSource::StringData, "password"),
                (ValueSource::StringData, "url"),
            ]
        );
        assert_eq!(
            values.references[0].segments,
            vec![Segment::Ref(VaultRef {
                path: "kv/app".into(),
                key: "token".into(),
                version: None,
                syntax: crate::vaultref::RefSyntax::Vals,
            })]
        );
        assert_eq!(values.references[2].segments.len(), 5);
    }

    #[test]
    fn a_malformed_reference_names_the_field() {
        let secret = json!({
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"},
            "stringData": {"password": "ref+vault://secret/db?address=https://evil#password"},
        });
        let err = secret_values(&secret).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "stringData.password",
            "the field; the cause is the source"
        );
        let shown = crate::Chain(&err).to_string();
        assert!(shown.starts_with("stringData.password: "), "{shown}");
    }

    #[test]
    fn other_kinds_are_not_classified() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "ref+vault://x#y"}});
        assert_eq!(secret_values(&cm).expect("ok"), SecretValues::default());
    }

    #[test]
    fn references_outside_secret_values_are_found_with_their_path() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
            "data": {"a": "fine", "b": "<path:secret/data/x#y>"}});
        assert_eq!(reference_outside_secret(&cm).as_deref(), Some("data.b"));
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "spec": {"template": {"spec": {
            "containers": [{"name": "a", "env": [{"name": "X", "value": "x"}, {"name": "P", "value": "ref+vault://s/p#k"}]}]}}}});
        assert_eq!(
            reference_outside_secret(&deploy).as_deref(),
            Some("spec.template.spec.containers[0].env[1].value")
        );
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {"note": "ref+vault://s/p#k"}},
            "stringData": {"k": "ref+vault://s/p#k"}});
        assert_eq!(
            reference_outside_secret(&secret).as_deref(),
            Some("metadata.annotations.note")
        );
        let clean = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "stringData": {"k": "ref+vault://s/p#k"}});
        assert_eq!(reference_outside_secret(&clean), None);
        // Documentation is not a reference: a CRD's schema descriptions, and annotations for
        // people on objects other than Secrets.
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "things.example.com"},
            "spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {"type": "object",
                "description": "values such as ref+vault://secret/app#password are resolved",
                "properties": {"spec": {"type": "object", "properties": {"v": {"type": "string",
                    "description": "<path:secret/data/x#y>"}}}}}}}]}});
        assert_eq!(reference_outside_secret(&crd), None);
        let mut crd_with_default = crd.clone();
        crd_with_default["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"]["v"]["default"] = json!("ref+vault://secret/app#password");
        assert_eq!(
            reference_outside_secret(&crd_with_default).as_deref(),
            Some("spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.v.default")
        );
        let documented = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c",
            "annotations": {"kubernetes.io/description": "reads ref+vault://secret/app#k", "description": "<path:s/data/x#y>"}},
            "data": {"a": "fine"}});
        assert_eq!(reference_outside_secret(&documented), None);
        let mut with_data = documented.clone();
        with_data["data"]["b"] = json!("ref+vault://secret/app#k");
        assert_eq!(
            reference_outside_secret(&with_data).as_deref(),
            Some("data.b")
        );
        let secret_doc = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "annotations": {"description": "ref+vault://s/p#k"}}});
        assert_eq!(
            reference_outside_secret(&secret_doc).as_deref(),
            Some("metadata.annotations.description")
        );
        // Text that only looks like the start of a reference is not one.
        let docs = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "see <path:"}});
        assert_eq!(reference_outside_secret(&docs), None);
    }
}
