//! Warming a fresh engine from Prometheus history, so a restart or a leader
//! failover neither forgets the scale-down stabilization window nor decides
//! on a cold smoothing window. One range query per metric, over the longest
//! window the engine looks back on, at the sync period's step; with the
//! seasonal forecast on, one more per metric over the two seasons before
//! that, a minute apart, so that it keeps its minutes and checks its
//! forecasts again.
use std::time::Duration;

use tracing::warn;

use crate::metrics::{MetricsError, PromClient};
use crate::scaling::{Config, MAX_FLOOR_WINDOW_SECS, Observation, ReadError, Reading, Sample};

/// Never look back further than this: an hour covers any sane
/// stabilization window and the longest floor window a policy may have, and
/// keeps the query cheap.
const MAX_WARM_UP_SECS: f64 = MAX_FLOOR_WINDOW_SECS;

/// How far back to warm up: the longest of the scale-down stabilization
/// window, the recurring floor's window, two smoothing half-lives (the EWMA
/// then holds 75% of its weight), the panic window and the scale-up window;
/// capped at an hour.
pub fn warm_up_span(config: &Config) -> f64 {
    let floor = config
        .scale_down_floor
        .as_ref()
        .map_or(0.0, |f| f.window_secs);
    let span = config
        .scale_down
        .stabilization_window_secs
        .max(floor)
        .max(2.0 * config.smoothing_half_life_secs)
        .max(config.panic.window_secs)
        .max(config.scale_up.stabilization_window_secs);
    if span.is_finite() {
        span.clamp(0.0, MAX_WARM_UP_SECS)
    } else {
        MAX_WARM_UP_SECS
    }
}

/// The seasonal forecast's history is read a minute apart: its buckets are
/// a minute long.
pub const SEASON_STEP_SECS: f64 = 60.0;
/// At most this many points of it per query (Prometheus refuses more than
/// 11,000): a week's season is read over about 6.9 days.
const MAX_SEASON_POINTS: f64 = 10_000.0;

/// How far back the seasonal forecast's history reaches: two seasons (the
/// first fills its minutes; in the second, the forecasts they make are
/// replayed and checked, so a restarted controller rebuilds its record)
/// plus two horizons; 0 when the seasonal forecast is off.
pub fn season_span(config: &Config) -> f64 {
    let Some((season, horizon)) = config
        .prediction
        .as_ref()
        .and_then(|p| Some((p.season_secs?, p.horizon_secs)))
    else {
        return 0.0;
    };
    let span = 2.0 * season + 2.0 * horizon + 2.0 * SEASON_STEP_SECS;
    if span.is_finite() {
        span.clamp(0.0, MAX_SEASON_POINTS * SEASON_STEP_SECS)
    } else {
        0.0
    }
}

/// The step of the range query: the sync period, at least a second (finer
/// than any scrape interval is only repeated points). With the span capped at
/// an hour that is at most 3600 points, far under Prometheus' 11,000.
pub fn warm_up_step(sync_period_secs: f64) -> f64 {
    if sync_period_secs.is_finite() {
        sync_period_secs.max(1.0)
    } else {
        1.0
    }
}

/// The engine's history from the series of each metric. Points are aligned
/// on the in-flight series' timestamps; a policy with a queue or an
/// arrival-rate metric gets `Missing` where that series has no point. The
/// replicas of the past are not known: the current ones stand in.
pub fn history(
    in_flight: &[Sample],
    queue: Option<&[Sample]>,
    arrivals: Option<&[Sample]>,
    current_replicas: u32,
    ready_replicas: u32,
) -> Vec<(f64, Observation)> {
    in_flight
        .iter()
        .map(|sample| {
            (
                sample.timestamp,
                Observation {
                    in_flight: Ok(*sample),
                    queue_depth: queue.map(|series| at(series, sample.timestamp)),
                    ready_replicas,
                    current_replicas,
                    arrival_rate: arrivals.map(|series| at(series, sample.timestamp)),
                },
            )
        })
        .collect()
}

/// The point of `series` at `timestamp` (range queries share their steps),
/// or `Missing`.
fn at(series: &[Sample], timestamp: f64) -> Reading {
    series
        .iter()
        .find(|s| (s.timestamp - timestamp).abs() < 1e-3)
        .copied()
        .ok_or(ReadError::Missing)
}

/// The rendered queries of a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queries {
    pub in_flight: String,
    pub queue_depth: Option<String>,
    pub arrival_rate: Option<String>,
}

