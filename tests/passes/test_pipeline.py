"""The pass manager and `tacoc optimize`'s interface: levels, --passes,
determinism, the summary table, --report JSON, --dump-after, errors."""

import json

import numpy as np
import onnx
from onnx import helper

from passlib import const, model, ops, rand, same_outputs, tensor_in

RNG = np.random.default_rng(5)
X = tensor_in("x", [2, 4])
Y = tensor_in("y", [2, 4])


def sample():
    return model([helper.make_node("Constant", [], ["k"], value_float=0.5),
                  helper.make_node("Identity", ["x"], ["a"]),
                  helper.make_node("Mul", ["a", "k"], ["b"]),
                  helper.make_node("Mul", ["a", "k"], ["c"]),
                  helper.make_node("Add", ["b", "c"], ["y"]),
                  helper.make_node("Neg", ["x"], ["unused"])], [X], [Y])


def test_levels(ctx):
    m = sample()
    want = {0: ["Constant", "Identity", "Mul", "Mul", "Add", "Neg"], 1: ["Mul", "Add"],
            2: ["Mul", "Add"], 3: ["Mul", "Add"]}
    for level, expected in want.items():
        out, _, _ = ctx.optimize(m, level=level)
        assert ops(out) == expected, (level, ops(out))
        same_outputs(ctx, m, out, {"x": rand(RNG, 2, 4)})


def test_deterministic_bytes(ctx):
    m = sample()
    paths = []
    for _ in range(2):
        src, dst = ctx.path("in.onnx"), ctx.path("out.onnx")
        onnx.save(m, src)
        ctx.tacoc_run("optimize", src, "-o", dst, "-O2", "--quiet")
        paths.append(dst)
    a, b = (open(p, "rb").read() for p in paths)
    assert a == b, "two runs wrote different bytes"


def test_table_and_report(ctx):
    m = sample()
    report = ctx.path("report.json")
    out, stdout, _ = ctx.optimize(m, level=2, extra=["--report", report])
    assert "eliminate-dead" in stdout and "(all nodes)" in stdout, stdout
    line = next(l for l in stdout.splitlines() if "(all nodes)" in l)
    assert line.split()[-2:] == ["6", "2"], line
    r = json.load(open(report))
    assert r["schema"] == "tacoc.optimize-report/1"
    assert r["before"]["nodes"] == 6 and r["after"]["nodes"] == 2
    assert r["after"]["ops"] == {"Add": 1, "Mul": 1}
    names = [p["name"] for p in r["passes"]]
    assert names[:2] == ["inline-functions", "constants-to-initializers"], names
    assert "fuse-layernorm" in names
    const = r["passes"][1]
    assert const["nodes_before"] == 6 and const["nodes_after"] == 5
    assert const["rewrites"] == {"Constant": 1}
    assert r["passes"][0]["rewrites"] == {}  # no function calls to inline


def test_quiet_and_dump_after(ctx):
    m = sample()
    out, stdout, stderr = ctx.optimize(m, "eliminate-identity", extra=["--quiet", "--dump-after",
                                                                      "eliminate-identity"])
    assert stdout == "", stdout
    assert "; after eliminate-identity" in stderr and "= Mul(%x, %k)" in stderr, stderr


def test_unknown_pass_is_an_error(ctx):
    src = ctx.path("in.onnx")
    onnx.save(sample(), src)
    proc = ctx.tacoc_run("optimize", src, "-o", ctx.path("o.onnx"), "--passes", "fuse-nothing",
                         check=False)
    assert proc.returncode == 2 and "unknown pass 'fuse-nothing'" in proc.stderr, proc.stderr


def test_passes_command_lists_every_pass(ctx):
    proc = ctx.tacoc_run("passes")
    for name in ("eliminate-dead", "fold-constants", "fuse-layernorm", "fuse-gelu", "-O2:"):
        assert name in proc.stdout, proc.stdout
