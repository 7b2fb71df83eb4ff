//! Learning how long new pods take to serve: from the moment we scale up to
//! N replicas to the moment N pods are Ready. The learned value (an EWMA of
//! the observed delays) is the forecast horizon when a policy says
//! `prediction.horizon: auto`, and is shown in `status.leadTimeSeconds`.
use std::collections::VecDeque;

/// Weight of a new observation in the average. 0.3 follows a change in
/// start-up time within a handful of scale-ups while one slow image pull
/// does not double the horizon.
const EWMA_WEIGHT: f64 = 0.3;

/// Scale-ups still waiting for their pods. A ramp issues several in a row;
/// more than this many outstanding means pods are not coming (quota, no
/// nodes), and the oldest are the least informative.
const MAX_PENDING: usize = 8;

/// A scale-up whose pods have not been Ready for this long is not a start-up
/// time any more but a stuck rollout (image pull error, no capacity): drop
/// it rather than teach the forecast a horizon of hours.
const MAX_LEAD_TIME_SECS: f64 = 600.0;

#[derive(Clone, Copy, Debug, PartialEq)]
struct Pending {
    replicas: u32,
    since: f64,
}

/// Per-policy lead-time learner. Times are seconds on the caller's clock.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeadTime {
    pending: VecDeque<Pending>,
    learned: Option<f64>,
}

impl LeadTime {
    /// Start from a value learned earlier (e.g. read back from status after
    /// a restart).
    pub fn with_learned(learned: Option<f64>) -> Self {
        LeadTime {
            pending: VecDeque::new(),
            learned: learned.filter(|v| v.is_finite() && *v >= 0.0),
        }
    }

    /// The learned lead time, once at least one scale-up was observed.
    pub fn learned(&self) -> Option<f64> {
        self.learned
    }

    /// Record a change of the target's replicas to `replicas` at `at`,
    /// `ready` pods being Ready at that moment.
    pub fn on_scale(&mut self, from: u32, replicas: u32, ready: u32, at: f64) {
        if replicas < from {
            // Scaling down: scale-ups above the new count will never see
            // their pods.
            self.pending.retain(|p| p.replicas <= replicas);
            return;
        }
        if replicas <= ready {
            return;
        }
        self.pending.push_back(Pending {
            replicas,
            since: at,
        });
        while self.pending.len() > MAX_PENDING {
            self.pending.pop_front();
        }
    }

    /// Record that `ready` pods are Ready at `now`. Every pending scale-up
    /// whose count is reached yields one observation. Returns the new
    /// learned value when it changed.
    pub fn observe_ready(&mut self, ready: u32, now: f64) -> Option<f64> {
        self.pending.retain(|p| now - p.since <= MAX_LEAD_TIME_SECS);
        let mut changed = false;
        while let Some(index) = self.pending.iter().position(|p| p.replicas <= ready) {
            let Some(done) = self.pending.remove(index) else {
                break;
            };
            let sample = (now - done.since).max(0.0);
            self.learned = Some(match self.learned {
                Some(old) => old + EWMA_WEIGHT * (sample - old),
                None => sample,
            });
            changed = true;
        }
        if changed { self.learned } else { None }
    }

    /// Scale-ups still waiting for their pods.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_observation_is_taken_as_is() {
        let mut lt = LeadTime::default();
        lt.on_scale(4, 11, 4, 100.0);
        assert_eq!(lt.observe_ready(8, 110.0), None);
        assert_eq!(lt.observe_ready(11, 124.0), Some(24.0));
        assert_eq!(lt.learned(), Some(24.0));
        assert_eq!(lt.pending(), 0);
    }

    #[test]
    fn later_observations_move_the_average_by_its_weight() {
        let mut lt = LeadTime::with_learned(Some(20.0));
        lt.on_scale(2, 4, 2, 0.0);
        let learned = lt.observe_ready(4, 30.0).unwrap();
        assert!((learned - (20.0 + EWMA_WEIGHT * 10.0)).abs() < 1e-9);
    }

    #[test]
    fn a_ramp_of_scale_ups_yields_one_sample_each() {
        let mut lt = LeadTime::default();
        lt.on_scale(2, 4, 2, 0.0);
        lt.on_scale(4, 8, 2, 15.0);
        // 4 ready at t=20: the first scale-up took 20s.
        assert_eq!(lt.observe_ready(4, 20.0), Some(20.0));
        // 8 ready at t=40: the second took 25s.
        let learned = lt.observe_ready(8, 40.0).unwrap();
        assert!((learned - (20.0 + EWMA_WEIGHT * 5.0)).abs() < 1e-9);
    }

    #[test]
    fn scale_down_cancels_scale_ups_that_will_not_complete() {
        let mut lt = LeadTime::default();
        lt.on_scale(2, 10, 2, 0.0);
        lt.on_scale(10, 5, 3, 10.0);
        assert_eq!(lt.pending(), 0);
        assert_eq!(lt.observe_ready(5, 20.0), None);
        assert_eq!(lt.learned(), None);
    }

    #[test]
    fn stuck_rollouts_are_not_learned() {
        let mut lt = LeadTime::default();
        lt.on_scale(1, 3, 1, 0.0);
        assert_eq!(lt.observe_ready(3, MAX_LEAD_TIME_SECS + 1.0), None);
        assert_eq!(lt.learned(), None);
    }

    #[test]
    fn a_scale_up_already_satisfied_is_ignored() {
        let mut lt = LeadTime::default();
        lt.on_scale(3, 5, 5, 0.0);
        assert_eq!(lt.pending(), 0);
    }

    #[test]
    fn pending_is_bounded() {
        let mut lt = LeadTime::default();
        for i in 0..20 {
            lt.on_scale(i, i + 1, 0, f64::from(i));
        }
        assert_eq!(lt.pending(), MAX_PENDING);
    }

    #[test]
    fn restored_value_must_be_sane() {
        assert_eq!(LeadTime::with_learned(Some(f64::NAN)).learned(), None);
        assert_eq!(LeadTime::with_learned(Some(-1.0)).learned(), None);
        assert_eq!(LeadTime::with_learned(Some(12.0)).learned(), Some(12.0));
    }
}
