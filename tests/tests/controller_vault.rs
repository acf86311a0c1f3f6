//! Vault references end to end: a real OpenBao dev server, the test API server, a real
//! `git daemon` and the controller as a process. KV v1 and v2, a pinned version, the three
//! login methods, refreshes without a commit, and every failure leaving the cluster as it was.

mod controller_common;

use std::time::Duration;

use base64::Engine as _;
use controller_common::*;
use sealsync_tests::openbao::OpenBao;
use serde_json::json;

const NS: &str = "vault";
/// Values that must never appear in a log, an event, the status or the metrics.
const CANARY_PASSWORD: &str = "canary-vault-password-9d41c2";
const CANARY_NEXT: &str = "canary-vault-rotated-77ab10";
const CANARY_LEGACY: &str = "canary-vault-kv1-3e5f08";

async fn bao() -> OpenBao {
    OpenBao::start()
        .await
        .expect("start OpenBao (scripts/ensure-test-tools.sh installs it)")
}

/// A token with `policy`, created by root.
async fn token_with(bao: &OpenBao, policy: &str, hcl: &str) -> String {
    bao.root().write_policy(policy, hcl).await.expect("policy");
    let answer = bao
        .root()
        .write(
            "auth/token/create",
            &json!({"policies": [policy], "ttl": "1h", "renewable": true}),
        )
        .await
        .expect("create token")
        .expect("answer");
    answer["auth"]["client_token"]
        .as_str()
        .expect("client_token")
        .to_owned()
}

/// OpenBao with `secret/shop/db` holding [`CANARY_PASSWORD`], a token that may read
/// `secret/data/shop/*` only, and the test world with that token in the Secret `vault-token`.
async fn shop_world() -> (OpenBao, Env, String) {
    let bao = bao().await;
    bao.root()
        .kv2_write("secret", "shop/db", &json!({"password": CANARY_PASSWORD}))
        .await
        .expect("write");
    let token = token_with(
        &bao,
        "shop",
        r#"path "secret/data/shop/*" { capabilities = ["read"] }"#,
    )
    .await;
    let env = Env::start(&[NS]).await;
    cluster_secret(&env, "vault-token", "token", &token).await;
    (bao, env, token)
}

/// A GitSync spec polling hourly, with token login from the Secret `vault-token`.
fn token_spec(address: &str, refresh: &str) -> serde_json::Value {
    json!({"interval": "1h", "vault": {
        "address": address,
        "refreshInterval": refresh,
        "token": {"secretRef": {"name": "vault-token"}},
    }})
}

/// A Secret in the test namespace holding `value` under `key`, made with the API.
async fn cluster_secret(env: &Env, name: &str, key: &str, value: &str) {
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {NS}\nstringData:\n  {key}: {value:?}\n"
        ),
    )
    .await;
}

async fn live_value(env: &Env, name: &str, key: &str) -> Option<String> {
    let secret = env.get("v1", "Secret", Some(NS), name).await?;
    secret.data["data"].get(key)?;
    Some(secret_value(&secret, key))
}

async fn events(env: &Env) -> String {
    events_json(env, NS).await
}

fn metrics(env: &Env) -> String {
    metrics_text(env)
}

/// Asserts that none of `secrets` shows in the controller's log, events, status or metrics.
async fn assert_nowhere(env: &Env, secrets: &[&str]) {
    let status = env.gitsync_status(NS, "apps").await.to_string();
    let (log, events, metrics) = (env.controller.log(), events(env).await, metrics(env));
    for secret in secrets {
        for (what, text) in [
            ("log", &log),
            ("events", &events),
            ("status", &status),
            ("metrics", &metrics),
        ] {
            assert!(
                !text.contains(secret),
                "a secret value or token leaked into the {what}"
            );
        }
    }
}

