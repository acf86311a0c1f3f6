//! The manifest intake never repeats a value in an error: Secret manifests carrying a canary
//! value are mutated at random (a character inserted, deleted or replaced anywhere), and every
//! error that reading or parsing them produces, from the YAML parser, from serde or from the
//! Secret checks, is checked for the canary.

use proptest::prelude::*;
use sealsync_core::manifest::{read_documents, secret_from_manifest, Limits};

const CANARY: &str = "Zq8canaryWv3Lp0Tx7";

fn base(i: usize) -> String {
    let layouts = [
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: app\nstringData:\n  password: {CANARY}\n  user: admin\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: db, namespace: app}}\nstringData: {{password: {CANARY}}}\n"),
        format!("{{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{{\"name\":\"db\"}},\"stringData\":{{\"password\":\"{CANARY}\"}}}}"),
        format!("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {{name: db}}\n  stringData:\n    password: \"{CANARY}\"\n"),
        format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  annotations: {{a: b}}\nstringData:\n  password: &p {CANARY}\n  again: *p\n"),
    ];
    layouts[i % layouts.len()].clone()
}

fn mutate(text: &str, edits: &[(usize, u8, u8)]) -> String {
    let mut bytes = text.as_bytes().to_vec();
    for &(pos, op, ch) in edits {
        if bytes.is_empty() {
            break;
        }
        let pos = pos % bytes.len();
        let alphabet: &[u8] = b" :{}[]\"'\n#&*!|>-,?%@`\t0aZ";
        let ch = alphabet[ch as usize % alphabet.len()];
        match op % 3 {
            0 => bytes.insert(pos, ch),
            1 => {
                bytes.remove(pos);
            }
            _ => bytes[pos] = ch,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn errors_never_repeat_a_value(
        layout in 0usize..5,
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4),
    ) {
        let text = mutate(&base(layout), &edits);
        // Only inputs where the canary survives whole are interesting.
        if !text.contains(CANARY) {
            return Ok(());
        }
        match read_documents(&text, Limits::default()) {
            Err(e) => prop_assert!(!e.to_string().contains(CANARY), "{}", e),
            Ok(docs) => {
                for doc in &docs {
                    prop_assert!(!doc.describe().contains(CANARY));
                    if let Err(e) = secret_from_manifest(&doc.value) {
                        let msg = e.to_string();
                        // A canary that became a name or key of the document by the edit is
                        // no longer a value; only values must stay hidden.
                        let is_value = doc
                            .value
                            .get("stringData")
                            .and_then(|m| m.as_mapping())
                            .is_some_and(|m| m.values().any(|v| v.as_str() == Some(CANARY)));
                        if is_value && !serde_yaml::to_string(&doc.value).unwrap_or_default().matches(CANARY).count().gt(&1) {
                            prop_assert!(!msg.contains(CANARY), "{}\n{}", msg, text);
                        }
                    }
                }
            }
        }
    }
}
