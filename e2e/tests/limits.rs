//! The service's concurrency limits (`spec.limits`) on the real bed: sinks
//! that follow perPod and total through a scale-up and a scale-down in the
//! right order, an adaptive limit that finds the knee of loadsim's latency
//! curve, and sinks that are missing or forbidden while scaling goes on.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use inflight::api::v1alpha1::ConcurrencyPolicy;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::harness::*;

const WORKLOAD: &str = "web";
const POLICY: &str = "web";
const CONFIG_MAP: &str = "web-limits";
/// The limit of one pod in the sink scenarios.
const PER_POD: i64 = 5;
/// The stand-in for an Istio DestinationRule (a CRD of the same shape, so
/// the bed needs no Istio).
const DR_GROUP: &str = "limits.e2e.inflight.dev";
const DR_POINTER: &str = "/spec/trafficPolicy/connectionPool/http/http2MaxRequests";
const ANNOTATION: &str = "limits.e2e.inflight.dev/total";
/// Longest wait for a scale, a write or an event.
const STEP_TIMEOUT: Duration = Duration::from_secs(90);

/// A ConfigMap sink (perPod and total, two keys of one ConfigMap, next to a
/// key someone else owns), a field sink on a DestinationRule-shaped custom
/// resource (total) and an annotation on the target (total) follow a
/// scale-up from 1 to 3 and back. A sampler reads the Deployment, the
/// field, and the Deployment again, continuously: the total never exceeds
/// perPod x the Ready pods (read after it: it rises only once pods are
/// Ready) nor perPod x the replicas (read before it: it falls before the
/// replicas do).
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn sinks_follow_per_pod_and_total_through_a_scale_up_and_down_in_order() -> Result<()> {
    let client = client().await?;
    ensure_crd(&client).await?;
    let dr = ensure_destination_rule_crd(&client).await?;
    let ns_guard = TestNamespace::create(&client, "limits").await?;
    let ns = ns_guard.name.clone();
    let dir = tempfile::tempdir()?;

    create_deployment(&client, &ns, WORKLOAD, 1).await?;
    wait_ready(&client, &ns, WORKLOAD, 1, BED_TIMEOUT).await?;
    let sim = LoadSim::start(&ns, WORKLOAD, &json!({"kind": "constant", "rps": 0.0}))?;
    create_config_map(&client, &ns, CONFIG_MAP, json!({"owner": "someone-else"})).await?;
    let drs = Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &dr);
    drs.create(
        &PostParams::default(),
        &serde_json::from_value(json!({
            "apiVersion": format!("{DR_GROUP}/v1"),
            "kind": "DestinationRule",
            "metadata": {"name": WORKLOAD},
            "spec": {
                "host": WORKLOAD,
                // A stale limit the operator takes over.
                "trafficPolicy": {"connectionPool": {"http": {"http2MaxRequests": 1000, "maxRequestsPerConnection": 7}}},
                "subsets": [{"name": "v1"}],
            }
        }))?,
    )
    .await
    .context("creating the DestinationRule")?;

    let operator = OperatorProcess::start(&ns, None, dir.path())?;
    let scenario = async {
        create_policy(&client, &ns, sink_policy()?).await?;

        // First sync: everything at one pod's worth.
        wait_for("the sinks at one pod", STEP_TIMEOUT, || async {
            let cm = config_map_data(&client, &ns, CONFIG_MAP).await?;
            let total = field_total(&drs).await?;
            Ok((cm.get("maxConcurrency").map(String::as_str) == Some("5")
                && cm.get("totalConcurrency").map(String::as_str) == Some("5")
                && total == Some(PER_POD))
            .then_some(()))
        })
        .await?;
        // The status is written after the sinks: wait for it.
        wait_for("LimitsSynced=True", STEP_TIMEOUT, || async {
            let status = get_policy(&client, &ns).await?.status.context("status")?;
            ensure!(
                condition(&status.conditions, "LimitsSynced")
                    == Some(("True".into(), "Synced".into())),
                "LimitsSynced: {:?}",
                status.conditions
            );
            Ok(Some(()))
        })
        .await?;

        let sampler = Sampler::start(client.clone(), ns.clone(), drs.clone());
        sim.set_profile(&json!({"kind": "constant", "rps": 150.0}))
            .await?;
        wait_ready(&client, &ns, WORKLOAD, 3, STEP_TIMEOUT).await?;
        wait_for("the total at 3 Ready pods", STEP_TIMEOUT, || async {
            Ok((field_total(&drs).await? == Some(3 * PER_POD)).then_some(()))
        })
        .await?;

        sim.set_profile(&json!({"kind": "constant", "rps": 0.0}))
            .await?;
        wait_for("the scale-down to 1", STEP_TIMEOUT, || async {
            Ok((spec_replicas(&client, &ns, WORKLOAD).await? == 1
                && ready_replicas(&client, &ns, WORKLOAD).await? == 1)
                .then_some(()))
        })
        .await?;
        wait_for("the total back at 5", STEP_TIMEOUT, || async {
            Ok((field_total(&drs).await? == Some(PER_POD)).then_some(()))
        })
        .await?;
        let samples = sampler.stop().await?;
        check_order(&samples)?;

        // The other sinks followed too, and took nothing else.
        let cm = config_map_data(&client, &ns, CONFIG_MAP).await?;
        ensure!(
            cm.get("owner").map(String::as_str) == Some("someone-else"),
            "{cm:?}"
        );
        ensure!(
            cm.get("maxConcurrency").map(String::as_str) == Some("5")
                && cm.get("totalConcurrency").map(String::as_str) == Some("5"),
            "{cm:?}"
        );
        let owned = fields_owned_by_inflight(
            Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get(CONFIG_MAP)
                .await?
                .metadata
                .managed_fields,
        );
        ensure!(
            owned == json!({"f:data": {"f:maxConcurrency": {}, "f:totalConcurrency": {}}}),
            "inflight owns {owned} of the ConfigMap"
        );
        let live = drs.get(WORKLOAD).await?;
        ensure!(
            live.data["spec"]["trafficPolicy"]["connectionPool"]["http"]["maxRequestsPerConnection"]
                == json!(7)
                && live.data["spec"]["subsets"] == json!([{"name": "v1"}]),
            "the rest of the DestinationRule changed: {}",
            live.data["spec"]
        );
        let deployment = Api::<Deployment>::namespaced(client.clone(), &ns)
            .get(WORKLOAD)
            .await?;
        ensure!(
            deployment
                .metadata
                .annotations
                .unwrap_or_default()
                .get(ANNOTATION)
                .map(String::as_str)
                == Some("5"),
            "the annotation sink on the target"
        );

        // Events with old and new values, and the status per sink. Both
        // follow the last write they report: wait for them.
        let written_to = format!(
            "written to ConfigMap {CONFIG_MAP} key maxConcurrency, ConfigMap {CONFIG_MAP} key \
             totalConcurrency, DestinationRule {WORKLOAD} {DR_POINTER}, Deployment {WORKLOAD} \
             annotation {ANNOTATION}"
        );
        let dr_sink = format!("DestinationRule {WORKLOAD} {DR_POINTER}");
        let annotation_sink = format!("Deployment {WORKLOAD} annotation {ANNOTATION}");
        wait_for("the LimitsUpdated events", STEP_TIMEOUT, || async {
            let notes = event_notes(&client, &ns, "LimitsUpdated").await?;
            ensure!(
                notes.contains(&format!("perPod 5, total 5 (1 pod); {written_to}"))
                    && notes.iter().any(|n| n.starts_with("perPod 5, total 5 -> "))
                    && notes
                        .iter()
                        .any(|n| n.ends_with(&format!(" -> 5 (1 pod); {written_to}"))),
                "LimitsUpdated notes: {notes:#?}"
            );
            Ok(Some(()))
        })
        .await?;
        wait_for("status.limits at one pod", STEP_TIMEOUT, || async {
            let status = get_policy(&client, &ns).await?.status.context("status")?;
            let limits = status.limits.context("status.limits")?;
            ensure!(
                (limits.per_pod, limits.total, limits.pods) == (5, 5, 1),
                "{limits:?}"
            );
            let sinks: Vec<(&str, Option<u32>, &str)> = limits
                .sinks
                .iter()
                .map(|s| (s.sink.as_str(), s.value, s.state.as_str()))
                .collect();
            ensure!(
                sinks
                    == vec![
                        ("ConfigMap web-limits key maxConcurrency", Some(5), "Synced"),
                        (
                            "ConfigMap web-limits key totalConcurrency",
                            Some(5),
                            "Synced"
                        ),
                        (dr_sink.as_str(), Some(5), "Synced"),
                        (annotation_sink.as_str(), Some(5), "Synced"),
                    ],
                "status.limits.sinks: {sinks:#?}"
            );
            Ok(Some(()))
        })
        .await?;
        anyhow::Ok(())
    };
    let result = scenario.await;
    if result.is_err() {
        operator.print_log_tail();
    }
    result
}

