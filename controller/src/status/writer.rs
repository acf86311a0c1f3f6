//! The one writer of GitSync status. Every change goes through [`StatusWriter::update`]:
//! serialised per GitSync, applied to the status the API server holds, and written as a
//! merge patch of the fields that changed, with that object's `resourceVersion` as a
//! precondition. A change never
//! overwrites a newer status it did not see: on a conflict the GitSync is read again and the
//! change applied to what it holds now.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use kube::api::{Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use sealsync_core::{GitSync, GitSyncStatus, FIELD_MANAGER};

use crate::support::SyncKey;

/// How many times a change is applied again after conflicting writes.
const CONFLICT_RETRIES: usize = 5;

/// Writes GitSync status; see the module docs.
pub(crate) struct StatusWriter {
    client: Client,
    locks: Mutex<HashMap<SyncKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Each GitSync as the API server returned it after the last write here.
    written: Mutex<HashMap<SyncKey, Arc<GitSync>>>,
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
            written: Mutex::default(),
        }
    }

    fn written(&self, key: &SyncKey) -> Option<Arc<GitSync>> {
        let written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.get(key).cloned()
    }

    /// `gs` from the controller's cache, or the GitSync read again when the cache has not
    /// caught up with the last status written here: a reconcile must start from the
    /// inventory the last one recorded, or it would miss objects to prune.
    pub(crate) async fn current(
        &self,
        key: &SyncKey,
        gs: Arc<GitSync>,
    ) -> Result<Arc<GitSync>, kube::Error> {
        let Some(written) = self.written(key) else {
            return Ok(gs);
        };
        if written.status == gs.status {
            return Ok(gs);
        }
        tracing::debug!("the cached GitSync lags behind its status; reading it again");
        let api: Api<GitSync> = Api::namespaced(self.client.clone(), &key.0);
        Ok(api.get_opt(&key.1).await?.map_or(gs, Arc::new))
    }

    /// Forgets a deleted GitSync.
    pub(crate) fn forget(&self, key: &SyncKey) {
        let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
        written.remove(key);
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
        // Without a copy from the caller, the one the last write returned saves a read.
        let mut current = known
            .cloned()
            .or_else(|| self.written(key).map(|gs| (*gs).clone()));
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
                Ok(stored) => {
                    let mut written = self.written.lock().unwrap_or_else(|p| p.into_inner());
                    // A GitSync on its way out is forgotten once deleted; a late write (a
                    // drift correction counted) must not keep it here for ever.
                    if stored.metadata.deletion_timestamp.is_none() {
                        written.insert(key.clone(), Arc::new(stored));
                    } else {
                        written.remove(key);
                    }
                    return Ok(true);
                }
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
///
/// A JSON merge patch of the status fields that changed, not a server-side apply: an apply
/// must carry every field its manager owns, and the inventory of a large revision (20,000
/// entries, over a megabyte) would travel, be validated and be stored with every progress
/// message and every revision that changes one object.
async fn write(
    api: &Api<GitSync>,
    gs: &GitSync,
    status: &GitSyncStatus,
) -> Result<GitSync, kube::Error> {
    let changed = changed_fields(gs.status.as_ref(), status).map_err(kube::Error::SerdeError)?;
    let body = serde_json::json!({
        "metadata": {
            "resourceVersion": gs.resource_version(),
        },
        "status": changed,
    });
    api.patch_status(
        &gs.name_any(),
        &PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        },
        &Patch::Merge(&body),
    )
    .await
}

/// What differs between `old` and `new`, as a JSON merge patch (RFC 7386): each changed
/// field, each removed one as `null`, and within an object that both hold, only what differs
/// in it (a merge patch merges objects: one sent whole would keep the fields it lacks).
fn changed_fields(
    old: Option<&GitSyncStatus>,
    new: &GitSyncStatus,
) -> Result<serde_json::Value, serde_json::Error> {
    use serde_json::{Map, Value};
    let old = old.map(serde_json::to_value).transpose()?;
    let new = serde_json::to_value(new)?;
    Ok(merge_diff(old.as_ref().unwrap_or(&Value::Null), &new)
        .unwrap_or_else(|| Value::Object(Map::new())))
}

