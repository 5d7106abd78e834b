"""Latency of libtacort vs ONNX Runtime on the same models, same inputs, same
thread count, in one run.

Usage: bench/ort_compare.py [--tacoc build/bin/tacoc] [--workdir build/bench]
                            [--threads 1] [--reps 5] [--models bert_base,resnet50]

Models (generated here with the layouts of tools/gen_e2e_models.py):
  bert_base  12-layer BERT-base encoder (hidden 768, 12 heads, FFN 3072),
             TorchScript opset-14 layout, batch 1, sequence 128
  resnet50   ResNet-50-style CNN (bottleneck blocks 3-4-6-3, Conv+BN+Relu),
             batch 1, 3x224x224
  mobilenetv3  MobileNetV3-Large (torchvision's 15 inverted-residual blocks,
             depthwise 3x3/5x5, squeeze-excitation, HardSwish/HardSigmoid ops,
             BatchNorm folded into Conv bias as torch exports write it),
             batch 1, 3x224x224
  shufflenetv2  ShuffleNetV2 x1.0 (torchvision's: channel split, 3x3 depthwise
             branches, channel shuffles of 2 groups), batch 1, 3x224x224
  wav2vec2_base  wav2vec2-base-shaped speech encoder (tools/gen_e2e_models.py's
             wav2vec2 at hidden 768, 12 heads of 64, 512-channel conv feature
             encoder; 2 of the 12 transformer layers, FFN 1536), 1 s of 16 kHz
             audio (799 frames), batch 1
  whisper_base  Whisper-base-shaped audio encoder (tools/gen_e2e_models.py's
             whisper_encoder at 80 mels, d 512, 8 heads, 6 layers): 30 s of
             log-mel (3000 frames, 1500 positions), batch 1

tacort is timed by `tacoc run --repeat N --threads T` (median of N runs after a warm-up,
inside one process); ONNX Runtime by InferenceSession.run with the same
warm-up and N, intra-op threads set to --threads. Reported: medians, min-max,
and the ratio tacort / ORT (below 1 means tacort is faster)."""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
import gen_e2e_models as g  # noqa: E402


