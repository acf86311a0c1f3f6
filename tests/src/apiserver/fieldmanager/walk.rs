//! Typed walks over a value and its schema: field sets, merge, compare and removal.

use super::*;

/// The path element of one list item, or why the item does not fit the list type.
pub(super) fn item_pe(list: &ListNode, item: &Value) -> Result<Pe, String> {
    match &list.ssa {
        ListType::Map(keys) => {
            let Value::Object(m) = item else {
                return Err("associative list with keys may not have non-map elements".into());
            };
            let mut fields = Vec::with_capacity(keys.len());
            for (name, default) in keys {
                match (m.get(name), default) {
                    (Some(v), _) => fields.push((name.clone(), v.clone())),
                    (None, Some(d)) => fields.push((name.clone(), d.clone())),
                    (None, None) => {
                        return Err(format!(
                            "associative list with keys has an element that omits key field {name:?} (and doesn't have default value)"
                        ))
                    }
                }
            }
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Ok(Pe::Key(fields))
        }
        ListType::Set => match item {
            Value::Object(_) => {
                Err("associative list without keys has an element that's a map type".into())
            }
            Value::Array(_) => Err("not supported: associative list with lists as elements".into()),
            Value::Null => {
                Err("associative list without keys has an element that's an explicit null".into())
            }
            v => Ok(Pe::Value(v.clone())),
        },
        ListType::Atomic => Err("atomic list".into()),
    }
}

/// How a value is walked under a schema node.
pub(super) enum Shape<'a> {
    Map(&'a Map<String, Value>),
    /// A granular list with the path element of each item (no duplicates).
    List(&'a [Value], Vec<Pe>),
    Leaf,
}

pub(super) fn shape<'a>(node: &Node, v: &'a Value) -> Shape<'a> {
    match v {
        Value::Object(m) if !matches!(node, Node::Atomic) => Shape::Map(m),
        Value::Array(items) => {
            let Some(list) = node.list() else {
                return Shape::Leaf;
            };
            if list.ssa == ListType::Atomic {
                return Shape::Leaf;
            }
            let mut pes = Vec::with_capacity(items.len());
            let mut seen = BTreeSet::new();
            for item in items {
                match item_pe(list, item) {
                    Ok(pe) if seen.insert(pe.clone()) => pes.push(pe),
                    // Live objects may hold duplicates or malformed items (upstream allows
                    // duplicates there); such a list is handled as one atomic value.
                    _ => return Shape::Leaf,
                }
            }
            Shape::List(items, pes)
        }
        _ => Shape::Leaf,
    }
}

pub(super) fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

/// Rejects applied configurations that upstream cannot type: duplicate keys, missing keys.
pub(super) fn validate_applied(node: &Node, v: &Value, path: &mut Vec<Pe>) -> Result<(), String> {
    match v {
        Value::Object(m) if !matches!(node, Node::Atomic) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                validate_applied(node.field(k), child, path)?;
                path.pop();
            }
            Ok(())
        }
        Value::Array(items) => {
            let Some(list) = node.list().filter(|l| l.ssa != ListType::Atomic) else {
                return Ok(());
            };
            let mut seen = BTreeSet::new();
            for (i, item) in items.iter().enumerate() {
                let pe = item_pe(list, item)
                    .map_err(|e| format!("{}: element {i}: {e}", path_string(path)))?;
                if !seen.insert(pe.clone()) {
                    return Err(format!(
                        "{}: duplicate entries for key {}",
                        path_string(path),
                        pe.display()
                    ));
                }
                path.push(pe);
                validate_applied(&list.item, item, path)?;
                path.pop();
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// `ToFieldSet`: every leaf, every list item, and every field whose value is null or `{}`.
pub(super) fn to_field_set(node: &Node, v: &Value, path: &mut Vec<Pe>, set: &mut FieldSet) {
    match shape(node, v) {
        Shape::Map(m) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                to_field_set(node.field(k), child, path, set);
                if child.is_null() || child.as_object().is_some_and(Map::is_empty) {
                    set.insert(path);
                }
                path.pop();
            }
        }
        Shape::List(items, pes) => {
            let item_node = node.item();
            for (item, pe) in items.iter().zip(pes) {
                path.push(pe);
                to_field_set(item_node, item, path, set);
                set.insert(path);
                path.pop();
            }
        }
        Shape::Leaf => set.insert(path),
    }
}

