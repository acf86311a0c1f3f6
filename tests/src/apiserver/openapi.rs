//! A minimal OpenAPI v3 surface. kubectl (1.32) downloads `/openapi/v3` and the document of
//! an object's group-version to learn whether the server supports the `fieldValidation`
//! query parameter; without it, `kubectl apply`/`create -f` stop with "failed to download
//! openapi". The documents list each resource's paths with the
//! `x-kubernetes-group-version-kind` extension and the query parameters of the real
//! server; they carry no schemas (`components.schemas` is empty), so clients that need
//! schemas fall back to their built-in type information.

use serde_json::{json, Map, Value};

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

/// `/openapi/v3`: the index of group-version documents.
pub fn index(defs: &[ResourceDef]) -> Value {
    let mut paths = Map::new();
    for (g, v) in gvs(defs) {
        let p = gv_path(&g, &v);
        let doc = group_version(defs, &g, &v).unwrap_or(Value::Null);
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
pub fn group_version(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let served = served_at(defs, group, version);
    if served.is_empty() {
        return None;
    }
    let base = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for d in served {
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
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}
