//! A deterministic fluid queueing model of one service behind N ready pods.
//!
//! The same model drives `loadsim` (in real time, with the ready replicas read
//! from the API server) and `inflight simulate` (offline, with the ready
//! replicas of a simulated fleet), so a claim made offline can be replayed
//! against a real control plane.
//!
//! # The model
//!
//! Requests are a fluid (counts are `f64`); randomness, if any, comes from the
//! caller's arrival counts (see [`crate::sim::profile::arrivals`]). Within one
//! [`Service::step`] arrivals come at the constant rate `a = arrivals / dt`.
//!
//! * Capacity: each ready pod serves up to `per_pod_limit` requests at once, so
//!   `c = ready x per_pod_limit` requests can be in service.
//! * Service: a request in service completes at rate `mu = 1 / S` (mean service
//!   time `S`), so `n` requests in service complete at `mu x n` per second, and
//!   with no queue `dn/dt = a - mu x n`. The throughput of a full fleet is
//!   `mu x c = ready x per_pod_limit / S`.
//! * Queue: arrivals that find every slot taken wait in one FIFO queue
//!   (`dq/dt = a - mu x c` while it is non-empty or growing), bounded by
//!   `max(ready x queue_limit_per_pod, queue_limit_min)`; arrivals beyond the
//!   bound are dropped at once (`dropped_queue_full`). A waiting request whose
//!   wait reaches `client_timeout_secs` is dropped (`dropped_timeout`).
//! * Scale-down: requests already in service when the capacity falls below them
//!   finish (a terminating pod drains); nothing new is admitted until `n < c`.
//!   A queue above a shrunken bound loses its newest requests (`dropped_queue_full`).
//! * Knee (optional, off by default): the service time grows once the
//!   per-pod concurrency `n / ready` passes `knee.concurrency`:
//!   `S_eff = S x (1 + slope x max(0, n/ready - knee) / knee)`. It is computed
//!   from the concurrency at the start of each step and held for the step.
//!   With `slope = 1` a pod's throughput stops growing past the knee; with
//!   `slope > 1` it falls (congestion collapse).
//!
//! Within a step the fluid equations are solved exactly, piecewise (at most
//! three phases: draining an over-capacity fleet, a full fleet with a queue,
//! a fleet with free slots), so Little's law holds in steady state whatever
//! the step size, and a queue builds exactly when `a > mu x c`.
//!
//! Latency of a request = its wait in the queue + `S_eff`. It is recorded in
//! the step in which the request is admitted to service ([`StepStats::latencies`]);
//! dropped requests record no latency. Timeouts are checked at the start of
//! each step, so a wait may pass the timeout by up to one step.
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// Default mean service time of one request: 100 ms.
pub const DEFAULT_SERVICE_TIME_SECS: f64 = 0.1;
/// Default concurrent requests one pod serves: 10.
pub const DEFAULT_PER_POD_LIMIT: u32 = 10;
/// Default backlog per ready pod, as a multiple of `per_pod_limit` (like a
/// proxy's accept backlog).
pub const DEFAULT_QUEUE_FACTOR: u32 = 10;
/// Default client timeout: a request waiting this long is dropped.
pub const DEFAULT_CLIENT_TIMEOUT_SECS: f64 = 10.0;

/// Below this a count is zero (fluid round-off).
const EPSILON: f64 = 1e-9;
/// Upper bound on phases per step; three suffice (see the module docs), the
/// rest is a guard against round-off.
const MAX_PHASES: usize = 8;

/// Parameters of the service. Serialized in camelCase; every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ServiceConfig {
    /// Mean time to serve one request below the knee, in seconds (default 0.1).
    pub service_time_secs: f64,
    /// Requests one ready pod serves at once (default 10).
    pub per_pod_limit: u32,
    /// Waiting requests allowed per ready pod; `None`: 10 x `per_pod_limit`.
    pub queue_limit_per_pod: Option<u32>,
    /// The queue bound never falls below this, even with zero ready pods, so
    /// scale-from-zero can see demand (like an activator's buffer);
    /// `None`: one pod's backlog (the resolved `queue_limit_per_pod`).
    pub queue_limit_min: Option<u32>,
    /// A waiting request is dropped once it has waited this long, in seconds
    /// (default 10).
    pub client_timeout_secs: f64,
    /// Latency knee; `None` (default): the service time does not depend on load.
    pub knee: Option<Knee>,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        Self {
            service_time_secs: DEFAULT_SERVICE_TIME_SECS,
            per_pod_limit: DEFAULT_PER_POD_LIMIT,
            queue_limit_per_pod: None,
            queue_limit_min: None,
            client_timeout_secs: DEFAULT_CLIENT_TIMEOUT_SECS,
            knee: None,
        }
    }
}

/// Service time grows with per-pod concurrency past `concurrency`:
/// `S_eff = S x (1 + slope x max(0, per_pod - concurrency) / concurrency)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Knee {
    /// Concurrent requests per pod up to which the service time stays `S`.
    pub concurrency: f64,
    /// Relative growth of the service time per `concurrency` requests beyond
    /// the knee (1.0: doubles at twice the knee concurrency).
    pub slope: f64,
}

