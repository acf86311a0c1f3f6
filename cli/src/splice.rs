//! Rewriting a sealed file in place, keeping its comments and layout: only the `envelopes` and
//! `encryptedData` blocks that changed are replaced, line for line, and every other byte of
//! the file stays as it was. A reviewer of a rotation then sees only the lines that changed.

use sealsync_core::manifest::{read_documents, Limits};
use serde_yaml::{Mapping, Value};

/// The spec blocks that sealing, merging, re-wrapping and re-keying change.
const BLOCKS: [&str; 2] = ["envelopes", "encryptedData"];

/// `text` with each document's changed blocks taken from `new`, or `None` when the text is not
/// laid out as block YAML the way sealsync writes it (JSON, flow style, a `List`), or when the
/// result would not read back as exactly `new`. The caller then renders the whole file again.
pub fn splice(text: &str, old: &[&Value], new: &[Value]) -> Option<String> {
    if old.len() != new.len() {
        return None;
    }
    let segments = split_documents(text);
    let content: Vec<usize> = segments
        .iter()
        .enumerate()
        .filter(|(_, s)| has_content(s))
        .map(|(i, _)| i)
        .collect();
    if content.len() != old.len() {
        return None;
    }
    let mut out: Vec<String> = segments.iter().map(|s| s.to_string()).collect();
    for (doc, &segment) in content.iter().enumerate() {
        for block in BLOCKS {
            let before = old[doc].get("spec").and_then(|s| s.get(block));
            let after = new[doc].get("spec").and_then(|s| s.get(block));
            if before == after {
                continue;
            }
            out[segment] = replace_block(&out[segment], block, after?)?;
        }
    }
    let result = out.concat();
    let reread = read_documents(&result, Limits::default()).ok()?;
    let same = reread.len() == new.len() && reread.iter().zip(new).all(|(d, n)| &d.value == n);
    same.then_some(result)
}

/// Splits at `---` lines, keeping each separator with the segment it starts.
fn split_documents(text: &str) -> Vec<&str> {
    let mut segments = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end();
        if (bare == "---" || bare.starts_with("--- #")) && offset > start {
            segments.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    segments.push(&text[start..]);
    segments
}

fn has_content(segment: &str) -> bool {
    segment.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && t != "---" && !t.starts_with("--- #")
    })
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// Replaces the block `KEY:` (a key on a line of its own, its value below it) with `value`.
fn replace_block(segment: &str, key: &str, value: &Value) -> Option<String> {
    let lines: Vec<&str> = segment.split_inclusive('\n').collect();
    let header = format!("{key}:");
    let starts: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim();
            t == header
                || (t.starts_with(&header) && t[header.len()..].trim_start().starts_with('#'))
        })
        .map(|(i, _)| i)
        .collect();
    let [start] = starts.as_slice() else {
        return None;
    };
    let ind = indentation(lines[*start]);
    let mut end = start + 1;
    let mut last_content = *start;
    while end < lines.len() {
        let line = lines[end];
        let t = line.trim();
        let belongs = t.is_empty()
            || t.starts_with('#')
            || indentation(line) > ind
            || (indentation(line) == ind && (t == "-" || t.starts_with("- ")));
        if !belongs {
            break;
        }
        if !t.is_empty() && !t.starts_with('#') {
            last_content = end;
        }
        end += 1;
    }
    let mut wrapper = Mapping::new();
    wrapper.insert(key.into(), value.clone());
    let rendered = serde_yaml::to_string(&Value::Mapping(wrapper)).ok()?;
    let pad = " ".repeat(ind);
    let mut out = String::with_capacity(segment.len());
    for line in &lines[..*start] {
        out.push_str(line);
    }
    for line in rendered.lines() {
        out.push_str(&pad);
        out.push_str(line);
        out.push('\n');
    }
    for line in &lines[last_content + 1..] {
        out.push_str(line);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(envelopes: &str, value: &str) -> String {
        format!(
            "# header comment\napiVersion: sealsync.dev/v1\nkind: SealedSecret\nmetadata:\n  name: db # the db\n  namespace: app\nspec:\n  scope: strict\n  envelopes:\n  - id: {envelopes}\n    recipients:\n    - 0011223344556677\n    wrappedKey: AAAA\n  # values below\n  encryptedData:\n    a: {value} # first\n    b: x:y\n"
        )
    }

    fn parse(text: &str) -> Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    #[test]
    fn replaces_only_the_changed_block_and_keeps_comments() {
        let old_text = doc("aaaa", "x:1");
        let new_text = doc("bbbb", "x:1");
        let old = parse(&old_text);
        let new = parse(&new_text);
        let out = splice(&old_text, &[&old], &[new]).expect("splices");
        assert!(out.contains("# header comment"));
        assert!(out.contains("# values below"));
        assert!(out.contains("a: x:1 # first"));
        assert!(out.contains("- id: bbbb"));
    }

    #[test]
    fn refuses_what_it_cannot_place() {
        let old = parse(r#"{"spec": {"envelopes": [1]}}"#);
        let new = parse(r#"{"spec": {"envelopes": [2]}}"#);
        assert!(splice(r#"{"spec": {"envelopes": [1]}}"#, &[&old], &[new]).is_none());
    }
}
