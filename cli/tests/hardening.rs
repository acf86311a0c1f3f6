//! Hostile and careless input through the real `sealsync` binary: every class of failure of
//! the hardening work, with canary values that must never appear in any output.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

mod common;
use common::{all_output, ok, run, sealsync};

const CANARY: &str = "canaryQ7x9Zk2mW4pL8vN3";

/// The command failed, said so with a hint, and printed none of `secrets`.
fn refused(out: &Output, secrets: &[&str]) -> String {
    let text = all_output(out);
    assert!(!out.status.success(), "should fail: {text}");
    assert!(text.contains("error: "), "{text}");
    for s in secrets {
        assert!(!text.contains(s), "leaked {s:?} in: {text}");
    }
    assert!(text.len() < 4096, "overlong message: {} bytes", text.len());
    text
}

fn keygen(dir: &Path, name: &str) -> (String, String) {
    let path = dir.join(name);
    let recipient = ok(&run(
        sealsync().args(["keys", "generate", "-o"]).arg(&path),
        None,
    ))
    .trim()
    .to_owned();
    let identity = fs::read_to_string(&path)
        .expect("identity")
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .expect("key line")
        .to_owned();
    (recipient, identity)
}

fn secret(body: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\n{body}")
}

#[test]
fn kubectl_last_applied_configuration_never_reaches_the_sealed_file() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let last_applied = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"stringData\":{{\"password\":\"{CANARY}\"}}}}"
    );
    let input = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\n  uid: 1b2c\n  \
         resourceVersion: \"42\"\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n  managedFields: []\n  \
         annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{last_applied}'\n    \
         team: payments\nstringData:\n  password: {CANARY}\n"
    );
    let sealed = ok(&run(sealsync().args(["seal", "-r", &r]), Some(&input)));
    assert!(!sealed.contains(CANARY), "{sealed}");
    assert!(!sealed.contains("last-applied"), "{sealed}");
    assert!(!sealed.contains("uid"), "{sealed}");
    assert!(sealed.contains("team: payments"), "{sealed}");

    // A sealed file edited to carry it is flagged by check, with and without a key.
    let planted = sealed.replace(
        "team: payments",
        &format!(
            "team: payments\n        kubectl.kubernetes.io/last-applied-configuration: '{last_applied}'"
        ),
    );
    assert_ne!(planted, sealed);
    fs::write(dir.path().join("db.yaml"), &planted).expect("write");
    let out = run(
        sealsync().arg("check").arg(dir.path().join("db.yaml")),
        None,
    );
    let text = refused_check(&out, &[CANARY]);
    assert!(text.contains("last-applied"), "{text}");
}

/// `check` exits 1 with findings; nothing secret in them.
fn refused_check(out: &Output, secrets: &[&str]) -> String {
    let text = all_output(out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for s in secrets {
        assert!(!text.contains(s), "leaked {s:?} in: {text}");
    }
    text
}

#[test]
fn a_value_copied_into_an_annotation_is_refused_and_found() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let input = secret(&format!(
        "  annotations:\n    note: \"rotated to {CANARY} today\"\nstringData:\n  password: {CANARY}\n"
    ));
    let out = run(sealsync().args(["seal", "-r", &r]), Some(&input));
    let text = refused(&out, &[CANARY]);
    assert!(text.contains("metadata.annotations"), "{text}");

    // check -i finds a value that was pasted into a sealed file's template after sealing.
    let clean = ok(&run(
        sealsync().args(["seal", "-r", &r]),
        Some(&secret(&format!("stringData:\n  password: {CANARY}\n"))),
    ));
    let pasted = clean.replace(
        "spec:\n",
        &format!("spec:\n  template:\n    metadata:\n      labels:\n        leak: {CANARY}\n"),
    );
    fs::write(dir.path().join("s.yaml"), &pasted).expect("write");
    let out = run(
        sealsync()
            .args(["check", "-i"])
            .arg(dir.path().join("id"))
            .arg(dir.path().join("s.yaml")),
        None,
    );
    let text = refused_check(&out, &[CANARY]);
    assert!(
        text.contains("spec.template.metadata.labels.leak"),
        "{text}"
    );
}