/// A configuration value out of its domain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("service config: {field} must be {expected}, got {value}")]
pub struct ServiceError {
    pub field: &'static str,
    pub expected: &'static str,
    pub value: f64,
}

impl ServiceConfig {
    /// Checks every field's domain.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let positive = "finite and > 0";
        check("serviceTimeSecs", positive, self.service_time_secs, |v| {
            v.is_finite() && v > 0.0
        })?;
        check("perPodLimit", ">= 1", f64::from(self.per_pod_limit), |v| {
            v >= 1.0
        })?;
        check(
            "clientTimeoutSecs",
            positive,
            self.client_timeout_secs,
            |v| v.is_finite() && v > 0.0,
        )?;
        if let Some(knee) = self.knee {
            check("knee.concurrency", positive, knee.concurrency, |v| {
                v.is_finite() && v > 0.0
            })?;
            check("knee.slope", "finite and >= 0", knee.slope, |v| {
                v.is_finite() && v >= 0.0
            })?;
        }
        Ok(())
    }

    /// Waiting requests allowed per ready pod (the default resolved).
    pub fn queue_limit_per_pod(&self) -> u32 {
        self.queue_limit_per_pod
            .unwrap_or_else(|| self.per_pod_limit.saturating_mul(DEFAULT_QUEUE_FACTOR))
    }

    /// The queue bound with `ready_pods` ready:
    /// `max(ready x queue_limit_per_pod, queue_limit_min)`.
    pub fn queue_limit(&self, ready_pods: u32) -> f64 {
        let per_pod = f64::from(self.queue_limit_per_pod());
        let floor = f64::from(self.queue_limit_min.unwrap_or(self.queue_limit_per_pod()));
        (f64::from(ready_pods) * per_pod).max(floor)
    }

    /// Mean service time when each pod has `concurrency_per_pod` requests in
    /// service (the knee applied).
    pub fn service_time_at(&self, concurrency_per_pod: f64) -> f64 {
        match self.knee {
            Some(knee) if concurrency_per_pod > knee.concurrency => {
                let excess = (concurrency_per_pod - knee.concurrency) / knee.concurrency;
                self.service_time_secs * (1.0 + knee.slope * excess)
            }
            _ => self.service_time_secs,
        }
    }

    /// Requests per second that `ready_pods` serve when full:
    /// `ready x per_pod_limit / S_eff(per_pod_limit)`.
    pub fn capacity_rps(&self, ready_pods: u32) -> f64 {
        let limit = f64::from(self.per_pod_limit);
        f64::from(ready_pods) * limit / self.service_time_at(limit)
    }
}

fn check(
    field: &'static str,
    expected: &'static str,
    value: f64,
    ok: impl Fn(f64) -> bool,
) -> Result<(), ServiceError> {
    if ok(value) {
        Ok(())
    } else {
        Err(ServiceError {
            field,
            expected,
            value,
        })
    }
}

/// `count` requests that each took `latency_secs` (wait + service time).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencySample {
    pub latency_secs: f64,
    pub count: f64,
}

/// What happened during one step. Counts are fluid (`f64`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepStats {
    /// Length of the step, in seconds.
    pub dt_secs: f64,
    /// Requests that arrived during the step (as passed in, sanitized).
    pub arrivals: f64,
    /// Requests in service, averaged over the step (time-average, so that
    /// `in_flight = served / dt x service_time` holds in steady state).
    pub in_flight: f64,
    /// Requests waiting in the queue, averaged over the step.
    pub queue_depth: f64,
    /// Requests in service at the end of the step.
    pub in_flight_end: f64,
    /// Requests waiting at the end of the step.
    pub queue_depth_end: f64,
    /// Requests that started service during the step.
    pub admitted: f64,
    /// Requests that completed during the step.
    pub served: f64,
    /// Arrivals rejected because the queue was at its bound, plus queued
    /// requests cut when the bound shrank.
    pub dropped_queue_full: f64,
    /// Queued requests that gave up after the client timeout.
    pub dropped_timeout: f64,
    /// Mean service time in force during the step (the knee applied).
    pub service_time_secs: f64,
    /// Latencies of the requests admitted during the step (their counts add
    /// up to `admitted`).
    pub latencies: Vec<LatencySample>,
}

impl StepStats {
    /// All drops: `dropped_queue_full + dropped_timeout`.
    pub fn dropped(&self) -> f64 {
        self.dropped_queue_full + self.dropped_timeout
    }

    /// Completions per second over the step.
    pub fn throughput_rps(&self) -> f64 {
        if self.dt_secs > 0.0 {
            self.served / self.dt_secs
        } else {
            0.0
        }
    }

    /// Mean latency of the requests admitted during the step; `None` if none was.
    pub fn mean_latency_secs(&self) -> Option<f64> {
        let (sum, count) = self.latencies.iter().fold((0.0, 0.0), |(s, c), l| {
            (s + l.latency_secs * l.count, c + l.count)
        });
        (count > EPSILON).then(|| sum / count)
    }

