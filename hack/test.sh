#!/usr/bin/env bash
# The project's test command: installs what is missing (Node, npm packages, the control
# plane), brings up the local cluster unless one is running, type-checks, runs every test
# inside its network namespace, and stops the cluster again if it started it.
#   hack/test.sh [vitest args...]     e.g. hack/test.sh --project unit
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

install_prerequisites
use_local_cluster

cd "$REPO_ROOT"
# vitest strips types without checking them, so the types are checked here.
log "type-checking src/, test/, bench/ and hack/"
node_modules/.bin/tsc -p tsconfig.json || die "the type check failed"
rc=0
"$HACK_DIR/cluster.sh" exec node_modules/.bin/vitest run "$@" || rc=$?
log "tests finished in $((SECONDS - started))s (exit $rc)"
exit $rc
