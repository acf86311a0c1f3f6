//! Property tests of sealed documents as the CLI and the controller read them: round trips
//! through the shared manifest reader, merge and rewrap line stability, and robustness of the
//! read and open path against arbitrary and mutated input.
//!
//! Case counts are modest because every case performs age X25519 operations; the suite stays
//! fast in debug builds (dependencies are optimised by the workspace dev profile).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use proptest::prelude::*;
use sealsync_core::manifest::{
    read_documents, sealed_from_manifest, sealed_to_manifest, Limits, ManifestError,
};
use sealsync_crypto::{
    Error, Identity, KeyId, OpenOptions, PlainSecret, Recipient, Scope, SealedSecret, SecretData,
};
use zeroize::Zeroizing;

/// Four identities, made once: recipients are drawn from the first three, the fourth is the
/// target of re-wraps.
fn pool() -> &'static [Identity] {
    static POOL: OnceLock<Vec<Identity>> = OnceLock::new();
    POOL.get_or_init(|| (0..4).map(|_| Identity::generate()).collect())
}

fn recipients_of(ids: &[Identity]) -> Vec<Recipient> {
    ids.iter().map(Identity::recipient).collect()
}

fn key_ids_of(ids: &[Identity]) -> BTreeSet<KeyId> {
    ids.iter().map(|i| i.key_id().clone()).collect()
}

// ---------------------------------------------------------------------------------------------
// Strategies.

/// Strings that YAML 1.1 or 1.2 would read as something other than a string if unquoted.
const YAML_TRAPS: &[&str] = &[
    "true", "no", "y", "null", "1", "0123", "1e3", "0x1f", "0o17", "1-2", "inf", "nan",
];

/// A lowercase RFC 1123 subdomain: a valid Secret name.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?){0,2}",
        1 => prop::sample::select(YAML_TRAPS).prop_map(str::to_owned),
    ]
}

/// A lowercase RFC 1123 label: a valid namespace.
fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?",
        1 => prop::sample::select(YAML_TRAPS).prop_map(str::to_owned),
    ]
}

/// A data key name: `[-._a-zA-Z0-9]+`, not `.` or `..`.
fn data_key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[-._a-zA-Z0-9]{1,24}",
        1 => prop::sample::select(&[
            "-", "--", ".inf", ".NaN", "_", "1_000", "0.5", "TRUE", "Null", "tls.crt", "a..b",
        ][..])
        .prop_map(str::to_owned),
    ]
    .prop_filter("not . or ..", |k| k != "." && k != "..")
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        6 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn values(min: usize) -> impl Strategy<Value = BTreeMap<String, Vec<u8>>> {
    prop::collection::btree_map(data_key(), value(), min..6)
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Strict),
        Just(Scope::Namespace),
        Just(Scope::Cluster)
    ]
}

fn to_data(values: &BTreeMap<String, Vec<u8>>) -> SecretData {
    values
        .iter()
        .map(|(k, v)| (k.clone(), Zeroizing::new(v.clone())))
        .collect()
}

fn plain(data: &SecretData) -> BTreeMap<String, Vec<u8>> {
    data.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect()
}

fn seal(
    ns: &str,
    name: &str,
    values: &BTreeMap<String, Vec<u8>>,
    scope: Scope,
    recipients: &[Recipient],
) -> SealedSecret {
    let s = PlainSecret {
        name: name.to_owned(),
        namespace: Some(ns.to_owned()),
        type_: Some("Opaque".to_owned()),
        data: to_data(values),
        ..PlainSecret::default()
    };
    SealedSecret::seal(&s, scope, recipients).expect("seals")
}

/// Parses a manifest stream that must hold exactly one sealed document.
fn read_back(text: &str) -> SealedSecret {
    let docs = read_documents(text, Limits::default()).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    assert_eq!(docs.len(), 1);
    sealed_from_manifest(&docs[0].value).unwrap_or_else(|e| panic!("{e:?}\n{text}"))
}

