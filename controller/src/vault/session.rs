//! One GitSync's connection to Vault: its transport, its token (renewed before it expires,
//! replaced on a 403), and the mounts it has looked up.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use futures::StreamExt;
use sealsync_core::Chain;
use zeroize::Zeroizing;

use super::auth::{self, Lease};
use super::config::{Defaults, VaultConfig};
use super::error::{ReadError, VaultError};
use super::kv::{self, Mount, ReadKey, SecretData};
use super::transport::Transport;
use crate::support::metrics::Metrics;

/// Reads in flight at once.
const CONCURRENT_READS: usize = 16;
/// The most bytes of values one resolution keeps: a GitSync may name any server, and the
/// answers of all its reads are held until the Secrets are written.
pub(super) const MAX_RESOLVED_BYTES: usize = 64 * 1024 * 1024;

/// What each distinct read returned.
pub(super) type ReadResults = HashMap<ReadKey, Result<SecretData, ReadError>>;

/// A GitSync's Vault session.
pub(crate) struct Session {
    config: VaultConfig,
    fingerprint: u64,
    transport: Transport,
    lease: tokio::sync::Mutex<Option<Lease>>,
    mounts: Mutex<Vec<Mount>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("address", &self.config.address)
            .field("auth", &self.config.auth.method())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session with `config`; nothing is sent until the first read.
    pub(crate) fn new(config: VaultConfig) -> Result<Self, VaultError> {
        Ok(Self {
            fingerprint: config.fingerprint(),
            transport: Transport::new(&config)?,
            config,
            lease: tokio::sync::Mutex::new(None),
            mounts: Mutex::new(Vec::new()),
        })
    }

    /// The hash of the settings it was made with.
    pub(crate) fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// When the token must be renewed, if one is held and it expires.
    pub(crate) fn renew_at(&self) -> Option<Instant> {
        self.lease
            .try_lock()
            .ok()
            .and_then(|l| l.as_ref().and_then(|l| l.renew_at))
    }

    /// A token: the held one, renewed when due, or a new login.
    async fn token(
        &self,
        defaults: &Defaults,
        kube: &kube::Client,
        metrics: &Metrics,
    ) -> Result<Zeroizing<String>, VaultError> {
        let mut held = self.lease.lock().await;
        if let Some(lease) = held.as_ref() {
            if !lease.due() {
                return Ok(lease.token.clone());
            }
            if let Some(renewed) = auth::renew(&self.transport, lease).await {
                metrics.count_vault("renew", "ok");
                let token = renewed.token.clone();
                *held = Some(renewed);
                return Ok(token);
            }
            metrics.count_vault("renew", "error");
        }
        *held = None;
        let lease = auth::login(&self.transport, &self.config, defaults, kube)
            .await
            .inspect_err(|_| metrics.count_vault("login", "error"))?;
        metrics.count_vault("login", "ok");
        let token = lease.token.clone();
        *held = Some(lease);
        Ok(token)
    }

    /// Renews the token if it is due; a failure is retried at the next read.
    pub(crate) async fn keep_alive(
        &self,
        defaults: &Defaults,
        kube: &kube::Client,
        metrics: &Metrics,
    ) {
        let due = self.lease.lock().await.as_ref().is_some_and(Lease::due);
        if due {
            if let Err(e) = self.token(defaults, kube, metrics).await {
                tracing::warn!(error = %Chain(&e), "renewing the Vault token");
            }
        }
    }

    /// The mount of `path`, from the ones looked up before or from Vault.
    async fn mount_of(
        &self,
        token: &str,
        path: &str,
        metrics: &Metrics,
    ) -> Result<Mount, ReadError> {
        if let Some(version) = self.config.kv_version {
            return Ok(kv::assumed_mount(path, version));
        }
        let known = self
            .mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|m| m.holds(path))
            .cloned();
        if let Some(mount) = known {
            return Ok(mount);
        }
        let mount = kv::detect_mount(&self.transport, token, path).await;
        metrics.count_vault(
            "mount",
            mount
                .as_ref()
                .map_or_else(ReadError::metric_label, |_| "ok"),
        );
        let mount = mount?;
        self.mounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(mount.clone());
        Ok(mount)
    }

    /// Reads every key once. A 403 may mean the token was revoked: the forbidden reads are
    /// tried once more after a new login.
    pub(crate) async fn read_all(
        &self,
        defaults: &Defaults,
        kube: &kube::Client,
        keys: BTreeSet<ReadKey>,
        metrics: &Metrics,
    ) -> Result<ReadResults, VaultError> {
        let token = self.token(defaults, kube, metrics).await?;
        let mut results = self.read_with(&token, keys, metrics).await;
        let forbidden: BTreeSet<ReadKey> = results
            .iter()
            .filter(|(_, r)| matches!(r, Err(ReadError::Forbidden { .. })))
            .map(|(k, _)| k.clone())
            .collect();
        if !forbidden.is_empty() {
            *self.lease.lock().await = None;
            let token = self.token(defaults, kube, metrics).await?;
            results.extend(self.read_with(&token, forbidden, metrics).await);
        }
        Ok(results)
    }

    async fn read_with(
        &self,
        token: &str,
        keys: BTreeSet<ReadKey>,
        metrics: &Metrics,
    ) -> ReadResults {
        // Mounts first, one lookup per mount, so that parallel reads do not all look it up;
        // then one read per secret and version, however many references name it.
        let mut results = ReadResults::new();
        let mut wanted: HashMap<(String, String, Option<u64>), Vec<ReadKey>> = HashMap::new();
        let mut mounts: HashMap<String, Mount> = HashMap::new();
        for key in keys {
            let located = self
                .mount_of(token, &key.path, metrics)
                .await
                .and_then(|mount| {
                    let rest = kv::path_in_mount(&mount, &key)?;
                    Ok((mount, rest))
                });
            match located {
                Ok((mount, rest)) => {
                    wanted
                        .entry((mount.path.clone(), rest, key.version))
                        .or_default()
                        .push(key);
                    mounts.insert(mount.path.clone(), mount);
                }
                Err(e) => {
                    results.insert(key, Err(e));
                }
            }
        }
        let kept = std::sync::atomic::AtomicUsize::new(0);
        let kept = &kept;
        let reads: Vec<_> = futures::stream::iter(wanted)
            .map(|((mount, rest, version), keys)| {
                let mount = mounts.get(&mount).cloned();
                async move {
                    let result = match mount {
                        Some(mount) => kv::read(&self.transport, token, &mount, &rest, version)
                            .await
                            .and_then(|data| {
                                let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
                                let total = kept
                                    .fetch_add(size, std::sync::atomic::Ordering::Relaxed)
                                    + size;
                                if total > MAX_RESOLVED_BYTES {
                                    return Err(ReadError::BadResponse {
                                        path: format!("{}/{rest}", mount.path),
                                        reason: format!(
                                            "the references of one sync read more than {} MiB",
                                            MAX_RESOLVED_BYTES / (1024 * 1024)
                                        ),
                                    });
                                }
                                Ok(data)
                            }),
                        None => Err(ReadError::BadResponse {
                            path: rest,
                            reason: "its mount was not found".to_owned(),
                        }),
                    };
                    metrics.count_vault(
                        "read",
                        result
                            .as_ref()
                            .map_or_else(ReadError::metric_label, |_| "ok"),
                    );
                    (keys, result)
                }
            })
            .buffer_unordered(CONCURRENT_READS)
            .collect()
            .await;
        for (keys, result) in reads {
            for key in keys {
                results.insert(key, result.clone());
            }
        }
        results
    }
}
