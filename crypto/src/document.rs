//! The `SealedSecret` document: parsing, sealing, merging, opening, re-wrapping and re-keying.

use std::collections::{BTreeMap, BTreeSet};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::aead::{self, OpenFailure};
use crate::binding::{Binding, Scope};
use crate::envelope::{self, DataKey, MAX_WRAPPED_KEY_BYTES};
use crate::error::{BindingField, Error, Result};
use crate::keys::{Identity, KeyId, Recipient};
use crate::secret::{
    check_size, validate_data_key, PlainSecret, SecretData, MAX_SECRET_BYTES, MAX_VALUES,
};

/// The `apiVersion` of the documents this crate writes and reads.
pub const API_VERSION: &str = "sealsync.dev/v1";
/// The `kind` of a sealed document.
pub const KIND: &str = "SealedSecret";

const MAX_ENVELOPES: usize = 256;
const MAX_RECIPIENTS: usize = 64;
/// Recipient stanzas over all envelopes of one document: bounds the X25519 work of opening
/// it to about 1,000 operations an identity.
const MAX_DOCUMENT_STANZAS: usize = 1024;
/// The longest value line ciphertext accepted: base64 of a nonce, [`MAX_SECRET_BYTES`] of
/// ciphertext and a tag.
const MAX_VALUE_BASE64_LEN: usize = (12 + MAX_SECRET_BYTES + 16).div_ceil(3) * 4;
/// How many ciphertext bytes the key-mismatch diagnosis may authenticate for one failed value.
const DIAGNOSIS_BUDGET_BYTES: usize = 16 * 1024 * 1024;

/// Object metadata of a sealed document (the subset sealsync reads and writes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The name of the Secret this document becomes.
    pub name: String,
    /// Its namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Labels of the SealedSecret itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations of the SealedSecret itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Metadata copied onto the Secret when it is opened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TemplateMeta {
    /// Labels for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations for the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl TemplateMeta {
    fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.annotations.is_empty()
    }
}

/// The unencrypted parts of the Secret to create.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Template {
    /// The Secret's `type`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// The Secret's `immutable`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,
    /// The Secret's labels and annotations.
    #[serde(default, skip_serializing_if = "TemplateMeta::is_empty")]
    pub metadata: TemplateMeta,
}

impl Template {
    fn is_empty(&self) -> bool {
        self.type_.is_none() && self.immutable.is_none() && self.metadata.is_empty()
    }
}

/// One envelope as it appears in the document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// Derived from the data key; values name their envelope by it.
    pub id: String,
    /// Key ids of the recipients the data key is wrapped to (readable, not authenticated).
    pub recipients: Vec<KeyId>,
    /// The age-encrypted data key and binding, base64 (standard, padded) on one line.
    pub wrapped_key: String,
}

/// The `spec` of a sealed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SealedSecretSpec {
    /// What the values are bound to.
    pub scope: Scope,
    /// The unencrypted parts of the Secret.
    #[serde(default, skip_serializing_if = "Template::is_empty")]
    pub template: Template,
    /// The wrapped data keys.
    pub envelopes: Vec<Envelope>,
    /// `ENVELOPE_ID:BASE64_CIPHERTEXT` by data key name.
    pub encrypted_data: BTreeMap<String, String>,
}

/// A sealed document as it is written, field for field: what serde reads from YAML or JSON
/// before any of the format's checks. [`SealedSecret::try_from`] checks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct SealedSecretWire {
    /// [`API_VERSION`].
    pub api_version: String,
    /// [`KIND`].
    pub kind: String,
    /// The document's metadata: the name and namespace are the Secret's.
    pub metadata: ObjectMeta,
    /// The sealed content.
    pub spec: SealedSecretSpec,
    /// Read back from a cluster, a SealedSecret carries the controller's status. It is not
    /// part of the sealed format: accepted, not kept, never written.
    #[serde(default, skip_serializing)]
    status: IgnoredStatus,
}

/// A field that is read past without being stored.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct IgnoredStatus;

impl<'de> Deserialize<'de> for IgnoredStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d).map(|_| IgnoredStatus)
    }
}

