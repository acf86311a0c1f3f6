//! `sealsync import` against the real tools, live: Secrets sealed by the real `kubeseal` (built
//! from its Go module, sealing offline with `--cert` for a key made here) and encrypted by the
//! real `sops` open, through the import, to exactly what `kubeseal --recovery-unseal` and
//! `sops decrypt` print.

use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use sealsync_tests::bins;
use sealsync_tests::interop::{age_keygen, tools_dir, Sops};

const CANARY: &str = "canary-interop-7d31";

fn run(command: &mut Command, stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write as _;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let input = stdin.unwrap_or_default().to_owned();
    let mut pipe = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || pipe.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("join").expect("write");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(command: &mut Command, stdin: Option<&str>) -> String {
    let (success, stdout, stderr) = run(command, stdin);
    assert!(success, "{command:?} failed: {stderr}");
    stdout
}

fn secret(scope_annotation: Option<&str>) -> String {
    let annotations = scope_annotation
        .map(|a| format!("  annotations:\n    {a}: \"true\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: shop\n{annotations}  labels:\n    app: shop\ntype: Opaque\nstringData:\n  password: {CANARY}\n  user: admin\n"
    )
}

/// The values of the one Secret a sealsync file holds, opened with `identity`.
fn unseal(identity: &Path, sealed: &str) -> serde_json::Value {
    let cli = bins::cli().expect("sealsync");
    let opened = ok(
        Command::new(cli)
            .args(["unseal", "-o", "json", "-i"])
            .arg(identity),
        Some(sealed),
    );
    serde_json::from_str(&opened).expect("json")
}

fn decoded(secret: &serde_json::Value, key: &str) -> String {
    let b64 = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {secret}"));
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("b64"),
    )
    .expect("utf8")
}

#[test]
fn files_sealed_by_the_real_kubeseal_import_to_what_its_recovery_unseal_prints() {
    let tools = tools_dir().expect("interop tools");
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("tls.key");
    let cert = dir.path().join("tls.crt");
    ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:4096",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=sealed-secret/O=sealed-secret",
                "-keyout",
            ])
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        None,
    );
    let cli = bins::cli().expect("sealsync");
    let recipient = ok(
        Command::new(&cli)
            .args(["keys", "generate", "-o"])
            .arg(dir.path().join("id.txt")),
        None,
    )
    .trim()
    .to_owned();
    for (annotation, scope_flag, scope) in [
        (None, "strict", "strict"),
        (
            Some("sealedsecrets.bitnami.com/namespace-wide"),
            "namespace-wide",
            "namespace",
        ),
        (
            Some("sealedsecrets.bitnami.com/cluster-wide"),
            "cluster-wide",
            "cluster",
        ),
    ] {
        let sealed = ok(
            Command::new(tools.join("kubeseal"))
                .arg("--cert")
                .arg(&cert)
                .args(["--scope", scope_flag, "-o", "yaml"]),
            Some(&secret(annotation)),
        );
        let file = dir.path().join(format!("{scope_flag}.yaml"));
        std::fs::write(&file, &sealed).expect("write");
        // The peer's own recovery path, for comparison.
        let recovered = ok(
            Command::new(tools.join("kubeseal"))
                .args(["--recovery-unseal", "-o", "json", "--recovery-private-key"])
                .arg(&key)
                .arg("-f")
                .arg(&file),
            None,
        );
        let recovered: serde_json::Value = serde_json::from_str(&recovered).expect("json");
        let (success, imported, stderr) = run(
            Command::new(&cli)
                .args(["import", "kubeseal", "--key"])
                .arg(&key)
                .args(["-r", &recipient])
                .arg(&file),
            None,
        );
        assert!(success, "{scope_flag}: {stderr}");
        assert!(!imported.contains(CANARY) && !stderr.contains(CANARY));
        assert!(imported.contains(&format!("scope: {scope}")), "{imported}");
        let opened = unseal(&dir.path().join("id.txt"), &imported);
        for key in ["password", "user"] {
            assert_eq!(
                decoded(&opened, key),
                decoded(&recovered, key),
                "{scope_flag} {key}"
            );
        }
        assert_eq!(decoded(&opened, "password"), CANARY);
        assert_eq!(
            opened["metadata"]["labels"],
            recovered["metadata"]["labels"]
        );

        // Another cluster's key opens nothing; the error names the field, not the value.
        let other = dir.path().join("other.key");
        ok(
            Command::new("openssl")
                .args(["genrsa", "-out"])
                .arg(&other)
                .arg("2048"),
            None,
        );
        let (success, stdout, stderr) = run(
            Command::new(&cli)
                .args(["import", "kubeseal", "--key"])
                .arg(&other)
                .args(["-r", &recipient])
                .arg(&file),
            None,
        );
        assert!(!success);
        assert!(stderr.contains("spec.encryptedData."), "{stderr}");
        assert!(!stdout.contains(CANARY) && !stderr.contains(CANARY));
    }
}

#[test]
fn files_encrypted_by_the_real_sops_import_to_what_sops_decrypt_prints() {
    let sops = Sops::find().expect("sops");
    let dir = tempfile::tempdir().expect("tmp");
    let (identity, user) = age_keygen().expect("age-keygen");
    let user_file = dir.path().join("user.txt");
    std::fs::write(&user_file, identity).expect("identity");
    let cli = bins::cli().expect("sealsync");
    let recipient = ok(
        Command::new(&cli)
            .args(["keys", "generate", "-o"])
            .arg(dir.path().join("id.txt")),
        None,
    )
    .trim()
    .to_owned();
    for (rule, format) in [
        (vec!["encrypted_regex: ^(data|stringData)$"], "yaml"),
        (
            vec![
                "encrypted_regex: ^(data|stringData)$",
                "mac_only_encrypted: true",
            ],
            "yaml",
        ),
        (vec![], "yaml"),
        (vec!["encrypted_regex: ^(data|stringData)$"], "json"),
    ] {
        let plain = if format == "json" {
            let value: serde_yaml::Value = serde_yaml::from_str(&secret(None)).expect("yaml");
            serde_json::to_string_pretty(&value).expect("json")
        } else {
            secret(None)
        };
        let encrypted = sops
            .encrypt(&plain, &[&user], &rule, format)
            .expect("encrypt");
        let file = dir.path().join(format!("db.sops.{format}"));
        std::fs::write(&file, &encrypted).expect("write");
        let decrypted = sops
            .decrypt(&encrypted, format, &user_file)
            .expect("decrypt");
        let decrypted: serde_yaml::Value = serde_yaml::from_str(&decrypted).expect("yaml");
        let (success, imported, stderr) = run(
            Command::new(&cli)
                .args(["import", "sops", "-i"])
                .arg(&user_file)
                .args(["-r", &recipient])
                .arg(&file),
            None,
        );
        assert!(success, "{rule:?} {format}: {stderr}");
        assert!(!imported.contains(CANARY) && !stderr.contains(CANARY));
        let opened = unseal(&dir.path().join("id.txt"), &imported);
        for key in ["password", "user"] {
            assert_eq!(
                Some(decoded(&opened, key).as_str()),
                decrypted["stringData"][key].as_str(),
                "{rule:?} {format} {key}"
            );
        }
    }
}
