//! Real signatures made by ssh-keygen and GnuPG (`testdata/sigverify/generate.sh`).

use std::time::{Duration, SystemTime};

use super::*;
use crate::gitsig::Signed;

/// 2024-06-01, after every vector was made and after the expiring key expired.
const NOW: u64 = 1_717_200_000;

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/testdata/sigverify/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("test vector")
}

fn text(name: &str) -> String {
    String::from_utf8(data(name))
        .expect("text")
        .trim()
        .to_owned()
}

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
}

fn keys(entries: &[(&str, &str)]) -> TrustedKeys {
    let contents: Vec<(String, Vec<u8>)> = entries
        .iter()
        .map(|(name, file)| ((*name).to_owned(), data(file)))
        .collect();
    TrustedKeys::from_entries(contents.iter().map(|(n, c)| (n.as_str(), c.as_slice())))
        .expect("keys")
}

fn signed(signature: &str) -> Signed {
    Signed {
        payload: data("payload"),
        signature: data(signature),
    }
}

fn check(signature: &str, trusted: &TrustedKeys) -> Result<Signer, VerifyError> {
    verify(Some(&signed(signature)), trusted, at(NOW))
}

#[test]
fn a_trusted_ssh_key_verifies_ed25519_and_rsa_signatures() {
    let trusted = keys(&[
        ("alice.sshpub", "ssh-alice.pub"),
        ("rsa.sshpub", "ssh-rsa.pub"),
    ]);
    let signer = check("ssh-alice.sig", &trusted).expect("verified");
    assert_eq!(signer.method, Method::Ssh);
    assert_eq!(signer.fingerprint, text("ssh-alice.fpr"));
    assert_eq!(signer.entry, "alice.sshpub");
    assert_eq!(signer.identity.as_deref(), Some("alice@example.com"));
    assert_eq!(
        check("ssh-rsa.sig", &trusted).expect("verified").entry,
        "rsa.sshpub"
    );
}

#[test]
fn ssh_signatures_by_other_keys_for_other_content_or_namespaces_fail() {
    let trusted = keys(&[("alice.sshpub", "ssh-alice.pub")]);
    let untrusted = check("ssh-mallory.sig", &trusted).expect_err("untrusted");
    assert!(
        matches!(&untrusted, VerifyError::UntrustedKey { fingerprint, .. } if *fingerprint == text("ssh-mallory.fpr")),
        "{untrusted:?}"
    );
    let other = Signed {
        payload: data("other-payload"),
        signature: data("ssh-alice.sig"),
    };
    let bad = verify(Some(&other), &trusted, at(NOW)).expect_err("other content");
    assert!(matches!(bad, VerifyError::BadSignature { .. }), "{bad:?}");
    assert!(bad.to_string().contains(&text("ssh-alice.fpr")), "{bad}");
    let namespace = check("ssh-alice-file-namespace.sig", &trusted).expect_err("namespace");
    assert!(
        matches!(namespace, VerifyError::WrongNamespace { .. }),
        "{namespace:?}"
    );
}

#[test]
fn ssh_key_options_bound_what_a_key_signs() {
    let line = String::from_utf8(data("ssh-alice.pub")).expect("text");
    let entries = |options: &str| format!("{options} {line}");
    let expired = entries("valid-before=\"20240101\"");
    let trusted = TrustedKeys::from_entries([("alice.sshpub", expired.as_bytes())]).expect("keys");
    let error = check("ssh-alice.sig", &trusted).expect_err("expired");
    assert!(
        matches!(
            error,
            VerifyError::ExpiredKey {
                expired: 1_704_067_200,
                ..
            }
        ),
        "{error:?}"
    );
    let files_only = entries("namespaces=\"file\"");
    let trusted =
        TrustedKeys::from_entries([("alice.sshpub", files_only.as_bytes())]).expect("keys");
    let error = check("ssh-alice.sig", &trusted).expect_err("not for git");
    assert!(
        matches!(error, VerifyError::NotForSigning { .. }),
        "{error:?}"
    );
    let later = entries("alice@example.com valid-after=\"20300101\"");
    let trusted = TrustedKeys::from_entries([("alice.sshpub", later.as_bytes())]).expect("keys");
    let error = check("ssh-alice.sig", &trusted).expect_err("not yet valid");
    assert!(
        matches!(error, VerifyError::NotYetValid { .. }),
        "{error:?}"
    );
}

