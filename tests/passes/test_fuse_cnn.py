"""CNN passes: fuse-hard-activations (HardSigmoid/HardSwish forms) and
fuse-conv-affine (Add/Mul by per-channel constants and zero Pad folded into Conv,
Add/Mul by per-channel constants into an inference BatchNormalization before them)."""

import numpy as np
from onnx import helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(8)
N = helper.make_node
X = tensor_in("x", [2, 4, 5, 5])
Y = tensor_in("y", [2, 4, 5, 5])


def act_model(nodes, inits, opset=14):
    return model(nodes, [X], [Y], inits + [const("c0", 0.0), const("c1", 1.0), const("c3", 3.0),
                                           const("c6", 6.0), const("sixth", 1 / 6),
                                           const("c02", 0.2), const("c05", 0.5)], opset=opset)


def feeds():
    return {"x": rand(RNG, 2, 4, 5, 5) * 4}


def test_hardswish_relu6_form(ctx):
    m = act_model([N("Add", ["x", "c3"], ["a"]), N("Clip", ["a", "c0", "c6"], ["c"]),
                   N("Mul", ["x", "c"], ["m"]), N("Div", ["m", "c6"], ["y"])], [])
    out, _, _ = ctx.optimize(m, "fuse-hard-activations,eliminate-dead")
    assert ops(out) == ["HardSwish"], ops(out)
    same_outputs(ctx, m, out, feeds())


def test_hardswish_raises_opset_over_inference_batchnorm(ctx):
    """HardSwish needs opset 14; a BatchNormalization computing only Y means
    the same at 14 (training_mode defaults to 0), so a paddle2onnx model of
    opset 12 with one is raised and fused (PP-OCRv4's detector), while one
    asking for BatchNormalization's training outputs keeps its opset."""
    bn = [const(n, v) for n, v in (("s", RNG.random(4) + 0.5), ("b", RNG.random(4)),
                                   ("mu", RNG.random(4)), ("var", RNG.random(4) + 0.5))]
    swish = [N("Add", ["n", "c3"], ["a"]), N("Clip", ["a", "c0", "c6"], ["c"]),
             N("Mul", ["n", "c"], ["m"]), N("Div", ["m", "c6"], ["y"])]
    m = act_model([N("BatchNormalization", ["x", "s", "b", "mu", "var"], ["n"])] + swish, bn,
                  opset=12)
    out, _, _ = ctx.optimize(m, "fuse-hard-activations,eliminate-dead")
    assert ops(out) == ["BatchNormalization", "HardSwish"], ops(out)
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [14]
    same_outputs(ctx, m, out, feeds())
    train = act_model([N("BatchNormalization", ["x", "s", "b", "mu", "var"],
                         ["n", "rm", "rv", "sm", "sv"])] + swish, bn, opset=12)
    train.graph.output.extend([tensor_in(n, [4]) for n in ("rm", "rv", "sm", "sv")])
    out, _, _ = ctx.optimize(train, "fuse-hard-activations,eliminate-dead")
    assert "HardSwish" not in ops(out), ops(out)
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [12]


def test_hardswish_through_hardsigmoid(ctx):
    m = act_model([N("Add", ["x", "c3"], ["a"]), N("Clip", ["a", "c0", "c6"], ["c"]),
                   N("Mul", ["c", "sixth"], ["h"]), N("Mul", ["x", "h"], ["y"])], [])
    out, _, _ = ctx.optimize(m, "fuse-hard-activations,eliminate-dead")
    assert ops(out) == ["HardSwish"], ops(out)
    same_outputs(ctx, m, out, feeds())


