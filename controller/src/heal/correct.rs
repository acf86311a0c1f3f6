//! Correcting one drifted object: its manifest opened and prepared again, then applied alone.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Resource;
use sealsync_core::render::Manifest;
use sealsync_core::Chain;
use sealsync_core::GitSync;

use super::{Job, ObjectKey, Queue, Seen, SyncKey, TrackedSource, RETRY_BACKOFF};
use crate::support::events::EventRecorder;
use crate::support::metrics::{KindLabels, Metrics};
use crate::sync::apply::{Applied, Resolver};
use crate::sync::engine::{Engine, Pass, Target};
use crate::sync::object::{Scope, SyncObject};

/// What corrections work with.
#[derive(Debug)]
pub(crate) struct Corrections {
    /// The sync engine every correction goes through.
    pub(crate) engine: Engine,
    /// The registry of watched objects.
    pub(crate) healer: super::Healer,
    /// Metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// Events.
    pub(crate) recorder: Arc<EventRecorder>,
    /// Where corrections are announced.
    pub(crate) notify: crate::notify::Notifications,
    /// Counts each correction in the GitSync's status.
    pub(crate) status: Arc<crate::status::StatusWriter>,
}

/// Corrections running at once.
const CONCURRENCY: usize = 4;

/// Adds one to `status.driftCorrections` and stamps `lastDriftCorrection`: Events expire
/// (after an hour, by default), the count in the status does not.
async fn count_in_status(corrections: &Corrections, sync: &SyncKey) {
    let now = crate::keys::now_rfc3339();
    let result = corrections
        .status
        .update(sync, None, |st| {
            st.drift_corrections = st.drift_corrections.saturating_add(1);
            st.last_drift_correction = Some(now.clone());
        })
        .await;
    if let Err(error) = result {
        tracing::warn!(
            gitsync = %format!("{}/{}", sync.0, sync.1),
            error = %Chain(&error),
            "the drift correction was not counted in the status"
        );
    }
}

/// Takes corrections off `queue` until the controller stops.
pub(crate) async fn run_corrections(corrections: Arc<Corrections>, queue: Queue) {
    queue
        .0
        .for_each_concurrent(CONCURRENCY, |job| {
            let corrections = Arc::clone(&corrections);
            async move { correct(&corrections, job).await }
        })
        .await;
}

/// What a correction needs, taken from the registry under its lock.
struct Claimed {
    source: Arc<TrackedSource>,
    spec: super::HealSpec,
    seen: Seen,
}

/// What to do with a job.
enum Claim {
    /// The object is no longer tracked, or a full reconcile applies it anyway.
    Skip,
    /// Retried, or corrected again soon after the last correction: wait this long first.
    Defer(Duration),
    /// Correct it now.
    Run(Claimed),
}

/// What the registry says after a correction.
struct Settled {
    /// The object was corrected again within the fight window: corrections now back off.
    conflict: Option<Duration>,
}

async fn correct(corrections: &Corrections, job: Job) {
    let claimed = match claim(corrections, &job) {
        Claim::Skip => return,
        Claim::Defer(delay) => {
            // The wait happens outside the correction slots: a backed-off object must not
            // hold up the corrections of others.
            let queue = corrections.healer.inner.queue.clone();
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = queue.unbounded_send(job);
            });
            return;
        }
        Claim::Run(claimed) => claimed,
    };
    let result = open_and_apply(corrections, &job.sync, &claimed).await;
    let source = &claimed.source;
    let what = format!(
        "{} {}",
        kind_of(source),
        match &source.namespace {
            Some(ns) => format!("{ns}/{}", source.name),
            None => source.name.clone(),
        }
    );
    match result {
        Ok((applied, after, intermediate)) => {
            let wrote = matches!(
                applied,
                Applied::Created | Applied::Configured | Applied::Recreated
            );
            corrections
                .metrics
                .count_applies("heal", usize::from(wrote), usize::from(!wrote));
            let settled = settle(corrections, &job, Some((after, intermediate)), wrote, false);
            if !wrote {
                return;
            }
            corrections
                .metrics
                .drift_corrections
                .get_or_create(&KindLabels {
                    kind: kind_of(source).to_owned(),
                })
                .inc();
            let cause = match &claimed.seen {
                Seen::Gone => "was deleted".to_owned(),
                Seen::Present {
                    manager: Some(manager),
                    ..
                } => format!("was changed by {manager}"),
                _ => "was changed".to_owned(),
            };
            tracing::info!(
                gitsync = %format!("{}/{}", job.sync.0, job.sync.1),
                object = %what,
                cause = %cause,
                "drift corrected"
            );
            let note = format!(
                "{what} {cause}; applied again from {} ({})",
                source.file, claimed.spec.revision
            );
            count_in_status(corrections, &job.sync).await;
            corrections.notify.emit_for(
                (&job.sync, claimed.spec.uid.clone(), None),
                sealsync_core::NotifyEvent::DriftCorrected,
                "DriftCorrected",
                &note,
                Some(&claimed.spec.revision),
            );
            event(
                corrections,
                &job.sync,
                &claimed.spec.uid,
                false,
                "DriftCorrected",
                note,
            )
            .await;
            if let Some(next) = settled.and_then(|s| s.conflict) {
                let note = format!(
                    "{what} {cause} again soon after the last correction; corrections back off \
                     (next in {} s, at most every 5 min). If another controller owns a field the \
                     manifest sets, remove that field from the manifest or annotate the object \
                     sealsync.dev/reconcile: disabled",
                    next.as_secs()
                );
                event(
                    corrections,
                    &job.sync,
                    &claimed.spec.uid,
                    true,
                    "DriftConflict",
                    note,
                )
                .await;
            }
        }
        Err(error) => {
            let transient = !error.is_terminal();
            settle(corrections, &job, None, false, transient);
            tracing::warn!(
                gitsync = %format!("{}/{}", job.sync.0, job.sync.1),
                object = %what,
                error = %Chain(&error),
                retried = transient,
                "drift correction failed"
            );
            if !transient {
                let note = format!(
                    "{what} drifted and could not be applied again: {}; the next full \
                     reconcile retries",
                    Chain(&error)
                );
                event(
                    corrections,
                    &job.sync,
                    &claimed.spec.uid,
                    true,
                    "DriftCorrectionFailed",
                    note,
                )
                .await;
            }
        }
    }
}

