"""quantize-dynamic: float32 MatMuls with a constant [K, N] weight become
DynamicQuantizeLinear + ai.tacoc.MatMulIntegerToFloat (weight int8, per
column, symmetric; the op's model-local function is MatMulInteger + Cast +
Mul by x_scale * w_scale; com.microsoft's op with --compat ort); MatMuls of
one activation share the DynamicQuantizeLinear; small MatMuls (K or N below 16) stay
float32; `tacoc optimize --precision int8` validates in libtacort (budget
cos 0.99) and keeps the MatMuls that break it in float32.

int8 is not exact: outputs are compared with ONNX Runtime's float32 outputs
of the original model by cosine similarity (>= 0.99), in ONNX Runtime and
in libtacort. The libtacort kernels the form uses (DynamicQuantizeLinear's
parallel path, MatMulInteger through oneDNN) must equal the reference
kernels bit for bit."""

import json
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from passlib import const, model, ops, rand, run_ort, tensor_in

RNG = np.random.default_rng(23)
N = helper.make_node


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def close_int8(ctx, before, after, feeds, cos=0.99):
    want = run_ort(before, feeds)
    for name, got in (("onnxruntime", run_ort(after, feeds)),
                      ("libtacort", ctx.run_tacort(after, feeds))):
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape and g.dtype == w.dtype, f"{name} output {i}: {g.shape}"
            assert np.all(np.isfinite(g)), f"{name} output {i}: non-finite values"
            c = cosine(g, w)
            assert c >= cos, f"{name} output {i}: cosine {c:.6f} < {cos}"


def two_matmuls():
    x = tensor_in("x", [2, 5, 64])
    return model([N("MatMul", ["x", "w"], ["h"], name="mm"), N("Relu", ["h"], ["r"]),
                  N("MatMul", ["r", "w2"], ["y"], name="small")],
                 [x], [tensor_in("y", [2, 5, 8])],
                 [const("w", RNG.standard_normal((64, 32))),
                  const("w2", RNG.standard_normal((32, 8)))])


def test_shared_activation_quantized_once(ctx):
    """Q, K and V projections of one activation: one DynamicQuantizeLinear."""
    x = tensor_in("x", [1, 7, 32])
    nodes = [N("MatMul", ["x", f"w{i}"], [f"p{i}"], name=f"proj{i}") for i in range(3)]
    nodes += [N("Add", ["p0", "p1"], ["s"]), N("Add", ["s", "p2"], ["y"])]
    m = model(nodes, [x], [tensor_in("y", [1, 7, 24])],
              [const(f"w{i}", RNG.standard_normal((32, 24))) for i in range(3)])
    out, _, _ = ctx.optimize(m, "quantize-dynamic")
    kinds = ops(out)
    assert kinds.count("DynamicQuantizeLinear") == 1 and kinds.count("MatMulIntegerToFloat") == 3, kinds
    dq = next(n for n in out.graph.node if n.op_type == "DynamicQuantizeLinear")
    for mi in (n for n in out.graph.node if n.op_type == "MatMulIntegerToFloat"):
        assert list(mi.input[::2]) == [dq.output[0], dq.output[1], dq.output[2]], mi
    close_int8(ctx, m, out, {"x": rand(RNG, 1, 7, 32)})


