//! JSON merge patch, JSON patch and strategic merge patch.
//!
//! The strategic merge patch follows `k8s.io/apimachinery/pkg/util/strategicpatch` (v0.32) as
//! kube-apiserver applies it: lists merge by the `patchMergeKey` of the built-in Go types (the
//! table lives with the server-side apply schema in `fieldmanager`), other lists are replaced,
//! and the directives kubectl sends are honoured: `$patch: replace|delete` (maps and list
//! items), `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>` and `$retainKeys`.
//! Custom resources have no Go struct tags, so kube-apiserver refuses strategic merge patches
//! for them with 415; [`supports_strategic_merge`] tells the server when to do that.

use serde_json::{Map, Value};

use super::fieldmanager::{deep_eq, group_of, is_builtin_group, Node, SmpStrategy, TypeSchema};

/// Why a patch could not be applied (HTTP 422 or 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PatchError {
    /// The patch document itself is malformed.
    #[error("malformed patch: {0}")]
    Malformed(String),
    /// A JSON patch `test` failed or a path did not exist.
    #[error("patch failed: {0}")]
    Failed(String),
    /// The patch type is not supported for this resource (HTTP 415): strategic merge patch on
    /// a custom resource.
    #[error("{0}")]
    Unsupported(String),
    /// A JSON patch operation did not apply (a `test` failed, a path is missing). kube-apiserver
    /// answers these with its generic 422 message and keeps the reason to itself.
    #[error("JSON patch failed: {0}")]
    JsonPatchFailed(String),
}

/// RFC 7386 JSON merge patch.
pub fn json_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    // kube-apiserver decodes the patch into an object; a bare array or scalar is refused
    // rather than replacing the whole object.
    if !patch.is_object() {
        return Err(PatchError::Malformed(
            "invalid JSON document: a merge patch must be a JSON object".into(),
        ));
    }
    let mut doc = target.clone();
    json_patch::merge(&mut doc, patch);
    Ok(doc)
}

/// RFC 6902 JSON patch.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Malformed(format!("invalid JSON patch: {e}")))?;
    let mut doc = target.clone();
    for op in &ops.0 {
        // evanphx/json-patch (kube-apiserver's) lets `test` with a null value pass on a
        // missing path; kube-rs's finalizer helper relies on it to add the first finalizer.
        if let json_patch::PatchOperation::Test(test) = op {
            if test.value.is_null() && doc.pointer(test.path.as_str()).is_none() {
                continue;
            }
        }
        apply_one(&mut doc, op)?;
    }
    Ok(doc)
}

fn apply_one(doc: &mut Value, op: &json_patch::PatchOperation) -> Result<(), PatchError> {
    let ops = json_patch::Patch(vec![op.clone()]);
    json_patch::patch(doc, &ops).map_err(|e| {
        let op = ops.0.get(e.operation);
        let path = op.map(|o| o.path().to_string()).unwrap_or_default();
        // Worded like evanphx/json-patch, which kube-apiserver uses.
        let message = match e.kind {
            json_patch::PatchErrorKind::TestFailed => {
                format!("testing value {path} failed: test failed")
            }
            _ => {
                let name = match op {
                    Some(json_patch::PatchOperation::Add(_)) => "add",
                    Some(json_patch::PatchOperation::Remove(_)) => "remove",
                    Some(json_patch::PatchOperation::Replace(_)) => "replace",
                    Some(json_patch::PatchOperation::Move(_)) => "move",
                    Some(json_patch::PatchOperation::Copy(_)) => "copy",
                    Some(json_patch::PatchOperation::Test(_)) => "test",
                    None => "patch",
                };
                format!("{name} operation does not apply: doc is missing path: \"{path}\": missing value")
            }
        };
        PatchError::JsonPatchFailed(message)
    })
}

/// Whether kube-apiserver accepts `application/strategic-merge-patch+json` for this type:
/// true for the built-in API groups, false for custom resources (answer 415 then).
pub fn supports_strategic_merge(api_version: &str, kind: &str) -> bool {
    let _ = kind;
    is_builtin_group(group_of(api_version))
}

