//! Bounded reading of multi-document YAML or JSON manifests, shared by the CLI and the
//! controller so that both accept exactly the same inputs.
//!
//! The input is untrusted: it may come from any commit of any repository. Every cost is
//! bounded before it is paid: the parser (serde-saphyr) stops at a budget of events, nodes,
//! nesting depth, anchors and aliases while it scans, and the tree built from its events is
//! counted again after aliases are expanded, so that neither a "billion laughs" file nor a
//! file of deep `[[[[` nesting nor a million keys can take more than a bounded time and
//! memory. Errors name the document, line and column and which limit was hit; they never
//! quote the text at fault, which could be a secret value.

use std::cell::Cell;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_yaml::{Mapping, Value};
use zeroize::Zeroize;

use sealsync_crypto::is_object_name;

use super::error::ManifestError as Error;

type Result<T, E = Error> = std::result::Result<T, E>;

/// Bounds on what one manifest stream (one file, or stdin) may hold.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// The largest input accepted, in bytes.
    pub max_bytes: usize,
    /// The most documents accepted (after `List` items are expanded).
    pub max_documents: usize,
    /// The deepest nesting of sequences and mappings.
    pub max_depth: usize,
    /// The most nodes (scalars, sequences, mappings) in the whole stream, counted after
    /// aliases are expanded.
    pub max_nodes: usize,
    /// The most bytes of scalar text in the whole stream, counted after aliases are expanded.
    pub max_scalar_bytes: usize,
    /// The most alias references (`*name`) in the stream.
    pub max_aliases: usize,
    /// The most entries one mapping may hold, counted as they are read, so that a mapping of
    /// a million keys is refused at its limit instead of after it is built.
    pub max_mapping_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 16 * 1024 * 1024,
            max_documents: 10_000,
            max_depth: 100,
            max_nodes: 500_000,
            max_scalar_bytes: 32 * 1024 * 1024,
            max_aliases: 10_000,
            max_mapping_entries: 500_000,
        }
    }
}

impl Limits {
    /// Limits for Secret manifests: no mapping may hold more entries than a Secret may hold
    /// values, so `data` or `stringData` with a million keys stops at the value limit, while
    /// it is read.
    pub fn secrets() -> Self {
        Limits {
            max_mapping_entries: sealsync_crypto::MAX_VALUES,
            ..Limits::default()
        }
    }

    /// Limits sized for small inputs (configuration files, fuzzing).
    pub fn small(max_bytes: usize, max_documents: usize) -> Self {
        Limits {
            max_bytes,
            max_documents,
            max_nodes: max_bytes.clamp(1024, Limits::default().max_nodes),
            max_scalar_bytes: max_bytes.saturating_mul(2).max(1024),
            ..Limits::default()
        }
    }
}

/// One document of a manifest stream.
#[derive(Debug)]
pub struct Document {
    /// 1-based position in the stream, counting `List` items as documents.
    pub index: usize,
    /// The parsed document.
    pub value: Value,
    /// When the document is an item of a `*List`, the list's kind and the item's index.
    pub list_item: Option<(String, usize)>,
}

impl Document {
    /// `kind` of the document, if it has one.
    pub fn kind(&self) -> Option<&str> {
        self.value.get("kind").and_then(Value::as_str)
    }

    /// `metadata.name`, if any.
    pub fn name(&self) -> Option<&str> {
        self.value.get("metadata")?.get("name")?.as_str()
    }

    /// `metadata.namespace`, if any.
    pub fn namespace(&self) -> Option<&str> {
        self.value.get("metadata")?.get("namespace")?.as_str()
    }

    /// `document N (Kind namespace/name)`, for messages. Only names that are valid
    /// Kubernetes names are shown: anything else could be a value pasted in the wrong place.
    pub fn describe(&self) -> String {
        let kind = self
            .kind()
            .filter(|k| is_identifier(k, 63))
            .unwrap_or("no kind");
        let name = self.name().filter(|n| is_object_name(n));
        let namespace = self.namespace().filter(|n| is_object_name(n));
        let item = match &self.list_item {
            Some((list, i)) if is_identifier(list, 63) => format!(", {list} item {i}"),
            Some((_, i)) => format!(", list item {i}"),
            None => String::new(),
        };
        match (namespace, name) {
            (Some(ns), Some(name)) => format!("document {}{item} ({kind} {ns}/{name})", self.index),
            (None, Some(name)) => format!("document {}{item} ({kind} {name})", self.index),
            _ => format!("document {}{item} ({kind})", self.index),
        }
    }
}

