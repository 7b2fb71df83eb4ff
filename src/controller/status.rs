//! The policy's status: built from one tick's outcome (pure), written with
//! server-side apply on the status subresource (field manager `inflight`),
//! and only when it changed or at the heartbeat (see
//! [`super::conditions::status_needs_write`]).
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

use super::conditions::{DesiredCondition, merge_conditions};
use super::conflict::Blocker;
use crate::actuate::FIELD_MANAGER;
use crate::api::v1alpha1::{
    ConcurrencyPolicy, ConcurrencyPolicyStatus, DecisionSummary, LimitsStatus, ScaleDirection,
    condition,
};
use crate::scaling::{Decision, Direction, Reason};

/// Without changes, the status is still refreshed this often, so the numbers
/// of the last decision in `kubectl get cpol` stay current.
pub const HEARTBEAT_SECS: f64 = 30.0;

/// Why the controller is not acting on the policy at all (the spec cannot be
/// used, the target is missing...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub reason: String,
    pub message: String,
}

/// Everything one tick learned that the status reports.
#[derive(Clone, Debug, Default)]
pub struct Report<'a> {
    pub generation: Option<i64>,
    /// `Kind/name` of the target.
    pub target: String,
    pub problem: Option<Problem>,
    pub blocked: Option<&'a Blocker>,
    pub paused: bool,
    pub dry_run: bool,
    pub decision: Option<&'a Decision>,
    /// The target's replicas after this tick's action.
    pub current_replicas: Option<u32>,
    pub metrics_error: Option<&'a str>,
    pub scale_error: Option<&'a str>,
    pub last_scale: Option<(Time, Direction)>,
    pub lead_time: Option<f64>,
    /// The service's limits after this tick (`None` without spec.limits).
    pub limits: Option<LimitsStatus>,
}

/// The conditions for a tick, in a fixed order: Ready, MetricsAvailable,
/// ScalingActive, ScalingLimited, Panic. Without a decision (the policy could
/// not be evaluated) only Ready and ScalingActive are set.
pub fn desired_conditions(r: &Report<'_>) -> Vec<DesiredCondition> {
    let mut out = Vec::with_capacity(5);
    let ready = match (&r.problem, r.blocked) {
        (Some(p), _) => DesiredCondition::new(condition::READY, false, &p.reason, &p.message),
        (None, Some(b)) => {
            DesiredCondition::new(condition::READY, false, b.reason(), b.to_string())
        }
        (None, None) => {
            let how = if r.paused {
                "paused by the inflight.dev/paused annotation"
            } else if r.dry_run {
                "in DryRun: deciding, not scaling"
            } else {
                "scaling"
            };
            DesiredCondition::new(
                condition::READY,
                true,
                "Active",
                format!("evaluating {} ({how})", r.target),
            )
        }
    };
    out.push(ready);

    if let Some(d) = r.decision {
        out.push(match r.metrics_error {
            Some(e) => DesiredCondition::new(
                condition::METRICS_AVAILABLE,
                false,
                "MetricsUnavailable",
                format!(
                    "{e} ({} consecutive failures)",
                    d.details.consecutive_failures
                ),
            ),
            None => DesiredCondition::new(
                condition::METRICS_AVAILABLE,
                true,
                "MetricsRead",
                "the metric queries returned fresh, valid values",
            ),
        });
    }

    out.push(scaling_active(r));

    if let Some(d) = r.decision {
        out.push(match d.details.limited_by {
            Some(limit) => DesiredCondition::new(
                condition::SCALING_LIMITED,
                true,
                limit.as_str(),
                format!(
                    "demand asked for {} replicas; {limit} allowed {}",
                    d.details.recommended, d.replicas
                ),
            ),
            None => DesiredCondition::new(
                condition::SCALING_LIMITED,
                false,
                "WithinLimits",
                "the recommendation is within the replica bounds and step limits",
            ),
        });
        out.push(if d.details.in_panic {
            DesiredCondition::new(
                condition::PANIC,
                true,
                "PanicMode",
                "demand over the panic window crossed the threshold: scaling on the short window, never down",
            )
        } else {
            DesiredCondition::new(condition::PANIC, false, "Stable", "demand is within capacity")
        });
        if let Some(limits) = &r.limits {
            out.push(super::limits::limits_condition(limits));
        }
    }
    out
}