    fn record(&mut self, latency_secs: f64, count: f64) {
        if count > EPSILON {
            self.admitted += count;
            self.latencies.push(LatencySample {
                latency_secs,
                count,
            });
        }
    }
}

/// The `q`-quantile (0..=1) of latency over weighted samples, e.g. p99 with
/// `q = 0.99`: the smallest latency whose cumulative count reaches `q` of the
/// total. `None` when the samples hold no requests.
pub fn weighted_quantile<'a>(
    samples: impl IntoIterator<Item = &'a LatencySample>,
    q: f64,
) -> Option<f64> {
    let mut sorted: Vec<LatencySample> = samples
        .into_iter()
        .filter(|s| s.count > 0.0 && s.latency_secs.is_finite())
        .copied()
        .collect();
    sorted.sort_by(|a, b| a.latency_secs.total_cmp(&b.latency_secs));
    let total: f64 = sorted.iter().map(|s| s.count).sum();
    if total <= EPSILON {
        return None;
    }
    let target = q.clamp(0.0, 1.0) * total;
    let mut cumulative = 0.0;
    for sample in &sorted {
        cumulative += sample.count;
        if cumulative >= target - EPSILON * total {
            return Some(sample.latency_secs);
        }
    }
    sorted.last().map(|s| s.latency_secs)
}

/// Requests that arrived together (within one phase of one step).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Cohort {
    count: f64,
    arrived_at: f64,
}

/// The service's state: requests in service and the FIFO queue, on the
/// model's own clock (the sum of the steps' `dt`).
#[derive(Debug, Clone)]
pub struct Service {
    config: ServiceConfig,
    now_secs: f64,
    in_service: f64,
    queue: VecDeque<Cohort>,
    queued: f64,
}

/// The constants of one step.
struct StepContext {
    /// Arrival rate during the step.
    rate: f64,
    /// Requests that can be in service.
    capacity: f64,
    /// Completion rate per request in service (1 / S_eff).
    mu: f64,
    service_time: f64,
    queue_limit: f64,
}

