//! The real kube-apiserver of the end-to-end tests: it starts from the binaries that
//! `scripts/kube-apiserver.sh` built, authenticates service-account tokens and enforces RBAC,
//! validates strictly, and the fault proxy in front of it injects failures, latency and dropped
//! watches. `scripts/test.sh` builds the binaries first; without them these tests fail and say
//! what to run.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{
    Api, ListParams, ObjectMeta, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Client, Config};
use sealsync_tests::apiserver::TestCluster;
use sealsync_tests::kubeapiserver::binaries;

const NS: &str = "default";

async fn admin_client(cluster: &TestCluster) -> Client {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// A client that presents `token` instead of the admin's, through the same proxy and CA.
async fn token_client(cluster: &TestCluster, token: &str) -> Client {
    let kc = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    config.auth_info.token = Some(token.to_owned().into());
    Client::try_from(config).expect("client")
}

fn status_code(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

async fn start() -> TestCluster {
    match TestCluster::start_kube_apiserver().await {
        Ok(cluster) => cluster,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_issued_and_reviewed_and_rbac_is_enforced() {
    let cluster = start().await;
    let admin = admin_client(&cluster).await;
    let version = admin.apiserver_version().await.expect("version");
    assert_eq!(version.git_version, binaries::kube_version());

    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), NS);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("reader".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("service account");
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request("reader", &PostParams::default(), &request)
        .await
        .expect("TokenRequest")
        .status
        .expect("token status")
        .token;

    let review = Api::<TokenReview>::all(admin.clone())
        .create(
            &PostParams::default(),
            &TokenReview {
                spec: TokenReviewSpec {
                    token: Some(token.clone()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("TokenReview");
    let reviewed = review.status.expect("review status");
    assert_eq!(reviewed.authenticated, Some(true), "{reviewed:?}");
    assert_eq!(
        reviewed.user.and_then(|u| u.username).as_deref(),
        Some("system:serviceaccount:default:reader")
    );

    // RBAC: nothing is granted to a new service account.
    let access = |verb: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some("system:serviceaccount:default:reader".into()),
            groups: Some(vec!["system:serviceaccounts".into()]),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(NS.into()),
                verb: Some(verb.into()),
                resource: Some("secrets".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SubjectAccessReview> = Api::all(admin.clone());
    let denied = reviews
        .create(&PostParams::default(), &access("list"))
        .await
        .expect("SubjectAccessReview")
        .status
        .expect("status");
    assert!(!denied.allowed);
    let reader = token_client(&cluster, &token).await;
    let secrets: Api<Secret> = Api::namespaced(reader.clone(), NS);
    let err = secrets
        .list(&ListParams::default())
        .await
        .expect_err("no rights yet");
    assert_eq!(status_code(&err), Some(403), "{err}");

    let roles: Api<Role> = Api::namespaced(admin.clone(), NS);
    roles
        .create(
            &PostParams::default(),
            &Role {
                metadata: ObjectMeta {
                    name: Some("secret-reader".into()),
                    ..Default::default()
                },
                rules: Some(vec![PolicyRule {
                    api_groups: Some(vec![String::new()]),
                    resources: Some(vec!["secrets".into()]),
                    verbs: vec!["list".into()],
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("role");
    Api::<RoleBinding>::namespaced(admin.clone(), NS)
        .create(
            &PostParams::default(),
            &RoleBinding {
                metadata: ObjectMeta {
                    name: Some("secret-reader".into()),
                    ..Default::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "Role".into(),
                    name: "secret-reader".into(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "reader".into(),
                    namespace: Some(NS.into()),
                    ..Default::default()
                }]),
            },
        )
        .await
        .expect("role binding");
    // The authorizer reads RBAC objects from an informer: the grant arrives within moments.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match secrets.list(&ListParams::default()).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline && status_code(&e) == Some(403) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the binding does not take effect: {e}"),
        }
    }
    let allowed = reviews
        .create(&PostParams::default(), &access("list"))
        .await
        .expect("SubjectAccessReview")
        .status
        .expect("status");
    assert!(allowed.allowed);
    let still_denied = reviews
        .create(&PostParams::default(), &access("delete"))
        .await
        .expect("SubjectAccessReview")
        .status
        .expect("status");
    assert!(!still_denied.allowed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_is_real_and_the_proxy_injects_faults() {
    let cluster = start().await;
    let admin = admin_client(&cluster).await;
    let faults = cluster.faults().expect("the proxy injects faults");
    let cms: Api<ConfigMap> = Api::namespaced(admin.clone(), NS);

    // Strict field validation of a built-in kind, as the embedded server could not do.
    let unknown_field = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "strict"},
        "data": {"a": "b"},
        "dta": {"typo": "x"},
    });
    let err = cms
        .patch(
            "strict",
            &PatchParams {
                field_manager: Some("test".into()),
                field_validation: Some(kube::api::ValidationDirective::Strict),
                ..PatchParams::default()
            },
            &Patch::Apply(&unknown_field),
        )
        .await
        .expect_err("unknown field refused");
    // kube-apiserver answers a server-side apply that does not fit the schema with 500, not
    // 400: a client must not take every 500 for a passing failure.
    assert_eq!(status_code(&err), Some(500), "{err}");
    assert!(
        err.to_string()
            .contains(".dta: field not declared in schema"),
        "{err}"
    );
    // A name the API server refuses.
    let bad_name = Namespace {
        metadata: ObjectMeta {
            name: Some("Not_A_Name".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let err = Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &bad_name)
        .await
        .expect_err("invalid name");
    assert_eq!(status_code(&err), Some(422), "{err}");

    // Injected failures answer with a Status (more of them than kube-rs retries by itself),
    // then the real server answers again.
    faults.fail_next(
        20,
        Some("GET"),
        "/api/v1/namespaces/default/configmaps",
        500,
    );
    let err = cms
        .list(&ListParams::default())
        .await
        .expect_err("injected");
    assert_eq!(status_code(&err), Some(500), "{err}");
    assert!(err.to_string().contains("injected fault"), "{err}");
    faults.clear_faults();
    cms.list(&ListParams::default())
        .await
        .expect("after the faults");

    // Latency.
    faults.add_latency(
        Some("GET"),
        "/api/v1/namespaces/default/configmaps",
        Duration::from_millis(300),
    );
    let started = Instant::now();
    cms.list(&ListParams::default()).await.expect("slow list");
    assert!(started.elapsed() >= Duration::from_millis(300));
    faults.clear_faults();

    // A dropped watch ends the stream the client holds.
    let mut events = cms
        .watch(&WatchParams::default().timeout(290), "0")
        .await
        .expect("watch")
        .boxed();
    cms.create(
        &PostParams::default(),
        &ConfigMap {
            metadata: ObjectMeta {
                name: Some("seen".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await
    .expect("create");
    let first = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("an event in time")
        .expect("event");
    assert!(matches!(first, Some(WatchEvent::Added(_))), "{first:?}");
    faults.drop_watches();
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = events.try_next().await {}
    })
    .await;
    assert!(end.is_ok(), "the watch did not end after drop_watches");
}

#[test]
fn the_testcluster_binary_runs_the_real_server_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = dir.path().join("kubeconfig");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealsync-testcluster"))
        .args([
            "--kube-apiserver",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
        ])
        .arg(&kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn sealsync-testcluster");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the URL line");
    assert!(line.trim().starts_with("https://127.0.0.1:"), "{line:?}");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["get", "namespace", "kube-system", "-o", "name"])
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "namespace/kube-system"
    );
    // kubectl's own validation against the real server's OpenAPI: a typo is refused.
    let mut create = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["create", "--validate=strict", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl create");
    std::io::Write::write_all(
        &mut create.stdin.take().expect("stdin"),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: typo}\ndatta: {a: b}\n",
    )
    .expect("write");
    let created = create.wait_with_output().expect("kubectl create");
    assert!(!created.status.success());
    assert!(
        String::from_utf8_lossy(&created.stderr).contains("datta"),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );

    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "sealsync-testcluster did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    // etcd and kube-apiserver went with it: nothing listens on the proxy's port any more.
    let port: u16 = line
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
