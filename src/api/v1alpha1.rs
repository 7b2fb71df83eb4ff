//! `ConcurrencyPolicy` (inflight.dev/v1alpha1): the types, their defaults and
//! the validation the API server enforces. `///` comments here become the
//! descriptions `kubectl explain cpol.spec...` prints: they are for users.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::{JsonSchema, Schema, transform::transform_subschemas};
use serde::{Deserialize, Serialize};

pub use super::duration::{Duration, Horizon, PositiveDuration};

/// Condition types the controller sets in `status.conditions`.
pub mod condition {
    /// The policy is valid and the controller is acting on it.
    pub const READY: &str = "Ready";
    /// The last metric queries succeeded with fresh, sane values.
    pub const METRICS_AVAILABLE: &str = "MetricsAvailable";
    /// The controller can read and scale the target.
    pub const SCALING_ACTIVE: &str = "ScalingActive";
    /// The recommendation was clipped by minReplicas, maxReplicas or a step limit.
    pub const SCALING_LIMITED: &str = "ScalingLimited";
    /// Demand in the panic window crossed the panic threshold.
    pub const PANIC: &str = "Panic";
    /// Every sink of spec.limits holds the current limit (set only when
    /// the policy has limits).
    pub const LIMITS_SYNCED: &str = "LimitsSynced";
}

/// Autoscales a workload on concurrency: requests in flight (and optionally
/// waiting in a queue) read from Prometheus, sized as
/// ceil(demand / (concurrencyPerPod x utilization)) replicas, smoothed,
/// forecast and rate-limited.
// Several printcolumn(...) lists share a `type_ = ...`, which clippy takes for
// a repeated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "inflight.dev",
    version = "v1alpha1",
    kind = "ConcurrencyPolicy",
    namespaced,
    shortname = "cpol",
    status = "ConcurrencyPolicyStatus",
    derive = "PartialEq",
    doc = "ConcurrencyPolicy autoscales a workload (anything with a /scale subresource) on requests in flight and queued, read from Prometheus.",
    printcolumn(
        name = "Target",
        type_ = "string",
        json_path = ".spec.targetRef.name",
        description = "Name of the scaled workload"
    ),
    printcolumn(
        name = "Kind",
        type_ = "string",
        json_path = ".spec.targetRef.kind",
        description = "Kind of the scaled workload",
        priority = "1"
    ),
    printcolumn(name = "Min", type_ = "integer", json_path = ".spec.minReplicas"),
    printcolumn(name = "Max", type_ = "integer", json_path = ".spec.maxReplicas"),
    printcolumn(
        name = "Current",
        type_ = "integer",
        json_path = ".status.currentReplicas",
        description = "Replicas the target has"
    ),
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".status.desiredReplicas",
        description = "Replicas the last decision asked for"
    ),
    printcolumn(
        name = "In-flight",
        type_ = "number",
        json_path = ".status.lastDecision.inFlight",
        description = "Requests in flight at the last decision"
    ),
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Limit",
        type_ = "integer",
        json_path = ".status.limits.perPod",
        description = "The service's concurrency limit per pod",
        priority = "1"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    selectable = ".spec.targetRef.name"
)]
#[x_kube(
    validation = Rule::new("!has(self.minReplicas) || self.minReplicas <= self.maxReplicas")
        .message("minReplicas must be less than or equal to maxReplicas")
        .field_path(".minReplicas"),
    validation = Rule::new("!has(self.fallback) || self.fallback.replicas <= self.maxReplicas")
        .message("fallback.replicas must be less than or equal to maxReplicas")
        .field_path(".fallback.replicas"),
    validation = Rule::new("!has(self.fallback) || self.fallback.replicas >= (has(self.minReplicas) ? self.minReplicas : 1)")
        .message("fallback.replicas must be greater than or equal to minReplicas")
        .field_path(".fallback.replicas"),
    validation = Rule::new("has(self.target.concurrencyPerPod) || has(self.limits)")
        .message("target.concurrencyPerPod is required unless limits is set")
        .field_path(".target.concurrencyPerPod"),
    validation = Rule::new("!has(self.limits) || !has(self.limits.adaptive) || has(self.metrics.latency)")
        .message("limits.adaptive needs metrics.latency")
        .field_path(".metrics.latency"),
    validation = Rule::new("!has(self.metrics.arrivalRate) || has(self.target.serviceTime)")
        .message("metrics.arrivalRate needs target.serviceTime")
        .field_path(".target.serviceTime")
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = kubernetes_integer_formats)]
pub struct ConcurrencyPolicySpec {
    /// The workload to scale: any object with a /scale subresource
    /// (Deployment, StatefulSet, ReplicaSet, or a custom resource), in the
    /// policy's namespace.
    pub target_ref: TargetRef,

