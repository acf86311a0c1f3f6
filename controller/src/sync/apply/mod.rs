//! The `apply` stage: server-side apply under one field manager, staged and gated by dry-run.
//!
//! 1. Cluster definitions (CRDs, Namespaces, ClusterRoles) are dry-run, and so is every other
//!    object that can be validated before they exist.
//! 2. If anything fails validation, nothing is written.
//! 3. The definitions are written and waited for; then the objects that depended on them are
//!    dry-run too, and again nothing further is written if one fails.
//! 4. The rest is written in a stable kind order, concurrently (bounded), skipping every object
//!    whose dry-run result equals the live object, so unchanged objects keep their
//!    resourceVersion.
//! 5. If any step fails after something was written, every write of the attempt is undone,
//!    last first ([`rollback`]): a revision is applied whole or not at all.
//!
//! Kinds are resolved once per reconcile ([`Resolver`]); a kind found served stays resolved
//! after the first stage is written, and a failed discovery is an error, never "not served".

mod ahead;
pub(crate) mod drift;
mod fieldset;
mod resolver;
mod rollback;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::stream::{self, StreamExt};
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Api, Client};
use sealsync_core::Chain;
use sealsync_core::{FIELD_MANAGER, OWNER_NAMESPACE_LABEL, OWNER_NAME_LABEL, RECONCILE_ANNOTATION};
use serde_json::Value as Json;

use crate::support::Fingerprint;
use crate::sync::progress::Progress;
pub(crate) use ahead::validate_ahead;
pub(crate) use resolver::Resolver;
use rollback::{Previous, Undo, WriteRecord};

/// One object ready to apply: owner labels set, namespace defaulted.
pub(crate) struct Desired {
    /// `file: document N (Kind ns/name)`, for messages.
    pub location: String,
    /// The object.
    pub object: Json,
}

impl std::fmt::Debug for Desired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Desired")
            .field("location", &self.location)
            .finish_non_exhaustive()
    }
}

impl Drop for Desired {
    fn drop(&mut self) {
        sealsync_core::render::wipe_json(&mut self.object);
    }
}

impl Desired {
    fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }
    fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }
    fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }
    fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
    fn is_secret(&self) -> bool {
        self.api_version() == "v1" && self.kind() == "Secret"
    }
}

/// What one apply did.
#[derive(Debug, Default)]
pub(crate) struct ApplyOutcome {
    /// Objects that did not exist.
    pub created: usize,
    /// Objects that changed.
    pub configured: usize,
    /// Objects left as they were.
    pub unchanged: usize,
    /// Objects skipped because the live object has `sealsync.dev/reconcile: disabled`.
    pub skipped: usize,
    /// Objects deleted and created again (immutable fields changed, `spec.force`).
    pub recreated: usize,
    /// Every write, in order, with how to undo it if a later step fails.
    writes: Vec<WriteRecord>,
    /// Each object's inventory id and state after the apply: what self-heal compares watch
    /// events with.
    pub observed: Vec<(String, Fingerprint)>,
    /// States an object passed through on the way (the managedFields take-over before the
    /// apply), whose watch events are the controller's own.
    pub intermediate: Vec<Fingerprint>,
}

impl ApplyOutcome {
    /// Adds what another apply of the same revision did (a write of its stage, its next wave).
    pub(crate) fn absorb(&mut self, other: ApplyOutcome) {
        self.created += other.created;
        self.configured += other.configured;
        self.unchanged += other.unchanged;
        self.skipped += other.skipped;
        self.recreated += other.recreated;
        self.writes.extend(other.writes);
        self.observed.extend(other.observed);
        self.intermediate.extend(other.intermediate);
    }
}

/// What [`apply_one`] did to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// It matched the manifest; nothing was written.
    Unchanged,
    /// It has `sealsync.dev/reconcile: disabled`.
    Skipped,
    /// It did not exist and was created.
    Created,
    /// It was changed back to the manifest.
    Configured,
    /// It was deleted and created again (an immutable field, `spec.force`).
    Recreated,
}

/// A failed apply. What it wrote before the failure was undone; `written` lists the objects
/// that could not be put back, which join the inventory so that a later revision prunes them.
#[derive(Debug)]
pub(crate) struct ApplyFailure {
    /// Why it failed.
    pub error: ApplyError,
    /// Inventory entries of the objects that stay as written.
    pub written: Vec<sealsync_core::InventoryEntry>,
}

