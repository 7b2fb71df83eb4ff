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

/// The weight of a new sample arriving `dt` seconds after the previous one.
/// A zero or negative half-life means no smoothing (weight 1).
pub(crate) fn alpha(dt: f64, half_life: f64) -> f64 {
    if half_life <= 0.0 || !half_life.is_finite() {
        return 1.0;
    }
    1.0 - (-dt.max(0.0) / half_life).exp2()
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
        let level = a * value + (1.0 - a) * predicted;
        let trend = b * (level - self.level) / dt + (1.0 - b) * self.trend;
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
}
