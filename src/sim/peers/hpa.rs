//! The Kubernetes HorizontalPodAutoscaler (autoscaling/v2), as the
//! kube-controller-manager runs it.
//!
//! Sources: the Kubernetes documentation "Horizontal Pod Autoscaling"
//! (algorithm details, default behavior) and the controller's code,
//! `pkg/controller/podautoscaler/{horizontal.go,replica_calculator.go}`:
//!
//! - a sync every 15 s (`--horizontal-pod-autoscaler-sync-period`);
//! - tolerance 0.1 (`--horizontal-pod-autoscaler-tolerance`): no change while
//!   the usage ratio is within 10% of 1;
//! - Pods metrics (`calcPlainMetricReplicas`): the average over the pods that
//!   have a metric, in milli-units; pods not yet Ready (Pending) count at zero
//!   when the ratio asks for a scale-up, pods missing a metric count at zero
//!   on a scale-up and at the target on a scale-down, and the answer is
//!   dropped if that re-count flips the direction;
//! - External metrics with an `AverageValue` target
//!   (`GetExternalPerPodMetricReplicas`, what KEDA feeds): `ceil(value /
//!   target)`, compared with the current replicas for the tolerance;
//! - default behavior: scale-up stabilization 0 s with policies 100% and 4
//!   pods per 15 s (`selectPolicy: Max`), scale-down stabilization 300 s with
//!   100% per 15 s; stabilization keeps the lowest recommendation of the
//!   up-window and the highest of the down-window; rate policies count the
//!   replicas added or removed within each policy's period.
//!
//! How it is configured for the simulated workload: a Pods metric,
//! `in-flight` per pod through prometheus-adapter (an instant query of the
//! latest scrape), with an `AverageValue` target of the per-pod limit times
//! the utilization, the same per-pod target inflight plans for.
use std::collections::VecDeque;

use super::{Autoscaler, Ticker, View};

/// How a scaling policy counts its step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    /// At most `value` pods per period.
    Pods,
    /// At most `value` percent of the replicas at the start of the period.
    Percent,
}

/// One `HPAScalingPolicy`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalingPolicy {
    pub kind: PolicyKind,
    pub value: u32,
    pub period_secs: f64,
}

/// `selectPolicy`: which policy wins when several apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    /// The policy allowing the largest change (the default).
    Max,
    /// The policy allowing the smallest change.
    Min,
    /// No scaling in this direction.
    Disabled,
}

/// `HPAScalingRules` for one direction.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingRules {
    pub stabilization_window_secs: f64,
    pub select: SelectPolicy,
    pub policies: Vec<ScalingPolicy>,
}

/// `spec.behavior`.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaBehavior {
    pub scale_up: ScalingRules,
    pub scale_down: ScalingRules,
}

impl Default for HpaBehavior {
    /// The documented default behavior of autoscaling/v2.
    fn default() -> Self {
        HpaBehavior {
            scale_up: ScalingRules {
                stabilization_window_secs: 0.0,
                select: SelectPolicy::Max,
                policies: vec![
                    ScalingPolicy {
                        kind: PolicyKind::Percent,
                        value: 100,
                        period_secs: 15.0,
                    },
                    ScalingPolicy {
                        kind: PolicyKind::Pods,
                        value: 4,
                        period_secs: 15.0,
                    },
                ],
            },
            scale_down: ScalingRules {
                stabilization_window_secs: 300.0,
                select: SelectPolicy::Max,
                policies: vec![ScalingPolicy {
                    kind: PolicyKind::Percent,
                    value: 100,
                    period_secs: 15.0,
                }],
            },
        }
    }
}

/// The metric the HPA scales on, with its target.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MetricTarget {
    /// A Pods metric, in-flight requests of each pod (prometheus-adapter),
    /// with an `AverageValue` target per pod.
    PodsInFlight { target_per_pod: f64 },
    /// An External metric, `sum(in-flight) + sum(queue)` (KEDA's Prometheus
    /// scaler), with an `AverageValue` target.
    ExternalConcurrency { target_per_pod: f64 },
}

/// An HPA object plus the controller flags that matter here.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaConfig {
    pub min_replicas: u32,
    pub max_replicas: u32,
    pub sync_period_secs: f64,
    pub tolerance: f64,
    pub behavior: HpaBehavior,
    pub metric: MetricTarget,
}