#[test]
fn no_value_appears_in_any_parse_or_type_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let cases: Vec<(String, &str)> = vec![
        // The typo of a missing space: one key "password:canary…" with no value.
        (
            secret(&format!("stringData: {{password:{CANARY}}}\n")),
            "[#1]",
        ),
        (secret(&format!("stringData: {{{CANARY}}}\n")), "no value"),
        (
            secret("stringData:\n  pin: 98761234567890123\n"),
            "quote it",
        ),
        (secret("stringData:\n  phone: +4915112345678\n"), "quote it"),
        (secret("data:\n  port: 5432\n"), "quote it"),
        (secret("data:\n  flag: true\n"), "quote it"),
        (secret("data:\n  nested: {a: b}\n"), "quote it"),
        (
            secret(&format!("stringData:\n  a: x\n  a: {CANARY}\n")),
            "same key twice",
        ),
        (
            secret(&format!("stringData:\n  password: \"{CANARY}\n")),
            "line",
        ),
        (
            secret(&format!("stringdata:\n  password: {CANARY}\n")),
            "did you mean stringData",
        ),
        (
            secret(&format!("{CANARY}: 1\nstringData:\n  a: b\n")),
            "unknown field",
        ),
        (
            secret(&format!("stringData:\n  {CANARY}!: x\n")),
            "not a valid data key",
        ),
        (
            secret(&format!("data:\n  password: \"{CANARY}!!\"\n")),
            "base64",
        ),
        (
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {CANARY}_X\n  namespace: app\n"
            ),
            "metadata.name",
        ),
        (
            secret(&format!(
                "  labels:\n    a: 12345678901\nstringData:\n  p: {CANARY}\n"
            )),
            "quote it",
        ),
        (format!("- {CANARY}\n"), "Kubernetes object"),
        (
            format!("kind: {CANARY}-x\napiVersion: v1\n"),
            "expected kind Secret",
        ),
    ];
    for (input, expect) in &cases {
        let out = run(sealsync().args(["seal", "-r", &r]), Some(input));
        let text = refused(
            &out,
            &[CANARY, "98761234567890123", "4915112345678", "5432"],
        );
        assert!(text.contains(expect), "{input}\n=> {text}");
    }
    // check reports the same inputs without quoting them either.
    for (i, (input, _)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("case{i}.yaml"));
        fs::write(&file, input).expect("write");
        let out = run(sealsync().arg("check").arg(&file), None);
        let text = all_output(&out);
        for s in [CANARY, "98761234567890123", "4915112345678"] {
            assert!(!text.contains(s), "check leaked {s:?}: {text}");
        }
    }
}

#[test]
fn an_overlong_data_key_is_refused_without_echo() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let long_key = "k".repeat(10 * 1024 * 1024);
    let input = secret(&format!("stringData:\n  {long_key}: v\n"));
    let out = run(sealsync().args(["seal", "-r", &r]), Some(&input));
    refused(&out, &["kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk"]);
}

#[test]
fn private_keys_where_recipients_belong_are_never_printed() {
    let dir = tempfile::tempdir().expect("tmp");
    let (_, identity) = keygen(dir.path(), "id");
    let body = &identity["AGE-SECRET-KEY-1".len()..];
    let lower = identity.to_lowercase();
    let input = secret("stringData:\n  a: b\n");
    for form in [identity.clone(), lower.clone(), format!(" {identity} ")] {
        let out = run(sealsync().args(["seal", "-r", &form]), Some(&input));
        let text = refused(&out, &[body, &body.to_lowercase()]);
        assert!(text.contains("private identity"), "{text}");

        let file = dir.path().join("recipients.txt");
        fs::write(&file, format!("# team keys\n{form}\n")).expect("write");
        let out = run(
            sealsync().args(["seal", "--recipients-file"]).arg(&file),
            Some(&input),
        );
        let text = refused(&out, &[body, &body.to_lowercase()]);
        assert!(text.contains("line 2"), "{text}");

        let repo = dir.path().join("repo");
        fs::create_dir_all(repo.join(".git")).expect("repo");
        fs::write(
            repo.join(".sealsync.yaml"),
            format!("clusters:\n  prod:\n    recipients: [\"{}\"]\ncreation_rules:\n  - path_regex: .*\n    clusters: [prod]\n", form.trim()),
        )
        .expect("rules");
        let out = run(
            sealsync()
                .args(["seal", "--rules-path"])
                .arg(repo.join("x.yaml")),
            Some(&input),
        );
        let text = refused(&out, &[body, &body.to_lowercase()]);
        assert!(text.contains("clusters.prod.recipients[0]"), "{text}");
    }
    // A lower-case identity file is refused, as Go age refuses it.
    let file = dir.path().join("lower.key");
    fs::write(&file, format!("{lower}\n")).expect("write");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = run(
        sealsync().args(["unseal", "-i"]).arg(&file),
        Some("kind: SealedSecret\n"),
    );
    refused(&out, &[&body.to_lowercase()]);
}

