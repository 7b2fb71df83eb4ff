//! The Helm chart on the real bed: `helm install` it, then run the operator
//! out of cluster as the chart's ServiceAccount (a TokenRequest token in a
//! kubeconfig of its own) and prove that the chart's RBAC is enough for a
//! whole scale-up and scale-down with events and status, and that it refuses
//! what the operator must never do: write a Deployment other than through
//! `/scale`, read or list Secrets it was not given.
//!
//! The chart's own Deployment gets pods on the kwok nodes, which never run a
//! process: they only make `helm install --wait` meaningful. The operator
//! that acts is the child process started here, holding the chart's Lease.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use inflight::api::v1alpha1::ConcurrencyPolicy;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::harness::*;
use crate::operator::free_port;

const WORKLOAD: &str = "web";
const POLICY: &str = "web";
/// The policy's ceiling, reached under the test load (see `policy`).
const MAX_REPLICAS: i32 = 3;
/// A Secret in the workload namespace the chart grants nothing on.
const SECRET: &str = "db-credentials";
/// Longest the operator gets to exit after SIGTERM (it releases its Lease).
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Which RBAC the chart renders.
#[derive(Clone, Copy, Debug, PartialEq)]
enum RbacShape {
    /// The default: a ClusterRole and ClusterRoleBinding.
    ClusterWide,
    /// `watchNamespaces: [<workload ns>]`: a Role and RoleBinding there only.
    WatchedNamespace,
}

#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn chart_install_cluster_role_scales_up_and_down_and_denies_the_rest() -> Result<()> {
    chart_install_scenario(RbacShape::ClusterWide).await
}

#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn chart_install_watched_namespace_role_scales_up_and_down_and_denies_the_rest() -> Result<()>
{
    chart_install_scenario(RbacShape::WatchedNamespace).await
}

