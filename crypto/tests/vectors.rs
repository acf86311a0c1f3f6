//! Known-answer vectors for the sealed format (`docs/format.md`).
//!
//! The data files live in `crypto/tests/data/`:
//!
//! - `rfc8439-2.8.2.json`: the ChaCha20-Poly1305 AEAD test vector published in RFC 8439,
//!   section 2.8.2, copied from the RFC. It is never regenerated: it proves that value sealing
//!   is standard ChaCha20-Poly1305, not only that it is stable.
//! - `vectors.json`: self-generated vectors: binding and associated-data encodings per scope,
//!   envelope ids, key ids, value sealing with fixed key and nonce, envelope payloads, and what
//!   the known-answer document must yield (including edits that must fail, and how).
//! - `kat-sealed.yaml`: a complete sealed document with two envelopes and two recipients.
//! - `kat-identity.txt`: the TEST ONLY identity (made with `age-keygen`) that opens it.
//!
//! Regenerate the self-generated files only after a deliberate format change, and review the
//! diff (every line of `kat-sealed.yaml` except the `wrappedKey` lines must stay the same
//! unless the format changed):
//!
//! ```text
//! SEALSYNC_REGENERATE_VECTORS=1 cargo test -p sealsync-crypto --test vectors -- --ignored regenerate
//! ```
//!
//! The regenerator keeps `kat-identity.txt` and fixes every data key and nonce; only the age
//! wrapping (randomized by age itself) differs from one run to the next.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::digest;
use sealsync_crypto::{
    parse_identity_file, vectors, Binding, Error, Identity, OpenOptions, Recipient, Scope,
    SealedSecret,
};
use serde_json::{json, Value as Json};

const VERSION_TAG: &str = "sealsync/v1";
const DOC_FILE: &str = "kat-sealed.yaml";
const IDENTITY_FILE: &str = "kat-identity.txt";
/// The public half of a second `age-keygen` identity whose private half was discarded: the
/// document's "offline recovery" recipient.
const RECOVERY_RECIPIENT: &str = "age1gjv47jl3kzvxtclgg8a8qs0359sjhn5d9lzf3wv5m3cnwvr3lf5s7s2urt";
/// The example recipient of the age specification.
const AGE_SPEC_RECIPIENT: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";

// ---------------------------------------------------------------------------------------------
// Helpers.

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn read_data(name: &str) -> String {
    let path = data_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn load_json(name: &str) -> Json {
    serde_json::from_str(&read_data(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn s<'a>(j: &'a Json, field: &str) -> &'a str {
    j[field]
        .as_str()
        .unwrap_or_else(|| panic!("field {field:?} is not a string in {j}"))
}

fn hex_field(j: &Json, field: &str) -> Vec<u8> {
    hex::decode(s(j, field)).unwrap_or_else(|e| panic!("field {field:?}: {e}"))
}

fn key32(j: &Json, field: &str) -> [u8; 32] {
    hex_field(j, field).try_into().expect("32 bytes")
}

fn nonce12(j: &Json, field: &str) -> [u8; 12] {
    hex_field(j, field).try_into().expect("12 bytes")
}

fn scope(j: &Json) -> Scope {
    s(j, "scope").parse().expect("scope")
}

fn array<'a>(j: &'a Json, field: &str) -> &'a Vec<Json> {
    j[field]
        .as_array()
        .unwrap_or_else(|| panic!("field {field:?} is not an array"))
}

fn strings(j: &Json, field: &str) -> Vec<String> {
    array(j, field)
        .iter()
        .map(|v| v.as_str().expect("string").to_owned())
        .collect()
}

/// The spec's `lp`, written independently of the crate: u32 big-endian length, then bytes.
fn lp_concat(fields: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        out.extend_from_slice(&u32::try_from(f.len()).expect("short").to_be_bytes());
        out.extend_from_slice(f);
    }
    out
}

fn sha256_prefix_hex(parts: &[&[u8]]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    hex::encode(&ctx.finish().as_ref()[..8])
}

fn kat_identities() -> Vec<Identity> {
    parse_identity_file(&read_data(IDENTITY_FILE)).expect("kat identity")
}