fn kind_of(source: &TrackedSource) -> &str {
    &source.resource.kind
}

/// Takes the job's object from the registry.
fn claim(corrections: &Corrections, job: &Job) -> Claim {
    let inner = &corrections.healer.inner;
    let mut state = inner.lock();
    let Some(sync) = state.syncs.get_mut(&job.sync) else {
        return Claim::Skip;
    };
    let busy = sync.busy;
    let spec = sync.spec.clone();
    let Some(object) = sync.objects.get_mut(&job.object) else {
        return Claim::Skip;
    };
    if busy {
        object.queued = false;
        object.again = false;
        object.not_before = None;
        return Claim::Skip;
    }
    let retry = RETRY_BACKOFF.delay(object.failures);
    let now = Instant::now();
    let fight = object.fights.wait(now);
    match object.not_before.take() {
        // The wait was served.
        Some(at) if at <= now => {}
        Some(at) => {
            object.not_before = Some(at);
            return Claim::Defer(at - now);
        }
        None => {
            let delay = retry.max(fight);
            if !delay.is_zero() {
                object.not_before = Some(now + delay);
                return Claim::Defer(delay);
            }
        }
    }
    Claim::Run(Claimed {
        source: Arc::clone(&object.source),
        spec,
        seen: object.seen.clone(),
    })
}

/// Records a correction's result and queues the object again if it changed meanwhile.
fn settle(
    corrections: &Corrections,
    job: &Job,
    after: Option<(super::Fingerprint, Vec<super::Fingerprint>)>,
    wrote: bool,
    retry: bool,
) -> Option<Settled> {
    let inner = &corrections.healer.inner;
    let mut state = inner.lock();
    let sync = state.syncs.get_mut(&job.sync)?;
    let object = sync.objects.get_mut(&job.object)?;
    object.queued = false;
    let mut settled = Settled { conflict: None };
    match after {
        Some((fingerprint, intermediate)) => {
            object.failures = 0;
            object.synced = Some(fingerprint);
            object.own = intermediate;
            if wrote {
                settled.conflict = object.fights.corrected(Instant::now());
            }
        }
        None if retry => {
            object.failures = object.failures.saturating_add(1);
            object.again = true;
        }
        None => object.failures = 0,
    }
    let busy = sync.busy;
    if std::mem::take(&mut object.again) && !busy && (retry || object.drifted()) {
        let key: ObjectKey = job.object.clone();
        let sync_key: SyncKey = job.sync.clone();
        inner.enqueue(&sync_key, &key, object);
    }
    Some(settled)
}

/// Runs the object's manifest through the sync engine alone: opened (a SealedSecret with the
/// cluster keys), resolved (Vault references with the values Vault holds now), prepared and
/// applied through the same dry-run comparison as a full apply.
async fn open_and_apply(
    corrections: &Corrections,
    sync: &SyncKey,
    claimed: &Claimed,
) -> Result<(Applied, super::Fingerprint, Vec<super::Fingerprint>), crate::Error> {
    let source = &claimed.source;
    let object = serde_json::from_slice(&source.manifest).map_err(|_| {
        crate::Error::Spec(format!(
            "{}: {}: the recorded manifest cannot be read",
            source.file, source.document
        ))
    })?;
    let mut object = SyncObject::rendered(
        Manifest {
            file: source.file.clone(),
            document: source.document.clone(),
            object,
        },
        false,
    );
    object.scope = Some(Scope {
        resource: Some(source.resource.clone()),
        namespaced: source.namespaced,
    });
    let target = Target {
        key: sync,
        default_namespace: &claimed.spec.default_namespace,
        actor: &claimed.spec.actor,
        force: claimed.spec.force,
        allow_plaintext: claimed.spec.allow_plaintext,
        self_heal: true,
        progress: None,
    };
    // Restart checksums are part of the recorded manifest already.
    let no_restarts = BTreeSet::new();
    let pass = Pass::Objects {
        restart_secrets: &no_restarts,
    };
    let synced = corrections
        .engine
        .run(&target, pass, vec![object], &mut Resolver::default(), &[])
        .await
        .map_err(|failure| failure.error)?;
    let write = synced.writes.into_iter().next().ok_or_else(|| {
        crate::Error::Spec(format!(
            "{}: {}: nothing to apply",
            source.file, source.document
        ))
    })?;
    Ok((write.applied, write.after, write.intermediate))
}

/// Publishes an Event on the GitSync.
async fn event(
    corrections: &Corrections,
    sync: &SyncKey,
    uid: &str,
    warning: bool,
    reason: &str,
    note: String,
) {
    let reference = ObjectReference {
        api_version: Some(GitSync::api_version(&()).into_owned()),
        kind: Some(GitSync::kind(&()).into_owned()),
        namespace: Some(sync.0.clone()),
        name: Some(sync.1.clone()),
        uid: Some(uid.to_owned()),
        ..Default::default()
    };
    crate::status::event_on(&corrections.recorder, &reference, warning, reason, note).await;
}
