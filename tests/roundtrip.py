"""Round-trip suite: `tacoc optimize -O0` must reproduce every model exactly.

Usage: roundtrip.py [--tacoc PATH] [--jobs N] [-v] DIR...

For every *.onnx file under the DIRs (for example the output of
tools/gen_onnx_tests.py and tools/gen_io_models.py, or
/usr/share/libonnx-testdata/data), runs `tacoc optimize M -o OUT -O0` and
checks that:
  - tacoc exits 0, without a signal or a sanitizer report;
  - M and OUT parse to equal messages, and their deterministic
    re-serializations are byte-equal (unknown fields must survive);
  - every external data range the model references exists beside OUT, under
    the same relative location and offset, with the same bytes.

Models in a directory holding a `.external-data-test` marker file are also
run with `--external-data` (default and explicit FILE, two thresholds) and
checked for: the same tensor values and otherwise the same model once
external data is loaded, every tensor at or above the threshold stored in
FILE, and tensors of 1 MiB or more starting at multiples of 65536.

Prints `FAIL <model>: <reason>` per failure and ends with
`roundtrip: N passed, N failed`; exits 1 if anything failed.
"""

import argparse
import os
import shutil
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from harness import (add_tacoc_option, external_ranges, first_difference, first_line,
                     model_tensors, parse_args, proto_problem, run_tacoc)

EXTERNAL_DATA_MARKER = ".external-data-test"
CHUNK = 1 << 20
ALIGNED_SIZE = 1 << 20
ALIGNMENT = 65536

OUT_NAME = "out.onnx"

# Modes: (label, extra tacoc arguments, file the external data must land in,
# threshold in effect); EXACT has no such file and wants an exact copy.
EXACT = ("-O0", [], None, None)
EXTERNAL_DATA_MODES = (
    ("--external-data", ["--external-data"], OUT_NAME + ".data", 1024),
    ("--external-data tensors.bin --external-data-threshold 4096",
     ["--external-data-threshold", "4096", "--external-data", "tensors.bin"],
     "tensors.bin", 4096),
)


def find_models(dirs):
    """Sorted (model, external-data test wanted) pairs under dirs."""
    models = []
    for top in dirs:
        if os.path.isfile(top):
            models.append(top)
            continue
        for root, subdirs, files in os.walk(top):
            subdirs.sort()
            models += [os.path.join(root, f) for f in sorted(files) if f.endswith(".onnx")]
    return [(m, os.path.exists(os.path.join(os.path.dirname(m), EXTERNAL_DATA_MARKER)))
            for m in models]


def ranges_equal(src, dst, offset, length):
    """Compare [offset, offset+length) of two files in chunks; None length
    means up to the end of src."""
    with open(src, "rb") as fa, open(dst, "rb") as fb:
        fa.seek(offset)
        fb.seek(offset)
        remaining = length
        while remaining is None or remaining > 0:
            want = CHUNK if remaining is None else min(CHUNK, remaining)
            a = fa.read(want)
            if not a:
                return True
            if fb.read(len(a)) != a:
                return False
            if remaining is not None:
                remaining -= len(a)
    return True


def check_exact(model_path, out_path):
    """Problem with an -O0 output, or None."""
    src = onnx.load(model_path, load_external_data=False)
    try:
        out = onnx.load(out_path, load_external_data=False)
    except Exception as e:  # noqa: BLE001 - any parse failure is the finding
        return f"output does not parse: {e}"
    problem = proto_problem(src, out)
    if problem is not None:
        return problem
    src_dir, out_dir = os.path.dirname(model_path), os.path.dirname(out_path)
    for location, offset, length in sorted(external_ranges(src), key=str):
        dst = os.path.join(out_dir, location)
        if not os.path.isfile(dst):
            return f"external data file {location} not written beside output"
        if not ranges_equal(os.path.join(src_dir, location), dst, offset, length):
            return f"external data {location} differs in the range at offset {offset}"
    return None