/// Strategic merge patch as kubectl sends it, for the given apiVersion and kind.
pub fn strategic_merge_patch(
    target: &Value,
    patch: &Value,
    api_version: &str,
    kind: &str,
) -> Result<Value, PatchError> {
    if !supports_strategic_merge(api_version, kind) {
        return Err(PatchError::Unsupported(
            "the body of the request was in an unknown format - accepted media types include: \
             application/json-patch+json, application/merge-patch+json, \
             application/apply-patch+yaml"
                .into(),
        ));
    }
    let Value::Object(patch) = patch else {
        return Err(PatchError::Malformed(ERR_BAD_JSON_DOC.into()));
    };
    let original = match target {
        Value::Object(m) => m.clone(),
        Value::Null => Map::new(),
        _ => return Err(PatchError::Malformed(ERR_BAD_JSON_DOC.into())),
    };
    let schema = TypeSchema::for_kind(api_version, kind);
    merge_map(original, patch.clone(), schema.root()).map(Value::Object)
}

// The mergepatch package's error texts.
const ERR_BAD_JSON_DOC: &str = "invalid JSON document";
const ERR_NO_LIST_OF_LISTS: &str = "lists of lists are not supported";
const ERR_BAD_RETAIN_KEYS: &str = "invalid patch format of retainKeys";
const ERR_BAD_SET_ORDER: &str = "invalid patch format of setElementOrder list";
const ERR_BAD_PRIMITIVE_LIST: &str = "invalid patch format of primitive list";

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

fn no_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::Failed(format!(
        "map: {item} does not contain declared merge key: {key}"
    ))
}

/// Merges a patch map into the original map (`mergeMap`).
fn merge_map(
    mut original: Map<String, Value>,
    mut patch: Map<String, Value>,
    node: &Node,
) -> Result<Map<String, Value>, PatchError> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(clean_map(patch))
            }
            Some("delete") => Ok(Map::new()),
            _ => Err(PatchError::Failed(format!(
                "unknown patch type: {directive} in map: {}",
                Value::Object(patch.clone())
            ))),
        };
    }
    apply_retain_keys(&mut original, &mut patch)?;
    merge_set_element_order(&mut original, &mut patch, node)?;

    for (key, patch_value) in patch {
        let (key, delete_list) = match key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) {
            Some(rest) => (rest.to_string(), true),
            None => (key, false),
        };
        if patch_value.is_null() {
            original.remove(&key);
            continue;
        }
        let Some(current) = original.remove(&key) else {
            if !delete_list {
                if let Some(v) = clean(patch_value) {
                    original.insert(key, v);
                }
            }
            continue;
        };
        let merged = match (current, patch_value) {
            (Value::Object(o), Value::Object(p)) => {
                Some(Value::Object(merge_map(o, p, node.field(&key))?))
            }
            (Value::Array(o), Value::Array(p)) => Some(Value::Array(merge_slice_handler(
                o,
                p,
                node.field(&key),
                delete_list,
            )?)),
            (current, patch_value) => {
                if delete_list {
                    // A deletion list for a field of another type changes nothing.
                    Some(current)
                } else {
                    clean(patch_value)
                }
            }
        };
        if let Some(v) = merged {
            original.insert(key, v);
        }
    }
    Ok(original)
}

/// `$retainKeys`: the original keeps only the listed fields; the patch may only set those.
fn apply_retain_keys(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
) -> Result<(), PatchError> {
    let Some(retain) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    let Value::Array(retain) = retain else {
        return Err(PatchError::Malformed(ERR_BAD_RETAIN_KEYS.into()));
    };
    let listed = |k: &str| retain.iter().any(|r| r.as_str() == Some(k));
    for (k, v) in patch.iter() {
        if v.is_null()
            || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            || k.starts_with(SET_ELEMENT_ORDER)
        {
            continue;
        }
        if !listed(k) {
            return Err(PatchError::Malformed(ERR_BAD_RETAIN_KEYS.into()));
        }
    }
    original.retain(|k, _| listed(k));
    Ok(())
}

