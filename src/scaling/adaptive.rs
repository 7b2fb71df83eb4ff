//! The adaptive concurrency limit: a gradient controller on latency, in the
//! spirit of Netflix's Gradient2 and Envoy's adaptive concurrency filter.
//! Pure: the latency, the load and the time are arguments.
//!
//! # The rule
//!
//! Each [`AdaptiveLimit::step`] gets the service's latency `l` (seconds, e.g.
//! the mean over the last few seconds), the requests in flight per ready pod
//! `c` (when known), and the time `now`. With `L` the current limit:
//!
//! 1. **Baseline** `b`, the latency without load. The first sample sets it;
//!    lower samples pull it down, smoothed like the limit (one odd sample
//!    only nudges it). Once per `baseline_window` it is
//!    re-learned, up or down, from the lowest latency seen in that window
//!    *while lightly loaded* (`c <= L / 2`): a window without such samples
//!    keeps `b`, so a sustained overload never passes for the new normal,
//!    while a service that became slower for good is followed after a quiet
//!    period.
//! 2. **Gradient** `g = clamp(tolerance x b / l, 0.5, 2.0)`: above 1 while the
//!    latency stays near its baseline (room to grow), exactly 1 at
//!    `l = tolerance x b`, below 1 as the latency rises past it.
//! 3. **Target** `L* = L x g`. While the service is app-limited (`c < L / 2`,
//!    or `c` unknown) the limit does not grow: low load says nothing about the
//!    limit (Gradient2's rule); it still shrinks on high latency.
//! 4. **Smoothing** `L <- L + a x (L* - L)` with `a = 1 - 2^(-dt / halfLife)`,
//!    `dt` the time since the previous step: irregular ticks give the same
//!    path, and a repeated step at the same time changes nothing.
//! 5. **Bounds**: `L` stays within `[min, max]`.
//!
//! The fixed point is `l = tolerance x b` at the operating point. When the
//! load presented to a pod is the limit itself (a saturated limiter), and the
//! latency grows past a knee `k` as `b x (1 + slope x (c/k - 1))`, the limit
//! settles at `k x (1 + (tolerance - 1) / slope)`. When the autoscaler keeps
//! each pod at `utilization x L` instead, it settles at that divided by the
//! utilization.
//!
//! The sinks get an integer, [`AdaptiveLimit::published`]: `round(L)`, moved
//! only when `L` is [`PUBLISH_HYSTERESIS`] or more away from it, so a limit
//! hovering around x.5 does not rewrite the sinks on every tick.
//!
//! Bad input (NaN, infinite, zero or negative latency) holds the limit.
use super::smoothing::alpha;

/// One step scales the limit by at least this: a latency spike at most
/// halves it before smoothing (Gradient2 and Envoy use the same floor).
pub const MIN_GRADIENT: f64 = 0.5;
/// One step scales the limit by at most this (Envoy's ceiling).
pub const MAX_GRADIENT: f64 = 2.0;
/// The limit grows only while the load per pod is at least this fraction of
/// it; below, the service is app-limited (Gradient2 uses a half).
pub const APP_LIMITED_FRACTION: f64 = 0.5;
/// The published integer moves only when the limit is this far from it.
pub const PUBLISH_HYSTERESIS: f64 = 0.75;
/// A limit below one request is no limit a service can apply.
pub const LOWEST_LIMIT: f64 = 1.0;

/// The knobs of the controller, validated by the caller (see
/// `api::v1alpha1::AdaptiveLimits`); out-of-range values are tolerated
/// (sanitized), never a panic.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveConfig {
    /// The limit never goes below this (at least 1).
    pub min_limit: f64,
    /// The limit never goes above this.
    pub max_limit: f64,
    /// The limit before the first measurement.
    pub initial_limit: f64,
    /// Latency up to `tolerance x baseline` still counts as near the
    /// baseline; greater than 1.
    pub tolerance: f64,
    /// Half-life of the smoothing of the limit, in seconds.
    pub smoothing_half_life_secs: f64,
    /// How often the baseline is re-learned from light-load samples, in
    /// seconds.
    pub baseline_window_secs: f64,
}

