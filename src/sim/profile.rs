//! Request-rate profiles (requests per second as a function of time), real
//! traces loaded from CSV, and seeded Poisson arrivals.
//!
//! A [`Profile`] is plain data with a tagged serde form, so it can be sent to
//! `loadsim` (`PUT /profile`) and written in benchmark configs:
//!
//! ```json
//! {"kind": "step", "before": 50, "after": 200, "atSecs": 10}
//! ```
//!
//! Every profile is deterministic: `Noise` derives its values from a hash of
//! its seed and the time bin, and [`arrivals`] draws from a caller-owned RNG
//! (see [`seeded_rng`]).
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The header a trace CSV must start with.
pub const TRACE_CSV_HEADER: &str = "t_seconds,requests_per_second";

/// Request rate over time; `t` is seconds since the profile started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Profile {
    /// `rps` all the time.
    Constant { rps: f64 },
    /// `before` until `at_secs`, then `after`.
    Step {
        before: f64,
        after: f64,
        at_secs: f64,
    },
    /// `from` until `at_secs` (default 0), then linearly to `to` over
    /// `over_secs`, then `to`.
    Ramp {
        from: f64,
        to: f64,
        over_secs: f64,
        #[serde(default)]
        at_secs: f64,
    },
    /// `mean + amplitude x sin(2 pi t / period_secs)`, cut at 0.
    Sine {
        mean: f64,
        amplitude: f64,
        period_secs: f64,
    },
    /// `mean x (1 + relative x u)`, `u` uniform in [-1, 1], constant within
    /// each bin of `bin_secs` (default 1) and drawn from a hash of
    /// (`seed`, bin index): the same seed gives the same curve.
    Noise {
        mean: f64,
        relative: f64,
        #[serde(default)]
        seed: u64,
        #[serde(default = "default_bin_secs")]
        bin_secs: f64,
    },
    /// Measured rates: `points` are `(t_secs, rps)`, `t` strictly increasing;
    /// the rate at `t` is that of the last point at or before `t` (a point's
    /// value is the mean rate over its bin); before the first point, the
    /// first value; after the last, the last value.
    Trace { points: Vec<(f64, f64)> },
    /// The sum of `parts` (e.g. a sine plus a step), cut at 0.
    Sum { parts: Vec<Profile> },
}

fn default_bin_secs() -> f64 {
    1.0
}

