//! SSH signatures, as git makes them with `gpg.format ssh` (`ssh-keygen -Y sign -n git`).
//!
//! A trusted key is an `authorized_keys` line (`[options] type base64 [comment]`) or an
//! `allowed_signers` line (`principals [options] type base64`). Of the options, these are
//! honoured: `namespaces="…"` (the key signs git objects only when it lists `git`),
//! `valid-after`, `valid-before` and `expiry-time` (`YYYYMMDD[HHMM[SS]]`, read as UTC), and
//! `cert-authority`, which is refused: a certificate authority's signatures are not
//! verified here.

use ssh_key::{HashAlg, PublicKey, SshSig};

use super::keyring::MAX_KEYS_PER_ENTRY;
use super::{Method, Signer, TrustedKeys, VerifyError};

/// The namespace git signs in.
const GIT_NAMESPACE: &str = "git";

/// One trusted SSH key with the options that bound its use.
#[derive(Debug)]
pub(super) struct TrustedSshKey {
    key: PublicKey,
    entry: String,
    /// `namespaces="…"`, when given.
    namespaces: Option<Vec<String>>,
    /// Unix time before which it signs nothing.
    valid_after: Option<u64>,
    /// Unix time from which it signs nothing.
    valid_before: Option<u64>,
}

impl TrustedSshKey {
    /// The keys of one `*.sshpub` entry.
    pub(super) fn parse_entry(entry: &str, text: &str) -> Result<Vec<Self>, String> {
        let mut keys = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if keys.len() >= MAX_KEYS_PER_ENTRY {
                return Err(format!("more than {MAX_KEYS_PER_ENTRY} keys"));
            }
            let key = Self::parse_line(entry, line)
                .map_err(|why| format!("line {}: {why}", index + 1))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no SSH public key in it".to_owned());
        }
        Ok(keys)
    }

    fn parse_line(entry: &str, line: &str) -> Result<Self, String> {
        // An allowed_signers line starts with its principals: whatever comes before the
        // options and the key is not an option of authorized_keys.
        let (options, key) = split_key(line)?;
        let mut trusted = TrustedSshKey {
            key,
            entry: entry.to_owned(),
            namespaces: None,
            valid_after: None,
            valid_before: None,
        };
        for option in options {
            let (name, value) = match option.split_once('=') {
                Some((name, value)) => (name, Some(value.trim_matches('"'))),
                None => (option, None),
            };
            match (name.to_ascii_lowercase().as_str(), value) {
                ("cert-authority", _) => {
                    return Err(
                        "cert-authority keys are not supported: list the signing keys themselves"
                            .to_owned(),
                    )
                }
                ("namespaces", Some(value)) => {
                    // OpenSSH reads patterns and negations here; a plain list is all that is
                    // read here, so anything else is refused rather than read differently.
                    if value.contains(['*', '?', '!']) {
                        return Err(
                            "namespaces with patterns or negations are not supported: list the namespaces, git among them"
                                .to_owned(),
                        );
                    }
                    trusted.namespaces =
                        Some(value.split(',').map(|n| n.trim().to_owned()).collect());
                }
                ("verify-required", _) => {
                    return Err(
                        "verify-required is not supported: the user-verification flag of FIDO keys is not checked"
                            .to_owned(),
                    )
                }
                ("valid-after", Some(value)) => {
                    trusted.valid_after = Some(parse_time(value)?);
                }
                ("valid-before" | "expiry-time", Some(value)) => {
                    let time = parse_time(value)?;
                    trusted.valid_before =
                        Some(trusted.valid_before.map_or(time, |t: u64| t.min(time)));
                }
                // Principals, and options that concern logins, not signatures.
                _ => {}
            }
        }
        Ok(trusted)
    }

    fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

/// The options of a line and its key: the key starts at the first field from which the rest
/// of the line parses as one (`type base64 [comment]`); the fields before it are principals
/// and options.
fn split_key(line: &str) -> Result<(Vec<&str>, PublicKey), String> {
    let mut rest = line;
    let mut before: Vec<&str> = Vec::new();
    loop {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            return Err(
                "no SSH public key found (expected `[options] ssh-ed25519 AAAA… [comment]`)"
                    .to_owned(),
            );
        }
        if let Ok(key) = PublicKey::from_openssh(trimmed) {
            let options = before.iter().flat_map(|f| split_options(f)).collect();
            return Ok((options, key));
        }
        let end = field_end(trimmed);
        before.push(&trimmed[..end]);
        rest = &trimmed[end..];
    }
}

/// The length of the first whitespace-separated field, quotes kept together.
fn field_end(text: &str) -> usize {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return i,
            _ => {}
        }
    }
    text.len()
}

