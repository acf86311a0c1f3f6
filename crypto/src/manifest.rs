//! Bounded reading of multi-document YAML or JSON manifests, shared by the CLI and the
//! controller so that both accept exactly the same inputs.

use serde::Deserialize as _;
use serde_yaml::Value;
use zeroize::Zeroize;

use crate::error::{Error, Result};

/// Bounds on what one manifest stream may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest input accepted, in bytes.
    pub max_bytes: usize,
    /// The most documents accepted (after `List` items are expanded).
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024 * 1024,
            max_documents: 10_000,
        }
    }
}

/// One document of a manifest stream.
#[derive(Debug)]
pub struct Document {
    /// 1-based position in the stream, counting `List` items as documents.
    pub index: usize,
    /// The parsed document.
    pub value: Value,
}

impl Document {
    /// `kind` of the document, if it has one.
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }

    /// `metadata.name`, if any.
    pub fn name(&self) -> Option<&str> {
        self.value.get("metadata")?.get("name")?.as_str()
    }

    /// `metadata.namespace`, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.value.get("metadata")?.get("namespace")?.as_str()
    }

    /// `document N (Kind namespace/name)`, for messages.
    pub fn describe(&self) -> String {
        let kind = self.kind().unwrap_or("(no kind)");
        match (self.namespace(), self.name()) {
            (Some(ns), Some(name)) => format!("document {} ({kind} {ns}/{name})", self.index),
            (None, Some(name)) => format!("document {} ({kind} {name})", self.index),
            _ => format!("document {} ({kind})", self.index),
        }
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        // Plain Secrets pass through here; wipe their strings rather than leave them in freed
        // memory.
        wipe_value(&mut self.value);
    }
}

/// Splits `text` into its documents. Empty documents are skipped; `kind: List` is expanded
/// into its items, as kubectl does.
pub fn read_documents(text: &str, limits: Limits) -> Result<Vec<Document>> {
    if text.len() > limits.max_bytes {
        return Err(Error::LimitExceeded {
            what: "the manifest input".to_owned(),
            limit: format!("{} bytes", limits.max_bytes),
        });
    }
    let mut documents = Vec::new();
    let mut stream_index = 0usize;
    for de in serde_yaml::Deserializer::from_str(text) {
        stream_index += 1;
        let value = Value::deserialize(de).map_err(|e| {
            let location = match e.location() {
                Some(loc) => format!(
                    "document {stream_index}, line {} column {}",
                    loc.line(),
                    loc.column()
                ),
                None => format!("document {stream_index}"),
            };
            Error::malformed(location, yaml_reason(&e))
        })?;
        let is_list = value.get("kind").and_then(Value::as_str) == Some("List")
            && value.get("items").is_some();
        let items = if is_list {
            match value.get("items").cloned() {
                Some(Value::Sequence(items)) => items,
                _ => {
                    return Err(Error::malformed(
                        format!("document {stream_index}: items"),
                        "a List's items must be a sequence",
                    ))
                }
            }
        } else {
            vec![value]
        };
        for item in items {
            if item.is_null() {
                continue;
            }
            if !item.is_mapping() {
                return Err(Error::malformed(
                    format!("document {stream_index}"),
                    "expected a Kubernetes object (a mapping with apiVersion and kind)",
                ));
            }
            if documents.len() == limits.max_documents {
                return Err(Error::LimitExceeded {
                    what: "the number of documents".to_owned(),
                    limit: limits.max_documents.to_string(),
                });
            }
            documents.push(Document {
                index: documents.len() + 1,
                value: item,
            });
        }
    }
    Ok(documents)
}

/// serde_yaml's message without its own location suffix (we print the location ourselves),
/// and without echoing scalar contents, which could be secret values.
fn yaml_reason(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg,
    }
}

/// Overwrites every string in `value` with zeros before it is freed.
pub fn wipe_value(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Sequence(items) => items.iter_mut().for_each(wipe_value),
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| wipe_value(v)),
        Value::Tagged(tagged) => wipe_value(&mut tagged.value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_skips_empty_documents() {
        let docs =
            read_documents("---\na: 1\n---\n---\nb: 2\n", Limits::default()).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 2);
    }

    #[test]
    fn expands_lists() {
        let docs = read_documents(
            r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"Secret"},{"kind":"ConfigMap"}]}"#,
            Limits::default(),
        )
        .expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].kind(), Some("ConfigMap"));
    }

    #[test]
    fn errors_say_where() {
        let err = read_documents("a: 1\n---\nb: [\n", Limits::default()).expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("document 2"), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn document_count_is_bounded() {
        let limits = Limits {
            max_bytes: 1024,
            max_documents: 2,
        };
        let err = read_documents("a: 1\n---\nb: 2\n---\nc: 3\n", limits).expect_err("bounded");
        assert_eq!(err.metric_label(), "limit_exceeded");
    }
}