/// `key → value line` as the document holds them.
fn value_lines(sealed: &SealedSecret) -> BTreeMap<String, String> {
    let value = sealed_to_manifest(sealed);
    sealed
        .data_keys()
        .map(|k| {
            let line = value["spec"]["encryptedData"][k].as_str().expect("line");
            (k.to_owned(), line.to_owned())
        })
        .collect()
}

/// The one text line of `yaml` that holds `value_line`.
fn text_line_of<'a>(yaml: &'a str, value_line: &str) -> &'a str {
    let mut found = yaml.lines().filter(|l| l.contains(value_line));
    let line = found.next().expect("the value is on a line");
    assert!(found.next().is_none(), "the value appears once");
    line
}

fn open(sealed: &SealedSecret, identity: &Identity) -> Result<sealsync_crypto::Opened, Error> {
    sealed.open(std::slice::from_ref(identity), &OpenOptions::default())
}

// ---------------------------------------------------------------------------------------------
// Round trips.

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// seal → YAML or JSON → read back → open gives the same values, for any recipient.
    #[test]
    fn seal_serialize_read_open_round_trip(
        name in name(),
        ns in namespace(),
        values in values(1),
        scope in scope(),
        n_recipients in 1usize..=3,
        opener in 0usize..3,
        json in any::<bool>(),
    ) {
        let ids = &pool()[..n_recipients];
        let sealed = seal(&ns, &name, &values, scope, &recipients_of(ids));
        let text = if json { sealed.to_json() } else { sealed.to_yaml() }.expect("serializes");
        let back = read_back(&text);
        prop_assert_eq!(&back, &sealed);
        prop_assert_eq!(back.key_ids(), key_ids_of(ids));
        if !json {
            // One line per value.
            for line in value_lines(&back).values() {
                text_line_of(&text, line);
            }
        }
        let identity = &pool()[opener];
        match open(&back, identity) {
            Ok(opened) => {
                prop_assert!(opener < n_recipients);
                prop_assert_eq!(plain(&opened.secret.data), values);
                prop_assert_eq!(opened.opened_by, key_ids_of(std::slice::from_ref(identity)));
                prop_assert_eq!(opened.secret.name, name);
                prop_assert_eq!(opened.secret.namespace, Some(ns));
            }
            Err(Error::NoMatchingIdentity { key_ids, .. }) => {
                prop_assert!(opener >= n_recipients);
                prop_assert_eq!(key_ids.into_iter().collect::<BTreeSet<_>>(), key_ids_of(ids));
            }
            Err(other) => prop_assert!(false, "unexpected error: {}", other),
        }
    }

    /// Merging a random subset (plus new keys) needs no identity, and every other value
    /// keeps its line byte for byte.
    #[test]
    fn merge_keeps_other_lines_byte_identical(
        ns in namespace(),
        initial in values(1),
        replace in prop::collection::vec(any::<bool>(), 6),
        new_values in prop::collection::vec(value(), 6),
        added in values(0),
        scope in scope(),
    ) {
        let recipients = recipients_of(&pool()[..1]);
        let mut sealed = seal(&ns, "merge-target", &initial, scope, &recipients);
        let before_yaml = sealed.to_yaml().expect("yaml");
        let before = value_lines(&sealed);

        let mut update: BTreeMap<String, Vec<u8>> = initial
            .keys()
            .zip(replace.iter().zip(new_values))
            .filter(|(_, (r, _))| **r)
            .map(|(k, (_, v))| (k.clone(), v))
            .collect();
        update.extend(added);
        sealed.merge(&to_data(&update), &recipients).expect("merges with public keys only");
        let after_yaml = sealed.to_yaml().expect("yaml");
        let after = value_lines(&sealed);

        for (key, line) in &before {
            if update.contains_key(key) {
                prop_assert_ne!(Some(line), after.get(key));
            } else {
                let text_line = text_line_of(&before_yaml, line);
                prop_assert!(
                    after_yaml.lines().any(|l| l == text_line),
                    "line of {:?} changed", key
                );
            }
        }
        prop_assert!(sealed.envelopes().len() <= 2);
        if update.is_empty() {
            prop_assert_eq!(&before_yaml, &after_yaml);
        }

        let mut expected = initial.clone();
        expected.extend(update);
        let opened = open(&read_back(&after_yaml), &pool()[0]).expect("opens");
        prop_assert_eq!(plain(&opened.secret.data), expected);
    }

    /// Re-wrapping changes envelopes only; re-keying changes every value line.
    #[test]
    fn rewrap_keeps_value_lines_and_rekey_replaces_them(
        ns in namespace(),
        values in values(1),
        scope in scope(),
        n_old in 1usize..=3,
        keep_first in any::<bool>(),
    ) {
        let old = &pool()[..n_old];
        let mut sealed = seal(&ns, "rotate", &values, scope, &recipients_of(old));
        let before = value_lines(&sealed);
        let before_ids: Vec<String> = sealed.envelopes().iter().map(|e| e.id.clone()).collect();
        let before_yaml = sealed.to_yaml().expect("yaml");

        // The new recipients: the spare key, and maybe the first old one.
        let mut new_ids: Vec<&Identity> = vec![&pool()[3]];
        if keep_first {
            new_ids.push(&pool()[0]);
        }
        let new_recipients: Vec<Recipient> = new_ids.iter().map(|i| i.recipient()).collect();
        let opener = &old[n_old - 1];
        sealed
            .rewrap(std::slice::from_ref(opener), &new_recipients)
            .expect("rewraps");
        let after_yaml = sealed.to_yaml().expect("yaml");
        prop_assert_eq!(&value_lines(&sealed), &before);
        for line in before.values() {
            let text_line = text_line_of(&before_yaml, line);
            prop_assert!(after_yaml.lines().any(|l| l == text_line));
        }
        let after_ids: Vec<String> = sealed.envelopes().iter().map(|e| e.id.clone()).collect();
        prop_assert_eq!(&after_ids, &before_ids);
        let want: BTreeSet<KeyId> = new_ids.iter().map(|i| i.key_id().clone()).collect();
        prop_assert_eq!(sealed.key_ids(), want);

        let back = read_back(&after_yaml);
        prop_assert_eq!(plain(&open(&back, &pool()[3]).expect("new key opens").secret.data), values.clone());
        for id in old.iter().filter(|i| !keep_first || i.key_id() != pool()[0].key_id()) {
            let refused = matches!(open(&back, id), Err(Error::NoMatchingIdentity { .. }));
            prop_assert!(refused, "an old key still opens after the rewrap");
        }

        sealed.rekey(std::slice::from_ref(&pool()[3]), &new_recipients).expect("rekeys");
        let rekeyed = value_lines(&sealed);
        for (key, line) in &before {
            prop_assert_ne!(Some(line), rekeyed.get(key));
        }
        prop_assert!(sealed.envelopes().iter().all(|e| !before_ids.contains(&e.id)));
        let reopened = open(&read_back(&sealed.to_yaml().expect("yaml")), &pool()[3]).expect("opens");
        prop_assert_eq!(plain(&reopened.secret.data), values);
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: nothing panics, nothing leaks, and nothing but the original values opens.

const CANARY: &[u8] = b"canary-5d1e-never-in-an-error";

/// A valid document with two envelopes (as after a merge), sealed to `pool()[0]`.
fn valid_document() -> &'static (String, BTreeMap<String, Vec<u8>>) {
    static DOC: OnceLock<(String, BTreeMap<String, Vec<u8>>)> = OnceLock::new();
    DOC.get_or_init(|| {
        let recipients = recipients_of(&pool()[..2]);
        let first: BTreeMap<String, Vec<u8>> = [
            ("password".to_owned(), CANARY.to_vec()),
            ("user".to_owned(), b"admin".to_vec()),
        ]
        .into();
        let mut sealed = seal("app", "db", &first, Scope::Strict, &recipients);
        let second: BTreeMap<String, Vec<u8>> = [("token".to_owned(), b"t0k".to_vec())].into();
        sealed
            .merge(&to_data(&second), &recipients[..1])
            .expect("merge");
        let mut all = first;
        all.extend(second);
        (sealed.to_yaml().expect("yaml"), all)
    })
}

