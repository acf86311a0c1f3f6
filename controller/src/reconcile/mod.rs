//! One reconcile of one GitSync: the stages in order, atomic per revision.
//!
//! fetch → render → decrypt → resolve Vault references → restart checksums → prepare (owner
//! labels, namespaces) → apply (dry-run gated, as the GitSync's service account) → prune →
//! status. A failure at any stage leaves the cluster on the last good revision:
//! `lastAppliedRevision` and the inventory do not move, nothing is pruned, and the status
//! names the stage, the file and the document.

mod context;
mod finish;

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Resource, ResourceExt};
use sealsync_core::render::{self, normalize_path, RenderLimits};
use sealsync_core::{parse_duration, GitSync, Inventory, FINALIZER, REQUESTED_AT_ANNOTATION};
use serde_json::Value as Json;
use zeroize::Zeroizing;

use crate::heal::{HealSpec, TrackedSource};
use crate::status;
use crate::support::{Actor, Fingerprint, SyncKey};
use crate::sync::apply::Resolver;
use crate::sync::engine::{Pass, Synced, Target};
use crate::sync::error::Error;
use crate::sync::fetch::{self, Credentials, FetchRequest, SourceLimits};
use crate::sync::object::SyncObject;
use crate::sync::progress::{Progress, SyncStage};
use crate::sync::resolve::Login;
use crate::sync::{inventory, prune};
pub(crate) use context::Shared;

/// The longest reconcile timeout when `spec.timeout` is not set.
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a successful reconcile did, for the status message and the event.
#[derive(Debug)]
struct Applied {
    revision: String,
    inventory: Inventory,
    usage: Vec<sealsync_core::SealedSecretUsage>,
    summary: String,
    changed: bool,
    /// The revision was applied but some stale objects could not be deleted.
    prune_error: Option<String>,
    /// What self-heal watches from now on: each object's manifest and state after the apply.
    heal: Option<HealHandover>,
}

/// Each applied object's manifest, and its state after the apply (by inventory id).
type HealHandover = (Vec<TrackedSource>, Vec<(String, Fingerprint)>);

impl Applied {
    /// The last applied revision, left as it is.
    fn unchanged(gs: &GitSync, revision: String, summary: &str) -> Self {
        let status = gs.status.clone().unwrap_or_default();
        Self {
            revision,
            inventory: status.inventory.unwrap_or_default(),
            usage: status.sealed_secrets,
            summary: summary.to_owned(),
            changed: false,
            prune_error: None,
            heal: None,
        }
    }
}

/// The entry point the controller runtime calls.
pub(crate) async fn reconcile(
    gs: Arc<GitSync>,
    ctx: Arc<Shared>,
) -> Result<Action, kube::runtime::finalizer::Error<Error>> {
    let namespace = gs.namespace().unwrap_or_default();
    let api: Api<GitSync> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, gs, |event| async {
        match event {
            FinalizerEvent::Apply(gs) => {
                let span = tracing::info_span!(
                    "reconcile",
                    gitsync = %format!("{}/{}", gs.namespace().unwrap_or_default(), gs.name_any())
                );
                Ok(tracing::Instrument::instrument(reconcile_apply(gs, &ctx), span).await)
            }
            FinalizerEvent::Cleanup(gs) => cleanup(gs, &ctx).await,
        }
    })
    .await
}

