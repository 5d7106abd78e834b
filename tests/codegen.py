"""Generated kernels and the tuner end to end: `tacoc optimize --codegen cpu
--tune off|fast`, the kernel library beside the model, the tuning cache, the
report's tuning section, and how `tacoc run --allow-native-code` treats a
library that matches, was altered or is missing.

Usage: codegen.py --tacoc PATH MODELDIR   (MODELDIR: tools/gen_e2e_models.py output)

Prints `ok NAME` / `FAIL NAME: reason` per test, then `codegen: N passed, N failed`.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from harness import run_tests

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def tacoc(*args, ok=True):
    p = subprocess.run([A.tacoc, *args], capture_output=True, text=True, timeout=600)
    if ok is True:
        assert p.returncode == 0, f"tacoc {' '.join(args)}: exit {p.returncode}: {p.stderr.strip()}"
    elif ok is False:
        assert p.returncode == 2, f"tacoc {' '.join(args)}: exit {p.returncode}, expected 2"
    return p


def save_opset13(g, path, metadata=None):
    """Saves graph g as an opset-13 model (IR 8) with the given metadata_props."""
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    for k, v in (metadata or {}).items():
        m.metadata_props.add(key=k, value=v)
    onnx.save(m, path)


def meta(path):
    return {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def bert_inputs(tmp, b=2, s=16):
    rng = np.random.default_rng(3)
    mask = np.ones((b, s), np.int64)
    mask[-1, s // 2:] = 0
    feeds = {"input_ids": rng.integers(0, 100, (b, s)).astype(np.int64), "attention_mask": mask}
    args = []
    for k, v in feeds.items():
        np.save(os.path.join(tmp, k + ".npy"), v)
        args += ["--input", f"{k}={os.path.join(tmp, k + '.npy')}"]
    return feeds, args


def run_model(model, args, tmp, native):
    out = os.path.join(tmp, "out-native" if native else "out")
    p = tacoc("run", model, *args, "--output-dir", out, *(["--allow-native-code"] if native else []))
    y = np.load(os.path.join(out, "last_hidden_state.npy"))
    m = re.search(r"(\d+) nodes run generated kernels", p.stderr)
    return y, (int(m.group(1)) if m else None), p.stderr


def check_library_record(out):
    """The model's record of its library is consistent; returns the node bindings."""
    md = meta(out)
    lib = out + ".tacok"
    assert md.get("ai.tacoc.kernels") == os.path.basename(lib), md
    assert os.path.exists(lib), "no library beside the model"
    assert md.get("ai.tacoc.kernels.sha256") == sha256(lib), "recorded sha256 differs from the file's"
    assert not os.path.exists(lib + ".tmp"), "temporary library left behind"
    names = {n.name for n in onnx.load(out, load_external_data=False).graph.node}
    binds = {k[len("ai.tacoc.kernel:"):]: v for k, v in md.items() if k.startswith("ai.tacoc.kernel:")}
    assert binds, "no node bound to a kernel"
    for node, spec in binds.items():
        assert node in names, f"binding for unknown node {node}"
        assert re.fullmatch(r"kind=(bias_act|layernorm|softmax) act=\d flags=\d+ cols=\d+ width=\d+ "
                            r"unroll=\d( threads=1)? sym=tck_\d+", spec) or \
            re.fullmatch(r"kind=attention act=0 flags=[0-3] cols=\d+ q=\d+ d=\d+ dv=\d+ h=\d+ "
                         r"kvh=\d+ width=\d+ unroll=\d( threads=1)? sym=tck_\d+", spec) or \
            re.fullmatch(r"kind=ewchain cols=\d+ width=\d+ unroll=\d( threads=1)? prog=[0-9a-f]{16} "
                         r"ins=[FRS]+( types=[fbB]+ out=[fbB])? sym=tck_\d+", spec), spec
    return binds


