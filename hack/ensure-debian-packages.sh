#!/usr/bin/env bash
# Installs from Debian, when any of it is missing, what Berth's data plane runs on: nginx
# with the Lua module (plus resty.core and cjson), the stream module with njs; luacheck for
# the shipped Lua; Prometheus, which the tests scrape the operator and agents with; wrk,
# which bench/ drives nginx with; and tmux, in which the tests drive `kubectl berth status
# --watch` as a person at a terminal would.
# Tests start their own nginx and Prometheus on ports and directories of their own, so the
# services the packages would start are kept from starting.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(nginx libnginx-mod-http-lua lua-resty-core lua-cjson libnginx-mod-stream libnginx-mod-stream-js lua-check prometheus wrk tmux)

missing=()
for package in "${PACKAGES[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null)" != "install ok installed" ]]; then
    missing+=("$package")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

command -v apt-get >/dev/null || die "Berth needs the Debian packages ${missing[*]}; install them"
[[ $EUID -eq 0 ]] || die "installing ${missing[*]} needs root (run with sudo)"

# invoke-rc.d asks policy-rc.d before starting a service, and 101 means "do not". A
# policy the machine already has is left alone; the pid-file check below covers it.
policy=/usr/sbin/policy-rc.d
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi

service_pid() {
  local pid
  pid=$(cat /run/nginx.pid 2>/dev/null) || return 1
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && printf '%s\n' "$pid"
}
running_before=$(service_pid || true)

log "installing ${missing[*]}"
install_missing() {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}
run_logged debian-packages install_missing

started=$(service_pid || true)
if [[ -n $started && $started != "$running_before" ]]; then
  log "stopping the nginx service the package started (pid $started)"
  kill -QUIT "$started"
fi
