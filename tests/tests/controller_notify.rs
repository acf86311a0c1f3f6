//! Notifiers end to end: webhook receivers on loopback get what the real controller announces
//! (an applied revision, a failed one with its reason, a drift correction once), signed as
//! Flux's `generic-hmac` signs; a receiver that fails first gets the notice once it answers;
//! one that hangs delays nothing; no canary ever leaves.

mod controller_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use controller_common::*;
use serde_json::{json, Value as Json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NS: &str = "platform";
const CANARY: &str = "canary-notify-sealed-2c81";
const TOKEN: &str = "canary-notify-hmac-key-7e0d";

/// How a receiver answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// 200 to everything.
    Accept,
    /// 500 to the first request, then 200.
    FailOnce,
    /// Never answers.
    Hang,
}

/// One HTTP request read off a connection: its path, headers (lowercase names) and body.
struct Request {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

/// Reads one request (head and `Content-Length` body) from `stream`.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, start) = loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8_lossy(&buffer[..end]).to_string(), end + 4);
        }
    };
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buffer.len() < start + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        path: head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned(),
        headers,
        body: buffer[start..(start + length).min(buffer.len())].to_vec(),
    })
}

/// One request a receiver got: its `X-Signature`, its body, and the status it answered.
#[derive(Debug, Clone)]
struct Received {
    signature: Option<String>,
    body: Vec<u8>,
    status: u16,
}

/// A webhook receiver on loopback.
struct Receiver {
    url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        tokio::spawn(async move {
            let mut count = 0;
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                count += 1;
                let status = match behaviour {
                    Behaviour::Accept => 200,
                    Behaviour::FailOnce if count == 1 => 500,
                    Behaviour::FailOnce => 200,
                    Behaviour::Hang => 0,
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let Some(request) = read_request(&mut stream).await else {
                        return;
                    };
                    let body = request.body.clone();
                    log.lock().expect("lock").push(Received {
                        signature: request.header("x-signature"),
                        body,
                        status,
                    });
                    if status == 0 {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        return;
                    }
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(reply.as_bytes()).await;
                });
            }
        });
        Receiver { url, received }
    }

    /// The bodies answered with 200, parsed.
    fn accepted(&self) -> Vec<Json> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .filter(|r| r.status == 200)
            .map(|r| serde_json::from_slice(&r.body).expect("a JSON body"))
            .collect()
    }

    fn all(&self) -> Vec<Received> {
        self.received.lock().expect("lock").clone()
    }

    /// Waits until an accepted body satisfies `want`; it.
    async fn wait(&self, what: &str, want: impl Fn(&Json) -> bool) -> Json {
        wait_for_value(
            what,
            Duration::from_secs(60),
            || async { self.accepted().into_iter().find(|b| want(b)) },
            || {
                format!(
                    "received: {:?}",
                    self.all()
                        .iter()
                        .map(|r| String::from_utf8_lossy(&r.body).to_string())
                        .collect::<Vec<_>>()
                )
            },
        )
        .await
    }
}

fn notifier_yaml(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  type: webhook\n  address: {url}\n{extra}"
    )
}

