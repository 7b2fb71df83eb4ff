//! The benchmark behind `make bench`: every trace of a directory plus
//! synthetic step, ramp, spike and noise profiles, every autoscaler at its
//! defaults and over a sweep of target utilizations; writes
//! `results.md` (deterministic: same seed, same file) and one SVG per
//! workload; wall-clock timings are returned to the caller (not written to
//! `results.md`, which must not change from run to run).
//!
//! Traces are scaled so that their peak needs [`TRACE_PEAK_PODS`] pods at
//! full utilization (their absolute rates differ by three orders of
//! magnitude); the synthetic profiles are given in requests per second for
//! the default service (100 req/s per pod at full utilization).
//!
//! Matched cost: autoscalers trade pod-seconds against SLO violations, so
//! each peer at its defaults is compared with inflight's violations
//! interpolated (linearly, along inflight's utilization sweep sorted by
//! cost) at the peer's pod-seconds.
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Instant;

use super::compare::{Contender, KPA_DEFAULT_UTILIZATION, Run, Setup, compare, panels};
use super::plot::{PlotError, write_svg};
use super::profile::{Profile, ProfileError, load_trace_csv};
use super::report::{markdown_table, outcome_table};
use super::run::{Arrivals, DEFAULT_SEED, Outcome, SimError, WARM_UP_SECS, World, run};

/// Traces are scaled so that their peak bin needs this many pods at full
/// utilization.
pub const TRACE_PEAK_PODS: f64 = 100.0;
/// Target utilizations swept for inflight and for each peer.
pub const SWEEP: [f64; 11] = [0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0];
/// Goal: at matched cost, at most this fraction of a peer's violation seconds.
pub const GOAL_MATCHED_RATIO: f64 = 0.5;
/// Goal: at the defaults, fewer than this fraction of HPA's reversals.
pub const GOAL_REVERSAL_RATIO: f64 = 0.5;
/// Goal: at the defaults, pod-seconds within this factor of the oracle's.
pub const GOAL_COST_VS_ORACLE: f64 = 1.3;
/// Points per plotted series.
const PLOT_POINTS: usize = 1000;
/// Seeds per workload by default.
pub const DEFAULT_SEEDS: u64 = 3;

/// Arguments of the benchmark (`cargo run --release --example bench`).
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "bench",
    about = "Benchmark inflight against HPA, KEDA and Knative's KPA"
)]
pub struct BenchArgs {
    /// Directory of trace CSVs (`t_seconds,requests_per_second`); every
    /// `*.csv` in it is benchmarked.
    #[arg(long, default_value = "../shared/traces")]
    pub traces: PathBuf,
    /// Where to write results.md and the plots.
    #[arg(long, default_value = "bench")]
    pub out: PathBuf,
    /// Seed of the Poisson arrivals (of the first run of each workload).
    #[arg(long, default_value_t = DEFAULT_SEED)]
    pub seed: u64,
    /// Runs per workload and setting, with seeds `seed`, `seed + 1`, ...;
    /// their counts and pod-seconds are added up (violations are rare
    /// events: one seed's count is noisy).
    #[arg(long, default_value_t = DEFAULT_SEEDS)]
    pub seeds: u64,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Only the first N seconds of each workload (a smoke test).
    #[arg(long)]
    pub limit_secs: Option<u64>,
}

/// What the benchmark can fail on.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Profile(#[from] ProfileError),
    #[error(transparent)]
    Sim(#[from] SimError),
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("no workload to benchmark")]
    Empty,
    #[error("a benchmark worker stopped: {0}")]
    Worker(String),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> BenchError + '_ {
    move |source| BenchError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// One benchmarked workload.
#[derive(Clone, Debug)]
pub struct Workload {
    pub name: String,
    /// Where it comes from and how it is scaled, for the report.
    pub description: String,
    /// Per-second arrivals, one series per seed (the first is plotted).
    pub arrivals: Vec<Arc<Arrivals>>,
}

/// A piecewise-linear rate through `corners` (time, req/s), sampled every
/// second, as a trace (a `Sum` of steps cannot go down: each part is cut at 0).
fn piecewise(corners: &[(f64, f64)], seconds: u64) -> Profile {
    let rate = |t: f64| -> f64 {
        let after = corners.partition_point(|&(ct, _)| ct <= t);
        match (
            after.checked_sub(1).and_then(|i| corners.get(i)),
            corners.get(after),
        ) {
            (Some(&(t0, r0)), Some(&(t1, r1))) if t1 > t0 => r0 + (r1 - r0) * (t - t0) / (t1 - t0),
            (Some(&(_, r)), _) | (None, Some(&(_, r))) => r,
            (None, None) => 0.0,
        }
    };
    Profile::Trace {
        points: (0..seconds).map(|t| (t as f64, rate(t as f64))).collect(),
    }
}

