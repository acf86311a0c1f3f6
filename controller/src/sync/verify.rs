//! The `verify` stage: with `spec.verify`, a fetched revision goes no further (no render, no
//! decryption, no Vault, no apply) unless its commit, its tag, or both carry a signature by a
//! key of the trusted-keys Secret. The signed payloads come from the raw objects the fetch
//! read ([`SignedObjects`]), split as git splits them; the keys are parsed once per version of
//! the Secret.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use sealsync_core::sigverify::{self, KeyringError, Signer, TrustedKeys, VerifyError};
use sealsync_core::{gitsig, GitSyncSpec, Revision, RevisionSigner, VerifyMode, VerifySpec};

/// The largest commit or tag object read for its signature.
pub(crate) const MAX_SIGNED_OBJECT_BYTES: usize = 1024 * 1024;

/// The most keys Secrets kept parsed at once.
const MAX_CACHED_KEYRINGS: usize = 1024;

/// A commit or tag object as the fetch read it.
#[derive(Debug, Clone)]
pub(crate) struct RawObject {
    /// Its id.
    pub(crate) id: String,
    /// Its content (after `commit <len>\0`); `None` when it is larger than
    /// [`MAX_SIGNED_OBJECT_BYTES`] and was not read.
    pub(crate) data: Option<Vec<u8>>,
}

/// The raw objects of a fetched revision whose signatures may be checked.
#[derive(Debug, Default, Clone)]
pub(crate) struct SignedObjects {
    /// The commit.
    pub(crate) commit: Option<RawObject>,
    /// For a tag ref: the tag's name, and the tag object when it is an annotated tag (`None`
    /// for a lightweight tag).
    pub(crate) tag: Option<(String, Option<RawObject>)>,
}

impl SignedObjects {
    /// Reads the commit `commit` and, for a tag ref, the object `tag` names (the tag's name
    /// and the id the remote listed for it), each only up to [`MAX_SIGNED_OBJECT_BYTES`].
    pub(crate) fn read(
        repo: &gix::Repository,
        commit: gix::ObjectId,
        tag: Option<(&str, gix::ObjectId)>,
    ) -> Result<Self, String> {
        let commit = Some(read_object(repo, commit)?);
        let tag = match tag {
            Some((name, id)) => {
                let header = repo
                    .find_header(id)
                    .map_err(|e| format!("reading tag {name}: {e}"))?;
                let object = (header.kind() == gix::object::Kind::Tag)
                    .then(|| read_object(repo, id))
                    .transpose()?;
                Some((name.to_owned(), object))
            }
            None => None,
        };
        Ok(Self { commit, tag })
    }
}

fn read_object(repo: &gix::Repository, id: gix::ObjectId) -> Result<RawObject, String> {
    let header = repo
        .find_header(id)
        .map_err(|e| format!("reading object {id}: {e}"))?;
    let data = if header.size() > MAX_SIGNED_OBJECT_BYTES as u64 {
        None
    } else {
        let object = repo
            .find_object(id)
            .map_err(|e| format!("reading object {id}: {e}"))?;
        Some(object.data.clone())
    };
    Ok(RawObject {
        id: id.to_string(),
        data,
    })
}

/// A revision whose signatures were accepted, and who made them.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// The revision.
    pub(crate) revision: String,
    /// The signers: the tag's first, then the commit's.
    pub(crate) signers: Vec<RevisionSigner>,
}