impl Service {
    /// An idle service (nothing in service, nothing queued) at time 0.
    pub fn new(config: ServiceConfig) -> Result<Self, ServiceError> {
        config.validate()?;
        Ok(Self {
            config,
            now_secs: 0.0,
            in_service: 0.0,
            queue: VecDeque::new(),
            queued: 0.0,
        })
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    /// Replaces the parameters from the next step on (e.g. a new per-pod
    /// limit); the requests in service and queued stay.
    pub fn set_config(&mut self, config: ServiceConfig) -> Result<(), ServiceError> {
        config.validate()?;
        self.config = config;
        Ok(())
    }

    /// Seconds simulated so far (the sum of the steps' `dt`).
    pub fn elapsed_secs(&self) -> f64 {
        self.now_secs
    }

    /// Requests in service now.
    pub fn in_flight(&self) -> f64 {
        self.in_service
    }

    /// Requests waiting now.
    pub fn queue_depth(&self) -> f64 {
        self.queued
    }

    /// Advances the model by `dt_secs` during which `arrivals` requests arrive
    /// (evenly) and `ready_pods` pods are ready. Negative or non-finite
    /// arrivals count as 0; a non-positive or non-finite `dt_secs` changes
    /// nothing and returns stats of an empty step.
    pub fn step(&mut self, arrivals: f64, ready_pods: u32, dt_secs: f64) -> StepStats {
        let mut stats = StepStats {
            service_time_secs: self.config.service_time_secs,
            ..StepStats::default()
        };
        if !(dt_secs.is_finite() && dt_secs > 0.0) {
            stats.in_flight = self.in_service;
            stats.queue_depth = self.queued;
            stats.in_flight_end = self.in_service;
            stats.queue_depth_end = self.queued;
            return stats;
        }
        let arrivals = if arrivals.is_finite() && arrivals > 0.0 {
            arrivals
        } else {
            0.0
        };
        let per_pod = if ready_pods > 0 {
            self.in_service / f64::from(ready_pods)
        } else {
            0.0
        };
        let service_time = self.config.service_time_at(per_pod);
        let ctx = StepContext {
            rate: arrivals / dt_secs,
            capacity: f64::from(ready_pods) * f64::from(self.config.per_pod_limit),
            mu: 1.0 / service_time,
            service_time,
            queue_limit: self.config.queue_limit(ready_pods),
        };
        stats.dt_secs = dt_secs;
        stats.arrivals = arrivals;
        stats.service_time_secs = service_time;

        let start = self.now_secs;
        self.drop_timed_out(start, &mut stats);
        self.trim_queue(ctx.queue_limit, &mut stats);

        let mut integral_in_service = 0.0;
        let mut integral_queued = 0.0;
        let mut t = start;
        let mut remaining = dt_secs;
        for _ in 0..MAX_PHASES {
            if remaining <= 0.0 {
                break;
            }
            // Freed capacity (new pods ready) takes waiting requests at once.
            if self.in_service < ctx.capacity - EPSILON && self.queued > EPSILON {
                let take = self.queued.min(ctx.capacity - self.in_service);
                self.dequeue(take, t, None, service_time, &mut stats);
                self.in_service += take;
            }
            let phase = if self.in_service > ctx.capacity + EPSILON {
                self.phase_over_capacity(&ctx, t, remaining, &mut stats)
            } else if self.queued > EPSILON
                || (self.in_service >= ctx.capacity - EPSILON && ctx.rate > ctx.mu * ctx.capacity)
            {
                self.phase_full(&ctx, t, remaining, &mut stats)
            } else {
                self.phase_free(&ctx, remaining, &mut stats)
            };
            integral_in_service += phase.integral_in_service;
            integral_queued += phase.integral_queued;
            t += phase.len;
            remaining -= phase.len;
        }
        if remaining > 0.0 {
            // Round-off left a sliver: account for it with the state frozen.
            integral_in_service += self.in_service * remaining;
            integral_queued += self.queued * remaining;
        }
        self.now_secs = start + dt_secs;
        stats.in_flight = integral_in_service / dt_secs;
        stats.queue_depth = integral_queued / dt_secs;
        stats.in_flight_end = self.in_service;
        stats.queue_depth_end = self.queued;
        stats
    }

    /// More in service than capacity: no admissions; `n` decays at `mu x n`
    /// until it reaches capacity; arrivals queue.
    fn phase_over_capacity(
        &mut self,
        ctx: &StepContext,
        t: f64,
        remaining: f64,
        stats: &mut StepStats,
    ) -> Phase {
        let n0 = self.in_service;
        let to_capacity = if ctx.capacity > 0.0 {
            (n0 / ctx.capacity).ln() / ctx.mu
        } else {
            f64::INFINITY
        };
        let (len, n_end) = if to_capacity < remaining {
            (to_capacity, ctx.capacity)
        } else {
            (remaining, n0 * (-ctx.mu * remaining).exp())
        };
        self.in_service = n_end;
        stats.served += n0 - n_end;
        let integral_queued = self.enqueue_growing(ctx, t, len, 0.0, stats);
        Phase {
            len,
            integral_in_service: (n0 - n_end) / ctx.mu,
            integral_queued,
        }
    }

    /// Every slot taken and a queue (or arrivals faster than service): the
    /// fleet completes `mu x c` per second, all of it taken from the queue's head.
    fn phase_full(
        &mut self,
        ctx: &StepContext,
        t: f64,
        remaining: f64,
        stats: &mut StepStats,
    ) -> Phase {
        self.in_service = ctx.capacity;
        let out_rate = ctx.mu * ctx.capacity;
        let (len, integral_queued) = if ctx.rate >= out_rate {
            let integral = self.enqueue_growing(ctx, t, remaining, out_rate, stats);
            (remaining, integral)
        } else {
            let q0 = self.queued;
            let to_empty = q0 / (out_rate - ctx.rate);
            let len = to_empty.min(remaining);
            let q_end = if to_empty < remaining {
                0.0
            } else {
                q0 - (out_rate - ctx.rate) * len
            };
            self.push(ctx.rate * len, t + len / 2.0);
            (len, (q0 + q_end) / 2.0 * len)
        };
        let out = out_rate * len;
        self.dequeue(out, t, Some(out_rate), ctx.service_time, stats);
        stats.served += out;
        Phase {
            len,
            integral_in_service: ctx.capacity * len,
            integral_queued,
        }
    }

    /// Free slots and no queue: arrivals go straight into service;
    /// `n(t) = a/mu + (n0 - a/mu) e^(-mu t)` until it reaches capacity.
    fn phase_free(&mut self, ctx: &StepContext, remaining: f64, stats: &mut StepStats) -> Phase {
        let n0 = self.in_service;
        let n_inf = ctx.rate / ctx.mu;
        let to_capacity = if n_inf > ctx.capacity && n0 < ctx.capacity {
            ((n_inf - n0) / (n_inf - ctx.capacity)).ln() / ctx.mu
        } else {
            f64::INFINITY
        };
        let (len, n_end) = if to_capacity < remaining {
            (to_capacity, ctx.capacity)
        } else {
            (
                remaining,
                n_inf + (n0 - n_inf) * (-ctx.mu * remaining).exp(),
            )
        };
        let admitted = ctx.rate * len;
        stats.record(ctx.service_time, admitted);
        stats.served += (n0 + admitted - n_end).max(0.0);
        self.in_service = n_end;
        self.queue.clear();
        self.queued = 0.0;
        let integral_in_service =
            n_inf * len + (n0 - n_inf) * (1.0 - (-ctx.mu * len).exp()) / ctx.mu;
        Phase {
            len,
            integral_in_service,
            integral_queued: 0.0,
        }
    }

    /// Arrivals over `[t, t + len]` join the queue, which loses `out_rate` per
    /// second from its head and may not exceed the bound; returns the integral
    /// of the queue length over the phase.
    fn enqueue_growing(
        &mut self,
        ctx: &StepContext,
        t: f64,
        len: f64,
        out_rate: f64,
        stats: &mut StepStats,
    ) -> f64 {
        let q0 = self.queued;
        let growth = ctx.rate - out_rate;
        let bound = ctx.queue_limit.max(q0);
        let unbounded_end = q0 + growth * len;
        let (q_end, integral) = if unbounded_end <= bound || growth <= 0.0 {
            (unbounded_end, (q0 + unbounded_end) / 2.0 * len)
        } else {
            let to_bound = (bound - q0) / growth;
            (
                bound,
                (q0 + bound) / 2.0 * to_bound + bound * (len - to_bound),
            )
        };
        let offered = ctx.rate * len;
        let accepted = if q_end < bound {
            offered
        } else {
            (q_end - q0 + out_rate * len).clamp(0.0, offered)
        };
        stats.dropped_queue_full += offered - accepted;
        // Accepted arrivals are the earliest ones when the bound was hit.
        let accepted_span = if ctx.rate > 0.0 {
            accepted / ctx.rate
        } else {
            0.0
        };
        self.push(accepted, t + accepted_span / 2.0);
        integral
    }

    fn push(&mut self, count: f64, arrived_at: f64) {
        if count > EPSILON {
            self.queue.push_back(Cohort { count, arrived_at });
            self.queued += count;
        }
    }

    /// Admits `amount` requests from the queue's head starting at `t`, at
    /// `out_rate` per second (`None`: all at once), recording their latencies.
    fn dequeue(
        &mut self,
        amount: f64,
        t: f64,
        out_rate: Option<f64>,
        service_time: f64,
        stats: &mut StepStats,
    ) {
        let timeout = self.config.client_timeout_secs;
        let mut cursor = t;
        let mut left = amount;
        while left > EPSILON {
            let Some(front) = self.queue.front_mut() else {
                break;
            };
            let take = front.count.min(left);
            let span = out_rate.map_or(0.0, |rate| take / rate);
            let wait = (cursor + span / 2.0 - front.arrived_at).clamp(0.0, timeout);
            stats.record(wait + service_time, take);
            cursor += span;
            left -= take;
            front.count -= take;
            self.queued -= take;
            if front.count <= EPSILON {
                self.queue.pop_front();
            }
        }
        if self.queue.is_empty() || self.queued < EPSILON {
            self.queue.clear();
            self.queued = 0.0;
        }
    }

    /// Drops the waiting requests that have waited `client_timeout_secs` by `now`.
    fn drop_timed_out(&mut self, now: f64, stats: &mut StepStats) {
        let timeout = self.config.client_timeout_secs;
        while let Some(front) = self.queue.front() {
            if now - front.arrived_at < timeout {
                break;
            }
            stats.dropped_timeout += front.count;
            self.queued -= front.count;
            self.queue.pop_front();
        }
        if self.queue.is_empty() {
            self.queued = 0.0;
        }
    }

    /// Cuts the newest waiting requests above `limit`.
    fn trim_queue(&mut self, limit: f64, stats: &mut StepStats) {
        while self.queued > limit + EPSILON {
            let Some(back) = self.queue.back_mut() else {
                self.queued = 0.0;
                break;
            };
            let cut = back.count.min(self.queued - limit);
            stats.dropped_queue_full += cut;
            back.count -= cut;
            self.queued -= cut;
            if back.count <= EPSILON {
                self.queue.pop_back();
            }
        }
    }
}

/// The length of one phase of a step and the integrals it contributed.
struct Phase {
    len: f64,
    integral_in_service: f64,
    integral_queued: f64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::profile::{arrivals, seeded_rng};
    use proptest::prelude::*;

