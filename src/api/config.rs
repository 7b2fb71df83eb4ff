//! From a `ConcurrencyPolicySpec` to the engine's `scaling::Config`, checking
//! every value on the way. The schema catches most mistakes at admission,
//! but objects created before the CRD was updated (or with validation off)
//! can still hold anything, so each value is checked again here and the
//! error names its field path.
use crate::scaling::{self, Config, DirectionRules, PanicConfig, PredictionConfig};

use super::v1alpha1::{ConcurrencyPolicySpec, Duration, MaxStep, PositiveDuration};

/// Prediction horizon when the spec says `auto` and no lead time has been
/// learned yet: roughly the start-up time of a typical pod (image cached,
/// a few seconds of readiness probing).
pub const DEFAULT_HORIZON_SECS: f64 = 30.0;

/// One invalid value in a policy spec: the field path (e.g.
/// `spec.behavior.scaleUp.period`) and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct SpecError {
    pub field: String,
    pub problem: String,
}

impl SpecError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        SpecError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

/// Collects every error instead of stopping at the first, so a user fixes
/// them all in one edit.
#[derive(Default)]
struct Checks {
    errors: Vec<SpecError>,
}

impl Checks {
    fn fail(&mut self, field: &str, problem: impl Into<String>) {
        self.errors.push(SpecError::new(field, problem));
    }

    fn keep<T: Default>(&mut self, result: Result<T, SpecError>) -> T {
        result.unwrap_or_else(|e| {
            self.errors.push(e);
            T::default()
        })
    }

    fn duration(&mut self, field: &str, d: &Duration) -> f64 {
        self.keep(d.seconds(field))
    }

    fn positive_duration(&mut self, field: &str, d: &PositiveDuration) -> f64 {
        self.keep(d.seconds(field))
    }

    /// A finite number satisfying `ok`; `expected` completes "must be ...".
    fn number(&mut self, field: &str, value: f64, ok: bool, expected: &str) -> f64 {
        if !value.is_finite() || !ok {
            self.fail(
                field,
                format!("{value} is out of range: must be {expected}"),
            );
        }
        value
    }

    fn not_blank(&mut self, field: &str, value: &str) {
        if value.trim().is_empty() {
            self.fail(field, "must not be empty");
        }
    }

    fn step(&mut self, field: &str, step: &MaxStep) -> (Option<f64>, Option<u32>) {
        if step.percent == Some(0) {
            self.fail(&format!("{field}.percent"), "must be at least 1");
        }
        if step.pods == Some(0) {
            self.fail(&format!("{field}.pods"), "must be at least 1");
        }
        (step.percent.map(f64::from), step.pods)
    }

    fn finish<T>(self, value: T) -> Result<T, Vec<SpecError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

impl ConcurrencyPolicySpec {
    /// The engine configuration for this spec. `learned_lead_time_secs` is
    /// the observed time from a scale-up to Ready pods; it is the forecast
    /// horizon when `prediction.horizon` is `auto` (30s until one is
    /// learned). Returns the first invalid value; `validate` lists them all.
    pub fn engine_config(&self, learned_lead_time_secs: Option<f64>) -> Result<Config, SpecError> {
        self.checked_config(learned_lead_time_secs)
            .map_err(|errors| {
                errors
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| SpecError::new("spec", "is invalid"))
            })
    }

    /// Every invalid value in the spec (empty when it is valid).
    pub fn validate(&self) -> Result<(), Vec<SpecError>> {
        self.checked_config(None).map(|_| ())
    }

    /// `spec.syncPeriod` in seconds, when set.
    pub fn sync_period_secs(&self) -> Result<Option<f64>, SpecError> {
        self.sync_period
            .as_ref()
            .map(|d| d.seconds("spec.syncPeriod"))
            .transpose()
    }

