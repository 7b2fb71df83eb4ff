//! From one observation to demand, in concurrency (requests in service at
//! once). Little's law turns a rate into concurrency: rate x service time.
//!
//! - steady demand = in-flight + (queue growth rate x service time): the
//!   concurrency the arrivals bring. When the queue drains the growth rate is
//!   negative, which subtracts the surplus capacity now eating it (floored
//!   at 0).
//! - drain = backlog x service time / `queue_drain_secs`: the extra
//!   concurrency that empties the backlog within the drain time. It is added
//!   on top, never folded into the steady fleet.
//! - saturation: once every ready pod is full (in-flight per ready pod at
//!   `concurrency_per_pod` or more) and requests are waiting, the readings no longer measure demand: in-flight is capped by
//!   capacity, and a bounded queue stops growing once full (arrivals beyond
//!   it are dropped, unseen). Demand is then at least what is in the system,
//!   but how much more is unknown. Like TCP's slow start, the engine assumes
//!   [`SATURATION_GROWTH`] times the in-flight, bounded by in-flight plus
//!   backlog: each time the new pods become ready, the fleet can double
//!   again, until it stops being saturated and the readings measure demand.
//!   This floor feeds the short (panic) window, not the smoothed one.
//! - arrivals: with an arrival-rate metric (requests per second counted
//!   before any queue or drop) and a known service time, a full fleet's
//!   demand is measured, not guessed: arrival rate x service time (Little's
//!   law). It raises the steady demand of a full fleet (never lowers it, so
//!   a service slower than its configured service time is still sized on
//!   its in-flight) and replaces the saturation guess: arrivals beyond the
//!   in-flight are the overload, and fewer mean that what waits is a
//!   backlog the fleet is draining. Right after new pods become Ready,
//!   while the queue shrinks, in-flight beyond the arrivals is that backlog
//!   being served (the new pods took it at once), not demand: the arrivals
//!   are the steady demand then.
//! - bursts: the arrival rate is a mean over the scrape interval, so a burst
//!   shorter than the interval is diluted in it. Its trace is the queue: when
//!   every pod is full and the queue rose since the previous sample, the
//!   rise is taken to have arrived within [`BURST_SECS`], and the demand is
//!   at least in-flight + rise x service time / [`BURST_SECS`] (at most twice
//!   the in-flight). It raises the steady demand and the short window like
//!   an overload measured from the arrivals.
use super::smoothing::Ewma;
use super::types::{Config, Observation, Reading, Sample};

/// Service time assumed when the policy gives none. One second is
/// conservative for request/response services (most serve in well under a
/// second, so queue growth and backlog are turned into more pods than
/// strictly needed); batch workers with longer jobs should set the service
/// time.
pub const ASSUMED_SERVICE_TIME_SECS: f64 = 1.0;

/// Under saturation, demand is taken to be at least this multiple of the
/// in-flight requests (see the module docs): one doubling per pod start-up,
/// enough to enter panic at the default threshold (2.0) with the default
/// utilization (0.8).
pub const SATURATION_GROWTH: f64 = 2.0;

/// Saturation needs in-flight per ready pod at this fraction of
/// `concurrency_per_pod` or more: a full pod's in-flight, sampled, reads a
/// little below its limit.
pub const SATURATION_FILL: f64 = 0.95;

/// A queue that rose between two scrapes while every pod was full is taken
/// to have built within this many seconds (see [`burst`]). The arrival rate
/// is a mean over the scrape interval (5 s or more), so a burst of a second
/// or two shows in it diluted and in the queue whole. Shorter counts each
/// queued request as more concurrency (more pods per burst); longer
/// approaches the growth rate, which the steady demand has already. Two
/// seconds is a tuning choice made on the bench (`make bench`, whose azure
/// trace is bursty at one-second resolution).
pub const BURST_SECS: f64 = 2.0;

