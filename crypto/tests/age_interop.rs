//! Interoperability of the wrapping layer with the reference age implementation: Debian's Go
//! `age` CLI (`/usr/bin/age`, `age-keygen`), installed by `scripts/ensure-test-tools.sh`.
//!
//! - We wrap, Go `age -d` unwraps: the payload of our envelope is exactly `data key ‖ encoded
//!   binding`, and that data key seals the document's value lines.
//! - Go `age -r` wraps, we open: a document built around an envelope that Go age encrypted
//!   opens with our parser of the same `age-keygen` identity file.
//!
//! Only identity files go to disk (test identities in a temporary directory). Payloads reach
//! `age` on stdin and come back on stdout; no secret value is ever written to a file.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::secret;
use sealsync_crypto::{
    parse_identity_file, vectors, Binding, BindingField, Error, Identity, OpenOptions, Recipient,
    Scope, SealedSecret,
};
use serde_yaml::Value;

const AGE: &str = "/usr/bin/age";
const AGE_KEYGEN: &str = "/usr/bin/age-keygen";

fn tool(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: these interoperability tests need Debian's Go age CLI. \
         Run scripts/ensure-test-tools.sh (it installs the `age` package), then re-run the tests."
    );
    p
}

/// Runs a command with `input` on stdin and returns its stdout, failing on a non-zero exit.
fn run(mut cmd: Command, input: &[u8]) -> Vec<u8> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("waits");
    writer.join().expect("writer").expect("writes stdin");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// An identity file made by Go `age-keygen`, and what `age-keygen -y` says its recipient is.
struct GoKey {
    _dir: tempfile::TempDir,
    file: PathBuf,
    recipient: String,
}

fn go_keygen() -> GoKey {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("identity.txt");
    let status = Command::new(tool(AGE_KEYGEN))
        .arg("-o")
        .arg(&file)
        .stderr(Stdio::null())
        .status()
        .expect("age-keygen runs");
    assert!(status.success());
    let mut y = Command::new(tool(AGE_KEYGEN));
    y.arg("-y").arg(&file);
    let recipient = String::from_utf8(run(y, b""))
        .expect("utf8")
        .trim()
        .to_owned();
    GoKey {
        _dir: dir,
        file,
        recipient,
    }
}

fn our_identities(file: &Path) -> Vec<Identity> {
    parse_identity_file(&std::fs::read_to_string(file).expect("reads")).expect("parses")
}

fn go_decrypt(identity_file: &Path, age_file: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(tool(AGE));
    cmd.arg("-d").arg("-i").arg(identity_file);
    run(cmd, age_file)
}

fn go_encrypt(recipients: &[&str], payload: &[u8]) -> Vec<u8> {
    let mut cmd = Command::new(tool(AGE));
    for r in recipients {
        cmd.arg("-r").arg(r);
    }
    run(cmd, payload)
}

fn reparse(yaml: &str) -> Result<SealedSecret, Error> {
    let value: Value = serde_yaml::from_str(yaml).expect("yaml");
    common::sealed_from_value(&value)
}

#[test]
fn go_age_sees_the_same_recipient_and_key_id() {
    let go = go_keygen();
    let ours = our_identities(&go.file);
    assert_eq!(ours.len(), 1);
    assert_eq!(ours[0].recipient().as_str(), go.recipient);
    let parsed: Recipient = go.recipient.parse().expect("recipient");
    assert_eq!(parsed.key_id(), ours[0].key_id());
}

