//! The schemas of the built-in kinds, in two forms:
//!
//! - from k8s-openapi, with every subschema inlined: what the embedded server prunes
//!   undeclared fields by, and what strict field validation and server-side apply refuse them
//!   by (generated once per kind, on first use);
//! - kube-apiserver's own published OpenAPI v3 definitions, which `/openapi/v3` serves and
//!   `kubectl explain` reads.

use std::sync::OnceLock;

use k8s_openapi::api::{apps, batch, coordination, core, events, networking, policy, rbac};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions;
use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{Map, Value};

/// One built-in kind with a schema.
struct Kind {
    group: &'static str,
    plural: &'static str,
    /// The schema with every subschema inlined.
    inlined: fn() -> Value,
}

fn inlined<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::default()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or(Value::Null)
}

macro_rules! kinds {
    ($(($group:literal, $plural:literal, $ty:ty)),* $(,)?) => {
        &[$(Kind {
            group: $group,
            plural: $plural,
            inlined: inlined::<$ty>,
        }),*]
    };
}

const KINDS: &[Kind] = kinds![
    ("", "configmaps", core::v1::ConfigMap),
    ("", "secrets", core::v1::Secret),
    ("", "services", core::v1::Service),
    ("", "serviceaccounts", core::v1::ServiceAccount),
    ("", "namespaces", core::v1::Namespace),
    ("", "events", core::v1::Event),
    ("", "pods", core::v1::Pod),
    ("", "endpoints", core::v1::Endpoints),
    ("", "limitranges", core::v1::LimitRange),
    (
        "",
        "persistentvolumeclaims",
        core::v1::PersistentVolumeClaim
    ),
    ("", "podtemplates", core::v1::PodTemplate),
    (
        "",
        "replicationcontrollers",
        core::v1::ReplicationController
    ),
    ("", "resourcequotas", core::v1::ResourceQuota),
    ("", "nodes", core::v1::Node),
    ("", "persistentvolumes", core::v1::PersistentVolume),
    ("apps", "deployments", apps::v1::Deployment),
    ("apps", "statefulsets", apps::v1::StatefulSet),
    ("apps", "daemonsets", apps::v1::DaemonSet),
    ("apps", "replicasets", apps::v1::ReplicaSet),
    ("apps", "controllerrevisions", apps::v1::ControllerRevision),
    ("batch", "jobs", batch::v1::Job),
    ("batch", "cronjobs", batch::v1::CronJob),
    ("networking.k8s.io", "ingresses", networking::v1::Ingress),
    (
        "networking.k8s.io",
        "networkpolicies",
        networking::v1::NetworkPolicy
    ),
    (
        "policy",
        "poddisruptionbudgets",
        policy::v1::PodDisruptionBudget
    ),
    ("rbac.authorization.k8s.io", "roles", rbac::v1::Role),
    (
        "rbac.authorization.k8s.io",
        "rolebindings",
        rbac::v1::RoleBinding
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterroles",
        rbac::v1::ClusterRole
    ),
    (
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        rbac::v1::ClusterRoleBinding
    ),
    ("coordination.k8s.io", "leases", coordination::v1::Lease),
    ("events.k8s.io", "events", events::v1::Event),
    (
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        apiextensions::v1::CustomResourceDefinition
    ),
];

fn find(group: &str, plural: &str) -> Option<(usize, &'static Kind)> {
    KINDS
        .iter()
        .enumerate()
        .find(|(_, k)| k.group == group && k.plural == plural)
}

/// The inlined schema of a built-in resource, when this module has it.
pub fn for_resource(group: &str, plural: &str) -> Option<&'static Value> {
    static INLINED: OnceLock<Vec<OnceLock<Value>>> = OnceLock::new();
    let (index, kind) = find(group, plural)?;
    let cache = INLINED.get_or_init(|| KINDS.iter().map(|_| OnceLock::new()).collect());
    Some(cache.get(index)?.get_or_init(kind.inlined)).filter(|s| s.is_object())
}

/// kube-apiserver's own OpenAPI v3 definitions of the group-versions this server serves
/// (`tests/data/openapi/schemas.json`, recorded by `scripts/openapi-schemas.py` from the real
/// test server's `/openapi/v3`):
/// what `/openapi/v3` serves, so `kubectl explain` shows the real descriptions, enums and
/// required fields.
fn published() -> &'static Map<String, Value> {
    &recorded().schemas
}

/// `tests/data/openapi/schemas.json`, parsed once.
#[derive(Default)]
struct Recorded {
    version: Option<String>,
    schemas: Map<String, Value>,
    definitions_v2: Map<String, Value>,
}

