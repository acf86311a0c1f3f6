//! The validation kube-apiserver writes in Go for built-in kinds (its `pkg/apis/*/validation`
//! packages), for the rules an everyday manifest meets: workload selectors and their pod
//! templates, containers and their ports, restart policies, Services and their ports, CronJob
//! schedules. Errors carry kube-apiserver's field paths and wording, in its order; the object
//! has its defaults already, as in kube-apiserver, where defaulting runs before validation.

use std::collections::{BTreeMap, HashSet};

use serde_json::Value;

use super::error::Cause;
use super::kinds::{is_dns_label, DNS1123_LABEL_MSG};
use super::resources::ResourceDef;
use super::selectors::{label_selector_string, LabelSelector};

const PORT_RANGE_MSG: &str = "must be between 1 and 65535, inclusive";
const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
const CONFIG_KEY_MSG: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";
/// The most data a ConfigMap or Secret holds (`core.MaxSecretSize`).
const MAX_DATA_BYTES: usize = 1024 * 1024;
/// The most bytes all annotations of an object hold (`TotalAnnotationSizeLimitB`).
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;

/// The causes the kind's Go validation reports for `obj`, in its order; empty when valid.
pub fn validate(def: &ResourceDef, obj: &Value) -> Vec<Cause> {
    let mut errs = Errors::default();
    annotations(&mut errs, obj);
    let spec = obj.get("spec").unwrap_or(&Value::Null);
    match (def.group.as_str(), def.plural.as_str()) {
        ("apps", "deployments") => replicated(&mut errs, spec, "deployment", true),
        ("apps", "replicasets") => replicated(&mut errs, spec, "replicaset", true),
        ("apps", "statefulsets") => replicated(&mut errs, spec, "statefulset", true),
        ("apps", "daemonsets") => replicated(&mut errs, spec, "daemonset", false),
        ("batch", "jobs") => job_spec(&mut errs, spec, "spec"),
        ("batch", "cronjobs") => {
            if str_at(spec, "schedule").is_empty() {
                errs.required("spec.schedule");
            }
            job_spec(
                &mut errs,
                spec.pointer("/jobTemplate/spec").unwrap_or(&Value::Null),
                "spec.jobTemplate.spec",
            );
        }
        ("", "pods") => pod_spec(&mut errs, spec, "spec"),
        ("", "podtemplates") => pod_spec(
            &mut errs,
            obj.pointer("/template/spec").unwrap_or(&Value::Null),
            "template.spec",
        ),
        ("", "services") => service(&mut errs, spec),
        ("", "configmaps") => config_map(&mut errs, obj),
        ("", "secrets") => secret_data(&mut errs, obj),
        _ => {}
    }
    errs.0
}

#[derive(Default)]
struct Errors(Vec<Cause>);

impl Errors {
    fn push(&mut self, reason: &str, field: &str, message: String) {
        self.0.push(Cause {
            reason: reason.into(),
            field: field.into(),
            message,
        });
    }

    fn required(&mut self, field: &str) {
        self.push("FieldValueRequired", field, "Required value".into());
    }

    fn required_because(&mut self, field: &str, detail: &str) {
        self.push(
            "FieldValueRequired",
            field,
            format!("Required value: {detail}"),
        );
    }

    fn invalid(&mut self, field: &str, value: &str, why: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {why}"),
        );
    }

    fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
        self.push(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                go_quote(value),
                list.join(", ")
            ),
        );
    }

    fn duplicate(&mut self, field: &str, value: &str) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", go_quote(value)),
        );
    }

    fn too_long(&mut self, field: &str, max: usize) {
        self.push(
            "FieldValueTooLong",
            field,
            format!("Too long: may not be more than {max} bytes"),
        );
    }

    fn forbidden(&mut self, field: &str, why: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {why}"));
    }
}

