//! `inflight::metrics` against a real Prometheus, plus fault injection.
//!
//! The tests marked `#[ignore]` start Debian's `/usr/bin/prometheus` (or the
//! binary named by `INFLIGHT_PROMETHEUS_BIN`) on 127.0.0.1 with a random port
//! and a temporary directory, scraping a small HTTP server run by the test;
//! `make test` runs them with `cargo test -- --include-ignored`. The other
//! tests need nothing but loopback sockets.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use inflight::metrics::{
    MetricsError, PromAuth, PromClient, PromConfig, ReadRequest, TemplateVars, read, read_all,
    read_query, render, render_unchecked,
};
use inflight::scaling::{ReadError, Sample};
use tokio::net::TcpListener;

const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long Prometheus may take to start and scrape twice.
const STARTUP_DEADLINE: Duration = Duration::from_secs(60);

/// A label value that would break out of a PromQL string if not escaped:
/// quote, backslash, newline, single quote and a comment sign.
const HOSTILE: &str = "q\"}) or vector(1) # \\ back\nline 'tick'";

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Escapes a label value for the Prometheus text exposition format.
fn exposition_escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// What the scraped target serves.
fn exposition() -> String {
    format!(
        "# TYPE inflight_test_in_flight gauge\n\
         inflight_test_in_flight{{ns=\"shop\",pod=\"a\"}} 3\n\
         inflight_test_in_flight{{ns=\"shop\",pod=\"b\"}} 4.5\n\
         # TYPE inflight_test_labelled gauge\n\
         inflight_test_labelled{{target=\"{}\"}} 7\n\
         inflight_test_labelled{{target=\"plain\"}} 11\n\
         # TYPE inflight_test_nan gauge\n\
         inflight_test_nan NaN\n\
         # TYPE inflight_test_inf gauge\n\
         inflight_test_inf +Inf\n\
         # TYPE inflight_test_negative gauge\n\
         inflight_test_negative -2\n",
        exposition_escape(HOSTILE)
    )
}

/// Serves `router` on 127.0.0.1 with a random port until the test's runtime
/// ends.
async fn spawn_server(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

async fn spawn_target() -> SocketAddr {
    spawn_server(Router::new().route(
        "/metrics",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
                exposition(),
            )
        }),
    ))
    .await
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn prometheus_binary() -> PathBuf {
    let path = std::env::var_os("INFLIGHT_PROMETHEUS_BIN")
        .map_or_else(|| PathBuf::from("/usr/bin/prometheus"), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: these tests need a real Prometheus \
         (Debian: `apt-get install -y prometheus`, or set INFLIGHT_PROMETHEUS_BIN)",
        path.display()
    );
    path
}

