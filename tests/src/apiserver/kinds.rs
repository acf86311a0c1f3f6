//! Kind-specific behaviour that kube-apiserver's registry strategies apply on writes:
//! Secret `stringData` folding, Namespace and CRD status, name validation, immutability.

use base64::Engine as _;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult, Cause};
use super::resources::{self, ResourceDef};

pub(crate) fn invalid(def: &ResourceDef, name: &str, causes: Vec<Cause>) -> ApiError {
    ApiError::invalid(&def.qualified_kind(), &def.group, name, causes)
}

fn cause(reason: &str, field: &str, message: impl Into<String>) -> Cause {
    Cause {
        reason: reason.into(),
        message: message.into(),
        field: field.into(),
    }
}

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
pub(super) const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

pub(super) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validates `metadata.name` the way the resource's strategy does.
pub fn validate_name(def: &ResourceDef, name: &str) -> ApiResult<()> {
    match name_problem(def, name) {
        None => Ok(()),
        Some(why) => Err(invalid(
            def,
            name,
            vec![cause(
                "FieldValueInvalid",
                "metadata.name",
                format!("Invalid value: {name:?}: {why}"),
            )],
        )),
    }
}

/// Validates `metadata.generateName` as a name prefix, as ValidateObjectMeta does: a trailing
/// dash is allowed, anything else follows the name's rules. `generated` is the name it gave.
pub fn validate_generate_name(def: &ResourceDef, prefix: &str, generated: &str) -> ApiResult<()> {
    let masked = match prefix.strip_suffix('-') {
        Some(head) if !head.is_empty() => format!("{head}a"),
        _ => prefix.to_owned(),
    };
    match name_problem(def, &masked) {
        None => Ok(()),
        Some(why) => Err(invalid(
            def,
            generated,
            vec![cause(
                "FieldValueInvalid",
                "metadata.generateName",
                format!("Invalid value: {prefix:?}: {why}"),
            )],
        )),
    }
}

fn name_problem(def: &ResourceDef, name: &str) -> Option<&'static str> {
    if def.group == "rbac.authorization.k8s.io" {
        let bad = name == "." || name == ".." || name.contains('/') || name.contains('%');
        bad.then_some("may not contain '/' or '%' and may not be '.' or '..'")
    } else if def.is("", "namespaces") {
        (!is_dns_label(name)).then_some(DNS1123_LABEL_MSG)
    } else {
        (!is_dns_subdomain(name)).then_some(DNS1123_SUBDOMAIN_MSG)
    }
}

/// Applies the kind's write rules to `obj` (the object about to be stored). `old` is the
/// stored object for updates.
pub fn on_write(
    def: &ResourceDef,
    obj: &mut Value,
    old: Option<&Value>,
    now: &str,
) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if def.is("", "services") {
        // A Service keeps the address it was given when an update leaves it out.
        if let (Some(old_spec), Some(spec)) = (
            old.and_then(|o| o.get("spec")),
            obj.get_mut("spec").and_then(Value::as_object_mut),
        ) {
            for field in ["clusterIP", "clusterIPs"] {
                if spec.get(field).is_none_or(Value::is_null) {
                    if let Some(v) = old_spec.get(field) {
                        spec.insert(field.to_owned(), v.clone());
                    }
                }
            }
        }
    }
    super::defaults::apply(def, obj);
    if old.is_none() {
        if def.is("", "pods") {
            pod_status_on_create(obj);
        } else if def.is("batch", "jobs") {
            job_selector_on_create(obj, &name);
        } else if def.is("", "persistentvolumeclaims") {
            if let Some(m) = obj.as_object_mut() {
                m.insert("status".into(), json!({"phase": "Pending"}));
            }
        }
    }
    if def.is("", "secrets") {
        secret(def, &name, obj, old)?;
    } else if def.is("", "configmaps") {
        immutable_data(def, &name, obj, old, &["data", "binaryData"])?;
    } else if def.is("", "namespaces") {
        namespace(&name, obj);
    } else if def.is("apiextensions.k8s.io", "customresourcedefinitions") {
        crd(def, &name, obj, old, now)?;
    }
    let causes = super::validation::validate(def, obj);
    if !causes.is_empty() {
        return Err(invalid(def, &name, causes));
    }
    Ok(())
}

