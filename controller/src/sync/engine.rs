//! The engine: one list of objects through the stages, for a whole revision (the full
//! reconcile) or for a few objects of the applied revision, each written alone (a drift
//! correction, a Vault refresh). Every pass opens, resolves, prepares and writes the same way,
//! so that a fix to a stage reaches all three.
//!
//! open (decrypt) → resolve (Vault) → restarts (checksums; a whole revision only) → plan
//! (scope, prepare, duplicates, order) → write (dry-run gated and all or nothing for a
//! revision; one object at a time otherwise).

use std::collections::BTreeSet;
use std::sync::Arc;

use sealsync_core::{Inventory, InventoryEntry, SealedSecretUsage};
use serde_json::Value as Json;
use tokio::sync::RwLock;

use super::apply::{self, Applied, ApplyOptions, ApplyOutcome, Desired, Resolver};
use super::decrypt::{self, DecryptError, Opened};
use super::error::Error;
use super::object::{Stage, SyncObject};
use super::plan;
use super::progress::{Progress, SyncStage};
use super::resolve::{self, Login, Resolved};
use super::restarts::{self, ChecksumKey, SecretId};
use crate::keys::KeyRing;
use crate::support::metrics::Metrics;
use crate::support::{Actor, Clients, Fingerprint, Settings, SyncKey};
use crate::vault::Vault;

/// What the stages share: the clients, the keys, Vault, the checksum key, metrics, settings.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    /// The controller's client and the impersonating ones.
    pub(crate) clients: Clients,
    /// The cluster keys.
    pub(crate) keys: Arc<RwLock<KeyRing>>,
    /// Vault sessions.
    pub(crate) vault: Arc<Vault>,
    /// The key of the restart checksums.
    pub(crate) checksum_key: Arc<ChecksumKey>,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The controller's settings.
    pub(crate) settings: Arc<Settings>,
    /// The watches that say whether applied objects are healthy, between waves and after.
    pub(crate) health: crate::health::HealthWatches,
}

/// The GitSync a pass writes for, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    /// The GitSync.
    pub(crate) key: &'a SyncKey,
    /// The namespace of namespaced objects whose manifests name none.
    pub(crate) default_namespace: &'a str,
    /// Who writes.
    pub(crate) actor: &'a Actor,
    /// `spec.force`.
    pub(crate) force: bool,
    /// `spec.allowPlaintextSecrets`.
    pub(crate) allow_plaintext: bool,
    /// Whether manual edits are taken back, fields they added included.
    pub(crate) self_heal: bool,
    /// Where the stages report how far they got, for a whole revision.
    pub(crate) progress: Option<&'a Progress>,
}

impl Target<'_> {
    fn enter(&self, stage: SyncStage, objects: usize) {
        if let Some(progress) = self.progress {
            progress.enter(stage, objects);
        }
    }
}

/// What a pass covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Pass<'a> {
    /// A whole revision: Vault logs in with the spec's settings, opted-in workloads get
    /// restart checksums, and the write is dry-run gated, staged and all or nothing.
    Revision {
        /// Which session reads Vault.
        login: Login<'a>,
        /// `spec.restartOnSecretChange`.
        restart_all: bool,
        /// Keep each object's manifest for self-heal.
        keep_manifests: bool,
        /// Objects of the applied revision that the new one holds unchanged and that are not
        /// planned again: no object planned may be one of them.
        carried: Option<&'a dyn super::plan::CarriedObjects>,
        /// When the waits for a wave's health give up.
        deadline: tokio::time::Instant,
        /// Run the revision's hooks: it is new, or it failed last time (an applied revision
        /// planned again leaves them alone).
        run_hooks: bool,
        /// `spec.healthCheckExprs`, compiled.
        custom: &'a [Arc<crate::health::CustomHealth>],
    },
    /// Objects of the applied revision, each written alone. An object with references whose
    /// values are those last applied is not written; a changed Secret that workloads restart
    /// on is not written either: the revision is re-planned, so the rollout goes with it.
    Objects {
        /// The Secrets that opted-in workloads restart on.
        restart_secrets: &'a BTreeSet<SecretId>,
    },
}

/// What one object's write did, in a pass of objects.
#[derive(Debug)]
pub(crate) struct Write {
    /// Its inventory id.
    pub(crate) id: String,
    /// What was done.
    pub(crate) applied: Applied,
    /// Its state afterwards.
    pub(crate) after: Fingerprint,
    /// The states its writes passed through before that.
    pub(crate) intermediate: Vec<Fingerprint>,
}

/// What a pass did.
#[derive(Debug, Default)]
pub(crate) struct Synced {
    /// The objects, written (their plaintext gone), with scope, id and manifest.
    pub(crate) objects: Vec<SyncObject>,
    /// Which keys opened each SealedSecret.
    pub(crate) usage: Vec<SealedSecretUsage>,
    /// The references to read again later.
    pub(crate) resolved: Resolved,
    /// The Secrets that opted-in workloads restart on.
    pub(crate) restart_secrets: BTreeSet<SecretId>,
    /// The inventory of the objects.
    pub(crate) inventory: Inventory,
    /// A whole revision's write.
    pub(crate) outcome: ApplyOutcome,
    /// Each object's write, in a pass of objects.
    pub(crate) writes: Vec<Write>,
    /// A pass of objects found a changed Secret that workloads restart on: nothing was
    /// written, and the revision must be planned again.
    pub(crate) replan: bool,
}

