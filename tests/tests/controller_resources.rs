//! SealedSecret resources end to end: the document `sealsync seal` writes, applied as a
//! resource (as Argo CD, Flux or kubectl apply it), opened by the real controller into a
//! Secret it owns; conflicts with GitSyncs and with unowned Secrets refused both ways.

mod controller_common;

use controller_common::*;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{json, Value as Json};
use std::time::Duration;

const NS: &str = "app";
const CANARY: &str = "canary-resource-1a7e";
const CANARY_TWO: &str = "canary-resource-two-5c02";
const TAMPERED_CANARY: &str = "canary-resource-tampered-90bd";

async fn resource(env: &Env, name: &str) -> Json {
    env.get("sealsync.dev/v1", "SealedSecret", Some(NS), name)
        .await
        .map(|o| serde_json::to_value(o).expect("json"))
        .unwrap_or(Json::Null)
}

/// Waits until the resource's Ready condition says `status` with `reason`; the resource.
async fn wait_resource(env: &Env, name: &str, status: &str, reason: &str) -> Json {
    wait_for_value(
        &format!("SealedSecret {NS}/{name} Ready={status} ({reason})"),
        Duration::from_secs(60),
        || async {
            let r = resource(env, name).await;
            let ready = condition(&r["status"], "Ready")?;
            (ready["status"] == status
                && ready["reason"] == reason
                && r["status"]["observedGeneration"] == r["metadata"]["generation"])
                .then(|| r.clone())
        },
        || env.controller.log_tail(30),
    )
    .await
}

async fn password(env: &Env, name: &str) -> Option<String> {
    env.get("v1", "Secret", Some(NS), name)
        .await
        .map(|s| secret_value(&s, "password"))
}