@test
def untuned_codegen_matches_ort_and_builtin():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        p = tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu")
        assert "--tune off" in p.stdout and "nodes bound" in p.stdout, p.stdout
        binds = check_library_record(out)
        feeds, args = bert_inputs(tmp)
        want = ort.InferenceSession(BERT, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        # ONNX Runtime runs the optimized model as it is (the kernels are metadata to it)
        got_ort = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        assert np.allclose(got_ort, want, atol=1e-4, rtol=1e-3)
        y0, n0, err0 = run_model(out, args, tmp, native=False)
        y1, n1, err1 = run_model(out, args, tmp, native=True)
        assert n0 is None and "generated" not in err0, "kernels used without --allow-native-code"
        assert n1 == len(binds), f"{n1} nodes on generated kernels, {len(binds)} bound: {err1}"
        assert np.allclose(y1, want, atol=1e-4, rtol=1e-3), np.abs(y1 - want).max()
        assert np.abs(y1 - y0).max() < 1e-5, np.abs(y1 - y0).max()
        # re-optimizing without --codegen drops the records; -O0 keeps the model as it is
        again = os.path.join(tmp, "again.onnx")
        tacoc("optimize", out, "-o", again, "-O2", "-q")
        assert not any(k.startswith("ai.tacoc.kernel") for k in meta(again)), meta(again)
        tacoc("optimize", out, "-o", again, "-O0", "-q")
        assert meta(again) == meta(out)
        # tacoc bench runs them too when allowed, and says when it cannot
        p = tacoc("bench", BERT, out, "--allow-native-code", "--iters", "3", "--warmup", "1",
                  "--shape", "input_ids=2x16", "--shape", "attention_mask=2x16")
        assert "warning" not in p.stderr and "cos" in p.stdout, p.stderr
        os.rename(out + ".tacok", out + ".moved")
        p = tacoc("bench", BERT, out, "--allow-native-code", "--iters", "2", "--warmup", "0",
                  "--shape", "input_ids=1x8", "--shape", "attention_mask=1x8")
        assert "cannot be read; running libtacort's own kernels" in p.stderr, p.stderr
        os.rename(out + ".moved", out + ".tacok")


@test
def attention_kernel_matches_ort():
    """With the sequence length fixed by --shape, each Attention node gets a
    generated kernel for that length; other lengths run libtacort's own."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        p = tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu")
        assert not any(v.startswith("kind=attention") for v in check_library_record(out).values()), \
            "an attention kernel for a symbolic sequence length"
        tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu", "--shape", "seq=16", "-q")
        binds = check_library_record(out)
        n_att = sum(n.op_type == "Attention" for n in onnx.load(out, load_external_data=False).graph.node)
        att = [v for v in binds.values() if v.startswith("kind=attention")]
        assert n_att and len(att) == n_att, (n_att, binds)
        assert all(" cols=16 q=16 " in v for v in att), att
        sess = ort.InferenceSession(BERT, providers=["CPUExecutionProvider"])
        for s in (16, 9):
            feeds, args = bert_inputs(tmp, s=s)
            want = sess.run(None, feeds)[0]
            y1, n1, err = run_model(out, args, tmp, native=True)
            y0, _, _ = run_model(out, args, tmp, native=False)
            assert n1 == len(binds), err
            assert np.allclose(y1, want, atol=1e-4, rtol=1e-3), (s, np.abs(y1 - want).max())
            assert np.abs(y1 - y0).max() < 1e-5, (s, np.abs(y1 - y0).max())


@test
def attention_kernel_in_other_models():
    """SDPA-exported BERT, a causal Llama-style decoder and a wav2vec2-style
    encoder (no mask) with their sequence lengths fixed: the bound attention
    kernels give ONNX Runtime's outputs."""
    rng = np.random.default_rng(5)
    cases = [("bert_sdpa", "seq=12", {"input_ids": rng.integers(0, 100, (2, 12)),
                                      "attention_mask": np.ones((2, 12), np.int64)}),
             ("llama", "seq=10", {"input_ids": rng.integers(0, 90, (1, 10)),
                                  "attention_mask": np.ones((1, 10), np.int64),
                                  "position_ids": np.arange(10)[None]}),
             ("wav2vec2", "samples=1600", {"input_values": rng.standard_normal((1, 1600), np.float32)})]
    for name, shape, feeds in cases:
        src = os.path.join(A.modeldir, name + ".onnx")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "opt.onnx")
            tacoc("optimize", src, "-o", out, "-O2", "--codegen", "cpu", "--shape", shape, "-q")
            att = [v for v in check_library_record(out).values() if v.startswith("kind=attention")]
            assert att, f"{name}: no attention kernel bound"
            feeds = {k: v.astype(np.int64) if v.dtype.kind == "i" else v for k, v in feeds.items()}
            if name == "bert_sdpa":
                feeds["attention_mask"][1, 7:] = 0
            sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
            want = sess.run(None, feeds)
            args = []
            for k, v in feeds.items():
                np.save(os.path.join(tmp, k + ".npy"), v)
                args += ["--input", f"{k}={os.path.join(tmp, k + '.npy')}"]
            od = os.path.join(tmp, "out")
            p = tacoc("run", out, *args, "--output-dir", od, "--allow-native-code")
            assert "nodes run generated kernels" in p.stderr and "warning" not in p.stderr, p.stderr
            for meta_o, w in zip(sess.get_outputs(), want):
                safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in meta_o.name)
                got = np.load(os.path.join(od, safe + ".npy"))
                err = np.abs(got - w).max()
                assert err <= 1e-4 * max(1.0, np.abs(w).max()), (name, meta_o.name, err)


@test
def untuned_output_is_deterministic():
    with tempfile.TemporaryDirectory() as tmp:
        blobs = []
        for d in ("a", "b"):
            os.mkdir(os.path.join(tmp, d))
            out = os.path.join(tmp, d, "opt.onnx")
            tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu", "--tune", "off", "-q")
            blobs.append((open(out, "rb").read(), open(out + ".tacok", "rb").read()))
        assert blobs[0][0] == blobs[1][0], "models differ"
        assert blobs[0][1] == blobs[1][1], "kernel libraries differ"


@test
def tune_fast_report_and_cache():
    with tempfile.TemporaryDirectory() as tmp:
        out, rep, cache = (os.path.join(tmp, n) for n in ("opt.onnx", "r.json", "tune.cache"))
        html = os.path.join(tmp, "r.html")
        tacoc("optimize", BERT, "-o", out, "-O2", "--tune", "fast", "--shape", "seq=32",
              "--tuning-cache", cache, "--report", rep, "--report", html)
        t = json.load(open(rep))["tuning"]
        page = open(html).read()
        assert 'id="tuning-table"' in page, "no tuning section in the HTML report"
        rows = re.findall(r"<tr><td>(kind=[^<]*)</td><td>([^<]*)</td>", page)
        assert [r[0] for r in rows] == [d["signature"] for d in t["decisions"]], rows
        assert [r[1] for r in rows] == [d["op"] for d in t["decisions"]], rows
        assert t["mode"] == "fast" and t["decisions"], t
        for d in t["decisions"]:
            names = [c["name"] for c in d["candidates"]]
            assert names[0] == "builtin" and len(names) >= 3, names
            assert any(n.endswith("t1") for n in names), names  # one-thread candidates
            assert d["winner"] in names and not d["cached"], d
            if d["signature"].startswith("kind=ewchain"):  # the attention mask: rows of seq
                assert "cols=32" in d["signature"], d["signature"]
            else:
                assert "rows=32" in d["signature"] or "rows=64" in d["signature"], d["signature"]
            b = d["candidates"][0]
            assert b["median_us"] > 0 and b["spread_us"] >= 0, b
        wm = t["whole_model"]
        assert wm and wm["builtin_ms"] > 0 and wm["generated_ms"] > 0, wm
        if t["library"]:  # kept: the generated kernels made the whole model faster
            assert wm["kept"] and wm["generated_ms"] < wm["builtin_ms"], wm
            check_library_record(out)
            assert t["sha256"] == sha256(out + ".tacok")
        else:
            assert not wm["kept"] and not os.path.exists(out + ".tacok"), t
            assert not any(k.startswith("ai.tacoc.kernel") for k in meta(out))
        lines = open(cache).read().splitlines()
        assert lines and all(l.startswith("tacoc-tune/1\t") and len(l.split("\t")) == 6 for l in lines), lines
        # the second run takes every decision from the cache, the same way
        rep2 = os.path.join(tmp, "r2.json")
        tacoc("optimize", BERT, "-o", os.path.join(tmp, "opt2.onnx"), "-O2", "--tune", "fast",
              "--shape", "seq=32", "--tuning-cache", cache, "--report", rep2)
        t2 = json.load(open(rep2))["tuning"]
        assert [d["signature"] for d in t2["decisions"]] == [d["signature"] for d in t["decisions"]]
        for d1, d2 in zip(t["decisions"], t2["decisions"]):
            assert d2["cached"] and d2["winner"] == d1["winner"], (d1, d2)


