//! Protobuf bodies of `kubectl create deployment|job|cronjob|service|quota`: the pod template
//! and the workload specs. Every converter takes the fields it turns into JSON out of the
//! message and then checks that nothing is left ([`super::rest`]), so a field this server does
//! not convert is refused (415) rather than dropped.

use std::mem::take;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{json, Map, Value};

use super::{meta, put_str, rest, string_map};
use crate::apiserver::error::ApiError;

type Result<T> = std::result::Result<T, ApiError>;

fn put<T: Into<Value>>(out: &mut Value, key: &str, value: Option<T>) {
    if let Some(v) = value {
        out[key] = v.into();
    }
}

/// For Go fields that are not pointers: their zero value means "not set".
fn put_nonzero<T: Into<Value> + PartialEq + Default>(out: &mut Value, key: &str, value: Option<T>) {
    if let Some(v) = value.filter(|v| *v != T::default()) {
        out[key] = v.into();
    }
}

fn put_list(out: &mut Value, key: &str, values: Vec<String>) {
    if !values.is_empty() {
        out[key] = json!(values);
    }
}

pub(super) fn int_or_string(value: IntOrString) -> Value {
    match (value.r#type, value.int_val, value.str_val) {
        (Some(1), _, Some(s)) => json!(s),
        (_, Some(i), _) => json!(i),
        (_, None, Some(s)) => json!(s),
        _ => json!(0),
    }
}

pub(super) fn label_selector(mut selector: LabelSelector) -> Result<Value> {
    let mut out = json!({});
    if !selector.match_labels.is_empty() {
        out["matchLabels"] = string_map(take(&mut selector.match_labels));
    }
    let expressions: Vec<Value> = take(&mut selector.match_expressions)
        .into_iter()
        .map(|e| json!({"key": e.key.unwrap_or_default(), "operator": e.operator.unwrap_or_default(), "values": e.values}))
        .collect();
    if !expressions.is_empty() {
        out["matchExpressions"] = json!(expressions);
    }
    rest(&selector, "LabelSelector")?;
    Ok(out)
}

fn quantities(
    map: std::collections::BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>,
) -> Value {
    Value::Object(
        map.into_iter()
            .map(|(k, q)| (k, json!(q.string.unwrap_or_default())))
            .collect::<Map<String, Value>>(),
    )
}

fn container(mut c: core::Container) -> Result<Value> {
    let mut out = json!({});
    put_str(&mut out, "name", c.name.take());
    put_str(&mut out, "image", c.image.take());
    put_list(&mut out, "command", take(&mut c.command));
    put_list(&mut out, "args", take(&mut c.args));
    put_str(&mut out, "workingDir", c.working_dir.take());
    put_str(&mut out, "imagePullPolicy", c.image_pull_policy.take());
    put_str(
        &mut out,
        "terminationMessagePath",
        c.termination_message_path.take(),
    );
    put_str(
        &mut out,
        "terminationMessagePolicy",
        c.termination_message_policy.take(),
    );
    let ports: Vec<Value> = take(&mut c.ports)
        .into_iter()
        .map(|p| {
            let mut port = json!({});
            put_str(&mut port, "name", p.name);
            put(&mut port, "containerPort", p.container_port);
            put_nonzero(&mut port, "hostPort", p.host_port);
            put_str(&mut port, "protocol", p.protocol);
            put_str(&mut port, "hostIP", p.host_ip);
            port
        })
        .collect();
    if !ports.is_empty() {
        out["ports"] = json!(ports);
    }
    let mut env = Vec::new();
    for mut var in take(&mut c.env) {
        if var.value_from.is_some() {
            rest(&var, "EnvVar with valueFrom")?;
        }
        let mut v = json!({"name": var.name.take().unwrap_or_default()});
        put_str(&mut v, "value", var.value.take());
        env.push(v);
    }
    if !env.is_empty() {
        out["env"] = json!(env);
    }
    if let Some(mut resources) = c.resources.take() {
        let mut r = json!({});
        if !resources.limits.is_empty() {
            r["limits"] = quantities(take(&mut resources.limits));
        }
        if !resources.requests.is_empty() {
            r["requests"] = quantities(take(&mut resources.requests));
        }
        rest(&resources, "ResourceRequirements")?;
        out["resources"] = r;
    }
    rest(&c, "Container")?;
    Ok(out)
}

