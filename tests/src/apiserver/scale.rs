//! The `scale` subresource of Deployments and StatefulSets: an `autoscaling/v1` `Scale` view of
//! the parent's `spec.replicas`, as kube-apiserver's `ScaleREST` serves it.
//!
//! A write builds the old Scale from the stored parent (with the parent's managedFields turned
//! into Scale managedFields, `ScaleHandler.ToSubresource`), runs the update, patch or apply on
//! the Scale with the field manager in subresource `scale`, moves `spec.replicas` back into the
//! parent, merges the Scale's managedFields into the parent's (`ScaleHandler.ToParent`, so the
//! writer gets an entry with `subresource: scale`), and stores the parent as an ordinary update
//! (generation bump, resourceVersion, watch event). The answer is the new Scale.

use axum::body::Body;
use hyper::Response;
use serde_json::{json, Map, Value};

use super::error::{ApiError, ApiResult, Cause};
use super::fieldmanager::{self, FieldManagerOptions, SCALE_API_VERSION};
use super::handlers::{
    self, apply_patch_document, check_applied, check_type_is, commit_update, fm_error, manager_for,
    meta_str, now, Mode, Req, Target,
};
use super::selectors::label_selector_string;
use super::server::Shared;

/// The kind of the objects the subresource serves.
const SCALE_KIND: &str = "Scale";

/// What a write through `/scale` does to the Scale.
#[derive(Debug)]
pub enum Change {
    /// PUT: the body is the new Scale.
    Replace(Value),
    /// PATCH with a JSON, merge or strategic merge patch.
    Patch {
        /// The patch content type.
        content_type: String,
        /// The patch document.
        patch: Value,
    },
    /// PATCH with an applied configuration (server-side apply).
    Apply {
        /// The applied Scale.
        applied: Value,
        /// `force=true`.
        force: bool,
    },
}

/// The replica count of a parent: `spec.replicas`, or 1 (the kinds' default, which this server
/// does not fill in) when it is missing.
fn replicas_of(parent: &Value) -> i64 {
    parent
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The Scale of a stored parent (`scaleFromDeployment`): name, namespace, uid,
/// resourceVersion and creationTimestamp of the parent, `spec.replicas` (omitted when 0, as
/// the v1 type omits it), `status.replicas` and the selector in string form.
pub fn scale_of(parent: &Value) -> Value {
    let mut meta = Map::new();
    for f in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = parent.get("metadata").and_then(|m| m.get(f)) {
            meta.insert(f.into(), v.clone());
        }
    }
    let replicas = replicas_of(parent);
    let spec = if replicas == 0 {
        json!({})
    } else {
        json!({"replicas": replicas})
    };
    let mut status = json!({
        "replicas": parent.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0),
    });
    let selector = label_selector_string(parent.pointer("/spec/selector"));
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({
        "kind": SCALE_KIND,
        "apiVersion": SCALE_API_VERSION,
        "metadata": Value::Object(meta),
        "spec": spec,
        "status": status,
    })
}

