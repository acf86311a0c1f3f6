//! The key manager: answers rotation and retirement requests and keeps every SealingKey's
//! status current.
//!
//! It acts on watch events only (key Secrets, SealingKeys, GitSync status changes) and
//! compares what it would write with what its caches hold, so an idle cluster costs no
//! request. Each pass:
//! 1. reloads the key Secrets when their set changed;
//! 2. generates a key for each new SealingKey that has none yet (rotation);
//! 3. creates the SealingKey of each key Secret that has none (the first key, a restore);
//! 4. decides retirement requests;
//! 5. writes each SealingKey's status that changed, and republishes the recipients when the
//!    set of keys changed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{ObjectMeta, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource, ResourceExt};
use sealsync_core::Chain;
use sealsync_core::{GitSync, KeyState, SealingKey, SealingKeySpec};
use sealsync_crypto::{Identity, KeyId};
use tokio::sync::Notify;

use super::backup::BackupWriter;
use super::usage::{self, Usage};
use super::KeyHandles;
use super::{api_err, now_rfc3339, publish, secrets, KeyRing, KeysError, StoredKey, KEY_LABEL};
use crate::status::event_on;

/// How long events are gathered before a pass, so that a burst costs one pass.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How long a failed pass waits before it is tried again.
const RETRY: Duration = Duration::from_secs(5);
/// How often the recovery recipients file is read again.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs the key manager until the process ends. `usage_changed` is notified on every GitSync
/// event, so that the documents each key opens stay current.
///
/// `first_pass` is notified once the first pass is done: the caller starts reconciling only
/// then, so that the keys' bootstrap (their SealingKeys, the published recipients) is never
/// mistaken for work of an idle sync.
pub(crate) async fn run(
    handles: Arc<KeyHandles>,
    (gitsyncs, resources): (Store<GitSync>, usage::ResourceCache),
    usage_changed: Arc<Notify>,
    first_pass: Arc<Notify>,
    mut leading: crate::support::Leading,
) {
    let namespace = handles.settings.namespace.clone();
    let (sealing_keys, sk_writer) = reflector::store::<SealingKey>();
    let sk_events = watcher(
        Api::<SealingKey>::namespaced(handles.client.clone(), &namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(sk_writer);
    let (key_secrets, secret_writer) = reflector::store();
    let secret_events = watcher(
        Api::<PartialObjectMeta<Secret>>::namespaced(handles.client.clone(), &namespace),
        watcher::Config::default().labels(KEY_LABEL),
    )
    .default_backoff()
    .reflect(secret_writer);
    let mut events = futures::stream::select(ticks(sk_events), ticks(secret_events));

    let backup = BackupWriter::new(handles.settings.recovery_recipients_file.clone());
    let mut manager = Manager {
        handles,
        gitsyncs,
        resources,
        sealing_keys,
        key_secrets,
        loaded: None,
        backup,
        publish_pending: false,
        leading: leading.clone(),
    };
    // The recovery recipients file is re-read now and then (a ConfigMap update reaches a
    // mounted file without any API event); the check costs no request when nothing changed.
    // Automation deadlines are checked on the same tick, often enough for short periods.
    let settings = &manager.handles.settings;
    let tick = [settings.key_rotation_period, settings.retire_unused_after]
        .into_iter()
        .flatten()
        .map(|period| (period / 4).max(Duration::from_secs(1)))
        .fold(RECHECK, Duration::min);
    let mut recheck = tokio::time::interval(tick);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut due: Option<tokio::time::Instant> = None;
    loop {
        let sleep = async {
            match due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.next() => {
                if event.is_none() {
                    return;
                }
                due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
            }
            Ok(()) = leading.changed() => {
                // A replica that takes over the keys acts on what it has been watching.
                due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
            }
            () = usage_changed.notified() => {
                due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
            }
            _ = recheck.tick() => {
                due.get_or_insert_with(|| tokio::time::Instant::now() + DEBOUNCE);
            }
            () = sleep => {
                due = None;
                if !manager.ready() {
                    // Look again shortly: the caches' first lists may end without an event
                    // that wakes this loop.
                    due = Some(tokio::time::Instant::now() + DEBOUNCE);
                    continue;
                }
                match manager.pass().await {
                    Ok(()) => first_pass.notify_one(),
                    Err(e) => {
                        tracing::warn!(error = %Chain(&e), "keys: pass failed; retrying");
                        due = Some(tokio::time::Instant::now() + RETRY);
                    }
                }
            }
        }
    }
}

fn ticks<T, E: std::error::Error>(
    stream: impl Stream<Item = Result<T, E>> + Send + 'static,
) -> futures::stream::BoxStream<'static, ()> {
    stream
        .map(|event| {
            if let Err(e) = event {
                tracing::debug!(error = %Chain(&e), "keys: watch");
            }
        })
        .boxed()
}

pub(super) struct Manager {
    pub(super) handles: Arc<KeyHandles>,
    pub(super) gitsyncs: Store<GitSync>,
    /// Every SealedSecret resource, for the keys that opened them.
    pub(super) resources: usage::ResourceCache,
    pub(super) sealing_keys: Store<SealingKey>,
    pub(super) key_secrets: Store<PartialObjectMeta<Secret>>,
    /// The names and resourceVersions of the key Secrets last loaded.
    pub(super) loaded: Option<BTreeSet<(String, String)>>,
    /// Keeps the backup current.
    pub(super) backup: BackupWriter,
    /// The loaded keys differ from the published ones.
    pub(super) publish_pending: bool,
    /// Whether this replica holds the keys' Lease: only it writes (generates, retires,
    /// publishes, backs up); the others keep their key ring current.
    pub(super) leading: crate::support::Leading,
}

impl Manager {
    /// Whether the key caches have listed once.
    fn ready(&self) -> bool {
        crate::support::cache::listed(&self.sealing_keys)
            && crate::support::cache::listed(&self.key_secrets)
    }

    /// The documents each key opens, once the GitSync and SealedSecret caches have listed:
    /// before that a key could look unused, so nothing that depends on usage is decided.
    fn usage(&self) -> Option<Usage> {
        (crate::support::cache::listed(&self.gitsyncs) && self.resources.ready()).then(|| {
            let mut usage = usage::from_gitsyncs(self.gitsyncs.state().iter().map(|gs| &**gs));
            usage::add_resources(
                &mut usage,
                self.resources.store.state().iter().map(|r| &**r),
            );
            usage
        })
    }

    pub(super) fn namespace(&self) -> &str {
        &self.handles.settings.namespace
    }

    fn secrets_fingerprint(&self) -> BTreeSet<(String, String)> {
        self.key_secrets
            .state()
            .iter()
            .map(|m| (m.name_any(), m.resource_version().unwrap_or_default()))
            .collect()
    }

    async fn pass(&mut self) -> Result<(), KeysError> {
        // 1. Reload the keys when their Secrets changed.
        let fingerprint = self.secrets_fingerprint();
        if self.loaded.as_ref() != Some(&fingerprint) {
            let keys = secrets::load(&self.handles.client, self.namespace()).await?;
            self.install(keys).await;
            self.loaded = Some(fingerprint);
            // Kept until published: a later step of this pass may fail, and the retry sees
            // the keys as loaded already.
            self.publish_pending = true;
        }
        let sealing_keys = self.sealing_keys.state();
        if !*self.leading.borrow() {
            let mut ring = self.handles.keys.write().await;
            ring.retired.extend(retired_ids(&sealing_keys));
            return Ok(());
        }

        // 2. Rotation: a new SealingKey without a key gets one, generated here.
        let mut generated = false;
        for sk in &sealing_keys {
            let has_id = sk.status.as_ref().and_then(|s| s.key_id.as_ref()).is_some();
            if has_id
                || sk.metadata.deletion_timestamp.is_some()
                || self.has_key(&sk.name_any()).await
            {
                continue;
            }
            let identity = Identity::generate();
            let created_at = {
                let ring = self.handles.keys.read().await;
                creation_time_after(ring.keys().first().map(|k| k.created.as_str()))
            };
            let created = secrets::create(
                &self.handles.client,
                self.namespace(),
                &sk.name_any(),
                &identity,
                &created_at,
            )
            .await?;
            if created {
                tracing::info!(key_id = %identity.key_id(), sealing_key = %sk.name_any(), "keys: generated a new key (rotation)");
                self.handles.notify.key_rotated(
                    self.namespace(),
                    &sk.name_any(),
                    sk.uid().unwrap_or_default(),
                    &format!(
                        "generated key {} in the cluster; it is now the current key",
                        identity.key_id()
                    ),
                );
                event_on(
                    &self.handles.recorder,
                    &sk.object_ref(&()),
                    false,
                    "KeyGenerated",
                    format!(
                        "generated key {} in the cluster; it is now the current key",
                        identity.key_id()
                    ),
                )
                .await;
            }
            generated = true;
        }
        if generated {
            let keys = secrets::load(&self.handles.client, self.namespace()).await?;
            self.install(keys).await;
            self.publish_pending = true;
        }

        // 3. Every key Secret has its SealingKey.
        let names: BTreeSet<String> = sealing_keys.iter().map(|sk| sk.name_any()).collect();
        let missing: Vec<String> = {
            let ring = self.handles.keys.read().await;
            ring.keys()
                .iter()
                .filter(|k| !names.contains(&k.name))
                .map(|k| k.name.clone())
                .collect()
        };
        for name in missing {
            self.create_view(&name).await?;
        }

        // 4 and 5. Retirement requests, then the statuses.
        let usage = self.usage();
        let mut decided = BTreeSet::new();
        if let Some(usage) = &usage {
            for sk in &sealing_keys {
                if self.retire_if_requested(sk, usage).await? {
                    decided.insert(sk.name_any());
                }
            }
        }
        {
            // Added to, never replaced: a retirement of this pass is in the ring before the
            // cache shows its status.
            let mut ring = self.handles.keys.write().await;
            ring.retired.extend(retired_ids(&self.sealing_keys.state()));
        }
        // Compared in memory with the cache: only a status that changed is written. A status
        // written by a decision above is newer than the cache, so it is left alone until the
        // cache catches up.
        for sk in self.sealing_keys.state() {
            if !decided.contains(&sk.name_any()) {
                self.write_status(&sk, usage.as_ref(), None).await?;
            }
        }
        if let Some(usage) = &usage {
            self.export_metrics(usage).await;
            self.automate(usage).await?;
        }
        if self.publish_pending {
            let ring = self.handles.keys.read().await;
            publish(&self.handles.client, self.namespace(), &ring).await?;
            tracing::info!(key_ids = ?ring.key_ids(), "keys: published the recipients");
            drop(ring);
            self.publish_pending = false;
            self.retry_failed_decryptions();
        }
        let ring = self.handles.keys.read().await;
        self.backup
            .ensure(
                &self.handles.client,
                &self.handles.settings.namespace,
                &ring,
            )
            .await
    }

    /// A GitSync that failed to decrypt may open now (a restored key): it is reconciled at
    /// once rather than at its next interval.
    fn retry_failed_decryptions(&self) {
        for gs in self.gitsyncs.state() {
            let failed = gs
                .status
                .as_ref()
                .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| c.status == "False" && c.reason == "DecryptionFailed");
            if failed {
                self.handles.triggers.reconcile(&(
                    kube::ResourceExt::namespace(&*gs).unwrap_or_default(),
                    kube::ResourceExt::name_any(&*gs),
                ));
            }
        }
    }

    /// Keys by state, documents per key, and the creation time of the oldest key in use.
    async fn export_metrics(&self, usage: &Usage) {
        let metrics = &self.handles.metrics;
        let ring = self.handles.keys.read().await;
        let active: BTreeSet<String> = ring.key_ids().into_iter().collect();
        let missing = self
            .sealing_keys
            .state()
            .iter()
            .filter_map(|sk| sk.status.as_ref())
            .filter(|s| s.state == Some(KeyState::Missing))
            .count();
        for (state, n) in [
            (KeyState::Active, active.len()),
            (KeyState::Retired, ring.retired.len()),
            (KeyState::Missing, missing),
        ] {
            metrics
                .keys
                .get_or_create(&crate::support::metrics::StateLabels {
                    state: state.as_str(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        metrics.key_documents.clear();
        let mut oldest: Option<i64> = None;
        for key in ring.keys() {
            let id = key.key_id.to_string();
            let documents = usage.get(&id).map_or(0, Vec::len);
            metrics
                .key_documents
                .get_or_create(&crate::support::metrics::KeyLabels { key_id: id })
                .set(i64::try_from(documents).unwrap_or(i64::MAX));
            if documents > 0 {
                if let Ok(t) = key.created.parse::<k8s_openapi::jiff::Timestamp>() {
                    oldest = Some(oldest.map_or(t.as_second(), |o| o.min(t.as_second())));
                }
            }
        }
        metrics.oldest_key_in_use.set(oldest.unwrap_or(0));
    }

    async fn has_key(&self, name: &str) -> bool {
        self.handles.keys.read().await.position(name).is_some()
    }

    /// Replaces the loaded keys, keeping the retired ids.
    async fn install(&self, keys: Vec<StoredKey>) {
        let mut ring = self.handles.keys.write().await;
        let retired = std::mem::take(&mut ring.retired);
        *ring = KeyRing::new(keys, retired);
    }

    async fn create_view(&self, name: &str) -> Result<(), KeysError> {
        let api: Api<SealingKey> = Api::namespaced(self.handles.client.clone(), self.namespace());
        let view = SealingKey {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(self.namespace().to_owned()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sealsync".to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            spec: SealingKeySpec {},
            status: None,
        };
        match api.create(&PostParams::default(), &view).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(api_err(format!(
                "creating the SealingKey {}/{name}",
                self.namespace()
            ))(e)),
        }
    }
}

/// The creation time of a new key: now, but later than the current key's, so that the new
/// key sorts first even when it is made within the same second (times are kept to the second).
fn creation_time_after(current: Option<&str>) -> String {
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    let now = now_rfc3339();
    let Some(latest) = current.and_then(|c| c.parse::<Timestamp>().ok()) else {
        return now;
    };
    match now.parse::<Timestamp>() {
        Ok(t) if t > latest => now,
        _ => latest
            .checked_add(SignedDuration::from_secs(1))
            .map(|t| t.to_string())
            .unwrap_or(now),
    }
}

fn retired_ids(sealing_keys: &[Arc<SealingKey>]) -> BTreeMap<KeyId, String> {
    sealing_keys
        .iter()
        .filter_map(|sk| sk.status.as_ref())
        .filter(|s| s.state == Some(KeyState::Retired))
        .filter_map(|s| {
            let id = KeyId::parse(s.key_id.as_deref()?).ok()?;
            Some((id, s.retired.clone().unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_key_is_created_after_the_current_one() {
        let far = "2999-01-01T00:00:00Z";
        assert_eq!(creation_time_after(Some(far)), "2999-01-01T00:00:01Z");
        let past = "2001-01-01T00:00:00Z";
        assert!(creation_time_after(Some(past)).as_str() > past);
        assert!(!creation_time_after(None).is_empty());
    }
}
