"""The ONNX model zoo's caffe2 CNNs that the onnx package ships as
"light" models (onnx/backend/test/data/light: the real graphs, every
weight a ConstantOfShape filling one value), made testable: each weight
becomes a random initializer scaled for its role, so that the outputs
depend on every weight and every channel (with the shipped constants every
logit is equal and a wrong channel order would go unseen).

Roles, by the reader (through Unsqueeze / Squeeze / Reshape / Flatten): a Conv's or Gemm's weights He-scaled
(normal * sqrt(2 / fan-in)), their biases normal * 0.05; a
BatchNormalization's scale 1 + 0.1 normal, bias and mean 0.1 normal,
variance 0.5 + uniform[0, 1); a Mul operand 1 + 0.1 normal, an Add operand
0.1 normal. Then the last Conv or Gemm before the final Softmax is scaled
so that the logits have a standard deviation of 2 on a normal image
(ONNX Runtime measures them): He scaling alone left ResNet-50's softmax one
value of 1 and Inception's all but uniform, where errors would not show.
The graph, its opset and its IR version are kept (an IR 3 model lists each
new initializer as a graph input, as IR 3 requires).

Usage: gen_zoo_models.py OUTDIR [NAME ...]
(default names: ZOO_MODELS; seeded, so the files are the same each run)."""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

# VGG-19 and ZFNet-512 add only plain Conv/LRN/MaxPool/Gemm stacks (which
# AlexNet covers) with 0.5 GB and 0.3 GB of weights: left out.
ZOO_MODELS = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50",
              "shufflenet", "squeezenet")


def light_dir():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light")


# ops that only give a weight another shape on its way to its reader
SHAPE_OPS = ("Unsqueeze", "Squeeze", "Reshape", "Flatten")


def readers(name, consumers):
    """The (node, input index) reading value name, through SHAPE_OPS."""
    out = []
    for node, i in consumers.get(name, []):
        if node.op_type in SHAPE_OPS and i == 0:
            out += readers(node.output[0], consumers)
        else:
            out.append((node, i))
    return out


def role_values(rng, shape, consumers):
    """Random values for a weight of shape read as consumers [(node, input index)]."""
    n = int(np.prod(shape)) if shape else 1
    for node, i in consumers:
        op = node.op_type
        if op == "Conv" and i == 1:
            return rng.standard_normal(shape) * np.sqrt(2.0 / max(1, n // shape[0]))
        if op == "Gemm" and i == 1:
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            fan_in = n // shape[0] if trans_b else shape[0]
            return rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)
        if op in ("Conv", "Gemm") and i == 2:
            return rng.standard_normal(shape) * 0.05
        if op == "BatchNormalization":
            if i == 1:
                return 1.0 + 0.1 * rng.standard_normal(shape)
            if i in (2, 3):
                return 0.1 * rng.standard_normal(shape)
            if i == 4:
                return 0.5 + rng.random(shape)
        if op == "Mul":
            return 1.0 + 0.1 * rng.standard_normal(shape)
        if op == "Add":
            return 0.1 * rng.standard_normal(shape)
    return None


def randomize(model, seed):
    g = model.graph
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in g.initializer}
    consumers = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, i))
    keep, new = [], []
    for node in g.node:
        if node.op_type == "ConstantOfShape" and node.input[0] in inits:
            shape = [int(d) for d in numpy_helper.to_array(inits[node.input[0]])]
            vals = role_values(rng, shape, readers(node.output[0], consumers))
            if vals is not None:
                new.append(numpy_helper.from_array(vals.astype(np.float32), node.output[0]))
                continue
        keep.append(node)
    # float initializers that are weights (IR 3 models list them as inputs)
    for t in g.initializer:
        if t.data_type == onnx.TensorProto.FLOAT:
            shape = list(t.dims)
            vals = role_values(rng, shape, readers(t.name, consumers))
            if vals is not None:
                t.CopyFrom(numpy_helper.from_array(vals.astype(np.float32), t.name))
    del g.node[:]
    g.node.extend(keep)
    used = {name for node in keep for name in node.input}
    shapes_used = [t for t in g.initializer if t.name in used or t.data_type != onnx.TensorProto.INT64]
    del g.initializer[:]
    g.initializer.extend(shapes_used + new)
    live = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name in live or i.name not in inits]
    if model.ir_version < 4:
        inputs += [helper.make_tensor_value_info(t.name, onnx.TensorProto.FLOAT, list(t.dims))
                   for t in new]
    del g.input[:]
    g.input.extend(inputs)
    return model


# ops through which the logits scale with the last layer's weights and bias
HOMOGENEOUS = ("Relu", "Dropout", "Reshape", "Flatten", "GlobalAveragePool", "AveragePool",
               "MaxPool", "Squeeze")
LOGITS_STD = 2.0


def image_input(model):
    inits = {t.name for t in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in inits)


def scale_logits(model, seed):
    """Scales the last Conv / Gemm before the final Softmax to LOGITS_STD."""
    g = model.graph
    producer = {o: n for n in g.node for o in n.output}
    soft = [n for n in g.node if n.op_type == "Softmax" and n.output[0] in
            {o.name for o in g.output}]
    if not soft:
        return model
    logits, node = soft[0].input[0], producer.get(soft[0].input[0])
    while node is not None and node.op_type in HOMOGENEOUS:
        node = producer.get(node.input[0])
    if node is None or node.op_type not in ("Conv", "Gemm"):
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.append(helper.make_tensor_value_info(logits, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    x = image_input(model)
    shape = [d.dim_value or 1 for d in x.type.tensor_type.shape.dim]
    img = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    std = float(np.std(sess.run([logits], {x.name: img})[0]))
    if not std:
        return model
    params = set()
    for name in node.input[1:3]:
        while name in producer and producer[name].op_type in SHAPE_OPS:
            name = producer[name].input[0]
        params.add(name)
    for t in g.initializer:
        if t.name in params:
            a = numpy_helper.to_array(t) * (LOGITS_STD / std)
            t.CopyFrom(numpy_helper.from_array(a.astype(np.float32), t.name))
    return model


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    out = sys.argv[1]
    names = sys.argv[2:] or ZOO_MODELS
    os.makedirs(out, exist_ok=True)
    for k, name in enumerate(names):
        dst = os.path.join(out, f"{name}.onnx")
        src = os.path.join(light_dir(), f"light_{name}.onnx")
        if os.path.exists(dst) and os.path.getmtime(dst) >= os.path.getmtime(__file__):
            continue
        m = scale_logits(randomize(onnx.load(src), seed=k), seed=k)
        onnx.checker.check_model(m)
        tmp = dst + ".tmp"
        onnx.save(m, tmp)
        os.replace(tmp, dst)


if __name__ == "__main__":
    main()
