//! Reading Vault references again every `refreshInterval`, with no Git fetch: the Secrets of
//! each GitSync's last applied revision go through the sync engine again, which applies only
//! those whose values changed. A failure leaves the Secrets as they are, sets `Ready=False`
//! with reason `VaultFailed`, and is retried with backoff; the next success sets `Ready=True`
//! again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::core::ApiResource;
use sealsync_core::Chain;
use sealsync_core::GitSync;

use crate::heal::Healer;
use crate::status::StatusWriter;
use crate::support::events::EventRecorder;
use crate::support::metrics::Metrics;
use crate::support::retry::Backoff;
use crate::support::SyncKey;
use crate::support::Triggers;
use crate::sync::apply::{self, Resolver};
use crate::sync::engine::{Engine, Pass, Target};
use crate::sync::object::{Scope, SyncObject};
use crate::vault::VaultError;

/// Retries after a failed refresh: 15 s, doubled each time (jittered), up to the interval.
const RETRY: Backoff =
    Backoff::new(Duration::from_secs(15), 2.0, Duration::from_secs(3600)).jittered();
/// The longest one refresh may take (it holds the GitSync's lock, which a full reconcile
/// waits for).
const REFRESH_TIMEOUT: Duration = Duration::from_secs(120);

/// What one GitSync refreshes.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The Secrets with references as Git holds them (opened, not yet resolved or prepared),
    /// each with the digest of the values last applied.
    pub secrets: Vec<SyncObject>,
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
    pub actor: crate::support::Actor,
    due: Instant,
    failures: u32,
}