    /// Fewest replicas. 0 allows scaling to zero: use it only when the metric
    /// sees demand without pods (e.g. a proxy or queue in front of the
    /// service), and see activationThreshold. Default 1.
    #[serde(default = "default_min_replicas")]
    pub min_replicas: u32,

    /// Most replicas. Required; at least 1 and at least minReplicas.
    #[schemars(range(min = 1))]
    pub max_replicas: u32,

    /// Where demand comes from: PromQL queries for requests in flight and,
    /// optionally, queue depth.
    pub metrics: Metrics,

    /// A queue backlog is given enough extra capacity to drain within this
    /// long (e.g. 2m). Only used with metrics.queueDepth. Default 30s.
    #[serde(default = "default_queue_drain_time")]
    pub queue_drain_time: PositiveDuration,

    /// The concurrency one pod should carry.
    pub target: Target,

    /// Smoothing of demand on the stable (non-panic) path.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub smoothing: Smoothing,

    /// Forecasting of demand, so capacity is ready when the demand arrives.
    /// A forecast can make a scale-up earlier or larger; it never causes a
    /// scale-down by itself.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub prediction: Prediction,

    /// With minReplicas 0: scale up from zero only when demand (requests in
    /// flight plus queued) exceeds this; 0 means any demand at all.
    /// Default 0.0.
    #[serde(default)]
    #[schemars(range(min = 0.0))]
    pub activation_threshold: f64,

    /// How fast and how eagerly to follow demand: tolerance, panic mode, and
    /// the scale-up and scale-down rules.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub behavior: Behavior,

    /// The service's own concurrency limit, kept in step with the capacity
    /// the policy buys. Optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,

    /// What to do when metrics keep failing. Without it, the policy holds
    /// the current replicas (it never scales down on missing data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,

    /// How often to evaluate this policy (e.g. 5s). Defaults to the
    /// operator's --sync-period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_period: Option<PositiveDuration>,

    /// A metric sample older than this is stale and treated as missing.
    /// Default 30s.
    #[serde(default = "default_max_sample_age")]
    pub max_sample_age: PositiveDuration,

    /// Enforce scales the target. DryRun decides and records the decision
    /// in status and events, but never changes the target. Default Enforce.
    #[serde(default)]
    pub mode: Mode,
}