/// A failed pass: why, and the objects whose writes could not be undone.
#[derive(Debug)]
pub(crate) struct SyncFailure {
    /// Why.
    pub(crate) error: Error,
    /// Inventory entries of the objects that stay as written.
    pub(crate) written: Vec<InventoryEntry>,
}

impl<E: Into<Error>> From<E> for SyncFailure {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            written: Vec::new(),
        }
    }
}

impl Engine {
    /// Runs `objects` (rendered, or opened for a refresh) through the stages for `target`.
    pub(crate) async fn run(
        &self,
        target: &Target<'_>,
        pass: Pass<'_>,
        mut objects: Vec<SyncObject>,
        resolver: &mut Resolver,
        revision_crds: &[Json],
    ) -> Result<Synced, SyncFailure> {
        target.enter(SyncStage::Decrypt, objects.len());
        let mut synced = Synced {
            usage: self
                .open(target, &mut objects, matches!(pass, Pass::Objects { .. }))
                .await?,
            ..Synced::default()
        };
        let (login, keep_templates) = match pass {
            Pass::Revision { login, .. } => (login, true),
            Pass::Objects { .. } => (Login::Existing, false),
        };
        let previous: Vec<Option<[u8; 32]>> = objects.iter().map(|o| o.vault_digest).collect();
        target.enter(SyncStage::Resolve, objects.len());
        synced.resolved =
            resolve::resolve(self, target, login, &mut objects, keep_templates).await?;
        match pass {
            Pass::Revision {
                restart_all,
                keep_manifests,
                ..
            } => {
                synced.restart_secrets =
                    self.restarts(target, &mut objects, restart_all, keep_manifests);
            }
            Pass::Objects { restart_secrets } => {
                // Values equal to those last applied need no write.
                for (object, before) in objects.iter_mut().zip(previous) {
                    if before.is_some() && before == object.vault_digest {
                        object.stage = Stage::Unchanged;
                    }
                }
                let restarts_on_change = objects.iter().any(|o| {
                    o.stage == Stage::Resolved
                        && o.vault_digest.is_some()
                        && restart_secrets.contains(&secret_id(&o.object, target))
                });
                if restarts_on_change {
                    synced.replan = true;
                    return Ok(synced);
                }
            }
        }
        target.enter(SyncStage::Plan, objects.len());
        let carried = match pass {
            Pass::Revision { carried, .. } => carried,
            Pass::Objects { .. } => None,
        };
        plan::plan(self, target, resolver, &mut objects, revision_crds, carried).await?;
        synced.inventory = super::inventory::of_objects(
            objects
                .iter()
                .filter(|o| o.stage == Stage::Prepared)
                .map(|o| &o.object),
        );
        let client = self
            .clients
            .client_as(target.actor)
            .map_err(|source| Error::Kube {
                action: "creating the client that impersonates the service account",
                source,
            })?;
        target.enter(SyncStage::Apply, objects.len());
        match pass {
            Pass::Revision {
                deadline,
                run_hooks,
                custom,
                ..
            } => {
                let gate = super::waves::WaveGate {
                    health: &self.health,
                    key: target.key,
                    deadline,
                    custom,
                };
                synced.outcome = self
                    .write_revision(&client, target, resolver, &mut objects, (&gate, run_hooks))
                    .await?;
            }
            Pass::Objects { .. } => {
                synced.writes = self.write_each(&client, target, &mut objects).await?;
            }
        }
        synced.objects = objects;
        Ok(synced)
    }

    /// The `decrypt` stage: SealedSecrets and SOPS documents opened, plaintext Secrets refused
    /// unless allowed. `recorded`: the objects are manifests of an applied revision.
    async fn open(
        &self,
        target: &Target<'_>,
        objects: &mut [SyncObject],
        recorded: bool,
    ) -> Result<Vec<SealedSecretUsage>, DecryptError> {
        let keys = self.keys.read().await;
        let mut sops = super::sops::SopsOpener::new(keys.identities());
        let mut usage = Vec::new();
        for object in objects.iter_mut().filter(|o| o.stage == Stage::Rendered) {
            if sealsync_core::sops::is_sops_object(&object.object) {
                let (mut secret, used, plaintext) = sops
                    .open(object, target.default_namespace, recorded)
                    .inspect_err(|_| {
                        self.metrics.decrypt_failures.inc();
                    })?;
                // Values the file's rule leaves unencrypted are plaintext in Git.
                if !plaintext.is_empty() && !target.allow_plaintext {
                    sealsync_core::render::wipe_json(&mut secret);
                    return Err(DecryptError::Plaintext {
                        location: object.location.clone(),
                        keys: plaintext.join(", "),
                    });
                }
                object.object = secret;
                usage.push(used);
                object.stage = Stage::Opened;
                continue;
            }
            let mut opened = decrypt::open(
                &object.object,
                &object.location,
                &object.file,
                &keys,
                target.default_namespace,
                target.allow_plaintext || object.from_sealed_values,
            )
            .inspect_err(|e| {
                if matches!(
                    e,
                    DecryptError::Open { .. } | DecryptError::RetiredKey { .. }
                ) {
                    self.metrics.decrypt_failures.inc();
                }
            })?;
            if let Opened::Sealed {
                secret,
                usage: used,
            } = &mut opened
            {
                object.object = std::mem::take(secret);
                usage.push(used.clone());
            }
            object.stage = Stage::Opened;
        }
        Ok(usage)
    }

