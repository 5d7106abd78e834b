#!/usr/bin/env bash
# make demo: generate the sample model, inspect it, optimize it, run the
# original and the optimized model side by side in ONNX Runtime to show that
# they agree, then benchmark both in libtacort and ONNX Runtime with tacoc bench.
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
echo "== tacoc bench $OUT/mlp.onnx $OUT/mlp.opt.onnx --batch 1,32 --runtime tacort,ort"
"$BUILD/bin/tacoc" bench "$OUT/mlp.onnx" "$OUT/mlp.opt.onnx" --batch 1,32 --runtime tacort,ort \
  --max-error cos=0.9999,max-abs=1e-5 --markdown "$OUT/bench.md"
