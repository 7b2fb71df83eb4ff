//! The seasonal forecast (`prediction.season`): demand that rose at this
//! time one season ago (a day, by default) is expected to rise again, and
//! the fleet is raised a horizon ahead of it, once that expectation has
//! proved right.
//!
//! Demand is kept as per-minute means over one season. At each tick the
//! forecast reads the minute one season before now and the minute one
//! season before now + the lead: when the later was at least
//! [`MIN_RISE`] times the earlier, demand is forecast at today's demand
//! times that ratio (at most [`MAX_RISE`]). Traffic that repeats daily (a
//! morning rise, a nightly batch) then finds its pods Ready when it comes,
//! where a forecast from the recent trend sees it only after it began.
//!
//! Every such rise is checked: it came true when, within two leads,
//! demand reached at least halfway from today's demand to the forecast.
//! The forecast is used only while at least [`MIN_HIT_RATE`] of the recent
//! ones came true (a decaying count, [`SCORE_DECAY`] per check, after
//! [`MIN_SCORED`] checks); rises are checked whether used or not, so a
//! pattern that returns is used again. Demand whose days differ (noise, or
//! bursts at other times each day) seldom repeats a rise, and is left to
//! the other forecasts.
//!
//! Pure: time is an argument. Memory: one entry per minute of the season.
use std::collections::VecDeque;

/// Demand is kept per bucket of this many seconds.
pub const BUCKET_SECS: f64 = 60.0;
/// A rise one season ago counts when the later minute's mean was at least
/// this multiple of the earlier's: smaller changes are within the
/// tolerance and the utilization's headroom, and minute means of one day
/// differ from the next by that much anyway.
pub const MIN_RISE: f64 = 1.2;
/// The forecast raises demand by at most this factor.
pub const MAX_RISE: f64 = 4.0;
/// The share of recent rises that must have come true.
pub const MIN_HIT_RATE: f64 = 0.6;
/// Checks (decayed) needed before the forecast is used.
pub const MIN_SCORED: f64 = 5.0;
/// Weight kept by past checks at each new one.
pub const SCORE_DECAY: f64 = 0.95;
/// The longest season: a week (10080 buckets).
pub const MAX_SEASON_SECS: f64 = 7.0 * 86_400.0;
/// The shortest season.
pub const MIN_SEASON_SECS: f64 = 3_600.0;

/// A rise forecast at one tick, checked once its time has passed.
#[derive(Clone, Copy, Debug)]
struct Pending {
    /// When it is checked.
    due: f64,
    /// Demand it takes to count as come true.
    level: f64,
    /// The highest demand seen since it was made.
    seen: f64,
}

/// Per-minute demand over one season, and the record of its forecasts.
#[derive(Clone, Debug, Default)]
pub struct Seasonal {
    /// (bucket index, sum, count), oldest first.
    buckets: VecDeque<(i64, f64, u32)>,
    pending: VecDeque<Pending>,
    hits: f64,
    scored: f64,
}

fn bucket(t: f64) -> i64 {
    // Times are seconds on the engine's clock: finite and far within i64.
    (t / BUCKET_SECS).floor() as i64
}

impl Seasonal {
    /// Records `demand` at `t` and returns the seasonal forecast of demand
    /// `lead` seconds ahead: None when the season has no rise there, too
    /// little history, or a poor record. `t` never goes back (the engine's
    /// clock); `demand` is finite and non-negative.
    pub fn step(&mut self, t: f64, demand: f64, lead: f64, season: f64) -> Option<f64> {
        if !(season.is_finite() && season > 0.0 && lead.is_finite() && lead > 0.0) {
            return None;
        }
        self.check(t, demand);
        self.record(t, demand, season);
        let ratio = self.rise(t, lead, season)?;
        let forecast = demand * ratio.min(MAX_RISE);
        let checked_by = t + 2.0 * lead;
        // One check per rise: the ticks of the same rise share it.
        if self
            .pending
            .back()
            .is_none_or(|p| p.due <= checked_by - lead)
        {
            self.pending.push_back(Pending {
                due: checked_by,
                level: demand + 0.5 * (forecast - demand),
                seen: 0.0,
            });
        }
        self.trusted().then_some(forecast)
    }

    /// Whether enough recent rises came true.
    pub fn trusted(&self) -> bool {
        self.scored >= MIN_SCORED && self.hits >= MIN_HIT_RATE * self.scored
    }

    fn check(&mut self, t: f64, demand: f64) {
        for p in self.pending.iter_mut() {
            p.seen = p.seen.max(demand);
        }
        while let Some(p) = self.pending.front().copied() {
            if p.due > t {
                break;
            }
            self.pending.pop_front();
            let hit = if p.seen >= p.level { 1.0 } else { 0.0 };
            self.hits = self.hits * SCORE_DECAY + hit;
            self.scored = self.scored * SCORE_DECAY + 1.0;
        }
    }

    fn record(&mut self, t: f64, demand: f64, season: f64) {
        let i = bucket(t);
        match self.buckets.back_mut() {
            Some((last, sum, count)) if *last == i => {
                *sum += demand;
                *count = count.saturating_add(1);
            }
            _ => self.buckets.push_back((i, demand, 1)),
        }
        let oldest = bucket(t - season) - 1;
        while self.buckets.front().is_some_and(|(j, _, _)| *j < oldest) {
            self.buckets.pop_front();
        }
    }