/// A Prometheus server in its own temporary directory, killed on drop.
struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second; `web_config` is the
    /// content of a `--web.config.file` (TLS, basic auth) when given.
    fn start(target: Option<SocketAddr>, web_config: Option<&str>) -> Prometheus {
        let binary = prometheus_binary();
        let dir = tempfile::tempdir().unwrap();
        let targets = target.map_or_else(String::new, |t| format!("'{t}'"));
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: [{targets}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let mut command = Command::new(binary);
        command
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(web_config) = web_config {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, web_config).unwrap();
            command.arg(format!("--web.config.file={}", path.display()));
        }
        let child = command.spawn().unwrap();
        Prometheus { child, dir, port }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn log(&mut self) -> String {
        let log = std::fs::read_to_string(self.dir().join("prometheus.log")).unwrap_or_default();
        let exited = self.child.try_wait().ok().flatten();
        format!("exit status: {exited:?}\n--- prometheus.log ---\n{log}")
    }

    /// Polls `query` with `client` until `ready` accepts the answer; panics
    /// with Prometheus' log past the deadline or if it exited.
    async fn wait_for(
        &mut self,
        client: &PromClient,
        query: &str,
        ready: impl Fn(&Result<Option<Sample>, MetricsError>) -> bool,
    ) {
        let deadline = Instant::now() + STARTUP_DEADLINE;
        loop {
            let answer = client.instant(query, QUERY_TIMEOUT).await;
            if ready(&answer) {
                return;
            }
            if Instant::now() > deadline || self.child.try_wait().ok().flatten().is_some() {
                panic!(
                    "Prometheus did not answer {query:?} as expected within {STARTUP_DEADLINE:?}; \
                     last answer {answer:?}\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plain_client(port: u16) -> PromClient {
    PromClient::new(&PromConfig {
        address: format!("http://127.0.0.1:{port}"),
        ..PromConfig::default()
    })
    .unwrap()
}

#[tokio::test]
#[ignore = "needs a real Prometheus; run by make test"]
async fn reads_from_a_real_prometheus() {
    let target = spawn_target().await;
    let mut prometheus = Prometheus::start(Some(target), None);
    let client = plain_client(prometheus.port);
    // Two scrapes, so that the range query below has history.
    prometheus
        .wait_for(
            &client,
            r#"count_over_time(inflight_test_in_flight{pod="a"}[1m])"#,
            |answer| matches!(answer, Ok(Some(s)) if s.value >= 2.0),
        )
        .await;

    // An instant read: the one summed series, stamped with Prometheus' time.
    let vars = TemplateVars::new("shop", "checkout", "checkout-cpol");
    let template = r#"sum(inflight_test_in_flight{ns="{{namespace}}"})"#;
    let before = unix_now();
    let sample = read(&client, template, &vars, false, QUERY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(sample.value, 7.5);
    assert!(
        (before - 5.0..=unix_now() + 5.0).contains(&sample.timestamp),
        "timestamp {} is Prometheus' evaluation time, close to now {before}",
        sample.timestamp
    );

    // Empty: an error, unless empty means zero.
    let absent = r#"sum(inflight_test_in_flight{ns="elsewhere", pod="{{name}}"})"#;
    assert_eq!(
        read(&client, absent, &vars, false, QUERY_TIMEOUT).await,
        Err(MetricsError::Empty)
    );
    assert_eq!(
        inflight::metrics::reading(read(&client, absent, &vars, false, QUERY_TIMEOUT).await),
        Err(ReadError::Missing)
    );
    let zero = read(&client, absent, &vars, true, QUERY_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(zero.value, 0.0);

    // More than one series, and values that are not a demand.
    let err = read_query(&client, "inflight_test_in_flight", false, QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, MetricsError::MultipleSeries { count: 2 });
    assert!(err.to_string().contains("wrap it in sum(...)"));
    for query in [
        "inflight_test_nan",
        "inflight_test_inf",
        "inflight_test_negative",
    ] {
        let err = read_query(&client, query, true, QUERY_TIMEOUT)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MetricsError::InvalidValue { .. }),
            "{query}: {err}"
        );
    }
    // A scalar answer is one value.
    assert_eq!(
        read_query(
            &client,
            "scalar(sum(inflight_test_in_flight))",
            false,
            QUERY_TIMEOUT
        )
        .await
        .unwrap()
        .value,
        7.5
    );
    // PromQL that Prometheus refuses.
    let err = read_query(&client, "sum(inflight_test_in_flight", false, QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "query", "{err}");
    let err = read_query(&client, "inflight_test_nan[1m]", false, QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "query", "{err}");

    // A range read (warm-up): one point per step from the first scrape on.
    let end = unix_now();
    let start = end - 60.0;
    let points = client
        .range(
            "sum(inflight_test_in_flight)",
            start,
            end,
            1.0,
            QUERY_TIMEOUT,
        )
        .await
        .unwrap();
    assert!(points.len() >= 2, "{points:?}");
    assert!(points.iter().all(|p| p.value == 7.5), "{points:?}");
    for pair in points.windows(2) {
        assert_eq!(pair[1].timestamp - pair[0].timestamp, 1.0, "{points:?}");
    }
    assert!(points[0].timestamp >= start.floor() && points.last().unwrap().timestamp <= end.ceil());
    let none = client
        .range("inflight_test_absent", start, end, 1.0, QUERY_TIMEOUT)
        .await
        .unwrap();
    assert!(none.is_empty());
    let err = client
        .range("inflight_test_in_flight", start, end, 1.0, QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err, MetricsError::MultipleSeries { count: 2 });
    let err = client
        .range("inflight_test_negative", start, end, 1.0, QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, MetricsError::InvalidValue { .. }), "{err}");

    // read_all answers in order, sharing identical queries.
    let answers = read_all(
        &client,
        &[
            ReadRequest {
                query: "sum(inflight_test_in_flight)".into(),
                empty_is_zero: false,
            },
            ReadRequest {
                query: "inflight_test_absent".into(),
                empty_is_zero: true,
            },
            ReadRequest {
                query: "inflight_test_absent".into(),
                empty_is_zero: false,
            },
        ],
        QUERY_TIMEOUT,
    )
    .await;
    assert_eq!(answers[0].as_ref().unwrap().value, 7.5);
    assert_eq!(answers[1].as_ref().unwrap().value, 0.0);
    assert_eq!(answers[2], Err(MetricsError::Empty));
}

#[tokio::test]
#[ignore = "needs a real Prometheus; run by make test"]
async fn hostile_names_cannot_inject_promql_into_a_real_prometheus() {
    let target = spawn_target().await;
    let mut prometheus = Prometheus::start(Some(target), None);
    let client = plain_client(prometheus.port);
    prometheus
        .wait_for(
            &client,
            "count(inflight_test_labelled)",
            |answer| matches!(answer, Ok(Some(s)) if s.value == 2.0),
        )
        .await;

    // Escaping alone: the injection attempt is just a label value that
    // matches nothing, so the sum is empty (not vector(1)).
    for template in [
        r#"sum(inflight_test_in_flight{ns="{{namespace}}"})"#,
        "sum(inflight_test_in_flight{ns='{{namespace}}'})",
    ] {
        for hostile in [r#"a"}) or vector(1) #"#, "a'}) or vector(1) #", HOSTILE] {
            let vars = TemplateVars::new(hostile, "b", "c");
            let query = render_unchecked(template, &vars).unwrap();
            assert_eq!(
                read_query(&client, &query, false, QUERY_TIMEOUT).await,
                Err(MetricsError::Empty),
                "{query}"
            );
        }
    }

    // And the escaping is exact: the hostile value selects the one series
    // whose label is that very string, in both quote styles.
    for template in [
        r#"inflight_test_labelled{target="{{name}}"}"#,
        "inflight_test_labelled{target='{{name}}'}",
    ] {
        let query = render_unchecked(template, &TemplateVars::new("a", HOSTILE, "c")).unwrap();
        let sample = read_query(&client, &query, false, QUERY_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(sample.value, 7.0, "{query}");
    }

    // The checked path refuses such names before any query.
    let err = render(
        r#"inflight_test_labelled{target="{{name}}"}"#,
        &TemplateVars::new("a", HOSTILE, "c"),
    )
    .unwrap_err();
    assert_eq!(err.metric_label(), "template");
}

/// A CA and a server certificate for 127.0.0.1, written to `dir`; returns
/// the CA's PEM.
fn write_tls_files(dir: &Path) -> Vec<u8> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "inflight test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server = server_params.signed_by(&server_key, &*ca).unwrap();
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    ca.pem().into_bytes()
}

/// bcrypt of `TEST_PASSWORD` (Prometheus' web config wants bcrypt hashes).
const TEST_PASSWORD_BCRYPT: &str = "$2b$10$Th2.yecs3X3KHb4AwNV67OZAO6o2zQknka5mDw4zPRyZ/KuD7Tyq.";
const TEST_PASSWORD: &str = "inflight-test-password";

#[tokio::test]
#[ignore = "needs a real Prometheus; run by make test"]
async fn tls_with_a_custom_ca_and_basic_auth_against_a_real_prometheus() {
    let tls_dir = tempfile::tempdir().unwrap();
    let ca_pem = write_tls_files(tls_dir.path());
    let web_config = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\nbasic_auth_users:\n  inflight: '{TEST_PASSWORD_BCRYPT}'\n",
        tls_dir.path().join("server.crt").display(),
        tls_dir.path().join("server.key").display(),
    );
    let mut prometheus = Prometheus::start(None, Some(&web_config));
    let address = format!("https://127.0.0.1:{}", prometheus.port);
    let config = |auth: PromAuth, ca_pem: Option<Vec<u8>>| PromConfig {
        address: address.clone(),
        auth,
        ca_pem,
    };
    let good_auth = PromAuth::Basic {
        user: "inflight".into(),
        pass: TEST_PASSWORD.into(),
    };
    let client = PromClient::new(&config(good_auth.clone(), Some(ca_pem.clone()))).unwrap();
    prometheus
        .wait_for(
            &client,
            "vector(3)",
            |answer| matches!(answer, Ok(Some(s)) if s.value == 3.0),
        )
        .await;

    let wrong_password = PromClient::new(&config(
        PromAuth::Basic {
            user: "inflight".into(),
            pass: "wrong".into(),
        },
        Some(ca_pem.clone()),
    ))
    .unwrap();
    let err = wrong_password
        .instant("vector(3)", QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetricsError::Http { status: 401, .. }),
        "{err}"
    );

    // Without the CA, the server's certificate is not trusted.
    let untrusting = PromClient::new(&config(good_auth, None)).unwrap();
    let err = untrusting
        .instant("vector(3)", QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "connect", "{err}");
}

// ---- Fault injection: no Prometheus needed. ----

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept connections and hold them open without ever answering.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let client = plain_client(port);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = client.instant("up", timeout).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err, MetricsError::Timeout(timeout));
    assert_eq!(err.metric_label(), "timeout");
    assert!(
        elapsed >= timeout && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(matches!(ReadError::from(err), ReadError::Failed(m) if m.contains("timed out")));
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let port = free_port(); // bound, then released: nothing listens there now
    let err = plain_client(port)
        .instant("up", QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MetricsError::Connect(m) if m.contains("refused")),
        "{err}"
    );
    assert_eq!(err.metric_label(), "connect");
}

