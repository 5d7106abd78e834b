"""quantize-static (--precision int8 --int8-mode static): MatMuls and
convolutions to standard QDQ with calibrated activation ranges; checked
for the graph it writes, the numbers (ONNX Runtime and libtacort against
the float32 model) and the cases it must leave alone."""
import json
import os

import numpy as np
import onnx
from onnx import helper, numpy_helper

from passlib import const, model, ops, run_ort, tensor_in

RNG = np.random.default_rng(29)
N = helper.make_node
STATIC = ["--precision", "int8", "--int8-mode", "static"]
# the QDQ form libtacort alone needs: pairs on the quantized nodes' inputs
# only (the default pairs their outputs too, for ONNX Runtime)
INPUTS_ONLY = STATIC + ["--qdq-inputs-only"]


def cosine(a, b):
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def uniform(*shape):
    """Inputs like tacoc's random calibration sets (uniform in [-1, 1)): a
    static int8 model is only as good as its calibration data is like the
    inputs it runs on."""
    return RNG.uniform(-1, 1, shape).astype(np.float32)


def close(ctx, before, after, feeds, cos=0.99):
    want = run_ort(before, feeds)
    for name, got in (("onnxruntime", run_ort(after, feeds)),
                      ("libtacort", ctx.run_tacort(after, feeds))):
        for i, (g, w) in enumerate(zip(got, want)):
            assert g.shape == w.shape and np.all(np.isfinite(g)), f"{name} output {i}"
            c = cosine(g, w)
            assert c >= cos, f"{name} output {i}: cosine {c:.6f} < {cos}"


def static(ctx, m, *extra):
    report = ctx.path("report.json")
    out, stdout, err = ctx.optimize(m, level=0, extra=STATIC + ["--report", report, *extra])
    with open(report) as f:
        return out, json.load(f)["precision"], stdout, err


