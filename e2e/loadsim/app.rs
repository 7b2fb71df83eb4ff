//! The model loop and the HTTP server (metrics and control), independent of
//! where the ready replica count comes from.
use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use inflight::sim::profile::{Profile, arrivals, seeded_rng};
use inflight::sim::service::Service;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// The profile in force and when it started (its time origin).
#[derive(Debug)]
struct ActiveProfile {
    profile: Profile,
    since: Instant,
}

/// State shared by the model loop and the HTTP handlers.
#[derive(Debug)]
pub struct Shared {
    profile: Mutex<ActiveProfile>,
    pub metrics: Metrics,
}

impl Shared {
    pub fn new(profile: Profile, metrics: Metrics) -> Self {
        Self {
            profile: Mutex::new(ActiveProfile {
                profile,
                since: Instant::now(),
            }),
            metrics,
        }
    }

    fn active(&self) -> std::sync::MutexGuard<'_, ActiveProfile> {
        self.profile.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Replaces the profile; its time restarts at 0 now.
    pub fn set_profile(&self, profile: Profile) {
        *self.active() = ActiveProfile {
            profile,
            since: Instant::now(),
        };
    }

    pub fn profile(&self) -> Profile {
        self.active().profile.clone()
    }

    /// The profile's rate at the instant `at`.
    fn rate_at(&self, at: Instant) -> f64 {
        let active = self.active();
        let t = at.saturating_duration_since(active.since).as_secs_f64();
        active.profile.rate_at(t)
    }
}

/// Steps `service` every `tick` in real time: Poisson arrivals at the
/// profile's rate (seeded), the ready replicas from `ready`; runs until the
/// `ready` sender is dropped.
pub async fn run_model(
    shared: Arc<Shared>,
    mut service: Service,
    mut ready: watch::Receiver<u32>,
    tick: Duration,
    seed: u64,
) {
    let mut rng = seeded_rng(seed);
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut last = interval.tick().await;
    loop {
        tokio::select! {
            now = interval.tick() => {
                let dt = now.saturating_duration_since(last);
                let middle = last + dt / 2;
                last = now;
                let ready_pods = *ready.borrow_and_update();
                let rate = shared.rate_at(middle);
                let dt_secs = dt.as_secs_f64();
                let stats = service.step(arrivals(rate, dt_secs, &mut rng), ready_pods, dt_secs);
                shared.metrics.record(&stats, ready_pods, rate);
            }
            changed = ready.changed() => {
                if changed.is_err() {
                    tracing::info!("ready-replica source ended; model stops");
                    return;
                }
            }
        }
    }
}

/// The HTTP API: `/metrics`, `/healthz`, `GET`/`PUT /profile`.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/profile", get(get_profile).put(put_profile))
        .with_state(shared)
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match shared.metrics.encode() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "encoding metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn get_profile(State(shared): State<Arc<Shared>>) -> Response {
    match serde_json::to_string(&shared.profile()) {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json")], json).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}

async fn put_profile(State(shared): State<Arc<Shared>>, body: String) -> Response {
    match Profile::from_json(&body) {
        Ok(profile) => {
            tracing::info!(kind = profile.kind(), "profile replaced");
            shared.set_profile(profile);
            (StatusCode::OK, "profile replaced\n").into_response()
        }
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(shutdown)
        .await
}