/// An error of the read path: displayable, with a metric label.
trait MetricError: std::fmt::Display + std::fmt::Debug {
    fn label(&self) -> &'static str;
}

impl MetricError for Error {
    fn label(&self) -> &'static str {
        self.metric_label()
    }
}

impl MetricError for ManifestError {
    fn label(&self) -> &'static str {
        self.metric_label()
    }
}

/// The whole read path. Returns what opened; checks that errors never show a value.
fn read_path(text: &str) -> Vec<BTreeMap<String, Vec<u8>>> {
    let limits = Limits::small(1 << 20, 8);
    let check_error = |e: &dyn MetricError| {
        let msg = format!("{e} {e:?}");
        assert!(
            !msg.contains(std::str::from_utf8(CANARY).expect("ascii")),
            "{msg}"
        );
        let _ = e.label();
    };
    let documents = match read_documents(text, limits) {
        Ok(d) => d,
        Err(e) => {
            check_error(&e);
            return Vec::new();
        }
    };
    let mut opened = Vec::new();
    for doc in &documents {
        let sealed = match sealed_from_manifest(&doc.value) {
            Ok(s) => s,
            Err(e) => {
                check_error(&e);
                continue;
            }
        };
        sealed
            .check_structure()
            .expect("reading checked the structure");
        let _ = sealed.key_ids();
        let options = OpenOptions {
            default_namespace: Some("default"),
        };
        match sealed.open(&pool()[..1], &options) {
            Ok(o) => opened.push(plain(&o.secret.data)),
            Err(e) => check_error(&e),
        }
        sealed.to_yaml().expect("a parsed document serializes");
    }
    opened
}

