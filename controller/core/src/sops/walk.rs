use std::collections::HashSet;

use serde_yaml::{Mapping, Value};
use zeroize::Zeroizing;

use sealsync_crypto::{is_sops_value, SopsDataKey, SopsMac, SopsValue};

use super::metadata::SopsMetadata;
use super::{SopsError, METADATA_KEY};

/// One pass over a document's tree: every value the rule encrypts decrypted at its path, and,
/// when asked, the MAC computed in document order and the encrypted values collected.
pub(super) struct Walk<'a> {
    metadata: &'a SopsMetadata,
    key: &'a SopsDataKey,
    location: &'a str,
    mac: Option<SopsMac>,
    collected: Option<HashSet<String>>,
    allowed: Option<&'a HashSet<String>>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(metadata: &'a SopsMetadata, key: &'a SopsDataKey, location: &'a str) -> Self {
        Self {
            metadata,
            key,
            location,
            mac: None,
            collected: None,
            allowed: None,
        }
    }

    /// Computes the MAC and checks it against `sops.mac` at the end.
    pub(super) fn with_mac(mut self) -> Self {
        self.mac = Some(SopsMac::new(self.metadata.mac_only_encrypted));
        self
    }

    /// Collects the encrypted values as written.
    pub(super) fn collecting_values(mut self) -> Self {
        self.collected = Some(HashSet::new());
        self
    }

    /// Refuses any encrypted value not among `allowed`.
    pub(super) fn allowing_only(mut self, allowed: &'a HashSet<String>) -> Self {
        self.allowed = Some(allowed);
        self
    }

    /// The plaintext tree without its metadata, and the values collected.
    pub(super) fn run(mut self, document: &Value) -> Result<(Value, HashSet<String>), SopsError> {
        let Value::Mapping(top) = document else {
            return Err(SopsError::malformed(
                self.location,
                "the document",
                "not a mapping",
            ));
        };
        let mut path = Vec::new();
        let mut out = Mapping::new();
        let result = self.mapping(top, &mut path, &mut out, true);
        let mut plaintext = Value::Mapping(out);
        if let Err(e) = result.and_then(|()| self.check_mac()) {
            crate::manifest::wipe_value(&mut plaintext);
            return Err(e);
        }
        Ok((plaintext, self.collected.take().unwrap_or_default()))
    }

    fn check_mac(&mut self) -> Result<(), SopsError> {
        let Some(mac) = self.mac.take() else {
            return Ok(());
        };
        let stored = SopsValue::parse(&self.metadata.mac, "sops.mac").map_err(|_| {
            SopsError::malformed(self.location, "sops.mac", "not an ENC[AES256_GCM,…] value")
        })?;
        mac.check(self.key, &stored, &self.metadata.lastmodified, "sops.mac")
            .map_err(|_| SopsError::MacMismatch {
                location: self.location.to_owned(),
            })
    }

    fn mapping(
        &mut self,
        map: &Mapping,
        path: &mut Vec<String>,
        out: &mut Mapping,
        top: bool,
    ) -> Result<(), SopsError> {
        for (key, value) in map {
            let name = key_name(key).ok_or_else(|| {
                SopsError::malformed(self.location, &field(path), "a key that is not a string")
            })?;
            if top && name == METADATA_KEY {
                continue;
            }
            path.push(name.to_owned());
            let walked = self.value(value, path);
            path.pop();
            out.insert(key.clone(), walked?);
        }
        Ok(())
    }

    fn value(&mut self, value: &Value, path: &mut Vec<String>) -> Result<Value, SopsError> {
        match value {
            Value::Mapping(map) => {
                let mut out = Mapping::new();
                match self.mapping(map, path, &mut out, false) {
                    Ok(()) => Ok(Value::Mapping(out)),
                    Err(e) => {
                        crate::manifest::wipe_value(&mut Value::Mapping(out));
                        Err(e)
                    }
                }
            }
            // List positions are not part of a value's path.
            Value::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match self.value(item, path) {
                        Ok(v) => out.push(v),
                        Err(e) => {
                            crate::manifest::wipe_value(&mut Value::Sequence(out));
                            return Err(e);
                        }
                    }
                }
                Ok(Value::Sequence(out))
            }
            Value::Tagged(_) => Err(SopsError::malformed(
                self.location,
                &field(path),
                "a tagged value, which sops does not write",
            )),
            leaf => self.leaf(leaf, path),
        }
    }

    fn leaf(&mut self, value: &Value, path: &[String]) -> Result<Value, SopsError> {
        let encrypted = self.metadata.rule.encrypts(path);
        if !encrypted {
            if let (Some(mac), false) = (self.mac.as_mut(), self.metadata.mac_only_encrypted) {
                if let Some(bytes) = canonical_bytes(value) {
                    mac.update(bytes.as_bytes());
                }
            }
            return Ok(value.clone());
        }
        let text = match value {
            // sops leaves empty strings and nulls as they are.
            Value::Null => return Ok(Value::Null),
            Value::String(s) if s.is_empty() => return Ok(value.clone()),
            Value::String(s) if is_sops_value(s) => s,
            _ => {
                return Err(SopsError::Plaintext {
                    location: self.location.to_owned(),
                    field: field(path),
                    rule: self.metadata.rule.describe(),
                })
            }
        };
        if let Some(allowed) = self.allowed {
            if !allowed.contains(text) {
                return Err(SopsError::NotAsVerified {
                    location: self.location.to_owned(),
                    reason: format!("{} holds an encrypted value the file does not", field(path)),
                });
            }
        }
        if let Some(collected) = self.collected.as_mut() {
            collected.insert(text.clone());
        }
        let name = field(path);
        let parsed = SopsValue::parse(text, &name).map_err(|_| {
            SopsError::malformed(
                self.location,
                &name,
                "not an ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value",
            )
        })?;
        let aad = format!("{}:", path.join(":"));
        let plaintext = self
            .key
            .decrypt(&parsed, aad.as_bytes(), &name)
            .map_err(|_| SopsError::Tampered {
                location: self.location.to_owned(),
                field: name.clone(),
            })?;
        let (typed, canonical) = typed(&parsed.value_type, &plaintext).ok_or_else(|| {
            SopsError::malformed(
                self.location,
                &name,
                format!("its plaintext is not a valid {}", parsed.value_type),
            )
        })?;
        if let Some(mac) = self.mac.as_mut() {
            mac.update(canonical.as_bytes());
        }
        Ok(typed)
    }
}