@test
def altered_or_missing_library_is_not_used():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu", "-q")
        feeds, args = bert_inputs(tmp)
        want = ort.InferenceSession(BERT, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        lib = out + ".tacok"
        data = bytearray(open(lib, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(lib, "wb").write(bytes(data))
        y, n, err = run_model(out, args, tmp, native=True)
        assert "does not match the model" in err and n == 0, err
        assert np.allclose(y, want, atol=1e-4, rtol=1e-3)
        os.remove(lib)
        y, n, err = run_model(out, args, tmp, native=True)
        assert "cannot be read" in err and n == 0, err
        assert np.allclose(y, want, atol=1e-4, rtol=1e-3)


@test
def library_for_a_cpu_feature_this_cpu_lacks_is_not_used():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu", "-q")
        feats = meta(out).get("ai.tacoc.kernels.features", "")
        assert "sse2" in feats.split(","), feats  # the native build records what it may use
        m = onnx.load(out)
        for p in m.metadata_props:
            if p.key == "ai.tacoc.kernels.features":
                p.value = feats + ",avx512er"  # Xeon Phi only
        onnx.save(m, out)
        feeds, args = bert_inputs(tmp)
        y, n, err = run_model(out, args, tmp, native=True)
        assert "needs the CPU feature avx512er" in err and n == 0, err


@test
def named_cpu_builds_for_that_cpu():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        p = tacoc("optimize", BERT, "-o", out, "-O2", "--codegen", "cpu", "--cpu", "x86-64")
        assert "codegen cpu (x86-64/" in p.stdout, p.stdout
        binds = check_library_record(out)
        assert all("width=8" in v for v in binds.values()), binds
        feeds, args = bert_inputs(tmp)
        want = ort.InferenceSession(BERT, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        y, n, err = run_model(out, args, tmp, native=True)
        assert n == len(binds) and np.allclose(y, want, atol=1e-4, rtol=1e-3), err
        # measuring needs this machine: decisions say they were not measured
        rep = os.path.join(tmp, "r.json")
        tacoc("optimize", BERT, "-o", out, "-O2", "--tune", "fast", "--cpu", "x86-64", "-q",
              "--report", rep)
        t = json.load(open(rep))["tuning"]
        assert all("not measured" in d["reason"] for d in t["decisions"]), t["decisions"]
        assert t["whole_model"] is None


def chain_model(path, d=48):
    """Elementwise chains as exporters write them: bias, Erf GELU spelled out,
    SiLU times the GELU (one chain of 9 nodes, 6 inputs), then a value read
    twice (the chain ends there) and Relu -> residual Add -> Clip (a second
    chain). d: the feature dim, a number or a symbol."""
    rng = np.random.default_rng(5)
    D = 48 if isinstance(d, str) else d
    f = lambda name, v: helper.make_tensor(name, TensorProto.FLOAT, list(np.shape(v)),
                                           np.asarray(v, np.float32).ravel().tolist())
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),
             helper.make_node("Add", ["h", "b"], ["hb"]),
             helper.make_node("Div", ["hb", "sqrt2"], ["t0"]),
             helper.make_node("Erf", ["t0"], ["t1"]),
             helper.make_node("Add", ["t1", "one"], ["t2"]),
             helper.make_node("Mul", ["hb", "t2"], ["t3"]),
             helper.make_node("Mul", ["t3", "half"], ["g"]),
             helper.make_node("Sigmoid", ["x"], ["s"]),
             helper.make_node("Mul", ["x", "s"], ["silu"]),
             helper.make_node("Mul", ["silu", "g"], ["z"]),
             helper.make_node("ReduceSum", ["z"], ["total"], keepdims=0),
             helper.make_node("Relu", ["z"], ["r"]),
             helper.make_node("Add", ["r", "x"], ["res"]),
             helper.make_node("Clip", ["res", "lo", "hi"], ["y"])]
    inits = [f("w", rng.standard_normal((D, D)) * 0.2), f("b", rng.standard_normal(D) * 0.1),
             f("sqrt2", 1.4142135), f("one", 1.0), f("half", 0.5), f("lo", -0.5), f("hi", 2.0)]
    if isinstance(d, str):  # no MatMul: the feature dim stays symbolic
        nodes[0] = helper.make_node("Mul", ["x", "x"], ["h"])
        nodes[1] = helper.make_node("Add", ["h", "c"], ["hb"])
        inits = [i for i in inits if i.name not in ("w", "b")] + [f("c", 0.25)]
    g = helper.make_graph(nodes, "chains", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", d])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", d]),
                           helper.make_tensor_value_info("total", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)


def run_chains(model, tmp, x, native, name):
    np.save(os.path.join(tmp, name + ".npy"), x)
    out = os.path.join(tmp, name)
    p = tacoc("run", model, "--input", f"x={os.path.join(tmp, name + '.npy')}", "--repeat", "3",
              "--output-dir", out, *(["--allow-native-code"] if native else []))
    m = re.search(r"(\d+) nodes run generated kernels", p.stderr)
    return ([np.load(os.path.join(out, k + ".npy")) for k in ("y", "total")],
            int(m.group(1)) if m else None)


@test
def elementwise_chains_run_as_one_kernel():
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "chains.onnx"), os.path.join(tmp, "opt.onnx")
        chain_model(src)
        p = tacoc("optimize", src, "-o", out, "-O0", "--codegen", "cpu")
        binds = check_library_record(out)
        chains = sorted(v for v in binds.values() if v.startswith("kind=ewchain"))
        assert len(binds) == 2 and len(chains) == 2, binds
        # the second chain: Relu's input, residual x, Clip's two bounds
        assert any("ins=FFSS" in c for c in chains) and any("ins=FRSSSF" in c for c in chains), chains
        assert p.stdout.count("kind=ewchain") == 2, p.stdout
        for n in (1, 5, 64):
            x = np.random.default_rng(n).standard_normal((n, 48)).astype(np.float32) * 2
            want = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, {"x": x})
            base, n0 = run_chains(out, tmp, x, False, f"b{n}")
            got, n1 = run_chains(out, tmp, x, True, f"n{n}")
            assert n0 is None and n1 == 2, (n0, n1)
            for g, b, w in zip(got, base, want):
                assert np.allclose(g, w, atol=1e-4, rtol=1e-4), np.abs(g - w).max()
                assert np.abs(g - b).max() <= 1e-5 * max(1.0, np.abs(b).max()), np.abs(g - b).max()
        # ONNX Runtime runs the optimized model unchanged
        got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, {"x": x})
        assert all(np.array_equal(g, w) for g, w in zip(got, want))


