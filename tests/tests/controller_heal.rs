//! Self-heal from watches, end to end: the controller process, a real `git daemon`, the test
//! API server. The GitSyncs poll once an hour, so only the watches can undo drift within the
//! test; idle polls are checked against the server's own request counts.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use kube::api::{Patch, PatchParams};
use serde_json::json;

const NS: &str = "heal";
/// A secret value: it must never appear in the log, an event, the status or the metrics.
const CANARY: &str = "canary-heal-secret-51f0e7";

fn deployment_yaml(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.27\n"
    )
}

/// A merge patch by `manager`, as `kubectl edit` or another controller's Update sends it.
async fn patch_as(
    env: &Env,
    api_version: &str,
    kind: &str,
    name: &str,
    manager: &str,
    patch: serde_json::Value,
) {
    let params = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    dynamic_api(&env.client, api_version, kind, Some(NS))
        .await
        .patch(name, &params, &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch {kind} {name} as {manager}: {e}"));
}

/// The value of one sample of the controller's metrics, 0 when absent.
fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn metrics(env: &Env) -> String {
    metrics_text(env)
}

async fn events(env: &Env) -> String {
    events_json(env, NS).await
}

async fn resource_version(env: &Env, api_version: &str, kind: &str, name: &str) -> String {
    env.get(api_version, kind, Some(NS), name)
        .await
        .and_then(|o| o.metadata.resource_version)
        .expect("resourceVersion")
}

async fn config_value(env: &Env, name: &str) -> Option<String> {
    let cm = env.get("v1", "ConfigMap", Some(NS), name).await?;
    cm.data["data"]["mode"].as_str().map(str::to_owned)
}

/// Commits `files`, creates the GitSync `apps` polling at `interval`, and waits until it has
/// applied them.
async fn sync_files(env: &Env, interval: &str, files: &[(&str, String)]) {
    let first = env.repo.commit_files(files, "first").expect("commit");
    env.apply_gitsync(NS, "apps", json!({"interval": interval}))
        .await;
    env.wait_applied(NS, "apps", &first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_and_deletions_are_undone_from_watches_without_fighting() {
    let env = Env::start(&[NS]).await;
    let sealed = env.seal(&secret_yaml(NS, "db", "password", CANARY));
    sync_files(
        &env,
        "1h",
        &[
            (
                "settings.yaml",
                configmap_yaml(NS, "settings", "mode", "blue"),
            ),
            ("other.yaml", configmap_yaml(NS, "other", "mode", "green")),
            ("web.yaml", deployment_yaml("web", 2)),
            ("db.sealed.yaml", sealed),
        ],
    )
    .await;
    let secret_rv = resource_version(&env, "v1", "Secret", "db").await;

    // A `kubectl edit` of a value and a label it adds: both undone, by the watch.
    patch_as(
        &env,
        "v1",
        "ConfigMap",
        "settings",
        "kubectl-edit",
        json!({"metadata": {"labels": {"edited-by": "hand"}}, "data": {"mode": "red"}}),
    )
    .await;
    wait_for("the edit to be undone", Duration::from_secs(10), || async {
        let cm = env.get("v1", "ConfigMap", Some(NS), "settings").await;
        cm.is_some_and(|cm| {
            let labelled = cm
                .metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.contains_key("edited-by"));
            cm.data["data"]["mode"] == "blue" && !labelled
        })
    })
    .await;

    // A scaled Deployment goes back to the manifest's replicas.
    patch_as(
        &env,
        "apps/v1",
        "Deployment",
        "web",
        "kubectl-scale",
        json!({"spec": {"replicas": 5}}),
    )
    .await;
    wait_for(
        "the replicas to be restored",
        Duration::from_secs(10),
        || async {
            env.get("apps/v1", "Deployment", Some(NS), "web")
                .await
                .is_some_and(|d| d.data["spec"]["replicas"] == 2)
        },
    )
    .await;

    // A deleted Secret comes back with its value, opened again from the sealed manifest.
    dynamic_api(&env.client, "v1", "Secret", Some(NS))
        .await
        .delete("db", &Default::default())
        .await
        .expect("delete");
    let secret = wait_for_value(
        "the deleted Secret to come back",
        Duration::from_secs(10),
        || async { env.get("v1", "Secret", Some(NS), "db").await },
        || env.controller.log_tail(30),
    )
    .await;
    assert_eq!(secret_value(&secret, "password"), CANARY);
    assert_ne!(
        secret.metadata.resource_version.as_deref(),
        Some(secret_rv.as_str())
    );

    // Another controller's annotation, which the manifest does not set, stays; it costs no
    // write.
    wait_for(
        "the Secret's correction to be counted",
        Duration::from_secs(10),
        || async {
            metric(
                &metrics(&env),
                "sealsync_drift_corrections_total{kind=\"Secret\"}",
            ) >= 1.0
        },
    )
    .await;
    let before = metric(
        &metrics(&env),
        "sealsync_apply_writes_total{source=\"heal\"}",
    );
    patch_as(
        &env,
        "v1",
        "ConfigMap",
        "other",
        "some-operator",
        json!({"metadata": {"annotations": {"example.com/seen": "yes"}}}),
    )
    .await;
    let other_rv = resource_version(&env, "v1", "ConfigMap", "other").await;
    wait_for(
        "the change to be checked",
        Duration::from_secs(10),
        || async {
            metric(
                &metrics(&env),
                "sealsync_apply_noops_total{source=\"heal\"}",
            ) >= 1.0
        },
    )
    .await;
    // The check has finished (it counted a no-op): it wrote nothing.
    assert_eq!(
        resource_version(&env, "v1", "ConfigMap", "other").await,
        other_rv
    );
    assert_eq!(
        metric(
            &metrics(&env),
            "sealsync_apply_writes_total{source=\"heal\"}"
        ),
        before
    );

    // Watches dropped by the server resume; drift is still caught. (The watcher resumes a
    // dropped watch by itself, from its last resourceVersion, so nothing marks the moment.)
    env.faults().drop_watches();
    tokio::time::sleep(Duration::from_millis(500)).await;
    patch_as(
        &env,
        "v1",
        "ConfigMap",
        "other",
        "kubectl-edit",
        json!({"data": {"mode": "yellow"}}),
    )
    .await;
    wait_for(
        "the edit after dropped watches to be undone",
        Duration::from_secs(15),
        || async { config_value(&env, "other").await.as_deref() == Some("green") },
    )
    .await;

    // Another controller that keeps setting a field the manifest sets: corrections back off
    // instead of fighting at full speed.
    let corrections =
        |text: &str| metric(text, "sealsync_drift_corrections_total{kind=\"ConfigMap\"}");
    let start = corrections(&metrics(&env));
    for _ in 0..16 {
        patch_as(
            &env,
            "v1",
            "ConfigMap",
            "settings",
            "fighter",
            json!({"data": {"mode": "fight"}}),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let fought = corrections(&metrics(&env)) - start;
    assert!(
        (1.0..=4.0).contains(&fought),
        "{fought} corrections in 8 s of fighting"
    );
    let text = events(&env).await;
    assert!(
        text.contains("DriftConflict"),
        "{text}\n{}",
        env.controller.log_tail(40)
    );
    wait_for(
        "the last fight to be undone",
        Duration::from_secs(40),
        || async { config_value(&env, "settings").await.as_deref() == Some("blue") },
    )
    .await;

    // Events name the object and who changed it; metrics count by kind.
    let text = events(&env).await;
    assert!(text.contains("DriftCorrected"), "{text}");
    assert!(
        text.contains("ConfigMap heal/settings was changed by kubectl-edit (Update)"),
        "{text}"
    );
    assert!(text.contains("Secret heal/db was deleted"), "{text}");
    assert!(
        text.contains("Deployment heal/web was changed by kubectl-scale (Update)"),
        "{text}"
    );
    let text = metrics(&env);
    assert!(
        text.contains("sealsync_drift_corrections_total{kind=\"Secret\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sealsync_drift_corrections_total{kind=\"Deployment\"} 1"),
        "{text}"
    );

    // The secret value is nowhere but in the Secret.
    let status = env.gitsync_status(NS, "apps").await.to_string();
    for (what, text) in [
        ("log", env.controller.log()),
        ("metrics", metrics(&env)),
        ("events", events(&env).await),
        ("status", status),
    ] {
        assert!(!text.contains(CANARY), "{what} holds the secret value");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_poll_lists_refs_and_sends_no_api_request() {
    let env = Env::start(&[NS]).await;
    sync_files(
        &env,
        "1s",
        &[
            (
                "settings.yaml",
                configmap_yaml(NS, "settings", "mode", "blue"),
            ),
            ("web.yaml", deployment_yaml("web", 1)),
        ],
    )
    .await;
    wait_for("an unchanged poll", Duration::from_secs(20), || async {
        metric(&metrics(&env), "sealsync_polls_unchanged_total") >= 1.0
    })
    .await;
    let gitsync_rv = {
        let api = dynamic_api(&env.client, "sealsync.dev/v1", "GitSync", Some(NS)).await;
        api.get("apps")
            .await
            .expect("GitSync")
            .metadata
            .resource_version
    };
    let polls = metric(&metrics(&env), "sealsync_polls_unchanged_total");
    let requests = env.faults().requests();
    wait_for(
        "three more unchanged polls",
        Duration::from_secs(30),
        || async { metric(&metrics(&env), "sealsync_polls_unchanged_total") >= polls + 3.0 },
    )
    .await;
    let after = env.faults().requests();
    assert_eq!(
        after.writes, requests.writes,
        "idle polls wrote to the API server"
    );
    assert_eq!(
        after.total, requests.total,
        "idle polls sent API requests: {requests:?} then {after:?}"
    );
    let api = dynamic_api(&env.client, "sealsync.dev/v1", "GitSync", Some(NS)).await;
    assert_eq!(
        api.get("apps")
            .await
            .expect("GitSync")
            .metadata
            .resource_version,
        gitsync_rv,
        "the status was written"
    );

    // `sealsync sync` asks for a full reconcile all the same.
    let kubeconfig = env.kubeconfig_arg();
    run_cli_ok(&[
        "sync",
        "apps",
        "-n",
        NS,
        "--kubeconfig",
        &kubeconfig,
        "--timeout",
        "30s",
    ]);
    wait_for(
        "the requested reconcile",
        Duration::from_secs(20),
        || async {
            let status = env.gitsync_status(NS, "apps").await;
            status["lastHandledReconcileAt"].is_string()
        },
    )
    .await;
    let text = metrics(&env);
    assert!(
        metric(&text, "sealsync_apply_noops_total{source=\"reconcile\"}") >= 2.0,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_expires_lists_again_and_finds_what_was_deleted_meanwhile() {
    let env = Env::start(&[NS]).await;
    sync_files(
        &env,
        "1h",
        &[
            (
                "settings.yaml",
                configmap_yaml(NS, "settings", "mode", "blue"),
            ),
            ("other.yaml", configmap_yaml(NS, "other", "mode", "green")),
        ],
    )
    .await;
    // Let the watch list once, so that the deletion below falls into its gap.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The watch is cut, and its resume and the first relist get 410 Gone, as after an
    // API server restart that lost the watch history. Meanwhile a ConfigMap is deleted.
    env.faults()
        .fail_next(2, Some("GET"), "/api/v1/configmaps", 410);
    env.faults().drop_watches();
    dynamic_api(&env.client, "v1", "ConfigMap", Some(NS))
        .await
        .delete("other", &Default::default())
        .await
        .expect("delete");
    let back = wait_for_value(
        "the ConfigMap deleted during the gap to come back",
        Duration::from_secs(20),
        || async { config_value(&env, "other").await },
        || env.controller.log_tail(30),
    )
    .await;
    assert_eq!(back, "green");
    let text = metrics(&env);
    assert!(
        metric(
            &text,
            "sealsync_watch_restarts_total{resource=\"configmaps\"}"
        ) >= 1.0,
        "{text}"
    );
    // The untouched ConfigMap was not written.
    assert!(
        metric(
            &text,
            "sealsync_drift_corrections_total{kind=\"ConfigMap\"}"
        ) == 1.0,
        "{text}"
    );
}
