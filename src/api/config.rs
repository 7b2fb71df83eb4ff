//! From a `ConcurrencyPolicySpec` to the engine's `scaling::Config`, checking
//! every value on the way. The schema catches most mistakes at admission,
//! but objects created before the CRD was updated (or with validation off)
//! can still hold anything, so each value is checked again here and the
//! error names its field path.
use crate::scaling::adaptive::AdaptiveConfig;
use crate::scaling::{
    self, Config, DirectionRules, FloorConfig, MAX_FLOOR_WINDOW_SECS, MAX_SEASON_SECS,
    MIN_SEASON_SECS, PanicConfig, PredictionConfig,
};

use super::v1alpha1::{
    AdaptiveLimits, ConcurrencyPolicySpec, Duration, LimitSink, Limits, MaxStep, PositiveDuration,
};

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

    /// The adaptive limit's configuration, with `spec.limits.adaptive`
    /// (`None` without it). Errors name the field.
    pub fn adaptive_config(&self) -> Result<Option<AdaptiveConfig>, SpecError> {
        let Some(adaptive) = self.limits.as_ref().and_then(|l| l.adaptive.as_ref()) else {
            return Ok(None);
        };
        let mut c = Checks::default();
        let config = adaptive_config(&mut c, adaptive);
        c.finish(Some(config)).map_err(|errors| {
            errors
                .into_iter()
                .next()
                .unwrap_or_else(|| SpecError::new("spec.limits.adaptive", "is invalid"))
        })
    }

    /// True when `target.concurrencyPerPod` is left out, so the engine plans
    /// pods for the limit.
    pub fn target_follows_limits(&self) -> bool {
        self.target.concurrency_per_pod.is_none() && self.limits.is_some()
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
        if let Some(arrivals) = &self.metrics.arrival_rate {
            c.not_blank("spec.metrics.arrivalRate.query", &arrivals.query);
            if self.target.service_time.is_none() {
                c.fail(
                    "spec.target.serviceTime",
                    "is required with spec.metrics.arrivalRate (arrivals x service time is the demand)",
                );
            }
        }
        if let Some(latency) = &self.metrics.latency {
            c.not_blank("spec.metrics.latency.query", &latency.query);
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
        let concurrency_per_pod = match (target.concurrency_per_pod, self.limits.as_ref()) {
            (Some(per_pod), _) => c.number(
                "spec.target.concurrencyPerPod",
                per_pod,
                per_pod > 0.0,
                "greater than 0",
            ),
            // Follows the limit; the controller replaces the adaptive
            // starting point with the current adaptive limit.
            (None, Some(limits)) => limits.starting_per_pod().map_or(1.0, f64::from),
            (None, None) => {
                c.fail(
                    "spec.target.concurrencyPerPod",
                    "is required unless spec.limits is set",
                );
                1.0
            }
        };
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
        let season = c.duration("spec.prediction.season", &self.prediction.season);
        if season != 0.0 && !(MIN_SEASON_SECS..=MAX_SEASON_SECS).contains(&season) {
            c.fail(
                "spec.prediction.season",
                format!(
                    "{:?} is out of range: must be 0s (off) or from 1h to 168h",
                    self.prediction.season.0
                ),
            );
        }
        let prediction = self.prediction.enabled.then(|| PredictionConfig {
            horizon_secs: horizon.unwrap_or_else(|| learned_or_default(learned_lead_time_secs)),
            season_secs: (season > 0.0).then_some(season),
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
        let floor = &b.scale_down.floor;
        let floor_window = c.duration("spec.behavior.scaleDown.floor.window", &floor.window);
        if floor_window > MAX_FLOOR_WINDOW_SECS {
            c.fail(
                "spec.behavior.scaleDown.floor.window",
                format!(
                    "{:?} is longer than 1h (the history a restarted controller warms up from)",
                    floor.window.0
                ),
            );
        }
        if !(1..=100).contains(&floor.percentile) {
            c.fail(
                "spec.behavior.scaleDown.floor.percentile",
                format!("{} is out of range: must be 1 to 100", floor.percentile),
            );
        }
        let scale_down_floor = (floor_window > 0.0).then(|| FloorConfig {
            window_secs: floor_window,
            quantile: f64::from(floor.percentile) / 100.0,
        });

        if let Some(limits) = &self.limits {
            check_limits(&mut c, limits, self.metrics.latency.is_some());
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
            early_scale_down: b.scale_down.early,
            scale_down_floor,
            activation_threshold,
            max_sample_age_secs,
            fallback,
            ..Config::default()
        };
        c.finish(config)
    }
}

impl Limits {
    /// The per-pod limit before anything was measured: `perPod`, or the
    /// adaptive `initial` (default `min`).
    pub fn starting_per_pod(&self) -> Option<u32> {
        match (&self.per_pod, &self.adaptive) {
            (Some(per_pod), _) => Some(*per_pod),
            (None, Some(a)) => {
                // Never panics, even with min > max (the schema forbids it;
                // an object from before the schema may not).
                let low = a.min.max(1);
                Some(a.initial.unwrap_or(low).clamp(low, a.max.max(low)))
            }
            (None, None) => None,
        }
    }
}

fn check_limits(c: &mut Checks, limits: &Limits, has_latency: bool) {
    match (&limits.per_pod, &limits.adaptive) {
        (Some(0), _) => c.fail("spec.limits.perPod", "must be at least 1"),
        (Some(_), Some(_)) | (None, None) => c.fail(
            "spec.limits",
            "set exactly one of limits.perPod and limits.adaptive",
        ),
        _ => {}
    }
    if let Some(adaptive) = &limits.adaptive {
        adaptive_config(c, adaptive);
        if !has_latency {
            c.fail(
                "spec.metrics.latency",
                "is required with spec.limits.adaptive",
            );
        }
    }
    if limits.sinks.len() > MAX_SINKS {
        c.fail(
            "spec.limits.sinks",
            format!("has {} entries; at most {MAX_SINKS}", limits.sinks.len()),
        );
    }
    for (i, sink) in limits.sinks.iter().enumerate() {
        check_sink(c, &format!("spec.limits.sinks[{i}]"), sink);
    }
}

/// The most sinks one policy may have (the schema's maxItems).
pub const MAX_SINKS: usize = 16;

fn check_sink(c: &mut Checks, field: &str, sink: &LimitSink) {
    let kinds = [
        sink.config_map.is_some(),
        sink.annotation.is_some(),
        sink.field.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        c.fail(field, "set exactly one of configMap, annotation and field");
    }
    if let Some(cm) = &sink.config_map {
        c.not_blank(&format!("{field}.configMap.name"), &cm.name);
        if cm.key.is_empty()
            || !cm
                .key
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || "-._".contains(ch))
        {
            c.fail(
                &format!("{field}.configMap.key"),
                format!("{:?} is not a valid ConfigMap key", cm.key),
            );
        }
    }
    if let Some(annotation) = &sink.annotation {
        c.not_blank(&format!("{field}.annotation.key"), &annotation.key);
        if let Some(service) = &annotation.service {
            c.not_blank(&format!("{field}.annotation.service"), service);
        }
    }
    if let Some(f) = &sink.field {
        c.not_blank(&format!("{field}.field.apiVersion"), &f.api_version);
        c.not_blank(&format!("{field}.field.kind"), &f.kind);
        c.not_blank(&format!("{field}.field.name"), &f.name);
        if let Err(problem) = sink_pointer(&f.pointer) {
            c.fail(&format!("{field}.field.pointer"), problem);
        }
    }
}

/// The tokens of a field sink's JSON pointer (RFC 6901, `~1` is `/` and
/// `~0` is `~`), checked: at least one token, none empty, and not into
/// `metadata`, `apiVersion`, `kind` or `status` (which a sink must not own).
pub fn sink_pointer(pointer: &str) -> Result<Vec<String>, String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Err(format!("{pointer:?} must start with /"));
    };
    let mut tokens = Vec::new();
    for raw in rest.split('/') {
        if raw.is_empty() {
            return Err(format!("{pointer:?} has an empty segment"));
        }
        let mut token = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(ch) = chars.next() {
            if ch != '~' {
                token.push(ch);
                continue;
            }
            match chars.next() {
                Some('0') => token.push('~'),
                Some('1') => token.push('/'),
                _ => return Err(format!("{pointer:?}: ~ must be followed by 0 or 1")),
            }
        }
        tokens.push(token);
    }
    if let Some(first) = tokens.first()
        && ["metadata", "apiVersion", "kind", "status"].contains(&first.as_str())
    {
        return Err(format!("{pointer:?}: a sink cannot write /{first}"));
    }
    Ok(tokens)
}