/// A sealed Secret: safe to commit, openable only by a recipient's identity, and only where
/// it was sealed for.
///
/// It is always checked ([`SealedSecret::check_structure`]): deserializing one with serde
/// goes through [`SealedSecretWire`] and fails with the format's own [`Error`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SealedSecretWire", into = "SealedSecretWire")]
pub struct SealedSecret {
    wire: SealedSecretWire,
}

impl TryFrom<SealedSecretWire> for SealedSecret {
    type Error = Error;

    fn try_from(wire: SealedSecretWire) -> Result<Self> {
        SealedSecret::check_type_meta(&wire.api_version, &wire.kind)?;
        let sealed = SealedSecret { wire };
        sealed.check_structure()?;
        Ok(sealed)
    }
}

impl From<SealedSecret> for SealedSecretWire {
    fn from(sealed: SealedSecret) -> Self {
        sealed.wire
    }
}

/// The result of opening a sealed document.
#[derive(Debug)]
pub struct Opened {
    /// The Secret, with plaintext values.
    pub secret: PlainSecret,
    /// The key ids of the identities that actually unwrapped the envelopes (authenticated by
    /// the successful unwrap, unlike the ids listed in the document).
    pub opened_by: BTreeSet<KeyId>,
    /// For each envelope id, the key id of the identity that unwrapped it.
    pub opened_by_envelope: BTreeMap<String, KeyId>,
}

/// An envelope whose listed key ids are not the keys it is wrapped to, as found by
/// [`SealedSecret::verify_recipients`] or by counting its recipient stanzas.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecipientMismatch {
    /// A given identity opens the envelope, but its key id is not listed.
    Unlisted {
        /// The envelope.
        envelope: String,
        /// The key id that opens it without being listed.
        key_id: KeyId,
    },
    /// The envelope lists a key id whose identity was given, and that identity cannot open it.
    ListedButCannotOpen {
        /// The envelope.
        envelope: String,
        /// The listed key id.
        key_id: KeyId,
    },
    /// The envelope lists a different number of key ids than it has X25519 recipients.
    CountDiffers {
        /// The envelope.
        envelope: String,
        /// Key ids listed.
        listed: usize,
        /// X25519 recipient stanzas in the wrapped key.
        wrapped_to: usize,
    },
}

impl std::fmt::Display for RecipientMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecipientMismatch::Unlisted { envelope, key_id } => write!(
                f,
                "envelope {envelope} opens with key id {key_id}, which it does not list"
            ),
            RecipientMismatch::ListedButCannotOpen { envelope, key_id } => write!(
                f,
                "envelope {envelope} lists key id {key_id}, but that key cannot open it"
            ),
            RecipientMismatch::CountDiffers {
                envelope,
                listed,
                wrapped_to,
            } => write!(
                f,
                "envelope {envelope} lists {listed} key id(s) but is wrapped to {wrapped_to} key(s)"
            ),
        }
    }
}

/// Where the sealed document will be opened. Usually the document's own metadata; the
/// controller passes its target namespace for documents that name none.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions<'a> {
    /// The namespace to use when the document has none.
    pub default_namespace: Option<&'a str>,
}

fn recipient_ids(recipients: &[Recipient]) -> Vec<KeyId> {
    let ids: BTreeSet<KeyId> = recipients.iter().map(|r| r.key_id().clone()).collect();
    ids.into_iter().collect()
}