/// Why a revision was not accepted.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum VerificationError {
    /// A mode that checks a tag, on a GitSync that follows no tag.
    #[error("spec.verify.mode {mode}: set spec.ref.tag to the tag to verify, or use mode HEAD")]
    NeedsTag {
        /// The mode.
        mode: &'static str,
    },
    /// The keys Secret does not exist.
    #[error("spec.verify.secretRef: Secret {namespace}/{name} not found: create it with the trusted public keys (NAME.sshpub, NAME.asc)")]
    KeysMissing {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// The keys Secret could not be read.
    #[error("spec.verify.secretRef: reading Secret {namespace}/{name}")]
    KeysUnreadable {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// The keys Secret holds something other than trusted keys.
    #[error("spec.verify.secretRef: Secret {namespace}/{name}")]
    Keys {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// What is wrong.
        #[source]
        source: KeyringError,
    },
    /// A tag ref that names a lightweight tag: there is no tag object to sign.
    #[error("tag {name} is a lightweight tag, which cannot be signed: push an annotated tag signed with `git tag -s`")]
    LightweightTag {
        /// The tag.
        name: String,
    },
    /// The commit or tag object is larger than is read.
    #[error("{object} {id} is larger than {MAX_SIGNED_OBJECT_BYTES} bytes and is not verified")]
    TooLarge {
        /// `commit` or `tag`.
        object: &'static str,
        /// Its id.
        id: String,
    },
    /// The signed tag object is not the tag of the applied commit.
    #[error("tag {name} does not vouch for this revision: {why}")]
    TagMismatch {
        /// The tag.
        name: String,
        /// What differs.
        why: String,
    },
    /// The fetch did not keep the object (a fault of the controller, reported all the same).
    #[error("the {object} of the revision was not read, so it cannot be verified")]
    NotRead {
        /// `commit` or `tag`.
        object: &'static str,
    },
    /// Reading the signature failed in a way the parser did not foresee.
    #[error("{object} {id}: its signature could not be read (the verifier failed on it); it is treated as not verified")]
    Panicked {
        /// `commit` or `tag`.
        object: &'static str,
        /// Its id.
        id: String,
    },
    /// The signature of the commit or the tag was not accepted.
    #[error("{object} {id}")]
    Rejected {
        /// `commit` or `tag`.
        object: &'static str,
        /// Its id (a tag's name and id).
        id: String,
        /// Why.
        #[source]
        source: VerifyError,
    },
}

impl VerificationError {
    /// A short stable label for metrics.
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            VerificationError::NeedsTag { .. } => "spec",
            VerificationError::KeysMissing { .. }
            | VerificationError::KeysUnreadable { .. }
            | VerificationError::Keys { .. } => "keys",
            VerificationError::LightweightTag { .. } => "unsigned",
            VerificationError::TagMismatch { .. } => "bad_signature",
            VerificationError::TooLarge { .. }
            | VerificationError::NotRead { .. }
            | VerificationError::Panicked { .. } => "malformed",
            VerificationError::Rejected { source, .. } => source.metric_label(),
        }
    }

    /// Whether reading the keys failed on the API (retried soon), rather than the revision or
    /// the keys being wrong (retried at the interval).
    pub(crate) fn is_transient(&self) -> bool {
        matches!(self, VerificationError::KeysUnreadable { .. })
    }
}

/// The keys of one Secret (namespace, name) as parsed at one version (uid/resourceVersion).
type ParsedKeyrings = HashMap<(String, String), (String, Arc<TrustedKeys>)>;

/// Parsed trusted keys, by Secret, for as long as its resourceVersion stays.
#[derive(Debug, Default)]
pub(crate) struct KeyringCache {
    parsed: Mutex<ParsedKeyrings>,
}

