//! The workload's Prometheus metrics, as a real HTTP service would expose them.
use inflight::sim::service::StepStats;
use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;
use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, PoisonError};

/// Upper bounds of the latency histogram, seconds: 10 ms (a fast request)
/// to 30 s (past any client timeout).
pub const LATENCY_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0,
];

type FloatGauge = Gauge<f64, AtomicU64>;
type FloatCounter = Counter<f64, AtomicU64>;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabels {
    /// `queue_full` or `timeout`.
    pub reason: &'static str,
}

/// All metrics; the registry carries `namespace` and `deployment` as labels
/// of every series.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    in_flight: FloatGauge,
    queue_depth: FloatGauge,
    served: FloatCounter,
    dropped: Family<DropLabels, FloatCounter>,
    arrivals: FloatCounter,
    duration: WeightedHistogram,
    ready: Gauge,
    arrival_rate: FloatGauge,
}

impl Metrics {
    pub fn new(namespace: &str, deployment: &str) -> Self {
        let labels = [
            (
                Cow::Borrowed("namespace"),
                Cow::Owned(namespace.to_string()),
            ),
            (
                Cow::Borrowed("deployment"),
                Cow::Owned(deployment.to_string()),
            ),
        ];
        let mut registry = Registry::with_labels(labels.into_iter());
        let metrics = Self {
            in_flight: FloatGauge::default(),
            queue_depth: FloatGauge::default(),
            served: FloatCounter::default(),
            dropped: Family::default(),
            arrivals: FloatCounter::default(),
            duration: WeightedHistogram::new(&LATENCY_BUCKETS),
            ready: Gauge::default(),
            arrival_rate: FloatGauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests_in_flight",
            "Requests being served (time-average over the last tick)",
            metrics.in_flight.clone(),
        );
        registry.register(
            "http_queue_depth",
            "Requests waiting for a free slot (time-average over the last tick)",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "http_requests",
            "Requests served to completion",
            metrics.served.clone(),
        );
        registry.register(
            "http_requests_dropped",
            "Requests dropped, by reason: queue_full or timeout",
            metrics.dropped.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Latency of requests admitted to service: queue wait plus service time",
            metrics.duration.clone(),
        );
        registry.register(
            "loadsim_ready_replicas",
            "Ready replicas of the deployment, as the model sees them",
            metrics.ready.clone(),
        );
        registry.register(
            "loadsim_arrival_rate",
            "Request rate of the current profile, requests per second",
            metrics.arrival_rate.clone(),
        );
        registry.register(
            "loadsim_arrivals",
            "Requests that arrived (served, dropped or still in the service)",
            metrics.arrivals.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Records one step of the model.
    pub fn record(&self, stats: &StepStats, ready: u32, rate: f64) {
        self.in_flight.set(stats.in_flight);
        self.queue_depth.set(stats.queue_depth);
        self.served.inc_by(stats.served);
        self.arrivals.inc_by(stats.arrivals);
        self.dropped
            .get_or_create(&DropLabels {
                reason: "queue_full",
            })
            .inc_by(stats.dropped_queue_full);
        self.dropped
            .get_or_create(&DropLabels { reason: "timeout" })
            .inc_by(stats.dropped_timeout);
        for sample in &stats.latencies {
            self.duration.observe(sample.latency_secs, sample.count);
        }
        self.ready.set(i64::from(ready));
        self.arrival_rate.set(rate);
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A histogram whose observations carry a (fractional) weight, for the fluid
/// model's request counts. Exposed counts are the floors of the cumulative
/// weights, so they stay whole and monotonic.
#[derive(Debug, Clone)]
pub struct WeightedHistogram {
    bounds: Arc<[f64]>,
    state: Arc<Mutex<HistogramState>>,
}

#[derive(Debug)]
struct HistogramState {
    sum: f64,
    /// Weight per bucket (not cumulative); the last is `+Inf`.
    weights: Vec<f64>,
}

impl WeightedHistogram {
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            bounds: bounds.into(),
            state: Arc::new(Mutex::new(HistogramState {
                sum: 0.0,
                weights: vec![0.0; bounds.len() + 1],
            })),
        }
    }

    /// Adds `weight` observations of `value`; ignores non-finite or
    /// non-positive weights and non-finite values.
    pub fn observe(&self, value: f64, weight: f64) {
        if !(value.is_finite() && weight.is_finite() && weight > 0.0) {
            return;
        }
        let bucket = self.bounds.partition_point(|&b| b < value);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.sum += value * weight;
        if let Some(w) = state.weights.get_mut(bucket) {
            *w += weight;
        }
    }

    /// (sum, count, per-bucket whole counts) as the encoder wants them.
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cumulative = 0.0;
        let mut previous_whole = 0u64;
        let mut buckets = Vec::with_capacity(state.weights.len());
        for (i, weight) in state.weights.iter().enumerate() {
            cumulative += weight;
            // Saturating float-to-int cast; cumulative is >= 0.
            let whole = cumulative.floor() as u64;
            let bound = self.bounds.get(i).copied().unwrap_or(f64::INFINITY);
            buckets.push((bound, whole.saturating_sub(previous_whole)));
            previous_whole = whole;
        }
        (state.sum, previous_whole, buckets)
    }
}

impl TypedMetric for WeightedHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for WeightedHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let (sum, count, buckets) = self.snapshot();
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inflight::sim::service::LatencySample;

