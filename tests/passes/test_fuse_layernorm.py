"""fuse-layernorm: decomposed LayerNorm forms to LayerNormalization."""

import numpy as np
from onnx import TensorProto, helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(2)
H = 16
X = tensor_in("x", [2, 5, H])
Y = tensor_in("y", [2, 5, H])


def decomposed(square="pow", norm="div", affine=True, axes=(-1,), eps=1e-5, extra_reader=False,
               opset=14, reduce_axes_input=False):
    def rmean(src, dst):
        if reduce_axes_input:
            return helper.make_node("ReduceMean", [src, "axes"], [dst])
        return helper.make_node("ReduceMean", [src], [dst], axes=list(axes))
    nodes = [rmean("x", "mean"), helper.make_node("Sub", ["x", "mean"], ["d"])]
    nodes.append(helper.make_node("Pow", ["d", "two"], ["sq"]) if square == "pow"
                 else helper.make_node("Mul", ["d", "d"], ["sq"]))
    nodes += [rmean("sq", "var"),
              helper.make_node("Add", ["var", "eps"], ["ve"]),
              helper.make_node("Sqrt", ["ve"], ["s"])]
    last = "n" if affine else "y"
    if norm == "div":
        nodes.append(helper.make_node("Div", ["d", "s"], [last]))
    else:
        nodes += [helper.make_node("Reciprocal", ["s"], ["r"]),
                  helper.make_node("Mul", ["r", "d"], [last])]
    if affine:
        nodes += [helper.make_node("Mul", ["gamma", "n"], ["g"]),
                  helper.make_node("Add", ["g", "beta"], ["y"])]
    outputs = [Y]
    if extra_reader:
        nodes.append(helper.make_node("Neg", ["d"], ["dn"]))
        outputs.append(tensor_in("dn", [2, 5, H]))
    inits = [const("two", 2.0), const("eps", eps), const("gamma", RNG.standard_normal(H)),
             const("beta", RNG.standard_normal(H))]
    if reduce_axes_input:
        inits.append(const("axes", list(axes), np.int64))
    return model(nodes, [X], outputs, inits, opset=opset)


def feeds():
    return {"x": rand(RNG, 2, 5, H) * 3 + 1}


def fused(ctx, m):
    out, _, err = ctx.optimize(m, "fuse-layernorm,eliminate-dead", extra=["--explain"])
    return out, err


def test_torchscript_form(ctx):
    m = decomposed()
    out, _ = fused(ctx, m)
    assert ops(out) == ["LayerNormalization"], ops(out)
    n = out.graph.node[0]
    assert list(n.input) == ["x", "gamma", "beta"] and n.output[0] == "y"
    attrs = {a.name: a for a in n.attribute}
    assert attrs["axis"].i == -1 and abs(attrs["epsilon"].f - 1e-5) < 1e-12
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [17]
    same_outputs(ctx, m, out, feeds())


def test_mul_square_and_reciprocal(ctx):
    m = decomposed(square="mul", norm="reciprocal", eps=1e-12)
    out, _ = fused(ctx, m)
    assert ops(out) == ["LayerNormalization"], ops(out)
    same_outputs(ctx, m, out, feeds())


def test_two_trailing_axes(ctx):
    m = model([], [X], [Y])
    m = decomposed(axes=(-2, -1))
    m.graph.initializer[2].CopyFrom(const("gamma", RNG.standard_normal((5, H))))
    m.graph.initializer[3].CopyFrom(const("beta", RNG.standard_normal((5, H))))
    out, _ = fused(ctx, m)
    assert ops(out) == ["LayerNormalization"], ops(out)
    assert out.graph.node[0].attribute[0].i == -2
    same_outputs(ctx, m, out, feeds())


def test_opset18_axes_input(ctx):
    m = decomposed(opset=18, reduce_axes_input=True)
    out, _ = fused(ctx, m)
    assert ops(out) == ["LayerNormalization"], ops(out)
    same_outputs(ctx, m, out, feeds())


def test_without_affine_is_left(ctx):
    m = decomposed(affine=False)
    out, err = fused(ctx, m)
    assert "LayerNormalization" not in ops(out), ops(out)
    assert "no scale" in err, err


