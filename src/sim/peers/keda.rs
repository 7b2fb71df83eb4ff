//! KEDA's Prometheus scaler feeding the HPA.
//!
//! Sources: KEDA's documentation ("Scaling Deployments", the `prometheus`
//! scaler) and code (`pkg/scalers/prometheus_scaler.go`,
//! `pkg/scaling/resolver`): a ScaledObject makes an HPA whose External metric
//! is the scaler's query, read when the HPA syncs (no metric cache by
//! default), with `metricType: AverageValue` (the default) and `threshold` as
//! the per-pod average; the HPA's default behavior applies. KEDA's own
//! `pollingInterval` (30 s) only drives activation from and to zero.
//!
//! How it is configured for the simulated workload: the query
//! `sum(in-flight) + sum(queue)` over the latest scrape, `threshold` equal to
//! the per-pod limit times the utilization (the target inflight plans for),
//! `minReplicaCount: 1` (an HTTP service behind a load balancer, no activator
//! to hold requests at zero pods).
use super::hpa::{Hpa, HpaBehavior, HpaConfig, MetricTarget};

/// The HPA that a ScaledObject with one Prometheus trigger creates.
pub fn keda(threshold_per_pod: f64, min_replicas: u32, max_replicas: u32) -> Hpa {
    Hpa::new(
        "keda",
        HpaConfig {
            min_replicas,
            max_replicas,
            sync_period_secs: 15.0,
            tolerance: 0.1,
            behavior: HpaBehavior::default(),
            metric: MetricTarget::ExternalConcurrency {
                target_per_pod: threshold_per_pod,
            },
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::peers::{Autoscaler, Scrape, View};

    #[test]
    fn counts_the_queue_and_divides_by_all_current_pods() {
        let mut k = keda(8.0, 1, 1000);
        // 4 pods (2 still starting), 40 in flight + 40 queued = 80 -> 10 pods,
        // but the scale-up rate allows max(4 * 2, 4 + 4) = 8.
        let view = View {
            now: 0.0,
            scrape: Some(Scrape {
                timestamp: 0.0,
                in_flight: 40.0,
                queue_depth: 40.0,
                ready: 2,
                arrival_rate: 0.0,
            }),
            live_concurrency: 80.0,
            ready: 2,
            current: 4,
        };
        assert_eq!(k.step(&view), Some(8));
        assert_eq!(k.name(), "keda");
    }
}
