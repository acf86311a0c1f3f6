//! meta.k8s.io/v1 Table and PartialObjectMetadata renderings, which kubectl and kube-rs
//! request through the Accept header.

use serde_json::{json, Value};

use super::resources::ResourceDef;

/// Whether the Accept header asks for a Table (kubectl get does).
pub fn wants_table(accept: &str) -> bool {
    first_as(accept).is_some_and(|a| a == "Table")
}

/// Whether the Accept header asks for PartialObjectMetadata(List) (kube-rs metadata API).
pub fn wants_partial(accept: &str) -> bool {
    first_as(accept).is_some_and(|a| a.starts_with("PartialObjectMetadata"))
}

/// The `as=` of the first media range that names one, if it is from meta.k8s.io.
fn first_as(accept: &str) -> Option<String> {
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        if let Some(a) = params.iter().find_map(|p| p.strip_prefix("as=")) {
            if params.contains(&"g=meta.k8s.io")
                && (params.contains(&"v=v1") || params.contains(&"v=v1beta1"))
            {
                return Some(a.to_string());
            }
        } else if params
            .first()
            .is_some_and(|mt| *mt == "application/json" || *mt == "*/*")
        {
            // A plain JSON range before any `as=` one: the client prefers plain objects.
            return None;
        }
    }
    None
}

/// The PartialObjectMetadata form of an object.
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Computes one cell from an object and the current Unix time.
type CellFn = Box<dyn Fn(&Value, i64) -> Value>;

pub(super) struct Col {
    name: String,
    type_: String,
    format: String,
    description: String,
    pub(super) priority: i64,
    cell: CellFn,
}

pub(super) fn col(
    name: &str,
    type_: &str,
    description: &str,
    cell: impl Fn(&Value, i64) -> Value + 'static,
) -> Col {
    Col {
        name: name.into(),
        type_: type_.into(),
        format: String::new(),
        description: description.into(),
        priority: 0,
        cell: Box::new(cell),
    }
}

pub(super) fn name_col() -> Col {
    let mut c = col(
        "Name",
        "string",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        |o, _| json!(o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()),
    );
    c.format = "name".into();
    c
}

pub(super) fn age_col() -> Col {
    col(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        |o, now| json!(age(o.pointer("/metadata/creationTimestamp"), now)),
    )
}

fn len_of(o: &Value, ptr: &str) -> usize {
    match o.pointer(ptr) {
        Some(Value::Object(m)) => m.len(),
        Some(Value::Array(a)) => a.len(),
        _ => 0,
    }
}

/// A field of an Event under its core name or its events.k8s.io name: kube-apiserver prints
/// both groups' Events with one printer.
fn event_field<'a>(o: &'a Value, core: &str, view: &str) -> Option<&'a Value> {
    o.get(core).or_else(|| o.get(view))
}