/// Why an apply failed. Messages name the file and document; for Secrets the API server's
/// message is reduced to its reason and field paths, since it may quote a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ApplyError {
    /// The API server rejected an object in the dry-run; nothing was written.
    #[error("{location}: {message} (dry-run; nothing was applied)")]
    Invalid {
        /// The object.
        location: String,
        /// The server's message.
        message: String,
    },
    /// The identity the GitSync applies as may not write the object; nothing was written.
    #[error("{location}: {message}; grant it to {actor} with a Role or ClusterRole and a binding, or remove the object from the repository (dry-run; nothing was applied)")]
    Forbidden {
        /// The object.
        location: String,
        /// The API server's refusal: who may not do what, to which resource, where.
        message: String,
        /// Who the GitSync applies as.
        actor: String,
    },
    /// The kind is not served by the cluster.
    #[error("{location}: the cluster does not serve {api_version} {kind}; install its CRD first or add it to the repository")]
    UnknownKind {
        /// The object.
        location: String,
        /// apiVersion.
        api_version: String,
        /// kind.
        kind: String,
    },
    /// An immutable field changed and `spec.force` is off.
    #[error(
        "{location}: {message}; set spec.force: true to delete and recreate it (its data is lost)"
    )]
    Immutable {
        /// The object.
        location: String,
        /// The server's message.
        message: String,
    },
    /// A CRD or Namespace of the revision did not become ready.
    #[error("{location}: not ready after {seconds} s")]
    NotReady {
        /// The object.
        location: String,
        /// The wait.
        seconds: u64,
    },
    /// The API server failed (5xx, timeout, connection): retried with backoff.
    #[error("{location}: the API server failed: {message}")]
    Transient {
        /// The object, or the call.
        location: String,
        /// The error.
        message: String,
    },
}

impl ApplyError {
    /// Whether retrying the same revision may succeed.
    pub(crate) fn is_transient(&self) -> bool {
        // A missing permission can be granted without a commit: retried with backoff.
        matches!(
            self,
            ApplyError::Transient { .. }
                | ApplyError::NotReady { .. }
                | ApplyError::Forbidden { .. }
        )
    }
}

/// The `Api` an object is read and written through, or `UnknownKind` when the cluster does not
/// serve its kind.
fn object_api(
    client: &Client,
    resolved: Option<(ApiResource, bool)>,
    d: &Desired,
) -> Result<Api<DynamicObject>, ApplyError> {
    let Some((resource, namespaced)) = resolved else {
        return Err(ApplyError::UnknownKind {
            location: d.location.clone(),
            api_version: d.api_version().to_owned(),
            kind: d.kind().to_owned(),
        });
    };
    let namespace = if namespaced { d.namespace() } else { None };
    Ok(api_for(client, &resource, namespace))
}

fn api_for(client: &Client, resource: &ApiResource, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, resource),
        None => Api::all_with(client.clone(), resource),
    }
}

/// The stage of a kind: 0 for cluster definitions, 1 for `*Class` kinds, 2 for the rest.
fn stage(api_version: &str, kind: &str) -> u8 {
    match (api_version, kind) {
        (v, "CustomResourceDefinition") if v.starts_with("apiextensions.k8s.io/") => 0,
        ("v1", "Namespace") => 0,
        (v, "ClusterRole") if v.starts_with("rbac.authorization.k8s.io/") => 0,
        (_, k) if k.ends_with("Class") => 1,
        _ => 2,
    }
}

/// The order of kinds within the last stage: what other objects refer to comes first;
/// webhooks come last so they cannot block the rest of the revision.
fn kind_rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "Namespace",
        "ResourceQuota",
        "StorageClass",
        "CustomResourceDefinition",
        "ServiceAccount",
        "Role",
        "ClusterRole",
        "RoleBinding",
        "ClusterRoleBinding",
        "ConfigMap",
        "Secret",
        "Endpoints",
        "Service",
        "LimitRange",
        "PriorityClass",
        "PersistentVolume",
        "PersistentVolumeClaim",
        "Deployment",
        "StatefulSet",
        "CronJob",
        "PodDisruptionBudget",
    ];
    const LAST: &[&str] = &[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ];
    if let Some(i) = ORDER.iter().position(|k| *k == kind) {
        i
    } else if let Some(i) = LAST.iter().position(|k| *k == kind) {
        ORDER.len() + 2 + i
    } else {
        ORDER.len() + 1
    }
}

/// Where an object goes in the order objects are applied in: sort by this key.
pub(crate) fn apply_order(object: &Json) -> impl Ord {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    (
        stage(api_version, kind),
        kind_rank(kind),
        kind.to_owned(),
        object["metadata"]["namespace"].as_str().map(str::to_owned),
        object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    )
}

