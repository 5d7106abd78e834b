"""`tacoc bench` suite: tables, JSON, Markdown, gates, batches, shapes, input
folders, ONNX Runtime, and errors, on small models made here with onnx.helper.

Usage: bench.py [--tacoc PATH] [-v]

The models (all y = f(x) with x [batch, 16] -> y [batch, 4] unless said):
  a.onnx      MLP: MatMul, Add, Relu, MatMul, Add (the reference)
  b.onnx      the same MLP written with Gemm (transB on the second layer)
  bad.onnx    a.onnx with the second layer's weights changed (differs numerically)
  fixed.onnx  a.onnx with a fixed batch of 2
  seq.onnx    x [batch, seq, 8] -> MatMul -> y [batch, seq, 4]
  other.onnx  a.onnx with its input named z
  int.onnx    a.onnx with an int64 input x (Cast to float first)
  two.onnx    x and w [batch, 16] -> Add -> a.onnx's layers
  minus.onnx  y = x - K for a constant K, and zero.onnx y = x * 0: fed K, the
              bench of zero vs minus shows max abs error 0 only when the
              inputs reached the models exactly as K.

Prints `ok NAME` / `FAIL NAME: reason` per test, then `bench: N passed, N failed`.
"""

import argparse
import json
import os
import pty
import re
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness import add_tacoc_option, make, parse_args, save, t, vi

RNG = np.random.default_rng(7)
W1 = RNG.standard_normal((16, 32)).astype(np.float32) * 0.3
B1 = RNG.standard_normal(32).astype(np.float32) * 0.1
W2 = RNG.standard_normal((32, 4)).astype(np.float32) * 0.3
B2 = RNG.standard_normal(4).astype(np.float32) * 0.1
K = RNG.standard_normal((3, 16)).astype(np.float32)


def mlp(path, batch="batch", w2=W2, input_name="x", dtype=TensorProto.FLOAT):
    nodes = [helper.make_node("MatMul", ["xf", "w1"], ["h0"]),
             helper.make_node("Add", ["h0", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]),
             helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
             helper.make_node("Add", ["h3", "b2"], ["y"])]
    if dtype == TensorProto.FLOAT:
        nodes.insert(0, helper.make_node("Identity", [input_name], ["xf"]))
    else:
        nodes.insert(0, helper.make_node("Cast", [input_name], ["xf"], to=TensorProto.FLOAT))
    return save(make(nodes, [vi(input_name, [batch, 16], dtype)], [vi("y", [batch, 4])],
                     [t("w1", W1), t("b1", B1), t("w2", w2), t("b2", B2)]), path)


def gemm(path):
    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h1"]),
             helper.make_node("Relu", ["h1"], ["h2"]),
             helper.make_node("Gemm", ["h2", "w2t", "b2"], ["y"], transB=1)]
    return save(make(nodes, [vi("x", ["batch", 16])], [vi("y", ["batch", 4])],
                     [t("w1", W1), t("b1", B1), t("w2t", np.ascontiguousarray(W2.T)),
                      t("b2", B2)]), path)


def seq(path):
    w = RNG.standard_normal((8, 4)).astype(np.float32)
    return save(make([helper.make_node("MatMul", ["x", "w"], ["y"])],
                     [vi("x", ["batch", "seq", 8])], [vi("y", ["batch", "seq", 4])],
                     [t("w", w)]), path)


def two(path):
    nodes = [helper.make_node("Add", ["x", "w"], ["s"]),
             helper.make_node("MatMul", ["s", "w1"], ["y0"]),
             helper.make_node("Relu", ["y0"], ["y"])]
    return save(make(nodes, [vi("x", ["batch", 16]), vi("w", ["batch", 16])],
                     [vi("y", ["batch", 32])], [t("w1", W1)]), path)


def minus(path, k):
    return save(make([helper.make_node("Sub", ["x", "k"], ["y"])], [vi("x", ["batch", 16])],
                     [vi("y", ["batch", 16])], [t("k", k)]), path)


