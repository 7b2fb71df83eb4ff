//! The recurring floor of the scale-down: a fleet for the demand's typical
//! level, kept while the demand keeps coming back to it.
//!
//! Bursty demand around a steady level (a 5-minute bin at a tenth of the
//! level, the next one back at it) costs each autoscaler that follows the
//! lull down a start-up's worth of overload when the level returns. The
//! stabilization window holds the fleet only as long as the window; this
//! floor holds the pods for a percentile of the demand over a longer
//! window, but only while that demand recurs: it reached the floor, fell
//! below [`DIP_FRACTION`] of it, and reached it again. A trend, a step or a
//! one-off spike never comes back up after falling away, so it is not held.
//! (The engine skips the floor when a policy that may scale to zero sees no
//! demand: that policy chose zero over pods kept for the next burst.)
use std::collections::{BTreeMap, VecDeque};

/// The window is read in this many buckets (each with its lowest and
/// highest pods) to tell whether the demand came back.
const BUCKETS: f64 = 60.0;

/// Demand fell away from the floor when it went below this fraction of it.
pub const DIP_FRACTION: f64 = 0.8;

/// The longest floor window a policy may ask for: the history a restarted
/// controller warms up from.
pub const MAX_FLOOR_WINDOW_SECS: f64 = 3600.0;

/// The pods for each tick's peak demand over the floor's window.
#[derive(Clone, Debug, Default)]
pub struct RecurringFloor {
    samples: VecDeque<(f64, u32)>,
    /// How many samples have each pod count (for the percentile).
    counts: BTreeMap<u32, usize>,
    buckets: VecDeque<Bucket>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Bucket {
    start: f64,
    low: u32,
    high: u32,
}

impl RecurringFloor {
    /// Records `pods` at `t` and forgets what is `window` or more older.
    pub fn push(&mut self, t: f64, pods: u32, window: f64) {
        if !(window > 0.0 && t.is_finite()) {
            return;
        }
        self.samples.push_back((t, pods));
        *self.counts.entry(pods).or_insert(0) += 1;
        while let Some(&(at, old)) = self.samples.front() {
            if at > t - window {
                break;
            }
            self.samples.pop_front();
            if let Some(n) = self.counts.get_mut(&old) {
                *n -= 1;
                if *n == 0 {
                    self.counts.remove(&old);
                }
            }
        }
        let width = window / BUCKETS;
        let start = (t / width).floor() * width;
        match self.buckets.back_mut() {
            Some(last) if last.start == start => {
                last.low = last.low.min(pods);
                last.high = last.high.max(pods);
            }
            _ => self.buckets.push_back(Bucket {
                start,
                low: pods,
                high: pods,
            }),
        }
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + width <= t - window)
        {
            self.buckets.pop_front();
        }
    }

    /// The pods at `quantile` (0, 1] of the window's samples, when the
    /// demand came back to them after falling away; otherwise None.
    pub fn floor(&self, quantile: f64) -> Option<u32> {
        let level = self.percentile(quantile)?;
        self.came_back(level).then_some(level)
    }

    fn percentile(&self, quantile: f64) -> Option<u32> {
        let n = self.samples.len();
        if n == 0 || quantile.is_nan() || quantile <= 0.0 {
            return None;
        }
        let rank = ((quantile.min(1.0) * n as f64).ceil() as usize).max(1);
        let mut seen = 0;
        self.counts.iter().find_map(|(&pods, &count)| {
            seen += count;
            (seen >= rank).then_some(pods)
        })
    }