/// Comma-separated options, quotes kept together.
fn split_options(field: &str) -> Vec<&str> {
    let mut options = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in field.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                options.push(&field[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    options.push(&field[start..]);
    options.retain(|o| !o.is_empty());
    options
}

/// `YYYYMMDD[HHMM[SS]][Z]` as seconds since the Unix epoch, read as UTC.
fn parse_time(value: &str) -> Result<u64, String> {
    let digits = value.strip_suffix(['Z', 'z']).unwrap_or(value);
    let bad = || format!("{value:?} is not a time of the form YYYYMMDD[HHMM[SS]]");
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> u64 {
        digits.get(range).and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    let (year, month, day) = (number(0..4), number(4..6), number(6..8));
    let (hour, minute, second) = (number(8..10), number(10..12), number(12..14));
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 59
        || year < 1970
    {
        return Err(bad());
    }
    Ok(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// algorithm), for years from 1970.
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let shifted_month = (month + 9) % 12;
    let day_of_year = (153 * shifted_month + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Verifies an armored SSH signature over `payload`.
pub(super) fn verify(
    payload: &[u8],
    armored: &[u8],
    keys: &TrustedKeys,
    now: u64,
) -> Result<Signer, VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        method: Method::Ssh,
        reason,
    };
    let signature =
        SshSig::from_pem(armored).map_err(|e| malformed(super::bounded_reason(&e.to_string())))?;
    if signature.namespace() != GIT_NAMESPACE {
        return Err(VerifyError::WrongNamespace {
            namespace: signature.namespace().chars().take(64).collect(),
        });
    }
    let signed_by = signature.public_key();
    let fingerprint = signed_by.fingerprint(HashAlg::Sha256).to_string();
    let mut candidates = keys
        .ssh
        .iter()
        .filter(|k| k.key.key_data() == signed_by)
        .peekable();
    if candidates.peek().is_none() {
        return Err(VerifyError::UntrustedKey {
            method: Method::Ssh,
            fingerprint,
        });
    }
    // The same key may be listed more than once with different options: any line that allows
    // this signature will do; otherwise the first refusal is reported.
    let mut refusal = None;
    for trusted in candidates {
        match check_options(trusted, now) {
            Ok(()) => {
                trusted
                    .key
                    .verify(GIT_NAMESPACE, payload, &signature)
                    .map_err(|_| VerifyError::BadSignature {
                        method: Method::Ssh,
                        fingerprint: trusted.fingerprint(),
                    })?;
                let comment = trusted.key.comment().trim();
                return Ok(Signer {
                    method: Method::Ssh,
                    fingerprint: trusted.fingerprint(),
                    primary_fingerprint: None,
                    entry: trusted.entry.clone(),
                    identity: (!comment.is_empty()).then(|| comment.chars().take(256).collect()),
                });
            }
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    Err(refusal.unwrap_or(VerifyError::UntrustedKey {
        method: Method::Ssh,
        fingerprint,
    }))
}

/// Whether a trusted line's options let it sign a git object now.
fn check_options(trusted: &TrustedSshKey, now: u64) -> Result<(), VerifyError> {
    if let Some(namespaces) = &trusted.namespaces {
        if !namespaces.iter().any(|n| n == GIT_NAMESPACE) {
            return Err(VerifyError::NotForSigning {
                method: Method::Ssh,
                fingerprint: trusted.fingerprint(),
                why: "its namespaces option does not list git",
            });
        }
    }
    if let Some(before) = trusted.valid_before {
        if now >= before {
            return Err(VerifyError::ExpiredKey {
                method: Method::Ssh,
                fingerprint: trusted.fingerprint(),
                expired: before,
            });
        }
    }
    if let Some(after) = trusted.valid_after {
        if now < after {
            return Err(VerifyError::NotYetValid {
                method: Method::Ssh,
                fingerprint: trusted.fingerprint(),
                valid_after: after,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfE4HjyHPyAbMoaVUAbl9xJb6eJD9PyTfBOXjrnMUGM";

    #[test]
    fn options_and_principals_are_read_around_the_key() {
        let plain = TrustedSshKey::parse_line("a.sshpub", &format!("{KEY} alice")).expect("plain");
        assert_eq!(plain.key.comment(), "alice");
        assert!(plain.namespaces.is_none());

        let signers = TrustedSshKey::parse_line(
            "a.sshpub",
            &format!("alice@example.com,bob@example.com namespaces=\"git,file\",valid-before=\"20300101\" {KEY}"),
        )
        .expect("allowed_signers");
        assert_eq!(
            signers.namespaces,
            Some(vec!["git".to_owned(), "file".to_owned()])
        );
        assert_eq!(signers.valid_before, Some(1_893_456_000));

        let authorized = TrustedSshKey::parse_line(
            "a.sshpub",
            &format!("no-pty,expiry-time=\"202001020304\" {KEY} bob"),
        )
        .expect("authorized_keys");
        assert_eq!(authorized.valid_before, Some(1_577_934_240));

        let refused = TrustedSshKey::parse_line("a.sshpub", &format!("cert-authority {KEY}"));
        assert!(refused.expect_err("refused").contains("cert-authority"));
        let garbage = TrustedSshKey::parse_line("a.sshpub", "ssh-ed25519 notbase64");
        assert!(garbage.expect_err("refused").contains("no SSH public key"));
    }

    #[test]
    fn times_are_read_as_utc() {
        assert_eq!(parse_time("19700101"), Ok(0));
        assert_eq!(parse_time("20000229123456Z"), Ok(951_827_696));
        assert!(parse_time("2000022912").is_err());
        assert!(parse_time("20001301").is_err());
    }
}
