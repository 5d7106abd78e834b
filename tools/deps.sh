#!/usr/bin/env bash
# Installs everything tacoc needs to build and test, idempotently.
# Debian packages: protobuf-c (code generator and library), oneDNN, LLVM 16,
# clang (libFuzzer), the ONNX test data. Python: a pinned .venv for tests and tools.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS="protobuf-c-compiler libprotobuf-c-dev libdnnl-dev llvm-16-dev clang libclang-rt-14-dev libonnx-testdata"
PY_PINS="onnx==1.23.2 onnxruntime==1.31.1 numpy==2.3.5"

missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

stamp=.venv/.tacoc-pins
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$PY_PINS" ]; then
  echo "deps: creating .venv with $PY_PINS"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check $PY_PINS
  echo "$PY_PINS" > "$stamp"
fi
