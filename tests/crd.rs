//! The ConcurrencyPolicy CRD: the checked-in YAML matches the code, the
//! schema admits and rejects what it should (checked offline: defaults,
//! OpenAPI constraints, and the CEL rules evaluated by kube-cel), and specs
//! convert to the engine's Config with errors that name the field.
use inflight::api::{
    self, DURATION_PATTERN, HORIZON_PATTERN, SpecError, parse_duration,
    v1alpha1::{
        AdaptiveStatus, ConcurrencyPolicy, ConcurrencyPolicySpec, ConcurrencyPolicyStatus,
        DecisionSummary, LimitValue, LimitsStatus, Mode, ScaleDirection, SinkStatus, condition,
    },
};
use inflight::scaling::adaptive::AdaptiveConfig;
use inflight::scaling::{
    Config, DirectionRules, Fallback, FloorConfig, PanicConfig, PredictionConfig,
};
use serde_json::{Value, json};

const CRD_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/concurrencypolicy.yaml");

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn crd_json() -> Value {
    serde_json::to_value(api::crd()).unwrap()
}

/// The openAPIV3Schema of the (only) version.
fn schema() -> Value {
    crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn spec_of(object: &Value) -> ConcurrencyPolicySpec {
    serde_json::from_value(object["spec"].clone()).unwrap()
}

/// Sets the value at a JSON pointer, creating objects on the way.
fn set(object: &mut Value, pointer: &str, value: Value) {
    let mut at = object;
    let keys: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for key in &keys[..keys.len() - 1] {
        at = at
            .as_object_mut()
            .unwrap()
            .entry(key.to_string())
            .or_insert_with(|| json!({}));
    }
    at.as_object_mut()
        .unwrap()
        .insert(keys[keys.len() - 1].to_string(), value);
}

fn remove(object: &mut Value, pointer: &str) {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object
        .pointer_mut(parent)
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove(key);
}

fn with(base: &Value, pointer: &str, value: Value) -> Value {
    let mut object = base.clone();
    set(&mut object, pointer, value);
    object
}

// ---------------------------------------------------------------------------
// An offline stand-in for the API server's admission of a custom resource:
// structural defaulting, the OpenAPI value constraints the schema uses, and the
// CEL rules. Unknown fields are errors here (kubectl's --validate=strict), so
// a typo in a fixture cannot pass silently.

fn admit(object: &Value) -> Result<Value, Vec<String>> {
    let schema = schema();
    let mut defaulted = object.clone();
    apply_defaults(&schema, &mut defaulted);
    let mut errors = Vec::new();
    check_root(&schema, &defaulted, &mut errors);
    if let Err(cel) = kube_cel::Validator::new().validate(&schema, &defaulted, None) {
        errors.extend(cel.iter().map(|e| format!("{e}")));
    }
    if errors.is_empty() {
        Ok(defaulted)
    } else {
        Err(errors)
    }
}

/// Kubernetes' structural defaulting (apiextensions-apiserver
/// schema/defaulting/algorithm.go): fill missing properties from `default`,
/// then recurse into every property, including the ones just defaulted, so
/// `behavior: {default: {}}` fills in all of behavior's own defaults.
/// (kube_cel::apply_defaults does not recurse into fresh defaults.)
fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(object) => {
            let Some(properties) = schema["properties"].as_object() else {
                return;
            };
            for (key, property) in properties {
                let non_nullable_null = object
                    .get(key)
                    .is_some_and(|v| v.is_null() && property["nullable"] != json!(true));
                if let Some(default) = property.get("default")
                    && (!object.contains_key(key) || non_nullable_null)
                {
                    object.insert(key.clone(), default.clone());
                }
            }
            for (key, child) in object.iter_mut() {
                if let Some(property) = properties.get(key) {
                    apply_defaults(property, child);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                apply_defaults(&schema["items"], item);
            }
        }
        _ => {}
    }
}

fn check_root(schema: &Value, object: &Value, errors: &mut Vec<String>) {
    // apiVersion, kind and metadata are not in the CRD's schema.
    let mut rest = object.clone();
    for key in ["apiVersion", "kind", "metadata"] {
        rest.as_object_mut().unwrap().remove(key);
    }
    check(schema, &rest, "", errors);
}

fn check(schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
    let mut fail = |problem: String| errors.push(format!("{path}: {problem}"));
    if value.is_null() {
        if schema["nullable"] != json!(true) {
            fail("must not be null".into());
        }
        return;
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        fail(format!("{value} is not one of {allowed:?}"));
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(object) = value.as_object() else {
                return fail(format!("{value} is not an object"));
            };
            let properties = schema["properties"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for required in schema["required"].as_array().into_iter().flatten() {
                let required = required.as_str().unwrap();
                if !object.contains_key(required) {
                    fail(format!("{required} is required"));
                }
            }
            for (key, child) in object {
                match properties.get(key) {
                    Some(child_schema) => {
                        check(child_schema, child, &format!("{path}.{key}"), errors)
                    }
                    None => errors.push(format!("{path}.{key}: unknown field")),
                }
            }
        }
        Some("array") => match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check(&schema["items"], item, &format!("{path}[{i}]"), errors);
                }
            }
            None => fail(format!("{value} is not an array")),
        },
        Some("string") => {
            let Some(s) = value.as_str() else {
                return fail(format!("{value} is not a string"));
            };
            let chars = s.chars().count() as u64;
            if let Some(min) = schema["minLength"].as_u64()
                && chars < min
            {
                fail(format!("{s:?} is shorter than {min}"));
            }
            if let Some(max) = schema["maxLength"].as_u64()
                && chars > max
            {
                fail(format!("{s:?} is longer than {max}"));
            }
            if let Some(pattern) = schema["pattern"].as_str()
                && !regex::Regex::new(pattern).unwrap().is_match(s)
            {
                fail(format!("{s:?} does not match {pattern}"));
            }
        }
        Some(kind @ ("integer" | "number")) => {
            let Some(n) = value.as_f64() else {
                return fail(format!("{value} is not a number"));
            };
            if kind == "integer" && !(value.is_i64() || value.is_u64()) {
                fail(format!("{value} is not an integer"));
            }
            if let Some(min) = schema["minimum"].as_f64() {
                let exclusive = schema["exclusiveMinimum"] == json!(true);
                if n < min || (exclusive && n == min) {
                    fail(format!(
                        "{n} is below the minimum {min} (exclusive: {exclusive})"
                    ));
                }
            }
            if let Some(max) = schema["maximum"].as_f64() {
                let exclusive = schema["exclusiveMaximum"] == json!(true);
                if n > max || (exclusive && n == max) {
                    fail(format!(
                        "{n} is above the maximum {max} (exclusive: {exclusive})"
                    ));
                }
            }
        }
        Some("boolean") => {
            if !value.is_boolean() {
                fail(format!("{value} is not a boolean"));
            }
        }
        other => fail(format!("the test cannot check schema type {other:?}")),
    }
}

