//! Whether an applied object is healthy, from the object alone (its spec, status and
//! conditions), with the rules of kstatus (sigs.k8s.io/cli-utils `pkg/kstatus`, Apache-2.0,
//! which Flux and kubectl's `--wait` use), reimplemented here: generic rules first (deletion,
//! `generation` against `status.observedGeneration`, the `Reconciling` and `Stalled`
//! conditions), then the rules of the built-in workload kinds, Flux's rule for Jobs, and a
//! custom resource's `Ready` condition. Messages say what is awaited, never a value.

use serde_json::Value as Json;

/// An object's health.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Health {
    /// Fully reconciled and serving as specified.
    Current,
    /// Still on its way (a rollout, a pending claim); the message says what it waits for.
    InProgress(String),
    /// Failed and will not recover without a change.
    Failed(String),
    /// Being deleted.
    Terminating,
}

impl Health {
    /// Whether it is healthy.
    pub fn is_current(&self) -> bool {
        matches!(self, Health::Current)
    }
}

/// Whether objects of a kind are healthy once they exist, so that nothing needs to read more
/// than their metadata: Secrets (whose values are never read to judge them), ConfigMaps,
/// ServiceAccounts, RBAC objects, NetworkPolicies and the like.
pub fn healthy_once_it_exists(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Secret"
                | "ConfigMap"
                | "ServiceAccount"
                | "LimitRange"
                | "ResourceQuota"
                | "Endpoints"
        ) | ("rbac.authorization.k8s.io", _)
            | ("networking.k8s.io", "NetworkPolicy")
    )
}

/// The health of `object`.
pub fn health_of(object: &Json) -> Health {
    if let Some(pending) = generic_pending(object) {
        return pending;
    }
    if let Some(Condition {
        status: "True",
        reason,
        ..
    }) = condition(object, "Stalled")
    {
        return Health::Failed(format!("Stalled: {}", reason.unwrap_or("no reason given")));
    }
    if let Some(Condition {
        status: "True",
        reason,
        ..
    }) = condition(object, "Reconciling")
    {
        return Health::InProgress(format!(
            "Reconciling: {}",
            reason.unwrap_or("no reason given")
        ));
    }
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    match (group, object["kind"].as_str().unwrap_or_default()) {
        ("apps", "Deployment") => deployment(object),
        ("apps", "StatefulSet") => stateful_set(object),
        ("apps", "DaemonSet") => daemon_set(object),
        ("apps", "ReplicaSet") => replica_set(object),
        ("", "Pod") => pod(object),
        ("", "PersistentVolumeClaim") => claim(object),
        ("", "Service") => service(object),
        ("batch", "Job") => job(object),
        ("apiextensions.k8s.io", "CustomResourceDefinition") => definition(object),
        _ => ready_condition(object),
    }
}

/// The rules every kind goes through first, custom health expressions included: an object
/// being deleted, or whose latest generation is not observed yet, is not healthy.
pub fn generic_pending(object: &Json) -> Option<Health> {
    if object["metadata"]["deletionTimestamp"].is_string() {
        return Some(Health::Terminating);
    }
    generation_pending(object)
}

/// A condition of `status.conditions`.
struct Condition<'a> {
    status: &'a str,
    reason: Option<&'a str>,
}

fn condition<'a>(object: &'a Json, kind: &str) -> Option<Condition<'a>> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
        .map(|c| Condition {
            status: c["status"].as_str().unwrap_or("Unknown"),
            reason: c["reason"].as_str().filter(|r| is_word(r)),
        })
}

/// Reasons are CamelCase words; anything else is not shown (it could be a value).
fn is_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `status.observedGeneration` behind `metadata.generation`: the controller of the kind has
/// not seen the latest spec. The workload controllers of `apps` always write it, so for their
/// kinds a missing one means the same (their zero counts would otherwise pass for a
/// DaemonSet with no node to run on); kstatus lets it pass.
fn generation_pending(object: &Json) -> Option<Health> {
    let generation = object["metadata"]["generation"].as_i64()?;
    let always_observed = object["apiVersion"] == "apps/v1"
        && matches!(
            object["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet")
        );
    let observed = match object["status"]["observedGeneration"].as_i64() {
        Some(observed) => observed,
        None if always_observed => {
            return Some(Health::InProgress(format!(
                "the latest generation ({generation}) is not observed yet"
            )))
        }
        None => return None,
    };
    (observed < generation).then(|| {
        Health::InProgress(format!(
            "the latest generation ({generation}) is not observed yet ({observed})"
        ))
    })
}