impl SealedSecret {
    /// Seals every value of `secret` under one fresh data key wrapped to `recipients`.
    pub fn seal(secret: &PlainSecret, scope: Scope, recipients: &[Recipient]) -> Result<Self> {
        let namespace = secret.namespace.clone();
        if scope != Scope::Cluster && namespace.is_none() {
            return Err(Error::malformed(
                "metadata.namespace",
                format!("{scope} scope binds the namespace, but the Secret has none"),
            ));
        }
        validate_name(&secret.name)?;
        let mut sealed = SealedSecret {
            wire: SealedSecretWire {
                api_version: API_VERSION.to_owned(),
                kind: KIND.to_owned(),
                metadata: ObjectMeta {
                    name: secret.name.clone(),
                    namespace,
                    labels: BTreeMap::new(),
                    annotations: BTreeMap::new(),
                },
                spec: SealedSecretSpec {
                    scope,
                    template: Template {
                        type_: secret.type_.clone(),
                        immutable: secret.immutable,
                        metadata: TemplateMeta {
                            labels: secret.labels.clone(),
                            annotations: secret.annotations.clone(),
                        },
                    },
                    envelopes: Vec::new(),
                    encrypted_data: BTreeMap::new(),
                },
                status: IgnoredStatus,
            },
        };
        sealed.merge(&secret.data, recipients)?;
        Ok(sealed)
    }

    /// Adds or replaces values without any decrypt access: the given values go into one new
    /// envelope; every other value line stays byte for byte. Envelopes no value refers to
    /// any more are dropped.
    pub fn merge(&mut self, values: &SecretData, recipients: &[Recipient]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        for key in values.keys() {
            validate_data_key(key)?;
        }
        // Refuse here what opening would refuse: a value too large for a Secret.
        check_size(values.len(), values.values().map(|v| v.len()).sum())?;
        if recipient_ids(recipients).len() > MAX_RECIPIENTS {
            return Err(Error::LimitExceeded {
                what: "the recipients of one envelope".to_owned(),
                limit: MAX_RECIPIENTS.to_string(),
            });
        }
        let binding = self.claimed_binding(None)?;
        let data_key = DataKey::generate()?;
        let wrapped = envelope::wrap(&data_key, &binding, recipients)?;
        let id = data_key.envelope_id();
        for (key, value) in values {
            let line = aead::seal(&data_key, &binding.value_aad(key), value)?;
            self.wire
                .spec
                .encrypted_data
                .insert(key.clone(), format!("{id}:{line}"));
        }
        if self.wire.spec.encrypted_data.len() > MAX_VALUES {
            return Err(Error::LimitExceeded {
                what: "the number of values in one Secret".to_owned(),
                limit: MAX_VALUES.to_string(),
            });
        }
        self.wire.spec.envelopes.push(Envelope {
            id,
            recipients: recipient_ids(recipients),
            wrapped_key: B64.encode(wrapped),
        });
        self.drop_unused_envelopes();
        Ok(())
    }

    /// Removes values by key, without decrypt access.
    pub fn remove_keys(&mut self, keys: &[String]) {
        for key in keys {
            self.wire.spec.encrypted_data.remove(key);
        }
        self.drop_unused_envelopes();
    }

    fn drop_unused_envelopes(&mut self) {
        let used: BTreeSet<&str> = self
            .wire
            .spec
            .encrypted_data
            .values()
            .filter_map(|line| line.split_once(':').map(|(id, _)| id))
            .collect();
        self.wire
            .spec
            .envelopes
            .retain(|e| used.contains(e.id.as_str()));
    }

    /// Opens every value, checking each against the place the document sits.
    pub fn open(&self, identities: &[Identity], options: &OpenOptions<'_>) -> Result<Opened> {
        let target = self.claimed_binding(options.default_namespace)?;
        let envelopes = self.unwrap_envelopes(identities, &target)?;
        let mut data = SecretData::new();
        let mut total = 0;
        for (key, line) in &self.wire.spec.encrypted_data {
            let (id, ciphertext) = split_value(key, line)?;
            let opened = envelopes.get(id).ok_or_else(|| missing_envelope(key, id))?;
            let plaintext = self.open_value(&opened.data_key, &target, key, ciphertext)?;
            total += plaintext.len();
            data.insert(key.clone(), plaintext);
        }
        check_size(data.len(), total)?;
        let template = &self.wire.spec.template;
        Ok(Opened {
            secret: PlainSecret {
                name: self.wire.metadata.name.clone(),
                namespace: self
                    .wire
                    .metadata
                    .namespace
                    .clone()
                    .or_else(|| options.default_namespace.map(str::to_owned)),
                type_: template.type_.clone(),
                labels: template.metadata.labels.clone(),
                annotations: template.metadata.annotations.clone(),
                immutable: template.immutable,
                data,
            },
            opened_by: envelopes.values().map(|e| e.opened_by.clone()).collect(),
            opened_by_envelope: envelopes
                .into_iter()
                .map(|(id, e)| (id, e.opened_by))
                .collect(),
        })
    }

