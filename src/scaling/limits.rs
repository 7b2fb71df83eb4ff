//! Replica arithmetic: demand to pods, min/max bounds, per-step limits.
use super::types::{Config, DirectionRules};

/// Relative slack when rounding demand up to pods, so that float noise
/// (80.0000001 / 8) does not buy an extra pod; a real excess of one part in
/// a million of a pod's load is not worth a pod either.
pub const CEIL_RELATIVE_EPSILON: f64 = 1e-6;

/// `ceil(demand / per_pod)` with float slack, saturating at `u32::MAX`.
/// Non-finite or negative ratios give 0; callers validate their inputs.
pub(crate) fn pods_for(demand: f64, per_pod: f64) -> u32 {
    let ratio = demand / per_pod;
    if !ratio.is_finite() {
        return if ratio == f64::INFINITY { u32::MAX } else { 0 };
    }
    let slack = CEIL_RELATIVE_EPSILON * ratio.abs().max(1.0);
    // `as` saturates: negative -> 0, above u32::MAX -> u32::MAX.
    (ratio - slack).ceil() as u32
}

/// The effective `(min, max)`: a `max` below `min` is read as `min`.
pub(crate) fn bounds(config: &Config) -> (u32, u32) {
    let min = config.min_replicas;
    (min, config.max_replicas.max(min))
}

/// `value` kept within `[min, max]` (no panic when `min > max`).
pub(crate) fn clamp(value: u32, (min, max): (u32, u32)) -> u32 {
    value.min(max).max(min)
}

fn percent(rules: &DirectionRules) -> Option<f64> {
    rules
        .max_step_percent
        .filter(|p| p.is_finite() && *p >= 0.0)
}

/// The most replicas one scale-up step may reach from `current`. A pod step
/// adds `pods`; a percent step gives `ceil(current x (1 + percent/100))`
/// (HPA's rounding). With both, the larger wins; a step always allows at
/// least one pod (else scaling up from zero, or with a zero limit, could
/// never happen). No limit: unbounded.
pub(crate) fn up_limit(current: u32, rules: &DirectionRules) -> u32 {
    let by_pods = rules.max_step_pods.map(|p| current.saturating_add(p));
    let by_percent = percent(rules).map(|p| (f64::from(current) * (1.0 + p / 100.0)).ceil() as u32);
    let limit = match (by_pods, by_percent) {
        (None, None) => return u32::MAX,
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
    };
    limit.max(current.saturating_add(1))
}

/// The fewest replicas one scale-down step may reach from `current`. A pod
/// step removes `pods`; a percent step gives `floor(current x (1 -
/// percent/100))` (HPA's rounding). With both, the larger change wins; a step
/// always allows removing at least one pod. No limit: down to 0.
pub(crate) fn down_limit(current: u32, rules: &DirectionRules) -> u32 {
    let by_pods = rules.max_step_pods.map(|p| current.saturating_sub(p));
    let by_percent =
        percent(rules).map(|p| (f64::from(current) * (1.0 - p / 100.0)).max(0.0).floor() as u32);
    let limit = match (by_pods, by_percent) {
        (None, None) => return 0,
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
    };
    limit.min(current.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pods: Option<u32>, percent: Option<f64>) -> DirectionRules {
        DirectionRules {
            stabilization_window_secs: 0.0,
            max_step_pods: pods,
            max_step_percent: percent,
            period_secs: 15.0,
        }
    }

    #[test]
    fn pods_for_rounds_up_with_float_slack() {
        assert_eq!(pods_for(87.0, 8.0), 11); // 10.875 -> 11
        assert_eq!(pods_for(80.0, 8.0), 10); // exactly 10
        assert_eq!(pods_for(80.000_000_1, 8.0), 10); // float noise is not a pod
        assert_eq!(pods_for(80.1, 8.0), 11); // 10.0125: a real excess is
        assert_eq!(pods_for(10.0 * 0.8 * 3.0, 10.0 * 0.8), 3); // 24 / 8 = 3 even though 0.8 is inexact
        assert_eq!(pods_for(0.0, 8.0), 0);
        assert_eq!(pods_for(0.001, 8.0), 1);
        assert_eq!(pods_for(f64::INFINITY, 8.0), u32::MAX);
        assert_eq!(pods_for(f64::NAN, 8.0), 0);
        assert_eq!(pods_for(1e300, 8.0), u32::MAX);
    }

    #[test]
    fn bounds_never_panic_on_inverted_limits() {
        let config = Config {
            min_replicas: 5,
            max_replicas: 3,
            ..Config::default()
        };
        assert_eq!(bounds(&config), (5, 5));
        assert_eq!(clamp(1, bounds(&config)), 5);
    }

    #[test]
    fn up_step_larger_of_pods_and_percent_wins() {
        // 4 pods or 100%: from 2 -> max(6, 4) = 6; from 10 -> max(14, 20) = 20.
        let r = rules(Some(4), Some(100.0));
        assert_eq!(up_limit(2, &r), 6);
        assert_eq!(up_limit(10, &r), 20);
        // Percent only from 0 would allow 0 more: a step allows at least 1.
        assert_eq!(up_limit(0, &rules(None, Some(100.0))), 1);
        // 50% from 3: ceil(4.5) = 5.
        assert_eq!(up_limit(3, &rules(None, Some(50.0))), 5);
        assert_eq!(up_limit(3, &rules(None, None)), u32::MAX);
    }

    #[test]
    fn down_step_larger_of_pods_and_percent_wins() {
        // 50%: from 10 -> floor(5) = 5; from 5 -> floor(2.5) = 2.
        let r = rules(None, Some(50.0));
        assert_eq!(down_limit(10, &r), 5);
        assert_eq!(down_limit(5, &r), 2);
        // 2 pods or 10% from 40: min(38, 36) = 36.
        assert_eq!(down_limit(40, &rules(Some(2), Some(10.0))), 36);
        // 10% from 4: floor(3.6) = 3 (at least one pod anyway).
        assert_eq!(down_limit(4, &rules(None, Some(10.0))), 3);
        assert_eq!(down_limit(1, &rules(None, Some(1.0))), 0);
        assert_eq!(down_limit(7, &rules(None, None)), 0);
    }
}
