//! `inflight simulate`: replay a request-rate trace (or a synthetic profile)
//! against a simulated fleet driven by inflight's engine and, with
//! `--compare`, by models of the HPA, KEDA and Knative's KPA; print a table
//! per autoscaler and plot demand, capacity and replicas.
//!
//! This is the only place in `sim` that prints (the command's output and a
//! progress bar on stderr).
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};

use crate::api::v1alpha1::{ConcurrencyPolicy, ConcurrencyPolicySpec};

use super::compare::{Contender, Setup, compare, panels};
use super::plot::{PlotError, write_svg};
use super::profile::{Profile, ProfileError};
use super::report::outcome_table;
use super::run::{Arrivals, DEFAULT_SEED, Outcome, SimError, World};
use super::service::{DEFAULT_PER_POD_LIMIT, DEFAULT_QUEUE_FACTOR, ServiceConfig};

/// Points per plotted series (the maximum over each interval is drawn).
pub const PLOT_POINTS: usize = 1000;
/// Show a progress bar when a command simulates at least this many seconds
/// (summed over the autoscalers).
const PROGRESS_MIN_SECS: u64 = 200_000;

/// Replay a request-rate trace against a simulated fleet, with inflight's
/// engine and, optionally, models of the HPA, KEDA and Knative's KPA.
#[derive(clap::Args, Clone, Debug)]
pub struct SimulateArgs {
    /// Request-rate trace: a CSV with the header `t_seconds,requests_per_second`.
    #[arg(long, required_unless_present = "profile", conflicts_with = "profile")]
    pub trace: Option<PathBuf>,
    /// A synthetic rate profile as JSON instead of a trace, e.g.
    /// '{"kind":"step","before":500,"after":3000,"atSecs":600}'; needs --duration.
    #[arg(long, requires = "duration")]
    pub profile: Option<String>,
    /// A ConcurrencyPolicy YAML (the whole object or its spec) for inflight.
    /// Without it: the engine's defaults with concurrencyPerPod = --limit,
    /// the service time known, in-flight, queue-depth and arrival-rate
    /// metrics, maxReplicas high, horizon = --startup.
    #[arg(long)]
    pub policy: Option<PathBuf>,
    /// Multiply the trace's rates by this.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Target utilization of inflight, and the equivalent target of each
    /// peer (HPA and KEDA: limit x utilization per pod; KPA: its target
    /// utilization). Default: the policy's for inflight, HPA and KEDA; 0.7
    /// for the KPA.
    #[arg(long)]
    pub utilization: Option<f64>,
    /// Peers to run beside inflight: hpa, keda, kpa (comma-separated).
    #[arg(long, value_delimiter = ',', value_parser = parse_peer)]
    pub compare: Vec<Contender>,
    /// Write an SVG of demand, capacity and replicas over time here.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print the results as JSON (an array, one object per autoscaler).
    #[arg(long)]
    pub json: bool,
    /// Seed of the Poisson arrivals: the same seed gives the same numbers.
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Skip this much of the trace (durations: 30s, 100ms, 2h, or plain seconds).
    #[arg(long, value_parser = parse_secs, default_value = "0s")]
    pub start: f64,
    /// Simulate this long (default: the whole trace).
    #[arg(long, value_parser = parse_secs)]
    pub duration: Option<f64>,
    /// Time from a pod's request to Ready.
    #[arg(long, value_parser = parse_secs, default_value = "30s")]
    pub startup: f64,
    /// Prometheus scrape interval.
    #[arg(long, value_parser = parse_secs, default_value = "5s")]
    pub scrape_interval: f64,
    /// Mean service time of one request.
    #[arg(long, value_parser = parse_secs, default_value = "100ms")]
    pub service_time: f64,
    /// Requests one pod serves at once.
    #[arg(long, default_value_t = DEFAULT_PER_POD_LIMIT)]
    pub limit: u32,
    /// Waiting requests allowed per ready pod, as a multiple of --limit.
    #[arg(long, default_value_t = DEFAULT_QUEUE_FACTOR)]
    pub queue_factor: u32,
    /// A waiting request gives up after this long.
    #[arg(long, value_parser = parse_secs, default_value = "10s")]
    pub client_timeout: f64,
    /// Latency objective: a second with a request slower than this, or a
    /// dropped request, is an SLO violation.
    #[arg(long, value_parser = parse_secs, default_value = "200ms")]
    pub slo: f64,
    /// inflight's evaluation period (default: the policy's syncPeriod, else 5s).
    #[arg(long, value_parser = parse_secs)]
    pub sync_period: Option<f64>,
}

