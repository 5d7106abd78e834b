#!/usr/bin/env bash
# Packs what the GPU checks need into .gpu/ (ignored by git; the device
# tool carries it) for a GPU machine that has CUDA and Python with onnx,
# onnxruntime, numpy and PyTorch but none of tacoc's build dependencies:
#   .gpu/bin/tacoc      tacoc built without LLVM (tacoc-nollvm), a wrapper
#   .gpu/bin/test_cuda  the kernel and GEMM checks (tests/gpu/test_cuda.c)
#   .gpu/bin/conformance the ONNX node test runner, .gpu/node/ the node tests
#                       of the ops the CUDA backend claims
#   .gpu/lib/           libtacort_cuda.so and the shared libraries tacoc
#                       needs that such a machine may lack (oneDNN, protobuf-c,
#                       OpenSSL's libcrypto, libgomp, the OpenCL loader oneDNN links)
# Then run tests/gpu/device_check.sh there (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
make -s all build/tests/test_cuda build/tests/conformance
.venv/bin/python tools/gen_onnx_tests.py build/testdata/onnx >/dev/null
rm -rf .gpu
mkdir -p .gpu/bin .gpu/lib
cp build/bin/tacoc-nollvm .gpu/lib/tacoc.bin
cp build/tests/test_cuda .gpu/lib/test_cuda.bin
cp build/tests/conformance .gpu/lib/conformance.bin
# Wrappers find the packed libraries without exporting them to anything else
# (the machine's Python keeps its own libcrypto).
for prog in tacoc test_cuda conformance; do
  cat >".gpu/bin/$prog" <<WRAP
#!/bin/sh
here=\$(dirname "\$(readlink -f "\$0")")
LD_LIBRARY_PATH="\$here/../lib:/usr/local/cuda/lib64\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "\$here/../lib/$prog.bin" "\$@"
WRAP
  chmod +x ".gpu/bin/$prog"
done
cp build/lib/libtacort_cuda.so .gpu/lib/
for lib in libdnnl.so.2 libprotobuf-c.so.1 libcrypto.so.3 libgomp.so.1 libOpenCL.so.1; do
  path=$(ldd build/bin/tacoc-nollvm | awk -v l="$lib" '$1 == l {print $3}')
  [ -n "$path" ] || { echo "gpu_pack: tacoc-nollvm does not link $lib here" >&2; exit 1; }
  cp -L "$path" ".gpu/lib/$lib"
done
# The ONNX node tests of the ops the CUDA backend claims (those it cannot
# take at run time fall back to the CPU and must pass all the same), and the
# list of node tests that pass on the CPU.
mkdir -p .gpu/node
for t in build/testdata/onnx/node/test_{matmul,gemm,add,sub,mul,div,cast_,conv_,attention}*; do
  cp -r "$t" .gpu/node/
done
cp tests/conformance/expected_pass.txt .gpu/expected_pass.txt
du -sh .gpu