pub(super) fn pod_template(mut template: core::PodTemplateSpec) -> Result<Value> {
    let mut out = json!({"metadata": meta(template.metadata.take())});
    if let Some(mut spec) = template.spec.take() {
        let mut s = json!({});
        let containers = take(&mut spec.containers)
            .into_iter()
            .map(container)
            .collect::<Result<Vec<_>>>()?;
        s["containers"] = json!(containers);
        let init = take(&mut spec.init_containers)
            .into_iter()
            .map(container)
            .collect::<Result<Vec<_>>>()?;
        if !init.is_empty() {
            s["initContainers"] = json!(init);
        }
        put_str(&mut s, "restartPolicy", spec.restart_policy.take());
        put_str(&mut s, "dnsPolicy", spec.dns_policy.take());
        put_str(
            &mut s,
            "serviceAccountName",
            spec.service_account_name.take(),
        );
        put_str(&mut s, "schedulerName", spec.scheduler_name.take());
        put(
            &mut s,
            "terminationGracePeriodSeconds",
            spec.termination_grace_period_seconds.take(),
        );
        if !spec.node_selector.is_empty() {
            s["nodeSelector"] = string_map(take(&mut spec.node_selector));
        }
        // An empty security context is what `kubectl create` encodes for none.
        if spec
            .security_context
            .as_ref()
            .is_some_and(|c| prost::Message::encoded_len(c) == 0)
        {
            spec.security_context = None;
            s["securityContext"] = json!({});
        }
        rest(&spec, "PodSpec")?;
        out["spec"] = s;
    }
    rest(&template, "PodTemplateSpec")?;
    Ok(out)
}

