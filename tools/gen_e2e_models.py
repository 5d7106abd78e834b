"""Generate the end-to-end models, laid out the way real exporters write them.

Usage: gen_e2e_models.py OUTDIR

  mlp.onnx         MatMul/Add/Relu/Softmax classifier, symbolic batch
  bert_block.onnx  one BERT-style encoder layer as TorchScript's opset-14
                   export writes it: embeddings Gather + Add, decomposed
                   LayerNorm (ReduceMean/Sub/Pow/Sqrt/Div), Shape/Gather/
                   Unsqueeze/Concat feeding Reshape, Transpose, scaled
                   MatMul attention with an int64 mask turned into an
                   additive bias (Cast/Sub/Mul), Softmax, Erf GELU
  cnn.onnx         ResNet-style: Conv+BatchNormalization+Relu, MaxPool, a
                   residual block, GlobalAveragePool, Flatten, Gemm

Weights are random with a fixed seed. Idempotent: rewrites only when this
script changed (stamp file)."""
import hashlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(1234)


def w(name, *shape, scale=0.1):
    return numpy_helper.from_array((RNG.standard_normal(shape) * scale).astype(np.float32), name)


def const(name, values, dtype=np.int64):
    return numpy_helper.from_array(np.array(values, dtype=dtype), name)