/// A new Pod is `Pending`, with the QoS class its containers' resources give (kube-apiserver's
/// pod strategy sets both on create).
fn pod_status_on_create(obj: &mut Value) {
    let containers: Vec<Value> = obj
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let resource = |c: &Value, kind: &str, name: &str| {
        c.pointer(&format!("/resources/{kind}/{name}"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let any = containers.iter().any(|c| {
        ["requests", "limits"].iter().any(|k| {
            c.pointer(&format!("/resources/{k}"))
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
        })
    });
    let guaranteed = !containers.is_empty()
        && containers.iter().all(|c| {
            ["cpu", "memory"].iter().all(|r| {
                let limit = resource(c, "limits", r);
                limit.is_some() && resource(c, "requests", r).is_none_or(|q| Some(q) == limit)
            })
        });
    let qos = if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    };
    if let Some(m) = obj.as_object_mut() {
        m.insert(
            "status".into(),
            json!({"phase": "Pending", "qosClass": qos}),
        );
    }
}

/// A new Job without `manualSelector` gets a selector on its uid and the labels that match it
/// on its pod template, as kube-apiserver's job strategy generates them.
fn job_selector_on_create(obj: &mut Value, name: &str) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("selector").is_some_and(|s| !s.is_null()) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    let Some(template) = template.as_object_mut() else {
        return;
    };
    let meta = template.entry("metadata").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", uid.as_str()),
            ("batch.kubernetes.io/job-name", name),
            ("controller-uid", uid.as_str()),
            ("job-name", name),
        ] {
            labels.insert(k.into(), json!(v));
        }
    }
}

fn immutable_data(
    def: &ResourceDef,
    name: &str,
    obj: &Value,
    old: Option<&Value>,
    fields: &[&str],
) -> ApiResult<()> {
    let Some(old) = old else { return Ok(()) };
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return Ok(());
    }
    let mut causes = Vec::new();
    if obj.get("immutable").and_then(Value::as_bool) != Some(true) {
        causes.push(cause(
            "FieldValueForbidden",
            "immutable",
            "Forbidden: field is immutable when `immutable` is set",
        ));
    }
    for f in fields {
        if obj.get(*f) != old.get(*f) {
            causes.push(cause(
                "FieldValueForbidden",
                f,
                "Forbidden: field is immutable when `immutable` is set",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(def, name, causes))
    }
}

/// Decodes base64 the way Go's `encoding/json` decodes `[]byte`: standard alphabet with
/// padding, ignoring CR and LF.
fn go_base64_error(s: &str) -> Option<String> {
    let cleaned: String = s.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    match base64::engine::general_purpose::STANDARD.decode(cleaned.as_bytes()) {
        Ok(_) => None,
        Err(base64::DecodeError::InvalidByte(i, _)) => {
            Some(format!("illegal base64 data at input byte {i}"))
        }
        Err(base64::DecodeError::InvalidLastSymbol(i, _)) => {
            Some(format!("illegal base64 data at input byte {i}"))
        }
        Err(_) => Some(format!(
            "illegal base64 data at input byte {}",
            cleaned.len() - cleaned.len() % 4
        )),
    }
}

fn secret(def: &ResourceDef, name: &str, obj: &mut Value, old: Option<&Value>) -> ApiResult<()> {
    let Some(map) = obj.as_object_mut() else {
        return Ok(());
    };
    // Bad base64 in `data` fails JSON decoding into the typed Secret, so kube-apiserver
    // answers 400 BadRequest ("cannot be handled as a Secret"), not 422. The cause names
    // the field to help humans.
    if let Some(data) = map.get("data").and_then(Value::as_object) {
        for (k, v) in data {
            let Some(s) = v.as_str() else {
                if v.is_null() {
                    continue;
                }
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: json: cannot unmarshal {} into Go struct field Secret.data of type []uint8",
                    json_type(v)
                )));
            };
            if let Some(e) = go_base64_error(s) {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: {e}"
                ))
                .with_details(json!({"causes": [{"reason": "FieldValueInvalid", "message": e, "field": format!("data[{k}]")}]})));
            }
        }
    }
    if let Some(Value::Object(string_data)) = map.remove("stringData") {
        let data = map.entry("data").or_insert_with(|| json!({}));
        if !data.is_object() {
            *data = json!({});
        }
        if let Some(data) = data.as_object_mut() {
            for (k, v) in string_data {
                let s = match v {
                    Value::String(s) => s,
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                data.insert(
                    k,
                    json!(base64::engine::general_purpose::STANDARD.encode(s.as_bytes())),
                );
            }
        }
    }
    if map
        .get("type")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        map.insert("type".into(), json!("Opaque"));
    }
    if let Some(old) = old {
        if old.get("type") != obj.get("type") {
            let t = obj.get("type").and_then(Value::as_str).unwrap_or_default();
            return Err(invalid(
                def,
                name,
                vec![cause(
                    "FieldValueInvalid",
                    "type",
                    format!("Invalid value: {t:?}: field is immutable"),
                )],
            ));
        }
    }
    immutable_data(def, name, obj, old, &["data"])?;
    Ok(())
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        _ => "string",
    }
}