    /// Whether each envelope is wrapped to the keys it lists, as far as `identities` can
    /// tell: every given identity whose key id is listed must open the envelope, and every
    /// identity that opens it must be listed. Without any identity only the number of
    /// recipients is compared. Listed key ids are not authenticated; this is how a file that
    /// claims a new key while still wrapped to an old one is found.
    pub fn verify_recipients(&self, identities: &[Identity]) -> Result<Vec<RecipientMismatch>> {
        let mut out = Vec::new();
        for env in &self.wire.spec.envelopes {
            let wrapped = decode_wrapped(env)?;
            if let Some((_, x25519)) = envelope::count_stanzas(&wrapped) {
                if x25519 != env.recipients.len() {
                    out.push(RecipientMismatch::CountDiffers {
                        envelope: env.id.clone(),
                        listed: env.recipients.len(),
                        wrapped_to: x25519,
                    });
                }
            }
            for identity in identities {
                let opens = match envelope::unwrap(
                    &env.id,
                    &wrapped,
                    &env.recipients,
                    std::slice::from_ref(identity),
                ) {
                    Ok(_) => true,
                    Err(Error::NoMatchingIdentity { .. }) => false,
                    Err(other) => return Err(other),
                };
                let listed = env.recipients.contains(identity.key_id());
                if opens && !listed {
                    out.push(RecipientMismatch::Unlisted {
                        envelope: env.id.clone(),
                        key_id: identity.key_id().clone(),
                    });
                } else if listed && !opens {
                    out.push(RecipientMismatch::ListedButCannotOpen {
                        envelope: env.id.clone(),
                        key_id: identity.key_id().clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    fn open_value(
        &self,
        data_key: &DataKey,
        target: &Binding,
        key: &str,
        ciphertext: &str,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        match aead::open(data_key, &target.value_aad(key), ciphertext) {
            Ok(plaintext) => Ok(plaintext),
            Err(OpenFailure::Encoding(reason)) => Err(Error::malformed(
                format!("spec.encryptedData.{key}"),
                reason,
            )),
            Err(OpenFailure::Authentication) => {
                // Tell a moved value from a tampered one: try the other data key names. Each
                // try costs a pass over the ciphertext, so the work is bounded: without the
                // bound, one large value among thousands of keys is a quadratic denial of
                // service. Past the budget the value is reported as tampered.
                let budget = diagnosis_tries(ciphertext.len());
                let moved_from = self
                    .wire
                    .spec
                    .encrypted_data
                    .keys()
                    .filter(|other| other.as_str() != key)
                    .take(budget)
                    .find(|other| {
                        aead::open(data_key, &target.value_aad(other), ciphertext).is_ok()
                    });
                Err(match moved_from {
                    Some(sealed_key) => Error::BindingMismatch {
                        field: BindingField::Key,
                        sealed: sealed_key.clone(),
                        found: key.to_owned(),
                        data_key: Some(key.to_owned()),
                    },
                    None => Error::Tampered {
                        what: format!("the value of data key {key:?}"),
                    },
                })
            }
        }
    }

    /// Unwraps every envelope a value refers to, and checks each one's sealed binding
    /// against `target`.
    fn unwrap_envelopes(
        &self,
        identities: &[Identity],
        target: &Binding,
    ) -> Result<BTreeMap<String, envelope::OpenedEnvelope>> {
        if identities.is_empty() {
            return Err(Error::NoMatchingIdentity {
                key_ids: self.key_ids().into_iter().collect(),
                envelope: None,
                values: Vec::new(),
                tried: Vec::new(),
            });
        }
        let mut opened = BTreeMap::new();
        for env in &self.wire.spec.envelopes {
            let wrapped = decode_wrapped(env)?;
            let unwrapped = envelope::unwrap(&env.id, &wrapped, &env.recipients, identities)
                .map_err(|e| match e {
                    // Name every key the document is sealed to, not only this envelope's, and
                    // the values that sit in this envelope.
                    Error::NoMatchingIdentity {
                        envelope, tried, ..
                    } => Error::NoMatchingIdentity {
                        key_ids: self.key_ids().into_iter().collect(),
                        values: self.values_in_envelope(&env.id),
                        envelope,
                        tried,
                    },
                    other => other,
                })?;
            unwrapped.binding.check_matches(target)?;
            opened.insert(env.id.clone(), unwrapped);
        }
        Ok(opened)
    }

    /// Re-wraps every data key to `recipients`. Value lines and envelope ids stay the same,
    /// so a reviewer sees that no value changed.
    pub fn rewrap(&mut self, identities: &[Identity], recipients: &[Recipient]) -> Result<()> {
        if recipient_ids(recipients).len() > MAX_RECIPIENTS {
            return Err(Error::LimitExceeded {
                what: "the recipients of one envelope".to_owned(),
                limit: MAX_RECIPIENTS.to_string(),
            });
        }
        let target = self.claimed_binding(None)?;
        let opened = self.unwrap_envelopes(identities, &target)?;
        for env in &mut self.wire.spec.envelopes {
            if let Some(unwrapped) = opened.get(&env.id) {
                let wrapped = envelope::wrap(&unwrapped.data_key, &unwrapped.binding, recipients)?;
                env.wrapped_key = B64.encode(wrapped);
                env.recipients = recipient_ids(recipients);
            }
        }
        Ok(())
    }

    /// Re-encrypts every value under one fresh data key wrapped to `recipients`: for use
    /// after a key compromise.
    pub fn rekey(&mut self, identities: &[Identity], recipients: &[Recipient]) -> Result<()> {
        let opened = self.open(identities, &OpenOptions::default())?;
        self.wire.spec.encrypted_data.clear();
        self.wire.spec.envelopes.clear();
        self.merge(&opened.secret.data, recipients)
    }

    /// The recipient stanzas of all envelopes: opening costs up to this many X25519
    /// operations for each identity tried, so callers that open many documents can bound the
    /// work before they start.
    pub fn stanza_count(&self) -> usize {
        self.wire
            .spec
            .envelopes
            .iter()
            .filter_map(|e| decode_wrapped(e).ok())
            .filter_map(|w| envelope::count_stanzas(&w))
            .map(|(all, _)| all)
            .sum()
    }

    /// The data keys whose values sit in envelope `id`.
    fn values_in_envelope(&self, id: &str) -> Vec<String> {
        self.wire
            .spec
            .encrypted_data
            .iter()
            .filter(|(_, line)| line.split_once(':').is_some_and(|(e, _)| e == id))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The key ids of every envelope, as listed (unauthenticated).
    pub fn key_ids(&self) -> BTreeSet<KeyId> {
        self.wire
            .spec
            .envelopes
            .iter()
            .flat_map(|e| e.recipients.iter().cloned())
            .collect()
    }

    /// The envelopes, for listing and checks.
    pub fn envelopes(&self) -> &[Envelope] {
        &self.wire.spec.envelopes
    }

    /// The data key names.
    pub fn data_keys(&self) -> impl Iterator<Item = &str> {
        self.wire.spec.encrypted_data.keys().map(String::as_str)
    }

    /// The metadata.
    pub fn metadata(&self) -> &ObjectMeta {
        &self.wire.metadata
    }

    /// Mutable metadata, for labels and annotations on the SealedSecret itself.
    pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.wire.metadata
    }

    /// The scope the document claims (each value's binding is checked against it on open).
    pub fn scope(&self) -> Scope {
        self.wire.spec.scope
    }

    /// The template.
    pub fn template(&self) -> &Template {
        &self.wire.spec.template
    }

    /// Mutable template, for `--merge-into` with a changed type or labels.
    pub fn template_mut(&mut self) -> &mut Template {
        &mut self.wire.spec.template
    }

    fn claimed_binding(&self, default_namespace: Option<&str>) -> Result<Binding> {
        let scope = self.wire.spec.scope;
        let namespace = self
            .wire
            .metadata
            .namespace
            .as_deref()
            .or(default_namespace);
        if scope != Scope::Cluster && namespace.is_none() {
            return Err(Error::malformed(
                "metadata.namespace",
                format!("{scope} scope needs a namespace, and the document has none"),
            ));
        }
        Ok(Binding::new(
            scope,
            namespace.unwrap_or(""),
            &self.wire.metadata.name,
        ))
    }

    /// Checks `apiVersion` and `kind` before anything else is read, so that a document of
    /// another kind, or of a newer version of this format, is named for what it is rather than
    /// for its first unexpected field.
    pub fn check_type_meta(api_version: &str, kind: &str) -> Result<()> {
        if kind != KIND {
            return Err(Error::malformed(
                "kind",
                format!("expected {KIND}, found {:?}", printable_word(kind)),
            ));
        }
        if api_version != API_VERSION {
            if api_version.starts_with("sealsync.dev/") {
                return Err(Error::UnsupportedVersion {
                    found: printable_word(api_version).to_owned(),
                });
            }
            return Err(Error::malformed(
                "apiVersion",
                format!(
                    "expected {API_VERSION}, found {:?}",
                    printable_word(api_version)
                ),
            ));
        }
        Ok(())
    }

    /// The document as it is written.
    pub fn wire(&self) -> &SealedSecretWire {
        &self.wire
    }

    /// Checks everything that can be checked without a key: names, limits, value encodings,
    /// envelope references and that every wrapped key parses as an age file.
    pub fn check_structure(&self) -> Result<()> {
        validate_name(&self.wire.metadata.name)?;
        if let Some(ns) = &self.wire.metadata.namespace {
            if !crate::names::is_dns_label(ns) {
                return Err(Error::malformed(
                    "metadata.namespace",
                    "not a valid namespace (a lowercase RFC 1123 label, at most 63 characters)",
                ));
            }
        }
        let spec = &self.wire.spec;
        if spec.envelopes.len() > MAX_ENVELOPES {
            return Err(Error::LimitExceeded {
                what: "the number of envelopes".to_owned(),
                limit: MAX_ENVELOPES.to_string(),
            });
        }
        if spec.encrypted_data.len() > MAX_VALUES {
            return Err(Error::LimitExceeded {
                what: "the number of values".to_owned(),
                limit: MAX_VALUES.to_string(),
            });
        }
        let mut ids = BTreeSet::new();
        let mut stanzas = 0usize;
        for (i, env) in spec.envelopes.iter().enumerate() {
            let location = format!("spec.envelopes[{i}]");
            if env.id.len() != 16
                || !env
                    .id
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            {
                return Err(Error::malformed(
                    format!("{location}.id"),
                    "an envelope id is 16 lowercase hex digits",
                ));
            }
            if !ids.insert(env.id.as_str()) {
                return Err(Error::malformed(
                    format!("{location}.id"),
                    format!("envelope id {} appears twice", env.id),
                ));
            }
            if env.recipients.is_empty() || env.recipients.len() > MAX_RECIPIENTS {
                return Err(Error::malformed(
                    format!("{location}.recipients"),
                    format!("an envelope lists 1 to {MAX_RECIPIENTS} key ids"),
                ));
            }
            for (j, id) in env.recipients.iter().enumerate() {
                KeyId::parse(id.as_str()).map_err(|_| {
                    Error::malformed(
                        format!("{location}.recipients[{j}]"),
                        "not a key id (16 lowercase hex digits)",
                    )
                })?;
            }
            let wrapped = decode_wrapped(env)?;
            match envelope::count_stanzas(&wrapped) {
                Some((all, _)) if all > envelope::MAX_STANZAS => {
                    return Err(Error::LimitExceeded {
                        what: format!("the recipients of envelope {}", env.id),
                        limit: format!("{} stanzas", envelope::MAX_STANZAS),
                    })
                }
                Some((all, _)) => {
                    stanzas += all;
                    if stanzas > MAX_DOCUMENT_STANZAS {
                        return Err(Error::LimitExceeded {
                            what: "the recipients of all envelopes together".to_owned(),
                            limit: format!("{MAX_DOCUMENT_STANZAS} stanzas"),
                        });
                    }
                }
                None => {}
            }
            if !envelope::check_structure(&wrapped) {
                return Err(Error::Tampered {
                    what: format!("envelope {} (its wrapped key is not an age file)", env.id),
                });
            }
        }
        for (i, (key, line)) in spec.encrypted_data.iter().enumerate() {
            validate_data_key(key).map_err(|_| {
                Error::malformed(
                    crate::secret::entry_location("spec.encryptedData", None, i),
                    "a data key must consist of alphanumerics, '-', '_' or '.' (at most 253)",
                )
            })?;
            let (id, ciphertext) = split_value(key, line)?;
            if !ids.contains(id) {
                return Err(missing_envelope(key, id));
            }
            if ciphertext.len() > MAX_VALUE_BASE64_LEN {
                return Err(Error::LimitExceeded {
                    what: format!("the value of data key {key:?}"),
                    limit: format!("{MAX_SECRET_BYTES} bytes"),
                });
            }
            aead::check_encoding(ciphertext)
                .map_err(|reason| Error::malformed(format!("spec.encryptedData.{key}"), reason))?;
        }
        Ok(())
    }

    /// The document as YAML (one document, no leading `---`).
    pub fn to_yaml(&self) -> Result<String> {
        serde_yaml::to_string(&self.wire).map_err(|e| Error::Encode(Box::new(e)))
    }

    /// The document as pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(&self.wire).map_err(|e| Error::Encode(Box::new(e)))
    }
}

/// `word` when it looks like a kind or apiVersion (short, letters, digits, `.`, `/`, `-`), else a
/// placeholder: the field may hold anything, a value pasted in the wrong place included.
fn printable_word(word: &str) -> &str {
    let plain = word.len() <= 100
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-'));
    if plain {
        word
    } else {
        "(not a kind or version name)"
    }
}

/// How many other key names the key-mismatch diagnosis may try for one failed value.
fn diagnosis_tries(ciphertext_len: usize) -> usize {
    DIAGNOSIS_BUDGET_BYTES / ciphertext_len.max(1)
}

fn decode_wrapped(env: &Envelope) -> Result<Vec<u8>> {
    if env.wrapped_key.len() > MAX_WRAPPED_KEY_BYTES * 4 / 3 + 4 {
        return Err(Error::LimitExceeded {
            what: format!("the wrapped key of envelope {}", env.id),
            limit: format!("{MAX_WRAPPED_KEY_BYTES} bytes"),
        });
    }
    B64.decode(env.wrapped_key.as_bytes()).map_err(|_| {
        Error::malformed(
            format!("envelope {}: wrappedKey", env.id),
            "not valid base64",
        )
    })
}

fn split_value<'a>(key: &str, line: &'a str) -> Result<(&'a str, &'a str)> {
    line.split_once(':').ok_or_else(|| {
        Error::malformed(
            format!("spec.encryptedData.{key}"),
            "a value is ENVELOPE_ID:BASE64_CIPHERTEXT",
        )
    })
}

fn missing_envelope(key: &str, id: &str) -> Error {
    Error::malformed(
        format!("spec.encryptedData.{key}"),
        format!("the value refers to envelope {id}, which the document does not have"),
    )
}

fn validate_name(name: &str) -> Result<()> {
    // RFC 1123 subdomain, as the API server requires for Secret names.
    if crate::names::is_object_name(name) {
        Ok(())
    } else {
        Err(Error::malformed(
            "metadata.name",
            "not a valid Secret name (a lowercase RFC 1123 subdomain, at most 253 characters)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnosis_work_is_bounded() {
        for len in [1, 100, 4096, 1 << 20, MAX_VALUE_BASE64_LEN] {
            assert!(
                diagnosis_tries(len) * len <= DIAGNOSIS_BUDGET_BYTES,
                "{len}"
            );
        }
        // Small values still get a full diagnosis across the largest allowed Secret.
        assert!(diagnosis_tries(64) >= MAX_VALUES);
    }
}
