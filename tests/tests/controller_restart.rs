//! Restarts on Secret change, end to end: an opted-in Deployment's pod template gets a keyed
//! checksum of the Secrets it uses, which changes (and so bumps the Deployment's
//! `metadata.generation`, a rollout) exactly when one of them changes, in the same apply.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use serde_json::json;

const NS: &str = "restarts";
const DB_PASSWORD: &str = "canary-restart-db-8f2e1a";
const DB_PASSWORD_2: &str = "canary-restart-db-rotated-77c3";

fn deployment(name: &str, opt_in: Option<&str>) -> String {
    let annotation = opt_in
        .map(|v| format!("  annotations:\n    sealsync.dev/restart-on-secret-change: \"{v}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  namespace: {NS}
{annotation}spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
        - name: app
          image: registry.example/app:1
          env:
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef:
                  name: db
                  key: password
          volumeMounts:
            - name: api
              mountPath: /etc/api
      volumes:
        - name: api
          projected:
            sources:
              - secret:
                  name: api
"
    )
}

/// The Deployment's checksum annotation and generation.
async fn rollout_state(env: &Env, name: &str) -> (Option<String>, i64) {
    let d = env
        .get("apps/v1", "Deployment", Some(NS), name)
        .await
        .unwrap_or_else(|| panic!("Deployment {name}"));
    let checksum = d.data["spec"]["template"]["metadata"]["annotations"]
        ["sealsync.dev/secret-checksum"]
        .as_str()
        .map(str::to_owned);
    (checksum, d.metadata.generation.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_workloads_roll_out_exactly_when_a_secret_they_use_changes() {
    let mut env = Env::start(&[NS]).await;
    fn files(
        env: &Env,
        db: &str,
        api: &str,
        other: &str,
        mode: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("db.yaml", env.seal(&secret_yaml(NS, "db", "password", db))),
            ("api.yaml", env.seal(&secret_yaml(NS, "api", "token", api))),
            (
                "other.yaml",
                env.seal(&secret_yaml(NS, "other", "token", other)),
            ),
            ("cm.yaml", configmap_yaml(NS, "settings", "mode", mode)),
            ("web.yaml", deployment("web", Some("true"))),
            ("plain.yaml", deployment("plain", None)),
        ]
    }
    let first = env
        .repo
        .commit_files(
            &files(&env, DB_PASSWORD, "api-1", "other-1", "blue"),
            "first",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    env.wait_applied(NS, "apps", &first).await;
    let (checksum, generation) = rollout_state(&env, "web").await;
    let checksum = checksum.expect("the opted-in Deployment has a checksum");
    assert_eq!(checksum.len(), 64, "{checksum}");
    // Created with it: the first sync is no restart.
    assert_eq!(generation, 1);
    assert_eq!(rollout_state(&env, "plain").await, (None, 1));

    // An unrelated ConfigMap and a Secret the workload does not use: no rollout.
    let second = env
        .repo
        .commit_files(
            &files(&env, DB_PASSWORD, "api-1", "other-2", "green"),
            "unrelated",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &second).await;
    assert_eq!(
        rollout_state(&env, "web").await,
        (Some(checksum.clone()), 1)
    );

    // The controller restarts: the key is kept in the cluster, so nothing rolls out.
    env.controller.kill().expect("kill");
    env.controller.restart().expect("restart");
    let third = env
        .repo
        .commit_files(
            &files(&env, DB_PASSWORD, "api-1", "other-2", "red"),
            "after restart",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &third).await;
    assert_eq!(
        rollout_state(&env, "web").await,
        (Some(checksum.clone()), 1)
    );

    // The used Secret changes: the checksum changes in the same apply as the value.
    let fourth = env
        .repo
        .commit_files(
            &files(&env, DB_PASSWORD_2, "api-1", "other-2", "red"),
            "rotate db",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &fourth).await;
    let secret = env.get("v1", "Secret", Some(NS), "db").await.expect("db");
    assert_eq!(secret_value(&secret, "password"), DB_PASSWORD_2);
    let (rotated, generation) = rollout_state(&env, "web").await;
    let rotated = rotated.expect("checksum");
    assert_ne!(rotated, checksum);
    assert_eq!(generation, 2);
    assert_eq!(rollout_state(&env, "plain").await, (None, 1));

    // A projected volume's Secret counts too.
    let fifth = env
        .repo
        .commit_files(
            &files(&env, DB_PASSWORD_2, "api-2", "other-2", "red"),
            "rotate api",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &fifth).await;
    let (after_api, generation) = rollout_state(&env, "web").await;
    assert_ne!(after_api.as_deref(), Some(rotated.as_str()));
    assert_eq!(generation, 3);

    // spec.restartOnSecretChange opts every workload in.
    env.apply_gitsync(NS, "apps", json!({"restartOnSecretChange": true}))
        .await;
    let plain = wait_for_value(
        "the other Deployment to get its checksum",
        Duration::from_secs(30),
        || async { rollout_state(&env, "plain").await.0 },
        || env.controller.log_tail(20),
    )
    .await;
    assert_eq!(plain.len(), 64);

    // Self-heal puts the checksum back like any field of Git's.
    let api = dynamic_api(&env.client, "apps/v1", "Deployment", Some(NS)).await;
    api.patch(
        "web",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"sealsync.dev/secret-checksum": "edited"}}}}})),
    )
    .await
    .expect("edit");
    let want = after_api.clone();
    wait_for(
        "self-heal to restore the checksum",
        Duration::from_secs(30),
        || async { rollout_state(&env, "web").await.0 == want },
    )
    .await;

    let deployment_json = serde_json::to_string(
        &env.get("apps/v1", "Deployment", Some(NS), "web")
            .await
            .expect("web")
            .data,
    )
    .expect("json");
    for canary in [DB_PASSWORD, DB_PASSWORD_2] {
        assert!(!deployment_json.contains(canary));
        assert!(!env.controller.log().contains(canary), "a value was logged");
        assert!(!events_json(&env, NS).await.contains(canary));
    }
}