/// A reference to the scaled workload.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetRef {
    /// API group and version of the target. Default apps/v1.
    #[serde(default = "default_target_api_version")]
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// Kind of the target, e.g. Deployment or StatefulSet.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the target, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// The PromQL queries that measure demand.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// Requests in flight, summed over the target's pods. Required.
    pub in_flight: MetricQuery,
    /// Requests waiting in a queue in front of the target. Optional: with it,
    /// queue growth counts as demand and a backlog is drained within
    /// queueDrainTime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<MetricQuery>,
    /// Requests arriving per second, counted where they arrive, before any
    /// queue and including those the service rejects or drops, e.g.
    /// `sum(rate(nginx_ingress_controller_requests{...}[15s]))`. Optional;
    /// needs target.serviceTime. Once every pod is full, in-flight stops
    /// measuring demand (it is capped by the pods' capacity); with this
    /// metric demand is then arrival rate x serviceTime, so one scale-up
    /// sizes the fleet for an overload of any size instead of doubling it
    /// per pod start-up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_rate: Option<MetricQuery>,
    /// The service's latency in seconds, for limits.adaptive. Prefer the mean
    /// over a short window, which is steadier than a quantile, e.g.
    /// `sum(rate(http_request_duration_seconds_sum{...}[30s])) /
    /// sum(rate(http_request_duration_seconds_count{...}[30s]))`. A query
    /// without data (no requests) holds the adaptive limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<MetricQuery>,
    /// Treat a query that returns no series as 0 instead of an error. Use it
    /// when the metric disappears at zero load; otherwise leave it false, so
    /// a broken query is not mistaken for no demand. Default false.
    #[serde(default)]
    pub empty_is_zero: bool,
    /// The Prometheus to query. Defaults to the operator's --prometheus-url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSource>,
}

/// One PromQL query that returns a single number.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetricQuery {
    /// A PromQL expression returning one series (wrap it in sum(...)).
    /// {{namespace}} (the policy's namespace) and {{name}} (the target's
    /// name) are replaced with their escaped values, e.g.
    /// sum(http_requests_in_flight{namespace="{{namespace}}",deployment="{{name}}"}).
    #[schemars(length(min = 1, max = 8192))]
    pub query: String,
}

/// A Prometheus server other than the operator's default.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSource {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`. Defaults to the
    /// operator's --prometheus-url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://"))]
    pub address: Option<String>,
    /// A Secret in the policy's namespace with credentials: key `token` for a
    /// bearer token, or keys `username` and `password` for basic auth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<LocalObjectRef>,
    /// A ConfigMap in the policy's namespace with the CA bundle that signed
    /// the server's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_config_map_ref: Option<ConfigMapKeyRef>,
}

/// A reference to an object in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key in a ConfigMap in the policy's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key holding the PEM bundle. Default ca.crt.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// The load one pod is planned for.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// Requests in flight one ready pod handles well (at 100% utilization);
    /// greater than 0. Required unless limits is set: left out, it follows
    /// the limit (limits.perPod, or the adaptive limit), so one number
    /// drives both the replicas and the service's own limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true))]
    pub concurrency_per_pod: Option<f64>,
    /// Plan each pod for this fraction of concurrencyPerPod, leaving
    /// headroom for bursts; in (0, 1]. Desired replicas =
    /// ceil(demand / (concurrencyPerPod x utilization)). Default 0.8.
    #[serde(default = "default_utilization")]
    #[schemars(extend("minimum" = 0, "exclusiveMinimum" = true, "maximum" = 1))]
    pub utilization: f64,
    /// Mean time to serve one request (e.g. 100ms), when known. With
    /// metrics.queueDepth it turns queue growth into concurrency; with
    /// metrics.arrivalRate (which needs it) it turns arrivals into
    /// concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_time: Option<PositiveDuration>,
}

/// Smoothing of demand on the stable path.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Smoothing {
    /// Half-life of the exponentially weighted moving average of demand: a
    /// sample's weight halves every halfLife. Longer is steadier, shorter
    /// follows faster. A level shift (a sample further from the average
    /// than six mean deviations) is taken at once. Default 30s.
    #[serde(default = "default_half_life")]
    pub half_life: PositiveDuration,
}

