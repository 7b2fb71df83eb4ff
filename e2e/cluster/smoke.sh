#!/usr/bin/env bash
# Smoke test for a running test bed (start it with up.sh first):
#   1. kubectl version reports the pinned server version
#   2. a 2-replica Deployment on the kwok nodes gets 2 Ready pods, and not
#      before INFLIGHT_POD_READY_DELAY has passed
#   3. kubectl scale to 4 gives 4 Ready pods
#   4. deleting the Deployment removes its pods (kwok pod-delete stage)
#   5. Prometheus answers `up` on its HTTP API
#   6. a target written to the file_sd targets dir gets scraped
# Prints "N passed, N failed" and exits non-zero on any failure.
# Env: INFLIGHT_BED_DIR, INFLIGHT_SMOKE_TIMEOUT (seconds per wait, default 60).
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

[[ -f "$INFLIGHT_BED_DIR/env" ]] || die "no test bed at $INFLIGHT_BED_DIR (run up.sh first)"
# The running bed's settings (kubeconfig, delay) win over the caller's environment.
# shellcheck source=/dev/null
source "$INFLIGHT_BED_DIR/env"
TIMEOUT="${INFLIGHT_SMOKE_TIMEOUT:-60}"
DELAY_MS="$(duration_ms "$INFLIGHT_POD_READY_DELAY")"
NS="inflight-smoke-$$"
TARGET_FILE="$INFLIGHT_PROMETHEUS_TARGETS_DIR/smoke-$$.json"
passed=0
failed=0

kubectl() { "$KUBECTL" "$@"; }
now_ms() { date +%s%3N; }
ok() { log "PASS: $*"; passed=$((passed + 1)); }
bad() { log "FAIL: $*"; failed=$((failed + 1)); }

cleanup() {
  rm -f "$TARGET_FILE"
  kubectl delete namespace "$NS" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

ready_replicas() { kubectl -n "$NS" get deployment smoke -o jsonpath='{.status.readyReplicas}'; }

prom_query() { # QUERY -> JSON
  curl -fsS --max-time 5 -G "$PROMETHEUS_URL/api/v1/query" --data-urlencode "query=$1"
}

# Predicates for wait_for (polled until true or timeout).
has_ready() { [[ "$(ready_replicas)" == "$1" ]]; }
scheduled_pods() {
  kubectl -n "$NS" get pods -l app=smoke -o jsonpath='{range .items[*]}{.spec.nodeName}{"\n"}{end}' | grep -c .
}
has_scheduled() { [[ "$(scheduled_pods)" == "$1" ]]; }
no_pods() { [[ -z "$(kubectl -n "$NS" get pods -l app=smoke -o name)" ]]; }
prom_up() { [[ "$(prom_query "up{job=\"$1\"}")" == *'"success"'*'"1"]'* ]]; }

# wait_ready N -> wait until the Deployment reports N ready replicas.
wait_ready() { wait_for "$1 ready replicas" "$TIMEOUT" has_ready "$1"; }

check_version() {
  local v
  v="$(kubectl version -o json | sed -n '/"serverVersion"/,/}/s/.*"gitVersion": "\([^"]*\)".*/\1/p')"
  if [[ "$v" == "$KUBERNETES_VERSION" ]]; then ok "server version $v"; else bad "server version '$v', want $KUBERNETES_VERSION"; fi
  kubectl version
}

check_deployment() {
  kubectl create namespace "$NS" >/dev/null
  wait_for "default service account in $NS" "$TIMEOUT" kubectl -n "$NS" get serviceaccount default
  local t0 t1 elapsed
  t0="$(now_ms)"
  kubectl -n "$NS" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke
spec:
  replicas: 2
  selector:
    matchLabels: {app: smoke}
  template:
    metadata:
      labels: {app: smoke}
    spec:
      nodeSelector: {type: kwok}
      tolerations:
      - {key: kwok.x-k8s.io/node, operator: Exists, effect: NoSchedule}
      containers:
      - name: app
        image: registry.invalid/fake:latest
EOF
  # Early look: while the delay has not yet passed, nothing may be Ready.
  wait_for "2 smoke pods scheduled" "$TIMEOUT" has_scheduled 2
  local early_ready early_ms
  early_ready="$(ready_replicas)"
  early_ms=$(($(now_ms) - t0))
  if ((early_ms < DELAY_MS)); then
    if [[ -z "$early_ready" || "$early_ready" == 0 ]]; then
      ok "no pod Ready ${early_ms}ms after creation (delay ${DELAY_MS}ms)"
    else
      bad "$early_ready pods Ready only ${early_ms}ms after creation (delay ${DELAY_MS}ms)"
    fi
  else
    log "note: scheduling took ${early_ms}ms >= delay; skipping the early-readiness look"
  fi

  if ! wait_ready 2; then
    bad "2 ready replicas within ${TIMEOUT}s"
    kubectl -n "$NS" get pods -o wide >&2 || true
    return
  fi
  t1="$(now_ms)"
  elapsed=$((t1 - t0))
  if ((elapsed >= DELAY_MS)); then
    ok "2/2 pods Ready after ${elapsed}ms (>= delay ${DELAY_MS}ms)"
  else
    bad "2/2 pods Ready after ${elapsed}ms, before the ${DELAY_MS}ms delay"
  fi
  # Per pod, from the API's own timestamps (whole seconds): Ready - created >= floor(delay).
  local name created readyat diff
  while read -r name created readyat; do
    diff=$(($(date -d "$readyat" +%s) - $(date -d "$created" +%s)))
    if ((diff >= DELAY_MS / 1000)); then
      ok "pod $name: created $created, Ready $readyat (${diff}s)"
    else
      bad "pod $name: created $created, Ready $readyat (${diff}s < delay)"
    fi
  done < <(kubectl -n "$NS" get pods -l app=smoke -o \
    jsonpath='{range .items[*]}{.metadata.name} {.metadata.creationTimestamp} {.status.conditions[?(@.type=="Ready")].lastTransitionTime}{"\n"}{end}')

  kubectl -n "$NS" scale deployment smoke --replicas=4 >/dev/null
  if wait_ready 4; then ok "scaled to 4: 4/4 pods Ready"; else bad "scaled to 4: ready=$(ready_replicas)"; fi

  kubectl -n "$NS" delete deployment smoke --wait=true >/dev/null
  if wait_for "smoke pods deleted" "$TIMEOUT" no_pods; then
    ok "Deployment deleted: pods removed"
  else
    bad "pods still present after deleting the Deployment"
  fi
}

check_prometheus() {
  if wait_for 'up{job="prometheus"} == 1' "$TIMEOUT" prom_up prometheus; then
    ok "prometheus answers up: $(prom_query up)"
  else
    bad "prometheus up query: $(prom_query up 2>&1 || true)"
  fi

  # Register kwok's metrics endpoint as a run-time target through file_sd.
  printf '[{"targets": ["%s"], "labels": {"job": "smoke"}}]\n' "$INFLIGHT_KWOK_ADDRESS" >"$TARGET_FILE.tmp"
  mv "$TARGET_FILE.tmp" "$TARGET_FILE"
  if wait_for 'up{job="smoke"} == 1' "$TIMEOUT" prom_up smoke; then
    ok "file_sd target from $TARGET_FILE scraped"
  else
    bad "file_sd target not scraped: $(prom_query 'up{job="smoke"}' 2>&1 || true)"
  fi
}

t0=$SECONDS
check_version
check_deployment
check_prometheus
log "smoke: done in $((SECONDS - t0))s"
echo "$passed passed, $failed failed"
((failed == 0))
