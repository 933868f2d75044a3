"""Crafted ONNX models for the allow-list tests, written with a tiny protobuf encoder (field numbers from
onnx/onnx.proto), so they build in every environment (the `onnx` package is only in the full one).

`window_model()` makes a small model shaped like the seed bundle's window variants (input `ids` int32
[N, 4], output `logits` float32 [N, 11]) from operators the exporter uses: logits = Gather(table,
Gather(ids, 3, axis=1)), i.e. row `ids[:, 3]` of an 11 x 11 float table. Its keyword arguments swap one
part for a hostile one (external data, a Loop, an unknown operator, ...), so each crafted file differs
from a model onnxruntime runs by exactly the thing under test."""

import struct

VOCAB, WINDOW = 11, 4
FLOAT, UINT8, INT8, INT32, INT64, STRING, BOOL, FLOAT16 = 1, 2, 3, 6, 7, 8, 9, 10
A_FLOAT, A_INT, A_STRING, A_TENSOR, A_GRAPH, A_INTS, A_GRAPHS = 1, 2, 3, 4, 5, 7, 10


# -- wire format ---------------------------------------------------------------------------------
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def key(number, wire):
    return varint(number << 3 | wire)


def f_int(number, value):
    return key(number, 0) + varint(value)


def f_bytes(number, data):
    data = data.encode() if isinstance(data, str) else bytes(data)
    return key(number, 2) + varint(len(data)) + data


def f_float(number, value):
    return key(number, 5) + struct.pack("<f", value)


def f_packed_ints(number, values):
    return f_bytes(number, b"".join(varint(v) for v in values))


def read_varint(data, pos):
    """(value, position after it) of the varint at data[pos]."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(data, start=0, end=None):
    """(number, wire type, field start, value start, value end) of each field of the message in
    data[start:end]; a length-delimited value's span excludes its length."""
    pos, end = start, len(data) if end is None else end
    while pos < end:
        first = pos
        k, pos = read_varint(data, pos)
        number, wire = k >> 3, k & 7
        if wire == 0:
            value = pos
            _, pos = read_varint(data, pos)
        elif wire == 2:
            n, value = read_varint(data, pos)
            pos = value + n
        elif wire in (1, 5):
            value, pos = pos, pos + (8 if wire == 1 else 4)
        else:
            raise AssertionError(f"wire type {wire} at {first}")
        yield number, wire, first, value, pos


# -- ONNX messages ---------------------------------------------------------------------------------
def entry(k, v):
    return f_bytes(1, k) + f_bytes(2, v)


def tensor(name, dims, data_type, raw=None, external=None, data_location=None, float_count=None,
           strings=None, extra=b""):
    """TensorProto. external: {key: value} entries (location, offset, length)."""
    out = b"".join(f_int(1, d) for d in dims) + f_int(2, data_type) + f_bytes(8, name)
    if raw is not None:
        out += f_bytes(9, raw)
    if float_count is not None:
        out += f_bytes(4, b"\0\0\0\0" * float_count)
    for s in strings or ():
        out += f_bytes(6, s)
    for k, v in (external or {}).items():
        out += f_bytes(13, entry(k, str(v)))
    if data_location is not None:
        out += f_int(14, data_location)
    return out + extra


def attr(name, kind, value):
    out = f_bytes(1, name) + f_int(20, kind)
    if kind == A_FLOAT:
        out += f_float(2, value)
    elif kind == A_INT:
        out += f_int(3, value)
    elif kind == A_INTS:
        out += b"".join(f_int(8, v) for v in value)
    elif kind == A_GRAPHS:
        out += b"".join(f_bytes(11, g) for g in value)
    else:
        out += f_bytes({A_STRING: 4, A_TENSOR: 5, A_GRAPH: 6}[kind], value)
    return out


