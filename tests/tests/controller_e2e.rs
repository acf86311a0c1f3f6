//! The controller end to end: the real `sealsync-controller` and `sealsync` binaries, the
//! test API server and a real `git daemon`.

mod controller_common;

use controller_common::*;
use serde_json::json;

const NS: &str = "shop";
/// Secret values that must never appear outside the Secret itself.
const CANARY_1: &str = "canary-first-7f3a9c1e";
const CANARY_2: &str = "canary-second-52be0d44";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_update_drift_prune_and_an_atomic_failure() {
    let env = Env::start(&[NS]).await;

    // First sync: a sealed Secret, a ConfigMap and a Deployment.
    let sealed = env.seal(&secret_yaml(NS, "db", "password", CANARY_1));
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {NS}\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.27\n"
    );
    let first = env
        .repo
        .commit_files(
            &[
                ("apps/db.sealed.yaml", sealed.as_str()),
                (
                    "apps/settings.yaml",
                    configmap_yaml(NS, "settings", "mode", "blue").as_str(),
                ),
                ("apps/web.yaml", deployment.as_str()),
                ("apps/README.md", "not a manifest"),
            ],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "apps"})).await;
    let status = env.wait_applied(NS, "apps", &first).await;
    assert_eq!(
        status["lastAppliedRevision"],
        format!("main@sha1:{first}"),
        "{status:#}"
    );
    let ids: Vec<&str> = status["inventory"]["entries"]
        .as_array()
        .expect("inventory")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        ids,
        [
            "shop_db__Secret",
            "shop_settings__ConfigMap",
            "shop_web_apps_Deployment"
        ]
    );
    assert_eq!(status["sealedSecrets"][0]["file"], "apps/db.sealed.yaml");
    assert_eq!(status["sealedSecrets"][0]["secret"], "shop/db");
    let secret = env
        .get("v1", "Secret", Some(NS), "db")
        .await
        .expect("Secret db");
    assert_eq!(secret_value(&secret, "password"), CANARY_1);
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("sealsync.dev/gitsync-name").map(String::as_str),
        Some("apps")
    );
    assert_eq!(
        labels
            .get("sealsync.dev/gitsync-namespace")
            .map(String::as_str),
        Some(NS)
    );

    // The CLI: status, sync and render, as a user runs them.
    let kubeconfig = env.kubeconfig_arg();
    let table = run_cli_ok(&["status", "-n", NS, "--kubeconfig", &kubeconfig]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("apps") && table.contains(&first) && table.contains("True"),
        "{table}"
    );
    let (code, _, err) = run_cli_status(&["sync", "apps", "-n", NS, "--kubeconfig", &kubeconfig]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Applied revision"), "{err}");
    let checkout = env.dir.path().join("checkout");
    std::fs::create_dir_all(checkout.join("apps")).expect("mkdir");
    std::fs::write(checkout.join("apps/db.sealed.yaml"), &sealed).expect("write");
    std::fs::write(
        checkout.join("apps/plain.yaml"),
        secret_yaml(NS, "plain", "token", CANARY_1),
    )
    .expect("write");
    let rendered = run_cli_ok(&["render", checkout.join("apps").to_str().expect("utf8")]);
    assert!(
        rendered.contains("kind: Secret") && rendered.contains("password: '***'"),
        "{rendered}"
    );
    assert!(!rendered.contains(CANARY_1), "render shows a value");
    assert!(!rendered.contains("SealedSecret"), "{rendered}");

    // A new value.
    let sealed2 = env.seal(&secret_yaml(NS, "db", "password", CANARY_2));
    let second = env
        .repo
        .commit_files(
            &[("apps/db.sealed.yaml", sealed2.as_str())],
            "rotate the password",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &second).await;
    let secret = env
        .get("v1", "Secret", Some(NS), "db")
        .await
        .expect("Secret db");
    assert_eq!(secret_value(&secret, "password"), CANARY_2);

    // Drift: a manual edit is undone, and so is a deletion.
    apply_yaml_as(
        &env,
        "kubectl-edit",
        &configmap_yaml(NS, "settings", "mode", "red"),
    )
    .await;
    wait_for(
        "the edit to be undone, the label it added included",
        std::time::Duration::from_secs(30),
        || async {
            env.get("v1", "ConfigMap", Some(NS), "settings")
                .await
                .is_some_and(|cm| {
                    let added = cm
                        .metadata
                        .labels
                        .as_ref()
                        .is_some_and(|l| l.contains_key("edited-by"));
                    cm.data["data"]["mode"] == "blue" && !added
                })
        },
    )
    .await;
    dynamic_api(&env.client, "v1", "ConfigMap", Some(NS))
        .await
        .delete("settings", &Default::default())
        .await
        .expect("delete");
    wait_for(
        "the deleted ConfigMap to come back",
        std::time::Duration::from_secs(30),
        || async {
            env.get("v1", "ConfigMap", Some(NS), "settings")
                .await
                .is_some()
        },
    )
    .await;

    // Prune.
    let third = env
        .repo
        .delete_files(&["apps/web.yaml"], "drop web")
        .expect("commit");
    env.wait_applied(NS, "apps", &third).await;
    assert!(env
        .get("apps/v1", "Deployment", Some(NS), "web")
        .await
        .is_none());

    // One commit with a tampered sealed file and a new ConfigMap: nothing is applied.
    let tampered = tamper(&sealed2);
    let fourth = env
        .repo
        .commit_files(
            &[
                ("apps/db.sealed.yaml", tampered.as_str()),
                (
                    "apps/extra.yaml",
                    configmap_yaml(NS, "extra", "k", "v").as_str(),
                ),
            ],
            "tampered",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &fourth).await;
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "DecryptionFailed", "{status:#}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(message.contains("apps/db.sealed.yaml"), "{message}");
    assert_eq!(status["lastAppliedRevision"], format!("main@sha1:{third}"));
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "extra")
        .await
        .is_none());
    let secret = env
        .get("v1", "Secret", Some(NS), "db")
        .await
        .expect("Secret db kept");
    assert_eq!(secret_value(&secret, "password"), CANARY_2);

    // A malformed file fails the revision with file, line and column.
    let fifth = env
        .repo
        .commit_files(
            &[
                ("apps/db.sealed.yaml", sealed2.as_str()),
                ("apps/extra.yaml", "a: [1, 2\n"),
            ],
            "malformed",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &fifth).await;
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "RenderFailed", "{status:#}");
    assert!(ready["message"]
        .as_str()
        .unwrap_or_default()
        .contains("apps/extra.yaml"));
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "settings")
        .await
        .is_some());

    // No canary anywhere but the Secret: not in the log, the status, the events or metrics.
    let log = env.controller.log();
    let (_, metrics) = env.controller.get("/metrics").expect("metrics");
    let events = dynamic_api(&env.client, "events.k8s.io/v1", "Event", Some(NS))
        .await
        .list(&Default::default())
        .await
        .expect("events");
    let events = serde_json::to_string(&events.items).expect("json");
    let status = env.gitsync_status(NS, "apps").await.to_string();
    for canary in [CANARY_1, CANARY_2] {
        for (what, text) in [
            ("log", &log),
            ("metrics", &metrics),
            ("events", &events),
            ("status", &status),
        ] {
            assert!(!text.contains(canary), "{what} holds a secret value");
        }
    }
    assert!(
        metrics.contains("sealsync_reconcile_duration_seconds"),
        "{metrics}"
    );
    assert!(events.contains("ReconciliationSucceeded"), "{events}");
}