def zero(path):
    return save(make([helper.make_node("Mul", ["x", "z"], ["y"])], [vi("x", ["batch", 16])],
                     [vi("y", ["batch", 16])], [t("z", np.zeros(1, np.float32))]), path)


class Ctx:
    def __init__(self, tacoc, tmp, verbose):
        self.tacoc, self.tmp, self.verbose = tacoc, tmp, verbose
        self.m = {}

    def p(self, name):
        return os.path.join(self.tmp, name)

    def bench(self, *args, rc=0, env=None, cwd=None):
        """Runs tacoc bench; checks the exit status (rc None: any); returns the process."""
        full_env = dict(os.environ, **(env or {}))
        try:
            proc = subprocess.run([self.tacoc, "bench", *args], capture_output=True, text=True,
                                  timeout=120, env=full_env, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"bench {' '.join(args)}: timed out")
        if self.verbose:
            print(f"$ tacoc bench {' '.join(args)}\n{proc.stdout}{proc.stderr}")
        assert rc is None or proc.returncode == rc, \
            f"bench {' '.join(args)}: exit {proc.returncode}, wanted {rc}: {proc.stderr.strip()}"
        if rc == 2:
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("tacoc: error: "), \
                f"want one 'tacoc: error:' line, got {proc.stderr!r}"
        return proc

    def bench_json(self, *args, rc=0, env=None):
        path = self.p(f"r{len(os.listdir(self.tmp))}.json")
        proc = self.bench(*args, "--json", path, rc=rc, env=env)
        with open(path) as f:
            return json.load(f), proc


def table_rows(stdout):
    """{(batch, model, runtime): [p50, p90, p99, mean, min, max, runs, inf/s]} and
    {(batch, model, runtime, output): (max_abs, max_rel, cos)} from the text tables."""
    lat, acc, batch = {}, {}, None
    for line in stdout.splitlines():
        m = re.match(r"^batch (\d+)$", line)
        if m:
            batch = int(m.group(1))
            continue
        f = line.split()
        if batch is None or len(f) < 3 or f[0] == "model" or f[0] == "accuracy":
            continue
        if len(f) >= 12 and f[1] in ("tacort", "ort"):
            lat[(batch, f[0], f[1])] = [float(v) for v in f[2:10]] + [f[2]]
        elif len(f) == 6 and f[1] in ("tacort", "ort"):
            acc[(batch, f[0], f[1], f[2])] = tuple(float(v) for v in f[3:6])
    return lat, acc


def check_throughput(v, batch, what):
    """inf/s is batch / p50, within the rounding of the printed p50 and inf/s."""
    p50, inf, text = v[0], v[7], v[8]
    half = 0.5 * 10 ** -len(text.split(".")[1]) if "." in text else 0.5
    lo, hi = batch * 1000 / (p50 + half), batch * 1000 / max(p50 - half, 1e-9)
    assert lo - 0.05 <= inf <= hi + 0.05, f"{what}: {inf} inf/s, batch/p50 is in [{lo}, {hi}]"


def sane_latency(v, what):
    p50, p90, p99, mean, lo, hi = v[:6]
    assert 0 < lo <= p50 <= p90 <= p99 <= hi, f"{what}: not min <= p50 <= p90 <= p99 <= max: {v}"
    assert lo <= mean <= hi, f"{what}: mean {mean} outside [min, max]"


# ---- tests ----

def test_table(c):
    a, b = c.m["a"], c.m["b"]
    proc = c.bench(a, b, "--batch", "1,4", "--iters", "15", "--warmup", "2")
    lat, acc = table_rows(proc.stdout)
    assert set(lat) == {(n, m, "tacort") for n in (1, 4) for m in (a, b)}, f"rows: {sorted(lat)}"
    for (batch, model, _), v in lat.items():
        sane_latency(v, f"batch {batch} {model}")
        assert v[6] == 15, f"{model}: {v[6]} runs, wanted 15"
        check_throughput(v, batch, f"batch {batch} {model}")
    assert set(acc) == {(n, b, "tacort", "y") for n in (1, 4)}, f"accuracy rows: {sorted(acc)}"
    for key, (max_abs, max_rel, cos) in acc.items():
        assert cos >= 0.9999 and max_abs < 1e-4, f"{key}: equal models differ: {max_abs} {cos}"
    assert "accuracy vs " + a in proc.stdout, "no 'accuracy vs <first model>' heading"
    assert proc.stderr == "", f"stderr not a terminal, yet: {proc.stderr!r}"


