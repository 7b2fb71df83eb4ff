//! Status conditions: building the desired set, merging it into what the
//! object already has (a condition keeps its `lastTransitionTime` unless its
//! status flips), and deciding whether a status write is worth making.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::v1alpha1::ConcurrencyPolicyStatus;

/// One condition as the controller wants it now, before timestamps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredCondition {
    pub type_: &'static str,
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl DesiredCondition {
    pub fn new(
        type_: &'static str,
        status: bool,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        DesiredCondition {
            type_,
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

fn status_str(status: bool) -> &'static str {
    if status { "True" } else { "False" }
}

/// Merge the desired conditions into the previous ones. A condition whose
/// status did not change keeps its `lastTransitionTime`; a new or flipped one
/// gets `now`. Conditions the controller no longer sets are dropped. The
/// result follows the order of `desired`, so equal inputs give equal output.
pub fn merge_conditions(
    previous: &[Condition],
    desired: &[DesiredCondition],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    desired
        .iter()
        .map(|want| {
            let status = status_str(want.status);
            let since = previous
                .iter()
                .find(|c| c.type_ == want.type_ && c.status == status)
                .map(|c| c.last_transition_time.clone())
                .unwrap_or_else(|| now.clone());
            Condition {
                type_: want.type_.to_string(),
                status: status.to_string(),
                reason: want.reason.clone(),
                message: want.message.clone(),
                observed_generation: generation,
                last_transition_time: since,
            }
        })
        .collect()
}

/// Find a condition's status (`Some(true)` for "True").
pub fn condition_is(conditions: &[Condition], type_: &str) -> Option<bool> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status == "True")
}

/// How a new status compares with the one the object has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusChange {
    /// Identical, timestamps aside: never worth a write.
    None,
    /// Only the numbers of the last decision (in flight, smoothed, the
    /// recommendation...) or a condition's message moved: written at the
    /// heartbeat.
    Numbers,
    /// Something a user or a tool watches changed: generation, a condition's
    /// status or reason, replicas, the last scale, the decision's reason or
    /// limit, the learned lead time (by 0.1s or more). Written at once.
    Significant,
}

/// Compare two statuses, ignoring condition `lastTransitionTime`s.
pub fn compare_status(
    old: &ConcurrencyPolicyStatus,
    new: &ConcurrencyPolicyStatus,
) -> StatusChange {
    let conditions_key = |s: &ConcurrencyPolicyStatus| -> Vec<(String, String, String)> {
        s.conditions
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect()
    };
    let decision_key = |s: &ConcurrencyPolicyStatus| {
        s.last_decision
            .as_ref()
            .map(|d| (d.reason.clone(), d.limited_by.clone()))
    };
    let significant = old.observed_generation != new.observed_generation
        || conditions_key(old) != conditions_key(new)
        || old.current_replicas != new.current_replicas
        || old.desired_replicas != new.desired_replicas
        || old.last_scale_time != new.last_scale_time
        || old.last_scale_direction != new.last_scale_direction
        || decision_key(old) != decision_key(new)
        || lead_time_changed(old.lead_time_seconds, new.lead_time_seconds)
        || limits_written_changed(old, new);
    if significant {
        return StatusChange::Significant;
    }
    let messages = |s: &ConcurrencyPolicyStatus| -> Vec<String> {
        s.conditions.iter().map(|c| c.message.clone()).collect()
    };
    if old.last_decision != new.last_decision
        || messages(old) != messages(new)
        || old.lead_time_seconds != new.lead_time_seconds
        || old.limits != new.limits
    {
        StatusChange::Numbers
    } else {
        StatusChange::None
    }
}

/// Whether the limits as written changed: perPod, total, or a sink's value
/// or state. The adaptive controller's moving numbers wait for the heartbeat.
fn limits_written_changed(old: &ConcurrencyPolicyStatus, new: &ConcurrencyPolicyStatus) -> bool {
    match (&old.limits, &new.limits) {
        (None, None) => false,
        (Some(a), Some(b)) => {
            a.per_pod != b.per_pod
                || a.total != b.total
                || a.sinks.len() != b.sinks.len()
                || a.sinks
                    .iter()
                    .zip(&b.sinks)
                    .any(|(x, y)| x.sink != y.sink || x.value != y.value || x.state != y.state)
        }
        _ => true,
    }
}

/// A learned lead time is shown rounded to tenths of a second; smaller
/// moves are noise and wait for the heartbeat.
fn lead_time_changed(old: Option<f64>, new: Option<f64>) -> bool {
    match (old, new) {
        (Some(a), Some(b)) => (a - b).abs() >= 0.1,
        (None, None) => false,
        _ => true,
    }
}

