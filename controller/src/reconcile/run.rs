//! The stages of one reconcile, one function each: the spec checked, fetch, signature
//! verification, the poll short-cut, render, the sync engine (decrypt, resolve, restarts, plan, apply), prune, and the
//! hand-over to self-heal and the Vault refresher.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::{Resource, ResourceExt};
use sealsync_core::render::{self, normalize_path, Kept, RenderLimits, SourceFile};
use sealsync_core::{GitSync, Inventory, InventoryEntry, Revision, VerifyMode};
use serde_json::Value as Json;

use super::{
    applied_inventory, credentials, default_namespace, forget_vault, health, incremental,
    register_webhook, report_orphaned, rollback, Applied, Shared,
};
use crate::heal::TrackedSource;
use crate::support::metrics::{ReasonLabels, RenderLabels};
use crate::support::{Actor, SyncKey};
use crate::sync::apply::Resolver;
use crate::sync::engine::{Pass, Synced, Target};
use crate::sync::error::Error;
use crate::sync::fetch::{self, FetchRequest, Snapshot, SourceLimits};
use crate::sync::object::SyncObject;
use crate::sync::plan::CarriedObjects;
use crate::sync::progress::{Progress, SyncStage};
use crate::sync::resolve::Login;
use crate::sync::verify::{self, Verified};
use crate::sync::{build, inventory, prune, substitute};
use sealsync_core::renderer::Engine;
use sealsync_core::substitute::Variables;

/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// What a reconcile learnt on the way, whether it ends applied or failed.
#[derive(Debug, Default)]
pub(super) struct Attempt {
    /// The fetched revision, as soon as it is known.
    pub(super) revision: Option<String>,
    /// With `spec.verify`, the revision to apply once its signatures were accepted.
    pub(super) verified: Option<Verified>,
    /// The objects a failed apply could not undo.
    pub(super) written: Vec<InventoryEntry>,
    /// The values of substitution variables read from Secrets, which no message may show.
    pub(super) secret_values: Vec<zeroize::Zeroizing<String>>,
}