/// One ConfigMap sink is missing, another is forbidden (the operator runs
/// as a ServiceAccount that may get ConfigMaps, and patch only the missing
/// one): Warning
/// events, LimitsSynced=False, the status says which; the target still
/// scales. Creating the missing ConfigMap heals that sink.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn missing_and_forbidden_sinks_warn_and_scaling_goes_on() -> Result<()> {
    let client = client().await?;
    ensure_crd(&client).await?;
    let ns_guard = TestNamespace::create(&client, "limits-rbac").await?;
    let ns = ns_guard.name.clone();
    let dir = tempfile::tempdir()?;

    create_deployment(&client, &ns, WORKLOAD, 1).await?;
    wait_ready(&client, &ns, WORKLOAD, 1, BED_TIMEOUT).await?;
    let sim = LoadSim::start(&ns, WORKLOAD, &json!({"kind": "constant", "rps": 0.0}))?;
    create_config_map(&client, &ns, "present-limits", json!({})).await?;
    let kubeconfig = limited_operator_identity(&client, &ns, dir.path()).await?;

    let operator = OperatorProcess::start(&ns, Some(&kubeconfig), dir.path())?;
    let scenario = async {
        let mut policy = sink_policy()?;
        policy.spec.limits = serde_json::from_value(json!({
            "perPod": PER_POD,
            "sinks": [
                {"configMap": {"name": "missing-limits", "key": "max"}},
                {"configMap": {"name": "present-limits", "key": "max"}},
            ]
        }))?;
        create_policy(&client, &ns, policy).await?;

        wait_for(
            "a LimitsSinkFailed event per sink",
            STEP_TIMEOUT,
            || async {
                let notes = event_notes(&client, &ns, "LimitsSinkFailed").await?;
                let missing = notes
                    .iter()
                    .any(|n| n.starts_with("ConfigMap missing-limits key max: NotFound: "));
                let forbidden = notes
                    .iter()
                    .any(|n| n.starts_with("ConfigMap present-limits key max: Forbidden: "));
                Ok((missing && forbidden).then_some(()))
            },
        )
        .await?;
        wait_for(
            "LimitsSynced naming the missing sink",
            STEP_TIMEOUT,
            || async {
                let status = get_policy(&client, &ns).await?.status.context("status")?;
                Ok((condition(&status.conditions, "LimitsSynced")
                    == Some(("False".into(), "SinkNotFound".into())))
                .then_some(()))
            },
        )
        .await?;
        let status = get_policy(&client, &ns).await?.status.context("status")?;
        let states: Vec<String> = status
            .limits
            .context("status.limits")?
            .sinks
            .iter()
            .map(|s| s.state.clone())
            .collect();
        ensure!(states == ["NotFound", "Forbidden"], "{states:?}");
        ensure!(
            config_map_data(&client, &ns, "present-limits")
                .await?
                .is_empty(),
            "the forbidden ConfigMap was written"
        );

        // Scaling goes on.
        sim.set_profile(&json!({"kind": "constant", "rps": 150.0}))
            .await?;
        wait_for("the scale-up to 3", STEP_TIMEOUT, || async {
            Ok((spec_replicas(&client, &ns, WORKLOAD).await? == 3).then_some(()))
        })
        .await?;
        // The event follows the patch it reports.
        wait_for("a ScaledUp event", STEP_TIMEOUT, || async {
            Ok((!event_notes(&client, &ns, "ScaledUp").await?.is_empty()).then_some(()))
        })
        .await?;

        // The missing ConfigMap appears: the next ticks write it.
        create_config_map(&client, &ns, "missing-limits", json!({})).await?;
        wait_for("the healed sink", STEP_TIMEOUT, || async {
            let data = config_map_data(&client, &ns, "missing-limits").await?;
            Ok((data.get("max").map(String::as_str) == Some("5")).then_some(()))
        })
        .await?;
        wait_for(
            "LimitsSynced naming the forbidden sink",
            STEP_TIMEOUT,
            || async {
                let status = get_policy(&client, &ns).await?.status.context("status")?;
                Ok((condition(&status.conditions, "LimitsSynced")
                    == Some(("False".into(), "SinkForbidden".into())))
                .then_some(()))
            },
        )
        .await?;
        anyhow::Ok(())
    };
    let result = scenario.await;
    if result.is_err() {
        operator.print_log_tail();
    }
    result
}