/// The synthetic profiles: (name, description, profile, seconds).
pub fn synthetic_profiles() -> Vec<(&'static str, &'static str, Profile, u64)> {
    vec![
        (
            "step",
            "1000 req/s, 5000 from 20 to 40 min; 1 h",
            piecewise(
                &[
                    (0.0, 1000.0),
                    (1199.0, 1000.0),
                    (1200.0, 5000.0),
                    (2399.0, 5000.0),
                    (2400.0, 1000.0),
                ],
                3600,
            ),
            3600,
        ),
        (
            "ramp",
            "500 req/s, up to 8000 over 30 min from 10 min, held 10 min, down over 30 min; 1.5 h",
            piecewise(
                &[
                    (0.0, 500.0),
                    (600.0, 500.0),
                    (2400.0, 8000.0),
                    (3000.0, 8000.0),
                    (4800.0, 500.0),
                ],
                5400,
            ),
            5400,
        ),
        (
            "spike",
            "1500 req/s, 9000 for 2 min at 30 min; 1 h",
            piecewise(
                &[
                    (0.0, 1500.0),
                    (1799.0, 1500.0),
                    (1800.0, 9000.0),
                    (1919.0, 9000.0),
                    (1920.0, 1500.0),
                ],
                3600,
            ),
            3600,
        ),
        (
            "noise",
            "3000 req/s +-50%, uniform, a new value every 10 s; 1 h",
            Profile::Noise {
                mean: 3000.0,
                relative: 0.5,
                seed: 7,
                bin_secs: 10.0,
            },
            3600,
        ),
    ]
}

/// The scale that makes a trace's peak need `TRACE_PEAK_PODS` pods.
pub fn trace_scale(points: &[(f64, f64)], world: &World) -> f64 {
    let peak = points.iter().fold(0.0_f64, |m, &(_, r)| m.max(r));
    let per_pod_rps = f64::from(world.service.per_pod_limit) / world.service.service_time_secs;
    if peak > 0.0 {
        TRACE_PEAK_PODS * per_pod_rps / peak
    } else {
        1.0
    }
}

/// Every workload: the traces in `dir` (sorted by name), then the
/// synthetic profiles.
pub fn workloads(args: &BenchArgs, world: &World) -> Result<Vec<Workload>, BenchError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.traces)
        .map_err(io_error(&args.traces))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    files.sort();
    let limit = |n: u64| args.limit_secs.map_or(n, |l| l.min(n));
    let draws = |profile: &Profile, seconds: u64| -> Vec<Arc<Arrivals>> {
        (0..args.seeds.max(1))
            .map(|k| {
                Arc::new(Arrivals::draw(
                    profile,
                    0,
                    limit(seconds),
                    args.seed.wrapping_add(k),
                ))
            })
            .collect()
    };
    let mut out = Vec::new();
    for path in files {
        let raw = load_trace_csv(&path, 1.0)?;
        let scale = trace_scale(&raw, world);
        let profile = Profile::trace_from_csv(&path, scale)?;
        let seconds = profile.duration_secs().unwrap_or(0.0).floor() as u64;
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        );
        out.push(Workload {
            description: format!("trace `{name}.csv` x {scale:.4} ({} s)", seconds),
            name,
            arrivals: draws(&profile, seconds),
        });
    }
    for (name, description, profile, seconds) in synthetic_profiles() {
        out.push(Workload {
            name: name.to_string(),
            description: format!("synthetic: {description}"),
            arrivals: draws(&profile, seconds),
        });
    }
    if out.is_empty() {
        return Err(BenchError::Empty);
    }
    Ok(out)
}

/// One point of a utilization sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub utilization: f64,
    pub pod_seconds: f64,
    pub violation_secs: f64,
    pub reversals: u64,
}

/// inflight's violations at a given cost, from its sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Matched {
    /// Interpolated between two sweep points.
    At(f64),
    /// The peer costs more than inflight's most expensive setting; the value
    /// there (more cost would not add violations in any sane autoscaler).
    AtMost(f64),
    /// The peer costs less than inflight's cheapest setting.
    OutOfRange,
}

