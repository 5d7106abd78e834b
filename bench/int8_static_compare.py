"""Static int8 (calibrated QDQ) against float32 and against ONNX Runtime's
own static quantizer, in one run: latency of ResNet-50-style and BERT-base
in ONNX Runtime (ORT_ENABLE_ALL) and libtacort on the float32 model, on
tacoc's QDQ model (`tacoc optimize -O2 --precision int8 --int8-mode
static`: QDQ on the quantized nodes' outputs too; and with
`--qdq-inputs-only`) and on onnxruntime.quantization.quantize_static's QDQ
model (per channel, uint8 activations, int8 weights; after
quant_pre_process, as its documentation advises), with each int8 model's
cosine to the float32 outputs on the timed inputs.

Usage: bench/int8_static_compare.py [--tacoc build/bin/tacoc] [--workdir build/bench]
                                    [--threads 1] [--rounds 3] [--reps 5]
                                    [--models resnet50,bert_base] [--zoo DIR]

Models: those of bench/ort_compare.py, and with --zoo DIR (the folder
tools/gen_zoo_models.py writes) zoo_<name> for its caffe2 zoo CNNs
(zoo_bvlc_alexnet, zoo_inception_v1, ...; one 224x224 image, normal).

Calibration: 8 input sets drawn like the timed inputs (bench/ort_compare.py's
generators, other seeds); tacoc calibrates on 4 (minmax) and checks its
budget on the other 4; onnxruntime.quantization calibrates on the same 4.
Timing as bench/codegen_compare.py: medians over rounds of medians of `reps`
runs, in ms."""
import argparse
import os
import re
import statistics
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import codegen_compare as cc  # noqa: E402  (puts tools/ on the path)
import gen_zoo_models  # noqa: E402
import optimize_compare as opc  # noqa: E402
import ort_compare as oc  # noqa: E402


def tacort_out(tacoc, path, feeds, workdir):
    out = os.path.join(workdir, "out")
    args = [tacoc, "run", path, "--output-dir", out] + cc.input_args(feeds, workdir)
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(proc.stderr)
    m = re.search(r"(\d+) QDQ MatMuls and convolutions", proc.stderr)
    name = onnx.load(path, load_external_data=False).graph.output[0].name
    return np.load(os.path.join(out, f"{cc.file_name(name)}.npy")), int(m.group(1)) if m else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default="resnet50,bert_base")
    ap.add_argument("--zoo", help="tools/gen_zoo_models.py's folder, for zoo_<name> models")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    print(f"threads {a.threads}; {a.rounds} rounds x {a.reps} timed runs; medians (min-max) in ms")
    for name in a.models.split(","):
        path = os.path.join(a.workdir, f"{name}.onnx")
        inputs_for = oc.inputs_for
        if name.startswith("zoo_"):
            if not a.zoo:
                raise SystemExit(f"{name} needs --zoo DIR")
            path = os.path.join(a.zoo, f"{name[4:]}.onnx")
            x = gen_zoo_models.image_input(onnx.load(path, load_external_data=False)).name
            inputs_for = lambda _, rng, x=x: {  # noqa: E731
                x: rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}
        elif not os.path.exists(path):
            onnx.save(oc.MODELS[name](), path)
        w = lambda tag: os.path.join(a.workdir, f"{name}.{tag}.onnx")  # noqa: E731
        sets = [inputs_for(name, np.random.default_rng(100 + k)) for k in range(8)]
        calib = os.path.join(a.workdir, f"{name}.calib")
        for k, s in enumerate(sets):
            os.makedirs(os.path.join(calib, f"set_{k}"), exist_ok=True)
            for key, v in s.items():  # named as tacoc looks for them
                np.save(os.path.join(calib, f"set_{k}", f"{cc.file_name(key)}.npy"), v)
        cc.optimize(a.tacoc, path, w("O2"))
        t_opt = cc.optimize(a.tacoc, path, w("s8"), "--precision", "int8", "--int8-mode", "static",
                            "--calib", calib)
        cc.optimize(a.tacoc, path, w("s8i"), "--precision", "int8", "--int8-mode", "static",
                    "--qdq-inputs-only", "--calib", calib)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(sets[:4])

            def get_next(self):
                return next(self.it, None)

        src = path
        if next(o.version for o in onnx.load(path, load_external_data=False).opset_import
                if o.domain in ("", "ai.onnx")) < 13:
            # per-channel QDQ needs opset 13: the caffe2 zoo's opset 9 through
            # onnx's version converter first (as ORT's quantizer advises)
            from onnx import version_converter
            src = w("opset13")
            onnx.save(version_converter.convert_version(onnx.load(path), 13), src)
        ort_quantized = True
        try:
            quant_pre_process(src, w("ortpre"), skip_symbolic_shape=True)
            quantize_static(w("ortpre"), w("ortqdq"), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8)
        except Exception as e:  # noqa: BLE001 (its rows are left out, and said so)
            print(f"  onnxruntime.quantization cannot quantize {name}: {str(e)[:160]}")
            ort_quantized = False
        configs = [("ORT, float32", "ort", path), ("ORT, its QDQ int8", "ort", w("ortqdq")),
                   ("ORT, tacoc QDQ int8", "ort", w("s8")),
                   ("ORT, tacoc --qdq-inputs-only", "ort", w("s8i")),
                   ("libtacort -O2 float32", "tacort", w("O2")),
                   ("libtacort, tacoc QDQ int8", "tacort", w("s8")),
                   ("libtacort, tacoc --qdq-inputs-only", "tacort", w("s8i")),
                   ("libtacort, ORT's QDQ int8", "tacort", w("ortqdq"))]
        if not ort_quantized:
            configs = [c for c in configs if c[2] != w("ortqdq")]
        feeds = inputs_for(name, np.random.default_rng(0))
        sessions = {p: ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
                    for _, kind, p in configs if kind == "ort"}
        ref = sessions[path].run(None, feeds)[0]
        acc = {}
        for label, kind, p in configs:
            if kind == "ort":
                acc[label] = f"cos {cc.cosine(sessions[p].run(None, feeds)[0], ref):.5f}"
            else:
                y, bound = tacort_out(a.tacoc, p, feeds, a.workdir)
                acc[label] = f"cos {cc.cosine(y, ref):.5f}, {bound} QDQ groups bound"
        times = {label: [] for label, _, _ in configs}
        for _ in range(a.rounds):
            for label, kind, p in configs:
                if kind == "ort":
                    times[label].append(statistics.median(opc.ort_times(sessions[p], feeds, a.reps)))
                else:
                    times[label] += cc.tacort(a.tacoc, p, feeds, a.workdir, a.reps, a.threads,
                                              False)
        med = {k: statistics.median(v) for k, v in times.items()}
        print(f"{name}: tacoc optimize --precision int8 --int8-mode static {t_opt:.1f} s")
        base = med["ORT, float32"]
        for label, _, _ in configs:
            v = times[label]
            print(f"  {label:31s} {med[label]:8.1f} ({min(v):.1f}-{max(v):.1f})  "
                  f"{med[label] / base:5.2f}x ORT fp32   {acc[label]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
