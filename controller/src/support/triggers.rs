//! Asking for reconciles: a GitSync now (a webhook push, new keys), or a full re-plan at its
//! next reconcile (a Vault refresh changed a Secret that workloads restart on); and whether
//! this replica leads.

use std::collections::HashSet;
use std::sync::Mutex;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use sealsync_core::GitSync;
use tokio::sync::watch;

use super::SyncKey;

/// Whether this process leads: `true` while it holds the lease. Without leader election it
/// always leads.
pub(crate) type Leading = watch::Receiver<bool>;

/// The reconcile requests of the layers below the reconciler.
#[derive(Debug)]
pub(crate) struct Triggers {
    reconcile_now: UnboundedSender<ObjectRef<GitSync>>,
    replans: Mutex<HashSet<SyncKey>>,
}

impl Triggers {
    /// Requests go to `reconcile_now`.
    pub(crate) fn new(reconcile_now: UnboundedSender<ObjectRef<GitSync>>) -> Self {
        Self {
            reconcile_now,
            replans: Mutex::default(),
        }
    }

    /// Asks for a reconcile of `key` now.
    pub(crate) fn reconcile(&self, key: &SyncKey) {
        let _ = self
            .reconcile_now
            .unbounded_send(ObjectRef::new(&key.1).within(&key.0));
    }

    /// Asks for a full re-plan of `key` at its next reconcile, and for that reconcile now.
    pub(crate) fn request_replan(&self, key: &SyncKey) {
        self.replans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.clone());
        self.reconcile(key);
    }

    /// Whether a full re-plan of `key` was asked for (and forgets the request).
    pub(crate) fn take_replan(&self, key: &SyncKey) -> bool {
        self.replans
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
    }
}