def check_external_data(model_path, out_path, data_file, threshold):
    """Problem with an --external-data output, or None."""
    try:
        out_raw = onnx.load(out_path, load_external_data=False)
        out = onnx.load(out_path)
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        return f"output does not load with its external data: {e}"
    src = onnx.load(model_path)
    src_tensors, out_tensors = list(model_tensors(src)), list(model_tensors(out))
    if len(src_tensors) != len(out_tensors):
        return f"{len(src_tensors)} tensors in input, {len(out_tensors)} in output"
    for s, o, placed in zip(src_tensors, out_tensors, model_tensors(out_raw)):
        if s.name != o.name:
            return f"tensor {s.name!r} became {o.name!r}"
        a, b = numpy_helper.to_array(s), numpy_helper.to_array(o)
        # Byte comparison treats NaNs and -0.0 exactly, unlike ==.
        if a.dtype != b.dtype or a.shape != b.shape or a.tobytes() != b.tobytes():
            return f"tensor {s.name!r}: values differ"
        info = {e.key: e.value for e in placed.external_data}
        external = placed.data_location == TensorProto.EXTERNAL
        if a.dtype != np.object_ and a.nbytes >= threshold and (
                not external or info.get("location") != data_file):
            return f"tensor {s.name!r} ({a.nbytes} bytes) not stored in {data_file}"
        if external and int(info.get("length", 0)) >= ALIGNED_SIZE \
                and int(info.get("offset", 0)) % ALIGNMENT:
            return f"tensor {s.name!r} at offset {info.get('offset')}, " \
                   f"not a multiple of {ALIGNMENT}"
    # onnx's loader marks each tensor it filled in as DEFAULT explicitly; drop
    # that presence-only difference before comparing whole models.
    for tensor in list(model_tensors(src)) + list(model_tensors(out)):
        if tensor.data_location == TensorProto.DEFAULT:
            tensor.ClearField("data_location")
    if src != out:
        return f"output differs at {first_difference(src, out)} once external data is loaded"
    return None


def run_case(case):
    """Run one (model, mode) case; return (model, mode label, problem or None)."""
    model_path, (label, extra, data_file, threshold), tacoc, timeout, tmp_root = case
    tmp = tempfile.mkdtemp(prefix="roundtrip-", dir=tmp_root)
    out_path = os.path.join(tmp, OUT_NAME)
    try:
        proc, problem = run_tacoc(
            tacoc, ["optimize", model_path, "-o", out_path, "-O0", *extra], timeout)
        if problem is None and proc.returncode != 0:
            problem = f"exit status {proc.returncode}: {first_line(proc.stderr)}"
        if problem is None:
            if data_file is None:
                problem = check_exact(model_path, out_path)
            else:
                problem = check_external_data(model_path, out_path, data_file, threshold)
        return model_path, label, problem
    except Exception as e:  # noqa: BLE001 - report, don't kill the whole pool
        return model_path, label, f"harness error: {type(e).__name__}: {e}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_tacoc_option(parser)
    parser.add_argument("--jobs", type=int, default=2, help="parallel tacoc runs (default 2)")
    parser.add_argument("--timeout", type=int, default=120,
                        help="seconds allowed per tacoc run (default 120)")
    parser.add_argument("-v", "--verbose", action="store_true", help="also print passes")
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="directories of models")
    args = parse_args(parser)

    for d in args.dirs:
        if not os.path.exists(d):
            parser.error(f"{d}: no such file or directory")
    models = find_models(args.dirs)
    if not models:
        parser.error("no *.onnx models found")

    with tempfile.TemporaryDirectory(prefix="roundtrip-") as tmp_root:
        cases = []
        for model, external_test in models:
            modes = (EXACT,) + (EXTERNAL_DATA_MODES if external_test else ())
            cases += [(model, mode, args.tacoc, args.timeout, tmp_root) for mode in modes]
        passed = failed = 0
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for model, label, problem in pool.map(run_case, cases, chunksize=4):
                if problem is None:
                    passed += 1
                    if args.verbose:
                        print(f"PASS {model}: {label}")
                else:
                    failed += 1
                    # Exact-copy failures are the common case: keep their line short.
                    mode = "" if label == EXACT[0] else f"{label}: "
                    print(f"FAIL {model}: {mode}{problem}", flush=True)
    print(f"roundtrip: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
