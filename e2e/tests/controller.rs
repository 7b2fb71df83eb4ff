//! The controller end to end: `inflight run` as a process, against the bed's
//! API server, kwok pods, a real Prometheus and loadsim. Each scenario runs
//! in its own namespace with its own operator restricted to it, and uses
//! policies with windows of seconds so the whole file runs in a few minutes.
//!
//! Workloads serve with a 500 ms service time and no per-pod cap (loadsim
//! `--per-pod-limit 1000`), so in flight = rps x 0.5 whatever the fleet, and
//! the replica count a load needs is `ceil(rps x 0.5 / (concurrencyPerPod x
//! utilization))`. Loads are chosen so that this count is also where a
//! scale-down from above settles (it keeps the tolerance as headroom:
//! `ceil(demand x 1.1 / per pod)`), with room to spare for Poisson noise.
//! (The arrival-rate scenario is the exception: it needs pods that fill up,
//! so it runs loadsim's defaults, 10 at once per pod.)
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::events::v1::Event;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use inflight::api::v1alpha1::{ConcurrencyPolicy, ConcurrencyPolicyStatus, ScaleDirection};

use crate::harness::*;
use crate::operator::*;

/// loadsim's service time, and the flags that give it no per-pod cap.
const SERVICE_TIME_SECS: f64 = 0.5;
const LOADSIM_ARGS: &[&str] = &["--service-time", "500ms", "--per-pod-limit", "1000"];

/// The policies' target: 100 in flight per pod at 80% = 80 per pod.
const CONCURRENCY_PER_POD: f64 = 100.0;
const UTILIZATION: f64 = 0.8;

/// 80 rps: 40 in flight, half a pod.
const LOW_RPS: f64 = 80.0;
/// 680 rps: 340 in flight, 4.25 pods' worth (4.7 with the tolerance).
const HIGH_RPS: f64 = 680.0;

/// The policies' tolerance band.
const TOLERANCE: f64 = 0.1;

/// Scaling, pods starting (3s on the bed) and Prometheus catching up.
const SCALE_TIMEOUT: Duration = Duration::from_secs(90);

/// Replicas a constant load needs: `ceil(rps x service time /
/// (concurrencyPerPod x utilization))`, at least 1.
fn pods_for(rps: f64, concurrency_per_pod: f64, utilization: f64) -> i32 {
    let demand = rps * SERVICE_TIME_SECS;
    ((demand / (concurrency_per_pod * utilization)).ceil() as i32).max(1)
}

fn constant(rps: f64) -> Value {
    json!({"kind": "constant", "rps": rps})
}

/// A policy on Deployment `target` with windows of seconds; `overrides` is
/// merged into the spec (objects merge, other values replace).
fn policy(name: &str, target: &str, overrides: Value) -> Value {
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1,
        "maxReplicas": 12,
        "metrics": {
            "inFlight": {"query": "sum(http_requests_in_flight{namespace=\"{{namespace}}\",deployment=\"{{name}}\"})"},
            "queueDepth": {"query": "sum(http_queue_depth{namespace=\"{{namespace}}\",deployment=\"{{name}}\"})"}
        },
        "target": {
            "concurrencyPerPod": CONCURRENCY_PER_POD,
            "utilization": UTILIZATION,
            "serviceTime": "500ms"
        },
        "smoothing": {"halfLife": "3s"},
        "prediction": {"enabled": false},
        "maxSampleAge": "10s",
        "behavior": {
            "tolerance": TOLERANCE,
            "panic": {"window": "3s", "threshold": 2.0},
            "scaleUp": {"stabilizationWindow": "0s", "period": "5s", "maxStep": {"percent": 100, "pods": 4}},
            // These scenarios check the window itself: no early scale-down
            // (the engine's unit tests cover it).
            "scaleDown": {"stabilizationWindow": "20s", "period": "5s", "maxStep": {"pods": 2}, "early": false},
            "reverseCooldown": "5s"
        }
    });
    merge(&mut spec, &overrides);
    json!({
        "apiVersion": "inflight.dev/v1alpha1",
        "kind": "ConcurrencyPolicy",
        "metadata": {"name": name},
        "spec": spec
    })
}

fn merge(base: &mut Value, overrides: &Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                merge(base.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
        (base, value) => *base = value.clone(),
    }
}

fn dynamic_policies(client: &Client, ns: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("inflight.dev", "v1alpha1", "ConcurrencyPolicy");
    Api::namespaced_with(client.clone(), ns, &ApiResource::from_gvk(&gvk))
}

/// Creates a policy from JSON as-is (no client-side typing, so invalid
/// specs reach the API server).
async fn create_policy(client: &Client, ns: &str, object: Value) -> Result<()> {
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    let object: DynamicObject = serde_json::from_value(object)?;
    dynamic_policies(client, ns)
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating ConcurrencyPolicy {ns}/{name}"))?;
    Ok(())
}

async fn patch_policy(client: &Client, ns: &str, name: &str, patch: Value) -> Result<()> {
    Api::<ConcurrencyPolicy>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("patching ConcurrencyPolicy {ns}/{name}"))?;
    Ok(())
}

async fn policy_status(client: &Client, ns: &str, name: &str) -> Result<ConcurrencyPolicyStatus> {
    Ok(Api::<ConcurrencyPolicy>::namespaced(client.clone(), ns)
        .get(name)
        .await?
        .status
        .unwrap_or_default())
}

/// (status, reason, message) of a condition.
fn condition<'a>(
    s: &'a ConcurrencyPolicyStatus,
    type_: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

fn condition_is(s: &ConcurrencyPolicyStatus, type_: &str, status: &str, reason: &str) -> bool {
    condition(s, type_).is_some_and(|(st, r, _)| st == status && r == reason)
}

fn describe_status(s: &ConcurrencyPolicyStatus) -> String {
    let conditions: Vec<String> = s
        .conditions
        .iter()
        .map(|c| format!("{}={} ({}: {})", c.type_, c.status, c.reason, c.message))
        .collect();
    format!(
        "current {:?}, desired {:?}, last decision {:?}, last scale {:?} {:?}, conditions [{}]",
        s.current_replicas,
        s.desired_replicas,
        s.last_decision,
        s.last_scale_direction,
        s.last_scale_time.as_ref().map(|t| t.0.to_string()),
        conditions.join("; ")
    )
}

