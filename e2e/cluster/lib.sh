# shellcheck shell=bash disable=SC2034 # variables are used by the scripts that source this
# Common settings and helpers for the inflight e2e test bed scripts.
# Sourced (not executed) by build.sh, setup-tools.sh, up.sh, down.sh, smoke.sh.

CLUSTER_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# shellcheck source=versions.env
source "$CLUSTER_DIR/versions.env"

# Binary cache (outside the repo).  Each component lives in a directory whose
# name carries its version; the top-level names are symlinks to the current one.
INFLIGHT_CACHE_DIR="${INFLIGHT_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/inflight}"
BIN_DIR="$INFLIGHT_CACHE_DIR/bin"
K8S_BIN_DIR="$BIN_DIR/kubernetes-$KUBERNETES_VERSION"
ETCD_BIN_DIR="$BIN_DIR/etcd-$ETCD_VERSION"
KWOK_BIN_DIR="$BIN_DIR/kwok-$KWOK_VERSION"
TOOLS_BIN_DIR="$BIN_DIR/$KUBECTL_LAYER_PACKAGE-$KUBECTL_LAYER_VERSION"

KUBE_APISERVER="$K8S_BIN_DIR/kube-apiserver"
KUBE_CONTROLLER_MANAGER="$K8S_BIN_DIR/kube-controller-manager"
KUBE_SCHEDULER="$K8S_BIN_DIR/kube-scheduler"
ETCD="$ETCD_BIN_DIR/etcd"
KWOK="$KWOK_BIN_DIR/kwok"
KUBECTL="$TOOLS_BIN_DIR/kubectl"
HELM="$TOOLS_BIN_DIR/helm"
PROMETHEUS="${PROMETHEUS:-/usr/bin/prometheus}"

# Test bed state (certs, data, logs, pids, kubeconfig).
INFLIGHT_BED_DIR="${INFLIGHT_BED_DIR:-/tmp/inflight-bed}"
INFLIGHT_POD_READY_DELAY="${INFLIGHT_POD_READY_DELAY:-3s}"
INFLIGHT_BED_DIR="${INFLIGHT_BED_DIR%/}"
case "$INFLIGHT_BED_DIR" in
  /?*/?*) ;; # absolute and at least two levels deep: safe to rm -rf
  *)
    echo "INFLIGHT_BED_DIR=$INFLIGHT_BED_DIR: must be an absolute path like /tmp/inflight-bed" >&2
    exit 1
    ;;
esac
# Keep kubectl's discovery cache inside the state dir instead of ~/.kube/cache.
export KUBECACHEDIR="${KUBECACHEDIR:-$INFLIGHT_BED_DIR/kube-cache}"

# Fixed loopback ports (chosen to not collide with default ports of real clusters).
# INFLIGHT_PORT_OFFSET (default 0) shifts all of them, so a second bed (with its
# own INFLIGHT_BED_DIR) can run beside the default one.
PORT_OFFSET="${INFLIGHT_PORT_OFFSET:-0}"
[[ "$PORT_OFFSET" =~ ^[0-9]+$ ]] || { echo "INFLIGHT_PORT_OFFSET must be a number" >&2; exit 1; }
ETCD_CLIENT_PORT=$((12379 + PORT_OFFSET))
ETCD_PEER_PORT=$((12380 + PORT_OFFSET))
APISERVER_PORT=$((16443 + PORT_OFFSET))
CONTROLLER_MANAGER_PORT=$((16257 + PORT_OFFSET))
SCHEDULER_PORT=$((16259 + PORT_OFFSET))
KWOK_PORT=$((16080 + PORT_OFFSET))
PROMETHEUS_PORT=$((19090 + PORT_OFFSET))

APISERVER_URL="https://127.0.0.1:$APISERVER_PORT"
PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(date +%H:%M:%S)" "$*" >&2; exit 1; }

# wait_for DESCRIPTION TIMEOUT_SECONDS COMMAND...
# Polls COMMAND (every 0.5s) until it succeeds; returns 1 after TIMEOUT_SECONDS.
wait_for() {
  local what="$1" timeout="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      printf '[%s] ERROR: timed out after %ss waiting for %s\n' "$(date +%H:%M:%S)" "$timeout" "$what" >&2
      return 1
    fi
    sleep 0.5
  done
}

# Convert a duration ("3s", "1500ms", "2m", "0") to milliseconds.
duration_ms() {
  local d="$1"
  [[ "$d" =~ ^([0-9]+)(ms|s|m)?$ ]] || return 1
  local n=$((10#${BASH_REMATCH[1]}))
  case "${BASH_REMATCH[2]}" in
    ms | "") echo "$n" ;;
    s) echo $((n * 1000)) ;;
    m) echo $((n * 60000)) ;;
  esac
}

# ---- processes (one PID file per component in $INFLIGHT_BED_DIR/pids) ------

# Components in start order; down.sh stops them in reverse.
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok prometheus)

# is_alive PID -> the process exists and is not a zombie.
is_alive() {
  local state
  state="$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null)" || return 1
  [[ -n "$state" && "$state" != Z ]]
}

pid_file() { echo "$INFLIGHT_BED_DIR/pids/$1.pid"; }
log_file() { echo "$INFLIGHT_BED_DIR/logs/$1.log"; }

# component_pid NAME -> prints the PID if NAME's PID file points at a live
# process that belongs to this bed (its command line mentions the state dir,
# so a recycled PID is never mistaken for ours).
component_pid() {
  local f pid cmdline
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" || return 1
  [[ "$cmdline" == *"$INFLIGHT_BED_DIR"* ]] || return 1
  echo "$pid"
}

# stop_component NAME [TIMEOUT] -> SIGTERM, wait for exit, SIGKILL after TIMEOUT s.
stop_component() {
  local name="$1" timeout="${2:-20}" pid deadline
  if pid="$(component_pid "$name")"; then
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while is_alive "$pid"; do
      if ((SECONDS >= deadline)); then
        log "$name (pid $pid) did not exit after ${timeout}s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 10))
        while is_alive "$pid"; do
          ((SECONDS < deadline)) || { log "$name (pid $pid) survived SIGKILL"; return 1; }
          sleep 0.2
        done
        break
      fi
      sleep 0.2
    done
    log "stopped $name (pid $pid)"
  fi
  rm -f "$(pid_file "$name")"
}

# log_tail NAME [LINES] -> print the end of NAME's log to stderr.
log_tail() {
  local f
  f="$(log_file "$1")"
  [[ -f "$f" ]] || return 0
  printf '%s\n' "----- last ${2:-40} lines of $f -----" >&2
  tail -n "${2:-40}" "$f" >&2
  printf '%s\n' "----- end of $f -----" >&2
}
