#!/usr/bin/env bash
# make demo: generate the sample model, inspect it, optimize it, and run the
# original and the optimized model side by side (in ONNX Runtime until
# libtacort executes models) to show that they agree.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
OUT=$BUILD/demo
mkdir -p "$OUT"
.venv/bin/python samples/make_sample.py "$OUT/mlp.onnx"
echo "== tacoc inspect $OUT/mlp.onnx"
"$BUILD/bin/tacoc" inspect "$OUT/mlp.onnx"
echo "== tacoc optimize $OUT/mlp.onnx -o $OUT/mlp.opt.onnx -O0 --external-data"
"$BUILD/bin/tacoc" optimize "$OUT/mlp.onnx" -o "$OUT/mlp.opt.onnx" -O0 --external-data
echo "== run both on the same input"
.venv/bin/python tools/compare_ort.py "$OUT/mlp.onnx" "$OUT/mlp.opt.onnx"
