//! The `vault` stage: references in Secrets (`ref+vault://PATH#KEY`,
//! `<path:MOUNT/data/PATH#KEY>`) resolved from Vault or OpenBao during the sync, all before
//! anything is applied, and read again every `refreshInterval` without a Git fetch.
//!
//! Resolved values live in memory only, for the time of one apply: never on disk, in status,
//! events, logs or metrics. Each GitSync has its own [`Session`] (its login and its token);
//! the [`Refresher`] keeps the unresolved Secrets of each GitSync's last applied revision and
//! re-applies those whose values changed.

mod auth;
mod config;
mod error;
mod kv;
mod refresh;
mod resolve;
mod session;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kube::ResourceExt;
use sealsync_core::GitSync;
use serde_json::Value as Json;

pub(crate) use config::{Defaults, VaultConfig};
pub(crate) use error::VaultError;
pub(crate) use refresh::{run_refreshes, Entry as RefreshEntry, RefSecret, Refresher};
pub(crate) use session::Session;

use crate::context::Shared;
use crate::heal::SyncKey;

/// The Vault side of the controller: its defaults, each GitSync's session, the refresher.
pub(crate) struct Vault {
    /// The controller's `VAULT_*` defaults.
    pub defaults: Defaults,
    sessions: Mutex<HashMap<SyncKey, Arc<Session>>>,
    /// Periodic re-resolution.
    pub refresher: Refresher,
    digest_key: ring::hmac::Key,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// No sessions yet.
    pub(crate) fn new(defaults: Defaults) -> Self {
        let rng = ring::rand::SystemRandom::new();
        // A key that never leaves the process: digests of values say only "changed or not".
        let digest_key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0u8; 32]));
        Self {
            defaults,
            sessions: Mutex::new(HashMap::new()),
            refresher: Refresher::default(),
            digest_key,
        }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<SyncKey, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The session of `key` for `config`: the current one while the settings are the same, a
    /// new one (a new login) when they changed.
    pub(crate) fn session(
        &self,
        key: &SyncKey,
        config: VaultConfig,
    ) -> Result<Arc<Session>, VaultError> {
        let mut sessions = self.sessions();
        if let Some(existing) = sessions.get(key) {
            if existing.fingerprint() == config.fingerprint() {
                return Ok(existing.clone());
            }
        }
        let session = Arc::new(Session::new(config)?);
        sessions.insert(key.clone(), session.clone());
        Ok(session)
    }

    /// The session of `key`, if it has one.
    pub(crate) fn existing(&self, key: &SyncKey) -> Option<Arc<Session>> {
        self.sessions().get(key).cloned()
    }

    /// Forgets `key`'s session and refreshes (deleted, suspended, or no references left).
    pub(crate) fn forget(&self, key: &SyncKey) {
        self.sessions().remove(key);
        self.refresher.forget(key);
    }

    /// Every session, for token renewal.
    fn all_sessions(&self) -> Vec<Arc<Session>> {
        self.sessions().values().cloned().collect()
    }

    /// A keyed digest of a Secret's values: equal exactly when the values are.
    pub(crate) fn digest(&self, object: &Json) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.digest_key);
        for field in ["data", "stringData"] {
            ctx.update(field.as_bytes());
            if let Some(map) = object[field].as_object() {
                for (k, v) in map {
                    ctx.update(&(k.len() as u64).to_be_bytes());
                    ctx.update(k.as_bytes());
                    let v = v.as_str().unwrap_or_default();
                    ctx.update(&(v.len() as u64).to_be_bytes());
                    ctx.update(v.as_bytes());
                }
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// What the stage found: the Secrets to refresh later (empty when the revision has no
/// references) and the settings they were resolved with.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// The Secrets with references, unresolved, with the digests of their values.
    pub secrets: Vec<RefSecret>,
    /// How often to read them again.
    pub refresh_interval: Option<std::time::Duration>,
}

/// Resolves the references of a revision's `objects` in place; `sealed[i]` marks objects
/// opened from SealedSecrets, whose values are never read as references.
pub(crate) async fn resolve_revision(
    shared: &Shared,
    gs: &GitSync,
    default_namespace: &str,
    objects: &mut [(String, Json)],
    sealed: &[bool],
) -> Result<Resolved, VaultError> {
    let planned = resolve::plan(objects, sealed, default_namespace)?;
    let key: SyncKey = (gs.namespace().unwrap_or_default(), gs.name_any());
    let Some(first) = planned.first() else {
        return Ok(Resolved::default());
    };
    let config = VaultConfig::resolve(
        gs.spec.vault.as_ref(),
        gs.spec.service_account_name.as_deref(),
        &key.0,
        &shared.vault.defaults,
        &shared.settings.trusted_namespaces,
    )?
    .ok_or_else(|| VaultError::NotConfigured {
        location: first.location.clone(),
        field: first
            .values
            .first()
            .map(|v| format!("{}.{}", v.source.field(), v.key))
            .unwrap_or_default(),
    })?;
    let refresh_interval = config.refresh_interval;
    let session = shared.vault.session(&key, config)?;
    let templates: Vec<RefSecret> = planned
        .iter()
        .map(|p| RefSecret::new(p.location.clone(), objects[p.index].1.clone()))
        .collect();
    read_and_substitute(shared, &session, &planned, objects).await?;
    let secrets = templates
        .into_iter()
        .zip(&planned)
        .map(|(mut t, p)| {
            t.digest = shared.vault.digest(&objects[p.index].1);
            t
        })
        .collect();
    Ok(Resolved {
        secrets,
        refresh_interval: Some(refresh_interval),
    })
}

/// Resolves the references of one object with `key`'s current session: the self-heal of a
/// Secret with references. Objects without references are returned as they are.
pub(crate) async fn resolve_object(
    shared: &Shared,
    key: &SyncKey,
    location: &str,
    object: Json,
    default_namespace: &str,
) -> Result<Json, VaultError> {
    let mut objects = vec![(location.to_owned(), object)];
    let planned = resolve::plan(&objects, &[false], default_namespace)?;
    if !planned.is_empty() {
        let session = shared.vault.existing(key).ok_or_else(|| {
            VaultError::Spec("no Vault session; the next full reconcile logs in".to_owned())
        })?;
        read_and_substitute(shared, &session, &planned, &mut objects).await?;
    }
    Ok(objects.pop().map(|(_, o)| o).unwrap_or(Json::Null))
}

/// Reads what `planned` names with `session` and puts the values into `objects`, all or
/// nothing; the time it took goes to `sealsync_vault_resolve_seconds`.
async fn read_and_substitute(
    shared: &Shared,
    session: &Session,
    planned: &[resolve::Planned],
    objects: &mut [(String, Json)],
) -> Result<(), VaultError> {
    let started = Instant::now();
    let results = session
        .read_all(
            &shared.vault.defaults,
            &shared.client,
            resolve::reads_of(planned),
            &shared.metrics,
        )
        .await?;
    resolve::substitute(planned, &results, objects)?;
    drop(results);
    shared
        .metrics
        .vault_resolve
        .observe(started.elapsed().as_secs_f64());
    Ok(())
}
