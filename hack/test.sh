#!/usr/bin/env bash
# The project's test command: installs what is missing (Node, npm packages, the control
# plane), brings up the test cluster unless it is running, type-checks, runs every test
# inside its network namespace, and stops the cluster again if it started it.
#   hack/test.sh [vitest args...]     e.g. hack/test.sh --project unit
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

install_prerequisites
# A cluster of its own, so what `make dev` left on the development cluster (samples, a
# running operator) never meets the tests, and both can run at once; named after the
# checkout, so that two checkouts on one machine do not share it either.
export BERTH_NETNS=${BERTH_NETNS:-berth-test-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-6)}
export BERTH_CLUSTER_DIR=${BERTH_CLUSTER_DIR:-$REPO_ROOT/.cluster-test}
use_local_cluster

cd "$REPO_ROOT"
# vitest strips types without checking them, so the types are checked here.
log "type-checking src/, test/, bench/ and hack/"
node_modules/.bin/tsc -p tsconfig.json || die "the type check failed"
rc=0
"$HACK_DIR/cluster.sh" exec node_modules/.bin/vitest run "$@" || rc=$?
log "tests finished in $((SECONDS - started))s (exit $rc)"
exit $rc
