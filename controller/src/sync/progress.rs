//! How far a sync has got: the stage it is in and how many objects it carries. The reconcile
//! publishes it as `Reconciling=True` while a long sync runs, and names the stage when the
//! sync runs out of time.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A stage of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncStage {
    /// Fetching the revision.
    Fetch,
    /// Verifying its signatures.
    Verify,
    /// Rendering its manifests.
    Render,
    /// Opening its SealedSecrets.
    Decrypt,
    /// Reading its Vault references.
    Resolve,
    /// Planning its objects: scope, owner labels, order.
    Plan,
    /// Applying them.
    Apply,
    /// Deleting what the revision no longer holds.
    Prune,
    /// Waiting for the applied objects to become healthy.
    Health,
}

impl SyncStage {
    /// For messages: `fetch`, `render`, …
    pub(crate) fn name(self) -> &'static str {
        match self {
            SyncStage::Fetch => "fetch",
            SyncStage::Verify => "verify",
            SyncStage::Render => "render",
            SyncStage::Decrypt => "decrypt",
            SyncStage::Resolve => "Vault resolve",
            SyncStage::Plan => "plan",
            SyncStage::Apply => "apply",
            SyncStage::Prune => "prune",
            SyncStage::Health => "health check",
        }
    }

    /// The `Ready=False` reason when the sync runs out of time in this stage.
    pub(crate) fn timeout_reason(self) -> &'static str {
        match self {
            SyncStage::Fetch => "FetchTimeout",
            // Reading the keys Secret (the check itself takes milliseconds).
            SyncStage::Verify => "FetchTimeout",
            SyncStage::Render | SyncStage::Decrypt => "RenderTimeout",
            SyncStage::Resolve => "VaultTimeout",
            SyncStage::Plan | SyncStage::Apply => "ApplyTimeout",
            SyncStage::Prune => "PruneTimeout",
            SyncStage::Health => "HealthCheckFailed",
        }
    }
}

/// Where a sync is: its stage, the objects it carries, the revision once known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    /// The stage.
    pub(crate) stage: SyncStage,
    /// How many objects the stage works on (0 before rendering).
    pub(crate) objects: usize,
    /// In `apply`: how many passed their dry-run.
    pub(crate) validated: usize,
    /// In `apply`: how many are written (or found equal).
    pub(crate) written: usize,
    /// The revision, once fetched.
    pub(crate) revision: Option<String>,
}

impl Step {
    /// For `Reconciling`'s message: `apply: 5000 object(s), 5000 validated, 1200 written
    /// (revision main@sha1:…)`.
    pub(crate) fn describe(&self) -> String {
        let what = match (self.stage, self.objects) {
            (_, 0) => format!("{} in progress", self.stage.name()),
            (SyncStage::Apply, n) => format!(
                "apply: {n} object(s), {} validated, {} written",
                self.validated, self.written
            ),
            (SyncStage::Health, n) => {
                format!("health check: {} of {n} object(s) healthy", self.written)
            }
            (_, n) => format!("{}: {n} object(s)", self.stage.name()),
        };
        match &self.revision {
            Some(revision) => format!("{what} (revision {revision})"),
            None => what,
        }
    }
}

/// The time each stage took, in the order they ran: the `reconciled` log line says where a
/// slow sync spent its time.
#[derive(Debug)]
struct Timings {
    /// When the current stage began.
    since: Instant,
    /// The stages that ended.
    spent: Vec<(SyncStage, Duration)>,
}

/// The progress of one sync, shared between the sync and whoever reports on it.
#[derive(Debug)]
pub(crate) struct Progress {
    step: Mutex<Step>,
    timings: Mutex<Timings>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            step: Mutex::new(Step {
                stage: SyncStage::Fetch,
                objects: 0,
                validated: 0,
                written: 0,
                revision: None,
            }),
            timings: Mutex::new(Timings {
                since: Instant::now(),
                spent: Vec::new(),
            }),
        }
    }
}

impl Progress {
    fn step(&self) -> std::sync::MutexGuard<'_, Step> {
        self.step.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn timings(&self) -> std::sync::MutexGuard<'_, Timings> {
        self.timings.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sync entered `stage` with `objects` objects.
    pub(crate) fn enter(&self, stage: SyncStage, objects: usize) {
        let mut step = self.step();
        let mut timings = self.timings();
        let now = Instant::now();
        let ended = step.stage;
        let took = now.saturating_duration_since(timings.since);
        timings.spent.push((ended, took));
        timings.since = now;
        step.stage = stage;
        step.objects = objects;
        step.validated = 0;
        step.written = 0;
    }

    /// `count` more objects passed their dry-run.
    pub(crate) fn validated(&self, count: usize) {
        let mut step = self.step();
        step.validated = step.validated.saturating_add(count);
    }

    /// `count` more objects are written.
    pub(crate) fn written(&self, count: usize) {
        let mut step = self.step();
        step.written = step.written.saturating_add(count);
    }

    /// In the health stage: `count` objects are healthy now.
    pub(crate) fn healthy(&self, count: usize) {
        self.step().written = count;
    }

    /// The revision is known.
    pub(crate) fn revision(&self, revision: &str) {
        self.step().revision = Some(revision.to_owned());
    }

    /// Where the sync is now.
    pub(crate) fn now(&self) -> Step {
        self.step().clone()
    }

    /// The time each stage took so far, the current one up to now, for the log:
    /// `fetch 12 ms, render 80 ms, apply 40 ms`. A stage entered twice is counted once.
    pub(crate) fn spent(&self) -> String {
        let stage = self.step().stage;
        let timings = self.timings();
        let mut spent: Vec<(SyncStage, Duration)> = Vec::with_capacity(timings.spent.len() + 1);
        let current = (stage, timings.since.elapsed());
        for (stage, took) in timings.spent.iter().copied().chain([current]) {
            match spent.iter_mut().find(|(s, _)| *s == stage) {
                Some((_, total)) => *total += took,
                None => spent.push((stage, took)),
            }
        }
        let mut text = String::new();
        for (stage, took) in spent {
            if !text.is_empty() {
                text.push_str(", ");
            }
            let _ = write!(text, "{} {} ms", stage.name(), took.as_millis());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::{Progress, SyncStage};

    #[test]
    fn apply_counts_each_dry_run_and_write_and_restarts_with_the_stage() {
        let progress = Progress::default();
        progress.revision("main@sha1:abc");
        progress.enter(SyncStage::Apply, 5);
        progress.validated(5);
        progress.written(2);
        assert_eq!(
            progress.now().describe(),
            "apply: 5 object(s), 5 validated, 2 written (revision main@sha1:abc)"
        );
        progress.enter(SyncStage::Prune, 3);
        let step = progress.now();
        assert_eq!((step.validated, step.written), (0, 0));
        assert_eq!(
            step.describe(),
            "prune: 3 object(s) (revision main@sha1:abc)"
        );
    }

    #[test]
    fn spent_names_each_stage_once_in_the_order_they_ran() {
        let progress = Progress::default();
        progress.enter(SyncStage::Render, 1);
        progress.enter(SyncStage::Apply, 1);
        progress.enter(SyncStage::Render, 1);
        let spent = progress.spent();
        let stages: Vec<&str> = spent
            .split(", ")
            .map(|s| s.split(' ').next().unwrap_or_default())
            .collect();
        assert_eq!(stages, ["fetch", "render", "apply"], "{spent}");
        assert!(spent.ends_with(" ms"), "{spent}");
    }
}
