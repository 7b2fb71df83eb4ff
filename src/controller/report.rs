//! Step 6 of a tick: events on transitions, the operator's metrics, and the
//! status when it changed enough; plus the reports of policies that cannot be
//! evaluated (a spec the engine refuses, a missing target, an object that
//! does not even deserialize).
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::core::error_boundary::InvalidObject;
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{debug, warn};

use super::conditions::{DesiredCondition, compare_status, merge_conditions, status_needs_write};
use super::conflict::Blocker;
use super::context::{PolicyState, Scope};
use super::error::Error;
use super::events::{DecisionFacts, EventMemory, PolicyEvent, TickFacts, transitions};
use super::mapper::GuardedPolicy;
use super::reconcile::{Outcome, scale_target};
use super::status::{HEARTBEAT_SECS, Problem, Report, build_status, write_status};
use crate::actuate::scale::{ScaleTarget, TargetState};
use crate::api::v1alpha1::{ConcurrencyPolicy, ConcurrencyPolicyStatus, condition};
use crate::scaling::Decision;
use crate::telemetry::DecisionRecord;

pub(super) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A status time. The API server keeps whole seconds (RFC 3339 without a
/// fraction), so anything finer would differ from what we read back and make
/// every tick after a scale look like a change.
pub(super) fn time_at(unix_secs: f64) -> Time {
    Time(Timestamp::from_second(unix_secs.floor() as i64).unwrap_or_else(|_| Timestamp::now()))
}

/// What one full tick saw, decided and did.
pub(super) struct Tick {
    pub(super) target: ScaleTarget,
    pub(super) target_state: TargetState,
    pub(super) decision: Decision,
    pub(super) blocker: Option<Blocker>,
    pub(super) metrics_error: Option<String>,
    pub(super) outcome: Outcome,
}

/// Events on transitions, the operator's metrics, and the status (when it
/// changed enough).
pub(super) async fn report_tick(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    tick: &Tick,
) -> Result<(), Error> {
    let Tick {
        target,
        target_state,
        decision,
        blocker,
        metrics_error,
        outcome,
    } = tick;
    let facts = TickFacts {
        invalid_spec: None,
        blocked: blocker.as_ref().map(ToString::to_string),
        decision: Some(DecisionFacts {
            current: target_state.spec_replicas,
            ready: target_state.ready_replicas,
            desired: decision.replicas,
            reason: decision.reason,
            details: decision.details.clone(),
            metrics_error: metrics_error.clone(),
            scaled: outcome.applied || outcome.would_scale,
            dry_run: outcome.dry_run,
        }),
    };
    publish(policy, scope, &mut state.events, &facts).await;
    let policy_name = policy.name_any();
    scope.shared.metrics.record_decision(&DecisionRecord {
        namespace: &target.namespace,
        policy: &policy_name,
        reason: decision.reason.as_str(),
        desired_replicas: decision.replicas,
        current_replicas: outcome.current,
        demand: decision.details.demand,
        in_panic: decision.details.in_panic,
    });
    debug!(
        reason = %decision.reason,
        current = target_state.spec_replicas,
        desired = decision.replicas,
        ready = target_state.ready_replicas,
        in_flight = ?decision.details.in_flight,
        queue_depth = ?decision.details.queue_depth,
        arrival_rate = ?decision.details.arrival_rate,
        smoothed = ?decision.details.smoothed,
        forecast = ?decision.details.forecast,
        "decided"
    );
    let scale_error = outcome.error.as_ref().map(ToString::to_string);
    let report = Report {
        generation: policy.metadata.generation,
        target: target.display(),
        problem: None,
        blocked: blocker.as_ref(),
        paused: outcome.paused,
        dry_run: outcome.dry_run,
        decision: Some(decision),
        current_replicas: Some(outcome.current),
        metrics_error: metrics_error.as_deref(),
        scale_error: scale_error.as_deref(),
        last_scale: state.last_scale.map(|(at, d)| (time_at(at), d)),
        lead_time: state.lead_time.learned(),
        limits: state.limits.status(),
    };
    update_status(policy, scope, state, &report).await
}

/// Publish this tick's transitions as events. A failed publish is logged,
/// never fatal: events are for people, the status is the record.
async fn publish(
    obj: &impl Resource<DynamicType = ()>,
    scope: &Scope,
    memory: &mut EventMemory,
    facts: &TickFacts,
) {
    let events = transitions(memory, facts);
    if events.is_empty() {
        return;
    }
    let reference = obj.object_ref(&());
    for event in events {
        publish_one(scope, &event, &reference).await;
    }
}

async fn publish_one(
    scope: &Scope,
    event: &PolicyEvent,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
) {
    if let Err(e) = scope
        .shared
        .recorder
        .publish(&event.to_event(), reference)
        .await
    {
        warn!(error = %e, reason = event.reason(), "cannot publish an event");
    }
}

/// The policy cannot be evaluated: say why in status (and, for a user
/// error in the spec, in a Warning event).
pub(super) async fn report_problem(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    problem: Problem,
    invalid_spec: bool,
) -> Result<(), Error> {
    warn!(reason = %problem.reason, message = %problem.message, "policy cannot be evaluated");
    let facts = TickFacts {
        invalid_spec: invalid_spec.then(|| problem.message.clone()),
        ..TickFacts::default()
    };
    publish(policy, scope, &mut state.events, &facts).await;
    let report = Report {
        generation: policy.metadata.generation,
        target: scale_target(policy).display(),
        problem: Some(problem),
        last_scale: state.last_scale.map(|(at, d)| (time_at(at), d)),
        lead_time: state.lead_time.learned(),
        ..Report::default()
    };
    update_status(policy, scope, state, &report).await
}

/// Write the status when it changed enough, or at the heartbeat.
async fn update_status(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    report: &Report<'_>,
) -> Result<(), Error> {
    let previous = policy.status.clone().unwrap_or_default();
    let status = build_status(&previous, report, &time_at(unix_now()));
    let change = compare_status(&previous, &status);
    let since = state.last_status_write.map(|t| t.elapsed().as_secs_f64());
    if !status_needs_write(change, since, HEARTBEAT_SECS) {
        return Ok(());
    }
    let namespace = policy.namespace().unwrap_or_default();
    let api: Api<ConcurrencyPolicy> = Api::namespaced(scope.shared.client.clone(), &namespace);
    write_status(&api, &policy.name_any(), &status)
        .await
        .map_err(|source| Error::Status {
            policy: format!("{namespace}/{}", policy.name_any()),
            source,
        })?;
    state.last_status_write = Some(Instant::now());
    debug!(?change, "status written");
    Ok(())
}

/// A policy that does not even deserialize: a Warning event and a Ready
/// condition saying why (once per distinct error), then wait for an edit.
pub(super) async fn reconcile_malformed(
    obj: &GuardedPolicy,
    invalid: &InvalidObject,
    scope: &Scope,
) -> Result<Action, Error> {
    let message = format!(
        "the object does not match the ConcurrencyPolicy schema: {}",
        invalid.error
    );
    warn!(%message, "malformed policy");
    let mut memory = scope.shared.malformed_memory(obj);
    let facts = TickFacts {
        invalid_spec: Some(message.clone()),
        ..TickFacts::default()
    };
    let events = transitions(&mut memory, &facts);
    scope.shared.remember_malformed(obj, memory);
    if events.is_empty() {
        return Ok(Action::await_change());
    }
    let reference = obj.object_ref(&());
    for event in &events {
        publish_one(scope, event, &reference).await;
    }
    let conditions = merge_conditions(
        &[],
        &[DesiredCondition::new(
            condition::READY,
            false,
            "InvalidSpec",
            &message,
        )],
        obj.meta().generation,
        &time_at(unix_now()),
    );
    let status = ConcurrencyPolicyStatus {
        observed_generation: obj.meta().generation,
        conditions,
        ..Default::default()
    };
    let namespace = obj.namespace().unwrap_or_default();
    let api: Api<ConcurrencyPolicy> = Api::namespaced(scope.shared.client.clone(), &namespace);
    write_status(&api, &obj.name_any(), &status)
        .await
        .map_err(|source| Error::Status {
            policy: format!("{namespace}/{}", obj.name_any()),
            source,
        })?;
    Ok(Action::await_change())
}
