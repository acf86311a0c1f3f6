//! Self-tests of the OpenBao harness against a real `bao server -dev`.
//!
//! These tests never skip: without `bao` they fail and tell you to run
//! `scripts/ensure-test-tools.sh`.

use std::time::Duration;

use hyper::Method;
use sealsync_tests::apiserver::TestApiServer;
use sealsync_tests::openbao::{Es256Signer, OpenBao};
use serde_json::json;

async fn bao() -> OpenBao {
    match OpenBao::start().await {
        Ok(b) => b,
        Err(e) => panic!("{e:#}"),
    }
}

#[tokio::test]
async fn starts_on_free_ports_and_stops_on_drop() {
    let (a, b) = tokio::join!(bao(), bao());
    assert_ne!(a.socket_addr(), b.socket_addr(), "two servers, two ports");

    let health = a
        .anonymous()
        .request(Method::GET, "sys/health", None)
        .await
        .expect("health");
    assert_eq!(health.status, 200);
    let body = health.body.expect("health body");
    assert_eq!(body["initialized"], true);
    assert_eq!(body["sealed"], false);

    let env = a.env_vars();
    assert!(env.contains(&("VAULT_ADDR".to_owned(), a.addr().to_owned())));
    assert!(env
        .iter()
        .any(|(k, v)| k == "VAULT_TOKEN" && v == a.root_token()));
    assert!(a.addr().starts_with("http://127.0.0.1:"));
    let me = a.root().lookup_self().await.expect("lookup-self");
    assert_eq!(me["data"]["policies"], json!(["root"]));

    // Secrets are not echoed by Debug or the log tail.
    assert!(!format!("{a:?}").contains(a.root_token()));
    assert!(!a.log_tail(200).contains(a.root_token()));

    // Gone after drop / stop: our root token no longer works at that address and the process
    // has exited. (Only checking that the port refuses connections would be racy: a parallel
    // test may already have been given the freed port.)
    for (i, server) in [a, b].into_iter().enumerate() {
        let root = server.root().clone();
        let pid = server.pid();
        if i == 0 {
            drop(server);
        } else {
            server.stop().expect("stop");
        }
        assert!(
            root.lookup_self().await.is_err(),
            "bao still serves after stop"
        );
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || !String::from_utf8_lossy(
                    &std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
                )
                .contains("server"),
            "bao (pid {pid}) still running"
        );
    }
}

#[tokio::test]
async fn missing_binary_fails_with_install_hint() {
    let err = OpenBao::start_with_binary("/nonexistent/sealsync/bao")
        .await
        .expect_err("must fail");
    let msg = format!("{err:#}");
    assert!(msg.contains("scripts/ensure-test-tools.sh"), "{msg}");
}

