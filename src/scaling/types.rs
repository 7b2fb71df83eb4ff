//! Plain data going in and out of the engine. Times are seconds (f64) on a
//! caller-chosen clock: unix time in the controller, simulated time in the
//! simulator. The engine never reads a clock.

/// Everything the engine needs to know about a policy, already parsed and
/// validated (durations in seconds). Built from a `ConcurrencyPolicySpec` by
/// `api::v1alpha1::ConcurrencyPolicySpec::engine_config`.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub min_replicas: u32,
    pub max_replicas: u32,
    /// Desired in-flight requests per ready pod at 100% utilization.
    pub concurrency_per_pod: f64,
    /// Plan for this fraction of `concurrency_per_pod` (0, 1].
    pub utilization: f64,
    /// Mean service time of one request, when known (from the spec). Used to
    /// turn queue growth and backlog into concurrency.
    pub service_time_secs: Option<f64>,
    /// A backlog should be drained within this.
    pub queue_drain_secs: f64,
    /// Half-life of the EWMA on the stable path.
    pub smoothing_half_life_secs: f64,
    pub panic: PanicConfig,
    /// `None` disables the forecast.
    pub prediction: Option<PredictionConfig>,
    /// Hysteresis on the usage ratio demand / (current x per-pod target):
    /// no scale-down while the ratio is >= 1 - tolerance, and a scale-down
    /// keeps this fraction of headroom; right after a scale-down, no
    /// scale-up while the ratio is <= 1 + tolerance (capped, see
    /// `engine::HYSTERESIS_MAX_FILL`). A scale-down smaller than
    /// `min(tolerance, plan::MIN_SCALE_DOWN_FRACTION)` of the fleet is
    /// skipped.
    pub tolerance: f64,
    pub scale_up: DirectionRules,
    pub scale_down: DirectionRules,
    /// No scale-down within this long after a scale-up, and the reverse.
    pub reverse_cooldown_secs: f64,
    /// Let a collapse, a clear drop or a steady decline scale down before the
    /// scale-down window ends (see `window::early_scale_down`).
    pub early_scale_down: bool,
    /// Hold scale-downs at the pods for a percentile of the demand while it
    /// recurs (see `floor::RecurringFloor`); None disables it.
    pub scale_down_floor: Option<FloorConfig>,
    /// With `min_replicas == 0`: leave zero only when demand exceeds this.
    pub activation_threshold: f64,
    /// A sample older than this (relative to `now`) is stale.
    pub max_sample_age_secs: f64,
    pub fallback: Option<Fallback>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PanicConfig {
    /// The short window whose average demand drives the panic path.
    pub window_secs: f64,
    /// Enter panic when panic-window demand / current capacity >= threshold.
    pub threshold: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FloorConfig {
    /// The demand the floor reads, in seconds back from now.
    pub window_secs: f64,
    /// The floor is the pods for this quantile (0, 1] of that demand.
    pub quantile: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PredictionConfig {
    /// How far ahead the Holt forecast looks (the learned pod start-up time
    /// when the spec says `auto`; the controller fills it in).
    pub horizon_secs: f64,
    /// The seasonal forecast's season (see `seasonal`): demand that rose
    /// one season ago is expected again. None: off.
    pub season_secs: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct DirectionRules {
    /// Act on the most conservative recommendation seen within this window.
    pub stabilization_window_secs: f64,
    /// At most this many pods per period (None: no pod limit).
    pub max_step_pods: Option<u32>,
    /// At most this percent of the current replicas per period (None: no limit).
    /// With both limits set, the larger allowed change wins (as HPA's
    /// default `selectPolicy: Max`).
    pub max_step_percent: Option<f64>,
    pub period_secs: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fallback {
    pub after_failures: u32,
    pub replicas: u32,
}

/// One metric value with the timestamp of its sample.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub timestamp: f64,
}

/// Why a metric could not be read.
#[derive(Clone, Debug, PartialEq)]
pub enum ReadError {
    /// The query returned nothing.
    Missing,
    /// The query failed (timeout, connection refused, bad response...).
    Failed(String),
}

pub type Reading = Result<Sample, ReadError>;

/// What the controller (or the simulator) saw at one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// Requests in flight, summed over the target's pods.
    pub in_flight: Reading,
    /// Requests waiting in a queue; `None` when the policy has no queue metric.
    pub queue_depth: Option<Reading>,
    /// Requests arriving per second, counted before any queue or drop (at a
    /// load balancer or proxy); `None` when the policy has no arrival-rate
    /// metric.
    pub arrival_rate: Option<Reading>,
    /// Pods of the target that are Ready.
    pub ready_replicas: u32,
    /// The target's current `spec.replicas`.
    pub current_replicas: u32,
}

/// The engine's answer for one tick.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The replicas the target should have now (may equal the current ones).
    pub replicas: u32,
    pub reason: Reason,
    pub details: Details,
}

/// Machine-readable reason for a decision. `as_str()` gives the CamelCase
/// name used in status, events and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    ScaleUp,
    ScaleDown,
    /// Desired is within the tolerance band of current, or a scale-down
    /// too small to be worth its risk of a reversal.
    WithinTolerance,
    /// Already at the desired count.
    Steady,
    /// A scale-down held by the scale-down stabilization window (or a
    /// scale-up held by the scale-up window).
    Stabilizing,
    /// A scale-down held by the recurring floor: the demand of the floor's
    /// window keeps coming back to the replicas it holds.
    RecurringFloor,
    /// Direction reversal held by `reverse_cooldown`.
    Cooldown,
    /// A step limit's period has not elapsed since the last scale.
    RateLimited,
    /// Panic mode: scaled up on the short window, or holding (never down).
    Panic,
    /// Metrics missing, stale or invalid: holding (never scaling down).
    MetricsInvalid,
    /// Too many consecutive metric failures: going to fallback replicas.
    Fallback,
    /// At zero replicas and demand below the activation threshold.
    BelowActivation,
}

