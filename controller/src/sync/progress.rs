//! How far a sync has got: the stage it is in and how many objects it carries. The reconcile
//! publishes it as `Reconciling=True` while a long sync runs, and names the stage when the
//! sync runs out of time.

use std::sync::Mutex;

/// A stage of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncStage {
    /// Fetching the revision.
    Fetch,
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
}

impl SyncStage {
    /// For messages: `fetch`, `render`, …
    pub(crate) fn name(self) -> &'static str {
        match self {
            SyncStage::Fetch => "fetch",
            SyncStage::Render => "render",
            SyncStage::Decrypt => "decrypt",
            SyncStage::Resolve => "Vault resolve",
            SyncStage::Plan => "plan",
            SyncStage::Apply => "apply",
            SyncStage::Prune => "prune",
        }
    }

    /// The `Ready=False` reason when the sync runs out of time in this stage.
    pub(crate) fn timeout_reason(self) -> &'static str {
        match self {
            SyncStage::Fetch => "FetchTimeout",
            SyncStage::Render | SyncStage::Decrypt => "RenderTimeout",
            SyncStage::Resolve => "VaultTimeout",
            SyncStage::Plan | SyncStage::Apply => "ApplyTimeout",
            SyncStage::Prune => "PruneTimeout",
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
    /// The revision, once fetched.
    pub(crate) revision: Option<String>,
}

impl Step {
    /// For `Reconciling`'s message: `applying 5000 objects of main@sha1:…`.
    pub(crate) fn describe(&self) -> String {
        let what = match self.objects {
            0 => format!("{} in progress", self.stage.name()),
            n => format!("{}: {n} object(s)", self.stage.name()),
        };
        match &self.revision {
            Some(revision) => format!("{what} (revision {revision})"),
            None => what,
        }
    }
}

/// The progress of one sync, shared between the sync and whoever reports on it.
#[derive(Debug)]
pub(crate) struct Progress(Mutex<Step>);

impl Default for Progress {
    fn default() -> Self {
        Self(Mutex::new(Step {
            stage: SyncStage::Fetch,
            objects: 0,
            revision: None,
        }))
    }
}

impl Progress {
    fn step(&self) -> std::sync::MutexGuard<'_, Step> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sync entered `stage` with `objects` objects.
    pub(crate) fn enter(&self, stage: SyncStage, objects: usize) {
        let mut step = self.step();
        step.stage = stage;
        step.objects = objects;
    }

    /// The revision is known.
    pub(crate) fn revision(&self, revision: &str) {
        self.step().revision = Some(revision.to_owned());
    }

    /// Where the sync is now.
    pub(crate) fn now(&self) -> Step {
        self.step().clone()
    }
}
