"""fold-shapes: Shape/Gather/Concat chains to constants, Reshape targets
canonicalized with symbolic shape inference."""

import numpy as np
from onnx import TensorProto, helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(6)


def split_heads(x_shape, heads=2):
    """The TorchScript head split: Reshape(x, Concat(Shape(x)[0], Shape(x)[1], heads, -1))."""
    x = tensor_in("x", x_shape)
    y = tensor_in("y", [None] * 4)
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i0"], ["b"], axis=0),
             helper.make_node("Gather", ["s", "i1"], ["n"], axis=0),
             helper.make_node("Unsqueeze", ["b", "ax0"], ["b1"]),
             helper.make_node("Unsqueeze", ["n", "ax0"], ["n1"]),
             helper.make_node("Concat", ["b1", "n1", "h", "d"], ["t"], axis=0),
             helper.make_node("Reshape", ["x", "t"], ["y"])]
    inits = [const("i0", 0, np.int64), const("i1", 1, np.int64), const("ax0", [0], np.int64),
             const("h", [heads], np.int64), const("d", [-1], np.int64)]
    return model(nodes, [x], [y], inits)


def target(out):
    from onnx import numpy_helper
    r = next(n for n in out.graph.node if n.op_type == "Reshape")
    init = {i.name: numpy_helper.to_array(i) for i in out.graph.initializer}
    return init[r.input[1]].tolist()


def test_symbolic_dims_become_copy_markers(ctx):
    m = split_heads(["batch", "seq", 8])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert ops(out) == ["Reshape"], ops(out)
    assert target(out) == [0, 0, 2, -1], target(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 3, 5, 8)})


def test_static_shape_folds_to_numbers(ctx):
    m = split_heads([3, 5, 8])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert ops(out) == ["Reshape"], ops(out)
    assert target(out) in ([3, 5, 2, -1], [0, 0, 2, -1]), target(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 3, 5, 8)})


def test_two_unknowns_stay(ctx):
    # Reshape(x, Concat(Shape(y)[0], -1)) with y's batch unrelated to x's: not foldable.
    x, y = tensor_in("x", ["a", 4]), tensor_in("z", ["b", 2])
    m = model([helper.make_node("Shape", ["z"], ["s"]),
               helper.make_node("Slice", ["s", "st", "en"], ["b"]),
               helper.make_node("Concat", ["b", "m1"], ["t"], axis=0),
               helper.make_node("Reshape", ["x", "t"], ["y"])], [x, y], [tensor_in("y", [None, None])],
              [const("st", [0], np.int64), const("en", [1], np.int64), const("m1", [-1], np.int64)])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert "Shape" in ops(out), ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 4, 4), "z": rand(RNG, 2, 2)})


def test_shape_arithmetic(ctx):
    # seq * 2 computed from Shape of a static input becomes a constant.
    x = tensor_in("x", [2, 6])
    m = model([helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("Gather", ["s", "i1"], ["n"], axis=0),
               helper.make_node("Div", ["n", "two"], ["h"]),
               helper.make_node("Unsqueeze", ["h", "ax0"], ["h1"]),
               helper.make_node("Concat", ["m1", "h1"], ["t"], axis=0),
               helper.make_node("Reshape", ["x", "t"], ["y"])], [x], [tensor_in("y", [None, None])],
              [const("i1", 1, np.int64), const("two", 2, np.int64), const("ax0", [0], np.int64),
               const("m1", [-1], np.int64)])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert ops(out) == ["Reshape"], ops(out)
    assert target(out) == [-1, 3], target(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 6)})
