"""fuse-attention: multi-head self-attention subgraphs to Attention (opset 23)."""

import numpy as np
from onnx import helper

from passlib import const, e2e_generator, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(7)
H, D = 2, 4
HD = H * D


def attention(mask=True, k_form="0231", scale_on="scores_div", split=(0, 0, H, D),
              merge=(0, 0, HD), extra_reader=False, seq="seq"):
    n = helper.make_node
    nodes, inits = [], [const("split", split, np.int64), const("merge", merge, np.int64),
                        const("c", np.sqrt(D)), const("ic", 1 / np.sqrt(D))]
    for t in "qkv":
        nodes.append(n("MatMul", ["x", f"w{t}"], [f"{t}3"]))
        inits.append(const(f"w{t}", RNG.standard_normal((HD, HD)) * 0.5))
    q = "q3"
    if scale_on == "q":
        nodes.append(n("Mul", ["q3", "ic"], ["q3s"]))
        q = "q3s"
    nodes += [n("Reshape", [q, "split"], ["qr"]), n("Transpose", ["qr"], ["qt"], perm=[0, 2, 1, 3]),
              n("Reshape", ["k3", "split"], ["kr"]), n("Reshape", ["v3", "split"], ["vr"]),
              n("Transpose", ["vr"], ["vt"], perm=[0, 2, 1, 3])]
    if k_form == "0231":
        nodes.append(n("Transpose", ["kr"], ["kt"], perm=[0, 2, 3, 1]))
    else:
        nodes += [n("Transpose", ["kr"], ["k4"], perm=[0, 2, 1, 3]),
                  n("Transpose", ["k4"], ["kt"], perm=[0, 1, 3, 2])]
    qk = ["qt", "kt"]
    if scale_on == "sdpa":  # sqrt(scale) on Q and on K^T, after the split
        inits.append(const("sqrt_ic", np.sqrt(1 / np.sqrt(D))))
        nodes += [n("Mul", ["qt", "sqrt_ic"], ["qs"]), n("Mul", ["kt", "sqrt_ic"], ["ks"])]
        qk = ["qs", "ks"]
    nodes.append(n("MatMul", qk, ["s0"]))
    s = "s0"
    if scale_on == "scores_div":
        nodes.append(n("Div", ["s0", "c"], ["s1"]))
        s = "s1"
    elif scale_on == "scores_mul":
        nodes.append(n("Mul", ["s0", "ic"], ["s1"]))
        s = "s1"
    inputs = [tensor_in("x", ["batch", seq, HD])]
    if mask:
        nodes.append(n("Add", [s, "bias"], ["s2"]))
        s = "s2"
        inputs.append(tensor_in("bias", ["batch", 1, 1, seq]))
    nodes += [n("Softmax", [s], ["p"], axis=-1), n("MatMul", ["p", "vt"], ["c0"]),
              n("Transpose", ["c0"], ["c1"], perm=[0, 2, 1, 3]),
              n("Reshape", ["c1", "merge"], ["y"])]
    outputs = [tensor_in("y", ["batch", seq, HD])]
    if extra_reader:
        outputs.append(tensor_in("p", ["batch", H, seq, seq]))
    return model(nodes, inputs, outputs, inits)


def feeds(mask=True, b=2, s=5):
    f = {"x": rand(RNG, b, s, HD)}
    if mask:
        bias = np.zeros((b, 1, 1, s), np.float32)
        bias[0, ..., -2:] = -10000.0
        f["bias"] = bias
    return f


def fuse(ctx, m):
    return ctx.optimize(m, "fuse-attention,eliminate-common,eliminate-dead", extra=["--explain"])


def test_bert_form_with_mask(ctx):
    m = attention()
    out, _, err = fuse(ctx, m)
    assert sorted(ops(out)) == sorted(["MatMul"] * 3 + ["Shape", "Concat", "Expand", "Attention"]), (ops(out), err)
    a = next(x for x in out.graph.node if x.op_type == "Attention")
    attrs = {x.name: x for x in a.attribute}
    assert attrs["q_num_heads"].i == H and attrs["kv_num_heads"].i == H
    assert abs(attrs["scale"].f - 1 / np.sqrt(D)) < 1e-7
    assert list(a.input[:3]) == ["q3", "k3", "v3"] and a.output[0] == "y"
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [23]
    for b, s in ((2, 5), (1, 3)):
        same_outputs(ctx, m, out, feeds(True, b, s))


def test_vit_form_without_mask(ctx):
    m = attention(mask=False, scale_on="scores_mul", split=(0, -1, H, D), merge=(0, -1, HD))
    out, _, err = fuse(ctx, m)
    assert sorted(ops(out)) == sorted(["MatMul"] * 3 + ["Attention"]), (ops(out), err)
    same_outputs(ctx, m, out, feeds(False))


def test_prescaled_q_and_two_k_transposes(ctx):
    m = attention(mask=False, scale_on="q", k_form="two")
    out, _, err = fuse(ctx, m)
    assert "Attention" in ops(out) and "Softmax" not in ops(out), (ops(out), err)
    same_outputs(ctx, m, out, feeds(False))


def test_sdpa_form_scales_q_and_k_transposed(ctx):
    # TorchScript's scaled_dot_product_attention: Transpose(K, 0,1,3,2), then
    # Mul(Q, sqrt(scale)) and Mul(K^T, sqrt(scale)).
    m = attention(scale_on="sdpa", k_form="two")
    out, _, err = fuse(ctx, m)
    assert "Attention" in ops(out) and "Mul" not in ops(out), (ops(out), err)
    a = next(x for x in out.graph.node if x.op_type == "Attention")
    assert abs(a.attribute[2].f - 1 / np.sqrt(D)) < 1e-7
    same_outputs(ctx, m, out, feeds(True))


