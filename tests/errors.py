"""Error suite: bad inputs must fail cleanly.

Usage: errors.py [--tacoc PATH] [-v]

Generates broken inputs in a temporary directory (empty, truncated and random
files, protobufs that are not models, a model without a graph, bad external
data references, malformed graphs, missing input and output paths) and runs
`tacoc optimize IN -o OUT -O0` on each, from inside that directory with
relative paths. Every case must:
  - exit with status 2, not by a signal, with no sanitizer report;
  - print exactly one line on stderr, `tacoc: error: <path>: <message>`,
    where <path> is the path exactly as passed (OUT for a bad output path,
    IN otherwise), plus case-specific text for graph errors;
  - leave nothing behind: OUT's directory stays empty (or uncreated).

Prints `FAIL <case>: <reason>` per failure (and `PASS <case>: <stderr>`
with -v), then `errors: N passed, N failed`; exits 1 if anything failed.
"""

import argparse
import os
import re
import sys
import tempfile

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import TensorProto, helper, numpy_helper

from harness import add_tacoc_option, parse_args, run_tacoc


class Case:
    """One bad invocation. data is the input file's bytes (None: don't create
    it); output defaults to a file in an empty directory of its own;
    must_contain lists alternatives, one of which the message must include;
    blame_output says the message must name OUT rather than IN."""

    def __init__(self, name, data, output=None, must_contain=(), blame_output=False):
        self.name = name
        self.data = data
        self.input = os.path.join("cases", name, "model.onnx")
        self.output = output or os.path.join("out", name, "out.onnx")
        self.must_contain = must_contain
        self.blame_output = blame_output


def graph_model(nodes, outputs=("Y",), initializers=()):
    """A model over input X whose graph is otherwise given by the caller."""
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [256])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, [256]) for o in outputs],
        list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def valid_model():
    w = numpy_helper.from_array(np.arange(256, dtype=np.float32), "W")
    return graph_model([helper.make_node("Add", ["X", "W"], ["S"], name="add"),
                        helper.make_node("Relu", ["S"], ["Y"], name="relu")],
                       initializers=[w])


def external_model(location, offset=0, length=1024):
    """valid_model with W stored externally at the given place."""
    model = valid_model()
    w = model.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", str(offset)),
                       ("length", str(length))):
        w.external_data.add(key=key, value=value)
    return model.SerializeToString()


def not_a_model(data):
    """Assert data is rejected by protobuf or lacks a graph, so the case
    cannot accidentally be a valid model."""
    try:
        model = onnx.ModelProto.FromString(data)
    except DecodeError:
        return data
    assert not model.HasField("graph"), "generated case parses as a model with a graph"
    return data


