//! One object of a revision as the stages carry it: where it came from, its manifest as Git
//! holds it, what the stages found out about it, and the object itself as it goes from opened
//! to resolved to prepared.

use kube::core::ApiResource;
use sealsync_core::render::{wipe_json, Manifest};
use serde_json::Value as Json;

/// The last stage an object passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Stage {
    /// Rendered from the tree: `object` is the manifest, a SealedSecret still sealed.
    Rendered,
    /// Opened: a SealedSecret is now its Secret; Vault references are not read yet.
    Opened,
    /// Its Vault references hold their values.
    Resolved,
    /// Owner labels set and namespace filled in; its scope and inventory id are known.
    Prepared,
    /// Written, or found equal to the live object.
    Applied,
    /// Left as it was: its values did not change since they were last applied.
    Unchanged,
}

/// Where an object's kind is served, and whether it is namespaced.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// The resource, once discovery serves it (a CRD of the revision serves it only after the
    /// apply).
    pub(crate) resource: Option<ApiResource>,
    /// Whether the kind is namespaced.
    pub(crate) namespaced: bool,
}

/// What an object is, once prepared (its body goes to the write stage).
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    /// `apiVersion`.
    pub(crate) api_version: String,
    /// `kind`.
    pub(crate) kind: String,
    /// `metadata.namespace`, for namespaced kinds.
    pub(crate) namespace: Option<String>,
    /// `metadata.name`.
    pub(crate) name: String,
}

impl Identity {
    /// Of a prepared object.
    pub(crate) fn of(object: &Json) -> Self {
        Self {
            api_version: object["apiVersion"].as_str().unwrap_or_default().to_owned(),
            kind: object["kind"].as_str().unwrap_or_default().to_owned(),
            namespace: object["metadata"]["namespace"].as_str().map(str::to_owned),
            name: object["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// One object through the stages.
pub(crate) struct SyncObject {
    /// `file: document N (Kind ns/name)`, for messages.
    pub(crate) location: String,
    /// The file it came from.
    pub(crate) file: String,
    /// Its document in the file.
    pub(crate) document: String,
    /// The manifest as Git holds it (a SealedSecret stays sealed), as compact JSON: what
    /// self-heal applies again. Empty when no one needs it.
    pub(crate) manifest: Vec<u8>,
    /// Whether it was opened from a SealedSecret (its values are never read as references).
    pub(crate) sealed: bool,
    /// A Secret a Helm chart rendered from sealed values or cluster Secrets, none of whose
    /// values is in Git: not plaintext in Git. It keeps no manifest (that would keep its
    /// values between syncs), so self-heal leaves it to the next full sync.
    pub(crate) from_sealed_values: bool,
    /// For a SOPS document, the file that holds it as written, whose MAC the decrypt stage
    /// checks; `None` for anything else, and for a SOPS document no file holds.
    pub(crate) sops_source: Option<std::sync::Arc<crate::sync::sops::SopsSource>>,
    /// A hook (`sealsync.dev/hook`, or a Helm hook): run around the revision, never
    /// self-healed, never waited for as part of it.
    pub(crate) hook: bool,
    /// The digest of the Vault values last applied, for an object with references.
    pub(crate) vault_digest: Option<[u8; 32]>,
    /// Its scope, once planned.
    pub(crate) scope: Option<Scope>,
    /// Its inventory id, once prepared.
    pub(crate) id: String,
    /// What it is, once prepared.
    pub(crate) what: Option<Identity>,
    /// The object at `stage`. Plaintext once opened: wiped on drop.
    pub(crate) object: Json,
    /// The last stage it passed.
    pub(crate) stage: Stage,
}

impl SyncObject {
    /// A rendered manifest; `keep_manifest` keeps its Git form for self-heal.
    pub(crate) fn rendered(mut manifest: Manifest, keep_manifest: bool) -> Self {
        let location = manifest.location();
        Self {
            location,
            manifest: if keep_manifest {
                serde_json::to_vec(&manifest.object).unwrap_or_default()
            } else {
                Vec::new()
            },
            sealed: crate::sync::decrypt::is_sealed(&manifest)
                || sealsync_core::sops::is_sops_object(&manifest.object),
            from_sealed_values: false,
            sops_source: None,
            hook: crate::sync::hooks::is_hook(&manifest.object),
            file: std::mem::take(&mut manifest.file),
            document: std::mem::take(&mut manifest.document),
            vault_digest: None,
            scope: None,
            id: String::new(),
            what: None,
            object: std::mem::take(&mut manifest.object),
            stage: Stage::Rendered,
        }
    }

    /// A copy of an opened object with references, for reading them again later.
    pub(crate) fn template(&self) -> Self {
        Self {
            location: self.location.clone(),
            file: self.file.clone(),
            document: self.document.clone(),
            manifest: Vec::new(),
            sealed: self.sealed,
            from_sealed_values: self.from_sealed_values,
            sops_source: self.sops_source.clone(),
            hook: self.hook,
            vault_digest: self.vault_digest,
            scope: self.scope.clone(),
            id: self.id.clone(),
            what: self.what.clone(),
            object: self.object.clone(),
            stage: self.stage,
        }
    }

    /// `apiVersion`.
    pub(crate) fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    /// `kind`.
    pub(crate) fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
}

impl std::fmt::Debug for SyncObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncObject")
            .field("location", &self.location)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl Drop for SyncObject {
    fn drop(&mut self) {
        // Opened Secrets, resolved values and literal values beside references are plaintext.
        wipe_json(&mut self.object);
    }
}
