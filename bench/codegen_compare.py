"""The compiled path against the expert path and ONNX Runtime: latency of
BERT-base (fp32 and dynamic int8) and ResNet-50 in libtacort with and
without tacoc's generated kernels (`tacoc optimize --tune fast`), and in ONNX
Runtime (ORT_ENABLE_ALL) on the original model and on onnxruntime's own
dynamic int8 model, in one run, same inputs, same thread count, each with
the cosine of its first output to ONNX Runtime float32's; BERT-base
and the CNNs also as tacoc's bfloat16 models in libtacort (ONNX Runtime's CPU provider
has no bfloat16 kernels; its ratio is to ORT float32). Also the
wall time of `tacoc optimize --tune fast` on BERT-base, without and with a
warm tuning cache.

Usage: bench/codegen_compare.py [--tacoc build/bin/tacoc] [--workdir build/bench]
                                [--threads 1] [--rounds 3] [--reps 5]
                                [--models bert_base,resnet50]

Models: those of bench/ort_compare.py (BERT-base TorchScript opset-14
layout, batch 1, sequence 128; ResNet-50-style, batch 1, 3x224x224;
MobileNetV3-Large; wav2vec2-base- and Whisper-base-shaped speech encoders).
Timing: `rounds` rounds; in each, every configuration runs `reps` timed runs
after a warm-up (libtacort inside one `tacoc run --repeat` process, its
median taken), so drift hits all alike. Reported: medians over rounds
(min-max) in ms and ratios to ONNX Runtime.

Then, with build/bench/cpu_peak (`make` builds it; --peak names another),
each model's floors (bench/floors.py): its GEMM and convolution operations
at the best rate oneDNN reaches here and at the core's multiply-add peak,
beside the latency the targets of 0.8x ONNX Runtime float32 (and, for
BERT-base int8, 0.5x its dynamic int8 model) would need."""
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
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import floors  # noqa: E402
import optimize_compare as opc  # noqa: E402
import ort_compare as oc  # noqa: E402


def optimize(tacoc, src, dst, *args):
    t0 = time.perf_counter()
    p = subprocess.run([tacoc, "optimize", src, "-o", dst, "-q", *args], capture_output=True,
                       text=True)
    if p.returncode:
        raise RuntimeError(f"tacoc optimize {src}: {p.stderr.strip()}")
    return time.perf_counter() - t0