/// The readings of one tick, once they passed the sanity checks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Readings {
    pub in_flight: f64,
    pub queue: Option<Sample>,
    /// Requests arriving per second, when the policy has the metric.
    pub arrivals: Option<f64>,
}

/// A reading's value if it is present, finite, non-negative and fresh (at
/// most `max_age` seconds older than `now`; samples stamped slightly in the
/// future are accepted, clocks differ).
pub(crate) fn valid(reading: &Reading, now: f64, max_age: f64) -> Option<Sample> {
    let sample = *reading.as_ref().ok()?;
    let fresh = sample.timestamp.is_finite() && now - sample.timestamp <= max_age;
    (sample.value.is_finite() && sample.value >= 0.0 && fresh).then_some(sample)
}

/// The finite raw value of a reading, whatever its validity (for details).
pub(crate) fn raw_value(reading: &Reading) -> Option<f64> {
    reading
        .as_ref()
        .ok()
        .map(|s| s.value)
        .filter(|v| v.is_finite())
}

/// Checks the observation; None when the tick must count as a failure: the
/// in-flight reading (or the queue reading, when the policy has one) is
/// missing, failed, stale, NaN, infinite or negative (and so is the
/// arrival-rate reading, when the policy has one). One exception: with no
/// ready pods a *missing* in-flight series means zero in flight (a sum over
/// no pods returns nothing), so a queue can still wake a fleet at zero.
pub(crate) fn check(obs: &Observation, now: f64, config: &Config) -> Option<Readings> {
    let max_age = config.max_sample_age_secs;
    let in_flight = match (&obs.in_flight, obs.ready_replicas) {
        (Err(super::types::ReadError::Missing), 0) => 0.0,
        (reading, _) => valid(reading, now, max_age)?.value,
    };
    let queue = match &obs.queue_depth {
        None => None,
        Some(reading) => Some(valid(reading, now, max_age)?),
    };
    let arrivals = match &obs.arrival_rate {
        None => None,
        Some(reading) => Some(valid(reading, now, max_age)?.value),
    };
    Some(Readings {
        in_flight,
        queue,
        arrivals,
    })
}

/// How the queue moved: its smoothed growth rate and its latest rise.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct QueueTrend {
    /// Requests per second, smoothed on the sample timestamps.
    pub growth: f64,
    /// Requests added between the two latest samples (0 when it fell).
    pub rise: f64,
}

/// The queue's growth rate (requests per second), from consecutive samples,
/// smoothed on the sample timestamps, and its latest rise.
#[derive(Clone, Debug, Default)]
pub(crate) struct QueueGrowth {
    last: Option<Sample>,
    rate: Ewma,
    rise: f64,
}

impl QueueGrowth {
    /// Adds a queue sample; returns the smoothed growth rate (0 until two
    /// samples are known) and the rise since the previous sample. A sample
    /// with the timestamp of the previous one (the same scrape, read again)
    /// changes nothing; one from before it restarts the measurement.
    pub(crate) fn observe(&mut self, sample: Sample, half_life: f64) -> QueueTrend {
        let Some(last) = self.last else {
            self.last = Some(sample);
            return QueueTrend::default();
        };
        let dt = sample.timestamp - last.timestamp;
        let raw = (sample.value - last.value) / dt;
        if dt > 0.0 && raw.is_finite() {
            self.rate.update(raw, sample.timestamp, half_life);
            self.rise = (sample.value - last.value).max(0.0);
        } else if dt < 0.0 {
            self.rise = 0.0;
        }
        if dt != 0.0 {
            self.last = Some(sample);
        }
        QueueTrend {
            growth: self.rate.value().unwrap_or(0.0),
            rise: self.rise,
        }
    }
}

