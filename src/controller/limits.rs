//! Step 5b of a tick: the service's own concurrency limits (`spec.limits`).
//!
//! The per-pod limit is fixed (`perPod`) or adaptive (a gradient controller
//! on `metrics.latency`, [`crate::scaling::adaptive`], stepped once per full
//! tick). Without `target.concurrencyPerPod` the engine plans pods for it
//! (`follow_limit`). Each sink gets PerPod or Total = perPod x pods, where
//! the pods are the Ready ones, at most the target's replicas, so the
//! order of writes follows the order of capacity:
//!
//! - scale-up: the new replicas count only once their pods are Ready, so a
//!   Total rises after the capacity exists (the ticks after the scale, and
//!   `follow_ready` on the target's updates in between);
//! - scale-down: `before_scale` lowers the Total to the new replicas
//!   *before* `/scale` is patched, so no proxy sends the removed pods'
//!   share to the pods that stay.
//!
//! A sink is written (server-side apply, [`crate::actuate::limits`]) only
//! when its object's values change, or every [`RESYNC_SECS`] to repair a
//! hand edit. A sink that fails gives a Warning event (once per distinct
//! failure) and `LimitsSynced=False`; scaling goes on regardless. In DryRun
//! nothing is written.
use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use kube::{Resource, ResourceExt};
use serde_json::Value;
use tracing::{debug, info, warn};

use super::conditions::DesiredCondition;
use super::context::{PolicyState, Scope};
use super::events::PolicyEvent;
use crate::actuate::limits::{Edit, ResolvedSink, ResourceCache, SinkObject, SinkWriter, resolve};
use crate::actuate::scale::{ScaleTarget, TargetState};
use crate::api::v1alpha1::{
    AdaptiveStatus, ConcurrencyPolicy, LimitValue, LimitsStatus, Mode, SinkStatus, condition,
};
use crate::metrics::{self, MetricsError, PromClient, TemplateVars};
use crate::scaling::Config;
use crate::scaling::adaptive::{AdaptiveConfig, AdaptiveLimit};

/// Sinks whose values did not change are applied again this often anyway,
/// so a hand edit of a limit inflight owns does not last.
pub const RESYNC_SECS: f64 = 600.0;

/// Sink states in status.
pub mod state {
    pub const SYNCED: &str = "Synced";
    pub const DRY_RUN: &str = "DryRun";
}

/// What the controller remembers about one policy's limits between ticks.
#[derive(Default)]
pub struct LimitsState {
    adaptive: Option<AdaptiveLimit>,
    /// The limits the status held when this state was created (a restart or
    /// a failover): where the adaptive limit resumes, and what was last
    /// announced.
    restored: Option<LimitsStatus>,
    /// The last body applied to each object, and when.
    applied: HashMap<SinkObject, (Value, f64)>,
    /// The last value written to each sink, by description.
    written: HashMap<String, u32>,
    /// The last failure announced for each sink, by description.
    failures: HashMap<String, String>,
    /// (perPod, total) last announced in a LimitsUpdated event.
    announced: Option<(u32, u32)>,
    resources: ResourceCache,
    /// The last latency read, and why the adaptive limit held, if it did.
    latency: Option<f64>,
    held: Option<&'static str>,
    /// What the status reports.
    status: Option<LimitsStatus>,
}

impl LimitsState {
    /// A fresh state that resumes from what the status recorded.
    pub fn from_status(status: Option<&LimitsStatus>) -> Self {
        LimitsState {
            restored: status.cloned(),
            announced: status.map(|s| (s.per_pod, s.total)),
            status: status.cloned(),
            ..LimitsState::default()
        }
    }

    /// The limits for `status.limits` (`None` when the policy has none).
    pub fn status(&self) -> Option<LimitsStatus> {
        self.status.clone()
    }
}

/// The engine config with `concurrency_per_pod` following the limit, when
/// the spec leaves `target.concurrencyPerPod` out.
pub(super) fn follow_limit(
    state: &mut PolicyState,
    policy: &ConcurrencyPolicy,
    config: Config,
) -> Config {
    if !policy.spec.target_follows_limits() {
        return config;
    }
    match per_pod(&mut state.limits, policy) {
        Some(limit) => Config {
            concurrency_per_pod: f64::from(limit),
            ..config
        },
        None => config,
    }
}