def test_json(c):
    a, b = c.m["a"], c.m["b"]
    r, _ = c.bench_json(a, b, "--batch", "2,5", "--iters", "9")
    assert r["schema"] == "tacoc.bench/1", r["schema"]
    assert r["models"] == [a, b] and r["runtimes"] == ["tacort"], (r["models"], r["runtimes"])
    assert r["warmup"] == 3 and r["iterations"] == 9 and r["time_seconds"] is None, \
        (r["warmup"], r["iterations"], r["time_seconds"])
    assert r["memory_method"] in ("vmhwm", "maxrss"), r["memory_method"]
    assert r["tacort_target"] == "cpu", r["tacort_target"]
    assert r["inputs"] == [{"name": "x", "dtype": "float32", "declared_shape": "[batch, 16]",
                            "batch": True, "source": "generated"}], r["inputs"]
    assert [x["batch"] for x in r["results"]] == [2, 5], [x["batch"] for x in r["results"]]
    for res in r["results"]:
        n = res["batch"]
        assert res["input_shapes"] == {"x": [n, 16]}, res["input_shapes"]
        runs = res["runs"]
        assert [(x["model"], x["model_index"], x["runtime"]) for x in runs] == \
            [(a, 0, "tacort"), (b, 1, "tacort")]
        for x in runs:
            L = x["latency_ms"]
            sane_latency([L[k] for k in ("p50", "p90", "p99", "mean", "min", "max")], x["model"])
            assert x["iterations"] == 9, x["iterations"]
            tp = x["throughput_per_s"]
            assert abs(tp - n * 1000 / L["p50"]) < 1e-6 * tp, \
                f"throughput {x['throughput_per_s']} is not batch {n} / p50 {L['p50']} ms"
            assert abs(x["p50_ratio_to_first"] - L["p50"] / runs[0]["latency_ms"]["p50"]) < 1e-6, \
                f"p50_ratio_to_first {x['p50_ratio_to_first']}"
            assert isinstance(x["peak_memory_bytes"], int) and x["peak_memory_bytes"] >= 0, \
                f"peak_memory_bytes {x['peak_memory_bytes']!r}"
        assert runs[0]["accuracy"] is None, "the reference has accuracy entries"
        (acc,) = runs[1]["accuracy"]
        assert acc["output"] == "y" and acc["cos"] > 0.9999 and acc["max_abs"] < 1e-4, acc
        assert 0 <= acc["max_rel"] < 1, acc
    assert r["gates"] == {"fail_if_slower": None, "max_error": None, "passed": True,
                          "failures": []}, r["gates"]


def test_markdown(c):
    a, b, bad = c.m["a"], c.m["b"], c.m["bad"]
    md = c.p("summary.md")
    c.bench(a, b, bad, "--batch", "1,3", "--iters", "5", "--markdown", md,
            "--max-error", "cos=0.999", rc=1)
    text = open(md).read()
    lines = text.splitlines()
    assert lines[0] == "## tacoc bench", lines[0]
    tables = [ln for ln in lines if ln.startswith("|")]
    head = tables[0]
    assert head.startswith("| model | runtime | batch | p50 ms | p90 ms | p99 ms |"), head
    width = head.count("|")
    for ln in tables[:8]:
        assert ln.replace("\\|", "").count("|") == width, f"ragged row: {ln}"
    rows = [ln for ln in tables if ln.startswith(f"| {a} |") or ln.startswith(f"| {b} |")]
    assert len(rows) == 4 + 2, f"want 4 latency rows and 2 accuracy rows for a and b: {rows}"
    assert "### Accuracy vs " + a in text
    assert any(ln.startswith(f"| {bad} | tacort | 3 | y |") for ln in tables), "no accuracy row"
    assert "**Gates: FAILED**" in text and "cosine" in text.split("**Gates: FAILED**")[1]