/// loadsim's service time grows past 20 requests per pod (`--knee-concurrency
/// 20 --knee-slope 0.5`). The policy has no concurrencyPerPod: the pods are
/// planned for the adaptive limit itself (utilization 1), which starts at 12
/// and must settle within 20% of the knee (16..24). With tolerance 1.05 the
/// fixed point is 20 x (1 + 0.05 / 0.5) = 22.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn the_adaptive_limit_settles_near_the_knee_of_the_latency_curve() -> Result<()> {
    const KNEE: f64 = 20.0;
    const RPS: f64 = 2000.0;
    let client = client().await?;
    ensure_crd(&client).await?;
    let ns_guard = TestNamespace::create(&client, "limits-adaptive").await?;
    let ns = ns_guard.name.clone();
    let dir = tempfile::tempdir()?;

    // 2000 req/s x 100 ms = 200 in flight: 14 pods carry 14 each, well
    // below the knee, so the first latency the policy sees is the baseline.
    create_deployment(&client, &ns, WORKLOAD, 14).await?;
    wait_ready(&client, &ns, WORKLOAD, 14, BED_TIMEOUT).await?;
    let _sim = start_loadsim_with(
        &ns,
        WORKLOAD,
        &json!({"kind": "constant", "rps": RPS}),
        &[
            "--knee-concurrency",
            "20",
            "--knee-slope",
            "0.5",
            "--per-pod-limit",
            "1000",
        ],
    )?;
    create_config_map(&client, &ns, CONFIG_MAP, json!({})).await?;
    let latency = latency_query(&ns);
    wait_for("loadsim's latency at its baseline", BED_TIMEOUT, || async {
        Ok(prom_value(&latency)
            .await?
            .filter(|l| (0.095..0.105).contains(l)))
    })
    .await?;

    let operator = OperatorProcess::start(&ns, None, dir.path())?;
    let scenario = async {
        create_policy(&client, &ns, adaptive_policy(&latency_template())?).await?;
        // Watch status.limits.perPod once a second. Settled: for a minute
        // within 20% of the knee, and over its last half no longer moving
        // (a spread of at most 2), so a ramp passing through does not count.
        const WINDOW: usize = 60;
        const STILL: usize = 30;
        let inside = |limit: u32| (0.8 * KNEE..=1.2 * KNEE).contains(&f64::from(limit));
        let started = Instant::now();
        let mut history: Vec<(u64, u32, u32, Option<f64>)> = Vec::new();
        loop {
            let status = get_policy(&client, &ns).await?.status;
            if let Some(l) = status.and_then(|s| s.limits) {
                history.push((
                    started.elapsed().as_secs(),
                    l.per_pod,
                    l.pods,
                    l.adaptive.as_ref().and_then(|a| a.latency_seconds),
                ));
            }
            let recent: Vec<u32> = history.iter().rev().take(WINDOW).map(|h| h.1).collect();
            let still = &recent[..recent.len().min(STILL)];
            let spread = still
                .iter()
                .max()
                .zip(still.iter().min())
                .map(|(a, b)| a - b);
            if recent.len() == WINDOW && recent.iter().all(|l| inside(*l)) && spread <= Some(2) {
                break;
            }
            if started.elapsed() > Duration::from_secs(360) {
                bail!(
                    "the adaptive limit did not settle within 20% of {KNEE}: \
                     (secs, perPod, pods, latency) {history:?}"
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let status = get_policy(&client, &ns).await?.status.context("status")?;
        let limits = status.limits.context("status.limits")?;
        let adaptive = limits.adaptive.context("status.limits.adaptive")?;
        let baseline = adaptive.baseline_seconds.context("a baseline")?;
        ensure!(
            (0.095..0.105).contains(&baseline),
            "the learned baseline {baseline} is not loadsim's 100 ms"
        );
        // It found the knee by latency: the operating point sits past it,
        // near tolerance x baseline.
        let latency = adaptive.latency_seconds.context("a latency")?;
        ensure!(
            (1.0..=1.2).contains(&(latency / baseline)),
            "latency {latency} against baseline {baseline}"
        );
        // The ConfigMap follows the limit, and the limit drives the target.
        let data = config_map_data(&client, &ns, CONFIG_MAP).await?;
        let written: u32 = data
            .get("maxConcurrency")
            .context("maxConcurrency")?
            .parse()?;
        ensure!(
            (0.8 * KNEE..=1.2 * KNEE).contains(&f64::from(written)),
            "ConfigMap holds {written}"
        );
        let replicas = spec_replicas(&client, &ns, WORKLOAD).await?;
        ensure!(
            (8..=14).contains(&replicas),
            "{replicas} replicas for 200 in flight at a limit near {KNEE}"
        );
        ensure!(
            !event_notes(&client, &ns, "LimitsUpdated").await?.is_empty(),
            "no LimitsUpdated event"
        );
        eprintln!(
            "adaptive limit settled at {} after {}s (knee {KNEE}), latency {latency}",
            limits.per_pod,
            started.elapsed().as_secs()
        );
        anyhow::Ok(())
    };
    let result = scenario.await;
    if result.is_err() {
        operator.print_log_tail();
    }
    result
}

// ---------------------------------------------------------------------------
// Policies.

/// Scales `web` between 1 and 3 at 2 requests per pod (as chart_install
/// does), with limits of 5 per pod written to four sinks.
fn sink_policy() -> Result<ConcurrencyPolicy> {
    let mut policy = fast_policy_json(POLICY, WORKLOAD, 3);
    policy["spec"]["limits"] = json!({
        "perPod": PER_POD,
        "sinks": [
            {"configMap": {"name": CONFIG_MAP, "key": "maxConcurrency"}},
            {"configMap": {"name": CONFIG_MAP, "key": "totalConcurrency"}, "value": "Total"},
            {"field": {"apiVersion": format!("{DR_GROUP}/v1"), "kind": "DestinationRule",
                       "name": WORKLOAD, "pointer": DR_POINTER}, "value": "Total"},
            {"annotation": {"key": ANNOTATION}, "value": "Total"},
        ]
    });
    Ok(serde_json::from_value(policy)?)
}

/// One knob: no concurrencyPerPod, the pods planned at the adaptive limit.
/// Every window and step of the engine is short or off, so the loop is the
/// limit's own.
fn adaptive_policy(latency: &str) -> Result<ConcurrencyPolicy> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "inflight.dev/v1alpha1",
        "kind": "ConcurrencyPolicy",
        "metadata": {"name": POLICY},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": WORKLOAD},
            "minReplicas": 1,
            "maxReplicas": 40,
            "metrics": {
                "inFlight": {"query":
                    "sum(http_requests_in_flight{namespace=\"{{namespace}}\",deployment=\"{{name}}\"})"},
                "latency": {"query": latency},
            },
            "target": {"utilization": 1.0},
            "smoothing": {"halfLife": "1s"},
            "prediction": {"enabled": false},
            "behavior": {
                "tolerance": 0.0,
                "panic": {"window": "1s", "threshold": 1000.0},
                "scaleUp": {"stabilizationWindow": "0s", "period": "1s", "maxStep": {}},
                "scaleDown": {"stabilizationWindow": "0s", "period": "1s", "maxStep": {}},
                "reverseCooldown": "0s"
            },
            "limits": {
                "adaptive": {
                    "min": 2, "max": 60, "initial": 12,
                    "tolerance": 1.05, "smoothingHalfLife": "3s",
                },
                "sinks": [{"configMap": {"name": CONFIG_MAP, "key": "maxConcurrency"}}]
            }
        }
    }))?)
}