def test_paddle_hardsigmoid_keeps_alpha_beta(ctx):
    m = act_model([N("Mul", ["x", "c02"], ["a"]), N("Add", ["a", "c05"], ["b"]),
                   N("Clip", ["b", "c0", "c1"], ["y"])], [])
    out, _, _ = ctx.optimize(m, "fuse-hard-activations,eliminate-dead")
    assert ops(out) == ["HardSigmoid"], ops(out)
    attrs = {a.name: a.f for a in out.graph.node[0].attribute}
    assert abs(attrs["alpha"] - 0.2) < 1e-7 and abs(attrs["beta"] - 0.5) < 1e-7, attrs
    same_outputs(ctx, m, out, feeds())


def test_clip_to_five_is_left(ctx):
    m = act_model([N("Add", ["x", "c3"], ["a"]), N("Clip", ["a", "c0", "c05"], ["c"]),
                   N("Mul", ["x", "c"], ["m"]), N("Div", ["m", "c6"], ["y"])], [])
    out, _, _ = ctx.optimize(m, "fuse-hard-activations")
    assert "HardSwish" not in ops(out) and "HardSigmoid" not in ops(out), ops(out)


def test_clip_attributes_before_opset_11(ctx):
    m = act_model([N("Add", ["x", "c3"], ["a"]), N("Clip", ["a"], ["c"], min=0.0, max=6.0),
                   N("Div", ["c", "c6"], ["y"])], [], opset=10)
    out, _, _ = ctx.optimize(m, "fuse-hard-activations,eliminate-dead")
    assert ops(out) == ["HardSigmoid"], ops(out)
    same_outputs(ctx, m, out, feeds())


def conv(extra, inits, pads=(1, 1, 1, 1), bias=True):
    ins = ["x", "w", "b"] if bias else ["x", "w"]
    return model([N("Conv", ins, ["t"], pads=list(pads))] + extra, [X], [Y],
                 [const("w", RNG.standard_normal((4, 4, 3, 3))), const("b", RNG.standard_normal(4))]
                 + inits)


def test_conv_add_and_mul_per_channel(ctx):
    for op, shape in (("Add", (1, 4, 1, 1)), ("Mul", (4, 1, 1)), ("Add", ())):
        m = conv([N(op, ["t", "k"], ["y"])], [const("k", RNG.standard_normal(shape) + 1)])
        out, _, _ = ctx.optimize(m, "fuse-conv-affine,eliminate-dead")
        assert ops(out) == ["Conv"], (op, shape, ops(out))
        same_outputs(ctx, m, out, feeds())


def test_conv_add_along_width_is_left(ctx):
    m = conv([N("Add", ["t", "k"], ["y"])], [const("k", RNG.standard_normal((1, 1, 1, 5)))])
    out, _, _ = ctx.optimize(m, "fuse-conv-affine")
    assert ops(out) == ["Conv", "Add"], ops(out)