/// What `inflight simulate` can fail on.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("policy {path}: {message}")]
    Policy { path: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error("writing JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// A duration: a number of seconds (`30`, `0.1`) or a humantime string
/// (`30s`, `100ms`, `2h`).
pub fn parse_secs(s: &str) -> Result<f64, String> {
    let s = s.trim();
    if let Ok(v) = s.parse::<f64>() {
        return if v.is_finite() && v >= 0.0 {
            Ok(v)
        } else {
            Err(format!("`{s}` is not a duration"))
        };
    }
    humantime::parse_duration(s)
        .map(|d| d.as_secs_f64())
        .map_err(|e| format!("`{s}` is not a duration: {e}"))
}

fn parse_peer(s: &str) -> Result<Contender, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "hpa" => Ok(Contender::Hpa),
        "keda" => Ok(Contender::Keda),
        "kpa" | "knative" => Ok(Contender::Kpa),
        other => Err(format!("unknown peer `{other}`: expected hpa, keda or kpa")),
    }
}

impl SimulateArgs {
    /// The simulated world these flags describe.
    pub fn world(&self) -> World {
        World {
            service: ServiceConfig {
                service_time_secs: self.service_time,
                per_pod_limit: self.limit,
                queue_limit_per_pod: Some(self.queue_factor.saturating_mul(self.limit)),
                client_timeout_secs: self.client_timeout,
                ..ServiceConfig::default()
            },
            startup_secs: self.startup,
            scrape_interval_secs: self.scrape_interval,
            slo_latency_secs: self.slo,
            min_replicas: 1,
        }
    }

    /// The profile to replay and its natural length (for traces).
    fn profile(&self) -> Result<(Profile, Option<f64>, String), CliError> {
        if let Some(path) = &self.trace {
            let profile = Profile::trace_from_csv(path, self.scale)?;
            let length = profile.duration_secs();
            let name = path.file_stem().map_or_else(
                || path.display().to_string(),
                |s| s.to_string_lossy().into_owned(),
            );
            return Ok((profile, length, name));
        }
        let text = self
            .profile
            .as_deref()
            .ok_or_else(|| CliError::Usage("give --trace or --profile".into()))?;
        let base = Profile::from_json(text)?;
        let profile = scale_profile(base, self.scale);
        Ok((profile.clone(), None, profile.kind().to_string()))
    }

    /// inflight's policy: `--policy` or the default one; then `--utilization`.
    pub fn setup(&self, world: &World) -> Result<Setup, CliError> {
        let mut setup = Setup::defaults(world);
        if let Some(path) = &self.policy {
            let spec = read_policy(path)?;
            let policy_error = |message: String| CliError::Policy {
                path: path.display().to_string(),
                message,
            };
            setup.policy = spec
                .engine_config(Some(world.startup_secs))
                .map_err(|e| policy_error(e.to_string()))?;
            if let Some(period) = spec
                .sync_period_secs()
                .map_err(|e| policy_error(e.to_string()))?
            {
                setup.sync_period_secs = period;
            }
            setup.with_queue = spec.metrics.queue_depth.is_some();
            setup.with_arrivals = spec.metrics.arrival_rate.is_some();
        }
        if let Some(period) = self.sync_period {
            setup.sync_period_secs = period;
        }
        if let Some(u) = self.utilization {
            if !(u.is_finite() && u > 0.0 && u <= 1.0) {
                return Err(CliError::Usage(format!(
                    "--utilization must be in (0, 1], got {u}"
                )));
            }
            setup = setup.with_utilization(u);
        }
        if !(setup.sync_period_secs.is_finite() && setup.sync_period_secs > 0.0) {
            return Err(CliError::Usage("the sync period must be positive".into()));
        }
        Ok(setup)
    }
}

