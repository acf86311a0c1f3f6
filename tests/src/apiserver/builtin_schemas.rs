//! The schemas of the built-in kinds, from k8s-openapi (the same OpenAPI definitions
//! kube-apiserver v1.33 serves), with every subschema inlined: what the embedded server prunes
//! undeclared fields by, and what strict field validation and server-side apply refuse them by.
//! Generated once per kind, on first use.

use std::collections::HashMap;
use std::sync::OnceLock;

use k8s_openapi::api::{apps, batch, coordination, core, events, networking, rbac};
use schemars::JsonSchema;
use serde_json::Value;

fn generate<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::default()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or(Value::Null)
}

type Schemas = HashMap<(&'static str, &'static str), Value>;

fn all() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let mut out = Schemas::new();
        let mut add = |group: &'static str, plural: &'static str, schema: Value| {
            out.insert((group, plural), schema);
        };
        add("", "configmaps", generate::<core::v1::ConfigMap>());
        add("", "secrets", generate::<core::v1::Secret>());
        add("", "services", generate::<core::v1::Service>());
        add(
            "",
            "serviceaccounts",
            generate::<core::v1::ServiceAccount>(),
        );
        add("", "namespaces", generate::<core::v1::Namespace>());
        add("", "events", generate::<core::v1::Event>());
        add("", "pods", generate::<core::v1::Pod>());
        add("", "endpoints", generate::<core::v1::Endpoints>());
        add("", "limitranges", generate::<core::v1::LimitRange>());
        add(
            "",
            "persistentvolumeclaims",
            generate::<core::v1::PersistentVolumeClaim>(),
        );
        add("", "podtemplates", generate::<core::v1::PodTemplate>());
        add(
            "",
            "replicationcontrollers",
            generate::<core::v1::ReplicationController>(),
        );
        add("", "resourcequotas", generate::<core::v1::ResourceQuota>());
        add("", "nodes", generate::<core::v1::Node>());
        add(
            "",
            "persistentvolumes",
            generate::<core::v1::PersistentVolume>(),
        );
        add("apps", "deployments", generate::<apps::v1::Deployment>());
        add("apps", "statefulsets", generate::<apps::v1::StatefulSet>());
        add("apps", "daemonsets", generate::<apps::v1::DaemonSet>());
        add("apps", "replicasets", generate::<apps::v1::ReplicaSet>());
        add("batch", "jobs", generate::<batch::v1::Job>());
        add("batch", "cronjobs", generate::<batch::v1::CronJob>());
        add(
            "networking.k8s.io",
            "ingresses",
            generate::<networking::v1::Ingress>(),
        );
        add(
            "rbac.authorization.k8s.io",
            "roles",
            generate::<rbac::v1::Role>(),
        );
        add(
            "rbac.authorization.k8s.io",
            "rolebindings",
            generate::<rbac::v1::RoleBinding>(),
        );
        add(
            "rbac.authorization.k8s.io",
            "clusterroles",
            generate::<rbac::v1::ClusterRole>(),
        );
        add(
            "rbac.authorization.k8s.io",
            "clusterrolebindings",
            generate::<rbac::v1::ClusterRoleBinding>(),
        );
        add(
            "coordination.k8s.io",
            "leases",
            generate::<coordination::v1::Lease>(),
        );
        add("events.k8s.io", "events", generate::<events::v1::Event>());
        out
    })
}

/// The schema of a built-in resource, when this module has it.
pub fn for_resource(group: &str, plural: &str) -> Option<&'static Value> {
    all()
        .iter()
        .find(|((g, p), _)| *g == group && *p == plural)
        .map(|(_, schema)| schema)
        .filter(|s| s.is_object())
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
}