fn scaling_active(r: &Report<'_>) -> DesiredCondition {
    let inactive = |reason: &str, message: String| {
        DesiredCondition::new(condition::SCALING_ACTIVE, false, reason, message)
    };
    if let Some(p) = &r.problem {
        return inactive(&p.reason, p.message.clone());
    }
    if let Some(b) = r.blocked {
        return inactive("ScalingBlocked", b.to_string());
    }
    if r.paused {
        return inactive(
            "Paused",
            "the inflight.dev/paused annotation holds the replicas".into(),
        );
    }
    if r.dry_run {
        return inactive(
            "DryRun",
            "mode is DryRun: decisions are recorded, never applied".into(),
        );
    }
    if let Some(e) = r.scale_error {
        return inactive("ScaleFailed", e.to_string());
    }
    match r.decision {
        Some(d) if d.reason == Reason::Fallback => DesiredCondition::new(
            condition::SCALING_ACTIVE,
            true,
            "Fallback",
            format!(
                "metrics keep failing; holding the fallback of {} replicas",
                d.replicas
            ),
        ),
        Some(d) if d.reason == Reason::MetricsInvalid => inactive(
            "MetricsUnavailable",
            format!("holding {} replicas until the metrics are back", d.replicas),
        ),
        _ => DesiredCondition::new(
            condition::SCALING_ACTIVE,
            true,
            "Active",
            format!("scaling {} on concurrency", r.target),
        ),
    }
}

/// The numbers of a decision, for `status.lastDecision`.
pub fn decision_summary(d: &Decision) -> DecisionSummary {
    DecisionSummary {
        reason: d.reason.as_str().to_string(),
        in_flight: d.details.in_flight.map(round2),
        queue_depth: d.details.queue_depth.map(round2),
        arrival_rate: d.details.arrival_rate.map(round2),
        demand: d.details.demand.map(round2),
        smoothed: d.details.smoothed.map(round2),
        forecast: d.details.forecast.map(round2),
        seasonal_forecast: d.details.seasonal_forecast.map(round2),
        recommended: Some(d.details.recommended),
        limited_by: d.details.limited_by.map(|l| l.as_str().to_string()),
    }
}

/// Status numbers carry two decimals: more is noise to a reader, and every
/// digit that moves is a status change.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn direction(d: Direction) -> ScaleDirection {
    match d {
        Direction::Up => ScaleDirection::Up,
        Direction::Down => ScaleDirection::Down,
    }
}

/// The new status. What this tick did not learn (no decision, unknown
/// target) is kept from `previous`.
pub fn build_status(
    previous: &ConcurrencyPolicyStatus,
    r: &Report<'_>,
    now: &Time,
) -> ConcurrencyPolicyStatus {
    let conditions = merge_conditions(
        &previous.conditions,
        &desired_conditions(r),
        r.generation,
        now,
    );
    let (last_scale_time, last_scale_direction) = match &r.last_scale {
        Some((at, d)) => (Some(at.clone()), Some(direction(*d))),
        None => (
            previous.last_scale_time.clone(),
            previous.last_scale_direction,
        ),
    };
    ConcurrencyPolicyStatus {
        observed_generation: r.generation,
        conditions,
        current_replicas: r.current_replicas.or(previous.current_replicas),
        desired_replicas: r.decision.map(|d| d.replicas).or(previous.desired_replicas),
        last_scale_time,
        last_scale_direction,
        last_decision: r
            .decision
            .map(decision_summary)
            .or_else(|| previous.last_decision.clone()),
        lead_time_seconds: r
            .lead_time
            .map(|s| (s * 10.0).round() / 10.0)
            .or(previous.lead_time_seconds),
        // A full tick knows the limits (none when the spec has none).
        limits: if r.decision.is_some() {
            r.limits.clone()
        } else {
            previous.limits.clone()
        },
    }
}

/// The last scale recorded in a status, as engine time (unix seconds).
pub fn last_scale_from(status: &ConcurrencyPolicyStatus) -> Option<(f64, Direction)> {
    let at = status.last_scale_time.as_ref()?;
    let direction = match status.last_scale_direction? {
        ScaleDirection::Up => Direction::Up,
        ScaleDirection::Down => Direction::Down,
    };
    Some((at.0.as_millisecond() as f64 / 1000.0, direction))
}