/// The merge patch that turns `old` into `new`; `None` when they are equal.
fn merge_diff(old: &serde_json::Value, new: &serde_json::Value) -> Option<serde_json::Value> {
    use serde_json::{Map, Value};
    if old == new {
        return None;
    }
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        return Some(new.clone());
    };
    let mut patch = Map::new();
    for key in old.keys().filter(|key| !new.contains_key(*key)) {
        patch.insert(key.clone(), Value::Null);
    }
    for (key, value) in new {
        let changed = match old.get(key) {
            Some(before) => merge_diff(before, value),
            None => Some(value.clone()),
        };
        if let Some(changed) = changed {
            patch.insert(key.clone(), changed);
        }
    }
    Some(Value::Object(patch))
}

#[cfg(test)]
mod tests {
    use crate::support::testing::{test_api, TestApi};
    use kube::api::PostParams;
    use sealsync_core::GitSyncSpec;

    use super::*;

    #[test]
    fn only_the_fields_that_changed_are_sent() {
        let old = GitSyncStatus {
            last_applied_revision: Some("main@sha1:1".to_owned()),
            webhook_path: Some("/hook/abc".to_owned()),
            ..GitSyncStatus::default()
        };
        let new = GitSyncStatus {
            last_applied_revision: Some("main@sha1:2".to_owned()),
            ..GitSyncStatus::default()
        };
        let patch = changed_fields(Some(&old), &new).expect("patch");
        assert_eq!(
            patch,
            serde_json::json!({"lastAppliedRevision": "main@sha1:2", "webhookPath": null})
        );
        assert_eq!(
            changed_fields(Some(&new), &new).expect("patch"),
            serde_json::json!({})
        );
    }

    #[test]
    fn a_nested_field_that_goes_is_sent_as_null() {
        // An inventory moving from the status to ConfigMaps: a merge patch of the new object
        // alone would keep the old entries beside the ConfigMaps' names.
        let entry = sealsync_core::InventoryEntry::new(Some("a"), "b", "", "ConfigMap", "v1");
        let listed = GitSyncStatus {
            inventory: Some(sealsync_core::InventoryStatus {
                entries: Some(vec![entry]),
                config_maps: None,
            }),
            ..GitSyncStatus::default()
        };
        let shards = sealsync_core::InventoryShards {
            names: vec!["sealsync-inventory-1".to_owned()],
            count: 1,
            digest: "sha256:00".to_owned(),
        };
        let kept = GitSyncStatus {
            inventory: Some(sealsync_core::InventoryStatus {
                entries: None,
                config_maps: Some(shards.clone()),
            }),
            ..GitSyncStatus::default()
        };
        assert_eq!(
            changed_fields(Some(&listed), &kept).expect("patch"),
            serde_json::json!({"inventory": {"entries": null, "configMaps": {
                "names": ["sealsync-inventory-1"], "count": 1, "digest": "sha256:00"}}})
        );
        let mut recounted = kept.clone();
        if let Some(inventory) = recounted.inventory.as_mut() {
            inventory.config_maps = Some(sealsync_core::InventoryShards { count: 2, ..shards });
        }
        assert_eq!(
            changed_fields(Some(&kept), &recounted).expect("patch"),
            serde_json::json!({"inventory": {"configMaps": {"count": 2}}})
        );
    }