/// Processes `$setElementOrder/<list>` together with the patch of `<list>` (`mergePatchIntoOriginal`).
fn merge_set_element_order(
    original: &mut Map<String, Value>,
    patch: &mut Map<String, Value>,
    node: &Node,
) -> Result<(), PatchError> {
    let keys: Vec<String> = patch
        .keys()
        .filter(|k| k.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for directive_key in keys {
        let order = patch.remove(&directive_key).unwrap_or(Value::Null);
        let Value::Array(order) = order else {
            return Err(PatchError::Malformed(ERR_BAD_SET_ORDER.into()));
        };
        let list_key = directive_key
            .strip_prefix(SET_ELEMENT_ORDER)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| PatchError::Malformed(ERR_BAD_SET_ORDER.into()))?
            .to_string();
        let field = node.field(&list_key);
        let merge_key = merge_key_of(field);
        let original_list = match original.get(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a.clone()),
            Some(_) => {
                return Err(PatchError::Failed(format!(
                    "expected a list for {list_key}"
                )))
            }
        };
        let patch_list = match patch.remove(&list_key) {
            None => None,
            Some(Value::Array(a)) => Some(a),
            Some(_) => {
                return Err(PatchError::Failed(format!(
                    "expected a list for {list_key}"
                )))
            }
        };
        validate_set_order(patch_list.as_deref().unwrap_or(&[]), &order, merge_key)?;
        let merged = match (&original_list, patch_list) {
            (Some(o), None) => o.clone(),
            (None, Some(p)) => p.into_iter().filter_map(clean).collect(),
            (Some(o), Some(p)) => merge_slice_handler(o.clone(), p, field, false)?,
            (None, None) => continue,
        };
        let is_map = merged.first().is_some_and(Value::is_object);
        let (in_patch, server_only) = partition(&merged, &order, merge_key, is_map)?;
        let both = normalize_element_order(
            in_patch,
            server_only,
            &order,
            original_list.as_deref().unwrap_or(&[]),
            merge_key,
            is_map,
        )?;
        original.insert(list_key, Value::Array(both));
    }
    Ok(())
}

fn merge_key_of(field: &Node) -> Option<&str> {
    match field.list().map(|l| &l.smp) {
        Some(SmpStrategy::Merge(Some(k))) => Some(k.as_str()),
        _ => None,
    }
}

/// The patch list's items must appear in the `$setElementOrder` list in the same order.
fn validate_set_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<(), PatchError> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let non_delete: Vec<&Value> = patch_list
        .iter()
        .filter(|v| merge_key.is_none() || !is_delete_directive(v))
        .collect();
    let (mut pi, mut oi) = (0, 0);
    while pi < non_delete.len() && oi < order.len() {
        if non_delete[pi].get(DIRECTIVE).is_some() {
            pi += 1;
            continue;
        }
        if same_item(non_delete[pi], &order[oi], merge_key)? {
            pi += 1;
        }
        oi += 1;
    }
    if pi < non_delete.len() && oi >= order.len() {
        return Err(PatchError::Failed(format!(
            "The order in patch list:\n{}\n doesn't match {SET_ELEMENT_ORDER} list:\n{}\n",
            Value::Array(patch_list.to_vec()),
            Value::Array(order.to_vec())
        )));
    }
    Ok(())
}

fn is_delete_directive(v: &Value) -> bool {
    v.get(DIRECTIVE).and_then(Value::as_str) == Some("delete")
}

/// Whether two items are the same list item: by merge key for maps, by value otherwise.
fn same_item(a: &Value, b: &Value, merge_key: Option<&str>) -> Result<bool, PatchError> {
    match merge_key {
        None => Ok(scalar_eq(a, b)),
        Some(k) => {
            let ka = a.get(k).ok_or_else(|| no_merge_key(a, k))?;
            let kb = b.get(k).ok_or_else(|| no_merge_key(b, k))?;
            Ok(scalar_eq(ka, kb))
        }
    }
}

/// Go's `==` on decoded JSON scalars (all numbers are float64 there).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => deep_eq(a, b),
    }
}

