//! `kubectl apply --server-side -f deploy/crds/` installs the checked-in CRDs, and a GitSync
//! written as the README shows is accepted, listed with its short name and printer columns.
//! The API server applies the CRD's schema: defaults are set and a GitSync that breaks it is
//! refused (on the real kube-apiserver, which `scripts/test.sh` uses, that also checks the
//! schema is structural).

use std::path::{Path, PathBuf};

use sealsync_tests::apiserver::TestCluster;

fn kubectl(kubeconfig: &Path, cache: &Path, args: &[&str], stdin: Option<&str>) -> (i32, String) {
    sealsync_tests::kubectl::run(kubeconfig, cache, args, stdin, Some(Path::new(".")))
}

#[test]
fn crds_install_with_kubectl_server_side_apply() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let cluster = runtime
        .block_on(TestCluster::from_env_or_start())
        .expect("start a test cluster");
    let dir = tempfile::tempdir().expect("tmp");
    let kubeconfig = cluster.kubeconfig_path().to_path_buf();
    let cache = dir.path().join("cache");
    let crds: PathBuf = [env!("CARGO_MANIFEST_DIR"), "..", "deploy", "crds"]
        .iter()
        .collect();
    let crds = crds.to_str().expect("utf8 path");

    let (code, out) = kubectl(
        &kubeconfig,
        &cache,
        &["apply", "--server-side", "-f", crds],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("gitsyncs.sealsync.dev serverside-applied"),
        "{out}"
    );

    // (`kubectl create namespace` sends protobuf, which the embedded server does not read.)
    let gitsync = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: shop\n  \
                   namespace: shop\nspec:\n  url: git://127.0.0.1/shop.git\n  ref:\n    branch: main\n  \
                   path: apps/shop\n  interval: 1m\n";
    let (code, out) = kubectl(
        &kubeconfig,
        &cache,
        &["apply", "--server-side", "-f", "-"],
        Some(gitsync),
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = kubectl(&kubeconfig, &cache, &["get", "gs", "-n", "shop"], None);
    assert_eq!(code, 0, "{out}");
    for column in ["NAME", "READY", "REVISION", "SUSPENDED", "AGE", "shop"] {
        assert!(out.contains(column), "missing {column}: {out}");
    }
    // The defaults of the schema, as the API server stored them.
    let (code, out) = kubectl(
        &kubeconfig,
        &cache,
        &[
            "get",
            "gs",
            "shop",
            "-n",
            "shop",
            "-o",
            "jsonpath={.spec.prune} {.spec.selfHeal}",
        ],
        None,
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.trim(), "true true", "{out}");
    // A GitSync that breaks the schema is refused by the API server itself.
    let invalid = "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: bad\n  namespace: shop\nspec:\n  url: git://127.0.0.1/shop.git\n  interval: 1m\n  prune: maybe\n";
    let (code, out) = kubectl(
        &kubeconfig,
        &cache,
        &["apply", "--server-side", "-f", "-"],
        Some(invalid),
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("spec.prune"), "{out}");

    // What the schema can say beyond types (patterns, lengths, CEL rules) is refused at the
    // door, naming the field. The embedded test server checks types only.
    if cluster.server().is_err() {
        let spec = "  url: git://127.0.0.1/shop.git\n  interval: 1m\n";
        let cases = [
            (
                "spec.url",
                "  url: ssh://git@example.com/shop.git\n  interval: 1m\n".to_owned(),
            ),
            (
                "spec.url",
                "  url: https://user:pw@example.com/shop.git\n  interval: 1m\n".to_owned(),
            ),
            (
                "spec.interval",
                "  url: git://127.0.0.1/shop.git\n  interval: 10 minutes\n".to_owned(),
            ),
            (
                "spec.interval",
                "  url: git://127.0.0.1/shop.git\n  interval: 500ms\n".to_owned(),
            ),
            ("spec.timeout", format!("{spec}  timeout: 0s\n")),
            (
                "spec.ref",
                format!("{spec}  ref: {{branch: main, tag: v1}}\n"),
            ),
            ("spec.ref", format!("{spec}  ref: {{}}\n")),
            ("spec.ref.commit", format!("{spec}  ref: {{commit: abc}}\n")),
            (
                "spec.serviceAccountName",
                format!("{spec}  serviceAccountName: Bad_Name\n"),
            ),
            (
                "spec.targetNamespace",
                format!("{spec}  targetNamespace: not.a.label\n"),
            ),
            (
                "spec.secretRef.name",
                format!("{spec}  secretRef: {{name: \"has space\"}}\n"),
            ),
            (
                "spec.vault.kvVersion",
                format!("{spec}  vault: {{kvVersion: 3}}\n"),
            ),
            (
                "spec.vault.refreshInterval",
                format!("{spec}  vault: {{refreshInterval: soon}}\n"),
            ),
        ];
        for (field, spec) in cases {
            let manifest = format!(
                "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: refused\n  namespace: shop\nspec:\n{spec}"
            );
            let (code, out) = kubectl(
                &kubeconfig,
                &cache,
                &["apply", "--server-side", "-f", "-"],
                Some(&manifest),
            );
            assert_ne!(code, 0, "accepted:\n{manifest}\n{out}");
            assert!(
                out.contains(field),
                "{field} not named for:\n{manifest}\n{out}"
            );
        }
        // And what is valid stays valid.
        for spec in [
            "  url: https://example.com/shop.git\n  interval: 1h30m\n  timeout: 90s\n  ref: {commit: 0123456789abcdef0123456789abcdef01234567}\n",
            "  url: http://git.example.com:3000/org/shop\n  interval: 1s\n  ref: {tag: v1.2.3}\n  vault: {kvVersion: 1, refreshInterval: 5m}\n",
        ] {
            let manifest = format!(
                "apiVersion: sealsync.dev/v1\nkind: GitSync\nmetadata:\n  name: accepted\n  namespace: shop\nspec:\n{spec}"
            );
            let (code, out) = kubectl(
                &kubeconfig,
                &cache,
                &["apply", "--server-side", "-f", "-"],
                Some(&manifest),
            );
            assert_eq!(code, 0, "refused:\n{manifest}\n{out}");
        }
    }
    drop(runtime);
}