fn assert_rejected(object: &Value, expected: &str) {
    match admit(object) {
        Ok(_) => panic!(
            "admitted, expected an error containing {expected:?}: {}",
            object["spec"]
        ),
        Err(errors) => assert!(
            errors.iter().any(|e| e.contains(expected)),
            "expected an error containing {expected:?}, got {errors:#?}"
        ),
    }
}

// ---------------------------------------------------------------------------
// The generated CRD.

#[test]
fn checked_in_crd_matches_the_code() {
    let generated = api::crd_yaml().unwrap();
    let checked_in = std::fs::read_to_string(CRD_FILE).unwrap_or_default();
    assert!(
        checked_in == generated,
        "crds/concurrencypolicy.yaml is out of date with src/api: run `make crd` \
         (cargo run -- crd > crds/concurrencypolicy.yaml) and commit the result"
    );
}

#[test]
fn crd_names_columns_and_subresources() {
    let crd = api::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("concurrencypolicies.inflight.dev")
    );
    assert_eq!(crd.spec.group, "inflight.dev");
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(crd.spec.names.kind, "ConcurrencyPolicy");
    assert_eq!(crd.spec.names.short_names, Some(vec!["cpol".to_owned()]));

    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.served && version.storage);
    let subresources = version.subresources.as_ref().expect("subresources");
    assert!(subresources.status.is_some(), "status subresource");

    let columns: Vec<(&str, &str)> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .filter(|c| c.priority.unwrap_or(0) == 0)
        .map(|c| (c.name.as_str(), c.json_path.as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            ("Target", ".spec.targetRef.name"),
            ("Min", ".spec.minReplicas"),
            ("Max", ".spec.maxReplicas"),
            ("Current", ".status.currentReplicas"),
            ("Desired", ".status.desiredReplicas"),
            ("In-flight", ".status.lastDecision.inFlight"),
            ("Mode", ".spec.mode"),
            ("Age", ".metadata.creationTimestamp"),
        ]
    );
}

#[test]
fn spec_carries_the_cel_rules() {
    let schema = schema();
    let rules: Vec<&str> = schema["properties"]["spec"]["x-kubernetes-validations"]
        .as_array()
        .expect("x-kubernetes-validations on spec")
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("self.minReplicas <= self.maxReplicas")),
        "{rules:?}"
    );
    assert!(
        rules
            .iter()
            .any(|r| r.contains("self.fallback.replicas <= self.maxReplicas")),
        "{rules:?}"
    );
}

/// Every CEL rule compiles, is in the CRD-validation scope, and stays within
/// the API server's cost budget (kube-cel's estimate).
#[test]
fn cel_rules_compile_and_stay_cheap() {
    let schema = schema();
    let compiled = kube_cel::compile_schema(&schema);
    assert!(
        !compiled.has_errors(),
        "{:?}",
        compiled.compilation_errors()
    );

    let mut rules = Vec::new();
    collect_rules(&schema, &mut rules);
    assert!(rules.len() >= 5, "{rules:?}");
    for rule in rules {
        let warnings =
            kube_cel::analyze_rule(&rule, &compiled, kube_cel::ScopeContext::CrdValidation);
        assert!(warnings.is_empty(), "{rule}: {warnings:?}");
    }
}

fn collect_rules(schema: &Value, rules: &mut Vec<String>) {
    if let Some(list) = schema["x-kubernetes-validations"].as_array() {
        rules.extend(list.iter().map(|r| r["rule"].as_str().unwrap().to_owned()));
    }
    for child in schema["properties"]
        .as_object()
        .into_iter()
        .flat_map(|p| p.values())
    {
        collect_rules(child, rules);
    }
    if schema["items"].is_object() {
        collect_rules(&schema["items"], rules);
    }
}

/// The API server warns about integer formats other than int32/int64.
#[test]
fn schema_uses_only_formats_kubernetes_knows() {
    fn walk(schema: &Value, path: &str, bad: &mut Vec<String>) {
        if let Some(format) = schema["format"].as_str() {
            let known = match schema["type"].as_str() {
                Some("integer") => ["int32", "int64"].contains(&format),
                Some("number") => ["float", "double"].contains(&format),
                Some("string") => ["date-time", "byte", "date"].contains(&format),
                _ => false,
            };
            if !known {
                bad.push(format!("{path}: {format}"));
            }
        }
        for (key, child) in schema["properties"].as_object().into_iter().flatten() {
            walk(child, &format!("{path}.{key}"), bad);
        }
        if schema["items"].is_object() {
            walk(&schema["items"], &format!("{path}[]"), bad);
        }
    }
    let mut bad = Vec::new();
    walk(&schema(), "", &mut bad);
    assert!(bad.is_empty(), "{bad:?}");
}

