//! One simulated run: arrivals, a fleet, the metrics pipeline and one
//! autoscaler, stepped once a second; and what it measured.
//!
//! Each second `t`: pods whose start-up is over become Ready; the autoscaler
//! sees the latest scrape, the per-second concurrency of the last second and
//! the ready and requested pods, and may set the replicas (new pods are
//! requested at `t`, cost from `t`, Ready at `t + startup`); the service
//! serves the second's arrivals with the Ready pods; Prometheus scrapes the
//! gauges at the end of the second when a scrape is due.
use serde::Serialize;

use super::fleet::{Fleet, Scraper};
use super::oracle::OracleSchedule;
use super::peers::{Autoscaler, View};
use super::profile::{Profile, arrivals as poisson_arrivals, seeded_rng};
use super::service::{Service, ServiceConfig, ServiceError, StepStats};

/// Default start-up time of a pod (requested to Ready), seconds.
pub const DEFAULT_STARTUP_SECS: f64 = 30.0;
/// Default Prometheus scrape interval, seconds.
pub const DEFAULT_SCRAPE_INTERVAL_SECS: f64 = 5.0;
/// Default latency objective, seconds.
pub const DEFAULT_SLO_LATENCY_SECS: f64 = 0.2;
/// Default seed of the Poisson arrivals.
pub const DEFAULT_SEED: u64 = 1;
/// The initial fleet is sized for the first minute's mean rate at this
/// fraction of the per-pod limit (every autoscaler starts from the same one).
pub const INITIAL_UTILIZATION: f64 = 0.7;
/// A second counts as violating when at least this many requests (the model
/// is fluid) were dropped or exceeded the SLO: "at least one request".
pub const VIOLATION_MIN_REQUESTS: f64 = 0.5;
/// Latency histogram resolution, seconds (p99 is reported to this).
const LATENCY_BIN_SECS: f64 = 0.001;
/// Latencies beyond this land in the last bin (the client timeout caps
/// waits far below it).
const LATENCY_MAX_SECS: f64 = 120.0;
/// Every autoscaler runs this long before the measured workload starts (see
/// `Arrivals`), so that it starts warm (windows full, fleet settled) rather
/// than from empty metrics. Not measured.
pub const WARM_UP_SECS: usize = 600;
/// Seed of the warm-up's Poisson arrivals (the same for every run).
const WARM_UP_SEED: u64 = 0x5eed;
/// Report progress every this many simulated seconds.
const PROGRESS_EVERY_SECS: u64 = 1 << 14;

/// What cannot be simulated.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("{0}")]
    Invalid(String),
}

/// The simulated world, apart from the autoscaler.
#[derive(Clone, Debug, PartialEq)]
pub struct World {
    pub service: ServiceConfig,
    pub startup_secs: f64,
    pub scrape_interval_secs: f64,
    pub slo_latency_secs: f64,
    /// The lowest replica count every autoscaler (and the oracle) keeps.
    pub min_replicas: u32,
}

impl Default for World {
    fn default() -> Self {
        World {
            service: ServiceConfig::default(),
            startup_secs: DEFAULT_STARTUP_SECS,
            scrape_interval_secs: DEFAULT_SCRAPE_INTERVAL_SECS,
            slo_latency_secs: DEFAULT_SLO_LATENCY_SECS,
            min_replicas: 1,
        }
    }
}

impl World {
    /// Checks the values a run divides by or waits on.
    pub fn validate(&self) -> Result<(), SimError> {
        self.service.validate()?;
        let check = |name: &str, v: f64, ok: bool| {
            if v.is_finite() && ok {
                Ok(())
            } else {
                Err(SimError::Invalid(format!(
                    "{name} must be finite and in range, got {v}"
                )))
            }
        };
        check("start-up", self.startup_secs, self.startup_secs >= 0.0)?;
        check(
            "scrape interval",
            self.scrape_interval_secs,
            self.scrape_interval_secs > 0.0,
        )?;
        check(
            "SLO latency",
            self.slo_latency_secs,
            self.slo_latency_secs > 0.0,
        )
    }

    /// Pods needed at full utilization for `arrivals` requests in one second.
    pub fn demand_pods(&self, arrivals: f64) -> f64 {
        arrivals * self.service.service_time_secs / f64::from(self.service.per_pod_limit.max(1))
    }