/// Linear interpolation of violation seconds at `cost` along `sweep`.
pub fn violations_at_cost(sweep: &[SweepPoint], cost: f64) -> Matched {
    let mut points: Vec<(f64, f64)> = sweep
        .iter()
        .map(|p| (p.pod_seconds, p.violation_secs))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (Some(&first), Some(&last)) = (points.first(), points.last()) else {
        return Matched::OutOfRange;
    };
    if cost < first.0 {
        return Matched::OutOfRange;
    }
    if cost > last.0 {
        return Matched::AtMost(last.1);
    }
    for pair in points.windows(2) {
        let ((c0, v0), (c1, v1)) = (pair[0], pair[1]);
        if cost >= c0 && cost <= c1 {
            if c1 - c0 <= f64::EPSILON * c1.abs().max(1.0) {
                return Matched::At(v0.min(v1));
            }
            return Matched::At(v0 + (v1 - v0) * (cost - c0) / (c1 - c0));
        }
    }
    Matched::At(last.1)
}

/// Everything measured on one workload.
#[derive(Clone, Debug)]
pub struct WorkloadResult {
    pub workload: Workload,
    /// inflight, hpa, keda, kpa at their defaults, then the oracle.
    pub defaults: Vec<Run>,
    /// Per contender, its sweep (in `SWEEP` order).
    pub sweeps: Vec<(Contender, Vec<SweepPoint>)>,
}

impl WorkloadResult {
    fn default_outcome(&self, name: &str) -> Option<&Outcome> {
        self.defaults
            .iter()
            .map(|r| &r.outcome)
            .find(|o| o.name == name)
    }

    /// A peer's pod-seconds and violations beside inflight's violations
    /// interpolated at that cost.
    fn matched(&self, peer: Contender, pod_seconds: f64, violation_secs: f64) -> MatchedRow {
        MatchedRow {
            workload: self.workload.name.clone(),
            peer: peer.name(),
            peer_pod_seconds: pod_seconds,
            peer_violation_secs: violation_secs,
            inflight_violation_secs: violations_at_cost(
                self.sweep(Contender::Inflight),
                pod_seconds,
            ),
        }
    }

    fn sweep(&self, contender: Contender) -> &[SweepPoint] {
        self.sweeps
            .iter()
            .find(|(c, _)| *c == contender)
            .map_or(&[], |(_, s)| s.as_slice())
    }
}

const ALL: [Contender; 4] = [
    Contender::Inflight,
    Contender::Hpa,
    Contender::Keda,
    Contender::Kpa,
];

/// Runs the defaults of every workload (`base`) and the sweeps (`base` at
/// each utilization), on `threads` workers.
pub fn measure(
    workloads: &[Workload],
    world: &World,
    base: &Setup,
    threads: usize,
) -> Result<Vec<WorkloadResult>, BenchError> {
    // Jobs: (workload, seed, contender, utilization).
    let jobs: Vec<(usize, usize, Contender, f64)> = workloads
        .iter()
        .enumerate()
        .flat_map(|(w, workload)| {
            (0..workload.arrivals.len()).flat_map(move |k| {
                ALL.iter()
                    .flat_map(move |&c| SWEEP.iter().map(move |&u| (w, k, c, u)))
            })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let sender = sender.clone();
            let (next, jobs) = (&next, &jobs);
            scope.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(w, k, contender, u)) = jobs.get(i) else {
                        break;
                    };
                    let setup = base.clone().with_utilization(u);
                    let mut autoscaler = setup.autoscaler(contender, world);
                    let result = run(
                        &workloads[w].arrivals[k],
                        world,
                        autoscaler.as_mut(),
                        None,
                        &mut |_| {},
                    );
                    if sender.send((i, result.map(|(o, _)| o))).is_err() {
                        break;
                    }
                }
            });
        }
    });
    drop(sender);
    let mut outcomes: Vec<Option<Outcome>> = vec![None; jobs.len()];
    for (i, result) in receiver {
        outcomes[i] = Some(result?);
    }
    let mut results = Vec::with_capacity(workloads.len());
    for (w, workload) in workloads.iter().enumerate() {
        let defaults = seeded_defaults(workload, world, base)?;
        let mut sweeps = Vec::new();
        for contender in ALL {
            let mut points = Vec::new();
            for &u in &SWEEP {
                let mut point = SweepPoint {
                    utilization: u,
                    pod_seconds: 0.0,
                    violation_secs: 0.0,
                    reversals: 0,
                };
                for (i, &(jw, _, jc, ju)) in jobs.iter().enumerate() {
                    if jw != w || jc != contender || ju != u {
                        continue;
                    }
                    let o = outcomes[i]
                        .as_ref()
                        .ok_or_else(|| BenchError::Worker(format!("no result for job {i}")))?;
                    point.pod_seconds += o.pod_seconds;
                    point.violation_secs += o.slo_violation_secs as f64;
                    point.reversals += o.direction_reversals;
                }
                points.push(point);
            }
            sweeps.push((contender, points));
        }
        results.push(WorkloadResult {
            workload: workload.clone(),
            defaults,
            sweeps,
        });
    }
    Ok(results)
}

