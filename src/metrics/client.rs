//! The Prometheus HTTP client: address, credentials, custom CA, per-query
//! timeout, and a strict reading of the answer.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use prometheus_http_query::response::{Data, Sample as PromSample};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::Deserialize;

use super::MetricsError;
use super::error::with_sources;
use crate::scaling::Sample;

/// Where Prometheus is and how to talk to it. Equal configs share one client
/// (see [`PromClientCache`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PromConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` (a path prefix such
    /// as `/prometheus` is kept).
    pub address: String,
    pub auth: PromAuth,
    /// PEM bundle of extra CA certificates trusted for `https` addresses, in
    /// addition to the system's roots.
    pub ca_pem: Option<Vec<u8>>,
}

/// Credentials sent with every query, read by the controller from a Secret.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub enum PromAuth {
    #[default]
    None,
    /// `Authorization: Bearer <token>`; surrounding whitespace (a trailing
    /// newline in the Secret) is ignored.
    Bearer(String),
    /// `Authorization: Basic base64(user:pass)`.
    Basic { user: String, pass: String },
}

// Never print credentials.
impl fmt::Debug for PromAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PromAuth::None => f.write_str("None"),
            PromAuth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            PromAuth::Basic { user, .. } => {
                write!(f, "Basic {{ user: {user:?}, pass: <redacted> }}")
            }
        }
    }
}

/// A client for one Prometheus (address, credentials, CA). Cheap to clone:
/// clones share the connection pool.
#[derive(Clone)]
pub struct PromClient {
    inner: prometheus_http_query::Client,
    address: Arc<str>,
}

impl fmt::Debug for PromClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromClient")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// Prometheus refuses range queries of more points than this per series.
const MAX_RANGE_POINTS: f64 = 11_000.0;
/// A single-series answer is a few hundred bytes; a response larger than this
/// is a query returning far too many series, not worth reading.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// How much of a non-Prometheus error body goes into an error message.
const MAX_ERROR_BODY_CHARS: usize = 300;