/// Steady demand, drain and the saturation floor for one tick, in
/// concurrency.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Demand {
    pub steady: f64,
    pub drain: f64,
    /// The least demand a saturated fleet implies (0 when not saturated).
    pub saturation: f64,
    /// A full fleet's demand measured from the arrivals, when it exceeds
    /// the in-flight (0 otherwise): an overload seen as it is, not a guess.
    pub overload: f64,
    /// A burst between scrapes sized from the queue's rise (see [`burst`];
    /// 0 when there was none).
    pub burst: f64,
}

impl Demand {
    /// Demand as the readings measure it: steady plus drain.
    pub(crate) fn total(&self) -> f64 {
        self.steady + self.drain
    }

    /// Demand for the short window: the measured total, or the saturation
    /// floor when that is higher.
    pub(crate) fn burst(&self) -> f64 {
        self.total().max(self.saturation)
    }
}

/// Whether every ready pod is full: in-flight per ready pod at
/// [`SATURATION_FILL`] x `concurrency_per_pod` or more (true with no ready
/// pod).
fn full(readings: &Readings, ready: u32, config: &Config) -> bool {
    readings.in_flight >= f64::from(ready) * config.concurrency_per_pod * SATURATION_FILL
}

/// The saturation floor (see the module docs): 0 unless every ready pod is
/// full and requests are waiting.
pub(crate) fn saturation(readings: &Readings, ready: u32, config: &Config) -> f64 {
    let backlog = readings.queue.map_or(0.0, |q| q.value);
    let in_flight = readings.in_flight;
    if ready == 0 || !full(readings, ready, config) || backlog <= 0.0 {
        return 0.0;
    }
    (in_flight * SATURATION_GROWTH).min(in_flight + backlog)
}

/// The demand a burst implies: a full fleet whose queue rose by `rise`
/// requests since the previous sample had that many more arrive than it
/// could serve. Taken to have come within [`BURST_SECS`], serving them as
/// they came needs `rise x service time / BURST_SECS` more concurrency,
/// bounded by [`SATURATION_GROWTH`] times the in-flight. 0 when the queue
/// did not rise.
fn burst(in_flight: f64, rise: f64, service_time: f64) -> f64 {
    if rise <= 0.0 || in_flight <= 0.0 {
        return 0.0;
    }
    (in_flight + rise * service_time / BURST_SECS).min(in_flight * SATURATION_GROWTH)
}

/// Concurrency the arrivals bring (arrival rate x service time), when the
/// policy has an arrival-rate metric and a service time.
fn arrival_demand(readings: &Readings, config: &Config) -> Option<f64> {
    Some(readings.arrivals? * config.service_time_secs?)
}

/// Demand from validated readings and the queue's growth rate. An empty
/// queue has no growth to speak of: a negative rate left over from its
/// draining is ignored once it is empty.
pub(crate) fn demand(
    readings: &Readings,
    trend: QueueTrend,
    ready: u32,
    fresh_pods: bool,
    config: &Config,
) -> Demand {
    let service_time = config
        .service_time_secs
        .unwrap_or(ASSUMED_SERVICE_TIME_SECS);
    let backlog = readings.queue.map_or(0.0, |q| q.value);
    let growth = trend.growth;
    let draining = fresh_pods && growth < 0.0;
    let growth = if backlog > 0.0 {
        growth
    } else {
        growth.max(0.0)
    };
    let measured = (readings.in_flight + growth * service_time).max(0.0);
    let drain = backlog * service_time / config.queue_drain_secs;
    let arrivals = arrival_demand(readings, config);
    // A full fleet's in-flight is capped by its capacity: the arrivals
    // measure what it is not serving.
    let is_full = full(readings, ready, config);
    let overload = match arrivals {
        Some(a) if is_full && a > readings.in_flight => a,
        _ => 0.0,
    };
    // A rate over the scrape interval averages a burst shorter than the
    // interval away; the queue it left behind is the trace. Not while new
    // pods take a backlog (that queue shrinks), and not without arrivals
    // (the saturation floor covers that case).
    let burst = match arrivals {
        Some(_) if is_full && !draining => burst(readings.in_flight, trend.rise, service_time),
        _ => 0.0,
    };
    let steady = match arrivals {
        // Pods just became Ready, the queue is shrinking and more is in
        // service than the arrivals bring: the excess is the backlog the new
        // pods took at once. The arrivals are the demand; the backlog has
        // its own drain term.
        Some(a) if draining && measured > a => a,
        _ => measured.max(overload).max(burst),
    };
    // With the arrivals measured there is nothing to guess: arrivals beyond
    // the in-flight are the overload; fewer mean the fleet serves them all
    // and what waits is a backlog being drained (the drain term).
    let saturation = match arrivals {
        Some(_) => 0.0,
        None => saturation(readings, ready, config),
    };
    Demand {
        steady,
        drain,
        saturation,
        overload,
        burst,
    }
}

