//! The objects of one GitSync, followed while its page is open: the inventory its status
//! records, then one watch per kind and namespace by the owner labels, each object reduced to
//! its health by the built-in rules. Kinds that are healthy once they exist, Secrets always
//! among them, are watched by metadata only: no Secret value is ever requested.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::GroupVersionKind;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, watcher};
use kube::{Client, ResourceExt};
use sealsync_core::health::{health_of, healthy_once_it_exists, Health};
use sealsync_core::inventory::InventoryEntry;
use sealsync_core::inventory_read::ReadError;
use sealsync_core::{GitSync, InventoryStatus, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL};

use super::cache::{access_of, bump, Access, Changes, Retry};

/// How long a view is kept after its page was last shown or streamed.
const IDLE: Duration = Duration::from_secs(60);
/// How long a page waits for the first lists before it is shown with what has come.
const FIRST_LIST: Duration = Duration::from_secs(10);
/// The most objects a view reads from an inventory: a larger GitSync is summed up, not listed.
pub const MAX_VIEW_OBJECTS: u64 = 50_000;
/// The most watches one view opens (one per kind and namespace); the rest are not followed.
const MAX_WATCHES: usize = 300;

/// One kind in one namespace (`None`: cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: Option<String>,
}

/// What one group's watch knows.
#[derive(Debug)]
pub struct GroupState {
    pub access: Access,
    /// Health by object name, for the objects that carry this GitSync's labels.
    pub health: HashMap<String, Health>,
}

/// The objects of one GitSync and their health.
#[derive(Debug)]
pub struct ObjectsView {
    /// The status the view was built from: a new one means a new view.
    built_from: (String, Option<InventoryStatus>),
    /// The inventory, or why it could not be read (`Forbidden` or `Failed`).
    pub entries: Result<Vec<InventoryEntry>, Access>,
    /// Each group's names (from the inventory) and what its watch knows.
    pub groups: BTreeMap<Group, (Vec<String>, Arc<RwLock<GroupState>>)>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    last_used: Mutex<Instant>,
}

impl Drop for ObjectsView {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl ObjectsView {
    /// Whether every group's first list has come back (or failed).
    fn settled(&self) -> bool {
        self.groups.values().all(|(_, state)| {
            state
                .read()
                .map(|s| s.access != Access::Loading)
                .unwrap_or(true)
        })
    }

    /// A view of fixed health, without watches, for rendering tests.
    #[cfg(test)]
    pub fn fixed(
        entries: Vec<InventoryEntry>,
        groups: BTreeMap<Group, (Vec<String>, GroupState)>,
    ) -> Self {
        ObjectsView {
            built_from: (String::new(), None),
            entries: Ok(entries),
            groups: groups
                .into_iter()
                .map(|(g, (names, state))| (g, (names, Arc::new(RwLock::new(state)))))
                .collect(),
            tasks: Vec::new(),
            last_used: Mutex::new(Instant::now()),
        }
    }

    /// Marks the view as in use now.
    pub fn touch(&self) {
        if let Ok(mut at) = self.last_used.lock() {
            *at = Instant::now();
        }
    }
}

/// The views of the GitSyncs whose pages are open.
#[derive(Debug, Default)]
pub struct Views {
    open: Mutex<HashMap<(String, String), Arc<ObjectsView>>>,
}

impl Views {
    /// The view of `gs`, built (and its watches started) if it has none or its inventory
    /// changed; waits a little for the first lists so the first paint is complete.
    pub async fn view_for(
        &self,
        client: &Client,
        gs: &GitSync,
        changes: &Changes,
    ) -> Arc<ObjectsView> {
        let key = (gs.namespace().unwrap_or_default(), gs.name_any());
        let built_from = (
            gs.uid().unwrap_or_default(),
            gs.status.as_ref().and_then(|s| s.inventory.clone()),
        );
        let existing = self
            .open
            .lock()
            .ok()
            .and_then(|open| open.get(&key).cloned())
            .filter(|view| view.built_from == built_from);
        let view = match existing {
            Some(view) => view,
            None => {
                let view = Arc::new(build(client, gs, built_from, changes).await);
                if let Ok(mut open) = self.open.lock() {
                    open.insert(key, view.clone());
                }
                view
            }
        };
        view.touch();
        let deadline = Instant::now() + FIRST_LIST;
        while !view.settled() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        view
    }

