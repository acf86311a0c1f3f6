//! Shell patterns for the trim forms: `*` (any run of characters other than `/`, and anything
//! at all at the end of the pattern), `?` (one character other than `/`), `[…]` classes with
//! `^` negation and ranges, and `\` escapes. Matching is one pass over the text per pattern
//! token (no backtracking), so a hostile pattern costs at most pattern × text steps.

/// One token of a pattern.
enum Token {
    Literal(char),
    AnyOne,
    /// A star; `true` when it ends the pattern (and then crosses `/` too).
    Star(bool),
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

fn parse(pattern: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' => {
                tokens.push(Token::Star(i + 1 == chars.len()));
                i += 1;
            }
            '?' => {
                tokens.push(Token::AnyOne);
                i += 1;
            }
            '\\' => {
                tokens.push(Token::Literal(*chars.get(i + 1)?));
                i += 2;
            }
            '[' => {
                i += 1;
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                let mut first = true;
                loop {
                    let c = *chars.get(i)?;
                    if c == ']' && !first {
                        i += 1;
                        break;
                    }
                    first = false;
                    let lo = if c == '\\' {
                        i += 1;
                        *chars.get(i)?
                    } else {
                        c
                    };
                    i += 1;
                    let hi = if chars.get(i) == Some(&'-')
                        && chars.get(i + 1).is_some_and(|&h| h != ']')
                    {
                        i += 1;
                        let h = if chars[i] == '\\' {
                            i += 1;
                            *chars.get(i)?
                        } else {
                            chars[i]
                        };
                        i += 1;
                        h
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                tokens.push(Token::Class { negated, ranges });
            }
            c => {
                tokens.push(Token::Literal(c));
                i += 1;
            }
        }
    }
    Some(tokens)
}

fn accepts(token: &Token, c: char) -> bool {
    match token {
        Token::Literal(l) => *l == c,
        Token::AnyOne => c != '/',
        Token::Star(last) => *last || c != '/',
        Token::Class { negated, ranges } => {
            c != '/' && (ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negated)
        }
    }
}

/// For each prefix of `text` (by character count, 0 to all), whether `pattern` matches all of
/// it; `None` for a malformed pattern.
pub(super) fn matching_prefixes(pattern: &str, text: &str) -> Option<Vec<bool>> {
    let tokens = parse(pattern)?;
    // `state[k]`: the first k tokens match what was read so far.
    let mut state = vec![false; tokens.len() + 1];
    state[0] = true;
    close_stars(&tokens, &mut state);
    let mut prefixes = Vec::with_capacity(text.len() + 1);
    prefixes.push(state[tokens.len()]);
    for c in text.chars() {
        let mut next = vec![false; tokens.len() + 1];
        for (k, token) in tokens.iter().enumerate() {
            if !state[k] || !accepts(token, c) {
                continue;
            }
            match token {
                // A star stays where it is after taking a character.
                Token::Star(_) => next[k] = true,
                _ => next[k + 1] = true,
            }
        }
        close_stars(&tokens, &mut next);
        state = next;
        prefixes.push(state[tokens.len()]);
    }
    Some(prefixes)
}

/// A star may also match nothing: reaching it reaches past it.
fn close_stars(tokens: &[Token], state: &mut [bool]) {
    for k in 0..tokens.len() {
        if state[k] && matches!(tokens[k], Token::Star(_)) {
            state[k + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::matching_prefixes;

    fn matches(pattern: &str, text: &str) -> bool {
        *matching_prefixes(pattern, text)
            .expect("valid")
            .last()
            .expect("one")
    }

    #[test]
    fn patterns_match_as_flux_matches_them() {
        assert!(matches("*.yaml", "a.yaml"));
        assert!(!matches("*.yaml", "dir/a.yaml"));
        assert!(matches("dir/*", "dir/a/b"));
        assert!(matches("h?llo", "hello"));
        assert!(matches("[a-c]x", "bx"));
        assert!(!matches("[^a-c]x", "bx"));
        assert!(matches("\\*", "*"));
        assert!(matching_prefixes("[a-", "x").is_none());
        // No backtracking blow-up.
        let hostile = "*a".repeat(40) + "b";
        assert!(!matches(&hostile, &"a".repeat(5000)));
    }
}