#[cfg(test)]
mod tests {
    use super::super::types::ReadError;
    use super::*;

    /// `demand` with a queue growing at `growth` req/s and no rise.
    fn demand_at(
        readings: &Readings,
        growth: f64,
        ready: u32,
        fresh_pods: bool,
        config: &Config,
    ) -> Demand {
        let trend = QueueTrend { growth, rise: 0.0 };
        demand(readings, trend, ready, fresh_pods, config)
    }

    fn at(value: f64, timestamp: f64) -> Reading {
        Ok(Sample { value, timestamp })
    }

    fn obs(in_flight: Reading, queue: Option<Reading>, ready: u32) -> Observation {
        Observation {
            in_flight,
            queue_depth: queue,
            ready_replicas: ready,
            current_replicas: ready,
            arrival_rate: None,
        }
    }

    #[test]
    fn valid_rejects_nan_inf_negative_stale_and_errors() {
        let now = 100.0;
        assert!(valid(&at(5.0, 95.0), now, 30.0).is_some());
        assert!(valid(&at(5.0, 70.0), now, 30.0).is_some()); // exactly 30 s old
        assert!(valid(&at(5.0, 69.9), now, 30.0).is_none()); // stale
        assert!(valid(&at(5.0, 101.0), now, 30.0).is_some()); // skewed clock
        assert!(valid(&at(f64::NAN, 99.0), now, 30.0).is_none());
        assert!(valid(&at(f64::INFINITY, 99.0), now, 30.0).is_none());
        assert!(valid(&at(-1.0, 99.0), now, 30.0).is_none());
        assert!(valid(&at(5.0, f64::NAN), now, 30.0).is_none());
        assert!(valid(&Err(ReadError::Missing), now, 30.0).is_none());
        assert!(valid(&Err(ReadError::Failed("timeout".into())), now, 30.0).is_none());
    }

    #[test]
    fn check_requires_the_queue_when_configured() {
        let c = Config::default();
        assert!(check(&obs(at(5.0, 10.0), None, 2), 10.0, &c).is_some());
        assert!(
            check(
                &obs(at(5.0, 10.0), Some(Err(ReadError::Missing)), 2),
                10.0,
                &c
            )
            .is_none()
        );
        assert!(check(&obs(at(5.0, 10.0), Some(at(f64::NAN, 10.0)), 2), 10.0, &c).is_none());
    }

    #[test]
    fn missing_in_flight_with_no_ready_pods_is_zero() {
        let c = Config::default();
        let r = check(
            &obs(Err(ReadError::Missing), Some(at(7.0, 10.0)), 0),
            10.0,
            &c,
        );
        assert_eq!(r.map(|r| r.in_flight), Some(0.0));
        // With ready pods, missing is a failure; a failed query always is.
        assert!(check(&obs(Err(ReadError::Missing), None, 1), 10.0, &c).is_none());
        let failed = Err(ReadError::Failed("refused".into()));
        assert!(check(&obs(failed, None, 0), 10.0, &c).is_none());
    }

