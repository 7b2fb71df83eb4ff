//! `inflight run`: set up telemetry and clients, then run the controllers
//! while this replica leads; stop on SIGTERM/SIGINT, releasing the Lease.
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config};
use tokio::sync::watch;
use tracing::{debug, error, info, warn};

use super::args::{LogFormat, RunArgs};
use super::context::{Scope, Shared};
use super::error::{Error, SourceError};
use super::leader::{LeaderError, Leadership, LeaseConfig, LeaseElection};
use super::mapper::{GuardedPolicy, policies_targeting, target_key_of};
use super::reconcile::{error_policy, reconcile};
use super::source::{DefaultSource, Sources};
use crate::actuate::FIELD_MANAGER;
use crate::actuate::scale::Scaler;
use crate::telemetry::{self, HttpState, Metrics, Readiness, TelemetryError};

/// Why `inflight run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    #[error("cannot read the kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot configure the Kubernetes client: {0}")]
    ClientConfig(String),
    #[error("cannot create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Leader(#[from] LeaderError),
}

/// Run the operator until SIGTERM or SIGINT.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    telemetry::init_tracing(args.log_format == LogFormat::Json, &args.log_level)?;
    crate::tls::install_crypto_provider();
    let identity = args.identity();
    info!(version = env!("CARGO_PKG_VERSION"), %identity, "starting inflight");

    let client = kube_client(&args).await?;
    let metrics = Metrics::new();
    let readiness = Readiness::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let signals = tokio::spawn(wait_for_signal(stop_tx.clone()));

    let http_state = HttpState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
    };
    let http = tokio::spawn(telemetry::serve(
        args.metrics_addr,
        http_state,
        stopped(stop_rx.clone()),
    ));

    let default_source = DefaultSource {
        address: args.prometheus_url.clone(),
        auth_secret: args
            .prometheus_auth_secret
            .as_ref()
            .map(|s| (s.namespace.clone(), s.name.clone())),
        ca_pem: args
            .prometheus_ca_file
            .as_deref()
            .map(DefaultSource::read_ca_file)
            .transpose()?,
    };
    if default_source.address.is_none() {
        warn!(
            "no --prometheus-url: only policies naming spec.metrics.prometheus.address can be evaluated"
        );
    }
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: Some(identity.clone()),
        },
    );
    let shared = Arc::new(Shared::new(
        client.clone(),
        Scaler::new(client.clone()),
        recorder,
        Sources::new(client.clone(), default_source),
        metrics.clone(),
        args.sync_period,
        args.query_timeout,
    ));

    let mut leadership = if args.leader_election {
        let lease = LeaseConfig {
            name: args.lease_name.clone(),
            namespace: args.lease_namespace.clone(),
            identity,
            duration: args.lease_duration,
        };
        info!(lease = %format!("{}/{}", lease.namespace, lease.name), "leader election on");
        Leadership::Lease(LeaseElection::start(client.clone(), &lease).await?)
    } else {
        info!("leader election off: acting as the only replica");
        Leadership::Always
    };
    readiness.set_ready(true);

    let result = lead_while_elected(&mut leadership, &shared, &args.namespaces, &stop_rx).await;
    metrics.set_leader(false);
    readiness.set_ready(false);
    if let Err(e) = leadership.release().await {
        warn!(error = %e, "could not release the Lease; a standby takes over when it expires");
    }
    let _ = stop_tx.send(true);
    match http.await {
        Ok(Err(e)) => error!(error = %e, "the metrics server failed"),
        Err(e) => error!(error = %e, "the metrics server task failed"),
        Ok(Ok(())) => {}
    }
    signals.abort();
    info!("stopped");
    result
}

/// Run the controllers each time this replica gains leadership, stop them
/// at once when it loses it, and return on shutdown.
async fn lead_while_elected(
    leadership: &mut Leadership,
    shared: &Arc<Shared>,
    namespaces: &[String],
    stop: &watch::Receiver<bool>,
) -> Result<(), RunError> {
    loop {
        tokio::select! {
            () = stopped(stop.clone()) => return Ok(()),
            acquired = leadership.acquired() => acquired?,
        }
        info!("leading: starting the controllers");
        shared.metrics.set_leader(true);
        // The previous leader may have scaled since this replica last
        // looked: start from Prometheus history and the status.
        shared.forget_all();
        tokio::select! {
            () = run_controllers(shared.clone(), namespaces, stop.clone()) => {
                info!("controllers stopped");
                return Ok(());
            }
            lost = leadership.lost() => {
                shared.metrics.set_leader(false);
                match lost {
                    Ok(()) => warn!("lost leadership: stopped acting"),
                    Err(e) => {
                        error!(error = %e, "leader election stopped: stopped acting");
                        return Err(e.into());
                    }
                }
            }
        }
    }
}

/// One controller per watched namespace (or one for all), run together.
async fn run_controllers(shared: Arc<Shared>, namespaces: &[String], stop: watch::Receiver<bool>) {
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().cloned().map(Some).collect()
    };
    let runs = scopes
        .into_iter()
        .map(|namespace| run_scope(shared.clone(), namespace, stop.clone()));
    futures::future::join_all(runs).await;
}

