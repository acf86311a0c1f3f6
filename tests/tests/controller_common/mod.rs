//! Shared set-up for the controller end-to-end tests: a test API server (or the cluster in
//! `SEALSYNC_E2E_KUBECONFIG`), the CRDs, a real `git daemon`, the controller as a process, and
//! the `sealsync` CLI.

#![allow(dead_code)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::{Client, Config};
use sealsync_tests::apiserver::{FaultInjector, TestCluster};
use sealsync_tests::controller::ControllerProcess;
use sealsync_tests::git::{BareRepo, GitServer};
use serde_json::Value as Json;

/// The controller's namespace in the tests.
pub const CONTROLLER_NS: &str = "sealsync-system";

/// One test's world.
pub struct Env {
    pub cluster: TestCluster,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub client: Client,
    pub git: GitServer,
    pub repo: BareRepo,
    pub controller: ControllerProcess,
    pub recipients: PathBuf,
}

impl Env {
    /// The in-process test server, for fault injection; panics against a real cluster.
    pub fn faults(&self) -> &dyn FaultInjector {
        self.cluster.faults().expect(
            "this test injects API faults: it needs the embedded server or kube-apiserver, \
             not SEALSYNC_E2E_KUBECONFIG",
        )
    }

    /// `--kubeconfig FILE` for CLI calls.
    pub fn kubeconfig_arg(&self) -> String {
        self.kubeconfig.to_str().expect("utf8").to_owned()
    }

    /// Starts everything; `namespaces` are created for the test's objects.
    pub async fn start(namespaces: &[&str]) -> Env {
        Self::start_with_controller_env(namespaces, &[]).await
    }

    /// Like [`Env::start`], with environment variables for the controller.
    pub async fn start_with_controller_env(namespaces: &[&str], env: &[(String, String)]) -> Env {
        Self::start_with(namespaces, &[], env).await
    }

    /// Like [`Env::start`], with arguments and environment variables for the controller.
    pub async fn start_with(namespaces: &[&str], args: &[String], env: &[(String, String)]) -> Env {
        let cluster = TestCluster::from_env_or_start()
            .await
            .expect("start the test API server");
        Self::start_on(cluster, namespaces, args, env).await
    }

