"""QDQ groups in libtacort (runtime/qdq.c): QDQ models run with their
MatMuls, convolutions and Adds bound to integer kernels (the default)
against the same models run as written (TACORT_QDQ=written: every
DequantizeLinear, float op and QuantizeLinear on its own), bound with plain
values only (TACORT_LAYOUT=plain) and against ONNX Runtime, on small models
that reach each way a group runs:

  resblock   Conv -> Q (the convolution writes int8), Conv -> Relu -> Q (the
             Relu in the convolution), residual DequantizeLinear +
             DequantizeLinear -> Add -> Relu -> Q (the int8 Add, Relu
             inside), a last Conv with float32 output; uint8 activations,
             kept channels-last between the convolutions
  resblock -O2  the same after tacoc optimize -O2
  resblock_s8   int8 activations (signed zero points)
  fork       two convolutions of one int8 value before both their
             QuantizeLinear nodes (the memory plan keeps it for the second)
  adds       a Sum of two DequantizeLinear outputs into Q, a broadcast Add
             ([1,4,5,5] + [1,4,1,5]: its DequantizeLinear, Add and Q run as
             written, inside the group), Adds of a constant uint8 row on
             either side (broadcast over the leading axes: one vector pass)
             and of a one-element constant,
             an Add with float32 output, and a
             Conv whose output is also a graph output (its Q not taken over)
  bcast_nhwc two channels-last int8 convolution outputs added with a
             broadcast (as written, on plain copies, the result made
             channels-last again)
  concat     SqueezeNet's fire module: a Concat of two int8 convolution outputs
             into Q (the first copied, the second requantized), and a
             Concat with float32 output; concat_nhwc without the latter (the
             module's values channels-last, the Concat per position)
  maxpool    DequantizeLinear -> MaxPool -> QuantizeLinear between int8
             convolutions (SqueezeNet's, ResNet's stem): the MaxPool on the
             8-bit values, channels-last and requantized through a table
             (other scale), plain with the same scale (the pooled bytes are
             y's, ceil mode); a MaxPool with float32 output runs as written
             (pooling bytes would not save a pass there); maxpool_s8 the
             same with int8 activations
  mixed      MobileNetV3's mix: a float depthwise convolution and Relu, a
             QuantizeLinear of their channels-last output (run unchanged),
             an int8 convolution with a float32 output kept channels-last,
             a Sigmoid and a float depthwise convolution after it: no
             reorder between them
  dq_float   an int8 convolution's 8-bit output read by a bound convolution
             and, through a DequantizeLinear that runs, by a Relu and a
             float depthwise convolution: the 8-bit value and the
             dequantized one both channels-last
  cat_float  an int8 Concat over channels with a float32 output (read by a
             Relu and a float depthwise convolution): inputs and output
             channels-last; cat_float_plain with one input's dequantized
             copy a graph output too, so that input stays plain and so does
             everything around the Concat
  gemm       QDQ Gemms as onnxruntime.quantization writes a classifier
             (transB, int32 bias; and without transB, a float32 bias row):
             the int8 matmul, weights packed once
  matmul     a QDQ MatMul: oneDNN's int8 matmul on the int8 initializer packed
             once (its primitive and packed weights reported by --profile)
  zoo_resnet50  (with --zoo) the caffe2 zoo ResNet-50 quantized by
             onnxruntime.quantization as its documentation says
             (quant_pre_process, quantize_static QDQ per channel), its
             logits: 53 convolutions, its Gemm and 16 residual Adds int8, 68
             QuantizeLinear taken over, 61 int8 values channels-last

Each case checks the counts `tacoc run` reports (so a binding that silently
stops happening fails), that nothing is bound with TACORT_QDQ=written and
nothing channels-last with TACORT_LAYOUT=plain, the bound nodes' reference
paths (TACORT_KERNELS=reference; not for ResNet-50) within the same bound
of the written run, and the outputs: the
channels-last run is bit for bit the plain one; the int8 Add is bit for bit
the ops it replaces; a convolution writing int8 may round a value at a
rounding boundary one step away (its scale * sum / y_scale against
QuantizeLinear's), so those cases compare within a few output steps and by
cosine. Ends with "qdq: N passed, N failed".

Usage: qdq.py --tacoc PATH [--zoo DIR]"""
import argparse
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