fn int(value: &Json) -> i64 {
    value.as_i64().unwrap_or(0)
}

fn deployment(object: &Json) -> Health {
    let spec = &object["spec"];
    let status = &object["status"];
    let wanted = spec["replicas"].as_i64().unwrap_or(1);
    if let Some(Condition {
        status: "False",
        reason: Some("ProgressDeadlineExceeded"),
        ..
    }) = condition(object, "Progressing")
    {
        return Health::Failed("the rollout passed its progress deadline".to_owned());
    }
    if spec["paused"].as_bool() == Some(true) {
        return Health::InProgress("the rollout is paused".to_owned());
    }
    let (replicas, updated, ready, available) = (
        int(&status["replicas"]),
        int(&status["updatedReplicas"]),
        int(&status["readyReplicas"]),
        int(&status["availableReplicas"]),
    );
    if updated < wanted {
        return Health::InProgress(format!("updated replicas: {updated}/{wanted}"));
    }
    if replicas > updated {
        return Health::InProgress(format!(
            "old replicas pending termination: {}",
            replicas - updated
        ));
    }
    if available < updated {
        return Health::InProgress(format!("available replicas: {available}/{updated}"));
    }
    if ready < wanted {
        return Health::InProgress(format!("ready replicas: {ready}/{wanted}"));
    }
    if wanted > 0
        && !matches!(
            condition(object, "Available"),
            Some(Condition { status: "True", .. })
        )
    {
        return Health::InProgress("the Deployment is not Available".to_owned());
    }
    Health::Current
}

fn stateful_set(object: &Json) -> Health {
    let spec = &object["spec"];
    let status = &object["status"];
    let wanted = spec["replicas"].as_i64().unwrap_or(1);
    if spec["updateStrategy"]["type"] == "OnDelete" {
        // Pods are replaced only when deleted: the controller's count is all there is.
        let ready = int(&status["readyReplicas"]);
        return if ready < wanted {
            Health::InProgress(format!("ready replicas: {ready}/{wanted}"))
        } else {
            Health::Current
        };
    }
    let (replicas, ready, current, updated) = (
        int(&status["replicas"]),
        int(&status["readyReplicas"]),
        int(&status["currentReplicas"]),
        int(&status["updatedReplicas"]),
    );
    if replicas < wanted {
        return Health::InProgress(format!("replicas: {replicas}/{wanted}"));
    }
    if ready < wanted {
        return Health::InProgress(format!("ready replicas: {ready}/{wanted}"));
    }
    if replicas > wanted {
        return Health::InProgress(format!(
            "replicas pending termination: {}",
            replicas - wanted
        ));
    }
    let partition = spec["updateStrategy"]["rollingUpdate"]["partition"]
        .as_i64()
        .unwrap_or(0);
    if partition > 0 {
        let expected = (wanted - partition).max(0);
        return if updated < expected {
            Health::InProgress(format!(
                "updated replicas of the partition: {updated}/{expected}"
            ))
        } else {
            Health::Current
        };
    }
    let revisions_differ = status["currentRevision"] != status["updateRevision"];
    if revisions_differ || current < wanted {
        return Health::InProgress(format!(
            "rolling update: {current}/{wanted} replicas current"
        ));
    }
    Health::Current
}

fn daemon_set(object: &Json) -> Health {
    let status = &object["status"];
    let Some(desired) = status["desiredNumberScheduled"].as_i64() else {
        return Health::InProgress("no pods scheduled yet".to_owned());
    };
    let (scheduled, updated, available, ready) = (
        int(&status["currentNumberScheduled"]),
        int(&status["updatedNumberScheduled"]),
        int(&status["numberAvailable"]),
        int(&status["numberReady"]),
    );
    if scheduled < desired {
        return Health::InProgress(format!("scheduled: {scheduled}/{desired}"));
    }
    if updated < desired {
        return Health::InProgress(format!("updated: {updated}/{desired}"));
    }
    if available < desired {
        return Health::InProgress(format!("available: {available}/{desired}"));
    }
    if ready < desired {
        return Health::InProgress(format!("ready: {ready}/{desired}"));
    }
    Health::Current
}