/// A profile or trace that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{kind} profile: {message}")]
    Invalid { kind: &'static str, message: String },
    #[error("profile JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{source_name}:{line}: {message}")]
    Csv {
        source_name: String,
        /// 1-based line number.
        line: usize,
        message: String,
    },
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl Profile {
    /// Parses a profile from JSON and validates it.
    pub fn from_json(text: &str) -> Result<Self, ProfileError> {
        let profile: Profile = serde_json::from_str(text)?;
        profile.validate()?;
        Ok(profile)
    }

    /// A `Trace` profile from a CSV file (see [`parse_trace_csv`]), rates
    /// multiplied by `scale`.
    pub fn trace_from_csv(path: &Path, scale: f64) -> Result<Self, ProfileError> {
        Ok(Profile::Trace {
            points: load_trace_csv(path, scale)?,
        })
    }

    /// The kind, as in the serde tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Profile::Constant { .. } => "constant",
            Profile::Step { .. } => "step",
            Profile::Ramp { .. } => "ramp",
            Profile::Sine { .. } => "sine",
            Profile::Noise { .. } => "noise",
            Profile::Trace { .. } => "trace",
            Profile::Sum { .. } => "sum",
        }
    }

    /// Checks that every number is finite, rates are >= 0, durations are
    /// positive where they divide, and trace times increase.
    pub fn validate(&self) -> Result<(), ProfileError> {
        let kind = self.kind();
        let rate = |name: &str, v: f64| -> Result<(), ProfileError> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(invalid(
                    kind,
                    format!("{name} must be finite and >= 0, got {v}"),
                ))
            }
        };
        let positive = |name: &str, v: f64| -> Result<(), ProfileError> {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(invalid(
                    kind,
                    format!("{name} must be finite and > 0, got {v}"),
                ))
            }
        };
        let finite = |name: &str, v: f64| -> Result<(), ProfileError> {
            if v.is_finite() {
                Ok(())
            } else {
                Err(invalid(kind, format!("{name} must be finite, got {v}")))
            }
        };
        match self {
            Profile::Constant { rps } => rate("rps", *rps),
            Profile::Step {
                before,
                after,
                at_secs,
            } => {
                rate("before", *before)?;
                rate("after", *after)?;
                finite("atSecs", *at_secs)
            }
            Profile::Ramp {
                from,
                to,
                over_secs,
                at_secs,
            } => {
                rate("from", *from)?;
                rate("to", *to)?;
                positive("overSecs", *over_secs)?;
                finite("atSecs", *at_secs)
            }
            Profile::Sine {
                mean,
                amplitude,
                period_secs,
            } => {
                rate("mean", *mean)?;
                finite("amplitude", *amplitude)?;
                positive("periodSecs", *period_secs)
            }
            Profile::Noise {
                mean,
                relative,
                bin_secs,
                ..
            } => {
                rate("mean", *mean)?;
                rate("relative", *relative)?;
                positive("binSecs", *bin_secs)
            }
            Profile::Trace { points } => {
                if points.is_empty() {
                    return Err(invalid(kind, "points must not be empty".into()));
                }
                for (i, &(t, r)) in points.iter().enumerate() {
                    finite("t", t)?;
                    rate("rps", r)?;
                    if i > 0 && t <= points[i - 1].0 {
                        return Err(invalid(
                            kind,
                            format!("point {i}: t = {t} is not after the previous point"),
                        ));
                    }
                }
                Ok(())
            }
            Profile::Sum { parts } => parts.iter().try_for_each(Profile::validate),
        }
    }

    /// The rate in requests per second at `t_secs` since the start; never
    /// negative (a negative curve, e.g. a sine deeper than its mean, is cut
    /// at 0).
    pub fn rate_at(&self, t_secs: f64) -> f64 {
        let rate = match self {
            Profile::Constant { rps } => *rps,
            Profile::Step {
                before,
                after,
                at_secs,
            } => {
                if t_secs < *at_secs {
                    *before
                } else {
                    *after
                }
            }
            Profile::Ramp {
                from,
                to,
                over_secs,
                at_secs,
            } => {
                let progress = ((t_secs - at_secs) / over_secs).clamp(0.0, 1.0);
                from + (to - from) * progress
            }
            Profile::Sine {
                mean,
                amplitude,
                period_secs,
            } => mean + amplitude * (std::f64::consts::TAU * t_secs / period_secs).sin(),
            Profile::Noise {
                mean,
                relative,
                seed,
                bin_secs,
            } => {
                let bin = (t_secs / bin_secs).floor() as i64;
                mean * (1.0 + relative * unit_noise(*seed, bin))
            }
            Profile::Trace { points } => {
                let after = points.partition_point(|&(t, _)| t <= t_secs);
                let index = after.saturating_sub(1);
                points.get(index).map_or(0.0, |&(_, r)| r)
            }
            Profile::Sum { parts } => parts.iter().map(|p| p.rate_at(t_secs)).sum(),
        };
        if rate.is_finite() { rate.max(0.0) } else { 0.0 }
    }

    /// Whether the rate at `t_secs` is the profile's own rather than an
    /// extrapolation: false only before a trace's first point (also within
    /// a `Sum`); a synthetic profile is defined at negative times too.
    pub fn is_defined_at(&self, t_secs: f64) -> bool {
        match self {
            Profile::Trace { points } => points.first().is_some_and(|&(t, _)| t_secs >= t),
            Profile::Sum { parts } => parts.iter().all(|p| p.is_defined_at(t_secs)),
            _ => true,
        }
    }

    /// How long a `Trace` lasts: its last point's time plus one step (the gap
    /// between the last two points); `None` for other kinds and one-point traces.
    pub fn duration_secs(&self) -> Option<f64> {
        match self {
            Profile::Trace { points } if points.len() >= 2 => {
                let (last, prev) = (points[points.len() - 1].0, points[points.len() - 2].0);
                Some(last + (last - prev))
            }
            _ => None,
        }
    }
}

