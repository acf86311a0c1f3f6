#![allow(dead_code)]

use sealsync_crypto::{Identity, PlainSecret, Recipient, SecretData};
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