/// The document text without its leading comment block.
fn strip_header(text: &str) -> String {
    text.lines()
        .skip_while(|l| l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn parse_one(text: &str) -> Result<SealedSecret, Error> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| Error::Malformed {
        location: "the document".to_owned(),
        reason: e.to_string(),
    })?;
    common::sealed_from_value(&value)
}

// ---------------------------------------------------------------------------------------------
// RFC 8439: external, published vector.

#[test]
fn rfc8439_aead_test_vector() {
    let v = load_json("rfc8439-2.8.2.json");
    let key = key32(&v, "key_hex");
    let nonce = nonce12(&v, "nonce_hex");
    let aad = hex_field(&v, "aad_hex");
    let plaintext = s(&v, "plaintext").as_bytes();
    let mut expected = nonce.to_vec();
    expected.extend(hex_field(&v, "ciphertext_hex"));
    expected.extend(hex_field(&v, "tag_hex"));

    // A value string is base64(nonce ‖ ciphertext ‖ tag) of plain RFC 8439 ChaCha20-Poly1305.
    let sealed = vectors::seal_value(key, nonce, &aad, plaintext);
    assert_eq!(
        hex::encode(B64.decode(&sealed).expect("b64")),
        hex::encode(&expected)
    );
    let opened = vectors::open_value(key, &aad, &sealed).expect("opens");
    assert_eq!(opened.as_slice(), plaintext);

    // Any change to the tag, the ciphertext, the nonce or the associated data fails.
    for i in [0, 12, expected.len() - 1] {
        let mut bad = expected.clone();
        bad[i] ^= 0x01;
        assert!(vectors::open_value(key, &aad, &B64.encode(&bad)).is_none());
    }
    let mut bad_aad = aad.clone();
    bad_aad[0] ^= 1;
    assert!(vectors::open_value(key, &bad_aad, &sealed).is_none());
}

// ---------------------------------------------------------------------------------------------
// Self-generated vectors.

#[test]
fn binding_and_aad_encodings() {
    let v = load_json("vectors.json");
    assert_eq!(s(&v, "version_tag"), VERSION_TAG);
    let cases = array(&v, "bindings");
    assert!(cases.len() >= 3);
    let mut seen_scopes = BTreeSet::new();
    for case in cases {
        let scope = scope(case);
        seen_scopes.insert(scope.as_str());
        let binding = Binding::new(scope, s(case, "namespace"), s(case, "name"));
        // Fields the scope does not bind are emptied.
        assert_eq!(binding.namespace(), s(case, "bound_namespace"), "{case}");
        assert_eq!(binding.name(), s(case, "bound_name"), "{case}");
        let expected_binding = hex_field(case, "binding_hex");
        assert_eq!(
            hex::encode(vectors::binding_encoding(&binding)),
            hex::encode(&expected_binding),
            "{case}"
        );
        // The same bytes, from the spec rather than the crate.
        assert_eq!(
            expected_binding,
            lp_concat(&[
                VERSION_TAG.as_bytes(),
                scope.as_str().as_bytes(),
                s(case, "bound_namespace").as_bytes(),
                s(case, "bound_name").as_bytes(),
            ])
        );
        let aad = vectors::value_aad(&binding, s(case, "data_key_name"));
        assert_eq!(hex::encode(&aad), s(case, "aad_hex"), "{case}");
        let mut spec_aad = expected_binding.clone();
        spec_aad.extend(lp_concat(&[s(case, "data_key_name").as_bytes()]));
        assert_eq!(aad, spec_aad);
    }
    assert_eq!(seen_scopes.len(), 3, "every scope has a vector");
}

#[test]
fn envelope_ids() {
    let v = load_json("vectors.json");
    for case in array(&v, "envelope_ids") {
        let key = key32(case, "data_key_hex");
        assert_eq!(vectors::envelope_id(key), s(case, "envelope_id"), "{case}");
        assert_eq!(
            sha256_prefix_hex(&[b"sealsync/v1 envelope-id\0", &key]),
            s(case, "envelope_id")
        );
    }
}