from e2e import file_name

RNG = np.random.default_rng(11)
ort.set_default_logger_severity(3)


def init(name, v, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(v, dtype=dtype), name)


class Builder:
    """A QDQ graph: activations quantized per tensor (uint8 or int8),
    weights int8 per output channel, biases int32."""

    def __init__(self, act=np.uint8):
        self.nodes, self.inits, self.act = [], [], act
        self.zp = 128 if act == np.uint8 else 0

    def q(self, x, name, scale, zp=None):
        """QuantizeLinear of x, then its DequantizeLinear; returns (q, dq)."""
        zp = self.zp if zp is None else zp
        self.inits += [init(f"{name}_s", scale), init(f"{name}_z", zp, self.act)]
        self.nodes += [helper.make_node("QuantizeLinear", [x, f"{name}_s", f"{name}_z"], [f"{name}_q"]),
                       helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s", f"{name}_z"],
                                        [f"{name}_dq"])]
        return f"{name}_q", f"{name}_dq"

    def conv(self, x, x_scale, name, cin, cout, k):
        w = RNG.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)
        ws = np.abs(w).reshape(cout, -1).max(1) / 127
        b = RNG.standard_normal(cout) * 0.1
        self.inits += [init(f"{name}_wq", np.round(w / ws[:, None, None, None]), np.int8),
                       init(f"{name}_ws", ws), init(f"{name}_bq", np.round(b / (x_scale * ws)), np.int32),
                       init(f"{name}_bs", x_scale * ws)]
        self.nodes += [helper.make_node("DequantizeLinear", [f"{name}_wq", f"{name}_ws"], [f"{name}_w"], axis=0),
                       helper.make_node("DequantizeLinear", [f"{name}_bq", f"{name}_bs"], [f"{name}_b"], axis=0),
                       helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name],
                                        kernel_shape=[k, k], pads=[k // 2] * 4)]
        return name

    def model(self, inputs, outputs):
        g = helper.make_graph(self.nodes, "qdq", inputs, outputs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        m.ir_version = 8
        return m


def vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def resblock(act=np.uint8):
    b = Builder(act)
    _, x = b.q("x", "xq", 0.03)
    c1 = b.conv(x, 0.03, "c1", 8, 16, 3)
    _, d1 = b.q(c1, "c1q", 0.05)
    c2 = b.conv(d1, 0.05, "c2", 16, 16, 3)
    b.nodes.append(helper.make_node("Relu", [c2], ["c2r"]))
    _, d2 = b.q("c2r", "c2q", 0.04)  # zero point mid-range: the Relu matters
    c3 = b.conv(d2, 0.04, "c3", 16, 16, 1)
    _, d3 = b.q(c3, "c3q", 0.05)
    b.nodes += [helper.make_node("Add", [d3, d1], ["sum"]), helper.make_node("Relu", ["sum"], ["sumr"])]
    _, d4 = b.q("sumr", "sq", 0.06)
    b.conv(d4, 0.06, "out", 16, 8, 3)
    return b.model([vi("x", [1, 8, 10, 9])], [vi("out", [1, 8, 10, 9])])


def fork():
    """Two convolutions of one int8 value, both before their QuantizeLinear
    nodes (onnxruntime.quantization's order): the value must live until the
    second QuantizeLinear runs its convolution."""
    b = Builder()
    _, x = b.q("x", "xq", 0.03)
    ca = b.conv(x, 0.03, "ca", 8, 8, 3)
    cb = b.conv(x, 0.03, "cb", 8, 8, 1)
    _, da = b.q(ca, "caq", 0.05)
    _, db = b.q(cb, "cbq", 0.05)
    b.nodes.append(helper.make_node("Add", [da, db], ["s"]))
    _, ds = b.q("s", "sq", 0.07)
    b.nodes.append(helper.make_node("Relu", [ds], ["out"]))
    return b.model([vi("x", [1, 8, 10, 9])], [vi("out", [1, 8, 10, 9])])


def adds():
    b = Builder()
    _, a = b.q("a", "aq", 0.02)
    _, c = b.q("c", "cq", 0.03)
    _, e = b.q("e", "eq", 0.025)
    b.nodes.append(helper.make_node("Sum", [a, c], ["s1"]))
    _, d1 = b.q("s1", "s1q", 0.04)
    b.nodes.append(helper.make_node("Add", [d1, e], ["s2"]))  # [1,4,5,5] + [1,4,1,5]
    _, d2 = b.q("s2", "s2q", 0.05)
    b.nodes.append(helper.make_node("Add", [d2, a], ["sf"]))  # float32 out
    # a constant uint8 row added on both sides (broadcast over the leading axes)
    _, g = b.q("g", "gq", 0.02)
    b.inits += [init("row", RNG.integers(0, 256, 40), np.uint8), init("row_s", 0.01),
                init("row_z", 100, np.uint8), init("one", [77], np.uint8)]
    b.nodes += [helper.make_node("DequantizeLinear", ["row", "row_s", "row_z"], ["rowd"]),
                helper.make_node("Add", [g, "rowd"], ["r1"]),
                helper.make_node("Add", ["rowd", g], ["r2"]),
                helper.make_node("DequantizeLinear", ["one", "row_s", "row_z"], ["oned"]),
                helper.make_node("Add", [d1, "oned"], ["r3"])]
    b.q("r1", "r1q", 0.05)
    b.q("r2", "r2q", 0.05)
    b.q("r3", "r3q", 0.05)
    cv = b.conv(d1, 0.04, "cv", 4, 4, 3)
    b.q(cv, "cvq", 0.05)
    b.nodes.append(helper.make_node("DequantizeLinear", ["cvq_q", "cvq_s", "cvq_z"], ["cvo"]))
    return b.model([vi("a", [1, 4, 5, 5]), vi("c", [1, 4, 5, 5]), vi("e", [1, 4, 1, 5]),
                    vi("g", [1, 3, 40])],
                   [vi("sf", [1, 4, 5, 5]), vi("cv", [1, 4, 5, 5]), vi("cvo", [1, 4, 5, 5]),
                    vi("r1q_dq", [1, 3, 40]), vi("r2q_dq", [1, 3, 40]), vi("r3q_dq", [1, 4, 5, 5])])


def bcast_nhwc():
    """Two int8 convolution outputs kept channels-last, added with a
    broadcast ([1,4,5,5] + [1,4,1,5]): the Add runs as written on plain
    copies, its output made channels-last again for the next convolution."""
    b = Builder()
    _, x = b.q("x", "xq", 0.03)
    _, y = b.q("y", "yq", 0.03)
    _, da = b.q(b.conv(x, 0.03, "ca", 4, 4, 3), "caq", 0.05)
    _, db = b.q(b.conv(y, 0.03, "cb", 4, 4, 1), "cbq", 0.05)
    b.nodes.append(helper.make_node("Add", [da, db], ["s"]))
    _, ds = b.q("s", "sq", 0.07)
    b.conv(ds, 0.07, "out", 4, 4, 3)
    return b.model([vi("x", [1, 4, 5, 5]), vi("y", [1, 4, 1, 5])], [vi("out", [1, 4, 5, 5])])


def matmul():
    """A transformer-style QDQ MatMul (uint8 [1, 16, 64] activations, int8
    [64, 48] weights per column) then an Add of a constant bias."""
    b = Builder()
    _, x = b.q("x", "xq", 0.02)
    w = RNG.standard_normal((64, 48)) / 8
    ws = np.abs(w).max(0) / 127
    b.inits += [init("wq", np.round(w / ws), np.int8), init("ws", ws),
                init("bias", RNG.standard_normal(48) * 0.1)]
    b.nodes += [helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=1),
                helper.make_node("MatMul", [x, "wd"], ["mm"]),
                helper.make_node("Add", ["mm", "bias"], ["out"])]
    return b.model([vi("x", [1, 16, 64])], [vi("out", [1, 16, 48])])


def concat(float_concat=True):
    """SqueezeNet's fire module as onnxruntime.quantization writes it: two
    convolutions of one int8 value concatenated over channels, the first
    input quantized as the output (copied), the second requantized; and a
    Concat over the last axis with a float32 output (without it, the fire
    module's values all stay channels-last)."""
    b = Builder()
    _, x = b.q("x", "xq", 0.03)
    _, sq = b.q(b.conv(x, 0.03, "sq", 8, 4, 1), "sqq", 0.05)
    _, e1 = b.q(b.conv(sq, 0.05, "e1", 4, 8, 1), "e1q", 0.06)
    _, e3 = b.q(b.conv(sq, 0.05, "e3", 4, 8, 3), "e3q", 0.045)
    b.nodes.append(helper.make_node("Concat", [e1, e3], ["cat"], axis=1))
    _, c = b.q("cat", "catq", 0.06)  # e1's scale and zero point
    b.conv(c, 0.06, "out", 16, 8, 3)
    if not float_concat:
        return b.model([vi("x", [1, 8, 10, 9])], [vi("out", [1, 8, 10, 9])])
    b.nodes.append(helper.make_node("Concat", [e3, e1], ["catf"], axis=-1))
    return b.model([vi("x", [1, 8, 10, 9])], [vi("out", [1, 8, 10, 9]), vi("catf", [1, 8, 10, 18])])


def maxpool(act=np.uint8):
    b = Builder(act)
    _, x = b.q("x", "xq", 0.03)
    _, d1 = b.q(b.conv(x, 0.03, "c1", 8, 16, 3), "c1q", 0.05)
    b.nodes.append(helper.make_node("MaxPool", [d1], ["p1"], kernel_shape=[3, 3], strides=[2, 2],
                                    pads=[1, 1, 1, 1]))
    _, dp1 = b.q("p1", "p1q", 0.04, 100 if act == np.uint8 else -20)  # requantized
    _, d2 = b.q(b.conv(dp1, 0.04, "c2", 16, 16, 3), "c2q", 0.05)
    b.nodes += [helper.make_node("MaxPool", [d2], ["p2"], kernel_shape=[2, 2], strides=[2, 2],
                                 ceil_mode=1),
                helper.make_node("MaxPool", [d2], ["pf"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    _, dp2 = b.q("p2", "p2q", 0.05)  # c2q's scale and zero point: the pooled bytes
    b.conv(dp2, 0.05, "out", 16, 8, 3)
    return b.model([vi("x", [1, 8, 10, 9])], [vi("out", [1, 8, 3, 3]), vi("pf", [1, 16, 5, 5])])


def mixed():
    b = Builder()
    w = RNG.standard_normal((8, 1, 3, 3)).astype(np.float32) * 0.3
    w2 = RNG.standard_normal((16, 1, 3, 3)).astype(np.float32) * 0.3
    b.inits += [init("dw1", w), init("dw2", w2)]
    b.nodes += [helper.make_node("Conv", ["x", "dw1"], ["d1"], group=8, kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1]),
                helper.make_node("Relu", ["d1"], ["r1"])]
    _, x = b.q("r1", "r1q", 0.02)
    c = b.conv(x, 0.02, "pw", 8, 16, 1)
    b.nodes += [helper.make_node("Sigmoid", [c], ["s1"]),
                helper.make_node("Conv", ["s1", "dw2"], ["out"], group=16, kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1])]
    return b.model([vi("x", [1, 8, 10, 9])], [vi("out", [1, 16, 10, 9])])


def dq_float():
    b = Builder()
    _, x = b.q("x", "xq", 0.03)
    _, d1 = b.q(b.conv(x, 0.03, "c1", 8, 16, 3), "c1q", 0.05)
    b.conv(d1, 0.05, "c2", 16, 8, 1)
    b.inits.append(init("dw", RNG.standard_normal((16, 1, 3, 3)).astype(np.float32) * 0.3))
    b.nodes += [helper.make_node("Relu", [d1], ["r1"]),
                helper.make_node("Conv", ["r1", "dw"], ["out2"], group=16, kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1])]
    return b.model([vi("x", [1, 8, 10, 9])], [vi("c2", [1, 8, 10, 9]), vi("out2", [1, 16, 10, 9])])


def cat_float(plain_input=False):
    b = Builder()
    _, x = b.q("x", "xq", 0.03)
    _, e1 = b.q(b.conv(x, 0.03, "e1", 8, 8, 1), "e1q", 0.06)
    _, e3 = b.q(b.conv(x, 0.03, "e3", 8, 8, 3), "e3q", 0.045)
    b.inits.append(init("dw", RNG.standard_normal((16, 1, 3, 3)).astype(np.float32) * 0.3))
    b.nodes += [helper.make_node("Concat", [e1, e3], ["cat"], axis=1),
                helper.make_node("Relu", ["cat"], ["r"]),
                helper.make_node("Conv", ["r", "dw"], ["out"], group=16, kernel_shape=[3, 3],
                                 pads=[1, 1, 1, 1])]
    outs = [vi("out", [1, 16, 10, 9])] + ([vi(e1, [1, 8, 10, 9])] if plain_input else [])
    return b.model([vi("x", [1, 8, 10, 9])], outs)


def gemm():
    """A classifier as onnxruntime.quantization writes AlexNet's: Gemm with
    transB (int8 [N, K] weights per row, an int32 bias's DequantizeLinear),
    Relu, Q; then a Gemm without transB and a float32 bias row."""
    b = Builder()
    _, x = b.q("x", "xq", 0.02)
    w = RNG.standard_normal((48, 64)) / 8
    ws = np.abs(w).max(1) / 127
    bias = RNG.standard_normal(48) * 0.1
    w2 = RNG.standard_normal((48, 40)) / 7
    ws2 = np.abs(w2).max(0) / 127
    b.inits += [init("wq", np.round(w / ws[:, None]), np.int8), init("ws", ws),
                init("bq", np.round(bias / (0.02 * ws)), np.int32), init("bs", 0.02 * ws),
                init("w2q", np.round(w2 / ws2), np.int8), init("w2s", ws2),
                init("c2", RNG.standard_normal((1, 40)) * 0.1)]
    b.nodes += [helper.make_node("DequantizeLinear", ["wq", "ws"], ["wd"], axis=0),
                helper.make_node("DequantizeLinear", ["bq", "bs"], ["bd"], axis=0),
                helper.make_node("Gemm", [x, "wd", "bd"], ["g1"], transB=1),
                helper.make_node("Relu", ["g1"], ["g1r"])]
    _, h = b.q("g1r", "hq", 0.03)
    b.nodes += [helper.make_node("DequantizeLinear", ["w2q", "w2s"], ["w2d"], axis=1),
                helper.make_node("Gemm", [h, "w2d", "c2"], ["out"])]
    return b.model([vi("x", [3, 64])], [vi("out", [3, 40])])


def zoo_resnet50(zoo, tmp):
    """The zoo ResNet-50 through onnxruntime.quantization's documented
    steps, its Gemm's output (the logits) as the graph output."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tools"))
    import gen_zoo_models
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    m = onnx.load(os.path.join(zoo, "resnet50.onnx"))
    x = gen_zoo_models.image_input(m).name
    src, pre, out = (os.path.join(tmp, f) for f in ("r50_13.onnx", "r50_pre.onnx", "r50_qdq.onnx"))
    onnx.save(version_converter.convert_version(m, 13), src)
    quant_pre_process(src, pre, skip_symbolic_shape=True)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.sets = iter([{x: np.random.default_rng(5 + k).standard_normal((1, 3, 224, 224))
                               .astype(np.float32)} for k in range(2)])

        def get_next(self):
            return next(self.sets, None)
    quantize_static(pre, out, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    q = onnx.load(out)
    gemm = next(n for n in q.graph.node if n.op_type == "Gemm")
    del q.graph.output[:]
    q.graph.output.append(helper.make_tensor_value_info(gemm.output[0], TensorProto.FLOAT, None))
    return q, {x: RNG.standard_normal((1, 3, 224, 224)).astype(np.float32)}


def run(tacoc, path, feeds, tmp, env_extra):
    """(bound MatMuls and convolutions, bound Adds, bound Concats,
    QuantizeLinear nodes taken over, channels-last values, oneDNN
    primitives, bound MaxPools), and the outputs."""
    out = os.path.join(tmp, "out")
    shutil.rmtree(out, ignore_errors=True)
    args = [tacoc, "run", path, "--output-dir", out, "--profile"]
    for k, v in feeds.items():
        f = os.path.join(tmp, f"{file_name(k)}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    p = subprocess.run(args, capture_output=True, text=True, env=dict(os.environ, **env_extra))
    if p.returncode:
        raise RuntimeError(p.stderr.strip())
    m = re.search(r"(\d+) QDQ MatMuls and convolutions run as int8 kernels", p.stderr)
    m2 = re.search(r"(\d+) QDQ Adds and (\d+) Concats run as int8 kernels; (\d+) QuantizeLinear "
                   r"nodes run inside", p.stderr)
    m3 = re.search(r"(\d+) values between convolutions kept channels-last", p.stderr)
    m4 = re.search(r"oneDNN primitives cached: (\d+)", p.stdout)
    m5 = re.search(r"(\d+) QDQ MaxPools run on 8-bit values", p.stderr)
    counts = (int(m.group(1)) if m else 0,) + (tuple(int(g) for g in m2.groups()) if m2 else (0, 0, 0)) \
        + tuple(int(x.group(1)) if x else 0 for x in (m3, m4, m5))
    return counts, {f[:-4]: np.load(os.path.join(out, f)) for f in os.listdir(out)}


def output(outs, name):
    return outs[file_name(name)]


def cosine(a, b):
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-30))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("--zoo", help="tools/gen_zoo_models.py's folder (the ResNet-50 case)")
    a = ap.parse_args()
    passed = failed = 0
    xr = {"x": RNG.standard_normal((1, 8, 10, 9)).astype(np.float32) * 2}
    xa = {"a": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32),
          "c": RNG.standard_normal((1, 4, 5, 5)).astype(np.float32),
          "e": RNG.standard_normal((1, 4, 1, 5)).astype(np.float32),
          "g": RNG.standard_normal((1, 3, 40)).astype(np.float32)}
    # name, model, inputs, (convolutions and MatMuls, Adds, Concats,
    # QuantizeLinear taken over, channels-last values, oneDNN primitives,
    # MaxPools), output steps
    # allowed against the written run (0: bit for bit), cosine bound against
    # it and ONNX Runtime
    cases = [("resblock", resblock(), xr, (4, 1, 0, 4, 4, 4, 0), 0.06 * 3, 0.9999),
             ("resblock_s8", resblock(np.int8), xr, (4, 1, 0, 4, 4, 4, 0), 0.06 * 3, 0.9999),
             ("adds", adds(), xa, (1, 6, 0, 5, 0, 1, 0), 0.05, 0.9999),
             ("fork", fork(), xr, (2, 1, 0, 3, 0, 2, 0), 0.07 * 3, 0.9999),
             ("bcast_nhwc", bcast_nhwc(), {"x": xa["a"], "y": xa["e"]}, (3, 1, 0, 3, 3, 3, 0), 0.1,
              0.9999),
             ("concat", concat(), xr, (4, 0, 2, 4, 1, 4, 0), 0.06 * 3, 0.9999),
             ("concat_nhwc", concat(False), xr, (4, 0, 1, 4, 4, 4, 0), 0.06 * 3, 0.9999),
             ("maxpool", maxpool(), xr, (3, 0, 0, 4, 5, 3, 2), 0.05 * 3, 0.9999),
             ("maxpool_s8", maxpool(np.int8), xr, (3, 0, 0, 4, 5, 3, 2), 0.05 * 3, 0.9999),
             ("mixed", mixed(), xr, (1, 0, 0, 0, 5, 3, 0), 0.02 * 2, 0.9999),
             ("dq_float", dq_float(), xr, (2, 0, 0, 1, 3, 3, 0), 0.05 * 3, 0.9999),
             ("cat_float", cat_float(), xr, (2, 0, 1, 2, 4, 3, 0), 0.06 * 3, 0.9999),
             ("cat_float_plain", cat_float(True), xr, (2, 0, 1, 2, 0, 3, 0), 0.06 * 3, 0.9999),
             ("gemm", gemm(), {"x": RNG.standard_normal((3, 64)).astype(np.float32)},
              (2, 0, 0, 0, 0, 2, 0), 1e-5, 0.9999),
             ("matmul", matmul(), {"x": RNG.standard_normal((1, 16, 64)).astype(np.float32)},
              (1, 0, 0, 0, 0, 1, 0), 1e-5, 0.9999)]
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "resblock.onnx")
        onnx.save(cases[0][1], src)
        opt = os.path.join(tmp, "resblock.O2.onnx")
        p = subprocess.run([a.tacoc, "optimize", src, "-O2", "-o", opt], capture_output=True, text=True)
        if p.returncode:
            print(f"FAIL resblock -O2: {p.stderr.strip()}")
            failed += 1
        else:
            cases.append(("resblock -O2", onnx.load(opt), xr, (4, 1, 0, 4, 4, 4, 0), 0.06 * 3, 0.9999))
        if a.zoo:
            try:
                q, feeds = zoo_resnet50(a.zoo, tmp)
                cases.append(("zoo_resnet50", q, feeds, (54, 16, 0, 69, 63, 54, 1), None, 0.999))
            except Exception as e:  # noqa: BLE001 (reported as a failure)
                print(f"FAIL zoo_resnet50: cannot quantize it: {e}")
                failed += 1
        for name, model, feeds, want, steps, cos in cases:
            path = os.path.join(tmp, name.replace(" ", "_") + ".onnx")
            onnx.save(model, path)
            try:
                counts, got = run(a.tacoc, path, feeds, tmp, {})
                wcounts, written = run(a.tacoc, path, feeds, tmp, {"TACORT_QDQ": "written"})
                pcounts, plain = run(a.tacoc, path, feeds, tmp, {"TACORT_LAYOUT": "plain"})
                # the bound nodes' reference paths (no oneDNN, no channels-last)
                rcounts, refk = run(a.tacoc, path, feeds, tmp, {"TACORT_KERNELS": "reference"}) \
                    if name != "zoo_resnet50" else (want[:4] + (0, 0, want[6]), got)
            except RuntimeError as e:
                print(f"FAIL {name}: {e}")
                failed += 1
                continue
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            ref = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
            errs = []
            if counts != want or wcounts[:4] + wcounts[6:] != (0,) * 5 \
                    or pcounts[:5] + pcounts[6:] != want[:4] + (0, want[6]) \
                    or rcounts != want[:4] + (0, 0, want[6]):
                errs.append(f"bound {counts} (want {want}), written {wcounts} (want nothing bound), "
                            f"TACORT_LAYOUT=plain {pcounts}, TACORT_KERNELS=reference {rcounts}")
            notes = []
            for k, r in ref.items():
                g, w, pl = output(got, k), output(written, k), output(plain, k)
                if g.shape != r.shape:
                    errs.append(f"{k}: shape {g.shape} vs {r.shape}")
                    continue
                if not np.array_equal(g, pl):
                    errs.append(f"{k}: channels-last and plain runs differ by {np.abs(g - pl).max():.3g}")
                dr = float(np.abs(output(refk, k) - w).max())
                if steps is not None and dr > max(steps, 1e-5):
                    errs.append(f"{k}: the reference kernels differ from the written run by {dr:.3g}")
                d = float(np.abs(g - w).max())
                cw, co = cosine(g, w), cosine(g, r)
                exact = steps == 0 or k in ("sf", "r1q_dq", "r2q_dq", "r3q_dq")  # int8 Adds: bit for bit
                if exact and d != 0:
                    errs.append(f"{k}: differs from the written run by {d:.3g} (want bit for bit)")
                elif steps and d > steps:
                    errs.append(f"{k}: differs from the written run by {d:.3g} (> {steps:.3g})")
                if cw < cos or co < cos:
                    errs.append(f"{k}: cosine {cw:.6f} to the written run, {co:.6f} to ORT (< {cos})")
                notes.append(f"{k} max diff {d:.3g}, cos {cw:.6f} / ORT {co:.6f}")
            if errs:
                print(f"FAIL {name}: " + "; ".join(errs))
                failed += 1
            else:
                print(f"ok   {name}: counts {counts}; " + "; ".join(notes))
                passed += 1
    print(f"qdq: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