def node(op, inputs, outputs, attrs=(), domain=None, name=None):
    out = b"".join(f_bytes(1, i) for i in inputs) + b"".join(f_bytes(2, o) for o in outputs)
    out += f_bytes(3, name or f"{op}_{outputs[0] if outputs else ''}") + f_bytes(4, op)
    out += b"".join(f_bytes(5, a) for a in attrs)
    if domain is not None:
        out += f_bytes(7, domain)
    return out


def value_info(name, elem, dims):
    """dims: ints, or None for a symbolic (batch) dimension."""
    shape = b"".join(f_bytes(1, f_int(1, d) if d is not None else f_bytes(2, "batch")) for d in dims)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, f_int(1, elem) + f_bytes(2, shape)))


def graph(nodes, inputs, outputs, initializers=(), name="crafted", extra=b""):
    return (b"".join(f_bytes(1, n) for n in nodes) + f_bytes(2, name)
            + b"".join(f_bytes(5, t) for t in initializers)
            + b"".join(f_bytes(11, v) for v in inputs) + b"".join(f_bytes(12, v) for v in outputs) + extra)


def model(graph_bytes, opsets=(("", 17),), ir_version=8, functions=(), extra=b""):
    out = f_int(1, ir_version) + f_bytes(2, "crafted") + f_bytes(7, graph_bytes)
    out += b"".join(f_bytes(8, f_bytes(1, d) + f_int(2, v)) for d, v in opsets)
    out += b"".join(f_bytes(25, fn) for fn in functions)
    return out + extra


# -- the window-shaped model and its hostile twins ---------------------------------------------------
def table_values(secret=None):
    """The 11 x 11 float32 table as bytes: row i holds i + column / 100 (or the secret's bytes)."""
    if secret is not None:
        return secret
    return struct.pack(f"<{VOCAB * VOCAB}f", *(i + j / 100 for i in range(VOCAB) for j in range(VOCAB)))


TABLE_BYTES = VOCAB * VOCAB * 4


def window_model(table=None, extra_nodes=(), extra_inits=(), opsets=(("", 17),), ir_version=8, functions=(),
                 graph_extra=b"", model_extra=b"", index_node=None):
    """ids [N, 4] int32 -> logits [N, 11] float32 = table[ids[:, 3]]. `table`: a TensorProto for the
    table (default: inline raw data)."""
    table = table if table is not None else tensor("table", [VOCAB, VOCAB], FLOAT, raw=table_values())
    last = tensor("last", [], INT64, raw=struct.pack("<q", WINDOW - 1))
    nodes = [index_node or node("Gather", ["ids", "last"], ["word"], [attr("axis", A_INT, 1)]),
             node("Gather", ["table", "word"], ["logits"], [attr("axis", A_INT, 0)]), *extra_nodes]
    g = graph(nodes, [value_info("ids", INT32, [None, WINDOW])], [value_info("logits", FLOAT, [None, VOCAB])],
              [table, last, *extra_inits], extra=graph_extra)
    return model(g, opsets=opsets, ir_version=ir_version, functions=functions, extra=model_extra)


def external_table(location, offset=0, data_location=1):
    """The table tensor with its data in a file named `location` (resolved against the working directory)."""
    return tensor("table", [VOCAB, VOCAB], FLOAT, external={"location": location, "offset": offset,
                                                            "length": TABLE_BYTES}, data_location=data_location)


def loop_model(trip_count=1 << 62):
    """logits = a Loop over a zero [1, 11] tensor, `trip_count` times, whose body passes it through: it
    never ends in practice. The ids input is declared but unused."""
    body = graph([node("Identity", ["cond_in"], ["cond_out"]), node("Identity", ["v_in"], ["v_out"])],
                 [value_info("i", INT64, []), value_info("cond_in", BOOL, []), value_info("v_in", FLOAT, [1, VOCAB])],
                 [value_info("cond_out", BOOL, []), value_info("v_out", FLOAT, [1, VOCAB])], name="body")
    inits = [tensor("M", [], INT64, raw=struct.pack("<q", trip_count)), tensor("cond", [], BOOL, raw=b"\1"),
             tensor("zeros", [1, VOCAB], FLOAT, raw=b"\0" * (4 * VOCAB))]
    g = graph([node("Loop", ["M", "cond", "zeros"], ["logits"], [attr("body", A_GRAPH, body)])],
              [value_info("ids", INT32, [None, WINDOW])], [value_info("logits", FLOAT, [1, VOCAB])], inits)
    return model(g)


