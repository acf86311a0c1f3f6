//! One value sealed under a data key: ChaCha20-Poly1305 with a random 96-bit nonce.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

use crate::envelope::DataKey;
use crate::error::{Error, Result};

const TAG_LEN: usize = 16;

fn key(data_key: &DataKey) -> LessSafeKey {
    // CHACHA20_POLY1305 takes exactly 32 bytes, which DataKey always is.
    let unbound = UnboundKey::new(&CHACHA20_POLY1305, data_key.as_bytes())
        .unwrap_or_else(|_| unreachable!("data keys are 32 bytes"));
    LessSafeKey::new(unbound)
}

/// Seals `plaintext` and returns `base64(nonce ‖ ciphertext ‖ tag)`.
pub(crate) fn seal(data_key: &DataKey, aad: &[u8], plaintext: &[u8]) -> Result<String> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| Error::Random)?;
    Ok(seal_with_nonce(data_key, nonce, aad, plaintext))
}

/// Deterministic core of [`seal`], exposed for the known-answer vectors.
pub(crate) fn seal_with_nonce(
    data_key: &DataKey,
    nonce: [u8; NONCE_LEN],
    aad: &[u8],
    plaintext: &[u8],
) -> String {
    let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN));
    buf.extend_from_slice(&nonce);
    buf.extend_from_slice(plaintext);
    let (head, body) = buf.split_at_mut(NONCE_LEN);
    let _ = head;
    let tag = key(data_key)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), body)
        .unwrap_or_else(|_| unreachable!("in-memory ChaCha20-Poly1305 sealing cannot fail"));
    buf.extend_from_slice(tag.as_ref());
    B64.encode(buf.as_slice())
}

/// Why a value did not open.
pub(crate) enum OpenFailure {
    /// Not base64, or too short to hold a nonce and a tag.
    Encoding(&'static str),
    /// The AEAD tag did not verify under this key and associated data.
    Authentication,
}

/// Opens `base64(nonce ‖ ciphertext ‖ tag)`.
pub(crate) fn open(
    data_key: &DataKey,
    aad: &[u8],
    encoded: &str,
) -> std::result::Result<Zeroizing<Vec<u8>>, OpenFailure> {
    let mut raw = Zeroizing::new(
        B64.decode(encoded)
            .map_err(|_| OpenFailure::Encoding("the ciphertext is not valid base64"))?,
    );
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenFailure::Encoding(
            "the ciphertext is too short to hold a nonce and tag",
        ));
    }
    let nonce: [u8; NONCE_LEN] = raw[..NONCE_LEN]
        .try_into()
        .map_err(|_| OpenFailure::Encoding("bad nonce"))?;
    let plaintext_len = {
        let opened = key(data_key)
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut raw[NONCE_LEN..],
            )
            .map_err(|_| OpenFailure::Authentication)?;
        opened.len()
    };
    Ok(Zeroizing::new(
        raw[NONCE_LEN..NONCE_LEN + plaintext_len].to_vec(),
    ))
}

/// Checks the encoding of a value without a key: base64 and long enough.
pub(crate) fn check_encoding(encoded: &str) -> std::result::Result<(), &'static str> {
    let raw = B64
        .decode(encoded)
        .map_err(|_| "the ciphertext is not valid base64")?;
    if raw.len() < NONCE_LEN + TAG_LEN {
        return Err("the ciphertext is too short to hold a nonce and tag");
    }
    Ok(())
}
