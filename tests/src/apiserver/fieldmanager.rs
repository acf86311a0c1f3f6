//! Server-side apply and managedFields bookkeeping.
//!
//! Pure functions over `serde_json::Value`: the HTTP layer owns metadata such as
//! resourceVersion, uid and generation; this module owns the object content and
//! `metadata.managedFields`.
//!
//! The algorithms follow sigs.k8s.io/structured-merge-diff v4.4 (the version Kubernetes 1.32
//! links) and the apiserver's `k8s.io/apimachinery/pkg/util/managedfields` wrappers:
//!
//! - field sets are tries of path elements (`f:name`, `k:{"name":"x"}`, `v:"a"`, `i:0`), a node
//!   being a *member* when the field itself is owned (the `.` key when it also has children);
//! - apply = merge the applied configuration into the live object, prune what this manager
//!   applied last time but no longer applies and nobody else owns, then compare the live and the
//!   new object: fields other managers own that were added or modified are conflicts unless
//!   `force` (then they change hands); removed fields leave every set;
//! - an update gives the added and modified fields to the updating manager;
//! - `apiVersion`, `kind`, `metadata.name`/`namespace`/`uid`/`resourceVersion`/`generation`/
//!   `creationTimestamp`/`managedFields` are never owned (the apiserver's "strip meta" set);
//! - an object without managedFields that is applied to first gets a `before-first-apply`
//!   Update manager owning everything it has (so the first apply can conflict, as upstream);
//! - the `kubectl` manager may take over fields recorded in the client-side
//!   `kubectl.kubernetes.io/last-applied-configuration` annotation without conflicts, and keeps
//!   that annotation in sync, as kube-apiserver does for `kubectl apply --server-side`;
//! - at most 10 Update entries are kept; older ones are merged into `ancient-changes`.
//!
//! What the server is expected to do around these functions:
//! - check `metadata.resourceVersion` of an applied configuration (when set) against the live
//!   object, check the name against the URL, and assign uid, resourceVersion, generation and
//!   timestamps after calling in here (the result keeps the live values of those fields);
//! - call [`server_side_apply_with`]/[`record_update_with`] with `subresource: Some("status")`
//!   for `/status` writes. For kinds with a status subresource (see [`has_status_subresource`];
//!   CRDs say so in their versions) the main resource then ignores `.status` (the live status is
//!   kept and nobody gains ownership of it through the main resource) and `/status` ignores
//!   everything but `.status`, as the resetFields of the real REST strategies do;
//! - for custom resources, pass the CRD's schema ([`TypeSchema::from_crd`]) so lists declared
//!   `x-kubernetes-list-type: map|set` merge by key; without it every CRD list is atomic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use serde_json::{Map, Value};

/// The manager kube-apiserver names when an object without managedFields is first applied to.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The bucket old Update entries are merged into once there are too many.
const ANCIENT_CHANGES: &str = "ancient-changes";
/// kube-apiserver's `DefaultMaxUpdateManagers`.
const MAX_UPDATE_MANAGERS: usize = 10;
/// The client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One field that another manager owns, reported on an apply conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldConflict {
    /// The manager that owns the field now.
    pub manager: String,
    /// The field path in the Kubernetes message style, e.g. `.spec.replicas` or
    /// `.data.password`.
    pub field: String,
    /// The manager as kube-apiserver prints it in conflict messages: `"kubectl"` for an applier,
    /// `"kubectl-edit" using apps/v1` for an updater, with `with subresource "status"` when the
    /// entry belongs to a subresource.
    pub printed_manager: String,
}

/// Why an apply or update could not be done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldManagerError {
    /// Fields owned by other managers would change and `force` was not set (HTTP 409).
    /// `Display` gives kube-apiserver's exact message.
    #[error("{}", conflict_message(.0))]
    Conflict(Vec<FieldConflict>),
    /// The applied configuration is not a valid object (HTTP 400/422).
    #[error("invalid applied configuration: {0}")]
    Invalid(String),
    /// The request itself is wrong, e.g. an applied configuration carrying
    /// `metadata.managedFields` (kube-apiserver answers 400 BadRequest with this message).
    #[error("{0}")]
    BadRequest(String),
}

