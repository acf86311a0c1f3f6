//! The key lifecycle end to end: the real `sealsync-controller` and `sealsync` binaries, the
//! test API server and a real `git daemon`. Rotation, retirement refused then accepted, and a
//! file that only a retired key opens.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use serde_json::{json, Value as Json};

const NS: &str = "shop";
const CANARY_OLD: &str = "canary-keys-old-6d1f0a93";
const CANARY_NEW: &str = "canary-keys-new-b27c4e18";

/// Every SealingKey of the controller's namespace, as JSON.
async fn sealing_keys(env: &Env) -> Vec<Json> {
    dynamic_api(
        &env.client,
        "sealsync.dev/v1",
        "SealingKey",
        Some(CONTROLLER_NS),
    )
    .await
    .list(&Default::default())
    .await
    .expect("list SealingKeys")
    .items
    .into_iter()
    .map(|o| serde_json::to_value(o).expect("json"))
    .collect()
}

async fn sealing_key_by_id(env: &Env, key_id: &str) -> Option<Json> {
    sealing_keys(env)
        .await
        .into_iter()
        .find(|sk| sk["status"]["keyId"] == key_id)
}

/// Waits until the SealingKey of `key_id` satisfies `check`.
async fn wait_key(env: &Env, key_id: &str, what: &str, check: impl Fn(&Json) -> bool) -> Json {
    wait_for_value(
        &format!("key {key_id}: {what}"),
        Duration::from_secs(30),
        || async { sealing_key_by_id(env, key_id).await.filter(|sk| check(sk)) },
        || env.controller.log_tail(30),
    )
    .await
}

/// The SealingKey of the first key, once the controller shows it as current and active.
async fn first_key(env: &Env) -> Json {
    wait_for_value(
        "the first SealingKey",
        Duration::from_secs(30),
        || async {
            sealing_keys(env)
                .await
                .into_iter()
                .find(|sk| sk["status"]["state"] == "Active" && sk["status"]["current"] == true)
        },
        || env.controller.log_tail(30),
    )
    .await
}

fn cli(env: &Env, args: &[&str]) -> (i32, String, String) {
    let kubeconfig = env.kubeconfig_arg();
    let mut all: Vec<&str> = args.to_vec();
    all.extend([
        "--kubeconfig",
        &kubeconfig,
        "--controller-namespace",
        CONTROLLER_NS,
    ]);
    run_cli_status(&all)
}

