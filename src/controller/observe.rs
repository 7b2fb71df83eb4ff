//! Steps 3 and 4 of a tick: make sure the policy has a (warm) engine, and
//! read its metrics from Prometheus into an observation.
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::context::{PolicyState, Scope};
use super::warmup::{self, Queries};
use crate::actuate::scale::TargetState;
use crate::api::v1alpha1::{ConcurrencyPolicy, ConcurrencyPolicySpec, MetricQuery};
use crate::metrics::{self, MetricsError, PromClient, TemplateVars};
use crate::scaling::{Config, Engine, Observation, ReadError, Reading};

/// A range query over an hour of history may take longer than a tick's
/// instant query; it runs once per policy per start.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(30);

/// Create the engine on first sight (warming it from Prometheus and
/// restoring the last scale from status), or give it the new config.
#[allow(clippy::too_many_arguments)]
pub(super) async fn ensure_engine(
    state: &mut PolicyState,
    policy: &ConcurrencyPolicy,
    config: &Config,
    prometheus: Option<&PromClient>,
    vars: &TemplateVars,
    target: &TargetState,
    sync: Duration,
    now: f64,
) {
    if let Some(engine) = state.engine.as_mut() {
        if engine.config() != config {
            debug!("the spec or the learned lead time changed; updating the engine's rules");
            engine.set_config(config.clone());
        }
        return;
    }
    let mut engine = Engine::new(config.clone());
    match prometheus {
        Some(client) => match warm_up(client, &mut engine, policy, vars, target, sync, now).await {
            Ok(points) => info!(points, "engine warmed up from Prometheus history"),
            Err(e) => warn!(error = %e, "cannot warm the engine up from Prometheus; starting cold"),
        },
        None => warn!("no Prometheus to warm the engine up from; starting cold"),
    }
    if let Some((at, direction)) = state.last_scale {
        engine.restore_last_scale(at, direction);
    }
    state.engine = Some(engine);
}

/// Feed the engine the metrics' history over its longest window; returns the
/// number of points fed.
async fn warm_up(
    client: &PromClient,
    engine: &mut Engine,
    policy: &ConcurrencyPolicy,
    vars: &TemplateVars,
    target: &TargetState,
    sync: Duration,
    now: f64,
) -> Result<usize, MetricsError> {
    let metrics = &policy.spec.metrics;
    let queries = Queries {
        in_flight: metrics::render(&metrics.in_flight.query, vars)?,
        queue_depth: metrics
            .queue_depth
            .as_ref()
            .map(|q| metrics::render(&q.query, vars))
            .transpose()?,
        arrival_rate: metrics
            .arrival_rate
            .as_ref()
            .map(|q| metrics::render(&q.query, vars))
            .transpose()?,
    };
    let history = warmup::fetch_history(
        client,
        &queries,
        engine.config(),
        now,
        sync.as_secs_f64(),
        WARM_UP_TIMEOUT.max(sync),
        target.spec_replicas,
        target.ready_replicas,
    )
    .await?;
    engine.warm_up(&history);
    Ok(history.len())
}

/// Read the policy's metrics. Returns the observation for the engine and,
/// when a read failed, why (for the condition and the event).
pub(super) async fn observe(
    scope: &Scope,
    prometheus: Result<&PromClient, &String>,
    spec: &ConcurrencyPolicySpec,
    vars: &TemplateVars,
    target: &TargetState,
) -> (Observation, Option<String>) {
    let metrics = &spec.metrics;
    let (in_flight, queue_depth, arrival_rate) = match prometheus {
        Ok(client) => {
            let empty_is_zero = metrics.empty_is_zero;
            futures::join!(
                timed_read(scope, client, &metrics.in_flight.query, vars, empty_is_zero),
                optional_read(
                    scope,
                    client,
                    metrics.queue_depth.as_ref(),
                    vars,
                    empty_is_zero
                ),
                optional_read(
                    scope,
                    client,
                    metrics.arrival_rate.as_ref(),
                    vars,
                    empty_is_zero
                ),
            )
        }
        Err(message) => {
            let failed = || Err(ReadError::Failed(message.clone()));
            (
                failed(),
                metrics.queue_depth.as_ref().map(|_| failed()),
                metrics.arrival_rate.as_ref().map(|_| failed()),
            )
        }
    };
    let error = read_failure("inFlight", &in_flight)
        .or_else(|| {
            queue_depth
                .as_ref()
                .and_then(|q| read_failure("queueDepth", q))
        })
        .or_else(|| {
            arrival_rate
                .as_ref()
                .and_then(|a| read_failure("arrivalRate", a))
        });
    let observation = Observation {
        in_flight,
        queue_depth,
        ready_replicas: target.ready_replicas,
        current_replicas: target.spec_replicas,
        arrival_rate,
    };
    (observation, error)
}

async fn timed_read(
    scope: &Scope,
    client: &PromClient,
    template: &str,
    vars: &TemplateVars,
    empty_is_zero: bool,
) -> Reading {
    let started = Instant::now();
    let result = metrics::read(
        client,
        template,
        vars,
        empty_is_zero,
        scope.shared.query_timeout,
    )
    .await;
    scope.shared.metrics.observe_query(
        started.elapsed().as_secs_f64(),
        result.as_ref().err().map(MetricsError::metric_label),
    );
    metrics::reading(result)
}

/// Reads an optional metric: `None` when the policy has no such query.
async fn optional_read(
    scope: &Scope,
    client: &PromClient,
    query: Option<&MetricQuery>,
    vars: &TemplateVars,
    empty_is_zero: bool,
) -> Option<Reading> {
    match query {
        Some(q) => Some(timed_read(scope, client, &q.query, vars, empty_is_zero).await),
        None => None,
    }
}

fn read_failure(metric: &str, reading: &Reading) -> Option<String> {
    match reading {
        Ok(_) => None,
        Err(ReadError::Missing) => Some(format!("{metric}: the query returned no series")),
        Err(ReadError::Failed(message)) => Some(format!("{metric}: {message}")),
    }
}
