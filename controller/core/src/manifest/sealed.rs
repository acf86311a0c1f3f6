//! A SealedSecret manifest to and from the typed [`SealedSecret`] of `sealsync-crypto`.

use sealsync_crypto::{SealedSecret, SealedSecretWire};
use serde_yaml::Value;

use super::error::ManifestError;

/// Reads a sealed document from a parsed manifest. `apiVersion` and `kind` are checked
/// first; then the fields, then everything the format checks without a key.
pub fn sealed_from_manifest(value: &Value) -> Result<SealedSecret, ManifestError> {
    let text = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or("");
    SealedSecret::check_type_meta(text("apiVersion"), text("kind"))?;
    let wire: SealedSecretWire = serde_yaml::from_value(value.clone())
        .map_err(|e| ManifestError::malformed("spec", serde_reason(&e)))?;
    Ok(SealedSecret::try_from(wire)?)
}

/// The sealed document as a manifest tree.
pub fn sealed_to_manifest(sealed: &SealedSecret) -> Value {
    // Plain data structures with string keys always serialize into a tree.
    serde_yaml::to_value(sealed.wire()).unwrap_or(Value::Null)
}

/// serde's message without anything it quotes from the input (an unknown field's name, a
/// scalar's text): only what the format expects, which comes from our own types.
fn serde_reason(e: &serde_yaml::Error) -> String {
    let msg = e.to_string();
    let msg = msg.split(" at line ").next().unwrap_or(&msg);
    let expected = msg
        .split_once("expected ")
        .map(|(_, rest)| rest.replace('`', ""));
    if msg.starts_with("unknown field") {
        format!(
            "an unknown field (expected {})",
            expected.unwrap_or_else(|| "the fields of the format".to_owned())
        )
    } else if msg.starts_with("missing field") {
        msg.replace('`', "")
    } else if msg.starts_with("unknown variant") {
        format!(
            "an unknown value (expected {})",
            expected.unwrap_or_else(|| "a value of the format".to_owned())
        )
    } else if let Some(expected) = expected {
        format!("a value of the wrong type or shape (expected {expected})")
    } else {
        "does not follow the SealedSecret format".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_never_quote_the_input() {
        let doc: Value = serde_yaml::from_str(
            "apiVersion: sealsync.dev/v1\nkind: SealedSecret\nmetadata: {name: a}\n\
             spec: {scope: strict, envelopes: [], encryptedData: {}, canary-field: 1}\n",
        )
        .expect("yaml");
        let err = sealed_from_manifest(&doc).expect_err("unknown field");
        assert_eq!(err.metric_label(), "malformed");
        assert!(!err.to_string().contains("canary"), "{err}");
    }

    #[test]
    fn kind_is_checked_before_fields() {
        let doc: Value = serde_yaml::from_str(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {}\n",
        )
        .expect("yaml");
        let err = sealed_from_manifest(&doc).expect_err("not sealed");
        assert!(err.to_string().contains("expected SealedSecret"), "{err}");
    }
}