/// Polls the policy's status until `check` holds; on timeout the error
/// shows the last status seen.
async fn wait_status(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&ConcurrencyPolicyStatus) -> bool,
) -> Result<ConcurrencyPolicyStatus> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        if let Ok(status) = policy_status(client, ns, name).await {
            if check(&status) {
                return Ok(status);
            }
            last = Some(status);
        }
        if Instant::now() >= deadline {
            bail!(
                "timed out after {timeout:?} waiting for {ns}/{name}: {what}; last status: {}",
                last.as_ref()
                    .map(describe_status)
                    .unwrap_or_else(|| "none".into())
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A Deployment with Ready pods, a loadsim offering `rps` to it, Prometheus
/// seeing its in-flight series, and a watch on its replicas.
struct Workload {
    loadsim: LoadSim,
    history: ReplicaHistory,
}

async fn workload(s: &Scenario, name: &str, replicas: i32, rps: f64) -> Result<Workload> {
    let ns = s.namespace();
    create_deployment(&s.client, ns, name, replicas).await?;
    wait_ready(&s.client, ns, name, replicas, BED_TIMEOUT).await?;
    let loadsim = start_loadsim_with(ns, name, &constant(rps), LOADSIM_ARGS)?;
    let in_flight = in_flight_query(ns, name);
    let expected = rps * SERVICE_TIME_SECS;
    wait_for(
        &format!("Prometheus to see {ns}/{name} at about {expected} in flight"),
        BED_TIMEOUT,
        || async {
            Ok(prom_value(&in_flight)
                .await?
                .filter(|v| *v > expected * 0.5))
        },
    )
    .await?;
    let history = ReplicaHistory::start(&s.client, ns, name).await?;
    Ok(Workload { loadsim, history })
}

fn in_flight_query(ns: &str, name: &str) -> String {
    format!("sum(http_requests_in_flight{{namespace=\"{ns}\",deployment=\"{name}\"}})")
}

/// Observes the Deployment for `window` (every 250 ms, and through the
/// watch, so even a brief change is seen) and fails if `spec.replicas` is
/// ever anything but `replicas`.
async fn holds(history: &ReplicaHistory, replicas: i32, window: Duration, why: &str) -> Result<()> {
    let started = Instant::now();
    while started.elapsed() < window {
        let changes = history.since(started);
        if let Some((t, r)) = changes.iter().find(|(_, r)| *r != replicas) {
            bail!(
                "{why}: spec.replicas became {r} after {:.1}s of the {window:?} it had to hold at {replicas} (history: {})",
                t.duration_since(started).as_secs_f64(),
                history.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

fn values(changes: &[(Instant, i32)]) -> Vec<i32> {
    changes.iter().map(|(_, r)| *r).collect()
}

/// Events on the policy with `reason`.
fn with_reason<'a>(events: &'a [Event], reason: &str) -> Vec<&'a Event> {
    events
        .iter()
        .filter(|e| e.reason.as_deref() == Some(reason))
        .collect()
}

async fn started_operator(s: &Scenario, options: OperatorOptions) -> Result<Operator> {
    let mut op = s.operator(options)?;
    op.wait_serving().await?;
    Ok(op)
}

/// The numbers of a scale note: `from -> to: X in flight + Q queued over P
/// per pod`, with `, A req/s arriving` before `over` when the policy has an
/// arrival rate.
struct ScaleNote {
    from: i32,
    to: i32,
    in_flight: f64,
    queued: f64,
    arriving: Option<f64>,
    per_pod: f64,
}

fn parse_scale_note(note: &str) -> Option<ScaleNote> {
    let re = regex::Regex::new(
        r"^(?:DryRun, would scale )?(\d+) -> (\d+): ([0-9.]+) in flight \+ ([0-9.]+) queued(?:, ([0-9.]+) req/s arriving)? over ([0-9.]+) per pod",
    )
    .ok()?;
    let c = re.captures(note)?;
    Some(ScaleNote {
        from: c[1].parse().ok()?,
        to: c[2].parse().ok()?,
        in_flight: c[3].parse().ok()?,
        queued: c[4].parse().ok()?,
        arriving: match c.get(5) {
            Some(a) => Some(a.as_str().parse().ok()?),
            None => None,
        },
        per_pod: c[6].parse().ok()?,
    })
}

/// A load step up: the Deployment goes to the count computed from the load,
/// its pods become Ready, the ScaledUp event cites the numbers, and the
/// status reports them.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn step_up_scales_to_computed_count() -> Result<()> {
    let s = Scenario::new("ctl-step").await?;
    let (client, ns) = (&s.client, s.namespace());
    let w = workload(&s, "web", 1, LOW_RPS).await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    create_policy(client, ns, policy("web", "web", json!({}))).await?;
    let low = pods_for(LOW_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    assert_eq!(low, 1, "the low load needs one pod");
    wait_status(
        client,
        ns,
        "web",
        "Ready, metrics read, desired 1",
        SCALE_TIMEOUT,
        |st| {
            st.desired_replicas == Some(1)
                && condition_is(st, "Ready", "True", "Active")
                && condition_is(st, "MetricsAvailable", "True", "MetricsRead")
        },
    )
    .await?;

    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    let demand = HIGH_RPS * SERVICE_TIME_SECS;
    let stepped = Instant::now();
    w.loadsim.set_profile(&constant(HIGH_RPS)).await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    wait_ready(client, ns, "web", expected, SCALE_TIMEOUT).await?;
    let took = stepped.elapsed();

    // Every move was up, and none went past the computed count.
    let moves = values(&w.history.since(stepped));
    ensure!(
        moves.windows(2).all(|p| p[1] >= p[0]) && moves.iter().all(|r| *r <= expected),
        "expected only scale-ups to {expected}, saw {}",
        w.history.describe()
    );

    // The ScaledUp event that reached the count cites its numbers.
    let event = wait_for(
        &format!("a ScaledUp event to {expected}"),
        Duration::from_secs(30),
        || async {
            Ok(events_for(client, ns, "web").await?.into_iter().find(|e| {
                e.reason.as_deref() == Some("ScaledUp")
                    && e.note
                        .as_deref()
                        .and_then(parse_scale_note)
                        .is_some_and(|n| n.to == expected)
            }))
        },
    )
    .await?;
    let note = event.note.clone().unwrap_or_default();
    let n = parse_scale_note(&note).context("the note parsed a moment ago")?;
    ensure!(
        event.type_.as_deref() == Some("Normal"),
        "ScaledUp is a Normal event: {note}"
    );
    ensure!(
        n.from < expected && n.per_pod == CONCURRENCY_PER_POD * UTILIZATION && n.queued == 0.0,
        "the note should read `<fewer> -> {expected}: ~{demand} in flight + 0 queued over {} per pod`: {note}",
        CONCURRENCY_PER_POD * UTILIZATION
    );
    ensure!(
        (n.in_flight - demand).abs() <= demand * 0.25,
        "the note's in-flight {} is not the offered {demand}: {note}",
        n.in_flight
    );

    // The status reports the decision and its numbers.
    let status = wait_status(
        client,
        ns,
        "web",
        &format!("desired and current {expected}, scaled up, all conditions healthy"),
        Duration::from_secs(30),
        |st| {
            st.desired_replicas == Some(expected as u32)
                && st.current_replicas == Some(expected as u32)
                && st.last_scale_direction == Some(ScaleDirection::Up)
                && st.last_scale_time.is_some()
                && condition_is(st, "Ready", "True", "Active")
                && condition_is(st, "MetricsAvailable", "True", "MetricsRead")
                && condition_is(st, "ScalingActive", "True", "Active")
        },
    )
    .await?;
    let decision = status
        .last_decision
        .clone()
        .context("lastDecision is set")?;
    let in_flight = decision.in_flight.context("lastDecision.inFlight is set")?;
    ensure!(
        (in_flight - demand).abs() <= demand * 0.25 && decision.queue_depth == Some(0.0),
        "lastDecision should show ~{demand} in flight and 0 queued: {}",
        describe_status(&status)
    );
    eprintln!(
        "step up: 1 -> {expected} in {:.1}s ({}); event: {note}",
        took.as_secs_f64(),
        w.history.describe()
    );
    s.pass();
    Ok(())
}

/// An overload far past what a full fleet can show: 2 pods of loadsim's
/// defaults (10 requests at once per pod, 100 ms each: 100 req/s per pod,
/// 200 for the fleet) go from a low rate to 5.8x their capacity. In flight
/// is then capped at 20 and the bounded queue is full (drops are unseen by
/// both); with `metrics.arrivalRate` the one scale-up goes straight to the
/// fleet the arrivals need, instead of doubling per pod start-up.
///
/// The arrival rate is `rate()` over 5 s of loadsim's counter of every
/// arrival (dropped ones included), so it takes the window to see a step.
/// The policy is paused while the overload builds and unpaused once
/// Prometheus reports the new rate: the test checks the sizing, not the
/// window's lag.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn arrival_rate_sizes_an_overload_in_one_step() -> Result<()> {
    /// loadsim's defaults: 100 ms service time, 10 at once per pod.
    const SERVICE_TIME: f64 = 0.1;
    const POD_LIMIT: f64 = 10.0;
    /// Its queue bound: 10 x the limit per ready pod.
    const QUEUE_PER_POD: f64 = 10.0 * POD_LIMIT;
    /// The policy plans pods for the limit at 80%: 8 per pod.
    const PER_POD: f64 = POD_LIMIT * UTILIZATION;
    /// The policy's default queueDrainTime.
    const DRAIN_SECS: f64 = 30.0;
    const FLEET: i32 = 2;
    /// 12 in flight on 2 pods: 1.5 pods' worth, so the fleet holds.
    const LOW: f64 = 120.0;
    /// 5.8x the fleet's 200 req/s.
    const OVERLOAD: f64 = 1160.0;

    let s = Scenario::new("ctl-arrivals").await?;
    let (client, ns) = (&s.client, s.namespace());
    // The engine's demand once the 2 pods are full:
    //   arrivals x service time           = 1160 x 0.1       = 116.0
    //   + the full queue drained in 30 s  = 2 x 100 x 0.1 / 30 = 0.67
    //   = 116.67 over 8 per pod = 14.58 -> 15 pods.
    // (Without the arrival rate, a full fleet is only known to need more:
    // the engine guesses twice its in flight, 40 -> 5 pods, and again once
    // those are Ready.)
    let demand =
        OVERLOAD * SERVICE_TIME + f64::from(FLEET) * QUEUE_PER_POD * SERVICE_TIME / DRAIN_SECS;
    let expected = (demand / PER_POD).ceil() as i32;
    assert_eq!(expected, 15);
    assert_eq!(((LOW * SERVICE_TIME) / PER_POD).ceil() as i32, FLEET);

    create_deployment(client, ns, "web", FLEET).await?;
    wait_ready(client, ns, "web", FLEET, BED_TIMEOUT).await?;
    let loadsim = start_loadsim_with(ns, "web", &constant(LOW), &[])?;
    let arrivals =
        format!("sum(rate(loadsim_arrivals_total{{namespace=\"{ns}\",deployment=\"web\"}}[5s]))");
    let near = |v: f64, want: f64, within: f64| (v - want).abs() <= want * within;
    // The last decision saw about `want` req/s arriving.
    let arriving = |st: &ConcurrencyPolicyStatus, want: f64, within: f64| {
        st.last_decision
            .as_ref()
            .and_then(|d| d.arrival_rate)
            .is_some_and(|a| near(a, want, within))
    };
    wait_for(
        &format!("Prometheus to see {LOW} req/s arriving"),
        BED_TIMEOUT,
        || async { Ok(prom_value(&arrivals).await?.filter(|v| near(*v, LOW, 0.2))) },
    )
    .await?;
    let history = ReplicaHistory::start(client, ns, "web").await?;
    let op = started_operator(&s, OperatorOptions::new("op")).await?;
    create_policy(
        client,
        ns,
        policy(
            "web",
            "web",
            json!({
                "maxReplicas": 30,
                "metrics": {"arrivalRate": {"query":
                    "sum(rate(loadsim_arrivals_total{namespace=\"{{namespace}}\",deployment=\"{{name}}\"}[5s]))"}},
                "target": {"concurrencyPerPod": POD_LIMIT, "serviceTime": "100ms"},
                // Room for the whole step at once.
                "behavior": {"scaleUp": {"maxStep": {"percent": 1000, "pods": 30}}}
            }),
        ),
    )
    .await?;
    let status = wait_status(
        client,
        ns,
        "web",
        &format!("desired {FLEET} with about {LOW} req/s arriving"),
        SCALE_TIMEOUT,
        |st| {
            st.desired_replicas == Some(FLEET as u32)
                && condition_is(st, "MetricsAvailable", "True", "MetricsRead")
                && arriving(st, LOW, 0.3)
        },
    )
    .await?;
    // The engine warmed up on the history of all three queries.
    let log = op.log_text();
    ensure!(
        log.contains("engine warmed up from Prometheus history")
            && !log.contains("cannot warm the engine up"),
        "the warm-up should read the arrival rate's history too:\n{}",
        op.log_tail(30)
    );
    eprintln!("arrivals, low load: {}", describe_status(&status));

    // Hold the policy, push the overload, and wait until the measurement
    // has settled: the paused policy keeps deciding and shows it in status.
    patch_policy(
        client,
        ns,
        "web",
        json!({"metadata": {"annotations": {"inflight.dev/paused": "true"}}}),
    )
    .await?;
    wait_status(client, ns, "web", "paused", Duration::from_secs(30), |st| {
        condition_is(st, "ScalingActive", "False", "Paused")
    })
    .await?;
    loadsim.set_profile(&constant(OVERLOAD)).await?;
    wait_for(
        &format!("Prometheus to see {OVERLOAD} req/s arriving"),
        BED_TIMEOUT,
        || async {
            Ok(prom_value(&arrivals)
                .await?
                .filter(|v| near(*v, OVERLOAD, 0.05)))
        },
    )
    .await?;
    let paused = wait_status(
        client,
        ns,
        "web",
        &format!("paused, desired about {expected} for about {OVERLOAD} req/s arriving"),
        SCALE_TIMEOUT,
        |st| {
            st.desired_replicas
                .is_some_and(|d| (d as i32 - expected).abs() <= 1)
                && arriving(st, OVERLOAD, 0.1)
        },
    )
    .await?;
    ensure!(
        values(&history.changes()) == vec![FLEET],
        "the paused policy scaled: {}",
        history.describe()
    );
    let decision = paused
        .last_decision
        .clone()
        .context("lastDecision is set")?;
    ensure!(
        decision
            .in_flight
            .is_some_and(|f| near(f, f64::from(FLEET) * POD_LIMIT, 0.05))
            && decision.queue_depth.is_some_and(|q| q > QUEUE_PER_POD),
        "the full fleet should show 20 in flight and a full queue: {}",
        describe_status(&paused)
    );

    let unpaused = Instant::now();
    patch_policy(
        client,
        ns,
        "web",
        json!({"metadata": {"annotations": {"inflight.dev/paused": null}}}),
    )
    .await?;
    let first = wait_for("the first scale-up", SCALE_TIMEOUT, || async {
        Ok(history.since(unpaused).get(1).map(|(_, r)| *r))
    })
    .await?;
    ensure!(
        (first - expected).abs() <= 1,
        "the first scale-up should go from {FLEET} straight to about {expected}: {}",
        history.describe()
    );
    let event = wait_for(
        &format!("the ScaledUp event {FLEET} -> {first}"),
        Duration::from_secs(30),
        || async {
            Ok(events_for(client, ns, "web").await?.into_iter().find(|e| {
                e.reason.as_deref() == Some("ScaledUp")
                    && e.note
                        .as_deref()
                        .and_then(parse_scale_note)
                        .is_some_and(|n| n.from == FLEET && n.to == first)
            }))
        },
    )
    .await?;
    let note = event.note.clone().unwrap_or_default();
    let n = parse_scale_note(&note).context("the note parsed a moment ago")?;
    ensure!(
        n.arriving.is_some_and(|a| near(a, OVERLOAD, 0.1))
            && near(n.in_flight, f64::from(FLEET) * POD_LIMIT, 0.05)
            && n.queued > QUEUE_PER_POD
            && n.per_pod == PER_POD,
        "the note should read `{FLEET} -> {first}: 20.0 in flight + ~200 queued, ~{OVERLOAD} req/s arriving over {PER_POD} per pod`: {note}"
    );
    // (Once Ready, the new pods take the backlog at once; that burst of in
    // flight may add a pod or two in panic: only the first step is checked.)
    wait_for(
        &format!("{first} or more Ready pods"),
        SCALE_TIMEOUT,
        || async { Ok((ready_replicas(client, ns, "web").await? >= first).then_some(())) },
    )
    .await?;
    let status = wait_status(
        client,
        ns,
        "web",
        &format!("current {first} or more, scaled up, arrivals in lastDecision"),
        Duration::from_secs(30),
        |st| {
            st.current_replicas.is_some_and(|c| c >= first as u32)
                && st.last_scale_direction == Some(ScaleDirection::Up)
                && arriving(st, OVERLOAD, 0.1)
        },
    )
    .await?;
    eprintln!(
        "arrivals: {} (unpaused at +{:.1}s); event: {note}; status: {}",
        history.describe(),
        unpaused
            .duration_since(history.changes()[0].0)
            .as_secs_f64(),
        describe_status(&status)
    );
    s.pass();
    Ok(())
}

/// A policy that never panics: threshold far above any load here, so only
/// the stable path and its windows decide.
fn no_panic() -> Value {
    json!({"behavior": {"panic": {"window": "3s", "threshold": 100.0}}})
}

/// Load drops: replicas hold for the whole scale-down stabilization window,
/// then come down in steps no larger than maxStep, one per period.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn scale_down_waits_for_the_window_then_steps_down() -> Result<()> {
    let s = Scenario::new("ctl-down").await?;
    let (client, ns) = (&s.client, s.namespace());
    // 1200 rps: 600 in flight, 7.5 pods' worth.
    let high_rps = 1200.0;
    let high = pods_for(high_rps, CONCURRENCY_PER_POD, UTILIZATION);
    let low = pods_for(LOW_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    assert_eq!((high, low), (8, 1));
    let window = Duration::from_secs(20);
    let period = Duration::from_secs(5);
    let max_step = 2;
    let w = workload(&s, "web", 1, high_rps).await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    create_policy(client, ns, policy("web", "web", no_panic())).await?;
    w.history.wait_for_replicas(high, SCALE_TIMEOUT).await?;
    wait_ready(client, ns, "web", high, SCALE_TIMEOUT).await?;

    let dropped = Instant::now();
    w.loadsim.set_profile(&constant(LOW_RPS)).await?;
    // Nothing may move for the whole window (less a second for the
    // operator's and the test's clocks not ticking together).
    holds(
        &w.history,
        high,
        window - Duration::from_secs(1),
        "no scale-down inside the stabilization window",
    )
    .await?;
    w.history.wait_for_replicas(low, SCALE_TIMEOUT).await?;

    let moves = w.history.since(dropped);
    let mut last_down: Option<Instant> = None;
    for pair in moves.windows(2) {
        let ((_, before), (at, after)) = (pair[0], pair[1]);
        ensure!(
            after < before,
            "after the drop every move must be down: {}",
            w.history.describe()
        );
        ensure!(
            before - after <= max_step,
            "{before} -> {after} removes more than maxStep {max_step}: {}",
            w.history.describe()
        );
        ensure!(
            at.duration_since(dropped) >= window - Duration::from_secs(1),
            "first scale-down {:.1}s after the drop, inside the {window:?} window: {}",
            at.duration_since(dropped).as_secs_f64(),
            w.history.describe()
        );
        if let Some(previous) = last_down {
            // The watch sees each change a little after it happened; allow
            // for that jitter, not for a second step inside one period.
            ensure!(
                at.duration_since(previous) >= period - Duration::from_millis(1500),
                "two scale-downs {:.1}s apart, within one {period:?} period: {}",
                at.duration_since(previous).as_secs_f64(),
                w.history.describe()
            );
        }
        last_down = Some(at);
    }
    // moves[0] is the value at the drop; the rest are steps.
    let fewest_steps = (high - low + max_step - 1) / max_step;
    ensure!(
        moves.len() > fewest_steps as usize,
        "expected at least {fewest_steps} steps from {high} to {low}: {}",
        w.history.describe()
    );
    // Events follow the patch they report: wait for the last one.
    let steps = moves.len() - 1;
    let events = wait_for(
        &format!("{steps} ScaledDown events"),
        Duration::from_secs(15),
        || async {
            let events = events_for(client, ns, "web").await?;
            Ok((with_reason(&events, "ScaledDown").len() >= steps).then_some(events))
        },
    )
    .await?;
    let downs = with_reason(&events, "ScaledDown");
    ensure!(
        downs.len() == steps
            && downs.iter().any(|e| {
                e.note
                    .as_deref()
                    .unwrap_or("")
                    .contains("limited by ScaleDownStep")
            }),
        "one ScaledDown event per step, citing the step limit; events:\n{}",
        describe_events(&events)
    );
    eprintln!(
        "scale down: {} (drop at +{:.1}s)",
        w.history.describe(),
        dropped
            .duration_since(w.history.changes()[0].0)
            .as_secs_f64()
    );
    s.pass();
    Ok(())
}

/// Noisy constant load (+-30% per second, plus Poisson arrivals): over
/// three minutes the fleet never changes direction.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn noisy_load_causes_no_reversals() -> Result<()> {
    let s = Scenario::new("ctl-noise").await?;
    let (client, ns) = (&s.client, s.namespace());
    // 200 rps x 0.5 s = 100 in flight on average, 12.5 pods at 8 per pod.
    let (per_pod, mean_rps) = (10.0, 200.0);
    let replicas = pods_for(mean_rps, per_pod, UTILIZATION);
    assert_eq!(replicas, 13);
    let observe = Duration::from_secs(180);
    // The fleet starts where the mean load puts it, with the noise on.
    let w = workload(&s, "web", replicas, mean_rps).await?;
    w.loadsim
        .set_profile(&json!({"kind": "noise", "mean": mean_rps, "relative": 0.3, "seed": 7}))
        .await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    create_policy(
        client,
        ns,
        policy(
            "web",
            "web",
            json!({
                "maxReplicas": 30,
                "target": {"concurrencyPerPod": per_pod},
                // The defaults of smoothing, prediction and the reverse
                // cooldown; a scale-down window short enough to matter
                // within three minutes.
                "smoothing": {"halfLife": "30s"},
                "prediction": {"enabled": true},
                "behavior": {"reverseCooldown": "60s"}
            }),
        ),
    )
    .await?;
    wait_status(
        client,
        ns,
        "web",
        "Ready with metrics",
        SCALE_TIMEOUT,
        |st| condition_is(st, "MetricsAvailable", "True", "MetricsRead"),
    )
    .await?;
    let started = Instant::now();
    while started.elapsed() < observe {
        let seen = values(&w.history.since(started));
        ensure!(
            reversals(&seen) == 0,
            "the fleet reversed direction under noise after {:.0}s: {}",
            started.elapsed().as_secs_f64(),
            w.history.describe()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seen = values(&w.history.since(started));
    // The operator's own account: the directions of its scale events.
    let events = events_for(client, ns, "web").await?;
    let directions: Vec<i32> = events
        .iter()
        .filter_map(|e| match e.reason.as_deref() {
            Some("ScaledUp") => Some(1),
            Some("ScaledDown") => Some(-1),
            _ => None,
        })
        .collect();
    let event_reversals = directions.windows(2).filter(|p| p[0] != p[1]).count();
    ensure!(
        reversals(&seen) == 0 && event_reversals == 0,
        "direction reversals under noise: replicas {}; events:\n{}",
        w.history.describe(),
        describe_events(&events)
    );
    eprintln!(
        "noise: {} changes in {observe:?}: {}",
        seen.len() - 1,
        w.history.describe()
    );
    s.pass();
    Ok(())
}

/// Prometheus goes away: the policy holds (never down on missing data),
/// says so (MetricsAvailable=False, a Warning event), goes to the fallback
/// after `afterFailures` failed reads, and recovers when Prometheus returns.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn prometheus_outage_holds_falls_back_and_recovers() -> Result<()> {
    let s = Scenario::new("ctl-prom").await?;
    let (client, ns) = (&s.client, s.namespace());
    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    // Recovery comes down from the fallback: the same count from above.
    assert_eq!(
        pods_for(
            HIGH_RPS * (1.0 + TOLERANCE),
            CONCURRENCY_PER_POD,
            UTILIZATION
        ),
        expected
    );
    let fallback = 7;
    let w = workload(&s, "web", 1, HIGH_RPS).await?;
    // This scenario's own Prometheus, scraping only its loadsim.
    let mut prometheus =
        PrivatePrometheus::start(&s.dir().join("prometheus"), &[w.loadsim.addr.as_str()]).await?;
    let in_flight = in_flight_query(ns, "web");
    wait_for(
        "the private Prometheus to scrape loadsim",
        BED_TIMEOUT,
        || async { Ok(prometheus.value(&in_flight).await?.filter(|v| *v > 0.0)) },
    )
    .await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    let mut overrides = no_panic();
    merge(
        &mut overrides,
        &json!({
            "metrics": {"prometheus": {"address": prometheus.url()}},
            "fallback": {"afterFailures": 3, "replicas": fallback}
        }),
    );
    create_policy(client, ns, policy("web", "web", overrides)).await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;

    let outage = Instant::now();
    prometheus.kill()?;
    let status = wait_status(
        client,
        ns,
        "web",
        "MetricsAvailable=False",
        Duration::from_secs(30),
        |st| condition_is(st, "MetricsAvailable", "False", "MetricsUnavailable"),
    )
    .await?;
    let warning = wait_for_event(
        client,
        ns,
        "web",
        "MetricsUnavailable",
        Duration::from_secs(30),
    )
    .await?;
    ensure!(
        warning.type_.as_deref() == Some("Warning"),
        "MetricsUnavailable must be a Warning: {warning:?}"
    );
    let fell_back = wait_for_event(
        client,
        ns,
        "web",
        "FallbackActivated",
        Duration::from_secs(30),
    )
    .await?;
    w.history.wait_for_replicas(fallback, SCALE_TIMEOUT).await?;
    // Out for longer than the scale-down window: a controller that took the
    // missing data for zero load would be at minReplicas by now.
    let out_for = Duration::from_secs(25);
    holds(
        &w.history,
        fallback,
        out_for.saturating_sub(outage.elapsed()),
        "hold the fallback while Prometheus is down",
    )
    .await?;
    let during = values(&w.history.since(outage));
    ensure!(
        during.windows(2).all(|p| p[1] >= p[0]),
        "no scale-down while Prometheus was down: {}",
        w.history.describe()
    );
    let fallback_status = policy_status(client, ns, "web").await?;
    ensure!(
        condition_is(&fallback_status, "ScalingActive", "True", "Fallback"),
        "ScalingActive should say Fallback: {}",
        describe_status(&fallback_status)
    );

    prometheus.restart().await?;
    wait_status(
        client,
        ns,
        "web",
        "MetricsAvailable=True again",
        SCALE_TIMEOUT,
        |st| condition_is(st, "MetricsAvailable", "True", "MetricsRead"),
    )
    .await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    eprintln!(
        "prometheus outage: {}; first status {}; events {:?} / {:?}",
        w.history.describe(),
        describe_status(&status),
        warning.note,
        fell_back.note
    );
    s.pass();
    Ok(())
}

/// DryRun decides and reports (status, a "would scale" event) but never
/// touches the replicas; switched to Enforce, the same decision is applied.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn dry_run_never_changes_replicas() -> Result<()> {
    let s = Scenario::new("ctl-dry").await?;
    let (client, ns) = (&s.client, s.namespace());
    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    let w = workload(&s, "web", 1, HIGH_RPS).await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    let policy_created = Instant::now();
    create_policy(client, ns, policy("web", "web", json!({"mode": "DryRun"}))).await?;
    wait_status(
        client,
        ns,
        "web",
        &format!("desired {expected} in DryRun"),
        SCALE_TIMEOUT,
        |st| {
            st.desired_replicas == Some(expected as u32)
                && condition_is(st, "ScalingActive", "False", "DryRun")
                && condition_is(st, "Ready", "True", "Active")
        },
    )
    .await?;
    let event = wait_for(
        &format!("a DryRun ScaledUp event naming 1 -> {expected}"),
        Duration::from_secs(30),
        || async {
            Ok(events_for(client, ns, "web").await?.into_iter().find(|e| {
                e.note.as_deref().is_some_and(|n| {
                    n.starts_with(&format!("DryRun, would scale 1 -> {expected}:"))
                })
            }))
        },
    )
    .await?;
    // It keeps deciding for a while and still never patches.
    holds(
        &w.history,
        1,
        Duration::from_secs(10),
        "DryRun must never change replicas",
    )
    .await?;
    ensure!(
        values(&w.history.since(policy_created)) == vec![1],
        "DryRun changed the replicas: {}",
        w.history.describe()
    );
    patch_policy(client, ns, "web", json!({"spec": {"mode": "Enforce"}})).await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    eprintln!(
        "dry run: event {:?}; then {}",
        event.note,
        w.history.describe()
    );
    s.pass();
    Ok(())
}

/// The `inflight.dev/paused: "true"` annotation holds the replicas (and the
/// status says so); removing it lets the policy scale.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn paused_policy_holds_until_unpaused() -> Result<()> {
    let s = Scenario::new("ctl-pause").await?;
    let (client, ns) = (&s.client, s.namespace());
    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    let w = workload(&s, "web", 1, HIGH_RPS).await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    let mut paused = policy("web", "web", json!({}));
    paused["metadata"]["annotations"] = json!({"inflight.dev/paused": "true"});
    create_policy(client, ns, paused).await?;
    wait_status(
        client,
        ns,
        "web",
        &format!("paused with desired {expected}"),
        SCALE_TIMEOUT,
        |st| {
            st.desired_replicas == Some(expected as u32)
                && condition_is(st, "ScalingActive", "False", "Paused")
        },
    )
    .await?;
    holds(
        &w.history,
        1,
        Duration::from_secs(10),
        "a paused policy must hold the replicas",
    )
    .await?;
    patch_policy(
        client,
        ns,
        "web",
        json!({"metadata": {"annotations": {"inflight.dev/paused": null}}}),
    )
    .await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    wait_status(
        client,
        ns,
        "web",
        "active again",
        Duration::from_secs(30),
        |st| condition_is(st, "ScalingActive", "True", "Active"),
    )
    .await?;
    s.pass();
    Ok(())
}

/// An autoscaling/v2 HPA on the same Deployment: the policy steps aside
/// with a ScalingBlocked Warning and Ready=False (HPAConflict), and scales
/// once the HPA is deleted.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn conflicting_hpa_blocks_scaling() -> Result<()> {
    let s = Scenario::new("ctl-hpa").await?;
    let (client, ns) = (&s.client, s.namespace());
    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    let w = workload(&s, "web", 1, HIGH_RPS).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(client.clone(), ns);
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web-hpa"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
        }
    }))?;
    hpas.create(&PostParams::default(), &hpa).await?;
    let _op = started_operator(&s, OperatorOptions::new("op")).await?;
    create_policy(client, ns, policy("web", "web", json!({}))).await?;
    let blocked = wait_for_event(client, ns, "web", "ScalingBlocked", SCALE_TIMEOUT).await?;
    let note = blocked.note.clone().unwrap_or_default();
    ensure!(
        blocked.type_.as_deref() == Some("Warning")
            && note.contains("HorizontalPodAutoscaler web-hpa"),
        "ScalingBlocked should be a Warning naming the HPA: {blocked:?}"
    );
    wait_status(
        client,
        ns,
        "web",
        "Ready=False HPAConflict, ScalingActive=False",
        Duration::from_secs(30),
        |st| {
            condition_is(st, "Ready", "False", "HPAConflict")
                && condition_is(st, "ScalingActive", "False", "ScalingBlocked")
        },
    )
    .await?;
    // The load asks for more; the policy must not fight the HPA.
    holds(
        &w.history,
        1,
        Duration::from_secs(10),
        "a policy blocked by an HPA must not scale",
    )
    .await?;
    hpas.delete("web-hpa", &DeleteParams::default()).await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    wait_status(
        client,
        ns,
        "web",
        "Ready again",
        Duration::from_secs(30),
        |st| condition_is(st, "Ready", "True", "Active"),
    )
    .await?;
    s.pass();
    Ok(())
}