/// Requeue after a failure that is not the GitSync's own (the finalizer could not be written).
pub(crate) fn error_policy(
    _gs: Arc<GitSync>,
    error: &kube::runtime::finalizer::Error<Error>,
    _ctx: Arc<Shared>,
) -> Action {
    tracing::warn!(error = %error, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

fn interval_of(gs: &GitSync) -> Result<Duration, Error> {
    let interval = parse_duration(&gs.spec.interval)
        .map_err(|e| Error::Spec(format!("spec.interval: {e}")))?;
    if interval < Duration::from_secs(1) {
        return Err(Error::Spec("spec.interval: at least 1s".to_owned()));
    }
    Ok(interval)
}

fn timeout_of(gs: &GitSync, interval: Duration) -> Result<Duration, Error> {
    match &gs.spec.timeout {
        Some(t) => {
            let timeout =
                parse_duration(t).map_err(|e| Error::Spec(format!("spec.timeout: {e}")))?;
            if timeout < Duration::from_secs(1) {
                return Err(Error::Spec("spec.timeout: at least 1s".to_owned()));
            }
            Ok(timeout)
        }
        None => Ok(interval.clamp(Duration::from_secs(30), MAX_DEFAULT_TIMEOUT)),
    }
}

async fn reconcile_apply(gs: Arc<GitSync>, ctx: &Shared) -> Action {
    let started = Instant::now();
    let uid = gs.uid().unwrap_or_default();
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let key: SyncKey = (namespace.clone(), name.clone());

    if gs.spec.webhook.is_none() {
        ctx.webhooks.unregister(&namespace, &name);
    } else if ctx.webhooks.path_of(&namespace, &name).is_none() {
        // Until its Secret exists, every poll looks for it (quietly: the warning Event comes
        // from full reconciles only).
        register_webhook(&gs, ctx, false).await;
    }
    if gs.spec.suspend || !gs.spec.self_heal {
        ctx.healer.forget(&key);
    }
    if gs.spec.suspend {
        // Nothing is applied while suspended, Vault refreshes included.
        forget_vault(ctx, &key);
    }
    if gs.spec.suspend {
        tracing::info!(gitsync = %format!("{namespace}/{name}"), "suspended; not reconciling");
        return Action::await_change();
    }
    let (interval, timeout) = match interval_of(&gs).and_then(|i| Ok((i, timeout_of(&gs, i)?))) {
        Ok(pair) => pair,
        Err(e) => {
            let _ = finish::finish(ctx, &gs, Err(e), None, Vec::new(), started).await;
            return Action::await_change();
        }
    };

    let actor = match ctx
        .settings
        .actor(&namespace, gs.spec.service_account_name.as_deref())
        .map_err(Error::Spec)
    {
        Ok(actor) => actor,
        Err(e) => {
            let _ = finish::finish(ctx, &gs, Err(e), None, Vec::new(), started).await;
            return Action::await_change();
        }
    };

    let _slow_fetch_turn = match ctx.fetch_gate.enter(&key) {
        fetch::FetchTurn::Wait => {
            // Its server did not answer last time and another slow GitSync is fetching: wait
            // without holding a reconcile slot, so the others keep moving.
            tracing::debug!("the last fetch timed out; waiting for the slow-server slot");
            return Action::requeue(Duration::from_secs(2));
        }
        turn => turn,
    };
    let mut attempted = None;
    let mut written = Vec::new();
    let progress = Progress::default();
    let run = run(&gs, ctx, &actor, &progress, &mut attempted, &mut written);
    let mut timed_out = false;
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(timeout, run) => outcome,
        never = finish::report_progress(ctx, &key, gs.meta().generation, &progress) => match never {},
    };
    let mut result = match outcome {
        Ok(r) => r,
        Err(_) => {
            timed_out = true;
            Err(Error::Timeout {
                stage: progress.now().stage,
                seconds: timeout.as_secs(),
            })
        }
    };
    match &result {
        Err(Error::Source(e)) => ctx.fetch_gate.record(&key, e.is_slow_server()),
        // Timed out before the fetch had finished.
        Err(_) if timed_out && attempted.is_none() => ctx.fetch_gate.record(&key, true),
        _ if attempted.is_some() => ctx.fetch_gate.record(&key, false),
        _ => {}
    }
    let mut failed = result.as_ref().map_or(true, |a| a.prune_error.is_some());
    let mut terminal = result.as_ref().err().is_some_and(Error::is_terminal);
    let heal = result.as_mut().ok().and_then(|a| a.heal.take());
    let written_ids: Vec<String> = written.iter().map(|e| e.id.clone()).collect();
    let full = heal.is_some();
    let revision = result.as_ref().ok().map(|a| a.revision.clone());
    if !finish::finish(ctx, &gs, result, attempted, written, started).await {
        failed = true;
        terminal = false;
    }
    match (heal, revision) {
        (Some((sources, observed)), Some(revision)) if gs.spec.self_heal => {
            let spec = HealSpec {
                uid: uid.clone(),
                generation: gs.meta().generation,
                revision,
                force: gs.spec.force,
                allow_plaintext: gs.spec.allow_plaintext_secrets,
                default_namespace: default_namespace(&gs),
                actor: actor.clone(),
            };
            ctx.healer.record(&key, spec, sources, observed);
        }
        _ if !full => ctx.healer.end_failed(&key, &written_ids),
        _ => {}
    }

    let failures = {
        let mut map = ctx.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            let n = map.entry(uid).or_insert(0);
            *n = n.saturating_add(1);
            *n
        } else {
            map.remove(&uid);
            0
        }
    };
    if failed && !terminal {
        // Transient failures retry with exponential backoff: 2 s, 4 s, … up to the interval.
        let backoff = Duration::from_secs(2u64.saturating_pow(failures.min(16)));
        Action::requeue(backoff.min(interval))
    } else {
        Action::requeue(interval)
    }
}

