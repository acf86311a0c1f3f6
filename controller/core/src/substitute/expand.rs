//! The evaluator: one pass over the text, each `${…}` expanded as it is met.

use super::glob;
use super::{SubstituteError, Variables};

/// Expressions nested in one another's arguments.
const MAX_DEPTH: usize = 32;

/// `text` with every `${…}` expanded from `vars` and every `$$` made `$`. The result may not
/// exceed four times the text or 1 MiB, whichever is larger (at most 64 MiB): a replacement
/// nested in a replacement could otherwise grow without bound.
pub fn expand(text: &str, vars: &Variables) -> Result<String, SubstituteError> {
    let limit = text.len().saturating_mul(4).clamp(1 << 20, 64 << 20);
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
        vars,
        depth: 0,
        limit,
    };
    let out = reader.text(&[])?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    vars: &'a Variables,
    depth: usize,
    limit: usize,
}

/// The operation of one `${…}`.
enum Operation {
    Value,
    Length,
    UpperFirst,
    Upper,
    LowerFirst,
    Lower,
    /// Every default form: the argument when the value is unset or empty.
    Default,
    Substring,
    TrimShortestPrefix,
    TrimLongestPrefix,
    TrimShortestSuffix,
    TrimLongestSuffix,
    ReplaceFirst,
    ReplaceAll,
    ReplacePrefix,
    ReplaceSuffix,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.at + offset).copied()
    }

    fn too_large(&self) -> SubstituteError {
        self.malformed(
            "the substituted text grows past its limit (4 times the object, at least 1 MiB)",
        )
    }

    fn malformed(&self, problem: &'static str) -> SubstituteError {
        SubstituteError::Malformed {
            offset: self.at,
            problem,
        }
    }

    /// Text up to (not including) one of `stops` outside any `${…}`, or the end. Inside an
    /// argument (`stops` not empty) `\` escapes the next byte.
    fn text(&mut self, stops: &[u8]) -> Result<Vec<u8>, SubstituteError> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if stops.contains(&b) {
                break;
            }
            match b {
                b'$' if self.peek_at(1) == Some(b'$') => {
                    out.push(b'$');
                    self.at += 2;
                }
                b'$' if self.peek_at(1) == Some(b'{') => {
                    self.at += 2;
                    if self.depth >= MAX_DEPTH {
                        return Err(self.malformed("expressions nested more than 32 deep"));
                    }
                    self.depth += 1;
                    let value = self.expression();
                    self.depth -= 1;
                    out.extend_from_slice(value?.as_bytes());
                    if out.len() > self.limit {
                        return Err(self.too_large());
                    }
                }
                b'\\' if !stops.is_empty() && matches!(self.peek_at(1), Some(b'/' | b'\\')) => {
                    out.push(self.bytes[self.at + 1]);
                    self.at += 2;
                }
                _ => {
                    out.push(b);
                    self.at += 1;
                }
            }
        }
        Ok(out)
    }

    fn argument(&mut self, stops: &[u8]) -> Result<String, SubstituteError> {
        let bytes = self.text(stops)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    fn name(&mut self) -> Result<String, SubstituteError> {
        let start = self.at;
        while let Some(b) = self.peek() {
            let ok =
                b == b'_' || b.is_ascii_alphabetic() || (self.at > start && b.is_ascii_digit());
            if !ok {
                break;
            }
            self.at += 1;
        }
        if self.at == start {
            return Err(self.malformed("a variable name must follow ${"));
        }
        Ok(String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned())
    }

    fn close(&mut self) -> Result<(), SubstituteError> {
        if self.peek() == Some(b'}') {
            self.at += 1;
            Ok(())
        } else {
            Err(self.malformed("missing }"))
        }
    }

    /// One expression, after its `${`, through its `}`.
    fn expression(&mut self) -> Result<String, SubstituteError> {
        let length = self.peek() == Some(b'#')
            && self
                .peek_at(1)
                .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic());
        if length {
            self.at += 1;
        }
        let name = self.name()?;
        let (operation, args) = if length {
            (Operation::Length, Vec::new())
        } else {
            self.operation()?
        };
        self.close()?;
        let value = self.vars.get(&name);
        if value.is_none() && !matches!(operation, Operation::Default) {
            return Err(SubstituteError::NotSet { name });
        }
        let value = value.unwrap_or("");
        if grows_past(&operation, value, &args, self.limit) {
            return Err(self.too_large());
        }
        Ok(apply(operation, value, &args))
    }

    /// The operation after the name, and its arguments, evaluated.
    fn operation(&mut self) -> Result<(Operation, Vec<String>), SubstituteError> {
        let Some(b) = self.peek() else {
            return Err(self.malformed("missing }"));
        };
        let two = self.peek_at(1);
        let (operation, skip) = match (b, two) {
            (b'}', _) => return Ok((Operation::Value, Vec::new())),
            (b'^', Some(b'^')) => (Operation::Upper, 2),
            (b'^', _) => (Operation::UpperFirst, 1),
            (b',', Some(b',')) => (Operation::Lower, 2),
            (b',', _) => (Operation::LowerFirst, 1),
            (b':', Some(b'-' | b'=' | b'+' | b'?')) => (Operation::Default, 2),
            (b'-' | b'=' | b'+' | b'?', _) => (Operation::Default, 1),
            (b':', _) => (Operation::Substring, 1),
            (b'#', Some(b'#')) => (Operation::TrimLongestPrefix, 2),
            (b'#', _) => (Operation::TrimShortestPrefix, 1),
            (b'%', Some(b'%')) => (Operation::TrimLongestSuffix, 2),
            (b'%', _) => (Operation::TrimShortestSuffix, 1),
            (b'/', Some(b'/')) => (Operation::ReplaceAll, 2),
            (b'/', Some(b'#')) => (Operation::ReplacePrefix, 2),
            (b'/', Some(b'%')) => (Operation::ReplaceSuffix, 2),
            (b'/', _) => (Operation::ReplaceFirst, 1),
            _ => return Err(self.malformed("not a known operation after the variable name")),
        };
        self.at += skip;
        let args = match operation {
            Operation::Upper | Operation::UpperFirst | Operation::Lower | Operation::LowerFirst => {
                Vec::new()
            }
            Operation::Substring => {
                let mut args = vec![self.argument(b":}")?];
                if self.peek() == Some(b':') {
                    self.at += 1;
                    args.push(self.argument(b"}")?);
                }
                args
            }
            Operation::ReplaceFirst
            | Operation::ReplaceAll
            | Operation::ReplacePrefix
            | Operation::ReplaceSuffix => {
                let mut args = vec![self.argument(b"/}")?];
                if self.peek() == Some(b'/') {
                    self.at += 1;
                    args.push(self.argument(b"}")?);
                }
                args
            }
            _ => vec![self.argument(b"}")?],
        };
        Ok((operation, args))
    }
}