/// One reconcile's stages, the wait for health ending at `deadline`; `attempt` records what
/// it learnt on the way.
pub(super) async fn run(
    gs: &GitSync,
    ctx: &Shared,
    actor: &Actor,
    (progress, deadline): (&Progress, tokio::time::Instant),
    attempt: &mut Attempt,
) -> Result<Applied, Error> {
    let Attempt {
        revision: attempted,
        verified,
        written,
        secret_values,
    } = attempt;
    let key: SyncKey = (gs.namespace().unwrap_or_default(), gs.name_any());
    let (revision, path) = check_spec(gs, ctx)?;
    let custom = crate::health::compile_custom(&gs.spec.health_check_exprs).map_err(Error::Spec)?;
    // Applies and prunes go through the GitSync's service account when it has one: its RBAC,
    // not the controller's, bounds what the repository may change.
    let client = ctx
        .engine
        .clients
        .client_as(actor)
        .map_err(|source| Error::Kube {
            action: "creating the client that impersonates the service account",
            source,
        })?;
    let known_commit = known_commit(gs, ctx, &key);
    let known_files = incremental::known_files(gs, ctx, &key);
    let mut snapshot =
        fetch_revision(gs, ctx, revision, &path, known_commit.clone(), known_files).await?;
    *attempted = Some(snapshot.revision.clone());
    progress.revision(&snapshot.revision);
    // Nothing of the revision is rendered, decrypted, resolved or applied unless it is signed.
    *verified = verify_signatures(gs, ctx, &snapshot, None, progress).await?;
    // The head failed its health check and was rolled back from: the last healthy revision
    // is applied again instead (its commit is usually in the local repository already).
    let rolled_back_from = match rollback::target(gs, &snapshot.commit) {
        Some(healthy) => {
            let commit = rollback::commit_of(&healthy).unwrap_or_default().to_owned();
            let failed = std::mem::replace(
                &mut snapshot,
                fetch_revision(gs, ctx, Revision::Commit(commit), &path, None, None).await?,
            );
            snapshot.revision = healthy;
            // Its tag (in the Tag modes) has moved on since: its commit must be signed.
            *verified = None;
            *verified =
                verify_signatures(gs, ctx, &snapshot, Some(VerifyMode::Head), progress).await?;
            tracing::info!(failed = %failed.revision, applying = %snapshot.revision, "rolled back");
            Some(failed.revision)
        }
        None => None,
    };
    progress.revision(&snapshot.revision);
    if known_commit.as_deref() == Some(snapshot.commit.as_str()) {
        ctx.metrics.polls_unchanged.inc();
        // Without selfHeal, drift stays until the next commit, a spec change or `sealsync
        // sync` (Argo CD's selfHeal: false); with it, the watches have found none.
        let summary = if gs.spec.self_heal {
            "unchanged revision; every object watched and in sync"
        } else {
            "unchanged revision; selfHeal is off, so drift is not corrected"
        };
        return Ok(Applied::unchanged(gs, snapshot.revision, summary));
    }
    // A new revision: commit statuses go to pending until it is applied or fails. Retries of
    // the same revision do not set it again.
    let first_attempt = gs
        .status
        .as_ref()
        .and_then(|s| s.last_attempted_revision.as_deref())
        != Some(snapshot.revision.as_str());
    if first_attempt {
        ctx.notify.emit(
            gs,
            sealsync_core::NotifyEvent::Progressing,
            "Progressing",
            &format!("applying revision {}", snapshot.revision),
            Some(&snapshot.revision),
        );
    }

    let mut sealed_files = substitute::SealedFiles::new();
    for file in substitute::sealed_paths(gs, &path)? {
        let contents = fetch::read_path(&snapshot, &file, SourceLimits::default()).await?;
        sealed_files.insert(file, contents);
    }
    let (variables, variables_usage) = {
        let ring = ctx.engine.keys.read().await;
        match substitute::variables(gs, &client, (&path, &sealed_files, &ring)).await? {
            Some((vars, usage)) => (Some(vars).filter(|v| !v.is_empty()), usage),
            None => (None, Vec::new()),
        }
    };
    drop(sealed_files);
    if let Some(vars) = &variables {
        *secret_values = vars.secret_values();
    }

    let previous_inventory = applied_inventory(
        gs,
        ctx,
        "objects that only the last revision held are not pruned: delete them by hand if they should go",
    )
    .await?;
    // What self-heal vouches for, taken before it stands aside.
    let applied = incremental::applied_before(gs, ctx, &key, &snapshot.revision);
    // A full reconcile: self-heal stands aside until it ends, and the webhook's Secret is
    // read again (a rotated token takes effect here).
    ctx.healer.begin(&key);
    // A Vault refresh of this GitSync waits until the new revision is applied (or failed).
    let _refresh_guard = ctx.refresher.lock(&key).await;
    if gs.spec.webhook.is_some() {
        register_webhook(gs, ctx, true).await;
    }

    progress.enter(
        SyncStage::Render,
        snapshot.files.len() + snapshot.kept.len(),
    );
    let (objects, census, carried, values_usage) = render_revision(
        gs,
        ctx,
        (&key, &mut snapshot, &path),
        applied,
        (variables.as_ref(), &client, secret_values),
    )
    .await?;
    let default_namespace = default_namespace(gs);
    let target = Target {
        key: &key,
        default_namespace: &default_namespace,
        actor,
        force: gs.spec.force,
        allow_plaintext: gs.spec.allow_plaintext_secrets,
        self_heal: gs.spec.self_heal,
        progress: Some(progress),
    };
    let mut resolver = Resolver::default();
    let carried_index = carried.as_ref().map(incremental::Carried::index);
    let carried_objects = carried_index
        .as_ref()
        .map(|index| index as &dyn CarriedObjects);
    let mut synced = match sync_objects(
        gs,
        ctx,
        &target,
        &mut resolver,
        objects,
        (
            carried_objects,
            deadline,
            // Hooks run for a new revision, a new spec, `sealsync sync`, or a retry; not when an
            // applied revision is planned again, nor when a rollback applies again the revision
            // it already applied.
            match &rolled_back_from {
                Some(_) => {
                    gs.status
                        .as_ref()
                        .and_then(|s| s.last_applied_revision.as_ref())
                        != Some(&snapshot.revision)
                }
                None => !super::unchanged_since_last_apply(gs, &snapshot.revision),
            },
            &custom,
        ),
    )
    .await
    {
        Ok(synced) => synced,
        Err((error, left)) => {
            *written = left;
            return Err(error);
        }
    };
    count_objects(ctx, &synced);
    let mut values_usage = values_usage;
    values_usage.extend(variables_usage);
    if !values_usage.is_empty() {
        // Sealed Helm values use their keys as a SealedSecret does.
        synced.usage.extend(values_usage);
        synced
            .usage
            .sort_by(|a, b| (&a.file, &a.secret).cmp(&(&b.file, &b.secret)));
    }
    let planned_fully = carried.is_none();
    let carried = carried.unwrap_or_default();
    include_carried(&mut synced, &carried);
    let previous_files = ctx.files.get(&key);
    let files = census.index(gs, &snapshot.revision, &snapshot, previous_files.as_deref());

    let pruned = prune_stale(
        gs,
        ctx,
        &client,
        &mut resolver,
        (&previous_inventory, &synced.inventory),
        progress,
    )
    .await;
    // Every object is written by now: should the health stage fail, they stay recorded.
    written.clone_from(&synced.inventory.entries);
    let health = {
        let applied = health::AppliedObjects {
            inventory: &synced.inventory,
            observed: synced
                .outcome
                .observed
                .iter()
                .chain(&carried.observed)
                .map(|(id, seen)| (id.as_str(), seen))
                .collect(),
            hooks: synced
                .objects
                .iter()
                .filter(|o| o.hook)
                .map(|o| o.id.as_str())
                .collect(),
            actor,
            client: &client,
            default_namespace: &default_namespace,
            custom: &custom,
        };
        health::check_health(gs, ctx, &key, &applied, &mut resolver, (deadline, progress)).await?
    };
    let mut applied = hand_over(
        gs,
        ctx,
        &target,
        snapshot.revision,
        synced,
        (carried, files, planned_fully),
        pruned,
    );
    applied.health = health;
    applied.rolled_back_from = rolled_back_from;
    Ok(applied)
}