/// An object the API server returned, which for a Secret holds its values: wiped on drop.
struct Wiped(DynamicObject);

impl std::ops::Deref for Wiped {
    type Target = DynamicObject;
    fn deref(&self) -> &DynamicObject {
        &self.0
    }
}

impl Drop for Wiped {
    fn drop(&mut self) {
        sealsync_core::render::wipe_json(&mut self.0.data);
    }
}

/// Settings of one apply.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApplyOptions<'a> {
    /// Recreate objects whose immutable fields changed.
    pub force: bool,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// How long to wait for CRDs and Namespaces of the revision.
    pub ready_timeout: Duration,
    /// Undo manual edits, including fields they added.
    pub self_heal: bool,
    /// Where each dry-run and write is counted, for a whole revision.
    pub progress: Option<&'a Progress>,
}

/// What the dry-run found for one object.
enum Planned {
    /// Equal to the live object (fingerprinted): nothing to write.
    Unchanged(Fingerprint),
    /// The live object (fingerprinted) has `sealsync.dev/reconcile: disabled`.
    Skipped(Fingerprint),
    /// To write; `create` when the object does not exist yet.
    Write { create: bool, undo: Undo },
    /// An immutable field changed and `spec.force` is on.
    Recreate,
    /// A manual edit added fields: take them over (see `drift`), then apply.
    TakeOver { undo: Undo },
}

type WriteFuture<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<ApplyOutcome, ApplyError>> + Send + 'a>,
>;

/// Applies `objects` (sorted by [`apply_order`]) as described in the module docs.
pub(crate) async fn apply_all(
    client: &Client,
    resolver: &mut Resolver,
    objects: &[Desired],
    options: ApplyOptions<'_>,
) -> Result<ApplyOutcome, ApplyFailure> {
    let mut outcome = ApplyOutcome::default();
    match apply_stages(client, resolver, objects, options, &mut outcome).await {
        Ok(()) => {
            // Nothing to undo: the earlier configurations (a Secret's values among them) go.
            outcome.writes.clear();
            Ok(outcome)
        }
        Err(error) => {
            let writes = std::mem::take(&mut outcome.writes);
            let attempted = writes.len();
            let undone = rollback::roll_back(writes).await;
            if attempted > 0 {
                tracing::info!(
                    undone = undone.undone,
                    kept = undone.remaining.len(),
                    "the revision failed after some writes; they were undone"
                );
            }
            for failure in &undone.failures {
                tracing::warn!(error = %failure, "undoing a write of the failed revision");
            }
            Err(ApplyFailure {
                error,
                written: undone.remaining,
            })
        }
    }
}

