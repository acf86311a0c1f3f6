//! `/openapi/v2`: the Swagger 2.0 document, as JSON or as the protobuf kubectl asks for
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, gnostic's `openapi_v2.Document`).
//!
//! kubectl reads it for `explain --output=plaintext-openapiv2` and, in client-side apply, for
//! the strategic-merge keys of built-in kinds. The definitions are kube-apiserver's own
//! (recorded with the v3 ones by `scripts/openapi-schemas.py`), plus each established custom
//! resource's, from its CRD. No paths are listed: kubectl finds kinds by their
//! `x-kubernetes-group-version-kind`.

use serde_json::{json, Map, Value};

use super::builtin_schemas;
use super::discovery::GIT_VERSION;
use super::openapi::{complete_custom_definition, custom_definition_name, CustomSchema};
use super::resources::ResourceDef;

/// The document's definitions: the built-in ones and the custom resources'.
fn definitions(defs: &[ResourceDef], custom: CustomSchema<'_>) -> Map<String, Value> {
    let mut out = builtin_schemas::definitions_v2().clone();
    for def in defs.iter().filter(|d| d.custom) {
        for version in &def.versions {
            let Some(mut schema) = custom(def, version) else {
                continue;
            };
            let metadata_ref =
                json!({"$ref": format!("#/definitions/{}", builtin_schemas::OBJECT_META)});
            complete_custom_definition(&mut schema, def, version, metadata_ref);
            out.insert(
                custom_definition_name(&def.group, version, &def.kind),
                schema,
            );
        }
    }
    out
}

/// The document as JSON.
pub fn json_document(defs: &[ResourceDef], custom: CustomSchema<'_>) -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": {},
        "definitions": definitions(defs, custom),
    })
}

/// The document as gnostic's `openapi_v2.Document` protobuf.
pub fn protobuf_document(defs: &[ResourceDef], custom: CustomSchema<'_>) -> Vec<u8> {
    let mut doc = Writer::default();
    doc.string(1, "2.0");
    let mut info = Writer::default();
    info.string(1, "Kubernetes");
    info.string(2, GIT_VERSION);
    doc.message(2, &info);
    // `paths`: present and empty.
    doc.message(8, &Writer::default());
    let mut named = Writer::default();
    let mut all: Vec<(String, Value)> = definitions(defs, custom).into_iter().collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, schema) in &all {
        let mut entry = Writer::default();
        entry.string(1, name);
        entry.message(2, &schema_message(schema));
        named.message(1, &entry);
    }
    doc.message(9, &named);
    doc.0
}

/// A protobuf writer for the few wire types the document uses.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    fn message(&mut self, field: u32, m: &Writer) {
        self.bytes(field, &m.0);
    }

    fn bool(&mut self, field: u32, b: bool) {
        self.key(field, 0);
        self.varint(u64::from(b));
    }

    fn int(&mut self, field: u32, v: i64) {
        self.key(field, 0);
        // Two's complement, as protobuf encodes a negative int64.
        self.varint(v as u64);
    }

    fn double(&mut self, field: u32, v: f64) {
        self.key(field, 1);
        self.0.extend_from_slice(&v.to_le_bytes());
    }
}

/// gnostic's `Any`: the value as YAML text (JSON is YAML), which kubectl parses back.
fn any_message(v: &Value) -> Writer {
    let mut any = Writer::default();
    any.string(2, &serde_json::to_string(v).unwrap_or_default());
    any
}

/// One Schema (`openapi_v2.Schema`), with its subschemas.
fn schema_message(schema: &Value) -> Writer {
    let mut w = Writer::default();
    let Some(map) = schema.as_object() else {
        return w;
    };
    let text = |key: &str| map.get(key).and_then(Value::as_str).unwrap_or("");
    w.string(1, text("$ref"));
    w.string(2, text("format"));
    w.string(3, text("title"));
    w.string(4, text("description"));
    if let Some(d) = map.get("default") {
        w.message(5, &any_message(d));
    }
    for (key, field) in [("multipleOf", 6), ("maximum", 7), ("minimum", 9)] {
        if let Some(v) = map.get(key).and_then(Value::as_f64) {
            w.double(field, v);
        }
    }
    for (key, field) in [
        ("exclusiveMaximum", 8),
        ("exclusiveMinimum", 10),
        ("uniqueItems", 16),
        ("readOnly", 27),
    ] {
        if let Some(true) = map.get(key).and_then(Value::as_bool) {
            w.bool(field, true);
        }
    }
    for (key, field) in [
        ("maxLength", 11),
        ("minLength", 12),
        ("maxItems", 14),
        ("minItems", 15),
        ("maxProperties", 17),
        ("minProperties", 18),
    ] {
        if let Some(v) = map.get(key).and_then(Value::as_i64) {
            w.int(field, v);
        }
    }
    w.string(13, text("pattern"));
    for r in map
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.bytes(19, r.as_str().unwrap_or_default().as_bytes());
    }
    for e in map
        .get("enum")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.message(20, &any_message(e));
    }
    match map.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Writer::default();
            item.bool(2, *b);
            w.message(21, &item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Writer::default();
            item.message(1, &schema_message(s));
            w.message(21, &item);
        }
        _ => {}
    }
    match map.get("type") {
        Some(Value::String(t)) => {
            let mut item = Writer::default();
            item.bytes(1, t.as_bytes());
            w.message(22, &item);
        }
        Some(Value::Array(ts)) => {
            let mut item = Writer::default();
            for t in ts.iter().filter_map(Value::as_str) {
                item.bytes(1, t.as_bytes());
            }
            w.message(22, &item);
        }
        _ => {}
    }
    match map.get("items") {
        Some(s @ Value::Object(_)) => {
            let mut item = Writer::default();
            item.message(1, &schema_message(s));
            w.message(23, &item);
        }
        Some(Value::Array(list)) => {
            let mut item = Writer::default();
            for s in list {
                item.message(1, &schema_message(s));
            }
            w.message(23, &item);
        }
        _ => {}
    }
    for s in map
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        w.message(24, &schema_message(s));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        let mut properties = Writer::default();
        let mut names: Vec<&String> = props.keys().collect();
        names.sort();
        for name in names {
            let mut entry = Writer::default();
            entry.string(1, name);
            entry.message(2, &schema_message(&props[name]));
            properties.message(1, &entry);
        }
        w.message(25, &properties);
    }
    w.string(26, text("discriminator"));
    if let Some(example) = map.get("example") {
        w.message(30, &any_message(example));
    }
    let mut extensions: Vec<(&String, &Value)> =
        map.iter().filter(|(k, _)| k.starts_with("x-")).collect();
    extensions.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in extensions {
        let mut entry = Writer::default();
        entry.string(1, name);
        entry.message(2, &any_message(value));
        w.message(31, &entry);
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields_are_encoded_as_protobuf_does() {
        let mut w = Writer::default();
        w.varint(300);
        assert_eq!(w.0, [0xac, 0x02]);
        let mut w = Writer::default();
        w.string(1, "2.0");
        assert_eq!(w.0, [0x0a, 0x03, b'2', b'.', b'0']);
        let mut w = Writer::default();
        w.int(11, -1);
        assert_eq!(w.0.len(), 1 + 10);
    }

    #[test]
    fn the_document_holds_the_built_in_definitions() {
        let defs = super::super::resources::builtins();
        let none = |_: &ResourceDef, _: &str| None;
        let doc = json_document(&defs, &none);
        let deployment = &doc["definitions"]["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let containers =
            &doc["definitions"]["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert!(protobuf_document(&defs, &none).len() > 100_000);
    }
}
