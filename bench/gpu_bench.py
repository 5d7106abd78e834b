"""The GPU benchmark of the CUDA target (a benchmark, not a test): BERT-base
(sequence 128, batch 1 and 32) and ResNet-50 (batch 1 and 32), optimized
with `tacoc optimize -O2 --precision fp16 --target cuda` and run with
`tacoc run --target cuda --allow-native-code --cuda-gemm-search 8 --repeat N`
(the median per run, host inputs to host outputs; cuBLASLt's algorithm chosen
by measurement in the warm-up run), against PyTorch eager fp16 on the same
device (transformers' BertModel with BERT-base's configuration and
torchvision's resnet50, random weights; CUDA events, median of N), and
against the device's roofline from its measured ceilings (a large fp16
matrix product and a device-to-device copy through PyTorch).

Usage: bench/gpu_bench.py --tacoc PATH [--workdir DIR] [--reps 30]
Prints one table; run on the lent GPU machine by tests/gpu/device_check.sh.
"""
import argparse
import os
import re
import subprocess
import sys

import numpy as np
import onnx

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import ort_compare as oc  # noqa: E402

HIDDEN, LAYERS, FF, SEQ = 768, 12, 3072, 128


def bert_flops(batch):
    """Multiply-adds x2 of the encoder (projections, FFN, attention scores and context)."""
    tokens = batch * SEQ
    dense = 2 * tokens * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FF)
    attn = 2 * LAYERS * batch * 2 * SEQ * SEQ * HIDDEN
    return dense + attn


def bert_bytes(batch):
    """fp16 weights read once plus the layer activations written and read once."""
    weights = 2 * LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FF)
    acts = 2 * 2 * batch * SEQ * LAYERS * (6 * HIDDEN + FF)
    return weights + acts


RESNET_GFLOP = 8.2  # 2 x 4.1 GMAC per 224x224 image
RESNET_PARAMS = 25.6e6


def tacort_ms(tacoc, model, feeds, workdir, reps):
    args = [tacoc, "run", model, "--target", "cuda", "--allow-native-code", "--repeat", str(reps),
            "--cuda-gemm-search", "8"]
    for k, v in feeds.items():
        f = os.path.join(workdir, f"in_{k}.npy")
        np.save(f, v)
        args += ["--input", f"{k}={f}"]
    p = subprocess.run(args, capture_output=True, text=True, timeout=900)
    m = re.search(r"latency: median ([\d.]+) ms", p.stdout)
    g = re.search(r"(\d+) nodes placed on the GPU", p.stderr)
    if p.returncode or not m:
        return None, f"tacoc run failed: {p.stderr.strip()[-300:]}"
    return float(m.group(1)), f"{g.group(1) if g else '?'} GPU nodes"


def torch_ms(fn, reps):
    import torch
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.inference_mode():
        for _ in range(3):
            fn()
        times = []
        for _ in range(reps):
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
    return float(np.median(times))


def ceilings():
    """Measured fp16 matrix rate (FLOP/s) and copy bandwidth (bytes/s)."""
    import torch
    a = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
    ms = torch_ms(lambda: a @ a, 10)
    flops = 2 * 8192 ** 3 / (ms / 1e3)
    x = torch.empty(1 << 30, device="cuda", dtype=torch.uint8)
    y = torch.empty_like(x)
    ms = torch_ms(lambda: y.copy_(x), 10)
    return flops, 2 * x.numel() / (ms / 1e3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("--workdir", default="/tmp/tacoc-gpu-bench")
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    rng = np.random.default_rng(0)
    try:
        import torch
        have_torch = torch.cuda.is_available()
    except ImportError:
        have_torch = False
    peak_flops = peak_bw = None
    if have_torch:
        peak_flops, peak_bw = ceilings()
        print(f"device: {torch.cuda.get_device_name()}; measured ceilings: fp16 matmul "
              f"{peak_flops / 1e12:.0f} TFLOP/s, copy {peak_bw / 1e12:.2f} TB/s")
    rows = []
    for name, batch in (("bert_base", 1), ("bert_base", 32), ("resnet50", 1), ("resnet50", 32)):
        # one model per network, batch symbolic (ResNet-50's made so); the
        # precision check runs batch 1
        tag = name
        src = os.path.join(a.workdir, f"{tag}.onnx")
        opt = os.path.join(a.workdir, f"{tag}.fp16.cuda.onnx")
        if not os.path.exists(src):
            m = oc.MODELS[name]()
            if name == "resnet50":
                for v in (m.graph.input[0], m.graph.output[0]):
                    v.type.tensor_type.shape.dim[0].dim_param = "batch"
            onnx.save(m, src)
        if not os.path.exists(opt):
            shapes = ["--shape", f"input_ids=1x{SEQ}", "--shape", f"attention_mask=1x{SEQ}"] \
                if name == "bert_base" else ["--shape", "image=1x3x224x224"]
            p = subprocess.run([a.tacoc, "optimize", src, "-o", opt, "-O2", "-q", "--precision",
                                "fp16", "--target", "cuda", *shapes], capture_output=True,
                               text=True, timeout=1800)
            if p.returncode:
                print(f"{tag}: tacoc optimize failed: {p.stderr.strip()[-300:]}")
                continue
        if name == "bert_base":
            feeds = {"input_ids": rng.integers(0, 30522, (batch, SEQ)).astype(np.int64),
                     "attention_mask": np.ones((batch, SEQ), np.int64)}
            flops, nbytes = bert_flops(batch), bert_bytes(batch)
        else:
            feeds = {"image": rng.standard_normal((batch, 3, 224, 224)).astype(np.float32)}
            flops, nbytes = RESNET_GFLOP * 1e9 * batch, 2 * RESNET_PARAMS + batch * 3 * 224 * 224 * 4
        ours, note = tacort_ms(a.tacoc, opt, feeds, a.workdir, a.reps)
        ref = None
        if have_torch:
            if name == "bert_base":
                from transformers import BertConfig, BertModel
                mdl = BertModel(BertConfig()).half().cuda().eval()
                ids = torch.tensor(feeds["input_ids"], device="cuda")
                mask = torch.tensor(feeds["attention_mask"], device="cuda")
                ref = torch_ms(lambda: mdl(input_ids=ids, attention_mask=mask), a.reps)
            else:
                import torchvision
                mdl = torchvision.models.resnet50().half().cuda().eval()
                img = torch.tensor(feeds["image"], device="cuda").half()
                ref = torch_ms(lambda: mdl(img), a.reps)
            del mdl
        floor = max(flops / peak_flops, nbytes / peak_bw) * 1e3 if peak_flops else None
        rows.append((name, batch, ours, ref, floor, note))
    print(f"\n{'model':10} {'batch':>5} {'libtacort ms':>13} {'PyTorch ms':>11} {'ratio':>6} "
          f"{'floor ms':>9}  notes")
    for name, batch, ours, ref, floor, note in rows:
        f = lambda v: f"{v:.3f}" if v is not None else "-"  # noqa: E731
        ratio = f"{ours / ref:.2f}" if ours and ref else "-"
        print(f"{name:10} {batch:5d} {f(ours):>13} {f(ref):>11} {ratio:>6} {f(floor):>9}  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
