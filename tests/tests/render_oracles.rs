//! sealsync's renderer gives the objects the stock `kustomize build` and `helm template` of
//! the same pinned versions give (`scripts/render-oracles.sh` builds them from their Go
//! modules), on a corpus: overlays and charts of `tests/data/render-corpus` that use every
//! kustomize feature sealsync promises, and the Helm module's own test charts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sealsync_core::render::RenderLimits;
use sealsync_core::renderer::{Engine, HelmRequest, RenderRequest, Renderer, RendererLimits};
use serde_json::Value as Json;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Where `scripts/render-oracles.sh` put `kustomize` and `helm`, built if missing.
fn oracles() -> PathBuf {
    let script = repo_root().join("scripts/render-oracles.sh");
    let built = Command::new("bash")
        .arg(&script)
        .status()
        .expect("render-oracles.sh");
    assert!(built.success(), "scripts/render-oracles.sh failed");
    let printed = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .output()
        .expect("render-oracles.sh --print-dir");
    PathBuf::from(String::from_utf8_lossy(&printed.stdout).trim())
}

fn renderer() -> Renderer {
    Renderer::new(
        sealsync_tests::bins::renderer().expect("sealsync-renderer"),
        std::env::temp_dir(),
        RendererLimits::default(),
    )
}

fn objects_of(stream: &str) -> Vec<Json> {
    serde_yaml::Deserializer::from_str(stream)
        .filter_map(|doc| {
            let value: Json = serde::Deserialize::deserialize(doc).expect("yaml");
            (!value.is_null()).then_some(value)
        })
        .collect()
}

fn ours(root: &Path, path: &str, engine: Engine, helm: Option<HelmRequest>) -> Vec<Json> {
    let request = RenderRequest {
        engine,
        path,
        allow_plaintext_secrets: true,
        helm,
        variables: None,
    };
    renderer()
        .render_in_place(root, &request, &RenderLimits::default())
        .unwrap_or_else(|e| panic!("{path}: {}", sealsync_core::Chain(&e)))
        .iter()
        .map(|m| m.object.clone())
        .collect()
}

fn run(mut command: Command) -> String {
    let home = tempfile::tempdir().expect("home");
    let output = command
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "")
        .output()
        .expect("run the oracle");
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf8")
}

#[test]
fn overlays_build_as_kustomize_build_builds_them() {
    let kustomize = oracles().join("kustomize");
    let root = repo_root().join("tests/data/render-corpus");
    let module_testdata =
        go_module_dir("sigs.k8s.io/kustomize/api@v0.21.2").join("krusty/testdata");
    let cases = [
        (root.clone(), "kustomize/overlays/prod"),
        (root.clone(), "kustomize/overlays/staging"),
        (root.clone(), "kustomize/base"),
        (module_testdata.clone(), "remoteload/multibase/dev"),
        (module_testdata, "localize/simple"),
    ];
    for (root, path) in cases {
        let mut command = Command::new(&kustomize);
        command
            .args(["build", "--load-restrictor", "LoadRestrictionsNone"])
            .arg(root.join(path));
        let theirs = objects_of(&run(command));
        let ours = ours(&root, path, Engine::Kustomize, None);
        assert!(!theirs.is_empty(), "{path}");
        assert_eq!(
            ours, theirs,
            "{path}: sealsync's build differs from kustomize build"
        );
    }
}

/// Objects by kind, namespace and name: `helm template` prints hooks after the rest, in an
/// order of its own.
fn by_identity(objects: Vec<Json>) -> BTreeMap<String, Json> {
    objects
        .into_iter()
        .map(|o| {
            let id = format!(
                "{}/{}/{}/{}",
                o["apiVersion"].as_str().unwrap_or_default(),
                o["kind"].as_str().unwrap_or_default(),
                o["metadata"]["namespace"].as_str().unwrap_or_default(),
                o["metadata"]["name"].as_str().unwrap_or_default()
            );
            (id, o)
        })
        .collect()
}

#[test]
fn charts_render_as_helm_template_renders_them() {
    let helm = oracles().join("helm");
    let corpus = repo_root().join("tests/data/render-corpus");
    let testcharts = go_module_dir("helm.sh/helm/v4@v4.3.2").join("pkg/cmd/testdata/testcharts");
    let mut cases: Vec<(PathBuf, String)> = vec![(corpus, "charts/shop".to_owned())];
    // Every chart of the Helm module's own test charts that `helm template` renders into
    // Kubernetes objects with its defaults (the others fail by design, print no objects, or,
    // like `issue-9027`, print a values dump no cluster would take and sealsync refuses).
    for chart in [
        "alpine",
        "chart-with-deprecated-api",
        "chart-with-lib-dep",
        "chart-with-only-crds",
        "chart-with-secret",
        "chart-with-template-lib-archive-dep",
        "chart-with-template-lib-dep",
        "object-order",
        "signtest",
        "subchart",
    ] {
        cases.push((testcharts.clone(), chart.to_owned()));
    }
    let mut rendered = 0;
    for (root, path) in &cases {
        let mut command = Command::new(&helm);
        command
            .args([
                "template",
                "rel",
                "--namespace",
                "corpus",
                "--include-crds",
                "--skip-tests",
            ])
            .arg(root.join(path));
        let theirs = by_identity(objects_of(&run(command)));
        let request = HelmRequest {
            release_name: "rel".to_owned(),
            namespace: "corpus".to_owned(),
            include_crds: true,
            skip_tests: true,
            ..Default::default()
        };
        let ours = by_identity(ours(root, path, Engine::Helm, Some(request)));
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{path}: different objects"
        );
        assert_eq!(
            ours, theirs,
            "{path}: sealsync's render differs from helm template"
        );
        rendered += 1;
    }
    assert_eq!(rendered, cases.len());
}

/// A module's directory in the Go module cache (the renderer's build downloaded it).
fn go_module_dir(module: &str) -> PathBuf {
    let output = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go env GOMODCACHE");
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()).join(module);
    assert!(
        dir.is_dir(),
        "{} is not in the module cache (run scripts/renderer.sh)",
        dir.display()
    );
    dir
}
