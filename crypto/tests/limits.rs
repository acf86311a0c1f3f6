//! The parsing and opening limits of docs/format.md ("Limits"), including the bounds added for
//! hostile documents: a value line's length, and the work of the key-mismatch diagnosis.

mod common;

use std::time::Instant;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::{recipients, secret};
use sealsync_crypto::{Error, Identity, OpenOptions, Scope, SealedSecret, MAX_SECRET_BYTES};
use serde_yaml::Value;

fn sealed_value(sealed: &SealedSecret) -> Value {
    common::sealed_to_value(sealed)
}

fn line(doc: &Value, key: &str) -> String {
    doc["spec"]["encryptedData"][key]
        .as_str()
        .expect("line")
        .to_owned()
}

#[test]
fn a_value_line_longer_than_a_secret_can_be_is_refused_before_any_key_is_used() {
    let id = Identity::generate();
    let s = secret(Some("app"), "db", &[("a", b"1")]);
    let sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect("seal");
    let mut doc = sealed_value(&sealed);
    let (env, _) = line(&doc, "a")
        .split_once(':')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .expect("line");
    let huge = B64.encode(vec![0u8; 12 + MAX_SECRET_BYTES + 16 + 3]);
    doc["spec"]["encryptedData"]["a"] = format!("{env}:{huge}").into();
    let err = common::sealed_from_value(&doc).expect_err("too long");
    assert_eq!(err.metric_label(), "limit_exceeded", "{err}");

    // Exactly at the limit is structurally fine (and then fails authentication).
    let at_limit = B64.encode(vec![0u8; 12 + MAX_SECRET_BYTES + 16]);
    doc["spec"]["encryptedData"]["a"] = format!("{env}:{at_limit}").into();
    let sealed = common::sealed_from_value(&doc).expect("at the limit");
    let err = sealed
        .open(std::slice::from_ref(&id), &OpenOptions::default())
        .expect_err("not authentic");
    assert_eq!(err.metric_label(), "tampered", "{err}");
}

#[test]
fn envelope_ids_are_lowercase_hex() {
    let id = Identity::generate();
    let s = secret(Some("app"), "db", &[("a", b"1")]);
    let sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect("seal");
    let yaml = sealed.to_yaml().expect("yaml");
    let env_id = sealed.envelopes()[0].id.clone();
    let upper = yaml.replace(&env_id, &env_id.to_uppercase());
    assert_ne!(
        upper, yaml,
        "the id has a letter (true for all but 1 in 2^{{16}} keys)"
    );
    let value: Value = serde_yaml::from_str(&upper).expect("yaml");
    let err = common::sealed_from_value(&value).expect_err("uppercase id");
    assert_eq!(err.metric_label(), "malformed", "{err}");
    assert!(err.to_string().contains("spec.envelopes[0].id"), "{err}");
}

/// One large tampered value among thousands of keys: telling "moved" from "tampered" tries
/// the other key names, and that work is bounded instead of keys × value size.
#[test]
fn the_key_mismatch_diagnosis_is_bounded() {
    let id = Identity::generate();
    let names: Vec<String> = (0..4000).map(|i| format!("k{i:04}")).collect();
    let big = vec![0x42u8; 1_000_000];
    let mut values: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    values.push(("big", &big));
    let s = secret(Some("app"), "db", &values);
    let sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect("seal");
    let mut doc = sealed_value(&sealed);
    let (env, ct) = line(&doc, "big")
        .split_once(':')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .expect("line");
    let mut raw = B64.decode(ct).expect("b64");
    let last = raw.len() - 1;
    raw[last] ^= 1;
    doc["spec"]["encryptedData"]["big"] = format!("{env}:{}", B64.encode(raw)).into();
    let tampered = common::sealed_from_value(&doc).expect("structurally valid");

    let start = Instant::now();
    let err = tampered
        .open(std::slice::from_ref(&id), &OpenOptions::default())
        .expect_err("tampered");
    let elapsed = start.elapsed();
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
    assert!(err.to_string().contains("\"big\""), "{err}");
    // Unbounded, this is 4,000 passes over 1 MB; bounded, at most 16 MiB of work.
    eprintln!("diagnosis of a tampered 1 MB value among 4,000 keys took {elapsed:?}");
    // The bound itself is checked without a clock in document.rs's unit tests
    // (`diagnosis_work_is_bounded`): timed assertions do not belong in tests.
}

#[test]
fn sealing_refuses_what_opening_would_refuse() {
    let id = Identity::generate();
    let big = vec![0u8; MAX_SECRET_BYTES + 1];
    let s = secret(Some("app"), "db", &[("big", &big)]);
    let err = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect_err("too big");
    assert_eq!(err.metric_label(), "limit_exceeded", "{err}");
    let fits = vec![0u8; MAX_SECRET_BYTES];
    let s = secret(Some("app"), "db", &[("big", &fits)]);
    let sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect("fits");
    let value: Value = serde_yaml::from_str(&sealed.to_yaml().expect("yaml")).expect("yaml");
    let opened = common::sealed_from_value(&value)
        .expect("valid")
        .open(std::slice::from_ref(&id), &OpenOptions::default())
        .expect("opens");
    assert_eq!(opened.secret.data["big"].len(), MAX_SECRET_BYTES);
}

#[test]
fn a_wrapped_key_with_more_recipient_stanzas_than_allowed_is_refused_before_any_key_is_tried() {
    let id = Identity::generate();
    let s = secret(Some("app"), "db", &[("a", b"1")]);
    let sealed = SealedSecret::seal(&s, Scope::Strict, &recipients(&[&id])).expect("seal");
    let mut doc = sealed_value(&sealed);
    // A real age file to 65 recipients, where one is listed: one stanza too many.
    let many: Vec<Identity> = (0..65).map(|_| Identity::generate()).collect();
    let wrapped = sealsync_crypto::vectors::wrap_envelope(
        [7u8; 32],
        &sealsync_crypto::Binding::new(Scope::Strict, "app", "db"),
        &recipients(&many.iter().collect::<Vec<_>>()),
    )
    .expect("age itself has no such bound");
    doc["spec"]["envelopes"][0]["wrappedKey"] = B64.encode(&wrapped).into();
    let err = common::sealed_from_value(&doc).expect_err("too many stanzas");
    assert_eq!(err.metric_label(), "limit_exceeded", "{err}");
    assert!(err.to_string().contains("64 stanzas"), "{err}");

    // Sealing refuses more recipients than an envelope may list, rather than write a file
    // that no reader accepts.
    let err = SealedSecret::seal(
        &s,
        Scope::Strict,
        &recipients(&many.iter().collect::<Vec<_>>()),
    )
    .expect_err("65 recipients");
    assert_eq!(err.metric_label(), "limit_exceeded", "{err}");
}