    /// The `restarts` stage: opted-in workloads carry a checksum of the Secrets they use, in
    /// what is applied and in the manifest self-heal applies again.
    fn restarts(
        &self,
        target: &Target<'_>,
        objects: &mut [SyncObject],
        all: bool,
        keep_manifests: bool,
    ) -> BTreeSet<SecretId> {
        let found = restarts::annotate(objects, &self.checksum_key, all, target.default_namespace);
        if keep_manifests {
            for (index, checksum) in &found.annotated {
                let Some(object) = objects.get_mut(*index) else {
                    continue;
                };
                if let Ok(mut manifest) = serde_json::from_slice::<Json>(&object.manifest) {
                    restarts::set_template_annotation(&mut manifest, checksum);
                    object.manifest = serde_json::to_vec(&manifest).unwrap_or_default();
                }
            }
        }
        found.secrets
    }

    /// The `apply` stage of a whole revision.
    async fn write_revision(
        &self,
        client: &kube::Client,
        target: &Target<'_>,
        resolver: &mut Resolver,
        objects: &mut [SyncObject],
        (gate, run_hooks): (&super::waves::WaveGate<'_>, bool),
    ) -> Result<ApplyOutcome, SyncFailure> {
        let desired: Vec<Desired> = objects
            .iter_mut()
            .map(|o| {
                o.stage = Stage::Applied;
                Desired {
                    location: o.location.clone(),
                    object: std::mem::take(&mut o.object),
                }
            })
            .collect();
        let sequence = super::sequence::Sequence::of(desired).map_err(Error::Apply)?;
        let outcome = sequence
            .apply(
                client,
                resolver,
                ApplyOptions {
                    force: target.force,
                    concurrency: self.settings.apply_concurrency,
                    ready_timeout: self.settings.ready_timeout,
                    self_heal: target.self_heal,
                    progress: target.progress,
                },
                (gate, run_hooks),
            )
            .await?;
        self.metrics.count_applies(
            "reconcile",
            outcome.created + outcome.configured + outcome.recreated,
            outcome.unchanged,
        );
        // Kinds a CRD of the revision serves are known now.
        for object in objects.iter_mut() {
            if let Some(scope) = object.scope.as_mut().filter(|s| s.resource.is_none()) {
                let Some(what) = &object.what else {
                    continue;
                };
                if let Ok(Some((resource, _))) = resolver
                    .resolve(&self.clients.client, &what.api_version, &what.kind)
                    .await
                {
                    scope.resource = Some(resource);
                }
            }
        }
        Ok(outcome)
    }

    /// The `apply` stage of a pass of objects: each prepared object alone.
    async fn write_each(
        &self,
        client: &kube::Client,
        target: &Target<'_>,
        objects: &mut [SyncObject],
    ) -> Result<Vec<Write>, Error> {
        let mut writes = Vec::new();
        for object in objects.iter_mut().filter(|o| o.stage == Stage::Prepared) {
            let scope = object.scope.clone().ok_or_else(|| unknown_scope(object))?;
            let resource = scope.resource.ok_or_else(|| unknown_scope(object))?;
            let desired = Desired {
                location: object.location.clone(),
                object: std::mem::take(&mut object.object),
            };
            object.stage = Stage::Applied;
            let (applied, after, intermediate) = apply::apply_one(
                client,
                (resource, scope.namespaced),
                &desired,
                ApplyOptions {
                    force: target.force,
                    concurrency: 1,
                    ready_timeout: self.settings.ready_timeout,
                    self_heal: target.self_heal,
                    progress: None,
                },
            )
            .await?;
            writes.push(Write {
                id: object.id.clone(),
                applied,
                after,
                intermediate,
            });
        }
        Ok(writes)
    }
}

fn unknown_scope(object: &SyncObject) -> Error {
    Error::Apply(apply::ApplyError::Transient {
        location: object.location.clone(),
        message: "the object's resource is not known".to_owned(),
    })
}

/// The `(namespace, name)` of a Secret, for the restart checksums.
fn secret_id(object: &Json, target: &Target<'_>) -> SecretId {
    (
        object["metadata"]["namespace"]
            .as_str()
            .unwrap_or(target.default_namespace)
            .to_owned(),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;
