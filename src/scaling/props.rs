//! Property tests: for any sequence of observations, the engine stays within
//! its bounds, never falls on bad data or in panic, keeps its step limits,
//! and settles on constant demand without reversing.
use super::limits::{down_limit, pods_for, up_limit};
use super::plan::MIN_SCALE_DOWN_FRACTION;
use super::tests::reversals;
use super::*;
use proptest::prelude::*;

/// A metric value: mostly plausible, sometimes NaN, infinite or negative.
fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => 0.0..2000.0,
        1 => Just(0.0),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => -100.0..0.0,
    ]
}

/// A reading at `now` minus an age (sometimes stale), or an error.
fn reading() -> impl Strategy<Value = (Option<f64>, f64)> {
    (
        prop_oneof![8 => value().prop_map(Some), 1 => Just(None)],
        prop_oneof![8 => 0.0..5.0, 1 => 31.0..100.0],
    )
}

#[derive(Clone, Debug)]
struct Tick {
    dt: f64,
    in_flight: (Option<f64>, f64),
    queue: (Option<f64>, f64),
    arrivals: (Option<f64>, f64),
    current: u32,
    ready: u32,
}

fn tick() -> impl Strategy<Value = Tick> {
    // Time mostly moves on, sometimes stands still or steps back.
    let dt = prop_oneof![8 => 0.0..20.0, 1 => Just(0.0), 1 => -30.0..0.0];
    (dt, reading(), reading(), reading(), 0u32..150, 0u32..150).prop_map(
        |(dt, in_flight, queue, arrivals, current, ready)| Tick {
            dt,
            in_flight,
            queue,
            arrivals,
            current,
            ready: ready.min(current),
        },
    )
}

fn to_reading((value, age): (Option<f64>, f64), now: f64) -> Reading {
    value
        .map(|v| Sample {
            value: v,
            timestamp: now - age,
        })
        .ok_or(ReadError::Missing)
}

/// Which optional metrics the policy reads.
#[derive(Clone, Copy, Debug)]
struct Metrics {
    queue: bool,
    arrivals: bool,
}

fn observation(t: &Tick, now: f64, m: Metrics) -> Observation {
    Observation {
        in_flight: to_reading(t.in_flight, now),
        queue_depth: m.queue.then(|| to_reading(t.queue, now)),
        ready_replicas: t.ready,
        current_replicas: t.current,
        // Arrivals per second: ten times the generated value, so a full
        // fleet's overload is sometimes far beyond its in-flight.
        arrival_rate: m
            .arrivals
            .then(|| to_reading((t.arrivals.0.map(|v| v * 10.0), t.arrivals.1), now)),
    }
}

fn is_bad(o: &Observation, now: f64, config: &Config) -> bool {
    let bad = |r: &Reading| match r {
        Ok(s) => {
            !(s.value.is_finite()
                && s.value >= 0.0
                && now - s.timestamp <= config.max_sample_age_secs)
        }
        Err(ReadError::Missing) => true,
        Err(ReadError::Failed(_)) => true,
    };
    let in_flight_bad =
        bad(&o.in_flight) && !(o.in_flight == Err(ReadError::Missing) && o.ready_replicas == 0);
    in_flight_bad
        || o.queue_depth.as_ref().is_some_and(bad)
        || o.arrival_rate.as_ref().is_some_and(bad)
}

