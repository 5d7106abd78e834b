"""The latency a model cannot go under on this CPU with the expert library's
GEMMs, measured, for bench/codegen_compare.py (and anyone):

- its work: every MatMul and Gemm (a multiply-add counted as two operations;
  batched products of two activations, such as attention's, too) and every
  Conv (direct algorithm: 2 x N x M x C/group x kernel x output positions),
  from ONNX shape inference at the benchmark's input shapes, and the bytes
  of the weights those nodes read;
- the rates: build/bench/cpu_peak (bench/cpu_peak.c) runs oneDNN's sgemm
  and u8s8s32 GEMM at each weight GEMM's own shape and at 2048^3, the
  core's own multiply-add peaks (AVX-512 FMA, VNNI) in register-only loops,
  best of its repetitions, and a read pass over 256 MiB;
- two floors, summed over those nodes: the library floor takes every
  operation at the best rate oneDNN's sgemm reached at any of those shapes
  (the weight GEMMs of a quantized model at the best u8s8s32 rate); the
  hardware floor takes them at the core's peak (FMA, or VNNI for the int8
  weight GEMMs) times the thread count. A best rate is an upper bound on what was
  sustained, so a floor is a lower bound on those nodes' time, warm caches
  assumed; the other nodes (normalizations, softmax, activations) are not
  counted. No kernel can beat the hardware floor; beating the library one
  takes kernels faster than oneDNN's at those shapes.

Winograd convolutions do fewer multiplications than the direct algorithm
counts (libtacort runs ResNet-50's stride-1 3x3 ones that way), so for
CNNs the direct floor is what a direct-convolution runtime (ONNX Runtime's
MLAS) cannot go under, not libtacort. Weights read from memory at the
measured bandwidth are given beside the floor (weights that do not fit the
caches are read on every run)."""
import re
import subprocess

import onnx
from onnx import shape_inference