def bert_base(layers=12, hidden=768, heads=12, vocab=30522, max_pos=512):
    """Stacks the encoder layer of gen_e2e_models.bert_block `layers` times."""
    one = g.bert_block(hidden=hidden, heads=heads, vocab=vocab, max_pos=max_pos)
    graph = one.graph
    layer_nodes = [n for n in graph.node]
    # The single-layer model: embeddings + LN0, then one layer. Re-emit the layer
    # `layers` times with prefixed names, chaining last hidden states.
    emb_end = next(i for i, n in enumerate(layer_nodes) if n.output[0] == "ln0_out") + 1
    emb, layer = layer_nodes[:emb_end], layer_nodes[emb_end:-1]  # drop the final Identity
    shared = {"one", "two", "eps", "neg_big", "sqrt_hd", "sqrt2", "half", "zero_i", "one_i",
              "heads_c", "hd_c", "hidden_c", "axes0", "ax12", "attention_mask", "word_emb", "pos_emb"}
    per_layer_init = [i for i in graph.initializer if i.name in
                      {"wq", "wk", "wv", "wo", "bq", "bo", "w_ff1", "b_ff1", "w_ff2", "b_ff2",
                       "ln1_g", "ln1_b", "ln2_g", "ln2_b"}]
    inits = [i for i in graph.initializer if i not in per_layer_init]
    nodes = list(emb)
    prev = "ln0_out"
    rng = np.random.default_rng(0)
    for l in range(layers):
        def rename(name, l=l):
            if name in shared or name == "" or name.startswith("input"):
                return name
            if name == "ln0_out":
                return prev
            return f"L{l}_{name}"
        for n in layer:
            m = onnx.NodeProto()
            m.CopyFrom(n)
            m.input[:] = [rename(x) for x in n.input]
            m.output[:] = [rename(x) for x in n.output]
            nodes.append(m)
        for i in per_layer_init:
            arr = numpy_helper.to_array(i)
            if i.name.startswith("w"):
                arr = (rng.standard_normal(arr.shape) * 0.02).astype(np.float32)
            inits.append(numpy_helper.from_array(arr, f"L{l}_{i.name}"))
        prev = f"L{l}_ln2_out"
    nodes.append(helper.make_node("Identity", [prev], ["last_hidden_state"]))
    out = helper.make_graph(nodes, "bert_base", list(graph.input), list(graph.output), inits)
    model = helper.make_model(out, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def resnet50():
    nodes, inits = [], []
    x = g.conv_bn_relu(nodes, inits, "image", "stem", 3, 64, 7, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin = "pool", 64
    for stage, (blocks, width) in enumerate(((3, 64), (4, 128), (6, 256), (3, 512))):
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            p = f"s{stage}b{b}"
            y = g.conv_bn_relu(nodes, inits, x, f"{p}a", cin, width, 1, 1)
            y = g.conv_bn_relu(nodes, inits, y, f"{p}b", width, width, 3, stride)
            y = g.conv_bn_relu(nodes, inits, y, f"{p}c", width, width * 4, 1, 1, relu=False)
            short = x
            if b == 0:
                short = g.conv_bn_relu(nodes, inits, x, f"{p}d", cin, width * 4, 1, stride, relu=False)
            nodes.append(helper.make_node("Add", [y, short], [f"{p}_sum"]))
            nodes.append(helper.make_node("Relu", [f"{p}_sum"], [f"{p}_out"]))
            x, cin = f"{p}_out", width * 4
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    inits += [g.w("fc_w", 1000, 2048), g.w("fc_b", 1000)]
    nodes.append(helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1))
    return classifier(nodes, inits, "resnet50", 13)


def classifier(nodes, inits, name, opset):
    """The model of an ImageNet classifier's graph: image [1, 3, 224, 224] -> logits [1, 1000]."""
    graph = helper.make_graph(nodes, name,
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 1000])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def conv_act(nodes, inits, x, name, cin, cout, k, stride=1, group=1, act=None):
    """A same-padded Conv with bias (He-scaled random weights) and, when act
    names one, its activation node; returns the output's name."""
    fan = cin // group * k * k
    inits.extend([g.w(f"{name}_w", cout, cin // group, k, k, scale=float(np.sqrt(2.0 / fan))),
                  g.w(f"{name}_b", cout, scale=0.05)])
    nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [f"{name}_c"],
                                  kernel_shape=[k, k], strides=[stride, stride],
                                  pads=[(k - 1) // 2] * 4, group=group))
    if act is None:
        return f"{name}_c"
    nodes.append(helper.make_node(act, [f"{name}_c"], [f"{name}_a"]))
    return f"{name}_a"


def mobilenetv3():
    """torchvision's mobilenet_v3_large as torch.onnx.export (opset 14) writes it."""
    nodes, inits = [], []

    def conv(x, name, cin, cout, k, stride=1, group=1, act=None):
        return conv_act(nodes, inits, x, name, cin, cout, k, stride, group, act)

    def divisible(v, d=8):
        r = max(d, int(v + d / 2) // d * d)
        return r + d if r < 0.9 * v else r

    # kernel, expanded, out, squeeze-excite, activation, stride
    blocks = [(3, 16, 16, 0, "Relu", 1), (3, 64, 24, 0, "Relu", 2), (3, 72, 24, 0, "Relu", 1),
              (5, 72, 40, 1, "Relu", 2), (5, 120, 40, 1, "Relu", 1), (5, 120, 40, 1, "Relu", 1),
              (3, 240, 80, 0, "HardSwish", 2), (3, 200, 80, 0, "HardSwish", 1),
              (3, 184, 80, 0, "HardSwish", 1), (3, 184, 80, 0, "HardSwish", 1),
              (3, 480, 112, 1, "HardSwish", 1), (3, 672, 112, 1, "HardSwish", 1),
              (5, 672, 160, 1, "HardSwish", 2), (5, 960, 160, 1, "HardSwish", 1),
              (5, 960, 160, 1, "HardSwish", 1)]
    x, cin = conv("image", "stem", 3, 16, 3, 2, act="HardSwish"), 16
    for i, (k, exp, out, se, act, stride) in enumerate(blocks):
        p = f"b{i}"
        y = x if exp == cin else conv(x, f"{p}_exp", cin, exp, 1, act=act)
        y = conv(y, f"{p}_dw", exp, exp, k, stride, group=exp, act=act)
        if se:
            sq = divisible(exp // 4)
            nodes.append(helper.make_node("GlobalAveragePool", [y], [f"{p}_gap"]))
            s = conv(f"{p}_gap", f"{p}_fc1", exp, sq, 1, act="Relu")
            s = conv(s, f"{p}_fc2", sq, exp, 1)
            nodes.append(helper.make_node("HardSigmoid", [s], [f"{p}_hsig"], alpha=1.0 / 6))
            nodes.append(helper.make_node("Mul", [f"{p}_hsig", y], [f"{p}_se"]))
            y = f"{p}_se"
        y = conv(y, f"{p}_pw", exp, out, 1)
        if stride == 1 and cin == out:
            nodes.append(helper.make_node("Add", [y, x], [f"{p}_res"]))
            y = f"{p}_res"
        x, cin = y, out
    x = conv(x, "last", cin, 960, 1, act="HardSwish")
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    inits += [g.w("fc1_w", 1280, 960, scale=0.05), g.w("fc1_b", 1280),
              g.w("fc2_w", 1000, 1280, scale=0.05), g.w("fc2_b", 1000)]
    nodes.append(helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["fc1"], transB=1))
    nodes.append(helper.make_node("HardSwish", ["fc1"], ["fc1_hs"]))
    nodes.append(helper.make_node("Gemm", ["fc1_hs", "fc2_w", "fc2_b"], ["logits"], transB=1))
    return classifier(nodes, inits, "mobilenetv3", 14)


def shufflenetv2():
    """torchvision's shufflenet_v2_x1_0 as torch.onnx.export (opset 14, eval:
    BatchNorm folded into the Convs) writes it: x.chunk(2, dim=1) as Split,
    channel_shuffle as Reshape [1, 2, C/2, H, W] -> Transpose (0, 2, 1, 3, 4)
    -> Reshape [1, -1, H, W], x.mean([2, 3]) as ReduceMean."""
    nodes, inits = [], []
    cnt = [0]

    def conv(x, cin, cout, k, stride=1, group=1, relu=True):
        cnt[0] += 1
        return conv_act(nodes, inits, x, f"c{cnt[0]}", cin, cout, k, stride, group,
                        "Relu" if relu else None)

    def shuffle(x, ch, hw, name):
        inits.extend([numpy_helper.from_array(np.array([1, 2, ch // 2, hw, hw], np.int64), f"{name}_s5"),
                      numpy_helper.from_array(np.array([1, -1, hw, hw], np.int64), f"{name}_s4")])
        nodes.append(helper.make_node("Reshape", [x, f"{name}_s5"], [f"{name}_5"]))
        nodes.append(helper.make_node("Transpose", [f"{name}_5"], [f"{name}_t"], perm=[0, 2, 1, 3, 4]))
        nodes.append(helper.make_node("Reshape", [f"{name}_t", f"{name}_s4"], [name]))
        return name

    x = conv("image", 3, 24, 3, 2)
    nodes.append(helper.make_node("MaxPool", [x], ["pool"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    x, cin, hw = "pool", 24, 56
    for stage, (repeats, out) in enumerate(((4, 116), (8, 232), (4, 464))):
        half = out // 2
        for r in range(repeats):
            p = f"s{stage}u{r}"
            if r == 0:
                b1 = conv(conv(x, cin, cin, 3, 2, group=cin, relu=False), cin, half, 1)
                b2 = conv(x, cin, half, 1)
                hw //= 2
                b2 = conv(conv(b2, half, half, 3, 2, group=half, relu=False), half, half, 1)
            else:
                inits.append(numpy_helper.from_array(np.array([half, half], np.int64), f"{p}_split"))
                nodes.append(helper.make_node("Split", [x, f"{p}_split"], [f"{p}_x1", f"{p}_x2"], axis=1))
                b1 = f"{p}_x1"
                b2 = conv(conv(conv(f"{p}_x2", half, half, 1), half, half, 3, group=half, relu=False),
                          half, half, 1)
            nodes.append(helper.make_node("Concat", [b1, b2], [f"{p}_cat"], axis=1))
            x, cin = shuffle(f"{p}_cat", out, hw, f"{p}_out"), out
    x = conv(x, cin, 1024, 1)
    nodes.append(helper.make_node("ReduceMean", [x], ["mean"], axes=[2, 3], keepdims=0))
    inits += [g.w("fc_w", 1000, 1024, scale=0.05), g.w("fc_b", 1000)]
    nodes.append(helper.make_node("Gemm", ["mean", "fc_w", "fc_b"], ["logits"], transB=1))
    return classifier(nodes, inits, "shufflenetv2", 14)


def wav2vec2_base():
    m = g.wav2vec2(hidden=768, heads=12, conv_dim=512)
    m.ir_version = 8
    return m


def whisper_base():
    m = g.whisper_encoder(n_mels=80, d=512, heads=8, layers=6, max_ctx=1500)
    m.ir_version = 8
    return m


MODELS = {"bert_base": bert_base, "resnet50": resnet50, "mobilenetv3": mobilenetv3,
          "shufflenetv2": shufflenetv2,
          "wav2vec2_base": wav2vec2_base, "whisper_base": whisper_base}

# --shape arguments for `tacoc optimize --tune` (the models' symbolic dims)
TUNE_SHAPES = {"bert_base": ["--shape", "seq=128"], "wav2vec2_base": ["--shape", "samples=16000"],
               "whisper_base": ["--shape", "frames=3000"]}


def inputs_for(name, rng):
    if name == "bert_base":
        return {"input_ids": rng.integers(0, 30522, (1, 128)).astype(np.int64),
                "attention_mask": np.ones((1, 128), np.int64)}
    if name == "wav2vec2_base":
        return {"input_values": (rng.standard_normal((1, 16000)) * 0.1).astype(np.float32)}
    if name == "whisper_base":
        return {"input_features": (rng.standard_normal((1, 80, 3000)) * 0.5).astype(np.float32)}
    return {"image": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", default="build/bin/tacoc")
    ap.add_argument("--workdir", default="build/bench")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--models", default="bert_base,resnet50")
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rng = np.random.default_rng(0)
    print(f"threads {a.threads}, {a.reps} timed runs after one warm-up; medians (min-max) in ms")
    for name in a.models.split(","):
        path = os.path.join(a.workdir, f"{name}.onnx")
        if not os.path.exists(path):
            onnx.save(MODELS[name](), path)
        feeds = inputs_for(name, rng)
        args = [a.tacoc, "run", path, "--repeat", str(a.reps), "--threads", str(a.threads)]
        for k, v in feeds.items():
            f = os.path.join(a.workdir, f"{name}_{k}.npy")
            np.save(f, v)
            args += ["--input", f"{k}={f}"]
        proc = subprocess.run(args, capture_output=True, text=True)
        m = re.search(r"latency: median ([\d.]+) ms, min ([\d.]+), max ([\d.]+)", proc.stdout)
        if proc.returncode or not m:
            print(f"{name}: tacort failed: {proc.stderr.strip()}")
            continue
        t_med, t_min, t_max = map(float, m.groups())
        so = ort.SessionOptions()
        so.intra_op_num_threads = a.threads
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        sess.run(None, feeds)
        times = []
        for _ in range(a.reps):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1e3)
        o_med = statistics.median(times)
        print(f"{name:10s} tacort {t_med:9.1f} ({t_min:.1f}-{t_max:.1f})   "
              f"ORT {o_med:8.1f} ({min(times):.1f}-{max(times):.1f})   ratio {t_med / o_med:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