/// The stages. `attempted` receives the fetched revision as soon as it is known.
async fn run(
    gs: &GitSync,
    ctx: &Shared,
    actor: &Actor,
    progress: &Progress,
    attempted: &mut Option<String>,
    written: &mut Vec<sealsync_core::InventoryEntry>,
) -> Result<Applied, Error> {
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let revision = gs.spec.revision()?;
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
        .check_secret_namespaces(&namespace)
        .map_err(Error::Spec)?;
    let credentials = credentials(gs, ctx).await?;
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
    let key: SyncKey = (namespace.clone(), name.clone());
    // A poll of an unchanged revision whose objects are watched (or need no healing) reads
    // nothing more than the remote's refs.
    let known_commit = gs
        .status
        .as_ref()
        .and_then(|s| s.last_applied_revision.as_deref())
        .filter(|applied| {
            if ctx.triggers.take_replan(&key) {
                tracing::info!(
                    reason = "a Vault refresh changed a Secret that workloads restart on",
                    "re-planning every object"
                );
                return false;
            }
            if !unchanged_since_last_apply(gs, applied) {
                return false;
            }
            if !gs.spec.self_heal {
                return true;
            }
            match ctx.healer.armed(&key, gs.meta().generation, applied) {
                Ok(()) => true,
                Err(why) => {
                    tracing::info!(reason = why, "re-planning every object");
                    false
                }
            }
        })
        .and_then(|applied| applied.rsplit_once("sha1:").map(|(_, c)| c.to_owned()));

    // 1. Fetch.
    let snapshot = fetch::fetch(FetchRequest {
        url: gs.spec.url.clone(),
        revision,
        path: path.clone(),
        credentials,
        repo_dir: ctx
            .settings
            .data_dir
            .join(gs.uid().unwrap_or_else(|| format!("{namespace}_{name}"))),
        limits: SourceLimits::default(),
        timeout: Duration::from_secs(120),
        known_commit: known_commit.clone(),
    })
    .await?;
    *attempted = Some(snapshot.revision.clone());
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
        return Ok(Applied::unchanged(gs, snapshot.revision.clone(), summary));
    }

    // A full reconcile: self-heal stands aside until it ends, and the webhook's Secret is
    // read again (a rotated token takes effect here).
    ctx.healer.begin(&key);
    // A Vault refresh of this GitSync waits until the new revision is applied (or failed).
    let _refresh_guard = ctx.refresher.lock(&key).await;
    if gs.spec.webhook.is_some() {
        register_webhook(gs, ctx, true).await;
    }

    // 2. Render.
    progress.enter(SyncStage::Render, snapshot.files.len());
    let manifests = render::render(&snapshot.files, &path, &RenderLimits::default())?;
    let objects: Vec<SyncObject> = manifests
        .into_iter()
        .map(|m| SyncObject::rendered(m, gs.spec.self_heal))
        .collect();
    let revision_crds: Vec<Json> = objects
        .iter()
        .filter(|o| o.kind() == "CustomResourceDefinition")
        .map(|o| o.object.clone())
        .collect();

    // 3 to 7. Decrypt, resolve Vault references, restart checksums, plan, apply.
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
    let pass = Pass::Revision {
        login: Login::Spec {
            vault: gs.spec.vault.as_ref(),
            service_account: gs.spec.service_account_name.as_deref(),
        },
        restart_all: gs.spec.restart_on_secret_change,
        keep_manifests: gs.spec.self_heal,
    };
    let mut resolver = Resolver::default();
    let synced = match ctx
        .engine
        .run(&target, pass, objects, &mut resolver, &revision_crds)
        .await
    {
        Ok(synced) => synced,
        Err(failure) => {
            *written = failure.written;
            return Err(failure.error);
        }
    };
    drop(revision_crds);
    let outcome = &synced.outcome;
    ctx.metrics.count_objects("created", outcome.created);
    ctx.metrics
        .count_objects("configured", outcome.configured + outcome.recreated);
    ctx.metrics.count_objects("unchanged", outcome.unchanged);

    // 8. Prune what the last applied revision had and this one has not.
    let old_inventory = gs
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .unwrap_or_default();
    let stale = inventory::stale(&old_inventory, &synced.inventory);
    let mut final_inventory = synced.inventory.clone();
    let mut pruned = 0;
    let mut prune_error = None;
    if gs.spec.prune && !stale.is_empty() {
        progress.enter(SyncStage::Prune, stale.len());
        let scope = prune::PruneScope {
            owner_namespace: &namespace,
            owner_name: &name,
            controller_namespace: &ctx.settings.namespace,
        };
        let result = prune::prune(&client, &mut resolver, stale, scope).await;
        report_orphaned(ctx, gs, &result.orphaned).await;
        pruned = result.deleted.len();
        ctx.metrics.count_objects("pruned", pruned);
        if result.error.is_some() {
            // Objects whose deletion failed stay listed, so the next reconcile retries them.
            final_inventory.entries.extend(result.retained);
            final_inventory.entries.sort();
            final_inventory.entries.dedup_by(|a, b| a.id == b.id);
        }
        prune_error = result.error;
    }
    let changed = outcome.created + outcome.configured + outcome.recreated + pruned > 0;
    let summary = format!(
        "{} created, {} configured, {} unchanged, {} pruned{}",
        outcome.created,
        outcome.configured + outcome.recreated,
        outcome.unchanged,
        pruned,
        if outcome.skipped > 0 {
            format!(", {} skipped (reconcile disabled)", outcome.skipped)
        } else {
            String::new()
        }
    );
    let Synced {
        objects,
        usage,
        resolved,
        restart_secrets,
        outcome,
        ..
    } = synced;
    let heal = if gs.spec.self_heal {
        let tracked = objects.into_iter().filter_map(tracked_source).collect();
        Some((tracked, outcome.observed))
    } else {
        Some((Vec::new(), Vec::new()))
    };
    match resolved.refresh_interval {
        Some(interval) => ctx.refresher.register(
            &key,
            crate::refresh::Entry::new(
                resolved.templates,
                interval,
                snapshot.revision.clone(),
                default_namespace.clone(),
                gs.spec.force,
                restart_secrets,
                actor.clone(),
            ),
        ),
        None => forget_vault(ctx, &key),
    }
    Ok(Applied {
        revision: snapshot.revision.clone(),
        inventory: final_inventory,
        usage,
        summary,
        changed,
        prune_error,
        heal,
    })
}

