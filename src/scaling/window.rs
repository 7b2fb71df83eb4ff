//! Values stamped with time, kept for a limited span: the panic window's
//! demand samples and the stabilization windows' recommendations.
use std::collections::VecDeque;

/// A time-ordered list of `(time, value)`. The engine's clock never goes
/// back, so pushes arrive in order and pruning works from the front.
#[derive(Clone, Debug)]
pub(crate) struct TimedWindow<T> {
    entries: VecDeque<(f64, T)>,
}

impl<T> Default for TimedWindow<T> {
    fn default() -> Self {
        TimedWindow {
            entries: VecDeque::new(),
        }
    }
}

impl<T: Copy> TimedWindow<T> {
    pub(crate) fn push(&mut self, at: f64, value: T) {
        self.entries.push_back((at, value));
    }

    /// Forget everything older than `span` seconds before `now`.
    pub(crate) fn prune(&mut self, now: f64, span: f64) {
        let cutoff = now - span.max(0.0);
        while self.entries.front().is_some_and(|&(at, _)| at < cutoff) {
            self.entries.pop_front();
        }
    }

    /// The values of the last `span` seconds: stamped after `now - span`,
    /// plus those stamped at `now` itself (so a zero span still sees the
    /// newest value).
    pub(crate) fn within(&self, now: f64, span: f64) -> impl Iterator<Item = T> + '_ {
        let cutoff = now - span.max(0.0);
        self.entries
            .iter()
            .filter(move |&&(at, _)| at > cutoff || at >= now)
            .map(|&(_, value)| value)
    }
}

/// The mean of the last `span` seconds of samples (None when there are none).
pub(crate) fn mean_within(window: &TimedWindow<f64>, now: f64, span: f64) -> Option<f64> {
    let (sum, count) = window
        .within(now, span)
        .fold((0.0, 0u32), |(sum, count), v| (sum + v, count + 1));
    (count > 0).then(|| sum / f64::from(count))
}

/// HPA's stabilization: scale up only to the lowest recommendation of the
/// scale-up window, scale down only to the highest of the scale-down window.
/// With both windows at zero this is the newest recommendation.
pub(crate) fn stabilize(
    current: u32,
    recommendations: &TimedWindow<u32>,
    now: f64,
    up_window: f64,
    down_window: f64,
) -> u32 {
    let up_floor = recommendations.within(now, up_window).min();
    let down_ceiling = recommendations.within(now, down_window).max();
    let raised = up_floor.map_or(current, |floor| current.max(floor));
    down_ceiling.map_or(raised, |ceiling| raised.min(ceiling))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(entries: &[(f64, u32)]) -> TimedWindow<u32> {
        let mut w = TimedWindow::default();
        for &(at, v) in entries {
            w.push(at, v);
        }
        w
    }

    #[test]
    fn prune_drops_only_entries_older_than_the_span() {
        let mut w = window(&[(0.0, 1), (5.0, 2), (10.0, 3)]);
        w.prune(12.0, 7.0); // cutoff 5.0: keeps 5.0 and 10.0
        assert_eq!(w.within(12.0, 100.0).collect::<Vec<_>>(), vec![2, 3]);
    }

    #[test]
    fn zero_span_sees_only_the_newest_entry() {
        let w = window(&[(0.0, 1), (10.0, 3)]);
        assert_eq!(w.within(10.0, 0.0).collect::<Vec<_>>(), vec![3]);
    }

    #[test]
    fn mean_within_averages_the_span() {
        let mut w = TimedWindow::default();
        for (at, v) in [(0.0, 100.0), (4.0, 10.0), (5.0, 20.0), (6.0, 30.0)] {
            w.push(at, v);
        }
        // span 3 at t=6: entries after t=3 -> (10 + 20 + 30) / 3 = 20
        assert_eq!(mean_within(&w, 6.0, 3.0), Some(20.0));
        assert_eq!(mean_within(&TimedWindow::default(), 6.0, 3.0), None);
    }

    #[test]
    fn scale_down_uses_the_highest_recommendation_of_its_window() {
        // Recommendations 8, 12, 5 within 300 s; current 10: down only to 12
        // -> current stays 10 (12 > 10 means no scale-down allowed).
        let w = window(&[(0.0, 8), (100.0, 12), (200.0, 5)]);
        assert_eq!(stabilize(10, &w, 200.0, 0.0, 300.0), 10);
        // After t=100 leaves the window (t=401: cutoff 101), the max is 5.
        let w = window(&[(100.0, 12), (200.0, 5), (401.0, 5)]);
        assert_eq!(stabilize(10, &w, 401.0, 0.0, 300.0), 5);
    }

    #[test]
    fn scale_up_uses_the_lowest_recommendation_of_its_window() {
        // Recs 4 (t=0), 9 (t=30), 12 (t=60); a 60 s up window at t=60 holds
        // those after t=0: min(9, 12) = 9, so current 3 goes up to 9 only.
        let w = window(&[(0.0, 4), (30.0, 9), (60.0, 12)]);
        assert_eq!(stabilize(3, &w, 60.0, 60.0, 0.0), 9);
        // At t=30 the window (after t=-30) holds 4 and 9: up to 4.
        assert_eq!(
            stabilize(3, &window(&[(0.0, 4), (30.0, 9)]), 30.0, 60.0, 0.0),
            4
        );
        // With no up window, the newest (12) wins.
        assert_eq!(stabilize(3, &w, 60.0, 0.0, 0.0), 12);
    }
}
