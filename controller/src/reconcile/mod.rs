//! One reconcile of one GitSync: the stages in order, atomic per revision.
//!
//! fetch → render → decrypt → resolve Vault references → restart checksums → prepare (owner
//! labels, namespaces) → apply (dry-run gated, as the GitSync's service account) → prune →
//! status. A failure at any stage leaves the cluster on the last good revision:
//! `lastAppliedRevision` and the inventory do not move, nothing is pruned, and the status
//! names the stage, the file and the document.

mod cleanup;
mod context;
mod credentials;
mod dependencies;
mod finish;
mod health;
mod incremental;
mod rollback;
mod run;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as FinalizerEvent};
use kube::{Resource, ResourceExt};
use sealsync_core::Chain;
use sealsync_core::{parse_duration, GitSync, Inventory, FINALIZER, REQUESTED_AT_ANNOTATION};

use crate::heal::{HealSpec, TrackedSource};
use crate::status::InventoryLoadError;
use crate::support::retry::Backoff;
use crate::support::{Fingerprint, SyncKey};
use crate::sync::error::Error;
use crate::sync::fetch::{self};
use crate::sync::progress::Progress;
use cleanup::report_orphaned;
pub(crate) use context::Shared;
use credentials::credentials;

/// Transient failures retry with backoff: 2 s, 4 s, … (jittered), up to the interval.
const RETRY: Backoff =
    Backoff::new(Duration::from_secs(2), 2.0, Duration::from_secs(600)).jittered();

/// How long before the reconcile's timeout the waits for health give up, leaving time for
/// what follows a failed wait (sync-failed hooks, delete policies, the failure's record).
fn health_margin(timeout: Duration) -> Duration {
    (timeout / 10)
        .clamp(Duration::from_millis(500), Duration::from_secs(10))
        .min(timeout / 2)
}

/// The longest reconcile timeout when `spec.timeout` is not set.
const MAX_DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// What a successful reconcile did, for the status message and the event.
#[derive(Debug)]
struct Applied {
    revision: String,
    /// The revision's inventory; `None` when it is the one the status records already.
    inventory: Option<Arc<Inventory>>,
    usage: Vec<sealsync_core::SealedSecretUsage>,
    /// The Secrets whose values came from Vault, as `namespace/name`.
    vault_secrets: Vec<String>,
    summary: String,
    changed: bool,
    /// The revision was applied but some stale objects could not be deleted.
    prune_error: Option<String>,
    /// What self-heal watches from now on: each object's manifest and state after the apply.
    heal: Option<HealHandover>,
    /// The revision's manifest files, for the next revision's fetch to skip those unchanged.
    files: Option<incremental::FileIndex>,
    /// Every object was planned, not only those an incremental revision changed.
    planned_fully: bool,
    /// How the wait for the objects' health ended; `None` without a wait.
    health: Option<crate::health::Verdict>,
    /// The head revision that failed its health check, when this applied the last healthy
    /// one instead (`onHealthFailure: rollback`).
    rolled_back_from: Option<String>,
}

/// Each applied object's manifest, and its state after the apply (by inventory id).
type HealHandover = (Vec<Arc<TrackedSource>>, Vec<(String, Fingerprint)>);

impl Applied {
    /// The last applied revision, left as it is.
    fn unchanged(gs: &GitSync, revision: String, summary: &str) -> Self {
        let status = gs.status.clone().unwrap_or_default();
        Self {
            revision,
            inventory: None,
            usage: status.sealed_secrets,
            vault_secrets: status.vault_secrets,
            summary: summary.to_owned(),
            changed: false,
            prune_error: None,
            heal: None,
            files: None,
            planned_fully: false,
            health: None,
            rolled_back_from: None,
        }
    }
}

