//! OpenPGP signatures (`gpg.format openpgp`, git's default), with rPGP.
//!
//! rPGP parses keys and checks signatures; which key may sign, and until when, is decided
//! here, as GnuPG decides it for `git verify-commit`:
//! - a primary key counts only with a valid self-signature (a user ID certification or a
//!   direct-key signature); its newest one gives its expiry and key flags;
//! - a subkey counts only with a valid binding signature; the newest gives its expiry and
//!   flags, and a subkey that may sign needs a valid back-signature (primary key binding);
//! - a valid revocation revokes the key (a primary key's revokes its subkeys too);
//! - expiry is judged at the time of verification, as GnuPG does: after it, the key must be
//!   extended (`gpg --quick-set-expire`) and the trusted keys updated.

use std::io::Cursor;

use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::crypto::hash::HashAlgorithm;
use pgp::packet::{PublicKey, PublicSubkey, Signature, SignatureType, SubpacketData};
use pgp::types::{Fingerprint, KeyDetails, KeyId, Tag, VerifyingKey};

use super::keyring::MAX_KEYS_PER_ENTRY;
use super::{Method, Signer, TrustedKeys, VerifyError};

/// One trusted OpenPGP key (a certificate) with what its self-signatures say.
#[derive(Debug)]
pub(super) struct Certificate {
    entry: String,
    primary: Component<PublicKey>,
    subkeys: Vec<Component<PublicSubkey>>,
    user_id: Option<String>,
}

/// A primary key or a subkey, as its valid self-signatures describe it.
#[derive(Debug)]
struct Component<K> {
    key: K,
    fingerprint: Fingerprint,
    key_id: KeyId,
    /// Unix time of its creation.
    created: u64,
    /// Unix time from which it is expired.
    expires: Option<u64>,
    revoked: bool,
    /// Whether its flags let it sign data.
    signs: bool,
}

impl Certificate {
    /// The certificates of one `*.asc` entry: every armored public key block in it (one
    /// export, or several concatenated).
    pub(super) fn parse_entry(entry: &str, content: &[u8]) -> Result<Vec<Self>, String> {
        const BEGIN: &[u8] = b"-----BEGIN PGP PUBLIC KEY BLOCK-----";
        let starts: Vec<usize> = content
            .windows(BEGIN.len())
            .enumerate()
            .filter(|(_, w)| *w == BEGIN)
            .map(|(at, _)| at)
            .collect();
        if starts.is_empty() {
            return Err("not an armored OpenPGP public key (gpg --armor --export)".to_owned());
        }
        let mut certificates = Vec::new();
        for (n, &start) in starts.iter().enumerate() {
            let end = starts.get(n + 1).copied().unwrap_or(content.len());
            let (parsed, _headers) = SignedPublicKey::from_armor_many(Cursor::new(
                &content[start..end],
            ))
            .map_err(|e| {
                format!(
                    "not an armored OpenPGP public key: {}",
                    super::bounded_reason(&e.to_string())
                )
            })?;
            for cert in parsed {
                if certificates.len() >= MAX_KEYS_PER_ENTRY {
                    return Err(format!("more than {MAX_KEYS_PER_ENTRY} keys"));
                }
                let cert = cert.map_err(|e| {
                    format!(
                        "an OpenPGP public key does not parse: {}",
                        super::bounded_reason(&e.to_string())
                    )
                })?;
                certificates.push(Certificate::evaluate(entry, &cert)?);
            }
        }
        if certificates.is_empty() {
            return Err("no OpenPGP public key in it".to_owned());
        }
        Ok(certificates)
    }

