//! The OpenAPI v3 documents. kubectl downloads `/openapi/v3` and the document of an object's
//! group-version to learn whether the server supports the `fieldValidation` query parameter
//! (without it, `kubectl apply`/`create -f` stop with "failed to download openapi"), and
//! `kubectl explain` reads the schemas. Each document lists its resources' paths with the
//! `x-kubernetes-group-version-kind` extension and the query parameters of the real server,
//! and `components.schemas` holds the kinds' definitions: the built-in kinds' from
//! kube-apiserver's published specification ([`super::builtin_schemas::components`]), a
//! custom resource's from its CRD, completed with `apiVersion`, `kind` and `metadata` as
//! kube-apiserver completes them.

use serde_json::{json, Map, Value};

use super::builtin_schemas;
use super::discovery::GIT_VERSION;
use super::resources::{served_at, ResourceDef};

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

fn gvs(defs: &[ResourceDef]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for d in defs {
        for v in &d.versions {
            let k = (d.group.clone(), v.clone());
            if !out.contains(&k) {
                out.push(k);
            }
        }
    }
    out
}

fn hash(v: &Value) -> String {
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA512, &bytes);
    d.as_ref()
        .iter()
        .take(32)
        .map(|b| format!("{b:02X}"))
        .collect()
}

/// The `openAPIV3Schema` of a custom resource's version, when its CRD has one.
pub type CustomSchema<'a> = &'a dyn Fn(&ResourceDef, &str) -> Option<Value>;

/// `/openapi/v3`: the index of group-version documents.
pub fn index(defs: &[ResourceDef], custom: CustomSchema<'_>) -> Value {
    let mut paths = Map::new();
    for (g, v) in gvs(defs) {
        let p = gv_path(&g, &v);
        // The built-in definitions never change, so the hash need not cover them: hashing
        // megabytes of schema on every index request would cost more than serving it.
        let doc = json!([
            document(defs, &g, &v, custom, false),
            builtin_schemas::published_version(),
        ]);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn ok_response() -> Value {
    json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/GROUP/VERSION`.
pub fn group_version(
    defs: &[ResourceDef],
    group: &str,
    version: &str,
    custom: CustomSchema<'_>,
) -> Option<Value> {
    document(defs, group, version, custom, true)
}

fn document(
    defs: &[ResourceDef],
    group: &str,
    version: &str,
    custom: CustomSchema<'_>,
    builtin_components: bool,
) -> Option<Value> {
    let served = served_at(defs, group, version);
    if served.is_empty() {
        return None;
    }
    let base = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for d in &served {
        let gvk = json!({"group": d.group, "version": version, "kind": d.kind});
        let write_params = vec![
            param("dryRun", "When present, indicates that modifications should not be persisted."),
            param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
            param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields."),
        ];
        let mut patch_params = write_params.clone();
        patch_params.push(param(
            "force",
            "Force is going to \"force\" Apply requests.",
        ));
        let collection = if d.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", d.plural)
        } else {
            format!("{base}/{}", d.plural)
        };
        let item = format!("{collection}/{{name}}");
        let mut coll = Map::new();
        let mut one = Map::new();
        let op = |verb: &str, params: &[Value]| {
            json!({
                "operationId": format!("{verb}{}", d.kind),
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk,
                "parameters": params,
                "responses": ok_response(),
            })
        };
        if d.allows("list") {
            coll.insert("get".into(), op("list", &[]));
        }
        if d.allows("create") {
            coll.insert("post".into(), op("post", &write_params));
        }
        if d.allows("deletecollection") {
            coll.insert("delete".into(), op("deletecollection", &[]));
        }
        if d.allows("get") {
            one.insert("get".into(), op("get", &[]));
        }
        if d.allows("update") {
            one.insert("put".into(), op("put", &write_params));
        }
        if d.allows("patch") {
            one.insert("patch".into(), op("patch", &patch_params));
        }
        if d.allows("delete") {
            one.insert("delete".into(), op("delete", &[param("dryRun", "")]));
        }
        if !coll.is_empty() {
            paths.insert(collection.clone(), Value::Object(coll));
        }
        if !one.is_empty() {
            paths.insert(item.clone(), Value::Object(one));
        }
        if d.status {
            paths.insert(
                format!("{item}/status"),
                json!({
                    "get": op("get", &[]),
                    "put": op("put", &write_params),
                    "patch": op("patch", &patch_params),
                }),
            );
        }
    }
    let builtin_kinds: Vec<&str> = served
        .iter()
        .filter(|d| !d.custom)
        .map(|d| d.kind.as_str())
        .collect();
    let mut schemas = if builtin_components {
        builtin_schemas::components(group, version, &builtin_kinds)
    } else {
        Map::new()
    };
    for d in served.iter().filter(|d| d.custom) {
        if let Some(schema) = custom(d, version) {
            add_custom_definition(&mut schemas, d, version, schema);
        }
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `com.example.v1.Gadget`: how kube-apiserver names a custom resource's definition (the
/// group's labels reversed, then version and kind).
pub fn custom_definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').rev().collect();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

/// Completes a CRD's schema as kube-apiserver publishes it: the GVK extension, `apiVersion`
/// and `kind` with their descriptions, and `metadata` as `metadata_ref` (a reference to
/// ObjectMeta, in the form of the document's version) with its description.
pub fn complete_custom_definition(
    schema: &mut Value,
    def: &ResourceDef,
    version: &str,
    mut metadata_ref: Value,
) {
    let (api_version, kind, metadata) = builtin_schemas::type_meta_descriptions();
    let Some(obj) = schema.as_object_mut() else {
        return;
    };
    obj.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": def.group, "kind": def.kind, "version": version}]),
    );
    if let Some(m) = metadata_ref.as_object_mut() {
        m.insert("description".into(), json!(metadata));
    }
    if let Some(props) = obj
        .entry("properties")
        .or_insert_with(|| json!({}))
        .as_object_mut()
    {
        props.insert(
            "apiVersion".into(),
            json!({"description": api_version, "type": "string"}),
        );
        props.insert(
            "kind".into(),
            json!({"description": kind, "type": "string"}),
        );
        props.insert("metadata".into(), metadata_ref);
    }
    obj.entry("type").or_insert_with(|| json!("object"));
}

/// Adds a custom resource's definition: its CRD schema with `apiVersion`, `kind` and a
/// `metadata` that refers to ObjectMeta (whose definitions come along), and its GVK.
fn add_custom_definition(
    schemas: &mut Map<String, Value>,
    def: &ResourceDef,
    version: &str,
    mut schema: Value,
) {
    let meta = builtin_schemas::object_meta_components();
    for (name, definition) in meta {
        schemas.entry(name).or_insert(definition);
    }
    let metadata_ref = json!({
        "allOf": [{"$ref": format!("#/components/schemas/{}", builtin_schemas::OBJECT_META)}],
    });
    complete_custom_definition(&mut schema, def, version, metadata_ref);
    schemas.insert(
        custom_definition_name(&def.group, version, &def.kind),
        schema,
    );
}
