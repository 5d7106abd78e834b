"""convert-half: float32 weights and activations to float16 / bfloat16, with
the ops of the block list (Softmax, reductions, Exp, ...) kept in float32,
Casts only where a half region ends (one per value and type), attention
masks beyond the half range clamped, other out-of-range constants keeping
their readers in float32, and `tacoc optimize --precision` validating the
result and moving nodes back to float32 when the budget fails.

Outputs are compared with ONNX Runtime's float32 outputs of the original
model: in ONNX Runtime (float16 only: its CPU provider has no bfloat16
kernels) and in libtacort, finite, within half-precision tolerances."""

import json

import numpy as np
import onnx
from onnx import TensorProto, helper

from passlib import const, model, ops, rand, run_ort, tensor_in

RNG = np.random.default_rng(11)
N = helper.make_node
F16, BF16, F32 = TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.FLOAT
NP = {F16: np.float16, F32: np.float32}


def elem(vi):
    return vi.type.tensor_type.elem_type


def init_types(m):
    return {t.name: t.data_type for t in m.graph.initializer}


def casts(m):
    return [n for n in m.graph.node if n.op_type == "Cast"]


def cast_pairs(m):
    """Casts that read another Cast's output, when that one casts a float
    (an integer goes to bfloat16 through float32 when it may be above 2^16)."""
    types = value_types(m)
    first = {n.output[0]: n for n in casts(m)}
    floats = (F16, BF16, F32, TensorProto.DOUBLE)
    return [n.output[0] for n in casts(m)
            if n.input[0] in first and types.get(first[n.input[0]].input[0]) in floats]


def value_types(m):
    """dtype of every value, from ONNX's shape inference."""
    inf = onnx.shape_inference.infer_shapes(m, strict_mode=True)
    vis = list(inf.graph.value_info) + list(inf.graph.input) + list(inf.graph.output)
    types = {vi.name: elem(vi) for vi in vis}
    types.update(init_types(m))
    return types


def node_type(m, types, op):
    """The dtype each node of op computes in (its first output)."""
    return [types[n.output[0]] for n in m.graph.node if n.op_type == op]


def half_feeds(m, feeds):
    out = {}
    for i in m.graph.input:
        if i.name not in feeds:
            continue  # an initializer's default
        v = feeds[i.name]
        out[i.name] = v.astype(NP[elem(i)]) if elem(i) in NP else v
    return out


def close_half(ctx, before, after, feeds, tol=3e-2, bf16=False):
    """after (converted) computes what before did, within a half tolerance
    (relative to the output's scale), in ORT (float16) and libtacort; no
    NaN/Inf anywhere."""
    want = run_ort(before, feeds)
    runs = [("libtacort", ctx.run_tacort(after, half_feeds(after, feeds)))]
    if not bf16:
        runs.append(("onnxruntime", run_ort(after, half_feeds(after, feeds))))
    for name, got in runs:
        for i, (g, w) in enumerate(zip(got, want)):
            g = np.asarray(g).astype(np.float64)
            assert np.all(np.isfinite(g)), f"{name} output {i}: non-finite values"
            scale = max(float(np.abs(w).max()), 1e-6)
            err = float(np.abs(g - w).max()) / scale
            assert err <= tol, f"{name} output {i}: max error {err:.3g} of the output's scale"


def block(opset=20):
    """x -> MatMul -> Add -> Gelu -> LayerNormalization -> MatMul -> Softmax -> y."""
    nodes = [N("MatMul", ["x", "w1"], ["h1"]), N("Add", ["h1", "b1"], ["h2"]),
             N("Gelu", ["h2"], ["h3"]), N("LayerNormalization", ["h3", "g", "b"], ["h4"], axis=-1),
             N("MatMul", ["h4", "w2"], ["h5"]), N("Softmax", ["h5"], ["y"], axis=-1)]
    return model(nodes, [tensor_in("x", [2, 5, 16])], [tensor_in("y", [2, 5, 8])],
                 [const("w1", RNG.standard_normal((16, 32)) * 0.3), const("b1", RNG.standard_normal(32)),
                  const("g", RNG.standard_normal(32)), const("b", RNG.standard_normal(32)),
                  const("w2", RNG.standard_normal((32, 8)) * 0.3)], opset=opset)


