#!/usr/bin/env bash
# The accelerator check, in one call on a machine with an NVIDIA GPU and a CUDA PyTorch installed (its
# libtorch under torch/lib, headers under torch/include). Such a machine may have no Node.js and no
# package registry, so what it needs comes along in one archive made here first:
#
#   scripts/gpu-check.sh --pack     (here) runs/device/bundle.tar.xz: this machine's node and its headers,
#                                   and node_modules without the datasets the check does not read
#   scripts/gpu-check.sh [OUT]      (there, from the repository root, with dist/ and runs/device/ carried)
#
# There it: unpacks node and node_modules when they are missing; builds the addon against PyTorch's
# libtorch with no network; runs the test suite with IMAGEBART_TEST_DEVICE=cuda; runs bench:device
# (CPU and CUDA side by side). Logs and JSON go to OUT (default $OUT, else runs/gpu-check).
# GPU_CHECK_TESTS="torch sample" narrows the tests to files whose path contains one of the words.
set -euo pipefail
cd "$(dirname "$0")/.."
BUNDLE=runs/device/bundle.tar.xz
say() { echo "[gpu-check $(date -u +%H:%M:%S)] $*" >&2; }

if [ "${1:-}" = "--pack" ]; then
  NODE_BIN=$(command -v node); NODE_ROOT=$(dirname "$(dirname "$(readlink -f "$NODE_BIN")")")
  [ -f "$NODE_ROOT/include/node/node.h" ] || { say "no node headers under $NODE_ROOT/include/node"; exit 1; }
  [ -d node_modules ] || { say "run npm ci first"; exit 1; }
  stage=$(mktemp -d); trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage/node/bin" "$stage/node/include" runs/device
  cp "$(readlink -f "$NODE_BIN")" "$stage/node/bin/node"
  cp -r "$NODE_ROOT/include/node" "$stage/node/include/"
  say "packing node $(node -v), its headers and node_modules (without the emoji datasets) → $BUNDLE"
  tar -C "$stage" -cf - node | cat > "$stage/node.tar"
  tar -rf "$stage/node.tar" --exclude='node_modules/emoji-datasource-*' --exclude='node_modules/emojibase-data' node_modules
  xz -T0 -6 -c "$stage/node.tar" > "$BUNDLE.tmp" && mv "$BUNDLE.tmp" "$BUNDLE"
  say "done: $(du -h "$BUNDLE" | cut -f1)"
  exit 0
fi

OUTDIR=${1:-${OUT:-runs/gpu-check}}
mkdir -p "$OUTDIR"
exec > >(tee -a "$OUTDIR/gpu-check.log") 2>&1

# 1. node and the npm packages: the machine's own, else the bundle's
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ] || [ ! -d node_modules ]; then
  [ -f "$BUNDLE" ] || { say "no Node.js 20 or node_modules here and no $BUNDLE (make it with --pack and carry it)"; exit 1; }
  say "unpacking $BUNDLE"
  tmp=$(mktemp -d)
  tar -C "$tmp" -xJf "$BUNDLE"
  [ -d node_modules ] || mv "$tmp/node_modules" node_modules
  export PATH="$tmp/node/bin:$PATH"
  NODEDIR="$tmp/node"
else
  NODEDIR=$(dirname "$(dirname "$(readlink -f "$(command -v node)")")")
fi
say "node $(node -v) ($NODEDIR)"

# 2. libtorch: PyTorch's own (LIBTORCH overrides), with its C++ ABI
if [ -z "${LIBTORCH:-}" ]; then
  LIBTORCH=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))') || { say "no PyTorch here (python3 -c 'import torch' failed): set LIBTORCH"; exit 1; }
fi
export LIBTORCH
export IMAGEBART_CXX11_ABI=$(python3 -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))' 2>/dev/null || echo 1)
python3 -c 'import torch; print("torch", torch.__version__, "CUDA", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
for tool in g++ make python3; do command -v $tool >/dev/null || { say "$tool is missing: the addon cannot be built here"; exit 1; }; done

# 3. the addon against that libtorch (no network: node's headers from NODEDIR), and the TypeScript when dist/ did not come along
say "building the addon against $LIBTORCH (C++11 ABI $IMAGEBART_CXX11_ABI)"
node node_modules/node-gyp/bin/node-gyp.js rebuild --nodedir="$NODEDIR" -j "$(nproc)" > "$OUTDIR/build.log" 2>&1 || { tail -40 "$OUTDIR/build.log"; say "build failed"; exit 1; }
[ -f dist/src/cli/main.js ] || node node_modules/typescript/bin/tsc -p .
node -e "import('./dist/src/torch/index.js').then((T) => console.log('CUDA devices seen by the addon:', T.cudaDeviceCount()))"

# 4. the tests, on the device
say "tests with IMAGEBART_TEST_DEVICE=cuda"
set +e
IMAGEBART_TEST_DEVICE=cuda node scripts/test.mjs ${GPU_CHECK_TESTS:-} > "$OUTDIR/test.log" 2>&1
tests=$?
set -e
grep -E '^# (tests|pass|fail|skipped)' "$OUTDIR/test.log" || true
grep -E '^not ok' "$OUTDIR/test.log" | head -20 || true

# 5. the device benchmark: CPU and CUDA side by side
say "bench:device"
node dist/bench/device.js --out "$OUTDIR/device.json" || say "bench:device failed"
say "done (tests exit $tests); logs in $OUTDIR"
exit $tests