/// Multiplies a synthetic profile's rates (a trace is scaled when loaded).
fn scale_profile(profile: Profile, scale: f64) -> Profile {
    match profile {
        Profile::Trace { points } => Profile::Trace {
            points: points.into_iter().map(|(t, r)| (t, r * scale)).collect(),
        },
        Profile::Constant { rps } => Profile::Constant { rps: rps * scale },
        Profile::Step {
            before,
            after,
            at_secs,
        } => Profile::Step {
            before: before * scale,
            after: after * scale,
            at_secs,
        },
        Profile::Ramp {
            from,
            to,
            over_secs,
            at_secs,
        } => Profile::Ramp {
            from: from * scale,
            to: to * scale,
            over_secs,
            at_secs,
        },
        Profile::Sine {
            mean,
            amplitude,
            period_secs,
        } => Profile::Sine {
            mean: mean * scale,
            amplitude: amplitude * scale,
            period_secs,
        },
        Profile::Noise {
            mean,
            relative,
            seed,
            bin_secs,
        } => Profile::Noise {
            mean: mean * scale,
            relative,
            seed,
            bin_secs,
        },
        Profile::Sum { parts } => Profile::Sum {
            parts: parts.into_iter().map(|p| scale_profile(p, scale)).collect(),
        },
    }
}

