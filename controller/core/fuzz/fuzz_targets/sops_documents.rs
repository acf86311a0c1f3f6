//! Fuzzes SOPS documents, written by whoever can push to a repository the controller syncs
//! (the cluster's age recipient is public, so anyone can make a file it opens): the bounded
//! reader, then `sops::check_document` and `sops::open_file` with the identity of the test
//! vectors, then `open_document` of each document as a rendered copy of the file.
//! Property: no panic, and every answer is a value or an error.
//!
//! Seeds: `controller/core/testdata/sops/*.sops.*`.
//! Run: `cargo fuzz run sops_documents ../testdata/sops` from `controller/core/fuzz/`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sealsync_core::manifest::{read_documents, Limits};
use sealsync_core::sops::{self, Provenance};
use sealsync_crypto::Identity;

fn identities() -> &'static [Identity] {
    static IDS: OnceLock<Vec<Identity>> = OnceLock::new();
    IDS.get_or_init(|| {
        sealsync_crypto::parse_identity_file(include_str!("../../testdata/sops/identity.txt"))
            .expect("the test identity")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(documents) = read_documents(text, Limits::small(64 * 1024, 16)) else {
        return;
    };
    let located: Vec<(&serde_yaml::Value, &str)> = documents
        .iter()
        .filter(|d| sops::is_sops_document(&d.value))
        .map(|d| (&d.value, "fuzz"))
        .collect();
    for (document, location) in &located {
        let _ = sops::check_document(document, location);
    }
    let _ = sops::open_file(&located, identities());
    if let Some(mac) = located.first().and_then(|(d, _)| d["sops"]["mac"].as_str()) {
        if let Ok(Some(verified)) = sops::verify_file(&located, mac, identities()) {
            for (document, location) in &located {
                let _ = sops::open_document(
                    document,
                    &[],
                    location,
                    Provenance::RenderedFrom(&verified),
                );
            }
        }
    }
});
