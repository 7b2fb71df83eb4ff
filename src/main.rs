//! The `inflight` command: thin on purpose; the logic lives in the library.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "inflight",
    version,
    about = "Concurrency-aware autoscaling for Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator: watch ConcurrencyPolicies and scale their targets.
    Run(inflight::controller::RunArgs),
    /// Print the ConcurrencyPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Print the version of this build.
    Version,
    /// Replay a request-rate trace against a simulated fleet, with inflight
    /// and models of the HPA, KEDA and Knative's KPA.
    Simulate(inflight::sim::cli::SimulateArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => {
            tokio::runtime::Runtime::new()?.block_on(inflight::controller::run(args))?
        }
        Command::Crd => print!("{}", inflight::api::crd_yaml()?),
        Command::Version => println!("inflight {}", env!("CARGO_PKG_VERSION")),
        Command::Simulate(args) => inflight::sim::cli::run(args)?,
    }
    Ok(())
}
