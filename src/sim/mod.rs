//! The workload model shared by `loadsim` (e2e) and `inflight simulate`, and
//! the peer autoscaler models the benchmarks compare against.
pub mod bench;
pub mod cli;
pub mod compare;
pub mod fleet;
pub mod inflight;
pub mod oracle;
pub mod peers;
pub mod plot;
pub mod profile;
pub mod report;
pub mod run;
pub mod service;
