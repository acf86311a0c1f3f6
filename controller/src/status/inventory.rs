//! Where each GitSync's inventory is kept: listed in its status, or, past
//! `--inventory-inline-entries`, in ConfigMaps of its namespace that the status names and
//! vouches for (the format is `sealsync_core::inventory`'s).
//!
//! A new inventory's ConfigMaps are created before the status names them and those it no
//! longer names are deleted after, so the status always names a complete set. The last
//! inventory read or written is kept in memory per GitSync: a large inventory is read from the
//! API once after a start, not at every revision.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, ResourceExt};
use sealsync_core::inventory::{self, Shard, INVENTORY_OF_LABEL, SHARD_DATA_KEY};
use sealsync_core::{GitSync, Inventory, InventoryShards, InventoryStatus, FIELD_MANAGER};

use crate::support::SyncKey;

/// Why the inventory a status records could not be read.
pub(crate) use sealsync_core::inventory_read::ReadError as LoadError;

/// The inventory of each GitSync, where its status says it is; see the module docs.
pub(crate) struct InventoryStore {
    client: Client,
    /// Inventories of more entries than this are kept in ConfigMaps.
    inline_limit: usize,
    /// Per GitSync, the last large inventory read or written, with the status that names it.
    known: Mutex<HashMap<SyncKey, (InventoryStatus, Arc<Inventory>)>>,
}

impl std::fmt::Debug for InventoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InventoryStore")
            .field("inline_limit", &self.inline_limit)
            .finish_non_exhaustive()
    }
}

impl InventoryStore {
    /// A store that lists up to `inline_limit` entries in the status.
    pub(crate) fn new(client: Client, inline_limit: usize) -> Self {
        Self {
            client,
            inline_limit,
            known: Mutex::default(),
        }
    }

    fn known(&self, key: &SyncKey, status: &InventoryStatus) -> Option<Arc<Inventory>> {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known
            .get(key)
            .filter(|(stored, _)| stored == status)
            .map(|(_, inventory)| inventory.clone())
    }

    fn remember(&self, key: &SyncKey, status: InventoryStatus, inventory: Arc<Inventory>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(key.clone(), (status, inventory));
    }