#[test]
fn what_kube_apiserver_accepts_is_accepted() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    // A byte-order mark, and base64 wrapped over lines in a block scalar.
    let input = format!(
        "\u{feff}{}",
        secret("data:\n  cert: |\n    YWJjZGVm\n    Z2hpamts\n")
    );
    let sealed = ok(&run(sealsync().args(["seal", "-r", &r]), Some(&input)));
    let opened = ok(&run(
        sealsync()
            .args(["unseal", "-o", "json", "-i"])
            .arg(dir.path().join("id")),
        Some(&sealed),
    ));
    let json: serde_json::Value = serde_json::from_str(&opened).expect("json");
    assert_eq!(json["data"]["cert"], "YWJjZGVmZ2hpamts");
}

#[test]
fn hostile_yaml_is_refused_within_its_limits() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let mut bomb = String::from("apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: b}\nx0: &x0 [a, a, a, a, a, a, a, a, a, a]\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "x{i}: &x{i} [{}]\n",
            vec![format!("*x{}", i - 1); 10].join(",")
        ));
    }
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let mut many = String::from("apiVersion: v1\nkind: ConfigMap\ndata:\n");
    for i in 0..600_000 {
        many.push_str(&format!("  k{i}: v\n"));
    }
    for (name, input, limit) in [
        ("bomb", bomb.as_str(), "limit"),
        ("deep", deep.as_str(), "nesting depth"),
        ("many", many.as_str(), "limit"),
    ] {
        let out = run(sealsync().args(["seal", "-r", &r]), Some(input));
        let text = refused(&out, &[]);
        assert!(text.contains(limit), "{name}: {text}");
        let file = dir.path().join(format!("{name}.yaml"));
        fs::write(&file, input).expect("write");
        let out = run(sealsync().arg("check").arg(&file), None);
        // check reports or passes the file; it never panics or dies on it.
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{name}: {}",
            all_output(&out)
        );
    }
    // The rules file goes through the same reader.
    let repo = dir.path().join("repo");
    fs::create_dir_all(repo.join(".git")).expect("repo");
    fs::write(repo.join(".sealsync.yaml"), &bomb).expect("rules");
    let out = run(
        sealsync()
            .args(["seal", "--rules-path"])
            .arg(repo.join("x.yaml")),
        Some(&secret("stringData:\n  a: b\n")),
    );
    let text = refused(&out, &[]);
    assert!(text.contains("limit"), "{text}");
}