impl Entry {
    /// An entry due one interval from now.
    pub(crate) fn new(
        secrets: Vec<SyncObject>,
        interval: Duration,
        revision: String,
        default_namespace: String,
        force: bool,
        restart_secrets: std::collections::BTreeSet<crate::sync::restarts::SecretId>,
        actor: crate::support::Actor,
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

/// What refreshes work with.
#[derive(Debug)]
pub(crate) struct Refreshes {
    /// The sync engine every refresh goes through.
    pub(crate) engine: Engine,
    /// What to refresh, and when.
    pub(crate) refresher: Arc<Refresher>,
    /// Self-heal, told the state of each Secret a refresh wrote.
    pub(crate) healer: Healer,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Events.
    pub(crate) recorder: Arc<EventRecorder>,
    /// Re-plans, when a Secret that workloads restart on changed.
    pub(crate) triggers: Arc<Triggers>,
    /// The GitSyncs' status.
    pub(crate) status: Arc<StatusWriter>,
}

/// Runs until the process ends: refreshes each GitSync when due and renews tokens.
pub(crate) async fn run_refreshes(refreshes: Arc<Refreshes>) {
    loop {
        let vault = &refreshes.engine.vault;
        let refresher = &refreshes.refresher;
        let renewals = vault.all_sessions();
        let next = [
            refresher.next_due(),
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
            () = refresher.wake.notified() => continue,
        }
        for session in renewals {
            session
                .keep_alive(
                    &vault.defaults,
                    &refreshes.engine.clients.client,
                    &refreshes.metrics,
                )
                .await;
        }
        for key in refresher.due_now() {
            refresh(&refreshes, &key).await;
        }
    }
}

/// Refreshes one GitSync.
async fn refresh(refreshes: &Refreshes, key: &SyncKey) {
    let _guard = refreshes.refresher.lock(key).await;
    // Taken out while it runs; put back unless a full reconcile replaced or removed it.
    let Some(mut entry) = refreshes.refresher.entries().remove(key) else {
        return;
    };
    let result = match tokio::time::timeout(
        REFRESH_TIMEOUT,
        refresh_entry(refreshes, key, &mut entry),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(crate::Error::Vault(VaultError::TimedOut {
            seconds: REFRESH_TIMEOUT.as_secs(),
        })),
    };
    let api: Api<GitSync> = Api::namespaced(refreshes.engine.clients.client.clone(), &key.0);
    match result {
        Ok(changed) => {
            entry.failures = 0;
            entry.due = Instant::now() + entry.interval;
            refreshes
                .metrics
                .vault_last_refresh
                .get_or_create(&crate::support::metrics::GitSyncLabels {
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                })
                .set(chrono::Utc::now().timestamp());
            tracing::info!(gitsync = %format!("{}/{}", key.0, key.1), changed, "Vault references refreshed");
            report(refreshes, &api, key, &entry, None, changed).await;
        }
        Err(e) => {
            entry.failures = entry.failures.saturating_add(1);
            entry.due = Instant::now() + RETRY.delay(entry.failures).min(entry.interval);
            tracing::warn!(gitsync = %format!("{}/{}", key.0, key.1), error = %Chain(&e), "Vault refresh failed");
            report(refreshes, &api, key, &entry, Some(e), 0).await;
        }
    }
    refreshes
        .refresher
        .entries()
        .entry(key.clone())
        .or_insert(entry);
}

/// Resolves the entry's Secrets again and applies those whose values changed; returns how
/// many were applied.
async fn refresh_entry(
    refreshes: &Refreshes,
    key: &SyncKey,
    entry: &mut Entry,
) -> Result<usize, crate::Error> {
    let target = Target {
        key,
        default_namespace: &entry.default_namespace,
        actor: &entry.actor,
        force: entry.force,
        allow_plaintext: true,
        self_heal: true,
        progress: None,
    };
    // Only Secrets hold references: their resource needs no discovery.
    let objects = entry
        .secrets
        .iter()
        .map(|secret| {
            let mut object = secret.template();
            object.scope = Some(Scope {
                resource: Some(ApiResource::erase::<Secret>(&())),
                namespaced: true,
            });
            object
        })
        .collect();
    let pass = Pass::Objects {
        restart_secrets: &entry.restart_secrets,
    };
    let synced = refreshes
        .engine
        .run(&target, pass, objects, &mut Resolver::default(), &[])
        .await
        .map_err(|failure| failure.error)?;
    if synced.replan {
        // The full reconcile reads the references again and applies the Secrets with the
        // workloads' new checksums in one apply.
        refreshes.triggers.request_replan(key);
        return Ok(0);
    }
    let mut applied = 0;
    for write in &synced.writes {
        let wrote = !matches!(
            write.applied,
            apply::Applied::Unchanged | apply::Applied::Skipped
        );
        refreshes
            .metrics
            .count_applies("vault", usize::from(wrote), usize::from(!wrote));
        refreshes.healer.adopt(
            key,
            &write.id,
            write.after.clone(),
            write.intermediate.clone(),
        );
        applied += usize::from(wrote);
    }
    // The values now applied are the ones to compare with next time.
    for template in &mut entry.secrets {
        if let Some(object) = synced
            .objects
            .iter()
            .find(|o| o.location == template.location)
        {
            template.vault_digest = object.vault_digest;
        }
    }
    Ok(applied)
}

/// Status and events after a refresh: `Ready` goes to `False` (`VaultFailed`) on a failure
/// and back to `True` on the next success; an unchanged success writes nothing.
async fn report(
    refreshes: &Refreshes,
    api: &Api<GitSync>,
    key: &SyncKey,
    entry: &Entry,
    error: Option<crate::Error>,
    changed: usize,
) {
    let Ok(Some(gs)) = api.get_opt(&key.1).await else {
        return;
    };
    let generation = gs.metadata.generation;
    let message = match &error {
        Some(e) => format!("refreshing Vault references: {}", Chain(e)),
        None => format!("Applied revision: {}", entry.revision),
    };
    match &error {
        Some(e) => {
            crate::status::event(&refreshes.recorder, &gs, true, e.reason(), message.clone()).await;
        }
        None if changed > 0 => {
            crate::status::event(
                &refreshes.recorder,
                &gs,
                false,
                "VaultRefreshed",
                format!("{changed} Secret(s) changed in Vault were applied again"),
            )
            .await;
        }
        None => {}
    }
    let written = refreshes
        .status
        .update(key, Some(&gs), |st| match &error {
            Some(e) => {
                crate::status::set_failed(
                    &mut st.conditions,
                    e.reason(),
                    &message,
                    false,
                    generation,
                );
            }
            None => {
                let was_failing = st.conditions.iter().any(|c| {
                    c.type_ == "Ready" && c.status == "False" && c.reason == "VaultFailed"
                });
                if was_failing {
                    crate::status::set_condition(
                        &mut st.conditions,
                        "Ready",
                        true,
                        "Succeeded",
                        &message,
                        generation,
                    );
                    crate::status::remove_condition(&mut st.conditions, "Reconciling");
                }
            }
        })
        .await;
    if let Err(e) = written {
        tracing::warn!(error = %Chain(&e), "could not write the status after a Vault refresh");
    }
}
