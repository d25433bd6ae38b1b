#!/usr/bin/env bash
# `make dev`: brings up the local cluster, installs Berth's CRDs and roles, runs the
# operator in the foreground and applies the samples, so an application comes up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
install_prerequisites
"$HACK_DIR/cluster.sh" up >/dev/null
cd "$REPO_ROOT"

in_cluster() { "$HACK_DIR/cluster.sh" exec "$@"; }

log "installing CRDs, Berth's ClusterRoles and admission policies, the berth-system and berth-loadbalancers namespaces"
# The tests apply the same files under a field manager of their own.
in_cluster kubectl apply --server-side --force-conflicts --field-manager=berth-dev -f crds/ -f config/rbac/ -f config/admission/ >/dev/null
in_cluster kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
for namespace in berth-system berth-loadbalancers; do
  in_cluster kubectl create namespace "$namespace" --dry-run=client -o yaml | in_cluster kubectl apply --server-side --field-manager=berth-dev -f - >/dev/null
done

HTTP_PORT=${BERTH_DEV_HTTP_PORT:-8081}
LB_PREFIX="$REPO_ROOT/.cluster/lb-public"
# Here nginx shares one network namespace with the stand-in pods, which hold port 8080
# on their pod IPs; a wildcard listen on 8080 would collide, so nginx takes 8000.
NGINX_PORT=8000
DEV_CONFIG="$REPO_ROOT/.cluster/operator-config.yaml"
# The API server shares the operator's network here: the webhooks are reached at 127.0.0.1.
sed -e "s/^  httpPort: 8080$/  httpPort: $NGINX_PORT/" -e "s/^  enabled: false$/  enabled: true/" config/operator/config.yaml >"$DEV_CONFIG"
in_cluster node src/cli.ts webhooks --config "$DEV_CONFIG" --url https://127.0.0.1:9443 |
  in_cluster kubectl apply --server-side --force-conflicts --field-manager=berth-dev -f - >/dev/null
pids=()
# A process and everything it started, children first gathered, so none is left behind.
process_tree() {
  local child
  for child in $(pgrep -P "$1" 2>/dev/null); do process_tree "$child"; done
  echo "$1"
}
stop_all() {
  trap - INT TERM EXIT
  local tree=() pid
  for pid in "${pids[@]}"; do mapfile -t -O "${#tree[@]}" tree < <(process_tree "$pid"); done
  # nginx outlives an agent that was killed outright: it is then no longer in the tree.
  [[ -f "$LB_PREFIX/logs/nginx.pid" ]] && tree+=("$(cat "$LB_PREFIX/logs/nginx.pid")")
  kill -TERM "${tree[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop_all INT TERM EXIT

# The operator exits by design when it loses its lease (so that it never acts beside a
# new leader); like a kubelet, start it again.
supervise_operator() {
  while true; do
    in_cluster node src/cli.ts operator --config "$DEV_CONFIG" --http-port "$HTTP_PORT" --identity dev || true
    log "the operator exited; starting it again in 2s"
    sleep 2
  done
}

log "starting the operator (metrics on http://127.0.0.1:$HTTP_PORT/metrics inside the namespace)"
supervise_operator &
pids+=($!)
until in_cluster curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1; do sleep 0.5; done

log "applying config/samples/"
in_cluster kubectl apply -f config/samples/loadbalancer.yaml -f config/samples/application.yaml >/dev/null
until in_cluster kubectl get namespace shop >/dev/null 2>&1; do sleep 0.5; done
in_cluster kubectl apply -f config/samples/version.yaml -f config/samples/release.yaml >/dev/null

# kwok's nodes run no containers: stand-in servers answer on the shop's pod IPs, and
# the agent of one of the LoadBalancer's pods runs here with a real nginx.
log "starting stand-ins for the application's pods, and the load balancer's agent with nginx"
in_cluster node hack/stand-in-pods.ts &
pids+=($!)
lb_pod=""
until [[ -n $lb_pod ]]; do
  lb_pod=$(in_cluster kubectl get pods -n berth-loadbalancers -l berth.dev/loadbalancer=public -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
  sleep 0.5
done
mkdir -p "$LB_PREFIX"
# nginx started as root runs its workers as nobody, who must be able to enter the prefix.
chmod 755 "$LB_PREFIX"
in_cluster node src/cli.ts agent --loadbalancer public --namespace berth-loadbalancers --pod-name "$lb_pod" \
  --prefix "$LB_PREFIX" --http-port 10254 --manage-nginx &
pids+=($!)

in_cluster kubectl wait --for=condition=Ready --timeout=120s -n shop versions.berth.dev/v1 >/dev/null
in_cluster kubectl wait --for=condition=Ready --timeout=120s loadbalancers.berth.dev/public >/dev/null
in_cluster kubectl get applications.berth.dev,versions.berth.dev,loadbalancers.berth.dev -A
until in_cluster curl -fsS -H 'Host: shop.example.com' http://127.0.0.1:$NGINX_PORT/ >/dev/null 2>&1; do sleep 0.5; done

cat <<EOF2

Berth is running (Ctrl-C stops it; the cluster keeps running until 'make cluster-down').
Its API server and nginx live in the network namespace '${BERTH_NETNS:-berth}'; run
clients through hack/cluster.sh exec, for example:

  hack/cluster.sh exec curl -H 'Host: shop.example.com' http://127.0.0.1:$NGINX_PORT/
  hack/cluster.sh exec kubectl get bapp,bver,blb -A
  hack/cluster.sh exec kubectl describe versions.berth.dev -n shop v1
  hack/cluster.sh exec kubectl get events -n shop
  hack/cluster.sh exec bash          # a shell with KUBECONFIG set

The kubectl plugin for grey releases (kubectl berth --help lists its commands):

  export PATH="$PWD/hack/bin:\$PATH"
  hack/cluster.sh exec kubectl berth deploy shop --image :1.5.0
  hack/cluster.sh exec kubectl berth wait shop

Scale the shop and watch nginx follow without a reload:

  hack/cluster.sh exec kubectl patch versions.berth.dev -n shop v1 --type=merge -p '{"spec":{"replicas":5}}'

EOF2
# The stand-ins and the agent are not restarted: when one of them stops, so does the rest.
wait -n "${pids[@]}" || true
die "a part of make dev stopped (see its log above); stopping the others"
