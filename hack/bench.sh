#!/usr/bin/env bash
# `make bench`: runs every benchmark in bench/ (see bench/README.md) after installing what
# they need; the cluster benchmarks use the local cluster, started here when none runs.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install_prerequisites
use_local_cluster

cd "$REPO_ROOT"
for bench in render balancer; do
  log "bench/$bench.ts"
  node "bench/$bench.ts"
done
for bench in propagation recovery scale operator release; do
  log "bench/$bench.ts"
  "$HACK_DIR/cluster.sh" exec node "bench/$bench.ts"
done