    /// Like [`Env::start_with`], on a cluster the test chose.
    pub async fn start_on(
        cluster: TestCluster,
        namespaces: &[&str],
        args: &[String],
        env: &[(String, String)],
    ) -> Env {
        let (cluster, kubeconfig, client) = prepare_cluster(cluster, namespaces).await;
        let dir = tempfile::tempdir().expect("tmp");
        let controller = start_controller(&kubeconfig, dir.path(), args, env).await;
        let git = tokio::task::spawn_blocking(|| GitServer::start().expect("git server"))
            .await
            .expect("join");
        let repo = git.create_repo("apps").expect("repo");
        // The recipients as a user fetches them, checked against what the controller serves.
        let recipients = dir.path().join("recipients.txt");
        fetch_recipients(&kubeconfig, &recipients);
        let (code, body) = controller.get("/v1/keys").expect("GET /v1/keys");
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            std::fs::read_to_string(&recipients).expect("recipients"),
            body
        );
        Env {
            cluster,
            dir,
            kubeconfig,
            client,
            git,
            repo,
            controller,
            recipients,
        }
    }

    /// Seals `secret_yaml` with the `sealsync` CLI to the cluster's recipients.
    pub fn seal(&self, secret_yaml: &str) -> String {
        self.seal_with(secret_yaml, &[])
    }

    /// [`Env::seal`] with more arguments (`--rendered-as`, `--scope`).
    pub fn seal_with(&self, secret_yaml: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "seal",
            "--recipients-file",
            self.recipients.to_str().expect("utf8"),
        ];
        args.extend_from_slice(extra);
        run_cli(&args, secret_yaml)
    }

    /// Creates or updates a GitSync named `name` in `namespace` with `spec` merged over a
    /// default spec pointing at the test repository.
    pub async fn apply_gitsync(&self, namespace: &str, name: &str, spec: Json) {
        self.apply_labelled_gitsync(namespace, name, serde_json::json!({}), spec)
            .await;
    }

    /// Like [`Env::apply_gitsync`], with labels (a shard's, for example).
    pub async fn apply_labelled_gitsync(
        &self,
        namespace: &str,
        name: &str,
        labels: Json,
        spec: Json,
    ) {
        let mut full = serde_json::json!({
            "url": self.repo.git_url(),
            "interval": "2s",
        });
        merge(&mut full, spec);
        let body = serde_json::json!({
            "apiVersion": "sealsync.dev/v1",
            "kind": "GitSync",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "spec": full,
        });
        let api = dynamic_api(&self.client, "sealsync.dev/v1", "GitSync", Some(namespace)).await;
        api.patch(
            name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&body),
        )
        .await
        .expect("apply the GitSync");
    }

    /// Sets an annotation on the GitSync (`sealsync.dev/requestedAt` asks for a reconcile).
    #[allow(dead_code)]
    pub async fn annotate_gitsync(&self, namespace: &str, name: &str, key: &str, value: &str) {
        let api = dynamic_api(&self.client, "sealsync.dev/v1", "GitSync", Some(namespace)).await;
        let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .expect("annotate the GitSync");
    }

    /// The GitSync's status (or `Null`).
    pub async fn gitsync_status(&self, namespace: &str, name: &str) -> Json {
        let api = dynamic_api(&self.client, "sealsync.dev/v1", "GitSync", Some(namespace)).await;
        match api.get_opt(name).await.expect("get the GitSync") {
            Some(o) => o.data["status"].clone(),
            None => Json::Null,
        }
    }

    /// The ids of the inventory a GitSync's status records, sorted, however it is kept: listed,
    /// or in ConfigMaps that must hold exactly what the status counts and vouches for (the
    /// SHA-256 of every `<id> <version>` line, sorted). An error also when an inventory
    /// ConfigMap labelled with the GitSync's uid is left that the status does not name.
    pub async fn inventory_ids(&self, namespace: &str, name: &str) -> Result<Vec<String>, String> {
        use k8s_openapi::api::core::v1::ConfigMap;
        let api = dynamic_api(&self.client, "sealsync.dev/v1", "GitSync", Some(namespace)).await;
        let gs = api.get(name).await.map_err(|e| e.to_string())?;
        let uid = gs.metadata.uid.clone().unwrap_or_default();
        let inventory = &gs.data["status"]["inventory"];
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let labelled: Vec<String> = config_maps
            .list(
                &kube::api::ListParams::default()
                    .labels(&format!("sealsync.dev/inventory-of={uid}")),
            )
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        let names: Vec<String> = inventory["configMaps"]["names"]
            .as_array()
            .map(|n| {
                n.iter()
                    .filter_map(|n| n.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        let mut left: Vec<&String> = labelled.iter().filter(|l| !names.contains(l)).collect();
        left.sort();
        if !left.is_empty() {
            return Err(format!(
                "inventory ConfigMaps the status does not name: {left:?}"
            ));
        }
        if let Some(entries) = inventory["entries"].as_array() {
            if !names.is_empty() {
                return Err(format!("both entries and ConfigMaps: {inventory}"));
            }
            let mut ids: Vec<String> = entries
                .iter()
                .filter_map(|e| e["id"].as_str().map(str::to_owned))
                .collect();
            ids.sort();
            return Ok(ids);
        }
        let mut lines = Vec::new();
        for n in &names {
            let cm = config_maps.get(n).await.map_err(|e| format!("{n}: {e}"))?;
            let text = cm
                .data
                .and_then(|d| d.get("entries").cloned())
                .unwrap_or_default();
            lines.extend(text.lines().map(str::to_owned));
        }
        lines.sort();
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        for line in &lines {
            digest.update(line.as_bytes());
            digest.update(b"\n");
        }
        let digest: String = digest
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let count = inventory["configMaps"]["count"].as_u64();
        if count != Some(lines.len() as u64)
            || inventory["configMaps"]["digest"].as_str() != Some(&format!("sha256:{digest}"))
        {
            return Err(format!(
                "the ConfigMaps hold {} entries with digest {digest}: {inventory}",
                lines.len()
            ));
        }
        Ok(lines
            .iter()
            .filter_map(|l| l.split_once(' ').map(|(id, _)| id.to_owned()))
            .collect())
    }

    /// Waits until the GitSync has applied `commit` and is Ready.
    pub async fn wait_applied(&self, namespace: &str, name: &str, commit: &str) -> Json {
        let want = commit.to_owned();
        wait_for_value(
            &format!("GitSync {namespace}/{name} to apply {commit}"),
            Duration::from_secs(60),
            || async {
                let status = self.gitsync_status(namespace, name).await;
                let applied = status["lastAppliedRevision"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&want));
                (applied && ready(&status) == Some(true)).then_some(status)
            },
            || self.controller.log_tail(30),
        )
        .await
    }

    /// Waits until the GitSync has attempted `commit` and is not Ready.
    pub async fn wait_failed(&self, namespace: &str, name: &str, commit: &str) -> Json {
        let want = commit.to_owned();
        wait_for_value(
            &format!("GitSync {namespace}/{name} to fail on {commit}"),
            Duration::from_secs(60),
            || async {
                let status = self.gitsync_status(namespace, name).await;
                let attempted = status["lastAttemptedRevision"]
                    .as_str()
                    .is_some_and(|r| r.ends_with(&want));
                (attempted && ready(&status) == Some(false)).then_some(status)
            },
            || self.controller.log_tail(30),
        )
        .await
    }

    /// The names of the objects of a kind.
    #[allow(dead_code)]
    pub async fn list_names(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
    ) -> Vec<String> {
        dynamic_api(&self.client, api_version, kind, namespace)
            .await
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .filter_map(|o| o.metadata.name)
            .collect()
    }

    /// The object, or `None`.
    pub async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<DynamicObject> {
        dynamic_api(&self.client, api_version, kind, namespace)
            .await
            .get_opt(name)
            .await
            .expect("get")
    }
}

/// A test API server (or the cluster in `SEALSYNC_E2E_KUBECONFIG`) with the CRDs, the
/// controller's namespace and `namespaces`.
pub async fn start_cluster(namespaces: &[&str]) -> (TestCluster, PathBuf, Client) {
    // SEALSYNC_E2E_KUBECONFIG runs these against a real cluster (one test at a time:
    // they share namespace names and each starts a controller).
    let cluster = TestCluster::from_env_or_start()
        .await
        .expect("start the test API server");
    prepare_cluster(cluster, namespaces).await
}

/// Installs the CRDs and creates the controller's namespace and `namespaces` on `cluster`.
pub async fn prepare_cluster(
    cluster: TestCluster,
    namespaces: &[&str],
) -> (TestCluster, PathBuf, Client) {
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let client = client_for(&kubeconfig).await;
    let crds = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/sealsync.yaml"),
    )
    .expect("read the CRDs");
    apply_yaml(&client, &crds).await;
    wait_for(
        "the GitSync CRD to be served",
        Duration::from_secs(20),
        || async {
            kube::discovery::pinned_kind(
                &client,
                &GroupVersionKind::gvk("sealsync.dev", "v1", "GitSync"),
            )
            .await
            .is_ok()
        },
    )
    .await;
    for ns in std::iter::once(&CONTROLLER_NS).chain(namespaces) {
        apply_yaml(
            &client,
            &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"),
        )
        .await;
    }
    (cluster, kubeconfig, client)
}

