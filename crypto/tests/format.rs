//! Behaviour of the sealed format: the seven properties of docs/format.md §1, and its errors.

mod common;

use common::{recipients, secret};
use sealsync_crypto::{BindingField, Error, Identity, OpenOptions, Scope, SealedSecret};
use serde_yaml::Value;

const CANARY: &[u8] = b"canary-7f3e9a-do-not-log";

fn reparse(yaml: &str) -> Result<SealedSecret, Error> {
    let value: Value = serde_yaml::from_str(yaml).expect("yaml");
    common::sealed_from_value(&value)
}

fn sealed_yaml(scope: Scope) -> (Identity, String) {
    let id = Identity::generate();
    let s = secret(
        Some("app"),
        "db",
        &[("password", CANARY), ("user", b"admin")],
    );
    let sealed = SealedSecret::seal(&s, scope, &recipients(&[&id])).expect("seal");
    (id, sealed.to_yaml().expect("yaml"))
}

fn open(yaml: &str, id: &Identity) -> Result<sealsync_crypto::Opened, Error> {
    reparse(yaml)?.open(std::slice::from_ref(id), &OpenOptions::default())
}

#[test]
fn round_trip_and_confidentiality() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    assert!(
        !yaml.contains("canary"),
        "plaintext leaked into the document"
    );
    let opened = open(&yaml, &id).expect("opens");
    assert_eq!(opened.secret.data["password"].as_slice(), CANARY);
    assert_eq!(opened.secret.namespace.as_deref(), Some("app"));
    assert_eq!(
        opened.opened_by.into_iter().collect::<Vec<_>>(),
        vec![id.key_id().clone()]
    );

    let stranger = Identity::generate();
    match open(&yaml, &stranger) {
        Err(Error::NoMatchingIdentity { key_ids, .. }) => {
            assert_eq!(key_ids, vec![id.key_id().clone()])
        }
        other => panic!("expected NoMatchingIdentity, got {other:?}"),
    }
}

fn expect_mismatch(result: Result<sealsync_crypto::Opened, Error>, want: BindingField) -> String {
    match result {
        Err(e @ Error::BindingMismatch { .. }) => {
            let Error::BindingMismatch { field, .. } = &e else {
                unreachable!()
            };
            assert_eq!(*field, want, "{e}");
            let msg = e.to_string();
            assert!(!msg.contains("canary"));
            msg
        }
        other => panic!("expected BindingMismatch({want}), got {other:?}"),
    }
}

#[test]
fn moved_to_another_namespace_fails_naming_namespace() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let msg = expect_mismatch(
        open(&yaml.replace("namespace: app", "namespace: other"), &id),
        BindingField::Namespace,
    );
    assert!(
        msg.contains("\"app\"") && msg.contains("\"other\""),
        "{msg}"
    );
}

#[test]
fn renamed_fails_naming_name() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    expect_mismatch(
        open(&yaml.replace("name: db", "name: db2"), &id),
        BindingField::Name,
    );
}

#[test]
fn namespace_scope_allows_rename_but_not_move() {
    let (id, yaml) = sealed_yaml(Scope::Namespace);
    open(&yaml.replace("name: db", "name: renamed"), &id).expect("rename is fine");
    expect_mismatch(
        open(&yaml.replace("namespace: app", "namespace: x"), &id),
        BindingField::Namespace,
    );
}

#[test]
fn cluster_scope_opens_anywhere() {
    let (id, yaml) = sealed_yaml(Scope::Cluster);
    let moved = yaml
        .replace("namespace: app", "namespace: x")
        .replace("name: db", "name: y");
    open(&moved, &id).expect("cluster scope opens anywhere");
}

#[test]
fn widening_the_scope_by_editing_the_document_fails() {
    // CVE-2026-22728 in Sealed Secrets: scope came from an editable annotation.
    let (id, yaml) = sealed_yaml(Scope::Strict);
    for widened in ["scope: cluster", "scope: namespace"] {
        let edited = yaml.replace("scope: strict", widened);
        assert_ne!(edited, yaml);
        expect_mismatch(open(&edited, &id), BindingField::Scope);
        let moved = edited.replace("namespace: app", "namespace: evil");
        expect_mismatch(open(&moved, &id), BindingField::Scope);
    }
}

