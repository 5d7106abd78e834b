"""Channels-last values between convolutions (runtime/layout.c): libtacort
with its layout choice on (the default) and off (TACORT_LAYOUT=plain)
against ONNX Runtime, on small models that reach every way a node runs
with a channels-last operand:

  se_block   Conv -> Relu -> MaxPool -> depthwise Conv -> HardSwish -> squeeze-excite
             (GlobalAveragePool, 1x1 Convs, HardSigmoid, Mul by a per-channel
             scale) -> 1x1 Conv -> Add with the plain graph input (converted)
             -> Conv (graph output: plain); also after tacoc optimize -O2
  broadcast  two channels-last Conv outputs added with a broadcast
             ([1,C,H,W] + [1,C,1,W]: converted), Sub of a [C,1,1] constant,
             Div of a [1,C,1,1] constant by the image (swapped operands), Mul
             by a scalar, a Conv output that is also a graph output (plain)
  fp16       float16 Convs and MaxPool (libtacort's reference kernels, the
             executor or the convolution converting orders):
             compared with the plain run bit for bit
  cast_chain Casts to and from bfloat16 between Convs (unary: the values
             stay channels-last): compared with the plain run within 2^-6
  big_pool   a 9x9 MaxPool between Convs (81-vector windows inside, fewer
             at the borders)
  dense      DenseNet's block: Concat over channels of a Conv output and the
             plain graph input (made channels-last), inference
             BatchNormalization -> Relu -> Convs (one with weights computed
             at load), a second Concat of the first
             and a Conv output that an AveragePool also reads (its output a
             graph output: converted after the pooling),
             BatchNormalization -> Relu -> Conv
  lrn        LRN between Convs and a MaxPool (windows of 5, 4 and 9 over
             20 and 6 channels): against the plain run bit for bit
  shuffle    (and shuffle_fp16, against the plain run bit for bit)
             ShuffleNet's units: channel shuffles (Reshape -> Transpose ->
             Reshape) of 2, 4, 8 and 3 groups between grouped and depthwise
             Convs, a channel Split in three (one part a graph output), AveragePool between Convs, Reshapes that keep the bytes
             (positions merged) and that do not (converted), pools read by
             graph outputs
  se_bf16    se_block in bfloat16 (bfloat16 convolutions, MaxPool,
             GlobalAveragePool and the per-channel Mul on widened channel
             vectors, the scale first): compared with the plain run within
             2^-6 relative (the two orders sum the average pool's float32
             values differently); the Add with the Cast of x (rank unknown
             to the choice) keeps its operand and result plain

Also: metadata ai.tacoc.kernel.layout = plain turns the choice off, and
`tacoc optimize --tune fast` measures both ways and records plain only when
it won (the report's tuning.layout and the metadata agree).

Each case checks the number of channels-last values `tacoc run` reports
(so a choice that silently stops happening fails) and every output within
|tacort - ort| <= 1e-4 |ort| + 1e-5. Ends with "layout: N passed, N failed".

Usage: layout.py --tacoc PATH"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(7)


def tensor(name, v, dtype):
    """An initializer of v's values: numpy's dtype, or "bfloat16" (rounded by onnx)."""
    if dtype == "bfloat16":
        return helper.make_tensor(name, TensorProto.BFLOAT16, v.shape,
                                  v.astype(np.float32).ravel().tolist())
    return numpy_helper.from_array(v.astype(dtype), name)


def w(name, *shape, dtype=np.float32):
    fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    return tensor(name, RNG.standard_normal(shape) / np.sqrt(fan), dtype)


def conv(nodes, inits, x, name, cin, cout, k, group=1, dtype=np.float32, pads=None):
    inits += [w(f"{name}_w", cout, cin // group, k, k, dtype=dtype),
              tensor(f"{name}_b", RNG.standard_normal(cout) * 0.1, dtype)]
    nodes.append(helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name],
                                  kernel_shape=[k, k], group=group,
                                  pads=pads if pads is not None else [k // 2] * 4))
    return name


def model(g):
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8  # what the pinned ONNX Runtime reads
    return m


def se_block(bf16=False):
    """bf16: bfloat16 values and weights between a Cast of x and one of the
    output, the per-channel scale as Mul's first operand."""
    nodes, inits = [], []
    dt, x, out = ("bfloat16", "xb", "out_b") if bf16 else (np.float32, "x", "out")
    if bf16:
        nodes.append(helper.make_node("Cast", ["x"], [x], to=TensorProto.BFLOAT16))
    y = conv(nodes, inits, x, "c1", 8, 16, 3, dtype=dt)
    nodes.append(helper.make_node("Relu", [y], ["r1"]))
    nodes.append(helper.make_node("MaxPool", ["r1"], ["mp"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    y = conv(nodes, inits, "mp", "dw", 16, 16, 3, group=16, dtype=dt)
    nodes.append(helper.make_node("HardSwish", [y], ["hs"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["hs"], ["gap"]))
    s = conv(nodes, inits, "gap", "fc1", 16, 4, 1, dtype=dt)
    nodes.append(helper.make_node("Relu", [s], ["fc1_r"]))
    s = conv(nodes, inits, "fc1_r", "fc2", 4, 16, 1, dtype=dt)
    nodes.append(helper.make_node("HardSigmoid", [s], ["scale"], alpha=1.0 / 6))
    nodes.append(helper.make_node("Mul", ["scale", "hs"] if bf16 else ["hs", "scale"], ["se"]))
    y = conv(nodes, inits, "se", "pw", 16, 8, 1, dtype=dt)
    nodes.append(helper.make_node("Add", [y, x], ["res"]))
    conv(nodes, inits, "res", out, 8, 8, 3, dtype=dt)
    if bf16:
        nodes.append(helper.make_node("Cast", [out], ["out"], to=TensorProto.FLOAT))
    g = helper.make_graph(nodes, "se_block",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 12, 12])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 8, 12, 12])],
                          inits)
    return model(g)


