//! The vectors in `testdata/sops/` were written by the real sops (`generate.sh`).

use serde_yaml::Value;

use super::*;
use crate::manifest::{read_documents, Limits};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sops");

fn read(name: &str) -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/{name}")).expect("vector");
    let mut documents = read_documents(&text, Limits::default()).expect("parsed");
    assert_eq!(documents.len(), 1, "{name}");
    std::mem::take(&mut documents[0].value)
}

fn identities() -> Vec<Identity> {
    sealsync_crypto::parse_identity_file(
        &std::fs::read_to_string(format!("{DIR}/identity.txt")).expect("identity"),
    )
    .expect("identities")
}

fn open(document: &Value) -> Result<OpenedSops, SopsError> {
    open_file(&[(document, "f.yaml: document 1")], &identities()).map(|mut opened| {
        assert_eq!(opened.len(), 1);
        opened.remove(0)
    })
}

fn verify(document: &Value) -> VerifiedSops {
    let mac = document["sops"]["mac"].as_str().expect("mac");
    verify_file(&[(document, "f")], mac, &identities())
        .expect("verified")
        .expect("found")
}

/// Every error on every path: names the place, never a value.
fn assert_no_value(error: &SopsError) {
    let message = format!("{error} {error:?}");
    assert!(!message.contains("canary"), "{message}");
    assert!(!message.contains("ENC["), "{message}");
}

const VECTORS: [(&str, &str); 6] = [
    ("default.sops.yaml", "default.plain.yaml"),
    ("secret.sops.yaml", "secret.plain.yaml"),
    ("mac-only.sops.yaml", "mac-only.plain.yaml"),
    (
        "unencrypted-regex.sops.yaml",
        "unencrypted-regex.plain.yaml",
    ),
    ("encrypted-suffix.sops.yaml", "encrypted-suffix.plain.yaml"),
    ("secret.sops.json", "secret.plain.json"),
];

#[test]
fn every_vector_opens_to_the_file_sops_encrypted() {
    for (encrypted, plain) in VECTORS {
        let document = read(encrypted);
        assert!(is_sops_document(&document), "{encrypted}");
        assert!(!is_sops_document(&read(plain)), "{plain}");
        let opened = open(&document).unwrap_or_else(|e| panic!("{encrypted}: {e}"));
        assert_eq!(opened.document, read(plain), "{encrypted}");
        check_document(&document, "f").unwrap_or_else(|e| panic!("{encrypted}: {e}"));
    }
}

#[test]
fn the_default_rule_leaves_unencrypted_suffixes_and_empty_values_as_written() {
    let document = read("default.sops.yaml");
    assert_eq!(
        document["public_unencrypted"]["kept"],
        Value::from("as written")
    );
    assert!(document["name"]
        .as_str()
        .is_some_and(|s| s.starts_with("ENC[")));
    let opened = open(&document).expect("opened");
    assert_eq!(
        opened.document["list"][2]["nested"]["deep"],
        Value::from("canary-default-deep-9a0")
    );
    assert_eq!(opened.document["enabled"], Value::Bool(true));
    assert_eq!(opened.document["nothing"], Value::Null);
}

fn set(document: &mut Value, path: &[&str], value: Value) {
    let mut at = document;
    for key in &path[..path.len() - 1] {
        at = at.get_mut(*key).expect("path");
    }
    at[path[path.len() - 1]] = value;
}

#[test]
fn a_changed_value_inside_the_mac_fails_the_mac_and_outside_it_does_not() {
    let mut document = read("secret.sops.yaml");
    set(&mut document, &["metadata", "name"], Value::from("other"));
    let error = open(&document).expect_err("MAC covers metadata");
    assert!(matches!(error, SopsError::MacMismatch { .. }), "{error}");
    assert_no_value(&error);
    assert!(
        error
            .to_string()
            .starts_with("f.yaml: document 1: its SOPS MAC does not match"),
        "{error}"
    );

    // With mac_only_encrypted, only the encrypted values are in the MAC.
    let mut document = read("mac-only.sops.yaml");
    set(&mut document, &["metadata", "name"], Value::from("other"));
    let opened = open(&document).expect("metadata is outside the MAC");
    assert_eq!(
        opened.document["stringData"]["password"],
        Value::from("canary-sops-string-1b4")
    );
}

#[test]
fn a_removed_or_duplicated_value_fails_the_mac() {
    let mut document = read("secret.sops.yaml");
    document["stringData"]
        .as_mapping_mut()
        .expect("stringData")
        .remove("port");
    let error = open(&document).expect_err("removed");
    assert!(matches!(error, SopsError::MacMismatch { .. }), "{error}");

    // The same value under a second name decrypts (same path is not required of a list
    // item) but adds to the MAC.
    let mut document = read("mac-only.sops.yaml");
    let token = document["data"]["token"].clone();
    document["data"]["token2"] = Value::Null;
    set(&mut document, &["data", "token2"], token);
    let error = open(&document).expect_err("moved");
    assert!(
        matches!(error, SopsError::Tampered { ref field, .. } if field == "data.token2"),
        "{error}"
    );
    assert_no_value(&error);
}

