//! Durations as Kubernetes and Flux users write them (`30s`, `5m`, `1h30m`, `500ms`): Go's
//! `time.ParseDuration` syntax without fractions or negative values.

use std::time::Duration;

/// A duration that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a duration (write it like 30s, 5m, 1h or 1h30m; units ms, s, m, h)")]
pub struct DurationError;

/// Parses `1h30m`, `5m`, `30s`, `500ms`. At most 10 units and 1,000 days.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let mut rest = text.trim();
    if rest.is_empty() || rest.len() > 40 {
        return Err(DurationError);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 9 {
            return Err(DurationError);
        }
        let value: u64 = rest[..digits].parse().map_err(|_| DurationError)?;
        rest = &rest[digits..];
        let (unit, len) = if rest.starts_with("ms") {
            (Duration::from_millis(1), 2)
        } else if rest.starts_with('s') {
            (Duration::from_secs(1), 1)
        } else if rest.starts_with('m') {
            (Duration::from_secs(60), 1)
        } else if rest.starts_with('h') {
            (Duration::from_secs(3600), 1)
        } else {
            return Err(DurationError);
        };
        rest = &rest[len..];
        let part = unit.checked_mul(u32::try_from(value).map_err(|_| DurationError)?);
        total = part
            .and_then(|p| total.checked_add(p))
            .ok_or(DurationError)?;
    }
    if total > Duration::from_secs(1000 * 86_400) {
        return Err(DurationError);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_style_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        for bad in ["", "5", "m", "1d", "-1s", "1.5s", "9999999999s", "1h 5m"] {
            assert_eq!(parse_duration(bad), Err(DurationError), "{bad}");
        }
    }
}
