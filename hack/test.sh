#!/usr/bin/env bash
# The project's test command: installs what is missing (Node, npm packages, the control
# plane), brings up the local cluster unless one is running, runs every test inside its
# network namespace, and stops the cluster again if it started it.
#   hack/test.sh [vitest args...]     e.g. hack/test.sh --project unit
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

PATH="$("$HACK_DIR/ensure-node.sh"):$PATH"
export PATH
"$HACK_DIR/ensure-npm-packages.sh"
"$HACK_DIR/ensure-debian-packages.sh"

cluster_started_here=false
if ! "$HACK_DIR/cluster.sh" status >/dev/null 2>&1; then
  "$HACK_DIR/cluster.sh" up >/dev/null
  cluster_started_here=true
fi
stop_cluster() {
  if $cluster_started_here && [[ -z "${BERTH_KEEP_CLUSTER:-}" ]]; then
    "$HACK_DIR/cluster.sh" down >/dev/null 2>&1 || true
  fi
}
trap stop_cluster EXIT

cd "$REPO_ROOT"
rc=0
"$HACK_DIR/cluster.sh" exec node_modules/.bin/vitest run "$@" || rc=$?
log "tests finished in $((SECONDS - started))s (exit $rc)"
exit $rc
