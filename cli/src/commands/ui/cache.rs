//! What the pages show, kept current by watches with the user's credentials: the GitSyncs,
//! the SealingKeys and the GitSyncs' Events. Each list knows whether it could be read at all,
//! so a page says "forbidden" rather than showing an empty list as if it were the truth.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, ListParams};
use kube::runtime::watcher::{self, watcher};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// Whether a list could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The first list has not come back yet.
    Loading,
    /// Listed and watched.
    Ready,
    /// The API server refused: the user's RBAC does not allow it.
    Forbidden(String),
    /// Anything else (unreachable, not served); the items may be stale.
    Failed(String),
}

impl Access {
    /// Why it could not be read, if it could not.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Access::Forbidden(why) | Access::Failed(why) => Some(why),
            Access::Loading | Access::Ready => None,
        }
    }
}

/// `namespace`, `name`.
pub type Key = (String, String);

/// One watched list.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: BTreeMap<Key, T>,
    pub access: Access,
}

/// A watched list shared between its watch task and the pages.
#[derive(Debug)]
pub struct Watched<T> {
    state: RwLock<Listing<T>>,
}

impl<T> Default for Watched<T> {
    fn default() -> Self {
        Self {
            state: RwLock::new(Listing {
                items: BTreeMap::new(),
                access: Access::Loading,
            }),
        }
    }
}

impl<T> Watched<T> {
    /// A list that will not be read, and why.
    pub fn failed(why: String) -> Self {
        Self {
            state: RwLock::new(Listing {
                items: BTreeMap::new(),
                access: Access::Failed(why),
            }),
        }
    }

    /// Reads the list.
    pub fn read<R>(&self, f: impl FnOnce(&Listing<T>) -> R) -> R {
        match self.state.read() {
            Ok(state) => f(&state),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    /// Replaces the list, as a watch's first list does (tests fill lists this way).
    #[cfg(test)]
    pub fn set(&self, items: BTreeMap<Key, T>, access: Access) {
        self.write(|state| {
            state.items = items;
            state.access = access;
        });
    }

    fn write(&self, f: impl FnOnce(&mut Listing<T>)) {
        match self.state.write() {
            Ok(mut state) => f(&mut state),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// A counter bumped on every change to anything a page shows; live pages render again when
/// it moves.
pub type Changes = Arc<watch::Sender<u64>>;

/// Tells the live pages that something changed.
pub fn bump(changes: &Changes) {
    changes.send_modify(|n| *n = n.wrapping_add(1));
}

/// An API error as the access state it means. Errors that did not come from the API server
/// are told in fixed words: kube's own text can hold a credential plugin's output.
pub fn access_of(error: &kube::Error) -> Access {
    match error {
        kube::Error::Api(status) if status.code == 403 => Access::Forbidden(status.message.clone()),
        kube::Error::Api(status) if status.code == 401 => Access::Forbidden(
            "the cluster refused the credentials (401); refresh the kubeconfig".to_owned(),
        ),
        kube::Error::Api(status) => Access::Failed(format!("{} ({})", status.message, status.code)),
        kube::Error::Auth(_) => Access::Failed(
            "the kubeconfig's credentials could not be obtained; run `kubectl get ns` with the \
             same kubeconfig to see why"
                .to_owned(),
        ),
        _ => Access::Failed("cannot reach the API server".to_owned()),
    }
}

fn access_of_watch(error: &watcher::Error) -> Access {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => access_of(e),
        watcher::Error::WatchError(status) if status.code == 403 => {
            Access::Forbidden(status.message.clone())
        }
        watcher::Error::WatchError(status) => {
            Access::Failed(format!("{} ({})", status.message, status.code))
        }
        watcher::Error::NoResourceVersion => {
            Access::Failed("the API server does not support watching this list".to_owned())
        }
    }
}

/// Waits before watching again after an error: 1 s, doubling to 30 s.
#[derive(Debug)]
pub struct Retry(Duration);

impl Default for Retry {
    fn default() -> Self {
        Retry(Duration::from_secs(1))
    }
}

impl Retry {
    /// Sleeps, then doubles the next wait.
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(30));
    }

    /// A list came back: the next error waits 1 s again.
    pub fn reset(&mut self) {
        self.0 = Duration::from_secs(1);
    }
}

/// Whether `api` may be listed at all: one list of one item, so that a page can fall back to
/// a narrower scope (one namespace) before watching.
pub async fn probe<K>(api: &Api<K>) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
}

/// How many items a list keeps, and which one gives way to a new one when it is full.
#[derive(Debug, Clone, Copy)]
pub struct Bound<T> {
    /// The most items kept.
    pub max: usize,
    /// The age of an item (larger is newer): when full, the oldest is dropped for a newer
    /// one. Without it, new items are not kept once the list is full.
    pub age: Option<fn(&T) -> &str>,
}

impl<T> Bound<T> {
    /// Adds an item of a first list to `buffer`: beyond the bound, an aged list is trimmed to
    /// its newest now and then (cheaper than making room item by item), an unaged one stops
    /// taking items.
    fn buffer(&self, buffer: &mut BTreeMap<Key, T>, key: Key, item: T) {
        match self.age {
            Some(_) => {
                buffer.insert(key, item);
                if buffer.len() >= self.max.saturating_mul(2) {
                    self.trim(buffer);
                }
            }
            None if buffer.len() < self.max => {
                buffer.insert(key, item);
            }
            None => {}
        }
    }

