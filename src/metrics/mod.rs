//! Reading demand from Prometheus.
//!
//! The controller, per policy and tick:
//! 1. gets a [`PromClient`] from a [`PromClientCache`] keyed on
//!    [`PromConfig`] (address, [`PromAuth`] from a Secret, custom CA);
//! 2. calls [`read`] with the metric's query template, the [`TemplateVars`]
//!    (namespace, target name, policy name), the metric's `emptyIsZero` and a
//!    per-query timeout;
//! 3. hands `reading(result)` (a [`crate::scaling::Reading`]) to the engine,
//!    and `err.metric_label()` to the operator's metrics.
//!
//! Queries are strict: one series (wrap in `sum(...)`), a finite non-negative
//! value, and "no series" is an error unless the policy says empty means
//! zero. Staleness is the engine's call; we return Prometheus' timestamp.
//!
//! Batching: [`read_all`] already sends each distinct rendered query once per
//! call, however many policies share it. The next step (not done) is to merge
//! templates that differ only in their `{{name}}` into one
//! `sum by (label) (...)` query and split the answer by label.

mod client;
mod error;
mod template;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt as _;

pub use client::{PromAuth, PromClient, PromClientCache, PromConfig, validate};
pub use error::MetricsError;
pub use template::{TemplateVars, escape_label_value, render, render_unchecked};

use crate::scaling::{ReadError, Reading, Sample};

/// At most this many queries in flight at once from one [`read_all`], so a
/// controller with many policies does not flood Prometheus.
const MAX_CONCURRENT_QUERIES: usize = 8;

/// Renders `template` for `vars` (validated and escaped, see [`render`]) and
/// reads it as an instant query. With `empty_is_zero`, no series reads as
/// 0 stamped with this machine's current time.
pub async fn read(
    client: &PromClient,
    template: &str,
    vars: &TemplateVars,
    empty_is_zero: bool,
    timeout: Duration,
) -> Result<Sample, MetricsError> {
    let query = render(template, vars)?;
    read_query(client, &query, empty_is_zero, timeout).await
}

/// Reads an already rendered query (see [`read`]).
pub async fn read_query(
    client: &PromClient,
    query: &str,
    empty_is_zero: bool,
    timeout: Duration,
) -> Result<Sample, MetricsError> {
    let answer = client.instant(query, timeout).await;
    empty_as(answer, empty_is_zero)
}

/// One metric of one policy, rendered; see [`read_all`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReadRequest {
    /// A rendered query (from [`render`]).
    pub query: String,
    pub empty_is_zero: bool,
}

/// Reads many queries, sending each distinct query once (a few at a time),
/// and answers in the order of `requests`.
pub async fn read_all(
    client: &PromClient,
    requests: &[ReadRequest],
    timeout: Duration,
) -> Vec<Result<Sample, MetricsError>> {
    let mut distinct: Vec<&str> = requests.iter().map(|r| r.query.as_str()).collect();
    distinct.sort_unstable();
    distinct.dedup();
    let answers: HashMap<&str, Result<Option<Sample>, MetricsError>> =
        futures::stream::iter(distinct)
            .map(|query| async move { (query, client.instant(query, timeout).await) })
            .buffer_unordered(MAX_CONCURRENT_QUERIES)
            .collect()
            .await;
    requests
        .iter()
        .map(|request| {
            let answer = answers
                .get(request.query.as_str())
                .cloned()
                .unwrap_or_else(|| {
                    // Every request's query is in `distinct`; kept total anyway.
                    Err(MetricsError::Parse("no answer for the query".to_string()))
                });
            empty_as(answer, request.empty_is_zero)
        })
        .collect()
}

/// The engine's view of a read: `Empty` is `Missing`, other errors `Failed`.
pub fn reading(result: Result<Sample, MetricsError>) -> Reading {
    result.map_err(ReadError::from)
}

fn empty_as(
    answer: Result<Option<Sample>, MetricsError>,
    empty_is_zero: bool,
) -> Result<Sample, MetricsError> {
    match answer? {
        Some(sample) => Ok(sample),
        None if empty_is_zero => Ok(Sample {
            value: 0.0,
            timestamp: unix_now(),
        }),
        None => Err(MetricsError::Empty),
    }
}

fn unix_now() -> f64 {
    // A clock before 1970 is a broken machine; 0 makes every sample stale,
    // which the engine treats as missing data (it holds).
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests;