fn refetch(env: &Env) {
    let (code, _, err) = cli(
        env,
        &[
            "keys",
            "fetch",
            "-o",
            env.recipients.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_retire_refused_then_accepted_and_a_file_on_a_retired_key() {
    let env = Env::start(&[NS]).await;

    // The first key shows as a SealingKey, current and active.
    let first = first_key(&env).await;
    let old_id = first["status"]["keyId"]
        .as_str()
        .expect("key id")
        .to_owned();
    assert_eq!(first["metadata"]["name"], "sealsync-key-1");
    assert!(first["status"]["recipient"]
        .as_str()
        .is_some_and(|r| r.starts_with("age1")));

    // A file sealed to the first key only.
    let sealed_old = env.seal(&secret_yaml(NS, "db", "password", CANARY_OLD));
    let c1 = env
        .repo
        .commit_files(&[("apps/db.sealed.yaml", sealed_old.as_str())], "db")
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "apps"})).await;
    env.wait_applied(NS, "apps", &c1).await;
    wait_key(&env, &old_id, "one document", |sk| {
        sk["status"]["documents"] == 1
    })
    .await;
    let kubeconfig = env.kubeconfig_arg();
    let (code, _, err) = run_cli_status(&[
        "keys",
        "list",
        "--kubeconfig",
        &kubeconfig,
        "--controller-namespace",
        "elsewhere",
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no SealingKeys in namespace elsewhere")
            && err.contains("Pass --controller-namespace NS"),
        "{err}"
    );
    let (code, table, err) = cli(&env, &["keys", "list"]);
    assert_eq!(code, 0, "{err}");
    let row = table.lines().nth(1).expect("one key");
    assert!(
        row.starts_with(&old_id) && row.contains("Active") && row.contains('*'),
        "{table}"
    );

    // Rotation: the controller generates the new key; the CLI prints its recipient.
    let (code, recipient, err) = cli(&env, &["keys", "rotate"]);
    assert_eq!(code, 0, "{err}");
    assert!(recipient.trim().starts_with("age1"), "{recipient}");
    assert!(err.contains("it is now the current key"), "{err}");
    assert!(
        err.contains(&format!("sealsync keys retire {old_id}")),
        "{err}"
    );
    let new_key = sealing_keys(&env)
        .await
        .into_iter()
        .find(|sk| sk["status"]["current"] == true)
        .expect("a current key");
    let new_id = new_key["status"]["keyId"].as_str().expect("id").to_owned();
    assert_ne!(new_id, old_id);
    assert_eq!(new_key["status"]["recipient"], recipient.trim());
    wait_key(&env, &old_id, "no longer current", |sk| {
        sk["status"]["current"] == false
    })
    .await;
    refetch(&env);
    let published = std::fs::read_to_string(&env.recipients).expect("recipients");
    let order: Vec<&str> = published
        .lines()
        .filter(|l| l.starts_with("age1"))
        .collect();
    assert_eq!(order.len(), 2, "{published}");
    assert_eq!(
        order[0],
        recipient.trim(),
        "the new key comes first: {published}"
    );
    assert_eq!(env.controller.get("/v1/keys").expect("keys").1, published);

    // Retiring the current key, and a key a synced document needs, is refused.
    let (code, _, err) = cli(&env, &["keys", "retire", &new_id]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("(CurrentKey)") && err.contains("sealsync keys rotate"),
        "{err}"
    );
    let (code, _, err) = cli(&env, &["keys", "retire", &old_id]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("(InUse)")
            && err.contains("GitSync shop/apps: apps/db.sealed.yaml (Secret shop/db)"),
        "{err}"
    );
    assert!(
        env.get("v1", "Secret", Some(CONTROLLER_NS), "sealsync-key-1")
            .await
            .is_some(),
        "a refused retirement keeps the key"
    );

    // Sealed again to both keys: the current key opens it, so the old one is no longer used.
    let sealed_new = env.seal(&secret_yaml(NS, "db", "password", CANARY_NEW));
    let c2 = env
        .repo
        .commit_files(&[("apps/db.sealed.yaml", sealed_new.as_str())], "reseal")
        .expect("commit");
    let status = env.wait_applied(NS, "apps", &c2).await;
    assert_eq!(
        status["sealedSecrets"][0]["keyIds"],
        json!([new_id]),
        "{status:#}"
    );
    wait_key(&env, &old_id, "no documents", |sk| {
        sk["status"]["documents"] == 0
    })
    .await;
    wait_key(&env, &new_id, "one document", |sk| {
        sk["status"]["documents"] == 1 && sk["status"]["usedBy"][0]["file"] == "apps/db.sealed.yaml"
    })
    .await;

    let (code, _, err) = cli(&env, &["keys", "retire", &old_id]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains(&format!("Key {old_id} is retired")), "{err}");
    assert!(
        env.get("v1", "Secret", Some(CONTROLLER_NS), "sealsync-key-1")
            .await
            .is_none(),
        "the private key is deleted"
    );
    let retired = wait_key(&env, &old_id, "retired", |sk| {
        sk["status"]["state"] == "Retired"
    })
    .await;
    assert!(retired["status"]["retired"].is_string(), "{retired:#}");
    let (code, _, err) = cli(&env, &["keys", "retire", &old_id]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("already retired"), "{err}");
    refetch(&env);
    let published = std::fs::read_to_string(&env.recipients).expect("recipients");
    assert!(!published.contains(&old_id), "{published}");
    assert!(published.contains(&new_id), "{published}");

    // A file only the retired key opens fails with a status that says so; nothing changes.
    let c3 = env
        .repo
        .commit_files(
            &[("apps/db.sealed.yaml", sealed_old.as_str())],
            "back to the old key",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &c3).await;
    let message = condition(&status, "Ready").expect("Ready")["message"]
        .as_str()
        .expect("message")
        .to_owned();
    assert!(
        message.contains("apps/db.sealed.yaml")
            && message.contains(&format!("{old_id} (retired "))
            && message.contains("reseal"),
        "{message}"
    );
    assert_eq!(
        status["lastAppliedRevision"],
        format!("main@sha1:{c2}"),
        "{status:#}"
    );
    let secret = env.get("v1", "Secret", Some(NS), "db").await.expect("db");
    assert_eq!(secret_value(&secret, "password"), CANARY_NEW);

    // The key metrics: one active key, one retired; the failed revision does not count, the
    // last applied one does.
    let metrics = metrics_text(&env);
    for sample in [
        "sealsync_keys{state=\"Active\"} 1",
        "sealsync_keys{state=\"Retired\"} 1",
        &format!("sealsync_key_documents{{key_id=\"{new_id}\"}} 1"),
    ] {
        assert!(metrics.contains(sample), "{sample} in {metrics}");
    }

    // No value and no private key anywhere a user or an operator reads.
    let (_, listed, _) = cli(&env, &["keys", "list", "-o", "yaml"]);
    let events = events_json(&env, CONTROLLER_NS).await + &events_json(&env, NS).await;
    let keys_json = serde_json::to_string(&sealing_keys(&env).await).expect("json");
    for (place, text) in [
        ("the controller log", env.controller.log()),
        ("events", events),
        ("the SealingKeys", keys_json),
        ("keys list -o yaml", listed),
        ("/metrics", metrics_text(&env)),
        ("the GitSync status", status.to_string()),
    ] {
        for canary in [CANARY_OLD, CANARY_NEW, "AGE-SECRET-KEY-"] {
            assert!(!text.contains(canary), "{canary} in {place}");
        }
    }
}

/// Applies a GitSync following `repo_url` through `client`, polling every `interval`.
async fn apply_gitsync_with(client: &kube::Client, repo_url: &str, interval: &str) {
    let body = json!({
        "apiVersion": "sealsync.dev/v1",
        "kind": "GitSync",
        "metadata": {"name": "apps", "namespace": NS},
        "spec": {"url": repo_url, "interval": interval, "path": "apps"},
    });
    dynamic_api(client, "sealsync.dev/v1", "GitSync", Some(NS))
        .await
        .patch(
            "apps",
            &kube::api::PatchParams::apply("e2e-test").force(),
            &kube::api::Patch::Apply(&body),
        )
        .await
        .expect("apply the GitSync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_in_one_cluster_restore_in_a_rebuilt_one_and_the_same_repository_syncs() {
    // The cluster admin's offline recovery key; only its public half reaches the controller.
    let offline = tempfile::tempdir().expect("tmp");
    let recovery_key = offline.path().join("recovery.key");
    let recovery_key_arg = recovery_key.to_str().expect("utf8").to_owned();
    let recipient = run_cli_ok(&["keys", "generate", "-o", &recovery_key_arg]);
    let recipients_file = offline.path().join("recovery-recipients.txt");
    std::fs::write(
        &recipients_file,
        format!("# the security team\n{recipient}"),
    )
    .expect("write");
    let env = Env::start_with(
        &[NS],
        &[
            "--recovery-recipients-file".to_owned(),
            recipients_file.to_str().expect("utf8").to_owned(),
        ],
        &[],
    )
    .await;

    // Two keys: the first, and one from a rotation; a file sealed to each.
    let sealed_old = env.seal(&secret_yaml(NS, "db", "password", CANARY_OLD));
    let (code, _, err) = cli(&env, &["keys", "rotate"]);
    assert_eq!(
        code,
        0,
        "{err}\ncontroller log:\n{}",
        env.controller.log_tail(30)
    );
    refetch(&env);
    let sealed_new = env.seal(&secret_yaml(NS, "api", "token", CANARY_NEW));
    let commit = env
        .repo
        .commit_files(
            &[
                ("apps/db.sealed.yaml", sealed_old.as_str()),
                ("apps/api.sealed.yaml", sealed_new.as_str()),
            ],
            "two secrets",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "apps"})).await;
    env.wait_applied(NS, "apps", &commit).await;
    let key_ids: Vec<String> = sealing_keys(&env)
        .await
        .iter()
        .filter_map(|sk| sk["status"]["keyId"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(key_ids.len(), 2);

    // The backup holds both keys, and Go age opens it with the recovery key.
    let backup = offline.path().join("backup.age");
    let backup_arg = backup.to_str().expect("utf8").to_owned();
    let (code, _, err) = cli(&env, &["keys", "backup", "-o", &backup_arg]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("the backup of 2 key(s)"), "{err}");
    let armored = std::fs::read_to_string(&backup).expect("backup");
    assert!(
        armored.starts_with("-----BEGIN AGE ENCRYPTED FILE-----"),
        "{armored}"
    );
    let opened = std::process::Command::new("age")
        .args(["-d", "-i", &recovery_key_arg, &backup_arg])
        .output()
        .expect("run age");
    assert!(
        opened.status.success(),
        "{}",
        String::from_utf8_lossy(&opened.stderr)
    );
    let plaintext = String::from_utf8(opened.stdout).expect("utf8");
    assert_eq!(plaintext.matches("AGE-SECRET-KEY-1").count(), 2);
    for id in &key_ids {
        assert!(plaintext.contains(id.as_str()), "{id} in the backup");
    }
    drop(plaintext);

    // A key Secret deleted by hand shows as Missing, and the backup brings it back.
    let first_id = sealing_keys(&env)
        .await
        .into_iter()
        .find(|sk| sk["metadata"]["name"] == "sealsync-key-1")
        .and_then(|sk| sk["status"]["keyId"].as_str().map(str::to_owned))
        .expect("the first key");
    dynamic_api(&env.client, "v1", "Secret", Some(CONTROLLER_NS))
        .await
        .delete("sealsync-key-1", &Default::default())
        .await
        .expect("delete the key Secret");
    let missing = wait_key(&env, &first_id, "missing", |sk| {
        sk["status"]["state"] == "Missing"
    })
    .await;
    assert!(
        condition(&missing["status"], "Ready").expect("Ready")["message"]
            .as_str()
            .is_some_and(|m| m.contains("sealsync keys restore")),
        "{missing:#}"
    );
    let (code, _, err) = cli(
        &env,
        &[
            "keys",
            "restore",
            "-f",
            &backup_arg,
            "-i",
            &recovery_key_arg,
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "Key {first_id}: restored as Secret {CONTROLLER_NS}/sealsync-key-1"
        )),
        "{err}"
    );
    wait_key(&env, &first_id, "active again", |sk| {
        sk["status"]["state"] == "Active"
    })
    .await;

    // A rebuilt cluster: its controller starts with a key of its own; the restore adds the
    // old cluster's keys beside it, and the same repository syncs there.
    let (cluster_b, kubeconfig_b, client_b) = start_cluster(&[NS]).await;
    let dir_b = tempfile::tempdir().expect("tmp");
    let mut controller_b = start_controller(&kubeconfig_b, dir_b.path(), &[], &[]).await;
    let kubeconfig_b_arg = kubeconfig_b.to_str().expect("utf8").to_owned();
    // The GitSync first, polling once an hour: without the old keys it cannot decrypt.
    apply_gitsync_with(&client_b, &env.repo.git_url(), "1h").await;
    let api_b = dynamic_api(&client_b, "sealsync.dev/v1", "GitSync", Some(NS)).await;
    let status_of = |api: kube::Api<kube::api::DynamicObject>| async move {
        api.get_opt("apps")
            .await
            .expect("get")
            .map(|o| o.data["status"].clone())
            .unwrap_or(Json::Null)
    };
    wait_for_value(
        "the rebuilt cluster to fail to decrypt without the old keys",
        Duration::from_secs(60),
        || async {
            let status = status_of(api_b.clone()).await;
            (condition(&status, "Ready").is_some_and(|c| c["reason"] == "DecryptionFailed"))
                .then_some(())
        },
        || controller_b.log_tail(30),
    )
    .await;
    let restore_b = run_cli_status(&[
        "keys",
        "restore",
        "-f",
        &backup_arg,
        "-i",
        &recovery_key_arg,
        "--kubeconfig",
        &kubeconfig_b_arg,
        "--controller-namespace",
        CONTROLLER_NS,
    ]);
    assert_eq!(restore_b.0, 0, "{}", restore_b.2);
    assert!(restore_b.2.contains("Restored 2 key(s)"), "{}", restore_b.2);
    assert!(
        restore_b.2.contains(&format!(
            "Key {first_id}: restored as Secret {CONTROLLER_NS}/sealsync-key-{first_id}"
        )),
        "the rebuilt cluster's own first key keeps its name: {}",
        restore_b.2
    );
    // New keys reconcile the GitSyncs that failed to decrypt at once, not an hour later.
    let want = format!("main@sha1:{commit}");
    wait_for_value(
        "the rebuilt cluster to apply the same revision once the keys are restored",
        Duration::from_secs(60),
        || async {
            let gs = status_of(api_b.clone()).await;
            (gs["lastAppliedRevision"] == want.as_str() && ready(&gs) == Some(true)).then_some(())
        },
        || controller_b.log_tail(30),
    )
    .await;
    let secrets_b = dynamic_api(&client_b, "v1", "Secret", Some(NS)).await;
    let db = secrets_b.get("db").await.expect("db");
    assert_eq!(secret_value(&db, "password"), CANARY_OLD);
    let api = secrets_b.get("api").await.expect("api");
    assert_eq!(secret_value(&api, "token"), CANARY_NEW);
    let (code, listed, err) = run_cli_status(&[
        "keys",
        "list",
        "--kubeconfig",
        &kubeconfig_b_arg,
        "--controller-namespace",
        CONTROLLER_NS,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(listed.lines().count(), 4, "three keys: {listed}");

    // No private key and no value in logs, events or CLI output; the backup on disk is
    // ciphertext only.
    let log_b = controller_b.log();
    controller_b.kill().expect("stop");
    drop(cluster_b);
    for (place, text) in [
        ("the controller log", env.controller.log()),
        ("the rebuilt cluster's controller log", log_b),
        ("events", events_json(&env, CONTROLLER_NS).await),
        ("keys restore output", restore_b.1 + &restore_b.2),
        ("the backup file", armored),
        ("/metrics", metrics_text(&env)),
    ] {
        for canary in [CANARY_OLD, CANARY_NEW, "AGE-SECRET-KEY-"] {
            assert!(!text.contains(canary), "{canary} in {place}");
        }
    }
}

/// Service accounts `dev` (allowed `create` on sealingkeys/rewrap) and `intruder` (not), and
/// a token file for each.
async fn rewrap_callers(env: &Env) -> (String, String) {
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: dev, namespace: {NS}}}\n---\n\
             apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: intruder, namespace: {NS}}}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: sealsync-rewrap, namespace: {CONTROLLER_NS}}}\n\
             rules:\n- apiGroups: [sealsync.dev]\n  resources: [sealingkeys/rewrap]\n  verbs: [create]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: dev-rewrap, namespace: {CONTROLLER_NS}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: sealsync-rewrap}}\n\
             subjects:\n- {{kind: ServiceAccount, name: dev, namespace: {NS}}}\n"
        ),
    )
    .await;
    (
        request_token(&env.client, NS, "dev").await,
        request_token(&env.client, NS, "intruder").await,
    )
}