/// A string as Go's `%q` prints it (JSON escaping agrees for what manifests hold).
fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// A `map[string]string` as Go's `%#v` prints it, keys sorted.
fn go_string_map(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return "map[string]string(nil)".into();
    };
    let sorted: BTreeMap<&String, &Value> = m.iter().collect();
    let inner: Vec<String> = sorted
        .into_iter()
        .map(|(k, v)| {
            format!(
                "{}:{}",
                go_quote(k),
                go_quote(v.as_str().unwrap_or_default())
            )
        })
        .collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn nonnegative(errs: &mut Errors, spec: &Value, key: &str, path: &str) {
    if let Some(n) = spec.get(key).and_then(Value::as_i64) {
        if n < 0 {
            errs.invalid(
                &format!("{path}.{key}"),
                &n.to_string(),
                "must be greater than or equal to 0",
            );
        }
    }
}

fn is_config_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 253
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && key != "."
        && key != ".."
        && !key.starts_with("..")
}

/// All annotations together hold at most 256 KiB, keys included.
fn annotations(errs: &mut Errors, obj: &Value) {
    let Some(map) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    else {
        return;
    };
    let total: usize = map
        .iter()
        .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
        .sum();
    if total > MAX_ANNOTATION_BYTES {
        errs.too_long("metadata.annotations", MAX_ANNOTATION_BYTES);
    }
}

/// Keys are config keys, none in both `data` and `binaryData`, and all values together hold
/// at most 1 MiB (`binaryData` counted decoded).
fn config_map(errs: &mut Errors, obj: &Value) {
    let data = obj.get("data").and_then(Value::as_object);
    let binary = obj.get("binaryData").and_then(Value::as_object);
    let mut total = 0usize;
    for (key, value) in data.into_iter().flatten() {
        if !is_config_key(key) {
            errs.invalid(&format!("data[{key}]"), &go_quote(key), CONFIG_KEY_MSG);
        }
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.invalid(
                &format!("data[{key}]"),
                &go_quote(key),
                "duplicate of key present in binaryData",
            );
        }
        total += value.as_str().map_or(0, str::len);
    }
    for (key, value) in binary.into_iter().flatten() {
        if !is_config_key(key) {
            errs.invalid(
                &format!("binaryData[{key}]"),
                &go_quote(key),
                CONFIG_KEY_MSG,
            );
        }
        total += decoded_len(value);
    }
    if total > MAX_DATA_BYTES {
        errs.too_long("[]", MAX_DATA_BYTES);
    }
}

/// A Secret's values together hold at most 1 MiB, decoded.
fn secret_data(errs: &mut Errors, obj: &Value) {
    let total: usize = obj
        .get("data")
        .and_then(Value::as_object)
        .map(|m| m.values().map(decoded_len).sum())
        .unwrap_or(0);
    if total > MAX_DATA_BYTES {
        errs.too_long("data", MAX_DATA_BYTES);
    }
}

/// The decoded length of a base64 value (what the Go type holds as bytes).
fn decoded_len(value: &Value) -> usize {
    let text = value.as_str().unwrap_or_default().trim_end_matches('=');
    text.len() * 3 / 4
}

