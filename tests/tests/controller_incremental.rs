//! Incremental revisions through the real controller: a push that lands while a revision is
//! being applied, and a CRD whose schema changes in the same commit as its resources. Each
//! ends with a full re-plan of the revision, which must find nothing to do: what the
//! incremental revisions left in the cluster is what planning every object gives.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use serde_json::json;

/// Where the GitSyncs live (created by an administrator, not in Git).
const PLATFORM: &str = "platform";
/// The namespace the repository declares.
const TEAM: &str = "team";

fn namespace_yaml() -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {TEAM}\n")
}

/// One ConfigMap per file, `cm-NN.yaml`, with the values given.
fn configmaps(values: &[(usize, String)]) -> Vec<(String, String)> {
    let mut files = vec![("team/ns.yaml".to_owned(), namespace_yaml())];
    for (n, value) in values {
        files.push((
            format!("team/cm-{n:02}.yaml"),
            configmap_yaml(TEAM, &format!("cm-{n:02}"), "value", value),
        ));
    }
    files
}

async fn value_of(env: &Env, name: &str) -> Option<String> {
    env.get("v1", "ConfigMap", Some(TEAM), name)
        .await
        .and_then(|c| c.data["data"]["value"].as_str().map(str::to_owned))
}

fn planned(env: &Env, mode: &str) -> f64 {
    metric_value(
        env,
        &format!("sealsync_revisions_planned_total{{mode=\"{mode}\"}}"),
    )
}

/// Asks for a reconcile, as `sealsync sync` does, without waiting for it.
async fn request_sync(env: &Env, stamp: &str) {
    env.annotate_gitsync(PLATFORM, "team", "sealsync.dev/requestedAt", stamp)
        .await;
}

/// Commits `files` as the whole tree, asks for a reconcile and waits until it is applied.
async fn push_and_sync(env: &Env, files: &[(String, String)], message: &str) {
    let commit = env.repo.commit_tree(files, message).expect("commit");
    request_sync(env, message).await;
    env.wait_applied(PLATFORM, "team", &commit).await;
}

/// Plans every object of the applied revision again (`sealsync sync` of an unchanged
/// revision) and asserts that it changed nothing: the cluster already held what a full
/// re-plan gives.
async fn assert_full_replan_changes_nothing(env: &Env, objects: usize) {
    let full_before = planned(env, "full");
    let (code, out, err) = run_cli_status(&[
        "sync",
        "team",
        "-n",
        PLATFORM,
        "--kubeconfig",
        &env.kubeconfig_arg(),
    ]);
    assert_eq!(code, 0, "{out}{err}\n{}", env.controller.log_tail(30));
    assert_eq!(planned(env, "full"), full_before + 1.0);
    let nothing = format!("0 created, 0 configured, {objects} unchanged, 0 pruned");
    // The line comes once the status is written, as the CLI returns: wait for it.
    let line = wait_for_value(
        "the full re-plan's result in the log",
        Duration::from_secs(30),
        || async {
            let log = env.controller.log();
            let asked = log.rfind("a full re-plan was asked for")?;
            log[asked..]
                .lines()
                .find(|l| l.contains("reconciled"))
                .map(str::to_owned)
        },
        || env.controller.log_tail(30),
    )
    .await;
    assert!(
        line.contains(&nothing),
        "the full re-plan changed something: {line}\n{}",
        env.controller.log_tail(40)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_during_a_reconcile_is_applied_next_and_equals_a_full_replan() {
    let env = Env::start(&[PLATFORM]).await;
    let mut values: Vec<(usize, String)> = (0..12).map(|n| (n, format!("v1-{n}"))).collect();
    let first = env
        .repo
        .commit_tree(&configmaps(&values), "twelve ConfigMaps")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "team", json!({"interval": "1h", "path": "team"}))
        .await;
    env.wait_applied(PLATFORM, "team", &first).await;

    // Writes to the team's ConfigMaps are slow: the second revision (six objects, each
    // dry-run and written) takes seconds.
    env.faults().add_latency(
        Some("PATCH"),
        &format!("/api/v1/namespaces/{TEAM}/configmaps"),
        Duration::from_millis(2500),
    );
    for (n, value) in values.iter_mut().take(6) {
        *value = format!("v2-{n}");
    }
    let second = env
        .repo
        .commit_tree(&configmaps(&values), "six changed")
        .expect("commit");
    request_sync(&env, "second").await;
    wait_for_value(
        "the second revision to be applying",
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(PLATFORM, "team").await;
            condition(&status, "Reconciling")
                .and_then(|c| c["message"].as_str())
                .is_some_and(|m| m.starts_with("apply:") && m.contains(&second))
                .then_some(())
        },
        || env.controller.log_tail(30),
    )
    .await;

    // The push lands mid-apply: one object of the second revision changes again, a file
    // leaves, a file arrives.
    values[0].1 = "v3-0".to_owned();
    values.retain(|(n, _)| *n != 11);
    values.push((12, "v3-12".to_owned()));
    let third = env
        .repo
        .commit_tree(&configmaps(&values), "pushed during the reconcile")
        .expect("commit");
    let incremental_before = planned(&env, "incremental");
    request_sync(&env, "third").await;

    // The second revision finishes; the third follows, planned from it.
    env.wait_applied(PLATFORM, "team", &third).await;
    env.faults().clear_faults();
    for (n, value) in &values {
        assert_eq!(
            value_of(&env, &format!("cm-{n:02}")).await.as_deref(),
            Some(value.as_str()),
            "cm-{n:02}"
        );
    }
    assert_eq!(value_of(&env, "cm-11").await, None, "cm-11 left Git");
    let log = env.controller.log();
    assert!(
        log.lines()
            .any(|l| l.contains("reconciled") && l.contains(&second)),
        "the second revision was applied first\n{}",
        env.controller.log_tail(40)
    );
    assert!(
        planned(&env, "incremental") > incremental_before,
        "the third revision was planned from the second\n{}",
        env.controller.log_tail(40)
    );
    let status = env.gitsync_status(PLATFORM, "team").await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(13),
        "{status}"
    );
    assert_full_replan_changes_nothing(&env, 13).await;
}

