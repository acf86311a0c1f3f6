//! Table tests: one object per rule, in the spirit of kstatus's own tables.

use super::*;
use serde_json::json;

fn conditions(list: &[(&str, &str, &str)]) -> Json {
    Json::Array(
        list.iter()
            .map(|(t, s, r)| json!({"type": t, "status": s, "reason": r}))
            .collect(),
    )
}

fn assert_health(object: Json, want: &str) {
    let got = match health_of(&object) {
        Health::Current => "Current".to_owned(),
        Health::Terminating => "Terminating".to_owned(),
        Health::InProgress(why) => format!("InProgress: {why}"),
        Health::Failed(why) => format!("Failed: {why}"),
    };
    assert!(
        got.starts_with(want),
        "{object}: got {got:?}, want {want:?}"
    );
}

#[test]
fn generic_rules_come_first() {
    assert_health(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}}),
        "Terminating",
    );
    assert_health(
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 3},
               "spec": {"replicas": 1},
               "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1,
                          "readyReplicas": 1, "availableReplicas": 1}}),
        "InProgress: the latest generation (3)",
    );
    assert_health(
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "status": {"conditions": conditions(&[("Stalled", "True", "BadSpec"), ("Ready", "True", "X")])}}),
        "Failed: Stalled: BadSpec",
    );
    assert_health(
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "status": {"conditions": conditions(&[("Reconciling", "True", "Progressing")])}}),
        "InProgress: Reconciling: Progressing",
    );
    assert_health(json!({"apiVersion": "v1", "kind": "ConfigMap"}), "Current");
}

#[test]
fn deployments_roll_out() {
    let deployment = |status: Json| {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"generation": 1},
               "spec": {"replicas": 3}, "status": status})
    };
    let available = conditions(&[("Available", "True", "MinimumReplicasAvailable")]);
    assert_health(
        deployment(
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3, "conditions": available}),
        ),
        "Current",
    );
    assert_health(
        deployment(json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 1})),
        "InProgress: updated replicas: 1/3",
    );
    assert_health(
        deployment(json!({"observedGeneration": 1, "replicas": 4, "updatedReplicas": 3})),
        "InProgress: old replicas pending termination: 1",
    );
    assert_health(
        deployment(
            json!({"observedGeneration": 1, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 2}),
        ),
        "InProgress: available replicas: 2/3",
    );
    assert_health(
        deployment(
            json!({"observedGeneration": 1, "conditions": conditions(&[("Progressing", "False", "ProgressDeadlineExceeded")])}),
        ),
        "Failed: the rollout passed its progress deadline",
    );
}

#[test]
fn stateful_sets_and_daemon_sets_and_replica_sets() {
    let sts = |spec: Json, status: Json| json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "spec": spec, "status": status});
    assert_health(
        sts(
            json!({"replicas": 2}),
            json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 2, "updatedReplicas": 2, "currentRevision": "a", "updateRevision": "a"}),
        ),
        "Current",
    );
    assert_health(
        sts(
            json!({"replicas": 2}),
            json!({"replicas": 2, "readyReplicas": 2, "currentReplicas": 1, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}),
        ),
        "InProgress: rolling update",
    );
    assert_health(
        sts(
            json!({"replicas": 3, "updateStrategy": {"rollingUpdate": {"partition": 2}}}),
            json!({"replicas": 3, "readyReplicas": 3, "updatedReplicas": 1, "currentRevision": "a", "updateRevision": "b"}),
        ),
        "Current",
    );
    assert_health(
        sts(
            json!({"replicas": 2, "updateStrategy": {"type": "OnDelete"}}),
            json!({"readyReplicas": 1}),
        ),
        "InProgress: ready replicas: 1/2",
    );
    let ds = |status: Json| json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "status": status});
    assert_health(ds(json!({})), "InProgress: no pods scheduled yet");
    // Created, with the zero counts the API server fills in, before its controller saw it.
    assert_health(
        json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1},
               "status": {"desiredNumberScheduled": 0, "currentNumberScheduled": 0,
                          "numberMisscheduled": 0, "numberReady": 0}}),
        "InProgress: the latest generation (1) is not observed yet",
    );
    assert_health(
        ds(
            json!({"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 1, "numberReady": 2}),
        ),
        "InProgress: available: 1/2",
    );
    assert_health(
        ds(
            json!({"desiredNumberScheduled": 2, "currentNumberScheduled": 2, "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2}),
        ),
        "Current",
    );
    assert_health(
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "spec": {"replicas": 1},
               "status": {"conditions": conditions(&[("ReplicaFailure", "True", "FailedCreate")])}}),
        "Failed: ReplicaFailure",
    );
}

#[test]
fn pods_claims_services_jobs_and_definitions() {
    let pod = |status: Json| json!({"apiVersion": "v1", "kind": "Pod", "status": status});
    assert_health(
        pod(json!({"phase": "Pending"})),
        "InProgress: the pod is not running yet",
    );
    assert_health(
        pod(json!({"phase": "Running", "conditions": conditions(&[("Ready", "True", "")])})),
        "Current",
    );
    assert_health(
        pod(
            json!({"phase": "Running", "containerStatuses": [{"state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}),
        ),
        "Failed: a container is in CrashLoopBackOff",
    );
    assert_health(pod(json!({"phase": "Succeeded"})), "Current");
    assert_health(pod(json!({"phase": "Failed"})), "Failed");
    assert_health(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Pending"}}),
        "InProgress",
    );
    assert_health(
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "status": {"phase": "Bound"}}),
        "Current",
    );
    assert_health(
        json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "ClusterIP"}}),
        "Current",
    );
    assert_health(
        json!({"apiVersion": "v1", "kind": "Service", "spec": {"type": "LoadBalancer"}, "status": {}}),
        "InProgress",
    );
    let job = |c: &[(&str, &str, &str)]| json!({"apiVersion": "batch/v1", "kind": "Job", "status": {"conditions": conditions(c)}});
    assert_health(job(&[("Complete", "True", "")]), "Current");
    assert_health(
        job(&[("Failed", "True", "BackoffLimitExceeded")]),
        "Failed: the Job failed",
    );
    assert_health(job(&[]), "InProgress: the Job is not complete");
    let crd = |c: &[(&str, &str, &str)]| json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "status": {"conditions": conditions(c)}});
    assert_health(crd(&[("Established", "True", "")]), "Current");
    assert_health(
        crd(&[("NamesAccepted", "False", "MultipleNamesNotAllowed")]),
        "Failed: names not accepted: MultipleNamesNotAllowed",
    );
    assert_health(crd(&[]), "InProgress");
}

#[test]
fn custom_resources_follow_their_ready_condition_and_never_show_free_text() {
    let widget = |c: Json| json!({"apiVersion": "example.com/v1", "kind": "Widget", "status": {"conditions": c}});
    assert_health(widget(conditions(&[("Ready", "True", "Done")])), "Current");
    assert_health(
        widget(conditions(&[("Ready", "False", "Broken")])),
        "Failed: Ready is False: Broken",
    );
    assert_health(
        widget(conditions(&[("Ready", "Unknown", "Working")])),
        "InProgress: Ready is Unknown: Working",
    );
    // A reason that is not a word may be a value put in the wrong place: it is not shown.
    assert_health(
        widget(json!([{"type": "Ready", "status": "False", "reason": "password=hunter2"}])),
        "Failed: Ready is False: no reason given",
    );
    assert_health(
        json!({"apiVersion": "example.com/v1", "kind": "Widget"}),
        "Current",
    );
}