/// Bytes that matter to YAML, base64 and the value-line syntax.
const INTERESTING: &[u8] = b":- \n#\"'{}[]!&*|>%@`,?=+/0aAz~.\t";

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![any::<u8>(), prop::sample::select(INTERESTING)];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn apply(text: &str, mutations: &[Mutation]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for m in mutations {
        let len = bytes.len().max(1);
        match *m {
            Mutation::Flip(i, bit) => {
                if !bytes.is_empty() {
                    bytes[i % len] ^= 1 << bit;
                }
            }
            Mutation::Set(i, b) => {
                if !bytes.is_empty() {
                    bytes[i % len] = b;
                }
            }
            Mutation::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Mutation::Delete(i, n) => {
                let start = i % len;
                let end = (start + n).min(bytes.len());
                bytes.drain(start.min(end)..end);
            }
            Mutation::DuplicateLine(i) | Mutation::SwapLines(i, _) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let mut lines: Vec<&str> = text.lines().collect();
                if lines.is_empty() {
                    continue;
                }
                let a = i % lines.len();
                if let Mutation::SwapLines(_, j) = *m {
                    let b = j % lines.len();
                    lines.swap(a, b);
                } else {
                    lines.insert(a, lines[a]);
                }
                bytes = (lines.join("\n") + "\n").into_bytes();
            }
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Arbitrary bytes never panic the read path.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        read_path(&String::from_utf8_lossy(&bytes));
    }

    /// Arbitrary text built from YAML-significant characters never panics either.
    #[test]
    fn random_yaml_like_text_never_panics(
        text in "(apiVersion: sealsync.dev/v1\nkind: SealedSecret\n)?[a-zA-Z0-9:{}\\[\\] \n\"'#,&*!|>-]{0,200}"
    ) {
        read_path(&text);
    }

    /// Mutations of a valid document (in YAML or JSON) never panic, never leak a value into
    /// an error, and whatever still opens is exactly what was sealed.
    #[test]
    fn mutated_documents_never_panic_and_open_only_originals(
        mutations in prop::collection::vec(mutation(), 1..6),
        json in any::<bool>(),
    ) {
        let (yaml, original) = valid_document();
        let text = if json {
            read_back(yaml).to_json().expect("json")
        } else {
            yaml.clone()
        };
        for opened in read_path(&apply(&text, &mutations)) {
            for (key, value) in &opened {
                prop_assert_eq!(Some(value), original.get(key), "{} opened to something else", key);
            }
        }
    }
}

#[test]
fn the_unmutated_document_opens() {
    let (yaml, original) = valid_document();
    assert_eq!(read_path(yaml), vec![original.clone()]);
}
