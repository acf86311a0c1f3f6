//! The `heal` stage: drift undone within about a second, from watches, one object at a time.
//!
//! After each successful full reconcile the controller hands over what it applied: for every
//! object its rendered manifest (still sealed, for a SealedSecret), its resource, and its state
//! right after the apply ([`Fingerprint`]). One metadata-only watch per resource in use,
//! filtered by the `sealsync.dev/gitsync-name` label, reports every change. A change whose
//! fingerprint differs from the recorded one queues that object alone. The correction
//! (see `correct`) opens and prepares its manifest again and applies it through the same dry-run
//! comparison as a full apply, so an object that still matches is not written, and a field that
//! another manager set and the manifest does not set is left alone.
//!
//! The controller's own writes record the resulting fingerprint, so the watch event they cause
//! matches and triggers nothing. When another controller keeps changing a field the manifest
//! sets, corrections back off as Argo CD's self-heal does (2 s, then ×3, up to 5 min) instead of
//! fighting at full speed.
//!
//! A watch that fails is started again with a fresh list (a relist also follows a 410 Gone), so
//! changes made while it was down are found by comparing the listed objects; objects missing
//! from the list are treated as deleted. While every watch of a GitSync is listed and the
//! revision is unchanged, a poll does not re-plan the objects at all: see [`Healer::armed`].

mod correct;
mod fights;
mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::Gvr;
use futures::channel::mpsc::{UnboundedReceiver, UnboundedSender};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::ApiResource;
use kube::Client;
use sealsync_core::{OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL};

pub(crate) use crate::support::{Fingerprint, SyncKey};
pub(crate) use correct::{run_corrections, Corrections};

use crate::support::metrics::Metrics;
use crate::support::retry::Backoff;
use crate::sync::object::SyncObject;
use fights::Fights;

/// The delay of a correction that failed: 2 s, doubled, at most 32 s.
const RETRY_BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), 2.0, Duration::from_secs(32));

/// One applied object: its resource, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ObjectKey {
    gvr: Gvr,
    namespace: Option<String>,
    name: String,
}

/// How a GitSync's objects are healed, from its spec at the last full reconcile.
#[derive(Debug, Clone)]
pub(crate) struct HealSpec {
    /// The GitSync's uid, for its events.
    pub uid: String,
    /// The generation the objects were applied for.
    pub generation: Option<i64>,
    /// The revision they came from.
    pub revision: String,
    /// `spec.force`.
    pub force: bool,
    /// `spec.allowPlaintextSecrets`.
    pub allow_plaintext: bool,
    /// The namespace of namespaced objects whose manifests name none.
    pub default_namespace: String,
    /// Who writes the corrections: the same identity as the full reconcile.
    pub actor: crate::support::Actor,
}

/// One applied object, as the full reconcile hands it over.
pub(crate) struct TrackedSource {
    /// The inventory id.
    pub id: String,
    /// The resource it is read and written through.
    pub resource: ApiResource,
    /// Whether the kind is namespaced.
    pub namespaced: bool,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// The file it came from.
    pub file: String,
    /// Its document in the file, for messages.
    pub document: String,
    /// The rendered manifest as compact JSON: a SealedSecret stays sealed here and is opened
    /// only for a correction, so no plaintext is kept between syncs.
    pub manifest: Vec<u8>,
}

impl TrackedSource {
    /// What self-heal watches of an object the engine applied: its manifest and resource;
    /// `None` for an object that was not written (no resource or identity).
    pub(crate) fn applied(mut object: SyncObject) -> Option<Self> {
        if object.from_sealed_values {
            // Its manifest would hold values from sealed files: none is kept.
            return None;
        }
        if object.hook {
            // Its delete policies delete it; healing would bring it back.
            return None;
        }
        let scope = object.scope.take()?;
        let what = object.what.take()?;
        Some(Self {
            id: std::mem::take(&mut object.id),
            resource: scope.resource?,
            namespaced: scope.namespaced,
            namespace: what.namespace,
            name: what.name,
            file: std::mem::take(&mut object.file),
            document: std::mem::take(&mut object.document),
            manifest: std::mem::take(&mut object.manifest),
        })
    }
}

impl std::fmt::Debug for TrackedSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedSource")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// What the watch last reported of an object.
#[derive(Debug, Clone)]
enum Seen {
    /// Nothing since the object was recorded.
    Unknown,
    /// It exists in this state; `manager` wrote it last, other than the controller.
    Present {
        fingerprint: Fingerprint,
        manager: Option<String>,
    },
    /// It was deleted, or lost the owner label.
    Gone,
}

