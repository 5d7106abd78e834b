"""fuse-conv-bn: inference BatchNormalization folded into the Conv before it."""

import numpy as np
from onnx import helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(4)
X = tensor_in("x", [2, 3, 9, 9])
Y = tensor_in("y", [2, 8, 9, 9])


def conv_bn(bias=True, group=1, extra_reader=False, training=False):
    conv_in = ["x", "w", "b"] if bias else ["x", "w"]
    nodes = [helper.make_node("Conv", conv_in, ["t"], pads=[1, 1, 1, 1], group=group),
             helper.make_node("BatchNormalization", ["t", "s", "bb", "m", "v"], ["y"],
                              epsilon=1e-3, **({"training_mode": 1} if training else {}))]
    outputs = [Y]
    if extra_reader:
        outputs.append(tensor_in("t", [2, 8, 9, 9]))
    inits = [const("w", RNG.standard_normal((8, 3 // group, 3, 3))),
             const("s", RNG.random(8) + 0.5), const("bb", RNG.standard_normal(8)),
             const("m", RNG.standard_normal(8)), const("v", RNG.random(8) + 0.1)]
    if bias:
        inits.append(const("b", RNG.standard_normal(8)))
    return model(nodes, [X], outputs, inits, opset=15 if training else 14)


def feeds():
    return {"x": rand(RNG, 2, 3, 9, 9)}


def test_conv_bn_with_and_without_bias(ctx):
    for bias in (True, False):
        m = conv_bn(bias)
        out, _, _ = ctx.optimize(m, "fuse-conv-bn,eliminate-dead")
        assert ops(out) == ["Conv"], ops(out)
        n = out.graph.node[0]
        assert len(n.input) == 3 and n.output[0] == "y"
        assert {a.name for a in n.attribute} == {"pads", "group"}
        assert {i.name for i in out.graph.initializer}.isdisjoint({"s", "bb", "m", "v"})
        same_outputs(ctx, m, out, feeds())


def test_grouped_conv(ctx):
    m = conv_bn(group=3)  # 3 groups: 6 output channels, one input channel each
    m = model(m.graph.node, [X], [tensor_in("y", [2, 6, 9, 9])],
              [const("w", RNG.standard_normal((6, 1, 3, 3))), const("b", RNG.standard_normal(6)),
               const("s", RNG.random(6) + 0.5), const("bb", RNG.standard_normal(6)),
               const("m", RNG.standard_normal(6)), const("v", RNG.random(6) + 0.1)])
    out, _, _ = ctx.optimize(m, "fuse-conv-bn")
    assert ops(out) == ["Conv"], ops(out)
    same_outputs(ctx, m, out, feeds())


def test_conv_output_read_elsewhere_is_left(ctx):
    m = conv_bn(extra_reader=True)
    out, _, err = ctx.optimize(m, "fuse-conv-bn", extra=["--explain"])
    assert ops(out) == ["Conv", "BatchNormalization"], ops(out)
    assert "other readers" in err, err


def test_training_mode_is_left(ctx):
    m = conv_bn(training=True)
    bn = m.graph.node[1]
    bn.output.extend(["rm", "rv"])
    m.graph.output.extend([tensor_in("rm", [8]), tensor_in("rv", [8])])
    out, _, _ = ctx.optimize(m, "fuse-conv-bn")
    assert ops(out) == ["Conv", "BatchNormalization"], ops(out)