/// `kubectl explain cpol.spec.behavior` has something to say for every field.
#[test]
fn every_spec_field_is_documented() {
    fn walk(schema: &Value, path: &str, missing: &mut Vec<String>) {
        for (key, child) in schema["properties"].as_object().into_iter().flatten() {
            let child_path = format!("{path}.{key}");
            if child["description"]
                .as_str()
                .is_none_or(|d| d.trim().is_empty())
            {
                missing.push(child_path.clone());
            }
            walk(child, &child_path, missing);
        }
    }
    let mut missing = Vec::new();
    walk(&schema()["properties"]["spec"], "spec", &mut missing);
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:?}"
    );
}

// ---------------------------------------------------------------------------
// Fixtures: admission, defaults, conversion.

#[test]
fn full_policy_is_admitted_and_converts_to_the_engine_config() {
    let object = admit(&fixture("policy-full.yaml")).unwrap();
    let policy: ConcurrencyPolicy = serde_json::from_value(object).unwrap();
    let spec = &policy.spec;
    assert_eq!(spec.mode, Mode::DryRun);
    assert_eq!(spec.sync_period_secs(), Ok(Some(5.0)));
    let limits = spec.limits.as_ref().unwrap();
    assert_eq!(limits.per_pod, Some(12));
    let values: Vec<LimitValue> = limits.sinks.iter().map(|s| s.value).collect();
    assert_eq!(
        values,
        [LimitValue::PerPod, LimitValue::Total, LimitValue::Total]
    );
    assert_eq!(
        limits.sinks[2].field.as_ref().unwrap().pointer,
        "/spec/trafficPolicy/connectionPool/http/http2MaxRequests"
    );
    assert!(spec.metrics.latency.is_some());
    assert!(spec.metrics.arrival_rate.is_some());
    assert!(!spec.target_follows_limits());
    assert_eq!(spec.adaptive_config(), Ok(None));
    assert!(spec.metrics.empty_is_zero);
    let prometheus = spec.metrics.prometheus.as_ref().unwrap();
    assert_eq!(
        prometheus.ca_config_map_ref.as_ref().unwrap().key,
        "bundle.pem"
    );

    // An explicit horizon wins over the learned lead time.
    let config = spec.engine_config(Some(42.0)).unwrap();
    // Every field is set today; the update keeps this compiling when the
    // engine gains fields (which then take their defaults).
    #[allow(clippy::needless_update)]
    let expected = Config {
        min_replicas: 2,
        max_replicas: 50,
        concurrency_per_pod: 10.0,
        utilization: 0.75,
        service_time_secs: Some(0.1),
        queue_drain_secs: 60.0,
        smoothing_half_life_secs: 45.0,
        panic: PanicConfig {
            window_secs: 10.0,
            threshold: 2.5,
        },
        prediction: Some(PredictionConfig {
            horizon_secs: 90.0,
            season_secs: Some(43_200.0),
        }),
        tolerance: 0.05,
        scale_up: DirectionRules {
            stabilization_window_secs: 5.0,
            max_step_pods: Some(8),
            max_step_percent: Some(200.0),
            period_secs: 20.0,
        },
        scale_down: DirectionRules {
            stabilization_window_secs: 600.0,
            max_step_pods: Some(2),
            max_step_percent: None,
            period_secs: 60.0,
        },
        reverse_cooldown_secs: 120.0,
        scale_down_floor: Some(FloorConfig {
            window_secs: 1800.0,
            quantile: 0.4,
        }),
        activation_threshold: 0.5,
        max_sample_age_secs: 20.0,
        fallback: Some(Fallback {
            after_failures: 5,
            replicas: 6,
        }),
        ..Config::default()
    };
    assert_eq!(config, expected);
    assert_eq!(spec.validate(), Ok(()));
}

/// What `kubectl get cpol -o yaml` shows for a minimal policy: every default
/// filled in by the API server.
#[test]
fn minimal_policy_gets_every_default_from_the_schema() {
    let admitted = admit(&fixture("policy-minimal.yaml")).unwrap();
    let expected_spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "checkout"},
        "minReplicas": 1,
        "maxReplicas": 20,
        "metrics": {
            "inFlight": {"query": "sum(http_requests_in_flight{namespace=\"{{namespace}}\",deployment=\"{{name}}\"})"},
            "emptyIsZero": false,
        },
        "queueDrainTime": "30s",
        "target": {"concurrencyPerPod": 10, "utilization": 0.8},
        "smoothing": {"halfLife": "30s"},
        "prediction": {"enabled": true, "horizon": "auto", "season": "24h"},
        "activationThreshold": 0.0,
        "behavior": {
            "tolerance": 0.1,
            "panic": {"window": "6s", "threshold": 2.0},
            "scaleUp": {"stabilizationWindow": "0s", "maxStep": {"percent": 1000, "pods": 4}, "period": "15s"},
            "scaleDown": {"stabilizationWindow": "300s", "maxStep": {"percent": 50}, "period": "30s", "early": true,
                "floor": {"window": "1h", "percentile": 50}},
            "reverseCooldown": "60s",
        },
        "maxSampleAge": "30s",
        "mode": "Enforce",
    });
    assert_eq!(admitted["spec"], expected_spec);
}

/// Serde's defaults (what the controller fills in when a field is missing)
/// equal the schema's (what the API server fills in), and both equal the
/// engine's documented defaults.
#[test]
fn serde_schema_and_engine_defaults_agree() {
    let raw = fixture("policy-minimal.yaml");
    let from_serde = spec_of(&raw);
    let from_schema = spec_of(&admit(&raw).unwrap());
    assert_eq!(from_serde, from_schema);

    let config = from_serde.engine_config(None).unwrap();
    let expected = Config {
        min_replicas: 1,
        max_replicas: 20,
        concurrency_per_pod: 10.0,
        ..Config::default()
    };
    assert_eq!(config, expected);
}