fn namespace(name: &str, obj: &mut Value) {
    let terminating = obj.pointer("/metadata/deletionTimestamp").is_some();
    if let Some(map) = obj.as_object_mut() {
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        if let Some(spec) = spec.as_object_mut() {
            spec.entry("finalizers")
                .or_insert_with(|| json!(["kubernetes"]));
        }
        map.insert(
            "status".into(),
            json!({"phase": if terminating { "Terminating" } else { "Active" }}),
        );
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(labels) = labels.as_object_mut() {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
    }
}

fn crd(
    def: &ResourceDef,
    name: &str,
    obj: &mut Value,
    old: Option<&Value>,
    now: &str,
) -> ApiResult<()> {
    let mut causes = Vec::new();
    let group = obj
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let plural = obj
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = obj
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if group.is_empty() {
        causes.push(cause("FieldValueRequired", "spec.group", "Required value"));
    }
    if plural.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.names.plural",
            "Required value",
        ));
    }
    if kind.is_empty() {
        causes.push(cause(
            "FieldValueRequired",
            "spec.names.kind",
            "Required value",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(cause(
            "FieldValueInvalid",
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    match obj.pointer("/spec/scope").and_then(Value::as_str) {
        Some("Namespaced") | Some("Cluster") => {}
        Some(other) => causes.push(cause(
            "FieldValueNotSupported",
            "spec.scope",
            format!("Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""),
        )),
        None => causes.push(cause("FieldValueRequired", "spec.scope", "Required value")),
    }
    let versions = obj.pointer("/spec/versions").and_then(Value::as_array);
    match versions {
        Some(vs) if !vs.is_empty() => {
            let storage = vs
                .iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .count();
            if storage != 1 {
                causes.push(cause(
                    "FieldValueInvalid",
                    "spec.versions",
                    format!("Invalid value: {}: must have exactly one version marked as storage version", json!(vs)),
                ));
            }
        }
        _ => causes.push(cause(
            "FieldValueInvalid",
            "spec.versions",
            "Invalid value: null: must have exactly one version marked as storage version",
        )),
    }
    if let Some(old) = old {
        let old_scope = old.pointer("/spec/scope");
        if old_scope != obj.pointer("/spec/scope") {
            causes.push(cause(
                "FieldValueInvalid",
                "spec.scope",
                "Invalid value: field is immutable",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(invalid(def, name, causes));
    }
    let status = resources::crd_status(obj, now, old.and_then(|o| o.get("status")));
    if let Some(map) = obj.as_object_mut() {
        map.insert("status".into(), status);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generate_name_prefix_may_end_in_a_dash_but_not_a_dot() {
        let events = crate::apiserver::resources::builtins()
            .into_iter()
            .find(|d| d.is("events.k8s.io", "events"))
            .expect("events");
        assert!(validate_generate_name(&events, "apps-", "apps-x2b4c").is_ok());
        let err = validate_generate_name(&events, "apps.", "apps.x2b4c").expect_err("refused");
        let text = format!("{err:?}");
        assert!(text.contains("metadata.generateName"), "{text}");
        assert!(text.contains("apps.x2b4c"), "{text}");
    }
}