/// The spec's revision and path, and the checks that need no request.
fn check_spec(gs: &GitSync, ctx: &Shared) -> Result<(Revision, String), Error> {
    let revision = gs.spec.revision()?;
    verify::check_spec(&gs.spec, &revision, ctx.settings.require_verified_sources)?;
    let path = normalize_path(gs.spec.path.as_deref().unwrap_or("")).map_err(Error::Render)?;
    fetch::check_url(&gs.spec.url)?;
    if gs.spec.secret_ref.is_some() && !gs.spec.url.starts_with("https://") {
        // Basic auth and bearer tokens over http:// or git:// travel in clear text.
        return Err(Error::Spec(
            "spec.secretRef: credentials are sent only over https://; use the repository's https URL"
                .to_owned(),
        ));
    }
    gs.spec
        .check_secret_namespaces(&gs.namespace().unwrap_or_default())
        .map_err(Error::Spec)?;
    Ok((revision, path))
}

/// The commit of the last applied revision when a poll that finds it unchanged may stop
/// there: its objects are watched (or need no healing), so a poll reads nothing more than
/// the remote's refs.
fn known_commit(gs: &GitSync, ctx: &Shared, key: &SyncKey) -> Option<String> {
    if substitute::reads_objects(gs) {
        // Its variables may have changed without a commit.
        return None;
    }
    gs.status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .filter(|applied| {
            if ctx.triggers.take_replan(key) {
                tracing::info!(
                    reason = "a Vault refresh changed a Secret that workloads restart on",
                    "re-planning every object"
                );
                return false;
            }
            if !super::unchanged_since_last_apply(gs, applied) {
                return false;
            }
            let waits = gs.spec.wait || !gs.spec.health_checks.is_empty();
            if waits && ctx.engine.health.still_healthy(key) != Some(true) {
                // Applied objects went unhealthy since (or were never waited for here): the
                // revision is applied again and waited for, as Flux checks health each time.
                tracing::info!(
                    reason = "an object waited for is not healthy now",
                    "re-planning every object"
                );
                return false;
            }
            if !gs.spec.self_heal {
                return true;
            }
            match ctx.healer.armed(key, gs.meta().generation, applied) {
                Ok(()) => true,
                Err(why) => {
                    tracing::info!(reason = why, "re-planning every object");
                    false
                }
            }
        })
        .and_then(|applied| applied.rsplit_once("sha1:").map(|(_, c)| c.to_owned()))
}

