//! A GitSync's inventory: every object its last applied revision holds, what prune compares the
//! next revision with.
//!
//! Up to a limit (`--inventory-inline-entries` on the controller, 1,000 by default) the entries
//! are listed in the status, in Flux's form. A larger inventory is kept in ConfigMaps of the
//! GitSync's namespace, which the status names, counts and vouches for with a SHA-256 digest:
//!
//! - the GitSync object stays small, so a status write costs the same at 20,000 objects as at
//!   20 (the API server decodes, validates and stores the whole object on every write, and
//!   etcd refuses objects over about 1.5 MiB);
//! - each ConfigMap (a *shard*) holds the entries whose id hashes to it, and is named after its
//!   content, so a revision that adds or removes one object writes one new shard, and a shard
//!   the status names is never changed in place: the status write is the one step that
//!   switches from one inventory to the next;
//! - ConfigMaps are writable by more people than GitSync status is, so nothing in a shard is
//!   trusted unless the whole inventory matches the digest in the status.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The label on each inventory ConfigMap: the uid of the GitSync it belongs to.
pub const INVENTORY_OF_LABEL: &str = "sealsync.dev/inventory-of";
/// The key of an inventory ConfigMap's `data` that holds its entries, one `<id> <version>` per
/// line.
pub const SHARD_DATA_KEY: &str = "entries";
/// The prefix of every inventory ConfigMap's name.
pub const SHARD_NAME_PREFIX: &str = "sealsync-inventory-";
/// How many entries a shard holds on average: about 60 KiB of ConfigMap.
pub const SHARD_ENTRIES: usize = 1000;
/// The most entries an inventory may hold: 100 times the largest repository measured.
pub const MAX_ENTRIES: usize = 2_000_000;

/// The objects of a revision, as Flux's kustomize-controller lists them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct Inventory {
    /// One entry per object.
    #[serde(default)]
    pub entries: Vec<InventoryEntry>,
}

/// `{id: "<namespace>_<name>_<group>_<kind>", v: "<version>"}`; the core group is empty
/// (`shop_db__Secret`), and so is the namespace of a cluster-scoped object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
pub struct InventoryEntry {
    /// `<namespace>_<name>_<group>_<kind>`.
    pub id: String,
    /// The API version the object was applied with.
    pub v: String,
}

impl InventoryEntry {
    /// The entry of one object.
    pub fn new(
        namespace: Option<&str>,
        name: &str,
        group: &str,
        kind: &str,
        version: &str,
    ) -> Self {
        InventoryEntry {
            id: format!("{}_{name}_{group}_{kind}", namespace.unwrap_or("")),
            v: version.to_owned(),
        }
    }

    /// The API version it was applied with: `group/version`, or the version alone for the
    /// core group (`None` for an id not of the inventory's form).
    pub fn api_version(&self) -> Option<String> {
        let (_, _, group, _) = self.parts()?;
        Some(if group.is_empty() {
            self.v.clone()
        } else {
            format!("{group}/{}", self.v)
        })
    }

    /// `(namespace, name, group, kind)` of the entry; `None` for an id not of that form.
    pub fn parts(&self) -> Option<(Option<&str>, &str, &str, &str)> {
        let mut it = self.id.split('_');
        let (ns, name, group, kind) = (it.next()?, it.next()?, it.next()?, it.next()?);
        if it.next().is_some() || name.is_empty() || kind.is_empty() {
            return None;
        }
        Some(((!ns.is_empty()).then_some(ns), name, group, kind))
    }
}

/// `status.inventory`: the entries themselves, or the ConfigMaps that hold them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryStatus {
    /// One entry per object, when the inventory is small enough to be listed here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entries: Option<Vec<InventoryEntry>>,
    /// Where a larger inventory is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_maps: Option<InventoryShards>,
}

/// The ConfigMaps of a large inventory, in the GitSync's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InventoryShards {
    /// Their names.
    pub names: Vec<String>,
    /// How many entries they hold together.
    pub count: u64,
    /// `sha256:<hex>` of every entry, one `<id> <version>` line each, sorted: what the
    /// ConfigMaps must hold to be trusted.
    pub digest: String,
}

impl InventoryStatus {
    /// The status of an inventory listed in full.
    pub fn listed(inventory: &Inventory) -> Self {
        Self {
            entries: Some(inventory.entries.clone()),
            config_maps: None,
        }
    }

