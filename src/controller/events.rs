//! Kubernetes Events: what to publish, and when. Events are published on
//! transitions (a scale, panic starting or ending, metrics going away, a
//! block appearing), never once per tick: each policy keeps an
//! [`EventMemory`] and [`transitions`] compares it with the tick's facts.
//! Publishing goes through the process's one shared `Recorder`, which
//! aggregates repeats into event series.
use kube::runtime::events::{Event, EventType};

use crate::scaling::{Details, Reason};

/// Event reasons (the `Reason` column of `kubectl describe`).
pub mod reason {
    pub const SCALED_UP: &str = "ScaledUp";
    pub const SCALED_DOWN: &str = "ScaledDown";
    pub const PANIC_STARTED: &str = "PanicStarted";
    pub const PANIC_ENDED: &str = "PanicEnded";
    pub const METRICS_UNAVAILABLE: &str = "MetricsUnavailable";
    pub const FALLBACK_ACTIVATED: &str = "FallbackActivated";
    pub const SCALING_BLOCKED: &str = "ScalingBlocked";
    pub const INVALID_SPEC: &str = "InvalidSpec";
    pub const LIMITS_UPDATED: &str = "LimitsUpdated";
    pub const LIMITS_SINK_FAILED: &str = "LimitsSinkFailed";
}

/// Something worth telling the user about one policy.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicyEvent {
    /// The target was scaled (or, in DryRun, would have been).
    Scaled {
        from: u32,
        to: u32,
        details: Details,
        reason: Reason,
        dry_run: bool,
    },
    PanicStarted {
        details: Details,
        /// Ready pods: the capacity panic compares demand with.
        ready: u32,
    },
    PanicEnded,
    MetricsUnavailable {
        message: String,
    },
    FallbackActivated {
        replicas: u32,
        failures: u32,
    },
    ScalingBlocked {
        message: String,
    },
    InvalidSpec {
        message: String,
    },
    /// The service's concurrency limits changed (and were written to the
    /// sinks that took them).
    LimitsUpdated {
        /// (old, new) limit of one pod; old is `None` on the first tick.
        per_pod: (Option<u32>, u32),
        /// (old, new) perPod x pods.
        total: (Option<u32>, u32),
        pods: u32,
        /// The sinks written, described.
        sinks: Vec<String>,
    },
    /// A limit sink could not be written (announced once per distinct
    /// failure).
    LimitsSinkFailed {
        /// Position in spec.limits.sinks.
        index: usize,
        sink: String,
        /// NotFound, Forbidden, Invalid or Failed.
        state: String,
        message: String,
    },
}