fn adaptive_config(c: &mut Checks, a: &AdaptiveLimits) -> AdaptiveConfig {
    const FIELD: &str = "spec.limits.adaptive";
    if a.min < 1 {
        c.fail(&format!("{FIELD}.min"), "must be at least 1");
    }
    if a.max < a.min.max(1) {
        c.fail(
            &format!("{FIELD}.max"),
            format!("{} is less than min ({})", a.max, a.min),
        );
    }
    if let Some(initial) = a.initial
        && (initial < a.min || initial > a.max)
    {
        c.fail(
            &format!("{FIELD}.initial"),
            format!("{initial} is outside [min, max] = [{}, {}]", a.min, a.max),
        );
    }
    let tolerance = c.number(
        &format!("{FIELD}.tolerance"),
        a.tolerance,
        a.tolerance > 1.0,
        "greater than 1",
    );
    AdaptiveConfig {
        min_limit: f64::from(a.min.max(1)),
        max_limit: f64::from(a.max.max(a.min).max(1)),
        initial_limit: f64::from(a.initial.unwrap_or(a.min).max(1)),
        tolerance,
        smoothing_half_life_secs: c.positive_duration(
            &format!("{FIELD}.smoothingHalfLife"),
            &a.smoothing_half_life,
        ),
        baseline_window_secs: c
            .positive_duration(&format!("{FIELD}.baselineWindow"), &a.baseline_window),
    }
}