/// Whether applying `operation` would give more than `limit` bytes (a replacement multiplies
/// the value's length): checked before the work is done.
fn grows_past(operation: &Operation, value: &str, args: &[String], limit: usize) -> bool {
    let replacement = args.get(1).map_or(0, String::len);
    let grown = match operation {
        Operation::ReplaceAll => match args.first() {
            Some(from) if !from.is_empty() => value.len().saturating_add(
                value
                    .matches(from.as_str())
                    .count()
                    .saturating_mul(replacement),
            ),
            _ => value.len(),
        },
        Operation::Default => value.len().max(args.iter().map(String::len).sum()),
        _ => value.len().saturating_add(replacement),
    };
    grown > limit
}

fn apply(operation: Operation, value: &str, args: &[String]) -> String {
    let arg = |i: usize| args.get(i).map(String::as_str);
    match operation {
        Operation::Value => value.to_owned(),
        Operation::Length => value.len().to_string(),
        Operation::Upper => value.to_uppercase(),
        Operation::Lower => value.to_lowercase(),
        Operation::UpperFirst => first_char(value, char::to_uppercase),
        Operation::LowerFirst => first_char(value, char::to_lowercase),
        Operation::Default => {
            if value.is_empty() {
                args.concat()
            } else {
                value.to_owned()
            }
        }
        Operation::Substring => substring(value, arg(0), arg(1)),
        Operation::TrimShortestPrefix => {
            arg(0).map_or(value.to_owned(), |p| trim_prefix(value, p, false))
        }
        Operation::TrimLongestPrefix => {
            arg(0).map_or(value.to_owned(), |p| trim_prefix(value, p, true))
        }
        Operation::TrimShortestSuffix => {
            arg(0).map_or(value.to_owned(), |p| trim_suffix(value, p, false))
        }
        Operation::TrimLongestSuffix => {
            arg(0).map_or(value.to_owned(), |p| trim_suffix(value, p, true))
        }
        Operation::ReplaceFirst => match arg(0) {
            Some(from) if !from.is_empty() => value.replacen(from, arg(1).unwrap_or(""), 1),
            _ => value.to_owned(),
        },
        Operation::ReplaceAll => match arg(0) {
            Some(from) if !from.is_empty() => value.replace(from, arg(1).unwrap_or("")),
            _ => value.to_owned(),
        },
        Operation::ReplacePrefix => match (arg(0), arg(1)) {
            (Some(from), Some(to)) => match value.strip_prefix(from) {
                Some(rest) => format!("{to}{rest}"),
                None => value.to_owned(),
            },
            _ => value.to_owned(),
        },
        Operation::ReplaceSuffix => match (arg(0), arg(1)) {
            (Some(from), Some(to)) => match value.strip_suffix(from) {
                Some(rest) => format!("{rest}{to}"),
                None => value.to_owned(),
            },
            _ => value.to_owned(),
        },
    }
}

