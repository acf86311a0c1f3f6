//! `delete` and `deletecollection`: options, preconditions, finalizers and cascades.

use super::*;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeleteOptions {
    #[serde(default)]
    pub(crate) dry_run: Vec<String>,
    #[serde(default)]
    pub(crate) preconditions: Option<Preconditions>,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Preconditions {
    pub(crate) uid: Option<String>,
    pub(crate) resource_version: Option<String>,
}

pub(crate) fn delete_options(req: &Req) -> ApiResult<(DeleteOptions, bool)> {
    let opts: DeleteOptions = if req.body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptions::default()
    } else {
        serde_json::from_slice(&req.body)
            .or_else(|_| serde_yaml::from_slice(&req.body))
            .map_err(|e| ApiError::bad_request(format!("error decoding DeleteOptions: {e}")))?
    };
    let dry = req.dry_run || opts.dry_run.iter().any(|d| d == "All");
    Ok((opts, dry))
}

/// Removes an object and finishes whatever was waiting for it: a terminating namespace that
/// is now empty, or a terminating CRD with no objects left.
pub fn remove_and_cascade(store: &mut Store, key: &ObjKey) -> Option<Arc<Value>> {
    let last = store.remove(key)?;
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

/// Deletes one stored object (used by DELETE, deletecollection and cascades). Returns
/// (deleted now, resulting object).
pub(crate) fn delete_one(
    store: &mut Store,
    def: &ResourceDef,
    key: &ObjKey,
    dry_run: bool,
) -> Option<(bool, Value)> {
    let old = store.get(key)?;
    let now = now();
    let is_ns = def.is("", "namespaces");
    let is_crd = def.is("apiextensions.k8s.io", "customresourcedefinitions");
    let mut pending = !finalizers(&old).is_empty();
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
    if old.pointer("/metadata/deletionTimestamp").is_none() {
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
                delete_one(store, &d, &k, false);
            }
        }
    }
    if let Some(cd) = crd_def {
        for (k, _) in store.list(&cd, None, None) {
            delete_one(store, &cd, &k, false);
        }
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
    let (deleted, obj) = delete_one(&mut store, &t.def, &key, dry)
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
    let (_, dry) = delete_options(req)?;
    let mut store = shared.lock();
    let keys: Vec<ObjKey> = store
        .list(&t.def, t.namespace.as_deref(), None)
        .into_iter()
        .filter(|(_, o)| ls.matches(o) && fs.matches(o))
        .map(|(k, _)| k)
        .collect();
    let mut items = Vec::new();
    for k in keys {
        if let Some((_, obj)) = delete_one(&mut store, &t.def, &k, dry) {
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