#[test]
fn auto_horizon_uses_the_learned_lead_time() {
    let spec = spec_of(&fixture("policy-minimal.yaml"));
    let horizon = |learned: Option<f64>| {
        spec.engine_config(learned)
            .unwrap()
            .prediction
            .unwrap()
            .horizon_secs
    };
    assert_eq!(horizon(Some(42.0)), 42.0);
    assert_eq!(horizon(None), api::DEFAULT_HORIZON_SECS);
    assert_eq!(horizon(Some(f64::NAN)), api::DEFAULT_HORIZON_SECS);
    assert_eq!(horizon(Some(-3.0)), api::DEFAULT_HORIZON_SECS);

    let disabled = spec_of(&with(
        &fixture("policy-minimal.yaml"),
        "/spec/prediction/enabled",
        json!(false),
    ));
    assert_eq!(disabled.engine_config(Some(42.0)).unwrap().prediction, None);
}

// ---------------------------------------------------------------------------
// Invalid values: the schema rejects them, and so does the conversion (for
// objects that predate the schema), naming the field.

const DURATION_FIELDS: [&str; 12] = [
    "queueDrainTime",
    "target.serviceTime",
    "smoothing.halfLife",
    "prediction.horizon",
    "behavior.panic.window",
    "behavior.scaleUp.stabilizationWindow",
    "behavior.scaleUp.period",
    "behavior.scaleDown.stabilizationWindow",
    "behavior.scaleDown.period",
    "behavior.reverseCooldown",
    "syncPeriod",
    "maxSampleAge",
];

fn pointer(field: &str) -> String {
    format!("/spec/{}", field.replace('.', "/"))
}

#[test]
fn bad_durations_are_rejected_and_named() {
    let full = fixture("policy-full.yaml");
    for field in DURATION_FIELDS {
        for bad in ["5x", "", "-5s", "5", "1.s", "ten seconds"] {
            let object = with(&full, &pointer(field), json!(bad));
            assert_rejected(&object, &format!(".spec.{field}"));
            let err = spec_of(&object).engine_config(None).unwrap_err();
            assert_eq!(err.field, format!("spec.{field}"), "{bad:?}: {err}");
            assert!(
                err.to_string().starts_with(&format!("spec.{field}: ")),
                "{err}"
            );
        }
    }
}

#[test]
fn zero_is_rejected_where_a_duration_must_be_positive() {
    let full = fixture("policy-full.yaml");
    let positive = [
        "queueDrainTime",
        "target.serviceTime",
        "smoothing.halfLife",
        "prediction.horizon",
        "behavior.panic.window",
        "behavior.scaleUp.period",
        "behavior.scaleDown.period",
        "syncPeriod",
        "maxSampleAge",
    ];
    for field in positive {
        let object = with(&full, &pointer(field), json!("0s"));
        assert_rejected(&object, "greater than zero");
        let err = spec_of(&object).engine_config(None).unwrap_err();
        assert_eq!(err.field, format!("spec.{field}"));
    }
    for field in [
        "behavior.scaleUp.stabilizationWindow",
        "behavior.scaleDown.stabilizationWindow",
        "behavior.reverseCooldown",
    ] {
        let object = with(&full, &pointer(field), json!("0s"));
        admit(&object).unwrap();
        spec_of(&object).engine_config(None).unwrap();
    }
}

