//! The resource registry: built-in kinds plus whatever established CRDs add.

use serde_json::{json, Value};

/// Verbs of an ordinary read/write resource, in the order kube-apiserver lists them.
const FULL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One additional printer column of a CRD (used for Table output).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    /// Column header as the CRD spells it.
    pub name: String,
    /// OpenAPI type: string, integer, number, boolean, date.
    pub type_: String,
    /// A simple JSONPath such as `.spec.replicas`.
    pub json_path: String,
    /// 0 for the default view, >0 for `-o wide`.
    pub priority: i64,
    /// Description shown in the column definition.
    pub description: String,
}

/// Everything the server needs to know about one resource (a group + plural).
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceDef {
    /// API group; empty for the core group.
    pub group: String,
    /// Served versions, preferred (storage) version first.
    pub versions: Vec<String>,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Singular name (`kubectl get configmap`).
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
    /// Short names (`cm`, `deploy`).
    pub short_names: Vec<String>,
    /// Categories such as `all`.
    pub categories: Vec<String>,
    /// Verbs on the main resource.
    pub verbs: Vec<String>,
    /// Whether the `status` subresource exists (main writes then ignore status).
    pub status: bool,
    /// Whether the `scale` subresource exists (an `autoscaling/v1` Scale over `spec.replicas`).
    pub scale: bool,
    /// Whether `metadata.generation` is maintained.
    pub has_generation: bool,
    /// True for resources defined by a CRD.
    pub custom: bool,
    /// Extra Table columns (CRD additionalPrinterColumns).
    pub printer_columns: Vec<PrinterColumn>,
    /// Whether DELETE answers with the deleted object instead of a Success Status.
    pub return_deleted_object: bool,
}

/// The resources served at `group`/`version`.
pub fn served_at<'a>(defs: &'a [ResourceDef], group: &str, version: &str) -> Vec<&'a ResourceDef> {
    defs.iter()
        .filter(|d| d.group == group && d.versions.iter().any(|v| v == version))
        .collect()
}

impl ResourceDef {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{}", self.group, version)
        }
    }

    /// The preferred version.
    pub fn preferred_version(&self) -> &str {
        self.versions.first().map(String::as_str).unwrap_or("v1")
    }

    /// `ConfigMapList`.
    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    /// `deployments.apps`, or `configmaps` for the core group: how error messages name it.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Deployment.apps`: how validation errors name the kind.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether this resource supports `verb` on the main resource.
    pub fn allows(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }

    /// Whether this is the given group and plural.
    pub fn is(&self, group: &str, plural: &str) -> bool {
        self.group == group && self.plural == plural
    }
}

struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    verbs: &'static [&'static str],
    status: bool,
    has_generation: bool,
    return_deleted_object: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        status: true,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "deployments",
        singular: "deployment",
        kind: "Deployment",
        namespaced: true,
        short_names: &["deploy"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "batch",
        version: "v1",
        plural: "cronjobs",
        singular: "cronjob",
        kind: "CronJob",
        namespaced: true,
        short_names: &["cj"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "batch",
        version: "v1",
        plural: "jobs",
        singular: "job",
        kind: "Job",
        namespaced: true,
        short_names: &[],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterrolebindings",
        singular: "clusterrolebinding",
        kind: "ClusterRoleBinding",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "clusterroles",
        singular: "clusterrole",
        kind: "ClusterRole",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "roles",
        singular: "role",
        kind: "Role",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "apiextensions.k8s.io",
        version: "v1",
        plural: "customresourcedefinitions",
        singular: "customresourcedefinition",
        kind: "CustomResourceDefinition",
        namespaced: false,
        short_names: &["crd", "crds"],
        categories: &["api-extensions"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: true,
    },
    Builtin {
        group: "events.k8s.io",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        kind: "SelfSubjectAccessReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "subjectaccessreviews",
        singular: "subjectaccessreview",
        kind: "SubjectAccessReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "authorization.k8s.io",
        version: "v1",
        plural: "localsubjectaccessreviews",
        singular: "localsubjectaccessreview",
        kind: "LocalSubjectAccessReview",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        kind: "SelfSubjectReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "authentication.k8s.io",
        version: "v1",
        plural: "tokenreviews",
        singular: "tokenreview",
        kind: "TokenReview",
        namespaced: false,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "bindings",
        singular: "binding",
        kind: "Binding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: &["create"],
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        categories: &[],
        verbs: FULL_VERBS,
        status: true,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "podtemplates",
        singular: "podtemplate",
        kind: "PodTemplate",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "resourcequotas",
        singular: "resourcequota",
        kind: "ResourceQuota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        verbs: FULL_VERBS,
        status: true,
        has_generation: false,
        return_deleted_object: false,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        verbs: FULL_VERBS,
        status: true,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "",
        version: "v1",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        kind: "PersistentVolume",
        namespaced: false,
        short_names: &["pv"],
        categories: &[],
        verbs: FULL_VERBS,
        status: true,
        has_generation: false,
        return_deleted_object: true,
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        verbs: FULL_VERBS,
        status: true,
        has_generation: true,
        return_deleted_object: false,
    },
    Builtin {
        group: "apps",
        version: "v1",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        kind: "ControllerRevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        verbs: FULL_VERBS,
        status: false,
        has_generation: false,
        return_deleted_object: false,
    },
];

/// The built-in resources.
pub fn builtins() -> Vec<ResourceDef> {
    BUILTINS
        .iter()
        .map(|b| ResourceDef {
            group: b.group.to_string(),
            versions: vec![b.version.to_string()],
            plural: b.plural.to_string(),
            singular: b.singular.to_string(),
            kind: b.kind.to_string(),
            namespaced: b.namespaced,
            short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
            categories: b.categories.iter().map(|s| s.to_string()).collect(),
            verbs: b.verbs.iter().map(|s| s.to_string()).collect(),
            status: b.status,
            // kube-apiserver serves `/scale` for these built-ins (ReplicaSets and
            // ReplicationControllers too, which this server does not serve).
            scale: b.group == "apps" && matches!(b.plural, "deployments" | "statefulsets"),
            has_generation: b.has_generation,
            custom: false,
            printer_columns: Vec::new(),
            return_deleted_object: b.return_deleted_object,
        })
        .collect()
}

/// The strings of a JSON array (non-strings skipped); empty when it is not an array.
pub fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The resource a stored CRD defines, or None when the CRD is malformed.
pub fn from_crd(crd: &Value) -> Option<ResourceDef> {
    // A terminating CRD is still served (its objects can be read, updated and deleted, so
    // finalizers can be removed); creates are refused in the handlers.
    let spec = crd.get("spec")?;
    let group = spec.get("group")?.as_str()?.to_string();
    let names = spec.get("names")?;
    let plural = names.get("plural")?.as_str()?.to_string();
    let kind = names.get("kind")?.as_str()?.to_string();
    let singular = names
        .get("singular")
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let mut versions = Vec::new();
    let mut status = false;
    let mut printer_columns = Vec::new();
    let all = spec.get("versions")?.as_array()?;
    // The storage version is the preferred one unless another is served first by priority;
    // kube-apiserver sorts by version priority, which for the usual v1/v1beta1 agrees with
    // "storage first".
    let mut ordered: Vec<&Value> = all.iter().collect();
    ordered.sort_by_key(|v| v.get("storage").and_then(Value::as_bool) != Some(true));
    for v in ordered {
        if v.get("served").and_then(Value::as_bool) != Some(true) {
            continue;
        }
        let Some(name) = v.get("name").and_then(Value::as_str) else {
            continue;
        };
        versions.push(name.to_string());
        if v.pointer("/subresources/status").is_some() {
            status = true;
        }
        if printer_columns.is_empty() {
            if let Some(cols) = v.get("additionalPrinterColumns").and_then(Value::as_array) {
                printer_columns = cols
                    .iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: c.get("name")?.as_str()?.to_string(),
                            type_: c
                                .get("type")
                                .and_then(Value::as_str)
                                .unwrap_or("string")
                                .to_string(),
                            json_path: c.get("jsonPath")?.as_str()?.to_string(),
                            priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
                            description: c
                                .get("description")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string(),
                        })
                    })
                    .collect();
            }
        }
    }
    if versions.is_empty() {
        return None;
    }
    Some(ResourceDef {
        group,
        versions,
        plural,
        singular,
        kind,
        namespaced,
        short_names: str_list(names.get("shortNames")),
        categories: str_list(names.get("categories")),
        verbs: FULL_VERBS.iter().map(|s| s.to_string()).collect(),
        status,
        scale: false,
        has_generation: true,
        custom: true,
        printer_columns,
        return_deleted_object: true,
    })
}

/// The `status` a CRD gets once its names are accepted and it is established.
pub fn crd_status(crd: &Value, now: &str, old_status: Option<&Value>) -> Value {
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let mut accepted = serde_json::Map::new();
    for key in [
        "kind",
        "listKind",
        "plural",
        "singular",
        "shortNames",
        "categories",
    ] {
        if let Some(v) = names.get(key) {
            accepted.insert(key.to_string(), v.clone());
        }
    }
    if !accepted.contains_key("listKind") {
        if let Some(kind) = names.get("kind").and_then(Value::as_str) {
            accepted.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if !accepted.contains_key("singular") {
        if let Some(kind) = names.get("kind").and_then(Value::as_str) {
            accepted.insert("singular".into(), json!(kind.to_lowercase()));
        }
    }
    // Keep transition times stable across updates, as the real controllers do.
    let time_of = |ty: &str| -> String {
        old_status
            .and_then(|s| s.get("conditions"))
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("type").and_then(Value::as_str) == Some(ty))
            })
            .and_then(|c| c.get("lastTransitionTime"))
            .and_then(Value::as_str)
            .unwrap_or(now)
            .to_string()
    };
    let mut stored: Vec<String> = str_list(old_status.and_then(|s| s.get("storedVersions")));
    if let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) {
        for v in versions {
            if v.get("storage").and_then(Value::as_bool) == Some(true) {
                if let Some(name) = v.get("name").and_then(Value::as_str) {
                    if !stored.iter().any(|s| s == name) {
                        stored.push(name.to_string());
                    }
                }
            }
        }
    }
    json!({
        "acceptedNames": Value::Object(accepted),
        "conditions": [
            {
                "type": "NamesAccepted",
                "status": "True",
                "lastTransitionTime": time_of("NamesAccepted"),
                "reason": "NoConflicts",
                "message": "no conflicts found",
            },
            {
                "type": "Established",
                "status": "True",
                "lastTransitionTime": time_of("Established"),
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": stored,
    })
}