#[derive(Debug)]
struct TrackedObject {
    source: Arc<TrackedSource>,
    /// The state known to match the manifest.
    synced: Option<Fingerprint>,
    /// States the controller's last correction passed through before `synced` (a
    /// managedFields take-over): their watch events are its own, not drift.
    own: Vec<Fingerprint>,
    /// A repeated correction waits until then, outside the correction slots.
    not_before: Option<Instant>,
    seen: Seen,
    /// A correction is queued or running.
    queued: bool,
    /// A change arrived while the correction ran: check again after it.
    again: bool,
    /// Corrections in a row, for the backoff of a fight.
    fights: Fights,
    /// Transient failures in a row.
    failures: u32,
    /// When the full reconcile handed it over: a relist that started earlier may not hold it.
    recorded: Instant,
}

impl TrackedObject {
    fn drifted(&self) -> bool {
        match &self.seen {
            Seen::Unknown => false,
            Seen::Gone => true,
            Seen::Present { fingerprint, .. } => {
                self.synced.as_ref() != Some(fingerprint) && !self.own.contains(fingerprint)
            }
        }
    }
}

#[derive(Debug)]
struct TrackedSync {
    spec: HealSpec,
    objects: HashMap<ObjectKey, TrackedObject>,
    /// The resources of `objects`, each once: what is checked per watch, not per object.
    resources: Vec<Gvr>,
    /// A full reconcile of this GitSync is running: it writes, not self-heal.
    busy: bool,
    /// When every object was last planned (not only those an incremental revision changed).
    last_full: Instant,
}

#[derive(Debug)]
struct WatchState {
    /// The first list finished and no error came since.
    listed: bool,
    /// When the current (re)list started.
    list_started: Instant,
    /// Objects seen during the current (re)list.
    relisted: HashSet<(Option<String>, String)>,
    task: tokio::task::AbortHandle,
}

#[derive(Debug, Default)]
struct State {
    syncs: HashMap<SyncKey, TrackedSync>,
    watches: HashMap<Gvr, WatchState>,
}

/// A queued correction.
#[derive(Debug)]
pub(crate) struct Job {
    sync: SyncKey,
    object: ObjectKey,
}

struct Inner {
    state: Mutex<State>,
    queue: UnboundedSender<Job>,
    client: Client,
    metrics: Arc<Metrics>,
    full_resync: Duration,
}

/// The registry of applied objects and their watches.
#[derive(Clone)]
pub(crate) struct Healer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Healer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("Healer")
            .field("gitsyncs", &state.syncs.len())
            .field("watches", &state.watches.len())
            .finish()
    }
}

/// The correction queue, for [`run_corrections`].
pub(crate) struct Queue(UnboundedReceiver<Job>);

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Queue")
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, sync: &SyncKey, key: &ObjectKey, object: &mut TrackedObject) {
        if object.queued {
            object.again = true;
            return;
        }
        object.queued = true;
        let _ = self.queue.unbounded_send(Job {
            sync: sync.clone(),
            object: key.clone(),
        });
    }

    /// A watch reported `meta` (or its deletion, with `gone`).
    fn observe(&self, gvr: &Gvr, meta: &ObjectMeta, gone: bool, relisting: bool) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let name = meta.name.clone().unwrap_or_default();
        if relisting {
            if let Some(watch) = state.watches.get_mut(gvr) {
                watch
                    .relisted
                    .insert((meta.namespace.clone(), name.clone()));
            }
        }
        let labels = meta.labels.as_ref();
        let label = |key: &str| labels.and_then(|l| l.get(key)).cloned();
        let (Some(sync_name), Some(sync_namespace)) =
            (label(OWNER_NAME_LABEL), label(OWNER_NAMESPACE_LABEL))
        else {
            return;
        };
        let sync_key = (sync_namespace, sync_name);
        let Some(sync) = state.syncs.get_mut(&sync_key) else {
            return;
        };
        let key = ObjectKey {
            gvr: gvr.clone(),
            namespace: meta.namespace.clone(),
            name,
        };
        let Some(object) = sync.objects.get_mut(&key) else {
            return;
        };
        object.seen = if gone {
            Seen::Gone
        } else {
            Seen::Present {
                fingerprint: Fingerprint::of(meta),
                manager: crate::support::fingerprint::last_other_manager(meta),
            }
        };
        if !sync.busy && object.drifted() {
            self.enqueue(&sync_key, &key, object);
        }
    }

    /// A watch starts a (re)list.
    fn relist_started(&self, gvr: &Gvr) {
        if let Some(watch) = self.lock().watches.get_mut(gvr) {
            watch.listed = false;
            watch.list_started = Instant::now();
            watch.relisted.clear();
        }
    }

    /// A watch finished its (re)list: objects it did not list are gone.
    fn relist_done(&self, gvr: &Gvr) {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(watch) = state.watches.get_mut(gvr) else {
            return;
        };
        watch.listed = true;
        let listed = std::mem::take(&mut watch.relisted);
        let started = watch.list_started;
        for (sync_key, sync) in &mut state.syncs {
            for (key, object) in &mut sync.objects {
                // An object recorded after the list started may have been created after it.
                if &key.gvr == gvr
                    && object.recorded < started
                    && !listed.contains(&(key.namespace.clone(), key.name.clone()))
                {
                    object.seen = Seen::Gone;
                    if !sync.busy {
                        self.enqueue(sync_key, key, object);
                    }
                }
            }
        }
    }

    /// A watch failed; it starts again with a fresh list.
    fn watch_failed(&self, gvr: &Gvr) {
        if let Some(watch) = self.lock().watches.get_mut(gvr) {
            watch.listed = false;
        }
    }
}