/// What the recording server saw: one entry per request.
#[derive(Clone, Debug)]
struct Seen {
    path: String,
    query: Vec<(String, String)>,
    headers: HeaderMap,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A fake Prometheus that records each request and answers one series of
/// value 5, or `status` with a plain-text body when it is not 200.
async fn spawn_recorder(status: StatusCode) -> (SocketAddr, Log) {
    let log: Log = Arc::default();
    let handler = move |State(log): State<Log>, request: Request| async move {
        let uri = request.uri();
        let query = reqwest::Url::parse(&format!("http://x{uri}"))
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        log.lock().unwrap().push(Seen {
            path: uri.path().to_string(),
            query,
            headers: request.headers().clone(),
        });
        if status == StatusCode::OK {
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"5"]}]}}"#,
            )
                .into_response()
        } else {
            (
                status,
                [(header::CONTENT_TYPE, "text/html")],
                "<h1>nope</h1>",
            )
                .into_response()
        }
    };
    let router = Router::new().fallback(handler).with_state(log.clone());
    (spawn_server(router).await, log)
}

fn client_for(addr: SocketAddr, path: &str, auth: PromAuth) -> PromClient {
    PromClient::new(&PromConfig {
        address: format!("http://{addr}{path}"),
        auth,
        ca_pem: None,
    })
    .unwrap()
}

