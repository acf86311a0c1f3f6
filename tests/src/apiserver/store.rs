//! The object store: one global resourceVersion counter, objects keyed by
//! (group, resource, namespace, name), and a bounded history of change events for watches.
//!
//! Objects are kept as their JSON text ([`Stored`]), parsed when read: a `serde_json::Value`
//! tree costs several times its text, and the store and the watch history hold every object.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::broadcast;

use super::eventsview::storage_resource;
use super::gc;
use super::resources::{self, ResourceDef};

/// Key of one stored object. Ordering gives the list order etcd gives: by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// API group ("" for core).
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl ObjKey {
    /// Builds a key. Resources that are views of another's storage (events.k8s.io Events)
    /// get the key of their storage.
    pub fn new(def: &ResourceDef, namespace: &str, name: &str) -> Self {
        let (group, plural) = storage_resource(&def.group, &def.plural);
        Self {
            group: group.to_string(),
            plural: plural.to_string(),
            namespace: if def.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// The key of namespace `name`.
    pub fn namespace(name: &str) -> Self {
        Self {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: name.to_string(),
        }
    }

    /// The key of the CRD that defines `def` (`plural.group`).
    pub fn crd_of(def: &ResourceDef) -> Self {
        Self {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: format!("{}.{}", def.plural, def.group),
        }
    }
}

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Object created.
    Added,
    /// Object changed.
    Modified,
    /// Object removed.
    Deleted,
}

impl EventType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One stored object: its JSON text, shared by the store and the watch history.
#[derive(Debug, Clone)]
pub struct Stored(Arc<str>);

impl Stored {
    fn new(obj: &Value) -> Self {
        // Serializing a Value cannot fail: its keys are strings.
        Self(Arc::from(serde_json::to_string(obj).unwrap_or_default()))
    }

    /// The object.
    pub fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }

    /// The object's JSON text.
    pub fn text(&self) -> &str {
        &self.0
    }
}

/// One change, as kept in the history and sent to watchers.
#[derive(Debug, Clone)]
pub struct Event {
    /// The resourceVersion of the change.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Which object.
    pub key: ObjKey,
    /// The object after the change (for DELETED: its last state, with the deletion's rv).
    pub object: Stored,
    /// The object before the change (MODIFIED only); lets selector watches turn a change
    /// that leaves the selection into DELETED, as kube-apiserver does.
    pub prev: Option<Stored>,
}

/// Default number of events kept for watch resumption.
pub const DEFAULT_HISTORY: usize = 10_000;

/// The mutable server state behind one lock.
#[derive(Debug)]
pub struct Store {
    rv: u64,
    objects: BTreeMap<ObjKey, Stored>,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Every event with rv > `compacted` is in `history`; older resourceVersions are "too old".
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    resources: Arc<Vec<ResourceDef>>,
    /// Owner uid to the objects whose ownerReferences name it (for garbage collection).
    dependents: HashMap<String, BTreeSet<ObjKey>>,
}

/// Namespaces that exist on a fresh cluster.
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-node-lease", "kube-public", "kube-system"];

impl Store {
    /// A fresh store with the default namespaces.
    pub fn new(history_cap: usize, now: &str) -> Self {
        let (tx, _) = broadcast::channel(4096);
        let mut s = Self {
            rv: 0,
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            history_cap: history_cap.max(1),
            compacted: 0,
            tx,
            resources: Arc::new(resources::builtins()),
            dependents: HashMap::new(),
        };
        s.seed(now);
        s
    }