    async fn cluster() -> (TestApi, Client) {
        let api = test_api().await;
        let client = api.client.clone();
        let crds = sealsync_core::crds_yaml().expect("crds");
        for document in crds.split("\n---\n").filter(|d| d.contains("kind:")) {
            let crd: kube::api::DynamicObject = serde_yaml::from_str(document).expect("crd");
            let api: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
                Api::all(client.clone());
            api.patch(
                &crd.name_any(),
                &PatchParams::apply("test").force(),
                &Patch::Apply(&crd),
            )
            .await
            .expect("install the CRD");
        }
        // The new kind is served within moments.
        let gitsyncs: Api<GitSync> = Api::namespaced(client.clone(), "default");
        for _ in 0..100 {
            if gitsyncs.list(&Default::default()).await.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        (api, client)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_from_a_stale_copy_lands_on_the_newer_status() {
        let (_api, client) = cluster().await;
        let api: Api<GitSync> = Api::namespaced(client.clone(), "default");
        let spec: GitSyncSpec = serde_json::from_value(
            serde_json::json!({"url": "git://127.0.0.1/shop.git", "interval": "1m"}),
        )
        .expect("spec");
        let gs = GitSync::new("shop", spec);
        let created = api
            .create(&PostParams::default(), &gs)
            .await
            .expect("create");
        let writer = StatusWriter::new(client.clone());
        let key: SyncKey = ("default".to_owned(), "shop".to_owned());

        // Two writers start from the same copy; the second's is stale once the first wrote.
        let wrote = writer
            .update(&key, Some(&created), |st| {
                st.last_attempted_revision = Some("main@sha1:1".to_owned());
            })
            .await
            .expect("first write");
        assert!(wrote);
        let wrote = writer
            .update(&key, Some(&created), |st| {
                st.webhook_path = Some("/hook/abc".to_owned());
            })
            .await
            .expect("second write");
        assert!(wrote);
        let status = api.get("shop").await.expect("get").status.expect("status");
        assert_eq!(
            status.last_attempted_revision.as_deref(),
            Some("main@sha1:1")
        );
        assert_eq!(status.webhook_path.as_deref(), Some("/hook/abc"));

        // A field a change removes is removed.
        let wrote = writer
            .update(&key, None, |st| st.last_attempted_revision = None)
            .await
            .expect("third write");
        assert!(wrote);
        let status = api.get("shop").await.expect("get").status.expect("status");
        assert_eq!(status.last_attempted_revision, None);
        assert_eq!(status.webhook_path.as_deref(), Some("/hook/abc"));

        // A change that changes nothing writes nothing.
        let current = api.get("shop").await.expect("get");
        let wrote = writer
            .update(&key, Some(&current), |st| {
                st.webhook_path = Some("/hook/abc".to_owned());
            })
            .await
            .expect("no write");
        assert!(!wrote);
        assert_eq!(
            api.get("shop")
                .await
                .expect("get")
                .metadata
                .resource_version,
            current.metadata.resource_version
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_changes_are_serialised_and_none_is_lost() {
        let (_api, client) = cluster().await;
        let api: Api<GitSync> = Api::namespaced(client.clone(), "default");
        let spec: GitSyncSpec =
            serde_json::from_value(serde_json::json!({"url": "git://x/y", "interval": "1m"}))
                .expect("spec");
        let created = api
            .create(&PostParams::default(), &GitSync::new("shop", spec))
            .await
            .expect("create");
        let writer = Arc::new(StatusWriter::new(client.clone()));
        let key: SyncKey = ("default".to_owned(), "shop".to_owned());
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (writer, key, created) = (writer.clone(), key.clone(), created.clone());
            tasks.push(tokio::spawn(async move {
                writer
                    .update(&key, Some(&created), |st| {
                        let mut usage = st.sealed_secrets.clone();
                        usage.push(sealsync_core::SealedSecretUsage {
                            file: format!("f{i}.yaml"),
                            secret: format!("apps/s{i}"),
                            key_ids: Vec::new(),
                        });
                        st.sealed_secrets = usage;
                    })
                    .await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("write");
        }
        let status = api.get("shop").await.expect("get").status.expect("status");
        assert_eq!(
            status.sealed_secrets.len(),
            8,
            "{:?}",
            status.sealed_secrets
        );
    }
}
