//! One tick of one policy, as a pipeline:
//! 1. validate the spec into an engine config;
//! 2. load the target (replicas, ready pods) and learn lead time;
//! 3. observe the metrics in Prometheus;
//! 4. decide (the pure engine);
//! 5. act on `/scale`, unless blocked, paused or in DryRun, with the service's
//!    limit sinks lowered before a scale-down and following Ready pods after;
//! 6. report: events on transitions, operator metrics, status when changed.
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::runtime::controller::Action;
use tracing::{info, instrument, warn};

use super::conflict::{Blocker, PolicyClaim, TargetKey, find_blocker};
use super::context::{PolicyState, Scope, backoff};
use super::error::Error;
use super::limits;
use super::mapper::GuardedPolicy;
use super::observe::{ensure_engine, observe};
use super::report::{Tick, reconcile_malformed, report_problem, report_tick, unix_now};
use super::status::Problem;
use crate::actuate::scale::{ScaleError, ScaleTarget, TargetState};
use crate::api::v1alpha1::{ConcurrencyPolicy, Mode};
use crate::metrics::TemplateVars;
use crate::scaling::{Decision, Direction, Reason};

/// The annotation that holds a policy's target where it is.
pub const PAUSED_ANNOTATION: &str = "inflight.dev/paused";

/// A reconcile triggered sooner than this fraction of the sync period after
/// a full tick (by our own status write or scale, or a burst of target
/// updates during a rollout) only refreshes what it learned about the target
/// (ready pods, for the lead time); the engine and the Prometheus queries
/// keep their own pace.
const MIN_TICK_FRACTION: f64 = 0.5;

/// A spec the engine refuses waits for an edit (which triggers a reconcile
/// at once); this slow requeue only refreshes the status.
const INVALID_SPEC_REQUEUE: Duration = Duration::from_secs(300);

/// A target that does not exist (yet) is looked for again this often.
const MISSING_TARGET_REQUEUE: Duration = Duration::from_secs(30);

/// Entry point for the kube-runtime Controller.
#[instrument(skip(obj, scope), fields(policy = %obj.name_any(), namespace = %obj.namespace().unwrap_or_default()))]
pub async fn reconcile(obj: Arc<GuardedPolicy>, scope: Arc<Scope>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = match &obj.0 {
        Ok(policy) => reconcile_policy(policy, &scope).await,
        Err(invalid) => reconcile_malformed(&obj, invalid, &scope).await,
    };
    let label = match &result {
        Ok(_) => "ok",
        Err(e) => e.metric_label(),
    };
    let shared = &scope.shared;
    shared
        .metrics
        .observe_reconcile(label, started.elapsed().as_secs_f64());
    if result.is_ok() {
        shared.record_success(&obj.namespace().unwrap_or_default(), &obj.name_any());
    }
    result
}

