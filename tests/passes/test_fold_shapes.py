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
    # the -1 is 8 / 2 = 4 whatever batch and sequence are: spelled out
    assert target(out) == [0, 0, 2, 4], target(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 3, 5, 8)})


def test_constant_target_gets_its_minus_one_spelled_out(ctx):
    # view(B, S, -1, D) with a constant [0, 0, -1, 4]: the heads become explicit
    m = model([helper.make_node("Reshape", ["x", "t"], ["y"])], [tensor_in("x", ["batch", "seq", 8])],
              [tensor_in("y", [None] * 4)], [const("t", [0, 0, -1, 4], np.int64)])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert target(out) == [0, 0, 2, 4], target(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 3, 5, 8)})
    # an unknown last dim leaves the -1 as it is
    m = model([helper.make_node("Reshape", ["x", "t"], ["y"])], [tensor_in("x", ["batch", "seq", "h"])],
              [tensor_in("y", [None] * 4)], [const("t", [0, 0, -1, 4], np.int64)])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert target(out) == [0, 0, -1, 4], target(out)


def test_static_shape_folds_to_numbers(ctx):
    m = split_heads([3, 5, 8])
    out, _, _ = ctx.optimize(m, "fold-shapes,eliminate-dead")
    assert ops(out) == ["Reshape"], ops(out)
    assert target(out) in ([3, 5, 2, 4], [0, 0, 2, 4]), target(out)
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
    assert target(out) == [4, 3], target(out)  # static input: the -1 is known too
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 6)})


def chain(nodes, inits, in_shape, out_shape):
    return model(nodes, [tensor_in("x", in_shape)], [tensor_in("y", out_shape)], inits)


def test_transpose_pairs(ctx):
    n = helper.make_node
    # (0,2,1,3) twice is the identity; (0,2,1,3) then (0,1,3,2) composes.
    m = chain([n("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]), n("Transpose", ["t"], ["u"], perm=[0, 2, 1, 3]),
               n("Relu", ["u"], ["y"])], [], ["b", 3, 4, 5], ["b", 3, 4, 5])
    out, _, _ = ctx.optimize(m, "fold-chains")
    assert ops(out) == ["Relu"] and out.graph.node[0].input[0] == "x", ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3, 4, 5)})
    m = chain([n("Transpose", ["x"], ["t"], perm=[0, 2, 1, 3]), n("Transpose", ["t"], ["y"], perm=[0, 1, 3, 2])],
              [], ["b", 3, 4, 5], ["b", 4, 5, 3])
    out, _, _ = ctx.optimize(m, "fold-chains")
    assert ops(out) == ["Transpose"], ops(out)
    assert list(out.graph.node[0].attribute[0].ints) == [0, 2, 3, 1]
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3, 4, 5)})


def test_reshape_pairs_and_noop_reshape(ctx):
    n = helper.make_node
    m = chain([n("Reshape", ["x", "a"], ["t"]), n("Reshape", ["t", "b"], ["y"])],
              [const("a", [0, -1], np.int64), const("b", [0, 3, 4], np.int64)], ["b", 3, 4], ["b", 3, 4])
    out, _, _ = ctx.optimize(m, "fold-chains,eliminate-dead")
    # The pair becomes one Reshape, which then changes nothing and goes too.
    assert ops(out) in ([], ["Reshape"]), ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3, 4)})
    m = chain([n("Reshape", ["x", "a"], ["t"]), n("Reshape", ["t", "b"], ["u"]), n("Relu", ["u"], ["y"])],
              [const("a", [-1, 4], np.int64), const("b", [0, 2, 2], np.int64)], [2, 3, 4], [6, 2, 2])
    out, _, _ = ctx.optimize(m, "fold-chains,eliminate-dead")
    assert ops(out) == ["Reshape", "Relu"], ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3, 4)})


def test_unsqueeze_squeeze_pair(ctx):
    n = helper.make_node
    m = chain([n("Unsqueeze", ["x", "ax"], ["t"]), n("Squeeze", ["t", "ax"], ["u"]), n("Relu", ["u"], ["y"])],
              [const("ax", [1], np.int64)], [2, 3], [2, 3])
    out, _, _ = ctx.optimize(m, "fold-chains,eliminate-dead")
    assert ops(out) == ["Relu"], ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_reshape_with_zero_copy_of_unknown_dim_is_left(ctx):
    n = helper.make_node
    # b's 0 copies dim 0 of the intermediate, whose size inference cannot name.
    m = chain([n("Reshape", ["x", "a"], ["t"]), n("Reshape", ["t", "b"], ["y"])],
              [const("a", [-1, 4], np.int64), const("b", [0, 2, 2], np.int64)], ["n", 3, 4], [None, 2, 2])
    out, _, _ = ctx.optimize(m, "fold-chains")
    assert ops(out) == ["Reshape", "Reshape"], ops(out)


def torchlib_key_transpose(x_shape, y_shape, first=(-1,), second=None):
    """key.transpose(-2, -1) as torchlib writes it for rank 4: Reshape to
    [-1, S, D] with S and D read by Shape(start, end), Transpose(0, 2, 1),
    Reshape to Shape(key)[:-2] + [D, S]. `first`/`second` override a target
    with constants."""
    n = helper.make_node
    nodes = [n("Shape", ["x"], ["last"], start=-1), n("Shape", ["x"], ["second_last"], start=-2, end=-1),
             n("Shape", ["x"], ["lead"], end=-2)]
    if len(first) == 1:
        nodes.append(n("Concat", ["first_c", "second_last", "last"], ["t1"], axis=0))
    inits = [const("first_c", list(first), np.int64)]
    if second is None:
        nodes.append(n("Concat", ["lead", "last", "second_last"], ["t2"], axis=0))
    else:
        inits.append(const("t2", list(second), np.int64))
    if len(first) > 1:
        inits.append(const("t1", list(first), np.int64))
    nodes += [n("Reshape", ["x", "t1"], ["r"]), n("Transpose", ["r"], ["t"], perm=[0, 2, 1]),
              n("Reshape", ["t", "t2"], ["y"])]
    return model(nodes, [tensor_in("x", x_shape)], [tensor_in("y", y_shape)], inits, opset=18)


def test_reshape_transpose_reshape_is_one_transpose(ctx):
    for shape in (["b", 3, "s", 5], [2, 3, 4, 5]):
        m = torchlib_key_transpose(shape, [None] * 4)
        out, _, err = ctx.optimize(m, "fold-shapes,fold-chains,eliminate-dead")
        assert ops(out) == ["Transpose"], (shape, ops(out), err)
        assert list(out.graph.node[0].attribute[0].ints) == [0, 1, 3, 2]
        for dims in ((2, 3, 4, 5), (1, 3, 7, 5)) if "b" in shape else ((2, 3, 4, 5),):
            same_outputs(ctx, m, out, {"x": rand(RNG, *dims)})


def test_reshape_transpose_reshape_that_moves_data_is_left(ctx):
    # Merging the last two dims, or splitting back in another order, is not a transpose.
    for first, second in (((2, 3, 20), (2, 20, 3)),   # merged tail, not leading dims
                          ((6, 4, 5), (3, 2, 5, 4))):  # leading dims split back swapped
        m = torchlib_key_transpose([2, 3, 4, 5], [None] * len(second), first, second)
        out, _, _ = ctx.optimize(m, "fold-shapes,fold-chains,eliminate-dead")
        assert "Transpose" in ops(out) and "Reshape" in ops(out), (first, ops(out))
        same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3, 4, 5)})
