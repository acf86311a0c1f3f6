//! A sealed file of the repository opened in memory for what it holds, not applied: sealed
//! Helm values and sealed substitution variables. The file must be sealed for the namespace
//! it serves, so that no one can turn another team's sealed file into their own values.

use std::collections::BTreeMap;

use sealsync_core::manifest::{read_documents, Limits};
use sealsync_core::SealedSecretUsage;
use serde_json::Value as Json;
use zeroize::Zeroizing;

use super::decrypt::{self, Opened};
use super::error::Error;
use crate::keys::KeyRing;

/// What a sealed file opened to.
pub(crate) struct OpenedFile {
    /// Its keys and values.
    pub values: BTreeMap<String, Zeroizing<Vec<u8>>>,
    /// The keys that opened it.
    pub usage: SealedSecretUsage,
}

/// Opens the SealedSecret of `file` (its `contents`), which must be sealed for `namespace`.
/// `place` names the spec field in messages, `serves` what the namespace is to the reader.
pub(crate) fn open(
    (file, contents): (&str, &[u8]),
    ring: &KeyRing,
    namespace: &str,
    (place, serves): (&str, &str),
) -> Result<OpenedFile, Error> {
    use base64::Engine as _;
    let text = std::str::from_utf8(contents)
        .map_err(|_| Error::Spec(format!("{place}: {file} is not UTF-8 text")))?;
    let documents = read_documents(text, Limits::small(contents.len() + 1, 16))
        .map_err(|e| Error::Spec(format!("{place}: {file}: {}", sealsync_core::Chain(&e))))?;
    let document = documents
        .iter()
        .find(|d| d.kind() == Some(sealsync_crypto::KIND))
        .ok_or_else(|| Error::Spec(format!("{place}: {file} holds no SealedSecret")))?;
    let location = format!("{file}: {}", document.describe());
    let object: Json = serde_json::to_value(&document.value)
        .map_err(|_| Error::Spec(format!("{place}: {file} cannot be read")))?;
    let opened = decrypt::open(&object, &location, file, ring, namespace, false)?;
    let Opened::Sealed { secret, usage } = &opened else {
        return Err(Error::Spec(format!(
            "{place}: {file} holds no SealedSecret"
        )));
    };
    let sealed_namespace = usage.secret.split_once('/').map_or("", |(ns, _)| ns);
    if sealed_namespace != namespace {
        return Err(Error::Spec(format!(
            "{place}: {file} is sealed for namespace {sealed_namespace:?}, and {serves} is {namespace:?}: seal it for that namespace"
        )));
    }
    let mut values = BTreeMap::new();
    for (key, encoded) in secret["data"].as_object().into_iter().flatten() {
        let decoded = encoded
            .as_str()
            .and_then(|e| base64::engine::general_purpose::STANDARD.decode(e).ok())
            .ok_or_else(|| Error::Spec(format!("{place}: {file} key {key:?} is not base64")))?;
        values.insert(key.clone(), Zeroizing::new(decoded));
    }
    Ok(OpenedFile {
        values,
        usage: usage.clone(),
    })
}
