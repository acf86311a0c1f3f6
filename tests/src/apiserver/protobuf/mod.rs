//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`), which kubectl's typed
//! commands send: `create configmap|secret|namespace|serviceaccount|token|deployment|job|
//! cronjob|service|quota|role|rolebinding|clusterrole|clusterrolebinding`, `auth can-i` and
//! `auth whoami`. The body is the `k8s\0` magic, then a `runtime.Unknown` whose `raw` holds the
//! object; k8s-pb decodes it, and the object is turned into the JSON the rest of the server
//! reads. Other kinds get 415, and so does a body that sets a field no converter reads.

mod rbac;
mod workloads;

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use k8s_pb::api::authentication::v1 as authn;
use k8s_pb::api::authorization::v1 as authz;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use prost::Message;
use serde_json::{json, Map, Value};

use super::error::ApiError;

/// The four bytes before every protobuf-encoded Kubernetes object.
const MAGIC: &[u8] = b"k8s\0";

fn bad(what: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the protobuf request body could not be decoded: {what}"
    ))
}

/// Decodes a protobuf body into the object's JSON form.
pub fn decode(body: &[u8], content_type: &str) -> Result<Value, ApiError> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or_else(|| bad("it does not start with the k8s protobuf magic"))?;
    let unknown = Unknown::decode(envelope).map_err(|_| bad("not a runtime.Unknown"))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let raw = raw.as_slice();
    let mut object = match (api_version.as_str(), kind.as_str()) {
        ("v1", "ConfigMap") => config_map(core::ConfigMap::decode(raw).map_err(|_| bad(&kind))?),
        ("v1", "Secret") => secret(core::Secret::decode(raw).map_err(|_| bad(&kind))?),
        ("v1", "Namespace") => namespace(core::Namespace::decode(raw).map_err(|_| bad(&kind))?),
        ("v1", "ServiceAccount") => {
            service_account(core::ServiceAccount::decode(raw).map_err(|_| bad(&kind))?)
        }
        ("authentication.k8s.io/v1", "TokenRequest") => {
            token_request(authn::TokenRequest::decode(raw).map_err(|_| bad(&kind))?)
        }
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            let review = authn::SelfSubjectReview::decode(raw).map_err(|_| bad(&kind))?;
            json!({"metadata": meta(review.metadata)})
        }
        ("authorization.k8s.io/v1", "SelfSubjectAccessReview") => {
            let review = authz::SelfSubjectAccessReview::decode(raw).map_err(|_| bad(&kind))?;
            let spec = review.spec.unwrap_or_default();
            json!({
                "metadata": meta(review.metadata),
                "spec": attributes(spec.resource_attributes, spec.non_resource_attributes),
            })
        }
        ("authorization.k8s.io/v1", "SubjectAccessReview" | "LocalSubjectAccessReview") => {
            let review = authz::SubjectAccessReview::decode(raw).map_err(|_| bad(&kind))?;
            let spec = review.spec.unwrap_or_default();
            let mut out = attributes(spec.resource_attributes, spec.non_resource_attributes);
            put_str(&mut out, "user", spec.user);
            put_str(&mut out, "uid", spec.uid);
            if !spec.groups.is_empty() {
                out["groups"] = json!(spec.groups);
            }
            json!({"metadata": meta(review.metadata), "spec": out})
        }
        ("apps/v1", "Deployment") => workloads::deployment(
            k8s_pb::api::apps::v1::Deployment::decode(raw).map_err(|_| bad(&kind))?,
        )?,
        ("batch/v1", "Job") => {
            workloads::job(k8s_pb::api::batch::v1::Job::decode(raw).map_err(|_| bad(&kind))?)?
        }
        ("batch/v1", "CronJob") => workloads::cron_job(
            k8s_pb::api::batch::v1::CronJob::decode(raw).map_err(|_| bad(&kind))?,
        )?,
        ("v1", "Service") => {
            workloads::service(core::Service::decode(raw).map_err(|_| bad(&kind))?)?
        }
        ("v1", "ResourceQuota") => {
            workloads::resource_quota(core::ResourceQuota::decode(raw).map_err(|_| bad(&kind))?)?
        }
        ("rbac.authorization.k8s.io/v1", "Role") => {
            rbac::role(k8s_pb::api::rbac::v1::Role::decode(raw).map_err(|_| bad(&kind))?)?
        }
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => rbac::cluster_role(
            k8s_pb::api::rbac::v1::ClusterRole::decode(raw).map_err(|_| bad(&kind))?,
        )?,
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => rbac::role_binding(
            k8s_pb::api::rbac::v1::RoleBinding::decode(raw).map_err(|_| bad(&kind))?,
        )?,
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => rbac::cluster_role_binding(
            k8s_pb::api::rbac::v1::ClusterRoleBinding::decode(raw).map_err(|_| bad(&kind))?,
        )?,
        _ => {
            return Err(ApiError::unsupported_media_type(
                content_type,
                &["application/json", "application/yaml"],
            ))
        }
    };
    object["apiVersion"] = json!(api_version);
    object["kind"] = json!(kind);
    Ok(object)
}

