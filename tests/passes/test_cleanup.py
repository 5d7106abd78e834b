"""Clean-up passes: constants-to-initializers, eliminate-identity,
fold-constants, eliminate-common, eliminate-dead."""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(1)
X = tensor_in("x", [2, 3])
Y = tensor_in("y", [2, 3])


def test_constant_becomes_initializer(ctx):
    m = model([helper.make_node("Constant", [], ["c"], value=const("v", RNG.random((2, 3)))),
               helper.make_node("Constant", [], ["k"], value_float=2.0),
               helper.make_node("Constant", [], ["ks"], value_ints=[1, 2]),
               helper.make_node("Add", ["x", "c"], ["t"]),
               helper.make_node("Mul", ["t", "k"], ["y"])], [X], [Y])
    out, _, _ = ctx.optimize(m, "constants-to-initializers")
    assert ops(out) == ["Add", "Mul"], ops(out)
    names = {i.name for i in out.graph.initializer}
    assert {"c", "k", "ks"} <= names, names
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_identity_dropout_cast_removed(ctx):
    m = model([helper.make_node("Identity", ["x"], ["a"]),
               helper.make_node("Dropout", ["a"], ["b"]),
               helper.make_node("Cast", ["b"], ["c"], to=TensorProto.FLOAT),
               helper.make_node("Relu", ["c"], ["y"])], [X], [Y])
    out, _, _ = ctx.optimize(m, "eliminate-identity")
    assert ops(out) == ["Relu"], ops(out)
    assert out.graph.node[0].input[0] == "x"
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_cast_to_inferred_type_removed(ctx):
    # Softmax's output has no declared type: shape inference says float32
    # (openai-whisper's softmax(qk.float()).to(q.dtype), exported in float32)
    m = model([helper.make_node("Softmax", ["x"], ["a"], axis=-1),
               helper.make_node("Cast", ["a"], ["b"], to=TensorProto.FLOAT),
               helper.make_node("Cast", ["b"], ["c"], to=TensorProto.DOUBLE),
               helper.make_node("Cast", ["c"], ["y"], to=TensorProto.FLOAT)], [X], [Y])
    out, _, _ = ctx.optimize(m, "eliminate-identity")
    assert ops(out) == ["Softmax", "Cast", "Cast"], ops(out)
    assert out.graph.node[1].input[0] == out.graph.node[0].output[0]
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_identity_to_graph_output_keeps_name(ctx):
    m = model([helper.make_node("Relu", ["x"], ["a"]),
               helper.make_node("Identity", ["a"], ["y"])], [X], [Y])
    out, _, _ = ctx.optimize(m, "eliminate-identity")
    assert ops(out) == ["Relu"] and out.graph.node[0].output[0] == "y"
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_identity_between_input_and_output_stays(ctx):
    m = model([helper.make_node("Identity", ["x"], ["y"])], [X], [Y])
    out, _, _ = ctx.optimize(m, "eliminate-identity")
    assert ops(out) == ["Identity"], ops(out)


def test_training_dropout_and_real_cast_stay(ctx):
    m = model([helper.make_node("Dropout", ["x", "r", "t"], ["a"]),
               helper.make_node("Cast", ["a"], ["b"], to=TensorProto.DOUBLE),
               helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT)], [X], [Y],
              [const("r", 0.5), const("t", True, np.bool_)])
    out, _, _ = ctx.optimize(m, "eliminate-identity")
    assert ops(out) == ["Dropout", "Cast", "Cast"], ops(out)


def test_fold_chain_of_constants(ctx):
    m = model([helper.make_node("Shape", ["c"], ["s"]),
               helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
               helper.make_node("ReduceSum", ["sf"], ["n"], keepdims=0),
               helper.make_node("Mul", ["x", "n"], ["y"])], [X], [Y],
              [const("c", np.zeros((4, 5)))])
    out, _, _ = ctx.optimize(m, "fold-constants,eliminate-dead")
    assert ops(out) == ["Mul"], ops(out)
    folded = {i.name: i for i in out.graph.initializer}
    assert "n" in folded and "c" not in folded, sorted(folded)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_fold_respects_size_limit(ctx):
    m = model([helper.make_node("ConstantOfShape", ["shape"], ["big"],
                                value=const("v", [1.0])),
               helper.make_node("ReduceSum", ["big"], ["n"], keepdims=0),
               helper.make_node("Mul", ["x", "n"], ["y"])], [X], [Y],
              [const("shape", [1024, 1024], np.int64)])
    out, _, err = ctx.optimize(m, "fold-constants", extra=["--fold-limit", "65536", "--explain"])
    assert ops(out) == ["ConstantOfShape", "ReduceSum", "Mul"], ops(out)
    assert "fold limit" in err, err