fn event_str(o: &Value, core: &str, view: &str) -> String {
    event_field(o, core, view)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// kube-apiserver's Event columns (`printEvent`): first and last seen fall back to the
/// event time, the count to 1 for a singleton event of the new API.
fn event_columns() -> Vec<Col> {
    fn first_seen(o: &Value, now: i64) -> String {
        match event_field(o, "firstTimestamp", "deprecatedFirstTimestamp") {
            Some(t) if !t.is_null() => age(Some(t), now),
            _ => age(o.get("eventTime"), now),
        }
    }
    fn last_seen(o: &Value, now: i64) -> String {
        if let Some(t) = o.pointer("/series/lastObservedTime") {
            return age(Some(t), now);
        }
        match event_field(o, "lastTimestamp", "deprecatedLastTimestamp") {
            Some(t) if !t.is_null() => age(Some(t), now),
            _ => first_seen(o, now),
        }
    }
    let object = |o: &Value, _: i64| {
        let involved = event_field(o, "involvedObject", "regarding");
        let kind = involved
            .and_then(|i| i.get("kind"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_lowercase();
        match involved.and_then(|i| i.get("name")).and_then(Value::as_str) {
            Some(name) if !name.is_empty() => json!(format!("{kind}/{name}")),
            _ => json!(kind),
        }
    };
    let wide = |mut c: Col| {
        c.priority = 1;
        c
    };
    let mut name = name_col();
    name.priority = 1;
    vec![
        col("Last Seen", "string", "", |o, now| json!(last_seen(o, now))),
        col("Type", "string", "", |o, _| {
            json!(event_str(o, "type", "type"))
        }),
        col("Reason", "string", "", |o, _| {
            json!(event_str(o, "reason", "reason"))
        }),
        col("Object", "string", "", object),
        wide(col("Subobject", "string", "", |o, _| {
            json!(event_field(o, "involvedObject", "regarding")
                .and_then(|i| i.get("fieldPath"))
                .and_then(Value::as_str)
                .unwrap_or_default())
        })),
        wide(col("Source", "string", "", |o, _| {
            let source = event_field(o, "source", "deprecatedSource");
            let part = |f: &str| {
                source
                    .and_then(|s| s.get(f))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let first = |a: String, b: String| if a.is_empty() { b } else { a };
            let component = first(
                part("component"),
                event_str(o, "reportingComponent", "reportingController"),
            );
            let instance = first(
                part("host"),
                event_str(o, "reportingInstance", "reportingInstance"),
            );
            json!(if instance.is_empty() {
                component
            } else {
                format!("{component}, {instance}")
            })
        })),
        col("Message", "string", "", |o, _| {
            json!(event_str(o, "message", "note").trim())
        }),
        wide(col("First Seen", "string", "", |o, now| {
            json!(first_seen(o, now))
        })),
        wide(col("Count", "string", "", |o, _| {
            let count = o
                .pointer("/series/count")
                .or_else(|| event_field(o, "count", "deprecatedCount"))
                .and_then(Value::as_i64)
                .unwrap_or(0);
            json!(if count == 0 { 1 } else { count })
        })),
        name,
    ]
}

fn columns(def: &ResourceDef) -> Vec<Col> {
    if def.plural == "events" && (def.group.is_empty() || def.group == "events.k8s.io") {
        return event_columns();
    }
    if let Some(cols) = super::printers::builtin(&def.group, &def.plural) {
        return cols;
    }
    let mut cols = vec![name_col()];
    match (def.group.as_str(), def.plural.as_str()) {
        ("", "configmaps") => cols.push(col("Data", "integer", "", |o, _| {
            json!(len_of(o, "/data") + len_of(o, "/binaryData"))
        })),
        ("", "secrets") => {
            cols.push(col("Type", "string", "", |o, _| {
                json!(o.get("type").and_then(Value::as_str).unwrap_or_default())
            }));
            cols.push(col("Data", "integer", "", |o, _| json!(len_of(o, "/data"))));
        }
        ("", "namespaces") => cols.push(col(
            "Status",
            "string",
            "The status of the namespace",
            |o, _| {
                json!(o
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or_default())
            },
        )),
        ("", "serviceaccounts") => cols.push(col("Secrets", "string", "", |o, _| {
            json!(len_of(o, "/secrets"))
        })),
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            cols.push(col("Created At", "date", "", |o, _| {
                json!(o
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or_default())
            }));
            return cols;
        }
        _ => {
            // kube-apiserver shows a CRD's own columns instead of the default Age column.
            let own_columns = !def.printer_columns.is_empty();
            for pc in &def.printer_columns {
                let path = pc.json_path.clone();
                let ty = pc.type_.clone();
                let mut c = col(&pc.name, &pc.type_, &pc.description, move |o, now| {
                    let v = simple_json_path(o, &path);
                    if ty == "date" {
                        return json!(age(v.as_ref(), now));
                    }
                    v.unwrap_or(Value::Null)
                });
                c.priority = pc.priority;
                cols.push(c);
            }
            if own_columns {
                return cols;
            }
        }
    }
    cols.push(age_col());
    cols
}

/// The JSONPath subset CRD printer columns use: `.a.b`, `.a[0]`, and filters such as
/// `.status.conditions[?(@.type=="Ready")].status`. Several results are joined with `,`, as
/// kube-apiserver prints them.
fn simple_json_path(o: &Value, path: &str) -> Option<Value> {
    let mut current: Vec<&Value> = vec![o];
    for seg in split_path(path.trim_start_matches('.')) {
        let (field, index) = match seg.split_once('[') {
            Some((field, rest)) => (field, Some(rest.trim_end_matches(']'))),
            None => (seg, None),
        };
        if !field.is_empty() {
            current = current.into_iter().filter_map(|v| v.get(field)).collect();
        }
        match index {
            None => {}
            Some(filter) if filter.starts_with("?(") => {
                let cond = filter.trim_start_matches("?(").trim_end_matches(')');
                let (lhs, rhs) = cond.split_once("==")?;
                let key = lhs.trim().trim_start_matches("@.");
                let want = rhs.trim().trim_matches(|c| c == '"' || c == '\'');
                current = current
                    .into_iter()
                    .filter_map(Value::as_array)
                    .flatten()
                    .filter(|item| item.get(key).and_then(Value::as_str) == Some(want))
                    .collect();
            }
            Some(i) => {
                let i: usize = i.parse().ok()?;
                current = current.into_iter().filter_map(|v| v.get(i)).collect();
            }
        }
    }
    match current.as_slice() {
        [] => None,
        [one] => Some((*one).clone()),
        many => Some(Value::String(
            many.iter()
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(","),
        )),
    }
}

/// Splits a path at the dots outside brackets: a filter may hold dots (`@.type`).
fn split_path(path: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in path.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '.' if depth == 0 => {
                if i > start {
                    out.push(&path[start..i]);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < path.len() {
        out.push(&path[start..]);
    }
    out
}

#[cfg(test)]
mod json_path_tests {
    use super::*;

    #[test]
    fn printer_column_paths_with_filters() {
        let o = json!({"status": {"conditions": [
            {"type": "Reconciling", "status": "True"},
            {"type": "Ready", "status": "False", "message": "a.b"}
        ]}, "spec": {"items": [1, 2]}});
        let get = |p| simple_json_path(&o, p);
        assert_eq!(
            get(".status.conditions[?(@.type==\"Ready\")].status"),
            Some(json!("False"))
        );
        assert_eq!(
            get(".status.conditions[?(@.type==\"Ready\")].message"),
            Some(json!("a.b"))
        );
        assert_eq!(get(".status.conditions[?(@.type==\"Gone\")].status"), None);
        assert_eq!(get(".spec.items[1]"), Some(json!(2)));
        assert_eq!(get(".status.conditions[*]"), None);
    }
}

/// kubectl's `duration.HumanDuration` of the time since `ts`.
pub(super) fn age(ts: Option<&Value>, now: i64) -> String {
    let Some(t) = ts
        .and_then(Value::as_str)
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
    else {
        return "<unknown>".into();
    };
    let secs = now - t.timestamp();
    human_duration(secs)
}

fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

/// A Table of `objects` (full objects, each with apiVersion/kind).
pub fn to_table(
    def: &ResourceDef,
    objects: &[Value],
    rv: &str,
    cont: Option<&str>,
    include: Option<&str>,
) -> Value {
    let cols = columns(def);
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| (c.cell)(o, now)).collect();
            let object = match include {
                Some("None") => Value::Null,
                Some("Object") => o.clone(),
                _ => partial(o),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    let mut meta = serde_json::Map::new();
    meta.insert("resourceVersion".into(), json!(rv));
    if let Some(c) = cont {
        meta.insert("continue".into(), json!(c));
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": Value::Object(meta),
        "columnDefinitions": cols.iter().map(|c| json!({
            "name": c.name,
            "type": c.type_,
            "format": c.format,
            "description": c.description,
            "priority": c.priority,
        })).collect::<Vec<_>>(),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_parsing() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
        assert!(wants_partial(
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"
        ));
    }

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(3600 * 5), "5h");
        assert_eq!(human_duration(86400 * 3), "3d");
    }
}
