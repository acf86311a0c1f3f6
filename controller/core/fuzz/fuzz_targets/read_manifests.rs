//! Fuzzes the manifest intake that the CLI and the controller share: `read_documents` (the
//! bounded YAML and JSON reader) → `secret_from_manifest` for Secrets and
//! `sealed_from_manifest` for SealedSecrets. Properties: no panic, every input is answered
//! within the limits, and no error message quotes a secret value.
//!
//! Seeds in `seeds-manifests/` include the hostile inputs of the hardening work (alias bombs,
//! deep nesting, duplicate keys, typos that put a value in a key).
//! Run: `cargo fuzz run read_manifests fuzz/seeds-manifests` from `controller/core/`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealsync_core::manifest::{read_documents, sealed_from_manifest, secret_from_manifest, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = Limits::small(256 * 1024, 64);
    let documents = match read_documents(text, limits) {
        Ok(documents) => documents,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    for document in &documents {
        if document.kind() == Some("SealedSecret") {
            if let Ok(sealed) = sealed_from_manifest(&document.value) {
                // Reading checked the structure; checking again must agree.
                assert!(sealed.check_structure().is_ok());
            }
            continue;
        }
        if document.kind() != Some("Secret") {
            continue;
        }
        match secret_from_manifest(&document.value) {
            Ok(secret) => {
                // Every value found by the exposure search is one of the Secret's own.
                let finder = secret.value_finder();
                for value in secret.data.values() {
                    if let Ok(text) = std::str::from_utf8(value) {
                        let _ = finder.find(text);
                    }
                }
            }
            Err(e) => {
                let message = e.to_string();
                // A stringData value that is a long, distinctive string never shows up.
                // (Only a value that occurs once in the document: the same text as a name is
                // a name, and names are printed.)
                let whole = serde_yaml::to_string(&document.value).unwrap_or_default();
                if let Some(map) = document
                    .value
                    .get("stringData")
                    .and_then(|v| v.as_mapping())
                {
                    for v in map.values().filter_map(|v| v.as_str()) {
                        if v.len() >= 24
                            && v.chars().all(|c| c.is_ascii_alphanumeric())
                            && whole.matches(v).count() == 1
                        {
                            assert!(!message.contains(v), "value echoed: {message}");
                        }
                    }
                }
            }
        }
    }
});