def block_feeds():
    return {"x": rand(RNG, 2, 5, 16)}


def test_block_float16(ctx):
    # Graph inputs and outputs become float16; Softmax stays float32 between
    # two Casts; every weight is float16; no Cast reads a Cast.
    m = block()
    out, _, err = ctx.optimize(m, "convert-half", extra=["--explain"])
    types = value_types(out)
    assert elem(out.graph.input[0]) == F16 and elem(out.graph.output[0]) == F16
    for op in ("MatMul", "Add", "Gelu", "LayerNormalization"):
        assert set(node_type(out, types, op)) == {F16}, (op, node_type(out, types, op))
    assert node_type(out, types, "Softmax") == [F32]
    assert set(init_types(out).values()) == {F16}, init_types(out)
    assert ops(out) == ["MatMul", "Add", "Gelu", "LayerNormalization", "MatMul", "Cast", "Softmax",
                        "Cast"], ops(out)
    assert not cast_pairs(out)
    assert "Softmax" in err and "block list" in err, err
    close_half(ctx, m, out, block_feeds())


def test_block_keep_io_types(ctx):
    # --keep-io-types: float32 at the boundary, one Cast in, and the Softmax
    # (float32 anyway) writes the output itself.
    m = block()
    out, _, _ = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types"])
    assert elem(out.graph.input[0]) == F32 and elem(out.graph.output[0]) == F32
    assert ops(out) == ["Cast", "MatMul", "Add", "Gelu", "LayerNormalization", "MatMul", "Cast",
                        "Softmax"], ops(out)
    assert [a.i for c in casts(out) for a in c.attribute] == [F16, F32]
    close_half(ctx, m, out, block_feeds())


def test_block_keep_io_output_cast(ctx):
    # A half node writing a graph output: the output keeps its name and gets
    # float32 through a Cast; the node writes a new value.
    m = block()
    m.graph.node.pop()  # no Softmax: the MatMul writes y
    m.graph.node[-1].output[0] = "y"
    out, _, _ = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types"])
    assert ops(out) == ["Cast", "MatMul", "Add", "Gelu", "LayerNormalization", "MatMul", "Cast"]
    assert out.graph.node[-1].output[0] == "y" and elem(out.graph.output[0]) == F32
    close_half(ctx, m, out, block_feeds())


def test_block_bfloat16(ctx):
    # bfloat16 needs opset 13 for MatMul/Add (the model has 20); ONNX Runtime
    # has no bfloat16 CPU kernels, so only libtacort runs it.
    m = block()
    out, _, _ = ctx.optimize(m, "convert-half", extra=["--precision", "bf16", "--keep-io-types"])
    types = value_types(out)
    for op in ("MatMul", "Add", "Gelu", "LayerNormalization"):
        assert set(node_type(out, types, op)) == {BF16}, (op, node_type(out, types, op))
    assert set(init_types(out).values()) == {BF16}
    assert not cast_pairs(out)
    close_half(ctx, m, out, block_feeds(), tol=8e-2, bf16=True)