/// Install the chart, run the operator as its ServiceAccount through a scale
/// up and down, check the refusals, stop it, uninstall.
async fn chart_install_scenario(shape: RbacShape) -> Result<()> {
    let admin = client().await?;
    // Declared first, dropped last: the release is uninstalled before its
    // namespace goes.
    let release_ns = TestNamespace::create(&admin, "inflight-system").await?;
    let workload_ns = TestNamespace::create(&admin, "chart").await?;
    let dir = tempfile::tempdir()?;
    // Cluster-scoped objects (ClusterRole, ClusterRoleBinding) carry the
    // release name: unique, so parallel runs on the shared bed don't collide.
    let release_name = format!("inflight-{}", rand::random::<u32>() % 100_000);
    let started = Instant::now();

    let mut values = json!({});
    if shape == RbacShape::WatchedNamespace {
        values["watchNamespaces"] = json!([workload_ns.name]);
    }
    // The CRD as the code defines it; the chart ships the same file (tests/crd.rs
    // and tests/chart.rs check that), installed with --skip-crds below.
    ensure_crd(&admin).await?;
    let mut release = HelmRelease::install(&release_name, &release_ns.name, values, dir.path())?;
    let cluster_roles = Api::<ClusterRole>::all(admin.clone());
    ensure!(
        cluster_roles.get_opt(&release_name).await?.is_some() == (shape == RbacShape::ClusterWide),
        "{shape:?}: a ClusterRole {release_name} must exist exactly for cluster-wide RBAC"
    );
    let wiring = ChartWiring::read(&admin, &release_ns.name, &release_name).await?;

    // The workload, its load, and a Secret nobody granted.
    create_deployment(&admin, &workload_ns.name, WORKLOAD, 1).await?;
    wait_ready(&admin, &workload_ns.name, WORKLOAD, 1, BED_TIMEOUT).await?;
    let sim = LoadSim::start(
        &workload_ns.name,
        WORKLOAD,
        &json!({"kind": "constant", "rps": 0.0}),
    )?;
    create_secret(&admin, &workload_ns.name, SECRET).await?;

    let kubeconfig = service_account_kubeconfig(
        &admin,
        &release_ns.name,
        &wiring.service_account,
        &dir.path().join("kubeconfig"),
    )
    .await?;
    let as_operator = kubeconfig_client(&kubeconfig).await?;

    let identity = format!("e2e-{release_name}");
    let mut operator = OperatorProcess::start(
        &kubeconfig,
        &[
            "--namespace",
            &workload_ns.name,
            "--lease-namespace",
            &release_ns.name,
            "--lease-name",
            &wiring.lease_name,
            "--identity",
            &identity,
            "--sync-period",
            "1s",
        ],
        &dir.path().join("operator.log"),
    )?;

    let scenario = async {
        denials(&as_operator, &workload_ns.name).await?;
        // Outside the watched namespace a Role grants nothing; a
        // ClusterRole grants reading Deployments everywhere.
        let elsewhere = Api::<Deployment>::namespaced(as_operator.clone(), &release_ns.name)
            .list(&ListParams::default())
            .await;
        match shape {
            RbacShape::ClusterWide => {
                elsewhere.context("a ClusterRole lets the operator list Deployments anywhere")?;
            }
            RbacShape::WatchedNamespace => expect_forbidden(
                "listing Deployments outside the watched namespace",
                elsewhere,
            )?,
        }

        wait_for("the operator to lead", BED_TIMEOUT, || async {
            Ok(lease_holder(&admin, &release_ns.name, &wiring.lease_name)
                .await?
                .filter(|holder| *holder == identity))
        })
        .await?;

        Api::<ConcurrencyPolicy>::namespaced(admin.clone(), &workload_ns.name)
            .create(&PostParams::default(), &policy()?)
            .await
            .context("creating the ConcurrencyPolicy")?;

        // 150 req/s x 100 ms = 15 requests of concurrency; one pod carries
        // at most 10, already 5 times the 2 per pod the policy plans for.
        sim.set_profile(&json!({"kind": "constant", "rps": 150.0}))
            .await?;
        wait_for("a ScaledUp event from the operator", BED_TIMEOUT, || {
            event_from(&admin, &workload_ns.name, "ScaledUp", &identity)
        })
        .await?;
        wait_for(
            "status.desiredReplicas at the maximum",
            BED_TIMEOUT,
            || async {
                let desired = desired_replicas(&admin, &workload_ns.name).await?;
                Ok((desired == Some(MAX_REPLICAS as u32)).then_some(()))
            },
        )
        .await?;
        wait_ready(
            &admin,
            &workload_ns.name,
            WORKLOAD,
            MAX_REPLICAS,
            BED_TIMEOUT,
        )
        .await?;

        sim.set_profile(&json!({"kind": "constant", "rps": 0.0}))
            .await?;
        wait_for("a ScaledDown event from the operator", BED_TIMEOUT, || {
            event_from(&admin, &workload_ns.name, "ScaledDown", &identity)
        })
        .await?;
        wait_for("status.desiredReplicas back at 1", BED_TIMEOUT, || async {
            let desired = desired_replicas(&admin, &workload_ns.name).await?;
            Ok((desired == Some(1)).then_some(()))
        })
        .await?;
        ensure!(
            spec_replicas(&admin, &workload_ns.name, WORKLOAD).await? == 1,
            "the Deployment was not scaled back to 1"
        );

        // A clean stop releases the Lease: update on it is granted too.
        let exit = operator.stop().await?;
        ensure!(exit.success(), "the operator exited with {exit}");
        ensure!(
            lease_holder(&admin, &release_ns.name, &wiring.lease_name).await?
                != Some(identity.clone()),
            "the operator kept holding the Lease after it stopped"
        );
        // Not one request of the run was refused.
        let log = operator.log()?;
        let refused: Vec<&str> = log
            .lines()
            .filter(|line| line.to_ascii_lowercase().contains("forbidden"))
            .collect();
        ensure!(
            refused.is_empty(),
            "the chart's RBAC refused the operator:\n{}",
            refused.join("\n")
        );
        anyhow::Ok(())
    };
    if let Err(e) = scenario.await {
        eprintln!(
            "--- operator log (last 60 lines) ---\n{}",
            operator.log_tail(60)
        );
        return Err(e);
    }

    release.uninstall()?;
    ensure!(
        cluster_roles.get_opt(&release_name).await?.is_none(),
        "helm uninstall left the ClusterRole {release_name} behind"
    );
    ensure!(
        Api::<Role>::namespaced(admin.clone(), &workload_ns.name)
            .get_opt(&release_name)
            .await?
            .is_none(),
        "helm uninstall left the Role {release_name} behind"
    );
    eprintln!("chart_install {shape:?}: {:?}", started.elapsed());
    Ok(())
}

