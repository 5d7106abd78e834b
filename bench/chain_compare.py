"""Generated elementwise-chain kernels: latency of two transformer MLP blocks
written the way exporters write them, in libtacort without and with tacoc's
generated kernels, at -O0 (no pattern fusion: the chains are all there is)
and -O2, and in ONNX Runtime (ORT_ENABLE_ALL) on the original, in one run,
same inputs, same thread count.

Models (batch 1, 128 tokens, hidden 768, MLP 3072):
  gelu_mlp   MatMul -> Add bias -> Erf GELU spelled out (Div, Erf, Add, Mul,
             Mul) -> MatMul -> Add bias -> residual Add  (BERT / wav2vec2)
  swiglu_mlp gate and up MatMuls -> Sigmoid, Mul, Mul (SiLU(gate) * up) ->
             down MatMul -> residual Add  (Llama)

Usage: bench/chain_compare.py [--tacoc build/bin/tacoc] [--workdir build/bench]
                              [--threads 1] [--rounds 5] [--reps 20]
Timing: in each round every configuration runs `reps` timed runs after a
warm-up (libtacort in one `tacoc run --repeat` process, its median);
reported are medians over rounds and ratios to ONNX Runtime."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

S, H, F = 128, 768, 3072


def _w(rng, name, *shape):
    v = (rng.standard_normal(shape) * 0.02).astype(np.float32)
    return helper.make_tensor(name, TensorProto.FLOAT, list(shape), v.ravel().tolist())


def _c(name, v):
    return helper.make_tensor(name, TensorProto.FLOAT, [], [v])


def _model(name, nodes, inits):
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, S, H])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, S, H])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def gelu_mlp():
    rng = np.random.default_rng(0)
    n = helper.make_node
    nodes = [n("MatMul", ["x", "w1"], ["h"]), n("Add", ["h", "b1"], ["hb"]),
             n("Div", ["hb", "sqrt2"], ["t0"]), n("Erf", ["t0"], ["t1"]),
             n("Add", ["t1", "one"], ["t2"]), n("Mul", ["hb", "t2"], ["t3"]),
             n("Mul", ["t3", "half"], ["g"]), n("MatMul", ["g", "w2"], ["o"]),
             n("Add", ["o", "b2"], ["ob"]), n("Add", ["ob", "x"], ["y"])]
    return _model("gelu_mlp", nodes, [_w(rng, "w1", H, F), _w(rng, "b1", F), _w(rng, "w2", F, H),
                                      _w(rng, "b2", H), _c("sqrt2", 1.4142135), _c("one", 1.0),
                                      _c("half", 0.5)])


def swiglu_mlp():
    rng = np.random.default_rng(1)
    n = helper.make_node
    nodes = [n("MatMul", ["x", "wg"], ["gate"]), n("MatMul", ["x", "wu"], ["up"]),
             n("Sigmoid", ["gate"], ["s"]), n("Mul", ["gate", "s"], ["silu"]),
             n("Mul", ["silu", "up"], ["h"]), n("MatMul", ["h", "wd"], ["o"]),
             n("Add", ["o", "x"], ["y"])]
    return _model("swiglu_mlp", nodes, [_w(rng, "wg", H, F), _w(rng, "wu", H, F), _w(rng, "wd", F, H)])


MODELS = {"gelu_mlp": gelu_mlp, "swiglu_mlp": swiglu_mlp}


def tacort(tacoc, path, x, reps, threads, native):
    args = [tacoc, "run", path, "--input", f"x={x}", "--repeat", str(reps), "--threads", str(threads)]
    if native:
        args.append("--allow-native-code")
    p = subprocess.run(args, capture_output=True, text=True)
    m = re.search(r"latency: median ([\d.]+) ms", p.stdout)
    if p.returncode or not m or (native and "warning" in p.stderr):
        raise RuntimeError(f"tacoc run {path}: {p.stderr.strip()}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    x = np.random.default_rng(2).standard_normal((1, S, H)).astype(np.float32)
    xf = os.path.join(a.workdir, "chain_x.npy")
    np.save(xf, x)
    print(f"threads {a.threads}; {a.rounds} rounds of {a.reps} runs; medians over rounds in ms")
    for name, make in MODELS.items():
        src = os.path.join(a.workdir, f"{name}.onnx")
        onnx.save(make(), src)
        cfgs = {}
        for level in ("-O0", "-O2"):
            plain = os.path.join(a.workdir, f"{name}{level}.onnx")
            cg = os.path.join(a.workdir, f"{name}{level}.cg.onnx")
            subprocess.run([a.tacoc, "optimize", src, "-o", plain, level, "-q"], check=True)
            t0 = time.perf_counter()
            p = subprocess.run([a.tacoc, "optimize", src, "-o", cg, level, "--tune", "fast"],
                               capture_output=True, text=True, check=True)
            chains = p.stdout.count("kind=ewchain")
            print(f"  {name} {level} --tune fast: {time.perf_counter() - t0:.1f} s, {chains} chain "
                  f"signature(s), {sum('kind=' in l and 'ewchain' not in l for l in p.stdout.splitlines())} other")
            cfgs[f"libtacort {level}"] = (plain, False)
            cfgs[f"libtacort {level} --tune fast"] = (cg, True)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])
        times = {k: [] for k in ["ORT"] + list(cfgs)}
        for _ in range(a.rounds):
            sess.run(None, {"x": x})
            t = []
            for _ in range(a.reps):
                t0 = time.perf_counter()
                sess.run(None, {"x": x})
                t.append((time.perf_counter() - t0) * 1e3)
            times["ORT"].append(statistics.median(t))
            for k, (path, native) in cfgs.items():
                times[k].append(tacort(a.tacoc, path, xf, a.reps, a.threads, native))
        ort_ms = statistics.median(times["ORT"])
        print(f"{name}:")
        for k, v in times.items():
            med = statistics.median(v)
            print(f"  {k:28s} {med:8.3f} ({min(v):.3f}-{max(v):.3f})  x{med / ort_ms:5.2f} of ORT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
