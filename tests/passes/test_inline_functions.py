"""inline-functions: calls of model-local functions (FunctionProto) replaced by
their bodies; libtacort runs the result, and runs the original models too (a
session inlines the calls it has no kernel for into its own copy of the
graph)."""

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper

from passlib import close, rand, run_ort, same_outputs, tensor_in

RNG = np.random.default_rng(7)
LOCAL = "local"
X = tensor_in("x", [2, 3])
W = tensor_in("w", [2, 3])
Y = tensor_in("y", [2, 3])


def fmodel(nodes, inputs, outputs, functions, opset=18, extra_opsets=((LOCAL, 1),), inits=()):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    ops = [helper.make_opsetid("", opset)] if opset else []
    ops += [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(g, opset_imports=ops, functions=functions)
    m.ir_version = 10
    return m


def function(name, inputs, outputs, nodes, opset=18, attributes=(), defaults=(), domain=LOCAL,
             extra_opsets=()):
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    return helper.make_function(domain, name, inputs, outputs, nodes, ops,
                                attributes=list(attributes), attribute_protos=list(defaults))


def call(name, inputs, outputs, domain=LOCAL, node_name=None, **attrs):
    return helper.make_node(name, inputs, outputs, domain=domain, name=node_name, **attrs)


def with_ref(node, attr, attr_type, ref):
    node.attribute.append(helper.make_attribute_ref(attr, attr_type, ref_attr_name=ref))
    return node


def ops(m):
    return [n.op_type for n in m.graph.node]


def outputs_of(m):
    return [o.name for o in m.graph.output]


def all_value_names(g):
    """Every value a graph and its subgraphs define (inputs, initializers, node outputs)."""
    names = [i.name for i in g.input] + [i.name for i in g.initializer]
    for n in g.node:
        names += [o for o in n.output if o]
        for a in n.attribute:
            if a.type == AttributeProto.GRAPH:
                names += all_value_names(a.g)
    return names


def attr(node, name):
    for a in node.attribute:
        if a.name == name:
            assert not a.ref_attr_name, f"{node.op_type}.{name} is still a reference"
            return helper.get_attribute_value(a)
    return None


def branch(node, name):
    return next(a.g for a in node.attribute if a.name == name)


def runs_as_is(ctx, m, feeds):
    """libtacort runs the model with its calls, as ONNX Runtime does."""
    for i, (g, w) in enumerate(zip(ctx.run_tacort(m, feeds), run_ort(m, feeds))):
        close(g, w, f"libtacort on the model with calls, output {i}")


def inline(ctx, m, passes="inline-functions"):
    out, _, _ = ctx.optimize(m, passes)
    assert outputs_of(out) == outputs_of(m), outputs_of(out)
    return out


def inline_fails(ctx, m):
    """Runs the pass expecting tacoc's error exit (2); returns its stderr."""
    src = ctx.path("in.onnx")
    onnx.save(m, src)
    proc = ctx.tacoc_run("optimize", src, "-o", ctx.path("out.onnx"), "--passes",
                         "inline-functions", check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    return proc.stderr


# F(a, b) -> (c): t = Mul(a, b); c = Add(t, a)
MUL_ADD = function("MulAdd", ["a", "b"], ["c"], [helper.make_node("Mul", ["a", "b"], ["t"]),
                                                 helper.make_node("Add", ["t", "a"], ["c"])])


def test_simple_function(ctx):
    m = fmodel([call("MulAdd", ["x", "w"], ["s"], node_name="block"),
                helper.make_node("Relu", ["s"], ["y"])], [X, W], [Y], [MUL_ADD])
    out = inline(ctx, m)
    assert ops(out) == ["Mul", "Add", "Relu"], ops(out)
    assert list(out.functions) == [], [f.name for f in out.functions]
    assert out.graph.node[0].input[:] == ["x", "w"] and out.graph.node[1].output[0] == "s"
    assert [n.name for n in out.graph.node[:2]] == ["block/Mul_0", "block/Add_1"]
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3), "w": rand(RNG, 2, 3)})
    runs_as_is(ctx, m, {"x": rand(RNG, 2, 3), "w": rand(RNG, 2, 3)})



