//! The decision engine. Pure: no I/O, no clock, no global state. Time is an
//! argument. The controller, the simulator and the benchmarks call this same
//! code.
//!
//! One tick ([`Engine::step`]): check the readings (missing, stale, NaN,
//! infinite or negative data hold the fleet) → demand (in-flight + queue
//! growth x service time, plus a separate backlog drain term, and a
//! saturation floor when every pod is full) → EWMA smoothing, Holt forecast
//! (both take a level shift at once) and the seasonal forecast, panic window
//! → recommendation (tolerance on the usage ratio) → stabilization windows
//! and the recurring floor → smallest scale-down, reverse cooldown, step
//! limits → min/max bounds.
pub mod adaptive;
mod demand;
mod engine;
mod floor;
mod limits;
mod panic;
mod plan;
mod seasonal;
mod smoothing;
mod types;
mod window;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use demand::ASSUMED_SERVICE_TIME_SECS;
pub use engine::{Engine, HYSTERESIS_MAX_FILL};
pub use floor::MAX_FLOOR_WINDOW_SECS;
pub use limits::CEIL_RELATIVE_EPSILON;
pub use panic::panic_exit_secs;
pub use plan::MIN_SCALE_DOWN_FRACTION;
pub use seasonal::{MAX_SEASON_SECS, MIN_SEASON_SECS};
pub use smoothing::{HOLT_LEVEL_HALF_LIFE_FRACTION, HOLT_MIN_SAMPLES, HOLT_TREND_HALF_LIFE_FACTOR};
pub use types::*;
