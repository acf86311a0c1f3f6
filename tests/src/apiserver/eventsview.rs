//! `events.k8s.io/v1` Events are another view of the core `v1` Events, as in kube-apiserver,
//! where both are served from one storage: an Event written through either group is read
//! through both. Objects are stored in the core form; the view renames fields on the way in
//! and out (kube-apiserver's `pkg/apis/events/v1` conversion).

use serde_json::{Map, Value};

/// The group and resource of the view.
const VIEW: (&str, &str) = ("events.k8s.io", "events");

/// (core field, events.k8s.io field) pairs that differ only in name.
const RENAMES: &[(&str, &str)] = &[
    ("involvedObject", "regarding"),
    ("message", "note"),
    ("source", "deprecatedSource"),
    ("firstTimestamp", "deprecatedFirstTimestamp"),
    ("lastTimestamp", "deprecatedLastTimestamp"),
    ("count", "deprecatedCount"),
    ("reportingComponent", "reportingController"),
];

/// Whether (group, plural) is the events.k8s.io view.
pub fn is_view(group: &str, plural: &str) -> bool {
    (group, plural) == VIEW
}

/// The (group, plural) objects of a resource are stored under.
pub fn storage_resource<'a>(group: &'a str, plural: &'a str) -> (&'a str, &'a str) {
    if is_view(group, plural) {
        ("", "events")
    } else {
        (group, plural)
    }
}

fn rename(object: &mut Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = object.remove(from) {
        object.insert(to.to_string(), v);
    }
}

/// A stored (core) Event as the events.k8s.io view serves it.
pub fn to_view(stored: &Value) -> Value {
    let mut out = stored.clone();
    if let Some(object) = out.as_object_mut() {
        for (core, view) in RENAMES {
            rename(object, core, view);
        }
        object.insert("apiVersion".into(), "events.k8s.io/v1".into());
        object.insert("kind".into(), "Event".into());
    }
    out
}

/// An events.k8s.io Event in the core form it is stored in.
pub fn to_storage(view: Value) -> Value {
    let mut out = view;
    if let Some(object) = out.as_object_mut() {
        for (core, view) in RENAMES {
            rename(object, view, core);
        }
        object.insert("apiVersion".into(), "v1".into());
        object.insert("kind".into(), "Event".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_view_round_trips() {
        let core = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": "e", "namespace": "n"},
            "involvedObject": {"kind": "Pod", "name": "p"},
            "reason": "Started", "message": "hello", "count": 2,
            "source": {"component": "kubelet"}, "type": "Normal",
            "reportingComponent": "kubelet", "reportingInstance": "node-1",
        });
        let view = to_view(&core);
        assert_eq!(view["apiVersion"], "events.k8s.io/v1");
        assert_eq!(view["note"], "hello");
        assert_eq!(view["regarding"]["name"], "p");
        assert_eq!(view["deprecatedCount"], 2);
        assert_eq!(view["reportingController"], "kubelet");
        assert!(view.get("message").is_none());
        assert_eq!(to_storage(view), core);
    }
}