    fn service(config: ServiceConfig) -> Service {
        Service::new(config).unwrap()
    }

    /// Runs `secs` at a constant `rate` with `ready` pods; returns the last step.
    fn run(s: &mut Service, rate: f64, ready: u32, dt: f64, secs: f64) -> StepStats {
        let steps = (secs / dt).round() as usize;
        let mut last = StepStats::default();
        for _ in 0..steps {
            last = s.step(rate * dt, ready, dt);
        }
        last
    }

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1e-9)
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = ServiceConfig::default();
        assert_eq!(c.service_time_secs, 0.1);
        assert_eq!(c.per_pod_limit, 10);
        assert_eq!(c.queue_limit_per_pod(), 100);
        assert_eq!(c.queue_limit(3), 300.0);
        assert_eq!(c.queue_limit(0), 100.0);
        assert_eq!(c.client_timeout_secs, 10.0);
        assert_eq!(c.knee, None);
        assert_eq!(c.capacity_rps(4), 400.0);
        let parsed: ServiceConfig = serde_json::from_str(r#"{"perPodLimit":20}"#).unwrap();
        assert_eq!(parsed.queue_limit_per_pod(), 200);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for bad in [
            ServiceConfig {
                service_time_secs: 0.0,
                ..Default::default()
            },
            ServiceConfig {
                service_time_secs: f64::NAN,
                ..Default::default()
            },
            ServiceConfig {
                per_pod_limit: 0,
                ..Default::default()
            },
            ServiceConfig {
                client_timeout_secs: -1.0,
                ..Default::default()
            },
            ServiceConfig {
                knee: Some(Knee {
                    concurrency: 0.0,
                    slope: 1.0,
                }),
                ..Default::default()
            },
            ServiceConfig {
                knee: Some(Knee {
                    concurrency: 5.0,
                    slope: f64::INFINITY,
                }),
                ..Default::default()
            },
        ] {
            assert!(Service::new(bad.clone()).is_err(), "{bad:?}");
            assert!(service(ServiceConfig::default()).set_config(bad).is_err());
        }
    }

