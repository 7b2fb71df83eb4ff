//! The errors of the controller.
use crate::actuate::scale::ScaleError;
use crate::metrics::MetricsError;

/// Why a reconcile failed. Faults of the user (a spec the engine refuses, a
/// target that does not exist, a Prometheus source that cannot be built) are
/// reported as a condition and a Warning event and requeued slowly; the rest
/// are transient and retried with backoff by `error_policy`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or scaling the target failed.
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// The Prometheus source of the policy cannot be used.
    #[error("Prometheus source: {0}")]
    Source(#[from] SourceError),
    /// Writing the policy's status failed.
    #[error("writing the status of {policy}: {source}")]
    Status {
        policy: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    /// True when the user has to change something; false when a retry may
    /// succeed on its own.
    pub fn is_users_fault(&self) -> bool {
        match self {
            Error::Scale(e) => e.is_users_fault(),
            Error::Source(e) => e.is_users_fault(),
            Error::Status { .. } => false,
        }
    }

    /// A short, fixed label for the operator's metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Scale(ScaleError::Api { .. }) => "kube_api",
            Error::Scale(ScaleError::ConflictRetriesExhausted { .. }) => "scale_conflict",
            Error::Scale(_) => "target",
            Error::Source(_) => "prometheus_source",
            Error::Status { .. } => "status",
        }
    }

    /// The condition reason that names this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Scale(e) => e.reason(),
            Error::Source(e) => e.reason(),
            Error::Status { .. } => "StatusWriteFailed",
        }
    }
}

/// Why the Prometheus to query for a policy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Neither the policy nor the operator names a Prometheus.
    #[error(
        "no Prometheus address: set spec.metrics.prometheus.address or start the operator with --prometheus-url"
    )]
    NoAddress,
    /// A referenced Secret or ConfigMap does not exist.
    #[error("{kind} {namespace}/{name} not found")]
    NotFound {
        kind: &'static str,
        namespace: String,
        name: String,
    },
    /// A referenced Secret or ConfigMap lacks the keys we need.
    #[error("{kind} {namespace}/{name}: {problem}")]
    BadContent {
        kind: &'static str,
        namespace: String,
        name: String,
        problem: String,
    },
    /// The CA file given by --prometheus-ca-file cannot be read.
    #[error("cannot read the CA file {path}: {source}")]
    CaFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Reading a Secret or ConfigMap failed.
    #[error("reading {kind} {namespace}/{name}: {source}")]
    Api {
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    /// The client could not be built from the configuration.
    #[error(transparent)]
    Client(#[from] MetricsError),
}

impl SourceError {
    pub fn is_users_fault(&self) -> bool {
        match self {
            SourceError::NoAddress
            | SourceError::NotFound { .. }
            | SourceError::BadContent { .. }
            | SourceError::CaFile { .. } => true,
            SourceError::Api { .. } => false,
            SourceError::Client(e) => e.is_user_error(),
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            SourceError::NoAddress => "NoPrometheusAddress",
            SourceError::NotFound { .. } | SourceError::BadContent { .. } => {
                "PrometheusCredentials"
            }
            SourceError::CaFile { .. } => "PrometheusCA",
            SourceError::Api { .. } => "ApiError",
            SourceError::Client(_) => "PrometheusConfig",
        }
    }
}
