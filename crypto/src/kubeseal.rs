//! Opening values of Bitnami Sealed Secrets (`bitnami.com/v1alpha1` SealedSecret) offline with
//! the controller's exported private keys, so that `sealsync import kubeseal` can move them to
//! the sealsync format without the Sealed Secrets controller.
//!
//! A value is `len(16-bit big-endian) ‖ RSA-OAEP(SHA-256, label)(session key) ‖
//! AES-256-GCM(session key, nonce 0¹², no additional data)(plaintext)`. The label is the scope:
//! `namespace/name` (strict), `namespace` (namespace-wide) or empty (cluster-wide). The
//! ciphertext names no key, so each key is tried; a wrong key and a wrong label fail alike.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::Aes256Gcm;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The longest value read: Sealed Secrets values are limited by the Secret's 1 MiB.
pub const MAX_KUBESEAL_VALUE_BYTES: usize = 1024 * 1024 + 1024;
/// The most keys tried: a controller keeps one per renewal period (30 days by default).
pub const MAX_KUBESEAL_KEYS: usize = 256;
/// The session key's length.
const SESSION_KEY_BYTES: usize = 32;

/// One exported Sealed Secrets private key.
pub struct KubesealKey {
    key: RsaPrivateKey,
}

impl std::fmt::Debug for KubesealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubesealKey")
            .field("bits", &(self.key.size() * 8))
            .finish_non_exhaustive()
    }
}

impl KubesealKey {
    /// The key in `pem` (PKCS#1 `RSA PRIVATE KEY`, as the controller writes `tls.key`, or
    /// PKCS#8 `PRIVATE KEY`). `location` names it in errors; no part of the text is quoted.
    pub fn from_pem(pem: &str, location: &str) -> Result<Self> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| Error::Malformed {
                location: location.to_owned(),
                reason: "not an RSA private key in PEM (PKCS#1 or PKCS#8)".to_owned(),
            })?;
        if key.size() < 256 {
            return Err(Error::Malformed {
                location: location.to_owned(),
                reason: "an RSA key shorter than 2048 bits".to_owned(),
            });
        }
        Ok(Self { key })
    }

    fn open(&self, label: &str, value: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        let (length, rest) = value.split_first_chunk::<2>()?;
        let length = usize::from(u16::from_be_bytes(*length));
        if rest.len() < length {
            return None;
        }
        let (wrapped, sealed) = rest.split_at(length);
        let padding = Oaep::new_with_label::<sha2::Sha256, _>(label);
        let session = Zeroizing::new(self.key.decrypt(padding, wrapped).ok()?);
        if session.len() != SESSION_KEY_BYTES {
            return None;
        }
        let cipher = Aes256Gcm::new_from_slice(&session).ok()?;
        let nonce = aes_gcm::Nonce::from_slice(&[0u8; 12]);
        cipher.decrypt(nonce, sealed).ok().map(Zeroizing::new)
    }
}

/// Opens one raw Sealed Secrets `value` (base64 already decoded) sealed with `label`, with
/// the first of `keys` that opens it. `location` names the value in errors.
pub fn open_kubeseal_value(
    keys: &[KubesealKey],
    label: &str,
    value: &[u8],
    location: &str,
) -> Result<Zeroizing<Vec<u8>>> {
    if value.len() > MAX_KUBESEAL_VALUE_BYTES {
        return Err(Error::LimitExceeded {
            what: location.to_owned(),
            limit: format!("{MAX_KUBESEAL_VALUE_BYTES} bytes"),
        });
    }
    if keys.len() > MAX_KUBESEAL_KEYS {
        return Err(Error::LimitExceeded {
            what: "the Sealed Secrets keys given".to_owned(),
            limit: format!("{MAX_KUBESEAL_KEYS} keys"),
        });
    }
    keys.iter()
        .find_map(|key| key.open(label, value))
        .ok_or_else(|| Error::Tampered {
            what: location.to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/kubeseal");

    fn read(name: &str) -> String {
        std::fs::read_to_string(format!("{DIR}/{name}")).expect("vector")
    }

    fn b64(text: &str) -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .expect("base64")
    }

    /// The old and the current key, from the controller's Secrets.
    fn keys() -> Vec<KubesealKey> {
        let list: serde_yaml::Value = serde_yaml::from_str(&read("keys.yaml")).expect("yaml");
        list["items"]
            .as_sequence()
            .expect("items")
            .iter()
            .map(|item| {
                let pem = String::from_utf8(b64(item["data"]["tls.key"].as_str().expect("key")))
                    .expect("pem");
                assert!(pem.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
                KubesealKey::from_pem(&pem, "tls.key").expect("key")
            })
            .collect()
    }

    fn value(file: &str, key: &str) -> Vec<u8> {
        let doc: serde_yaml::Value = serde_yaml::from_str(&read(file)).expect("yaml");
        b64(doc["spec"]["encryptedData"][key].as_str().expect("value"))
    }

    /// Sealed by the real kubeseal (`generate.sh`), in each scope.
    #[test]
    fn values_sealed_by_kubeseal_open_with_the_label_of_their_scope_only() {
        let keys = keys();
        for (file, label) in [
            ("strict.yaml", "shop/db"),
            ("namespace-wide.yaml", "shop"),
            ("cluster-wide.yaml", ""),
        ] {
            let sealed = value(file, "password");
            let opened = open_kubeseal_value(&keys, label, &sealed, "password").expect(file);
            assert_eq!(opened.as_slice(), b"canary-kubeseal-vector-5e90", "{file}");
            for wrong in ["shop/db", "shop", "", "shop/other"] {
                if wrong != label {
                    let error =
                        open_kubeseal_value(&keys, wrong, &sealed, "spec.encryptedData.password")
                            .expect_err("wrong label");
                    assert_eq!(
                        error.to_string(),
                        Error::Tampered {
                            what: "spec.encryptedData.password".to_owned()
                        }
                        .to_string()
                    );
                }
            }
            // The old key alone does not open it.
            assert!(open_kubeseal_value(&keys[..1], label, &sealed, "password").is_err());
        }
    }

    #[test]
    fn a_pkcs8_key_opens_too_and_junk_is_refused_without_quoting_it() {
        let key =
            KubesealKey::from_pem(&read("current.pkcs8.pem"), "current.pkcs8.pem").expect("PKCS#8");
        let sealed = value("strict.yaml", "username");
        assert_eq!(
            open_kubeseal_value(&[key], "shop/db", &sealed, "username")
                .expect("opened")
                .as_slice(),
            b"admin"
        );
        let error = KubesealKey::from_pem("-----BEGIN RSA PRIVATE KEY-----\ncanary\n", "k.pem")
            .expect_err("junk");
        assert!(!error.to_string().contains("canary"), "{error}");
        for junk in [&b""[..], &[0, 200, 1, 2][..], &[0xff; 600][..]] {
            assert!(open_kubeseal_value(&keys(), "shop/db", junk, "v").is_err());
        }
    }
}
