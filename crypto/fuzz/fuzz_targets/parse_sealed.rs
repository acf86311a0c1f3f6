//! Fuzzes the typed sealed-document path: serde reads the wire form (YAML or JSON) →
//! `SealedSecret::try_from` → `check_structure` → `open`, with a fixed test identity. The
//! bounded manifest reader in front of it is fuzzed in `controller/core/fuzz`.
//!
//! Run: `cargo fuzz run parse_sealed crypto/fuzz/seeds` from `crypto/` (nightly, or stable with
//! `RUSTC_BOOTSTRAP=1`). CI only builds it: `cargo build --manifest-path crypto/fuzz/Cargo.toml --bins`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealsync_crypto::{parse_identity_file, Identity, OpenOptions, SealedSecret};

/// The public TEST ONLY identity of the known-answer vectors, so that seeds derived from
/// `crypto/tests/data/kat-sealed.yaml` reach the envelope, binding and AEAD checks.
const KAT_IDENTITY: &str = include_str!("../../tests/data/kat-identity.txt");

fn identities() -> &'static [Identity] {
    static IDS: OnceLock<Vec<Identity>> = OnceLock::new();
    IDS.get_or_init(|| parse_identity_file(KAT_IDENTITY).expect("the KAT identity parses"))
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 256 * 1024 {
        return;
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(sealed) = serde_yaml::from_str::<SealedSecret>(text) {
        // Reading already checked the structure; checking again must agree.
        assert!(sealed.check_structure().is_ok());
        let options = OpenOptions {
            default_namespace: Some("fuzz"),
        };
        if let Ok(opened) = sealed.open(identities(), &options) {
            // A document that opens reserializes to one that opens to the same values.
            let yaml = sealed.to_yaml().expect("serializes");
            let again: SealedSecret = serde_yaml::from_str(&yaml).expect("still valid");
            let reopened = again.open(identities(), &options).expect("still opens");
            assert_eq!(opened.secret.data, reopened.secret.data);
        }
    }
});
