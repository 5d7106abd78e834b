"""Generate the special models of the round-trip suite.

Usage: gen_io_models.py OUTDIR

Writes:
  ext_data/model.onnx     initializers stored in weights.bin at explicit,
                          unaligned offsets with junk between them, plus one
                          in sub/w2.bin with no offset/length keys at all
  ext_nested/model.onnx   external data in a Constant attribute and in an If
                          branch initializer
  kitchen_sink/model.onnx everything a ModelProto can carry, including unknown
                          fields in the main messages (not checker-valid)
  ir_versions/irN.onnx    an Add/Relu model for every IR version 3..IR_VERSION
  opsets/D-vN.onnx        for every operator domain D onnx knows and every
                          version N of it, a model importing D at N with a node
                          of an op D has had since its first version
  big_init/model.onnx     inline initializers around the 1 MiB alignment and
                          1024-byte threshold boundaries, one of 3 MiB

ext_data and big_init hold a `.external-data-test` marker file, which tells
tests/roundtrip.py to also run them with `--external-data`.

OUTDIR/.done holds a digest of this script and the onnx version; when it
matches the models are up to date and nothing is rewritten.
"""

import argparse
import hashlib
import importlib.metadata
import os
import shutil
import struct
import sys

import numpy as np
import onnx
from google.protobuf import unknown_fields
from onnx import AttributeProto, TensorProto, helper, numpy_helper

EXTERNAL_DATA_MARKER = ".external-data-test"
SUBDIRS = ("ext_data", "ext_nested", "kitchen_sink", "ir_versions", "opsets", "big_init")


# --- unknown fields ---------------------------------------------------------

def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tag(field, wire_type):
    return _varint(field << 3 | wire_type)


# One unknown field of each wire type a parser must skip and keep (varint,
# 64-bit, length-delimited, 32-bit; not the deprecated groups), the last
# with the largest legal field number so its tag needs a 5-byte varint.
UNKNOWN_FIELDS = (
    _tag(127, 0) + _varint(42)
    + _tag(124, 1) + struct.pack("<Q", 0x0123456789ABCDEF)
    + _tag(126, 2) + _varint(5) + b"tacoc"
    + _tag(125, 5) + struct.pack("<I", 0xDEADBEEF)
    + _tag((1 << 29) - 1, 0) + _varint(1)
)
UNKNOWN_FIELD_COUNT = 5


def with_unknown(msg):
    """Return a copy of msg carrying UNKNOWN_FIELDS (the schema can't express them)."""
    return type(msg).FromString(msg.SerializeToString() + UNKNOWN_FIELDS)


# --- small builders ---------------------------------------------------------

def tensor_type(elem_type, shape, denotations=None):
    """TypeProto for a tensor; shape entries are int, str (dim_param) or None (unknown)."""
    return helper.make_tensor_type_proto(elem_type, shape, denotations)


def typed_tensor(name, data_type, dims, field, values):
    """A TensorProto whose data lives in the given typed repeated field."""
    t = TensorProto(name=name, data_type=data_type, dims=dims)
    getattr(t, field).extend(values)
    return t


class ExternalFile:
    """Accumulates tensor bytes at chosen offsets; gaps hold junk, not zeros,
    so a reader that ignores offsets reads visibly wrong data."""

    def __init__(self, location):
        self.location = location
        self.data = bytearray()

    def place(self, tensor, offset=None, write_keys=True):
        """Move tensor's raw_data to offset (default: end of file) and point
        the tensor at it. write_keys=False leaves out offset and length."""
        payload = tensor.raw_data
        offset = len(self.data) if offset is None else offset
        assert offset >= len(self.data), "tensors must not overlap"
        self.data += bytes((0xA5 + i) & 0xFF for i in range(offset - len(self.data)))
        self.data += payload
        tensor.ClearField("raw_data")
        tensor.data_location = TensorProto.EXTERNAL
        entries = [("location", self.location)]
        if write_keys:
            entries += [("offset", str(offset)), ("length", str(len(payload)))]
        for key, value in entries:
            tensor.external_data.add(key=key, value=value)
        return tensor

    def write(self, base_dir):
        path = os.path.join(base_dir, self.location)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(self.data)


