//! The controller's one rate limiter: a token bucket, alone (a whole endpoint) or keyed (one
//! bucket per caller or per webhook), with a bounded number of keys.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// A token bucket of `per_second` tokens, refilled continuously.
#[derive(Debug)]
pub(crate) struct RateLimit {
    /// Tokens left, and when they were counted.
    state: Mutex<(f64, Instant)>,
    per_second: f64,
}

impl RateLimit {
    /// A full bucket.
    pub(crate) fn new(per_second: f64) -> Self {
        Self {
            state: Mutex::new((per_second, Instant::now())),
            per_second,
        }
    }

    /// Whether the bucket has refilled completely (it has not been used lately).
    pub(crate) fn is_full(&self) -> bool {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let refill = state.1.elapsed().as_secs_f64() * self.per_second;
        state.0 + refill >= self.per_second
    }

    /// Takes a token if there is one.
    pub(crate) fn try_take(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(state.1).as_secs_f64() * self.per_second;
        state.0 = (state.0 + refill).min(self.per_second);
        state.1 = now;
        if state.0 >= 1.0 {
            state.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One bucket per key, at most `max_keys` of them: when that many keys are in use, buckets
/// that have refilled (idle keys) are dropped, and if none has, a new key is refused rather
/// than let the map grow.
#[derive(Debug)]
pub(crate) struct KeyedRateLimit {
    buckets: Mutex<HashMap<String, RateLimit>>,
    per_second: f64,
    max_keys: usize,
}

impl KeyedRateLimit {
    /// `per_second` for each key.
    pub(crate) fn new(per_second: f64, max_keys: usize) -> Self {
        Self {
            buckets: Mutex::default(),
            per_second,
            max_keys,
        }
    }

    /// Takes a token of `key`'s bucket if there is one.
    pub(crate) fn try_take(&self, key: &str) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= self.max_keys && !buckets.contains_key(key) {
            buckets.retain(|_, bucket| !bucket.is_full());
            if buckets.len() >= self.max_keys {
                return false;
            }
        }
        buckets
            .entry(key.to_owned())
            .or_insert_with(|| RateLimit::new(self.per_second))
            .try_take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_rate_then_refuses() {
        let limit = RateLimit::new(3.0);
        assert!((0..3).all(|_| limit.try_take()));
        assert!(!limit.try_take());
        assert!(!limit.is_full());
    }

    #[test]
    fn keys_have_their_own_buckets_and_their_number_is_bounded() {
        let limit = KeyedRateLimit::new(1.0, 2);
        assert!(limit.try_take("a"));
        assert!(!limit.try_take("a"));
        assert!(limit.try_take("b"));
        // Two keys in use, neither idle: a third is refused, not remembered.
        assert!(!limit.try_take("c"));
    }
}