/// Forecasting of demand.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.season) || duration(self.season) == duration('0s') || (duration(self.season) >= duration('1h') && duration(self.season) <= duration('168h'))")
        .message("prediction.season must be 0s (off) or from 1h to 168h")
        .field_path(".season")
)]
pub struct Prediction {
    /// Forecast demand and scale up ahead of it. Default true.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// How far ahead to forecast: auto (the time new pods took to become
    /// Ready, learned from past scale-ups; 30s until one is seen) or a
    /// duration such as 45s. Default auto.
    #[serde(default)]
    pub horizon: Horizon,
    /// The seasonal forecast: where demand rose one season ago (by 20% or
    /// more from one minute to the next), scale up a horizon before the
    /// same time now, once such forecasts have come true (at least 60% of
    /// the recent ones). For traffic that repeats daily: the morning rise
    /// finds its pods Ready. A restarted controller reads the two seasons
    /// before from Prometheus, a minute apart. From 1h to 168h; 0s turns it
    /// off. Default 24h.
    #[serde(default = "default_season")]
    pub season: Duration,
}

/// How fast and how eagerly to follow demand.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Behavior {
    /// Hysteresis on the usage ratio, demand / (current replicas x
    /// concurrencyPerPod x utilization): no scale-down while the ratio is
    /// at least 1 - tolerance, and a scale-down keeps this fraction of
    /// headroom (0.1: 10%). Right after a scale-down, no scale-up while the
    /// ratio is at most 1 + tolerance (never past 90% of concurrencyPerPod);
    /// otherwise demand above the planned capacity adds pods. A scale-down
    /// by less than the tolerance or 3% of the replicas, whichever is
    /// smaller, is skipped. In [0, 1). Default 0.1.
    #[serde(default = "default_tolerance")]
    #[schemars(extend("minimum" = 0, "maximum" = 1, "exclusiveMaximum" = true))]
    pub tolerance: f64,
    /// Panic mode: when a short window sees a burst, scale on it at once
    /// and never scale down while it lasts.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub panic: Panic,
    /// Rules for adding replicas.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub scale_up: ScaleUpRules,
    /// Rules for removing replicas.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub scale_down: ScaleDownRules,
    /// After a scale-up, no scale-down for this long, and the reverse
    /// (0s disables). Stops flapping. Default 60s.
    #[serde(default = "default_reverse_cooldown")]
    pub reverse_cooldown: Duration,
}

/// Panic mode.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Panic {
    /// The short window whose average demand drives the panic path.
    /// Default 6s.
    #[serde(default = "default_panic_window")]
    pub window: PositiveDuration,
    /// Enter panic when demand over the window reaches this multiple of the
    /// current capacity; greater than 1. Default 2.0.
    #[serde(default = "default_panic_threshold")]
    #[schemars(extend("minimum" = 1, "exclusiveMinimum" = true))]
    pub threshold: f64,
}

/// Rules for adding replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleUpRules {
    /// Scale up to the lowest recommendation seen within this window (0s:
    /// act on the latest). Default 0s.
    #[serde(default = "default_scale_up_window")]
    pub stabilization_window: Duration,
    /// The most replicas to add in one period. Default {percent: 1000,
    /// pods: 4}: add up to ten times the current replicas or 4 pods,
    /// whichever is more (a measured overload is met in one step; lower it
    /// to make scale-ups more gradual).
    #[serde(default = "default_scale_up_step")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub max_step: MaxStep,
    /// The period the step limit applies to. Default 15s.
    #[serde(default = "default_scale_up_period")]
    pub period: PositiveDuration,
}

