"""ONNX files, checked in pure Python before onnxruntime sees a byte.

onnxruntime trusts a model more than a bundle deserves: a tensor whose data lives in an "external"
file is read from a path relative to the process's working directory (a rehashed bundle can pull a
key or a password file into its weights), and a `Loop` with a huge trip count hangs the process
beyond Ctrl-C. So the whole ModelProto is read here (runtime/allowlist/protobuf.py) and held to what
nextword's exporter produces (export/onnx_format.py: tf2onnx at opsets 13-18, float32 as converted,
dynamic-int8 through onnxruntime's quantize_dynamic; no float16 ONNX variant exists):

- no tensor anywhere (initializers, node attributes, sparse tensors, subgraphs, functions) keeps its
  data outside the file, nor does anything else name a file;
- operators from an allow-list per domain, opset versions the exporter can write, no model-local
  functions, no training info, no graph-valued attributes: the exporter emits no `Loop`, `Scan` or
  `If`, so bodies are refused rather than bounded (a trip count or a condition is data, computed at
  run time: no static bound on it would be sound);
- tensor types the exporter uses, and every constant's payload exactly product(dims) x item size;
- metadata keys the exporter writes (onnxruntime can take session options from an `ort_config` entry);
- counts (nodes, initializers, inputs and outputs, value infos, attributes, dims, metadata) bounded
  by runtime/limits.py;
- every tensor's shape determined statically, each and all together within byte bounds
  (runtime/allowlist/onnx_shapes.py): allowed operators can still amplify a small file into gigabytes.

What is refused raises OnnxRefused (a ValueError) with a message saying what was found and what is
accepted; runtime/backends/onnx.py turns it into VariantUnavailable."""

from ..limits import (MAX_DIM, MAX_ONNX_ATTRIBUTES, MAX_ONNX_DEPTH, MAX_ONNX_FIELDS, MAX_ONNX_GRAPH_IO,
                      MAX_ONNX_INITIALIZERS, MAX_ONNX_LIST, MAX_ONNX_METADATA, MAX_ONNX_NODE_IO, MAX_ONNX_NODES,
                      MAX_ONNX_RANK, MAX_ONNX_STRING_BYTES, MAX_ONNX_VALUE_INFO)
from .onnx_shapes import ShapeRefused, infer_shapes
from .protobuf import Field, ProtobufError, Reader


class OnnxRefused(ValueError):
    """The file is not an ONNX model of the kind nextword's exporter produces."""


# -- what the exporter produces (survey: every variant at opsets 13-18, window 1 and 4, with and without OOV)
ONNX_IR_VERSIONS = range(3, 11)          # tf2onnx writes 7 (opset <= 14) or 8; up to 10 for newer writers
ONNX_OPSETS = {"ai.onnx": range(13, 19),     # export/onnx_format.py OPSETS; tf2onnx refuses opsets > 18
               "ai.onnx.ml": range(1, 6),    # imported by tf2onnx, no operator of it is used
               "com.microsoft": range(1, 2)}  # quantize_dynamic's DynamicQuantizeLSTM
ONNX_OPS = {
    "ai.onnx": frozenset({
        "Add", "Cast", "Concat", "DequantizeLinear", "DynamicQuantizeLinear", "Expand", "Gather", "LSTM",
        "Less", "MatMul", "MatMulInteger", "Mul", "Not", "Reshape", "Shape", "Sigmoid", "Slice", "Split",
        "Squeeze", "Tanh", "Transpose", "Unsqueeze"}),
    "com.microsoft": frozenset({"DynamicQuantizeLSTM"}),
}
# metadata_props keys export/onnx_format.finish writes. Others are refused: onnxruntime reads session options
# (threads included) from an "ort_config" entry when ORT_LOAD_CONFIG_FROM_MODEL=1 is in the environment.
ONNX_METADATA_KEYS = frozenset({"nextword_format_version", "output", "vocab_size", "window", "kind", "units"})
# TensorProto.DataType -> item size: float32, uint8, int8, int32, int64, bool (no strings: variable size)
ONNX_TENSOR_TYPES = {1: 4, 2: 1, 3: 1, 6: 4, 7: 8, 9: 1}
# which repeated field holds a typed (not raw_data) payload, by data type
_TYPED_FIELD = {1: "float_data", 2: "int32_data", 3: "int32_data", 6: "int32_data", 9: "int32_data", 7: "int64_data"}
_TYPE_NAMES = {0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
               8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 16: "BFLOAT16"}