def test_gate_slower(c):
    a, b = c.m["a"], c.m["b"]
    proc = c.bench(a, b, "--batch", "2", "--iters", "5", "--fail-if-slower", "1000")
    assert "gates: passed" in proc.stdout
    r, proc = c.bench_json(a, b, "--batch", "2", "--iters", "5", "--fail-if-slower", "0.000001",
                           rc=1)
    lines = proc.stderr.strip().splitlines()
    assert lines and all(ln.startswith("tacoc: gate failed: ") for ln in lines), proc.stderr
    assert len(lines) == 1 and f"{b} (tacort) p50" in lines[0] and "limit 1e-06x" in lines[0], lines
    assert "gates: FAILED" in proc.stdout
    assert r["gates"]["passed"] is False and r["gates"]["fail_if_slower"] == 1e-06, r["gates"]
    assert len(r["gates"]["failures"]) == 1 and b in r["gates"]["failures"][0], r["gates"]


def test_gate_max_error(c):
    a, b, bad = c.m["a"], c.m["b"], c.m["bad"]
    c.bench(a, b, "--batch", "2", "--iters", "3", "--max-error", "cos=0.999,max-abs=1e-3")
    proc = c.bench(a, b, bad, "--batch", "2", "--iters", "3",
                   "--max-error", "cos=0.999,max-abs=1e-3", rc=1)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, f"want the cosine and max abs failures of bad.onnx only: {lines}"
    assert all(ln.startswith(f"tacoc: gate failed: batch 2: {bad} (tacort) output 'y': ")
               for ln in lines), lines
    assert "cosine" in lines[0] and "below 0.999" in lines[0], lines[0]
    assert "max abs error" in lines[1] and "above 0.001" in lines[1], lines[1]
    proc = c.bench(a, bad, "--batch", "2", "--iters", "3", "--max-error", "max-rel=1e9")
    assert "gates: passed" in proc.stdout


def test_batch_rewrite(c):
    a, fixed = c.m["a"], c.m["fixed"]
    r, _ = c.bench_json(fixed, a, "--batch", "1,3", "--iters", "3")
    assert [x["batch"] for x in r["results"]] == [1, 3]
    assert r["inputs"][0]["batch"] is True and r["inputs"][0]["declared_shape"] == "[2, 16]"
    for res in r["results"]:
        assert res["input_shapes"]["x"] == [res["batch"], 16], res["input_shapes"]
        assert res["runs"][1]["accuracy"][0]["max_abs"] < 1e-5, res["runs"][1]["accuracy"]
    r, _ = c.bench_json(fixed, a, "--iters", "3")
    assert [x["batch"] for x in r["results"]] == [2], "without --batch: the declared batch"
    # Explicit inputs are repeated (or cut) along dim 0: K's three rows at batch 5
    # are rows 0 1 2 0 1, which minus5.onnx subtracts exactly.
    kfile = c.p("k.npy")
    np.save(kfile, K)
    minus5 = minus(c.p("minus5.onnx"), np.concatenate([K, K[:2]]))
    r, _ = c.bench_json(c.m["zero"], minus5, "--input", f"x={kfile}", "--batch", "5",
                        "--iters", "2")
    assert r["results"][0]["input_shapes"]["x"] == [5, 16]
    assert r["results"][0]["runs"][1]["accuracy"][0]["max_abs"] == 0, r["results"][0]["runs"][1]
    minus2 = minus(c.p("minus2.onnx"), K[:2])
    r, _ = c.bench_json(c.m["zero"], minus2, "--input", f"x={kfile}", "--batch", "2",
                        "--iters", "2")
    assert r["results"][0]["runs"][1]["accuracy"][0]["max_abs"] == 0, "trimmed rows differ"
    # 4 rows of x against minus5's 5 rows of K: a run failure, reported as an error
    proc = c.bench(c.m["zero"], minus5, "--input", f"x={kfile}", "--batch", "4", rc=2)
    assert "minus5.onnx" in proc.stderr, proc.stderr


