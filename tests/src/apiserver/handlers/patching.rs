//! `patch`: JSON, merge, strategic-merge and apply patches, and their errors.

use super::*;

// The catch-all arms keep this compiling when the patch engineer adds variants.
#[allow(unreachable_patterns)]
pub(crate) fn patch_error(e: PatchError) -> ApiError {
    match e {
        PatchError::Malformed(m) => ApiError::bad_request(m),
        PatchError::Failed(m) => ApiError::new(422, "Invalid", m),
        // What kube-apiserver's NewGenericServerResponse(422, …) answers: the reason stays in
        // the server's log.
        PatchError::JsonPatchFailed(_) => ApiError::new(
            422,
            "Invalid",
            "the server rejected our request due to an error in our request",
        )
        .with_details(json!({})),
        other => ApiError::internal(other),
    }
}

/// The HTTP error for a field-manager error: 409 with kube-apiserver's conflict message and
/// `FieldManagerConflict` causes, 400 for a bad request, 422 for an invalid configuration.
// The catch-all arm keeps this compiling when the field-manager engineer adds variants.
#[allow(unreachable_patterns)]
pub(crate) fn fm_error(e: FieldManagerError, t: &Target, name: &str) -> ApiError {
    match e {
        FieldManagerError::Conflict(_) => apply_conflict(e.to_string(), &e.conflict_pairs()),
        FieldManagerError::BadRequest(m) => ApiError::bad_request(m),
        FieldManagerError::Invalid(m) => ApiError::invalid(
            &t.def.qualified_kind(),
            &t.def.group,
            name,
            vec![crate::apiserver::error::Cause {
                reason: "FieldValueInvalid".into(),
                message: m,
                field: String::new(),
            }],
        ),
        other => ApiError::internal(other),
    }
}

pub(crate) const PATCH_TYPES_BUILTIN: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
    "application/strategic-merge-patch+json",
];

pub(crate) fn patch(shared: &Shared, req: &Req, t: &Target) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let ct = req
        .header("content-type")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let accepted: &[&str] = if t.def.custom {
        &PATCH_TYPES_BUILTIN[..3]
    } else {
        PATCH_TYPES_BUILTIN
    };
    if !accepted.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media_type(&ct, accepted));
    }
    let apply = ct == "application/apply-patch+yaml";
    let force = req.q("force");
    if apply {
        if req.q("fieldManager").is_none_or(str::is_empty) {
            return Err(patch_options_invalid(
                "FieldValueRequired",
                "fieldManager",
                "Required value: is required for apply patch",
            ));
        }
    } else if force.is_some() {
        return Err(patch_options_invalid(
            "FieldValueForbidden",
            "force",
            "Forbidden: may not be specified for non-apply patch",
        ));
    }
    let manager = manager_for(req);
    if t.sub.as_deref() == Some("scale") {
        let change = if apply {
            scale::Change::Apply {
                applied: parse_document(&req.body)?,
                force: force == Some("true"),
            }
        } else {
            scale::Change::Patch {
                content_type: ct,
                patch: patch_document(req)?,
            }
        };
        return scale::write(shared, req, t, change);
    }
    if apply {
        return apply_patch(shared, req, t, &name, &manager, force == Some("true"));
    }
    let patch_doc = patch_document(req)?;
    let mut store = shared.lock();
    let old = store
        .get(&t.key(&name))
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    let base = apply_patch_document(
        &ct,
        &output(t, &old, false),
        &patch_doc,
        &t.api_version(),
        &t.def.kind,
        &name,
    )?;
    let (code, out) = commit_update(
        &mut store,
        t,
        &old,
        base,
        Mode::Patch,
        &manager,
        req.dry_run,
    )?;
    drop(store);
    Ok(json_response(code, &render_one(t, &out, req)))
}

/// The body of a non-apply patch.
pub(crate) fn patch_document(req: &Req) -> ApiResult<Value> {
    serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// Applies a JSON, merge or strategic merge patch (by content type) to `base`, an object of
/// `api_version`/`kind` named `name`, and checks that the result is still that object.
pub(crate) fn apply_patch_document(
    content_type: &str,
    base: &Value,
    patch_doc: &Value,
    api_version: &str,
    kind: &str,
    name: &str,
) -> ApiResult<Value> {
    let patched = match content_type {
        "application/json-patch+json" => patch::json_patch(base, patch_doc),
        "application/merge-patch+json" => patch::json_merge_patch(base, patch_doc),
        _ => patch::strategic_merge_patch(base, patch_doc, api_version, kind),
    }
    .map_err(patch_error)?;
    if !patched.is_object() {
        return Err(ApiError::bad_request(
            "the patched object is not a JSON object",
        ));
    }
    match meta_str(&patched, "name") {
        Some(n) if n == name => Ok(patched),
        other => Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            other.unwrap_or_default()
        ))),
    }
}

