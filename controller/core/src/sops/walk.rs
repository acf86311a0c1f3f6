use std::collections::HashSet;

use serde_yaml::{Mapping, Value};
use zeroize::Zeroizing;

use sealsync_crypto::{is_sops_value, SopsDataKey, SopsMac, SopsValue};

use super::metadata::SopsMetadata;
use super::{SopsError, METADATA_KEY};

/// The top-level fields of a Secret that hold values.
const VALUE_FIELDS: [&str; 2] = ["data", "stringData"];

/// A pass over the documents of one metadata block: every value the rule encrypts decrypted
/// at its path, and, when asked, the MAC computed in document order across them and the
/// encrypted values collected.
pub(super) struct Walk<'a> {
    metadata: &'a SopsMetadata,
    key: &'a SopsDataKey,
    mac: Option<SopsMac>,
    collected: Option<HashSet<String>>,
    allowed: Option<&'a HashSet<String>>,
}

/// Where the walk is in one document.
struct At<'a> {
    location: &'a str,
    path: Vec<String>,
    plaintext_fields: Vec<String>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(metadata: &'a SopsMetadata, key: &'a SopsDataKey) -> Self {
        Self {
            metadata,
            key,
            mac: None,
            collected: None,
            allowed: None,
        }
    }

    /// Computes the MAC, checked by [`Walk::finish`].
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

    /// One document: its plaintext tree without the metadata, and the fields of `data` and
    /// `stringData` its rule leaves in plaintext.
    pub(super) fn document(
        &mut self,
        document: &Value,
        location: &str,
    ) -> Result<(Value, Vec<String>), SopsError> {
        let Value::Mapping(top) = document else {
            return Err(SopsError::malformed(
                location,
                "the document",
                "not a mapping",
            ));
        };
        let mut at = At {
            location,
            path: Vec::new(),
            plaintext_fields: Vec::new(),
        };
        let mut out = Mapping::new();
        match self.mapping(top, &mut at, false, &mut out, true) {
            Ok(()) => Ok((Value::Mapping(out), at.plaintext_fields)),
            Err(e) => {
                crate::manifest::wipe_value(&mut Value::Mapping(out));
                Err(e)
            }
        }
    }

    /// Checks the MAC over every document walked, when computed; the encrypted values
    /// collected.
    pub(super) fn finish(self, location: &str) -> Result<HashSet<String>, SopsError> {
        if let Some(mac) = self.mac {
            let stored = SopsValue::parse(&self.metadata.mac, "sops.mac").map_err(|_| {
                SopsError::malformed(location, "sops.mac", "not an ENC[AES256_GCM,…] value")
            })?;
            mac.check(self.key, &stored, &self.metadata.lastmodified, "sops.mac")
                .map_err(|_| SopsError::MacMismatch {
                    location: location.to_owned(),
                })?;
        }
        Ok(self.collected.unwrap_or_default())
    }

    fn mapping(
        &mut self,
        map: &Mapping,
        at: &mut At<'_>,
        named: bool,
        out: &mut Mapping,
        top: bool,
    ) -> Result<(), SopsError> {
        for (key, value) in map {
            let name = key.as_str().ok_or_else(|| {
                SopsError::malformed(at.location, &field(&at.path), "a key that is not a string")
            })?;
            if top && name == METADATA_KEY {
                continue;
            }
            let named = named || self.metadata.rule.names(name);
            at.path.push(name.to_owned());
            let walked = self.value(value, at, named);
            at.path.pop();
            out.insert(key.clone(), walked?);
        }
        Ok(())
    }

    fn value(&mut self, value: &Value, at: &mut At<'_>, named: bool) -> Result<Value, SopsError> {
        match value {
            Value::Mapping(map) => {
                let mut out = Mapping::new();
                match self.mapping(map, at, named, &mut out, false) {
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
                    match self.value(item, at, named) {
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
                at.location,
                &field(&at.path),
                "a tagged value, which sops does not write",
            )),
            leaf => self.leaf(leaf, at, named),
        }
    }

    fn leaf(&mut self, value: &Value, at: &mut At<'_>, named: bool) -> Result<Value, SopsError> {
        if !self.metadata.rule.encrypts(named) {
            if let (Some(mac), false) = (self.mac.as_mut(), self.metadata.mac_only_encrypted) {
                if let Some(bytes) = canonical_bytes(value) {
                    mac.update(bytes.as_bytes());
                }
            }
            let holds_value =
                !matches!(value, Value::Null) && value.as_str().is_none_or(|s| !s.is_empty());
            if holds_value && at.path.len() > 1 && VALUE_FIELDS.contains(&at.path[0].as_str()) {
                at.plaintext_fields.push(field(&at.path));
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
                    location: at.location.to_owned(),
                    field: field(&at.path),
                    rule: self.metadata.rule.describe(),
                })
            }
        };
        let name = field(&at.path);
        if let Some(allowed) = self.allowed {
            if !allowed.contains(text) {
                return Err(SopsError::NotAsVerified {
                    location: at.location.to_owned(),
                    reason: format!("{name} holds an encrypted value the file does not"),
                });
            }
        }
        if let Some(collected) = self.collected.as_mut() {
            collected.insert(text.clone());
        }
        let parsed = SopsValue::parse(text, &name).map_err(|_| {
            SopsError::malformed(
                at.location,
                &name,
                "not an ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value",
            )
        })?;
        let aad = format!("{}:", at.path.join(":"));
        let plaintext = self
            .key
            .decrypt(&parsed, aad.as_bytes(), &name)
            .map_err(|_| SopsError::Tampered {
                location: at.location.to_owned(),
                field: name.clone(),
            })?;
        let (typed, canonical) = typed(&parsed.value_type, &plaintext).ok_or_else(|| {
            SopsError::malformed(
                at.location,
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

/// Checks, without a key, that every value the rule encrypts is encrypted; the fields of
/// `data` and `stringData` it leaves in plaintext.
pub(super) fn check_encrypted(
    document: &Value,
    metadata: &SopsMetadata,
    location: &str,
) -> Result<Vec<String>, SopsError> {
    fn visit(
        value: &Value,
        at: &mut At<'_>,
        metadata: &SopsMetadata,
        named: bool,
        top: bool,
    ) -> Result<(), SopsError> {
        match value {
            Value::Mapping(map) => {
                for (key, value) in map {
                    let name = key.as_str().ok_or_else(|| {
                        SopsError::malformed(
                            at.location,
                            &field(&at.path),
                            "a key that is not a string",
                        )
                    })?;
                    if top && name == METADATA_KEY {
                        continue;
                    }
                    let named = named || metadata.rule.names(name);
                    at.path.push(name.to_owned());
                    let result = visit(value, at, metadata, named, false);
                    at.path.pop();
                    result?;
                }
                Ok(())
            }
            Value::Sequence(items) => items
                .iter()
                .try_for_each(|item| visit(item, at, metadata, named, false)),
            Value::Tagged(_) => Err(SopsError::malformed(
                at.location,
                &field(&at.path),
                "a tagged value, which sops does not write",
            )),
            Value::Null => Ok(()),
            Value::String(s) if s.is_empty() => Ok(()),
            _ if !metadata.rule.encrypts(named) => {
                if at.path.len() > 1 && VALUE_FIELDS.contains(&at.path[0].as_str()) {
                    at.plaintext_fields.push(field(&at.path));
                }
                Ok(())
            }
            Value::String(s) if is_sops_value(s) => SopsValue::parse(s, &field(&at.path))
                .map(drop)
                .map_err(|_| {
                    SopsError::malformed(
                        at.location,
                        &field(&at.path),
                        "not an ENC[AES256_GCM,data:…,iv:…,tag:…,type:…] value",
                    )
                }),
            _ => Err(SopsError::Plaintext {
                location: at.location.to_owned(),
                field: field(&at.path),
                rule: metadata.rule.describe(),
            }),
        }
    }
    let mut at = At {
        location,
        path: Vec::new(),
        plaintext_fields: Vec::new(),
    };
    visit(document, &mut at, metadata, false, true)?;
    Ok(at.plaintext_fields)
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