fn merge_slice_handler(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Node,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    let strategy = field.list().map(|l| &l.smp);
    match strategy {
        Some(SmpStrategy::Merge(key)) => {
            merge_slice(original, patch, key.as_deref(), field.item(), delete_list)
        }
        _ if delete_list => merge_slice(original, patch, None, field.item(), true),
        _ => Ok(patch.into_iter().filter_map(clean).collect()),
    }
}

/// Checks the items of both lists share one type and returns whether they are maps.
fn element_kind(lists: [&[Value]; 2]) -> Result<bool, PatchError> {
    let mut kind: Option<u8> = None;
    for v in lists.iter().flat_map(|l| l.iter()) {
        let k = match v {
            Value::Array(_) => return Err(PatchError::Failed(ERR_NO_LIST_OF_LISTS.into())),
            Value::Object(_) => 0,
            Value::String(_) => 1,
            Value::Number(_) => 2,
            Value::Bool(_) => 3,
            Value::Null => 4,
        };
        match kind {
            None => kind = Some(k),
            Some(prev) if prev != k => {
                return Err(PatchError::Failed(format!(
                    "mismatched element types in list: {}",
                    Value::Array(lists.concat())
                )))
            }
            Some(_) => {}
        }
    }
    Ok(kind == Some(0))
}

fn merge_slice(
    original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: Option<&str>,
    item: &Node,
    delete_list: bool,
) -> Result<Vec<Value>, PatchError> {
    if original.is_empty() && patch.is_empty() {
        return Ok(original);
    }
    let is_map = element_kind([&original, &patch])?;
    if !is_map {
        if delete_list {
            return Ok(original
                .into_iter()
                .filter(|v| !patch.iter().any(|d| scalar_eq(v, d)))
                .collect());
        }
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + patch.len());
        for v in original.iter().chain(patch.iter()) {
            if !merged.iter().any(|m| scalar_eq(m, v)) {
                merged.push(v.clone());
            }
        }
        let (in_patch, server_only) = partition(&merged, &patch, None, false)?;
        return normalize_element_order(in_patch, server_only, &patch, &original, None, false);
    }
    if delete_list {
        return Err(PatchError::Malformed(ERR_BAD_PRIMITIVE_LIST.into()));
    }
    let key = merge_key
        .ok_or_else(|| PatchError::Failed("cannot merge lists without merge key".into()))?;
    let (original, patch) = merge_special_items(original, patch, key)?;
    let mut merged = original.clone();
    for p in &patch {
        let value = p.get(key).ok_or_else(|| no_merge_key(p, key))?;
        let mut found = None;
        for (i, o) in merged.iter().enumerate() {
            let Value::Object(om) = o else {
                return Err(PatchError::Failed(format!(
                    "value for key {i} is not a map"
                )));
            };
            if om.get(key).is_some_and(|v| scalar_eq(v, value)) {
                found = Some(i);
                break;
            }
        }
        match (found, p) {
            (Some(i), Value::Object(pm)) => {
                let current = match std::mem::take(&mut merged[i]) {
                    Value::Object(m) => m,
                    _ => Map::new(),
                };
                merged[i] = Value::Object(merge_map(current, pm.clone(), item)?);
            }
            _ => {
                if let Some(v) = clean(p.clone()) {
                    merged.push(v);
                }
            }
        }
    }
    let (in_patch, server_only) = partition(&merged, &patch, Some(key), true)?;
    normalize_element_order(in_patch, server_only, &patch, &original, Some(key), true)
}

/// Handles `$patch: delete` and `$patch: replace` items of a patch list.
fn merge_special_items(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    key: &str,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut plain = Vec::with_capacity(patch.len());
    let mut replace = false;
    for p in patch {
        let Value::Object(pm) = &p else {
            return Err(PatchError::Failed(format!(
                "expected a map, but received a {}",
                type_name(&p)
            )));
        };
        match pm.get(DIRECTIVE) {
            None => plain.push(p),
            Some(d) => match d.as_str() {
                Some("delete") => {
                    let value = pm.get(key).ok_or_else(|| no_merge_key(&p, key))?;
                    original.retain(|o| !o.get(key).is_some_and(|v| scalar_eq(v, value)));
                }
                Some("replace") => replace = true,
                Some("merge") => {
                    return Err(PatchError::Failed(
                        "merging lists cannot yet be specified in the patch".into(),
                    ))
                }
                _ => {
                    return Err(PatchError::Failed(format!(
                        "unknown patch type: {d} in map: {p}"
                    )))
                }
            },
        }
    }
    if replace {
        return Ok((plain.into_iter().filter_map(clean).collect(), Vec::new()));
    }
    Ok((original, plain))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "map",
        Value::Array(_) => "slice",
        Value::String(_) => "string",
        Value::Number(_) => "float64",
        Value::Bool(_) => "bool",
        Value::Null => "nil",
    }
}