    fn seed(&mut self, now: &str) {
        let Some(ns_def) = self.find("", "namespaces").cloned() else {
            return;
        };
        for ns in DEFAULT_NAMESPACES {
            let obj = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": ns,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": now,
                    "labels": {"kubernetes.io/metadata.name": ns},
                    "managedFields": [{
                        "manager": "kube-apiserver",
                        "operation": "Update",
                        "apiVersion": "v1",
                        "time": now,
                        "fieldsType": "FieldsV1",
                        "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:kubernetes.io/metadata.name": {}}}},
                    }],
                },
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"},
            });
            self.put(ObjKey::new(&ns_def, "", ns), obj, None);
        }
        // Two of kube-apiserver's bootstrap ClusterRoles, the ones bindings commonly name: the
        // authorizer reads them like any other role.
        let Some(role_def) = self
            .find("rbac.authorization.k8s.io", "clusterroles")
            .cloned()
        else {
            return;
        };
        let bootstrap = [
            (
                "cluster-admin",
                json!([
                    {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                    {"nonResourceURLs": ["*"], "verbs": ["*"]},
                ]),
            ),
            (
                "system:auth-delegator",
                json!([
                    {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
                    {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
                ]),
            ),
        ];
        for (name, rules) in bootstrap {
            let obj = json!({
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {
                    "name": name,
                    "uid": uuid::Uuid::new_v4().to_string(),
                    "creationTimestamp": now,
                    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
                },
                "rules": rules,
            });
            self.put(ObjKey::new(&role_def, "", name), obj, None);
        }
    }

    /// Forgets every object (keeps the resourceVersion counter monotonic) and re-seeds.
    pub fn wipe(&mut self, now: &str) {
        self.objects.clear();
        self.dependents.clear();
        self.resources = Arc::new(resources::builtins());
        self.forget_history();
        self.seed(now);
        // Seeding recorded events; a restarted server has no history to resume from.
        self.forget_history();
    }

    /// Drops the event history, so any watch resume from before now gets 410 Expired,
    /// like a restarted kube-apiserver whose watch cache starts empty.
    pub fn forget_history(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    /// The current (latest) resourceVersion.
    pub fn rv(&self) -> u64 {
        self.rv
    }

    /// Oldest resourceVersion a watch can resume from.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The current resource registry.
    pub fn resources(&self) -> Arc<Vec<ResourceDef>> {
        Arc::clone(&self.resources)
    }

    /// The resource for (group, plural).
    pub fn find(&self, group: &str, plural: &str) -> Option<&ResourceDef> {
        self.resources.iter().find(|r| r.is(group, plural))
    }

    /// The object at `key`.
    pub fn get(&self, key: &ObjKey) -> Option<Arc<Value>> {
        self.objects.get(key).map(|s| Arc::new(s.value()))
    }

    /// Objects of one resource, optionally in one namespace, in key order, starting after
    /// `after` (namespace, name) when given.
    pub fn list(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
    ) -> Vec<(ObjKey, Arc<Value>)> {
        self.list_stored(def, namespace, after)
            .into_iter()
            .map(|(k, s)| (k, Arc::new(s.value())))
            .collect()
    }

    /// Like [`Store::list`], without parsing: for readers that take one object at a time.
    pub fn list_stored(
        &self,
        def: &ResourceDef,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
    ) -> Vec<(ObjKey, Stored)> {
        let (group, plural) = storage_resource(&def.group, &def.plural);
        let lo = ObjKey {
            group: group.to_string(),
            plural: plural.to_string(),
            namespace: namespace.unwrap_or("").to_string(),
            name: String::new(),
        };
        self.objects
            .range(lo..)
            .take_while(|(k, _)| {
                k.group == group
                    && k.plural == plural
                    && namespace.is_none_or(|ns| k.namespace == ns)
            })
            .filter(|(k, _)| {
                after.is_none_or(|(ans, aname)| {
                    (k.namespace.as_str(), k.name.as_str()) > (ans, aname)
                })
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Every key in a namespace, across resources.
    pub fn keys_in_namespace(&self, ns: &str) -> Vec<ObjKey> {
        self.objects
            .keys()
            .filter(|k| k.namespace == ns)
            .cloned()
            .collect()
    }

    /// The objects whose ownerReferences name `owner_uid`.
    pub fn dependents_of(&self, owner_uid: &str) -> Vec<ObjKey> {
        self.dependents
            .get(owner_uid)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object with ownerReferences.
    pub fn keys_with_owners(&self) -> Vec<ObjKey> {
        let all: BTreeSet<&ObjKey> = self.dependents.values().flatten().collect();
        all.into_iter().cloned().collect()
    }

    fn index_owners(&mut self, key: &ObjKey, old: Option<&Value>, new: Option<&Value>) {
        let old_uids = old.map(gc::owner_uids).unwrap_or_default();
        let new_uids = new.map(gc::owner_uids).unwrap_or_default();
        if old_uids == new_uids {
            return;
        }
        for uid in old_uids {
            if let Some(keys) = self.dependents.get_mut(&uid) {
                keys.remove(key);
                if keys.is_empty() {
                    self.dependents.remove(&uid);
                }
            }
        }
        for uid in new_uids {
            self.dependents.entry(uid).or_default().insert(key.clone());
        }
    }

    /// Number of stored objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    fn next_rv(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, ev: Event) {
        let ev = Arc::new(ev);
        self.history.push_back(Arc::clone(&ev));
        while self.history.len() > self.history_cap {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(ev);
    }

    /// Stores `obj` at `key` with a new resourceVersion, records ADDED or MODIFIED, and
    /// returns the stored object.
    pub fn put(&mut self, key: ObjKey, mut obj: Value, prev: Option<Arc<Value>>) -> Arc<Value> {
        let rv = self.next_rv();
        set_rv(&mut obj, rv);
        let stored = Stored::new(&obj);
        let obj = Arc::new(obj);
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let replaced = self.objects.insert(key.clone(), stored.clone());
        // Parsing the previous object only to read its owners would double the cost of every
        // write; most objects have none.
        let replaced_value = replaced
            .as_ref()
            .filter(|s| s.text().contains("\"ownerReferences\""))
            .map(Stored::value);
        self.index_owners(&key, replaced_value.as_ref(), Some(&obj));
        let crd = key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions";
        self.record(Event {
            rv,
            kind,
            key,
            object: stored,
            prev: replaced.filter(|_| prev.is_some()),
        });
        if crd {
            self.rebuild_resources();
        }
        obj
    }

    /// Removes the object at `key`, records DELETED, and returns its last state (carrying the
    /// deletion's resourceVersion, as etcd-backed watches report it).
    pub fn remove(&mut self, key: &ObjKey) -> Option<Arc<Value>> {
        let old = self.objects.remove(key)?.value();
        self.index_owners(key, Some(&old), None);
        let rv = self.next_rv();
        let mut last = old;
        set_rv(&mut last, rv);
        let stored = Stored::new(&last);
        let last = Arc::new(last);
        self.record(Event {
            rv,
            kind: EventType::Deleted,
            key: key.clone(),
            object: stored,
            prev: None,
        });
        if key.group == "apiextensions.k8s.io" && key.plural == "customresourcedefinitions" {
            self.rebuild_resources();
        }
        Some(last)
    }

    fn rebuild_resources(&mut self) {
        let mut defs = resources::builtins();
        for (k, crd) in &self.objects {
            if k.group == "apiextensions.k8s.io" && k.plural == "customresourcedefinitions" {
                if let Some(def) = resources::from_crd(&crd.value()) {
                    if !defs.iter().any(|d| d.is(&def.group, &def.plural)) {
                        defs.push(def);
                    }
                }
            }
        }
        self.resources = Arc::new(defs);
    }

    /// Subscribes to future events and returns the history after `since` (oldest first), or
    /// None when `since` is older than the kept history.
    pub fn subscribe_since(&self, since: u64) -> Option<(Vec<Arc<Event>>, EventReceiver)> {
        if since < self.compacted {
            return None;
        }
        let rx = self.tx.subscribe();
        let past = self
            .history
            .iter()
            .filter(|e| e.rv > since)
            .cloned()
            .collect();
        Some((past, rx))
    }

    /// Subscribes to future events only.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}

/// Receives events as they are recorded.
pub type EventReceiver = broadcast::Receiver<Arc<Event>>;

/// Sets `metadata.resourceVersion`.
pub fn set_rv(obj: &mut Value, rv: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
    }
}