/// (a) We wrap; Go age unwraps with the `age-keygen` identity file.
#[test]
fn go_age_unwraps_our_envelopes() {
    let go = go_keygen();
    let other = Identity::generate();
    let go_recipient: Recipient = go.recipient.parse().expect("recipient");
    let values: &[(&str, &[u8])] = &[("password", b"interop-value"), ("empty", b"")];
    for scope in [Scope::Strict, Scope::Namespace, Scope::Cluster] {
        let s = secret(Some("app"), "db", values);
        // Two recipients: Go age must find its own stanza among ours.
        let sealed = SealedSecret::seal(&s, scope, &[other.recipient(), go_recipient.clone()])
            .expect("seal");
        let env = &sealed.envelopes()[0];
        let payload = go_decrypt(&go.file, &B64.decode(&env.wrapped_key).expect("b64"));

        // The payload is exactly data key ‖ encoded binding …
        let data_key: [u8; 32] = payload[..32].try_into().expect("32 bytes");
        let binding = Binding::new(scope, "app", "db");
        assert_eq!(payload, vectors::envelope_payload(data_key, &binding));
        assert_eq!(payload[32..], vectors::binding_encoding(&binding));
        // … its id is derived from that key …
        assert_eq!(vectors::envelope_id(data_key), env.id);
        // … and that key, with the value's nonce, reproduces every value line exactly.
        let doc = common::sealed_to_value(&sealed);
        for (key, plaintext) in values {
            let line = doc["spec"]["encryptedData"][*key].as_str().expect("line");
            let (id, encoded) = line.split_once(':').expect("id:value");
            assert_eq!(id, env.id);
            let nonce: [u8; 12] = B64.decode(encoded).expect("b64")[..12]
                .try_into()
                .expect("nonce");
            let aad = vectors::value_aad(&binding, key);
            assert_eq!(
                vectors::seal_value(data_key, nonce, &aad, plaintext),
                encoded
            );
        }

        // Our own unwrap of the same envelope agrees with Go age.
        let (ours, opened_by) = vectors::unwrap_envelope(
            &env.id,
            &B64.decode(&env.wrapped_key).expect("b64"),
            &our_identities(&go.file),
        )
        .expect("we unwrap too");
        assert_eq!(ours.as_slice(), payload.as_slice());
        assert_eq!(opened_by, *go_recipient.key_id());
    }
}

/// A document around an envelope that Go age wrapped, with values we seal under its key.
fn document_with_go_envelope(
    go_recipients: &[&str],
    data_key: [u8; 32],
    scope: Scope,
    values: &[(&str, &[u8])],
) -> String {
    let binding = Binding::new(scope, "app", "db");
    let wrapped = go_encrypt(
        go_recipients,
        &vectors::envelope_payload(data_key, &binding),
    );
    let id = vectors::envelope_id(data_key);
    let mut key_ids: Vec<String> = go_recipients
        .iter()
        .map(|r| r.parse::<Recipient>().expect("r").key_id().to_string())
        .collect();
    key_ids.sort();
    let mut encrypted = serde_yaml::Mapping::new();
    for (i, (key, plaintext)) in values.iter().enumerate() {
        let mut nonce = [0x5a; 12];
        nonce[11] = u8::try_from(i).expect("few values");
        let sealed = vectors::seal_value(
            data_key,
            nonce,
            &vectors::value_aad(&binding, key),
            plaintext,
        );
        encrypted.insert((*key).into(), format!("{id}:{sealed}").into());
    }
    let doc = serde_yaml::to_value(serde_json::json!({
        "apiVersion": "sealsync.dev/v1",
        "kind": "SealedSecret",
        "metadata": {"name": "db", "namespace": "app"},
        "spec": {
            "scope": scope.as_str(),
            "envelopes": [{"id": id, "recipients": key_ids, "wrappedKey": B64.encode(&wrapped)}],
            "encryptedData": {},
        }
    }))
    .expect("value");
    let mut doc = doc;
    doc["spec"]["encryptedData"] = Value::Mapping(encrypted);
    serde_yaml::to_string(&doc).expect("yaml")
}

/// (b) Go age wraps; we open with our parser of the same `age-keygen` identity file.
#[test]
fn we_open_envelopes_go_age_wrapped() {
    let go = go_keygen();
    let second = go_keygen();
    let identities = our_identities(&go.file);
    let values: &[(&str, &[u8])] = &[("password", b"from-go-age"), ("blob", &[0, 255, 10])];
    let data_key: [u8; 32] = std::array::from_fn(|i| 0x42 ^ i as u8);
    for scope in [Scope::Strict, Scope::Namespace, Scope::Cluster] {
        let yaml =
            document_with_go_envelope(&[&second.recipient, &go.recipient], data_key, scope, values);
        let sealed = reparse(&yaml).expect("a valid document");
        let opened = sealed
            .open(&identities, &OpenOptions::default())
            .expect("opens what Go age wrapped");
        for (key, plaintext) in values {
            assert_eq!(opened.secret.data[*key].as_slice(), *plaintext);
        }
        assert_eq!(
            opened.opened_by.into_iter().collect::<Vec<_>>(),
            vec![identities[0].key_id().clone()]
        );
        // The second recipient opens it too.
        sealed
            .open(&our_identities(&second.file), &OpenOptions::default())
            .expect("second recipient opens");
    }

    // The binding inside a Go-wrapped envelope is enforced like ours.
    let yaml = document_with_go_envelope(&[&go.recipient], data_key, Scope::Strict, values);
    let moved = reparse(&yaml.replace("namespace: app", "namespace: other")).expect("valid");
    match moved.open(&identities, &OpenOptions::default()) {
        Err(Error::BindingMismatch { field, .. }) => assert_eq!(field, BindingField::Namespace),
        other => panic!("expected a namespace mismatch, got {other:?}"),
    }
    // A stranger gets the listed key ids.
    match reparse(&yaml)
        .expect("valid")
        .open(&[Identity::generate()], &OpenOptions::default())
    {
        Err(Error::NoMatchingIdentity { key_ids, .. }) => {
            assert_eq!(key_ids, vec![identities[0].key_id().clone()])
        }
        other => panic!("expected NoMatchingIdentity, got {other:?}"),
    }
}