#[tokio::test]
async fn credentials_and_the_query_reach_the_server() {
    let (addr, log) = spawn_recorder(StatusCode::OK).await;
    let query = r#"sum(x{ns="a\"b"})"#;

    let bearer = client_for(addr, "", PromAuth::Bearer("t0ken".into()));
    assert_eq!(
        bearer.instant(query, QUERY_TIMEOUT).await.unwrap(),
        Some(Sample {
            value: 5.0,
            timestamp: 1_700_000_000.0
        })
    );
    let basic = client_for(
        addr,
        "/prometheus",
        PromAuth::Basic {
            user: "me".into(),
            pass: "p:w".into(),
        },
    );
    basic.instant(query, QUERY_TIMEOUT).await.unwrap();
    let anonymous = client_for(addr, "", PromAuth::None);
    anonymous.instant(query, QUERY_TIMEOUT).await.unwrap();

    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].headers[header::AUTHORIZATION], "Bearer t0ken");
    // base64("me:p:w")
    assert_eq!(seen[1].headers[header::AUTHORIZATION], "Basic bWU6cDp3");
    assert!(!seen[2].headers.contains_key(header::AUTHORIZATION));
    assert_eq!(seen[0].path, "/api/v1/query");
    assert_eq!(
        seen[1].path, "/prometheus/api/v1/query",
        "the path prefix is kept"
    );
    for request in &seen {
        assert!(
            request.query.contains(&("query".into(), query.into())),
            "{:?}",
            request.query
        );
        assert!(
            request.query.contains(&("timeout".into(), "5000ms".into())),
            "Prometheus gets the timeout too: {:?}",
            request.query
        );
    }
}

#[tokio::test]
async fn read_all_sends_each_distinct_query_once() {
    let (addr, log) = spawn_recorder(StatusCode::OK).await;
    let client = client_for(addr, "", PromAuth::None);
    let request = |query: &str| ReadRequest {
        query: query.into(),
        empty_is_zero: false,
    };
    let answers = read_all(
        &client,
        &[request("a"), request("b"), request("a"), request("a")],
        QUERY_TIMEOUT,
    )
    .await;
    assert_eq!(answers.len(), 4);
    assert!(answers.iter().all(|a| a.as_ref().unwrap().value == 5.0));
    let mut sent: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|s| {
            s.query
                .iter()
                .find(|(k, _)| k == "query")
                .map(|(_, v)| v.clone())
        })
        .collect();
    sent.sort();
    assert_eq!(sent, ["a", "b"]);
}

#[tokio::test]
async fn an_error_page_in_front_of_prometheus_is_an_http_error() {
    let (addr, _log) = spawn_recorder(StatusCode::FORBIDDEN).await;
    let err = client_for(addr, "", PromAuth::None)
        .instant("up", QUERY_TIMEOUT)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        MetricsError::Http {
            status: 403,
            message: "<h1>nope</h1>".into()
        }
    );
}