def test_two_calls_names_do_not_collide(ctx):
    # The caller already defines "t", the name of the body's internal value.
    m = fmodel([helper.make_node("Neg", ["x"], ["t"]),
                call("MulAdd", ["t", "w"], ["s1"]),
                call("MulAdd", ["s1", "x"], ["y"])], [X, W], [Y], [MUL_ADD])
    out = inline(ctx, m)
    assert ops(out) == ["Neg", "Mul", "Add", "Mul", "Add"], ops(out)
    names = all_value_names(out.graph)
    assert len(names) == len(set(names)), names
    assert names.count("t") == 1
    assert list(out.functions) == []
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3), "w": rand(RNG, 2, 3)})


def test_constant_in_body_called_twice(ctx):
    # Each copy owns its Constant's tensor: turned into initializers, the two
    # copies get two initializers of their own names.
    k = helper.make_tensor("k", TensorProto.FLOAT, [3], [1.0, -2.0, 0.5])
    f = function("Scale", ["a"], ["c"], [helper.make_node("Constant", [], ["k"], value=k),
                                        helper.make_node("Mul", ["a", "k"], ["c"])])
    m = fmodel([call("Scale", ["x"], ["s"]), call("Scale", ["s"], ["y"])], [X], [Y], [f])
    out = inline(ctx, m, "inline-functions,constants-to-initializers")
    assert ops(out) == ["Mul", "Mul"], ops(out)
    inits = [i.name for i in out.graph.initializer]
    assert len(inits) == 2 and len(set(inits)) == 2, inits
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def leaky_elu_function():
    """F<alpha, beta = 0.5, gamma>(a) -> (c): LeakyRelu(alpha = @alpha), Elu(alpha = @beta),
    then LeakyRelu(alpha = @gamma): gamma has no default."""
    nodes = [with_ref(helper.make_node("LeakyRelu", ["a"], ["t"]), "alpha", AttributeProto.FLOAT,
                      "alpha"),
             with_ref(helper.make_node("Elu", ["t"], ["u"]), "alpha", AttributeProto.FLOAT,
                      "beta"),
             with_ref(helper.make_node("LeakyRelu", ["u"], ["c"]), "alpha", AttributeProto.FLOAT,
                      "gamma")]
    return function("Act", ["a"], ["c"], nodes, attributes=["alpha", "gamma"],
                    defaults=[helper.make_attribute("beta", 0.5)])


def test_attribute_references_and_defaults(ctx):
    m = fmodel([call("Act", ["x"], ["s"], alpha=0.2, beta=2.0, gamma=0.3),
                call("Act", ["s"], ["y"], alpha=0.4)], [X], [Y], [leaky_elu_function()])
    out = inline(ctx, m)
    assert ops(out) == ["LeakyRelu", "Elu", "LeakyRelu"] * 2, ops(out)
    got = [attr(n, "alpha") for n in out.graph.node]
    want = [0.2, 2.0, 0.3, 0.4, 0.5, None]  # given, given, given; given, default, omitted
    assert np.allclose([g if g is not None else -1 for g in got],
                       [w if w is not None else -1 for w in want]), got
    assert list(out.functions) == []
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})
    runs_as_is(ctx, m, {"x": rand(RNG, 2, 3)})



def test_tensor_attribute_default(ctx):
    # Offset<bias = [1, 2, 3]>(a) -> (c): k = Constant<value = @bias>; c = Add(a, k)
    default = helper.make_attribute("bias", helper.make_tensor("d", TensorProto.FLOAT, [3],
                                                               [1.0, 2.0, 3.0]))
    f = function("Offset", ["a"], ["c"],
                 [with_ref(helper.make_node("Constant", [], ["k"]), "value",
                           AttributeProto.TENSOR, "bias"),
                  helper.make_node("Add", ["a", "k"], ["c"])], defaults=[default])
    given = helper.make_tensor("g", TensorProto.FLOAT, [3], [-1.0, 0.5, 4.0])
    m = fmodel([call("Offset", ["x"], ["s"]), call("Offset", ["s"], ["y"], bias=given)], [X], [Y],
               [f])
    out = inline(ctx, m)
    assert ops(out) == ["Constant", "Add"] * 2, ops(out)
    values = [helper.get_attribute_value(n.attribute[0]) for n in out.graph.node[::2]]
    assert [list(np.frombuffer(v.raw_data, np.float32)) if v.raw_data else list(v.float_data)
            for v in values] == [[1, 2, 3], [-1, 0.5, 4]], values
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})
    runs_as_is(ctx, m, {"x": rand(RNG, 2, 3)})



