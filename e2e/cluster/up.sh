#!/usr/bin/env bash
# Start the inflight e2e test bed on 127.0.0.1:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#   kwok (fake nodes + pod lifecycle) and Prometheus.
# State (certs, data, logs, PID files, kubeconfig, env) lives in
# $INFLIGHT_BED_DIR (default /tmp/inflight-bed).
#
# Idempotent: if the bed is already up and healthy this says so and exits 0
# (restarting only kwok when INFLIGHT_POD_READY_DELAY changed).  On a bed that
# is half up only the missing components are started (data is kept).  If
# anything fails or the script is interrupted, every process this run started
# is stopped again and the relevant log tail is printed.
#
# Env:
#   INFLIGHT_BED_DIR          state dir (default /tmp/inflight-bed)
#   INFLIGHT_POD_READY_DELAY  delay before a pod on a fake node becomes
#                             Running+Ready: 3s (default), 1500ms, 0, 1m ...
#   INFLIGHT_KWOK_NODES       number of fake nodes (default 2)
#   INFLIGHT_UP_TIMEOUT       seconds to wait for each component (default 120)
#   INFLIGHT_PORT_OFFSET      added to every port (default 0), for a second bed
set -euo pipefail
# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

KWOK_NODES="${INFLIGHT_KWOK_NODES:-2}"
TIMEOUT="${INFLIGHT_UP_TIMEOUT:-120}"
POD_READY_DELAY_MS="$(duration_ms "$INFLIGHT_POD_READY_DELAY")" ||
  die "INFLIGHT_POD_READY_DELAY=$INFLIGHT_POD_READY_DELAY: use e.g. 3s, 1500ms, 1m or 0"
[[ "$KWOK_NODES" =~ ^[1-9][0-9]*$ ]] || die "INFLIGHT_KWOK_NODES must be a positive integer"

D="$INFLIGHT_BED_DIR"
PKI="$D/pki"
ADMIN_KUBECONFIG="$D/kubeconfig"
TARGETS_DIR="$D/prometheus/targets"
SERVICE_CIDR=10.96.0.0/16
FIRST_SERVICE_IP=10.96.0.1

# ---------------------------------------------------------------- helpers --

start_t=$SECONDS
STARTED=()   # components started by this run (stopped again on failure)
UP_OK=0

