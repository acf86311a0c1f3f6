//! Reading a GitSync's inventory where its status says it is, as the controller's prune and
//! `sealsync status` both need it: listed in the status, or in ConfigMaps of the GitSync's
//! namespace that must carry its uid and match the count and digest the status vouches for.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::{Api, Client, ResourceExt};

use crate::inventory::{self, Inventory, InventoryError, InventoryShards};
use crate::inventory::{INVENTORY_OF_LABEL, SHARD_DATA_KEY};
use crate::InventoryStatus;

/// Why an inventory could not be read. Exhaustive: prune must tell "try again" from "lost".
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The API did not answer as it should; trying again may work.
    #[error("reading the inventory ConfigMap {name}")]
    Api {
        /// The ConfigMap.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The ConfigMaps are gone or were changed: what the last revision applied is unknown.
    #[error("the inventory is lost: {0}")]
    Lost(String),
}

impl From<InventoryError> for ReadError {
    fn from(error: InventoryError) -> Self {
        ReadError::Lost(error.to_string())
    }
}

/// The inventory `status` records for the GitSync of `namespace` and `owner_uid`.
pub async fn read(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    status: &InventoryStatus,
) -> Result<Inventory, ReadError> {
    match (&status.entries, &status.config_maps) {
        (Some(entries), _) => Ok(Inventory {
            entries: entries.clone(),
        }),
        (None, None) => Ok(Inventory::default()),
        (None, Some(shards)) => read_shards(client, namespace, owner_uid, shards).await,
    }
}

/// The inventory a large status keeps in ConfigMaps.
pub async fn read_shards(
    client: &Client,
    namespace: &str,
    owner_uid: &str,
    shards: &InventoryShards,
) -> Result<Inventory, ReadError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let mut parsed = Vec::with_capacity(shards.names.len());
    for name in &shards.names {
        let config_map = api.get_opt(name).await.map_err(|source| ReadError::Api {
            name: name.clone(),
            source,
        })?;
        let Some(config_map) = config_map else {
            return Err(ReadError::Lost(format!(
                "the inventory ConfigMap {name} was deleted"
            )));
        };
        if config_map
            .labels()
            .get(INVENTORY_OF_LABEL)
            .map(String::as_str)
            != Some(owner_uid)
        {
            return Err(ReadError::Lost(format!(
                "the ConfigMap {name} is not this GitSync's inventory"
            )));
        }
        let text = config_map
            .data
            .as_ref()
            .and_then(|data| data.get(SHARD_DATA_KEY))
            .map(String::as_str)
            .unwrap_or_default();
        parsed.push(inventory::parse_shard(name, text)?);
    }
    Ok(inventory::assemble(shards, parsed)?)
}