def truncation_cases():
    """Cuts that all land inside a length-delimited field, so no cut is a
    coincidentally well-formed prefix."""
    data = valid_model().SerializeToString()
    graph = valid_model().graph.SerializeToString()
    start = data.index(graph)
    # The graph's payload is preceded by its varint length; the byte before that is its tag.
    length_size = max(1, (len(graph).bit_length() + 6) // 7)
    assert data[start - length_size - 1] == 7 << 3 | 2, "graph tag not where expected"
    cuts = {
        "after_graph_tag": start - length_size,
        "mid_graph": start + len(graph) // 2,
        "graph_end_minus_1": start + len(graph) - 1,
        "last_byte": len(data) - 1,
    }
    return [Case(f"truncated_{name}", not_a_model(data[:cut])) for name, cut in cuts.items()]


def external_data_cases(tmp):
    outside = os.path.join(tmp, "cases", "outside.bin")
    # Both referenced files exist and are big enough: only the location is wrong.
    os.makedirs(os.path.dirname(outside), exist_ok=True)
    with open(outside, "wb") as f:
        f.write(bytes(4096))
    return [
        Case("ext_missing_file", external_model("missing.bin")),
        Case("ext_absolute_location", external_model(outside)),
        Case("ext_dotdot_location", external_model("../outside.bin")),
        Case("ext_past_eof", external_model("short.bin", offset=64)),
        Case("ext_symlink_outside", external_model("link.bin")),
    ]


def graph_cases():
    return [
        Case("undefined_input",
             graph_model([helper.make_node("Add", ["X", "nope"], ["Y"], name="bad_add")])
             .SerializeToString(),
             must_contain=("(node 'bad_add', op Add)",)),
        Case("cycle",
             graph_model([helper.make_node("Relu", ["t2"], ["t1"], name="cyc_a"),
                          helper.make_node("Neg", ["t1"], ["t2"], name="cyc_b"),
                          helper.make_node("Add", ["X", "t2"], ["Y"], name="add")])
             .SerializeToString(),
             must_contain=("(node 'cyc_a', op Relu)", "(node 'cyc_b', op Neg)")),
        Case("duplicate_producer",
             graph_model([helper.make_node("Relu", ["X"], ["T"], name="dup1"),
                          helper.make_node("Neg", ["X"], ["T"], name="dup2"),
                          helper.make_node("Identity", ["T"], ["Y"], name="id")])
             .SerializeToString()),
        Case("duplicate_graph_output",
             graph_model([helper.make_node("Relu", ["X"], ["Y"], name="relu")],
                         outputs=("Y", "Y")).SerializeToString()),
    ]


def build_cases(tmp):
    """Write every case's input under tmp and return the cases."""
    cases = [Case("empty_file", not_a_model(b""))]
    cases += truncation_cases()
    cases += [Case(f"random_seed{seed}", not_a_model(np.random.default_rng(seed).bytes(4096)))
              for seed in range(1, 5)]
    tensor = numpy_helper.from_array(np.ones((4, 4), np.float32), "T")
    cases += [
        Case("tensor_proto", not_a_model(tensor.SerializeToString())),
        Case("graph_proto", not_a_model(valid_model().graph.SerializeToString())),
        Case("node_proto", not_a_model(valid_model().graph.node[0].SerializeToString())),
        Case("no_graph", not_a_model(onnx.ModelProto(
            ir_version=8, opset_import=[helper.make_opsetid("", 17)]).SerializeToString())),
    ]
    cases += external_data_cases(tmp)
    cases += graph_cases()
    cases += [
        Case("missing_input", None),
        Case("missing_output_dir", valid_model().SerializeToString(),
             output=os.path.join("no_such_dir", "out.onnx"), blame_output=True),
    ]
    for case in cases:
        if case.data is not None:
            path = os.path.join(tmp, case.input)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(case.data)
        if not case.blame_output:
            os.makedirs(os.path.join(tmp, os.path.dirname(case.output)))
    # ext_past_eof's data file: 100 bytes where offset 64 + length 1024 are needed.
    with open(os.path.join(tmp, "cases", "ext_past_eof", "short.bin"), "wb") as f:
        f.write(bytes(100))
    # ext_symlink_outside: a plain-looking location that is a link leading out of the folder.
    os.symlink(os.path.join(tmp, "cases", "outside.bin"),
               os.path.join(tmp, "cases", "ext_symlink_outside", "link.bin"))
    return cases


def check(case, proc, problem, tmp):
    """Problem with how tacoc handled case, or None."""
    if problem is not None:
        return problem
    if proc.returncode != 2:
        return f"exit status {proc.returncode}, expected 2"
    lines = proc.stderr.splitlines()
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr, expected 1: {proc.stderr!r}"
    path = case.output if case.blame_output else case.input
    if not re.fullmatch(rf"tacoc: error: {re.escape(path)}: .+", lines[0]):
        return f"stderr is not 'tacoc: error: {path}: ...': {lines[0]!r}"
    if case.must_contain and not any(s in lines[0] for s in case.must_contain):
        return f"message lacks {' or '.join(case.must_contain)}: {lines[0]!r}"
    out_dir = os.path.join(tmp, os.path.dirname(case.output))
    if case.blame_output:
        if os.path.exists(out_dir):
            return f"created {os.path.dirname(case.output)}"
    elif os.listdir(out_dir):
        return f"left behind {', '.join(sorted(os.listdir(out_dir)))}"
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_tacoc_option(parser)
    parser.add_argument("--timeout", type=int, default=60,
                        help="seconds allowed per tacoc run (default 60)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print passes with tacoc's message")
    args = parse_args(parser)
    tacoc = os.path.abspath(args.tacoc)

    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="errors-") as tmp:
        for case in build_cases(tmp):
            proc, problem = run_tacoc(
                tacoc, ["optimize", case.input, "-o", case.output, "-O0"], args.timeout, cwd=tmp)
            problem = check(case, proc, problem, tmp)
            if problem is None:
                passed += 1
                if args.verbose:
                    print(f"PASS {case.name}: {proc.stderr.strip()}")
            else:
                failed += 1
                print(f"FAIL {case.name}: {problem}", flush=True)
    print(f"errors: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