impl Drop for Document {
    fn drop(&mut self) {
        // Plain Secrets pass through here; wipe their strings rather than leave them in freed
        // memory.
        wipe_value(&mut self.value);
    }
}

fn is_identifier(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// Splits `text` into its documents. Empty documents are skipped; a `kind: List` or any other
/// `*List` kind with `items` (`SecretList`, as `kubectl get secrets -o yaml` prints) is
/// expanded into its items, as kubectl does. A leading UTF-8 byte-order mark is ignored.
pub fn read_documents(text: &str, limits: Limits) -> Result<Vec<Document>> {
    if text.len() > limits.max_bytes {
        return Err(Error::LimitExceeded {
            what: "the manifest input".to_owned(),
            limit: format!("{} bytes", limits.max_bytes),
        });
    }
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let values = parse_stream(text, &limits)?;
    let mut documents = Vec::new();
    for (stream_index, value) in values.into_iter().enumerate() {
        let stream_index = stream_index + 1;
        let mut items = Vec::new();
        flatten_lists(value, None, stream_index, 0, &mut items)?;
        for (mut item, list_item) in items {
            if item.is_null() {
                continue;
            }
            if !item.is_mapping() {
                wipe_value(&mut item);
                return Err(Error::malformed(
                    format!("document {stream_index}"),
                    "expected a Kubernetes object (a mapping with apiVersion and kind)",
                ));
            }
            if documents.len() == limits.max_documents {
                wipe_value(&mut item);
                return Err(Error::LimitExceeded {
                    what: "the number of documents".to_owned(),
                    limit: limits.max_documents.to_string(),
                });
            }
            documents.push(Document {
                index: documents.len() + 1,
                value: item,
                list_item,
            });
        }
    }
    Ok(documents)
}

/// `kind: List`, `SecretList`, `ConfigMapList`…: kubectl applies each item, and flattens a
/// List inside a List the same way.
fn flatten_lists(
    mut value: Value,
    list_item: Option<(String, usize)>,
    stream_index: usize,
    depth: usize,
    out: &mut Vec<(Value, Option<(String, usize)>)>,
) -> Result<()> {
    let kind = value.get("kind").and_then(Value::as_str).unwrap_or("");
    let is_list = kind.ends_with("List") && value.get("items").is_some();
    if !is_list {
        out.push((value, list_item));
        return Ok(());
    }
    let kind = kind.to_owned();
    let items = value
        .as_mapping_mut()
        .and_then(|m| m.remove("items"))
        .unwrap_or(Value::Null);
    wipe_value(&mut value);
    let items = match items {
        Value::Sequence(items) => items,
        Value::Null => Vec::new(),
        mut other => {
            wipe_value(&mut other);
            return Err(Error::malformed(
                format!("document {stream_index}: items"),
                "a list's items must be a sequence",
            ));
        }
    };
    if depth >= 8 {
        return Err(Error::LimitExceeded {
            what: format!("the nesting of lists in document {stream_index}"),
            limit: "8".to_owned(),
        });
    }
    for (i, item) in items.into_iter().enumerate() {
        flatten_lists(
            item,
            Some((kind.clone(), i + 1)),
            stream_index,
            depth + 1,
            out,
        )?;
    }
    Ok(())
}

/// Parses every document of the stream within `limits`.
fn parse_stream(text: &str, limits: &Limits) -> Result<Vec<Value>> {
    let mut options = serde_saphyr::Options::default();
    let mut budget = serde_saphyr::Budget::default();
    // The parser's own budget stops a hostile file while it is scanned; the node and byte
    // counts in `BoundedValue` then bound what alias expansion builds.
    budget.max_reader_input_bytes = Some(limits.max_bytes);
    budget.max_depth = limits.max_depth;
    budget.flow_nesting_limit = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_events = limits.max_nodes.saturating_mul(2).saturating_add(1024);
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_aliases;
    budget.max_documents = limits.max_documents.saturating_add(1);
    budget.max_total_scalar_bytes = limits.max_scalar_bytes;
    budget.max_merge_keys = limits.max_aliases;
    budget.max_recorded_anchor_events = limits.max_nodes / 4;
    budget.max_recorded_anchor_bytes = limits.max_scalar_bytes;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = limits.max_nodes;
    options.alias_limits.max_replay_stack_depth = limits.max_depth;
    // Our own writer (serde_yaml) speaks YAML 1.2: `yes`, `on` and `1_000` are strings there
    // and it does not quote them, so read them as strings too.
    options.strict_booleans = true;
    options.underscored_numbers_as_strings = true;
    options.legacy_octal_numbers = false;
    // Two `password:` keys in one Secret would silently keep one value: refuse, as
    // kube-apiserver's strict decoding does.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::Error;
    // A merge key (`<<`) lets a later key silently override a merged one, and YAML 1.2 has
    // none: refuse it rather than pick a winner. Unknown tags are refused, not dropped.
    options.merge_keys = serde_saphyr::MergeKeyPolicy::Error;
    options.reject_unsupported_tags = true;
    // `474e920802953518` (a random hex id) overflows to infinity: keep it, and let the
    // spelling check below turn it back into the string it was written as.
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::PassThrough;

    BUDGET.with(|b| {
        b.set(Remaining {
            nodes: limits.max_nodes,
            scalar_bytes: limits.max_scalar_bytes,
            max_depth: limits.max_depth,
            depth: 0,
            max_entries: limits.max_mapping_entries,
            breach: None,
        })
    });
    SOURCE.with(|s| *s.borrow_mut() = zeroize::Zeroizing::new(text.to_owned()));
    let parsed: std::result::Result<Vec<BoundedValue>, serde_saphyr::Error> =
        serde_saphyr::from_str_multiple_with_options(text, options);
    SOURCE.with(|s| *s.borrow_mut() = zeroize::Zeroizing::new(String::new()));
    let remaining = BUDGET.with(Cell::take);
    match parsed {
        Ok(values) => Ok(values.into_iter().map(|v| v.0).collect()),
        Err(err) => Err(match remaining.breach {
            Some(breach) => breach.into_error(limits),
            None => yaml_error(&err, limits),
        }),
    }
}

/// What is left of the budget while one stream is built into values. Held in a thread-local
/// because serde's `Deserialize` has no other channel for state; `parse_stream` sets it before
/// parsing and takes it after, on the same thread.
#[derive(Default, Clone, Copy)]
struct Remaining {
    nodes: usize,
    scalar_bytes: usize,
    max_depth: usize,
    depth: usize,
    max_entries: usize,
    breach: Option<Breach>,
}

#[derive(Clone, Copy)]
enum Breach {
    Nodes,
    ScalarBytes,
    Depth,
    Entries,
}

impl Breach {
    fn into_error(self, limits: &Limits) -> Error {
        let (what, limit) = match self {
            Breach::Nodes => (
                "the number of YAML nodes (after expanding aliases)",
                limits.max_nodes.to_string(),
            ),
            Breach::ScalarBytes => (
                "the total size of YAML scalars (after expanding aliases)",
                format!("{} bytes", limits.max_scalar_bytes),
            ),
            Breach::Depth => ("the YAML nesting depth", limits.max_depth.to_string()),
            Breach::Entries => (
                "the number of entries in one mapping (a Secret holds at most this many values)",
                limits.max_mapping_entries.to_string(),
            ),
        };
        Error::LimitExceeded {
            what: what.to_owned(),
            limit,
        }
    }
}

thread_local! {
    static BUDGET: Cell<Remaining> = Cell::new(Remaining::default());
    /// The text being parsed, for the spelling of scalars (a wiped copy: it may hold values).
    static SOURCE: std::cell::RefCell<zeroize::Zeroizing<String>> =
        std::cell::RefCell::new(zeroize::Zeroizing::new(String::new()));
}

const BREACH_MESSAGE: &str = "sealsync manifest budget exceeded";

fn charge<E: de::Error>(nodes: usize, bytes: usize) -> std::result::Result<(), E> {
    BUDGET.with(|b| {
        let mut r = b.get();
        if r.nodes < nodes {
            r.breach = Some(Breach::Nodes);
            b.set(r);
            return Err(E::custom(BREACH_MESSAGE));
        }
        if r.scalar_bytes < bytes {
            r.breach = Some(Breach::ScalarBytes);
            b.set(r);
            return Err(E::custom(BREACH_MESSAGE));
        }
        r.nodes -= nodes;
        r.scalar_bytes -= bytes;
        b.set(r);
        Ok(())
    })
}

fn enter<E: de::Error>() -> std::result::Result<(), E> {
    BUDGET.with(|b| {
        let mut r = b.get();
        if r.depth >= r.max_depth {
            r.breach = Some(Breach::Depth);
            b.set(r);
            return Err(E::custom(BREACH_MESSAGE));
        }
        r.depth += 1;
        b.set(r);
        Ok(())
    })
}

/// Counts one more entry of a mapping that holds `entries` already.
fn add_entry<E: de::Error>(entries: usize) -> std::result::Result<(), E> {
    BUDGET.with(|b| {
        let mut r = b.get();
        if entries >= r.max_entries {
            r.breach = Some(Breach::Entries);
            b.set(r);
            return Err(E::custom(BREACH_MESSAGE));
        }
        Ok(())
    })
}

fn leave() {
    BUDGET.with(|b| {
        let mut r = b.get();
        r.depth = r.depth.saturating_sub(1);
        b.set(r);
    });
}

/// A `serde_yaml::Value` built under the budget.
struct BoundedValue(Value);

impl<'de> de::Deserialize<'de> for BoundedValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(BoundedVisitor).map(BoundedValue)
    }
}

