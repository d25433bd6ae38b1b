#!/usr/bin/env bash
# `make dev`: brings up the local cluster, installs Berth's CRDs and roles, runs the
# operator in the foreground and applies the samples, so an application comes up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PATH="$("$HACK_DIR/ensure-node.sh"):$PATH"
export PATH
"$HACK_DIR/ensure-npm-packages.sh"
"$HACK_DIR/ensure-debian-packages.sh"
"$HACK_DIR/cluster.sh" up >/dev/null
cd "$REPO_ROOT"

in_cluster() { "$HACK_DIR/cluster.sh" exec "$@"; }

log "installing CRDs, Berth's ClusterRoles and the berth-system namespace"
in_cluster kubectl apply --server-side --field-manager=berth-dev -f crds/ -f config/rbac/ >/dev/null
in_cluster kubectl wait --for=condition=Established --timeout=60s -f crds/ >/dev/null
in_cluster kubectl create namespace berth-system --dry-run=client -o yaml | in_cluster kubectl apply --server-side --field-manager=berth-dev -f - >/dev/null

HTTP_PORT=${BERTH_DEV_HTTP_PORT:-8080}
log "starting the operator (metrics on http://127.0.0.1:$HTTP_PORT/metrics inside the namespace)"
in_cluster node src/cli.ts operator --config config/operator/config.yaml --http-port "$HTTP_PORT" --identity dev &
operator=$!
trap 'kill -TERM $operator 2>/dev/null; wait $operator' INT TERM EXIT

until in_cluster curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1; do
  kill -0 "$operator" 2>/dev/null || die "the operator exited; see its log above"
  sleep 0.5
done

log "applying config/samples/"
in_cluster kubectl apply -f config/samples/application.yaml >/dev/null
until in_cluster kubectl get namespace shop >/dev/null 2>&1; do sleep 0.5; done
in_cluster kubectl apply -f config/samples/version.yaml >/dev/null
in_cluster kubectl wait --for=condition=Ready --timeout=120s -n shop versions.berth.dev/v1 >/dev/null &&
  in_cluster kubectl get applications.berth.dev,versions.berth.dev -A

cat <<EOF2

Berth is running (Ctrl-C stops it; the cluster keeps running until 'make cluster-down').
Its API server lives in the network namespace '${BERTH_NETNS:-berth}'; run clients
through hack/cluster.sh exec, for example:

  hack/cluster.sh exec kubectl get bapp,bver -A
  hack/cluster.sh exec kubectl describe versions.berth.dev -n shop v1
  hack/cluster.sh exec kubectl get events -n shop
  hack/cluster.sh exec bash          # a shell with KUBECONFIG set

EOF2
wait "$operator"