    /// Deletes every inventory ConfigMap of a deleted GitSync (found by label: those a failed
    /// write left behind too) and forgets it. They carry no owner reference: a foreground
    /// deletion would delete them before the finalizer has pruned what they list.
    pub(crate) async fn remove(&self, gs: &GitSync) {
        let key: SyncKey = (gs.namespace().unwrap_or_default(), gs.name_any());
        {
            let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            known.remove(&key);
        }
        let Some(uid) = gs.uid() else { return };
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &key.0);
        let params = ListParams::default().labels(&format!("{INVENTORY_OF_LABEL}={uid}"));
        if let Err(e) = api
            .delete_collection(&DeleteParams::default(), &params)
            .await
        {
            tracing::warn!(
                error = %sealsync_core::Chain(&e),
                "could not delete the deleted GitSync's inventory ConfigMaps (labelled {INVENTORY_OF_LABEL}={uid})"
            );
        }
    }

    /// The inventory `gs`'s status records; empty when it records none.
    pub(crate) async fn load(&self, gs: &GitSync) -> Result<Arc<Inventory>, LoadError> {
        let Some(status) = gs.status.as_ref().and_then(|s| s.inventory.as_ref()) else {
            return Ok(Arc::default());
        };
        let shards = match (&status.entries, &status.config_maps) {
            (Some(entries), _) => {
                return Ok(Arc::new(Inventory {
                    entries: entries.clone(),
                }))
            }
            (None, None) => return Ok(Arc::default()),
            (None, Some(shards)) => shards,
        };
        let key: SyncKey = (gs.namespace().unwrap_or_default(), gs.name_any());
        if let Some(inventory) = self.known(&key, status) {
            return Ok(inventory);
        }
        let inventory = Arc::new(self.read_shards(gs, shards).await?);
        self.remember(&key, status.clone(), inventory.clone());
        Ok(inventory)
    }

    async fn read_shards(
        &self,
        gs: &GitSync,
        shards: &InventoryShards,
    ) -> Result<Inventory, LoadError> {
        sealsync_core::inventory_read::read_shards(
            &self.client,
            &gs.namespace().unwrap_or_default(),
            &gs.uid().unwrap_or_default(),
            shards,
        )
        .await
    }

    /// Keeps `inventory` (sorted, without duplicates) where it belongs and returns what `gs`'s
    /// status should record. A large one's ConfigMaps exist once this returns; those the
    /// status names until then are left alone ([`InventoryStore::collect`] deletes them).
    pub(crate) async fn store(
        &self,
        gs: &GitSync,
        inventory: Arc<Inventory>,
    ) -> Result<InventoryStatus, kube::Error> {
        if inventory.entries.len() <= self.inline_limit {
            return Ok(InventoryStatus::listed(&inventory));
        }
        let key: SyncKey = (gs.namespace().unwrap_or_default(), gs.name_any());
        let recorded = gs.status.as_ref().and_then(|s| s.inventory.as_ref());
        // A revision that adds or removes nothing: the recorded ConfigMaps hold it already, and
        // nothing is hashed again.
        if let Some(recorded) = recorded {
            if self
                .known(&key, recorded)
                .is_some_and(|known| Arc::ptr_eq(&known, &inventory) || *known == *inventory)
            {
                return Ok(recorded.clone());
            }
        }
        let uid = gs.uid().unwrap_or_default();
        let shards = inventory::shards(&uid, &inventory.entries);
        let status = InventoryStatus {
            entries: None,
            config_maps: Some(InventoryShards {
                names: shards.iter().map(|s| s.name.clone()).collect(),
                count: inventory.entries.len() as u64,
                digest: inventory::digest(&inventory.entries),
            }),
        };
        // Shards are named after their content: those the current status names exist as they are.
        let existing: HashSet<String> = shard_names(recorded).into_iter().collect();
        let api: Api<ConfigMap> =
            Api::namespaced(self.client.clone(), &gs.namespace().unwrap_or_default());
        for shard in shards.iter().filter(|s| !existing.contains(&s.name)) {
            create_shard(&api, gs, &uid, shard).await?;
        }
        self.remember(&key, status.clone(), inventory);
        Ok(status)
    }

    /// Deletes the ConfigMaps that `replaced` named and `current` does not, once the status
    /// names `current`. One left behind by a failure here goes with the GitSync.
    pub(crate) async fn collect(
        &self,
        gs: &GitSync,
        replaced: Option<&InventoryStatus>,
        current: Option<&InventoryStatus>,
    ) {
        let keep: HashSet<String> = shard_names(current).into_iter().collect();
        let api: Api<ConfigMap> =
            Api::namespaced(self.client.clone(), &gs.namespace().unwrap_or_default());
        for name in shard_names(replaced) {
            if keep.contains(&name) {
                continue;
            }
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => tracing::warn!(
                    configmap = %name,
                    error = %sealsync_core::Chain(&e),
                    "could not delete a replaced inventory ConfigMap; it goes with the GitSync"
                ),
            }
        }
    }
}

/// The ConfigMaps `status` names.
fn shard_names(status: Option<&InventoryStatus>) -> Vec<String> {
    status
        .and_then(|s| s.config_maps.as_ref())
        .map(|shards| shards.names.clone())
        .unwrap_or_default()
}

/// Creates the ConfigMap of `shard`, labelled with `gs`'s uid. One of that name whose content differs
/// (made by someone else: names are predictable) is replaced.
async fn create_shard(
    api: &Api<ConfigMap>,
    gs: &GitSync,
    uid: &str,
    shard: &Shard,
) -> Result<(), kube::Error> {
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some(shard.name.clone()),
            labels: Some(BTreeMap::from([
                (INVENTORY_OF_LABEL.to_owned(), uid.to_owned()),
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sealsync".to_owned(),
                ),
            ])),
            annotations: Some(BTreeMap::from([(
                "sealsync.dev/gitsync".to_owned(),
                gs.name_any(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            SHARD_DATA_KEY.to_owned(),
            shard.text.clone(),
        )])),
        ..ConfigMap::default()
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PostParams::default()
    };
    match api.create(&params, &config_map).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => {
            let found = api.get_opt(&shard.name).await?;
            let same = found.as_ref().is_some_and(|found| {
                found.data == config_map.data
                    && found.labels().get(INVENTORY_OF_LABEL).map(String::as_str) == Some(uid)
            });
            if same {
                return Ok(());
            }
            tracing::warn!(
                configmap = %shard.name,
                "a ConfigMap had the name of an inventory ConfigMap; replacing it"
            );
            match api.delete(&shard.name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
            api.create(&params, &config_map).await.map(|_| ())
        }
        Err(e) => Err(e),
    }
}