# Keep the original stderr on fd 3: a signal trap may run while a polled
# check's ">/dev/null 2>&1" is still in effect.
exec 3>&2
on_exit() {
  local rc=$?
  exec 2>&3
  if ((rc != 0)) && ((UP_OK == 0)) && ((${#STARTED[@]})); then
    log "up.sh failed (exit $rc); stopping the processes it started"
    local i
    for ((i = ${#STARTED[@]} - 1; i >= 0; i--)); do
      stop_component "${STARTED[i]}" 10 || true
    done
    log "logs kept in $D/logs; run $CLUSTER_DIR/down.sh to remove $D"
  fi
}
trap on_exit EXIT
trap 'exec 2>&3; log "interrupted"; exit 130' INT TERM

# fail NAME MESSAGE -> print NAME's log tail and exit 1.
fail() {
  log_tail "$1"
  die "$2"
}

# start NAME BINARY ARGS... -> start BINARY in its own session, log to logs/NAME.log.
start() {
  local name="$1"
  shift
  log "starting $name"
  setsid "$@" </dev/null >>"$(log_file "$name")" 2>&1 3>&- &
  echo $! >"$(pid_file "$name")"
  STARTED+=("$name")
}

# await NAME DESCRIPTION CHECK... -> poll CHECK until it succeeds; fail fast
# if NAME's process died, fail after $TIMEOUT seconds.
await() {
  local name="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + TIMEOUT)) t=$SECONDS
  until "$@" >/dev/null 2>&1; do
    component_pid "$name" >/dev/null || fail "$name" "$name exited while waiting for $what (log: $(log_file "$name"))"
    ((SECONDS < deadline)) || fail "$name" "timed out after ${TIMEOUT}s waiting for $what (log: $(log_file "$name"))"
    sleep 0.3
  done
  log "$what ($((SECONDS - t))s)"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

https_get() { # PATH -> GET on the apiserver with the admin client cert
  curl -fsS --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "$APISERVER_URL$1"
}

kubectl() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

# --------------------------------------------------------- status checks --

bed_healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do component_pid "$c" >/dev/null || return 1; done
  https_get /readyz >/dev/null 2>&1 || return 1
  curl -fsS --max-time 5 "$PROMETHEUS_URL/-/ready" >/dev/null 2>&1 || return 1
}

any_component_running() {
  local c
  for c in "${COMPONENTS[@]}"; do component_pid "$c" >/dev/null && return 0; done
  return 1
}

# ------------------------------------------------------------ certificates --

# sign NAME SUBJECT EXTENSIONS -> PKI/NAME.{key,crt} signed by the CA.
sign() {
  local name="$1" subj="$2" ext="$3"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subj" \
    -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_certs() {
  mkdir -p "$PKI"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -days 3650 \
    -sha256 -subj "/CN=inflight-e2e-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>/dev/null
  local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
  sign apiserver "/CN=kube-apiserver" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$FIRST_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign admin "/O=system:masters/CN=inflight-admin" "$client"
  sign kube-controller-manager "/CN=system:kube-controller-manager" "$client"
  sign kube-scheduler "/CN=system:kube-scheduler" "$client"
  sign kwok "/O=system:masters/CN=kwok" "$client"
  # Client cert the apiserver uses towards aggregated APIs (requestheader auth).
  sign front-proxy-client "/CN=front-proxy-client" "$client"
  # Service-account token signing key pair.
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
  chmod 600 "$PKI"/*.key
}

# write_kubeconfig FILE CERT_NAME
write_kubeconfig() {
  local file="$1" name="$2"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: inflight-e2e
  cluster:
    server: $APISERVER_URL
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
    client-key-data: $(base64 -w0 "$PKI/$name.key")
contexts:
- name: inflight-e2e
  context:
    cluster: inflight-e2e
    user: $name
current-context: inflight-e2e
EOF
  chmod 600 "$file"
}

# ----------------------------------------------------------------- configs --

write_kwok_config() {
  mkdir -p "$D/kwok"
  sed "s/__POD_READY_DELAY_MS__/$POD_READY_DELAY_MS/g" "$CLUSTER_DIR/kwok/stages.yaml.in" >"$D/kwok/stages.yaml"
  echo "$INFLIGHT_POD_READY_DELAY" >"$D/kwok/pod-ready-delay"
}

write_configs() {
  write_kubeconfig "$ADMIN_KUBECONFIG" admin
  local c
  for c in kube-controller-manager kube-scheduler kwok; do
    write_kubeconfig "$D/$c.kubeconfig" "$c"
  done
  cat >"$D/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $D/kube-scheduler.kubeconfig
  qps: 200
  burst: 400
leaderElection:
  leaderElect: false
EOF
  write_kwok_config
  mkdir -p "$TARGETS_DIR" "$D/prometheus/data"
  sed -e "s|__TARGETS_DIR__|$TARGETS_DIR|g" -e "s|__PROMETHEUS_PORT__|$PROMETHEUS_PORT|g" \
    "$CLUSTER_DIR/prometheus/prometheus.yml.in" >"$D/prometheus/prometheus.yml"
}

write_env() {
  cat >"$D/env" <<EOF
# Source me: . $D/env
export INFLIGHT_BED_DIR=$D
export INFLIGHT_PORT_OFFSET=$PORT_OFFSET
export KUBECONFIG=$ADMIN_KUBECONFIG
export KUBECACHEDIR=$D/kube-cache
export KUBE_APISERVER_URL=$APISERVER_URL
export PROMETHEUS_URL=$PROMETHEUS_URL
export INFLIGHT_PROMETHEUS_TARGETS_DIR=$TARGETS_DIR
export INFLIGHT_POD_READY_DELAY=$INFLIGHT_POD_READY_DELAY
export INFLIGHT_KWOK_NODE_SELECTOR=type=kwok
export INFLIGHT_KWOK_TAINT=kwok.x-k8s.io/node=fake:NoSchedule
export INFLIGHT_KWOK_ADDRESS=127.0.0.1:$KWOK_PORT
export PATH="$BIN_DIR:\$PATH"
EOF
}

# -------------------------------------------------------------- components --

start_etcd() {
  start etcd "$ETCD" \
    --name=inflight \
    --data-dir="$D/etcd" \
    --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="inflight=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync \
    --auto-compaction-retention=1 \
    --quota-backend-bytes=8589934592 \
    --log-level=warn
}

start_apiserver() {
  start kube-apiserver "$KUBE_APISERVER" \
    --advertise-address=127.0.0.1 \
    --bind-address=127.0.0.1 \
    --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --cert-dir="$PKI/apiserver-dir" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --authorization-mode=Node,RBAC \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --requestheader-client-ca-file="$PKI/ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --endpoint-reconciler-type=none \
    --allow-privileged=true \
    --v=1
}

start_controller_manager() {
  start kube-controller-manager "$KUBE_CONTROLLER_MANAGER" \
    --kubeconfig="$D/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig="$D/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig="$D/kube-controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$CONTROLLER_MANAGER_PORT" \
    --cert-dir="$PKI/kube-controller-manager-dir" \
    --leader-elect=false \
    --controllers='*' \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --flex-volume-plugin-dir="$D/flexvolume" \
    --kube-api-qps=200 \
    --kube-api-burst=400 \
    --v=1
}

start_scheduler() {
  start kube-scheduler "$KUBE_SCHEDULER" \
    --config="$D/kube-scheduler.yaml" \
    --authentication-kubeconfig="$D/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$D/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$SCHEDULER_PORT" \
    --cert-dir="$PKI/kube-scheduler-dir" \
    --v=1
}

start_kwok() {
  start kwok "$KWOK" \
    --kubeconfig="$D/kwok.kubeconfig" \
    --config="$D/kwok/stages.yaml" \
    --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-ip=127.0.0.1 \
    --server-address="127.0.0.1:$KWOK_PORT" \
    --cidr=10.0.0.0/16 \
    --node-lease-duration-seconds=40
}

start_prometheus() {
  start prometheus "$PROMETHEUS" \
    --config.file="$D/prometheus/prometheus.yml" \
    --storage.tsdb.path="$D/prometheus/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
    --web.enable-lifecycle \
    --log.level=warn
}

create_nodes() {
  local i manifest=""
  for ((i = 0; i < KWOK_NODES; i++)); do
    manifest+="$(sed "s/__NODE_NAME__/kwok-node-$i/g" "$CLUSTER_DIR/kwok/node.yaml.in")"$'\n---\n'
  done
  kubectl apply -f - <<<"$manifest" >/dev/null
}

nodes_ready() {
  local ready
  ready="$(kubectl get nodes -l type=kwok \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c '^True$')"
  ((ready >= KWOK_NODES))
}

node_leases_held() {
  local leases nodes
  leases="$(kubectl -n kube-node-lease get leases -o name | grep -c .)"
  nodes="$(kubectl get nodes -l type=kwok -o name | grep -c .)"
  ((leases >= nodes))
}

# -------------------------------------------------------------------- main --

preflight_binaries() {
  local b missing=()
  for b in "$ETCD" "$KUBE_APISERVER" "$KUBE_CONTROLLER_MANAGER" "$KUBE_SCHEDULER" "$KWOK"; do
    [[ -x "$b" ]] || missing+=("$b")
  done
  ((${#missing[@]} == 0)) || die "missing binaries (run $CLUSTER_DIR/build.sh): ${missing[*]}"
  [[ -x "$KUBECTL" ]] || die "kubectl missing at $KUBECTL (run $CLUSTER_DIR/setup-tools.sh)"
  [[ -x "$PROMETHEUS" ]] || die "prometheus missing at $PROMETHEUS (run $CLUSTER_DIR/setup-tools.sh)"
  command -v openssl >/dev/null || die "openssl missing (run $CLUSTER_DIR/setup-tools.sh)"
  command -v curl >/dev/null || die "curl missing (run $CLUSTER_DIR/setup-tools.sh)"
}

preflight_ports() {
  local p busy=()
  for p in "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$CONTROLLER_MANAGER_PORT" \
    "$SCHEDULER_PORT" "$KWOK_PORT" "$PROMETHEUS_PORT"; do
    port_in_use "$p" && busy+=("$p")
  done
  ((${#busy[@]} == 0)) || die "ports already in use on 127.0.0.1: ${busy[*]} (another bed with a different INFLIGHT_BED_DIR?)"
}

# launch_kwok -> (re)write kwok's config and start it.  kwok picks a random
# holder identity per start and would wait for a previous process's node
# leases to expire (40s) before managing the nodes again, so drop them first.
launch_kwok() {
  if https_get /readyz >/dev/null 2>&1; then
    kubectl -n kube-node-lease delete lease --all >/dev/null
  fi
  write_kwok_config
  start_kwok
}

# bring_up -> start every component that is not running, wait until all are healthy.
bring_up() {
  component_pid etcd >/dev/null || start_etcd
  await etcd "etcd healthy" curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

  component_pid kube-apiserver >/dev/null || start_apiserver
  await kube-apiserver "kube-apiserver ready" https_get /readyz

  component_pid kube-controller-manager >/dev/null || start_controller_manager
  component_pid kube-scheduler >/dev/null || start_scheduler
  component_pid kwok >/dev/null || launch_kwok
  component_pid prometheus >/dev/null || start_prometheus
  await kube-controller-manager "kube-controller-manager healthy" \
    curl -fsSk --max-time 2 "https://127.0.0.1:$CONTROLLER_MANAGER_PORT/healthz"
  await kube-scheduler "kube-scheduler healthy" \
    curl -fsSk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz"
  await kwok "kwok healthy" curl -fsS --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz"
  await prometheus "prometheus ready" curl -fsS --max-time 2 "$PROMETHEUS_URL/-/ready"

  create_nodes # kubectl apply: a no-op for nodes that exist
  await kwok "$KWOK_NODES kwok nodes Ready" nodes_ready
  await kwok "kwok node leases held" node_leases_held
  # Pods need their namespace's default ServiceAccount (made by the controller manager).
  await kube-controller-manager "default service account created" kubectl get serviceaccount default -n default
  write_env
}

already_up() {
  log "test bed already up and healthy in $D"
  if [[ "$(cat "$D/kwok/pod-ready-delay" 2>/dev/null)" != "$INFLIGHT_POD_READY_DELAY" ]]; then
    log "pod ready delay changed to $INFLIGHT_POD_READY_DELAY; restarting kwok"
    stop_component kwok
  fi
  bring_up
  UP_OK=1
  log "source $D/env"
}

main() {
  if bed_healthy; then
    already_up
    return
  fi
  if any_component_running; then
    if [[ -f "$PKI/ca.crt" && -f "$D/kubeconfig" && -f "$D/kwok/stages.yaml" ]]; then
      # Keep the data (others may be using the bed); start what is missing.
      log "test bed in $D is only partly up; starting the missing components"
      preflight_binaries
      bring_up
      UP_OK=1
      log "test bed repaired in $((SECONDS - start_t))s; source $D/env"
      return
    fi
    log "test bed in $D is only partly up and incomplete; tearing it down first"
    "$CLUSTER_DIR/down.sh"
  fi
  preflight_binaries
  preflight_ports
  rm -rf "$D"
  mkdir -p "$D/logs" "$D/pids"
  log "state dir $D"
  make_certs
  write_configs
  bring_up
  UP_OK=1
  log "test bed up in $((SECONDS - start_t))s: kubeconfig $ADMIN_KUBECONFIG, prometheus $PROMETHEUS_URL"
  log "use it with: source $D/env"
}

main "$@"