#[tokio::test]
async fn kv_v1_and_v2_with_versions() {
    let bao = bao().await;
    let root = bao.root();

    root.enable_kv_v1("kv1").await.expect("enable kv1");
    root.kv1_write("kv1", "apps/db", &json!({ "password": "one" }))
        .await
        .expect("write v1");
    assert_eq!(
        root.kv1_read("kv1", "apps/db").await.expect("read v1"),
        Some(json!({ "password": "one" }))
    );
    assert_eq!(
        root.kv1_read("kv1", "apps/missing").await.expect("read"),
        None
    );

    root.enable_kv_v2("kv2").await.expect("enable kv2");
    let v1 = root
        .kv2_write("kv2", "apps/api", &json!({ "token": "a" }))
        .await
        .expect("write 1");
    let v2 = root
        .kv2_write("kv2", "apps/api", &json!({ "token": "b" }))
        .await
        .expect("write 2");
    assert_eq!((v1, v2), (1, 2));
    assert_eq!(
        root.kv2_read("kv2", "apps/api", None)
            .await
            .expect("latest"),
        Some(json!({ "token": "b" }))
    );
    assert_eq!(
        root.kv2_read("kv2", "apps/api", Some(1)).await.expect("v1"),
        Some(json!({ "token": "a" }))
    );

    // Check-and-set: a stale cas is refused, the right one writes version 3.
    assert!(root
        .kv2_write_cas("kv2", "apps/api", &json!({ "token": "x" }), 1)
        .await
        .is_err());
    let v3 = root
        .kv2_write_cas("kv2", "apps/api", &json!({ "token": "c" }), 2)
        .await
        .expect("cas write");
    assert_eq!(v3, 3);

    // Soft delete, undelete, destroy.
    root.kv2_delete_versions("kv2", "apps/api", &[3])
        .await
        .expect("delete");
    assert_eq!(
        root.kv2_read("kv2", "apps/api", None).await.expect("read"),
        None
    );
    root.kv2_undelete_versions("kv2", "apps/api", &[3])
        .await
        .expect("undelete");
    assert_eq!(
        root.kv2_read("kv2", "apps/api", None).await.expect("read"),
        Some(json!({ "token": "c" }))
    );
    root.kv2_destroy_versions("kv2", "apps/api", &[1])
        .await
        .expect("destroy");
    assert_eq!(
        root.kv2_read("kv2", "apps/api", Some(1))
            .await
            .expect("read"),
        None
    );
    let meta = root
        .kv2_metadata("kv2", "apps/api")
        .await
        .expect("metadata");
    assert_eq!(meta["current_version"], 3);
    assert_eq!(meta["versions"]["1"]["destroyed"], true);

    // The dev server's default KV v2 mount works as well.
    root.kv2_write("secret", "x", &json!({ "k": "v" }))
        .await
        .expect("secret/");
    root.kv2_delete_latest("kv2", "apps/api")
        .await
        .expect("delete latest");
    assert_eq!(
        root.kv2_read("kv2", "apps/api", None).await.expect("read"),
        None
    );
}

#[tokio::test]
async fn approle_token_reads_what_its_policy_allows_only() {
    let bao = bao().await;
    let root = bao.root();
    root.enable_kv_v2("apps").await.expect("enable kv2");
    root.kv2_write("apps", "team-a/db", &json!({ "password": "a" }))
        .await
        .expect("write a");
    root.kv2_write("apps", "team-b/db", &json!({ "password": "b" }))
        .await
        .expect("write b");
    root.write_policy(
        "team-a",
        r#"path "apps/data/team-a/*" { capabilities = ["read"] }"#,
    )
    .await
    .expect("policy");

    let creds = root
        .setup_approle("approle", "team-a", &["team-a"])
        .await
        .expect("approle");
    assert!(!format!("{creds:?}").contains(&creds.secret_id));
    let token = bao
        .anonymous()
        .approle_login("approle", &creds)
        .await
        .expect("approle login");
    let client = bao.client(&token);
    assert_eq!(
        client
            .kv2_read("apps", "team-a/db", None)
            .await
            .expect("allowed"),
        Some(json!({ "password": "a" }))
    );
    let denied = client
        .request(Method::GET, "apps/data/team-b/db", None)
        .await
        .expect("request");
    assert_eq!(denied.status, 403, "{:?}", denied.errors());
    let err = client
        .kv2_read("apps", "team-b/db", None)
        .await
        .expect_err("denied");
    assert!(format!("{err:#}").contains("403"));

    // A wrong secret id is refused, and the error does not echo it.
    let mut wrong = creds.clone();
    wrong.secret_id = "00000000-1111-2222-3333-444444444444".to_owned();
    let err = bao
        .anonymous()
        .approle_login("approle", &wrong)
        .await
        .expect_err("wrong secret id");
    assert!(!format!("{err:#}").contains(&wrong.secret_id));
}