def test_zero_pad_joins_conv_pads(ctx):
    m = model([N("Pad", ["x", "p"], ["xp"]), N("Conv", ["xp", "w"], ["y"], pads=[0, 1, 0, 1])],
              [X], [tensor_in("y", [2, 4, 5, 7])],
              [const("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), const("w", RNG.standard_normal((4, 4, 3, 3)))],
              opset=13)
    out, _, _ = ctx.optimize(m, "fuse-conv-affine,eliminate-dead")
    assert ops(out) == ["Conv"], ops(out)
    pads = next(a.ints for a in out.graph.node[0].attribute if a.name == "pads")
    assert list(pads) == [1, 2, 1, 2], pads
    same_outputs(ctx, m, out, feeds())


def test_reflect_pad_is_left(ctx):
    m = model([N("Pad", ["x", "p"], ["xp"], mode="reflect"), N("Conv", ["xp", "w"], ["y"])],
              [X], [tensor_in("y", [2, 4, 5, 5])],
              [const("p", [0, 0, 1, 1, 0, 0, 1, 1], np.int64), const("w", RNG.standard_normal((4, 4, 3, 3)))],
              opset=13)
    out, _, _ = ctx.optimize(m, "fuse-conv-affine")
    assert ops(out) == ["Pad", "Conv"], ops(out)


def bn_affine(extra, inits):
    """Relu -> BatchNormalization -> extra: the normalization's input has no
    declared shape, so the pass infers its rank (caffe2's DenseNet-121 writes
    BatchNormalization -> Mul -> Add -> Relu)."""
    bn = [const(n, v) for n, v in (("s", RNG.random(4) + 0.5), ("b", RNG.standard_normal(4)),
                                   ("mu", RNG.standard_normal(4)), ("var", RNG.random(4) + 0.5))]
    return model([N("Relu", ["x"], ["r"]), N("BatchNormalization", ["r", "s", "b", "mu", "var"], ["n"])]
                 + extra, [X], [Y], bn + inits)


def test_batchnorm_mul_add_per_channel(ctx):
    for ks, kb in (((4, 1, 1), (1, 4, 1, 1)), ((), (4, 1, 1))):
        m = bn_affine([N("Mul", ["n", "k"], ["t"]), N("Add", ["kb", "t"], ["y"])],
                      [const("k", RNG.standard_normal(ks)), const("kb", RNG.standard_normal(kb))])
        out, _, _ = ctx.optimize(m, "fuse-conv-affine,eliminate-dead")
        assert ops(out) == ["Relu", "BatchNormalization"], (ks, kb, ops(out))
        same_outputs(ctx, m, out, feeds())


def test_batchnorm_affine_not_per_channel_is_left(ctx):
    m = bn_affine([N("Mul", ["n", "k"], ["y"])], [const("k", RNG.standard_normal((1, 1, 1, 5)))])
    out, _, _ = ctx.optimize(m, "fuse-conv-affine")
    assert ops(out) == ["Relu", "BatchNormalization", "Mul"], ops(out)
    # read by another node as well: the normalization's output must stay
    m = bn_affine([N("Mul", ["n", "k"], ["t"]), N("Add", ["t", "n"], ["y"])],
                  [const("k", RNG.standard_normal((4, 1, 1)))])
    out, _, _ = ctx.optimize(m, "fuse-conv-affine")
    assert ops(out) == ["Relu", "BatchNormalization", "Mul", "Add"], ops(out)


def groupnorm(groups=2, back=(0, 4, -1), affine=True, in_scale=1.0):
    nodes = [N("Reshape", ["x3", "t1"], ["r"]),
             N("InstanceNormalization", ["r", "s", "b0"], ["n"], epsilon=1e-5),
             N("Reshape", ["n", "t2"], ["y" if not affine else "nb"])]
    if affine:
        nodes += [N("Mul", ["nb", "gamma"], ["gm"]), N("Add", ["gm", "beta"], ["y"])]
    return model(nodes, [tensor_in("x3", ["batch", 4, "time"])], [tensor_in("y", ["batch", 4, "time"])],
                 [const("t1", [0, groups, -1], np.int64), const("t2", list(back), np.int64),
                  const("s", np.full(groups, in_scale)), const("b0", np.zeros(groups)),
                  const("gamma", RNG.standard_normal((4, 1))), const("beta", RNG.standard_normal((4, 1)))])


def test_groupnorm_torch_export(ctx):
    for groups, affine in ((2, True), (4, True), (1, False)):
        m = groupnorm(groups, affine=affine)
        out, _, err = ctx.optimize(m, "fuse-groupnorm,eliminate-dead", extra=["--explain"])
        assert ops(out) == ["GroupNormalization"], (groups, ops(out), err)
        attrs = {a.name: a for a in out.graph.node[0].attribute}
        assert attrs["num_groups"].i == groups
        assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [21]
        same_outputs(ctx, m, out, {"x3": rand(RNG, 2, 4, 9) * 3})


def test_groupnorm_with_affine_instance_norm_is_left(ctx):
    m = groupnorm(in_scale=2.0)
    out, _, _ = ctx.optimize(m, "fuse-groupnorm")
    assert "GroupNormalization" not in ops(out), ops(out)


def test_groupnorm_reshape_not_restoring_is_left(ctx):
    m = groupnorm(back=(0, 2, -1), affine=False)
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 2
    m.graph.output[0].type.tensor_type.shape.dim[2].dim_param = "twice_time"
    out, _, _ = ctx.optimize(m, "fuse-groupnorm")
    assert "GroupNormalization" not in ops(out), ops(out)


def conv_act(act, **attrs):
    extra = {"Clip": ["t", "lo", "hi"]}.get(act, ["t"])
    return model([N("Conv", ["x", "w", "b"], ["t"], pads=[1, 1, 1, 1]), N(act, extra, ["y"], **attrs)],
                 [X], [Y], [const("w", RNG.standard_normal((4, 4, 3, 3))), const("b", RNG.standard_normal(4)),
                            const("lo", 0.0), const("hi", 6.0)], opset=20 if act == "Gelu" else 14)


ACTS = [("Relu", {}), ("LeakyRelu", {"alpha": 0.1}), ("Clip", {}), ("Sigmoid", {}),
        ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}), ("HardSwish", {}), ("Tanh", {}), ("Gelu", {})]


