//! Time-aware smoothing: an EWMA for the stable path and Holt's double
//! exponential smoothing (level + trend) for the forecast. Both take the
//! time between samples into account (`alpha = 1 - 2^(-dt / half_life)`),
//! so irregular tick spacing gives the same result as regular ticks would.

/// Holt's level follows demand with a half-life of this fraction of the
/// smoothing half-life: the forecast must react faster than the stable path,
/// or it would never raise it.
pub const HOLT_LEVEL_HALF_LIFE_FRACTION: f64 = 0.5;
/// Holt's trend is smoothed over this multiple of the smoothing half-life:
/// a slow trend keeps noise from being extrapolated over the horizon.
pub const HOLT_TREND_HALF_LIFE_FACTOR: f64 = 2.0;
/// The forecast stays off until this many samples have been seen (the trend
/// of the first few samples is mostly noise).
pub const HOLT_MIN_SAMPLES: u32 = 6;

/// A sample further from its smoother's prediction than this many mean
/// absolute deviations (of the earlier samples from their predictions) is
/// a level shift (see [`LevelShift`]). Six is far in the tail of noise
/// (about five standard deviations for a normal one) and well inside a
/// step: the bench's step and spike profiles move by tens of them.
pub const LEVEL_SHIFT_DEVIATIONS: f64 = 6.0;

/// The weight of a new sample arriving `dt` seconds after the previous one.
/// A zero or negative half-life means no smoothing (weight 1).
pub(crate) fn alpha(dt: f64, half_life: f64) -> f64 {
    if half_life <= 0.0 || !half_life.is_finite() {
        return 1.0;
    }
    1.0 - (-dt.max(0.0) / half_life).exp2()
}

/// Tells a level shift (demand stepped and stays) from noise, for a
/// smoother that should take a step at once rather than average it in
/// over minutes: the EWMA would keep a fleet sized for a burst that ended
/// for several half-lives, and Holt would read a step as a trend and
/// extrapolate it over the horizon.
///
/// A sample is a shift when its innovation (the sample minus the
/// smoother's prediction) exceeds [`LEVEL_SHIFT_DEVIATIONS`] times the mean
/// absolute innovation so far (a time-aware EWMA), never taken below the
/// square root of the level: a count of requests varies at least that much
/// between samples (Poisson). Nothing is a shift until [`HOLT_MIN_SAMPLES`]
/// samples were seen. A shift enters the mean clipped to the threshold, so
/// the mean grows with it: a shift right after another needs a larger move
/// (on a noisy signal, one wild sample does not start a series of them).
#[derive(Clone, Debug, Default)]
pub(crate) struct LevelShift {
    mean_deviation: f64,
    samples: u32,
}

impl LevelShift {
    /// Whether a sample whose innovation is `innovation`, against a
    /// prediction of `level`, `dt` seconds after the previous sample, is a
    /// level shift; the mean deviation (half-life `half_life`) learns from
    /// it either way.
    pub(crate) fn check(&mut self, innovation: f64, level: f64, dt: f64, half_life: f64) -> bool {
        if !innovation.is_finite() {
            return false;
        }
        let floor = level.abs().max(1.0).sqrt();
        let threshold = LEVEL_SHIFT_DEVIATIONS * self.mean_deviation.max(floor);
        self.samples = self.samples.saturating_add(1);
        let shifted = self.samples >= HOLT_MIN_SAMPLES && innovation.abs() > threshold;
        self.mean_deviation +=
            alpha(dt, half_life) * (innovation.abs().min(threshold) - self.mean_deviation);
        shifted
    }
}

/// Exponentially weighted moving average over time.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ewma {
    state: Option<(f64, f64)>, // (value, time of the last sample)
}

impl Ewma {
    /// Adds a sample taken at `at`; returns the new average. The first sample
    /// is taken as is; a sample at the same time as the previous one (or
    /// earlier) does not move the average.
    pub(crate) fn update(&mut self, value: f64, at: f64, half_life: f64) -> f64 {
        let next = match self.state {
            None => (value, at),
            Some((avg, last)) if at <= last => (avg, last),
            Some((avg, last)) => {
                let a = alpha(at - last, half_life);
                let next = avg + a * (value - avg);
                // An overflow must not poison the average for good.
                if next.is_finite() {
                    (next, at)
                } else {
                    (avg, last)
                }
            }
        };
        self.state = Some(next);
        next.0
    }