    /// The fleet every run starts with: the first minute's mean rate at
    /// `INITIAL_UTILIZATION`, at least `min_replicas`.
    pub fn initial_replicas(&self, arrivals: &[f64]) -> u32 {
        let pods = (self.demand_pods(initial_rate(arrivals)) / INITIAL_UTILIZATION).ceil();
        (pods.clamp(0.0, f64::from(u32::MAX)) as u32).max(self.min_replicas)
    }
}

/// The mean arrivals per second of the first minute.
fn initial_rate(arrivals: &[f64]) -> f64 {
    let head = &arrivals[..arrivals.len().min(60)];
    if head.is_empty() {
        0.0
    } else {
        head.iter().sum::<f64>() / head.len() as f64
    }
}

/// Per-second arrival counts of one run: the warm-up every autoscaler runs
/// through unmeasured (`WARM_UP_SECS`), then the measured seconds.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrivals {
    pub warm_up: Vec<f64>,
    pub measured: Vec<f64>,
}

impl Arrivals {
    /// `duration_secs` seconds of `profile` from `start_secs`, a seeded
    /// Poisson draw around the profile's rate each second. The warm-up is
    /// the profile's own `WARM_UP_SECS` before `start_secs` where it has
    /// them (a synthetic profile at negative times: noise goes on drawing
    /// new values, a step or a spike holds its level before it; a trace
    /// from `start_secs` past the warm-up's length), so that each
    /// autoscaler starts as it would run on this workload; otherwise (a
    /// trace from its beginning, which has no history) a steady warm-up, as
    /// in `steady`.
    pub fn draw(profile: &Profile, start_secs: u64, duration_secs: u64, seed: u64) -> Self {
        let measured = arrival_counts(profile, start_secs, duration_secs, seed);
        let history = start_secs as f64 - WARM_UP_SECS as f64;
        if !profile.is_defined_at(history) {
            return Arrivals::steady(measured);
        }
        let warm_up = warm_up_counts(|i| profile.rate_at(history + i as f64));
        Arrivals { warm_up, measured }
    }

    /// `measured` after a steady warm-up: Poisson arrivals at its first
    /// minute's mean rate.
    pub fn steady(measured: Vec<f64>) -> Self {
        let rate = initial_rate(&measured);
        let warm_up = warm_up_counts(|_| rate);
        Arrivals { warm_up, measured }
    }
}

/// `WARM_UP_SECS` Poisson counts (seeded with `WARM_UP_SEED`, the same for
/// every run) around `rate(second)`.
fn warm_up_counts(rate: impl Fn(usize) -> f64) -> Vec<f64> {
    let mut rng = seeded_rng(WARM_UP_SEED);
    (0..WARM_UP_SECS)
        .map(|i| poisson_arrivals(rate(i), 1.0, &mut rng))
        .collect()
}

/// Per-second arrival counts: a seeded Poisson draw around the profile's
/// rate for each second of `[start, start + duration)`.
pub fn arrival_counts(
    profile: &Profile,
    start_secs: u64,
    duration_secs: u64,
    seed: u64,
) -> Vec<f64> {
    let mut rng = seeded_rng(seed);
    (start_secs..start_secs.saturating_add(duration_secs))
        .map(|t| poisson_arrivals(profile.rate_at(t as f64), 1.0, &mut rng))
        .collect()
}

/// The results of one autoscaler on one workload.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// The autoscaler (`inflight`, `hpa`, `keda`, `kpa`, `oracle`).
    pub name: String,
    /// Seconds in which some request exceeded the SLO latency or was dropped.
    pub slo_violation_secs: u64,
    /// Requests dropped (queue full or client timeout).
    pub dropped_requests: f64,
    /// 99th percentile latency of the requests served, seconds.
    pub p99_latency_secs: Option<f64>,
    /// Pods requested, summed over the seconds: the cost.
    pub pod_seconds: f64,
    /// `pod_seconds` over the oracle's (when the oracle ran).
    pub cost_vs_oracle: Option<f64>,
    /// Times the replica count was changed.
    pub scale_actions: u64,
    /// Scale actions in the opposite direction of the previous one.
    pub direction_reversals: u64,
    /// Requests that arrived.
    pub requests: f64,
    /// Simulated seconds.
    pub seconds: u64,
}