def test_missing_optional_input(ctx):
    # F(a, lo, hi) -> (c): Clip(a, lo, hi); calls leave lo (and hi) out.
    f = function("Clamp", ["a", "lo", "hi"], ["c"], [helper.make_node("Clip", ["a", "lo", "hi"],
                                                                      ["c"])])
    hi = helper.make_tensor("hi", TensorProto.FLOAT, [], [0.5])
    m = fmodel([call("Clamp", ["x", "", "hi"], ["s"]),
                call("Clamp", ["s"], ["y"])], [X], [Y], [f], inits=[hi])
    out = inline(ctx, m)
    assert ops(out) == ["Clip", "Clip"], ops(out)
    assert list(out.graph.node[0].input) == ["x", "", "hi"], out.graph.node[0].input
    assert [i for i in out.graph.node[1].input if i] == ["s"], out.graph.node[1].input
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3) * 3})
    runs_as_is(ctx, m, {"x": rand(RNG, 2, 3) * 3})



def test_unused_output_dropped(ctx):
    # F(a) -> (r, n, p): the call leaves n out; its producer becomes dead.
    f = function("Split3", ["a"], ["r", "n", "p"],
                 [helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Neg", ["a"], ["n"]),
                  helper.make_node("Sigmoid", ["a"], ["p"])])
    m = fmodel([call("Split3", ["x"], ["r", "", "p"]),
                helper.make_node("Add", ["r", "p"], ["y"])], [X], [Y], [f])
    out = inline(ctx, m, "inline-functions,eliminate-dead")
    assert ops(out) == ["Relu", "Sigmoid", "Add"], ops(out)
    assert list(out.functions) == []
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})


def test_output_that_is_an_input(ctx):
    # Pass(a) -> (a, b): the first formal output is the formal input itself,
    # so the call's output is written by an Identity. ONNX Runtime refuses
    # such a function, so libtacort's result is compared with numpy.
    f = function("Pass", ["a"], ["a", "b"], [helper.make_node("Sigmoid", ["a"], ["b"])])
    z = tensor_in("z", [2, 3])
    m = fmodel([helper.make_node("Relu", ["x"], ["r"]), call("Pass", ["r"], ["y", "z"])], [X],
               [Y, z], [f])
    out = inline(ctx, m)
    assert ops(out) == ["Relu", "Sigmoid", "Identity"], ops(out)
    assert out.graph.node[2].input[0] == "r" and out.graph.node[2].output[0] == "y"
    x = rand(RNG, 2, 3)
    y, zz = ctx.run_tacort(out, {"x": x})
    r = np.maximum(x, 0)
    assert np.allclose(y, r) and np.allclose(zz, 1 / (1 + np.exp(-r)), atol=1e-6)