/// Starts the controller against `kubeconfig`, with its data under `dir`.
pub async fn start_controller(
    kubeconfig: &Path,
    dir: &Path,
    args: &[String],
    env: &[(String, String)],
) -> ControllerProcess {
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir).expect("data dir");
    let (kc, dd, vars, args) = (
        kubeconfig.to_path_buf(),
        data_dir,
        env.to_vec(),
        args.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        let extra: Vec<&str> = args.iter().map(String::as_str).collect();
        ControllerProcess::start_with_env(&kc, CONTROLLER_NS, &dd, &extra, &vars)
            .expect("start the controller")
    })
    .await
    .expect("join")
}

/// `sealsync keys fetch` of the controller's recipients into `out`, as a user runs it.
pub fn fetch_recipients(kubeconfig: &Path, out: &Path) {
    run_cli_ok(&[
        "keys",
        "fetch",
        "--kubeconfig",
        kubeconfig.to_str().expect("utf8"),
        "--controller-namespace",
        CONTROLLER_NS,
        "-o",
        out.to_str().expect("utf8"),
    ]);
}

/// `Ready`'s status.
pub fn ready(status: &Json) -> Option<bool> {
    condition(status, "Ready").map(|c| c["status"] == "True")
}

/// One condition of a status.
pub fn condition<'a>(status: &'a Json, type_: &str) -> Option<&'a Json> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