def _dims(vi):
    return [d.dim_value for d in vi.type.tensor_type.shape.dim]


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def work(model, feeds):
    """The products and convolutions of `model` (an onnx.ModelProto) at the
    input shapes of `feeds` (name -> array): a list of dicts with `op`,
    `flops` (multiply-adds x 2), `weight_bytes`, and for a MatMul / Gemm
    whose B is a 2-D initializer `mkn` = (M, K, N) with M the rows of A."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in m.graph.input:
        if vi.name in feeds:
            shape = feeds[vi.name].shape
            dims = vi.type.tensor_type.shape.dim
            for d, n in zip(dims, shape):
                d.Clear()
                d.dim_value = int(n)
    m = shape_inference.infer_shapes(m, data_prop=True)
    shapes = {vi.name: _dims(vi) for vi in list(m.graph.value_info) + list(m.graph.input)
              + list(m.graph.output)}
    inits = {i.name: list(i.dims) for i in m.graph.initializer}
    shapes.update(inits)
    items = []
    for n in m.graph.node:
        if n.op_type in ("MatMul", "Gemm"):
            a, b = shapes.get(n.input[0]), shapes.get(n.input[1])
            if not a or not b or 0 in a or 0 in b:
                raise ValueError(f"node {n.name or n.output[0]} ({n.op_type}): "
                                 "operand shapes unknown at these inputs")
            if n.op_type == "Gemm":
                M, K = (a[1], a[0]) if _attr(n, "transA", 0) else (a[0], a[1])
                N = b[0] if _attr(n, "transB", 0) else b[1]
                batch = 1
            else:
                a2, b2 = ([1] + a if len(a) == 1 else a), (b + [1] if len(b) == 1 else b)
                M, K, N = a2[-2], a2[-1], b2[-1]
                la, lb = a2[:-2], b2[:-2]
                la, lb = [1] * (len(lb) - len(la)) + la, [1] * (len(la) - len(lb)) + lb
                batch = 1
                for x, y in zip(la, lb):
                    batch *= max(x, y)
            weight = n.input[1] in inits and len(b) == 2
            item = {"op": n.op_type, "name": n.name or n.output[0],
                    "flops": 2 * batch * M * K * N,
                    "weight_bytes": 4 * K * N if weight else 0}
            if weight:
                item["mkn"] = (batch * M, K, N)
            items.append(item)
        elif n.op_type == "Conv":
            w, y = shapes.get(n.input[1]), shapes.get(n.output[0])
            if not w or not y or 0 in y:
                raise ValueError(f"node {n.name or n.output[0]} (Conv): shapes unknown")
            per_out = 1
            for d in w[1:]:
                per_out *= d
            outs = 1
            for d in y:
                outs *= d
            items.append({"op": "Conv", "name": n.name or n.output[0],
                          "flops": 2 * outs * per_out,
                          "weight_bytes": 4 * w[0] * per_out if n.input[1] in inits else 0})
    return items


_LINE = re.compile(r"^(sgemm|u8gemm) (\d+) (\d+) (\d+) best ([\d.]+) median ([\d.]+)")
_CORE = re.compile(r"^(fma|vnni) best ([\d.]+) median ([\d.]+)")
_STREAM = re.compile(r"^stream \d+ best ([\d.]+) median ([\d.]+) GB/s")


def parse_peaks(text):
    """cpu_peak's output: ({(kind, M, K, N) or (fma|vnni,): best rate in
    G/s}, stream GB/s or None)."""
    rates, stream = {}, None
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            rates[(m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4)))] = \
                float(m.group(5))
        m = _CORE.match(line)
        if m:
            rates[(m.group(1),)] = float(m.group(2))
        m = _STREAM.match(line)
        if m:
            stream = float(m.group(1))
    return rates, stream


def measure(peak_bin, items, threads, int8=False, reps=15):
    """Run cpu_peak at the weight GEMMs' shapes of `items` (and 2048^3, the
    core peaks and the stream pass) with `threads` threads; returns
    parse_peaks' pair, the core peaks as ("fma",) and ("vnni",) times
    `threads`."""
    kinds = ["sgemm"] + (["u8gemm"] if int8 else [])
    shapes = sorted({it["mkn"] for it in items if "mkn" in it} | {(2048, 2048, 2048)})
    args = [peak_bin, "--threads", str(threads), "--reps", str(reps), "fma"]
    args += ["vnni"] if int8 else []
    for k in kinds:
        for s in shapes:
            args += [k, *map(str, s)]
    args += ["stream", "256"]
    p = subprocess.run(args, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"{peak_bin}: {p.stderr.strip()}")
    rates, stream = parse_peaks(p.stdout)
    for k in ("fma", "vnni"):
        if (k,) in rates:
            rates[(k,)] *= threads
    return rates, stream


def floor_ms(items, rates, int8=False, hardware=False):
    """The summed lower bound in ms (module docstring): the library floor,
    or with `hardware` the core-peak one; int8 takes the u8gemm (VNNI) rate
    for the weight GEMMs."""
    def best(kind):
        return max(v for (k, *_), v in rates.items() if k == kind)
    f32 = best("fma" if hardware else "sgemm")
    i8 = best("vnni" if hardware else "u8gemm") if int8 else f32
    total = sum(it["flops"] / ((i8 if "mkn" in it else f32) * 1e9) for it in items)
    return total * 1e3


def summary(items, rates, stream, int8=False):
    """One line: operations, the two floors, the weights and their read
    time; and the library floor in ms."""
    gflop = sum(it["flops"] for it in items) / 1e9
    # int8 weight GEMMs read a quarter of the float32 bytes
    wmb = sum(it["weight_bytes"] / (4 if int8 and "mkn" in it else 1) for it in items) / 1e6
    fl = floor_ms(items, rates, int8)
    wt = f", {wmb:.0f} MB of weights read in {wmb / stream:.1f} ms at {stream:.1f} GB/s" \
        if stream else ""
    hw = floor_ms(items, rates, int8, hardware=True)
    return (f"{gflop:.2f} G operations, floor {fl:.1f} ms with oneDNN's GEMM rates, {hw:.1f} ms "
            f"at the core's peak{wt}"), fl
