//! The cryptography of SOPS files (sops v3, age recipients), so that a cluster key opens them:
//! the data key each `sops.age[].enc` wraps, and the `ENC[AES256_GCM,…]` values.
//!
//! - `enc` is a whole ASCII-armored age file with one recipient stanza, whose plaintext is the
//!   raw 32-byte data key (a 33-byte Shamir share when the file has several key groups, which
//!   is refused here by name).
//! - A value is `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<type>]`: AES-256-GCM under
//!   the data key with a 32-byte IV, the tag stored apart, standard padded base64, and the
//!   value's path (`data:password:`) as additional data. Walking the tree, choosing the path
//!   and checking the MAC is the caller's; this module knows no YAML.

use std::io::Read;

use aes_gcm::aead::generic_array::typenum::U32;
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::AesGcm;
use base64::Engine as _;
use zeroize::Zeroizing;

use crate::{Error, Identity, KeyId, Result};

/// The length of a SOPS data key.
pub const SOPS_DATA_KEY_BYTES: usize = 32;
/// The longest `enc` read: an armored age file of one stanza and 32 bytes is under 1 KiB.
const MAX_ENC_BYTES: usize = 8 * 1024;

/// AES-256-GCM with the 32-byte nonce SOPS uses.
type SopsGcm = AesGcm<Aes256, U32>;

/// A SOPS file's data key, opened.
pub struct SopsDataKey(Zeroizing<[u8; SOPS_DATA_KEY_BYTES]>);

impl std::fmt::Debug for SopsDataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SopsDataKey(..)")
    }
}

/// One encrypted value, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SopsValue {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    /// `str`, `int`, `float`, `bool`, `time`, `bytes` or `comment`.
    pub value_type: String,
}

/// Whether `text` is a SOPS encrypted value (it may still be malformed).
pub fn is_sops_value(text: &str) -> bool {
    text.starts_with("ENC[AES256_GCM,") && text.ends_with(']')
}

impl SopsValue {
    /// Parses `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`. `location` names the field in errors;
    /// the text itself is never quoted.
    pub fn parse(text: &str, location: &str) -> Result<Self> {
        let malformed = |reason: &str| Error::Malformed {
            location: location.to_owned(),
            reason: format!(
                "not a SOPS value (ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]): {reason}"
            ),
        };
        let inner = text
            .strip_prefix("ENC[AES256_GCM,")
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| malformed("no ENC[AES256_GCM,…] around it"))?;
        let mut fields = [
            ("data:", None),
            ("iv:", None),
            ("tag:", None),
            ("type:", None),
        ];
        for part in inner.split(',') {
            let slot = fields
                .iter_mut()
                .find(|(name, _)| part.starts_with(name))
                .ok_or_else(|| malformed("an unknown field"))?;
            if slot.1.is_some() {
                return Err(malformed("a field given twice"));
            }
            slot.1 = Some(&part[slot.0.len()..]);
        }
        let [(_, Some(data)), (_, Some(iv)), (_, Some(tag)), (_, Some(value_type))] = fields else {
            return Err(malformed("a field is missing"));
        };
        let decode = |b64: &str, what: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| malformed(&format!("its {what} is not base64")))
        };
        let value = SopsValue {
            data: decode(data, "data")?,
            iv: decode(iv, "iv")?,
            tag: decode(tag, "tag")?,
            value_type: value_type.to_owned(),
        };
        if value.iv.len() != 32 || value.tag.len() != 16 {
            return Err(malformed("its iv is not 32 bytes or its tag not 16"));
        }
        match value.value_type.as_str() {
            "str" | "int" | "float" | "bool" | "time" | "bytes" | "comment" => Ok(value),
            _ => Err(malformed("an unknown type")),
        }
    }
}

impl SopsDataKey {
    /// Decrypts `value` whose additional data is `aad` (the value's path, or `lastmodified`
    /// for the MAC). A wrong key, a wrong path or an altered value fail alike, as `Tampered`.
    pub fn decrypt(
        &self,
        value: &SopsValue,
        aad: &[u8],
        location: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let cipher = SopsGcm::new(GenericArray::from_slice(self.0.as_slice()));
        let mut sealed = Vec::with_capacity(value.data.len() + value.tag.len());
        sealed.extend_from_slice(&value.data);
        sealed.extend_from_slice(&value.tag);
        cipher
            .decrypt(
                GenericArray::from_slice(&value.iv),
                Payload { msg: &sealed, aad },
            )
            .map(Zeroizing::new)
            .map_err(|_| Error::Tampered {
                what: location.to_owned(),
            })
    }

    /// A key from its bytes, for tests.
    #[cfg(any(test, feature = "test-vectors"))]
    pub fn from_bytes(bytes: [u8; SOPS_DATA_KEY_BYTES]) -> Self {
        Self(Zeroizing::new(bytes))
    }
}