/// Fetch the history of a policy's metrics from `now - span` to `now`,
/// preceded (with the seasonal forecast on) by the seasons before that, a
/// minute apart. The seasons are best effort: a failed read of them (a
/// Prometheus that keeps less, or refuses the query) is logged and the
/// warm-up goes on with the recent history alone.
#[allow(clippy::too_many_arguments)]
pub async fn fetch_history(
    prometheus: &PromClient,
    queries: &Queries,
    config: &Config,
    now: f64,
    sync_period_secs: f64,
    timeout: Duration,
    current_replicas: u32,
    ready_replicas: u32,
) -> Result<Vec<(f64, Observation)>, MetricsError> {
    let span = warm_up_span(config);
    let seasons = season_span(config);
    let replicas = (current_replicas, ready_replicas);
    let mut out = Vec::new();
    if seasons > span + SEASON_STEP_SECS {
        let (from, to) = (now - seasons, now - span - SEASON_STEP_SECS);
        match fetch_range(
            prometheus,
            queries,
            (from, to),
            SEASON_STEP_SECS,
            timeout,
            replicas,
        )
        .await
        {
            Ok(older) => out = older,
            Err(error) => {
                warn!(error = %error, "cannot read the seasons before the warm-up from Prometheus; the seasonal forecast starts over")
            }
        }
    }
    if span > 0.0 {
        let step = warm_up_step(sync_period_secs);
        out.extend(
            fetch_range(
                prometheus,
                queries,
                (now - span, now),
                step,
                timeout,
                replicas,
            )
            .await?,
        );
    }
    Ok(out)
}

