//! The operator's own metrics, exposed on `/metrics` with the prefix
//! `inflight_`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// Reconciles take milliseconds to a few seconds (API round trips).
const RECONCILE_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Prometheus queries: a few milliseconds, up to the per-query timeout.
const QUERY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    namespace: String,
    policy: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    namespace: String,
    policy: String,
    reason: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One engine decision, as the metrics see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecisionRecord<'a> {
    pub namespace: &'a str,
    pub policy: &'a str,
    /// The decision's reason (`scaling::Reason` as a string, e.g. `ScaleUp`).
    pub reason: &'a str,
    pub desired_replicas: u32,
    pub current_replicas: u32,
    /// Steady demand in concurrency; `None` when the metrics were unreadable
    /// (the gauge is then removed rather than showing a made-up number).
    pub demand: Option<f64>,
    pub in_panic: bool,
}

/// The operator's metrics. Cheap to clone; all clones record into the same
/// registry.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    reconciles: Family<ResultLabel, Counter>,
    reconcile_duration: HistogramFamily<ResultLabel>,
    decisions: Family<DecisionLabels, Counter>,
    query_duration: HistogramFamily<ResultLabel>,
    query_errors: Family<KindLabel, Counter>,
    desired_replicas: Family<PolicyLabels, Gauge>,
    current_replicas: Family<PolicyLabels, Gauge>,
    demand: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    panic: Family<PolicyLabels, Gauge>,
    leader: Gauge,
    /// The reasons seen per policy, so `forget_policy` can remove every
    /// `decisions_total` series of a deleted policy.
    reasons_seen: Mutex<HashMap<PolicyLabels, HashSet<String>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered (prefix `inflight`).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("inflight");
        let reconciles = Family::<ResultLabel, Counter>::default();
        registry.register(
            "reconciles",
            "Reconciles of ConcurrencyPolicies, by result (ok or the error kind)",
            reconciles.clone(),
        );
        let reconcile_duration: HistogramFamily<ResultLabel> =
            Family::new_with_constructor(|| Histogram::new(RECONCILE_BUCKETS));
        registry.register_with_unit(
            "reconcile_duration",
            "Time to reconcile one ConcurrencyPolicy, by result",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Scaling decisions, by policy and reason",
            decisions.clone(),
        );
        let query_duration: HistogramFamily<ResultLabel> =
            Family::new_with_constructor(|| Histogram::new(QUERY_BUCKETS));
        registry.register_with_unit(
            "prometheus_query_duration",
            "Time of one Prometheus query, by result (ok or error)",
            Unit::Seconds,
            query_duration.clone(),
        );
        let query_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "prometheus_query_errors",
            "Failed Prometheus queries, by kind (timeout, connect, http, empty, multiple_series, invalid_value, parse, ...)",
            query_errors.clone(),
        );
        let desired_replicas = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "desired_replicas",
            "Replicas the last decision asked for",
            desired_replicas.clone(),
        );
        let current_replicas = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "current_replicas",
            "Replicas of the target when the last decision was taken",
            current_replicas.clone(),
        );
        let demand = Family::<PolicyLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "demand",
            "Steady demand in concurrency (requests in flight plus queue growth) at the last decision",
            demand.clone(),
        );
        let panic = Family::<PolicyLabels, Gauge>::default();
        registry.register(
            "panic_mode",
            "1 while the policy is in panic mode (scaling on the short window, never down)",
            panic.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 if this replica of the operator is the leader and acts",
            leader.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                reconciles,
                reconcile_duration,
                decisions,
                query_duration,
                query_errors,
                desired_replicas,
                current_replicas,
                demand,
                panic,
                leader,
                reasons_seen: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Counts one reconcile and its duration. `result` is `"ok"` or the
    /// error's `metric_label()`: keep it to a small fixed set.
    pub fn observe_reconcile(&self, result: &str, seconds: f64) {
        let label = ResultLabel {
            result: result.to_string(),
        };
        self.inner.reconciles.get_or_create(&label).inc();
        self.inner
            .reconcile_duration
            .get_or_create(&label)
            .observe(seconds);
    }

    /// Counts one Prometheus query and its duration; `error_kind` is `None`
    /// on success, else the error's `metric_label()`.
    pub fn observe_query(&self, seconds: f64, error_kind: Option<&str>) {
        let result = if error_kind.is_some() { "error" } else { "ok" };
        self.inner
            .query_duration
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .observe(seconds);
        if let Some(kind) = error_kind {
            self.inner
                .query_errors
                .get_or_create(&KindLabel {
                    kind: kind.to_string(),
                })
                .inc();
        }
    }

    /// Records one decision: counts it by reason and sets the policy's
    /// gauges.
    pub fn record_decision(&self, decision: &DecisionRecord<'_>) {
        let policy = PolicyLabels {
            namespace: decision.namespace.to_string(),
            policy: decision.policy.to_string(),
        };
        let inner = &self.inner;
        inner
            .decisions
            .get_or_create(&DecisionLabels {
                namespace: policy.namespace.clone(),
                policy: policy.policy.clone(),
                reason: decision.reason.to_string(),
            })
            .inc();
        inner
            .reasons_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(policy.clone())
            .or_default()
            .insert(decision.reason.to_string());
        inner
            .desired_replicas
            .get_or_create(&policy)
            .set(i64::from(decision.desired_replicas));
        inner
            .current_replicas
            .get_or_create(&policy)
            .set(i64::from(decision.current_replicas));
        match decision.demand {
            Some(demand) => {
                inner.demand.get_or_create(&policy).set(demand);
            }
            None => {
                inner.demand.remove(&policy);
            }
        }
        inner
            .panic
            .get_or_create(&policy)
            .set(i64::from(decision.in_panic));
    }

    /// Sets the leader gauge: 1 while this replica leads.
    pub fn set_leader(&self, leader: bool) {
        self.inner.leader.set(i64::from(leader));
    }

    /// Removes every series of a deleted policy.
    pub fn forget_policy(&self, namespace: &str, policy: &str) {
        let key = PolicyLabels {
            namespace: namespace.to_string(),
            policy: policy.to_string(),
        };
        let inner = &self.inner;
        let reasons = inner
            .reasons_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key)
            .unwrap_or_default();
        for reason in reasons {
            inner.decisions.remove(&DecisionLabels {
                namespace: key.namespace.clone(),
                policy: key.policy.clone(),
                reason,
            });
        }
        inner.desired_replicas.remove(&key);
        inner.current_replicas.remove(&key);
        inner.demand.remove(&key);
        inner.panic.remove(&key);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.inner.registry)?;
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name and labels as exposed).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    fn decision<'a>(reason: &'a str, demand: Option<f64>, in_panic: bool) -> DecisionRecord<'a> {
        DecisionRecord {
            namespace: "shop",
            policy: "checkout",
            reason,
            desired_replicas: 7,
            current_replicas: 5,
            demand,
            in_panic,
        }
    }

    #[test]
    fn reconciles_and_queries_are_counted_and_timed() {
        let m = Metrics::new();
        m.observe_reconcile("ok", 0.02);
        m.observe_reconcile("ok", 0.03);
        m.observe_reconcile("metrics", 0.5);
        m.observe_query(0.004, None);
        m.observe_query(2.0, Some("timeout"));
        m.observe_query(0.001, Some("connect"));
        let text = m.encode().unwrap();
        assert_eq!(
            value(&text, r#"inflight_reconciles_total{result="ok"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&text, r#"inflight_reconciles_total{result="metrics"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"inflight_reconcile_duration_seconds_count{result="ok"}"#
            ),
            Some(2.0)
        );
        let sum = value(
            &text,
            r#"inflight_reconcile_duration_seconds_sum{result="ok"}"#,
        )
        .unwrap();
        assert!((sum - 0.05).abs() < 1e-9, "{sum}");
        assert_eq!(
            value(
                &text,
                r#"inflight_prometheus_query_duration_seconds_count{result="error"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                r#"inflight_prometheus_query_errors_total{kind="timeout"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"inflight_prometheus_query_errors_total{kind="connect"}"#
            ),
            Some(1.0)
        );
        assert!(
            text.contains("# UNIT inflight_reconcile_duration_seconds seconds"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn decisions_set_the_policy_gauges() {
        let m = Metrics::new();
        m.record_decision(&decision("ScaleUp", Some(42.5), true));
        m.record_decision(&decision("ScaleUp", Some(40.0), false));
        let text = m.encode().unwrap();
        let labels = r#"{namespace="shop",policy="checkout"}"#;
        assert_eq!(
            value(
                &text,
                r#"inflight_decisions_total{namespace="shop",policy="checkout",reason="ScaleUp"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(&text, &format!("inflight_desired_replicas{labels}")),
            Some(7.0)
        );
        assert_eq!(
            value(&text, &format!("inflight_current_replicas{labels}")),
            Some(5.0)
        );
        assert_eq!(
            value(&text, &format!("inflight_demand{labels}")),
            Some(40.0)
        );
        assert_eq!(
            value(&text, &format!("inflight_panic_mode{labels}")),
            Some(0.0)
        );

        // Unreadable demand removes the gauge instead of reporting a number.
        m.record_decision(&decision("MetricsInvalid", None, false));
        let text = m.encode().unwrap();
        assert_eq!(value(&text, &format!("inflight_demand{labels}")), None);
        assert_eq!(
            value(&text, &format!("inflight_desired_replicas{labels}")),
            Some(7.0)
        );
    }

    #[test]
    fn forgetting_a_policy_removes_all_its_series_and_only_its() {
        let m = Metrics::new();
        m.record_decision(&decision("ScaleUp", Some(1.0), false));
        m.record_decision(&decision("Stabilizing", Some(1.0), true));
        m.record_decision(&DecisionRecord {
            policy: "other",
            ..decision("Steady", Some(3.0), false)
        });
        m.forget_policy("shop", "checkout");
        let text = m.encode().unwrap();
        assert!(!text.contains(r#"policy="checkout""#), "{text}");
        assert_eq!(
            value(
                &text,
                r#"inflight_decisions_total{namespace="shop",policy="other",reason="Steady"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&text, r#"inflight_demand{namespace="shop",policy="other"}"#),
            Some(3.0)
        );
    }

    #[test]
    fn the_leader_gauge_follows_leadership() {
        let m = Metrics::new();
        assert_eq!(value(&m.encode().unwrap(), "inflight_leader"), Some(0.0));
        m.set_leader(true);
        assert_eq!(value(&m.encode().unwrap(), "inflight_leader"), Some(1.0));
        let clone = m.clone();
        clone.set_leader(false);
        assert_eq!(value(&m.encode().unwrap(), "inflight_leader"), Some(0.0));
    }
}