/// The MAC of a SOPS file: SHA-512 over the plaintext bytes of its values in document order
/// (no keys, no separators), as uppercase hex. With `mac_only_encrypted` only the encrypted
/// values count, after the SHA-256 of `sops`, so that the two kinds of MAC never collide.
pub struct SopsMac(ring::digest::Context);

impl std::fmt::Debug for SopsMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SopsMac(..)")
    }
}

impl SopsMac {
    /// A MAC over nothing yet.
    pub fn new(only_encrypted: bool) -> Self {
        let mut context = ring::digest::Context::new(&ring::digest::SHA512);
        if only_encrypted {
            context.update(ring::digest::digest(&ring::digest::SHA256, b"sops").as_ref());
        }
        Self(context)
    }

    /// Adds the canonical bytes of one value.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Whether the MAC over the values added is the one `stored` holds: the file's `sops.mac`,
    /// encrypted under `key` with `lastmodified` as additional data. A mismatch and a MAC that
    /// does not decrypt are both `Tampered`, naming `location`.
    pub fn check(
        self,
        key: &SopsDataKey,
        stored: &SopsValue,
        lastmodified: &str,
        location: &str,
    ) -> Result<()> {
        let digest = self.0.finish();
        let computed: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        let opened = key.decrypt(stored, lastmodified.as_bytes(), location)?;
        if opened.as_slice() == computed.as_bytes() {
            Ok(())
        } else {
            Err(Error::Tampered {
                what: location.to_owned(),
            })
        }
    }
}