impl PromClient {
    /// Builds a client. Fails on an address that is not an http(s) URL,
    /// credentials that cannot go in a header, or an unreadable CA bundle.
    pub fn new(cfg: &PromConfig) -> Result<Self, MetricsError> {
        let url = reqwest::Url::parse(&cfg.address).map_err(|e| {
            MetricsError::Config(format!("address {:?} is not a URL: {e}", cfg.address))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(MetricsError::Config(format!(
                "address {:?} must start with http:// or https://",
                cfg.address
            )));
        }
        crate::tls::install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("inflight/", env!("CARGO_PKG_VERSION")))
            .default_headers(auth_headers(&cfg.auth)?);
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
                MetricsError::Config(format!(
                    "the CA bundle is not valid PEM: {}",
                    with_sources(&e)
                ))
            })?;
            if certs.is_empty() {
                return Err(MetricsError::Config(
                    "the CA bundle holds no certificate".to_string(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        let http = builder.build().map_err(|e| {
            MetricsError::Config(format!(
                "cannot build the HTTP client: {}",
                with_sources(&e)
            ))
        })?;
        let inner = prometheus_http_query::Client::from(http, &cfg.address)
            .map_err(|e| MetricsError::Config(format!("address {:?}: {e}", cfg.address)))?;
        Ok(PromClient {
            inner,
            address: Arc::from(cfg.address.as_str()),
        })
    }

    /// The configured base URL.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Runs an instant query evaluated at Prometheus' current time.
    ///
    /// `Ok(None)`: the query returned no series. `Ok(Some(sample))`: exactly
    /// one series (or a scalar) with a finite, non-negative value; the
    /// timestamp is the one Prometheus reports, which for an instant query is
    /// the evaluation time (use PromQL's `timestamp()` to see a sample's own
    /// age). More than one series, NaN, infinities and negative values are
    /// errors. `timeout` bounds the whole exchange and is also sent to
    /// Prometheus as its evaluation timeout.
    pub async fn instant(
        &self,
        query: &str,
        timeout: Duration,
    ) -> Result<Option<Sample>, MetricsError> {
        let request = self
            .inner
            .query(query)
            .timeout(timeout_millis(timeout))
            .get_raw();
        let data = self.exchange(request, timeout).await?;
        single_sample(data)
    }

    /// Runs a range query (for warming the engine up after a restart) from
    /// `start` to `end` (unix seconds, rounded outwards to whole seconds) every
    /// `step` seconds. Returns the points of the one series in time order;
    /// no series gives an empty vector (gaps are simply missing points). More
    /// than one series, or any invalid value, is an error.
    pub async fn range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
        timeout: Duration,
    ) -> Result<Vec<Sample>, MetricsError> {
        if !(start.is_finite() && end.is_finite() && start <= end) {
            return Err(MetricsError::InvalidArgument(format!(
                "range from {start} to {end}: need finite times with start <= end"
            )));
        }
        if !(step.is_finite() && step > 0.0) {
            return Err(MetricsError::InvalidArgument(format!(
                "step {step}: need a positive number of seconds"
            )));
        }
        if (end - start) / step > MAX_RANGE_POINTS {
            return Err(MetricsError::InvalidArgument(format!(
                "{} points per series asked; Prometheus allows at most {MAX_RANGE_POINTS}: raise the step",
                ((end - start) / step).ceil()
            )));
        }
        // Finite and checked above; `as` saturates, it cannot wrap.
        let request = self
            .inner
            .query_range(query, start.floor() as i64, end.ceil() as i64, step)
            .timeout(timeout_millis(timeout))
            .get_raw();
        let data = self.exchange(request, timeout).await?;
        series_samples(data)
    }

    /// Sends a request, reads the body (bounded in time and size) and decodes
    /// the Prometheus API envelope.
    async fn exchange(
        &self,
        request: impl Future<Output = Result<reqwest::Response, prometheus_http_query::Error>>,
        timeout: Duration,
    ) -> Result<Data, MetricsError> {
        let exchange = async {
            let response = request.await.map_err(classify_send_error)?;
            let status = response.status();
            let body = read_body(response).await?;
            decode(status, &body, timeout)
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| MetricsError::Timeout(timeout))?
    }
}

pub(crate) fn auth_headers(auth: &PromAuth) -> Result<HeaderMap, MetricsError> {
    let mut headers = HeaderMap::new();
    let value = match auth {
        PromAuth::None => return Ok(headers),
        PromAuth::Bearer(token) => format!("Bearer {}", token.trim()),
        PromAuth::Basic { user, pass } => {
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            format!("Basic {encoded}")
        }
    };
    // The message never includes the value: it is a credential.
    let mut value = HeaderValue::from_str(&value).map_err(|_| {
        MetricsError::Config(
            "the bearer token holds characters not allowed in an HTTP header".to_string(),
        )
    })?;
    value.set_sensitive(true);
    headers.insert(AUTHORIZATION, value);
    Ok(headers)
}

fn timeout_millis(timeout: Duration) -> i64 {
    i64::try_from(timeout.as_millis())
        .unwrap_or(i64::MAX)
        .max(1)
}

fn classify_send_error(error: prometheus_http_query::Error) -> MetricsError {
    match &error {
        prometheus_http_query::Error::Client(client) => match client.inner() {
            Some(e) => classify_reqwest(e),
            None => MetricsError::Connect(with_sources(&error)),
        },
        other => MetricsError::Config(with_sources(other)),
    }
}

fn classify_reqwest(error: &reqwest::Error) -> MetricsError {
    let message = with_sources(error);
    if let Some(status) = error.status() {
        MetricsError::Http {
            status: status.as_u16(),
            message,
        }
    } else if error.is_decode() {
        MetricsError::Parse(message)
    } else {
        // Connect failures, resets, TLS errors: Prometheus was not reached
        // or the exchange broke. (Timeouts are ours, see `exchange`.)
        MetricsError::Connect(message)
    }
}

async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, MetricsError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| classify_reqwest(&e))? {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(MetricsError::Parse(format!(
                "the response is larger than {MAX_RESPONSE_BYTES} bytes; the query must return a single series"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The Prometheus API envelope: `{"status": "success", "data": ...}` or
/// `{"status": "error", "errorType": ..., "error": ...}`.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

/// Turns an HTTP status and body into query data or the right error.
/// `timeout` is the one we sent, reported if Prometheus' evaluation timed out.
pub(crate) fn decode(
    status: reqwest::StatusCode,
    body: &[u8],
    timeout: Duration,
) -> Result<Data, MetricsError> {
    let envelope = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope,
        // Not a Prometheus answer: a proxy's error page, or garbage.
        Err(e) if status.is_success() => return Err(MetricsError::Parse(e.to_string())),
        Err(_) => {
            return Err(MetricsError::Http {
                status: status.as_u16(),
                message: body_excerpt(body),
            });
        }
    };
    match (envelope.status.as_str(), envelope.data) {
        ("success", Some(data)) => Ok(data),
        ("error", _) => {
            let kind = envelope.error_type.unwrap_or_default();
            let message = envelope.error.unwrap_or_default();
            Err(match kind.as_str() {
                "bad_data" | "execution" => MetricsError::Query(format!("{kind}: {message}")),
                // Prometheus' evaluation timeout: the one we sent.
                "timeout" => MetricsError::Timeout(timeout),
                _ => MetricsError::Http {
                    status: status.as_u16(),
                    message: format!("{kind}: {message}"),
                },
            })
        }
        (other, _) => Err(MetricsError::Parse(format!(
            "unexpected status {other:?} (or no data) in the response"
        ))),
    }
}

fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut excerpt: String = text.trim().chars().take(MAX_ERROR_BODY_CHARS).collect();
    if text.trim().chars().count() > MAX_ERROR_BODY_CHARS {
        excerpt.push('…');
    }
    excerpt
}

/// A finite, non-negative value, or the error saying why not.
pub fn validate(value: f64, timestamp: f64) -> Result<Sample, MetricsError> {
    if value.is_finite() && value >= 0.0 && timestamp.is_finite() {
        Ok(Sample { value, timestamp })
    } else {
        Err(MetricsError::InvalidValue { value, timestamp })
    }
}

fn to_sample(sample: &PromSample) -> Result<Sample, MetricsError> {
    validate(sample.value(), sample.timestamp())
}

/// The one sample of an instant query's result, if any.
pub(crate) fn single_sample(data: Data) -> Result<Option<Sample>, MetricsError> {
    match data {
        Data::Scalar(sample) => to_sample(&sample).map(Some),
        Data::Vector(series) => match series.as_slice() {
            [] => Ok(None),
            [one] => to_sample(one.sample()).map(Some),
            many => Err(MetricsError::MultipleSeries { count: many.len() }),
        },
        Data::Matrix(_) => Err(MetricsError::Query(
            "the query returned a range vector; drop the [range] selector or wrap it in a function such as avg_over_time(...)".to_string(),
        )),
    }
}

/// The points of a range query's one series, if any.
pub(crate) fn series_samples(data: Data) -> Result<Vec<Sample>, MetricsError> {
    match data {
        Data::Matrix(series) => match series.as_slice() {
            [] => Ok(Vec::new()),
            [one] => one.samples().iter().map(to_sample).collect(),
            many => Err(MetricsError::MultipleSeries { count: many.len() }),
        },
        Data::Scalar(_) | Data::Vector(_) => Err(MetricsError::Parse(
            "a range query answered with an instant result".to_string(),
        )),
    }
}

/// Builds clients on demand, one per distinct [`PromConfig`], and keeps them
/// so that their connection pools are reused across ticks. Cheap to clone.
#[derive(Clone, Default)]
pub struct PromClientCache {
    clients: Arc<Mutex<HashMap<PromConfig, PromClient>>>,
}

/// Configs change (rotated secrets, edited addresses) and leave old entries
/// behind; past this many the cache starts over, which only costs new
/// connection pools.
const MAX_CACHED_CLIENTS: usize = 64;

impl PromClientCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The client for `cfg`, built on first use.
    pub fn get(&self, cfg: &PromConfig) -> Result<PromClient, MetricsError> {
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is still usable.
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = clients.get(cfg) {
            return Ok(client.clone());
        }
        let client = PromClient::new(cfg)?;
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        clients.insert(cfg.clone(), client.clone());
        Ok(client)
    }

    /// Drops the client for `cfg` (e.g. when its Secret was deleted).
    pub fn forget(&self, cfg: &PromConfig) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cfg);
    }

    pub fn len(&self) -> usize {
        self.clients.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