/// Every contender at the defaults on each seed of a workload, added up
/// per contender; the first seed's series are kept for the plot.
fn seeded_defaults(
    workload: &Workload,
    world: &World,
    base: &Setup,
) -> Result<Vec<Run>, BenchError> {
    let mut total: Vec<Run> = Vec::new();
    for (k, arrivals) in workload.arrivals.iter().enumerate() {
        let points = (k == 0).then_some(PLOT_POINTS);
        let runs = compare(arrivals, world, base, &ALL, points, &|_| {})?;
        if total.is_empty() {
            total = runs;
            continue;
        }
        for (sum, run) in total.iter_mut().zip(runs) {
            sum.outcome = sum.outcome.combined(&run.outcome);
        }
    }
    let oracle = total
        .iter()
        .find(|r| r.outcome.name == "oracle")
        .map(|r| r.outcome.pod_seconds);
    for r in &mut total {
        r.outcome.cost_vs_oracle = oracle
            .filter(|&c| c > 0.0)
            .map(|c| r.outcome.pod_seconds / c);
    }
    Ok(total)
}

/// One row of the matched-cost table.
#[derive(Clone, Debug, PartialEq)]
pub struct MatchedRow {
    pub workload: String,
    pub peer: &'static str,
    pub peer_pod_seconds: f64,
    pub peer_violation_secs: f64,
    pub inflight_violation_secs: Matched,
}

impl MatchedRow {
    /// inflight's violations over the peer's, when defined.
    pub fn ratio(&self) -> Option<f64> {
        let v = match self.inflight_violation_secs {
            Matched::At(v) | Matched::AtMost(v) => v,
            Matched::OutOfRange => return None,
        };
        if self.peer_violation_secs > 0.0 {
            Some(v / self.peer_violation_secs)
        } else if v == 0.0 {
            Some(0.0)
        } else {
            None
        }
    }

    /// At most half the peer's violations (zero against zero counts).
    pub fn meets_goal(&self) -> bool {
        match self.inflight_violation_secs {
            Matched::At(v) | Matched::AtMost(v) => {
                v <= GOAL_MATCHED_RATIO * self.peer_violation_secs
            }
            Matched::OutOfRange => false,
        }
    }
}

/// The matched-cost rows of one workload.
pub fn matched_rows(result: &WorkloadResult) -> Vec<MatchedRow> {
    Contender::PEERS
        .iter()
        .filter_map(|&peer| {
            let o = result.default_outcome(peer.name())?;
            Some(result.matched(peer, o.pod_seconds, o.slo_violation_secs as f64))
        })
        .collect()
}

/// The matched-cost comparison at every setting of each peer's sweep, not
/// only at its defaults: per peer, one row per swept utilization (in
/// `SWEEP` order), the peer's pod-seconds and violations at that setting
/// beside inflight's interpolated at that cost.
pub fn matched_sweep_rows(result: &WorkloadResult) -> Vec<(&'static str, Vec<MatchedRow>)> {
    Contender::PEERS
        .iter()
        .map(|&peer| {
            let rows = result
                .sweep(peer)
                .iter()
                .map(|p| result.matched(peer, p.pod_seconds, p.violation_secs))
                .collect();
            (peer.name(), rows)
        })
        .collect()
}