/// `Merge`: the applied configuration wins on leaves; objects and granular lists merge.
pub(super) fn merge_values(node: &Node, lhs: &Value, rhs: &Value) -> Value {
    if is_empty_container(lhs) && is_empty_container(rhs) {
        return rhs.clone();
    }
    match (shape(node, lhs), shape(node, rhs)) {
        (Shape::Map(l), Shape::Map(r)) => {
            let mut out = Map::new();
            for (k, lv) in l {
                let merged = match r.get(k) {
                    Some(rv) => merge_values(node.field(k), lv, rv),
                    None => lv.clone(),
                };
                out.insert(k.clone(), merged);
            }
            for (k, rv) in r {
                if !l.contains_key(k) {
                    out.insert(k.clone(), rv.clone());
                }
            }
            Value::Object(out)
        }
        (Shape::List(l, lpes), Shape::List(r, rpes)) => {
            Value::Array(merge_lists(node.item(), l, &lpes, r, &rpes))
        }
        _ => rhs.clone(),
    }
}

/// structured-merge-diff's associative list merge, including its item order: live items keep
/// their place, applied items follow the applied order, new items go after their predecessor.
pub(super) fn merge_lists(
    item: &Node,
    lhs: &[Value],
    lpes: &[Pe],
    rhs: &[Value],
    rpes: &[Pe],
) -> Vec<Value> {
    let lidx: BTreeMap<&Pe, usize> = lpes.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let ridx: BTreeMap<&Pe, usize> = rpes.iter().enumerate().map(|(i, p)| (p, i)).collect();
    let shared: Vec<&Pe> = rpes.iter().filter(|p| lidx.contains_key(p)).collect();
    let mut next_shared = 0usize;
    let mut merged_rhs: BTreeSet<&Pe> = BTreeSet::new();
    let mut out = Vec::with_capacity(lhs.len().max(rhs.len()));
    let (mut li, mut ri) = (0usize, 0usize);
    while li < lpes.len() || ri < rpes.len() {
        if li < lpes.len() && ri < rpes.len() {
            let pe = &lpes[li];
            if *pe == rpes[ri] {
                merged_rhs.insert(pe);
                out.push(merge_values(item, &lhs[li], &rhs[ri]));
                li += 1;
                ri += 1;
                next_shared += 1;
                continue;
            }
            if ridx.contains_key(pe) && shared.get(next_shared).is_some_and(|s| *s != pe) {
                // A shared item, but not the one the applied order wants next.
                li += 1;
                continue;
            }
        }
        if li < lpes.len() {
            let pe = &lpes[li];
            if !ridx.contains_key(pe) {
                out.push(lhs[li].clone());
                li += 1;
                continue;
            } else if merged_rhs.contains(pe) {
                li += 1;
            }
        }
        if ri < rpes.len() {
            let pe = &rpes[ri];
            merged_rhs.insert(pe);
            out.push(match lidx.get(pe) {
                Some(&i) => merge_values(item, &lhs[i], &rhs[ri]),
                None => rhs[ri].clone(),
            });
            ri += 1;
            if shared.get(next_shared).is_some_and(|s| *s == pe) {
                next_shared += 1;
            }
        }
    }
    out
}

/// The result of comparing two objects; every path is in at most one set.
#[derive(Debug, Default)]
pub(super) struct Comparison {
    pub(super) added: FieldSet,
    pub(super) modified: FieldSet,
    pub(super) removed: FieldSet,
}

impl Comparison {
    pub(super) fn filtered(self, ignore: Ignore) -> Comparison {
        Comparison {
            added: ignore.filter(&self.added),
            modified: ignore.filter(&self.modified),
            removed: ignore.filter(&self.removed),
        }
    }
}

/// Inserts `path` and every path below it (a subtree that appeared or disappeared).
pub(super) fn mark_all(node: &Node, v: &Value, path: &mut Vec<Pe>, set: &mut FieldSet) {
    match shape(node, v) {
        Shape::Map(m) => {
            for (k, child) in m {
                path.push(Pe::Field(k.clone()));
                mark_all(node.field(k), child, path, set);
                path.pop();
            }
        }
        Shape::List(items, pes) => {
            for (item, pe) in items.iter().zip(pes) {
                path.push(pe);
                mark_all(node.item(), item, path, set);
                path.pop();
            }
        }
        Shape::Leaf => {}
    }
    set.insert(path);
}

