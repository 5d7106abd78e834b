"""fuse-gelu: exact (erf) and tanh GELU forms to Gelu."""

import math

import numpy as np
from onnx import helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(3)
X = tensor_in("x", [3, 7])
Y = tensor_in("y", [3, 7])


def tail(a, form):
    """y = 0.5 * x * a in the three orders exporters write."""
    if form == 0:
        return [helper.make_node("Mul", ["x", a], ["m"]), helper.make_node("Mul", ["m", "half"], ["y"])]
    if form == 1:
        return [helper.make_node("Mul", [a, "half"], ["m"]), helper.make_node("Mul", ["x", "m"], ["y"])]
    return [helper.make_node("Mul", ["x", "half"], ["h"]), helper.make_node("Mul", [a, "h"], ["y"])]


def erf_gelu(form=0, div=True, c=math.sqrt(2)):
    first = (helper.make_node("Div", ["x", "c"], ["u"]) if div
             else helper.make_node("Mul", ["x", "c"], ["u"]))
    nodes = [first, helper.make_node("Erf", ["u"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"])] + tail("a", form)
    return model(nodes, [X], [Y], [const("c", c if div else 1 / c), const("one", 1.0),
                                   const("half", 0.5)])


def tanh_gelu(cube="pow", k=math.sqrt(2 / math.pi)):
    nodes = ([helper.make_node("Pow", ["x", "three"], ["x3"])] if cube == "pow" else
             [helper.make_node("Mul", ["x", "x"], ["x2"]), helper.make_node("Mul", ["x2", "x"], ["x3"])])
    nodes += [helper.make_node("Mul", ["x3", "c1"], ["w"]),
              helper.make_node("Add", ["x", "w"], ["v"]),
              helper.make_node("Mul", ["v", "k"], ["u"]),
              helper.make_node("Tanh", ["u"], ["t"]),
              helper.make_node("Add", ["t", "one"], ["a"])] + tail("a", 0)
    return model(nodes, [X], [Y], [const("three", 3.0), const("c1", 0.044715), const("k", k),
                                   const("one", 1.0), const("half", 0.5)])


def check(ctx, m, approximate=None):
    out, _, err = ctx.optimize(m, "fuse-gelu,eliminate-dead", extra=["--explain"])
    assert ops(out) == ["Gelu"], (ops(out), err)
    n = out.graph.node[0]
    assert list(n.input) == ["x"] and list(n.output) == ["y"]
    got = {a.name: a.s.decode() for a in n.attribute}
    assert got.get("approximate") == approximate, got
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [20]
    same_outputs(ctx, m, out, {"x": rand(RNG, 3, 7) * 2})


def test_erf_forms(ctx):
    for form in range(3):
        check(ctx, erf_gelu(form))


def test_erf_with_multiply_by_inverse_sqrt2(ctx):
    check(ctx, erf_gelu(div=False))


def test_tanh_forms(ctx):
    check(ctx, tanh_gelu("pow"), "tanh")
    check(ctx, tanh_gelu("mul"), "tanh")


def test_wrong_constant_is_left(ctx):
    m = erf_gelu(c=1.5)
    out, _, _ = ctx.optimize(m, "fuse-gelu")
    assert "Gelu" not in ops(out), ops(out)
    m = tanh_gelu(k=0.7)
    out, _, _ = ctx.optimize(m, "fuse-gelu")
    assert "Gelu" not in ops(out), ops(out)


def test_intermediate_read_outside_is_left(ctx):
    m = erf_gelu()
    m.graph.output.append(tensor_in("e", [3, 7]))
    out, _, _ = ctx.optimize(m, "fuse-gelu")
    assert "Gelu" not in ops(out), ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 3, 7)})


def test_bias_gelu(ctx):
    for compat in ([], ["--compat", "ort"]):
        m = model([helper.make_node("Add", ["x", "b"], ["t"]), helper.make_node("Gelu", ["t"], ["y"])],
                  [X], [Y], [const("b", RNG.standard_normal(7))], opset=20)
        out, _, _ = ctx.optimize(m, "fuse-gelu,eliminate-dead", extra=compat)
        dom = "com.microsoft" if compat else "ai.tacoc"
        assert [(n.domain, n.op_type) for n in out.graph.node] == [(dom, "BiasGelu")], compat
        assert [f.name for f in out.functions] == ([] if compat else ["BiasGelu"])
        same_outputs(ctx, m, out, {"x": rand(RNG, 3, 7) * 3})


def test_bias_of_the_wrong_length_is_left(ctx):
    m = model([helper.make_node("Add", ["x", "b"], ["t"]), helper.make_node("Gelu", ["t"], ["y"])],
              [X], [Y], [const("b", RNG.standard_normal((3, 1)))], opset=20)
    out, _, _ = ctx.optimize(m, "fuse-gelu")
    assert ops(out) == ["Add", "Gelu"], ops(out)


def test_quick_gelu_and_silu(ctx):
    for alpha in (1.702, None):
        nodes = ([helper.make_node("Mul", ["x", "a"], ["xa"]), helper.make_node("Sigmoid", ["xa"], ["s"])]
                 if alpha else [helper.make_node("Sigmoid", ["x"], ["s"])])
        nodes.append(helper.make_node("Mul", ["s", "x"], ["y"]))
        m = model(nodes, [X], [Y], [const("a", alpha or 1.0)], opset=14)
        for compat in ([], ["--compat", "ort"]):
            out, _, _ = ctx.optimize(m, "fuse-gelu,eliminate-dead", extra=compat)
            dom = "com.microsoft" if compat else "ai.tacoc"
            assert [(n.domain, n.op_type) for n in out.graph.node] == [(dom, "QuickGelu")], (alpha, compat)
            got = out.graph.node[0].attribute[0].f
            assert abs(got - (alpha or 1.0)) < 1e-6, got
            same_outputs(ctx, m, out, {"x": rand(RNG, 3, 7) * 3})


def test_sigmoid_gate_of_another_tensor_is_left(ctx):
    m = model([helper.make_node("Sigmoid", ["z"], ["s"]), helper.make_node("Mul", ["s", "x"], ["y"])],
              [X, tensor_in("z", [3, 7])], [Y], opset=14)
    out, _, _ = ctx.optimize(m, "fuse-gelu")
    assert ops(out) == ["Sigmoid", "Mul"], ops(out)
