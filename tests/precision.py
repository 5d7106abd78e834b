"""Precision conversion end to end: `tacoc optimize -O2 --precision fp16|bf16`
on the models of tools/gen_e2e_models.py, checked against the float32 model
in ONNX Runtime on the inputs of tests/e2e.py, and a planted layer that must
fall back to float32.

Usage: precision.py --tacoc PATH MODELDIR

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
The cosines are printed per model, output, runtime and precision. Ends with
"precision: N passed, N failed"."""
import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

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
INT8_MODELS = ["bert_block", "vit", "wav2vec2", "gpt2_decoder"]
# Sizes of symbolic dims for tacoc's random validation inputs.
SHAPES = {"bert_block": ["--shape", "seq=16", "--shape", "batch=2"],
          "wav2vec2": ["--shape", "samples=400"],
          "gpt2_decoder": ["--shape", "seq=4", "--shape", "past_seq=3", "--shape", "batch=2"],
          "vit": ["--shape", "batch=2"], "cnn": ["--shape", "batch=2"],
          "mobilenetv3": ["--shape", "batch=2"]}
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


def run_tacort(tacoc, path, model, feeds, tmp):
    outdir = os.path.join(tmp, "out")
    args = [tacoc, "run", path, "--output-dir", outdir]
    for k, v in feeds.items():
        f = os.path.join(tmp, f"in_{k}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise AssertionError(f"tacoc run failed: {proc.stderr.strip()}")
    res = []
    for o in model.graph.output:
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in o.name)
        res.append(np.load(os.path.join(outdir, f"{safe}.npy")))
    return res


def check_outputs(what, got, want, names, min_cos, cosines):
    for name, g, w in zip(names, got, want):
        if not np.all(np.isfinite(g.astype(np.float32))):
            raise AssertionError(f"{what} {name}: non-finite values")
        c = cosine(g, w)
        cosines.append(f"{what} {name} {c:.6f}")
        if c < min_cos:
            raise AssertionError(f"{what} {name}: cosine {c:.6f} < {min_cos}")


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
    orig = onnx.load(src)
    types = {vi.name: vi.type.tensor_type.elem_type for vi in orig.graph.input}
    types.update({vi.name: vi.type.tensor_type.elem_type for vi in orig.graph.output})
    for vi in list(out.graph.input) + list(out.graph.output):
        if types.get(vi.name, vi.type.tensor_type.elem_type) != vi.type.tensor_type.elem_type:
            raise AssertionError(f"graph input/output {vi.name} changed its type")
    rng = np.random.default_rng(7)
    ref_sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    sess = ort.InferenceSession(dst, providers=["CPUExecutionProvider"])
    names = [o.name for o in ref_sess.get_outputs()]
    cosines = []
    for label, feeds in e2e.feeds(name, rng):
        want = ref_sess.run(None, feeds)
        check_outputs(f"ORT {label}", sess.run(None, feeds), want, names, 0.99, cosines)
        sub = os.path.join(tmp, label)
        os.makedirs(sub, exist_ok=True)
        got = run_tacort(tacoc, dst, out, feeds, sub)
        check_outputs(f"tacort {label}", got, want, names, 0.99, cosines)
    kept = ", ".join(f"{k['op']} '{k['node']}'" for k in p["kept_fp32"]) or "none"
    return (f"{p['half_nodes']} MatMuls in int8, kept in float32: {kept}; validation cos "
            + ", ".join(f"{o['name']} {o['cos']:.6f}" for o in v["outputs"])
            + "; " + "; ".join(cosines))


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
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, node, reason in planted_models(tmp):
            cases.append((name, lambda t, n=name, s=path, nd=node, r=reason:
                          check_planted(a.tacoc, n, s, nd, r, t)))
        for label, fn in cases:
            with tempfile.TemporaryDirectory() as t:
                try:
                    info = fn(t)
                    passed += 1
                    print(f"ok   {label}: {info}")
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