#[test]
fn value_moved_to_another_key_fails_naming_key() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let sealed = reparse(&yaml).expect("parses");
    let value: Value = serde_yaml::from_str(&yaml).expect("yaml");
    let pw = value["spec"]["encryptedData"]["password"]
        .as_str()
        .expect("pw")
        .to_owned();
    let user = value["spec"]["encryptedData"]["user"]
        .as_str()
        .expect("user")
        .to_owned();
    let swapped = yaml
        .replace(&pw, "@@PW@@")
        .replace(&user, &pw)
        .replace("@@PW@@", &user);
    assert_eq!(sealed.data_keys().count(), 2);
    let msg = expect_mismatch(open(&swapped, &id), BindingField::Key);
    assert!(msg.contains("data key"), "{msg}");
}

#[test]
fn tampered_ciphertext_is_detected() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let value: Value = serde_yaml::from_str(&yaml).expect("yaml");
    let line = value["spec"]["encryptedData"]["password"]
        .as_str()
        .expect("pw")
        .to_owned();
    let (env, ct) = line.split_once(':').expect("id:ct");
    let mut bytes = base64_decode(ct);
    let last = bytes.len() - 20;
    bytes[last] ^= 1;
    let tampered = yaml.replace(&line, &format!("{env}:{}", base64_encode(&bytes)));
    match open(&tampered, &id) {
        Err(e @ Error::Tampered { .. }) => assert!(e.to_string().contains("password"), "{e}"),
        other => panic!("expected Tampered, got {other:?}"),
    }
}

#[test]
fn tampered_wrapped_key_is_detected() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let value: Value = serde_yaml::from_str(&yaml).expect("yaml");
    let wrapped = value["spec"]["envelopes"][0]["wrappedKey"]
        .as_str()
        .expect("wk")
        .to_owned();
    let mut bytes = base64_decode(&wrapped);
    let n = bytes.len() - 5;
    bytes[n] ^= 0x40;
    let tampered = yaml.replace(&wrapped, &base64_encode(&bytes));
    let err = open(&tampered, &id).expect_err("tampered");
    assert_eq!(err.metric_label(), "tampered", "{err}");
}

#[test]
fn unsupported_version_and_malformed_say_what_and_where() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let err = open(&yaml.replace("sealsync.dev/v1", "sealsync.dev/v9"), &id).expect_err("v9");
    assert!(
        matches!(err, Error::UnsupportedVersion { ref found } if found == "sealsync.dev/v9"),
        "{err}"
    );

    let value: Value = serde_yaml::from_str(&yaml).expect("yaml");
    let line = value["spec"]["encryptedData"]["user"]
        .as_str()
        .expect("user")
        .to_owned();
    let err = reparse(&yaml.replace(&line, "no-colon-here")).expect_err("malformed");
    assert!(err.to_string().contains("spec.encryptedData.user"), "{err}");

    let err = reparse(&yaml.replace("scope: strict", "scope: galaxy")).expect_err("scope");
    assert_eq!(err.metric_label(), "malformed", "{err}");
}

#[test]
fn merge_changes_only_the_given_lines() {
    let id = Identity::generate();
    let s = secret(Some("app"), "db", &[("a", b"1"), ("b", b"2"), ("c", b"3")]);
    let mut sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect("seal");
    let before = sealed.to_yaml().expect("yaml");

    // Only public keys: no identity is passed.
    let update = secret(Some("app"), "db", &[("b", b"22"), ("d", b"4")]).data;
    sealed.merge(&update, &recipients(&[&id])).expect("merge");
    let after = sealed.to_yaml().expect("yaml");

    let value_lines = |y: &str| -> Vec<String> {
        y.lines()
            .filter(|l| {
                l.starts_with("    ")
                    && l.contains(':')
                    && l.trim_start().len() > 20
                    && !l.contains("wrappedKey")
            })
            .map(str::to_owned)
            .collect()
    };
    let line_of = |y: &str, key: &str| {
        y.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}: ")))
            .map(str::to_owned)
    };
    assert_eq!(line_of(&before, "a"), line_of(&after, "a"));
    assert_eq!(line_of(&before, "c"), line_of(&after, "c"));
    assert_ne!(line_of(&before, "b"), line_of(&after, "b"));
    assert!(line_of(&after, "d").is_some());
    assert!(!value_lines(&after).is_empty());

    let opened = open(&after, &id).expect("opens");
    let got: Vec<(String, Vec<u8>)> = opened
        .secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), b"1".to_vec()),
            ("b".into(), b"22".to_vec()),
            ("c".into(), b"3".to_vec()),
            ("d".into(), b"4".to_vec())
        ]
    );
    assert_eq!(sealed.envelopes().len(), 2);

    // Replacing every value of the first envelope drops it.
    let all = secret(Some("app"), "db", &[("a", b"x"), ("c", b"y")]).data;
    sealed.merge(&all, &recipients(&[&id])).expect("merge");
    assert_eq!(
        sealed.envelopes().len(),
        2,
        "the first envelope is no longer referenced"
    );
}