impl Default for AdaptiveConfig {
    fn default() -> Self {
        AdaptiveConfig {
            min_limit: 1.0,
            max_limit: 1000.0,
            initial_limit: 10.0,
            tolerance: 1.1,
            smoothing_half_life_secs: 30.0,
            baseline_window_secs: 600.0,
        }
    }
}

impl AdaptiveConfig {
    /// `(min, max)`, finite, with `1 <= min <= max`.
    fn bounds(&self) -> (f64, f64) {
        let min = finite_or(self.min_limit, LOWEST_LIMIT).max(LOWEST_LIMIT);
        let max = finite_or(self.max_limit, min).max(min);
        (min, max)
    }

    fn clamp(&self, limit: f64) -> f64 {
        let (min, max) = self.bounds();
        finite_or(limit, min).clamp(min, max)
    }

    fn tolerance(&self) -> f64 {
        finite_or(self.tolerance, 1.0).max(1.0)
    }
}

fn finite_or(value: f64, fallback: f64) -> f64 {
    if value.is_finite() { value } else { fallback }
}

/// What one step saw and did.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Step {
    /// `tolerance x baseline / latency`, clamped; `None` when held on bad input.
    pub gradient: Option<f64>,
    /// Why the limit did not follow the gradient, if it did not.
    pub held: Option<Hold>,
}

/// Why a step left the limit where it was (or let it only shrink).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    /// The latency is NaN, infinite, zero or negative.
    InvalidLatency,
    /// The load per pod is below half the limit (or unknown): no growth.
    AppLimited,
}

impl Hold {
    /// The CamelCase name used in status.
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::InvalidLatency => "InvalidLatency",
            Hold::AppLimited => "AppLimited",
        }
    }
}

/// The controller's state: the limit, the learned baseline, and the time of
/// the last step.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveLimit {
    limit: f64,
    published: u32,
    baseline: Option<f64>,
    /// Start of the current baseline window, and the lowest light-load
    /// latency seen in it.
    window_start: Option<f64>,
    lightest: Option<f64>,
    last_step: Option<f64>,
}

impl AdaptiveLimit {
    /// A fresh controller at `config.initial_limit` (within the bounds).
    pub fn new(config: &AdaptiveConfig) -> Self {
        Self::restore(config, config.initial_limit, None)
    }

    /// A controller resuming from a known limit and baseline (e.g. what the
    /// policy's status recorded before a restart). Invalid values are
    /// replaced: the limit by the initial one, the baseline by none.
    pub fn restore(config: &AdaptiveConfig, limit: f64, baseline: Option<f64>) -> Self {
        let limit = if limit.is_finite() && limit > 0.0 {
            config.clamp(limit)
        } else {
            config.clamp(config.initial_limit)
        };
        AdaptiveLimit {
            limit,
            published: round_limit(limit),
            baseline: baseline.filter(|b| b.is_finite() && *b > 0.0),
            window_start: None,
            lightest: None,
            last_step: None,
        }
    }

    /// The limit, unrounded.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// The integer limit the sinks get (see the module docs).
    pub fn published(&self) -> u32 {
        self.published
    }

    /// The learned latency without load, in seconds.
    pub fn baseline(&self) -> Option<f64> {
        self.baseline
    }