/// The `fetch` stage.
async fn fetch_revision(
    gs: &GitSync,
    ctx: &Shared,
    revision: Revision,
    path: &str,
    known_commit: Option<String>,
    known_files: Option<Arc<HashMap<String, gix::ObjectId>>>,
) -> Result<Snapshot, Error> {
    let credentials = credentials(gs, ctx).await?;
    let namespace = gs.namespace().unwrap_or_default();
    let snapshot = fetch::fetch(FetchRequest {
        url: gs.spec.url.clone(),
        revision,
        path: path.to_owned(),
        credentials,
        repo_dir: ctx.settings.data_dir.join(
            gs.uid()
                .unwrap_or_else(|| format!("{namespace}_{}", gs.name_any())),
        ),
        limits: SourceLimits::default(),
        timeout: FETCH_TIMEOUT,
        known_commit,
        known_files,
        read_signatures: gs.spec.verify.is_some(),
    })
    .await?;
    Ok(snapshot)
}

/// The `verify` stage: with `spec.verify`, the signatures its mode (or `mode`) asks for, by
/// keys of its Secret; `None` without `spec.verify`.
async fn verify_signatures(
    gs: &GitSync,
    ctx: &Shared,
    snapshot: &Snapshot,
    mode: Option<VerifyMode>,
    progress: &Progress,
) -> Result<Option<Verified>, Error> {
    let Some(spec) = &gs.spec.verify else {
        return Ok(None);
    };
    progress.enter(SyncStage::Verify, 0);
    let namespace = gs.namespace().unwrap_or_default();
    let verified = async {
        let keys = ctx.keyrings.keys(&ctx.client, &namespace, spec).await?;
        verify::verify(mode.unwrap_or(spec.mode), &snapshot.signed, &keys)
    }
    .await;
    // What follows until the render (variables, the last inventory) is counted with the
    // fetch, as it was before there was a verify stage.
    progress.enter(SyncStage::Fetch, 0);
    match verified {
        Ok(signers) => Ok(Some(Verified {
            revision: snapshot.revision.clone(),
            signers,
        })),
        Err(e) => {
            ctx.metrics
                .verification_failures
                .get_or_create(&ReasonLabels {
                    reason: e.metric_label(),
                })
                .inc();
            Err(Error::Verification(e))
        }
    }
}

/// The `render` stage: the revision's objects for the engine, with the objects of the
/// applied revision it holds unchanged when only the difference is planned. The files the
/// fetch kept are read after all when every object is planned.
async fn render_revision(
    gs: &GitSync,
    ctx: &Shared,
    (key, snapshot, path): (&SyncKey, &mut Snapshot, &str),
    applied: Result<Vec<crate::heal::AppliedObject>, &'static str>,
    (variables, client, secret_values): (
        Option<&Variables>,
        &kube::Client,
        &mut Vec<zeroize::Zeroizing<String>>,
    ),
) -> Result<
    (
        Vec<SyncObject>,
        incremental::Census,
        Option<incremental::Carried>,
        Vec<sealsync_core::SealedSecretUsage>,
    ),
    Error,
