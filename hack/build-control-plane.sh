#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok
# and helm from the Go module proxy into the version-keyed cache (see lib.sh). Binaries
# already present there or in KUBEBUILDER_ASSETS are reused, so a warm run does nothing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v go >/dev/null || die "Go is required to build the control plane (apt-get install golang-go, or a Go toolchain >= 1.24)"

missing=()
for bin in "${CONTROL_PLANE_BINARIES[@]}"; do
  [[ -x "$(kube_bin "$bin")" ]] || missing+=("$bin")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

started=$(date +%s)
log "building ${missing[*]} into $KUBE_ASSETS_DIR (once per version; later runs reuse it)"
mkdir -p "$KUBE_ASSETS_DIR"
src="$BERTH_CACHE/src"
mkdir -p "$src"
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local

wants() { [[ " ${missing[*]} " == *" $1 "* ]]; }

build_kubernetes() {
  local dir="$src/kubernetes-$KUBE_VERSION" upstream_mod staging_version version_pkg ldflags
  mkdir -p "$dir"
  # k8s.io/kubernetes replaces its staging modules (k8s.io/api, k8s.io/client-go, ...)
  # with local paths; a module that depends on it must pin each of them to the
  # matching published v0.x release instead.
  upstream_mod=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  staging_version="v0.${KUBE_VERSION#v1.}"
  {
    echo "module berth.dev/hack/kubernetes-build"
    grep -E '^go [0-9.]+$' "$upstream_mod"
    grep -E '^godebug ' "$upstream_mod" || true
    echo "require k8s.io/kubernetes $KUBE_VERSION"
    sed -n '/^replace (/,/^)/p' "$upstream_mod" | awk -v v="$staging_version" '/=>/ { print "replace " $1 " => " $1 " " v }'
  } >"$dir/go.mod"
  local pkgs=()
  for bin in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    wants "$bin" && pkgs+=("k8s.io/kubernetes/cmd/$bin")
  done
  [[ ${#pkgs[@]} -gt 0 ]] || return 0
  (cd "$dir" && go get "${pkgs[@]/%/@$KUBE_VERSION}")
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  # Stamp the real release so `kube-apiserver --version` and /version tell the truth.
  for version_pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $version_pkg.gitVersion=$KUBE_VERSION -X $version_pkg.gitMajor=1 -X $version_pkg.gitMinor=$minor"
    ldflags+=" -X $version_pkg.gitTreeState=clean -X $version_pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  done
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$KUBE_ASSETS_DIR/" "${pkgs[@]}")
}

build_etcd() {
  local dir="$src/etcd-$ETCD_VERSION"
  mkdir -p "$dir"
  # etcd's own main module is not published; its server module's etcdmain is the same
  # entry point the release binary uses.
  cat >"$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  printf 'module berth.dev/hack/etcd-build\n\ngo 1.24\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" >"$dir/go.mod"
  (cd "$dir" && go mod tidy >/dev/null && go build -trimpath -ldflags "-s -w" -o "$KUBE_ASSETS_DIR/etcd" .)
}

build_go_install() { # name module-path version ldflags
  local gobin="$src/gobin-$1-$3"
  GOBIN="$gobin" go install -trimpath -ldflags "$4" "$2@$3"
  install -m 0755 "$gobin/$1" "$KUBE_ASSETS_DIR/$1"
}

build_missing() {
  if wants kube-apiserver || wants kube-controller-manager || wants kube-scheduler || wants kubectl; then build_kubernetes; fi
  if wants etcd; then build_etcd; fi
  if wants kwok; then build_go_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"; fi
  if wants helm; then build_go_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"; fi
}
run_logged control-plane-build build_missing

for bin in "${missing[@]}"; do
  [[ -x "$KUBE_ASSETS_DIR/$bin" ]] || die "$bin was not built"
done
log "control plane built in $(( $(date +%s) - started ))s: $KUBE_ASSETS_DIR"
