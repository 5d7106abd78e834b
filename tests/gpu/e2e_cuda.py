"""The end-to-end models on the CUDA target: each model of
tools/gen_e2e_models.py optimized with `tacoc optimize -O2 --target cuda`
(float32) and with `--precision fp16 --target cuda`, run with
`tacoc run --target cuda --allow-native-code`, against libtacort's CPU run of
the original model on the same inputs (tests/e2e.py's input sets).
float32 must match within 1e-3 relative to the output's largest magnitude
(TF32 is not used), float16 with cosine similarity >= 0.999.

Without a CUDA device it checks that `--target cuda` is refused cleanly
(exit 2, the reason named, nothing written) and prints
"skipped: no CUDA device".

Usage: e2e_cuda.py --tacoc PATH MODELDIR
Prints `ok ...` / `FAIL ...` lines, then `gpu-e2e: N passed, N failed`.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e import feeds  # noqa: E402  (the same input sets as the CPU end-to-end tests)


def run(tacoc, model, inputs, tmp, extra=()):
    out = tempfile.mkdtemp(dir=tmp)
    args = [tacoc, "run", model, "--output-dir", out, *extra]
    for k, v in inputs.items():
        path = os.path.join(tmp, f"{k}.npy")
        np.save(path, v)
        args += ["--input", f"{k}={path}"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=600)
    written = sorted(os.listdir(out))
    outs = {f[:-4]: np.load(os.path.join(out, f)) for f in written} if not p.returncode else written
    return p, outs


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("modeldir")
    a = ap.parse_args()
    passed = failed = 0
    models = sorted(f[:-5] for f in os.listdir(a.modeldir) if f.endswith(".onnx"))
    with tempfile.TemporaryDirectory() as tmp:
        probe = os.path.join(a.modeldir, "mlp.onnx")
        p, written = run(a.tacoc, probe, {"x": np.zeros((1, 32), np.float32)}, tmp, ("--target", "cuda"))
        if p.returncode:
            ok = p.returncode == 2 and not written and \
                re.search(r"target cuda: (no CUDA device|cannot load)", p.stderr)
            print(("ok   " if ok else "FAIL ") + f"--target cuda refused cleanly: {p.stderr.strip()}")
            print(f"gpu-e2e: skipped: {'no CUDA device' if 'no CUDA device' in p.stderr else p.stderr.strip()}")
            print(f"gpu-e2e: {int(bool(ok))} passed, {int(not ok)} failed")
            return 0 if ok else 1
        print(p.stderr.strip().splitlines()[-1])
        rng = np.random.default_rng(7)
        for name in models:
            src = os.path.join(a.modeldir, name + ".onnx")
            sets = feeds(name, rng)
            # the precision check runs the model on inputs shaped like the first set
            shapes = [x for k, v in sets[0][1].items()
                      for x in ("--shape", f"{k}={'x'.join(map(str, v.shape)) or '1'}")]
            for label, prec in (("fp32", ()), ("fp16", ("--precision", "fp16", *shapes))):
                opt = os.path.join(tmp, f"{name}.{label}.onnx")
                o = subprocess.run([a.tacoc, "optimize", src, "-o", opt, "-O2", "-q", "--target", "cuda",
                                    *prec], capture_output=True, text=True, timeout=600)
                if o.returncode:
                    failed += 1
                    print(f"FAIL {name} {label}: tacoc optimize: {o.stderr.strip()}")
                    continue
                for set_label, inputs in sets:
                    _, want = run(a.tacoc, src, inputs, tmp)
                    p, got = run(a.tacoc, opt, inputs, tmp, ("--target", "cuda", "--allow-native-code"))
                    if p.returncode or "warning" in p.stderr:
                        failed += 1
                        print(f"FAIL {name} {label} {set_label}: {p.stderr.strip()}")
                        continue
                    gpu_nodes = re.search(r"(\d+) nodes placed on the GPU", p.stderr).group(1)
                    problems, notes = [], []
                    for k, w in want.items():
                        g = got[k].astype(np.float64)
                        w = w.astype(np.float64)
                        if label == "fp32":
                            rel = np.abs(g - w).max(initial=0) / max(np.abs(w).max(initial=0), 1e-30)
                            notes.append(f"{k}: rel {rel:.2e}")
                            if not rel <= 1e-3:
                                problems.append(f"{k} off by {rel:.3g} of its range")
                        else:
                            cos = float(np.dot(g.ravel(), w.ravel()) /
                                        max(np.linalg.norm(g) * np.linalg.norm(w), 1e-30))
                            notes.append(f"{k}: cos {cos:.6f}")
                            if not cos >= 0.999:
                                problems.append(f"{k} cosine {cos:.6f}")
                    line = f"{name} {label} {set_label} ({gpu_nodes} GPU nodes): {', '.join(notes)}"
                    if problems:
                        failed += 1
                        print(f"FAIL {line}: {'; '.join(problems)}")
                    else:
                        passed += 1
                        print(f"ok   {line}")
    print(f"gpu-e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