/// Before `/scale` goes down to `desired`: lower the sinks to the new
/// replicas first. `will_scale`: the act step will patch (not blocked nor
/// paused).
#[allow(clippy::too_many_arguments)]
pub(super) async fn before_scale(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    target: &ScaleTarget,
    target_state: &TargetState,
    desired: u32,
    will_scale: bool,
    now: f64,
) {
    if !will_scale || policy.spec.mode == Mode::DryRun || policy.spec.limits.is_none() {
        return;
    }
    let Some(per_pod) = per_pod(&mut state.limits, policy) else {
        return;
    };
    let Some(pods) = pods_to_count(Moment::BeforeScale { desired }, target_state) else {
        return;
    };
    debug!(per_pod, pods, "lowering the limits before the scale-down");
    sync(policy, scope, &mut state.limits, target, per_pod, pods, now).await;
}

/// After the act step: step the adaptive limit on this tick's latency, and
/// bring every sink to perPod and perPod x min(replicas, Ready).
#[allow(clippy::too_many_arguments)]
pub(super) async fn after_act(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    prometheus: Option<&PromClient>,
    vars: &TemplateVars,
    target: &ScaleTarget,
    target_state: &TargetState,
    current_replicas: u32,
    in_flight: Option<f64>,
    now: f64,
) {
    let Some(limits) = &policy.spec.limits else {
        state.limits = LimitsState::default();
        return;
    };
    if limits.adaptive.is_some() {
        step_adaptive(
            policy,
            scope,
            &mut state.limits,
            prometheus,
            vars,
            target_state,
            in_flight,
            now,
        )
        .await;
    } else {
        state.limits.adaptive = None;
        state.limits.latency = None;
        state.limits.held = None;
    }
    let Some(per_pod) = per_pod(&mut state.limits, policy) else {
        return;
    };
    let Some(pods) = pods_to_count(
        Moment::AfterAct {
            current: current_replicas,
        },
        target_state,
    ) else {
        return;
    };
    sync(policy, scope, &mut state.limits, target, per_pod, pods, now).await;
}

/// Between full ticks (a reconcile triggered by the target's update): let
/// the Totals follow the Ready pods at once, without reading metrics.
pub(super) async fn follow_ready(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    state: &mut PolicyState,
    target: &ScaleTarget,
    target_state: &TargetState,
    now: f64,
) {
    if policy.spec.limits.is_none() || policy.spec.mode == Mode::DryRun {
        return;
    }
    let Some(per_pod) = per_pod(&mut state.limits, policy) else {
        return;
    };
    let Some(pods) = pods_to_count(Moment::TargetUpdate, target_state) else {
        return;
    };
    sync(policy, scope, &mut state.limits, target, per_pod, pods, now).await;
}

/// When in a tick the sinks are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moment {
    /// Just before `/scale` is patched to `desired`.
    BeforeScale { desired: u32 },
    /// After the act step left the target at `current` replicas.
    AfterAct { current: u32 },
    /// A reconcile between full ticks, on the target's update.
    TargetUpdate,
}

/// The pods a Total counts at `moment`, or `None` when nothing is to be
/// written then. Always the Ready pods, at most the replicas the target has
/// (or is about to have): so a Total rises only with Ready pods, and falls
/// before the replicas do.
pub fn pods_to_count(moment: Moment, target: &TargetState) -> Option<u32> {
    let ready = target.ready_replicas;
    match moment {
        Moment::BeforeScale { desired } => {
            (desired < target.spec_replicas).then(|| desired.min(ready))
        }
        Moment::AfterAct { current } => Some(current.min(ready)),
        Moment::TargetUpdate => Some(target.spec_replicas.min(ready)),
    }
}

/// The current per-pod limit: `perPod`, or the adaptive limit (created on
/// first use, resuming from status).
fn per_pod(ls: &mut LimitsState, policy: &ConcurrencyPolicy) -> Option<u32> {
    let limits = policy.spec.limits.as_ref()?;
    if let Some(fixed) = limits.per_pod {
        ls.adaptive = None;
        return Some(fixed.max(1));
    }
    let config = adaptive_config(policy)?;
    let restored = ls.restored.as_ref();
    let adaptive =
        ls.adaptive
            .get_or_insert_with(|| match restored.and_then(|s| s.adaptive.as_ref()) {
                Some(a) => AdaptiveLimit::restore(&config, a.limit, a.baseline_seconds),
                None => AdaptiveLimit::new(&config),
            });
    Some(adaptive.published())
}