    /// Drops the views no page has used for a while, stopping their watches.
    pub fn sweep(&self) {
        if let Ok(mut open) = self.open.lock() {
            open.retain(|_, view| {
                let idle = view
                    .last_used
                    .lock()
                    .map(|at| at.elapsed() > IDLE)
                    .unwrap_or(true);
                // A page being rendered holds a reference; an open live page touches the
                // view at every render, at least every few seconds.
                !idle || Arc::strong_count(view) > 1
            });
        }
    }
}

async fn build(
    client: &Client,
    gs: &GitSync,
    built_from: (String, Option<InventoryStatus>),
    changes: &Changes,
) -> ObjectsView {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let entries = match &built_from.1 {
        None => Ok(Vec::new()),
        Some(recorded) if recorded.count() > MAX_VIEW_OBJECTS => Err(Access::Failed(format!(
            "{} objects, more than the {MAX_VIEW_OBJECTS} a page lists; `sealsync status {name} -n {namespace}` lists them all",
            recorded.count()
        ))),
        Some(recorded) => {
            sealsync_core::inventory_read::read(client, &namespace, &built_from.0, recorded)
                .await
                .map(|inventory| inventory.entries)
                .map_err(|e| match e {
                    ReadError::Api { name, source } => {
                        let access = access_of(&source);
                        let why = format!(
                            "reading the inventory ConfigMap {name}: {}",
                            access.reason().unwrap_or("failed")
                        );
                        match access {
                            Access::Forbidden(_) => Access::Forbidden(why),
                            _ => Access::Failed(why),
                        }
                    }
                    lost => Access::Failed(lost.to_string()),
                })
        }
    };
    let mut groups: BTreeMap<Group, (Vec<String>, Arc<RwLock<GroupState>>)> = BTreeMap::new();
    for entry in entries.as_deref().unwrap_or_default() {
        let Some((ns, object, group, kind)) = entry.parts() else {
            continue;
        };
        let group = Group {
            group: group.to_owned(),
            version: entry.v.clone(),
            kind: kind.to_owned(),
            namespace: ns.map(str::to_owned),
        };
        // The status is the controller's, but a path is built from it: checked all the same.
        if !group.is_well_formed() {
            continue;
        }
        groups
            .entry(group)
            .or_insert_with(|| {
                (
                    Vec::new(),
                    Arc::new(RwLock::new(GroupState {
                        access: Access::Loading,
                        health: HashMap::new(),
                    })),
                )
            })
            .0
            .push(object.to_owned());
    }
    let selector = format!("{OWNER_NAME_LABEL}={name},{OWNER_NAMESPACE_LABEL}={namespace}");
    let mut tasks = Vec::new();
    for (index, (group, (_, state))) in groups.iter().enumerate() {
        if index >= MAX_WATCHES {
            if let Ok(mut s) = state.write() {
                s.access = Access::Failed(format!(
                    "not followed: this GitSync spans more than {MAX_WATCHES} kinds and namespaces"
                ));
            }
            continue;
        }
        tasks.push(tokio::spawn(follow(
            client.clone(),
            group.clone(),
            selector.clone(),
            state.clone(),
            changes.clone(),
        )));
    }
    ObjectsView {
        built_from,
        entries,
        groups,
        tasks,
        last_used: Mutex::new(Instant::now()),
    }
}

impl Group {
    /// Whether every part may go into an API path: a DNS subdomain for the group and the
    /// namespace, letters and digits for the version and the kind.
    fn is_well_formed(&self) -> bool {
        let dns = |s: &str| {
            s.len() <= 253
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
                && !s.starts_with(['-', '.'])
        };
        let word = |s: &str| {
            !s.is_empty() && s.len() <= 63 && s.bytes().all(|b| b.is_ascii_alphanumeric())
        };
        dns(&self.group)
            && word(&self.version)
            && word(&self.kind)
            && self
                .namespace
                .as_deref()
                .is_none_or(|ns| !ns.is_empty() && dns(ns))
    }
}

/// Follows one group's objects, reducing each to its health, until the view is dropped.
/// After an error it waits, then lists again: a resumed watch would not say what it missed.
async fn follow(
    client: Client,
    group: Group,
    selector: String,
    state: Arc<RwLock<GroupState>>,
    changes: Changes,
) {
    let set_access = |access: Access| {
        if let Ok(mut s) = state.write() {
            if s.access != access {
                if matches!(access, Access::Forbidden(_)) {
                    s.health.clear();
                }
                s.access = access;
                bump(&changes);
            }
        }
    };
    let gvk = GroupVersionKind::gvk(&group.group, &group.version, &group.kind);
    let mut retry = Retry::default();
    loop {
        let resource = match kube::discovery::pinned_kind(&client, &gvk).await {
            Ok((resource, _)) => resource,
            Err(error) => {
                set_access(match &error {
                    kube::Error::Discovery(_) => Access::Failed(format!(
                        "{} {} is not served by the cluster (now)",
                        if group.group.is_empty() {
                            group.version.clone()
                        } else {
                            format!("{}/{}", group.group, group.version)
                        },
                        group.kind
                    )),
                    other => access_of(other),
                });
                retry.wait().await;
                continue;
            }
        };
        let config = watcher::Config::default().labels(&selector);
        // A Secret is judged by its existence: its data is never asked for.
        let by_metadata = healthy_once_it_exists(&group.group, &group.kind)
            || (group.group.is_empty() && group.kind == "Secret");
        let mut stream = if by_metadata {
            let api: Api<PartialObjectMeta<DynamicObject>> = match &group.namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            watcher(api, config)
                .map(|event| {
                    event.map(|e| {
                        map_event(e, |meta| {
                            let health = if meta.metadata.deletion_timestamp.is_some() {
                                Health::Terminating
                            } else {
                                Health::Current
                            };
                            (meta.name_any(), health)
                        })
                    })
                })
                .boxed()
        } else {
            let api: Api<DynamicObject> = match &group.namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let (g, v, k) = (
                group.group.clone(),
                group.version.clone(),
                group.kind.clone(),
            );
            watcher(api, config)
                .map(move |event| {
                    event.map(|e| {
                        map_event(e, |object| {
                            let name = object.name_any();
                            let mut json = serde_json::to_value(&object).unwrap_or_default();
                            json["apiVersion"] = serde_json::json!(if g.is_empty() {
                                v.clone()
                            } else {
                                format!("{g}/{v}")
                            });
                            json["kind"] = serde_json::json!(k);
                            (name, health_of(&json))
                        })
                    })
                })
                .boxed()
        };
        let mut buffer: Option<HashMap<String, Health>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::Init) => buffer = Some(HashMap::new()),
                Ok(watcher::Event::InitApply((name, health))) => {
                    if let Some(buffer) = buffer.as_mut() {
                        buffer.insert(name, health);
                    }
                }
                Ok(watcher::Event::InitDone) => {
                    let health = buffer.take().unwrap_or_default();
                    if let Ok(mut s) = state.write() {
                        s.health = health;
                        s.access = Access::Ready;
                    }
                    retry.reset();
                    bump(&changes);
                }
                Ok(watcher::Event::Apply((name, health))) => {
                    if let Ok(mut s) = state.write() {
                        s.health.insert(name, health);
                    }
                    bump(&changes);
                }
                Ok(watcher::Event::Delete((name, _))) => {
                    if let Ok(mut s) = state.write() {
                        s.health.remove(&name);
                    }
                    bump(&changes);
                }
                Err(error) => {
                    set_access(match &error {
                        watcher::Error::InitialListFailed(e)
                        | watcher::Error::WatchStartFailed(e)
                        | watcher::Error::WatchFailed(e) => access_of(e),
                        _ => Access::Failed("the watch failed; following again".to_owned()),
                    });
                    break;
                }
            }
        }
        retry.wait().await;
    }
}

/// A watch event with its object replaced by what `f` makes of it.
fn map_event<K, T>(event: watcher::Event<K>, mut f: impl FnMut(K) -> T) -> watcher::Event<T> {
    match event {
        watcher::Event::Apply(o) => watcher::Event::Apply(f(o)),
        watcher::Event::Delete(o) => watcher::Event::Delete(f(o)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(o) => watcher::Event::InitApply(f(o)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}