    #[test]
    fn queue_growth_from_consecutive_samples() {
        let mut g = QueueGrowth::default();
        let sample = |value: f64, timestamp: f64| Sample { value, timestamp };
        assert_eq!(g.observe(sample(10.0, 0.0), 6.0), QueueTrend::default());
        // 10 -> 40 in 5 s: 6 req/s (the first rate is taken as is), a rise of 30.
        let rose = QueueTrend {
            growth: 6.0,
            rise: 30.0,
        };
        assert_eq!(g.observe(sample(40.0, 5.0), 6.0), rose);
        // The same scrape read again changes nothing.
        assert_eq!(g.observe(sample(40.0, 5.0), 6.0), rose);
        // A step back restarts the baseline, keeps the rate and forgets the rise.
        assert_eq!(
            g.observe(sample(0.0, 1.0), 6.0),
            QueueTrend {
                growth: 6.0,
                rise: 0.0
            }
        );
        // A fall is no rise.
        let mut g = QueueGrowth::default();
        g.observe(sample(40.0, 0.0), 6.0);
        assert_eq!(g.observe(sample(10.0, 5.0), 6.0).rise, 0.0);
    }

    #[test]
    fn demand_adds_growth_times_service_time_and_drain_separately() {
        let config = Config {
            service_time_secs: Some(0.5),
            queue_drain_secs: 30.0,
            ..Config::default()
        };
        let readings = Readings {
            in_flight: 40.0,
            queue: Some(Sample {
                value: 120.0,
                timestamp: 0.0,
            }),
            arrivals: None,
        };
        // steady = 40 + 10 req/s x 0.5 s = 45; drain = 120 x 0.5 / 30 = 2.
        // 5 ready pods of 10 are not full with 40 in flight: no saturation.
        let d = demand_at(&readings, 10.0, 5, false, &config);
        assert_eq!(
            d,
            Demand {
                steady: 45.0,
                drain: 2.0,
                saturation: 0.0,
                overload: 0.0,
                burst: 0.0,
            }
        );
        // A draining queue (-100 req/s) cannot make demand negative.
        assert_eq!(demand_at(&readings, -100.0, 5, false, &config).steady, 0.0);
    }

    #[test]
    fn unknown_service_time_assumes_one_second() {
        let config = Config::default(); // service_time_secs: None, drain 30 s
        let readings = Readings {
            in_flight: 8.0,
            queue: Some(Sample {
                value: 60.0,
                timestamp: 0.0,
            }),
            arrivals: None,
        };
        // steady = 8 + 2 req/s x 1 s = 10; drain = 60 x 1 / 30 = 2.
        assert_eq!(
            demand_at(&readings, 2.0, 1, false, &config),
            Demand {
                steady: 10.0,
                drain: 2.0,
                saturation: 0.0,
                overload: 0.0,
                burst: 0.0,
            }
        );
    }

    #[test]
    fn empty_queue_ignores_leftover_negative_growth() {
        let config = Config::default();
        let readings = Readings {
            in_flight: 8.0,
            queue: Some(Sample {
                value: 0.0,
                timestamp: 0.0,
            }),
            arrivals: None,
        };
        assert_eq!(
            demand_at(&readings, -5.0, 1, false, &config),
            Demand {
                steady: 8.0,
                drain: 0.0,
                saturation: 0.0,
                overload: 0.0,
                burst: 0.0,
            }
        );
    }