    /// One measurement: `latency_secs` of the service, `per_pod_concurrency`
    /// (requests in flight per ready pod; `None` when unknown), at `now`
    /// (seconds on the caller's clock). `config` may differ from the last
    /// step's (a spec edit): the limit is brought within its bounds.
    pub fn step(
        &mut self,
        config: &AdaptiveConfig,
        latency_secs: f64,
        per_pod_concurrency: Option<f64>,
        now: f64,
    ) -> Step {
        self.limit = config.clamp(self.limit);
        let dt = self.advance_clock(now);
        if !(latency_secs.is_finite() && latency_secs > 0.0) {
            self.publish(config);
            return Step {
                gradient: None,
                held: Some(Hold::InvalidLatency),
            };
        }
        let load = per_pod_concurrency.filter(|c| c.is_finite() && *c >= 0.0);
        let baseline = self.learn_baseline(config, latency_secs, load, dt, now);

        let gradient =
            (config.tolerance() * baseline / latency_secs).clamp(MIN_GRADIENT, MAX_GRADIENT);
        let app_limited = load.is_none_or(|c| c < self.limit * APP_LIMITED_FRACTION);
        let (target, held) = if gradient > 1.0 && app_limited {
            (self.limit, Some(Hold::AppLimited))
        } else {
            (self.limit * gradient, None)
        };
        let a = alpha(dt, config.smoothing_half_life_secs);
        self.limit = config.clamp(self.limit + a * (target - self.limit));
        self.publish(config);
        Step {
            gradient: Some(gradient),
            held,
        }
    }

    /// Seconds since the previous step (0 on the first, or when the clock
    /// did not move forward), and remember `now`.
    fn advance_clock(&mut self, now: f64) -> f64 {
        if !now.is_finite() {
            return 0.0;
        }
        match self.last_step {
            Some(last) if now > last => {
                self.last_step = Some(now);
                now - last
            }
            Some(_) => 0.0,
            None => {
                self.last_step = Some(now);
                0.0
            }
        }
    }

    /// Update the baseline with a valid latency sample; returns it.
    fn learn_baseline(
        &mut self,
        config: &AdaptiveConfig,
        latency: f64,
        load: Option<f64>,
        dt: f64,
        now: f64,
    ) -> f64 {
        let light = load.is_some_and(|c| c <= self.limit * APP_LIMITED_FRACTION);
        if light {
            self.lightest = Some(self.lightest.map_or(latency, |l| l.min(latency)));
        }
        if now.is_finite() {
            let start = *self.window_start.get_or_insert(now);
            if now - start >= config.baseline_window_secs.max(0.0) {
                if let Some(lightest) = self.lightest.take() {
                    self.baseline = Some(lightest);
                }
                self.window_start = Some(now);
            }
        }
        let baseline = match self.baseline {
            Some(b) if latency < b => {
                let a = alpha(dt, config.smoothing_half_life_secs);
                // This form cannot cancel out to 0 when b is huge.
                let pulled = b * (1.0 - a) + latency * a;
                if pulled.is_finite() && pulled > 0.0 {
                    pulled
                } else {
                    latency
                }
            }
            Some(b) => b,
            None => latency,
        };
        self.baseline = Some(baseline);
        baseline
    }

    fn publish(&mut self, config: &AdaptiveConfig) {
        let (min, max) = config.bounds();
        let published = f64::from(self.published);
        if (self.limit - published).abs() >= PUBLISH_HYSTERESIS
            || published < min.ceil()
            || published > max.floor()
        {
            self.published = round_limit(self.limit);
        }
    }
}

