"""`tacoc optimize` reports and serving suite: --report FILE.html (sections and
numbers against the JSON report of the same run, self-contained, rendered
headless in Debian's chromium without script errors), --report FILE.json's
new fields, --bench, and --triton-repo (layout, config.pbtxt parsed with the
protobuf text format against Triton's ModelConfig schema and checked against
the model), on small models made here with onnx.helper.

Usage: report.py [--tacoc PATH] [--chromium PATH] [-v]

The models:
  mlp.onnx    x [batch, 16] -> MatMul, Add, Relu, MatMul -> y [batch, 4], with an
              Identity that -O2 removes (symbolic batch: Triton batching)
  fixed.onnx  the same with a fixed batch of 2 (no Triton batching)
  conv.onnx   x [N, 3, 8, 8] -> Conv -> BatchNormalization, the Conv output also a
              graph output, so fuse-conv-bn rejects it ("other readers")
  multi.onnx  x [batch, 16] float and ids [batch] int64 -> y [batch, 4], ids + 1
              (a rank-1 batch input: dims [1] reshaped to [])
  total.onnx  x [batch, 16] -> ReduceSum over the batch -> s [16] (outputs do not
              share the batch dim: no Triton batching)

Prints `ok NAME` / `FAIL NAME: reason` / `NAME: skipped: reason` per test, then
`report: N passed, N failed`.
"""

import argparse
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format
from onnx import TensorProto, helper, numpy_helper

from harness import add_tacoc_option, make, parse_args, save, t, vi

RNG = np.random.default_rng(11)
W1 = RNG.standard_normal((16, 32)).astype(np.float32) * 0.3
B1 = RNG.standard_normal(32).astype(np.float32) * 0.1
W2 = RNG.standard_normal((32, 4)).astype(np.float32) * 0.3
SCREEN = (1200, 2000)


# ---- models ----

def mlp(path, batch="batch"):
    nodes = [helper.make_node("Identity", ["x"], ["xf"]),
             helper.make_node("MatMul", ["xf", "w1"], ["h0"]),
             helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w2"], ["y"])]
    return save(make(nodes, [vi("x", [batch, 16])], [vi("y", [batch, 4])],
                     [t("w1", W1), t("b1", B1), t("w2", W2)]), path)


def conv(path):
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32)
    var = np.abs(RNG.standard_normal(4)).astype(np.float32) + 0.5
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["y"])]
    return save(make(nodes, [vi("x", ["N", 3, 8, 8])],
                     [vi("y", ["N", 4, 8, 8]), vi("c", ["N", 4, 8, 8])],
                     [t("w", w), t("s", np.ones(4, np.float32)), t("b", np.zeros(4, np.float32)),
                      t("m", RNG.standard_normal(4).astype(np.float32)), t("v", var)]), path)


def multi(path):
    nodes = [helper.make_node("MatMul", ["x", "w2x"], ["y"]),
             helper.make_node("Add", ["ids", "one"], ["next_ids"])]
    w = RNG.standard_normal((16, 4)).astype(np.float32)
    return save(make(nodes, [vi("x", ["batch", 16]), vi("ids", ["batch"], TensorProto.INT64)],
                     [vi("y", ["batch", 4]), vi("next_ids", ["batch"], TensorProto.INT64)],
                     [t("w2x", w), t("one", np.ones(1, np.int64))]), path)


def total(path):
    nodes = [helper.make_node("ReduceSum", ["x", "axes"], ["s"], keepdims=0)]
    return save(make(nodes, [vi("x", ["batch", 16])], [vi("s", [16])],
                     [t("axes", np.zeros(1, np.int64))]), path)


# ---- Triton's ModelConfig (the fields tacoc writes and a few around them) ----

TRITON_TYPES = {TensorProto.BOOL: "TYPE_BOOL", TensorProto.UINT8: "TYPE_UINT8",
                TensorProto.UINT16: "TYPE_UINT16", TensorProto.UINT32: "TYPE_UINT32",
                TensorProto.UINT64: "TYPE_UINT64", TensorProto.INT8: "TYPE_INT8",
                TensorProto.INT16: "TYPE_INT16", TensorProto.INT32: "TYPE_INT32",
                TensorProto.INT64: "TYPE_INT64", TensorProto.FLOAT16: "TYPE_FP16",
                TensorProto.FLOAT: "TYPE_FP32", TensorProto.DOUBLE: "TYPE_FP64",
                TensorProto.STRING: "TYPE_STRING", TensorProto.BFLOAT16: "TYPE_BF16"}