fn tree(env: &Env, mode: &str) -> Vec<(String, String)> {
    vec![
        (
            "shop/namespace.yaml".to_owned(),
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n".to_owned(),
        ),
        (
            "shop/settings.yaml".to_owned(),
            configmap_yaml("shop", "settings", "mode", mode),
        ),
        (
            "shop/db.yaml".to_owned(),
            env.seal(&secret_yaml("shop", "db", "password", CANARY)),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applied_failed_and_corrected_revisions_are_announced_signed_and_once() {
    let env = Env::start(&[NS]).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let elsewhere = Receiver::start(Behaviour::Accept).await;
    apply_yaml(&env.client, &secret_yaml(NS, "hook-token", "token", TOKEN)).await;
    apply_yaml(
        &env.client,
        &notifier_yaml("all", &receiver.url, "  secretRef:\n    name: hook-token\n"),
    )
    .await;
    // Its selector picks no GitSync here.
    apply_yaml(
        &env.client,
        &notifier_yaml(
            "others",
            &elsewhere.url,
            "  selector:\n    matchLabels:\n      team: other\n",
        ),
    )
    .await;
    let first = env
        .repo
        .commit_files(&tree(&env, "blue"), "blue")
        .expect("commit");
    env.apply_gitsync(NS, "shop", json!({"path": "shop", "interval": "1h"}))
        .await;
    env.wait_applied(NS, "shop", &first).await;
    let applied = receiver
        .wait("the applied revision", |b| {
            b["reason"] == "ReconciliationSucceeded"
        })
        .await;
    assert_eq!(applied["involvedObject"]["kind"], "GitSync");
    assert_eq!(applied["involvedObject"]["name"], "shop");
    assert_eq!(applied["severity"], "info");
    assert_eq!(applied["reportingController"], "sealsync-controller");
    assert!(
        applied["metadata"]["revision"]
            .as_str()
            .is_some_and(|r| r.ends_with(&first)),
        "{applied:#}"
    );
    for received in receiver.all() {
        assert_eq!(
            received.signature.as_deref(),
            Some(github_signature(&received.body, TOKEN).as_str()),
            "every body is signed with the Secret's token"
        );
    }

    // A tampered sealed file: failure, with its reason and revision.
    let mut files = tree(&env, "red");
    files[2].1 = tamper_sealed_value(&files[2].1, "password");
    let second = env.repo.commit_files(&files, "tampered").expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "1")
        .await;
    env.wait_failed(NS, "shop", &second).await;
    let failed = receiver
        .wait("the failed revision", |b| b["reason"] == "DecryptionFailed")
        .await;
    assert_eq!(failed["severity"], "error");
    assert_eq!(failed["metadata"]["event"], "failed");
    assert!(
        failed["metadata"]["revision"]
            .as_str()
            .is_some_and(|r| r.ends_with(&second)),
        "{failed:#}"
    );
    assert!(
        failed["message"]
            .as_str()
            .is_some_and(|m| m.contains("shop/db.yaml")),
        "{failed:#}"
    );

    // A manual edit undone: announced once.
    let configmaps = dynamic_api(&env.client, "v1", "ConfigMap", Some("shop")).await;
    configmaps
        .patch(
            "settings",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"mode": "edited"}})),
        )
        .await
        .expect("edit");
    receiver
        .wait("the drift correction", |b| b["reason"] == "DriftCorrected")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let corrections = receiver
        .accepted()
        .iter()
        .filter(|b| b["reason"] == "DriftCorrected")
        .count();
    assert_eq!(corrections, 1);

    // The Notifier reports its last delivery; the other one, selecting nothing here, got
    // nothing.
    let notifier = env
        .get("sealsync.dev/v1", "Notifier", Some(NS), "all")
        .await
        .map(|o| serde_json::to_value(o).expect("json"))
        .expect("notifier");
    assert!(
        notifier["status"]["lastDelivery"].is_string(),
        "{notifier:#}"
    );
    assert!(elsewhere.all().is_empty());

    // A Notifier that cannot work says why at once.
    apply_yaml(
        &env.client,
        &format!("apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: no-token\n  namespace: {NS}\nspec:\n  type: gitlab\n"),
    )
    .await;
    wait_for(
        "InvalidSpec on a Notifier without a token",
        Duration::from_secs(30),
        || async {
            env.get("sealsync.dev/v1", "Notifier", Some(NS), "no-token")
                .await
                .map(|o| serde_json::to_value(o).expect("json"))
                .is_some_and(|n| {
                    n["status"]["conditions"][0]["reason"] == "InvalidSpec"
                        && n["status"]["conditions"][0]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains("spec.secretRef is required"))
                })
        },
    )
    .await;

    let metrics = metrics_text(&env);
    assert!(
        metrics.contains("sealsync_notifications_total{type=\"webhook\",result=\"sent\"}"),
        "{metrics}"
    );
    for received in receiver.all() {
        let text = String::from_utf8_lossy(&received.body);
        assert!(!text.contains(CANARY) && !text.contains(TOKEN), "{text}");
    }
    assert!(!env.controller.log().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_first_gets_the_notice_once_and_one_that_hangs_delays_nothing() {
    let env = Env::start(&[NS]).await;
    let flaky = Receiver::start(Behaviour::FailOnce).await;
    let hanging = Receiver::start(Behaviour::Hang).await;
    apply_yaml(&env.client, &notifier_yaml("flaky", &flaky.url, "")).await;
    apply_yaml(&env.client, &notifier_yaml("hanging", &hanging.url, "")).await;
    let first = env
        .repo
        .commit_files(&tree(&env, "blue"), "blue")
        .expect("commit");
    env.apply_gitsync(NS, "shop", json!({"path": "shop", "interval": "1h"}))
        .await;
    // The hanging receiver holds its notices; the sync does not wait for it.
    env.wait_applied(NS, "shop", &first).await;
    flaky
        .wait("the applied revision after a 500", |b| {
            b["reason"] == "ReconciliationSucceeded"
        })
        .await;
    let all = flaky.all();
    assert_eq!(all.iter().filter(|r| r.status == 500).count(), 1);
    // The notice answered 500 came again and was accepted once; no notice twice.
    let reason = |r: &Received| {
        serde_json::from_slice::<Json>(&r.body).expect("json")["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let refused = reason(&all[0]);
    let accepted: Vec<String> = all.iter().filter(|r| r.status == 200).map(reason).collect();
    assert_eq!(
        accepted.iter().filter(|r| **r == refused).count(),
        1,
        "{accepted:?}"
    );
    let mut unique = accepted.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        accepted.len(),
        "delivered once each: {accepted:?}"
    );
    assert!(
        all.iter().all(|r| r.signature.is_none()),
        "no Secret, no signature"
    );
    // A second revision applies while the hanging receiver still holds the first.
    let second = env
        .repo
        .commit_files(&tree(&env, "red"), "red")
        .expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "1")
        .await;
    env.wait_applied(NS, "shop", &second).await;
    assert!(
        !hanging.all().is_empty(),
        "the hanging receiver was reached"
    );
}

/// `(path, Authorization, body)` of each request a fake Git provider got.
type Calls = Arc<Mutex<Vec<(String, Option<String>, Json)>>>;
/// Every header of each request, lowercase names, by path.
type Headers = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

/// A fake GitHub API on loopback that records commit statuses.
async fn fake_github() -> (String, Calls) {
    let (base, calls, _) = fake_provider().await;
    (base, calls)
}

/// A stand-in for any provider's API on loopback: it records each request's path, headers and
/// body, and answers 201.
async fn fake_provider() -> (String, Calls, Headers) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let calls: Calls = Arc::new(Mutex::new(Vec::new()));
    let headers: Headers = Arc::new(Mutex::new(Vec::new()));
    let log = calls.clone();
    let header_log = headers.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let header_log = header_log.clone();
            tokio::spawn(async move {
                let Some(request) = read_request(&mut stream).await else {
                    return;
                };
                let path = request.path.clone();
                let body: Json = serde_json::from_slice(&request.body).unwrap_or(Json::Null);
                header_log
                    .lock()
                    .expect("lock")
                    .push((path.clone(), request.headers.clone()));
                log.lock()
                    .expect("lock")
                    .push((path, request.header("authorization"), body));
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    )
                    .await;
            });
        }
    });
    (base, calls, headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_commit_a_gitsync_attempts_gets_pending_then_success_or_failure_on_github() {
    let env = Env::start(&[NS]).await;
    let (base, calls) = fake_github().await;
    apply_yaml(
        &env.client,
        &secret_yaml(NS, "github-token", "token", TOKEN),
    )
    .await;
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: github\n  namespace: {NS}\nspec:\n  type: github\n  address: {base}\n  repository: acme/shop\n  secretRef:\n    name: github-token\n"
        ),
    )
    .await;
    let first = env
        .repo
        .commit_files(&tree(&env, "blue"), "blue")
        .expect("commit");
    env.apply_gitsync(NS, "shop", json!({"path": "shop", "interval": "1h"}))
        .await;
    env.wait_applied(NS, "shop", &first).await;
    let path = format!("/repos/acme/shop/statuses/{first}");
    let states = || {
        calls
            .lock()
            .expect("lock")
            .iter()
            .filter(|(p, _, _)| *p == path)
            .map(|(_, auth, body)| (auth.clone(), body.clone()))
            .collect::<Vec<_>>()
    };
    wait_for("pending, then success", Duration::from_secs(30), || async {
        states().iter().any(|(_, b)| b["state"] == "success")
    })
    .await;
    let seen = states();
    assert_eq!(seen[0].1["state"], "pending", "{seen:?}");
    assert_eq!(seen[0].1["context"], "sealsync/platform/shop");
    assert_eq!(
        seen[0].0.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    // A tampered revision: failure, with the reason.
    let mut files = tree(&env, "red");
    files[2].1 = tamper_sealed_value(&files[2].1, "password");
    let second = env.repo.commit_files(&files, "tampered").expect("commit");
    env.annotate_gitsync(NS, "shop", "sealsync.dev/requestedAt", "1")
        .await;
    env.wait_failed(NS, "shop", &second).await;
    let failed_path = format!("/repos/acme/shop/statuses/{second}");
    let failure = wait_for_value(
        "a failure status",
        Duration::from_secs(30),
        || async {
            calls
                .lock()
                .expect("lock")
                .iter()
                .find(|(p, _, b)| *p == failed_path && b["state"] == "failure")
                .map(|(_, _, b)| b.clone())
        },
        || format!("{:?}", calls.lock().expect("lock")),
    )
    .await;
    assert!(
        failure["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("DecryptionFailed")),
        "{failure}"
    );
    let everything = format!("{:?}", calls.lock().expect("lock"));
    assert!(!everything.contains(CANARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_rotation_is_announced_to_the_notifiers_of_the_controller_namespace() {
    let env = Env::start(&[NS]).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    let team = Receiver::start(Behaviour::Accept).await;
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: keys\n  namespace: {CONTROLLER_NS}\nspec:\n  type: webhook\n  address: {}\n  events: [key-rotated]\n",
            receiver.url
        ),
    )
    .await;
    // A team's Notifier hears about its own GitSyncs only.
    apply_yaml(&env.client, &notifier_yaml("team", &team.url, "")).await;
    let kubeconfig = env.kubeconfig_arg();
    let (code, recipient, err) = run_cli_status(&[
        "keys",
        "rotate",
        "--kubeconfig",
        &kubeconfig,
        "--controller-namespace",
        CONTROLLER_NS,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(recipient.trim().starts_with("age1"));
    let rotated = receiver
        .wait("the key rotation", |b| b["reason"] == "KeyGenerated")
        .await;
    assert_eq!(rotated["involvedObject"]["kind"], "SealingKey");
    assert_eq!(rotated["involvedObject"]["namespace"], CONTROLLER_NS);
    assert_eq!(rotated["metadata"]["event"], "key-rotated");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(team.all().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_gitea_slack_and_teams_get_their_own_requests() {
    let env = Env::start(&[NS]).await;
    let (base, calls, headers) = fake_provider().await;
    apply_yaml(&env.client, &secret_yaml(NS, "api-token", "token", TOKEN)).await;
    apply_yaml(
        &env.client,
        &secret_yaml(
            NS,
            "slack-url",
            "address",
            &format!("{base}/slack/T0/B0/secret"),
        ),
    )
    .await;
    for (name, kind, extra) in [
        ("gitlab", "gitlab", format!("  address: {base}\n  repository: group/sub/shop\n  secretRef: {{name: api-token}}\n")),
        ("gitea", "gitea", format!("  address: {base}\n  repository: acme/shop\n  secretRef: {{name: api-token}}\n")),
        ("slack", "slack", "  secretRef: {name: slack-url}\n".to_owned()),
        ("teams", "msteams", format!("  address: {base}/teams\n")),
    ] {
        apply_yaml(
            &env.client,
            &format!("apiVersion: sealsync.dev/v1\nkind: Notifier\nmetadata:\n  name: {name}\n  namespace: {NS}\nspec:\n  type: {kind}\n{extra}"),
        )
        .await;
    }
    let first = env
        .repo
        .commit_files(&tree(&env, "blue"), "blue")
        .expect("commit");
    env.apply_gitsync(NS, "shop", json!({"path": "shop", "interval": "1h"}))
        .await;
    env.wait_applied(NS, "shop", &first).await;
    let gitlab_path = format!("/api/v4/projects/group%2Fsub%2Fshop/statuses/{first}");
    let gitea_path = format!("/api/v1/repos/acme/shop/statuses/{first}");
    wait_for(
        "every provider's request",
        Duration::from_secs(30),
        || async {
            let calls = calls.lock().expect("lock");
            let has = |path: &str, check: &dyn Fn(&Json) -> bool| {
                calls.iter().any(|(p, _, b)| p == path && check(b))
            };
            has(&gitlab_path, &|b| b["state"] == "success")
                && has(&gitea_path, &|b| b["state"] == "success")
                && has("/slack/T0/B0/secret", &|b| {
                    b["text"]
                        .as_str()
                        .is_some_and(|t| t.contains("ReconciliationSucceeded"))
                })
                && has("/teams", &|b| {
                    b["attachments"][0]["content"]["type"] == "AdaptiveCard"
                })
        },
    )
    .await;
    let calls = calls.lock().expect("lock").clone();
    let gitlab: Vec<&Json> = calls
        .iter()
        .filter(|(p, _, _)| *p == gitlab_path)
        .map(|(_, _, b)| b)
        .collect();
    assert_eq!(gitlab[0]["state"], "running", "{gitlab:?}");
    assert_eq!(gitlab[0]["name"], "sealsync/platform/shop");
    let headers = headers.lock().expect("lock").clone();
    let header_of = |path: &str, name: &str| {
        headers
            .iter()
            .find(|(p, _)| p == path)
            .and_then(|(_, h)| h.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    };
    assert_eq!(
        header_of(&gitlab_path, "private-token").as_deref(),
        Some(TOKEN)
    );
    assert_eq!(
        header_of(&gitea_path, "authorization"),
        Some(format!("token {TOKEN}"))
    );
    assert!(header_of("/slack/T0/B0/secret", "authorization").is_none());
    let everything = format!("{calls:?}");
    assert!(!everything.contains(CANARY));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_credentials_never_leave_in_a_failure_notice() {
    const GIT_PASSWORD: &str = "canary-notify-git-password-9d3c";
    let env = Env::start(&[NS]).await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    apply_yaml(&env.client, &notifier_yaml("all", &receiver.url, "")).await;
    apply_yaml(
        &env.client,
        &format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-auth\n  namespace: {NS}\nstringData:\n  username: deploy\n  password: {GIT_PASSWORD}\n"),
    )
    .await;
    // (A password in spec.url is refused by the CRD's schema before it is stored.)
    env.apply_gitsync(
        NS,
        "in-secret",
        json!({"url": "https://127.0.0.1:9/private.git", "secretRef": {"name": "git-auth"}}),
    )
    .await;
    for name in ["in-secret"] {
        receiver
            .wait(&format!("the failure of {name}"), |b| {
                b["involvedObject"]["name"] == name && b["severity"] == "error"
            })
            .await;
    }
    for received in receiver.all() {
        let text = String::from_utf8_lossy(&received.body);
        assert!(!text.contains(GIT_PASSWORD), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vault_values_and_tokens_never_leave_in_a_notice() {
    const VAULT_CANARY: &str = "canary-notify-vault-value-6b2e";
    let bao = sealsync_tests::openbao::OpenBao::start()
        .await
        .expect("start OpenBao (scripts/ensure-test-tools.sh installs it)");
    bao.root()
        .kv2_write("secret", "shop/db", &json!({"password": VAULT_CANARY}))
        .await
        .expect("write");
    let env = Env::start(&[NS]).await;
    let token = bao.root_token().to_owned();
    apply_yaml(
        &env.client,
        &secret_yaml(NS, "vault-token", "token", &token),
    )
    .await;
    let receiver = Receiver::start(Behaviour::Accept).await;
    apply_yaml(&env.client, &notifier_yaml("all", &receiver.url, "")).await;
    let db = |reference: &str| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: {NS}\nstringData:\n  password: {reference}\n"
        )
    };
    let good = env
        .repo
        .commit_files(
            &[("app/db.yaml", db("ref+vault://secret/shop/db#password"))],
            "good",
        )
        .expect("commit");
    env.apply_gitsync(
        NS,
        "apps",
        json!({"path": "app", "interval": "1h", "vault": {
            "address": bao.addr(),
            "token": {"secretRef": {"name": "vault-token"}},
        }}),
    )
    .await;
    env.wait_applied(NS, "apps", &good).await;
    // A reference to a key Vault does not hold: a failure naming it.
    let bad = env
        .repo
        .commit_files(
            &[("app/db.yaml", db("ref+vault://secret/shop/db#nope"))],
            "bad",
        )
        .expect("commit");
    env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", "1")
        .await;
    env.wait_failed(NS, "apps", &bad).await;
    receiver
        .wait("the Vault failure", |b| b["reason"] == "VaultFailed")
        .await;
    // Vault sealed: another failure.
    bao.root()
        .write("sys/seal", &json!({}))
        .await
        .expect("seal");
    env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", "2")
        .await;
    receiver
        .wait("a failure with Vault sealed", |b| {
            b["reason"] == "VaultFailed"
                && b["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("sealed or unavailable"))
        })
        .await;
    for received in receiver.all() {
        let text = String::from_utf8_lossy(&received.body);
        assert!(
            !text.contains(VAULT_CANARY) && !text.contains(&token),
            "{text}"
        );
    }
}
