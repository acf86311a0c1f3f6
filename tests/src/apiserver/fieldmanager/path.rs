//! Path elements (`f:`, `k:`, `v:`, `i:`), value ordering as structured-merge-diff orders it, and field sets.

use super::*;

/// One step of a field path, ordered as structured-merge-diff orders them.
#[derive(Debug, Clone)]
pub(crate) enum Pe {
    /// A field of an object (`f:name`).
    Field(String),
    /// An item of an associative list, by its key fields sorted by name (`k:{...}`).
    Key(Vec<(String, Value)>),
    /// An item of a set (`v:...`).
    Value(Value),
    /// An item of an atomic list by position (`i:3`); only read from stored entries.
    Index(usize),
}

impl Pe {
    pub(super) fn rank(&self) -> u8 {
        match self {
            Pe::Field(_) => 0,
            Pe::Key(_) => 1,
            Pe::Value(_) => 2,
            Pe::Index(_) => 3,
        }
    }

    /// The FieldsV1 key: `f:name`, `k:{"name":"x"}`, `v:"a"`, `i:0`.
    pub(super) fn serialize(&self) -> String {
        match self {
            Pe::Field(name) => format!("f:{name}"),
            Pe::Key(fields) => {
                let inner: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}:{}", go_json(&Value::String(k.clone())), go_json(v)))
                    .collect();
                format!("k:{{{}}}", inner.join(","))
            }
            Pe::Value(v) => format!("v:{}", go_json(v)),
            Pe::Index(i) => format!("i:{i}"),
        }
    }

    /// Parses a FieldsV1 key; None for unknown kinds, which upstream drops too.
    pub(super) fn parse(key: &str) -> Option<Pe> {
        let (kind, rest) = key.split_at_checked(2)?;
        match kind {
            "f:" => Some(Pe::Field(rest.to_string())),
            "v:" => serde_json::from_str(rest).ok().map(Pe::Value),
            "i:" => rest.parse().ok().map(Pe::Index),
            "k:" => {
                let Ok(Value::Object(m)) = serde_json::from_str::<Value>(rest) else {
                    return None;
                };
                // serde_json's map is sorted by key, which is the order keys must have.
                Some(Pe::Key(m.into_iter().collect()))
            }
            _ => None,
        }
    }

    /// The human form used in conflict messages: `.name`, `[name="x"]`, `[=v]`, `[3]`.
    pub(super) fn display(&self) -> String {
        match self {
            Pe::Field(name) => format!(".{name}"),
            Pe::Key(fields) => {
                let parts: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{k}={}", value_to_string(v)))
                    .collect();
                format!("[{}]", parts.join(","))
            }
            Pe::Value(v) => format!("[={}]", value_to_string(v)),
            Pe::Index(i) => format!("[{i}]"),
        }
    }
}

impl Ord for Pe {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pe::Field(a), Pe::Field(b)) => a.cmp(b),
            (Pe::Key(a), Pe::Key(b)) => cmp_field_lists(a, b),
            (Pe::Value(a), Pe::Value(b)) => cmp_values(a, b),
            (Pe::Index(a), Pe::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for Pe {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pe {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pe {}

pub(super) fn path_string(path: &[Pe]) -> String {
    path.iter().map(Pe::display).collect()
}

/// structured-merge-diff's `value.ToString`: strings quoted, numbers and bools bare.
pub(super) fn value_to_string(v: &Value) -> String {
    match v {
        Value::String(_) => go_json(v),
        Value::Null => "null".into(),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(value_to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", value_to_string(v)))
            .collect(),
        other => other.to_string(),
    }
}

/// JSON as Go's encoder writes it: like serde_json, but `<`, `>`, `&`, U+2028 and U+2029 are
/// escaped. FieldsV1 keys and the last-applied annotation are byte-compared by clients.
pub(crate) fn go_json(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    if !s.contains(['<', '>', '&', '\u{2028}', '\u{2029}']) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Number(_) => 0,
        Value::String(_) => 1,
        Value::Bool(_) => 2,
        Value::Array(_) => 3,
        Value::Object(_) => 4,
        Value::Null => 5,
    }
}

/// structured-merge-diff's total order on values (numbers compare numerically).
pub(crate) fn cmp_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            }
        },
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (i, j) in x.iter().zip(y) {
                let c = cmp_values(i, j);
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((ka, va), (kb, vb)) in x.iter().zip(y) {
                let c = ka.cmp(kb).then_with(|| cmp_values(va, vb));
                if c != Ordering::Equal {
                    return c;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Null, Value::Null) => Ordering::Equal,
        _ => value_rank(a).cmp(&value_rank(b)),
    }
}

pub(super) fn cmp_field_lists(a: &[(String, Value)], b: &[(String, Value)]) -> Ordering {
    for ((ka, va), (kb, vb)) in a.iter().zip(b) {
        let c = ka.cmp(kb).then_with(|| cmp_values(va, vb));
        if c != Ordering::Equal {
            return c;
        }
    }
    a.len().cmp(&b.len())
}

/// Value equality where `1` and `1.0` are equal, as structured-merge-diff compares.
pub(crate) fn deep_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => cmp_values(a, b) == Ordering::Equal,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(i, j)| deep_eq(i, j))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_eq(v, w)))
        }
        _ => a == b,
    }
}