    #[test]
    fn littles_law_holds_in_steady_state_for_any_step_size() {
        for dt in [0.01, 0.1, 1.0, 5.0] {
            let mut s = service(ServiceConfig::default());
            let last = run(&mut s, 300.0, 5, dt, 60.0);
            let latency = last.mean_latency_secs().unwrap();
            assert!(close(latency, 0.1, 1e-9), "dt {dt}: latency {latency}");
            assert!(
                close(last.throughput_rps(), 300.0, 1e-6),
                "dt {dt}: {last:?}"
            );
            assert!(
                close(last.in_flight, last.throughput_rps() * latency, 1e-6),
                "dt {dt}: {last:?}"
            );
            assert!(close(last.in_flight, 30.0, 1e-6));
            assert_eq!(last.queue_depth, 0.0);
            assert_eq!(last.dropped(), 0.0);
        }
    }

    #[test]
    fn littles_law_holds_on_average_under_poisson_arrivals() {
        let mut s = service(ServiceConfig::default());
        let mut rng = seeded_rng(11);
        let (dt, rate, ready) = (0.1, 450.0, 5);
        run(&mut s, rate, ready, dt, 10.0);
        let (mut in_flight, mut queued, mut served, mut latency_sum, mut admitted) =
            (0.0, 0.0, 0.0, 0.0, 0.0);
        let steps = 6000;
        for _ in 0..steps {
            let st = s.step(arrivals(rate, dt, &mut rng), ready, dt);
            in_flight += st.in_flight;
            queued += st.queue_depth;
            served += st.served;
            for l in &st.latencies {
                latency_sum += l.latency_secs * l.count;
            }
            admitted += st.admitted;
        }
        let (in_flight, queued) = (in_flight / steps as f64, queued / steps as f64);
        let throughput = served / (steps as f64 * dt);
        let latency = latency_sum / admitted;
        // 90% utilization with bursts: some queueing, still Little's law.
        assert!(queued > 0.1, "expected some queueing, got {queued}");
        let concurrency = in_flight + queued;
        assert!(
            close(concurrency, throughput * latency, 0.03),
            "L = {concurrency}, lambda W = {}",
            throughput * latency
        );
        assert!(close(throughput, rate, 0.02), "throughput {throughput}");
    }

    #[test]
    fn a_queue_builds_exactly_above_capacity() {
        // 2 pods x 10 / 0.1 s = 200 rps.
        let mut below = service(ServiceConfig::default());
        let last = run(&mut below, 199.0, 2, 0.1, 30.0);
        assert_eq!(last.queue_depth_end, 0.0);
        assert!(last.in_flight_end < 20.0 && close(last.in_flight_end, 19.9, 1e-6));

        let mut at = service(ServiceConfig::default());
        let last = run(&mut at, 200.0, 2, 0.1, 30.0);
        assert!(last.queue_depth_end < 1e-6, "{last:?}");

        let mut above = service(ServiceConfig::default());
        run(&mut above, 210.0, 2, 0.1, 5.0);
        let q0 = above.queue_depth();
        assert!(q0 > 0.0);
        let last = run(&mut above, 210.0, 2, 0.1, 5.0);
        // Grows at arrivals - capacity = 10 per second.
        assert!(
            close(above.queue_depth() - q0, 50.0, 1e-6),
            "{}",
            above.queue_depth() - q0
        );
        assert!(close(last.throughput_rps(), 200.0, 1e-9));
        assert_eq!(last.in_flight_end, 20.0);
        assert_eq!(last.dropped(), 0.0);
    }

    #[test]
    fn arrivals_beyond_the_queue_bound_are_dropped() {
        // 1 pod: capacity 100 rps, queue bound 100; a wait of 1 s < timeout.
        let mut s = service(ServiceConfig::default());
        let last = run(&mut s, 1000.0, 1, 0.1, 3.0);
        assert!(close(last.queue_depth_end, 100.0, 1e-9), "{last:?}");
        assert!(close(last.dropped_queue_full, 90.0, 1e-6), "{last:?}");
        assert_eq!(last.dropped_timeout, 0.0);
        assert!(close(last.served, 10.0, 1e-6));
        // Those admitted waited for the 100 ahead of them: ~1 s.
        let latency = last.mean_latency_secs().unwrap();
        assert!((latency - 1.1).abs() < 0.06, "latency {latency}");
    }