#[test]
fn a_value_moved_to_another_path_does_not_decrypt() {
    let mut document = read("secret.sops.yaml");
    let password = document["stringData"]["password"].clone();
    let port = document["stringData"]["port"].clone();
    set(&mut document, &["stringData", "password"], port);
    set(&mut document, &["stringData", "port"], password);
    let error = open(&document).expect_err("swapped");
    assert!(matches!(error, SopsError::Tampered { .. }), "{error}");
    assert_no_value(&error);
}

#[test]
fn plaintext_where_the_rule_encrypts_is_refused_by_field() {
    let mut document = read("secret.sops.yaml");
    set(
        &mut document,
        &["stringData", "password"],
        Value::from("canary-plain-0e1"),
    );
    let error = open(&document).expect_err("plaintext");
    assert_eq!(
        error.to_string(),
        "f.yaml: document 1: stringData.password is plaintext, but the file's SOPS rule (encrypted_regex: ^(data|stringData)$) encrypts it; encrypt the file again with `sops encrypt`"
    );
    assert_no_value(&error);
    let error = check_document(&document, "f.yaml: document 1").expect_err("plaintext");
    assert!(matches!(error, SopsError::Plaintext { .. }));
    assert_no_value(&error);

    let mut document = read("default.sops.yaml");
    set(&mut document, &["port"], Value::from(5432));
    let error = check_document(&document, "f").expect_err("a plaintext number");
    assert!(error.to_string().contains("port is plaintext"), "{error}");
}

#[test]
fn metadata_without_a_mac_or_with_key_groups_is_refused() {
    let mut document = read("secret.sops.yaml");
    document["sops"]
        .as_mapping_mut()
        .expect("sops")
        .remove("mac");
    let error = check_document(&document, "f").expect_err("no MAC");
    assert_eq!(
        error.to_string(),
        "f: malformed SOPS document at sops.mac: missing: a file without a MAC could have been altered; encrypt it again with `sops encrypt`"
    );

    let mut document = read("secret.sops.yaml");
    document["sops"]["key_groups"] = serde_yaml::from_str("[{age: []}, {age: []}]").expect("yaml");
    let error = open(&document).expect_err("Shamir");
    assert!(matches!(error, SopsError::Unsupported { .. }), "{error}");

    let mut document = read("secret.sops.yaml");
    document["sops"]["encrypted_suffix"] = Value::from("_secret");
    assert!(open(&document)
        .expect_err("two rules")
        .to_string()
        .contains("more than one"));
}

#[test]
fn a_file_for_other_keys_names_its_recipients_and_what_to_do() {
    let document = read("secret.sops.yaml");
    let other = sealsync_crypto::Identity::generate();
    let error = open_file(&[(&document, "f")], &[other]).expect_err("wrong key");
    let recipient = document["sops"]["age"][0]["recipient"]
        .as_str()
        .expect("recipient");
    assert_eq!(
        error.to_string(),
        format!("f: no key of this cluster opens this SOPS file (its age recipients: {recipient}); add the cluster's recipient (`sealsync keys fetch`) to the age keys of its .sops.yaml creation rule and run `sops updatekeys` on it")
    );
    assert_eq!(error.metric_label(), "no_matching_key");
}

#[test]
fn a_rendered_copy_opens_against_the_file_it_was_verified_as() {
    let source = read("secret.sops.yaml");
    let verified = verify(&source);
    assert_eq!(verified.key_id(), identities()[0].key_id());

    // kustomize set a namespace and a label: outside the values, inside the MAC.
    let mut rendered = source.clone();
    set(
        &mut rendered,
        &["metadata", "namespace"],
        Value::from("prod"),
    );
    set(
        &mut rendered,
        &["metadata", "labels", "team"],
        Value::from("a"),
    );
    let opened =
        open_document(&rendered, &[], "r", Provenance::RenderedFrom(&verified)).expect("opened");
    assert_eq!(
        opened.document["stringData"]["password"],
        Value::from("canary-sops-string-1b4")
    );
    assert_eq!(
        opened.document["metadata"]["namespace"],
        Value::from("prod")
    );

    // A value the file does not hold, even one encrypted under another file's key.
    let other = read("mac-only.sops.yaml");
    let mut mixed = source.clone();
    set(
        &mut mixed,
        &["stringData", "password"],
        other["stringData"]["password"].clone(),
    );
    let error = open_document(&mixed, &[], "r", Provenance::RenderedFrom(&verified))
        .expect_err("foreign value");
    assert!(matches!(error, SopsError::NotAsVerified { .. }), "{error}");
    assert_no_value(&error);

    // Another file's metadata.
    let error = open_document(&other, &[], "r", Provenance::RenderedFrom(&verified))
        .expect_err("another file");
    assert!(matches!(error, SopsError::NotAsVerified { .. }), "{error}");

    // A patch that adds plaintext is refused as plaintext.
    let mut patched = source.clone();
    set(
        &mut patched,
        &["stringData", "extra"],
        Value::from("canary-patch"),
    );
    let error = open_document(&patched, &[], "r", Provenance::RenderedFrom(&verified))
        .expect_err("plaintext");
    assert!(matches!(error, SopsError::Plaintext { .. }), "{error}");
    assert_no_value(&error);
}

