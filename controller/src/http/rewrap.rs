//! `POST /v1/rewrap`: re-wraps sealed documents to recipients the cluster trusts, for
//! developers who hold no recovery key (`sealsync reseal --controller`).
//!
//! It never returns plaintext or a data key: only envelopes change, every value line stays as
//! it is, and each envelope keeps the binding (scope, namespace, name) sealed inside it, which
//! must match the document's metadata (a document edited to widen its scope does not open).
//! It wraps only to the cluster's own non-retired keys, its recovery recipients and the peer
//! clusters' recipients of its configuration; a request naming any other recipient is refused.
//! Callers are checked by [`crate::http::callers`].

use std::collections::BTreeMap;

use sealsync_core::manifest::{read_documents, sealed_from_manifest, sealed_to_manifest, Limits};
use sealsync_core::Chain;
use sealsync_crypto::{Identity, Recipient};

use crate::http::Handles;
use crate::keys::backup::{read_recipients_setting, read_recovery_recipients};

pub(crate) use sealsync_core::rewrap::{RewrapRequest, RewrapResponse, MAX_BODY, MAX_DOCUMENTS};

/// The most key-against-recipient trials one request may cost (each an X25519 operation).
const MAX_TRIALS: usize = 100_000;

/// Why a request could not be served. Messages name documents and key ids, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RewrapError {
    /// The request is malformed or too large.
    BadRequest(String),
    /// A recipient the cluster does not trust.
    UntrustedRecipient(String),
    /// A document does not open with the cluster's keys, or does not match its binding.
    Unopenable(String),
    /// The controller cannot serve it now.
    Unavailable(String),
}

impl RewrapError {
    /// A short stable label for metrics.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            RewrapError::BadRequest(_) => "bad_request",
            RewrapError::UntrustedRecipient(_) => "untrusted_recipient",
            RewrapError::Unopenable(_) => "unopenable",
            RewrapError::Unavailable(_) => "unavailable",
        }
    }
}

/// The recipients this cluster wraps to: its keys, its recovery recipients and its peers,
/// by key id.
fn trusted(
    handles: &Handles,
    cluster: &[Recipient],
) -> Result<(BTreeMap<String, Recipient>, Vec<Recipient>), RewrapError> {
    let unavailable = |e: crate::keys::backup::RecoveryRecipientsError| {
        RewrapError::Unavailable(Chain(&e).to_string())
    };
    let recovery = match &handles.settings.recovery_recipients_file {
        Some(file) => read_recovery_recipients(file).map_err(unavailable)?,
        None => Vec::new(),
    };
    let peers = match &handles.settings.peer_recipients_file {
        Some(file) => {
            read_recipients_setting("--peer-recipients-file", file).map_err(unavailable)?
        }
        None => Vec::new(),
    };
    let mut default = cluster.to_vec();
    default.extend(recovery.iter().cloned());
    // Keyed by the whole recipient, not its short key id: a key id is 64 bits of a hash, and
    // a key made to collide with a trusted one must not pass.
    let all = cluster
        .iter()
        .chain(&recovery)
        .chain(&peers)
        .map(|r| (r.as_str().to_owned(), r.clone()))
        .collect();
    Ok((all, default))
}

/// Whether `request` names a recipient that is a peer cluster's (not this cluster's own key
/// nor a recovery recipient): moving a document to another cluster needs a permission of its
/// own, `create` on `sealingkeys/rewrap-peers`.
pub(crate) async fn names_peers(
    handles: &Handles,
    request: &RewrapRequest,
) -> Result<bool, RewrapError> {
    if request.recipients.is_empty() {
        return Ok(false);
    }
    let cluster = handles.keys.read().await.recipients();
    let (all, own) = trusted(handles, &cluster)?;
    let own: std::collections::BTreeSet<&str> = own.iter().map(Recipient::as_str).collect();
    // Untrusted recipients are refused later, with their own message.
    Ok(request.recipients.iter().any(|text| {
        text.parse::<Recipient>()
            .map(|r| all.contains_key(r.as_str()) && !own.contains(r.as_str()))
            .unwrap_or(false)
    }))
}

