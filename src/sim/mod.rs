//! The workload model shared by `loadsim` (e2e) and `inflight simulate`, and
//! the peer autoscaler models the benchmarks compare against.
pub mod profile;
pub mod service;
