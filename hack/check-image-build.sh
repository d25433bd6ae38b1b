#!/usr/bin/env bash
# Performs the Dockerfile's steps without a container engine, in clean temp directories
# and with the project's Node: build (npm ci, tsc, the Lua/njs files into dist/nginx),
# production dependencies only (npm ci --omit=dev), then starts the result. Keep in step
# with Dockerfile.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
PATH="$("$HACK_DIR/ensure-node.sh"):$PATH"
export PATH

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
build=$work/build app=$work/app
mkdir -p "$build" "$app"

log "build stage in $build"
cp "$REPO_ROOT"/package.json "$REPO_ROOT"/package-lock.json "$REPO_ROOT"/tsconfig.json "$REPO_ROOT"/tsconfig.build.json "$build"/
cp -r "$REPO_ROOT"/src "$build"/src
(cd "$build" && npm ci --ignore-scripts --no-audit --no-fund --silent \
  && node_modules/.bin/tsc -p tsconfig.build.json \
  && cp -r src/nginx/lua src/nginx/njs dist/nginx/)

log "runtime stage in $app"
cp "$REPO_ROOT"/package.json "$REPO_ROOT"/package-lock.json "$app"/
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --silent)
rm "$app"/package-lock.json
cp -r "$build"/dist "$app"/dist

cd "$app"
[[ ! -e node_modules/typescript && ! -e node_modules/vitest ]] || die "development dependencies in the image"
node dist/cli.js --help >/dev/null || die "node dist/cli.js --help failed"
cp -r "$REPO_ROOT"/crds "$work"/crds
NODE_ENV=production node dist/cli.js crds --check --output "$work"/crds || die "crds --check failed in the image"
# The agent's --lua-dir and --njs-dir defaults, resolved as dist/cli.js resolves them.
lua_dir=$(node --input-type=module -e "import { fileURLToPath } from 'node:url'; console.log(fileURLToPath(new URL('./nginx/lua', new URL('file://$app/dist/cli.js'))))")
njs_dir=$(node --input-type=module -e "import { fileURLToPath } from 'node:url'; console.log(fileURLToPath(new URL('./nginx/njs', new URL('file://$app/dist/cli.js'))))")
[[ -n $(find "$lua_dir" -name '*.lua' -print -quit) ]] || die "no Lua files at $lua_dir"
[[ -f $njs_dir/stream.js ]] || die "no njs module at $njs_dir"
log "image contents check passed: $(du -sh "$app" | cut -f1) (node_modules $(du -sh node_modules | cut -f1))"
