//! Panic mode: when the short window's demand reaches `threshold` times what
//! the ready pods are planned for, scale up on that window at once, and never
//! scale down until the condition has stayed false for a while.
use super::types::Config;

/// Panic ends once its condition has been false for this long: twice the
/// smoothing half-life (so the stable path has caught up with the burst) or
/// ten panic windows, whichever is longer. With the defaults (30 s, 6 s)
/// this is 60 s, Knative's stable window.
pub fn panic_exit_secs(config: &Config) -> f64 {
    (2.0 * config.smoothing_half_life_secs).max(10.0 * config.panic.window_secs)
}

/// Whether the panic condition holds: panic-window demand over the capacity
/// of the ready pods. With no ready pod, capacity is counted as one pod's
/// (as Knative does), so a burst on a fleet that is still starting, or at
/// zero, panics too.
pub(crate) fn triggered(
    panic_demand: f64,
    ready_replicas: u32,
    per_pod_target: f64,
    config: &Config,
) -> bool {
    let capacity = f64::from(ready_replicas.max(1)) * per_pod_target;
    panic_demand > 0.0 && panic_demand / capacity >= config.panic.threshold
}

#[derive(Clone, Debug, Default)]
pub(crate) struct PanicState {
    /// When the condition last held, while in panic.
    since_triggered: Option<f64>,
}

impl PanicState {
    /// Updates the state with this tick's condition; returns whether the
    /// engine is in panic now.
    pub(crate) fn update(&mut self, triggered: bool, now: f64, exit_after: f64) -> bool {
        if triggered {
            self.since_triggered = Some(now);
        } else if self
            .since_triggered
            .is_some_and(|at| now - at >= exit_after)
        {
            self.since_triggered = None;
        }
        self.since_triggered.is_some()
    }

    pub(crate) fn in_panic(&self) -> bool {
        self.since_triggered.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_exit_is_sixty_seconds() {
        // max(2 x 30, 10 x 6) = 60
        assert_eq!(panic_exit_secs(&Config::default()), 60.0);
    }

    #[test]
    fn triggers_at_threshold_times_ready_capacity() {
        let c = Config::default(); // threshold 2, per pod 10 x 0.8 = 8
        // 4 ready pods plan for 32: 64 is exactly 2x -> panic; 63 is not.
        assert!(triggered(64.0, 4, 8.0, &c));
        assert!(!triggered(63.0, 4, 8.0, &c));
        // No ready pod counts as one: 16 / 8 = 2 -> panic; zero demand never.
        assert!(triggered(16.0, 0, 8.0, &c));
        assert!(!triggered(0.0, 0, 8.0, &c));
    }

    #[test]
    fn leaves_panic_only_after_the_condition_stayed_false() {
        let mut p = PanicState::default();
        assert!(p.update(true, 0.0, 60.0));
        assert!(p.update(false, 30.0, 60.0));
        assert!(p.update(true, 40.0, 60.0)); // re-triggered: the clock restarts
        assert!(p.update(false, 99.0, 60.0));
        assert!(!p.update(false, 100.0, 60.0));
        assert!(!p.in_panic());
    }
}