    /// Keeps the newest `max` items.
    fn trim(&self, items: &mut BTreeMap<Key, T>) {
        let Some(age) = self.age else {
            return;
        };
        if items.len() <= self.max {
            return;
        }
        let mut ages: Vec<(&str, &Key)> = items.iter().map(|(k, v)| (age(v), k)).collect();
        ages.sort_unstable_by(|a, b| b.0.cmp(a.0));
        let dropped: Vec<Key> = ages[self.max..].iter().map(|(_, k)| (*k).clone()).collect();
        for key in dropped {
            items.remove(&key);
        }
    }

    /// Makes room for `key` in `items`; whether it may go in.
    fn admit(&self, items: &mut BTreeMap<Key, T>, key: &Key, item: &T) -> bool {
        if items.len() < self.max || items.contains_key(key) {
            return true;
        }
        let Some(age) = self.age else {
            return false;
        };
        let oldest = items
            .iter()
            .min_by(|a, b| age(a.1).cmp(age(b.1)))
            .map(|(k, v)| (k.clone(), age(v) < age(item)));
        match oldest {
            Some((oldest, true)) => {
                items.remove(&oldest);
                true
            }
            _ => false,
        }
    }
}

/// Watches `api` into `into`, keeping what `keep` makes of each object (`None`: not kept),
/// within `bound`, until the task is aborted. Errors are shown on the pages;
/// the watch starts again, with a fresh list, after a backoff.
pub fn spawn_watch<K, T>(
    api: Api<K>,
    config: watcher::Config,
    into: Arc<Watched<T>>,
    changes: Changes,
    keep: fn(K) -> Option<T>,
    bound: Bound<T>,
) -> tokio::task::JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    T: Send + Sync + 'static,
{
    tokio::spawn(async move {
        let mut retry = Retry::default();
        loop {
            // Each watch starts with a whole list: after an error the list is read again
            // rather than resumed, so what the page shows is never a partial list marked whole.
            let mut stream = watcher(api.clone(), config.clone()).boxed();
            let mut buffer: Option<BTreeMap<Key, T>> = None;
            let mut listed_at: Option<std::time::Instant> = None;
            let mut quiet = false;
            while let Some(event) = stream.next().await {
                let key = |o: &K| (o.namespace().unwrap_or_default(), o.name_any());
                match event {
                    Ok(watcher::Event::Init) => buffer = Some(BTreeMap::new()),
                    Ok(watcher::Event::InitApply(object)) => {
                        let k = key(&object);
                        if let (Some(buffer), Some(kept)) = (buffer.as_mut(), keep(object)) {
                            bound.buffer(buffer, k, kept);
                        }
                    }
                    Ok(watcher::Event::InitDone) => {
                        let mut items = buffer.take().unwrap_or_default();
                        bound.trim(&mut items);
                        into.write(|state| {
                            state.items = items;
                            state.access = Access::Ready;
                        });
                        listed_at = Some(std::time::Instant::now());
                        bump(&changes);
                    }
                    Ok(watcher::Event::Apply(object)) => {
                        let k = key(&object);
                        let kept = keep(object);
                        into.write(|state| {
                            match kept {
                                Some(kept) => {
                                    if bound.admit(&mut state.items, &k, &kept) {
                                        state.items.insert(k, kept);
                                    }
                                }
                                None => {
                                    state.items.remove(&k);
                                }
                            };
                        });
                        settle(&mut retry, listed_at);
                        bump(&changes);
                    }
                    Ok(watcher::Event::Delete(object)) => {
                        let k = key(&object);
                        into.write(|state| {
                            state.items.remove(&k);
                        });
                        settle(&mut retry, listed_at);
                        bump(&changes);
                    }
                    // The watch's history expired (410 Gone): list again, quietly.
                    Err(watcher::Error::WatchError(status)) if status.code == 410 => {
                        quiet = true;
                        break;
                    }
                    Err(error) => {
                        let access = access_of_watch(&error);
                        into.write(|state| match (listed_at, access) {
                            // Listed, then not allowed (or not able) to follow: the list
                            // stays, said to be as read.
                            (Some(_), access) => {
                                state.access = Access::Failed(format!(
                                    "not following changes ({}); shown as last read",
                                    access.reason().unwrap_or("the watch failed")
                                ));
                            }
                            // What may no longer be read is no longer shown.
                            (None, Access::Forbidden(why)) => {
                                state.items.clear();
                                state.access = Access::Forbidden(why);
                            }
                            (None, access) => state.access = access,
                        });
                        bump(&changes);
                        break;
                    }
                }
            }
            if !quiet {
                retry.wait().await;
            }
        }
    })
}

/// A watch that has followed changes for a while is healthy: the next error waits 1 s again.
/// (Right after a list is too soon: who may list but not watch fails there every time.)
fn settle(retry: &mut Retry, listed_at: Option<std::time::Instant>) {
    if listed_at.is_some_and(|at| at.elapsed() > Duration::from_secs(30)) {
        retry.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_list_drops_its_oldest_for_a_newer_item() {
        let bound = Bound::<String> {
            max: 2,
            age: Some(|s: &String| s.as_str()),
        };
        let key = |n: &str| (String::new(), n.to_owned());
        let mut items = BTreeMap::from([
            (key("a"), "2026-01-02".to_owned()),
            (key("b"), "2026-01-01".to_owned()),
        ]);
        assert!(bound.admit(&mut items, &key("c"), &"2026-01-03".to_owned()));
        assert!(!items.contains_key(&key("b")), "the oldest gave way");
        items.insert(key("c"), "2026-01-03".to_owned());
        assert!(!bound.admit(&mut items, &key("d"), &"2025-12-31".to_owned()));
        let mut many: BTreeMap<Key, String> = (0..10)
            .map(|n| (key(&n.to_string()), format!("2026-01-{n:02}")))
            .collect();
        bound.trim(&mut many);
        assert_eq!(
            many.values().cloned().collect::<Vec<_>>(),
            ["2026-01-08", "2026-01-09"],
            "the newest are kept"
        );
        let no_age = Bound::<String> { max: 2, age: None };
        assert!(!no_age.admit(&mut items, &key("e"), &"2027".to_owned()));
        assert!(
            no_age.admit(&mut items, &key("a"), &"2027".to_owned()),
            "an update fits"
        );
    }
}
