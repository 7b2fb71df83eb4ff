//! inflight: a Kubernetes operator for concurrency-aware autoscaling.
//!
//! See DESIGN.md for the map: `api` (the CRD), `scaling` (the pure decision
//! engine), `metrics` (Prometheus), `actuate` (/scale and limit sinks),
//! `controller` (the reconcile loop), `telemetry` (logs and /metrics), `sim`
//! (the fleet simulator and peer autoscaler models).
pub mod actuate;
pub mod api;
pub mod controller;
pub mod metrics;
pub mod scaling;
pub mod sim;
pub mod telemetry;
pub mod tls;