/// Go age wraps a payload that is not `data key ‖ binding`: we refuse it, with no panic.
#[test]
fn foreign_payloads_from_go_age_are_refused() {
    let go = go_keygen();
    let identities = our_identities(&go.file);
    let data_key = [7u8; 32];
    let id = vectors::envelope_id(data_key);
    let binding = Binding::new(Scope::Strict, "app", "db");
    let mut too_long = vectors::envelope_payload(data_key, &binding);
    too_long.push(0);
    let max = usize::try_from(vectors::MAX_PAYLOAD_BYTES).expect("small");
    let oversized = vec![0u8; max + 1];
    // A valid payload that fills the limit exactly, then one byte more: it must not be
    // accepted by reading only the first MAX_PAYLOAD_BYTES.
    let long_ns = "n".repeat(max - 32 - (4 + 11) - (4 + 6) - 4 - (4 + 2));
    let full = vectors::envelope_payload(data_key, &Binding::new(Scope::Strict, &long_ns, "db"));
    assert_eq!(full.len(), max);
    let full_id = vectors::envelope_id(data_key);
    let wrapped_full = go_encrypt(&[&go.recipient], &full);
    let (payload, _) =
        vectors::unwrap_envelope(&full_id, &wrapped_full, &identities).expect("at the limit");
    assert_eq!(payload.as_slice(), full.as_slice());
    let mut over_by_one = full.clone();
    over_by_one.push(b'x');
    for payload in [
        b"short".to_vec(),
        data_key.to_vec(),
        too_long,
        oversized,
        over_by_one,
        vectors::envelope_payload([8u8; 32], &binding),
    ] {
        let wrapped = go_encrypt(&[&go.recipient], &payload);
        let err = vectors::unwrap_envelope(&id, &wrapped, &identities).expect_err("refused");
        assert!(
            matches!(err.metric_label(), "tampered" | "malformed"),
            "{err}"
        );
    }
}

/// A key backup is an armored age file that Go `age -d -i recovery.key` opens, and what it
/// gives is an identity file both implementations read; Go `age -a` re-encrypting that text
/// gives a backup we open.
#[test]
fn go_age_opens_a_key_backup_and_we_open_its_armored_output() {
    let recovery = go_keygen();
    let recipient: Recipient = recovery.recipient.parse().expect("recipient");
    let keys: Vec<sealsync_crypto::BackupKey> = ["sealsync-key-1", "sealsync-key-x7k2p"]
        .iter()
        .map(|name| sealsync_crypto::BackupKey {
            name: (*name).to_owned(),
            created: "2026-12-01T19:00:00Z".to_owned(),
            identity: Identity::generate(),
        })
        .collect();
    let armored = sealsync_crypto::seal_backup(&keys, "namespace sealsync-system", &[recipient])
        .expect("seal");
    let plaintext =
        String::from_utf8(go_decrypt(&recovery.file, armored.as_bytes())).expect("utf8");
    assert!(
        plaintext.starts_with(sealsync_crypto::BACKUP_HEADER),
        "header"
    );
    let ours = parse_identity_file(&plaintext).expect("an identity file");
    let ids: Vec<_> = ours.iter().map(|i| i.key_id().clone()).collect();
    let want: Vec<_> = keys.iter().map(|k| k.identity.key_id().clone()).collect();
    assert_eq!(ids, want);

    let mut cmd = Command::new(tool(AGE));
    cmd.arg("-a").arg("-r").arg(&recovery.recipient);
    let from_go = run(cmd, plaintext.as_bytes());
    let reopened =
        sealsync_crypto::open_backup(&from_go, &our_identities(&recovery.file)).expect("open");
    assert_eq!(reopened.len(), 2);
    assert_eq!(reopened[1].name, "sealsync-key-x7k2p");
    assert_eq!(reopened[1].created, "2026-12-01T19:00:00Z");
}
