//! Schemas: how each field of a built-in kind or a CRD merges under server-side apply.

use super::*;

/// How a list merges under server-side apply.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum ListType {
    /// Replaced as a whole (`x-kubernetes-list-type: atomic`, the default).
    Atomic,
    /// Scalar items merged as a set (`v:` path elements).
    Set,
    /// Object items merged by these key fields, with the schema default for absent keys.
    Map(Vec<(String, Option<Value>)>),
}

/// How a list merges under a strategic merge patch (`patchStrategy`/`patchMergeKey` tags).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SmpStrategy {
    /// The patch list replaces the live one.
    Replace,
    /// Merge; object items by this key, scalar items (None) as a deduplicated union.
    Merge(Option<String>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ObjectNode {
    pub(super) fields: BTreeMap<String, Node>,
    /// Type of fields not in `fields` (a map's element type); None = [`Node::Any`].
    pub(super) other: Option<Node>,
    /// A Go non-pointer struct: present as `{}` in an empty object of the kind, which decides
    /// whether creating its content also makes an updater own the struct itself.
    pub(super) present: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListNode {
    pub(crate) ssa: ListType,
    pub(crate) smp: SmpStrategy,
    pub(super) item: Node,
}

/// A schema node. Unknown fields are [`Node::Any`]: objects merge field by field and lists are
/// atomic (server-side apply) or replaced (strategic merge patch).
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Node {
    #[default]
    Any,
    /// Owned and replaced as one value (`x-kubernetes-map-type: atomic`, `structType=atomic`).
    Atomic,
    Object(Box<ObjectNode>),
    List(Box<ListNode>),
}

pub(super) static ANY: Node = Node::Any;

impl Node {
    pub(crate) fn field(&self, name: &str) -> &Node {
        match self {
            Node::Object(o) => o.fields.get(name).or(o.other.as_ref()).unwrap_or(&ANY),
            _ => &ANY,
        }
    }

    pub(crate) fn item(&self) -> &Node {
        match self {
            Node::List(l) => &l.item,
            _ => &ANY,
        }
    }

    pub(crate) fn list(&self) -> Option<&ListNode> {
        match self {
            Node::List(l) => Some(l),
            _ => None,
        }
    }

    /// An empty object of this type as Go would serialize its zero value.
    pub(super) fn skeleton(&self) -> Map<String, Value> {
        let mut out = Map::new();
        if let Node::Object(o) = self {
            for (name, child) in &o.fields {
                if let Node::Object(c) = child {
                    if c.present {
                        out.insert(name.clone(), Value::Object(child.skeleton()));
                    }
                }
            }
        }
        out
    }
}

/// Field and list types of one kind: which lists merge by key, which objects are atomic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TypeSchema {
    pub(super) root: Node,
    /// Built-in kinds start from Go zero values; custom resources from `{apiVersion, kind}`.
    pub(super) builtin: bool,
}

impl TypeSchema {
    /// The built-in schema of a kind (Kubernetes 1.32 list types), or the "everything granular,
    /// lists atomic" schema for kinds this module does not know.
    pub fn for_kind(api_version: &str, kind: &str) -> TypeSchema {
        builtin_schema(api_version, kind)
            .cloned()
            .unwrap_or_else(|| TypeSchema {
                root: custom_root(Node::Any),
                builtin: false,
            })
    }

    /// The schema of a CRD version from `spec.versions[].schema.openAPIV3Schema`, honouring
    /// `x-kubernetes-list-type`, `x-kubernetes-list-map-keys` (with key defaults) and
    /// `x-kubernetes-map-type`. None when the CRD has no such version.
    pub fn from_crd(crd: &Value, version: &str) -> Option<TypeSchema> {
        let versions = crd.pointer("/spec/versions")?.as_array()?;
        let v = versions
            .iter()
            .find(|v| v.get("name").and_then(Value::as_str) == Some(version))?;
        let schema = v
            .pointer("/schema/openAPIV3Schema")
            .or_else(|| crd.pointer("/spec/validation/openAPIV3Schema"));
        Some(match schema {
            Some(s) => TypeSchema::from_openapi_v3(s),
            None => TypeSchema {
                root: custom_root(Node::Any),
                builtin: false,
            },
        })
    }

    /// The schema of a custom resource from its OpenAPI v3 schema.
    pub fn from_openapi_v3(schema: &Value) -> TypeSchema {
        TypeSchema {
            root: custom_root(openapi_node(schema)),
            builtin: false,
        }
    }

    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// The empty object a write starts from when there is no live object.
    pub(super) fn empty_object(&self, like: &Value) -> Value {
        let mut out = if self.builtin {
            self.root.skeleton()
        } else {
            Map::new()
        };
        for key in ["apiVersion", "kind"] {
            if let Some(v) = like.get(key) {
                out.insert(key.into(), v.clone());
            }
        }
        Value::Object(out)
    }
}

/// A custom resource: its own schema, with ObjectMeta's list types for `metadata`.
pub(super) fn custom_root(node: Node) -> Node {
    let mut o = match node {
        Node::Object(o) => *o,
        _ => ObjectNode {
            fields: BTreeMap::new(),
            other: None,
            present: true,
        },
    };
    o.fields.insert("metadata".into(), object_meta());
    Node::Object(Box::new(o))
}

pub(super) fn openapi_node(s: &Value) -> Node {
    let ty = s.get("type").and_then(Value::as_str);
    if s.get("x-kubernetes-map-type").and_then(Value::as_str) == Some("atomic")
        && ty != Some("array")
    {
        return Node::Atomic;
    }
    if ty == Some("array") || s.get("items").is_some() {
        let item = s.get("items").map(openapi_node).unwrap_or_default();
        let ssa = match s.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys = s
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| {
                        keys.iter()
                            .filter_map(Value::as_str)
                            .map(|k| {
                                let default = s
                                    .pointer(&format!("/items/properties/{k}/default"))
                                    .cloned();
                                (k.to_string(), default)
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if keys.is_empty() {
                    ListType::Atomic
                } else {
                    ListType::Map(keys)
                }
            }
            _ => ListType::Atomic,
        };
        return Node::List(Box::new(ListNode {
            ssa,
            smp: SmpStrategy::Replace,
            item,
        }));
    }
    let props = s.get("properties").and_then(Value::as_object);
    let additional = s.get("additionalProperties").filter(|a| a.is_object());
    if props.is_none() && additional.is_none() {
        return Node::Any;
    }
    Node::Object(Box::new(ObjectNode {
        fields: props
            .map(|p| {
                p.iter()
                    .map(|(k, v)| (k.clone(), openapi_node(v)))
                    .collect()
            })
            .unwrap_or_default(),
        other: additional.map(openapi_node),
        present: false,
    }))
}

// Builders for the built-in table. `obj` is a pointer struct (absent until set), `sobj` a
// value struct (always serialized).
pub(super) fn obj(fields: Vec<(&str, Node)>) -> Node {
    struct_node(fields, false)
}

pub(super) fn sobj(fields: Vec<(&str, Node)>) -> Node {
    struct_node(fields, true)
}

pub(super) fn struct_node(fields: Vec<(&str, Node)>, present: bool) -> Node {
    Node::Object(Box::new(ObjectNode {
        fields: fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        other: None,
        present,
    }))
}

/// `listType=map` with `listMapKey`s (and defaults), plus the SMP merge key (None: the field
/// has no patch strategy and SMP replaces it).
pub(super) fn map_list(keys: &[(&str, Option<&str>)], smp_key: Option<&str>, item: Node) -> Node {
    Node::List(Box::new(ListNode {
        ssa: ListType::Map(
            keys.iter()
                .map(|(k, d)| (k.to_string(), d.map(|d| Value::String(d.to_string()))))
                .collect(),
        ),
        smp: match smp_key {
            Some(k) => SmpStrategy::Merge(Some(k.to_string())),
            None => SmpStrategy::Replace,
        },
        item,
    }))
}

/// `listType=set` + `patchStrategy=merge`.
pub(super) fn set_list() -> Node {
    Node::List(Box::new(ListNode {
        ssa: ListType::Set,
        smp: SmpStrategy::Merge(None),
        item: Node::Any,
    }))
}

/// `listType=atomic` but with an SMP merge key (e.g. JobStatus.conditions).
pub(super) fn atomic_list_smp(smp_key: &str) -> Node {
    Node::List(Box::new(ListNode {
        ssa: ListType::Atomic,
        smp: SmpStrategy::Merge(Some(smp_key.to_string())),
        item: Node::Any,
    }))
}

pub(super) fn named(item: Node) -> Node {
    map_list(&[("name", None)], Some("name"), item)
}

pub(super) fn conditions() -> Node {
    map_list(&[("type", None)], Some("type"), Node::Any)
}

pub(super) fn object_meta() -> Node {
    sobj(vec![
        ("finalizers", set_list()),
        (
            "ownerReferences",
            map_list(&[("uid", None)], Some("uid"), Node::Atomic),
        ),
        ("managedFields", Node::Atomic),
    ])
}

pub(super) fn container() -> Node {
    let key_ref = || Node::Atomic;
    obj(vec![
        (
            "ports",
            map_list(
                &[("containerPort", None), ("protocol", Some("TCP"))],
                Some("containerPort"),
                Node::Any,
            ),
        ),
        (
            "env",
            named(obj(vec![(
                "valueFrom",
                obj(vec![
                    ("secretKeyRef", key_ref()),
                    ("configMapKeyRef", key_ref()),
                    ("fieldRef", key_ref()),
                    ("resourceFieldRef", key_ref()),
                ]),
            )])),
        ),
        (
            "volumeMounts",
            map_list(&[("mountPath", None)], Some("mountPath"), Node::Any),
        ),
        (
            "volumeDevices",
            map_list(&[("devicePath", None)], Some("devicePath"), Node::Any),
        ),
        (
            "resources",
            sobj(vec![(
                "claims",
                map_list(&[("name", None)], None, Node::Any),
            )]),
        ),
    ])
}

pub(super) fn pod_spec() -> Node {
    sobj(vec![
        ("containers", named(container())),
        ("initContainers", named(container())),
        ("ephemeralContainers", named(container())),
        ("imagePullSecrets", named(Node::Atomic)),
        ("volumes", named(Node::Any)),
        (
            "hostAliases",
            map_list(&[("ip", None)], Some("ip"), Node::Any),
        ),
        (
            "topologySpreadConstraints",
            map_list(
                &[("topologyKey", None), ("whenUnsatisfiable", None)],
                Some("topologyKey"),
                Node::Any,
            ),
        ),
        ("schedulingGates", named(Node::Any)),
        ("resourceClaims", named(Node::Any)),
        ("nodeSelector", Node::Atomic),
        (
            "affinity",
            obj(vec![(
                "nodeAffinity",
                obj(vec![(
                    "requiredDuringSchedulingIgnoredDuringExecution",
                    Node::Atomic,
                )]),
            )]),
        ),
    ])
}

pub(super) fn pod_template() -> Node {
    sobj(vec![("metadata", object_meta()), ("spec", pod_spec())])
}

pub(super) fn status_with_conditions() -> Node {
    sobj(vec![("conditions", conditions())])
}

/// A kind's root: ObjectMeta plus the given top-level fields.
pub(super) fn kind_root(mut fields: Vec<(&str, Node)>) -> Node {
    fields.push(("metadata", object_meta()));
    sobj(fields)
}

pub(super) fn builtin_schema(api_version: &str, kind: &str) -> Option<&'static TypeSchema> {
    static TABLE: OnceLock<HashMap<(String, String), TypeSchema>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let workload = |extra: Vec<(&'static str, Node)>| {
            let mut spec = vec![("selector", Node::Atomic), ("template", pod_template())];
            spec.extend(extra);
            kind_root(vec![
                ("spec", sobj(spec)),
                ("status", status_with_conditions()),
            ])
        };
        let job_spec = || {
            sobj(vec![
                ("selector", Node::Atomic),
                ("template", pod_template()),
            ])
        };
        let entries: Vec<(&str, &str, Node)> = vec![
            (
                "apps",
                "Deployment",
                workload(vec![("strategy", sobj(vec![]))]),
            ),
            (
                "apps",
                "StatefulSet",
                workload(vec![
                    ("volumeClaimTemplates", Node::Atomic),
                    ("updateStrategy", sobj(vec![])),
                ]),
            ),
            (
                "apps",
                "DaemonSet",
                workload(vec![("updateStrategy", sobj(vec![]))]),
            ),
            ("apps", "ReplicaSet", workload(vec![])),
            (
                "batch",
                "Job",
                kind_root(vec![
                    ("spec", job_spec()),
                    (
                        "status",
                        sobj(vec![("conditions", atomic_list_smp("type"))]),
                    ),
                ]),
            ),
            (
                "batch",
                "CronJob",
                kind_root(vec![
                    (
                        "spec",
                        sobj(vec![(
                            "jobTemplate",
                            sobj(vec![("metadata", object_meta()), ("spec", job_spec())]),
                        )]),
                    ),
                    ("status", sobj(vec![("active", Node::Atomic)])),
                ]),
            ),
            (
                "",
                "Pod",
                kind_root(vec![
                    ("spec", pod_spec()),
                    (
                        "status",
                        sobj(vec![
                            ("conditions", conditions()),
                            ("podIPs", map_list(&[("ip", None)], Some("ip"), Node::Any)),
                            ("hostIPs", atomic_list_smp("ip")),
                        ]),
                    ),
                ]),
            ),
            (
                "",
                "PodTemplate",
                kind_root(vec![("template", pod_template())]),
            ),
            (
                "",
                "Service",
                kind_root(vec![
                    (
                        "spec",
                        sobj(vec![
                            (
                                "ports",
                                map_list(
                                    &[("port", None), ("protocol", Some("TCP"))],
                                    Some("port"),
                                    Node::Any,
                                ),
                            ),
                            ("selector", Node::Atomic),
                        ]),
                    ),
                    (
                        "status",
                        sobj(vec![
                            ("conditions", conditions()),
                            ("loadBalancer", sobj(vec![])),
                        ]),
                    ),
                ]),
            ),
            (
                "",
                "ServiceAccount",
                kind_root(vec![("secrets", named(Node::Atomic))]),
            ),
            (
                "",
                "Namespace",
                kind_root(vec![
                    ("spec", sobj(vec![])),
                    ("status", status_with_conditions()),
                ]),
            ),
            (
                "",
                "Node",
                kind_root(vec![
                    ("spec", sobj(vec![("podCIDRs", set_list())])),
                    (
                        "status",
                        sobj(vec![
                            ("conditions", conditions()),
                            (
                                "addresses",
                                map_list(&[("type", None)], Some("type"), Node::Any),
                            ),
                        ]),
                    ),
                ]),
            ),
            (
                "",
                "PersistentVolumeClaim",
                kind_root(vec![
                    ("spec", sobj(vec![])),
                    ("status", status_with_conditions()),
                ]),
            ),
            ("", "Secret", kind_root(vec![])),
            ("", "ConfigMap", kind_root(vec![])),
            (
                "",
                "Event",
                kind_root(vec![
                    ("involvedObject", sobj(vec![])),
                    ("source", sobj(vec![])),
                    ("related", Node::Atomic),
                ]),
            ),
            (
                "events.k8s.io",
                "Event",
                kind_root(vec![
                    ("regarding", sobj(vec![])),
                    ("related", Node::Atomic),
                    ("deprecatedSource", sobj(vec![])),
                ]),
            ),
            (
                "networking.k8s.io",
                "Ingress",
                kind_root(vec![("spec", sobj(vec![])), ("status", sobj(vec![]))]),
            ),
            ("rbac.authorization.k8s.io", "Role", kind_root(vec![])),
            (
                "rbac.authorization.k8s.io",
                "ClusterRole",
                kind_root(vec![]),
            ),
            (
                "rbac.authorization.k8s.io",
                "RoleBinding",
                kind_root(vec![("roleRef", Node::Atomic)]),
            ),
            (
                "rbac.authorization.k8s.io",
                "ClusterRoleBinding",
                kind_root(vec![("roleRef", Node::Atomic)]),
            ),
            (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                kind_root(vec![
                    ("spec", sobj(vec![("names", sobj(vec![]))])),
                    (
                        "status",
                        sobj(vec![
                            ("conditions", map_list(&[("type", None)], None, Node::Any)),
                            ("acceptedNames", sobj(vec![])),
                        ]),
                    ),
                ]),
            ),
            (
                "coordination.k8s.io",
                "Lease",
                kind_root(vec![("spec", sobj(vec![]))]),
            ),
            (
                "authentication.k8s.io",
                "TokenReview",
                kind_root(vec![("spec", sobj(vec![])), ("status", sobj(vec![]))]),
            ),
        ];
        entries
            .into_iter()
            .map(|(g, k, root)| {
                (
                    (g.to_string(), k.to_string()),
                    TypeSchema {
                        root,
                        builtin: true,
                    },
                )
            })
            .collect()
    });
    table.get(&(group_of(api_version).to_string(), kind.to_string()))
}

/// Whether a group is served by kube-apiserver itself (built-in types with Go struct tags),
/// as opposed to a CRD.
pub(crate) fn is_builtin_group(group: &str) -> bool {
    matches!(
        group,
        "" | "apps"
            | "batch"
            | "autoscaling"
            | "policy"
            | "networking.k8s.io"
            | "rbac.authorization.k8s.io"
            | "coordination.k8s.io"
            | "events.k8s.io"
            | "authentication.k8s.io"
            | "authorization.k8s.io"
            | "apiextensions.k8s.io"
            | "apiregistration.k8s.io"
            | "storage.k8s.io"
            | "scheduling.k8s.io"
            | "certificates.k8s.io"
            | "discovery.k8s.io"
            | "admissionregistration.k8s.io"
            | "node.k8s.io"
            | "flowcontrol.apiserver.k8s.io"
            | "resource.k8s.io"
            | "internal.apiserver.k8s.io"
            | "storagemigration.k8s.io"
    )
}
