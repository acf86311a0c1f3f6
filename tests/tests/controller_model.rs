//! Model-based tests of the sync loop: random sequences of commits through the real controller,
//! and after each revision the cluster compared with what a simple model says it must hold.
//!
//! The repository declares its own Namespaces, a CRD beside its custom resources, a cluster-
//! scoped ClusterRole, sealed and plain Secrets and ConfigMaps, spread over files and
//! directories. Each commit adds, changes, removes or moves objects, renames files, reverts to
//! an earlier tree, or (now and then) adds a broken object in a new Namespace, which must fail
//! the revision as a whole and leave the cluster as it was.
//!
//! Replay a failure with the seed it prints: `SEALSYNC_MODEL_SEED=N cargo test --test
//! controller_model`; `SEALSYNC_MODEL_REVISIONS` sets the number of commits per run.

mod controller_common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use controller_common::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sealsync_tests::apiserver::TestCluster;
use serde_json::json;

/// Where the GitSync lives; created by the platform team, not in Git.
const HOME: &str = "model";
/// Namespaces the repository may declare.
const NAMESPACES: &[&str] = &["m-alpha", "m-beta", "m-gamma"];
const CRD_NAME: &str = "gadgets.model.sealsync.dev";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Namespace,
    Crd,
    ClusterRole,
    ConfigMap,
    Secret,
    SealedSecret,
    Gadget,
}

impl Kind {
    fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Crd | Kind::ClusterRole)
    }

    /// apiVersion and kind of the object in the cluster.
    fn live(self) -> (&'static str, &'static str) {
        match self {
            Kind::Namespace => ("v1", "Namespace"),
            Kind::Crd => ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
            Kind::ClusterRole => ("rbac.authorization.k8s.io/v1", "ClusterRole"),
            Kind::ConfigMap => ("v1", "ConfigMap"),
            Kind::Secret | Kind::SealedSecret => ("v1", "Secret"),
            Kind::Gadget => ("model.sealsync.dev/v1", "Gadget"),
        }
    }
}

/// One object of the repository.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Object {
    kind: Kind,
    namespace: Option<String>,
    name: String,
    /// What the test checks in the cluster; for a Namespace or the CRD, whether it carries
    /// `sealsync.dev/prune: enabled` ("enabled") or not ("").
    value: String,
}

impl Object {
    fn key(&self) -> (Kind, Option<String>, String) {
        let kind = match self.kind {
            Kind::SealedSecret => Kind::Secret,
            k => k,
        };
        (kind, self.namespace.clone(), self.name.clone())
    }
}

/// The repository's tree: path → objects in that file.
type Tree = BTreeMap<String, Vec<Object>>;

struct Model {
    rng: StdRng,
    tree: Tree,
    /// Trees of earlier good revisions, for reverts.
    history: Vec<Tree>,
    counter: usize,
    /// Every object the cluster ever held through the GitSync, to check what must be gone.
    ever: BTreeSet<(Kind, Option<String>, String)>,
    /// Namespaces and the CRD that were removed from Git without the prune opt-in: they stay.
    orphaned: BTreeSet<(Kind, Option<String>, String)>,
}

impl Model {
    fn objects(&self) -> impl Iterator<Item = &Object> {
        self.tree.values().flatten()
    }

