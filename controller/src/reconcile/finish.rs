//! The `status` stage of a reconcile: the progress of a long sync while it runs, then the
//! status, the Event and the metrics of the finished reconcile, all through the one status
//! writer.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::{Resource, ResourceExt};
use sealsync_core::Chain;
use sealsync_core::{
    GitSync, GitSyncStatus, Inventory, InventoryEntry, InventoryStatus, UnhealthyObject,
    REQUESTED_AT_ANNOTATION,
};

use super::run::Attempt;
use super::{Applied, Shared};
use crate::health::Verdict;
use crate::status::{self, InventoryLoadError};
use crate::support::metrics::ReasonLabels;
use crate::support::SyncKey;
use crate::sync::error::Error;
use crate::sync::progress::{Progress, Step};
use crate::sync::verify::{self, Verified};

/// How long a sync runs before its progress is published, and how often it is at most
/// published again: a short sync writes no progress at all.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Publishes `Reconciling=True` (reason `Progressing`) with the stage and the object count
/// while a sync runs. Never returns: the reconcile drops it when the sync ends.
pub(super) async fn report_progress(
    ctx: &Shared,
    key: &SyncKey,
    generation: Option<i64>,
    progress: &Progress,
) -> Infallible {
    let mut shown: Option<Step> = None;
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let step = progress.now();
        if shown.as_ref() == Some(&step) {
            continue;
        }
        let message = step.describe();
        let written = ctx
            .status
            .update(key, None, |st| {
                status::set_condition(
                    &mut st.conditions,
                    "Reconciling",
                    true,
                    "Progressing",
                    &message,
                    generation,
                );
            })
            .await;
        match written {
            Ok(_) => shown = Some(step),
            Err(e) => tracing::debug!(error = %Chain(&e), "could not publish the sync's progress"),
        }
    }
}

/// What a finished reconcile changes in the status.
struct Change<'a> {
    generation: Option<i64>,
    requested: Option<&'a String>,
    webhook_path: Option<String>,
    attempted: Option<String>,
    /// Whether the spec asks for signatures, and the revision they were accepted for.
    verify: (bool, Option<Verified>),
    result: &'a Result<Applied, Error>,
    /// The inventory to record, already stored; `None` keeps the one recorded.
    inventory: Option<InventoryStatus>,
    /// The attempted revision did not become healthy and will be rolled back from.
    quarantine: bool,
}