/// Splits `merged` into the items present in `by` and the others, keeping order.
fn partition(
    merged: &[Value],
    by: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<(Vec<Value>, Vec<Value>), PatchError> {
    let mut in_by = Vec::new();
    let mut others = Vec::new();
    for v in merged {
        let found = if is_map {
            let key = merge_key.unwrap_or_default();
            let value = v.get(key).ok_or_else(|| no_merge_key(v, key))?;
            by.iter()
                .any(|b| b.get(key).is_some_and(|bv| scalar_eq(bv, value)))
        } else {
            by.iter().any(|b| scalar_eq(b, v))
        };
        if found {
            in_by.push(v.clone());
        } else {
            others.push(v.clone());
        }
    }
    Ok((in_by, others))
}

/// Position of `item` in `list` by merge key (maps) or value, as strategicpatch's `index`.
fn index_of(list: &[Value], item: &Value, merge_key: Option<&str>, is_map: bool) -> Option<usize> {
    let key_of = |v: &Value| -> Value {
        if is_map {
            v.get(merge_key.unwrap_or_default())
                .cloned()
                .unwrap_or(Value::Null)
        } else {
            v.clone()
        }
    };
    let wanted = key_of(item);
    list.iter().position(|v| scalar_eq(&key_of(v), &wanted))
}

/// Sorts `to_sort` by the order of `order` (items with `$patch: delete` go last), using the
/// same insertion sort and comparison as Go's `sort.SliceStable` there.
fn normalize_slice_order(
    to_sort: Vec<Value>,
    order: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let (mut items, deletes): (Vec<Value>, Vec<Value>) = if is_map {
        let key = merge_key.unwrap_or_default();
        for v in to_sort.iter().chain(order.iter()) {
            if v.get(key).is_none() {
                return Err(no_merge_key(v, key));
            }
        }
        to_sort.into_iter().partition(|v| !is_delete_directive(v))
    } else {
        (to_sort, Vec::new())
    };
    let less = |a: &Value, b: &Value| match (
        index_of(order, a, merge_key, is_map),
        index_of(order, b, merge_key, is_map),
    ) {
        (Some(i), Some(j)) => i < j,
        _ => true,
    };
    for i in 1..items.len() {
        let mut j = i;
        while j > 0 && less(&items[j], &items[j - 1]) {
            items.swap(j, j - 1);
            j -= 1;
        }
    }
    items.extend(deletes);
    Ok(items)
}

/// Orders patch items by the patch, server-only items by the live list, and interleaves them
/// (`normalizeElementOrder` + `mergeSortedSlice`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    is_map: bool,
) -> Result<Vec<Value>, PatchError> {
    let right = normalize_slice_order(patch_items, patch_order, merge_key, is_map)?;
    let left = normalize_slice_order(server_only, server_order, merge_key, is_map)?;
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut i, mut j) = (0, 0);
    while i < left.len() || j < right.len() {
        if i >= left.len() {
            out.push(right[j].clone());
            j += 1;
        } else if j >= right.len() {
            out.push(left[i].clone());
            i += 1;
        } else {
            let li = index_of(server_order, &left[i], merge_key, is_map);
            let ri = index_of(server_order, &right[j], merge_key, is_map);
            match (li, ri) {
                (Some(a), Some(b)) if a < b => {
                    out.push(left[i].clone());
                    i += 1;
                }
                _ => {
                    out.push(right[j].clone());
                    j += 1;
                }
            }
        }
    }
    Ok(out)
}