    #[test]
    fn a_saturated_fleet_implies_growth_bounded_by_what_is_in_the_system() {
        let config = Config::default(); // 10 per pod; full at 9.5 per ready pod
        let readings = |in_flight: f64, queue: f64| Readings {
            in_flight,
            queue: Some(Sample {
                value: queue,
                timestamp: 0.0,
            }),
            arrivals: None,
        };
        // 4 pods, 40 in flight, 400 waiting: saturated; min(2 x 40, 40 + 400) = 80.
        assert_eq!(saturation(&readings(40.0, 400.0), 4, &config), 80.0);
        // A short backlog bounds the floor: min(80, 40 + 5) = 45; an empty
        // queue is no saturation.
        assert_eq!(saturation(&readings(40.0, 5.0), 4, &config), 45.0);
        assert_eq!(saturation(&readings(40.0, 0.0), 4, &config), 0.0);
        // 37 in flight on 4 pods is below 4 x 9.5 = 38: not full.
        assert_eq!(saturation(&readings(37.0, 400.0), 4, &config), 0.0);
        // No ready pod or no queue metric: never saturated.
        assert_eq!(saturation(&readings(40.0, 400.0), 0, &config), 0.0);
        let no_queue = Readings {
            in_flight: 40.0,
            queue: None,
            arrivals: None,
        };
        assert_eq!(saturation(&no_queue, 4, &config), 0.0);
        // The floor is part of burst(), not of the measured total.
        let d = demand_at(&readings(40.0, 400.0), 0.0, 4, false, &config);
        assert_eq!(d.saturation, 80.0);
        assert_eq!(d.total(), 40.0 + 400.0 * 1.0 / 30.0);
        assert_eq!(d.burst(), 80.0);
    }

    #[test]
    fn a_queue_that_rose_on_a_full_fleet_is_a_burst() {
        let config = Config {
            service_time_secs: Some(0.1),
            ..Config::default()
        };
        // Demand of `ready` pods with `in_flight` in flight, `queue` waiting
        // (risen by `rise` since the last sample) and `arrivals` req/s.
        let at = |ready: u32, in_flight: f64, queue: f64, rise: f64, arrivals: Option<f64>| {
            let readings = Readings {
                in_flight,
                queue: Some(Sample {
                    value: queue,
                    timestamp: 0.0,
                }),
                arrivals,
            };
            let trend = QueueTrend { growth: 0.0, rise };
            demand(&readings, trend, ready, false, &config)
        };
        // 24 full pods (240 in flight), 1200 waiting, all of them new since
        // the last scrape; the rate over the interval, 1700 req/s (170 in
        // concurrency), is under the in-flight. The burst: 240 + 1200 x 0.1
        // / 2 s = 300 (below 2 x 240), the steady demand at least; no
        // overload is measured from the arrivals.
        let d = at(24, 240.0, 1200.0, 1200.0, Some(1700.0));
        assert_eq!(
            (d.steady, d.burst, d.overload, d.saturation),
            (300.0, 300.0, 0.0, 0.0)
        );
        // At most twice the in-flight: 40 + 2000 x 0.1 / 2 = 140 -> 80.
        assert_eq!(at(4, 40.0, 2000.0, 2000.0, Some(300.0)).burst, 80.0);
        // Arrivals above the burst win: 3000 x 0.1 = 300 > 40 + 10.
        let d = at(4, 40.0, 200.0, 200.0, Some(3000.0));
        assert_eq!((d.steady, d.overload, d.burst), (300.0, 300.0, 50.0));
        // No burst when the queue did not rise (a backlog held or draining),
        // when a pod is not full, or without the arrival rate (the
        // saturation floor covers that).
        for d in [
            at(24, 240.0, 1200.0, 0.0, Some(1700.0)),
            at(24, 200.0, 1200.0, 1200.0, Some(1700.0)),
            at(24, 240.0, 1200.0, 1200.0, None),
        ] {
            assert_eq!(d.burst, 0.0, "{d:?}");
        }
        // Nor while new pods take a backlog (Ready just rose, the queue
        // shrinks).
        let readings = Readings {
            in_flight: 240.0,
            queue: Some(Sample {
                value: 1200.0,
                timestamp: 0.0,
            }),
            arrivals: Some(1700.0),
        };
        let draining = QueueTrend {
            growth: -50.0,
            rise: 1200.0,
        };
        assert_eq!(demand(&readings, draining, 24, true, &config).burst, 0.0);
    }

