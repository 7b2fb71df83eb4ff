//! Runs several autoscalers (and the oracle) over the same arrivals, each
//! configured as its users would for the simulated service.
use crate::scaling::Config;

use super::inflight::{DEFAULT_SYNC_PERIOD_SECS, Inflight, SIM_MAX_REPLICAS, default_policy};
use super::oracle;
use super::peers::{Autoscaler, Hpa, HpaConfig, Kpa, KpaConfig, keda};
use super::run::{Arrivals, Outcome, Series, SimError, World, run, run_schedule};

/// The KPA's own target utilization (`container-concurrency-target-percentage`).
pub const KPA_DEFAULT_UTILIZATION: f64 = 0.7;

/// An autoscaler the simulator can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Contender {
    /// inflight's engine.
    Inflight,
    /// Kubernetes HPA on in-flight per pod (prometheus-adapter).
    Hpa,
    /// KEDA's Prometheus scaler on sum(in-flight) + sum(queue).
    Keda,
    /// Knative's KPA on per-second concurrency.
    Kpa,
}

impl Contender {
    pub const PEERS: [Contender; 3] = [Contender::Hpa, Contender::Keda, Contender::Kpa];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Inflight => "inflight",
            Contender::Hpa => "hpa",
            Contender::Keda => "keda",
            Contender::Kpa => "kpa",
        }
    }
}

/// How every contender is configured for one comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Setup {
    /// inflight's engine configuration (the policy).
    pub policy: Config,
    /// inflight's evaluation period.
    pub sync_period_secs: f64,
    /// Whether inflight's policy reads a queue metric.
    pub with_queue: bool,
    /// Whether inflight's policy reads an arrival-rate metric.
    pub with_arrivals: bool,
    /// The KPA's target utilization.
    pub kpa_utilization: f64,
}

impl Setup {
    /// The documented default policy ([`default_policy`]), the controller's
    /// default sync period, and the KPA at its own 0.7.
    pub fn defaults(world: &World) -> Self {
        Setup {
            policy: default_policy(&world.service, world.startup_secs),
            sync_period_secs: DEFAULT_SYNC_PERIOD_SECS,
            with_queue: true,
            with_arrivals: true,
            kpa_utilization: KPA_DEFAULT_UTILIZATION,
        }
    }

    /// Overrides the target utilization of inflight and the equivalent
    /// target of each peer (HPA and KEDA follow inflight's per-pod target;
    /// the KPA's own utilization is set too).
    pub fn with_utilization(mut self, utilization: f64) -> Self {
        self.policy.utilization = utilization;
        self.kpa_utilization = utilization;
        self
    }

    /// The per-pod target HPA and KEDA get: inflight's
    /// `concurrencyPerPod x utilization`.
    pub fn per_pod_target(&self) -> f64 {
        self.policy.concurrency_per_pod * self.policy.utilization
    }

    /// A fresh autoscaler of this kind.
    pub fn autoscaler(&self, contender: Contender, world: &World) -> Box<dyn Autoscaler> {
        let min = world.min_replicas;
        match contender {
            Contender::Inflight => Box::new(
                Inflight::new(self.policy.clone(), self.sync_period_secs)
                    .with_queue(self.with_queue)
                    .with_arrivals(self.with_arrivals),
            ),
            Contender::Hpa => Box::new(Hpa::new(
                "hpa",
                HpaConfig::pods_in_flight(self.per_pod_target(), min, SIM_MAX_REPLICAS),
            )),
            Contender::Keda => Box::new(keda(self.per_pod_target(), min, SIM_MAX_REPLICAS)),
            Contender::Kpa => {
                let mut config = KpaConfig::defaults(
                    f64::from(world.service.per_pod_limit),
                    min,
                    SIM_MAX_REPLICAS,
                );
                config.target_utilization = self.kpa_utilization;
                Box::new(Kpa::new(config))
            }
        }
    }
}

/// One row of a comparison.
#[derive(Clone, Debug)]
pub struct Run {
    pub outcome: Outcome,
    pub series: Option<Series>,
}