impl PolicyEvent {
    pub fn reason(&self) -> &'static str {
        match self {
            PolicyEvent::Scaled { from, to, .. } if to >= from => reason::SCALED_UP,
            PolicyEvent::Scaled { .. } => reason::SCALED_DOWN,
            PolicyEvent::PanicStarted { .. } => reason::PANIC_STARTED,
            PolicyEvent::PanicEnded => reason::PANIC_ENDED,
            PolicyEvent::MetricsUnavailable { .. } => reason::METRICS_UNAVAILABLE,
            PolicyEvent::FallbackActivated { .. } => reason::FALLBACK_ACTIVATED,
            PolicyEvent::ScalingBlocked { .. } => reason::SCALING_BLOCKED,
            PolicyEvent::InvalidSpec { .. } => reason::INVALID_SPEC,
            PolicyEvent::LimitsUpdated { .. } => reason::LIMITS_UPDATED,
            PolicyEvent::LimitsSinkFailed { .. } => reason::LIMITS_SINK_FAILED,
        }
    }

    pub fn event_type(&self) -> EventType {
        match self {
            PolicyEvent::Scaled { .. }
            | PolicyEvent::PanicStarted { .. }
            | PolicyEvent::PanicEnded
            | PolicyEvent::LimitsUpdated { .. } => EventType::Normal,
            PolicyEvent::MetricsUnavailable { .. }
            | PolicyEvent::FallbackActivated { .. }
            | PolicyEvent::ScalingBlocked { .. }
            | PolicyEvent::InvalidSpec { .. }
            | PolicyEvent::LimitsSinkFailed { .. } => EventType::Warning,
        }
    }

    /// The event's `action`. The Recorder folds repeats with the same
    /// reason and action into one series and keeps the first note; scale
    /// events therefore carry the replica change in the action, so a series
    /// only ever groups identical moves and the note stays true.
    pub fn action(&self) -> String {
        match self {
            PolicyEvent::Scaled { from, to, .. } => format!("Scale{from}To{to}"),
            PolicyEvent::PanicStarted { .. } | PolicyEvent::PanicEnded => "Panic".into(),
            PolicyEvent::MetricsUnavailable { .. } | PolicyEvent::FallbackActivated { .. } => {
                "ReadMetrics".into()
            }
            PolicyEvent::ScalingBlocked { .. } => "Scale".into(),
            PolicyEvent::InvalidSpec { .. } => "Validate".into(),
            // Like scale events, the values are in the action, so a series
            // only groups identical updates; a sink failure is keyed by sink
            // and state.
            PolicyEvent::LimitsUpdated { per_pod, total, .. } => {
                let old = |v: Option<u32>| v.map_or_else(|| "New".to_string(), |v| v.to_string());
                format!(
                    "PerPod{}To{}Total{}To{}",
                    old(per_pod.0),
                    per_pod.1,
                    old(total.0),
                    total.1
                )
            }
            PolicyEvent::LimitsSinkFailed { index, state, .. } => {
                format!("WriteSink{index}{state}")
            }
        }
    }

    /// The human-readable message.
    pub fn note(&self) -> String {
        match self {
            PolicyEvent::Scaled {
                from,
                to,
                details,
                reason,
                dry_run,
            } => {
                let note = scale_note(*from, *to, details, *reason);
                if *dry_run {
                    format!("DryRun, would scale {note}")
                } else {
                    note
                }
            }
            PolicyEvent::PanicStarted { details, ready } => match details.panic_demand {
                Some(demand) => format!(
                    "{demand:.1} {} over the panic window against capacity for {:.1} ({ready} ready pods x {:.1}); scaling on the short window, no scale-down",
                    // With arrivals, a full fleet's demand is theirs, not
                    // what is in flight.
                    match details.arrival_rate {
                        Some(a) => format!("demand ({a:.1} req/s arriving)"),
                        None => "in flight".into(),
                    },
                    f64::from(*ready) * details.per_pod_target,
                    details.per_pod_target
                ),
                None => "demand burst; scaling on the short window, no scale-down".into(),
            },
            PolicyEvent::PanicEnded => "demand back under the panic threshold".into(),
            PolicyEvent::MetricsUnavailable { message } => {
                format!("{message}; holding replicas (never scaling down on missing data)")
            }
            PolicyEvent::FallbackActivated { replicas, failures } => format!(
                "metrics failed {failures} times in a row; going to fallback replicas {replicas}"
            ),
            PolicyEvent::ScalingBlocked { message } => message.clone(),
            PolicyEvent::InvalidSpec { message } => message.clone(),
            PolicyEvent::LimitsUpdated {
                per_pod,
                total,
                pods,
                sinks,
            } => limits_note(*per_pod, *total, *pods, sinks),
            PolicyEvent::LimitsSinkFailed {
                sink,
                state,
                message,
                ..
            } => format!("{sink}: {state}: {message}; the limit there is stale, scaling goes on"),
        }
    }

    /// The kube-runtime event to publish.
    pub fn to_event(&self) -> Event {
        Event {
            type_: self.event_type(),
            reason: self.reason().into(),
            note: Some(truncate(self.note(), MAX_NOTE_BYTES)),
            action: self.action(),
            secondary: None,
        }
    }
}

/// The API server rejects event notes over 1 kB.
const MAX_NOTE_BYTES: usize = 1024;

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max.saturating_sub(3);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