impl Outcome {
    /// This outcome and `other` (the same autoscaler on another run) added
    /// up: counts, pod-seconds, requests and seconds are summed; the p99 is
    /// the worse of the two; the cost ratio is left for the caller.
    pub fn combined(&self, other: &Outcome) -> Outcome {
        let p99 = match (self.p99_latency_secs, other.p99_latency_secs) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        Outcome {
            name: self.name.clone(),
            slo_violation_secs: self.slo_violation_secs + other.slo_violation_secs,
            dropped_requests: self.dropped_requests + other.dropped_requests,
            p99_latency_secs: p99,
            pod_seconds: self.pod_seconds + other.pod_seconds,
            cost_vs_oracle: None,
            scale_actions: self.scale_actions + other.scale_actions,
            direction_reversals: self.direction_reversals + other.direction_reversals,
            requests: self.requests + other.requests,
            seconds: self.seconds + other.seconds,
        }
    }
}

/// Demand, capacity and replicas over time, reduced to at most a few
/// thousand points (the maximum over each interval), for the plots.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Series {
    /// Seconds per point.
    pub step_secs: u64,
    /// Pods needed at full utilization (arrivals x service time / limit).
    pub demand: Vec<f64>,
    /// Ready pods: the capacity, in pods.
    pub ready: Vec<f64>,
    /// Requested pods: the cost.
    pub requested: Vec<f64>,
}

impl Series {
    /// An empty series for `seconds` seconds in at most `points` points.
    pub fn for_duration(seconds: u64, points: usize) -> Self {
        let points = points.max(1) as u64;
        Series {
            step_secs: seconds.div_ceil(points).max(1),
            ..Series::default()
        }
    }

    fn push(&mut self, t: u64, demand: f64, ready: u32, requested: u32) {
        let index = (t / self.step_secs) as usize;
        if index >= self.demand.len() {
            self.demand.push(demand);
            self.ready.push(f64::from(ready));
            self.requested.push(f64::from(requested));
            return;
        }
        let max = |v: &mut Vec<f64>, x: f64| {
            if let Some(last) = v.last_mut() {
                *last = last.max(x);
            }
        };
        max(&mut self.demand, demand);
        max(&mut self.ready, f64::from(ready));
        max(&mut self.requested, f64::from(requested));
    }
}

/// Accumulates one run's measurements, O(1) per second.
struct Recorder {
    slo_secs: f64,
    violation_secs: u64,
    dropped: f64,
    requests: f64,
    pod_seconds: f64,
    actions: u64,
    reversals: u64,
    last_up: Option<bool>,
    latency_bins: Vec<f64>,
    seconds: u64,
}

impl Recorder {
    fn new(slo_secs: f64) -> Self {
        Recorder {
            slo_secs,
            violation_secs: 0,
            dropped: 0.0,
            requests: 0.0,
            pod_seconds: 0.0,
            actions: 0,
            reversals: 0,
            last_up: None,
            latency_bins: vec![0.0; (LATENCY_MAX_SECS / LATENCY_BIN_SECS) as usize + 1],
            seconds: 0,
        }
    }

    fn action(&mut self, from: u32, to: u32) {
        if from == to {
            return;
        }
        let up = to > from;
        if self.last_up.is_some_and(|last| last != up) {
            self.reversals += 1;
        }
        self.last_up = Some(up);
        self.actions += 1;
    }

    fn second(&mut self, stats: &StepStats, requested: u32) {
        self.seconds += 1;
        self.requests += stats.arrivals;
        self.dropped += stats.dropped();
        self.pod_seconds += f64::from(requested) * stats.dt_secs;
        let mut slow = 0.0;
        for sample in &stats.latencies {
            if sample.latency_secs > self.slo_secs {
                slow += sample.count;
            }
            let bin = (sample.latency_secs / LATENCY_BIN_SECS).round();
            let bin = bin.clamp(0.0, (self.latency_bins.len() - 1) as f64) as usize;
            self.latency_bins[bin] += sample.count;
        }
        if slow >= VIOLATION_MIN_REQUESTS || stats.dropped() >= VIOLATION_MIN_REQUESTS {
            self.violation_secs += 1;
        }
    }

