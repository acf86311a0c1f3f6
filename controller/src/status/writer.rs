//! The one writer of GitSync status. Every change goes through [`StatusWriter::update`]:
//! serialised per GitSync, applied to the status the API server holds, and written by
//! server-side apply with that object's `resourceVersion` as a precondition. A change never
//! overwrites a newer status it did not see: on a conflict the GitSync is read again and the
//! change applied to what it holds now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use sealsync_core::{GitSync, GitSyncStatus, FIELD_MANAGER};

use crate::support::SyncKey;

/// How many times a change is applied again after conflicting writes.
const CONFLICT_RETRIES: usize = 5;

/// Writes GitSync status; see the module docs.
pub(crate) struct StatusWriter {
    client: Client,
    locks: Mutex<HashMap<SyncKey, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for StatusWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatusWriter").finish_non_exhaustive()
    }
}

impl StatusWriter {
    /// A writer with `client`.
    pub(crate) fn new(client: Client) -> Self {
        Self {
            client,
            locks: Mutex::default(),
        }
    }

    fn lock_of(&self, key: &SyncKey) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded by the GitSyncs; entries nobody holds are dropped when it grows.
        if locks.len() > 4096 {
            locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        locks.entry(key.clone()).or_default().clone()
    }

    /// Applies `change` to the status of the GitSync `key` and writes the result if it
    /// differs. `known` is the caller's copy of the GitSync, tried first so that an unchanged
    /// status costs no request; without it (or when it turns out stale) the GitSync is read.
    /// Returns whether a write happened; a GitSync that is gone is not an error.
    pub(crate) async fn update<F>(
        &self,
        key: &SyncKey,
        known: Option<&GitSync>,
        mut change: F,
    ) -> Result<bool, kube::Error>
    where
        F: FnMut(&mut GitSyncStatus),
    {
        let lock = self.lock_of(key);
        let _serialised = lock.lock().await;
        let api: Api<GitSync> = Api::namespaced(self.client.clone(), &key.0);
        let mut current = known.cloned();
        let mut conflict = None;
        for _ in 0..=CONFLICT_RETRIES {
            let gs = match current.take() {
                Some(gs) => gs,
                None => match api.get_opt(&key.1).await? {
                    Some(gs) => gs,
                    None => return Ok(false),
                },
            };
            let mut status = gs.status.clone().unwrap_or_default();
            change(&mut status);
            if gs.status.as_ref() == Some(&status) {
                return Ok(false);
            }
            match write(&api, &gs, &status).await {
                Ok(()) => return Ok(true),
                // Another write came first: read it, and apply the change to it.
                Err(kube::Error::Api(e)) if e.code == 409 => conflict = Some(kube::Error::Api(e)),
                Err(kube::Error::Api(e)) if e.code == 404 => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        // The status kept changing while it was written.
        conflict.map_or(Ok(false), Err)
    }
}

/// Writes `status` through the status subresource, on the condition that `gs` is current.
async fn write(
    api: &Api<GitSync>,
    gs: &GitSync,
    status: &GitSyncStatus,
) -> Result<(), kube::Error> {
    let body = serde_json::json!({
        "apiVersion": GitSync::api_version(&()),
        "kind": GitSync::kind(&()),
        "metadata": {
            "name": gs.name_any(),
            "resourceVersion": gs.resource_version(),
        },
        "status": status,
    });
    api.patch_status(
        &gs.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await?;
    Ok(())
}
