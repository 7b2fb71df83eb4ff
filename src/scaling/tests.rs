//! One test per rule of the engine, with the expected replicas worked out by
//! hand. Defaults: 10 per pod at 0.8 utilization -> 8 per pod planned.
use super::*;

fn at(value: f64, t: f64) -> Reading {
    Ok(Sample {
        value,
        timestamp: t,
    })
}

/// `in_flight` read at `t`, with `current` replicas all ready.
fn obs(in_flight: f64, current: u32, t: f64) -> Observation {
    Observation {
        in_flight: at(in_flight, t),
        queue_depth: None,
        ready_replicas: current,
        current_replicas: current,
        arrival_rate: None,
    }
}

fn with_queue(mut o: Observation, queue: f64, t: f64) -> Observation {
    o.queue_depth = Some(at(queue, t));
    o
}

fn no_steps() -> DirectionRules {
    DirectionRules {
        stabilization_window_secs: 0.0,
        max_step_pods: None,
        max_step_percent: None,
        period_secs: 0.0,
    }
}

/// The defaults with every rule but the sizing switched off, so each test
/// turns on only the rule it is about: no smoothing, no forecast, no panic,
/// no windows, no step limits, no cooldown, no tolerance.
fn bare() -> Config {
    Config {
        smoothing_half_life_secs: 0.0,
        prediction: None,
        panic: PanicConfig {
            window_secs: 6.0,
            threshold: f64::INFINITY,
        },
        tolerance: 0.0,
        scale_up: no_steps(),
        scale_down: no_steps(),
        reverse_cooldown_secs: 0.0,
        early_scale_down: false,
        ..Config::default()
    }
}

/// A fleet that applies every decision (ready = replicas at once).
struct Fleet {
    engine: Engine,
    replicas: u32,
}

impl Fleet {
    fn new(config: Config, replicas: u32) -> Fleet {
        Fleet {
            engine: Engine::new(config),
            replicas,
        }
    }

    fn tick(&mut self, in_flight: f64, t: f64) -> Decision {
        self.apply(obs(in_flight, self.replicas, t), t)
    }

    fn apply(&mut self, o: Observation, t: f64) -> Decision {
        let d = self.engine.step(&o, t);
        self.replicas = d.replicas;
        d
    }
}

// --- demand ---------------------------------------------------------------

