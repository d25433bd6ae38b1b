# Shared by the hack/ scripts: pinned versions, cache locations and logging.
# shellcheck shell=bash
HACK_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$HACK_DIR/.." && pwd)
# shellcheck source=versions.env
source "$HACK_DIR/versions.env"

# Everything built or downloaded lives outside the work tree, keyed by version, so a
# fresh clone on a machine that has run Berth before starts warm.
BERTH_CACHE=${BERTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/berth}
KUBE_ASSETS_DIR="$BERTH_CACHE/kube-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION-helm-$HELM_VERSION/bin"
NODE_DIR="$BERTH_CACHE/node-$NODE_VERSION"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Runs a command (or shell function) with its output in $BERTH_CACHE/logs/NAME.log, so an
# installer's hundreds of lines do not bury Berth's own; on failure the log's tail is shown.
run_logged() { # name command...
  local name=$1 file
  shift
  mkdir -p "$BERTH_CACHE/logs"
  file="$BERTH_CACHE/logs/$name.log"
  # In the background, not under `if`: a tested command would run with errexit off.
  ("$@") >"$file" 2>&1 &
  if ! wait $!; then
    tail -n 40 "$file" >&2
    die "$name failed; the whole output is in $file"
  fi
  log "$name done (output in $file)"
}

CONTROL_PLANE_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok helm)

# Path of one control-plane binary. Binaries in KUBEBUILDER_ASSETS (as envtest users
# have them) win; whatever that directory lacks comes from the project's cache.
kube_bin() {
  if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/$1" ]]; then
    printf '%s\n' "$KUBEBUILDER_ASSETS/$1"
  else
    printf '%s\n' "$KUBE_ASSETS_DIR/$1"
  fi
}

# What every entry point needs first: Node on the PATH, the npm and the Debian packages.
install_prerequisites() {
  PATH="$("$HACK_DIR/ensure-node.sh"):$PATH"
  export PATH
  "$HACK_DIR/ensure-npm-packages.sh"
  "$HACK_DIR/ensure-debian-packages.sh"
}

# Starts the local cluster unless one is running. A cluster started here is stopped when
# the script exits, unless BERTH_KEEP_CLUSTER is set.
use_local_cluster() {
  "$HACK_DIR/cluster.sh" status >/dev/null 2>&1 && return
  "$HACK_DIR/cluster.sh" up >/dev/null
  trap '[[ -n "${BERTH_KEEP_CLUSTER:-}" ]] || "$HACK_DIR/cluster.sh" down >/dev/null 2>&1 || true' EXIT
}