/// The note of a scale event, citing the numbers behind it:
/// `4 -> 11: 87.0 in flight + 0 queued over 8.0 per pod`, followed, when
/// they apply, by what else shaped it: `(panic)`, `(forecast 95.2)` (with
/// `seasonal 95.2` when the seasonal forecast was used), `(limited by
/// MaxReplicas)`, `(fallback after 3 failed reads)`.
pub fn scale_note(from: u32, to: u32, details: &Details, reason: Reason) -> String {
    let mut note = format!("{from} -> {to}");
    if let Some(in_flight) = details.in_flight {
        note.push_str(&format!(": {in_flight:.1} in flight"));
        if let Some(queued) = details.queue_depth {
            note.push_str(&format!(" + {queued:.0} queued"));
        }
        if let Some(arriving) = details.arrival_rate {
            note.push_str(&format!(", {arriving:.1} req/s arriving"));
        }
        note.push_str(&format!(" over {:.1} per pod", details.per_pod_target));
    }
    let mut extras = Vec::new();
    if details.in_panic {
        extras.push("panic".to_string());
    }
    if let (Some(forecast), true) = (details.forecast, to > from) {
        extras.push(format!("forecast {forecast:.1}"));
        if let Some(seasonal) = details.seasonal_forecast {
            extras.push(format!("seasonal {seasonal:.1}"));
        }
    }
    if let Some(drain) = details.drain.filter(|d| *d > 0.0) {
        extras.push(format!("+{drain:.1} to drain the backlog"));
    }
    if let Some(limit) = details.limited_by {
        extras.push(format!("limited by {limit}"));
    }
    if reason == Reason::Fallback {
        extras.push(format!(
            "fallback after {} failed reads",
            details.consecutive_failures
        ));
    }
    if !extras.is_empty() {
        note.push_str(&format!(" ({})", extras.join(", ")));
    }
    note
}

/// The note of a LimitsUpdated event:
/// `perPod 10 -> 12, total 30 -> 36 (3 pods); written to ConfigMap web key max`.
pub fn limits_note(
    per_pod: (Option<u32>, u32),
    total: (Option<u32>, u32),
    pods: u32,
    sinks: &[String],
) -> String {
    let change = |(old, new): (Option<u32>, u32)| match old {
        Some(old) if old != new => format!("{old} -> {new}"),
        _ => new.to_string(),
    };
    let pods_word = if pods == 1 { "pod" } else { "pods" };
    let mut note = format!(
        "perPod {}, total {} ({pods} {pods_word})",
        change(per_pod),
        change(total)
    );
    if !sinks.is_empty() {
        note.push_str(&format!("; written to {}", sinks.join(", ")));
    }
    note
}

/// What the controller last told the user about one policy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EventMemory {
    pub in_panic: bool,
    /// `None` until the first read.
    pub metrics_ok: Option<bool>,
    pub in_fallback: bool,
    pub blocked: Option<String>,
    pub invalid_spec: Option<String>,
    /// In DryRun: the last replicas a "would scale" event named.
    pub dry_run_desired: Option<u32>,
}

/// The facts of one tick that events are about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TickFacts {
    /// The spec could not be turned into an engine config.
    pub invalid_spec: Option<String>,
    /// Another autoscaler already targets the object.
    pub blocked: Option<String>,
    /// Set when the engine ran this tick.
    pub decision: Option<DecisionFacts>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DecisionFacts {
    pub current: u32,
    /// Ready pods of the target.
    pub ready: u32,
    pub desired: u32,
    pub reason: Reason,
    pub details: Details,
    /// Why the metrics could not be used, when they could not.
    pub metrics_error: Option<String>,
    /// The replicas were changed this tick (Enforce) or would have been
    /// (DryRun).
    pub scaled: bool,
    pub dry_run: bool,
}

