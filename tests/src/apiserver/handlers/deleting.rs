//! `delete` and `deletecollection`: options, preconditions, finalizers and cascades.

use super::*;
use crate::apiserver::gc::{self, Propagation};

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteOptions {
    #[serde(default)]
    pub(crate) dry_run: Vec<String>,
    #[serde(default)]
    pub(crate) preconditions: Option<Preconditions>,
    #[serde(default)]
    pub(crate) propagation_policy: Option<String>,
    #[serde(default)]
    pub(crate) orphan_dependents: Option<bool>,
}

impl DeleteOptions {
    /// How the dependents of `obj` (of resource `def`) are treated.
    fn propagation(&self, req: &Req, def: &ResourceDef, obj: &Value) -> Propagation {
        // The query parameters kubectl and client-go may send instead of a body.
        let policy = self
            .propagation_policy
            .clone()
            .or_else(|| req.q("propagationPolicy").map(str::to_string));
        let orphan = self
            .orphan_dependents
            .or_else(|| req.q("orphanDependents").map(|v| v == "true"));
        Propagation::resolve(orphan, policy.as_deref(), obj, &def.group, &def.plural)
    }
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

pub(crate) fn delete_options(req: &Req) -> ApiResult<(DeleteOptions, bool)> {
    if let Some(policy) = req.q("propagationPolicy") {
        if !matches!(policy, "Orphan" | "Background" | "Foreground") {
            return Err(unsupported_policy(policy));
        }
    }
    let opts: DeleteOptions = if req.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&req.body)
            .or_else(|_| serde_yaml::from_slice(&req.body))
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    if let Some(policy) = opts.propagation_policy.as_deref() {
        if !matches!(policy, "Orphan" | "Background" | "Foreground") {
            return Err(unsupported_policy(policy));
        }
    }
    let dry = req.dry_run || opts.dry_run.iter().any(|d| d == "All");
    Ok((opts, dry))
}

fn unsupported_policy(policy: &str) -> ApiError {
    ApiError::invalid(
        "DeleteOptions",
        "",
        "",
        vec![super::super::error::Cause {
            reason: "FieldValueNotSupported".into(),
            message: format!(
                "Unsupported value: {policy:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
            ),
            field: "propagationPolicy".into(),
        }],
    )
}

/// Removes an object and finishes whatever was waiting for it: its dependents (garbage
/// collection), an owner deleting in the foreground, a terminating namespace that is now
/// empty, or a terminating CRD with no objects left.
pub fn remove_and_cascade(store: &mut Store, key: &ObjKey) -> Option<Arc<Value>> {
    let last = store.remove(key)?;
    gc::removed(store, key, &last);
    if !key.namespace.is_empty() {
        let ns_key = ObjKey::namespace(&key.namespace);
        if store
            .get(&ns_key)
            .is_some_and(|n| n.pointer("/metadata/deletionTimestamp").is_some())
            && store.keys_in_namespace(&key.namespace).is_empty()
        {
            store.remove(&ns_key);
        }
    }
    if let Some(def) = store.find(&key.group, &key.plural).cloned() {
        if def.custom && crd_terminating(store, &def) && store.list(&def, None, None).is_empty() {
            let crd_key = ObjKey::crd_of(&def);
            if let Some(crd) = store.get(&crd_key) {
                if finalizers(&crd).is_empty() {
                    store.remove(&crd_key);
                }
            }
        }
    }
    Some(last)
}