/// Rules for removing replicas.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDownRules {
    /// Scale down only to the highest recommendation seen within this
    /// window, so a short dip does not remove pods. Default 300s.
    #[serde(default = "default_scale_down_window")]
    pub stabilization_window: Duration,
    /// The most replicas to remove in one period. Default {percent: 50}:
    /// remove up to half of the current replicas.
    #[serde(default = "default_scale_down_step")]
    #[schemars(extend("x-kubernetes-map-type" = "atomic"))]
    pub max_step: MaxStep,
    /// The period the step limit applies to. Default 30s.
    #[serde(default = "default_scale_down_period")]
    pub period: PositiveDuration,
    /// Scale down before the stabilization window ends on a pattern that is
    /// not noise in the demand: a collapse (the newest twentieth of the
    /// window needed at most a fifth of the current replicas, or of the
    /// replicas before the scale-downs in progress: a spike that ended), a
    /// clear drop (the newest fifth needed at most half of them: a burst
    /// that ended) or a steady decline (each fifth of the window needed
    /// fewer pods at its highest than the fifth before it: a ramp down).
    /// The fleet then goes down to the pods for the highest demand of the
    /// part read, never below the recommendation. false: every scale-down
    /// waits out the whole window, as in HPA. Default true.
    #[serde(default = "default_true")]
    pub early: bool,
    /// Keep a fleet for the demand's typical level while the demand keeps
    /// coming back to it: no scale-down below the pods for a percentile of
    /// the demand over a window, once the demand in that window reached
    /// that level, fell below 80% of it and reached it again. Bursty demand
    /// (a lull, then the level again) then finds its pods running instead of
    /// waiting a start-up; a ramp, a step or a one-off spike never comes
    /// back after falling away and is not held. A policy with minReplicas
    /// 0 still goes to zero once no demand arrives. Default {window: 1h,
    /// percentile: 50}; window 0s turns it off.
    #[serde(default)]
    #[schemars(extend("default" = {}))]
    pub floor: ScaleDownFloor,
}

/// The recurring floor of the scale-down.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.window) || duration(self.window) <= duration('1h')")
        .message("floor.window must be at most 1h (the history a restarted controller warms up from)")
        .field_path(".window")
)]
pub struct ScaleDownFloor {
    /// The demand the floor reads, back from now; at most 1h, 0s turns the
    /// floor off. Default 1h.
    #[serde(default = "default_floor_window")]
    pub window: Duration,
    /// The floor is the pods for this percentile of that demand, 1 to 100
    /// (50: the median). Default 50.
    #[serde(default = "default_floor_percentile")]
    #[schemars(range(min = 1, max = 100))]
    pub percentile: u32,
}

/// A limit on the change in one period. With both fields the larger allowed
/// change wins; with neither ({}) there is no limit. A field left out is no
/// limit, so write every field you want when you change maxStep.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MaxStep {
    /// At most this percent of the current replicas (100: double when
    /// scaling up); at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub percent: Option<u32>,
    /// At most this many pods; at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub pods: Option<u32>,
}

/// The service's own concurrency limit: a per-pod cap in the application, a
/// mesh circuit breaker, a gateway's maximum of parallel requests. The
/// controller computes it (fixed, or adaptive from latency) and writes it to
/// its sinks, in step with the replicas: a Total rises only once new pods are
/// Ready, and falls before a scale-down removes pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.perPod) != has(self.adaptive)")
    .message("set exactly one of limits.perPod and limits.adaptive"))]
pub struct Limits {
    /// A fixed limit: the most requests one pod should accept at once; at
    /// least 1. Usually a little above target.concurrencyPerPod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub per_pod: Option<u32>,
    /// A limit learned from metrics.latency by a gradient controller: it
    /// grows while latency stays near its no-load baseline and shrinks as
    /// latency rises past tolerance x baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveLimits>,
    /// Where to write the limit; at most 16. Each write is a server-side
    /// apply (field manager inflight) of that one value, made only when it
    /// changes. The objects must exist; a missing or forbidden one gives a
    /// Warning event and LimitsSynced=False, and scaling goes on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub sinks: Vec<LimitSink>,
}