@test
def elementwise_chain_that_does_not_fit_runs_its_nodes():
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "chains.onnx"), os.path.join(tmp, "opt.onnx")
        chain_model(src, d="d")
        # a symbolic row length: no chain unless --shape fixes it
        p = tacoc("optimize", src, "-o", out, "-O0", "--codegen", "cpu")
        assert "kind=ewchain" not in p.stdout, p.stdout
        tacoc("optimize", src, "-o", out, "-O0", "--codegen", "cpu", "--shape", "d=16", "-q")
        binds = check_library_record(out)
        assert sum("cols=16" in v for v in binds.values()) == 2, binds
        sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
        for shape in ((3, 16), (3, 24), (1, 1)):  # fits; another row length; one element
            x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
            want = sess.run(None, {"x": x})
            got, n1 = run_chains(out, tmp, x, True, f"n{shape[1]}")
            assert n1 == 2, n1
            for g, w in zip(got, want):
                assert g.shape == w.shape and np.allclose(g, w, atol=1e-4, rtol=1e-4), (shape, np.abs(g - w).max())


def qdq_block(path, quantized_out):
    """A QDQ residual block as static quantizers write it: a and b quantized
    and dequantized (uint8), added, Relu, quantized again, and dequantized
    unless quantized_out (then the uint8 tensor is the output)."""
    f = lambda n, v, t=TensorProto.FLOAT: helper.make_tensor(n, t, [], [v])
    nodes = [helper.make_node("QuantizeLinear", ["a", "sa", "za"], ["qa"]),
             helper.make_node("DequantizeLinear", ["qa", "sa", "za"], ["da"]),
             helper.make_node("QuantizeLinear", ["b", "sb", "zb"], ["qb"]),
             helper.make_node("DequantizeLinear", ["qb", "sb", "zb"], ["db"]),
             helper.make_node("Add", ["da", "db"], ["s"]),
             helper.make_node("Relu", ["s"], ["r"]),
             helper.make_node("QuantizeLinear", ["r", "so", "zo"], ["qy" if not quantized_out else "y"])]
    if not quantized_out:
        nodes.append(helper.make_node("DequantizeLinear", ["qy", "so", "zo"], ["y"]))
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 64]) for n in ("a", "b")]
    out_t = TensorProto.UINT8 if quantized_out else TensorProto.FLOAT
    g = helper.make_graph(nodes, "qdq", ins, [helper.make_tensor_value_info("y", out_t, ["n", 64])],
                          [f("sa", 0.02), f("za", 128, TensorProto.UINT8), f("sb", 0.03),
                           f("zb", 120, TensorProto.UINT8), f("so", 0.025), f("zo", 3, TensorProto.UINT8)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=9), path)


@test
def quantize_dequantize_chains_match_the_nodes():
    with tempfile.TemporaryDirectory() as tmp:
        for quantized_out in (False, True):
            src, out = os.path.join(tmp, "qdq.onnx"), os.path.join(tmp, "opt.onnx")
            qdq_block(src, quantized_out)
            tacoc("optimize", src, "-o", out, "-O0", "--codegen", "cpu", "--shape", "n=8", "-q")
            binds = check_library_record(out)
            assert len(binds) == 1, binds
            spec = next(iter(binds.values()))
            assert "kind=ewchain" in spec and ("out=B" in spec) == quantized_out, spec
            assert re.search(r"types=[fB]+ ", spec) and "b" not in spec.split("types=")[1][:9], spec
            sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
            for n in (8, 3):  # the recorded rows and another count: one kernel either way
                rng = np.random.default_rng(n)
                feeds = {"a": (rng.standard_normal((n, 64)) * 2).astype(np.float32),
                         "b": (rng.standard_normal((n, 64)) * 2).astype(np.float32)}
                args = []
                for k, v in feeds.items():
                    np.save(os.path.join(tmp, k + ".npy"), v)
                    args += ["--input", f"{k}={os.path.join(tmp, k + '.npy')}"]
                res = []
                for native in (False, True):
                    d = os.path.join(tmp, f"o{n}{native}")
                    p = tacoc("run", out, *args, "--output-dir", d, *(["--allow-native-code"] if native else []))
                    if native:
                        assert "1 nodes run generated kernels" in p.stderr, p.stderr
                    res.append(np.load(os.path.join(d, "y.npy")))
                want = sess.run(None, feeds)[0]
                assert res[0].dtype == res[1].dtype == want.dtype, (res[0].dtype, want.dtype)
                assert np.array_equal(res[0], res[1]), "generated kernel differs from the nodes"
                step = 0 if quantized_out else 0.025  # ORT's division may round a tie the other way
                d = np.abs(res[1].astype(np.float64) - want.astype(np.float64))
                assert d.max() <= (1 if quantized_out else step) + 1e-6, d.max()
                assert (d > 0).mean() < 0.01, (d > 0).mean()


@test
def tuned_thread_count_is_measured_recorded_and_applied():
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        src, out, rep = (os.path.join(tmp, n) for n in ("chains.onnx", "opt.onnx", "r.json"))
        chain_model(src)
        tacoc("optimize", src, "-o", out, "--tune", "fast", "--shape", "n=32", "--report", rep, "-q")
        t = json.load(open(rep))["tuning"]["threads"]
        md = meta(out)
        if cores < 2:
            assert t is None and "ai.tacoc.kernel.threads" not in md, t
        else:
            counts = [c["threads"] for c in t["candidates"]]
            assert counts[0] == 1 and counts[-1] == cores and counts == sorted(counts), counts
            assert all(c["median_ms"] > 0 for c in t["candidates"]), t
            assert t["recorded"] == ("ai.tacoc.kernel.threads" in md), (t, md)
            if t["recorded"]:
                assert md["ai.tacoc.kernel.threads"] == f"{t['chosen']}/{cores}" and t["chosen"] < cores
            else:
                assert t["chosen"] == cores, t
        # libtacort applies a recorded count for this core count, unless told otherwise
        for value, threads_arg, want in ((f"1/{cores}", [], f"1 threads (the model's tuned count 1/{cores}: applied)"),
                                         (f"1/{cores}", ["--threads", "2"], "2 threads (the model's tuned count "
                                                                          f"1/{cores}: --threads given instead)"),
                                         (f"1/{cores + 7}", [], f"{cores} threads (the model's tuned count "
                                                                f"1/{cores + 7}: not for this core count)")):
            m = onnx.load(src)
            helper.set_model_props(m, {"ai.tacoc.kernel.threads": value})
            onnx.save(m, out)
            p = tacoc("run", out, "--random-inputs", *threads_arg)
            assert want in p.stderr, (value, threads_arg, p.stderr)
        # re-optimizing without tuning drops the record
        tacoc("optimize", out, "-o", os.path.join(tmp, "again.onnx"), "-q")
        assert "ai.tacoc.kernel.threads" not in meta(os.path.join(tmp, "again.onnx"))