/// One range query per metric over `(from, to)`, as engine history.
async fn fetch_range(
    prometheus: &PromClient,
    queries: &Queries,
    (from, to): (f64, f64),
    step: f64,
    timeout: Duration,
    (current_replicas, ready_replicas): (u32, u32),
) -> Result<Vec<(f64, Observation)>, MetricsError> {
    let in_flight = prometheus
        .range(&queries.in_flight, from, to, step, timeout)
        .await?;
    let queue = match &queries.queue_depth {
        Some(q) => Some(prometheus.range(q, from, to, step, timeout).await?),
        None => None,
    };
    let arrivals = match &queries.arrival_rate {
        Some(q) => Some(prometheus.range(q, from, to, step, timeout).await?),
        None => None,
    };
    Ok(history(
        &in_flight,
        queue.as_deref(),
        arrivals.as_deref(),
        current_replicas,
        ready_replicas,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::FloorConfig;

    fn s(timestamp: f64, value: f64) -> Sample {
        Sample { value, timestamp }
    }

    #[test]
    fn span_is_the_longest_window() {
        let mut config = Config::default();
        // The recurring floor's hour by default.
        assert_eq!(warm_up_span(&config), 3600.0);
        config.scale_down_floor = None;
        assert_eq!(warm_up_span(&config), 300.0);
        config.scale_down_floor = Some(FloorConfig {
            window_secs: 900.0,
            quantile: 0.5,
        });
        assert_eq!(warm_up_span(&config), 900.0);
        config.scale_down_floor = None;
        config.scale_down.stabilization_window_secs = 0.0;
        assert_eq!(warm_up_span(&config), 60.0);
        config.smoothing_half_life_secs = 1.0;
        assert_eq!(warm_up_span(&config), 6.0);
        config.scale_down.stabilization_window_secs = 86_400.0;
        assert_eq!(warm_up_span(&config), MAX_WARM_UP_SECS);
    }

    #[test]
    fn season_span_is_two_seasons_and_two_horizons_at_most_10000_minutes() {
        let mut config = Config::default();
        // Two days, two horizons (30 s) and two minutes.
        assert_eq!(season_span(&config), 2.0 * 86_400.0 + 60.0 + 120.0);
        if let Some(p) = config.prediction.as_mut() {
            p.season_secs = Some(7.0 * 86_400.0);
        }
        assert_eq!(season_span(&config), 600_000.0);
        if let Some(p) = config.prediction.as_mut() {
            p.season_secs = None;
        }
        assert_eq!(season_span(&config), 0.0);
        config.prediction = None;
        assert_eq!(season_span(&config), 0.0);
    }

    #[test]
    fn two_seasons_of_history_a_minute_apart_restore_the_seasonal_forecast() {
        // 80 in flight for the first hour of every two, 240 for the second
        // (10 and 30 pods), every day: twelve rises a day. Two days of it a
        // minute apart, then the last hour every 5 s, as `fetch_history`
        // reads them: the replayed second day checks its forecasts, so the
        // warmed engine raises the fleet a horizon before the next rise. A
        // cold engine (or one warmed on the hour alone) waits for it.
        const DAY: f64 = 86_400.0;
        let demand = |t: f64| if (t % 7200.0) < 3600.0 { 80.0 } else { 240.0 };
        let now = 2.0 * DAY + 3600.0 - 20.0; // 20 s before a rise
        let series = |from: f64, to: f64, step: f64| -> Vec<Sample> {
            let n = ((to - from) / step).floor() as u32;
            (0..=n)
                .map(|i| {
                    let t = from + f64::from(i) * step;
                    s(t, demand(t))
                })
                .collect()
        };
        let config = Config {
            max_replicas: 50,
            ..Config::default()
        };
        let span = warm_up_span(&config);
        let older = series(
            now - season_span(&config),
            now - span - SEASON_STEP_SECS,
            SEASON_STEP_SECS,
        );
        let recent = series(now - span, now - 5.0, 5.0);
        let obs = Observation {
            in_flight: Ok(s(now, demand(now))),
            queue_depth: None,
            ready_replicas: 10,
            current_replicas: 10,
            arrival_rate: None,
        };
        let mut warm = crate::scaling::Engine::new(config.clone());
        warm.warm_up(&history(&older, None, None, 10, 10));
        warm.warm_up(&history(&recent, None, None, 10, 10));
        assert_eq!(warm.step(&obs, now).replicas, 30);
        let mut hour_only = crate::scaling::Engine::new(config);
        hour_only.warm_up(&history(&recent, None, None, 10, 10));
        assert_eq!(hour_only.step(&obs, now).replicas, 10);
    }

    #[test]
    fn step_is_the_sync_period_but_at_least_a_second() {
        assert_eq!(warm_up_step(5.0), 5.0);
        assert_eq!(warm_up_step(0.1), 1.0);
        assert_eq!(warm_up_step(f64::NAN), 1.0);
    }

    #[test]
    fn history_aligns_queue_on_in_flight_timestamps() {
        let in_flight = [s(100.0, 10.0), s(105.0, 12.0), s(110.0, 14.0)];
        let queue = [s(100.0, 1.0), s(110.0, 3.0)];
        let h = history(&in_flight, Some(&queue), None, 4, 3);
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].0, 100.0);
        assert_eq!(h[0].1.queue_depth, Some(Ok(s(100.0, 1.0))));
        assert_eq!(h[1].1.queue_depth, Some(Err(ReadError::Missing)));
        assert_eq!(h[2].1.in_flight, Ok(s(110.0, 14.0)));
        assert!(
            h.iter()
                .all(|(_, o)| o.current_replicas == 4 && o.ready_replicas == 3)
        );
    }

    #[test]
    fn history_aligns_arrivals_on_in_flight_timestamps() {
        let in_flight = [s(100.0, 20.0), s(105.0, 20.0)];
        let arrivals = [s(105.0, 1160.0)];
        let h = history(&in_flight, None, Some(&arrivals), 2, 2);
        assert_eq!(h[0].1.arrival_rate, Some(Err(ReadError::Missing)));
        assert_eq!(h[1].1.arrival_rate, Some(Ok(s(105.0, 1160.0))));
        assert_eq!(h[1].1.queue_depth, None);
    }

    #[test]
    fn history_without_queue_metric_has_no_queue() {
        let h = history(&[s(1.0, 2.0)], None, None, 1, 1);
        assert_eq!(h[0].1.queue_depth, None);
        assert_eq!(h[0].1.arrival_rate, None);
    }

    #[test]
    fn warm_up_history_feeds_the_engine_windows() {
        // Five minutes at 160 in flight (20 pods at 8 per pod), then 100 now
        // (a fall of 60, under the 6 x sqrt(160) = 76 that would make it a
        // level shift). A cold engine would smooth to 100 at once; a warmed
        // one remembers the 160 (half-life 30s) and does not scale down
        // inside the window.
        let config = Config {
            max_replicas: 50,
            ..Config::default()
        };
        let series: Vec<Sample> = (0..60).map(|i| s(f64::from(i) * 5.0, 160.0)).collect();
        let mut engine = crate::scaling::Engine::new(config);
        engine.warm_up(&history(&series, None, None, 20, 20));
        let now = 300.0;
        let obs = Observation {
            in_flight: Ok(s(now, 100.0)),
            queue_depth: None,
            ready_replicas: 20,
            current_replicas: 20,
            arrival_rate: None,
        };
        let decision = engine.step(&obs, now);
        let smoothed = decision.details.smoothed.unwrap();
        assert!(smoothed > 140.0, "warm EWMA expected, got {smoothed}");
        assert_eq!(decision.replicas, 20);
    }
}