impl KeyringCache {
    /// The trusted keys `spec` names in `namespace`, read with `client`.
    pub(crate) async fn keys(
        &self,
        client: &Client,
        namespace: &str,
        spec: &VerifySpec,
    ) -> Result<Arc<TrustedKeys>, VerificationError> {
        let name = spec.secret_ref.name.clone();
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret = secrets
            .get_opt(&name)
            .await
            .map_err(|source| VerificationError::KeysUnreadable {
                namespace: namespace.to_owned(),
                name: name.clone(),
                source,
            })?
            .ok_or_else(|| VerificationError::KeysMissing {
                namespace: namespace.to_owned(),
                name: name.clone(),
            })?;
        let version = format!(
            "{}/{}",
            secret.uid().unwrap_or_default(),
            secret.resource_version().unwrap_or_default()
        );
        let key = (namespace.to_owned(), name.clone());
        if let Some((seen, keys)) = self.lock().get(&key) {
            if *seen == version {
                return Ok(Arc::clone(keys));
            }
        }
        let data = secret.data.unwrap_or_default();
        // Checking every self-signature of a large keyring takes a while: off the runtime's
        // threads. A panic in the parser ends the task, and is reported as a bad entry.
        let parsed = tokio::task::spawn_blocking(move || {
            TrustedKeys::from_entries(
                data.iter()
                    .map(|(entry, value)| (entry.as_str(), value.0.as_slice())),
            )
        })
        .await
        .unwrap_or_else(|_| {
            Err(KeyringError::Invalid {
                entry: "(one of them)".to_owned(),
                reason: "the key parser failed on it".to_owned(),
            })
        });
        let keys = parsed.map_err(|source| VerificationError::Keys {
            namespace: namespace.to_owned(),
            name,
            source,
        })?;
        let keys = Arc::new(keys);
        let mut parsed = self.lock();
        if parsed.len() >= MAX_CACHED_KEYRINGS {
            parsed.clear();
        }
        parsed.insert(key, (version, Arc::clone(&keys)));
        Ok(keys)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ParsedKeyrings> {
        self.parsed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The checks of `spec.verify` that need no request: it is there when the controller requires
/// it, a tag mode follows a tag, and nothing the revision renders comes from elsewhere
/// unverified.
pub(crate) fn check_spec(
    spec: &GitSyncSpec,
    revision: &Revision,
    required: bool,
) -> Result<(), super::error::Error> {
    use super::error::Error;
    let Some(verify) = &spec.verify else {
        if required {
            return Err(Error::Spec(
                "spec.verify is required: this controller runs with --require-verified-sources, so only revisions signed by a trusted key are applied; add spec.verify with the Secret of trusted keys".to_owned(),
            ));
        }
        return Ok(());
    };
    if verify.mode.checks_tag() && !matches!(revision, Revision::Tag(_)) {
        return Err(Error::Verification(VerificationError::NeedsTag {
            mode: verify.mode.as_str(),
        }));
    }
    let remote_bases = spec
        .render
        .as_ref()
        .and_then(|r| r.kustomize.as_ref())
        .is_some_and(|k| k.allow_remote_bases);
    if remote_bases {
        return Err(Error::Spec(
            "spec.render.kustomize.allowRemoteBases: remote bases come from other repositories, unverified, so they cannot be combined with spec.verify; vendor the bases into the repository".to_owned(),
        ));
    }
    if spec.helm.as_ref().is_some_and(|h| h.chart.is_some()) {
        return Err(Error::Spec(
            "spec.helm.chart: a chart from a chart repository is not signed by the repository's keys, so it cannot be combined with spec.verify; vendor the chart into the repository".to_owned(),
        ));
    }
    Ok(())
}

/// Checks the signatures `mode` asks for on `objects`, against `keys`, now: who signed each.
pub(crate) fn verify(
    mode: VerifyMode,
    objects: &SignedObjects,
    keys: &TrustedKeys,
) -> Result<Vec<RevisionSigner>, VerificationError> {
    let now = SystemTime::now();
    let mut signers = Vec::new();
    if mode.checks_tag() {
        let Some((name, tag)) = &objects.tag else {
            return Err(VerificationError::NeedsTag {
                mode: mode.as_str(),
            });
        };
        let Some(tag) = tag else {
            return Err(VerificationError::LightweightTag { name: name.clone() });
        };
        let what = format!("{name} ({})", short(&tag.id));
        let signer = check("tag", &what, tag, gitsig::split_tag, keys, now)?;
        // What the signature covers must be what is applied: this tag, of this commit.
        let commit = objects
            .commit
            .as_ref()
            .map(|c| c.id.as_str())
            .unwrap_or_default();
        bind_tag(name, tag, commit)?;
        signers.push(signer_of("tag", &tag.id, signer));
    }
    if mode.checks_commit() {
        let commit = objects
            .commit
            .as_ref()
            .ok_or(VerificationError::NotRead { object: "commit" })?;
        let signer = check(
            "commit",
            &commit.id,
            commit,
            gitsig::split_commit,
            keys,
            now,
        )?;
        signers.push(signer_of("commit", &commit.id, signer));
    }
    Ok(signers)
}

/// Checks that the signed tag object names itself `name` and points at the commit `commit`
/// (its `tag` and `object` headers, which its signature covers).
fn bind_tag(name: &str, tag: &RawObject, commit: &str) -> Result<(), VerificationError> {
    let data = tag.data.as_deref().unwrap_or_default();
    let header = |field: &str| {
        data.split(|&b| b == b'\n')
            .take_while(|line| !line.is_empty())
            .find_map(|line| line.strip_prefix(format!("{field} ").as_bytes()))
            .map(|value| String::from_utf8_lossy(value).into_owned())
    };
    let mismatch = |why: String| VerificationError::TagMismatch {
        name: name.to_owned(),
        why,
    };
    match header("type").as_deref() {
        Some("commit") => {}
        other => {
            return Err(mismatch(format!(
                "it points at a {}, not a commit",
                other.unwrap_or("nothing")
            )))
        }
    }
    if header("object").as_deref() != Some(commit) {
        return Err(mismatch(format!(
            "its signature covers another commit than the ref's {}",
            short(commit)
        )));
    }
    let signed_name = header("tag").unwrap_or_default();
    if signed_name != name {
        return Err(mismatch(format!(
            "it was signed as tag {:?}",
            signed_name.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

fn check(
    object: &'static str,
    what: &str,
    raw: &RawObject,
    split: fn(&[u8]) -> Option<gitsig::Signed>,
    keys: &TrustedKeys,
    now: SystemTime,
) -> Result<Signer, VerificationError> {
    let Some(data) = &raw.data else {
        return Err(VerificationError::TooLarge {
            object,
            id: what.to_owned(),
        });
    };
    // The object and its signature are whatever someone pushed: a panic in a parser must fail
    // this revision, not the controller.
    let verified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let signed = split(data);
        sigverify::verify(signed.as_ref(), keys, now)
    }))
    .map_err(|_| VerificationError::Panicked {
        object,
        id: what.to_owned(),
    })?;
    verified.map_err(|source| VerificationError::Rejected {
        object,
        id: what.to_owned(),
        source,
    })
}

fn signer_of(object: &str, id: &str, signer: Signer) -> RevisionSigner {
    RevisionSigner {
        object: object.to_owned(),
        id: id.to_owned(),
        method: signer.method.as_str().to_owned(),
        fingerprint: signer.fingerprint,
        primary_fingerprint: signer.primary_fingerprint,
        key: signer.entry,
        identity: signer.identity,
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// Who signed, for the `SourceVerified` condition: each signer's line, joined.
pub(crate) fn describe(signers: &[RevisionSigner]) -> String {
    signers
        .iter()
        .map(RevisionSigner::describe)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(extra: serde_json::Value) -> GitSyncSpec {
        let mut spec = serde_json::json!({"url": "https://git.example/apps.git", "interval": "1m"});
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        serde_json::from_value(spec).expect("a spec")
    }

    fn reason(result: Result<(), super::super::error::Error>) -> String {
        match result {
            Ok(()) => "ok".to_owned(),
            Err(e) => format!("{}: {e}", e.reason()),
        }
    }

    #[test]
    fn the_spec_is_checked_before_anything_is_fetched() {
        let branch = Revision::Branch("main".to_owned());
        let tag = Revision::Tag("v1".to_owned());
        let keys = serde_json::json!({"name": "keys"});
        assert_eq!(
            reason(check_spec(&spec(serde_json::json!({})), &branch, false)),
            "ok"
        );
        assert!(
            reason(check_spec(&spec(serde_json::json!({})), &branch, true))
                .starts_with("InvalidSpec: spec.verify is required")
        );
        let head = spec(serde_json::json!({"verify": {"secretRef": keys}}));
        assert_eq!(reason(check_spec(&head, &branch, true)), "ok");
        let tags = spec(serde_json::json!({"verify": {"mode": "Tag", "secretRef": keys}}));
        assert_eq!(reason(check_spec(&tags, &tag, true)), "ok");
        assert!(reason(check_spec(&tags, &branch, true))
            .starts_with("VerificationFailed: spec.verify.mode Tag: set spec.ref.tag"));
        let remote = spec(serde_json::json!({"verify": {"secretRef": keys},
            "render": {"type": "kustomize", "kustomize": {"allowRemoteBases": true}}}));
        assert!(reason(check_spec(&remote, &branch, false))
            .starts_with("InvalidSpec: spec.render.kustomize.allowRemoteBases"));
        let chart = spec(serde_json::json!({"verify": {"secretRef": keys},
            "helm": {"chart": {"repository": "https://charts.example", "name": "web"}}}));
        assert!(
            reason(check_spec(&chart, &branch, false)).starts_with("InvalidSpec: spec.helm.chart")
        );
    }
}
