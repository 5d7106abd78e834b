"""Round-trip a model whose external weights exceed 2 GiB through `tacoc -O0`.

Usage: bigmodel.py [--tacoc PATH] [--workdir DIR]

Builds (once; reused while weights.bin keeps its expected size) a model with
three 768 MiB float32 initializers and a small one in a single external file,
so offsets and lengths cross 2^31 and one tensor straddles the 2 GiB mark.
Each 16 MiB chunk of the file holds a distinct pattern, so data written at
a wrong offset cannot compare equal. Then runs `tacoc optimize -O0` and
checks the exit status, that the output proto equals the input, and that
each tensor's byte range in the output's weights.bin hashes like the input's
(read in 16 MiB chunks, never all in memory). The output is deleted
afterwards; the input stays for the next run.

Prints `FAIL <check>: <reason>` per failure and ends with
`bigmodel: N passed, N failed`; exits 1 if anything failed.
"""

import argparse
import hashlib
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
from onnx import TensorProto, helper

from harness import (REPO_ROOT, add_tacoc_option, first_line, parse_args, proto_problem,
                     run_tacoc)

CHUNK = 16 << 20
BIG_SHAPES = {"w0": (12288, 16384), "w1": (16384, 12288), "w2": (12288, 16384)}
BIAS_LEN = 16384
WEIGHTS = "weights.bin"


def layout():
    """[(name, shape, offset, length)] of the tensors in weights.bin, packed."""
    entries, offset = [], 0
    for name, shape in list(BIG_SHAPES.items()) + [("bias", (BIAS_LEN,))]:
        length = 4 * int(np.prod(shape))
        entries.append((name, shape, offset, length))
        offset += length
    return entries


def chunk_pattern(index, base):
    """16 MiB of bytes unique to chunk number index of the file."""
    return (base ^ np.uint32((index * 2654435761) & 0xFFFFFFFF)).tobytes()


def write_weights(path, size):
    """Write weights.bin chunk by chunk; the rename marks it complete, so a
    file of the right size is a finished one."""
    base = np.arange(CHUNK // 4, dtype=np.uint32)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        for index in range((size + CHUNK - 1) // CHUNK):
            f.write(chunk_pattern(index, base)[:size - index * CHUNK])
    os.replace(tmp, path)


def build_model():
    inits = []
    for name, shape, offset, length in layout():
        t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=shape,
                        data_location=TensorProto.EXTERNAL)
        for key, value in (("location", WEIGHTS), ("offset", str(offset)),
                           ("length", str(length))):
            t.external_data.add(key=key, value=value)
        inits.append(t)
    nodes = [
        helper.make_node("MatMul", ["X", "w0"], ["h0"], name="mm0"),
        helper.make_node("MatMul", ["h0", "w1"], ["h1"], name="mm1"),
        helper.make_node("MatMul", ["h1", "w2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["h2", "bias"], ["Y"], name="add"),
    ]
    graph = helper.make_graph(
        nodes, "bigmodel",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 12288])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 16384])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def prepare_input(in_dir):
    os.makedirs(in_dir, exist_ok=True)
    name, _shape, offset, length = layout()[-1]
    size = offset + length
    weights = os.path.join(in_dir, WEIGHTS)
    if not os.path.exists(weights) or os.path.getsize(weights) != size:
        print(f"bigmodel: writing {size >> 20} MiB of weights to {weights}", flush=True)
        write_weights(weights, size)
    model_path = os.path.join(in_dir, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(build_model().SerializeToString())
    return model_path


def range_digest(path, offset, length):
    """SHA-1 of [offset, offset+length) of path, or None if the file is short."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        f.seek(offset)
        while length > 0:
            data = f.read(min(CHUNK, length))
            if not data:
                return None
            digest.update(data)
            length -= len(data)
    return digest.hexdigest()


def check_ranges(in_dir, out_dir, model):
    """(check name, problem or None) per external tensor."""
    results = []
    # hashlib releases the GIL, so input and output hash in parallel.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for tensor in model.graph.initializer:
            info = {e.key: e.value for e in tensor.external_data}
            offset, length = int(info["offset"]), int(info["length"])
            name = f"tensor {tensor.name} ({length} bytes at {offset})"
            out_file = os.path.join(out_dir, info["location"])
            if not os.path.isfile(out_file):
                results.append((name, f"{info['location']} not written beside output"))
                continue
            src = pool.submit(range_digest, os.path.join(in_dir, info["location"]),
                              offset, length)
            dst = pool.submit(range_digest, out_file, offset, length)
            if dst.result() is None:
                results.append((name, "output file too short"))
            elif src.result() != dst.result():
                results.append((name, "bytes differ"))
            else:
                results.append((name, None))
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_tacoc_option(parser)
    parser.add_argument("--workdir", default=os.path.join(REPO_ROOT, "build", "bigmodel"),
                        help="where the model is kept (default: %(default)s)")
    parser.add_argument("--timeout", type=int, default=300,
                        help="seconds allowed for the tacoc run (default 300)")
    args = parse_args(parser)

    in_dir = os.path.join(args.workdir, "in")
    out_dir = os.path.join(args.workdir, "out")
    model_path = prepare_input(in_dir)
    src = onnx.load(model_path, load_external_data=False)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    out_path = os.path.join(out_dir, "model.onnx")
    try:
        proc, problem = run_tacoc(args.tacoc, ["optimize", model_path, "-o", out_path, "-O0"],
                                  args.timeout)
        if problem is None and proc.returncode != 0:
            problem = f"exit status {proc.returncode}: {first_line(proc.stderr)}"
        results = [("tacoc optimize -O0", problem)]
        if problem is None:
            try:
                out = onnx.load(out_path, load_external_data=False)
                results.append(("model proto", proto_problem(src, out)))
            except Exception as e:  # noqa: BLE001 - any parse failure is the finding
                results.append(("model proto", f"output does not parse: {e}"))
            results += check_ranges(in_dir, out_dir, src)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)

    failed = 0
    for name, problem in results:
        if problem is not None:
            failed += 1
            print(f"FAIL {name}: {problem}")
    print(f"bigmodel: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
