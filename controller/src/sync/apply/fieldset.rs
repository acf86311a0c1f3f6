//! The fields a field manager owns, cut out of a live object: what that manager last applied.
//!
//! Server-side apply records, per manager, the set of fields it owns (`managedFields`,
//! `FieldsV1`). Projecting the live object onto the controller's own set gives back the
//! configuration it applied last, which is what a failed revision re-applies to undo its
//! writes (client-go's `ExtractInto` does the same).
//!
//! `FieldsV1` keys: `f:NAME` a field of a map, `k:{...}` the item of an associative list with
//! these key fields, `v:VALUE` an item of a set, `i:N` an item by index, `.` the node itself.
//! An empty set `{}` owns the whole value below it.

use serde_json::{Map, Value as Json};

/// The parts of `live` that `fields` (a `FieldsV1` tree) names.
pub(super) fn extract(live: &Json, fields: &Json) -> Json {
    project(live, fields).unwrap_or(Json::Object(Map::new()))
}

fn project(value: &Json, set: &Json) -> Option<Json> {
    let Some(children) = set.as_object() else {
        return Some(value.clone());
    };
    if children.is_empty() {
        return Some(value.clone());
    }
    match value {
        Json::Object(map) => {
            let mut out = Map::new();
            for (key, child) in children {
                let Some(field) = key.strip_prefix("f:") else {
                    continue;
                };
                if let Some(v) = map.get(field) {
                    if let Some(p) = project(v, child) {
                        out.insert(field.to_owned(), p);
                    }
                }
            }
            Some(Json::Object(out))
        }
        Json::Array(items) => {
            let mut out = Vec::new();
            for (index, item) in items.iter().enumerate() {
                if let Some(p) = project_item(index, item, children) {
                    out.push(p);
                }
            }
            Some(Json::Array(out))
        }
        other => Some(other.clone()),
    }
}

/// One list item, when one of the set's `k:`, `v:` or `i:` keys names it.
fn project_item(index: usize, item: &Json, children: &Map<String, Json>) -> Option<Json> {
    for (key, child) in children {
        if let Some(keys) = key.strip_prefix("k:") {
            let Ok(Json::Object(keys)) = serde_json::from_str::<Json>(keys) else {
                continue;
            };
            let matches = keys.iter().all(|(k, v)| item.get(k) == Some(v));
            if matches {
                let mut projected = project(item, child)?;
                // The key fields name the item; they belong to it even when unlisted.
                if let Json::Object(map) = &mut projected {
                    for (k, v) in keys {
                        map.entry(k).or_insert(v);
                    }
                }
                return Some(projected);
            }
        } else if let Some(value) = key.strip_prefix("v:") {
            if serde_json::from_str::<Json>(value).ok().as_ref() == Some(item) {
                return Some(item.clone());
            }
        } else if let Some(i) = key.strip_prefix("i:") {
            if i.parse::<usize>().ok() == Some(index) {
                return project(item, child);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn projects_maps_keyed_lists_and_sets() {
        let live = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "other": "x"}, "resourceVersion": "5"},
            "spec": {
                "replicas": 2,
                "template": {"spec": {
                    "containers": [
                        {"name": "app", "image": "web:1", "imagePullPolicy": "IfNotPresent"},
                        {"name": "sidecar", "image": "s:1"}
                    ],
                    "finalizers": ["a", "b"]
                }}
            },
            "status": {"replicas": 2}
        });
        let fields = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {"f:spec": {
                    "f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:image": {}}},
                    "f:finalizers": {"v:\"b\"": {}}
                }}
            }
        });
        assert_eq!(
            extract(&live, &fields),
            json!({
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "replicas": 2,
                    "template": {"spec": {
                        "containers": [{"name": "app", "image": "web:1"}],
                        "finalizers": ["b"]
                    }}
                }
            })
        );
    }

    #[test]
    fn an_empty_set_owns_the_whole_value() {
        let live = json!({"data": {"a": "1", "b": "2"}});
        assert_eq!(extract(&live, &json!({"f:data": {}})), live);
        assert_eq!(
            extract(&live, &json!({"f:data": {".": {}, "f:a": {}}})),
            json!({"data": {"a": "1"}})
        );
        assert_eq!(extract(&live, &json!({"f:missing": {}})), json!({}));
        // "." alone owns the map itself, not what others put in it.
        assert_eq!(
            extract(&live, &json!({"f:data": {".": {}}})),
            json!({"data": {}})
        );
    }
}