    fn has(&self, kind: Kind, name: &str) -> bool {
        self.objects().any(|o| o.kind == kind && o.name == name)
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    fn random_file(&mut self) -> String {
        let existing: Vec<String> = self.tree.keys().cloned().collect();
        if !existing.is_empty() && self.rng.random_bool(0.6) {
            return existing[self.rng.random_range(0..existing.len())].clone();
        }
        let name = self.fresh("f");
        match self.rng.random_range(0..3) {
            0 => format!("{name}.yaml"),
            1 => format!("apps/{name}.yaml"),
            _ => format!("apps/deep/{name}.yml"),
        }
    }

    fn insert(&mut self, file: String, object: Object) {
        self.tree.entry(file).or_default().push(object);
    }

    /// Namespaces objects may go to: the declared ones and the GitSync's own.
    fn usable_namespaces(&self) -> Vec<String> {
        let mut out = vec![HOME.to_owned()];
        out.extend(
            self.objects()
                .filter(|o| o.kind == Kind::Namespace)
                .map(|o| o.name.clone()),
        );
        out
    }

    fn remove_where(&mut self, drop: impl Fn(&Object) -> bool) -> Vec<Object> {
        let mut removed = Vec::new();
        for objects in self.tree.values_mut() {
            let (gone, kept): (Vec<Object>, Vec<Object>) = objects.drain(..).partition(|o| drop(o));
            *objects = kept;
            removed.extend(gone);
        }
        self.tree.retain(|_, objects| !objects.is_empty());
        removed
    }

    /// One random change of the tree. Returns a description for the failure message.
    fn step(&mut self) -> String {
        match self.rng.random_range(0..100) {
            0..=29 => self.add(),
            30..=49 => self.change(),
            50..=61 => self.remove(),
            62..=73 => self.move_object(),
            74..=79 => self.rename_file(),
            80..=87 => self.toggle_opt_in(),
            _ => self.revert(),
        }
    }

    fn add(&mut self) -> String {
        let kinds = [
            Kind::Namespace,
            Kind::Crd,
            Kind::ClusterRole,
            Kind::ConfigMap,
            Kind::ConfigMap,
            Kind::Secret,
            Kind::SealedSecret,
            Kind::Gadget,
        ];
        let kind = kinds[self.rng.random_range(0..kinds.len())];
        let file = self.random_file();
        let value = self.fresh("v");
        let object = match kind {
            Kind::Namespace => {
                let free: Vec<&str> = NAMESPACES
                    .iter()
                    .copied()
                    .filter(|n| !self.has(Kind::Namespace, n))
                    .collect();
                if free.is_empty() {
                    return self.change();
                }
                let name = free[self.rng.random_range(0..free.len())].to_owned();
                let opt_in = if self.rng.random_bool(0.5) {
                    "enabled"
                } else {
                    ""
                };
                Object {
                    kind,
                    namespace: None,
                    name,
                    value: opt_in.to_owned(),
                }
            }
            Kind::Crd => {
                if self.has(Kind::Crd, CRD_NAME) {
                    return self.change();
                }
                Object {
                    kind,
                    namespace: None,
                    name: CRD_NAME.to_owned(),
                    value: if self.rng.random_bool(0.5) {
                        "enabled".to_owned()
                    } else {
                        String::new()
                    },
                }
            }
            Kind::Gadget if !self.has(Kind::Crd, CRD_NAME) => {
                // The CRD comes in the same commit as its first resource.
                let crd_file = self.random_file();
                self.insert(
                    crd_file,
                    Object {
                        kind: Kind::Crd,
                        namespace: None,
                        name: CRD_NAME.to_owned(),
                        value: String::new(),
                    },
                );
                let namespaces = self.usable_namespaces();
                let namespace = namespaces[self.rng.random_range(0..namespaces.len())].clone();
                Object {
                    kind,
                    namespace: Some(namespace),
                    name: self.fresh("g"),
                    value,
                }
            }
            Kind::ClusterRole => Object {
                kind,
                namespace: None,
                name: self.fresh("model-role"),
                value,
            },
            _ => {
                let namespaces = self.usable_namespaces();
                let namespace = namespaces[self.rng.random_range(0..namespaces.len())].clone();
                let prefix = match kind {
                    Kind::ConfigMap => "c",
                    Kind::Secret => "s",
                    Kind::SealedSecret => "ss",
                    _ => "g",
                };
                Object {
                    kind,
                    namespace: Some(namespace),
                    name: self.fresh(prefix),
                    value,
                }
            }
        };
        let what = format!(
            "add {:?} {:?}/{} in {file}",
            object.kind, object.namespace, object.name
        );
        self.insert(file, object);
        what
    }

    fn pick(&mut self, filter: impl Fn(&Object) -> bool) -> Option<(String, usize)> {
        let candidates: Vec<(String, usize)> = self
            .tree
            .iter()
            .flat_map(|(f, objects)| {
                objects
                    .iter()
                    .enumerate()
                    .filter(|(_, o)| filter(o))
                    .map(move |(i, _)| (f.clone(), i))
            })
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[self.rng.random_range(0..candidates.len())].clone())
    }

