use serde_yaml::Value;

use super::{SopsError, METADATA_KEY};

/// The most `sops.age` entries read: one per cluster, person and recovery key.
const MAX_AGE_ENTRIES: usize = 256;
/// The longest selection regex accepted.
const MAX_REGEX_BYTES: usize = 1024;
/// The most memory one compiled selection regex may take.
const MAX_REGEX_PROGRAM_BYTES: usize = 1 << 20;

/// One `sops.age` entry: an age recipient and the data key wrapped to it.
#[derive(Debug, Clone)]
pub struct AgeEntry {
    /// `age1…`.
    pub recipient: String,
    /// The armored age file that wraps the data key.
    pub enc: String,
}

/// Which values a file's rule encrypts, tested against every key on a value's path.
#[derive(Debug, Clone)]
pub enum Rule {
    /// Every value (a file whose only rules are about comments).
    All,
    /// All but those under a key with this suffix (sops's default is `_unencrypted`).
    UnencryptedSuffix(String),
    /// Only those under a key with this suffix.
    EncryptedSuffix(String),
    /// All but those under a key the regex finds a match in.
    UnencryptedRegex(regex::Regex),
    /// Only those under a key the regex finds a match in.
    EncryptedRegex(regex::Regex),
}

impl Rule {
    /// Whether `key` is one the rule names (its suffix or regex); tested once per key, as the
    /// walk descends, so a long key is scanned once whatever lies under it.
    pub fn names(&self, key: &str) -> bool {
        match self {
            Rule::All => false,
            Rule::UnencryptedSuffix(suffix) | Rule::EncryptedSuffix(suffix) => {
                key.ends_with(suffix.as_str())
            }
            Rule::UnencryptedRegex(regex) | Rule::EncryptedRegex(regex) => regex.is_match(key),
        }
    }

    /// Whether a value is encrypted, given whether any key on its path is one the rule names.
    pub fn encrypts(&self, path_named: bool) -> bool {
        match self {
            Rule::All => true,
            Rule::UnencryptedSuffix(_) | Rule::UnencryptedRegex(_) => !path_named,
            Rule::EncryptedSuffix(_) | Rule::EncryptedRegex(_) => path_named,
        }
    }

    /// The rule as the metadata spells it, for messages.
    pub fn describe(&self) -> String {
        match self {
            Rule::All => "every value".to_owned(),
            Rule::UnencryptedSuffix(s) => format!("unencrypted_suffix: {s}"),
            Rule::EncryptedSuffix(s) => format!("encrypted_suffix: {s}"),
            Rule::UnencryptedRegex(r) => format!("unencrypted_regex: {}", r.as_str()),
            Rule::EncryptedRegex(r) => format!("encrypted_regex: {}", r.as_str()),
        }
    }
}

/// The `sops` metadata of a document, as far as opening it with age needs.
#[derive(Debug, Clone)]
pub struct SopsMetadata {
    /// The age recipients and the data key wrapped to each.
    pub age: Vec<AgeEntry>,
    /// `sops.mac`: the encrypted MAC.
    pub mac: String,
    /// `sops.lastmodified` as the MAC's additional data: RFC 3339 in whole seconds.
    pub lastmodified: String,
    /// `sops.mac_only_encrypted`.
    pub mac_only_encrypted: bool,
    /// The selection rule.
    pub rule: Rule,
}

