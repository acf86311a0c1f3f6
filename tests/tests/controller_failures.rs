//! The controller when things go wrong: wrong keys, moved and plaintext Secrets, Git down,
//! API faults mid-apply, `kill -9`, `git revert`, CRDs and Namespaces in the same revision,
//! and deleting a GitSync. Real binaries, the test API server and a real `git daemon`.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use serde_json::json;

const NS: &str = "shop";
const CANARY: &str = "canary-failures-0b8e61d2";

/// Waits until Ready is False with `reason` and a message that contains `needle`.
async fn wait_reason(env: &Env, name: &str, reason: &str, needle: &str) -> serde_json::Value {
    wait_for_value(
        &format!("Ready=False {reason}"),
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(NS, name).await;
            let hit = condition(&status, "Ready").is_some_and(|c| {
                c["status"] == "False"
                    && c["reason"] == reason
                    && c["message"].as_str().is_some_and(|m| m.contains(needle))
            });
            hit.then_some(status)
        },
        || env.controller.log_tail(30),
    )
    .await
}

fn ready_message(status: &serde_json::Value) -> String {
    condition(status, "Ready")
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_moved_and_plaintext_secrets_are_refused_by_file() {
    let env = Env::start(&[NS]).await;
    let good = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "blue"))],
            "good",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    env.wait_applied(NS, "apps", &good).await;

    // Sealed to a key the cluster does not hold.
    let other = run_cli_ok(&["keys", "generate"]);
    let other_recipient = other
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key line")
        .to_owned();
    let wrong = run_cli(
        &["seal", "--recipient", &other_recipient],
        &secret_yaml(NS, "db", "password", CANARY),
    );
    let commit = env
        .repo
        .commit_files(
            &[
                ("db.sealed.yaml", wrong.as_str()),
                ("extra.yaml", &configmap_yaml(NS, "extra", "k", "v")),
            ],
            "wrong key",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &commit).await;
    assert_eq!(
        condition(&status, "Ready").expect("Ready")["reason"],
        "DecryptionFailed"
    );
    let message = ready_message(&status);
    assert!(
        message.starts_with("db.sealed.yaml: document 1"),
        "{message}"
    );
    assert_eq!(
        condition(&status, "Stalled").expect("Stalled")["status"],
        "True"
    );
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "extra")
        .await
        .is_none());

    // Sealed for shop/db, then moved to shop/other by editing the name.
    let sealed = env.seal(&secret_yaml(NS, "db", "password", CANARY));
    let moved = sealed.replacen("name: db", "name: other", 1);
    let commit = env
        .repo
        .commit_files(&[("db.sealed.yaml", moved.as_str())], "moved")
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &commit).await;
    let message = ready_message(&status);
    assert!(
        message.contains("db.sealed.yaml") && message.contains("mismatch"),
        "{message}"
    );

    // A plaintext Secret is refused, with the advice to seal it ...
    let commit = env
        .repo
        .commit_files(
            &[(
                "db.sealed.yaml",
                secret_yaml(NS, "db", "password", CANARY).as_str(),
            )],
            "plaintext",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &commit).await;
    let message = ready_message(&status);
    assert!(message.contains("sealsync seal"), "{message}");
    assert!(env.get("v1", "Secret", Some(NS), "db").await.is_none());

    // ... unless the GitSync allows it.
    env.apply_gitsync(NS, "apps", json!({"allowPlaintextSecrets": true}))
        .await;
    env.wait_applied(NS, "apps", &commit).await;
    assert!(env.get("v1", "Secret", Some(NS), "db").await.is_some());

    let log = env.controller.log();
    assert!(
        !log.contains(CANARY),
        "the controller log holds a secret value"
    );
    let status = env.gitsync_status(NS, "apps").await.to_string();
    assert!(!status.contains(CANARY), "the status holds a secret value");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_unreachable_keeps_the_last_good_state() {
    let env = Env::start(&[NS]).await;
    let sealed = env.seal(&secret_yaml(NS, "db", "password", CANARY));
    let good = env
        .repo
        .commit_files(&[("db.sealed.yaml", sealed.as_str())], "good")
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    env.wait_applied(NS, "apps", &good).await;

    env.apply_gitsync(NS, "apps", json!({"url": "git://127.0.0.1:9/apps"}))
        .await;
    let status = wait_reason(&env, "apps", "FetchFailed", "git://127.0.0.1:9/apps").await;
    assert_eq!(status["lastAppliedRevision"], format!("main@sha1:{good}"));
    assert_eq!(
        condition(&status, "Reconciling").expect("Reconciling")["reason"],
        "ProgressingWithRetry"
    );
    let secret = env.get("v1", "Secret", Some(NS), "db").await.expect("kept");
    assert_eq!(secret_value(&secret, "password"), CANARY);

    // A branch that does not exist names itself.
    env.apply_gitsync(
        NS,
        "apps",
        json!({"url": env.repo.git_url(), "ref": {"branch": "nope"}}),
    )
    .await;
    let status = wait_reason(&env, "apps", "FetchFailed", "branch \"nope\"").await;
    assert_eq!(status["lastAppliedRevision"], format!("main@sha1:{good}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_mid_apply_retry_and_converge() {
    let env = Env::start(&[NS]).await;
    let files: Vec<(String, String)> = (0..10)
        .map(|i| {
            (
                format!("cm-{i}.yaml"),
                configmap_yaml(NS, &format!("cm-{i}"), "k", "v"),
            )
        })
        .collect();
    let commit = env.repo.commit_files(&files, "ten").expect("commit");
    // The first writes fail with 500 and 503; the controller must retry and converge.
    env.faults().fail_next(
        3,
        Some("PATCH"),
        "/api/v1/namespaces/shop/configmaps/cm-5",
        500,
    );
    env.faults().fail_next(
        2,
        Some("PATCH"),
        "/api/v1/namespaces/shop/configmaps/cm-7",
        503,
    );
    env.apply_gitsync(NS, "apps", json!({})).await;
    let status = env.wait_applied(NS, "apps", &commit).await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(10)
    );
    for i in 0..10 {
        assert!(env
            .get("v1", "ConfigMap", Some(NS), &format!("cm-{i}"))
            .await
            .is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_minus_nine_half_way_converges_after_restart() {
    let mut env = Env::start(&[NS]).await;
    let files: Vec<(String, String)> = (0..60)
        .map(|i| {
            (
                format!("cm-{i:02}.yaml"),
                configmap_yaml(NS, &format!("cm-{i:02}"), "k", "v"),
            )
        })
        .collect();
    let commit = env.repo.commit_files(&files, "sixty").expect("commit");
    // Slow writes, so that the kill lands in the middle of the apply.
    env.faults().add_latency(
        Some("PATCH"),
        "/api/v1/namespaces/shop/configmaps",
        Duration::from_millis(60),
    );
    env.apply_gitsync(NS, "apps", json!({})).await;
    let cms = dynamic_api(&env.client, "v1", "ConfigMap", Some(NS)).await;
    wait_for(
        "some objects to be written",
        Duration::from_secs(60),
        || async {
            cms.list(&Default::default())
                .await
                .map(|l| l.items.len() >= 5)
                .unwrap_or(false)
        },
    )
    .await;
    env.controller.kill().expect("kill -9");
    let written = cms
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .len();
    assert!(
        written < 60,
        "the kill came too late to test anything ({written} written)"
    );
    env.faults().clear_faults();
    tokio::task::block_in_place(|| env.controller.restart()).expect("restart");
    let status = env.wait_applied(NS, "apps", &commit).await;
    let entries = status["inventory"]["entries"]
        .as_array()
        .expect("inventory");
    assert_eq!(entries.len(), 60);
    let names: std::collections::BTreeSet<String> = cms
        .list(&Default::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|o| o.metadata.name)
        .filter(|n| n.starts_with("cm-"))
        .collect();
    assert_eq!(names.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_revert_rolls_the_cluster_back() {
    let env = Env::start(&[NS]).await;
    let v1 = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "blue"))],
            "v1",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    env.wait_applied(NS, "apps", &v1).await;
    let v2 = env
        .repo
        .commit_files(
            &[
                ("cm.yaml", configmap_yaml(NS, "settings", "mode", "red")),
                ("new.yaml", configmap_yaml(NS, "added", "k", "v")),
            ],
            "v2",
        )
        .expect("commit");
    env.wait_applied(NS, "apps", &v2).await;
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "added")
        .await
        .is_some());

    let reverted = env.repo.revert(&v2).expect("git revert");
    env.wait_applied(NS, "apps", &reverted).await;
    let cm = env
        .get("v1", "ConfigMap", Some(NS), "settings")
        .await
        .expect("settings");
    assert_eq!(cm.data["data"]["mode"], "blue");
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "added")
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_and_namespaces_apply_before_what_needs_them_and_deletion_prunes() {
    let env = Env::start(&[NS]).await;
    let crd = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
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
              size: {type: integer}
"#;
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n  namespace: fresh\nspec:\n  size: 3\n";
    let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fresh\n";
    let cm = configmap_yaml("fresh", "inside", "k", "v");
    let commit = env
        .repo
        .commit_files(
            &[
                ("a-widget.yaml", widget),
                ("b-cm.yaml", cm.as_str()),
                ("crd.yaml", crd),
                ("ns.yaml", namespace),
            ],
            "crd, namespace and their objects",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    let status = env.wait_applied(NS, "apps", &commit).await;
    let ids: Vec<&str> = status["inventory"]["entries"]
        .as_array()
        .expect("inventory")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert!(ids.contains(&"fresh_w_example.com_Widget"), "{ids:?}");
    assert!(
        ids.contains(&"_widgets.example.com_apiextensions.k8s.io_CustomResourceDefinition"),
        "{ids:?}"
    );
    assert!(env
        .get("example.com/v1", "Widget", Some("fresh"), "w")
        .await
        .is_some());

    // Deleting the GitSync prunes what it applied.
    dynamic_api(&env.client, "sealsync.dev/v1", "GitSync", Some(NS))
        .await
        .delete("apps", &Default::default())
        .await
        .expect("delete the GitSync");
    wait_for(
        "the GitSync to be gone",
        Duration::from_secs(60),
        || async { env.gitsync_status(NS, "apps").await.is_null() },
    )
    .await;
    assert!(env
        .get("v1", "ConfigMap", Some("fresh"), "inside")
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_http_auth_failures_and_no_credentials_in_clear_text() {
    const GIT_PASSWORD: &str = "git-password-canary-4e1d";
    let env = Env::start(&[NS]).await;
    let git = tokio::task::spawn_blocking(|| {
        sealsync_tests::git::GitServer::start_with_basic_auth("deploy", GIT_PASSWORD)
            .expect("git server with basic auth")
    })
    .await
    .expect("join");
    let repo = git.create_repo("private").expect("repo");
    repo.commit_files(
        &[("cm.yaml", configmap_yaml(NS, "private", "k", "v"))],
        "first",
    )
    .expect("commit");

    // The server asks for credentials and none are configured.
    env.apply_gitsync(NS, "private", json!({"url": repo.http_url()}))
        .await;
    let status = wait_reason(&env, "private", "AuthenticationFailed", "spec.secretRef").await;
    assert!(status["lastAppliedRevision"].is_null());

    // Credentials over plain http are refused before anything is sent.
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-auth\n  namespace: {NS}\nstringData:\n  username: deploy\n  password: {GIT_PASSWORD}\n"
        ),
    )
    .await;
    env.apply_gitsync(NS, "private", json!({"secretRef": {"name": "git-auth"}}))
        .await;
    wait_reason(&env, "private", "InvalidSpec", "only over https://").await;

    // A secretRef to nothing names the Secret.
    env.apply_gitsync(
        NS,
        "private",
        json!({"url": "https://127.0.0.1:9/private.git", "secretRef": {"name": "missing"}}),
    )
    .await;
    wait_reason(&env, "private", "AuthenticationFailed", "missing").await;
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "private")
        .await
        .is_none());

    let log = env.controller.log();
    assert!(
        !log.contains(GIT_PASSWORD),
        "the controller log holds the Git password"
    );
    let status = env.gitsync_status(NS, "private").await.to_string();
    assert!(
        !status.contains(GIT_PASSWORD),
        "the status holds the Git password"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_change_needs_force() {
    let env = Env::start(&[NS]).await;
    let frozen = |value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: frozen\n  namespace: {NS}\nimmutable: true\ndata:\n  k: {value}\n")
    };
    let first = env
        .repo
        .commit_files(&[("frozen.yaml", frozen("one"))], "first")
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    env.wait_applied(NS, "apps", &first).await;

    let second = env
        .repo
        .commit_files(
            &[
                ("frozen.yaml", frozen("two")),
                ("other.yaml", configmap_yaml(NS, "other", "k", "v")),
            ],
            "second",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &second).await;
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "ApplyFailed", "{status:#}");
    let message = ready_message(&status);
    assert!(
        message.contains("frozen.yaml") && message.contains("spec.force"),
        "{message}"
    );
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "other")
        .await
        .is_none());

    env.apply_gitsync(NS, "apps", json!({"force": true})).await;
    env.wait_applied(NS, "apps", &second).await;
    let cm = env
        .get("v1", "ConfigMap", Some(NS), "frozen")
        .await
        .expect("recreated");
    assert_eq!(cm.data["data"]["k"], "two");
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "other")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guards_against_colliding_and_dangerous_revisions() {
    let env = Env::start(&[NS]).await;
    let first = env
        .repo
        .commit_files(
            &[("a/cm.yaml", configmap_yaml(NS, "shared", "k", "a"))],
            "a",
        )
        .expect("commit");
    env.apply_gitsync(NS, "first", json!({"path": "a"})).await;
    env.wait_applied(NS, "first", &first).await;

    // A second GitSync may not take over the first one's object.
    let second = env
        .repo
        .commit_files(
            &[("b/cm.yaml", configmap_yaml(NS, "shared", "k", "b"))],
            "b",
        )
        .expect("commit");
    env.apply_gitsync(NS, "second", json!({"path": "b"})).await;
    let status = env.wait_failed(NS, "second", &second).await;
    assert!(
        ready_message(&status).contains("belongs to GitSync shop/first"),
        "{status:#}"
    );
    let cm = env
        .get("v1", "ConfigMap", Some(NS), "shared")
        .await
        .expect("cm");
    assert_eq!(cm.data["data"]["k"], "a");

    // Nothing may be written into the controller's own namespace.
    let third = env
        .repo
        .commit_files(
            &[(
                "c/cm.yaml",
                configmap_yaml(
                    CONTROLLER_NS,
                    "sealsync-public-keys",
                    "recipients.txt",
                    "age1evil",
                ),
            )],
            "c",
        )
        .expect("commit");
    env.apply_gitsync(NS, "third", json!({"path": "c"})).await;
    let status = env.wait_failed(NS, "third", &third).await;
    assert!(
        ready_message(&status).contains("controller's namespace"),
        "{status:#}"
    );

    // Two documents that become one object once the namespace is filled in.
    let fourth = env
        .repo
        .commit_files(
            &[
                ("d/one.yaml", configmap_yaml(NS, "twice", "k", "1")),
                ("d/two.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: twice\ndata:\n  k: \"2\"\n".to_owned()),
            ],
            "d",
        )
        .expect("commit");
    env.apply_gitsync(NS, "fourth", json!({"path": "d"})).await;
    let status = env.wait_failed(NS, "fourth", &fourth).await;
    let message = ready_message(&status);
    assert!(
        message.contains("defined twice") && message.contains("d/two.yaml"),
        "{message}"
    );

    // A path that lost its manifests does not prune everything.
    env.repo
        .commit_files(&[("a/README.md", "moved elsewhere")], "readme")
        .expect("commit");
    let fifth = env
        .repo
        .delete_files(&["a/cm.yaml"], "drop")
        .expect("commit");
    let status = env.wait_failed(NS, "first", &fifth).await;
    assert_eq!(
        condition(&status, "Ready").expect("Ready")["reason"],
        "RenderFailed"
    );
    assert!(env
        .get("v1", "ConfigMap", Some(NS), "shared")
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revision_undoes_what_its_first_stage_wrote() {
    let env = Env::start(&[NS]).await;
    let good = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "settings", "mode", "blue"))],
            "good",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"allowPlaintextSecrets": true}))
        .await;
    env.wait_applied(NS, "apps", &good).await;

    // The Namespace is written in the first stage; the Secret in it fails its dry-run after.
    let bad = env
        .repo
        .commit_files(
            &[
                ("ns.yaml", "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: newns\n".to_owned()),
                (
                    "bad.yaml",
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bad\n  namespace: newns\ndata:\n  k: \"!!!not-base64\"\n".to_owned(),
                ),
            ],
            "namespace and a broken Secret",
        )
        .expect("commit");
    let status = env.wait_failed(NS, "apps", &bad).await;
    assert_eq!(
        condition(&status, "Ready").expect("Ready")["reason"],
        "ApplyFailed"
    );
    let message = ready_message(&status);
    // The embedded server names the field; kube-apiserver fails to decode the Secret as a
    // whole (500, "illegal base64"), which the controller reports without the server's text.
    assert!(
        message.contains("bad.yaml") && (message.contains("data[k]") || message.contains("base64")),
        "{message}"
    );
    assert!(
        !message.contains("not-base64"),
        "the server's message about a Secret leaked: {message}"
    );
    // Applied whole or not at all: the Namespace written before the Secret failed is gone
    // again, and the inventory is the last good revision's.
    let ids: Vec<&str> = status["inventory"]["entries"]
        .as_array()
        .expect("inventory")
        .iter()
        .filter_map(|e| e["id"].as_str())
        .collect();
    assert_eq!(ids, ["shop_settings__ConfigMap"], "{status:#}");
    assert_eq!(status["lastAppliedRevision"], format!("main@sha1:{good}"));
    let ns = env.get("v1", "Namespace", None, "newns").await;
    assert!(
        ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()),
        "the Namespace of the failed revision was left behind"
    );

    let reverted = env.repo.revert(&bad).expect("git revert");
    env.wait_applied(NS, "apps", &reverted).await;
    let ns = env.get("v1", "Namespace", None, "newns").await;
    assert!(ns.is_none_or(|n| n.metadata.deletion_timestamp.is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_does_not_fit_its_schema_stalls_with_the_field_named() {
    let env = Env::start(&[NS]).await;
    // `dta` for `data`: kube-apiserver refuses it in the server-side apply with a 500, which is
    // the manifest's fault, not the server's, and must not be retried as if it were passing.
    let typo = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: typo\n  namespace: {NS}\ndta:\n  k: v\n"
    );
    let commit = env
        .repo
        .commit_files(
            &[
                ("typo.yaml", typo),
                ("fine.yaml", configmap_yaml(NS, "fine", "k", "v")),
            ],
            "a typo",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({})).await;
    let status = env.wait_failed(NS, "apps", &commit).await;
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "ApplyFailed", "{status:#}");
    let message = ready_message(&status);
    assert!(
        message.contains("typo.yaml") && message.contains("dta"),
        "{message}"
    );
    assert_eq!(
        condition(&status, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True")),
        "a manifest error is not retried: {status:#}"
    );
    // Nothing of the revision was written.
    assert!(env.get("v1", "ConfigMap", Some(NS), "fine").await.is_none());
    assert!(env.get("v1", "ConfigMap", Some(NS), "typo").await.is_none());
}

/// A Git server that accepts connections and never answers, as a tarpit does.
struct Tarpit {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Tarpit {
    fn start() -> Tarpit {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            // Bounded: at most 10 minutes and 10,000 connections, then it stops by itself.
            let deadline = std::time::Instant::now() + Duration::from_secs(600);
            while !flag.load(std::sync::atomic::Ordering::Relaxed)
                && std::time::Instant::now() < deadline
                && held.len() < 10_000
            {
                match listener.accept() {
                    Ok((socket, _)) => held.push(socket),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Tarpit { port, stop }
    }
}

impl Drop for Tarpit {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

fn controller_threads(env: &Env) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", env.controller.pid()))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_git_servers_do_not_starve_other_gitsyncs_or_leak_their_tokens() {
    const TOKEN: &str = "canary-url-token-0d9e4b";
    let env = Env::start(&[NS]).await;
    let tarpit = Tarpit::start();
    let first = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "bystander", "v", "first"))],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(NS, "bystander", json!({"interval": "1h"}))
        .await;
    env.wait_applied(NS, "bystander", &first).await;
    let threads_before = controller_threads(&env);

    // Six tenants point at a server that accepts and never answers, one with a token in the
    // URL's query string.
    for i in 0..6 {
        env.apply_gitsync(
            NS,
            &format!("tarpit-{i}"),
            json!({"url": format!("git://127.0.0.1:{}/r{i}.git?access_token={TOKEN}", tarpit.port), "interval": "5s"}),
        )
        .await;
    }
    // Each of them is stuck in its fetch (its progress says so) before the bystander moves.
    wait_for(
        "every tarpit GitSync to be stuck fetching",
        Duration::from_secs(30),
        || async {
            for i in 0..6 {
                let status = env.gitsync_status(NS, &format!("tarpit-{i}")).await;
                let fetching = condition(&status, "Reconciling").is_some_and(|c| {
                    c["status"] == "True"
                        && c["message"]
                            .as_str()
                            .is_some_and(|m| m.starts_with("fetch"))
                });
                if !fetching {
                    return false;
                }
            }
            true
        },
    )
    .await;

    // The bystander's next commit still arrives while they fail.
    let second = env
        .repo
        .commit_files(
            &[("cm.yaml", configmap_yaml(NS, "bystander", "v", "second"))],
            "second",
        )
        .expect("commit");
    let pushed = std::time::Instant::now();
    let (code, _, err) = run_cli_status(&[
        "sync",
        "bystander",
        "-n",
        NS,
        "--kubeconfig",
        &env.kubeconfig_arg(),
    ]);
    assert_eq!(code, 0, "{err}");
    env.wait_applied(NS, "bystander", &second).await;
    println!(
        "tarpit: the bystander's commit applied {:.1} s after the push, with 6 silent servers",
        pushed.elapsed().as_secs_f64()
    );

    // Every tarpit GitSync fails with a fetch error that shows no token.
    for i in 0..6 {
        let status = wait_for_value(
            "the tarpit GitSync to fail",
            Duration::from_secs(90),
            || async {
                let status = env.gitsync_status(NS, &format!("tarpit-{i}")).await;
                (ready(&status) == Some(false)).then_some(status)
            },
            || env.controller.log_tail(20),
        )
        .await;
        let text = status.to_string();
        assert!(text.contains("FetchFailed"), "{text}");
        assert!(text.contains("access_token=***"), "{text}");
        assert!(
            !text.contains(TOKEN),
            "the URL's token is in the status: {text}"
        );
    }
    // Failed fetches leave no thread behind: after every tarpit has failed twice more (new
    // fetches started and timed out) the controller has about as many threads as before.
    let fetch_failures = || {
        metric_value(
            &env,
            "sealsync_reconcile_duration_seconds_count{reason=\"FetchFailed\"}",
        )
    };
    let failed_once = fetch_failures();
    wait_for(
        "every tarpit GitSync to fail twice more",
        Duration::from_secs(180),
        || async { fetch_failures() >= failed_once + 12.0 },
    )
    .await;
    let threads_after = controller_threads(&env);
    println!("tarpit: controller threads {threads_before} before, {threads_after} after");
    assert!(
        threads_after <= threads_before + 8,
        "fetch threads pile up: {threads_before} before, {threads_after} after"
    );
    let events = events_json(&env, NS).await;
    assert!(!events.contains(TOKEN), "the URL's token is in an Event");
    assert!(
        !env.controller.log().contains(TOKEN),
        "the URL's token is in the log"
    );
}