/// Mean latency over the last 10 s, the policy's template.
fn latency_template() -> String {
    "sum(rate(http_request_duration_seconds_sum{namespace=\"{{namespace}}\",deployment=\"{{name}}\"}[10s])) \
     / sum(rate(http_request_duration_seconds_count{namespace=\"{{namespace}}\",deployment=\"{{name}}\"}[10s]))"
        .to_string()
}

fn latency_query(ns: &str) -> String {
    latency_template()
        .replace("{{namespace}}", ns)
        .replace("{{name}}", WORKLOAD)
}

async fn create_policy(client: &Client, ns: &str, policy: ConcurrencyPolicy) -> Result<()> {
    Api::<ConcurrencyPolicy>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &policy)
        .await
        .context("creating the ConcurrencyPolicy")?;
    Ok(())
}

async fn get_policy(client: &Client, ns: &str) -> Result<ConcurrencyPolicy> {
    Ok(Api::<ConcurrencyPolicy>::namespaced(client.clone(), ns)
        .get(POLICY)
        .await?)
}

/// (status, reason) of a condition.
fn condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    type_: &str,
) -> Option<(String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

/// The notes of the events with `reason` about the policy.
async fn event_notes(client: &Client, ns: &str, reason: &str) -> Result<Vec<String>> {
    let events = Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?;
    Ok(events
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding
                    .as_ref()
                    .is_some_and(|r| r.name.as_deref() == Some(POLICY))
        })
        .filter_map(|e| e.note)
        .collect())
}

