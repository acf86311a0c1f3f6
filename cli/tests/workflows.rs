//! End-to-end workflows through the real `sealsync` binary as a process.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
mod common;
use common::{ok, run, sealsync};

const CANARY: &str = "canary-9d1f2e-never-print-me";

fn keygen(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    let out = run(sealsync().args(["keys", "generate", "-o"]).arg(&path), None);
    let recipient = ok(&out).trim().to_owned();
    assert!(recipient.starts_with("age1"), "{recipient}");
    let mode = fs::metadata(&path).expect("identity").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "identity files are private");
    recipient
}

fn secret_yaml(password: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\ntype: Opaque\n\
         stringData:\n  password: {password}\n  user: admin\n  host: db.internal\n"
    )
}

fn line_of<'a>(doc: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    doc.lines()
        .find(|l| l.trim_start().starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {key} in\n{doc}"))
}

#[test]
fn seal_from_stdin_then_unseal_round_trips() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = keygen(dir.path(), "id.txt");
    let sealed = ok(&run(
        sealsync().args(["seal", "-r", &r]),
        Some(&secret_yaml(CANARY)),
    ));
    assert!(!sealed.contains(CANARY));
    assert!(sealed.contains("kind: SealedSecret"));
    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-o", "json", "-i"])
            .arg(dir.path().join("id.txt")),
        Some(&sealed),
    ));
    let json: serde_json::Value = serde_json::from_str(&opened).expect("json");
    use base64::Engine as _;
    let pw = base64::engine::general_purpose::STANDARD
        .decode(json["data"]["password"].as_str().expect("pw"))
        .expect("b64");
    assert_eq!(pw, CANARY.as_bytes());
}

#[test]
fn json_input_and_from_literal_and_from_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = keygen(dir.path(), "id.txt");
    let json_secret = format!(
        r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"j","namespace":"n"}},"stringData":{{"k":"{CANARY}"}}}}"#
    );
    ok(&run(
        sealsync().args(["seal", "-o", "json", "-r", &r]),
        Some(&json_secret),
    ));

    let value_file = dir.path().join("tls.key");
    fs::write(&value_file, CANARY).expect("write");
    let out = ok(&run(
        sealsync()
            .args([
                "seal",
                "--name",
                "lit",
                "-n",
                "n",
                "--type",
                "kubernetes.io/tls",
            ])
            .args(["--from-literal", "a=b=c", "--from-file"])
            .arg(format!("tls.key={}", value_file.display()))
            .args(["-r", &r]),
        None,
    ));
    assert!(out.contains("type: kubernetes.io/tls"));
    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-i"])
            .arg(dir.path().join("id.txt")),
        Some(&out),
    ));
    assert!(
        opened.contains("a: Yj1j"),
        "a=b=c keeps everything after the first '=': {opened}"
    );
}

#[test]
fn merge_into_changes_only_the_given_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = keygen(dir.path(), "id.txt");
    let file = dir.path().join("db.sealed.yaml");
    let f = file.to_str().expect("utf8");
    ok(&run(
        sealsync().args(["seal", "-r", &r, "-w", f]),
        Some(&secret_yaml(CANARY)),
    ));
    let before = fs::read_to_string(&file).expect("read");

    // Only the public key is used: no identity is given.
    ok(&run(
        sealsync().args([
            "seal",
            "--merge-into",
            f,
            "--from-literal",
            "password=rotated",
            "-r",
            &r,
        ]),
        None,
    ));
    let after = fs::read_to_string(&file).expect("read");
    assert_eq!(line_of(&before, "user"), line_of(&after, "user"));
    assert_eq!(line_of(&before, "host"), line_of(&after, "host"));
    assert_ne!(line_of(&before, "password"), line_of(&after, "password"));
    let before_lines: Vec<&str> = before.lines().collect();
    let removed: Vec<&&str> = before_lines
        .iter()
        .filter(|l| !after.lines().any(|a| a == **l))
        .collect();
    assert_eq!(
        removed.len(),
        1,
        "only the password line is replaced: {removed:?}"
    );

    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-f", f, "-i"])
            .arg(dir.path().join("id.txt")),
        None,
    ));
    assert!(opened.contains("password: cm90YXRlZA=="), "{opened}");
}

