//! Whether the objects a revision applied are healthy, read from watches: one full-object
//! watch per resource kind that some GitSync waits for, filtered by the owner label, which
//! reduces each event at once to the object's [`Health`] and drops the object. A GitSync that
//! waits registers what it waits for and wakes on each change; nothing polls.
//!
//! An object the revision does not hold (a `healthChecks` entry naming someone else's
//! object) gets a watch of its own for the length of the wait, with the GitSync's own client:
//! its RBAC, not the controller's, says whether it may be read.

mod custom;
mod watch;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use kube::core::ApiResource;
use kube::Client;
use sealsync_core::health::{healthy_once_it_exists, Health};
use sealsync_core::UnhealthyObject;
use tokio::time::Instant;

use crate::support::metrics::Metrics;
use crate::support::{Fingerprint, Gvr, SyncKey};

/// The most unhealthy objects a status lists.
pub(crate) const MAX_LISTED: usize = 50;

pub(crate) use custom::{compile as compile_custom, CustomHealth};

/// `(namespace, name)` of an object.
type ObjectKey = (Option<String>, String);

/// What a watch last saw of one object.
#[derive(Debug, Clone)]
struct Observed {
    resource_version: Option<u64>,
    generation: Option<i64>,
    uid: String,
    health: Health,
}

/// Where a watch's objects come from: every owned object of a kind, or one object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    /// The objects of a kind that carry an owner label; with custom expressions (their
    /// digest), only those of one GitSync, judged by them.
    Kind(Gvr, Option<(SyncKey, u64)>),
    /// One object not held by a revision, read as `actor` (the key of its client), judged by
    /// custom expressions when their digest is given.
    Object(Gvr, ObjectKey, String, Option<u64>),
}

impl Source {
    /// Where `awaited`, waited for by `waiter`, is watched.
    fn of(awaited: &Awaited, waiter: &SyncKey) -> Self {
        let gvr = Gvr::of(&awaited.resource);
        let digest = awaited.custom.as_ref().map(|c| c.digest);
        match &awaited.foreign {
            None => Source::Kind(gvr, digest.map(|d| (waiter.clone(), d))),
            Some((_, actor)) => Source::Object(
                gvr,
                (awaited.namespace.clone(), awaited.name.clone()),
                actor.clone(),
                digest,
            ),
        }
    }
}

/// One watch and what it has seen.
#[derive(Debug)]
struct Watched {
    task: tokio::task::AbortHandle,
    /// The first list has ended: an object missing from `objects` does not exist.
    listed: bool,
    objects: HashMap<ObjectKey, Observed>,
    /// The objects of a list in progress, which replace `objects` when it ends.
    relisting: Option<HashMap<ObjectKey, Observed>>,
    /// Waits using a per-object watch; it stops when none is left.
    users: usize,
    /// Why its last list or watch failed, until one succeeds.
    failure: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    watches: HashMap<Source, Watched>,
    /// The kind watches each GitSync waits on.
    interest: HashMap<SyncKey, HashSet<Source>>,
    /// The objects of the revision each GitSync last waited for, to tell at a poll whether
    /// they are still healthy.
    last: HashMap<SyncKey, Vec<Awaited>>,
}

pub(crate) struct Inner {
    client: Client,
    metrics: Arc<Metrics>,
    state: Mutex<State>,
    /// Bumped on every change a watch sees: waiters look again.
    changed: tokio::sync::watch::Sender<u64>,
}

/// The health watches, shared by every reconcile.
#[derive(Clone)]
pub(crate) struct HealthWatches {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HealthWatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthWatches").finish_non_exhaustive()
    }
}

/// One object a GitSync waits for.
#[derive(Clone)]
pub(crate) struct Awaited {
    /// Its resource.
    pub(crate) resource: ApiResource,
    /// Its namespace, for a namespaced object.
    pub(crate) namespace: Option<String>,
    /// Its name.
    pub(crate) name: String,
    /// Its state after the apply: what the watch must have seen before its health counts.
    pub(crate) applied: Option<Fingerprint>,
    /// `None` for an object of the revision (the owner-label watch of its kind sees it);
    /// otherwise the client that may read it and that client's key.
    pub(crate) foreign: Option<(Client, String)>,
    /// The expressions that judge it, from `spec.healthCheckExprs`.
    pub(crate) custom: Option<Arc<CustomHealth>>,
}