    /// As [`Ewma::update`], except that a level shift (told by `shifts`,
    /// whose mean deviation has the half-life `shift_half_life`) replaces
    /// the average at once. Returns the new average.
    pub(crate) fn update_or_shift(
        &mut self,
        value: f64,
        at: f64,
        half_life: f64,
        shifts: &mut LevelShift,
        shift_half_life: f64,
    ) -> f64 {
        match self.state {
            Some((avg, last))
                if at > last
                    && value.is_finite()
                    && shifts.check(value - avg, avg, at - last, shift_half_life) =>
            {
                self.state = Some((value, at));
                value
            }
            _ => self.update(value, at, half_life),
        }
    }

    pub(crate) fn value(&self) -> Option<f64> {
        self.state.map(|(v, _)| v)
    }
}

/// Holt's linear (double exponential) smoothing with time-aware weights.
#[derive(Clone, Debug, Default)]
pub(crate) struct Holt {
    level: f64,
    trend: f64, // per second
    last: f64,
    samples: u32,
    /// A level shift moves the level at once and keeps the trend.
    shifts: LevelShift,
}

impl Holt {
    /// Adds a sample taken at `at`, with the given half-lives for level and
    /// trend. Samples at or before the previous one are ignored.
    pub(crate) fn update(
        &mut self,
        value: f64,
        at: f64,
        level_half_life: f64,
        trend_half_life: f64,
    ) {
        if self.samples == 0 {
            *self = Holt {
                level: value,
                trend: 0.0,
                last: at,
                samples: 1,
                shifts: LevelShift::default(),
            };
            return;
        }
        let dt = at - self.last;
        if dt <= 0.0 {
            return;
        }
        let a = alpha(dt, level_half_life);
        let b = alpha(dt, trend_half_life);
        let predicted = self.level + self.trend * dt;
        let (level, trend) = if self
            .shifts
            .check(value - predicted, predicted, dt, trend_half_life)
        {
            // A step says nothing about the growth around it.
            (value, self.trend)
        } else {
            let level = a * value + (1.0 - a) * predicted;
            (
                level,
                b * (level - self.level) / dt + (1.0 - b) * self.trend,
            )
        };
        if !(level.is_finite() && trend.is_finite()) {
            // Overflow: start over (cold) rather than forecast garbage.
            *self = Holt::default();
            return;
        }
        self.level = level;
        self.trend = trend;
        self.last = at;
        self.samples = self.samples.saturating_add(1);
    }

