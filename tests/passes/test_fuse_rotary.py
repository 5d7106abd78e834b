"""fuse-rotary: HF rotate_half rotary embeddings to RotaryEmbedding (opset 23)."""

import numpy as np
from onnx import TensorProto, helper

from passlib import const, e2e_generator, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(11)
H, D, MAXPOS = 2, 8, 32
HD = H * D
INT64_MAX = np.iinfo(np.int64).max


def rotary(cos_form="computed", split_heads=True, half=D // 2, table_halves_equal=True,
           scale=None, extra_reader=False, sliced_table=False, opset=14, with_sin_form=None):
    """q3 [B, S, H*D] (or q4 [B, H, S, D]) rotated by position_ids [B, S] as HF's
    apply_rotary_pos_emb does: q * cos + rotate_half(q) * sin."""
    n = helper.make_node
    nodes, inits = [], [const("s0", [0], np.int64), const("s_half", [half], np.int64),
                        const("s_end", [INT64_MAX], np.int64), const("ax_last", [-1], np.int64),
                        const("ax1", [1], np.int64)]
    inputs = [tensor_in("position_ids", ["batch", "seq"], TensorProto.INT64)]
    if split_heads:
        inits.append(const("split", [0, 0, H, D], np.int64))
        inputs.insert(0, tensor_in("q3", ["batch", "seq", HD]))
        nodes += [n("Reshape", ["q3", "split"], ["qr"]),
                  n("Transpose", ["qr"], ["q"], perm=[0, 2, 1, 3])]
    else:
        inputs.insert(0, tensor_in("q", ["batch", H, "seq", D]))
    inv_freq = 1.0 / (10000 ** (np.arange(0, D, 2) / D))
    for trig, form in (("Cos", cos_form), ("Sin", with_sin_form or cos_form)):
        t = trig.lower()
        if form == "computed":
            # HF LlamaRotaryEmbedding: inv_freq[None, :, None] @ position_ids[:, None, :]
            if "inv_freq" not in [i.name for i in inits]:
                inits += [const("inv_freq", inv_freq.reshape(1, D // 2, 1)),
                          const("attn_scaling", 1.0 if scale is None else scale)]
                nodes += [n("Unsqueeze", ["position_ids", "ax1"], ["pos_u"]),
                          n("Cast", ["pos_u"], ["pos_f"], to=TensorProto.FLOAT),
                          n("MatMul", ["inv_freq", "pos_f"], ["freqs_t"]),
                          n("Transpose", ["freqs_t"], ["freqs"], perm=[0, 2, 1]),
                          n("Concat", ["freqs", "freqs"], ["emb"], axis=-1)]
            nodes += [n(trig, ["emb"], [f"{t}_raw"]),
                      n("Mul", [f"{t}_raw", "attn_scaling"], [f"{t}_s"]),
                      n("Cast", [f"{t}_s"], [f"{t}3"], to=TensorProto.FLOAT)]
        else:
            ang = np.arange(MAXPOS)[:, None] * inv_freq[None, :]
            tab = np.concatenate([ang, ang], -1)
            tab = np.cos(tab) if trig == "Cos" else np.sin(tab)
            if not table_halves_equal:
                tab[:, -1] += 0.5
            inits.append(const(f"{t}_cached", tab))
            src = f"{t}_cached"
            if sliced_table:
                if t == "cos":
                    inits.append(const("rows", [24], np.int64))
                nodes.append(n("Slice", [src, "s0", "rows", "s0"], [f"{t}_rows"]))
                src = f"{t}_rows"
            nodes.append(n("Gather", [src, "position_ids"], [f"{t}3"], axis=0))
        nodes.append(n("Unsqueeze", [f"{t}3", "ax1"], [f"{t}4"]))
    nodes += [n("Slice", ["q", "s0", "s_half", "ax_last"], ["x1"]),
              n("Slice", ["q", "s_half", "s_end", "ax_last"], ["x2"]),
              n("Neg", ["x2"], ["nx2"]),
              n("Concat", ["nx2", "x1"], ["rot"], axis=-1),
              n("Mul", ["q", "cos4"], ["qc"]),
              n("Mul", ["rot", "sin4"], ["rs"]),
              n("Add", ["qc", "rs"], ["y"])]
    outputs = [tensor_in("y", ["batch", H, "seq", D])]
    if extra_reader:
        outputs.append(tensor_in("rot", ["batch", H, "seq", D]))
    return model(nodes, inputs, outputs, inits, opset=opset)


def feeds(split_heads=True, b=2, s=5, start=0):
    q = rand(RNG, b, s, HD) if split_heads else rand(RNG, b, H, s, D)
    pos = np.stack([np.arange(start + i, start + i + s) for i in range(b)]).astype(np.int64)
    return {"q3" if split_heads else "q": q, "position_ids": pos}


def fused(ctx, m):
    out, _, err = ctx.optimize(m, "fuse-rotary,eliminate-dead", extra=["--explain"])
    return out, err


def rotary_nodes(m):
    return [nd for nd in m.graph.node if nd.op_type == "RotaryEmbedding"]


def test_computed_cos_sin_before_the_head_split(ctx):
    m = rotary(scale=1.0)
    out, err = fused(ctx, m)
    r = rotary_nodes(out)
    assert len(r) == 1, (ops(out), err)
    assert r[0].input[0] == "q3" and len(r[0].input) == 3, r[0]
    assert {a.name: a.i for a in r[0].attribute} == {"num_heads": H}, r[0]
    # the head split now follows the rotation; the full-width angles are gone
    assert ops(out)[-2:] == ["Reshape", "Transpose"], ops(out)
    assert "Neg" not in ops(out) and "Concat" not in ops(out), ops(out)
    assert [o.version for o in out.opset_import if o.domain in ("", "ai.onnx")] == [23]
    for start in (0, 7):
        same_outputs(ctx, m, out, feeds(start=start))


def test_attention_scaling_is_kept(ctx):
    m = rotary(scale=0.75)
    out, err = fused(ctx, m)
    assert len(rotary_nodes(out)) == 1, (ops(out), err)
    same_outputs(ctx, m, out, feeds())


def test_four_d_input(ctx):
    m = rotary(split_heads=False)
    out, err = fused(ctx, m)
    r = rotary_nodes(out)
    assert len(r) == 1 and r[0].input[0] == "q" and not r[0].attribute, (ops(out), err)
    same_outputs(ctx, m, out, feeds(split_heads=False))


def test_cached_tables_gathered_by_position(ctx):
    for sliced in (False, True):
        m = rotary(cos_form="table", sliced_table=sliced)
        out, err = fused(ctx, m)
        r = rotary_nodes(out)
        assert len(r) == 1 and r[0].input[3] == "position_ids", (ops(out), err)
        caches = {i.name: i for i in out.graph.initializer}
        assert list(caches[r[0].input[1]].dims) == [MAXPOS, D // 2], caches[r[0].input[1]].dims
        assert "Gather" not in ops(out), ops(out)
        same_outputs(ctx, m, out, feeds(start=3))


def test_table_with_unequal_halves_is_left(ctx):
    m = rotary(cos_form="table", table_halves_equal=False)
    out, err = fused(ctx, m)
    assert not rotary_nodes(out), ops(out)
    # the halves are compared only when building the cache: the match itself
    # must reject it, so nothing half-rewritten is left
    assert ops(out) == ops(m), ops(out)


def test_wrong_halves_are_left(ctx):
    m = rotary(half=D // 2 - 1)
    out, err = fused(ctx, m)
    assert not rotary_nodes(out) and "halves" in err, (ops(out), err)


def test_rotate_half_read_elsewhere_is_left(ctx):
    m = rotary(extra_reader=True)
    out, err = fused(ctx, m)
    assert not rotary_nodes(out) and "outside the rotation" in err, (ops(out), err)


def test_mixed_cos_and_sin_forms_are_left(ctx):
    m = rotary(cos_form="computed", with_sin_form="table")
    out, err = fused(ctx, m)
    assert not rotary_nodes(out) and "different forms" in err, (ops(out), err)


def test_llama_decoder_at_O2(ctx):
    """The LLaMA-style decoder of tools/gen_e2e_models.py (TorchScript export:
    rotary cos/sin computed from position_ids, view(B, S, -1, D) head
    splits, decomposed RMSNorm, SwiGLU) comes out of -O2 with the rotations
    of Q and K before their head splits, so that attention fuses too."""
    m = e2e_generator().llama()
    m.ir_version = 8
    out, _, err = ctx.optimize(m, level=2, extra=["--explain"])
    got = sorted(ops(out))
    for op, k in (("RotaryEmbedding", 4), ("Attention", 2), ("RMSNormalization", 5),
                  ("QuickGelu", 2)):
        assert got.count(op) == k, (op, got, err)
    for op in ("Neg", "Slice", "Softmax", "ReduceMean"):
        assert op not in got, (op, got)
    assert len(got) <= 60, (len(got), got)
    for b, s, start in ((2, 6, 0), (1, 9, 4)):
        mask = np.ones((b, s), np.int64)
        mask[-1, s - 2:] = 0
        pos = np.tile(np.arange(start, start + s, dtype=np.int64), (b, 1))
        same_outputs(ctx, m, out, {"input_ids": RNG.integers(0, 96, (b, s)).astype(np.int64),
                                   "attention_mask": mask, "position_ids": pos})
