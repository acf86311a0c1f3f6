//! Protobuf bodies of `kubectl create role|clusterrole|rolebinding|clusterrolebinding`.

use std::mem::take;

use k8s_pb::api::rbac::v1 as rbac;
use serde_json::{json, Value};

use super::{meta, put_str, rest};
use crate::apiserver::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn rules(rules: Vec<rbac::PolicyRule>) -> Value {
    let rules: Vec<Value> = rules
        .into_iter()
        .map(|r| {
            let mut out = json!({"verbs": r.verbs});
            for (key, values) in [
                ("apiGroups", r.api_groups),
                ("resources", r.resources),
                ("resourceNames", r.resource_names),
                ("nonResourceURLs", r.non_resource_ur_ls),
            ] {
                if !values.is_empty() {
                    out[key] = json!(values);
                }
            }
            out
        })
        .collect();
    json!(rules)
}

pub(super) fn role(mut role: rbac::Role) -> Result<Value> {
    let out =
        json!({"metadata": meta(role.metadata.take()), "rules": rules(take(&mut role.rules))});
    rest(&role, "Role")?;
    Ok(out)
}

pub(super) fn cluster_role(mut role: rbac::ClusterRole) -> Result<Value> {
    let out =
        json!({"metadata": meta(role.metadata.take()), "rules": rules(take(&mut role.rules))});
    rest(&role, "ClusterRole")?;
    Ok(out)
}

fn binding_parts(subjects: Vec<rbac::Subject>, role_ref: Option<rbac::RoleRef>) -> (Value, Value) {
    let subjects: Vec<Value> = subjects
        .into_iter()
        .map(|s| {
            let mut out = json!({});
            put_str(&mut out, "kind", s.kind);
            put_str(&mut out, "apiGroup", s.api_group);
            put_str(&mut out, "name", s.name);
            put_str(&mut out, "namespace", s.namespace);
            out
        })
        .collect();
    let role_ref = role_ref.unwrap_or_default();
    let mut r = json!({});
    put_str(&mut r, "apiGroup", role_ref.api_group);
    put_str(&mut r, "kind", role_ref.kind);
    put_str(&mut r, "name", role_ref.name);
    (json!(subjects), r)
}

pub(super) fn role_binding(binding: rbac::RoleBinding) -> Result<Value> {
    let (subjects, role_ref) = binding_parts(binding.subjects, binding.role_ref);
    let mut out = json!({"metadata": meta(binding.metadata), "roleRef": role_ref});
    if subjects.as_array().is_some_and(|s| !s.is_empty()) {
        out["subjects"] = subjects;
    }
    Ok(out)
}

pub(super) fn cluster_role_binding(binding: rbac::ClusterRoleBinding) -> Result<Value> {
    let (subjects, role_ref) = binding_parts(binding.subjects, binding.role_ref);
    let mut out = json!({"metadata": meta(binding.metadata), "roleRef": role_ref});
    if subjects.as_array().is_some_and(|s| !s.is_empty()) {
        out["subjects"] = subjects;
    }
    Ok(out)
}