def test_bfloat16_raises_opset_for_conv(ctx):
    # Conv has bfloat16 from opset 22: the opset is raised when that is exact.
    m = model([N("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), N("Relu", ["c"], ["y"])],
              [tensor_in("x", [1, 3, 6, 6])], [tensor_in("y", [1, 4, 6, 6])],
              [const("w", RNG.standard_normal((4, 3, 3, 3)) * 0.3)], opset=13)
    out, _, _ = ctx.optimize(m, "convert-half", extra=["--precision", "bf16", "--keep-io-types"])
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [22]
    assert init_types(out)["w"] == BF16
    close_half(ctx, m, out, {"x": rand(RNG, 1, 3, 6, 6)}, tol=8e-2, bf16=True)


def attention(mask_value, opset=17):
    """Scores + additive mask from an int64 mask (Cast/Sub/Mul), Softmax, MatMul."""
    nodes = [N("MatMul", ["q", "kt"], ["s0"]), N("Mul", ["s0", "scale"], ["s1"]),
             N("Unsqueeze", ["mask", "ax1"], ["m1"]), N("Cast", ["m1"], ["mf"], to=F32),
             N("Sub", ["one", "mf"], ["inv"]), N("Mul", ["inv", "neg"], ["bias"]),
             N("Add", ["s1", "bias"], ["s2"]), N("Softmax", ["s2"], ["p"], axis=-1),
             N("MatMul", ["p", "v"], ["y"])]
    return model(nodes, [tensor_in("q", [2, 4, 8]), tensor_in("mask", [2, 4], TensorProto.INT64)],
                 [tensor_in("y", [2, 4, 8])],
                 [const("kt", RNG.standard_normal((8, 4))), const("v", RNG.standard_normal((4, 8))),
                  const("scale", 0.35), const("one", 1.0), const("neg", mask_value),
                  const("ax1", [1], np.int64)], opset=opset)


def attention_feeds():
    mask = np.ones((2, 4), np.int64)
    mask[1, 2:] = 0
    return {"q": rand(RNG, 2, 4, 8), "mask": mask}


def test_mask_beyond_range_is_clamped(ctx):
    # -3.4e38 overflows float16 (and bfloat16); it only reaches a Softmax
    # through Mul/Add, so it is clamped (to -65504/4) instead of becoming -inf.
    for prec, tol in (("fp16", 3e-2), ("bf16", 8e-2)):
        m = attention(-3.4e38)
        out, stdout, _ = ctx.optimize(m, "convert-half", extra=["--precision", prec,
                                                                "--keep-io-types"])
        assert "mask constants clamped x1" in stdout, stdout
        neg = next(t for t in out.graph.initializer if t.name == "neg")
        value = float(onnx.numpy_helper.to_array(neg).astype(np.float32)) if prec == "fp16" else None
        assert neg.data_type == (F16 if prec == "fp16" else BF16)
        if value is not None:
            assert value == -16376.0, value
        assert not cast_pairs(out)
        if prec == "fp16":  # the float16 Cast reads the int64 mask directly
            mask_casts = [c for c in casts(out) if c.input[0] == "m1"]
            assert [c.attribute[0].i for c in mask_casts] == [F16], ops(out)
        close_half(ctx, m, out, attention_feeds(), tol=tol, bf16=prec == "bf16")


def test_mask_in_range_is_kept(ctx):
    m = attention(-1e4)
    out, stdout, _ = ctx.optimize(m, "convert-half")
    assert "clamped" not in stdout
    neg = next(t for t in out.graph.initializer if t.name == "neg")
    assert float(onnx.numpy_helper.to_array(neg)) == -10000.0
    close_half(ctx, m, out, attention_feeds())


def test_out_of_range_weight_keeps_reader_float32(ctx):
    # A 1e6 weight that is not a mask: its MatMul stays float32 (Casts around
    # it), the weight keeps float32, the MatMul before it is float16.
    w = RNG.standard_normal((16, 16)).astype(np.float32) * 0.1
    w[2, 3] = 1e6
    m = model([N("MatMul", ["x", "w1"], ["h"]), N("MatMul", ["h", "wbig"], ["y"])],
              [tensor_in("x", [4, 16])], [tensor_in("y", [4, 16])],
              [const("w1", RNG.standard_normal((16, 16)) * 0.1), const("wbig", w)])
    out, _, err = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types",
                                                         "--explain"])
    types = init_types(out)
    assert types["w1"] == F16 and types["wbig"] == F32, types
    assert ops(out) == ["Cast", "MatMul", "Cast", "MatMul"], ops(out)
    assert "out-of-range constant 'wbig'" in err, err
    close_half(ctx, m, out, {"x": rand(RNG, 4, 16)})


def test_blocked_and_unknown_ops_stay_float32(ctx):
    # ReduceMean, Exp and an op of another domain stay float32; integer
    # tensors (the Shape/Gather chain) are untouched.
    nodes = [N("Relu", ["x"], ["r"]), N("Exp", ["r"], ["e"]),
             N("ReduceMean", ["e", "ax"], ["m"], keepdims=1), N("Mul", ["m", "r"], ["p"]),
             N("Shape", ["p"], ["sh"]), N("Reshape", ["p", "sh"], ["y"])]
    m = model(nodes, [tensor_in("x", [3, 8])], [tensor_in("y", [3, 8])],
              [const("ax", [1], np.int64)], opset=18)
    out, _, err = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types",
                                                         "--explain"])
    types = value_types(out)
    assert node_type(out, types, "Exp") == [F32] and node_type(out, types, "ReduceMean") == [F32]
    assert node_type(out, types, "Relu") == [F16] and node_type(out, types, "Mul") == [F16]
    assert init_types(out)["ax"] == TensorProto.INT64
    assert "block list" in err and "Exp" in err and "ReduceMean" in err, err
    assert not cast_pairs(out)
    close_half(ctx, m, out, {"x": rand(RNG, 3, 8)})


