//! The sealsync sealed-document format.
//!
//! A [`SealedSecret`] holds a Kubernetes Secret whose values are encrypted so that only the
//! holders of a recipient [`Identity`] can read them, and only at the scope, namespace, name
//! and data key they were sealed for. `docs/format.md` specifies the format byte for byte.
//!
//! - Each *envelope* is a random 256-bit data key, wrapped with [age] to every recipient
//!   together with the binding (scope, namespace, name) it was sealed for.
//! - Each *value* is ChaCha20-Poly1305 under a data key, with associated data
//!   `version ‖ scope ‖ namespace ‖ name ‖ data key name`.
//!
//! Sealing needs only public keys ([`SealedSecret::seal`], [`SealedSecret::merge`]);
//! [`SealedSecret::rewrap`] changes only envelopes; [`SealedSecret::rekey`] re-encrypts
//! every value under a fresh data key.
//!
//! [age]: https://age-encryption.org/v1

mod aead;
mod backup;
mod binding;
mod document;
mod envelope;
mod error;
mod keys;
mod kubeseal;
mod names;
mod secret;
mod sops;

pub use backup::{
    open_backup, parse_backup_text, seal_backup, BackupKey, BACKUP_HEADER, MAX_BACKUP_BYTES,
};
pub use binding::{Binding, Scope};
pub use document::{
    Envelope, ObjectMeta, OpenOptions, Opened, RecipientMismatch, SealedSecret, SealedSecretSpec,
    SealedSecretWire, Template, TemplateMeta, API_VERSION, KIND,
};
pub use error::{BindingField, BoxError, Error, Result};
pub use keys::{
    looks_like_identity, parse_identity_file, parse_recipients_file, Identity, KeyId, Recipient,
    MAX_IDENTITIES, MAX_IDENTITY_FILE_BYTES,
};
pub use kubeseal::{open_kubeseal_value, KubesealKey, MAX_KUBESEAL_KEYS, MAX_KUBESEAL_VALUE_BYTES};
pub use names::{is_dns_label, is_object_name, is_qualified_name};
pub use secret::{
    entry_location, validate_data_key, PlainSecret, SecretData, ValueFinder,
    LAST_APPLIED_ANNOTATION, MAX_ANNOTATION_BYTES, MAX_SECRET_BYTES, MAX_VALUES,
    MIN_EXPOSURE_SEARCH_BYTES,
};
pub use sops::{
    is_sops_value, open_sops_data_key, SopsDataKey, SopsMac, SopsValue, SOPS_DATA_KEY_BYTES,
};

/// Deterministic internals for the known-answer vectors. Not part of the stable API: only
/// with the `test-vectors` feature, which the crate's own tests enable.
#[cfg(feature = "test-vectors")]
#[doc(hidden)]
pub mod vectors {
    use crate::binding::Binding;
    use crate::envelope::DataKey;

    /// `lp(version) ‖ lp(scope) ‖ lp(namespace) ‖ lp(name) ‖ lp(key)`.
    pub fn value_aad(binding: &Binding, data_key_name: &str) -> Vec<u8> {
        binding.value_aad(data_key_name)
    }

    /// The envelope id derived from a data key.
    pub fn envelope_id(data_key: [u8; 32]) -> String {
        DataKey::from_bytes(data_key).envelope_id()
    }

    /// Seals one value with a fixed nonce.
    pub fn seal_value(data_key: [u8; 32], nonce: [u8; 12], aad: &[u8], plaintext: &[u8]) -> String {
        crate::aead::seal_with_nonce(&DataKey::from_bytes(data_key), nonce, aad, plaintext)
    }

    /// The age plaintext of an envelope: `data key ‖ encoded binding`.
    pub fn envelope_payload(data_key: [u8; 32], binding: &Binding) -> Vec<u8> {
        let mut out = data_key.to_vec();
        out.extend_from_slice(&binding.encode());
        out
    }

    /// `lp(version) ‖ lp(scope) ‖ lp(namespace) ‖ lp(name)`: the binding inside an envelope.
    pub fn binding_encoding(binding: &Binding) -> Vec<u8> {
        binding.encode()
    }

    /// Opens one value string (`base64(nonce ‖ ciphertext ‖ tag)`, without the envelope id);
    /// `None` when it does not decode or authenticate.
    pub fn open_value(
        data_key: [u8; 32],
        aad: &[u8],
        encoded: &str,
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        crate::aead::open(&DataKey::from_bytes(data_key), aad, encoded).ok()
    }

    /// Wraps `data key ‖ encoded binding` to `recipients` with age: the binary age file that
    /// an envelope's `wrappedKey` holds in base64.
    pub fn wrap_envelope(
        data_key: [u8; 32],
        binding: &Binding,
        recipients: &[crate::Recipient],
    ) -> crate::Result<Vec<u8>> {
        crate::envelope::wrap(&DataKey::from_bytes(data_key), binding, recipients)
    }

    /// Unwraps a binary age file exactly as opening does (identities one at a time, binding
    /// decoded, envelope id checked) and returns the payload `data key ‖ encoded binding`
    /// with the key id of the identity that opened it.
    pub fn unwrap_envelope(
        envelope_id: &str,
        wrapped: &[u8],
        identities: &[crate::Identity],
    ) -> crate::Result<(zeroize::Zeroizing<Vec<u8>>, crate::KeyId)> {
        let opened = crate::envelope::unwrap(envelope_id, wrapped, &[], identities)?;
        let mut payload = zeroize::Zeroizing::new(opened.data_key.as_bytes().to_vec());
        payload.extend_from_slice(&opened.binding.encode());
        Ok((payload, opened.opened_by))
    }

    /// The largest age payload an envelope may hold, in bytes.
    pub const MAX_PAYLOAD_BYTES: u64 = crate::envelope::MAX_PAYLOAD_BYTES;
}
