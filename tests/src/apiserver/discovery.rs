//! Discovery documents: legacy `/api`, `/apis`, per group and version, aggregated discovery
//! (apidiscovery.k8s.io/v2) and `/version`.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::resources::{served_at, ResourceDef};

/// The Kubernetes version the server claims to be.
pub const GIT_VERSION: &str = "v1.33.13";

/// Media type of aggregated discovery, as kubectl 1.32 asks for it.
pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// `/version`.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": GIT_VERSION,
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

/// Non-core groups with their versions (preferred first), in a stable order: built-in groups
/// first in registry order, then CRD groups.
fn groups(defs: &[ResourceDef]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    for d in defs.iter().filter(|d| !d.group.is_empty()) {
        let entry = match out.iter_mut().find(|(g, _)| *g == d.group) {
            Some(e) => e,
            None => {
                out.push((d.group.clone(), Vec::new()));
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        for v in &d.versions {
            if !entry.1.contains(v) {
                entry.1.push(v.clone());
            }
        }
    }
    out
}

fn gv(group: &str, version: &str) -> Value {
    json!({"groupVersion": format!("{group}/{version}"), "version": version})
}

fn api_group(name: &str, versions: &[String]) -> Value {
    let preferred = versions.first().map(String::as_str).unwrap_or("v1");
    json!({
        "name": name,
        "versions": versions.iter().map(|v| gv(name, v)).collect::<Vec<_>>(),
        "preferredVersion": gv(name, preferred),
    })
}

/// `/apis`.
pub fn api_group_list(defs: &[ResourceDef]) -> Value {
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups(defs).iter().map(|(g, vs)| api_group(g, vs)).collect::<Vec<_>>(),
    })
}

/// `/apis/GROUP`, or None for an unknown group.
pub fn api_group_doc(defs: &[ResourceDef], group: &str) -> Option<Value> {
    groups(defs)
        .into_iter()
        .find(|(g, _)| g == group)
        .map(|(g, vs)| {
            let mut doc = api_group(&g, &vs);
            if let Some(m) = doc.as_object_mut() {
                m.insert("kind".into(), json!("APIGroup"));
                m.insert("apiVersion".into(), json!("v1"));
            }
            doc
        })
}

fn storage_version_hash(def: &ResourceDef) -> String {
    // Real servers hash the storage version; clients only compare it for equality.
    use base64::Engine as _;
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{}/{}/{}", def.group, def.preferred_version(), def.kind).as_bytes(),
    );
    base64::engine::general_purpose::STANDARD.encode(&digest.as_ref()[..8])
}

/// Adds `shortNames` and `categories` when the resource has any.
fn insert_names(m: &mut serde_json::Map<String, Value>, d: &ResourceDef) {
    if !d.short_names.is_empty() {
        m.insert("shortNames".into(), json!(d.short_names));
    }
    if !d.categories.is_empty() {
        m.insert("categories".into(), json!(d.categories));
    }
}

/// One subresource as discovery lists it.
struct Subresource {
    name: &'static str,
    group: String,
    version: String,
    kind: String,
    verbs: &'static [&'static str],
}

/// The subresources of a resource at `version`, in name order (as kube-apiserver lists them).
fn subresources(d: &ResourceDef, version: &str) -> Vec<Subresource> {
    const READ_WRITE: &[&str] = &["get", "patch", "update"];
    let mut out = Vec::new();
    if d.scale {
        out.push(Subresource {
            name: "scale",
            group: "autoscaling".into(),
            version: "v1".into(),
            kind: "Scale".into(),
            verbs: READ_WRITE,
        });
    }
    if d.status {
        out.push(Subresource {
            name: "status",
            group: d.group.clone(),
            version: version.to_string(),
            kind: d.kind.clone(),
            verbs: READ_WRITE,
        });
    }
    if d.is("", "serviceaccounts") {
        out.push(Subresource {
            name: "token",
            group: "authentication.k8s.io".into(),
            version: "v1".into(),
            kind: "TokenRequest".into(),
            verbs: &["create"],
        });
    }
    out
}

