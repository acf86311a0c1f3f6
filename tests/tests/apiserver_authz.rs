//! The embedded server authenticates and authorizes like kube-apiserver: service-account
//! tokens get only what RBAC grants them, unknown tokens get 401, impersonation needs the
//! `impersonate` verb, and the review APIs answer from the stored RBAC objects.

use http::Request;
use kube::{Client, Config};
use sealsync_tests::apiserver::TestApiServer;
use serde_json::{json, Value};

async fn client(server: &TestApiServer, token: &str) -> Client {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("kubeconfig");
    server.write_kubeconfig(&path).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::read_from(&path).expect("read");
    let mut config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    if !token.is_empty() {
        config.auth_info.token = Some(token.to_owned().into());
    }
    Client::try_from(config).expect("client")
}

/// A request's status code and body.
async fn call(client: &Client, request: Request<Vec<u8>>) -> (u16, Value) {
    match client.request::<Value>(request).await {
        Ok(body) => (200, body),
        Err(kube::Error::Api(status)) => (status.code, json!({"message": status.message})),
        Err(e) => panic!("{e}"),
    }
}

fn post(path: &str, body: &Value) -> Request<Vec<u8>> {
    Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).expect("json"))
        .expect("request")
}

fn get(path: &str) -> Request<Vec<u8>> {
    Request::get(path).body(Vec::new()).expect("request")
}

#[tokio::test]
async fn service_accounts_get_what_rbac_grants_and_nothing_else() {
    let server = TestApiServer::start().await.expect("server");
    let admin = client(&server, "").await;
    let token = server
        .issue_service_account_token("team", "bot", &[])
        .expect("token");
    let bot = client(&server, &token).await;

    let (code, body) = call(&bot, get("/api/v1/namespaces/team/configmaps")).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "configmaps is forbidden: User \"system:serviceaccount:team:bot\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"team\""
    );
    // Discovery and its own identity are every authenticated user's.
    assert_eq!(call(&bot, get("/api/v1")).await.0, 200);
    let (code, review) = call(
        &bot,
        post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            &json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
        ),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        review["status"]["userInfo"]["username"],
        "system:serviceaccount:team:bot"
    );

    for object in [
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": "read-cm", "namespace": "team"},
               "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "read-cm", "namespace": "team"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-cm"},
               "subjects": [{"kind": "ServiceAccount", "name": "bot", "namespace": "team"}]}),
    ] {
        let plural = if object["kind"] == "Role" {
            "roles"
        } else {
            "rolebindings"
        };
        let path = format!("/apis/rbac.authorization.k8s.io/v1/namespaces/team/{plural}");
        assert_eq!(call(&admin, post(&path, &object)).await.0, 200);
    }
    assert_eq!(
        call(&bot, get("/api/v1/namespaces/team/configmaps"))
            .await
            .0,
        200
    );
    assert_eq!(
        call(&bot, get("/api/v1/namespaces/other/configmaps"))
            .await
            .0,
        403
    );
    let (code, _) = call(
        &bot,
        post(
            "/api/v1/namespaces/team/configmaps",
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}),
        ),
    )
    .await;
    assert_eq!(code, 403);

    // The review APIs answer from the same objects.
    let review = |verb: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
               "spec": {"user": "system:serviceaccount:team:bot", "groups": ["system:serviceaccounts"],
                        "resourceAttributes": {"namespace": "team", "verb": verb, "resource": "configmaps"}}})
    };
    let path = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let (_, allowed) = call(&admin, post(path, &review("list"))).await;
    assert_eq!(allowed["status"]["allowed"], true, "{allowed}");
    assert_eq!(
        allowed["status"]["reason"],
        "RBAC: allowed by RoleBinding \"read-cm/team\" of Role \"read-cm\" to ServiceAccount \"bot/team\""
    );
    let (_, denied) = call(&admin, post(path, &review("delete"))).await;
    assert_eq!(denied["status"]["allowed"], false, "{denied}");
}

#[tokio::test]
async fn unknown_tokens_are_refused_and_impersonation_needs_the_right() {
    let server = TestApiServer::start().await.expect("server");
    let stranger = client(&server, "not-a-token").await;
    assert_eq!(call(&stranger, get("/api/v1/namespaces")).await.0, 401);

    let token = server
        .issue_service_account_token("team", "bot", &[])
        .expect("token");
    let bot = client(&server, &token).await;
    let impersonating = Request::get("/api/v1/namespaces")
        .header("impersonate-user", "alice")
        .body(Vec::new())
        .expect("request");
    let (code, body) = call(&bot, impersonating).await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "users \"alice\" is forbidden: User \"system:serviceaccount:team:bot\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
    );

    // The admin may impersonate; the impersonated user has only its own rights.
    let admin = client(&server, "").await;
    let as_alice = Request::get("/api/v1/namespaces")
        .header("impersonate-user", "alice")
        .body(Vec::new())
        .expect("request");
    assert_eq!(call(&admin, as_alice).await.0, 403);
}