    #[test]
    fn requests_waiting_past_the_client_timeout_are_dropped() {
        let config = ServiceConfig {
            queue_limit_per_pod: Some(1_000_000),
            client_timeout_secs: 2.0,
            ..Default::default()
        };
        let mut s = service(config);
        // 150 rps into 100 rps: waits grow by 0.5 s per second, reach 2 s at ~4 s.
        let mut dropped_by = None;
        let mut max_latency: f64 = 0.0;
        for i in 0..300 {
            let st = s.step(15.0, 1, 0.1);
            if st.dropped_timeout > 0.0 && dropped_by.is_none() {
                dropped_by = Some(i as f64 * 0.1);
            }
            for l in &st.latencies {
                max_latency = max_latency.max(l.latency_secs);
            }
            assert_eq!(st.dropped_queue_full, 0.0);
        }
        let first = dropped_by.expect("timeouts");
        assert!((5.5..=6.5).contains(&first), "first timeout at {first}");
        assert!(max_latency <= 2.0 + 0.1 + 1e-9, "max latency {max_latency}");
        // Steady state: served 100 rps, the other 50 rps time out.
        let last = run(&mut s, 150.0, 1, 0.1, 10.0);
        assert!(close(last.served, 10.0, 1e-6));
        assert!((last.dropped_timeout - 5.0).abs() < 1.0, "{last:?}");
        // The queue holds about the last timeout's arrivals (checked per step).
        let q = s.queue_depth();
        assert!((150.0 * 1.8..=150.0 * 2.1 + 1e-6).contains(&q), "queue {q}");
    }

    #[test]
    fn zero_ready_pods_queue_demand_until_timeout_or_bound() {
        // A backlog floor of 1000 lets 10 s x 50 rps of demand show.
        let config = ServiceConfig {
            queue_limit_min: Some(1000),
            ..Default::default()
        };
        let mut s = service(config);
        let last = run(&mut s, 50.0, 0, 0.1, 9.0);
        assert!(close(s.queue_depth(), 450.0, 1e-6), "{}", s.queue_depth());
        assert_eq!(last.in_flight, 0.0);
        assert_eq!(last.served, 0.0);
        assert_eq!(last.admitted, 0.0);
        let last = run(&mut s, 50.0, 0, 0.1, 20.0);
        assert!(close(last.dropped_timeout, 5.0, 1e-6), "{last:?}");
        assert!(
            (s.queue_depth() - 500.0).abs() <= 5.0 + 1e-6,
            "{}",
            s.queue_depth()
        );

        // Default floor: one pod's backlog (100), then drops.
        let mut s = service(ServiceConfig::default());
        let last = run(&mut s, 50.0, 0, 0.1, 5.0);
        assert!(close(s.queue_depth(), 100.0, 1e-9));
        assert!(close(last.dropped_queue_full, 5.0, 1e-6));

        // A pod turning ready takes the waiting requests at once, with their waits.
        // 10 at once, 10 more as those complete within the step.
        let st = s.step(0.0, 1, 0.1);
        assert!(close(st.admitted, 20.0, 1e-9), "{st:?}");
        assert!(close(s.in_flight(), 10.0, 1e-9));
        assert!(close(s.queue_depth(), 80.0, 1e-9));
        // The oldest arrived in the first step and waited ~5 s.
        let oldest = st
            .latencies
            .iter()
            .map(|l| l.latency_secs)
            .fold(0.0, f64::max);
        assert!(oldest > 4.9 && oldest <= 5.2, "oldest {oldest}");
    }

    #[test]
    fn underload_after_overload_drains_the_queue_at_the_spare_rate() {
        let mut s = service(ServiceConfig::default());
        run(&mut s, 200.0, 1, 0.1, 1.0);
        let built = s.queue_depth();
        assert!(built > 80.0 && built < 100.0, "{built}");
        // 50 rps into 100 rps: the queue falls by 50 per second.
        let q0 = s.queue_depth();
        run(&mut s, 50.0, 1, 0.1, 1.0);
        assert!(
            close(q0 - s.queue_depth(), 50.0, 1e-6),
            "{}",
            q0 - s.queue_depth()
        );
        let expected_empty = s.queue_depth() / 50.0;
        let mut t = 0.0;
        while s.queue_depth() > 0.0 {
            let st = s.step(5.0, 1, 0.1);
            assert!(close(st.served, 10.0, 1e-6) || s.queue_depth() == 0.0);
            t += 0.1;
            assert!(t < 10.0, "never drained");
        }
        assert!(
            (t - expected_empty).abs() < 0.1 + 1e-9,
            "drained in {t}, expected {expected_empty}"
        );
        let last = run(&mut s, 50.0, 1, 0.1, 5.0);
        assert!(close(last.in_flight, 5.0, 1e-3), "{last:?}");
    }

    #[test]
    fn a_scale_down_lets_requests_in_service_finish() {
        let mut s = service(ServiceConfig::default());
        run(&mut s, 1000.0, 4, 0.1, 2.0);
        assert!(close(s.in_flight(), 40.0, 1e-9));
        assert!(s.queue_depth() > 300.0);
        let st = s.step(0.0, 1, 0.1);
        // 40 in service on 1 pod: drained, not dropped; queue cut to 100.
        assert!(close(
            st.dropped_queue_full,
            s.queue_depth() + st.dropped_queue_full - 100.0,
            1e-6
        ));
        assert!(close(s.queue_depth(), 100.0, 1e-9), "{}", s.queue_depth());
        assert_eq!(st.admitted, 0.0);
        assert!(
            close(s.in_flight(), 40.0 * (-1.0f64).exp(), 1e-9),
            "{}",
            s.in_flight()
        );
        let st = s.step(0.0, 1, 1.0);
        assert!(close(st.in_flight_end, 10.0, 1e-9), "{st:?}");
    }

