"""End-to-end: libtacort (through `tacoc run`) against ONNX Runtime on the
models of tools/gen_e2e_models.py and on real pretrained models shipped in
packages that `make deps` installs (Silero VAD; PaddleOCR's PP-OCR
classifier, detector and recognizer from rapidocr-onnxruntime) and on the
ONNX model zoo's caffe2 CNNs that the onnx package ships (AlexNet,
DenseNet-121, GoogLeNet, Inception v2, ResNet-50, ShuffleNet, SqueezeNet:
their graphs with random weights, tools/gen_zoo_models.py), same inputs,
fp32. Each model is also optimized with `tacoc optimize -O2`; the optimized
model must give the original's ONNX Runtime outputs within the same
tolerance both in libtacort and in ONNX Runtime, and the node counts before
and after are printed.

Usage: e2e.py --tacoc PATH --sample PATH [--zoo DIR] MODELDIR

Per model and input set: every output must match ONNX Runtime with
|tacort - ort| <= 1e-4 * |ort| + 1e-5 elementwise; the max absolute error
and that error relative to the output's largest magnitude are printed either
way. The embedding sample (samples/run_model.c) must also run each generated
model. Ends with
"e2e: N passed, N failed"."""
import argparse
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import onnxruntime as ort

RTOL, ATOL = 1e-4, 1e-5
ort.set_default_logger_severity(3)


def feeds(name, rng):
    """Input sets per model: (label, {input: array})."""
    if name == "mlp":
        return [(f"batch{b}", {"x": rng.standard_normal((b, 32)).astype(np.float32)}) for b in (1, 5)]
    if name in ("bert_block", "bert_sdpa"):
        sets = []
        for b, s in ((1, 8), (2, 16)):
            mask = np.ones((b, s), np.int64)
            mask[-1, s // 2:] = 0  # padding in the last sequence
            sets.append((f"b{b}s{s}", {"input_ids": rng.integers(0, 100, (b, s)).astype(np.int64),
                                       "attention_mask": mask}))
        return sets
    if name == "llama":
        sets = []
        for b, s, start in ((1, 7, 0), (2, 12, 5)):
            mask = np.ones((b, s), np.int64)
            mask[-1, s - 3:] = 0  # right padding of the last sequence
            pos = np.tile(np.arange(start, start + s, dtype=np.int64), (b, 1))
            sets.append((f"b{b}s{s}", {"input_ids": rng.integers(0, 96, (b, s)).astype(np.int64),
                                       "attention_mask": mask, "position_ids": pos}))
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
    if name == "whisper_encoder":
        return [(f"b{b}f{t}", {"input_features": rng.standard_normal((b, 16, t)).astype(np.float32)})
                for b, t in ((1, 40), (2, 128))]
    raise SystemExit(f"e2e: no inputs defined for {name}")


def pretrained(rng):
    """(name, model path, input sets) of the real pretrained models."""
    import importlib.util

    def pkg_dir(name):
        spec = importlib.util.find_spec(name)  # locates without importing it
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"e2e: package {name} is missing: run make deps")
        return spec.submodule_search_locations[0]

    vad, ocr = os.path.join(pkg_dir("silero_vad"), "data"), os.path.join(pkg_dir("rapidocr_onnxruntime"), "models")

    def vad_sets():
        return [(f"b{b}", {"input": (rng.standard_normal((b, 512)) * 0.1).astype(np.float32),
                           "state": np.zeros((2, b, 128), np.float32), "sr": np.array(16000, np.int64)})
                for b in (1, 2)]

    def img(*shape):
        return {"x": rng.standard_normal(shape).astype(np.float32)}

    def page(h, w):
        """Dark word-like strokes in lines on white, normalized as PaddleOCR does:
        random noise would leave the detector's probability map near 0 everywhere,
        where an absolute tolerance could not see an error."""
        x = np.ones((h, w), np.float32)
        for r in range(8, h - 8, 16):
            c = 4
            while c < w - 10:
                n = int(rng.integers(3, 9))
                x[r:r + 7, c:c + n] = 0.0
                c += n + int(rng.integers(2, 5))
        return {"x": ((np.stack([x] * 3)[None] - 0.5) / 0.5).astype(np.float32)}

    return [
        ("silero_vad_op18_ifless", os.path.join(vad, "silero_vad_op18_ifless.onnx"), vad_sets()),
        ("silero_vad_16k_op15", os.path.join(vad, "silero_vad_16k_op15.onnx"), vad_sets()),
        ("ppocr_cls_mobilenetv3", os.path.join(ocr, "ch_ppocr_mobile_v2.0_cls_infer.onnx"),
         [("b1", img(1, 3, 48, 192)), ("b3", img(3, 3, 48, 192))]),
        ("ppocrv4_det", os.path.join(ocr, "ch_PP-OCRv4_det_infer.onnx"),
         [("64x96", page(64, 96)), ("96x128", page(96, 128))]),
        ("ppocrv4_rec", os.path.join(ocr, "ch_PP-OCRv4_rec_infer.onnx"),
         [("w160", img(1, 3, 48, 160)), ("w320", img(1, 3, 48, 320))]),
    ]


def file_name(name):
    """name as `tacoc run` names a value's .npy file (every character but
    letters, digits, '.', '-', '_' as '_')."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


@functools.lru_cache(maxsize=None)
def image_input(path):
    """The name of model path's one non-initializer input (read once)."""
    m = onnx.load(path)
    inits = {t.name for t in m.graph.initializer}
    return next(i.name for i in m.graph.input if i.name not in inits)


