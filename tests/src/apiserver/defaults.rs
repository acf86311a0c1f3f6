//! The defaults kube-apiserver sets on the workloads, pod templates and Services it stores,
//! so that what a client reads back (and diffs against) has the same fields. Only absent
//! fields are set, as the real defaulting functions do; the values are Kubernetes v1.33's.

use serde_json::{json, Map, Value};

use super::resources::ResourceDef;

/// Sets the defaults of `def`'s kind on `obj`.
pub fn apply(def: &ResourceDef, obj: &mut Value) {
    let Some(object) = obj.as_object_mut() else {
        return;
    };
    match (def.group.as_str(), def.plural.as_str()) {
        ("apps", "deployments") => deployment(object),
        ("apps", "statefulsets") => stateful_set(object),
        ("apps", "daemonsets") => daemon_set(object),
        ("apps", "replicasets") | ("", "replicationcontrollers") => replica_set(object),
        ("batch", "jobs") => {
            if let Some(spec) = child(object, "spec") {
                job_spec(spec);
            }
        }
        ("batch", "cronjobs") => cron_job(object),
        ("", "pods") => {
            if let Some(spec) = child(object, "spec") {
                pod_spec(spec);
                default(spec, "enableServiceLinks", json!(true));
                default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
                default(spec, "priority", json!(0));
            }
        }
        ("", "podtemplates") => {
            if let Some(spec) = child(object, "template").and_then(|t| child(t, "spec")) {
                pod_spec(spec);
            }
        }
        ("", "services") => service(object),
        ("", "persistentvolumeclaims") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        _ => {}
    }
}

/// The object under `key`, when it is one.
fn child<'a>(object: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    object.get_mut(key)?.as_object_mut()
}

/// The object under `key`, created when absent.
fn child_or_new<'a>(
    object: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    object
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
}

fn default(object: &mut Map<String, Value>, key: &str, value: Value) {
    if object.get(key).is_none_or(Value::is_null) {
        object.insert(key.to_owned(), value);
    }
}

fn template_spec(spec: &mut Map<String, Value>) {
    if let Some(pod) = child(spec, "template").and_then(|t| child(t, "spec")) {
        pod_spec(pod);
    }
}

fn deployment(object: &mut Map<String, Value>) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "progressDeadlineSeconds", json!(600));
    if let Some(strategy) = child_or_new(spec, "strategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(rolling) = child_or_new(strategy, "rollingUpdate") {
                default(rolling, "maxUnavailable", json!("25%"));
                default(rolling, "maxSurge", json!("25%"));
            }
        }
    }
    template_spec(spec);
}

fn stateful_set(object: &mut Map<String, Value>) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    default(spec, "replicas", json!(1));
    default(spec, "revisionHistoryLimit", json!(10));
    default(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = child_or_new(spec, "updateStrategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(rolling) = child_or_new(strategy, "rollingUpdate") {
                default(rolling, "partition", json!(0));
            }
        }
    }
    if let Some(policy) = child_or_new(spec, "persistentVolumeClaimRetentionPolicy") {
        default(policy, "whenDeleted", json!("Retain"));
        default(policy, "whenScaled", json!("Retain"));
    }
    template_spec(spec);
}

fn daemon_set(object: &mut Map<String, Value>) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    default(spec, "revisionHistoryLimit", json!(10));
    if let Some(strategy) = child_or_new(spec, "updateStrategy") {
        default(strategy, "type", json!("RollingUpdate"));
        if strategy.get("type") == Some(&json!("RollingUpdate")) {
            if let Some(rolling) = child_or_new(strategy, "rollingUpdate") {
                default(rolling, "maxUnavailable", json!(1));
                default(rolling, "maxSurge", json!(0));
            }
        }
    }
    template_spec(spec);
}

fn replica_set(object: &mut Map<String, Value>) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    default(spec, "replicas", json!(1));
    template_spec(spec);
}

fn job_spec(spec: &mut Map<String, Value>) {
    let no_counts = spec.get("completions").is_none_or(Value::is_null)
        && spec.get("parallelism").is_none_or(Value::is_null);
    if no_counts {
        spec.insert("completions".to_owned(), json!(1));
    }
    default(spec, "parallelism", json!(1));
    default(spec, "backoffLimit", json!(6));
    default(spec, "completionMode", json!("NonIndexed"));
    default(spec, "suspend", json!(false));
    default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
    template_spec(spec);
}

fn cron_job(object: &mut Map<String, Value>) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    default(spec, "concurrencyPolicy", json!("Allow"));
    default(spec, "suspend", json!(false));
    default(spec, "successfulJobsHistoryLimit", json!(3));
    default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
        job_spec(job);
    }
}

/// The pod spec defaults, for pods and every pod template.
fn pod_spec(spec: &mut Map<String, Value>) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for container in containers.iter_mut().filter_map(Value::as_object_mut) {
            default(
                container,
                "terminationMessagePath",
                json!("/dev/termination-log"),
            );
            default(container, "terminationMessagePolicy", json!("File"));
            let pull = image_pull_policy(container.get("image").and_then(Value::as_str));
            default(container, "imagePullPolicy", json!(pull));
            default(container, "resources", json!({}));
            if let Some(ports) = container.get_mut("ports").and_then(Value::as_array_mut) {
                for port in ports.iter_mut().filter_map(Value::as_object_mut) {
                    default(port, "protocol", json!("TCP"));
                }
            }
        }
    }
}

/// `Always` for an image without a tag or tagged `latest`, else `IfNotPresent`.
fn image_pull_policy(image: Option<&str>) -> &'static str {
    let Some(image) = image else {
        return "IfNotPresent";
    };
    if image.contains('@') {
        return "IfNotPresent";
    }
    let last = image.rsplit('/').next().unwrap_or(image);
    match last.split_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn service(object: &mut Map<String, Value>) {
    let Some(spec) = child(object, "spec") else {
        return;
    };
    default(spec, "type", json!("ClusterIP"));
    let kind = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_owned();
    if kind == "ExternalName" {
        return;
    }
    default(spec, "sessionAffinity", json!("None"));
    default(spec, "internalTrafficPolicy", json!("Cluster"));
    default(spec, "ipFamilyPolicy", json!("SingleStack"));
    default(spec, "ipFamilies", json!(["IPv4"]));
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports.iter_mut().filter_map(Value::as_object_mut) {
            default(port, "protocol", json!("TCP"));
            if let Some(number) = port.get("port").cloned() {
                default(port, "targetPort", number);
            }
        }
    }
    if spec.get("clusterIP").is_none_or(Value::is_null) {
        // An address from the same range as the real test server's (10.0.0.0/24).
        let ip = format!("10.0.0.{}", 2 + rand::random::<u8>() % 250);
        spec.insert("clusterIP".to_owned(), json!(ip));
    }
    if spec.get("clusterIPs").is_none_or(Value::is_null) {
        let ip = spec.get("clusterIP").cloned().unwrap_or(Value::Null);
        spec.insert("clusterIPs".to_owned(), json!([ip]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(image_pull_policy(Some("nginx")), "Always");
        assert_eq!(image_pull_policy(Some("nginx:latest")), "Always");
        assert_eq!(image_pull_policy(Some("nginx:1.27")), "IfNotPresent");
        assert_eq!(image_pull_policy(Some("registry:5000/nginx")), "Always");
        assert_eq!(image_pull_policy(Some("nginx@sha256:ab")), "IfNotPresent");
    }
}
