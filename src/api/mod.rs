//! The ConcurrencyPolicy custom resource: its types (`v1alpha1`), the
//! generated CustomResourceDefinition, and the conversion of a spec into the
//! engine's configuration.
mod config;
mod duration;
pub mod v1alpha1;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use config::{DEFAULT_HORIZON_SECS, MAX_SINKS, SpecError, sink_pointer};
pub use duration::{DURATION_MAX_LENGTH, DURATION_PATTERN, HORIZON_PATTERN, parse_duration};

/// The ConcurrencyPolicy CustomResourceDefinition.
pub fn crd() -> CustomResourceDefinition {
    v1alpha1::ConcurrencyPolicy::crd()
}

/// The CRD as YAML, exactly what `crds/concurrencypolicy.yaml` holds
/// (`inflight crd` prints it).
pub fn crd_yaml() -> Result<String, serde_yaml::Error> {
    serde_yaml::to_string(&crd())
}