# AttributeProto.AttributeType: FLOAT, INT, STRING, FLOATS, INTS, STRINGS (no tensors, graphs, types)
ONNX_ATTRIBUTE_TYPES = {1: "FLOAT", 2: "INT", 3: "STRING", 6: "FLOATS", 7: "INTS", 8: "STRINGS"}
_ATTRIBUTE_NAMES = {4: "TENSOR", 5: "GRAPH", 9: "TENSORS", 10: "GRAPHS", 11: "SPARSE_TENSOR",
                    12: "SPARSE_TENSORS", 13: "TYPE_PROTO", 14: "TYPE_PROTOS"}


# -- the ModelProto schema (onnx/onnx.proto field numbers) ------------------------------------------------
# Fields that can hide a file reference or a subgraph are read (so a tensor inside them is checked like any
# other) and refused afterwards; fields the exporter never writes and that cannot be read safely are absent
# from the schema, so the reader refuses them on sight.
_ENTRY = {1: Field("key", "string"), 2: Field("value", "string")}
_OPSET = {1: Field("domain", "string"), 2: Field("version", "int64")}
_TENSOR = {
    1: Field("dims", "int64", repeated=True), 2: Field("data_type", "int32"),
    4: Field("float_data", "count_fixed32", repeated=True), 5: Field("int32_data", "count_varint", repeated=True),
    6: Field("string_data", "count_bytes", repeated=True), 7: Field("int64_data", "count_varint", repeated=True),
    8: Field("name", "string"), 9: Field("raw_data", "span"),
    10: Field("double_data", "count_fixed64", repeated=True),
    11: Field("uint64_data", "count_varint", repeated=True), 12: Field("doc_string", "string"),
    13: Field("external_data", "message", repeated=True, schema=_ENTRY), 14: Field("data_location", "int32"),
    16: Field("metadata_props", "message", repeated=True, schema=_ENTRY),
}
_SPARSE = {1: Field("values", "message", schema=_TENSOR), 2: Field("indices", "message", schema=_TENSOR),
           3: Field("dims", "int64", repeated=True)}