    fn checked_config(
        &self,
        learned_lead_time_secs: Option<f64>,
    ) -> Result<Config, Vec<SpecError>> {
        let mut c = Checks::default();

        c.not_blank("spec.targetRef.apiVersion", &self.target_ref.api_version);
        c.not_blank("spec.targetRef.kind", &self.target_ref.kind);
        c.not_blank("spec.targetRef.name", &self.target_ref.name);
        if self.max_replicas < 1 {
            c.fail("spec.maxReplicas", "must be at least 1");
        }
        if self.min_replicas > self.max_replicas {
            c.fail(
                "spec.minReplicas",
                format!(
                    "{} is more than maxReplicas ({}); minReplicas must be less than or equal to maxReplicas",
                    self.min_replicas, self.max_replicas
                ),
            );
        }

        c.not_blank("spec.metrics.inFlight.query", &self.metrics.in_flight.query);
        if let Some(queue) = &self.metrics.queue_depth {
            c.not_blank("spec.metrics.queueDepth.query", &queue.query);
        }
        if let Some(address) = self
            .metrics
            .prometheus
            .as_ref()
            .and_then(|p| p.address.as_deref())
            && !(address.starts_with("http://") || address.starts_with("https://"))
        {
            c.fail(
                "spec.metrics.prometheus.address",
                format!("{address:?} must start with http:// or https://"),
            );
        }
        let queue_drain_secs = c.positive_duration("spec.queueDrainTime", &self.queue_drain_time);

        let target = &self.target;
        let concurrency_per_pod = c.number(
            "spec.target.concurrencyPerPod",
            target.concurrency_per_pod,
            target.concurrency_per_pod > 0.0,
            "greater than 0",
        );
        let utilization = c.number(
            "spec.target.utilization",
            target.utilization,
            target.utilization > 0.0 && target.utilization <= 1.0,
            "greater than 0 and at most 1",
        );
        let service_time_secs = target
            .service_time
            .as_ref()
            .map(|d| c.positive_duration("spec.target.serviceTime", d));

        let smoothing_half_life_secs =
            c.positive_duration("spec.smoothing.halfLife", &self.smoothing.half_life);

        let horizon = c.keep(self.prediction.horizon.seconds("spec.prediction.horizon"));
        let prediction = self.prediction.enabled.then(|| PredictionConfig {
            horizon_secs: horizon.unwrap_or_else(|| learned_or_default(learned_lead_time_secs)),
        });

        let activation_threshold = c.number(
            "spec.activationThreshold",
            self.activation_threshold,
            self.activation_threshold >= 0.0,
            "0 or more",
        );

        let b = &self.behavior;
        let tolerance = c.number(
            "spec.behavior.tolerance",
            b.tolerance,
            (0.0..1.0).contains(&b.tolerance),
            "at least 0 and less than 1",
        );
        let panic = PanicConfig {
            window_secs: c.positive_duration("spec.behavior.panic.window", &b.panic.window),
            threshold: c.number(
                "spec.behavior.panic.threshold",
                b.panic.threshold,
                b.panic.threshold > 1.0,
                "greater than 1",
            ),
        };
        let (up_percent, up_pods) = c.step("spec.behavior.scaleUp.maxStep", &b.scale_up.max_step);
        let scale_up = DirectionRules {
            stabilization_window_secs: c.duration(
                "spec.behavior.scaleUp.stabilizationWindow",
                &b.scale_up.stabilization_window,
            ),
            max_step_pods: up_pods,
            max_step_percent: up_percent,
            period_secs: c.positive_duration("spec.behavior.scaleUp.period", &b.scale_up.period),
        };
        let (down_percent, down_pods) =
            c.step("spec.behavior.scaleDown.maxStep", &b.scale_down.max_step);
        let scale_down = DirectionRules {
            stabilization_window_secs: c.duration(
                "spec.behavior.scaleDown.stabilizationWindow",
                &b.scale_down.stabilization_window,
            ),
            max_step_pods: down_pods,
            max_step_percent: down_percent,
            period_secs: c
                .positive_duration("spec.behavior.scaleDown.period", &b.scale_down.period),
        };
        let reverse_cooldown_secs =
            c.duration("spec.behavior.reverseCooldown", &b.reverse_cooldown);

        if self.limits.as_ref().and_then(|l| l.per_pod) == Some(0) {
            c.fail("spec.limits.perPod", "must be at least 1");
        }

        let fallback = self.fallback.as_ref().map(|f| {
            if f.after_failures < 1 {
                c.fail("spec.fallback.afterFailures", "must be at least 1");
            }
            if f.replicas < self.min_replicas || f.replicas > self.max_replicas {
                c.fail(
                    "spec.fallback.replicas",
                    format!(
                        "{} is outside [minReplicas, maxReplicas] = [{}, {}]",
                        f.replicas, self.min_replicas, self.max_replicas
                    ),
                );
            }
            scaling::Fallback {
                after_failures: f.after_failures,
                replicas: f.replicas,
            }
        });

        if let Err(e) = self.sync_period_secs() {
            c.errors.push(e);
        }
        let max_sample_age_secs = c.positive_duration("spec.maxSampleAge", &self.max_sample_age);

        // `..Config::default()` keeps this compiling when the engine gains fields;
        // today every field is set, which clippy flags.
        #[allow(clippy::needless_update)]
        let config = Config {
            min_replicas: self.min_replicas,
            max_replicas: self.max_replicas,
            concurrency_per_pod,
            utilization,
            service_time_secs,
            queue_drain_secs,
            smoothing_half_life_secs,
            panic,
            prediction,
            tolerance,
            scale_up,
            scale_down,
            reverse_cooldown_secs,
            activation_threshold,
            max_sample_age_secs,
            fallback,
            ..Config::default()
        };
        c.finish(config)
    }
}

/// The learned lead time when it is a usable number, else the default.
fn learned_or_default(learned: Option<f64>) -> f64 {
    match learned {
        Some(secs) if secs.is_finite() && secs > 0.0 => secs,
        _ => DEFAULT_HORIZON_SECS,
    }
}