/// A set of field paths stored as a trie. `members` are owned paths ending here; `children`
/// hold longer paths. Children are never empty.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    pub(super) members: BTreeSet<Pe>,
    pub(super) children: BTreeMap<Pe, FieldSet>,
}

impl FieldSet {
    pub(super) fn is_empty(&self) -> bool {
        self.members.is_empty() && self.children.is_empty()
    }

    pub(super) fn insert(&mut self, path: &[Pe]) {
        match path {
            [] => {}
            [pe] => {
                self.members.insert(pe.clone());
            }
            [pe, rest @ ..] => self.children.entry(pe.clone()).or_default().insert(rest),
        }
    }

    pub(super) fn has(&self, path: &[Pe]) -> bool {
        match path {
            [] => false,
            [pe] => self.members.contains(pe),
            [pe, rest @ ..] => self.children.get(pe).is_some_and(|c| c.has(rest)),
        }
    }

    pub(super) fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.members.extend(other.members.iter().cloned());
        for (pe, c) in &other.children {
            let merged = match out.children.get(pe) {
                Some(mine) => mine.union(c),
                None => c.clone(),
            };
            out.children.insert(pe.clone(), merged);
        }
        out
    }

    pub(super) fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.intersection(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if let Some(o) = other.children.get(pe) {
                let i = c.intersection(o);
                if !i.is_empty() {
                    out.children.insert(pe.clone(), i);
                }
            }
        }
        out
    }

    pub(super) fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.difference(&other.members).cloned().collect(),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            let d = match other.children.get(pe) {
                Some(o) => c.difference(o),
                None => c.clone(),
            };
            if !d.is_empty() {
                out.children.insert(pe.clone(), d);
            }
        }
        out
    }

    /// `EnsureNamedFieldsAreMembers`: object fields that have owned descendants count as owned
    /// themselves, so pruning can drop a whole struct nobody owns any more.
    pub(super) fn with_named_fields_as_members(&self) -> FieldSet {
        let mut out = FieldSet {
            members: self.members.clone(),
            children: BTreeMap::new(),
        };
        for (pe, c) in &self.children {
            if matches!(pe, Pe::Field(_)) {
                out.members.insert(pe.clone());
            }
            out.children
                .insert(pe.clone(), c.with_named_fields_as_members());
        }
        out
    }

    /// All paths in structured-merge-diff's iteration order: members, then children.
    pub(super) fn paths(&self) -> Vec<Vec<Pe>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    pub(super) fn collect_paths(&self, prefix: &mut Vec<Pe>, out: &mut Vec<Vec<Pe>>) {
        for pe in &self.members {
            let mut p = prefix.clone();
            p.push(pe.clone());
            out.push(p);
        }
        for (pe, c) in &self.children {
            prefix.push(pe.clone());
            c.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The FieldsV1 encoding (`{"f:spec":{"f:replicas":{}}}`).
    pub(super) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        for pe in &self.members {
            if !self.children.contains_key(pe) {
                m.insert(pe.serialize(), Value::Object(Map::new()));
            }
        }
        for (pe, c) in &self.children {
            let mut inner = match c.to_fields_v1() {
                Value::Object(inner) => inner,
                _ => Map::new(),
            };
            if self.members.contains(pe) {
                inner.insert(".".into(), Value::Object(Map::new()));
            }
            m.insert(pe.serialize(), Value::Object(inner));
        }
        Value::Object(m)
    }

    pub(super) fn from_fields_v1(v: &Value) -> FieldSet {
        let mut out = FieldSet::default();
        let Some(m) = v.as_object() else {
            return out;
        };
        for (key, child) in m {
            if key == "." {
                continue;
            }
            let Some(pe) = Pe::parse(key) else {
                continue;
            };
            let sub = FieldSet::from_fields_v1(child);
            let self_member = child.get(".").is_some();
            if sub.is_empty() || self_member {
                out.members.insert(pe.clone());
            }
            if !sub.is_empty() {
                out.children.insert(pe, sub);
            }
        }
        out
    }
}

/// The apiserver's "strip meta" set: never owned by anybody.
pub(super) fn strip_set() -> &'static FieldSet {
    static STRIP: OnceLock<FieldSet> = OnceLock::new();
    STRIP.get_or_init(|| {
        let mut s = FieldSet::default();
        let f = |n: &str| Pe::Field(n.to_string());
        s.insert(&[f("apiVersion")]);
        s.insert(&[f("kind")]);
        s.insert(&[f("metadata")]);
        for name in [
            "name",
            "namespace",
            "creationTimestamp",
            "selfLink",
            "uid",
            "clusterName",
            "generation",
            "managedFields",
            "resourceVersion",
        ] {
            s.insert(&[f("metadata"), f(name)]);
        }
        s
    })
}
