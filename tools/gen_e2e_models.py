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
  gpt2_decoder.onnx GPT-2 (2 layers) with a KV cache in the HF/optimum
                   use_cache layout: past_key_values.N.key/value in,
                   present.N.key/value out; Trilu'd causal mask sliced by
                   the past length, tanh GELU (Pow/Tanh/Mul),
                   LayerNormalization (opset 17)
  vit.onnx         ViT: patch Conv(stride=patch), Reshape/Transpose, class
                   token Expand + Concat, position Add, 2 pre-LN encoder
                   layers, Gelu op (opset 20), class token Gather, Gemm
  mobilenetv3.onnx MobileNetV3-style: depthwise Conv (group=C), HardSwish op
                   and its Add/Clip/Mul/Div form, squeeze-excite with the
                   TF and paddle2onnx HardSigmoid patterns and the op
  wav2vec2.onnx    wav2vec2-style encoder: audio -> Unsqueeze -> Conv1d
                   stack (GroupNorm as Reshape/InstanceNormalization, Erf
                   GELU), feature projection, grouped positional Conv1d with
                   padding, 2 post-LN transformer layers
  bert_sdpa.onnx   one BERT layer as torch's dynamo exporter (opset 18)
                   writes scaled_dot_product_attention: Shape(start, end)
                   dims, LayerNormalization ops, a [B,1,S,S] mask made with
                   Where, K^T as Reshape/Transpose/Reshape, sqrt(scale) on
                   both Q and K^T
  llama.onnx       LLaMA-style decoder (2 layers) as TorchScript's opset-14
                   export writes it: decomposed RMSNorm, rotary cos/sin
                   computed from position_ids and applied with rotate_half,
                   causal + padding mask by Where, SwiGLU MLP
  whisper_encoder.onnx Whisper's audio encoder (openai-whisper's layout,
                   opset 17): log-mel -> two Conv1d + Erf GELU, sliced
                   sinusoidal positions, 2 pre-LN blocks with Cast-wrapped
                   LayerNorm, k without bias, head_dim^-0.25 on q and k^T
                   after the permute, Softmax on a Cast

Each model passes onnx.checker (full check) and one ONNX Runtime run here.

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


def f32(name, value):
    return numpy_helper.from_array(np.array(value, np.float32), name)


def ones(name, *shape):
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def zeros(name, *shape):
    return numpy_helper.from_array(np.zeros(shape, np.float32), name)


def ln_params(inits, prefix, hidden):
    """LayerNorm gamma/beta near 1/0 but not exactly, as trained weights are."""
    inits += [numpy_helper.from_array((1.0 + RNG.standard_normal(hidden) * 0.1).astype(np.float32), f"{prefix}_g"),
              w(f"{prefix}_b", hidden, scale=0.05)]
    return f"{prefix}_g", f"{prefix}_b"


def erf_gelu(n, x, name):
    """nn.GELU() as torch exports it at opset 17 (x * (1 + erf(x / sqrt 2)) * 0.5), with
    n the node adder; needs the initializers sqrt2, one and half. Returns the output."""
    n("Div", [x, "sqrt2"], [f"{name}_g0"])
    n("Erf", [f"{name}_g0"], [f"{name}_g1"])
    n("Add", [f"{name}_g1", "one"], [f"{name}_g2"])
    n("Mul", [x, f"{name}_g2"], [f"{name}_g3"])
    n("Mul", [f"{name}_g3", "half"], [f"{name}_gelu"])
    return f"{name}_gelu"