    fn change(&mut self) -> String {
        let Some((file, i)) = self.pick(|o| o.kind.namespaced() || o.kind == Kind::ClusterRole)
        else {
            return self.add_configmap();
        };
        let value = self.fresh("v");
        let object = &mut self.tree.get_mut(&file).expect("file")[i];
        object.value = value;
        format!("change {:?} {}", object.kind, object.name)
    }

    fn add_configmap(&mut self) -> String {
        let file = self.random_file();
        let name = self.fresh("c");
        let value = self.fresh("v");
        self.insert(
            file,
            Object {
                kind: Kind::ConfigMap,
                namespace: Some(HOME.to_owned()),
                name: name.clone(),
                value,
            },
        );
        format!("add ConfigMap {HOME}/{name}")
    }

    fn remove(&mut self) -> String {
        let Some((file, i)) = self.pick(|_| true) else {
            return self.add();
        };
        let object = self.tree.get_mut(&file).expect("file").remove(i);
        self.tree.retain(|_, objects| !objects.is_empty());
        let mut what = format!("remove {:?} {}", object.kind, object.name);
        let cascading = |o: &Object| match object.kind {
            Kind::Namespace => o.namespace.as_deref() == Some(object.name.as_str()),
            Kind::Crd => o.kind == Kind::Gadget,
            _ => false,
        };
        let removed = self.remove_where(cascading);
        if !removed.is_empty() {
            what.push_str(&format!(" and the {} object(s) in it", removed.len()));
        }
        what
    }

    fn move_object(&mut self) -> String {
        let Some((from, i)) = self.pick(|_| true) else {
            return self.add();
        };
        let object = self.tree.get_mut(&from).expect("file").remove(i);
        self.tree.retain(|_, objects| !objects.is_empty());
        let to = self.random_file();
        let what = format!("move {:?} {} from {from} to {to}", object.kind, object.name);
        self.insert(to, object);
        what
    }

    fn rename_file(&mut self) -> String {
        let files: Vec<String> = self.tree.keys().cloned().collect();
        if files.is_empty() {
            return self.add();
        }
        let from = files[self.rng.random_range(0..files.len())].clone();
        let to = format!("moved/{}.yaml", self.fresh("r"));
        let objects = self.tree.remove(&from).expect("file");
        self.tree.insert(to.clone(), objects);
        format!("rename {from} to {to}")
    }

    fn toggle_opt_in(&mut self) -> String {
        let Some((file, i)) = self.pick(|o| matches!(o.kind, Kind::Namespace | Kind::Crd)) else {
            return self.add();
        };
        let object = &mut self.tree.get_mut(&file).expect("file")[i];
        object.value = if object.value == "enabled" {
            String::new()
        } else {
            "enabled".to_owned()
        };
        format!("prune opt-in of {} is now {:?}", object.name, object.value)
    }

    fn revert(&mut self) -> String {
        if self.history.len() < 2 {
            return self.change();
        }
        let back = self.rng.random_range(1..self.history.len().min(4));
        let target = self.history[self.history.len() - 1 - back].clone();
        self.tree = target;
        format!("revert to the tree of {back} revision(s) ago")
    }

    /// Files of the tree, rendered.
    fn render(
        &self,
        env: &Env,
        sealed_cache: &mut BTreeMap<(String, String, String), String>,
    ) -> Vec<(String, String)> {
        self.tree
            .iter()
            .map(|(file, objects)| {
                let docs: Vec<String> = objects
                    .iter()
                    .map(|o| manifest(env, o, sealed_cache))
                    .collect();
                (file.clone(), docs.join("---\n"))
            })
            .collect()
    }
}

fn crd_yaml(opt_in: &str) -> String {
    let annotations = if opt_in == "enabled" {
        "  annotations:\n    sealsync.dev/prune: enabled\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: {CRD_NAME}\n{annotations}spec:\n  group: model.sealsync.dev\n  scope: Namespaced\n  names: {{plural: gadgets, singular: gadget, kind: Gadget, listKind: GadgetList}}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              value: {{type: string}}\n"
    )
}

