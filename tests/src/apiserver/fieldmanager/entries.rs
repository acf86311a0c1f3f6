//! `metadata.managedFields` entries: decoding, encoding, and recording ownership changes.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Operation {
    Apply,
    Update,
}

impl Operation {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// Who an entry belongs to. Appliers are one entry whatever apiVersion they used; updaters are
/// one entry per apiVersion (kube-apiserver's manager identifier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) manager: String,
    pub(super) operation: Operation,
    /// Empty for Apply.
    pub(super) api_version: String,
    pub(super) subresource: String,
}

impl Identity {
    pub(super) fn new(
        manager: &str,
        operation: Operation,
        api_version: &str,
        subresource: &str,
    ) -> Self {
        Identity {
            manager: manager.to_string(),
            operation,
            api_version: if operation == Operation::Apply {
                String::new()
            } else {
                api_version.to_string()
            },
            subresource: subresource.to_string(),
        }
    }

    /// The JSON manager identifier kube-apiserver sorts conflicts by.
    pub(super) fn encoded(&self) -> String {
        let mut s = format!(
            "{{\"manager\":{},\"operation\":\"{}\"",
            go_json(&Value::String(self.manager.clone())),
            self.operation.as_str()
        );
        if !self.api_version.is_empty() {
            s.push_str(&format!(
                ",\"apiVersion\":{}",
                go_json(&Value::String(self.api_version.clone()))
            ));
        }
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                ",\"subresource\":{}",
                go_json(&Value::String(self.subresource.clone()))
            ));
        }
        s.push('}');
        s
    }

    /// `printManager` of kube-apiserver's conflict errors.
    pub(super) fn printed(&self) -> String {
        let mut s = go_json(&Value::String(self.manager.clone()));
        if !self.subresource.is_empty() {
            s.push_str(&format!(
                " with subresource {}",
                go_json(&Value::String(self.subresource.clone()))
            ));
        }
        if self.operation == Operation::Update {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) id: Identity,
    /// The version the fields are expressed in.
    pub(super) api_version: String,
    pub(super) time: Option<String>,
    pub(super) set: FieldSet,
}

pub(super) fn time_seconds(t: Option<&str>) -> i64 {
    t.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.timestamp())
        .unwrap_or(0)
}

/// Reads `metadata.managedFields`. Entries that cannot be read are skipped; entries of the same
/// manager identity are merged.
pub(super) fn decode_entries(obj: &Value) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    let Some(list) = obj
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
    else {
        return out;
    };
    for e in list {
        let s = |k: &str| e.get(k).and_then(Value::as_str);
        let operation = match s("operation") {
            Some("Apply") => Operation::Apply,
            Some("Update") => Operation::Update,
            _ => continue,
        };
        if s("fieldsType").is_some_and(|t| t != "FieldsV1") {
            continue;
        }
        let api_version = s("apiVersion").unwrap_or_default();
        let id = Identity::new(
            s("manager").unwrap_or_default(),
            operation,
            api_version,
            s("subresource").unwrap_or_default(),
        );
        let set = e
            .get("fieldsV1")
            .map(FieldSet::from_fields_v1)
            .unwrap_or_default();
        match out.iter_mut().find(|x| x.id == id) {
            Some(existing) => existing.set = existing.set.union(&set),
            None => out.push(Entry {
                id,
                api_version: api_version.to_string(),
                time: s("time").map(str::to_string),
                set,
            }),
        }
    }
    out
}

/// Writes entries sorted as kube-apiserver sorts them: Apply before Update, then by time,
/// manager, apiVersion and subresource. An empty list removes the field.
pub(super) fn encode_entries(obj: &mut Value, entries: &[Entry]) {
    let mut sorted: Vec<&Entry> = entries.iter().filter(|e| !e.set.is_empty()).collect();
    sorted.sort_by(|a, b| {
        a.id.operation
            .cmp(&b.id.operation)
            .then_with(|| time_seconds(a.time.as_deref()).cmp(&time_seconds(b.time.as_deref())))
            .then_with(|| a.id.manager.cmp(&b.id.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.id.subresource.cmp(&b.id.subresource))
    });
    let list: Vec<Value> = sorted
        .iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), Value::String(e.id.manager.clone()));
            m.insert(
                "operation".into(),
                Value::String(e.id.operation.as_str().into()),
            );
            m.insert("apiVersion".into(), Value::String(e.api_version.clone()));
            if let Some(t) = &e.time {
                m.insert("time".into(), Value::String(t.clone()));
            }
            m.insert("fieldsType".into(), Value::String("FieldsV1".into()));
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !e.id.subresource.is_empty() {
                m.insert(
                    "subresource".into(),
                    Value::String(e.id.subresource.clone()),
                );
            }
            Value::Object(m)
        })
        .collect();
    let Some(root) = obj.as_object_mut() else {
        return;
    };
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Some(meta) = meta.as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// A copy without `metadata.managedFields`, which is never part of the compared content.
pub(super) fn without_managed_fields(v: &Value) -> Value {
    let mut v = v.clone();
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    v
}

/// Metadata the server maintains: the merged result keeps the live values.
pub(super) const BOOKKEEPING: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

