//! Repositories as users keep them, each synced over several revisions through the real
//! controller: apps that declare their own Namespaces, a platform repository with CRDs beside
//! their resources and cluster-scoped RBAC, a vendored install of another tool, and an
//! administrator's repository that vendors sealsync's own Namespace and CRDs. Nothing that the
//! repository holds is created by the test itself.

mod controller_common;

use std::time::Duration;

use controller_common::*;
use serde_json::json;

/// The platform namespace where the GitSyncs live (created by an administrator, not in Git).
const PLATFORM: &str = "platform";

fn namespace_yaml(name: &str, prune_enabled: bool) -> String {
    let annotations = if prune_enabled {
        "  annotations:\n    sealsync.dev/prune: enabled\n"
    } else {
        ""
    };
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n{annotations}")
}

/// `sealsync sync NAME -n PLATFORM`, as a user runs it after a push; panics when it fails.
fn sync(env: &Env, name: &str) -> String {
    let (code, out, err) = run_cli_status(&[
        "sync",
        name,
        "-n",
        PLATFORM,
        "--kubeconfig",
        &env.kubeconfig_arg(),
    ]);
    assert_eq!(
        code,
        0,
        "sealsync sync {name} failed:\n{out}{err}\n{}",
        env.controller.log_tail(30)
    );
    err
}