fn yes_no(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// The Markdown report (no timings: the same seed gives the same file).
pub fn report(
    results: &[WorkloadResult],
    world: &World,
    base: &Setup,
    seed: u64,
    seeds: u64,
) -> String {
    [
        intro_section(world, base, seed, seeds),
        workloads_section(results, world),
        matched_section(results),
        goals_section(results),
        every_setting_section(results),
        each_workload_section(results),
    ]
    .concat()
}

/// The title, the service model and the defaults.
fn intro_section(world: &World, base: &Setup, seed: u64, seeds: u64) -> String {
    let mut md = String::new();
    md.push_str("# inflight benchmark\n\n");
    md.push_str(
        "Generated by `make bench` (`cargo run --release --example bench`); do not edit.\n\n",
    );
    md.push_str(&format!(
        "Service: {:.0} ms mean service time, {} requests per pod at once, a backlog of {} per ready pod, \
         client timeout {:.0} s; pods Ready {:.0} s after they are requested; Prometheus scrape every {:.0} s; \
         SLO {:.0} ms (a violation second has a request slower than that or a dropped one). \
         Poisson arrivals; each workload runs with seeds {seed} to {last_seed} and the counts, pod-seconds and reversals below are sums over those runs (p99: the worst run's). Every autoscaler starts from the same fleet, runs {} s of the workload's past unmeasured first (a synthetic profile before its start: noise keeps varying; a trace, which has no past, at its first minute's mean rate) and keeps at least {} pod.\n\n",
        world.service.service_time_secs * 1000.0,
        world.service.per_pod_limit,
        world.service.queue_limit(1),
        world.service.client_timeout_secs,
        world.startup_secs,
        world.scrape_interval_secs,
        world.slo_latency_secs * 1000.0,
        WARM_UP_SECS,
        world.min_replicas,
        last_seed = seed.wrapping_add(seeds.max(1) - 1),
    ));
    md.push_str(&format!(
        "Defaults: inflight's default policy (utilization {:.2}; it reads in-flight, queue depth and the \
         arrival rate, and knows the service time); HPA and KEDA with the same per-pod target \
         ({:.1} = limit x utilization); KPA at its own utilization {KPA_DEFAULT_UTILIZATION}. \
         Sweep of the utilization (inflight and each peer): {}.\n\n",
        base.policy.utilization,
        base.per_pod_target(),
        SWEEP.map(|u| format!("{u}")).join(", "),
    ));
    md
}

/// Each workload: what it is, how long, its peak.
fn workloads_section(results: &[WorkloadResult], world: &World) -> String {
    let mut md = String::new();
    md.push_str("## Workloads\n\n");
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            let a: &[f64] = r
                .workload
                .arrivals
                .first()
                .map_or(&[], |a| a.measured.as_slice());
            let peak = a.iter().fold(0.0_f64, |m, &x| m.max(world.demand_pods(x)));
            vec![
                r.workload.name.clone(),
                r.workload.description.clone(),
                a.len().to_string(),
                format!("{peak:.0}"),
            ]
        })
        .collect();
    md.push_str(&markdown_table(
        &["workload", "what", "seconds", "peak pods"],
        &rows,
    ));
    md
}

/// Each peer at its defaults against inflight at the same cost.
fn matched_section(results: &[WorkloadResult]) -> String {
    let mut md = String::new();
    md.push_str("\n## At matched cost\n\n");
    md.push_str(
        "Each peer at its defaults, beside inflight's SLO-violation seconds interpolated at the peer's \
         pod-seconds along inflight's utilization sweep (`<=`: the peer costs more than inflight's most \
         expensive setting, whose value is shown; `n/a`: the peer costs less than inflight's cheapest \
         setting). Goal: at most half the peer's.\n\n",
    );
    let mut rows = Vec::new();
    for r in results {
        for m in matched_rows(r) {
            let inflight = match m.inflight_violation_secs {
                Matched::At(v) => format!("{v:.0}"),
                Matched::AtMost(v) => format!("<= {v:.0}"),
                Matched::OutOfRange => "n/a".into(),
            };
            rows.push(vec![
                m.workload.clone(),
                m.peer.to_string(),
                format!("{:.0}", m.peer_pod_seconds),
                format!("{:.0}", m.peer_violation_secs),
                inflight,
                m.ratio().map_or_else(|| "-".into(), |x| format!("{x:.2}")),
                yes_no(m.meets_goal()).into(),
            ]);
        }
    }
    md.push_str(&markdown_table(
        &[
            "workload",
            "peer",
            "peer pod-s",
            "peer violation s",
            "inflight violation s",
            "ratio",
            "<= 0.5",
        ],
        &rows,
    ));
    md
}