def test_shape(c):
    s = c.m["seq"]
    proc = c.bench(s, "--batch", "2", rc=2)
    assert "input 'x'" in proc.stderr and "'seq'" in proc.stderr and "--shape" in proc.stderr, \
        proc.stderr
    proc = c.bench(s, "--shape", "seq=5", rc=2)
    assert "'batch'" in proc.stderr and "--batch" in proc.stderr, proc.stderr
    r, _ = c.bench_json(s, "--shape", "seq=5", "--batch", "2,3", "--iters", "2")
    assert [x["input_shapes"]["x"] for x in r["results"]] == [[2, 5, 8], [3, 5, 8]]
    r, proc = c.bench_json(s, "--shape", "x=3x7x8", "--iters", "2")
    assert r["results"][0]["input_shapes"]["x"] == [3, 7, 8] and r["results"][0]["batch"] == 3
    lat, _ = table_rows(proc.stdout)
    (v,) = lat.values()
    check_throughput(v, 3, "batch 3")


def test_bad_shape(c):
    s = c.m["seq"]
    for args, want in ((["--shape", "x=2xfoo"], "NAME=DIMS"),
                       (["--shape", "x=2x0x8"], "NAME=DIMS"),
                       (["--shape", "x"], "NAME=DIMS"),
                       (["--shape", "x=2x5"], "rank 3"),
                       (["--shape", "x=2x5x9"], "fixed at 8"),
                       (["--shape", "seq=2x3"], "takes one size"),
                       (["--shape", "nosuch=4"], "no input or symbolic dim named 'nosuch'")):
        proc = c.bench(s, *args, rc=2)
        assert want in proc.stderr, f"{args}: {proc.stderr.strip()}"


def test_inputs_folder(c):
    zero_, minus3 = c.m["zero"], c.m["minus3"]
    d = c.p("npy")
    os.mkdir(d)
    np.save(os.path.join(d, "x.npy"), K)
    r, _ = c.bench_json(zero_, minus3, "--inputs", d, "--iters", "2")
    assert r["inputs"][0]["source"] == d and r["results"][0]["input_shapes"]["x"] == [3, 16]
    assert r["results"][0]["runs"][1]["accuracy"][0]["max_abs"] == 0, "x.npy was not fed as is"
    # ONNX test data: DIR/test_data_set_0/input_0.pb
    d2 = c.p("case")
    os.makedirs(os.path.join(d2, "test_data_set_0"))
    with open(os.path.join(d2, "test_data_set_0", "input_0.pb"), "wb") as f:
        f.write(numpy_helper.from_array(K, "x").SerializeToString())
    r, _ = c.bench_json(zero_, minus3, "--inputs", d2, "--iters", "2")
    assert r["results"][0]["runs"][1]["accuracy"][0]["max_abs"] == 0, "input_0.pb not fed as is"
    empty = c.p("empty")
    os.mkdir(empty)
    proc = c.bench(zero_, "--inputs", empty, rc=2)
    assert "input 'x'" in proc.stderr and "x.npy" in proc.stderr, proc.stderr
    # --input FILE.pb works the same
    pb = os.path.join(d2, "test_data_set_0", "input_0.pb")
    proc = c.bench(zero_, minus3, "--input", f"x={pb}",
                   "--iters", "2")
    _, acc = table_rows(proc.stdout)
    assert acc[(3, minus3, "tacort", "y")][0] == 0, acc


def test_time_and_interleaving(c):
    a, b = c.m["a"], c.m["b"]
    r, _ = c.bench_json(a, b, "--batch", "2", "--time", "0.3", "--warmup", "0")
    assert r["iterations"] is None and r["time_seconds"] == 0.3 and r["warmup"] == 0
    n = [x["iterations"] for x in r["results"][0]["runs"]]
    # Round-robin: every round runs each model once, so the counts are equal.
    assert n[0] == n[1] and n[0] > 5, f"timed runs per model: {n}"


