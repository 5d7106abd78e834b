"""Single ops in libtacort (through `tacoc run`) against ONNX Runtime on random
inputs, beyond the few fixed cases of the ONNX node tests: NonMaxSuppression
(many overlapping boxes, both box formats, thresholds, batches and classes),
RoiAlign (both coordinate modes, avg and max, sampling ratios) and GridSample
(every mode, padding and align_corners, positions beyond the borders),
AffineGrid (2-D and 3-D), Det and Unique, ONNX Runtime's
com.microsoft.EmbedLayerNormalization and QuickGelu; sparse initializers
made dense.

Usage: ops_ort.py --tacoc PATH

NonMaxSuppression must match exactly; the others within 1e-4 relative +
1e-5 absolute. Prints `ok NAME` / `FAIL NAME: reason`, then
"ops: N passed, N failed"."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from harness import run_tests

ort.set_default_logger_severity(3)
RNG = np.random.default_rng(21)
TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def one_node(op, inputs, outputs, opset, **attrs):
    """inputs / outputs: (name, elem type, shape or None)."""
    node = helper.make_node(op, [i[0] for i in inputs], [o[0] for o in outputs], **attrs)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info(*i) for i in inputs],
                          [helper.make_tensor_value_info(*o) for o in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def both(m, feeds):
    """(libtacort outputs, ONNX Runtime outputs) of m on feeds."""
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        onnx.save(m, path)
        args = [A.tacoc, "run", path, "--output-dir", os.path.join(tmp, "out")]
        for k, v in feeds.items():
            np.save(os.path.join(tmp, k + ".npy"), v)
            args += ["--input", f"{k}={os.path.join(tmp, k + '.npy')}"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr.strip()
        got = [np.load(os.path.join(tmp, "out", o.name + ".npy")) for o in m.graph.output]
    return got, want


def close(got, want, what):
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    assert np.all(d <= 1e-4 * np.abs(want) + 1e-5), f"{what}: max abs error {d.max():.3g}"


@test
def nms_random_boxes():
    F, I = TensorProto.FLOAT, TensorProto.INT64
    for center in (0, 1):
        for b, c, n, max_out, iou, score in ((1, 1, 40, 10, 0.5, None), (2, 3, 60, 25, 0.3, 0.4),
                                             (3, 2, 17, 100, 0.0, 0.0), (1, 2, 30, 5, 0.7, None)):
            xy = RNG.uniform(0, 10, (b, n, 2))
            wh = RNG.uniform(0.5, 4, (b, n, 2))
            if center:
                boxes = np.concatenate([xy, wh], -1)
            else:  # [y1, x1, y2, x2], some corners given the other way round
                boxes = np.concatenate([xy[..., ::-1], xy[..., ::-1] + wh[..., ::-1]], -1)
                flip = RNG.random((b, n)) < 0.3
                boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
            scores = RNG.random((b, c, n)).astype(np.float32)
            scores[..., ::7] = 0.5  # ties broken by the box index
            inputs = [("boxes", F, [b, n, 4]), ("scores", F, [b, c, n]), ("max", I, [1]),
                      ("iou", F, [1])]
            feeds = {"boxes": boxes.astype(np.float32), "scores": scores,
                     "max": np.array([max_out], np.int64), "iou": np.array([iou], np.float32)}
            if score is not None:
                inputs.append(("score", F, [1]))
                feeds["score"] = np.array([score], np.float32)
            m = one_node("NonMaxSuppression", inputs, [("sel", I, None)], 11, center_point_box=center)
            got, want = both(m, feeds)
            assert got[0].shape == want[0].shape and np.array_equal(got[0], want[0]), \
                (center, b, c, n, got[0][:8], want[0][:8])


@test
def roialign_random():
    F, I = TensorProto.FLOAT, TensorProto.INT64
    for opset, ctm in ((16, "half_pixel"), (16, "output_half_pixel"), (10, None)):
        for mode in ("avg", "max"):
            for ratio in (0, 2):
                x = RNG.standard_normal((2, 3, 12, 15)).astype(np.float32)
                lo = RNG.uniform(-2, 8, (5, 2))
                rois = np.concatenate([lo, lo + RNG.uniform(0.5, 9, (5, 2))], 1).astype(np.float32)
                attrs = dict(mode=mode, output_height=3, output_width=4, sampling_ratio=ratio,
                             spatial_scale=0.8)
                if ctm:
                    attrs["coordinate_transformation_mode"] = ctm
                m = one_node("RoiAlign", [("x", F, [2, 3, 12, 15]), ("rois", F, [5, 4]),
                                          ("bi", I, [5])], [("y", F, None)], opset, **attrs)
                got, want = both(m, {"x": x, "rois": rois, "bi": np.array([0, 1, 1, 0, 1], np.int64)})
                close(got[0], want[0], f"opset {opset} {ctm} {mode} ratio {ratio}")


@test
def gridsample_2d_every_mode():
    F = TensorProto.FLOAT
    for opset, modes in ((16, ("bilinear", "nearest", "bicubic")), (20, ("linear", "nearest", "cubic"))):
        for mode in modes:
            for pad in ("zeros", "border", "reflection"):
                for ac in (0, 1):
                    x = RNG.standard_normal((2, 3, 7, 9)).astype(np.float32)
                    grid = RNG.uniform(-1.4, 1.4, (2, 5, 6, 2)).astype(np.float32)
                    m = one_node("GridSample", [("x", F, [2, 3, 7, 9]), ("grid", F, [2, 5, 6, 2])],
                                 [("y", F, None)], opset, mode=mode, padding_mode=pad,
                                 align_corners=ac)
                    got, want = both(m, {"x": x, "grid": grid})
                    close(got[0], want[0], f"opset {opset} {mode} {pad} align_corners {ac}")


@test
def affinegrid_and_det_random():
    F, I = TensorProto.FLOAT, TensorProto.INT64
    for size, ac in (([2, 3, 5, 7], 0), ([2, 3, 5, 7], 1), ([1, 2, 3, 4, 5], 0), ([1, 2, 3, 4, 5], 1)):
        r = len(size) - 2
        theta = RNG.standard_normal((size[0], r, r + 1)).astype(np.float32)
        m = one_node("AffineGrid", [("theta", F, list(theta.shape)), ("size", I, [len(size)])],
                     [("grid", F, None)], 20, align_corners=ac)
        got, want = both(m, {"theta": theta, "size": np.array(size, np.int64)})
        close(got[0], want[0], f"AffineGrid {size} align_corners {ac}")
    for shape in ([4, 4], [3, 2, 5, 5], [2, 1, 1]):
        x = RNG.standard_normal(shape).astype(np.float32)
        got, want = both(one_node("Det", [("x", F, shape)], [("d", F, None)], 22), {"x": x})
        close(got[0], want[0], f"Det {shape}")


@test
def embed_layernorm_contrib():
    """com.microsoft.EmbedLayerNormalization as ONNX Runtime's transformer
    optimizer writes it: segments or not, a mask (mask_index), position ids,
    the embedding sum."""
    F, I = TensorProto.FLOAT, TensorProto.INT32
    B, S, H, V = 3, 6, 16, 40
    tables = {"w": RNG.standard_normal((V, H)), "p": RNG.standard_normal((10, H)),
              "t": RNG.standard_normal((2, H)), "g": RNG.standard_normal(H), "b": RNG.standard_normal(H)}
    inits = [helper.make_tensor(k, F, v.shape, v.astype(np.float32).ravel()) for k, v in tables.items()]
    for seg, mask, pos, summed in ((True, True, False, False), (False, False, False, True),
                                   (True, True, True, True), (False, True, True, False)):
        ins = ["ids", "seg" if seg else "", "w", "p", "t" if seg else "", "g", "b"]
        ins += ["mask" if mask else ""] + (["pos"] if pos else [])
        outs = ["y", "mi" if mask else ""] + (["sum"] if summed else [])
        node = helper.make_node("EmbedLayerNormalization", ins, outs, domain="com.microsoft",
                                epsilon=1e-5)
        feeds = {"ids": RNG.integers(0, V, (B, S)).astype(np.int32)}
        vi = [helper.make_tensor_value_info("ids", I, [B, S])]
        if seg:
            feeds["seg"] = RNG.integers(0, 2, (B, S)).astype(np.int32)
            vi.append(helper.make_tensor_value_info("seg", I, [B, S]))
        if mask:
            m = np.ones((B, S), np.int32)
            m[1, 3:] = 0
            m[2, :] = 0
            feeds["mask"] = m
            vi.append(helper.make_tensor_value_info("mask", I, [B, S]))
        if pos:
            feeds["pos"] = RNG.integers(0, 10, (B, S)).astype(np.int32)
            vi.append(helper.make_tensor_value_info("pos", I, [B, S]))
        g = helper.make_graph([node], "g", vi,
                              [helper.make_tensor_value_info(o, F if o != "mi" else I, None)
                               for o in outs if o], inits)
        mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("com.microsoft", 1)])
        mdl.ir_version = 8
        got, want = both(mdl, feeds)
        what = f"EmbedLayerNormalization seg={seg} mask={mask} pos={pos} sum={summed}"
        for gv, wv in zip(got, want):
            if wv.dtype == np.int32:
                assert np.array_equal(gv, wv), f"{what}: mask_index {gv} vs {wv}"
            else:
                close(gv, wv, what)


@test
def string_ops():
    """StringConcat (broadcast), StringSplit (whitespace and a delimiter,
    maxsplit), StringNormalizer (stopwords, case), RegexFullMatch (RE2 class
    escapes) on constant strings (tacoc run takes no string inputs): string
    outputs come back through the C API and .npy (numpy unicode) exactly as
    ONNX Runtime computes them."""
    S = TensorProto.STRING
    # (no empty string: split on a delimiter, libtacort gives it one empty part
    # as the ONNX reference does, ONNX Runtime none)
    words = [b"  alpha beta  gamma ", b"x--y-", b"-", b"www.ab-c.com", b"Monday", b"user.1@gmail.com"]
    n = helper.make_node
    nodes = [n("Constant", [], ["w"], value=helper.make_tensor("wv", S, [2, 3], words)),
             n("Constant", [], ["sfx"], value=helper.make_tensor("sv", S, [3], [b"!", b"", b"\xc3\xa9"])),
             n("Constant", [], ["days"], value=helper.make_tensor("dv", S, [1, 4],
                                                                  [b"Monday", b"tuesday", b"MONDAY", b"x"])),
             n("StringConcat", ["w", "sfx"], ["cat"]),
             n("StringSplit", ["w"], ["ws", "wn"]),
             n("StringSplit", ["w"], ["ds", "dn"], delimiter="-", maxsplit=2),
             n("StringNormalizer", ["days"], ["norm"], case_change_action="UPPER", stopwords=["monday"],
               locale="C"),
             n("RegexFullMatch", ["w"], ["re"], pattern=r"(\W|^)[\w.\-]{0,25}@(yahoo|gmail)\.com(\W|$)|www\.[\w.-]+\.\bcom\b")]
    outs = ["cat", "ws", "wn", "ds", "dn", "norm", "re"]
    types = {"wn": TensorProto.INT64, "dn": TensorProto.INT64, "re": TensorProto.BOOL}
    g = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info(o, types.get(o, S), None)
                                            for o in outs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])
    m.ir_version = 8
    got, want = both(m, {})
    for name, gv, wv in zip(outs, got, want):
        if wv.dtype == object:
            assert gv.shape == wv.shape and gv.astype(str).tolist() == wv.astype(str).tolist(), \
                f"{name}: {gv.tolist()} vs {wv.tolist()}"
        else:
            assert np.array_equal(gv, wv), f"{name}: {gv.tolist()} vs {wv.tolist()}"


@test
def tfidf_modes():
    """TfIdfVectorizer beyond the node tests (TF over int64 only): IDF and
    TFIDF with weights, int32 ids, and a string pool over constant strings."""
    F = TensorProto.FLOAT
    pool = [2, 3, 5, 4, 5, 6, 7, 8, 6, 7]
    x = RNG.integers(2, 9, (3, 12)).astype(np.int32)
    for mode in ("IDF", "TFIDF"):
        m = one_node("TfIdfVectorizer", [("x", TensorProto.INT32, [3, 12])], [("y", F, None)], 9,
                     mode=mode, min_gram_length=1, max_gram_length=2, max_skip_count=2,
                     ngram_counts=[0, 4], ngram_indexes=[0, 1, 2, 3, 4, 5, 6], pool_int64s=pool,
                     weights=[0.5, 1.0, 2.0, 0.25, 3.0, 1.5, 0.75])
        got, want = both(m, {"x": x})
        close(got[0], want[0], f"TfIdfVectorizer {mode}")
    S = TensorProto.STRING
    words = [b"the", b"cat", b"sat", b"on", b"the", b"mat", b"the", b"cat"]
    n = helper.make_node
    nodes = [n("Constant", [], ["w"], value=helper.make_tensor("wv", S, [8], words)),
             n("TfIdfVectorizer", ["w"], ["y"], mode="TFIDF", min_gram_length=1, max_gram_length=2,
               max_skip_count=1, ngram_counts=[0, 3], ngram_indexes=[0, 1, 2, 3, 4],
               pool_strings=["the", "cat", "mat", "the", "cat", "cat", "sat"],
               weights=[1.0, 2.0, 0.5, 4.0, 0.25])]
    g = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("y", F, None)])
    mdl = helper.make_model(g, opset_imports=[helper.make_opsetid("", 9)])
    mdl.ir_version = 8
    got, want = both(mdl, {})
    close(got[0], want[0], "TfIdfVectorizer strings")


@test
def label_encoder_numbers():
    """ai.onnx.ml LabelEncoder on numbers (the node tests map strings):
    int64 -> float with a default, float -> int64 with the default -1."""
    for xdt, x, attrs, ydt in (
            (TensorProto.INT64, np.array([[3, 7, 1], [7, 9, 3]], np.int64),
             {"keys_int64s": [1, 3, 7], "values_floats": [0.5, -2.0, 8.25], "default_float": 4.0},
             TensorProto.FLOAT),
            (TensorProto.FLOAT, np.array([1.5, 2.0, -1.0, 1.5], np.float32),
             {"keys_floats": [1.5, -1.0], "values_int64s": [10, 20]}, TensorProto.INT64)):
        node = helper.make_node("LabelEncoder", ["x"], ["y"], domain="ai.onnx.ml", **attrs)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", xdt, list(x.shape))],
                              [helper.make_tensor_value_info("y", ydt, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("ai.onnx.ml", 3)])
        m.ir_version = 8
        got, want = both(m, {"x": x})
        assert np.array_equal(got[0], want[0]), f"LabelEncoder {attrs}: {got[0]} vs {want[0]}"


@test
def unique_random():
    F, I = TensorProto.FLOAT, TensorProto.INT64
    for axis in (None, 0, 1, -1):
        for srt in (0, 1):
            x = RNG.integers(0, 3, (6, 4, 2)).astype(np.float32)
            x[3] = x[1]  # repeated slices along axis 0
            x[:, 2] = x[:, 0]
            attrs = {"sorted": srt} if axis is None else {"sorted": srt, "axis": axis}
            m = one_node("Unique", [("x", F, [6, 4, 2])],
                         [("y", F, None), ("idx", I, None), ("inv", I, None), ("cnt", I, None)], 11,
                         **attrs)
            got, want = both(m, {"x": x})
            for g, w, name in zip(got, want, ("Y", "indices", "inverse", "counts")):
                assert g.shape == w.shape and np.array_equal(g, w), (axis, srt, name, g, w)


def run_tacoc(m, feeds, *extra, env=None):
    """m's outputs from `tacoc run` (extra arguments, environment additions)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        onnx.save(m, path)
        args = [A.tacoc, "run", path, "--output-dir", os.path.join(tmp, "out"), *extra]
        for k, v in feeds.items():
            np.save(os.path.join(tmp, k + ".npy"), v)
            args += ["--input", f"{k}={os.path.join(tmp, k + '.npy')}"]
        p = subprocess.run(args, capture_output=True, text=True, timeout=120,
                           env={**os.environ, **(env or {})})
        assert p.returncode == 0, p.stderr.strip()
        return [np.load(os.path.join(tmp, "out", o.name + ".npy")) for o in m.graph.output]