def test_conv_activation_as_function(ctx):
    # ai.tacoc.Conv<Act> with its decomposition as a model-local function:
    # the model passes the full checker, ONNX Runtime (which inlines the
    # function) and libtacort (its kernel) compute what the original did.
    for act, attrs in ACTS:
        m = conv_act(act, **attrs)
        out, _, _ = ctx.optimize(m, "fuse-conv-activation,eliminate-dead")
        assert [(n.domain, n.op_type) for n in out.graph.node] == [("ai.tacoc", "Conv" + act)], act
        assert [f.name for f in out.functions] == ["Conv" + act]
        same_outputs(ctx, m, out, feeds())


def test_conv_activation_compat_ort(ctx):
    for act, attrs in ACTS:
        if act in ("HardSwish", "Gelu"):
            continue  # ONNX Runtime's FusedConv has neither
        m = conv_act(act, **attrs)
        out, _, _ = ctx.optimize(m, "fuse-conv-activation,eliminate-dead", extra=["--compat", "ort"])
        assert [(n.domain, n.op_type) for n in out.graph.node] == [("com.microsoft", "FusedConv")], act
        same_outputs(ctx, m, out, feeds())


def test_conv_activation_without_bias(ctx):
    m = model([N("Conv", ["x", "w"], ["t"], pads=[1, 1, 1, 1]), N("Relu", ["t"], ["y"])], [X], [Y],
              [const("w", RNG.standard_normal((4, 4, 3, 3)))], opset=14)
    out, _, _ = ctx.optimize(m, "fuse-conv-activation,eliminate-dead")
    assert [(n.domain, n.op_type) for n in out.graph.node] == [("ai.tacoc", "ConvRelu")]
    assert len(out.graph.node[0].input) == 3  # explicit zero bias (see the pass)
    same_outputs(ctx, m, out, feeds())


def residual(act="Relu", broadcast=False):
    z = tensor_in("z", [2, 4, 1, 1] if broadcast else [2, 4, 5, 5])
    return model([N("Conv", ["x", "w", "b"], ["t"], pads=[1, 1, 1, 1]), N("Add", ["z", "t"], ["s"]),
                  N(act, ["s"], ["y"])], [X, z], [Y],
                 [const("w", RNG.standard_normal((4, 4, 3, 3))), const("b", RNG.standard_normal(4))],
                 opset=14)