#[test]
fn check_finds_secrets_in_lists_kustomize_and_hidden_places() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    fs::create_dir_all(root.join(".hidden/deeper")).expect("dirs");
    fs::write(
        root.join("list.yaml"),
        format!("apiVersion: v1\nkind: SecretList\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {{name: a, namespace: b}}\n  data: {{pw: {}}}\n", "Y2FuYXJ5"),
    )
    .expect("write");
    fs::write(
        root.join("cmlist.json"),
        r#"{"apiVersion":"v1","kind":"ConfigMapList","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"c"},"stringData":{"token":"x"}}]}"#,
    )
    .expect("write");
    fs::write(
        root.join("kustomization.yaml"),
        format!("resources: [list.yaml]\nsecretGenerator:\n- name: db\n  literals:\n  - password={CANARY}\n  - {CANARY}\n- name: env\n  envs: [db.env]\n"),
    )
    .expect("write");
    fs::write(
        root.join(".hidden/deeper/.plain.yaml"),
        secret("stringData:\n  hidden: x\n"),
    )
    .expect("write");
    fs::write(root.join("binary.yaml"), b"\0\x01\x02kind: Secret").expect("write");
    let huge = fs::File::create(root.join("huge.yaml")).expect("huge");
    huge.set_len(65 * 1024 * 1024).expect("sparse");
    drop(huge);

    let out = run(sealsync().arg("check").arg(root), None);
    let text = refused_check(&out, &[CANARY]);
    for expect in [
        "list.yaml: document 1, SecretList item 1 (Secret b/a): data",
        "cmlist.json: document 1, ConfigMapList item 1 (Secret c): stringData",
        "kustomization.yaml: document 1 (no kind): secretGenerator[0].literals: plaintext Secret values (password, 1 key(s) that are not valid names)",
        "secretGenerator[1].envs",
        ".hidden/deeper/.plain.yaml",
        "binary.yaml: -: -: not checked",
        "huge.yaml: -: -: not checked",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }
}

#[test]
fn listed_recipients_that_lie_are_found_and_resealed() {
    let dir = tempfile::tempdir().expect("tmp");
    let (old_r, _) = keygen(dir.path(), "old");
    let (new_r, _) = keygen(dir.path(), "new");
    let sealed = ok(&run(
        sealsync().args(["seal", "-r", &old_r]),
        Some(&secret("stringData:\n  password: x\n")),
    ));
    // Claim the new key while the data key is still wrapped to the old one.
    let new_id = ok(&run(
        sealsync().args(["seal", "-r", &new_r]),
        Some(&secret("stringData:\n  password: x\n")),
    ));
    let id_of = |doc: &str| {
        let line = doc
            .lines()
            .skip_while(|l| !l.contains("recipients:"))
            .nth(1)
            .expect("id line")
            .to_owned();
        line.trim().trim_start_matches("- ").to_owned()
    };
    let (old_id, new_id) = (id_of(&sealed), id_of(&new_id));
    let lying = sealed.replace(&old_id, &new_id);
    let file = dir.path().join("db.yaml");
    fs::write(&file, &lying).expect("write");

    let out = run(
        sealsync()
            .args(["check", "-i"])
            .arg(dir.path().join("old"))
            .arg(&file),
        None,
    );
    let text = refused_check(&out, &[]);
    assert!(text.contains("does not list"), "{text}");

    // reseal does not call it already correct: it re-wraps to the new key for real.
    ok(&run(
        sealsync()
            .args(["reseal", "-r", &new_r, "-i"])
            .arg(dir.path().join("old"))
            .arg(&file),
        None,
    ));
    let out = run(
        sealsync()
            .args(["check", "-i"])
            .arg(dir.path().join("new"))
            .arg(&file),
        None,
    );
    assert!(out.status.success(), "{}", all_output(&out));
}

