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

struct Col {
    name: String,
    type_: String,
    format: String,
    description: String,
    priority: i64,
    cell: CellFn,
}

fn col(
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

fn name_col() -> Col {
    let mut c = col(
        "Name",
        "string",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        |o, _| json!(o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default()),
    );
    c.format = "name".into();
    c
}

fn age_col() -> Col {
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

fn i64_at(o: &Value, ptr: &str) -> i64 {
    o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0)
}

fn columns(def: &ResourceDef) -> Vec<Col> {
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
        ("apps", "deployments") => {
            cols.push(col("Ready", "string", "", |o, _| {
                json!(format!(
                    "{}/{}",
                    i64_at(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }));
            cols.push(col("Up-to-date", "integer", "", |o, _| {
                json!(i64_at(o, "/status/updatedReplicas"))
            }));
            cols.push(col("Available", "integer", "", |o, _| {
                json!(i64_at(o, "/status/availableReplicas"))
            }));
        }
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
        }
    }
    cols.push(age_col());
    cols
}

fn simple_json_path(o: &Value, path: &str) -> Option<Value> {
    let mut cur = o;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        if let Some((field, idx)) = seg.split_once('[') {
            cur = cur.get(field)?;
            let idx: usize = idx.trim_end_matches(']').parse().ok()?;
            cur = cur.get(idx)?;
        } else {
            cur = cur.get(seg)?;
        }
    }
    Some(cur.clone())
}

/// kubectl's `duration.HumanDuration` of the time since `ts`.
fn age(ts: Option<&Value>, now: i64) -> String {
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
