//! The `inflight` command: thin on purpose; the logic lives in the library.
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "inflight", version, about = "Concurrency-aware autoscaling for Kubernetes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the ConcurrencyPolicy CustomResourceDefinition as YAML.
    Crd,
    /// Print the version of this build.
    Version,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => print!("{}", inflight::api::crd_yaml()?),
        Command::Version => println!("inflight {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
