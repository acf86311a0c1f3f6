//! Renders an error with its causes, for the places where an error leaves as text (status,
//! events, logs, the CLI's message).
//!
//! sealsync's errors keep their cause as `#[source]` and do not repeat it in their own
//! message, so a caller that walks the chain (anyhow, a tracing layer) does not print it twice.
//! Where only text fits, [`Chain`] writes `outer: cause: root`.

use std::error::Error;
use std::fmt;

/// Displays an error followed by each of its sources, separated by `": "`.
///
/// Some foreign errors (kube's, reqwest's) already include their source in their message,
/// sometimes followed by more; a source whose text the line already holds is not written again.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(inner) = cause {
            let text = inner.to_string();
            if !text.is_empty() && !line.contains(&text) {
                line.push_str(": ");
                line.push_str(&text);
            }
            cause = inner.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::Chain;

    #[derive(Debug, thiserror::Error)]
    #[error("root cause")]
    struct Root;

    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    /// A foreign error that already prints its source, and more after it.
    #[derive(Debug, thiserror::Error)]
    #[error("request failed: root cause (code 7)")]
    struct Repeats(#[source] Root);

    #[derive(Debug, thiserror::Error)]
    #[error("reading the file")]
    struct Wraps(#[source] Repeats);

    #[test]
    fn writes_every_cause_once() {
        assert_eq!(
            Chain(&Outer(Middle(Root))).to_string(),
            "outer: middle: root cause"
        );
        assert_eq!(Chain(&Root).to_string(), "root cause");
    }

    #[test]
    fn skips_a_cause_its_parent_already_printed() {
        assert_eq!(
            Chain(&Wraps(Repeats(Root))).to_string(),
            "reading the file: request failed: root cause (code 7)"
        );
    }
}