/// The reversal, cost and matched-cost goals at the defaults.
fn goals_section(results: &[WorkloadResult]) -> String {
    let mut md = String::new();
    md.push_str("\n## Goals at the defaults\n\n");
    let mut rows = Vec::new();
    for r in results {
        let (Some(i), Some(h)) = (r.default_outcome("inflight"), r.default_outcome("hpa")) else {
            continue;
        };
        let cost = i.cost_vs_oracle.unwrap_or(f64::NAN);
        let reversals_ok = (i.direction_reversals as f64)
            < GOAL_REVERSAL_RATIO * h.direction_reversals as f64
            || i.direction_reversals == 0;
        rows.push(vec![
            r.workload.name.clone(),
            i.direction_reversals.to_string(),
            h.direction_reversals.to_string(),
            yes_no(reversals_ok).into(),
            format!("{cost:.2}"),
            yes_no(cost <= GOAL_COST_VS_ORACLE).into(),
            yes_no(matched_rows(r).iter().all(MatchedRow::meets_goal)).into(),
        ]);
    }
    md.push_str(&markdown_table(
        &[
            "workload",
            "inflight reversals",
            "hpa reversals",
            "< half",
            "inflight pod-s / oracle",
            "<= 1.3",
            "matched cost, every peer",
        ],
        &rows,
    ));
    md
}

/// The matched-cost comparison at every setting of each peer's sweep.
fn every_setting_section(results: &[WorkloadResult]) -> String {
    let mut md = String::new();
    md.push_str("\n## Every setting of each peer, at matched cost\n\n");
    md.push_str(
        "The matched-cost comparison above, at each utilization of the peer's sweep rather than at its \
         defaults only (HPA and KEDA: a per-pod target of limit x utilization; the KPA: its target \
         utilization): inflight's SLO-violation seconds interpolated at the peer's pod-seconds, over the \
         peer's. `n/a`: the peer costs less than inflight's cheapest setting; `0 = 0`: neither has any; `-`: \
         inflight has violations where the peer has none. The last column counts the settings where \
         inflight has at most half the peer's (none against none included), of those with a comparable \
         cost.\n\n",
    );
    let mut rows = Vec::new();
    for r in results {
        for (peer, points) in matched_sweep_rows(r) {
            let mut row = vec![r.workload.name.clone(), peer.to_string()];
            let mut met = 0;
            let mut compared = 0;
            for m in &points {
                if m.inflight_violation_secs == Matched::OutOfRange {
                    row.push("n/a".into());
                    continue;
                }
                compared += 1;
                met += usize::from(m.meets_goal());
                let both_zero =
                    m.peer_violation_secs == 0.0 && m.inflight_violation_secs == Matched::At(0.0);
                row.push(if both_zero {
                    "0 = 0".into()
                } else {
                    m.ratio().map_or_else(|| "-".into(), |x| format!("{x:.2}"))
                });
            }
            row.push(format!("{met} of {compared}"));
            rows.push(row);
        }
    }
    let mut headers = vec!["workload".to_string(), "peer".to_string()];
    headers.extend(SWEEP.iter().map(|u| format!("{u}")));
    headers.push("<= 0.5".into());
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    md.push_str(&markdown_table(&headers, &rows));
    md
}

/// Each workload's outcomes at the defaults, its plot and its sweep.
fn each_workload_section(results: &[WorkloadResult]) -> String {
    let mut md = String::new();
    md.push_str("\n## Each workload at the defaults\n");
    for r in results {
        md.push_str(&format!(
            "\n### {}\n\n{}\n\n![{}]({}.svg)\n\n",
            r.workload.name, r.workload.description, r.workload.name, r.workload.name
        ));
        let outcomes: Vec<Outcome> = r.defaults.iter().map(|d| d.outcome.clone()).collect();
        md.push_str(&outcome_table(&outcomes));
        md.push_str("\nUtilization sweep (pod-seconds / SLO-violation seconds / reversals):\n\n");
        let mut headers = vec!["utilization".to_string()];
        headers.extend(ALL.iter().map(|c| c.name().to_string()));
        let rows: Vec<Vec<String>> = SWEEP
            .iter()
            .enumerate()
            .map(|(k, u)| {
                let mut row = vec![format!("{u}")];
                for c in ALL {
                    row.push(r.sweep(c).get(k).map_or_else(
                        || "-".into(),
                        |p| {
                            format!(
                                "{:.0} / {:.0} / {}",
                                p.pod_seconds, p.violation_secs, p.reversals
                            )
                        },
                    ));
                }
                row
            })
            .collect();
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        md.push_str(&markdown_table(&headers, &rows));
    }
    md
}