def broadcast():
    nodes, inits = [], []
    a = conv(nodes, inits, "x", "a", 4, 4, 3)
    b = conv(nodes, inits, "y", "b", 4, 4, 1)  # [1, 4, 1, 6]
    nodes.append(helper.make_node("Add", [a, b], ["ab"]))
    inits += [numpy_helper.from_array(RNG.standard_normal((4, 1, 1)).astype(np.float32), "c3"),
              numpy_helper.from_array((RNG.random((1, 4, 1, 1)) + 1).astype(np.float32), "c4"),
              numpy_helper.from_array(np.array(0.5, np.float32), "half")]
    nodes.append(helper.make_node("Sub", ["ab", "c3"], ["sub"]))
    nodes.append(helper.make_node("Abs", ["sub"], ["abs"]))
    nodes.append(helper.make_node("Add", ["abs", "half"], ["pos"]))
    nodes.append(helper.make_node("Div", ["c4", "pos"], ["div"]))
    nodes.append(helper.make_node("Mul", ["div", "half"], ["mul"]))
    conv(nodes, inits, "mul", "out", 4, 4, 3)
    g = helper.make_graph(nodes, "broadcast",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 6, 6]),
                           helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 6])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 6, 6]),
                           helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4, 6, 6])],
                          inits)
    return model(g)


def fp16():
    nodes, inits = [], []
    nodes.append(helper.make_node("Cast", ["x"], ["xh"], to=TensorProto.FLOAT16))
    y = conv(nodes, inits, "xh", "h1", 3, 8, 3, dtype=np.float16)
    nodes.append(helper.make_node("Relu", [y], ["h1r"]))
    nodes.append(helper.make_node("MaxPool", ["h1r"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]))
    y = conv(nodes, inits, "mp", "h2", 8, 8, 3, group=2, dtype=np.float16)
    conv(nodes, inits, y, "h3", 8, 4, 1, dtype=np.float16)
    nodes.append(helper.make_node("Cast", ["h3"], ["out"], to=TensorProto.FLOAT))
    g = helper.make_graph(nodes, "fp16",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 9, 7])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4, 4, 3])],
                          inits)
    return model(g)


def same_shape_model(nodes, inits, name, shape):
    """A float32 graph input x and output out, both of the given shape."""
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "out")]
    return model(helper.make_graph(nodes, name, io[:1], io[1:], inits))