impl FieldManagerError {
    /// For a conflict: `(printed manager, field)` pairs in the order kube-apiserver lists them,
    /// ready for a `FieldManagerConflict` Status (`details.causes[].message` is
    /// `conflict with <printed manager>`). Empty for other errors.
    pub fn conflict_pairs(&self) -> Vec<(String, String)> {
        match self {
            Self::Conflict(c) => c
                .iter()
                .map(|c| (c.printed_manager.clone(), c.field.clone()))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// kube-apiserver's message for a failed apply (`Apply failed with 1 conflict: conflict with
/// "other": .data.key`), grouping several conflicts by manager.
pub fn conflict_message(conflicts: &[FieldConflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.printed_manager, only.field
        );
    }
    // The conflicts arrive grouped by manager already (sorted by manager identity).
    let mut lines = Vec::new();
    let mut last: Option<&str> = None;
    for c in conflicts {
        if last != Some(c.printed_manager.as_str()) {
            lines.push(format!("conflicts with {}:", c.printed_manager));
            last = Some(c.printed_manager.as_str());
        }
        lines.push(format!("- {}", c.field));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Options for [`server_side_apply_with`] and [`record_update_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FieldManagerOptions<'a> {
    /// `Some("status")` (or `"scale"`) for writes to a subresource.
    pub subresource: Option<&'a str>,
    /// Whether the kind has a status subresource. `None`: the built-in answer from
    /// [`has_status_subresource`] (false for unknown kinds).
    pub status_subresource: Option<bool>,
    /// The schema to use; `None`: the built-in schema of the kind, or "every list atomic" for
    /// kinds this module does not know (custom resources).
    pub schema: Option<&'a TypeSchema>,
}

/// Server-side apply of `applied` by `manager` onto `live` (None when the object does not exist).
///
/// Returns the merged object with `metadata.managedFields` updated. `now` is an RFC 3339 time
/// stamp for the managedFields entry.
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
) -> Result<Value, FieldManagerError> {
    server_side_apply_with(
        live,
        applied,
        manager,
        force,
        now,
        &FieldManagerOptions::default(),
    )
}

/// Records an `Update` operation (create, replace, or a non-apply patch) by `manager`:
/// the fields that changed between `old` and `new` move to `manager`. `subresource` is
/// `Some("status")` for status writes. Returns `new` with managedFields set.
pub fn record_update(
    old: Option<&Value>,
    new: Value,
    manager: &str,
    subresource: Option<&str>,
    now: &str,
) -> Value {
    record_update_with(
        old,
        new,
        manager,
        now,
        &FieldManagerOptions {
            subresource,
            ..FieldManagerOptions::default()
        },
    )
}

/// Whether a built-in kind has a `status` subresource (kube-apiserver 1.32). False for kinds
/// this module does not know; for CRDs the server knows from `spec.versions[].subresources`.
pub fn has_status_subresource(api_version: &str, kind: &str) -> bool {
    let group = group_of(api_version);
    matches!(
        (group, kind),
        (
            "",
            "Pod"
                | "Service"
                | "Namespace"
                | "Node"
                | "PersistentVolume"
                | "PersistentVolumeClaim"
                | "ReplicationController"
                | "ResourceQuota"
        ) | (
            "apps",
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet"
        ) | ("batch", "Job" | "CronJob")
            | ("networking.k8s.io", "Ingress")
            | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("autoscaling", "HorizontalPodAutoscaler")
            | ("policy", "PodDisruptionBudget")
            | ("certificates.k8s.io", "CertificateSigningRequest")
            | ("apiregistration.k8s.io", "APIService")
    )
}

/// The API group of an `apiVersion` (`apps/v1` → `apps`, `v1` → ``).
pub(crate) fn group_of(api_version: &str) -> &str {
    match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    }
}

/// Which top-level fields a write ignores for ownership (the REST strategy's reset fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ignore {
    Nothing,
    /// Main resource of a kind with a status subresource.
    Status,
    /// The status subresource: everything but `.status`.
    AllButStatus,
}

impl Ignore {
    fn resolve(opts: &FieldManagerOptions<'_>, api_version: &str, kind: &str) -> Self {
        let has_status = opts
            .status_subresource
            .unwrap_or_else(|| has_status_subresource(api_version, kind));
        match opts.subresource {
            None if has_status => Self::Status,
            None => Self::Nothing,
            Some("status") => Self::AllButStatus,
            Some(_) => Self::Nothing,
        }
    }

    fn ignores(self, top_level: &str) -> bool {
        match self {
            Self::Nothing => false,
            Self::Status => top_level == "status",
            Self::AllButStatus => top_level != "status",
        }
    }

    /// Drops ignored paths from a field set (prefix semantics, like the real ignore filter).
    fn filter(self, set: &FieldSet) -> FieldSet {
        if self == Self::Nothing {
            return set.clone();
        }
        let keep = |pe: &Pe| match pe {
            Pe::Field(name) => !self.ignores(name),
            _ => true,
        };
        FieldSet {
            members: set.members.iter().filter(|pe| keep(pe)).cloned().collect(),
            children: set
                .children
                .iter()
                .filter(|(pe, _)| keep(pe))
                .map(|(pe, c)| (pe.clone(), c.clone()))
                .collect(),
        }
    }

    /// Puts the live values back at ignored paths, as PrepareForCreate/PrepareForUpdate do.
    fn restore(self, result: &mut Value, live: Option<&Value>) {
        if self == Self::Nothing {
            return;
        }
        let Some(out) = result.as_object_mut() else {
            return;
        };
        let keys: BTreeSet<String> = out
            .keys()
            .chain(
                live.and_then(Value::as_object)
                    .into_iter()
                    .flat_map(|m| m.keys()),
            )
            .cloned()
            .collect();
        for key in keys {
            // Type information and metadata are handled by the caller.
            if !self.ignores(&key) || matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match live.and_then(|l| l.get(&key)) {
                Some(v) => {
                    out.insert(key, v.clone());
                }
                None => {
                    out.remove(&key);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Path elements and field sets
// ---------------------------------------------------------------------------------------------

/// One step of a field path, ordered as structured-merge-diff orders them.
#[derive(Debug, Clone)]
pub(crate) enum Pe {
    /// A field of an object (`f:name`).
    Field(String),
    /// An item of an associative list, by its key fields sorted by name (`k:{...}`).
    Key(Vec<(String, Value)>),
    /// An item of a set (`v:...`).
    Value(Value),
    /// An item of an atomic list by position (`i:3`); only read from stored entries.
    Index(usize),
}

impl Pe {
    fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// The FieldsV1 key: `f:name`, `k:{"name":"x"}`, `v:"a"`, `i:0`.
    fn serialize(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", go_json(&Value::String(k.clone())), go_json(v)))
                    .collect();
                format!("k:{{{}}}", inner.join(","))
            }
            Pe::Value(v) => format!("v:{}", go_json(v)),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key; None for unknown kinds, which upstream drops too.
    fn parse(key: &str) -> Option<Pe> {
        let (kind, rest) = key.split_at_checked(2)?;
        match kind {
            "f:" => Some(Pe::Field(rest.to_string())),
            "v:" => serde_json::from_str(rest).ok().map(Pe::Value),
            "i:" => rest.parse().ok().map(Pe::Index),
            "k:" => {
                let Ok(Value::Object(m)) = serde_json::from_str::<Value>(rest) else {
                    return None;
                };
                // serde_json's map is sorted by key, which is the order keys must have.
                Some(Pe::Key(m.into_iter().collect()))
            }
            _ => None,
        }
    }

    /// The human form used in conflict messages: `.name`, `[name="x"]`, `[=v]`, `[3]`.
    fn display(&self) -> String {
        match self {
            Pe::Field(name) => format!(".{name}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={}]", value_to_string(v)),
            Pe::Index(i) => format!("[{i}]"),
        }
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => cmp_field_lists(a, b),
            (Pe::Value(a), Pe::Value(b)) => cmp_values(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pe {}

fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// structured-merge-diff's `value.ToString`: strings quoted, numbers and bools bare.
fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(_) => go_json(v),
        Value::Null => "null".into(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(value_to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_string(v)))
            .collect(),
        other => other.to_string(),
    }
}

/// JSON as Go's encoder writes it: like serde_json, but `<`, `>`, `&`, U+2028 and U+2029 are
/// escaped. FieldsV1 keys and the last-applied annotation are byte-compared by clients.
pub(crate) fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// structured-merge-diff's total order on values (numbers compare numerically).
pub(crate) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (i, j) in x.iter().zip(y) {
                let c = cmp_values(i, j);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((ka, va), (kb, vb)) in x.iter().zip(y) {
                let c = ka.cmp(kb).then_with(|| cmp_values(va, vb));
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => value_rank(a).cmp(&value_rank(b)),
    }
}

fn cmp_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        let c = ka.cmp(kb).then_with(|| cmp_values(va, vb));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// Value equality where `1` and `1.0` are equal, as structured-merge-diff compares.
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => cmp_values(a, b) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(i, j)| deep_eq(i, j))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A set of field paths stored as a trie. `members` are owned paths ending here; `children`
/// hold longer paths. Children are never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    members: BTreeSet<Pe>,
    children: BTreeMap<Pe, FieldSet>,
}

impl FieldSet {
    fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [pe] => {
                self.members.insert(pe.clone());
            }
            [pe, rest @ ..] => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    fn has(&self, path: &[Pe]) -> bool {
        match path {
            [] => false,
            [pe] => self.members.contains(pe),
            [pe, rest @ ..] => self.children.get(pe).is_some_and(|c| c.has(rest)),
        }
    }

    fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// `EnsureNamedFieldsAreMembers`: object fields that have owned descendants count as owned
    /// themselves, so pruning can drop a whole struct nobody owns any more.
    fn with_named_fields_as_members(&self) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.clone(),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if matches!(pe, Pe::Field(_)) {
                out.members.insert(pe.clone());
            }
            out.children
                .insert(pe.clone(), c.with_named_fields_as_members());
        }
        out
    }

    /// All paths in structured-merge-diff's iteration order: members, then children.
    fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 encoding (`{"f:spec":{"f:replicas":{}}}`).
    fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                m.insert(pe.serialize(), Value::Object(Map::new()));
            }
        }
        for (pe, c) in &self.children {
            let mut inner = match c.to_fields_v1() {
                Value::Object(inner) => inner,
                _ => Map::new(),
            };
            if self.members.contains(pe) {
                inner.insert(".".into(), Value::Object(Map::new()));
            }
            m.insert(pe.serialize(), Value::Object(inner));
        }
        Value::Object(m)
    }

    fn from_fields_v1(v: &Value) -> FieldSet {
        let mut out = FieldSet::default();
        let Some(m) = v.as_object() else {
            return out;
        };
        for (key, child) in m {
            if key == "." {
                continue;
            }
            let Some(pe) = Pe::parse(key) else {
                continue;
            };
            let sub = FieldSet::from_fields_v1(child);
            let self_member = child.get(".").is_some();
            if sub.is_empty() || self_member {
                out.members.insert(pe.clone());
            }
            if !sub.is_empty() {
                out.children.insert(pe, sub);
            }
        }
        out
    }
}

/// The apiserver's "strip meta" set: never owned by anybody.
fn strip_set() -> &'static FieldSet {
    static STRIP: OnceLock<FieldSet> = OnceLock::new();
    STRIP.get_or_init(|| {
        let mut s = FieldSet::default();
        let f = |n: &str| Pe::Field(n.to_string());
        s.insert(&[f("apiVersion")]);
        s.insert(&[f("kind")]);
        s.insert(&[f("metadata")]);
        for name in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            s.insert(&[f("metadata"), f(name)]);
        }
        s
    })
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

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
    fields: BTreeMap<String, Node>,
    /// Type of fields not in `fields` (a map's element type); None = [`Node::Any`].
    other: Option<Node>,
    /// A Go non-pointer struct: present as `{}` in an empty object of the kind, which decides
    /// whether creating its content also makes an updater own the struct itself.
    present: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ListNode {
    pub(crate) ssa: ListType,
    pub(crate) smp: SmpStrategy,
    item: Node,
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

static ANY: Node = Node::Any;

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
    fn skeleton(&self) -> Map<String, Value> {
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
    root: Node,
    /// Built-in kinds start from Go zero values; custom resources from `{apiVersion, kind}`.
    builtin: bool,
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
    fn empty_object(&self, like: &Value) -> Value {
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
fn custom_root(node: Node) -> Node {
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

fn openapi_node(s: &Value) -> Node {
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
fn obj(fields: Vec<(&str, Node)>) -> Node {
    struct_node(fields, false)
}

fn sobj(fields: Vec<(&str, Node)>) -> Node {
    struct_node(fields, true)
}

fn struct_node(fields: Vec<(&str, Node)>, present: bool) -> Node {
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
fn map_list(keys: &[(&str, Option<&str>)], smp_key: Option<&str>, item: Node) -> Node {
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
fn set_list() -> Node {
    Node::List(Box::new(ListNode {
        ssa: ListType::Set,
        smp: SmpStrategy::Merge(None),
        item: Node::Any,
    }))
}

/// `listType=atomic` but with an SMP merge key (e.g. JobStatus.conditions).
fn atomic_list_smp(smp_key: &str) -> Node {
    Node::List(Box::new(ListNode {
        ssa: ListType::Atomic,
        smp: SmpStrategy::Merge(Some(smp_key.to_string())),
        item: Node::Any,
    }))
}

fn named(item: Node) -> Node {
    map_list(&[("name", None)], Some("name"), item)
}

fn conditions() -> Node {
    map_list(&[("type", None)], Some("type"), Node::Any)
}

fn object_meta() -> Node {
    sobj(vec![
        ("finalizers", set_list()),
        (
            "ownerReferences",
            map_list(&[("uid", None)], Some("uid"), Node::Atomic),
        ),
        ("managedFields", Node::Atomic),
    ])
}

fn container() -> Node {
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

fn pod_spec() -> Node {
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

fn pod_template() -> Node {
    sobj(vec![("metadata", object_meta()), ("spec", pod_spec())])
}

fn status_with_conditions() -> Node {
    sobj(vec![("conditions", conditions())])
}

/// A kind's root: ObjectMeta plus the given top-level fields.
fn kind_root(mut fields: Vec<(&str, Node)>) -> Node {
    fields.push(("metadata", object_meta()));
    sobj(fields)
}

fn builtin_schema(api_version: &str, kind: &str) -> Option<&'static TypeSchema> {
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

// ---------------------------------------------------------------------------------------------
// Typed walks: field sets, merge, compare, removal
// ---------------------------------------------------------------------------------------------

/// The path element of one list item, or why the item does not fit the list type.
fn item_pe(list: &ListNode, item: &Value) -> Result<Pe, String> {
    match &list.ssa {
        ListType::Map(keys) => {
            let Value::Object(m) = item else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let mut fields = Vec::with_capacity(keys.len());
            for (name, default) in keys {
                match (m.get(name), default) {
                    (Some(v), _) => fields.push((name.clone(), v.clone())),
                    (None, Some(d)) => fields.push((name.clone(), d.clone())),
                    (None, None) => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field {name:?} (and doesn't have default value)"
                        ))
                    }
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        }
        ListType::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(Pe::Value(v.clone())),
        },
        ListType::Atomic => Err("atomic list".into()),
    }
}

/// How a value is walked under a schema node.
enum Shape<'a> {
    Map(&'a Map<String, Value>),
    /// A granular list with the path element of each item (no duplicates).
    List(&'a [Value], Vec<Pe>),
    Leaf,
}

fn shape<'a>(node: &Node, v: &'a Value) -> Shape<'a> {
    match v {
        Value::Object(m) if !matches!(node, Node::Atomic) => Shape::Map(m),
        Value::Array(items) => {
            let Some(list) = node.list() else {
                return Shape::Leaf;
            };
            if list.ssa == ListType::Atomic {
                return Shape::Leaf;
            }
            let mut pes = Vec::with_capacity(items.len());
            let mut seen = BTreeSet::new();
            for item in items {
                match item_pe(list, item) {
                    Ok(pe) if seen.insert(pe.clone()) => pes.push(pe),
                    // Live objects may hold duplicates or malformed items (upstream allows
                    // duplicates there); such a list is handled as one atomic value.
                    _ => return Shape::Leaf,
                }
            }
            Shape::List(items, pes)
        }
        _ => Shape::Leaf,
    }
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// Rejects applied configurations that upstream cannot type: duplicate keys, missing keys.
fn validate_applied(node: &Node, v: &Value, path: &mut Vec<Pe>) -> Result<(), String> {
    match v {
        Value::Object(m) if !matches!(node, Node::Atomic) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                validate_applied(node.field(k), child, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Array(items) => {
            let Some(list) = node.list().filter(|l| l.ssa != ListType::Atomic) else {
                return Ok(());
            };
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let pe = item_pe(list, item)
                    .map_err(|e| format!("{}: element {i}: {e}", path_string(path)))?;
                if !seen.insert(pe.clone()) {
                    return Err(format!(
                        "{}: duplicate entries for key {}",
                        path_string(path),
                        pe.display()
                    ));
                }
                path.push(pe);
                validate_applied(&list.item, item, path)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `ToFieldSet`: every leaf, every list item, and every field whose value is null or `{}`.
fn to_field_set(node: &Node, v: &Value, path: &mut Vec<Pe>, set: &mut FieldSet) {
    match shape(node, v) {
        Shape::Map(m) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                to_field_set(node.field(k), child, path, set);
                if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Shape::List(items, pes) => {
            let item_node = node.item();
            for (item, pe) in items.iter().zip(pes) {
                path.push(pe);
                to_field_set(item_node, item, path, set);
                set.insert(path);
                path.pop();
            }
        }
        Shape::Leaf => set.insert(path),
    }
}

/// `Merge`: the applied configuration wins on leaves; objects and granular lists merge.
fn merge_values(node: &Node, lhs: &Value, rhs: &Value) -> Value {
    if is_empty_container(lhs) && is_empty_container(rhs) {
        return rhs.clone();
    }
    match (shape(node, lhs), shape(node, rhs)) {
        (Shape::Map(l), Shape::Map(r)) => {
            let mut out = Map::new();
            for (k, lv) in l {
                let merged = match r.get(k) {
                    Some(rv) => merge_values(node.field(k), lv, rv),
                    None => lv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            for (k, rv) in r {
                if !l.contains_key(k) {
                    out.insert(k.clone(), rv.clone());
                }
            }
            Value::Object(out)
        }
        (Shape::List(l, lpes), Shape::List(r, rpes)) => {
            Value::Array(merge_lists(node.item(), l, &lpes, r, &rpes))
        }
        _ => rhs.clone(),
    }
}

/// structured-merge-diff's associative list merge, including its item order: live items keep
/// their place, applied items follow the applied order, new items go after their predecessor.
fn merge_lists(item: &Node, lhs: &[Value], lpes: &[Pe], rhs: &[Value], rpes: &[Pe]) -> Vec<Value> {
    let lidx: BTreeMap<&Pe, usize> = lpes.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let ridx: BTreeMap<&Pe, usize> = rpes.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let shared: Vec<&Pe> = rpes.iter().filter(|p| lidx.contains_key(p)).collect();
    let mut next_shared = 0usize;
    let mut merged_rhs: BTreeSet<&Pe> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0usize, 0usize);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe);
                out.push(merge_values(item, &lhs[li], &rhs[ri]));
                li += 1;
                ri += 1;
                next_shared += 1;
                continue;
            }
            if ridx.contains_key(pe) && shared.get(next_shared).is_some_and(|s| *s != pe) {
                // A shared item, but not the one the applied order wants next.
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !ridx.contains_key(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe);
            out.push(match lidx.get(pe) {
                Some(&i) => merge_values(item, &lhs[i], &rhs[ri]),
                None => rhs[ri].clone(),
            });
            ri += 1;
            if shared.get(next_shared).is_some_and(|s| *s == pe) {
                next_shared += 1;
            }
        }
    }
    out
}

/// The result of comparing two objects; every path is in at most one set.
#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

impl Comparison {
    fn filtered(self, ignore: Ignore) -> Comparison {
        Comparison {
            added: ignore.filter(&self.added),
            modified: ignore.filter(&self.modified),
            removed: ignore.filter(&self.removed),
        }
    }
}

/// Inserts `path` and every path below it (a subtree that appeared or disappeared).
fn mark_all(node: &Node, v: &Value, path: &mut Vec<Pe>, set: &mut FieldSet) {
    match shape(node, v) {
        Shape::Map(m) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                mark_all(node.field(k), child, path, set);
                path.pop();
            }
        }
        Shape::List(items, pes) => {
            for (item, pe) in items.iter().zip(pes) {
                path.push(pe);
                mark_all(node.item(), item, path, set);
                path.pop();
            }
        }
        Shape::Leaf => {}
    }
    set.insert(path);
}

fn compare(
    node: &Node,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    match (lhs, rhs) {
        (None, None) => {}
        (None, Some(r)) => mark_all(node, r, path, &mut c.added),
        (Some(l), None) => mark_all(node, l, path, &mut c.removed),
        (Some(l), Some(r)) => {
            if is_empty_container(l) && is_empty_container(r) {
                if !deep_eq(l, r) {
                    c.modified.insert(path);
                }
                return;
            }
            match (shape(node, l), shape(node, r)) {
                (Shape::Map(lm), Shape::Map(rm)) => {
                    let keys: BTreeSet<&String> = lm.keys().chain(rm.keys()).collect();
                    for k in keys {
                        path.push(Pe::Field(k.clone()));
                        compare(node.field(k), lm.get(k), rm.get(k), path, c);
                        path.pop();
                    }
                }
                (Shape::List(litems, lpes), Shape::List(ritems, rpes)) => {
                    let lmap: BTreeMap<&Pe, &Value> = lpes.iter().zip(litems).collect();
                    let rmap: BTreeMap<&Pe, &Value> = rpes.iter().zip(ritems).collect();
                    let all: BTreeSet<&Pe> = lpes.iter().chain(rpes.iter()).collect();
                    for pe in all {
                        path.push(pe.clone());
                        compare(
                            node.item(),
                            lmap.get(pe).copied(),
                            rmap.get(pe).copied(),
                            path,
                            c,
                        );
                        path.pop();
                    }
                }
                (Shape::Leaf, Shape::Leaf) => {
                    if !deep_eq(l, r) {
                        c.modified.insert(path);
                    }
                }
                _ => {
                    // The value changed shape (e.g. object → string): the old content is gone,
                    // the new one appeared, and the field itself was modified.
                    let mut old = FieldSet::default();
                    mark_all(node, l, path, &mut old);
                    let mut new = FieldSet::default();
                    mark_all(node, r, path, &mut new);
                    let mut own = FieldSet::default();
                    own.insert(path);
                    c.removed = c.removed.union(&old.difference(&own));
                    c.added = c.added.union(&new.difference(&own));
                    c.modified.insert(path);
                }
            }
        }
    }
}

/// `RemoveItems`: drops the values at member paths. A container left empty disappears, as the
/// built-in types of Kubernetes 1.32 drop the resulting null.
fn remove_items(node: &Node, v: &Value, set: &FieldSet) -> Option<Value> {
    if set.is_empty() {
        return Some(v.clone());
    }
    match shape(node, v) {
        Shape::Map(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let pe = Pe::Field(k.clone());
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) => {
                        if let Some(kept) = remove_items(node.field(k), child, sub) {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Shape::List(items, pes) => {
            let mut out = Vec::new();
            for (item, pe) in items.iter().zip(pes) {
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) => {
                        if let Some(kept) = remove_items(node.item(), item, sub) {
                            out.push(kept);
                        }
                    }
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Shape::Leaf => Some(v.clone()),
    }
}

fn field_set_of(node: &Node, v: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    to_field_set(node, v, &mut Vec::new(), &mut set);
    set
}

fn remove_root(node: &Node, v: &Value, set: &FieldSet) -> Value {
    remove_items(node, v, set).unwrap_or_else(|| Value::Object(Map::new()))
}

/// `prune`: removes what `last` (this manager's previous apply) owned, unless some manager
/// (including this apply) owns it now or it was never this manager's.
fn prune(node: &Node, merged: &Value, owned_now: &FieldSet, last: &FieldSet) -> Value {
    if last.is_empty() {
        return merged.clone();
    }
    let last_e = last.with_named_fields_as_members();
    let pruned = remove_root(node, merged, &last_e);
    let merged_e = field_set_of(node, merged).with_named_fields_as_members();
    // Add back everything someone owns.
    let pruned_e = field_set_of(node, &pruned).with_named_fields_as_members();
    let owned_e = owned_now.with_named_fields_as_members();
    let pruned = remove_root(
        node,
        merged,
        &merged_e.difference(&pruned_e.union(&owned_e)),
    );
    // Add back what was never this manager's (unowned fields set by nobody's apply).
    let pruned_e = field_set_of(node, &pruned).with_named_fields_as_members();
    remove_root(
        node,
        merged,
        &merged_e.difference(&pruned_e).intersection(&last_e),
    )
}

/// Drops null object fields: the built-in types drop them when decoding, and the store should
/// not keep `field: null` an applied configuration used to give a field up.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, child| !child.is_null());
            for child in m.values_mut() {
                drop_nulls(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// managedFields entries
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who an entry belongs to. Appliers are one entry whatever apiVersion they used; updaters are
/// one entry per apiVersion (kube-apiserver's manager identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    manager: String,
    operation: Operation,
    /// Empty for Apply.
    api_version: String,
    subresource: String,
}

impl Identity {
    fn new(manager: &str, operation: Operation, api_version: &str, subresource: &str) -> Self {
        Identity {
            manager: manager.to_string(),
            operation,
            api_version: if operation == Operation::Apply {
                String::new()
            } else {
                api_version.to_string()
            },
            subresource: subresource.to_string(),
        }
    }

    /// The JSON manager identifier kube-apiserver sorts conflicts by.
    fn encoded(&self) -> String {
        let mut s = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            go_json(&Value::String(self.manager.clone())),
            self.operation.as_str()
        );
        if !self.api_version.is_empty() {
            s.push_str(&format!(
                ",\"apiVersion\":{}",
                go_json(&Value::String(self.api_version.clone()))
            ));
        }
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                ",\"subresource\":{}",
                go_json(&Value::String(self.subresource.clone()))
            ));
        }
        s.push('}');
        s
    }

    /// `printManager` of kube-apiserver's conflict errors.
    fn printed(&self) -> String {
        let mut s = go_json(&Value::String(self.manager.clone()));
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                " with subresource {}",
                go_json(&Value::String(self.subresource.clone()))
            ));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

#[derive(Debug, Clone)]
struct Entry {
    id: Identity,
    /// The version the fields are expressed in.
    api_version: String,
    time: Option<String>,
    set: FieldSet,
}

fn time_seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// Reads `metadata.managedFields`. Entries that cannot be read are skipped; entries of the same
/// manager identity are merged.
fn decode_entries(obj: &Value) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return out;
    };
    for e in list {
        let s = |k: &str| e.get(k).and_then(Value::as_str);
        let operation = match s("operation") {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => continue,
        };
        if s("fieldsType").is_some_and(|t| t != "FieldsV1") {
            continue;
        }
        let api_version = s("apiVersion").unwrap_or_default();
        let id = Identity::new(
            s("manager").unwrap_or_default(),
            operation,
            api_version,
            s("subresource").unwrap_or_default(),
        );
        let set = e
            .get("fieldsV1")
            .map(FieldSet::from_fields_v1)
            .unwrap_or_default();
        match out.iter_mut().find(|x| x.id == id) {
            Some(existing) => existing.set = existing.set.union(&set),
            None => out.push(Entry {
                id,
                api_version: api_version.to_string(),
                time: s("time").map(str::to_string),
                set,
            }),
        }
    }
    out
}

/// Writes entries sorted as kube-apiserver sorts them: Apply before Update, then by time,
/// manager, apiVersion and subresource. An empty list removes the field.
fn encode_entries(obj: &mut Value, entries: &[Entry]) {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.set.is_empty()).collect();
    sorted.sort_by(|a, b| {
        a.id.operation
            .cmp(&b.id.operation)
            .then_with(|| time_seconds(a.time.as_deref()).cmp(&time_seconds(b.time.as_deref())))
            .then_with(|| a.id.manager.cmp(&b.id.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.id.subresource.cmp(&b.id.subresource))
    });
    let list: Vec<Value> = sorted
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), Value::String(e.id.manager.clone()));
            m.insert(
                "operation".into(),
                Value::String(e.id.operation.as_str().into()),
            );
            m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
            if let Some(t) = &e.time {
                m.insert("time".into(), Value::String(t.clone()));
            }
            m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !e.id.subresource.is_empty() {
                m.insert(
                    "subresource".into(),
                    Value::String(e.id.subresource.clone()),
                );
            }
            Value::Object(m)
        })
        .collect();
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A copy without `metadata.managedFields`, which is never part of the compared content.
fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// Metadata the server maintains: the merged result keeps the live values.
const BOOKKEEPING: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

fn restore_bookkeeping(result: &mut Value, live: Option<&Value>) {
    let Some(meta) = result.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in BOOKKEEPING {
        match live
            .and_then(|l| l.get("metadata"))
            .and_then(|m| m.get(*key))
        {
            Some(v) => {
                meta.insert((*key).to_string(), v.clone());
            }
            None => {
                meta.remove(*key);
            }
        }
    }
}

/// Ownership moves for a change from `old` to `new` made by `me` (structured-merge-diff's
/// `update`): other managers' fields that were added or modified are conflicts; with `force`
/// they (and every removed field) leave the other managers' sets.
fn update_ownership(
    entries: &mut Vec<Entry>,
    me: &Identity,
    cmp: &Comparison,
    force: bool,
) -> Result<(), Vec<FieldConflict>> {
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts: Vec<(usize, FieldSet)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.id == *me {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((i, c));
        }
    }
    if !force && !conflicts.is_empty() {
        // Grouped by manager identity in kube-apiserver's order, paths in set order.
        let mut by_manager: Vec<(String, &Identity, Vec<Vec<Pe>>)> = conflicts
            .iter()
            .map(|(i, c)| {
                let id = &entries[*i].id;
                (id.encoded(), id, c.paths())
            })
            .collect();
        by_manager.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (_, id, paths) in by_manager {
            for p in paths {
                out.push(FieldConflict {
                    manager: id.manager.clone(),
                    field: path_string(&p),
                    printed_manager: id.printed(),
                });
            }
        }
        return Err(out);
    }
    for (i, c) in conflicts {
        entries[i].set = entries[i].set.difference(&c);
    }
    if !cmp.removed.is_empty() {
        for e in entries.iter_mut().filter(|e| e.id != *me) {
            e.set = e.set.difference(&cmp.removed);
        }
    }
    entries.retain(|e| !e.set.is_empty());
    Ok(())
}

/// An Update by `manager` from `old` to `new` on the entries (the apiserver's Update chain
/// below the cap: changes go to the manager, its time moves only when it took fields).
fn record_changes(
    entries: &mut Vec<Entry>,
    node: &Node,
    old: &Value,
    new: &Value,
    me: &Identity,
    now: &str,
    ignore: Ignore,
) {
    let mut cmp = Comparison::default();
    compare(node, Some(old), Some(new), &mut Vec::new(), &mut cmp);
    let cmp = cmp.filtered(ignore);
    let taken = cmp.modified.union(&cmp.added).difference(strip_set());
    // Never fails: force is set.
    let _ = update_ownership(entries, me, &cmp, true);
    for e in entries.iter_mut().filter(|e| e.id == *me) {
        e.set = e.set.difference(&cmp.removed);
    }
    entries.retain(|e| !e.set.is_empty());
    if taken.is_empty() {
        return;
    }
    match entries.iter_mut().find(|e| e.id == *me) {
        Some(e) => {
            e.set = e.set.union(&taken);
            e.time = Some(now.to_string());
        }
        None => entries.push(Entry {
            id: me.clone(),
            // An Update identity carries the version the fields are written in.
            api_version: me.api_version.clone(),
            time: Some(now.to_string()),
            set: taken,
        }),
    }
}

/// Merges the oldest Update entries into `ancient-changes` buckets (one per apiVersion) while
/// there are more than ten.
fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.id.operation == Operation::Update)
        .map(|(i, _)| i)
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let (ea, eb) = (&entries[a], &entries[b]);
        time_seconds(ea.time.as_deref())
            .cmp(&time_seconds(eb.time.as_deref()))
            .then_with(|| ea.id.encoded().cmp(&eb.id.encoded()))
    });
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut drop: BTreeSet<usize> = BTreeSet::new();
    for &i in &updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        match first_of_version.get(&version) {
            Some(&first) => {
                let moved = entries[i].set.clone();
                let time = entries[i].time.clone();
                let bucket = &mut entries[first];
                bucket.id = Identity::new(ANCIENT_CHANGES, Operation::Update, &version, "");
                bucket.set = bucket.set.union(&moved);
                bucket.time = time;
                drop.insert(i);
                remaining -= 1;
            }
            None => {
                first_of_version.insert(version, i);
            }
        }
    }
    let mut idx = 0;
    entries.retain(|_| {
        let keep = !drop.contains(&idx);
        idx += 1;
        keep
    });
}

// ---------------------------------------------------------------------------------------------
// Apply and update
// ---------------------------------------------------------------------------------------------

/// [`server_side_apply`] with a subresource, status-subresource knowledge and a schema.
pub fn server_side_apply_with(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    now: &str,
    opts: &FieldManagerOptions<'_>,
) -> Result<Value, FieldManagerError> {
    let Some(applied_map) = applied.as_object() else {
        return Err(FieldManagerError::Invalid(
            "the applied configuration must be an object".into(),
        ));
    };
    let api_version = applied_map
        .get("apiVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FieldManagerError::Invalid("apiVersion must be set".into()))?;
    let kind = applied_map
        .get("kind")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| FieldManagerError::Invalid("kind must be set".into()))?;
    if applied
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(FieldManagerError::Invalid(
            "metadata.name: Required value: name is required".into(),
        ));
    }
    if applied
        .pointer("/metadata/managedFields")
        .is_some_and(|m| !m.is_null())
    {
        return Err(FieldManagerError::BadRequest(
            "metadata.managedFields must be nil".into(),
        ));
    }
    let builtin;
    let schema = match opts.schema {
        Some(s) => s,
        None => {
            builtin = TypeSchema::for_kind(api_version, kind);
            &builtin
        }
    };
    let node = schema.root();
    validate_applied(node, applied, &mut Vec::new()).map_err(FieldManagerError::Invalid)?;
    let ignore = Ignore::resolve(opts, api_version, kind);
    let subresource = opts.subresource.unwrap_or_default();
    let me = Identity::new(manager, Operation::Apply, api_version, subresource);

    let live_clean = match live {
        Some(l) => without_managed_fields(l),
        None => schema.empty_object(applied),
    };
    let mut entries = live.map(decode_entries).unwrap_or_default();
    if entries.is_empty() {
        if let Some(l) = live {
            // Upstream's skip-non-applied manager: existing fields get an owner first.
            let empty = schema.empty_object(l);
            let live_version = l
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or(api_version);
            let id = Identity::new(BEFORE_FIRST_APPLY, Operation::Update, live_version, "");
            record_changes(&mut entries, node, &empty, &live_clean, &id, now, ignore);
        }
    }

    let attempt = |entries: &[Entry], force: bool| {
        apply_once(
            node,
            live,
            &live_clean,
            applied,
            entries.to_vec(),
            &me,
            api_version,
            force,
            ignore,
        )
    };
    let (mut result, mut entries, changed) = match attempt(&entries, force) {
        Ok(r) => r,
        Err(conflicts) if manager == "kubectl" => {
            // Upgrading from client-side apply: fields the last-applied annotation recorded
            // with their live values may be taken over without conflicts.
            let allowed = allowed_from_last_applied(node, &live_clean);
            let remaining: Vec<FieldConflict> = conflicts
                .into_iter()
                .filter(|c| !allowed.contains(&c.field))
                .collect();
            if !remaining.is_empty() {
                return Err(FieldManagerError::Conflict(remaining));
            }
            attempt(&entries, true).map_err(FieldManagerError::Conflict)?
        }
        Err(conflicts) => return Err(FieldManagerError::Conflict(conflicts)),
    };
    for e in entries.iter_mut().filter(|e| e.id == me) {
        if changed {
            e.time = Some(now.to_string());
        }
        e.api_version = api_version.to_string();
    }
    if manager == "kubectl" {
        sync_last_applied(&mut result, applied);
    }
    entries.retain(|e| !e.set.is_empty());
    encode_entries(&mut result, &entries);
    Ok(result)
}

/// One apply attempt: merge, prune, compute ownership. Returns the object, the entries and
/// whether the object content changed.
#[allow(clippy::too_many_arguments)]
fn apply_once(
    node: &Node,
    live: Option<&Value>,
    live_clean: &Value,
    applied: &Value,
    mut entries: Vec<Entry>,
    me: &Identity,
    api_version: &str,
    force: bool,
    ignore: Ignore,
) -> Result<(Value, Vec<Entry>, bool), Vec<FieldConflict>> {
    let mut merged = merge_values(node, live_clean, applied);
    restore_bookkeeping(&mut merged, live);
    ignore.restore(&mut merged, live);

    let config_set = ignore.filter(&field_set_of(node, applied));
    let last = entries
        .iter()
        .find(|e| e.id == *me)
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let previous_time = entries
        .iter()
        .find(|e| e.id == *me)
        .and_then(|e| e.time.clone());
    entries.retain(|e| e.id != *me);
    entries.push(Entry {
        id: me.clone(),
        api_version: api_version.to_string(),
        time: previous_time,
        set: config_set,
    });
    let owned_now = entries
        .iter()
        .fold(FieldSet::default(), |acc, e| acc.union(&e.set));
    let mut result = prune(node, &merged, &owned_now, &last);

    let mut cmp = Comparison::default();
    compare(
        node,
        Some(live_clean),
        Some(&result),
        &mut Vec::new(),
        &mut cmp,
    );
    let cmp = cmp.filtered(ignore);
    update_ownership(&mut entries, me, &cmp, force)?;
    for e in entries.iter_mut().filter(|e| e.id == *me) {
        e.set = e.set.difference(strip_set());
    }
    entries.retain(|e| !e.set.is_empty());
    let changed = live.is_none() || !deep_eq(live_clean, &result);
    drop_nulls(&mut result);
    Ok((result, entries, changed))
}

/// Field paths the client-side `kubectl apply` recorded in the last-applied annotation whose
/// values still match the live object.
fn allowed_from_last_applied(node: &Node, live: &Value) -> BTreeSet<String> {
    let Some(text) = live
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return BTreeSet::new();
    };
    let Ok(last) = serde_json::from_str::<Value>(text) else {
        return BTreeSet::new();
    };
    if last.get("apiVersion") != live.get("apiVersion") {
        return BTreeSet::new();
    }
    let mut cmp = Comparison::default();
    compare(node, Some(&last), Some(live), &mut Vec::new(), &mut cmp);
    field_set_of(node, &last)
        .difference(&cmp.modified)
        .difference(&cmp.added)
        .difference(&cmp.removed)
        .paths()
        .iter()
        .map(|p| path_string(p))
        .collect()
}

/// Keeps an existing last-applied annotation in step with what `kubectl` applied server-side.
fn sync_last_applied(result: &mut Value, applied: &Value) {
    let has = result
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        return;
    }
    let mut config = applied.clone();
    if let Some(ann) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        ann.remove(LAST_APPLIED);
    }
    // Go's JSON encoder ends the document with a newline; kubectl compares the text.
    let text = format!("{}\n", go_json(&config));
    if let Some(ann) = result
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        ann.insert(LAST_APPLIED.into(), Value::String(text));
    }
}

/// [`record_update`] with status-subresource knowledge and a schema.
pub fn record_update_with(
    old: Option<&Value>,
    new: Value,
    manager: &str,
    now: &str,
    opts: &FieldManagerOptions<'_>,
) -> Value {
    let mut new = new;
    let api_version = new
        .get("apiVersion")
        .and_then(Value::as_str)
        .or_else(|| {
            old.and_then(|o| o.get("apiVersion"))
                .and_then(Value::as_str)
        })
        .unwrap_or_default()
        .to_string();
    let kind = new
        .get("kind")
        .and_then(Value::as_str)
        .or_else(|| old.and_then(|o| o.get("kind")).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string();
    let builtin;
    let schema = match opts.schema {
        Some(s) => s,
        None => {
            builtin = TypeSchema::for_kind(&api_version, &kind);
            &builtin
        }
    };
    let node = schema.root();
    let ignore = Ignore::resolve(opts, &api_version, &kind);
    let subresource = opts.subresource.unwrap_or_default();

    // Which managedFields to start from: a main-resource write may set them (an empty list
    // resets them); otherwise, and for subresources, the live ones are kept.
    let requested = new.pointer("/metadata/managedFields").cloned();
    let mut entries = match (&requested, subresource.is_empty()) {
        (Some(Value::Array(list)), true)
            if list.is_empty()
                || (list.len() == 1 && list[0].as_object().is_some_and(Map::is_empty)) =>
        {
            Vec::new()
        }
        (Some(Value::Array(_)), true) => {
            let from_request = decode_entries(&new);
            if from_request.is_empty() {
                old.map(decode_entries).unwrap_or_default()
            } else {
                from_request
            }
        }
        _ => old.map(decode_entries).unwrap_or_default(),
    };
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let old_clean = match old {
        Some(o) => without_managed_fields(o),
        None => schema.empty_object(&new),
    };
    let is_create = old
        .and_then(|o| o.pointer("/metadata/uid"))
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    if entries.is_empty() && !is_create {
        // Upstream stops tracking objects whose managedFields are empty (or were reset with
        // `managedFields: []`) until the next apply.
        return new;
    }
    let me = Identity::new(manager, Operation::Update, &api_version, subresource);
    record_changes(&mut entries, node, &old_clean, &new, &me, now, ignore);
    cap_update_managers(&mut entries);
    encode_entries(&mut new, &entries);
    new
}

// ---------------------------------------------------------------------------------------------
// The scale subresource
// ---------------------------------------------------------------------------------------------

/// The apiVersion of the `Scale` objects the scale subresource serves.
pub const SCALE_API_VERSION: &str = "autoscaling/v1";

/// `spec.replicas`, where both the parent and its `Scale` keep the replica count.
fn replicas_path() -> [Pe; 2] {
    [
        Pe::Field("spec".to_string()),
        Pe::Field("replicas".to_string()),
    ]
}

/// The managedFields of a `Scale` made from `parent` (kube-apiserver's
/// `ScaleHandler.ToSubresource`): every entry of the parent that owns `spec.replicas` becomes an
/// entry owning the Scale's `spec.replicas`, expressed in `autoscaling/v1`. Entries in an
/// apiVersion not in `parent_versions` are skipped.
pub fn scale_managed_fields(parent: &Value, parent_versions: &[&str]) -> Value {
    let path = replicas_path();
    let mut replicas = FieldSet::default();
    replicas.insert(&path);
    let entries: Vec<Entry> = decode_entries(parent)
        .into_iter()
        .filter(|e| parent_versions.contains(&e.api_version.as_str()) && e.set.has(&path))
        .map(|e| Entry {
            api_version: SCALE_API_VERSION.to_string(),
            set: replicas.clone(),
            ..e
        })
        .collect();
    let mut holder = Value::Object(Map::new());
    encode_entries(&mut holder, &entries);
    holder
        .pointer("/metadata/managedFields")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()))
}

/// Merges the managedFields of a written `Scale` back into its parent (kube-apiserver's
/// `ScaleHandler.ToParent`), in place. Parent entries in an unknown apiVersion are dropped;
/// parent entries owning `spec.replicas` lose it unless the same manager still has an entry in
/// the Scale; Scale entries owning `spec.replicas` become parent entries in `api_version` (the
/// request's version), keeping their subresource (`scale` for writes through `/scale`) and,
/// as upstream, no time stamp unless the parent had one for that manager.
pub fn scale_managed_fields_to_parent(
    parent: &mut Value,
    scale: &Value,
    parent_versions: &[&str],
    api_version: &str,
) {
    let path = replicas_path();
    let mut replicas = FieldSet::default();
    replicas.insert(&path);
    let parent_entries = decode_entries(parent);
    let mut from_scale = decode_entries(scale);
    let mut out: Vec<Entry> = Vec::new();
    for p in &parent_entries {
        if !parent_versions.contains(&p.api_version.as_str()) {
            continue;
        }
        if !p.set.has(&path) {
            out.push(p.clone());
            continue;
        }
        match from_scale.iter().position(|s| s.id == p.id) {
            // The field was not taken from this manager: the entry stays as it is.
            Some(i) => {
                from_scale.remove(i);
                out.push(p.clone());
            }
            None => {
                let rest = p.set.difference(&replicas);
                if !rest.is_empty() {
                    out.push(Entry {
                        set: rest,
                        ..p.clone()
                    });
                }
            }
        }
    }
    for s in from_scale.into_iter().filter(|s| s.set.has(&path)) {
        let time = parent_entries
            .iter()
            .find(|p| p.id == s.id)
            .and_then(|p| p.time.clone());
        out.push(Entry {
            id: Identity::new(
                &s.id.manager,
                s.id.operation,
                api_version,
                &s.id.subresource,
            ),
            api_version: api_version.to_string(),
            time,
            set: replicas.clone(),
        });
    }
    encode_entries(parent, &out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T0: &str = "2024-01-01T00:00:00Z";
    const T1: &str = "2024-01-01T00:01:00Z";
    const T2: &str = "2024-01-01T00:02:00Z";

    #[test]
    fn scale_managed_fields_round_trip_like_the_scale_handler() {
        let parent = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": [
                {"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:paused": {}}}},
                {"manager": "old", "operation": "Update", "apiVersion": "extensions/v1beta1", "time": T0,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:minReadySeconds": {}}}},
            ]},
            "spec": {"replicas": 2, "paused": false, "minReadySeconds": 1}});
        let versions = ["apps/v1"];
        let scale_mf = scale_managed_fields(&parent, &versions);
        assert_eq!(
            scale_mf,
            json!([{"manager": "a", "operation": "Apply", "apiVersion": "autoscaling/v1", "time": T0,
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}}}])
        );
        let scale = json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
            "metadata": {"name": "web", "uid": "u", "managedFields": scale_mf}, "spec": {"replicas": 2}});

        // A write that leaves spec.replicas with "a": its entry stays whole; entries in an
        // unknown apiVersion are dropped.
        let mut unchanged = parent.clone();
        scale_managed_fields_to_parent(&mut unchanged, &scale, &versions, "apps/v1");
        assert_eq!(
            unchanged["metadata"]["managedFields"],
            json!([parent["metadata"]["managedFields"][0]])
        );

        // A write that moves spec.replicas to "hpa": "a" loses it, "hpa" gets a scale entry.
        let mut moved_scale = scale.clone();
        moved_scale["spec"]["replicas"] = json!(5);
        let moved_scale = record_update_with(
            Some(&scale),
            moved_scale,
            "hpa",
            T1,
            &FieldManagerOptions {
                subresource: Some("scale"),
                status_subresource: Some(false),
                schema: None,
            },
        );
        let mut moved = parent.clone();
        scale_managed_fields_to_parent(&mut moved, &moved_scale, &versions, "apps/v1");
        assert_eq!(
            moved["metadata"]["managedFields"],
            json!([
                {"manager": "a", "operation": "Apply", "apiVersion": "apps/v1", "time": T0,
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:paused": {}}}},
                {"manager": "hpa", "operation": "Update", "apiVersion": "apps/v1",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                 "subresource": "scale"},
            ])
        );
    }

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "cfg", "namespace": "default"}, "data": data})
    }

    fn apply(live: Option<&Value>, cfg: &Value, manager: &str) -> Value {
        server_side_apply(live, cfg, manager, false, T0).expect("apply succeeds")
    }

    /// The managedFields entry of `manager` with `operation`.
    fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        obj.pointer("/metadata/managedFields")?
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    fn fields<'a>(obj: &'a Value, manager: &str, operation: &str) -> &'a Value {
        &entry(obj, manager, operation)
            .unwrap_or_else(|| panic!("no {operation} entry for {manager} in {obj:#}"))["fieldsV1"]
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "app", "image": image, "ports": [{"containerPort": 80}]}
                    ]}
                }
            }
        })
    }

    #[test]
    fn apply_create_sets_object_and_apply_entry() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "namespace": "default", "labels": {"app": "x"}},
            "data": {"a": "1"}});
        let out = apply(None, &cfg, "kubectl");
        assert_eq!(out["data"], json!({"a": "1"}));
        assert_eq!(out["metadata"]["labels"], json!({"app": "x"}));
        let mf = out["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields");
        assert_eq!(mf.len(), 1);
        assert_eq!(
            mf[0],
            json!({"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T0,
                   "fieldsType": "FieldsV1",
                   "fieldsV1": {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}})
        );
    }

    #[test]
    fn apply_create_requires_type_and_name() {
        for bad in [
            json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
            json!({"apiVersion": "v1", "metadata": {"name": "x"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
            json!("not an object"),
        ] {
            assert!(matches!(
                server_side_apply(None, &bad, "m", false, T0),
                Err(FieldManagerError::Invalid(_))
            ));
        }
        let with_mf = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "managedFields": []}});
        assert_eq!(
            server_side_apply(None, &with_mf, "m", false, T0),
            Err(FieldManagerError::BadRequest(
                "metadata.managedFields must be nil".into()
            ))
        );
    }

    #[test]
    fn deployment_fields_v1_encoding_matches_upstream() {
        let out = apply(None, &deployment(2, "nginx:1"), "kubectl");
        assert_eq!(
            *fields(&out, "kubectl", "Apply"),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn reapply_without_a_field_removes_it() {
        let first = apply(None, &cm(json!({"a": "1", "b": "2"})), "m1");
        let second = apply(Some(&first), &cm(json!({"a": "1"})), "m1");
        assert_eq!(second["data"], json!({"a": "1"}));
        assert_eq!(
            *fields(&second, "m1", "Apply"),
            json!({"f:data": {"f:a": {}}})
        );
        // Dropping the last key drops the map, as the built-in types drop an empty map.
        let third = apply(
            Some(&second),
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}}),
            "m1",
        );
        assert!(third.get("data").is_none(), "{third:#}");
        assert!(third.pointer("/metadata/managedFields").is_none());
    }

    #[test]
    fn same_value_is_shared_and_survives_one_owner_leaving() {
        let a = apply(None, &cm(json!({"k": "v", "x": "1"})), "m1");
        let b = apply(Some(&a), &cm(json!({"k": "v"})), "m2");
        assert_eq!(
            *fields(&b, "m1", "Apply"),
            json!({"f:data": {"f:k": {}, "f:x": {}}})
        );
        assert_eq!(*fields(&b, "m2", "Apply"), json!({"f:data": {"f:k": {}}}));
        // m1 stops applying k: m2 still owns it, so only ownership is released.
        let c = apply(Some(&b), &cm(json!({"x": "1"})), "m1");
        assert_eq!(c["data"], json!({"k": "v", "x": "1"}));
        assert_eq!(*fields(&c, "m1", "Apply"), json!({"f:data": {"f:x": {}}}));
    }

    #[test]
    fn conflicting_value_reports_manager_and_path() {
        let a = apply(None, &cm(json!({"key": "one"})), "m1");
        let err = server_side_apply(Some(&a), &cm(json!({"key": "two"})), "other", false, T1)
            .expect_err("conflict");
        assert_eq!(
            err,
            FieldManagerError::Conflict(vec![FieldConflict {
                manager: "m1".into(),
                field: ".data.key".into(),
                printed_manager: "\"m1\"".into(),
            }])
        );
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"m1\": .data.key"
        );
    }

    #[test]
    fn several_conflicts_are_grouped_by_manager() {
        let a = apply(None, &cm(json!({"a": "1", "b": "1"})), "zeta");
        let b = apply(Some(&a), &cm(json!({"c": "1"})), "alpha");
        let err = server_side_apply(
            Some(&b),
            &cm(json!({"a": "2", "b": "2", "c": "2"})),
            "me",
            false,
            T1,
        )
        .expect_err("conflicts");
        assert_eq!(
            err.to_string(),
            "Apply failed with 3 conflicts: conflicts with \"alpha\":\n- .data.c\n\
             conflicts with \"zeta\":\n- .data.a\n- .data.b"
        );
        assert_eq!(
            err.conflict_pairs()[0],
            ("\"alpha\"".to_string(), ".data.c".to_string())
        );
    }

    #[test]
    fn force_takes_ownership() {
        let a = apply(None, &cm(json!({"key": "one", "other": "x"})), "m1");
        let b = server_side_apply(Some(&a), &cm(json!({"key": "two"})), "m2", true, T1)
            .expect("forced");
        assert_eq!(b["data"], json!({"key": "two", "other": "x"}));
        assert_eq!(
            *fields(&b, "m1", "Apply"),
            json!({"f:data": {"f:other": {}}})
        );
        assert_eq!(*fields(&b, "m2", "Apply"), json!({"f:data": {"f:key": {}}}));
        // When the loser owned nothing else its entry disappears.
        let c = server_side_apply(Some(&b), &cm(json!({"other": "y"})), "m2", true, T2)
            .expect("forced");
        assert!(entry(&c, "m1", "Apply").is_none());
    }

    #[test]
    fn scale_then_apply_conflicts_with_the_update_manager() {
        let applied = apply(None, &deployment(1, "nginx:1"), "kubectl");
        // `kubectl scale` writes through the scale subresource.
        let mut scaled = applied.clone();
        scaled["spec"]["replicas"] = json!(3);
        let scaled = record_update(Some(&applied), scaled, "kubectl", Some("scale"), T1);
        assert_eq!(
            entry(&scaled, "kubectl", "Update").expect("scale entry")["subresource"],
            "scale"
        );
        // The applier no longer owns replicas.
        assert!(fields(&scaled, "kubectl", "Apply")
            .pointer("/f:spec/f:replicas")
            .is_none());
        let err = server_side_apply(
            Some(&scaled),
            &deployment(1, "nginx:1"),
            "kubectl",
            false,
            T2,
        )
        .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" \
             using apps/v1: .spec.replicas"
        );
        // Applying the value the updater set is no conflict.
        let ok = server_side_apply(
            Some(&scaled),
            &deployment(3, "nginx:1"),
            "kubectl",
            false,
            T2,
        )
        .expect("same value");
        assert_eq!(ok["spec"]["replicas"], 3);
    }

    #[test]
    fn edit_then_apply_conflict_names_update_manager_with_version() {
        let applied = apply(None, &deployment(1, "nginx:1"), "kubectl");
        let mut edited = applied.clone();
        edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        let edited = record_update(Some(&applied), edited, "kubectl-edit", None, T1);
        assert_eq!(
            *fields(&edited, "kubectl-edit", "Update"),
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {"f:image": {}}}}}}})
        );
        let err = server_side_apply(
            Some(&edited),
            &deployment(1, "nginx:3"),
            "kubectl",
            false,
            T2,
        )
        .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1: \
             .spec.template.spec.containers[name=\"app\"].image"
        );
        let forced = server_side_apply(
            Some(&edited),
            &deployment(1, "nginx:3"),
            "kubectl",
            true,
            T2,
        )
        .expect("forced");
        assert!(entry(&forced, "kubectl-edit", "Update").is_none());
        assert_eq!(
            forced["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:3"
        );
    }

    #[test]
    fn labels_are_owned_per_key() {
        let with_labels = |labels: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "labels": labels}})
        };
        let a = apply(None, &with_labels(json!({"a": "1"})), "m1");
        let b = apply(Some(&a), &with_labels(json!({"b": "2"})), "m2");
        assert_eq!(b["metadata"]["labels"], json!({"a": "1", "b": "2"}));
        let c = apply(Some(&b), &with_labels(json!({"c": "3"})), "m1");
        assert_eq!(c["metadata"]["labels"], json!({"b": "2", "c": "3"}));
        let err = server_side_apply(Some(&c), &with_labels(json!({"b": "9"})), "m1", false, T1)
            .expect_err("conflict");
        assert_eq!(
            err.conflict_pairs(),
            vec![("\"m2\"".to_string(), ".metadata.labels.b".to_string())]
        );
    }

    #[test]
    fn containers_merge_by_name() {
        let a = apply(None, &deployment(1, "nginx:1"), "m1");
        let sidecar = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "envoy"}]}}}});
        let b = apply(Some(&a), &sidecar, "m2");
        let names: Vec<&Value> = b["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
            .iter()
            .map(|c| &c["name"])
            .collect();
        assert_eq!(names, vec!["app", "sidecar"]);
        // m1 re-applies unchanged: the sidecar stays, it is m2's.
        let c = apply(Some(&b), &deployment(1, "nginx:1"), "m1");
        assert_eq!(
            c["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
        // m2 stops applying its container: it goes.
        let empty = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}});
        let d = apply(Some(&c), &empty, "m2");
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn ports_use_the_composite_key_with_protocol_default() {
        let mut d = deployment(1, "nginx:1");
        d["spec"]["template"]["spec"]["containers"][0]["ports"] = json!([
            {"containerPort": 53, "protocol": "UDP"},
            {"containerPort": 53}
        ]);
        let out = apply(None, &d, "m1");
        let ports = out
            .pointer("/metadata/managedFields/0/fieldsV1/f:spec/f:template/f:spec/f:containers")
            .and_then(|c| c.get("k:{\"name\":\"app\"}"))
            .and_then(|c| c.get("f:ports"))
            .expect("ports owned");
        assert_eq!(
            *ports,
            json!({
                "k:{\"containerPort\":53,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}},
                "k:{\"containerPort\":53,\"protocol\":\"UDP\"}":
                    {".": {}, "f:containerPort": {}, "f:protocol": {}}
            })
        );
        // Writing the same port twice is a duplicate key.
        d["spec"]["template"]["spec"]["containers"][0]["ports"] =
            json!([{"containerPort": 80}, {"containerPort": 80, "protocol": "TCP"}]);
        let err = server_side_apply(None, &d, "m1", false, T0).expect_err("duplicate");
        assert!(
            err.to_string()
                .contains("duplicate entries for key [containerPort=80,protocol=\"TCP\"]"),
            "{err}"
        );
    }

    #[test]
    fn finalizers_merge_as_a_set() {
        let with = |f: Value| {
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                   "metadata": {"name": "cfg", "finalizers": f}})
        };
        let a = apply(None, &with(json!(["a.example/x"])), "m1");
        let b = apply(Some(&a), &with(json!(["b.example/y"])), "m2");
        assert_eq!(
            b["metadata"]["finalizers"],
            json!(["a.example/x", "b.example/y"])
        );
        assert_eq!(
            *fields(&b, "m2", "Apply"),
            json!({"f:metadata": {"f:finalizers": {"v:\"b.example/y\"": {}}}})
        );
        let c = apply(Some(&b), &with(json!([])), "m1");
        assert_eq!(c["metadata"]["finalizers"], json!(["b.example/y"]));
    }

    #[test]
    fn atomic_lists_are_owned_whole() {
        let rb = |subjects: Value| {
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                   "metadata": {"name": "rb"},
                   "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
                   "subjects": subjects})
        };
        let a = apply(None, &rb(json!([{"kind": "User", "name": "a"}])), "m1");
        assert_eq!(
            *fields(&a, "m1", "Apply"),
            json!({"f:roleRef": {}, "f:subjects": {}})
        );
        let err = server_side_apply(
            Some(&a),
            &rb(json!([{"kind": "User", "name": "b"}])),
            "m2",
            false,
            T1,
        )
        .expect_err("conflict");
        let fields: Vec<String> = err.conflict_pairs().into_iter().map(|(_, f)| f).collect();
        assert_eq!(fields, vec![".subjects"]);
    }

    #[test]
    fn no_op_apply_keeps_the_time() {
        let a = apply(None, &cm(json!({"k": "v"})), "m1");
        let b =
            server_side_apply(Some(&a), &cm(json!({"k": "v"})), "m1", false, T2).expect("no-op");
        assert_eq!(entry(&b, "m1", "Apply").expect("entry")["time"], T0);
        let c =
            server_side_apply(Some(&b), &cm(json!({"k": "w"})), "m1", false, T2).expect("change");
        assert_eq!(entry(&c, "m1", "Apply").expect("entry")["time"], T2);
    }

    #[test]
    fn record_update_on_create_owns_new_maps_itself() {
        let created = record_update(None, cm(json!({"a": "1"})), "kubectl-create", None, T0);
        assert_eq!(
            created["metadata"]["managedFields"],
            json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1",
                    "time": T0, "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}, "f:a": {}}}}])
        );
        // Deployment: spec is a value struct (no "."), labels a new map (".").
        let d = record_update(None, deployment(1, "nginx"), "kubectl-create", None, T0);
        let f = fields(&d, "kubectl-create", "Update");
        assert!(f.pointer("/f:spec/.").is_none(), "{f:#}");
        assert!(f.pointer("/f:metadata/f:labels/.").is_some(), "{f:#}");
    }

    #[test]
    fn record_update_moves_changed_fields_and_drops_removed_ones() {
        let a = apply(None, &cm(json!({"a": "1", "b": "2"})), "applier");
        let mut edited = a.clone();
        edited["data"] = json!({"a": "changed", "c": "3"});
        let out = record_update(Some(&a), edited, "kubectl-edit", None, T1);
        // `b` was removed (gone from every set), `a` moved to the editor, `c` is the editor's.
        assert!(entry(&out, "applier", "Apply").is_none(), "{out:#}");
        assert_eq!(
            *fields(&out, "kubectl-edit", "Update"),
            json!({"f:data": {"f:a": {}, "f:c": {}}})
        );
        // An update that changes nothing leaves managedFields alone.
        let same = record_update(Some(&out), out.clone(), "other", None, T2);
        assert_eq!(
            same["metadata"]["managedFields"],
            out["metadata"]["managedFields"]
        );
    }

    #[test]
    fn managed_fields_are_sorted_apply_first_then_by_time() {
        let a = record_update(None, cm(json!({"a": "1"})), "zz-creator", None, T0);
        let b = server_side_apply(Some(&a), &cm(json!({"b": "1"})), "applier", false, T1)
            .expect("apply");
        let mut c = b.clone();
        c["data"]["c"] = json!("1");
        let c = record_update(Some(&b), c, "aa-late", None, T2);
        let order: Vec<(&Value, &Value)> = c["metadata"]["managedFields"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| (&e["manager"], &e["operation"]))
            .collect();
        assert_eq!(
            order,
            vec![
                (&json!("applier"), &json!("Apply")),
                (&json!("zz-creator"), &json!("Update")),
                (&json!("aa-late"), &json!("Update")),
            ]
        );
    }

    #[test]
    fn apply_and_update_of_one_manager_are_separate_entries() {
        let a = apply(None, &cm(json!({"a": "1"})), "tool");
        let mut b = a.clone();
        b["data"]["b"] = json!("2");
        let b = record_update(Some(&a), b, "tool", None, T1);
        assert!(entry(&b, "tool", "Apply").is_some());
        assert!(entry(&b, "tool", "Update").is_some());
        // Apply and Update entries are different managers, so the applier conflicts with
        // the fields its own update took.
        let err = server_side_apply(
            Some(&b),
            &cm(json!({"a": "1", "b": "3"})),
            "tool",
            false,
            T2,
        )
        .expect_err("conflict with own update entry");
        assert_eq!(err.conflict_pairs()[0].0, "\"tool\" using v1");
    }

    #[test]
    fn status_is_ignored_on_the_main_resource() {
        let mut d = deployment(1, "nginx");
        d["status"] = json!({"replicas": 5});
        let out = apply(None, &d, "m1");
        assert!(out.get("status").is_none());
        assert!(fields(&out, "m1", "Apply").get("f:status").is_none());
        // The status subresource owns status and nothing else.
        let mut s = out.clone();
        s["status"] = json!({"replicas": 1});
        s["spec"]["replicas"] = json!(7);
        let after = record_update_with(
            Some(&out),
            s,
            "controller",
            T1,
            &FieldManagerOptions {
                subresource: Some("status"),
                ..FieldManagerOptions::default()
            },
        );
        assert_eq!(
            *fields(&after, "controller", "Update"),
            json!({"f:status": {".": {}, "f:replicas": {}}})
        );
        // Applying status through /status.
        let status_apply = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web"}, "status": {"replicas": 2}, "spec": {"replicas": 9}});
        let out2 = server_side_apply_with(
            Some(&after),
            &status_apply,
            "ctl",
            true,
            T2,
            &FieldManagerOptions {
                subresource: Some("status"),
                ..FieldManagerOptions::default()
            },
        )
        .expect("status apply");
        assert_eq!(out2["status"]["replicas"], 2);
        // /status leaves the spec as it was (7, written by the status update above).
        assert_eq!(out2["spec"]["replicas"], after["spec"]["replicas"]);
        let e = entry(&out2, "ctl", "Apply").expect("entry");
        assert_eq!(e["subresource"], "status");
        assert_eq!(e["fieldsV1"], json!({"f:status": {"f:replicas": {}}}));
    }

    #[test]
    fn first_apply_to_untracked_object_conflicts_with_before_first_apply() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cfg", "uid": "u1", "resourceVersion": "5"},
            "data": {"a": "1"}});
        let err = server_side_apply(Some(&live), &cm(json!({"a": "2"})), "m1", false, T1)
            .expect_err("conflict");
        assert_eq!(
            err.to_string(),
            "Apply failed with 1 conflict: conflict with \"before-first-apply\" using v1: .data.a"
        );
        let ok = server_side_apply(
            Some(&live),
            &cm(json!({"a": "1", "b": "2"})),
            "m1",
            false,
            T1,
        )
        .expect("shared");
        assert!(entry(&ok, "before-first-apply", "Update").is_some());
        assert_eq!(ok["metadata"]["uid"], "u1");
        assert_eq!(ok["metadata"]["resourceVersion"], "5");
    }

    #[test]
    fn kubectl_takes_over_from_client_side_apply() {
        let mut created = deployment(1, "nginx:1");
        let last = go_json(&created);
        created["metadata"]["annotations"] = json!({LAST_APPLIED: format!("{last}\n")});
        let created = record_update(None, created, "kubectl-client-side-apply", None, T0);
        // Another manager must not take replicas silently...
        assert!(server_side_apply(
            Some(&created),
            &deployment(4, "nginx:1"),
            "other",
            false,
            T1
        )
        .is_err());
        // ...but `kubectl apply --server-side` may, for fields the annotation recorded.
        let out = server_side_apply(
            Some(&created),
            &deployment(4, "nginx:1"),
            "kubectl",
            false,
            T1,
        )
        .expect("migration");
        assert_eq!(out["spec"]["replicas"], 4);
        let ann = out["metadata"]["annotations"][LAST_APPLIED]
            .as_str()
            .expect("annotation kept");
        let recorded: Value = serde_json::from_str(ann).expect("json");
        assert_eq!(recorded["spec"]["replicas"], 4);
        assert!(ann.ends_with('\n'));
    }

    #[test]
    fn crd_schema_list_types_are_honoured() {
        let crd = json!({"spec": {"versions": [{"name": "v1", "schema": {"openAPIV3Schema": {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {
            "items": {"type": "array", "x-kubernetes-list-type": "map",
                      "x-kubernetes-list-map-keys": ["id"],
                      "items": {"type": "object", "properties": {
                          "id": {"type": "string"}, "v": {"type": "string"}}}},
            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                     "items": {"type": "string"}},
            "plain": {"type": "array", "items": {"type": "string"}}
        }}}}}}]}});
        let schema = TypeSchema::from_crd(&crd, "v1").expect("version");
        let opts = FieldManagerOptions {
            schema: Some(&schema),
            ..FieldManagerOptions::default()
        };
        let cr = |spec: Value| {
            json!({"apiVersion": "example.com/v1", "kind": "Widget",
                   "metadata": {"name": "w"}, "spec": spec})
        };
        let a = server_side_apply_with(
            None,
            &cr(json!({"items": [{"id": "a", "v": "1"}], "tags": ["x"], "plain": ["p"]})),
            "m1",
            false,
            T0,
            &opts,
        )
        .expect("create");
        let b = server_side_apply_with(
            Some(&a),
            &cr(json!({"items": [{"id": "b", "v": "2"}], "tags": ["y"]})),
            "m2",
            false,
            T1,
            &opts,
        )
        .expect("merge");
        assert_eq!(b["spec"]["items"].as_array().map(Vec::len), Some(2));
        assert_eq!(b["spec"]["tags"], json!(["x", "y"]));
        // Without a schema, CRD lists are atomic: m2's list conflicts with m1's.
        let a = server_side_apply(
            None,
            &cr(json!({"items": [{"id": "a", "v": "1"}]})),
            "m1",
            false,
            T0,
        )
        .expect("create");
        let err = server_side_apply(
            Some(&a),
            &cr(json!({"items": [{"id": "b", "v": "2"}]})),
            "m2",
            false,
            T1,
        )
        .expect_err("atomic");
        assert_eq!(err.conflict_pairs()[0].1, ".spec.items");
    }

    #[test]
    fn update_managers_are_capped_at_ten() {
        let mut obj = record_update(None, cm(json!({"k0": "x"})), "u0", None, T0);
        for i in 1..=11 {
            let mut next = obj.clone();
            next["data"][format!("k{i}")] = json!("x");
            let t = format!("2024-01-01T00:{i:02}:00Z");
            obj = record_update(Some(&obj), next, &format!("u{i}"), None, &t);
        }
        let entries = obj["metadata"]["managedFields"]
            .as_array()
            .expect("entries");
        assert_eq!(entries.len(), 10);
        let ancient = entries
            .iter()
            .find(|e| e["manager"] == ANCIENT_CHANGES)
            .expect("bucket");
        assert_eq!(
            ancient["fieldsV1"],
            json!({"f:data": {".": {}, "f:k0": {}, "f:k1": {}, "f:k2": {}}}),
            "{obj:#}"
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"x\"}": {".": {}, "f:image": {}}},
                       "f:finalizers": {"v:\"a\"": {}}, "f:list": {"i:0": {}}}});
        let set = FieldSet::from_fields_v1(&v);
        assert_eq!(set.to_fields_v1(), v);
        assert!(set.has(&[
            Pe::Field("spec".into()),
            Pe::Field("containers".into()),
            Pe::Key(vec![("name".into(), json!("x"))]),
        ]));
    }

    #[test]
    fn list_merge_keeps_live_order_and_inserts_new_items_after_predecessors() {
        let list = ListNode {
            ssa: ListType::Map(vec![("name".into(), None)]),
            smp: SmpStrategy::Replace,
            item: Node::Any,
        };
        let node = Node::List(Box::new(list));
        let items =
            |names: &[&str]| Value::Array(names.iter().map(|n| json!({"name": n})).collect());
        let merged = merge_values(&node, &items(&["a", "b", "c"]), &items(&["b", "x", "c"]));
        assert_eq!(merged, items(&["a", "b", "x", "c"]));
        let merged = merge_values(&node, &items(&["a", "b"]), &items(&["b", "a"]));
        assert_eq!(merged, items(&["b", "a"]));
    }

    #[test]
    fn builtin_status_subresources() {
        assert!(has_status_subresource("apps/v1", "Deployment"));
        assert!(has_status_subresource("v1", "Namespace"));
        assert!(!has_status_subresource("v1", "ConfigMap"));
        assert!(!has_status_subresource("example.com/v1", "Widget"));
    }
}
