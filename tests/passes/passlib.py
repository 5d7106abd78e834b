"""Harness of the pass tests: build a small graph, run `tacoc optimize --passes`
on it, check the graph that comes out, and check that the outputs did not
change, in ONNX Runtime and in libtacort (through `tacoc run`).

A test module defines functions named `test_*` taking a Ctx; each returns None
or raises AssertionError with the reason."""

import os
import subprocess
import tempfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

RTOL, ATOL = 1e-4, 1e-5
ort.set_default_logger_severity(3)


class Ctx:
    def __init__(self, tacoc, tmp):
        self.tacoc = tacoc
        self.tmp = tmp
        self.count = 0

    def path(self, name):
        self.count += 1
        return os.path.join(self.tmp, f"{self.count}_{name}")

    def tacoc_run(self, *args, check=True):
        proc = subprocess.run([self.tacoc, *args], capture_output=True, text=True, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"tacoc {' '.join(args[:1])} failed: {proc.stderr.strip()}")
        return proc

    def optimize(self, model, passes=None, level=None, extra=()):
        """Returns (optimized ModelProto, tacoc's stdout, stderr)."""
        src, dst = self.path("in.onnx"), self.path("out.onnx")
        onnx.save(model, src)
        args = ["optimize", src, "-o", dst]
        args += ["--passes", passes] if passes else [f"-O{level if level is not None else 2}"]
        proc = self.tacoc_run(*args, *extra)
        out = onnx.load(dst)
        onnx.checker.check_model(out, full_check=True)
        return out, proc.stdout, proc.stderr

    def run_tacort(self, model, feeds):
        path = self.path("m.onnx")
        onnx.save(model, path)
        outdir = self.path("out")
        args = ["run", path, "--output-dir", outdir]
        for k, v in feeds.items():
            f = self.path(f"{k}.npy")
            np.save(f, v)
            args += ["--input", f"{k}={f}"]
        self.tacoc_run(*args)
        res = []
        for o in model.graph.output:
            safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in o.name)
            res.append(np.load(os.path.join(outdir, f"{safe}.npy")))
        return res


def run_ort(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def close(got, want, what, rtol=RTOL, atol=ATOL):
    assert got.shape == want.shape, f"{what}: shape {got.shape} vs {want.shape}"
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} vs {want.dtype}"
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    ok = d <= rtol * np.abs(want.astype(np.float64)) + atol
    assert np.all(ok), f"{what}: max abs error {d.max():.3g}"


def same_outputs(ctx, before, after, feeds, rtol=RTOL, atol=ATOL):
    """The optimized model computes what the original did, in ORT and in tacort."""
    want = run_ort(before, feeds)
    for name, got in (("onnxruntime", run_ort(after, feeds)),
                      ("libtacort", ctx.run_tacort(after, feeds))):
        assert len(got) == len(want), f"{name}: {len(got)} outputs vs {len(want)}"
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{name} output {i}", rtol, atol)


def ops(model):
    return [n.op_type for n in model.graph.node]


def model(nodes, inputs, outputs, inits=(), opset=14, ir=8):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = ir
    return m


def tensor_in(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, value, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


def rand(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def e2e_generator():
    """tools/gen_e2e_models.py as a module: its exporter-style models."""
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
    import gen_e2e_models
    return gen_e2e_models


def run_module(mod, tacoc):
    """Runs every test_* of mod; returns (passed, failed)."""
    passed = failed = 0
    for name in sorted(n for n in dir(mod) if n.startswith("test_")):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                getattr(mod, name)(Ctx(tacoc, tmp))
                passed += 1
                print(f"ok   {mod.__name__}.{name}")
            except AssertionError as e:
                failed += 1
                print(f"FAIL {mod.__name__}.{name}: {e}")
            except Exception as e:  # a crash of the harness is a failure too
                failed += 1
                print(f"FAIL {mod.__name__}.{name}: {type(e).__name__}: {e}")
    return passed, failed