def gpt2_decoder(hidden=64, heads=4, layers=2, vocab=96, max_pos=64):
    """GPT-2 with use_cache, as the HF/optimum export (decoder_model_merged's no-branch half) writes
    it: inputs input_ids, attention_mask [batch, past+seq], past_key_values.N.key/value
    [batch, heads, past_seq, head_dim]; outputs logits and present.N.key/value. Positions are a
    Range from the past length; the causal mask is a Trilu'd constant sliced to
    [past:past+seq, :past+seq] and applied with Where; gelu_new as the Pow/Tanh/Mul formula;
    LayerNormalization (opset 17); Conv1D as MatMul + Add with a fused qkv Split."""
    hd = hidden // heads
    nodes, inits = [], []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inits += [w("wte", vocab, hidden, scale=0.2), w("wpe", max_pos, hidden, scale=0.1),
              numpy_helper.from_array(np.ones((max_pos, max_pos), np.bool_), "bias_ones"),
              const("i0", 0), const("i1", 1), const("i2", 2), const("ax0", [0]), const("ax01", [0, 1]),
              const("ax12", [1, 2]), const("ax_last", [-1]), const("split3", [hidden] * 3),
              const("heads_hd", [heads, hd]), const("hidden_c", [hidden]),
              f32("f_one", 1.0), f32("f_half", 0.5), f32("f_three", 3.0), f32("f_gc", 0.044715),
              f32("f_s2pi", np.sqrt(2.0 / np.pi)), f32("f_scale", np.sqrt(hd)),
              f32("f_min", np.finfo(np.float32).min), f32("f_neg", -10000.0)]
    # Lengths: seq from input_ids, past from past_key_values.0.key (dim 2), total = past + seq.
    n("Shape", ["input_ids"], ["ids_shape"])
    n("Gather", ["ids_shape", "i0"], ["b_dim"], axis=0)
    n("Gather", ["ids_shape", "i1"], ["s_dim"], axis=0)
    n("Shape", ["past_key_values.0.key"], ["past_shape"])
    n("Gather", ["past_shape", "i2"], ["past_len"], axis=0)
    n("Add", ["past_len", "s_dim"], ["total_len"])
    n("Range", ["past_len", "total_len", "i1"], ["pos_ids"])
    n("Unsqueeze", ["pos_ids", "ax0"], ["pos_ids2"])
    n("Gather", ["wte", "input_ids"], ["tok_emb"])
    n("Gather", ["wpe", "pos_ids2"], ["pos_emb"])
    n("Add", ["tok_emb", "pos_emb"], ["h0"])
    # Causal mask: tril(ones) sliced to rows [past, total) and columns [0, total), [1, 1, s, total].
    n("Trilu", ["bias_ones"], ["causal_full"], upper=0)
    n("Unsqueeze", ["past_len", "ax0"], ["past_1"])
    n("Unsqueeze", ["total_len", "ax0"], ["total_1"])
    n("Unsqueeze", ["b_dim", "ax0"], ["b_1"])
    n("Unsqueeze", ["s_dim", "ax0"], ["s_1"])
    n("Slice", ["causal_full", "past_1", "total_1", "ax0"], ["causal_rows"])
    n("Slice", ["causal_rows", "ax0", "total_1", "ax_last"], ["causal_2d"])
    n("Unsqueeze", ["causal_2d", "ax01"], ["causal"])
    # attention_mask [batch, total] -> additive bias [batch, 1, 1, total].
    n("Unsqueeze", ["attention_mask", "ax12"], ["am4"])
    n("Cast", ["am4"], ["amf"], to=TensorProto.FLOAT)
    n("Sub", ["f_one", "amf"], ["am_inv"])
    n("Mul", ["am_inv", "f_neg"], ["am_bias"])
    n("Concat", ["b_1", "s_1", "heads_hd"], ["split_shape"], axis=0)
    n("Concat", ["b_1", "s_1", "hidden_c"], ["merge_shape"], axis=0)
    x = "h0"
    for i in range(layers):
        p = f"l{i}"
        g1, b1 = ln_params(inits, f"{p}_ln1", hidden)
        g2, b2 = ln_params(inits, f"{p}_ln2", hidden)
        inits += [w(f"{p}_attn_w", hidden, 3 * hidden), w(f"{p}_attn_b", 3 * hidden, scale=0.02),
                  w(f"{p}_proj_w", hidden, hidden), w(f"{p}_proj_b", hidden, scale=0.02),
                  w(f"{p}_fc_w", hidden, 4 * hidden), w(f"{p}_fc_b", 4 * hidden, scale=0.02),
                  w(f"{p}_fc2_w", 4 * hidden, hidden), w(f"{p}_fc2_b", hidden, scale=0.02)]
        n("LayerNormalization", [x, g1, b1], [f"{p}_ln1"], axis=-1, epsilon=1e-5)
        n("MatMul", [f"{p}_ln1", f"{p}_attn_w"], [f"{p}_qkv0"])
        n("Add", [f"{p}_qkv0", f"{p}_attn_b"], [f"{p}_qkv"])
        n("Split", [f"{p}_qkv", "split3"], [f"{p}_q0", f"{p}_k0", f"{p}_v0"], axis=2)
        for t in ("q", "k", "v"):
            n("Reshape", [f"{p}_{t}0", "split_shape"], [f"{p}_{t}1"])
            n("Transpose", [f"{p}_{t}1"], [f"{p}_{t}"], perm=[0, 2, 1, 3])
        n("Concat", [f"past_key_values.{i}.key", f"{p}_k"], [f"present.{i}.key"], axis=2)
        n("Concat", [f"past_key_values.{i}.value", f"{p}_v"], [f"present.{i}.value"], axis=2)
        n("Transpose", [f"present.{i}.key"], [f"{p}_kt"], perm=[0, 1, 3, 2])
        n("MatMul", [f"{p}_q", f"{p}_kt"], [f"{p}_sc0"])
        n("Div", [f"{p}_sc0", "f_scale"], [f"{p}_sc1"])
        n("Where", ["causal", f"{p}_sc1", "f_min"], [f"{p}_sc2"])
        n("Add", [f"{p}_sc2", "am_bias"], [f"{p}_sc"])
        n("Softmax", [f"{p}_sc"], [f"{p}_pr"], axis=-1)
        n("MatMul", [f"{p}_pr", f"present.{i}.value"], [f"{p}_ctx0"])
        n("Transpose", [f"{p}_ctx0"], [f"{p}_ctx1"], perm=[0, 2, 1, 3])
        n("Reshape", [f"{p}_ctx1", "merge_shape"], [f"{p}_ctx"])
        n("MatMul", [f"{p}_ctx", f"{p}_proj_w"], [f"{p}_ao0"])
        n("Add", [f"{p}_ao0", f"{p}_proj_b"], [f"{p}_ao"])
        n("Add", [f"{p}_ao", x], [f"{p}_res1"])
        n("LayerNormalization", [f"{p}_res1", g2, b2], [f"{p}_ln2"], axis=-1, epsilon=1e-5)
        n("MatMul", [f"{p}_ln2", f"{p}_fc_w"], [f"{p}_fc0"])
        n("Add", [f"{p}_fc0", f"{p}_fc_b"], [f"{p}_fc"])
        # gelu_new: 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
        u = f"{p}_fc"
        n("Pow", [u, "f_three"], [f"{p}_g0"])
        n("Mul", [f"{p}_g0", "f_gc"], [f"{p}_g1"])
        n("Add", [u, f"{p}_g1"], [f"{p}_g2"])
        n("Mul", [f"{p}_g2", "f_s2pi"], [f"{p}_g3"])
        n("Tanh", [f"{p}_g3"], [f"{p}_g4"])
        n("Add", [f"{p}_g4", "f_one"], [f"{p}_g5"])
        n("Mul", [u, "f_half"], [f"{p}_g6"])
        n("Mul", [f"{p}_g6", f"{p}_g5"], [f"{p}_gelu"])
        n("MatMul", [f"{p}_gelu", f"{p}_fc2_w"], [f"{p}_fc20"])
        n("Add", [f"{p}_fc20", f"{p}_fc2_b"], [f"{p}_mlp"])
        n("Add", [f"{p}_mlp", f"{p}_res1"], [f"{p}_out"])
        x = f"{p}_out"
    gf, bf = ln_params(inits, "ln_f", hidden)
    n("LayerNormalization", [x, gf, bf], ["hf"], axis=-1, epsilon=1e-5)
    wte = next(t for t in inits if t.name == "wte")
    inits.append(numpy_helper.from_array(numpy_helper.to_array(wte).T.copy(), "lm_head_w"))
    n("MatMul", ["hf", "lm_head_w"], ["logits"])
    kv = lambda nm, past: helper.make_tensor_value_info(nm, TensorProto.FLOAT,
                                                        ["batch", heads, past, hd])
    ins = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
           helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "past_seq+seq"])]
    outs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])]
    for i in range(layers):
        ins += [kv(f"past_key_values.{i}.key", "past_seq"), kv(f"past_key_values.{i}.value", "past_seq")]
        outs += [kv(f"present.{i}.key", "past_seq+seq"), kv(f"present.{i}.value", "past_seq+seq")]
    g = helper.make_graph(nodes, "gpt2_decoder", ins, outs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def vit(image=32, patch=8, hidden=32, heads=4, layers=2, classes=10):
    """ViT as the HF exporter writes it: patch embedding Conv(stride=patch), flatten(2) as Reshape
    [0, 0, -1] + Transpose, class token Expand'ed to the batch and Concat'ed, position embedding
    Add, pre-LN encoder layers (LayerNormalization, MatMul attention with constant-shape Reshape,
    Softmax, Gelu op of opset 20), final LayerNorm, class token through Gather, Gemm classifier."""
    hd = hidden // heads
    npatch = (image // patch) ** 2
    nodes, inits = [], []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inits += [w("patch_w", hidden, 3, patch, patch, scale=0.1), w("patch_b", hidden, scale=0.02),
              w("cls_token", 1, 1, hidden, scale=0.5), w("pos_embed", 1, npatch + 1, hidden, scale=0.5),
              const("flat_shape", [0, 0, -1]), const("split_shape", [0, -1, heads, hd]),
              const("merge_shape", [0, -1, hidden]), const("s0", [0]), const("s1", [1]),
              const("tail_shape", [1, hidden]), const("cls_idx", 0),
              f32("inv_sqrt_hd", 1.0 / np.sqrt(hd))]
    n("Conv", ["pixel_values", "patch_w", "patch_b"], ["patches"], kernel_shape=[patch, patch],
      strides=[patch, patch], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    n("Reshape", ["patches", "flat_shape"], ["patches_flat"])
    n("Transpose", ["patches_flat"], ["tokens"], perm=[0, 2, 1])
    n("Shape", ["pixel_values"], ["px_shape"])
    n("Slice", ["px_shape", "s0", "s1", "s0"], ["b_1"])
    n("Concat", ["b_1", "tail_shape"], ["cls_shape"], axis=0)
    n("Expand", ["cls_token", "cls_shape"], ["cls_tokens"])
    n("Concat", ["cls_tokens", "tokens"], ["emb0"], axis=1)
    n("Add", ["emb0", "pos_embed"], ["emb"])
    x = "emb"
    for i in range(layers):
        p = f"l{i}"
        g1, b1 = ln_params(inits, f"{p}_ln1", hidden)
        g2, b2 = ln_params(inits, f"{p}_ln2", hidden)
        n("LayerNormalization", [x, g1, b1], [f"{p}_ln1"], axis=-1, epsilon=1e-12)
        for t in ("q", "k", "v"):
            inits += [w(f"{p}_{t}_w", hidden, hidden, scale=0.2), w(f"{p}_{t}_b", hidden, scale=0.02)]
            n("MatMul", [f"{p}_ln1", f"{p}_{t}_w"], [f"{p}_{t}0"])
            n("Add", [f"{p}_{t}0", f"{p}_{t}_b"], [f"{p}_{t}1"])
            n("Reshape", [f"{p}_{t}1", "split_shape"], [f"{p}_{t}2"])
            n("Transpose", [f"{p}_{t}2"], [f"{p}_{t}"], perm=[0, 2, 3, 1] if t == "k" else [0, 2, 1, 3])
        n("MatMul", [f"{p}_q", f"{p}_k"], [f"{p}_sc0"])
        n("Mul", [f"{p}_sc0", "inv_sqrt_hd"], [f"{p}_sc"])
        n("Softmax", [f"{p}_sc"], [f"{p}_pr"], axis=-1)
        n("MatMul", [f"{p}_pr", f"{p}_v"], [f"{p}_ctx0"])
        n("Transpose", [f"{p}_ctx0"], [f"{p}_ctx1"], perm=[0, 2, 1, 3])
        n("Reshape", [f"{p}_ctx1", "merge_shape"], [f"{p}_ctx"])
        inits += [w(f"{p}_o_w", hidden, hidden, scale=0.2), w(f"{p}_o_b", hidden, scale=0.02),
                  w(f"{p}_fc1_w", hidden, 4 * hidden, scale=0.2), w(f"{p}_fc1_b", 4 * hidden, scale=0.02),
                  w(f"{p}_fc2_w", 4 * hidden, hidden, scale=0.1), w(f"{p}_fc2_b", hidden, scale=0.02)]
        n("MatMul", [f"{p}_ctx", f"{p}_o_w"], [f"{p}_ao0"])
        n("Add", [f"{p}_ao0", f"{p}_o_b"], [f"{p}_ao"])
        n("Add", [f"{p}_ao", x], [f"{p}_res1"])
        n("LayerNormalization", [f"{p}_res1", g2, b2], [f"{p}_ln2"], axis=-1, epsilon=1e-12)
        n("MatMul", [f"{p}_ln2", f"{p}_fc1_w"], [f"{p}_fc0"])
        n("Add", [f"{p}_fc0", f"{p}_fc1_b"], [f"{p}_fc"])
        n("Gelu", [f"{p}_fc"], [f"{p}_gelu"])
        n("MatMul", [f"{p}_gelu", f"{p}_fc2_w"], [f"{p}_fc20"])
        n("Add", [f"{p}_fc20", f"{p}_fc2_b"], [f"{p}_mlp"])
        n("Add", [f"{p}_mlp", f"{p}_res1"], [f"{p}_out"])
        x = f"{p}_out"
    gf, bf = ln_params(inits, "ln_f", hidden)
    n("LayerNormalization", [x, gf, bf], ["last_hidden_state"], axis=-1, epsilon=1e-12)
    n("Gather", ["last_hidden_state", "cls_idx"], ["pooled"], axis=1)
    inits += [w("cls_w", classes, hidden, scale=0.3), w("cls_b", classes, scale=0.02)]
    n("Gemm", ["pooled", "cls_w", "cls_b"], ["logits"], alpha=1.0, beta=1.0, transB=1)
    g = helper.make_graph(
        nodes, "vit",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 3, image, image])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", classes]),
         helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", npatch + 1, hidden])],
        inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


def mobilenetv3():
    """MobileNetV3-small-style, BatchNorm folded into Conv bias as torch/paddle exports write it:
    stem Conv s2 + HardSwish op; an SE block (GlobalAveragePool, Conv 1x1, Relu, Conv 1x1, the
    TF/paddle2onnx HardSigmoid as Add/Clip/Div, Mul) on a depthwise Conv (group=C); an inverted
    residual with expand 1x1, depthwise 5x5 s2, hard-swish decomposed as x * Clip(x+3, 0, 6) / 6
    (Add/Clip/Mul/Div), SE with the paddle HardSigmoid (Mul 0.2/Add 0.5/Clip 0..1), projection and
    a residual Add; head Conv 1x1, HardSwish, GlobalAveragePool, Flatten, Gemm, HardSigmoid op
    variant check, Gemm classifier."""
    nodes, inits = [], []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inits += [f32("c0", 0.0), f32("c1", 1.0), f32("c3", 3.0), f32("c6", 6.0),
              f32("c02", 0.2), f32("c05", 0.5)]

    def conv(x, name, cin, cout, k, stride=1, group=1):
        inits.extend([w(f"{name}_w", cout, cin // group, k, k, scale=np.sqrt(2.0 / (cin // group * k * k))),
                      w(f"{name}_b", cout, scale=0.05)])
        n("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"], kernel_shape=[k, k], strides=[stride, stride],
          pads=[k // 2] * 4, dilations=[1, 1], group=group)
        return f"{name}_c"

    def hswish_decomposed(x, name):
        n("Add", [x, "c3"], [f"{name}_a"])
        n("Clip", [f"{name}_a", "c0", "c6"], [f"{name}_clip"])
        n("Mul", [x, f"{name}_clip"], [f"{name}_m"])
        n("Div", [f"{name}_m", "c6"], [f"{name}_hs"])
        return f"{name}_hs"

    def se(x, name, c, r, paddle):
        n("GlobalAveragePool", [x], [f"{name}_gap"])
        s = conv(f"{name}_gap", f"{name}_fc1", c, r, 1)
        n("Relu", [s], [f"{name}_relu"])
        s = conv(f"{name}_relu", f"{name}_fc2", r, c, 1)
        if paddle:  # paddle hardsigmoid: clip(0.2 * x + 0.5, 0, 1)
            n("Mul", [s, "c02"], [f"{name}_hm"])
            n("Add", [f"{name}_hm", "c05"], [f"{name}_ha"])
            n("Clip", [f"{name}_ha", "c0", "c1"], [f"{name}_hsig"])
        else:  # TF hard_sigmoid: relu6(x + 3) / 6
            n("Add", [s, "c3"], [f"{name}_ha"])
            n("Clip", [f"{name}_ha", "c0", "c6"], [f"{name}_hc"])
            n("Div", [f"{name}_hc", "c6"], [f"{name}_hsig"])
        n("Mul", [x, f"{name}_hsig"], [f"{name}_out"])
        return f"{name}_out"

    x = conv("image", "stem", 3, 16, 3, 2)
    n("HardSwish", [x], ["stem_hs"])
    # Block 1: depthwise 3x3 s2, Relu, SE, project 1x1 (no residual: stride 2).
    y = conv("stem_hs", "b1_dw", 16, 16, 3, 2, group=16)
    n("Relu", [y], ["b1_dw_relu"])
    y = se("b1_dw_relu", "b1_se", 16, 8, paddle=False)
    x = conv(y, "b1_pw", 16, 16, 1)
    # Block 2: expand 1x1 + hard-swish, depthwise 5x5, hard-swish, SE, project, residual.
    y = conv(x, "b2_exp", 16, 48, 1)
    y = hswish_decomposed(y, "b2_exp")
    y = conv(y, "b2_dw", 48, 48, 5, 1, group=48)
    y = hswish_decomposed(y, "b2_dw")
    y = se(y, "b2_se", 48, 16, paddle=True)
    y = conv(y, "b2_pw", 48, 16, 1)
    n("Add", [y, x], ["b2_res"])
    # Block 3: expand, depthwise 3x3 s2 with HardSwish op, HardSigmoid op SE, project.
    y = conv("b2_res", "b3_exp", 16, 64, 1)
    n("HardSwish", [y], ["b3_exp_hs"])
    y = conv("b3_exp_hs", "b3_dw", 64, 64, 3, 2, group=64)
    n("HardSwish", [y], ["b3_dw_hs"])
    n("GlobalAveragePool", ["b3_dw_hs"], ["b3_gap"])
    s = conv("b3_gap", "b3_fc1", 64, 16, 1)
    n("Relu", [s], ["b3_se_relu"])
    s = conv("b3_se_relu", "b3_fc2", 16, 64, 1)
    n("HardSigmoid", [s], ["b3_hsig"], alpha=1.0 / 6, beta=0.5)
    n("Mul", ["b3_dw_hs", "b3_hsig"], ["b3_se"])
    y = conv("b3_se", "b3_pw", 64, 24, 1)
    # Head.
    y = conv(y, "head", 24, 96, 1)
    n("HardSwish", [y], ["head_hs"])
    n("GlobalAveragePool", ["head_hs"], ["pool"])
    n("Flatten", ["pool"], ["flat"], axis=1)
    inits += [w("fc1_w", 128, 96, scale=0.15), w("fc1_b", 128, scale=0.05),
              w("fc2_w", 10, 128, scale=0.15), w("fc2_b", 10, scale=0.05)]
    n("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"], transB=1)
    n("HardSwish", ["fc1"], ["fc1_hs"])
    n("Gemm", ["fc1_hs", "fc2_w", "fc2_b"], ["logits"], transB=1)
    g = helper.make_graph(nodes, "mobilenetv3",
                          [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 32, 32])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def wav2vec2(hidden=32, heads=4, layers=2, conv_dim=16):
    """wav2vec2-base-style speech encoder as torch's opset-17 export writes it: raw audio
    [batch, samples] -> Unsqueeze -> Conv1d feature extractor (first conv followed by GroupNorm
    with groups == channels exported as Reshape/InstanceNormalization/Reshape/Mul/Add, Erf GELU
    after every conv), Transpose, feature projection (LayerNormalization, MatMul), positional
    Conv1d with groups and padding (SamePad drops the last frame via Slice), GELU, Add,
    LayerNorm, post-LN transformer layers with Shape-derived Reshape and q scaled by Mul."""
    hd = hidden // heads
    nodes, inits = [], []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inits += [const("ax1", [1]), const("ax0", [0]), const("ax_m1", [-1]), const("i0", 0), const("i1", 1),
              const("gn_shape", [0, conv_dim, -1]), const("heads_hd", [heads, hd]),
              const("hidden_c", [hidden]),
              ones("gn_in_scale", conv_dim), zeros("gn_in_bias", conv_dim),
              numpy_helper.from_array((1.0 + RNG.standard_normal((conv_dim, 1)) * 0.1).astype(np.float32), "gn_g"),
              numpy_helper.from_array((RNG.standard_normal((conv_dim, 1)) * 0.05).astype(np.float32), "gn_b"),
              f32("one", 1.0), f32("half", 0.5), f32("sqrt2", np.sqrt(2.0)),
              f32("q_scale", hd ** -0.5)]

    def gelu(x, name):
        return erf_gelu(n, x, name)

    n("Unsqueeze", ["input_values", "ax1"], ["audio"])
    inits.append(w("fe0_w", conv_dim, 1, 10, scale=0.3))
    n("Conv", ["audio", "fe0_w"], ["fe0"], kernel_shape=[10], strides=[5], pads=[0, 0], dilations=[1], group=1)
    # GroupNorm(num_groups=conv_dim, conv_dim) the way torch exports it.
    n("Shape", ["fe0"], ["fe0_shape"])
    n("Reshape", ["fe0", "gn_shape"], ["gn_r"])
    n("InstanceNormalization", ["gn_r", "gn_in_scale", "gn_in_bias"], ["gn_in"], epsilon=1e-5)
    n("Reshape", ["gn_in", "fe0_shape"], ["gn_back"])
    n("Mul", ["gn_back", "gn_g"], ["gn_m"])
    n("Add", ["gn_m", "gn_b"], ["gn"])
    x = gelu("gn", "fe0")
    for i, (k, s) in enumerate(((3, 2), (2, 2)), start=1):
        inits.append(w(f"fe{i}_w", conv_dim, conv_dim, k, scale=np.sqrt(2.0 / (conv_dim * k))))
        n("Conv", [x, f"fe{i}_w"], [f"fe{i}"], kernel_shape=[k], strides=[s], pads=[0, 0], dilations=[1], group=1)
        x = gelu(f"fe{i}", f"fe{i}")
    n("Transpose", [x], ["feat_t"], perm=[0, 2, 1])
    gfp, bfp = ln_params(inits, "fp_ln", conv_dim)
    n("LayerNormalization", ["feat_t", gfp, bfp], ["fp_ln"], axis=-1, epsilon=1e-5)
    inits += [w("fp_w", conv_dim, hidden, scale=0.3), w("fp_b", hidden, scale=0.02)]
    n("MatMul", ["fp_ln", "fp_w"], ["fp0"])
    n("Add", ["fp0", "fp_b"], ["hidden0"])
    # Positional conv embedding: Conv1d(hidden, hidden, k=8, padding=4, groups=4), SamePad, GELU.
    pk, pg = 8, 4
    inits += [w("pos_w", hidden, hidden // pg, pk, scale=np.sqrt(1.0 / (hidden // pg * pk))),
              w("pos_b", hidden, scale=0.02)]
    n("Transpose", ["hidden0"], ["pos_in"], perm=[0, 2, 1])
    n("Conv", ["pos_in", "pos_w", "pos_b"], ["pos_c"], kernel_shape=[pk], strides=[1], pads=[pk // 2] * 2,
      dilations=[1], group=pg)
    n("Slice", ["pos_c", "ax0", "ax_m1", "ax_m1"], ["pos_same"])  # [:, :, :-1]
    pos = gelu("pos_same", "pos")
    n("Transpose", [pos], ["pos_t"], perm=[0, 2, 1])
    n("Add", ["hidden0", "pos_t"], ["enc_in0"])
    ge, be = ln_params(inits, "enc_ln", hidden)
    n("LayerNormalization", ["enc_in0", ge, be], ["enc_in"], axis=-1, epsilon=1e-5)
    n("Shape", ["enc_in"], ["enc_shape"])
    n("Gather", ["enc_shape", "i0"], ["b_dim"], axis=0)
    n("Gather", ["enc_shape", "i1"], ["t_dim"], axis=0)
    n("Unsqueeze", ["b_dim", "ax0"], ["b_1"])
    n("Unsqueeze", ["t_dim", "ax0"], ["t_1"])
    n("Concat", ["b_1", "t_1", "heads_hd"], ["split_shape"], axis=0)
    n("Concat", ["b_1", "t_1", "hidden_c"], ["merge_shape"], axis=0)
    x = "enc_in"
    for i in range(layers):
        p = f"l{i}"
        for t in ("q", "k", "v", "o"):
            inits += [w(f"{p}_{t}_w", hidden, hidden, scale=0.2), w(f"{p}_{t}_b", hidden, scale=0.02)]
        n("MatMul", [x, f"{p}_q_w"], [f"{p}_q0"])
        n("Add", [f"{p}_q0", f"{p}_q_b"], [f"{p}_q1"])
        n("Mul", [f"{p}_q1", "q_scale"], [f"{p}_q2"])
        n("MatMul", [x, f"{p}_k_w"], [f"{p}_k0"])
        n("Add", [f"{p}_k0", f"{p}_k_b"], [f"{p}_k2"])
        n("MatMul", [x, f"{p}_v_w"], [f"{p}_v0"])
        n("Add", [f"{p}_v0", f"{p}_v_b"], [f"{p}_v2"])
        for t in ("q", "k", "v"):
            n("Reshape", [f"{p}_{t}2", "split_shape"], [f"{p}_{t}3"])
            n("Transpose", [f"{p}_{t}3"], [f"{p}_{t}"], perm=[0, 2, 1, 3])
        n("Transpose", [f"{p}_k"], [f"{p}_kt"], perm=[0, 1, 3, 2])
        n("MatMul", [f"{p}_q", f"{p}_kt"], [f"{p}_sc"])
        n("Softmax", [f"{p}_sc"], [f"{p}_pr"], axis=-1)
        n("MatMul", [f"{p}_pr", f"{p}_v"], [f"{p}_ctx0"])
        n("Transpose", [f"{p}_ctx0"], [f"{p}_ctx1"], perm=[0, 2, 1, 3])
        n("Reshape", [f"{p}_ctx1", "merge_shape"], [f"{p}_ctx"])
        n("MatMul", [f"{p}_ctx", f"{p}_o_w"], [f"{p}_ao0"])
        n("Add", [f"{p}_ao0", f"{p}_o_b"], [f"{p}_ao"])
        n("Add", [x, f"{p}_ao"], [f"{p}_res1"])
        g1, b1 = ln_params(inits, f"{p}_ln1", hidden)
        n("LayerNormalization", [f"{p}_res1", g1, b1], [f"{p}_h"], axis=-1, epsilon=1e-5)
        inits += [w(f"{p}_ff1_w", hidden, 2 * hidden, scale=0.2), w(f"{p}_ff1_b", 2 * hidden, scale=0.02),
                  w(f"{p}_ff2_w", 2 * hidden, hidden, scale=0.15), w(f"{p}_ff2_b", hidden, scale=0.02)]
        n("MatMul", [f"{p}_h", f"{p}_ff1_w"], [f"{p}_ff0"])
        n("Add", [f"{p}_ff0", f"{p}_ff1_b"], [f"{p}_ff"])
        ff = gelu(f"{p}_ff", f"{p}_ff")
        n("MatMul", [ff, f"{p}_ff2_w"], [f"{p}_ff20"])
        n("Add", [f"{p}_ff20", f"{p}_ff2_b"], [f"{p}_ff2"])
        n("Add", [f"{p}_h", f"{p}_ff2"], [f"{p}_res2"])
        g2, b2 = ln_params(inits, f"{p}_ln2", hidden)
        out = "last_hidden_state" if i == layers - 1 else f"{p}_out"
        n("LayerNormalization", [f"{p}_res2", g2, b2], [out], axis=-1, epsilon=1e-5)
        x = out
    g = helper.make_graph(nodes, "wav2vec2",
                          [helper.make_tensor_value_info("input_values", TensorProto.FLOAT, ["batch", "samples"])],
                          [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                                         ["batch", "frames", hidden])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def bert_sdpa(hidden=64, heads=4, vocab=100, max_pos=64, types=2):
    """One BERT encoder layer as torch.onnx.export(dynamo=True) writes it at opset 18 for a
    model on scaled_dot_product_attention, after the exporter's own optimizer: dynamic batch and
    sequence read with Shape(start, end); LayerNormalization ops; position and token-type ids
    Sliced from registered buffers (token types expanded to [B, S]); the padding mask expanded to [B, 1, S, S] with the dtype's
    minimum by Where; torchlib's SDPA: K transposed as Reshape([-1, S, D]) / Transpose(0, 2, 1) /
    Reshape, both Q and K^T multiplied by sqrt(scale), Add(mask), Softmax; Erf GELU with
    Mul(x, 1/sqrt(2))."""
    hd = hidden // heads
    nodes = []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inits = [w("word_emb", vocab, hidden), w("pos_emb", max_pos, hidden),
             w("type_emb", types, hidden),
             const("position_ids_buf", np.arange(max_pos)[None, :]),
             const("token_type_buf", np.zeros((1, max_pos))),
             f32("one", 1.0), f32("f_min", np.finfo(np.float32).min),
             f32("sqrt_scale", np.sqrt(1.0 / np.sqrt(hd))),
             f32("inv_sqrt2", 1.0 / np.sqrt(2.0)), f32("half", 0.5),
             const("zero_1", [0]), const("one_1", [1]), const("minus1", [-1]),
             const("heads_hd", [heads, hd]), const("hidden_1", [hidden]), const("ax12", [1, 2])]
    g0, b0 = ln_params(inits, "ln0", hidden)
    g1, b1 = ln_params(inits, "ln1", hidden)
    g2, b2 = ln_params(inits, "ln2", hidden)
    for name, shape in (("q", (hidden, hidden)), ("k", (hidden, hidden)), ("v", (hidden, hidden)),
                        ("o", (hidden, hidden)), ("ff1", (hidden, 4 * hidden)),
                        ("ff2", (4 * hidden, hidden))):
        inits += [w(f"w_{name}", *shape), w(f"b_{name}", shape[1])]
    n("Shape", ["input_ids"], ["ids_b"], start=0, end=1)
    n("Shape", ["input_ids"], ["seq_1"], start=1, end=2)
    n("Slice", ["position_ids_buf", "zero_1", "seq_1", "one_1"], ["position_ids"])
    n("Slice", ["token_type_buf", "zero_1", "seq_1", "one_1"], ["token_type_1s"])
    n("Concat", ["ids_b", "seq_1"], ["ids_shape"], axis=0)
    n("Expand", ["token_type_1s", "ids_shape"], ["token_type_ids"])
    n("Gather", ["word_emb", "input_ids"], ["we"])
    n("Gather", ["type_emb", "token_type_ids"], ["te"])
    n("Gather", ["pos_emb", "position_ids"], ["pe"])
    n("Add", ["we", "te"], ["e0"])
    n("Add", ["e0", "pe"], ["e1"])
    n("LayerNormalization", ["e1", g0, b0], ["x"], axis=-1, epsilon=1e-12)
    # [B, S] int64 -> [B, 1, S, S]: 0 where kept, the float32 minimum where padded.
    n("Shape", ["attention_mask"], ["b_1"], start=0, end=1)
    n("Shape", ["attention_mask"], ["s_1"], start=1, end=2)
    n("Concat", ["b_1", "one_1", "s_1", "s_1"], ["mask_shape"], axis=0)
    n("Unsqueeze", ["attention_mask", "ax12"], ["m4"])
    n("Expand", ["m4", "mask_shape"], ["m4e"])
    n("Cast", ["m4e"], ["m4f"], to=TensorProto.FLOAT)
    n("Sub", ["one", "m4f"], ["inv"])
    n("Cast", ["inv"], ["inv_b"], to=TensorProto.BOOL)
    n("Where", ["inv_b", "f_min", "inv"], ["mask"])
    # view(B, -1, H, D).transpose(1, 2) for Q, K, V
    n("Shape", ["x"], ["xb_1"], start=0, end=1)
    n("Concat", ["xb_1", "minus1", "heads_hd"], ["split_shape"], axis=0)
    for t in "qkv":
        n("MatMul", ["x", f"w_{t}"], [f"{t}0"])
        n("Add", [f"{t}0", f"b_{t}"], [f"{t}1"])
        n("Reshape", [f"{t}1", "split_shape"], [f"{t}_r"])
        n("Transpose", [f"{t}_r"], [f"{t}4"], perm=[0, 2, 1, 3])
    # torchlib's key transpose
    n("Shape", ["k4"], ["k_last"], start=-1)
    n("Shape", ["k4"], ["k_2nd_last"], start=-2, end=-1)
    n("Shape", ["k4"], ["k_first"], end=-2)
    n("Concat", ["minus1", "k_2nd_last", "k_last"], ["k_sq_shape"], axis=0)
    n("Reshape", ["k4", "k_sq_shape"], ["k_sq"])
    n("Transpose", ["k_sq"], ["k_sq_t"], perm=[0, 2, 1])
    n("Concat", ["k_first", "k_last", "k_2nd_last"], ["kt_shape"], axis=0)
    n("Reshape", ["k_sq_t", "kt_shape"], ["kt"])
    n("Mul", ["q4", "sqrt_scale"], ["q_s"])
    n("Mul", ["kt", "sqrt_scale"], ["kt_s"])
    n("MatMul", ["q_s", "kt_s"], ["scores0"])
    n("Add", ["scores0", "mask"], ["scores"])
    n("Softmax", ["scores"], ["probs"], axis=-1)
    n("MatMul", ["probs", "v4"], ["ctx4"])
    n("Transpose", ["ctx4"], ["ctx_t"], perm=[0, 2, 1, 3])
    n("Shape", ["x"], ["xs_1"], start=1, end=2)
    n("Concat", ["xb_1", "xs_1", "hidden_1"], ["merge_shape"], axis=0)
    n("Reshape", ["ctx_t", "merge_shape"], ["ctx"])
    n("MatMul", ["ctx", "w_o"], ["o0"])
    n("Add", ["o0", "b_o"], ["o1"])
    n("Add", ["o1", "x"], ["res1"])
    n("LayerNormalization", ["res1", g1, b1], ["h"], axis=-1, epsilon=1e-12)
    n("MatMul", ["h", "w_ff1"], ["f0"])
    n("Add", ["f0", "b_ff1"], ["f1"])
    n("Mul", ["f1", "inv_sqrt2"], ["gl0"])
    n("Erf", ["gl0"], ["gl1"])
    n("Add", ["gl1", "one"], ["gl2"])
    n("Mul", ["f1", "gl2"], ["gl3"])
    n("Mul", ["gl3", "half"], ["gelu"])
    n("MatMul", ["gelu", "w_ff2"], ["f2"])
    n("Add", ["f2", "b_ff2"], ["f3"])
    n("Add", ["f3", "h"], ["res2"])
    n("LayerNormalization", ["res2", g2, b2], ["last_hidden_state"], axis=-1, epsilon=1e-12)
    g = helper.make_graph(
        nodes, "bert_sdpa",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch", "seq", hidden])],
        inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])


def llama(hidden=64, heads=4, layers=2, vocab=96, inter=128):
    """A LLaMA-style decoder (2 layers, no cache) as TorchScript's opset-14 export of HF's
    LlamaForCausalLM writes it: RMSNorm as Pow/ReduceMean/Add/Sqrt/Reciprocal/Mul; rotary
    cos/sin computed once from position_ids (inv_freq [1, D/2, 1] @ positions, Transpose,
    Concat(freqs, freqs), Cos/Sin, Mul(attention_scaling), Cast) and applied per layer with
    rotate_half (Slice halves, Neg, Concat); view() targets from Shape/Gather/Concat; causal and
    padding mask combined into a [B, 1, S, S] additive mask with Where; SwiGLU MLP (SiLU as
    x * Sigmoid(x)); no biases; tied-free lm_head."""
    hd = hidden // heads
    nodes = []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    inv_freq = 1.0 / (10000 ** (np.arange(0, hd, 2) / hd))
    inits = [w("embed_tokens", vocab, hidden, scale=0.5), w("lm_head", hidden, vocab),
             f32("two", 2.0), f32("eps", 1e-6), f32("zero", 0.0),
             f32("f_min", np.finfo(np.float32).min), f32("attn_scaling", 1.0),
             f32("scaling", hd ** -0.5),
             numpy_helper.from_array(inv_freq.reshape(1, hd // 2, 1).astype(np.float32), "inv_freq"),
             const("zero_i", 0), const("one_i", 1), const("axes0", [0]), const("ax1", [1]),
             const("ax12", [1, 2]), const("minus1", [-1]),
             const("hd_c", [hd]), const("hidden_c", [hidden]), const("s0", [0]),
             const("s_half", [hd // 2]), const("s_end", [np.iinfo(np.int64).max]),
             const("ax_last", [-1])]

    def rms_norm(x, name):
        inits.append(numpy_helper.from_array(
            (1.0 + RNG.standard_normal(hidden) * 0.1).astype(np.float32), f"{name}_w"))
        n("Pow", [x, "two"], [f"{name}_sq"])
        n("ReduceMean", [f"{name}_sq"], [f"{name}_var"], axes=[-1], keepdims=1)
        n("Add", [f"{name}_var", "eps"], [f"{name}_ve"])
        n("Sqrt", [f"{name}_ve"], [f"{name}_sd"])
        n("Reciprocal", [f"{name}_sd"], [f"{name}_rs"])
        n("Mul", [x, f"{name}_rs"], [f"{name}_n"])
        n("Mul", [f"{name}_w", f"{name}_n"], [f"{name}_out"])
        return f"{name}_out"

    def rotate(t4, name):
        n("Slice", [t4, "s0", "s_half", "ax_last"], [f"{name}_x1"])
        n("Slice", [t4, "s_half", "s_end", "ax_last"], [f"{name}_x2"])
        n("Neg", [f"{name}_x2"], [f"{name}_nx2"])
        n("Concat", [f"{name}_nx2", f"{name}_x1"], [f"{name}_rh"], axis=-1)
        n("Mul", [t4, "cos4"], [f"{name}_c"])
        n("Mul", [f"{name}_rh", "sin4"], [f"{name}_s"])
        n("Add", [f"{name}_c", f"{name}_s"], [f"{name}_rot"])
        return f"{name}_rot"

    n("Gather", ["embed_tokens", "input_ids"], ["h0"])
    # batch and sequence as TorchScript reads them for view()
    n("Shape", ["input_ids"], ["ids_shape"])
    n("Gather", ["ids_shape", "zero_i"], ["b_dim"], axis=0)
    n("Gather", ["ids_shape", "one_i"], ["s_dim"], axis=0)
    n("Unsqueeze", ["b_dim", "axes0"], ["b_1"])
    n("Unsqueeze", ["s_dim", "axes0"], ["s_1"])
    n("Concat", ["b_1", "s_1", "minus1", "hd_c"], ["split_shape"], axis=0)
    n("Concat", ["b_1", "s_1", "hidden_c"], ["merge_shape"], axis=0)
    # rotary angles from position_ids, shared by every layer
    n("Unsqueeze", ["position_ids", "ax1"], ["pos_u"])
    n("Cast", ["pos_u"], ["pos_f"], to=TensorProto.FLOAT)
    n("MatMul", ["inv_freq", "pos_f"], ["freqs_t"])
    n("Transpose", ["freqs_t"], ["freqs"], perm=[0, 2, 1])
    n("Concat", ["freqs", "freqs"], ["emb"], axis=-1)
    for trig in ("Cos", "Sin"):
        t = trig.lower()
        n(trig, ["emb"], [f"{t}_raw"])
        n("Mul", [f"{t}_raw", "attn_scaling"], [f"{t}_s"])
        n("Cast", [f"{t}_s"], [f"{t}3"], to=TensorProto.FLOAT)
        n("Unsqueeze", [f"{t}3", "ax1"], [f"{t}4"])
    # causal + padding mask: [B, 1, S, S], 0 where attended, the float32 minimum elsewhere
    n("Concat", ["s_1", "s_1"], ["ss"], axis=0)
    n("ConstantOfShape", ["ss"], ["ones_ss"],
      value=numpy_helper.from_array(np.array([1.0], np.float32)))
    n("Trilu", ["ones_ss", "one_i"], ["upper"], upper=1)
    n("Cast", ["upper"], ["future"], to=TensorProto.BOOL)
    n("Unsqueeze", ["attention_mask", "ax12"], ["am4"])
    n("Cast", ["am4"], ["am_b"], to=TensorProto.BOOL)
    n("Not", ["am_b"], ["padded"])
    n("Or", ["future", "padded"], ["blocked"])
    n("Where", ["blocked", "f_min", "zero"], ["mask"])
    x = "h0"
    for l in range(layers):
        p = f"l{l}"
        for name, shape in (("q", (hidden, hidden)), ("k", (hidden, hidden)),
                            ("v", (hidden, hidden)), ("o", (hidden, hidden)),
                            ("gate", (hidden, inter)), ("up", (hidden, inter)),
                            ("down", (inter, hidden))):
            inits.append(w(f"{p}_{name}", *shape))
        h = rms_norm(x, f"{p}_in_norm")
        for t in "qkv":
            n("MatMul", [h, f"{p}_{t}"], [f"{p}_{t}3"])
            n("Reshape", [f"{p}_{t}3", "split_shape"], [f"{p}_{t}r"])
            n("Transpose", [f"{p}_{t}r"], [f"{p}_{t}4"], perm=[0, 2, 1, 3])
        q = rotate(f"{p}_q4", f"{p}_q")
        k = rotate(f"{p}_k4", f"{p}_k")
        n("Transpose", [k], [f"{p}_kt"], perm=[0, 1, 3, 2])
        n("MatMul", [q, f"{p}_kt"], [f"{p}_sc0"])
        n("Mul", [f"{p}_sc0", "scaling"], [f"{p}_sc1"])
        n("Add", [f"{p}_sc1", "mask"], [f"{p}_sc"])
        n("Softmax", [f"{p}_sc"], [f"{p}_pr"], axis=-1)
        n("MatMul", [f"{p}_pr", f"{p}_v4"], [f"{p}_ctx4"])
        n("Transpose", [f"{p}_ctx4"], [f"{p}_ctxt"], perm=[0, 2, 1, 3])
        n("Reshape", [f"{p}_ctxt", "merge_shape"], [f"{p}_ctx"])
        n("MatMul", [f"{p}_ctx", f"{p}_o"], [f"{p}_attn"])
        n("Add", [x, f"{p}_attn"], [f"{p}_res1"])
        h2 = rms_norm(f"{p}_res1", f"{p}_post_norm")
        n("MatMul", [h2, f"{p}_gate"], [f"{p}_g"])
        n("Sigmoid", [f"{p}_g"], [f"{p}_gs"])
        n("Mul", [f"{p}_g", f"{p}_gs"], [f"{p}_silu"])
        n("MatMul", [h2, f"{p}_up"], [f"{p}_u"])
        n("Mul", [f"{p}_silu", f"{p}_u"], [f"{p}_gu"])
        n("MatMul", [f"{p}_gu", f"{p}_down"], [f"{p}_mlp"])
        n("Add", [f"{p}_res1", f"{p}_mlp"], [f"{p}_out"])
        x = f"{p}_out"
    hf = rms_norm(x, "norm")
    n("MatMul", [hf, "lm_head"], ["logits"])
    g = helper.make_graph(
        nodes, "llama",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", vocab])],
        inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])


def whisper_encoder(n_mels=16, d=64, heads=4, layers=2, max_ctx=64):
    """Whisper's audio encoder as torch.onnx.export (opset 17) writes openai-whisper's
    AudioEncoder: log-mel [batch, n_mels, frames] -> Conv1d(k3, pad 1) + Erf GELU ->
    Conv1d(k3, stride 2, pad 1) + Erf GELU -> permute -> + the sinusoidal positional
    embedding (Sliced to the frame count: any even length up to 2 max_ctx) -> pre-LN residual
    blocks: LayerNorm (float() / type() Casts around it), attention with q = Linear, k =
    Linear without bias, v = Linear, the heads split by view/permute with Shape-derived
    sizes, q and k^T each multiplied by head_dim^-0.25 after the permute, softmax on
    qk.float() and back, (w @ v).permute.flatten(2), out Linear; MLP Linear(4d) + GELU +
    Linear -> ln_post."""
    hd = d // heads
    nodes, inits = [], []
    n = lambda *a, **k: nodes.append(helper.make_node(*a, **k))
    t = np.arange(max_ctx)[:, None] * np.exp(-np.log(10000) / (d // 2 - 1) * np.arange(d // 2))[None, :]
    inits += [const("ax0", [0]), const("i1", 1), const("heads_hd", [heads, hd]), const("neg1", [-1]),
              const("two", [2]),
              numpy_helper.from_array(np.concatenate([np.sin(t), np.cos(t)], 1).astype(np.float32), "pos_emb"),
              f32("one", 1.0), f32("half", 0.5), f32("sqrt2", np.sqrt(2.0)), f32("qk_scale", hd ** -0.25)]

    def gelu(x, name):
        return erf_gelu(n, x, name)

    def linear(x, name, cin, cout, bias=True):
        inits.append(w(f"{name}_w", cin, cout, scale=1 / np.sqrt(cin)))
        n("MatMul", [x, f"{name}_w"], [f"{name}_mm"])
        if not bias:
            return f"{name}_mm"
        inits.append(w(f"{name}_b", cout, scale=0.02))
        n("Add", [f"{name}_mm", f"{name}_b"], [name])
        return name

    def layer_norm(x, name):
        g, b = ln_params(inits, name, d)
        n("Cast", [x], [f"{name}_f"], to=TensorProto.FLOAT)
        n("LayerNormalization", [f"{name}_f", g, b], [f"{name}_n"], axis=-1, epsilon=1e-5)
        n("Cast", [f"{name}_n"], [name], to=TensorProto.FLOAT)
        return name

    inits += [w("conv1_w", d, n_mels, 3, scale=1 / np.sqrt(3 * n_mels)), w("conv1_b", d, scale=0.02),
              w("conv2_w", d, d, 3, scale=1 / np.sqrt(3 * d)), w("conv2_b", d, scale=0.02)]
    n("Conv", ["input_features", "conv1_w", "conv1_b"], ["c1"], kernel_shape=[3], pads=[1, 1], strides=[1])
    x = gelu("c1", "c1")
    n("Conv", [x, "conv2_w", "conv2_b"], ["c2"], kernel_shape=[3], pads=[1, 1], strides=[2])
    x = gelu("c2", "c2")
    n("Transpose", [x], ["feat"], perm=[0, 2, 1])
    n("Shape", ["feat"], ["feat_shape"])
    n("Gather", ["feat_shape", "i1"], ["t_dim"], axis=0)
    n("Unsqueeze", ["t_dim", "ax0"], ["t_1"])
    n("Slice", ["pos_emb", "ax0", "t_1", "ax0"], ["pos"])
    n("Add", ["feat", "pos"], ["h0"])
    x = "h0"
    for i in range(layers):
        p = f"b{i}"
        h = layer_norm(x, f"{p}_attn_ln")
        q, k, v = linear(h, f"{p}_q", d, d), linear(h, f"{p}_k", d, d, bias=False), linear(h, f"{p}_v", d, d)
        n("Shape", [q], [f"{p}_qs"])
        n("Slice", [f"{p}_qs", "ax0", "neg1", "ax0"], [f"{p}_bt"])  # q.shape[:2]
        n("Concat", [f"{p}_bt", "heads_hd"], [f"{p}_split"], axis=0)
        for t_, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
            n("Reshape", [{"q": q, "k": k, "v": v}[t_], f"{p}_split"], [f"{p}_{t_}4"])
            n("Transpose", [f"{p}_{t_}4"], [f"{p}_{t_}p"], perm=perm)
        n("Mul", [f"{p}_qp", "qk_scale"], [f"{p}_qs4"])
        n("Mul", [f"{p}_kp", "qk_scale"], [f"{p}_ks4"])
        n("MatMul", [f"{p}_qs4", f"{p}_ks4"], [f"{p}_qk"])
        n("Cast", [f"{p}_qk"], [f"{p}_qkf"], to=TensorProto.FLOAT)
        n("Softmax", [f"{p}_qkf"], [f"{p}_w0"], axis=-1)
        n("Cast", [f"{p}_w0"], [f"{p}_w"], to=TensorProto.FLOAT)
        n("MatMul", [f"{p}_w", f"{p}_vp"], [f"{p}_wv"])
        n("Transpose", [f"{p}_wv"], [f"{p}_wvt"], perm=[0, 2, 1, 3])
        n("Shape", [f"{p}_wvt"], [f"{p}_ws"])
        n("Slice", [f"{p}_ws", "ax0", "two", "ax0"], [f"{p}_ws2"])
        n("Concat", [f"{p}_ws2", "neg1"], [f"{p}_flat"], axis=0)
        n("Reshape", [f"{p}_wvt", f"{p}_flat"], [f"{p}_ctx"])
        o = linear(f"{p}_ctx", f"{p}_o", d, d)
        n("Add", [x, o], [f"{p}_res1"])
        h = layer_norm(f"{p}_res1", f"{p}_mlp_ln")
        f = gelu(linear(h, f"{p}_fc1", d, 4 * d), f"{p}_fc1")
        f = linear(f, f"{p}_fc2", 4 * d, d)
        n("Add", [f"{p}_res1", f], [f"{p}_res2"])
        x = f"{p}_res2"
    g_, b_ = ln_params(inits, "ln_post", d)
    n("LayerNormalization", [x, g_, b_], ["last_hidden_state"], axis=-1, epsilon=1e-5)
    g = helper.make_graph(nodes, "whisper_encoder",
                          [helper.make_tensor_value_info("input_features", TensorProto.FLOAT,
                                                         ["batch", n_mels, "frames"])],
                          [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                                         ["batch", "ctx", d])],
                          inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def ort_smoke(path):
    """Run the model once in ONNX Runtime on small random inputs (symbolic dims set to 2, the
    past length of a KV cache to 0) so that a model ORT rejects fails here, not in the tests."""
    import onnxruntime as ort
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {}
    for i in sess.get_inputs():
        dims = {"past_seq": 0, "past_seq+seq": 2, "samples": 400, "frames": 40}
        shape = [d if isinstance(d, int) else dims.get(d, 2) for d in i.shape]
        if i.type == "tensor(int64)":
            feeds[i.name] = (np.ones(shape, np.int64) if "mask" in i.name
                             else rng.integers(0, 10, shape).astype(np.int64))
        else:
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
    for o in sess.run(None, feeds):
        if o.dtype.kind == "f" and not np.all(np.isfinite(o)):
            raise SystemExit(f"{path}: ONNX Runtime gives non-finite outputs")


def main():
    out = sys.argv[1]
    with open(__file__, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(out, ".done")
    if os.path.exists(stamp) and open(stamp).read() == digest:
        return 0
    os.makedirs(out, exist_ok=True)
    # Built in this order: the weights come from one seeded generator.
    for name, build, ir in (("mlp", mlp, 8), ("bert_block", bert_block, 8), ("cnn", cnn, 8),
                            ("gpt2_decoder", gpt2_decoder, 8), ("vit", vit, 9),
                            ("mobilenetv3", mobilenetv3, 8), ("wav2vec2", wav2vec2, 8),
                            ("bert_sdpa", bert_sdpa, 8), ("llama", llama, 8),
                            ("whisper_encoder", whisper_encoder, 8)):
        model = build()
        model.ir_version = ir
        onnx.checker.check_model(model, full_check=True)
        path = os.path.join(out, f"{name}.onnx")
        onnx.save(model, path)
        ort_smoke(path)
    with open(stamp, "w") as f:
        f.write(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