def save(model, path):
    """Write model bytes as-is: onnx.save would touch external data tensors."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())


def rand(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


# --- external data ----------------------------------------------------------

def gen_ext_data(out, rng):
    """A runnable MLP whose weights live in two external files."""
    weights = ExternalFile("weights.bin")
    w2_file = ExternalFile("sub/w2.bin")
    f = numpy_helper.from_array
    inits = [
        weights.place(f(rand(rng, 16), "w_small"), offset=0),
        weights.place(f(rand(rng, 16, 16), "w_1k"), offset=4096 + 13),
        weights.place(f(np.array([-(1 << 40), 3], np.int64), "w_i64"), offset=6001),
        weights.place(f(rand(rng, 16, 1600), "w_100k"), offset=8192 + 3),
        weights.place(f(rand(rng, 1600, 256), "w_big"), offset=3 * 65536 + 7),
        w2_file.place(f(rand(rng, 256, 2048), "w2"), write_keys=False),
        f(rand(rng, 4), "w_inline"),
    ]
    nodes = [
        helper.make_node("Add", ["X", "w_small"], ["h0"], name="add0"),
        helper.make_node("MatMul", ["h0", "w_1k"], ["h1"], name="mm1"),
        helper.make_node("MatMul", ["h1", "w_100k"], ["h2"], name="mm2"),
        helper.make_node("MatMul", ["h2", "w_big"], ["h3"], name="mm3"),
        helper.make_node("MatMul", ["h3", "w2"], ["Y"], name="mm4"),
        helper.make_node("Neg", ["w_i64"], ["N"], name="neg"),
        helper.make_node("Relu", ["w_inline"], ["Z"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "ext_data",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 2048]),
         helper.make_tensor_value_info("N", TensorProto.INT64, [2]),
         helper.make_tensor_value_info("Z", TensorProto.FLOAT, [4])],
        inits)
    model = helper.make_model(graph, ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    d = os.path.join(out, "ext_data")
    save(model, os.path.join(d, "model.onnx"))
    weights.write(d)
    w2_file.write(d)
    open(os.path.join(d, EXTERNAL_DATA_MARKER), "w").close()


def gen_ext_nested(out, rng):
    """External tensors that are not top-level initializers."""
    data = ExternalFile("data.bin")
    const = data.place(numpy_helper.from_array(rand(rng, 8, 8), "const_value"), offset=100)
    branch_w = data.place(numpy_helper.from_array(rand(rng, 8, 8), "branch_w"))
    then_g = helper.make_graph(
        [helper.make_node("Add", ["c", "branch_w"], ["t_out"], name="then_add")],
        "then", [], [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [8, 8])],
        [branch_w])
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["c"], ["e_out"], name="else_neg")],
        "else", [], [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [8, 8])])
    nodes = [
        helper.make_node("Constant", [], ["c"], name="const", value=const),
        helper.make_node("If", ["cond"], ["Y"], name="if",
                         then_branch=then_g, else_branch=else_g),
    ]
    graph = helper.make_graph(
        nodes, "ext_nested",
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [8, 8])])
    model = helper.make_model(graph, ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    d = os.path.join(out, "ext_nested")
    save(model, os.path.join(d, "model.onnx"))
    data.write(d)


# --- kitchen sink -----------------------------------------------------------

def typed_field_initializers():
    """One initializer per typed data field and per data type stored there,
    with values at the edges of each encoding (sign extension, NaN bits...)."""
    T = TensorProto
    return [
        typed_tensor("f_float", T.FLOAT, [6], "float_data",
                     [1.5, -0.0, float("nan"), float("inf"), float("-inf"), 3.4e38]),
        typed_tensor("f_complex64", T.COMPLEX64, [2], "float_data", [1, 2, 3, 4]),
        typed_tensor("i_int8", T.INT8, [4], "int32_data", [-128, 127, 0, -1]),
        typed_tensor("i_uint8", T.UINT8, [3], "int32_data", [0, 255, 7]),
        typed_tensor("i_int16", T.INT16, [2], "int32_data", [-32768, 32767]),
        typed_tensor("i_uint16", T.UINT16, [2], "int32_data", [65535, 0]),
        typed_tensor("i_fp16", T.FLOAT16, [3], "int32_data", [0x3C00, 0x7E00, 0x8000]),
        typed_tensor("i_bf16", T.BFLOAT16, [1], "int32_data", [0x3F80]),
        typed_tensor("i_bool", T.BOOL, [3], "int32_data", [1, 0, 1]),
        typed_tensor("i_int32", T.INT32, [2], "int32_data", [-(1 << 31), (1 << 31) - 1]),
        typed_tensor("i_f8", T.FLOAT8E4M3FN, [2], "int32_data", [0x38, 0x7F]),
        typed_tensor("i_int4", T.INT4, [3], "int32_data", [0x21, 0x0F]),
        typed_tensor("l_int64", T.INT64, [3], "int64_data", [-(1 << 63), (1 << 63) - 1, 0]),
        typed_tensor("d_double", T.DOUBLE, [2], "double_data", [1e-300, float("nan")]),
        typed_tensor("d_complex128", T.COMPLEX128, [1], "double_data", [1.0, -2.0]),
        typed_tensor("u_uint32", T.UINT32, [1], "uint64_data", [(1 << 32) - 1]),
        typed_tensor("u_uint64", T.UINT64, [2], "uint64_data", [(1 << 64) - 1, 0]),
        typed_tensor("s_string", T.STRING, [4], "string_data",
                     [b"", b"hello", b"\xff\x00binary", "\u00fcn\u00efcode".encode()]),
        numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "r_raw"),
        numpy_helper.from_array(np.zeros((0, 3), np.float32), "r_empty"),
        numpy_helper.from_array(np.array(7, np.int64), "r_scalar"),
    ]


def kitchen_sink_functions():
    """A function with attribute references and a default, plus an overload."""
    T = TensorProto
    alpha_ref = helper.make_attribute_ref("value_float", AttributeProto.FLOAT,
                                          ref_attr_name="alpha")
    beta_ref = helper.make_attribute_ref("value_float", AttributeProto.FLOAT,
                                         ref_attr_name="beta")
    const_a = helper.make_node("Constant", [], ["a"], name="fa")
    const_a.attribute.append(alpha_ref)
    const_b = helper.make_node("Constant", [], ["b"], name="fb")
    const_b.attribute.append(beta_ref)
    body = [
        const_a, const_b,
        helper.make_node("Mul", ["x", "a"], ["xa"], name="fmul_x"),
        helper.make_node("Mul", ["y", "b"], ["yb"], name="fmul_y"),
        helper.make_node("Add", ["xa", "yb"], ["z"], name="fadd"),
    ]
    scaled_add = helper.make_function(
        "com.example", "ScaledAdd", ["x", "y"], ["z"], body,
        [helper.make_opsetid("", 21)],
        attributes=["alpha"],
        attribute_protos=[helper.make_attribute("beta", 1.0, doc_string="default beta")],
        doc_string="alpha * x + beta * y",
        value_info=[helper.make_value_info("xa", tensor_type(T.FLOAT, ["N", 4]))])
    helper.set_metadata_props(scaled_add, {"fn.meta": "1"})
    scaled_add = with_unknown(scaled_add)
    overload = helper.make_function(
        "com.example", "ScaledAdd", ["x", "y"], ["z"],
        [helper.make_node("Add", ["x", "y"], ["z"], name="fadd2")],
        [helper.make_opsetid("", 21)], overload="plain")
    return [scaled_add, overload]


def every_attribute_node():
    """A custom-domain node carrying one attribute of every AttributeType."""
    T = TensorProto
    small_g = helper.make_graph(
        [helper.make_node("Identity", ["A"], ["g_out"], name="g_id")], "attr_graph", [],
        [helper.make_tensor_value_info("g_out", T.FLOAT, None)])
    sp = helper.make_sparse_tensor(
        numpy_helper.from_array(np.array([1.0, 2.0], np.float32), "attr_sp"),
        numpy_helper.from_array(np.array([0, 5], np.int64), "attr_sp_idx"), [2, 3])
    t1 = numpy_helper.from_array(np.array([1, 2], np.int32), "attr_t1")
    t2 = typed_tensor("attr_t2", T.STRING, [1], "string_data", [b"x"])
    node = helper.make_node(
        "AllAttrs", ["A"], ["all_out"], name="all_attrs", domain="com.example",
        doc_string="every attribute type",
        f=0.5, i=-7, s=b"bytes\x00with nul", t=t1, g=small_g,
        floats=[1.0, -2.5], ints=[-1, 1 << 40], strings=[b"a", b""],
        tensors=[t1, t2], graphs=[small_g, small_g],
        sparse_tensor=sp, sparse_tensors=[sp, sp],
        tp=tensor_type(T.INT8, [2]),
        type_protos=[tensor_type(T.FLOAT, None),
                     helper.make_sequence_type_proto(tensor_type(T.INT64, [None]))])
    node.attribute.append(helper.make_attribute("empty_ints", [], attr_type=AttributeProto.INTS))
    for attr in node.attribute:
        attr.doc_string = f"doc of {attr.name}"
    node.attribute[0].CopyFrom(with_unknown(node.attribute[0]))
    return node


def control_flow_nodes():
    """If, Loop and Scan whose bodies read values of the enclosing graph."""
    T = TensorProto
    then_g = helper.make_graph(
        [helper.make_node("Identity", ["A"], ["then_out"], name="then_id")],
        "then_branch", [], [helper.make_tensor_value_info("then_out", T.FLOAT, ["N", 4])],
        doc_string="reads outer A")
    then_g = with_unknown(then_g)
    else_g = helper.make_graph(
        [helper.make_node("Neg", ["C"], ["else_out"], name="else_neg")],
        "else_branch", [], [helper.make_tensor_value_info("else_out", T.FLOAT, ["N", 4])])
    loop_body = helper.make_graph(
        [helper.make_node("Add", ["a_in", "f_float4"], ["a_out"], name="loop_add"),
         helper.make_node("Identity", ["cond_in"], ["cond_out"], name="loop_cond"),
         helper.make_node("Identity", ["a_out"], ["scan_out"], name="loop_scan")],
        "loop_body",
        [helper.make_tensor_value_info("iter", T.INT64, []),
         helper.make_tensor_value_info("cond_in", T.BOOL, []),
         helper.make_tensor_value_info("a_in", T.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("cond_out", T.BOOL, []),
         helper.make_tensor_value_info("a_out", T.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("scan_out", T.FLOAT, ["N", 4])])
    scan_body = helper.make_graph(
        [helper.make_node("Add", ["state", "row"], ["sum"], name="scan_add"),
         helper.make_node("Mul", ["sum", "f_float4"], ["state_out"], name="scan_mul"),
         helper.make_node("Identity", ["sum"], ["row_out"], name="scan_id")],
        "scan_body",
        [helper.make_tensor_value_info("state", T.FLOAT, [4]),
         helper.make_tensor_value_info("row", T.FLOAT, [4])],
        [helper.make_tensor_value_info("state_out", T.FLOAT, [4]),
         helper.make_tensor_value_info("row_out", T.FLOAT, [4])])
    return [
        helper.make_node("If", ["cond"], ["if_out"], name="if",
                         then_branch=then_g, else_branch=else_g),
        helper.make_node("Loop", ["", "cond", "A"], ["loop_final", "loop_scan"],
                         name="loop", body=loop_body),
        helper.make_node("Scan", ["s0", "X"], ["scan_final", "scan_rows"], name="scan",
                         body=scan_body, num_scan_inputs=1),
    ]


def kitchen_sink_value_info():
    """value_info entries of every TypeProto kind, and dims of every form."""
    T = TensorProto
    opaque = onnx.TypeProto(denotation="OPAQUE_THING")
    opaque.opaque_type.domain = "com.example"
    opaque.opaque_type.name = "Handle"
    vis = [
        helper.make_value_info("A", tensor_type(T.FLOAT, ["N", 4]),
                               doc_string="sum of X and f_float4"),
        helper.make_value_info("C", tensor_type(T.FLOAT, [None, "N", 4])),
        helper.make_value_info(
            "seq_v", helper.make_sequence_type_proto(tensor_type(T.FLOAT, None))),
        helper.make_value_info(
            "map_v", helper.make_map_type_proto(T.INT64, tensor_type(T.FLOAT, [1]))),
        helper.make_value_info("opt_v", helper.make_optional_type_proto(
            helper.make_sequence_type_proto(tensor_type(T.INT32, ["K"])))),
        helper.make_value_info(
            "sparse_v", helper.make_sparse_tensor_type_proto(T.FLOAT, [4, 4])),
        helper.make_value_info("opaque_v", opaque),
    ]
    helper.set_metadata_props(vis[0], {"vi.meta": "A"})
    vis[0] = with_unknown(vis[0])
    return vis


def gen_kitchen_sink(out):
    """A model using every ModelProto feature; not meant to be checker-valid."""
    T = TensorProto
    f_float4 = numpy_helper.from_array(np.array([1, 2, 3, 4], np.float32), "f_float4")
    f_float4.doc_string = "initializer doc"
    helper.set_metadata_props(f_float4, {"tensor.meta": "w"})
    segment = numpy_helper.from_array(np.array([5.0, 6.0], np.float32), "seg")
    segment.segment.begin = 2
    segment.segment.end = 4
    inits = [with_unknown(f_float4), segment,
             numpy_helper.from_array(np.zeros(4, np.float32), "s0"),
             numpy_helper.from_array(np.array([0.5], np.float32), "clip_max")]
    inits += typed_field_initializers()
    sparse = [
        helper.make_sparse_tensor(
            numpy_helper.from_array(np.array([1, 2, 3], np.float32), "sp_linear"),
            numpy_helper.from_array(np.array([0, 5, 15], np.int64)), [4, 4]),
        helper.make_sparse_tensor(
            numpy_helper.from_array(np.array([7, 8], np.int32), "sp_coo"),
            numpy_helper.from_array(np.array([[0, 1], [2, 2]], np.int64)), [3, 3]),
    ]

    add = helper.make_node("Add", ["X", "f_float4"], ["A"], name="add",
                           doc_string="node doc")
    helper.set_metadata_props(add, {"node.meta": "add"})
    add.device_configurations.add(configuration_id="mesh", pipeline_stage=1).sharding_spec.add(
        tensor_name="A", device=[0, 1],
        index_to_device_group_map=[onnx.IntIntListEntryProto(key=0, value=[0, 1])],
        sharded_dim=[onnx.ShardedDimProto(axis=0, simple_sharding=[
            onnx.SimpleShardedDimProto(dim_param="N", num_shards=2)])])
    nodes = [
        with_unknown(add),
        helper.make_node("ScaledAdd", ["A", "X"], ["C"], name="call", domain="com.example",
                         alpha=2.0),
        helper.make_node("ScaledAdd", ["A", "C"], ["C2"], name="call_overload",
                         domain="com.example", overload="plain"),
        # An empty name marks an omitted optional input; the node itself is anonymous.
        helper.make_node("Clip", ["C2", "", "clip_max"], ["clipped"]),
        every_attribute_node(),
    ] + control_flow_nodes()

    graph = helper.make_graph(
        nodes, "kitchen_sink",
        [helper.make_value_info(
            "X", tensor_type(T.FLOAT, ["N", 4], ["DATA_BATCH", "DATA_CHANNEL"])),
         helper.make_tensor_value_info("cond", T.BOOL, [])],
        [helper.make_tensor_value_info("if_out", T.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("loop_final", T.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("scan_rows", T.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("clipped", T.FLOAT, ["N", 4]),
         helper.make_tensor_value_info("all_out", T.FLOAT, None)],
        inits, doc_string="graph doc", value_info=kitchen_sink_value_info(),
        sparse_initializer=sparse)
    graph.quantization_annotation.add(tensor_name="A").quant_parameter_tensor_names.add(
        key="SCALE_TENSOR", value="f_float4")
    helper.set_metadata_props(graph, {"graph.meta": "main"})

    training = onnx.TrainingInfoProto(
        initialization=helper.make_graph(
            [helper.make_node("Constant", [], ["w_init"], name="init_const",
                              value=numpy_helper.from_array(np.ones(4, np.float32)))],
            "training_init", [], [helper.make_tensor_value_info("w_init", T.FLOAT, [4])]),
        algorithm=helper.make_graph(
            [helper.make_node("Mul", ["f_float4", "lr"], ["w_new"], name="sgd")],
            "training_step", [], [helper.make_tensor_value_info("w_new", T.FLOAT, [4])],
            [numpy_helper.from_array(np.array(0.01, np.float32), "lr")]),
        initialization_binding=[onnx.StringStringEntryProto(key="f_float4", value="w_init")],
        update_binding=[onnx.StringStringEntryProto(key="f_float4", value="w_new")])

    model = helper.make_model(
        with_unknown(graph),
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.example", 1),
                       helper.make_opsetid("ai.onnx.ml", 5),
                       helper.make_opsetid("ai.onnx.preview.training", 1)],
        functions=kitchen_sink_functions(),
        producer_name="gen_io_models", producer_version="1", domain="org.tacoc.test",
        model_version=3, doc_string="model doc \u2713")
    model.training_info.append(training)
    model.configuration.add(name="mesh", num_devices=2, device=["cuda:0", "cuda:1"])
    helper.set_metadata_props(model, {"model.meta": "kitchen", "empty": ""})
    model = with_unknown(model)
    check_unknown_fields_survive(model)
    save(model, os.path.join(out, "kitchen_sink", "model.onnx"))


def check_unknown_fields_survive(model):
    """Re-parse the serialized model and make sure every message that was
    given unknown fields still has all of them."""
    m = onnx.ModelProto.FromString(model.SerializeToString())
    g = m.graph
    carriers = {
        "ModelProto": m, "GraphProto": g, "NodeProto": g.node[0],
        "AttributeProto": next(n for n in g.node if n.name == "all_attrs").attribute[0],
        "TensorProto": g.initializer[0], "ValueInfoProto": g.value_info[0],
        "FunctionProto": m.functions[0],
        "subgraph GraphProto": next(a.g for n in g.node if n.name == "if"
                                    for a in n.attribute if a.name == "then_branch"),
    }
    for what, msg in carriers.items():
        count = len(unknown_fields.UnknownFieldSet(msg))
        if count != UNKNOWN_FIELD_COUNT:
            sys.exit(f"gen_io_models: {what} kept {count} of "
                     f"{UNKNOWN_FIELD_COUNT} unknown fields")


# --- IR versions, big inline initializers ----------------------------------

def gen_ir_versions(out):
    """Add/Relu with the newest opset each IR version allows."""
    max_opset = {}
    # Early rows lack the trailing ml/training columns.
    for _release, ir, opset, *_ in helper.VERSION_TABLE:
        max_opset[ir] = max(opset, max_opset.get(ir, 0))
    for ir in range(3, onnx.IR_VERSION + 1):
        b = numpy_helper.from_array(np.array([1, -2, 3, -4], np.float32), "B")
        inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, [4])]
        # Before IR 4 every initializer also had to be a graph input.
        if ir < 4:
            inputs.append(helper.make_tensor_value_info("B", TensorProto.FLOAT, [4]))
        graph = helper.make_graph(
            [helper.make_node("Add", ["X", "B"], ["S"], name="add"),
             helper.make_node("Relu", ["S"], ["Y"], name="relu")],
            f"ir{ir}", inputs,
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4])], [b])
        model = helper.make_model(graph, ir_version=ir,
                                  opset_imports=[helper.make_opsetid("", max_opset[ir])])
        save(model, os.path.join(out, "ir_versions", f"ir{ir}.onnx"))


def gen_opsets(out):
    """One model per (domain, opset version) that onnx's schemas know."""
    first_op = {}  # domain -> (since_version, op name) of an op present from the start
    latest = {}    # domain -> newest version
    for schema in onnx.defs.get_all_schemas_with_history():
        dom = schema.domain
        latest[dom] = max(latest.get(dom, 0), schema.since_version)
        first_op[dom] = min(first_op.get(dom, (1 << 30, "")), (schema.since_version, schema.name))
    for dom, top in sorted(latest.items()):
        top = max(top, onnx.defs.onnx_opset_version() if dom == "" else top)
        since, op = first_op[dom]
        for version in range(since, top + 1):
            graph = helper.make_graph(
                [helper.make_node(op, ["X"], ["Y"], name="n", domain=dom)], f"opset_{version}",
                [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2])],
                [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2])])
            opsets = [helper.make_opsetid(dom, version)]
            if dom:
                opsets.append(helper.make_opsetid("", onnx.defs.onnx_opset_version()))
            model = helper.make_model(graph, ir_version=onnx.IR_VERSION, opset_imports=opsets)
            save(model, os.path.join(out, "opsets", f"{dom or 'ai.onnx'}-v{version}.onnx"))


