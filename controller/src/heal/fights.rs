//! When self-heal backs off: an object corrected again soon after its last correction is in
//! a fight with another writer (a controller, an operator's script), and each repeat waits
//! longer, as Argo CD's self-heal does. Time is passed in, so the schedule is tested exactly.

use std::time::{Duration, Instant};

use crate::support::retry::Backoff;

/// The first correction after a quiet period is immediate; a repeat within this window (plus
/// the current backoff) backs off.
const FIGHT_WINDOW: Duration = Duration::from_secs(30);
/// The delay of a repeated correction, as Argo CD's self-heal: 2 s, then ×3, at most 5 min.
const BACKOFF_MAX: Duration = Duration::from_secs(300);
const FIGHT_BACKOFF: Backoff = Backoff::new(Duration::from_secs(2), 3.0, BACKOFF_MAX);

/// The delay before the next correction of an object corrected `fights` times in a row.
fn backoff(fights: u32) -> Duration {
    FIGHT_BACKOFF.delay(fights)
}

/// One object's corrections in a row.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Fights {
    /// Corrections in a row, each within the window of the one before.
    count: u32,
    /// The last correction.
    last: Option<Instant>,
}

impl Fights {
    fn window(&self) -> Duration {
        FIGHT_WINDOW + backoff(self.count)
    }

    fn in_window(&self, now: Instant) -> Option<Duration> {
        let since = now.saturating_duration_since(self.last?);
        (since < self.window()).then_some(since)
    }

    /// How long a correction asked for at `now` waits.
    pub(super) fn wait(&self, now: Instant) -> Duration {
        self.in_window(now).map_or(Duration::ZERO, |since| {
            backoff(self.count.saturating_add(1)).saturating_sub(since)
        })
    }

    /// Records a correction written at `now`. When it repeats an earlier one within the
    /// window, returns the delay the next one will wait (for the `DriftConflict` event).
    pub(super) fn corrected(&mut self, now: Instant) -> Option<Duration> {
        self.count = if self.in_window(now).is_some() {
            self.count.saturating_add(1)
        } else {
            0
        };
        self.last = Some(now);
        (self.count > 0).then(|| backoff(self.count.saturating_add(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn repeated_corrections_back_off_like_argo_cd() {
        let delays: Vec<u64> = (0..8).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(delays, [0, 2, 6, 18, 54, 162, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn a_first_correction_is_immediate_and_no_conflict() {
        let t0 = Instant::now();
        let mut fights = Fights::default();
        assert_eq!(fights.wait(t0), Duration::ZERO);
        assert_eq!(fights.corrected(t0), None);
    }

    /// Another writer sets the field again every 500 ms for 8 s: self-heal corrects at 0 s,
    /// 2 s and 8 s, and reports a conflict from the second correction on.
    #[test]
    fn a_writer_that_fights_meets_a_growing_wait() {
        let t0 = Instant::now();
        let mut fights = Fights::default();
        let mut corrections = Vec::new();
        let mut conflicts = Vec::new();
        let mut not_before = t0;
        for step in 0..=16u32 {
            let now = t0 + Duration::from_millis(500) * step;
            if now < not_before {
                continue;
            }
            let wait = fights.wait(now);
            if !wait.is_zero() {
                not_before = now + wait;
                continue;
            }
            corrections.push(now - t0);
            if let Some(next) = fights.corrected(now) {
                conflicts.push(next);
            }
        }
        assert_eq!(corrections, [secs(0), secs(2), secs(8)]);
        assert_eq!(conflicts, [secs(6), secs(18)]);
    }

    #[test]
    fn a_quiet_period_forgives_the_fight() {
        let t0 = Instant::now();
        let mut fights = Fights::default();
        fights.corrected(t0);
        assert_eq!(fights.corrected(t0 + secs(2)), Some(secs(6)));
        // Past the window (30 s plus the current 2 s backoff): immediate, and no conflict.
        let later = t0 + secs(2) + FIGHT_WINDOW + secs(3);
        assert_eq!(fights.wait(later), Duration::ZERO);
        assert_eq!(fights.corrected(later), None);
        // Just inside the window a repeat waits the rest of the first backoff.
        assert_eq!(
            fights.wait(later + Duration::from_millis(500)),
            Duration::from_millis(1500)
        );
    }
}