/// What the operator, holding the chart's token, must be refused.
async fn denials(as_operator: &Client, ns: &str) -> Result<()> {
    let deployments = Api::<Deployment>::namespaced(as_operator.clone(), ns);
    // The control: the same client reads /scale, so the refusals below come
    // from RBAC, not from a broken token.
    deployments
        .get_scale(WORKLOAD)
        .await
        .context("the chart's token must read /scale")?;
    expect_forbidden(
        "patching a Deployment's spec (not /scale)",
        deployments
            .patch(
                WORKLOAD,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": 2}})),
            )
            .await,
    )?;
    let secrets = Api::<Secret>::namespaced(as_operator.clone(), ns);
    expect_forbidden("reading a Secret", secrets.get(SECRET).await)?;
    expect_forbidden(
        "listing Secrets in the namespace",
        secrets.list(&ListParams::default()).await,
    )?;
    expect_forbidden(
        "listing Secrets in all namespaces",
        Api::<Secret>::all(as_operator.clone())
            .list(&ListParams::default())
            .await,
    )?;
    Ok(())
}

fn expect_forbidden<T: std::fmt::Debug>(what: &str, result: kube::Result<T>) -> Result<()> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => Ok(()),
        Err(e) => bail!("{what}: expected 403 Forbidden, got {e}"),
        Ok(v) => bail!("{what}: expected 403 Forbidden, but it was allowed: {v:?}"),
    }
}

/// Scales `web` between 1 and 3 on requests in flight (the harness's
/// short-window test policy).
fn policy() -> Result<ConcurrencyPolicy> {
    Ok(serde_json::from_value(fast_policy_json(
        POLICY,
        WORKLOAD,
        MAX_REPLICAS,
    ))?)
}

/// `status.desiredReplicas` of the policy.
async fn desired_replicas(client: &Client, ns: &str) -> Result<Option<u32>> {
    let policy = Api::<ConcurrencyPolicy>::namespaced(client.clone(), ns)
        .get(POLICY)
        .await?;
    Ok(policy.status.and_then(|s| s.desired_replicas))
}

/// `Some` once an event with `reason` about the policy, reported by this
/// operator instance, exists.
async fn event_from(client: &Client, ns: &str, reason: &str, identity: &str) -> Result<Option<()>> {
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(events
        .items
        .iter()
        .any(|e| {
            e.reason.as_deref() == Some(reason)
                && e.reporting_instance.as_deref() == Some(identity)
                && e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("ConcurrencyPolicy")
                        && r.name.as_deref() == Some(POLICY)
                })
        })
        .then_some(()))
}

async fn lease_holder(client: &Client, ns: &str, name: &str) -> Result<Option<String>> {
    Ok(Api::<Lease>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

async fn create_secret(client: &Client, ns: &str, name: &str) -> Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"password": "not-for-the-operator"}
    }))?;
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .with_context(|| format!("creating secret {ns}/{name}"))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Helm.

fn helm() -> PathBuf {
    std::env::var_os("HELM")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("helm"), PathBuf::from)
}