pub(crate) fn patch_options_invalid(reason: &str, field: &str, message: &str) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid".into(),
        message: format!("PatchOptions.meta.k8s.io \"\" is invalid: {field}: {message}"),
        details: Some(json!({
            "group": "meta.k8s.io",
            "kind": "PatchOptions",
            "causes": [{"reason": reason, "message": message, "field": field}],
        })),
    }
}

pub(crate) fn apply_patch(
    shared: &Shared,
    req: &Req,
    t: &Target,
    name: &str,
    manager: &str,
    force: bool,
) -> ApiResult<Response<Body>> {
    let applied = parse_document(&req.body)?;
    check_applied(t, &applied, &req.body, name, &t.api_version(), &t.def.kind)?;
    let now = now();
    let mut store = shared.lock();
    let live = store.get(&t.key(name));
    if let (Some(rv), Some(live)) = (meta_str(&applied, "resourceVersion"), &live) {
        if !rv.is_empty() && Some(rv) != meta_str(live, "resourceVersion") {
            return Err(ApiError::stale(&t.def, name));
        }
    }
    if t.sub.is_none() {
        if let Some(undeclared) = object_schema(&store, t)
            .and_then(|schema| crate::apiserver::crdschema::first_undeclared(&schema, &applied))
        {
            // kube-apiserver's typed-patch conversion error: a 500 without a reason.
            let namespace = t.namespace.as_deref().unwrap_or_default();
            return Err(ApiError::new(
                500,
                "",
                format!(
                    "failed to create typed patch object ({namespace}/{name}; {}/{}, Kind={}): {undeclared}",
                    t.def.group,
                    t.version,
                    t.def.kind
                ),
            ));
        }
    }
    let live_out = live.as_ref().map(|l| output(t, l, false));
    let schema = crd_schema(&store, t);
    let merged = fieldmanager::server_side_apply_with(
        live_out.as_ref(),
        &applied,
        manager,
        force,
        &now,
        &fm_options(t, schema.as_ref()),
    )
    .map_err(|e| fm_error(e, t, name))?;
    let (code, out) = match live {
        None => {
            if t.sub.is_some() {
                return Err(ApiError::not_found(&t.def, name));
            }
            drop(store);
            let mut obj = merged;
            create_inner(shared, t, &mut obj, manager, req.dry_run, true)?;
            (201, obj)
        }
        Some(old) => {
            let r = commit_update(
                &mut store,
                t,
                &old,
                merged,
                Mode::Apply,
                manager,
                req.dry_run,
            )?;
            drop(store);
            r
        }
    };
    Ok(json_response(code, &render_one(t, &out, req)))
}

/// The request checks kube-apiserver makes on an applied configuration before server-side
/// apply: type (`want_av`/`want_kind`), name and namespace against the URL. (The field manager
/// refuses `metadata.managedFields` itself.)
pub(crate) fn check_applied(
    t: &Target,
    applied: &Value,
    body: &[u8],
    name: &str,
    want_av: &str,
    want_kind: &str,
) -> ApiResult<()> {
    let av = applied
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = applied
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if av.is_empty() || kind.is_empty() {
        return Err(ApiError::bad_request(format!(
            "error decoding YAML: Object 'Kind' is missing in '{}'",
            String::from_utf8_lossy(body)
                .chars()
                .take(200)
                .collect::<String>()
        )));
    }
    if av != want_av {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({want_av})"
        )));
    }
    if kind != want_kind {
        return Err(ApiError::bad_request(format!(
            "the kind in the data ({kind}) does not match the expected kind ({want_kind})"
        )));
    }
    match meta_str(applied, "name") {
        Some(n) if n == name => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                other.unwrap_or_default()
            )))
        }
    }
    if t.def.namespaced {
        if let Some(ns) = meta_str(applied, "namespace") {
            if !ns.is_empty() && Some(ns) != t.namespace.as_deref() {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    }
    Ok(())
}