/// Re-wraps every document of `request`, or none.
pub(crate) async fn rewrap(
    handles: &Handles,
    request: RewrapRequest,
) -> Result<RewrapResponse, RewrapError> {
    if request.documents.is_empty() {
        return Err(RewrapError::BadRequest("no documents".to_owned()));
    }
    if request.documents.len() > MAX_DOCUMENTS {
        return Err(RewrapError::BadRequest(format!(
            "{} documents; at most {MAX_DOCUMENTS} a request",
            request.documents.len()
        )));
    }
    let (identities, cluster): (Vec<Identity>, Vec<Recipient>) = {
        let ring = handles.keys.read().await;
        (ring.identities().to_vec(), ring.recipients())
    };
    if identities.is_empty() {
        return Err(RewrapError::Unavailable("keys not loaded yet".to_owned()));
    }
    let (trusted, default) = trusted(handles, &cluster)?;
    let recipients = if request.recipients.is_empty() {
        default
    } else {
        let mut wanted = Vec::with_capacity(request.recipients.len());
        for (index, text) in request.recipients.iter().enumerate() {
            let parsed: Recipient = text.parse().map_err(|e: sealsync_crypto::Error| {
                RewrapError::BadRequest(format!("recipients[{index}]: {e}"))
            })?;
            let Some(trusted) = trusted.get(parsed.as_str()) else {
                return Err(RewrapError::UntrustedRecipient(format!(
                    "recipient {} is not trusted by this cluster: it wraps only to its own keys, its recovery recipients and the peer clusters of its configuration",
                    parsed.key_id()
                )));
            };
            wanted.push(trusted.clone());
        }
        wanted
    };
    tokio::task::spawn_blocking(move || rewrap_all(&request.documents, &identities, &recipients))
        .await
        .map_err(|e| RewrapError::Unavailable(format!("the re-wrap task failed: {e}")))?
}

fn rewrap_all(
    documents: &[String],
    identities: &[Identity],
    recipients: &[Recipient],
) -> Result<RewrapResponse, RewrapError> {
    let mut parsed = Vec::with_capacity(documents.len());
    let mut trials = 0usize;
    for (index, text) in documents.iter().enumerate() {
        let place = format!("documents[{index}]");
        let docs = read_documents(text, Limits::default())
            .map_err(|e| RewrapError::BadRequest(format!("{place}: {}", Chain(&e))))?;
        let [doc] = docs.as_slice() else {
            return Err(RewrapError::BadRequest(format!(
                "{place}: holds {} YAML documents; send one SealedSecret each",
                docs.len()
            )));
        };
        let place = format!("{place} ({})", doc.describe());
        let sealed = sealed_from_manifest(&doc.value)
            .map_err(|e| RewrapError::BadRequest(format!("{place}: {}", Chain(&e))))?;
        trials = trials.saturating_add(sealed.stanza_count().saturating_mul(identities.len()));
        if trials > MAX_TRIALS {
            return Err(RewrapError::BadRequest(format!(
                "opening these documents would try more than {MAX_TRIALS} key-recipient pairs; send fewer at a time"
            )));
        }
        parsed.push((place, sealed));
    }
    let mut out = Vec::with_capacity(parsed.len());
    for (place, mut sealed) in parsed {
        sealed
            .rewrap(identities, recipients)
            .map_err(|e| RewrapError::Unopenable(format!("{place}: {}", Chain(&e))))?;
        let yaml = serde_yaml::to_string(&sealed_to_manifest(&sealed))
            .map_err(|e| RewrapError::Unavailable(format!("{place}: {e}")))?;
        out.push(yaml);
    }
    Ok(RewrapResponse { documents: out })
}
