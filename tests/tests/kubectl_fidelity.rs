//! kubectl fidelity suite: drives the real `/usr/bin/kubectl` (v1.32) against the test API
//! server and checks that each command ends the way it ends against a real kube-apiserver:
//! the same exit code, the same messages, the same objects.
//!
//! Every test starts its own server on a free port and gives kubectl its own kubeconfig and
//! discovery cache, so the tests run in parallel.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sealsync_tests::apiserver::TestApiServer;
use serde_json::Value;

const KUBECTL: &str = "kubectl";

/// A server plus a kubectl configured for it.
struct Kubectl {
    _server: TestApiServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

/// What one kubectl run printed and returned.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> Self {
        assert_eq!(self.code, 0, "kubectl failed: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("kubectl output is not JSON ({e}): {self:#?}"))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Kubectl {
    fn new() -> Self {
        let server = TestApiServer::start_blocking().expect("start the test API server");
        let dir = tempfile::tempdir().expect("temp dir");
        let kubeconfig = dir.path().join("kubeconfig");
        server
            .write_kubeconfig(&kubeconfig)
            .expect("write kubeconfig");
        Kubectl {
            _server: server,
            dir,
            kubeconfig,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null());
        cmd
    }

    fn run(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("run kubectl").into()
    }

    fn run_env(&self, args: &[&str], key: &str, value: &str) -> Run {
        self.command(args)
            .env(key, value)
            .output()
            .expect("run kubectl")
            .into()
    }

    /// Writes a manifest into the test directory and returns its path.
    fn file(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, content).expect("write manifest");
        path.to_string_lossy().into_owned()
    }
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
              color: {type: string}
"#;

const WIDGETS: &str = r#"
apiVersion: example.com/v1
kind: Widget
metadata: {name: w1, namespace: default, labels: {app: demo}}
spec: {size: 1, color: blue}
---
apiVersion: example.com/v1
kind: Widget
metadata: {name: w2, namespace: default, labels: {app: other}}
spec: {size: 2, color: red}
"#;

fn config_map(key_value: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: default
  labels: {{app: demo, tier: backend}}
data:
  key: {key_value}
"#
    )
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels: {app: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        ports: [{containerPort: 80}]
"#;

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| {
            i["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn apply_mixed_manifests_with_crd_and_custom_resources_in_one_run() {
    let k = Kubectl::new();
    let all = k.file(
        "all.yaml",
        &format!("{CRD}---{}---{DEPLOYMENT}---{WIDGETS}", config_map("one")),
    );
    // As against a real cluster: kubectl maps every document before applying, so the custom
    // resources of a CRD in the same run fail with a mapping error (exit 1) while everything
    // else is applied.
    let first = k.run(&["apply", "--server-side", "-f", &all]);
    assert_eq!(first.code, 1, "{first:#?}");
    assert!(
        first.stdout.contains(
            "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
        ),
        "{first:#?}"
    );
    assert!(first
        .stdout
        .contains("configmap/settings serverside-applied"));
    assert!(first
        .stdout
        .contains("deployment.apps/web serverside-applied"));
    assert!(
        first
            .stderr
            .contains("resource mapping not found for name: \"w1\" namespace: \"default\"")
            && first.stderr.contains("ensure CRDs are installed first"),
        "{first:#?}"
    );
    // The second run finds the established CRD and applies its resources.
    let second = k.run(&["apply", "--server-side", "-f", &all]).ok();
    assert!(
        second
            .stdout
            .contains("widget.example.com/w1 serverside-applied"),
        "{second:#?}"
    );
    assert!(second
        .stdout
        .contains("widget.example.com/w2 serverside-applied"));
    let widgets = k.run(&["get", "widgets", "-o", "json"]).ok().json();
    assert_eq!(names(&widgets), vec!["w1", "w2"]);
}

#[test]
fn apply_crd_then_custom_resources_in_two_runs() {
    let k = Kubectl::new();
    let crd = k.file("crd.yaml", CRD);
    let widgets = k.file("widgets.yaml", WIDGETS);
    let out = k.run(&["apply", "--server-side", "-f", &crd]).ok();
    assert_eq!(
        out.stdout.trim(),
        "customresourcedefinition.apiextensions.k8s.io/widgets.example.com serverside-applied"
    );
    let out = k.run(&["apply", "--server-side", "-f", &widgets]).ok();
    assert_eq!(
        out.stdout.trim(),
        "widget.example.com/w1 serverside-applied\nwidget.example.com/w2 serverside-applied"
    );
    // Short name from the CRD, and the managedFields kubectl shows on request.
    let w1 = k
        .run(&["get", "wd", "w1", "-o", "json", "--show-managed-fields"])
        .ok()
        .json();
    assert_eq!(w1["spec"]["size"], 1);
    let mf = &w1["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl");
    assert_eq!(mf["operation"], "Apply");
    assert_eq!(mf["apiVersion"], "example.com/v1");
    assert!(mf["fieldsV1"]["f:spec"]["f:size"].is_object(), "{mf:#}");
    // Re-applying unchanged is still "serverside-applied", exit 0.
    let again = k.run(&["apply", "--server-side", "-f", &widgets]).ok();
    assert!(again
        .stdout
        .contains("widget.example.com/w1 serverside-applied"));
}

#[test]
fn get_yaml_and_json_with_label_selectors() {
    let k = Kubectl::new();
    let crd = k.file("crd.yaml", CRD);
    k.run(&["apply", "--server-side", "-f", &crd]).ok();
    let docs = k.file(
        "docs.yaml",
        &format!("{}---{DEPLOYMENT}---{WIDGETS}", config_map("one")),
    );
    k.run(&["apply", "--server-side", "-f", &docs]).ok();
    let extra = k.file(
        "extra.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain, namespace: default, labels: {app: other}}\n",
    );
    k.run(&["apply", "--server-side", "-f", &extra]).ok();

    let demo = k
        .run(&["get", "configmaps", "-l", "app=demo", "-o", "json"])
        .ok()
        .json();
    assert_eq!(demo["kind"], "List");
    assert_eq!(names(&demo), vec!["settings"]);
    let set_based = k
        .run(&["get", "cm", "-l", "app in (demo,other),!tier", "-o", "json"])
        .ok()
        .json();
    assert_eq!(names(&set_based), vec!["plain"]);
    let widgets = k
        .run(&["get", "widgets", "-l", "app!=demo", "-o", "json"])
        .ok()
        .json();
    assert_eq!(names(&widgets), vec!["w2"]);

    let yaml = k.run(&["get", "cm", "settings", "-o", "yaml"]).ok().stdout;
    let obj: Value = serde_yaml::from_str(&yaml).expect("yaml");
    assert_eq!(obj["data"]["key"], "one");
    assert_eq!(obj["metadata"]["labels"]["tier"], "backend");
    // kubectl hides managedFields unless asked.
    assert!(obj["metadata"].get("managedFields").is_none(), "{yaml}");
    let list_yaml = k
        .run(&["get", "deploy", "-l", "app=demo", "-o", "yaml"])
        .ok()
        .stdout;
    let list: Value = serde_yaml::from_str(&list_yaml).expect("yaml");
    assert_eq!(list["kind"], "List");
    assert_eq!(names(&list), vec!["web"]);

    let none = k.run(&["get", "cm", "-l", "app=nothing"]).ok();
    assert_eq!(none.stdout, "");
    assert_eq!(
        none.stderr.trim(),
        "No resources found in default namespace."
    );
    let missing = k.run(&["get", "cm", "nope", "-o", "json"]);
    assert_eq!(missing.code, 1);
    assert_eq!(
        missing.stderr.trim(),
        "Error from server (NotFound): configmaps \"nope\" not found"
    );
}

/// Reads lines from a child's stdout on a thread, so the test can wait with a timeout.
fn line_reader(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

#[test]
fn get_watch_sees_changes() {
    let k = Kubectl::new();
    let cm = k.file("cm.yaml", &config_map("one"));
    k.run(&["apply", "--server-side", "-f", &cm]).ok();
    let mut child = k
        .command(&[
            "get",
            "configmap",
            "settings",
            "--watch",
            "-o",
            "jsonpath={.data.key}{\"\\n\"}",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kubectl get --watch");
    let lines = line_reader(&mut child);
    let first = lines.recv_timeout(Duration::from_secs(20));
    let changed = k.file("cm2.yaml", &config_map("two"));
    k.run(&["apply", "--server-side", "-f", &changed]).ok();
    let second = lines.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(first.as_deref(), Ok("one"));
    assert_eq!(second.as_deref(), Ok("two"));
}

#[test]
fn diff_server_side_exit_codes_and_content() {
    let k = Kubectl::new();
    let cm = k.file("cm.yaml", &config_map("one"));
    k.run(&["apply", "--server-side", "-f", &cm]).ok();
    let same = k.run(&["diff", "--server-side", "-f", &cm]);
    assert_eq!(same.code, 0, "{same:#?}");
    assert_eq!(same.stdout, "");

    let changed = k.file("cm2.yaml", &config_map("two"));
    let diff = k.run(&["diff", "--server-side", "-f", &changed]);
    assert_eq!(diff.code, 1, "{diff:#?}");
    assert!(
        diff.stdout.contains("v1.ConfigMap.default.settings"),
        "{diff:#?}"
    );
    assert!(diff.stdout.contains("\n-  key: one\n"), "{diff:#?}");
    assert!(diff.stdout.contains("\n+  key: two\n"), "{diff:#?}");
    // Only the data line and nothing else (the server-side dry run keeps everything else).
    let changes: Vec<&str> = diff
        .stdout
        .lines()
        .filter(|l| {
            (l.starts_with('-') || l.starts_with('+'))
                && !l.starts_with("---")
                && !l.starts_with("+++")
        })
        .collect();
    assert_eq!(changes, vec!["-  key: one", "+  key: two"], "{diff:#?}");
    // A diff is a dry run: nothing changed.
    let live = k.run(&["get", "cm", "settings", "-o", "json"]).ok().json();
    assert_eq!(live["data"]["key"], "one");

    // A new object diffs against nothing.
    let new = k.file(
        "new.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh, namespace: default}\ndata: {a: b}\n",
    );
    let created = k.run(&["diff", "--server-side", "-f", &new]);
    assert_eq!(created.code, 1, "{created:#?}");
    assert!(created.stdout.contains("+  a: b"), "{created:#?}");
    assert_eq!(k.run(&["get", "cm", "fresh"]).code, 1);
}

#[test]
fn delete_reports_like_a_real_cluster() {
    let k = Kubectl::new();
    let cm = k.file("cm.yaml", &config_map("one"));
    k.run(&["apply", "--server-side", "-f", &cm]).ok();
    let out = k.run(&["delete", "-f", &cm]).ok();
    assert_eq!(out.stdout.trim(), "configmap \"settings\" deleted");
    let gone = k.run(&["get", "cm", "settings"]);
    assert_eq!(gone.code, 1);
    assert_eq!(
        gone.stderr.trim(),
        "Error from server (NotFound): configmaps \"settings\" not found"
    );
    let again = k.run(&["delete", "configmap", "settings"]);
    assert_eq!(again.code, 1);
    assert_eq!(
        again.stderr.trim(),
        "Error from server (NotFound): configmaps \"settings\" not found"
    );
    k.run(&["delete", "configmap", "settings", "--ignore-not-found"])
        .ok();
}

#[test]
fn replace_with_a_stale_object_is_a_conflict() {
    let k = Kubectl::new();
    let cm = k.file("cm.yaml", &config_map("one"));
    k.run(&["apply", "--server-side", "-f", &cm]).ok();
    let stale_yaml = k.run(&["get", "cm", "settings", "-o", "yaml"]).ok().stdout;
    // Someone else changes the object, so the saved resourceVersion is old.
    k.run(&["label", "cm", "settings", "changed=yes"]).ok();
    let stale = k.file("stale.yaml", &stale_yaml.replace("key: one", "key: mine"));
    let out = k.run(&["replace", "-f", &stale]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.contains(
            "Error from server (Conflict): error when replacing \""
        ) && out.stderr.contains(
            "Operation cannot be fulfilled on configmaps \"settings\": the object has been modified; please apply your changes to the latest version and try again"
        ),
        "{out:#?}"
    );
    // Without a resourceVersion the replace goes through.
    let fresh = k.file("fresh.yaml", &config_map("mine"));
    let out = k.run(&["replace", "-f", &fresh]).ok();
    assert_eq!(out.stdout.trim(), "configmap/settings replaced");
}

#[test]
fn second_field_manager_collides_then_forces() {
    let k = Kubectl::new();
    let cm = k.file("cm.yaml", &config_map("one"));
    k.run(&["apply", "--server-side", "-f", &cm]).ok();
    let theirs = k.file("theirs.yaml", &config_map("two"));
    let out = k.run(&[
        "apply",
        "--server-side",
        "--field-manager=other",
        "-f",
        &theirs,
    ]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl\": .data.key\n"
        ),
        "{out:#?}"
    );
    assert!(out.stderr.contains("--force-conflicts"));
    // Applying the same values as the other manager is shared ownership, not a conflict.
    k.run(&["apply", "--server-side", "--field-manager=other", "-f", &cm])
        .ok();
    let out = k
        .run(&[
            "apply",
            "--server-side",
            "--field-manager=other",
            "--force-conflicts",
            "-f",
            &theirs,
        ])
        .ok();
    assert_eq!(out.stdout.trim(), "configmap/settings serverside-applied");
    let live = k
        .run(&[
            "get",
            "cm",
            "settings",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .ok()
        .json();
    assert_eq!(live["data"]["key"], "two");
    let managed = live["metadata"]["managedFields"]
        .as_array()
        .expect("entries");
    let owner_of_key: Vec<&str> = managed
        .iter()
        .filter(|e| e["fieldsV1"]["f:data"]["f:key"].is_object())
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert_eq!(owner_of_key, vec!["other"]);
    // The original applier now conflicts the other way round.
    let back = k.run(&["apply", "--server-side", "-f", &cm]);
    assert_eq!(back.code, 1);
    assert!(back
        .stderr
        .starts_with("error: Apply failed with 1 conflict: conflict with \"other\": .data.key\n"));
}

#[test]
fn edit_then_server_side_apply_conflicts_with_the_update_manager() {
    let k = Kubectl::new();
    let cm = k.file("cm.yaml", &config_map("one"));
    k.run(&["apply", "--server-side", "-f", &cm]).ok();
    // `kubectl edit` with a scripted editor sends a strategic merge patch as "kubectl-edit".
    let out = k.run_env(
        &["edit", "cm", "settings"],
        "KUBE_EDITOR",
        "sed -i s/key:\\ one/key:\\ edited/",
    );
    assert_eq!(out.code, 0, "{out:#?}");
    assert_eq!(out.stdout.trim(), "configmap/settings edited");
    let out = k.run(&["apply", "--server-side", "-f", &cm]);
    assert_eq!(out.code, 1, "{out:#?}");
    assert!(
        out.stderr.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl-edit\" using v1: .data.key\n"
        ),
        "{out:#?}"
    );
    k.run(&["apply", "--server-side", "--force-conflicts", "-f", &cm])
        .ok();
    let live = k.run(&["get", "cm", "settings", "-o", "json"]).ok().json();
    assert_eq!(live["data"]["key"], "one");
}

#[test]
fn client_side_apply_label_and_annotate_use_patches() {
    let k = Kubectl::new();
    let dep = k.file("dep.yaml", DEPLOYMENT);
    let out = k.run(&["apply", "-f", &dep]).ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web created");
    // A second client-side apply sends a strategic merge patch with $setElementOrder.
    let changed = k.file("dep2.yaml", &DEPLOYMENT.replace("nginx:1.27", "nginx:1.28"));
    let out = k.run(&["apply", "-f", &changed]).ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web configured");
    let out = k.run(&["apply", "-f", &changed]).ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web unchanged");
    k.run(&["label", "deploy", "web", "team=a"]).ok();
    k.run(&["annotate", "deploy", "web", "note=hello"]).ok();
    let live = k
        .run(&[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .ok()
        .json();
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.28"
    );
    assert_eq!(live["metadata"]["labels"]["team"], "a");
    assert_eq!(live["metadata"]["annotations"]["note"], "hello");
    let managers: Vec<&str> = live["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["manager"].as_str())
        .collect();
    for m in [
        "kubectl-client-side-apply",
        "kubectl-label",
        "kubectl-annotate",
    ] {
        assert!(managers.contains(&m), "{managers:?}");
    }
    // Upgrading to server-side apply takes over the client-side fields without conflicts.
    let out = k.run(&["apply", "--server-side", "-f", &changed]).ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web serverside-applied");
}

#[test]
fn scale_then_server_side_apply_conflicts() {
    let k = Kubectl::new();
    let dep = k.file("dep.yaml", DEPLOYMENT);
    k.run(&["apply", "--server-side", "-f", &dep]).ok();
    let out = k.run(&["scale", "deployment", "web", "--replicas=5"]).ok();
    assert_eq!(out.stdout.trim(), "deployment.apps/web scaled");
    // The Scale and the parent agree; the scale write bumped the generation and left an
    // Update entry for the User-Agent's manager with `subresource: scale` (and, as upstream's
    // ScaleHandler writes it, no time stamp).
    let scale = k
        .run(&[
            "get",
            "--raw",
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
        ])
        .ok()
        .json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 5);
    assert_eq!(scale["status"]["selector"], "app=web");
    let live = k
        .run(&[
            "get",
            "deployment",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .ok()
        .json();
    assert_eq!(live["spec"]["replicas"], 5);
    assert_eq!(live["metadata"]["generation"], 2);
    let scale_entry = live["metadata"]["managedFields"]
        .as_array()
        .expect("entries")
        .iter()
        .find(|e| e["subresource"] == "scale")
        .cloned()
        .expect("an entry for the scale write");
    assert_eq!(
        scale_entry,
        serde_json::json!({
            "apiVersion": "apps/v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}},
            "manager": "kubectl", "operation": "Update", "subresource": "scale",
        })
    );
    let out = k.run(&["apply", "--server-side", "-f", &dep]);
    assert_eq!(out.code, 1, "{out:#?}");
    // kubectl's whole message, as against a real cluster.
    assert_eq!(
        out.stderr,
        "error: Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas
Please review the fields above--they currently have other managers. Here
are the ways you can resolve this warning:
* If you intend to manage all of these fields, please re-run the apply
  command with the `--force-conflicts` flag.
* If you do not intend to manage all of the fields, please edit your
  manifest to remove references to the fields that should keep their
  current managers.
* You may co-own fields by updating your manifest to match the existing
  value; in this case, you'll become the manager if the other manager(s)
  stop managing the field (remove it from their configuration).
See https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts
",
        "{out:#?}"
    );
    // Forcing takes spec.replicas back for the applier.
    k.run(&["apply", "--server-side", "--force-conflicts", "-f", &dep])
        .ok();
    let live = k
        .run(&["get", "deployment", "web", "-o", "json"])
        .ok()
        .json();
    assert_eq!(live["spec"]["replicas"], 2);
    assert_eq!(live["metadata"]["generation"], 3);
}