/// Runs `contenders` (in parallel threads) and the oracle over `arrivals`
/// (the oracle over the measured seconds only: it needs no warm-up);
/// the oracle's row comes last and every row gets its cost relative to the
/// oracle's. `progress` is called with simulated seconds done, summed over
/// the runs.
pub fn compare(
    arrivals: &Arrivals,
    world: &World,
    setup: &Setup,
    contenders: &[Contender],
    series_points: Option<usize>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Run>, SimError> {
    world.validate()?;
    let joined: Vec<std::thread::Result<Result<Run, SimError>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = contenders
            .iter()
            .map(|&contender| {
                scope.spawn(move || {
                    let mut autoscaler = setup.autoscaler(contender, world);
                    let mut last = 0;
                    let mut report = |done: u64| {
                        progress(done.saturating_sub(last));
                        last = done;
                    };
                    run(
                        arrivals,
                        world,
                        autoscaler.as_mut(),
                        series_points,
                        &mut report,
                    )
                    .map(|(outcome, series)| Run { outcome, series })
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join()).collect()
    });
    let mut runs = Vec::with_capacity(contenders.len() + 1);
    for result in joined {
        let run = result.map_err(|_| SimError::Invalid("a simulation thread panicked".into()))?;
        runs.push(run?);
    }
    let measured = &arrivals.measured;
    let schedule = oracle::schedule(
        measured,
        &world.service,
        world.startup_secs,
        world.min_replicas,
    );
    let (outcome, series) = run_schedule(measured, world, "oracle", &schedule, series_points)?;
    runs.push(Run { outcome, series });
    let oracle_cost = schedule.pod_seconds();
    for r in &mut runs {
        r.outcome.cost_vs_oracle = (oracle_cost > 0.0).then(|| r.outcome.pod_seconds / oracle_cost);
    }
    Ok(runs)
}

/// The plot's panels: every run that kept its series.
pub fn panels(runs: &[Run]) -> Vec<(String, Series)> {
    runs.iter()
        .filter_map(|r| r.series.clone().map(|s| (r.outcome.name.clone(), s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile::Profile;

    #[test]
    fn utilization_moves_every_target() {
        let world = World::default();
        let s = Setup::defaults(&world);
        assert_eq!(s.per_pod_target(), 10.0 * s.policy.utilization);
        assert_eq!(s.kpa_utilization, 0.7);
        let s = s.with_utilization(0.6);
        assert_eq!(s.per_pod_target(), 6.0);
        assert_eq!(s.kpa_utilization, 0.6);
    }

    #[test]
    fn everyone_runs_on_the_same_arrivals_and_the_oracle_is_cheapest() {
        let world = World::default();
        let profile = Profile::Step {
            before: 500.0,
            after: 3000.0,
            at_secs: 600.0,
        };
        let a = Arrivals::draw(&profile, 0, 1800, 1);
        let all = [
            Contender::Inflight,
            Contender::Hpa,
            Contender::Keda,
            Contender::Kpa,
        ];
        let runs = compare(
            &a,
            &world,
            &Setup::defaults(&world),
            &all,
            Some(100),
            &|_| {},
        )
        .unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.outcome.name.as_str()).collect();
        assert_eq!(names, ["inflight", "hpa", "keda", "kpa", "oracle"]);
        let oracle = &runs[4].outcome;
        assert_eq!(oracle.cost_vs_oracle, Some(1.0));
        for r in &runs {
            assert_eq!(r.outcome.requests, oracle.requests);
            assert_eq!(r.outcome.seconds, 1800);
            assert!(r.series.as_ref().is_some_and(|s| s.demand.len() == 100));
            // Everyone scaled up for a 6x step.
            assert!(r.outcome.scale_actions > 0, "{:?}", r.outcome);
            assert!(
                r.outcome.pod_seconds >= oracle.pod_seconds * 0.999,
                "{:?}",
                r.outcome
            );
        }
    }
}
