"""End-to-end: libtacort (through `tacoc run`) against ONNX Runtime on the
models of tools/gen_e2e_models.py, same inputs, fp32.

Usage: e2e.py --tacoc PATH --sample PATH MODELDIR

Per model and input set: every output must match ONNX Runtime with
|tacort - ort| <= 1e-4 * |ort| + 1e-5 elementwise; the max absolute and
relative errors are printed either way. The embedding sample
(samples/run_model.c) must also run each model. Ends with
"e2e: N passed, N failed"."""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnxruntime as ort

RTOL, ATOL = 1e-4, 1e-5


def feeds(name, rng):
    """Input sets per model: (label, {input: array})."""
    if name == "mlp":
        return [(f"batch{b}", {"x": rng.standard_normal((b, 32)).astype(np.float32)}) for b in (1, 5)]
    if name == "bert_block":
        sets = []
        for b, s in ((1, 8), (2, 16)):
            mask = np.ones((b, s), np.int64)
            mask[-1, s // 2:] = 0  # padding in the last sequence
            sets.append((f"b{b}s{s}", {"input_ids": rng.integers(0, 100, (b, s)).astype(np.int64),
                                       "attention_mask": mask}))
        return sets
    if name == "cnn":
        return [(f"batch{b}", {"image": rng.standard_normal((b, 3, 32, 32)).astype(np.float32)})
                for b in (1, 2)]
    if name == "gpt2_decoder":
        # (batch, seq, past_seq): a prompt with an empty cache, then decoding with a filled one.
        sets = []
        for b, s, past in ((2, 5, 0), (2, 3, 6)):
            mask = np.ones((b, past + s), np.int64)
            if past:
                mask[-1, :2] = 0  # left padding of the last sequence, as batched generation has
            else:
                mask[-1, -1] = 0  # right padding of the last prompt
            inputs = {"input_ids": rng.integers(0, 96, (b, s)).astype(np.int64), "attention_mask": mask}
            for i in range(2):
                for kv in ("key", "value"):
                    inputs[f"past_key_values.{i}.{kv}"] = rng.standard_normal((b, 4, past, 16)).astype(np.float32)
            sets.append((f"b{b}s{s}past{past}", inputs))
        return sets
    if name == "vit":
        return [(f"batch{b}", {"pixel_values": rng.standard_normal((b, 3, 32, 32)).astype(np.float32)})
                for b in (1, 3)]
    if name == "mobilenetv3":
        return [(f"batch{b}", {"image": rng.standard_normal((b, 3, 32, 32)).astype(np.float32)})
                for b in (1, 4)]
    if name == "wav2vec2":
        return [(f"b{b}n{t}", {"input_values": rng.standard_normal((b, t)).astype(np.float32)})
                for b, t in ((1, 400), (2, 640))]
    raise SystemExit(f"e2e: no inputs defined for {name}")


def run_case(tacoc, model, label, inputs, tmp):
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    ref = sess.run(None, inputs)
    args = [tacoc, "run", model, "--output-dir", os.path.join(tmp, "out")]
    for k, v in inputs.items():
        path = os.path.join(tmp, f"{k}.npy")
        np.save(path, v)
        args += ["--input", f"{k}={path}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"tacoc run failed: {proc.stderr.strip()}", None
    worst = []
    for meta, want in zip(sess.get_outputs(), ref):
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in meta.name)
        got = np.load(os.path.join(tmp, "out", f"{safe}.npy"))
        if got.shape != want.shape or got.dtype != want.dtype:
            return f"{meta.name}: {got.dtype}{got.shape} vs ORT {want.dtype}{want.shape}", None
        d = np.abs(got.astype(np.float64) - want.astype(np.float64))
        rel = d / np.maximum(np.abs(want.astype(np.float64)), 1e-30)
        worst.append((meta.name, float(d.max(initial=0)), float(rel.max(initial=0))))
        if not np.all(d <= RTOL * np.abs(want) + ATOL):
            return f"{meta.name}: max abs error {d.max():.3g} beyond tolerance", worst
    return None, worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("--sample", required=True)
    ap.add_argument("modeldir")
    a = ap.parse_args()
    rng = np.random.default_rng(7)
    passed = failed = 0
    for fname in sorted(os.listdir(a.modeldir)):
        if not fname.endswith(".onnx"):
            continue
        model = os.path.join(a.modeldir, fname)
        name = fname[:-5]
        for label, inputs in feeds(name, rng):
            with tempfile.TemporaryDirectory() as tmp:
                problem, worst = run_case(a.tacoc, model, label, inputs, tmp)
            errs = ", ".join(f"{o}: max abs {ab:.2e}, max rel {rl:.2e}" for o, ab, rl in worst or [])
            if problem:
                failed += 1
                print(f"FAIL {name} {label}: {problem} {errs}")
            else:
                passed += 1
                print(f"ok   {name} {label}: {errs}")
        proc = subprocess.run([a.sample, model], capture_output=True, text=True)
        if proc.returncode:
            failed += 1
            print(f"FAIL sample run_model {name}: {proc.stderr.strip()}")
        else:
            passed += 1
    print(f"e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
