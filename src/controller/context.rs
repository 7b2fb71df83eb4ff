//! What reconciles share: clients, the event recorder, the operator's
//! metrics, and one [`PolicyState`] (engine, lead time, event memory) per
//! policy, keyed by namespace/name/uid.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Client;
use kube::ResourceExt;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::Store;

use super::events::EventMemory;
use super::leadtime::LeadTime;
use super::limits::LimitsState;
use super::mapper::GuardedPolicy;
use super::source::Sources;
use super::status::last_scale_from;
use crate::actuate::scale::Scaler;
use crate::api::v1alpha1::ConcurrencyPolicy;
use crate::scaling::{Direction, Engine};
use crate::telemetry::Metrics;

/// Process-wide state, shared by the controllers of every watched
/// namespace.
pub struct Shared {
    pub client: Client,
    pub scaler: Scaler,
    pub recorder: Recorder,
    pub sources: Sources,
    pub metrics: Metrics,
    /// `--sync-period`: the tick of policies without `spec.syncPeriod`.
    pub sync_period: Duration,
    /// `--query-timeout`.
    pub query_timeout: Duration,
    states: Mutex<HashMap<PolicyKey, Arc<tokio::sync::Mutex<PolicyState>>>>,
    failures: Mutex<HashMap<(String, String), u32>>,
    /// Event memory of policies that do not deserialize (no engine).
    malformed: Mutex<HashMap<PolicyKey, EventMemory>>,
}

/// The controller of one watch scope (all namespaces, or one): the shared
/// state plus that scope's caches.
pub struct Scope {
    pub shared: Arc<Shared>,
    /// The policies this scope's controller watches.
    pub policies: Store<GuardedPolicy>,
    /// The HPAs of the same namespaces, for conflict detection.
    pub hpas: Store<HorizontalPodAutoscaler>,
}

/// Identifies one incarnation of a policy: a policy deleted and created
/// again under the same name gets a fresh engine.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PolicyKey {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PolicyKey {
    pub fn of(policy: &impl ResourceExt) -> Self {
        PolicyKey {
            namespace: policy.namespace().unwrap_or_default(),
            name: policy.name_any(),
            uid: policy.uid().unwrap_or_default(),
        }
    }
}

/// What the controller remembers about one policy between ticks.
pub struct PolicyState {
    /// Created on the first tick with a valid spec (warmed up from
    /// Prometheus then), updated when the spec changes.
    pub engine: Option<Engine>,
    pub lead_time: LeadTime,
    pub events: EventMemory,
    /// Engine time (unix seconds) of the last full tick.
    pub last_tick: Option<f64>,
    /// The generation the last full tick saw.
    pub last_generation: Option<i64>,
    pub last_status_write: Option<Instant>,
    /// The last scale this process (or, after a restart, the status) knows.
    pub last_scale: Option<(f64, Direction)>,
    /// The service's concurrency limits: the adaptive limit and the sinks.
    pub limits: LimitsState,
}

impl PolicyState {
    /// A fresh state, picking up what the status remembers (lead time, last
    /// scale) from before a restart or failover.
    pub fn from_status(policy: &ConcurrencyPolicy) -> Self {
        let status = policy.status.clone().unwrap_or_default();
        PolicyState {
            engine: None,
            lead_time: LeadTime::with_learned(status.lead_time_seconds),
            events: EventMemory::default(),
            last_tick: None,
            last_generation: None,
            last_status_write: None,
            last_scale: last_scale_from(&status),
            limits: LimitsState::from_status(status.limits.as_ref()),
        }
    }
}

/// The longest wait between retries of a failing policy.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Retry delay after `failures` consecutive transient failures: the sync
/// period, doubled per failure, at most five minutes.
pub fn backoff(failures: u32, sync_period: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(16);
    sync_period
        .saturating_mul(1u32 << exponent)
        .min(MAX_BACKOFF)
        .max(sync_period.min(MAX_BACKOFF))
}

impl Shared {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        client: Client,
        scaler: Scaler,
        recorder: Recorder,
        sources: Sources,
        metrics: Metrics,
        sync_period: Duration,
        query_timeout: Duration,
    ) -> Self {
        Shared {
            client,
            scaler,
            recorder,
            sources,
            metrics,
            sync_period,
            query_timeout,
            states: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            malformed: Mutex::new(HashMap::new()),
        }
    }

    /// The state of `policy`, created from its status on first sight. Other
    /// incarnations of the same name (deleted and re-created) are dropped.
    pub fn state_for(&self, policy: &ConcurrencyPolicy) -> Arc<tokio::sync::Mutex<PolicyState>> {
        let key = PolicyKey::of(policy);
        let mut states = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(state) = states.get(&key) {
            return state.clone();
        }
        states.retain(|k, _| !(k.namespace == key.namespace && k.name == key.name));
        let state = Arc::new(tokio::sync::Mutex::new(PolicyState::from_status(policy)));
        states.insert(key, state.clone());
        state
    }

    /// Drop everything kept about a deleted policy.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.malformed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !(k.namespace == namespace && k.name == name));
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|k, _| !(k.namespace == namespace && k.name == name));
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_string(), name.to_string()));
        self.metrics.forget_policy(namespace, name);
    }

    /// Drop every engine, e.g. on (re)gaining leadership: the next tick of
    /// each policy warms a fresh engine from Prometheus and its status, as
    /// the previous leader may have acted in the meantime.
    pub fn forget_all(&self) {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// What was last published about a malformed policy.
    pub fn malformed_memory(&self, policy: &impl ResourceExt) -> EventMemory {
        self.malformed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&PolicyKey::of(policy))
            .cloned()
            .unwrap_or_default()
    }

    pub fn remember_malformed(&self, policy: &impl ResourceExt, memory: EventMemory) {
        self.malformed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(PolicyKey::of(policy), memory);
    }

    /// Count a transient failure of a policy; returns the count.
    pub fn record_failure(&self, namespace: &str, name: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let count = failures
            .entry((namespace.to_string(), name.to_string()))
            .or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    pub fn record_success(&self, namespace: &str, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_sync_period_up_to_five_minutes() {
        let sync = Duration::from_secs(5);
        assert_eq!(backoff(1, sync), Duration::from_secs(5));
        assert_eq!(backoff(2, sync), Duration::from_secs(10));
        assert_eq!(backoff(4, sync), Duration::from_secs(40));
        assert_eq!(backoff(10, sync), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, sync), MAX_BACKOFF);
        assert_eq!(backoff(0, sync), Duration::from_secs(5));
        assert_eq!(backoff(1, Duration::from_secs(600)), MAX_BACKOFF);
    }
}