def zoo(zoodir, rng):
    """(name, model path, input sets) of the zoo CNNs in zoodir (one 224x224 image each)."""
    models = []
    for f in sorted(os.listdir(zoodir)):
        if not f.endswith(".onnx"):
            continue
        path = os.path.join(zoodir, f)
        img = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
        models.append((f"zoo_{f[:-5]}", path, [("img224", {image_input(path): img})]))
    return models


def compare(name, got, want, worst):
    """Appends (name, max abs, max abs / max |want|) to worst; returns a problem or None."""
    if got.shape != want.shape or got.dtype != want.dtype:
        return f"{name}: {got.dtype}{got.shape} vs ORT {want.dtype}{want.shape}"
    d = np.abs(got.astype(np.float64) - want.astype(np.float64))
    scale = float(np.abs(want.astype(np.float64)).max(initial=0))
    worst.append((name, float(d.max(initial=0)), float(d.max(initial=0)) / scale if scale else 0.0))
    if not np.all(d <= RTOL * np.abs(want) + ATOL):
        return f"{name}: max abs error {d.max():.3g} beyond tolerance"
    return None


def run_case(tacoc, model, label, inputs, tmp, reference=None, run_args=()):
    """tacort on model vs ORT on reference (default: model itself); with a
    reference, ORT on model is checked against it as well. run_args go to
    `tacoc run`; with --allow-native-code the generated kernels must have
    been used."""
    sess = ort.InferenceSession(reference or model, providers=["CPUExecutionProvider"])
    ref = sess.run(None, inputs)
    worst = []
    if reference:
        try:
            opt = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, inputs)
        except Exception as e:  # ONNX Runtime refusing the optimized model is a failure
            return f"ONNX Runtime cannot run the optimized model: {e}", worst
        for meta, got, want in zip(sess.get_outputs(), opt, ref):
            problem = compare(f"ORT {meta.name}", got, want, worst)
            if problem:
                return problem, worst
    args = [tacoc, "run", model, "--output-dir", os.path.join(tmp, "out"), *run_args]
    for i, (k, v) in enumerate(inputs.items()):
        path = os.path.join(tmp, f"in{i}.npy")  # input names may hold '/'
        np.save(path, v)
        args += ["--input", f"{k}={path}"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"tacoc run failed: {proc.stderr.strip()}", None
    if "--allow-native-code" in run_args:
        m = re.search(r"(\d+) nodes run generated kernels", proc.stderr)
        if "warning" in proc.stderr or not m:
            return f"the generated kernels were not used: {proc.stderr.strip()}", None
        worst.append(("generated-kernel nodes", int(m.group(1)), 0.0))
    for meta, want in zip(sess.get_outputs(), ref):
        got = np.load(os.path.join(tmp, "out", f"{file_name(meta.name)}.npy"))
        problem = compare(meta.name, got, want, worst)
        if problem:
            return problem, worst
    return None, worst


def optimize(tacoc, model, out, extra=()):
    """tacoc optimize -O2; returns (problem, nodes before, nodes after)."""
    proc = subprocess.run([tacoc, "optimize", model, "-o", out, "-O2", "--quiet", *extra],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"tacoc optimize failed: {proc.stderr.strip()}", 0, 0
    count = [len(onnx.load(p, load_external_data=False).graph.node) for p in (model, out)]
    return None, count[0], count[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("--sample", required=True)
    ap.add_argument("--zoo", help="directory of tools/gen_zoo_models.py's models")
    ap.add_argument("modeldir")
    a = ap.parse_args()
    rng = np.random.default_rng(7)
    passed = failed = 0
    models = [(f[:-5], os.path.join(a.modeldir, f), None)
              for f in sorted(os.listdir(a.modeldir)) if f.endswith(".onnx")]
    optdir = tempfile.mkdtemp(prefix="e2e-opt-")
    for name, model, sets in models + pretrained(rng) + (zoo(a.zoo, rng) if a.zoo else []):
        opt = os.path.join(optdir, f"{name}.opt.onnx")
        problem, before, after = optimize(a.tacoc, model, opt)
        if problem:
            failed += 1
            print(f"FAIL {name} -O2: {problem}")
        else:
            print(f"     {name} -O2: {before} -> {after} nodes")
        # -O2 with generated kernels (untuned: deterministic), run with them allowed
        cg = os.path.join(optdir, f"{name}.cg.onnx")
        cg_problem = optimize(a.tacoc, model, cg, ("--codegen", "cpu", "--tune", "off"))[0]
        has_lib = not cg_problem and os.path.exists(cg + ".tacok")
        if cg_problem:
            failed += 1
            print(f"FAIL {name} -O2 --codegen cpu: {cg_problem}")
        variants = [("", model, None, ()), (" -O2", opt, model, ())]
        if has_lib:
            variants.append((" -O2 codegen", cg, model, ("--allow-native-code",)))
        for label, inputs in sets if sets is not None else feeds(name, rng):
            for variant, path, ref, run_args in variants:
                if ref and problem:
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    bad, worst = run_case(a.tacoc, path, label, inputs, tmp, ref, run_args)
                errs = ", ".join(f"{ab} nodes on generated kernels" if o == "generated-kernel nodes"
                                 else f"{o}: max abs {ab:.2e}, rel to max {rl:.2e}"
                                 for o, ab, rl in worst or [])
                if bad:
                    failed += 1
                    print(f"FAIL {name}{variant} {label}: {bad} {errs}")
                else:
                    passed += 1
                    print(f"ok   {name}{variant} {label}: {errs}")
        if sets is not None:
            continue  # the sample fills inputs generically; real models need real ones
        proc = subprocess.run([a.sample, model], capture_output=True, text=True)
        if proc.returncode:
            failed += 1
            print(f"FAIL sample run_model {name}: {proc.stderr.strip()}")
        else:
            passed += 1
    shutil.rmtree(optdir, ignore_errors=True)
    print(f"e2e: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