fn invalid(kind: &'static str, message: String) -> ProfileError {
    ProfileError::Invalid { kind, message }
}

/// A value in [-1, 1] from a hash of (seed, bin): splitmix64 mixing.
fn unit_noise(seed: u64, bin: i64) -> f64 {
    let mixed = splitmix64(seed ^ splitmix64(bin as u64));
    // 53 random bits -> [0, 1), then to [-1, 1).
    let unit = (mixed >> 11) as f64 / (1u64 << 53) as f64;
    2.0 * unit - 1.0
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Reads a trace CSV file; see [`parse_trace_csv`].
pub fn load_trace_csv(path: &Path, scale: f64) -> Result<Vec<(f64, f64)>, ProfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| ProfileError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_trace_csv_named(&text, scale, &path.display().to_string())
}

/// Parses a trace: the header `t_seconds,requests_per_second`, then one
/// `t,rate` line per bin; `t` starts at 0 and moves in a fixed step; a rate
/// is the mean over the bin, >= 0. Blank lines are skipped. Rates are
/// multiplied by `scale` (finite, >= 0). Errors name the 1-based line.
pub fn parse_trace_csv(text: &str, scale: f64) -> Result<Vec<(f64, f64)>, ProfileError> {
    parse_trace_csv_named(text, scale, "trace")
}

