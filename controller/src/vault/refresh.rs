//! Reading references again every `refreshInterval`, with no Git fetch: the Secrets of each
//! GitSync's last applied revision are resolved again, and only those whose values changed
//! are applied. A failure leaves the Secrets as they are, sets `Ready=False` with reason
//! `VaultFailed`, and is retried with backoff; the next success sets `Ready=True` again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::ApiResource;
use sealsync_core::GitSync;
use serde_json::Value as Json;

use super::{resolve, VaultError};
use crate::context::Shared;
use crate::heal::SyncKey;
use crate::sync::apply::{self, ApplyOptions, Desired};
use crate::sync::prepare::{self, Owner};

/// The first retry after a failed refresh; doubled each time, up to the interval.
const FIRST_RETRY: Duration = Duration::from_secs(15);
/// The longest one refresh may take (it holds the GitSync's lock, which a full reconcile
/// waits for).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// A Secret with references as Git holds it (decrypted, not yet resolved or prepared), and
/// a digest of the values last applied.
pub(crate) struct RefSecret {
    /// `file: document`.
    pub location: String,
    /// The object with its references.
    pub object: Json,
    /// The keyed digest of the values last applied.
    pub digest: [u8; 32],
}

impl RefSecret {
    /// A template without a digest yet.
    pub(crate) fn new(location: String, object: Json) -> Self {
        Self {
            location,
            object,
            digest: [0; 32],
        }
    }
}

impl std::fmt::Debug for RefSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefSecret")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Drop for RefSecret {
    fn drop(&mut self) {
        // Literal values beside the references (allowPlaintextSecrets) are plaintext.
        sealsync_core::render::wipe_json(&mut self.object);
    }
}

/// What one GitSync refreshes.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The Secrets.
    pub secrets: Vec<RefSecret>,
    /// How often.
    pub interval: Duration,
    /// The revision they came from, for the status message.
    pub revision: String,
    /// The namespace of Secrets whose manifests name none.
    pub default_namespace: String,
    /// `spec.force`.
    pub force: bool,
    /// The Secrets that opted-in workloads restart on: a change to one re-plans the revision
    /// instead, so that the workloads roll out with it.
    pub restart_secrets: std::collections::BTreeSet<crate::sync::restarts::SecretId>,
    /// Who applies the refreshed Secrets.
    pub actor: crate::context::Actor,
    due: Instant,
    failures: u32,
}

impl Entry {
    /// An entry due one interval from now.
    pub(crate) fn new(
        secrets: Vec<RefSecret>,
        interval: Duration,
        revision: String,
        default_namespace: String,
        force: bool,
        restart_secrets: std::collections::BTreeSet<crate::sync::restarts::SecretId>,
        actor: crate::context::Actor,
    ) -> Self {
        Self {
            secrets,
            interval,
            revision,
            default_namespace,
            force,
            restart_secrets,
            actor,
            due: Instant::now() + interval,
            failures: 0,
        }
    }
}

/// The GitSyncs with references, and a lock per GitSync that a full reconcile and a refresh
/// both hold, so that a refresh never applies an older revision's Secret over a newer one.
#[derive(Debug, Default)]
pub(crate) struct Refresher {
    entries: Mutex<HashMap<SyncKey, Entry>>,
    locks: Mutex<HashMap<SyncKey, Arc<tokio::sync::Mutex<()>>>>,
    wake: tokio::sync::Notify,
}

impl Refresher {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<SyncKey, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock of `key`.
    pub(crate) async fn lock(&self, key: &SyncKey) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// Refreshes `entry` for `key` from now on (replacing what was there); an entry without
    /// Secrets stops the refreshes.
    pub(crate) fn register(&self, key: &SyncKey, entry: Entry) {
        if entry.secrets.is_empty() {
            self.forget(key);
            return;
        }
        self.entries().insert(key.clone(), entry);
        self.wake.notify_one();
    }