    /// How many objects it holds.
    pub fn count(&self) -> u64 {
        match (&self.entries, &self.config_maps) {
            (Some(entries), _) => entries.len() as u64,
            (None, Some(shards)) => shards.count,
            (None, None) => 0,
        }
    }
}

/// One ConfigMap's worth of a large inventory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shard {
    /// The ConfigMap's name: [`SHARD_NAME_PREFIX`] and 16 hex digits of its content's hash.
    pub name: String,
    /// Its entries, one `<id> <version>` line each, sorted.
    pub text: String,
}

/// Why the ConfigMaps of an inventory cannot be trusted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum InventoryError {
    /// A line is not `<id> <version>` with an id of four `_`-separated parts.
    #[error("inventory ConfigMap {name}: line {line} is not an inventory entry")]
    BadLine {
        /// The ConfigMap.
        name: String,
        /// The line number, from 1.
        line: usize,
    },
    /// The shards hold more entries than any inventory may.
    #[error("the inventory ConfigMaps hold more than {MAX_ENTRIES} entries")]
    TooLarge,
    /// The entries do not match the count and digest in the status.
    #[error(
        "the inventory ConfigMaps hold {found} entries that do not match the {expected} the status vouches for: they were changed by someone other than the controller"
    )]
    DigestMismatch {
        /// The entries found.
        found: usize,
        /// The entries the status counts.
        expected: u64,
    },
}

/// The digest the status keeps of `entries` (sorted, without duplicates).
pub fn digest(entries: &[InventoryEntry]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for entry in entries {
        context.update(entry.id.as_bytes());
        context.update(b" ");
        context.update(entry.v.as_bytes());
        context.update(b"\n");
    }
    format!("sha256:{}", hex::encode(context.finish()))
}

/// The shards of `entries` (sorted, without duplicates) for the GitSync with uid `owner_uid`:
/// a power of two of them, about [`SHARD_ENTRIES`] entries each, each entry in the shard its id
/// hashes to. The names are unique to the owner and the content.
pub fn shards(owner_uid: &str, entries: &[InventoryEntry]) -> Vec<Shard> {
    let count = entries
        .len()
        .div_ceil(SHARD_ENTRIES)
        .max(1)
        .next_power_of_two();
    let mut texts = vec![String::new(); count];
    for entry in entries {
        // A power of two: the mask picks the low bits of the hash.
        let index = (fnv1a(entry.id.as_bytes()) as usize) & (count - 1);
        let text = &mut texts[index];
        text.push_str(&entry.id);
        text.push(' ');
        text.push_str(&entry.v);
        text.push('\n');
    }
    texts
        .into_iter()
        .filter(|text| !text.is_empty())
        .map(|text| {
            let mut context = ring::digest::Context::new(&ring::digest::SHA256);
            context.update(owner_uid.as_bytes());
            context.update(b"\n");
            context.update(text.as_bytes());
            let hash = context.finish();
            Shard {
                name: format!("{SHARD_NAME_PREFIX}{}", hex::encode(&hash.as_ref()[..8])),
                text,
            }
        })
        .collect()
}

/// The entries of the shard `name` holding `text`.
pub fn parse_shard(name: &str, text: &str) -> Result<Vec<InventoryEntry>, InventoryError> {
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            let bad = || InventoryError::BadLine {
                name: name.to_owned(),
                line: index + 1,
            };
            let (id, v) = line.split_once(' ').ok_or_else(bad)?;
            let entry = InventoryEntry {
                id: id.to_owned(),
                v: v.to_owned(),
            };
            if entry.parts().is_none() || v.is_empty() || v.contains(' ') {
                return Err(bad());
            }
            Ok(entry)
        })
        .collect()
}

/// The inventory `shards` hold, checked against the count and digest `expected` vouches for.
pub fn assemble(
    expected: &InventoryShards,
    shards: Vec<Vec<InventoryEntry>>,
) -> Result<Inventory, InventoryError> {
    let total: usize = shards.iter().map(Vec::len).sum();
    if total > MAX_ENTRIES {
        return Err(InventoryError::TooLarge);
    }
    let mut entries: Vec<InventoryEntry> = shards.into_iter().flatten().collect();
    entries.sort();
    let mismatch = || InventoryError::DigestMismatch {
        found: total,
        expected: expected.count,
    };
    if entries.len() as u64 != expected.count
        || entries.windows(2).any(|pair| pair[0].id == pair[1].id)
        || digest(&entries) != expected.digest
    {
        return Err(mismatch());
    }
    Ok(Inventory { entries })
}