/// What the Controller does after a failed reconcile: log, and retry with
/// a backoff that grows with consecutive failures.
pub fn error_policy(obj: Arc<GuardedPolicy>, error: &Error, scope: Arc<Scope>) -> Action {
    let namespace = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let failures = scope.shared.record_failure(&namespace, &name);
    let delay = backoff(failures, sync_period(&obj, scope.shared.sync_period));
    warn!(
        policy = %name,
        %namespace,
        error = %error,
        failures,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// The policy's tick: `spec.syncPeriod`, else the operator's default.
fn sync_period(obj: &GuardedPolicy, default: Duration) -> Duration {
    obj.0
        .as_ref()
        .map_or(default, |policy| sync_period_of(policy, default))
}

fn is_paused(policy: &ConcurrencyPolicy) -> bool {
    policy
        .annotations()
        .get(PAUSED_ANNOTATION)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

async fn reconcile_policy(policy: &ConcurrencyPolicy, scope: &Scope) -> Result<Action, Error> {
    let shared = &scope.shared;
    let state = shared.state_for(policy);
    let mut state = state.lock().await;
    let now = unix_now();
    let sync = sync_period_of(policy, shared.sync_period);

    // 1. Validate.
    let config = match policy.spec.engine_config(state.lead_time.learned()) {
        Ok(config) => config,
        Err(e) => {
            let problem = Problem {
                reason: "InvalidSpec".into(),
                message: e.to_string(),
            };
            report_problem(policy, scope, &mut state, problem, true).await?;
            return Ok(Action::requeue(INVALID_SPEC_REQUEUE));
        }
    };

    // 2. Load the target.
    let target = scale_target(policy);
    let target_state = match shared.scaler.read(&target).await {
        Ok(t) => t,
        Err(e) if e.is_users_fault() => {
            let not_found = matches!(e, ScaleError::TargetNotFound { .. });
            let problem = Problem {
                reason: e.reason().into(),
                message: e.to_string(),
            };
            report_problem(policy, scope, &mut state, problem, !not_found).await?;
            return Ok(Action::requeue(MISSING_TARGET_REQUEUE.min(sync * 6)));
        }
        Err(e) => return Err(e.into()),
    };
    if let Some(learned) = state
        .lead_time
        .observe_ready(target_state.ready_replicas, now)
    {
        info!(lead_time_seconds = learned, "learned pod lead time");
    }
    if let Some(wait) = too_soon(&state, policy.metadata.generation, now, sync) {
        limits::follow_ready(policy, scope, &mut state, &target, &target_state, now).await;
        return Ok(Action::requeue(wait));
    }

    // 3. Observe.
    let vars = TemplateVars::new(
        policy.namespace().unwrap_or_default(),
        target.name.clone(),
        policy.name_any(),
    );
    let prometheus = shared
        .sources
        .client_for(&target.namespace, policy.spec.metrics.prometheus.as_ref())
        .await
        .map_err(|e| e.to_string());
    let config = limits::follow_limit(&mut state, policy, config);
    ensure_engine(
        &mut state,
        policy,
        &config,
        prometheus.as_ref().ok(),
        &vars,
        &target_state,
        sync,
        now,
    )
    .await;
    let (observation, read_error) = observe(
        scope,
        prometheus.as_ref(),
        &policy.spec,
        &vars,
        &target_state,
    )
    .await;

    // 4. Decide.
    let Some(engine) = state.engine.as_mut() else {
        // ensure_engine always leaves one; kept total rather than panicking.
        return Ok(Action::requeue(sync));
    };
    let before = engine.clone();
    let decision = engine.step(&observation, now);
    let metrics_error = read_error.or_else(|| {
        matches!(decision.reason, Reason::MetricsInvalid | Reason::Fallback)
            .then(|| "the samples are stale or invalid".to_string())
    });

    // 5. Act: a scale-down lowers the limit sinks first.
    let blocker = find_conflict(policy, scope);
    let will_scale = blocker.is_none() && !is_paused(policy);
    limits::before_scale(
        policy,
        scope,
        &mut state,
        &target,
        &target_state,
        decision.replicas,
        will_scale,
        now,
    )
    .await;
    let outcome = act(
        policy,
        scope,
        &mut state,
        &target,
        &target_state,
        &decision,
        blocker.as_ref(),
        now,
    )
    .await;
    if !outcome.applied && decision.replicas != target_state.spec_replicas {
        // The engine believes it scaled; it did not. Rewind it and feed the
        // observation as history, so cooldowns and step periods do not start
        // from a scale that never happened.
        let mut rewound = before;
        rewound.warm_up(&[(now, observation)]);
        state.engine = Some(rewound);
    }
    // 5b. Limits: the adaptive limit learns from this tick's latency; the
    // sinks follow the Ready pods.
    limits::after_act(
        policy,
        scope,
        &mut state,
        prometheus.as_ref().ok(),
        &vars,
        &target,
        &target_state,
        outcome.current,
        decision.details.in_flight,
        now,
    )
    .await;
    state.last_tick = Some(now);
    state.last_generation = policy.metadata.generation;

    // 6. Report.
    let tick = Tick {
        target,
        target_state,
        decision,
        blocker,
        metrics_error,
        outcome,
    };
    report_tick(policy, scope, &mut state, &tick).await?;
    match tick.outcome.error {
        Some(e) if !e.is_users_fault() => Err(e.into()),
        _ => Ok(Action::requeue(sync)),
    }
}

/// When a full tick would come too soon after the last one (same
/// generation, less than half a sync period ago), the time until the next.
fn too_soon(
    state: &PolicyState,
    generation: Option<i64>,
    now: f64,
    sync: Duration,
) -> Option<Duration> {
    let since = now - state.last_tick?;
    if state.last_generation != generation || since >= sync.as_secs_f64() * MIN_TICK_FRACTION {
        return None;
    }
    Some(sync.saturating_sub(Duration::from_secs_f64(since.max(0.0))))
}

/// `spec.syncPeriod` when set and valid, else `default`.
fn sync_period_of(policy: &ConcurrencyPolicy, default: Duration) -> Duration {
    policy
        .spec
        .sync_period
        .as_ref()
        .and_then(|d| d.seconds("spec.syncPeriod").ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(default)
}

pub(super) fn scale_target(policy: &ConcurrencyPolicy) -> ScaleTarget {
    let target = &policy.spec.target_ref;
    ScaleTarget {
        api_version: target.api_version.clone(),
        kind: target.kind.clone(),
        name: target.name.clone(),
        namespace: policy.namespace().unwrap_or_default(),
    }
}

/// Who, if anyone, already scales this policy's target.
fn find_conflict(policy: &ConcurrencyPolicy, scope: &Scope) -> Option<Blocker> {
    let me = PolicyClaim::of(policy);
    let namespace = &me.target.namespace;
    let hpas: Vec<(String, TargetKey)> = scope
        .hpas
        .state()
        .iter()
        .filter(|h| h.namespace().as_deref() == Some(namespace.as_str()))
        .map(|h| (h.name_any(), TargetKey::of_hpa(h)))
        .collect();
    let policies: Vec<PolicyClaim> = scope
        .policies
        .state()
        .iter()
        .filter_map(|p| p.0.as_ref().ok())
        .filter(|p| p.namespace().as_deref() == Some(namespace.as_str()))
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        // A policy with an invalid spec never scales, so it claims nothing:
        // an old broken policy must not block a newer valid one.
        .filter(|p| p.spec.validate().is_ok())
        .map(PolicyClaim::of)
        .collect();
    find_blocker(
        &me,
        hpas.iter().map(|(name, key)| (name.as_str(), key)),
        &policies,
    )
}

/// What the act step did.
pub(super) struct Outcome {
    /// The target's replicas now.
    pub(super) current: u32,
    /// The decision was written to `/scale`.
    pub(super) applied: bool,
    pub(super) paused: bool,
    pub(super) dry_run: bool,
    /// DryRun, not blocked nor paused: the decision would have been applied.
    pub(super) would_scale: bool,
    pub(super) error: Option<ScaleError>,
}

#[allow(clippy::too_many_arguments)]
async fn act(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    target: &ScaleTarget,
    target_state: &TargetState,
    decision: &Decision,
    blocker: Option<&Blocker>,
    now: f64,
) -> Outcome {
    let mut outcome = Outcome {
        current: target_state.spec_replicas,
        applied: false,
        paused: is_paused(policy),
        dry_run: policy.spec.mode == Mode::DryRun,
        would_scale: false,
        error: None,
    };
    let wanted = decision.replicas;
    if wanted == target_state.spec_replicas || blocker.is_some() || outcome.paused {
        return outcome;
    }
    if outcome.dry_run {
        outcome.would_scale = true;
        return outcome;
    }
    match scope.shared.scaler.scale(target, wanted).await {
        Ok(done) => {
            let direction = if done.replicas > done.previous {
                Direction::Up
            } else {
                Direction::Down
            };
            info!(
                from = done.previous,
                to = done.replicas,
                reason = %decision.reason,
                "scaled {}",
                target.display()
            );
            state.last_scale = Some((now, direction));
            state.lead_time.on_scale(
                done.previous,
                done.replicas,
                target_state.ready_replicas,
                now,
            );
            outcome.current = done.replicas;
            outcome.applied = true;
        }
        Err(e) => {
            warn!(error = %e, "scaling {} failed", target.display());
            outcome.error = Some(e);
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha1::ConcurrencyPolicySpec;
    use crate::controller::report::time_at;

    fn policy(extra: serde_json::Value) -> ConcurrencyPolicy {
        let mut spec = serde_json::json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 10,
            "metrics": {"inFlight": {"query": "sum(x)"}},
            "target": {"concurrencyPerPod": 10},
        });
        if let (Some(spec), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            spec.extend(extra.clone());
        }
        let spec: ConcurrencyPolicySpec = serde_json::from_value(spec).unwrap();
        let mut p = ConcurrencyPolicy::new("web", spec);
        p.metadata.namespace = Some("shop".into());
        p.metadata.generation = Some(1);
        p
    }

    #[test]
    fn sync_period_comes_from_the_spec_else_the_flag() {
        let default = Duration::from_secs(5);
        assert_eq!(
            sync_period_of(&policy(serde_json::json!({})), default),
            default
        );
        assert_eq!(
            sync_period_of(&policy(serde_json::json!({"syncPeriod": "2s"})), default),
            Duration::from_secs(2)
        );
        assert_eq!(
            sync_period_of(&policy(serde_json::json!({"syncPeriod": "bogus"})), default),
            default
        );
    }

    #[test]
    fn the_paused_annotation_must_say_true() {
        let mut p = policy(serde_json::json!({}));
        assert!(!is_paused(&p));
        p.annotations_mut()
            .insert(PAUSED_ANNOTATION.into(), "True".into());
        assert!(is_paused(&p));
        p.annotations_mut()
            .insert(PAUSED_ANNOTATION.into(), "no".into());
        assert!(!is_paused(&p));
    }

    #[test]
    fn a_retrigger_within_half_a_period_waits_for_the_next_tick() {
        let p = policy(serde_json::json!({}));
        let sync = Duration::from_secs(10);
        let mut state = PolicyState::from_status(&p);
        assert_eq!(too_soon(&state, Some(1), 100.0, sync), None, "never ticked");
        state.last_tick = Some(100.0);
        state.last_generation = Some(1);
        assert_eq!(
            too_soon(&state, Some(1), 101.0, sync),
            Some(Duration::from_secs(9))
        );
        assert_eq!(too_soon(&state, Some(1), 105.0, sync), None);
        assert_eq!(too_soon(&state, Some(2), 101.0, sync), None, "spec edited");
    }

    #[test]
    fn status_times_are_whole_seconds() {
        assert_eq!(time_at(1_700_000_000.9), time_at(1_700_000_000.0));
        assert_eq!(time_at(1_700_000_000.9).0.as_second(), 1_700_000_000);
    }

    #[test]
    fn the_scale_target_is_in_the_policy_namespace() {
        let target = scale_target(&policy(serde_json::json!({})));
        assert_eq!(target.namespace, "shop");
        assert_eq!(target.display(), "Deployment/web");
        assert_eq!(target.group(), "apps");
    }
}
