"""fuse-gemm: 2-D MatMul + Add, and Gemm + constant Add or Mul, to one Gemm."""

import numpy as np
from onnx import helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(12)
K, N = 6, 5


def matmul_add(a_shape=("batch", K), bias=(N,), bias_first=False, extra_reader=False,
               bias_input=False):
    n = helper.make_node
    add_in = ["b", "p"] if bias_first else ["p", "b"]
    nodes = [n("MatMul", ["a", "w"], ["p"]), n("Add", add_in, ["y"])]
    inits = [const("w", RNG.standard_normal((K, N)))]
    inputs = [tensor_in("a", list(a_shape))]
    if bias_input:
        inputs.append(tensor_in("b", list(bias)))
    else:
        inits.append(const("b", RNG.standard_normal(bias)))
    rank = [None] * len(a_shape)
    outputs = [tensor_in("y", rank)]
    if extra_reader:
        outputs.append(tensor_in("p", rank))
    return model(nodes, inputs, outputs, inits, opset=13)


def fused(ctx, m):
    out, _, err = ctx.optimize(m, "fuse-gemm,eliminate-dead", extra=["--explain"])
    return out, err


def test_matmul_bias_becomes_gemm(ctx):
    for bias, first in (((N,), False), ((1, N), True), ((3, 1), False), ((3, N), False)):
        m = matmul_add(a_shape=(3, K), bias=bias, bias_first=first)
        out, err = fused(ctx, m)
        assert ops(out) == ["Gemm"], (bias, ops(out), err)
        g = out.graph.node[0]
        assert list(g.input) == ["a", "w", "b"] and g.output[0] == "y", g
        same_outputs(ctx, m, out, {"a": rand(RNG, 3, K)})


def test_symbolic_batch_and_computed_bias(ctx):
    m = matmul_add(bias=(N,), bias_input=True)
    out, err = fused(ctx, m)
    assert ops(out) == ["Gemm"], (ops(out), err)
    same_outputs(ctx, m, out, {"a": rand(RNG, 4, K), "b": rand(RNG, N)})


def test_batched_or_unprovable_cases_are_left(ctx):
    # rank-3 activation: no standard fused form
    m = matmul_add(a_shape=("batch", "seq", K))
    out, err = fused(ctx, m)
    assert ops(out) == ["MatMul", "Add"], ops(out)
    # a [2, N] bias against a symbolic batch may broadcast the product itself
    m = matmul_add(bias=(2, N))
    out, err = fused(ctx, m)
    assert ops(out) == ["MatMul", "Add"] and "broadcast" in err, (ops(out), err)
    # the product is read elsewhere
    m = matmul_add(a_shape=(3, K), extra_reader=True)
    out, err = fused(ctx, m)
    assert ops(out) == ["MatMul", "Add"], ops(out)


def test_gemm_with_constant_add_folds_into_c(ctx):
    n = helper.make_node
    for c_shape, d_shape in (((N,), (1, N)), ((3, 1), (N,)), (None, (3, N))):
        inits = [const("w", RNG.standard_normal((N, K))), const("d", RNG.standard_normal(d_shape))]
        gin = ["a", "w"]
        if c_shape:
            inits.append(const("c", RNG.standard_normal(c_shape)))
            gin.append("c")
        m = model([n("Gemm", gin, ["p"], transB=1, alpha=0.5, beta=2.0),
                   n("Add", ["p", "d"], ["y"])],
                  [tensor_in("a", [3, K])], [tensor_in("y", [None, None])], inits, opset=13)
        out, err = fused(ctx, m)
        assert ops(out) == ["Gemm"], (c_shape, ops(out), err)
        attrs = {a.name: (a.f if a.type == 1 else a.i) for a in out.graph.node[0].attribute}
        assert attrs == {"alpha": 0.5, "beta": 1.0, "transA": 0, "transB": 1}, attrs
        same_outputs(ctx, m, out, {"a": rand(RNG, 3, K)})


def test_gemm_times_constant_scales_b_and_c(ctx):
    n = helper.make_node
    for trans_b, c_shape, s_shape in ((1, (N,), ()), (0, (3, 1), (N,)), (1, None, (1, N)), (0, (3, N), (1,))):
        inits = [const("w", RNG.standard_normal((N, K) if trans_b else (K, N))),
                 const("s", RNG.standard_normal(s_shape))]
        gin = ["a", "w"]
        if c_shape:
            inits.append(const("c", RNG.standard_normal(c_shape)))
            gin.append("c")
        m = model([n("Gemm", gin, ["p"], transB=trans_b, alpha=0.5, beta=2.0),
                   n("Mul", ["s", "p"], ["y"])],
                  [tensor_in("a", [3, K])], [tensor_in("y", [None, None])], inits, opset=13)
        out, err = fused(ctx, m)
        assert ops(out) == ["Gemm"], (trans_b, c_shape, s_shape, ops(out), err)
        same_outputs(ctx, m, out, {"a": rand(RNG, 3, K)})
    # a scale per row is not a Gemm's: left
    m = model([n("Gemm", ["a", "w"], ["p"]), n("Mul", ["p", "s"], ["y"])],
              [tensor_in("a", [3, K])], [tensor_in("y", [None, None])],
              [const("w", RNG.standard_normal((K, N))), const("s", RNG.standard_normal((3, 1)))],
              opset=13)
    out, err = fused(ctx, m)
    assert ops(out) == ["Gemm", "Mul"] and "one per column" in err, (ops(out), err)