impl std::fmt::Debug for Awaited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Awaited")
            .field("kind", &self.resource.kind)
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every object is healthy.
    Healthy,
    /// Some object failed; the wait stopped there.
    Failed(Vec<UnhealthyObject>),
    /// Time ran out with these objects not healthy.
    TimedOut(Vec<UnhealthyObject>),
}

impl HealthWatches {
    /// No watch yet; each starts when some GitSync first waits for its kind.
    pub(crate) fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let (changed, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                client,
                metrics,
                state: Mutex::new(State::default()),
                changed,
            }),
        }
    }

    /// Whether objects of `resource` are waited for, and by which of `custom`'s expressions:
    /// `None` when they are healthy once they exist. Secrets are never watched, expressions
    /// or not.
    pub(crate) fn judged_by(
        resource: &ApiResource,
        custom: &[Arc<CustomHealth>],
    ) -> Option<Option<Arc<CustomHealth>>> {
        if resource.group.is_empty() && resource.kind == "Secret" {
            return None;
        }
        let found = custom::for_kind(custom, &resource.api_version, &resource.kind);
        if found.is_none() && healthy_once_it_exists(&resource.group, &resource.kind) {
            return None;
        }
        Some(found)
    }

    /// `key` waits for nothing any more: the watches only it needed stop.
    pub(crate) fn forget(&self, key: &SyncKey) {
        let mut state = self.inner.lock();
        state.last.remove(key);
        if state.interest.remove(key).is_some() {
            stop_unwanted(&mut state);
        }
    }

    /// Whether every object of the revision that `key` last waited for is healthy now, by the
    /// watches alone (no request); `None` when it has not waited.
    pub(crate) fn still_healthy(&self, key: &SyncKey) -> Option<bool> {
        let state = self.inner.lock();
        let last = state.last.get(key)?;
        Some(last.iter().all(|a| state.judge(a, key).is_current()))
    }

    /// Waits until every object of `awaited` is healthy, one has failed, or `deadline`.
    /// `on_change` gets the number of healthy objects whenever it changes.
    pub(crate) async fn wait(
        &self,
        key: &SyncKey,
        awaited: &[Awaited],
        deadline: Instant,
        on_change: &(dyn Fn(usize) + Sync),
    ) -> Verdict {
        let mut changes = self.inner.changed.subscribe();
        let foreign = self.start(key, awaited);
        let _release = Release {
            inner: &self.inner,
            sources: foreign,
        };
        let mut healthy_shown = usize::MAX;
        loop {
            changes.borrow_and_update();
            // Every object again: one healthy a moment ago may have failed since.
            let unhealthy = {
                let state = self.inner.lock();
                awaited
                    .iter()
                    .map(|a| (a, state.judge(a, key)))
                    .filter(|(_, judged)| !judged.is_current())
                    .collect::<Vec<_>>()
            };
            let healthy = awaited.len() - unhealthy.len();
            if healthy != healthy_shown {
                on_change(healthy);
                healthy_shown = healthy;
            }
            if unhealthy.is_empty() {
                return Verdict::Healthy;
            }
            if unhealthy
                .iter()
                .any(|(_, h)| matches!(h, Judged::Failed(_)))
            {
                // Fail fast, as Flux does: a failed Job or a rollout past its deadline does
                // not recover by waiting.
                return Verdict::Failed(listed(&unhealthy, true));
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Verdict::TimedOut(listed(&unhealthy, false));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    return Verdict::TimedOut(listed(&unhealthy, false));
                }
            }
        }
    }

    /// Registers `key`'s interest in the kinds of `awaited` and starts the watches missing;
    /// returns the per-object watches this wait uses.
    fn start(&self, key: &SyncKey, awaited: &[Awaited]) -> Vec<Source> {
        let mut state = self.inner.lock();
        let mut kinds: HashSet<Source> = HashSet::new();
        let mut foreign = Vec::new();
        for a in awaited {
            let source = Source::of(a, key);
            let client = match (&source, &a.foreign) {
                (Source::Object(..), Some((client, _))) => {
                    if !foreign.contains(&source) {
                        foreign.push(source.clone());
                    }
                    if let Some(watched) = state.watches.get_mut(&source) {
                        watched.users += 1;
                        continue;
                    }
                    client.clone()
                }
                _ => {
                    kinds.insert(source.clone());
                    if state.watches.contains_key(&source) {
                        continue;
                    }
                    self.inner.client.clone()
                }
            };
            let users = usize::from(matches!(source, Source::Object(..)));
            let task = watch::spawn(
                Arc::clone(&self.inner),
                source.clone(),
                client,
                (a.resource.clone(), a.custom.clone()),
            );
            state.watches.insert(source, Watched::new(task, users));
        }
        state.interest.insert(key.clone(), kinds);
        // The watches have seen these objects as applied by the time anyone asks again.
        let owned: Vec<Awaited> = awaited
            .iter()
            .filter(|a| a.foreign.is_none())
            .map(|a| Awaited {
                applied: None,
                ..a.clone()
            })
            .collect();
        state.last.insert(key.clone(), owned);
        stop_unwanted(&mut state);
        foreign
    }
}