// ---------------------------------------------------------------------------
// Sinks.

async fn create_config_map(client: &Client, ns: &str, name: &str, data: Value) -> Result<()> {
    let cm: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": data,
    }))?;
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(
            &PostParams {
                field_manager: Some("e2e".into()),
                ..PostParams::default()
            },
            &cm,
        )
        .await
        .with_context(|| format!("creating ConfigMap {name}"))?;
    Ok(())
}

async fn config_map_data(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(Api::<ConfigMap>::namespaced(client.clone(), ns)
        .get(name)
        .await?
        .data
        .unwrap_or_default())
}

/// The fields the `inflight` manager owns (its Apply entry), as fieldsV1.
fn fields_owned_by_inflight(
    managed: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>>,
) -> Value {
    managed
        .unwrap_or_default()
        .into_iter()
        .find(|m| {
            m.manager.as_deref() == Some("inflight") && m.operation.as_deref() == Some("Apply")
        })
        .and_then(|m| m.fields_v1)
        .map_or(Value::Null, |f| f.0)
}

/// The DestinationRule's http2MaxRequests.
async fn field_total(drs: &Api<DynamicObject>) -> Result<Option<i64>> {
    let dr = drs.get(WORKLOAD).await?;
    Ok(dr.data.pointer(DR_POINTER).and_then(Value::as_i64))
}