/// The adaptive limit: each tick, gradient = tolerance x baseline /
/// latency (within [0.5, 2]); the limit moves towards limit x gradient,
/// smoothed with smoothingHalfLife, within [min, max]. It does not grow
/// while pods carry less than half of it. See the README for the details.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.min <= self.max")
        .message("adaptive.min must be less than or equal to adaptive.max")
        .field_path(".min"),
    validation = Rule::new("!has(self.initial) || (self.initial >= self.min && self.initial <= self.max)")
        .message("adaptive.initial must be within [min, max]")
        .field_path(".initial")
)]
pub struct AdaptiveLimits {
    /// The lowest limit per pod; at least 1. Default 1.
    #[serde(default = "default_adaptive_min")]
    #[schemars(range(min = 1))]
    pub min: u32,
    /// The highest limit per pod. Required; at least min.
    #[schemars(range(min = 1))]
    pub max: u32,
    /// The limit before latency has been measured, within [min, max].
    /// Defaults to min. After a restart the limit resumes from status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub initial: Option<u32>,
    /// Latency up to this multiple of the no-load baseline counts as near
    /// it: the limit settles where latency is tolerance x baseline. Greater
    /// than 1. Default 1.1.
    #[serde(default = "default_adaptive_tolerance")]
    #[schemars(extend("minimum" = 1, "exclusiveMinimum" = true))]
    pub tolerance: f64,
    /// Half-life of the smoothing of the limit: the limit moves half-way to
    /// its target in this long. Default 30s.
    #[serde(default = "default_adaptive_half_life")]
    pub smoothing_half_life: PositiveDuration,
    /// The no-load baseline latency is the lowest latency seen; it is
    /// re-learned this often from the latency seen while pods carried at
    /// most half the limit (so a long overload never becomes the baseline).
    /// Default 10m.
    #[serde(default = "default_baseline_window")]
    pub baseline_window: PositiveDuration,
}

/// One object the limit is written to. Set exactly one of configMap,
/// annotation and field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.configMap) ? 1 : 0) + (has(self.annotation) ? 1 : 0) + (has(self.field) ? 1 : 0) == 1")
    .message("set exactly one of configMap, annotation and field"))]
pub struct LimitSink {
    /// A key of a ConfigMap in the policy's namespace, which the application
    /// reads. Only that key is written; the ConfigMap must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapSink>,
    /// An annotation on the target, or on a Service in the policy's
    /// namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation: Option<AnnotationSink>,
    /// Any field of any namespaced object in the policy's namespace, by
    /// apiVersion, kind, name and JSON pointer: e.g. an Istio
    /// DestinationRule's /spec/trafficPolicy/connectionPool/http/http2MaxRequests,
    /// or an Envoy Gateway BackendTrafficPolicy's
    /// /spec/circuitBreaker/maxParallelRequests. Written as an integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<FieldSink>,
    /// Which number to write: PerPod (the limit of one pod) or Total
    /// (perPod x the pods that are Ready, at most the target's replicas).
    /// Default PerPod.
    #[serde(default)]
    pub value: LimitValue,
}

/// A ConfigMap key.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapSink {
    /// Name of the ConfigMap, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The key to write (the value is written as a decimal string).
    #[schemars(length(min = 1, max = 253), regex(pattern = r"^[-._a-zA-Z0-9]+$"))]
    pub key: String,
}

/// An annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationSink {
    /// The annotation key, e.g. example.com/max-concurrency.
    #[schemars(
        length(min = 1, max = 317),
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        )
    )]
    pub key: String,
    /// Annotate this Service (in the policy's namespace) instead of the
    /// target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service: Option<String>,
}

/// A field of an object, by JSON pointer.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldSink {
    /// API group and version of the object, e.g. networking.istio.io/v1.
    #[schemars(length(min = 1, max = 253))]
    pub api_version: String,
    /// Kind of the object, e.g. DestinationRule.
    #[schemars(length(min = 1, max = 63))]
    pub kind: String,
    /// Name of the object, in the policy's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// JSON pointer (RFC 6901) to the field, e.g.
    /// /spec/trafficPolicy/connectionPool/http/http2MaxRequests. Only
    /// object fields (no list items), under /spec or another top-level
    /// field other than /metadata, /apiVersion, /kind and /status.
    #[schemars(length(min = 2, max = 1024), regex(pattern = r"^(/([^/~]|~[01])+)+$"))]
    pub pointer: String,
}