/// (field, bad value, what the schema says, the field the conversion names)
#[test]
fn out_of_range_values_are_rejected_by_schema_and_conversion() {
    let full = fixture("policy-full.yaml");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "minReplicas",
            json!(51),
            "minReplicas must be less than or equal to maxReplicas",
            "spec.minReplicas",
        ),
        (
            "maxReplicas",
            json!(0),
            ".spec.maxReplicas",
            "spec.maxReplicas",
        ),
        (
            "target.concurrencyPerPod",
            json!(0),
            ".spec.target.concurrencyPerPod",
            "spec.target.concurrencyPerPod",
        ),
        (
            "target.concurrencyPerPod",
            json!(-1.5),
            ".spec.target.concurrencyPerPod",
            "spec.target.concurrencyPerPod",
        ),
        (
            "target.utilization",
            json!(0),
            ".spec.target.utilization",
            "spec.target.utilization",
        ),
        (
            "target.utilization",
            json!(1.01),
            ".spec.target.utilization",
            "spec.target.utilization",
        ),
        (
            "behavior.tolerance",
            json!(1.0),
            ".spec.behavior.tolerance",
            "spec.behavior.tolerance",
        ),
        (
            "behavior.tolerance",
            json!(-0.1),
            ".spec.behavior.tolerance",
            "spec.behavior.tolerance",
        ),
        (
            "behavior.panic.threshold",
            json!(1.0),
            ".spec.behavior.panic.threshold",
            "spec.behavior.panic.threshold",
        ),
        (
            "behavior.scaleUp.maxStep.percent",
            json!(0),
            ".spec.behavior.scaleUp.maxStep.percent",
            "spec.behavior.scaleUp.maxStep.percent",
        ),
        (
            "behavior.scaleDown.maxStep.pods",
            json!(0),
            ".spec.behavior.scaleDown.maxStep.pods",
            "spec.behavior.scaleDown.maxStep.pods",
        ),
        (
            "behavior.scaleDown.floor.window",
            json!("2h"),
            "floor.window must be at most 1h",
            "spec.behavior.scaleDown.floor.window",
        ),
        (
            "prediction.season",
            json!("30m"),
            "prediction.season must be 0s (off) or from 1h to 168h",
            "spec.prediction.season",
        ),
        (
            "prediction.season",
            json!("168h1s"),
            "prediction.season must be 0s (off) or from 1h to 168h",
            "spec.prediction.season",
        ),
        (
            "behavior.scaleDown.floor.percentile",
            json!(0),
            ".spec.behavior.scaleDown.floor.percentile",
            "spec.behavior.scaleDown.floor.percentile",
        ),
        (
            "behavior.scaleDown.floor.percentile",
            json!(101),
            ".spec.behavior.scaleDown.floor.percentile",
            "spec.behavior.scaleDown.floor.percentile",
        ),
        (
            "activationThreshold",
            json!(-1),
            ".spec.activationThreshold",
            "spec.activationThreshold",
        ),
        (
            "limits.perPod",
            json!(0),
            ".spec.limits.perPod",
            "spec.limits.perPod",
        ),
        (
            "fallback.replicas",
            json!(51),
            "fallback.replicas must be less than or equal to maxReplicas",
            "spec.fallback.replicas",
        ),
        (
            "fallback.replicas",
            json!(1),
            "fallback.replicas must be greater than or equal to minReplicas",
            "spec.fallback.replicas",
        ),
        (
            "fallback.afterFailures",
            json!(0),
            ".spec.fallback.afterFailures",
            "spec.fallback.afterFailures",
        ),
        (
            "targetRef.name",
            json!(""),
            ".spec.targetRef.name",
            "spec.targetRef.name",
        ),
        (
            "targetRef.kind",
            json!(""),
            ".spec.targetRef.kind",
            "spec.targetRef.kind",
        ),
        (
            "metrics.inFlight.query",
            json!(""),
            ".spec.metrics.inFlight.query",
            "spec.metrics.inFlight.query",
        ),
        (
            "metrics.prometheus.address",
            json!("prometheus:9090"),
            ".spec.metrics.prometheus.address",
            "spec.metrics.prometheus.address",
        ),
    ];
    for (field, bad, schema_says, conversion_names) in cases {
        let object = with(&full, &pointer(field), bad.clone());
        assert_rejected(&object, schema_says);
        // Values serde cannot hold (negative u32) never reach the conversion.
        if let Ok(spec) = serde_json::from_value::<ConcurrencyPolicySpec>(object["spec"].clone()) {
            let err = spec.engine_config(None).unwrap_err();
            assert_eq!(err.field, conversion_names, "{field} = {bad}: {err}");
            let all = spec.validate().unwrap_err();
            assert!(all.iter().any(|e| e.field == conversion_names), "{all:?}");
        }
    }
}

#[test]
fn schema_rejects_missing_required_fields_and_unknown_modes() {
    let minimal = fixture("policy-minimal.yaml");
    for required in [
        "/spec/targetRef/name",
        "/spec/targetRef/kind",
        "/spec/maxReplicas",
        "/spec/metrics/inFlight",
        "/spec/target/concurrencyPerPod",
    ] {
        let mut object = minimal.clone();
        remove(&mut object, required);
        let key = required.rsplit('/').next().unwrap();
        assert_rejected(&object, &format!("{key} is required"));
    }
    assert_rejected(
        &with(&minimal, "/spec/mode", json!("Observe")),
        ".spec.mode",
    );
    assert_rejected(
        &with(&minimal, "/spec/maxReplicas", json!(2.5)),
        "not an integer",
    );
}

#[test]
fn validate_reports_every_error_at_once() {
    let mut object = fixture("policy-full.yaml");
    set(&mut object, "/spec/behavior/scaleUp/period", json!("soon"));
    set(&mut object, "/spec/target/utilization", json!(2.0));
    set(&mut object, "/spec/minReplicas", json!(60));
    let errors = spec_of(&object).validate().unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    for field in [
        "spec.behavior.scaleUp.period",
        "spec.target.utilization",
        "spec.minReplicas",
        "spec.fallback.replicas",
    ] {
        assert!(fields.contains(&field), "{field} missing from {errors:?}");
    }
}

#[test]
fn edge_values_are_admitted() {
    let minimal = fixture("policy-minimal.yaml");
    let cases: Vec<(&str, Value)> = vec![
        ("/spec/minReplicas", json!(0)),
        ("/spec/minReplicas", json!(20)),
        ("/spec/target/utilization", json!(1.0)),
        ("/spec/target/concurrencyPerPod", json!(0.5)),
        ("/spec/behavior/tolerance", json!(0)),
        ("/spec/behavior/panic/threshold", json!(1.01)),
        ("/spec/prediction/horizon", json!("1m30s")),
        ("/spec/prediction/horizon", json!("auto")),
        ("/spec/behavior/scaleUp/maxStep", json!({})),
        ("/spec/queueDrainTime", json!("1.5h")),
        ("/spec/prediction/season", json!("0s")),
        ("/spec/prediction/season", json!("1h")),
        ("/spec/prediction/season", json!("168h")),
        ("/spec/behavior/scaleDown/floor/window", json!("0s")),
        ("/spec/behavior/scaleDown/floor/window", json!("59m60s")),
        ("/spec/behavior/scaleDown/floor/percentile", json!(1)),
        ("/spec/behavior/scaleDown/floor/percentile", json!(100)),
        ("/spec/fallback", json!({"replicas": 1})),
    ];
    for (field, value) in cases {
        let object = with(&minimal, field, value.clone());
        let admitted = admit(&object).unwrap_or_else(|e| panic!("{field} = {value}: {e:?}"));
        spec_of(&admitted)
            .engine_config(None)
            .unwrap_or_else(|e| panic!("{field} = {value}: {e}"));
    }
    // An empty maxStep means no step limit at all.
    let object = with(&minimal, "/spec/behavior/scaleUp/maxStep", json!({}));
    let config = spec_of(&admit(&object).unwrap())
        .engine_config(None)
        .unwrap();
    assert_eq!(
        (
            config.scale_up.max_step_pods,
            config.scale_up.max_step_percent
        ),
        (None, None)
    );
    // A floor window of 0s turns the recurring floor off.
    let object = with(
        &minimal,
        "/spec/behavior/scaleDown/floor",
        json!({"window": "0s"}),
    );
    let config = spec_of(&admit(&object).unwrap())
        .engine_config(None)
        .unwrap();
    assert_eq!(config.scale_down_floor, None);
    // A season of 0s turns the seasonal forecast off, not the forecast.
    let object = with(&minimal, "/spec/prediction/season", json!("0s"));
    let config = spec_of(&admit(&object).unwrap())
        .engine_config(None)
        .unwrap();
    let prediction = config.prediction.expect("the forecast is still on");
    assert_eq!(prediction.season_secs, None);
    // A fallback without afterFailures gets the default of 3.
    let object = with(&minimal, "/spec/fallback", json!({"replicas": 4}));
    assert_eq!(
        admit(&object).unwrap()["spec"]["fallback"],
        json!({"afterFailures": 3, "replicas": 4})
    );
}