    /// Stops refreshing `key`.
    pub(crate) fn forget(&self, key: &SyncKey) {
        self.entries().remove(key);
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn next_due(&self) -> Option<Instant> {
        self.entries().values().map(|e| e.due).min()
    }

    fn due_now(&self) -> Vec<SyncKey> {
        let now = Instant::now();
        self.entries()
            .iter()
            .filter(|(_, e)| e.due <= now)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

/// Runs until the process ends: refreshes each GitSync when due and renews tokens.
pub(crate) async fn run_refreshes(shared: Arc<Shared>) {
    loop {
        let vault = &shared.vault;
        let renewals = vault.all_sessions();
        let next = [
            vault.refresher.next_due(),
            renewals.iter().filter_map(|s| s.renew_at()).min(),
        ]
        .into_iter()
        .flatten()
        .min();
        let sleep = next.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            () = tokio::time::sleep(sleep.max(Duration::from_millis(50))) => {}
            () = vault.refresher.wake.notified() => continue,
        }
        for session in renewals {
            session
                .keep_alive(&vault.defaults, &shared.client, &shared.metrics)
                .await;
        }
        for key in vault.refresher.due_now() {
            refresh(&shared, &key).await;
        }
    }
}

/// Refreshes one GitSync.
async fn refresh(shared: &Shared, key: &SyncKey) {
    let _guard = shared.vault.refresher.lock(key).await;
    // Taken out while it runs; put back unless a full reconcile replaced or removed it.
    let Some(mut entry) = shared.vault.refresher.entries().remove(key) else {
        return;
    };
    let result =
        match tokio::time::timeout(REFRESH_TIMEOUT, refresh_entry(shared, key, &mut entry)).await {
            Ok(result) => result,
            Err(_) => Err(crate::Error::Vault(VaultError::TimedOut {
                seconds: REFRESH_TIMEOUT.as_secs(),
            })),
        };
    let api: Api<GitSync> = Api::namespaced(shared.client.clone(), &key.0);
    match result {
        Ok(changed) => {
            entry.failures = 0;
            entry.due = Instant::now() + entry.interval;
            shared
                .metrics
                .vault_last_refresh
                .get_or_create(&crate::support::metrics::GitSyncLabels {
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                })
                .set(chrono::Utc::now().timestamp());
            tracing::info!(gitsync = %format!("{}/{}", key.0, key.1), changed, "Vault references refreshed");
            report(shared, &api, key, &entry, None, changed).await;
        }
        Err(e) => {
            entry.failures = entry.failures.saturating_add(1);
            let backoff =
                FIRST_RETRY.saturating_mul(2u32.saturating_pow(entry.failures.min(16) - 1));
            entry.due = Instant::now() + backoff.min(entry.interval);
            tracing::warn!(gitsync = %format!("{}/{}", key.0, key.1), error = %e, "Vault refresh failed");
            report(shared, &api, key, &entry, Some(e), 0).await;
        }
    }
    shared
        .vault
        .refresher
        .entries()
        .entry(key.clone())
        .or_insert(entry);
}

/// Resolves the entry's Secrets again and applies those whose values changed; returns how
/// many were applied.
async fn refresh_entry(
    shared: &Shared,
    key: &SyncKey,
    entry: &mut Entry,
) -> Result<usize, crate::Error> {
    let session = shared
        .vault
        .existing(key)
        .ok_or_else(|| VaultError::Spec("no Vault session".to_owned()))?;
    let mut objects: Vec<(String, Json)> = entry
        .secrets
        .iter()
        .map(|s| (s.location.clone(), s.object.clone()))
        .collect();
    let planned = resolve::plan(&objects, &[], &entry.default_namespace)?;
    super::read_and_substitute(shared, &session, &planned, &mut objects).await?;
    let restarts_on_change =
        objects
            .iter()
            .zip(entry.secrets.iter())
            .any(|((_, object), template)| {
                let id = (
                    object["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or(&entry.default_namespace)
                        .to_owned(),
                    object["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
                entry.restart_secrets.contains(&id)
                    && shared.vault.digest(object) != template.digest
            });
    if restarts_on_change {
        for (_, object) in &mut objects {
            sealsync_core::render::wipe_json(object);
        }
        // The full reconcile reads the references again and applies the Secrets with the
        // workloads' new checksums in one apply.
        shared.request_replan(key);
        return Ok(0);
    }
    let resource = ApiResource::erase::<Secret>(&());
    let client = shared.client_as(&entry.actor)?;
    let mut applied = 0;
    for ((location, object), template) in objects.iter_mut().zip(entry.secrets.iter_mut()) {
        let digest = shared.vault.digest(object);
        if digest == template.digest {
            sealsync_core::render::wipe_json(object);
            continue;
        }
        let prepared = prepare::prepare(
            std::mem::take(object),
            location,
            true,
            Owner {
                namespace: &key.0,
                name: &key.1,
                default_namespace: &entry.default_namespace,
                controller_namespace: &shared.settings.namespace,
            },
        )?;
        let id = crate::sync::inventory::entry_of(&prepared).id;
        let desired = Desired {
            location: location.clone(),
            object: prepared,
        };
        let (outcome, seen, intermediate) = apply::apply_one(
            &client,
            (resource.clone(), true),
            &desired,
            ApplyOptions {
                force: entry.force,
                concurrency: 1,
                ready_timeout: shared.settings.ready_timeout,
                self_heal: true,
            },
        )
        .await?;
        drop(desired);
        let wrote = !matches!(outcome, apply::Applied::Unchanged | apply::Applied::Skipped);
        shared
            .metrics
            .count_applies("vault", usize::from(wrote), usize::from(!wrote));
        shared.healer.adopt(key, &id, seen, intermediate);
        template.digest = digest;
        applied += usize::from(wrote);
    }
    Ok(applied)
}

/// Status and events after a refresh: `Ready` goes to `False` (`VaultFailed`) on a failure
/// and back to `True` on the next success; an unchanged success writes nothing.
async fn report(
    shared: &Shared,
    api: &Api<GitSync>,
    key: &SyncKey,
    entry: &Entry,
    error: Option<crate::Error>,
    changed: usize,
) {
    let Ok(Some(gs)) = api.get_opt(&key.1).await else {
        return;
    };
    let mut st = gs.status.clone().unwrap_or_default();
    let generation = gs.metadata.generation;
    match &error {
        Some(e) => {
            let message = format!("refreshing Vault references: {e}");
            crate::status::set_failed(&mut st.conditions, e.reason(), &message, false, generation);
            crate::status::event(&shared.recorder, &gs, true, e.reason(), message).await;
        }
        None => {
            let was_failing = st
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "False" && c.reason == "VaultFailed");
            if was_failing {
                crate::status::set_condition(
                    &mut st.conditions,
                    "Ready",
                    true,
                    "Succeeded",
                    &format!("Applied revision: {}", entry.revision),
                    generation,
                );
            }
            if changed > 0 {
                crate::status::event(
                    &shared.recorder,
                    &gs,
                    false,
                    "VaultRefreshed",
                    format!("{changed} Secret(s) changed in Vault were applied again"),
                )
                .await;
            }
        }
    }
    if gs.status.as_ref() != Some(&st) {
        if let Err(e) = crate::status::write(api, &gs, &st).await {
            tracing::warn!(error = %e, "could not write the status after a Vault refresh");
        }
    }
}