def test_fold_above_limit_when_nothing_grows(ctx):
    """A Reshape / Transpose of a weight above the fold limit that nothing
    else reads (GoogLeNet's classifier) folds: the result replaces the
    weight, so the model does not grow. The same weight read twice stays
    (folding would add bytes)."""
    w = RNG.standard_normal((64, 32)).astype(np.float32)

    def net(shared):
        nodes = [helper.make_node("Reshape", ["w", "shape"], ["wr"]),
                 helper.make_node("Transpose", ["wr"], ["wt"], perm=[1, 0]),
                 helper.make_node("MatMul", ["x", "wt"], ["y"])]
        outputs = [tensor_in("y", [2, 64])]
        if shared:
            nodes.append(helper.make_node("Mul", ["w", "w"], ["w2"]))
            outputs.append(tensor_in("w2", [64, 32]))
        return model(nodes, [tensor_in("x", [2, 32])], outputs,
                     [const("w", w), const("shape", [64, 32], np.int64)])
    m = net(False)
    out, _, _ = ctx.optimize(m, "fold-constants", extra=["--fold-limit", "1024"])
    assert ops(out) == ["MatMul"], ops(out)
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    assert sorted(inits) == ["wt"], sorted(inits)
    np.testing.assert_array_equal(inits["wt"], w.T)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 32)})
    out, _, err = ctx.optimize(net(True), "fold-constants", extra=["--fold-limit", "1024",
                                                                   "--explain"])
    assert ops(out) == ["Reshape", "Transpose", "MatMul", "Mul"], ops(out)
    assert "fold limit" in err, err


def test_fold_above_limit_leaves_outer_weights(ctx):
    """Inside an If branch, a Reshape of the main graph's weight is not the
    branch's to remove (it crashed a later pass when it was: Silero VAD):
    above the limit it stays, and the model runs as before."""
    w = RNG.standard_normal((64, 32)).astype(np.float32)
    branch = helper.make_graph([helper.make_node("Reshape", ["w", "shape"], ["wr"]),
                                helper.make_node("MatMul", ["x", "wr"], ["t"])], "then", [],
                               [tensor_in("t", [2, 64])])
    other = helper.make_graph([helper.make_node("MatMul", ["x", "w2"], ["e"])], "else", [],
                              [tensor_in("e", [2, 64])])
    m = model([helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)],
              [tensor_in("x", [2, 32]), helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
              [tensor_in("y", [2, 64])],
              [const("w", w), const("shape", [32, 64], np.int64),
               const("w2", RNG.standard_normal((32, 64)))])
    out, _, _ = ctx.optimize(m, "fold-constants,eliminate-common,eliminate-dead",
                             extra=["--fold-limit", "1024"])
    assert "w" in {t.name for t in out.graph.initializer}
    for c in (True, False):
        same_outputs(ctx, m, out, {"x": rand(RNG, 2, 32), "c": np.array(c)})


def test_big_constant_computed_once_at_load(ctx):
    """What the fold limit leaves in the model, libtacort computes once when
    its session is made, as ONNX Runtime folds constants at load: here a
    100 MB ConstantOfShape (a ConstantOfShape of caffe2 AlexNet's 151 MB
    classifier weights ran on every run, 166 ms) and the ReduceSum of it."""
    m = model([helper.make_node("ConstantOfShape", ["shape"], ["big"],
                                value=const("v", [0.5])),
               helper.make_node("ReduceSum", ["big"], ["n"], keepdims=0),
               helper.make_node("Mul", ["x", "n"], ["y"])], [X], [Y],
              [const("shape", [5000, 5000], np.int64)])
    path, xf, outdir = ctx.path("m.onnx"), ctx.path("x.npy"), ctx.path("out")
    onnx.save(m, path)
    x = rand(RNG, 2, 3)
    np.save(xf, x)
    proc = ctx.tacoc_run("run", path, "--input", f"x={xf}", "--output-dir", outdir)
    assert "2 nodes with constant inputs computed once at load" in proc.stderr + proc.stdout, \
        proc.stderr
    y = np.load(f"{outdir}/y.npy")
    assert np.allclose(y, x * 12.5e6, rtol=1e-6), (y, x)