fn merge(base: &mut Json, patch: Json) {
    match (base, patch) {
        (Json::Object(b), Json::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k).or_insert(Json::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// A client for a kubeconfig file.
pub async fn client_for(kubeconfig: &Path) -> Client {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// An `Api` for any kind, through discovery.
pub async fn dynamic_api(
    client: &Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let (resource, _) =
        kube::discovery::pinned_kind(client, &GroupVersionKind::gvk(group, version, kind))
            .await
            .expect("discover the kind");
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// Server-side applies every document of `yaml` as the test's field manager.
pub async fn apply_yaml(client: &Client, yaml: &str) {
    for doc in serde_yaml::Deserializer::from_str(yaml) {
        let value: Json = serde::Deserialize::deserialize(doc).expect("yaml");
        if value.is_null() {
            continue;
        }
        let api_version = value["apiVersion"].as_str().expect("apiVersion");
        let kind = value["kind"].as_str().expect("kind");
        let name = value["metadata"]["name"].as_str().expect("name");
        let ns = value["metadata"]["namespace"].as_str();
        let api = dynamic_api(client, api_version, kind, ns).await;
        api.patch(
            name,
            &PatchParams::apply("e2e-test").force(),
            &Patch::Apply(&value),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {kind} {name}: {e}"));
    }
}

/// Runs the `sealsync` CLI without input: exit code, stdout and stderr.
pub fn run_cli_status(args: &[&str]) -> (i32, String, String) {
    let cli = sealsync_tests::bins::cli().expect("the sealsync CLI");
    let out = Command::new(cli)
        .args(args)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .expect("run sealsync");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `sealsync` CLI without input and returns stdout; panics when it fails.
pub fn run_cli_ok(args: &[&str]) -> String {
    let (code, out, err) = run_cli_status(args);
    assert_eq!(code, 0, "sealsync {args:?} failed: {err}");
    out
}

/// Runs the `sealsync` CLI with `stdin`; panics with its stderr when it fails.
pub fn run_cli(args: &[&str], stdin: &str) -> String {
    use std::io::Write;
    let cli = sealsync_tests::bins::cli().expect("the sealsync CLI");
    let mut child = Command::new(cli)
        .args(args)
        .env_remove("SEALSYNC_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_FILE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sealsync");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("sealsync");
    assert!(
        out.status.success(),
        "sealsync {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// Polls `check` every 100 ms until it is true.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 100 ms until it returns a value; on timeout panics with `context()`.
pub async fn wait_for_value<T, F, Fut, C>(
    what: &str,
    timeout: Duration,
    mut check: F,
    context: C,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
    C: Fn() -> String,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!(
                "timed out waiting for {what}; controller log:\n{}",
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Secret manifest with one value.
pub fn secret_yaml(namespace: &str, name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\ntype: Opaque\nstringData:\n  {key}: {value}\n"
    )
}

/// A ConfigMap manifest with one value.
pub fn configmap_yaml(namespace: &str, name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:\n  {key}: {value}\n"
    )
}

/// `sealed` (a sealed file's YAML) with the first character of the ciphertext of its value
/// `key` changed: a tampered file, which must never open.
pub fn tamper_sealed_value(sealed: &str, key: &str) -> String {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(sealed).expect("yaml");
    let value = doc["spec"]["encryptedData"][key]
        .as_str()
        .expect("value")
        .to_owned();
    let (id, ciphertext) = value.split_once(':').expect("id:ciphertext");
    let flipped = if ciphertext.starts_with('A') {
        "B"
    } else {
        "A"
    };
    doc["spec"]["encryptedData"][key] =
        serde_yaml::Value::from(format!("{id}:{flipped}{}", &ciphertext[1..]));
    serde_yaml::to_string(&doc).expect("yaml")
}

/// Whether a live object is gone, or on its way out (deleted, held by finalizers or a
/// terminating Namespace).
pub fn gone(live: &Option<DynamicObject>) -> bool {
    live.as_ref()
        .is_none_or(|o| o.metadata.deletion_timestamp.is_some())
}

/// Decodes `data[key]` of a live Secret.
pub fn secret_value(secret: &DynamicObject, key: &str) -> String {
    use base64::Engine as _;
    let encoded = secret.data["data"][key].as_str().expect("data key");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .expect("base64"),
    )
    .expect("utf8")
}

/// Every events.k8s.io Event in `namespace`, as JSON text (for canary checks).
pub async fn events_json(env: &Env, namespace: &str) -> String {
    let list = dynamic_api(&env.client, "events.k8s.io/v1", "Event", Some(namespace))
        .await
        .list(&Default::default())
        .await
        .expect("events");
    serde_json::to_string(&list.items).expect("json")
}

/// The controller's `/metrics` text.
pub fn metrics_text(env: &Env) -> String {
    env.controller.get("/metrics").expect("GET /metrics").1
}

/// The value of one sample (`name{labels}`) of the controller's metrics, 0 when absent.
#[allow(dead_code)]
pub fn metric_value(env: &Env, sample: &str) -> f64 {
    metrics_text(env)
        .lines()
        .find_map(|line| line.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A token of `service_account` in `namespace`, from the TokenRequest API.
pub async fn request_token(client: &Client, namespace: &str, service_account: &str) -> String {
    use k8s_openapi::api::authentication::v1::TokenRequest;
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), namespace);
    let answer = api
        .create_token_request(
            service_account,
            &Default::default(),
            &TokenRequest::default(),
        )
        .await
        .expect("TokenRequest");
    answer.status.expect("status").token
}

/// GitHub's `X-Hub-Signature-256` of a webhook body.
pub fn github_signature(body: &[u8], token: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, token.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// A GitHub push event's payload for `git_ref` of the repository at `repo_url`.
pub fn push_payload(repo_url: &str, git_ref: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "ref": git_ref,
        "repository": {"clone_url": repo_url, "ssh_url": "git@example.com:other/repo.git"},
    }))
    .expect("json")
}

/// POSTs a GitHub push event of `git_ref` of the test repository to the webhook `path`,
/// signed with `token`; the status code and the body of the answer.
#[allow(dead_code)]
pub fn post_github_push(env: &Env, path: &str, git_ref: &str, token: &str) -> (u16, String) {
    let body = push_payload(&env.repo.git_url(), git_ref);
    env.controller
        .post(
            path,
            &[
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", &github_signature(&body, token)),
            ],
            &body,
        )
        .expect("POST the push")
}

/// Plays the Deployment controller and the kubelet: the rollout of the current generation
/// is complete and available.
pub async fn roll_out(env: &Env, namespace: &str, name: &str) {
    let api = dynamic_api(&env.client, "apps/v1", "Deployment", Some(namespace)).await;
    let live = api.get(name).await.expect("the Deployment");
    let generation = live.metadata.generation.expect("generation");
    let status = serde_json::json!({"status": {
        "observedGeneration": generation,
        "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "availableReplicas": 1,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "message": "up", "lastUpdateTime": "2026-01-01T00:00:00Z",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("write the Deployment's status");
}

/// Plays the Job controller: the Job ends with `condition` (`Complete` or `Failed`).
pub async fn finish_job(env: &Env, namespace: &str, name: &str, condition: &str) {
    let api = dynamic_api(&env.client, "batch/v1", "Job", Some(namespace)).await;
    let now = "2026-01-01T00:00:00Z";
    let mut status = serde_json::json!({
        "startTime": now,
        "conditions": [{"type": condition, "status": "True", "reason": "Played",
                        "message": "played by the test", "lastProbeTime": now,
                        "lastTransitionTime": now}],
    });
    // kube-apiserver wants the terminal conditions a real Job controller sets before them.
    let (count, preceding, reason) = if condition == "Failed" {
        ("failed", "FailureTarget", "BackoffLimitExceeded")
    } else {
        status["completionTime"] = serde_json::json!(now);
        ("succeeded", "SuccessCriteriaMet", "CompletionsReached")
    };
    status[count] = serde_json::json!(1);
    status["conditions"]
        .as_array_mut()
        .expect("conditions")
        .insert(
            0,
            serde_json::json!({"type": preceding, "status": "True", "reason": reason,
                   "message": "played by the test", "lastProbeTime": now,
                   "lastTransitionTime": now}),
        );
    api.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&serde_json::json!({ "status": status })),
    )
    .await
    .expect("write the Job's status");
}