/// Waits until the GitSync is not Ready with `reason`; returns the message.
async fn wait_reason(env: &Env, reason: &str) -> String {
    wait_for_value(
        &format!("Ready=False with reason {reason}"),
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(NS, "apps").await;
            let cond = condition(&status, "Ready")?;
            (cond["status"] == "False" && cond["reason"] == reason)
                .then(|| cond["message"].as_str().unwrap_or_default().to_owned())
        },
        || env.controller.log_tail(30),
    )
    .await
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_v1_and_v2_resolve_and_refresh_without_a_commit() {
    let bao = bao().await;
    let root = bao.root();
    root.kv2_write(
        "secret",
        "shop/db",
        &json!({"user": "shop", "password": CANARY_PASSWORD}),
    )
    .await
    .expect("write v1");
    root.enable_kv_v1("legacy").await.expect("kv v1");
    root.kv1_write("legacy", "api", &json!({"key": CANARY_LEGACY}))
        .await
        .expect("write kv1");
    let token = token_with(
        &bao,
        "shop",
        r#"path "secret/data/shop/*" { capabilities = ["read"] }
path "legacy/*" { capabilities = ["read"] }"#,
    )
    .await;

    let env = Env::start(&[NS]).await;
    cluster_secret(&env, "vault-token", "token", &token).await;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: ref+vault://secret/shop/db#password\n  url: postgres://ref+vault://secret/shop/db#user+:ref+vault://secret/shop/db#/password+@db:5432/shop\n  pinned: ref+vault://secret/shop/db?version=1#password\n  avp: <path:secret/data/shop/db#user>\n  legacy: ref+vault://legacy/api#key\ndata:\n  encoded: {}\n",
        b64("ref+vault://secret/shop/db#user")
    );
    let commit = env
        .repo
        .commit_files(
            &[
                ("db.yaml", secret),
                (
                    "settings.yaml",
                    configmap_yaml(NS, "settings", "mode", "blue"),
                ),
            ],
            "references",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", token_spec(bao.addr(), "5s"))
        .await;
    env.wait_applied(NS, "apps", &commit).await;
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );
    assert_eq!(
        live_value(&env, "db", "url").await.as_deref(),
        Some(format!("postgres://shop:{CANARY_PASSWORD}@db:5432/shop").as_str())
    );
    assert_eq!(
        live_value(&env, "db", "pinned").await.as_deref(),
        Some(CANARY_PASSWORD)
    );
    assert_eq!(live_value(&env, "db", "avp").await.as_deref(), Some("shop"));
    assert_eq!(
        live_value(&env, "db", "legacy").await.as_deref(),
        Some(CANARY_LEGACY)
    );
    assert_eq!(
        live_value(&env, "db", "encoded").await.as_deref(),
        Some("shop")
    );
    let settings_rv = env
        .get("v1", "ConfigMap", Some(NS), "settings")
        .await
        .and_then(|c| c.metadata.resource_version)
        .expect("settings");
    // Identical references are read once: one read of secret/shop/db (latest), one of
    // version 1, one of legacy/api.
    let text = metrics(&env);
    assert!(
        text.contains(r#"sealsync_vault_requests_total{operation="read",result="ok"} 3"#),
        "{text}"
    );

    // A new version in Vault reaches the cluster within the refresh interval, no commit.
    root.kv2_write(
        "secret",
        "shop/db",
        &json!({"user": "shop", "password": CANARY_NEXT}),
    )
    .await
    .expect("write v2");
    wait_for("the refreshed value", Duration::from_secs(30), || async {
        live_value(&env, "db", "password").await.as_deref() == Some(CANARY_NEXT)
    })
    .await;
    assert_eq!(
        live_value(&env, "db", "pinned").await.as_deref(),
        Some(CANARY_PASSWORD),
        "a pinned version stays"
    );
    let status = env.gitsync_status(NS, "apps").await;
    assert!(status["lastAppliedRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(&commit)));
    assert_eq!(
        env.get("v1", "ConfigMap", Some(NS), "settings")
            .await
            .and_then(|c| c.metadata.resource_version),
        Some(settings_rv),
        "a refresh writes only the changed Secrets"
    );
    let text = metrics(&env);
    assert!(
        text.contains("sealsync_vault_last_refresh_timestamp_seconds{"),
        "{text}"
    );
    assert!(
        text.contains("sealsync_vault_resolve_seconds_count"),
        "{text}"
    );
    assert_nowhere(&env, &[CANARY_PASSWORD, CANARY_NEXT, CANARY_LEGACY, &token]).await;
}

/// A revision that leaves the file of a Secret with Vault references unchanged still reads
/// Vault again: an incremental revision carries over only what it can know is unchanged,
/// and a reference's value can change without a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_revision_reads_vault_again_when_the_file_is_unchanged() {
    let (bao, env, token) = shop_world().await;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: ref+vault://secret/shop/db#password\n"
    );
    let settings = |mode: &str| configmap_yaml(NS, "settings", "mode", mode);
    let first = env
        .repo
        .commit_files(
            &[
                ("db.yaml", secret.clone()),
                ("settings.yaml", settings("blue")),
            ],
            "references",
        )
        .expect("commit");
    // No refresh within the test: only a revision reads Vault again.
    env.apply_gitsync(NS, "apps", token_spec(bao.addr(), "1h"))
        .await;
    env.wait_applied(NS, "apps", &first).await;
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );
    let planned = |mode: &str| {
        metric_value(
            &env,
            &format!("sealsync_revisions_planned_total{{mode=\"{mode}\"}}"),
        )
    };
    let incremental = planned("incremental");
    // Two revisions that change the ConfigMap only, each after a new value in Vault (the
    // first after the start may still find a watch listing and plan every object).
    for (mode, value) in [("green", CANARY_NEXT), ("red", CANARY_LEGACY)] {
        bao.root()
            .kv2_write("secret", "shop/db", &json!({"password": value}))
            .await
            .expect("write");
        let commit = env
            .repo
            .commit_files(
                &[
                    ("db.yaml", secret.clone()),
                    ("settings.yaml", settings(mode)),
                ],
                mode,
            )
            .expect("commit");
        env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", mode)
            .await;
        env.wait_applied(NS, "apps", &commit).await;
        assert_eq!(
            live_value(&env, "db", "password").await.as_deref(),
            Some(value),
            "{mode}"
        );
    }
    assert!(
        planned("incremental") > incremental,
        "{}",
        env.controller.log_tail(30)
    );
    assert_nowhere(&env, &[CANARY_PASSWORD, CANARY_NEXT, CANARY_LEGACY, &token]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_apply_nothing_and_name_the_reference() {
    let (bao, env, token) = shop_world().await;
    let root = bao.root();
    root.kv2_write("secret", "other/db", &json!({"password": "x"}))
        .await
        .expect("write");
    let db = |reference: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: {reference}\n"
        )
    };
    let good = env
        .repo
        .commit_files(
            &[("db.yaml", db("ref+vault://secret/shop/db#password"))],
            "good",
        )
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "2s", "vault": {
            "address": bao.addr(),
            "token": {"secretRef": {"name": "vault-token", "key": "token"}},
        }}),
    )
    .await;
    env.wait_applied(NS, "apps", &good).await;

    // Each bad revision also adds a ConfigMap: none of it may be applied.
    let cases: [(&str, String, &str); 4] = [
        (
            "missing key",
            db("ref+vault://secret/shop/db#nope"),
            r#"Secret vault/db, stringData.password: reference secret/shop/db#nope: the secret at secret/shop/db has no key "nope""#,
        ),
        (
            "forbidden path",
            db("ref+vault://secret/other/db#password"),
            "reference secret/other/db#password: permission denied reading secret/data/other/db",
        ),
        (
            "missing version",
            db("ref+vault://secret/shop/db?version=9#password"),
            "reference secret/shop/db#password (version 9): no secret at secret/data/shop/db?version=9",
        ),
        (
            "reference in a ConfigMap",
            configmap_yaml(NS, "leak", "dsn", "ref+vault://secret/shop/db#password"),
            "data.dsn holds a Vault reference; references are resolved only in the data and stringData of a v1 Secret",
        ),
    ];
    for (what, file, needle) in cases {
        let bad = env
            .repo
            .commit_files(
                &[
                    ("db.yaml", file),
                    ("new.yaml", configmap_yaml(NS, "new", "mode", "x")),
                ],
                what,
            )
            .expect("commit");
        let status = env.wait_failed(NS, "apps", &bad).await;
        let cond = condition(&status, "Ready").expect("Ready");
        assert_eq!(cond["reason"], "VaultFailed", "{what}: {cond}");
        let message = cond["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{what}: {message}");
        assert!(status["lastAppliedRevision"]
            .as_str()
            .is_some_and(|r| r.ends_with(&good)));
        assert!(
            env.get("v1", "ConfigMap", Some(NS), "new").await.is_none(),
            "{what}"
        );
        assert_eq!(
            live_value(&env, "db", "password").await.as_deref(),
            Some(CANARY_PASSWORD)
        );
    }

    // Back to the good file; then Vault sealed, and Vault stopped: the Secret stays.
    env.repo
        .commit_files(
            &[("db.yaml", db("ref+vault://secret/shop/db#password"))],
            "again",
        )
        .expect("commit");
    let head = env
        .repo
        .delete_files(&["new.yaml"], "drop")
        .expect("delete");
    env.wait_applied(NS, "apps", &head).await;
    root.write("sys/seal", &json!({})).await.expect("seal");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "2s", "vault": {
            "address": bao.addr(),
            "token": {"secretRef": {"name": "vault-token", "key": "token"}},
            "namespace": "",
            "refreshInterval": "5s",
        }}),
    )
    .await;
    let message = wait_reason(&env, "VaultFailed").await;
    assert!(message.contains("sealed"), "{message}");
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );
    let addr = bao.addr().to_owned();
    bao.stop().expect("stop OpenBao");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "2s", "vault": {
            "address": addr,
            "token": {"secretRef": {"name": "vault-token", "key": "token"}},
            "refreshInterval": "6s",
        }}),
    )
    .await;
    let message = wait_for_value(
        "an unreachable Vault",
        Duration::from_secs(60),
        || async {
            let status = env.gitsync_status(NS, "apps").await;
            let cond = condition(&status, "Ready")?.clone();
            let m = cond["message"].as_str().unwrap_or_default().to_owned();
            m.contains("unreachable").then_some(m)
        },
        || env.controller.log_tail(30),
    )
    .await;
    assert!(message.contains(&addr), "{message}");
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );
    assert_nowhere(&env, &[CANARY_PASSWORD, &token]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approle_and_kubernetes_logins() {
    let bao = bao().await;
    let root = bao.root();
    root.kv2_write("secret", "shop/db", &json!({"password": CANARY_PASSWORD}))
        .await
        .expect("write");
    root.write_policy(
        "shop",
        r#"path "secret/data/shop/*" { capabilities = ["read"] }"#,
    )
    .await
    .expect("policy");
    let approle = root
        .setup_approle("approle", "shop", &["shop"])
        .await
        .expect("approle");

    let env = Env::start(&[NS]).await;
    // Stored as the `bao` CLI prints it; with no `key`, it is found under that name too.
    cluster_secret(&env, "approle", "secret_id", &approle.secret_id).await;
    let file = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: ref+vault://secret/shop/db#password\n"
    );
    let commit = env
        .repo
        .commit_files(&[("db.yaml", file)], "db")
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "vault": {
            "address": bao.addr(),
            "appRole": {"roleId": approle.role_id, "secretRef": {"name": "approle"}},
        }}),
    )
    .await;
    env.wait_applied(NS, "apps", &commit).await;
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );

    // Kubernetes: OpenBao checks the GitSync's service-account token with a TokenReview
    // against the test API server. The GitSync also applies as that account (impersonated),
    // so it may write Secrets in its namespace.
    let url = env.cluster.url().expect("url");
    let ca = env.cluster.kube_apiserver().map(|k| k.ca_pem().to_owned());
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: openbao-reviewer\n  namespace: {NS}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: openbao-reviewer\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: ClusterRole\n  name: system:auth-delegator\nsubjects:\n- kind: ServiceAccount\n  name: openbao-reviewer\n  namespace: {NS}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: shop-sync\n  namespace: {NS}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: shop-sync\n  namespace: {NS}\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets, configmaps]\n  verbs: [get, list, watch, create, update, patch, delete]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: shop-sync\n  namespace: {NS}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: shop-sync\nsubjects:\n- kind: ServiceAccount\n  name: shop-sync\n  namespace: {NS}\n"
        ),
    )
    .await;
    let reviewer = request_token(&env, "openbao-reviewer").await;
    root.configure_kubernetes_auth("kubernetes", &url, &reviewer, ca.as_deref())
        .await
        .expect("kubernetes auth");
    root.create_kubernetes_role("kubernetes", "shop", &["shop-sync"], &[NS], &["shop"], None)
        .await
        .expect("role");
    root.kv2_write("secret", "shop/db", &json!({"password": CANARY_NEXT}))
        .await
        .expect("write");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "serviceAccountName": "shop-sync", "vault": {
            "address": bao.addr(),
            "appRole": null,
            "kubernetes": {"role": "shop"},
        }}),
    )
    .await;
    wait_for(
        "the value read with Kubernetes login",
        Duration::from_secs(30),
        || async { live_value(&env, "db", "password").await.as_deref() == Some(CANARY_NEXT) },
    )
    .await;

    // A service account the role does not bind is refused, and nothing changes.
    root.kv2_write("secret", "shop/db", &json!({"password": "never-applied"}))
        .await
        .expect("write");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "serviceAccountName": "default", "vault": {
            "address": bao.addr(),
            "kubernetes": {"role": "shop"},
        }}),
    )
    .await;
    let message = wait_reason(&env, "VaultFailed").await;
    assert!(
        message.contains("logging in to Vault with kubernetes"),
        "{message}"
    );
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_NEXT)
    );
    assert_nowhere(
        &env,
        &[CANARY_PASSWORD, CANARY_NEXT, &approle.secret_id, &reviewer],
    )
    .await;
}