struct BoundedSeed;

impl<'de> DeserializeSeed<'de> for BoundedSeed {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        // With its place in the source, so that a scalar read as a number or boolean can be
        // checked against its spelling.
        let spanned = <serde_saphyr::Spanned<BoundedValue> as de::Deserialize>::deserialize(d)?;
        let value = spanned.value.0;
        if !matches!(value, Value::Number(_) | Value::Bool(_)) {
            return Ok(value);
        }
        let span = spanned.defined.span();
        let (Some(start), Some(len)) = (span.byte_offset(), span.byte_len()) else {
            return Ok(value);
        };
        Ok(SOURCE.with(|source| {
            let source = source.borrow();
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            let end = start.saturating_add(usize::try_from(len).unwrap_or(0));
            match source.get(start..end) {
                Some(text) => core_schema_scalar(text, value),
                None => value,
            }
        }))
    }
}

/// The value of a plain scalar under the YAML 1.2 core schema, which is what sealsync's writer
/// (serde_yaml) assumes when it leaves a string unquoted. The parser is more lenient (`0X1F`
/// is a number to it); such spellings are strings here, so that everything written reads back
/// as written.
fn core_schema_scalar(text: &str, parsed: Value) -> Value {
    let mut spelling = text.trim();
    // An anchor before the scalar (`&name 0x1f`) is not part of it.
    if spelling.starts_with('&') {
        spelling = spelling
            .split_once(char::is_whitespace)
            .map(|(_, rest)| rest.trim_start())
            .unwrap_or(spelling);
    }
    let overflowed = parsed.as_f64().is_some_and(|f| !f.is_finite())
        && !spelling.to_ascii_lowercase().contains("inf")
        && !spelling.to_ascii_lowercase().contains("nan");
    // An integer too large for 64 bits would lose digits as a float: keep its spelling.
    let unsigned = spelling.strip_prefix(['-', '+']).unwrap_or(spelling);
    let huge_int =
        parsed.is_f64() && !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit());
    if spelling.starts_with(['"', '\''])
        || (is_core_schema_spelling(spelling) && !overflowed && !huge_int)
    {
        parsed
    } else {
        Value::String(spelling.to_owned())
    }
}