impl Healer {
    /// A healer with no objects, and the queue its corrections are taken from.
    pub(crate) fn new(
        client: Client,
        metrics: Arc<Metrics>,
        full_resync: Duration,
    ) -> (Self, Queue) {
        let (queue, receiver) = futures::channel::mpsc::unbounded();
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            queue,
            client,
            metrics,
            full_resync,
        });
        (Self { inner }, Queue(receiver))
    }

    /// A full reconcile of `sync` starts: self-heal stands aside until it ends.
    pub(crate) fn begin(&self, sync: &SyncKey) {
        if let Some(tracked) = self.inner.lock().syncs.get_mut(sync) {
            tracked.busy = true;
        }
    }

    /// A reconcile applied `sources`, leaving them as `observed` (inventory id → state): from
    /// now on these are the objects healed, and nothing else. `planned_fully` when it planned
    /// every object, which restarts the full-resync period; an incremental revision does not.
    pub(crate) fn record(
        &self,
        sync: &SyncKey,
        spec: HealSpec,
        (sources, observed): (Vec<Arc<TrackedSource>>, Vec<(String, Fingerprint)>),
        planned_fully: bool,
    ) {
        let observed: HashMap<String, Fingerprint> = observed.into_iter().collect();
        let mut guard = self.inner.lock();
        let state = &mut *guard;
        let (mut previous, last_full) = match state.syncs.remove(sync) {
            Some(s) if !planned_fully => (s.objects, s.last_full),
            Some(s) => (s.objects, Instant::now()),
            None => (HashMap::new(), Instant::now()),
        };
        let mut objects = HashMap::with_capacity(sources.len());
        let mut resources = HashMap::new();
        for source in sources {
            let key = ObjectKey {
                gvr: Gvr::of(&source.resource),
                namespace: source.namespace.clone(),
                name: source.name.clone(),
            };
            resources
                .entry(key.gvr.clone())
                .or_insert_with(|| source.resource.clone());
            let synced = observed.get(&source.id).cloned();
            let earlier = previous.remove(&key);
            let fights = earlier.as_ref().map(|o| o.fights).unwrap_or_default();
            objects.insert(
                key,
                TrackedObject {
                    source,
                    synced,
                    own: Vec::new(),
                    not_before: None,
                    // What the watch reported during the reconcile is compared below.
                    seen: earlier.map_or(Seen::Unknown, |o| o.seen),
                    queued: false,
                    again: false,
                    fights,
                    failures: 0,
                    recorded: Instant::now(),
                },
            );
        }
        state.syncs.insert(
            sync.clone(),
            TrackedSync {
                spec,
                objects,
                resources: resources.keys().cloned().collect(),
                busy: false,
                last_full,
            },
        );
        for (gvr, resource) in resources {
            if let std::collections::hash_map::Entry::Vacant(slot) = state.watches.entry(gvr) {
                let task = watch::spawn(Arc::clone(&self.inner), slot.key().clone(), resource);
                slot.insert(WatchState {
                    listed: false,
                    list_started: Instant::now(),
                    relisted: HashSet::new(),
                    task,
                });
            }
        }
        if let Some(tracked) = state.syncs.get_mut(sync) {
            for (key, object) in &mut tracked.objects {
                if object.drifted() {
                    self.inner.enqueue(sync, key, object);
                }
            }
        }
        stop_unused_watches(state);
    }

    /// A full reconcile failed after writing the objects `written` (inventory ids): their
    /// current state is accepted, so that self-heal does not undo the attempt before its retry.
    /// Everything else keeps being healed to the last good revision.
    pub(crate) fn end_failed(&self, sync: &SyncKey, written: &[String]) {
        let mut guard = self.inner.lock();
        let Some(tracked) = guard.syncs.get_mut(sync) else {
            return;
        };
        tracked.busy = false;
        for object in tracked.objects.values_mut() {
            if written.contains(&object.source.id) {
                if let Seen::Present { fingerprint, .. } = &object.seen {
                    object.synced = Some(fingerprint.clone());
                }
            }
        }
        let sync_key = sync.clone();
        for (key, object) in &mut tracked.objects {
            if object.drifted() {
                self.inner.enqueue(&sync_key, key, object);
            }
        }
    }

    /// The controller wrote the object `id` of `sync` outside a full reconcile (a Vault
    /// refresh): its new state, and the states it passed through, are not drift.
    pub(crate) fn adopt(
        &self,
        sync: &SyncKey,
        id: &str,
        state: Fingerprint,
        passed: Vec<Fingerprint>,
    ) {
        let mut guard = self.inner.lock();
        let Some(tracked) = guard.syncs.get_mut(sync) else {
            return;
        };
        if let Some(object) = tracked.objects.values_mut().find(|o| o.source.id == id) {
            object.synced = Some(state);
            object.own = passed;
        }
    }

    /// Stops healing `sync`'s objects: it was deleted, suspended, or turned self-heal off.
    pub(crate) fn forget(&self, sync: &SyncKey) {
        let mut guard = self.inner.lock();
        if guard.syncs.remove(sync).is_some() {
            stop_unused_watches(&mut guard);
        }
    }

    /// Whether `sync`'s objects are known to match `revision` at `generation` without
    /// re-planning them: they were applied for it by a full reconcile less than the full-resync
    /// period ago, every watch of theirs is listed, and no correction is pending. A poll that
    /// finds its revision unchanged then costs one ref listing and no API request. The error
    /// says why a full re-plan is needed.
    pub(crate) fn armed(
        &self,
        sync: &SyncKey,
        generation: Option<i64>,
        revision: &str,
    ) -> Result<(), &'static str> {
        let guard = self.inner.lock();
        let tracked = trusted(&guard, sync, generation, self.inner.full_resync)?;
        if tracked.spec.revision != revision {
            return Err("the spec or revision changed");
        }
        Ok(())
    }

    /// The objects of `sync`'s applied revision, each as it was applied and known (by its
    /// watch) to be still, when that can be trusted for `generation` (as for [`Self::armed`],
    /// whatever the revision): a new revision then plans only what differs from them. The
    /// error says why every object must be planned instead.
    pub(crate) fn applied(
        &self,
        sync: &SyncKey,
        generation: Option<i64>,
    ) -> Result<Vec<AppliedObject>, &'static str> {
        let guard = self.inner.lock();
        let tracked = trusted(&guard, sync, generation, self.inner.full_resync)?;
        tracked
            .objects
            .values()
            .map(|o| {
                Ok(AppliedObject {
                    source: Arc::clone(&o.source),
                    synced: o
                        .synced
                        .clone()
                        .ok_or("an object's applied state is unknown")?,
                })
            })
            .collect()
    }
}

