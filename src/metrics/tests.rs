//! Unit tests of answer decoding, value checks and errors. Templating has its
//! own tests in `template.rs`; the real-Prometheus tests are in
//! `tests/metrics_prometheus.rs`.

use std::time::Duration;

use reqwest::StatusCode;

use super::client::{auth_headers, decode, series_samples, single_sample};
use super::*;

const T: Duration = Duration::from_secs(2);

fn vector(series: &[(&str, &str)]) -> String {
    let items: Vec<String> = series
        .iter()
        .map(|(pod, value)| {
            format!(r#"{{"metric":{{"pod":"{pod}"}},"value":[1700000000.5,"{value}"]}}"#)
        })
        .collect();
    format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
        items.join(",")
    )
}

fn instant(body: &str) -> Result<Option<Sample>, MetricsError> {
    single_sample(decode(StatusCode::OK, body.as_bytes(), T)?)
}

#[test]
fn one_series_gives_its_value_and_timestamp() {
    assert_eq!(
        instant(&vector(&[("a", "12.5")])).unwrap(),
        Some(Sample {
            value: 12.5,
            timestamp: 1_700_000_000.5
        })
    );
    assert_eq!(instant(&vector(&[("a", "0")])).unwrap().unwrap().value, 0.0);
}

#[test]
fn a_scalar_answer_counts_as_one_series() {
    let body = r#"{"status":"success","data":{"resultType":"scalar","result":[1700000001,"3"]}}"#;
    assert_eq!(
        instant(body).unwrap(),
        Some(Sample {
            value: 3.0,
            timestamp: 1_700_000_001.0
        })
    );
}

#[test]
fn nan_infinities_and_negatives_are_errors_not_zeros() {
    for bad in ["NaN", "+Inf", "-Inf", "-1", "-0.001"] {
        let err = instant(&vector(&[("a", bad)])).unwrap_err();
        assert!(
            matches!(err, MetricsError::InvalidValue { .. }),
            "{bad}: {err}"
        );
        assert_eq!(err.metric_label(), "invalid_value");
        assert!(matches!(ReadError::from(err), ReadError::Failed(_)));
    }
}

#[test]
fn no_series_is_none_and_several_series_an_error() {
    assert_eq!(instant(&vector(&[])).unwrap(), None);
    let err = instant(&vector(&[("a", "1"), ("b", "2")])).unwrap_err();
    assert_eq!(err, MetricsError::MultipleSeries { count: 2 });
    assert!(err.to_string().contains("wrap it in sum(...)"), "{err}");
    assert_eq!(err.metric_label(), "multiple_series");
    assert!(err.is_user_error());
}

#[test]
fn empty_is_an_error_unless_the_policy_says_it_means_zero() {
    let err = empty_as(Ok(None), false).unwrap_err();
    assert_eq!(err, MetricsError::Empty);
    assert_eq!(err.metric_label(), "empty");
    assert_eq!(reading(Err(err)), Err(ReadError::Missing));

    let before = unix_now();
    let zero = empty_as(Ok(None), true).unwrap();
    assert_eq!(zero.value, 0.0);
    assert!(zero.timestamp >= before && zero.timestamp <= unix_now());

    // emptyIsZero never hides a real failure or a real value.
    let failed = empty_as(Err(MetricsError::Connect("refused".into())), true);
    assert_eq!(failed, Err(MetricsError::Connect("refused".into())));
    let sample = Sample {
        value: 4.0,
        timestamp: 10.0,
    };
    assert_eq!(empty_as(Ok(Some(sample)), true), Ok(sample));
}

#[test]
fn a_range_vector_from_an_instant_query_is_a_query_error() {
    let body = r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"1"]]}]}}"#;
    let err = instant(body).unwrap_err();
    assert!(
        matches!(&err, MetricsError::Query(m) if m.contains("range vector")),
        "{err}"
    );
}

