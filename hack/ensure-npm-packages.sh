#!/usr/bin/env bash
# Installs the locked npm dependencies when node_modules is missing or older than the
# lock file. Expects the Node from ensure-node.sh on PATH.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
stamp=node_modules/.package-lock.json
if [[ ! -f "$stamp" || package-lock.json -nt "$stamp" ]]; then
  log "installing npm dependencies"
  run_logged npm-packages npm ci --no-audit --no-fund --loglevel=error
fi
