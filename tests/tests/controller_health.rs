//! Ready means healthy: `spec.wait` and `spec.healthChecks` through the real controller on the
//! real kube-apiserver. kube-apiserver runs no workload controllers and no kubelet, so the
//! tests write the status subresources that those would (as envtest users do): a Deployment
//! rolls out when the test says so, a Job fails when the test says so. Everything the
//! GitSync applies, its Namespace included, comes from Git.

mod controller_common;

use controller_common::*;
use serde_json::json;
use std::time::Duration;

const PLATFORM: &str = "platform";
const CANARY: &str = "canary-h3alth-51c2";

fn namespace_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

fn deployment_yaml(namespace: &str, name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: {image}\n        env:\n        - name: TOKEN\n          value: {CANARY}\n"
    )
}

fn job_yaml(namespace: &str, name: &str) -> String {
    format!(
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: {name}\n  namespace: {namespace}\nspec:\n  backoffLimit: 0\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: migrate\n        image: migrate:1\n        args: [\"--password={CANARY}\"]\n"
    )
}

/// A Namespace, a Deployment in it and its settings, as a team keeps them in Git.
fn app_tree(namespace: &str, deployment: &str) -> Vec<(String, String)> {
    vec![
        (
            format!("{namespace}/namespace.yaml"),
            namespace_yaml(namespace),
        ),
        (
            format!("{namespace}/{deployment}.yaml"),
            deployment_yaml(namespace, deployment, &format!("{deployment}:1")),
        ),
        (
            format!("{namespace}/settings.yaml"),
            configmap_yaml(namespace, "settings", "mode", "live"),
        ),
    ]
}

/// Waits until the GitSync's Ready condition has `reason`; its status.
async fn wait_reason(env: &Env, name: &str, reason: &str) -> serde_json::Value {
    wait_for_value(
        &format!("GitSync {name} to report {reason}"),
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(PLATFORM, name).await;
            (ready_reason(&status).0 == reason).then_some(status)
        },
        || env.controller.log_tail(30),
    )
    .await
}

/// Whether the object exists.
async fn exists(env: &Env, api_version: &str, kind: &str, namespace: &str, name: &str) -> bool {
    env.get(api_version, kind, Some(namespace), name)
        .await
        .is_some()
}

