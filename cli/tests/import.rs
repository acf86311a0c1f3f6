//! `sealsync import` round trips through the real binary: files written by the real sops and
//! kubeseal (`tests/cmd/fixtures/`, made by the generators beside the crypto crate's vectors)
//! become sealsync files that open to the same Secret, name, labels, type and scope.

use std::path::Path;

use base64::Engine as _;
mod common;
use common::{all_output, ok, run, sealsync};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cmd/fixtures");

fn keygen(dir: &Path) -> String {
    let out = run(
        sealsync()
            .args(["keys", "generate", "-o"])
            .arg(dir.join("id.txt")),
        None,
    );
    ok(&out).trim().to_owned()
}

fn unseal(dir: &Path, sealed: &str) -> Vec<serde_json::Value> {
    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-o", "json", "-i"])
            .arg(dir.join("id.txt")),
        Some(sealed),
    ));
    let value: serde_json::Value = serde_json::from_str(&opened).expect("json");
    match value {
        serde_json::Value::Object(ref o)
            if o.get("kind").and_then(|k| k.as_str()) == Some("List") =>
        {
            o["items"].as_array().expect("items").clone()
        }
        other => vec![other],
    }
}

fn value(secret: &serde_json::Value, key: &str) -> String {
    let b64 = secret["data"][key].as_str().expect("value");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64"),
    )
    .expect("utf8")
}

#[test]
fn kubeseal_files_of_every_scope_become_sealsync_files_of_that_scope() {
    let dir = tempfile::tempdir().expect("tmp");
    let recipient = keygen(dir.path());
    for (file, scope) in [
        ("strict.yaml", "strict"),
        ("namespace-wide.yaml", "namespace"),
        ("cluster-wide.yaml", "cluster"),
    ] {
        let out = run(
            sealsync()
                .args(["import", "kubeseal", "--key"])
                .arg(format!("{FIXTURES}/kubeseal/keys.yaml"))
                .args(["-r", &recipient])
                .arg(format!("{FIXTURES}/kubeseal/{file}")),
            None,
        );
        let sealed = ok(&out);
        assert!(!all_output(&out).contains("canary"), "{file}");
        assert!(sealed.contains("apiVersion: sealsync.dev/v1"), "{sealed}");
        assert!(
            sealed.contains(&format!("scope: {scope}")),
            "{file}: {sealed}"
        );
        let secrets = unseal(dir.path(), &sealed);
        let [secret] = secrets.as_slice() else {
            panic!("{file}: one Secret, got {secrets:?}")
        };
        assert_eq!(value(secret, "password"), "canary-kubeseal-vector-5e90");
        assert_eq!(value(secret, "username"), "admin");
        assert_eq!(secret["metadata"]["name"], "db");
        assert_eq!(secret["metadata"]["namespace"], "shop");
        assert_eq!(secret["metadata"]["labels"]["app"], "shop");
        assert_eq!(secret["metadata"]["annotations"]["team"], "payments");
        assert_eq!(secret["type"], "kubernetes.io/basic-auth");
        assert_eq!(secret["immutable"], true);
    }
}

#[test]
fn sops_files_become_sealsync_files_with_their_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let recipient = keygen(dir.path());
    let out = run(
        sealsync()
            .args(["import", "sops", "-i"])
            .arg(format!("{FIXTURES}/sops/identity.txt"))
            .args(["-r", &recipient])
            .arg(format!("{FIXTURES}/sops/db.sops.yaml")),
        None,
    );
    let sealed = ok(&out);
    assert!(!all_output(&out).contains("canary"));
    let secrets = unseal(dir.path(), &sealed);
    let [secret] = secrets.as_slice() else {
        panic!("one Secret, got {secrets:?}")
    };
    assert_eq!(value(secret, "password"), "canary-sops-string-1b4");
    assert_eq!(value(secret, "port"), "5432");
    assert_eq!(value(secret, "token"), "canary-sops-data-7e2");
    assert_eq!(secret["metadata"]["labels"]["app"], "shop");
    assert!(secret.get("sops").is_none());
}