impl HpaConfig {
    /// The HPA as its users would set it up for this workload: a Pods metric
    /// of in-flight requests per pod, target `target_per_pod`, the controller's
    /// default sync period and tolerance, the default behavior.
    pub fn pods_in_flight(target_per_pod: f64, min_replicas: u32, max_replicas: u32) -> Self {
        HpaConfig {
            min_replicas,
            max_replicas,
            sync_period_secs: 15.0,
            tolerance: 0.1,
            behavior: HpaBehavior::default(),
            metric: MetricTarget::PodsInFlight { target_per_pod },
        }
    }
}

/// Milli-units, as `resource.Quantity.MilliValue()` gives the controller.
fn milli(x: f64) -> i64 {
    (x * 1000.0).round() as i64
}

/// Replicas for a Pods metric (`calcPlainMetricReplicas`).
///
/// `ready_with_metric` pods report `per_pod_value` each; `missing` ready pods
/// have no sample yet; `unready` pods are still starting (Pending). Returns
/// `None` when no pod has a metric (the controller reports an error and does
/// not scale).
pub fn pods_metric_replicas(
    current: u32,
    ready_with_metric: u32,
    missing: u32,
    unready: u32,
    per_pod_value: f64,
    target_per_pod: f64,
    tolerance: f64,
) -> Option<u32> {
    if ready_with_metric == 0 {
        return None;
    }
    let target = milli(target_per_pod).max(1);
    let value = milli(per_pod_value);
    let total = value * i64::from(ready_with_metric);
    // GetMetricUsageRatio: integer average, then the ratio.
    let usage_ratio = (total / i64::from(ready_with_metric)) as f64 / target as f64;
    let scale_up_with_unready = unready > 0 && usage_ratio > 1.0;
    if !scale_up_with_unready && missing == 0 {
        if (1.0 - usage_ratio).abs() <= tolerance {
            return Some(current);
        }
        return Some(ceil_u32(usage_ratio * f64::from(ready_with_metric)));
    }
    let mut count = i64::from(ready_with_metric);
    let mut sum = total;
    if missing > 0 {
        count += i64::from(missing);
        if usage_ratio < 1.0 {
            sum += target * i64::from(missing);
        }
    }
    if scale_up_with_unready {
        count += i64::from(unready);
    }
    let new_ratio = (sum / count) as f64 / target as f64;
    if (1.0 - new_ratio).abs() <= tolerance
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        return Some(current);
    }
    let new_replicas = ceil_u32(new_ratio * count as f64);
    if (new_ratio < 1.0 && new_replicas > current) || (new_ratio > 1.0 && new_replicas < current) {
        return Some(current);
    }
    Some(new_replicas)
}

/// Replicas for an External metric with an `AverageValue` target
/// (`GetExternalPerPodMetricReplicas`); `current` is the scale's
/// `status.replicas`, starting pods included.
pub fn external_average_replicas(
    current: u32,
    value: f64,
    target_per_pod: f64,
    tolerance: f64,
) -> u32 {
    let usage = milli(value).max(0);
    let target = milli(target_per_pod).max(1);
    let ratio = usage as f64 / (target as f64 * f64::from(current.max(1)));
    if (1.0 - ratio).abs() > tolerance {
        ceil_u32(usage as f64 / target as f64)
    } else {
        current
    }
}

fn ceil_u32(x: f64) -> u32 {
    if x.is_nan() || x <= 0.0 {
        0
    } else if x >= f64::from(u32::MAX) {
        u32::MAX
    } else {
        x.ceil() as u32
    }
}

#[derive(Clone, Copy, Debug)]
struct ScaleEvent {
    at: f64,
    change: u32,
}

/// The HPA controller's state for one object.
#[derive(Clone, Debug)]
pub struct Hpa {
    name: String,
    config: HpaConfig,
    ticker: Ticker,
    /// Unstabilized recommendations, oldest first.
    recommendations: VecDeque<(f64, u32)>,
    scale_up_events: VecDeque<ScaleEvent>,
    scale_down_events: VecDeque<ScaleEvent>,
    initialized: bool,
}

impl Hpa {
    pub fn new(name: impl Into<String>, config: HpaConfig) -> Self {
        let ticker = Ticker::new(config.sync_period_secs);
        Hpa {
            name: name.into(),
            config,
            ticker,
            recommendations: VecDeque::new(),
            scale_up_events: VecDeque::new(),
            scale_down_events: VecDeque::new(),
            initialized: false,
        }
    }

    pub fn config(&self) -> &HpaConfig {
        &self.config
    }