/// A patch value taken as is: without nulls (`discardNullValuesFromPatch`), maps carrying a
/// `$patch` directive (`removeDirectives`), and other `$`-directives, which would otherwise be
/// stored as fields. None when the value itself is a directive.
fn clean(v: Value) -> Option<Value> {
    match v {
        Value::Object(m) => {
            if m.contains_key(DIRECTIVE) {
                return None;
            }
            Some(Value::Object(clean_map(m)))
        }
        Value::Array(items) => Some(Value::Array(items.into_iter().filter_map(clean).collect())),
        other => Some(other),
    }
}

fn clean_map(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter()
        .filter(|(k, v)| !v.is_null() && !is_directive_key(k))
        .filter_map(|(k, v)| clean(v).map(|v| (k, v)))
        .collect()
}

fn is_directive_key(k: &str) -> bool {
    k == DIRECTIVE
        || k == RETAIN_KEYS
        || k.starts_with(SET_ELEMENT_ORDER)
        || k.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"},
                         "finalizers": ["a/x", "b/y"]},
            "spec": {
                "replicas": 1,
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                "template": {"spec": {
                    "containers": [
                        {"name": "app", "image": "nginx:1",
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                        {"name": "sidecar", "image": "envoy:1"}
                    ],
                    "tolerations": [{"key": "k1", "operator": "Exists"}]
                }}
            }
        })
    }

    fn smp(patch: Value) -> Result<Value, PatchError> {
        strategic_merge_patch(&deployment(), &patch, "apps/v1", "Deployment")
    }

    fn containers(v: &Value) -> &Vec<Value> {
        v["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("containers")
    }

    #[test]
    fn merge_patch_null_deletes_and_objects_merge() {
        let target = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"x": [1, 2]}});
        let out = json_merge_patch(
            &target,
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}, "spec": {"x": [3]}}),
        )
        .expect("patch");
        assert_eq!(
            out,
            json!({"metadata": {"labels": {"b": "2", "c": "3"}}, "spec": {"x": [3]}})
        );
        assert!(matches!(
            json_merge_patch(&target, &json!([1])),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn json_patch_applies_operations_and_reports_test_failures() {
        let target = json!({"spec": {"replicas": 1}, "data": {"a": "x"}});
        let out = json_patch(
            &target,
            &json!([
                {"op": "test", "path": "/spec/replicas", "value": 1},
                {"op": "replace", "path": "/spec/replicas", "value": 3},
                {"op": "add", "path": "/data/b", "value": "y"},
                {"op": "remove", "path": "/data/a"}
            ]),
        )
        .expect("patch");
        assert_eq!(out, json!({"spec": {"replicas": 3}, "data": {"b": "y"}}));
        let err = json_patch(
            &target,
            &json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
        )
        .expect_err("test fails");
        assert_eq!(
            err,
            PatchError::JsonPatchFailed("testing value /spec/replicas failed: test failed".into())
        );
        // As in kube-apiserver: testing a missing path for null passes.
        let out = json_patch(
            &json!({"metadata": {}}),
            &json!([
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": ["f"]}
            ]),
        )
        .expect("null test on a missing path");
        assert_eq!(out, json!({"metadata": {"finalizers": ["f"]}}));
        assert!(matches!(
            json_patch(&target, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::JsonPatchFailed(_))
        ));
        assert!(matches!(
            json_patch(&target, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn smp_is_refused_for_custom_resources() {
        assert!(supports_strategic_merge("apps/v1", "Deployment"));
        assert!(supports_strategic_merge("v1", "ConfigMap"));
        assert!(!supports_strategic_merge("example.com/v1", "Widget"));
        let err = strategic_merge_patch(&json!({}), &json!({}), "example.com/v1", "Widget")
            .expect_err("unsupported");
        assert!(matches!(err, PatchError::Unsupported(_)));
    }

    #[test]
    fn smp_merges_containers_by_name_and_keeps_others() {
        let out = smp(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "app", "image": "nginx:2"}]}}}}))
        .expect("patch");
        let c = containers(&out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["image"], "nginx:2");
        assert_eq!(c[0]["env"].as_array().map(Vec::len), Some(2));
        assert_eq!(c[1]["name"], "sidecar");
    }

    #[test]
    fn smp_set_element_order_as_kubectl_apply_sends_it() {
        // kubectl apply (client side) after swapping the containers and changing an image.
        let out = smp(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
            "containers": [{"name": "app", "image": "nginx:3"}]
        }}}}))
        .expect("patch");
        let names: Vec<&Value> = containers(&out).iter().map(|c| &c["name"]).collect();
        assert_eq!(names, vec!["sidecar", "app"]);
        assert_eq!(containers(&out)[1]["image"], "nginx:3");
        // Nested lists: env order and a new env var.
        let out = smp(json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app",
                "$setElementOrder/env": [{"name": "C"}, {"name": "A"}, {"name": "B"}],
                "env": [{"name": "C", "value": "3"}]}]
        }}}}))
        .expect("patch");
        let env: Vec<&Value> = containers(&out)[0]["env"]
            .as_array()
            .expect("env")
            .iter()
            .map(|e| &e["name"])
            .collect();
        assert_eq!(env, vec!["C", "A", "B"]);
        assert!(containers(&out)[0].get("$setElementOrder/env").is_none());
    }

    #[test]
    fn smp_patch_delete_removes_list_items_and_maps() {
        let out = smp(json!({"spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "$patch": "delete"}]}}}}))
        .expect("patch");
        assert_eq!(containers(&out).len(), 1);
        assert_eq!(containers(&out)[0]["name"], "app");
        let out = smp(json!({"metadata": {"labels": {"$patch": "delete"}}})).expect("patch");
        assert_eq!(out["metadata"]["labels"], json!({}));
        let out = smp(json!({"metadata": {"labels": {"$patch": "replace", "only": "me"}}}))
            .expect("patch");
        assert_eq!(out["metadata"]["labels"], json!({"only": "me"}));
        let out = smp(json!({"spec": {"template": {"spec": {"containers": [
            {"$patch": "replace"}, {"name": "solo", "image": "busybox"}]}}}}))
        .expect("patch");
        assert_eq!(containers(&out).len(), 1);
        assert_eq!(containers(&out)[0]["name"], "solo");
    }

    #[test]
    fn smp_primitive_lists_merge_and_delete() {
        let out = smp(json!({"metadata": {"finalizers": ["c/z", "a/x"]}})).expect("patch");
        // Upstream's order: patch items in patch order; live-only items after them unless the
        // live order puts them first.
        assert_eq!(out["metadata"]["finalizers"], json!(["c/z", "a/x", "b/y"]));
        let out = smp(json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a/x"]}}))
            .expect("patch");
        assert_eq!(out["metadata"]["finalizers"], json!(["b/y"]));
    }

    #[test]
    fn smp_retain_keys_clears_other_fields() {
        let out = smp(json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}))
            .expect("patch");
        assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
        let err =
            smp(json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}))
                .expect_err("not retained");
        assert_eq!(
            err,
            PatchError::Malformed("invalid patch format of retainKeys".into())
        );
    }

    #[test]
    fn smp_replaces_lists_without_a_merge_key_and_merges_ports_by_container_port() {
        let out = smp(json!({"spec": {"template": {"spec": {
            "tolerations": [{"key": "k2", "operator": "Exists"}],
            "containers": [{"name": "app", "ports": [{"containerPort": 443}]}]
        }}}}))
        .expect("patch");
        assert_eq!(
            out["spec"]["template"]["spec"]["tolerations"],
            json!([{"key": "k2", "operator": "Exists"}])
        );
        // Without $setElementOrder, upstream puts a new patch item before the live-only ones.
        assert_eq!(
            containers(&out)[0]["ports"],
            json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
        );
    }

    #[test]
    fn smp_null_deletes_and_scalars_replace() {
        let out = smp(json!({"metadata": {"labels": {"tier": null}}, "spec": {"replicas": 5}}))
            .expect("patch");
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(out["spec"]["replicas"], 5);
    }

    #[test]
    fn smp_merge_key_must_be_present() {
        let err = smp(json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}}))
            .expect_err("no merge key");
        assert!(
            err.to_string()
                .contains("does not contain declared merge key: name"),
            "{err}"
        );
    }
}