def test_dynamo_bert_layer_at_O2(ctx):
    """The dynamo-exported BERT layer of tools/gen_e2e_models.py (torchlib's
    SDPA with its Reshape/Transpose/Reshape key transpose, HF's position and
    token-type buffers, a Where-built mask) comes out of -O2 as one
    embedding op, Attention, two skip LayerNorms and BiasGelu around the
    six MatMuls and the mask preparation."""
    gen = e2e_generator()
    m = gen.bert_sdpa()
    m.ir_version = 8
    out, _, err = ctx.optimize(m, level=2, extra=["--explain"])
    got = sorted(ops(out))
    for op, k in (("Attention", 1), ("EmbedLayerNormalization", 1), ("SkipLayerNormalization", 2),
                  ("BiasGelu", 1), ("MatMul", 6)):
        assert got.count(op) == k, (op, got, err)
    for op in ("Softmax", "Transpose", "Reshape", "LayerNormalization", "Erf", "Gather"):
        assert op not in got, (op, got)
    assert len(got) <= 25, got
    for b, s in ((2, 7), (1, 12)):
        mask = np.ones((b, s), np.int64)
        mask[-1, s - 3:] = 0
        same_outputs(ctx, m, out, {"input_ids": RNG.integers(0, 100, (b, s)).astype(np.int64),
                                   "attention_mask": mask})


def test_static_sequence_mask_gets_constant_expand(ctx):
    m = attention(seq=5)
    out, _, err = fuse(ctx, m)
    assert "Attention" in ops(out) and "Shape" not in ops(out), (ops(out), err)
    same_outputs(ctx, m, out, feeds(True, 2, 5))


def test_probabilities_read_elsewhere_are_left(ctx):
    m = attention(extra_reader=True)
    out, _, err = fuse(ctx, m)
    assert "Attention" not in ops(out), ops(out)
    assert "attention candidate rejected" in err, err


def test_merge_that_does_not_undo_the_split_is_left(ctx):
    m = attention(mask=False, merge=(0, HD, -1))
    m.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "other"
    out, _, err = fuse(ctx, m)
    assert "Attention" not in ops(out), ops(out)
    assert "merged back" in err, err


def gpt2(layers=1):
    m = e2e_generator().gpt2_decoder(layers=layers)
    m.ir_version = 8  # what tools/gen_e2e_models.py writes; onnx's default is newer than ORT's
    return m


def gpt2_feeds(b, s, past, layers=1):
    mask = np.ones((b, past + s), np.int64)
    if past:
        mask[0, 0] = 0  # a padded cache slot
    f = {"input_ids": RNG.integers(0, 96, (b, s)).astype(np.int64), "attention_mask": mask}
    for i in range(layers):
        for kv in ("key", "value"):
            f[f"past_key_values.{i}.{kv}"] = RNG.standard_normal((b, 4, past, 16)).astype(np.float32)
    return f


def test_decoder_with_cache_and_causal_where(ctx):
    # GPT-2 layout: fused QKV Split, past Concat along the sequence (present
    # outputs), causal Where with a very negative fill, additive padding mask.
    m = gpt2(layers=2)
    # Its Reshape targets come from Shape/Gather/Concat: fold-shapes first.
    out, _, err = ctx.optimize(m, "fold-shapes,eliminate-dead,fuse-attention,eliminate-common,"
                               "eliminate-dead", extra=["--explain"])
    att = [n for n in out.graph.node if n.op_type == "Attention"]
    assert len(att) == 2, (ops(out), err)
    for a in att:
        assert len(a.input) == 6 and a.input[4].startswith("past_key_values")
        assert list(a.output)[1].startswith("present.") and list(a.output)[2].startswith("present.")
    assert "Softmax" not in ops(out)
    for b, s, past in ((2, 5, 0), (2, 3, 6), (1, 1, 9)):
        same_outputs(ctx, m, out, gpt2_feeds(b, s, past, layers=2))


def test_where_with_a_mild_fill_is_left(ctx):
    m = gpt2()
    for init in m.graph.initializer:
        if init.name == "f_min":
            init.CopyFrom(const("f_min", -5.0))
    out, _, err = ctx.optimize(m, "fold-shapes,eliminate-dead,fuse-attention", extra=["--explain"])
    assert "Attention" not in ops(out), ops(out)
    assert "very negative" in err, err


def test_compat_ort_fuses_every_layer(ctx):
    """With --compat ort the layers after the first read ONNX Runtime's
    SkipLayerNormalization, whose sum output (3) shape inference must know:
    wav2vec2's two post-LN layers both get Attention, as without it."""
    m = e2e_generator().wav2vec2()
    m.ir_version = 8
    counts = []
    for compat in ([], ["--compat", "ort"]):
        out, _, err = ctx.optimize(m, level=2, extra=compat + ["--explain"])
        counts.append(ops(out).count("Attention"))
        if compat:
            assert "SkipLayerNormalization" in ops(out) and \
                all(x.domain == "com.microsoft" for x in out.graph.node if x.op_type == "SkipLayerNormalization")
            same_outputs(ctx, m, out, {"input_values": RNG.standard_normal((2, 640)).astype(np.float32)})
    assert counts == [2, 2], (counts, err)