fn is_core_schema_spelling(s: &str) -> bool {
    const BOOLS: [&str; 6] = ["true", "True", "TRUE", "false", "False", "FALSE"];
    const SPECIAL: [&str; 12] = [
        ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
        ".NaN", ".NAN",
    ];
    if BOOLS.contains(&s) || SPECIAL.contains(&s) {
        return true;
    }
    let digits = |t: &str, radix: u32| !t.is_empty() && t.chars().all(|c| c.is_digit(radix));
    if let Some(hex) = s.strip_prefix("0x") {
        return digits(hex, 16);
    }
    if let Some(oct) = s.strip_prefix("0o") {
        return digits(oct, 8);
    }
    // [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )?
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac, 10),
        Some((int, frac)) => digits(int, 10) && (frac.is_empty() || digits(frac, 10)),
        None => digits(mantissa, 10),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => digits(e.strip_prefix(['-', '+']).unwrap_or(e), 10),
    };
    mantissa_ok && exponent_ok
}

struct BoundedVisitor;

impl<'de> Visitor<'de> for BoundedVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        match i64::try_from(v) {
            Ok(v) => Ok(Value::Number(v.into())),
            Err(_) => Ok(Value::Number((v as f64).into())),
        }
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        match u64::try_from(v) {
            Ok(v) => Ok(Value::Number(v.into())),
            Err(_) => Ok(Value::Number((v as f64).into())),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Value, E> {
        charge(1, v.len())?;
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> std::result::Result<Value, E> {
        charge(1, v.len())?;
        Ok(Value::String(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> std::result::Result<Value, E> {
        // `!!binary`: kept as its base64 text would be lost; refuse rather than guess.
        let _ = v;
        Err(E::custom("binary scalars (!!binary) are not supported"))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> std::result::Result<Value, E> {
        charge(1, 0)?;
        Ok(Value::Null)
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> std::result::Result<Value, D::Error> {
        d.deserialize_any(BoundedVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        charge(1, 0)?;
        enter()?;
        let mut items = Vec::new();
        let result = loop {
            match seq.next_element_seed(BoundedSeed) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        leave();
        match result {
            Ok(()) => Ok(Value::Sequence(items)),
            Err(e) => {
                items.iter_mut().for_each(wipe_value);
                Err(e)
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        charge(1, 0)?;
        enter()?;
        let mut out = Mapping::new();
        let result = loop {
            let mut key = match map.next_key_seed(BoundedSeed) {
                Ok(Some(key)) => key,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if let Err(e) = add_entry(out.len()) {
                wipe_value(&mut key);
                break Err(e);
            }
            let value = match map.next_value_seed(BoundedSeed) {
                Ok(value) => value,
                Err(e) => break Err(e),
            };
            if out.contains_key(&key) {
                // The parser refuses textual duplicates; this catches keys that only become
                // equal once parsed (`1` and `0x1`), which would otherwise drop a value.
                let mut value = value;
                wipe_value(&mut value);
                break Err(de::Error::custom("duplicate mapping key"));
            }
            out.insert(key, value);
        };
        leave();
        match result {
            Ok(()) => Ok(Value::Mapping(out)),
            Err(e) => {
                let mut v = Value::Mapping(out);
                wipe_value(&mut v);
                Err(e)
            }
        }
    }
}

/// A parse error as a location and a reason that never quotes the input.
fn yaml_error(err: &serde_saphyr::Error, limits: &Limits) -> Error {
    use serde_saphyr::budget::BudgetBreach;
    use serde_saphyr::Error as E;

    let at = match err.location() {
        Some(loc) if loc.line() > 0 => format!("line {} column {}", loc.line(), loc.column()),
        _ => "the input".to_owned(),
    };
    let limit = |what: &str, limit: String| Error::LimitExceeded {
        what: format!("{what} (at {at})"),
        limit,
    };
    let inner = unwrap_snippet(err);
    let reason = match inner {
        E::Budget { breach, .. } => {
            return match breach {
                BudgetBreach::Depth { .. } => {
                    limit("the YAML nesting depth", limits.max_depth.to_string())
                }
                BudgetBreach::Nodes { .. } | BudgetBreach::Events { .. } => {
                    limit("the number of YAML nodes", limits.max_nodes.to_string())
                }
                BudgetBreach::Aliases { .. }
                | BudgetBreach::Anchors { .. }
                | BudgetBreach::MergeKeys { .. }
                | BudgetBreach::AliasAnchorRatio { .. } => limit(
                    "the number of YAML aliases and anchors",
                    limits.max_aliases.to_string(),
                ),
                BudgetBreach::ScalarBytes { .. }
                | BudgetBreach::RecordedAnchorBytes { .. }
                | BudgetBreach::RecordedAnchorEvents { .. } => limit(
                    "the total size of YAML scalars",
                    format!("{} bytes", limits.max_scalar_bytes),
                ),
                BudgetBreach::Documents { .. } => {
                    limit("the number of documents", limits.max_documents.to_string())
                }
                BudgetBreach::InputBytes { .. } => {
                    limit("the manifest input", format!("{} bytes", limits.max_bytes))
                }
                _ => limit("a YAML parser limit", "its budget".to_owned()),
            };
        }
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => {
            return limit(
                "the expansion of YAML aliases",
                format!("{} nodes", limits.max_nodes),
            );
        }
        E::ExternalMessage { msg, .. } if msg.contains("recursion limit") => {
            return limit("the YAML nesting depth", limits.max_depth.to_string());
        }
        E::DuplicateMappingKey { .. } => {
            "a mapping has the same key twice (one of the values would be lost)"
        }
        E::UnknownAnchor { .. } => "an alias (*name) refers to an anchor that is not defined",
        E::Eof { .. } => "the input ends in the middle of a value",
        E::MergeValueNotMapOrSeqOfMaps { .. } => {
            "a merge key (<<) must refer to a mapping or a list of mappings"
        }
        E::InvalidUtf8Input => "the input is not UTF-8 text",
        E::MergeKeyNotAllowed { .. } => {
            "YAML merge keys (<<) are not supported: write the keys out (a merge could silently \
             override a value)"
        }
        E::UnsupportedTag { .. } => "YAML tags (!name) are not supported in manifests",
        E::Message { msg, .. } if msg.contains("binary scalars") => {
            "binary scalars (!!binary) are not supported; use a base64 string"
        }
        E::Message { msg, .. } if msg.contains("duplicate mapping key") => {
            "a mapping has the same key twice (one of the values would be lost)"
        }
        // The scanner's own words ("did not find expected ',' or ']'") help; they are fixed
        // phrases, but anything quoted could be from the input, so only unquoted ones pass.
        E::ExternalMessage { msg, .. }
            if msg.len() <= 120 && !msg.contains(['"', '`']) && msg.matches('\'').count() <= 4 =>
        {
            return Error::malformed(at, format!("not valid YAML or JSON: {msg}"));
        }
        _ => "not valid YAML or JSON",
    };
    Error::malformed(at, reason)
}

fn unwrap_snippet(err: &serde_saphyr::Error) -> &serde_saphyr::Error {
    match err {
        serde_saphyr::Error::WithSnippet { error, .. } => unwrap_snippet(error),
        serde_saphyr::Error::AliasError { error, .. } => unwrap_snippet(error),
        other => other,
    }
}

/// Overwrites every string in `value` with zeros before it is freed.
pub fn wipe_value(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Sequence(items) => items.iter_mut().for_each(wipe_value),
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| wipe_value(v)),
        Value::Tagged(tagged) => wipe_value(&mut tagged.value),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_skips_empty_documents() {
        let docs =
            read_documents("---\na: 1\n---\n---\nb: 2\n", Limits::default()).expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].index, 2);
    }

    #[test]
    fn expands_lists_of_any_list_kind() {
        let docs = read_documents(
            r#"{"apiVersion":"v1","kind":"List","items":[{"kind":"Secret"},{"kind":"ConfigMap"}]}"#,
            Limits::default(),
        )
        .expect("parses");
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].kind(), Some("ConfigMap"));
        let docs = read_documents(
            "kind: List\nitems:\n- kind: List\n  items:\n  - kind: Secret\n",
            Limits::default(),
        )
        .expect("nested");
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].kind(), Some("Secret"));
        let docs = read_documents(
            "apiVersion: v1\nkind: SecretList\nitems:\n- kind: Secret\n  metadata: {name: a}\n",
            Limits::default(),
        )
        .expect("parses");
        assert_eq!(docs.len(), 1);
        assert!(
            docs[0].describe().contains("SecretList item 1"),
            "{}",
            docs[0].describe()
        );
    }

    #[test]
    fn errors_say_where() {
        let err = read_documents("a: 1\n---\nb: [\n", Limits::default()).expect_err("bad");
        let msg = err.to_string();
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn scalars_follow_the_yaml_1_2_core_schema() {
        let docs = read_documents(
            "a: 0X1F\nb: 0x1f\nc: 1e3\nd: +1\ne: 0b101\nf: &x 0O17\ng: *x\nh: [0X0, 7]\ni: yes\n",
            Limits::default(),
        )
        .expect("parses");
        let v = &docs[0].value;
        assert_eq!(v["a"], Value::String("0X1F".into()));
        assert_eq!(v["b"], Value::Number(31.into()));
        assert!(v["c"].is_f64());
        assert_eq!(v["d"], Value::Number(1.into()));
        assert_eq!(v["e"], Value::String("0b101".into()));
        assert_eq!(v["f"], Value::String("0O17".into()));
        assert_eq!(v["g"], Value::String("0O17".into()));
        assert_eq!(v["h"][0], Value::String("0X0".into()));
        assert_eq!(v["h"][1], Value::Number(7.into()));
        assert_eq!(v["i"], Value::String("yes".into()));
        let docs = read_documents("id: 474e920802953518\nn: .inf\n", Limits::default())
            .expect("an overflowing float spelling");
        assert_eq!(
            docs[0].value["id"],
            Value::String("474e920802953518".into())
        );
        assert!(docs[0].value["n"].is_f64());
        let docs = read_documents("big: 123456789012345678901234\n", Limits::default())
            .expect("a long integer spelling");
        assert_eq!(
            docs[0].value["big"],
            Value::String("123456789012345678901234".into())
        );
    }

    #[test]
    fn a_byte_order_mark_is_accepted() {
        let docs = read_documents("\u{feff}kind: Secret\n", Limits::default()).expect("parses");
        assert_eq!(docs[0].kind(), Some("Secret"));
    }

    #[test]
    fn document_count_is_bounded() {
        let limits = Limits {
            max_documents: 2,
            ..Limits::small(1024, 2)
        };
        let err = read_documents("a: 1\n---\nb: 2\n---\nc: 3\n", limits).expect_err("bounded");
        assert_eq!(err.metric_label(), "limit_exceeded");
    }

    #[test]
    fn a_mapping_past_the_value_limit_stops_while_it_is_read() {
        let mut text = String::from("kind: Secret\nstringData:\n");
        for i in 0..10_000 {
            text.push_str(&format!("  k{i}: v\n"));
        }
        let err = read_documents(&text, Limits::secrets()).expect_err("bounded");
        assert!(
            err.to_string().contains("entries in one mapping")
                && err
                    .to_string()
                    .contains(&sealsync_crypto::MAX_VALUES.to_string()),
            "{err}"
        );
        // At the limit exactly, it is read.
        let mut text = String::from("kind: Secret\nstringData:\n");
        for i in 0..sealsync_crypto::MAX_VALUES {
            text.push_str(&format!("  k{i}: v\n"));
        }
        assert!(read_documents(&text, Limits::secrets()).is_ok());
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = read_documents("stringData:\n  pw: a\n  pw: b\n", Limits::default())
            .expect_err("duplicate");
        assert!(err.to_string().contains("same key twice"), "{err}");
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut text = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..8 {
            let prev = if i == 0 {
                "a".to_owned()
            } else {
                format!("l{}", i - 1)
            };
            text.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*{prev}"); 10].join(", ")
            ));
        }
        let err = read_documents(&text, Limits::default()).expect_err("bounded");
        assert_eq!(err.metric_label(), "limit_exceeded", "{err}");
    }

    #[test]
    fn nesting_is_bounded() {
        let text = "[".repeat(100_000);
        let err = read_documents(&text, Limits::default()).expect_err("bounded");
        assert_eq!(err.metric_label(), "limit_exceeded", "{err}");
        assert!(err.to_string().contains("nesting depth"), "{err}");
    }
}
