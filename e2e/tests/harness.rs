//! Shared helpers for the end-to-end tests on the local bed (`make e2e`).
//!
//! The bed (e2e/cluster/up.sh) writes `$INFLIGHT_BED_DIR/env`, which exports
//! KUBECONFIG and PROMETHEUS_URL; `make e2e-run` sources it. Each scenario
//! gets its own namespace, deleted when the scenario's guard drops.
#![allow(dead_code)]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

pub const BED_TIMEOUT: Duration = Duration::from_secs(60);

pub fn bed_dir() -> PathBuf {
    std::env::var_os("INFLIGHT_BED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/inflight-bed"))
}

pub fn prometheus_url() -> String {
    std::env::var("PROMETHEUS_URL").unwrap_or_else(|_| "http://127.0.0.1:19090".to_string())
}

/// A client for the bed's API server. Fails with a hint when the bed is down.
pub async fn client() -> Result<Client> {
    if std::env::var_os("KUBECONFIG").is_none() {
        bail!(
            "KUBECONFIG is not set: run `make cluster-up` and `source {}/env`",
            bed_dir().display()
        );
    }
    Client::try_default()
        .await
        .context("connecting to the bed's API server")
}

/// Polls `check` every 250 ms until it yields `Some`, or fails after `timeout`
/// naming what it waited for and the last value it saw.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() >= deadline {
            return Err(anyhow!(
                "timed out after {timeout:?} waiting for {what}{}",
                last_error
                    .map(|e| format!(" (last error: {e:#})"))
                    .unwrap_or_default()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace of one scenario; deleted (without waiting) on drop.
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    pub async fn create(client: &Client, scenario: &str) -> Result<TestNamespace> {
        let suffix: u32 = rand::random::<u32>() % 100_000;
        let name = format!("e2e-{scenario}-{suffix:05}");
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))?;
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .with_context(|| format!("creating namespace {name}"))?;
        Ok(TestNamespace { name })
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await: delete from a short-lived runtime on its own
        // thread, with its own client (a client's worker task lives on the
        // runtime that made it, which is blocked here).
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Runtime::new() {
                rt.block_on(async move {
                    if let Ok(client) = Client::try_default().await {
                        let _ = Api::<Namespace>::all(client)
                            .delete(&name, &DeleteParams::background())
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A Deployment whose pods land on the bed's kwok nodes (which become Ready
/// after the bed's configured delay).
pub fn deployment(name: &str, replicas: i32) -> Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "nodeSelector": {"type": "kwok"},
                    "tolerations": [{"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}],
                    "containers": [{"name": "app", "image": "registry.invalid/app:fake"}]
                }
            }
        }
    }))?)
}

pub async fn create_deployment(
    client: &Client,
    ns: &str,
    name: &str,
    replicas: i32,
) -> Result<Deployment> {
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &deployment(name, replicas)?)
        .await
        .with_context(|| format!("creating deployment {ns}/{name}"))
}

pub async fn ready_replicas(client: &Client, ns: &str, name: &str) -> Result<i32> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(d.status.and_then(|s| s.ready_replicas).unwrap_or(0))
}

pub async fn spec_replicas(client: &Client, ns: &str, name: &str) -> Result<i32> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await?;
    Ok(d.spec.replicas.unwrap_or(1))
}

/// Waits until the Deployment has exactly `n` ready replicas.
pub async fn wait_ready(
    client: &Client,
    ns: &str,
    name: &str,
    n: i32,
    timeout: Duration,
) -> Result<()> {
    wait_for(
        &format!("{ns}/{name} to have {n} ready replicas"),
        timeout,
        || async { Ok((ready_replicas(client, ns, name).await? == n).then_some(())) },
    )
    .await
}

/// One instant PromQL query against the bed's Prometheus; `None` when empty.
pub async fn prom_value(query: &str) -> Result<Option<f64>> {
    prom_value_at(&prometheus_url(), query).await
}

/// One instant PromQL query against the Prometheus at `url`; `None` when
/// empty.
pub async fn prom_value_at(url: &str, query: &str) -> Result<Option<f64>> {
    let client = prometheus_http_query::Client::try_from(url)?;
    let response = client.query(query).get().await?;
    Ok(response
        .data()
        .as_vector()
        .and_then(|v| v.first())
        .map(|s| s.sample().value()))
}