/// Server-side apply of the whole status, as field manager `inflight`.
pub async fn write_status(
    api: &Api<ConcurrencyPolicy>,
    name: &str,
    status: &ConcurrencyPolicyStatus,
) -> Result<(), kube::Error> {
    let patch = json!({
        "apiVersion": ConcurrencyPolicy::api_version(&()),
        "kind": ConcurrencyPolicy::kind(&()),
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::conditions::{StatusChange, compare_status};
    use crate::scaling::{Details, Limit};
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn decision(replicas: u32, reason: Reason, in_flight: f64) -> Decision {
        Decision {
            replicas,
            reason,
            details: Details {
                in_flight: Some(in_flight),
                per_pod_target: 8.0,
                recommended: replicas,
                ..Details::default()
            },
        }
    }

    fn types(conditions: &[DesiredCondition]) -> Vec<(&str, bool, &str)> {
        conditions
            .iter()
            .map(|c| (c.type_, c.status, c.reason.as_str()))
            .collect()
    }

    #[test]
    fn a_healthy_tick_sets_all_five_conditions() {
        let d = decision(5, Reason::ScaleUp, 40.0);
        let r = Report {
            target: "Deployment/web".into(),
            decision: Some(&d),
            ..Report::default()
        };
        assert_eq!(
            types(&desired_conditions(&r)),
            vec![
                ("Ready", true, "Active"),
                ("MetricsAvailable", true, "MetricsRead"),
                ("ScalingActive", true, "Active"),
                ("ScalingLimited", false, "WithinLimits"),
                ("Panic", false, "Stable"),
            ]
        );
    }

    #[test]
    fn a_problem_sets_ready_and_scaling_active_false() {
        let r = Report {
            problem: Some(Problem {
                reason: "TargetNotFound".into(),
                message: "Deployment/web not found".into(),
            }),
            ..Report::default()
        };
        assert_eq!(
            types(&desired_conditions(&r)),
            vec![
                ("Ready", false, "TargetNotFound"),
                ("ScalingActive", false, "TargetNotFound")
            ]
        );
    }

    #[test]
    fn blocked_paused_and_dry_run_say_why_scaling_is_inactive() {
        let d = decision(5, Reason::Steady, 40.0);
        let blocker = Blocker::Hpa { name: "web".into() };
        let blocked = Report {
            blocked: Some(&blocker),
            decision: Some(&d),
            ..Report::default()
        };
        let c = desired_conditions(&blocked);
        assert_eq!((c[0].status, c[0].reason.as_str()), (false, "HPAConflict"));
        assert_eq!(c[2].reason, "ScalingBlocked");
        let paused = Report {
            paused: true,
            decision: Some(&d),
            ..Report::default()
        };
        assert_eq!(desired_conditions(&paused)[2].reason, "Paused");
        let dry = Report {
            dry_run: true,
            decision: Some(&d),
            ..Report::default()
        };
        let c = desired_conditions(&dry);
        assert!(c[0].status);
        assert_eq!((c[2].status, c[2].reason.as_str()), (false, "DryRun"));
    }

    #[test]
    fn limits_and_panic_are_reported() {
        let mut d = decision(50, Reason::Panic, 900.0);
        d.details.limited_by = Some(Limit::MaxReplicas);
        d.details.recommended = 113;
        d.details.in_panic = true;
        let r = Report {
            decision: Some(&d),
            ..Report::default()
        };
        let c = desired_conditions(&r);
        assert_eq!((c[3].status, c[3].reason.as_str()), (true, "MaxReplicas"));
        assert_eq!(
            c[3].message,
            "demand asked for 113 replicas; MaxReplicas allowed 50"
        );
        assert_eq!((c[4].status, c[4].reason.as_str()), (true, "PanicMode"));
    }

    #[test]
    fn metric_failures_hold_and_say_so() {
        let mut d = decision(4, Reason::MetricsInvalid, 0.0);
        d.details.consecutive_failures = 2;
        let r = Report {
            decision: Some(&d),
            metrics_error: Some("the query timed out after 5s"),
            ..Report::default()
        };
        let c = desired_conditions(&r);
        assert_eq!(
            (c[1].status, c[1].reason.as_str()),
            (false, "MetricsUnavailable")
        );
        assert!(c[1].message.contains("2 consecutive failures"));
        assert_eq!(
            (c[2].status, c[2].reason.as_str()),
            (false, "MetricsUnavailable")
        );
    }

    #[test]
    fn status_keeps_what_the_tick_did_not_learn() {
        let d = decision(6, Reason::ScaleUp, 45.0);
        let first = build_status(
            &ConcurrencyPolicyStatus::default(),
            &Report {
                generation: Some(1),
                decision: Some(&d),
                current_replicas: Some(6),
                last_scale: Some((at(100), Direction::Up)),
                lead_time: Some(21.234),
                ..Report::default()
            },
            &at(100),
        );
        assert_eq!(first.desired_replicas, Some(6));
        assert_eq!(first.last_scale_direction, Some(ScaleDirection::Up));
        assert_eq!(first.lead_time_seconds, Some(21.2));
        assert_eq!(first.last_decision.as_ref().unwrap().in_flight, Some(45.0));
        let problem = build_status(
            &first,
            &Report {
                generation: Some(2),
                problem: Some(Problem {
                    reason: "InvalidSpec".into(),
                    message: "bad".into(),
                }),
                ..Report::default()
            },
            &at(200),
        );
        assert_eq!(problem.desired_replicas, Some(6));
        assert_eq!(problem.last_scale_time, Some(at(100)));
        assert_eq!(problem.lead_time_seconds, Some(21.2));
        assert_eq!(problem.observed_generation, Some(2));
    }

    #[test]
    fn the_decision_summary_shows_the_arrival_rate_when_present() {
        let mut d = decision(15, Reason::Panic, 20.0);
        d.details.queue_depth = Some(200.0);
        d.details.arrival_rate = Some(1160.123);
        let summary = decision_summary(&d);
        assert_eq!(summary.arrival_rate, Some(1160.12));
        assert_eq!(summary.queue_depth, Some(200.0));
        assert_eq!(
            decision_summary(&decision(2, Reason::Steady, 10.0)).arrival_rate,
            None
        );
    }

    #[test]
    fn a_steady_tick_after_another_needs_no_write() {
        let steady = |d: &Decision, previous: &ConcurrencyPolicyStatus, now: i64| {
            let r = Report {
                generation: Some(1),
                decision: Some(d),
                current_replicas: Some(5),
                ..Report::default()
            };
            build_status(previous, &r, &at(now))
        };
        let s1 = steady(
            &decision(5, Reason::Steady, 40.0),
            &ConcurrencyPolicyStatus::default(),
            100,
        );
        let s2 = steady(&decision(5, Reason::Steady, 40.0), &s1, 105);
        assert_eq!(compare_status(&s1, &s2), StatusChange::None);
        let s3 = steady(&decision(5, Reason::Steady, 41.3), &s2, 110);
        assert_eq!(compare_status(&s2, &s3), StatusChange::Numbers);
        let s4 = steady(&decision(7, Reason::ScaleUp, 55.0), &s3, 115);
        assert_eq!(compare_status(&s3, &s4), StatusChange::Significant);
    }

    #[test]
    fn limits_are_reported_with_their_condition() {
        use crate::api::v1alpha1::{LimitsStatus, SinkStatus};
        let d = decision(3, Reason::ScaleUp, 15.0);
        let limits = LimitsStatus {
            per_pod: 5,
            total: 15,
            pods: 3,
            adaptive: None,
            sinks: vec![SinkStatus {
                sink: "ConfigMap web key max".into(),
                value: None,
                state: "NotFound".into(),
                message: Some("ConfigMap/web not found in namespace shop".into()),
            }],
        };
        let r = Report {
            generation: Some(1),
            decision: Some(&d),
            limits: Some(limits.clone()),
            ..Report::default()
        };
        let c = desired_conditions(&r);
        assert_eq!(c.len(), 6);
        assert_eq!(
            (c[5].type_, c[5].status, c[5].reason.as_str()),
            ("LimitsSynced", false, "SinkNotFound")
        );
        let with_limits = build_status(&ConcurrencyPolicyStatus::default(), &r, &at(100));
        assert_eq!(with_limits.limits, Some(limits.clone()));
        // A tick without a decision keeps them; a full tick without
        // spec.limits drops them.
        let problem = Report {
            problem: Some(Problem {
                reason: "TargetNotFound".into(),
                message: "gone".into(),
            }),
            ..Report::default()
        };
        assert_eq!(
            build_status(&with_limits, &problem, &at(200)).limits,
            Some(limits)
        );
        let no_limits = Report {
            decision: Some(&d),
            ..Report::default()
        };
        assert_eq!(
            build_status(&with_limits, &no_limits, &at(300)).limits,
            None
        );
    }

    #[test]
    fn last_scale_round_trips_through_status() {
        let status = ConcurrencyPolicyStatus {
            last_scale_time: Some(at(1_700_000_000)),
            last_scale_direction: Some(ScaleDirection::Down),
            ..ConcurrencyPolicyStatus::default()
        };
        assert_eq!(
            last_scale_from(&status),
            Some((1_700_000_000.0, Direction::Down))
        );
        assert_eq!(last_scale_from(&ConcurrencyPolicyStatus::default()), None);
    }
}