/// Refuses a message that still holds fields after a converter took out the ones it reads:
/// they would otherwise be lost without a word. Go encodes its non-pointer fields even when
/// they hold their zero value (`stdin: false`, `resources: {}`), which JSON would leave out;
/// those do not count.
fn rest<M: Message>(message: &M, what: &str) -> Result<(), ApiError> {
    if only_zero_values(&message.encode_to_vec(), 0) {
        Ok(())
    } else {
        Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "this test server does not read every field of a protobuf {what}; send the object as JSON or YAML"
            ),
        ))
    }
}

/// Whether encoded protobuf fields hold nothing but zero values: varints and fixed-width
/// numbers of 0, and empty strings, bytes or messages (a nested message of zero values
/// included).
fn only_zero_values(mut bytes: &[u8], depth: usize) -> bool {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    if depth > 32 {
        return false;
    }
    while !bytes.is_empty() {
        let Some(key) = varint(&mut bytes) else {
            return false;
        };
        let zero = match key & 7 {
            0 => varint(&mut bytes) == Some(0),
            1 | 5 => {
                let width = if key & 7 == 1 { 8 } else { 4 };
                if bytes.len() < width {
                    return false;
                }
                let (value, rest) = bytes.split_at(width);
                bytes = rest;
                value.iter().all(|b| *b == 0)
            }
            2 => {
                let Some(len) = varint(&mut bytes).and_then(|l| usize::try_from(l).ok()) else {
                    return false;
                };
                if bytes.len() < len {
                    return false;
                }
                let (payload, rest) = bytes.split_at(len);
                bytes = rest;
                payload.is_empty() || only_zero_values(payload, depth + 1)
            }
            _ => false,
        };
        if !zero {
            return false;
        }
    }
    true
}

fn put_str(out: &mut Value, key: &str, value: Option<String>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        out[key] = json!(v);
    }
}