/// One object of an applied revision, as self-heal knows it.
#[derive(Debug, Clone)]
pub(crate) struct AppliedObject {
    /// Its manifest, resource and place in the repository.
    pub(crate) source: Arc<TrackedSource>,
    /// Its state after the write, which its watch has seen unchanged since.
    pub(crate) synced: Fingerprint,
}

/// `sync`'s record when what it says can be trusted without re-planning: for `generation`,
/// from a full reconcile less than the full-resync period ago, with every watch listed and no
/// correction pending.
fn trusted<'a>(
    state: &'a State,
    sync: &SyncKey,
    generation: Option<i64>,
    full_resync: Duration,
) -> Result<&'a TrackedSync, &'static str> {
    let Some(tracked) = state.syncs.get(sync) else {
        return Err("nothing watched yet");
    };
    if tracked.spec.generation != generation {
        return Err("the spec or revision changed");
    }
    if tracked.busy {
        return Err("a full reconcile runs");
    }
    if tracked.last_full.elapsed() >= full_resync {
        return Err("the full-resync period passed");
    }
    if !tracked.objects.values().all(|o| !o.queued && !o.drifted()) {
        return Err("a drift correction is pending");
    }
    let listed = tracked
        .resources
        .iter()
        .all(|gvr| state.watches.get(gvr).is_some_and(|watch| watch.listed));
    if !listed {
        return Err("a watch is not listed");
    }
    Ok(tracked)
}

/// Stops the watches of resources no tracked object uses any more.
fn stop_unused_watches(state: &mut State) {
    let used: HashSet<&Gvr> = state
        .syncs
        .values()
        .flat_map(|s| s.resources.iter())
        .collect();
    let unused: Vec<Gvr> = state
        .watches
        .keys()
        .filter(|gvr| !used.contains(gvr))
        .cloned()
        .collect();
    for gvr in unused {
        if let Some(watch) = state.watches.remove(&gvr) {
            watch.task.abort();
        }
    }
}

#[cfg(test)]
#[path = "heal_tests.rs"]
mod heal_tests;