fn first_char<I: Iterator<Item = char>>(value: &str, convert: fn(char) -> I) -> String {
    let mut chars = value.chars();
    match chars.next() {
        Some(first) => convert(first).chain(chars).collect(),
        None => String::new(),
    }
}

/// `${var:offset}` and `${var:offset:length}`, counting bytes as Flux does; a negative offset
/// counts from the end, a negative length stops that far from the end. An argument that is
/// not a number leaves the value as it is.
fn substring(value: &str, offset: Option<&str>, length: Option<&str>) -> String {
    let bytes = value.as_bytes();
    let len = bytes.len() as i64;
    let Some(Ok(offset)) = offset.map(|o| o.trim().parse::<i64>()) else {
        return value.to_owned();
    };
    let start = if offset < 0 {
        (len + offset).max(0)
    } else {
        offset
    };
    if start >= len {
        return String::new();
    }
    let end = match length {
        None => len,
        Some(l) => match l.trim().parse::<i64>() {
            Err(_) => return value.to_owned(),
            Ok(l) if l < 0 => {
                let end = len + l;
                if end < start {
                    return String::new();
                }
                end
            }
            Ok(l) => (start + l).min(len),
        },
    };
    String::from_utf8_lossy(&bytes[start as usize..end as usize]).into_owned()
}

/// Removes the shortest (or longest) non-empty prefix of `value` that `pattern` matches.
fn trim_prefix(value: &str, pattern: &str, longest: bool) -> String {
    // A malformed pattern leaves the value as it is.
    let Some(matching) = glob::matching_prefixes(pattern, value) else {
        return value.to_owned();
    };
    let boundaries: Vec<usize> = value
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(value.len()))
        .collect();
    let mut candidates = (1..boundaries.len()).filter(|&k| matching[k]);
    let chosen = if longest {
        candidates.next_back()
    } else {
        candidates.next()
    };
    match chosen {
        Some(k) => value[boundaries[k]..].to_owned(),
        None => value.to_owned(),
    }
}

/// The suffix forms, as Flux computes them: the prefix form on the reversed value with the
/// reversed pattern.
fn trim_suffix(value: &str, pattern: &str, longest: bool) -> String {
    let reversed: String = value.chars().rev().collect();
    let pattern: String = pattern.chars().rev().collect();
    trim_prefix(&reversed, &pattern, longest)
        .chars()
        .rev()
        .collect()
}