def if_model(then_inits=()):
    """An If whose branches are subgraphs (optionally holding initializers of their own)."""
    branch = graph([node("Identity", ["zeros"], ["out"])], [], [value_info("out", FLOAT, [1, VOCAB])],
                   list(then_inits), name="branch")
    return window_model(extra_nodes=[node("If", ["cond"], ["unused"], [attr("then_branch", A_GRAPH, branch),
                                                                        attr("else_branch", A_GRAPH, branch)])],
                        extra_inits=[tensor("cond", [], BOOL, raw=b"\1"), tensor("zeros", [1, VOCAB], FLOAT,
                                                                                 raw=b"\0" * (4 * VOCAB))])


def nested_if_model(depth):
    """If nodes nested `depth` graphs deep (each branch holds the next If): deep protobuf recursion."""
    leaf = graph([node("Identity", ["x"], ["y"])], [], [value_info("y", FLOAT, [1])], name="leaf")
    inner = leaf
    for _ in range(depth):   # only then_branch nests: the size grows linearly, not as 2**depth
        inner = graph([node("If", ["c"], ["y"], [attr("then_branch", A_GRAPH, inner),
                                                 attr("else_branch", A_GRAPH, leaf)])],
                      [], [value_info("y", FLOAT, [1])], name="level")
    return window_model(extra_nodes=[node("If", ["c"], ["deep"], [attr("then_branch", A_GRAPH, inner)])])


def nested_bytes(depth):
    """A ModelProto whose graph field holds a node whose attribute holds a graph ... `depth` times,
    built inside-out without recursion (a stack-depth bomb for a naive recursive reader)."""
    inner = b""
    for _ in range(depth):
        inner = f_bytes(1, f_bytes(5, f_bytes(6, inner)))   # graph.node.attribute.g
    return f_int(1, 8) + f_bytes(7, inner) + f_bytes(8, f_bytes(1, "") + f_int(2, 17))


def scan_model():
    body = graph([node("Identity", ["s"], ["s2"])], [value_info("s", FLOAT, [1])], [value_info("s2", FLOAT, [1])])
    return window_model(extra_nodes=[node("Scan", ["zeros"], ["unused"], [attr("body", A_GRAPH, body),
                                                                          attr("num_scan_inputs", A_INT, 1)])],
                        extra_inits=[tensor("zeros", [1], FLOAT, raw=b"\0" * 4)])


def constant_external_model(location):
    """A Constant node whose `value` tensor keeps its data in a file."""
    value = tensor("const", [VOCAB, VOCAB], FLOAT, external={"location": location, "length": TABLE_BYTES},
                   data_location=1)
    return window_model(extra_nodes=[node("Constant", [], ["const"], [attr("value", A_TENSOR, value)])])


def function_model(location=None):
    """A model-local function (domain `local`), called once; with `location`, its Constant reads a file."""
    inner = [node("Identity", ["x"], ["y"])]
    if location is not None:
        value = tensor("c", [1], FLOAT, external={"location": location, "length": 4}, data_location=1)
        inner.append(node("Constant", [], ["c"], [attr("value", A_TENSOR, value)]))
    fn = (f_bytes(1, "Helper") + f_bytes(4, "x") + f_bytes(5, "y") + b"".join(f_bytes(7, n) for n in inner)
          + f_bytes(9, f_bytes(1, "") + f_int(2, 17)) + f_bytes(10, "local"))
    return window_model(extra_nodes=[node("Helper", ["logits"], ["unused"], domain="local")],
                        opsets=(("", 17), ("local", 1)), functions=[fn])
