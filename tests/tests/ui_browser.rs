//! `sealsync ui` in a real browser (headless Chromium over WebDriver) against the controller,
//! a Git server and OpenBao on the test API server: the pages render, a new commit, a drift
//! correction and a failure appear without a reload, the buttons act through the user's own
//! authorization, a user without permission sees "forbidden" and nothing else, and no
//! sealed, Vault or Git credential value reaches a page, a response or the DOM. Screenshots
//! of each page are saved under `target/ui-screenshots/` for review.

mod controller_common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use controller_common::*;
use kube::api::{Api, Patch, PatchParams};
use sealsync_tests::browser::Browser;
use sealsync_tests::process::http_send_blocking;
use serde_json::json;

const NS: &str = "shop";
const SEALED_CANARY: &str = "canary-ui-sealed-value-51d7";
const VAULT_CANARY: &str = "canary-ui-vault-value-0b3e";
const GIT_CANARY: &str = "canary-ui-git-password-93aa";
const WAIT: Duration = Duration::from_secs(60);

/// `sealsync ui` as a process; stopped on drop.
struct Ui {
    child: Child,
    url: String,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl Drop for Ui {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Ui {
    fn start(kubeconfig: &Path, dir: &Path, extra: &[&str]) -> Ui {
        let cli = sealsync_tests::bins::cli().expect("the sealsync CLI");
        let stderr = dir.join(format!("ui-{}.log", std::process::id()));
        let stderr = unique(stderr);
        let mut child = Command::new(cli)
            .args(["ui", "--listen", "127.0.0.1:0", "--kubeconfig"])
            .arg(kubeconfig)
            .args(extra)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("log"))
            .spawn()
            .expect("start sealsync ui");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("the first line");
        let url = first.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") && url.ends_with('/'),
            "the first line of stdout is the URL: {first:?}; stderr: {}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
        let addr = url
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("addr");
        Ui {
            child,
            url,
            addr,
            stderr,
        }
    }

    fn get(&self, path: &str) -> (u16, String) {
        http_send_blocking(self.addr, "GET", path, &[], &[]).expect("GET")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

fn unique(path: PathBuf) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    path.with_extension(format!("{n}.log"))
}

fn screenshots() -> PathBuf {
    std::env::var_os("SEALSYNC_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots"))
}

fn assert_no_canary(what: &str, text: &str) {
    for canary in [SEALED_CANARY, VAULT_CANARY, GIT_CANARY] {
        assert!(!text.contains(canary), "{what} holds the canary {canary}");
    }
}

/// The count a drift cell starts with (`3 (last …)`).
fn drift_count(text: &str) -> u32 {
    text.split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn short(commit: &str) -> String {
    commit[..7].to_owned()
}

/// A kubeconfig for the same cluster as `admin`, as the service account whose `token` it is.
fn kubeconfig_for_token(admin: &Path, token: &str, out: &Path) {
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(admin).expect("kubeconfig")).expect("yaml");
    doc["users"][0]["user"] = serde_yaml::to_value(json!({ "token": token })).expect("yaml");
    doc["contexts"][0]["context"]["namespace"] = NS.into();
    std::fs::write(out, serde_yaml::to_string(&doc).expect("yaml")).expect("write");
}

/// What a live stream sends in its first second (it never ends by itself).
fn read_stream(addr: SocketAddr, path: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("write");
    let mut received = Vec::new();
    let mut chunk = [0u8; 65536];
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < deadline {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// A raw request with a chosen `Host` header: what a DNS-rebinding page would send.
fn get_with_host(addr: SocketAddr, host: &str) -> u16 {
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_web_view_follows_syncs_drift_failures_and_actions() {
    let bao = sealsync_tests::openbao::OpenBao::start()
        .await
        .expect("start OpenBao (scripts/ensure-test-tools.sh installs it)");
    bao.root()
        .kv2_write("secret", "shop/api", &json!({"token": VAULT_CANARY}))
        .await
        .expect("write");
    let env = Env::start(&[NS]).await;
    apply_yaml(
        &env.client,
        &secret_yaml(NS, "vault-token", "token", bao.root_token()),
    )
    .await;
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: git-auth\n  namespace: {NS}\nstringData:\n  username: deploy\n  password: {GIT_CANARY}\n"
        ),
    )
    .await;
    // The repository declares its own namespace, beside a sealed and a Vault-backed Secret.
    let sealed = env.seal(&secret_yaml(NS, "db", "password", SEALED_CANARY));
    let vault_secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\n  namespace: {NS}\nstringData:\n  token: ref+vault://secret/shop/api#token\n"
    );
    let first = env
        .repo
        .commit_files(
            &[
                (
                    "app/namespace.yaml",
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n".to_owned(),
                ),
                (
                    "app/web.yaml",
                    configmap_yaml("web", "settings", "mode", "one"),
                ),
                ("app/db.yaml", sealed.clone()),
                ("app/api.yaml", vault_secret.clone()),
            ],
            "first",
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
    // A GitSync whose Git credentials hold a canary; its server does not answer.
    env.apply_gitsync(
        NS,
        "private",
        json!({"url": "https://127.0.0.1:9/private.git", "secretRef": {"name": "git-auth"}, "interval": "1h"}),
    )
    .await;
    env.wait_applied(NS, "apps", &first).await;

    let ui = Ui::start(&env.kubeconfig, env.dir.path(), &[]);
    let browser = tokio::task::spawn_blocking(Browser::start)
        .await
        .expect("join")
        .expect("headless Chromium (scripts/ensure-test-tools.sh installs it)");
    let shots = screenshots();

    // The list: Ready with the applied commit, the source and no drift.
    browser.goto(&ui.url).expect("open /");
    let row = format!("tr[data-gitsync=\"{NS}/apps\"]");
    browser
        .wait_text(&format!("{row} .applied"), WAIT, |t| {
            t.contains(&short(&first))
        })
        .expect("the applied commit");
    assert_eq!(
        browser
            .text(&format!("{row} .ready"))
            .expect("text")
            .as_deref(),
        Some("Ready")
    );
    assert_eq!(
        browser
            .text(&format!("{row} .drift"))
            .expect("text")
            .as_deref(),
        Some("0")
    );
    browser
        .wait_text("#live-status", WAIT, |t| t.starts_with("Live"))
        .expect("live updates start");
    browser
        .screenshot(&shots.join("gitsyncs.png"))
        .expect("shot");

    // A new commit appears without a reload.
    browser
        .execute("window.__notReloaded = true; return true;", json!([]))
        .expect("mark");
    let second = env
        .repo
        .commit_files(
            &[(
                "app/web.yaml",
                configmap_yaml("web", "settings", "mode", "two"),
            )],
            "second",
        )
        .expect("commit");
    env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", "second")
        .await;
    browser
        .wait_text(&format!("{row} .applied"), WAIT, |t| {
            t.contains(&short(&second))
        })
        .expect("the new commit without a reload");
    let still = browser
        .execute("return window.__notReloaded === true;", json!([]))
        .expect("marker");
    assert_eq!(still, json!(true), "the page was reloaded");

    // One GitSync: its objects as a tree, the Secrets marked, never their values.
    let page = format!("{}gitsyncs/{NS}/apps", ui.url);
    browser.goto(&page).expect("open the GitSync");
    let tree = browser
        .wait_text("ul.tree", WAIT, |t| {
            t.contains("namespace web") && t.contains("settings") && t.contains("Current")
        })
        .expect("the object tree");
    assert!(
        tree.contains("namespace shop") && tree.contains("cluster-scoped"),
        "{tree}"
    );
    let db = browser
        .text("li[data-object=\"Secret/db\"]")
        .expect("text")
        .expect("the sealed Secret is listed");
    assert!(db.contains("sealed"), "{db}");
    let api = browser
        .text("li[data-object=\"Secret/api\"]")
        .expect("text")
        .expect("the Vault-backed Secret is listed");
    assert!(api.contains("Vault"), "{api}");
    browser
        .screenshot(&shots.join("gitsync.png"))
        .expect("shot");

    // A manual edit is undone, and the page shows the correction without a reload.
    browser
        .execute("window.__notReloaded = true; return true;", json!([]))
        .expect("mark");
    let config_maps: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(env.client.clone(), "web");
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"mode": "edited by hand"}})),
        )
        .await
        .expect("edit");
    browser
        .wait_text("dd.drift", WAIT, |t| drift_count(t) >= 1)
        .expect("the drift correction is counted");
    browser
        .wait_text("table.events", WAIT, |t| t.contains("DriftCorrected"))
        .expect("the drift correction is listed");
    assert_eq!(
        browser
            .execute("return window.__notReloaded === true;", json!([]))
            .expect("marker"),
        json!(true)
    );

    // The sync button asks for a reconcile with the user's credentials; the controller
    // handles it.
    browser.click("button[value=sync]").expect("click sync");
    browser
        .wait_text(".flash", WAIT, |t| t.contains("A reconcile was asked for"))
        .expect("the sync was asked for");
    wait_for("the reconcile the button asked for", WAIT, || async {
        let status = env.gitsync_status(NS, "apps").await;
        let gs = env
            .get("sealsync.dev/v1", "GitSync", Some(NS), "apps")
            .await
            .expect("gitsync");
        let asked = gs.metadata.annotations.unwrap_or_default()["sealsync.dev/requestedAt"].clone();
        asked != "second" && status["lastHandledReconcileAt"] == json!(asked)
    })
    .await;

    // A tampered file: the failure and its reason, live.
    let tampered = env
        .repo
        .commit_files(
            &[("app/db.yaml", tamper_sealed_value(&sealed, "password"))],
            "tampered",
        )
        .expect("commit");
    env.annotate_gitsync(NS, "apps", "sealsync.dev/requestedAt", "tampered")
        .await;
    browser
        .wait_text("dd.ready", WAIT, |t| {
            t.contains("Failed") && t.contains("DecryptionFailed")
        })
        .expect("the failure with its reason");
    browser
        .wait_text("dd.attempted", WAIT, |t| t.contains(&short(&tampered)))
        .expect("the failed commit");
    browser
        .wait_text("dd.message", WAIT, |t| t.contains("app/db.yaml"))
        .expect("the file named");
    browser
        .screenshot(&shots.join("gitsync-failed.png"))
        .expect("shot");

    // Suspend, then resume.
    browser
        .click("button[value=suspend]")
        .expect("click suspend");
    browser
        .wait_text(".flash", WAIT, |t| t.contains("Suspended"))
        .expect("suspended");
    wait_for("spec.suspend", WAIT, || async {
        let gs = env
            .get("sealsync.dev/v1", "GitSync", Some(NS), "apps")
            .await
            .expect("gitsync");
        gs.data["spec"]["suspend"] == json!(true)
    })
    .await;
    browser
        .wait_text("button[value=resume]", WAIT, |t| t.contains("Resume"))
        .expect("a resume button");
    browser.click("button[value=resume]").expect("click resume");
    browser
        .wait_text(".flash", WAIT, |t| t.contains("Resumed"))
        .expect("resumed");

    // The keys, with what uses them.
    browser
        .goto(&format!("{}keys", ui.url))
        .expect("open /keys");
    let keys = browser
        .wait_text("table.keys", WAIT, |t| t.contains("Active, current"))
        .expect("the key");
    assert!(keys.contains(&format!("{NS}/apps")), "{keys}");
    browser.screenshot(&shots.join("keys.png")).expect("shot");

    // The failing GitSync with the Git credentials.
    browser
        .goto(&format!("{}gitsyncs/{NS}/private", ui.url))
        .expect("open private");
    browser
        .wait_text("dd.ready", WAIT, |t| t.contains("Failed"))
        .expect("the private GitSync fails");

    // No value anywhere: the DOM of each page, each response, the log.
    for path in [
        "/".to_owned(),
        format!("/gitsyncs/{NS}/apps"),
        format!("/gitsyncs/{NS}/private"),
        "/keys".to_owned(),
    ] {
        let (status, body) = ui.get(&path);
        assert_eq!(status, 200, "{path}: {body}");
        assert_no_canary(&format!("the response of {path}"), &body);
        browser
            .goto(&format!("{}{}", ui.url, &path[1..]))
            .expect("open");
        std::thread::sleep(Duration::from_millis(500));
        assert_no_canary(&format!("the DOM of {path}"), &browser.dom().expect("dom"));
    }
    for path in [
        "/live/gitsyncs".to_owned(),
        format!("/live/gitsyncs/{NS}/apps"),
        format!("/live/gitsyncs/{NS}/private"),
        "/live/keys".to_owned(),
    ] {
        let stream = read_stream(ui.addr, &path);
        assert!(stream.contains("event: main"), "{path}: {stream}");
        assert_no_canary(&format!("the live stream {path}"), &stream);
    }
    assert_no_canary("the log of sealsync ui", &ui.log());

    // The guards: a foreign Host, a form without the token, a form from elsewhere.
    assert_eq!(get_with_host(ui.addr, "attacker.example:80"), 421);
    let (_, page_html) = ui.get(&format!("/gitsyncs/{NS}/apps"));
    let token = page_html
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the form's token")
        .to_owned();
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut all = vec![("Content-Type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        http_send_blocking(
            ui.addr,
            "POST",
            &format!("/gitsyncs/{NS}/apps/sync"),
            &all,
            body.as_bytes(),
        )
        .expect("POST")
        .0
    };
    assert_eq!(post(&[], "csrf=wrong"), 403);
    assert_eq!(
        post(
            &[("Origin", "http://attacker.example")],
            &format!("csrf={token}")
        ),
        403
    );
    assert_eq!(
        post(
            &[("Sec-Fetch-Site", "cross-site")],
            &format!("csrf={token}")
        ),
        403
    );
    assert_eq!(post(&[], &format!("csrf={token}")), 303);

    // A view started for another namespace follows this one's GitSync, and its Events, live
    // once its page is open.
    let narrow = Ui::start(&env.kubeconfig, env.dir.path(), &["-n", "default"]);
    browser
        .goto(&format!("{}gitsyncs/{NS}/apps", narrow.url))
        .expect("open");
    browser
        .wait_text("table.events", WAIT, |t| t.contains("DriftCorrected"))
        .expect("the Events of the other namespace");
    browser
        .wait_text("#live-status", WAIT, |t| t.starts_with("Live"))
        .expect("live");
    let gitsyncs = dynamic_api(&env.client, "sealsync.dev/v1", "GitSync", Some(NS)).await;
    gitsyncs
        .patch(
            "apps",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"suspend": true}})),
        )
        .await
        .expect("suspend");
    browser
        .wait_text("dd.ready", WAIT, |t| t.contains("Suspended"))
        .expect("the change, live, outside the view's namespace");
    drop(narrow);

    // SIGTERM while a live page streams: the view stops, and promptly.
    browser.goto(&ui.url).expect("open /");
    browser
        .wait_text("#live-status", WAIT, |t| t.starts_with("Live"))
        .expect("live");
    let mut ui = ui;
    let pid = ui.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    // Within 4 s: the streams end at once, before the 5 s cut-off that would hide a hang.
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    loop {
        if let Some(status) = ui.child.try_wait().expect("wait") {
            assert!(status.success(), "sealsync ui exited with {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sealsync ui did not stop within 4 s of SIGTERM with a live page open"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_permission_sees_forbidden_and_no_data() {
    let env = Env::start(&[NS]).await;
    let first = env
        .repo
        .commit_files(
            &[("app/cm.yaml", configmap_yaml(NS, "settings", "k", "v"))],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(NS, "apps", json!({"path": "app", "interval": "1h"}))
        .await;
    env.wait_applied(NS, "apps", &first).await;
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: viewer\n  namespace: {NS}\n"
        ),
    )
    .await;
    let token = request_token(&env.client, NS, "viewer").await;
    let kubeconfig = env.dir.path().join("viewer-kubeconfig");
    kubeconfig_for_token(&env.kubeconfig, &token, &kubeconfig);

    // No RBAC at all: every page says forbidden, and shows nothing of the cluster.
    let ui = Ui::start(&kubeconfig, env.dir.path(), &[]);
    let browser = tokio::task::spawn_blocking(Browser::start)
        .await
        .expect("join")
        .expect("headless Chromium");
    for (path, shot) in [
        ("".to_owned(), "forbidden-gitsyncs.png"),
        (format!("gitsyncs/{NS}/apps"), "forbidden-gitsync.png"),
        ("keys".to_owned(), "forbidden-keys.png"),
    ] {
        browser.goto(&format!("{}{path}", ui.url)).expect("open");
        browser
            .wait_text("main", WAIT, |t| t.contains("forbidden"))
            .unwrap_or_else(|e| panic!("/{path} says forbidden: {e}"));
        let dom = browser.dom().expect("dom");
        assert!(!dom.contains(&short(&first)), "/{path} shows the revision");
        assert!(!dom.contains("settings"), "/{path} shows an object");
        assert!(!dom.contains("sealsync-key-"), "/{path} shows a key");
        browser.screenshot(&screenshots().join(shot)).expect("shot");
    }

    // May read GitSyncs but not change them: the button's write is refused by the API server.
    apply_yaml(
        &env.client,
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: gitsync-reader\n  namespace: {NS}\nrules:\n- apiGroups: [sealsync.dev]\n  resources: [gitsyncs]\n  verbs: [get, list, watch]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: viewer-reads\n  namespace: {NS}\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: gitsync-reader\nsubjects:\n- kind: ServiceAccount\n  name: viewer\n  namespace: {NS}\n"
        ),
    )
    .await;
    let reader = Ui::start(&kubeconfig, env.dir.path(), &[]);
    browser.goto(&reader.url).expect("open /");
    let row = format!("tr[data-gitsync=\"{NS}/apps\"]");
    browser
        .wait_text(&format!("{row} .applied"), WAIT, |t| {
            t.contains(&short(&first))
        })
        .expect("the GitSync is visible to a reader");
    let notice = browser.text("main").expect("text").unwrap_or_default();
    assert!(
        notice.contains("every namespace is forbidden") && notice.contains(NS),
        "{notice}"
    );
    // Without script the pages read the same, and say that they do not follow the cluster.
    let plain = tokio::task::spawn_blocking(Browser::start_without_script)
        .await
        .expect("join")
        .expect("headless Chromium without script");
    plain
        .goto(&format!("{}gitsyncs/{NS}/apps", reader.url))
        .expect("open");
    let tree = plain.text("ul.tree").expect("text").unwrap_or_default();
    // The reader may not list ConfigMaps: the object is named, its health is not known.
    assert!(
        tree.contains("settings") && tree.contains("Unknown: forbidden"),
        "{tree}"
    );
    assert_eq!(
        plain.text("#live-status").expect("text").as_deref(),
        Some("Live updates need script; reload to refresh.")
    );
    drop(plain);
    browser
        .goto(&format!("{}gitsyncs/{NS}/apps", reader.url))
        .expect("open");
    browser
        .wait_text("ul.tree", WAIT, |t| t.contains("settings"))
        .expect("the objects");
    browser.click("button[value=sync]").expect("click sync");
    browser
        .wait_text(".flash", WAIT, |t| t.contains("forbidden"))
        .expect("the API server refuses the write");
    let gs = env
        .get("sealsync.dev/v1", "GitSync", Some(NS), "apps")
        .await
        .expect("gitsync");
    assert!(
        !gs.metadata
            .annotations
            .unwrap_or_default()
            .contains_key("sealsync.dev/requestedAt"),
        "a refused write changed nothing"
    );
}