def test_fused_kernel_equals_unfused_graph(ctx):
    """libtacort's MatMulIntegerToFloat kernel (both domains, with and without
    bias) gives the unfused MatMulInteger + Cast + Mul (+ Add) bit for bit."""
    x = tensor_in("x", [3, 5, 48])
    w = const("wq", RNG.integers(-127, 128, (48, 40)), np.int8)
    ws = const("ws", RNG.uniform(0.001, 0.02, 40))
    bias = const("bias", RNG.standard_normal(40))
    dq = N("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])
    unfused = [dq, N("MatMulInteger", ["q", "wq", "z"], ["i"]), N("Cast", ["i"], ["f"], to=1),
               N("Mul", ["s", "ws"], ["sc"]), N("Mul", ["f", "sc"], ["m"]),
               N("Add", ["m", "bias"], ["y"])]
    feeds = {"x": rand(RNG, 3, 5, 48)}
    y = [tensor_in("y", [3, 5, 40])]
    want = ctx.run_tacort(model(unfused, [x], y, [w, ws, bias]), feeds)[0]
    for domain in ("ai.tacoc", "com.microsoft"):
        fused = [dq, N("MatMulIntegerToFloat", ["q", "wq", "s", "ws", "z", "", "bias"], ["y"],
                       domain=domain)]
        if domain == "ai.tacoc":  # ai.tacoc's op has no bias input: Add it after
            fused = [dq, N("MatMulIntegerToFloat", ["q", "wq", "s", "ws", "z"], ["m"],
                           domain=domain), N("Add", ["m", "bias"], ["y"])]
        m = model(fused, [x], y, [w, ws, bias])
        m.opset_import.append(helper.make_opsetid(domain, 1))
        got = ctx.run_tacort(m, feeds)[0]
        assert got.dtype == np.float32 and np.array_equal(got, want), (domain,
                                                                       np.abs(got - want).max())


def test_matmul_to_dynamic_int8(ctx):
    m = two_matmuls()
    out, stdout, _ = ctx.optimize(m, "quantize-dynamic")
    assert ops(out) == ["DynamicQuantizeLinear", "MatMulIntegerToFloat", "Relu", "MatMul"], ops(out)
    g = out.graph
    nodes = {n.op_type: n for n in g.node}
    dq, mi = nodes["DynamicQuantizeLinear"], nodes["MatMulIntegerToFloat"]
    assert list(dq.input) == ["x"] and mi.domain == "ai.tacoc", mi
    assert list(mi.input) == [dq.output[0], mi.input[1], dq.output[1], mi.input[3], dq.output[2]]
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    wq, ws = inits[mi.input[1]], inits[mi.input[3]]
    assert wq.dtype == np.int8 and wq.shape == (64, 32) and np.abs(wq).max() == 127
    assert "w" not in inits and "w2" in inits, list(inits)
    # the fused node writes the MatMul's output under its name and node name
    assert list(mi.output) == ["h"] and mi.name == "mm", mi
    assert ws.dtype == np.float32 and ws.shape == (32,)
    np.testing.assert_allclose(ws, np.abs(numpy_helper.to_array(m.graph.initializer[0])).max(0)
                               / 127, rtol=1e-6)
    fn = [f for f in out.functions if (f.domain, f.name) == ("ai.tacoc", "MatMulIntegerToFloat")]
    assert len(fn) == 1 and [n.op_type for n in fn[0].node] == ["MatMulInteger", "Cast", "Mul",
                                                                "Mul"], fn
    # ONNX Runtime's own op with --compat ort: no function needed
    ms, _, _ = ctx.optimize(m, "quantize-dynamic", extra=["--compat", "ort"])
    fused = [n for n in ms.graph.node if n.op_type == "MatMulIntegerToFloat"]
    assert len(fused) == 1 and fused[0].domain == "com.microsoft" and not ms.functions, ms.functions
    close_int8(ctx, m, ms, {"x": rand(RNG, 2, 5, 64)})
    assert "MatMuls to int8 x1" in stdout, stdout
    close_int8(ctx, m, out, {"x": rand(RNG, 2, 5, 64)})


def classifier(alpha=1.0):
    """A classifier head as exporters write it: Gemm(transB=1, bias) -> Relu
    -> Gemm(transB=1, bias); the second Gemm's alpha is a parameter."""
    x = tensor_in("x", [3, 48])
    return model([N("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
                  N("Relu", ["h"], ["r"]),
                  N("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1, alpha=alpha)],
                 [x], [tensor_in("y", [3, 20])],
                 [const("w1", RNG.standard_normal((32, 48))), const("b1", RNG.standard_normal(32)),
                  const("w2", RNG.standard_normal((20, 32))), const("b2", RNG.standard_normal(20))])


def test_gemm_as_matmul_to_int8(ctx):
    """A Gemm with a bias (transB) is the MatMul it holds plus an Add: its
    weight is transposed once and quantized per column; -O2's GemmRelu too
    (MatMul, Add, Relu). One with alpha != 1 stays a float Gemm."""
    m = classifier()
    out, stdout, _ = ctx.optimize(m, "quantize-dynamic")
    assert ops(out) == ["DynamicQuantizeLinear", "MatMulIntegerToFloat", "Add", "Relu",
                        "DynamicQuantizeLinear", "MatMulIntegerToFloat", "Add"], ops(out)
    assert "Gemm as MatMul x2" in stdout and "MatMuls to int8 x2" in stdout, stdout
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    mi = next(n for n in out.graph.node if n.op_type == "MatMulIntegerToFloat")
    w1 = numpy_helper.to_array(m.graph.initializer[0])
    np.testing.assert_allclose(inits[mi.input[3]], np.abs(w1).max(1) / 127, rtol=1e-6)
    assert inits[mi.input[1]].shape == (48, 32), inits[mi.input[1]].shape
    close_int8(ctx, m, out, {"x": rand(RNG, 3, 48)})
    fused, _, _ = ctx.optimize(m, level=2, extra=["--precision", "int8", "--int8-mode", "dynamic",
                                                  "--calib-random", "2"])
    assert "GemmRelu" not in ops(fused) and ops(fused).count("MatMulIntegerToFloat") == 2, ops(fused)
    close_int8(ctx, m, fused, {"x": rand(RNG, 3, 48)})
    scaled, _, _ = ctx.optimize(classifier(alpha=0.5), "quantize-dynamic")
    assert ops(scaled)[-1] == "Gemm" and ops(scaled).count("MatMulIntegerToFloat") == 1, ops(scaled)


def test_small_matmul_left_alone(ctx):
    x = tensor_in("x", [4, 8])
    m = model([N("MatMul", ["x", "w"], ["y"])], [x], [tensor_in("y", [4, 64])],
              [const("w", RNG.standard_normal((8, 64)))])
    out, _, err = ctx.optimize(m, "quantize-dynamic", extra=["--explain"])
    assert ops(out) == ["MatMul"], ops(out)
    assert "too small for int8: K 8, N 64" in err, err


def test_rank1_activation_left_alone(ctx):
    x = tensor_in("x", [64])
    m = model([N("MatMul", ["x", "w"], ["y"])], [x], [tensor_in("y", [32])],
              [const("w", RNG.standard_normal((64, 32)))])
    out, _, _ = ctx.optimize(m, "quantize-dynamic")
    assert ops(out) == ["MatMul"], ops(out)


def test_precision_int8_validates(ctx):
    m = two_matmuls()
    report = ctx.path("report.json")
    out, stdout, _ = ctx.optimize(m, level=0, extra=["--precision", "int8", "--int8-mode",
                                                     "dynamic", "--calib-random", "2",
                                                     "--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    assert p["type"] == "int8" and p["half_nodes"] == 1, p
    assert p["validation"]["passed"] and p["validation"]["budget"]["cos"] == 0.99, p
    kept = {k["node"]: k for k in p["kept_fp32"]}
    assert "too small" in kept["y"]["detail"], kept
    assert "1 node in int8, 1 kept in float32" in stdout, stdout
    close_int8(ctx, m, out, {"x": rand(RNG, 2, 5, 64)})


def test_planted_outlier_falls_back(ctx):
    # One activation 10^4 times the others (its weight row is zero, so the
    # float32 output ignores it) leaves the per-tensor int8 activation of
    # `hot` no resolution: validation keeps `hot` in float32 and names it.
    c = np.ones(64, np.float32)
    c[0] = 1e4
    w = RNG.standard_normal((64, 64)).astype(np.float32)
    w[0] = 0
    x = tensor_in("x", [4, 64])
    m = model([N("Mul", ["x", "c"], ["s"]), N("MatMul", ["s", "w"], ["h"], name="hot"),
               N("Relu", ["h"], ["r"]), N("MatMul", ["r", "w2"], ["y"], name="fine")],
              [x], [tensor_in("y", [4, 32])],
              [const("c", c), const("w", w), const("w2", RNG.standard_normal((64, 32)))])
    report = ctx.path("report.json")
    out, stdout, _ = ctx.optimize(m, level=0, extra=["--precision", "int8", "--calib-random", "2",
                                                     "--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    kept = {k["node"]: k for k in p["kept_fp32"]}
    assert "h" in kept and kept["h"]["reason"] == "budget fallback", p["kept_fp32"]
    assert p["validation"]["passed"] and "y" not in kept, p
    assert "budget fallback" in stdout, stdout
    assert ops(out).count("MatMulIntegerToFloat") == 1 and ops(out).count("MatMul") == 1, ops(out)
    close_int8(ctx, m, out, {"x": rand(RNG, 4, 64)})


def dql_reference(x):
    """DynamicQuantizeLinear as the ONNX specification writes it, in float32."""
    mn, mx = np.float32(min(0, x.min())), np.float32(max(0, x.max()))
    scale = np.float32((mx - mn) if mx != mn else 1) / np.float32(255)
    zp = np.float32(np.rint(np.clip(np.float32(0) - mn / scale, 0, 255)))
    y = np.clip(np.rint(x / scale) + zp, 0, 255).astype(np.uint8)
    return y, scale, np.uint8(zp)


def test_int8_kernels_fast_equal_reference(ctx):
    # [B, S, K] x [K, N]: DynamicQuantizeLinear in parallel pieces, and
    # MatMulInteger as one u8s8s32 GEMM, against the reference kernels.
    x = tensor_in("x", [3, 100, 96])
    w = RNG.integers(-127, 128, (96, 48)).astype(np.int8)
    m = model([N("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
               N("MatMulInteger", ["q", "w", "z"], ["y"])],
              [x], [helper.make_tensor_value_info("q", TensorProto.UINT8, [3, 100, 96]),
                    tensor_in("s", []), helper.make_tensor_value_info("z", TensorProto.UINT8, []),
                    helper.make_tensor_value_info("y", TensorProto.INT32, [3, 100, 48])],
              [numpy_helper.from_array(w, "w")], opset=13)
    path = ctx.path("m.onnx")
    onnx.save(m, path)
    # random values, and halves from 0 to 255 (scale 1: every other one a tie)
    for xv in ((RNG.standard_normal((3, 100, 96)) * 3 + 0.7).astype(np.float32),
               (np.arange(3 * 100 * 96) % 511 / 2).astype(np.float32).reshape(3, 100, 96)):
        fast_equals_reference(ctx, path, xv, w)


def fast_equals_reference(ctx, path, xv, w):
    xin = ctx.path("x.npy")
    np.save(xin, xv)
    res = {}
    for mode in ("fast", "reference"):
        outdir = ctx.path(mode)
        env = dict(os.environ)
        env.pop("TACORT_KERNELS", None)
        if mode == "reference":
            env["TACORT_KERNELS"] = "reference"
        old = os.environ.copy()
        os.environ.clear()
        os.environ.update(env)
        try:
            ctx.tacoc_run("run", path, "--input", f"x={xin}", "--threads", "4",
                          "--output-dir", outdir)
        finally:
            os.environ.clear()
            os.environ.update(old)
        res[mode] = [np.load(os.path.join(outdir, f"{o}.npy")) for o in "qszy"]
    for a, b, o in zip(res["fast"], res["reference"], "qszy"):
        assert a.dtype == b.dtype and np.array_equal(a, b), f"{o}: fast differs from reference"
    q, s, z = dql_reference(xv)
    assert np.array_equal(res["fast"][0], q) and res["fast"][1] == s and res["fast"][2] == z
    want = (q.astype(np.int64) - int(z)) @ w.astype(np.int64)
    assert np.array_equal(res["fast"][3], want.astype(np.int32))
