//! The `loadsim` binary without a cluster (`--ready N`): its HTTP API and the
//! model behind /metrics. Talks only to 127.0.0.1.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(30);

/// A running loadsim, killed when dropped.
struct Loadsim {
    child: Child,
    address: SocketAddr,
}

impl Drop for Loadsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Loadsim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadsim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--namespace",
            "test",
            "--deployment",
            "web",
            "--tick",
            "20ms",
            "--seed",
            "7",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn loadsim");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let line = match rx.recv_timeout(DEADLINE) {
        Ok(line) => line,
        Err(e) => {
            let _ = child.kill();
            panic!("no address line from loadsim: {e}");
        }
    };
    let address = line
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    Loadsim { child, address }
}

/// One HTTP/1.1 request; returns (status, body).
fn http(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let (head, rest) = response.split_once("\r\n\r\n").expect("header end");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

/// The value of the series `name{...}` whose labels contain all of `labels`.
fn metric(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Polls /metrics until `check` accepts it; panics with the last text after
/// the deadline.
fn wait_for_metrics(sim: &Loadsim, what: &str, check: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let (status, text) = http(sim.address, "GET", "/metrics", "");
        assert_eq!(status, 200);
        if check(&text) {
            return text;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "timed out waiting for {what}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_metrics_that_follow_the_profile() {
    let sim = start(&["--ready", "20"]);
    assert_eq!(http(sim.address, "GET", "/healthz", "").0, 200);
    let (status, body) = http(sim.address, "GET", "/profile", "");
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"kind":"constant","rps":0.0}"#);

    let text = wait_for_metrics(&sim, "ready replicas", |t| {
        metric(t, "loadsim_ready_replicas", &[]) == Some(20.0)
    });
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.contains(r#"namespace="test",deployment="web""#),
            "unlabelled series {line}"
        );
    }
    assert_eq!(metric(&text, "http_requests_in_flight", &[]), Some(0.0));

    // 1000 rps x 0.1 s = 100 in flight on 20 pods x 10 slots: no queue.
    let profile = r#"{"kind":"constant","rps":1000}"#;
    let (status, body) = http(sim.address, "PUT", "/profile", profile);
    assert_eq!(status, 200, "{body}");
    let (_, body) = http(sim.address, "GET", "/profile", "");
    assert_eq!(body, r#"{"kind":"constant","rps":1000.0}"#);
    let text = wait_for_metrics(&sim, "in-flight near 100", |t| {
        metric(t, "loadsim_arrival_rate", &[]) == Some(1000.0)
            && metric(t, "http_requests_total", &[]).is_some_and(|v| v > 500.0)
            && metric(t, "http_requests_in_flight", &[])
                .is_some_and(|v| (60.0..=140.0).contains(&v))
    });
    assert_eq!(metric(&text, "http_queue_depth", &[]), Some(0.0));
    let count = metric(&text, "http_request_duration_seconds_count", &[]).unwrap();
    let fast = metric(
        &text,
        "http_request_duration_seconds_bucket",
        &[r#"le="0.1""#],
    )
    .unwrap();
    assert!(
        count > 0.0 && fast == count,
        "every request takes the service time: {fast} of {count}"
    );

    // A step to 5000 rps overloads 2000 rps of capacity: a queue, then drops.
    let profile = r#"{"kind":"step","before":1000,"after":5000,"atSecs":0.2}"#;
    assert_eq!(http(sim.address, "PUT", "/profile", profile).0, 200);
    wait_for_metrics(&sim, "a full queue dropping requests", |t| {
        metric(t, "http_queue_depth", &[]).is_some_and(|v| v > 1000.0)
            && metric(
                t,
                "http_requests_dropped_total",
                &[r#"reason="queue_full""#],
            )
            .is_some_and(|v| v > 0.0)
            && metric(t, "http_requests_in_flight", &[]).is_some_and(|v| (v - 200.0).abs() < 1e-6)
    });
}

#[test]
fn bad_profiles_are_rejected_with_400() {
    let sim = start(&[
        "--ready",
        "1",
        "--profile",
        r#"{"kind":"constant","rps":5}"#,
    ]);
    for (body, needle) in [
        ("{not json", "profile JSON"),
        (r#"{"kind":"constant","rps":-1}"#, "rps"),
        (r#"{"kind":"warp"}"#, "warp"),
        ("", "profile JSON"),
    ] {
        let (status, message) = http(sim.address, "PUT", "/profile", body);
        assert_eq!(status, 400, "{body}: {message}");
        assert!(message.contains(needle), "{body}: {message}");
    }
    let (_, body) = http(sim.address, "GET", "/profile", "");
    assert_eq!(
        body, r#"{"kind":"constant","rps":5.0}"#,
        "a rejected profile changes nothing"
    );
    assert_eq!(http(sim.address, "GET", "/nope", "").0, 404);
}

#[cfg(unix)]
#[test]
fn stops_cleanly_on_sigterm() {
    let mut sim = start(&["--ready", "1"]);
    let pid = sim.child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let start = Instant::now();
    loop {
        if let Some(status) = sim.child.try_wait().expect("wait") {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(start.elapsed() < DEADLINE, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn keeps_serving_while_the_api_server_is_unreachable() {
    // Nothing listens on 127.0.0.1:1: the watch fails and retries; the model
    // runs with 0 ready pods, so the demand waits in the queue.
    let kubeconfig = std::env::temp_dir().join(format!("loadsim-test-{}.yaml", std::process::id()));
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\ncurrent-context: x\n\
         clusters: [{name: c, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: u, user: {token: t}}]\n\
         contexts: [{name: x, context: {cluster: c, user: u}}]\n",
    )
    .unwrap();
    let kubeconfig_arg = kubeconfig.to_str().unwrap().to_string();
    let mut sim = start(&[
        "--kubeconfig",
        &kubeconfig_arg,
        "--profile",
        r#"{"kind":"constant","rps":200}"#,
    ]);
    let text = wait_for_metrics(&sim, "demand queued with 0 ready pods", |t| {
        metric(t, "http_queue_depth", &[]).is_some_and(|v| v > 20.0)
    });
    assert_eq!(metric(&text, "loadsim_ready_replicas", &[]), Some(0.0));
    assert_eq!(metric(&text, "http_requests_in_flight", &[]), Some(0.0));
    assert!(sim.child.try_wait().unwrap().is_none(), "loadsim exited");
    let _ = std::fs::remove_file(&kubeconfig);
}

#[test]
fn bad_flags_fail_without_panicking() {
    for args in [
        vec![
            "--ready",
            "1",
            "--profile",
            r#"{"kind":"constant","rps":"x"}"#,
        ],
        vec!["--ready", "1", "--per-pod-limit", "0"],
        vec!["--ready", "1", "--tick", "0s"],
        vec!["--kubeconfig", "/nonexistent/kubeconfig"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_loadsim"))
            .args(["--listen", "127.0.0.1:0", "--deployment", "web"])
            .args(&args)
            .output()
            .expect("run loadsim");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            output.stdout.is_empty(),
            "{args:?} must fail before listening"
        );
    }
}