    fn quantile(&self, q: f64) -> Option<f64> {
        let total: f64 = self.latency_bins.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let target = q * total;
        let mut cumulative = 0.0;
        for (i, count) in self.latency_bins.iter().enumerate() {
            cumulative += count;
            if cumulative >= target {
                return Some(i as f64 * LATENCY_BIN_SECS);
            }
        }
        Some(LATENCY_MAX_SECS)
    }

    fn finish(self, name: &str) -> Outcome {
        Outcome {
            name: name.to_string(),
            slo_violation_secs: self.violation_secs,
            dropped_requests: self.dropped,
            p99_latency_secs: self.quantile(0.99),
            pod_seconds: self.pod_seconds,
            cost_vs_oracle: None,
            scale_actions: self.actions,
            direction_reversals: self.reversals,
            requests: self.requests,
            seconds: self.seconds,
        }
    }
}

/// How a run reports progress: called with the simulated seconds done so
/// far, every few thousand seconds.
pub type Progress<'a> = &'a mut dyn FnMut(u64);

/// Runs `autoscaler` over `arrivals`' warm-up, then its measured seconds.
/// With `series_points`, also returns the series for a plot.
pub fn run(
    arrivals: &Arrivals,
    world: &World,
    autoscaler: &mut dyn Autoscaler,
    series_points: Option<usize>,
    progress: Progress,
) -> Result<(Outcome, Option<Series>), SimError> {
    world.validate()?;
    let mut service = Service::new(world.service.clone())?;
    let (warm_up, arrivals) = (&arrivals.warm_up, &arrivals.measured);
    let mut fleet = Fleet::new(world.initial_replicas(arrivals), world.startup_secs);
    let mut scraper = Scraper::new(world.scrape_interval_secs);
    let mut recorder = Recorder::new(world.slo_latency_secs);
    let mut series = series_points.map(|p| Series::for_duration(arrivals.len() as u64, p));
    let mut live_concurrency = 0.0;
    for (t, &a) in warm_up.iter().chain(arrivals).enumerate() {
        // The measured second, once the warm-up is over.
        let measured = t.checked_sub(warm_up.len());
        let now = t as f64;
        fleet.advance(now);
        let view = View {
            now,
            scrape: scraper.latest(),
            live_concurrency,
            ready: fleet.ready(),
            current: fleet.requested(),
        };
        if let Some(replicas) = autoscaler.step(&view) {
            let from = fleet.requested();
            fleet.set_replicas(replicas, now);
            if measured.is_some() {
                recorder.action(from, fleet.requested());
            }
        }
        let stats = service.step(a, fleet.ready(), 1.0);
        live_concurrency = stats.in_flight + stats.queue_depth;
        scraper.offer(
            now + 1.0,
            stats.in_flight_end,
            stats.queue_depth_end,
            fleet.ready(),
            stats.arrivals,
        );
        let Some(m) = measured else {
            continue;
        };
        recorder.second(&stats, fleet.requested());
        if let Some(s) = series.as_mut() {
            s.push(
                m as u64,
                world.demand_pods(a),
                fleet.ready(),
                fleet.requested(),
            );
        }
        if (m as u64 + 1).is_multiple_of(PROGRESS_EVERY_SECS) {
            progress(m as u64 + 1);
        }
    }
    progress(arrivals.len() as u64);
    Ok((recorder.finish(autoscaler.name()), series))
}