fn rewrap_body(documents: &[&str], recipients: &[&str]) -> Vec<u8> {
    serde_json::to_vec(&json!({"documents": documents, "recipients": recipients})).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_through_the_controller_and_the_rewrap_endpoint_refuses_what_it_must() {
    // A peer cluster (staging) whose recipient the controller may also wrap to.
    let peers = tempfile::tempdir().expect("tmp");
    let (_, _, generated) = run_cli_status(&["keys", "generate"]);
    let peer = generated
        .trim()
        .strip_prefix("Public key: ")
        .expect("a recipient")
        .to_owned();
    let peer_file = peers.path().join("peers.txt");
    std::fs::write(&peer_file, format!("# staging\n{peer}\n")).expect("write");
    let env = Env::start_with(
        &[NS],
        &[
            "--peer-recipients-file".to_owned(),
            peer_file.to_str().expect("utf8").to_owned(),
        ],
        &[],
    )
    .await;
    let sealed_old = env.seal(&secret_yaml(NS, "db", "password", CANARY_OLD));
    let c1 = env
        .repo
        .commit_files(&[("apps/db.sealed.yaml", sealed_old.as_str())], "db")
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "apps"})).await;
    env.wait_applied(NS, "apps", &c1).await;
    let old_id = first_key(&env).await["status"]["keyId"]
        .as_str()
        .expect("id")
        .to_owned();
    let (code, new_recipient, err) = cli(&env, &["keys", "rotate"]);
    assert_eq!(code, 0, "{err}");
    let new_recipient = new_recipient.trim().to_owned();
    let (dev, intruder) = rewrap_callers(&env).await;

    // A developer without any identity re-wraps the file through the controller.
    let work = tempfile::tempdir().expect("tmp");
    let file = work.path().join("db.sealed.yaml");
    std::fs::write(&file, &sealed_old).expect("write");
    let token_file = work.path().join("dev.token");
    std::fs::write(&token_file, &dev).expect("write");
    let url = format!("http://{}", env.controller.http_addr());
    let (code, _, err) = cli(
        &env,
        &[
            "reseal",
            "--controller",
            "--controller-url",
            &url,
            "--token-file",
            token_file.to_str().expect("utf8"),
            "--recipient",
            &new_recipient,
            file.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{err}\n{}", env.controller.log_tail(20));
    assert!(
        err.contains("re-wrapped 1 sealed document(s) in 1 file(s) through the controller"),
        "{err}"
    );
    let resealed = std::fs::read_to_string(&file).expect("read");
    let value_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.trim_start().starts_with("password:"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        value_lines(&resealed),
        value_lines(&sealed_old),
        "value lines stay"
    );
    assert_ne!(resealed, sealed_old);
    assert!(!resealed.contains(&old_id), "{resealed}");

    // Applied, it opens with the new key only, and the old key can be retired.
    let c2 = env
        .repo
        .commit_files(&[("apps/db.sealed.yaml", resealed.as_str())], "resealed")
        .expect("commit");
    let status = env.wait_applied(NS, "apps", &c2).await;
    assert_ne!(status["sealedSecrets"][0]["keyIds"][0], old_id.as_str());
    wait_key(&env, &old_id, "unused", |sk| sk["status"]["documents"] == 0).await;
    let (code, _, err) = cli(&env, &["keys", "retire", &old_id]);
    assert_eq!(code, 0, "{err}");

    // The endpoint: no token, a caller without the permission, an untrusted recipient, a
    // document whose metadata was edited, and a burst.
    refetch(&env);
    let current = env.seal(&secret_yaml(NS, "db", "password", CANARY_NEW));
    let body = rewrap_body(&[&current], &[]);
    let (code, text) = env.controller.post("/v1/rewrap", &[], &body).expect("post");
    assert_eq!(code, 401, "{text}");
    let bearer = |t: &str| format!("Bearer {t}");
    let intruder_auth = bearer(&intruder);
    let (code, text) = env
        .controller
        .post("/v1/rewrap", &[("authorization", &intruder_auth)], &body)
        .expect("post");
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("may not create sealingkeys/rewrap"), "{text}");
    let dev_auth = bearer(&dev);
    let (_, _, generated) = run_cli_status(&["keys", "generate"]);
    let stranger = generated
        .trim()
        .strip_prefix("Public key: ")
        .expect("a recipient")
        .to_owned();
    let (code, text) = env
        .controller
        .post(
            "/v1/rewrap",
            &[("authorization", &dev_auth)],
            &rewrap_body(&[&current], &[&stranger]),
        )
        .expect("post");
    assert_eq!(code, 403, "{text}");
    assert!(text.contains("not trusted by this cluster"), "{text}");
    // Moving a document to a peer cluster needs a permission of its own.
    let (code, text) = env
        .controller
        .post(
            "/v1/rewrap",
            &[("authorization", &dev_auth)],
            &rewrap_body(&[&current], &[&peer]),
        )
        .expect("post");
    assert_eq!(code, 403, "{text}");
    assert!(
        text.contains("may not create sealingkeys/rewrap-peers"),
        "{text}"
    );
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: release, namespace: {NS}}}\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: sealsync-rewrap-peers, namespace: {CONTROLLER_NS}}}\n\
             rules:\n- apiGroups: [sealsync.dev]\n  resources: [sealingkeys/rewrap, sealingkeys/rewrap-peers]\n  verbs: [create]\n---\n\
             apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: release-rewrap-peers, namespace: {CONTROLLER_NS}}}\n\
             roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: sealsync-rewrap-peers}}\n\
             subjects:\n- {{kind: ServiceAccount, name: release, namespace: {NS}}}\n"
        ),
    )
    .await;
    let release = bearer(&request_token(&env.client, NS, "release").await);
    let (code, text) = env
        .controller
        .post(
            "/v1/rewrap",
            &[("authorization", &release)],
            &rewrap_body(&[&current], &[&new_recipient, &peer]),
        )
        .expect("post");
    assert_eq!(code, 200, "{text}");
    // Widening the scope by editing the document does not survive: the binding sealed in
    // the envelope wins.
    let moved = current.replace(&format!("namespace: {NS}"), "namespace: other");
    assert_ne!(moved, current);
    let (code, text) = post_within_limit(
        &env,
        &[("x-sealsync-token", &dev)],
        &rewrap_body(&[&moved], &[]),
    )
    .await;
    assert_eq!(code, 422, "{text}");
    assert!(text.contains("namespace"), "{text}");
    let (code, text) = post_within_limit(&env, &[("authorization", &dev_auth)], &body).await;
    assert_eq!(code, 200, "{text}");
    let answer: Json = serde_json::from_str(&text).expect("json");
    assert!(answer["documents"][0]
        .as_str()
        .is_some_and(|d| d.contains("kind: SealedSecret")));
    let mut limited = 0;
    for _ in 0..8 {
        let (code, _) = env
            .controller
            .post("/v1/rewrap", &[("authorization", &dev_auth)], &body)
            .expect("post");
        if code == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "a burst gets 429s");
    let metrics = metrics_text(&env);
    for result in [
        "ok",
        "unauthenticated",
        "forbidden",
        "untrusted_recipient",
        "unopenable",
        "rate_limited",
    ] {
        assert!(
            metrics.contains(&format!(
                "sealsync_rewrap_requests_total{{result=\"{result}\"}}"
            )),
            "{result} counted: {metrics}"
        );
    }

    // No value, token or private key in the log, events or metrics.
    for (place, text) in [
        ("the controller log", env.controller.log()),
        ("events", events_json(&env, CONTROLLER_NS).await),
        ("/metrics", metrics),
        ("the answer", text),
    ] {
        for canary in [
            CANARY_OLD,
            CANARY_NEW,
            "AGE-SECRET-KEY-",
            dev.as_str(),
            intruder.as_str(),
        ] {
            assert!(!text.contains(canary), "a canary in {place}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_rotation_and_retirement_of_unused_keys_never_retire_a_needed_key() {
    let env = Env::start_with(
        &[NS],
        &[
            "--key-rotation-period".to_owned(),
            "8s".to_owned(),
            "--retire-unused-after".to_owned(),
            "3s".to_owned(),
        ],
        &[],
    )
    .await;
    let first_id = first_key(&env).await["status"]["keyId"]
        .as_str()
        .expect("id")
        .to_owned();
    let sealed = env.seal(&secret_yaml(NS, "db", "password", CANARY_OLD));
    let commit = env
        .repo
        .commit_files(&[("apps/db.sealed.yaml", sealed.as_str())], "db")
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "apps"})).await;
    env.wait_applied(NS, "apps", &commit).await;

    // Two scheduled rotations: the second key, unused and no longer current, is retired; the
    // first one, which a synced document needs, is not.
    let keys = wait_for_value(
        "a scheduled rotation to retire the unused second key",
        Duration::from_secs(60),
        || async {
            let keys = sealing_keys(&env).await;
            let retired = keys.iter().any(|sk| {
                sk["status"]["state"] == "Retired" && sk["status"]["keyId"] != first_id.as_str()
            });
            retired.then_some(keys)
        },
        || env.controller.log_tail(30),
    )
    .await;
    let scheduled = keys
        .iter()
        .filter(|sk| {
            sk["metadata"]["annotations"]["sealsync.dev/rotated-by"] == "key-rotation-period"
        })
        .count();
    assert!(scheduled >= 2, "{keys:#?}");
    let first = sealing_key_by_id(&env, &first_id).await.expect("first key");
    assert_eq!(first["status"]["state"], "Active", "{first:#}");
    assert_eq!(first["status"]["documents"], 1, "{first:#}");
    let status = env.gitsync_status(NS, "apps").await;
    assert_eq!(ready(&status), Some(true), "{status:#}");
}