fn widget_crd(with_color: bool) -> String {
    let color = if with_color {
        "              color:\n                type: string\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.dev
spec:
  group: example.dev
  names:
    kind: Widget
    plural: widgets
    singular: widget
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size:
                type: integer
{color}"
    )
}

fn widget(spec: &str) -> String {
    format!(
        "apiVersion: example.dev/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: {TEAM}\nspec:\n{spec}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_whose_schema_changes_with_its_resources_is_planned_in_full() {
    let env = Env::start(&[PLATFORM]).await;
    let tree = |crd: String, widget: String, value: &str| {
        let mut files = configmaps(&[(0, value.to_owned())]);
        files.push(("team/crd.yaml".to_owned(), crd));
        files.push(("team/widget.yaml".to_owned(), widget));
        files
    };
    let first = env
        .repo
        .commit_tree(
            &tree(widget_crd(false), widget("  size: 1\n"), "a"),
            "a widget",
        )
        .expect("commit");
    env.apply_gitsync(PLATFORM, "team", json!({"interval": "1h", "path": "team"}))
        .await;
    env.wait_applied(PLATFORM, "team", &first).await;
    // A revision that changes one ConfigMap is planned alone (once the watches listed).
    let mut incremental = planned(&env, "incremental");
    for value in ["b", "c"] {
        let files = tree(widget_crd(false), widget("  size: 1\n"), value);
        push_and_sync(&env, &files, &format!("ConfigMap {value}")).await;
    }
    assert!(planned(&env, "incremental") > incremental);

    // The CRD gains a field and the widget uses it, in one commit: every object is planned,
    // the CRD first, so the new field is not pruned as unknown.
    let full = planned(&env, "full");
    let files = tree(widget_crd(true), widget("  size: 2\n  color: blue\n"), "c");
    push_and_sync(&env, &files, "the widget gains a color").await;
    assert_eq!(planned(&env, "full"), full + 1.0);
    assert!(env
        .controller
        .log()
        .contains("a CustomResourceDefinition or Namespace changed"));
    let live = env
        .get("example.dev/v1", "Widget", Some(TEAM), "w")
        .await
        .expect("the widget");
    assert_eq!(live.data["spec"], json!({"size": 2, "color": "blue"}));

    // The next revision is incremental again, from the upgraded one.
    incremental = planned(&env, "incremental");
    let files = tree(widget_crd(true), widget("  size: 3\n  color: blue\n"), "c");
    push_and_sync(&env, &files, "a bigger widget").await;
    assert!(planned(&env, "incremental") > incremental);
    let live = env
        .get("example.dev/v1", "Widget", Some(TEAM), "w")
        .await
        .expect("the widget");
    assert_eq!(live.data["spec"], json!({"size": 3, "color": "blue"}));
    // The Namespace, the ConfigMap, the CRD and the widget.
    assert_full_replan_changes_nothing(&env, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_polls_keep_the_unchanged_files_unread_by_the_next_push() {
    let env = Env::start(&[PLATFORM]).await;
    let mut values: Vec<(usize, String)> = (0..5).map(|n| (n, format!("v1-{n}"))).collect();
    let first = env
        .repo
        .commit_tree(&configmaps(&values), "five ConfigMaps")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "team", json!({"interval": "1s", "path": "team"}))
        .await;
    env.wait_applied(PLATFORM, "team", &first).await;
    // Polls that find the revision unchanged, then a push that changes one file.
    let polls = || metric_value(&env, "sealsync_polls_unchanged_total");
    let before = polls();
    wait_for("two idle polls", Duration::from_secs(30), || async {
        polls() >= before + 2.0
    })
    .await;
    for round in 2..=3 {
        values[round].1 = format!("v{round}");
        let commit = env
            .repo
            .commit_tree(&configmaps(&values), "one changed")
            .expect("commit");
        env.wait_applied(PLATFORM, "team", &commit).await;
        let before = polls();
        wait_for("two idle polls", Duration::from_secs(30), || async {
            polls() >= before + 2.0
        })
        .await;
    }
    // The last push read one file: the Namespace and four ConfigMaps were kept unread.
    let log = env.controller.log();
    let last = log
        .lines()
        .rev()
        .find(|l| l.contains("incremental revision"))
        .unwrap_or_default();
    assert!(
        last.contains("planned=1") && last.contains("files_kept=5"),
        "{last}\n{}",
        env.controller.log_tail(30)
    );
    for (n, value) in &values {
        assert_eq!(
            value_of(&env, &format!("cm-{n:02}")).await.as_deref(),
            Some(value.as_str())
        );
    }
}