impl Applied {
    /// The objects that kept the revision from being healthy, when it waited and they did.
    fn unhealthy(&self) -> Option<&[sealsync_core::UnhealthyObject]> {
        match &self.health {
            Some(crate::health::Verdict::Failed(list) | crate::health::Verdict::TimedOut(list)) => {
                Some(list)
            }
            _ => None,
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
            FinalizerEvent::Cleanup(gs) => cleanup::cleanup(gs, &ctx).await,
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
    tracing::warn!(error = %Chain(&error), "reconcile failed");
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
    let gs = match ctx.status.current(&key, gs).await {
        Ok(gs) => gs,
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "could not read the GitSync again; retrying");
            return Action::requeue(Duration::from_secs(5));
        }
    };

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
        // Nothing is applied while suspended, Vault refreshes included; nothing is waited for.
        forget_vault(ctx, &key);
        ctx.engine.health.forget(&key);
    }
    if gs.spec.suspend {
        ctx.metrics
            .reconciles_skipped
            .get_or_create(&crate::support::metrics::ReasonLabels {
                reason: "suspended",
            })
            .inc();
        tracing::info!(gitsync = %format!("{namespace}/{name}"), "suspended; not reconciling");
        return Action::await_change();
    }
    let (interval, timeout) = match interval_of(&gs).and_then(|i| Ok((i, timeout_of(&gs, i)?))) {
        Ok(pair) => pair,
        Err(e) => {
            let _ = finish::finish(ctx, &gs, Err(e), run::Attempt::default(), started, None).await;
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
            let _ = finish::finish(ctx, &gs, Err(e), run::Attempt::default(), started, None).await;
            return Action::await_change();
        }
    };

    // Nothing is fetched until every dependency is Ready.
    if let Err(e) = dependencies::check(&gs, ctx, &key).await {
        let terminal = e.is_terminal();
        let _ = finish::finish(ctx, &gs, Err(e), run::Attempt::default(), started, None).await;
        return Action::requeue(if terminal {
            interval
        } else {
            dependencies::RECHECK
        });
    }

    let _slow_fetch_turn = match ctx.fetch_gate.enter(&key) {
        fetch::FetchTurn::Wait => {
            // Its server did not answer last time and another slow GitSync is fetching: wait
            // without holding a reconcile slot, so the others keep moving.
            tracing::debug!("the last fetch timed out; waiting for the slow-server slot");
            return Action::requeue(Duration::from_secs(2));
        }
        turn => turn,
    };
    let mut attempt = run::Attempt::default();
    let progress = Progress::default();
    let run = run::run(
        &gs,
        ctx,
        &actor,
        // The wait for health ends just before the reconcile's time does, so that it reports
        // which objects were not healthy instead of a bare timeout.
        (
            &progress,
            tokio::time::Instant::from_std(started)
                + timeout.saturating_sub(health_margin(timeout)),
        ),
        &mut attempt,
    );
    let mut timed_out = false;
    let outcome = tokio::select! {
        outcome = tokio::time::timeout(timeout, run) => outcome,
        never = finish::report_progress(ctx, &key, gs.meta().generation, &progress) => match never {},
    };
    let result = match outcome {
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
        Err(_) if timed_out && attempt.revision.is_none() => ctx.fetch_gate.record(&key, true),
        _ if attempt.revision.is_some() => ctx.fetch_gate.record(&key, false),
        _ => {}
    }
    let secret_values = std::mem::take(&mut attempt.secret_values);
    let mut result = result.map_err(|e| e.masking(&secret_values));
    if let Ok(Applied {
        health:
            Some(crate::health::Verdict::Failed(objects) | crate::health::Verdict::TimedOut(objects)),
        ..
    }) = &mut result
    {
        crate::sync::error::mask_objects(objects, &secret_values);
    }
    drop(secret_values);
    let mut failed = result
        .as_ref()
        .map_or(true, |a| a.prune_error.is_some() || a.unhealthy().is_some());
    let mut terminal = result.as_ref().err().is_some_and(Error::is_terminal);
    let heal = result.as_mut().ok().and_then(|a| a.heal.take());
    let files = result.as_mut().ok().and_then(|a| a.files.take());
    let planned_fully = result.as_ref().is_ok_and(|a| a.planned_fully);
    let written_ids: Vec<String> = attempt.written.iter().map(|e| e.id.clone()).collect();
    let full = heal.is_some();
    let revision = result.as_ref().ok().map(|a| a.revision.clone());
    let revision_applied = revision.clone();
    if !finish::finish(ctx, &gs, result, attempt, started, Some(&progress)).await {
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
            ctx.healer
                .record(&key, spec, (sources, observed), planned_fully);
            match files {
                Some(files) => ctx.files.record(&key, files),
                None => ctx.files.forget(&key),
            }
        }
        // The file index stays: an unchanged poll keeps it valid, and after a failure the
        // next revision plans every object whatever it says.
        _ if !full => ctx.healer.end_failed(&key, &written_ids),
        _ => {}
    }

    let was_ready_at = gs.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
            .then_some(s.last_applied_revision.as_deref())
            .flatten()
    });
    if !failed && was_ready_at != revision_applied.as_deref() {
        // Ready at a new revision: those waiting for this GitSync may go on now.
        for waiting in ctx.dependents.waiting_for(&key) {
            ctx.triggers.reconcile(&waiting);
        }
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
        Action::requeue(RETRY.delay(failures).min(interval))
    } else {
        Action::requeue(interval)
    }
}

/// Forgets `key`'s Vault session and refreshes.
fn forget_vault(ctx: &Shared, key: &SyncKey) {
    ctx.engine.vault.forget(key);
    ctx.refresher.forget(key);
}

/// The inventory of the last applied revision, what prune goes by. One that is lost (its
/// ConfigMaps deleted or changed by someone) is reported with `if_lost`, what that means here,
/// and taken as empty: nothing is deleted on the word of a ConfigMap.
async fn applied_inventory(
    gs: &GitSync,
    ctx: &Shared,
    if_lost: &str,
) -> Result<Arc<Inventory>, Error> {
    match ctx.inventories.load(gs).await {
        Ok(inventory) => Ok(inventory),
        Err(InventoryLoadError::Api { source, .. }) => Err(Error::Kube {
            action: "reading the inventory ConfigMaps",
            source,
        }),
        Err(lost @ InventoryLoadError::Lost(_)) => {
            let message = format!("{lost}; {if_lost}");
            tracing::warn!(error = %message, "inventory lost");
            crate::status::event(&ctx.recorder, gs, true, "InventoryLost", message).await;
            Ok(Arc::default())
        }
    }
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

/// Registers the GitSync's push webhook with the token from its Secret, or forgets it.
async fn register_webhook(gs: &GitSync, ctx: &Shared, report: bool) {
    crate::http::webhook::register_from_spec(&ctx.client, &ctx.webhooks, &ctx.recorder, gs, report)
        .await;
}