def test_nested_calls(ctx):
    # Outer<alpha>(a) -> (c): t = Inner<alpha = @alpha>(a); c = Neg(t)
    # Inner<alpha>(a) -> (b): b = LeakyRelu<alpha = @alpha>(Mul(a, a))
    inner = function("Inner", ["a"], ["b"],
                     [helper.make_node("Mul", ["a", "a"], ["sq"]),
                      with_ref(helper.make_node("LeakyRelu", ["sq"], ["b"]), "alpha",
                               AttributeProto.FLOAT, "alpha")],
                     attributes=["alpha"])
    outer = function("Outer", ["a"], ["c"],
                     [with_ref(call("Inner", ["a"], ["t"], node_name="in"), "alpha",
                               AttributeProto.FLOAT, "alpha"),
                      helper.make_node("Neg", ["t"], ["c"])],
                     attributes=["alpha"], extra_opsets=[(LOCAL, 1)])
    m = fmodel([call("Outer", ["x"], ["s"], node_name="out", alpha=0.25),
                call("Outer", ["s"], ["y"], alpha=0.5)], [X], [Y], [outer, inner])
    out = inline(ctx, m)
    assert ops(out) == ["Mul", "LeakyRelu", "Neg"] * 2, ops(out)
    assert [attr(n, "alpha") for n in out.graph.node if n.op_type == "LeakyRelu"] == [0.25, 0.5]
    assert out.graph.node[0].name == "out/in/Mul_0", out.graph.node[0].name
    assert list(out.functions) == []
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3)})
    runs_as_is(ctx, m, {"x": rand(RNG, 2, 3)})



def test_recursive_function_refused(ctx):
    f = function("Loopy", ["a"], ["b"], [call("Loopy", ["a"], ["b"])], extra_opsets=[(LOCAL, 1)])
    m = fmodel([call("Loopy", ["x"], ["y"])], [X], [Y], [f])
    err = inline_fails(ctx, m)
    assert "calls itself" in err and "Loopy -> Loopy" in err, err


def if_function():
    """Branch<alpha>(c, a) -> (b): b = If(c) then LeakyRelu<alpha = @alpha>(a) else Neg(a);
    both branches read the formal input a from the function's scope."""
    then_g = helper.make_graph(
        [with_ref(helper.make_node("LeakyRelu", ["a"], ["o"]), "alpha", AttributeProto.FLOAT,
                  "alpha")], "then", [], [tensor_in("o", [2, 3])])
    else_g = helper.make_graph([helper.make_node("Mul", ["a", "a"], ["sq"]),
                                helper.make_node("Neg", ["sq"], ["o"])],
                               "else", [], [tensor_in("o", [2, 3])])
    return function("Branch", ["c", "a"], ["b"],
                    [helper.make_node("If", ["c"], ["b"], then_branch=then_g, else_branch=else_g)],
                    attributes=["alpha"])


def test_function_with_if_subgraphs(ctx):
    cond = tensor_in("cond", [], TensorProto.BOOL)
    m = fmodel([call("Branch", ["cond", "x"], ["s"], alpha=0.3),
                call("Branch", ["cond", "s"], ["y"], alpha=0.6)], [cond, X], [Y], [if_function()])
    out = inline(ctx, m)
    assert ops(out) == ["If", "If"], ops(out)
    names = all_value_names(out.graph)
    assert len(names) == len(set(names)), names
    ifs = out.graph.node
    alphas = [attr(branch(n, "then_branch").node[0], "alpha") for n in ifs]
    assert np.allclose(alphas, [0.3, 0.6]), alphas
    assert branch(ifs[0], "then_branch").node[0].input[0] == "x"
    assert branch(ifs[1], "else_branch").node[0].input[:] == ["s", "s"]
    assert list(out.functions) == []
    for c in (True, False):
        same_outputs(ctx, m, out, {"cond": np.array(c), "x": rand(RNG, 2, 3)})
        runs_as_is(ctx, m, {"cond": np.array(c), "x": rand(RNG, 2, 3)})


def test_call_inside_a_subgraph(ctx):
    cond = tensor_in("cond", [], TensorProto.BOOL)
    then_g = helper.make_graph([call("MulAdd", ["x", "w"], ["o"])], "then", [],
                               [tensor_in("o", [2, 3])])
    else_g = helper.make_graph([helper.make_node("Sub", ["x", "w"], ["o"])], "else", [],
                               [tensor_in("o", [2, 3])])
    m = fmodel([helper.make_node("If", ["cond"], ["y"], then_branch=then_g, else_branch=else_g)],
               [cond, X, W], [Y], [MUL_ADD])
    out = inline(ctx, m)
    then_ops = [n.op_type for n in branch(out.graph.node[0], "then_branch").node]
    assert then_ops == ["Mul", "Add"], then_ops
    assert list(out.functions) == []
    for c in (True, False):
        feeds = {"cond": np.array(c), "x": rand(RNG, 2, 3), "w": rand(RNG, 2, 3)}
        same_outputs(ctx, m, out, feeds)
        runs_as_is(ctx, m, feeds)


