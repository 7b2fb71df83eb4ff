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

    /// The values stamped after `from` and at or before `to`.
    pub(crate) fn between(&self, from: f64, to: f64) -> impl Iterator<Item = T> + '_ {
        self.entries
            .iter()
            .filter(move |&&(at, _)| at > from && at <= to)
            .map(|&(_, value)| value)
    }

    /// The oldest `(time, value)` of the last `span` seconds (see `within`).
    pub(crate) fn oldest_within(&self, now: f64, span: f64) -> Option<(f64, T)> {
        self.stamped_within(now, span).next()
    }

    /// The values of the last `span` seconds: stamped after `now - span`,
    /// plus those stamped at `now` itself (so a zero span still sees the
    /// newest value).
    pub(crate) fn within(&self, now: f64, span: f64) -> impl Iterator<Item = T> + '_ {
        self.stamped_within(now, span).map(|(_, value)| value)
    }

    /// The `(time, value)` entries of `within`, oldest first.
    fn stamped_within(&self, now: f64, span: f64) -> impl Iterator<Item = (f64, T)> + '_ {
        let cutoff = now - span.max(0.0);
        self.entries
            .iter()
            .filter(move |&&(at, _)| at > cutoff || at >= now)
            .copied()
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

/// The scale-down window is split into this many parts for
/// [`early_scale_down`].
pub const EARLY_DOWN_PARTS: u32 = 5;
/// A collapse (see [`early_scale_down`]) is read over this fraction of the
/// scale-down window: 15 s of the default 300 s.
pub const COLLAPSE_PARTS: u32 = 20;
/// A collapse asks for at most a fleet divided by this.
pub const COLLAPSE_DIVISOR: u64 = 5;

/// A scale-down that need not wait out the whole scale-down window: the
/// window exists to ride out noise, and three patterns are not noise.
/// `pods` holds the pods each tick asked for (the engine passes the pods
/// for each tick's demand).
///
/// - A collapse: the newest twentieth of the window (15 s of 300 s) asked
///   for at most a fifth of `fleet` (a spike that ended): the deeper the
///   fall, the less of it needs watching.
/// - A clear drop: the newest fifth of the window asked for at most half
///   of `fleet` (a burst that ended, a step down).
/// - A steady decline: each fifth of a full window asked for fewer pods at
///   its highest than the fifth before it (a ramp down; noise rarely falls
///   five times in a row).
///
/// `fleet` is the current fleet, or the one before the scale-downs in
/// progress, so that a drop the step limits cut short stays a drop. The
/// fleet may go down to the highest of the part read (None: wait for the
/// window).
pub(crate) fn early_scale_down(
    pods: &TimedWindow<u32>,
    now: f64,
    window: f64,
    fleet: u32,
) -> Option<u32> {
    if !(window.is_finite() && window > 0.0) {
        return None;
    }
    let collapse = window / f64::from(COLLAPSE_PARTS);
    if let Some(newest) = pods.between(now - collapse, now).max()
        && u64::from(newest) * COLLAPSE_DIVISOR <= u64::from(fleet)
    {
        return Some(newest);
    }
    let part = window / f64::from(EARLY_DOWN_PARTS);
    let highest = |i: u32| {
        let to = now - part * f64::from(i);
        pods.between(to - part, to).max()
    };
    let newest = highest(0)?;
    if u64::from(newest) * 2 <= u64::from(fleet) {
        return Some(newest);
    }
    let mut newer = newest;
    for i in 1..EARLY_DOWN_PARTS {
        let older = highest(i)?;
        if newer >= older {
            return None;
        }
        newer = older;
    }
    Some(newest)
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

    /// A window of `entries` with each value replaced by `f(at, value)`.
    fn edited(entries: &[(f64, u32)], f: impl Fn(f64, u32) -> u32) -> TimedWindow<u32> {
        let edited: Vec<(f64, u32)> = entries.iter().map(|&(at, v)| (at, f(at, v))).collect();
        window(&edited)
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
    fn a_clear_drop_scales_down_before_the_window_ends() {
        // 20 pods until t=200, then 9 for the last 60 s (a fifth of 300 s):
        // 9 x 2 <= 20, so down to 9 at t=300 though 20 is still in the window.
        let mut entries: Vec<(f64, u32)> = (0..=40).map(|i| (f64::from(i) * 5.0, 20)).collect();
        entries.extend((1..=20).map(|i| (200.0 + f64::from(i) * 5.0, 9)));
        let w = window(&entries);
        assert_eq!(early_scale_down(&w, 300.0, 300.0, 20), Some(9));
        // 11 is more than half of 20: not a clear drop, and 20, 20, 20, 20
        // then 11 is no steady decline: wait.
        let w = edited(&entries, |_, v| if v == 9 { 11 } else { v });
        assert_eq!(early_scale_down(&w, 300.0, 300.0, 20), None);
    }

    #[test]
    fn a_collapse_scales_down_after_a_twentieth_of_the_window() {
        // 100 pods until t=285, then 20 for the last 15 s (a twentieth of
        // 300 s): 20 x 5 <= 100, down to 20 at t=300, long before a fifth
        // of the window has passed.
        let mut entries: Vec<(f64, u32)> = (0..=57).map(|i| (f64::from(i) * 5.0, 100)).collect();
        entries.extend([(290.0, 20), (295.0, 20), (300.0, 20)]);
        let w = window(&entries);
        assert_eq!(early_scale_down(&w, 300.0, 300.0, 100), Some(20));
        // 21 is more than a fifth of 100: wait (15 s is no clear drop yet).
        let w21 = edited(&entries, |_, v| if v == 20 { 21 } else { v });
        assert_eq!(early_scale_down(&w21, 300.0, 300.0, 100), None);
        // Judged against the fleet before the scale-downs in progress.
        assert_eq!(early_scale_down(&w21, 300.0, 300.0, 105), Some(21));
        // 100 still asked for 10 s ago: the last 15 s are no collapse.
        let recent = edited(&entries, |at, v| if at == 290.0 { 100 } else { v });
        assert_eq!(early_scale_down(&recent, 300.0, 300.0, 100), None);
    }

    #[test]
    fn a_steady_decline_scales_down_before_the_window_ends() {
        // Fifths of a 300 s window at t=300: (0,60] 30, (60,120] 28,
        // (120,180] 26, (180,240] 24, (240,300] 22: each lower, down to 22.
        let entries: Vec<(f64, u32)> = (1..=60)
            .map(|i| {
                let at = f64::from(i) * 5.0;
                (at, 30 - 2 * ((i - 1) / 12))
            })
            .collect();
        let w = window(&entries);
        assert_eq!(early_scale_down(&w, 300.0, 300.0, 30), Some(22));
        // One fifth as high as the one before it: no steady decline.
        let flat = edited(&entries, |_, v| if v == 26 { 28 } else { v });
        assert_eq!(early_scale_down(&flat, 300.0, 300.0, 30), None);
        // A window not yet full (no recommendation in its oldest fifth).
        let young = window(&entries[12..]);
        assert_eq!(early_scale_down(&young, 300.0, 300.0, 30), None);
        // No window, no early scale-down.
        assert_eq!(early_scale_down(&w, 300.0, 0.0, 30), None);
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
