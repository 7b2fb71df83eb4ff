//! From recommendation to action: zero and activation (the tolerance band
//! is applied to the usage ratio before, in the engine), the smallest
//! scale-down, reverse cooldown, step periods and step sizes, then the
//! min/max bounds, which win over everything else.
use super::limits::{bounds, clamp, down_limit, up_limit};
use super::types::{Config, Direction, Limit, Reason};
use std::cmp::Ordering;

/// A scale-down by less than this fraction of the fleet (or of the
/// tolerance, when that is smaller) is skipped, with the reason
/// `WithinTolerance`: from 34 pods up, a single pod. Each scale-down risks a
/// reversal when demand comes back, and one this small saves under 3% of
/// the fleet's cost until then. The stabilization windows make such steps
/// common: a fleet held at the highest peak of its window comes down a pod
/// at a time as old peaks leave it. A tuning choice made on `make bench`
/// (on its azure trace a single 61 -> 60 was followed by a scale-up).
pub const MIN_SCALE_DOWN_FRACTION: f64 = 0.03;

/// What the planner needs to know about one good tick.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PlanInput<'a> {
    pub config: &'a Config,
    pub now: f64,
    pub current: u32,
    /// Pods the demand asks for, before windows, steps and bounds (in panic:
    /// the larger of the panic and stable recommendations).
    pub recommended: u32,
    /// The current replicas moved as far as the stabilization windows and
    /// the recurring floor allow.
    pub stabilized: u32,
    /// The recurring floor is what held `stabilized` up (for the reason
    /// only).
    pub held_by_floor: bool,
    pub in_panic: bool,
    /// The stable recommendation is the current count because demand is
    /// within the tolerance band (for the reason only).
    pub within_tolerance: bool,
    /// This tick's total demand (for the activation threshold).
    pub demand: f64,
    pub last_scale: Option<(f64, Direction)>,
    pub last_up: Option<f64>,
    pub last_down: Option<f64>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Outcome {
    pub replicas: u32,
    pub reason: Reason,
    pub limited_by: Option<Limit>,
}

impl Outcome {
    pub(crate) fn hold(current: u32, reason: Reason) -> Outcome {
        Outcome {
            replicas: current,
            reason,
            limited_by: None,
        }
    }
}

/// The action for a good tick.
pub(crate) fn plan(input: &PlanInput) -> Outcome {
    let config = input.config;
    let current = input.current;
    if current == 0 && config.min_replicas == 0 && input.demand <= config.activation_threshold {
        return Outcome::hold(0, Reason::BelowActivation);
    }
    let target = target(input);
    if target == current {
        return Outcome::hold(current, steady_reason(input));
    }
    let direction = if target > current {
        Direction::Up
    } else {
        Direction::Down
    };
    if direction == Direction::Down && too_small_to_scale_down(config, current, target) {
        return Outcome::hold(current, Reason::WithinTolerance);
    }
    // A burst (panic) or waking from zero cannot wait for a cooldown.
    let urgent = direction == Direction::Up && (input.in_panic || current == 0);
    if !urgent && reverses_too_soon(input, direction) {
        return Outcome::hold(current, Reason::Cooldown);
    }
    if in_step_period(input, direction) {
        return Outcome::hold(current, Reason::RateLimited);
    }
    step(input, direction, target)
}

/// Where the windows (or panic, or activation) want the fleet.
fn target(input: &PlanInput) -> u32 {
    let b = bounds(input.config);
    let wanted = clamp(input.recommended, b);
    if input.in_panic {
        // Up on the short window at once, never down.
        input.current.max(wanted)
    } else if input.current == 0 {
        // Waking from zero skips the scale-up window: requests are waiting.
        wanted.max(1).min(b.1)
    } else {
        input.stabilized
    }
}

fn too_small_to_scale_down(config: &Config, current: u32, target: u32) -> bool {
    let fraction = MIN_SCALE_DOWN_FRACTION.min(config.tolerance);
    f64::from(current.saturating_sub(target)) < fraction * f64::from(current)
}

fn steady_reason(input: &PlanInput) -> Reason {
    if input.in_panic {
        Reason::Panic
    } else if input.within_tolerance {
        Reason::WithinTolerance
    } else if clamp(input.recommended, bounds(input.config)) == input.current {
        Reason::Steady
    } else if input.held_by_floor {
        Reason::RecurringFloor
    } else {
        Reason::Stabilizing
    }
}

fn reverses_too_soon(input: &PlanInput, direction: Direction) -> bool {
    input.last_scale.is_some_and(|(at, last)| {
        last != direction && input.now - at < input.config.reverse_cooldown_secs
    })
}

/// Step limits: one step per period, measured from the last scale in the
/// same direction.
fn in_step_period(input: &PlanInput, direction: Direction) -> bool {
    let (last, period) = match direction {
        Direction::Up => (input.last_up, input.config.scale_up.period_secs),
        Direction::Down => (input.last_down, input.config.scale_down.period_secs),
    };
    last.is_some_and(|at| input.now - at < period)
}

fn step(input: &PlanInput, direction: Direction, target: u32) -> Outcome {
    let config = input.config;
    let current = input.current;
    let (replicas, step_limited, reason) = match direction {
        Direction::Up => {
            let limit = up_limit(current, &config.scale_up);
            let reason = if input.in_panic {
                Reason::Panic
            } else {
                Reason::ScaleUp
            };
            (target.min(limit), target > limit, reason)
        }
        Direction::Down => {
            let limit = down_limit(current, &config.scale_down);
            (target.max(limit), target < limit, Reason::ScaleDown)
        }
    };
    let limited_by = if step_limited {
        Some(match direction {
            Direction::Up => Limit::ScaleUpStep,
            Direction::Down => Limit::ScaleDownStep,
        })
    } else {
        bound_limit(config, input.recommended, replicas)
    };
    Outcome {
        replicas,
        reason,
        limited_by,
    }
}

/// The bound that cut the recommendation, if the action landed on it.
fn bound_limit(config: &Config, recommended: u32, replicas: u32) -> Option<Limit> {
    let (min, max) = bounds(config);
    if recommended > max && replicas == max {
        Some(Limit::MaxReplicas)
    } else if recommended < min && replicas == min {
        Some(Limit::MinReplicas)
    } else {
        None
    }
}

/// The bounds win over every other rule, bad data and panic included: a
/// fleet outside `[min, max]` (the spec changed) is brought back at once.
pub(crate) fn enforce_bounds(config: &Config, current: u32, outcome: Outcome) -> Outcome {
    let replicas = clamp(outcome.replicas, bounds(config));
    if replicas == outcome.replicas {
        return outcome;
    }
    // A move the bounds only shortened keeps its reason (a fallback capped
    // by max is still a fallback); a move the bounds forced is a plain scale.
    let direction = replicas.cmp(&current);
    let reason = if direction == outcome.replicas.cmp(&current) || direction == Ordering::Equal {
        outcome.reason
    } else if direction == Ordering::Greater {
        Reason::ScaleUp
    } else {
        Reason::ScaleDown
    };
    let limited_by = Some(if replicas > outcome.replicas {
        Limit::MinReplicas
    } else {
        Limit::MaxReplicas
    });
    Outcome {
        replicas,
        reason,
        limited_by,
    }
}