fn config() -> impl Strategy<Value = Config> {
    (
        0u32..5,
        1u32..120,
        any::<bool>(),
        prop::option::of(0u32..8),
        prop::option::of(0.01..2.0),
    )
        .prop_map(|(min, span, fallback, pods, service_time)| Config {
            min_replicas: min,
            service_time_secs: service_time,
            max_replicas: min + span,
            fallback: fallback.then_some(Fallback {
                after_failures: 2,
                replicas: 50,
            }),
            scale_up: DirectionRules {
                max_step_pods: pods,
                ..Config::default().scale_up
            },
            ..Config::default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn decisions_keep_every_safety_rule(
        config in config(),
        history in prop::collection::vec(tick(), 0..40),
        ticks in prop::collection::vec(tick(), 1..120),
        with_queue in any::<bool>(),
        with_arrivals in any::<bool>(),
    ) {
        let metrics = Metrics { queue: with_queue, arrivals: with_arrivals };
        let mut engine = Engine::new(config.clone());
        let (min, max) = (config.min_replicas, config.max_replicas);
        let mut now = 1000.0;
        let warm: Vec<(f64, Observation)> = history
            .iter()
            .map(|t| {
                now += t.dt;
                (now, observation(t, now, metrics))
            })
            .collect();
        engine.warm_up(&warm);
        // The engine's clock never goes back: step periods are measured on it.
        let mut clock = warm.iter().map(|(at, _)| *at).fold(f64::MIN, f64::max);
        let mut last_up: Option<f64> = None;
        let mut last_down: Option<f64> = None;
        for t in &ticks {
            now += t.dt;
            clock = clock.max(now);
            let o = observation(t, now, metrics);
            let d = engine.step(&o, now);
            let current = t.current;
            prop_assert!(d.replicas >= min && d.replicas <= max, "{d:?} outside [{min}, {max}]");
            // Bounds win over everything; inside them, the rules hold.
            let floor = current.min(max);
            if is_bad(&o, now, &config) {
                prop_assert!(d.replicas >= floor, "fell on bad data: {o:?} -> {d:?}");
                prop_assert!(matches!(d.reason, Reason::MetricsInvalid | Reason::Fallback) || current > max || current < min);
                prop_assert!(d.replicas <= current.max(50).max(min), "rose beyond fallback: {d:?}");
            }
            if d.details.in_panic {
                prop_assert!(d.replicas >= floor, "fell in panic: {d:?}");
            }
            let forced = current < min || current > max || d.reason == Reason::Fallback;
            if d.replicas > current && !forced {
                prop_assert!(d.replicas <= up_limit(current, &config.scale_up), "{current} -> {d:?}");
                if let Some(at) = last_up {
                    prop_assert!(clock - at >= config.scale_up.period_secs, "up again after {} s", clock - at);
                }
            }
            if d.replicas < current && !forced {
                prop_assert!(d.replicas >= down_limit(current, &config.scale_down), "{current} -> {d:?}");
                if let Some(at) = last_down {
                    prop_assert!(clock - at >= config.scale_down.period_secs, "down again after {} s", clock - at);
                }
            }
            if d.replicas > current { last_up = Some(clock); }
            if d.replicas < current { last_down = Some(clock); }
        }
    }

    #[test]
    fn constant_demand_settles_without_reversing(
        demand in 0.0..1200.0f64,
        start in 1u32..150,
        spacing in prop::collection::vec(0.5..20.0f64, 200..400),
    ) {
        let config = Config { min_replicas: 1, max_replicas: 200, ..Config::default() };
        let mut engine = Engine::new(config);
        let mut replicas = start;
        let mut history = vec![replicas];
        let mut now = 0.0;
        for dt in &spacing {
            now += dt;
            let o = Observation {
                in_flight: Ok(Sample { value: demand, timestamp: now }),
                queue_depth: None,
                ready_replicas: replicas,
                current_replicas: replicas,
                arrival_rate: None,
            };
            replicas = engine.step(&o, now).replicas;
            history.push(replicas);
        }
        prop_assert_eq!(reversals(&history), 0, "{:?}", history);
        // Settled once the windows had time (the run lasts at least 200 x
        // 0.5 s; check only runs past the 300 s scale-down window plus the
        // steps): at least ceil(demand / 8) (up has no band), and no more
        // than the scale-down hysteresis keeps: ceil(demand x 1.1 / 8), a
        // fleet whose usage ratio is within the 0.1 band (d / (n x 8) >=
        // 0.9), or a fleet that step would shrink by less than the smallest
        // scale-down.
        let wanted = pods_for(demand, 8.0).clamp(1, 200);
        let with_margin = pods_for(demand * 1.1, 8.0).clamp(1, 200);
        let in_band = ((demand / (8.0 * 0.9) + 1e-6).floor() as u32).clamp(1, 200);
        if now > 600.0 {
            prop_assert!(replicas >= wanted, "ended at {} for {}", replicas, wanted);
            let too_small = f64::from(replicas.saturating_sub(with_margin))
                < MIN_SCALE_DOWN_FRACTION * f64::from(replicas);
            prop_assert!(
                replicas <= with_margin.max(in_band) || too_small,
                "ended at {} for {} (margin {}, band {})", replicas, wanted, with_margin, in_band
            );
        }
    }
}