/// A CRD shaped like Istio's DestinationRule (the part a sink writes, and
/// a list next to it), installed once on the bed.
async fn ensure_destination_rule_crd(client: &Client) -> Result<ApiResource> {
    let name = format!("destinationrules.{DR_GROUP}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": DR_GROUP,
            "names": {"kind": "DestinationRule", "plural": "destinationrules",
                      "singular": "destinationrule", "listKind": "DestinationRuleList"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "host": {"type": "string"},
                        "trafficPolicy": {"type": "object", "properties": {
                            "connectionPool": {"type": "object", "properties": {
                                "http": {"type": "object", "properties": {
                                    "http2MaxRequests": {"type": "integer", "format": "int32"},
                                    "maxRequestsPerConnection": {"type": "integer", "format": "int32"},
                                }},
                            }},
                        }},
                        "subsets": {"type": "array", "items": {"type": "object", "properties": {
                            "name": {"type": "string"},
                        }}},
                    }},
                }}},
            }],
        }
    }))?;
    apply_crd(client, &crd).await?;
    Ok(ApiResource {
        group: DR_GROUP.into(),
        version: "v1".into(),
        api_version: format!("{DR_GROUP}/v1"),
        kind: "DestinationRule".into(),
        plural: "destinationrules".into(),
    })
}