fn ready_reason(status: &serde_json::Value) -> (String, String) {
    let c = condition(status, "Ready").cloned().unwrap_or_default();
    (
        c["reason"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Waits until the GitSync has applied `commit` but reports it not healthy.
async fn wait_unhealthy(env: &Env, name: &str, commit: &str) -> serde_json::Value {
    let want = commit.to_owned();
    wait_for_value(
        &format!("GitSync {name} to report {commit} unhealthy"),
        Duration::from_secs(90),
        || async {
            let status = env.gitsync_status(PLATFORM, name).await;
            let applied = status["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&want));
            (applied && ready_reason(&status).0 == "HealthCheckFailed").then_some(status)
        },
        || env.controller.log_tail(30),
    )
    .await
}

/// Waits until the GitSync's `Reconciling` message holds `text` (while it syncs `commit`, when
/// given).
async fn wait_progress(env: &Env, name: &str, text: &str, commit: Option<&str>) {
    let last = std::sync::Mutex::new(String::new());
    wait_for_value(
        &format!("GitSync {name} to report {text:?}"),
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(PLATFORM, name).await;
            *last.lock().expect("lock") = status.to_string();
            // The message names the revision being synced.
            let shown = condition(&status, "Reconciling")
                .and_then(|c| c["message"].as_str())
                .is_some_and(|m| m.contains(text) && commit.is_none_or(|c| m.contains(c)));
            shown.then_some(())
        },
        || {
            format!(
                "{}\nlast status: {}",
                env.controller.log_tail(40),
                last.lock().expect("lock")
            )
        },
    )
    .await;
}

async fn assert_no_canary(env: &Env, name: &str) {
    assert!(
        !env.controller.log().contains(CANARY),
        "the log holds the canary"
    );
    let status = env.gitsync_status(PLATFORM, name).await.to_string();
    assert!(!status.contains(CANARY), "the status holds the canary");
    assert!(!events_json(env, PLATFORM).await.contains(CANARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_makes_the_gitsync_ready_only_once_it_has_rolled_out() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(&app_tree("shop", "web"), "a shop")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "shop",
        json!({"path": "shop", "wait": true, "timeout": "5m", "interval": "1h"}),
    )
    .await;
    // Applied, and waiting: the progress says how many objects are healthy.
    // The Namespace is healthy once it exists; the ConfigMap needs no check.
    wait_progress(&env, "shop", "health check: 1 of 2 object(s) healthy", None).await;
    assert!(exists(&env, "apps/v1", "Deployment", "shop", "web").await);
    let status = env.gitsync_status(PLATFORM, "shop").await;
    assert_ne!(
        ready(&status),
        Some(true),
        "Ready before the rollout: {status}"
    );

    roll_out(&env, "shop", "web").await;
    let status = env.wait_applied(PLATFORM, "shop", &commit).await;
    assert!(ready_reason(&status).1.contains("healthy"), "{status}");
    assert!(status["health"].is_null(), "{status}");
    assert!(status["lastHealthyRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&commit)));
    assert!(metric_value(&env, "sealsync_health_checks_total{result=\"healthy\"}") >= 1.0);

    // A new image: Ready waits for the new generation's rollout, not the old one's status.
    let second = env
        .repo
        .commit_files(
            &[("shop/web.yaml", deployment_yaml("shop", "web", "web:2"))],
            "web 2",
        )
        .expect("commit");
    env.annotate_gitsync(PLATFORM, "shop", "sealsync.dev/requestedAt", "now-2")
        .await;
    wait_progress(&env, "shop", "health check: 1 of 2", Some(&second)).await;
    roll_out(&env, "shop", "web").await;
    env.wait_applied(PLATFORM, "shop", &second).await;
    assert_no_canary(&env, "shop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_job_fails_the_health_check_at_once_and_is_named() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(
            &[
                ("db/namespace.yaml".to_owned(), namespace_yaml("db")),
                ("db/migrate.yaml".to_owned(), job_yaml("db", "migrate")),
            ],
            "a migration",
        )
        .expect("commit");
    // A long timeout: the failure is reported as soon as the Job fails, not when it ends.
    env.apply_gitsync(
        PLATFORM,
        "db",
        json!({"path": "db", "wait": true, "timeout": "10m", "interval": "1h"}),
    )
    .await;
    wait_for("the Job to be applied", Duration::from_secs(60), || async {
        env.get("batch/v1", "Job", Some("db"), "migrate")
            .await
            .is_some()
    })
    .await;
    finish_job(&env, "db", "migrate", "Failed").await;
    let status = wait_unhealthy(&env, "db", &commit).await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains("Job db/migrate is Failed (the Job failed)"),
        "{message}"
    );
    let health = status["health"].as_array().expect("status.health");
    assert_eq!(health.len(), 1, "{status}");
    assert_eq!(health[0]["kind"], "Job");
    assert_eq!(health[0]["status"], "Failed");
    assert!(status["lastHealthyRevision"].is_null(), "{status}");
    assert!(events_json(&env, PLATFORM)
        .await
        .contains("HealthCheckFailed"));
    // `sealsync status` exits non-zero and says why.
    let (code, stdout, _) = run_cli_status(&[
        "status",
        "--kubeconfig",
        &env.kubeconfig_arg(),
        "-n",
        PLATFORM,
        "db",
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("health check failed"), "{stdout}");
    // Each object with its health, read now.
    let line = |kind: &str, object: &str| {
        stdout
            .lines()
            .find(|l| l.split_whitespace().take(2).eq([kind, object]))
            .map(|l| l.split_whitespace().skip(2).collect::<Vec<_>>().join(" "))
    };
    assert_eq!(
        line("Job", "db/migrate").as_deref(),
        Some("Failed the Job failed"),
        "{stdout}"
    );
    assert_eq!(
        line("Namespace", "db").as_deref(),
        Some("Current"),
        "{stdout}"
    );
    assert_no_canary(&env, "db").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_that_never_ends_times_out_naming_what_it_waits_for() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(&app_tree("app", "api"), "an app")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "app",
        json!({"path": "app", "wait": true, "timeout": "4s", "interval": "1h"}),
    )
    .await;
    let status = wait_unhealthy(&env, "app", &commit).await;
    let (_, message) = ready_reason(&status);
    assert!(message.contains("timed out"), "{message}");
    assert!(
        // No Deployment controller runs: it never observes the new generation.
        message.contains(
            "Deployment app/api is InProgress (the latest generation (1) is not observed yet)"
        ),
        "{message}"
    );
    // Applied all the same: the objects are there and in the inventory.
    assert!(exists(&env, "v1", "ConfigMap", "app", "settings").await);
    let ids = env.inventory_ids(PLATFORM, "app").await.expect("inventory");
    assert!(
        ids.iter().any(|id| id == "app_api_apps_Deployment"),
        "{ids:?}"
    );
    assert!(metric_value(&env, "sealsync_health_checks_total{result=\"timeout\"}") >= 1.0);

    // Once it rolls out, the next attempt finds it healthy.
    roll_out(&env, "app", "api").await;
    env.wait_applied(PLATFORM, "app", &commit).await;
    assert_no_canary(&env, "app").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_wait_for_named_objects_only_and_for_objects_outside_the_revision() {
    let env = Env::start(&[PLATFORM]).await;
    // A Deployment someone else manages, in the GitSync's namespace.
    apply_yaml(&env.client, &deployment_yaml(PLATFORM, "external", "ext:1")).await;
    let commit = env
        .repo
        .commit_tree(
            &[
                (
                    "mixed/stuck.yaml".to_owned(),
                    deployment_yaml(PLATFORM, "stuck", "stuck:1"),
                ),
                (
                    "mixed/migrate.yaml".to_owned(),
                    job_yaml(PLATFORM, "migrate"),
                ),
            ],
            "mixed",
        )
        .expect("commit");
    // `stuck` never rolls out but is not named, so it is not waited for.
    env.apply_gitsync(
        PLATFORM,
        "mixed",
        json!({"path": "mixed", "timeout": "5m", "interval": "1h", "healthChecks": [
            {"apiVersion": "batch/v1", "kind": "Job", "name": "migrate"},
            {"apiVersion": "apps/v1", "kind": "Deployment", "name": "external", "namespace": PLATFORM},
        ]}),
    )
    .await;
    wait_progress(
        &env,
        "mixed",
        "health check: 0 of 2 object(s) healthy",
        None,
    )
    .await;
    finish_job(&env, PLATFORM, "migrate", "Complete").await;
    wait_progress(
        &env,
        "mixed",
        "health check: 1 of 2 object(s) healthy",
        None,
    )
    .await;
    roll_out(&env, PLATFORM, "external").await;
    env.wait_applied(PLATFORM, "mixed", &commit).await;
}

fn in_wave(yaml: &str, wave: &str) -> String {
    yaml.replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations:\n    sealsync.dev/wave: \"{wave}\"\n"),
        1,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wave_that_never_becomes_healthy_stops_the_next_wave() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(
            &[
                // Wave -1: the Namespace (healthy once it exists).
                (
                    "waves/namespace.yaml".to_owned(),
                    in_wave(&namespace_yaml("waves"), "-1"),
                ),
                // Wave 0 (no annotation): the database, which must roll out first.
                (
                    "waves/db.yaml".to_owned(),
                    deployment_yaml("waves", "db", "db:1"),
                ),
                // Wave 1: the application and its settings.
                (
                    "waves/app.yaml".to_owned(),
                    in_wave(&deployment_yaml("waves", "app", "app:1"), "1"),
                ),
                (
                    "waves/settings.yaml".to_owned(),
                    in_wave(&configmap_yaml("waves", "settings", "mode", "live"), "1"),
                ),
            ],
            "waves",
        )
        .expect("commit");
    // No `wait`: the waves wait for each other, and the last wave is not waited for.
    env.apply_gitsync(
        PLATFORM,
        "waves",
        json!({"path": "waves", "timeout": "4s", "interval": "1h"}),
    )
    .await;
    let status = env.wait_failed(PLATFORM, "waves", &commit).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "HealthCheckFailed", "{status}");
    assert!(
        message.contains("wave 0 did not become healthy within spec.timeout: Deployment waves/db is InProgress (the latest generation (1) is not observed yet); wave 1 was not applied"),
        "{message}"
    );
    assert_eq!(status["health"][0]["name"], "db", "{status}");
    assert!(exists(&env, "apps/v1", "Deployment", "waves", "db").await);
    assert!(!exists(&env, "apps/v1", "Deployment", "waves", "app").await);
    assert!(!exists(&env, "v1", "ConfigMap", "waves", "settings").await);
    // The waves written are in the inventory, so a later revision prunes them.
    let ids = env
        .inventory_ids(PLATFORM, "waves")
        .await
        .expect("inventory");
    assert!(
        ids.iter().any(|id| id == "waves_db_apps_Deployment"),
        "{ids:?}"
    );
    assert!(status["lastAppliedRevision"].is_null(), "{status}");

    // Once the database has rolled out, the retry applies the next wave.
    roll_out(&env, "waves", "db").await;
    let status = env.wait_applied(PLATFORM, "waves", &commit).await;
    assert!(status["health"].is_null(), "{status}");
    assert!(exists(&env, "v1", "ConfigMap", "waves", "settings").await);
    assert!(exists(&env, "apps/v1", "Deployment", "waves", "app").await);

    // A wave that is not an integer fails the revision before anything is written.
    let bad = env
        .repo
        .commit_files(
            &[(
                "waves/extra.yaml",
                in_wave(&configmap_yaml("waves", "extra", "k", "v"), "later"),
            )],
            "a bad wave",
        )
        .expect("commit");
    env.annotate_gitsync(PLATFORM, "waves", "sealsync.dev/requestedAt", "bad")
        .await;
    let status = env.wait_failed(PLATFORM, "waves", &bad).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "ApplyFailed", "{status}");
    assert!(
        message.contains("sealsync.dev/wave: \"later\" is not an integer"),
        "{message}"
    );
    assert!(!exists(&env, "v1", "ConfigMap", "waves", "extra").await);

    // An invalid object of a later wave is found before the first wave is written.
    let invalid = env
        .repo
        .commit_files(
            &[
                (
                    "waves/extra.yaml",
                    configmap_yaml("waves", "extra", "k", "v"),
                ),
                (
                    "waves/broken.yaml",
                    in_wave(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n  namespace: waves\ndata:\n  count: 1\n",
                        "1",
                    ),
                ),
            ],
            "an invalid object in wave 1",
        )
        .expect("commit");
    env.annotate_gitsync(PLATFORM, "waves", "sealsync.dev/requestedAt", "invalid")
        .await;
    let status = env.wait_failed(PLATFORM, "waves", &invalid).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "ApplyFailed", "{status}");
    assert!(message.contains("waves/broken.yaml"), "{message}");
    assert!(
        !exists(&env, "v1", "ConfigMap", "waves", "extra").await,
        "wave 0 was written before wave 1 was found invalid"
    );
}

fn hook(yaml: &str, phase: &str, policy: Option<&str>) -> String {
    let mut annotations = format!("    sealsync.dev/hook: {phase}\n");
    if let Some(policy) = policy {
        annotations.push_str(&format!("    sealsync.dev/hook-delete-policy: {policy}\n"));
    }
    yaml.replacen(
        "metadata:\n",
        &format!("metadata:\n  annotations:\n{annotations}"),
        1,
    )
}

fn migration_yaml(namespace: &str, version: &str) -> String {
    job_yaml(namespace, "migrate").replace("image: migrate:1", &format!("image: migrate:{version}"))
}

async fn job_image(env: &Env, namespace: &str) -> Option<String> {
    env.get("batch/v1", "Job", Some(namespace), "migrate")
        .await
        .and_then(|job| {
            job.data["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_owned)
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_pre_sync_migration_applies_nothing_else_and_a_fixed_one_lets_the_revision_through(
) {
    let env = Env::start(&[PLATFORM]).await;
    let tree = |version: &str, policy: Option<&str>| {
        vec![
            ("shop/namespace.yaml".to_owned(), namespace_yaml("shop")),
            (
                "shop/migrate.yaml".to_owned(),
                hook(&migration_yaml("shop", version), "pre-sync", policy),
            ),
            (
                "shop/web.yaml".to_owned(),
                deployment_yaml("shop", "web", &format!("web:{version}")),
            ),
            (
                "shop/settings.yaml".to_owned(),
                configmap_yaml("shop", "settings", "version", &format!("v{version}")),
            ),
            (
                "shop/alert.yaml".to_owned(),
                hook(
                    &configmap_yaml("shop", "sync-failed", "version", &format!("v{version}")),
                    "sync-failed",
                    None,
                ),
            ),
            (
                "shop/smoke.yaml".to_owned(),
                hook(
                    &configmap_yaml("shop", "smoke-test", "version", &format!("v{version}")),
                    "post-sync",
                    None,
                ),
            ),
        ]
    };
    let first = env
        .repo
        .commit_tree(&tree("1", None), "migration 1")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "shop",
        json!({"path": "shop", "timeout": "5m", "interval": "1h"}),
    )
    .await;
    wait_for("the migration Job", Duration::from_secs(60), || async {
        job_image(&env, "shop").await.as_deref() == Some("migrate:1")
    })
    .await;
    // The hook runs first: its Namespace is there, nothing else is.
    assert!(!exists(&env, "v1", "ConfigMap", "shop", "settings").await);
    assert!(!exists(&env, "apps/v1", "Deployment", "shop", "web").await);
    finish_job(&env, "shop", "migrate", "Failed").await;
    let status = env.wait_failed(PLATFORM, "shop", &first).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "HookFailed", "{status}");
    assert!(
        message.contains("pre-sync hook failed: Job shop/migrate is Failed (the Job failed); nothing else of the revision was applied"),
        "{message}"
    );
    assert_eq!(status["health"][0]["name"], "migrate", "{status}");
    assert!(!exists(&env, "v1", "ConfigMap", "shop", "settings").await);
    assert!(!exists(&env, "apps/v1", "Deployment", "shop", "web").await);
    assert!(!exists(&env, "v1", "ConfigMap", "shop", "smoke-test").await);
    // The sync-failed hook ran.
    assert!(exists(&env, "v1", "ConfigMap", "shop", "sync-failed").await);

    // A fixed migration, deleted once it succeeded: the Job is created afresh (the failed one
    // is deleted first), then the revision, then the post-sync hook once the revision is healthy.
    let second = env
        .repo
        .commit_tree(&tree("2", Some("hook-succeeded")), "migration 2")
        .expect("commit");
    env.annotate_gitsync(PLATFORM, "shop", "sealsync.dev/requestedAt", "fixed")
        .await;
    wait_for_value(
        "the second migration Job",
        Duration::from_secs(60),
        || async { (job_image(&env, "shop").await.as_deref() == Some("migrate:2")).then_some(()) },
        || env.controller.log_tail(30),
    )
    .await;
    assert!(!exists(&env, "v1", "ConfigMap", "shop", "settings").await);
    finish_job(&env, "shop", "migrate", "Complete").await;
    wait_for(
        "the revision to be applied",
        Duration::from_secs(60),
        || async {
            env.get("apps/v1", "Deployment", Some("shop"), "web")
                .await
                .is_some()
        },
    )
    .await;
    assert_eq!(
        job_image(&env, "shop").await,
        None,
        "hook-succeeded deletes it"
    );
    // The post-sync hook waits for the Deployment to roll out.
    assert!(!exists(&env, "v1", "ConfigMap", "shop", "smoke-test").await);
    roll_out(&env, "shop", "web").await;
    let status = env.wait_applied(PLATFORM, "shop", &second).await;
    assert!(status["health"].is_null(), "{status}");
    assert!(exists(&env, "v1", "ConfigMap", "shop", "smoke-test").await);
    // The deleted hook is not self-healed back, nor run again by the polls that follow.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(job_image(&env, "shop").await, None);
    assert_no_canary(&env, "shop").await;
}

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_of_three_gitsyncs_applies_in_order_and_a_cycle_is_refused() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(
            &[
                // infra: the platform's Namespace, a CRD and an operator that must roll out.
                ("infra/namespace.yaml".to_owned(), namespace_yaml("chain")),
                ("infra/crd.yaml".to_owned(), WIDGET_CRD.to_owned()),
                (
                    "infra/operator.yaml".to_owned(),
                    deployment_yaml("chain", "operator", "operator:1"),
                ),
                // apps: a custom resource of infra's CRD.
                (
                    "apps/widget.yaml".to_owned(),
                    "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: chain\nspec:\n  size: 3\n".to_owned(),
                ),
                // web: what uses the apps.
                (
                    "web/settings.yaml".to_owned(),
                    configmap_yaml("chain", "web", "widget", "w1"),
                ),
            ],
            "three layers",
        )
        .expect("commit");
    // Created in the wrong order on purpose: the dependencies order them.
    env.apply_gitsync(
        PLATFORM,
        "web",
        json!({"path": "web", "interval": "1h", "dependsOn": [{"name": "apps"}]}),
    )
    .await;
    env.apply_gitsync(
        PLATFORM,
        "apps",
        json!({"path": "apps", "interval": "1h", "dependsOn": [{"name": "infra", "namespace": PLATFORM}]}),
    )
    .await;
    env.apply_gitsync(
        PLATFORM,
        "infra",
        json!({"path": "infra", "interval": "1h", "wait": true, "timeout": "5m"}),
    )
    .await;
    // infra waits for its operator; apps and web wait for infra and apps.
    wait_progress(&env, "infra", "health check", None).await;
    let apps = wait_reason(&env, "apps", "DependencyNotReady").await;
    assert!(
        ready_reason(&apps)
            .1
            .starts_with("waiting for GitSync platform/infra (spec.dependsOn):"),
        "{apps}"
    );
    assert!(
        apps["lastAttemptedRevision"].is_null(),
        "nothing fetched: {apps}"
    );
    let web = env.gitsync_status(PLATFORM, "web").await;
    assert_eq!(ready_reason(&web).0, "DependencyNotReady", "{web}");
    assert!(!exists(&env, "v1", "ConfigMap", "chain", "web").await);

    roll_out(&env, "chain", "operator").await;
    env.wait_applied(PLATFORM, "infra", &commit).await;
    env.wait_applied(PLATFORM, "apps", &commit).await;
    env.wait_applied(PLATFORM, "web", &commit).await;
    assert!(exists(&env, "example.com/v1", "Widget", "chain", "w1").await);
    assert!(exists(&env, "v1", "ConfigMap", "chain", "web").await);
    // Waiting wrote no Warning Event per look.
    let events = events_json(&env, PLATFORM).await;
    assert!(
        events.matches("DependencyNotReady").count() <= 4,
        "one Event per change of what is awaited, not one per look: {events}"
    );

    // A cycle: x waits for y, y for x.
    env.apply_gitsync(
        PLATFORM,
        "x",
        json!({"path": "web", "interval": "1h", "dependsOn": [{"name": "y"}]}),
    )
    .await;
    env.apply_gitsync(
        PLATFORM,
        "y",
        json!({"path": "web", "interval": "1h", "dependsOn": [{"name": "x"}]}),
    )
    .await;
    let x = wait_reason(&env, "x", "DependencyCycle").await;
    assert!(
        ready_reason(&x)
            .1
            .contains("a cycle: platform/x → platform/y → platform/x"),
        "{x}"
    );
    assert_eq!(
        condition(&x, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
}

fn sealed_db(env: &Env, namespace: &str, value: &str) -> String {
    env.seal(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {namespace}\nstringData:\n  password: {value}\n"
    ))
}

async fn image_of(env: &Env, namespace: &str, name: &str) -> String {
    env.get("apps/v1", "Deployment", Some(namespace), name)
        .await
        .and_then(|d| {
            d.data["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_last_healthy_revision_with_its_secrets_and_waits_for_a_fix() {
    let env = Env::start(&[PLATFORM]).await;
    let tree = |version: &str| {
        vec![
            ("rb/namespace.yaml".to_owned(), namespace_yaml("rb")),
            (
                "rb/api.yaml".to_owned(),
                deployment_yaml("rb", "api", &format!("api:{version}")),
            ),
            (
                "rb/db.sealed.yaml".to_owned(),
                sealed_db(&env, "rb", &format!("{CANARY}-{version}")),
            ),
        ]
    };
    let first = env.repo.commit_tree(&tree("1"), "v1").expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "rb",
        json!({"path": "rb", "wait": true, "timeout": "4s", "onHealthFailure": "rollback"}),
    )
    .await;
    wait_progress(&env, "rb", "health check", Some(&first)).await;
    roll_out(&env, "rb", "api").await;
    env.wait_applied(PLATFORM, "rb", &first).await;

    // v2 never rolls out: after spec.timeout it fails, then v1 is applied again from Git.
    let second = env.repo.commit_tree(&tree("2"), "v2").expect("commit");
    let failed = wait_for_value(
        "v2 to fail its health check",
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(PLATFORM, "rb").await;
            status["failedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&second))
                .then_some(status)
        },
        || env.controller.log_tail(30),
    )
    .await;
    assert!(failed["lastHealthyRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&first)));
    // The rollback waits for v1's rollout in turn (the Deployment controller would undo it).
    wait_progress(&env, "rb", "health check", Some(&first)).await;
    roll_out(&env, "rb", "api").await;
    let status = wait_reason(&env, "rb", "RolledBack").await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains(&format!("main@sha1:{second} did not become healthy")),
        "{message}"
    );
    assert!(
        message.contains(&format!("rolled back to main@sha1:{first}")),
        "{message}"
    );
    assert!(status["lastAppliedRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&first)));
    assert!(status["lastAttemptedRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&second)));
    assert_eq!(image_of(&env, "rb", "api").await, "api:1");
    let db = env
        .get("v1", "Secret", Some("rb"), "db")
        .await
        .expect("the Secret");
    assert_eq!(secret_value(&db, "password"), format!("{CANARY}-1"));
    assert!(events_json(&env, PLATFORM).await.contains("RolledBack"));

    // Polls do not try v2 again.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let status = env.gitsync_status(PLATFORM, "rb").await;
    assert_eq!(ready_reason(&status).0, "RolledBack", "{status}");
    assert_eq!(image_of(&env, "rb", "api").await, "api:1");

    // A fix is applied as usual and clears the failed revision.
    let third = env.repo.commit_tree(&tree("3"), "v3").expect("commit");
    wait_progress(&env, "rb", "health check", Some(&third)).await;
    roll_out(&env, "rb", "api").await;
    let status = env.wait_applied(PLATFORM, "rb", &third).await;
    assert!(status["failedRevision"].is_null(), "{status}");
    let db = env
        .get("v1", "Secret", Some("rb"), "db")
        .await
        .expect("the Secret");
    assert_eq!(secret_value(&db, "password"), format!("{CANARY}-3"));
    // `sealsync status` lists the Secret by its metadata alone.
    let (code, stdout, stderr) = run_cli_status(&[
        "status",
        "--kubeconfig",
        &env.kubeconfig_arg(),
        "-n",
        PLATFORM,
        "rb",
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("rb/db"), "{stdout}");
    assert!(stdout.contains("rb/api"), "{stdout}");
    assert!(!stdout.contains(CANARY) && !stderr.contains(CANARY));
    assert_no_canary(&env, "rb").await;
}

const DATABASE_CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: databases.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: databases, singular: database, kind: Database}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    subresources: {status: {}}\n    schema:\n      openAPIV3Schema:\n        type: object\n        x-kubernetes-preserve-unknown-fields: true\n";

fn database_yaml(size: u32) -> String {
    format!("apiVersion: example.com/v1\nkind: Database\nmetadata:\n  name: orders\n  namespace: data\nspec:\n  size: {size}\n  password: {CANARY}\n")
}

async fn set_phase(env: &Env, phase: &str) {
    let api = dynamic_api(&env.client, "example.com/v1", "Database", Some("data")).await;
    api.patch_status(
        "orders",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({"status": {"phase": phase}})),
    )
    .await
    .expect("write the Database's status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cel_expressions_judge_a_custom_resource() {
    let env = Env::start(&[PLATFORM]).await;
    let tree = |size: u32| {
        vec![
            ("data/namespace.yaml".to_owned(), namespace_yaml("data")),
            ("data/crd.yaml".to_owned(), DATABASE_CRD.to_owned()),
            ("data/orders.yaml".to_owned(), database_yaml(size)),
        ]
    };
    let first = env
        .repo
        .commit_tree(&tree(1), "a database")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "data",
        json!({"path": "data", "wait": true, "timeout": "5m", "interval": "1h",
        "healthCheckExprs": [{
            "apiVersion": "example.com/v1", "kind": "Database",
            "current": "self.status.phase == 'Ready'",
            "failed": "self.status.phase == 'Broken'",
        }]}),
    )
    .await;
    // Without a status the expressions cannot be evaluated yet: still in progress.
    wait_progress(
        &env,
        "data",
        "health check: 2 of 3 object(s) healthy",
        Some(&first),
    )
    .await;
    set_phase(&env, "Provisioning").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_ne!(
        ready(&env.gitsync_status(PLATFORM, "data").await),
        Some(true)
    );
    set_phase(&env, "Ready").await;
    env.wait_applied(PLATFORM, "data", &first).await;

    // Broken: the failed expression ends the wait at once.
    set_phase(&env, "Broken").await;
    let second = env.repo.commit_tree(&tree(2), "bigger").expect("commit");
    env.annotate_gitsync(PLATFORM, "data", "sealsync.dev/requestedAt", "2")
        .await;
    let status = wait_unhealthy(&env, "data", &second).await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains("Database data/orders is Failed (the failed expression is true)"),
        "{message}"
    );

    // An expression that does not compile is refused before anything is fetched.
    env.apply_gitsync(
        PLATFORM,
        "data",
        json!({"path": "data", "wait": true, "timeout": "5m", "interval": "1h",
        "healthCheckExprs": [{
            "apiVersion": "example.com/v1", "kind": "Database",
            "current": "self.status.phase ==",
        }]}),
    )
    .await;
    let status = wait_reason(&env, "data", "InvalidSpec").await;
    assert!(
        ready_reason(&status)
            .1
            .starts_with("spec.healthCheckExprs[0].current: not a CEL expression"),
        "{status}"
    );
    assert_no_canary(&env, "data").await;
}

/// Writes `status` to the status subresource of an object, as its controller would.
async fn play_status(
    env: &Env,
    api_version: &str,
    kind: &str,
    name: &str,
    status: serde_json::Value,
) {
    let api = dynamic_api(&env.client, api_version, kind, Some("kinds")).await;
    api.patch_status(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({ "status": status })),
    )
    .await
    .unwrap_or_else(|e| panic!("write the status of {kind} {name}: {e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_counts_once_its_controller_reports_it_ready() {
    let env = Env::start(&[PLATFORM]).await;
    let labels = |app: &str| {
        format!("    matchLabels: {{app: {app}}}\n  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n      containers:\n      - {{name: c, image: busybox}}\n")
    };
    let files = vec![
        ("kinds/namespace.yaml".to_owned(), namespace_yaml("kinds")),
        ("kinds/crd.yaml".to_owned(), WIDGET_CRD.to_owned()),
        (
            "kinds/sts.yaml".to_owned(),
            format!("apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\n  namespace: kinds\nspec:\n  replicas: 1\n  serviceName: db\n  selector:\n{}", labels("db")),
        ),
        (
            "kinds/ds.yaml".to_owned(),
            format!("apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: kinds\nspec:\n  selector:\n{}", labels("agent")),
        ),
        (
            "kinds/rs.yaml".to_owned(),
            format!("apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: workers\n  namespace: kinds\nspec:\n  replicas: 1\n  selector:\n{}", labels("workers")),
        ),
        (
            "kinds/pod.yaml".to_owned(),
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: once\n  namespace: kinds\nspec:\n  containers:\n  - {name: c, image: busybox}\n".to_owned(),
        ),
        (
            "kinds/pvc.yaml".to_owned(),
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: kinds\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n".to_owned(),
        ),
        (
            "kinds/lb.yaml".to_owned(),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: edge\n  namespace: kinds\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports:\n  - {port: 80}\n".to_owned(),
        ),
    ];
    let commit = env.repo.commit_tree(&files, "every kind").expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "kinds",
        json!({"path": "kinds", "wait": true, "timeout": "5m", "interval": "1h"}),
    )
    .await;
    // The Namespace is healthy once it exists, and kube-apiserver establishes the CRD itself.
    wait_progress(
        &env,
        "kinds",
        "health check: 2 of 8 object(s) healthy",
        Some(&commit),
    )
    .await;
    let now = "2026-01-01T00:00:00Z";
    play_status(
        &env,
        "apps/v1",
        "StatefulSet",
        "db",
        json!({
        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "currentReplicas": 1,
        "updatedReplicas": 1, "availableReplicas": 1,
        "currentRevision": "db-1", "updateRevision": "db-1"}),
    )
    .await;
    wait_progress(&env, "kinds", "health check: 3 of 8", Some(&commit)).await;
    play_status(
        &env,
        "apps/v1",
        "DaemonSet",
        "agent",
        json!({
        "observedGeneration": 1, "desiredNumberScheduled": 2, "currentNumberScheduled": 2,
        "updatedNumberScheduled": 2, "numberAvailable": 2, "numberReady": 2,
        "numberMisscheduled": 0}),
    )
    .await;
    wait_progress(&env, "kinds", "health check: 4 of 8", Some(&commit)).await;
    play_status(
        &env,
        "apps/v1",
        "ReplicaSet",
        "workers",
        json!({
        "observedGeneration": 1, "replicas": 1, "fullyLabeledReplicas": 1,
        "readyReplicas": 1, "availableReplicas": 1}),
    )
    .await;
    wait_progress(&env, "kinds", "health check: 5 of 8", Some(&commit)).await;
    play_status(
        &env,
        "v1",
        "Pod",
        "once",
        json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}]}),
    )
    .await;
    wait_progress(&env, "kinds", "health check: 6 of 8", Some(&commit)).await;
    play_status(
        &env,
        "v1",
        "PersistentVolumeClaim",
        "data",
        json!({"phase": "Bound"}),
    )
    .await;
    wait_progress(&env, "kinds", "health check: 7 of 8", Some(&commit)).await;
    play_status(
        &env,
        "v1",
        "Service",
        "edge",
        json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}]}}),
    )
    .await;
    let status = env.wait_applied(PLATFORM, "kinds", &commit).await;
    assert!(status["health"].is_null(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_that_turns_unhealthy_after_ready_is_found_at_the_next_poll() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(&app_tree("later", "api"), "an app")
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "later",
        json!({"path": "later", "wait": true, "timeout": "3s", "interval": "2s"}),
    )
    .await;
    wait_progress(&env, "later", "health check", Some(&commit)).await;
    roll_out(&env, "later", "api").await;
    env.wait_applied(PLATFORM, "later", &commit).await;
    let polls = metric_value(&env, "sealsync_polls_unchanged_total");
    // Polls that find it healthy stop at the ref listing.
    wait_for("an unchanged poll", Duration::from_secs(30), || async {
        metric_value(&env, "sealsync_polls_unchanged_total") > polls
    })
    .await;
    // Its pods go away: the watch sees it, and the next poll waits for it again.
    let api = dynamic_api(&env.client, "apps/v1", "Deployment", Some("later")).await;
    api.patch_status(
        "api",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&json!({"status": {"readyReplicas": 0, "availableReplicas": 0}})),
    )
    .await
    .expect("status");
    let status = wait_unhealthy(&env, "later", &commit).await;
    assert!(
        ready_reason(&status)
            .1
            .contains("Deployment later/api is InProgress (available replicas: 0/1)"),
        "{status}"
    );
    roll_out(&env, "later", "api").await;
    env.wait_applied(PLATFORM, "later", &commit).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_post_sync_hook_is_reported_and_the_revision_stays_in_the_inventory() {
    let env = Env::start(&[PLATFORM]).await;
    let commit = env
        .repo
        .commit_tree(
            &[
                ("post/namespace.yaml".to_owned(), namespace_yaml("post")),
                (
                    "post/settings.yaml".to_owned(),
                    configmap_yaml("post", "settings", "mode", "live"),
                ),
                (
                    "post/smoke.yaml".to_owned(),
                    hook(&job_yaml("post", "smoke"), "post-sync", Some("hook-failed")),
                ),
            ],
            "a smoke test",
        )
        .expect("commit");
    env.apply_gitsync(
        PLATFORM,
        "post",
        json!({"path": "post", "timeout": "5m", "interval": "1h"}),
    )
    .await;
    wait_for("the smoke test Job", Duration::from_secs(60), || async {
        exists(&env, "batch/v1", "Job", "post", "smoke").await
    })
    .await;
    assert!(exists(&env, "v1", "ConfigMap", "post", "settings").await);
    finish_job(&env, "post", "smoke", "Failed").await;
    let status = wait_reason(&env, "post", "HookFailed").await;
    assert!(
        ready_reason(&status).1.contains(
            "post-sync hook failed: Job post/smoke is Failed (the Job failed); the revision is applied and healthy"
        ),
        "{status}"
    );
    // hook-failed deleted it; the revision's objects are in the inventory for a later prune.
    assert!(!exists(&env, "batch/v1", "Job", "post", "smoke").await);
    let ids = env
        .inventory_ids(PLATFORM, "post")
        .await
        .expect("inventory");
    assert!(
        ids.iter().any(|id| id == "post_settings__ConfigMap"),
        "{ids:?}"
    );
    assert!(status["lastAttemptedRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&commit)));
}