fn manifest(
    env: &Env,
    o: &Object,
    sealed_cache: &mut BTreeMap<(String, String, String), String>,
) -> String {
    let ns = o.namespace.clone().unwrap_or_default();
    match o.kind {
        Kind::Namespace => {
            let annotations = if o.value == "enabled" {
                "  annotations:\n    sealsync.dev/prune: enabled\n"
            } else {
                ""
            };
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n{annotations}", o.name)
        }
        Kind::Crd => crd_yaml(&o.value),
        Kind::ClusterRole => format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: {}\nrules:\n- apiGroups: [\"\"]\n  resources: [configmaps]\n  resourceNames: [{}]\n  verbs: [get]\n",
            o.name, o.value
        ),
        Kind::ConfigMap => configmap_yaml(&ns, &o.name, "value", &o.value),
        Kind::Secret => secret_yaml(&ns, &o.name, "value", &o.value),
        Kind::SealedSecret => sealed_cache
            .entry((ns.clone(), o.name.clone(), o.value.clone()))
            .or_insert_with(|| env.seal(&secret_yaml(&ns, &o.name, "value", &o.value)))
            .clone(),
        Kind::Gadget => format!(
            "apiVersion: model.sealsync.dev/v1\nkind: Gadget\nmetadata:\n  name: {}\n  namespace: {ns}\nspec:\n  value: {}\n",
            o.name, o.value
        ),
    }
}

/// Compares the cluster with the model; `Err` says what differs.
async fn check(env: &Env, model: &Model, commit: &str) -> Result<(), String> {
    let status = env.gitsync_status(HOME, "model").await;
    if !status["lastAppliedRevision"]
        .as_str()
        .is_some_and(|r| r.ends_with(commit))
    {
        return Err(format!(
            "lastAppliedRevision is {}",
            status["lastAppliedRevision"]
        ));
    }
    let inventory = env.inventory_ids(HOME, "model").await?;
    let mut expected: Vec<String> = model
        .objects()
        .map(|o| {
            let (api_version, kind) = o.kind.live();
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            format!(
                "{}_{}_{group}_{kind}",
                o.namespace.clone().unwrap_or_default(),
                o.name
            )
        })
        .collect();
    expected.sort();
    if inventory != expected {
        return Err(format!("inventory {inventory:?}, expected {expected:?}"));
    }
    let present: BTreeSet<_> = model.objects().map(Object::key).collect();
    for o in model.objects() {
        let (api_version, kind) = o.kind.live();
        let live = env
            .get(api_version, kind, o.namespace.as_deref(), &o.name)
            .await;
        let Some(live) = live.filter(|l| l.metadata.deletion_timestamp.is_none()) else {
            return Err(format!("{kind} {:?}/{} is missing", o.namespace, o.name));
        };
        let actual = match o.kind {
            Kind::ConfigMap => live.data["data"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Kind::Secret | Kind::SealedSecret => secret_value(&live, "value"),
            Kind::Gadget => live.data["spec"]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Kind::ClusterRole => live.data["rules"][0]["resourceNames"][0]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            Kind::Namespace | Kind::Crd => live
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("sealsync.dev/prune"))
                .cloned()
                .unwrap_or_default(),
        };
        if actual != o.value {
            return Err(format!(
                "{kind} {:?}/{} holds {actual:?}, expected {:?}",
                o.namespace, o.name, o.value
            ));
        }
    }
    for key in &model.ever {
        if present.contains(key) || model.orphaned.contains(key) {
            continue;
        }
        let (kind, namespace, name) = key;
        let (api_version, kind_name) = kind.live();
        if *kind == Kind::Gadget
            && !present.iter().any(|(k, _, _)| *k == Kind::Crd)
            && !model.orphaned.iter().any(|(k, _, _)| *k == Kind::Crd)
        {
            // The CRD and all its objects are gone.
            continue;
        }
        let namespace_gone = namespace.as_ref().is_some_and(|ns| {
            !present.contains(&(Kind::Namespace, None, ns.clone()))
                && !model
                    .orphaned
                    .contains(&(Kind::Namespace, None, ns.clone()))
                && ns != HOME
        });
        if namespace_gone {
            continue;
        }
        let live = env
            .get(api_version, kind_name, namespace.as_deref(), name)
            .await;
        if !gone(&live) {
            return Err(format!(
                "{kind_name} {namespace:?}/{name} should have been pruned"
            ));
        }
    }
    for (kind, namespace, name) in &model.orphaned {
        if present.contains(&(*kind, namespace.clone(), name.clone())) {
            continue;
        }
        let (api_version, kind_name) = kind.live();
        if gone(
            &env.get(api_version, kind_name, namespace.as_deref(), name)
                .await,
        ) {
            return Err(format!(
                "{kind_name} {name} was deleted without sealsync.dev/prune: enabled"
            ));
        }
    }
    Ok(())
}