/// Deployments, ReplicaSets, StatefulSets and DaemonSets: a selector is required and must
/// select the template's labels, and the template's pods restart `Always`.
fn replicated(errs: &mut Errors, spec: &Value, kind_word: &str, has_replicas: bool) {
    if has_replicas {
        nonnegative(errs, spec, "replicas", "spec");
    }
    let selector = spec.get("selector").filter(|s| !s.is_null());
    match selector {
        None => errs.required("spec.selector"),
        Some(s) => {
            let labels = s
                .get("matchLabels")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            let exprs = s
                .get("matchExpressions")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            if labels + exprs == 0 {
                errs.invalid(
                    "spec.selector",
                    &format!("{s}"),
                    &format!("empty selector is invalid for {kind_word}"),
                );
            }
        }
    }
    let template = spec.get("template").unwrap_or(&Value::Null);
    let template_labels = template.pointer("/metadata/labels");
    // No selector selects nothing, so the template's labels never match one.
    let matches = selector.is_some_and(|s| {
        let text = label_selector_string(Some(s));
        let labelled = serde_json::json!({"metadata": {"labels": template_labels}});
        // A selector that does not parse was reported above (or is left to the schema).
        LabelSelector::parse(&text).is_ok_and(|sel| sel.matches(&labelled))
    });
    if !matches {
        errs.invalid(
            "spec.template.metadata.labels",
            &go_string_map(template_labels),
            "`selector` does not match template `labels`",
        );
    }
    pod_spec(
        errs,
        template.get("spec").unwrap_or(&Value::Null),
        "spec.template.spec",
    );
    let restart = str_at(
        template.get("spec").unwrap_or(&Value::Null),
        "restartPolicy",
    );
    if restart != "Always" {
        errs.not_supported("spec.template.spec.restartPolicy", restart, &["Always"]);
    }
}

/// A Job's pods restart `OnFailure` or `Never`.
fn job_spec(errs: &mut Errors, spec: &Value, path: &str) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
    ] {
        nonnegative(errs, spec, key, path);
    }
    let pod = spec.pointer("/template/spec").unwrap_or(&Value::Null);
    let pod_path = format!("{path}.template.spec");
    pod_spec(errs, pod, &pod_path);
    // Defaulting sets `Always`, so an unset policy is reported as missing.
    let restart = str_at(pod, "restartPolicy");
    if restart == "Always" || restart.is_empty() {
        errs.required_because(
            &format!("{pod_path}.restartPolicy"),
            "valid values: \"OnFailure\", \"Never\"",
        );
    } else if restart != "OnFailure" && restart != "Never" {
        errs.not_supported(
            &format!("{pod_path}.restartPolicy"),
            restart,
            &["OnFailure", "Never"],
        );
    }
}

fn pod_spec(errs: &mut Errors, spec: &Value, path: &str) {
    let containers = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let containers_path = format!("{path}.containers");
    if containers.is_empty() {
        errs.required(&containers_path);
    }
    let mut names = HashSet::new();
    for (i, container) in containers.iter().enumerate() {
        let at = format!("{containers_path}[{i}]");
        let name = str_at(container, "name");
        if name.is_empty() {
            errs.required(&format!("{at}.name"));
        } else if !is_dns_label(name) {
            errs.invalid(&format!("{at}.name"), &go_quote(name), DNS1123_LABEL_MSG);
        }
        if str_at(container, "image").is_empty() {
            errs.required(&format!("{at}.image"));
        }
        container_ports(errs, container, &at);
        if !names.insert(name.to_string()) {
            errs.duplicate(&format!("{at}.name"), name);
        }
        if container.get("restartPolicy").is_some_and(|v| !v.is_null()) {
            errs.forbidden(
                &format!("{at}.restartPolicy"),
                "may not be set for non-init containers",
            );
        }
    }
    let restart = str_at(spec, "restartPolicy");
    if !restart.is_empty() && !["Always", "OnFailure", "Never"].contains(&restart) {
        errs.not_supported(
            &format!("{path}.restartPolicy"),
            restart,
            &["Always", "OnFailure", "Never"],
        );
    }
}

fn container_ports(errs: &mut Errors, container: &Value, at: &str) {
    let Some(ports) = container.get("ports").and_then(Value::as_array) else {
        return;
    };
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = format!("{at}.ports[{i}]");
        let name = str_at(port, "name");
        if !name.is_empty() && !names.insert(name.to_string()) {
            errs.duplicate(&format!("{p}.name"), name);
        }
        match port.get("containerPort").and_then(Value::as_i64) {
            None | Some(0) => errs.required(&format!("{p}.containerPort")),
            Some(n) if !(1..=65535).contains(&n) => errs.invalid(
                &format!("{p}.containerPort"),
                &n.to_string(),
                PORT_RANGE_MSG,
            ),
            Some(_) => {}
        }
        if let Some(n) = port.get("hostPort").and_then(Value::as_i64) {
            if n != 0 && !(1..=65535).contains(&n) {
                errs.invalid(&format!("{p}.hostPort"), &n.to_string(), PORT_RANGE_MSG);
            }
        }
        protocol(errs, port, &p);
    }
}