    /// The replicas the metric asks for, before behavior; `None` when the
    /// metric is unavailable.
    fn metric_replicas(&self, view: &View) -> Option<u32> {
        let scrape = view.scrape?;
        match self.config.metric {
            MetricTarget::PodsInFlight { target_per_pod } => {
                if scrape.ready == 0 {
                    return None;
                }
                let per_pod = scrape.in_flight / f64::from(scrape.ready);
                let with_metric = view.ready.min(scrape.ready);
                let missing = view.ready - with_metric;
                let unready = view.current.saturating_sub(view.ready);
                pods_metric_replicas(
                    view.current,
                    with_metric,
                    missing,
                    unready,
                    per_pod,
                    target_per_pod,
                    self.config.tolerance,
                )
            }
            MetricTarget::ExternalConcurrency { target_per_pod } => {
                Some(external_average_replicas(
                    view.current,
                    scrape.in_flight + scrape.queue_depth,
                    target_per_pod,
                    self.config.tolerance,
                ))
            }
        }
    }

    /// One sync of the controller (`reconcileAutoscaler`) at `now`, given the
    /// metric's recommendation. Returns the replicas to set.
    pub fn reconcile(&mut self, now: f64, current: u32, metric_replicas: u32) -> u32 {
        let (min, max) = (self.config.min_replicas, self.config.max_replicas);
        let desired = if current > max {
            max
        } else if current < min {
            min
        } else {
            let stabilized = self.stabilize(now, current, metric_replicas);
            self.rate_limit(now, current, stabilized)
        };
        if desired != current {
            self.store_event(now, current, desired);
        }
        desired
    }

    /// `stabilizeRecommendationWithBehaviors`, after
    /// `maybeInitScaleDownStabilizationWindow`: a new HPA counts the current
    /// replicas as its first recommendation, so it cannot scale down before
    /// a full scale-down window has passed.
    fn stabilize(&mut self, now: f64, current: u32, desired: u32) -> u32 {
        if !self.initialized {
            self.initialized = true;
            self.recommendations.push_back((now, current));
        }
        let up_cutoff = now - self.config.behavior.scale_up.stabilization_window_secs;
        let down_cutoff = now - self.config.behavior.scale_down.stabilization_window_secs;
        let mut up = desired;
        let mut down = desired;
        for &(at, rec) in &self.recommendations {
            if at > up_cutoff {
                up = up.min(rec);
            }
            if at > down_cutoff {
                down = down.max(rec);
            }
        }
        let oldest_needed = up_cutoff.min(down_cutoff);
        while self
            .recommendations
            .front()
            .is_some_and(|&(at, _)| at < oldest_needed)
        {
            self.recommendations.pop_front();
        }
        self.recommendations.push_back((now, desired));
        current.max(up).min(down)
    }

    /// `convertDesiredReplicasWithBehaviorRate`, bounds included.
    fn rate_limit(&mut self, now: f64, current: u32, desired: u32) -> u32 {
        let (min, max) = (self.config.min_replicas, self.config.max_replicas);
        if desired > current {
            let limit = self.scale_up_limit(now, current).max(current);
            desired.min(max.min(limit))
        } else if desired < current {
            let limit = self.scale_down_limit(now, current).min(current);
            desired.max(min.max(limit))
        } else {
            desired
        }
    }

    fn change_in_period(events: &VecDeque<ScaleEvent>, now: f64, period: f64) -> i64 {
        events
            .iter()
            .filter(|e| e.at > now - period)
            .map(|e| i64::from(e.change))
            .sum()
    }

    fn period_start(&self, now: f64, current: u32, period: f64) -> i64 {
        i64::from(current) - Self::change_in_period(&self.scale_up_events, now, period)
            + Self::change_in_period(&self.scale_down_events, now, period)
    }