async fn run_model(env: Env, seed: u64, revisions: usize) {
    let started = std::time::Instant::now();
    let server = if env.cluster.kube_apiserver().is_some() {
        "kube-apiserver"
    } else if env.cluster.is_real() {
        "an external cluster"
    } else {
        "the embedded server"
    };
    let mut model = Model {
        rng: StdRng::seed_from_u64(seed),
        tree: Tree::new(),
        history: Vec::new(),
        counter: 0,
        ever: BTreeSet::new(),
        orphaned: BTreeSet::new(),
    };
    let mut sealed_cache = BTreeMap::new();
    // The first revision: one Namespace with a ConfigMap in it.
    model.insert(
        "ns.yaml".to_owned(),
        Object {
            kind: Kind::Namespace,
            namespace: None,
            name: NAMESPACES[0].to_owned(),
            value: String::new(),
        },
    );
    model.insert(
        "apps/c.yaml".to_owned(),
        Object {
            kind: Kind::ConfigMap,
            namespace: Some(NAMESPACES[0].to_owned()),
            name: "c-0".to_owned(),
            value: "v-0".to_owned(),
        },
    );
    let mut log = vec!["a Namespace and a ConfigMap in it".to_owned()];
    let files = model.render(&env, &mut sealed_cache);
    let mut commit = env.repo.commit_tree(&files, "revision 0").expect("commit");
    env.apply_gitsync(
        HOME,
        "model",
        json!({"interval": "1s", "allowPlaintextSecrets": true}),
    )
    .await;
    let mut objects_seen = 0;
    let mut broken_revisions = 0;
    for revision in 0..=revisions {
        if revision > 0 {
            let steps = model.rng.random_range(1..=4);
            let mut what = Vec::new();
            for _ in 0..steps {
                what.push(model.step());
            }
            if model.tree.is_empty() {
                // A path with no objects is refused (RenderFailed) rather than pruned bare.
                what.push(model.add_configmap());
            }
            // A Namespace or the CRD that leaves Git stays in the cluster unless the revision
            // that applied it last carried the opt-in; one that comes back is the model's again.
            let present: BTreeSet<_> = model.objects().map(Object::key).collect();
            let last_applied = model.history.last().cloned().unwrap_or_default();
            for o in last_applied.values().flatten() {
                let cascades = matches!(o.kind, Kind::Namespace | Kind::Crd);
                if cascades && o.value != "enabled" && !present.contains(&o.key()) {
                    model.orphaned.insert(o.key());
                }
            }
            model.orphaned.retain(|k| !present.contains(k));
            log.push(what.join("; "));
            let files = model.render(&env, &mut sealed_cache);
            commit = env
                .repo
                .commit_tree(&files, &format!("revision {revision}"))
                .expect("commit");
        }
        env.wait_applied(HOME, "model", &commit).await;
        expect_model(&env, &model, &commit, seed, revision, &log).await;
        // Now and then a broken object in a new Namespace, in a commit of its own: it must
        // fail as a whole and leave the cluster as the model has it.
        if revision > 0 && model.rng.random_bool(0.15) {
            let broken_ns = model.fresh("m-broken");
            let mut broken = model.render(&env, &mut sealed_cache);
            broken.push((
                "broken.yaml".to_owned(),
                format!(
                    "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {broken_ns}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: broken\n  namespace: {broken_ns}\ndata:\n  k: \"!!!not-base64\"\n"
                ),
            ));
            log.push(format!("a broken Secret in the new Namespace {broken_ns}"));
            broken_revisions += 1;
            let bad = env
                .repo
                .commit_tree(&broken, &format!("revision {revision}, broken"))
                .expect("commit");
            env.wait_failed(HOME, "model", &bad).await;
            // Nothing of it stays: the model's cluster, at the last good commit.
            expect_model(&env, &model, &commit, seed, revision, &log).await;
            let ns = env.get("v1", "Namespace", None, &broken_ns).await;
            assert!(
                gone(&ns),
                "seed {seed}, revision {revision}: the failed revision left Namespace {broken_ns} behind\n{}",
                log.join("\n")
            );
            let files = model.render(&env, &mut sealed_cache);
            commit = env
                .repo
                .commit_tree(&files, &format!("revision {revision}, fixed"))
                .expect("commit");
            env.wait_applied(HOME, "model", &commit).await;
            expect_model(&env, &model, &commit, seed, revision, &log).await;
        }
        objects_seen += model.objects().count();
        let keys: Vec<_> = model.objects().map(Object::key).collect();
        model.ever.extend(keys);
        model.history.push(model.tree.clone());
    }
    // Each revision's cluster state was checked against the model whichever way it was
    // planned: incrementally (only what changed) where the controller could trust the
    // difference, in full otherwise.
    let planned = |mode: &str| {
        metric_value(
            &env,
            &format!("sealsync_revisions_planned_total{{mode=\"{mode}\"}}"),
        )
    };
    println!(
        "model: seed {seed} on {server}: {} revisions ({broken_revisions} broken; {} planned \
         incrementally, {} in full), {objects_seen} object checks, {} objects ever, {} left \
         orphaned, {:.1} s",
        revisions + 1 + broken_revisions,
        planned("incremental"),
        planned("full"),
        model.ever.len(),
        model.orphaned.len(),
        started.elapsed().as_secs_f64()
    );
    let log = env.controller.log_tail(100_000);
    assert!(!log.contains("panicked"), "the controller panicked:\n{log}");
}

