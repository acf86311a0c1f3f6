//! The install in `deploy/`: `deploy/install.yaml` is what kustomize renders from it; it
//! applies cleanly (server-side dry-run, real apply, re-apply) with the API server's schema
//! validation; its pod meets the "restricted" Pod Security Standard (kube-apiserver's
//! PodSecurity admission judges it); and the controller runs with exactly the installed RBAC:
//! it is started with a token of its ServiceAccount and syncs a SealedSecret.

mod controller_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use controller_common::*;
use serde_json::{json, Value as Json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn kubectl(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String) {
    let cache = tempfile::tempdir().expect("tmp");
    sealsync_tests::kubectl::run(kubeconfig, cache.path(), args, stdin, None)
}

/// Every document of a multi-document YAML text, as JSON, sorted by kind, namespace, name.
fn documents(text: &str) -> Vec<Json> {
    use serde::Deserialize;
    let mut docs: Vec<Json> = serde_yaml::Deserializer::from_str(text)
        .map(|d| Json::deserialize(d).expect("YAML"))
        .filter(|d| !d.is_null())
        .collect();
    docs.sort_by_key(|d| {
        (
            d["kind"].as_str().unwrap_or_default().to_owned(),
            d["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        )
    });
    docs
}

fn rendered() -> String {
    let out = Command::new("kubectl")
        .args(["kustomize", "deploy/"])
        .current_dir(repo_root())
        .output()
        .expect("kubectl kustomize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

#[test]
fn install_yaml_is_what_kustomize_renders_from_deploy() {
    let checked_in =
        std::fs::read_to_string(repo_root().join("deploy/install.yaml")).expect("install.yaml");
    assert!(
        documents(&rendered()) == documents(&checked_in),
        "deploy/install.yaml is stale: run scripts/render-install.sh"
    );
}

#[test]
fn the_deployment_runs_the_controller_with_flags_it_has_and_the_dockerfile_builds_it() {
    let docs = documents(&rendered());
    let deployment = docs
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("a Deployment");
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    let help = Command::new(sealsync_tests::bins::controller().expect("controller binary"))
        .arg("--help")
        .output()
        .expect("--help");
    let help = String::from_utf8(help.stdout).expect("utf8");
    for arg in container["args"].as_array().expect("args") {
        let flag = arg.as_str().expect("arg").split('=').next().expect("flag");
        assert!(
            help.contains(flag),
            "the Deployment passes {flag}, which the controller lacks"
        );
    }
    assert_eq!(
        container["securityContext"]["readOnlyRootFilesystem"], true,
        "{container:#}"
    );
    let dockerfile = std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    assert!(
        dockerfile.contains("--bin sealsync-controller"),
        "{dockerfile}"
    );
    assert!(dockerfile.contains("USER 65532:65532"), "{dockerfile}");
    // The renderer of kustomize and Helm, where the controller looks for it: beside itself.
    assert!(
        dockerfile.contains("COPY --from=renderer /sealsync-renderer /sealsync-renderer"),
        "{dockerfile}"
    );
    assert!(
        dockerfile.contains("ENTRYPOINT [\"/sealsync-controller\"]"),
        "{dockerfile}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_install_applies_cleanly_and_the_controller_runs_with_its_own_rbac() {
    let cluster = sealsync_tests::apiserver::TestCluster::from_env_or_start()
        .await
        .expect("start the test API server");
    let admin = cluster.kubeconfig_path().to_path_buf();
    let client = client_for(&admin).await;

    // The namespace first, so that a dry-run of the rest can be judged; then the whole
    // install as a dry-run, for real, and again (an upgrade to the same version: no change).
    let (code, out) = kubectl(
        &admin,
        &["apply", "-f", "deploy/controller/namespace.yaml"],
        None,
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = kubectl(
        &admin,
        &["apply", "-k", "deploy/", "--dry-run=server"],
        None,
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = kubectl(&admin, &["apply", "-k", "deploy/"], None);
    assert_eq!(code, 0, "{out}");
    let (code, out) = kubectl(&admin, &["apply", "-f", "deploy/install.yaml"], None);
    assert_eq!(code, 0, "{out}");
    let (code, diff) = kubectl(&admin, &["diff", "-f", "deploy/install.yaml"], None);
    assert_eq!(
        code, 0,
        "re-applying changed something ({code}):\n{out}\n{diff}"
    );

    // The controller's pod, as the Deployment would create it, passes the namespace's
    // "restricted" Pod Security admission.
    let deployment = dynamic_api(&client, "apps/v1", "Deployment", Some(CONTROLLER_NS))
        .await
        .get("sealsync-controller")
        .await
        .expect("the Deployment");
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sealsync-controller-check", "namespace": CONTROLLER_NS},
        "spec": deployment.data["spec"]["template"]["spec"],
    });
    let (code, out) = kubectl(
        &admin,
        &["create", "--dry-run=server", "-f", "-"],
        Some(&serde_json::to_string(&pod).expect("json")),
    );
    assert_eq!(code, 0, "{out}");
    let mut insecure = pod.clone();
    insecure["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let (code, out) = kubectl(
        &admin,
        &["create", "--dry-run=server", "-f", "-"],
        Some(&serde_json::to_string(&insecure).expect("json")),
    );
    if cluster.kube_apiserver().is_some() {
        assert_ne!(code, 0, "PodSecurity admitted a privileged pod: {out}");
        assert!(out.contains("restricted"), "{out}");
    }

    // The controller with its ServiceAccount's token and nothing else.
    let token = request_token(&client, CONTROLLER_NS, "sealsync-controller").await;
    let dir = tempfile::tempdir().expect("tmp");
    let mut kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&admin).expect("kubeconfig"))
            .expect("kubeconfig YAML");
    for user in kubeconfig["users"].as_sequence_mut().expect("users") {
        user["user"] = serde_yaml::to_value(json!({"token": token})).expect("yaml");
    }
    let as_controller = dir.path().join("controller.kubeconfig");
    std::fs::write(
        &as_controller,
        serde_yaml::to_string(&kubeconfig).expect("yaml"),
    )
    .expect("write");
    let args: Vec<String> = ["--leader-elect", "--shutdown-timeout=5s"]
        .iter()
        .map(|a| (*a).to_owned())
        .collect();
    let mut controller = start_controller(&as_controller, dir.path(), &args, &[]).await;
    apply_yaml(
        &client,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n",
    )
    .await;
    let recipients = dir.path().join("recipients.txt");
    fetch_recipients(&admin, &recipients);
    let sealed = run_cli(
        &[
            "seal",
            "--recipients-file",
            recipients.to_str().expect("utf8"),
        ],
        &secret_yaml("shop", "db", "password", "canary-install-password-41d2"),
    );
    let git = tokio::task::spawn_blocking(|| sealsync_tests::git::GitServer::start().expect("git"))
        .await
        .expect("join");
    let repo = git.create_repo("apps").expect("repo");
    let commit = repo
        .commit_files(
            &[
                ("db.yaml", sealed),
                (
                    "cm.yaml",
                    configmap_yaml("shop", "settings", "mode", "blue"),
                ),
            ],
            "first",
        )
        .expect("commit");
    apply_yaml(
        &client,
        &format!(
            "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: apps\n  namespace: shop\nspec:\n  url: {}\n  interval: 2s\n",
            repo.git_url()
        ),
    )
    .await;
    let api = dynamic_api(&client, "sealsync.dev/v1", "GitSync", Some("shop")).await;
    let status = wait_for_value(
        "the GitSync to apply with the installed RBAC",
        std::time::Duration::from_secs(60),
        || async {
            let status = api.get("apps").await.ok()?.data["status"].clone();
            let applied = status["lastAppliedRevision"]
                .as_str()
                .is_some_and(|r| r.ends_with(&commit));
            (applied && ready(&status) == Some(true)).then_some(status)
        },
        || controller.log_tail(30),
    )
    .await;
    assert!(status["inventory"]["entries"]
        .as_array()
        .is_some_and(|e| e.len() == 2));
    let log = controller.log();
    assert!(
        !log.contains("forbidden"),
        "the installed RBAC lacks something:\n{log}"
    );
    assert!(!log.contains("canary-install-password-41d2"));
    let exit = controller
        .terminate(std::time::Duration::from_secs(20))
        .expect("terminate");
    assert!(
        exit.is_some_and(|s| s.success()),
        "{}",
        controller.log_tail(20)
    );
}
