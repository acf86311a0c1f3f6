//! Shell patterns for the trim forms: `*` (any run of characters other than `/`, and anything
//! at all at the end of the pattern), `?` (one character other than `/`), `[…]` classes with
//! `^` negation and ranges, and `\` escapes.

/// Whether `pattern` matches all of `text`; `None` for a malformed pattern.
pub(super) fn matches(pattern: &str, text: &str) -> Option<bool> {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    match_from(&pattern, &text)
}

fn match_from(pattern: &[char], text: &[char]) -> Option<bool> {
    let Some((&first, rest)) = pattern.split_first() else {
        return Some(text.is_empty());
    };
    match first {
        '*' => {
            if rest.is_empty() {
                return Some(true);
            }
            // Every split of the text at which the star stops, the shortest first; the star
            // never crosses a '/'.
            for split in 0..=text.len() {
                if match_from(rest, &text[split..])? {
                    return Some(true);
                }
                if text.get(split) == Some(&'/') {
                    break;
                }
            }
            Some(false)
        }
        '?' => match text.split_first() {
            Some((&c, tail)) if c != '/' => match_from(rest, tail),
            _ => Some(false),
        },
        '[' => {
            let (matched, after) = class(rest, text.first().copied())?;
            if matched {
                match_from(after, &text[1..])
            } else {
                Some(false)
            }
        }
        '\\' => {
            let (&escaped, after) = rest.split_first()?;
            match text.split_first() {
                Some((&c, tail)) if c == escaped => match_from(after, tail),
                _ => Some(false),
            }
        }
        c => match text.split_first() {
            Some((&t, tail)) if t == c => match_from(rest, tail),
            _ => Some(false),
        },
    }
}

/// A class after its `[`: whether `c` is in it, and the pattern after its `]`.
fn class(pattern: &[char], c: Option<char>) -> Option<(bool, &[char])> {
    let (negated, mut rest) = match pattern.split_first() {
        Some(('^', tail)) => (true, tail),
        _ => (false, pattern),
    };
    let mut found = false;
    let mut first = true;
    loop {
        let (&lo, tail) = rest.split_first()?;
        if lo == ']' && !first {
            rest = tail;
            break;
        }
        first = false;
        let (lo, tail) = if lo == '\\' {
            let (&e, t) = tail.split_first()?;
            (e, t)
        } else {
            (lo, tail)
        };
        rest = tail;
        let hi = if rest.first() == Some(&'-') && rest.get(1).is_some_and(|&h| h != ']') {
            let (&h, t) = rest[1..].split_first()?;
            let (h, t) = if h == '\\' {
                let (&e, t2) = t.split_first()?;
                (e, t2)
            } else {
                (h, t)
            };
            rest = t;
            h
        } else {
            lo
        };
        if c.is_some_and(|c| lo <= c && c <= hi) {
            found = true;
        }
    }
    let Some(c) = c else {
        return Some((false, rest));
    };
    Some(((found != negated) && c != '/', rest))
}