/// Flips one character of the first sealed value, keeping the YAML valid.
fn tamper(sealed: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    let mut in_data = false;
    for line in sealed.lines() {
        if line.trim_start().starts_with("encryptedData:") {
            in_data = true;
        } else if in_data && !done && line.contains(": ") {
            let (key, value) = line.split_once(": ").expect("key: value");
            let mut bytes: Vec<char> = value.chars().collect();
            let i = bytes.len() - 5;
            bytes[i] = if bytes[i] == 'A' { 'B' } else { 'A' };
            out.push_str(&format!(
                "{key}: {}\n",
                bytes.into_iter().collect::<String>()
            ));
            done = true;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    assert!(done, "no value to tamper with");
    out
}

async fn apply_yaml_as(env: &Env, manager: &str, yaml: &str) {
    use kube::api::{Patch, PatchParams};
    let value: serde_json::Value = serde_yaml::from_str(yaml).expect("yaml");
    let api = dynamic_api(&env.client, "v1", "ConfigMap", Some(NS)).await;
    let name = value["metadata"]["name"].as_str().expect("name").to_owned();
    // A merge patch, as `kubectl edit` sends: an Update operation by another manager.
    let patch = json!({"metadata": {"labels": {"edited-by": "hand"}}, "data": value["data"]});
    let params = PatchParams {
        field_manager: Some(manager.to_owned()),
        ..PatchParams::default()
    };
    api.patch(&name, &params, &Patch::Merge(&patch))
        .await
        .expect("edit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_heal_off_keeps_drift_until_the_next_commit_and_suspend_stops_everything() {
    let env = Env::start(&[NS]).await;
    let first = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "blue"))],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"selfHeal": false, "interval": "1s"}))
        .await;
    env.wait_applied(NS, "apps", &first).await;
    apply_yaml_as(
        &env,
        "kubectl-edit",
        &configmap_yaml(NS, "settings", "mode", "red"),
    )
    .await;
    // Three polls find the revision unchanged (one a second); the edit stays.
    let polls = metric_value(&env, "sealsync_polls_unchanged_total");
    wait_for(
        "three polls after the edit",
        std::time::Duration::from_secs(30),
        || async { metric_value(&env, "sealsync_polls_unchanged_total") >= polls + 3.0 },
    )
    .await;
    let cm = env
        .get("v1", "ConfigMap", Some(NS), "settings")
        .await
        .expect("cm");
    assert_eq!(
        cm.data["data"]["mode"],
        "red",
        "{}\n{:#?}",
        env.controller.log_tail(20),
        env.get("sealsync.dev/v1", "GitSync", Some(NS), "apps")
            .await
            .map(|o| o.data)
    );
    // A new commit applies the revision, and with it the Git value.
    let second = env
        .repo
        .commit_files(
            &[("other.yaml", configmap_yaml(NS, "other", "k", "v"))],
            "second",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &second).await;
    let cm = env
        .get("v1", "ConfigMap", Some(NS), "settings")
        .await
        .expect("cm");
    assert_eq!(cm.data["data"]["mode"], "blue");

    // Suspended: a new commit is not applied, even when a reconcile is asked for.
    let skipped = "sealsync_reconciles_skipped_total{reason=\"suspended\"}";
    env.apply_gitsync(NS, "apps", json!({"suspend": true}))
        .await;
    wait_for(
        "the controller to see the suspension",
        std::time::Duration::from_secs(30),
        || async { metric_value(&env, skipped) >= 1.0 },
    )
    .await;
    let third = env
        .repo
        .commit_files(
            &[("third.yaml", configmap_yaml(NS, "third", "k", "v"))],
            "third",
        )
        .expect("commit");
    let seen = metric_value(&env, skipped);
    env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", "after-third")
        .await;
    wait_for(
        "the requested reconcile to be skipped",
        std::time::Duration::from_secs(30),
        || async { metric_value(&env, skipped) > seen },
    )
    .await;
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "third")
        .await
        .is_none());
    let (code, _, err) = run_cli_status(&[
        "sync",
        "apps",
        "-n",
        NS,
        "--kubeconfig",
        &env.kubeconfig_arg(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("suspended"), "{err}");
    env.apply_gitsync(NS, "apps", json!({"suspend": false}))
        .await;
    env.wait_applied(NS, "apps", &third).await;
}