def conv_model(group=1, opset=14, cin=8, cmid=16):
    x = tensor_in("x", [2, cin, 10, 10])
    return model([N("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1], group=group),
                  N("Relu", ["c"], ["r"]),
                  N("Conv", ["r", "w2"], ["y"], name="conv2")],
                 [x], [tensor_in("y", [2, 4, 10, 10])],
                 [const("w", RNG.standard_normal((cmid, cin // group, 3, 3)) * 0.2),
                  const("b", RNG.standard_normal(cmid) * 0.1),
                  const("w2", RNG.standard_normal((4, cmid, 1, 1)) * 0.2)], opset=opset)


def test_opset12_fused_conv_functions_follow_the_raise(ctx):
    """-O2 turns Conv+Relu into ai.tacoc ConvRelu with its function at the
    model's opset 12; quantize-static raises the model to 13 on the model
    reloaded for validation, and the function's opset must follow (ONNX
    requires it; ctx.optimize runs onnx.checker's full check)."""
    m = conv_model(opset=12)
    report = ctx.path("report.json")
    out, _, _ = ctx.optimize(m, level=2, extra=STATIC + ["--report", report])
    opset = {o.domain: o.version for o in out.opset_import}
    assert opset[""] == 13, opset
    funcs = [f for f in out.functions if f.domain == "ai.tacoc"]
    assert funcs and all({o.domain: o.version for o in f.opset_import}[""] == 13 for f in funcs)
    close(ctx, m, out, {"x": uniform(2, 8, 10, 10)})


def test_conv_to_qdq(ctx):
    """The pairs on a quantized convolution's inputs (--qdq-inputs-only
    writes only those): x's per-tensor uint8 pair, the weights' per-channel
    int8 scales, the int32 bias at x's scale times the weight's."""
    m = conv_model()
    out, p, stdout, _ = static(ctx, m, "--qdq-inputs-only")
    assert p["int8_mode"] == "static" and p["half_nodes"] == 2 and p["validation"]["passed"], p
    assert p["calibration"] == {"method": "minmax", "sets": 4, "activations": 2}, p
    assert p["validation"]["sets"] == 4, p["validation"]  # the held-out half of 8
    k = ops(out)
    assert k.count("QuantizeLinear") == 2 and k.count("DequantizeLinear") == 5, k
    assert k.count("Conv") == 2 and "Relu" in k, k
    g = out.graph
    prod = {o: n for n in g.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    conv1 = next(n for n in g.node if n.name == "conv1")
    dx, dw, db = (prod[i] for i in conv1.input)
    q = prod[dx.input[0]]
    assert q.op_type == "QuantizeLinear" and list(q.input[:1]) == ["x"], q
    xs, xz = inits[dx.input[1]], inits[dx.input[2]]
    assert xz.dtype == np.uint8 and xs.shape == () and xz.shape == (), (xs, xz)
    wq, ws, wz = (inits[i] for i in dw.input)
    assert wq.dtype == np.int8 and wq.shape == (16, 8, 3, 3) and np.abs(wq).max() == 127
    assert ws.shape == (16,) and wz.dtype == np.int8 and not wz.any()
    assert [a.i for a in dw.attribute if a.name == "axis"] == [0], dw
    w = numpy_helper.to_array(m.graph.initializer[0])
    np.testing.assert_allclose(ws, np.abs(w).reshape(16, -1).max(1) / 127, rtol=1e-6)
    bq, bs = inits[db.input[0]], inits[db.input[1]]
    assert bq.dtype == np.int32 and bs.shape == (16,), (bq.dtype, bs.shape)
    np.testing.assert_allclose(bs, xs * ws, rtol=1e-6)
    b = numpy_helper.to_array(m.graph.initializer[1])
    assert np.abs(bq * bs - b).max() <= bs.max() / 2 + 1e-7
    # the Relu's output is conv2's activation: non-negative, so zero point 0
    conv2 = next(n for n in g.node if n.name == "conv2")
    assert inits[prod[conv2.input[0]].input[2]] == 0
    assert "w" not in inits and "b" not in inits and "w2" not in inits, list(inits)
    assert "2 nodes in int8, 0 kept in float32" in stdout, stdout
    close(ctx, m, out, {"x": uniform(2, 8, 10, 10)})


def test_shared_activation_one_pair(ctx):
    x = tensor_in("x", [1, 7, 32])
    nodes = [N("MatMul", ["x", f"w{i}"], [f"p{i}"], name=f"proj{i}") for i in range(3)]
    nodes += [N("Add", ["p0", "p1"], ["s"]), N("Add", ["s", "p2"], ["y"])]
    m = model(nodes, [x], [tensor_in("y", [1, 7, 24])],
              [const(f"w{i}", RNG.standard_normal((32, 24))) for i in range(3)])
    out, p, _, _ = static(ctx, m, "--calib-method", "percentile", "--qdq-inputs-only")
    k = ops(out)
    assert k.count("QuantizeLinear") == 1 and k.count("DequantizeLinear") == 4, k
    assert p["half_nodes"] == 3 and p["calibration"]["method"] == "percentile", p
    dws = [n for n in out.graph.node if n.op_type == "DequantizeLinear" and
           [a.i for a in n.attribute if a.name == "axis"] == [1]]
    assert len(dws) == 3, dws  # per-column weight scales
    close(ctx, m, out, {"x": uniform(1, 7, 32)})


def test_grouped_conv_stays_float(ctx):
    """Two groups of 4 channels stay float32; two groups of 16 (AlexNet's
    are 48 to 192 wide) are quantized, per-channel weight scales over all
    the groups' output channels."""
    out, p, _, _ = static(ctx, conv_model(group=2), "--calib-method", "entropy")
    kept = {k["node"]: k for k in p["kept_fp32"]}
    assert kept["c"]["reason"] == "grouped convolution", kept
    assert p["half_nodes"] == 1, p
    conv1 = next(n for n in out.graph.node if n.name == "conv1")
    assert list(conv1.input) == ["x", "w", "b"], conv1
    m = conv_model(group=2, cin=32, cmid=32)
    out, p, _, _ = static(ctx, m, "--calib-method", "entropy")
    assert p["half_nodes"] == 2 and not p["kept_fp32"], p
    conv1 = next(n for n in out.graph.node if n.name == "conv1")
    dq = next(n for n in out.graph.node if n.output[0] == conv1.input[1])
    assert dq.op_type == "DequantizeLinear", dq
    close(ctx, m, out, {"x": uniform(2, 32, 10, 10)})


def classifier_model(opset, spatial):
    """conv_model's two convolutions, then a per-channel mean (kept [N, C,
    1, 1] when not spatial) and an old-style Softmax without an axis
    attribute (default 1: the softmax of everything after N before 13)."""
    m = conv_model(opset=opset)
    g = m.graph
    y = g.output.pop()
    if spatial:
        g.node.append(N("Softmax", [y.name], ["p"]))
        g.output.append(tensor_in("p", [2, 4, 10, 10]))
    else:
        g.node.extend([N("GlobalAveragePool", [y.name], ["gap"]), N("Softmax", ["gap"], ["p"])])
        g.output.append(tensor_in("p", [2, 4, 1, 1]))
    return m


def test_opset9_softmax_over_ones_raised(ctx):
    """A caffe2 classifier's Softmax over [N, C, 1, 1] at opset 9 (SqueezeNet,
    ...) means the same at 13 over axis 1: the raise is taken, the axis
    written out (13's default is -1, which would make every output 1), and
    the outputs stay the float32 model's in both runtimes."""
    m = classifier_model(9, spatial=False)
    out, p, _, _ = static(ctx, m)
    assert p["half_nodes"] == 2 and not p["kept_fp32"], p
    assert {o.domain: o.version for o in out.opset_import}[""] == 13
    soft = next(n for n in out.graph.node if n.op_type == "Softmax")
    assert [(a.name, a.i) for a in soft.attribute] == [("axis", 1)], soft
    close(ctx, m, out, {"x": uniform(2, 8, 10, 10)}, cos=0.999)


def test_opset9_softmax_over_positions_refused(ctx):
    """Over [N, C, H, W] the old Softmax normalizes C * H * W values together
    and 13's one axis would not: the model stays at 9, float32, each
    convolution kept with the reason given once."""
    m = classifier_model(9, spatial=True)
    out, p, _, _ = static(ctx, m)
    assert p["half_nodes"] == 0 and {o.domain: o.version for o in out.opset_import}[""] == 9
    why = "opset: raising opset 9 to 13 would change the meaning of Softmax"
    assert [k["detail"] for k in p["kept_fp32"]] == [why, why], p["kept_fp32"]


def test_conv_after_lrn_quantized(ctx):
    """GoogLeNet's Conv -> Relu -> LRN -> Conv: shape inference must carry
    the element type through LRN, or the second convolution was skipped
    without a word (its input's type unknown)."""
    m = conv_model()
    g = m.graph
    conv2 = next(n for n in g.node if n.name == "conv2")
    g.node.insert(2, N("LRN", ["r"], ["l"], size=3))
    conv2.input[0] = "l"
    out, p, _, _ = static(ctx, m)
    assert p["half_nodes"] == 2 and not p["kept_fp32"], p
    close(ctx, m, out, {"x": uniform(2, 8, 10, 10)})


def test_gemm_relu_classifier_to_qdq(ctx):
    """-O2 fuses a classifier's Gemm + Relu into GemmRelu; static int8
    calibrates its input and writes it as a QDQ MatMul (weight transposed,
    per-column scales), Add and Relu, and the last Gemm likewise."""
    x = tensor_in("x", [2, 48])
    m = model([N("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
               N("Relu", ["h"], ["r"]),
               N("Gemm", ["r", "w2", "b2"], ["y"], name="fc2", transB=1)],
              [x], [tensor_in("y", [2, 20])],
              [const("w1", RNG.standard_normal((32, 48)) * 0.2), const("b1", RNG.standard_normal(32)),
               const("w2", RNG.standard_normal((20, 32)) * 0.2),
               const("b2", RNG.standard_normal(20))])
    report = ctx.path("report.json")
    out, _, _ = ctx.optimize(m, level=2, extra=INPUTS_ONLY + ["--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    assert p["half_nodes"] == 2 and p["calibration"]["activations"] == 2, p
    k = ops(out)
    assert "Gemm" not in k and "GemmRelu" not in k and k.count("MatMul") == 2, k
    assert k.count("QuantizeLinear") == 2 and "Relu" in k and k.count("Add") == 2, k
    close(ctx, m, out, {"x": uniform(2, 48)})
    # A layer read by a float op (a Sigmoid): by default its pair goes after
    # its bias and Relu (the GemmRelu's calibrated output), where ONNX
    # Runtime makes a QGemm of it; with --qdq-inputs-only it has none to
    # make one with.
    head = model([N("Gemm", ["x", "w1", "b1"], ["h"], name="fc1", transB=1),
                  N("Relu", ["h"], ["r"]), N("Sigmoid", ["r"], ["y"])],
                 [x], [tensor_in("y", [2, 32])], list(m.graph.initializer)[:2])
    plain, _, _ = ctx.optimize(head, level=2, extra=INPUTS_ONLY)
    paired, _, _ = ctx.optimize(head, level=2, extra=STATIC)
    assert ort_ops(ctx, plain).count("QGemm") == 0, ort_ops(ctx, plain)
    assert ort_ops(ctx, paired).count("QGemm") == 1, ort_ops(ctx, paired)
    close(ctx, head, paired, {"x": uniform(2, 48)})
    # by default the second layer reads the first one's pair: still a
    # calibrated input (its pair's source), so both layers are int8
    report = ctx.path("report2.json")
    both, _, _ = ctx.optimize(m, level=2, extra=STATIC + ["--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    assert p["half_nodes"] == 2 and not p["kept_fp32"], p
    k = ops(both)
    assert "Gemm" not in k and "GemmRelu" not in k and k.count("MatMul") == 2, k
    close(ctx, m, both, {"x": uniform(2, 48)})


def ort_ops(ctx, m):
    """The ops of ONNX Runtime's optimized graph of m."""
    import onnx
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.optimized_model_filepath = ctx.path("ort_opt.onnx")
    ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


def ort_qlinear_convs(ctx, m):
    """QLinearConv nodes in ONNX Runtime's optimized graph of m."""
    return ort_ops(ctx, m).count("QLinearConv")


def test_qdq_outputs_for_onnx_runtime(ctx):
    """Two convolutions whose outputs meet in a Concat before a third (whose
    output is the graph's): with --qdq-inputs-only only the inputs of the
    quantized convolutions are paired, and ONNX Runtime makes no QLinearConv
    (it needs a QuantizeLinear after the convolution); by default the first
    two outputs are paired too (calibrated), the Concat reads them
    dequantized, and ONNX Runtime makes those two QLinearConv (the graph
    output stays float). Outputs stay the float32 model's in both
    runtimes."""
    x = tensor_in("x", [1, 8, 10, 10])
    m = model([N("Conv", ["x", "wa"], ["a"], name="ca", pads=[1, 1, 1, 1]),
               N("Conv", ["x", "wb"], ["b"], name="cb"),
               N("Concat", ["a", "b"], ["ab"], axis=1),
               N("Relu", ["ab"], ["r"]),
               N("Conv", ["r", "wc"], ["y"], name="cc")],
              [x], [tensor_in("y", [1, 4, 10, 10])],
              [const("wa", RNG.standard_normal((16, 8, 3, 3)) * 0.2),
               const("wb", RNG.standard_normal((16, 8, 1, 1)) * 0.2),
               const("wc", RNG.standard_normal((4, 32, 1, 1)) * 0.2)], opset=13)
    plain, p, _, _ = static(ctx, m, "--qdq-inputs-only")
    paired, q, _, _ = static(ctx, m)
    assert p["half_nodes"] == q["half_nodes"] == 3, (p, q)
    # x and r; by default a, b and y too (y, a graph output, gets no pair)
    assert q["calibration"]["activations"] == 5 and p["calibration"]["activations"] == 2, q
    prod = {o: n for n in paired.graph.node for o in n.output}
    concat = next(n for n in paired.graph.node if n.op_type == "Concat")
    for i, conv in zip(concat.input, ("a", "b")):
        dq = prod[i]
        assert dq.op_type == "DequantizeLinear" and prod[dq.input[0]].input[0] == conv, (i, dq)
    assert "y" not in {n.input[0] for n in paired.graph.node if n.op_type == "QuantizeLinear"}
    assert ops(paired).count("QuantizeLinear") == ops(plain).count("QuantizeLinear") + 2, (
        ops(plain), ops(paired))
    counts = (ort_qlinear_convs(ctx, plain), ort_qlinear_convs(ctx, paired))
    assert counts == (0, 2), counts
    close(ctx, m, paired, {"x": uniform(1, 8, 10, 10)})
    # Conv -> Conv: the second reads the first's output pair as its own
    # (one pair per tensor, still; --qdq-outputs says the default)
    direct = model([N("Conv", ["x", "wb"], ["b"], name="cb"), N("Conv", ["b", "wd"], ["y"])],
                   [x], [tensor_in("y", [1, 4, 10, 10])],
                   [const("wb", RNG.standard_normal((16, 8, 1, 1)) * 0.2),
                    const("wd", RNG.standard_normal((4, 16, 1, 1)) * 0.2)], opset=13)
    chain, q, _, _ = static(ctx, direct, "--qdq-outputs")
    assert q["half_nodes"] == 2 and ops(chain).count("QuantizeLinear") == 2, (q, ops(chain))
    close(ctx, direct, chain, {"x": uniform(1, 8, 10, 10)})


def test_conv_output_paired_for_8bit_readers_only(ctx):
    """A convolution's output read only by a float op (a Sigmoid here;
    MobileNetV3's HardSwish, a depthwise convolution) gets no pair: ONNX
    Runtime would run it as QLinearConv between layout transposes and then
    dequantize, no faster than float (PP-OCR's MobileNetV3 models). One
    read by another convolution, or by a residual Add, gets one."""
    x = tensor_in("x", [1, 8, 6, 6])
    m = model([N("Conv", ["x", "wa"], ["a"], name="ca"),
               N("Sigmoid", ["a"], ["ya"]),
               N("Conv", ["x", "wb"], ["b"], name="cb"),
               N("Conv", ["b", "wc"], ["c"], name="cc"),
               N("Add", ["c", "b"], ["s"]),
               N("Conv", ["s", "wd"], ["yd"], name="cd")],
              [x], [tensor_in("ya", [1, 8, 6, 6]), tensor_in("yd", [1, 8, 6, 6])],
              [const(f"w{k}", RNG.standard_normal((8, 8, 1, 1)) * 0.3) for k in "abcd"], opset=13)
    out, p, _, _ = static(ctx, m)
    assert p["half_nodes"] == 4 and not p["kept_fp32"], p
    quantized = {n.input[0] for n in out.graph.node if n.op_type == "QuantizeLinear"}
    assert "a" not in quantized and {"b", "c", "s"} <= quantized, quantized
    close(ctx, m, out, {"x": uniform(1, 8, 6, 6)})


def test_qdq_outputs_keep_residual_add_apart(ctx):
    """A ResNet block at -O2: with --qdq-inputs-only Conv + Add + Relu is one
    ConvAddRelu (libtacort's int8 primitive takes the sum); by default the
    Add stays apart, so the convolution's output is there to pair and ONNX
    Runtime makes both convolutions QLinearConv (the zoo's ResNet-50 in
    ONNX Runtime: 49.4 -> 25.8 ms). Two such blocks: each Add reads both
    pairs and its output (after the Relu) has its own, as
    onnxruntime.quantization writes a residual sum: ONNX Runtime makes
    QLinearAdds, libtacort binds int8 Adds."""
    x = tensor_in("x", [1, 8, 10, 10])
    m = model([N("Conv", ["x", "wa"], ["a"], name="ca", pads=[1, 1, 1, 1]),
               N("Relu", ["a"], ["ra"]),
               N("Conv", ["ra", "wb"], ["b"], name="cb"),
               N("Add", ["b", "ra"], ["s"]),
               N("Relu", ["s"], ["r"]),
               N("Conv", ["r", "wd"], ["d"], name="cd"),
               N("Add", ["d", "r"], ["s2"]),
               N("Relu", ["s2"], ["r2"]),
               N("Conv", ["r2", "wc"], ["y"], name="cc")],
              [x], [tensor_in("y", [1, 8, 10, 10])],
              [const("wa", RNG.standard_normal((8, 8, 3, 3)) * 0.2),
               const("wb", RNG.standard_normal((8, 8, 1, 1)) * 0.3),
               const("wc", RNG.standard_normal((8, 8, 1, 1)) * 0.3),
               const("wd", RNG.standard_normal((8, 8, 1, 1)) * 0.3)], opset=13)
    plain, _, _ = ctx.optimize(m, level=2, extra=INPUTS_ONLY)
    report = ctx.path("report.json")
    paired, _, _ = ctx.optimize(m, level=2, extra=STATIC + ["--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    # both int8, no fallback: the first convolution's pair is read by the
    # bound second one and by the float Add, so the pair's DequantizeLinear
    # runs while the convolution reads its QuantizeLinear's output, whose
    # buffer the memory plan reused before the convolution ran (the second
    # and later validation sets came out wrong, cos 0.74-0.78)
    assert p["half_nodes"] == 4 and not p["kept_fp32"], p
    assert "ConvAddRelu" in ops(plain) and "ConvAddRelu" not in ops(paired), ops(paired)
    assert "Add" in ops(paired), ops(paired)
    counts = (ort_qlinear_convs(ctx, plain), ort_qlinear_convs(ctx, paired))
    assert counts == (0, 3), counts
    # both residual Adds read two pairs (the second one's block input r has
    # its pair from the next convolution only, until pair_adds)
    prod = {o: n.op_type for n in paired.graph.node for o in n.output}
    adds = [n for n in paired.graph.node if n.op_type == "Add"]
    assert [[prod.get(i) for i in a.input] for a in adds] == [["DequantizeLinear"] * 2] * 2, adds
    assert ort_ops(ctx, paired).count("QLinearAdd") == 2, ort_ops(ctx, paired)
    path = ctx.path("paired.onnx")
    onnx.save(paired, path)
    err = ctx.tacoc_run("run", path, "--random-inputs").stderr
    assert "2 QDQ Adds and 0 Concats run as int8 kernels" in err, err
    close(ctx, m, paired, {"x": uniform(1, 8, 10, 10)})


def test_pools_and_concats_stay_8bit(ctx):
    """SqueezeNet's and GoogLeNet's pooling between int8 convolutions (at
    -O2): a Concat of two paired convolution outputs, a MaxPool of it, and a second
    MaxPool of the first one's output (GoogLeNet's pool branch), each read
    by a convolution. By default the Concat's output gets a pair (the union
    of its inputs' ranges) that the first MaxPool reads, and each MaxPool's
    output pair has its input pair's scale and zero point (the pooled values
    are input values: nothing requantized), the second MaxPool reading the
    first's pair: ONNX Runtime makes a QLinearConcat and pools 8-bit values,
    libtacort binds both MaxPools. Outputs stay the float32 model's."""
    x = tensor_in("x", [1, 8, 9, 9])
    m = model([N("Conv", ["x", "wa"], ["a"], name="ca", pads=[1, 1, 1, 1]),
               N("Conv", ["x", "wb"], ["b"], name="cb"),
               N("Concat", ["a", "b"], ["ab"], axis=1),
               N("MaxPool", ["ab"], ["p1"], kernel_shape=[3, 3], strides=[2, 2]),
               N("MaxPool", ["p1"], ["p2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
               N("Conv", ["p1", "wc"], ["c"], name="cc"),
               N("Conv", ["p2", "wd"], ["d"], name="cd"),
               N("Add", ["c", "d"], ["y"])],
              [x], [tensor_in("y", [1, 4, 4, 4])],
              [const("wa", RNG.standard_normal((8, 8, 3, 3)) * 0.2),
               const("wb", RNG.standard_normal((8, 8, 1, 1)) * 0.3),
               const("wc", RNG.standard_normal((4, 16, 1, 1)) * 0.3),
               const("wd", RNG.standard_normal((4, 16, 1, 1)) * 0.3)], opset=13)
    report = ctx.path("report.json")
    out, _, _ = ctx.optimize(m, level=2, extra=STATIC + ["--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    assert p["half_nodes"] == 4 and not p["kept_fp32"], p
    g = out.graph
    prod = {o: n for n in g.node for o in n.output}
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}

    def pair(v):
        """The (scale, zero point) of the pair whose output v is."""
        dq = prod[v]
        assert dq.op_type == "DequantizeLinear", (v, dq.op_type)
        return float(inits[dq.input[1]]), int(inits[dq.input[2]])
    pools = [n for n in g.node if n.op_type == "MaxPool"]
    cat = next(n for n in g.node if n.op_type == "Concat")
    assert [prod[i].op_type for i in cat.input] == ["DequantizeLinear"] * 2, cat
    for pool in pools:  # each reads a pair, and its output's pair is that pair
        readers = [n for n in g.node if pool.output[0] in n.input]
        assert [r.op_type for r in readers] == ["QuantizeLinear"], (pool.name, readers)
        pq = readers[0]
        dq = next(n for n in g.node if n.op_type == "DequantizeLinear" and pq.output[0] in n.input)
        assert pair(pool.input[0]) == pair(dq.output[0]), pool.name
    # the Concat's pair: the union of its inputs' ranges (each [lo, hi] is
    # [-z s, (255 - z) s]); the pooled values' own range is narrower (a max
    # pool raises the minimum), so their calibrated pair would differ
    s_cat, z_cat = pair(pools[0].input[0])
    lo = min(-z * s for s, z in map(pair, cat.input))
    hi = max((255 - z) * s for s, z in map(pair, cat.input))
    assert np.isclose(s_cat, (hi - lo) / 255, rtol=1e-5) and z_cat == round(-lo / s_cat), (
        s_cat, z_cat, [pair(i) for i in cat.input])
    assert pair(pools[1].input[0]) == (s_cat, z_cat)
    ort_graph = ort_ops(ctx, out)
    assert "QLinearConcat" in ort_graph and ort_graph.count("QLinearConv") == 4, ort_graph
    path = ctx.path("pools.onnx")
    onnx.save(out, path)
    err = ctx.tacoc_run("run", path, "--random-inputs").stderr
    assert "2 QDQ MaxPools run on 8-bit values" in err and "1 Concats run as int8" in err, err
    close(ctx, m, out, {"x": uniform(1, 8, 9, 9)})


def test_without_calibration_nothing_changes(ctx):
    """The pass alone (--passes) has no ranges: it leaves every node and says why."""
    m = conv_model()
    out, _, err = ctx.optimize(m, "quantize-static", extra=["--explain"])
    assert ops(out) == ops(m), ops(out)
    assert "no calibrated range for its input" in err, err


def test_usage_errors(ctx):
    src, dst = ctx.path("in.onnx"), ctx.path("out.onnx")
    import onnx
    onnx.save(conv_model(), src)
    for extra, want in ((["--precision", "int8", "--calib-method", "entropy"], "--int8-mode static"),
                        (STATIC + ["--calib-random", "0"], "leaves none"),
                        (STATIC + ["--calib-method", "kl"], "minmax, percentile or entropy"),
                        (["--precision", "fp16", "--int8-mode", "static"], "needs --precision int8"),
                        (["--precision", "int8", "--qdq-outputs"], "--int8-mode static"),
                        (["--precision", "fp16", "--qdq-inputs-only"], "--int8-mode static"),
                        (["--precision", "auto", "--int8-mode", "static", "--qdq-outputs"],
                         "--int8-mode static"),
                        (STATIC + ["--qdq-outputs", "--qdq-inputs-only"], "not both")):
        proc = ctx.tacoc_run("optimize", src, "-o", dst, *extra, check=False)
        assert proc.returncode == 2 and want in proc.stderr, (extra, proc.stderr)
        assert not os.path.exists(dst)