fn adaptive_config(policy: &ConcurrencyPolicy) -> Option<AdaptiveConfig> {
    match policy.spec.adaptive_config() {
        Ok(config) => config,
        Err(e) => {
            // engine_config validated the spec already; kept total.
            warn!(error = %e, "invalid adaptive limits");
            None
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn step_adaptive(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    ls: &mut LimitsState,
    prometheus: Option<&PromClient>,
    vars: &TemplateVars,
    target_state: &TargetState,
    in_flight: Option<f64>,
    now: f64,
) {
    let (Some(query), Some(config)) = (
        policy.spec.metrics.latency.as_ref(),
        adaptive_config(policy),
    ) else {
        return;
    };
    // Creates the controller (resuming from status) if needed.
    if per_pod(ls, policy).is_none() {
        return;
    }
    let latency = match prometheus {
        Some(client) => read_latency(scope, client, &query.query, vars).await,
        None => Err("no Prometheus client".to_string()),
    };
    let Some(adaptive) = ls.adaptive.as_mut() else {
        return;
    };
    match latency {
        Ok(latency) => {
            let load = load_per_pod(in_flight, target_state.ready_replicas);
            let before = adaptive.published();
            let step = adaptive.step(&config, latency, load, now);
            ls.latency = Some(latency);
            ls.held = step.held.map(|h| h.as_str());
            debug!(
                latency,
                ?load,
                gradient = ?step.gradient,
                limit = adaptive.limit(),
                baseline = ?adaptive.baseline(),
                held = ?step.held,
                "adaptive limit stepped"
            );
            if adaptive.published() != before {
                info!(
                    from = before,
                    to = adaptive.published(),
                    latency,
                    baseline = ?adaptive.baseline(),
                    "adaptive limit moved"
                );
            }
        }
        Err(message) => {
            debug!(%message, "no latency; the adaptive limit holds");
            ls.latency = None;
            ls.held = Some("LatencyUnavailable");
        }
    }
}

/// Requests in flight per ready pod, when both are known.
fn load_per_pod(in_flight: Option<f64>, ready: u32) -> Option<f64> {
    let in_flight = in_flight.filter(|v| v.is_finite() && *v >= 0.0)?;
    (ready > 0).then(|| in_flight / f64::from(ready))
}

async fn read_latency(
    scope: &Scope,
    client: &PromClient,
    template: &str,
    vars: &TemplateVars,
) -> Result<f64, String> {
    let started = Instant::now();
    let result = metrics::read(client, template, vars, false, scope.shared.query_timeout).await;
    scope.shared.metrics.observe_query(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(MetricsError::metric_label),
    );
    result.map(|s| s.value).map_err(|e| e.to_string())
}

/// perPod x pods, never below perPod: with no pod ready a Total of 0 would
/// mean "no limit" to some proxies, and one pod's worth is harmless.
pub fn total_for(per_pod: u32, pods: u32) -> u32 {
    per_pod.saturating_mul(pods.max(1))
}

/// One sink of this tick: its position, description and value.
struct Planned {
    index: usize,
    resolved: ResolvedSink,
    value: u32,
}

/// Bring every sink to its value, record the status, publish the events.
#[allow(clippy::too_many_arguments)]
async fn sync(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    ls: &mut LimitsState,
    target: &ScaleTarget,
    per_pod: u32,
    pods: u32,
    now: f64,
) {
    let Some(limits) = &policy.spec.limits else {
        return;
    };
    let total = total_for(per_pod, pods);
    let dry_run = policy.spec.mode == Mode::DryRun;
    let mut sinks: Vec<SinkStatus> = Vec::with_capacity(limits.sinks.len());
    let mut groups: BTreeMap<SinkObject, Vec<Planned>> = BTreeMap::new();
    for (index, sink) in limits.sinks.iter().enumerate() {
        match resolve(sink, target) {
            Ok(resolved) => {
                let value = match resolved.value {
                    LimitValue::PerPod => per_pod,
                    LimitValue::Total => total,
                };
                sinks.push(SinkStatus {
                    sink: resolved.describe(),
                    value: ls.written.get(&resolved.describe()).copied(),
                    state: state::DRY_RUN.into(),
                    message: None,
                });
                groups
                    .entry(resolved.object.clone())
                    .or_default()
                    .push(Planned {
                        index,
                        resolved,
                        value,
                    });
            }
            Err(e) => sinks.push(SinkStatus {
                sink: format!("sink {index}"),
                value: None,
                state: e.state().into(),
                message: Some(e.to_string()),
            }),
        }
    }
    if !dry_run {
        let writer = SinkWriter::new(scope.shared.client.clone());
        for (object, planned) in groups {
            write_object(ls, &writer, &object, &planned, &mut sinks, now).await;
        }
        announce(policy, scope, ls, per_pod, total, pods, &sinks).await;
    }
    ls.status = Some(LimitsStatus {
        per_pod,
        total,
        pods,
        adaptive: ls.adaptive.as_ref().map(|a| AdaptiveStatus {
            limit: round_to(a.limit(), 100.0),
            latency_seconds: ls.latency.map(|l| round_to(l, 10_000.0)),
            baseline_seconds: a.baseline().map(|b| round_to(b, 10_000.0)),
            held: ls.held.map(str::to_string),
        }),
        sinks,
    });
}

/// Write one object's sinks when their values changed (or at the resync),
/// and record each sink's result in `sinks`.
async fn write_object(
    ls: &mut LimitsState,
    writer: &SinkWriter,
    object: &SinkObject,
    planned: &[Planned],
    sinks: &mut [SinkStatus],
    now: f64,
) {
    let edits: Vec<(Edit, u32)> = planned
        .iter()
        .map(|p| (p.resolved.edit.clone(), p.value))
        .collect();
    let body = crate::actuate::limits::apply_body(object, &edits);
    let fresh = ls
        .applied
        .get(object)
        .is_some_and(|(applied, at)| *applied == body && now - at < RESYNC_SECS);
    if fresh {
        for p in planned {
            mark(&mut sinks[p.index], Ok(p.value));
        }
        return;
    }
    match writer.write(&mut ls.resources, object, &edits).await {
        Ok(results) => {
            for (p, result) in planned.iter().zip(results) {
                match result {
                    Ok(()) => {
                        ls.written.insert(p.resolved.describe(), p.value);
                        mark(&mut sinks[p.index], Ok(p.value));
                    }
                    Err(e) => mark(&mut sinks[p.index], Err((e.state(), e.to_string()))),
                }
            }
            debug!(object = %object.display(), body = %body, "limits written");
            ls.applied.insert(object.clone(), (body, now));
        }
        Err(e) => {
            // Logged at warn once per distinct failure, in announce().
            debug!(object = %object.display(), error = %e, "cannot write limits");
            ls.applied.remove(object);
            for p in planned {
                mark(&mut sinks[p.index], Err((e.state(), e.to_string())));
            }
        }
    }
}

fn mark(sink: &mut SinkStatus, result: Result<u32, (&str, String)>) {
    match result {
        Ok(value) => {
            sink.value = Some(value);
            sink.state = state::SYNCED.into();
            sink.message = None;
        }
        Err((state, message)) => {
            sink.state = state.into();
            sink.message = Some(message);
        }
    }
}

/// LimitsUpdated when (perPod, total) changed since the last announcement;
/// LimitsSinkFailed for each sink whose failure is new.
#[allow(clippy::too_many_arguments)]
async fn announce(
    policy: &ConcurrencyPolicy,
    scope: &Scope,
    ls: &mut LimitsState,
    per_pod: u32,
    total: u32,
    pods: u32,
    sinks: &[SinkStatus],
) {
    let mut events = Vec::new();
    if ls.announced != Some((per_pod, total)) {
        events.push(PolicyEvent::LimitsUpdated {
            per_pod: (ls.announced.map(|a| a.0), per_pod),
            total: (ls.announced.map(|a| a.1), total),
            pods,
            sinks: sinks
                .iter()
                .filter(|s| s.state == state::SYNCED)
                .map(|s| s.sink.clone())
                .collect(),
        });
        ls.announced = Some((per_pod, total));
    }
    for (index, sink) in sinks.iter().enumerate() {
        if sink.state == state::SYNCED {
            ls.failures.remove(&sink.sink);
            continue;
        }
        let failure = format!("{}: {}", sink.state, sink.message.as_deref().unwrap_or(""));
        if ls.failures.get(&sink.sink) != Some(&failure) {
            warn!(sink = %sink.sink, state = %sink.state, message = ?sink.message, "cannot write a limit sink; scaling goes on");
            events.push(PolicyEvent::LimitsSinkFailed {
                index,
                sink: sink.sink.clone(),
                state: sink.state.clone(),
                message: sink.message.clone().unwrap_or_default(),
            });
            ls.failures.insert(sink.sink.clone(), failure);
        }
    }
    let reference = policy.object_ref(&());
    for event in events {
        if let Err(e) = scope
            .shared
            .recorder
            .publish(&event.to_event(), &reference)
            .await
        {
            warn!(error = %e, reason = event.reason(), policy = %policy.name_any(), "cannot publish an event");
        }
    }
}

fn round_to(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

/// The LimitsSynced condition for a policy with limits: True when every
/// sink holds its value, False (naming the first failing sink) otherwise.
pub fn limits_condition(status: &LimitsStatus) -> DesiredCondition {
    let synced = |reason: &str, message: String| {
        DesiredCondition::new(condition::LIMITS_SYNCED, true, reason, message)
    };
    if status.sinks.iter().any(|s| s.state == state::DRY_RUN) {
        return DesiredCondition::new(
            condition::LIMITS_SYNCED,
            false,
            "DryRun",
            format!(
                "mode is DryRun: the limits (perPod {}, total {}) are computed, never written",
                status.per_pod, status.total
            ),
        );
    }
    let failing: Vec<&SinkStatus> = status
        .sinks
        .iter()
        .filter(|s| s.state != state::SYNCED)
        .collect();
    match failing.first() {
        Some(first) => DesiredCondition::new(
            condition::LIMITS_SYNCED,
            false,
            format!("Sink{}", first.state),
            format!(
                "{} of {} sinks not written; {}: {}",
                failing.len(),
                status.sinks.len(),
                first.sink,
                first.message.as_deref().unwrap_or(&first.state)
            ),
        ),
        None if status.sinks.is_empty() => synced(
            "NoSinks",
            format!(
                "perPod {} (no sinks: the limit only sizes the target)",
                status.per_pod
            ),
        ),
        None => synced(
            "Synced",
            format!(
                "perPod {}, total {} ({} pods) in {} sinks",
                status.per_pod,
                status.total,
                status.pods,
                status.sinks.len()
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(name: &str, state: &str, message: Option<&str>) -> SinkStatus {
        SinkStatus {
            sink: name.into(),
            value: Some(5),
            state: state.into(),
            message: message.map(Into::into),
        }
    }

    fn status(sinks: Vec<SinkStatus>) -> LimitsStatus {
        LimitsStatus {
            per_pod: 5,
            total: 15,
            pods: 3,
            adaptive: None,
            sinks,
        }
    }

    fn target(spec: u32, ready: u32) -> TargetState {
        TargetState {
            spec_replicas: spec,
            status_replicas: spec.max(ready),
            ready_replicas: ready,
            selector: None,
            uid: None,
        }
    }

    #[test]
    fn only_a_scale_down_writes_before_the_scale() {
        let t = target(3, 3);
        assert_eq!(
            pods_to_count(Moment::BeforeScale { desired: 1 }, &t),
            Some(1)
        );
        assert_eq!(pods_to_count(Moment::BeforeScale { desired: 3 }, &t), None);
        assert_eq!(pods_to_count(Moment::BeforeScale { desired: 5 }, &t), None);
        // Fewer Ready than the new replicas: count the Ready ones.
        let t = target(4, 1);
        assert_eq!(
            pods_to_count(Moment::BeforeScale { desired: 2 }, &t),
            Some(1)
        );
    }

    /// A scale-up from 1 to 3 and back, tick by tick, with the target as the
    /// API server reports it at each moment. At every moment a proxy could
    /// look, the Total written so far must not exceed perPod x the pods that
    /// can serve: Ready ones, and not those being removed.
    #[test]
    fn totals_rise_after_ready_pods_and_fall_before_the_scale_down() {
        const PER_POD: u32 = 5;
        // (what happens, spec replicas, ready replicas, moment)
        let timeline = [
            ("steady at 1", 1, 1, Moment::AfterAct { current: 1 }),
            (
                "scaled to 3, none ready yet",
                1,
                1,
                Moment::AfterAct { current: 3 },
            ),
            ("one more Ready", 3, 2, Moment::TargetUpdate),
            ("all Ready", 3, 3, Moment::TargetUpdate),
            ("full tick", 3, 3, Moment::AfterAct { current: 3 }),
            (
                "about to scale to 1",
                3,
                3,
                Moment::BeforeScale { desired: 1 },
            ),
            (
                "scaled to 1, pods terminating",
                3,
                3,
                Moment::AfterAct { current: 1 },
            ),
            ("pods gone", 1, 1, Moment::TargetUpdate),
        ];
        let mut written = None;
        let mut seen = Vec::new();
        for (what, spec, ready, moment) in timeline {
            let t = target(spec, ready);
            if let Some(pods) = pods_to_count(moment, &t) {
                written = Some(total_for(PER_POD, pods));
            }
            // What serves right after this moment: after a BeforeScale the
            // patch to /scale follows, so only the desired replicas count.
            let serving = match moment {
                Moment::BeforeScale { desired } => desired.min(ready),
                Moment::AfterAct { current } => current.min(ready),
                Moment::TargetUpdate => spec.min(ready),
            };
            let total = written.unwrap_or(0);
            assert!(
                total <= total_for(PER_POD, serving),
                "{what}: total {total} with {serving} pods serving"
            );
            seen.push(total);
        }
        assert_eq!(seen, vec![5, 5, 10, 15, 15, 5, 5, 5]);
    }

    #[test]
    fn totals_count_pods_but_never_fall_to_zero() {
        assert_eq!(total_for(5, 3), 15);
        assert_eq!(total_for(5, 0), 5);
        assert_eq!(total_for(u32::MAX, 3), u32::MAX);
    }

    #[test]
    fn load_per_pod_needs_ready_pods_and_a_sane_reading() {
        assert_eq!(load_per_pod(Some(30.0), 3), Some(10.0));
        assert_eq!(load_per_pod(Some(30.0), 0), None);
        assert_eq!(load_per_pod(None, 3), None);
        assert_eq!(load_per_pod(Some(f64::NAN), 3), None);
        assert_eq!(load_per_pod(Some(-1.0), 3), None);
    }

    #[test]
    fn the_condition_names_the_first_failing_sink() {
        let ok = limits_condition(&status(vec![sink("ConfigMap a key k", "Synced", None)]));
        assert_eq!((ok.status, ok.reason.as_str()), (true, "Synced"));
        assert_eq!(ok.message, "perPod 5, total 15 (3 pods) in 1 sinks");
        let bad = limits_condition(&status(vec![
            sink("ConfigMap a key k", "Synced", None),
            sink(
                "ConfigMap b key k",
                "NotFound",
                Some("ConfigMap/b not found"),
            ),
            sink("X c /spec/x", "Forbidden", Some("no")),
        ]));
        assert_eq!((bad.status, bad.reason.as_str()), (false, "SinkNotFound"));
        assert_eq!(
            bad.message,
            "2 of 3 sinks not written; ConfigMap b key k: ConfigMap/b not found"
        );
        let none = limits_condition(&status(vec![]));
        assert_eq!((none.status, none.reason.as_str()), (true, "NoSinks"));
        let dry = limits_condition(&status(vec![sink("ConfigMap a key k", "DryRun", None)]));
        assert_eq!((dry.status, dry.reason.as_str()), (false, "DryRun"));
    }

    #[test]
    fn state_resumes_from_status() {
        let s = status(vec![]);
        let ls = LimitsState::from_status(Some(&s));
        assert_eq!(ls.announced, Some((5, 15)));
        assert_eq!(ls.status(), Some(s));
        assert_eq!(LimitsState::from_status(None).status(), None);
    }
}