async fn apply_stages(
    client: &Client,
    resolver: &mut Resolver,
    objects: &[Desired],
    options: ApplyOptions<'_>,
    outcome: &mut ApplyOutcome,
) -> Result<(), ApplyError> {
    let (definitions, rest): (Vec<&Desired>, Vec<&Desired>) = objects
        .iter()
        .partition(|d| stage(d.api_version(), d.kind()) == 0);

    // 1. Dry-run the cluster definitions, then everything that does not depend on what they
    //    create or change.
    let mut plans = Vec::with_capacity(definitions.len());
    for d in &definitions {
        plans.push(plan(client, resolver, d, options).await?);
    }
    // Namespaces this revision creates, and kinds whose CRD it creates or changes: objects in
    // them can only be validated once the first stage is written.
    let new_namespaces: Vec<&str> = definitions
        .iter()
        .zip(&plans)
        .filter(|(d, p)| {
            d.kind() == "Namespace" && matches!(p, Planned::Write { create: true, .. })
        })
        .map(|(d, _)| d.name())
        .collect();
    let changed_kinds: Vec<(String, String)> = definitions
        .iter()
        .zip(&plans)
        .filter(|(d, p)| {
            d.kind() == "CustomResourceDefinition"
                && matches!(p, Planned::Write { .. } | Planned::Recreate)
        })
        .filter_map(|(d, _)| crd_kinds(&d.object))
        .flatten()
        .collect();
    let (deferred, now): (Vec<&Desired>, Vec<&Desired>) = rest.iter().partition(|d| {
        d.namespace().is_some_and(|ns| new_namespaces.contains(&ns))
            || changed_kinds
                .iter()
                .any(|(group_version, kind)| group_version == d.api_version() && kind == d.kind())
    });
    let mut rest_plans = Vec::new();
    let planned = plan_many(client, resolver, &now, options).await?;
    for (d, result) in now.iter().zip(planned) {
        rest_plans.push((*d, result?));
    }

    // 2. Write the definitions and wait for them.
    for (d, p) in definitions.iter().zip(plans) {
        write(client, resolver, d, p, outcome).await?;
        count_written(options);
    }
    for d in &definitions {
        wait_ready(client, d, options.ready_timeout).await?;
    }
    if !definitions.is_empty() {
        // Kinds the revision's CRDs serve now; everything found served before still is.
        resolver.forget_unserved();
    }
    for d in &deferred {
        let is_new_kind = changed_kinds
            .iter()
            .any(|(group_version, kind)| group_version == d.api_version() && kind == d.kind());
        if is_new_kind {
            resolver
                .wait_served(client, d.api_version(), d.kind(), options.ready_timeout)
                .await
                .map_err(|e| transient(&d.location, &e))?;
        }
    }

    // 3. Validate what depended on them before writing any of the rest.
    let planned = plan_many(client, resolver, &deferred, options).await?;
    for (d, result) in deferred.iter().zip(planned) {
        rest_plans.push((*d, result?));
    }
    // Back into the apply order, by each object's address in `objects`.
    let order: HashMap<usize, usize> = objects
        .iter()
        .enumerate()
        .map(|(i, o)| (std::ptr::from_ref(o) as usize, i))
        .collect();
    rest_plans.sort_by_key(|(d, _)| {
        order
            .get(&(std::ptr::from_ref::<Desired>(d) as usize))
            .copied()
            .unwrap_or(usize::MAX)
    });

    // 4. Write the rest, stage by stage, concurrently within a stage.
    let mut by_stage: BTreeMap<u8, Vec<(&Desired, Planned)>> = BTreeMap::new();
    for (d, p) in rest_plans {
        by_stage
            .entry(stage(d.api_version(), d.kind()))
            .or_default()
            .push((d, p));
    }
    for (_, batch) in by_stage {
        // Boxed up front: a lazily mapped stream of borrowing futures trips the compiler's
        // higher-ranked Send check inside the controller runtime.
        let writes: Vec<WriteFuture<'_>> = batch
            .into_iter()
            .map(|(d, p)| {
                let client = client.clone();
                // Resolved by its dry-run, and served kinds stay resolved.
                let resolved = resolver.known(d.api_version(), d.kind());
                Box::pin(async move {
                    let mut single = ApplyOutcome::default();
                    write_resolved(&client, resolved, d, p, &mut single).await?;
                    count_written(options);
                    Ok::<_, ApplyError>(single)
                }) as WriteFuture<'_>
            })
            .collect();
        // Every write in flight finishes before an error is reported, so the outcome counts
        // what was really written.
        let results: Vec<Result<ApplyOutcome, ApplyError>> = stream::iter(writes)
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(r) => outcome.absorb(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(())
}

/// `(group/version, kind)` for each served version of a CRD manifest.
pub(crate) fn crd_kinds(crd: &Json) -> Option<Vec<(String, String)>> {
    let group = crd["spec"]["group"].as_str()?;
    let kind = crd["spec"]["names"]["kind"].as_str()?;
    let versions = crd["spec"]["versions"].as_array()?;
    Some(
        versions
            .iter()
            .filter_map(|v| v["name"].as_str())
            .map(|v| (format!("{group}/{v}"), kind.to_owned()))
            .collect(),
    )
}

fn patch_params(dry_run: bool) -> PatchParams {
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    params.dry_run = dry_run;
    params
}

async fn plan(
    client: &Client,
    resolver: &mut Resolver,
    d: &Desired,
    options: ApplyOptions<'_>,
) -> Result<Planned, ApplyError> {
    let resolved = resolver
        .resolve(client, d.api_version(), d.kind())
        .await
        .map_err(|e| transient(&d.location, &e))?;
    plan_resolved(client, resolved, d, options).await
}

/// Plans every object of `objects` concurrently; results in input order.
async fn plan_many(
    client: &Client,
    resolver: &mut Resolver,
    objects: &[&Desired],
    options: ApplyOptions<'_>,
) -> Result<Vec<Result<Planned, ApplyError>>, ApplyError> {
    // Kinds are few: resolve them one by one (cached), then plan the objects in parallel.
    for d in objects {
        resolver
            .resolve(client, d.api_version(), d.kind())
            .await
            .map_err(|e| transient(&d.location, &e))?;
    }
    let plans: Vec<PlanFuture<'_>> = objects
        .iter()
        .map(|d| {
            let client = client.clone();
            let resolved = resolver.known(d.api_version(), d.kind());
            let d: &Desired = d;
            Box::pin(async move { plan_resolved(&client, resolved, d, options).await })
                as PlanFuture<'_>
        })
        .collect();
    Ok(stream::iter(plans)
        .buffered(options.concurrency.max(1))
        .collect()
        .await)
}

type PlanFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Planned, ApplyError>> + Send + 'a>>;

async fn plan_resolved(
    client: &Client,
    resolved: Option<(ApiResource, bool)>,
    d: &Desired,
    options: ApplyOptions<'_>,
) -> Result<Planned, ApplyError> {
    let planned = dry_run(client, resolved, d, options).await;
    if planned.is_ok() {
        if let Some(progress) = options.progress {
            progress.validated(1);
        }
    }
    planned
}

fn count_written(options: ApplyOptions<'_>) {
    if let Some(progress) = options.progress {
        progress.written(1);
    }
}

/// Plans one object: a dry-run of its apply, compared with the live object.
async fn dry_run(
    client: &Client,
    resolved: Option<(ApiResource, bool)>,
    d: &Desired,
    options: ApplyOptions<'_>,
) -> Result<Planned, ApplyError> {
    let force = options.force;
    let api = object_api(client, resolved, d)?;
    let live = api
        .get_opt(d.name())
        .await
        .map_err(|e| api_error(d, e))?
        .map(Wiped);
    if live
        .as_ref()
        .is_some_and(|l| l.metadata.deletion_timestamp.is_some())
    {
        // Written now, it would be gone in a moment (a Namespace of an earlier revision, say,
        // which a revert brings back): retried once the deletion has finished.
        return Err(ApplyError::Transient {
            location: d.location.clone(),
            message: "the object is being deleted; the revision is applied again once it is gone"
                .to_owned(),
        });
    }
    if let Some(live) = &live {
        let labels = live.metadata.labels.as_ref();
        let owner = |key: &str| labels.and_then(|l| l.get(key)).map(String::as_str);
        let want = |key: &str| d.object["metadata"]["labels"][key].as_str();
        let other_owner = owner(OWNER_NAME_LABEL).is_some()
            && (owner(OWNER_NAME_LABEL) != want(OWNER_NAME_LABEL)
                || owner(OWNER_NAMESPACE_LABEL) != want(OWNER_NAMESPACE_LABEL));
        if other_owner {
            return Err(ApplyError::Invalid {
                location: d.location.clone(),
                message: format!(
                    "the object belongs to GitSync {}/{}; one object can be managed by one GitSync only",
                    owner(OWNER_NAMESPACE_LABEL).unwrap_or_default(),
                    owner(OWNER_NAME_LABEL).unwrap_or_default()
                ),
            });
        }
        let resource_owner = live.metadata.owner_references.iter().flatten().find(|o| {
            o.controller == Some(true)
                && o.api_version == "sealsync.dev/v1"
                && o.kind == "SealedSecret"
        });
        if let Some(owner) = resource_owner {
            return Err(ApplyError::Invalid {
                location: d.location.clone(),
                message: format!(
                    "the object is written for the SealedSecret resource {}/{}; a Secret is written either by a GitSync or by a SealedSecret resource, never both: remove it from one of them",
                    live.metadata.namespace.as_deref().unwrap_or_default(),
                    owner.name
                ),
            });
        }
        if live
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(RECONCILE_ANNOTATION))
            .is_some_and(|v| v.eq_ignore_ascii_case("disabled"))
        {
            return Ok(Planned::Skipped(Fingerprint::of(&live.metadata)));
        }
    }
    match api
        .patch(d.name(), &patch_params(true), &Patch::Apply(&d.object))
        .await
    {
        Ok(dry) => {
            let dry = Wiped(dry);
            let Some(live) = live else {
                return Ok(Planned::Write {
                    create: true,
                    undo: Undo::Delete,
                });
            };
            let undo = || match Previous::of(&live, d.api_version(), d.kind()) {
                Some(previous) => Undo::Restore(previous),
                None => Undo::Keep,
            };
            if options.self_heal && crate::sync::apply::drift::has_manual_edits(&live) {
                return Ok(Planned::TakeOver { undo: undo() });
            }
            if same_object(&dry, &live) {
                Ok(Planned::Unchanged(Fingerprint::of(&live.metadata)))
            } else {
                Ok(Planned::Write {
                    create: false,
                    undo: undo(),
                })
            }
        }
        Err(kube::Error::Api(status)) if is_immutable(&status) => {
            // Recreating these deletes what lives in or on them: every object of a Namespace,
            // every custom resource of a CRD, the data of a volume claim.
            let destructive = matches!(
                d.kind(),
                "Namespace" | "CustomResourceDefinition" | "PersistentVolumeClaim"
            );
            if force && !destructive {
                Ok(Planned::Recreate)
            } else {
                Err(ApplyError::Immutable {
                    location: d.location.clone(),
                    message: server_message(d, &status),
                })
            }
        }
        Err(e) => Err(api_error(d, e)),
    }
}

async fn write(
    client: &Client,
    resolver: &mut Resolver,
    d: &Desired,
    plan: Planned,
    outcome: &mut ApplyOutcome,
) -> Result<(), ApplyError> {
    let resolved = resolver
        .resolve(client, d.api_version(), d.kind())
        .await
        .map_err(|e| transient(&d.location, &e))?;
    write_resolved(client, resolved, d, plan, outcome).await
}

async fn write_resolved(
    client: &Client,
    resolved: Option<(ApiResource, bool)>,
    d: &Desired,
    plan: Planned,
    outcome: &mut ApplyOutcome,
) -> Result<(), ApplyError> {
    let api = object_api(client, resolved, d)?;
    let id = || crate::sync::inventory::entry_of(&d.object).id;
    let undo = match plan {
        Planned::Unchanged(seen) => {
            outcome.unchanged += 1;
            outcome.observed.push((id(), seen));
            return Ok(());
        }
        Planned::Skipped(seen) => {
            outcome.skipped += 1;
            outcome.observed.push((id(), seen));
            return Ok(());
        }
        Planned::Recreate => {
            // Background, as `kubectl replace --force` does: foreground deletion waits for the
            // garbage collector to remove the dependents first, and hangs where it is slow.
            api.delete(d.name(), &DeleteParams::background())
                .await
                .map_err(|e| api_error(d, e))?;
            wait_gone(&api, d).await?;
            outcome.recreated += 1;
            // What was deleted cannot be brought back as it was.
            Undo::Keep
        }
        Planned::Write { create, undo } => {
            if create {
                outcome.created += 1;
            } else {
                outcome.configured += 1;
            }
            undo
        }
        Planned::TakeOver { undo } => {
            if let Some(live) = api.get_opt(d.name()).await.map_err(|e| api_error(d, e))? {
                let live = Wiped(live);
                let taken = Wiped(
                    crate::sync::apply::drift::take_over(&api, &live, d.api_version())
                        .await
                        .map_err(|e| api_error(d, e))?,
                );
                outcome.intermediate.push(Fingerprint::of(&taken.metadata));
            }
            outcome.configured += 1;
            undo
        }
    };
    let after = Wiped(
        api.patch(d.name(), &patch_params(false), &Patch::Apply(&d.object))
            .await
            .map_err(|e| api_error(d, e))?,
    );
    outcome.writes.push(WriteRecord {
        entry: crate::sync::inventory::entry_of(&d.object),
        location: d.location.clone(),
        api,
        name: d.name().to_owned(),
        undo,
    });
    outcome
        .observed
        .push((id(), Fingerprint::of(&after.metadata)));
    Ok(())
}

/// Plans and applies one object on its own, as self-heal does when a watch reports a change:
/// the same dry-run comparison as a full apply, so an object that still matches its manifest
/// is not written. Returns what was done, the object's state afterwards, and the states its
/// writes passed through before that.
pub(crate) async fn apply_one(
    client: &Client,
    resolved: (ApiResource, bool),
    d: &Desired,
    options: ApplyOptions<'_>,
) -> Result<(Applied, Fingerprint, Vec<Fingerprint>), ApplyError> {
    let plan = plan_resolved(client, Some(resolved.clone()), d, options).await?;
    let mut outcome = ApplyOutcome::default();
    write_resolved(client, Some(resolved), d, plan, &mut outcome).await?;
    let applied = if outcome.created > 0 {
        Applied::Created
    } else if outcome.recreated > 0 {
        Applied::Recreated
    } else if outcome.configured > 0 {
        Applied::Configured
    } else if outcome.skipped > 0 {
        Applied::Skipped
    } else {
        Applied::Unchanged
    };
    let seen = outcome
        .observed
        .pop()
        .map(|(_, seen)| seen)
        .ok_or_else(|| ApplyError::Transient {
            location: d.location.clone(),
            message: "the apply reported no state".to_owned(),
        })?;
    Ok((applied, seen, outcome.intermediate))
}

/// Deletes `d` if it exists and waits until it is gone: a hook's delete policy. Returns
/// whether there was something to delete.
pub(crate) async fn delete_and_wait(
    client: &Client,
    resolver: &mut Resolver,
    d: &Desired,
) -> Result<bool, ApplyError> {
    let resolved = resolver
        .resolve(client, d.api_version(), d.kind())
        .await
        .map_err(|e| transient(&d.location, &e))?;
    let api = object_api(client, resolved, d)?;
    match api.delete(d.name(), &DeleteParams::background()).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(false),
        Err(e) => return Err(api_error(d, e)),
    }
    wait_gone(&api, d).await?;
    Ok(true)
}