/// A token of `service_account` in the test namespace, from the TokenRequest API.
async fn request_token(env: &Env, service_account: &str) -> String {
    controller_common::request_token(&env.client, NS, service_account).await
}

/// The Vault requests of `operation` with `result` the controller counted.
fn vault_count(env: &Env, operation: &str, result: &str) -> u64 {
    let sample =
        format!(r#"sealsync_vault_requests_total{{operation="{operation}",result="{result}"}} "#);
    metrics(env)
        .lines()
        .find_map(|l| l.strip_prefix(&sample)?.trim().parse().ok())
        .unwrap_or(0)
}

fn db_file() -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: ref+vault://secret/shop/db#password\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_renewed_before_they_expire_and_replaced_after_a_403() {
    let bao = bao().await;
    let root = bao.root();
    root.kv2_write("secret", "shop/db", &json!({"password": "one"}))
        .await
        .expect("write");
    root.write_policy(
        "shop",
        r#"path "secret/data/shop/*" { capabilities = ["read"] }"#,
    )
    .await
    .expect("policy");
    // A token that lives 8 s unless renewed, made once everything else runs.
    let env = Env::start(&[NS]).await;
    let created = tokio::time::Instant::now();
    let short = root
        .write(
            "auth/token/create",
            &json!({"policies": ["shop"], "ttl": "8s", "renewable": true}),
        )
        .await
        .expect("create token")
        .expect("answer")["auth"]["client_token"]
        .as_str()
        .expect("token")
        .to_owned();
    cluster_secret(&env, "vault-token", "token", &short).await;
    let commit = env
        .repo
        .commit_files(&[("db.yaml", db_file())], "db")
        .expect("commit");
    env.apply_gitsync(NS, "apps", token_spec(bao.addr(), "5s"))
        .await;
    env.wait_applied(NS, "apps", &commit).await;
    // The controller renews the token before its first TTL runs out; once that TTL is past,
    // a changed value still arrives, read with the renewed token.
    wait_for(
        "the controller to renew the Vault token",
        Duration::from_secs(30),
        || async { vault_count(&env, "renew", "ok") >= 1 },
    )
    .await;
    tokio::time::sleep_until(created + Duration::from_secs(9)).await;
    root.kv2_write("secret", "shop/db", &json!({"password": "two"}))
        .await
        .expect("write");
    wait_for(
        "the value read with the renewed token",
        Duration::from_secs(20),
        || async { live_value(&env, "db", "password").await.as_deref() == Some("two") },
    )
    .await;
    assert!(vault_count(&env, "renew", "ok") >= 1, "{}", metrics(&env));
    assert_eq!(vault_count(&env, "login", "ok"), 1, "{}", metrics(&env));
    drop(env);

    // AppRole: every token of the role revoked; the next refresh gets a 403, logs in again
    // and reads on.
    let approle = root
        .setup_approle("approle", "shop", &["shop"])
        .await
        .expect("approle");
    let env = Env::start(&[NS]).await;
    cluster_secret(&env, "approle", "secret-id", &approle.secret_id).await;
    let commit = env
        .repo
        .commit_files(&[("db.yaml", db_file())], "db")
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "vault": {
            "address": bao.addr(),
            "refreshInterval": "5s",
            "appRole": {"roleId": approle.role_id, "secretRef": {"name": "approle", "key": "secret-id"}},
        }}),
    )
    .await;
    env.wait_applied(NS, "apps", &commit).await;
    root.write("sys/leases/revoke-prefix/auth/approle/login", &json!({}))
        .await
        .expect("revoke");
    root.kv2_write("secret", "shop/db", &json!({"password": "three"}))
        .await
        .expect("write");
    wait_for(
        "the value read after a new login",
        Duration::from_secs(20),
        || async { live_value(&env, "db", "password").await.as_deref() == Some("three") },
    )
    .await;
    assert!(vault_count(&env, "login", "ok") >= 2, "{}", metrics(&env));
    assert_nowhere(&env, &[&short, &approle.secret_id]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_token_is_a_default_for_its_own_address_only() {
    let bao = bao().await;
    bao.root()
        .kv2_write("secret", "shop/db", &json!({"password": CANARY_PASSWORD}))
        .await
        .expect("write");
    let env = Env::start_with_controller_env(&[NS], &bao.env_vars()).await;
    let commit = env
        .repo
        .commit_files(&[("db.yaml", db_file())], "db")
        .expect("commit");
    // No spec.vault: VAULT_ADDR and VAULT_TOKEN of the controller.
    env.apply_gitsync(NS, "apps", json!({"interval": "1h"}))
        .await;
    env.wait_applied(NS, "apps", &commit).await;
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );

    // A GitSync that names another server without a login of its own: the controller's
    // token is not sent there.
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "vault": {"address": "http://127.0.0.1:9"}}),
    )
    .await;
    let message = wait_reason(&env, "VaultFailed").await;
    assert!(message.contains("no login method"), "{message}");
    assert_nowhere(&env, &[CANARY_PASSWORD, bao.root_token()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_secret_is_healed_with_the_value_in_vault() {
    let (bao, env, token) = shop_world().await;
    let commit = env
        .repo
        .commit_files(&[("db.yaml", db_file())], "db")
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "vault": {
            "address": bao.addr(),
            "token": {"secretRef": {"name": "vault-token"}},
        }}),
    )
    .await;
    env.wait_applied(NS, "apps", &commit).await;
    let api = dynamic_api(&env.client, "v1", "Secret", Some(NS)).await;
    let params = kube::api::PatchParams {
        field_manager: Some("kubectl-edit".to_owned()),
        ..Default::default()
    };
    api.patch(
        "db",
        &params,
        &kube::api::Patch::Merge(&json!({"data": {"password": b64("edited")}})),
    )
    .await
    .expect("edit");
    wait_for("the edit to be undone", Duration::from_secs(15), || async {
        live_value(&env, "db", "password").await.as_deref() == Some(CANARY_PASSWORD)
    })
    .await;
    assert_nowhere(&env, &[CANARY_PASSWORD, &token]).await;
}

