"""Precision conversion end to end: `tacoc optimize -O2 --precision fp16|bf16`
on the models of tools/gen_e2e_models.py, checked against the float32 model
in ONNX Runtime on the inputs of tests/e2e.py, and a planted layer that must
fall back to float32.

Usage: precision.py --tacoc PATH [--zoo DIR] MODELDIR

Per model and precision:
  - tacoc validates the conversion itself (4 random sets, budget cos 0.999)
    and its --report says the budget was met;
  - the written model passes onnx.checker (full check);
  - float16: ONNX Runtime runs it (it inserts its own Casts where its CPU
    provider lacks float16 kernels) and libtacort runs it, every output
    finite and with cosine similarity >= 0.999 to ONNX Runtime's float32
    outputs of the original model;
  - bfloat16: libtacort runs it, every output finite and cosine >= 0.99 (8
    bits of mantissa); ONNX Runtime's CPU provider has no bfloat16 kernels
    for MatMul, Add, Conv, ... (and inserts no Casts for them), so the model
    must be refused there with NOT_IMPLEMENTED, never as invalid.
  - int8 (dynamic MatMuls, on the transformer models INT8_MODELS): tacoc's
    validation (budget cos 0.99) is met with MatMuls in int8; graph inputs
    and outputs stay float32; ONNX Runtime and libtacort run it, every
    output finite and cosine >= 0.99 to the float32 outputs.
  - auto (--precision auto --keep-io-types, on AUTO_MODELS with --calib sets
    like the test inputs, and on a wide MLP with random sets): the report
    lists the four candidates with consistent counts; when it chose float32
    the model is the -O2 float32 model, otherwise the written model was
    measured at least 3% faster, its converted nodes are those the report
    counts, every region it found slower is kept float32 with that reason,
    validation passed, and ONNX Runtime and libtacort run it within cos 0.99
    of float32. Which candidate wins is measured, so not asserted: both
    outcomes are checked for what they promise.
  - the real packaged models of tests/e2e.py (PP-OCR classifier, detector,
    recognizer, Silero VAD) and, with --zoo, its caffe2 zoo CNNs (ResNet-50,
    ShuffleNet, DenseNet-121 in float16; ResNet-50, GoogLeNet, SqueezeNet,
    AlexNet, DenseNet-121 and Inception v2 in static int8 (their int8 and
    float values channels-last together in libtacort), ResNet-50 and
    SqueezeNet also with --qdq-inputs-only): float16 and static int8 validated on --calib sets
    like their inputs, then within cos 0.99 in both runtimes.
The cosines are printed per model, output, runtime and precision. Ends with
"precision: N passed, N failed"."""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ort.set_default_logger_severity(3)
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("e2e", os.path.join(HERE, "e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

MODELS = ["bert_block", "vit", "cnn", "wav2vec2", "gpt2_decoder", "mobilenetv3"]
AUTO_MODELS = ["bert_block", "cnn", "wav2vec2"]
AUTO_CANDIDATES = ["int8 dynamic", "int8 static", "float16", "bfloat16"]
INT8_MODELS = ["bert_block", "vit", "wav2vec2", "gpt2_decoder"]
# Sizes of symbolic dims for tacoc's random validation inputs.
SHAPES = {"bert_block": ["--shape", "seq=16", "--shape", "batch=2"],
          "wav2vec2": ["--shape", "samples=400"],
          "gpt2_decoder": ["--shape", "seq=4", "--shape", "past_seq=3", "--shape", "batch=2"],
          "vit": ["--shape", "batch=2"], "cnn": ["--shape", "batch=2"],
          "mobilenetv3": ["--shape", "batch=2"]}
# Calibration method per model for the static int8 cases (each method covered).
STATIC_METHODS = {"bert_block": "percentile", "cnn": "entropy", "wav2vec2": "entropy"}
NP = {TensorProto.FLOAT16: np.float16, TensorProto.FLOAT: np.float32}


def cosine(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    return float(a @ b / (na * nb)) if na and nb else 0.0


def optimize(tacoc, src, dst, extra):
    report = dst + ".json"
    proc = subprocess.run([tacoc, "optimize", src, "-o", dst, "-O2", "--quiet", "--report", report,
                           *extra], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"tacoc optimize {' '.join(extra)} failed: {proc.stderr.strip()}")
    with open(report) as f:
        return json.load(f), proc.stderr


def feeds_for(model, feeds):
    """feeds cast to the dtypes the (converted) model declares."""
    out = {}
    for i in model.graph.input:
        v = feeds[i.name]
        dt = i.type.tensor_type.elem_type
        out[i.name] = v.astype(NP[dt]) if dt in NP and v.dtype != NP[dt] else v
    return out


def run_tacort(tacoc, path, model, feeds, tmp, stderr=None):
    outdir = os.path.join(tmp, "out")
    args = [tacoc, "run", path, "--output-dir", outdir]
    for i, (k, v) in enumerate(feeds.items()):
        f = os.path.join(tmp, f"in{i}.npy")  # input names may hold '/'
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"tacoc run failed: {proc.stderr.strip()}")
    if stderr is not None:
        stderr.append(proc.stderr)
    res = []
    for o in model.graph.output:
        res.append(np.load(os.path.join(outdir, f"{e2e.file_name(o.name)}.npy")))
    return res


def check_outputs(what, got, want, names, min_cos, cosines):
    for name, g, w in zip(names, got, want):
        if not np.all(np.isfinite(g.astype(np.float32))):
            raise AssertionError(f"{what} {name}: non-finite values")
        c = cosine(g, w)
        cosines.append(f"{what} {name} {c:.6f}")
        if c < min_cos:
            raise AssertionError(f"{what} {name}: cosine {c:.6f} < {min_cos}")


def runtimes_agree(tacoc, src, dst, out, feeds_list, min_cos, tmp, with_ort=True):
    """Runs the converted model dst (loaded as out) in ONNX Runtime (unless
    not with_ort) and libtacort on every (label, feeds) of feeds_list; each
    output must be finite and within cosine min_cos of ONNX Runtime's float32
    outputs of src. Returns the cosines as printable strings."""
    ref = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]) if with_ort else None
    names = [o.name for o in ref.get_outputs()]
    cosines = []
    for label, feeds in feeds_list:
        want = ref.run(None, feeds)
        f = feeds_for(out, feeds)
        if sess:
            check_outputs(f"ORT {label}", sess.run(None, f), want, names, min_cos, cosines)
        sub = os.path.join(tmp, label)
        os.makedirs(sub, exist_ok=True)
        check_outputs(f"tacort {label}", run_tacort(tacoc, dst, out, f, sub), want, names, min_cos,
                      cosines)
    return cosines