/// What bounded the recommendation, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    MinReplicas,
    MaxReplicas,
    ScaleUpStep,
    ScaleDownStep,
}

/// The numbers behind a decision, for status, events and the simulator.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Details {
    /// Raw in-flight and queue depth this tick (None when unreadable).
    pub in_flight: Option<f64>,
    pub queue_depth: Option<f64>,
    /// Raw arrival rate this tick, requests per second (None when the policy
    /// has none or it is unreadable).
    pub arrival_rate: Option<f64>,
    /// Steady demand in concurrency: in-flight plus queue growth x service time.
    pub demand: Option<f64>,
    /// Extra concurrency to drain the backlog within `queue_drain_secs`.
    pub drain: Option<f64>,
    /// EWMA of demand (stable path).
    pub smoothed: Option<f64>,
    /// Average demand over the panic window.
    pub panic_demand: Option<f64>,
    /// Forecast demand at the horizon: the larger of the Holt and the
    /// seasonal forecast (None when prediction is off or both are silent).
    pub forecast: Option<f64>,
    /// The seasonal forecast, when it forecast a rise and its record let it
    /// be used (it may still be under the Holt forecast).
    pub seasonal_forecast: Option<f64>,
    /// Concurrency one pod is planned for: concurrency_per_pod x utilization.
    pub per_pod_target: f64,
    /// Replicas the demand asks for before windows, steps and bounds.
    pub recommended: u32,
    pub limited_by: Option<Limit>,
    pub in_panic: bool,
    pub consecutive_failures: u32,
}

/// The documented defaults; they match the CRD's defaults. `max_replicas`
/// and `concurrency_per_pod` have no sensible default in a policy (the CRD
/// requires them); the values here only serve tests and the simulator.
impl Default for Config {
    fn default() -> Self {
        Config {
            min_replicas: 1,
            max_replicas: 100,
            concurrency_per_pod: 10.0,
            utilization: 0.8,
            service_time_secs: None,
            queue_drain_secs: 30.0,
            smoothing_half_life_secs: 30.0,
            panic: PanicConfig {
                window_secs: 6.0,
                threshold: 2.0,
            },
            prediction: Some(PredictionConfig {
                horizon_secs: 30.0,
                season_secs: Some(86_400.0),
            }),
            tolerance: 0.1,
            scale_up: DirectionRules {
                stabilization_window_secs: 0.0,
                max_step_pods: Some(4),
                max_step_percent: Some(1000.0),
                period_secs: 15.0,
            },
            scale_down: DirectionRules {
                stabilization_window_secs: 300.0,
                max_step_pods: None,
                max_step_percent: Some(50.0),
                period_secs: 30.0,
            },
            reverse_cooldown_secs: 60.0,
            early_scale_down: true,
            scale_down_floor: Some(FloorConfig {
                window_secs: 3600.0,
                quantile: 0.5,
            }),
            activation_threshold: 0.0,
            max_sample_age_secs: 30.0,
            fallback: None,
        }
    }
}

/// The direction of a scale action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Up,
    Down,
}

impl Direction {
    /// The CamelCase name used in status, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "Up",
            Direction::Down => "Down",
        }
    }
}

impl Reason {
    /// The CamelCase name used in status, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ScaleUp => "ScaleUp",
            Reason::ScaleDown => "ScaleDown",
            Reason::WithinTolerance => "WithinTolerance",
            Reason::Steady => "Steady",
            Reason::Stabilizing => "Stabilizing",
            Reason::RecurringFloor => "RecurringFloor",
            Reason::Cooldown => "Cooldown",
            Reason::RateLimited => "RateLimited",
            Reason::Panic => "Panic",
            Reason::MetricsInvalid => "MetricsInvalid",
            Reason::Fallback => "Fallback",
            Reason::BelowActivation => "BelowActivation",
        }
    }
}

impl Limit {
    /// The CamelCase name used in status, events and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::MinReplicas => "MinReplicas",
            Limit::MaxReplicas => "MaxReplicas",
            Limit::ScaleUpStep => "ScaleUpStep",
            Limit::ScaleDownStep => "ScaleDownStep",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