// ---------------------------------------------------------------------------
// The order of writes.

/// One look at the world: the Deployment, the field sink's total, the
/// Deployment again.
#[derive(Debug)]
struct Sample {
    at_ms: u128,
    spec_before: i64,
    total: i64,
    ready_after: i64,
}

/// Reads continuously until stopped.
struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Result<Vec<Sample>>>,
}

impl Sampler {
    fn start(client: Client, ns: String, drs: Api<DynamicObject>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let deployments = Api::<Deployment>::namespaced(client, &ns);
            let started = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let before = deployments.get(WORKLOAD).await?;
                let total = field_total(&drs).await?.context("no total")?;
                let after = deployments.get(WORKLOAD).await?;
                samples.push(Sample {
                    at_ms: started.elapsed().as_millis(),
                    spec_before: i64::from(before.spec.replicas.unwrap_or(1)),
                    total,
                    ready_after: i64::from(
                        after.status.and_then(|s| s.ready_replicas).unwrap_or(0),
                    ),
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Ok(samples)
        });
        Sampler { stop, task }
    }

    async fn stop(self) -> Result<Vec<Sample>> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await?
    }
}

/// The total never exceeded perPod x the Ready pods seen just after it (a
/// rise waits for Ready pods), nor perPod x the replicas seen just before
/// it (a fall comes before the replicas fall); and it went 5 -> 15 -> 5.
fn check_order(samples: &[Sample]) -> Result<()> {
    ensure!(samples.len() > 50, "only {} samples", samples.len());
    for s in samples {
        ensure!(
            s.total <= PER_POD * s.ready_after,
            "the total rose before the pods were Ready: {s:?}"
        );
        ensure!(
            s.total <= PER_POD * s.spec_before,
            "the total fell after the replicas did: {s:?}"
        );
    }
    let mut path: Vec<i64> = samples.iter().map(|s| s.total).collect();
    path.dedup();
    let peak = path.iter().position(|t| *t == 3 * PER_POD);
    ensure!(
        peak.is_some()
            && path.first() == Some(&PER_POD)
            && path.last() == Some(&PER_POD)
            && path.windows(2).take(peak.unwrap_or(0)).all(|w| w[0] < w[1])
            && path.windows(2).skip(peak.unwrap_or(0)).all(|w| w[0] > w[1]),
        "the total went {path:?}"
    );
    eprintln!(
        "limits order: {} samples over {} ms, totals {path:?}",
        samples.len(),
        samples.last().map_or(0, |s| s.at_ms)
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The operator.

/// An operator identity with the chart's namespaced rules and get (no
/// patch) on ConfigMaps: a kubeconfig copy impersonating a ServiceAccount.
async fn limited_operator_identity(client: &Client, ns: &str, dir: &Path) -> Result<PathBuf> {
    const SA: &str = "inflight-limited";
    let apply = PatchParams::apply("inflight-e2e").force();
    let objects = [
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": SA, "namespace": ns}}),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": SA, "namespace": ns},
            "rules": [
                {"apiGroups": ["inflight.dev"], "resources": ["concurrencypolicies"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["inflight.dev"], "resources": ["concurrencypolicies/status"], "verbs": ["get", "patch", "update"]},
                {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["get", "patch", "update"]},
                {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": ["events.k8s.io", ""], "resources": ["events"], "verbs": ["create", "patch"]},
                // Sinks: get on every ConfigMap, patch on missing-limits
                // only (as limitSinks with resourceNames grants it).
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"],
                 "resourceNames": ["missing-limits"]},
            ]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": SA, "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": SA},
            "subjects": [{"kind": "ServiceAccount", "name": SA, "namespace": ns}],
        }),
    ];
    for object in objects {
        let api_version = object["apiVersion"].as_str().context("apiVersion")?;
        let kind = object["kind"].as_str().context("kind")?;
        let name = object["metadata"]["name"].as_str().context("name")?;
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let plural = match kind {
            "ServiceAccount" => "serviceaccounts",
            "Role" => "roles",
            _ => "rolebindings",
        };
        let resource = ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        Api::<DynamicObject>::namespaced_with(client.clone(), ns, &resource)
            .patch(name, &apply, &Patch::Apply(&object))
            .await
            .with_context(|| format!("applying {kind} {name}"))?;
    }
    // The admin kubeconfig, acting as the ServiceAccount.
    let admin = std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?;
    let mut kubeconfig: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(&admin)?)?;
    let users = kubeconfig
        .get_mut("users")
        .and_then(serde_yaml::Value::as_sequence_mut)
        .context("the kubeconfig has no users")?;
    for user in users {
        if let Some(user) = user
            .get_mut("user")
            .and_then(serde_yaml::Value::as_mapping_mut)
        {
            user.insert(
                "as".into(),
                format!("system:serviceaccount:{ns}:{SA}").into(),
            );
        }
    }
    let path = dir.join("kubeconfig-limited");
    std::fs::write(&path, serde_yaml::to_string(&kubeconfig)?)?;
    Ok(path)
}