#[test]
fn merges_refuse_mixed_keys_and_never_lose_a_value() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, _) = keygen(dir.path(), "a");
    let (b, _) = keygen(dir.path(), "b");
    let file = dir.path().join("db.yaml");
    ok(&run(
        sealsync().args(["seal", "-r", &a, "-w"]).arg(&file),
        Some(&secret("stringData:\n  first: x\n")),
    ));
    let before = fs::read_to_string(&file).expect("read");
    let out = run(
        sealsync()
            .args([
                "seal",
                "--from-literal",
                "second=y",
                "-r",
                &b,
                "--merge-into",
            ])
            .arg(&file),
        None,
    );
    let text = refused(&out, &[]);
    assert!(text.contains("reseal"), "{text}");
    assert_eq!(fs::read_to_string(&file).expect("read"), before);

    // Concurrent merges: every value lands.
    let children: Vec<_> = (0..8)
        .map(|i| {
            sealsync()
                .args([
                    "seal",
                    "--from-literal",
                    &format!("k{i}=v{i}"),
                    "-r",
                    &a,
                    "--merge-into",
                ])
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let merged = fs::read_to_string(&file).expect("read");
    for i in 0..8 {
        assert!(merged.contains(&format!("k{i}: ")), "lost k{i}:\n{merged}");
    }
}

#[test]
fn writes_refuse_devices_fifos_and_read_only_files() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let input = secret("stringData:\n  a: b\n");
    let out = run(
        sealsync().args(["seal", "-r", &r, "-w", "/dev/null"]),
        Some(&input),
    );
    let text = refused(&out, &[]);
    assert!(text.contains("not a regular file"), "{text}");
    assert!(Path::new("/dev/null").exists());

    let fifo = dir.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let out = run(
        sealsync().args(["seal", "-r", &r, "-w"]).arg(&fifo),
        Some(&input),
    );
    refused(&out, &[]);

    let ro = dir.path().join("ro.yaml");
    fs::write(&ro, "keep\n").expect("write");
    fs::set_permissions(&ro, fs::Permissions::from_mode(0o444)).expect("chmod");
    let out = run(
        sealsync().args(["seal", "-r", &r, "-w"]).arg(&ro),
        Some(&input),
    );
    let text = refused(&out, &[]);
    assert!(text.contains("read-only"), "{text}");
    assert_eq!(fs::read_to_string(&ro).expect("read"), "keep\n");

    // A symlink inside the current directory (no repository here) is followed: its target
    // is replaced, the link stays a link.
    let target = dir.path().join("target.yaml");
    fs::write(&target, "old\n").expect("write");
    let link = dir.path().join("link.yaml");
    std::os::unix::fs::symlink(&target, &link).expect("symlink");
    ok(&run(
        sealsync()
            .current_dir(dir.path())
            .args(["seal", "-r", &r, "-w"])
            .arg(&link),
        Some(&input),
    ));
    assert!(fs::symlink_metadata(&link)
        .expect("link")
        .file_type()
        .is_symlink());
    assert!(fs::read_to_string(&target)
        .expect("read")
        .contains("SealedSecret"));

    // A link in a repository that leads out of it is not written through, by -w or by
    // --merge-into, whether the file or a directory on the way is the link.
    let outside = tempfile::tempdir().expect("tmp");
    let victim = outside.path().join("victim.yaml");
    fs::write(&victim, "keep\n").expect("write");
    let repo = dir.path().join("repo");
    fs::create_dir_all(repo.join(".git")).expect("repo");
    std::os::unix::fs::symlink(&victim, repo.join("db.sealed.yaml")).expect("symlink");
    std::os::unix::fs::symlink(outside.path(), repo.join("apps")).expect("symlink");
    let sealed = ok(&run(sealsync().args(["seal", "-r", &r]), Some(&input)));
    fs::write(&victim, &sealed).expect("write");
    for (args, path) in [
        (vec!["seal", "-r", &r, "-w"], "db.sealed.yaml"),
        (vec!["seal", "-r", &r, "-w"], "apps/victim.yaml"),
        (vec!["seal", "-r", &r, "-w"], "apps/new.yaml"),
        (
            vec!["seal", "-r", &r, "--from-literal", "k=v", "--merge-into"],
            "db.sealed.yaml",
        ),
    ] {
        let out = run(
            sealsync().current_dir(&repo).args(&args).arg(path),
            Some(&input),
        );
        let text = refused(&out, &[]);
        assert!(
            text.contains("symbolic link that leads outside"),
            "{args:?} {path}: {text}"
        );
        assert_eq!(fs::read_to_string(&victim).expect("read"), sealed);
        assert!(!outside.path().join("new.yaml").exists());
    }
}

#[test]
fn rules_above_the_repository_root_are_ignored() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    fs::write(
        dir.path().join(".sealsync.yaml"),
        format!("creation_rules:\n  - path_regex: .*\n    recipients: [{r}]\n"),
    )
    .expect("rules");
    let repo = dir.path().join("repo");
    fs::create_dir_all(repo.join(".git")).expect("repo");
    let out = run(
        sealsync()
            .args(["seal", "--rules-path"])
            .arg(repo.join("db.yaml")),
        Some(&secret("stringData:\n  a: b\n")),
    );
    let text = refused(&out, &[]);
    assert!(text.contains("no recipients"), "{text}");
}

