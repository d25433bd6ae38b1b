#!/usr/bin/env bash
# `make dev`: brings up the local cluster and shows how to use it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PATH="$("$HACK_DIR/ensure-node.sh"):$PATH"
export PATH
"$HACK_DIR/ensure-npm-packages.sh"
"$HACK_DIR/cluster.sh" up >/dev/null
"$HACK_DIR/cluster.sh" exec kubectl get nodes
cat <<EOF2

The local cluster is up. Its API server lives in the network namespace
'${BERTH_NETNS:-berth}'; run clients through hack/cluster.sh exec, for example:

  hack/cluster.sh exec kubectl get pods -A
  hack/cluster.sh exec bash          # a shell with KUBECONFIG set

Stop it with: make cluster-down
EOF2
