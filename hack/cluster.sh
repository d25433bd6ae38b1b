#!/usr/bin/env bash
# A real, self-contained Kubernetes control plane for development and tests: etcd,
# kube-apiserver, kube-controller-manager, kube-scheduler and kwok (fake nodes that act
# as kubelets), all inside a network namespace of their own whose loopback carries the
# pod CIDR, so pod IPs are real addresses that local processes can bind and serve on
# while no traffic ever leaves the namespace.
#
#   hack/cluster.sh up        start (or confirm) the cluster; idempotent, restarts only
#                             what died and keeps the cluster's data
#   hack/cluster.sh down      stop every process, delete the namespace and the state
#   hack/cluster.sh status    exit 0 when healthy, print what runs
#   hack/cluster.sh env       print the variables that point clients at the cluster
#   hack/cluster.sh exec CMD  run CMD inside the namespace with KUBECONFIG set
#   hack/cluster.sh restart C stop and start one component (e.g. kube-apiserver), keeping state
#   hack/cluster.sh logs      print where the component logs are
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NETNS=${BERTH_NETNS:-berth}
CLUSTER_DIR=${BERTH_CLUSTER_DIR:-$REPO_ROOT/.cluster}
POD_CIDR=10.244.0.0/16
SERVICE_CIDR=10.96.0.0/16
# The "host" address of the control plane and of every fake node, on the namespace's
# loopback: the API server must advertise an address that is not 127.0.0.0/8.
HOST_IP=10.243.0.1
API_PORT=6443
NODES=${BERTH_CLUSTER_NODES:-3}
KUBECONFIG_PATH="$CLUSTER_DIR/admin.kubeconfig"
PKI="$CLUSTER_DIR/pki"
LOGS="$CLUSTER_DIR/logs"
RUN="$CLUSTER_DIR/run"
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)

# Exactly this namespace: `grep -w` would also take berth-x for berth.
netns_exists() { ip netns list 2>/dev/null | grep -qE "^$NETNS( |\$)"; }

in_netns() { [[ "$(ip netns identify $$ 2>/dev/null)" == "$NETNS" ]]; }

# Runs a command inside the namespace (directly when this shell already is there).
nsexec() {
  if in_netns; then "$@"; else ip netns exec "$NETNS" "$@"; fi
}

kubectl_admin() { nsexec "$(kube_bin kubectl)" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

require_root() {
  [[ $EUID -eq 0 ]] || die "the local cluster creates a network namespace and needs root (run with sudo)"
}

ensure_host_tools() {
  local missing=()
  command -v ip >/dev/null || missing+=(iproute2)
  command -v openssl >/dev/null || missing+=(openssl)
  command -v curl >/dev/null || missing+=(curl)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

create_netns() {
  if ! netns_exists; then
    ip netns add "$NETNS"
  fi
  nsexec ip link set lo up
  # An address with a prefix on loopback makes the whole prefix local: every pod IP
  # kwok hands out can be bound by a stand-in container process.
  nsexec ip addr replace "$POD_CIDR" dev lo
  nsexec ip addr replace "$HOST_IP/32" dev lo
}

issue_cert() { # name subject sans(comma-separated, may be empty) usage
  local name=$1 subject=$2 sans=$3 usage=$4
  [[ -f "$PKI/$name.crt" ]] && return 0
  local ext="$PKI/$name.ext"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [[ -n "$sans" ]] && echo "subjectAltName=$sans"
  } >"$ext"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -extfile "$ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$ext"
}

write_kubeconfig() { # file user
  local file=$1 user=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: berth-local
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $user
  user:
    client-certificate: $PKI/$user.crt
    client-key: $PKI/$user.key
contexts:
- name: berth-local
  context: {cluster: berth-local, user: $user}
current-context: berth-local
EOF
}

create_pki() {
  mkdir -p "$PKI"
  if [[ ! -f "$PKI/ca.crt" ]]; then
    openssl req -x509 -new -newkey rsa:2048 -nodes -days 3650 -subj "/CN=berth-local-ca" \
      -keyout "$PKI/ca.key" -out "$PKI/ca.crt" 2>/dev/null
  fi
  [[ -f "$PKI/service-account.key" ]] || openssl genrsa -out "$PKI/service-account.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/service-account.key" -pubout -out "$PKI/service-account.pub" 2>/dev/null
  issue_cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:$HOST_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" serverAuth
  issue_cert admin "/O=system:masters/CN=berth-admin" "" clientAuth
  issue_cert controller-manager "/CN=system:kube-controller-manager" "" clientAuth
  issue_cert scheduler "/CN=system:kube-scheduler" "" clientAuth
  issue_cert kwok "/O=system:masters/CN=kwok" "" clientAuth
  write_kubeconfig "$KUBECONFIG_PATH" admin
  write_kubeconfig "$CLUSTER_DIR/controller-manager.kubeconfig" controller-manager
  write_kubeconfig "$CLUSTER_DIR/scheduler.kubeconfig" scheduler
  write_kubeconfig "$CLUSTER_DIR/kwok.kubeconfig" kwok
}

component_args() {
  case $1 in
    etcd) echo --name=berth --data-dir="$CLUSTER_DIR/etcd" \
      --listen-client-urls=http://127.0.0.1:2379 --advertise-client-urls=http://127.0.0.1:2379 \
      --listen-peer-urls=http://127.0.0.1:2380 --initial-advertise-peer-urls=http://127.0.0.1:2380 \
      --initial-cluster=berth=http://127.0.0.1:2380 --unsafe-no-fsync --log-level=warn ;;
    kube-apiserver) echo --etcd-servers=http://127.0.0.1:2379 \
      --bind-address=0.0.0.0 --secure-port="$API_PORT" --advertise-address="$HOST_IP" \
      --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
      --client-ca-file="$PKI/ca.crt" --authorization-mode=Node,RBAC \
      --service-account-issuer=https://kubernetes.default.svc.cluster.local \
      --service-account-key-file="$PKI/service-account.pub" \
      --service-account-signing-key-file="$PKI/service-account.key" \
      --service-cluster-ip-range="$SERVICE_CIDR" --allow-privileged=true ;;
    kube-controller-manager) echo --kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
      --authentication-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
      --authorization-kubeconfig="$CLUSTER_DIR/controller-manager.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port=10257 --leader-elect=false \
      --use-service-account-credentials=true \
      --service-account-private-key-file="$PKI/service-account.key" --root-ca-file="$PKI/ca.crt" \
      --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24 \
      --service-cluster-ip-range="$SERVICE_CIDR" \
      --concurrent-deployment-syncs=10 --concurrent-replicaset-syncs=10 --concurrent-namespace-syncs=10 ;;
    kube-scheduler) echo --kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
      --authentication-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
      --authorization-kubeconfig="$CLUSTER_DIR/scheduler.kubeconfig" \
      --bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false ;;
    kwok) echo --kubeconfig="$CLUSTER_DIR/kwok.kubeconfig" --config="$HACK_DIR/kwok/kwok.yaml" \
      --node-ip="$HOST_IP" --server-address=127.0.0.1:10247 ;;
  esac
}