/// Deletes one stored object (used by DELETE, deletecollection and cascades), its dependents
/// treated by `policy`. Returns (deleted now, resulting object).
pub(crate) fn delete_one(
    store: &mut Store,
    def: &ResourceDef,
    key: &ObjKey,
    dry_run: bool,
    policy: Propagation,
) -> Option<(bool, Value)> {
    let old = store.get(key)?;
    let now = now();
    let is_ns = def.is("", "namespaces");
    let is_crd = def.is("apiextensions.k8s.io", "customresourcedefinitions");
    let gc_finalizer = policy.finalizer();
    // As kube-apiserver does, the GC finalizer is set whatever the dependents: the collector
    // removes it once it has orphaned or deleted them.
    let mut pending = !finalizers(&old).is_empty() || gc_finalizer.is_some();
    if is_ns {
        pending = pending || !store.keys_in_namespace(&key.name).is_empty();
    }
    let crd_def = if is_crd {
        resources_for_crd(store, &old)
    } else {
        None
    };
    if let Some(cd) = &crd_def {
        pending = pending || !store.list(cd, None, None).is_empty();
    }
    if !pending {
        if dry_run {
            return Some((true, (*old).clone()));
        }
        let last = remove_and_cascade(store, key)?;
        return Some((true, (*last).clone()));
    }
    let mut new = (*old).clone();
    let finalizers_before = finalizers(&old);
    let mut wanted: Vec<String> = finalizers_before
        .iter()
        .filter(|f| *f != gc::ORPHAN_FINALIZER && *f != gc::FOREGROUND_FINALIZER)
        .cloned()
        .collect();
    if let Some(f) = gc_finalizer {
        wanted.push(f.to_string());
    }
    let finalizers_changed = wanted != finalizers_before;
    if finalizers_changed {
        meta_mut(&mut new).insert("finalizers".into(), json!(wanted));
    }
    let first_deletion = old.pointer("/metadata/deletionTimestamp").is_none();
    if first_deletion || finalizers_changed {
        if first_deletion {
            let meta = meta_mut(&mut new);
            meta.insert("deletionTimestamp".into(), json!(now));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            if def.has_generation {
                let g = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
                meta.insert("generation".into(), json!(g + 1));
            }
            if is_ns {
                if let Some(m) = new.as_object_mut() {
                    m.insert("status".into(), json!({"phase": "Terminating"}));
                }
            }
        }
        if dry_run {
            return Some((false, new));
        }
        let stored = store.put(key.clone(), new, Some(Arc::clone(&old)));
        new = (*stored).clone();
    } else if dry_run {
        return Some((false, new));
    }
    // Stand-in for the namespace and CRD-cleanup controllers: delete the contents now.
    if is_ns {
        for k in store.keys_in_namespace(&key.name) {
            if let Some(d) = store.find(&k.group, &k.plural).cloned() {
                delete_one(store, &d, &k, false, Propagation::Background);
            }
        }
    }
    if let Some(cd) = crd_def {
        for (k, _) in store.list(&cd, None, None) {
            delete_one(store, &cd, &k, false, Propagation::Background);
        }
    }
    if gc_finalizer.is_some() {
        // Stand-in for the garbage collector; kube-apiserver has answered with the object
        // carrying the finalizer by the time the collector acts.
        gc::finish_owner(store, key);
        return Some((false, new));
    }
    match store.get(key) {
        Some(o) => Some((false, (*o).clone())),
        None => Some((true, new)),
    }
}

pub(crate) fn resources_for_crd(store: &Store, crd: &Value) -> Option<ResourceDef> {
    let group = crd.pointer("/spec/group").and_then(Value::as_str)?;
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str)?;
    store.find(group, plural).cloned()
}

pub(crate) fn delete(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let (opts, dry) = delete_options(req)?;
    let key = t.key(&name);
    let mut store = shared.lock();
    let old = store
        .get(&key)
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    if let Some(p) = &opts.preconditions {
        if let Some(uid) = p.uid.as_deref().filter(|u| !u.is_empty()) {
            let actual = meta_str(&old, "uid").unwrap_or_default();
            if uid != actual {
                return Err(ApiError::conflict(
                    &t.def,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {actual}"),
                ));
            }
        }
        if let Some(rv) = p.resource_version.as_deref().filter(|r| !r.is_empty()) {
            let actual = meta_str(&old, "resourceVersion").unwrap_or_default();
            if rv != actual {
                return Err(ApiError::conflict(
                    &t.def,
                    &name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {actual}"),
                ));
            }
        }
    }
    let policy = opts.propagation(req, &t.def, &old);
    let (deleted, obj) = delete_one(&mut store, &t.def, &key, dry, policy)
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    drop(store);
    if deleted && !t.def.return_deleted_object {
        let mut details = serde_json::Map::new();
        details.insert("name".into(), json!(name));
        if !t.def.group.is_empty() {
            details.insert("group".into(), json!(t.def.group));
        }
        details.insert("kind".into(), json!(t.def.plural));
        details.insert(
            "uid".into(),
            json!(meta_str(&obj, "uid").unwrap_or_default()),
        );
        return Ok(json_response(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": Value::Object(details)}),
        ));
    }
    Ok(json_response(200, &render_one(t, &obj, req)))
}

pub(crate) fn delete_collection(
    shared: &Shared,
    req: &Req,
    t: &Target,
) -> ApiResult<Response<Body>> {
    let (ls, fs) = selectors(req, t)?;
    let (opts, dry) = delete_options(req)?;
    let mut store = shared.lock();
    let keys: Vec<ObjKey> = store
        .list(&t.def, t.namespace.as_deref(), None)
        .into_iter()
        .filter(|(_, o)| ls.matches(o) && fs.matches(o))
        .map(|(k, _)| k)
        .collect();
    let mut items = Vec::new();
    for k in keys {
        let Some(current) = store.get(&k) else {
            continue;
        };
        let policy = opts.propagation(req, &t.def, &current);
        if let Some((_, obj)) = delete_one(&mut store, &t.def, &k, dry, policy) {
            items.push(output(t, &obj, true));
        }
    }
    let rv = store.rv();
    drop(store);
    Ok(json_response(
        200,
        &json!({"kind": t.def.list_kind(), "apiVersion": t.api_version(), "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}