pub(super) fn restore_bookkeeping(result: &mut Value, live: Option<&Value>) {
    let Some(meta) = result.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    for key in BOOKKEEPING {
        match live
            .and_then(|l| l.get("metadata"))
            .and_then(|m| m.get(*key))
        {
            Some(v) => {
                meta.insert((*key).to_string(), v.clone());
            }
            None => {
                meta.remove(*key);
            }
        }
    }
}

/// Ownership moves for a change from `old` to `new` made by `me` (structured-merge-diff's
/// `update`): other managers' fields that were added or modified are conflicts; with `force`
/// they (and every removed field) leave the other managers' sets.
pub(super) fn update_ownership(
    entries: &mut Vec<Entry>,
    me: &Identity,
    cmp: &Comparison,
    force: bool,
) -> Result<(), Vec<FieldConflict>> {
    let changed = cmp.modified.union(&cmp.added);
    let mut conflicts: Vec<(usize, FieldSet)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e.id == *me {
            continue;
        }
        let c = e.set.intersection(&changed);
        if !c.is_empty() {
            conflicts.push((i, c));
        }
    }
    if !force && !conflicts.is_empty() {
        // Grouped by manager identity in kube-apiserver's order, paths in set order.
        let mut by_manager: Vec<(String, &Identity, Vec<Vec<Pe>>)> = conflicts
            .iter()
            .map(|(i, c)| {
                let id = &entries[*i].id;
                (id.encoded(), id, c.paths())
            })
            .collect();
        by_manager.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::new();
        for (_, id, paths) in by_manager {
            for p in paths {
                out.push(FieldConflict {
                    manager: id.manager.clone(),
                    field: path_string(&p),
                    printed_manager: id.printed(),
                });
            }
        }
        return Err(out);
    }
    for (i, c) in conflicts {
        entries[i].set = entries[i].set.difference(&c);
    }
    if !cmp.removed.is_empty() {
        for e in entries.iter_mut().filter(|e| e.id != *me) {
            e.set = e.set.difference(&cmp.removed);
        }
    }
    entries.retain(|e| !e.set.is_empty());
    Ok(())
}

/// An Update by `manager` from `old` to `new` on the entries (the apiserver's Update chain
/// below the cap: changes go to the manager, its time moves only when it took fields).
pub(super) fn record_changes(
    entries: &mut Vec<Entry>,
    node: &Node,
    old: &Value,
    new: &Value,
    me: &Identity,
    now: &str,
    ignore: Ignore,
) {
    let mut cmp = Comparison::default();
    compare(node, Some(old), Some(new), &mut Vec::new(), &mut cmp);
    let cmp = cmp.filtered(ignore);
    let taken = cmp.modified.union(&cmp.added).difference(strip_set());
    // Never fails: force is set.
    let _ = update_ownership(entries, me, &cmp, true);
    for e in entries.iter_mut().filter(|e| e.id == *me) {
        e.set = e.set.difference(&cmp.removed);
    }
    entries.retain(|e| !e.set.is_empty());
    if taken.is_empty() {
        return;
    }
    match entries.iter_mut().find(|e| e.id == *me) {
        Some(e) => {
            e.set = e.set.union(&taken);
            e.time = Some(now.to_string());
        }
        None => entries.push(Entry {
            id: me.clone(),
            // An Update identity carries the version the fields are written in.
            api_version: me.api_version.clone(),
            time: Some(now.to_string()),
            set: taken,
        }),
    }
}

/// Merges the oldest Update entries into `ancient-changes` buckets (one per apiVersion) while
/// there are more than ten.
pub(super) fn cap_update_managers(entries: &mut Vec<Entry>) {
    let mut updaters: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e.id.operation == Operation::Update)
        .map(|(i, _)| i)
        .collect();
    if updaters.len() <= MAX_UPDATE_MANAGERS {
        return;
    }
    updaters.sort_by(|&a, &b| {
        let (ea, eb) = (&entries[a], &entries[b]);
        time_seconds(ea.time.as_deref())
            .cmp(&time_seconds(eb.time.as_deref()))
            .then_with(|| ea.id.encoded().cmp(&eb.id.encoded()))
    });
    let mut remaining = updaters.len();
    let mut first_of_version: BTreeMap<String, usize> = BTreeMap::new();
    let mut drop: BTreeSet<usize> = BTreeSet::new();
    for &i in &updaters {
        if remaining <= MAX_UPDATE_MANAGERS {
            break;
        }
        let version = entries[i].api_version.clone();
        match first_of_version.get(&version) {
            Some(&first) => {
                let moved = entries[i].set.clone();
                let time = entries[i].time.clone();
                let bucket = &mut entries[first];
                bucket.id = Identity::new(ANCIENT_CHANGES, Operation::Update, &version, "");
                bucket.set = bucket.set.union(&moved);
                bucket.time = time;
                drop.insert(i);
                remaining -= 1;
            }
            None => {
                first_of_version.insert(version, i);
            }
        }
    }
    let mut idx = 0;
    entries.retain(|_| {
        let keep = !drop.contains(&idx);
        idx += 1;
        keep
    });
}