def reshape_model(path):
    """x [n] -> Reshape [-1, 7] -> LayerNormalization: n = 1 cannot run."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("LayerNormalization", ["r", "g", "b"], ["y"], axis=-1, epsilon=1e-5)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 7]),
                           helper.make_tensor("g", TensorProto.FLOAT, [7], [1.5] * 7),
                           helper.make_tensor("b", TensorProto.FLOAT, [7], [0.25] * 7)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)


@test
def usage_errors_and_unrunnable_models():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.onnx")
        for args, msg in ((["--tune", "sometimes"], "--tune takes off, fast or full"),
                          (["--codegen", "gpu"], "--codegen takes cpu or off"),
                          (["--tune-budget", "-3", "--tune", "fast"], "--tune-budget needs seconds"),
                          (["--shape", "seq=16"], "--shape sizes the inputs")):
            p = tacoc("optimize", BERT, "-o", out, *args, ok=False)
            assert msg in p.stderr, p.stderr
            assert not os.path.exists(out)
        m = os.path.join(tmp, "reshape.onnx")
        reshape_model(m)
        p = tacoc("optimize", m, "-o", out, "--tune", "fast", ok=False)
        assert "give --shape" in p.stderr, p.stderr
        assert not os.listdir(tmp) == [] and sorted(os.listdir(tmp)) == ["reshape.onnx"], os.listdir(tmp)
        # --tune off falls back to static shapes; --shape lets tuning measure
        tacoc("optimize", m, "-o", out, "--codegen", "cpu", "-q")
        assert meta(out).get("ai.tacoc.kernels") == "o.onnx.tacok"
        tacoc("optimize", m, "-o", out, "--tune", "fast", "--shape", "n=14", "-q")


def gemm_model(path, metadata=None):
    """x [64, 96] -> MatMul w0 [96, 200] -> Relu -> MatMul w1 [200, 33]."""
    rng = np.random.default_rng(9)
    inits = [helper.make_tensor("w0", TensorProto.FLOAT, [96, 200],
                                (rng.standard_normal(96 * 200) * 0.1).astype(np.float32)),
             helper.make_tensor("w1", TensorProto.FLOAT, [200, 33],
                                (rng.standard_normal(200 * 33) * 0.1).astype(np.float32))]
    nodes = [helper.make_node("MatMul", ["x", "w0"], ["h"], name="m0"),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("MatMul", ["r", "w1"], ["y"], name="m1")]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 96])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 33])], inits)
    save_opset13(g, path, metadata)


@test
def gemm_algorithm_is_measured_and_honoured():
    """--tune measures each float32 MatMul signature with an initializer B as
    sgemm and as packed (B packed once); the report gives both times, the
    cache and the metadata record what it chose; libtacort honours a
    recorded "packed" (and ignores an unknown value) with ORT's results."""
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "g.onnx"), os.path.join(tmp, "o.onnx")
        gemm_model(src)
        x = np.random.default_rng(1).standard_normal((64, 96)).astype(np.float32)
        np.save(os.path.join(tmp, "x.npy"), x)
        want = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        rep, cache = os.path.join(tmp, "r.json"), os.path.join(tmp, "c.tune")
        tacoc("optimize", src, "-o", out, "--tune", "fast", "--tuning-cache", cache, "--report", rep, "-q")
        g = json.load(open(rep))["tuning"]["gemms"]
        assert [d["signature"].split(" threads")[0] for d in g["decisions"]] == \
            ["gemm M=64 K=96 N=200", "gemm M=64 K=200 N=33"], g
        for d in g["decisions"]:
            assert d["algorithm"] in ("sgemm", "packed") and d["reason"], d
            assert d["sgemm_us"] > 0 and d["packed_us"] > 0, d
        recorded = {k.split(":", 1)[1]: v for k, v in meta(out).items() if k.startswith("ai.tacoc.kernel.gemm:")}
        chosen = {n: d["algorithm"] for n, d in zip(("m0", "m1"), g["decisions"]) if d["algorithm"] == "packed"}
        assert recorded == (chosen if g["nodes_recorded"] else {}), (recorded, g)
        assert sum(1 for l in open(cache) if "\tgemm M=" in l) == 2, open(cache).read()
        for variant, md in (("packed", {"ai.tacoc.kernel.gemm:m0": "packed", "ai.tacoc.kernel.gemm:m1": "packed"}),
                            ("unknown", {"ai.tacoc.kernel.gemm:m0": "fastest"}), ("plain", {})):
            path = os.path.join(tmp, variant + ".onnx")
            gemm_model(path, md)
            od = os.path.join(tmp, "out-" + variant)
            p = tacoc("run", path, "--input", f"x={os.path.join(tmp, 'x.npy')}", "--output-dir", od,
                      "--repeat", "2", "--profile")
            said = re.search(r"(\d+) nodes run the model's tuned algorithms \((\d+) MatMuls on packed", p.stderr)
            assert (said and said.groups() == ("2", "2")) if variant == "packed" else not said, p.stderr
            cache = re.search(r"oneDNN primitives cached: (\d+), weights packed for them: ([0-9.]+) MiB", p.stdout)
            packed_mib = (96 * 200 + 200 * 33) * 4 / 2**20  # both weights (the blocked layout pads)
            assert cache and (int(cache.group(1)) == 2 and float(cache.group(2)) >= packed_mib - 0.005
                              if variant == "packed" else cache.group(1) == "0"), p.stdout
            listed = re.findall(r"^  (m[01]) +MatMul +[0-9.]+ ms/run$", p.stdout, re.M)
            assert sorted(listed) == ["m0", "m1"], p.stdout  # fewer than ten nodes: all listed
            y = np.load(os.path.join(od, "y.npy"))
            assert np.allclose(y, want, atol=1e-4, rtol=1e-4), (variant, np.abs(y - want).max())
            if variant == "plain":
                assert np.abs(y - base).max() <= 1e-5 * np.abs(base).max(), np.abs(y - base).max()
            else:
                base = y if variant == "packed" else base


