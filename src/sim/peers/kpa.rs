//! Knative's Pod Autoscaler (KPA), concurrency metric.
//!
//! Sources: the Knative Serving documentation ("Configuring the autoscaler",
//! `config-autoscaler` defaults) and its code,
//! `pkg/autoscaler/scaling/autoscaler.go` (`Scale`),
//! `pkg/autoscaler/aggregation` (windowed averages of per-second buckets) and
//! `pkg/reconciler/autoscaling/kpa/resources/decider.go`:
//!
//! - queue-proxy reports each pod's average concurrency every second, queued
//!   requests included; the autoscaler averages the buckets over a 60 s
//!   stable window and a 6 s panic window (`panic-window-percentage: 10`),
//!   over fewer buckets while it has less history;
//! - it decides every 2 s (the autoscaler's tick);
//! - target per pod = `containerConcurrency` x
//!   `container-concurrency-target-percentage` (70%);
//! - desired = `ceil(average / target)`, kept within
//!   `[floor(ready / max-scale-down-rate), ceil(ready x max-scale-up-rate)]`
//!   (rates 2 and 1000), with at least one ready pod assumed;
//! - panic begins when the panic-window desired pods / ready pods >=
//!   `panic-threshold-percentage` / 100 (200%); in panic the larger of the
//!   stable and panic answers is taken and it never scales down; panic ends
//!   once below the threshold for a whole stable window;
//! - `min-scale` / `max-scale` bound the result.
//!
//! How it is configured for the simulated workload: `containerConcurrency`
//! set to the per-pod limit, `min-scale: 1`, everything else at its default.
use std::collections::VecDeque;

use super::{Autoscaler, Ticker, View};

/// The KPA's settings (config-autoscaler plus the revision's annotations).
#[derive(Clone, Debug, PartialEq)]
pub struct KpaConfig {
    /// `containerConcurrency`, the per-pod hard limit.
    pub container_concurrency: f64,
    /// `container-concurrency-target-percentage` / 100.
    pub target_utilization: f64,
    pub stable_window_secs: f64,
    pub panic_window_secs: f64,
    /// `panic-threshold-percentage` / 100.
    pub panic_threshold: f64,
    pub max_scale_up_rate: f64,
    pub max_scale_down_rate: f64,
    pub tick_secs: f64,
    pub min_scale: u32,
    pub max_scale: u32,
}

impl KpaConfig {
    /// Knative's defaults for a revision with this `containerConcurrency`.
    pub fn defaults(container_concurrency: f64, min_scale: u32, max_scale: u32) -> Self {
        KpaConfig {
            container_concurrency,
            target_utilization: 0.7,
            stable_window_secs: 60.0,
            panic_window_secs: 6.0,
            panic_threshold: 2.0,
            max_scale_up_rate: 1000.0,
            max_scale_down_rate: 2.0,
            tick_secs: 2.0,
            min_scale,
            max_scale,
        }
    }

    /// Concurrency one pod is targeted at.
    pub fn target_per_pod(&self) -> f64 {
        (self.container_concurrency * self.target_utilization).max(f64::MIN_POSITIVE)
    }
}

/// The KPA's decider for one revision.
#[derive(Clone, Debug)]
pub struct Kpa {
    config: KpaConfig,
    ticker: Ticker,
    /// Per-second concurrency buckets, newest last, at most a stable window.
    buckets: VecDeque<f64>,
    /// Time the panic mode was last (re)confirmed; `None` when not panicking.
    panic_since: Option<f64>,
    max_panic_pods: u32,
}

impl Kpa {
    pub fn new(config: KpaConfig) -> Self {
        let ticker = Ticker::new(config.tick_secs);
        Kpa {
            config,
            ticker,
            buckets: VecDeque::new(),
            panic_since: None,
            max_panic_pods: 0,
        }
    }

    /// Whether the decider is in panic mode.
    pub fn in_panic(&self) -> bool {
        self.panic_since.is_some()
    }

    /// Record one second's average concurrency (in flight plus queued).
    pub fn record(&mut self, concurrency: f64) {
        let cap = self.config.stable_window_secs.round().max(1.0) as usize;
        if self.buckets.len() == cap {
            self.buckets.pop_front();
        }
        self.buckets.push_back(concurrency.max(0.0));
    }

    fn window_average(&self, window_secs: f64) -> Option<f64> {
        let n = (window_secs.round().max(1.0) as usize).min(self.buckets.len());
        if n == 0 {
            return None;
        }
        let sum: f64 = self.buckets.iter().rev().take(n).sum();
        Some(sum / n as f64)
    }