> {
    let engine = build::engine_for(gs, snapshot, path);
    if engine != Engine::Directory {
        // The output depends on the whole tree (bases, templates, values), so every object is
        // planned; an unchanged commit never gets here.
        incremental::plan_fully(ctx, "the path is rendered by kustomize or Helm");
        let timeout = super::timeout_of(gs, super::interval_of(gs)?)?;
        let builder = build::Builder {
            renderer: &ctx.settings.renderer,
            slots: &ctx.settings.render_slots,
            client,
            keys: &ctx.engine.keys,
            capabilities: (&ctx.capabilities, &ctx.client),
            charts: &ctx.charts,
            data_dir: &ctx.settings.data_dir,
        };
        let built = build::build(
            gs,
            &builder,
            snapshot,
            path,
            engine,
            (&default_namespace(gs), timeout),
            (variables, secret_values),
        )
        .await;
        let labels = RenderLabels {
            engine: engine.name(),
            result: if built.is_ok() { "success" } else { "failure" },
        };
        ctx.metrics.renders.get_or_create(&labels).inc();
        let (objects, usage) = built?;
        let census = incremental::Census::of(&objects);
        return Ok((objects, census, None, usage));
    }
    let applied = if substitute::reads_objects(gs) {
        Err("the variables of spec.postBuild.substituteFrom may have changed")
    } else {
        applied
    };
    let reason = match applied.and_then(|a| Ok((a, incremental::kept_files(ctx, key, snapshot)?))) {
        Ok((applied, kept)) => {
            let mut objects = render_objects(gs, &snapshot.files, path, kept.kept, variables)?;
            let census = incremental::Census::of(&objects);
            match incremental::carry_over(gs, ctx, applied, &kept, &mut objects) {
                Ok(carried) => return Ok((objects, census, Some(carried), Vec::new())),
                Err(reason) => reason,
            }
        }
        Err(reason) => reason,
    };
    incremental::plan_fully(ctx, reason);
    fetch::read_kept(snapshot).await?;
    let objects = render_objects(gs, &snapshot.files, path, Kept::default(), variables)?;
    let census = incremental::Census::of(&objects);
    Ok((objects, census, None, Vec::new()))
}

fn render_objects(
    gs: &GitSync,
    files: &[SourceFile],
    path: &str,
    kept: Kept,
    variables: Option<&Variables>,
) -> Result<Vec<SyncObject>, Error> {
    let manifests =
        render::render_substituted(files, path, &RenderLimits::default(), kept, variables)?;
    let mut objects: Vec<SyncObject> = manifests
        .into_iter()
        .map(|m| SyncObject::rendered(m, gs.spec.self_heal))
        .collect();
    crate::sync::sops::attach_sources(&mut objects, files);
    Ok(objects)
}

/// Decrypt, resolve, restarts, plan and apply, by the sync engine. A failure returns the
/// objects the apply could not undo.
async fn sync_objects(
    gs: &GitSync,
    ctx: &Shared,
    target: &Target<'_>,
    resolver: &mut Resolver,
    objects: Vec<SyncObject>,
    (carried, deadline, run_hooks, custom): (
        Option<&dyn CarriedObjects>,
        tokio::time::Instant,
        bool,
        &[std::sync::Arc<crate::health::CustomHealth>],
    ),
) -> Result<Synced, (Error, Vec<InventoryEntry>)> {
    // The CRDs of the revision say the scope of the kinds they define before they are served.
    let revision_crds: Vec<Json> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| o.object.clone())
        .collect();
    let pass = Pass::Revision {
        login: Login::Spec {
            vault: gs.spec.vault.as_ref(),
            service_account: gs.spec.service_account_name.as_deref(),
        },
        restart_all: gs.spec.restart_on_secret_change,
        keep_manifests: gs.spec.self_heal,
        carried,
        deadline,
        run_hooks,
        custom,
    };
    ctx.engine
        .run(target, pass, objects, resolver, &revision_crds)
        .await
        .map_err(|failure| (failure.error, failure.written))
}

/// The whole revision in the result: the objects carried over unchanged join the inventory,
/// the unchanged count and the SealedSecrets' key usage of the objects planned.
fn include_carried(synced: &mut Synced, carried: &incremental::Carried) {
    if carried.entries.is_empty() {
        return;
    }
    synced
        .inventory
        .entries
        .extend(carried.entries.iter().cloned());
    synced.inventory.entries.sort();
    synced.inventory.entries.dedup_by(|a, b| a.id == b.id);
    synced.outcome.unchanged += carried.entries.len();
    synced.usage.extend(carried.usage.iter().cloned());
    synced
        .usage
        .sort_by(|a, b| (&a.file, &a.secret).cmp(&(&b.file, &b.secret)));
}

fn count_objects(ctx: &Shared, synced: &Synced) {
    let outcome = &synced.outcome;
    ctx.metrics.count_objects("created", outcome.created);
    ctx.metrics
        .count_objects("configured", outcome.configured + outcome.recreated);
    ctx.metrics.count_objects("unchanged", outcome.unchanged);
}