    /// `calculateScaleUpLimitWithScalingRules`.
    fn scale_up_limit(&self, now: f64, current: u32) -> u32 {
        let rules = &self.config.behavior.scale_up;
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let start = self.period_start(now, current, p.period_secs);
            let proposed = match p.kind {
                PolicyKind::Pods => start + i64::from(p.value),
                PolicyKind::Percent => {
                    (start as f64 * (1.0 + f64::from(p.value) / 100.0)).ceil() as i64
                }
            };
            result = Some(match (rules.select, result) {
                (_, None) => proposed,
                (SelectPolicy::Min, Some(r)) => r.min(proposed),
                (_, Some(r)) => r.max(proposed),
            });
        }
        match (rules.select, result) {
            (SelectPolicy::Disabled, _) | (_, None) => current,
            (_, Some(r)) => clamp_u32(r),
        }
    }

    /// `calculateScaleDownLimitWithBehaviors`.
    fn scale_down_limit(&self, now: f64, current: u32) -> u32 {
        let rules = &self.config.behavior.scale_down;
        let mut result: Option<i64> = None;
        for p in &rules.policies {
            let start = self.period_start(now, current, p.period_secs);
            let proposed = match p.kind {
                PolicyKind::Pods => start - i64::from(p.value),
                PolicyKind::Percent => (start as f64 * (1.0 - f64::from(p.value) / 100.0)) as i64,
            };
            // For scale-down the largest change is the lowest count.
            result = Some(match (rules.select, result) {
                (_, None) => proposed,
                (SelectPolicy::Min, Some(r)) => r.max(proposed),
                (_, Some(r)) => r.min(proposed),
            });
        }
        match (rules.select, result) {
            (SelectPolicy::Disabled, _) | (_, None) => current,
            (_, Some(r)) => clamp_u32(r),
        }
    }

    /// `storeScaleEvent`: remember the change, forget events older than the
    /// longest policy period.
    fn store_event(&mut self, now: f64, previous: u32, new: u32) {
        let longest = |rules: &ScalingRules| {
            rules
                .policies
                .iter()
                .map(|p| p.period_secs)
                .fold(0.0_f64, f64::max)
        };
        let keep_up = longest(&self.config.behavior.scale_up);
        let keep_down = longest(&self.config.behavior.scale_down);
        while self
            .scale_up_events
            .front()
            .is_some_and(|e| e.at <= now - keep_up)
        {
            self.scale_up_events.pop_front();
        }
        while self
            .scale_down_events
            .front()
            .is_some_and(|e| e.at <= now - keep_down)
        {
            self.scale_down_events.pop_front();
        }
        if new > previous {
            self.scale_up_events.push_back(ScaleEvent {
                at: now,
                change: new - previous,
            });
        } else {
            self.scale_down_events.push_back(ScaleEvent {
                at: now,
                change: previous - new,
            });
        }
    }
}

fn clamp_u32(x: i64) -> u32 {
    x.clamp(0, i64::from(u32::MAX)) as u32
}

impl Autoscaler for Hpa {
    fn name(&self) -> &str {
        &self.name
    }

