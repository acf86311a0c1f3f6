#![allow(dead_code)]

use sealsync_crypto::{
    Error, Identity, PlainSecret, Recipient, SealedSecret, SealedSecretWire, SecretData,
};
use serde_yaml::Value;
use zeroize::Zeroizing;

pub fn secret(ns: Option<&str>, name: &str, values: &[(&str, &[u8])]) -> PlainSecret {
    let mut data = SecretData::new();
    for (k, v) in values {
        data.insert((*k).to_owned(), Zeroizing::new(v.to_vec()));
    }
    PlainSecret {
        name: name.to_owned(),
        namespace: ns.map(str::to_owned),
        type_: Some("Opaque".to_owned()),
        data,
        ..PlainSecret::default()
    }
}

pub fn recipients(ids: &[&Identity]) -> Vec<Recipient> {
    ids.iter().map(|i| i.recipient()).collect()
}

/// Reads a sealed document from a YAML tree as a user of the crate would: the type is checked
/// first, then serde reads the wire form, then the format's checks run.
pub fn sealed_from_value(value: &Value) -> Result<SealedSecret, Error> {
    let text = |field: &str| value.get(field).and_then(Value::as_str).unwrap_or("");
    SealedSecret::check_type_meta(text("apiVersion"), text("kind"))?;
    let wire: SealedSecretWire =
        serde_yaml::from_value(value.clone()).map_err(|e| Error::Malformed {
            location: "spec".to_owned(),
            reason: e.to_string(),
        })?;
    SealedSecret::try_from(wire)
}

/// The document as a YAML tree.
pub fn sealed_to_value(sealed: &SealedSecret) -> Value {
    serde_yaml::to_value(sealed).expect("a sealed document serializes")
}