def test_body_domain_added_to_model(ctx):
    # The model imports only the function's domain; the body's default-domain
    # ops need ai.onnx, which inlining adds at the function's version.
    m = fmodel([call("MulAdd", ["x", "w"], ["y"])], [X, W], [Y], [MUL_ADD], opset=None)
    assert [o.domain for o in m.opset_import] == [LOCAL]
    out = inline(ctx, m)
    assert ops(out) == ["Mul", "Add"], ops(out)
    versions = {o.domain: o.version for o in out.opset_import}
    assert versions.get("") == 18, versions
    same_outputs(ctx, m, out, {"x": rand(RNG, 2, 3), "w": rand(RNG, 2, 3)})


def test_opset_conflict_refused(ctx):
    f = function("MulAdd", ["a", "b"], ["c"], MUL_ADD.node, opset=17)
    m = fmodel([call("MulAdd", ["x", "w"], ["y"], node_name="block")], [X, W], [Y], [f], opset=18)
    err = inline_fails(ctx, m)
    assert "MulAdd" in err and "17" in err and "18" in err and "ai.onnx" in err, err
    assert "block" in err, err


def conv_relu_model():
    # ai.tacoc.ConvRelu with its decomposition as a function (as fuse-conv-activation
    # writes it): libtacort has a kernel, so the call stays; an unused function goes.
    body = [helper.make_node("Conv", ["x", "w", "b"], ["t"]),
            helper.make_node("Relu", ["t"], ["y"])]
    conv_relu = function("ConvRelu", ["x", "w", "b"], ["y"], body, domain="ai.tacoc")
    rng = np.random.default_rng(3)
    inits = [helper.make_tensor("cw", TensorProto.FLOAT, [4, 3, 3, 3],
                                rng.standard_normal(4 * 27).astype(np.float32)),
             helper.make_tensor("cb", TensorProto.FLOAT, [4], rng.standard_normal(4))]
    xi, yo = tensor_in("x", [1, 3, 8, 8]), tensor_in("y", [1, 4, 6, 6])
    return fmodel([call("ConvRelu", ["x", "cw", "cb"], ["y"], domain="ai.tacoc")], [xi], [yo],
                  [conv_relu, MUL_ADD], extra_opsets=[("ai.tacoc", 1), (LOCAL, 1)], inits=inits)


def test_call_with_kernel_stays(ctx):
    m = conv_relu_model()
    out = inline(ctx, m)
    assert [(n.domain, n.op_type) for n in out.graph.node] == [("ai.tacoc", "ConvRelu")]
    assert [f.name for f in out.functions] == ["ConvRelu"], [f.name for f in out.functions]
    same_outputs(ctx, m, out, {"x": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)})


def test_run_with_calls_keeps_the_model_and_names_errors(ctx):
    # A call libtacort has a kernel for and one it has not, side by side: the
    # first runs on its kernel, the second as its body.
    m = conv_relu_model()
    g = m.graph
    g.node.append(call("MulAdd", ["y", "y"], ["z"]))
    g.output.append(tensor_in("z", [1, 4, 6, 6]))
    runs_as_is(ctx, m, {"x": RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)})
    # a recursive function cannot be inlined: the session says so, naming the call
    f = function("Loopy", ["a"], ["b"], [call("Loopy", ["a"], ["b"])], extra_opsets=[(LOCAL, 1)])
    m = fmodel([call("Loopy", ["x"], ["y"], node_name="rec")], [X], [Y], [f])
    try:
        ctx.run_tacort(m, {"x": rand(RNG, 2, 3)})
    except AssertionError as e:
        msg = str(e)
    else:
        raise AssertionError("tacoc run accepted a recursive function")
    assert "calls itself" in msg and "rec" in msg, msg