    #[test]
    fn exposition_has_every_series_with_labels() {
        let metrics = Metrics::new("shop", "checkout");
        let stats = StepStats {
            in_flight: 12.5,
            queue_depth: 3.0,
            served: 7.5,
            arrivals: 9.0,
            dropped_queue_full: 1.0,
            dropped_timeout: 0.5,
            latencies: vec![
                LatencySample {
                    latency_secs: 0.1,
                    count: 2.5,
                },
                LatencySample {
                    latency_secs: 3.0,
                    count: 1.0,
                },
            ],
            ..StepStats::default()
        };
        metrics.record(&stats, 4, 90.0);
        metrics.record(&stats, 4, 90.0);
        let text = metrics.encode().unwrap();
        let labels = r#"namespace="shop",deployment="checkout""#;
        for line in [
            format!("http_requests_in_flight{{{labels}}} 12.5"),
            format!("http_queue_depth{{{labels}}} 3.0"),
            format!("http_requests_total{{{labels}}} 15.0"),
            format!("loadsim_ready_replicas{{{labels}}} 4"),
            format!("loadsim_arrival_rate{{{labels}}} 90.0"),
            format!("loadsim_arrivals_total{{{labels}}} 18.0"),
            format!(r#"http_requests_dropped_total{{{labels},reason="queue_full"}} 2.0"#),
            format!(r#"http_requests_dropped_total{{{labels},reason="timeout"}} 1.0"#),
            // 2 x (2.5 + 1) = 7 observations, 5 of them at 0.1 s.
            format!("http_request_duration_seconds_count{{{labels}}} 7"),
            format!(r#"http_request_duration_seconds_bucket{{{labels},le="0.05"}} 0"#),
            format!(r#"http_request_duration_seconds_bucket{{{labels},le="0.1"}} 5"#),
            format!(r#"http_request_duration_seconds_bucket{{{labels},le="2.5"}} 5"#),
            format!(r#"http_request_duration_seconds_bucket{{{labels},le="5.0"}} 7"#),
            format!(r#"http_request_duration_seconds_bucket{{{labels},le="+Inf"}} 7"#),
        ] {
            assert!(text.contains(&line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("# TYPE http_request_duration_seconds histogram"));
    }

    #[test]
    fn weighted_counts_are_whole_and_monotonic() {
        let h = WeightedHistogram::new(&[1.0, 2.0]);
        h.observe(0.5, 0.4);
        h.observe(1.5, 0.4);
        h.observe(1.5, f64::NAN);
        h.observe(f64::INFINITY, 1.0);
        h.observe(3.0, -1.0);
        let (sum, count, buckets) = h.snapshot();
        assert!((sum - 0.8).abs() < 1e-12);
        assert_eq!(count, 0);
        assert_eq!(buckets, vec![(1.0, 0), (2.0, 0), (f64::INFINITY, 0)]);
        h.observe(0.5, 0.7);
        let (_, count, buckets) = h.snapshot();
        // cumulative weights 1.1, 1.5, 1.5 -> floors 1, 1, 1.
        assert_eq!(count, 1);
        assert_eq!(buckets, vec![(1.0, 1), (2.0, 0), (f64::INFINITY, 0)]);
    }
}