/// Runs a precomputed schedule (the oracle's) over the same arrivals.
pub fn run_schedule(
    arrivals: &[f64],
    world: &World,
    name: &str,
    schedule: &OracleSchedule,
    series_points: Option<usize>,
) -> Result<(Outcome, Option<Series>), SimError> {
    world.validate()?;
    if schedule.ready.len() != arrivals.len() || schedule.requested.len() != arrivals.len() {
        return Err(SimError::Invalid(format!(
            "schedule of {} seconds for {} seconds of arrivals",
            schedule.ready.len(),
            arrivals.len()
        )));
    }
    let mut service = Service::new(world.service.clone())?;
    let mut recorder = Recorder::new(world.slo_latency_secs);
    let mut series = series_points.map(|p| Series::for_duration(arrivals.len() as u64, p));
    let mut previous = schedule.requested.first().copied().unwrap_or(0);
    for (t, &a) in arrivals.iter().enumerate() {
        let (ready, requested) = (schedule.ready[t], schedule.requested[t]);
        recorder.action(previous, requested);
        previous = requested;
        let stats = service.step(a, ready, 1.0);
        recorder.second(&stats, requested);
        if let Some(s) = series.as_mut() {
            s.push(t as u64, world.demand_pods(a), ready, requested);
        }
    }
    Ok((recorder.finish(name), series))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::oracle;

    /// Runs `autoscaler` in the default world over `a` after a steady warm-up.
    fn run_steady(
        a: Vec<f64>,
        autoscaler: &mut dyn Autoscaler,
        series_points: Option<usize>,
    ) -> (Outcome, Option<Series>) {
        let world = World::default();
        run(
            &Arrivals::steady(a),
            &world,
            autoscaler,
            series_points,
            &mut |_| {},
        )
        .unwrap()
    }

    /// Holds a fixed replica count.
    struct Fixed(u32);

    impl Autoscaler for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn step(&mut self, view: &View) -> Option<u32> {
            (view.current != self.0).then_some(self.0)
        }
    }

    #[test]
    fn enough_pods_meet_the_slo_and_cost_what_they_are_held() {
        // 500 req/s needs 5 pods at full utilization; 10 pods serve it easily.
        let a = vec![500.0; 600];
        let (out, _) = run_steady(a, &mut Fixed(10), None);
        assert_eq!(out.slo_violation_secs, 0);
        assert_eq!(out.dropped_requests, 0.0);
        assert_eq!(out.p99_latency_secs, Some(0.1));
        // Starts at ceil(5 / 0.7) = 8 pods, set to 10 in the warm-up.
        assert_eq!(out.pod_seconds, 6000.0);
        assert_eq!((out.scale_actions, out.direction_reversals), (0, 0));
        assert_eq!(out.requests, 300_000.0);
    }

    #[test]
    fn too_few_pods_violate_every_second_once_the_queue_builds() {
        let a = vec![500.0; 300];
        let (out, _) = run_steady(a, &mut Fixed(4), None);
        // 400 req/s of capacity for 500: a queue grows from the first second.
        assert!(out.slo_violation_secs >= 295, "{out:?}");
        assert!(out.dropped_requests > 0.0);
        assert!(out.p99_latency_secs.unwrap() > 1.0);
    }

    #[test]
    fn new_pods_serve_only_after_startup() {
        // 1 pod for 150 req/s until 4 are requested at t=0: ready at t=30.
        let mut a = vec![50.0; 60];
        a.extend(vec![150.0; 120]);
        struct UpAt60;
        impl Autoscaler for UpAt60 {
            fn name(&self) -> &str {
                "up"
            }
            fn step(&mut self, view: &View) -> Option<u32> {
                (view.now == (WARM_UP_SECS + 60) as f64).then_some(4)
            }
        }
        let (out, series) = run_steady(a, &mut UpAt60, Some(180));
        let s = series.unwrap();
        assert_eq!(s.step_secs, 1);
        assert_eq!(s.ready[89], 1.0);
        assert_eq!(s.ready[90], 4.0);
        assert_eq!(s.requested[60], 4.0);
        // The queue grows for the 30 s of start-up.
        assert!(out.slo_violation_secs >= 25, "{out:?}");
        assert_eq!(out.pod_seconds, 60.0 + 4.0 * 120.0);
    }

    #[test]
    fn reversals_count_direction_changes() {
        let mut r = Recorder::new(0.2);
        r.action(1, 3);
        r.action(3, 5);
        r.action(5, 4);
        r.action(4, 4);
        r.action(4, 6);
        assert_eq!((r.actions, r.reversals), (4, 2));
    }

    #[test]
    fn the_oracle_meets_its_demand() {
        let world = World::default();
        let profile = Profile::Sine {
            mean: 1000.0,
            amplitude: 800.0,
            period_secs: 600.0,
        };
        let a = arrival_counts(&profile, 0, 1800, 7);
        let sch = oracle::schedule(&a, &world.service, world.startup_secs, 1);
        let (out, _) = run_schedule(&a, &world, "oracle", &sch, None).unwrap();
        assert_eq!(out.pod_seconds, sch.pod_seconds());
        assert!(out.dropped_requests < 1.0, "{out:?}");
        assert!(out.slo_violation_secs <= 18, "{out:?}");
    }

    #[test]
    fn outcomes_add_up() {
        let a = Outcome {
            name: "x".into(),
            slo_violation_secs: 3,
            dropped_requests: 1.0,
            p99_latency_secs: Some(0.3),
            pod_seconds: 100.0,
            cost_vs_oracle: Some(1.1),
            scale_actions: 4,
            direction_reversals: 1,
            requests: 50.0,
            seconds: 10,
        };
        let b = Outcome {
            p99_latency_secs: Some(0.2),
            ..a.clone()
        };
        let c = a.combined(&b);
        assert_eq!(
            (
                c.slo_violation_secs,
                c.scale_actions,
                c.direction_reversals,
                c.seconds
            ),
            (6, 8, 2, 20)
        );
        assert_eq!(
            (c.pod_seconds, c.requests, c.dropped_requests),
            (200.0, 100.0, 2.0)
        );
        assert_eq!(c.p99_latency_secs, Some(0.3));
        assert_eq!(c.cost_vs_oracle, None);
    }

    #[test]
    fn the_warm_up_is_the_profiles_own_history_where_it_has_one() {
        // Noise goes on drawing new values before t=0: the warm-up varies as
        // the workload does, rather than holding its first minute's mean.
        let noise = Profile::Noise {
            mean: 3000.0,
            relative: 0.5,
            seed: 7,
            bin_secs: 10.0,
        };
        let a = Arrivals::draw(&noise, 0, 120, 1);
        assert_eq!(a.warm_up.len(), WARM_UP_SECS);
        assert_eq!(a.measured, arrival_counts(&noise, 0, 120, 1));
        let bin_means: Vec<f64> = a
            .warm_up
            .chunks(10)
            .map(|c| c.iter().sum::<f64>() / 10.0)
            .collect();
        let (lo, hi) = bin_means
            .iter()
            .fold((f64::MAX, 0.0_f64), |(l, h), &m| (l.min(m), h.max(m)));
        assert!(lo < 2000.0 && hi > 4000.0, "{lo} {hi}");
        // Each warm-up bin follows the profile at its negative time.
        for (i, m) in bin_means.iter().enumerate() {
            let rate = noise.rate_at(10.0 * i as f64 - WARM_UP_SECS as f64);
            assert!((m - rate).abs() < 0.05 * rate, "bin {i}: {m} vs {rate}");
        }
        // A step holds its level before it starts.
        let step = Profile::Step {
            before: 500.0,
            after: 3000.0,
            at_secs: 60.0,
        };
        let a = Arrivals::draw(&step, 0, 120, 1);
        let mean = a.warm_up.iter().sum::<f64>() / WARM_UP_SECS as f64;
        assert!((mean - 500.0).abs() < 5.0, "{mean}");
    }

    #[test]
    fn a_trace_warms_up_on_its_first_minute_or_on_its_past() {
        // 100 req/s for 1000 s, then 900.
        let trace = Profile::Trace {
            points: vec![(0.0, 100.0), (1000.0, 900.0), (2000.0, 900.0)],
        };
        assert!(!trace.is_defined_at(-1.0) && trace.is_defined_at(0.0));
        // From its start a trace has no past: a steady warm-up at the first
        // minute's mean.
        let a = Arrivals::draw(&trace, 0, 1500, 2);
        assert_eq!(a, Arrivals::steady(a.measured.clone()));
        // From t=1100 its past is 500 s at 100 and 100 s at 900.
        let a = Arrivals::draw(&trace, 1100, 300, 2);
        let early = a.warm_up[..500].iter().sum::<f64>() / 500.0;
        let late = a.warm_up[500..].iter().sum::<f64>() / 100.0;
        assert!((early - 100.0).abs() < 3.0, "{early}");
        assert!((late - 900.0).abs() < 15.0, "{late}");
    }

    #[test]
    fn arrivals_are_seeded() {
        let p = Profile::Constant { rps: 300.0 };
        assert_eq!(arrival_counts(&p, 0, 100, 3), arrival_counts(&p, 0, 100, 3));
        assert_ne!(arrival_counts(&p, 0, 100, 3), arrival_counts(&p, 0, 100, 4));
        let a = arrival_counts(&p, 0, 1000, 3);
        let mean = a.iter().sum::<f64>() / 1000.0;
        assert!((mean - 300.0).abs() < 5.0, "{mean}");
    }
}