/// PerPod or Total.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum LimitValue {
    /// The limit of one pod.
    #[default]
    PerPod,
    /// perPod x the pods that are Ready (at most the target's replicas).
    Total,
}

/// What to do when metrics keep failing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Fallback {
    /// After this many consecutive failed evaluations (missing, stale or
    /// invalid metrics)... Default 3.
    #[serde(default = "default_after_failures")]
    #[schemars(range(min = 1))]
    pub after_failures: u32,
    /// ...scale to this many replicas; within [minReplicas, maxReplicas].
    pub replicas: u32,
}

/// Enforce or DryRun.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum Mode {
    /// Scale the target.
    #[default]
    Enforce,
    /// Decide and record, never change the target.
    DryRun,
}

/// What the controller last saw and did.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = kubernetes_integer_formats)]
pub struct ConcurrencyPolicyStatus {
    /// The spec generation the status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, MetricsAvailable, ScalingActive, ScalingLimited, Panic and,
    /// with spec.limits, LimitsSynced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Replicas the target has (its spec.replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_replicas: Option<u32>,
    /// Replicas the last decision asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_replicas: Option<u32>,
    /// When the policy last changed the target's replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<Time>,
    /// Direction of the last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_direction: Option<ScaleDirection>,
    /// The numbers behind the last decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_decision: Option<DecisionSummary>,
    /// Learned time from a scale-up to its pods being Ready, in seconds;
    /// the prediction horizon when it is auto.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lead_time_seconds: Option<f64>,
    /// The service's concurrency limits and where they were written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<LimitsStatus>,
}

/// The limits now, and each sink's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsStatus {
    /// The limit of one pod.
    pub per_pod: u32,
    /// perPod x pods.
    pub total: u32,
    /// The pods the total counts: Ready, at most the target's replicas (or,
    /// just before a scale-down, the replicas it goes to).
    pub pods: u32,
    /// The adaptive controller's numbers, with limits.adaptive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveStatus>,
    /// One entry per sink, in the order of spec.limits.sinks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkStatus>,
}

/// The adaptive limit's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdaptiveStatus {
    /// The limit before rounding.
    pub limit: f64,
    /// The last latency read, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_seconds: Option<f64>,
    /// The learned no-load latency, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_seconds: Option<f64>,
    /// Why the limit did not follow the latency at the last tick:
    /// AppLimited, InvalidLatency or LatencyUnavailable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

/// One sink's state.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SinkStatus {
    /// The sink, e.g. "ConfigMap web-limits key maxConcurrency".
    pub sink: String,
    /// The value it holds (the last one written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<u32>,
    /// Synced, NotFound, Forbidden, Invalid, Failed or DryRun.
    pub state: String,
    /// What went wrong, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Up or Down.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ScaleDirection {
    Up,
    Down,
}

/// The numbers behind a decision. Demand figures are in requests (concurrency).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionSummary {
    /// Why: ScaleUp, ScaleDown, WithinTolerance, Steady, Stabilizing,
    /// RecurringFloor, Cooldown, RateLimited, Panic, MetricsInvalid,
    /// Fallback or BelowActivation.
    pub reason: String,
    /// Requests in flight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<f64>,
    /// Requests queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_depth: Option<f64>,
    /// Requests arriving per second (with metrics.arrivalRate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_rate: Option<f64>,
    /// Steady demand: in flight plus queue growth x service time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand: Option<f64>,
    /// Smoothed demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smoothed: Option<f64>,
    /// Forecast demand at the horizon.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// The seasonal forecast (prediction.season), when it forecast a rise
    /// and has come true often enough to be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasonal_forecast: Option<f64>,
    /// Replicas the demand asked for before windows, steps and bounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommended: Option<u32>,
    /// What bounded the recommendation: MinReplicas, MaxReplicas,
    /// ScaleUpStep or ScaleDownStep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limited_by: Option<String>,
}

