"""Helpers shared by the tacoc test scripts (roundtrip, bigmodel, errors, codegen, ops_ort, ...)."""

import os
import signal
import subprocess

import onnx
from onnx import TensorProto, helper, numpy_helper

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TACOC = os.path.join(REPO_ROOT, "build", "bin", "tacoc")

# Markers the sanitizers (ASan, UBSan, LSan, MSan) print in their reports.
SANITIZER_MARKERS = ("Sanitizer", "runtime error:")


def add_tacoc_option(parser):
    parser.add_argument("--tacoc", default=DEFAULT_TACOC,
                        help="tacoc binary to test (default: %(default)s)")


def parse_args(parser):
    """parser.parse_args(), refusing up front a tacoc that cannot run rather
    than failing every case the same way."""
    args = parser.parse_args()
    if not (os.path.isfile(args.tacoc) and os.access(args.tacoc, os.X_OK)):
        parser.error(f"{args.tacoc}: not an executable file (build tacoc first?)")
    return args


def run_tacoc(tacoc, args, timeout, cwd=None):
    """Run tacoc; return (CompletedProcess or None, problem or None).

    The problem string covers what is wrong whatever the expected exit
    status: a timeout, a death by signal or a sanitizer report.
    """
    try:
        proc = subprocess.run([tacoc, *args], capture_output=True, text=True,
                              errors="replace", timeout=timeout, cwd=cwd)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout}s"
    except OSError as e:
        return None, f"cannot run {tacoc}: {e.strerror}"
    if proc.returncode < 0:
        try:
            name = signal.Signals(-proc.returncode).name
        except ValueError:
            name = f"signal {-proc.returncode}"
        return proc, f"killed by {name}"
    for line in proc.stderr.splitlines():
        if any(marker in line for marker in SANITIZER_MARKERS):
            return proc, f"sanitizer report on stderr: {line.strip()}"
    return proc, None


def run_tests(tests, suite):
    """Runs each test function (no arguments), printing `ok NAME` or `FAIL
    NAME: reason` per test and then "SUITE: N passed, N failed"; returns the
    exit status."""
    failed = 0
    for fn in tests:
        try:
            fn()
            print(f"ok   {fn.__name__}", flush=True)
        except AssertionError as e:
            failed += 1
            print(f"FAIL {fn.__name__}: {str(e) or 'assertion failed'}", flush=True)
    print(f"{suite}: {len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


def first_line(text):
    lines = text.strip().splitlines()
    return lines[0] if lines else "(empty)"


def graph_tensors(graph):
    """Every TensorProto reachable from graph, subgraphs included, in a fixed order."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attr in node.attribute:
            yield from attribute_tensors(attr)


def attribute_tensors(attr):
    if attr.HasField("t"):
        yield attr.t
    yield from attr.tensors
    for sparse in ([attr.sparse_tensor] if attr.HasField("sparse_tensor") else []) \
            + list(attr.sparse_tensors):
        yield sparse.values
        yield sparse.indices
    if attr.HasField("g"):
        yield from graph_tensors(attr.g)
    for sub in attr.graphs:
        yield from graph_tensors(sub)


def model_tensors(model):
    """Every TensorProto of the model: main graph, functions, training graphs."""
    yield from graph_tensors(model.graph)
    for func in model.functions:
        for node in func.node:
            for attr in node.attribute:
                yield from attribute_tensors(attr)
    for info in model.training_info:
        yield from graph_tensors(info.initialization)
        yield from graph_tensors(info.algorithm)


def external_ranges(model):
    """{(location, offset, length or None)} referenced by external tensors.

    A missing length means "to the end of the file", as onnx reads it.
    """
    ranges = set()
    for tensor in model_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        length = info.get("length")
        ranges.add((info.get("location", ""), int(info.get("offset", 0)),
                    None if length is None else int(length)))
    return ranges


def first_difference(a, b, path="model"):
    """Dotted path of the first field where messages a and b differ, so a
    failure says where to look. Messages whose known fields all agree
    differ in their unknown fields."""
    fields_a, fields_b = dict(a.ListFields()), dict(b.ListFields())
    for fd in sorted(set(fields_a) | set(fields_b), key=lambda f: f.number):
        va, vb = fields_a.get(fd), fields_b.get(fd)
        if va == vb:
            continue
        name = f"{path}.{fd.name}"
        if fd.type != fd.TYPE_MESSAGE or va is None or vb is None:
            return name
        if not fd.is_repeated:
            return first_difference(va, vb, name)
        if len(va) != len(vb):
            return f"{name} ({len(va)} vs {len(vb)} entries)"
        for i, (x, y) in enumerate(zip(va, vb)):
            if x != y:
                return first_difference(x, y, f"{name}[{i}]")
    return f"{path} (unknown fields)"


def proto_problem(src, out):
    """Why out is not an exact copy of src, or None. Equality is checked both
    as messages and as deterministic re-serializations, which also compares
    unknown fields and their order."""
    if src != out:
        return f"output differs at {first_difference(src, out)}"
    a = src.SerializeToString(deterministic=True)
    b = out.SerializeToString(deterministic=True)
    if a != b:
        at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        return f"re-serialized bytes differ at byte {at} (unknown fields lost or changed?)"
    return None


# ---- small models for the command suites (bench, report) ----

def save(model, path):
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make(nodes, inputs, outputs, inits):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def vi(name, shape, dtype=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, dtype, shape)


def t(name, a):
    return numpy_helper.from_array(a, name)
