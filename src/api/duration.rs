//! Durations as users write them in a policy ("30s", "5m", "1m30s", "100ms"),
//! their schema (a pattern the API server checks, plus a CEL rule for the ones
//! that must be positive), and the parser the controller uses.
//!
//! The types keep the string as written: an object that slipped past the
//! schema (created before the CRD was updated) still deserializes, and
//! `engine_config` reports the bad value with its field path instead of the
//! whole object failing to parse.
use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::SpecError;

/// A sequence of `<number><unit>` with units ms, s, m, h. Go's
/// `time.ParseDuration` (and so CEL's `duration()`) accepts all of these.
pub const DURATION_PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// `auto`, or a duration.
pub const HORIZON_PATTERN: &str = r"^(auto|([0-9]+(\.[0-9]+)?(ms|s|m|h))+)$";

/// Longest duration string accepted; bounds the cost of the CEL rules that
/// parse it (the API server rejects rules on unbounded strings).
pub const DURATION_MAX_LENGTH: u32 = 32;

const EXAMPLES: &str = "write a number and a unit (ms, s, m or h), e.g. 30s, 5m, 1m30s or 100ms";

/// Parses a duration such as `30s`, `5m`, `1m30s`, `1.5h` or `100ms` into
/// seconds. `field` is the path reported in the error, e.g.
/// `spec.behavior.scaleUp.period`.
pub fn parse_duration(field: &str, s: &str) -> Result<f64, SpecError> {
    if s.is_empty() {
        return Err(SpecError::new(
            field,
            format!("must not be empty; {EXAMPLES}"),
        ));
    }
    if s.starts_with('-') {
        return Err(SpecError::new(
            field,
            format!("{s:?} is negative; durations must be zero or more"),
        ));
    }
    let bad = || SpecError::new(field, format!("{s:?} is not a duration; {EXAMPLES}"));
    let mut total = 0.0_f64;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number.starts_with('.') || number.ends_with('.') {
            return Err(bad());
        }
        let value: f64 = number.parse().map_err(|_| bad())?;
        let (unit_secs, unit_len) = if after.starts_with("ms") {
            (0.001, 2)
        } else if after.starts_with('s') {
            (1.0, 1)
        } else if after.starts_with('m') {
            (60.0, 1)
        } else if after.starts_with('h') {
            (3600.0, 1)
        } else {
            return Err(bad());
        };
        total += value * unit_secs;
        rest = &after[unit_len..];
    }
    if !total.is_finite() {
        return Err(SpecError::new(
            field,
            format!("{s:?} is too long a duration"),
        ));
    }
    Ok(total)
}

fn duration_schema(rule: Option<(&str, &str)>) -> Schema {
    let mut schema = json_schema!({
        "type": "string",
        "pattern": DURATION_PATTERN,
        "maxLength": DURATION_MAX_LENGTH,
    });
    if let Some((rule, message)) = rule {
        schema.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{ "rule": rule, "message": message }]),
        );
    }
    schema
}

/// A duration that may be zero, e.g. a stabilization window: `0s`, `300s`, `5m`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Duration(pub String);

impl Duration {
    /// Seconds, or an error naming `field` when the text is not a duration.
    pub fn seconds(&self, field: &str) -> Result<f64, SpecError> {
        parse_duration(field, &self.0)
    }
}

impl From<&str> for Duration {
    fn from(s: &str) -> Self {
        Duration(s.to_owned())
    }
}

impl JsonSchema for Duration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        duration_schema(None)
    }
}

/// A duration that must be greater than zero, e.g. a period: `15s`, `1m`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PositiveDuration(pub String);

impl PositiveDuration {
    /// Seconds (> 0), or an error naming `field`.
    pub fn seconds(&self, field: &str) -> Result<f64, SpecError> {
        let secs = parse_duration(field, &self.0)?;
        if secs <= 0.0 {
            return Err(SpecError::new(
                field,
                format!("{:?} must be greater than zero", self.0),
            ));
        }
        Ok(secs)
    }
}

impl From<&str> for PositiveDuration {
    fn from(s: &str) -> Self {
        PositiveDuration(s.to_owned())
    }
}

impl JsonSchema for PositiveDuration {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "PositiveDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        duration_schema(Some((
            "duration(self) > duration('0s')",
            "must be a duration greater than zero",
        )))
    }
}

/// How far ahead to forecast: `auto` (the learned time from a scale-up to
/// Ready pods) or a duration greater than zero.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Horizon(pub String);

impl Horizon {
    pub const AUTO: &'static str = "auto";

    /// `Ok(None)` for `auto`, `Ok(Some(seconds))` for a positive duration.
    pub fn seconds(&self, field: &str) -> Result<Option<f64>, SpecError> {
        if self.0 == Self::AUTO {
            return Ok(None);
        }
        PositiveDuration(self.0.clone())
            .seconds(field)
            .map(Some)
            .map_err(|e| SpecError::new(field, format!("{} (or write `auto`)", e.problem)))
    }
}

impl Default for Horizon {
    fn default() -> Self {
        Horizon(Self::AUTO.to_owned())
    }
}

impl From<&str> for Horizon {
    fn from(s: &str) -> Self {
        Horizon(s.to_owned())
    }
}

impl JsonSchema for Horizon {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        "Horizon".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": HORIZON_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
            "x-kubernetes-validations": [{
                "rule": "self == 'auto' || duration(self) > duration('0s')",
                "message": "must be auto or a duration greater than zero",
            }],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("30s", 30.0),
            ("5m", 300.0),
            ("1m30s", 90.0),
            ("100ms", 0.1),
            ("1.5h", 5400.0),
            ("0s", 0.0),
            ("1h2m3s4ms", 3723.004),
        ];
        for (text, secs) in cases {
            let got = parse_duration("spec.x", text).unwrap();
            assert!((got - secs).abs() < 1e-9, "{text}: {got} != {secs}");
        }
    }

    #[test]
    fn rejects_with_the_field_path() {
        for text in [
            "", "-5s", "5", "s", "5x", "5 s", " 5s", "1.s", ".5s", "5s ", "1e3s", "+5s", "5sm",
        ] {
            let err = parse_duration("spec.behavior.scaleUp.period", text).unwrap_err();
            assert_eq!(err.field, "spec.behavior.scaleUp.period", "{text:?}");
            assert!(
                err.to_string()
                    .starts_with("spec.behavior.scaleUp.period: "),
                "{err}"
            );
        }
        assert!(
            parse_duration("f", "-5s")
                .unwrap_err()
                .problem
                .contains("negative")
        );
        assert!(
            parse_duration("f", "")
                .unwrap_err()
                .problem
                .contains("empty")
        );
    }

    #[test]
    fn positive_durations_reject_zero() {
        assert!(PositiveDuration::from("0s").seconds("f").is_err());
        assert!(PositiveDuration::from("0ms").seconds("f").is_err());
        assert_eq!(PositiveDuration::from("15s").seconds("f").unwrap(), 15.0);
        assert_eq!(Duration::from("0s").seconds("f").unwrap(), 0.0);
    }

    #[test]
    fn horizon_is_auto_or_positive() {
        assert_eq!(Horizon::default().seconds("f").unwrap(), None);
        assert_eq!(Horizon::from("45s").seconds("f").unwrap(), Some(45.0));
        assert!(Horizon::from("0s").seconds("f").is_err());
        assert!(
            Horizon::from("Auto")
                .seconds("f")
                .unwrap_err()
                .problem
                .contains("auto")
        );
    }
}