#[test]
fn a_trusted_openpgp_key_verifies_with_its_primary_key_or_a_signing_subkey() {
    let trusted = keys(&[("bob.asc", "pgp-bob.asc"), ("carol.asc", "pgp-carol.asc")]);
    let bob = check("pgp-bob.sig", &trusted).expect("verified");
    assert_eq!(bob.method, Method::OpenPgp);
    assert_eq!(bob.fingerprint, text("pgp-bob.fpr"));
    assert_eq!(bob.primary_fingerprint, None);
    assert_eq!(bob.identity.as_deref(), Some("Bob <bob@example.com>"));
    for (signature, subkey) in [
        ("pgp-carol-rsa-sub.sig", "pgp-carol-sub1.fpr"),
        ("pgp-carol-ed-sub.sig", "pgp-carol-sub2.fpr"),
    ] {
        let carol = check(signature, &trusted).expect("verified");
        assert_eq!(carol.fingerprint, text(subkey));
        assert_eq!(carol.primary_fingerprint, Some(text("pgp-carol.fpr")));
        assert_eq!(carol.entry, "carol.asc");
    }
}

#[test]
fn openpgp_signatures_by_untrusted_keys_or_over_other_content_fail() {
    let trusted = keys(&[("bob.asc", "pgp-bob.asc")]);
    let error = check("pgp-mallory.sig", &trusted).expect_err("untrusted");
    assert!(
        matches!(&error, VerifyError::UntrustedKey { fingerprint, .. } if *fingerprint == text("pgp-mallory.fpr")),
        "{error:?}"
    );
    let other = Signed {
        payload: data("other-payload"),
        signature: data("pgp-bob.sig"),
    };
    let error = verify(Some(&other), &trusted, at(NOW)).expect_err("other content");
    assert!(
        matches!(&error, VerifyError::BadSignature { fingerprint, .. } if *fingerprint == text("pgp-bob.fpr")),
        "{error:?}"
    );
    let error = check("pgp-bob-sha1.sig", &trusted).expect_err("weak");
    assert!(matches!(error, VerifyError::WeakHash { .. }), "{error:?}");
}

#[test]
fn expired_and_revoked_openpgp_keys_sign_nothing() {
    let dave = keys(&[("dave.asc", "pgp-dave-expiring.asc")]);
    // 2024-01-15, before the key expired (GnuPG sets 2024-02-01 at noon UTC).
    verify(Some(&signed("pgp-dave.sig")), &dave, at(1_705_276_800)).expect("valid then");
    let error = check("pgp-dave.sig", &dave).expect_err("expired");
    assert!(
        matches!(&error, VerifyError::ExpiredKey { fingerprint, expired: 1_706_788_800, .. } if *fingerprint == text("pgp-dave.fpr")),
        "{error:?}"
    );

    let erin = keys(&[("erin.asc", "pgp-erin.asc")]);
    check("pgp-erin.sig", &erin).expect("not revoked yet");
    let erin = keys(&[("erin.asc", "pgp-erin-revoked.asc")]);
    let error = check("pgp-erin.sig", &erin).expect_err("revoked");
    assert!(matches!(error, VerifyError::RevokedKey { .. }), "{error:?}");

    // One subkey revoked: its signatures fail, the other subkey's still hold.
    let carol = keys(&[("carol.asc", "pgp-carol-sub1-revoked.asc")]);
    let error = check("pgp-carol-rsa-sub.sig", &carol).expect_err("revoked subkey");
    assert!(
        matches!(&error, VerifyError::RevokedKey { fingerprint, .. } if *fingerprint == text("pgp-carol-sub1.fpr")),
        "{error:?}"
    );
    check("pgp-carol-ed-sub.sig", &carol).expect("the other subkey");
}

