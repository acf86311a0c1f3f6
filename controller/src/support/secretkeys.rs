//! Reading one key of a Secret in a GitSync's namespace (a Vault token, an AppRole secret
//! id). Every other value of the Secret is wiped at once.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use zeroize::{Zeroize, Zeroizing};

/// What was found.
pub(crate) enum KeyLookup {
    /// The key's bytes.
    Found(Zeroizing<Vec<u8>>),
    /// No such Secret.
    NoSecret,
    /// The Secret has no such key (or it is empty).
    NoKey,
}

impl std::fmt::Debug for KeyLookup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeyLookup::Found(_) => "Found([REDACTED])",
            KeyLookup::NoSecret => "NoSecret",
            KeyLookup::NoKey => "NoKey",
        })
    }
}

/// Reads the first of `keys` that the Secret `namespace/name` holds.
pub(crate) async fn read_first_key(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    keys: &[&str],
) -> Result<KeyLookup, kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let Some(secret) = secrets.get_opt(name).await? else {
        return Ok(KeyLookup::NoSecret);
    };
    let mut data = secret.data.unwrap_or_default();
    let found = keys
        .iter()
        .find(|k| data.get(**k).is_some_and(|v| !v.0.is_empty()))
        .and_then(|k| data.remove(*k))
        .map(|b| Zeroizing::new(b.0));
    for (_, mut other) in data {
        other.0.zeroize();
    }
    if let Some(mut string_data) = secret.string_data {
        string_data.values_mut().for_each(Zeroize::zeroize);
    }
    Ok(match found {
        Some(bytes) if !bytes.is_empty() => KeyLookup::Found(bytes),
        _ => KeyLookup::NoKey,
    })
}
