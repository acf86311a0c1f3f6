//! Tenancy end to end: a GitSync applies and prunes as its service account (impersonated),
//! so its team's RBAC bounds what its repository may change; `--default-service-account`
//! makes that the rule; references to another namespace's Secrets are refused.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use serde_json::json;

const TEAM_A: &str = "team-a";
const TEAM_B: &str = "team-b";

/// The ServiceAccount `deployer` in `namespace`, allowed to manage ConfigMaps there only.
fn deployer(namespace: &str) -> String {
    format!(
        "apiVersion: v1
kind: ServiceAccount
metadata:
  name: deployer
  namespace: {namespace}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: deployer
  namespace: {namespace}
rules:
  - apiGroups: [\"\"]
    resources: [configmaps]
    verbs: [get, list, watch, create, update, patch, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: deployer
  namespace: {namespace}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: deployer
subjects:
  - kind: ServiceAccount
    name: deployer
    namespace: {namespace}
"
    )
}

async fn configmap_value(env: &Env, namespace: &str, name: &str) -> Option<String> {
    env.get("v1", "ConfigMap", Some(namespace), name)
        .await
        .and_then(|c| c.data["data"]["v"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitsync_changes_only_what_its_service_account_may() {
    let env = Env::start_with(
        &[TEAM_A, TEAM_B],
        &[
            "--default-service-account".to_owned(),
            "deployer".to_owned(),
        ],
        &[],
    )
    .await;
    apply_yaml(&env.client, &deployer(TEAM_A)).await;

    let first = env
        .repo
        .commit_files(
            &[
                ("a.yaml", configmap_yaml(TEAM_A, "settings", "v", "one")),
                ("extra.yaml", configmap_yaml(TEAM_A, "extra", "v", "one")),
            ],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(TEAM_A, "apps", json!({"serviceAccountName": "deployer"}))
        .await;
    env.wait_applied(TEAM_A, "apps", &first).await;
    assert_eq!(
        configmap_value(&env, TEAM_A, "settings").await.as_deref(),
        Some("one")
    );
    let managers = env
        .get("v1", "ConfigMap", Some(TEAM_A), "settings")
        .await
        .expect("settings")
        .metadata
        .managed_fields
        .unwrap_or_default();
    assert!(managers
        .iter()
        .any(|m| m.manager.as_deref() == Some("sealsync")));

    // A revision that also writes to another team's namespace: refused as a whole, naming
    // the object and the missing permission; nothing of it is applied.
    let second = env
        .repo
        .commit_files(
            &[
                ("a.yaml", configmap_yaml(TEAM_A, "settings", "v", "two")),
                ("extra.yaml", configmap_yaml(TEAM_A, "extra", "v", "one")),
                ("b.yaml", configmap_yaml(TEAM_B, "intruder", "v", "two")),
            ],
            "reach into team-b",
        )
        .expect("commit");
    let status = env.wait_failed(TEAM_A, "apps", &second).await;
    let ready = condition(&status, "Ready").expect("Ready").clone();
    let message = ready["message"].as_str().unwrap_or_default();
    assert!(message.contains("b.yaml"), "{message}");
    assert!(
        message.contains("system:serviceaccount:team-a:deployer"),
        "{message}"
    );
    assert!(
        message.contains("cannot") && message.contains("configmaps"),
        "{message}"
    );
    assert!(message.contains(TEAM_B), "{message}");
    assert!(message.contains("nothing was applied"), "{message}");
    assert_eq!(
        configmap_value(&env, TEAM_A, "settings").await.as_deref(),
        Some("one")
    );
    assert!(env
        .get("v1", "ConfigMap", Some(TEAM_B), "intruder")
        .await
        .is_none());

    // Back within bounds, and prune deletes as the service account too.
    env.repo
        .commit_files(
            &[("a.yaml", configmap_yaml(TEAM_A, "settings", "v", "three"))],
            "within bounds",
        )
        .expect("commit");
    let head = env
        .repo
        .delete_files(&["b.yaml", "extra.yaml"], "drop")
        .expect("delete");
    env.wait_applied(TEAM_A, "apps", &head).await;
    assert_eq!(
        configmap_value(&env, TEAM_A, "settings").await.as_deref(),
        Some("three")
    );
    wait_for("extra to be pruned", Duration::from_secs(20), || async {
        env.get("v1", "ConfigMap", Some(TEAM_A), "extra")
            .await
            .is_none()
    })
    .await;

    // --default-service-account: a GitSync naming no account acts as `deployer` of its own
    // namespace, which team-b does not have.
    env.apply_gitsync(TEAM_B, "apps", json!({"path": "b-only"}))
        .await;
    let b_commit = env
        .repo
        .commit_files(
            &[("b-only/cm.yaml", configmap_yaml(TEAM_B, "own", "v", "one"))],
            "team-b's own",
        )
        .expect("commit");
    let status = env.wait_failed(TEAM_B, "apps", &b_commit).await;
    let message = condition(&status, "Ready").expect("Ready")["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("system:serviceaccount:team-b:deployer"),
        "{message}"
    );
    assert!(env
        .get("v1", "ConfigMap", Some(TEAM_B), "own")
        .await
        .is_none());
    // Granting the permission heals it without a commit.
    apply_yaml(&env.client, &deployer(TEAM_B)).await;
    env.wait_applied(TEAM_B, "apps", &b_commit).await;
    assert_eq!(
        configmap_value(&env, TEAM_B, "own").await.as_deref(),
        Some("one")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_to_another_namespaces_secrets_are_refused() {
    let env = Env::start(&[TEAM_A, TEAM_B]).await;
    apply_yaml(
        &env.client,
        &secret_yaml(TEAM_B, "hook", "token", "canary-other-team-token"),
    )
    .await;
    let commit = env
        .repo
        .commit_files(
            &[("a.yaml", configmap_yaml(TEAM_A, "settings", "v", "one"))],
            "first",
        )
        .expect("commit");
    env.apply_gitsync(
        TEAM_A,
        "apps",
        json!({"webhook": {"secretRef": {"name": "hook", "namespace": TEAM_B}}}),
    )
    .await;
    let status = wait_for_value(
        "the cross-namespace reference to be refused",
        Duration::from_secs(30),
        || async {
            let status = env.gitsync_status(TEAM_A, "apps").await;
            (ready(&status) == Some(false)).then_some(status)
        },
        || env.controller.log_tail(20),
    )
    .await;
    let ready = condition(&status, "Ready").expect("Ready");
    assert_eq!(ready["reason"], "InvalidSpec", "{status:#}");
    assert!(
        ready["message"]
            .as_str()
            .is_some_and(|m| m.contains("spec.webhook.secretRef.namespace") && m.contains(TEAM_B)),
        "{status:#}"
    );
    assert_eq!(
        condition(&status, "Stalled").map(|c| c["status"].clone()),
        Some(json!("True"))
    );
    assert!(configmap_value(&env, TEAM_A, "settings").await.is_none());
    assert_ne!(
        env.gitsync_status(TEAM_A, "apps").await["lastAppliedRevision"]
            .as_str()
            .map(|r| r.ends_with(&commit)),
        Some(true)
    );
    assert!(!env.controller.log().contains("canary-other-team-token"));
}