#[test]
fn identity_files_from_the_environment_and_their_permissions() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let sealed = ok(&run(
        sealsync().args(["seal", "-r", &r]),
        Some(&secret("stringData:\n  a: b\n")),
    ));
    for var in ["SEALSYNC_AGE_KEY_FILE", "SOPS_AGE_KEY_FILE"] {
        let out = run(
            sealsync().arg("unseal").env(var, dir.path().join("id")),
            Some(&sealed),
        );
        assert!(ok(&out).contains("kind: Secret"));
        assert!(
            !all_output(&out).contains("warning"),
            "{}",
            all_output(&out)
        );
    }
    fs::set_permissions(dir.path().join("id"), fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = run(
        sealsync().args(["unseal", "-i"]).arg(dir.path().join("id")),
        Some(&sealed),
    );
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("readable by group or others"),
        "{}",
        all_output(&out)
    );
}

#[test]
fn reseal_keeps_comments_and_untouched_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let (a, _) = keygen(dir.path(), "a");
    let (b, _) = keygen(dir.path(), "b");
    let file = dir.path().join("db.yaml");
    ok(&run(
        sealsync().args(["seal", "-r", &a, "-w"]).arg(&file),
        Some(&secret("stringData:\n  password: x\n  user: y\n")),
    ));
    let original = fs::read_to_string(&file).expect("read");
    let commented = format!(
        "# Owned by the payments team.\n{}",
        original.replace("  name: db\n", "  name: db # the database\n")
    );
    fs::write(&file, &commented).expect("write");
    ok(&run(
        sealsync()
            .args(["reseal", "-r", &b, "-i"])
            .arg(dir.path().join("a"))
            .arg(&file),
        None,
    ));
    let resealed = fs::read_to_string(&file).expect("read");
    assert!(
        resealed.starts_with("# Owned by the payments team.\n"),
        "{resealed}"
    );
    assert!(resealed.contains("name: db # the database"), "{resealed}");
    let value_lines = |t: &str| {
        t.lines()
            .filter(|l| {
                l.trim_start().starts_with("password:") || l.trim_start().starts_with("user:")
            })
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(value_lines(&resealed), value_lines(&commented));
    assert_ne!(resealed, commented);
}