def test_one_cast_per_value_and_type(ctx):
    # A float32 value (Softmax output) read by three half MatMuls: one Cast.
    nodes = [N("Softmax", ["x"], ["s"], axis=-1)] + [
        N("MatMul", ["s", f"w{i}"], [f"y{i}"]) for i in range(3)]
    m = model(nodes, [tensor_in("x", [4, 8])], [tensor_in(f"y{i}", [4, 8]) for i in range(3)],
              [const(f"w{i}", RNG.standard_normal((8, 8))) for i in range(3)])
    out, _, _ = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types"])
    assert ops(out).count("Cast") == 1 + 3, ops(out)  # after Softmax, one per output
    after_softmax = [c for c in casts(out) if c.input[0] == "s"]
    assert len(after_softmax) == 1
    close_half(ctx, m, out, {"x": rand(RNG, 4, 8)})


def test_cast_pairs_removed(ctx):
    # The model's own Cast pair float32 -> float16 -> float32 goes away, and
    # so does a float16 -> float32 -> float16 pair the conversion would make.
    nodes = [N("Cast", ["x"], ["xh"], to=F16), N("Cast", ["xh"], ["xf"], to=F32),
             N("Relu", ["xf"], ["r"]), N("MatMul", ["r", "w"], ["y"])]
    m = model(nodes, [tensor_in("x", [4, 8])], [tensor_in("y", [4, 8])],
              [const("w", RNG.standard_normal((8, 8)))])
    out, stdout, _ = ctx.optimize(m, "convert-half", extra=["--precision", "fp16",
                                                            "--keep-io-types"])
    assert not cast_pairs(out), [(n.op_type, list(n.input)) for n in out.graph.node]
    assert ops(out) == ["Cast", "Relu", "MatMul", "Cast"], ops(out)
    close_half(ctx, m, out, {"x": rand(RNG, 4, 8)})


def test_attention_softmax_in_float32(ctx):
    # Attention (opset 23) runs in half with softmax_precision = 1.
    m = model([N("Attention", ["q", "k", "v"], ["y"], q_num_heads=2, kv_num_heads=2)],
              [tensor_in("q", [1, 3, 8]), tensor_in("k", [1, 3, 8]), tensor_in("v", [1, 3, 8])],
              [tensor_in("y", [1, 3, 8])], opset=23, ir=10)
    out, _, _ = ctx.optimize(m, "convert-half")
    att = next(n for n in out.graph.node if n.op_type == "Attention")
    assert {a.name: a.i for a in att.attribute}.get("softmax_precision") == F32
    close_half(ctx, m, out, {k: rand(RNG, 1, 3, 8) for k in "qkv"})


def test_precision_validates_and_falls_back(ctx):
    # `--precision fp16` validates in libtacort; a MatMul whose sums overflow
    # float16 (weights of 3000, in range) goes back to float32 and the report
    # names it with its error.
    x = tensor_in("x", [4, 64])
    w = np.full((64, 64), 3000, np.float32) + RNG.standard_normal((64, 64)).astype(np.float32)
    m = model([N("Sigmoid", ["x"], ["s"]), N("MatMul", ["s", "w"], ["h"], name="hot"),
               N("LayerNormalization", ["h", "g", "b"], ["ln"], axis=-1),
               N("MatMul", ["ln", "w2"], ["y"])], [x], [tensor_in("y", [4, 8])],
              [const("w", w), const("g", np.ones(64)), const("b", np.zeros(64)),
               const("w2", RNG.standard_normal((64, 8)))], opset=17)
    report = ctx.path("report.json")
    out, stdout, _ = ctx.optimize(m, level=0, extra=["--precision", "fp16", "--keep-io-types",
                                                     "--calib-random", "2", "--report", report])
    with open(report) as f:
        p = json.load(f)["precision"]
    kept = {k["node"]: k for k in p["kept_fp32"]}
    assert "h" in kept and kept["h"]["reason"] == "budget fallback", p["kept_fp32"]
    assert kept["h"]["error"]["non_finite"] > 0
    assert p["validation"]["passed"] and p["validation"]["synthetic"] and p["validation"]["sets"] == 2
    assert "ESTIMATED ON SYNTHETIC DATA" in stdout and "budget fallback" in stdout, stdout
    types = value_types(out)
    assert node_type(out, types, "MatMul") == [F32, F16], node_type(out, types, "MatMul")
    close_half(ctx, m, out, {"x": rand(RNG, 4, 64)})