fn replica_set(object: &Json) -> Health {
    if let Some(Condition { status: "True", .. }) = condition(object, "ReplicaFailure") {
        return Health::Failed("ReplicaFailure".to_owned());
    }
    let wanted = object["spec"]["replicas"].as_i64().unwrap_or(1);
    let status = &object["status"];
    let (labeled, available, ready) = (
        int(&status["fullyLabeledReplicas"]),
        int(&status["availableReplicas"]),
        int(&status["readyReplicas"]),
    );
    if labeled < wanted {
        return Health::InProgress(format!("labeled replicas: {labeled}/{wanted}"));
    }
    if available < wanted {
        return Health::InProgress(format!("available replicas: {available}/{wanted}"));
    }
    if ready < wanted {
        return Health::InProgress(format!("ready replicas: {ready}/{wanted}"));
    }
    Health::Current
}

fn pod(object: &Json) -> Health {
    match object["status"]["phase"].as_str() {
        Some("Succeeded") => Health::Current,
        Some("Failed") => Health::Failed("the pod failed".to_owned()),
        Some("Running") => {
            let crashing = object["status"]["containerStatuses"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["state"]["waiting"]["reason"] == "CrashLoopBackOff");
            if crashing {
                Health::Failed("a container is in CrashLoopBackOff".to_owned())
            } else if matches!(
                condition(object, "Ready"),
                Some(Condition { status: "True", .. })
            ) {
                Health::Current
            } else {
                Health::InProgress("the pod is not Ready".to_owned())
            }
        }
        _ => Health::InProgress("the pod is not running yet".to_owned()),
    }
}

fn claim(object: &Json) -> Health {
    if object["status"]["phase"] == "Bound" {
        Health::Current
    } else {
        Health::InProgress("the claim is not Bound".to_owned())
    }
}

fn service(object: &Json) -> Health {
    let balanced = object["spec"]["type"] == "LoadBalancer";
    let ingress = object["status"]["loadBalancer"]["ingress"]
        .as_array()
        .is_some_and(|i| !i.is_empty());
    if balanced && !ingress {
        Health::InProgress("the load balancer has no address yet".to_owned())
    } else {
        Health::Current
    }
}

/// Flux's rule: a Job is healthy once complete, failed once failed.
fn job(object: &Json) -> Health {
    if let Some(Condition { status: "True", .. }) = condition(object, "Failed") {
        return Health::Failed("the Job failed".to_owned());
    }
    if let Some(Condition { status: "True", .. }) = condition(object, "Complete") {
        return Health::Current;
    }
    Health::InProgress("the Job is not complete".to_owned())
}

fn definition(object: &Json) -> Health {
    if let Some(Condition {
        status: "False",
        reason,
        ..
    }) = condition(object, "NamesAccepted")
    {
        return Health::Failed(format!(
            "names not accepted: {}",
            reason.unwrap_or("no reason given")
        ));
    }
    match condition(object, "Established") {
        Some(Condition { status: "True", .. }) => Health::Current,
        _ => Health::InProgress("the definition is not established".to_owned()),
    }
}

/// A custom resource: its `Ready` condition when it has one, else current.
fn ready_condition(object: &Json) -> Health {
    match condition(object, "Ready") {
        None | Some(Condition { status: "True", .. }) => Health::Current,
        Some(Condition {
            status: "False",
            reason,
            ..
        }) => Health::Failed(format!(
            "Ready is False: {}",
            reason.unwrap_or("no reason given")
        )),
        Some(Condition { reason, .. }) => Health::InProgress(format!(
            "Ready is Unknown: {}",
            reason.unwrap_or("no reason given")
        )),
    }
}

#[cfg(test)]
mod tests;