/// SIGKILL the operator half-way through a scale-down stabilization window
/// and start it again: it warms up from Prometheus history and the status,
/// so it neither scales down before the window ends nor waits a whole new
/// window from its own start.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn restart_mid_stabilization_does_not_scale_down_early() -> Result<()> {
    let s = Scenario::new("ctl-restart").await?;
    let (client, ns) = (&s.client, s.namespace());
    let high = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    let low = pods_for(LOW_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    let window = Duration::from_secs(30);
    let w = workload(&s, "web", 1, HIGH_RPS).await?;
    let mut op = started_operator(&s, OperatorOptions::new("op")).await?;
    let mut overrides = no_panic();
    merge(
        &mut overrides,
        &json!({"behavior": {"scaleDown": {"stabilizationWindow": "30s", "maxStep": {"pods": 10}}}}),
    );
    create_policy(client, ns, policy("web", "web", overrides)).await?;
    w.history.wait_for_replicas(high, SCALE_TIMEOUT).await?;
    wait_ready(client, ns, "web", high, SCALE_TIMEOUT).await?;
    wait_status(
        client,
        ns,
        "web",
        "the scale-up recorded in status",
        Duration::from_secs(30),
        |st| st.last_scale_direction == Some(ScaleDirection::Up) && st.last_scale_time.is_some(),
    )
    .await?;

    let dropped = Instant::now();
    w.loadsim.set_profile(&constant(LOW_RPS)).await?;
    holds(
        &w.history,
        high,
        Duration::from_secs(12),
        "hold before the restart",
    )
    .await?;
    op.kill()?;
    drop(op);
    let restarted = Instant::now();
    let op = started_operator(&s, OperatorOptions::new("op")).await?;
    holds(
        &w.history,
        high,
        (window - Duration::from_secs(1)).saturating_sub(dropped.elapsed()),
        "the restarted operator must not scale down inside the window",
    )
    .await?;
    w.history.wait_for_replicas(low, SCALE_TIMEOUT).await?;
    let first_down = w
        .history
        .since(dropped)
        .into_iter()
        .find(|(_, r)| *r < high)
        .map(|(t, _)| t)
        .context("a scale-down was seen")?;
    ensure!(
        first_down.duration_since(dropped) >= window - Duration::from_secs(1),
        "scaled down {:.1}s after the drop, inside the {window:?} window: {}",
        first_down.duration_since(dropped).as_secs_f64(),
        w.history.describe()
    );
    // A cold engine would hold a full window from its own start; a warm one
    // scales down about a window after the load dropped.
    let cold_earliest = restarted + window;
    ensure!(
        first_down + Duration::from_secs(3) < cold_earliest,
        "the restarted operator scaled down {:.1}s after its start, as if it had forgotten the \
         history ({:.1}s after the drop): {}",
        first_down.duration_since(restarted).as_secs_f64(),
        first_down.duration_since(dropped).as_secs_f64(),
        w.history.describe()
    );
    let log = op.log_text();
    let warmed = regex::Regex::new(r"warmed up from Prometheus history\S* points\S*=(\d+)")?
        .captures(&log)
        .and_then(|c| c[1].parse::<u32>().ok());
    ensure!(
        warmed.is_some_and(|points| points >= 10),
        "the restarted operator should log a warm-up of about {}s of points, got {warmed:?}",
        window.as_secs()
    );
    eprintln!(
        "restart: {}; drop at +{:.1}s, restart at +{:.1}s",
        w.history.describe(),
        dropped
            .duration_since(w.history.changes()[0].0)
            .as_secs_f64(),
        restarted
            .duration_since(w.history.changes()[0].0)
            .as_secs_f64()
    );
    s.pass();
    Ok(())
}

