//! The engine: state kept between ticks, and the pipeline of one tick:
//! check the readings → demand → smoothing, forecast, panic → recommendation
//! → stabilization windows → plan (tolerance, cooldown, steps) → bounds.
use super::demand::{self, Demand, QueueGrowth, QueueTrend, Readings};
use super::floor::RecurringFloor;
use super::limits::{bounds, clamp, pods_for};
use super::panic::{self, PanicState};
use super::plan::{self, Outcome, PlanInput};
use super::seasonal::Seasonal;
use super::smoothing::{
    Ewma, HOLT_LEVEL_HALF_LIFE_FRACTION, HOLT_TREND_HALF_LIFE_FACTOR, Holt, LevelShift,
};
use super::types::{Config, Decision, Details, Direction, Observation, Reason};
use super::window::{TimedWindow, early_scale_down, mean_within, stabilize};

/// After a scale-down the tolerance band holds scale-ups too, but never
/// past this fraction of a pod's concurrency limit: the band above the
/// planned capacity is `min(tolerance, HYSTERESIS_MAX_FILL / utilization -
/// 1)`. Near its limit a pod is filled by second-to-second variation in
/// the arrivals, and its requests queue: in `make bench`'s utilization
/// sweeps every autoscaler has many more violation seconds from 0.9 up.
/// At the default utilization (0.8) the band is the tolerance (0.8 x 1.1 =
/// 0.88 of the limit).
pub const HYSTERESIS_MAX_FILL: f64 = 0.9;

/// The decision engine for one policy. Pure: time is an argument, nothing
/// is read from the outside. Keep one per policy; feed it every tick.
#[derive(Clone, Debug)]
pub struct Engine {
    config: Config,
    /// The latest time seen; the engine's clock never goes back.
    clock: Option<f64>,
    /// Seconds between the two latest ticks (0 until there are two).
    tick_interval: f64,
    /// The fleet when the engine started, held as a scale-down
    /// recommendation for one scale-down window (see `hold_down_at_start`).
    start: Option<(f64, u32)>,
    queue_growth: QueueGrowth,
    steady: Ewma,
    /// Level shifts of the steady demand, taken by `steady` at once.
    steady_shifts: LevelShift,
    holt: Holt,
    /// Demand over the last season, for the seasonal forecast.
    seasonal: Seasonal,
    /// Steady demand over the forecast horizon: the growth the forecast
    /// may extrapolate.
    horizon_samples: TimedWindow<f64>,
    /// Demand with the saturation floor, over the panic window.
    panic_samples: TimedWindow<f64>,
    /// Measured demand (no saturation floor), over the panic window.
    recent_samples: TimedWindow<f64>,
    panic: PanicState,
    recommendations: TimedWindow<u32>,
    /// Pods for the peak demand of each tick, over the scale-down window.
    peaks: TimedWindow<u32>,
    /// Pods for the peak demand of each tick, over the floor's window.
    floor: RecurringFloor,
    /// Ready pods at the previous good tick; when the count last rose, and
    /// good ticks since.
    last_ready: Option<u32>,
    ready_rose: Option<(f64, u32)>,
    failures: u32,
    last_scale: Option<(f64, Direction)>,
    last_up: Option<f64>,
    last_down: Option<f64>,
    /// While the fleet comes down in consecutive scale-downs: when the
    /// first of them was, and the replicas before it.
    scaling_down_from: Option<(f64, u32)>,
}

/// What one good tick measured.
#[derive(Clone, Copy, Debug)]
struct Signals {
    readings: Readings,
    demand: Demand,
    smoothed: f64,
    forecast: Option<f64>,
    /// The seasonal forecast, when used (see `Seasonal`).
    seasonal: Option<f64>,
    panic_demand: f64,
    /// Mean measured demand over the panic window.
    recent_demand: f64,
    in_panic: bool,
}

