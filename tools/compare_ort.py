"""Runs two ONNX models on the same random inputs in ONNX Runtime and prints
each output's shape and the largest difference between them. Exit 1 if they
differ beyond --atol."""
import argparse
import sys

import numpy as np
import onnxruntime as ort

DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
          "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(bool)": np.bool_}


def feeds_for(sess, batch, rng):
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else batch for d in i.shape]
        dt = DTYPES.get(i.type)
        if dt is None:
            sys.exit(f"compare_ort: input {i.name} has unsupported type {i.type}")
        feeds[i.name] = rng.standard_normal(shape).astype(dt)
    return feeds


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("original")
    ap.add_argument("optimized")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--atol", type=float, default=1e-5)
    a = ap.parse_args()
    s1 = ort.InferenceSession(a.original, providers=["CPUExecutionProvider"])
    s2 = ort.InferenceSession(a.optimized, providers=["CPUExecutionProvider"])
    feeds = feeds_for(s1, a.batch, np.random.default_rng(0))
    o1, o2 = s1.run(None, feeds), s2.run(None, feeds)
    worst = 0.0
    for meta, x, y in zip(s1.get_outputs(), o1, o2):
        diff = float(np.max(np.abs(x.astype(np.float64) - y.astype(np.float64)))) if x.size else 0.0
        worst = max(worst, diff)
        print(f"{meta.name}: shape {list(x.shape)}, max abs difference {diff:.3g}")
    print("outputs match" if worst <= a.atol else "outputs DIFFER")
    return 0 if worst <= a.atol else 1


if __name__ == "__main__":
    sys.exit(main())