/// Two replicas of the operator on one Lease: only the leader acts (the
/// other reports inflight_leader 0, never decides, and every event comes
/// from the leader); SIGKILL the leader and the other takes over within the
/// lease duration, and scaling goes on.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn two_replicas_one_acts_and_the_other_takes_over() -> Result<()> {
    let s = Scenario::new("ctl-ha").await?;
    let (client, ns) = (&s.client, s.namespace());
    let lease = Duration::from_secs(4);
    let w = workload(&s, "web", 1, LOW_RPS).await?;
    let a = started_operator(&s, OperatorOptions::new("op-a").lease_duration("4s")).await?;
    let b = started_operator(&s, OperatorOptions::new("op-b").lease_duration("4s")).await?;
    let mut ops = [a, b];
    let leader = wait_for("one operator to lead", Duration::from_secs(30), || async {
        let a = ops[0].is_leader().await?;
        let b = ops[1].is_leader().await?;
        Ok(match (a, b) {
            (true, false) => Some(0),
            (false, true) => Some(1),
            _ => None,
        })
    })
    .await?;
    let standby = 1 - leader;
    let (leader_id, standby_id) = (ops[leader].identity.clone(), ops[standby].identity.clone());

    create_policy(client, ns, policy("web", "web", json!({}))).await?;
    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    w.loadsim.set_profile(&constant(HIGH_RPS)).await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    wait_for_event(client, ns, "web", "ScaledUp", Duration::from_secs(15)).await?;
    let events = events_for(client, ns, "web").await?;
    ensure!(
        events
            .iter()
            .all(|e| e.reporting_instance.as_deref() == Some(leader_id.as_str())),
        "every event must come from the leader {leader_id}:\n{}",
        describe_events(&events)
    );
    let standby_metrics = ops[standby].metrics().await?;
    ensure!(
        metric_value(&standby_metrics, "inflight_leader") == Some(0.0)
            && !standby_metrics.contains("inflight_decisions_total{"),
        "the standby {standby_id} must not lead nor decide:\n{standby_metrics}"
    );
    ensure!(
        !ops[standby].log_text().contains("scaled Deployment/web"),
        "the standby {standby_id} scaled:\n{}",
        ops[standby].log_tail(30)
    );

    ops[leader].kill()?;
    let killed = Instant::now();
    wait_for(
        &format!("{standby_id} to take over"),
        lease + Duration::from_secs(10),
        || async { Ok(ops[standby].is_leader().await?.then_some(())) },
    )
    .await?;
    let took = killed.elapsed();
    ensure!(
        took <= lease + Duration::from_secs(3),
        "{standby_id} took {:.1}s to take over a {lease:?} lease",
        took.as_secs_f64()
    );

    // Scaling goes on under the new leader.
    let higher_rps = 1200.0;
    let higher = pods_for(higher_rps, CONCURRENCY_PER_POD, UTILIZATION);
    w.loadsim.set_profile(&constant(higher_rps)).await?;
    w.history.wait_for_replicas(higher, SCALE_TIMEOUT).await?;
    let reported = wait_for(
        &format!("{standby_id} to report the scale to {higher}"),
        Duration::from_secs(15),
        || async {
            let events = events_for(client, ns, "web").await?;
            Ok(with_reason(&events, "ScaledUp")
                .iter()
                .any(|e| {
                    e.reporting_instance.as_deref() == Some(standby_id.as_str())
                        && e.note
                            .as_deref()
                            .and_then(parse_scale_note)
                            .is_some_and(|n| n.to == higher)
                })
                .then_some(()))
        },
    )
    .await;
    if let Err(e) = reported {
        let events = events_for(client, ns, "web").await.unwrap_or_default();
        bail!("{e:#}; events:\n{}", describe_events(&events));
    }
    eprintln!(
        "leader {leader_id} killed; {standby_id} took over in {:.1}s; {}",
        took.as_secs_f64(),
        w.history.describe()
    );
    s.pass();
    Ok(())
}