    fn evaluate(entry: &str, cert: &SignedPublicKey) -> Result<Self, String> {
        let primary = &cert.primary_key;
        let fingerprint = primary.fingerprint();
        // Self-certifications of user IDs that the primary key made (third-party ones do not
        // verify with it and are left out), and direct-key signatures.
        let mut self_signatures: Vec<&Signature> = Vec::new();
        let mut user_id = None;
        for user in &cert.details.users {
            let valid: Vec<&Signature> = user
                .signatures
                .iter()
                .filter(|s| s.is_certification() && s.typ() != Some(SignatureType::CertRevocation))
                .filter(|s| {
                    s.verify_certification(primary, Tag::UserId, &user.id)
                        .is_ok()
                })
                .collect();
            if valid.is_empty() {
                continue;
            }
            let is_primary = valid.iter().any(|s| s.is_primary());
            if user_id.is_none() || is_primary {
                let id = String::from_utf8_lossy(user.id.id());
                user_id = Some(id.chars().take(256).collect::<String>());
            }
            self_signatures.extend(valid);
        }
        self_signatures.extend(
            cert.details
                .direct_signatures
                .iter()
                .filter(|s| s.verify_key(primary).is_ok()),
        );
        let Some(latest) = newest(&self_signatures) else {
            return Err(format!(
                "the key {fingerprint:X} has no valid self-signature"
            ));
        };
        let created = u64::from(primary.created_at().as_secs());
        let revoked = cert.details.revocation_signatures.iter().any(|s| {
            s.typ() == Some(SignatureType::KeyRevocation) && s.verify_key(primary).is_ok()
        });
        let primary_component = Component {
            key: primary.clone(),
            fingerprint: fingerprint.clone(),
            key_id: primary.legacy_key_id(),
            created,
            expires: expiry(created, latest),
            revoked,
            // A self-signature without key flags (older keys) leaves the primary key able to
            // sign, as GnuPG does.
            signs: !has_key_flags(latest) || latest.key_flags().sign(),
        };
        let mut subkeys = Vec::new();
        for sub in &cert.public_subkeys {
            let bindings: Vec<&Signature> = sub
                .signatures
                .iter()
                .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
                .filter(|s| s.verify_subkey_binding(primary, &sub.key).is_ok())
                .collect();
            let Some(binding) = newest(&bindings) else {
                // Unbound: it is not part of the key, whatever it claims.
                continue;
            };
            let revoked = sub.signatures.iter().any(|s| {
                s.typ() == Some(SignatureType::SubkeyRevocation)
                    && s.verify_subkey_binding(primary, &sub.key).is_ok()
            });
            // A signing subkey must have signed the primary key back, or anyone could bind
            // someone else's signing key to their own primary key.
            let back_signed = binding
                .embedded_signature()
                .is_some_and(|back| back.verify_primary_key_binding(&sub.key, primary).is_ok());
            let created = u64::from(sub.key.created_at().as_secs());
            subkeys.push(Component {
                key: sub.key.clone(),
                fingerprint: sub.key.fingerprint(),
                key_id: sub.key.legacy_key_id(),
                created,
                expires: expiry(created, binding),
                revoked,
                signs: binding.key_flags().sign() && back_signed,
            });
        }
        Ok(Certificate {
            entry: entry.to_owned(),
            primary: primary_component,
            subkeys,
            user_id,
        })
    }
}

/// The newest signature (by creation time; the last listed among equals).
fn newest<'a>(signatures: &[&'a Signature]) -> Option<&'a Signature> {
    signatures
        .iter()
        .copied()
        .max_by_key(|s| s.created().map_or(0, |t| t.as_secs()))
}

/// When a key created at `created` expires, by the self-signature that describes it.
fn expiry(created: u64, signature: &Signature) -> Option<u64> {
    signature
        .key_expiration_time()
        .map(|d| u64::from(d.as_secs()))
        .filter(|&seconds| seconds > 0)
        .map(|seconds| created + seconds)
}

fn has_key_flags(signature: &Signature) -> bool {
    signature.config().is_some_and(|c| {
        c.hashed_subpackets()
            .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
    })
}

