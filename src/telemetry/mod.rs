//! Logs, the operator's own metrics, and its health endpoints.
//!
//! The binary calls [`init_tracing`] once, builds one [`Metrics`] and one
//! [`Readiness`], hands clones to the controller, and runs [`serve`] with
//! them. The controller records into [`Metrics`] and calls
//! [`Readiness::set_ready`] once its caches have synced.

mod http;
mod logging;
mod operator_metrics;

pub use http::{HttpState, Readiness, router, serve, serve_listener};
pub use logging::{build_filter, init_tracing};
pub use operator_metrics::{DecisionRecord, Metrics};

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter (flag or `RUST_LOG`) does not parse.
    #[error("invalid log filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    /// A global tracing subscriber was already installed.
    #[error("tracing is already initialised: {0}")]
    AlreadyInitialised(String),
    /// The HTTP server could not bind or failed while serving.
    #[error("the metrics/health server on {addr} failed: {source}")]
    Serve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}