/// Opens the data key one `sops.age[].enc` wraps with one of `identities`: the key, and the
/// id of the identity that opened it. `location` names the entry in errors.
pub fn open_sops_data_key(
    enc: &str,
    identities: &[Identity],
    location: &str,
) -> Result<Option<(SopsDataKey, KeyId)>> {
    if enc.len() > MAX_ENC_BYTES {
        return Err(Error::LimitExceeded {
            what: location.to_owned(),
            limit: format!("{MAX_ENC_BYTES} bytes"),
        });
    }
    for identity in identities {
        let reader = age::armor::ArmoredReader::new(enc.as_bytes());
        let decryptor = age::Decryptor::new_buffered(reader).map_err(|_| Error::Malformed {
            location: location.to_owned(),
            reason: "not an armored age file".to_owned(),
        })?;
        let mut stream =
            match decryptor.decrypt(std::iter::once(identity.as_age() as &dyn age::Identity)) {
                Ok(stream) => stream,
                Err(age::DecryptError::NoMatchingKeys) => continue,
                Err(_) => {
                    return Err(Error::Tampered {
                        what: location.to_owned(),
                    })
                }
            };
        let mut plaintext = Zeroizing::new(Vec::new());
        stream
            .by_ref()
            .take(SOPS_DATA_KEY_BYTES as u64 + 2)
            .read_to_end(&mut plaintext)
            .map_err(|_| Error::Tampered {
                what: location.to_owned(),
            })?;
        let key: [u8; SOPS_DATA_KEY_BYTES] = match plaintext.len() {
            SOPS_DATA_KEY_BYTES => {
                let mut key = [0u8; SOPS_DATA_KEY_BYTES];
                key.copy_from_slice(&plaintext);
                key
            }
            33 => {
                return Err(Error::Malformed {
                    location: location.to_owned(),
                    reason: "it holds a Shamir share: files with several key groups are not supported; keep one key group".to_owned(),
                })
            }
            _ => {
                return Err(Error::Malformed {
                    location: location.to_owned(),
                    reason: "it does not hold a 32-byte data key".to_owned(),
                })
            }
        };
        return Ok(Some((
            SopsDataKey(Zeroizing::new(key)),
            identity.key_id().clone(),
        )));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sops's own known answer (`aes/cipher_test.go`): key 32 × `f`, path `bar:`.
    const FOO: &str = "ENC[AES256_GCM,data:oYyi,iv:MyIDYbT718JRr11QtBkcj3Dwm4k1aCGZBVeZf0EyV8o=,tag:t5z2Z023Up0kxwCgw1gNxg==,type:str]";

    #[test]
    fn a_value_opens_with_its_key_and_path_only() {
        let key = SopsDataKey::from_bytes([b'f'; 32]);
        let value = SopsValue::parse(FOO, "foo").expect("parsed");
        assert_eq!(value.value_type, "str");
        let plain = key.decrypt(&value, b"bar:", "bar").expect("opened");
        assert_eq!(plain.as_slice(), b"foo");
        assert!(matches!(
            key.decrypt(&value, b"", "bar"),
            Err(Error::Tampered { .. })
        ));
        let other = SopsDataKey::from_bytes([b'g'; 32]);
        assert!(matches!(
            other.decrypt(&value, b"bar:", "bar"),
            Err(Error::Tampered { .. })
        ));
    }

    /// An `enc` as sops writes it: an armored age file of `plaintext` to `identity`.
    fn enc_for(identity: &Identity, plaintext: &[u8]) -> String {
        use std::io::Write as _;
        let recipient = identity.as_age().to_public();
        let encryptor =
            age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .expect("encryptor");
        let mut out = Vec::new();
        let armored =
            age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                .expect("armor");
        let mut writer = encryptor.wrap_output(armored).expect("writer");
        writer.write_all(plaintext).expect("write");
        writer.finish().and_then(|a| a.finish()).expect("finish");
        String::from_utf8(out).expect("text")
    }

    #[test]
    fn the_data_key_opens_with_the_identity_it_was_wrapped_to() {
        let cluster = Identity::generate();
        let other = Identity::generate();
        let enc = enc_for(&cluster, &[b'f'; 32]);
        let (key, id) = open_sops_data_key(&enc, &[other.clone(), cluster.clone()], "sops.age[0]")
            .expect("read")
            .expect("opened");
        assert_eq!(&id, cluster.key_id());
        let value = SopsValue::parse(FOO, "foo").expect("parsed");
        assert_eq!(
            key.decrypt(&value, b"bar:", "bar")
                .expect("opened")
                .as_slice(),
            b"foo"
        );
        assert!(open_sops_data_key(&enc, &[other], "sops.age[0]")
            .expect("read")
            .is_none());
        let share = enc_for(&cluster, &[7; 33]);
        let error = open_sops_data_key(&share, std::slice::from_ref(&cluster), "sops.age[0]")
            .expect_err("a Shamir share");
        assert!(error.to_string().contains("key groups"), "{error}");
        let error =
            open_sops_data_key("not armored", &[cluster], "sops.age[0]").expect_err("not age");
        assert!(error.to_string().contains("sops.age[0]"), "{error}");
    }

    /// A Secret encrypted by the real `sops` 3.13.2 (`scripts/interop-tools.sh`) to a throwaway
    /// age identity, with `--encrypted-regex '^(data|stringData)$'` (`testdata/sops/`).
    #[test]
    fn a_file_made_by_sops_opens_and_its_mac_is_the_sha512_of_its_values_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/sops");
        let identities = crate::parse_identity_file(
            &std::fs::read_to_string(format!("{dir}/identity.txt")).expect("identity"),
        )
        .expect("identities");
        let file: serde_yaml::Value = serde_yaml::from_str(
            &std::fs::read_to_string(format!("{dir}/secret.sops.yaml")).expect("vector"),
        )
        .expect("yaml");
        let sops = &file["sops"];
        let enc = sops["age"][0]["enc"].as_str().expect("enc");
        let (key, _) = open_sops_data_key(enc, &identities, "sops.age[0]")
            .expect("read")
            .expect("opened");
        let open = |text: &str, aad: &str| {
            let value = SopsValue::parse(text, aad).expect("parsed");
            String::from_utf8(
                key.decrypt(&value, aad.as_bytes(), aad)
                    .expect("opened")
                    .to_vec(),
            )
            .expect("utf8")
        };
        let password = open(
            file["stringData"]["password"].as_str().expect("value"),
            "stringData:password:",
        );
        assert_eq!(password, "canary-s0ps-vector-7c1d");
        let port = open(
            file["stringData"]["port"].as_str().expect("value"),
            "stringData:port:",
        );
        assert_eq!(port, "5432");
        // Every value in document order, the unencrypted ones included, without keys.
        let mac = open(
            sops["mac"].as_str().expect("mac"),
            sops["lastmodified"].as_str().expect("lastmodified"),
        );
        let mut hashed = Vec::new();
        for value in ["v1", "Secret", "db", "shop", "Opaque", &password, &port] {
            hashed.extend_from_slice(value.as_bytes());
        }
        let digest = ring::digest::digest(&ring::digest::SHA512, &hashed);
        let expected: String = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(mac, expected);
    }

    #[test]
    fn malformed_values_name_their_field_never_their_text() {
        for text in [
            "ENC[AES256_GCM,data:oYyi,iv:AAAA,tag:t5z2Z023Up0kxwCgw1gNxg==,type:str]",
            "ENC[AES256_GCM,data:oYyi,type:str]",
            "ENC[AES256_GCM,data:!!,iv:MyIDYbT718JRr11QtBkcj3Dwm4k1aCGZBVeZf0EyV8o=,tag:t5z2Z023Up0kxwCgw1gNxg==,type:str]",
            "ENC[AES256_GCM,data:oYyi,iv:MyIDYbT718JRr11QtBkcj3Dwm4k1aCGZBVeZf0EyV8o=,tag:t5z2Z023Up0kxwCgw1gNxg==,type:secret-canary]",
        ] {
            let error = SopsValue::parse(text, "data.password").expect_err("malformed");
            let message = error.to_string();
            assert!(message.contains("data.password"), "{message}");
            assert!(!message.contains("oYyi") && !message.contains("canary"), "{message}");
        }
    }
}