/// Compare this tick's facts with what was last published, update the
/// memory, and return the events to publish now.
pub fn transitions(memory: &mut EventMemory, facts: &TickFacts) -> Vec<PolicyEvent> {
    let mut out = Vec::new();
    match &facts.invalid_spec {
        Some(message) if memory.invalid_spec.as_deref() != Some(message) => {
            out.push(PolicyEvent::InvalidSpec {
                message: message.clone(),
            });
        }
        _ => {}
    }
    memory.invalid_spec = facts.invalid_spec.clone();

    match &facts.blocked {
        Some(message) if memory.blocked.as_deref() != Some(message) => {
            out.push(PolicyEvent::ScalingBlocked {
                message: message.clone(),
            });
        }
        _ => {}
    }
    memory.blocked = facts.blocked.clone();

    let Some(decision) = &facts.decision else {
        return out;
    };

    let metrics_ok = decision.metrics_error.is_none();
    if let (false, Some(message)) = (metrics_ok, &decision.metrics_error)
        && memory.metrics_ok != Some(false)
    {
        out.push(PolicyEvent::MetricsUnavailable {
            message: message.clone(),
        });
    }
    memory.metrics_ok = Some(metrics_ok);

    let in_fallback = decision.reason == Reason::Fallback;
    if in_fallback && !memory.in_fallback {
        out.push(PolicyEvent::FallbackActivated {
            replicas: decision.desired,
            failures: decision.details.consecutive_failures,
        });
    }
    memory.in_fallback = in_fallback;

    let in_panic = decision.details.in_panic;
    if in_panic && !memory.in_panic {
        out.push(PolicyEvent::PanicStarted {
            details: decision.details.clone(),
            ready: decision.ready,
        });
    } else if !in_panic && memory.in_panic {
        out.push(PolicyEvent::PanicEnded);
    }
    memory.in_panic = in_panic;

    if decision.dry_run {
        // In DryRun the target never moves, so the same "would scale" holds
        // tick after tick: publish only when the would-be count changes.
        let would = decision.scaled.then_some(decision.desired);
        if let Some(to) = would
            && memory.dry_run_desired != Some(to)
        {
            out.push(scaled(decision));
        }
        memory.dry_run_desired = would;
    } else if decision.scaled {
        out.push(scaled(decision));
    }
    out
}

