//! The signed payload and the signature of a raw Git commit or tag object, exactly as git
//! computes them, for verification by key (see `docs/plans/signatures.md`).
//!
//! A commit's signature is the value of its `gpgsig` header (`gpgsig-sha256` in a SHA-256
//! repository), whose continuation lines start with one space; the signed payload is the
//! object with *every* header whose name starts with `gpgsig` removed, continuation lines
//! included, as git's `parse_buffer_signed_by_header` does. Keeping any other such header in
//! the payload would let anyone add one to a validly signed commit and have a good signature
//! reported as bad. A tag's signature is the armored block at its end; the payload is what
//! comes before it.

/// A signed object split in two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The bytes that were signed.
    pub payload: Vec<u8>,
    /// The armored signature (OpenPGP or SSH), newline-terminated.
    pub signature: Vec<u8>,
}

/// The armor lines a tag's trailing signature starts with.
const SIGNATURE_BEGINNINGS: &[&[u8]] = &[
    b"-----BEGIN PGP SIGNATURE-----",
    b"-----BEGIN SSH SIGNATURE-----",
    b"-----BEGIN SIGNED MESSAGE-----",
];

/// The payload and signature of a raw commit object (its bytes after the `commit <len>\0`
/// header), or `None` when it is not signed.
pub fn split_commit(raw: &[u8]) -> Option<Signed> {
    let mut payload = Vec::with_capacity(raw.len());
    let mut signature: Option<Vec<u8>> = None;
    let mut in_signature_header = false;
    let mut keeping_signature = false;
    let mut rest = raw;
    let mut in_headers = true;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        let (line, tail) = rest.split_at(end);
        rest = tail;
        if !in_headers {
            payload.extend_from_slice(line);
            continue;
        }
        if line == b"\n" {
            // The end of the headers: the message follows, all of it signed.
            in_headers = false;
            in_signature_header = false;
            payload.extend_from_slice(line);
            continue;
        }
        if let Some(continuation) = line.strip_prefix(b" ") {
            if in_signature_header {
                if keeping_signature {
                    if let Some(sig) = signature.as_mut() {
                        sig.extend_from_slice(continuation);
                    }
                }
                continue;
            }
            payload.extend_from_slice(line);
            continue;
        }
        let name_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        let name = &line[..name_end];
        if name.starts_with(b"gpgsig") {
            in_signature_header = true;
            let is_signature = name == b"gpgsig" || name == b"gpgsig-sha256";
            keeping_signature = is_signature && signature.is_none();
            if keeping_signature {
                let value = line.get(name_end + 1..).unwrap_or_default();
                signature = Some(value.to_vec());
            }
            continue;
        }
        in_signature_header = false;
        payload.extend_from_slice(line);
    }
    let mut signature = signature?;
    if !signature.ends_with(b"\n") {
        signature.push(b'\n');
    }
    Some(Signed { payload, signature })
}

/// The payload and signature of a raw tag object, or `None` when it is not signed.
pub fn split_tag(raw: &[u8]) -> Option<Signed> {
    // The last line that begins an armored block starts the signature.
    let mut start = None;
    let mut offset = 0;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        if SIGNATURE_BEGINNINGS.iter().any(|b| line.starts_with(b)) {
            start = Some(offset);
        }
        offset += line.len();
    }
    let start = start?;
    Some(Signed {
        payload: raw[..start].to_vec(),
        signature: raw[start..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIGNED_COMMIT: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
author A <a@example.com> 1700000000 +0000\n\
committer A <a@example.com> 1700000000 +0000\n\
gpgsig -----BEGIN SSH SIGNATURE-----\n \
U1NIU0lHAAAAAQ==\n \
-----END SSH SIGNATURE-----\n\
\n\
a message\n\
\n\
 with an indented line\n";

    #[test]
    fn a_commit_is_split_into_what_git_signed_and_its_signature() {
        let signed = split_commit(SIGNED_COMMIT).expect("signed");
        assert_eq!(
            signed.payload,
            b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
author A <a@example.com> 1700000000 +0000\n\
committer A <a@example.com> 1700000000 +0000\n\
\n\
a message\n\
\n\
 with an indented line\n"
                .to_vec()
        );
        assert_eq!(
            signed.signature,
            b"-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"
                .to_vec()
        );
    }

    #[test]
    fn a_commit_signed_by_git_splits_into_what_ssh_keygen_verifies() {
        let data = |name: &str| {
            std::fs::read(format!(
                "{}/testdata/gitsig/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("test vector")
        };
        let signed = split_commit(&data("ssh-commit.raw")).expect("signed");
        assert_eq!(signed.payload, data("ssh-commit.payload"));
        assert_eq!(signed.signature, data("ssh-commit.sig"));
    }

    #[test]
    fn every_gpgsig_header_leaves_the_payload_as_git_removes_them() {
        // A header someone added to a signed commit: git leaves it out of what it verifies,
        // so a good signature stays good.
        let mut tampered = SIGNED_COMMIT.to_vec();
        let at = tampered
            .windows(7)
            .position(|w| w == b"gpgsig ")
            .expect("header");
        tampered.splice(at..at, b"gpgsig-foo junk\n more junk\n".iter().copied());
        let signed = split_commit(&tampered).expect("signed");
        assert_eq!(signed, split_commit(SIGNED_COMMIT).expect("signed"));
    }

    #[test]
    fn unsigned_objects_have_no_signature() {
        let unsigned = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\
author A <a@example.com> 1700000000 +0000\n\
committer A <a@example.com> 1700000000 +0000\n\
\n\
gpgsig in the message is not a header\n";
        assert_eq!(split_commit(unsigned), None);
        assert_eq!(
            split_tag(b"object 00\ntype commit\ntag v1\n\nrelease\n"),
            None
        );
    }

    #[test]
    fn a_tag_is_split_at_its_trailing_signature() {
        let tag = b"object 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ntype commit\ntag v1\n\
tagger A <a@example.com> 1700000000 +0000\n\nrelease 1\n\
-----BEGIN PGP SIGNATURE-----\n\niQEz\n-----END PGP SIGNATURE-----\n";
        let signed = split_tag(tag).expect("signed");
        assert!(signed.payload.ends_with(b"release 1\n"));
        assert!(signed
            .signature
            .starts_with(b"-----BEGIN PGP SIGNATURE-----\n"));
        assert!(signed.signature.ends_with(b"-----END PGP SIGNATURE-----\n"));
    }
}
