//! SOPS-encrypted Secrets in a revision: each rendered copy is matched with the file that
//! holds it as written (by its `sops.mac`, which no other file holds), and the decrypt stage
//! checks the MAC on that file before it opens the copy. A renderer may set a namespace or
//! labels on the copy; it cannot bring in a value the file does not hold.

use std::collections::HashMap;
use std::sync::Arc;

use sealsync_core::manifest::{read_documents, Limits};
use sealsync_core::render::{RenderLimits, SourceFile};
use sealsync_core::sops::{
    is_sops_document, is_sops_object, open_document, verify_file, Provenance, SopsError,
    VerifiedSops,
};
use sealsync_core::SealedSecretUsage;
use sealsync_crypto::Identity;
use serde_json::Value as Json;

use super::object::SyncObject;

/// Documents in one file, as the render stage reads them.
const MAX_DOCUMENTS_PER_FILE: usize = 10_000;

/// The file of the revision that holds a SOPS document as written.
pub(crate) struct SopsSource {
    /// Its path in the repository.
    pub(crate) path: String,
    /// Its text.
    pub(crate) text: Arc<str>,
}

impl std::fmt::Debug for SopsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SopsSource")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// `sops.mac` of a rendered object.
fn mac_of(object: &Json) -> Option<&str> {
    object["sops"]["mac"].as_str().filter(|m| m.len() >= 16)
}

/// Gives each rendered SOPS object the file that holds it: its own file when that holds it
/// (a plain directory), else the first file that does (a kustomize base or a chart's files),
/// which then names it in messages and in `status.sealedSecrets`.
pub(crate) fn attach_sources(objects: &mut [SyncObject], files: &[SourceFile]) {
    let mut texts: HashMap<&str, Arc<str>> = HashMap::new();
    for object in objects.iter_mut().filter(|o| is_sops_object(&o.object)) {
        let Some(mac) = mac_of(&object.object) else {
            continue;
        };
        let holds = |f: &&SourceFile| memchr::memmem::find(&f.contents, mac.as_bytes()).is_some();
        let Some(file) = files
            .iter()
            .find(|f| f.path == object.file)
            .filter(holds)
            .or_else(|| files.iter().find(holds))
        else {
            continue;
        };
        let text = match texts.get(file.path.as_str()) {
            Some(text) => Arc::clone(text),
            None => {
                let Ok(text) = std::str::from_utf8(&file.contents) else {
                    continue;
                };
                let text: Arc<str> = Arc::from(text);
                texts.insert(&file.path, Arc::clone(&text));
                text
            }
        };
        if object.file != file.path {
            object.location = format!("{}: {}", file.path, object.document);
            object.file.clone_from(&file.path);
        }
        object.sops_source = Some(Arc::new(SopsSource {
            path: file.path.clone(),
            text,
        }));
    }
}

/// Opens the SOPS objects of one pass, checking each source file's MAC once.
pub(crate) struct SopsOpener<'a> {
    identities: &'a [Identity],
    verified: HashMap<String, VerifiedSops>,
}

impl<'a> SopsOpener<'a> {
    pub(crate) fn new(identities: &'a [Identity]) -> Self {
        Self {
            identities,
            verified: HashMap::new(),
        }
    }

    /// The Secret `object` holds, and its key usage. `recorded` says the object is a manifest
    /// the controller recorded from an applied revision, whose copy was verified then.
    pub(crate) fn open(
        &mut self,
        object: &SyncObject,
        default_namespace: &str,
        recorded: bool,
    ) -> Result<(Json, SealedSecretUsage, Vec<String>), SopsError> {
        let location = object.location.as_str();
        if object.object["apiVersion"] != "v1" || object.object["kind"] != "Secret" {
            return Err(SopsError::Unsupported {
                location: location.to_owned(),
                reason: "a SOPS-encrypted object that is not a v1 Secret; sealsync decrypts SOPS documents that are Secrets only, so that no decrypted value ends up in a field of another kind: keep the values in a Secret".to_owned(),
            });
        }
        let rendered: serde_yaml::Value =
            serde_yaml::to_value(&object.object).map_err(|_| SopsError::Unsupported {
                location: location.to_owned(),
                reason: "the document is not representable as YAML".to_owned(),
            })?;
        let opened = if recorded {
            open_document(&rendered, self.identities, location, Provenance::Recorded)?
        } else {
            let verified = self.verified_source(object)?;
            // The verified file's data key opens the copy: no identity is tried again.
            open_document(&rendered, &[], location, Provenance::RenderedFrom(verified))?
        };
        let secret =
            serde_json::to_value(&opened.document).map_err(|_| SopsError::Unsupported {
                location: location.to_owned(),
                reason: "the decrypted document is not representable as JSON".to_owned(),
            })?;
        let usage = SealedSecretUsage {
            file: object.file.clone(),
            secret: format!(
                "{}/{}",
                secret["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or(default_namespace),
                secret["metadata"]["name"].as_str().unwrap_or_default()
            ),
            key_ids: vec![opened.key_id.to_string()],
        };
        Ok((secret, usage, opened.plaintext_fields.clone()))
    }

    /// The document of the object's source file that it is a copy of, its MAC checked.
    fn verified_source(&mut self, object: &SyncObject) -> Result<&VerifiedSops, SopsError> {
        let not_found = |reason: &str| SopsError::NotAsVerified {
            location: object.location.clone(),
            reason: reason.to_owned(),
        };
        let mac = mac_of(&object.object).ok_or_else(|| SopsError::Malformed {
            location: object.location.clone(),
            field: "sops.mac".to_owned(),
            reason: "missing: a file without a MAC could have been altered; encrypt it again with `sops encrypt`".to_owned(),
        })?;
        if !self.verified.contains_key(mac) {
            let source = object.sops_source.as_ref().ok_or_else(|| {
                not_found("no file of the revision holds it as written (a template or generator made it); commit the SOPS file itself")
            })?;
            let limits = Limits::small(
                RenderLimits::default().max_file_bytes,
                MAX_DOCUMENTS_PER_FILE,
            );
            let documents = read_documents(&source.text, limits)
                .map_err(|_| not_found(&format!("{} does not read as YAML", source.path)))?;
            // Every SOPS document of the file: sops computes one MAC over those that share
            // a metadata block.
            let located: Vec<(String, &serde_yaml::Value)> = documents
                .iter()
                .filter(|d| is_sops_document(&d.value))
                .map(|d| (format!("{}: {}", source.path, d.describe()), &d.value))
                .collect();
            let located: Vec<(&serde_yaml::Value, &str)> =
                located.iter().map(|(l, d)| (*d, l.as_str())).collect();
            let verified = verify_file(&located, mac, self.identities)?.ok_or_else(|| {
                not_found(&format!(
                    "no document of {} holds it as written",
                    source.path
                ))
            })?;
            self.verified.insert(mac.to_owned(), verified);
        }
        self.verified
            .get(mac)
            .ok_or_else(|| not_found("it was not verified"))
    }
}
