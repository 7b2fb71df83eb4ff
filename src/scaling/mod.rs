//! The decision engine. Pure: no I/O, no clock, no global state. Time is an
//! argument. The controller, the simulator and the benchmarks call this same
//! code.
mod types;

pub use types::*;