def test_conv_add_activation_residual(ctx):
    for compat in ([], ["--compat", "ort"]):
        m = residual()
        out, _, err = ctx.optimize(m, "fuse-conv-activation,eliminate-dead", extra=compat + ["--explain"])
        want = ("com.microsoft", "FusedConv") if compat else ("ai.tacoc", "ConvAddRelu")
        assert [(n.domain, n.op_type) for n in out.graph.node] == [want], (compat, err)
        assert len(out.graph.node[0].input) == 4 and out.graph.node[0].input[3] == "z"
        same_outputs(ctx, m, out, {"x": rand(RNG, 2, 4, 5, 5), "z": rand(RNG, 2, 4, 5, 5)})


def test_conv_add_with_broadcast_is_not_a_residual(ctx):
    m = residual(broadcast=True)
    out, _, err = ctx.optimize(m, "fuse-conv-activation", extra=["--explain"])
    assert ("", "Add") in [(n.domain, n.op_type) for n in out.graph.node], err
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 4, 5, 5), "z": rand(RNG, 2, 4, 1, 1)})


def gemm_act(act, with_c=True, trans_b=1, **attrs):
    """Gemm (alpha 0.5, beta 2 when C is given) then act: A [3, 6], B [5, 6] or [6, 5]."""
    extra = {"Clip": ["t", "lo", "hi"]}.get(act, ["t"])
    ins = ["a", "w", "c"] if with_c else ["a", "w"]
    gattrs = {"transB": trans_b, "alpha": 0.5} | ({"beta": 2.0} if with_c else {})
    return model([N("Gemm", ins, ["t"], **gattrs), N(act, extra, ["y"], **attrs)],
                 [tensor_in("a", [3, 6])], [tensor_in("y", [3, 5])],
                 [const("w", RNG.standard_normal((5, 6) if trans_b else (6, 5))),
                  const("c", RNG.standard_normal(5)), const("lo", -0.5), const("hi", 1.5)],
                 opset=20 if act == "Gelu" else 14)


def test_gemm_activation_as_function(ctx):
    # ai.tacoc.Gemm<Act>: Gemm's alpha/beta/trans kept, the activation's own
    # parameters as activation_alpha/activation_beta (Clip: min/max); a Gemm
    # without C gets an explicit zero (ONNX Runtime's inliner needs it).
    for act, attrs in ACTS:
        for with_c, trans_b in ((True, 1), (False, 0)):
            m = gemm_act(act, with_c, trans_b, **attrs)
            out, _, err = ctx.optimize(m, "fuse-conv-activation,eliminate-dead")
            assert [(n.domain, n.op_type) for n in out.graph.node] == [("ai.tacoc", "Gemm" + act)], \
                (act, err)
            assert [f.name for f in out.functions] == ["Gemm" + act]
            node = out.graph.node[0]
            got = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            assert got["alpha"] == 0.5 and got["transB"] == trans_b and len(node.input) == 3, got
            if act == "HardSigmoid":
                assert abs(got["activation_alpha"] - 0.3) < 1e-7 and abs(got["activation_beta"] - 0.4) < 1e-7
            same_outputs(ctx, m, out, {"a": rand(RNG, 3, 6) * 3})


def test_gemm_activation_compat_ort(ctx):
    for act, attrs in ACTS:
        m = gemm_act(act, **attrs)
        out, _, err = ctx.optimize(m, "fuse-conv-activation,eliminate-dead",
                                   extra=["--compat", "ort", "--explain"])
        ort_has = act in ("Relu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid")
        got = [(n.domain, n.op_type) for n in out.graph.node]
        if ort_has:
            assert got == [("com.microsoft", "FusedGemm")] and not out.functions, (act, got)
        else:
            assert got == [("", "Gemm"), ("", act)], (act, got)
            assert "FusedGemm has no" in err, err
        same_outputs(ctx, m, out, {"a": rand(RNG, 3, 6) * 3})


def test_gemm_read_elsewhere_is_left(ctx):
    m = gemm_act("Relu")
    m.graph.output.append(tensor_in("t", [3, 5]))
    out, _, _ = ctx.optimize(m, "fuse-conv-activation,eliminate-dead")
    assert ops(out) == ["Gemm", "Relu"], ops(out)