fn recorded() -> &'static Recorded {
    static RECORDED: OnceLock<Recorded> = OnceLock::new();
    RECORDED.get_or_init(|| {
        let text = include_str!("../../data/openapi/schemas.json");
        let Ok(Value::Object(mut doc)) = serde_json::from_str::<Value>(text) else {
            return Recorded::default();
        };
        let mut map = |key: &str| match doc.remove(key) {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        let schemas = map("schemas");
        let definitions_v2 = map("definitionsV2");
        Recorded {
            version: doc
                .get("kubernetesVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
            schemas,
            definitions_v2,
        }
    })
}

/// kube-apiserver's OpenAPI v2 definitions of the same kinds (served at `/openapi/v2`).
pub fn definitions_v2() -> &'static Map<String, Value> {
    &recorded().definitions_v2
}

/// The Kubernetes release the published definitions come from.
pub fn published_version() -> Option<&'static str> {
    recorded().version.as_deref()
}

/// Adds `name` and every definition it refers to, transitively.
fn add_with_references(name: &str, out: &mut Map<String, Value>) {
    let mut pending = vec![name.to_string()];
    while let Some(next) = pending.pop() {
        if out.contains_key(&next) {
            continue;
        }
        let Some(definition) = published().get(&next) else {
            continue;
        };
        collect_references(definition, &mut pending);
        out.insert(next, definition.clone());
    }
}

fn collect_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => {
                        if let Some(name) = r.strip_prefix("#/components/schemas/") {
                            out.push(name.to_string());
                        }
                    }
                    _ => collect_references(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

/// Whether a definition declares the given group, version and kind.
fn declares(definition: &Value, group: &str, version: &str, kind: &str) -> bool {
    definition
        .get("x-kubernetes-group-version-kind")
        .and_then(Value::as_array)
        .is_some_and(|gvks| {
            gvks.iter().any(|gvk| {
                gvk.get("group").and_then(Value::as_str) == Some(group)
                    && gvk.get("version").and_then(Value::as_str) == Some(version)
                    && gvk.get("kind").and_then(Value::as_str) == Some(kind)
            })
        })
}

/// The OpenAPI v3 components of a group-version's built-in kinds (`kinds` names each one):
/// the kind's definition, carrying `x-kubernetes-group-version-kind`, and every definition
/// it refers to.
pub fn components(group: &str, version: &str, kinds: &[&str]) -> Map<String, Value> {
    let mut out = Map::new();
    for kind in kinds {
        let found = published()
            .iter()
            .find(|(_, definition)| declares(definition, group, version, kind))
            .map(|(name, _)| name.clone());
        if let Some(name) = found {
            add_with_references(&name, &mut out);
        }
    }
    out
}

/// The name of ObjectMeta's definition.
pub const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// ObjectMeta's definition and those it refers to, for the documents of custom resources.
pub fn object_meta_components() -> Map<String, Value> {
    let mut out = Map::new();
    add_with_references(OBJECT_META, &mut out);
    out
}

/// The descriptions of `apiVersion`, `kind` and `metadata` every kind's definition carries.
pub fn type_meta_descriptions() -> (String, String, String) {
    let config_map = published().get("io.k8s.api.core.v1.ConfigMap");
    let text = |field: &str| {
        config_map
            .and_then(|s| s.pointer(&format!("/properties/{field}/description")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (text("apiVersion"), text("kind"), text("metadata"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_inlined_and_declare_the_fields() {
        let deployment = for_resource("apps", "deployments").expect("deployments");
        let containers = deployment
            .pointer("/properties/spec/properties/template/properties/spec/properties/containers/items/properties")
            .expect("containers inlined");
        assert!(containers.get("image").is_some());
        let config_map = for_resource("", "configmaps").expect("configmaps");
        assert!(config_map
            .pointer("/properties/data/additionalProperties")
            .is_some());
    }

    #[test]
    fn the_published_definitions_are_of_the_real_servers_release() {
        assert_eq!(
            published_version(),
            Some(crate::kubeapiserver::binaries::kube_version())
        );
    }

    #[test]
    fn components_are_the_kinds_and_what_they_refer_to() {
        let defs = components("apps", "v1", &["Deployment"]);
        let deployment = defs
            .get("io.k8s.api.apps.v1.Deployment")
            .expect("the kind's definition");
        assert!(declares(deployment, "apps", "v1", "Deployment"));
        assert!(defs.contains_key("io.k8s.api.apps.v1.DeploymentSpec"));
        assert!(defs.contains_key("io.k8s.api.core.v1.Container"));
        assert!(defs.contains_key(OBJECT_META));
        assert!(!defs.contains_key("io.k8s.api.apps.v1.StatefulSet"));
    }
}