    fn step(&mut self, view: &View) -> Option<u32> {
        if !self.ticker.due(view.now) {
            return None;
        }
        // Without a metric the controller reports an error and does not scale
        // (unless the replicas are outside [min, max]).
        let metric = match self.metric_replicas(view) {
            Some(m) => m,
            None if view.current < self.config.min_replicas
                || view.current > self.config.max_replicas =>
            {
                view.current
            }
            None => return None,
        };
        Some(self.reconcile(view.now, view.current, metric))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::peers::Scrape;

    #[test]
    fn four_pods_at_fifteen_against_ten_gives_six() {
        assert_eq!(pods_metric_replicas(4, 4, 0, 0, 15.0, 10.0, 0.1), Some(6));
    }

    #[test]
    fn ratio_within_tolerance_keeps_current() {
        // 10.9 / 10 = 1.09: inside the 0.1 band.
        assert_eq!(pods_metric_replicas(4, 4, 0, 0, 10.9, 10.0, 0.1), Some(4));
        // 8.95 / 10 = 0.895: outside, scale down to ceil(0.895 * 4) = 4.
        assert_eq!(pods_metric_replicas(5, 4, 0, 0, 8.95, 10.0, 0.1), Some(4));
        // 11.5 / 10: outside, ceil(1.15 * 4) = 5.
        assert_eq!(pods_metric_replicas(4, 4, 0, 0, 11.5, 10.0, 0.1), Some(5));
    }

    #[test]
    fn unready_pods_count_at_zero_on_scale_up() {
        // 4 ready at 15, 2 starting: 60 / 6 pods = 10 per pod, ratio 1: hold.
        assert_eq!(pods_metric_replicas(6, 4, 0, 2, 15.0, 10.0, 0.1), Some(6));
        // 4 ready at 30, 4 starting: 120 / 8 = 15, ratio 1.5: ceil(1.5 * 8) = 12.
        assert_eq!(pods_metric_replicas(8, 4, 0, 4, 30.0, 10.0, 0.1), Some(12));
        // Unready pods are ignored on a scale-down: 4 ready at 5 -> 2.
        assert_eq!(pods_metric_replicas(6, 4, 0, 2, 5.0, 10.0, 0.1), Some(2));
    }

    #[test]
    fn missing_pods_count_at_target_on_scale_down() {
        // 2 pods at 5 and 2 without a sample: (10 + 20) / 4 = 7.5 -> ceil(0.75 * 4) = 3.
        assert_eq!(pods_metric_replicas(4, 2, 2, 0, 5.0, 10.0, 0.1), Some(3));
        // On a scale-up they count at zero: 2 at 30, 2 missing: 60 / 4 = 15 -> 6.
        assert_eq!(pods_metric_replicas(4, 2, 2, 0, 30.0, 10.0, 0.1), Some(6));
    }

    #[test]
    fn no_metric_no_answer() {
        assert_eq!(pods_metric_replicas(3, 0, 0, 3, 0.0, 10.0, 0.1), None);
    }

    #[test]
    fn external_average_value() {
        // 95 / 10 per pod against 5 current pods: ratio 1.9 -> 10.
        assert_eq!(external_average_replicas(5, 95.0, 10.0, 0.1), 10);
        // 52 against 5 pods of 10: ratio 1.04, within tolerance.
        assert_eq!(external_average_replicas(5, 52.0, 10.0, 0.1), 5);
        // Down: 12 -> ceil(1.2) = 2.
        assert_eq!(external_average_replicas(5, 12.0, 10.0, 0.1), 2);
    }

    fn hpa() -> Hpa {
        Hpa::new("hpa", HpaConfig::pods_in_flight(10.0, 1, 1000))
    }

    #[test]
    fn scale_up_is_limited_to_max_of_double_and_four_pods_per_period() {
        let mut h = hpa();
        // 2 pods asking for 40: max(2 * 2, 2 + 4) = 6.
        assert_eq!(h.reconcile(0.0, 2, 40), 6);
        // 15 s later the period has passed: from 6, max(12, 10) = 12.
        assert_eq!(h.reconcile(15.0, 6, 40), 12);
        // 10 s later, still inside that period: the period started at 6,
        // so at most 12 (already there).
        assert_eq!(h.reconcile(25.0, 12, 40), 12);
        assert_eq!(h.reconcile(30.0, 12, 40), 24);
    }

    #[test]
    fn scale_down_waits_for_the_highest_recommendation_of_five_minutes() {
        let mut h = hpa();
        // The first sync counts the current 10 as a recommendation.
        assert_eq!(h.reconcile(0.0, 10, 4), 10);
        assert_eq!(h.reconcile(15.0, 10, 3), 10);
        assert_eq!(h.reconcile(150.0, 10, 3), 10);
        // The recommendation of 10 at t=0 leaves the window at 300 s.
        assert_eq!(h.reconcile(299.0, 10, 3), 10);
        assert_eq!(h.reconcile(300.0, 10, 3), 3);
    }

    #[test]
    fn bounds_apply() {
        let mut h = Hpa::new("hpa", HpaConfig::pods_in_flight(10.0, 2, 5));
        assert_eq!(h.reconcile(0.0, 4, 100), 5);
        assert_eq!(h.reconcile(0.0, 7, 7), 5);
        assert_eq!(h.reconcile(0.0, 1, 1), 2);
    }

    #[test]
    fn scales_down_at_once_after_the_window_with_the_default_hundred_percent() {
        let mut h = hpa();
        assert_eq!(h.reconcile(0.0, 40, 40), 40);
        for t in 1..20 {
            assert_eq!(h.reconcile(f64::from(t) * 15.0, 40, 2), 40);
        }
        // 100% per 15 s: all the way down in one step.
        assert_eq!(h.reconcile(300.0, 40, 2), 2);
    }

    #[test]
    fn step_acts_only_on_sync_period_and_reads_the_scrape() {
        let mut h = hpa();
        let view = |now: f64| View {
            now,
            scrape: Some(Scrape {
                timestamp: now,
                in_flight: 60.0,
                queue_depth: 500.0,
                ready: 4,
                arrival_rate: 0.0,
            }),
            live_concurrency: 560.0,
            ready: 4,
            current: 4,
        };
        assert_eq!(h.step(&view(0.0)), Some(6));
        for t in 1..15 {
            assert_eq!(h.step(&view(f64::from(t))), None);
        }
        assert!(h.step(&view(15.0)).is_some());
    }
}
