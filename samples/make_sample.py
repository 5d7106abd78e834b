"""Writes the demo model: a small MLP classifier (MatMul/Add/Relu/Softmax) with
a symbolic batch dimension and its weights stored as external data."""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main(out_path):
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((64, 256)).astype(np.float32) * 0.1
    b1 = np.zeros(256, np.float32)
    w2 = rng.standard_normal((256, 10)).astype(np.float32) * 0.1
    b2 = np.zeros(10, np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"], name="fc1"),
        helper.make_node("Add", ["h0", "b1"], ["h1"], name="fc1_bias"),
        helper.make_node("Relu", ["h1"], ["h2"], name="relu"),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"], name="fc2"),
        helper.make_node("Add", ["h3", "b2"], ["logits"], name="fc2_bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="tacoc-sample")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, out_path, save_as_external_data=True, location="mlp.weights",
              size_threshold=1024)


if __name__ == "__main__":
    main(sys.argv[1])
