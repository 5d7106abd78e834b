#!/usr/bin/env bash
# Everything the CUDA target checks on a GPU, in one command for a lent GPU
# machine (docs/gpu.md): run tools/gpu_pack.sh here first and carry .gpu.
#   1. tests/gpu/test_cuda.c: every generated kernel and cuBLASLt GEMM case
#      against CPU references; the ONNX node tests of the ops the backend
#      claims through the CUDA backend (those passing on the CPU must pass);
#   2. tests/gpu/e2e_cuda.py: the end-to-end models, fp32 and fp16, against
#      libtacort on the CPU;
#   3. bench/gpu_bench.py (unless GPU_BENCH=0): BERT-base and ResNet-50 fp16
#      against PyTorch and the measured roofline.
# Logs go to $OUT (the device tool brings them back); the summary is last.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/tacoc-gpu-out}
mkdir -p "$OUT"
PY=${PY:-python3}
if [ -z "${TACOC_CUDA_HOME:-}" ] && command -v nvcc >/dev/null; then
  TACOC_CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
  export TACOC_CUDA_HOME
fi
[ -x .gpu/bin/tacoc ] || { echo "device_check: no .gpu/ (run tools/gpu_pack.sh and carry .gpu)"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$OUT/device.txt"
echo "CUDA toolkit for NVRTC: ${TACOC_CUDA_HOME:-/usr/local/cuda}"
.gpu/bin/test_cuda >"$OUT/test_cuda.log" 2>&1
echo "test_cuda exit $?"
.gpu/bin/conformance --target cuda --expected .gpu/expected_pass.txt .gpu/node >"$OUT/conformance.log" 2>&1
echo "conformance --target cuda exit $?"
"$PY" tools/gen_e2e_models.py /tmp/tacoc-e2e >/dev/null
"$PY" tests/gpu/e2e_cuda.py --tacoc .gpu/bin/tacoc /tmp/tacoc-e2e >"$OUT/e2e.log" 2>&1
echo "e2e_cuda exit $?"
if [ "${GPU_BENCH:-1}" != 0 ]; then
  "$PY" bench/gpu_bench.py --tacoc .gpu/bin/tacoc >"$OUT/bench.log" 2>&1
  echo "gpu_bench exit $?"
fi
echo "---- test_cuda"; grep -E "FAIL|check failed|worst|match|test_cuda:" "$OUT/test_cuda.log" | tail -n 25
echo "---- node tests on the CUDA backend"; grep -E "REGRESSION|^conformance:" "$OUT/conformance.log" | tail -n 20
echo "---- e2e"; grep -E "^(ok|FAIL)|gpu-e2e:" "$OUT/e2e.log" | tail -n 40
[ -f "$OUT/bench.log" ] && { echo "---- bench"; tail -n 12 "$OUT/bench.log"; }
exit 0