    /// `Scale`: the desired pods at `now` with `ready` ready pods; `None`
    /// before any data.
    pub fn scale(&mut self, ready: u32, now: f64) -> Option<u32> {
        let stable = self.window_average(self.config.stable_window_secs)?;
        let panic = self.window_average(self.config.panic_window_secs)?;
        let c = &self.config;
        let ready_f = f64::from(ready.max(1));
        let max_up = (c.max_scale_up_rate * ready_f).ceil();
        let max_down = (ready_f / c.max_scale_down_rate).floor();
        let target = c.target_per_pod();
        let dspc = (stable / target).ceil();
        let dppc = (panic / target).ceil();
        let desired_stable = dspc.max(max_down).min(max_up) as u32;
        let desired_panic = dppc.max(max_down).min(max_up) as u32;
        let over_threshold = dppc / ready_f >= c.panic_threshold;
        match self.panic_since {
            _ if over_threshold => self.panic_since = Some(now),
            Some(since) if since + c.stable_window_secs < now => {
                self.panic_since = None;
                self.max_panic_pods = 0;
            }
            _ => {}
        }
        let mut desired = desired_stable;
        if self.panic_since.is_some() {
            desired = desired.max(desired_panic);
            if desired > self.max_panic_pods {
                self.max_panic_pods = desired;
            }
            desired = self.max_panic_pods;
        }
        Some(desired.clamp(c.min_scale, c.max_scale.max(c.min_scale)))
    }
}

impl Autoscaler for Kpa {
    fn name(&self) -> &str {
        "kpa"
    }

    fn step(&mut self, view: &View) -> Option<u32> {
        self.record(view.live_concurrency);
        if !self.ticker.due(view.now) {
            return None;
        }
        self.scale(view.ready, view.now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kpa() -> Kpa {
        // Target 10 x 0.7 = 7 per pod.
        Kpa::new(KpaConfig::defaults(10.0, 1, 1000))
    }

    #[test]
    fn stable_mode_sizes_for_the_sixty_second_average() {
        let mut k = kpa();
        for _ in 0..60 {
            k.record(35.0);
        }
        // 35 / 7 = 5 pods; 5 ready: panic desired 5 / 5 = 1 < 2.
        assert_eq!(k.scale(5, 60.0), Some(5));
        assert!(!k.in_panic());
    }

    #[test]
    fn enters_panic_on_a_burst_and_never_scales_down_in_it() {
        let mut k = kpa();
        for _ in 0..54 {
            k.record(14.0);
        }
        assert_eq!(k.scale(2, 54.0), Some(2));
        assert!(!k.in_panic());
        // Six seconds at 70: panic average 70 -> 10 pods, 10 / 2 ready >= 2.
        for _ in 0..6 {
            k.record(70.0);
        }
        // Stable average (54 x 14 + 6 x 70) / 60 = 19.6 -> 3; panic wins: 10.
        assert_eq!(k.scale(2, 60.0), Some(10));
        assert!(k.in_panic());
        // The burst ends: the panic average drops, but no scale-down in panic.
        for _ in 0..6 {
            k.record(7.0);
        }
        assert_eq!(k.scale(10, 66.0), Some(10));
        assert!(k.in_panic());
    }

    #[test]
    fn leaves_panic_after_a_stable_window_below_threshold() {
        let mut k = kpa();
        for _ in 0..6 {
            k.record(70.0);
        }
        assert_eq!(k.scale(1, 6.0), Some(10));
        assert!(k.in_panic());
        // Below threshold from now on (7 per second -> 1 pod of 10 ready).
        let mut t = 6.0;
        while t < 66.0 {
            k.record(7.0);
            k.record(7.0);
            t += 2.0;
            assert_eq!(k.scale(10, t), Some(10), "no scale-down in panic at {t}");
            assert!(k.in_panic(), "still panicking at {t}");
        }
        // At 68 s the last over-threshold decision (6 s) is more than a stable
        // window ago: back to the stable path, whose scale-down is limited to
        // floor(10 / 2) = 5 per decision.
        k.record(7.0);
        k.record(7.0);
        assert_eq!(k.scale(10, 68.0), Some(5));
        assert!(!k.in_panic());
    }

    #[test]
    fn no_decision_without_data() {
        let mut k = kpa();
        assert_eq!(k.scale(3, 0.0), None);
    }
}