def check_model(tacoc, name, src, prec, keep_io, tmp):
    dst = os.path.join(tmp, f"{name}.{prec}.onnx")
    extra = ["--precision", prec] + (["--keep-io-types"] if keep_io else []) + SHAPES.get(name, [])
    report, _ = optimize(tacoc, src, dst, extra)
    p = report["precision"]
    if not p["validation"]["passed"] or not p["validation"]["synthetic"]:
        raise AssertionError(f"report: {p['validation']}")
    if p["half_nodes"] == 0:
        raise AssertionError("no node was converted")
    # Per-layer errors for the report's chart: one entry per half node, all
    # finite; the GEMMs and convolutions small for a model within budget (mask
    # arithmetic on clamped constants legitimately differs from float32).
    layers = report.get("layer_errors", {}).get("layers", [])
    if not layers or any(not np.isfinite(x["error"]) for x in layers):
        raise AssertionError(f"per-layer errors missing or not finite: {layers[:5]}")
    heavy = [x for x in layers if x["op"] in ("MatMul", "Gemm", "Conv") or
             (x["op"].startswith("Conv") and x["op"] != "ConvInteger")]
    if not heavy or any(x["error"] > 0.05 for x in heavy):
        raise AssertionError(f"GEMM/convolution errors missing or large: {heavy[:5]}")
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    half = TensorProto.FLOAT16 if prec == "fp16" else TensorProto.BFLOAT16
    for vi in list(out.graph.input) + list(out.graph.output):
        dt = vi.type.tensor_type.elem_type
        if dt in (TensorProto.FLOAT, half) and dt != (TensorProto.FLOAT if keep_io else half):
            raise AssertionError(f"graph input/output {vi.name} has type {dt}")
    rng = np.random.default_rng(7)
    ref_sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    names = [o.name for o in ref_sess.get_outputs()]
    cosines = []
    for label, feeds in e2e.feeds(name, rng):
        want = ref_sess.run(None, feeds)
        conv_feeds = feeds_for(out, feeds)
        if prec == "fp16":
            got = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, conv_feeds)
            check_outputs(f"ORT {label}", got, want, names, 0.999, cosines)
        else:
            try:
                ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
                cosines.append("ORT loads it")
            except Exception as e:  # noqa: BLE001 - the kind of refusal is what is checked
                if "NOT_IMPLEMENTED" not in str(e):
                    raise AssertionError(f"ONNX Runtime refuses the bfloat16 model: {e}")
        sub = os.path.join(tmp, label)
        os.makedirs(sub, exist_ok=True)
        if prec == "bf16":
            conv_feeds = {k: v for k, v in conv_feeds.items()}
        got = run_tacort(tacoc, dst, out, conv_feeds, sub)
        check_outputs(f"tacort {label}", got, want, names, 0.999 if prec == "fp16" else 0.99,
                      cosines)
    kept = ", ".join(f"{k['op']} '{k['node']}'" for k in p["kept_fp32"]) or "none"
    return (f"{p['half_nodes']} half nodes, kept in float32: {kept}; validation cos "
            + ", ".join(f"{o['name']} {o['cos']:.6f}" for o in p["validation"]["outputs"])
            + "; " + "; ".join(cosines))