    #[test]
    fn past_the_knee_service_time_and_latency_grow() {
        let config = ServiceConfig {
            per_pod_limit: 40,
            knee: Some(Knee {
                concurrency: 10.0,
                slope: 1.0,
            }),
            ..Default::default()
        };
        assert_eq!(config.service_time_at(10.0), 0.1);
        assert!(close(config.service_time_at(20.0), 0.2, 1e-12));
        assert!(close(config.capacity_rps(1), 100.0, 1e-12));
        // Below the knee: unaffected.
        let mut s = service(config.clone());
        let last = run(&mut s, 50.0, 1, 0.1, 10.0);
        assert!(close(last.mean_latency_secs().unwrap(), 0.1, 1e-9));
        // slope 0.5: S(n) = 0.1 x (0.5 + 0.05 n) past the knee. 140 rps
        // settles where n = 140 x S(n): n = 23.33, S = 1/6 s.
        let config = ServiceConfig {
            knee: Some(Knee {
                concurrency: 10.0,
                slope: 0.5,
            }),
            ..config
        };
        assert!(close(config.capacity_rps(1), 160.0, 1e-12));
        let mut s = service(config);
        let last = run(&mut s, 140.0, 1, 0.1, 60.0);
        let latency = last.mean_latency_secs().unwrap();
        assert!(close(latency, 1.0 / 6.0, 0.01), "latency {latency}");
        assert!(close(last.in_flight, 70.0 / 3.0, 0.01), "{last:?}");
        assert!(close(last.throughput_rps(), 140.0, 0.01));
        assert_eq!(last.queue_depth, 0.0);
    }

    #[test]
    fn bad_step_inputs_change_nothing() {
        let mut s = service(ServiceConfig::default());
        run(&mut s, 50.0, 1, 0.1, 1.0);
        let (n, q, t) = (s.in_flight(), s.queue_depth(), s.elapsed_secs());
        for dt in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let st = s.step(10.0, 1, dt);
            assert_eq!(st.served, 0.0);
            assert_eq!(
                (s.in_flight(), s.queue_depth(), s.elapsed_secs()),
                (n, q, t)
            );
        }
        for bad in [f64::NAN, -5.0, f64::NEG_INFINITY, f64::INFINITY] {
            let st = s.step(bad, 1, 0.1);
            assert_eq!(st.arrivals, 0.0);
            assert_eq!(st.admitted, 0.0);
        }
    }

    #[test]
    fn weighted_quantiles() {
        let samples = [
            LatencySample {
                latency_secs: 0.5,
                count: 1.0,
            },
            LatencySample {
                latency_secs: 0.1,
                count: 98.0,
            },
            LatencySample {
                latency_secs: 2.0,
                count: 1.0,
            },
        ];
        assert_eq!(weighted_quantile(&samples, 0.5), Some(0.1));
        assert_eq!(weighted_quantile(&samples, 0.98), Some(0.1));
        assert_eq!(weighted_quantile(&samples, 0.99), Some(0.5));
        assert_eq!(weighted_quantile(&samples, 1.0), Some(2.0));
        assert_eq!(weighted_quantile(&[], 0.99), None);
    }

    proptest! {
        /// Every request is accounted for: arrivals = served + dropped +
        /// growth of (in service + queued), whatever the inputs.
        #[test]
        fn requests_are_conserved(
            steps in proptest::collection::vec((0.0f64..500.0, 0u32..6, 0.01f64..2.0), 1..80),
            timeout in 0.5f64..20.0,
            knee in proptest::option::of(1.0f64..20.0),
        ) {
            let config = ServiceConfig {
                client_timeout_secs: timeout,
                knee: knee.map(|concurrency| Knee { concurrency, slope: 1.5 }),
                ..Default::default()
            };
            let mut s = Service::new(config).unwrap();
            for (arrivals, ready, dt) in steps {
                let before = s.in_flight() + s.queue_depth();
                let st = s.step(arrivals, ready, dt);
                let after = s.in_flight() + s.queue_depth();
                let balance = arrivals - st.served - st.dropped() - (after - before);
                prop_assert!(balance.abs() < 1e-6 * (1.0 + arrivals + before), "balance {balance}: {st:?}");
                prop_assert!(s.in_flight() >= -1e-9 && s.queue_depth() >= -1e-9);
                prop_assert!(s.queue_depth() <= s.config().queue_limit(ready) + 1e-6);
                prop_assert!(st.in_flight >= -1e-9 && st.queue_depth >= -1e-9);
                let admitted: f64 = st.latencies.iter().map(|l| l.count).sum();
                prop_assert!((admitted - st.admitted).abs() < 1e-9);
            }
        }
    }
}
