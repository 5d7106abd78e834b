#!/usr/bin/env bash
# Installs everything tacoc needs to build and test, idempotently.
# Debian packages: protobuf-c (code generator and library), oneDNN, OpenSSL
# (SHA-256 of kernel libraries), LLVM 16,
# clang (libFuzzer), the ONNX test data, chromium (renders the HTML report
# headless in tests/report.py). Python: a pinned .venv for tests and tools.
# Usage: tools/deps.sh [STAMP]. The check takes a fraction of a second when all
# is there; STAMP is touched only when something was installed or it is
# missing, so make rebuilds what depends on it only then.
set -euo pipefail
STAMP=${1:-}
changed=0
cd "$(dirname "$0")/.."

APT_PKGS="protobuf-c-compiler libprotobuf-c-dev libdnnl-dev libssl-dev llvm-16-dev clang libclang-rt-14-dev libonnx-testdata chromium"
# ml_dtypes computes the expected outputs of onnx's 4-bit cast tests: 0.7 turns
# out-of-range values into 0 where earlier releases wrap them (as the test data
# of this onnx release expects and libtacort does), so it is pinned with onnx.
PY_PINS="onnx==1.23.2 onnxruntime==1.31.1 numpy==2.3.5 ml_dtypes==0.5.4"
# Packages that ship real pretrained ONNX models, used by the end-to-end tests
# (installed without their dependencies: only the model files are used).
PY_MODEL_PKGS="silero-vad==6.2.3 rapidocr-onnxruntime==1.4.4"

missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "deps: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  changed=1
fi

stamp=.venv/.tacoc-pins
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$PY_PINS $PY_MODEL_PKGS" ]; then
  echo "deps: creating .venv with $PY_PINS $PY_MODEL_PKGS"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check $PY_PINS
  .venv/bin/pip install -q --disable-pip-version-check --no-deps $PY_MODEL_PKGS
  echo "$PY_PINS $PY_MODEL_PKGS" > "$stamp"
  changed=1
fi

if [ -n "$STAMP" ] && { [ "$changed" = 1 ] || [ ! -f "$STAMP" ]; }; then
  mkdir -p "$(dirname "$STAMP")"
  touch "$STAMP"
fi