def check_io_types(src, out):
    """The graph inputs and outputs of out keep the types they have in src."""
    orig = onnx.load(src)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in orig.graph.input}
    types.update({vi.name: vi.type.tensor_type.elem_type for vi in orig.graph.output})
    for vi in list(out.graph.input) + list(out.graph.output):
        if types.get(vi.name, vi.type.tensor_type.elem_type) != vi.type.tensor_type.elem_type:
            raise AssertionError(f"graph input/output {vi.name} changed its type")


def check_int8(tacoc, name, src, tmp):
    dst = os.path.join(tmp, f"{name}.int8.onnx")
    report, _ = optimize(tacoc, src, dst, ["--precision", "int8"] + SHAPES.get(name, []))
    p = report["precision"]
    v = p["validation"]
    if p["type"] != "int8" or not v["passed"] or not v["synthetic"] or v["budget"]["cos"] != 0.99:
        raise AssertionError(f"report: {p['type']} {v}")
    if p["half_nodes"] == 0:
        raise AssertionError("no MatMul was quantized")
    layers = report.get("layer_errors", {}).get("layers", [])
    if not layers or any(not np.isfinite(x["error"]) or x["op"] != "MatMul" for x in layers):
        raise AssertionError(f"per-layer errors missing or not finite: {layers[:5]}")
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    n_int = sum(n.op_type == "MatMulIntegerToFloat" for n in out.graph.node)
    if n_int != p["half_nodes"]:
        raise AssertionError(f"{n_int} MatMulIntegerToFloat nodes, the report says {p['half_nodes']}")
    check_io_types(src, out)
    cosines = runtimes_agree(tacoc, src, dst, out, e2e.feeds(name, np.random.default_rng(7)), 0.99,
                             tmp)
    kept = ", ".join(f"{k['op']} '{k['node']}'" for k in p["kept_fp32"]) or "none"
    return (f"{p['half_nodes']} MatMuls in int8, kept in float32: {kept}; validation cos "
            + ", ".join(f"{o['name']} {o['cos']:.6f}" for o in v["outputs"])
            + "; " + "; ".join(cosines))


def qdq_op(n):
    """MatMul, Conv, FusedConv and tacoc's Conv<Act> / ConvAdd[<Act>]."""
    return n.op_type in ("MatMul", "Conv", "FusedConv") or \
        (n.domain == "ai.tacoc" and n.op_type.startswith("Conv"))


def qdq_nodes(model):
    """Nodes of the QDQ form: a MatMul or convolution whose X comes from a
    DequantizeLinear of a QuantizeLinear output and whose W is the
    DequantizeLinear of a constant int8 initializer."""
    prod = {o: n for n in model.graph.node for o in n.output}
    inits = {i.name: i for i in model.graph.initializer}
    res = []
    for n in model.graph.node:
        if not qdq_op(n) or len(n.input) < 2:
            continue
        dx, dw = prod.get(n.input[0]), prod.get(n.input[1])
        if not dx or not dw or dx.op_type != "DequantizeLinear" or dw.op_type != "DequantizeLinear":
            continue
        q = prod.get(dx.input[0])
        w = inits.get(dw.input[0])
        if q is None or q.op_type != "QuantizeLinear" or w is None or w.data_type != TensorProto.INT8:
            raise AssertionError(f"{n.name or n.output[0]}: not a QDQ group")
        res.append(n)
    return res


def tacort_qdq_count(stderr):
    for line in stderr.splitlines():
        if "QDQ MatMuls and convolutions run as int8 kernels" in line:
            return int(line.split()[1])
    return 0