pub(super) fn deployment(mut d: apps::Deployment) -> Result<Value> {
    let mut out = json!({"metadata": meta(d.metadata.take())});
    d.status = None;
    if let Some(mut spec) = d.spec.take() {
        let mut s = json!({});
        put(&mut s, "replicas", spec.replicas.take());
        if let Some(selector) = spec.selector.take() {
            s["selector"] = label_selector(selector)?;
        }
        if let Some(template) = spec.template.take() {
            s["template"] = pod_template(template)?;
        }
        if let Some(mut strategy) = spec.strategy.take() {
            let mut st = json!({});
            put_str(&mut st, "type", strategy.r#type.take());
            if let Some(mut rolling) = strategy.rolling_update.take() {
                let mut r = json!({});
                if let Some(v) = rolling.max_unavailable.take() {
                    r["maxUnavailable"] = int_or_string(v);
                }
                if let Some(v) = rolling.max_surge.take() {
                    r["maxSurge"] = int_or_string(v);
                }
                rest(&rolling, "RollingUpdateDeployment")?;
                st["rollingUpdate"] = r;
            }
            rest(&strategy, "DeploymentStrategy")?;
            s["strategy"] = st;
        }
        put_nonzero(&mut s, "minReadySeconds", spec.min_ready_seconds.take());
        put(
            &mut s,
            "revisionHistoryLimit",
            spec.revision_history_limit.take(),
        );
        put(
            &mut s,
            "progressDeadlineSeconds",
            spec.progress_deadline_seconds.take(),
        );
        put_nonzero(&mut s, "paused", spec.paused.take());
        rest(&spec, "DeploymentSpec")?;
        out["spec"] = s;
    }
    rest(&d, "Deployment")?;
    Ok(out)
}

fn job_spec(mut spec: batch::JobSpec) -> Result<Value> {
    let mut s = json!({});
    put(&mut s, "parallelism", spec.parallelism.take());
    put(&mut s, "completions", spec.completions.take());
    put(&mut s, "backoffLimit", spec.backoff_limit.take());
    put(
        &mut s,
        "activeDeadlineSeconds",
        spec.active_deadline_seconds.take(),
    );
    put(
        &mut s,
        "ttlSecondsAfterFinished",
        spec.ttl_seconds_after_finished.take(),
    );
    put(&mut s, "suspend", spec.suspend.take());
    put(&mut s, "manualSelector", spec.manual_selector.take());
    put_str(&mut s, "completionMode", spec.completion_mode.take());
    if let Some(selector) = spec.selector.take() {
        s["selector"] = label_selector(selector)?;
    }
    if let Some(template) = spec.template.take() {
        s["template"] = pod_template(template)?;
    }
    rest(&spec, "JobSpec")?;
    Ok(s)
}

pub(super) fn job(mut job: batch::Job) -> Result<Value> {
    let mut out = json!({"metadata": meta(job.metadata.take())});
    job.status = None;
    if let Some(spec) = job.spec.take() {
        out["spec"] = job_spec(spec)?;
    }
    rest(&job, "Job")?;
    Ok(out)
}

pub(super) fn cron_job(mut cron: batch::CronJob) -> Result<Value> {
    let mut out = json!({"metadata": meta(cron.metadata.take())});
    cron.status = None;
    if let Some(mut spec) = cron.spec.take() {
        let mut s = json!({});
        put_str(&mut s, "schedule", spec.schedule.take());
        put_str(&mut s, "timeZone", spec.time_zone.take());
        put_str(&mut s, "concurrencyPolicy", spec.concurrency_policy.take());
        put(&mut s, "suspend", spec.suspend.take());
        put(
            &mut s,
            "startingDeadlineSeconds",
            spec.starting_deadline_seconds.take(),
        );
        put(
            &mut s,
            "successfulJobsHistoryLimit",
            spec.successful_jobs_history_limit.take(),
        );
        put(
            &mut s,
            "failedJobsHistoryLimit",
            spec.failed_jobs_history_limit.take(),
        );
        if let Some(mut template) = spec.job_template.take() {
            let mut t = json!({"metadata": meta(template.metadata.take())});
            if let Some(job) = template.spec.take() {
                t["spec"] = job_spec(job)?;
            }
            rest(&template, "JobTemplateSpec")?;
            s["jobTemplate"] = t;
        }
        rest(&spec, "CronJobSpec")?;
        out["spec"] = s;
    }
    rest(&cron, "CronJob")?;
    Ok(out)
}

pub(super) fn service(mut service: core::Service) -> Result<Value> {
    let mut out = json!({"metadata": meta(service.metadata.take())});
    service.status = None;
    if let Some(mut spec) = service.spec.take() {
        let mut s = json!({});
        put_str(&mut s, "type", spec.r#type.take());
        put_str(&mut s, "clusterIP", spec.cluster_ip.take());
        put_list(&mut s, "clusterIPs", take(&mut spec.cluster_ips));
        put_str(&mut s, "externalName", spec.external_name.take());
        put_str(&mut s, "sessionAffinity", spec.session_affinity.take());
        if !spec.selector.is_empty() {
            s["selector"] = string_map(take(&mut spec.selector));
        }
        let ports: Vec<Value> = take(&mut spec.ports)
            .into_iter()
            .map(|p| {
                let mut port = json!({});
                put_str(&mut port, "name", p.name);
                put_str(&mut port, "protocol", p.protocol);
                put(&mut port, "port", p.port);
                if let Some(target) = p.target_port {
                    port["targetPort"] = int_or_string(target);
                }
                put_nonzero(&mut port, "nodePort", p.node_port);
                put_str(&mut port, "appProtocol", p.app_protocol);
                port
            })
            .collect();
        if !ports.is_empty() {
            s["ports"] = json!(ports);
        }
        rest(&spec, "ServiceSpec")?;
        out["spec"] = s;
    }
    rest(&service, "Service")?;
    Ok(out)
}

pub(super) fn resource_quota(mut quota: core::ResourceQuota) -> Result<Value> {
    let mut out = json!({"metadata": meta(quota.metadata.take())});
    quota.status = None;
    if let Some(mut spec) = quota.spec.take() {
        let mut s = json!({});
        if !spec.hard.is_empty() {
            s["hard"] = quantities(take(&mut spec.hard));
        }
        put_list(&mut s, "scopes", take(&mut spec.scopes));
        rest(&spec, "ResourceQuotaSpec")?;
        out["spec"] = s;
    }
    rest(&quota, "ResourceQuota")?;
    Ok(out)
}
