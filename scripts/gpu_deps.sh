#!/usr/bin/env bash
# Prepares .gpu-deps/ for the GPU check (scripts/gpu_check.sh): the GPU
# machines have CUDA LibTorch, cmake and g++ but no Abseil, nlohmann-json or
# zlib headers and no datasets, and cannot install anything. This unpacks
# Debian 12's packages (no install) and copies Fashion-MNIST, ~45 MB in all,
# into a folder that .git/info/exclude keeps out of git; the device tool
# carries it with `carry: [".gpu-deps"]`.
#
#   bash scripts/gpu_deps.sh        # on a Debian 12 machine with apt
set -euo pipefail
cd "$(dirname "$0")/.."
DEPS=.gpu-deps
grep -qx "/$DEPS/" .git/info/exclude 2>/dev/null || echo "/$DEPS/" >>.git/info/exclude
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download libabsl-dev libabsl20220623 nlohmann-json3-dev \
  zlib1g-dev >/dev/null)
rm -rf "$DEPS" && mkdir -p "$tmp/x" "$DEPS/zlib/include" "$DEPS/zlib/lib"
for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$tmp/x"; done
# Links would not survive the copy to the device: dereference them.
cp -rL "$tmp/x/usr" "$DEPS/usr"
mv "$DEPS/usr/include/zlib.h" "$DEPS/usr/include/zconf.h" "$DEPS/zlib/include/"
mv "$DEPS/usr/lib/x86_64-linux-gnu/libz.a" "$DEPS/zlib/lib/"
rm -f "$DEPS"/usr/lib/x86_64-linux-gnu/libz.so*
mkdir -p "$DEPS/datasets/fashion-mnist"
cp /usr/share/datasets/fashion-mnist/*.gz "$DEPS/datasets/fashion-mnist/"
du -sh "$DEPS"
