//! Real clients against the test API server: kube-rs discovery and server-side apply,
//! kubectl smoke checks, and the `sealsync-testcluster` binary.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use sealsync_tests::apiserver::TestApiServer;
use serde_json::json;

async fn kube_client(s: &TestApiServer) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&s.kubeconfig_yaml().expect("yaml"))
        .expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("config");
    kube::Client::try_from(cfg).expect("client")
}

#[tokio::test]
async fn kube_discovery_and_dynamic_server_side_apply() {
    let s = TestApiServer::start().await.expect("start");
    let client = kube_client(&s).await;

    let crd: serde_json::Value = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
                 "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                 "versions": [{"name": "v1", "served": true, "storage": true,
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]},
    });
    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let (crd_ar, _) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
        ))
        .expect("CRD kind discovered");
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &crd_ar);
    let crd_obj: DynamicObject = serde_json::from_value(crd).expect("crd");
    crds.patch(
        "gadgets.example.com",
        &PatchParams::apply("sealsync-test"),
        &Patch::Apply(&crd_obj),
    )
    .await
    .expect("apply CRD");

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("rediscovery");
    let (ar, caps) = discovery
        .resolve_gvk(&kube::api::GroupVersionKind::gvk(
            "example.com",
            "v1",
            "Gadget",
        ))
        .expect("Gadget discovered right after the CRD was applied");
    assert_eq!(caps.scope, Scope::Cluster);
    let gadgets: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let g: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 1}})).unwrap();
    let out = gadgets
        .patch("g1", &PatchParams::apply("alice"), &Patch::Apply(&g))
        .await
        .expect("apply gadget");
    assert_eq!(out.data["spec"]["size"], 1);
    assert_eq!(
        out.metadata.managed_fields.as_ref().unwrap()[0]
            .manager
            .as_deref(),
        Some("alice")
    );

    let g2: DynamicObject = serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {"size": 2}})).unwrap();
    let err = gadgets
        .patch("g1", &PatchParams::apply("bob"), &Patch::Apply(&g2))
        .await
        .expect_err("conflict");
    match err {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 409);
            assert_eq!(status.reason, "Conflict");
            assert!(
                status.message.contains("conflict with \"alice\""),
                "{}",
                status.message
            );
        }
        other => panic!("unexpected error {other:?}"),
    }
    let forced = gadgets
        .patch("g1", &PatchParams::apply("bob").force(), &Patch::Apply(&g2))
        .await
        .expect("force");
    assert_eq!(forced.data["spec"]["size"], 2);
    let listed = gadgets.list(&Default::default()).await.expect("list");
    assert_eq!(listed.items.len(), 1);
}

fn kubectl(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new("kubectl");
    cmd.args(args)
        .env("KUBECONFIG", dir.join("kubeconfig"))
        .env("HOME", dir)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .expect("kubectl must be installed (v1.32 at /usr/bin/kubectl)");
    if let Some(input) = stdin {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    child.wait_with_output().expect("kubectl output")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "kubectl failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: app, labels: {tier: web}}
data: {a: "1"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {tier: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx}]}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

const WIDGET: &str = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, labels: {tier: web}}\nspec: {size: 3}\n";

#[test]
fn kubectl_smoke() {
    let s = TestApiServer::start_blocking().expect("start");
    let dir = tempfile::tempdir().unwrap();
    s.write_kubeconfig(&dir.path().join("kubeconfig")).unwrap();
    let d = dir.path();

    let out = ok(&kubectl(
        d,
        &["apply", "--server-side", "-f", "-"],
        Some(MANIFESTS),
    ));
    assert!(out.contains("configmap/app serverside-applied"), "{out}");
    assert!(
        out.contains(
            "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
        ),
        "{out}"
    );
    let out = ok(&kubectl(
        d,
        &["apply", "--server-side", "-f", "-"],
        Some(WIDGET),
    ));
    assert!(
        out.contains("widget.example.com/w1 serverside-applied"),
        "{out}"
    );

    let yaml = ok(&kubectl(d, &["get", "cm", "app", "-o", "yaml"], None));
    assert!(
        yaml.contains("name: app") && yaml.contains("a: \"1\""),
        "{yaml}"
    );
    let secret = ok(&kubectl(
        d,
        &["get", "secret", "creds", "-o", "jsonpath={.data.password}"],
        None,
    ));
    assert_eq!(secret, "aHVudGVyMg==");
    let sel = ok(&kubectl(
        d,
        &["get", "cm,deploy,wd", "-l", "tier=web", "-o", "name"],
        None,
    ));
    assert_eq!(
        sel.lines().collect::<Vec<_>>(),
        [
            "configmap/app",
            "deployment.apps/web",
            "widget.example.com/w1"
        ]
    );
    let none = kubectl(d, &["get", "cm", "-l", "tier=nope"], None);
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("No resources found in default namespace.")
    );
    let table = ok(&kubectl(d, &["get", "deploy"], None));
    assert!(
        table.starts_with("NAME") && table.contains("web"),
        "{table}"
    );
    let diff = kubectl(d, &["diff", "--server-side", "-f", "-"], Some(MANIFESTS));
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );

    // a watch sees a change
    let mut watch = Command::new("kubectl")
        .args([
            "get",
            "cm",
            "app",
            "--watch",
            "--output-watch-events",
            "--request-timeout=20s",
        ])
        .env("KUBECONFIG", d.join("kubeconfig"))
        .env("HOME", d)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(watch.stdout.take().unwrap()).lines();
    let header = lines.next().unwrap().unwrap();
    assert!(header.starts_with("EVENT"), "{header}");
    assert!(lines.next().unwrap().unwrap().starts_with("ADDED"));
    ok(&kubectl(d, &["label", "cm", "app", "changed=yes"], None));
    let modified = lines.next().unwrap().unwrap();
    assert!(modified.starts_with("MODIFIED"), "{modified}");
    let _ = watch.kill();
    let _ = watch.wait();

    let del = ok(&kubectl(d, &["delete", "cm", "app"], None));
    assert_eq!(del.trim(), "configmap \"app\" deleted");
    let gone = kubectl(d, &["get", "cm", "app"], None);
    assert_eq!(gone.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gone.stderr)
        .contains("Error from server (NotFound): configmaps \"app\" not found"));
}

#[test]
fn binary_prints_url_writes_kubeconfig_and_exits_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kc.yaml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sealsync-testcluster"))
        .args(["--listen", "127.0.0.1:0", "--kubeconfig-out"])
        .arg(&kc)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let text = std::fs::read_to_string(&kc).unwrap();
    assert!(text.contains(&url), "{text}");
    let o = Command::new("kubectl")
        .args(["get", "ns", "-o", "name"])
        .env("KUBECONFIG", &kc)
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .collect::<Vec<_>>(),
        [
            "namespace/default",
            "namespace/kube-node-lease",
            "namespace/kube-public",
            "namespace/kube-system"
        ]
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            assert!(st.success(), "exit status {st:?}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