@test
def run_profile_nodes():
    """`tacoc run --profile-nodes N` lists the N slowest nodes (0: every node
    that ran) and implies --profile; a bad count is a usage error (exit 2)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, x = os.path.join(tmp, "g.onnx"), os.path.join(tmp, "x.npy")
        gemm_model(path)  # three nodes: m0, relu, m1
        np.save(x, np.random.default_rng(2).standard_normal((64, 96)).astype(np.float32))
        for n, want in (("0", 3), ("1", 1), ("2", 2)):
            p = tacoc("run", path, "--input", f"x={x}", "--repeat", "3", "--profile-nodes", n)
            assert "profile:" in p.stdout, p.stdout
            nodes = p.stdout.split("slowest nodes:\n", 1)[1]
            assert len(re.findall(r"ms/run$", nodes, re.M)) == want, (n, p.stdout)
        for bad in ("-1", "x", ""):
            p = tacoc("run", path, "--input", f"x={x}", "--profile-nodes", bad, ok=False)
            assert "--profile-nodes needs a count" in p.stderr, (bad, p.stderr)


def conv_model(path, metadata=None):
    """Two 3x3 convolutions: 64 -> 64 channels at 14x14 (Winograd by libtacort's
    default rule) and 64 -> 16 (direct by it: fewer than 32 outputs)."""
    rng = np.random.default_rng(5)
    inits = [helper.make_tensor("w0", TensorProto.FLOAT, [64, 64, 3, 3],
                                (rng.standard_normal(64 * 64 * 9) * 0.05).astype(np.float32)),
             helper.make_tensor("w1", TensorProto.FLOAT, [16, 64, 3, 3],
                                (rng.standard_normal(16 * 64 * 9) * 0.05).astype(np.float32)),
             helper.make_tensor("b0", TensorProto.FLOAT, [64], rng.standard_normal(64).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["h"], name="c0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w1"], ["y"], name="c1", pads=[1, 1, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 14, 14])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 14, 14])], inits)
    save_opset13(g, path, metadata)


def run_conv(model, tmp, x):
    np.save(os.path.join(tmp, "x.npy"), x)
    out = os.path.join(tmp, "out-" + os.path.basename(model))
    tacoc("run", model, "--input", f"x={os.path.join(tmp, 'x.npy')}", "--output-dir", out)
    return np.load(os.path.join(out, "y.npy"))


def run_conv_variants(build, tmp, x, variants):
    """{name: y} of libtacort on build(path, metadata) per (name, metadata) variant, each
    checked against ONNX Runtime on the "default" variant's model."""
    got = {}
    for name, md in variants:
        path = os.path.join(tmp, name + ".onnx")
        build(path, md)
        got[name] = run_conv(path, tmp, x)
    want = ort.InferenceSession(os.path.join(tmp, "default.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    for name, y in got.items():
        assert np.allclose(y, want, rtol=1e-4, atol=1e-5), (name, np.abs(y - want).max())
    return got


@test
def conv_algorithm_metadata_is_honoured():
    with tempfile.TemporaryDirectory() as tmp:
        x = np.random.default_rng(6).standard_normal((1, 64, 14, 14)).astype(np.float32)
        key = "ai.tacoc.kernel.conv:"
        got = run_conv_variants(conv_model, tmp, x, (
            ("default", None), ("direct", {key + "c0": "direct"}),
            ("winograd", {key + "c0": "winograd"}),
            ("stale", {key + "gone": "direct", key + "c0": "fastest"})))
        # the node's entry changes the algorithm: the two differ in rounding,
        # the default rule is Winograd here, and entries naming no node or
        # another value are ignored
        assert not np.array_equal(got["direct"], got["winograd"]), "direct and winograd ran the same"
        assert np.array_equal(got["default"], got["winograd"])
        assert np.array_equal(got["stale"], got["default"])


def strided_1x1_model(path, metadata=None):
    """A 3x3 convolution 32 -> 64 channels at 14x14 (its output channels-last), Relu,
    then c1: a 1x1 stride-2 projection 64 -> 128 (direct by libtacort's default
    rule; "subsample" copies the positions it reads and runs a stride-1 1x1)."""
    rng = np.random.default_rng(9)
    inits = [helper.make_tensor("w0", TensorProto.FLOAT, [64, 32, 3, 3],
                                (rng.standard_normal(64 * 32 * 9) * 0.05).astype(np.float32)),
             helper.make_tensor("w1", TensorProto.FLOAT, [128, 64, 1, 1],
                                (rng.standard_normal(128 * 64) * 0.1).astype(np.float32)),
             helper.make_tensor("b1", TensorProto.FLOAT, [128], rng.standard_normal(128).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["h"], name="c0", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w1", "b1"], ["y"], name="c1", strides=[2, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 14, 14])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128, 7, 7])], inits)
    save_opset13(g, path, metadata)


@test
def conv_subsample_metadata_is_honoured():
    """ai.tacoc.kernel.conv:<node> = "subsample" runs a strided 1x1 convolution as a
    stride-1 one on the positions it reads (oneDNN's verbose log names the primitive
    that ran), with ONNX Runtime's results; without it the strided primitive runs."""
    with tempfile.TemporaryDirectory() as tmp:
        x = np.random.default_rng(10).standard_normal((1, 32, 14, 14)).astype(np.float32)
        run_conv_variants(strided_1x1_model, tmp, x, (
            ("default", None), ("subsample", {"ai.tacoc.kernel.conv:c1": "subsample"})))
        np.save(os.path.join(tmp, "x.npy"), x)
        for name, shape in (("default", "ih14oh7kh1sh2"), ("subsample", "ih7oh7kh1sh1")):
            p = subprocess.run([A.tacoc, "run", os.path.join(tmp, name + ".onnx"), "--input",
                                f"x={os.path.join(tmp, 'x.npy')}"], capture_output=True, text=True,
                               timeout=300, env=dict(os.environ, ONEDNN_VERBOSE="1"))
            assert p.returncode == 0, p.stderr
            convs = [ln for ln in p.stdout.splitlines() if ",exec," in ln and "ic64oc128" in ln]
            assert convs and all(shape in ln for ln in convs), (name, convs)


@test
def tune_fast_chooses_conv_algorithms():
    with tempfile.TemporaryDirectory() as tmp:
        src, out, cache = (os.path.join(tmp, n) for n in ("conv.onnx", "opt.onnx", "tune.cache"))
        conv_model(src)
        reps = []
        for i in range(2):
            rep = os.path.join(tmp, f"rep{i}.json")
            p = tacoc("optimize", src, "-o", out, "--tune", "fast", "--tuning-cache", cache,
                      "--report", rep)
            assert "convolution and GEMM algorithms (2 signatures)" in p.stdout, p.stdout
            reps.append(json.load(open(rep))["tuning"]["convolutions"])
        first, second = reps
        assert len(first["decisions"]) == 2, first
        default = {"C=64 M=64": "winograd", "C=64 M=16": "direct"}
        recorded = {k[len("ai.tacoc.kernel.conv:"):]: v for k, v in meta(out).items()
                    if k.startswith("ai.tacoc.kernel.conv:")}
        for d in first["decisions"]:
            assert d["algorithm"] in ("winograd", "direct") and not d["cached"], d
            assert d["direct_us"] > 0 and d["winograd_us"] > 0 and d["reason"], d
        # the model written last records the choices the default rule would
        # not make, unless the whole-model check found them no faster
        for d in second["decisions"]:
            rule = next(v for k, v in default.items() if k in d["signature"])
            node = "c0" if "M=64" in d["signature"] else "c1"
            want = d["algorithm"] if d["algorithm"] != rule and second["nodes_recorded"] else None
            assert recorded.get(node) == want, (d, recorded, second["nodes_recorded"])
        # the second run reads every decision from the cache
        assert [d["algorithm"] for d in second["decisions"]] == \
            [d["algorithm"] for d in first["decisions"]], (first, second)
        assert all(d["cached"] for d in second["decisions"]), second
        x = np.random.default_rng(7).standard_normal((1, 64, 14, 14)).astype(np.float32)
        want = ort.InferenceSession(src, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert np.allclose(run_conv(out, tmp, x), want, rtol=1e-4, atol=1e-5)
        assert np.allclose(ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(
            None, {"x": x})[0], want, rtol=1e-4, atol=1e-5)


def conv1d_model(path, metadata=None):
    """Speech-front-end-style 1-D convolutions: c0 64 -> 64 channels, kernel 3, stride 2,
    pads 1 (oneDNN's GEMM-based convolution by libtacort's default rule), GELU, then c1
    grouped (4 groups, kernel 3: direct, no alternative)."""
    rng = np.random.default_rng(8)
    inits = [helper.make_tensor("w0", TensorProto.FLOAT, [64, 64, 3],
                                (rng.standard_normal(64 * 64 * 3) * 0.1).astype(np.float32)),
             helper.make_tensor("b0", TensorProto.FLOAT, [64], rng.standard_normal(64).astype(np.float32)),
             helper.make_tensor("w1", TensorProto.FLOAT, [64, 16, 3],
                                (rng.standard_normal(64 * 16 * 3) * 0.1).astype(np.float32))]
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["h"], name="c0", strides=[2], pads=[1, 1]),
             helper.make_node("Relu", ["h"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w1"], ["y"], name="c1", group=4, pads=[1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64, 301])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 151])], inits)
    save_opset13(g, path, metadata)


@test
def conv1d_gemm_algorithm():
    """1-D convolutions run oneDNN's GEMM-based kernel by default; "direct" in the metadata
    switches a node back; --tune measures the two."""
    with tempfile.TemporaryDirectory() as tmp:
        x = np.random.default_rng(9).standard_normal((1, 64, 301)).astype(np.float32)
        key = "ai.tacoc.kernel.conv:"
        got = run_conv_variants(conv1d_model, tmp, x, (
            ("default", None), ("direct", {key + "c0": "direct"}), ("gemm", {key + "c0": "gemm"})))
        want = ort.InferenceSession(os.path.join(tmp, "default.onnx"),
                                    providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
        assert not np.array_equal(got["direct"], got["gemm"]), "direct and gemm ran the same"
        assert np.array_equal(got["default"], got["gemm"])
        src, out = os.path.join(tmp, "default.onnx"), os.path.join(tmp, "opt.onnx")
        rep = os.path.join(tmp, "rep.json")
        p = tacoc("optimize", src, "-o", out, "--tune", "fast", "--report", rep)
        assert "convolution and GEMM algorithms (1 signatures)" in p.stdout, p.stdout
        (d,) = json.load(open(rep))["tuning"]["convolutions"]["decisions"]
        assert "group=1" in d["signature"] and "k=3x1 s=2x1" in d["signature"], d
        assert d["algorithm"] in ("direct", "gemm") and d["direct_us"] > 0 and d["gemm_us"] > 0, d
        recorded = {k: v for k, v in meta(out).items() if k.startswith(key)}
        assert recorded in ({}, {key + "c0": "direct"}), recorded
        assert np.allclose(run_conv(out, tmp, x), want, rtol=1e-4, atol=1e-5)


def read_cuda_library(path):
    """The entries of a CUDA kernel library (runtime/culib.h): [(arch, kind, bytes)]."""
    data = open(path, "rb").read()
    assert data[:8] == b"TACOCU1\0", data[:8]
    count = int.from_bytes(data[8:12], "little")
    off, out = 16, []
    for _ in range(count):
        arch, kind = int.from_bytes(data[off:off + 4], "little"), int.from_bytes(data[off + 4:off + 8], "little")
        size = int.from_bytes(data[off + 8:off + 16], "little")
        out.append((arch, kind, data[off + 16:off + 16 + size]))
        off += 16 + size + (-size) % 8
    assert off == len(data), (off, len(data))
    return out


def check_cuda_record(out, dtype=None):
    """The model's record of its CUDA kernel library is consistent; returns the bindings."""
    md = meta(out)
    lib = out + ".tacocu"
    assert md.get("ai.tacoc.cuda.kernels") == os.path.basename(lib), md
    assert md.get("ai.tacoc.cuda.kernels.sha256") == sha256(lib), "recorded sha256 differs from the file's"
    assert not os.path.exists(lib + ".tmp"), "temporary library left behind"
    names = {n.name for n in onnx.load(out, load_external_data=False).graph.node}
    binds = {k[len("ai.tacoc.cuda.kernel:"):]: v for k, v in md.items()
             if k.startswith("ai.tacoc.cuda.kernel:")}
    assert binds, "no node bound to a CUDA kernel"
    dt = "" if dtype is None else f" dtype={dtype}"
    for node, spec in binds.items():
        assert node in names, f"binding for unknown node {node}"
        assert re.fullmatch(r"kind=(bias_act|layernorm|softmax) act=\d flags=\d+ cols=\d+ width=1 "
                            r"unroll=1" + dt + r" sym=tcu_\d+", spec), spec
    ptx = read_cuda_library(lib)[0]
    assert ptx[:2] == (80, 0), ptx[:2]
    for sym in {v.split("sym=")[1] for v in binds.values()}:
        assert f".entry {sym}(".encode() in ptx[2], f"{sym} is not in the PTX"
    return binds


@test
def cuda_target_writes_kernel_library_ort_runs_model():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "opt.onnx")
        p = tacoc("optimize", BERT, "-o", out, "-O2", "--target", "cuda")
        assert re.search(r"cuda: \d+ generated kernels for \d+ nodes, CUBIN for sm_80, sm_90", p.stdout), p.stdout
        binds = check_cuda_record(out)
        kinds = {re.search(r"kind=(\w+)", v).group(1) for v in binds.values()}
        assert kinds == {"layernorm", "bias_act"}, binds  # SkipLayerNormalization x2, BiasGelu
        entries = read_cuda_library(out + ".tacocu")
        assert [(a, k) for a, k, _ in entries] == [(80, 0), (80, 1), (90, 1)], entries
        assert all(b[:4] == b"\x7fELF" for _, k, b in entries if k == 1)
        # the graph is standard ONNX: ONNX Runtime and libtacort (CPU) run it as before
        feeds, args = bert_inputs(tmp)
        want = ort.InferenceSession(BERT, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        assert np.allclose(got, want, atol=1e-4, rtol=1e-3)
        y, _, _ = run_model(out, args, tmp, native=False)
        assert np.allclose(y, want, atol=1e-4, rtol=1e-3)
        # deterministic: the same model and library again
        os.mkdir(os.path.join(tmp, "b"))
        out2 = os.path.join(tmp, "b", "opt.onnx")
        tacoc("optimize", BERT, "-o", out2, "-O2", "--target", "cuda", "-q")
        assert open(out, "rb").read() == open(out2, "rb").read(), "models differ"
        assert open(out + ".tacocu", "rb").read() == open(out2 + ".tacocu", "rb").read()
        # re-optimizing for the CPU drops the records; -O0 keeps the model as it is
        again = os.path.join(tmp, "again.onnx")
        tacoc("optimize", out, "-o", again, "-O2", "-q")
        assert not any(k.startswith("ai.tacoc.cuda") for k in meta(again)), meta(again)
        tacoc("optimize", out, "-o", again, "-O0", "-q")
        assert meta(again) == meta(out)


@test
def cuda_target_half_precision_and_arch_list():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "h.onnx")
        rep = os.path.join(tmp, "r.json")
        tacoc("optimize", BERT, "-o", out, "--precision", "fp16", "--target", "cuda",
              "--cuda-arch", "86", "--report", rep, "-q")
        check_cuda_record(out, dtype=10)
        assert [(a, k) for a, k, _ in read_cuda_library(out + ".tacocu")] == [(80, 0), (86, 1)]
        r = json.load(open(rep))["cuda"]
        assert r["cubin_archs"] == [86] and r["ptx_arch"] == 80 and r["kernels"] >= 2, r
        assert r["nodes_bound"] == len(check_cuda_record(out, dtype=10)), r
        feeds, _ = bert_inputs(tmp)
        want = ort.InferenceSession(BERT, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        got = ort.InferenceSession(out, providers=["CPUExecutionProvider"]).run(None, feeds)[0]
        assert np.allclose(got, want, atol=2e-2, rtol=2e-2), np.abs(got - want).max()


@test
def cuda_target_errors_and_nothing_to_generate():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "o.onnx")
        p = tacoc("optimize", BERT, "-o", out, "--target", "gpu", ok=False)
        assert "--target takes cpu or cuda" in p.stderr, p.stderr
        p = tacoc("optimize", BERT, "-o", out, "--target", "cuda", "--cuda-arch", "8,x", ok=False)
        assert "--cuda-arch takes" in p.stderr, p.stderr
        env = dict(os.environ, TACOC_CUDA_HOME=os.path.join(tmp, "no-toolkit"))
        p = subprocess.run([A.tacoc, "optimize", BERT, "-o", out, "--target", "cuda"],
                           capture_output=True, text=True, env=env, timeout=300)
        assert p.returncode != 0 and "needs NVRTC" in p.stderr and "TACOC_CUDA_HOME" in p.stderr, p.stderr
        assert os.listdir(tmp) == [], os.listdir(tmp)  # nothing half-written
        # a model without row nodes: no library, no records
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])
        g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
        src = os.path.join(tmp, "relu.onnx")
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), src)
        p = tacoc("optimize", src, "-o", out, "--target", "cuda")
        assert "no node fits a generated CUDA kernel" in p.stdout, p.stdout
        assert not os.path.exists(out + ".tacocu") and not meta(out)


@test
def tacoc_without_llvm_optimizes_alike_and_refuses_cpu_codegen():
    nollvm = os.path.join(os.path.dirname(A.tacoc), "tacoc-nollvm")
    with tempfile.TemporaryDirectory() as tmp:
        for d in ("a", "b"):
            os.mkdir(os.path.join(tmp, d))
        a, b = os.path.join(tmp, "a", "opt.onnx"), os.path.join(tmp, "b", "opt.onnx")
        tacoc("optimize", BERT, "-o", a, "-O2", "--target", "cuda", "-q")
        p = subprocess.run([nollvm, "optimize", BERT, "-o", b, "-O2", "--target", "cuda", "-q"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr
        assert open(a, "rb").read() == open(b, "rb").read(), "the models differ"
        assert open(a + ".tacocu", "rb").read() == open(b + ".tacocu", "rb").read()
        c = os.path.join(tmp, "c.onnx")
        p = subprocess.run([nollvm, "optimize", BERT, "-o", c, "--codegen", "cpu"],
                           capture_output=True, text=True, timeout=300)
        assert p.returncode != 0 and "built without LLVM" in p.stderr, p.stderr
        assert not os.path.exists(c) and not os.path.exists(c + ".tacok")


def main():
    global A, BERT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("modeldir")
    A = ap.parse_args()
    BERT = os.path.join(A.modeldir, "bert_block.onnx")
    return run_tests(TESTS, "codegen")


if __name__ == "__main__":
    A = BERT = None
    sys.exit(main())