fn protocol(errs: &mut Errors, port: &Value, at: &str) {
    let protocol = str_at(port, "protocol");
    if protocol.is_empty() {
        errs.required(&format!("{at}.protocol"));
    } else if !PROTOCOLS.contains(&protocol) {
        errs.not_supported(&format!("{at}.protocol"), protocol, PROTOCOLS);
    }
}

fn service(errs: &mut Errors, spec: &Value) {
    let ports = spec
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let headless = str_at(spec, "clusterIP") == "None";
    let service_type = str_at(spec, "type");
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.required("spec.ports");
    }
    if service_type == "ExternalName" && str_at(spec, "externalName").is_empty() {
        errs.required("spec.externalName");
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let at = format!("spec.ports[{i}]");
        let name = str_at(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.required(&format!("{at}.name"));
        } else if !name.is_empty() {
            if !is_dns_label(name) {
                errs.invalid(&format!("{at}.name"), &go_quote(name), DNS1123_LABEL_MSG);
            }
            if !names.insert(name.to_string()) {
                errs.duplicate(&format!("{at}.name"), name);
            }
        }
        let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errs.invalid(&format!("{at}.port"), &number.to_string(), PORT_RANGE_MSG);
        }
        protocol(errs, port, &at);
        if let Some(n) = port.get("targetPort").and_then(Value::as_i64) {
            if !(1..=65535).contains(&n) {
                errs.invalid(&format!("{at}.targetPort"), &n.to_string(), PORT_RANGE_MSG);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn def(group: &str, plural: &str) -> ResourceDef {
        super::super::resources::builtins()
            .into_iter()
            .find(|d| d.is(group, plural))
            .expect("a built-in")
    }

    fn messages(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_deployment_without_a_selector_gets_both_of_kube_apiservers_errors() {
        let obj = json!({"spec": {"template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "app", "image": "nginx"}]},
        }}});
        assert_eq!(
            messages(&validate(&def("apps", "deployments"), &obj)),
            vec![
                "spec.selector: Required value".to_string(),
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"x\"}: `selector` does not match template `labels`".to_string(),
            ]
        );
    }

    #[test]
    fn containers_and_ports_are_checked() {
        let obj = json!({"spec": {"restartPolicy": "Always", "containers": [
            {"name": "App", "ports": [{"containerPort": 70000, "protocol": "TCP"}]},
            {"name": "b", "image": "x", "ports": [{"protocol": "HTTP", "containerPort": 80}]},
        ]}});
        let got = messages(&validate(&def("", "pods"), &obj));
        assert!(got[0].starts_with("spec.containers[0].name: Invalid value: \"App\""));
        assert_eq!(got[1], "spec.containers[0].image: Required value");
        assert_eq!(
            got[2],
            "spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"
        );
        assert_eq!(
            got[3],
            "spec.containers[1].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\""
        );
    }

    #[test]
    fn services_need_ports_and_named_ports_when_several() {
        let svc = def("", "services");
        assert_eq!(
            messages(&validate(&svc, &json!({"spec": {"type": "ClusterIP"}}))),
            vec!["spec.ports: Required value".to_string()]
        );
        let two = json!({"spec": {"ports": [
            {"port": 80, "protocol": "TCP"}, {"name": "b", "port": 81, "protocol": "TCP"},
        ]}});
        assert_eq!(
            messages(&validate(&svc, &two)),
            vec!["spec.ports[0].name: Required value".to_string()]
        );
        assert!(validate(&svc, &json!({"spec": {"clusterIP": "None"}})).is_empty());
    }
}