/// Whether to write the status now: at once for a significant change, at
/// the heartbeat for moving numbers, never for no change.
/// `since_last_write_secs` is `None` when this process has not written this
/// policy's status yet (then moving numbers are written: the status on the
/// object may be arbitrarily old).
pub fn status_needs_write(
    change: StatusChange,
    since_last_write_secs: Option<f64>,
    heartbeat_secs: f64,
) -> bool {
    match change {
        StatusChange::None => false,
        StatusChange::Significant => true,
        StatusChange::Numbers => since_last_write_secs.is_none_or(|s| s >= heartbeat_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::DecisionSummary;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn ready(status: bool, reason: &str) -> DesiredCondition {
        DesiredCondition::new("Ready", status, reason, "msg")
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let first = merge_conditions(&[], &[ready(true, "Active")], Some(1), &at(100));
        assert_eq!(first[0].last_transition_time, at(100));
        let second = merge_conditions(
            &first,
            &[DesiredCondition::new(
                "Ready",
                true,
                "Active",
                "other message",
            )],
            Some(2),
            &at(200),
        );
        assert_eq!(second[0].last_transition_time, at(100));
        assert_eq!(second[0].message, "other message");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn flipped_status_gets_new_transition_time() {
        let first = merge_conditions(&[], &[ready(true, "Active")], Some(1), &at(100));
        let flipped =
            merge_conditions(&first, &[ready(false, "TargetNotFound")], Some(1), &at(300));
        assert_eq!(flipped[0].status, "False");
        assert_eq!(flipped[0].last_transition_time, at(300));
    }

    #[test]
    fn conditions_no_longer_set_are_dropped_and_order_follows_desired() {
        let previous = merge_conditions(
            &[],
            &[
                ready(true, "Active"),
                DesiredCondition::new("Panic", false, "Stable", ""),
            ],
            None,
            &at(1),
        );
        let merged = merge_conditions(
            &previous,
            &[DesiredCondition::new("Panic", false, "Stable", "")],
            None,
            &at(2),
        );
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].type_, "Panic");
        assert_eq!(merged[0].last_transition_time, at(1));
    }

    fn status_with(conditions: Vec<Condition>, in_flight: f64) -> ConcurrencyPolicyStatus {
        ConcurrencyPolicyStatus {
            observed_generation: Some(3),
            conditions,
            current_replicas: Some(4),
            desired_replicas: Some(4),
            last_decision: Some(DecisionSummary {
                reason: "Steady".into(),
                in_flight: Some(in_flight),
                ..DecisionSummary::default()
            }),
            ..ConcurrencyPolicyStatus::default()
        }
    }

    #[test]
    fn comparison_ignores_transition_times() {
        let a = merge_conditions(&[], &[ready(true, "Active")], Some(3), &at(1));
        let b = merge_conditions(&[], &[ready(true, "Active")], Some(3), &at(999));
        assert_eq!(
            compare_status(&status_with(a, 30.0), &status_with(b, 30.0)),
            StatusChange::None
        );
    }

    #[test]
    fn moving_numbers_are_not_significant_but_flips_are() {
        let c = merge_conditions(&[], &[ready(true, "Active")], Some(3), &at(1));
        let base = status_with(c.clone(), 30.0);
        assert_eq!(
            compare_status(&base, &status_with(c, 31.5)),
            StatusChange::Numbers
        );
        let flipped = merge_conditions(&[], &[ready(false, "InvalidSpec")], Some(3), &at(1));
        assert_eq!(
            compare_status(&base, &status_with(flipped, 30.0)),
            StatusChange::Significant
        );
        let mut scaled = base.clone();
        scaled.desired_replicas = Some(5);
        assert_eq!(compare_status(&base, &scaled), StatusChange::Significant);
    }

    #[test]
    fn tiny_lead_time_moves_wait_for_heartbeat() {
        let base = ConcurrencyPolicyStatus {
            lead_time_seconds: Some(20.0),
            ..ConcurrencyPolicyStatus::default()
        };
        let nudged = ConcurrencyPolicyStatus {
            lead_time_seconds: Some(20.04),
            ..ConcurrencyPolicyStatus::default()
        };
        let moved = ConcurrencyPolicyStatus {
            lead_time_seconds: Some(24.0),
            ..ConcurrencyPolicyStatus::default()
        };
        assert_eq!(compare_status(&base, &nudged), StatusChange::Numbers);
        assert_eq!(compare_status(&base, &moved), StatusChange::Significant);
    }

    #[test]
    fn written_limits_are_significant_adaptive_numbers_are_not() {
        use crate::api::v1alpha1::{AdaptiveStatus, LimitsStatus, SinkStatus};
        let limits = |per_pod: u32, latency: f64, state: &str| ConcurrencyPolicyStatus {
            limits: Some(LimitsStatus {
                per_pod,
                total: per_pod * 2,
                pods: 2,
                adaptive: Some(AdaptiveStatus {
                    limit: f64::from(per_pod),
                    latency_seconds: Some(latency),
                    baseline_seconds: Some(0.1),
                    held: None,
                }),
                sinks: vec![SinkStatus {
                    sink: "ConfigMap a key k".into(),
                    value: Some(per_pod),
                    state: state.into(),
                    message: None,
                }],
            }),
            ..ConcurrencyPolicyStatus::default()
        };
        let base = limits(10, 0.1, "Synced");
        assert_eq!(compare_status(&base, &base.clone()), StatusChange::None);
        assert_eq!(
            compare_status(&base, &limits(10, 0.12, "Synced")),
            StatusChange::Numbers
        );
        assert_eq!(
            compare_status(&base, &limits(11, 0.1, "Synced")),
            StatusChange::Significant
        );
        assert_eq!(
            compare_status(&base, &limits(10, 0.1, "Forbidden")),
            StatusChange::Significant
        );
        assert_eq!(
            compare_status(&base, &ConcurrencyPolicyStatus::default()),
            StatusChange::Significant
        );
    }

    #[test]
    fn write_policy_follows_change_and_heartbeat() {
        assert!(!status_needs_write(StatusChange::None, None, 30.0));
        assert!(!status_needs_write(StatusChange::None, Some(1000.0), 30.0));
        assert!(status_needs_write(
            StatusChange::Significant,
            Some(0.5),
            30.0
        ));
        assert!(!status_needs_write(StatusChange::Numbers, Some(5.0), 30.0));
        assert!(status_needs_write(StatusChange::Numbers, Some(30.0), 30.0));
        assert!(status_needs_write(StatusChange::Numbers, None, 30.0));
    }

    #[test]
    fn condition_lookup() {
        let c = merge_conditions(&[], &[ready(true, "Active")], None, &at(1));
        assert_eq!(condition_is(&c, "Ready"), Some(true));
        assert_eq!(condition_is(&c, "Panic"), None);
    }
}