/// Runs the benchmark and writes `results.md` and one SVG per workload
/// into `args.out`. Returns the timing lines (for the caller to show).
pub fn run_bench(args: &BenchArgs) -> Result<Vec<String>, BenchError> {
    let world = World::default();
    let started = Instant::now();
    let workloads = workloads(args, &world)?;
    let loaded = started.elapsed().as_secs_f64();
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let base = Setup::defaults(&world);
    let results = measure(&workloads, &world, &base, threads)?;
    let measured = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out).map_err(io_error(&args.out))?;
    for r in &results {
        let panels = panels(&r.defaults);
        let path = args.out.join(format!("{}.svg", r.workload.name));
        write_svg(
            &path,
            &format!("{}: {}", r.workload.name, r.workload.description),
            &panels,
        )?;
    }
    let results_path = args.out.join("results.md");
    std::fs::write(
        &results_path,
        report(&results, &world, &base, args.seed, args.seeds),
    )
    .map_err(io_error(&results_path))?;
    let total = started.elapsed().as_secs_f64();
    let simulated: usize = workloads
        .iter()
        .flat_map(|w| w.arrivals.iter().map(|a| a.measured.len()))
        .sum();
    let seeds = workloads.first().map_or(0, |w| w.arrivals.len());
    let runs = workloads.len() * seeds * (ALL.len() * SWEEP.len() + ALL.len() + 1);
    let timings = vec![
        format!(
            "workloads: {} x {seeds} seeds = {simulated} simulated seconds per setting",
            workloads.len()
        ),
        format!("runs: {runs} on {threads} threads"),
        format!("loading traces and drawing arrivals: {loaded:.1} s"),
        format!("simulating: {:.1} s", measured - loaded),
        format!("total with plots and report: {total:.1} s"),
    ];
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(cost: f64, violations: f64) -> SweepPoint {
        SweepPoint {
            utilization: 0.0,
            pod_seconds: cost,
            violation_secs: violations,
            reversals: 0,
        }
    }

    #[test]
    fn interpolates_violations_at_a_cost() {
        let sweep = [point(300.0, 10.0), point(100.0, 50.0), point(200.0, 20.0)];
        assert_eq!(violations_at_cost(&sweep, 150.0), Matched::At(35.0));
        assert_eq!(violations_at_cost(&sweep, 200.0), Matched::At(20.0));
        assert_eq!(violations_at_cost(&sweep, 250.0), Matched::At(15.0));
        assert_eq!(violations_at_cost(&sweep, 400.0), Matched::AtMost(10.0));
        assert_eq!(violations_at_cost(&sweep, 50.0), Matched::OutOfRange);
    }

    #[test]
    fn goal_is_half_the_peer() {
        let row = |inflight: Matched, peer: f64| MatchedRow {
            workload: "w".into(),
            peer: "hpa",
            peer_pod_seconds: 1.0,
            peer_violation_secs: peer,
            inflight_violation_secs: inflight,
        };
        assert!(row(Matched::At(5.0), 10.0).meets_goal());
        assert!(!row(Matched::At(6.0), 10.0).meets_goal());
        assert!(row(Matched::AtMost(0.0), 0.0).meets_goal());
        assert!(!row(Matched::OutOfRange, 10.0).meets_goal());
        assert_eq!(row(Matched::At(5.0), 10.0).ratio(), Some(0.5));
    }

    #[test]
    fn synthetic_profiles_go_up_and_down() {
        let p = synthetic_profiles();
        let rate = |name: &str, t: f64| p.iter().find(|x| x.0 == name).unwrap().2.rate_at(t);
        assert_eq!(rate("step", 1199.0), 1000.0);
        assert_eq!(rate("step", 1200.0), 5000.0);
        assert_eq!(rate("step", 2400.0), 1000.0);
        assert_eq!(rate("ramp", 1500.0), 4250.0);
        assert_eq!(rate("ramp", 2700.0), 8000.0);
        assert_eq!(rate("ramp", 3900.0), 4250.0);
        assert_eq!(rate("ramp", 5000.0), 500.0);
        assert_eq!(rate("spike", 1800.0), 9000.0);
        assert_eq!(rate("spike", 1920.0), 1500.0);
    }

    #[test]
    fn traces_are_scaled_to_the_peak() {
        let world = World::default();
        // Peak 50 req/s -> 100 pods x 100 req/s / 50 = 200.
        assert_eq!(trace_scale(&[(0.0, 10.0), (60.0, 50.0)], &world), 200.0);
    }

    #[test]
    fn the_benchmark_is_deterministic_and_complete() {
        let dir = std::env::temp_dir().join(format!("inflight-bench-test-{}", std::process::id()));
        let traces = dir.join("traces");
        std::fs::create_dir_all(&traces).unwrap();
        let csv: String = std::iter::once("t_seconds,requests_per_second".to_string())
            .chain((0..20).map(|i| format!("{},{}", i * 60, if i % 5 == 0 { 40 } else { 10 })))
            .collect::<Vec<_>>()
            .join("\n");
        std::fs::write(traces.join("tiny.csv"), csv).unwrap();
        let args = |out: &str| BenchArgs {
            traces: traces.clone(),
            out: dir.join(out),
            seed: 3,
            seeds: 2,
            threads: Some(2),
            limit_secs: Some(900),
        };
        run_bench(&args("a")).unwrap();
        run_bench(&args("b")).unwrap();
        let a = std::fs::read_to_string(dir.join("a/results.md")).unwrap();
        let b = std::fs::read_to_string(dir.join("b/results.md")).unwrap();
        assert_eq!(a, b, "same seed, same numbers");
        for name in ["tiny", "step", "ramp", "spike", "noise"] {
            assert!(
                dir.join("a").join(format!("{name}.svg")).exists(),
                "{name}.svg"
            );
            assert!(a.contains(&format!("### {name}")), "{name} section");
        }
        // 5 workloads x 3 peers in the matched-cost table.
        let matched = a
            .split("## At matched cost")
            .nth(1)
            .unwrap()
            .split("## Goals")
            .next()
            .unwrap();
        assert_eq!(
            matched
                .lines()
                .filter(|l| l.starts_with("| tiny")
                    || l.starts_with("| step")
                    || l.starts_with("| ramp")
                    || l.starts_with("| spike")
                    || l.starts_with("| noise"))
                .count(),
            15
        );
        // The same 15 at every setting of the peer: a cell per swept setting
        // and a count.
        let every = a
            .split("## Every setting of each peer")
            .nth(1)
            .unwrap()
            .split("## Each workload")
            .next()
            .unwrap();
        let rows: Vec<&str> = every
            .lines()
            .filter(|l| {
                ["| tiny", "| step", "| ramp", "| spike", "| noise"]
                    .iter()
                    .any(|w| l.starts_with(w))
            })
            .collect();
        assert_eq!(rows.len(), 15);
        for row in rows {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            // Leading and trailing empties, workload, peer, the settings, count.
            assert_eq!(cells.len(), 2 + 2 + SWEEP.len() + 1, "{row}");
            let count: Vec<usize> = cells[cells.len() - 2]
                .split(" of ")
                .map(|n| n.parse().unwrap())
                .collect();
            assert!(count.len() == 2 && count[0] <= count[1], "{row}");
            assert!(count[1] <= SWEEP.len(), "{row}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn every_setting_of_a_peer_is_matched_on_cost() {
        let inflight = vec![point(100.0, 40.0), point(200.0, 10.0)];
        let hpa = vec![point(50.0, 90.0), point(150.0, 60.0), point(300.0, 4.0)];
        let result = WorkloadResult {
            workload: Workload {
                name: "w".into(),
                description: String::new(),
                arrivals: Vec::new(),
            },
            defaults: Vec::new(),
            sweeps: vec![(Contender::Inflight, inflight), (Contender::Hpa, hpa)],
        };
        let rows = matched_sweep_rows(&result);
        let (peer, hpa) = &rows[0];
        assert_eq!(*peer, "hpa");
        // 50 pod-s: cheaper than inflight's cheapest; 150: inflight has 25
        // there against 60 (met); 300: at most 10 against 4 (not met).
        let got: Vec<(Matched, bool)> = hpa
            .iter()
            .map(|m| (m.inflight_violation_secs, m.meets_goal()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Matched::OutOfRange, false),
                (Matched::At(25.0), true),
                (Matched::AtMost(10.0), false),
            ]
        );
        // A peer without a sweep has no rows.
        assert!(rows[1].1.is_empty());
    }
}