def test_sum_of_two_is_add_of_one_removed(ctx):
    """caffe2 exports sum residuals with Sum: two inputs become the Add they
    are (broadcasting alike), one input is passed through, three stay."""
    m = model([helper.make_node("Sum", ["x", "c"], ["s2"]),
               helper.make_node("Sum", ["s2"], ["s1"]),
               helper.make_node("Sum", ["s1", "x", "c"], ["y"])], [X], [Y],
              [const("c", RNG.standard_normal(3))])
    out, _, err = ctx.optimize(m, "eliminate-identity")
    assert ops(out) == ["Add", "Sum"], ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_dequantize_of_weights_not_folded(ctx):
    """A QDQ convolution's int8 weight and int32 bias stay DequantizeLinear of
    their initializers (folded they would be float32, and the convolution no
    longer a QDQ group for libtacort or ONNX Runtime); other constants still
    fold."""
    wq = RNG.integers(-127, 128, (8, 4, 3, 3)).astype(np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["bq", "bs"], ["bd"], axis=0),
             helper.make_node("Mul", ["ks", "two"], ["k2"]),
             helper.make_node("Conv", ["xd", "wd", "bd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "k2"], ["y"])]
    m = model(nodes, [tensor_in("x", [1, 4, 6, 6])], [tensor_in("y", [1, 8, 6, 6])],
              [const("xs", 0.02), const("xz", 128, np.uint8), const("wq", wq, np.int8),
               const("ws", RNG.uniform(0.001, 0.01, 8)), const("bs", 2e-5 * np.ones(8)),
               const("bq", RNG.integers(-500, 500, 8), np.int32), const("ks", 1.5),
               const("two", 2.0)], opset=13)
    out, _, _ = ctx.optimize(m, "fold-constants")
    assert ops(out) == ["QuantizeLinear", "DequantizeLinear", "DequantizeLinear",
                        "DequantizeLinear", "Conv", "Mul"], ops(out)
    inits = {t.name: t for t in out.graph.initializer}
    assert inits["wq"].data_type == TensorProto.INT8 and "wd" not in inits, sorted(inits)
    assert "k2" in inits, sorted(inits)
    same_outputs(ctx, m, out, {"x": rand(RNG, 1, 4, 6, 6)})


def test_random_ops_not_folded(ctx):
    m = model([helper.make_node("RandomUniformLike", ["c"], ["r"], seed=1.0),
               helper.make_node("Add", ["x", "r"], ["y"])], [X], [Y],
              [const("c", np.zeros((2, 3)))])
    out, _, _ = ctx.optimize(m, "fold-constants")
    assert ops(out) == ["RandomUniformLike", "Add"], ops(out)


def test_common_subexpressions_merged(ctx):
    m = model([helper.make_node("Relu", ["x"], ["a"]),
               helper.make_node("Relu", ["x"], ["b"]),
               helper.make_node("Mul", ["a", "k1"], ["c"]),
               helper.make_node("Mul", ["b", "k2"], ["d"]),
               helper.make_node("Add", ["c", "d"], ["y"])], [X], [Y],
              [const("k1", [2.0]), const("k2", [2.0])])
    out, _, _ = ctx.optimize(m, "eliminate-common,eliminate-dead")
    assert ops(out) == ["Relu", "Mul", "Add"], ops(out)
    assert list(out.graph.node[2].input) == ["c", "c"]
    assert len(out.graph.initializer) == 1
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_different_attributes_not_merged(ctx):
    m = model([helper.make_node("LeakyRelu", ["x"], ["a"], alpha=0.1),
               helper.make_node("LeakyRelu", ["x"], ["b"], alpha=0.2),
               helper.make_node("Add", ["a", "b"], ["y"])], [X], [Y])
    out, _, _ = ctx.optimize(m, "eliminate-common")
    assert ops(out) == ["LeakyRelu", "LeakyRelu", "Add"], ops(out)


def test_dead_nodes_and_initializers_removed(ctx):
    m = model([helper.make_node("Relu", ["x"], ["y"]),
               helper.make_node("Mul", ["x", "w"], ["unused1"]),
               helper.make_node("Exp", ["unused1"], ["unused2"])], [X], [Y],
              [const("w", [3.0]), const("w2", [4.0])])
    m.graph.value_info.append(tensor_in("unused2", [2, 3]))
    out, _, _ = ctx.optimize(m, "eliminate-dead")
    assert ops(out) == ["Relu"], ops(out)
    assert not out.graph.initializer and not out.graph.value_info
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_dead_code_in_subgraph_and_outer_reads(ctx):
    then = helper.make_graph([helper.make_node("Add", ["x", "w"], ["t"]),
                              helper.make_node("Neg", ["x"], ["dead"])],
                             "then", [], [tensor_in("t", [2, 3])])
    other = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["e"])],
                              "else", [], [tensor_in("e", [2, 3])])
    m = model([helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
               helper.make_node("Greater", ["s", "zero"], ["cond"]),
               helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other),
               helper.make_node("Exp", ["x"], ["unused"])], [X], [Y],
              [const("w", RNG.random((2, 3))), const("zero", 0.0)])
    out, _, _ = ctx.optimize(m, "eliminate-dead")
    assert ops(out) == ["ReduceSum", "Greater", "If"], ops(out)
    branch = next(a.g for a in out.graph.node[2].attribute if a.name == "then_branch")
    assert [n.op_type for n in branch.node] == ["Add"], branch.node
    assert [i.name for i in out.graph.initializer] == ["w", "zero"]
    for sign in (1, -1):
        same_outputs(ctx, m, out, {"x": sign * np.abs(rand(RNG, 2, 3))})