/// `inflight run` for one namespace, without leader election, logging to a
/// file; killed on drop.
struct OperatorProcess {
    child: Child,
    log: PathBuf,
}

impl OperatorProcess {
    fn start(ns: &str, kubeconfig: Option<&Path>, dir: &Path) -> Result<OperatorProcess> {
        let kubeconfig = match kubeconfig {
            Some(path) => path.to_path_buf(),
            None => PathBuf::from(std::env::var("KUBECONFIG").context("KUBECONFIG is not set")?),
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = dir.join("operator.log");
        let file = std::fs::File::create(&log)?;
        let child = Command::new(env!("CARGO_BIN_EXE_inflight"))
            .arg("run")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--namespace", ns])
            .arg("--leader-election=false")
            .args(["--prometheus-url", &prometheus_url()])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--sync-period", "1s"])
            .args(["--log-level", "info,inflight=debug"])
            .env_remove("POD_NAMESPACE")
            .env_remove("POD_NAME")
            .env_remove("INFLIGHT_PROMETHEUS_URL")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .context("starting inflight run")?;
        Ok(OperatorProcess { child, log })
    }

    fn print_log_tail(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        eprintln!(
            "----- operator log (last 80 lines) -----\n{}",
            lines[lines.len().saturating_sub(80)..].join("\n")
        );
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