/// The learned lead time when it is a usable number, else the default.
fn learned_or_default(learned: Option<f64>) -> f64 {
    match learned {
        Some(secs) if secs.is_finite() && secs > 0.0 => secs,
        _ => DEFAULT_HORIZON_SECS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ConcurrencyPolicySpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    const BASE: &str = r#"
targetRef: {kind: Deployment, name: checkout}
maxReplicas: 20
metrics:
  inFlight: {query: 'sum(http_requests_in_flight)'}
  arrivalRate: {query: 'sum(rate(ingress_requests_total[15s]))'}
"#;

    #[test]
    fn arrival_rate_needs_a_service_time() {
        let without = spec(&format!("{BASE}target: {{concurrencyPerPod: 10}}\n"));
        let err = without.engine_config(None).unwrap_err();
        assert_eq!(err.field, "spec.target.serviceTime");
        assert!(
            err.problem.contains("spec.metrics.arrivalRate"),
            "{}",
            err.problem
        );
        assert_eq!(without.validate().unwrap_err(), vec![err]);

        let with = spec(&format!(
            "{BASE}target: {{concurrencyPerPod: 10, serviceTime: 100ms}}\n"
        ));
        let config = with.engine_config(None).unwrap();
        assert_eq!(config.service_time_secs, Some(0.1));
        assert_eq!(with.validate(), Ok(()));
    }

    #[test]
    fn a_blank_arrival_rate_query_is_refused() {
        let blank = spec(&format!(
            "{}target: {{concurrencyPerPod: 10, serviceTime: 100ms}}\n",
            BASE.replace("sum(rate(ingress_requests_total[15s]))", "  ")
        ));
        let errors = blank.validate().unwrap_err();
        assert_eq!(
            errors,
            vec![SpecError::new(
                "spec.metrics.arrivalRate.query",
                "must not be empty"
            )]
        );
    }

    #[test]
    fn without_an_arrival_rate_no_service_time_is_needed() {
        let no_arrivals = spec(
            r#"
targetRef: {kind: Deployment, name: checkout}
maxReplicas: 20
metrics:
  inFlight: {query: 'sum(http_requests_in_flight)'}
target: {concurrencyPerPod: 10}
"#,
        );
        assert_eq!(no_arrivals.validate(), Ok(()));
    }
}