/// This machine's address on its default route: one the API server may proxy to (it refuses
/// loopback endpoints, as kube-apiserver does).
fn host_address() -> std::net::IpAddr {
    let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("a UDP socket");
    probe.connect("203.0.113.1:9").expect(
        "this test needs an address other than loopback (a default route) for the API server's service proxy to reach the controller",
    );
    probe.local_addr().expect("local address").ip()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reseal_through_the_api_servers_service_proxy_as_kubeseal_reaches_its_controller() {
    let address = host_address();
    let env = Env::start_with(
        &[NS],
        &["--http-addr".to_owned(), format!("{address}:0")],
        &[],
    )
    .await;
    let port = env.controller.http_addr().port();
    // What an install has: the controller's Pod (here a record of this process, with its
    // address in the status as a kubelet reports it), the Service, and its Endpoints. The API
    // server proxies only to addresses of pods.
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: sealsync-controller-0, namespace: {CONTROLLER_NS}}}\n\
             spec:\n  containers:\n  - {{name: controller, image: sealsync-controller}}\n"
        ),
    )
    .await;
    dynamic_api(&env.client, "v1", "Pod", Some(CONTROLLER_NS))
        .await
        .patch_status(
            "sealsync-controller-0",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({
                "status": {"podIP": address.to_string(), "podIPs": [{"ip": address.to_string()}]}
            })),
        )
        .await
        .expect("the Pod's status");
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: sealsync-controller, namespace: {CONTROLLER_NS}}}\n\
             spec:\n  ports:\n  - {{name: http, port: 8080, targetPort: {port}}}\n---\n\
             apiVersion: v1\nkind: Endpoints\nmetadata: {{name: sealsync-controller, namespace: {CONTROLLER_NS}}}\n\
             subsets:\n- addresses:\n  - ip: \"{address}\"\n    targetRef: {{kind: Pod, namespace: {CONTROLLER_NS}, name: sealsync-controller-0}}\n  \
             ports: [{{name: http, port: {port}}}]\n"
        ),
    )
    .await;
    let (dev, _) = rewrap_callers(&env).await;
    first_key(&env).await;
    let sealed_old = env.seal(&secret_yaml(NS, "db", "password", CANARY_OLD));
    let (code, new_recipient, err) = cli(&env, &["keys", "rotate"]);
    assert_eq!(code, 0, "{err}");
    let work = tempfile::tempdir().expect("tmp");
    let file = work.path().join("db.sealed.yaml");
    std::fs::write(&file, &sealed_old).expect("write");
    let token_file = work.path().join("dev.token");
    std::fs::write(&token_file, &dev).expect("write");
    let (code, _, err) = cli(
        &env,
        &[
            "reseal",
            "--controller",
            "--token-file",
            token_file.to_str().expect("utf8"),
            "--recipient",
            new_recipient.trim(),
            file.to_str().expect("utf8"),
        ],
    );
    assert_eq!(code, 0, "{err}\n{}", env.controller.log_tail(20));
    let resealed = std::fs::read_to_string(&file).expect("read");
    let new_id = wait_for_value(
        "the new key",
        Duration::from_secs(10),
        || async {
            sealing_keys(&env)
                .await
                .into_iter()
                .find(|sk| sk["status"]["current"] == true)
                .and_then(|sk| sk["status"]["keyId"].as_str().map(str::to_owned))
        },
        || env.controller.log_tail(20),
    )
    .await;
    assert!(resealed.contains(&new_id), "{resealed}");
    // The API server consumed Authorization; the token reached the controller in
    // X-Sealsync-Token, and the controller knew the caller.
    let log = env.controller.log();
    assert!(
        log.contains("caller=system:serviceaccount:shop:dev"),
        "{}",
        env.controller.log_tail(20)
    );
    assert!(!log.contains(&dev), "the token is never logged");
}

/// Posts to `/v1/rewrap` as soon as the caller's rate limit lets it through: a 429 (which the
/// limiter answers with `Retry-After`) is waited out, so no test depends on how fast a bucket
/// refills on a loaded machine.
async fn post_within_limit(env: &Env, headers: &[(&str, &str)], body: &[u8]) -> (u16, String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = env
            .controller
            .post("/v1/rewrap", headers, body)
            .expect("post");
        if code != 429 {
            return (code, text);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still rate-limited after 30 s: {text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