/// A running `loadsim` process serving metrics for one Deployment, registered
/// as a scrape target of the bed's Prometheus. Killed and unregistered on drop.
pub struct LoadSim {
    child: Child,
    pub addr: String,
    target_file: PathBuf,
}

impl LoadSim {
    pub fn start(ns: &str, deployment: &str, profile: &serde_json::Value) -> Result<LoadSim> {
        start_loadsim_with(ns, deployment, profile, &[])
    }

    /// Replaces the arrival profile (loadsim's `PUT /profile`).
    pub async fn set_profile(&self, profile: &serde_json::Value) -> Result<()> {
        inflight::tls::install_crypto_provider();
        let response = reqwest::Client::new()
            .put(format!("http://{}/profile", self.addr))
            .json(profile)
            .send()
            .await?;
        if !response.status().is_success() {
            bail!(
                "loadsim refused the profile: {}",
                response.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}

impl Drop for LoadSim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.target_file);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Applies the CRD (server-side, as `kubectl apply --server-side` would) and
/// waits until the API server reports it Established.
pub async fn ensure_crd(client: &Client) -> Result<()> {
    apply_crd(client, &inflight::api::crd()).await
}

/// Applies any CRD server-side and waits until it is Established.
pub async fn apply_crd(
    client: &Client,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{Patch, PatchParams};
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let name = crd.metadata.name.clone().context("the CRD has a name")?;
    crds.patch(
        &name,
        &PatchParams::apply("inflight-e2e").force(),
        &Patch::Apply(crd),
    )
    .await
    .with_context(|| format!("applying the CRD {name}"))?;
    wait_for(
        &format!("the CRD {name} to be Established"),
        BED_TIMEOUT,
        || async {
            let crd = crds.get(&name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await
}

/// Like [`LoadSim::start`], with extra loadsim flags (e.g. `--service-time
/// 500ms`, `--per-pod-limit 1000`).
pub fn start_loadsim_with(
    ns: &str,
    deployment: &str,
    profile: &serde_json::Value,
    extra_args: &[&str],
) -> Result<LoadSim> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadsim"))
        .args([
            "--namespace",
            ns,
            "--deployment",
            deployment,
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--profile")
        .arg(profile.to_string())
        .args(extra_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting loadsim")?;
    let stdout = child.stdout.take().context("loadsim stdout")?;
    let mut addr = None;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(a) = line.strip_prefix("listening on ") {
            addr = Some(a.trim().to_string());
            break;
        }
    }
    let Some(addr) = addr else {
        let _ = child.kill();
        bail!("loadsim exited without printing its address");
    };
    let targets = bed_dir().join("prometheus/targets");
    std::fs::create_dir_all(&targets)?;
    let target_file = targets.join(format!("loadsim-{ns}-{deployment}.json"));
    let sd = serde_json::json!([{"targets": [addr], "labels": {"job": "loadsim", "scenario": ns}}]);
    // Write then rename, so Prometheus never reads half a file.
    let tmp = target_file.with_extension("tmp");
    std::fs::write(&tmp, sd.to_string())?;
    std::fs::rename(&tmp, &target_file)?;
    Ok(LoadSim {
        child,
        addr,
        target_file,
    })
}

/// The JSON of a policy scaling `workload` between 1 and `max_replicas` on
/// requests in flight, 2 per pod, with windows short enough for a test: the
/// stable path only (no panic, no forecast), no stabilization on the way up,
/// 2 s on the way down. Callers add fields (e.g. `spec.limits`).
pub fn fast_policy_json(name: &str, workload: &str, max_replicas: i32) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "inflight.dev/v1alpha1",
        "kind": "ConcurrencyPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": workload},
            "minReplicas": 1,
            "maxReplicas": max_replicas,
            "metrics": {"inFlight": {"query":
                "sum(http_requests_in_flight{namespace=\"{{namespace}}\",deployment=\"{{name}}\"})"}},
            "target": {"concurrencyPerPod": 2.0, "utilization": 1.0},
            "smoothing": {"halfLife": "1s"},
            "prediction": {"enabled": false},
            "behavior": {
                "panic": {"window": "1s", "threshold": 1000.0},
                "scaleUp": {"stabilizationWindow": "0s", "period": "1s"},
                "scaleDown": {"stabilizationWindow": "2s", "period": "1s", "maxStep": {"percent": 100}},
                "reverseCooldown": "0s"
            }
        }
    })
}