impl Change<'_> {
    /// Applies the change to `st`, the status as the API server holds it.
    fn apply_to(&self, st: &mut GitSyncStatus) {
        st.observed_generation = self.generation;
        if let Some(requested) = self.requested {
            st.last_handled_reconcile_at = Some(requested.clone());
        }
        st.webhook_path.clone_from(&self.webhook_path);
        if self.attempted.is_some() {
            st.last_attempted_revision.clone_from(&self.attempted);
        }
        match self.result {
            Ok(applied) => {
                let unhealthy = applied.unhealthy();
                match (&applied.prune_error, unhealthy) {
                    (None, None) if applied.rolled_back_from.is_some() => status::set_failed(
                        &mut st.conditions,
                        "RolledBack",
                        &rolled_back_message(applied),
                        false,
                        self.generation,
                    ),
                    (None, Some(_)) => status::set_failed(
                        &mut st.conditions,
                        "HealthCheckFailed",
                        &health_failed_message(applied),
                        false,
                        self.generation,
                    ),
                    (None, None) => {
                        let message = match &applied.health {
                            Some(_) => format!("Applied revision: {}; healthy", applied.revision),
                            None => format!("Applied revision: {}", applied.revision),
                        };
                        status::set_condition(
                            &mut st.conditions,
                            "Ready",
                            true,
                            "Succeeded",
                            &message,
                            self.generation,
                        );
                        status::remove_condition(&mut st.conditions, "Reconciling");
                    }
                    (Some(error), _) => status::set_failed(
                        &mut st.conditions,
                        "PruneFailed",
                        &prune_failed_message(applied, error),
                        false,
                        self.generation,
                    ),
                }
                status::remove_condition(&mut st.conditions, "Stalled");
                st.health = unhealthy.map(<[_]>::to_vec).unwrap_or_default();
                if unhealthy.is_none() {
                    st.last_healthy_revision = Some(applied.revision.clone());
                    if applied.rolled_back_from.is_none() {
                        st.failed_revision = None;
                    }
                }
                st.last_applied_revision = Some(applied.revision.clone());
                st.sealed_secrets.clone_from(&applied.usage);
                st.vault_secrets.clone_from(&applied.vault_secrets);
            }
            Err(error) => {
                status::set_failed(
                    &mut st.conditions,
                    error.reason(),
                    &Chain(&error).to_string(),
                    error.is_terminal(),
                    self.generation,
                );
                if let Error::Unhealthy { objects, .. } | Error::HookFailed { objects, .. } = error
                {
                    st.health.clone_from(objects);
                }
            }
        }
        if let Some(inventory) = &self.inventory {
            st.inventory = Some(inventory.clone());
        }
        if self.quarantine {
            st.failed_revision.clone_from(&self.attempted);
        }
        self.apply_verification(st);
    }

    /// `SourceVerified` and the signers, as `spec.verify` found them.
    fn apply_verification(&self, st: &mut GitSyncStatus) {
        let (configured, verified) = &self.verify;
        if !configured {
            status::remove_condition(&mut st.conditions, "SourceVerified");
            st.verified_revision = None;
            st.verified_signers.clear();
            st.applied_signers.clear();
            return;
        }
        match (verified, self.result) {
            // A failed verification wins over one that passed before it in the same reconcile
            // (the head's, before a rollback target's).
            (_, Err(error)) if error.reason() == "VerificationFailed" => {
                status::set_condition(
                    &mut st.conditions,
                    "SourceVerified",
                    false,
                    "VerificationFailed",
                    &Chain(&error).to_string(),
                    self.generation,
                );
            }
            (Some(verified), result) => {
                status::set_condition(
                    &mut st.conditions,
                    "SourceVerified",
                    true,
                    "Succeeded",
                    &verify::describe(&verified.signers),
                    self.generation,
                );
                st.verified_revision = Some(verified.revision.clone());
                st.verified_signers.clone_from(&verified.signers);
                if let Ok(applied) = result {
                    if applied.revision == verified.revision {
                        st.applied_signers.clone_from(&verified.signers);
                    }
                }
            }
            // Failed before the revision was verified: as it was.
            (None, _) => {}
        }
    }
}

/// The inventory a finished reconcile records, stored where it belongs: an applied revision's
/// own, or after a failure the last one with the objects the attempt left written (so that a
/// later revision without them prunes them; nothing leaves it). `None` keeps the recorded one.
async fn record_inventory(
    ctx: &Shared,
    gs: &GitSync,
    result: &Result<Applied, Error>,
    written: Vec<InventoryEntry>,
) -> Result<Option<InventoryStatus>, String> {
    let inventory = match result {
        Ok(applied) => match &applied.inventory {
            Some(inventory) => Arc::clone(inventory),
            None => return Ok(None),
        },
        Err(_) if written.is_empty() => return Ok(None),
        Err(_) => {
            let last = match ctx.inventories.load(gs).await {
                Ok(last) => last,
                Err(e @ InventoryLoadError::Api { .. }) => return Err(Chain(&e).to_string()),
                // Reported by the reconcile that found it lost.
                Err(InventoryLoadError::Lost(_)) => Default::default(),
            };
            let mut entries = last.entries.clone();
            entries.extend(written);
            entries.sort();
            entries.dedup_by(|a, b| a.id == b.id);
            Arc::new(Inventory { entries })
        }
    };
    match ctx.inventories.store(gs, inventory.clone()).await {
        Ok(stored) => Ok(Some(stored)),
        Err(e) => {
            // Prune must know every object, so the inventory goes into the status after all:
            // slower to write, and bounded by etcd's object size, but never lost.
            let message = format!(
                "{}; the inventory is kept in the status instead: grant the controller get, create, delete and deletecollection on configmaps",
                Chain(&KeptInStatus(e))
            );
            tracing::warn!(error = %message, "inventory ConfigMaps not written");
            status::event(
                &ctx.recorder,
                gs,
                true,
                "InventoryConfigMapsFailed",
                message,
            )
            .await;
            Ok(Some(InventoryStatus::listed(&inventory)))
        }
    }
}

