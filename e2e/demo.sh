#!/usr/bin/env bash
# make demo: inflight scaling a simulated workload on the local bed.
#
# Brings the bed up (make cluster-up did that before this script runs), starts
# inflight out of cluster, creates a Deployment with loadsim serving its
# metrics and a ConcurrencyPolicy, then drives a load step, a burst and a quiet
# period, printing replicas and events as they happen, and a summary.
# Bounded: about three minutes. Leaves the bed up (make cluster-down stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
BED_DIR="${INFLIGHT_BED_DIR:-/tmp/inflight-bed}"
# shellcheck source=/dev/null
source "$BED_DIR/env"
NS=inflight-demo
DEMO_DIR="$(mktemp -d /tmp/inflight-demo.XXXXXX)"
OPERATOR_PORT="${INFLIGHT_DEMO_METRICS_PORT:-18080}"
pids=()

cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$INFLIGHT_PROMETHEUS_TARGETS_DIR/inflight-demo.json"
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
  echo "logs: $DEMO_DIR   (the bed is still up: make cluster-down stops it)"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
set_load() { curl -fsS -X PUT -H 'content-type: application/json' --data "$1" "http://$LOADSIM/profile" >/dev/null; }

say "CRD and workload"
kubectl apply --server-side -f crds/concurrencypolicy.yaml >/dev/null
kubectl wait --for=condition=Established crd/concurrencypolicies.inflight.dev --timeout=60s >/dev/null
kubectl delete namespace "$NS" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$NS" >/dev/null
kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeSelector: {type: kwok}
      tolerations: [{key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}]
      containers: [{name: app, image: registry.invalid/web:demo}]
YAML
echo "deployment $NS/web: 2 replicas; pods become Ready ${INFLIGHT_POD_READY_DELAY} after they are created"

# loadsim: 10 concurrent requests per pod, 100 ms each.
target/debug/loadsim --namespace "$NS" --deployment web --listen 127.0.0.1:0 \
  --profile '{"kind":"constant","rps":100}' >"$DEMO_DIR/loadsim.out" 2>"$DEMO_DIR/loadsim.log" &
pids+=($!)
for _ in $(seq 50); do grep -q '^listening on ' "$DEMO_DIR/loadsim.out" && break; sleep 0.2; done
LOADSIM="$(sed -n 's/^listening on //p' "$DEMO_DIR/loadsim.out")"
[[ -n "$LOADSIM" ]] || { echo "loadsim did not start:"; tail "$DEMO_DIR/loadsim.log"; exit 1; }
printf '[{"targets":["%s"],"labels":{"job":"loadsim"}}]' "$LOADSIM" >"$INFLIGHT_PROMETHEUS_TARGETS_DIR/inflight-demo.json"
echo "loadsim on $LOADSIM (100 req/s x 100 ms = 10 in flight)"

say "inflight run"
target/debug/inflight run --namespace "$NS" --leader-election=false --sync-period 1s \
  --prometheus-url "$PROMETHEUS_URL" --metrics-addr "127.0.0.1:$OPERATOR_PORT" \
  --log-format text >"$DEMO_DIR/inflight.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fsS "127.0.0.1:$OPERATOR_PORT/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "127.0.0.1:$OPERATOR_PORT/readyz" >/dev/null || { echo "inflight did not become ready:"; tail "$DEMO_DIR/inflight.log"; exit 1; }
echo "operator ready; metrics on http://127.0.0.1:$OPERATOR_PORT/metrics, log in $DEMO_DIR/inflight.log"

kubectl apply -n "$NS" -f - >/dev/null <<YAML
apiVersion: inflight.dev/v1alpha1
kind: ConcurrencyPolicy
metadata: {name: web}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 40
  metrics:
    inFlight: {query: 'sum(http_requests_in_flight{namespace="{{namespace}}",deployment="{{name}}"})'}
    queueDepth: {query: 'sum(http_queue_depth{namespace="{{namespace}}",deployment="{{name}}"})'}
    arrivalRate: {query: 'sum(rate(loadsim_arrivals_total{namespace="{{namespace}}",deployment="{{name}}"}[5s]))'}
  target: {concurrencyPerPod: 10, utilization: 0.8, serviceTime: 100ms}
  queueDrainTime: 10s
  smoothing: {halfLife: 5s}
  behavior:
    panic: {window: 3s, threshold: 2.0}
    scaleUp: {stabilizationWindow: 0s, period: 5s}
    scaleDown: {stabilizationWindow: 20s, period: 5s}
    reverseCooldown: 15s
YAML
echo "policy $NS/web: 10 per pod at 0.8 utilization = 8 in flight per pod"

# Prints one line of numbers, then the policy's events not printed yet.
seen="$DEMO_DIR/seen-events"; : >"$seen"
watch_for() {
  local seconds=$1 end=$((SECONDS + $1))
  while ((SECONDS < end)); do
    local spec ready inflight
    spec=$(kubectl get deploy web -n "$NS" -o jsonpath='{.spec.replicas}')
    ready=$(kubectl get deploy web -n "$NS" -o jsonpath='{.status.readyReplicas}')
    inflight=$(kubectl get cpol web -n "$NS" -o jsonpath='{.status.lastDecision.inFlight}')
    printf '  %(%H:%M:%S)T  replicas %3s  ready %3s  in flight %6s\n' -1 "$spec" "${ready:-0}" "${inflight:-?}"
    kubectl get events -n "$NS" --field-selector involvedObject.kind=ConcurrencyPolicy \
      -o jsonpath='{range .items[*]}{.metadata.uid}{"\t"}{.type}{"\t"}{.reason}{"\t"}{.note}{.message}{"\n"}{end}' 2>/dev/null |
      while IFS=$'\t' read -r uid type reason note; do
        grep -qx "$uid" "$seen" && continue
        echo "$uid" >>"$seen"
        printf '  %(%H:%M:%S)T  \033[36mevent %s %s: %s\033[0m\n' -1 "$type" "$reason" "$note"
      done
    sleep 2
  done
}

say "steady: 100 req/s (10 in flight -> 2 pods)"
watch_for 20
say "step: 400 req/s (40 in flight -> ceil(40/8) = 5 pods)"
set_load '{"kind":"constant","rps":400}'
watch_for 40
say "burst: 1200 req/s for 20 s (120 in flight -> 15 pods; panic mode)"
set_load '{"kind":"constant","rps":1200}'
watch_for 20
say "quiet: 50 req/s (5 in flight -> 1 pod, after the 20 s scale-down window)"
set_load '{"kind":"constant","rps":50}'
watch_for 70

say "summary"
kubectl get cpol -n "$NS" -o wide
ups=$(grep -c . <(kubectl get events -n "$NS" --field-selector reason=ScaledUp -o name 2>/dev/null) || true)
downs=$(grep -c . <(kubectl get events -n "$NS" --field-selector reason=ScaledDown -o name 2>/dev/null) || true)
echo "scale-up events: $ups, scale-down events: $downs"
kubectl get cpol web -n "$NS" -o jsonpath='{range .status.conditions[*]}{.type}={.status} ({.reason}){"\n"}{end}'
curl -fsS "127.0.0.1:$OPERATOR_PORT/metrics" | grep -E '^inflight_decisions_total' || true
