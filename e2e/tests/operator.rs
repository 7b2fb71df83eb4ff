//! Running the operator (`inflight run`) as a child process of a scenario,
//! restricted to the scenario's namespace, with its logs in a file that is
//! printed when the scenario fails; plus the other processes and watches the
//! controller scenarios share: a private Prometheus, a Deployment's replica
//! history, and the policy's events.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, ListParams};
use kube::runtime::{WatchStreamExt, watcher};

use crate::harness::{TestNamespace, client, prom_value_at, prometheus_url, wait_for};

/// Lines of an operator's log printed when its scenario fails.
const LOG_TAIL_LINES: usize = 60;

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// One scenario: a client, its own namespace, a temp dir for the logs of the
/// processes it starts. Unless [`Scenario::pass`] is called (the scenario
/// reached its end), dropping it prints the tail of every operator's log.
pub struct Scenario {
    pub client: Client,
    pub ns: TestNamespace,
    dir: tempfile::TempDir,
    logs: Mutex<Vec<(String, PathBuf)>>,
    passed: bool,
}

impl Scenario {
    pub async fn new(name: &str) -> Result<Scenario> {
        let client = client().await?;
        crate::harness::ensure_crd(&client).await?;
        let ns = TestNamespace::create(&client, name).await?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("inflight-{}-", ns.name))
            .tempdir()
            .context("creating the scenario's temp dir")?;
        Ok(Scenario {
            client,
            ns,
            dir,
            logs: Mutex::new(Vec::new()),
            passed: false,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.ns.name
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts an operator restricted to this scenario's namespace (its Lease
    /// there too), reading the bed's Prometheus unless told otherwise.
    pub fn operator(&self, options: OperatorOptions) -> Result<Operator> {
        let log = self.dir.path().join(format!(
            "operator-{}-{}.log",
            options.identity,
            self.logs.lock().map(|l| l.len()).unwrap_or(0)
        ));
        self.logs
            .lock()
            .map_err(|_| anyhow::anyhow!("log registry poisoned"))?
            .push((options.identity.clone(), log.clone()));
        Operator::start(self.namespace(), &options, &log)
    }

    /// The scenario reached its end: its logs need not be printed.
    pub fn pass(mut self) {
        self.passed = true;
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if std::env::var_os("INFLIGHT_E2E_KEEP_LOGS").is_some() {
            // Keep the logs of every scenario, passed or not, for a look.
            let dir = std::mem::replace(
                &mut self.dir,
                match tempfile::tempdir() {
                    Ok(d) => d,
                    Err(_) => return,
                },
            );
            eprintln!("logs of {} kept in {}", self.ns.name, dir.keep().display());
        }
        if self.passed {
            return;
        }
        let logs = self.logs.lock().map(|l| l.clone()).unwrap_or_default();
        for (identity, path) in logs {
            eprintln!(
                "----- operator {identity} in {} (last {LOG_TAIL_LINES} lines of {}) -----\n{}",
                self.ns.name,
                path.display(),
                tail(&path, LOG_TAIL_LINES)
            );
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = read_log(path);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A log file's text without the terminal colour codes tracing writes.
fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    regex::Regex::new(r"\x1b\[[0-9;]*m")
        .map(|re| re.replace_all(&text, "").into_owned())
        .unwrap_or(text)
}

/// How to start one operator.
#[derive(Clone, Debug)]
pub struct OperatorOptions {
    /// Its identity in the Lease (`--identity`); also names its log file.
    pub identity: String,
    /// `--prometheus-url`; the bed's by default.
    pub prometheus_url: String,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_duration: String,
    pub sync_period: String,
}

impl OperatorOptions {
    pub fn new(identity: &str) -> OperatorOptions {
        OperatorOptions {
            identity: identity.to_string(),
            prometheus_url: prometheus_url(),
            leader_election: true,
            lease_name: "inflight".to_string(),
            lease_duration: "15s".to_string(),
            sync_period: "1s".to_string(),
        }
    }

    pub fn lease_duration(mut self, d: &str) -> Self {
        self.lease_duration = d.to_string();
        self
    }
}

/// A running `inflight run`. Killed (SIGKILL) on drop.
pub struct Operator {
    child: Child,
    pub identity: String,
    pub metrics_addr: SocketAddr,
    pub log: PathBuf,
}

impl Operator {
    fn start(namespace: &str, options: &OperatorOptions, log: &Path) -> Result<Operator> {
        let kubeconfig = std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?;
        let metrics_addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("creating the operator log {}", log.display()))?;
        let child = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .arg("run")
            .args(["--kubeconfig", &kubeconfig])
            .args(["--namespace", namespace])
            .args(["--lease-namespace", namespace])
            .args(["--lease-name", &options.lease_name])
            .args(["--lease-duration", &options.lease_duration])
            .args(["--identity", &options.identity])
            .args(["--prometheus-url", &options.prometheus_url])
            .args(["--metrics-addr", &metrics_addr.to_string()])
            .args(["--sync-period", &options.sync_period])
            .arg(format!("--leader-election={}", options.leader_election))
            .args(["--log-level", "info,inflight=debug"])
            // POD_NAMESPACE/POD_NAME would override nothing given above, but
            // keep the child independent of the test runner's environment.
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("INFLIGHT_PROMETHEUS_URL")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("starting `inflight run`")?;
        Ok(Operator {
            child,
            identity: options.identity.clone(),
            metrics_addr,
            log: log.to_path_buf(),
        })
    }

    /// Waits until /healthz answers (the process serves).
    pub async fn wait_serving(&mut self) -> Result<()> {
        let url = format!("http://{}/healthz", self.metrics_addr);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "operator {} exited with {status} before serving; log:\n{}",
                    self.identity,
                    self.log_tail(40)
                );
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(30) {
                bail!(
                    "operator {} does not serve {url} after 30s; log:\n{}",
                    self.identity,
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of its /metrics.
    pub async fn metrics(&self) -> Result<String> {
        let url = format!("http://{}/metrics", self.metrics_addr);
        Ok(reqwest::get(&url).await?.error_for_status()?.text().await?)
    }

    /// The value of one series (`name` with its labels exactly as exposed,
    /// e.g. `inflight_leader`), if present.
    pub async fn metric(&self, series: &str) -> Result<Option<f64>> {
        Ok(metric_value(&self.metrics().await?, series))
    }

    /// Whether it acts: `inflight_leader` is 1.
    pub async fn is_leader(&self) -> Result<bool> {
        Ok(self.metric("inflight_leader").await? == Some(1.0))
    }

    /// SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().context("killing the operator")?;
        self.child.wait()?;
        Ok(())
    }

    /// `None` while it runs; its exit status once it exited.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.child.try_wait()?)
    }

    /// Its log so far (stdout and stderr), without colour codes.
    pub fn log_text(&self) -> String {
        read_log(&self.log)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of `series` (name and labels exactly as in the exposition) in
/// a Prometheus text exposition.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A Prometheus server of one scenario (the bed's binary), scraping only the
/// given targets every second, so the scenario can stop and restart it
/// without disturbing the bed's shared Prometheus. Killed on drop.
pub struct PrivatePrometheus {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

/// The bed's Prometheus binary (e2e/cluster/lib.sh: $PROMETHEUS).
fn prometheus_binary() -> PathBuf {
    std::env::var_os("PROMETHEUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus"))
}

impl PrivatePrometheus {
    /// Writes a config scraping `targets` every second into `dir` and starts
    /// Prometheus on a free port; waits until it is ready.
    pub async fn start(dir: &Path, targets: &[&str]) -> Result<PrivatePrometheus> {
        std::fs::create_dir_all(dir.join("data"))?;
        let port = free_port()?;
        let targets: Vec<String> = targets.iter().map(|t| format!("\"{t}\"")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n- job_name: loadsim\n  static_configs:\n  - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config)?;
        let mut prometheus = PrivatePrometheus {
            child: None,
            port,
            dir: dir.to_path_buf(),
        };
        prometheus.restart().await?;
        Ok(prometheus)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Starts it (again, on the same port and data) and waits until ready.
    pub async fn restart(&mut self) -> Result<()> {
        if self.child.is_some() {
            bail!("this Prometheus is already running");
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("prometheus.log"))?;
        let child = Command::new(prometheus_binary())
            .arg(format!(
                "--config.file={}",
                self.dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                self.dir.join("data").display()
            ))
            .arg("--storage.tsdb.retention.time=1h")
            .arg(format!("--web.listen-address=127.0.0.1:{}", self.port))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", prometheus_binary().display()))?;
        self.child = Some(child);
        let ready = format!("{}/-/ready", self.url());
        let started = Instant::now();
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "Prometheus exited with {status}:\n{}",
                    tail(&self.dir.join("prometheus.log"), 20)
                );
            }
            if let Ok(r) = reqwest::get(&ready).await
                && r.status().is_success()
            {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!(
                    "Prometheus not ready after 60s:\n{}",
                    tail(&self.dir.join("prometheus.log"), 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// SIGKILL: the server disappears at once.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// One instant query; `None` when empty.
    pub async fn value(&self, query: &str) -> Result<Option<f64>> {
        prom_value_at(&self.url(), query).await
    }
}

impl Drop for PrivatePrometheus {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Every value `spec.replicas` of a Deployment took, with when it was seen,
/// from a watch (so no change between two polls is missed). The first entry
/// is the value when the watch started.
pub struct ReplicaHistory {
    changes: Arc<Mutex<Vec<(Instant, i32)>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ReplicaHistory {
    /// Starts watching; returns once the first value is known.
    pub async fn start(client: &Client, ns: &str, name: &str) -> Result<ReplicaHistory> {
        let changes: Arc<Mutex<Vec<(Instant, i32)>>> = Arc::default();
        let api = Api::<Deployment>::namespaced(client.clone(), ns);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let record = changes.clone();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config)
                .default_backoff()
                .applied_objects()
                .boxed();
            while let Some(event) = stream.next().await {
                let Ok(d) = event else { continue };
                let replicas = d.spec.replicas.unwrap_or(1);
                let Ok(mut changes) = record.lock() else {
                    return;
                };
                if changes.last().map(|(_, r)| *r) != Some(replicas) {
                    changes.push((Instant::now(), replicas));
                }
            }
        });
        let history = ReplicaHistory { changes, task };
        wait_for(
            &format!("the first replica count of {ns}/{name}"),
            Duration::from_secs(30),
            || async { Ok(history.current()) },
        )
        .await?;
        Ok(history)
    }

    /// Every (time seen, replicas) so far.
    pub fn changes(&self) -> Vec<(Instant, i32)> {
        self.changes.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The latest value seen.
    pub fn current(&self) -> Option<i32> {
        self.changes().last().map(|(_, r)| *r)
    }

    /// Changes seen at or after `since`, with the value before them first.
    pub fn since(&self, since: Instant) -> Vec<(Instant, i32)> {
        let all = self.changes();
        let before = all.iter().rev().find(|(t, _)| *t < since).map(|c| c.1);
        before
            .map(|r| (since, r))
            .into_iter()
            .chain(all.into_iter().filter(|(t, _)| *t >= since))
            .collect()
    }

    /// Waits until `spec.replicas` is `n`.
    pub async fn wait_for_replicas(&self, n: i32, timeout: Duration) -> Result<()> {
        wait_for(
            &format!("spec.replicas to become {n} (history: {})", self.describe()),
            timeout,
            || async { Ok((self.current() == Some(n)).then_some(())) },
        )
        .await
        .with_context(|| format!("replica history: {}", self.describe()))
    }

    /// `1 -> 5 (+3.2s) -> 3 (+25.0s)`: the values with the time since the
    /// first.
    pub fn describe(&self) -> String {
        let all = self.changes();
        let Some((t0, _)) = all.first().copied() else {
            return "(nothing seen)".into();
        };
        all.iter()
            .map(|(t, r)| format!("{r} (+{:.1}s)", t.duration_since(t0).as_secs_f64()))
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

impl Drop for ReplicaHistory {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Direction changes in a sequence of replica counts: an increase after a
/// decrease or the reverse (equal neighbours are no move).
pub fn reversals(values: &[i32]) -> usize {
    let mut last_direction = 0i32;
    let mut count = 0;
    for pair in values.windows(2) {
        let direction = (pair[1] - pair[0]).signum();
        if direction == 0 {
            continue;
        }
        if last_direction != 0 && direction != last_direction {
            count += 1;
        }
        last_direction = direction;
    }
    count
}

/// The events regarding one ConcurrencyPolicy (events.k8s.io/v1), oldest
/// first.
pub async fn events_for(client: &Client, ns: &str, name: &str) -> Result<Vec<Event>> {
    let mut events: Vec<Event> = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| {
            e.regarding.as_ref().is_some_and(|r| {
                r.kind.as_deref() == Some("ConcurrencyPolicy") && r.name.as_deref() == Some(name)
            })
        })
        .collect();
    events.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
    Ok(events)
}

/// `reason: note` of each event, for messages.
pub fn describe_events(events: &[Event]) -> String {
    events
        .iter()
        .map(|e| {
            format!(
                "{} {} [{}]: {}",
                e.type_.as_deref().unwrap_or("?"),
                e.reason.as_deref().unwrap_or("?"),
                e.reporting_instance.as_deref().unwrap_or("?"),
                e.note.as_deref().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits for an event with `reason` regarding `name` and returns it.
pub async fn wait_for_event(
    client: &Client,
    ns: &str,
    name: &str,
    reason: &str,
    timeout: Duration,
) -> Result<Event> {
    let found = wait_for(
        &format!("a {reason} event on {ns}/{name}"),
        timeout,
        || async {
            Ok(events_for(client, ns, name)
                .await?
                .into_iter()
                .find(|e| e.reason.as_deref() == Some(reason)))
        },
    )
    .await;
    match found {
        Ok(e) => Ok(e),
        Err(e) => {
            let seen = events_for(client, ns, name).await.unwrap_or_default();
            Err(e.context(format!("events seen:\n{}", describe_events(&seen))))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reversals_count_direction_changes_only() {
        assert_eq!(reversals(&[1, 3, 5, 5, 7]), 0);
        assert_eq!(reversals(&[8, 6, 4, 2]), 0);
        assert_eq!(reversals(&[5, 6, 5]), 1);
        assert_eq!(reversals(&[5, 6, 6, 5, 6]), 2);
        assert_eq!(reversals(&[]), 0);
    }

    #[test]
    fn metric_values_are_found_by_exact_series() {
        let text = "# HELP inflight_leader x\ninflight_leader 1\ninflight_leader_x 5\n\
                    inflight_desired_replicas{namespace=\"a\",policy=\"b\"} 4\n";
        assert_eq!(metric_value(text, "inflight_leader"), Some(1.0));
        assert_eq!(
            metric_value(
                text,
                "inflight_desired_replicas{namespace=\"a\",policy=\"b\"}"
            ),
            Some(4.0)
        );
        assert_eq!(metric_value(text, "inflight_missing"), None);
    }
}