#[test]
fn rules_reseal_rewraps_and_check_agrees() {
    let dir = tempfile::tempdir().expect("tmp");
    let old = keygen(dir.path(), "old.txt");
    let new = keygen(dir.path(), "new.txt");
    let recovery = keygen(dir.path(), "recovery.txt");
    let repo = dir.path().join("repo");
    fs::create_dir_all(repo.join("apps/prod")).expect("mkdir");
    let write_rules = |cluster_key: &str| {
        fs::write(
            repo.join(".sealsync.yaml"),
            format!(
                "clusters:\n  prod:\n    recipients: [{cluster_key}]\nrecovery:\n  recipients: [{recovery}]\n\
                 creation_rules:\n  - path_regex: ^apps/prod/\n    clusters: [prod]\n"
            ),
        )
        .expect("rules");
    };
    write_rules(&old);
    let target = repo.join("apps/prod/db.yaml");
    ok(&run(
        sealsync().args(["seal", "-w"]).arg(&target),
        Some(&secret_yaml(CANARY)),
    ));
    ok(&run(sealsync().arg("check").arg(&repo), None));

    // Rotate: the rules now name the new cluster key; check flags the file.
    write_rules(&new);
    let out = run(sealsync().arg("check").arg(&repo), None);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("apps/prod/db.yaml") && report.contains("run `sealsync reseal`"),
        "{report}"
    );

    let before = fs::read_to_string(&target).expect("read");
    ok(&run(
        sealsync()
            .args(["reseal", "-i"])
            .arg(dir.path().join("recovery.txt"))
            .arg(&repo),
        None,
    ));
    let after = fs::read_to_string(&target).expect("read");
    for key in ["password", "user", "host"] {
        assert_eq!(
            line_of(&before, key),
            line_of(&after, key),
            "value lines stay untouched"
        );
    }
    assert_ne!(before, after);
    ok(&run(sealsync().arg("check").arg(&repo), None));
    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-i"])
            .arg(dir.path().join("new.txt"))
            .arg("-f")
            .arg(&target),
        None,
    ));
    assert!(opened.contains("kind: Secret"));
    let stale = run(
        sealsync()
            .args(["unseal", "-i"])
            .arg(dir.path().join("old.txt"))
            .arg("-f")
            .arg(&target),
        None,
    );
    assert!(
        !stale.status.success(),
        "the retired key no longer opens the file"
    );

    // A second reseal has nothing to do and leaves the file alone.
    ok(&run(
        sealsync()
            .args(["reseal", "-i"])
            .arg(dir.path().join("new.txt"))
            .arg(&repo),
        None,
    ));
    assert_eq!(after, fs::read_to_string(&target).expect("read"));

    // Re-key after a compromise: every value line changes.
    ok(&run(
        sealsync()
            .args(["reseal", "--rekey", "-i"])
            .arg(dir.path().join("new.txt"))
            .arg(&repo),
        None,
    ));
    let rekeyed = fs::read_to_string(&target).expect("read");
    for key in ["password", "user", "host"] {
        assert_ne!(line_of(&after, key), line_of(&rekeyed, key));
    }
    ok(&run(sealsync().arg("check").arg(&repo), None));
}

#[test]
fn directory_input_seals_every_secret() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = keygen(dir.path(), "id.txt");
    let input = dir.path().join("in");
    fs::create_dir_all(input.join("nested")).expect("mkdir");
    for i in 0..20 {
        let sub = if i % 2 == 0 { "" } else { "nested/" };
        fs::write(
            input.join(format!("{sub}s{i:02}.yaml")),
            secret_yaml(CANARY).replace("name: db", &format!("name: db{i}")),
        )
        .expect("write");
    }
    let out = ok(&run(
        sealsync()
            .arg("seal")
            .arg("-f")
            .arg(&input)
            .args(["-r", &r]),
        None,
    ));
    assert_eq!(out.matches("kind: SealedSecret").count(), 20);
    assert!(!out.contains(CANARY));
}