fn scaled(decision: &DecisionFacts) -> PolicyEvent {
    PolicyEvent::Scaled {
        from: decision.current,
        to: decision.desired,
        details: decision.details.clone(),
        reason: decision.reason,
        dry_run: decision.dry_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::Limit;

    fn details(in_flight: f64, queued: Option<f64>) -> Details {
        Details {
            in_flight: Some(in_flight),
            queue_depth: queued,
            per_pod_target: 8.0,
            ..Details::default()
        }
    }

    #[test]
    fn scale_note_cites_the_numbers() {
        assert_eq!(
            scale_note(4, 11, &details(87.0, Some(0.0)), Reason::ScaleUp),
            "4 -> 11: 87.0 in flight + 0 queued over 8.0 per pod"
        );
        assert_eq!(
            scale_note(10, 5, &details(33.25, None), Reason::ScaleDown),
            "10 -> 5: 33.2 in flight over 8.0 per pod"
        );
    }

    #[test]
    fn scale_note_names_what_shaped_the_decision() {
        let mut d = details(200.0, None);
        d.in_panic = true;
        d.forecast = Some(240.04);
        d.limited_by = Some(Limit::MaxReplicas);
        assert_eq!(
            scale_note(4, 20, &d, Reason::Panic),
            "4 -> 20: 200.0 in flight over 8.0 per pod (panic, forecast 240.0, limited by MaxReplicas)"
        );
        d.seasonal_forecast = Some(231.96);
        assert_eq!(
            scale_note(4, 20, &d, Reason::Panic),
            "4 -> 20: 200.0 in flight over 8.0 per pod (panic, forecast 240.0, seasonal 232.0, limited by MaxReplicas)"
        );
        let fallback = Details {
            consecutive_failures: 3,
            ..Details::default()
        };
        assert_eq!(
            scale_note(2, 6, &fallback, Reason::Fallback),
            "2 -> 6 (fallback after 3 failed reads)"
        );
    }

    #[test]
    fn event_reason_and_type_follow_the_direction() {
        let up = PolicyEvent::Scaled {
            from: 4,
            to: 11,
            details: details(87.0, Some(0.0)),
            reason: Reason::ScaleUp,
            dry_run: false,
        };
        let ev = up.to_event();
        assert_eq!(ev.reason, "ScaledUp");
        assert_eq!(ev.type_, EventType::Normal);
        assert_eq!(ev.action, "Scale4To11");
        assert_eq!(
            ev.note.as_deref(),
            Some("4 -> 11: 87.0 in flight + 0 queued over 8.0 per pod")
        );
        let down = PolicyEvent::Scaled {
            from: 11,
            to: 4,
            details: details(20.0, None),
            reason: Reason::ScaleDown,
            dry_run: true,
        };
        assert_eq!(down.reason(), "ScaledDown");
        assert!(down.note().starts_with("DryRun, would scale 11 -> 4"));
        let warn = PolicyEvent::ScalingBlocked {
            message: "x".into(),
        };
        assert_eq!(warn.event_type(), EventType::Warning);
    }

    #[test]
    fn panic_note_compares_demand_with_ready_capacity() {
        let mut d = details(200.5, None);
        d.panic_demand = Some(200.5);
        let ev = PolicyEvent::PanicStarted {
            details: d,
            ready: 10,
        };
        assert_eq!(
            ev.note(),
            "200.5 in flight over the panic window against capacity for 80.0 (10 ready pods x 8.0); scaling on the short window, no scale-down"
        );
        assert_eq!(ev.reason(), "PanicStarted");
    }

    #[test]
    fn notes_cite_the_arrival_rate_when_the_policy_has_one() {
        // 2 full pods (20 in flight, 200 queued) while 1160 req/s arrive:
        // at 100 ms each that is 116 in concurrency, 14.5 pods of 8.
        let mut d = details(20.0, Some(200.0));
        d.arrival_rate = Some(1160.04);
        assert_eq!(
            scale_note(2, 15, &d, Reason::ScaleUp),
            "2 -> 15: 20.0 in flight + 200 queued, 1160.0 req/s arriving over 8.0 per pod"
        );
        d.panic_demand = Some(116.0);
        let ev = PolicyEvent::PanicStarted {
            details: d,
            ready: 2,
        };
        assert_eq!(
            ev.note(),
            "116.0 demand (1160.0 req/s arriving) over the panic window against capacity for 16.0 (2 ready pods x 8.0); scaling on the short window, no scale-down"
        );
    }

    #[test]
    fn limit_events_cite_old_and_new_values() {
        let ev = PolicyEvent::LimitsUpdated {
            per_pod: (Some(10), 12),
            total: (Some(30), 36),
            pods: 3,
            sinks: vec!["ConfigMap web key max".into()],
        };
        assert_eq!(ev.reason(), "LimitsUpdated");
        assert_eq!(ev.event_type(), EventType::Normal);
        assert_eq!(ev.action(), "PerPod10To12Total30To36");
        assert_eq!(
            ev.note(),
            "perPod 10 -> 12, total 30 -> 36 (3 pods); written to ConfigMap web key max"
        );
        assert_eq!(
            limits_note((None, 5), (None, 5), 1, &[]),
            "perPod 5, total 5 (1 pod)"
        );
        // An unchanged value is named once.
        assert_eq!(
            limits_note((Some(5), 5), (Some(15), 5), 1, &[]),
            "perPod 5, total 15 -> 5 (1 pod)"
        );
        let first = PolicyEvent::LimitsUpdated {
            per_pod: (None, 5),
            total: (None, 5),
            pods: 1,
            sinks: vec![],
        };
        assert_eq!(first.action(), "PerPodNewTo5TotalNewTo5");
        let failed = PolicyEvent::LimitsSinkFailed {
            index: 1,
            sink: "ConfigMap web key max".into(),
            state: "NotFound".into(),
            message: "ConfigMap/web not found in namespace shop".into(),
        };
        assert_eq!(failed.event_type(), EventType::Warning);
        assert_eq!(failed.reason(), "LimitsSinkFailed");
        assert_eq!(failed.action(), "WriteSink1NotFound");
        assert!(
            failed
                .note()
                .starts_with("ConfigMap web key max: NotFound: ")
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let ev = PolicyEvent::InvalidSpec { message: long }.to_event();
        let note = ev.note.unwrap();
        assert!(note.len() <= MAX_NOTE_BYTES);
        assert!(note.ends_with("..."));
    }

    fn decision(current: u32, desired: u32, in_panic: bool, scaled: bool) -> DecisionFacts {
        let mut d = details(10.0, None);
        d.in_panic = in_panic;
        DecisionFacts {
            current,
            ready: current,
            desired,
            reason: if desired > current {
                Reason::ScaleUp
            } else {
                Reason::Steady
            },
            details: d,
            metrics_error: None,
            scaled,
            dry_run: false,
        }
    }

    fn reasons(events: &[PolicyEvent]) -> Vec<&'static str> {
        events.iter().map(PolicyEvent::reason).collect()
    }

    #[test]
    fn panic_is_announced_once_when_it_starts_and_once_when_it_ends() {
        let mut memory = EventMemory::default();
        let panicking = TickFacts {
            decision: Some(decision(4, 8, true, true)),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &panicking)),
            vec!["PanicStarted", "ScaledUp"]
        );
        let still = TickFacts {
            decision: Some(decision(8, 8, true, false)),
            ..TickFacts::default()
        };
        assert!(transitions(&mut memory, &still).is_empty());
        let calm = TickFacts {
            decision: Some(decision(8, 8, false, false)),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &calm)),
            vec!["PanicEnded"]
        );
    }

    #[test]
    fn warnings_are_not_repeated_every_tick() {
        let mut memory = EventMemory::default();
        let mut failing = decision(4, 4, false, false);
        failing.metrics_error = Some("query timed out".into());
        let facts = TickFacts {
            decision: Some(failing.clone()),
            blocked: Some("HorizontalPodAutoscaler web already targets Deployment/web".into()),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &facts)),
            vec!["ScalingBlocked", "MetricsUnavailable"]
        );
        assert!(transitions(&mut memory, &facts).is_empty());
        // Recovery, then a new failure: announced again.
        let ok = TickFacts {
            decision: Some(decision(4, 4, false, false)),
            ..TickFacts::default()
        };
        assert!(transitions(&mut memory, &ok).is_empty());
        let again = TickFacts {
            decision: Some(failing),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &again)),
            vec!["MetricsUnavailable"]
        );
    }

    #[test]
    fn invalid_spec_is_announced_per_distinct_message() {
        let mut memory = EventMemory::default();
        let bad = |m: &str| TickFacts {
            invalid_spec: Some(m.into()),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &bad("a"))),
            vec!["InvalidSpec"]
        );
        assert!(transitions(&mut memory, &bad("a")).is_empty());
        assert_eq!(
            reasons(&transitions(&mut memory, &bad("b"))),
            vec!["InvalidSpec"]
        );
    }

    #[test]
    fn fallback_is_announced_on_entry() {
        let mut memory = EventMemory::default();
        let mut d = decision(2, 6, false, true);
        d.reason = Reason::Fallback;
        d.metrics_error = Some("no data".into());
        d.details.consecutive_failures = 3;
        let facts = TickFacts {
            decision: Some(d),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &facts)),
            vec!["MetricsUnavailable", "FallbackActivated", "ScaledUp"]
        );
    }

    #[test]
    fn dry_run_announces_each_would_be_count_once() {
        let mut memory = EventMemory::default();
        let mut would = decision(4, 11, false, true);
        would.dry_run = true;
        let facts = TickFacts {
            decision: Some(would.clone()),
            ..TickFacts::default()
        };
        assert_eq!(reasons(&transitions(&mut memory, &facts)), vec!["ScaledUp"]);
        assert!(transitions(&mut memory, &facts).is_empty());
        would.desired = 12;
        let changed = TickFacts {
            decision: Some(would),
            ..TickFacts::default()
        };
        assert_eq!(
            reasons(&transitions(&mut memory, &changed)),
            vec!["ScaledUp"]
        );
    }
}