def gen_big_init(out, rng):
    """Inline tensors on both sides of the 1024-byte default threshold and the
    1 MiB alignment size, ordered so packing them naively would misalign."""
    f = numpy_helper.from_array
    inits = [
        f(rand(rng, 256), "thr_1024"),             # exactly the threshold
        f(rand(rng, 768, 1024), "big_3m"),         # 3 MiB
        f(rand(rng, 1, 255), "below_1020"),        # just below the threshold
        f(rand(rng, 1024, 256), "mid_1m"),         # exactly 1 MiB
    ]
    nodes = [
        helper.make_node("MatMul", ["X", "big_3m"], ["h0"], name="mm0"),
        helper.make_node("MatMul", ["h0", "mid_1m"], ["h1"], name="mm1"),
        helper.make_node("Add", ["h1", "thr_1024"], ["h2"], name="add"),
        helper.make_node("Concat", ["h2", "below_1020"], ["Y"], name="concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes, "big_init",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 768])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 511])], inits)
    model = helper.make_model(graph, ir_version=8,
                              opset_imports=[helper.make_opsetid("", 17)])
    d = os.path.join(out, "big_init")
    save(model, os.path.join(d, "model.onnx"))
    open(os.path.join(d, EXTERNAL_DATA_MARKER), "w").close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", help="directory to write the models into")
    args = parser.parse_args()

    # Regenerate whenever this script or onnx changes, not only onnx.
    with open(__file__, "rb") as f:
        stamp_text = (hashlib.sha256(f.read()).hexdigest()
                      + " onnx " + importlib.metadata.version("onnx"))
    stamp = os.path.join(args.outdir, ".done")
    try:
        with open(stamp) as f:
            if f.read().strip() == stamp_text:
                return 0
    except FileNotFoundError:
        pass

    for sub in SUBDIRS:
        shutil.rmtree(os.path.join(args.outdir, sub), ignore_errors=True)
    rng = np.random.default_rng(20240607)
    gen_ext_data(args.outdir, rng)
    gen_ext_nested(args.outdir, rng)
    gen_kitchen_sink(args.outdir)
    gen_ir_versions(args.outdir)
    gen_opsets(args.outdir)
    gen_big_init(args.outdir, rng)
    with open(stamp, "w") as f:
        f.write(stamp_text + "\n")
    print(f"gen_io_models: wrote {', '.join(SUBDIRS)} under {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