def test_progress_on_terminal(c):
    a = c.m["a"]
    master, slave = pty.openpty()
    proc = subprocess.run([c.tacoc, "bench", a, "--batch", "1,2", "--iters", "200"],
                          stdout=subprocess.PIPE, stderr=slave, timeout=60)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    assert proc.returncode == 0, proc.returncode
    assert b"\r" in err and b"batch 1, tacort [" in err, \
        f"no progress bar on a terminal: {err[:200]!r}"
    assert b"\r" not in proc.stdout and b"tacort [" not in proc.stdout, "progress on stdout"


def test_ort(c):
    a, b = c.m["a"], c.m["b"]
    r, proc = c.bench_json(a, b, "--runtime", "tacort,ort", "--batch", "1,4", "--iters", "10",
                           "--threads", "1")
    assert r["runtimes"] == ["tacort", "ort"] and r["threads"] == 1
    assert re.match(r"^\d+\.\d+", r["onnxruntime_version"] or ""), r["onnxruntime_version"]
    for res in r["results"]:
        runs = res["runs"]
        assert [(x["model"], x["runtime"]) for x in runs] == \
            [(a, "tacort"), (b, "tacort"), (a, "ort"), (b, "ort")]
        for x in runs[2:]:
            L = x["latency_ms"]
            sane_latency([L[k] for k in ("p50", "p90", "p99", "mean", "min", "max")], x["model"])
            assert x["iterations"] == 10 and x["peak_memory_bytes"] >= 0, x
            (acc,) = x["accuracy"]  # ORT against tacort's a.onnx
            assert acc["cos"] > 0.99999 and acc["max_abs"] < 1e-4, acc
        assert abs(runs[3]["p50_ratio_to_first"] -
                   runs[3]["latency_ms"]["p50"] / runs[2]["latency_ms"]["p50"]) < 1e-6, \
            "ORT rows are compared with the first model in ORT"
    lat, _ = table_rows(proc.stdout)
    assert (4, b, "ort") in lat, sorted(lat)
    # ORT alone, with a model that differs: the accuracy is measured in ORT too.
    r, _ = c.bench_json(a, c.m["bad"], "--runtime", "ort", "--batch", "2", "--iters", "3",
                        "--fail-if-slower", "1000")
    assert r["results"][0]["runs"][1]["accuracy"][0]["cos"] < 0.999, r["results"][0]["runs"][1]
    r, _ = c.bench_json(c.m["fixed"], "--runtime", "ort", "--batch", "3", "--iters", "2")
    assert r["results"][0]["input_shapes"]["x"] == [3, 16]


def test_ort_missing(c):
    proc = c.bench(c.m["a"], "--runtime", "ort", "--batch", "1",
                   env={"TACOC_ORT_PYTHON": c.p("no-venv/bin/python")}, rc=2)
    assert "no-venv/bin/python" in proc.stderr and "make deps" in proc.stderr, proc.stderr
    assert proc.stdout == "", "the missing runtime is found before anything runs"


def test_cuda_target(c):
    """--target cuda benchmarks libtacort's CUDA backend; without a GPU it is
    refused before anything runs, saying why."""
    proc = c.bench(c.m["a"], "--batch", "1", "--iters", "2", "--target", "cuda", rc=None)
    if proc.returncode == 0:
        assert "nodes placed on the GPU" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 2 and re.search(r"target cuda: (no CUDA device|cannot load)",
                                                  proc.stderr), proc.stderr