def test_conv_silu_yolo_form(ctx):
    """YOLO's SiLU (Conv, Sigmoid, Mul of the two) through -O2: fuse-gelu makes
    it QuickGelu(alpha 1), fuse-conv-activation folds that into the Conv
    (ai.tacoc.ConvSilu, body Conv, Sigmoid, Mul) and into a residual
    (ConvAddSilu) and a Gemm (GemmSilu); --compat ort leaves the Conv alone
    (ONNX Runtime's FusedConv has no SiLU)."""
    z = tensor_in("z", [2, 4, 5, 5])
    m = model([N("Conv", ["x", "w", "b"], ["t"], pads=[1, 1, 1, 1]), N("Sigmoid", ["t"], ["s"]),
               N("Mul", ["t", "s"], ["u"]),
               N("Conv", ["u", "w", "b"], ["t2"], pads=[1, 1, 1, 1]), N("Add", ["t2", "z"], ["r"]),
               N("Sigmoid", ["r"], ["s2"]), N("Mul", ["s2", "r"], ["v"]),
               N("GlobalAveragePool", ["v"], ["g"]), N("Flatten", ["g"], ["f"]),
               N("Gemm", ["f", "fw", "fb"], ["h"], transB=1), N("Sigmoid", ["h"], ["hs"]),
               N("Mul", ["h", "hs"], ["y"])],
              [X, z], [tensor_in("y", [2, 3])],
              [const("w", RNG.standard_normal((4, 4, 3, 3)) * 0.3), const("b", RNG.standard_normal(4)),
               const("fw", RNG.standard_normal((3, 4))), const("fb", RNG.standard_normal(3))], opset=14)
    f = {"x": rand(RNG, 2, 4, 5, 5), "z": rand(RNG, 2, 4, 5, 5)}
    out, _, err = ctx.optimize(m, level=2, extra=["--explain"])
    got = [(n.domain, n.op_type) for n in out.graph.node]
    for op in ("ConvSilu", "ConvAddSilu", "GemmSilu"):
        assert ("ai.tacoc", op) in got, (op, got, err)
    assert "Sigmoid" not in ops(out) and "Mul" not in ops(out), got
    same_outputs(ctx, m, out, f)
    out, _, err = ctx.optimize(m, level=2, extra=["--compat", "ort", "--explain"])
    assert "FusedConv has no Silu" in err and "FusedGemm has no Silu" in err, err
    same_outputs(ctx, m, out, f)


def test_conv_add_without_activation(ctx):
    """MobileNet's residual: the projection Conv + Add with nothing after it
    becomes ai.tacoc.ConvAdd (body Conv, Add, Identity), or FusedConv without
    an activation attribute under --compat ort."""
    z = tensor_in("z", [2, 4, 5, 5])
    m = model([N("Conv", ["x", "w", "b"], ["t"], pads=[1, 1, 1, 1]), N("Add", ["t", "z"], ["y"])],
              [X, z], [Y], [const("w", RNG.standard_normal((4, 4, 3, 3))), const("b", RNG.standard_normal(4))],
              opset=14)
    for compat in ([], ["--compat", "ort"]):
        out, _, err = ctx.optimize(m, "fuse-conv-activation,eliminate-dead", extra=compat + ["--explain"])
        want = ("com.microsoft", "FusedConv") if compat else ("ai.tacoc", "ConvAdd")
        assert [(n.domain, n.op_type) for n in out.graph.node] == [want], (compat, err)
        node = out.graph.node[0]
        assert list(node.input)[3] == "z" and not any(a.name == "activation" for a in node.attribute)
        assert [f.name for f in out.functions] == ([] if compat else ["ConvAdd"])
        same_outputs(ctx, m, out, {"x": rand(RNG, 2, 4, 5, 5), "z": rand(RNG, 2, 4, 5, 5)})