def mlp():
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
        helper.make_node("Add", ["h3", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    g = helper.make_graph(nodes, "mlp",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 32])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 10])],
                          [w("w1", 32, 64), w("b1", 64), w("w2", 64, 10), w("b2", 10)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def layer_norm(nodes, x, prefix, gamma, beta):
    """LayerNorm over the last axis, decomposed as the TorchScript exporter does before opset 17."""
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    n("ReduceMean", [x], [f"{prefix}_mean"], axes=[-1], keepdims=1)
    n("Sub", [x, f"{prefix}_mean"], [f"{prefix}_d"])
    n("Pow", [f"{prefix}_d", "two"], [f"{prefix}_sq"])
    n("ReduceMean", [f"{prefix}_sq"], [f"{prefix}_var"], axes=[-1], keepdims=1)
    n("Add", [f"{prefix}_var", "eps"], [f"{prefix}_ve"])
    n("Sqrt", [f"{prefix}_ve"], [f"{prefix}_std"])
    n("Div", [f"{prefix}_d", f"{prefix}_std"], [f"{prefix}_norm"])
    n("Mul", [f"{prefix}_norm", gamma], [f"{prefix}_scaled"])
    n("Add", [f"{prefix}_scaled", beta], [f"{prefix}_out"])
    return f"{prefix}_out"


def bert_block(hidden=64, heads=4, vocab=100, max_pos=64):
    hd = hidden // heads
    nodes = []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inits = [w("word_emb", vocab, hidden), w("pos_emb", max_pos, hidden),
             numpy_helper.from_array(np.ones(hidden, np.float32), "ln0_g"),
             numpy_helper.from_array(np.zeros(hidden, np.float32), "ln0_b"),
             numpy_helper.from_array(np.ones(hidden, np.float32), "ln1_g"),
             numpy_helper.from_array(np.zeros(hidden, np.float32), "ln1_b"),
             numpy_helper.from_array(np.ones(hidden, np.float32), "ln2_g"),
             numpy_helper.from_array(np.zeros(hidden, np.float32), "ln2_b"),
             w("wq", hidden, hidden), w("wk", hidden, hidden), w("wv", hidden, hidden),
             w("wo", hidden, hidden), w("bq", hidden), w("bo", hidden),
             w("w_ff1", hidden, 4 * hidden), w("b_ff1", 4 * hidden),
             w("w_ff2", 4 * hidden, hidden), w("b_ff2", hidden),
             numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-12, np.float32), "eps"),
             numpy_helper.from_array(np.array(1.0, np.float32), "one"),
             numpy_helper.from_array(np.array(-10000.0, np.float32), "neg_big"),
             numpy_helper.from_array(np.array(np.sqrt(hd), np.float32), "sqrt_hd"),
             numpy_helper.from_array(np.array(np.sqrt(2.0), np.float32), "sqrt2"),
             numpy_helper.from_array(np.array(0.5, np.float32), "half"),
             const("zero_i", 0), const("one_i", 1), const("heads_c", [heads]), const("hd_c", [hd]),
             const("hidden_c", [hidden]), const("axes0", [0]), const("perm_dummy", [0])]
    # Embeddings: word + position (positions from Range over the sequence length).
    n("Gather", ["word_emb", "input_ids"], ["we"])
    n("Shape", ["input_ids"], ["ids_shape"])
    n("Gather", ["ids_shape", "one_i"], ["seq_len"], axis=0)
    n("Range", ["zero_i", "seq_len", "one_i"], ["pos_ids"])
    n("Gather", ["pos_emb", "pos_ids"], ["pe"])
    n("Add", ["we", "pe"], ["emb"])
    x = layer_norm(nodes, "emb", "ln0", "ln0_g", "ln0_b")
    # Attention mask [batch, seq] int64 -> additive bias [batch, 1, 1, seq].
    n("Unsqueeze", ["attention_mask", "ax12"], ["mask4"])
    inits.append(const("ax12", [1, 2]))
    n("Cast", ["mask4"], ["maskf"], to=TensorProto.FLOAT)
    n("Sub", ["one", "maskf"], ["inv"])
    n("Mul", ["inv", "neg_big"], ["bias"])
    # Q, K, V with the batch/seq dims taken from Shape, as TorchScript writes view().
    n("Shape", [x], ["x_shape"])
    n("Gather", ["x_shape", "zero_i"], ["b_dim"], axis=0)
    n("Gather", ["x_shape", "one_i"], ["s_dim"], axis=0)
    n("Unsqueeze", ["b_dim", "axes0"], ["b_1"])
    n("Unsqueeze", ["s_dim", "axes0"], ["s_1"])
    n("Concat", ["b_1", "s_1", "heads_c", "hd_c"], ["split_shape"], axis=0)
    for name, bias in (("q", "bq"), ("k", None), ("v", None)):
        n("MatMul", [x, f"w{name}"], [f"{name}0"])
        src = f"{name}0"
        if bias:
            n("Add", [src, bias], [f"{name}1"])
            src = f"{name}1"
        n("Reshape", [src, "split_shape"], [f"{name}_r"])
        perm = [0, 2, 3, 1] if name == "k" else [0, 2, 1, 3]
        n("Transpose", [f"{name}_r"], [f"{name}_t"], perm=perm)
    n("MatMul", ["q_t", "k_t"], ["scores0"])
    n("Div", ["scores0", "sqrt_hd"], ["scores1"])
    n("Add", ["scores1", "bias"], ["scores"])
    n("Softmax", ["scores"], ["probs"], axis=-1)
    n("MatMul", ["probs", "v_t"], ["ctx0"])
    n("Transpose", ["ctx0"], ["ctx1"], perm=[0, 2, 1, 3])
    n("Concat", ["b_1", "s_1", "hidden_c"], ["merge_shape"], axis=0)
    n("Reshape", ["ctx1", "merge_shape"], ["ctx"])
    n("MatMul", ["ctx", "wo"], ["attn0"])
    n("Add", ["attn0", "bo"], ["attn1"])
    n("Add", ["attn1", x], ["res1"])
    h = layer_norm(nodes, "res1", "ln1", "ln1_g", "ln1_b")
    # Feed-forward with the exact Erf GELU.
    n("MatMul", [h, "w_ff1"], ["ff0"])
    n("Add", ["ff0", "b_ff1"], ["ff1"])
    n("Div", ["ff1", "sqrt2"], ["g0"])
    n("Erf", ["g0"], ["g1"])
    n("Add", ["g1", "one"], ["g2"])
    n("Mul", ["ff1", "g2"], ["g3"])
    n("Mul", ["g3", "half"], ["gelu"])
    n("MatMul", ["gelu", "w_ff2"], ["ff2"])
    n("Add", ["ff2", "b_ff2"], ["ff3"])
    n("Add", ["ff3", h], ["res2"])
    out = layer_norm(nodes, "res2", "ln2", "ln2_g", "ln2_b")
    n("Identity", [out], ["last_hidden_state"])
    inits = [i for i in inits if i.name != "perm_dummy"]
    g = helper.make_graph(
        nodes, "bert_block",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "seq", hidden])],
        inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def conv_bn_relu(nodes, inits, x, name, cin, cout, k, stride, relu=True):
    inits += [w(f"{name}_w", cout, cin, k, k, scale=0.2),
              numpy_helper.from_array((RNG.random(cout) + 0.5).astype(np.float32), f"{name}_g"),
              w(f"{name}_b", cout),
              w(f"{name}_m", cout),
              numpy_helper.from_array((RNG.random(cout) + 0.5).astype(np.float32), f"{name}_v")]
    nodes.append(helper.make_node("Conv", [x, f"{name}_w"], [f"{name}_c"], pads=[k // 2] * 4,
                                  strides=[stride, stride], kernel_shape=[k, k]))
    nodes.append(helper.make_node("BatchNormalization", [f"{name}_c", f"{name}_g", f"{name}_b",
                                                         f"{name}_m", f"{name}_v"], [f"{name}_bn"],
                                  epsilon=1e-5))
    if not relu:
        return f"{name}_bn"
    nodes.append(helper.make_node("Relu", [f"{name}_bn"], [f"{name}_out"]))
    return f"{name}_out"


def cnn():
    nodes, inits = [], []
    x = conv_bn_relu(nodes, inits, "image", "stem", 3, 16, 3, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    y = conv_bn_relu(nodes, inits, "pool", "b1a", 16, 16, 3, 1)
    y = conv_bn_relu(nodes, inits, y, "b1b", 16, 16, 3, 1, relu=False)
    nodes.append(helper.make_node("Add", [y, "pool"], ["res"]))
    nodes.append(helper.make_node("Relu", ["res"], ["res_relu"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["res_relu"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    inits += [w("fc_w", 10, 16), w("fc_b", 10)]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1))
    g = helper.make_graph(nodes, "cnn",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def main():
    out = sys.argv[1]
    with open(__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(out, ".done")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return 0
    os.makedirs(out, exist_ok=True)
    for name, build in (("mlp", mlp), ("bert_block", bert_block), ("cnn", cnn)):
        model = build()
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, os.path.join(out, f"{name}.onnx"))
    with open(stamp, "w") as f:
        f.write(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