#[test]
fn errors_never_print_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = keygen(dir.path(), "id.txt");
    let inputs = [
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: a, namespace: b}}\ndata:\n  k: {CANARY}\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: a}}\nstringData:\n  k: {CANARY}\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: a, namespace: b}}\nstringData:\n  k: [{CANARY}\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: A_B, namespace: b}}\nstringData:\n  k: {CANARY}\n"),
    ];
    for input in inputs {
        let out = run(sealsync().args(["seal", "-r", &r]), Some(&input));
        assert!(!out.status.success());
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("error:") && all.contains("hint:"), "{all}");
        assert!(!all.contains(CANARY), "value leaked: {all}");
    }
}

#[test]
fn write_is_atomic_and_leaves_no_temporary_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = keygen(dir.path(), "id.txt");
    let out_dir = dir.path().join("out");
    fs::create_dir(&out_dir).expect("mkdir");
    let target = out_dir.join("s.yaml");
    ok(&run(
        sealsync().args(["seal", "-r", &r, "-w"]).arg(&target),
        Some(&secret_yaml(CANARY)),
    ));
    let names: Vec<String> = fs::read_dir(&out_dir)
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["s.yaml".to_owned()]);
    let failed = run(
        sealsync()
            .args(["seal", "-r", "age1bad", "-w"])
            .arg(&target),
        Some(&secret_yaml(CANARY)),
    );
    assert!(!failed.status.success());
    assert!(
        fs::read_to_string(&target)
            .expect("read")
            .contains("SealedSecret"),
        "a failed run keeps the old file"
    );
}

#[test]
fn completion_scripts_are_printed() {
    for shell in ["bash", "zsh", "fish"] {
        let out = ok(&run(sealsync().args(["completion", shell]), None));
        assert!(out.contains("sealsync"), "{shell}");
    }
}

/// A Secret sealed for the identity an overlay gives it keeps its own name in the file, and
/// unseal, check and an offline reseal all open it as the identity it was sealed for.
#[test]
fn a_secret_sealed_for_its_rendered_identity_reseals_and_unseals() {
    let dir = tempfile::tempdir().expect("tmp");
    let first = keygen(dir.path(), "first.txt");
    let second = keygen(dir.path(), "second.txt");
    let file = dir.path().join("db.sealed.yaml");
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: {CANARY}\n"
    );
    ok(&run(
        sealsync()
            .args(["seal", "-r", &first, "--rendered-as", "prod/prod-db", "-w"])
            .arg(&file),
        Some(&secret),
    ));
    let sealed = fs::read_to_string(&file).expect("sealed");
    assert!(sealed.contains("name: db\n"), "{sealed}");
    assert!(sealed.contains("namespace: prod"), "{sealed}");
    assert!(
        sealed.contains("sealsync.dev/rendered-as: prod/prod-db"),
        "{sealed}"
    );
    assert!(!sealed.contains(CANARY));

    ok(&run(
        sealsync()
            .args(["reseal", "-r", &second, "-i"])
            .arg(dir.path().join("first.txt"))
            .arg(&file),
        None,
    ));
    let resealed = fs::read_to_string(&file).expect("resealed");
    assert!(resealed.contains("name: db\n"), "{resealed}");
    assert_ne!(resealed, sealed);
    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-o", "json", "-i"])
            .arg(dir.path().join("second.txt"))
            .arg("-f")
            .arg(&file),
        None,
    ));
    let json: serde_json::Value = serde_json::from_str(&opened).expect("json");
    assert_eq!(json["metadata"]["name"], "prod-db");
    assert_eq!(json["metadata"]["namespace"], "prod");
    let checked = run(
        sealsync()
            .args(["check", "-i"])
            .arg(dir.path().join("second.txt"))
            .arg(&file),
        None,
    );
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
}
