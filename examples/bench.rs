//! `make bench`: inflight against the HPA, KEDA and Knative's KPA on every
//! trace of `--traces` (default `../shared/traces`) and on synthetic
//! profiles; writes `bench/results.md` and one SVG per workload, and prints
//! wall-clock timings. See `inflight::sim::bench`.
use clap::Parser;
use inflight::sim::bench::{BenchArgs, run_bench};

fn main() -> anyhow::Result<()> {
    let args = BenchArgs::parse();
    for line in run_bench(&args)? {
        println!("{line}");
    }
    println!("wrote {}", args.out.join("results.md").display());
    Ok(())
}
