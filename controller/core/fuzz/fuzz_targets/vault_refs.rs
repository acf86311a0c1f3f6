//! Fuzzes the Vault reference parser that Secret values go through. Properties: no panic;
//! at most `MAX_REFS_PER_VALUE` references; the literal pieces and the references together
//! account for the whole input; an error quotes at most 200 bytes of the reference. The same
//! text as a Secret value (and in a ConfigMap) goes through the classification the controller
//! and `sealsync check` share: a value is either literal or holds references, never both
//! lists, and a reference outside a Secret is found exactly when the value parses to one.
//! Run: `cargo fuzz run vault_refs` from `controller/core/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealsync_core::vaultref::{
    parse, reference_outside_secret, secret_values, RefError, Segment, MAX_REFS_PER_VALUE,
};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse(text);
    let has_ref = parsed
        .as_ref()
        .is_ok_and(|s| s.iter().any(|s| matches!(s, Segment::Ref(_))));
    let secret = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
        "stringData": {"k": text},
    });
    match secret_values(&secret) {
        Ok(values) => {
            assert_eq!(values.references.len(), usize::from(has_ref));
            assert_eq!(values.literal.len(), usize::from(!has_ref));
        }
        Err(_) => assert!(parsed.is_err()),
    }
    let configmap = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
        "data": {"k": text},
    });
    assert_eq!(reference_outside_secret(&configmap).is_some(), has_ref);
    match parsed {
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