#[test]
fn key_ids() {
    let v = load_json("vectors.json");
    for case in array(&v, "key_ids") {
        let recipient: Recipient = s(case, "recipient").parse().expect("recipient");
        assert_eq!(recipient.as_str(), s(case, "recipient"), "canonical form");
        assert_eq!(recipient.key_id().as_str(), s(case, "key_id"), "{case}");
        assert_eq!(
            sha256_prefix_hex(&[s(case, "recipient").as_bytes()]),
            s(case, "key_id")
        );
    }
    // The KAT identity's key id is among them.
    let id = &kat_identities()[0];
    assert!(array(&v, "key_ids")
        .iter()
        .any(|c| s(c, "key_id") == id.key_id().as_str()));
}

#[test]
fn value_sealing() {
    let v = load_json("vectors.json");
    for case in array(&v, "values") {
        let key = key32(case, "data_key_hex");
        let nonce = nonce12(case, "nonce_hex");
        let aad = hex_field(case, "aad_hex");
        let plaintext = hex_field(case, "plaintext_hex");
        let sealed = vectors::seal_value(key, nonce, &aad, &plaintext);
        assert_eq!(sealed, s(case, "sealed"), "{case}");
        // Standard alphabet, padded, and the nonce is the first 12 bytes.
        let raw = B64.decode(&sealed).expect("standard padded base64");
        assert_eq!(raw.len(), 12 + plaintext.len() + 16);
        assert_eq!(&raw[..12], &nonce);
        assert_eq!(
            vectors::open_value(key, &aad, &sealed)
                .expect("opens")
                .as_slice(),
            plaintext.as_slice()
        );
    }
}

#[test]
fn envelope_payloads() {
    let v = load_json("vectors.json");
    for case in array(&v, "envelope_payloads") {
        let key = key32(case, "data_key_hex");
        let binding = Binding::new(scope(case), s(case, "namespace"), s(case, "name"));
        let payload = vectors::envelope_payload(key, &binding);
        assert_eq!(hex::encode(&payload), s(case, "payload_hex"), "{case}");
        assert_eq!(&payload[..32], &key);
        assert_eq!(payload[32..], vectors::binding_encoding(&binding));
    }
}