/// The pattern the API server checks and the parser the controller runs
/// accept the same strings.
#[test]
fn duration_pattern_and_parser_agree() {
    let duration = regex::Regex::new(DURATION_PATTERN).unwrap();
    let horizon = regex::Regex::new(HORIZON_PATTERN).unwrap();
    let samples = [
        "30s", "5m", "1m30s", "100ms", "1.5h", "0s", "2h45m", "10ms5s", "", "5", "-5s", "+5s",
        "5x", "1.s", ".5s", "1e3s", " 5s", "5s ", "5 s", "auto", "5sm", "ms", "1..5s", "5us",
    ];
    for s in samples {
        assert_eq!(
            duration.is_match(s),
            parse_duration("spec.f", s).is_ok(),
            "{s:?}"
        );
        assert_eq!(
            horizon.is_match(s),
            s == "auto" || parse_duration("spec.f", s).is_ok(),
            "{s:?}"
        );
    }
    assert_eq!(parse_duration("spec.f", "1m30s"), Ok(90.0));
    assert_eq!(
        parse_duration("spec.behavior.scaleUp.period", "fast").unwrap_err(),
        SpecError::new(
            "spec.behavior.scaleUp.period",
            "\"fast\" is not a duration; write a number and a unit (ms, s, m or h), e.g. 30s, 5m, 1m30s or 100ms"
        )
    );
}

// ---------------------------------------------------------------------------
// Status.

#[test]
fn a_full_status_fits_the_schema() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let when = Time("2026-01-02T03:04:05Z".parse().unwrap());
    let status = ConcurrencyPolicyStatus {
        observed_generation: Some(3),
        conditions: vec![Condition {
            type_: condition::READY.into(),
            status: "True".into(),
            reason: "Scaling".into(),
            message: "acting on the policy".into(),
            last_transition_time: when.clone(),
            observed_generation: Some(3),
        }],
        current_replicas: Some(4),
        desired_replicas: Some(11),
        last_scale_time: Some(when),
        last_scale_direction: Some(ScaleDirection::Up),
        last_decision: Some(DecisionSummary {
            reason: "ScaleUp".into(),
            in_flight: Some(87.0),
            queue_depth: None,
            arrival_rate: Some(870.0),
            demand: Some(87.0),
            smoothed: Some(80.5),
            forecast: Some(90.0),
            seasonal_forecast: Some(90.0),
            recommended: Some(11),
            limited_by: None,
        }),
        lead_time_seconds: Some(21.5),
        limits: Some(LimitsStatus {
            per_pod: 12,
            total: 48,
            pods: 4,
            adaptive: Some(AdaptiveStatus {
                limit: 11.8,
                latency_seconds: Some(0.1234),
                baseline_seconds: Some(0.1),
                held: Some("AppLimited".into()),
            }),
            sinks: vec![
                SinkStatus {
                    sink: "ConfigMap checkout-limits key maxConcurrency".into(),
                    value: Some(12),
                    state: "Synced".into(),
                    message: None,
                },
                SinkStatus {
                    sink: "DestinationRule checkout /spec/x".into(),
                    value: None,
                    state: "NotFound".into(),
                    message: Some("DestinationRule/checkout not found in namespace shop".into()),
                },
            ],
        }),
    };
    let mut object = fixture("policy-minimal.yaml");
    set(
        &mut object,
        "/status",
        serde_json::to_value(&status).unwrap(),
    );
    let admitted = admit(&object).unwrap();
    assert_eq!(admitted["status"]["lastDecision"]["inFlight"], json!(87.0));
    assert_eq!(
        admitted["status"]["lastScaleTime"],
        json!("2026-01-02T03:04:05Z")
    );
    assert_eq!(
        admitted["status"]["limits"]["sinks"][1]["state"],
        json!("NotFound")
    );
    let back: ConcurrencyPolicy = serde_json::from_value(admitted).unwrap();
    assert_eq!(back.status, Some(status));

    let conditions = &schema()["properties"]["status"]["properties"]["conditions"];
    assert_eq!(conditions["x-kubernetes-list-type"], json!("map"));
    assert_eq!(conditions["x-kubernetes-list-map-keys"], json!(["type"]));
}