/// Reads a ConcurrencyPolicy YAML: a whole object or just its spec.
pub fn read_policy(path: &Path) -> Result<ConcurrencyPolicySpec, CliError> {
    let error = |message: String| CliError::Policy {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    match serde_yaml::from_str::<ConcurrencyPolicy>(&text) {
        Ok(policy) => Ok(policy.spec),
        Err(object_error) => {
            serde_yaml::from_str::<ConcurrencyPolicySpec>(&text).map_err(|spec_error| {
                error(format!(
                    "not a ConcurrencyPolicy ({object_error}) nor its spec ({spec_error})"
                ))
            })
        }
    }
}

/// The contenders a command runs: inflight first, then the peers asked for.
pub fn contenders(peers: &[Contender]) -> Vec<Contender> {
    let mut all = vec![Contender::Inflight];
    for &p in peers {
        if !all.contains(&p) {
            all.push(p);
        }
    }
    all
}

/// The entry point of `inflight simulate`.
pub fn run(args: SimulateArgs) -> Result<(), CliError> {
    let world = args.world();
    world.validate()?;
    let setup = args.setup(&world)?;
    let (profile, length, name) = args.profile()?;
    let available = length.map(|l| (l - args.start).max(0.0));
    let duration = match (args.duration, available) {
        (Some(d), Some(a)) => d.min(a),
        (Some(d), None) => d,
        (None, Some(a)) => a,
        (None, None) => return Err(CliError::Usage("--profile needs --duration".into())),
    };
    let seconds = duration.floor() as u64;
    if seconds == 0 {
        return Err(CliError::Usage(
            "nothing to simulate: the duration is 0".into(),
        ));
    }
    let arrivals = Arrivals::draw(&profile, args.start.floor() as u64, seconds, args.seed);
    let contenders = contenders(&args.compare);

    let total = seconds * contenders.len() as u64;
    let bar =
        (!args.json && std::io::stderr().is_terminal() && total >= PROGRESS_MIN_SECS).then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{bar:40} {percent}% simulated, {eta} left")
            {
                bar.set_style(style);
            }
            bar
        });
    let progress = |n: u64| {
        if let Some(b) = &bar {
            b.inc(n);
        }
    };
    let points = args.plot.is_some().then_some(PLOT_POINTS);
    let started = std::time::Instant::now();
    let runs = compare(&arrivals, &world, &setup, &contenders, points, &progress)?;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    let elapsed = started.elapsed().as_secs_f64();

    if let Some(path) = &args.plot {
        let title = format!("{name} x {} (seed {})", args.scale, args.seed);
        write_svg(path, &title, &panels(&runs))?;
    }
    let outcomes: Vec<Outcome> = runs.into_iter().map(|r| r.outcome).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
        return Ok(());
    }
    let peak = arrivals
        .measured
        .iter()
        .fold(0.0_f64, |m, &a| m.max(world.demand_pods(a)));
    println!(
        "{name} x {}: {seconds} s simulated (seed {}), peak demand {peak:.0} pods at full utilization",
        args.scale, args.seed
    );
    println!(
        "inflight: {:.0} per pod x utilization {:.2}, every {}s; HPA/KEDA target {:.1} per pod; KPA utilization {:.2}",
        setup.policy.concurrency_per_pod,
        setup.policy.utilization,
        setup.sync_period_secs,
        setup.per_pod_target(),
        setup.kpa_utilization
    );
    println!();
    print!("{}", outcome_table(&outcomes));
    println!();
    println!(
        "SLO: {:.0} ms; a violation second has a slower or a dropped request. Cost: requested pods x seconds. {elapsed:.1}s of wall time.",
        world.slo_latency_secs * 1000.0
    );
    if let Some(path) = &args.plot {
        println!("plot: {}", path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::run::{
        DEFAULT_SCRAPE_INTERVAL_SECS, DEFAULT_SLO_LATENCY_SECS, DEFAULT_STARTUP_SECS,
    };
    use crate::sim::service::{DEFAULT_CLIENT_TIMEOUT_SECS, DEFAULT_SERVICE_TIME_SECS};
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(argv: &[&str]) -> Result<SimulateArgs, clap::Error> {
        let mut full = vec!["simulate"];
        full.extend_from_slice(argv);
        Wrapper::try_parse_from(full).map(|w| w.args)
    }

    #[test]
    fn flags_and_defaults() {
        let a = parse(&[
            "--trace",
            "t.csv",
            "--scale",
            "3",
            "--compare",
            "hpa,kpa",
            "--json",
        ])
        .unwrap();
        assert_eq!(a.scale, 3.0);
        assert_eq!(a.compare, vec![Contender::Hpa, Contender::Kpa]);
        assert!(a.json);
        let w = a.world();
        // The flags' defaults are the documented defaults of the model.
        assert_eq!(w.service.per_pod_limit, DEFAULT_PER_POD_LIMIT);
        assert_eq!(
            w.service.queue_limit_per_pod,
            Some(DEFAULT_QUEUE_FACTOR * DEFAULT_PER_POD_LIMIT)
        );
        assert_eq!(
            (w.startup_secs, w.scrape_interval_secs, w.slo_latency_secs),
            (
                DEFAULT_STARTUP_SECS,
                DEFAULT_SCRAPE_INTERVAL_SECS,
                DEFAULT_SLO_LATENCY_SECS
            )
        );
        assert_eq!(w.service.client_timeout_secs, DEFAULT_CLIENT_TIMEOUT_SECS);
        assert_eq!(w.service.service_time_secs, DEFAULT_SERVICE_TIME_SECS);
        // (10, 10 x 10, 30 s, 5 s, 200 ms, 10 s, 100 ms as the issue specifies.)
        assert_eq!(w.service.queue_limit(1), 100.0);
        assert_eq!((w.startup_secs, w.slo_latency_secs), (30.0, 0.2));
    }

    #[test]
    fn durations_parse_as_numbers_or_humantime() {
        assert_eq!(parse_secs("30"), Ok(30.0));
        assert_eq!(parse_secs("100ms"), Ok(0.1));
        assert_eq!(parse_secs("2h"), Ok(7200.0));
        assert!(parse_secs("-1").is_err());
        assert!(parse_secs("soon").is_err());
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(parse(&[]).is_err(), "a trace or profile is required");
        assert!(parse(&["--trace", "t.csv", "--compare", "cpu"]).is_err());
        assert!(
            parse(&["--profile", "{}"]).is_err(),
            "a profile needs --duration"
        );
        let a = parse(&["--trace", "t.csv", "--utilization", "1.5"]).unwrap();
        assert!(matches!(a.setup(&a.world()), Err(CliError::Usage(_))));
    }

    #[test]
    fn utilization_flag_moves_inflight_and_peers() {
        let a = parse(&["--trace", "t.csv", "--utilization", "0.6"]).unwrap();
        let s = a.setup(&a.world()).unwrap();
        assert_eq!(s.policy.utilization, 0.6);
        assert_eq!(s.per_pod_target(), 6.0);
        assert_eq!(s.kpa_utilization, 0.6);
    }

    #[test]
    fn a_policy_file_configures_inflight_and_the_peers_follow_its_target() {
        let dir = std::env::temp_dir().join(format!("inflight-sim-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let object = dir.join("object.yaml");
        std::fs::write(
            &object,
            "apiVersion: inflight.dev/v1alpha1\nkind: ConcurrencyPolicy\nmetadata: {name: web}\nspec:\n  \
             targetRef: {kind: Deployment, name: web}\n  maxReplicas: 300\n  \
             metrics: {inFlight: {query: 'sum(x)'}}\n  \
             target: {concurrencyPerPod: 12, utilization: 0.5, serviceTime: 100ms}\n  syncPeriod: 15s\n",
        )
        .unwrap();
        let a = parse(&["--trace", "t.csv", "--policy", object.to_str().unwrap()]).unwrap();
        let s = a.setup(&a.world()).unwrap();
        assert_eq!(s.policy.concurrency_per_pod, 12.0);
        assert_eq!(s.policy.max_replicas, 300);
        assert_eq!(s.sync_period_secs, 15.0);
        assert!(!s.with_queue, "no queueDepth metric in the policy");
        assert_eq!(s.per_pod_target(), 6.0);
        // The learned lead time (the start-up) is the horizon for `auto`.
        assert_eq!(s.policy.prediction.map(|p| p.horizon_secs), Some(30.0));

        let spec = dir.join("spec.yaml");
        std::fs::write(
            &spec,
            "targetRef: {kind: Deployment, name: web}\nmaxReplicas: 50\n\
             metrics: {inFlight: {query: 'a'}, queueDepth: {query: 'b'}}\ntarget: {concurrencyPerPod: 10}\n",
        )
        .unwrap();
        let a = parse(&[
            "--trace",
            "t.csv",
            "--policy",
            spec.to_str().unwrap(),
            "--utilization",
            "0.9",
        ])
        .unwrap();
        let s = a.setup(&a.world()).unwrap();
        assert!(s.with_queue);
        assert_eq!(s.policy.utilization, 0.9);
        assert_eq!(s.sync_period_secs, 5.0);

        let bad = dir.join("bad.yaml");
        std::fs::write(&bad, "kind: Nonsense\n").unwrap();
        let a = parse(&["--trace", "t.csv", "--policy", bad.to_str().unwrap()]).unwrap();
        assert!(matches!(a.setup(&a.world()), Err(CliError::Policy { .. })));
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn contenders_start_with_inflight_without_duplicates() {
        assert_eq!(
            contenders(&[Contender::Kpa, Contender::Hpa, Contender::Kpa]),
            vec![Contender::Inflight, Contender::Kpa, Contender::Hpa]
        );
    }

    #[test]
    fn a_synthetic_profile_is_scaled() {
        let p = scale_profile(
            Profile::Step {
                before: 10.0,
                after: 20.0,
                at_secs: 5.0,
            },
            3.0,
        );
        assert_eq!(p.rate_at(0.0), 30.0);
        assert_eq!(p.rate_at(6.0), 60.0);
    }
}