#[test]
fn review_findings_hold() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let (r, _) = keygen(root, "id");
    let scan = root.join("scan");
    fs::create_dir_all(scan.join("real")).expect("dirs");
    // A Secret inside a List inside a List.
    fs::write(
        scan.join("nested.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: List\n  items:\n  - apiVersion: v1\n    kind: Secret\n    metadata: {name: n, namespace: a}\n    stringData: {pw: x}\n",
    )
    .expect("write");
    // The typo seal refuses is still plaintext in Git.
    fs::write(
        scan.join("typo.yaml"),
        secret(&format!("stringdata:\n  password: {CANARY}\n")),
    )
    .expect("write");
    // Upper-case extension, and a symlinked file in the walk.
    fs::write(
        scan.join("real/upper.YAML"),
        secret("stringData:\n  u: x\n"),
    )
    .expect("write");
    fs::write(
        root.join("outside.yaml"),
        secret("stringData:\n  linked: x\n"),
    )
    .expect("write");
    std::os::unix::fs::symlink(root.join("outside.yaml"), scan.join("link.yaml")).expect("link");
    let out = run(sealsync().arg("check").arg(&scan), None);
    let text = refused_check(&out, &[CANARY]);
    for expect in [
        "nested.yaml: document 1, List item 1 (Secret a/n)",
        "typo.yaml: document 1 (Secret app/db): stringdata (did you mean stringData?)",
        "upper.YAML",
        "link.yaml",
    ] {
        assert!(text.contains(expect), "missing {expect:?} in:\n{text}");
    }

    // A FIFO named on the command line is reported, not waited on.
    let fifo = root.join("fifo.yaml");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo")
        .success());
    let out = run(sealsync().arg("check").arg(&fifo), None);
    assert!(
        all_output(&out).contains("not a regular file"),
        "{}",
        all_output(&out)
    );

    // Merge keys could let one value silently override another: refused.
    let out = run(
        sealsync().args(["seal", "-r", &r]),
        Some(&secret(&format!(
            "stringData:\n  <<: {{password: {CANARY}}}\n  password: other\n"
        ))),
    );
    let text = refused(&out, &[CANARY]);
    assert!(text.contains("merge keys"), "{text}");

    // A value copied into an annotation as another tool would (JSON-escaped) is refused.
    let multiline = format!("-----BEGIN KEY-----\\n{CANARY}\\n-----END KEY-----\\n");
    let out = run(
        sealsync().args(["seal", "-r", &r]),
        Some(&secret(&format!(
            "  annotations:\n    snapshot: '{{\"k\":\"{multiline}\"}}'\nstringData:\n  k: \"{multiline}\"\n"
        ))),
    );
    let text = refused(&out, &[CANARY]);
    assert!(text.contains("metadata.annotations"), "{text}");

    // --merge-into refuses a value that the file's template already shows in plaintext.
    let file = root.join("m.yaml");
    ok(&run(
        sealsync().args(["seal", "-r", &r, "-w"]).arg(&file),
        Some(&secret(&format!(
            "  annotations:\n    note: {CANARY}-note\nstringData:\n  a: b\n"
        ))),
    ));
    let out = run(
        sealsync()
            .args([
                "seal",
                "--from-literal",
                &format!("token={CANARY}-note"),
                "-r",
                &r,
            ])
            .arg("--merge-into")
            .arg(&file),
        None,
    );
    refused(&out, &[&format!("{CANARY}-note")]);

    // Identity files with thousands of keys are refused.
    let many: String = (0..65)
        .map(|i| {
            let path = root.join(format!("k{i}"));
            keygen(root, &format!("k{i}"));
            fs::read_to_string(path).expect("key")
        })
        .collect();
    let big = root.join("many.key");
    fs::write(&big, many).expect("write");
    fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).expect("chmod");
    let out = run(
        sealsync().args(["unseal", "-i"]).arg(&big),
        Some("kind: SealedSecret\n"),
    );
    let text = refused(&out, &[]);
    assert!(text.contains("64"), "{text}");
}

#[test]
fn opening_work_per_file_is_bounded() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    let recipients: Vec<String> = (0..60).map(|i| keygen(root, &format!("r{i}")).0).collect();
    let mut input = String::new();
    for i in 0..280 {
        input.push_str(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: s{i}, namespace: a}}\nstringData: {{v: x}}\n"
        ));
    }
    let mut cmd = sealsync();
    cmd.arg("seal");
    for r in &recipients {
        cmd.args(["-r", r]);
    }
    let sealed = ok(&run(&mut cmd, Some(&input)));
    let out = run(
        sealsync().args(["unseal", "-i"]).arg(root.join("r0")),
        Some(&sealed),
    );
    let text = refused(&out, &[]);
    assert!(text.contains("key-recipient pairs"), "{text}");
    let file = root.join("many.yaml");
    fs::write(&file, &sealed).expect("write");
    let out = run(
        sealsync()
            .args(["check", "-i"])
            .arg(root.join("r0"))
            .arg(&file),
        None,
    );
    let text = refused_check(&out, &[]);
    assert!(text.contains("not opened"), "{text}");
}

#[test]
fn merging_into_a_json_file_keeps_it_json() {
    let dir = tempfile::tempdir().expect("tmp");
    let (r, _) = keygen(dir.path(), "id");
    let file = dir.path().join("db.sealed.json");
    ok(&run(
        sealsync()
            .args(["seal", "-o", "json", "-r", &r, "-w"])
            .arg(&file),
        Some(&secret("stringData:\n  a: b\n")),
    ));
    ok(&run(
        sealsync()
            .args(["seal", "--from-literal", "c=d", "-r", &r, "--merge-into"])
            .arg(&file),
        None,
    ));
    let merged: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&file).expect("read")).expect("still JSON");
    assert!(merged["spec"]["encryptedData"]["c"].is_string(), "{merged}");
}