_DIM = {1: Field("dim_value", "int64"), 2: Field("dim_param", "string"), 3: Field("denotation", "string")}
_SHAPE = {1: Field("dim", "message", repeated=True, schema=_DIM)}
_TENSOR_TYPE = {1: Field("elem_type", "int32"), 2: Field("shape", "message", schema=_SHAPE)}
_TYPE = {1: Field("tensor_type", "message", schema=_TENSOR_TYPE), 6: Field("denotation", "string")}
_VALUE_INFO = {1: Field("name", "string"), 2: Field("type", "message", schema=_TYPE), 3: Field("doc_string", "string")}
_GRAPH, _ATTRIBUTE, _NODE = {}, {}, {}
_ATTRIBUTE.update({
    1: Field("name", "string"), 2: Field("f", "float"), 3: Field("i", "int64"), 4: Field("s", "string"),
    5: Field("t", "message", schema=_TENSOR), 6: Field("g", "message", schema=_GRAPH),
    7: Field("floats", "count_fixed32", repeated=True), 8: Field("ints", "int64", repeated=True),
    9: Field("strings", "string", repeated=True), 10: Field("tensors", "message", repeated=True, schema=_TENSOR),
    11: Field("graphs", "message", repeated=True, schema=_GRAPH), 13: Field("doc_string", "string"),
    20: Field("type", "int32"), 21: Field("ref_attr_name", "string"),
    22: Field("sparse_tensor", "message", schema=_SPARSE),
    23: Field("sparse_tensors", "message", repeated=True, schema=_SPARSE),
})
_NODE.update({
    1: Field("input", "string", repeated=True), 2: Field("output", "string", repeated=True),
    3: Field("name", "string"), 4: Field("op_type", "string"),
    5: Field("attribute", "message", repeated=True, schema=_ATTRIBUTE), 6: Field("doc_string", "string"),
    7: Field("domain", "string"),
})
_GRAPH.update({
    1: Field("node", "message", repeated=True, schema=_NODE), 2: Field("name", "string"),
    5: Field("initializer", "message", repeated=True, schema=_TENSOR), 10: Field("doc_string", "string"),
    11: Field("input", "message", repeated=True, schema=_VALUE_INFO),
    12: Field("output", "message", repeated=True, schema=_VALUE_INFO),
    13: Field("value_info", "message", repeated=True, schema=_VALUE_INFO),
    15: Field("sparse_initializer", "message", repeated=True, schema=_SPARSE),
})
_FUNCTION = {
    1: Field("name", "string"), 4: Field("input", "string", repeated=True), 5: Field("output", "string", repeated=True),
    6: Field("attribute", "string", repeated=True), 7: Field("node", "message", repeated=True, schema=_NODE),
    8: Field("doc_string", "string"), 9: Field("opset_import", "message", repeated=True, schema=_OPSET),
    10: Field("domain", "string"), 11: Field("attribute_proto", "message", repeated=True, schema=_ATTRIBUTE),
}
_MODEL = {
    1: Field("ir_version", "int64"), 2: Field("producer_name", "string"), 3: Field("producer_version", "string"),
    4: Field("domain", "string"), 5: Field("model_version", "int64"), 6: Field("doc_string", "string"),
    7: Field("graph", "message", schema=_GRAPH), 8: Field("opset_import", "message", repeated=True, schema=_OPSET),
    14: Field("metadata_props", "message", repeated=True, schema=_ENTRY),
    25: Field("functions", "message", repeated=True, schema=_FUNCTION),
}


def read_model(data):
    """The ModelProto in `data` as nested dicts (protobuf.Reader), or OnnxRefused."""
    try:
        return Reader(data, MAX_ONNX_DEPTH, MAX_ONNX_FIELDS, MAX_ONNX_STRING_BYTES).read(_MODEL, "model")
    except ProtobufError as e:
        raise OnnxRefused(f"not a protobuf ModelProto nextword reads: {e}") from None


def _graphs_in(graph):
    """`graph` and every graph nested in its node attributes (depth is bounded by the reader)."""
    yield graph
    for node in graph.get("node", []):
        for attr in node.get("attribute", []):
            for sub in ([attr["g"]] if "g" in attr else []) + attr.get("graphs", []):
                yield from _graphs_in(sub)


def _tensors_in_attributes(attrs, where):
    for attr in attrs:
        name = f"{where} attribute {attr.get('name', '?')!r}"
        for t in ([attr["t"]] if "t" in attr else []) + attr.get("tensors", []):
            yield t, name
        for sp in ([attr["sparse_tensor"]] if "sparse_tensor" in attr else []) + attr.get("sparse_tensors", []):
            yield from ((sp[k], name) for k in ("values", "indices") if k in sp)


def _tensors_in_graph(graph):
    for t in graph.get("initializer", []):
        yield t, "initializer"
    for sp in graph.get("sparse_initializer", []):
        yield from ((sp[k], "sparse initializer") for k in ("values", "indices") if k in sp)
    for node in graph.get("node", []):
        yield from _tensors_in_attributes(node.get("attribute", []), f"node {node.get('op_type', '?')}")


def all_tensors(model):
    """(TensorProto dict, where) for every tensor the model holds, wherever it is nested."""
    for graph in _graphs_in(model.get("graph", {})):
        yield from _tensors_in_graph(graph)
    for fn in model.get("functions", []):
        for node in fn.get("node", []):
            yield from _tensors_in_attributes(node.get("attribute", []), f"function {fn.get('name', '?')!r} node")
            for attr in node.get("attribute", []):
                for sub in ([attr["g"]] if "g" in attr else []) + attr.get("graphs", []):
                    for graph in _graphs_in(sub):
                        yield from _tensors_in_graph(graph)
        yield from _tensors_in_attributes(fn.get("attribute_proto", []), f"function {fn.get('name', '?')!r}")


