//! Fuzzes what commit and tag verification reads from Git and from a keys Secret, all of it
//! written by whoever can push or edit that Secret: `gitsig::split_commit` and `split_tag` on
//! raw objects, `TrustedKeys::from_entries` on `*.sshpub` and `*.asc` entries, and
//! `sigverify::verify` of whatever signature the object carries against real keys.
//! Property: no panic, and every answer is a value or an error.
//!
//! The first byte picks the intake; the rest is the input.
//! Run: `cargo fuzz run git_signatures` from `controller/core/`.
#![no_main]

use std::sync::OnceLock;
use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use sealsync_core::gitsig;
use sealsync_core::sigverify::{self, TrustedKeys};

fn trusted() -> &'static TrustedKeys {
    static KEYS: OnceLock<TrustedKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        TrustedKeys::from_entries([
            (
                "alice.sshpub",
                include_bytes!("../../testdata/sigverify/ssh-alice.pub").as_slice(),
            ),
            (
                "bob.asc",
                include_bytes!("../../testdata/sigverify/pgp-bob.asc").as_slice(),
            ),
            (
                "carol.asc",
                include_bytes!("../../testdata/sigverify/pgp-carol.asc").as_slice(),
            ),
        ])
        .expect("the test keys")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, input)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => {
            let signed = gitsig::split_commit(input);
            let _ = sigverify::verify(signed.as_ref(), trusted(), SystemTime::now());
        }
        1 => {
            let signed = gitsig::split_tag(input);
            let _ = sigverify::verify(signed.as_ref(), trusted(), SystemTime::now());
        }
        2 => {
            let _ = TrustedKeys::from_entries([("fuzz.asc", input)]).map_err(|e| e.to_string());
        }
        _ => {
            let _ = TrustedKeys::from_entries([("fuzz.sshpub", input)]).map_err(|e| e.to_string());
        }
    }
});
