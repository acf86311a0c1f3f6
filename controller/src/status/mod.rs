//! GitSync status: conditions in the kstatus style, revisions, inventory and key usage,
//! written only through the [`StatusWriter`]; and Kubernetes Events.

mod inventory;
mod writer;

pub(crate) use inventory::{InventoryStore, LoadError as InventoryLoadError};
pub(crate) use writer::StatusWriter;

use crate::support::events::EventRecorder;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::Resource;
use sealsync_core::Chain;
use sealsync_core::GitSync;

/// The longest condition message written; longer ones are cut with a note.
const MAX_MESSAGE: usize = 4096;

/// Sets `type_` in `conditions`, keeping `lastTransitionTime` when the status is unchanged.
pub(crate) fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
    generation: Option<i64>,
) {
    let status = if status { "True" } else { "False" };
    let message = truncate(message);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != status {
                c.last_transition_time = now;
            }
            c.status = status.to_owned();
            c.reason = reason.to_owned();
            c.message = message;
            c.observed_generation = generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time: now,
        }),
    }
}

/// `Ready=False` with `reason`, and either `Stalled=True` (a new commit or spec is needed) or
/// `Reconciling=True` with `ProgressingWithRetry` (retried with backoff); never both.
pub(crate) fn set_failed(
    conditions: &mut Vec<Condition>,
    reason: &str,
    message: &str,
    terminal: bool,
    generation: Option<i64>,
) {
    set_condition(conditions, "Ready", false, reason, message, generation);
    if terminal {
        set_condition(conditions, "Stalled", true, reason, message, generation);
        remove_condition(conditions, "Reconciling");
    } else {
        set_condition(
            conditions,
            "Reconciling",
            true,
            "ProgressingWithRetry",
            message,
            generation,
        );
        remove_condition(conditions, "Stalled");
    }
}

/// Removes `type_` from `conditions`: kstatus reads an absent `Reconciling` or `Stalled` as
/// false.
pub(crate) fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) {
    conditions.retain(|c| c.type_ != type_);
}

/// The longest Event note kube-apiserver accepts.
const MAX_NOTE: usize = 1024;

fn truncate(message: &str) -> String {
    truncate_to(message, MAX_MESSAGE)
}

fn truncate_to(message: &str, limit: usize) -> String {
    if message.len() <= limit {
        return message.to_owned();
    }
    // Room for the marker.
    let mut end = limit.saturating_sub(10);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} … (cut)", &message[..end])
}

/// Publishes an Event on the GitSync. Failures are logged, not returned: an Event is a
/// courtesy, and a reconcile must not fail because one could not be written.
pub(crate) async fn event(
    recorder: &EventRecorder,
    gs: &GitSync,
    warning: bool,
    reason: &str,
    note: String,
) {
    event_on(recorder, &gs.object_ref(&()), warning, reason, note).await;
}

/// Publishes an Event on the object `reference` names (a GitSync known only by its key).
pub(crate) async fn event_on(
    recorder: &EventRecorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    warning: bool,
    reason: &str,
    note: String,
) {
    let note = truncate_to(&note, MAX_NOTE);
    if let Err(e) = recorder
        .publish(reference, warning, reason, "Reconcile", &note)
        .await
    {
        tracing::warn!(error = %Chain(&e), "could not publish an event");
    }
}