fn api_in<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// The Controller over the policies of one scope, re-triggered by changes
/// to Deployments and StatefulSets they target, with an HPA cache for
/// conflict detection.
async fn run_scope(shared: Arc<Shared>, namespace: Option<String>, stop: watch::Receiver<bool>) {
    let client = shared.client.clone();
    let ns = namespace.as_deref();
    let scope_name = ns.unwrap_or("all namespaces").to_string();

    let (hpas, hpa_writer) = reflector::store::<HorizontalPodAutoscaler>();
    let hpa_cache = reflector::reflector(
        hpa_writer,
        watcher(
            api_in::<HorizontalPodAutoscaler>(&client, ns),
            watcher::Config::default(),
        )
        .default_backoff(),
    )
    .for_each(|event| async move {
        if let Err(e) = event {
            warn!(error = %e, "watching HorizontalPodAutoscalers");
        }
    });

    let controller = Controller::new(
        api_in::<GuardedPolicy>(&client, ns),
        watcher::Config::default().any_semantic(),
    )
    .with_config(controller::Config::default().concurrency(CONCURRENT_RECONCILES));
    let policies = controller.store();
    let for_deployments = policies.clone();
    let for_statefulsets = policies.clone();
    let controller = controller
        .watches(
            api_in::<Deployment>(&client, ns),
            watcher::Config::default().any_semantic(),
            move |d: Deployment| -> Vec<ObjectRef<GuardedPolicy>> {
                let state = for_deployments.state();
                policies_targeting(state.iter().map(AsRef::as_ref), &target_key_of(&d))
            },
        )
        .watches(
            api_in::<StatefulSet>(&client, ns),
            watcher::Config::default().any_semantic(),
            move |s: StatefulSet| -> Vec<ObjectRef<GuardedPolicy>> {
                let state = for_statefulsets.state();
                policies_targeting(state.iter().map(AsRef::as_ref), &target_key_of(&s))
            },
        )
        .graceful_shutdown_on(stopped(stop));

    let scope = Arc::new(Scope {
        shared: shared.clone(),
        policies,
        hpas,
    });
    info!(scope = %scope_name, "watching ConcurrencyPolicies");
    let forget = shared.clone();
    let run = controller
        .run(reconcile, error_policy, scope)
        .for_each(move |result| {
            log_result(&forget, result);
            futures::future::ready(())
        });
    tokio::select! {
        () = run => {}
        () = hpa_cache => warn!(scope = %scope_name, "the HPA watch ended"),
    }
}

/// At most this many policies reconcile at once; each holds a few HTTP
/// requests in flight, so this bounds the load on the API server and
/// Prometheus.
const CONCURRENT_RECONCILES: u16 = 16;

type RunResult = Result<
    (ObjectRef<GuardedPolicy>, controller::Action),
    controller::Error<Error, watcher::Error>,
>;

fn log_result(shared: &Shared, result: RunResult) {
    match result {
        Ok((object, action)) => debug!(policy = %object, ?action, "reconciled"),
        Err(controller::Error::ObjectNotFound(object)) => {
            // A requeue for a deleted policy: forget its engine and metrics.
            let namespace = object.namespace.clone().unwrap_or_default();
            debug!(policy = %object, "policy deleted; forgetting it");
            shared.forget(&namespace, &object.name);
        }
        Err(controller::Error::ReconcilerFailed(error, object)) => {
            // Already logged with its backoff by error_policy.
            debug!(policy = %object, %error, "reconcile failed");
        }
        Err(e) => warn!(error = %e, "controller error"),
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
fn stopped(mut stop: watch::Receiver<bool>) -> impl Future<Output = ()> + Send + Sync + 'static {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = stop.wait_for(|s| *s).await;
        let _ = tx.send(());
    });
    async move {
        let _ = rx.await;
    }
}

async fn wait_for_signal(stop: watch::Sender<bool>) {
    match shutdown_signal().await {
        Ok(name) => {
            info!(signal = name, "shutting down");
            let _ = stop.send(true);
        }
        Err(e) => {
            // Keep running: a signal then kills the process outright, and a
            // standby takes over once the Lease expires.
            error!(error = %e, "cannot listen for SIGTERM/SIGINT; graceful shutdown is off");
        }
    }
}

#[cfg(unix)]
async fn shutdown_signal() -> Result<&'static str, std::io::Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => Ok("SIGTERM"),
        _ = int.recv() => Ok("SIGINT"),
    }
}

#[cfg(not(unix))]
async fn shutdown_signal() -> Result<&'static str, std::io::Error> {
    tokio::signal::ctrl_c().await.map(|()| "interrupt")
}

async fn kube_client(args: &RunArgs) -> Result<Client, RunError> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| RunError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                })?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::ClientConfig(e.to_string()))?
        }
        None => Config::infer()
            .await
            .map_err(|e| RunError::ClientConfig(e.to_string()))?,
    };
    Client::try_from(config).map_err(RunError::Client)
}
