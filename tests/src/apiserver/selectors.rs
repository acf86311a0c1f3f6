//! Label and field selectors, parsed the way kube-apiserver parses them.

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq)]
enum LabelReq {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Gt(String, i64),
    Lt(String, i64),
}

/// A parsed label selector; empty matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector {
    reqs: Vec<LabelReq>,
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn parse_err(sel: &str, why: &str) -> String {
    format!("unable to parse requirement: {why} (selector {sel:?})")
}

/// Splits on commas that are not inside parentheses.
fn split_top(sel: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in sel.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// The integer operand of `>` and `<`.
fn parse_int(sel: &str, v: &str) -> Result<i64, String> {
    v.trim().parse().map_err(|_| {
        parse_err(
            sel,
            "for 'Gt', 'Lt' operators, the value must be an integer",
        )
    })
}

fn parse_set(sel: &str, rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| parse_err(sel, "found '', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h,i`.
    pub fn parse(sel: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for part in split_top(sel) {
            let part = part.trim();
            if part.is_empty() {
                return Err(parse_err(sel, "found '', expected: identifier"));
            }
            if let Some(key) = part.strip_prefix('!') {
                let key = key.trim();
                if key.is_empty() || !key.chars().all(is_key_char) {
                    return Err(parse_err(sel, "invalid label key"));
                }
                reqs.push(LabelReq::NotExists(key.to_string()));
                continue;
            }
            let key_end = part.find(|c: char| !is_key_char(c)).unwrap_or(part.len());
            let key = part[..key_end].to_string();
            if key.is_empty() {
                return Err(parse_err(sel, "found '', expected: identifier"));
            }
            let rest = part[key_end..].trim_start();
            let req = if rest.is_empty() {
                LabelReq::Exists(key)
            } else if let Some(v) = rest.strip_prefix("==") {
                LabelReq::Equals(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix("!=") {
                LabelReq::NotEquals(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix('=') {
                LabelReq::Equals(key, v.trim().to_string())
            } else if let Some(v) = rest.strip_prefix('>') {
                LabelReq::Gt(key, parse_int(sel, v)?)
            } else if let Some(v) = rest.strip_prefix('<') {
                LabelReq::Lt(key, parse_int(sel, v)?)
            } else if let Some(v) = rest.strip_prefix("notin") {
                LabelReq::NotIn(key, parse_set(sel, v)?)
            } else if let Some(v) = rest.strip_prefix("in") {
                LabelReq::In(key, parse_set(sel, v)?)
            } else {
                return Err(parse_err(
                    sel,
                    &format!("found '{rest}', expected: in, notin, =, ==, !=, gt, lt"),
                ));
            };
            if let LabelReq::Equals(_, v) | LabelReq::NotEquals(_, v) = &req {
                if !v
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                {
                    return Err(parse_err(sel, &format!("invalid label value: {v:?}")));
                }
            }
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// Whether the object's labels satisfy every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
        self.reqs.iter().all(|r| match r {
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
            LabelReq::Equals(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEquals(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|x| !vs.iter().any(|v| v == x)),
            LabelReq::Gt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            LabelReq::Lt(k, n) => get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }
}

/// A parsed field selector (only `=`, `==` and `!=`, as kube-apiserver supports).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    reqs: Vec<(String, bool, String)>,
}

/// Field labels every resource supports.
const COMMON_FIELDS: &[&str] = &["metadata.name", "metadata.namespace"];

fn extra_fields(group: &str, plural: &str) -> &'static [&'static str] {
    match (group, plural) {
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("events.k8s.io", "events") => &[
            "regarding.kind",
            "regarding.name",
            "regarding.namespace",
            "reason",
            "type",
        ],
        ("batch", "jobs") => &["status.successful"],
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.podIPs",
            "status.nominatedNodeName",
        ],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "replicationcontrollers") => &["status.replicas"],
        ("", "services") => &["spec.clusterIP", "spec.type"],
        _ => &[],
    }
}

/// Whether kube-apiserver registers field label conversions of its own for the kind; the
/// others get the generic conversion, which words its refusal differently.
fn has_own_field_labels(group: &str, plural: &str) -> bool {
    matches!(
        (group, plural),
        (
            "",
            "secrets"
                | "namespaces"
                | "events"
                | "pods"
                | "nodes"
                | "replicationcontrollers"
                | "services"
        ) | ("events.k8s.io", "events")
            | ("batch", "jobs")
    )
}

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`, refusing fields the resource does not
    /// index (as kube-apiserver does: `field label not supported: …`).
    pub fn parse(sel: &str, group: &str, plural: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        if sel.trim().is_empty() {
            return Ok(Self { reqs });
        }
        for part in sel.split(',') {
            let part = part.trim();
            let (field, neg, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(format!(
                    "invalid selector: '{sel}'; can't understand '{part}'"
                ));
            };
            let field = field.trim();
            if !COMMON_FIELDS.contains(&field) && !extra_fields(group, plural).contains(&field) {
                if has_own_field_labels(group, plural) {
                    return Err(format!("field label not supported: {field}"));
                }
                return Err(format!(
                    "{field:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                ));
            }
            // events.k8s.io Events are stored in the core form, so their fields are matched
            // under the core names.
            let stored_field = match field.strip_prefix("regarding.") {
                Some(rest) if super::eventsview::is_view(group, plural) => {
                    format!("involvedObject.{rest}")
                }
                _ => field.to_string(),
            };
            reqs.push((stored_field, neg, value.trim().to_string()));
        }
        Ok(Self { reqs })
    }

    /// Whether the object satisfies every requirement.
    pub fn matches(&self, obj: &Value) -> bool {
        self.reqs.iter().all(|(field, neg, value)| {
            let mut cur = obj;
            let mut found = true;
            for seg in field.split('.') {
                match cur.get(seg) {
                    Some(v) => cur = v,
                    None => {
                        found = false;
                        break;
                    }
                }
            }
            let actual = if found {
                match cur {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                }
            } else {
                String::new()
            };
            (actual == *value) != *neg
        })
    }
}

/// A `metav1.LabelSelector` object (`matchLabels`, `matchExpressions`) in the string form
/// kube-apiserver prints (`LabelSelectorAsSelector(...).String()`), as the `Scale` status
/// carries it: requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
/// A missing or empty selector gives "".
pub fn label_selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            let v = v.as_str().unwrap_or_default();
            reqs.push((k.clone(), format!("{k}={v}")));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let mut values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|vs| vs.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            values.sort_unstable();
            let text = match e.get("operator").and_then(Value::as_str) {
                Some("In") => format!("{key} in ({})", values.join(",")),
                Some("NotIn") => format!("{key} notin ({})", values.join(",")),
                Some("Exists") => key.to_string(),
                Some("DoesNotExist") => format!("!{key}"),
                _ => continue,
            };
            reqs.push((key.to_string(), text));
        }
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selector_forms() {
        let obj = json!({"metadata": {"labels": {"app": "web", "tier": "front", "n": "5"}}});
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app in (web,api)", true),
            ("app notin (web,api)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("missing notin (x)", true),
            ("app=web,tier in (front)", true),
            ("n>4", true),
            ("n<4", false),
            ("", true),
        ] {
            let s = LabelSelector::parse(sel).expect(sel);
            assert_eq!(s.matches(&obj), want, "{sel}");
        }
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a=b,").is_err());
    }

    #[test]
    fn field_selector_forms() {
        let obj = json!({"metadata": {"name": "x", "namespace": "ns"}, "type": "Opaque"});
        let s = FieldSelector::parse("metadata.name=x,metadata.namespace!=other", "", "secrets")
            .expect("parse");
        assert!(s.matches(&obj));
        let s = FieldSelector::parse("type==Opaque", "", "secrets").expect("parse");
        assert!(s.matches(&obj));
        assert!(FieldSelector::parse("spec.foo=1", "", "configmaps").is_err());
    }

    #[test]
    fn label_selector_objects_print_like_kube_apiserver() {
        let sel = json!({
            "matchLabels": {"tier": "front", "app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "zz", "operator": "DoesNotExist"},
                {"key": "b", "operator": "Exists"},
            ],
        });
        assert_eq!(
            label_selector_string(Some(&sel)),
            "app=web,b,env in (dev,prod),tier=front,!zz"
        );
        assert_eq!(label_selector_string(None), "");
        assert_eq!(label_selector_string(Some(&json!({}))), "");
    }
}
