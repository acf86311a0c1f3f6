//! A CRD version's `openAPIV3Schema` applied to its custom resources, as kube-apiserver does:
//! fields the schema does not declare are pruned (refused under strict field validation, and
//! refused by server-side apply), `default`s are set, and the result is validated (types,
//! `required`, `enum`, bounds, lengths, `pattern`, item counts), with kube-apiserver's wording.
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string` and
//! `x-kubernetes-embedded-resource` are honoured; CEL rules, `format` and ratcheting are not.

use serde_json::{Map, Value};

use super::error::Cause;

/// Metadata fields every object keeps, whatever its schema says.
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata"];

fn preserves_unknown(schema: &Value) -> bool {
    schema["x-kubernetes-preserve-unknown-fields"] == true
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// Removes the fields `schema` does not declare from `value`, returning their paths
/// (`spec.extra`, `bogus`) in the order kube-apiserver reports them (sorted).
pub fn prune(schema: &Value, value: &mut Value) -> Vec<String> {
    let mut unknown = Vec::new();
    prune_at(schema, value, "", true, &mut unknown);
    unknown.sort();
    unknown
}

fn prune_at(schema: &Value, value: &mut Value, path: &str, root: bool, unknown: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_all =
                preserves_unknown(schema) || schema["x-kubernetes-int-or-string"] == true;
            let embedded = root || schema["x-kubernetes-embedded-resource"] == true;
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                if embedded && ROOT_FIELDS.contains(&key.as_str()) {
                    continue;
                }
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match child_schema {
                    Some(s) => {
                        if let Some(child) = map.get_mut(&key) {
                            prune_at(s, child, &child_path, false, unknown);
                        }
                    }
                    None if keep_all
                        || (properties.is_none()
                            && additional.is_none()
                            && schema.get("type").is_none()) => {}
                    None => {
                        map.remove(&key);
                        unknown.push(child_path);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    prune_at(item_schema, item, &format!("{path}[{i}]"), false, unknown);
                }
            }
        }
        _ => {}
    }
}

/// The first field server-side apply refuses, worded as kube-apiserver's typed patch error
/// (`.spec.extra: field not declared in schema`).
pub fn first_undeclared(schema: &Value, applied: &Value) -> Option<String> {
    let mut copy = applied.clone();
    let mut unknown = Vec::new();
    prune_at(schema, &mut copy, "", true, &mut unknown);
    // The typed converter walks the object in its own order and stops at the first error.
    unknown
        .into_iter()
        .next()
        .map(|p| format!(".{p}: field not declared in schema"))
}

/// Sets the `default` of every absent property, recursively.
pub fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
                for (key, property) in properties {
                    if !map.contains_key(key) {
                        if let Some(default) = property.get("default") {
                            map.insert(key.clone(), default.clone());
                        }
                    }
                    if let Some(child) = map.get_mut(key) {
                        apply_defaults(property, child);
                    }
                }
            }
            if let Some(additional) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                let declared = schema.get("properties").and_then(Value::as_object);
                for (key, child) in map.iter_mut() {
                    if declared.is_none_or(|d| !d.contains_key(key)) {
                        apply_defaults(additional, child);
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                items
                    .iter_mut()
                    .for_each(|i| apply_defaults(item_schema, i));
            }
        }
        _ => {}
    }
}

fn cause(reason: &str, field: &str, message: String) -> Cause {
    Cause {
        reason: reason.to_owned(),
        message,
        field: field.to_owned(),
    }
}

/// How Go's `%v` prints a value in these messages: strings quoted, numbers bare.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "integer" => value.as_f64().is_some_and(|f| f.fract() == 0.0),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => true,
    }
}

/// Validates a custom resource (its `metadata` excepted) against the schema.
pub fn validate(schema: &Value, object: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let (Some(properties), Some(map)) = (
        schema.get("properties").and_then(Value::as_object),
        object.as_object(),
    ) {
        for name in required(schema) {
            if !map.contains_key(name) && !ROOT_FIELDS.contains(&name) {
                causes.push(cause(
                    "FieldValueRequired",
                    name,
                    "Required value".to_owned(),
                ));
            }
        }
        for (key, property) in properties {
            if ROOT_FIELDS.contains(&key.as_str()) {
                continue;
            }
            if let Some(child) = map.get(key) {
                validate_at(property, child, key, &mut causes);
            }
        }
    }
    causes
}

fn required(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn validate_at(schema: &Value, value: &Value, path: &str, causes: &mut Vec<Cause>) {
    if value.is_null() && schema["nullable"] == true {
        return;
    }
    let int_or_string = schema["x-kubernetes-int-or-string"] == true;
    if int_or_string {
        if !(value.is_string() || type_matches("integer", value)) {
            causes.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{t}\": {path} in body must be of type integer,string: \"{t}\"",
                    t = json_type(value)
                ),
            ));
            return;
        }
    } else if let Some(expected) = schema.get("type").and_then(Value::as_str) {
        if !type_matches(expected, value) {
            causes.push(cause(
                "FieldValueTypeInvalid",
                path,
                format!(
                    "Invalid value: \"{t}\": {path} in body must be of type {expected}: \"{t}\"",
                    t = json_type(value)
                ),
            ));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            let supported: Vec<String> = options
                .iter()
                .map(|o| match o {
                    Value::String(s) => format!("{s:?}"),
                    other => format!("{:?}", other.to_string()),
                })
                .collect();
            causes.push(cause(
                "FieldValueNotSupported",
                path,
                format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(value),
                    supported.join(", ")
                ),
            ));
        }
    }
    if let Some(number) = value.as_f64() {
        let exclusive = |key: &str| schema[key] == true;
        let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
        let number_text = shown(value);
        if let Some(min) = bound("minimum") {
            let (fails, words) = if exclusive("exclusiveMinimum") {
                (number <= min, "greater than")
            } else {
                (number < min, "greater than or equal to")
            };
            if fails {
                causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {number_text}: {path} in body should be {words} {}",
                        schema["minimum"]
                    ),
                ));
            }
        }
        if let Some(max) = bound("maximum") {
            let (fails, words) = if exclusive("exclusiveMaximum") {
                (number >= max, "less than")
            } else {
                (number > max, "less than or equal to")
            };
            if fails {
                causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {number_text}: {path} in body should be {words} {}",
                        schema["maximum"]
                    ),
                ));
            }
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if length > max {
                causes.push(cause(
                    "FieldValueTooLong",
                    path,
                    format!("Too long: may not be more than {max} bytes"),
                ));
            }
        }
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if length < min {
                causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should be at least {min} chars long",
                        shown(value)
                    ),
                ));
            }
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
            if regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(text)) {
                causes.push(cause(
                    "FieldValueInvalid",
                    path,
                    format!(
                        "Invalid value: {}: {path} in body should match '{pattern}'",
                        shown(value)
                    ),
                ));
            }
        }
    }
    match value {
        Value::Array(items) => {
            let count = items.len() as u64;
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
                if count > max {
                    causes.push(cause(
                        "FieldValueTooMany",
                        path,
                        format!("Too many: {count}: must have at most {max} items"),
                    ));
                }
            }
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
                if count < min {
                    causes.push(cause(
                        "FieldValueInvalid",
                        path,
                        format!(
                            "Invalid value: {count}: {path} in body should have at least {min} items"
                        ),
                    ));
                }
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    validate_at(item_schema, item, &format!("{path}[{i}]"), causes);
                }
            }
        }
        Value::Object(map) => object_at(schema, map, path, causes),
        _ => {}
    }
}

fn object_at(schema: &Value, map: &Map<String, Value>, path: &str, causes: &mut Vec<Cause>) {
    for name in required(schema) {
        if !map.contains_key(name) {
            causes.push(cause(
                "FieldValueRequired",
                &join(path, name),
                "Required value".to_owned(),
            ));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    let additional = schema.get("additionalProperties").filter(|a| a.is_object());
    for (key, child) in map {
        if let Some(property) = properties.and_then(|p| p.get(key)).or(additional) {
            validate_at(property, child, &join(path, key), causes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
            "size": {"type": "integer", "minimum": 1, "maximum": 10},
            "color": {"type": "string", "default": "blue", "enum": ["blue", "red"]},
            "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
            "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}})
    }

    fn messages(spec: Value) -> Vec<String> {
        let mut object = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec});
        apply_defaults(&schema(), &mut object);
        validate(&schema(), &object)
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn messages_read_like_kube_apiserver() {
        assert_eq!(
            messages(json!({"size": "big"})),
            ["spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""]
        );
        assert_eq!(
            messages(json!({"size": 2, "color": "green"})),
            ["spec.color: Unsupported value: \"green\": supported values: \"blue\", \"red\""]
        );
        assert_eq!(
            messages(json!({"size": 2, "name": "toolongname"})),
            ["spec.name: Too long: may not be more than 5 bytes"]
        );
        assert_eq!(
            messages(json!({"size": 2, "name": "AB"})),
            ["spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"]
        );
        assert_eq!(
            messages(json!({"size": 2, "tags": ["a", "b", "c"]})),
            ["spec.tags: Too many: 3: must have at most 2 items"]
        );
        assert_eq!(messages(json!({})), ["spec.size: Required value"]);
        assert_eq!(
            messages(json!({"size": 11})),
            ["spec.size: Invalid value: 11: spec.size in body should be less than or equal to 10"]
        );
    }

    #[test]
    fn unknown_fields_are_pruned_except_where_preserved() {
        let mut object = json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"},
            "bogus": 1, "spec": {"size": 2, "extra": 1, "free": {"anything": true}}});
        assert_eq!(prune(&schema(), &mut object), ["bogus", "spec.extra"]);
        assert_eq!(
            object["spec"],
            json!({"size": 2, "free": {"anything": true}})
        );
        assert_eq!(
            first_undeclared(
                &schema(),
                &json!({"spec": {"size": 2, "extra": 1, "more": 2}})
            )
            .as_deref(),
            Some(".spec.extra: field not declared in schema")
        );
    }
}
