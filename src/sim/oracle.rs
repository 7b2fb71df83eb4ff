//! The oracle: the cheapest fleet that, knowing every future arrival, has
//! enough Ready pods every second.
//!
//! Each second `t` needs `max(min_replicas, ceil(arrivals(t) x S / C))` Ready
//! pods (`S` the mean service time, `C` the per-pod limit: capacity equals
//! the arrival rate, Little's law at full utilization). Pods are
//! interchangeable, so the cheapest schedule treats each level `k` (the
//! seconds needing at least `k` pods) on its own: a pod covers each run of
//! such seconds, is requested `startup` seconds before the run (that start-up
//! is paid), and is kept through an idle gap between two runs only when the
//! gap is shorter than the start-up it would pay again. The pods needed at
//! time 0 are already Ready (every autoscaler starts warm). This is a lower
//! bound on the pod-seconds of any autoscaler that meets the demand.
use super::service::ServiceConfig;

/// The oracle's schedule, one entry per simulated second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OracleSchedule {
    /// Ready pods during each second.
    pub ready: Vec<u32>,
    /// Requested pods (Ready plus starting) during each second: the cost.
    pub requested: Vec<u32>,
}

impl OracleSchedule {
    /// Total pod-seconds (cost).
    pub fn pod_seconds(&self) -> f64 {
        self.requested.iter().map(|&n| f64::from(n)).sum()
    }
}

/// Ready pods second `t` needs to serve `arrivals` requests.
pub fn pods_needed(arrivals: f64, service: &ServiceConfig, min_replicas: u32) -> u32 {
    let concurrency = arrivals.max(0.0) * service.service_time_secs;
    let limit = f64::from(service.per_pod_limit.max(1));
    // A hair of slack so 20.000000001 pods' worth of round-off stays 20.
    let pods = (concurrency / limit - 1e-9).ceil().max(0.0);
    (pods.min(f64::from(u32::MAX)) as u32).max(min_replicas)
}

/// The oracle's schedule for per-second `arrivals`.
pub fn schedule(
    arrivals: &[f64],
    service: &ServiceConfig,
    startup_secs: f64,
    min_replicas: u32,
) -> OracleSchedule {
    let len = arrivals.len();
    let startup = startup_secs.max(0.0).ceil() as usize;
    // Difference arrays: +1 at the start of a span, -1 after its end.
    let mut ready = vec![0_i64; len + 1];
    let mut requested = vec![0_i64; len + 1];
    let span = |diff: &mut Vec<i64>, from: usize, to: usize| {
        if from < to {
            diff[from] += 1;
            diff[to] -= 1;
        }
    };
    // Per level (index k-1): when its current run started, when its last run ended.
    let mut run_start: Vec<usize> = Vec::new();
    let mut last_end: Vec<Option<usize>> = Vec::new();
    let mut previous = 0_usize;
    for (t, &a) in arrivals.iter().enumerate() {
        let need = pods_needed(a, service, min_replicas) as usize;
        if need > run_start.len() {
            run_start.resize(need, 0);
            last_end.resize(need, None);
        }
        for k in previous..need {
            match last_end[k] {
                // Kept through the gap: it is Ready (and paid) all along.
                Some(end) if t - end < startup => {
                    span(&mut ready, end, t);
                    span(&mut requested, end, t);
                }
                // A pod Ready at time 0 was already there.
                _ if t == 0 => {}
                // A new start: requested `startup` seconds ahead.
                _ => span(&mut requested, t.saturating_sub(startup), t),
            }
            run_start[k] = t;
        }
        for k in need..previous {
            span(&mut ready, run_start[k], t);
            span(&mut requested, run_start[k], t);
            last_end[k] = Some(t);
        }
        previous = need;
    }
    for &start in run_start.iter().take(previous) {
        span(&mut ready, start, len);
        span(&mut requested, start, len);
    }
    let integrate = |diff: &[i64]| -> Vec<u32> {
        let mut level = 0_i64;
        diff[..len]
            .iter()
            .map(|d| {
                level += d;
                level.clamp(0, i64::from(u32::MAX)) as u32
            })
            .collect()
    };
    OracleSchedule {
        ready: integrate(&ready),
        requested: integrate(&requested),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> ServiceConfig {
        // 100 ms, 10 per pod: one pod per 100 req/s.
        ServiceConfig::default()
    }

    #[test]
    fn pods_cover_the_arrival_rate() {
        let s = service();
        assert_eq!(pods_needed(0.0, &s, 1), 1);
        assert_eq!(pods_needed(0.0, &s, 0), 0);
        assert_eq!(pods_needed(100.0, &s, 1), 1);
        assert_eq!(pods_needed(101.0, &s, 1), 2);
        assert_eq!(pods_needed(2000.0, &s, 1), 20);
    }

    #[test]
    fn short_gaps_are_bridged_and_long_ones_restart() {
        let s = service();
        // 1 pod throughout; a second pod needed at t=40..50, then at 60..70
        // (gap 10 < start-up 30: kept), then at 200..210 (gap 130: restart).
        let mut a = vec![50.0; 300];
        for t in (40..50).chain(60..70).chain(200..210) {
            a[t] = 150.0;
        }
        let sch = schedule(&a, &s, 30.0, 1);
        assert_eq!(sch.ready[39], 1);
        assert_eq!(sch.ready[40], 2);
        assert_eq!(sch.ready[55], 2, "kept through the short gap");
        assert_eq!(sch.ready[70], 1);
        assert_eq!(sch.ready[200], 2);
        assert_eq!(sch.requested[9], 1);
        assert_eq!(sch.requested[10], 2, "requested 30 s ahead");
        assert_eq!(sch.requested[169], 1);
        assert_eq!(sch.requested[170], 2);
        // 300 for the base pod; 30 (start-up) + 30 (40..70) + 30 + 10.
        assert_eq!(sch.pod_seconds(), 300.0 + 60.0 + 40.0);
    }

    #[test]
    fn pods_needed_at_time_zero_are_already_ready() {
        let s = service();
        let sch = schedule(&[500.0, 500.0, 100.0], &s, 30.0, 1);
        assert_eq!(sch.ready, vec![5, 5, 1]);
        assert_eq!(sch.requested, vec![5, 5, 1]);
    }

    #[test]
    fn never_less_than_needed() {
        let s = service();
        let a: Vec<f64> = (0..2000)
            .map(|t| 800.0 * (1.0 + ((t as f64) / 37.0).sin()))
            .collect();
        let sch = schedule(&a, &s, 30.0, 1);
        for (t, &x) in a.iter().enumerate() {
            assert!(sch.ready[t] >= pods_needed(x, &s, 1), "t={t}");
            assert!(sch.requested[t] >= sch.ready[t], "t={t}");
        }
    }
}
