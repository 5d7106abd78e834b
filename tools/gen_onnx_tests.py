"""Write the ONNX backend test models of the installed onnx package to disk.

Usage: gen_onnx_tests.py OUTDIR

Produces OUTDIR/<kind>/<test name>/model.onnx plus test_data_set_N/input_K.pb
and output_K.pb for the kinds node, simple, pytorch-converted and
pytorch-operator. The pip wheel ships most "node" tests only as Python code
that builds the model in memory, so those are serialized here; tests that
already exist as files in the package are copied verbatim.

A data set whose values cannot be serialized is skipped (the model is kept)
and reported. OUTDIR/.done records the versions of onnx and ml_dtypes (which
computes the expected outputs of the 4-bit and float8 casts); when they match,
the script exits immediately without importing the (slow) test case modules.
"""

import argparse
import importlib.metadata
import os
import shutil
import sys
import warnings

KINDS = ("node", "simple", "pytorch-converted", "pytorch-operator")


def serialize_value(value, type_proto, name):
    """Encode one data set value as the proto matching its declared type."""
    # Imported lazily so the "already done" path stays fast.
    import numpy as np
    import onnx
    from onnx import numpy_helper

    # Values beyond the declared inputs/outputs have no type: infer from Python.
    kind = type_proto.WhichOneof("value") if type_proto is not None else None
    if kind is None:
        if isinstance(value, dict):
            kind = "map_type"
        elif isinstance(value, list):
            kind = "sequence_type"
        elif value is None:
            kind = "optional_type"
    if kind == "map_type":
        return numpy_helper.from_dict(value, name).SerializeToString()
    if kind == "sequence_type":
        return numpy_helper.from_list(value, name).SerializeToString()
    if kind == "optional_type":
        return numpy_helper.from_optional(value, name).SerializeToString()
    if isinstance(value, onnx.TensorProto):
        return value.SerializeToString()
    # np.asarray also covers numpy scalars, which from_array rejects.
    return numpy_helper.from_array(np.asarray(value), name).SerializeToString()


def encode_data_set(graph, inputs, outputs):
    """Return {file name: bytes} for one data set, or raise if not encodable."""
    files = {}
    for prefix, values, infos in (("input", inputs, graph.input),
                                  ("output", outputs, graph.output)):
        for k, value in enumerate(values):
            info = infos[k] if k < len(infos) else None
            files[f"{prefix}_{k}.pb"] = serialize_value(
                value, info.type if info is not None else None,
                info.name if info is not None else None)
    return files


def write_case(case, case_dir, skipped):
    """Write one TestCase to case_dir; append unserializable data sets to skipped."""
    if case.model_dir is not None:
        shutil.copytree(case.model_dir, case_dir)
        return
    os.makedirs(case_dir)
    with open(os.path.join(case_dir, "model.onnx"), "wb") as f:
        f.write(case.model.SerializeToString())
    for i, (inputs, outputs) in enumerate(case.data_sets or ()):
        # Encode everything first so a failure never leaves a half-written set.
        try:
            files = encode_data_set(case.model.graph, inputs, outputs)
        except Exception as e:  # noqa: BLE001 - any encoder failure skips the set
            skipped.append(f"{case.kind}/{case.name}/test_data_set_{i}: "
                           f"{type(e).__name__}: {e}")
            continue
        # Keep the original index so a skipped set is visible as a gap.
        set_dir = os.path.join(case_dir, f"test_data_set_{i}")
        os.makedirs(set_dir)
        for file_name, data in files.items():
            with open(os.path.join(set_dir, file_name), "wb") as f:
                f.write(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="directory to write the test models into")
    args = parser.parse_args()

    version = " ".join(f"{pkg} {importlib.metadata.version(pkg)}"
                       for pkg in ("onnx", "ml_dtypes"))
    stamp = os.path.join(args.outdir, ".done")
    try:
        with open(stamp) as f:
            if f.read().strip() == version:
                return 0
    except FileNotFoundError:
        pass

    # The node test modules compute expected outputs at import time, and some
    # of those (log of negatives, overflow casts...) emit RuntimeWarnings.
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    from onnx.backend.test.loader import load_model_tests

    counts = {}
    skipped = []
    for kind in KINDS:
        kind_dir = os.path.join(args.outdir, kind)
        # Regenerate from scratch so tests removed in a newer onnx disappear.
        shutil.rmtree(kind_dir, ignore_errors=True)
        cases = load_model_tests(kind=kind)
        for case in cases:
            write_case(case, os.path.join(kind_dir, case.name), skipped)
        counts[kind] = len(cases)

    for line in skipped:
        print(f"gen_onnx_tests: skipped data set {line}", file=sys.stderr)
    with open(stamp, "w") as f:
        f.write(version + "\n")
    summary = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    print(f"gen_onnx_tests: {version}: {summary} models; "
          f"{len(skipped)} data sets skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
