//! The operator's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::{Metrics, TelemetryError};

/// The content type of the OpenMetrics text format.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the controller is ready (its caches have synced). Starts not
/// ready; cheap to clone, all clones share the flag.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// What the endpoints read.
#[derive(Clone)]
pub struct HttpState {
    pub metrics: Metrics,
    pub readiness: Readiness,
}

/// The routes, for embedding or testing: `GET /metrics` (OpenMetrics text),
/// `GET /healthz` (200 while the process serves), `GET /readyz` (200 once
/// ready, else 503).
pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds `addr` and serves [`router`] until `shutdown` completes.
pub async fn serve(
    addr: SocketAddr,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TelemetryError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Serve {
            addr: addr.to_string(),
            source,
        })?;
    serve_listener(listener, state, shutdown).await
}

/// Serves [`router`] on an already bound listener (e.g. port 0 in tests)
/// until `shutdown` completes; in-flight requests are finished first.
pub async fn serve_listener(
    listener: TcpListener,
    state: HttpState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), TelemetryError> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "an unknown address".to_string(), |a| a.to_string());
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| TelemetryError::Serve { addr, source })
}

async fn metrics(State(state): State<HttpState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot encode the operator's metrics");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot encode metrics\n").into_response()
        }
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<HttpState>) -> (StatusCode, &'static str) {
    if state.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: caches not synced yet\n",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn endpoints_answer_on_a_real_socket_and_shut_down() {
        let metrics = Metrics::new();
        let readiness = Readiness::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve_listener(
            listener,
            HttpState {
                metrics: metrics.clone(),
                readiness: readiness.clone(),
            },
            async {
                let _ = stopped.await;
            },
        ));
        crate::tls::install_crypto_provider();
        let http = reqwest::Client::new();
        let get = |path: &str| http.get(format!("{base}{path}")).send();

        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        assert_eq!(get("/readyz").await.unwrap().status(), 503);
        readiness.set_ready(true);
        assert_eq!(get("/readyz").await.unwrap().status(), 200);

        metrics.set_leader(true);
        let response = get("/metrics").await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[header::CONTENT_TYPE], OPENMETRICS);
        let body = response.text().await.unwrap();
        assert!(body.lines().any(|l| l == "inflight_leader 1"), "{body}");
        assert!(body.ends_with("# EOF\n"));
        assert_eq!(get("/nope").await.unwrap().status(), 404);

        stop.send(()).unwrap();
        let result = tokio::time::timeout(std::time::Duration::from_secs(10), server)
            .await
            .expect("the server stops after shutdown")
            .unwrap();
        assert!(result.is_ok(), "{result:?}");
        assert!(get("/healthz").await.is_err(), "nothing listens any more");
    }

    #[tokio::test]
    async fn a_busy_address_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let state = HttpState {
            metrics: Metrics::new(),
            readiness: Readiness::new(),
        };
        let err = serve(addr, state, std::future::pending())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TelemetryError::Serve { addr: a, .. } if *a == addr.to_string()),
            "{err}"
        );
    }
}