def make_calib(name, tmp, sets=None):
    """Calibration data from the distribution the model is then run on (as a
    user's would be): 8 sets of the e2e inputs with other seeds, as folders
    of .npy files; tacoc calibrates on 4 and checks the budget on 4. sets(rng)
    gives a model's input sets (default: e2e.feeds of name)."""
    sets = sets or (lambda rng: e2e.feeds(name, rng))
    calib = os.path.join(tmp, "calib")
    k = 0
    for seed in range(100, 200):
        if k >= 8:
            break
        for _, feeds in sets(np.random.default_rng(seed)):
            if k < 8:
                d = os.path.join(calib, f"set_{k}")
                os.makedirs(d)
                for key, val in feeds.items():  # named as tacoc looks for them
                    np.save(os.path.join(d, f"{e2e.file_name(key)}.npy"), val)
                k += 1
    return calib


def check_int8_static(tacoc, name, src, tmp, method):
    """tacoc's static int8 (QDQ, calibrated on 4 sets of --calib, the budget
    checked on the 4 others): within budget, standard QDQ that onnx.checker,
    ONNX Runtime and libtacort take, libtacort binding every quantized node to
    its int8 kernels and agreeing with ONNX Runtime on the same model."""
    calib = make_calib(name, tmp)
    dst = os.path.join(tmp, f"{name}.s8.onnx")
    report, _ = optimize(tacoc, src, dst, ["--precision", "int8", "--int8-mode", "static",
                                           "--calib-method", method, "--calib", calib])
    p = report["precision"]
    v = p["validation"]
    cal = p.get("calibration") or {}
    if (p.get("int8_mode") != "static" or not v["passed"] or v["sets"] != 4 or cal.get("sets") != 4
            or cal.get("method") != method or not cal.get("activations") or v["synthetic"]):
        raise AssertionError(f"report: {p.get('int8_mode')} {cal} {v}")
    if p["half_nodes"] == 0:
        raise AssertionError("nothing was quantized")
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    groups = qdq_nodes(out)
    if len(groups) != p["half_nodes"]:
        raise AssertionError(f"{len(groups)} QDQ groups, the report says {p['half_nodes']}")
    if any(n.op_type in ("MatMulInteger", "DynamicQuantizeLinear") for n in out.graph.node):
        raise AssertionError("dynamic int8 ops in a static model")
    check_io_types(src, out)
    rng = np.random.default_rng(7)
    ref_sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
    names = [o.name for o in ref_sess.get_outputs()]
    cosines = []
    for label, feeds in e2e.feeds(name, rng):
        want = ref_sess.run(None, feeds)
        ort_q = sess.run(None, feeds)
        check_outputs(f"ORT {label}", ort_q, want, names, 0.99, cosines)
        sub = os.path.join(tmp, label)
        os.makedirs(sub, exist_ok=True)
        err = []
        got = run_tacort(tacoc, dst, out, feeds, sub, err)
        check_outputs(f"tacort {label}", got, want, names, 0.99, cosines)
        check_outputs(f"tacort-vs-ORT-int8 {label}", got, ort_q, names, 0.9999, cosines)
        if tacort_qdq_count(err[0]) != len(groups):
            raise AssertionError(f"libtacort ran {tacort_qdq_count(err[0])} of {len(groups)} QDQ "
                                 f"groups as int8 kernels: {err[0].strip()}")
    return (f"{p['half_nodes']} nodes in int8 ({cal['activations']} activations, {method}), kept: "
            + (", ".join(f"{k['op']} '{k['node']}' ({k['reason']})" for k in p["kept_fp32"]) or "none")
            + "; " + "; ".join(cosines))