/// `kubectl explain` does not print schema defaults, so each description
/// states its field's default, and that statement matches the schema.
#[test]
fn descriptions_state_the_defaults() {
    fn walk(schema: &Value, path: &str, wrong: &mut Vec<String>) {
        for (key, child) in schema["properties"].as_object().into_iter().flatten() {
            let child_path = format!("{path}.{key}");
            let description = child["description"]
                .as_str()
                .unwrap_or_default()
                .replace('\n', " ");
            let stated = match &child["default"] {
                Value::Null => None,
                Value::String(s) => Some(format!("Default {s}.")),
                Value::Object(o) if o.is_empty() => None,
                Value::Object(o) => {
                    let fields: Vec<String> = o.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    Some(format!("Default {{{}}}", fields.join(", ")))
                }
                other => Some(format!("Default {other}.")),
            };
            if let Some(stated) = stated
                && !description.contains(&stated)
            {
                wrong.push(format!(
                    "{child_path}: expected {stated:?} in {description:?}"
                ));
            }
            walk(child, &child_path, wrong);
        }
    }
    let mut wrong = Vec::new();
    walk(&schema()["properties"]["spec"], "spec", &mut wrong);
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Creating the CRD, the API server checks each `default` in the schema
/// against the rules where it sits, as written (the defaults inside it not
/// applied): a rule that reads a field such a default leaves out refuses
/// the whole CRD ("no such key"). `admit` above fills the nested defaults
/// first, and so does `kube_cel`: the rules here run on the schema with its
/// defaults taken out.
#[test]
fn schema_defaults_pass_their_own_rules() {
    fn without_defaults(schema: &Value) -> Value {
        match schema {
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| k.as_str() != "default")
                    .map(|(k, v)| (k.clone(), without_defaults(v)))
                    .collect(),
            ),
            Value::Array(a) => Value::Array(a.iter().map(without_defaults).collect()),
            other => other.clone(),
        }
    }
    fn walk(schema: &Value, path: &str, checked: &mut usize, wrong: &mut Vec<String>) {
        if let (Some(default), Some(_)) = (
            schema.get("default"),
            schema.get("x-kubernetes-validations"),
        ) {
            *checked += 1;
            let bare = without_defaults(schema);
            if let Err(errors) = kube_cel::Validator::new().validate(&bare, default, None) {
                let errors: Vec<String> = errors.iter().map(|e| format!("{e}")).collect();
                wrong.push(format!("{path} (default {default}): {errors:?}"));
            }
        }
        for (key, child) in schema["properties"].as_object().into_iter().flatten() {
            walk(child, &format!("{path}.{key}"), checked, wrong);
        }
        if schema["items"].is_object() {
            walk(&schema["items"], &format!("{path}[]"), checked, wrong);
        }
    }
    let (mut checked, mut wrong) = (0, Vec::new());
    walk(&schema(), "", &mut checked, &mut wrong);
    assert!(wrong.is_empty(), "{wrong:#?}");
    // behavior.scaleDown.floor has both, so this test checks something.
    assert!(checked >= 1, "no default with rules found");
}

// ---------------------------------------------------------------------------
// Limits: fixed or adaptive, their sinks, and the one-knob target.

/// The adaptive policy, as the API server stores it: the adaptive knobs and
/// the sinks' value get their defaults.
#[test]
fn adaptive_policy_gets_its_defaults_and_follows_the_limit() {
    let admitted = admit(&fixture("policy-adaptive.yaml")).unwrap();
    let limits = &admitted["spec"]["limits"];
    assert_eq!(
        limits["adaptive"],
        json!({
            "min": 1, "max": 100, "initial": 8, "tolerance": 1.1,
            "smoothingHalfLife": "30s", "baselineWindow": "10m",
        })
    );
    assert_eq!(limits["sinks"][0]["value"], json!("PerPod"));
    assert_eq!(limits["sinks"][1]["value"], json!("Total"));
    assert!(
        admitted["spec"]["target"]
            .get("concurrencyPerPod")
            .is_none()
    );

    let spec = spec_of(&admitted);
    assert!(spec.target_follows_limits());
    // Until the controller has an adaptive limit, the engine plans pods for
    // the initial one.
    let config = spec.engine_config(None).unwrap();
    assert_eq!(config.concurrency_per_pod, 8.0);
    assert_eq!(config.utilization, 0.9);
    assert_eq!(
        spec.adaptive_config(),
        Ok(Some(AdaptiveConfig {
            min_limit: 1.0,
            max_limit: 100.0,
            initial_limit: 8.0,
            tolerance: 1.1,
            smoothing_half_life_secs: 30.0,
            baseline_window_secs: 600.0,
        }))
    );
    assert_eq!(spec.validate(), Ok(()));
    // Serde fills in the same defaults as the schema, and both are the
    // controller's documented defaults.
    assert_eq!(spec_of(&fixture("policy-adaptive.yaml")), spec);
    let engine = AdaptiveConfig::default();
    let config = spec.adaptive_config().unwrap().unwrap();
    assert_eq!(
        (
            config.min_limit,
            config.tolerance,
            config.smoothing_half_life_secs,
            config.baseline_window_secs
        ),
        (
            engine.min_limit,
            engine.tolerance,
            engine.smoothing_half_life_secs,
            engine.baseline_window_secs
        )
    );

    // Without initial, the adaptive limit starts at min.
    let mut object = fixture("policy-adaptive.yaml");
    remove(&mut object, "/spec/limits/adaptive/initial");
    set(&mut object, "/spec/limits/adaptive/min", json!(4));
    let spec = spec_of(&admit(&object).unwrap());
    assert_eq!(spec.engine_config(None).unwrap().concurrency_per_pod, 4.0);

    // A fixed perPod drives the target just the same.
    let fixed = with(
        &fixture("policy-adaptive.yaml"),
        "/spec/limits",
        json!({"perPod": 12}),
    );
    let spec = spec_of(&admit(&fixed).unwrap());
    assert_eq!(spec.engine_config(None).unwrap().concurrency_per_pod, 12.0);
}

