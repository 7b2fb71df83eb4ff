//! loadsim: a simulated HTTP workload for end-to-end tests of inflight.
//!
//! It runs the shared service model (`inflight::sim::service`) in real time,
//! with the ready replicas of a real Deployment (watched on the API server)
//! as its pods and a request-rate profile as its traffic, and exposes what a
//! real service would: in-flight requests, queue depth, throughput, drops
//! and latency on `/metrics`. The profile can be replaced at run time with
//! `PUT /profile`. See e2e/loadsim/README.md.
mod app;
mod metrics;
mod ready;

use anyhow::Context;
use clap::Parser;
use inflight::sim::profile::Profile;
use inflight::sim::service::{Knee, Service, ServiceConfig};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

#[derive(Parser, Debug)]
#[command(
    name = "loadsim",
    version,
    about = "A simulated HTTP workload whose pods are a Deployment's ready replicas"
)]
struct Args {
    /// Kubeconfig file; default: the usual inference (KUBECONFIG, ~/.kube/config, in-cluster).
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Namespace of the Deployment (also a label on every metric).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Name of the Deployment whose ready replicas serve the traffic (also a label).
    #[arg(long)]
    deployment: String,
    /// Address for /metrics and the control API; port 0 picks a free port.
    /// The bound address is printed on stdout as `listening on ADDR`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Initial request-rate profile, JSON, e.g. '{"kind":"constant","rps":50}'.
    #[arg(long, default_value = r#"{"kind":"constant","rps":0}"#)]
    profile: String,
    /// Mean service time of one request.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    service_time: Duration,
    /// Concurrent requests one ready pod serves.
    #[arg(long, default_value_t = 10)]
    per_pod_limit: u32,
    /// Waiting requests allowed per ready pod [default: 10 x per-pod-limit].
    #[arg(long)]
    queue_limit_per_pod: Option<u32>,
    /// Floor of the queue bound, even with 0 ready pods [default: one pod's backlog].
    #[arg(long)]
    queue_limit_min: Option<u32>,
    /// A waiting request gives up after this long.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    client_timeout: Duration,
    /// Per-pod concurrency past which the service time grows (off by default).
    #[arg(long)]
    knee_concurrency: Option<f64>,
    /// Relative growth of the service time per knee-width of concurrency past the knee.
    #[arg(long, default_value_t = 1.0, requires = "knee_concurrency")]
    knee_slope: f64,
    /// Seed of the Poisson arrivals.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Step of the model.
    #[arg(long, default_value = "100ms", value_parser = humantime::parse_duration)]
    tick: Duration,
    /// Use this many ready pods instead of watching the Deployment (no cluster needed).
    #[arg(long)]
    ready: Option<u32>,
}

impl Args {
    fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            service_time_secs: self.service_time.as_secs_f64(),
            per_pod_limit: self.per_pod_limit,
            queue_limit_per_pod: self.queue_limit_per_pod,
            queue_limit_min: self.queue_limit_min,
            client_timeout_secs: self.client_timeout.as_secs_f64(),
            knee: self.knee_concurrency.map(|concurrency| Knee {
                concurrency,
                slope: self.knee_slope,
            }),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    inflight::tls::install_crypto_provider();
    if args.tick.is_zero() {
        anyhow::bail!("--tick must be > 0");
    }
    let service = Service::new(args.service_config()).context("service model")?;
    let profile = Profile::from_json(&args.profile).context("--profile")?;

    let (ready_tx, ready_rx) = watch::channel(args.ready.unwrap_or(0));
    let watcher = match args.ready {
        Some(ready) => {
            tracing::info!(ready, "fixed ready replicas; not watching the cluster");
            None
        }
        None => {
            let client = kube_client(args.kubeconfig.as_deref()).await?;
            Some(tokio::spawn(ready::watch_deployment(
                client,
                args.namespace.clone(),
                args.deployment.clone(),
                ready_tx.clone(),
            )))
        }
    };

    let shared = Arc::new(app::Shared::new(
        profile,
        metrics::Metrics::new(&args.namespace, &args.deployment),
    ));
    let model = tokio::spawn(app::run_model(
        shared.clone(),
        service,
        ready_rx,
        args.tick,
        args.seed,
    ));

    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let address = listener.local_addr().context("bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {address}").context("stdout")?;
        stdout.flush().context("stdout")?;
    }
    tracing::info!(%address, namespace = %args.namespace, deployment = %args.deployment, "serving");
    let served = app::serve(listener, shared, shutdown).await;

    if let Some(watcher) = watcher {
        watcher.abort();
    }
    drop(ready_tx);
    model.abort();
    served.context("HTTP server")?;
    tracing::info!("stopped");
    Ok(())
}

async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<kube::Client> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("inferring kube config")?,
    };
    kube::Client::try_from(config).context("kube client")
}

/// Completes on SIGTERM or ctrl-c (SIGINT). The handlers are installed when
/// this is called, not when the future is first polled, so a signal sent
/// right after the address is printed is not missed.
#[cfg(unix)]
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{Signal, SignalKind, signal};
    let install = |kind: SignalKind, name: &'static str| match signal(kind) {
        Ok(signal) => Some(signal),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for {name}");
            None
        }
    };
    async fn received(signal: Option<Signal>) {
        match signal {
            Some(mut signal) => {
                signal.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    }
    let terminate = install(SignalKind::terminate(), "SIGTERM");
    let interrupt = install(SignalKind::interrupt(), "SIGINT");
    async move {
        tokio::select! {
            () = received(terminate) => tracing::info!("SIGTERM: shutting down"),
            () = received(interrupt) => tracing::info!("SIGINT: shutting down"),
        }
    }
}

/// Completes on ctrl-c.
#[cfg(not(unix))]
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
        tracing::info!("ctrl-c: shutting down");
    }
}