def test_ir3_model_gets_ir4(ctx):
    m = model([helper.make_node("Constant", [], ["c"], value_float=2.0),
               helper.make_node("Mul", ["x", "c"], ["y"])], [X], [Y], opset=7, ir=3)
    out, _, _ = ctx.optimize(m, level=1)
    assert out.ir_version >= 4 and ops(out) == ["Mul"], (out.ir_version, ops(out))
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_ir3_initializers_listed_as_inputs_stay_constants(ctx):
    """IR 3 lists every initializer as a graph input too; ONNX Runtime reads
    those as constants (it refuses them as inputs), and so must tacoc: the
    passes fold them (Conv + BatchNormalization here), the IR 4 output lists
    them as initializers only (listed as inputs there they would become
    defaults a caller may override, which ONNX Runtime cannot fold), and
    libtacort refuses them as inputs of the IR 3 model with a clear error."""
    x = tensor_in("x", [1, 3, 6, 6])
    y = tensor_in("y", [1, 4, 6, 6])
    w = const("w", RNG.standard_normal((4, 3, 3, 3)))
    bn = [const(n, v) for n, v in (("scale", RNG.random(4) + 0.5), ("bias", RNG.random(4)),
                                   ("mean", RNG.random(4)), ("var", RNG.random(4) + 0.5))]
    inits = [w] + bn
    m = model([helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
               helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"],
                                ["y"])],
              [x] + [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims))
                     for t in inits], [y], inits, opset=7, ir=3)
    out, _, _ = ctx.optimize(m, level=2)
    assert out.ir_version >= 4, out.ir_version
    assert [i.name for i in out.graph.input] == ["x"], [i.name for i in out.graph.input]
    assert "BatchNormalization" not in ops(out), ops(out)
    same_outputs(ctx, m, out, {"x": rand(RNG, 1, 3, 6, 6)})
    # -O0 keeps the IR 3 model as it is
    same, _, _ = ctx.optimize(m, level=0)
    assert same.ir_version == 3 and len(same.graph.input) == 6, (same.ir_version, same.graph.input)
    # feeding one: refused, as ONNX Runtime refuses it ("Invalid input name")
    src, xf, sf = ctx.path("ir3.onnx"), ctx.path("x.npy"), ctx.path("s.npy")
    onnx.save(m, src)
    np.save(xf, rand(RNG, 1, 3, 6, 6))
    np.save(sf, np.ones(4, np.float32))
    proc = ctx.tacoc_run("run", src, "--input", "x=" + xf, "--input", "scale=" + sf, check=False)
    assert proc.returncode != 0 and "'scale' is a constant, not an input" in proc.stderr and \
        "IR version 3" in proc.stderr, proc.stderr