#[test]
fn a_recorded_copy_opens_without_its_order() {
    let source = read("secret.sops.json");
    // Through JSON, as the controller records it: keys sorted.
    let json: Json = serde_json::to_value(&source).expect("json");
    let recorded: Value = serde_yaml::to_value(&json).expect("yaml");
    let error = open(&recorded).expect_err("the order changed");
    assert!(matches!(error, SopsError::MacMismatch { .. }), "{error}");
    let opened =
        open_document(&recorded, &identities(), "r", Provenance::Recorded).expect("opened");
    assert_eq!(opened.document["stringData"]["retries"], Value::from(3));
    assert!(is_sops_object(&json));
}

#[test]
fn lastmodified_is_read_as_go_formats_it() {
    use super::metadata::SopsMetadata;
    let mut document = read("secret.sops.yaml");
    for (written, used) in [
        ("2026-12-07T18:55:48Z", "2026-12-07T18:55:48Z"),
        ("2026-12-07T18:55:48.123456Z", "2026-12-07T18:55:48Z"),
        ("2026-12-07T19:55:48+01:00", "2026-12-07T19:55:48+01:00"),
        ("2026-12-07T18:55:48+00:00", "2026-12-07T18:55:48Z"),
    ] {
        document["sops"]["lastmodified"] = Value::from(written);
        let metadata = SopsMetadata::parse(&document, "f").expect("parsed");
        assert_eq!(metadata.lastmodified, used, "{written}");
    }
    for bad in [
        "yesterday",
        "2026-12-07",
        "2026-12-07T18:55:48",
        "2026-12-07T18:55:48+0100",
    ] {
        document["sops"]["lastmodified"] = Value::from(bad);
        assert!(SopsMetadata::parse(&document, "f").is_err(), "{bad}");
    }
}

#[test]
fn a_file_of_several_documents_has_one_mac_over_all_of_them() {
    let text = std::fs::read_to_string(format!("{DIR}/multi.sops.yaml")).expect("vector");
    let documents = read_documents(&text, Limits::default()).expect("parsed");
    let located: Vec<(&Value, &str)> = documents
        .iter()
        .map(|d| (&d.value, "multi.sops.yaml"))
        .collect();
    let opened = open_file(&located, &identities()).expect("opened");
    assert_eq!(
        opened[0].document["stringData"]["password"],
        Value::from("canary-sops-multi-first-3a1")
    );
    assert_eq!(
        opened[1].document["stringData"]["password"],
        Value::from("canary-sops-multi-second-8e4")
    );
    // One document alone is not the file the MAC covers.
    let error = open_file(&located[..1], &identities()).expect_err("half the file");
    assert!(matches!(error, SopsError::MacMismatch { .. }), "{error}");
    // Values swapped between documents keep their paths but change the MAC's order.
    let mut swapped: Vec<Value> = documents.iter().map(|d| d.value.clone()).collect();
    let first = swapped[0]["stringData"]["password"].clone();
    swapped[0]["stringData"]["password"] = swapped[1]["stringData"]["password"].clone();
    swapped[1]["stringData"]["password"] = first;
    let located: Vec<(&Value, &str)> = swapped.iter().map(|d| (d, "f")).collect();
    let error = open_file(&located, &identities()).expect_err("swapped");
    assert!(matches!(error, SopsError::MacMismatch { .. }), "{error}");
    assert_no_value(&error);
}

#[test]
fn a_rendered_copy_is_walked_with_the_rule_of_its_file_not_its_own() {
    let source = read("secret.sops.yaml");
    let verified = verify(&source);
    // A patch that rewrites the rule so that nothing counts as encrypted.
    let mut rendered = source.clone();
    set(
        &mut rendered,
        &["sops", "encrypted_regex"],
        Value::from("^none$"),
    );
    set(
        &mut rendered,
        &["stringData", "password"],
        Value::from("canary-patched-in"),
    );
    let error = open_document(&rendered, &[], "r", Provenance::RenderedFrom(&verified))
        .expect_err("another rule");
    assert!(matches!(error, SopsError::NotAsVerified { .. }), "{error}");
    assert_no_value(&error);
}

#[test]
fn values_a_rule_leaves_in_plaintext_are_reported_as_such() {
    let mut document = read("encrypted-suffix.sops.yaml");
    // `plain.kept` is outside data and stringData: not a Secret value.
    assert!(open(&document).expect("opened").plaintext_fields.is_empty());
    assert!(check_document(&document, "f").expect("checked").is_empty());
    // A Secret value under a key the rule leaves alone.
    document["data"] = serde_yaml::from_str("{token: Y2FuYXJ5}").expect("yaml");
    assert_eq!(
        check_document(&document, "f").expect("checked"),
        ["data.token"]
    );
}
