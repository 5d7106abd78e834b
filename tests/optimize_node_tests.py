"""Writes a copy of the ONNX backend node tests with every model.onnx replaced
by `tacoc optimize -O3` of it (test data linked, not copied), so that the
conformance runner can check that optimization keeps every test passing.

Usage: optimize_node_tests.py --tacoc PATH SRC DST

A model tacoc refuses to optimize is a failure: the script prints it and
exits 1 after writing the others."""
import argparse
import concurrent.futures
import os
import shutil
import subprocess
import sys


def one(tacoc, src, dst):
    os.makedirs(dst, exist_ok=True)
    for entry in os.listdir(src):
        if entry.startswith("test_data_set") and not os.path.exists(os.path.join(dst, entry)):
            os.symlink(os.path.abspath(os.path.join(src, entry)), os.path.join(dst, entry))
    proc = subprocess.run([tacoc, "optimize", os.path.join(src, "model.onnx"), "-o",
                           os.path.join(dst, "model.onnx"), "-O3", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    return None if proc.returncode == 0 else proc.stderr.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    ap.add_argument("src")
    ap.add_argument("dst")
    a = ap.parse_args()
    shutil.rmtree(a.dst, ignore_errors=True)
    tests = sorted(t for t in os.listdir(a.src) if os.path.isfile(os.path.join(a.src, t, "model.onnx")))
    bad = 0
    with concurrent.futures.ThreadPoolExecutor(a.jobs) as ex:
        futs = {t: ex.submit(one, a.tacoc, os.path.join(a.src, t), os.path.join(a.dst, t)) for t in tests}
        for t in tests:
            err = futs[t].result()
            if err:
                bad += 1
                print(f"FAIL optimize {t}: {err}")
    print(f"optimized {len(tests) - bad} of {len(tests)} node test models with -O3")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