#[test]
fn sizes_the_fleet_on_in_flight_over_the_per_pod_target() {
    // 4 ready, 87 in flight, 10/pod at 0.8 -> ceil(87 / 8) = 11.
    let mut e = Engine::new(bare());
    let d = e.step(&obs(87.0, 4, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (11, Reason::ScaleUp));
    assert_eq!(d.details.recommended, 11);
    assert_eq!(d.details.per_pod_target, 8.0);
    // 80 in flight on 10 pods: exactly 10, steady (no float-noise 11th pod).
    let d = Engine::new(bare()).step(&obs(80.000_000_1, 10, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::Steady));
}

#[test]
fn queue_growth_adds_arrival_concurrency_and_backlog_drains_separately() {
    let config = Config {
        service_time_secs: Some(0.5),
        queue_drain_secs: 30.0,
        ..bare()
    };
    let mut f = Fleet::new(config, 5);
    // t=0: 40 in flight, empty queue -> 40 / 8 = 5 pods.
    let d = f.apply(with_queue(obs(40.0, 5, 0.0), 0.0, 0.0), 0.0);
    assert_eq!(d.replicas, 5);
    // t=5: queue 0 -> 50: growth 10 req/s x 0.5 s = 5 -> steady 45;
    // drain 50 x 0.5 / 30 = 0.833; total 45.83 / 8 = 5.73 -> 6.
    let d = f.apply(with_queue(obs(40.0, 5, 5.0), 50.0, 5.0), 5.0);
    assert_eq!(d.details.demand, Some(45.0));
    assert!((d.details.drain.unwrap_or(0.0) - 50.0 * 0.5 / 30.0).abs() < 1e-9);
    assert_eq!(d.replicas, 6);
}

#[test]
fn a_standing_backlog_is_drained_not_used_to_size_the_steady_fleet() {
    let config = Config {
        service_time_secs: Some(0.5),
        ..bare()
    };
    let mut f = Fleet::new(config, 5);
    // Backlog 1000, not growing, 40 in flight: drain 1000 x 0.5 / 30 =
    // 16.67, total 56.67 / 8 = 7.08 -> 8 pods (not (40 + 1000) / 8 = 130).
    f.apply(with_queue(obs(40.0, 5, 0.0), 1000.0, 0.0), 0.0);
    let d = f.apply(with_queue(obs(40.0, f.replicas, 5.0), 1000.0, 5.0), 5.0);
    assert_eq!(d.details.demand, Some(40.0));
    assert_eq!(d.replicas, 8);
}

#[test]
fn unknown_service_time_assumes_one_second() {
    // Queue 60, 8 in flight, no growth: drain 60 x 1 s / 30 s = 2 ->
    // total 10 / 8 = 1.25 -> 2 pods.
    assert_eq!(ASSUMED_SERVICE_TIME_SECS, 1.0);
    let mut f = Fleet::new(bare(), 1);
    let d = f.apply(with_queue(obs(8.0, 1, 0.0), 60.0, 0.0), 0.0);
    assert_eq!(d.details.drain, Some(2.0));
    assert_eq!(d.replicas, 2);
}

// --- smoothing ------------------------------------------------------------

#[test]
fn ewma_smooths_demand_with_a_time_aware_half_life() {
    let config = Config {
        smoothing_half_life_secs: 30.0,
        ..bare()
    };
    let mut f = Fleet::new(config, 10);
    f.tick(80.0, 0.0); // 80 / 8 = 10, steady
    // A spike to 160 thirty seconds later (one half-life): alpha 0.5,
    // smoothed 120. The stable path follows the short window up at once
    // (its mean is 160 -> 20 pods) and the smoothed demand down: back at
    // 80 thirty seconds later the window's mean is 80, the EWMA
    // 120 + 0.5 x (80 - 120) = 100 -> ceil(12.5) = 13 pods, not 10.
    let d = f.tick(160.0, 30.0);
    assert_eq!(d.details.smoothed, Some(120.0));
    assert_eq!(d.replicas, 20);
    let d = f.tick(80.0, 60.0);
    assert_eq!(d.details.smoothed, Some(100.0));
    assert_eq!(d.replicas, 13);
}

// --- panic ----------------------------------------------------------------

fn panicky() -> Config {
    Config {
        panic: PanicConfig {
            window_secs: 6.0,
            threshold: 2.0,
        },
        smoothing_half_life_secs: 30.0,
        scale_up: DirectionRules {
            // A long scale-up window: the stable path alone would wait.
            stabilization_window_secs: 60.0,
            // Doubling or 4 pods per 15 s (as HPA's default).
            max_step_pods: Some(4),
            max_step_percent: Some(100.0),
            period_secs: 15.0,
        },
        ..bare()
    }
}

#[test]
fn panic_scales_up_on_the_short_window_past_the_scale_up_window() {
    let mut f = Fleet::new(panicky(), 4);
    for i in 0..=60 {
        f.tick(32.0, f64::from(i)); // 32 / 8 = 4 pods: steady
    }
    assert_eq!(f.replicas, 4);
    // Burst to 100: panic window (6 s) mean at t=61 is (5 x 32 + 100) / 6 =
    // 43.3; capacity 4 x 8 = 32 -> 1.35 < 2: not yet. At t=63: (3 x 32 + 3 x
    // 100) / 6 = 66 -> 2.06 >= 2: panic. Panic pods ceil(66 / 8) = 9, step
    // limit max(4 + 4, 4 x 2) = 8 -> 8, limited by the step.
    let d = f.tick(100.0, 61.0);
    assert!(!d.details.in_panic);
    assert_eq!(
        d.replicas, 4,
        "the 60 s scale-up window holds the stable path"
    );
    f.tick(100.0, 62.0);
    let d = f.tick(100.0, 63.0);
    assert!(d.details.in_panic);
    assert_eq!((d.replicas, d.reason), (8, Reason::Panic));
    assert_eq!(d.details.limited_by, Some(Limit::ScaleUpStep));
}

#[test]
fn panic_never_scales_down_and_ends_after_the_exit_time() {
    let config = Config {
        scale_down: no_steps(), // no scale-down window: only panic holds
        ..panicky()
    };
    let mut f = Fleet::new(config, 2);
    let d = f.tick(80.0, 0.0); // 80 / (2 x 8) = 5 >= 2: panic -> max(6, 4) = 6
    assert!(d.details.in_panic);
    assert_eq!(d.replicas, 6);
    // Demand collapses to 6 (1 pod). At t=1 the panic window averages
    // (80 + 6) / 2 = 43 on 6 x 8 = 48 of capacity: 0.9 < 2, the condition
    // is false from then on; it last held at t=0, so panic lasts until
    // t = 0 + max(2 x 30, 10 x 6) = 60. Until then: never down (the
    // lagging EWMA, which started at 80, even asks for more for a while).
    let mut last_panic = 0.0;
    let mut before = f.replicas;
    for i in 1..=200 {
        let t = f64::from(i);
        let d = f.tick(6.0, t);
        if d.details.in_panic {
            last_panic = t;
            assert!(d.replicas >= before, "down in panic at t={t}");
        }
        before = d.replicas;
    }
    assert_eq!(last_panic, 59.0);
    // Afterwards the stable path (EWMA 6 + 74 x 2^(-200/30) = 6.7) -> 1 pod.
    assert_eq!(f.replicas, 1, "after panic the stable path scales down");
}

#[test]
fn panic_with_no_ready_pods_counts_one_pod_of_capacity() {
    // 5 replicas starting, 0 ready, 20 in flight: 20 / (1 x 8) = 2.5 -> panic,
    // panic pods ceil(20 / 8) = 3 < 5: hold, never down.
    let mut e = Engine::new(panicky());
    let o = Observation {
        ready_replicas: 0,
        ..obs(20.0, 5, 0.0)
    };
    let d = e.step(&o, 0.0);
    assert!(d.details.in_panic);
    assert_eq!((d.replicas, d.reason), (5, Reason::Panic));
}

// --- forecast -------------------------------------------------------------

fn ramp_fleets() -> (Fleet, Fleet) {
    let with = Config {
        smoothing_half_life_secs: 30.0,
        prediction: Some(PredictionConfig {
            horizon_secs: 30.0,
            season_secs: Some(86_400.0),
        }),
        ..bare()
    };
    let without = Config {
        prediction: None,
        ..with.clone()
    };
    (Fleet::new(with, 1), Fleet::new(without, 1))
}

#[test]
fn forecast_raises_a_scale_up_on_a_ramp() {
    // Demand grows 1 per second from 8. The EWMA lags (about 43 s of
    // growth behind at half-life 30); the forecast looks 30 s ahead.
    let (mut with, mut without) = ramp_fleets();
    let mut ahead = 0;
    for i in 0..=120 {
        let t = f64::from(i);
        let a = with.tick(8.0 + t, t);
        let b = without.tick(8.0 + t, t);
        if i < HOLT_MIN_SAMPLES as i32 - 1 {
            assert_eq!(a.details.forecast, None, "cold forecast at tick {i}");
        }
        assert!(
            a.replicas >= b.replicas,
            "forecast lowered a scale-up at t={t}"
        );
        if a.replicas > b.replicas {
            ahead += 1;
        }
    }
    // The stable path follows measured demand up at once, so the forecast
    // leads by what it sees coming, from the warm-up of the trend on.
    assert!(ahead > 40, "the forecast led on only {ahead} ticks");
    // At t=120 demand is 128 (16 pods): the stable path alone reaches no
    // more than that; the forecast goes beyond.
    assert!(with.replicas > 16, "with forecast: {}", with.replicas);
    assert!(
        without.replicas <= 16,
        "without forecast: {}",
        without.replicas
    );
}

#[test]
fn forecast_never_causes_a_scale_down() {
    // On a falling ramp the forecast is below the smoothed demand: decisions
    // are exactly those of the same engine without prediction.
    let (mut with, mut without) = ramp_fleets();
    with.replicas = 20;
    without.replicas = 20;
    for i in 0..=300 {
        let t = f64::from(i);
        let demand = (160.0 - t).max(0.0);
        let a = with.tick(demand, t);
        let b = without.tick(demand, t);
        assert_eq!(a.replicas, b.replicas, "diverged at t={t}");
    }
}

// --- tolerance ------------------------------------------------------------

#[test]
fn within_the_tolerance_band_nothing_changes() {
    let config = Config {
        tolerance: 0.1,
        ..bare()
    };
    // The band applies to the usage ratio demand / (10 pods x 8), downward
    // (upward only after a scale-down, see the next test): 73 in flight ->
    // 0.9125 >= 0.9 -> hold.
    let d = Engine::new(config.clone()).step(&obs(73.0, 10, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::WithinTolerance));
    // 71 -> 0.8875 < 0.9, but down only as far as leaves the tolerance as
    // headroom: ceil(71 x 1.1 / 8) = ceil(9.76) = 10 -> hold.
    let d = Engine::new(config.clone()).step(&obs(71.0, 10, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::WithinTolerance));
    // 63 -> 0.7875: down to ceil(63 x 1.1 / 8) = ceil(8.66) = 9, not
    // ceil(63 / 8) = 8.
    let d = Engine::new(config.clone()).step(&obs(63.0, 10, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (9, Reason::ScaleDown));
    // Up needs no band while the fleet has not scaled down: 81 -> 1.0125
    // -> ceil(10.125) = 11.
    let d = Engine::new(config).step(&obs(81.0, 10, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (11, Reason::ScaleUp));
}

#[test]
fn after_a_scale_down_the_band_holds_scale_ups_too() {
    let config = Config {
        tolerance: 0.1,
        ..bare()
    };
    let mut f = Fleet::new(config.clone(), 12);
    // 63 in flight on 12 pods: down to ceil(63 x 1.1 / 8) = 9.
    assert_eq!(f.tick(63.0, 0.0).replicas, 9);
    // 78 on 9 pods: ratio 78 / 72 = 1.083, within the band: hold.
    let d = f.tick(78.0, 10.0);
    assert_eq!((d.replicas, d.reason), (9, Reason::WithinTolerance));
    // 79.2 = 72 x 1.1 exactly is still inside; 80 (1.111) is out: up to
    // ceil(80 / 8) = 10.
    assert_eq!(f.tick(79.2, 20.0).replicas, 9);
    let d = f.tick(80.0, 30.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::ScaleUp));
    // After that scale-up, up needs no band again: 81 on 10 -> 11.
    assert_eq!(f.tick(81.0, 40.0).replicas, 11);

    // The band never plans a pod past 90% of its limit: at utilization
    // 0.85 (8.5 per pod) it is min(0.1, 0.9 / 0.85 - 1 = 0.0588).
    let config = Config {
        utilization: 0.85,
        ..config
    };
    let mut f = Fleet::new(config.clone(), 12);
    // 60 in flight: down to ceil(60 x 1.1 / 8.5) = ceil(7.76) = 8.
    assert_eq!(f.tick(60.0, 0.0).replicas, 8);
    // 71.9 on 8 x 8.5 = 68: ratio 1.057, held; 72.5 (1.066, 90.6% of the
    // limit) scales up to ceil(72.5 / 8.5) = 9.
    assert_eq!(f.tick(71.9, 10.0).replicas, 8);
    assert_eq!(f.tick(72.5, 20.0).replicas, 9);
    // At utilization 0.9 or more there is no band above the target.
    let config = Config {
        utilization: 0.9,
        ..config
    };
    let mut f = Fleet::new(config, 12);
    // 60 in flight: down to ceil(60 x 1.1 / 9) = 8; 72.5 on 8 x 9 = 72: 9.
    assert_eq!(f.tick(60.0, 0.0).replicas, 8);
    assert_eq!(f.tick(72.5, 10.0).replicas, 9);
}

#[test]
fn a_scale_down_by_less_than_three_percent_of_the_fleet_is_skipped() {
    let config = Config {
        tolerance: 0.1,
        ..bare()
    };
    // 61 pods; 435 in flight asks for ceil(435 x 1.1 / 8) = 60: one pod,
    // 1.6% of the fleet: hold.
    let d = Engine::new(config.clone()).step(&obs(435.0, 61, 0.0), 0.0);
    assert_eq!(d.details.recommended, 60);
    assert_eq!((d.replicas, d.reason), (61, Reason::WithinTolerance));
    // 420 asks for ceil(57.75) = 58: 3 pods, 4.9%: down.
    let d = Engine::new(config.clone()).step(&obs(420.0, 61, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (58, Reason::ScaleDown));
    // On a small fleet one pod is more than 3%: 70 in flight on 11 pods
    // asks for ceil(9.625) = 10.
    let d = Engine::new(config.clone()).step(&obs(70.0, 11, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::ScaleDown));
    // A smaller tolerance lowers the smallest step with it: at 0.01, 61 ->
    // ceil(435 x 1.01 / 8) = 55 goes down, and so does a single pod of 61
    // (1.6% >= 1%): 470 asks for ceil(59.3) = 60.
    let fine = Config {
        tolerance: 0.01,
        ..config
    };
    let d = Engine::new(fine.clone()).step(&obs(435.0, 61, 0.0), 0.0);
    assert_eq!(d.replicas, 55);
    let d = Engine::new(fine).step(&obs(470.0, 61, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (60, Reason::ScaleDown));
}

// --- stabilization windows --------------------------------------------------

#[test]
fn scale_down_waits_for_the_highest_recommendation_to_leave_its_window() {
    let config = Config {
        scale_down: DirectionRules {
            stabilization_window_secs: 300.0,
            ..no_steps()
        },
        ..bare()
    };
    let mut f = Fleet::new(config, 10);
    // Ticks every 10 s: demand 80 (10 pods) until t=100, then 40 (5 pods).
    // The last 10 is at t=100; it leaves the window (t-300, t] at t=400.
    for i in 0..=39 {
        let t = f64::from(i * 10);
        let d = f.tick(if t <= 100.0 { 80.0 } else { 40.0 }, t);
        assert_eq!(d.replicas, 10, "t={t}");
        if t > 100.0 {
            assert_eq!(d.reason, Reason::Stabilizing);
        }
    }
    let d = f.tick(40.0, 400.0);
    assert_eq!((d.replicas, d.reason), (5, Reason::ScaleDown));
}

#[test]
fn scale_up_waits_for_the_lowest_recommendation_to_leave_its_window() {
    let config = Config {
        scale_up: DirectionRules {
            stabilization_window_secs: 60.0,
            ..no_steps()
        },
        ..bare()
    };
    let mut f = Fleet::new(config, 5);
    // Demand 40 (5 pods) until t=90, then 80 (10 pods). The last 5 is at
    // t=90; the window (t-60, t] drops it at t=150.
    for i in 0..=14 {
        let t = f64::from(i * 10);
        let d = f.tick(if t <= 90.0 { 40.0 } else { 80.0 }, t);
        assert_eq!(d.replicas, 5, "t={t}");
    }
    let d = f.tick(80.0, 150.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::ScaleUp));
}

#[test]
fn a_fresh_engine_holds_scale_down_for_one_window() {
    // No warm-up: the fleet found at start counts as a recommendation made
    // then. Demand for 2 pods on 10: hold until the window (300 s) passes.
    let config = Config {
        scale_down: DirectionRules {
            stabilization_window_secs: 300.0,
            ..no_steps()
        },
        ..bare()
    };
    let mut f = Fleet::new(config, 10);
    assert_eq!(f.tick(16.0, 0.0).replicas, 10);
    assert_eq!(f.tick(16.0, 299.0).replicas, 10);
    assert_eq!(f.tick(16.0, 300.0).replicas, 2);
}

// --- step limits ------------------------------------------------------------

#[test]
fn scale_up_steps_are_limited_per_period() {
    let config = Config {
        scale_up: DirectionRules {
            stabilization_window_secs: 0.0,
            max_step_pods: Some(4),
            max_step_percent: Some(100.0),
            period_secs: 15.0,
        },
        ..bare()
    };
    let mut f = Fleet::new(config, 2);
    // Demand 800 -> 100 pods. From 2: max(2 + 4, 2 x 2) = 6.
    let d = f.tick(800.0, 0.0);
    assert_eq!(
        (d.replicas, d.details.limited_by),
        (6, Some(Limit::ScaleUpStep))
    );
    // 5 s later: inside the 15 s period.
    let d = f.tick(800.0, 5.0);
    assert_eq!((d.replicas, d.reason), (6, Reason::RateLimited));
    // At 15 s: from 6, max(10, 12) = 12.
    assert_eq!(f.tick(800.0, 15.0).replicas, 12);
    // At 30 s: from 12, max(16, 24) = 24.
    assert_eq!(f.tick(800.0, 30.0).replicas, 24);
}

#[test]
fn scale_down_steps_are_limited_per_period() {
    let config = Config {
        min_replicas: 1,
        scale_down: DirectionRules {
            stabilization_window_secs: 0.0,
            max_step_pods: None,
            max_step_percent: Some(50.0),
            period_secs: 30.0,
        },
        ..bare()
    };
    let mut f = Fleet::new(config, 40);
    // Demand 8 -> 1 pod. From 40: floor(40 x 0.5) = 20.
    let d = f.tick(8.0, 0.0);
    assert_eq!(
        (d.replicas, d.details.limited_by),
        (20, Some(Limit::ScaleDownStep))
    );
    assert_eq!(f.tick(8.0, 10.0).reason, Reason::RateLimited);
    assert_eq!(f.tick(8.0, 30.0).replicas, 10);
    assert_eq!(f.tick(8.0, 60.0).replicas, 5);
    assert_eq!(f.tick(8.0, 90.0).replicas, 2); // floor(2.5)
    assert_eq!(f.tick(8.0, 120.0).replicas, 1);
}

// --- reverse cooldown -------------------------------------------------------

#[test]
fn no_scale_down_right_after_a_scale_up_and_back() {
    let config = Config {
        reverse_cooldown_secs: 60.0,
        ..bare()
    };
    let mut f = Fleet::new(config, 5);
    assert_eq!(f.tick(80.0, 0.0).replicas, 10); // up at t=0
    let d = f.tick(40.0, 10.0); // down wanted 10 s later
    assert_eq!((d.replicas, d.reason), (10, Reason::Cooldown));
    assert_eq!(f.tick(40.0, 59.0).reason, Reason::Cooldown);
    assert_eq!(f.tick(40.0, 60.0).replicas, 5); // down at t=60
    let d = f.tick(80.0, 70.0); // up wanted 10 s later
    assert_eq!((d.replicas, d.reason), (5, Reason::Cooldown));
    assert_eq!(f.tick(80.0, 120.0).replicas, 10);
}

#[test]
fn panic_scale_up_is_not_held_by_the_reverse_cooldown() {
    let config = Config {
        reverse_cooldown_secs: 60.0,
        ..panicky()
    };
    let mut f = Fleet::new(config.clone(), 4);
    f.engine.restore_last_scale(0.0, Direction::Down);
    // 10 s after a scale-down, a burst of 100 on 4 pods (100 / 32 >= 2):
    // panic goes up anyway (ceil(100 / 8) = 13, step-limited to 8).
    let d = f.tick(100.0, 10.0);
    assert_eq!((d.replicas, d.reason), (8, Reason::Panic));
}

// --- bounds and scale to zero -------------------------------------------------

#[test]
fn min_and_max_bound_the_recommendation() {
    let config = Config {
        min_replicas: 2,
        max_replicas: 20,
        ..bare()
    };
    // 10000 / 8 = 1250 -> 20.
    let d = Engine::new(config.clone()).step(&obs(10_000.0, 10, 0.0), 0.0);
    assert_eq!(
        (d.replicas, d.details.limited_by),
        (20, Some(Limit::MaxReplicas))
    );
    assert_eq!(d.details.recommended, 1250);
    // 1 in flight -> 1 pod -> 2 (min).
    let d = Engine::new(config.clone()).step(&obs(1.0, 10, 0.0), 0.0);
    assert_eq!(
        (d.replicas, d.details.limited_by),
        (2, Some(Limit::MinReplicas))
    );
    // A fleet above max (spec changed) comes back to max even on bad data.
    let bad = Observation {
        in_flight: Err(ReadError::Missing),
        ..obs(0.0, 30, 0.0)
    };
    let d = Engine::new(config).step(&bad, 0.0);
    assert_eq!(
        (d.replicas, d.details.limited_by),
        (20, Some(Limit::MaxReplicas))
    );
}

fn to_zero() -> Config {
    Config {
        min_replicas: 0,
        activation_threshold: 2.0,
        scale_down: DirectionRules {
            stabilization_window_secs: 60.0,
            ..no_steps()
        },
        ..bare()
    }
}

#[test]
fn scales_to_zero_through_the_scale_down_window_when_demand_is_zero() {
    let mut f = Fleet::new(to_zero(), 1);
    for i in 0..=10 {
        f.tick(3.0, f64::from(i)); // 1 pod
    }
    // Demand stops at t=11. The panic window (t-6, t] holds only zeros from
    // t=16, so the recommendation is 0 from t=16 and the last 1 was made at
    // t=15; the scale-down window (t-60, t] lets it go at t=75.
    for i in 11..75 {
        assert_eq!(f.tick(0.0, f64::from(i)).replicas, 1, "t={i}");
    }
    let d = f.tick(0.0, 75.0);
    assert_eq!((d.replicas, d.reason), (0, Reason::ScaleDown));
}

#[test]
fn leaves_zero_only_above_the_activation_threshold() {
    let mut f = Fleet::new(to_zero(), 0);
    // No pods: in-flight is missing (a sum over no series), the queue shows
    // demand. Queue 30 -> drain 30 x 1 s / 30 s = 1 <= 2: stay at zero.
    let at_zero = |queue: f64, t: f64| Observation {
        in_flight: Err(ReadError::Missing),
        queue_depth: Some(at(queue, t)),
        ready_replicas: 0,
        current_replicas: 0,
        arrival_rate: None,
    };
    let d = f.apply(at_zero(30.0, 0.0), 0.0);
    assert_eq!((d.replicas, d.reason), (0, Reason::BelowActivation));
    // Queue 90 (a fresh engine: no growth measured yet) -> drain 3 > 2:
    // wake up with ceil(3 / 8) = 1 pod.
    let mut f = Fleet::new(to_zero(), 0);
    let d = f.apply(at_zero(90.0, 1.0), 1.0);
    assert_eq!((d.replicas, d.reason), (1, Reason::ScaleUp));
    // The queue growing from 30 to 90 in 60 s: growth 1 req/s x 1 s = 1,
    // plus drain 3 -> 4 / 8 -> 1 pod as well; from 30 to 90 in 1 s the
    // growth is 60 -> 63 / 8 -> 8 pods.
    let mut f = Fleet::new(to_zero(), 0);
    f.apply(at_zero(30.0, 0.0), 0.0);
    assert_eq!(f.apply(at_zero(90.0, 60.0), 60.0).replicas, 1);
    let mut f = Fleet::new(to_zero(), 0);
    f.apply(at_zero(30.0, 0.0), 0.0);
    assert_eq!(f.apply(at_zero(90.0, 1.0), 1.0).replicas, 8);
}

#[test]
fn waking_from_zero_is_not_held_by_the_reverse_cooldown() {
    let config = Config {
        reverse_cooldown_secs: 60.0,
        ..to_zero()
    };
    let mut f = Fleet::new(config, 0);
    f.engine.restore_last_scale(0.0, Direction::Down);
    let d = f.tick(16.0, 5.0); // 16 / 8 = 2 pods, 5 s after going to zero
    assert_eq!((d.replicas, d.reason), (2, Reason::ScaleUp));
}

// --- bad data and fallback ------------------------------------------------------

#[test]
fn bad_data_holds_never_down_never_up() {
    let now = 100.0;
    let mut bad: Vec<Observation> = [
        Err(ReadError::Missing),
        Err(ReadError::Failed("timeout".into())),
        at(f64::NAN, now),
        at(f64::INFINITY, now),
        at(-1.0, now),
        at(500.0, now - 31.0), // stale: older than 30 s
    ]
    .into_iter()
    .map(|in_flight| Observation {
        in_flight,
        ..obs(0.0, 10, now)
    })
    .collect();
    // A good in-flight but a configured queue that is unreadable.
    bad.push(Observation {
        queue_depth: Some(Err(ReadError::Missing)),
        ..obs(8.0, 10, now)
    });
    for o in bad {
        let config = Config {
            scale_down: no_steps(),
            ..Config::default()
        };
        let mut e = Engine::new(config);
        e.step(&obs(8.0, 10, now - 1.0), now - 1.0); // a good tick: 1 pod wanted
        let d = e.step(&o, now);
        assert_eq!(
            (d.replicas, d.reason),
            (10, Reason::MetricsInvalid),
            "{o:?}"
        );
        assert_eq!(d.details.consecutive_failures, 1);
    }
}

#[test]
fn fallback_after_consecutive_failures_only_raises() {
    let config = Config {
        fallback: Some(Fallback {
            after_failures: 3,
            replicas: 6,
        }),
        ..bare()
    };
    let missing = |current: u32| Observation {
        in_flight: Err(ReadError::Missing),
        ..obs(0.0, current, 0.0)
    };
    let mut e = Engine::new(config.clone());
    assert_eq!(e.step(&missing(2), 1.0).reason, Reason::MetricsInvalid);
    assert_eq!(e.step(&missing(2), 2.0).reason, Reason::MetricsInvalid);
    let d = e.step(&missing(2), 3.0);
    assert_eq!((d.replicas, d.reason), (6, Reason::Fallback));
    assert_eq!(d.details.consecutive_failures, 3);
    // Above the fallback: bad data never scales down -> hold 10.
    let mut e = Engine::new(config);
    for t in 1..=3 {
        let d = e.step(&missing(10), f64::from(t));
        assert_eq!(d.replicas, 10);
    }
    assert_eq!(e.step(&missing(10), 4.0).reason, Reason::Fallback);
    // A good tick resets the count.
    let d = e.step(&obs(80.0, 10, 5.0), 5.0);
    assert_eq!(d.details.consecutive_failures, 0);
    let d = e.step(&missing(10), 6.0);
    assert_eq!(
        (d.reason, d.details.consecutive_failures),
        (Reason::MetricsInvalid, 1)
    );
}

// --- time, restarts, spec changes -------------------------------------------------

#[test]
fn a_step_back_in_time_counts_as_no_time_passing() {
    let config = Config {
        scale_up: DirectionRules {
            period_secs: 15.0,
            max_step_pods: Some(4),
            ..no_steps()
        },
        ..bare()
    };
    let mut f = Fleet::new(config, 2);
    assert_eq!(f.tick(800.0, 100.0).replicas, 6);
    // The caller's clock jumps back 50 s (sample stamped on it, so fresh):
    // no panic, and the step period still counts from t=100.
    let d = f.tick(800.0, 50.0);
    assert_eq!((d.replicas, d.reason), (6, Reason::RateLimited));
    assert_eq!(f.tick(800.0, 114.0).reason, Reason::RateLimited);
    assert_eq!(f.tick(800.0, 115.0).replicas, 10);
}

#[test]
fn warm_up_fills_the_windows_and_records_no_scale() {
    let config = Config {
        smoothing_half_life_secs: 30.0,
        scale_up: DirectionRules {
            period_secs: 15.0,
            max_step_pods: Some(4),
            ..no_steps()
        },
        scale_down: DirectionRules {
            stabilization_window_secs: 300.0,
            ..no_steps()
        },
        ..bare()
    };
    // History: 300 s of demand 80 on 10 pods.
    let history: Vec<(f64, Observation)> = (0..300)
        .map(|i| (f64::from(i), obs(80.0, 10, f64::from(i))))
        .collect();
    let mut e = Engine::new(config.clone());
    e.warm_up(&history);
    // Live, demand drops to 40 (a fall of 40, under the 6 x sqrt(80) = 54
    // of a level shift). The EWMA is warm: 40 + 40 x 2^(-1/30) = 79.1, not
    // the 40 a cold engine would start from.
    let d = e.step(&obs(40.0, 10, 300.0), 300.0);
    let smoothed = d.details.smoothed.unwrap_or(0.0);
    assert!((smoothed - (40.0 + 40.0 * (-1.0f64 / 30.0).exp2())).abs() < 1e-9);
    // 120 s later the EWMA is 40 + 40 x 2^(-121/30) = 42.4 -> 6 pods, but
    // the warm scale-down window still holds the 10s of the history.
    let d = e.step(&obs(40.0, 10, 420.0), 420.0);
    assert_eq!(d.details.recommended, 6);
    assert_eq!((d.replicas, d.reason), (10, Reason::Stabilizing));
    // Warm-up recorded no scale: a history that wanted a scale-up does not
    // rate-limit the first live scale-up.
    let history: Vec<(f64, Observation)> = (0..10)
        .map(|i| (f64::from(i), obs(80.0, 2, f64::from(i))))
        .collect();
    let mut e = Engine::new(config);
    e.warm_up(&history);
    let d = e.step(&obs(80.0, 2, 10.0), 10.0);
    assert_eq!((d.replicas, d.reason), (6, Reason::ScaleUp));
}

#[test]
fn restored_last_scale_keeps_cooldown_and_step_period() {
    let config = Config {
        reverse_cooldown_secs: 60.0,
        scale_up: DirectionRules {
            period_secs: 15.0,
            ..no_steps()
        },
        ..bare()
    };
    let mut e = Engine::new(config);
    e.restore_last_scale(100.0, Direction::Up);
    // Up wanted 5 s after the restored scale-up: step period.
    assert_eq!(
        e.step(&obs(80.0, 5, 105.0), 105.0).reason,
        Reason::RateLimited
    );
    // Down wanted 12 s after it (once the 80 at t=105 has left the 6 s
    // short window the stable path follows up): cooldown.
    assert_eq!(e.step(&obs(8.0, 5, 112.0), 112.0).reason, Reason::Cooldown);
}

#[test]
fn set_config_keeps_the_history() {
    let config = Config {
        smoothing_half_life_secs: 30.0,
        ..bare()
    };
    let mut f = Fleet::new(config.clone(), 10);
    f.tick(80.0, 0.0);
    f.engine.set_config(Config {
        max_replicas: 8,
        ..config
    });
    assert_eq!(f.engine.config().max_replicas, 8);
    // Smoothing continues (0 after one half-life from 80 -> 40, not 0).
    let d = f.tick(0.0, 30.0);
    assert_eq!(d.details.smoothed, Some(40.0));
    assert_eq!((d.replicas, d.details.limited_by), (5, None));
    // 8000 at t=31: EWMA 40 + (1 - 2^(-1/30)) x 7960 = 221 -> 28 pods -> max 8.
    let d = f.tick(8000.0, 31.0);
    assert_eq!(
        (d.replicas, d.details.limited_by),
        (8, Some(Limit::MaxReplicas))
    );
}

#[test]
fn dry_run_where_replicas_never_change_is_harmless() {
    // The caller never applies the decisions: the engine asks again once
    // per step period and never reverses.
    let mut e = Engine::new(Config::default());
    let mut ups = 0;
    for i in 0..120 {
        let t = f64::from(i);
        let d = e.step(&obs(200.0, 2, t), t);
        assert!(d.replicas >= 2);
        if d.replicas > 2 {
            ups += 1;
        }
    }
    // 120 s, one step each 15 s period -> 8 scale-up decisions.
    assert_eq!(ups, 8);
}

#[test]
fn details_carry_the_numbers() {
    let config = Config {
        service_time_secs: Some(1.0),
        ..bare()
    };
    let mut e = Engine::new(config);
    let d = e.step(&with_queue(obs(40.0, 5, 0.0), 60.0, 0.0), 0.0);
    let want = Details {
        in_flight: Some(40.0),
        queue_depth: Some(60.0),
        arrival_rate: None,
        demand: Some(40.0),
        drain: Some(2.0),     // 60 x 1 / 30
        smoothed: Some(42.0), // no smoothing: 40 + 2
        panic_demand: Some(42.0),
        forecast: None,
        seasonal_forecast: None,
        per_pod_target: 8.0,
        recommended: 6, // ceil(42 / 8) = ceil(5.25)
        limited_by: None,
        in_panic: false,
        consecutive_failures: 0,
    };
    assert_eq!(d.details, want);
}

#[test]
fn names_for_status_events_and_metrics() {
    assert_eq!(Reason::WithinTolerance.as_str(), "WithinTolerance");
    assert_eq!(Reason::BelowActivation.to_string(), "BelowActivation");
    assert_eq!(Reason::RecurringFloor.as_str(), "RecurringFloor");
    assert_eq!(Limit::ScaleDownStep.as_str(), "ScaleDownStep");
    assert_eq!(Direction::Up.as_str(), "Up");
}

// --- thrash ---------------------------------------------------------------------

/// A tiny LCG (Knuth's MMIX constants) for deterministic noise in [-1, 1).
struct Lcg(u64);

impl Lcg {
    fn next_unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    }
}

pub(crate) fn reversals(replicas: &[u32]) -> usize {
    let mut last: Option<bool> = None;
    let mut count = 0;
    for pair in replicas.windows(2) {
        if pair[1] == pair[0] {
            continue;
        }
        let up = pair[1] > pair[0];
        if last.is_some_and(|was_up| was_up != up) {
            count += 1;
        }
        last = Some(up);
    }
    count
}

#[test]
fn reversals_counts_direction_changes() {
    assert_eq!(reversals(&[1, 2, 2, 3, 2, 2, 4, 5]), 2);
    assert_eq!(reversals(&[5, 4, 3, 3, 1]), 0);
}

#[test]
fn noisy_constant_demand_does_not_thrash_with_the_defaults() {
    // 80 +- 30% every second for 3 minutes on the 10 pods it needs.
    for seed in [1, 7, 42, 1234, 99_999] {
        let mut noise = Lcg(seed);
        let mut f = Fleet::new(Config::default(), 10);
        let mut history = vec![f.replicas];
        for i in 0..180 {
            let demand = 80.0 * (1.0 + 0.3 * noise.next_unit());
            history.push(f.tick(demand, f64::from(i)).replicas);
        }
        assert_eq!(reversals(&history), 0, "seed {seed}: {history:?}");
        assert!(
            history.iter().all(|&r| (10..=14).contains(&r)),
            "seed {seed}: {history:?}"
        );
    }
}

// --- arrivals, forecast cap, early scale-down ---------------------------------

fn with_arrivals(mut o: Observation, rate: f64, t: f64) -> Observation {
    o.arrival_rate = Some(at(rate, t));
    o
}

/// All three metrics read at `t`: in-flight, queue depth and arrival rate,
/// with `ready` replicas all ready.
fn observed(in_flight: f64, queue: f64, rate: f64, ready: u32, t: f64) -> Observation {
    with_arrivals(with_queue(obs(in_flight, ready, t), queue, t), rate, t)
}

#[test]
fn a_measured_overload_is_met_in_one_step() {
    // Defaults (panic at 2x, scale-up step max(1000%, 4 pods)) with a 100 ms
    // service time. 4 full pods (40 in flight), 400 waiting, 2000 req/s
    // arriving: demand 2000 x 0.1 = 200 plus the drain of the backlog,
    // 400 x 0.1 / 30 = 1.33; panic (201.3 / 32 = 6.3 >= 2) on the first
    // tick, ceil(201.3 / 8) = ceil(25.2) = 26 pods at once (the step allows
    // 44).
    let config = Config {
        service_time_secs: Some(0.1),
        ..Config::default()
    };
    let mut e = Engine::new(config.clone());
    let o = observed(40.0, 400.0, 2000.0, 4, 0.0);
    let d = e.step(&o, 0.0);
    assert_eq!((d.replicas, d.reason), (26, Reason::Panic));
    assert_eq!(d.details.arrival_rate, Some(2000.0));
    // Without the arrival rate the same readings only say "full": the
    // saturation guess doubles the in-flight, min(2 x 40, 40 + 400) = 80
    // (above the measured 40 + 1.33), ceil(80 / 8) = 10 pods.
    let o = with_queue(obs(40.0, 4, 0.0), 400.0, 0.0);
    let d = Engine::new(config).step(&o, 0.0);
    assert_eq!((d.replicas, d.reason), (10, Reason::Panic));
}

#[test]
fn a_measured_overload_under_the_panic_threshold_is_met_at_once() {
    // Defaults with a 100 ms service time, 5 pods (planned for 40), 30 in
    // flight at t=0. At t=5 they are full (50 in flight), 500 wait and 745
    // req/s arrive: an overload of 74.5 in concurrency, plus the drain
    // 500 x 0.1 / 30 = 1.67, is 76.2, 1.9x the planned capacity: under the
    // panic threshold. The short window's mean, (30 + 76.7) / 2 = 53.3,
    // would ask for 7 pods; the measured overload counts at once:
    // ceil(76.2 / 8) = 10.
    let config = Config {
        service_time_secs: Some(0.1),
        ..Config::default()
    };
    let mut e = Engine::new(config);
    let calm = observed(30.0, 0.0, 300.0, 5, 0.0);
    assert_eq!(e.step(&calm, 0.0).replicas, 5);
    let over = observed(50.0, 500.0, 745.0, 5, 5.0);
    let d = e.step(&over, 5.0);
    assert!(!d.details.in_panic, "{d:?}");
    assert_eq!((d.replicas, d.reason), (10, Reason::ScaleUp), "{d:?}");
}

#[test]
fn a_burst_between_scrapes_is_sized_from_the_queue_it_left() {
    // Defaults with a 100 ms service time, 24 pods (planned for 24 x 8 =
    // 192). A scrape finds them full (240 in flight) with 1200 waiting that
    // were not there 5 s earlier, while the rate over those 5 s, 1700 req/s
    // (170 in concurrency), is under their 240: a burst shorter than the
    // interval. Demand is at least 240 + 1200 x 0.1 / 2 s = 300, plus the
    // drain 1200 x 0.1 / 30 = 4. The short window's mean, (170 + 304) / 2 =
    // 237, is above 192 x 1.2 = 230.4: ceil(237 / 8) = 30 pods. Without
    // the burst the demand is the in-flight plus the queue's growth,
    // 240 + 240 x 0.1 = 264: a mean of (170 + 268) / 2 = 219, inside the
    // band, and the smoothed demand (~181) keeps 24 pods.
    let config = Config {
        service_time_secs: Some(0.1),
        ..Config::default()
    };
    let mut e = Engine::new(config);
    let calm = observed(170.0, 0.0, 1700.0, 24, 0.0);
    assert_eq!(e.step(&calm, 0.0).replicas, 24);
    let burst = observed(240.0, 1200.0, 1700.0, 24, 5.0);
    let d = e.step(&burst, 5.0);
    assert_eq!(d.details.demand, Some(300.0));
    assert_eq!(d.details.drain, Some(4.0));
    assert_eq!(d.replicas, 30, "{d:?}");
    // The same queue at the next scrape did not rise: no new burst, and
    // the 30 asked for (24 of them Ready) stay.
    let mut held = observed(240.0, 1200.0, 1700.0, 24, 10.0);
    held.current_replicas = 30;
    let d = e.step(&held, 10.0);
    assert!(d.details.demand < Some(300.0), "{d:?}");
    assert!(d.replicas >= 30, "{d:?}");
}

#[test]
fn a_bad_arrival_rate_never_scales_down() {
    let config = Config {
        service_time_secs: Some(0.1),
        scale_down: no_steps(),
        ..bare()
    };
    let mut f = Fleet::new(config, 10);
    for bad in [f64::NAN, f64::INFINITY, -5.0] {
        let o = with_arrivals(obs(8.0, 10, 0.0), bad, 0.0);
        let d = f.apply(o, 0.0);
        assert_eq!((d.replicas, d.reason), (10, Reason::MetricsInvalid));
    }
    let mut o = obs(8.0, 10, 0.0);
    o.arrival_rate = Some(Err(ReadError::Missing));
    assert_eq!(f.apply(o, 0.0).replicas, 10);
}

#[test]
fn a_level_shift_moves_the_smoothers_at_once_and_is_not_extrapolated() {
    // 80 steady for 300 s, then 160: a jump of 80 on a noiseless signal,
    // far over 6 x sqrt(80) = 54, is a level shift. The EWMA and Holt's
    // level take it at once, Holt keeps its trend (0): the smoothed demand
    // is 160 from the step on, and the forecast never runs ahead of it.
    let mut e = forecasting_engine();
    for i in 0..=400 {
        let t = f64::from(i);
        let demand = if i < 300 { 80.0 } else { 160.0 };
        let d = e.step(&obs(demand, 20, t), t);
        if i >= 300 {
            let smoothed = d.details.smoothed.unwrap_or(0.0);
            let forecast = d.details.forecast.unwrap_or(0.0);
            assert!(
                (smoothed - 160.0).abs() < 1e-9,
                "t={t}: smoothed {smoothed}"
            );
            assert!(forecast <= 160.0 + 1e-9, "t={t}: forecast {forecast}");
        }
    }
    // A fall is taken at once too: back to 80.
    let d = e.step(&obs(80.0, 20, 401.0), 401.0);
    assert_eq!(d.details.smoothed, Some(80.0));
    // Noise is no shift: on a signal that alternates 80 and 110 the
    // samples are 15 from the average (95), so a sample of 170 (75 from
    // it) is within 6 mean deviations (90) and is averaged in; one of 200
    // (105) is a shift.
    let noisy = || {
        let mut e = Engine::new(bare_with_smoothing());
        for i in 0..300 {
            let t = f64::from(i);
            e.step(&obs(if i % 2 == 0 { 80.0 } else { 110.0 }, 20, t), t);
        }
        e
    };
    let d = noisy().step(&obs(200.0, 20, 300.0), 300.0);
    assert_eq!(d.details.smoothed, Some(200.0));
    let d = noisy().step(&obs(170.0, 20, 300.0), 300.0);
    let smoothed = d.details.smoothed.unwrap_or(0.0);
    assert!(
        smoothed < 110.0,
        "a noisy signal's jump averaged in: {smoothed}"
    );
}

fn bare_with_smoothing() -> Config {
    Config {
        smoothing_half_life_secs: 30.0,
        ..bare()
    }
}

/// Smoothing (30 s half-life) and a 30 s forecast horizon.
fn forecasting_engine() -> Engine {
    Engine::new(Config {
        prediction: Some(PredictionConfig {
            horizon_secs: 30.0,
            season_secs: Some(86_400.0),
        }),
        ..bare_with_smoothing()
    })
}

#[test]
fn the_forecast_does_not_extrapolate_a_step_that_ended() {
    // 80 steady for 300 s, then 120: a jump of 40, under the 6 x sqrt(80)
    // = 54 of a level shift, so Holt reads it as growth. Its trend outlives
    // the step; the cap holds the forecast to the latest demand plus the
    // growth measured over the last horizon (30 s): once the step is a
    // horizon old, 120.
    let mut e = forecasting_engine();
    let mut during = 0.0_f64;
    for i in 0..=400 {
        let t = f64::from(i);
        let demand = if i < 300 { 80.0 } else { 120.0 };
        let d = e.step(&obs(demand, 20, t), t);
        let forecast = d.details.forecast.unwrap_or(0.0);
        if (300..330).contains(&i) {
            during = during.max(forecast);
        }
        if i >= 331 {
            assert!(forecast <= 120.0 + 1e-9, "t={t}: forecast {forecast}");
        }
    }
    // Within the horizon after the step the measured growth (40) allows
    // the forecast to run ahead: it is a ramp as far as anyone can tell.
    assert!(during > 120.0, "forecast during the step {during}");
}

#[test]
fn the_forecast_looks_one_tick_past_the_horizon() {
    // A ramp of 1 per second, horizon 30 s. Pods asked for at a tick are
    // Ready 30 s later, the next tick's one tick after that: the forecast
    // looks 30 s + one tick ahead. On a steady ramp Holt's trend is the
    // slope, so the forecast runs that many seconds of growth ahead of the
    // latest demand: 35 with ticks every 5 s, 31 with ticks every second.
    let config = Config {
        smoothing_half_life_secs: 30.0,
        prediction: Some(PredictionConfig {
            horizon_secs: 30.0,
            season_secs: Some(86_400.0),
        }),
        ..bare()
    };
    for (every, ahead) in [(5.0, 35.0), (1.0, 31.0)] {
        let mut e = Engine::new(config.clone());
        let mut last = None;
        let mut t = 0.0;
        while t <= 900.0 {
            let demand = 100.0 + t;
            last = Some((demand, e.step(&obs(demand, 200, t), t)));
            t += every;
        }
        let (demand, d) = last.expect("ticked");
        let forecast = d.details.forecast.expect("a forecast");
        assert!(
            (forecast - (demand + ahead)).abs() < 0.5,
            "every {every} s: forecast {forecast}, demand {demand}"
        );
    }
}

#[test]
fn the_forecast_does_not_extrapolate_a_step_one_lead_old() {
    // Ticks every 5 s, horizon 30 s: the forecast's lead is 35 s. 80 up
    // to t=295, 120 from t=300 (under a level shift, as above). At t=330
    // the last sample before the step (t=295) is exactly one lead old: it
    // is out of the growth measured, which is 0 from t=300 on, so the
    // forecast says 120 and no more (Holt's trend alone would still add to
    // it).
    let mut e = forecasting_engine();
    let mut holt_ran_ahead = false;
    for i in 0..=80 {
        let t = f64::from(i) * 5.0;
        let demand = if t < 300.0 { 80.0 } else { 120.0 };
        let d = e.step(&obs(demand, 40, t), t);
        let forecast = d.details.forecast.unwrap_or(0.0);
        if (300.0..330.0).contains(&t) {
            holt_ran_ahead |= forecast > 120.0;
        }
        if t >= 330.0 {
            assert!(forecast <= 120.0 + 1e-9, "t={t}: forecast {forecast}");
        }
    }
    assert!(holt_ran_ahead, "within the lead the step counts as growth");
}

#[test]
fn pods_ready_since_the_last_tick_do_not_empty_a_full_fleets_samples() {
    // 100 ms service time, 5000 req/s arriving (500 in concurrency), 14
    // pods full (140 in flight) and 1400 waiting. At t=5, 63 pods are
    // Ready, but the samples were taken before the new ones served
    // anything: still 140 in flight and 1400 waiting. Judged against 63
    // pods the fleet would look far from full and demand would fall to
    // the in-flight, 140; judged against the 14 of the last tick it is
    // full, and demand stays the arrivals' 500.
    let config = Config {
        service_time_secs: Some(0.1),
        ..bare()
    };
    let tick = |e: &mut Engine, ready: u32, t: f64| {
        let mut o = observed(140.0, 1400.0, 5000.0, ready, t);
        o.current_replicas = 63;
        e.step(&o, t)
    };
    let mut e = Engine::new(config);
    assert_eq!(tick(&mut e, 14, 0.0).details.demand, Some(500.0));
    assert_eq!(tick(&mut e, 63, 5.0).details.demand, Some(500.0));
    // A tick later the samples are the new fleet's: 140 in flight on 63
    // Ready pods is 140 of demand.
    assert_eq!(tick(&mut e, 63, 10.0).details.demand, Some(140.0));
}

#[test]
fn a_clear_drop_scales_down_after_a_fifth_of_the_window() {
    // Defaults: 300 s scale-down window, early scale-down on. Demand 80 on
    // 10 pods, then 24 from t=600 (ticks every 5 s). The fall, 56, is a
    // level shift (over 6 x sqrt(80) = 54 on a noiseless signal): the EWMA
    // takes it at once, and the recommendation is ceil(24 x 1.1 / 8) = 4
    // from t=600. Once the newest fifth of the window, (t - 60, t], holds
    // only those, at t=655, it asks for at most half of 10: down then,
    // long before the window's t=900. (3 pods for 24 are more than a fifth
    // of 10: no collapse.)
    let (t, replicas) = first_scale_down_after_a_fall(24.0);
    assert_eq!(t, 655.0, "first scale-down");
    assert!(replicas <= 5, "down to {replicas}");
    // With early off the window holds the last 10 (t=595) for 300 s: down
    // at t=895.
    let config = Config {
        early_scale_down: false,
        ..Config::default()
    };
    let mut f = Fleet::new(config, 10);
    for i in 0..=178 {
        let t = f64::from(i) * 5.0;
        let d = f.tick(if t < 600.0 { 80.0 } else { 24.0 }, t);
        assert_eq!(d.replicas, 10, "t={t}");
    }
    assert!(f.tick(24.0, 895.0).replicas < 10);
}

#[test]
fn a_collapse_scales_down_after_a_twentieth_of_the_window() {
    // As above, but the demand falls from 80 to 16: 2 pods' worth, at most
    // a fifth of 10. Once the newest twentieth of the window, (t - 15, t],
    // holds only those (the ticks at 600, 605 and 610), at t=610, the fleet
    // goes down (a spike that ended gives back its pods 10 s after, not 55).
    let (t, replicas) = first_scale_down_after_a_fall(16.0);
    assert_eq!(t, 610.0, "first scale-down");
    assert!(replicas <= 5, "down to {replicas}");
}

/// Defaults, 10 pods, demand 80 until t=600 and then `low` (ticks every
/// 5 s until t=900): when the fleet first went down, and to what.
fn first_scale_down_after_a_fall(low: f64) -> (f64, u32) {
    let mut f = Fleet::new(Config::default(), 10);
    (0..=180)
        .map(|i| f64::from(i) * 5.0)
        .find_map(|t| {
            let d = f.tick(if t < 600.0 { 80.0 } else { low }, t);
            (d.replicas < 10).then_some((t, d.replicas))
        })
        .expect("scaled down")
}

#[test]
fn a_clear_drop_cut_short_by_the_step_limit_goes_on_down() {
    // Defaults (scale-down steps of at most 50% every 30 s). Demand 320 on
    // 40 pods, then 80 from t=600 (a level shift): the recommendation is
    // ceil(80 x 1.1 / 8) = 11. At t=655 the newest fifth of the window
    // asks for at most half of 40: down, but only to 20 (50%). 11 is not
    // half of 20, yet the drop began at 40 within the window: at the next
    // step period, t=685, down to 11, not at t=895 when the window would
    // let go of the 40s.
    let mut f = Fleet::new(Config::default(), 40);
    let mut downs = Vec::new();
    for i in 0..=160 {
        let t = f64::from(i) * 5.0;
        let before = f.replicas;
        let d = f.tick(if t < 600.0 { 320.0 } else { 80.0 }, t);
        if d.replicas < before {
            downs.push((t, d.replicas));
        }
    }
    assert_eq!(downs, vec![(655.0, 20), (685.0, 11)]);
}

#[test]
fn a_steady_decline_is_read_on_the_demand_not_on_held_recommendations() {
    // Defaults. Demand 160 on 20 pods (8 per pod) until t=300, then down
    // by 0.2 per second. The tolerance band holds the recommendation at 20
    // until demand is under 144 (t=380), but the pods for the demand itself
    // fall from 20 to 19 at t=340 (152): the steady decline (each fifth of
    // the 300 s window lower at its highest than the one before) shows at
    // t=610. Read on the held recommendations it showed at t=685.
    let mut f = Fleet::new(Config::default(), 20);
    let mut first_down = None;
    for i in 0..=240 {
        let t = f64::from(i) * 5.0;
        let demand = if t < 300.0 {
            160.0
        } else {
            160.0 - 0.2 * (t - 300.0)
        };
        let d = f.tick(demand, t);
        if d.replicas < 20 && first_down.is_none() {
            first_down = Some(t);
        }
    }
    assert_eq!(first_down, Some(610.0));
}

#[test]
fn a_scale_down_keeps_the_peaks_of_its_window() {
    // Defaults without the forecast (its trend would hold the fleet here
    // on its own). Demand alternates 80 and 40 every 10 s on 10 pods (ticks
    // every 5 s). The EWMA (half-life 30 s) sits near the mean, 60: the
    // stable path asks for ceil(60 x 1.1 / 8) = 9 pods or fewer. But every
    // 20 s the measured demand is 80 again, 10 pods, and a scale-down
    // goes no lower than the highest peak of its window: the fleet stays
    // at 10 (a fleet sized for the mean would be short of pods for every
    // burst).
    let config = Config {
        prediction: None,
        ..Config::default()
    };
    let mut f = Fleet::new(config, 10);
    let mut stable_asked_less = false;
    for i in 0..=240 {
        let t = f64::from(i) * 5.0;
        let demand = if (i / 2) % 2 == 0 { 80.0 } else { 40.0 };
        let d = f.tick(demand, t);
        stable_asked_less |= d.details.recommended < 10;
        assert!(d.replicas >= 10, "t={t}: {} pods", d.replicas);
    }
    assert!(stable_asked_less, "the stable path alone would scale down");
}

#[test]
fn new_pods_taking_a_backlog_are_not_read_as_demand() {
    // 100 ms service time, 390 req/s arriving (39 in concurrency). At t=0
    // three full pods and 300 waiting; at t=5 seven pods are Ready and took
    // the backlog at once: 56 in flight, none waiting. The steady demand at
    // t=5 is the arrivals' 39, not the 56 of a backlog being served.
    let config = Config {
        service_time_secs: Some(0.1),
        ..bare()
    };
    let tick = |e: &mut Engine, in_flight: f64, queue: f64, ready: u32, t: f64| {
        let mut o = observed(in_flight, queue, 390.0, ready, t);
        o.current_replicas = 7;
        e.step(&o, t)
    };
    let mut e = Engine::new(config.clone());
    tick(&mut e, 30.0, 300.0, 3, 0.0);
    let d = tick(&mut e, 56.0, 0.0, 7, 5.0);
    assert_eq!(d.details.demand, Some(39.0));
    // Had the 7 pods been Ready all along, 56 in flight would be demand.
    let mut e = Engine::new(config);
    tick(&mut e, 56.0, 300.0, 7, 0.0);
    let d = tick(&mut e, 56.0, 0.0, 7, 5.0);
    assert_eq!(d.details.demand, Some(56.0));
}

// --- the recurring floor ----------------------------------------------------

/// The replicas at each 5 s tick of `demand(t)` for `secs`, from 20 pods.
fn replicas_over(config: Config, secs: u32, demand: impl Fn(f64) -> f64) -> Vec<(f64, u32)> {
    decisions_over(config, secs, demand)
        .into_iter()
        .map(|(t, d)| (t, d.replicas))
        .collect()
}

fn decisions_over(config: Config, secs: u32, demand: impl Fn(f64) -> f64) -> Vec<(f64, Decision)> {
    let mut f = Fleet::new(config, 20);
    (0..=secs / 5)
        .map(|i| {
            let t = f64::from(i) * 5.0;
            (t, f.tick(demand(t), t))
        })
        .collect()
}

fn without_floor() -> Config {
    Config {
        scale_down_floor: None,
        ..Config::default()
    }
}

#[test]
fn a_floor_holds_the_fleet_through_the_lulls_of_recurring_demand() {
    // 300 s at 160 in flight (20 pods at 8), then 200 s at 24 (3 pods),
    // again and again. The first lull has nothing to go by: the fleet
    // collapses with it. From the second on, the demand has come back
    // once: the fleet stays at the median, 20, through each lull.
    let bursty = |t: f64| if t % 500.0 < 300.0 { 160.0 } else { 24.0 };
    let lowest_in = |run: &[(f64, u32)], from: f64, to: f64| {
        run.iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|&(_, r)| r)
            .min()
    };
    let decisions = decisions_over(Config::default(), 3000, bursty);
    let held: Vec<(f64, u32)> = decisions.iter().map(|(t, d)| (*t, d.replicas)).collect();
    assert!(lowest_in(&held, 300.0, 500.0) < Some(10), "{held:?}");
    for lull in [800.0, 1300.0, 1800.0, 2300.0, 2800.0] {
        assert_eq!(lowest_in(&held, lull, lull + 200.0), Some(20), "{held:?}");
    }
    let followed = replicas_over(without_floor(), 3000, bursty);
    for lull in [800.0, 1300.0, 2800.0] {
        assert!(lowest_in(&followed, lull, lull + 200.0) < Some(10));
    }
    // Status says why: once the window lets go, the floor is what holds.
    let reasons: Vec<Reason> = decisions
        .iter()
        .filter(|(t, _)| (2900.0..3000.0).contains(t))
        .map(|(_, d)| d.reason)
        .collect();
    assert!(reasons.contains(&Reason::RecurringFloor), "{reasons:?}");
    assert!(
        reasons
            .iter()
            .all(|r| matches!(r, Reason::RecurringFloor | Reason::Stabilizing)),
        "{reasons:?}"
    );
}

#[test]
fn a_floor_never_keeps_a_policy_that_may_scale_to_zero_from_zero() {
    // Bursts of 40 in flight (5 pods) for 60 s of every 100 s, then idle
    // for good from t=1200. The hour's median is 5 pods and the demand
    // kept coming back to it, but a policy that may scale to zero goes to
    // zero a scale-down window (60 s) after the demand stops, as without a
    // floor (with the floor holding, it would wait until t=1435).
    let config = Config {
        scale_down_floor: Some(FloorConfig {
            window_secs: 3600.0,
            quantile: 0.5,
        }),
        ..to_zero()
    };
    let bursty = |t: f64| {
        if t < 1200.0 && t % 100.0 < 60.0 {
            40.0
        } else {
            0.0
        }
    };
    let mut f = Fleet::new(config, 5);
    let zero_at = (0..=300)
        .map(|i| f64::from(i) * 5.0)
        .find(|&t| f.tick(bursty(t), t).replicas == 0 && t >= 1200.0);
    assert!(
        zero_at.is_some_and(|t| t <= 1200.0 + 60.0 + 10.0),
        "{zero_at:?}"
    );
}

#[test]
fn a_floor_leaves_a_ramp_a_step_and_a_spike_alone() {
    let ramp = |t: f64| 400.0 - 360.0 * ((t - 600.0) / 1800.0).clamp(0.0, 1.0);
    let step = |t: f64| if t < 1200.0 { 400.0 } else { 80.0 };
    let spike = |t: f64| {
        if (600.0..720.0).contains(&t) {
            800.0
        } else {
            80.0
        }
    };
    for (name, demand) in [
        ("ramp", &ramp as &dyn Fn(f64) -> f64),
        ("step", &step),
        ("spike", &spike),
    ] {
        assert_eq!(
            replicas_over(Config::default(), 3600, demand),
            replicas_over(without_floor(), 3600, demand),
            "{name}"
        );
    }
}

#[test]
fn a_rise_that_comes_every_day_is_met_by_pods_ordered_before_it() {
    // 80 in flight (10 pods at 8 each) until 8:00, 240 (30 pods) until
    // 20:00, every day. From the seventh day (six rises checked and come
    // true) the fleet is raised a horizon before 8:00; with the season off
    // it rises only when the demand has.
    const DAY: f64 = 86_400.0;
    let eight = 8.0 * 3600.0;
    let daily = |t: f64| {
        if (eight..20.0 * 3600.0).contains(&(t % DAY)) {
            240.0
        } else {
            80.0
        }
    };
    let before_the_rise = |season_secs: Option<f64>| {
        let config = Config {
            prediction: Some(PredictionConfig {
                horizon_secs: 30.0,
                season_secs,
            }),
            ..Config::default()
        };
        let mut f = Fleet::new(config, 10);
        let (mut t, mut days, mut seasonal) = (0.0, Vec::new(), None);
        for day in 0..8 {
            let watch = f64::from(day) * DAY + eight - 5.0;
            while t <= watch {
                seasonal = f.tick(daily(t), t).details.seasonal_forecast;
                t += 5.0;
            }
            days.push(f.replicas);
        }
        (days, seasonal)
    };
    // 11 from the second day: the scale-down after 20:00 keeps the
    // tolerance as headroom.
    // The decision says what raised it: 80 x 3.
    assert_eq!(
        before_the_rise(Some(DAY)),
        (vec![10, 11, 11, 11, 11, 11, 11, 30], Some(240.0))
    );
    assert_eq!(
        before_the_rise(None),
        (vec![10, 11, 11, 11, 11, 11, 11, 11], None)
    );
}