def _refuse_files(model):
    """No tensor may keep its data in a file: onnxruntime reads it relative to the working directory."""
    for t, where in all_tensors(model):
        if t.get("external_data") or t.get("data_location", 0) != 0:
            location = next((e.get("value") for e in t.get("external_data", []) if e.get("key") == "location"), None)
            raise OnnxRefused(f"{where} {t.get('name', '?')!r} keeps its data in an external file "
                              f"(location {location!r}): onnxruntime would read it from the working directory, "
                              "so the model is refused")


def _need(ok, message):
    if not ok:
        raise OnnxRefused(message)


def _check_count(items, limit, what):
    _need(len(items) <= limit, f"{len(items)} {what}; at most {limit} are accepted")


def _check_dims(dims, what):
    _need(len(dims) <= MAX_ONNX_RANK, f"{what} has {len(dims)} dimensions; at most {MAX_ONNX_RANK} are accepted")
    for d in dims:
        _need(0 <= d <= MAX_DIM, f"{what} has dimension {d}; dimensions from 0 to {MAX_DIM} are accepted")


def _type_name(code):
    return _TYPE_NAMES.get(code, str(code))


def _check_tensor(t, where):
    name = f"{where} {t.get('name', '?')!r}"
    dtype = t.get("data_type", 0)
    _need(dtype in ONNX_TENSOR_TYPES, f"{name} has type {_type_name(dtype)}; accepted: "
          + ", ".join(_type_name(c) for c in ONNX_TENSOR_TYPES))
    _need("metadata_props" not in t, f"{name} carries metadata, which the exporter never writes")
    dims = t.get("dims", [])
    _check_dims(dims, name)
    elements = 1
    for d in dims:
        elements *= d
    present = [k for k in ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data",
                           "string_data") if k in t]
    _need(len(present) <= 1,
          f"{name} holds its values in {len(present)} fields ({', '.join(present)}); one is expected")
    if not present:
        _need(elements == 0, f"{name} has shape {dims} but holds no values")
        return
    field = present[0]
    if field == "raw_data":
        size = elements * ONNX_TENSOR_TYPES[dtype]
        start, end = t["raw_data"]
        _need(end - start == size, f"{name} of type {_type_name(dtype)} and shape {dims} needs {size} bytes of "
              f"raw data, it holds {end - start}")
    else:
        _need(field == _TYPED_FIELD[dtype], f"{name} of type {_type_name(dtype)} keeps its values in {field}; "
              f"expected raw_data or {_TYPED_FIELD[dtype]}")
        _need(t[field] == elements, f"{name} has shape {dims} ({elements} values) but holds {t[field]}")


def _check_value_info(v, what):
    name = f"{what} {v.get('name', '?')!r}"
    tensor = v.get("type", {}).get("tensor_type")
    _need(tensor is not None, f"{name} is not a tensor")
    elem = tensor.get("elem_type", 0)
    _need(elem in ONNX_TENSOR_TYPES, f"{name} has element type {_type_name(elem)}; accepted: "
          + ", ".join(_type_name(c) for c in ONNX_TENSOR_TYPES))
    dims = tensor.get("shape", {}).get("dim", [])
    _need(len(dims) <= MAX_ONNX_RANK, f"{name} has {len(dims)} dimensions; at most {MAX_ONNX_RANK} are accepted")
    for d in dims:
        _need(not ("dim_value" in d and "dim_param" in d), f"{name} gives a dimension both a value and a name")
        if "dim_value" in d:
            _check_dims([d["dim_value"]], name)


def _domain(name):
    return "ai.onnx" if name in ("", "ai.onnx") else name


def _check_opsets(model):
    seen = {}
    for o in model.get("opset_import", []):
        domain, version = _domain(o.get("domain", "")), o.get("version", 0)
        _need(domain not in seen, f"opset domain {domain!r} is imported twice")
        _need(domain in ONNX_OPSETS, f"opset domain {domain!r} is not one the exporter uses ({', '.join(ONNX_OPSETS)})")
        allowed = ONNX_OPSETS[domain]
        _need(version in allowed, f"opset {domain} version {version} is refused; the exporter writes "
              f"{allowed.start}..{allowed.stop - 1}")
        seen[domain] = version
    _need("ai.onnx" in seen, "the model imports no ai.onnx opset")
    return seen