def check_ort_qdq(tacoc, name, src, tmp):
    """A QDQ model made by onnxruntime.quantization.quantize_static: libtacort
    binds its groups to int8 kernels and matches ONNX Runtime on it."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                          quantize_static)
    rng = np.random.default_rng(11)
    sets = [f for _, f in e2e.feeds(name, rng)]

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(sets)

        def get_next(self):
            return next(self.it, None)

    dst = os.path.join(tmp, f"{name}.ortqdq.onnx")
    quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    out = onnx.load(dst)
    sess = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    cosines = []
    for label, feeds in e2e.feeds(name, np.random.default_rng(7)):
        want = sess.run(None, feeds)
        sub = os.path.join(tmp, label)
        os.makedirs(sub, exist_ok=True)
        err = []
        got = run_tacort(tacoc, dst, out, feeds, sub, err)
        check_outputs(f"tacort-vs-ORT {label}", got, want, names, 0.9999, cosines)
        if tacort_qdq_count(err[0]) == 0:
            raise AssertionError(f"libtacort ran no QDQ group as int8: {err[0].strip()}")
    return f"{tacort_qdq_count(err[0])} groups bound; " + "; ".join(cosines)


def check_planted_int8(tacoc, tmp):
    """An activation channel with values near 1000 that the next MatMul
    ignores (its weight row is 0): with one uint8 scale for the tensor, the
    channels that matter quantize to almost nothing, so the budget fallback
    must keep that MatMul in float32 and the report must name it."""
    rng = np.random.default_rng(3)
    N = helper.make_node
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])
    shift = np.zeros(64, np.float32)
    shift[3] = 1000
    w_out = rng.standard_normal((64, 16)).astype(np.float32) * 0.1
    w_out[3, :] = 0
    g = helper.make_graph(
        [N("MatMul", ["x", "w1"], ["h1"], name="mm_small"), N("Add", ["h1", "shift"], ["h2"]),
         N("MatMul", ["h2", "w_out"], ["y"], name="mm_outlier")],
        "planted_outlier", [x], [y],
        [numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32) * 0.1, "w1"),
         numpy_helper.from_array(shift, "shift"), numpy_helper.from_array(w_out, "w_out")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    src = os.path.join(tmp, "planted_outlier.onnx")
    onnx.save(m, src)
    dst = os.path.join(tmp, "planted_outlier.s8.onnx")
    report, _ = optimize(tacoc, src, dst, ["--precision", "int8", "--int8-mode", "static"])
    p = report["precision"]
    kept = {k["node"]: k for k in p["kept_fp32"]}
    if "y" not in kept or kept["y"]["reason"] != "budget fallback":
        raise AssertionError(f"the report does not keep mm_outlier ('y') for the budget: {kept}")
    if not p["validation"]["passed"] or p["half_nodes"] != 1:
        raise AssertionError(f"{p['half_nodes']} int8 nodes, validation {p['validation']}")
    out = onnx.load(dst)
    if [n.output[0] for n in qdq_nodes(out)] != ["h1"]:
        raise AssertionError("mm_small should be the one QDQ group")
    feeds = {"x": np.random.default_rng(5).uniform(-1, 1, (4, 64)).astype(np.float32)}
    want = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feeds)
    cosines = []
    check_outputs("ORT", ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(
        None, feeds), want, ["y"], 0.99, cosines)
    check_outputs("tacort", run_tacort(tacoc, dst, out, feeds, tmp), want, ["y"], 0.99, cosines)
    return f"kept MatMul 'y': {kept['y']['detail']}; " + "; ".join(cosines)


def packaged_sets(name):
    """rng -> the input sets tests/e2e.py runs packaged model name on."""
    def sets(rng):
        return next(s for n, _, s in e2e.pretrained(rng) if n == name)
    return sets


def zoo_sets(zoodir, name):
    """rng -> the input sets tests/e2e.py runs zoo model name on."""
    def sets(rng):
        return next(s for n, _, s in e2e.zoo(zoodir, rng) if n == name)
    return sets


def check_packaged(tacoc, name, src, prec, tmp, sets=None):
    """A real packaged model (or a zoo CNN, with sets) at fp16
    (--keep-io-types) or static int8, validated by tacoc on 8 --calib sets
    drawn like tests/e2e.py's inputs, then run by ONNX Runtime and libtacort
    on e2e's own inputs: finite, cosine >= 0.99 to ONNX Runtime's float32
    outputs of the original."""
    sets = sets or packaged_sets(name)
    calib = make_calib(name, tmp, sets)
    dst = os.path.join(tmp, f"{name}.{prec.replace(' ', '_')}.onnx")
    extra = (["--precision", "fp16", "--keep-io-types"] if prec == "fp16"
             else ["--precision", "int8", "--int8-mode", "static"]
             + (["--qdq-inputs-only"] if prec == "int8 inputs-only" else []))
    report, _ = optimize(tacoc, src, dst, extra + ["--calib", calib])
    p = report["precision"]
    v = p["validation"]
    if not v["passed"] or v["synthetic"] or p["half_nodes"] == 0:
        raise AssertionError(f"report: {p['half_nodes']} nodes converted, validation {v}")
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    cosines = runtimes_agree(tacoc, src, dst, out, sets(np.random.default_rng(7)), 0.99, tmp)
    return (f"{p['half_nodes']} nodes in {p['type']}, {len(p['kept_fp32'])} kept float32; "
            f"validation cos " + ", ".join(f"{o['cos']:.5f}" for o in v["outputs"]) + "; "
            + "; ".join(cosines))


def check_auto(tacoc, name, src, feeds_list, extra, tmp):
    # --keep-io-types: whichever candidate wins, the model keeps float32 inputs
    # and outputs, so both runtimes run it on the float32 feeds (numpy has no
    # bfloat16 to feed a bfloat16 input with, and bfloat16 wins on some hours)
    dst = os.path.join(tmp, f"{name}.auto.onnx")
    report, _ = optimize(tacoc, src, dst, ["--precision", "auto", "--keep-io-types", *extra])
    p = report["precision"]
    au = p["auto"]
    cands = {c["precision"]: c for c in au["candidates"]}
    if list(cands) != AUTO_CANDIDATES:
        raise AssertionError(f"candidates {list(cands)}")
    for c in cands.values():
        if not c["converted"] <= c["faster"] <= c["convertible"]:
            raise AssertionError(f"inconsistent counts: {c}")
        if c["usable"] != (c["ms"] is not None) or c["usable"] == (c["note"] is not None) or (
                c["usable"] and not c["converted"]):
            raise AssertionError(f"inconsistent candidate: {c}")
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    ops = [n.op_type for n in out.graph.node]
    if au["chosen"] == "float32":
        if p["type"] != "float32" or not au["note"] or au["written_ms"] is not None:
            raise AssertionError(f"float32 chosen, report {p['type']} {au}")
        plain = os.path.join(tmp, "plain.onnx")
        optimize(tacoc, src, plain, [])
        if ops != [n.op_type for n in onnx.load(plain).graph.node]:
            raise AssertionError("auto chose float32 but wrote another model than -O2")
        min_cos = 0.9999
    else:
        c = cands[au["chosen"]]
        if not au["written_ms"] < 0.97 * au["float32_ms"]:
            raise AssertionError(f"written {au['written_ms']} ms, float32 {au['float32_ms']} ms")
        if p["half_nodes"] != c["converted"] or not p["validation"]["passed"]:
            raise AssertionError(f"{p['half_nodes']} nodes converted, {c}; {p['validation']}")
        slower = [k for k in p["kept_fp32"] if k["reason"] == "slower"]
        if len(slower) != c["convertible"] - c["faster"] or any(
                "than float32 on this CPU" not in k["detail"] for k in slower):
            raise AssertionError(f"{len(slower)} kept as slower, {c}")
        want_type = "int8" if c["precision"].startswith("int8") else c["precision"]
        converted = {"int8 dynamic": ops.count("MatMulIntegerToFloat"),
                     "int8 static": len(qdq_nodes(out))}.get(c["precision"], c["converted"])
        if p["type"] != want_type or converted != c["converted"]:
            raise AssertionError(f"type {p['type']}, {converted} converted nodes in the model, {c}")
        min_cos = 0.99
    # ONNX Runtime's CPU provider has no bfloat16 kernels
    cosines = runtimes_agree(tacoc, src, dst, out, feeds_list, min_cos, tmp,
                             with_ort=p["type"] != "bfloat16")
    table = ", ".join(f"{k} {v['converted']}/{v['convertible']} "
                      + (f"{v['ms']:.3f} ms" if v["ms"] else "-") for k, v in cands.items())
    why = f"{au['written_ms']:.3f} ms" if au["written_ms"] else au["note"]
    return (f"chose {au['chosen']} ({why}; float32 {au['float32_ms']:.3f} ms); {table}; "
            + "; ".join(cosines))


def wide_mlp(tmp):
    """Two MatMuls large enough that int8 may pay off (measured by auto)."""
    rng = np.random.default_rng(11)
    N = helper.make_node
    g = helper.make_graph(
        [N("MatMul", ["x", "w1"], ["h"]), N("Relu", ["h"], ["r"]), N("MatMul", ["r", "w2"], ["y"])],
        "wide_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 512])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 256])],
        [numpy_helper.from_array((rng.standard_normal((512, 1024)) * 0.05).astype(np.float32), "w1"),
         numpy_helper.from_array((rng.standard_normal((1024, 256)) * 0.05).astype(np.float32),
                                 "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(tmp, "wide_mlp.onnx")
    onnx.save(m, path)
    feeds = [("random", {"x": rng.uniform(-1, 1, (64, 512)).astype(np.float32)})]
    return path, feeds


def check_auto_usage(tacoc, tmp):
    src, _ = wide_mlp(tmp)
    dst = os.path.join(tmp, "x.onnx")
    for extra, want in ((["--calib-random", "0"], "--precision auto measures"),
                        (["--int8-mode", "dynamic", "--calib-method", "entropy"],
                         "--int8-mode static"),
                        (["--int8-mode", "fast"], "static or dynamic")):
        proc = subprocess.run([tacoc, "optimize", src, "-o", dst, "--precision", "auto", *extra],
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 2 or want not in proc.stderr or os.path.exists(dst):
            raise AssertionError(f"{extra}: exit {proc.returncode}: {proc.stderr.strip()}")
    report, _ = optimize(tacoc, src, dst, ["--precision", "auto", "--int8-mode", "static"])
    got = [c["precision"] for c in report["precision"]["auto"]["candidates"]]
    if got != ["int8 static", "float16", "bfloat16"]:
        raise AssertionError(f"--int8-mode static: candidates {got}")
    return "usage errors exit 2 and write nothing; --int8-mode static leaves one int8 candidate"


def planted_models(tmp):
    """(name, path, node that must stay float32, reason) of models with a
    layer float16 cannot hold."""
    rng = np.random.default_rng(3)
    N = helper.make_node
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])
    res = []
    # A weight with values of 1e6: beyond float16's range, so its MatMul stays float32.
    w_big = rng.standard_normal((64, 64)).astype(np.float32) * 0.1
    w_big[3, 5] = 1e6
    g = helper.make_graph(
        [N("MatMul", ["x", "w1"], ["h1"], name="mm_small"), N("Relu", ["h1"], ["r1"]),
         N("MatMul", ["r1", "w_big"], ["big"], name="mm_big"),
         N("LayerNormalization", ["big", "g", "b"], ["ln"], axis=-1),
         N("MatMul", ["ln", "w2"], ["y"], name="mm_out")],
        "planted_range", [x], [y],
        [numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32) * 0.1, "w1"),
         numpy_helper.from_array(w_big, "w_big"),
         numpy_helper.from_array(np.ones(64, np.float32), "g"),
         numpy_helper.from_array(np.zeros(64, np.float32), "b"),
         numpy_helper.from_array(rng.standard_normal((64, 16)).astype(np.float32) * 0.1, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(tmp, "planted_range.onnx")
    onnx.save(m, path)
    res.append(("planted_range", path, "big", "out-of-range constant"))
    # Weights of 3000 are in range, but the MatMul's sums (~ 64 * 3000) overflow
    # float16: only running it shows that, and the budget fallback keeps it float32.
    g = helper.make_graph(
        [N("MatMul", ["x", "w1"], ["h1"], name="mm_small"), N("Sigmoid", ["h1"], ["s1"]),
         N("MatMul", ["s1", "w_hot"], ["hot"], name="mm_hot"),
         N("LayerNormalization", ["hot", "g", "b"], ["ln"], axis=-1),
         N("MatMul", ["ln", "w2"], ["y"], name="mm_out")],
        "planted_overflow", [x], [y],
        [numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32) * 0.1, "w1"),
         numpy_helper.from_array(np.full((64, 64), 3000, np.float32)
                                 + rng.standard_normal((64, 64)).astype(np.float32), "w_hot"),
         numpy_helper.from_array(np.ones(64, np.float32), "g"),
         numpy_helper.from_array(np.zeros(64, np.float32), "b"),
         numpy_helper.from_array(rng.standard_normal((64, 16)).astype(np.float32) * 0.1, "w2")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path = os.path.join(tmp, "planted_overflow.onnx")
    onnx.save(m, path)
    res.append(("planted_overflow", path, "hot", "budget fallback"))
    return res


def check_planted(tacoc, name, src, node, reason, tmp):
    dst = os.path.join(tmp, f"{name}.fp16.onnx")
    report, _ = optimize(tacoc, src, dst, ["--precision", "fp16", "--keep-io-types"])
    p = report["precision"]
    kept = {k["node"]: k for k in p["kept_fp32"]}
    if node not in kept or kept[node]["reason"] != reason:
        raise AssertionError(f"the report does not keep '{node}' for {reason}: {p['kept_fp32']}")
    if not p["validation"]["passed"]:
        raise AssertionError(f"budget missed: {p['validation']}")
    out = onnx.load(dst)
    onnx.checker.check_model(out, full_check=True)
    feeds = {"x": np.random.default_rng(5).uniform(-1, 1, (4, 64)).astype(np.float32)}
    want = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, feeds)
    cosines = []
    got = ort.InferenceSession(dst, providers=["CPUExecutionProvider"]).run(None, feeds)
    check_outputs("ORT", got, want, ["y"], 0.999, cosines)
    got = run_tacort(tacoc, dst, out, feeds, tmp)
    check_outputs("tacort", got, want, ["y"], 0.999, cosines)
    return f"kept {kept[node]['op']} '{node}': {kept[node]['detail']}; " + "; ".join(cosines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("--zoo", help="directory of tools/gen_zoo_models.py's models")
    ap.add_argument("modeldir")
    a = ap.parse_args()
    passed = failed = 0
    cases = []
    for name in MODELS:
        src = os.path.join(a.modeldir, f"{name}.onnx")
        if not os.path.exists(src):
            print(f"FAIL {name}: {src} is missing (tools/gen_e2e_models.py)")
            failed += 1
            continue
        for prec, keep_io in (("fp16", False), ("fp16", True), ("bf16", True)):
            cases.append((f"{name} {prec}{' keep-io' if keep_io else ''}",
                          lambda tmp, n=name, s=src, p=prec, k=keep_io: check_model(a.tacoc, n, s, p,
                                                                                     k, tmp)))
        if name in INT8_MODELS:
            cases.append((f"{name} int8", lambda tmp, n=name, s=src: check_int8(a.tacoc, n, s, tmp)))
        method = STATIC_METHODS.get(name, "minmax")
        cases.append((f"{name} int8 static {method}",
                      lambda tmp, n=name, s=src, me=method: check_int8_static(a.tacoc, n, s, tmp,
                                                                              me)))
        if name in ("cnn", "bert_block"):
            cases.append((f"{name} onnxruntime.quantization QDQ in libtacort",
                          lambda tmp, n=name, s=src: check_ort_qdq(a.tacoc, n, s, tmp)))
    cases.append(("planted int8 outlier", lambda tmp: check_planted_int8(a.tacoc, tmp)))
    for name in AUTO_MODELS:
        src = os.path.join(a.modeldir, f"{name}.onnx")
        cases.append((f"{name} auto", lambda tmp, n=name, s=src: check_auto(
            a.tacoc, n, s, list(e2e.feeds(n, np.random.default_rng(7))),
            ["--calib", make_calib(n, tmp)], tmp)))
    cases.append(("wide MLP auto",
                  lambda tmp: check_auto(a.tacoc, "wide_mlp", *wide_mlp(tmp), [], tmp)))
    cases.append(("auto usage", lambda tmp: check_auto_usage(a.tacoc, tmp)))
    # Real packaged models (tests/e2e.py): float16 where libtacort's float16
    # kernels validate it in seconds (PP-OCRv4 rec takes over a minute), int8
    # where there is a MatMul or convolution outside control flow (not in
    # Silero VAD, whose convolutions sit in If branches).
    packaged = {n: path for n, path, _ in e2e.pretrained(np.random.default_rng(0))}
    for name, precs in (("ppocr_cls_mobilenetv3", ("fp16", "int8")),
                        ("ppocrv4_det", ("fp16", "int8")), ("ppocrv4_rec", ("int8",)),
                        ("silero_vad_16k_op15", ("fp16",))):
        for prec in precs:
            cases.append((f"{name} {prec} (packaged)", lambda tmp, n=name, s=packaged[name], pr=prec:
                          check_packaged(a.tacoc, n, s, pr, tmp)))
    # The model zoo's caffe2 CNNs (tests/e2e.py --zoo): float16 through
    # channel shuffles, Winograd and dense blocks; static int8 through
    # GoogLeNet's LRNs, SqueezeNet's opset-9 Softmax over [N, C, 1, 1]
    # (the opset raise int8 needs) and AlexNet's Gemm classifier.
    if a.zoo:
        zoo = {n: path for n, path, _ in e2e.zoo(a.zoo, np.random.default_rng(0))}
        for name, precs in (("zoo_resnet50", ("fp16", "int8", "int8 inputs-only")),
                            ("zoo_shufflenet", ("fp16",)),
                            ("zoo_densenet121", ("fp16", "int8")),
                            ("zoo_inception_v1", ("int8",)), ("zoo_inception_v2", ("int8",)),
                            ("zoo_squeezenet", ("int8", "int8 inputs-only")),
                            ("zoo_bvlc_alexnet", ("int8",))):
            for prec in precs:
                cases.append((f"{name} {prec}", lambda tmp, n=name, pr=prec: check_packaged(
                    a.tacoc, n, zoo[n], pr, tmp, zoo_sets(a.zoo, n))))
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, node, reason in planted_models(tmp):
            cases.append((name, lambda t, n=name, s=path, nd=node, r=reason:
                          check_planted(a.tacoc, n, s, nd, r, t)))
        for label, fn in cases:
            with tempfile.TemporaryDirectory() as t:
                t0 = time.perf_counter()
                try:
                    info = fn(t)
                    passed += 1
                    print(f"ok   {label} ({time.perf_counter() - t0:.1f} s): {info}")
                except AssertionError as e:
                    failed += 1
                    print(f"FAIL {label}: {e}")
                except Exception as e:  # a crash of the harness is a failure too
                    failed += 1
                    print(f"FAIL {label}: {type(e).__name__}: {e}")
    print(f"precision: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