    /// Reached `level`, fell below `DIP_FRACTION` of it, and reached it
    /// again, in that order, within the window.
    fn came_back(&self, level: u32) -> bool {
        if level == 0 {
            return false;
        }
        let dip = f64::from(level) * DIP_FRACTION;
        let (mut reached, mut fell) = (false, false);
        for b in &self.buckets {
            if fell && b.high >= level {
                return true;
            }
            if reached && f64::from(b.low) < dip {
                fell = true;
            }
            if b.high >= level && !fell {
                reached = true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One sample every 5 s of `levels`, each held for `each` seconds.
    fn fed(levels: &[u32], each: f64) -> RecurringFloor {
        let mut f = RecurringFloor::default();
        let mut t = 0.0;
        for &pods in levels {
            let end = t + each;
            while t < end {
                f.push(t, pods, 3600.0);
                t += 5.0;
            }
        }
        f
    }

    #[test]
    fn demand_that_keeps_coming_back_is_held_at_its_median() {
        // 5-minute bins around 20 pods, with lulls at 2 to 6.
        let f = fed(&[20, 4, 22, 18, 2, 25, 20, 6, 19, 21, 3, 24], 300.0);
        assert_eq!(f.floor(0.5), Some(19));
        assert_eq!(f.floor(0.25), Some(4));
        assert_eq!(f.floor(0.9), Some(24));
        // The highest bin was never reached again.
        assert_eq!(f.floor(1.0), None);
    }

    #[test]
    fn a_trend_a_step_and_a_spike_are_not_held() {
        // A ramp down: it falls away from any level and never comes back.
        let ramp: Vec<u32> = (0..60).map(|i| 80 - i).collect();
        assert_eq!(fed(&ramp, 60.0).floor(0.5), None);
        // A step down, and a step up then down.
        assert_eq!(fed(&[50, 10], 1800.0).floor(0.5), None);
        assert_eq!(fed(&[10, 50, 10], 1200.0).floor(0.5), None);
        // A rise from a low start is not a return.
        assert_eq!(fed(&[5, 40], 1800.0).floor(0.9), None);
        // One spike over a steady level: the median is the level, which
        // the demand never fell away from.
        assert_eq!(fed(&[10, 10, 10, 90, 10, 10], 600.0).floor(0.5), None);
    }

    #[test]
    fn a_dip_shallower_than_the_fraction_is_noise() {
        // 20 -> 17 is 85% of 20, not below 80%: no return to count.
        assert_eq!(fed(&[20, 17, 20, 17, 20, 17], 600.0).floor(0.9), None);
        assert_eq!(fed(&[20, 15, 20, 15, 20, 15], 600.0).floor(0.9), Some(20));
    }

    #[test]
    fn demand_that_stops_is_let_go_within_half_the_window() {
        // The bursty hour above, then 1 pod: once half the window holds the
        // quiet (30 minutes), its median is 1 pod, which nothing came back
        // to.
        let bursty = [20, 4, 22, 18, 2, 25, 20, 6, 19, 21, 3, 24];
        let mut levels = bursty.to_vec();
        levels.extend([1; 6]);
        assert_eq!(fed(&levels, 300.0).floor(0.5), None);
        assert_eq!(fed(&bursty, 300.0).floor(0.5), Some(19));
    }

    #[test]
    fn old_samples_leave_the_window() {
        // Bursty for an hour, then two hours at 3 pods: nothing recurs.
        let mut levels = vec![20, 4, 22, 18, 2, 25, 20, 6, 19, 21, 3, 24];
        levels.extend([3; 24]);
        let f = fed(&levels, 300.0);
        assert_eq!(f.floor(0.5), None);
        assert_eq!(f.percentile(1.0), Some(3));
        assert!(f.samples.len() <= 720 && f.buckets.len() <= 61);
    }

    #[test]
    fn nothing_or_nonsense_gives_no_floor() {
        let mut f = RecurringFloor::default();
        assert_eq!(f.floor(0.5), None);
        f.push(0.0, 5, 0.0);
        f.push(f64::NAN, 5, 3600.0);
        f.push(1.0, 5, f64::NAN);
        assert_eq!(f.floor(0.5), None);
        assert!(f.samples.is_empty());
        let bursty = fed(&[20, 4, 22, 18], 300.0);
        assert_eq!(bursty.floor(0.0), None);
        assert_eq!(bursty.floor(f64::NAN), None);
    }
}