def model_config_class():
    """inference.ModelConfig built from a descriptor with the field numbers and
    types of Triton's model_config.proto (no Triton package exists to import),
    so text_format rejects any field or enum value the real schema lacks."""
    F = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="tacoc_test/model_config.proto",
                                           package="inference", syntax="proto3")
    dt = f.enum_type.add(name="DataType")
    for i, n in enumerate(["TYPE_INVALID", "TYPE_BOOL", "TYPE_UINT8", "TYPE_UINT16",
                           "TYPE_UINT32", "TYPE_UINT64", "TYPE_INT8", "TYPE_INT16", "TYPE_INT32",
                           "TYPE_INT64", "TYPE_FP16", "TYPE_FP32", "TYPE_FP64", "TYPE_STRING",
                           "TYPE_BF16"]):
        dt.value.add(name=n, number=i)

    def msg(name, fields):
        m = f.message_type.add(name=name)
        for fname, num, ftype, label, tname in fields:
            fd = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                fd.type_name = tname
        return m

    O, R = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("ModelTensorReshape", [("shape", 1, F.TYPE_INT64, R, None)])
    msg("ModelInput", [("name", 1, F.TYPE_STRING, O, None),
                       ("data_type", 2, F.TYPE_ENUM, O, ".inference.DataType"),
                       ("dims", 4, F.TYPE_INT64, R, None),
                       ("reshape", 5, F.TYPE_MESSAGE, O, ".inference.ModelTensorReshape"),
                       ("is_shape_tensor", 6, F.TYPE_BOOL, O, None),
                       ("allow_ragged_batch", 7, F.TYPE_BOOL, O, None),
                       ("optional", 8, F.TYPE_BOOL, O, None)])
    msg("ModelOutput", [("name", 1, F.TYPE_STRING, O, None),
                        ("data_type", 2, F.TYPE_ENUM, O, ".inference.DataType"),
                        ("dims", 3, F.TYPE_INT64, R, None),
                        ("label_filename", 4, F.TYPE_STRING, O, None),
                        ("reshape", 5, F.TYPE_MESSAGE, O, ".inference.ModelTensorReshape"),
                        ("is_shape_tensor", 6, F.TYPE_BOOL, O, None)])
    msg("ModelDynamicBatching", [("preferred_batch_size", 1, F.TYPE_INT32, R, None),
                                 ("max_queue_delay_microseconds", 2, F.TYPE_UINT64, O, None),
                                 ("preserve_ordering", 3, F.TYPE_BOOL, O, None)])
    msg("ModelConfig", [("name", 1, F.TYPE_STRING, O, None),
                        ("platform", 2, F.TYPE_STRING, O, None),
                        ("max_batch_size", 4, F.TYPE_INT32, O, None),
                        ("input", 5, F.TYPE_MESSAGE, R, ".inference.ModelInput"),
                        ("output", 6, F.TYPE_MESSAGE, R, ".inference.ModelOutput"),
                        ("default_model_filename", 8, F.TYPE_STRING, O, None),
                        ("dynamic_batching", 11, F.TYPE_MESSAGE, O,
                         ".inference.ModelDynamicBatching"),
                        ("backend", 17, F.TYPE_STRING, O, None)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


ModelConfig = model_config_class()


def parse_config(path):
    cfg = ModelConfig()
    with open(path) as fh:
        text_format.Parse(fh.read(), cfg)
    return cfg


def check_config_against_model(cfg, model_path, batched):
    """Names, data types and dims of the config against the ONNX model's declarations."""
    m = onnx.load(model_path, load_external_data=False)
    inits = {i.name for i in m.graph.initializer}
    inputs = [i for i in m.graph.input if i.name not in inits]
    for entries, values, what in ((cfg.input, inputs, "input"),
                                  (cfg.output, list(m.graph.output), "output")):
        assert [e.name for e in entries] == [v.name for v in values], \
            f"{what} names {[e.name for e in entries]} vs model {[v.name for v in values]}"
        for e, v in zip(entries, values):
            tt = v.type.tensor_type
            want_type = TRITON_TYPES[tt.elem_type]
            got_type = ModelConfig.DESCRIPTOR.file.pool.FindEnumTypeByName(
                "inference.DataType").values_by_number[e.data_type].name
            assert got_type == want_type, f"{what} {v.name}: {got_type}, want {want_type}"
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim]
            if batched:
                assert tt.shape.dim[0].dim_param, f"{what} {v.name}: dim 0 not symbolic"
                dims = dims[1:]
            if dims:
                assert list(e.dims) == dims, f"{what} {v.name}: dims {list(e.dims)}, want {dims}"
                assert not e.HasField("reshape"), f"{what} {v.name}: unexpected reshape"
            else:
                assert list(e.dims) == [1] and e.HasField("reshape") and \
                    list(e.reshape.shape) == [], f"{what} {v.name}: want dims [1] reshaped to []"


# ---- HTML ----

class Page(html.parser.HTMLParser):
    """Tables by id (rows of cells: (text, data-v)), section ids, svg count,
    and the attributes that could load something from outside."""

    def __init__(self):
        super().__init__()
        self.tables, self.sections, self.svgs, self.external, self.tags = {}, [], 0, [], []
        self.marker = None
        self._table = None
        self._row = None
        self._cell = None
        self._in_tbody = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        for k in ("src", "href", "xlink:href", "action", "data"):
            if k in a and a[k] is not None and not a[k].startswith("#"):
                self.external.append(f"<{tag} {k}={a[k]}>")
        if tag in ("link", "iframe", "object", "embed", "img", "base"):
            self.external.append(f"<{tag}>")
        if tag == "section":
            self.sections.append(a.get("id"))
        elif tag == "svg":
            self.svgs += 1
        elif tag == "table":
            self._table = a.get("id")
            if self._table:
                self.tables[self._table] = {"head": [], "body": [], "foot": []}
        elif tag in ("thead", "tbody", "tfoot"):
            self._part = {"thead": "head", "tbody": "body", "tfoot": "foot"}[tag]
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ["", a.get("data-v")]
        if a.get("id") == "tc-script":
            self.marker = a.get("data-status")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append((self._cell[0].strip(), self._cell[1]))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._table in self.tables:
                self.tables[self._table][self._part].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data


def parse_page(path):
    p = Page()
    with open(path, encoding="utf-8") as f:
        text = f.read()
    p.feed(text)
    return p, text


def png_pixels(path):
    """(width, height, pixels as uint8 [h, w, channels]) of an 8-bit RGB/RGBA PNG."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    pos, idat, hdr = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    w, h, depth, color, _, _, interlace = hdr
    assert depth == 8 and color in (2, 6) and interlace == 0, f"unexpected PNG format {hdr}"
    ch = 3 if color == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), np.uint8)
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(w, ch), axis=0).reshape(-1) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average, Paeth: sequential along the row
            cur = np.zeros(w * ch, np.int32)
            for x in range(w * ch):
                a = cur[x - ch] if x >= ch else 0
                b = prev[x]
                c = prev[x - ch] if x >= ch else 0
                if kind == 3:
                    pred = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                cur[x] = (line[x] + pred) % 256
        out[y] = cur
        prev = cur
    return w, h, out.reshape(h, w, ch)


# ---- running ----

class Ctx:
    def __init__(self, tacoc, chromium, tmp, verbose):
        self.tacoc, self.chromium, self.tmp, self.verbose = tacoc, chromium, tmp, verbose
        self.models = {}
        self._runs = {}

    def p(self, *names):
        return os.path.join(self.tmp, *names)

    def optimize(self, model, *args, rc=0):
        cmd = [self.tacoc, "optimize", self.models[model], *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{' '.join(cmd)}: timed out")
        if self.verbose:
            print(f"$ {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
        assert proc.returncode == rc, \
            f"optimize {' '.join(args)}: exit {proc.returncode}, wanted {rc}: {proc.stderr.strip()}"
        if rc == 2:
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("tacoc: error: "), \
                f"want one 'tacoc: error:' line, got {proc.stderr!r}"
        return proc

    def full_run(self):
        """One run with every feature and both reports (shared by several tests)."""
        if "full" not in self._runs:
            out, j, h = self.p("conv.opt.onnx"), self.p("full.json"), self.p("full.html")
            proc = self.optimize("conv", "-o", out, "--report", j, "--report", h, "--bench",
                                 "--triton-repo", self.p("repo"), "--triton-max-batch", "8")
            self._runs["full"] = (proc, json.load(open(j)), h)
        return self._runs["full"]

    def plain_run(self):
        """-O2 with reports and nothing else: no bench, Triton or precision sections."""
        if "plain" not in self._runs:
            out, j, h = self.p("mlp.opt.onnx"), self.p("plain.json"), self.p("plain.html")
            proc = self.optimize("mlp", "-o", out, "--report", j, "--report", h, "--quiet")
            self._runs["plain"] = (proc, json.load(open(j)), h)
        return self._runs["plain"]

    def chromium_run(self, *args, timeout=60):
        cmd = [self.chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions",
               f"--user-data-dir={self.p('chromium-profile')}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def chromium_render(ctx, page):
    """Screenshot and DOM of page; (png path, dom text, console errors)."""
    url = "file://" + os.path.abspath(page)
    shot = page + ".png"
    if os.path.exists(shot):
        os.remove(shot)
    proc = ctx.chromium_run(f"--screenshot={shot}", f"--window-size={SCREEN[0]},{SCREEN[1]}",
                            "--hide-scrollbars", url)
    assert os.path.isfile(shot), f"chromium wrote no screenshot: {proc.stderr[-600:]}"
    proc = ctx.chromium_run("--dump-dom", "--enable-logging=stderr", "--v=0",
                            "--virtual-time-budget=2000", url)
    assert proc.returncode == 0, f"chromium --dump-dom: exit {proc.returncode}: {proc.stderr[-600:]}"
    errors = [line for line in proc.stderr.splitlines()
              if "CONSOLE" in line and re.search(r"Uncaught|Error|error", line)]
    return shot, proc.stdout, errors


def dom_marker(dom):
    m = re.search(r'<span[^>]*id="tc-script"[^>]*>', dom)
    if not m:
        return None
    s = re.search(r'data-status="([^"]*)"', m.group(0))
    return s.group(1) if s else None


# ---- tests: JSON ----

def test_json_keeps_schema_and_adds_fields(ctx):
    _, r, _ = ctx.plain_run()
    assert r["schema"] == "tacoc.optimize-report/1"
    for key in ("input", "output", "level", "passes", "before", "after"):
        assert key in r, key
    # Identity removed, the 2-D MatMul + bias Add fused into a Gemm
    assert r["before"]["nodes"] == 5 and r["after"]["nodes"] == 3, (r["before"], r["after"])
    assert r["after"]["ops"] == {"Gemm": 1, "MatMul": 1, "Relu": 1}, r["after"]["ops"]
    assert r["bench"] is None and r["triton"] is None and r["explain"] == [], r["explain"]
    assert "layer_errors" not in r


def test_json_explain_matches_stderr(ctx):
    j = ctx.p("explain.json")
    proc = ctx.optimize("conv", "-o", ctx.p("conv.e.onnx"), "--report", j, "--explain", "-q")
    r = json.load(open(j))
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert lines, "--explain printed nothing"
    got = [f"{e['pass']}: node '{e['node']}' ({e['op']}): {e['reason']}" for e in r["explain"]]
    assert got == lines, f"JSON explain {got} vs stderr {lines}"
    assert any(e["pass"] == "fuse-conv-bn" and e["op"] == "BatchNormalization" and
               "other readers" in e["reason"] for e in r["explain"]), r["explain"]


# ---- tests: HTML content ----

def cells(table, section="body"):
    return [[c[0] for c in row] for row in table[section]]


def test_html_sections_and_numbers_match_json(ctx):
    _, r, page = ctx.full_run()
    p, text = parse_page(page)
    for s in ("summary", "passes", "ops", "rejected", "benchmark", "triton"):
        assert s in p.sections, f"section {s} missing: {p.sections}"
    assert "precision" not in p.sections, "precision section without precision data"
    # Passes: order, node counts, rewrites, time as in the JSON.
    rows = p.tables["passes-table"]["body"]
    assert len(rows) == len(r["passes"]), (len(rows), len(r["passes"]))
    for row, ps in zip(rows, r["passes"]):
        assert row[1][0] == ps["name"], (row[1][0], ps["name"])
        assert int(row[2][1]) == ps["nodes_before"] and int(row[3][1]) == ps["nodes_after"], \
            (ps["name"], row)
        assert int(row[5][1]) == ps["initializers_before"], row
        assert int(row[6][1]) == ps["initializers_after"], row
        assert round(float(row[8][1]) * 1000) == ps["microseconds"], (row[8], ps["microseconds"])
        for kind, count in ps["rewrites"].items():
            assert f"{kind} \u00d7{count}" in row[7][0], (row[7][0], ps["rewrites"])
    # Ops: every op of either histogram, totals.
    ops = {row[0][0]: (int(row[1][1]), int(row[2][1])) for row in p.tables["ops-table"]["body"]}
    names = set(r["before"]["ops"]) | set(r["after"]["ops"])
    assert set(ops) == names, (ops, names)
    for op, (b, a) in ops.items():
        assert b == r["before"]["ops"].get(op, 0) and a == r["after"]["ops"].get(op, 0), op
    foot = p.tables["ops-table"]["foot"]
    assert [int(c[1]) for c in foot[0][1:3]] == [r["before"]["nodes"], r["after"]["nodes"]]
    assert [int(c[1]) for c in foot[1][1:3]] == [r["before"]["parameter_bytes"],
                                                 r["after"]["parameter_bytes"]]
    # Rejected candidates: the JSON's explain entries, in order.
    rej = cells(p.tables["rejected-table"])
    assert rej == [[e["pass"], e["node"], e["op"], e["reason"]] for e in r["explain"]], rej
    assert any("other readers" in row[3] for row in rej), rej
    # Benchmark: the same runs, numbers equal to the JSON's.
    runs = [run for res in r["bench"]["results"] for run in res["runs"]]
    brows = p.tables["bench-table"]["body"]
    assert len(brows) == len(runs) == 2, (len(brows), len(runs))
    for row, run in zip(brows, runs):
        assert run["model"] in row[1][0] and row[2][0] == run["runtime"], (row, run)
        for col, key in zip(range(3, 9), ("p50", "p90", "p99", "mean", "min", "max")):
            assert float(row[col][1]) == run["latency_ms"][key], (key, row[col], run)
        assert int(row[9][1]) == run["iterations"]
    acc = p.tables["accuracy-table"]["body"]
    assert len(acc) == len(runs[1]["accuracy"]), acc
    for row, a in zip(acc, runs[1]["accuracy"]):
        assert row[3][0] == a["output"] and float(row[6][1]) == a["cos"], (row, a)
    # Triton: the curve and the settings.
    curve = p.tables["triton-table"]["body"]
    assert [int(row[0][1]) for row in curve] == [c["batch"] for c in r["triton"]["curve"]]
    assert f"max_batch_size: {r['triton']['max_batch_size']}" in text
    # Charts: ops, latency, Triton curve.
    assert p.svgs == 3, p.svgs


def test_html_without_bench_has_no_empty_sections(ctx):
    _, r, page = ctx.plain_run()
    p, text = parse_page(page)
    assert p.sections == ["summary", "passes", "ops", "rejected"], p.sections
    assert p.svgs == 1, f"{p.svgs} charts, want only the op chart"
    assert "No pass rejected a near match." in text
    assert "bench-table" not in p.tables and "triton-table" not in p.tables


def test_precision_section_shows_per_layer_errors(ctx):
    out, j, h = ctx.p("mlp.fp16.onnx"), ctx.p("fp16.json"), ctx.p("fp16.html")
    ctx.optimize("mlp", "-o", out, "--precision", "fp16", "--keep-io-types", "--report", j,
                 "--report", h, "--quiet")
    r = json.load(open(j))
    layers = r["layer_errors"]["layers"]
    assert layers and all(x["error"] >= 0 for x in layers), layers
    assert any(x["op"] in ("MatMul", "Gemm") for x in layers), layers
    p, text = parse_page(h)
    assert "precision" in p.sections, p.sections
    for x in layers:
        assert x["layer"] in text, f"layer {x['layer']} not on the page"


def test_html_self_contained(ctx):
    for page in (ctx.full_run()[2], ctx.plain_run()[2]):
        p, text = parse_page(page)
        assert not p.external, f"{page}: loads {p.external}"
        assert not re.search(r"url\(|@import|https?://", text), \
            f"{page}: refers to something outside the file"
        assert p.tags.count("style") == 1 and p.tags.count("script") == 1, p.tags
        assert p.marker == "off", "the marker must start as 'off' and be set by the script"


# ---- tests: HTML in chromium ----

def test_html_renders_in_chromium(ctx):
    if not ctx.chromium:
        return "skipped: chromium not available"
    page = ctx.full_run()[2]
    shot, dom, errors = chromium_render(ctx, page)
    assert not errors, f"console errors: {errors}"
    assert dom_marker(dom) == "ok", f"the script did not finish: marker {dom_marker(dom)!r}"
    w, h, px = png_pixels(shot)
    assert (w, h) == SCREEN, f"screenshot is {w}x{h}, want {SCREEN[0]}x{SCREEN[1]}"
    flat = px[:, :, :3].reshape(-1, 3)
    background = np.all(flat == flat[0], axis=1).mean()
    colors = len(np.unique(flat[::7], axis=0))
    assert background < 0.97 and colors > 20, \
        f"screenshot looks blank: {background:.1%} background, {colors} colours"
    # The bar colours of the charts are on screen (rendered SVG, not just text).
    for rgb in ((0x7b, 0x8d, 0xa6), (0xe8, 0x73, 0x1a)):
        assert np.all(flat == rgb, axis=1).sum() > 200, f"no chart bars of colour {rgb}"


def test_chromium_check_catches_script_errors(ctx):
    """The render check fails on a page whose script throws (a control for the test above)."""
    if not ctx.chromium:
        return "skipped: chromium not available"
    page = ctx.p("broken.html")
    text = open(ctx.plain_run()[2], encoding="utf-8").read()
    text = text.replace("'use strict';", "'use strict'; null.boom();", 1)
    open(page, "w", encoding="utf-8").write(text)
    _, dom, errors = chromium_render(ctx, page)
    assert dom_marker(dom) == "off", dom_marker(dom)
    assert errors, "the console error of the broken page was not seen"


# ---- tests: --bench ----

def test_bench_table_and_json(ctx):
    proc, r, _ = ctx.full_run()
    out = proc.stdout
    assert "tacoc bench: 2 models" in out and "accuracy vs" in out, out
    b = r["bench"]
    assert b["schema"] == "tacoc.bench/1" and b["runtimes"] == ["tacort"], b
    assert b["models"] == [ctx.models["conv"], ctx.p("conv.opt.onnx")], b["models"]
    runs = b["results"][0]["runs"]
    for run in runs:
        lat = run["latency_ms"]
        assert run["iterations"] == 20 and 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= \
            lat["p99"] <= lat["max"] < 1000, run
        line = next(l for l in out.splitlines() if l.split()[:2] == [run["model"], "tacort"])
        assert abs(float(line.split()[2]) - lat["p50"]) <= 0.0001 + 1e-3 * lat["p50"], \
            (line, lat["p50"])
    acc = runs[1]["accuracy"]
    assert [a["output"] for a in acc] == ["y", "c"] and all(a["cos"] > 0.9999 for a in acc), acc


def test_bench_both_runtimes(ctx):
    j = ctx.p("ort.json")
    proc = ctx.optimize("mlp", "-o", ctx.p("mlp.ort.onnx"), "--report", j,
                        "--bench-runtime", "tacort,ort")
    b = json.load(open(j))["bench"]
    assert b["runtimes"] == ["tacort", "ort"] and b["onnxruntime_version"], b["runtimes"]
    runs = b["results"][0]["runs"]
    assert [(x["model_index"], x["runtime"]) for x in runs] == \
        [(0, "tacort"), (1, "tacort"), (0, "ort"), (1, "ort")], runs
    assert all(a["max_abs"] < 1e-4 for x in runs[1:] for a in x["accuracy"]), runs
    assert proc.stdout.count(" ort ") >= 2, proc.stdout


def test_bench_quiet_prints_nothing(ctx):
    proc = ctx.optimize("mlp", "-o", ctx.p("mlp.q.onnx"), "--bench", "-q")
    assert proc.stdout == "", proc.stdout


def test_bench_bad_runtime(ctx):
    ctx.optimize("mlp", "-o", ctx.p("x.onnx"), "--bench-runtime", "tvm", rc=2)


# ---- tests: --triton-repo ----

def test_triton_symbolic_batch(ctx):
    _, r, _ = ctx.full_run()
    tr = r["triton"]
    d = ctx.p("repo", "conv.opt")
    assert sorted(os.listdir(ctx.p("repo"))) == ["conv.opt"]
    assert sorted(os.listdir(d)) == ["1", "config.pbtxt"], os.listdir(d)
    assert sorted(os.listdir(os.path.join(d, "1"))) == ["model.onnx"]
    model = os.path.join(d, "1", "model.onnx")
    assert open(model, "rb").read() == open(ctx.p("conv.opt.onnx"), "rb").read(), \
        "1/model.onnx differs from OUT"
    cfg = parse_config(os.path.join(d, "config.pbtxt"))
    assert cfg.name == "conv.opt" and cfg.platform == "onnxruntime_onnx", cfg
    assert 1 <= cfg.max_batch_size <= 8 and cfg.max_batch_size == tr["max_batch_size"], cfg
    check_config_against_model(cfg, model, batched=True)
    assert cfg.HasField("dynamic_batching"), "no dynamic_batching"
    pref = list(cfg.dynamic_batching.preferred_batch_size)
    assert pref and pref == sorted(pref) and max(pref) <= cfg.max_batch_size, pref
    assert pref == tr["dynamic_batching"]["preferred_batch_size"], (pref, tr)
    assert cfg.dynamic_batching.max_queue_delay_microseconds >= 100, cfg.dynamic_batching
    curve = tr["curve"]
    batches = [c["batch"] for c in curve]
    assert batches == [1, 2, 4, 8][:len(batches)] and len(batches) >= 2, batches
    best = max(curve, key=lambda c: c["throughput_per_s"])
    assert best["batch"] == cfg.max_batch_size, (best, cfg.max_batch_size)
    for c in curve:
        assert c["p50_ms"] > 0 and abs(c["throughput_per_s"] - c["batch"] * 1e3 / c["p50_ms"]) \
            <= 1e-3 * c["throughput_per_s"], c
    # The repository's model runs in ONNX Runtime at max_batch_size.
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = RNG.standard_normal((cfg.max_batch_size, 3, 8, 8)).astype(np.float32)
    y, _ = sess.run(["y", "c"], {"x": x})
    assert y.shape == (cfg.max_batch_size, 4, 8, 8), y.shape


def test_triton_fixed_batch(ctx):
    j = ctx.p("fixed.json")
    proc = ctx.optimize("fixed", "-o", ctx.p("fixed.opt.onnx"), "--triton-repo", ctx.p("frepo"),
                        "--triton-name", "fixed_mlp", "--report", j)
    cfg = parse_config(ctx.p("frepo", "fixed_mlp", "config.pbtxt"))
    assert cfg.name == "fixed_mlp" and cfg.max_batch_size == 0, cfg
    assert not cfg.HasField("dynamic_batching"), cfg
    check_config_against_model(cfg, ctx.p("frepo", "fixed_mlp", "1", "model.onnx"), batched=False)
    assert list(cfg.input[0].dims) == [2, 16] and list(cfg.output[0].dims) == [2, 4], cfg
    tr = json.load(open(j))["triton"]
    assert tr["max_batch_size"] == 0 and tr["curve"] == [] and tr["dynamic_batching"] is None
    assert "fixed dim 0 of 2" in tr["unbatched_reason"], tr["unbatched_reason"]
    assert "max_batch_size 0" in proc.stdout, proc.stdout


def test_triton_types_and_rank1_batch(ctx):
    ctx.optimize("multi", "-o", ctx.p("multi.opt.onnx"), "--triton-repo", ctx.p("mrepo"),
                 "--triton-max-batch", "2", "-q")
    cfg = parse_config(ctx.p("mrepo", "multi.opt", "config.pbtxt"))
    assert 1 <= cfg.max_batch_size <= 2, cfg
    check_config_against_model(cfg, ctx.p("mrepo", "multi.opt", "1", "model.onnx"), batched=True)
    ids = next(i for i in cfg.input if i.name == "ids")
    assert list(ids.dims) == [1] and list(ids.reshape.shape) == [], ids


def test_triton_outputs_without_batch_dim(ctx):
    j = ctx.p("total.json")
    ctx.optimize("total", "-o", ctx.p("total.opt.onnx"), "--triton-repo", ctx.p("trepo"),
                 "--report", j, "-q")
    cfg = parse_config(ctx.p("trepo", "total.opt", "config.pbtxt"))
    assert cfg.max_batch_size == 0 and not cfg.HasField("dynamic_batching"), cfg
    check_config_against_model(cfg, ctx.p("trepo", "total.opt", "1", "model.onnx"), batched=False)
    assert list(cfg.input[0].dims) == [-1, 16], cfg.input[0]
    assert "output 's'" in json.load(open(j))["triton"]["unbatched_reason"]


def test_triton_max_batch_limit_and_zero(ctx):
    j = ctx.p("lim.json")
    ctx.optimize("mlp", "-o", ctx.p("mlp.lim.onnx"), "--triton-repo", ctx.p("lrepo"),
                 "--triton-max-batch", "3", "--report", j, "-q")
    tr = json.load(open(j))["triton"]
    assert [c["batch"] for c in tr["curve"]] in ([1], [1, 2], [1, 2, 3]), tr["curve"]
    assert tr["max_batch_size"] <= 3
    ctx.optimize("mlp", "-o", ctx.p("mlp.zero.onnx"), "--triton-repo", ctx.p("zrepo"),
                 "--triton-max-batch", "0", "-q")
    cfg = parse_config(ctx.p("zrepo", "mlp.zero", "config.pbtxt"))
    assert cfg.max_batch_size == 0 and list(cfg.input[0].dims) == [-1, 16], cfg


def test_triton_external_data(ctx):
    ctx.optimize("mlp", "-o", ctx.p("ext", "mlp.onnx"), "--external-data",
                 "--external-data-threshold", "64", "--triton-repo", ctx.p("erepo"),
                 "--triton-max-batch", "2", "-q")
    vdir = ctx.p("erepo", "mlp", "1")
    assert sorted(os.listdir(vdir)) == ["model.onnx", "model.onnx.data"], os.listdir(vdir)
    x = RNG.standard_normal((2, 16)).astype(np.float32)
    got = ort.InferenceSession(os.path.join(vdir, "model.onnx"),
                               providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    want = ort.InferenceSession(ctx.models["mlp"],
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.allclose(got, want, atol=1e-5), np.abs(got - want).max()


def test_triton_bad_name(ctx):
    for name in ("a/b", "..", ""):
        ctx.optimize("mlp", "-o", ctx.p("bad.onnx"), "--triton-repo", ctx.p("brepo"),
                     "--triton-name", name, rc=2)


TESTS = [v for k, v in list(globals().items()) if k.startswith("test_")]


def find_chromium(given):
    if given:
        return given if os.access(given, os.X_OK) else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_tacoc_option(ap)
    ap.add_argument("--chromium", help="the browser to render with (default: chromium on PATH)")
    ap.add_argument("-v", "--verbose", action="store_true")
    ap.add_argument("-k", help="run only tests whose name contains this")
    args = parse_args(ap)
    tacoc = os.path.abspath(args.tacoc)
    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="tacoc-report-") as tmp:
        ctx = Ctx(tacoc, find_chromium(args.chromium), tmp, args.verbose)
        os.makedirs(ctx.p("ext"))
        ctx.models = {"mlp": mlp(ctx.p("mlp.onnx")), "fixed": mlp(ctx.p("fixed.onnx"), 2),
                      "conv": conv(ctx.p("conv.onnx")), "multi": multi(ctx.p("multi.onnx")),
                      "total": total(ctx.p("total.onnx"))}
        for test in TESTS:
            name = test.__name__[5:]
            if args.k and args.k not in name:
                continue
            try:
                note = test(ctx)
            except Exception as e:  # noqa: BLE001 - every failure is reported the same way
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
                continue
            if note and note.startswith("skipped"):
                print(f"{name}: {note}")
                continue
            passed += 1
            print(f"ok {name}")
    print(f"report: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