/// The nearest integer, at least 1 (saturating at `u32::MAX`).
fn round_limit(limit: f64) -> u32 {
    // `as` saturates; the limit is finite and at least 1 here.
    (limit.round() as u32).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Latency of a pod carrying `c` requests: `base` up to the knee `k`,
    /// then growing by `slope` per knee-width (loadsim's `Knee`).
    fn knee_latency(c: f64, base: f64, k: f64, slope: f64) -> f64 {
        base * (1.0 + slope * (c / k - 1.0).max(0.0))
    }

    fn config() -> AdaptiveConfig {
        AdaptiveConfig {
            min_limit: 1.0,
            max_limit: 200.0,
            initial_limit: 4.0,
            tolerance: 1.1,
            smoothing_half_life_secs: 10.0,
            baseline_window_secs: 600.0,
        }
    }

    /// Runs the loop for `secs` with ticks of `dt`; the load per pod is
    /// `load(limit)`. Returns the limits seen.
    fn run(
        config: &AdaptiveConfig,
        a: &mut AdaptiveLimit,
        secs: f64,
        dt: f64,
        load: impl Fn(f64) -> f64,
        latency: impl Fn(f64) -> f64,
    ) -> Vec<f64> {
        let mut out = Vec::new();
        let start = a.last_step.map_or(1000.0, |t| t + dt);
        let mut t = 0.0;
        while t < secs {
            let c = load(a.limit());
            a.step(config, latency(c), Some(c), start + t);
            out.push(a.limit());
            t += dt;
        }
        out
    }

    #[test]
    fn a_saturated_limiter_converges_to_the_knee() {
        // Knee at 20 per pod, latency 100 ms below it, doubling per knee
        // width beyond (slope 2). Fixed point: 20 x (1 + 0.1 / 2) = 21.
        let c = config();
        let mut a = AdaptiveLimit::new(&c);
        let limits = run(
            &c,
            &mut a,
            900.0,
            1.0,
            |l| l,
            |n| knee_latency(n, 0.1, 20.0, 2.0),
        );
        let settled = &limits[limits.len() - 60..];
        for l in settled {
            assert!((l - 21.0).abs() < 0.5, "limit {l} not near 21");
        }
        assert_eq!(a.published(), 21);
        assert_eq!(a.baseline(), Some(0.1));
    }

    #[test]
    fn with_utilization_it_settles_at_the_knee_over_the_utilization() {
        // The autoscaler keeps each pod at 0.9 x the limit: the operating
        // point settles on 21, the limit at 21 / 0.9.
        let c = config();
        let mut a = AdaptiveLimit::new(&c);
        let limits = run(
            &c,
            &mut a,
            900.0,
            2.0,
            |l| 0.9 * l,
            |n| knee_latency(n, 0.1, 20.0, 2.0),
        );
        let last = *limits.last().unwrap();
        assert!((last - 21.0 / 0.9).abs() < 0.5, "limit {last}");
    }

    #[test]
    fn it_comes_down_from_above_the_knee() {
        let c = config();
        let mut a = AdaptiveLimit::restore(&c, 150.0, Some(0.1));
        let limits = run(
            &c,
            &mut a,
            900.0,
            1.0,
            |l| l,
            |n| knee_latency(n, 0.1, 20.0, 2.0),
        );
        let last = *limits.last().unwrap();
        assert!((last - 21.0).abs() < 0.5, "limit {last}");
        // It fell without overshooting far below the knee.
        let lowest = limits.iter().cloned().fold(f64::INFINITY, f64::min);
        assert!(lowest > 15.0, "undershot to {lowest}");
    }

    #[test]
    fn the_limit_stays_within_its_bounds() {
        let c = AdaptiveConfig {
            min_limit: 5.0,
            max_limit: 30.0,
            ..config()
        };
        let mut a = AdaptiveLimit::new(&c);
        assert_eq!(a.limit(), 5.0, "the initial limit is raised to the minimum");
        // Latency at baseline forever, load at the limit: grows to max only.
        let limits = run(&c, &mut a, 600.0, 1.0, |l| l, |_| 0.1);
        assert!(limits.iter().all(|l| (5.0..=30.0).contains(l)));
        assert_eq!(a.limit(), 30.0);
        assert_eq!(a.published(), 30);
        // A huge latency: down to min, never below.
        let limits = run(&c, &mut a, 600.0, 1.0, |l| l, |_| 50.0);
        assert!(limits.iter().all(|l| (5.0..=30.0).contains(l)));
        assert_eq!(a.limit(), 5.0);
        // Narrower bounds in a new config apply at the next step.
        let narrow = AdaptiveConfig {
            min_limit: 8.0,
            max_limit: 9.0,
            ..c
        };
        a.step(&narrow, 50.0, Some(5.0), 5000.0);
        assert_eq!(a.limit(), 8.0);
        assert_eq!(a.published(), 8);
    }

    #[test]
    fn smoothing_moves_half_way_per_half_life() {
        let c = config(); // tolerance 1.1, half-life 10 s
        let mut a = AdaptiveLimit::restore(&c, 20.0, Some(0.1));
        a.step(&c, 0.1, Some(20.0), 0.0); // starts the clock, no move
        assert_eq!(a.limit(), 20.0);
        // Latency 0.22 s: gradient 1.1 x 0.1 / 0.22 = 0.5, target 10.
        // One half-life later the limit is half-way there: 15.
        a.step(&c, 0.22, Some(20.0), 10.0);
        assert!((a.limit() - 15.0).abs() < 1e-9, "{}", a.limit());
        // The same step again (no time passed) changes nothing.
        a.step(&c, 0.22, Some(20.0), 10.0);
        assert!((a.limit() - 15.0).abs() < 1e-9);
        // Two ticks of 5 s equal one of 10 s for the same target.
        let mut one = AdaptiveLimit::restore(&c, 20.0, Some(0.1));
        let mut two = one.clone();
        one.step(&c, 0.1, Some(20.0), 0.0);
        two.step(&c, 0.1, Some(20.0), 0.0);
        // Gradient 1.1 at the baseline: target 22 from 20 (and 21.x).
        one.step(&c, 0.1, Some(20.0), 10.0);
        two.step(&c, 0.1, Some(20.0), 5.0);
        two.step(&c, 0.1, Some(20.0), 10.0);
        assert!((one.limit() - 21.0).abs() < 1e-9, "{}", one.limit());
        // Two 5 s steps: each moves 1 - 2^(-1/2) of the way to 1.1 x L.
        let a5 = 1.0 - 0.5f64.sqrt();
        let expected = 20.0 * (1.0 + a5 * 0.1) * (1.0 + a5 * 0.1);
        assert!((two.limit() - expected).abs() < 1e-9, "{}", two.limit());
    }

    #[test]
    fn the_gradient_is_bounded() {
        let c = config();
        let mut a = AdaptiveLimit::restore(&c, 20.0, Some(0.1));
        a.step(&c, 0.1, Some(20.0), 0.0);
        let step = a.step(&c, 100.0, Some(20.0), 1.0);
        assert_eq!(step.gradient, Some(MIN_GRADIENT));
        let mut b = AdaptiveLimit::restore(&c, 20.0, Some(1.0));
        b.step(&c, 1.0, Some(20.0), 0.0);
        // A latency far below the baseline: the gradient is capped, and the
        // baseline only moves part of the way (one second of a 10 s
        // half-life) towards the odd sample.
        let step = b.step(&c, 0.001, Some(20.0), 1.0);
        assert_eq!(step.gradient, Some(MAX_GRADIENT));
        let expected = 1.0 - alpha(1.0, 10.0) * 0.999;
        assert!((b.baseline().unwrap() - expected).abs() < 1e-12);
        assert!(expected > 0.9);
    }

    #[test]
    fn bad_latency_holds_the_limit() {
        let c = config();
        let mut a = AdaptiveLimit::restore(&c, 20.0, Some(0.1));
        a.step(&c, 0.1, Some(20.0), 0.0);
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, -1.0] {
            let before = a.clone();
            let step = a.step(&c, bad, Some(20.0), 100.0);
            assert_eq!(step.held, Some(Hold::InvalidLatency), "{bad}");
            assert_eq!(step.gradient, None);
            assert_eq!(a.limit(), before.limit());
            assert_eq!(a.baseline(), Some(0.1));
        }
        // Bad load counts as unknown (no growth), a bad clock as no time.
        let step = a.step(&c, 0.1, Some(f64::NAN), 200.0);
        assert_eq!(step.held, Some(Hold::AppLimited));
        let before = a.limit();
        a.step(&c, 0.5, Some(20.0), f64::NAN);
        assert_eq!(a.limit(), before);
    }

    #[test]
    fn an_app_limited_service_does_not_grow_but_shrinks() {
        let c = config();
        let mut a = AdaptiveLimit::restore(&c, 20.0, Some(0.1));
        a.step(&c, 0.1, Some(2.0), 0.0);
        let step = a.step(&c, 0.1, Some(2.0), 60.0);
        assert_eq!(step.held, Some(Hold::AppLimited));
        assert_eq!(a.limit(), 20.0);
        let step = a.step(&c, 0.1, None, 120.0);
        assert_eq!(step.held, Some(Hold::AppLimited));
        assert_eq!(a.limit(), 20.0);
        // High latency at low load: shrink anyway.
        let step = a.step(&c, 0.5, Some(2.0), 180.0);
        assert_eq!(step.held, None);
        assert!(a.limit() < 20.0);
    }

    #[test]
    fn sustained_overload_does_not_raise_the_baseline() {
        let c = AdaptiveConfig {
            baseline_window_secs: 60.0,
            ..config()
        };
        let mut a = AdaptiveLimit::restore(&c, 20.0, None);
        a.step(&c, 0.1, Some(20.0), 0.0);
        // Ten windows of high latency at full load.
        let mut t = 1.0;
        while t < 600.0 {
            a.step(&c, 0.3, Some(a.limit()), t);
            t += 1.0;
        }
        assert_eq!(a.baseline(), Some(0.1));
        // The service became slower for good: light-load samples at 0.2 s
        // replace the baseline at the end of a window.
        let limit = a.limit();
        while t < 800.0 {
            a.step(&c, 0.2, Some(limit * 0.2), t);
            t += 1.0;
        }
        assert_eq!(a.baseline(), Some(0.2));
    }

    #[test]
    fn the_published_limit_does_not_flap() {
        let c = config();
        let mut a = AdaptiveLimit::restore(&c, 10.4, Some(0.1));
        assert_eq!(a.published(), 10);
        // Around 10.5: stays 10 until the limit is 10.75 or more.
        a.limit = 10.6;
        a.publish(&c);
        assert_eq!(a.published(), 10);
        a.limit = 10.8;
        a.publish(&c);
        assert_eq!(a.published(), 11);
        a.limit = 10.4;
        a.publish(&c);
        assert_eq!(a.published(), 11);
        a.limit = 10.2;
        a.publish(&c);
        assert_eq!(a.published(), 10);
    }

    #[test]
    fn restore_rejects_nonsense() {
        let c = config();
        let a = AdaptiveLimit::restore(&c, f64::NAN, Some(-1.0));
        assert_eq!(a.limit(), 4.0);
        assert_eq!(a.baseline(), None);
        let a = AdaptiveLimit::restore(&c, 1e12, Some(0.05));
        assert_eq!(a.limit(), 200.0);
        assert_eq!(a.baseline(), Some(0.05));
    }

    fn any_f64() -> impl Strategy<Value = f64> {
        prop_oneof![
            6 => 0.0..10.0f64,
            1 => Just(0.0),
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => -10.0..0.0f64,
            1 => 1e6..1e300f64,
        ]
    }

    proptest! {
        #[test]
        fn the_limit_is_always_finite_and_bounded(
            min in 1.0..50.0f64,
            span in 0.0..500.0f64,
            tolerance in prop_oneof![1.0..3.0f64, Just(f64::NAN), Just(0.5)],
            half_life in prop_oneof![0.0..60.0f64, Just(f64::NAN)],
            steps in proptest::collection::vec((any_f64(), proptest::option::of(any_f64()), -5.0..30.0f64), 1..80),
        ) {
            let c = AdaptiveConfig {
                min_limit: min,
                max_limit: min + span,
                initial_limit: 10.0,
                tolerance,
                smoothing_half_life_secs: half_life,
                baseline_window_secs: 60.0,
            };
            let mut a = AdaptiveLimit::new(&c);
            let mut now = 0.0;
            for (latency, load, dt) in steps {
                now += dt;
                let step = a.step(&c, latency, load, now);
                prop_assert!(a.limit().is_finite());
                prop_assert!(a.limit() >= min && a.limit() <= min + span, "{}", a.limit());
                let published = f64::from(a.published());
                prop_assert!(published >= min.round().max(1.0) - 1.0 && published <= (min + span).round() + 1.0);
                if let Some(g) = step.gradient {
                    prop_assert!((MIN_GRADIENT..=MAX_GRADIENT).contains(&g));
                }
                if let Some(b) = a.baseline() {
                    prop_assert!(b.is_finite() && b > 0.0);
                }
            }
        }
    }
}