#[tokio::test]
async fn jwt_login_with_an_es256_token() {
    let bao = bao().await;
    let root = bao.root();
    root.kv2_write("secret", "ci/deploy", &json!({ "key": "v" }))
        .await
        .expect("write");
    root.write_policy(
        "ci",
        r#"path "secret/data/ci/*" { capabilities = ["read"] }"#,
    )
    .await
    .expect("policy");

    let signer = Es256Signer::generate().expect("key");
    root.configure_jwt_auth(
        "jwt",
        &[&signer.public_key_pem()],
        Some("https://ci.example"),
    )
    .await
    .expect("jwt config");
    root.create_jwt_role("jwt", "deployer", "sealsync", "pipeline-1", &["ci"])
        .await
        .expect("jwt role");

    let jwt = signer
        .sign_standard(
            "https://ci.example",
            "pipeline-1",
            "sealsync",
            Duration::from_secs(300),
            None,
        )
        .expect("sign");
    let token = bao
        .anonymous()
        .jwt_login("jwt", "deployer", &jwt)
        .await
        .expect("jwt login");
    assert_eq!(
        bao.client(&token)
            .kv2_read("secret", "ci/deploy", None)
            .await
            .expect("read"),
        Some(json!({ "key": "v" }))
    );

    // A token from another key, or for another subject, is refused without echoing it.
    let other = Es256Signer::generate().expect("key");
    let forged = other
        .sign_standard(
            "https://ci.example",
            "pipeline-1",
            "sealsync",
            Duration::from_secs(300),
            None,
        )
        .expect("sign");
    let err = bao
        .anonymous()
        .jwt_login("jwt", "deployer", &forged)
        .await
        .expect_err("foreign key");
    assert!(!format!("{err:#}").contains(&forged));
    let wrong_sub = signer
        .sign_standard(
            "https://ci.example",
            "pipeline-2",
            "sealsync",
            Duration::from_secs(300),
            None,
        )
        .expect("sign");
    assert!(bao
        .anonymous()
        .jwt_login("jwt", "deployer", &wrong_sub)
        .await
        .is_err());
}

async fn grant_auth_delegator(cluster: &TestApiServer, namespace: &str, name: &str) {
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": format!("{name}-auth-delegator")},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
    });
    let response = admin_post(
        cluster,
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        &binding,
    )
    .await;
    assert_eq!(response, 201, "creating the ClusterRoleBinding");
}

/// POSTs JSON with the admin token; the status code.
async fn admin_post(cluster: &TestApiServer, path: &str, body: &serde_json::Value) -> u16 {
    let kubeconfig = tempfile::NamedTempFile::new().expect("tmp");
    cluster
        .write_kubeconfig(kubeconfig.path())
        .expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(kubeconfig.path()).expect("read");
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(config).expect("client");
    let request = http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("json"))
        .expect("request");
    match client.request_text(request).await {
        Ok(_) => 201,
        Err(kube::Error::Api(status)) => status.code,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn kubernetes_login_with_a_service_account_token_from_the_test_api_server() {
    let cluster = TestApiServer::start().await.expect("start test API server");
    let bao = bao().await;
    let root = bao.root();
    root.kv2_write("secret", "payments/db", &json!({ "password": "p" }))
        .await
        .expect("write");
    root.write_policy(
        "payments",
        r#"path "secret/data/payments/*" { capabilities = ["read"] }"#,
    )
    .await
    .expect("policy");

    // OpenBao authenticates its TokenReview calls with this token; like on any cluster, its
    // service account needs system:auth-delegator to create TokenReviews.
    let reviewer = cluster
        .issue_service_account_token("kube-system", "openbao-reviewer", &[])
        .expect("reviewer token");
    grant_auth_delegator(&cluster, "kube-system", "openbao-reviewer").await;
    root.configure_kubernetes_auth("kubernetes", cluster.url(), &reviewer, None)
        .await
        .expect("kubernetes config");
    root.create_kubernetes_role(
        "kubernetes",
        "payments",
        &["payments-app"],
        &["payments"],
        &["payments"],
        Some("openbao"),
    )
    .await
    .expect("kubernetes role");

    let sa_token = cluster
        .issue_service_account_token("payments", "payments-app", &["openbao"])
        .expect("sa token");
    let token = bao
        .anonymous()
        .kubernetes_login("kubernetes", "payments", &sa_token)
        .await
        .expect("kubernetes login");
    assert_eq!(
        bao.client(&token)
            .kv2_read("secret", "payments/db", None)
            .await
            .expect("read"),
        Some(json!({ "password": "p" }))
    );

    // A service account the role is not bound to is refused.
    let other = cluster
        .issue_service_account_token("payments", "intruder", &["openbao"])
        .expect("sa token");
    assert!(bao
        .anonymous()
        .kubernetes_login("kubernetes", "payments", &other)
        .await
        .is_err());
}
