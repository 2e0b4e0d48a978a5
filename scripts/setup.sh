#!/usr/bin/env bash
# One-time set-up, quick when already done: libtorch (+ OpenBLAS), npm packages, the native addon,
# the TypeScript build. Used by `npm start`, `npm test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "[setup] $*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_install() {
  say "installing Debian packages: $*"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/tmp/imagebart-apt.log 2>&1; then
    as_root apt-get update >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >/tmp/imagebart-apt.log 2>&1 || {
      say "apt-get install $* failed (see /tmp/imagebart-apt.log). Install them yourself, or set LIBTORCH to a libtorch directory."; exit 1; }
  fi
}

# 1. libtorch: $LIBTORCH, else Debian's libtorch-dev (installed when we are root).
if [ -z "${LIBTORCH:-}" ] && ! node scripts/libtorch.mjs check >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then
    apt_install libtorch-dev
  else
    say "libtorch not found. Either: sudo apt-get install libtorch-dev libopenblas0-pthread, or set LIBTORCH=/path/to/libtorch"; exit 1
  fi
fi
# Debian's libtorch calls the system BLAS; the reference BLAS is ~50x slower than OpenBLAS.
if [ -z "${LIBTORCH:-}" ] && [ ! -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] && [ ! -e /usr/lib/aarch64-linux-gnu/openblas-pthread/libblas.so.3 ]; then
  if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then apt_install libopenblas0-pthread; else say "warning: install libopenblas0-pthread for fast matmuls"; fi
fi

# c10d's Gloo backend (data-parallel training): Debian's libtorch links it from libgloo-dev (headers and
# library). Without it the addon builds without c10d and distributed training says so.
if [ -z "${LIBTORCH:-}" ] && [ ! -e /usr/include/gloo/context.h ]; then
  if [ "$(id -u)" = 0 ] || command -v sudo >/dev/null; then ( apt_install libgloo-dev ) || say "continuing without c10d (no data-parallel training)"
  else say "warning: install libgloo-dev for data-parallel training (c10d)"; fi
fi

# 2. npm packages, when package-lock.json changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund >/dev/null
fi

# 3. The native addon, when its sources, the build file or the libtorch choice changed.
stamp=build/Release/.stamp
want="$(node scripts/libtorch.mjs check)"
if [ ! -f build/Release/imagebart_native.node ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] \
   || [ -n "$(find native binding.gyp scripts/libtorch.mjs -newer "$stamp" 2>/dev/null | head -1)" ]; then
  say "building the native addon against libtorch ($want)"
  npx node-gyp rebuild -j "$(nproc)" >/tmp/imagebart-gyp.log 2>&1 || { tail -40 /tmp/imagebart-gyp.log >&2; say "native build failed (log: /tmp/imagebart-gyp.log)"; exit 1; }
  echo "$want" > "$stamp"
fi

# 4. TypeScript.
if [ ! -f dist/.stamp ] || [ -n "$(find src test bench web tsconfig.json package.json -newer dist/.stamp 2>/dev/null | head -1)" ]; then
  say "compiling TypeScript"
  npx tsc -p .
  npx tsc -p web   # the editor's page script (DOM types)
  touch dist/.stamp
fi