#[test]
fn range_answers_are_checked_point_by_point() {
    let matrix = |series: &str| {
        format!(r#"{{"status":"success","data":{{"resultType":"matrix","result":[{series}]}}}}"#)
    };
    let one = matrix(r#"{"metric":{},"values":[[100,"1"],[115,"2.5"]]}"#);
    assert_eq!(
        series_samples(decode(StatusCode::OK, one.as_bytes(), T).unwrap()).unwrap(),
        vec![
            Sample {
                value: 1.0,
                timestamp: 100.0
            },
            Sample {
                value: 2.5,
                timestamp: 115.0
            }
        ]
    );
    let none = matrix("");
    assert_eq!(
        series_samples(decode(StatusCode::OK, none.as_bytes(), T).unwrap()).unwrap(),
        vec![]
    );
    let with_nan = matrix(r#"{"metric":{},"values":[[100,"1"],[115,"NaN"]]}"#);
    assert!(matches!(
        series_samples(decode(StatusCode::OK, with_nan.as_bytes(), T).unwrap()),
        Err(MetricsError::InvalidValue { timestamp, .. }) if timestamp == 115.0
    ));
    let two = matrix(r#"{"metric":{"a":"1"},"values":[]},{"metric":{"a":"2"},"values":[]}"#);
    assert_eq!(
        series_samples(decode(StatusCode::OK, two.as_bytes(), T).unwrap()),
        Err(MetricsError::MultipleSeries { count: 2 })
    );
}

#[test]
fn prometheus_errors_are_classified() {
    let error = |kind: &str| {
        format!(r#"{{"status":"error","errorType":"{kind}","error":"something {kind}"}}"#)
    };
    let bad = decode(StatusCode::BAD_REQUEST, error("bad_data").as_bytes(), T).unwrap_err();
    assert!(
        matches!(&bad, MetricsError::Query(m) if m.contains("something bad_data")),
        "{bad}"
    );
    assert_eq!(bad.metric_label(), "query");
    let timeout = decode(
        StatusCode::SERVICE_UNAVAILABLE,
        error("timeout").as_bytes(),
        T,
    );
    assert_eq!(timeout.unwrap_err(), MetricsError::Timeout(T));
    let internal = decode(
        StatusCode::INTERNAL_SERVER_ERROR,
        error("internal").as_bytes(),
        T,
    );
    assert!(matches!(
        internal,
        Err(MetricsError::Http { status: 500, .. })
    ));
}

#[test]
fn a_proxy_error_page_is_an_http_error_and_garbage_a_parse_error() {
    let err = decode(
        StatusCode::UNAUTHORIZED,
        b"<html>401 Unauthorized</html>",
        T,
    )
    .unwrap_err();
    assert_eq!(
        err,
        MetricsError::Http {
            status: 401,
            message: "<html>401 Unauthorized</html>".into()
        }
    );
    assert_eq!(err.metric_label(), "http");
    let long = "x".repeat(10_000);
    let MetricsError::Http { message, .. } =
        decode(StatusCode::BAD_GATEWAY, long.as_bytes(), T).unwrap_err()
    else {
        panic!("expected an HTTP error")
    };
    assert!(message.chars().count() <= 301, "excerpt is bounded");

    let err = decode(StatusCode::OK, b"not json", T).unwrap_err();
    assert_eq!(err.metric_label(), "parse");
    let err = decode(StatusCode::OK, br#"{"status":"success"}"#, T).unwrap_err();
    assert_eq!(err.metric_label(), "parse");
}

#[test]
fn read_errors_convert_for_the_engine() {
    assert_eq!(ReadError::from(MetricsError::Empty), ReadError::Missing);
    let failed = ReadError::from(MetricsError::Timeout(Duration::from_millis(1500)));
    assert_eq!(
        failed,
        ReadError::Failed("the query timed out after 1.5s".into())
    );
}

#[test]
fn every_error_has_a_distinct_label() {
    let all = [
        MetricsError::Config(String::new()),
        MetricsError::Template(String::new()),
        MetricsError::InvalidArgument(String::new()),
        MetricsError::Timeout(T),
        MetricsError::Connect(String::new()),
        MetricsError::Http {
            status: 500,
            message: String::new(),
        },
        MetricsError::Query(String::new()),
        MetricsError::Empty,
        MetricsError::MultipleSeries { count: 2 },
        MetricsError::InvalidValue {
            value: f64::NAN,
            timestamp: 0.0,
        },
        MetricsError::Parse(String::new()),
    ];
    let mut labels: Vec<&str> = all.iter().map(MetricsError::metric_label).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());
}

#[test]
fn credentials_become_sensitive_authorization_headers() {
    let bearer = auth_headers(&PromAuth::Bearer("tok3n\n".into())).unwrap();
    let value = bearer.get(reqwest::header::AUTHORIZATION).unwrap();
    assert_eq!(value, "Bearer tok3n");
    assert!(value.is_sensitive());

    let basic = auth_headers(&PromAuth::Basic {
        user: "Aladdin".into(),
        pass: "open sesame".into(),
    })
    .unwrap();
    // The example of RFC 7617.
    assert_eq!(
        basic.get(reqwest::header::AUTHORIZATION).unwrap(),
        "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    );
    assert!(auth_headers(&PromAuth::None).unwrap().is_empty());

    let err = auth_headers(&PromAuth::Bearer("a\u{7}b".into())).unwrap_err();
    assert!(
        !err.to_string().contains("a\u{7}b"),
        "the token never shows"
    );
}

#[test]
fn debug_output_never_shows_secrets() {
    let cfg = PromConfig {
        address: "http://127.0.0.1:9090".into(),
        auth: PromAuth::Basic {
            user: "me".into(),
            pass: "hunter2".into(),
        },
        ca_pem: None,
    };
    let shown = format!("{cfg:?} {:?}", PromAuth::Bearer("s3cret".into()));
    assert!(
        !shown.contains("hunter2") && !shown.contains("s3cret"),
        "{shown}"
    );
    assert!(shown.contains("me"), "{shown}");
}

#[test]
fn bad_configurations_are_refused_up_front() {
    let cfg = |address: &str, ca_pem: Option<&[u8]>| PromConfig {
        address: address.into(),
        auth: PromAuth::None,
        ca_pem: ca_pem.map(<[u8]>::to_vec),
    };
    for address in ["", "prometheus:9090/", "ftp://127.0.0.1/"] {
        let err = PromClient::new(&cfg(address, None)).unwrap_err();
        assert_eq!(err.metric_label(), "config", "{address:?}: {err}");
    }
    let err =
        PromClient::new(&cfg("https://127.0.0.1:9090", Some(b"no certificate here"))).unwrap_err();
    assert_eq!(err.metric_label(), "config", "{err}");
    let client = PromClient::new(&cfg("http://127.0.0.1:9090/prometheus", None)).unwrap();
    assert_eq!(client.address(), "http://127.0.0.1:9090/prometheus");
}

#[test]
fn the_cache_builds_one_client_per_config() {
    let cache = PromClientCache::new();
    let a = PromConfig {
        address: "http://127.0.0.1:9090".into(),
        ..PromConfig::default()
    };
    let b = PromConfig {
        auth: PromAuth::Bearer("t".into()),
        ..a.clone()
    };
    cache.get(&a).unwrap();
    cache.get(&a).unwrap();
    assert_eq!(cache.len(), 1);
    cache.get(&b).unwrap();
    assert_eq!(cache.len(), 2);
    cache.forget(&a);
    assert_eq!(cache.len(), 1);
    assert!(cache.get(&PromConfig::default()).is_err());
    assert_eq!(cache.len(), 1, "failed builds are not cached");
}

#[tokio::test]
async fn range_arguments_are_checked_before_sending() {
    // Nothing listens on port 9 of 127.0.0.1 in the test; argument errors
    // must come before any connection attempt.
    let client = PromClient::new(&PromConfig {
        address: "http://127.0.0.1:9".into(),
        ..PromConfig::default()
    })
    .unwrap();
    for (start, end, step) in [
        (10.0, 5.0, 1.0),
        (f64::NAN, 5.0, 1.0),
        (0.0, 5.0, 0.0),
        (0.0, 5.0, -1.0),
        (0.0, 100_000.0, 1.0),
    ] {
        let err = client.range("x", start, end, step, T).await.unwrap_err();
        assert_eq!(
            err.metric_label(),
            "invalid_argument",
            "{start} {end} {step}: {err}"
        );
    }
}
