//! The `inventory` stage: which objects a revision holds, in Flux's entry form, so that the
//! next revision knows what to prune.

use sealsync_core::{Inventory, InventoryEntry};
use serde_json::Value as Json;

/// The inventory entry of an object about to be applied.
pub(crate) fn entry_of(object: &Json) -> InventoryEntry {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    InventoryEntry::new(
        object["metadata"]["namespace"].as_str(),
        object["metadata"]["name"].as_str().unwrap_or_default(),
        group,
        object["kind"].as_str().unwrap_or_default(),
        version,
    )
}

/// The inventory of a revision: one entry per object, sorted, without duplicates.
pub(crate) fn of_objects<'a>(objects: impl IntoIterator<Item = &'a Json>) -> Inventory {
    let mut entries: Vec<InventoryEntry> = objects.into_iter().map(entry_of).collect();
    entries.sort();
    entries.dedup_by(|a, b| a.id == b.id);
    Inventory { entries }
}

/// Entries of `old` whose object `new` no longer holds: what prune deletes. Compared by id,
/// so an object whose apiVersion changed is not pruned. Linear in the two sizes.
pub(crate) fn stale(old: &Inventory, new: &Inventory) -> Vec<InventoryEntry> {
    let kept: std::collections::HashSet<&str> = new.entries.iter().map(|n| n.id.as_str()).collect();
    old.entries
        .iter()
        .filter(|o| !kept.contains(o.id.as_str()))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_follow_flux_ids() {
        let secret = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}});
        let deploy = serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        let ns = serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}});
        let inv = of_objects([&secret, &deploy, &ns]);
        let ids: Vec<_> = inv.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "_shop__Namespace",
                "shop_db__Secret",
                "shop_web_apps_Deployment"
            ]
        );
        assert_eq!(inv.entries[2].v, "v1");
        let smaller = of_objects([&secret]);
        let gone: Vec<_> = stale(&inv, &smaller).into_iter().map(|e| e.id).collect();
        assert_eq!(gone, ["_shop__Namespace", "shop_web_apps_Deployment"]);
    }
}