/// (change to the adaptive fixture, what the schema says, the field the
/// conversion names)
#[test]
fn bad_limits_are_rejected_by_schema_and_conversion() {
    let adaptive = fixture("policy-adaptive.yaml");
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/spec/limits/perPod",
            json!(12),
            "set exactly one of limits.perPod and limits.adaptive",
            "spec.limits",
        ),
        (
            "/spec/limits",
            json!({"sinks": []}),
            "set exactly one of limits.perPod and limits.adaptive",
            "spec.limits",
        ),
        (
            "/spec/limits/adaptive/min",
            json!(200),
            "adaptive.min must be less than or equal to adaptive.max",
            "spec.limits.adaptive.max",
        ),
        (
            "/spec/limits/adaptive/initial",
            json!(101),
            "adaptive.initial must be within [min, max]",
            "spec.limits.adaptive.initial",
        ),
        (
            "/spec/limits/adaptive/tolerance",
            json!(1.0),
            ".spec.limits.adaptive.tolerance",
            "spec.limits.adaptive.tolerance",
        ),
        (
            "/spec/limits/adaptive/smoothingHalfLife",
            json!("0s"),
            "greater than zero",
            "spec.limits.adaptive.smoothingHalfLife",
        ),
        (
            "/spec/limits/adaptive/baselineWindow",
            json!("soon"),
            ".spec.limits.adaptive.baselineWindow",
            "spec.limits.adaptive.baselineWindow",
        ),
        (
            "/spec/limits/sinks/0/annotation",
            json!({"key": "example.com/limit"}),
            "set exactly one of configMap, annotation and field",
            "spec.limits.sinks[0]",
        ),
        (
            "/spec/limits/sinks/1/field/pointer",
            json!("/spec//maxParallelRequests"),
            ".spec.limits.sinks[1].field.pointer",
            "spec.limits.sinks[1].field.pointer",
        ),
        (
            "/spec/limits/sinks/0/configMap/key",
            json!("max concurrency"),
            ".spec.limits.sinks[0].configMap.key",
            "spec.limits.sinks[0].configMap.key",
        ),
    ];
    for (pointer, bad, schema_says, conversion_names) in cases {
        let object = with_at(&adaptive, pointer, bad.clone());
        assert_rejected(&object, schema_says);
        let spec: ConcurrencyPolicySpec = serde_json::from_value(object["spec"].clone())
            .unwrap_or_else(|e| panic!("{pointer} = {bad}: {e}"));
        let all = spec.validate().unwrap_err();
        assert!(
            all.iter().any(|e| e.field == conversion_names),
            "{pointer} = {bad}: {all:?}"
        );
    }

    // Pointers the schema cannot tell apart: the conversion refuses to let
    // a sink own metadata or status.
    let object = with_at(
        &adaptive,
        "/spec/limits/sinks/1/field/pointer",
        json!("/metadata/annotations/x"),
    );
    admit(&object).unwrap();
    let errors = spec_of(&object).validate().unwrap_err();
    assert_eq!(errors[0].field, "spec.limits.sinks[1].field.pointer");
    assert!(
        errors[0].problem.contains("cannot write /metadata"),
        "{errors:?}"
    );

    // The adaptive limit needs a latency query.
    let mut object = fixture("policy-adaptive.yaml");
    remove(&mut object, "/spec/metrics/latency");
    assert_rejected(&object, "limits.adaptive needs metrics.latency");
    let errors = spec_of(&object).validate().unwrap_err();
    assert_eq!(errors[0].field, "spec.metrics.latency");

    // No concurrencyPerPod and no limits: nothing sizes the pods.
    let mut object = fixture("policy-adaptive.yaml");
    remove(&mut object, "/spec/limits");
    assert_rejected(
        &object,
        "target.concurrencyPerPod is required unless limits is set",
    );
    let err = spec_of(&object).engine_config(None).unwrap_err();
    assert_eq!(err.field, "spec.target.concurrencyPerPod");

    // At most 16 sinks.
    let sink = json!({"configMap": {"name": "a", "key": "k"}});
    let object = with(&adaptive, "/spec/limits/sinks", json!(vec![sink; 17]));
    // (The offline admission does not check maxItems; the API server does.)
    assert_eq!(
        schema()["properties"]["spec"]["properties"]["limits"]["properties"]["sinks"]["maxItems"],
        json!(16)
    );
    let errors = spec_of(&object).validate().unwrap_err();
    assert_eq!(errors[0].field, "spec.limits.sinks");
}

/// An arrival rate is turned into concurrency by the service time: the API
/// server refuses one without the other (CEL), and so does the conversion
/// (objects admitted before the rule existed).
#[test]
fn arrival_rate_needs_a_service_time() {
    let arrivals =
        json!({"query": "sum(rate(ingress_requests_total{namespace=\"{{namespace}}\"}[15s]))"});
    let minimal = fixture("policy-minimal.yaml");

    let object = with_at(&minimal, "/spec/metrics/arrivalRate", arrivals.clone());
    assert_rejected(&object, "metrics.arrivalRate needs target.serviceTime");
    let errors = spec_of(&object).validate().unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].field, "spec.target.serviceTime");
    let err = spec_of(&object).engine_config(None).unwrap_err();
    assert_eq!(err.field, "spec.target.serviceTime");

    let object = with_at(&object, "/spec/target/serviceTime", json!("100ms"));
    let admitted = admit(&object).unwrap();
    assert_eq!(admitted["spec"]["metrics"]["arrivalRate"], arrivals);
    let config = spec_of(&admitted).engine_config(None).unwrap();
    assert_eq!(config.service_time_secs, Some(0.1));

    // A service time without an arrival rate stays optional... and so is
    // an arrival rate's absence (the minimal policy has neither).
    let object = with_at(&minimal, "/spec/target/serviceTime", json!("100ms"));
    admit(&object).unwrap();
    admit(&minimal).unwrap();
}

/// `base` with `value` at `pointer`, whose parent exists (lists included).
fn with_at(base: &Value, pointer: &str, value: Value) -> Value {
    let mut object = base.clone();
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"))
        .as_object_mut()
        .unwrap()
        .insert(key.to_string(), value);
    object
}
