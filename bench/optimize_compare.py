"""What tacoc's graph optimization buys: latency of the original and the
`tacoc optimize -O2` model in ONNX Runtime (both at ORT_ENABLE_ALL, ORT's
own full optimization) and in libtacort, in one run, same inputs, same
thread count.

Usage: bench/optimize_compare.py [--tacoc build/bin/tacoc] [--workdir build/bench]
                                 [--threads 1] [--rounds 3] [--reps 5]
                                 [--models bert_base,resnet50]

Models: those of bench/ort_compare.py (BERT-base TorchScript opset-14 layout,
batch 1, sequence 128; ResNet-50-style with unfused Conv+BN+Relu, batch 1).
Timing: `rounds` rounds; in each, every configuration runs `reps` timed runs
after a warm-up (tacort inside one `tacoc run --repeat` process), so drift
hits all four alike. Reported: node counts, medians over all timed runs
(min-max) in ms, and ratios of medians."""
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

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ort_compare as oc  # noqa: E402


def tacort_times(tacoc, path, feeds, workdir, reps, threads):
    args = [tacoc, "run", path, "--repeat", str(reps), "--threads", str(threads)]
    for k, v in feeds.items():
        f = os.path.join(workdir, f"in_{k}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    m = re.search(r"latency: median ([\d.]+) ms", proc.stdout)
    if proc.returncode or not m:
        raise RuntimeError(f"tacoc run {path}: {proc.stderr.strip()}")
    return [float(m.group(1))]  # the median of this block of runs


def ort_times(sess, feeds, reps):
    sess.run(None, feeds)
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default="bert_base,resnet50")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rng = np.random.default_rng(0)
    print(f"threads {a.threads}; {a.rounds} rounds x {a.reps} timed runs; medians (min-max) in ms")
    for name in a.models.split(","):
        path = os.path.join(a.workdir, f"{name}.onnx")
        opt = os.path.join(a.workdir, f"{name}.O2.onnx")
        if not os.path.exists(path):
            onnx.save(oc.MODELS[name](), path)
        proc = subprocess.run([a.tacoc, "optimize", path, "-o", opt, "-O2", "--quiet"],
                              capture_output=True, text=True)
        if proc.returncode:
            print(f"{name}: tacoc optimize failed: {proc.stderr.strip()}")
            continue
        nodes = [len(onnx.load(p, load_external_data=False).graph.node) for p in (path, opt)]
        feeds = oc.inputs_for(name, rng)
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sessions = {p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
                    for p in (path, opt)}
        times = {k: [] for k in ("ort", "ort_opt", "tacort", "tacort_opt")}
        for _ in range(a.rounds):
            times["ort"] += ort_times(sessions[path], feeds, a.reps)
            times["ort_opt"] += ort_times(sessions[opt], feeds, a.reps)
            times["tacort"] += tacort_times(a.tacoc, path, feeds, a.workdir, a.reps, a.threads)
            times["tacort_opt"] += tacort_times(a.tacoc, opt, feeds, a.workdir, a.reps, a.threads)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}: {nodes[0]} -> {nodes[1]} nodes")
        for k, label in (("ort", "ORT, original"), ("ort_opt", "ORT, tacoc -O2"),
                         ("tacort", "libtacort, original"), ("tacort_opt", "libtacort, tacoc -O2")):
            v = times[k]
            print(f"  {label:22s} {med[k]:9.1f} ({min(v):.1f}-{max(v):.1f})")
        print(f"  ratios: ORT opt/orig {med['ort_opt'] / med['ort']:.3f}, "
              f"tacort opt/orig {med['tacort_opt'] / med['tacort']:.3f}, "
              f"tacort opt / ORT orig {med['tacort_opt'] / med['ort']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