@test
def matmul_integer_to_float_packed():
    """com.microsoft.MatMulIntegerToFloat with an int8 initializer B: the
    fast kernels run oneDNN's int8 matmul on B packed once, the zero point
    of A corrected with B's column sums; bit for bit the reference kernels'
    result (1 and 2 threads, repeated runs on the cached weights), and ONNX
    Runtime's within float rounding. A B zero point takes the other path."""
    for shape, k, n, bzp in (((5, 33), 33, 19, False), ((2, 7, 64), 64, 48, False),
                             ((128, 96), 96, 160, False), ((3, 40), 40, 17, True)):
        w = RNG.integers(-127, 128, (k, n)).astype(np.int8)
        inits = [helper.make_tensor("B", TensorProto.INT8, [k, n], w.tobytes(), raw=True),
                 helper.make_tensor("bs", TensorProto.FLOAT, [n], RNG.uniform(0.001, 0.02, n)),
                 helper.make_tensor("bias", TensorProto.FLOAT, [n], RNG.uniform(-1, 1, n))]
        ins = ["A", "B", "as", "bs", "az", "bz" if bzp else "", "bias"]
        if bzp:
            inits.append(helper.make_tensor("bz", TensorProto.INT8, [], [3]))
        node = helper.make_node("MatMulIntegerToFloat", ins, ["Y"], domain="com.microsoft")
        g = helper.make_graph([node], "g", [
            helper.make_tensor_value_info("A", TensorProto.UINT8, list(shape)),
            helper.make_tensor_value_info("as", TensorProto.FLOAT, []),
            helper.make_tensor_value_info("az", TensorProto.UINT8, [])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 8
        feeds = {"A": RNG.integers(0, 256, shape).astype(np.uint8),
                 "as": np.array(0.05, np.float32), "az": np.array(131, np.uint8)}
        ref = run_tacoc(m, feeds, env={"TACORT_KERNELS": "reference"})[0]
        for threads in ("1", "2"):
            got = run_tacoc(m, feeds, "--threads", threads, "--repeat", "2")[0]
            assert got.shape == ref.shape and np.array_equal(got.view(np.uint32), ref.view(np.uint32)), \
                (shape, threads, np.abs(got - ref).max())
        want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        close(ref, want, f"MatMulIntegerToFloat {shape}")


def sparse_model(indices, shape=(3, 4), values=(1.5, -2.0, 3.0)):
    from onnx import numpy_helper
    sp = helper.make_sparse_tensor(numpy_helper.from_array(np.array(values, np.float32), "s"),
                                   numpy_helper.from_array(np.array(indices, np.int64)), list(shape))
    g = helper.make_graph([helper.make_node("Add", ["x", "s"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))],
                          sparse_initializer=[sp])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


@test
def quick_gelu_contrib():
    """com.microsoft.QuickGelu: alpha defaults to 1.702; float32 through
    the fast kernels, large enough to split over threads."""
    F = TensorProto.FLOAT
    x = (RNG.standard_normal((7, 1031)) * 4).astype(np.float32)
    for attrs in ({}, {"alpha": 1.0}, {"alpha": -0.3}):
        node = helper.make_node("QuickGelu", ["x"], ["y"], domain="com.microsoft", **attrs)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", F, [7, 1031])],
                              [helper.make_tensor_value_info("y", F, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17),
                                                helper.make_opsetid("com.microsoft", 1)])
        m.ir_version = 8
        got, want = both(m, {"x": x})
        close(got[0], want[0], f"QuickGelu {attrs}")


@test
def sparse_initializers():
    x = RNG.standard_normal((3, 4)).astype(np.float32)
    for idx in ([1, 5, 11], [[0, 1], [1, 1], [2, 3]]):  # linear, and coordinates
        got, want = both(sparse_model(idx), {"x": x})
        close(got[0], want[0], f"sparse indices {idx}")
        dense = x.copy().ravel()
        dense[[1, 5, 11]] += [1.5, -2.0, 3.0]
        assert np.array_equal(got[0].ravel(), dense), got[0]
    # an index outside the shape is refused when the session is created
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bad.onnx")
        onnx.save(sparse_model([1, 5, 12]), path)
        p = subprocess.run([A.tacoc, "run", path, "--random-inputs"], capture_output=True, text=True)
        assert p.returncode == 2 and "sparse initializer 's'" in p.stderr and "out of its shape" in p.stderr, \
            (p.returncode, p.stderr)


def main():
    global A
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    A = ap.parse_args()
    return run_tests(TESTS, "ops")


if __name__ == "__main__":
    A = None
    sys.exit(main())