def file_name(name):
    """name as `tacoc run` names a value's .npy file (names may hold '/')."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def input_args(feeds, workdir):
    """`tacoc run` arguments feeding feeds, saved as .npy files in workdir."""
    args = []
    for k, v in feeds.items():
        f = os.path.join(workdir, f"in_{file_name(k)}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    return args


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def tacort(tacoc, path, feeds, workdir, reps, threads, native):
    """Median of `tacoc run --repeat reps` (one block of runs after a warm-up)."""
    args = [tacoc, "run", path, "--repeat", str(reps), "--threads", str(threads)]
    if native:
        args.append("--allow-native-code")
    args += input_args(feeds, workdir)
    proc = subprocess.run(args, capture_output=True, text=True)
    m = re.search(r"latency: median ([\d.]+) ms", proc.stdout)
    if proc.returncode or not m or (native and "warning" in proc.stderr):
        raise RuntimeError(f"tacoc run {path}: {proc.stderr.strip()}")
    return [float(m.group(1))]


def output_cosine(tacoc, path, feeds, workdir, ref, session, native):
    """Cosine of the model's first output (in session, else libtacort) to ref."""
    if session is not None:
        return cosine(session.run(None, feeds)[0], ref)
    out = os.path.join(workdir, "cos_out")
    args = [tacoc, "run", path, "--output-dir", out] + (["--allow-native-code"] if native else [])
    proc = subprocess.run(args + input_args(feeds, workdir), capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"tacoc run {path}: {proc.stderr.strip()}")
    first = onnx.load(path, load_external_data=False).graph.output[0].name
    return cosine(np.load(os.path.join(out, f"{first}.npy")), ref)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default="bert_base,resnet50")
    ap.add_argument("--peak", default="build/bench/cpu_peak",
                    help="cpu_peak binary for the floors (skipped when missing)")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rng = np.random.default_rng(0)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    print(f"threads {a.threads}; {a.rounds} rounds x {a.reps} timed runs; medians (min-max) in ms")
    for name in a.models.split(","):
        path = os.path.join(a.workdir, f"{name}.onnx")
        if not os.path.exists(path):
            onnx.save(oc.MODELS[name](), path)
        w = lambda tag: os.path.join(a.workdir, f"{name}.{tag}.onnx")  # noqa: E731
        shape = oc.TUNE_SHAPES.get(name, [])
        cache = os.path.join(a.workdir, f"{name}.tune.cache")
        if os.path.exists(cache):
            os.remove(cache)
        optimize(a.tacoc, path, w("O2"))
        t_tune = optimize(a.tacoc, path, w("cg"), "--tune", "fast", *shape, "--tuning-cache", cache)
        t_tune_cached = optimize(a.tacoc, path, w("cg"), "--tune", "fast", *shape,
                                 "--tuning-cache", cache)
        configs = [("ORT, original", "ort", path), ("libtacort -O2", "tacort", w("O2")),
                   ("libtacort -O2 --tune fast", "native", w("cg"))]
        if name == "bert_base":
            optimize(a.tacoc, path, w("i8"), "--precision", "int8")
            optimize(a.tacoc, path, w("i8cg"), "--precision", "int8", "--tune", "fast", *shape)
            ort_i8 = w("ortq")
            quantize_dynamic(path, ort_i8, weight_type=QuantType.QInt8)
            configs += [("ORT, its dynamic int8", "ort", ort_i8),
                        ("ORT, tacoc int8", "ort", w("i8")),
                        ("libtacort tacoc int8", "tacort", w("i8")),
                        ("libtacort int8 --tune fast", "native", w("i8cg"))]
        if name in ("bert_base", "resnet50", "mobilenetv3"):
            # bfloat16 (AVX512_BF16 CPUs): ONNX Runtime's CPU provider has no
            # bfloat16 kernels, so libtacort only, against ORT float32
            optimize(a.tacoc, path, w("bf16"), "--precision", "bf16", "--keep-io-types")
            configs += [("libtacort tacoc bf16", "tacort", w("bf16"))]
        if name == "mobilenetv3":
            # its random weights push the default budget's bfloat16 error
            # (cosine 0.999 on random inputs) over: most nodes stay float32,
            # with casts between; a looser budget keeps every node bfloat16
            optimize(a.tacoc, path, w("bf16all"), "--precision", "bf16", "--keep-io-types",
                     "--budget", "cos=0.99")
            configs += [("libtacort bf16 (budget cos 0.99)", "tacort", w("bf16all"))]
        feeds = oc.inputs_for(name, rng)
        sessions = {p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
                    for _, kind, p in configs if kind == "ort"}
        times = {label: [] for label, _, _ in configs}
        for _ in range(a.rounds):
            for label, kind, p in configs:
                if kind == "ort":
                    times[label].append(statistics.median(opc.ort_times(sessions[p], feeds, a.reps)))
                else:
                    times[label] += tacort(a.tacoc, p, feeds, a.workdir, a.reps, a.threads,
                                           kind == "native")
        med = {k: statistics.median(v) for k, v in times.items()}
        # accuracy on this input against ONNX Runtime float32 (first output)
        ref_out = sessions[path].run(None, feeds)[0]
        cosines = {label: output_cosine(a.tacoc, p, feeds, a.workdir, ref_out,
                                        sessions.get(p) if kind == "ort" else None, kind == "native")
                   for label, kind, p in configs[1:]}
        print(f"{name}: optimize --tune fast {t_tune:.1f} s (with the tuning cache {t_tune_cached:.1f} s)")
        base = {"ORT, original": med["ORT, original"]}
        if name == "bert_base":
            base["int8"] = med["ORT, its dynamic int8"]
        for label, _, _ in configs:
            v = times[label]
            i8 = "int8" in label and "ORT, its" not in label
            ref, ref_name = (base["int8"], "ORT int8") if i8 else (base["ORT, original"], "ORT")
            cos = f"   cosine {cosines[label]:.6f}" if label in cosines else ""
            print(f"  {label:33s} {med[label]:9.1f} ({min(v):.1f}-{max(v):.1f})   "
                  f"{med[label] / ref:5.2f}x {ref_name}{cos}")
        if os.path.exists(a.peak):
            print_floors(a, path, feeds, base)
    return 0


def print_floors(a, path, feeds, base):
    """The model's floors beside the targets' latencies (module docstring)."""
    items = floors.work(onnx.load(path), feeds)
    int8 = "int8" in base
    rates, stream = floors.measure(a.peak, items, a.threads, int8=int8)
    targets = [("float32", False, 0.8, base["ORT, original"], "ORT")]
    if int8:
        targets.append(("int8", True, 0.5, base["int8"], "ORT int8"))
    for what, i8, ratio, ref, ref_name in targets:
        line, _ = floors.summary(items, rates, stream, int8=i8)
        hw = floors.floor_ms(items, rates, int8=i8, hardware=True)
        convs = any(it["op"] == "Conv" for it in items)
        why = ("of direct convolutions (Winograd does fewer operations)" if convs else
               "(no kernel goes under it)" if ratio * ref < hw else "")
        print(f"  {what} work: {line}")
        print(f"    {ratio}x {ref_name} = {ratio * ref:.1f} ms: {ratio * ref / hw:.2f}x the "
              f"core-peak floor {why}".rstrip())


if __name__ == "__main__":
    sys.exit(main())