#[test]
fn unsigned_unknown_and_garbled_signatures_are_refused() {
    let trusted = keys(&[
        ("bob.asc", "pgp-bob.asc"),
        ("alice.sshpub", "ssh-alice.pub"),
    ]);
    assert!(matches!(
        verify(None, &trusted, at(NOW)),
        Err(VerifyError::Unsigned)
    ));
    let x509 = Signed {
        payload: data("payload"),
        signature: b"-----BEGIN SIGNED MESSAGE-----\nMII=\n-----END SIGNED MESSAGE-----\n".to_vec(),
    };
    assert!(matches!(
        verify(Some(&x509), &trusted, at(NOW)),
        Err(VerifyError::UnknownFormat)
    ));
    for armor in ["PGP", "SSH"] {
        let garbled = Signed {
            payload: data("payload"),
            signature: format!(
                "-----BEGIN {armor} SIGNATURE-----\n!!!!\n-----END {armor} SIGNATURE-----\n"
            )
            .into_bytes(),
        };
        let error = verify(Some(&garbled), &trusted, at(NOW)).expect_err("garbled");
        assert!(matches!(error, VerifyError::Malformed { .. }), "{error:?}");
    }
    let huge = Signed {
        payload: Vec::new(),
        signature: vec![b'A'; MAX_SIGNATURE_BYTES + 1],
    };
    assert!(matches!(
        verify(Some(&huge), &trusted, at(NOW)),
        Err(VerifyError::TooLarge)
    ));
}

#[test]
fn a_keys_secret_names_its_entries_by_format_and_holds_a_key() {
    let error = TrustedKeys::from_entries([("alice.pub", b"ssh-ed25519 AAAA".as_slice())])
        .expect_err("unknown entry");
    assert!(error.to_string().contains("alice.pub"), "{error}");
    let error =
        TrustedKeys::from_entries([("bob.asc", b"not a key".as_slice())]).expect_err("not armored");
    assert!(error.to_string().contains("bob.asc"), "{error}");
    let error = TrustedKeys::from_entries([("a.sshpub", b"# only a comment\n".as_slice())])
        .expect_err("no key");
    assert!(error.to_string().contains("no SSH public key"), "{error}");
    assert!(matches!(
        TrustedKeys::from_entries(std::iter::empty()),
        Err(KeyringError::Empty)
    ));
    let large = vec![b'#'; MAX_ENTRY_BYTES + 1];
    assert!(matches!(
        TrustedKeys::from_entries([("a.sshpub", large.as_slice())]),
        Err(KeyringError::TooLarge { .. })
    ));
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    fn all_keys() -> TrustedKeys {
        keys(&[
            ("alice.sshpub", "ssh-alice.pub"),
            ("bob.asc", "pgp-bob.asc"),
            ("carol.asc", "pgp-carol.asc"),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// A real signature with bytes changed is refused (or, when the change falls in the
        /// armor's slack, still verified), never a panic.
        #[test]
        fn altered_signatures_are_answered(
            which in 0usize..3,
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let trusted = all_keys();
            let file = ["ssh-alice.sig", "pgp-bob.sig", "pgp-carol-rsa-sub.sig"][which];
            let mut altered = signed(file);
            let index = at.index(altered.signature.len());
            altered.signature[index] = byte;
            if let Ok(signer) = verify(Some(&altered), &trusted, at_now()) {
                prop_assert!(!signer.fingerprint.is_empty());
            }
        }

        /// Arbitrary bytes as keys or as a signature are answered with an error.
        #[test]
        fn arbitrary_bytes_are_refused(data in prop::collection::vec(any::<u8>(), 0..2048)) {
            let _ = TrustedKeys::from_entries([("x.asc", data.as_slice())]);
            let _ = TrustedKeys::from_entries([("x.sshpub", data.as_slice())]);
            for armor in ["PGP", "SSH"] {
                let mut signature = format!("-----BEGIN {armor} SIGNATURE-----\n").into_bytes();
                signature.extend_from_slice(&data);
                signature.extend_from_slice(format!("\n-----END {armor} SIGNATURE-----\n").as_bytes());
                let garbled = Signed { payload: data.clone(), signature };
                prop_assert!(verify(Some(&garbled), &all_keys(), at_now()).is_err());
            }
        }
    }

    fn at_now() -> SystemTime {
        at(NOW)
    }
}
