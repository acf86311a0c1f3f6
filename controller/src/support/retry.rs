//! The controller's one backoff: exponential, capped, optionally jittered, on backon's
//! `ExponentialBuilder`. State machines that count failures ask [`Backoff::delay`]; loops that
//! must succeed before anything else can go on use [`Backoff::retry`].

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use sealsync_core::Chain;

/// An exponential backoff: `first`, then times `factor`, at most `max`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    builder: ExponentialBuilder,
    max: Duration,
}

impl Backoff {
    /// Without jitter: the same failures always wait the same time.
    pub(crate) const fn new(first: Duration, factor: f32, max: Duration) -> Self {
        Self {
            builder: ExponentialBuilder::new()
                .with_min_delay(first)
                .with_factor(factor)
                .with_max_delay(max)
                .without_max_times(),
            max,
        }
    }

    /// With jitter (up to as long again), so that many retrying at once spread out.
    pub(crate) const fn jittered(self) -> Self {
        Self {
            builder: self.builder.with_jitter(),
            max: self.max,
        }
    }

    /// The wait after `failures` failures in a row (none: no wait).
    pub(crate) fn delay(&self, failures: u32) -> Duration {
        let Some(index) = failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        // Past 64 steps every capped sequence has long reached its cap.
        let index = usize::try_from(index.min(64)).unwrap_or(64);
        self.builder.build().nth(index).unwrap_or(self.max)
    }

    /// Runs `op` until it succeeds, logging each failure as `what` and waiting in between.
    pub(crate) async fn retry<T, E, F, Fut>(&self, what: &str, mut op: F) -> T
    where
        E: std::error::Error,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut failures = 0u32;
        loop {
            match op().await {
                Ok(value) => return value,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let wait = self.delay(failures);
                    tracing::warn!(error = %Chain(&e), retry_in = ?wait, "{what}; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let backoff = Backoff::new(Duration::from_secs(2), 3.0, Duration::from_secs(300));
        let delays: Vec<u64> = (0..8).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [0, 2, 6, 18, 54, 162, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn jitter_stays_within_twice_the_delay() {
        let backoff = Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(8)).jittered();
        for failures in 1..10 {
            let plain = Backoff::new(Duration::from_secs(1), 2.0, Duration::from_secs(8));
            let base = plain.delay(failures);
            let delay = backoff.delay(failures);
            assert!(delay >= base && delay <= base * 2, "{failures}: {delay:?}");
        }
    }
}