def test_help(c):
    proc = subprocess.run([c.tacoc, "help"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0 and "  bench MODEL [MODEL...]" in proc.stdout, proc.stdout[-300:]
    assert "--fail-if-slower RATIO" in proc.stdout and "--max-error" in proc.stdout


def test_errors(c):
    a, other, int_, two_ = c.m["a"], c.m["other"], c.m["int"], c.m["two"]
    cases = [
        ([a, other, "--batch", "1"], [other, "input 'z' is not an input of " + a]),
        ([other, a, "--batch", "1"], [a, "input 'x' is not an input of " + other]),
        ([a, int_, "--batch", "1"], [int_, "int64", "float32"]),
        ([a, c.p("missing.onnx")], ["missing.onnx"]),
        ([a, "--input", "x=" + c.p("nope.npy"), "--batch", "1"], ["nope.npy"]),
        ([a, "--input", "q=" + c.p("nope.npy")], ["no input named 'q'"]),
        ([two_, "--input", "x=" + c.p("k.npy")], ["input 'w' is not given"]),
        ([a], ["'batch'", "--batch"]),
        ([], ["no model given"]),
        ([a, "--batch", "1", "--iters", "3", "--time", "1"], ["--iters or --time"]),
        ([a, "--batch", "0"], ["--batch"]),
        ([a, "--batch", "1", "--runtime", "trt"], ["--runtime"]),
        ([a, "--batch", "1", "--max-error", "cos=0.9,speed=2"], ["unknown limit 'speed'"]),
        ([a, "--batch", "1", "--fail-if-slower", "-1"], ["--fail-if-slower"]),
        ([a, "--batch", "1", "--json", c.p("no/such/dir/r.json")], ["r.json"]),
        ([a, "--bogus"], ["unknown option '--bogus'"]),
        ([a, "--batch", "1", "--target", "tpu"], ["--target takes cpu or cuda"]),
        ([a, "--batch", "1", "--device", "x"], ["--device"]),
    ]
    np.save(c.p("k.npy"), K)
    for args, wants in cases:
        proc = c.bench(*args, rc=2)
        for w in wants:
            assert w in proc.stderr, f"{args}: '{w}' not in {proc.stderr.strip()!r}"
    with open(c.p("garbage.onnx"), "wb") as f:
        f.write(b"\x08\x01garbage")
    proc = c.bench(a, c.p("garbage.onnx"), "--batch", "1", rc=2)
    assert "garbage.onnx" in proc.stderr


def cpu_peak_bin(c):
    """build/bench/cpu_peak beside the tested tacoc (BUILD/bin/tacoc)."""
    return os.path.join(os.path.dirname(os.path.dirname(c.tacoc)), "bench", "cpu_peak")


def test_cpu_peak(c):
    """bench/cpu_peak.c: a line per task, rates that are numbers with the best
    at least the median, and the GEMMs' rates cannot be faked by a call that
    does nothing (a GEMM of 8 x 8 x 8 is far slower per operation than one of
    256^3 on any CPU, because of the calls' fixed cost)."""
    proc = subprocess.run([cpu_peak_bin(c), "--reps", "3", "sgemm", "8", "8", "8", "sgemm", "256",
                           "256", "256", "u8gemm", "64", "32", "16", "stream", "8"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4, proc.stdout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "bench"))
    import floors
    rates, stream = floors.parse_peaks(proc.stdout)
    assert set(rates) == {("sgemm", 8, 8, 8), ("sgemm", 256, 256, 256), ("u8gemm", 64, 32, 16)}
    assert all(v > 0 for v in rates.values()) and stream and stream > 0, proc.stdout
    assert rates[("sgemm", 8, 8, 8)] < rates[("sgemm", 256, 256, 256)], proc.stdout
    for line in lines:
        best, med = map(float, re.search(r"best ([\d.]+) median ([\d.]+)", line).groups())
        assert best >= med, line
    for args, want in [(["sgemm", "1", "2"], "a GEMM takes M K N"), (["stream"], "size in MiB"),
                       (["sgemm", "0", "2", "2"], "positive"), (["bogus"], "unknown task"),
                       (["--threads", "x", "fma"], "--threads"), ([], "no task")]:
        proc = subprocess.run([cpu_peak_bin(c), *args], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2 and want in proc.stderr, (args, proc.stderr)


def test_floors_work(c):
    """bench/floors.py counts a model's products and convolutions at the
    benchmark's input shapes: MatMul with a weight (rows of a batched A),
    Gemm with transB, a batched product of two activations, a grouped
    strided Conv; and the floors divide by the rates they are given."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "bench"))
    import floors
    w = RNG.standard_normal((8, 12)).astype(np.float32)
    g = RNG.standard_normal((5, 12)).astype(np.float32)
    cw = RNG.standard_normal((6, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"]),                 # [b,4,8] x [8,12]
             helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),  # [b,12,4]
             helper.make_node("MatMul", ["h", "ht"], ["s"]),                # [b,4,12]x[b,12,4]
             helper.make_node("Reshape", ["h", "flat"], ["h2"]),            # [4b, 12]
             helper.make_node("Gemm", ["h2", "g"], ["y"], transB=1),        # [4b,12]x[12,5]
             helper.make_node("Conv", ["img", "cw"], ["z"], group=2, strides=[2, 2],
                              pads=[1, 1, 1, 1])]                           # 4 -> 6 ch, 9x9 -> 5x5
    model = make(nodes, [vi("x", ["b", 4, 8]), vi("img", ["b", 4, 9, 9])],
                 [vi("s", ["b", 4, 4]), vi("y", ["q", 5]), vi("z", ["b", 6, 5, 5])],
                 [t("w", w), t("g", g), t("flat", np.array([-1, 12], np.int64)), t("cw", cw)])
    feeds = {"x": np.zeros((3, 4, 8), np.float32), "img": np.zeros((3, 4, 9, 9), np.float32)}
    items = floors.work(model, feeds)
    got = [(it["op"], it["flops"], it["weight_bytes"], it.get("mkn")) for it in items]
    assert got == [("MatMul", 2 * 12 * 8 * 12, 4 * 8 * 12, (12, 8, 12)),
                   ("MatMul", 2 * 3 * 4 * 12 * 4, 0, None),
                   ("Gemm", 2 * 12 * 12 * 5, 4 * 12 * 5, (12, 12, 5)),
                   ("Conv", 2 * 3 * 6 * 5 * 5 * 2 * 3 * 3, 4 * 6 * 2 * 3 * 3, None)], got
    total = sum(it["flops"] for it in items)
    weights = sum(it["flops"] for it in items if "mkn" in it)
    rates = {("sgemm", 12, 8, 12): 2.0, ("sgemm", 2048, 2048, 2048): 4.0, ("u8gemm", 1, 1, 1): 16.0,
             ("fma",): 8.0, ("vnni",): 32.0}
    close = lambda a, b: abs(a - b) <= 1e-12 * max(1.0, abs(b))  # noqa: E731
    assert close(floors.floor_ms(items, rates), total / 4e9 * 1e3)
    assert close(floors.floor_ms(items, rates, hardware=True), total / 8e9 * 1e3)
    assert close(floors.floor_ms(items, rates, int8=True),
                 (weights / 16e9 + (total - weights) / 4e9) * 1e3)
    assert close(floors.floor_ms(items, rates, int8=True, hardware=True),
                 (weights / 32e9 + (total - weights) / 8e9) * 1e3)
    try:
        floors.work(model, {"x": feeds["x"]})
        raise AssertionError("a Conv with unknown shapes was counted")
    except ValueError as e:
        assert "Conv" in str(e), e


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tacoc_option(ap)
    ap.add_argument("-v", action="store_true", help="print every command and its output")
    args = parse_args(ap)
    tacoc = os.path.abspath(args.tacoc)
    passed = failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        c = Ctx(tacoc, tmp, args.v)
        c.m = {"a": mlp(c.p("a.onnx")), "b": gemm(c.p("b.onnx")),
               "bad": mlp(c.p("bad.onnx"), w2=W2 + 0.5), "fixed": mlp(c.p("fixed.onnx"), batch=2),
               "seq": seq(c.p("seq.onnx")), "other": mlp(c.p("other.onnx"), input_name="z"),
               "int": mlp(c.p("int.onnx"), dtype=TensorProto.INT64), "two": two(c.p("two.onnx")),
               "zero": zero(c.p("zero.onnx")), "minus3": minus(c.p("minus3.onnx"), K)}
        for name in sorted(n for n in globals() if n.startswith("test_")):
            try:
                globals()[name](c)
                passed += 1
                print(f"ok   {name}")
            except AssertionError as e:
                failed += 1
                print(f"FAIL {name}: {e}")
            except Exception as e:  # a crash of the suite is a failure too
                failed += 1
                print(f"FAIL {name}: {type(e).__name__}: {e}")
    print(f"bench: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
