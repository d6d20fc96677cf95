#!/usr/bin/env bash
# Installs everything lrtune needs on Debian 12 (run as root; idempotent).
#
#   sudo bash scripts/setup.sh
#
# - Debian packages: toolchain, Abseil, gRPC/protobuf, LibTorch (CPU) with the
#   pthread OpenBLAS (without it Debian's torch falls back to the reference
#   BLAS and trains ~20x slower), GoogleTest/Benchmark, Python torch for the
#   golden-value scripts, what `pip install ./client/python` needs offline
#   (grpcio, protobuf, venv, setuptools, wheel; matplotlib for rt.plot()),
#   the Fashion-MNIST dataset, and for the dashboard Chart.js (served by
#   lrtune-server) and headless Chromium (its test).
# - scikit-learn's bundled CSVs (digits, iris, wine, breast_cancer), taken
#   from the python3-sklearn .deb without installing the Python stack, into
#   $LRTUNE_DATA_DIR (default /usr/local/share/lrtune/datasets), where the
#   engine looks by default.
set -euo pipefail

DATA_DIR="${LRTUNE_DATA_DIR:-/usr/local/share/lrtune/datasets}"
PACKAGES=(
  build-essential cmake ninja-build git pkg-config clang clang-format
  libclang-rt-14-dev openssl docker-compose
  libabsl-dev libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev
  libcpp-httplib-dev libsqlite3-dev sqlite3
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  libtorch-dev libopenblas0-pthread
  python3 python3-torch python3-grpcio
  python3-protobuf python3-venv python3-pip python3-setuptools python3-wheel
  python3-matplotlib
  dataset-fashion-mnist
  libjs-chart.js chromium
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "setup: Debian packages already installed"
fi

# OpenBLAS pthread must be the BLAS torch picks up.
if update-alternatives --list libblas.so.3-x86_64-linux-gnu 2>/dev/null \
    | grep -q openblas-pthread; then
  update-alternatives --set libblas.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 >/dev/null
  update-alternatives --set liblapack.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-pthread/liblapack.so.3 >/dev/null
fi

SK="$DATA_DIR/sklearn"
want=(digits.csv.gz iris.csv wine_data.csv breast_cancer.csv)
have=1
for f in "${want[@]}"; do [[ -s "$SK/$f" ]] || have=0; done
if ((have)); then
  echo "setup: scikit-learn CSVs already in $SK"
else
  echo "setup: extracting scikit-learn CSVs into $SK"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && apt-get download python3-sklearn >/dev/null 2>&1 \
    || { apt-get update -qq && apt-get download python3-sklearn >/dev/null; })
  dpkg-deb -x "$tmp"/python3-sklearn_*.deb "$tmp/x"
  mkdir -p "$SK"
  for f in "${want[@]}"; do
    install -m 0644 "$tmp/x/usr/lib/python3/dist-packages/sklearn/datasets/data/$f" "$SK/$f"
  done
fi
ln -sfn /usr/share/datasets/fashion-mnist "$DATA_DIR/fashion-mnist"
echo "setup: datasets in $DATA_DIR (fashion-mnist, sklearn)"