/// FNV-1a, 64 bits: a hash that never changes between versions, so an entry stays in its shard.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<InventoryEntry> {
        let mut entries: Vec<InventoryEntry> = (0..n)
            .map(|i| InventoryEntry::new(Some("shop"), &format!("cm-{i}"), "", "ConfigMap", "v1"))
            .collect();
        entries.sort();
        entries
    }

    fn shards_of(n: usize) -> (InventoryShards, Vec<Shard>) {
        let entries = entries(n);
        let shards = shards("uid-1", &entries);
        let status = InventoryShards {
            names: shards.iter().map(|s| s.name.clone()).collect(),
            count: n as u64,
            digest: digest(&entries),
        };
        (status, shards)
    }

    fn parsed(shards: &[Shard]) -> Vec<Vec<InventoryEntry>> {
        shards
            .iter()
            .map(|s| parse_shard(&s.name, &s.text).expect("parses"))
            .collect()
    }

    #[test]
    fn inventory_ids_are_fluxs() {
        assert_eq!(
            InventoryEntry::new(Some("shop"), "db", "", "Secret", "v1").id,
            "shop_db__Secret"
        );
        assert_eq!(
            InventoryEntry::new(
                None,
                "admin",
                "rbac.authorization.k8s.io",
                "ClusterRole",
                "v1"
            )
            .id,
            "_admin_rbac.authorization.k8s.io_ClusterRole"
        );
    }

    #[test]
    fn shards_round_trip_and_stay_small() {
        let (status, shards) = shards_of(20_000);
        assert_eq!(shards.len(), 32);
        assert!(shards.iter().all(|s| s.text.len() < 64 * 1024));
        let inventory = assemble(&status, parsed(&shards)).expect("vouched for");
        assert_eq!(inventory.entries, entries(20_000));
        // One shard for a small inventory.
        assert_eq!(shards_of(3).1.len(), 1);
    }

    #[test]
    fn one_changed_entry_changes_one_shard() {
        let before = shards("uid-1", &entries(5000));
        let mut fewer = entries(5000);
        fewer.retain(|e| e.id != "shop_cm-77__ConfigMap");
        let after = shards("uid-1", &fewer);
        let changed = after.iter().filter(|s| !before.contains(s)).count();
        assert_eq!(changed, 1);
        // Another GitSync's shards of the same entries have other names.
        let other = shards("uid-2", &entries(5000));
        assert!(other
            .iter()
            .all(|s| before.iter().all(|b| b.name != s.name)));
    }

    #[test]
    fn changed_shards_are_refused() {
        let (status, shards) = shards_of(3000);
        // An entry added to a shard (an object someone wants pruned).
        let mut tampered = parsed(&shards);
        tampered[0].push(InventoryEntry::new(
            Some("kube-system"),
            "x",
            "apps",
            "Deployment",
            "v1",
        ));
        assert!(matches!(
            assemble(&status, tampered),
            Err(InventoryError::DigestMismatch { .. })
        ));
        // An entry removed (an object someone wants left behind).
        let mut removed = parsed(&shards);
        removed[1].pop();
        assert!(assemble(&status, removed).is_err());
        // A shard repeated in place of another.
        let mut repeated = parsed(&shards);
        repeated[1] = repeated[0].clone();
        assert!(assemble(&status, repeated).is_err());
        // A version changed.
        let mut changed = parsed(&shards);
        changed[0][0].v = "v2".to_owned();
        assert!(assemble(&status, changed).is_err());
    }

    #[test]
    fn malformed_lines_are_refused() {
        for text in [
            "shop_db__Secret\n",
            "shop_db__Secret v1 extra\n",
            "shop_db_Secret v1\n",
            "shop_db__Secret \n",
            "\n",
        ] {
            assert!(
                matches!(
                    parse_shard("sealsync-inventory-x", text),
                    Err(InventoryError::BadLine { line: 1, .. })
                ),
                "{text:?}"
            );
        }
    }
}