/// Writing the ConfigMaps of a large inventory failed.
#[derive(Debug, thiserror::Error)]
#[error("writing the inventory ConfigMaps")]
struct KeptInStatus(#[source] kube::Error);

/// `Applied revision R, but the health check failed: Job db/migrate is Failed (the Job
/// failed); …`.
fn health_failed_message(applied: &Applied) -> String {
    let what = match &applied.health {
        Some(Verdict::TimedOut(_)) => "timed out waiting for health",
        _ => "failed",
    };
    format!(
        "Applied revision {}, but the health check {what}: {}",
        applied.revision,
        UnhealthyObject::summarize(applied.unhealthy().unwrap_or_default())
    )
}

/// Whether a finished reconcile found its revision not healthy.
fn unhealthy(result: &Result<Applied, Error>) -> bool {
    match result {
        Ok(applied) => applied.unhealthy().is_some() && applied.rolled_back_from.is_none(),
        Err(error) => matches!(error, Error::Unhealthy { .. }),
    }
}

fn rolled_back_message(applied: &Applied) -> String {
    format!(
        "{} did not become healthy (spec.onHealthFailure: rollback); rolled back to {}, which is applied{}; push a fix, or run `sealsync sync` to try it again",
        applied.rolled_back_from.as_deref().unwrap_or_default(),
        applied.revision,
        if applied.health.is_some() { " and healthy" } else { "" }
    )
}

fn prune_failed_message(applied: &Applied, error: &str) -> String {
    format!(
        "Applied revision {}, but prune failed: {error}; the objects stay in the inventory and are retried",
        applied.revision
    )
}

/// Writes the status, the Event and the metrics of a finished reconcile. Returns whether the
/// status was written (without it the inventory is lost, so the caller retries).
pub(super) async fn finish(
    ctx: &Shared,
    gs: &GitSync,
    result: Result<Applied, Error>,
    attempt: Attempt,
    started: Instant,
    progress: Option<&Progress>,
) -> bool {
    let Attempt {
        revision: attempted,
        verified,
        written,
        ..
    } = attempt;
    let namespace = gs.namespace().unwrap_or_default();
    let name = gs.name_any();
    let key: SyncKey = (namespace.clone(), name.clone());
    let reason = match &result {
        Ok(a) if a.prune_error.is_some() => "PruneFailed",
        Ok(a) if a.unhealthy().is_some() => "HealthCheckFailed",
        Ok(a) if a.rolled_back_from.is_some() => "RolledBack",
        Ok(_) => "Succeeded",
        Err(e) => e.reason(),
    };
    let label = result.as_ref().err().map_or(reason, Error::metric_label);
    ctx.metrics
        .reconcile_duration
        .get_or_create(&ReasonLabels { reason: label })
        .observe(started.elapsed().as_secs_f64());
    let inventory = match record_inventory(ctx, gs, &result, written).await {
        Ok(inventory) => inventory,
        Err(e) => {
            // Without it the status would name an inventory that misses objects to prune.
            tracing::warn!(error = %e, "could not write the inventory; the status is not written");
            return false;
        }
    };
    let recorded = gs.status.as_ref().and_then(|s| s.inventory.clone());
    let quarantine = unhealthy(&result) && super::rollback::rolls_back(gs, attempted.as_deref());
    let change = Change {
        generation: gs.meta().generation,
        requested: gs.annotations().get(REQUESTED_AT_ANNOTATION),
        webhook_path: ctx.webhooks.path_of(&namespace, &name),
        attempted: attempted.clone(),
        verify: (gs.spec.verify.is_some(), verified),
        result: &result,
        inventory: inventory.clone(),
        quarantine,
    };
    // The Events go first: whoever sees the new status finds them.
    match &result {
        Ok(applied) => {
            if let Some(error) = &applied.prune_error {
                let message = prune_failed_message(applied, error);
                status::event(&ctx.recorder, gs, true, "PruneFailed", message).await;
            }
            if let Some(failed) = &applied.rolled_back_from {
                let before = gs
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
                    .map(|c| c.reason.as_str());
                if before != Some("RolledBack") {
                    tracing::warn!(
                        gitsync = %format!("{namespace}/{name}"),
                        failed = %failed,
                        applied = %applied.revision,
                        "rolled back to the last healthy revision"
                    );
                    status::event(
                        &ctx.recorder,
                        gs,
                        true,
                        "RolledBack",
                        rolled_back_message(applied),
                    )
                    .await;
                }
            }
            if applied.unhealthy().is_some() {
                let message = health_failed_message(applied);
                tracing::warn!(
                    gitsync = %format!("{namespace}/{name}"),
                    error = %message,
                    "health check failed"
                );
                ctx.notify.emit(
                    gs,
                    sealsync_core::NotifyEvent::Unhealthy,
                    "HealthCheckFailed",
                    &message,
                    Some(&applied.revision),
                );
                status::event(&ctx.recorder, gs, true, "HealthCheckFailed", message).await;
            }
            let new_revision = gs
                .status
                .as_ref()
                .and_then(|s| s.last_applied_revision.as_deref())
                != Some(applied.revision.as_str());
            if applied.changed || new_revision {
                // An unhealthy revision was announced as such above: not as applied.
                if applied.unhealthy().is_none() {
                    ctx.notify.emit(
                        gs,
                        sealsync_core::NotifyEvent::Applied,
                        "ReconciliationSucceeded",
                        &format!("Applied revision {}: {}", applied.revision, applied.summary),
                        Some(&applied.revision),
                    );
                }
                if matches!(applied.health, Some(crate::health::Verdict::Healthy)) {
                    ctx.notify.emit(
                        gs,
                        sealsync_core::NotifyEvent::Healthy,
                        "Healthy",
                        &format!("every object of revision {} is healthy", applied.revision),
                        Some(&applied.revision),
                    );
                }
                status::event(
                    &ctx.recorder,
                    gs,
                    false,
                    "ReconciliationSucceeded",
                    format!("{}: {}", applied.revision, applied.summary),
                )
                .await;
            }
        }
        Err(error) if is_still_waiting(gs, error) => {
            tracing::debug!(error = %Chain(&error), "still waiting for a dependency");
        }
        Err(error) => {
            let message = Chain(&error).to_string();
            tracing::warn!(
                gitsync = %format!("{namespace}/{name}"),
                reason,
                error = %message,
                "reconcile failed"
            );
            ctx.notify.emit(
                gs,
                crate::notify::failure_event(reason),
                reason,
                &message,
                attempted.as_deref(),
            );
            status::event(&ctx.recorder, gs, true, reason, message).await;
        }
    }
    let status_started = Instant::now();
    let stored = ctx
        .status
        .update(&key, Some(gs), |st| change.apply_to(st))
        .await;
    // The ConfigMaps the status no longer names. When the write failed, the new ones stay: it
    // may have landed all the same, and the next attempt at the revision finds them (they are
    // named after their content); any left over go with the GitSync.
    if let (Some(inventory), Ok(_)) = (&inventory, &stored) {
        ctx.inventories
            .collect(gs, recorded.as_ref(), Some(inventory))
            .await;
    }
    if let (Ok(applied), Ok(_)) = (&result, &stored) {
        if let Some(pushed) = ctx.webhooks.take_push(&namespace, &name) {
            ctx.metrics
                .push_to_applied
                .observe(pushed.elapsed().as_secs_f64());
        }
        // Once the status says so: the line marks when a user sees the revision applied.
        tracing::info!(
            gitsync = %format!("{namespace}/{name}"),
            revision = %applied.revision,
            result = %applied.summary,
            seconds = started.elapsed().as_secs_f64(),
            stages = %progress.map(Progress::spent).unwrap_or_default(),
            status_ms = status_started.elapsed().as_millis(),
            "reconciled"
        );
    }
    match stored {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "could not write the status");
            false
        }
    }
}

/// A GitSync that waited for the same dependency last time: no new Event or warning each time
/// it looks again.
fn is_still_waiting(gs: &GitSync, error: &Error) -> bool {
    let Error::DependencyNotReady(message) = error else {
        return false;
    };
    gs.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.reason == "DependencyNotReady" && &c.message == message)
}