/// Verifies an armored OpenPGP detached signature over `payload`.
pub(super) fn verify(
    payload: &[u8],
    armored: &[u8],
    keys: &TrustedKeys,
    now: u64,
) -> Result<Signer, VerifyError> {
    let malformed = |reason: String| VerifyError::Malformed {
        method: Method::OpenPgp,
        reason,
    };
    let (detached, _headers) = DetachedSignature::from_armor_single(Cursor::new(armored))
        .map_err(|e| malformed(super::bounded_reason(&e.to_string())))?;
    let signature = detached.signature;
    if !matches!(
        signature.typ(),
        Some(SignatureType::Binary | SignatureType::Text)
    ) {
        return Err(malformed("it is not a signature over data".to_owned()));
    }
    if let Some(hash @ (HashAlgorithm::Md5 | HashAlgorithm::Sha1 | HashAlgorithm::Ripemd160)) =
        signature.hash_alg()
    {
        return Err(VerifyError::WeakHash {
            hash: format!("{hash:?}"),
        });
    }
    let fingerprints = signature.issuer_fingerprint();
    let key_ids = signature.issuer_key_id();
    let names = |fingerprint: &Fingerprint, key_id: &KeyId| {
        fingerprints.contains(&fingerprint) || key_ids.contains(&key_id)
    };
    let claimed = fingerprints
        .first()
        .map(|f| format!("{f:X}"))
        .or_else(|| key_ids.first().map(|k| hex_upper(k.as_ref())))
        .unwrap_or_else(|| "(none named)".to_owned());
    let created = signature.created().map(|t| u64::from(t.as_secs()));
    let expires = signature
        .signature_expiration_time()
        .map(|d| u64::from(d.as_secs()))
        .filter(|&s| s > 0);
    // Every trusted (sub)key the signature names, those named by fingerprint first: a 64-bit
    // key id may be shared, and an unhashed issuer packet may name another key. The first
    // that made the signature and may have wins; otherwise the first refusal is reported.
    let mut candidates: Vec<(bool, &Certificate, Option<&Component<PublicSubkey>>)> = Vec::new();
    for cert in &keys.openpgp {
        if names(&cert.primary.fingerprint, &cert.primary.key_id) {
            let by_fingerprint = fingerprints.contains(&&cert.primary.fingerprint);
            candidates.push((by_fingerprint, cert, None));
        }
        for sub in &cert.subkeys {
            if names(&sub.fingerprint, &sub.key_id) {
                candidates.push((fingerprints.contains(&&sub.fingerprint), cert, Some(sub)));
            }
        }
    }
    candidates.sort_by_key(|(by_fingerprint, _, _)| !by_fingerprint);
    let mut refusal = None;
    for (_, cert, sub) in candidates {
        let times = (created, expires, now);
        let outcome = match sub {
            None => check(&cert.primary, None, payload, &signature, times)
                .map(|()| signer(cert, &cert.primary.fingerprint, None)),
            Some(sub) => check(sub, Some(&cert.primary), payload, &signature, times)
                .map(|()| signer(cert, &sub.fingerprint, Some(&cert.primary.fingerprint))),
        };
        match outcome {
            Ok(signer) => return Ok(signer),
            Err(e) => {
                refusal.get_or_insert(e);
            }
        }
    }
    Err(refusal.unwrap_or(VerifyError::UntrustedKey {
        method: Method::OpenPgp,
        fingerprint: claimed,
    }))
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn signer(cert: &Certificate, fingerprint: &Fingerprint, primary: Option<&Fingerprint>) -> Signer {
    Signer {
        method: Method::OpenPgp,
        fingerprint: format!("{fingerprint:X}"),
        primary_fingerprint: primary.map(|p| format!("{p:X}")),
        entry: cert.entry.clone(),
        identity: cert.user_id.clone(),
    }
}

/// Whether `component` (of the primary key `primary`, for a subkey) made `signature` over
/// `payload`, and may have: not revoked, not expired at `now`, allowed to sign, and the
/// signature dated within the key's life.
fn check<K: VerifyingKey>(
    component: &Component<K>,
    primary: Option<&Component<PublicKey>>,
    payload: &[u8],
    signature: &Signature,
    (created, expires, now): (Option<u64>, Option<u64>, u64),
) -> Result<(), VerifyError> {
    let fingerprint = format!("{:X}", component.fingerprint);
    signature
        .verify(&component.key, payload)
        .map_err(|_| VerifyError::BadSignature {
            method: Method::OpenPgp,
            fingerprint: fingerprint.clone(),
        })?;
    if component.revoked || primary.is_some_and(|p| p.revoked) {
        return Err(VerifyError::RevokedKey {
            method: Method::OpenPgp,
            fingerprint,
        });
    }
    let expired = [component.expires, primary.and_then(|p| p.expires)]
        .into_iter()
        .flatten()
        .min();
    if let Some(expired) = expired.filter(|&at| now >= at) {
        return Err(VerifyError::ExpiredKey {
            method: Method::OpenPgp,
            fingerprint,
            expired,
        });
    }
    if !component.signs {
        return Err(VerifyError::NotForSigning {
            method: Method::OpenPgp,
            fingerprint,
            why: "its key flags do not allow signing (or, for a subkey, its back-signature is missing)",
        });
    }
    let bad_time = |why| VerifyError::BadTime {
        method: Method::OpenPgp,
        fingerprint: fingerprint.clone(),
        why,
    };
    let created = created.ok_or_else(|| bad_time("has no creation time"))?;
    if created < component.created {
        return Err(bad_time("is dated before the key was created"));
    }
    if expires.is_some_and(|seconds| now >= created + seconds) {
        return Err(bad_time("has expired"));
    }
    Ok(())
}