#[test]
fn many_recipients_each_open() {
    let staging = Identity::generate();
    let prod = Identity::generate();
    let recovery = Identity::generate();
    let s = secret(Some("app"), "db", &[("k", CANARY)]);
    let sealed = SealedSecret::seal(
        &s,
        Scope::Strict,
        &recipients(&[&staging, &prod, &recovery]),
    )
    .expect("seal");
    let yaml = sealed.to_yaml().expect("yaml");
    for id in [&staging, &prod, &recovery] {
        let opened = open(&yaml, id).expect("each recipient opens");
        assert!(opened.opened_by.contains(id.key_id()));
        assert!(yaml.contains(id.key_id().as_str()), "key ids are readable");
    }
    assert_eq!(sealed.key_ids().len(), 3);
}

#[test]
fn rewrap_leaves_value_lines_untouched_and_rekey_does_not() {
    let old = Identity::generate();
    let new = Identity::generate();
    let s = secret(Some("app"), "db", &[("a", b"1"), ("b", CANARY)]);
    let mut sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&old])).expect("seal");
    let before = sealed.to_yaml().expect("yaml");

    sealed
        .rewrap(std::slice::from_ref(&old), &recipients(&[&new]))
        .expect("rewrap");
    let after = sealed.to_yaml().expect("yaml");
    let changed: Vec<(&str, &str)> = before
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(before.lines().count(), after.lines().count());
    assert!(
        changed
            .iter()
            .all(|(a, _)| a.contains("wrappedKey") || a.trim_start().starts_with("- ")),
        "only envelope lines change: {changed:?}"
    );
    open(&after, &new).expect("new key opens");
    assert!(matches!(
        open(&after, &old),
        Err(Error::NoMatchingIdentity { .. })
    ));

    sealed
        .rekey(std::slice::from_ref(&new), &recipients(&[&new]))
        .expect("rekey");
    let rekeyed = sealed.to_yaml().expect("yaml");
    let line_of = |y: &str, key: &str| {
        y.lines()
            .find(|l| l.trim_start().starts_with(&format!("{key}: ")))
            .map(str::to_owned)
    };
    assert_ne!(line_of(&after, "a"), line_of(&rekeyed, "a"));
    assert_ne!(line_of(&after, "b"), line_of(&rekeyed, "b"));
    assert_eq!(
        open(&rekeyed, &new).expect("opens").secret.data["b"].as_slice(),
        CANARY
    );
}

#[test]
fn errors_never_contain_values_or_keys() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let secret_key = id.to_secret_string();
    let attempts = [
        open(&yaml.replace("namespace: app", "namespace: b"), &id).err(),
        open(&yaml, &Identity::generate()).err(),
        reparse(&yaml.replace("sealsync.dev/v1", "sealsync.dev/v2")).err(),
    ];
    for err in attempts.into_iter().flatten() {
        let msg = format!("{err} {err:?}");
        assert!(!msg.contains("canary"), "{msg}");
        assert!(!msg.contains(secret_key.as_str()), "{msg}");
    }
    assert!(!format!("{id:?}").contains("AGE-SECRET-KEY"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("b64")
}
fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn serde_reads_the_typed_document_from_any_format_and_checks_it() {
    let (id, yaml) = sealed_yaml(Scope::Strict);
    let sealed: SealedSecret = serde_yaml::from_str(&yaml).expect("reads from YAML");
    let json = sealed.to_json().expect("json");
    let again: SealedSecret = serde_json::from_str(&json).expect("reads from JSON");
    assert_eq!(sealed, again);
    let opened = again
        .open(std::slice::from_ref(&id), &OpenOptions::default())
        .expect("opens");
    assert_eq!(opened.secret.data["password"].as_slice(), CANARY);

    // The format's checks run inside deserialization: a structurally broken document never
    // becomes a SealedSecret, whatever reads it.
    let envelope_id = &sealed.envelopes()[0].id;
    let broken = json.replace(&format!("\"id\": \"{envelope_id}\""), "\"id\": \"XYZ\"");
    assert_ne!(broken, json);
    let err = serde_json::from_str::<SealedSecret>(&broken).expect_err("bad envelope id");
    assert!(err.to_string().contains("16 lowercase hex digits"), "{err}");
    let newer = json.replace("sealsync.dev/v1", "sealsync.dev/v2");
    let err = serde_json::from_str::<SealedSecret>(&newer).expect_err("newer version");
    assert!(
        err.to_string().contains("unsupported format version"),
        "{err}"
    );
}