def test_outside_reader_of_intermediate_is_left(ctx):
    m = decomposed(extra_reader=True)
    out, err = fused(ctx, m)
    assert "LayerNormalization" not in ops(out), ops(out)
    assert "other readers" in err, err
    same_outputs(ctx, m, out, feeds())


def test_non_trailing_axes_are_left(ctx):
    m = decomposed(axes=(1,))
    out, err = fused(ctx, m)
    assert "LayerNormalization" not in ops(out), ops(out)


def test_opset_not_raised_over_breaking_op(ctx):
    # Softmax changed meaning at opset 13: a model at 11 with one cannot move to 17.
    m = decomposed(opset=11)
    m.graph.node.append(helper.make_node("Softmax", ["y"], ["p"]))
    m.graph.output.append(tensor_in("p", [2, 5, H]))
    out, err = fused(ctx, m)
    assert "LayerNormalization" not in ops(out), ops(out)
    assert "Softmax" in err, err
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [11]


def test_opset_raise_upgrades_axes_and_split(ctx):
    # ReduceMean-13 (axes attribute) elsewhere in the model and an even Split:
    # raising to 17 keeps them; a later raise past 18 rewrites them exactly.
    m = decomposed(opset=13)
    m.graph.node.extend([
        helper.make_node("ReduceMax", ["y"], ["r"], axes=[1], keepdims=1),
        helper.make_node("Split", ["y"], ["s0", "s1"], axis=2),
        helper.make_node("Unsqueeze", ["s0", "ax"], ["u"])])
    m.graph.initializer.append(const("ax", [0], np.int64))
    m.graph.output.extend([tensor_in("r", [2, 1, H]), tensor_in("u", [1, 2, 5, H // 2]),
                           tensor_in("s1", [2, 5, H // 2])])
    out, _, err = ctx.optimize(m, "fuse-layernorm,fuse-gelu", extra=["--explain"])
    assert "LayerNormalization" in ops(out), (ops(out), err)
    same_outputs(ctx, m, out, feeds())
    # Now force 20 through a GELU elsewhere: ReduceMax moves axes to an input
    # and Split gets num_outputs.
    import math
    m2 = out
    m2.graph.node.extend([helper.make_node("Div", ["r", "sq2"], ["gd"]),
                          helper.make_node("Erf", ["gd"], ["ge"]),
                          helper.make_node("Add", ["ge", "one1"], ["ga"]),
                          helper.make_node("Mul", ["r", "ga"], ["gm"]),
                          helper.make_node("Mul", ["gm", "half1"], ["g"])])
    m2.graph.initializer.extend([const("sq2", math.sqrt(2)), const("one1", 1.0), const("half1", 0.5)])
    m2.graph.output.append(tensor_in("g", [2, 1, H]))
    out2, _, err = ctx.optimize(m2, "fuse-gelu", extra=["--explain"])
    assert "Gelu" in ops(out2), (ops(out2), err)
    assert [o.version for o in out2.opset_import if o.domain in ("", "ai.onnx")] == [20]
    rmax = next(n for n in out2.graph.node if n.op_type == "ReduceMax")
    split = next(n for n in out2.graph.node if n.op_type == "Split")
    assert len(rmax.input) == 2 and not any(a.name == "axes" for a in rmax.attribute)
    assert any(a.name == "num_outputs" and a.i == 2 for a in split.attribute)
    same_outputs(ctx, m2, out2, feeds())


def skip_ln(beta=True, sum_read=False, bias_add=False):
    n = helper.make_node
    other = "bias" if bias_add else "r"
    nodes = [n("Add", ["x", other], ["s"]),
             n("LayerNormalization", ["s", "gamma", "beta"] if beta else ["s", "gamma"], ["y"],
               axis=-1, epsilon=1e-6)]
    outputs = [Y]
    if sum_read:
        nodes.append(n("Relu", ["s"], ["sr"]))
        outputs.append(tensor_in("sr", [2, 5, H]))
    inputs = [X] if bias_add else [X, tensor_in("r", [2, 5, H])]
    inits = [const("gamma", RNG.standard_normal(H)), const("beta", RNG.standard_normal(H)),
             const("bias", RNG.standard_normal(H))]
    return model(nodes, inputs, outputs, inits, opset=17)


def test_skip_layernorm(ctx):
    for beta in (True, False):
        for sum_read in (False, True):
            m = skip_ln(beta, sum_read)
            out, _, err = ctx.optimize(m, "fuse-skip-layernorm,eliminate-dead", extra=["--explain"])
            got = [(x.domain, x.op_type) for x in out.graph.node]
            assert ("ai.tacoc", "SkipLayerNormalization") in got and ("", "Add") not in got, (got, err)
            assert [f.name for f in out.functions] == ["SkipLayerNormalization"]
            f = feeds()
            f["r"] = rand(RNG, 2, 5, H)
            same_outputs(ctx, m, out, f)


def test_bias_add_is_not_a_skip(ctx):
    m = skip_ln(bias_add=True)
    out, _, _ = ctx.optimize(m, "fuse-skip-layernorm")
    assert ops(out) == ["Add", "LayerNormalization"], ops(out)


def rmsnorm(form="div", gamma=True, eps=1e-6):
    n = helper.make_node
    nodes = [n("Pow", ["x", "two"], ["sq"]), n("ReduceMean", ["sq"], ["ms"], axes=[-1]),
             n("Add", ["ms", "eps"], ["a"])]
    last = "nrm" if gamma else "y"
    if form == "div":
        nodes += [n("Sqrt", ["a"], ["r"]), n("Div", ["x", "r"], [last])]
    elif form == "rsqrt":
        nodes += [n("Sqrt", ["a"], ["r"]), n("Reciprocal", ["r"], ["ri"]), n("Mul", ["x", "ri"], [last])]
    else:
        nodes += [n("Pow", ["a", "mhalf"], ["ri"]), n("Mul", ["ri", "x"], [last])]
    if gamma:
        nodes.append(n("Mul", ["nrm", "gamma"], ["y"]))
    return model(nodes, [X], [Y], [const("two", 2.0), const("eps", eps), const("mhalf", -0.5),
                                   const("gamma", RNG.standard_normal(H))], opset=17)


def test_rmsnorm_forms(ctx):
    for form in ("div", "rsqrt", "pow"):
        m = rmsnorm(form)
        out, _, err = ctx.optimize(m, "fuse-rmsnorm,eliminate-dead", extra=["--explain"])
        assert ops(out) == ["RMSNormalization"], (form, ops(out), err)
        assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [23]
        same_outputs(ctx, m, out, feeds())


def test_rmsnorm_without_scale_is_left(ctx):
    m = rmsnorm(gamma=False)
    out, _, err = ctx.optimize(m, "fuse-rmsnorm", extra=["--explain"])
    assert "RMSNormalization" not in ops(out), ops(out)
    assert "no constant scale" in err, err


def test_skip_layernorm_compat_ort(ctx):
    for sum_read in (False, True):
        m = skip_ln(True, sum_read)
        out, _, _ = ctx.optimize(m, "fuse-skip-layernorm,eliminate-dead", extra=["--compat", "ort"])
        sk = [x for x in out.graph.node if x.op_type == "SkipLayerNormalization"]
        assert len(sk) == 1 and sk[0].domain == "com.microsoft" and not out.functions
        assert len(sk[0].output) == (4 if sum_read else 1)
        f = feeds()
        f["r"] = rand(RNG, 2, 5, H)
        same_outputs(ctx, m, out, f)


def embeddings(segments=True, start=0):
    n = helper.make_node
    nodes = [n("Gather", ["wte", "input_ids"], ["we"]), n("Shape", ["input_ids"], ["sh"]),
             n("Gather", ["sh", "one_i"], ["s"], axis=0), n("Range", ["start", "s", "one_i"], ["pos"]),
             n("Unsqueeze", ["pos", "ax0"], ["pos2"]), n("Gather", ["wpe", "pos2"], ["pe"]),
             n("Add", ["we", "pe"], ["e"])]
    inputs = [tensor_in("input_ids", ["batch", "seq"], TensorProto.INT64)]
    last = "e"
    if segments:
        nodes += [n("Gather", ["wtt", "token_type_ids"], ["te"]), n("Add", ["e", "te"], ["e2"])]
        inputs.append(tensor_in("token_type_ids", ["batch", "seq"], TensorProto.INT64))
        last = "e2"
    nodes.append(n("LayerNormalization", [last, "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12))
    inits = [const("wte", RNG.standard_normal((50, H))), const("wpe", RNG.standard_normal((12, H))),
             const("wtt", RNG.standard_normal((2, H))), const("gamma", RNG.standard_normal(H)),
             const("beta", RNG.standard_normal(H)), const("one_i", 1, np.int64),
             const("start", start, np.int64), const("ax0", [0], np.int64)]
    return model(nodes, inputs, [tensor_in("y", ["batch", "seq", H])], inits, opset=17)


def embed_feeds(b, s):
    return {"input_ids": RNG.integers(0, 50, (b, s)).astype(np.int64),
            "token_type_ids": RNG.integers(0, 2, (b, s)).astype(np.int64)}


def test_embed_layernorm_three_and_two_lookups(ctx):
    for segments in (True, False):
        m = embeddings(segments)
        out, _, err = ctx.optimize(m, "fuse-embed-layernorm,eliminate-dead", extra=["--explain"])
        name = "EmbedLayerNormalizationWithSegment" if segments else "EmbedLayerNormalization"
        assert [(x.domain, x.op_type) for x in out.graph.node] == [("ai.tacoc", name)], (ops(out), err)
        assert [f.name for f in out.functions] == [name]
        for b, s in ((2, 7), (1, 12)):
            f = embed_feeds(b, s)
            if not segments:
                del f["token_type_ids"]
            same_outputs(ctx, m, out, f)


def test_embed_layernorm_compat_ort(ctx):
    """--compat ort: ONNX Runtime's com.microsoft.EmbedLayerNormalization, the
    int64 ids cast to the int32 it takes, no function; same outputs in ORT and
    libtacort."""
    for segments in (True, False):
        m = embeddings(segments)
        out, _, err = ctx.optimize(m, "fuse-embed-layernorm,eliminate-dead", extra=["--compat", "ort"])
        casts = 2 if segments else 1
        assert [(x.domain, x.op_type) for x in out.graph.node] == \
            [("", "Cast")] * casts + [("com.microsoft", "EmbedLayerNormalization")], (ops(out), err)
        e = out.graph.node[-1]
        assert not out.functions and len(e.input) == 7 and len(e.output) == 2
        assert (e.input[1] != "") == segments and (e.input[4] != "") == segments, list(e.input)
        for b, s in ((2, 7), (1, 12)):
            f = embed_feeds(b, s)
            if not segments:
                del f["token_type_ids"]
            same_outputs(ctx, m, out, f)


def test_positions_not_from_zero_are_left(ctx):
    m = embeddings(start=1)
    out, _, err = ctx.optimize(m, "fuse-embed-layernorm", extra=["--explain"])
    assert "LayerNormalization" in ops(out), ops(out)
    assert "0..S-1" in err, err


def hf_embeddings(positions=None, types=None, expand=True):
    """HF BERT's embeddings as exported: position ids and (when the model takes
    none) token-type ids sliced from registered buffers; token types expanded
    to [B, S]."""
    n = helper.make_node
    positions = np.arange(16)[None, :] if positions is None else positions
    types = np.zeros((1, 16)) if types is None else types
    nodes = [n("Shape", ["input_ids"], ["b1"], start=0, end=1),
             n("Shape", ["input_ids"], ["s1"], start=1, end=2),
             n("Slice", ["pos_buf", "zero1", "s1", "one1"], ["pos"]),
             n("Slice", ["type_buf", "zero1", "s1", "one1"], ["tt1"])]
    tt = "tt1"
    if expand:
        nodes += [n("Concat", ["b1", "s1"], ["ids_shape"], axis=0),
                  n("Expand", ["tt1", "ids_shape"], ["tt"])]
        tt = "tt"
    nodes += [n("Gather", ["wte", "input_ids"], ["we"]), n("Gather", ["wtt", tt], ["te"]),
              n("Gather", ["wpe", "pos"], ["pe"]), n("Add", ["we", "te"], ["e"]),
              n("Add", ["e", "pe"], ["e2"]),
              n("LayerNormalization", ["e2", "gamma", "beta"], ["y"], axis=-1, epsilon=1e-12)]
    inits = [const("wte", RNG.standard_normal((50, H))), const("wpe", RNG.standard_normal((16, H))),
             const("wtt", RNG.standard_normal((2, H))), const("gamma", RNG.standard_normal(H)),
             const("beta", RNG.standard_normal(H)), const("pos_buf", positions, np.int64),
             const("type_buf", types, np.int64), const("zero1", [0], np.int64),
             const("one1", [1], np.int64)]
    return model(nodes, [tensor_in("input_ids", ["batch", "seq"], TensorProto.INT64)],
                 [tensor_in("y", ["batch", "seq", H])], inits, opset=17)


def test_embed_layernorm_from_position_and_type_buffers(ctx):
    for expand in (True, False):
        m = hf_embeddings(expand=expand)
        out, _, err = ctx.optimize(m, "fuse-embed-layernorm,eliminate-dead", extra=["--explain"])
        assert [(x.domain, x.op_type) for x in out.graph.node] == \
            [("ai.tacoc", "EmbedLayerNormalization")], (ops(out), err)
        for b, s in ((2, 7), (1, 16), (3, 1)):
            same_outputs(ctx, m, out, {"input_ids": RNG.integers(0, 50, (b, s)).astype(np.int64)})


def test_type_buffer_of_ones_expanded_is_a_segment_lookup(ctx):
    m = hf_embeddings(types=np.ones((1, 16)))
    out, _, err = ctx.optimize(m, "fuse-embed-layernorm,eliminate-dead", extra=["--explain"])
    assert "EmbedLayerNormalizationWithSegment" in ops(out), (ops(out), err)
    same_outputs(ctx, m, out, {"input_ids": RNG.integers(0, 50, (2, 5)).astype(np.int64)})


def test_buffers_that_are_not_positions_or_zero_types_are_left(ctx):
    shifted = np.arange(1, 17)[None, :]
    ones = np.ones((1, 16))
    for pos, types, expand, why in ((shifted, None, True, "no position lookup"),
                                    (None, ones, False, "not shaped like the ids")):
        m = hf_embeddings(pos, types, expand)
        out, _, err = ctx.optimize(m, "fuse-embed-layernorm", extra=["--explain"])
        assert "LayerNormalization" in ops(out), ops(out)
        assert why in err, err


def test_layernorm_between_transposes_speech(ctx):
    """wav2vec2's layer-norm feature extractor: Conv1d [B, C, T], then
    Transpose to [B, T, C], LayerNorm over C written out, Transpose back,
    exact GELU. At -O2 the LayerNorm is fused between the Transposes, and
    the GELU becomes one op; no other change to the block."""
    C, T = 12, 20
    N = helper.make_node
    ln = [N("ReduceMean", ["t"], ["mean"], axes=[-1]), N("Sub", ["t", "mean"], ["d"]),
          N("Pow", ["d", "two"], ["sq"]), N("ReduceMean", ["sq"], ["var"], axes=[-1]),
          N("Add", ["var", "eps"], ["ve"]), N("Sqrt", ["ve"], ["s"]), N("Div", ["d", "s"], ["n"]),
          N("Mul", ["n", "gamma"], ["g"]), N("Add", ["g", "beta"], ["l"])]
    gelu = [N("Div", ["u", "sqrt2"], ["q"]), N("Erf", ["q"], ["e"]), N("Add", ["e", "one"], ["e1"]),
            N("Mul", ["u", "e1"], ["ue"]), N("Mul", ["ue", "half"], ["y"])]
    nodes = ([N("Conv", ["x", "w"], ["c"], kernel_shape=[3], strides=[2]),
              N("Transpose", ["c"], ["t"], perm=[0, 2, 1])] + ln
             + [N("Transpose", ["l"], ["u"], perm=[0, 2, 1])] + gelu)
    T_out = (T - 3) // 2 + 1
    m = model(nodes, [tensor_in("x", [2, 4, T])], [tensor_in("y", [2, C, T_out])],
              [const("w", RNG.standard_normal((C, 4, 3)) * 0.3), const("two", 2.0),
               const("eps", 1e-5), const("gamma", RNG.standard_normal(C)),
               const("beta", RNG.standard_normal(C)), const("sqrt2", np.sqrt(2.0)),
               const("one", 1.0), const("half", 0.5)])
    out, _, _ = ctx.optimize(m, level=2)
    assert ops(out) == ["Conv", "Transpose", "LayerNormalization", "Transpose", "Gelu"], ops(out)
    ln_node = out.graph.node[2]
    assert [a.i for a in ln_node.attribute if a.name == "axis"] == [-1], ln_node
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 4, T)})