async fn wait_password(env: &Env, name: &str, want: &str) {
    wait_for(
        &format!("Secret {NS}/{name} to hold its sealed value"),
        Duration::from_secs(60),
        || async { password(env, name).await.as_deref() == Some(want) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sealed_secret_applied_as_a_resource_becomes_a_secret_it_owns() {
    let env = Env::start(&[NS]).await;
    let sealed = env.seal(&secret_yaml(NS, "db", "password", CANARY));
    apply_yaml(&env.client, &sealed).await;
    let ready = wait_resource(&env, "db", "True", "Succeeded").await;
    wait_password(&env, "db", CANARY).await;
    let secret = env.get("v1", "Secret", Some(NS), "db").await.expect("db");
    let owners = secret.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0].kind, "SealedSecret");
    assert_eq!(
        Some(&owners[0].uid),
        ready["metadata"]["uid"]
            .as_str()
            .map(str::to_owned)
            .as_ref()
    );
    assert_eq!(
        ready["status"]["keyIds"].as_array().map(Vec::len),
        Some(1),
        "{ready:#}"
    );

    // Edited or deleted by hand, the Secret is written again.
    let secrets = dynamic_api(&env.client, "v1", "Secret", Some(NS)).await;
    secrets
        .patch(
            "db",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "edited"}})),
        )
        .await
        .expect("edit");
    wait_password(&env, "db", CANARY).await;
    secrets
        .delete("db", &DeleteParams::default())
        .await
        .expect("delete");
    wait_password(&env, "db", CANARY).await;

    // A new value sealed and applied reaches the Secret; the status follows the generation.
    apply_yaml(
        &env.client,
        &env.seal(&secret_yaml(NS, "db", "password", CANARY_TWO)),
    )
    .await;
    wait_password(&env, "db", CANARY_TWO).await;
    let updated = wait_resource(&env, "db", "True", "Succeeded").await;
    assert_eq!(updated["status"]["observedGeneration"], 2, "{updated:#}");

    // Tampered: refused by field, no Secret, no value anywhere.
    let tampered = tamper_sealed_value(
        &env.seal(&secret_yaml(NS, "broken", "password", TAMPERED_CANARY)),
        "password",
    );
    apply_yaml(&env.client, &tampered).await;
    let broken = wait_resource(&env, "broken", "False", "DecryptionFailed").await;
    let message = condition(&broken["status"], "Ready").expect("Ready")["message"].clone();
    assert!(
        message
            .as_str()
            .is_some_and(|m| m.contains("SealedSecret app/broken") && m.contains("password")),
        "{message}"
    );
    assert!(env.get("v1", "Secret", Some(NS), "broken").await.is_none());

    // Sealed to a key this cluster does not hold: refused, naming the key ids.
    let other = env.dir.path().join("other.txt");
    let other_recipient = run_cli_ok(&["keys", "generate", "-o", other.to_str().expect("utf8")])
        .trim()
        .to_owned();
    let elsewhere = run_cli(
        &["seal", "-r", &other_recipient],
        &secret_yaml(NS, "elsewhere", "password", TAMPERED_CANARY),
    );
    apply_yaml(&env.client, &elsewhere).await;
    let elsewhere = wait_resource(&env, "elsewhere", "False", "DecryptionFailed").await;
    assert!(
        elsewhere.to_string().contains("sealed to key id"),
        "{elsewhere:#}"
    );

    // A template that would bind a service account, or forge sealsync's own labels, is
    // refused before anything is opened.
    for (name, field, value) in [
        (
            "token",
            "type",
            serde_yaml::Value::from("kubernetes.io/service-account-token"),
        ),
        (
            "forged",
            "metadata",
            serde_yaml::from_str("{labels: {sealsync.dev/owner-name: apps}}").expect("yaml"),
        ),
    ] {
        let mut doc: serde_yaml::Value =
            serde_yaml::from_str(&env.seal(&secret_yaml(NS, name, "password", CANARY)))
                .expect("yaml");
        doc["spec"]["template"][field] = value;
        apply_yaml(&env.client, &serde_yaml::to_string(&doc).expect("yaml")).await;
        let refused = wait_resource(&env, name, "False", "InvalidSpec").await;
        assert!(refused.to_string().contains("spec.template"), "{refused:#}");
        assert!(env.get("v1", "Secret", Some(NS), name).await.is_none());
    }

    // An existing Secret no SealedSecret owns is not taken over unless annotated.
    apply_yaml(
        &env.client,
        &secret_yaml(NS, "manual", "password", "by-hand"),
    )
    .await;
    apply_yaml(
        &env.client,
        &env.seal(&secret_yaml(NS, "manual", "password", CANARY)),
    )
    .await;
    let conflict = wait_resource(&env, "manual", "False", "Conflict").await;
    assert!(
        conflict.to_string().contains("no SealedSecret owns it"),
        "{conflict:#}"
    );
    assert_eq!(password(&env, "manual").await.as_deref(), Some("by-hand"));
    secrets
        .patch(
            "manual",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"sealsync.dev/managed": "true"}}})),
        )
        .await
        .expect("annotate");
    // The resource is reconciled again on its retry.
    wait_password(&env, "manual", CANARY).await;
    wait_resource(&env, "manual", "True", "Succeeded").await;

    // The key that opened it counts it: retiring that key would break it.
    let key_id = ready["status"]["keyIds"][0]
        .as_str()
        .expect("key id")
        .to_owned();
    wait_for(
        "the SealingKey to count the resource",
        Duration::from_secs(30),
        || async {
            let keys = dynamic_api(
                &env.client,
                "sealsync.dev/v1",
                "SealingKey",
                Some(CONTROLLER_NS),
            )
            .await
            .list(&Default::default())
            .await
            .expect("list");
            keys.items.iter().any(|k| {
                let k = serde_json::to_value(k).expect("json");
                k["status"]["keyId"] == key_id.as_str()
                    && k["status"]["usedBy"].as_array().is_some_and(|u| {
                        u.iter()
                            .any(|u| u["file"] == "SealedSecret app/db (resource)")
                    })
            })
        },
    )
    .await;

    // Deleted, the resource takes its Secret with it (kube-controller-manager's garbage
    // collector, where the test server runs one).
    let resources = dynamic_api(&env.client, "sealsync.dev/v1", "SealedSecret", Some(NS)).await;
    resources
        .delete("db", &DeleteParams::foreground())
        .await
        .expect("delete");
    if std::env::var("SEALSYNC_TEST_APISERVER").as_deref() == Ok("kube-apiserver") {
        wait_for(
            "the owned Secret to go",
            Duration::from_secs(60),
            || async { env.get("v1", "Secret", Some(NS), "db").await.is_none() },
        )
        .await;
    }

    let log = env.controller.log();
    let events = events_json(&env, NS).await;
    let metrics = metrics_text(&env);
    let statuses = format!("{broken} {conflict} {ready} {elsewhere}");
    for canary in [CANARY, CANARY_TWO, TAMPERED_CANARY] {
        assert!(!log.contains(canary), "the log holds {canary}");
        assert!(!events.contains(canary), "an Event holds {canary}");
        assert!(!metrics.contains(canary), "the metrics hold {canary}");
        assert!(!statuses.contains(canary), "a status holds {canary}");
    }
    assert!(
        metrics.contains("sealsync_sealedsecret_resource_reconciles_total{result=\"written\"}"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_secret_is_written_by_a_gitsync_or_by_a_resource_never_both() {
    let env = Env::start(&[NS]).await;
    // A GitSync applies `shared`; a resource for the same Secret is refused.
    let commit = env
        .repo
        .commit_files(
            &[(
                "app/shared.yaml",
                env.seal(&secret_yaml(NS, "shared", "password", CANARY)),
            )],
            "shared",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "app", "interval": "1h"}))
        .await;
    env.wait_applied(NS, "apps", &commit).await;
    apply_yaml(
        &env.client,
        &env.seal(&secret_yaml(NS, "shared", "password", CANARY_TWO)),
    )
    .await;
    let conflict = wait_resource(&env, "shared", "False", "Conflict").await;
    assert!(
        conflict
            .to_string()
            .contains("is applied by GitSync app/apps"),
        "{conflict:#}"
    );
    assert_eq!(password(&env, "shared").await.as_deref(), Some(CANARY));

    // A resource writes `owned`; a revision that holds the same Secret fails, naming it.
    apply_yaml(
        &env.client,
        &env.seal(&secret_yaml(NS, "owned", "password", CANARY_TWO)),
    )
    .await;
    wait_resource(&env, "owned", "True", "Succeeded").await;
    let second = env
        .repo
        .commit_files(
            &[(
                "app/owned.yaml",
                env.seal(&secret_yaml(NS, "owned", "password", CANARY)),
            )],
            "owned too",
        )
        .expect("commit");
    env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", "1")
        .await;
    let status = env.wait_failed(NS, "apps", &second).await;
    let message = condition(&status, "Ready").expect("Ready")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("written for the SealedSecret resource app/owned"),
        "{message}"
    );
    assert_eq!(password(&env, "owned").await.as_deref(), Some(CANARY_TWO));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_the_trusted_namespaces_a_resource_needs_a_default_service_account() {
    let env = Env::start_with(
        &[NS],
        &["--trusted-namespaces=sealsync-system".to_owned()],
        &[],
    )
    .await;
    apply_yaml(
        &env.client,
        &env.seal(&secret_yaml(NS, "db", "password", CANARY)),
    )
    .await;
    let refused = wait_resource(&env, "db", "False", "InvalidSpec").await;
    assert!(
        refused
            .to_string()
            .contains("default service account (--default-service-account)"),
        "{refused:#}"
    );
    assert!(env.get("v1", "Secret", Some(NS), "db").await.is_none());
}
