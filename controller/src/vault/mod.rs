//! The Vault client: references in Secrets (`ref+vault://PATH#KEY`,
//! `<path:MOUNT/data/PATH#KEY>`) found and read from Vault or OpenBao. The sync engine's
//! `resolve` stage uses it during a sync, all before anything is applied; the `refresh` loop
//! reads them again every `refreshInterval` without a Git fetch.
//!
//! Resolved values live in memory only, for the time of one apply: never on disk, in status,
//! events, logs or metrics. Each GitSync has its own [`Session`] (its login and its token).

mod auth;
mod config;
mod error;
mod kv;
mod resolve;
mod session;
mod transport;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::Value as Json;

pub(crate) use config::{Defaults, VaultConfig};
pub(crate) use error::VaultError;
pub(crate) use session::Session;

use crate::support::metrics::Metrics;
use crate::support::SyncKey;

/// The Vault side of the controller: its defaults and each GitSync's session.
pub(crate) struct Vault {
    /// The controller's `VAULT_*` defaults.
    pub defaults: Defaults,
    sessions: Mutex<HashMap<SyncKey, Arc<Session>>>,
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

    /// Forgets `key`'s session (deleted, suspended, or no references left).
    pub(crate) fn forget(&self, key: &SyncKey) {
        self.sessions().remove(key);
    }

    /// Every session, for token renewal.
    pub(crate) fn all_sessions(&self) -> Vec<Arc<Session>> {
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

/// The references of a set of objects, found before anything is read.
#[derive(Debug)]
pub(crate) struct References(Vec<resolve::Planned>);

impl References {
    /// Finds the references of `objects`; `sealed[i]` says the object was opened from a
    /// SealedSecret, whose values are never read as references. A reference outside a plain
    /// Secret's values, or a malformed one, fails the whole set.
    pub(crate) fn find(
        objects: &[(String, Json)],
        sealed: &[bool],
        default_namespace: &str,
    ) -> Result<Self, VaultError> {
        resolve::plan(objects, sealed, default_namespace).map(Self)
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The positions of the objects that hold references.
    pub(crate) fn indices(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().map(|p| p.index)
    }

    /// The error for references without Vault settings, naming the first.
    pub(crate) fn not_configured(&self) -> VaultError {
        let first = self.0.first();
        VaultError::NotConfigured {
            location: first.map(|p| p.location.clone()).unwrap_or_default(),
            field: first
                .and_then(|p| p.values.first())
                .map(|v| format!("{}.{}", v.source.field(), v.key))
                .unwrap_or_default(),
        }
    }
}

impl Vault {
    /// Reads what `references` name with `session` and puts the values into `objects`, all
    /// or nothing; the time it took goes to `sealsync_vault_resolve_seconds`.
    pub(crate) async fn read_into(
        &self,
        client: &kube::Client,
        metrics: &Metrics,
        session: &Session,
        references: &References,
        objects: &mut [(String, Json)],
    ) -> Result<(), VaultError> {
        let started = Instant::now();
        let results = session
            .read_all(
                &self.defaults,
                client,
                resolve::reads_of(&references.0),
                metrics,
            )
            .await?;
        resolve::substitute(&references.0, &results, objects)?;
        drop(results);
        metrics
            .vault_resolve
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }
}
