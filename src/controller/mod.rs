//! `inflight run`: the kube-runtime Controller over ConcurrencyPolicy.
//!
//! Reconcile is a pipeline of small steps: load target -> validate ->
//! observe (Prometheus) -> decide (the pure engine) -> act (/scale) ->
//! report (status, events). The pieces that hold no I/O live in their own
//! modules and are unit-tested there.
pub mod args;
pub mod conditions;
pub mod conflict;
pub mod context;
pub mod error;
pub mod events;
pub mod leader;
pub mod leadtime;
pub mod limits;
pub mod mapper;
mod observe;
pub mod reconcile;
pub mod renewal;
mod report;
mod run;
pub mod source;
pub mod status;
pub mod warmup;

pub use args::RunArgs;
pub use run::{RunError, run};