def _check_node(node, opsets):
    op, domain = node.get("op_type", ""), _domain(node.get("domain", ""))
    _need(domain in ONNX_OPS and op in ONNX_OPS[domain],
          f"operator {op!r} of domain {domain!r} is not one nextword's exporter produces"
          + (" (control flow: its body could loop without bound)" if op in ("Loop", "Scan", "If") else ""))
    _need(domain in opsets, f"operator {op!r} uses domain {domain!r}, which the model does not import")
    _check_count(node.get("input", []), MAX_ONNX_NODE_IO, f"inputs of a {op} node")
    _check_count(node.get("output", []), MAX_ONNX_NODE_IO, f"outputs of a {op} node")
    attrs = node.get("attribute", [])
    _check_count(attrs, MAX_ONNX_ATTRIBUTES, f"attributes of a {op} node")
    for attr in attrs:
        kind = attr.get("type", 0)
        what = f"attribute {attr.get('name', '?')!r} of a {op} node"
        _need(kind in ONNX_ATTRIBUTE_TYPES, f"{what} has type {_ATTRIBUTE_NAMES.get(kind, kind)}; accepted: "
              + ", ".join(ONNX_ATTRIBUTE_TYPES.values()) + " (graph-valued attributes are refused: no subgraphs)")
        present = [k for k in ("t", "g", "graphs", "tensors", "sparse_tensor", "sparse_tensors", "ref_attr_name")
                   if k in attr]
        _need(not present, f"{what} carries {', '.join(present)}, which the exporter never writes")
        for key in ("ints", "strings", "floats"):
            n = attr.get(key, 0)
            _need((n if isinstance(n, int) else len(n)) <= MAX_ONNX_LIST,
                  f"{what} lists more than {MAX_ONNX_LIST} {key}")


def check_onnx(data):
    """Raise OnnxRefused unless `data` is an ONNX model of the kind nextword's exporter produces and names
    no file; returns the decoded model (nested dicts) for callers that want to look further."""
    model = read_model(data)
    _refuse_files(model)
    _need(model.get("ir_version", 0) in ONNX_IR_VERSIONS, f"IR version {model.get('ir_version', 0)} is refused; "
          f"accepted {ONNX_IR_VERSIONS.start}..{ONNX_IR_VERSIONS.stop - 1}")
    _need(not model.get("functions"), "the model defines local functions, which the exporter never writes")
    _check_count(model.get("metadata_props", []), MAX_ONNX_METADATA, "metadata entries")
    for e in model.get("metadata_props", []):
        _need(e.get("key") in ONNX_METADATA_KEYS, f"metadata key {e.get('key')!r} is not one the exporter writes "
              f"({', '.join(sorted(ONNX_METADATA_KEYS))})")
    opsets = _check_opsets(model)
    graph = model.get("graph")
    _need(graph is not None, "the model has no graph")
    _need(not graph.get("sparse_initializer"), "the graph has sparse initializers, which the exporter never writes")
    nodes, inits = graph.get("node", []), graph.get("initializer", [])
    _check_count(nodes, MAX_ONNX_NODES, "nodes")
    _need(nodes, "the graph has no nodes")
    _check_count(inits, MAX_ONNX_INITIALIZERS, "initializers")
    for key in ("input", "output"):
        _need(1 <= len(graph.get(key, [])) <= MAX_ONNX_GRAPH_IO,
              f"the graph has {len(graph.get(key, []))} {key}s; 1 to {MAX_ONNX_GRAPH_IO} are accepted")
    _check_count(graph.get("value_info", []), MAX_ONNX_VALUE_INFO, "value infos")
    for node in nodes:
        _check_node(node, opsets)
    for t in inits:
        _check_tensor(t, "initializer")
    for key in ("input", "output", "value_info"):
        for v in graph.get(key, []):
            _check_value_info(v, f"graph {key}")
    try:
        infer_shapes(graph, data)
    except ShapeRefused as e:
        raise OnnxRefused(f"{e}") from None
    return model