impl Engine {
    pub fn new(config: Config) -> Engine {
        Engine {
            config,
            clock: None,
            tick_interval: 0.0,
            start: None,
            queue_growth: QueueGrowth::default(),
            steady: Ewma::default(),
            steady_shifts: LevelShift::default(),
            holt: Holt::default(),
            seasonal: Seasonal::default(),
            horizon_samples: TimedWindow::default(),
            panic_samples: TimedWindow::default(),
            recent_samples: TimedWindow::default(),
            panic: PanicState::default(),
            recommendations: TimedWindow::default(),
            peaks: TimedWindow::default(),
            floor: RecurringFloor::default(),
            last_ready: None,
            ready_rose: None,
            failures: 0,
            last_scale: None,
            last_up: None,
            last_down: None,
            scaling_down_from: None,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Spec changed: keep the windows and history, use the new rules.
    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    /// One tick. `now` is in seconds on the caller's clock, the clock of the
    /// samples' timestamps. A step back in time counts as no time passing:
    /// windows, cooldowns and smoothing wait until the clock passes the
    /// latest tick again (staleness is still judged against `now`).
    pub fn step(&mut self, obs: &Observation, now: f64) -> Decision {
        self.tick(obs, now, true)
    }

    /// Restart/failover warm-up: feed past observations (oldest first) so
    /// smoothing, forecast, panic and stabilization windows are warm. Records
    /// no scale action and no metric failure of its own.
    pub fn warm_up(&mut self, history: &[(f64, Observation)]) {
        for (at, obs) in history {
            self.tick(obs, *at, false);
        }
    }

    /// Restart: when the engine last scaled, and in which direction (from
    /// the policy's status), so cooldowns and step periods survive restarts.
    pub fn restore_last_scale(&mut self, at: f64, direction: Direction) {
        self.last_scale = Some((at, direction));
        match direction {
            Direction::Up => self.last_up = Some(at),
            Direction::Down => self.last_down = Some(at),
        }
    }

    fn tick(&mut self, obs: &Observation, now: f64, live: bool) -> Decision {
        let t = self.advance_clock(now, obs.current_replicas);
        let signals = demand::check(obs, now, &self.config)
            .filter(|_| self.per_pod_target_is_usable())
            .and_then(|readings| self.observe(readings, obs.ready_replicas, t));
        let decision = match signals {
            Some(signals) => {
                if live {
                    self.failures = 0;
                }
                self.decide(obs, &signals, t)
            }
            None => self.on_failure(obs, live),
        };
        if live {
            self.record(decision.replicas, obs.current_replicas, t);
        }
        decision
    }

    fn advance_clock(&mut self, now: f64, current: u32) -> f64 {
        // A NaN time (a caller bug) counts as no time passing.
        let t = match self.clock {
            Some(clock) if now.is_nan() || now <= clock => clock,
            None if now.is_nan() => 0.0,
            _ => now,
        };
        if self.start.is_none() {
            self.start = Some((t, current));
        }
        if let Some(clock) = self.clock
            && t > clock
        {
            self.tick_interval = t - clock;
        }
        self.clock = Some(t);
        t
    }

    /// Concurrency one pod is planned for: `concurrency_per_pod x utilization`.
    fn per_pod_target(&self) -> f64 {
        self.config.concurrency_per_pod * self.config.utilization
    }

    // A policy with no usable per-pod target (validation should prevent it)
    // is treated as unreadable: hold rather than divide by it.
    fn per_pod_target_is_usable(&self) -> bool {
        let p = self.per_pod_target();
        p.is_finite() && p > 0.0
    }

    /// Updates demand, smoothing, forecast and panic with a good reading.
    /// None when the numbers overflow (the tick then counts as a failure).
    fn observe(&mut self, readings: Readings, ready: u32, t: f64) -> Option<Signals> {
        let config = &self.config;
        // The growth rate is smoothed over the panic window: short, so a
        // growing queue is seen fast, but not sample-to-sample noise.
        let trend = readings.queue.map_or(QueueTrend::default(), |q| {
            self.queue_growth.observe(q, config.panic.window_secs)
        });
        self.ready_rose = match (self.last_ready, self.ready_rose) {
            (Some(last), _) if ready > last => Some((t, 0)),
            (_, Some((at, ticks))) => Some((at, ticks.saturating_add(1))),
            (_, None) => None,
        };
        // The Ready count is read live, the metrics a scrape later: pods
        // that became Ready since the last tick may serve nothing in these
        // samples yet. Judged against them, a full fleet would look half
        // empty and its demand would drop to its in-flight for a tick.
        let sampled_ready = self.last_ready.map_or(ready, |last| last.min(ready));
        self.last_ready = Some(ready);
        // New pods became Ready at this tick or the one before, or within
        // the panic window: they may be serving a backlog they took at once.
        let fresh_pods = self
            .ready_rose
            .is_some_and(|(at, ticks)| ticks <= 1 || t - at <= config.panic.window_secs);
        let demand = demand::demand(&readings, trend, sampled_ready, fresh_pods, config);
        if !demand.total().is_finite() {
            return None;
        }
        let half_life = config.smoothing_half_life_secs;
        // A step is taken at once (a burst that ended must not hold the
        // fleet for minutes); noise is averaged over the half-life.
        let steady = self.steady.update_or_shift(
            demand.steady,
            t,
            half_life,
            &mut self.steady_shifts,
            half_life * HOLT_TREND_HALF_LIFE_FACTOR,
        );
        let smoothed = steady + demand.drain;
        self.holt.update(
            demand.steady,
            t,
            half_life * HOLT_LEVEL_HALF_LIFE_FRACTION,
            half_life * HOLT_TREND_HALF_LIFE_FACTOR,
        );
        // Pods asked for at this tick are Ready a horizon from now; the next
        // tick's are one tick later. Demand that arrives in between is met
        // only by this tick's pods: look that far ahead.
        let prediction = config
            .prediction
            .as_ref()
            .map(|p| (p, p.horizon_secs + self.tick_interval.min(p.horizon_secs)));
        // The season is recorded at every tick, Holt warm or not.
        let seasonal = prediction.and_then(|(p, lead)| {
            self.seasonal
                .step(t, demand.steady, lead, p.season_secs?)
                .map(|f| f + demand.drain)
        });
        let trend = prediction.and_then(|(_, lead)| {
            let holt = self.holt.forecast(lead)?;
            self.horizon_samples.push(t, demand.steady);
            self.horizon_samples.prune(t, lead);
            Some(holt.min(growth_cap(demand.steady, &self.horizon_samples, t, lead)) + demand.drain)
        });
        // Either forecast only raises the demand; the larger wins.
        let forecast = match (trend, seasonal) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let window = config.panic.window_secs;
        self.panic_samples.push(t, demand.burst());
        self.panic_samples.prune(t, window);
        // The window's mean smooths noisy readings; an overload measured
        // from the arrivals is not noise and counts at once, in panic and
        // on the stable path (a full fleet 1.9x over its capacity waits
        // for no mean). A burst sized from the queue counts at once in
        // panic only: it is a single sample of a fleet that is otherwise
        // large enough.
        let panic_demand = mean_within(&self.panic_samples, t, window)
            .unwrap_or(demand.burst())
            .max(demand.overload)
            .max(demand.burst);
        self.recent_samples.push(t, demand.total());
        self.recent_samples.prune(t, window);
        let measured_overload = if demand.overload > 0.0 {
            demand.overload + demand.drain
        } else {
            0.0
        };
        let recent_demand = mean_within(&self.recent_samples, t, window)
            .unwrap_or(demand.total())
            .max(measured_overload);
        let triggered = panic::triggered(panic_demand, ready, self.per_pod_target(), config);
        let in_panic = self
            .panic
            .update(triggered, t, panic::panic_exit_secs(config));
        Some(Signals {
            readings,
            demand,
            smoothed,
            forecast,
            seasonal,
            panic_demand,
            recent_demand,
            in_panic,
        })
    }

    fn decide(&mut self, obs: &Observation, s: &Signals, t: f64) -> Decision {
        let per_pod = self.per_pod_target();
        let (stable_rec, within_tolerance) =
            self.stable_recommendation(s, per_pod, obs.current_replicas);
        let recommended = if s.in_panic {
            stable_rec.max(pods_for(s.panic_demand, per_pod))
        } else {
            stable_rec
        };
        let peak = clamp(
            pods_for(s.demand.total().max(s.smoothed), per_pod),
            bounds(&self.config),
        );
        let (stabilized, held_by_floor) = self.stabilized(
            obs.current_replicas,
            clamp(stable_rec, bounds(&self.config)),
            peak,
            t,
        );
        let input = PlanInput {
            config: &self.config,
            now: t,
            current: obs.current_replicas,
            recommended,
            stabilized,
            held_by_floor,
            in_panic: s.in_panic,
            within_tolerance,
            demand: s.demand.total(),
            last_scale: self.last_scale,
            last_up: self.last_up,
            last_down: self.last_down,
        };
        let outcome = plan::enforce_bounds(&self.config, obs.current_replicas, plan::plan(&input));
        let has_queue = s.readings.queue.is_some();
        let details = Details {
            in_flight: Some(s.readings.in_flight),
            queue_depth: s.readings.queue.map(|q| q.value),
            arrival_rate: s.readings.arrivals,
            demand: Some(s.demand.steady),
            drain: has_queue.then_some(s.demand.drain),
            smoothed: Some(s.smoothed),
            panic_demand: Some(s.panic_demand),
            forecast: s.forecast,
            seasonal_forecast: s.seasonal,
            per_pod_target: per_pod,
            recommended,
            limited_by: outcome.limited_by,
            in_panic: s.in_panic,
            consecutive_failures: 0,
        };
        decision(outcome, details)
    }

    /// Pods for the stable path, and whether that is the current count only
    /// because demand is within the tolerance band.
    ///
    /// Demand for the stable path follows the short window up at once and
    /// the smoothed demand down: the larger of the smoothed demand, the
    /// mean measured demand over the panic window and the forecast (a
    /// forecast only raises it). The saturation floor, a guess, drives only
    /// the panic path: it never enters the scale-down window. Any demand
    /// needs a pod.
    ///
    /// As in HPA, the tolerance applies to the usage ratio, demand /
    /// (current x per-pod target), before rounding, not to the rounded pod
    /// counts (at 7 to 12 pods any one-pod move would leave a 10% band).
    /// Below the current count and within `1 - tolerance` of it, the
    /// recommendation is the current count, and as such enters the
    /// scale-down window; further below, it is the pods for demand x (1 +
    /// tolerance), so a fleet that shrank keeps the tolerance as headroom.
    /// Above the current count the band holds only right after a
    /// scale-down (see [`Engine::up_band`]). For a policy that
    /// may scale to zero, the recommendation is zero once the whole panic
    /// window saw no demand at all (an EWMA never decays to exactly zero);
    /// the scale-down window then makes that last its full length.
    fn stable_recommendation(&self, s: &Signals, per_pod: f64, current: u32) -> (u32, bool) {
        let idle = s.panic_demand <= 0.0 && s.demand.total() <= 0.0;
        if idle && self.config.min_replicas == 0 {
            return (0, false);
        }
        // The short window's mean is noisy (a few samples): it raises the
        // fleet only when it is above the planned capacity by more than
        // twice the tolerance. A fleet shrinks to leave the tolerance as
        // headroom, so with a lower bar the next noisy window would grow it
        // back (a reversal: ±30% noise reversed in 13 of 20 simulated runs
        // at one tolerance, none at two). The EWMA and the forecast still
        // raise it without a band, and the panic path handles bursts.
        let capacity = f64::from(current) * per_pod;
        let recent =
            if current > 0 && s.recent_demand <= capacity * (1.0 + 2.0 * self.config.tolerance) {
                0.0
            } else {
                s.recent_demand
            };
        let stable_demand = s.smoothed.max(recent).max(s.forecast.unwrap_or(0.0));
        let ratio = stable_demand / (f64::from(current) * per_pod);
        // The slack keeps a ratio of exactly 1 +- the band inside it.
        if current > 0 && ratio <= 1.0 && 1.0 - ratio <= self.config.tolerance + 1e-9 {
            return (current, true);
        }
        if current > 0 && ratio > 1.0 && ratio - 1.0 <= self.up_band() + 1e-9 {
            return (current, true);
        }
        if current > 0 && ratio < 1.0 {
            // Below the band: down, but only as far as leaves the tolerance
            // as headroom, so the next scale-up needs demand to rise by the
            // tolerance, not by one noisy sample.
            let margin = 1.0 + self.config.tolerance;
            let down = pods_for(stable_demand * margin, per_pod)
                .max(1)
                .min(current);
            return (down, down == current);
        }
        (pods_for(stable_demand, per_pod).max(1), false)
    }

    /// How far above the planned capacity demand may go without a
    /// scale-up: zero, except right after a scale-down (the last scale
    /// action was down), where it is the tolerance, capped so that no pod
    /// is planned past [`HYSTERESIS_MAX_FILL`] of its limit.
    ///
    /// A scale-down leaves the tolerance as headroom, and demand that
    /// moves by the tolerance from one minute to the next would scale the
    /// fleet straight back up: a reversal for a pod that the utilization
    /// target's headroom covers anyway (the wc98 trace's minute bins did
    /// this about twice an hour). While the fleet grows, scale-ups need no
    /// band: under-provisioning costs SLO, and a ramp must be followed at
    /// once. Panic ignores the band.
    fn up_band(&self) -> f64 {
        if self
            .last_scale
            .is_none_or(|(_, direction)| direction != Direction::Down)
        {
            return 0.0;
        }
        let headroom = HYSTERESIS_MAX_FILL / self.config.utilization - 1.0;
        self.config.tolerance.min(headroom).max(0.0)
    }

    /// Records the (bounded) recommendation and applies the windows.
    ///
    /// `peak` is the pods for the higher of the smoothed demand and the
    /// demand measured at this tick. A scale-down goes no lower than the
    /// highest peak of the scale-down window: the smoothed demand averages
    /// away bursts that come and go faster than a pod starts, and a fleet
    /// sized for the average would miss each of them. Early scale-down (a
    /// collapse, a clear drop or a steady decline) reads the peaks, not the
    /// recommendations: while the tolerance band holds the recommendation at
    /// the current count, a decline is already under way in the demand (at
    /// the top of a ramp the held recommendations made the decline wait a
    /// whole window after the band let go). It never goes below the
    /// recommendation. Last, the recurring floor (see [`RecurringFloor`])
    /// holds any scale-down, early or not, at the pods for its percentile of
    /// the peaks while the demand keeps coming back to them.
    ///
    /// Returns the target and whether the floor is what held it up.
    fn stabilized(&mut self, current: u32, bounded: u32, peak: u32, t: f64) -> (u32, bool) {
        let up = self.config.scale_up.stabilization_window_secs;
        let down = self.config.scale_down.stabilization_window_secs;
        self.recommendations.push(t, bounded);
        self.recommendations.prune(t, up.max(down));
        self.peaks.push(t, peak);
        self.peaks.prune(t, down);
        let mut target = stabilize(current, &self.recommendations, t, up, down);
        if down > 0.0 && target < current {
            let highest = self
                .peaks
                .within(t, down)
                .chain(self.recommendations.within(t, down))
                .max()
                .unwrap_or(target);
            target = target.max(highest.min(current));
        }
        // A collapse or a clear drop is judged against the fleet before the
        // scale-downs in progress, if they began within the window: a step
        // limit that cut the first of them short must not leave the fleet
        // waiting out the window halfway down (a spike's 114 pods stopped
        // at 28 for 21, since 21 is not half of 28).
        let fleet = match self.scaling_down_from {
            Some((at, from)) if t - at < down => current.max(from),
            _ => current,
        };
        if self.config.early_scale_down
            && target > bounded
            && let Some(early) = early_scale_down(&self.peaks, t, down, fleet)
        {
            target = target.min(early.max(bounded));
        }
        let mut floored = None;
        if let Some(f) = &self.config.scale_down_floor {
            self.floor.push(t, peak, f.window_secs);
            // A recommendation of 0 (a policy that may scale to zero, and
            // no demand at all) is never held: that policy chose zero over
            // pods kept for the next burst.
            if target < current
                && bounded > 0
                && let Some(floor) = self.floor.floor(f.quantile)
                && floor.min(current) > target
            {
                target = floor.min(current);
                floored = Some(target);
            }
        }
        let held = self.hold_down_at_start(current, target, t, down);
        (held, floored == Some(held))
    }

    /// A fresh engine (no warm-up) has no scale-down history: it counts the
    /// fleet it found as a recommendation made at start, so it scales down
    /// only after one full scale-down window of its own observations.
    fn hold_down_at_start(&self, current: u32, target: u32, t: f64, down_window: f64) -> u32 {
        match self.start {
            Some((at, fleet)) if target < current && at > t - down_window => {
                target.max(fleet.min(current))
            }
            _ => target,
        }
    }

    /// Bad data: hold (never down); after `fallback.after_failures`
    /// consecutive failures go to the fallback replicas if that is up.
    fn on_failure(&mut self, obs: &Observation, live: bool) -> Decision {
        let current = obs.current_replicas;
        if live {
            self.failures = self.failures.saturating_add(1);
        }
        let fallback = self
            .config
            .fallback
            .as_ref()
            .filter(|f| live && self.failures >= f.after_failures);
        let (target, reason) = match fallback {
            Some(f) => (current.max(f.replicas), Reason::Fallback),
            None => (current, Reason::MetricsInvalid),
        };
        let outcome = plan::enforce_bounds(&self.config, current, Outcome::hold(target, reason));
        let details = Details {
            in_flight: demand::raw_value(&obs.in_flight),
            queue_depth: obs.queue_depth.as_ref().and_then(demand::raw_value),
            arrival_rate: obs.arrival_rate.as_ref().and_then(demand::raw_value),
            per_pod_target: self.per_pod_target(),
            recommended: target,
            limited_by: outcome.limited_by,
            in_panic: self.panic.in_panic(),
            consecutive_failures: self.failures,
            ..Details::default()
        };
        decision(outcome, details)
    }

    fn record(&mut self, replicas: u32, current: u32, t: f64) {
        let direction = match replicas.cmp(&current) {
            std::cmp::Ordering::Greater => Direction::Up,
            std::cmp::Ordering::Less => Direction::Down,
            std::cmp::Ordering::Equal => return,
        };
        let continuing = self
            .last_scale
            .is_some_and(|(_, last)| last == Direction::Down);
        self.scaling_down_from = match (direction, self.scaling_down_from) {
            (Direction::Down, Some(from)) if continuing => Some(from),
            (Direction::Down, _) => Some((t, current)),
            (Direction::Up, _) => None,
        };
        self.restore_last_scale(t, direction);
    }
}

/// The most the forecast may say: the latest demand plus the growth
/// actually measured over the last lead (the policy's horizon plus one
/// tick), as a rate: from the oldest sample within the lead (strictly: a
/// sample exactly one lead old is out) to the latest, times the lead.
/// Holt's trend outlives a step too small to be taken as a level shift
/// (the level jumps, the trend it leaves decays over minutes):
/// extrapolating it would order pods for growth that already stopped. On a
/// ramp the measured rate over one lead is what the next lead brings, so
/// the cap does not bind.
fn growth_cap(latest: f64, samples: &TimedWindow<f64>, t: f64, lead: f64) -> f64 {
    let rate = match samples.oldest_within(t, lead) {
        Some((at, oldest)) if t > at => (latest - oldest) / (t - at),
        _ => 0.0,
    };
    latest + lead * rate.max(0.0)
}

fn decision(outcome: Outcome, details: Details) -> Decision {
    Decision {
        replicas: outcome.replicas,
        reason: outcome.reason,
        details,
    }
}
