#!/usr/bin/env bash
# Runs the test suites and ends with the total line "N passed, N failed".
# Each suite prints its own "<suite>: N passed, N failed" as its last line.
# TC_SUITES picks suites (default: all); BUILD is the build folder.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
PY=.venv/bin/python
SUITES=${TC_SUITES:-"unit conformance conformance-O3 ops passes e2e precision codegen gpu roundtrip errors bench report bigmodel fuzz"}
TACOC=$BUILD/bin/tacoc
DATA=build/testdata
export PYTHONWARNINGS=ignore

passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Runs one command; adds the counts of its last summary line to the totals.
run_suite() {
  local name=$1
  shift
  local start=$SECONDS
  "$@" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local line
  line=$(grep -E '^[A-Za-z0-9_.-]+: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "$name: no summary line (exit $rc)"
    failed=$((failed + 1))
    return
  fi
  local p f
  p=$(sed -E 's/.*: ([0-9]+) passed.*/\1/' <<<"$line")
  f=$(sed -E 's/.* ([0-9]+) failed.*/\1/' <<<"$line")
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "$name: exited $rc"
    f=1
  fi
  passed=$((passed + p))
  failed=$((failed + f))
  echo "   ($name took $((SECONDS - start)) s)"
}

# Fuzzing passes when libFuzzer finds nothing in the time given.
fuzz_suite() {
  local secs=${TC_FUZZ_SECONDS:-60}
  local corpus=$BUILD/fuzz/corpus
  mkdir -p "$corpus"
  for m in $(find "$DATA/io" /usr/share/libonnx-testdata/data/node -name '*.onnx' -size -64k 2>/dev/null | sort | head -n 200); do
    cp -n "$m" "$corpus/$(echo "$m" | md5sum | cut -c1-16).onnx" 2>/dev/null
  done
  if "$BUILD/fuzz/fuzz_load" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 \
      -print_final_stats=1 "$corpus" >"$BUILD/fuzz/last.log" 2>&1; then
    echo "fuzz: $(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$BUILD/fuzz/last.log" | grep -Eo '[0-9]+$') inputs in ${secs} s, no crash"
    echo "fuzz: 1 passed, 0 failed"
  else
    tail -n 40 "$BUILD/fuzz/last.log"
    echo "fuzz: 0 passed, 1 failed"
  fi
}

gen_data() {
  $PY tools/gen_onnx_tests.py "$DATA/onnx" >/dev/null && $PY tools/gen_io_models.py "$DATA/io" >/dev/null
}

for s in $SUITES; do
  case $s in
  unit)
    for t in "$BUILD"/tests/test_*; do run_suite "$(basename "$t")" "$t"; done ;;
  roundtrip)
    gen_data || { echo "roundtrip: cannot generate test models"; failed=$((failed + 1)); continue; }
    run_suite roundtrip $PY tests/roundtrip.py --tacoc "$TACOC" --jobs "$JOBS" \
      "$DATA/onnx" "$DATA/io" /usr/share/libonnx-testdata/data ;;
  conformance)
    gen_data || { echo "conformance: cannot generate test models"; failed=$((failed + 1)); continue; }
    run_suite conformance "$BUILD/tests/conformance" --expected tests/conformance/expected_pass.txt \
      "$DATA/onnx/node" ;;
  conformance-O3)
    gen_data || { echo "conformance-O3: cannot generate test models"; failed=$((failed + 1)); continue; }
    $PY tests/optimize_node_tests.py --tacoc "$TACOC" --jobs "$JOBS" "$DATA/onnx/node" "$DATA/onnx-O3/node" | tail -n 5 ||
      { echo "conformance-O3: tacoc optimize failed on a node test"; failed=$((failed + 1)); continue; }
    run_suite conformance-O3 "$BUILD/tests/conformance" --expected tests/conformance/expected_pass.txt \
      "$DATA/onnx-O3/node" ;;
  passes)
    run_suite passes $PY tests/passes/run.py --tacoc "$TACOC" ;;
  e2e)
    $PY tools/gen_e2e_models.py "$DATA/e2e" || { echo "e2e: cannot generate models"; failed=$((failed + 1)); continue; }
    $PY tools/gen_zoo_models.py "$DATA/zoo" || { echo "e2e: cannot make the zoo models"; failed=$((failed + 1)); continue; }
    run_suite e2e $PY tests/e2e.py --tacoc "$TACOC" --sample "$BUILD/samples/run_model" --zoo "$DATA/zoo" "$DATA/e2e"
    run_suite layout $PY tests/layout.py --tacoc "$TACOC"
    run_suite qdq $PY tests/qdq.py --tacoc "$TACOC" --zoo "$DATA/zoo" ;;
  precision)
    $PY tools/gen_e2e_models.py "$DATA/e2e" || { echo "precision: cannot generate models"; failed=$((failed + 1)); continue; }
    $PY tools/gen_zoo_models.py "$DATA/zoo" || { echo "precision: cannot make the zoo models"; failed=$((failed + 1)); continue; }
    run_suite precision $PY tests/precision.py --tacoc "$TACOC" --zoo "$DATA/zoo" "$DATA/e2e" ;;
  codegen)
    $PY tools/gen_e2e_models.py "$DATA/e2e" || { echo "codegen: cannot generate models"; failed=$((failed + 1)); continue; }
    run_suite codegen $PY tests/codegen.py --tacoc "$TACOC" "$DATA/e2e" ;;
  gpu)
    # The CUDA target end to end; says "skipped: no CUDA device" without one
    # (the kernel and GEMM checks are the unit binary test_cuda).
    $PY tools/gen_e2e_models.py "$DATA/e2e" || { echo "gpu: cannot generate models"; failed=$((failed + 1)); continue; }
    run_suite gpu-e2e $PY tests/gpu/e2e_cuda.py --tacoc "$TACOC" "$DATA/e2e" ;;
  errors)
    run_suite errors $PY tests/errors.py --tacoc "$TACOC" ;;
  ops)
    run_suite ops $PY tests/ops_ort.py --tacoc "$TACOC" ;;
  bench)
    run_suite bench $PY tests/bench.py --tacoc "$TACOC" ;;
  report)
    run_suite report $PY tests/report.py --tacoc "$TACOC" ;;
  bigmodel)
    run_suite bigmodel $PY tests/bigmodel.py --tacoc "$TACOC" --workdir "$DATA/big" ;;
  fuzz)
    run_suite fuzz fuzz_suite ;;
  *)
    echo "unknown suite $s"; failed=$((failed + 1)) ;;
  esac
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