/// The API server knows the integer formats int32 and int64 and warns about
/// any other ("unrecognized format"), such as the uint32 schemars writes for
/// u32. Replica counts are int32 in Kubernetes anyway.
fn kubernetes_integer_formats(schema: &mut Schema) {
    if schema.get("format").and_then(|f| f.as_str()) == Some("uint32") {
        schema.insert("format".into(), "int32".into());
    }
    transform_subschemas(&mut kubernetes_integer_formats, schema);
}

// Defaults. They match `scaling::Config::default()` (a test checks), and
// schemars copies each into the schema, so the API server fills them in.
fn default_min_replicas() -> u32 {
    1
}
fn default_queue_drain_time() -> PositiveDuration {
    "30s".into()
}
fn default_max_sample_age() -> PositiveDuration {
    "30s".into()
}
fn default_target_api_version() -> String {
    "apps/v1".to_owned()
}
fn default_ca_key() -> String {
    "ca.crt".to_owned()
}
fn default_utilization() -> f64 {
    0.8
}
fn default_half_life() -> PositiveDuration {
    "30s".into()
}
fn default_true() -> bool {
    true
}
fn default_tolerance() -> f64 {
    0.1
}
fn default_reverse_cooldown() -> Duration {
    "60s".into()
}
fn default_panic_window() -> PositiveDuration {
    "6s".into()
}
fn default_panic_threshold() -> f64 {
    2.0
}
fn default_scale_up_window() -> Duration {
    "0s".into()
}
fn default_scale_up_step() -> MaxStep {
    MaxStep {
        percent: Some(1000),
        pods: Some(4),
    }
}
fn default_scale_up_period() -> PositiveDuration {
    "15s".into()
}
fn default_season() -> Duration {
    "24h".into()
}
fn default_floor_window() -> Duration {
    "1h".into()
}
fn default_floor_percentile() -> u32 {
    50
}
fn default_scale_down_window() -> Duration {
    "300s".into()
}
fn default_scale_down_step() -> MaxStep {
    MaxStep {
        percent: Some(50),
        pods: None,
    }
}
fn default_scale_down_period() -> PositiveDuration {
    "30s".into()
}
fn default_after_failures() -> u32 {
    3
}
fn default_adaptive_min() -> u32 {
    1
}
fn default_adaptive_tolerance() -> f64 {
    1.1
}
fn default_adaptive_half_life() -> PositiveDuration {
    "30s".into()
}
fn default_baseline_window() -> PositiveDuration {
    "10m".into()
}

impl Default for Smoothing {
    fn default() -> Self {
        Smoothing {
            half_life: default_half_life(),
        }
    }
}

impl Default for Prediction {
    fn default() -> Self {
        Prediction {
            enabled: default_true(),
            horizon: Horizon::default(),
            season: default_season(),
        }
    }
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            tolerance: default_tolerance(),
            panic: Panic::default(),
            scale_up: ScaleUpRules::default(),
            scale_down: ScaleDownRules::default(),
            reverse_cooldown: default_reverse_cooldown(),
        }
    }
}

impl Default for Panic {
    fn default() -> Self {
        Panic {
            window: default_panic_window(),
            threshold: default_panic_threshold(),
        }
    }
}

impl Default for ScaleUpRules {
    fn default() -> Self {
        ScaleUpRules {
            stabilization_window: default_scale_up_window(),
            max_step: default_scale_up_step(),
            period: default_scale_up_period(),
        }
    }
}

impl Default for ScaleDownRules {
    fn default() -> Self {
        ScaleDownRules {
            stabilization_window: default_scale_down_window(),
            max_step: default_scale_down_step(),
            period: default_scale_down_period(),
            early: true,
            floor: ScaleDownFloor::default(),
        }
    }
}

impl Default for ScaleDownFloor {
    fn default() -> Self {
        ScaleDownFloor {
            window: default_floor_window(),
            percentile: default_floor_percentile(),
        }
    }
}