def big_pool():
    """MaxPool windows of 81 channel vectors (over the 64 folded in one pass)
    and of 9 at the borders, between channels-last Convs."""
    nodes, inits = [], []
    y = conv(nodes, inits, "x", "c1", 4, 8, 3)
    nodes.append(helper.make_node("MaxPool", [y], ["mp"], kernel_shape=[9, 9], pads=[4, 4, 4, 4]))
    conv(nodes, inits, "mp", "out", 8, 4, 1)
    return same_shape_model(nodes, inits, "big_pool", [1, 4, 11, 10])


def dense():
    nodes, inits = [], []
    c0 = conv(nodes, inits, "x", "c0", 4, 12, 3)
    nodes.append(helper.make_node("Concat", [c0, "x"], ["cat1"], axis=1))

    def bn(x, name, ch):
        inits.extend([numpy_helper.from_array((RNG.random(ch) + 0.5).astype(np.float32), f"{name}_s"),
                      numpy_helper.from_array(RNG.standard_normal(ch).astype(np.float32), f"{name}_b"),
                      numpy_helper.from_array(RNG.standard_normal(ch).astype(np.float32), f"{name}_m"),
                      numpy_helper.from_array((RNG.random(ch) + 0.5).astype(np.float32), f"{name}_v")])
        nodes.append(helper.make_node("BatchNormalization", [x] + [f"{name}_{k}" for k in "sbmv"],
                                      [name], epsilon=1e-3))
        return name

    nodes.append(helper.make_node("Relu", [bn("cat1", "bn1", 16)], ["r1"]))
    c1 = conv(nodes, inits, "r1", "c1", 16, 8, 1)
    # c1's weights computed when the session is made (a Neg of the initializer)
    nodes.insert(len(nodes) - 1, helper.make_node("Neg", ["c1_w"], ["c1_nw"]))
    nodes[-1].input[1] = "c1_nw"
    c2 = conv(nodes, inits, c1, "c2", 8, 8, 3)
    nodes.append(helper.make_node("Concat", ["cat1", c2], ["cat2"], axis=-3))
    nodes.append(helper.make_node("Relu", [bn("cat2", "bn2", 24)], ["r2"]))
    conv(nodes, inits, "r2", "out", 24, 4, 1)
    nodes.append(helper.make_node("AveragePool", [c2], ["pool"], kernel_shape=[2, 2], strides=[2, 2]))
    g = helper.make_graph(nodes, "dense",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 10, 9])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4, 10, 9]),
                           helper.make_tensor_value_info("pool", TensorProto.FLOAT, [1, 8, 5, 4])],
                          inits)
    return model(g)


