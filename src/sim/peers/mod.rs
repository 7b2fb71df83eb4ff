//! Models of the autoscalers inflight is compared against, and the common
//! interface the simulator drives them (and inflight's own engine) through.
//!
//! Each model follows its project's published algorithm and defaults; the
//! module of each says where they come from and how it is configured for the
//! simulated workload (an HTTP service with a per-pod concurrency limit).
pub mod hpa;
pub mod keda;
pub mod kpa;

pub use hpa::{Hpa, HpaBehavior, HpaConfig, MetricTarget, PolicyKind, ScalingPolicy, ScalingRules};
pub use keda::keda;
pub use kpa::{Kpa, KpaConfig};

/// One Prometheus scrape of the service: what a PromQL query returns until the
/// next scrape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scrape {
    /// Simulated time of the scrape, seconds.
    pub timestamp: f64,
    /// Requests being served, summed over the ready pods.
    pub in_flight: f64,
    /// Requests waiting in the pods' backlogs.
    pub queue_depth: f64,
    /// Ready pods at the time of the scrape (the pods that have a series).
    pub ready: u32,
    /// Requests that arrived per second since the previous scrape, dropped
    /// ones included: `rate()` of an arrivals counter at the load balancer
    /// over one scrape interval.
    pub arrival_rate: f64,
}

/// What an autoscaler can see at one simulated second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    /// Simulated time, seconds.
    pub now: f64,
    /// The latest Prometheus scrape; `None` before the first one.
    pub scrape: Option<Scrape>,
    /// Average concurrency (in flight plus queued) over the last second, as
    /// Knative's queue-proxy reports it to its autoscaler every second.
    pub live_concurrency: f64,
    /// Pods that are Ready now.
    pub ready: u32,
    /// Pods requested now (`spec.replicas`, counting those still starting).
    pub current: u32,
}

/// An autoscaler under simulation. The simulator calls `step` once per
/// simulated second; the autoscaler acts on its own period and returns the
/// replicas it sets (`None`: it did not act this second).
pub trait Autoscaler: Send {
    /// A short lowercase name for tables and plots (`hpa`, `keda`, ...).
    fn name(&self) -> &str;
    /// Observe one second and, on the autoscaler's own ticks, decide.
    fn step(&mut self, view: &View) -> Option<u32>;
}

/// A loop that runs every `period_secs` from time 0, for a caller that
/// steps in whole seconds: `due(now)` is true at the first step at or after
/// each tick.
#[derive(Clone, Debug)]
pub(crate) struct Ticker {
    period_secs: f64,
    next: f64,
}

impl Ticker {
    pub(crate) fn new(period_secs: f64) -> Self {
        Ticker {
            period_secs: period_secs.max(f64::MIN_POSITIVE),
            next: 0.0,
        }
    }

    pub(crate) fn due(&mut self, now: f64) -> bool {
        if now + 1e-9 < self.next {
            return false;
        }
        while self.next <= now + 1e-9 {
            self.next += self.period_secs;
        }
        true
    }
}