async fn wait_gone(api: &Api<DynamicObject>, d: &Desired) -> Result<(), ApplyError> {
    for _ in 0..300 {
        match api.get_opt(d.name()).await {
            Ok(None) => return Ok(()),
            Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => return Err(api_error(d, e)),
        }
    }
    Err(ApplyError::NotReady {
        location: d.location.clone(),
        seconds: 30,
    })
}

/// Waits until a CRD is Established (its kinds are served) or a Namespace is Active.
async fn wait_ready(client: &Client, d: &Desired, timeout: Duration) -> Result<(), ApplyError> {
    let gvk = match d.kind() {
        "CustomResourceDefinition" | "Namespace" => {
            let (group, version) = d
                .api_version()
                .rsplit_once('/')
                .unwrap_or(("", d.api_version()));
            GroupVersionKind::gvk(group, version, d.kind())
        }
        _ => return Ok(()),
    };
    let resource = ApiResource::from_gvk(&gvk);
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let live = api.get_opt(d.name()).await.map_err(|e| api_error(d, e))?;
        let ready = live.is_some_and(|o| {
            let status = &o.data["status"];
            match d.kind() {
                "Namespace" => status["phase"].as_str().is_none_or(|p| p == "Active"),
                _ => status["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                }),
            }
        });
        if ready {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApplyError::NotReady {
                location: d.location.clone(),
                seconds: timeout.as_secs(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the dry-run result equals the live object, ignoring bookkeeping the server keeps.
fn same_object(dry: &DynamicObject, live: &DynamicObject) -> bool {
    let strip = |o: &DynamicObject| {
        let mut v = serde_json::to_value(o).unwrap_or(Json::Null);
        if let Some(meta) = v.get_mut("metadata").and_then(Json::as_object_mut) {
            meta.remove("managedFields");
            meta.remove("resourceVersion");
        }
        v
    };
    strip(dry) == strip(live)
}

/// The user a 403 names (`... is forbidden: User "NAME" cannot ...`).
fn forbidden_user(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("User \"")?;
    rest.split_once('"').map(|(user, _)| user)
}

fn is_immutable(status: &kube::core::Status) -> bool {
    status.code == 422 && status.message.contains("immutable")
}

fn transient(location: &str, e: &kube::Error) -> ApplyError {
    ApplyError::Transient {
        location: location.to_owned(),
        message: Chain(e).to_string(),
    }
}

/// kube-apiserver answers a server-side apply whose object does not fit its kind's schema (an
/// unknown field, a value of the wrong type) or does not decode into its Go type (bad base64 in
/// a Secret's data) with 500 and one of these messages, not with 4xx: the manifest is at
/// fault, and retrying cannot help.
fn is_schema_mismatch(status: &kube::core::Status) -> bool {
    status.code == 500
        && (status
            .message
            .starts_with("failed to create typed patch object")
            || status.message.starts_with("failed to convert new object"))
}

/// The field path of a schema mismatch (`.data.k` in `failed to create typed patch object
/// (/bad; /v1, Kind=Secret): .data.k: illegal base64 …`), when it is plain enough to print.
fn schema_mismatch_field(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once("): ")?;
    let field = rest.split(": ").next()?;
    let printable = field.starts_with('.')
        && field.len() <= 256
        && field
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/[]=".contains(&b));
    printable.then_some(field)
}

fn api_error(d: &Desired, e: kube::Error) -> ApplyError {
    match e {
        // A refusal names the user, verb, resource and namespace, never a value.
        kube::Error::Api(status) if status.code == 403 => ApplyError::Forbidden {
            location: d.location.clone(),
            actor: forbidden_user(&status.message)
                .unwrap_or("the controller's service account")
                .to_owned(),
            message: status.message.chars().take(1024).collect(),
        },
        kube::Error::Api(status)
            if (status.code >= 400 && status.code < 500 && status.code != 429)
                || is_schema_mismatch(&status) =>
        {
            ApplyError::Invalid {
                location: d.location.clone(),
                message: server_message(d, &status),
            }
        }
        kube::Error::Api(status) => ApplyError::Transient {
            location: d.location.clone(),
            message: server_message(d, &status),
        },
        other => ApplyError::Transient {
            location: d.location.clone(),
            message: other.to_string(),
        },
    }
}

/// The API server's message, except for Secrets: their validation messages can quote a
/// value, so only the reason and the fields at fault are kept.
fn server_message(d: &Desired, status: &kube::core::Status) -> String {
    if !d.is_secret() {
        return status.message.chars().take(1024).collect();
    }
    if is_schema_mismatch(status) {
        // The server's own text may quote what it could not decode: only the field is kept.
        return match schema_mismatch_field(&status.message) {
            Some(field) => format!("the Secret does not fit its schema at {field}"),
            None => "the API server cannot decode the Secret: a data value that is not base64, \
                     or a field of the wrong type"
                .to_owned(),
        };
    }
    let fields: Vec<String> = status
        .details
        .as_ref()
        .map(|details| {
            details
                .causes
                .iter()
                .filter(|c| !c.field.is_empty())
                .map(|c| c.field.clone())
                .collect()
        })
        .unwrap_or_default();
    if fields.is_empty() {
        format!("{} ({})", status.reason, status.code)
    } else {
        format!("{} ({}): {}", status.reason, status.code, fields.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(api_version: &str, kind: &str, name: &str) -> Desired {
        Desired {
            location: format!("{name}.yaml"),
            object: serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
        }
    }

    #[test]
    fn definitions_first_webhooks_last() {
        let mut objects = [
            desired(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "w",
            ),
            desired("apps/v1", "Deployment", "d"),
            desired("example.com/v1", "Widget", "x"),
            desired("v1", "Secret", "s"),
            desired("v1", "ConfigMap", "c"),
            desired("networking.k8s.io/v1", "IngressClass", "i"),
            desired("v1", "Namespace", "n"),
            desired(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            ),
        ];
        objects.sort_by_cached_key(|d| apply_order(&d.object));
        let kinds: Vec<_> = objects.iter().map(Desired::kind).collect();
        assert_eq!(
            kinds,
            [
                "Namespace",
                "CustomResourceDefinition",
                "IngressClass",
                "ConfigMap",
                "Secret",
                "Deployment",
                "Widget",
                "ValidatingWebhookConfiguration"
            ]
        );
    }

    fn status(code: u16, message: &str) -> kube::core::Status {
        kube::core::Status {
            code,
            message: message.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn a_schema_mismatch_is_the_manifest_not_the_server() {
        let secret = desired("v1", "Secret", "bad");
        let message = "failed to create typed patch object (/bad; /v1, Kind=Secret): .data.k: \
                       illegal base64 data at input byte 0 canary-value";
        let err = api_error(&secret, kube::Error::Api(Box::new(status(500, message))));
        assert!(!err.is_transient(), "{err}");
        let shown = err.to_string();
        assert!(shown.contains(".data.k"), "{shown}");
        assert!(!shown.contains("canary"), "{shown}");

        let cm = desired("v1", "ConfigMap", "typo");
        let message = "failed to create typed patch object (/typo; /v1, Kind=ConfigMap): .dta: \
                       field not declared in schema";
        let err = api_error(&cm, kube::Error::Api(Box::new(status(500, message))));
        assert!(!err.is_transient(), "{err}");
        assert!(
            err.to_string().contains(".dta: field not declared"),
            "{err}"
        );

        let message = "failed to convert new object (newns/bad; /v1, Kind=Secret) to proper \
                       version: unable to convert unstructured object to /v1, Kind=Secret: error \
                       decoding from json: illegal base64 data at input byte 0";
        let err = api_error(&secret, kube::Error::Api(Box::new(status(500, message))));
        assert!(!err.is_transient(), "{err}");
        assert!(err.to_string().contains("not base64"), "{err}");

        // Any other 500 is the server's, and is retried.
        let err = api_error(
            &cm,
            kube::Error::Api(Box::new(status(500, "etcdserver: leader changed"))),
        );
        assert!(err.is_transient(), "{err}");
    }
}