/// Waits until the cluster matches the model at `commit` (prunes of Namespaces finish
/// asynchronously on kube-apiserver), or panics with the seed, the steps and the log.
async fn expect_model(
    env: &Env,
    model: &Model,
    commit: &str,
    seed: u64,
    revision: usize,
    log: &[String],
) {
    let mut last = Err(String::new());
    for _ in 0..100 {
        last = check(env, model, commit).await;
        if last.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if let Err(why) = last {
        panic!(
            "seed {seed}, revision {revision}: {why}\nreplay with SEALSYNC_MODEL_SEED={seed}\nsteps:\n{}\ncontroller log:\n{}",
            log.join("\n"),
            env.controller.log_tail(40)
        );
    }
}

fn seed_and_revisions() -> (u64, usize) {
    let seed = std::env::var("SEALSYNC_MODEL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let revisions = std::env::var("SEALSYNC_MODEL_REVISIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(24);
    println!("model: SEALSYNC_MODEL_SEED={seed}");
    (seed, revisions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_commits_on_the_embedded_server() {
    let (seed, revisions) = seed_and_revisions();
    let cluster = TestCluster::start_embedded()
        .await
        .expect("embedded server");
    // Inventories of more than four objects are kept in ConfigMaps: the revisions move the
    // inventory between the status and its ConfigMaps, and between sets of ConfigMaps.
    let args = ["--inventory-inline-entries=4".to_owned()];
    let env = Env::start_on(cluster, &[HOME], &args, &[]).await;
    run_model(env, seed, revisions).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_commits_on_the_test_cluster() {
    // The real kube-apiserver under scripts/test.sh.
    let (seed, revisions) = seed_and_revisions();
    let env = Env::start(&[HOME]).await;
    run_model(env, seed, revisions).await;
}