# A process counts as alive unless it is gone or a zombie (kill -0 succeeds on those).
pid_alive() {
  local state
  [[ -f "$RUN/$1.pid" ]] || return 1
  state=$(ps -o stat= -p "$(cat "$RUN/$1.pid")" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}

start_component() {
  local name=$1
  pid_alive "$name" && return 0
  # The component writes its own PID (the shell execs into it), so the pid file names
  # the component and not a wrapper; setsid keeps a terminal's Ctrl-C away from it.
  # shellcheck disable=SC2016,SC2046
  nsexec setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$(kube_bin "$name")" $(component_args "$name") \
    >>"$LOGS/$name.log" 2>&1 </dev/null &
}

# TERM, then KILL after 10 s; returns once the process is gone (KILL is asynchronous, and
# starting the component again while it still runs would be a no-op).
stop_component() {
  local name=$1 pid
  pid_alive "$name" || return 0
  pid=$(cat "$RUN/$name.pid")
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do pid_alive "$name" || return 0; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  while pid_alive "$name"; do sleep 0.1; done
}

# Waits until CMD succeeds, up to SECONDS; names the component whose log to read if not.
wait_for() { # seconds what cmd...
  local seconds=$1 what=$2
  shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "$what not ready after ${seconds}s; logs: $LOGS"
    fi
    sleep 0.2
  done
}

api_ready() { kubectl_admin get --raw /readyz; }

nodes_ready() {
  local ready
  ready=$(kubectl_admin get nodes -l berth.dev/fake-node=true \
    -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{" "}{.spec.podCIDR}{"\n"}{end}' |
    grep -c '^True 10\.244\.' || true)
  [[ "$ready" -ge "$NODES" ]]
}

default_service_account_exists() { kubectl_admin -n default get serviceaccount default; }

create_nodes() {
  local i
  for ((i = 1; i <= NODES; i++)); do
    kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: berth-node-$i
  labels:
    berth.dev/fake-node: "true"
    kubernetes.io/hostname: berth-node-$i
    kubernetes.io/os: linux
    topology.kubernetes.io/zone: zone-$(( (i - 1) % 2 + 1 ))
  annotations:
    node.alpha.kubernetes.io/ttl: "0"
spec: {}
EOF
  done
}

healthy() {
  local c
  for c in "${COMPONENTS[@]}"; do pid_alive "$c" || return 1; done
  api_ready && nodes_ready
}

cmd_up() {
  require_root
  ensure_host_tools
  "$HACK_DIR/build-control-plane.sh"
  if netns_exists && [[ -f "$KUBECONFIG_PATH" ]] && healthy >/dev/null 2>&1; then
    log "cluster already running"
    cmd_env
    return 0
  fi
  local started=$SECONDS c restarted=()
  if ! netns_exists; then
    # Components left running without their namespace cannot be reached; they go, their
    # state in $CLUSTER_DIR stays.
    for c in "${COMPONENTS[@]}"; do stop_component "$c"; done
  fi
  for c in "${COMPONENTS[@]}"; do
    [[ -f "$RUN/$c.pid" ]] && ! pid_alive "$c" && restarted+=("$c")
  done
  [[ ${#restarted[@]} -gt 0 ]] && log "restarting ${restarted[*]}; the cluster's data is kept"
  mkdir -p "$CLUSTER_DIR" "$LOGS" "$RUN"
  create_netns
  create_pki
  start_component etcd
  wait_for 60 etcd nsexec curl -fsS http://127.0.0.1:2379/health
  start_component kube-apiserver
  wait_for 120 kube-apiserver api_ready
  start_component kube-controller-manager
  start_component kube-scheduler
  start_component kwok
  create_nodes
  wait_for 120 "fake nodes" nodes_ready
  wait_for 60 "service account controller" default_service_account_exists
  log "cluster up in $((SECONDS - started))s (namespace $NETNS, logs in $LOGS)"
  cmd_env
}

cmd_down() {
  local pids
  if netns_exists; then
    # Every process in the namespace goes, including stand-in servers and operators a
    # test run left behind, not only the components this script started.
    pids=$(ip netns pids "$NETNS" 2>/dev/null || true)
    if [[ -n "$pids" ]]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null || true
      for _ in $(seq 50); do
        pids=$(ip netns pids "$NETNS" 2>/dev/null || true)
        [[ -z "$pids" ]] && break
        sleep 0.1
      done
      # shellcheck disable=SC2086
      [[ -n "$pids" ]] && kill -KILL $pids 2>/dev/null || true
      # KILL is asynchronous: wait until they are gone, so that none outlives `down`.
      for _ in $(seq 100); do
        [[ -z "$(ip netns pids "$NETNS" 2>/dev/null || true)" ]] && break
        sleep 0.1
      done
    fi
    ip netns delete "$NETNS"
  fi
  local name
  for name in "${COMPONENTS[@]}"; do stop_component "$name"; done
  # Logs of the last run stay for a post-mortem; state, keys and credentials do not.
  rm -rf "$CLUSTER_DIR/etcd" "$PKI" "$RUN" "$CLUSTER_DIR"/*.kubeconfig
  log "cluster down"
}

cmd_status() {
  local c state rc=0
  for c in "${COMPONENTS[@]}"; do
    if pid_alive "$c"; then state="running (pid $(cat "$RUN/$c.pid"))"; else state=stopped; rc=1; fi
    printf '%-24s %s\n' "$c" "$state"
  done
  if [[ $rc -eq 0 ]] && api_ready >/dev/null 2>&1; then
    kubectl_admin get nodes -o wide
  else
    rc=1
  fi
  return $rc
}

cmd_restart() {
  local name=${1:-}
  [[ " ${COMPONENTS[*]} " == *" $name "* ]] || die "usage: hack/cluster.sh restart {${COMPONENTS[*]}}"
  stop_component "$name"
  start_component "$name"
  # Only the API: nodes may briefly report NotReady after an API-server outage, which
  # is the cluster recovering, not the restart failing.
  wait_for 120 "$name" api_ready
  log "$name restarted"
}

cmd_env() {
  cat <<EOF
export BERTH_NETNS=$NETNS
export KUBECONFIG=$KUBECONFIG_PATH
# The API server listens inside the network namespace; run clients there, e.g.
#   hack/cluster.sh exec kubectl get nodes
EOF
}

cmd_exec() {
  [[ $# -gt 0 ]] || die "usage: hack/cluster.sh exec CMD [ARGS...]"
  local assets node_dir
  assets=$(dirname "$(kube_bin kubectl)")
  # The project's Node first, so `exec node ...` never picks a system Node that is too old.
  node_dir=$("$HACK_DIR/ensure-node.sh")
  assets="$assets:$node_dir"
  if in_netns; then
    KUBECONFIG=$KUBECONFIG_PATH PATH="$assets:$PATH" exec "$@"
  else
    exec ip netns exec "$NETNS" env KUBECONFIG="$KUBECONFIG_PATH" BERTH_NETNS="$NETNS" PATH="$assets:$PATH" "$@"
  fi
}

case ${1:-} in
  up) cmd_up ;;
  down) require_root; cmd_down ;;
  status) cmd_status ;;
  env) cmd_env ;;
  exec) shift; cmd_exec "$@" ;;
  restart) shift; cmd_restart "$@" ;;
  logs) echo "$LOGS" ;;
  *) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