fn string_map(map: BTreeMap<String, String>) -> Value {
    Value::Object(
        map.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

fn meta(meta: Option<ObjectMeta>) -> Value {
    let meta = meta.unwrap_or_default();
    let mut out = json!({});
    put_str(&mut out, "name", meta.name);
    put_str(&mut out, "generateName", meta.generate_name);
    put_str(&mut out, "namespace", meta.namespace);
    put_str(&mut out, "resourceVersion", meta.resource_version);
    if !meta.labels.is_empty() {
        out["labels"] = string_map(meta.labels);
    }
    if !meta.annotations.is_empty() {
        out["annotations"] = string_map(meta.annotations);
    }
    if !meta.finalizers.is_empty() {
        out["finalizers"] = json!(meta.finalizers);
    }
    if !meta.owner_references.is_empty() {
        let owners: Vec<Value> = meta
            .owner_references
            .into_iter()
            .map(|o| {
                let mut r = json!({});
                put_str(&mut r, "apiVersion", o.api_version);
                put_str(&mut r, "kind", o.kind);
                put_str(&mut r, "name", o.name);
                put_str(&mut r, "uid", o.uid);
                if let Some(c) = o.controller {
                    r["controller"] = json!(c);
                }
                if let Some(b) = o.block_owner_deletion {
                    r["blockOwnerDeletion"] = json!(b);
                }
                r
            })
            .collect();
        out["ownerReferences"] = json!(owners);
    }
    out
}

fn config_map(cm: core::ConfigMap) -> Value {
    let mut out = json!({"metadata": meta(cm.metadata)});
    if !cm.data.is_empty() {
        out["data"] = string_map(cm.data);
    }
    if !cm.binary_data.is_empty() {
        let binary: Map<String, Value> = cm
            .binary_data
            .into_iter()
            .map(|(k, v)| (k, Value::String(B64.encode(v))))
            .collect();
        out["binaryData"] = Value::Object(binary);
    }
    if let Some(immutable) = cm.immutable {
        out["immutable"] = json!(immutable);
    }
    out
}

fn secret(secret: core::Secret) -> Value {
    let mut out = json!({"metadata": meta(secret.metadata)});
    if !secret.data.is_empty() {
        let data: Map<String, Value> = secret
            .data
            .into_iter()
            .map(|(k, v)| (k, Value::String(B64.encode(v))))
            .collect();
        out["data"] = Value::Object(data);
    }
    if !secret.string_data.is_empty() {
        out["stringData"] = string_map(secret.string_data);
    }
    put_str(&mut out, "type", secret.r#type);
    if let Some(immutable) = secret.immutable {
        out["immutable"] = json!(immutable);
    }
    out
}

fn namespace(ns: core::Namespace) -> Value {
    let mut out = json!({"metadata": meta(ns.metadata)});
    if let Some(spec) = ns.spec.filter(|s| !s.finalizers.is_empty()) {
        out["spec"] = json!({"finalizers": spec.finalizers});
    }
    out
}

fn service_account(sa: core::ServiceAccount) -> Value {
    let mut out = json!({"metadata": meta(sa.metadata)});
    if !sa.image_pull_secrets.is_empty() {
        let names: Vec<Value> = sa
            .image_pull_secrets
            .into_iter()
            .map(|r| json!({"name": r.name.unwrap_or_default()}))
            .collect();
        out["imagePullSecrets"] = json!(names);
    }
    if let Some(automount) = sa.automount_service_account_token {
        out["automountServiceAccountToken"] = json!(automount);
    }
    out
}

fn token_request(request: authn::TokenRequest) -> Value {
    let spec = request.spec.unwrap_or_default();
    let mut out = json!({"audiences": spec.audiences});
    if let Some(seconds) = spec.expiration_seconds {
        out["expirationSeconds"] = json!(seconds);
    }
    if let Some(bound) = spec.bound_object_ref {
        let mut r = json!({});
        put_str(&mut r, "apiVersion", bound.api_version);
        put_str(&mut r, "kind", bound.kind);
        put_str(&mut r, "name", bound.name);
        put_str(&mut r, "uid", bound.u_id);
        out["boundObjectRef"] = r;
    }
    json!({"metadata": meta(request.metadata), "spec": out})
}

fn attributes(
    resource: Option<authz::ResourceAttributes>,
    non_resource: Option<authz::NonResourceAttributes>,
) -> Value {
    let mut spec = json!({});
    if let Some(r) = resource {
        let mut out = json!({});
        put_str(&mut out, "namespace", r.namespace);
        put_str(&mut out, "verb", r.verb);
        put_str(&mut out, "group", r.group);
        put_str(&mut out, "version", r.version);
        put_str(&mut out, "resource", r.resource);
        put_str(&mut out, "subresource", r.subresource);
        put_str(&mut out, "name", r.name);
        spec["resourceAttributes"] = out;
    }
    if let Some(n) = non_resource {
        let mut out = json!({});
        put_str(&mut out, "path", n.path);
        put_str(&mut out, "verb", n.verb);
        spec["nonResourceAttributes"] = out;
    }
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_pb::apimachinery::pkg::runtime::TypeMeta;

    fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        let mut out = MAGIC.to_vec();
        out.extend(unknown.encode_to_vec());
        out
    }

    #[test]
    fn a_secret_decodes_to_its_json_form() {
        let secret = core::Secret {
            metadata: Some(ObjectMeta {
                name: Some("s".into()),
                namespace: Some("n".into()),
                ..Default::default()
            }),
            data: [("k".to_owned(), b"v".to_vec())].into(),
            r#type: Some("Opaque".into()),
            ..Default::default()
        };
        let body = envelope("v1", "Secret", secret.encode_to_vec());
        let json = decode(&body, "application/vnd.kubernetes.protobuf").expect("decodes");
        assert_eq!(
            json,
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "n"},
                   "data": {"k": "dg=="}, "type": "Opaque"})
        );
    }

    #[test]
    fn other_kinds_and_garbage_are_refused() {
        let body = envelope("apps/v1", "StatefulSet", Vec::new());
        let err = decode(&body, "application/vnd.kubernetes.protobuf").expect_err("415");
        assert_eq!(err.code, 415);
        let err = decode(b"not protobuf", "application/vnd.kubernetes.protobuf").expect_err("400");
        assert_eq!(err.code, 400);
    }

    #[test]
    fn a_field_no_converter_reads_is_refused_not_dropped() {
        use k8s_pb::api::apps::v1 as apps;
        let deployment = |host_network: Option<bool>| apps::Deployment {
            metadata: Some(ObjectMeta {
                name: Some("web".into()),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(1),
                paused: Some(false),
                template: Some(core::PodTemplateSpec {
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("app".into()),
                            image: Some("nginx".into()),
                            // What Go encodes for its non-pointer fields.
                            stdin: Some(false),
                            tty: Some(false),
                            resources: Some(Default::default()),
                            ..Default::default()
                        }],
                        host_network,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ct = "application/vnd.kubernetes.protobuf";
        let zero = envelope(
            "apps/v1",
            "Deployment",
            deployment(Some(false)).encode_to_vec(),
        );
        let json = decode(&zero, ct).expect("zero values are not fields");
        assert_eq!(
            json["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx"
        );
        assert!(json["spec"].get("paused").is_none(), "{json}");
        let set = envelope(
            "apps/v1",
            "Deployment",
            deployment(Some(true)).encode_to_vec(),
        );
        let err = decode(&set, ct).expect_err("hostNetwork is not read");
        assert_eq!(err.code, 415);
        assert!(err.message.contains("PodSpec"), "{}", err.message);
    }

    #[test]
    fn zero_values_are_recognised_on_the_wire() {
        assert!(only_zero_values(&[], 0));
        assert!(only_zero_values(&[0x08, 0x00], 0)); // field 1 varint 0
        assert!(only_zero_values(&[0x12, 0x00], 0)); // field 2 empty
        assert!(only_zero_values(&[0x12, 0x02, 0x08, 0x00], 0)); // a message of zeros
        assert!(!only_zero_values(&[0x08, 0x01], 0));
        assert!(!only_zero_values(&[0x12, 0x01, b'a'], 0));
        assert!(!only_zero_values(&[0x12, 0x05], 0)); // truncated
    }
}