/// Bad specs: what the schema can refuse is refused by the API server with
/// a message naming the field; what only the operator can tell (an unknown
/// kind, a kind without /scale, a missing target, a blank query) gets a
/// Warning event and Ready=False. The operator never panics, and a valid
/// policy next to them keeps scaling.
#[tokio::test]
#[ignore = "needs the local bed; run by make e2e"]
async fn bad_specs_are_refused_or_reported_and_nothing_panics() -> Result<()> {
    let s = Scenario::new("ctl-bad").await?;
    let (client, ns) = (&s.client, s.namespace());

    let refused = [
        (
            "min-over-max",
            json!({"minReplicas": 5, "maxReplicas": 2}),
            "minReplicas",
        ),
        (
            "negative-target",
            json!({"target": {"concurrencyPerPod": -4.0}}),
            "concurrencyPerPod",
        ),
        (
            "bad-duration",
            json!({"smoothing": {"halfLife": "a while"}}),
            "halfLife",
        ),
    ];
    for (name, overrides, field) in refused {
        let err = create_policy(client, ns, policy(name, "web", overrides))
            .await
            .err()
            .with_context(|| format!("{name}: the API server accepted an invalid policy"))?;
        let message = format!("{err:#}");
        ensure!(
            message.contains(field) && message.contains("Invalid"),
            "{name}: the refusal should name {field}: {message}"
        );
    }

    let w = workload(&s, "web", 1, LOW_RPS).await?;
    let mut op = started_operator(&s, OperatorOptions::new("op")).await?;
    // None of these targets `web`: an older policy on the same target, even
    // a broken one, would hold it and block `good` (PolicyConflict).
    let reported = [
        (
            "unknown-kind",
            json!({"targetRef": {"apiVersion": "example.com/v1", "kind": "Frobnicator", "name": "x"}}),
            "UnknownTargetKind",
            true,
        ),
        (
            "no-scale",
            json!({"targetRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "kube-root-ca.crt"}}),
            "NoScaleSubresource",
            true,
        ),
        (
            "missing-target",
            json!({"targetRef": {"name": "ghost"}}),
            "TargetNotFound",
            false,
        ),
        (
            "blank-query",
            json!({"targetRef": {"name": "other"}, "metrics": {"inFlight": {"query": "   "}}}),
            "InvalidSpec",
            true,
        ),
    ];
    for (name, overrides, _, _) in &reported {
        create_policy(client, ns, policy(name, "web", overrides.clone())).await?;
    }
    create_policy(client, ns, policy("good", "web", json!({}))).await?;
    for (name, _, reason, warns) in &reported {
        let status = wait_status(
            client,
            ns,
            name,
            &format!("Ready=False {reason}"),
            SCALE_TIMEOUT,
            |st| condition_is(st, "Ready", "False", reason),
        )
        .await?;
        let (_, _, message) = condition(&status, "Ready").context("Ready is set")?;
        ensure!(!message.is_empty(), "{name}: Ready=False needs a message");
        if *warns {
            let event =
                wait_for_event(client, ns, name, "InvalidSpec", Duration::from_secs(30)).await?;
            ensure!(
                event.type_.as_deref() == Some("Warning") && event.note.as_deref() == Some(message),
                "{name}: the InvalidSpec Warning should carry the condition's message {message:?}: {event:?}"
            );
        }
    }

    // The valid policy scales as if the others were not there.
    let expected = pods_for(HIGH_RPS, CONCURRENCY_PER_POD, UTILIZATION);
    w.loadsim.set_profile(&constant(HIGH_RPS)).await?;
    w.history.wait_for_replicas(expected, SCALE_TIMEOUT).await?;
    ensure!(
        op.exited()?.is_none(),
        "the operator exited:\n{}",
        op.log_tail(40)
    );
    let log = op.log_text();
    ensure!(
        !log.contains("panicked"),
        "the operator panicked:\n{}",
        op.log_tail(60)
    );
    s.pass();
    Ok(())
}