/// `/api/v1` or `/apis/GROUP/VERSION`, or None when nothing is served there.
pub fn resource_list(defs: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let served = served_at(defs, group, version);
    if served.is_empty() {
        return None;
    }
    let mut resources: BTreeMap<String, Value> = BTreeMap::new();
    for d in served {
        let mut r = json!({
            "name": d.plural,
            "singularName": d.singular,
            "namespaced": d.namespaced,
            "kind": d.kind,
            "verbs": d.verbs,
        });
        if let Some(m) = r.as_object_mut() {
            insert_names(m, d);
            if d.allows("get") {
                m.insert("storageVersionHash".into(), json!(storage_version_hash(d)));
            }
        }
        resources.insert(d.plural.clone(), r);
        for sub in subresources(d, version) {
            let name = format!("{}/{}", d.plural, sub.name);
            let mut r = json!({
                "name": name,
                "singularName": "",
                "namespaced": d.namespaced,
            });
            if let Some(m) = r.as_object_mut() {
                // Legacy discovery names the group and version only when they differ.
                if sub.group != d.group || sub.version != version {
                    m.insert("group".into(), json!(sub.group));
                    m.insert("version".into(), json!(sub.version));
                }
                m.insert("kind".into(), json!(sub.kind));
                m.insert("verbs".into(), json!(sub.verbs));
            }
            resources.insert(name, r);
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    let mut doc = json!({
        "kind": "APIResourceList",
        "groupVersion": gv,
        "resources": resources.into_values().collect::<Vec<_>>(),
    });
    if !group.is_empty() {
        if let Some(m) = doc.as_object_mut() {
            m.insert("apiVersion".into(), json!("v1"));
        }
    }
    Some(doc)
}

fn aggregated_resource(d: &ResourceDef, version: &str) -> Value {
    let scope = if d.namespaced {
        "Namespaced"
    } else {
        "Cluster"
    };
    let mut r = json!({
        "resource": d.plural,
        "responseKind": {"group": d.group, "version": version, "kind": d.kind},
        "scope": scope,
        "singularResource": d.singular,
        "verbs": d.verbs,
    });
    if let Some(m) = r.as_object_mut() {
        insert_names(m, d);
        let subs: Vec<Value> = subresources(d, version)
            .into_iter()
            .map(|sub| {
                json!({
                    "subresource": sub.name,
                    "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                    "verbs": sub.verbs,
                })
            })
            .collect();
        if !subs.is_empty() {
            m.insert("subresources".into(), Value::Array(subs));
        }
    }
    r
}

fn aggregated_group(defs: &[ResourceDef], group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| {
            let mut rs = served_at(defs, group, v);
            rs.sort_by(|a, b| a.plural.cmp(&b.plural));
            json!({
                "version": v,
                "resources": rs.iter().map(|d| aggregated_resource(d, v)).collect::<Vec<_>>(),
                "freshness": "Current",
            })
        })
        .collect();
    let metadata = if group.is_empty() {
        json!({"creationTimestamp": null})
    } else {
        json!({"name": group, "creationTimestamp": null})
    };
    json!({"metadata": metadata, "versions": versions})
}

/// Aggregated discovery for `/api` (core only) or `/apis` (all other groups).
pub fn aggregated(defs: &[ResourceDef], core: bool) -> Value {
    let items: Vec<Value> = if core {
        vec![aggregated_group(defs, "", &["v1".to_string()])]
    } else {
        groups(defs)
            .iter()
            .map(|(g, vs)| aggregated_group(defs, g, vs))
            .collect()
    };
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Whether the Accept header asks for aggregated discovery v2 (other profiles, such as
/// v2beta1, fall back to the legacy documents, which clients accept).
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|part| {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        params.contains(&"g=apidiscovery.k8s.io")
            && params.contains(&"v=v2")
            && params.contains(&"as=APIGroupDiscoveryList")
    })
}