def shuffle(dt=np.float32):
    """ShuffleNet's units: grouped 1x1 Convs with channel shuffles
    (Reshape [N, G, C/G, H, W] -> Transpose (0, 2, 1, 3, 4) -> Reshape) of
    2, 4, 8 and 3 groups (the AVX-512 interleavings and the element loop;
    channel blocks with and without a 16-lane tail; one shape with a 0 and
    a -1), a depthwise Conv, AveragePool (count_include_pad) between
    Convs, a Reshape that does not keep H and W (converted), and pools
    whose outputs are graph outputs (converted after pooling); a Split over
    channels in three (ShuffleNetV2's channel split), one part a graph
    output (plain); ReduceMeans over H and W with and without keepdims
    (float32 only). dt float16: the same graph in float16 (libtacort's
    half kernels; channel blocks of 2-byte elements)."""
    et = TensorProto.FLOAT16 if dt == np.float16 else TensorProto.FLOAT
    nodes, inits = [], []

    def shuf(x, name, groups, ch, shape5=None):
        s5 = shape5 or [1, groups, ch // groups, 10, 9]
        inits.extend([numpy_helper.from_array(np.array(s5, np.int64), f"{name}_s5"),
                      numpy_helper.from_array(np.array([1, ch, 10, 9], np.int64), f"{name}_s4")])
        nodes.append(helper.make_node("Reshape", [x, f"{name}_s5"], [f"{name}_5"]))
        nodes.append(helper.make_node("Transpose", [f"{name}_5"], [f"{name}_t"], perm=[0, 2, 1, 3, 4]))
        nodes.append(helper.make_node("Reshape", [f"{name}_t", f"{name}_s4"], [name]))
        return name

    y = conv(nodes, inits, "x", "c1", 8, 12, 1, group=2, dtype=dt)
    nodes.append(helper.make_node("Relu", [y], ["r1"]))
    y = shuf("r1", "sh1", 2, 12, shape5=[0, 2, 6, 10, -1])
    y = conv(nodes, inits, y, "dw", 12, 12, 3, group=12, dtype=dt)
    # ShuffleNetV2's channel split: three parts, one of them a graph output (plain)
    inits.append(numpy_helper.from_array(np.array([4, 5, 3], np.int64), "split_s"))
    nodes.append(helper.make_node("Split", [y, "split_s"], ["s_a", "s_b", "s_c"], axis=1))
    nodes.append(helper.make_node("Relu", ["s_b"], ["s_br"]))
    nodes.append(helper.make_node("Concat", [conv(nodes, inits, "s_a", "sa", 4, 4, 1, dtype=dt), "s_br",
                                             conv(nodes, inits, "s_c", "sc", 3, 3, 1, dtype=dt)], ["cat"], axis=1))
    y = shuf(conv(nodes, inits, "cat", "c2", 12, 80, 1, group=4, dtype=dt), "sh2", 4, 80)
    y = shuf(conv(nodes, inits, y, "c3", 80, 16, 1, dtype=dt), "sh3", 8, 16)
    nodes.append(helper.make_node("AveragePool", [y], ["pool2"], kernel_shape=[2, 2], strides=[2, 2],
                                  pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("MaxPool", [y], ["mpool"], kernel_shape=[3, 3], strides=[2, 2]))
    y = shuf(conv(nodes, inits, y, "c4", 16, 15, 1, dtype=dt), "sh4", 3, 15)
    nodes.append(helper.make_node("AveragePool", [y], ["ap"], kernel_shape=[3, 3], strides=[2, 2],
                                  pads=[1, 1, 1, 1], count_include_pad=1))
    y = conv(nodes, inits, "ap", "c5", 15, 8, 3, dtype=dt)
    # positions merged (the same bytes), and channels and positions regrouped (converted)
    inits += [numpy_helper.from_array(np.array([1, 8, 25, 1], np.int64), "flat_s"),
              numpy_helper.from_array(np.array([1, 40, 5, 1], np.int64), "regroup_s")]
    nodes.append(helper.make_node("Reshape", [y, "flat_s"], ["flat"]))
    nodes.append(helper.make_node("Reshape", [y, "regroup_s"], ["regroup"]))
    conv(nodes, inits, "flat", "out", 8, 8, 1, dtype=dt)
    conv(nodes, inits, "regroup", "out2", 40, 8, 1, dtype=dt)
    means = []
    if dt == np.float32:  # ReduceMean over H and W runs as GlobalAveragePool
        nodes.append(helper.make_node("ReduceMean", [y], ["mean"], axes=[2, 3], keepdims=0))
        nodes.append(helper.make_node("ReduceMean", [y], ["mean4"], axes=[-1, -2]))
        means = [helper.make_tensor_value_info("mean", et, [1, 8]),
                 helper.make_tensor_value_info("mean4", et, [1, 8, 1, 1])]
    g = helper.make_graph(nodes, "shuffle",
                          [helper.make_tensor_value_info("x", et, [1, 8, 10, 9])],
                          [helper.make_tensor_value_info("out", et, [1, 8, 25, 1]),
                           helper.make_tensor_value_info("out2", et, [1, 8, 5, 1]),
                           helper.make_tensor_value_info("pool2", et, [1, 16, 6, 5]),
                           helper.make_tensor_value_info("mpool", et, [1, 16, 4, 4]),
                           helper.make_tensor_value_info("s_c", et, [1, 3, 10, 9])] + means,
                          inits)
    return model(g)


def lrn():
    """GoogLeNet's and AlexNet's LRN between Convs (odd and even windows, one
    wider than the channels), channels-last: the plain kernel's arithmetic,
    so compared with the plain run bit for bit."""
    nodes, inits = [], []
    y = conv(nodes, inits, "x", "c1", 4, 20, 3)
    nodes.append(helper.make_node("Relu", [y], ["r1"]))
    nodes.append(helper.make_node("LRN", ["r1"], ["n1"], size=5, alpha=2e-2, beta=0.75, bias=1.0))
    nodes.append(helper.make_node("MaxPool", ["n1"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("LRN", ["mp"], ["n2"], size=4, alpha=0.3, beta=0.5, bias=2.0))
    y = conv(nodes, inits, "n2", "c2", 20, 6, 1)
    nodes.append(helper.make_node("LRN", [y], ["n3"], size=9, alpha=1e-3, beta=0.75, bias=1.0))
    conv(nodes, inits, "n3", "out", 6, 4, 1)
    io = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 14, 11]),
          helper.make_tensor_value_info("out", TensorProto.FLOAT, [2, 4, 7, 5])]
    return model(helper.make_graph(nodes, "lrn", io[:1], io[1:], inits))


def cast_chain():
    """Casts between convolutions (a mixed-precision model's region
    boundaries): float32 Conv, Cast to bfloat16, bfloat16 Conv, Cast back,
    float32 Conv; the Casts keep the values channels-last."""
    nodes, inits = [], []
    y = conv(nodes, inits, "x", "c1", 4, 16, 3)
    nodes.append(helper.make_node("Cast", [y], ["h"], to=TensorProto.BFLOAT16))
    y = conv(nodes, inits, "h", "c2", 16, 16, 3, group=4, dtype="bfloat16")
    nodes.append(helper.make_node("Cast", [y], ["f"], to=TensorProto.FLOAT))
    conv(nodes, inits, "f", "out", 16, 4, 1)
    return same_shape_model(nodes, inits, "cast_chain", [1, 4, 9, 10])


def run(tacoc, path, feeds, tmp, env_extra):
    shutil.rmtree(os.path.join(tmp, "out"), ignore_errors=True)
    args = [tacoc, "run", path, "--output-dir", os.path.join(tmp, "out")]
    for k, v in feeds.items():
        f = os.path.join(tmp, f"{k}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    env = dict(os.environ, **env_extra)
    p = subprocess.run(args, capture_output=True, text=True, env=env)
    if p.returncode:
        raise RuntimeError(p.stderr.strip())
    m = re.search(r"(\d+) values between convolutions kept channels-last", p.stderr)
    outs = {f[:-4]: np.load(os.path.join(tmp, "out", f)) for f in os.listdir(os.path.join(tmp, "out"))}
    return (int(m.group(1)) if m else 0), outs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    a = ap.parse_args()
    passed = failed = 0
    # model, inputs, channels-last values expected, compare with ORT (or
    # with the plain run: bit for bit, or within a relative bound)
    se_x = {"x": RNG.standard_normal((1, 8, 12, 12)).astype(np.float32)}
    cases = [("se_block", se_block(), se_x, 12, True),
             ("broadcast", broadcast(), {"x": RNG.standard_normal((1, 4, 6, 6)).astype(np.float32),
                                         "y": RNG.standard_normal((1, 4, 1, 6)).astype(np.float32)},
              7, True),
             ("fp16", fp16(), {"x": RNG.standard_normal((2, 3, 9, 7)).astype(np.float32)}, 4, False),
             ("se_bf16", se_block(bf16=True), se_x, 10, 2.0 ** -6),
             ("big_pool", big_pool(), {"x": RNG.standard_normal((1, 4, 11, 10)).astype(np.float32)}, 2,
              True),
             ("cast_chain", cast_chain(), {"x": RNG.standard_normal((1, 4, 9, 10)).astype(np.float32)},
              4, 2.0 ** -6),
             ("dense", dense(), {"x": RNG.standard_normal((1, 4, 10, 9)).astype(np.float32)}, 9, True),
             ("shuffle", shuffle(), {"x": RNG.standard_normal((1, 8, 10, 9)).astype(np.float32)}, 28,
              True),
             ("lrn", lrn(), {"x": RNG.standard_normal((2, 4, 14, 11)).astype(np.float32)}, 7, False),
             ("shuffle_fp16", shuffle(np.float16),
              {"x": RNG.standard_normal((1, 8, 10, 9)).astype(np.float16)}, 28, False)]
    with tempfile.TemporaryDirectory() as tmp:
        se_path = os.path.join(tmp, "se_block.onnx")
        onnx.save(cases[0][1], se_path)
        opt = os.path.join(tmp, "se_block.O2.onnx")
        p = subprocess.run([a.tacoc, "optimize", se_path, "-O2", "-o", opt], capture_output=True, text=True)
        if p.returncode:
            print(f"FAIL se_block -O2: {p.stderr.strip()}")
            failed += 1
        else:
            # -O2 folds the activations into the Convs and the Add of the plain
            # input into the last but one (ConvAdd: its Z and output stay plain)
            cases.append(("se_block -O2", onnx.load(opt), se_x, 6, True))
        # the metadata that asks for plain values, and the tuner's layout decision
        plain_meta = onnx.load(se_path)
        onnx.helper.set_model_props(plain_meta, {"ai.tacoc.kernel.layout": "plain"})
        cases.append(("se_block meta plain", plain_meta, se_x, 0, True))
        tuned, report = os.path.join(tmp, "se_block.tuned.onnx"), os.path.join(tmp, "r.json")
        p = subprocess.run([a.tacoc, "optimize", se_path, "-O2", "--tune", "fast", "-o", tuned,
                            "--report", report], capture_output=True, text=True)
        lay = json.load(open(report))["tuning"]["layout"] if p.returncode == 0 else None
        meta = {e.key: e.value for e in onnx.load(tuned).metadata_props} if lay else {}
        if not lay or lay["channels_last_values"] != 6 or \
                (meta.get("ai.tacoc.kernel.layout") == "plain") != (lay["chosen"] == "plain"):
            print(f"FAIL tuner layout decision: {lay}, metadata {meta}, {p.stderr.strip()[-300:]}")
            failed += 1
        else:
            print(f"ok   tuner layout decision: {lay}")
            passed += 1
            cases.append(("se_block tuned", onnx.load(tuned), se_x, 0 if lay["chosen"] == "plain" else 6,
                          True))
        for name, model, feeds, want_count, vs_ort in cases:
            path = os.path.join(tmp, name.replace(" ", "_") + ".onnx")
            onnx.save(model, path)
            try:
                count, got = run(a.tacoc, path, feeds, tmp, {})
                plain_count, plain = run(a.tacoc, path, feeds, tmp, {"TACORT_LAYOUT": "plain"})
            except RuntimeError as e:
                print(f"FAIL {name}: {e}")
                failed += 1
                continue
            ok = True
            if count != want_count or plain_count != 0:
                print(f"FAIL {name}: {count} channels-last values (want {want_count}), "
                      f"{plain_count} with TACORT_LAYOUT=plain (want 0)")
                ok = False
            if vs_ort is True:
                sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                names = [o.name for o in sess.get_outputs()]
                want = dict(zip(names, sess.run(None, feeds)))
            else:
                want = plain
            for out, ref in want.items():
                for label, res in (("layout", got), ("plain", plain)):
                    r = res.get(out)
                    if r is None or r.shape != ref.shape:
                        print(f"FAIL {name} {label}: output {out} missing or misshaped")
                        ok = False
                        continue
                    err = float(np.max(np.abs(r - ref))) if r.size else 0.0
                    if vs_ort is True:
                        bad = not np.all(np.abs(r - ref) <= 1e-4 * np.abs(ref) + 1e-5)
                    elif vs_ort is False:
                        bad = not np.array_equal(r, ref)
                    else:
                        bad = not np.all(np.abs(r - ref) <= vs_ort * (np.abs(ref) + 1e-2))
                    print(f"  {name:14s} {label:6s} {out}: max abs err {err:.3g}")
                    if bad:
                        print(f"FAIL {name} {label}: output {out} differs")
                        ok = False
            if ok:
                print(f"ok   {name}: {count} channels-last values")
                passed += 1
            else:
                failed += 1
    print(f"layout: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
