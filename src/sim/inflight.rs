//! inflight itself in the simulator: the real engine (`scaling::Engine`),
//! fed what the controller would read from Prometheus and the API server.
use crate::scaling::{Config, Engine, Observation, PredictionConfig, ReadError, Reading, Sample};

use super::peers::{Autoscaler, Ticker, View};
use super::service::ServiceConfig;

/// The controller's default evaluation period (`--sync-period`), used when
/// the policy sets no `syncPeriod`.
pub const DEFAULT_SYNC_PERIOD_SECS: f64 = 5.0;

/// Replicas no simulated policy needs more of (the traces' peaks are a few
/// hundred pods at the bench's scales).
pub const SIM_MAX_REPLICAS: u32 = 100_000;

/// The policy `inflight simulate` uses without `--policy`: the engine's
/// documented defaults (`Config::default()`), with `concurrencyPerPod` set
/// to the service's per-pod limit, the service time known to the policy, a
/// queue metric and an arrival-rate metric (the caller's `Setup` decides
/// which metrics the policy reads), a maximum high enough never to bind,
/// and the forecast horizon equal to the pods' start-up time (what
/// `horizon: auto` learns).
pub fn default_policy(service: &ServiceConfig, startup_secs: f64) -> Config {
    let defaults = Config::default();
    Config {
        min_replicas: 1,
        max_replicas: SIM_MAX_REPLICAS,
        concurrency_per_pod: f64::from(service.per_pod_limit),
        service_time_secs: Some(service.service_time_secs),
        prediction: defaults.prediction.as_ref().map(|p| PredictionConfig {
            horizon_secs: startup_secs,
            season_secs: p.season_secs,
        }),
        ..defaults
    }
}

/// The engine behind the `Autoscaler` interface.
#[derive(Clone, Debug)]
pub struct Inflight {
    engine: Engine,
    ticker: Ticker,
    with_queue: bool,
    with_arrivals: bool,
}

impl Inflight {
    /// An engine evaluated every `sync_period_secs`.
    pub fn new(config: Config, sync_period_secs: f64) -> Self {
        Inflight {
            engine: Engine::new(config),
            ticker: Ticker::new(sync_period_secs),
            with_queue: true,
            with_arrivals: true,
        }
    }

    /// Whether the policy has a queue-depth metric (default: yes).
    pub fn with_queue(mut self, with_queue: bool) -> Self {
        self.with_queue = with_queue;
        self
    }

    /// Whether the policy has an arrival-rate metric (default: yes).
    pub fn with_arrivals(mut self, with_arrivals: bool) -> Self {
        self.with_arrivals = with_arrivals;
        self
    }

    pub fn config(&self) -> &Config {
        self.engine.config()
    }
}

/// What the controller's queries would return at `view`.
pub fn observation(view: &View) -> Observation {
    let reading = |value: fn(&super::peers::Scrape) -> f64| -> Reading {
        view.scrape
            .as_ref()
            .map(|s| Sample {
                value: value(s),
                timestamp: s.timestamp,
            })
            .ok_or(ReadError::Missing)
    };
    Observation {
        in_flight: reading(|s| s.in_flight),
        queue_depth: Some(reading(|s| s.queue_depth)),
        ready_replicas: view.ready,
        current_replicas: view.current,
        arrival_rate: Some(reading(|s| s.arrival_rate)),
    }
}

impl Autoscaler for Inflight {
    fn name(&self) -> &str {
        "inflight"
    }

    fn step(&mut self, view: &View) -> Option<u32> {
        if !self.ticker.due(view.now) {
            return None;
        }
        let mut obs = observation(view);
        if !self.with_queue {
            obs.queue_depth = None;
        }
        if !self.with_arrivals {
            obs.arrival_rate = None;
        }
        Some(self.engine.step(&obs, view.now).replicas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::peers::Scrape;

    #[test]
    fn default_policy_matches_the_service() {
        let c = default_policy(&ServiceConfig::default(), 30.0);
        assert_eq!(c.concurrency_per_pod, 10.0);
        assert_eq!(c.service_time_secs, Some(0.1));
        assert_eq!(c.prediction.map(|p| p.horizon_secs), Some(30.0));
        assert_eq!(c.utilization, Config::default().utilization);
    }

    #[test]
    fn observation_carries_the_scrape_timestamp() {
        let view = View {
            now: 12.0,
            scrape: Some(Scrape {
                timestamp: 10.0,
                in_flight: 42.0,
                queue_depth: 3.0,
                ready: 5,
                arrival_rate: 400.0,
            }),
            live_concurrency: 50.0,
            ready: 5,
            current: 7,
        };
        let obs = observation(&view);
        assert_eq!(
            obs.in_flight,
            Ok(Sample {
                value: 42.0,
                timestamp: 10.0
            })
        );
        assert_eq!(obs.queue_depth.map(|q| q.map(|s| s.value)), Some(Ok(3.0)));
        assert_eq!(
            obs.arrival_rate.map(|r| r.map(|s| s.value)),
            Some(Ok(400.0))
        );
        assert_eq!((obs.ready_replicas, obs.current_replicas), (5, 7));
        let empty = observation(&View {
            scrape: None,
            ..view
        });
        assert_eq!(empty.in_flight, Err(ReadError::Missing));
    }

    #[test]
    fn sizes_for_the_scraped_demand_on_its_sync_period() {
        let mut a = Inflight::new(default_policy(&ServiceConfig::default(), 30.0), 5.0);
        let view = |now: f64| View {
            now,
            scrape: Some(Scrape {
                timestamp: now,
                in_flight: 20.0,
                queue_depth: 0.0,
                ready: 2,
                arrival_rate: 200.0,
            }),
            live_concurrency: 20.0,
            ready: 2,
            current: 2,
        };
        // 20 in flight / (10 x 0.8 per pod) -> 3 pods.
        assert_eq!(a.step(&view(0.0)), Some(3));
        for t in 1..5 {
            assert_eq!(a.step(&view(f64::from(t))), None);
        }
        assert!(a.step(&view(5.0)).is_some());
    }
}