/// Checks, without a key, that every value the rule encrypts is encrypted.
pub(super) fn check_encrypted(
    document: &Value,
    metadata: &SopsMetadata,
    location: &str,
) -> Result<(), SopsError> {
    fn visit(
        value: &Value,
        path: &mut Vec<String>,
        metadata: &SopsMetadata,
        location: &str,
        top: bool,
    ) -> Result<(), SopsError> {
        match value {
            Value::Mapping(map) => {
                for (key, value) in map {
                    let name = key_name(key).ok_or_else(|| {
                        SopsError::malformed(location, &field(path), "a key that is not a string")
                    })?;
                    if top && name == METADATA_KEY {
                        continue;
                    }
                    path.push(name.to_owned());
                    let result = visit(value, path, metadata, location, false);
                    path.pop();
                    result?;
                }
                Ok(())
            }
            Value::Sequence(items) => items
                .iter()
                .try_for_each(|item| visit(item, path, metadata, location, false)),
            Value::Tagged(_) => Err(SopsError::malformed(
                location,
                &field(path),
                "a tagged value, which sops does not write",
            )),
            Value::Null => Ok(()),
            Value::String(s) if s.is_empty() => Ok(()),
            _ if !metadata.rule.encrypts(path) => Ok(()),
            Value::String(s) if is_sops_value(s) => {
                SopsValue::parse(s, &field(path)).map(drop).map_err(|_| {
                    SopsError::malformed(
                        location,
                        &field(path),
                        "not an ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value",
                    )
                })
            }
            _ => Err(SopsError::Plaintext {
                location: location.to_owned(),
                field: field(path),
                rule: metadata.rule.describe(),
            }),
        }
    }
    visit(document, &mut Vec::new(), metadata, location, true)
}

fn key_name(key: &Value) -> Option<&str> {
    key.as_str()
}

/// `data.password`: a path for messages.
fn field(path: &[String]) -> String {
    if path.is_empty() {
        "the document".to_owned()
    } else {
        path.join(".")
    }
}

/// The bytes the MAC takes for an unencrypted value, as sops's `ToBytes` writes them; a null
/// adds nothing.
fn canonical_bytes(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        Value::Number(n) => Some(
            match n
                .as_i64()
                .or_else(|| n.as_u64().and_then(|u| i64::try_from(u).ok()))
            {
                Some(i) => i.to_string(),
                None => go_float(n.as_f64().unwrap_or_default()),
            },
        ),
        _ => None,
    }
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it: the shortest decimal that
/// reads back the same, never in exponent form.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{f}")
    }
}

/// The decrypted value as its type makes it, and the bytes the MAC takes for it.
fn typed(value_type: &str, plaintext: &[u8]) -> Option<(Value, Zeroizing<String>)> {
    let text = std::str::from_utf8(plaintext).ok()?;
    match value_type {
        "str" | "time" | "bytes" => Some((
            Value::String(text.to_owned()),
            Zeroizing::new(text.to_owned()),
        )),
        "int" => {
            let i: i64 = text.parse().ok()?;
            Some((Value::Number(i.into()), Zeroizing::new(i.to_string())))
        }
        "float" => {
            let f: f64 = text.parse().ok()?;
            Some((Value::Number(f.into()), Zeroizing::new(go_float(f))))
        }
        "bool" => {
            // Go's strconv.ParseBool.
            let b = match text {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
                "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
                _ => return None,
            };
            Some((
                Value::Bool(b),
                Zeroizing::new(if b { "True" } else { "False" }.to_owned()),
            ))
        }
        _ => None,
    }
}