/// Stops the per-object watches of a wait when it ends.
struct Release<'a> {
    inner: &'a Inner,
    sources: Vec<Source>,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        let mut state = self.inner.lock();
        for source in &self.sources {
            if let Some(watched) = state.watches.get_mut(source) {
                watched.users = watched.users.saturating_sub(1);
                if watched.users == 0 {
                    watched.task.abort();
                    state.watches.remove(source);
                }
            }
        }
    }
}

/// Stops the kind watches no GitSync waits for any more.
fn stop_unwanted(state: &mut State) {
    let wanted: HashSet<&Source> = state.interest.values().flatten().collect();
    let unwanted: Vec<Source> = state
        .watches
        .keys()
        .filter(|s| matches!(s, Source::Kind(..)) && !wanted.contains(s))
        .cloned()
        .collect();
    for source in unwanted {
        if let Some(watched) = state.watches.remove(&source) {
            watched.task.abort();
        }
    }
}

impl Watched {
    fn new(task: tokio::task::AbortHandle, users: usize) -> Self {
        Self {
            task,
            listed: false,
            objects: HashMap::new(),
            relisting: None,
            users,
            failure: None,
        }
    }
}

/// One object's health as a wait sees it.
#[derive(Debug, Clone)]
enum Judged {
    Current,
    InProgress(&'static str, String),
    Failed(String),
}

impl Judged {
    fn is_current(&self) -> bool {
        matches!(self, Judged::Current)
    }
}

impl State {
    fn judge(&self, a: &Awaited, waiter: &SyncKey) -> Judged {
        let key: ObjectKey = (a.namespace.clone(), a.name.clone());
        let source = Source::of(a, waiter);
        let Some(watched) = self.watches.get(&source) else {
            return Judged::InProgress("InProgress", "not watched yet".to_owned());
        };
        if !watched.listed {
            return Judged::InProgress(
                "InProgress",
                match &watched.failure {
                    Some(why) => format!("cannot list {}: {why}", a.resource.plural),
                    None => format!("waiting for the first list of {}", a.resource.plural),
                },
            );
        }
        let Some(observed) = watched.objects.get(&key) else {
            return Judged::InProgress("NotFound", "the object does not exist".to_owned());
        };
        if !reached(a.applied.as_ref(), observed) {
            return Judged::InProgress(
                "InProgress",
                "the applied version is not observed yet".to_owned(),
            );
        }
        match &observed.health {
            Health::Current => Judged::Current,
            Health::InProgress(why) => Judged::InProgress("InProgress", why.clone()),
            Health::Failed(why) => Judged::Failed(why.clone()),
            Health::Terminating => {
                Judged::InProgress("Terminating", "the object is being deleted".to_owned())
            }
            _ => Judged::InProgress("InProgress", "unknown health".to_owned()),
        }
    }
}

/// What the API server said when a list or watch failed (a missing permission names the
/// verb, the resource and the user), for the wait's message. Anything else, a decoding error
/// above all (it can quote an object), is not shown.
fn describe_failure(error: &kube::runtime::watcher::Error) -> String {
    use kube::runtime::watcher::Error as WatchError;
    let status = match error {
        WatchError::InitialListFailed(kube::Error::Api(status))
        | WatchError::WatchStartFailed(kube::Error::Api(status))
        | WatchError::WatchFailed(kube::Error::Api(status))
        | WatchError::WatchError(status) => status,
        _ => return "the API server's answer could not be read".to_owned(),
    };
    format!("{} ({})", status.message, status.code)
        .chars()
        .take(300)
        .collect()
}

/// Whether the watch has seen the object at least as new as the apply left it: the same
/// object (uid) at its generation for objects that have one, the resourceVersion (an etcd
/// revision, which only grows) for the rest.
fn reached(applied: Option<&Fingerprint>, observed: &Observed) -> bool {
    match applied {
        Some(Fingerprint::Generation {
            generation, uid, ..
        }) => {
            // A recreated object (a hook Job run afresh) starts at generation 1 again: the
            // old one's state must not stand in for it.
            (uid.is_empty() || *uid == observed.uid)
                && observed.generation.is_none_or(|seen| seen >= *generation)
        }
        Some(Fingerprint::Version(version)) => {
            match (version.parse::<u64>().ok(), observed.resource_version) {
                (Some(applied), Some(seen)) => seen >= applied,
                _ => true,
            }
        }
        None => true,
    }
}

/// The unhealthy objects for the status, failed ones first, at most [`MAX_LISTED`].
fn listed(unhealthy: &[(&Awaited, Judged)], failed_first: bool) -> Vec<UnhealthyObject> {
    let mut list: Vec<UnhealthyObject> = unhealthy
        .iter()
        .map(|(a, judged)| {
            let (status, message) = match judged {
                Judged::Current => ("Current", String::new()),
                Judged::InProgress(status, why) => (*status, why.clone()),
                Judged::Failed(why) => ("Failed", why.clone()),
            };
            UnhealthyObject {
                api_version: a.resource.api_version.clone(),
                kind: a.resource.kind.clone(),
                namespace: a.namespace.clone(),
                name: a.name.clone(),
                status: status.to_owned(),
                message,
            }
        })
        .collect();
    if failed_first {
        list.sort_by_key(|o| o.status != "Failed");
    }
    list.truncate(MAX_LISTED);
    list
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn relist_started(&self, source: &Source) {
        if let Some(w) = self.lock().watches.get_mut(source) {
            w.relisting = Some(HashMap::new());
        }
    }

    fn relist_done(&self, source: &Source) {
        {
            let mut state = self.lock();
            let Some(w) = state.watches.get_mut(source) else {
                return;
            };
            if let Some(objects) = w.relisting.take() {
                w.objects = objects;
            }
            w.listed = true;
            w.failure = None;
        }
        self.notify();
    }

    fn observe(&self, source: &Source, key: ObjectKey, observed: Option<Observed>, listing: bool) {
        {
            let mut state = self.lock();
            let Some(w) = state.watches.get_mut(source) else {
                return;
            };
            let objects = match (&mut w.relisting, listing) {
                (Some(relisting), true) => relisting,
                _ => &mut w.objects,
            };
            match observed {
                Some(observed) => {
                    objects.insert(key, observed);
                }
                None => {
                    objects.remove(&key);
                }
            }
            if listing {
                return;
            }
        }
        self.notify();
    }

    fn watch_failed(&self, source: &Source, error: &kube::runtime::watcher::Error) {
        {
            let mut state = self.lock();
            let Some(w) = state.watches.get_mut(source) else {
                return;
            };
            w.relisting = None;
            w.failure = Some(describe_failure(error));
        }
        self.notify();
    }
}

#[cfg(test)]
mod tests;