/// What the `prune` stage did.
#[derive(Debug, Default)]
struct Pruned {
    /// Objects deleted.
    deleted: usize,
    /// Objects whose deletion failed: they stay in the inventory and are retried.
    retained: Vec<InventoryEntry>,
    /// Why some deletions failed.
    error: Option<String>,
}

/// The `prune` stage: what the last applied revision had and this one has not.
async fn prune_stale(
    gs: &GitSync,
    ctx: &Shared,
    client: &kube::Client,
    resolver: &mut Resolver,
    (old_inventory, new_inventory): (&Inventory, &Inventory),
    progress: &Progress,
) -> Pruned {
    let stale = inventory::stale(old_inventory, new_inventory);
    if !gs.spec.prune || stale.is_empty() {
        return Pruned::default();
    }
    progress.enter(SyncStage::Prune, stale.len());
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let scope = prune::PruneScope {
        owner_namespace: &namespace,
        owner_name: &name,
        controller_namespace: &ctx.settings.namespace,
    };
    let result = prune::prune(client, resolver, stale, scope).await;
    report_orphaned(ctx, gs, &result.orphaned).await;
    ctx.metrics.count_objects("pruned", result.deleted.len());
    Pruned {
        deleted: result.deleted.len(),
        retained: if result.error.is_some() {
            result.retained
        } else {
            Vec::new()
        },
        error: result.error,
    }
}

/// What the reconcile reports, and what self-heal and the Vault refresher take over.
fn hand_over(
    gs: &GitSync,
    ctx: &Shared,
    target: &Target<'_>,
    revision: String,
    synced: Synced,
    (carried, files, planned_fully): (incremental::Carried, incremental::FileIndex, bool),
    pruned: Pruned,
) -> Applied {
    let Synced {
        objects,
        usage,
        resolved,
        restart_secrets,
        mut inventory,
        outcome,
        ..
    } = synced;
    // Objects whose deletion failed stay listed, so the next reconcile retries them.
    if !pruned.retained.is_empty() {
        inventory.entries.extend(pruned.retained);
        inventory.entries.sort();
        inventory.entries.dedup_by(|a, b| a.id == b.id);
    }
    let changed = outcome.created + outcome.configured + outcome.recreated + pruned.deleted > 0;
    let summary = format!(
        "{} created, {} configured, {} unchanged, {} pruned{}",
        outcome.created,
        outcome.configured + outcome.recreated,
        outcome.unchanged,
        pruned.deleted,
        if outcome.skipped > 0 {
            format!(", {} skipped (reconcile disabled)", outcome.skipped)
        } else {
            String::new()
        }
    );
    let heal = if gs.spec.self_heal {
        let mut tracked: Vec<Arc<TrackedSource>> = objects
            .into_iter()
            .filter_map(TrackedSource::applied)
            .map(Arc::new)
            .collect();
        tracked.extend(carried.sources);
        let mut observed = outcome.observed;
        observed.extend(carried.observed);
        Some((tracked, observed))
    } else {
        Some((Vec::new(), Vec::new()))
    };
    let mut vault_secrets: Vec<String> = resolved
        .templates
        .iter()
        .filter(|t| t.object["kind"] == "Secret")
        .map(|t| {
            let meta = &t.object["metadata"];
            format!(
                "{}/{}",
                meta["namespace"]
                    .as_str()
                    .unwrap_or(target.default_namespace),
                meta["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    vault_secrets.sort();
    vault_secrets.dedup();
    match resolved.refresh_interval {
        Some(interval) => ctx.refresher.register(
            target.key,
            crate::refresh::Entry::new(
                resolved.templates,
                interval,
                revision.clone(),
                target.default_namespace.to_owned(),
                target.force,
                restart_secrets,
                target.actor.clone(),
            ),
        ),
        None => forget_vault(ctx, target.key),
    }
    Applied {
        revision,
        inventory: Some(Arc::new(inventory)),
        usage,
        vault_secrets,
        summary,
        changed,
        prune_error: pruned.error,
        heal,
        files: gs.spec.self_heal.then_some(files),
        planned_fully,
        health: None,
        rolled_back_from: None,
    }
}
