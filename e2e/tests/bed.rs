//! Proves the bed itself: the CRD and its CEL rules, Deployments that get
//! Ready pods after the configured delay, and loadsim's metrics in Prometheus.
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::harness::*;

fn policy_api(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("inflight.dev", "v1alpha1", "ConcurrencyPolicy");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

fn policy(name: &str, min: i64, max: i64, per_pod: f64) -> Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "inflight.dev/v1alpha1",
        "kind": "ConcurrencyPolicy",
        "metadata": {"name": name},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": min,
            "maxReplicas": max,
            "metrics": {"inFlight": {"query": "sum(http_requests_in_flight{namespace=\"{{namespace}}\"})"}},
            "target": {"concurrencyPerPod": per_pod}
        }
    }))?)
}

#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn crd_applies_and_valid_policy_gets_defaults() -> Result<()> {
    let client = client().await?;
    ensure_crd(&client).await?;
    let ns = TestNamespace::create(&client, "crd").await?;
    let created = policy_api(&client, &ns.name)
        .create(&PostParams::default(), &policy("ok", 1, 10, 10.0)?)
        .await
        .context("a valid policy must be accepted")?;
    // The schema's defaults are filled in by the API server.
    let spec = &created.data["spec"];
    assert_eq!(spec["mode"], "Enforce", "mode defaults to Enforce: {spec}");
    assert_eq!(
        spec["target"]["utilization"], 0.8,
        "utilization default: {spec}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn invalid_policies_are_refused_with_clear_messages() -> Result<()> {
    let client = client().await?;
    ensure_crd(&client).await?;
    let ns = TestNamespace::create(&client, "cel").await?;
    let api = policy_api(&client, &ns.name);
    // An arrival rate is only concurrency once multiplied by a service time.
    let mut arrivals_alone = policy("d", 1, 10, 10.0)?;
    arrivals_alone.data["spec"]["metrics"]["arrivalRate"] =
        json!({"query": "sum(rate(loadsim_arrivals_total{namespace=\"{{namespace}}\"}[5s]))"});
    let cases = [
        ("min-over-max", policy("a", 5, 2, 10.0)?, "minReplicas"),
        ("zero-target", policy("b", 1, 10, 0.0)?, "concurrencyPerPod"),
        (
            "arrival-rate-without-service-time",
            arrivals_alone,
            "metrics.arrivalRate needs target.serviceTime",
        ),
    ];
    for (case, obj, must_mention) in cases {
        let err = api
            .create(&PostParams::default(), &obj)
            .await
            .err()
            .with_context(|| format!("{case}: the API server accepted an invalid policy"))?;
        let message = err.to_string();
        assert!(
            message.contains(must_mention),
            "{case}: unclear message: {message}"
        );
    }
    let mut bad_duration = policy("c", 1, 10, 10.0)?;
    bad_duration.data["spec"]["queueDrainTime"] = json!("soon");
    let message = api
        .create(&PostParams::default(), &bad_duration)
        .await
        .err()
        .context("an unparseable duration was accepted")?
        .to_string();
    assert!(
        message.contains("queueDrainTime"),
        "unclear message: {message}"
    );
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn deployment_pods_become_ready_after_the_configured_delay() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::create(&client, "pods").await?;
    let delay = pod_ready_delay();
    let started = Instant::now();
    create_deployment(&client, &ns.name, "web", 2).await?;
    wait_ready(&client, &ns.name, "web", 2, BED_TIMEOUT).await?;
    let took = started.elapsed();
    assert!(
        took >= delay,
        "pods were Ready after {took:?}, before the configured delay {delay:?}"
    );

    // Scaled by hand, as an operator would through /scale.
    let api = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await?;
    wait_ready(&client, &ns.name, "web", 4, BED_TIMEOUT).await?;
    Ok(())
}

#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn loadsim_in_flight_follows_ready_replicas_in_prometheus() -> Result<()> {
    let client = client().await?;
    let ns = TestNamespace::create(&client, "loadsim").await?;
    create_deployment(&client, &ns.name, "web", 1).await?;
    wait_ready(&client, &ns.name, "web", 1, BED_TIMEOUT).await?;
    // 150 req/s x 0.1 s = 15 requests of concurrency offered. One pod serves
    // at most 10 at a time, so in flight is capped at 10 and a queue builds;
    // three pods serve all 15 with no queue.
    let load = json!({"kind": "constant", "rps": 150.0});
    let _sim = LoadSim::start(&ns.name, "web", &load)?;
    let in_flight = format!("sum(http_requests_in_flight{{namespace=\"{}\"}})", ns.name);
    let queue = format!("sum(http_queue_depth{{namespace=\"{}\"}})", ns.name);
    wait_for(
        "in flight capped at one pod's limit",
        BED_TIMEOUT,
        || async {
            Ok(prom_value(&in_flight)
                .await?
                .filter(|v| (*v - 10.0).abs() < 0.5))
        },
    )
    .await?;
    wait_for("a queue to build on one pod", BED_TIMEOUT, || async {
        Ok(prom_value(&queue).await?.filter(|v| *v > 5.0))
    })
    .await?;

    let api = Api::<Deployment>::namespaced(client.clone(), &ns.name);
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 3}})),
    )
    .await?;
    wait_ready(&client, &ns.name, "web", 3, BED_TIMEOUT).await?;
    wait_for(
        "in flight to reach the offered 15 on three pods",
        BED_TIMEOUT,
        || async {
            Ok(prom_value(&in_flight)
                .await?
                .filter(|v| (*v - 15.0).abs() < 3.0))
        },
    )
    .await?;
    wait_for("the queue to drain", BED_TIMEOUT, || async {
        Ok(prom_value(&queue).await?.filter(|v| *v < 1.0))
    })
    .await?;
    Ok(())
}

/// The bed's configured pod start-up delay (INFLIGHT_POD_READY_DELAY, default 3s).
fn pod_ready_delay() -> Duration {
    std::env::var("INFLIGHT_POD_READY_DELAY")
        .ok()
        .and_then(|s| humantime::parse_duration(&s).ok())
        .unwrap_or(Duration::from_secs(3))
}