fn parse_trace_csv_named(
    text: &str,
    scale: f64,
    source_name: &str,
) -> Result<Vec<(f64, f64)>, ProfileError> {
    let error = |line: usize, message: String| ProfileError::Csv {
        source_name: source_name.to_string(),
        line,
        message,
    };
    if !(scale.is_finite() && scale >= 0.0) {
        return Err(error(
            0,
            format!("scale must be finite and >= 0, got {scale}"),
        ));
    }
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, header)) if header.trim_start_matches('\u{feff}') == TRACE_CSV_HEADER => {}
        Some((line, header)) => {
            return Err(error(
                line,
                format!("expected the header `{TRACE_CSV_HEADER}`, got `{header}`"),
            ));
        }
        None => {
            return Err(error(
                1,
                format!("empty: expected the header `{TRACE_CSV_HEADER}`"),
            ));
        }
    }
    let mut points: Vec<(f64, f64)> = Vec::new();
    let mut step: Option<f64> = None;
    for (line, content) in lines {
        let fields: Vec<&str> = content.split(',').map(str::trim).collect();
        let [t_field, rate_field] = fields[..] else {
            return Err(error(
                line,
                format!("expected 2 fields, got {}", fields.len()),
            ));
        };
        let parse = |name: &str, field: &str| -> Result<f64, ProfileError> {
            match field.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(v),
                _ => Err(error(
                    line,
                    format!("{name} `{field}` is not a finite number"),
                )),
            }
        };
        let t = parse("t_seconds", t_field)?;
        let rate = parse("requests_per_second", rate_field)?;
        if rate < 0.0 {
            return Err(error(line, format!("negative rate {rate}")));
        }
        match points.last() {
            None if t != 0.0 => {
                return Err(error(line, format!("the first t must be 0, got {t}")));
            }
            None => {}
            Some(&(prev, _)) => {
                let gap = t - prev;
                match step {
                    None if gap > 0.0 => step = Some(gap),
                    None => {
                        return Err(error(line, format!("t = {t} is not after {prev}")));
                    }
                    Some(s) if (gap - s).abs() > 1e-6 * s.max(1.0) => {
                        return Err(error(
                            line,
                            format!("t = {t} breaks the fixed step {s} (previous t = {prev})"),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        points.push((t, rate * scale));
    }
    if points.is_empty() {
        return Err(error(1, "no data lines after the header".into()));
    }
    Ok(points)
}

/// A deterministic RNG for [`arrivals`]: the same seed gives the same
/// sequence (for one version of `rand`).
pub fn seeded_rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// Requests arriving in `dt_secs` at `rate_rps`: a Poisson draw with mean
/// `rate x dt`; 0 when that mean is not a positive finite number.
pub fn arrivals<R: Rng + ?Sized>(rate_rps: f64, dt_secs: f64, rng: &mut R) -> f64 {
    let mean = rate_rps * dt_secs;
    if !(mean.is_finite() && mean > 0.0) {
        return 0.0;
    }
    match Poisson::new(mean) {
        Ok(poisson) => poisson.sample(rng),
        // Only a mean beyond Poisson::MAX_LAMBDA (~1.8e19) gets here; at that
        // size the relative noise is nil.
        Err(_) => mean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Profile {
        Profile::from_json(text).unwrap()
    }

    #[test]
    fn constant_and_step() {
        let c = json(r#"{"kind":"constant","rps":42.5}"#);
        assert_eq!(c.rate_at(0.0), 42.5);
        assert_eq!(c.rate_at(1e6), 42.5);
        let s = json(r#"{"kind":"step","before":50,"after":200,"atSecs":10}"#);
        assert_eq!(
            s,
            Profile::Step {
                before: 50.0,
                after: 200.0,
                at_secs: 10.0
            }
        );
        assert_eq!(s.rate_at(9.999), 50.0);
        assert_eq!(s.rate_at(10.0), 200.0);
        assert_eq!(s.rate_at(100.0), 200.0);
    }

    #[test]
    fn ramp_is_linear_between_its_ends() {
        let r = json(r#"{"kind":"ramp","from":10,"to":110,"overSecs":100,"atSecs":20}"#);
        assert_eq!(r.rate_at(0.0), 10.0);
        assert_eq!(r.rate_at(20.0), 10.0);
        assert!((r.rate_at(45.0) - 35.0).abs() < 1e-9);
        assert!((r.rate_at(70.0) - 60.0).abs() < 1e-9);
        assert_eq!(r.rate_at(120.0), 110.0);
        assert_eq!(r.rate_at(1e9), 110.0);
        let down = json(r#"{"kind":"ramp","from":100,"to":0,"overSecs":10}"#);
        assert!((down.rate_at(2.5) - 75.0).abs() < 1e-9);
    }

    #[test]
    fn sine_peaks_at_a_quarter_period_and_is_cut_at_zero() {
        let s = json(r#"{"kind":"sine","mean":100,"amplitude":50,"periodSecs":60}"#);
        assert!((s.rate_at(0.0) - 100.0).abs() < 1e-9);
        assert!((s.rate_at(15.0) - 150.0).abs() < 1e-9);
        assert!((s.rate_at(45.0) - 50.0).abs() < 1e-9);
        let mean: f64 = (0..600).map(|i| s.rate_at(i as f64 * 0.1)).sum::<f64>() / 600.0;
        assert!((mean - 100.0).abs() < 1e-6, "mean over a period {mean}");
        let deep = json(r#"{"kind":"sine","mean":10,"amplitude":50,"periodSecs":4}"#);
        assert_eq!(deep.rate_at(3.0), 0.0);
    }

    #[test]
    fn noise_is_deterministic_bounded_and_binned() {
        let text = r#"{"kind":"noise","mean":100,"relative":0.3,"seed":7}"#;
        let (a, b) = (json(text), json(text));
        let other = json(r#"{"kind":"noise","mean":100,"relative":0.3,"seed":8}"#);
        let mut differs = 0;
        let mut sum = 0.0;
        for i in 0..2000 {
            let t = i as f64 * 0.5;
            let r = a.rate_at(t);
            assert_eq!(r, b.rate_at(t));
            assert!((70.0..=130.0).contains(&r), "rate {r} out of +-30%");
            // Constant within a 1 s bin.
            assert_eq!(a.rate_at(t.floor()), a.rate_at(t.floor() + 0.999));
            if r != other.rate_at(t) {
                differs += 1;
            }
            sum += r;
        }
        assert!(differs > 1900, "seeds 7 and 8 agree too often");
        let mean = sum / 2000.0;
        assert!((mean - 100.0).abs() < 2.0, "noise mean {mean}");
        // The values spread over the band, not a few spots.
        let low = (0..1000).filter(|&i| a.rate_at(i as f64) < 85.0).count();
        assert!(
            (150..350).contains(&low),
            "{low} of 1000 bins in the lowest quarter"
        );
    }

    #[test]
    fn trace_holds_each_bin_value() {
        let t = json(r#"{"kind":"trace","points":[[0,5],[10,7],[20,0]]}"#);
        assert_eq!(t.rate_at(-1.0), 5.0);
        assert_eq!(t.rate_at(0.0), 5.0);
        assert_eq!(t.rate_at(9.99), 5.0);
        assert_eq!(t.rate_at(10.0), 7.0);
        assert_eq!(t.rate_at(25.0), 0.0);
        assert_eq!(t.duration_secs(), Some(30.0));
        assert_eq!(json(r#"{"kind":"constant","rps":1}"#).duration_secs(), None);
    }

    #[test]
    fn sum_adds_parts() {
        let s = json(
            r#"{"kind":"sum","parts":[{"kind":"constant","rps":10},
                {"kind":"step","before":0,"after":5,"atSecs":1}]}"#,
        );
        assert_eq!(s.rate_at(0.5), 10.0);
        assert_eq!(s.rate_at(1.5), 15.0);
    }

    #[test]
    fn serde_round_trips_every_kind() {
        let all = vec![
            Profile::Constant { rps: 1.0 },
            Profile::Step {
                before: 1.0,
                after: 2.0,
                at_secs: 3.0,
            },
            Profile::Ramp {
                from: 1.0,
                to: 2.0,
                over_secs: 3.0,
                at_secs: 4.0,
            },
            Profile::Sine {
                mean: 1.0,
                amplitude: 2.0,
                period_secs: 3.0,
            },
            Profile::Noise {
                mean: 1.0,
                relative: 0.3,
                seed: 9,
                bin_secs: 2.0,
            },
            Profile::Trace {
                points: vec![(0.0, 1.0), (1.0, 2.0)],
            },
            Profile::Sum {
                parts: vec![Profile::Constant { rps: 1.0 }],
            },
        ];
        for p in all {
            let text = serde_json::to_string(&p).unwrap();
            assert!(
                text.contains(&format!(r#""kind":"{}""#, p.kind())),
                "{text}"
            );
            assert_eq!(Profile::from_json(&text).unwrap(), p);
            let yaml = serde_yaml::to_string(&p).unwrap();
            assert_eq!(serde_yaml::from_str::<Profile>(&yaml).unwrap(), p);
        }
        let yaml: Profile =
            serde_yaml::from_str("kind: sine\nmean: 5\namplitude: 1\nperiodSecs: 2\n").unwrap();
        assert_eq!(yaml.rate_at(0.5), 6.0);
    }

    #[test]
    fn bad_profiles_are_rejected_with_a_reason() {
        for (text, needle) in [
            (r#"{"kind":"constant","rps":-1}"#, "rps"),
            (r#"{"kind":"constant"}"#, "rps"),
            (r#"{"kind":"warp","rps":1}"#, "warp"),
            (r#"{"kind":"constant","rps":1,"extra":2}"#, "extra"),
            (
                r#"{"kind":"step","before":1,"after":2,"at_secs":3}"#,
                "at_secs",
            ),
            (
                r#"{"kind":"ramp","from":1,"to":2,"overSecs":0}"#,
                "overSecs",
            ),
            (
                r#"{"kind":"sine","mean":1,"amplitude":1,"periodSecs":-5}"#,
                "periodSecs",
            ),
            (r#"{"kind":"noise","mean":1,"relative":-0.1}"#, "relative"),
            (r#"{"kind":"trace","points":[]}"#, "empty"),
            (r#"{"kind":"trace","points":[[0,1],[0,2]]}"#, "not after"),
            (
                r#"{"kind":"sum","parts":[{"kind":"constant","rps":-3}]}"#,
                "rps",
            ),
            ("not json", "profile JSON"),
        ] {
            let err = Profile::from_json(text).unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn csv_parses_and_scales() {
        let text = "t_seconds,requests_per_second\n0,1.5\n60,3\n120, 0\n\n";
        let points = parse_trace_csv(text, 2.0).unwrap();
        assert_eq!(points, vec![(0.0, 3.0), (60.0, 6.0), (120.0, 0.0)]);
        let with_bom = "\u{feff}t_seconds,requests_per_second\r\n0,1\r\n";
        assert_eq!(parse_trace_csv(with_bom, 1.0).unwrap(), vec![(0.0, 1.0)]);
    }

    #[test]
    fn csv_errors_name_the_line() {
        let h = TRACE_CSV_HEADER;
        for (text, line, needle) in [
            (String::new(), 1, "empty"),
            ("t,rps\n0,1\n".to_string(), 1, "header"),
            (format!("{h}\n"), 1, "no data"),
            (format!("{h}\n0,1\n1\n"), 3, "2 fields"),
            (format!("{h}\n0,1\n1,2,3\n"), 3, "2 fields"),
            (format!("{h}\n0,1\n1,abc\n"), 3, "requests_per_second `abc`"),
            (format!("{h}\n0,1\nx,1\n"), 3, "t_seconds `x`"),
            (format!("{h}\n0,1\n1,NaN\n"), 3, "finite"),
            (format!("{h}\n0,1\n1,-2\n"), 3, "negative"),
            (format!("{h}\n5,1\n"), 2, "first t must be 0"),
            (format!("{h}\n0,1\n0,1\n"), 3, "not after"),
            (format!("{h}\n0,1\n10,1\n20,1\n35,1\n"), 5, "fixed step"),
            (format!("{h}\n0,1\n\n10,1\n25,1\n"), 5, "fixed step"),
        ] {
            match parse_trace_csv(&text, 1.0) {
                Err(ProfileError::Csv {
                    line: got, message, ..
                }) => {
                    assert_eq!(got, line, "{text:?}: {message}");
                    assert!(message.contains(needle), "{text:?}: {message}");
                }
                other => panic!("{text:?}: expected a CSV error, got {other:?}"),
            }
        }
        assert!(parse_trace_csv(&format!("{h}\n0,1\n"), -1.0).is_err());
        let missing = load_trace_csv(Path::new("/nonexistent/trace.csv"), 1.0).unwrap_err();
        assert!(matches!(missing, ProfileError::Io { .. }), "{missing}");
    }

    #[test]
    fn real_traces_load_when_present() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/traces");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            eprintln!("skipped: no {}", dir.display());
            return;
        };
        let mut loaded = 0;
        for entry in entries {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "csv") {
                continue;
            }
            let profile = Profile::trace_from_csv(&path, 1.0).unwrap();
            profile.validate().unwrap();
            let Profile::Trace { points } = &profile else {
                unreachable!()
            };
            assert!(
                points.len() > 100,
                "{}: {} points",
                path.display(),
                points.len()
            );
            let max = points.iter().map(|p| p.1).fold(0.0, f64::max);
            assert!(max > 0.0);
            let halved = load_trace_csv(&path, 0.5).unwrap();
            assert_eq!(halved[1].1, points[1].1 * 0.5);
            loaded += 1;
        }
        assert!(loaded > 0, "no CSV in {}", dir.display());
    }

    #[test]
    fn arrivals_are_seeded_poisson() {
        let draw = |seed| {
            let mut rng = seeded_rng(seed);
            (0..2000)
                .map(|_| arrivals(50.0, 0.1, &mut rng))
                .collect::<Vec<_>>()
        };
        let a = draw(1);
        assert_eq!(a, draw(1));
        assert_ne!(a, draw(2));
        assert!(a.iter().all(|x| x.fract() == 0.0 && *x >= 0.0));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / a.len() as f64;
        // Poisson(5): mean 5, variance 5; standard error of the mean 0.05.
        assert!((mean - 5.0).abs() < 0.25, "mean {mean}");
        assert!((var - 5.0).abs() < 1.0, "variance {var}");
        let mut rng = seeded_rng(3);
        let big = arrivals(1e9, 1.0, &mut rng);
        assert!((big - 1e9).abs() < 1e6, "{big}");
        assert_eq!(arrivals(0.0, 1.0, &mut rng), 0.0);
        assert_eq!(arrivals(-5.0, 1.0, &mut rng), 0.0);
        assert_eq!(arrivals(f64::NAN, 1.0, &mut rng), 0.0);
        assert_eq!(arrivals(f64::INFINITY, 1.0, &mut rng), 0.0);
    }
}