impl SopsMetadata {
    /// Reads the metadata of `document`.
    pub fn parse(document: &Value, location: &str) -> Result<Self, SopsError> {
        let malformed = |field: &str, reason: &str| SopsError::malformed(location, field, reason);
        let sops = document
            .get(METADATA_KEY)
            .and_then(Value::as_mapping)
            .ok_or_else(|| malformed("sops", "no sops metadata mapping"))?;
        let text = |name: &str| -> Result<Option<&str>, SopsError> {
            match sops.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(malformed(&format!("sops.{name}"), "not a string")),
            }
        };
        if sops.get("key_groups").is_some_and(|groups| {
            !matches!(groups, Value::Null) && groups.as_sequence().is_none_or(|g| !g.is_empty())
        }) {
            return Err(SopsError::Unsupported {
                location: location.to_owned(),
                reason: "it uses SOPS key groups (Shamir secret sharing), which sealsync does not open; encrypt it with one list of age keys instead".to_owned(),
            });
        }
        let age = match sops.get("age") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Sequence(entries)) => {
                if entries.len() > MAX_AGE_ENTRIES {
                    return Err(malformed(
                        "sops.age",
                        &format!("more than {MAX_AGE_ENTRIES} entries"),
                    ));
                }
                entries
                    .iter()
                    .enumerate()
                    .map(|(i, entry)| {
                        let field = |name: &str| {
                            entry
                                .get(name)
                                .and_then(Value::as_str)
                                .map(str::to_owned)
                                .ok_or_else(|| {
                                    malformed(
                                        &format!("sops.age[{i}].{name}"),
                                        "missing or not a string",
                                    )
                                })
                        };
                        Ok(AgeEntry {
                            recipient: field("recipient")?,
                            enc: field("enc")?,
                        })
                    })
                    .collect::<Result<_, SopsError>>()?
            }
            Some(_) => return Err(malformed("sops.age", "not a list")),
        };
        let mac = text("mac")?
            .filter(|m| !m.is_empty())
            .ok_or_else(|| malformed("sops.mac", "missing: a file without a MAC could have been altered; encrypt it again with `sops encrypt`"))?
            .to_owned();
        let lastmodified =
            text("lastmodified")?.ok_or_else(|| malformed("sops.lastmodified", "missing"))?;
        let lastmodified = whole_seconds(lastmodified)
            .ok_or_else(|| malformed("sops.lastmodified", "not an RFC 3339 time"))?;
        let mac_only_encrypted = match sops.get("mac_only_encrypted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(malformed("sops.mac_only_encrypted", "not a boolean")),
        };
        let mut rules = Vec::new();
        for name in [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
        ] {
            if let Some(value) = text(name)?.filter(|v| !v.is_empty()) {
                rules.push((name, value));
            }
        }
        let comment_rules = ["unencrypted_comment_regex", "encrypted_comment_regex"]
            .into_iter()
            .map(text)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .any(|v| v.is_some_and(|v| !v.is_empty()));
        let regex = |name: &str, pattern: &str| {
            if pattern.len() > MAX_REGEX_BYTES {
                return Err(malformed(
                    &format!("sops.{name}"),
                    &format!("longer than {MAX_REGEX_BYTES} bytes"),
                ));
            }
            regex::RegexBuilder::new(pattern)
                .size_limit(MAX_REGEX_PROGRAM_BYTES)
                .build()
                .map_err(|_| {
                    malformed(
                        &format!("sops.{name}"),
                        "not a regular expression this reader accepts",
                    )
                })
        };
        if comment_rules && !rules.is_empty() {
            // sops allows one selection rule, the comment regexes included.
            return Err(malformed(
                "sops",
                "a comment regex beside another selection rule, which sops does not write",
            ));
        }
        let rule = match rules.as_slice() {
            [] if comment_rules => Rule::All,
            [] => Rule::UnencryptedSuffix("_unencrypted".to_owned()),
            [("unencrypted_suffix", s)] => Rule::UnencryptedSuffix((*s).to_owned()),
            [("encrypted_suffix", s)] => Rule::EncryptedSuffix((*s).to_owned()),
            [(name @ "unencrypted_regex", r)] => Rule::UnencryptedRegex(regex(name, r)?),
            [(name @ "encrypted_regex", r)] => Rule::EncryptedRegex(regex(name, r)?),
            _ => {
                return Err(malformed(
                    "sops",
                    "more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex and encrypted_regex",
                ))
            }
        };
        Ok(SopsMetadata {
            age,
            mac,
            lastmodified,
            mac_only_encrypted,
            rule,
        })
    }

    /// The age recipients, comma-separated, or `none` (a file for KMS or PGP keys only).
    pub fn recipients(&self) -> String {
        if self.age.is_empty() {
            return "none".to_owned();
        }
        self.age
            .iter()
            .map(|e| {
                if e.recipient.starts_with("age1")
                    && e.recipient.len() < 200
                    && e.recipient.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    e.recipient.clone()
                } else {
                    "(not an age recipient)".to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `text` as Go formats a parsed RFC 3339 time with `time.RFC3339`: fractional seconds dropped.
/// `None` when it is not an RFC 3339 time.
fn whole_seconds(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let shape = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && matches!(bytes[10], b'T' | b't')
        && bytes[13] == b':'
        && bytes[16] == b':'
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19]
            .into_iter()
            .all(|r| bytes[r].iter().all(u8::is_ascii_digit));
    if !shape {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let zone_ok = matches!(rest, "Z" | "z")
        || (rest.len() == 6
            && matches!(rest.as_bytes()[0], b'+' | b'-')
            && rest.as_bytes()[3] == b':'
            && [1..3, 4..6]
                .into_iter()
                .all(|r| rest.as_bytes()[r].iter().all(u8::is_ascii_digit)));
    if !zone_ok {
        return None;
    }
    // Go's `Z07:00` writes any zero offset as `Z`.
    let zone = if rest.eq_ignore_ascii_case("z") || rest[1..] == *"00:00" {
        "Z"
    } else {
        rest
    };
    Some(format!("{}T{}{zone}", &text[..10], &text[11..19]))
}