fn run_helm(args: &[&str]) -> Result<String> {
    let output = Command::new(helm()).args(args).output().with_context(|| {
        format!(
            "running helm (PATH from `source {}/env`)",
            bed_dir().display()
        )
    })?;
    if !output.status.success() {
        bail!(
            "helm {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// A release of `charts/inflight`; uninstalled on drop if the test did not.
struct HelmRelease {
    name: String,
    namespace: String,
    installed: bool,
}

impl HelmRelease {
    /// Installs the chart (without its CRD) with its defaults, `values`,
    /// operator pods on the kwok nodes, and the bed's Prometheus. Waits until its Deployment is
    /// available.
    fn install(
        name: &str,
        namespace: &str,
        mut values: serde_json::Value,
        dir: &Path,
    ) -> Result<HelmRelease> {
        let (label, value) = std::env::var("INFLIGHT_KWOK_NODE_SELECTOR")
            .ok()
            .and_then(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .unwrap_or_else(|| ("type".into(), "kwok".into()));
        values["prometheus"] = json!({"url": prometheus_url()});
        values["nodeSelector"] = json!({label: value});
        values["tolerations"] = json!([
            {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
        ]);
        // JSON is YAML.
        let values_file = dir.join("values.yaml");
        std::fs::write(&values_file, values.to_string())?;
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/inflight");
        let values_path = values_file.to_string_lossy();
        run_helm(&[
            "install",
            name,
            chart,
            "--namespace",
            namespace,
            "--values",
            &values_path,
            // Helm 4 server-side applies crds/ even when the CRD exists, and
            // fails on a conflict when the shared bed's CRD (applied by other
            // tests from the code) differs from the chart's copy mid-edit.
            "--skip-crds",
            "--wait=watcher",
            "--timeout",
            "90s",
        ])?;
        Ok(HelmRelease {
            name: name.to_string(),
            namespace: namespace.to_string(),
            installed: true,
        })
    }

    fn uninstall(&mut self) -> Result<()> {
        self.installed = false;
        run_helm(&[
            "uninstall",
            &self.name,
            "--namespace",
            &self.namespace,
            "--wait",
            "--timeout",
            "60s",
        ])?;
        Ok(())
    }
}

impl Drop for HelmRelease {
    fn drop(&mut self) {
        if self.installed {
            let _ = self.uninstall();
        }
    }
}

/// What the installed chart tells the operator: its ServiceAccount and the
/// Lease it elects on, read from the chart's own Deployment.
struct ChartWiring {
    service_account: String,
    lease_name: String,
}

impl ChartWiring {
    async fn read(client: &Client, ns: &str, deployment: &str) -> Result<ChartWiring> {
        let d = Api::<Deployment>::namespaced(client.clone(), ns)
            .get(deployment)
            .await
            .with_context(|| format!("the chart's Deployment {ns}/{deployment}"))?;
        let pod = d
            .spec
            .template
            .spec
            .context("the chart's Deployment has a pod spec")?;
        let service_account = pod
            .service_account_name
            .clone()
            .context("the chart's pods name a ServiceAccount")?;
        let lease_name = pod
            .containers
            .iter()
            .flat_map(|c| c.args.iter().flatten())
            .find_map(|a| a.strip_prefix("--lease-name="))
            .map(str::to_string)
            .context("the chart passes --lease-name")?;
        Ok(ChartWiring {
            service_account,
            lease_name,
        })
    }
}

// ---------------------------------------------------------------------------
// The ServiceAccount's own kubeconfig.

/// Writes a kubeconfig for `namespace/service_account` to `path`: the bed's
/// server and CA, and a one-hour token from the TokenRequest API.
async fn service_account_kubeconfig(
    admin: &Client,
    namespace: &str,
    service_account: &str,
    path: &Path,
) -> Result<PathBuf> {
    let request: TokenRequest = serde_json::from_value(json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {"expirationSeconds": 3600}
    }))?;
    let token = Api::<ServiceAccount>::namespaced(admin.clone(), namespace)
        .create_token_request(service_account, &PostParams::default(), &request)
        .await
        .with_context(|| format!("a token for {namespace}/{service_account}"))?
        .status
        .context("the TokenRequest has a status")?
        .token;

    let admin_config = Kubeconfig::read().context("reading the bed's kubeconfig")?;
    let context_name = admin_config
        .current_context
        .clone()
        .context("the bed's kubeconfig has a current context")?;
    let cluster_name = admin_config
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone())
        .context("the current context names a cluster")?;
    let cluster = admin_config
        .clusters
        .iter()
        .find(|c| c.name == cluster_name)
        .and_then(|c| c.cluster.as_ref())
        .context("the current cluster is defined")?;
    let mut cluster_json = json!({"server": cluster.server});
    if let Some(ca) = &cluster.certificate_authority_data {
        cluster_json["certificate-authority-data"] = json!(ca);
    }
    if let Some(ca) = &cluster.certificate_authority {
        cluster_json["certificate-authority"] = json!(ca);
    }
    let user = format!("system:serviceaccount:{namespace}:{service_account}");
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name, "cluster": cluster_json}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": cluster_name, "user": user}}],
        "current-context": "operator"
    });
    std::fs::write(path, kubeconfig.to_string())?;
    Ok(path.to_path_buf())
}

async fn kubeconfig_client(path: &Path) -> Result<Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

// ---------------------------------------------------------------------------
// The operator as a child process.

/// `inflight run` with leader election, logging JSON to a file; killed on
/// drop if still running.
struct OperatorProcess {
    child: Child,
    log_path: PathBuf,
}

impl OperatorProcess {
    fn start(kubeconfig: &Path, extra: &[&str], log_path: &Path) -> Result<OperatorProcess> {
        let port = free_port()?;
        let log = std::fs::File::create(log_path)?;
        let child = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--prometheus-url", &prometheus_url()])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--log-format", "json", "--log-level", "info,inflight=debug"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting inflight run")?;
        Ok(OperatorProcess {
            child,
            log_path: log_path.to_path_buf(),
        })
    }

    /// SIGTERM, then wait for the exit (SIGKILL after `STOP_TIMEOUT`).
    async fn stop(&mut self) -> Result<ExitStatus> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the operator had already exited with {status}");
        }
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status()?;
        ensure!(sent.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                bail!("the operator did not stop within {STOP_TIMEOUT:?} of SIGTERM");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log(&self) -> Result<String> {
        Ok(std::fs::read_to_string(&self.log_path)?)
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = self.log().unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
