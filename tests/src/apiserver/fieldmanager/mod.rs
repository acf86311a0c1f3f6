//! Server-side apply and managedFields bookkeeping. This module holds the entry points
//! (apply, update, scale); `path` the path elements and field sets, `schema` how each field
//! merges, `walk` the typed merge, compare and removal, `entries` the managedFields entries.
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
#[cfg(test)]
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
#[cfg(test)]
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

mod entries;
mod path;
mod schema;
#[cfg(test)]
mod tests;
mod walk;

use entries::*;
pub(crate) use path::*;
pub use schema::*;
use walk::*;

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