/// Every non-canonical base64 spelling of a value is refused: one value, one spelling.
#[test]
fn base64_is_standard_padded_and_canonical() {
    let v = load_json("vectors.json");
    let case = &array(&v, "values")[0];
    let key = key32(case, "data_key_hex");
    let aad = hex_field(case, "aad_hex");
    let sealed = s(case, "sealed");
    let unpadded = sealed.trim_end_matches('=');
    assert_ne!(unpadded, sealed, "vector chosen to need padding");
    let url_safe = sealed.replace('+', "-").replace('/', "_");
    for bad in [
        unpadded,
        &url_safe,
        &format!(" {sealed}"),
        &format!("{sealed}\n"),
    ] {
        if bad != sealed {
            assert!(vectors::open_value(key, &aad, bad).is_none(), "{bad:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The known-answer document.

#[test]
fn kat_document_parses_and_reserializes_byte_for_byte() {
    let v = load_json("vectors.json");
    let doc = &v["document"];
    let text = read_data(s(doc, "file"));
    let sealed = parse_one(&text).expect("parses");
    assert_eq!(sealed.to_yaml().expect("yaml"), strip_header(&text));
    assert_eq!(sealed.metadata().name, s(doc, "name"));
    assert_eq!(
        sealed.metadata().namespace.as_deref(),
        Some(s(doc, "namespace"))
    );
    assert_eq!(sealed.scope(), scope(doc));
    let listed: Vec<String> = sealed.key_ids().iter().map(|k| k.to_string()).collect();
    assert_eq!(listed, strings(doc, "key_ids"));
}

#[test]
fn kat_document_envelopes_and_value_lines() {
    let v = load_json("vectors.json");
    let doc = &v["document"];
    let sealed = parse_one(&read_data(s(doc, "file"))).expect("parses");
    let identities = kat_identities();
    let binding = Binding::new(scope(doc), s(doc, "namespace"), s(doc, "name"));
    let plaintext = &doc["plaintext_hex"];
    let value = common::sealed_to_value(&sealed);
    let lines = &value["spec"]["encryptedData"];

    let expected = array(doc, "envelopes");
    assert_eq!(sealed.envelopes().len(), expected.len());
    for (env, case) in sealed.envelopes().iter().zip(expected) {
        assert_eq!(env.id, s(case, "id"));
        let listed: Vec<String> = env.recipients.iter().map(|k| k.to_string()).collect();
        assert_eq!(listed, strings(case, "recipients"));

        let wrapped = B64.decode(&env.wrapped_key).expect("b64");
        let (payload, opened_by) =
            vectors::unwrap_envelope(&env.id, &wrapped, &identities).expect("unwraps");
        assert_eq!(opened_by, *identities[0].key_id());
        assert_eq!(hex::encode(payload.as_slice()), s(case, "payload_hex"));
        let key = key32(case, "data_key_hex");
        assert_eq!(&payload[..32], &key);
        assert_eq!(payload[32..], vectors::binding_encoding(&binding));
        assert_eq!(vectors::envelope_id(key), env.id);

        for (name, vcase) in case["values"].as_object().expect("values") {
            let line = s(vcase, "line");
            assert_eq!(lines[name.as_str()].as_str(), Some(line), "{name}");
            let pt = hex::decode(s(plaintext, name)).expect("hex");
            let sealed_value = vectors::seal_value(
                key,
                nonce12(vcase, "nonce_hex"),
                &vectors::value_aad(&binding, name),
                &pt,
            );
            assert_eq!(line, format!("{}:{sealed_value}", env.id), "{name}");
        }
    }
}

#[test]
fn kat_document_opens_to_the_expected_secret() {
    let v = load_json("vectors.json");
    let doc = &v["document"];
    let sealed = parse_one(&read_data(s(doc, "file"))).expect("parses");
    let opened = sealed
        .open(&kat_identities(), &OpenOptions::default())
        .expect("opens");
    let got: BTreeMap<String, String> = opened
        .secret
        .data
        .iter()
        .map(|(k, v)| (k.clone(), hex::encode(v.as_slice())))
        .collect();
    let want: BTreeMap<String, String> =
        serde_json::from_value(doc["plaintext_hex"].clone()).expect("map");
    assert_eq!(got, want);
    let opened_by: Vec<String> = opened.opened_by.iter().map(|k| k.to_string()).collect();
    assert_eq!(opened_by, strings(doc, "opened_by"));
    assert_eq!(opened.secret.name, s(doc, "name"));
    assert_eq!(opened.secret.type_.as_deref(), Some("Opaque"));

    match sealed.open(&[Identity::generate()], &OpenOptions::default()) {
        Err(Error::NoMatchingIdentity { key_ids, .. }) => {
            let ids: Vec<String> = key_ids.iter().map(|k| k.to_string()).collect();
            assert_eq!(ids, strings(doc, "no_matching_identity_key_ids"));
        }
        other => panic!("expected NoMatchingIdentity, got {other:?}"),
    }
}

/// Edits of the document, each with the outcome the format promises.
#[test]
fn kat_document_edits() {
    let v = load_json("vectors.json");
    let doc = &v["document"];
    let text = read_data(s(doc, "file"));
    let identities = kat_identities();
    let want: BTreeMap<String, String> =
        serde_json::from_value(doc["plaintext_hex"].clone()).expect("map");
    let mutations = array(doc, "mutations");
    assert!(mutations.len() >= 8);
    for m in mutations {
        let what = s(m, "description");
        let mut edited = text.clone();
        for pair in array(m, "replace") {
            let [from, to] = [
                pair[0].as_str().expect("from"),
                pair[1].as_str().expect("to"),
            ];
            let count = edited.matches(from).count();
            assert!(count >= 1, "{what}: {from:?} not found");
            if pair.get(2).and_then(Json::as_str) != Some("all") {
                assert_eq!(count, 1, "{what}: {from:?} is ambiguous");
            }
            edited = edited.replace(from, to);
        }
        assert_ne!(edited, text, "{what}");
        let result = parse_one(&edited).and_then(|d| d.open(&identities, &OpenOptions::default()));
        match (s(m, "expect"), result) {
            ("ok", Ok(opened)) => {
                let got: BTreeMap<String, String> = opened
                    .secret
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), hex::encode(v.as_slice())))
                    .collect();
                let keys: Vec<String> = got.keys().cloned().collect();
                assert_eq!(keys, strings(m, "keys"), "{what}");
                for (k, v) in &got {
                    assert_eq!(Some(v), want.get(k), "{what}: {k}");
                }
            }
            (label, Err(err)) => {
                assert_eq!(err.metric_label(), label, "{what}: {err}");
                if let Some(field) = m.get("field").and_then(Json::as_str) {
                    match &err {
                        Error::BindingMismatch { field: f, .. } => {
                            assert_eq!(f.to_string(), field, "{what}: {err}")
                        }
                        other => panic!("{what}: expected a binding mismatch, got {other}"),
                    }
                }
                if let Some(fragment) = m.get("message_contains").and_then(Json::as_str) {
                    assert!(err.to_string().contains(fragment), "{what}: {err}");
                }
            }
            (label, Ok(_)) => panic!("{what}: expected {label}, but the document opened"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Regeneration.

fn seq32(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start.wrapping_add(i as u8))
}

fn nonce_of(last: u8) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[11] = last;
    n
}

#[test]
#[ignore = "regenerates crypto/tests/data; run with SEALSYNC_REGENERATE_VECTORS=1"]
fn regenerate() {
    if std::env::var("SEALSYNC_REGENERATE_VECTORS").as_deref() != Ok("1") {
        eprintln!("set SEALSYNC_REGENERATE_VECTORS=1 to rewrite crypto/tests/data");
        return;
    }
    let identities = kat_identities();
    let kat = identities[0].recipient();
    let recovery: Recipient = RECOVERY_RECIPIENT.parse().expect("recovery recipient");
    let dk_a = seq32(0x00);
    let dk_b = seq32(0xa0);
    let (name, namespace) = ("db-credentials", "app");

    let binding_inputs = [
        (Scope::Strict, namespace, name, "password"),
        (Scope::Namespace, namespace, name, "password"),
        (Scope::Cluster, namespace, name, "password"),
        (Scope::Strict, namespace, name, "tls.crt"),
        (Scope::Strict, "ab", "c", "k"),
        (Scope::Strict, "a", "bc", "k"),
    ];
    let bindings: Vec<Json> = binding_inputs
        .iter()
        .map(|&(scope, ns, n, key)| {
            let b = Binding::new(scope, ns, n);
            json!({
                "scope": scope.as_str(), "namespace": ns, "name": n, "data_key_name": key,
                "bound_namespace": b.namespace(), "bound_name": b.name(),
                "binding_hex": hex::encode(vectors::binding_encoding(&b)),
                "aad_hex": hex::encode(vectors::value_aad(&b, key)),
            })
        })
        .collect();

    let envelope_ids: Vec<Json> = [dk_a, dk_b, [0u8; 32]]
        .iter()
        .map(|k| json!({"data_key_hex": hex::encode(k), "envelope_id": vectors::envelope_id(*k)}))
        .collect();

    let key_ids: Vec<Json> = [kat.as_str(), RECOVERY_RECIPIENT, AGE_SPEC_RECIPIENT]
        .iter()
        .map(|r| {
            let parsed: Recipient = r.parse().expect("recipient");
            json!({"recipient": parsed.as_str(), "key_id": parsed.key_id().as_str()})
        })
        .collect();

    let strict = Binding::new(Scope::Strict, namespace, name);
    type ValueInput<'a> = ([u8; 32], [u8; 12], Vec<u8>, &'a [u8]);
    let value_inputs: [ValueInput; 3] = [
        (
            dk_a,
            nonce_of(1),
            vectors::value_aad(&strict, "password"),
            b"hunter2",
        ),
        (
            dk_a,
            nonce_of(2),
            vectors::value_aad(&Binding::new(Scope::Namespace, namespace, name), "empty"),
            b"",
        ),
        (
            dk_b,
            [0xff; 12],
            vectors::value_aad(&Binding::new(Scope::Cluster, namespace, name), "blob"),
            &[0x00, 0xff, 0x80, 0x0a],
        ),
    ];
    let values: Vec<Json> = value_inputs
        .iter()
        .map(|(k, n, aad, pt)| {
            json!({
                "data_key_hex": hex::encode(k), "nonce_hex": hex::encode(n),
                "aad_hex": hex::encode(aad), "plaintext_hex": hex::encode(pt),
                "sealed": vectors::seal_value(*k, *n, aad, pt),
            })
        })
        .collect();

    let payloads: Vec<Json> = [
        (dk_a, Scope::Strict),
        (dk_a, Scope::Namespace),
        (dk_b, Scope::Cluster),
    ]
    .iter()
    .map(|&(k, scope)| {
        let b = Binding::new(scope, namespace, name);
        json!({
            "data_key_hex": hex::encode(k), "scope": scope.as_str(),
            "namespace": namespace, "name": name,
            "payload_hex": hex::encode(vectors::envelope_payload(k, &b)),
        })
    })
    .collect();

    // The document: envelope A (kat + recovery) holds password and username; envelope B
    // (kat only) holds api-token and an empty value, as after a merge with fewer recipients.
    type EnvelopeInput<'a> = ([u8; 32], Vec<Recipient>, Vec<(&'a str, &'a [u8], [u8; 12])>);
    let envelope_inputs: [EnvelopeInput; 2] = [
        (
            dk_a,
            vec![kat.clone(), recovery.clone()],
            vec![
                ("password", b"hunter2", nonce_of(0x10)),
                ("username", b"admin", nonce_of(0x11)),
            ],
        ),
        (
            dk_b,
            vec![kat.clone()],
            vec![
                ("api-token", b"tok-3f9a0c", nonce_of(0x20)),
                ("empty", b"", nonce_of(0x21)),
            ],
        ),
    ];
    let mut wire_envelopes = Vec::new();
    let mut encrypted = serde_json::Map::new();
    let mut plaintext = serde_json::Map::new();
    let mut env_json = Vec::new();
    for (dk, recipients, vals) in &envelope_inputs {
        let id = vectors::envelope_id(*dk);
        let wrapped = vectors::wrap_envelope(*dk, &strict, recipients).expect("wrap");
        let mut ids: Vec<String> = recipients.iter().map(|r| r.key_id().to_string()).collect();
        ids.sort();
        wire_envelopes
            .push(json!({"id": id, "recipients": ids, "wrappedKey": B64.encode(&wrapped)}));
        let mut vjson = serde_json::Map::new();
        for (key, pt, nonce) in vals {
            let line = format!(
                "{id}:{}",
                vectors::seal_value(*dk, *nonce, &vectors::value_aad(&strict, key), pt)
            );
            encrypted.insert((*key).to_owned(), json!(line));
            plaintext.insert((*key).to_owned(), json!(hex::encode(pt)));
            vjson.insert(
                (*key).to_owned(),
                json!({"nonce_hex": hex::encode(nonce), "line": line}),
            );
        }
        env_json.push(json!({
            "id": id, "recipients": ids, "data_key_hex": hex::encode(dk),
            "payload_hex": hex::encode(vectors::envelope_payload(*dk, &strict)),
            "values": vjson,
        }));
    }
    let wire = json!({
        "apiVersion": "sealsync.dev/v1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "scope": "strict",
            "template": {"type": "Opaque", "metadata": {"labels": {"app.kubernetes.io/name": "db"}}},
            "envelopes": wire_envelopes,
            "encryptedData": encrypted,
        }
    });
    let sealed = common::sealed_from_value(&serde_yaml::to_value(&wire).expect("value"))
        .expect("the generated document is valid");
    let yaml = sealed.to_yaml().expect("yaml");
    let header = "# Known-answer sealed document (crypto/tests/vectors.rs, vectors.json).\n\
                  # TEST ONLY: it opens with the public test identity kat-identity.txt.\n";
    let kat_id = kat.key_id().to_string();
    let recovery_id = recovery.key_id().to_string();
    let env_a = &wire_envelopes[0];
    let env_b = &wire_envelopes[1];
    let id_a = s(env_a, "id");
    let password_line = encrypted["password"].as_str().expect("line").to_owned();
    let password_line_tampered = {
        let (id, ct) = password_line.split_once(':').expect("line");
        let mut raw = B64.decode(ct).expect("b64");
        raw[12] ^= 0x01;
        format!("{id}:{}", B64.encode(raw))
    };
    let username_line = encrypted["username"].as_str().expect("line").to_owned();
    let all_keys = json!(["api-token", "empty", "password", "username"]);
    let mutations = json!([
        {"description": "moved to another namespace", "expect": "binding_mismatch", "field": "namespace",
         "replace": [["  namespace: app\n", "  namespace: other\n"]]},
        {"description": "renamed", "expect": "binding_mismatch", "field": "name",
         "replace": [["  name: db-credentials\n", "  name: db-copy\n"]]},
        {"description": "scope widened to cluster (CVE-2026-22728 style)", "expect": "binding_mismatch", "field": "scope",
         "replace": [["  scope: strict\n", "  scope: cluster\n"]]},
        {"description": "scope widened to namespace and renamed", "expect": "binding_mismatch", "field": "scope",
         "replace": [["  scope: strict\n", "  scope: namespace\n"], ["  name: db-credentials\n", "  name: db-copy\n"]]},
        {"description": "password and username values swapped", "expect": "binding_mismatch", "field": "key",
         "message_contains": "data key \"password\"",
         "replace": [[password_line, "@@SWAP@@"], [username_line, password_line], ["@@SWAP@@", username_line]]},
        {"description": "one ciphertext byte flipped", "expect": "tampered", "message_contains": "\"password\"",
         "replace": [[password_line, password_line_tampered]]},
        {"description": "envelope id changed everywhere", "expect": "tampered", "message_contains": "does not match its data key",
         "replace": [[id_a, "0123456789abcdef", "all"]]},
        {"description": "envelope A given envelope B's wrapped key", "expect": "tampered",
         "replace": [[s(env_a, "wrappedKey"), s(env_b, "wrappedKey")]]},
        {"description": "unsupported version", "expect": "unsupported_version",
         "replace": [["apiVersion: sealsync.dev/v1\n", "apiVersion: sealsync.dev/v2\n"]]},
        {"description": "value line without an envelope id", "expect": "malformed", "message_contains": "spec.encryptedData.username",
         "replace": [[format!("username: {username_line}"), format!("username: {}", username_line.split_once(':').expect("line").1)]]},
        {"description": "listed key id removed (key ids are not authenticated)", "expect": "ok", "keys": all_keys,
         "replace": [[format!("  - {recovery_id}\n"), String::new()]]},
        {"description": "template label changed (the template is not authenticated)", "expect": "ok", "keys": all_keys,
         "replace": [["app.kubernetes.io/name: db\n", "app.kubernetes.io/name: other\n"]]},
        {"description": "a value removed (removal needs no key)", "expect": "ok", "keys": ["api-token", "empty", "password"],
         "replace": [[format!("    username: {username_line}\n"), String::new()]]},
    ]);
    let mut doc_key_ids = vec![kat_id.clone(), recovery_id.clone()];
    doc_key_ids.sort();
    // Opening stops at the first envelope no identity opens, and lists its key ids.
    let document = json!({
        "file": DOC_FILE, "identity_file": IDENTITY_FILE,
        "name": name, "namespace": namespace, "scope": "strict",
        "key_ids": doc_key_ids,
        "opened_by": [kat_id],
        "no_matching_identity_key_ids": env_a["recipients"],
        "plaintext_hex": plaintext,
        "envelopes": env_json,
        "mutations": mutations,
    });
    let out = json!({
        "comment": [
            "Self-generated known-answer vectors of the sealsync v1 format (docs/format.md).",
            "Checked by crypto/tests/vectors.rs. Regenerate only after a deliberate format change:",
            "SEALSYNC_REGENERATE_VECTORS=1 cargo test -p sealsync-crypto --test vectors -- --ignored regenerate",
            "All *_hex fields are lowercase hex; 'sealed' and value lines use standard padded base64."
        ],
        "version_tag": VERSION_TAG,
        "bindings": bindings,
        "envelope_ids": envelope_ids,
        "key_ids": key_ids,
        "values": values,
        "envelope_payloads": payloads,
        "document": document,
    });
    let dir = data_dir();
    std::fs::write(dir.join(DOC_FILE), format!("{header}{yaml}")).expect("write document");
    let mut text = serde_json::to_string_pretty(&out).expect("json");
    text.push('\n');
    std::fs::write(dir.join("vectors.json"), text).expect("write vectors");
}