async fn configmap_value(env: &Env, namespace: &str, name: &str) -> Option<String> {
    env.get("v1", "ConfigMap", Some(namespace), name)
        .await
        .and_then(|c| c.data["data"]["value"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_that_declare_their_namespaces_sync_every_revision() {
    let env = Env::start(&[PLATFORM]).await;
    let apps = ["shop", "blog", "wiki"];
    let tree = |revision: usize, sealed: &[(String, String)]| {
        let mut files: Vec<(String, String)> = Vec::new();
        for app in apps {
            files.push((format!("{app}/ns.yaml"), namespace_yaml(app, false)));
            files.push((
                format!("{app}/c.yaml"),
                configmap_yaml(app, "c", "value", &format!("{app}-{revision}")),
            ));
        }
        files.extend(sealed.iter().cloned());
        files
    };
    let sealed: Vec<(String, String)> = apps
        .iter()
        .map(|app| {
            (
                format!("{app}/db.sealed.yaml"),
                env.seal(&secret_yaml(
                    app,
                    "db",
                    "password",
                    &format!("{app}-secret"),
                )),
            )
        })
        .collect();
    let first = env
        .repo
        .commit_tree(&tree(0, &sealed), "three apps")
        .expect("commit");
    env.apply_gitsync(PLATFORM, "apps", json!({"interval": "1h"}))
        .await;
    env.wait_applied(PLATFORM, "apps", &first).await;

    // The reported failure: every later revision of such a repository failed for good.
    for revision in 1..=3 {
        let commit = env
            .repo
            .commit_tree(&tree(revision, &sealed), &format!("revision {revision}"))
            .expect("commit");
        let said = sync(&env, "apps");
        assert!(said.contains(&commit), "{said}");
        for app in apps {
            assert_eq!(
                configmap_value(&env, app, "c").await.as_deref(),
                Some(format!("{app}-{revision}").as_str())
            );
        }
    }

    // Those revisions changed three ConfigMaps and nothing else: once self-heal watched the
    // applied objects, only the changed ones were planned (the first may find a watch still
    // listing). The status still describes the whole revision: all nine objects, and the
    // keys that opened each SealedSecret.
    let planned = |mode: &str| {
        metric_value(
            &env,
            &format!("sealsync_revisions_planned_total{{mode=\"{mode}\"}}"),
        )
    };
    assert!(
        planned("incremental") >= 2.0,
        "incremental {}, full {}\n{}",
        planned("incremental"),
        planned("full"),
        env.controller.log_tail(40)
    );
    let status = env.gitsync_status(PLATFORM, "apps").await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(9),
        "{status}"
    );
    assert_eq!(
        status["sealedSecrets"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );

    // A revert brings the last value back; a Secret that leaves Git is pruned.
    let head = env.repo.head("main").expect("head");
    let reverted = env.repo.revert(&head).expect("revert");
    let said = sync(&env, "apps");
    assert!(said.contains(&reverted), "{said}");
    assert_eq!(
        configmap_value(&env, "shop", "c").await.as_deref(),
        Some("shop-2")
    );
    let without_blog_secret: Vec<(String, String)> = sealed
        .iter()
        .filter(|(path, _)| !path.starts_with("blog/"))
        .cloned()
        .collect();
    env.repo
        .commit_tree(&tree(4, &without_blog_secret), "blog: no database")
        .expect("commit");
    sync(&env, "apps");
    assert!(gone(&env.get("v1", "Secret", Some("blog"), "db").await));
    assert!(env.get("v1", "Secret", Some("shop"), "db").await.is_some());

    // A file renamed with the same object: the object stays, the inventory unchanged. A copy
    // of an unchanged object under another name is refused as a duplicate, whichever way
    // the revision is planned, and the cluster stays as it was.
    let moved: Vec<(String, String)> = tree(4, &without_blog_secret)
        .into_iter()
        .map(|(path, text)| {
            let path = if path == "blog/c.yaml" {
                "blog/config.yaml".to_owned()
            } else {
                path
            };
            (path, text)
        })
        .collect();
    env.repo
        .commit_tree(&moved, "blog: rename")
        .expect("commit");
    sync(&env, "apps");
    assert_eq!(
        configmap_value(&env, "blog", "c").await.as_deref(),
        Some("blog-4")
    );
    let status = env.gitsync_status(PLATFORM, "apps").await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(8),
        "{status}"
    );
    let mut copied = moved.clone();
    copied.push((
        "shop/copy.yaml".to_owned(),
        configmap_yaml("shop", "c", "value", "shop-4"),
    ));
    let duplicate = env
        .repo
        .commit_tree(&copied, "shop: a copy")
        .expect("commit");
    let (code, _, _) = run_cli_status(&[
        "sync",
        "apps",
        "-n",
        PLATFORM,
        "--kubeconfig",
        &env.kubeconfig_arg(),
    ]);
    assert_ne!(code, 0, "a duplicate object must fail the revision");
    env.wait_failed(PLATFORM, "apps", &duplicate).await;
    let text = env.gitsync_status(PLATFORM, "apps").await.to_string();
    assert!(
        text.contains("shop/copy.yaml") && text.contains("shop/c.yaml"),
        "{text}"
    );
    env.repo
        .commit_tree(&moved, "shop: no copy")
        .expect("commit");
    sync(&env, "apps");

    // The wiki leaves Git: its ConfigMap and Secret are pruned, but its Namespace, which has
    // no sealsync.dev/prune: enabled, stays (orphaned, with a warning Event).
    let without_wiki: Vec<(String, String)> = tree(5, &without_blog_secret)
        .into_iter()
        .filter(|(path, _)| !path.starts_with("wiki/"))
        .collect();
    env.repo
        .commit_tree(&without_wiki, "retire the wiki")
        .expect("commit");
    sync(&env, "apps");
    assert!(gone(&env.get("v1", "ConfigMap", Some("wiki"), "c").await));
    assert!(gone(&env.get("v1", "Secret", Some("wiki"), "db").await));
    let wiki = env.get("v1", "Namespace", None, "wiki").await;
    assert!(
        !gone(&wiki),
        "a Namespace was deleted without the prune opt-in"
    );
    let status = env.gitsync_status(PLATFORM, "apps").await;
    let ids = status["inventory"]["entries"].to_string();
    assert!(
        !ids.contains("wiki"),
        "the orphaned Namespace stays in the inventory: {ids}"
    );
    let events = events_json(&env, PLATFORM).await;
    assert!(
        events.contains("PruneSkipped") && events.contains("Namespace wiki"),
        "{events}"
    );

    // The blog opts in, then leaves: its Namespace is deleted with it.
    let mut opted_in = without_wiki.clone();
    for (path, text) in &mut opted_in {
        if path == "blog/ns.yaml" {
            *text = namespace_yaml("blog", true);
        }
    }
    env.repo
        .commit_tree(&opted_in, "blog: may be pruned")
        .expect("commit");
    sync(&env, "apps");
    let without_blog: Vec<(String, String)> = opted_in
        .into_iter()
        .filter(|(path, _)| !path.starts_with("blog/"))
        .collect();
    env.repo
        .commit_tree(&without_blog, "retire the blog")
        .expect("commit");
    sync(&env, "apps");
    wait_for(
        "the blog Namespace to go",
        Duration::from_secs(60),
        || async { gone(&env.get("v1", "Namespace", None, "blog").await) },
    )
    .await;
    // The shop went on through all of it.
    assert_eq!(
        configmap_value(&env, "shop", "c").await.as_deref(),
        Some("shop-5")
    );
    let secret = env
        .get("v1", "Secret", Some("shop"), "db")
        .await
        .expect("shop/db");
    assert_eq!(secret_value(&secret, "password"), "shop-secret");
}

const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.tools.example.com
spec:
  group: tools.example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: "A widget. Its token may be given as ref+vault://secret/widgets#token in a Secret."
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              COLOR_FIELD
"#;

/// A vendored install of another tool: its Namespace, CRD, RBAC, workload and a resource.
fn vendored_tool(image: &str, with_color: bool) -> String {
    let crd = WIDGET_CRD.replace(
        "COLOR_FIELD",
        if with_color {
            "color: {type: string}"
        } else {
            ""
        },
    );
    let color = if with_color { "\n  color: blue" } else { "" };
    format!(
        r#"{ns}---
{crd}---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: widget-operator, namespace: widget-system}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: widget-operator}}
rules:
- apiGroups: [tools.example.com]
  resources: [widgets]
  verbs: [get, list, watch, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: widget-operator}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: widget-operator}}