/// `bao server -dev -dev-tls` on a free port: the server, its address and CA, and the root
/// token; its certificate is signed by a CA made for this run.
fn start_tls_bao(dir: &std::path::Path) -> (sealsync_tests::process::ChildGuard, String, String) {
    use std::process::Command;
    let bin = sealsync_tests::openbao::bao_binary().expect("bao");
    let token = format!("sealsync-tls-root-{}", std::process::id());
    let mut last = None;
    // The port pair is picked before bao binds it; retry the rare collision with a new pair.
    for _ in 0..4 {
        let port = sealsync_tests::process::free_loopback_port_pair().expect("port");
        let mut cmd = Command::new(&bin);
        cmd.args(["server", "-dev", "-dev-tls", "-dev-no-store-token"])
            .arg(format!("-dev-tls-cert-dir={}", dir.display()))
            .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
            .env("BAO_DEV_ROOT_TOKEN_ID", &token);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("VAULT_") || k.starts_with("BAO_") {
                cmd.env_remove(&key);
            }
        }
        let mut guard = sealsync_tests::process::ChildGuard::spawn_redacted(
            "bao -dev-tls",
            &mut cmd,
            vec![token.clone()],
        )
        .expect("start bao -dev-tls");
        match guard.wait_for_log_line(
            "Development mode should NOT be used",
            Duration::from_secs(30),
        ) {
            Ok(()) => return (guard, format!("https://127.0.0.1:{port}"), token),
            Err(e) => last = Some(e),
        }
    }
    panic!("bao -dev-tls did not start: {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_vault_is_trusted_through_the_ca_bundle() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_bao, addr, root) = start_tls_bao(dir.path());
    let ca = dir.path().join("vault-ca.pem");
    // The dev server's KV mount answers once it has upgraded; the CLI speaks TLS with the CA.
    let written = (0..100).any(|_| {
        let ok = std::process::Command::new(sealsync_tests::openbao::bao_binary().expect("bao"))
            .args(["kv", "put", "-mount=secret", "shop/db"])
            .arg(format!("password={CANARY_PASSWORD}"))
            .env("BAO_ADDR", &addr)
            .env("BAO_CACERT", &ca)
            .env("BAO_TOKEN", &root)
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            std::thread::sleep(Duration::from_millis(100));
        }
        ok
    });
    assert!(written, "could not write to bao -dev-tls");

    let env = Env::start(&[NS]).await;
    cluster_secret(&env, "vault-token", "token", &root).await;
    let commit = env
        .repo
        .commit_files(&[("db.yaml", db_file())], "db")
        .expect("commit");
    // Without the CA the certificate is not trusted, and nothing is sent past the handshake.
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "vault": {
            "address": addr,
            "token": {"secretRef": {"name": "vault-token"}},
        }}),
    )
    .await;
    let message = wait_reason(&env, "VaultFailed").await;
    assert!(
        message.contains("unreachable") && message.contains("certificate"),
        "{message}"
    );
    assert!(env.get("v1", "Secret", Some(NS), "db").await.is_none());

    let bundle = b64(&std::fs::read_to_string(&ca).expect("CA"));
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "vault": {
            "address": addr,
            "caBundle": bundle,
            "token": {"secretRef": {"name": "vault-token"}},
        }}),
    )
    .await;
    env.wait_applied(NS, "apps", &commit).await;
    assert_eq!(
        live_value(&env, "db", "password").await.as_deref(),
        Some(CANARY_PASSWORD)
    );
    assert_nowhere(&env, &[CANARY_PASSWORD, &root]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_value_rolls_out_the_workloads_that_restart_on_it() {
    let (bao, env, token) = shop_world().await;
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: ref+vault://secret/shop/db#password\n"
    );
    let deployment = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {NS}\n  annotations:\n    sealsync.dev/restart-on-secret-change: \"true\"\nspec:\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: app\n          image: registry.example/web:1\n          envFrom:\n            - secretRef:\n                name: db\n"
    );
    let commit = env
        .repo
        .commit_files(&[("db.yaml", secret), ("web.yaml", deployment)], "web")
        .expect("commit");
    env.apply_gitsync(NS, "apps", token_spec(bao.addr(), "5s"))
        .await;
    env.wait_applied(NS, "apps", &commit).await;
    let rollout = || async {
        let web = env
            .get("apps/v1", "Deployment", Some(NS), "web")
            .await
            .expect("web");
        (
            web.data["spec"]["template"]["metadata"]["annotations"]["sealsync.dev/secret-checksum"]
                .as_str()
                .map(str::to_owned),
            web.metadata.generation,
        )
    };
    let (first, generation) = rollout().await;
    assert!(first.is_some());
    assert_eq!(generation, Some(1));
    // Refreshes that find the same value change nothing: two of them pass (the controller
    // publishes when each succeeded), and the workload is as it was.
    let last_refresh = || {
        metrics_text(&env)
            .lines()
            .filter(|line| {
                line.starts_with("sealsync_vault_last_refresh_timestamp_seconds{")
                    && line.contains("name=\"apps\"")
            })
            .find_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    for _ in 0..2 {
        let before = last_refresh();
        wait_for("a refresh", Duration::from_secs(30), || async {
            last_refresh() > before
        })
        .await;
    }
    assert_eq!(rollout().await, (first.clone(), Some(1)));

    bao.root()
        .kv2_write("secret", "shop/db", &json!({"password": CANARY_NEXT}))
        .await
        .expect("write");
    wait_for("the refreshed value", Duration::from_secs(30), || async {
        live_value(&env, "db", "password").await.as_deref() == Some(CANARY_NEXT)
    })
    .await;
    wait_for("the rollout", Duration::from_secs(15), || async {
        let (checksum, generation) = rollout().await;
        checksum != first && generation == Some(2)
    })
    .await;
    assert_nowhere(&env, &[CANARY_PASSWORD, CANARY_NEXT, &token]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_never_gets_the_controllers_identity() {
    // The platform's secret, readable with the controller's VAULT_TOKEN (root here).
    const PLATFORM_CANARY: &str = "canary-platform-db-5f02e1";
    let bao = bao().await;
    bao.root()
        .kv2_write(
            "secret",
            "platform/db",
            &json!({"password": PLATFORM_CANARY}),
        )
        .await
        .expect("write");
    // The default: only the controller's own namespace (and here `platform`) is trusted.
    let env = Env::start_with(
        &[NS, "platform"],
        &["--trusted-namespaces=platform".to_owned()],
        &bao.env_vars(),
    )
    .await;
    let stolen = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: stolen\n  namespace: {NS}\nstringData:\n  password: ref+vault://secret/platform/db#password\n"
    );
    let escalation = format!(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: {NS}-is-admin\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}}\nsubjects:\n- {{kind: Group, name: system:serviceaccounts:{NS}}}\n"
    );
    let commit = env
        .repo
        .commit_files(
            &[
                ("tenant/stolen.yaml", stolen.as_str()),
                ("tenant/admin.yaml", escalation.as_str()),
            ],
            "a tenant's repository",
        )
        .expect("commit");

    // A tenant's GitSync without a service account does not apply as the controller.
    env.apply_gitsync(NS, "apps", json!({"interval": "1h", "path": "tenant"}))
        .await;
    let message = wait_reason(&env, "InvalidSpec").await;
    assert!(
        message.contains("spec.serviceAccountName is required in namespace vault")
            && message.contains("trusted namespaces (sealsync-system, platform"),
        "{message}"
    );
    assert!(env
        .get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            "vault-is-admin"
        )
        .await
        .is_none());

    // With its own service account, the references are still not resolved with the
    // controller's token: the tenant must log in to Vault itself.
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: deployer, namespace: {NS}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: deployer, namespace: {NS}}}\nrules:\n- apiGroups: [\"\"]\n  resources: [secrets]\n  verbs: [get, list, watch, create, update, patch, delete]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: deployer, namespace: {NS}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}}\nsubjects:\n- {{kind: ServiceAccount, name: deployer, namespace: {NS}}}\n"
        ),
    )
    .await;
    let only_secret = env
        .repo
        .delete_files(&["tenant/admin.yaml"], "only the Secret")
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"interval": "1h", "path": "tenant", "serviceAccountName": "deployer"}),
    )
    .await;
    let status = env.wait_failed(NS, "apps", &only_secret).await;
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "VaultFailed", "{status:#}");
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("VAULT_TOKEN serves only GitSyncs in the trusted namespaces")
            && message.contains("not in vault"),
        "{message}"
    );
    assert!(env.get("v1", "Secret", Some(NS), "stolen").await.is_none());
    assert_nowhere(&env, &[PLATFORM_CANARY, bao.root_token()]).await;
    let _ = commit;

    // The platform's own GitSync, in a trusted namespace, still uses the controller's token.
    let platform = env
        .repo
        .commit_files(
            &[(
                "platform/db.yaml",
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: platform\nstringData:\n  password: ref+vault://secret/platform/db#password\n",
            )],
            "the platform's database",
        )
        .expect("commit");
    env.apply_gitsync(
        "platform",
        "db",
        json!({"interval": "1h", "path": "platform"}),
    )
    .await;
    env.wait_applied("platform", "db", &platform).await;
    let secret = env
        .get("v1", "Secret", Some("platform"), "db")
        .await
        .expect("db");
    assert_eq!(secret_value(&secret, "password"), PLATFORM_CANARY);
    let log = env.controller.log();
    assert!(
        !log.contains(bao.root_token()),
        "the controller's token leaked into the log"
    );
}