    /// The demand expected `horizon` seconds after the last sample (never
    /// negative), or None while cold.
    pub(crate) fn forecast(&self, horizon: f64) -> Option<f64> {
        (self.samples >= HOLT_MIN_SAMPLES)
            .then(|| (self.level + self.trend * horizon.max(0.0)).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn ewma_moves_halfway_after_one_half_life() {
        // 0 at t=0, then 100 at t=30 with half-life 30: alpha = 1 - 2^-1 = 0.5 -> 50.
        let mut e = Ewma::default();
        assert!(close(e.update(0.0, 0.0, 30.0), 0.0));
        assert!(close(e.update(100.0, 30.0, 30.0), 50.0));
    }

    #[test]
    fn ewma_is_the_same_for_irregular_ticks() {
        // 100 held from t=0 on an average at 0: after 30 s it is 50 whatever
        // the spacing (one 30 s tick, or ticks at 1, 4, 12, 30).
        let mut one = Ewma::default();
        one.update(0.0, 0.0, 30.0);
        let a = one.update(100.0, 30.0, 30.0);
        let mut many = Ewma::default();
        many.update(0.0, 0.0, 30.0);
        let mut b = 0.0;
        for t in [1.0, 4.0, 12.0, 30.0] {
            b = many.update(100.0, t, 30.0);
        }
        assert!(close(a, b), "{a} vs {b}");
    }

    #[test]
    fn ewma_ignores_samples_that_do_not_advance_time() {
        let mut e = Ewma::default();
        e.update(10.0, 5.0, 30.0);
        assert!(close(e.update(1000.0, 5.0, 30.0), 10.0));
        assert!(close(e.update(1000.0, 4.0, 30.0), 10.0));
    }

    #[test]
    fn holt_is_cold_until_enough_samples() {
        let mut h = Holt::default();
        for i in 0..HOLT_MIN_SAMPLES - 1 {
            h.update(10.0, f64::from(i), 5.0, 10.0);
            assert_eq!(h.forecast(30.0), None);
        }
        h.update(10.0, 100.0, 5.0, 10.0);
        assert!(h.forecast(30.0).is_some());
    }

    #[test]
    fn holt_extrapolates_a_ramp() {
        // Demand 2 t (slope 2/s) sampled every second for 300 s: the trend
        // converges to 2/s, so the forecast 30 s ahead is about 2 x 330 = 660.
        let mut h = Holt::default();
        for i in 0..=300 {
            let t = f64::from(i);
            h.update(2.0 * t, t, 5.0, 10.0);
        }
        let f = h.forecast(30.0).unwrap_or(0.0);
        assert!((f - 660.0).abs() < 5.0, "forecast {f}");
    }

    #[test]
    fn holt_forecast_of_a_constant_is_the_constant_and_never_negative() {
        let mut h = Holt::default();
        for i in 0..50 {
            h.update(40.0, f64::from(i), 5.0, 10.0);
        }
        assert!(close(h.forecast(30.0).unwrap_or(0.0), 40.0));
        let mut falling = Holt::default();
        for i in 0..50 {
            falling.update(f64::from(100 - 2 * i).max(0.0), f64::from(i), 5.0, 10.0);
        }
        assert_eq!(falling.forecast(300.0), Some(0.0));
    }

    #[test]
    fn a_level_shift_is_a_move_beyond_six_mean_deviations_once_warm() {
        // Level 100: the floor is sqrt(100) = 10, the threshold 60.
        let mut quiet = LevelShift::default();
        // Cold: even a huge move is no shift before HOLT_MIN_SAMPLES.
        for _ in 1..HOLT_MIN_SAMPLES {
            assert!(!quiet.check(1000.0, 100.0, 1.0, 60.0));
        }
        let mut warm = LevelShift::default();
        for _ in 1..HOLT_MIN_SAMPLES {
            assert!(!warm.check(0.0, 100.0, 1.0, 60.0));
        }
        let mut a = warm.clone();
        assert!(!a.check(-60.0, 100.0, 1.0, 60.0), "at the threshold");
        let mut b = warm.clone();
        assert!(b.check(-61.0, 100.0, 1.0, 60.0), "past it, either way");
        // Noise raises the threshold: innovations of 20 -> 6 x 20 = 120.
        let mut noisy = LevelShift::default();
        for i in 0..600 {
            let innovation = if i % 2 == 0 { 20.0 } else { -20.0 };
            assert!(!noisy.check(innovation, 100.0, 1.0, 60.0));
        }
        assert!(!noisy.clone().check(110.0, 100.0, 1.0, 60.0));
        // A shift enters the mean deviation clipped to the threshold, so
        // the next sample needs a larger move: a shift 10 s after the last
        // sample moves the mean (half-life 60 s) to 20 + (120 - 20) x (1 -
        // 2^(-1/6)) = 30.9, and the threshold to 185.
        assert!(noisy.check(130.0, 100.0, 10.0, 60.0));
        assert!(!noisy.check(150.0, 100.0, 1.0, 60.0));
        // NaN is never a shift.
        assert!(!LevelShift::default().check(f64::NAN, 100.0, 1.0, 60.0));
    }

    #[test]
    fn holt_takes_a_level_shift_at_once_and_keeps_its_trend() {
        // A ramp of 1 per second from 400, then a step of +200 on top.
        let mut h = Holt::default();
        for i in 0..=300 {
            h.update(400.0 + f64::from(i), f64::from(i), 5.0, 60.0);
        }
        let before = h.forecast(10.0).unwrap_or(0.0);
        assert!((before - 710.0).abs() < 1.0, "ramp forecast {before}");
        h.update(400.0 + 301.0 + 200.0, 301.0, 5.0, 60.0);
        let after = h.forecast(10.0).unwrap_or(0.0);
        assert!(
            (after - 911.0).abs() < 1.0,
            "level 901 + 10 s of trend: {after}"
        );
        // An EWMA with a shift detector takes it at once as well.
        let mut e = Ewma::default();
        let mut shifts = LevelShift::default();
        for i in 0..100 {
            e.update_or_shift(50.0, f64::from(i), 30.0, &mut shifts, 60.0);
        }
        assert_eq!(
            e.update_or_shift(200.0, 100.0, 30.0, &mut shifts, 60.0),
            200.0
        );
        // The next sample, 10 above, is averaged in.
        let avg = e.update_or_shift(210.0, 101.0, 30.0, &mut shifts, 60.0);
        assert!(avg > 200.0 && avg < 201.0, "{avg}");
    }
}