    fn mean(&self, t: f64) -> Option<f64> {
        let i = bucket(t);
        let at = self.buckets.binary_search_by_key(&i, |(j, _, _)| *j).ok()?;
        let (_, sum, count) = self.buckets[at];
        (count > 0).then(|| sum / f64::from(count))
    }

    /// How much demand rose from one season before now to one season before
    /// now + `lead`, when it rose by [`MIN_RISE`] or more.
    fn rise(&self, t: f64, lead: f64, season: f64) -> Option<f64> {
        let before = self.mean(t - season)?;
        let after = self.mean(t + lead - season)?;
        if before <= 0.0 {
            return None;
        }
        let ratio = after / before;
        (ratio >= MIN_RISE).then_some(ratio)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = 86_400.0;
    const LEAD: f64 = 35.0;

    /// 100 until 8:00, 300 from then until 20:00, every day.
    fn daily(t: f64) -> f64 {
        let hour = (t % DAY) / 3600.0;
        if (8.0..20.0).contains(&hour) {
            300.0
        } else {
            100.0
        }
    }

    /// Runs `demand` every 5 s from 0 to `until`; the forecasts made at the
    /// ticks in `watch`.
    fn run(
        s: &mut Seasonal,
        demand: impl Fn(f64) -> f64,
        until: f64,
        watch: (f64, f64),
    ) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut t = 0.0;
        while t <= until {
            let f = s.step(t, demand(t), LEAD, DAY);
            if let Some(f) = f
                && t >= watch.0
                && t <= watch.1
            {
                out.push((t, f));
            }
            t += 5.0;
        }
        out
    }

    #[test]
    fn a_daily_rise_is_forecast_a_lead_ahead_once_it_proved_right() {
        let mut s = Seasonal::default();
        // Day 0 has no history; days 1 to 6 each check one rise (8:00),
        // all come true; on day 7 the record is long enough.
        let eight = 8.0 * 3600.0;
        let seen = run(&mut s, daily, 7.0 * DAY + eight + 60.0, (0.0, 8.0 * DAY));
        assert!(s.trusted());
        // Only on day 7, in the ticks whose lead reaches past 8:00: the
        // minute before the rise one day ago, times 3 (300 / 100).
        assert!(!seen.is_empty());
        for &(t, f) in &seen {
            assert!(
                t >= 7.0 * DAY + eight - LEAD && t < 7.0 * DAY + eight,
                "{t}"
            );
            assert_eq!(f, 300.0, "at {t}");
        }
    }

    /// `daily` on even days, 100 all day on odd days.
    fn every_other_day(t: f64) -> f64 {
        if (t / DAY).floor() as i64 % 2 == 0 {
            daily(t)
        } else {
            100.0
        }
    }

    #[test]
    fn rises_that_do_not_come_back_are_not_used() {
        // Each odd morning the forecast from the day before is wrong; on
        // even mornings the day before had no rise.
        let mut s = Seasonal::default();
        let seen = run(&mut s, every_other_day, 40.0 * DAY, (0.0, 40.0 * DAY));
        assert!(seen.is_empty(), "{seen:?}");
        assert!(!s.trusted());
    }

    #[test]
    fn a_record_that_turns_wrong_is_dropped_and_a_pattern_that_returns_is_used_again() {
        let mut s = Seasonal::default();
        run(&mut s, daily, 7.0 * DAY, (0.0, 0.0));
        assert!(s.trusted());
        let mut t = 7.0 * DAY;
        let mut step = |s: &mut Seasonal, until: f64, f: fn(f64) -> f64| {
            let mut used = false;
            while t < until {
                used |= s.step(t, f(t), LEAD, DAY).is_some();
                t += 5.0;
            }
            used
        };
        // Every other day: a few wrong forecasts are used, then none.
        step(&mut s, 27.0 * DAY, every_other_day);
        assert!(!s.trusted());
        assert!(!step(&mut s, 29.0 * DAY, every_other_day));
        // Daily again: still checked while unused, trusted after enough
        // right ones, then used.
        assert!(step(&mut s, 49.0 * DAY, daily));
        assert!(s.trusted());
    }

    #[test]
    fn no_forecast_without_a_season_of_history_or_on_bad_arguments() {
        let mut s = Seasonal::default();
        assert!(run(&mut s, daily, DAY - 1.0, (0.0, DAY)).is_empty());
        assert_eq!(s.step(DAY, 100.0, LEAD, f64::NAN), None);
        assert_eq!(s.step(DAY, 100.0, f64::INFINITY, DAY), None);
        assert_eq!(s.step(DAY, 100.0, 0.0, DAY), None);
    }

    #[test]
    fn memory_holds_one_season() {
        let mut s = Seasonal::default();
        run(&mut s, daily, 3.0 * DAY, (0.0, 0.0));
        let buckets = (DAY / BUCKET_SECS) as usize;
        assert!(s.buckets.len() <= buckets + 3, "{}", s.buckets.len());
        assert!(s.pending.len() <= 2);
    }
}