def test_precision_budget_unreachable_writes_nothing(ctx):
    # With a budget float16 inputs cannot meet (cos 1 exactly), every node
    # goes back to float32, and the conversion fails with the numbers.
    m = block()
    src, dst = ctx.path("in.onnx"), ctx.path("out.onnx")
    onnx.save(m, src)
    proc = ctx.tacoc_run("optimize", src, "-o", dst, "-O0", "--precision", "fp16", "--budget",
                         "cos=1,max-abs=0", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "misses the accuracy budget" in proc.stderr and "cos" in proc.stderr, proc.stderr
    import os
    assert not os.path.exists(dst)


def test_subgraphs_read_float32(ctx):
    # An If whose branches read a half value of the main graph from the outer
    # scope: the If stays float32 (control flow) and its branches read a
    # float32 Cast of the value; the branches themselves are untouched.
    then_g = helper.make_graph([N("Mul", ["r", "two"], ["t"])], "then", [],
                               [tensor_in("t", [4, 8])], [const("two", 2.0)])
    else_g = helper.make_graph([N("Neg", ["r"], ["e"])], "else", [], [tensor_in("e", [4, 8])])
    m = model([N("Relu", ["x"], ["r"]), N("If", ["c"], ["i"], then_branch=then_g, else_branch=else_g),
               N("Add", ["i", "r"], ["y"])],
              [tensor_in("x", [4, 8]), tensor_in("c", [], TensorProto.BOOL)],
              [tensor_in("y", [4, 8])])
    m.graph.value_info.append(tensor_in("i", [4, 8]))
    out, _, err = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types",
                                                         "--explain"])
    assert "control flow" in err, err
    iff = next(n for n in out.graph.node if n.op_type == "If")
    branch = next(a.g for a in iff.attribute if a.name == "then_branch")
    read = branch.node[0].input[0]
    cast = next(n for n in out.graph.node if n.output[0] == read)
    assert cast.op_type == "Cast" and cast.attribute[0].i == F32 and cast.input[0] == "r"
    assert init_types(out).get("two") is None and branch.initializer[0].data_type == F32
    for c in (True, False):
        close_half(ctx, m, out, {"x": rand(RNG, 4, 8), "c": np.array(c)})


def test_graph_input_initializer_stays_an_input(ctx):
    # From IR 4 an initializer that is also a graph input is a default the
    # caller may override, so it stays an input (float32 with
    # --keep-io-types, Cast for its readers). In IR 3 every initializer was
    # listed as an input and is a constant (ONNX Runtime reads it so): it is
    # converted like any weight, and the IR 4 output lists it only as an
    # initializer.
    for ir, want_ops, want_type, inputs in ((4, ["Cast", "Cast", "MatMul", "Cast"], F32,
                                             ["x", "w"]),
                                            (3, ["Cast", "MatMul", "Cast"], F16, ["x"])):
        m = model([N("MatMul", ["x", "w"], ["y"])],
                  [tensor_in("x", [2, 4]), tensor_in("w", [4, 4])], [tensor_in("y", [2, 4])],
                  [const("w", RNG.standard_normal((4, 4)))], opset=11, ir=ir)
        out, _, _ = ctx.optimize(m, "convert-half", extra=["--precision", "fp16", "--keep-io-types"])
        assert init_types(out)["w"] == want_type and ops(out) == want_ops, (ir, ops(out))
        assert [i.name for i in out.graph.input] == inputs, (ir, out.graph.input)
        close_half(ctx, m, out, {"x": rand(RNG, 2, 4)})