    #[test]
    fn arrivals_measure_a_full_fleets_demand() {
        let config = Config {
            service_time_secs: Some(0.1),
            ..Config::default()
        };
        let readings = |in_flight: f64, queue: f64, arrivals: f64| Readings {
            in_flight,
            queue: Some(Sample {
                value: queue,
                timestamp: 0.0,
            }),
            arrivals: Some(arrivals),
        };
        // 4 full pods (40 in flight), 400 waiting, 2000 req/s arriving:
        // 2000 x 0.1 s = 200 in concurrency, measured, so no guess.
        let d = demand_at(&readings(40.0, 400.0, 2000.0), 0.0, 4, false, &config);
        assert_eq!((d.steady, d.overload, d.saturation), (200.0, 200.0, 0.0));
        assert_eq!(d.burst(), 200.0 + 400.0 * 0.1 / 30.0);
        // Not full (30 in flight on 4 pods): in-flight measures demand, and
        // noisy arrivals do not raise it.
        let d = demand_at(&readings(30.0, 0.0, 400.0), 0.0, 4, false, &config);
        assert_eq!((d.steady, d.overload), (30.0, 0.0));
        // Full, but fewer arrivals than in flight: the fleet serves them all
        // and drains a backlog (new pods that took a queue at once); the
        // in-flight stands, and there is no doubling guess.
        let d = demand_at(&readings(40.0, 400.0, 300.0), 0.0, 4, false, &config);
        assert_eq!((d.steady, d.overload, d.saturation), (40.0, 0.0, 0.0));
        // New pods just took the backlog: 56 in flight on 7 pods, 0 waiting, the
        // queue's growth still negative (-20 req/s: it was just emptied),
        // 390 req/s arriving. The 56 in flight are the backlog being served;
        // demand is the arrivals' 390 x 0.1 = 39.
        let d = demand_at(&readings(56.0, 0.0, 390.0), -20.0, 7, true, &config);
        assert!((d.steady - 39.0).abs() < 1e-9, "{d:?}");
        // The same readings with the queue growing (a slower service): the
        // in-flight stands, 56 + 5 x 0.1 = 56.5.
        let d = demand_at(&readings(56.0, 0.0, 390.0), 5.0, 7, true, &config);
        assert_eq!(d.steady, 56.5);
        // And with no pod just Ready (arrivals bursty within the scrape
        // interval, not a backlog taken at once): the in-flight stands.
        let d = demand_at(&readings(56.0, 0.0, 390.0), -20.0, 7, false, &config);
        assert_eq!(d.steady, 56.0);
        // Zero ready pods: arrivals wake the fleet.
        let d = demand_at(&readings(0.0, 50.0, 100.0), 0.0, 0, false, &config);
        assert_eq!(d.steady, 10.0);
        // Without a service time the arrivals cannot be turned into
        // concurrency (the policy refuses it; the engine ignores them).
        let no_service_time = Config::default();
        let d = demand_at(
            &readings(40.0, 400.0, 2000.0),
            0.0,
            4,
            false,
            &no_service_time,
        );
        assert_eq!((d.overload, d.saturation), (0.0, 80.0));
    }

    #[test]
    fn check_requires_the_arrival_rate_when_configured() {
        let c = Config::default();
        let mut o = obs(at(5.0, 10.0), None, 2);
        o.arrival_rate = Some(at(100.0, 10.0));
        assert_eq!(check(&o, 10.0, &c).and_then(|r| r.arrivals), Some(100.0));
        for bad in [
            Err(ReadError::Missing),
            at(f64::NAN, 10.0),
            at(-1.0, 10.0),
            at(100.0, -100.0),
        ] {
            o.arrival_rate = Some(bad);
            assert!(check(&o, 10.0, &c).is_none());
        }
    }
}