pub(super) fn compare(
    node: &Node,
    lhs: Option<&Value>,
    rhs: Option<&Value>,
    path: &mut Vec<Pe>,
    c: &mut Comparison,
) {
    match (lhs, rhs) {
        (None, None) => {}
        (None, Some(r)) => mark_all(node, r, path, &mut c.added),
        (Some(l), None) => mark_all(node, l, path, &mut c.removed),
        (Some(l), Some(r)) => {
            if is_empty_container(l) && is_empty_container(r) {
                if !deep_eq(l, r) {
                    c.modified.insert(path);
                }
                return;
            }
            match (shape(node, l), shape(node, r)) {
                (Shape::Map(lm), Shape::Map(rm)) => {
                    let keys: BTreeSet<&String> = lm.keys().chain(rm.keys()).collect();
                    for k in keys {
                        path.push(Pe::Field(k.clone()));
                        compare(node.field(k), lm.get(k), rm.get(k), path, c);
                        path.pop();
                    }
                }
                (Shape::List(litems, lpes), Shape::List(ritems, rpes)) => {
                    let lmap: BTreeMap<&Pe, &Value> = lpes.iter().zip(litems).collect();
                    let rmap: BTreeMap<&Pe, &Value> = rpes.iter().zip(ritems).collect();
                    let all: BTreeSet<&Pe> = lpes.iter().chain(rpes.iter()).collect();
                    for pe in all {
                        path.push(pe.clone());
                        compare(
                            node.item(),
                            lmap.get(pe).copied(),
                            rmap.get(pe).copied(),
                            path,
                            c,
                        );
                        path.pop();
                    }
                }
                (Shape::Leaf, Shape::Leaf) => {
                    if !deep_eq(l, r) {
                        c.modified.insert(path);
                    }
                }
                _ => {
                    // The value changed shape (e.g. object → string): the old content is gone,
                    // the new one appeared, and the field itself was modified.
                    let mut old = FieldSet::default();
                    mark_all(node, l, path, &mut old);
                    let mut new = FieldSet::default();
                    mark_all(node, r, path, &mut new);
                    let mut own = FieldSet::default();
                    own.insert(path);
                    c.removed = c.removed.union(&old.difference(&own));
                    c.added = c.added.union(&new.difference(&own));
                    c.modified.insert(path);
                }
            }
        }
    }
}

/// `RemoveItems`: drops the values at member paths. A container left empty disappears, as the
/// built-in types of Kubernetes 1.32 drop the resulting null.
pub(super) fn remove_items(node: &Node, v: &Value, set: &FieldSet) -> Option<Value> {
    if set.is_empty() {
        return Some(v.clone());
    }
    match shape(node, v) {
        Shape::Map(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let pe = Pe::Field(k.clone());
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) => {
                        if let Some(kept) = remove_items(node.field(k), child, sub) {
                            out.insert(k.clone(), kept);
                        }
                    }
                    None => {
                        out.insert(k.clone(), child.clone());
                    }
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        Shape::List(items, pes) => {
            let mut out = Vec::new();
            for (item, pe) in items.iter().zip(pes) {
                if set.members.contains(&pe) {
                    continue;
                }
                match set.children.get(&pe) {
                    Some(sub) => {
                        if let Some(kept) = remove_items(node.item(), item, sub) {
                            out.push(kept);
                        }
                    }
                    None => out.push(item.clone()),
                }
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Shape::Leaf => Some(v.clone()),
    }
}

pub(super) fn field_set_of(node: &Node, v: &Value) -> FieldSet {
    let mut set = FieldSet::default();
    to_field_set(node, v, &mut Vec::new(), &mut set);
    set
}

pub(super) fn remove_root(node: &Node, v: &Value, set: &FieldSet) -> Value {
    remove_items(node, v, set).unwrap_or_else(|| Value::Object(Map::new()))
}

/// `prune`: removes what `last` (this manager's previous apply) owned, unless some manager
/// (including this apply) owns it now or it was never this manager's.
pub(super) fn prune(node: &Node, merged: &Value, owned_now: &FieldSet, last: &FieldSet) -> Value {
    if last.is_empty() {
        return merged.clone();
    }
    let last_e = last.with_named_fields_as_members();
    let pruned = remove_root(node, merged, &last_e);
    let merged_e = field_set_of(node, merged).with_named_fields_as_members();
    // Add back everything someone owns.
    let pruned_e = field_set_of(node, &pruned).with_named_fields_as_members();
    let owned_e = owned_now.with_named_fields_as_members();
    let pruned = remove_root(
        node,
        merged,
        &merged_e.difference(&pruned_e.union(&owned_e)),
    );
    // Add back what was never this manager's (unowned fields set by nobody's apply).
    let pruned_e = field_set_of(node, &pruned).with_named_fields_as_members();
    remove_root(
        node,
        merged,
        &merged_e.difference(&pruned_e).intersection(&last_e),
    )
}

/// Drops null object fields: the built-in types drop them when decoding, and the store should
/// not keep `field: null` an applied configuration used to give a field up.
pub(super) fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, child| !child.is_null());
            for child in m.values_mut() {
                drop_nulls(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}
