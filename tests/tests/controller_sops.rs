//! SOPS files end to end: Secrets encrypted by the real `sops` (built from its Go module by
//! `scripts/interop-tools.sh`), committed as a Flux user keeps them, decrypted by the real
//! controller with the cluster's age keys. The migration is the documented one: the cluster's
//! recipient added to `.sops.yaml`, then `sops updatekeys`.

mod controller_common;

use controller_common::*;
use sealsync_tests::interop::{age_keygen, Sops};
use serde_json::json;
use std::time::Duration;

const NS: &str = "platform";
const CANARY: &str = "canary-s0ps-e2e-4f2a";
const JSON_CANARY: &str = "canary-s0ps-json-0c7e";
const PATCH_CANARY: &str = "canary-s0ps-patch-91b3";
const RULE: &[&str] = &["encrypted_regex: ^(data|stringData)$"];

fn namespace_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
}

fn plain_secret(namespace: Option<&str>, name: &str, value: &str) -> String {
    let namespace = namespace
        .map(|ns| format!("  namespace: {ns}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n{namespace}  labels:\n    app: shop\ntype: Opaque\nstringData:\n  password: {value}\n  port: \"5432\"\n"
    )
}

/// The cluster's recipients, as `sealsync keys fetch` wrote them.
fn cluster_recipients(env: &Env) -> Vec<String> {
    std::fs::read_to_string(&env.recipients)
        .expect("recipients")
        .split_whitespace()
        .filter(|w| w.starts_with("age1"))
        .map(str::to_owned)
        .collect()
}

fn ready_reason(status: &serde_json::Value) -> (String, String) {
    let c = condition(status, "Ready").cloned().unwrap_or_default();
    (
        c["reason"].as_str().unwrap_or_default().to_owned(),
        c["message"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn assert_no_canary(env: &Env, name: &str) {
    let log = env.controller.log();
    let status = env.gitsync_status(NS, name).await.to_string();
    let events = events_json(env, NS).await;
    let metrics = metrics_text(env);
    for canary in [CANARY, JSON_CANARY, PATCH_CANARY] {
        assert!(!log.contains(canary), "the log holds {canary}");
        assert!(!status.contains(canary), "the status holds {canary}");
        assert!(!events.contains(canary), "an Event holds {canary}");
        assert!(!metrics.contains(canary), "the metrics hold {canary}");
    }
}

async fn secret_password(env: &Env, namespace: &str, name: &str) -> Option<String> {
    env.get("v1", "Secret", Some(namespace), name)
        .await
        .map(|s| secret_value(&s, "password"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flux_user_s_sops_secret_applies_once_the_cluster_is_among_its_recipients() {
    let env = Env::start(&[NS]).await;
    let sops = tokio::task::spawn_blocking(Sops::find)
        .await
        .expect("join")
        .expect("sops");
    let (user_identity, user) = age_keygen().expect("a user's age key");
    let user_file = env.dir.path().join("user.txt");
    std::fs::write(&user_file, &user_identity).expect("identity");
    let encrypted = sops
        .encrypt(
            &plain_secret(Some("shop"), "db", CANARY),
            &[&user],
            RULE,
            "yaml",
        )
        .expect("encrypt");
    let tree = |mode: &str, secret: &str| {
        vec![
            ("shop/namespace.yaml".to_owned(), namespace_yaml("shop")),
            (
                "shop/settings.yaml".to_owned(),
                configmap_yaml("shop", "settings", "mode", mode),
            ),
            ("shop/db.sops.yaml".to_owned(), secret.to_owned()),
        ]
    };

    // Encrypted to the user alone: the whole revision waits, naming what to do.
    let first = env
        .repo
        .commit_files(&tree("blue", &encrypted), "db, for the user only")
        .expect("commit");
    env.apply_gitsync(NS, "shop", json!({"path": "shop", "interval": "1h"}))
        .await;
    let status = env.wait_failed(NS, "shop", &first).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "DecryptionFailed", "{status:#}");
    assert!(
        message.starts_with("shop/db.sops.yaml: document 1 (Secret shop/db)")
            && message.contains(&format!("its age recipients: {user}"))
            && message.contains("`sops updatekeys`"),
        "{message}"
    );
    assert!(env
        .get("v1", "ConfigMap", Some("shop"), "settings")
        .await
        .is_none());

    // The migration: the cluster's recipient in .sops.yaml, then `sops updatekeys`.
    let work = env.dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    let file = work.join("db.sops.yaml");
    std::fs::write(&file, &encrypted).expect("write");
    let mut recipients = vec![user.clone()];
    recipients.extend(cluster_recipients(&env));
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    sops.updatekeys(&file, &recipients, RULE, &user_file)
        .expect("updatekeys");
    let updated = std::fs::read_to_string(&file).expect("read");
    assert!(!updated.contains(CANARY));
    let second = env
        .repo
        .commit_files(&tree("blue", &updated), "db, for the cluster too")
        .expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "1")
        .await;
    let status = env.wait_applied(NS, "shop", &second).await;
    assert_eq!(
        secret_password(&env, "shop", "db").await.as_deref(),
        Some(CANARY)
    );
    let live = env
        .get("v1", "Secret", Some("shop"), "db")
        .await
        .expect("db");
    assert_eq!(secret_value(&live, "port"), "5432");
    assert!(live
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l["app"] == "shop"));
    assert!(live.data.get("sops").is_none());
    let used = &status["sealedSecrets"][0];
    assert_eq!(used["file"], "shop/db.sops.yaml", "{status:#}");
    assert_eq!(used["secret"], "shop/db");
    assert_eq!(
        used["keyIds"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );

    // Self-heal puts the value back from the recorded, still encrypted, manifest.
    let api = dynamic_api(&env.client, "v1", "Secret", Some("shop")).await;
    api.patch(
        "db",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"stringData": {"password": "edited"}})),
    )
    .await
    .expect("edit the Secret");
    wait_for(
        "self-heal to restore the SOPS Secret",
        Duration::from_secs(30),
        || async { secret_password(&env, "shop", "db").await.as_deref() == Some(CANARY) },
    )
    .await;

    // A label edited by hand is inside the MAC: the revision fails, nothing of it is applied.
    let tampered = updated.replace("app: shop", "app: evil");
    assert_ne!(tampered, updated);
    let third = env
        .repo
        .commit_files(&tree("red", &tampered), "tampered")
        .expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "2")
        .await;
    let status = env.wait_failed(NS, "shop", &third).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "DecryptionFailed", "{status:#}");
    assert!(
        message.contains("shop/db.sops.yaml: document 1 (Secret shop/db): its SOPS MAC does not match its values"),
        "{message}"
    );
    let settings = env
        .get("v1", "ConfigMap", Some("shop"), "settings")
        .await
        .expect("settings");
    assert_eq!(settings.data["data"]["mode"], "blue");

    // A value replaced by plaintext is refused by field.
    let plaintext = {
        let mut doc: serde_yaml::Value = serde_yaml::from_str(&updated).expect("yaml");
        doc["stringData"]["password"] = serde_yaml::Value::from(PATCH_CANARY);
        serde_yaml::to_string(&doc).expect("yaml")
    };
    let fourth = env
        .repo
        .commit_files(&tree("red", &plaintext), "plaintext")
        .expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "3")
        .await;
    let status = env.wait_failed(NS, "shop", &fourth).await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains("stringData.password is plaintext, but the file's SOPS rule (encrypted_regex: ^(data|stringData)$) encrypts it"),
        "{message}"
    );
    // A rule that leaves `data` unencrypted puts Secret values in Git in plaintext: refused
    // unless the GitSync allows plaintext Secrets.
    let partial = sops
        .encrypt(
            &format!(
                "{}data:\n  token: Y2FuYXJ5\n",
                plain_secret(Some("shop"), "db", CANARY)
            ),
            &recipients,
            &["encrypted_regex: ^stringData$"],
            "yaml",
        )
        .expect("encrypt");
    let fifth = env
        .repo
        .commit_files(&tree("red", &partial), "a partial rule")
        .expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "4")
        .await;
    let status = env.wait_failed(NS, "shop", &fifth).await;
    let (_, message) = ready_reason(&status);
    assert!(
        message.contains("a plaintext Secret in Git (data.token)"),
        "{message}"
    );
    env.apply_gitsync(
        NS,
        "shop",
        json!({"path": "shop", "interval": "1h", "allowPlaintextSecrets": true}),
    )
    .await;
    env.wait_applied(NS, "shop", &fifth).await;
    assert!(metric_value(&env, "sealsync_decrypt_failures_total") >= 3.0);
    assert_no_canary(&env, "shop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kustomize_overlay_sets_the_namespace_of_sops_secrets_verified_as_written() {
    let env = Env::start(&[NS, "prod"]).await;
    let sops = tokio::task::spawn_blocking(Sops::find)
        .await
        .expect("join")
        .expect("sops");
    let recipients = cluster_recipients(&env);
    let recipients: Vec<&str> = recipients.iter().map(String::as_str).collect();
    let yaml = sops
        .encrypt(&plain_secret(None, "db", CANARY), &recipients, RULE, "yaml")
        .expect("encrypt");
    let json_plain = serde_json::to_string_pretty(&json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "db-json"},
        "stringData": {"password": JSON_CANARY, "retries": "3"},
    }))
    .expect("json");
    let json_file = sops
        .encrypt(&json_plain, &recipients, RULE, "json")
        .expect("encrypt json");
    let base = vec![
        (
            "base/kustomization.yaml".to_owned(),
            "resources:\n- db.sops.yaml\n- db-json.sops.json\n".to_owned(),
        ),
        ("base/db.sops.yaml".to_owned(), yaml.clone()),
        ("base/db-json.sops.json".to_owned(), json_file),
    ];
    let overlay = |patch: bool| {
        let mut files = base.clone();
        let mut kustomization =
            "namespace: prod\nlabels:\n- pairs:\n    team: a\nresources:\n- ../base\n".to_owned();
        if patch {
            kustomization.push_str(&format!(
                "patches:\n- target:\n    kind: Secret\n    name: db\n  patch: |\n    - op: add\n      path: /stringData/extra\n      value: {PATCH_CANARY}\n"
            ));
        }
        files.push(("overlay/kustomization.yaml".to_owned(), kustomization));
        files
    };
    let first = env
        .repo
        .commit_files(&overlay(false), "overlay")
        .expect("commit");
    env.apply_gitsync(NS, "prod", json!({"path": "overlay", "interval": "1h"}))
        .await;
    let status = env.wait_applied(NS, "prod", &first).await;
    assert_eq!(
        secret_password(&env, "prod", "db").await.as_deref(),
        Some(CANARY)
    );
    assert_eq!(
        secret_password(&env, "prod", "db-json").await.as_deref(),
        Some(JSON_CANARY)
    );
    let live = env
        .get("v1", "Secret", Some("prod"), "db")
        .await
        .expect("db");
    assert!(live
        .metadata
        .labels
        .as_ref()
        .is_some_and(|l| l["team"] == "a"));
    let mut files: Vec<&str> = status["sealedSecrets"]
        .as_array()
        .expect("sealedSecrets")
        .iter()
        .filter_map(|u| u["file"].as_str())
        .collect();
    files.sort_unstable();
    assert_eq!(
        files,
        ["base/db-json.sops.json", "base/db.sops.yaml"],
        "{status:#}"
    );

    // A patch that adds plaintext to a SOPS Secret is refused, naming the field.
    let second = env
        .repo
        .commit_files(&overlay(true), "a plaintext patch")
        .expect("commit");
    env.annotate_gitsync(NS, "prod", "sealsync.dev/requestedAt", "1")
        .await;
    let status = env.wait_failed(NS, "prod", &second).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "DecryptionFailed", "{status:#}");
    assert!(
        message.starts_with("base/db.sops.yaml: ")
            && message.contains("stringData.extra is plaintext"),
        "{message}"
    );

    // A patch may not rewrite the file's rule so that a plaintext value passes as decrypted.
    let mut files = base.clone();
    files.push((
        "overlay/kustomization.yaml".to_owned(),
        format!("namespace: prod\nresources:\n- ../base\npatches:\n- target:\n    kind: Secret\n    name: db\n  patch: |\n    - op: replace\n      path: /sops/encrypted_regex\n      value: ^none$\n    - op: replace\n      path: /stringData/password\n      value: {PATCH_CANARY}\n"),
    ));
    let rule_patch = env
        .repo
        .commit_files(&files, "a rule patch")
        .expect("commit");
    env.annotate_gitsync(NS, "prod", "sealsync.dev/requestedAt", "rule")
        .await;
    let status = env.wait_failed(NS, "prod", &rule_patch).await;
    let (reason, message) = ready_reason(&status);
    assert_eq!(reason, "DecryptionFailed", "{status:#}");
    assert!(
        message.contains("its sops metadata is not that of the file it was rendered from"),
        "{message}"
    );
    assert_eq!(
        secret_password(&env, "prod", "db").await.as_deref(),
        Some(CANARY)
    );

    // Only Secrets: a SOPS-encrypted ConfigMap is refused by name.
    let configmap = sops
        .encrypt(
            &configmap_yaml("prod", "settings", "mode", "blue"),
            &recipients,
            &["encrypted_regex: ^data$"],
            "yaml",
        )
        .expect("encrypt");
    let mut files = overlay(false);
    files.push(("base/settings.sops.yaml".to_owned(), configmap));
    files[0].1 =
        "resources:\n- db.sops.yaml\n- db-json.sops.json\n- settings.sops.yaml\n".to_owned();
    let third = env
        .repo
        .commit_files(&files, "a SOPS ConfigMap")
        .expect("commit");
    env.annotate_gitsync(NS, "prod", "sealsync.dev/requestedAt", "2")
        .await;
    let status = env.wait_failed(NS, "prod", &third).await;
    let (_, message) = ready_reason(&status);
    assert!(message.contains("not a v1 Secret"), "{message}");
    assert_no_canary(&env, "prod").await;
}