subjects:
- {{kind: ServiceAccount, name: widget-operator, namespace: widget-system}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: widget-operator, namespace: widget-system}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: widget-operator}}}}
  template:
    metadata: {{labels: {{app: widget-operator}}}}
    spec:
      serviceAccountName: widget-operator
      containers:
      - name: operator
        image: {image}
---
apiVersion: v1
kind: Service
metadata: {{name: widget-operator, namespace: widget-system}}
spec:
  selector: {{app: widget-operator}}
  ports: [{{port: 443, targetPort: 8443}}]
---
apiVersion: tools.example.com/v1
kind: Widget
metadata: {{name: default, namespace: widget-system}}
spec:
  size: 3{color}
"#,
        ns = namespace_yaml("widget-system", false),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_platform_repository_with_crds_rbac_and_a_vendored_tool() {
    let env = Env::start(&[PLATFORM]).await;
    let teams = |rev: usize| {
        let mut files = Vec::new();
        for team in ["team-a", "team-b"] {
            files.push((format!("teams/{team}/ns.yaml"), namespace_yaml(team, false)));
            files.push((
                format!("teams/{team}/rbac.yaml"),
                format!(
                    "apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: deployer, namespace: {team}}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: deployer, namespace: {team}}}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  verbs: [get, list, watch, create, update, patch, delete]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: deployer, namespace: {team}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}}\nsubjects:\n- {{kind: ServiceAccount, name: deployer, namespace: {team}}}\n"
                ),
            ));
            files.push((
                format!("teams/{team}/widget.yaml"),
                format!(
                    "apiVersion: tools.example.com/v1\nkind: Widget\nmetadata: {{name: {team}, namespace: {team}}}\nspec:\n  size: {rev}\n"
                ),
            ));
        }
        files.push((
            "cluster/readers.yaml".to_owned(),
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: widget-reader}\nrules:\n- apiGroups: [tools.example.com]\n  resources: [widgets]\n  verbs: [get, list]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: widget-reader}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: widget-reader}\nsubjects:\n- {kind: Group, name: developers, apiGroup: rbac.authorization.k8s.io}\n".to_owned(),
        ));
        files
    };
    let mut files = teams(1);
    files.push((
        "vendor/widget-operator.yaml".to_owned(),
        vendored_tool("widget:1.0", false),
    ));
    let first = env.repo.commit_tree(&files, "platform").expect("commit");
    env.apply_gitsync(PLATFORM, "platform", json!({"interval": "1h"}))
        .await;
    env.wait_applied(PLATFORM, "platform", &first).await;
    let widget = env
        .get("tools.example.com/v1", "Widget", Some("team-a"), "team-a")
        .await
        .expect("a Widget in a Namespace of the same revision");
    assert_eq!(widget.data["spec"]["size"], 1);

    // Upgrade the vendored tool: a new CRD field used in the same commit, a new image, and the
    // teams' widgets change; moved files change nothing.
    let mut files = teams(2);
    files.push((
        "vendor/widget-operator/all.yaml".to_owned(),
        vendored_tool("widget:1.1", true),
    ));
    env.repo
        .commit_tree(&files, "upgrade the widget operator")
        .expect("commit");
    sync(&env, "platform");
    let widget = env
        .get(
            "tools.example.com/v1",
            "Widget",
            Some("widget-system"),
            "default",
        )
        .await
        .expect("widget");
    assert_eq!(widget.data["spec"]["color"], "blue");
    let deployment = env
        .get(
            "apps/v1",
            "Deployment",
            Some("widget-system"),
            "widget-operator",
        )
        .await
        .expect("deployment");
    assert_eq!(
        deployment.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "widget:1.1"
    );
    assert_eq!(
        env.get("tools.example.com/v1", "Widget", Some("team-b"), "team-b")
            .await
            .expect("widget")
            .data["spec"]["size"],
        2
    );

    // Several more revisions: nothing fails after the first.
    for rev in 3..=5 {
        let mut files = teams(rev);
        files.push((
            "vendor/widget-operator/all.yaml".to_owned(),
            vendored_tool("widget:1.1", true),
        ));
        env.repo
            .commit_tree(&files, &format!("widgets size {rev}"))
            .expect("commit");
        sync(&env, "platform");
    }

    // The vendored tool goes: its objects are pruned; its Namespace and CRD, which carry no
    // opt-in, stay, so the teams' widgets live on.
    let files = teams(5);
    env.repo
        .commit_tree(&files, "unvendor the widget operator")
        .expect("commit");
    sync(&env, "platform");
    assert!(gone(
        &env.get(
            "apps/v1",
            "Deployment",
            Some("widget-system"),
            "widget-operator"
        )
        .await
    ));
    assert!(gone(
        &env.get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRole",
            None,
            "widget-operator"
        )
        .await
    ));
    assert!(!gone(
        &env.get("v1", "Namespace", None, "widget-system").await
    ));
    assert!(!gone(
        &env.get(
            "apiextensions.k8s.io/v1",
            "CustomResourceDefinition",
            None,
            "widgets.tools.example.com"
        )
        .await
    ));
    assert_eq!(
        env.get("tools.example.com/v1", "Widget", Some("team-a"), "team-a")
            .await
            .expect("the team's widget survives")
            .data["spec"]["size"],
        5
    );
    // A cluster-scoped binding that leaves Git is pruned.
    let without_readers: Vec<(String, String)> = files
        .into_iter()
        .filter(|(p, _)| p != "cluster/readers.yaml")
        .collect();
    env.repo
        .commit_tree(&without_readers, "no readers")
        .expect("commit");
    sync(&env, "platform");
    assert!(gone(
        &env.get(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            None,
            "widget-reader"
        )
        .await
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendored_sealsync_install_is_never_pruned() {
    let env = Env::start(&[PLATFORM]).await;
    // The administrator's repository vendors sealsync's own Namespace and CRDs (whose schema
    // descriptions show Vault reference syntax) beside an app.
    let crds = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds/sealsync.yaml"),
    )
    .expect("the CRDs");
    assert!(
        crds.contains("ref+vault://"),
        "the CRDs document the reference syntax"
    );
    let app = configmap_yaml(PLATFORM, "settings", "value", "one");
    let first = env
        .repo
        .commit_tree(
            &[
                (
                    "sealsync/namespace.yaml",
                    namespace_yaml(CONTROLLER_NS, true),
                ),
                ("sealsync/crds.yaml", crds.clone()),
                ("app.yaml", app.clone()),
            ],
            "vendor sealsync",
        )
        .expect("commit");
    env.apply_gitsync(PLATFORM, "admin", json!({"interval": "1h"}))
        .await;
    env.wait_applied(PLATFORM, "admin", &first).await;
    let keys_before = env
        .get("v1", "Secret", Some(CONTROLLER_NS), "sealsync-key-1")
        .await
        .expect("the cluster key")
        .metadata
        .uid;

    // The vendored install leaves the repository: neither the namespace (with its keys) nor
    // the CRDs (with every GitSync) are deleted, even with the prune opt-in.
    let second = env
        .repo
        .commit_tree(
            &[(
                "app.yaml",
                configmap_yaml(PLATFORM, "settings", "value", "two"),
            )],
            "unvendor",
        )
        .expect("commit");
    sync(&env, "admin");
    assert!(!gone(
        &env.get("v1", "Namespace", None, CONTROLLER_NS).await
    ));
    for crd in ["gitsyncs.sealsync.dev", "sealingkeys.sealsync.dev"] {
        assert!(
            !gone(
                &env.get(
                    "apiextensions.k8s.io/v1",
                    "CustomResourceDefinition",
                    None,
                    crd
                )
                .await
            ),
            "{crd} was pruned"
        );
    }
    assert_eq!(
        env.get("v1", "Secret", Some(CONTROLLER_NS), "sealsync-key-1")
            .await
            .expect("the cluster key survives")
            .metadata
            .uid,
        keys_before
    );
    let status = env.wait_applied(PLATFORM, "admin", &second).await;
    assert_eq!(
        status["inventory"]["entries"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );
    let events = events_json(&env, PLATFORM).await;
    assert!(events.contains("it is a sealsync CRD"), "{events}");
    assert!(events.contains("the controller's namespace"), "{events}");

    // Deleting the administrator's GitSync prunes its app, and still not the install.
    dynamic_api(&env.client, "sealsync.dev/v1", "GitSync", Some(PLATFORM))
        .await
        .delete("admin", &Default::default())
        .await
        .expect("delete");
    wait_for("the GitSync to go", Duration::from_secs(60), || async {
        env.gitsync_status(PLATFORM, "admin").await.is_null()
    })
    .await;
    assert!(gone(
        &env.get("v1", "ConfigMap", Some(PLATFORM), "settings").await
    ));
    assert!(!gone(
        &env.get("v1", "Namespace", None, CONTROLLER_NS).await
    ));
}