/// What self-heal watches of an applied object: its manifest and resource.
fn tracked_source(mut object: SyncObject) -> Option<TrackedSource> {
    let scope = object.scope.take()?;
    let what = object.what.take()?;
    Some(TrackedSource {
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

/// Forgets `key`'s Vault session and refreshes.
fn forget_vault(ctx: &Shared, key: &SyncKey) {
    ctx.engine.vault.forget(key);
    ctx.refresher.forget(key);
}

/// The namespace of namespaced objects whose manifests name none.
fn default_namespace(gs: &GitSync) -> String {
    gs.spec
        .target_namespace
        .clone()
        .unwrap_or_else(|| gs.namespace().unwrap_or_default())
}

/// The revision, the spec and any `requestedAt` were all handled by the last successful apply.
fn unchanged_since_last_apply(gs: &GitSync, revision: &str) -> bool {
    let Some(status) = &gs.status else {
        return false;
    };
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    // An absent annotation asks for nothing (it may have been dropped by a re-apply).
    let requested_handled = match gs.annotations().get(REQUESTED_AT_ANNOTATION) {
        None => true,
        Some(requested) => status.last_handled_reconcile_at.as_ref() == Some(requested),
    };
    ready
        && status.last_applied_revision.as_deref() == Some(revision)
        && status.observed_generation == gs.meta().generation
        && requested_handled
}

/// Reads `spec.secretRef` from the GitSync's namespace.
async fn credentials(gs: &GitSync, ctx: &Shared) -> Result<Option<Credentials>, Error> {
    let Some(secret_ref) = &gs.spec.secret_ref else {
        return Ok(None);
    };
    let namespace = gs.namespace().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await
        .map_err(|source| Error::Kube {
            action: "reading the Secret named by spec.secretRef",
            source,
        })?
        .ok_or_else(|| {
            Error::Credentials(format!(
                "spec.secretRef: Secret {namespace}/{} not found",
                secret_ref.name
            ))
        })?;
    let mut data = secret.data.unwrap_or_default();
    let mut take = |key: &str| -> Option<Zeroizing<String>> {
        let mut bytes = data.remove(key)?;
        let text = String::from_utf8(std::mem::take(&mut bytes.0)).ok()?;
        Some(Zeroizing::new(
            text.trim_end_matches(['\n', '\r']).to_owned(),
        ))
    };
    let bearer = take("bearerToken");
    let username = take("username");
    let password = take("password");
    for (_, mut v) in data {
        zeroize::Zeroize::zeroize(&mut v.0);
    }
    match (bearer, username, password) {
        (Some(token), _, _) => Ok(Some(Credentials::Bearer(token))),
        (None, Some(username), Some(password)) => Ok(Some(Credentials::Basic {
            username: username.as_str().to_owned(),
            password,
        })),
        _ => Err(Error::Credentials(format!(
            "spec.secretRef: Secret {namespace}/{} has neither bearerToken nor username and password",
            secret_ref.name
        ))),
    }
}

/// Registers the GitSync's push webhook with the token from its Secret, or forgets it.
async fn register_webhook(gs: &GitSync, ctx: &Shared, report: bool) {
    crate::http::webhook::register_from_spec(&ctx.client, &ctx.webhooks, &ctx.recorder, gs, report)
        .await;
}

/// A warning Event for the objects prune left in place, each with the reason.
async fn report_orphaned(ctx: &Shared, gs: &GitSync, orphaned: &[String]) {
    if orphaned.is_empty() {
        return;
    }
    for what in orphaned {
        tracing::warn!(object = %what, "left in place by prune");
    }
    status::event(
        &ctx.recorder,
        gs,
        true,
        "PruneSkipped",
        format!(
            "{} object(s) left in place and dropped from the inventory: {}",
            orphaned.len(),
            orphaned.join("; ")
        ),
    )
    .await;
}

/// The bare repository of a deleted GitSync goes with it.
fn remove_repository(gs: &GitSync, ctx: &Shared) {
    if let Some(uid) = gs.uid() {
        let _ = std::fs::remove_dir_all(ctx.settings.data_dir.join(uid));
    }
}

/// Deletes every object of a deleted GitSync's inventory when `spec.prune` is on.
async fn cleanup(gs: Arc<GitSync>, ctx: &Shared) -> Result<Action, Error> {
    // Deleting the inventory below must not look like drift.
    ctx.healer
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    forget_vault(ctx, &(gs.namespace().unwrap_or_default(), gs.name_any()));
    ctx.webhooks
        .unregister(&gs.namespace().unwrap_or_default(), &gs.name_any());
    ctx.fetch_gate
        .forget(&(gs.namespace().unwrap_or_default(), gs.name_any()));
    if !gs.spec.prune {
        remove_repository(&gs, ctx);
        return Ok(Action::await_change());
    }
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let entries = gs
        .status
        .as_ref()
        .and_then(|s| s.inventory.clone())
        .unwrap_or_default()
        .entries;
    let client = match ctx
        .settings
        .actor(&namespace, gs.spec.service_account_name.as_deref())
        .and_then(|actor| {
            ctx.engine
                .clients
                .client_as(&actor)
                .map_err(|e| e.to_string())
        }) {
        Ok(client) => client,
        Err(e) => {
            // Nothing was ever applied as an invalid service account; pruning as the
            // controller instead could delete what the GitSync's account may not.
            tracing::warn!(error = %e, "not pruning the deleted GitSync's objects");
            remove_repository(&gs, ctx);
            return Ok(Action::await_change());
        }
    };
    let mut resolver = Resolver::default();
    let scope = prune::PruneScope {
        owner_namespace: &namespace,
        owner_name: &name,
        controller_namespace: &ctx.settings.namespace,
    };
    let result = prune::prune(&client, &mut resolver, entries, scope).await;
    report_orphaned(ctx, &gs, &result.orphaned).await;
    match result.error {
        Some(e) => Err(Error::Prune(e)),
        None => {
            remove_repository(&gs, ctx);
            Ok(Action::await_change())
        }
    }
}
