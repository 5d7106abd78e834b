"""Load/save speed of tacoc on a BERT-base-sized model (110M float32
parameters, 12 layers of MatMul weights plus embeddings), against the Python
onnx package doing the same work, in the same run.

Usage: bench/io_bench.py [--tacoc build/bin/tacoc] [--workdir build/bench] [--reps 5]

Timed commands (median and min/max over --reps runs, wall clock, after one
warm-up run so the page cache is warm for both):
  tacoc inspect M                          load + verify + summary
  tacoc optimize M -o OUT -O0              load + verify + write inline
  tacoc optimize M -o OUT -O0 --external-data
  python: onnx.load(M)                     parse only
  python: onnx.save(onnx.load(M), OUT)     parse + write
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def make_model(path):
    rng = np.random.default_rng(0)
    hidden, ffn, layers, vocab = 768, 3072, 12, 30522
    inits, nodes = [], []
    emb = rng.standard_normal((vocab, hidden), dtype=np.float32)
    inits.append(numpy_helper.from_array(emb, "word_embeddings"))
    nodes.append(helper.make_node("Gather", ["word_embeddings", "ids"], ["h0"], name="embed"))
    prev = "h0"
    for layer in range(layers):
        for name, shape in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                            ("o", (hidden, hidden)), ("ffn1", (hidden, ffn)), ("ffn2", (ffn, hidden))):
            w = f"l{layer}.{name}"
            inits.append(numpy_helper.from_array(rng.standard_normal(shape, dtype=np.float32) * 0.02, w))
        for name in ("q", "o"):
            out = f"l{layer}.{name}.out"
            nodes.append(helper.make_node("MatMul", [prev, f"l{layer}.{name}"], [out], name=out))
            prev = out
        f1 = f"l{layer}.ffn1.out"
        nodes.append(helper.make_node("MatMul", [prev, f"l{layer}.ffn1"], [f1], name=f1))
        f2 = f"l{layer}.ffn2.out"
        nodes.append(helper.make_node("MatMul", [f1, f"l{layer}.ffn2"], [f2], name=f2))
        prev = f2
    graph = helper.make_graph(
        nodes, "bert_base_sized",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, ["batch", "seq", hidden])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def timed(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    model = os.path.join(a.workdir, "bert_base_sized.onnx")
    if not os.path.exists(model):
        make_model(model)
    out = os.path.join(a.workdir, "out.onnx")

    def run(*args):
        subprocess.run([a.tacoc, *args], check=True, stdout=subprocess.DEVNULL)

    rows = [
        ("tacoc inspect", lambda: run("inspect", model)),
        ("tacoc optimize -O0", lambda: run("optimize", model, "-o", out, "-O0")),
        ("tacoc optimize -O0 --external-data", lambda: run("optimize", model, "-o", out, "-O0", "--external-data")),
        ("python onnx.load", lambda: onnx.load(model)),
        ("python onnx.load + onnx.save", lambda: onnx.save(onnx.load(model), out)),
    ]
    size = os.path.getsize(model)
    print(f"model: {model}, {size / 2**20:.0f} MiB, {a.reps} reps after a warm-up")
    print(f"{'command':40s} {'median s':>9s} {'min':>7s} {'max':>7s}")
    for label, fn in rows:
        med, lo, hi = timed(fn, a.reps)
        print(f"{label:40s} {med:9.3f} {lo:7.3f} {hi:7.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
