//! The one error type of the metrics module.

use std::time::Duration;

use crate::scaling::ReadError;

/// Why a Prometheus read failed. `metric_label()` gives the `kind` label of
/// the operator's `inflight_prometheus_query_errors_total`.
///
/// The type is `Clone` (it holds messages, not sources) so that one failed
/// query can be reported to every policy that shares it.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum MetricsError {
    /// The Prometheus address, credentials or CA bundle cannot be used.
    #[error("invalid Prometheus configuration: {0}")]
    Config(String),
    /// The query template is malformed or a substituted name is unusable.
    #[error("invalid query template: {0}")]
    Template(String),
    /// Arguments of a range query that Prometheus would refuse.
    #[error("invalid query arguments: {0}")]
    InvalidArgument(String),
    /// No answer within the per-query timeout (or Prometheus' own timeout).
    #[error("the query timed out after {0:?}")]
    Timeout(Duration),
    /// Prometheus could not be reached (refused, DNS, TLS handshake, reset).
    #[error("cannot reach Prometheus: {0}")]
    Connect(String),
    /// Prometheus (or a proxy in front of it) answered with an HTTP error.
    #[error("Prometheus answered HTTP {status}: {message}")]
    Http { status: u16, message: String },
    /// Prometheus refused or failed to evaluate the query (bad PromQL, or a
    /// result type that is not an instant vector or scalar).
    #[error("Prometheus rejected the query: {0}")]
    Query(String),
    /// The query returned no series (and the policy does not say that empty
    /// means zero).
    #[error("the query returned no series")]
    Empty,
    /// The query returned more than one series.
    #[error(
        "the query returned {count} series; the query must return a single series; wrap it in sum(...)"
    )]
    MultipleSeries { count: usize },
    /// NaN, an infinity, or a negative number: never a demand.
    #[error(
        "the query returned an invalid value {value} at {timestamp}: not a finite, non-negative number"
    )]
    InvalidValue { value: f64, timestamp: f64 },
    /// The response was not a Prometheus API answer.
    #[error("cannot parse the response of Prometheus: {0}")]
    Parse(String),
}

impl MetricsError {
    /// A short, fixed label for the operator's metrics (bounded cardinality).
    pub fn metric_label(&self) -> &'static str {
        match self {
            MetricsError::Config(_) => "config",
            MetricsError::Template(_) => "template",
            MetricsError::InvalidArgument(_) => "invalid_argument",
            MetricsError::Timeout(_) => "timeout",
            MetricsError::Connect(_) => "connect",
            MetricsError::Http { .. } => "http",
            MetricsError::Query(_) => "query",
            MetricsError::Empty => "empty",
            MetricsError::MultipleSeries { .. } => "multiple_series",
            MetricsError::InvalidValue { .. } => "invalid_value",
            MetricsError::Parse(_) => "parse",
        }
    }

    /// Whether the policy's author must change something (a bad template, a
    /// query returning several series, ...) rather than wait for Prometheus
    /// to recover. Handy for choosing between a Warning event and a retry.
    pub fn is_user_error(&self) -> bool {
        matches!(
            self,
            MetricsError::Config(_)
                | MetricsError::Template(_)
                | MetricsError::Query(_)
                | MetricsError::MultipleSeries { .. }
        )
    }
}

/// `Empty` becomes `ReadError::Missing`; everything else `Failed(message)`.
impl From<MetricsError> for ReadError {
    fn from(error: MetricsError) -> Self {
        match error {
            MetricsError::Empty => ReadError::Missing,
            other => ReadError::Failed(other.to_string()),
        }
    }
}

/// Renders an error with its chain of sources, `outer: inner: innermost`,
/// because reqwest's top-level messages ("error sending request") hide the
/// useful part (connection refused, certificate unknown...).
pub(crate) fn with_sources(error: &(dyn std::error::Error + 'static)) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = inner.source();
    }
    message
}