/// The parent apiVersions whose managedFields the scale handler understands (upstream's
/// `replicasPathInDeployment` and friends); entries in other versions are dropped.
fn parent_versions(t: &Target) -> Vec<String> {
    let mut out: Vec<String> = t
        .def
        .versions
        .iter()
        .map(|v| t.def.api_version(v))
        .collect();
    if t.def.group == "apps" {
        for v in ["apps/v1beta1", "apps/v1beta2"] {
            if !out.iter().any(|o| o == v) {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// `spec.replicas` of a written Scale, validated as `ValidateScale` and the decoder do.
fn new_replicas(scale: &Value, name: &str) -> ApiResult<i64> {
    let Some(v) = scale.pointer("/spec/replicas").filter(|v| !v.is_null()) else {
        return Ok(0);
    };
    let Some(n) = v.as_i64().filter(|n| i32::try_from(*n).is_ok()) else {
        return Err(ApiError::bad_request(format!(
            "Scale in version \"v1\" cannot be handled as a Scale: json: cannot unmarshal {v} into Go struct field ScaleSpec.spec.replicas of type int32"
        )));
    };
    if n < 0 {
        return Err(ApiError::invalid(
            "Scale.autoscaling",
            "autoscaling",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message: format!("Invalid value: {n}: must be greater than or equal to 0"),
                field: "spec.replicas".into(),
            }],
        ));
    }
    Ok(n)
}

/// PUT or PATCH of `…/NAME/scale`.
pub fn write(shared: &Shared, req: &Req, t: &Target, change: Change) -> ApiResult<Response<Body>> {
    let name = t.name.clone().unwrap_or_default();
    let manager = manager_for(req);
    let now = now();
    let versions = parent_versions(t);
    let versions: Vec<&str> = versions.iter().map(String::as_str).collect();
    let opts = FieldManagerOptions {
        subresource: Some("scale"),
        status_subresource: Some(false),
        schema: None,
    };
    if let Change::Apply { applied, .. } = &change {
        check_applied(t, applied, &req.body, &name, SCALE_API_VERSION, SCALE_KIND)?;
    }

    let mut store = shared.lock();
    let old = store
        .get(&t.key(&name))
        .ok_or_else(|| ApiError::not_found(&t.def, &name))?;
    let mut old_scale = scale_of(&old);
    old_scale["metadata"]["managedFields"] = fieldmanager::scale_managed_fields(&old, &versions);

    let new_scale = match change {
        Change::Replace(mut body) => {
            check_type_is(&mut body, SCALE_API_VERSION, SCALE_KIND)?;
            fieldmanager::record_update_with(Some(&old_scale), body, &manager, &now, &opts)
        }
        Change::Patch {
            content_type,
            patch,
        } => {
            let patched = apply_patch_document(
                &content_type,
                &old_scale,
                &patch,
                SCALE_API_VERSION,
                SCALE_KIND,
                &name,
            )?;
            fieldmanager::record_update_with(Some(&old_scale), patched, &manager, &now, &opts)
        }
        Change::Apply { applied, force } => fieldmanager::server_side_apply_with(
            Some(&old_scale),
            &applied,
            &manager,
            force,
            &now,
            &opts,
        )
        .map_err(|e| fm_error(e, t, &name))?,
    };

    let replicas = new_replicas(&new_scale, &name)?;
    let parent_uid = meta_str(&old, "uid").unwrap_or_default();
    if let Some(uid) = meta_str(&new_scale, "uid").filter(|u| !u.is_empty()) {
        if uid != parent_uid {
            return Err(ApiError::conflict(
                &t.def,
                &name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {parent_uid}"
                ),
            ));
        }
    }
    if let Some(rv) = meta_str(&new_scale, "resourceVersion").filter(|r| !r.is_empty()) {
        if Some(rv) != meta_str(&old, "resourceVersion") {
            return Err(ApiError::stale(&t.def, &name));
        }
    }

    let mut parent = (*old).clone();
    // A parent without spec.replicas already has the default of 1.
    if replicas != replicas_of(&old) || old.pointer("/spec/replicas").is_some() {
        if let Some(spec) = parent
            .as_object_mut()
            .map(|m| m.entry("spec").or_insert_with(|| json!({})))
            .and_then(Value::as_object_mut)
        {
            spec.insert("replicas".into(), json!(replicas));
        }
    }
    fieldmanager::scale_managed_fields_to_parent(
        &mut parent,
        &new_scale,
        &versions,
        &t.api_version(),
    );
    let parent_target = Target {
        sub: None,
        ..t.clone()
    };
    let (code, out) = commit_update(
        &mut store,
        &parent_target,
        &old,
        parent,
        Mode::Scale,
        &manager,
        req.dry_run,
    )?;
    drop(store);
    Ok(handlers::json_response(code, &scale_of(&out)))
}
