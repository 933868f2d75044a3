"""Static shapes of an allowed ONNX graph: no file may make onnxruntime allocate without bound.

The operator allow-list (runtime/allowlist/onnx.py) is not enough: allowed operators amplify. An Expand
of a 4-byte constant to [2**15, 2**15], a broadcasting Add or Mul of [N, 1] and [1, M], a MatMul outer
product, a Gather with a large index constant, a Concat of a tensor with itself or a Reshape whose
target is computed through Shape -> Concat all pass an operator check; onnxruntime then spends up to
1 GB folding constants while the session is created and allocates the rest at the first run.

So every node output's shape is computed here, in pure Python, with each operator's ONNX semantics, from
the graph inputs' declared shapes and the initializers' shapes, and from the VALUES of small integer
tensors (tf2onnx computes Expand and Reshape targets as Shape -> Slice/Gather -> Concat -> Cast of int64
constants). The batch dimension (the first of each graph input, symbolic in window and step variants)
is kept symbolic as c x batch**p: memory linear in the batch is the caller's choice, bytes are measured
at batch 1, and a tensor that grows faster than the batch (an outer product of the batch) is refused.
A shape that cannot be determined statically, a tensor over MAX_ONNX_TENSOR_BYTES, or all node outputs
together over MAX_ONNX_ACTIVATION_BYTES is a ShapeRefused naming the node, the shape and the bound."""

import itertools
import struct

from ..limits import MAX_ONNX_ACTIVATION_BYTES, MAX_ONNX_RANK, MAX_ONNX_SHAPE_VALUES, MAX_ONNX_TENSOR_BYTES

FLOAT, UINT8, INT8, INT32, INT64, BOOL = 1, 2, 3, 6, 7, 9
ITEM_BYTES = {FLOAT: 4, UINT8: 1, INT8: 1, INT32: 4, INT64: 8, BOOL: 1}
_INTEGER = {UINT8: "<B", INT8: "<b", INT32: "<i", INT64: "<q", BOOL: "<?"}
_BITS = {UINT8: (8, False), INT8: (8, True), INT32: (32, True), INT64: (64, True), BOOL: (1, False)}
_INT32_MAX = (1 << 31) - 1   # a Slice end at least this keeps a whole (batch) dimension
_BIG = 1 << 62          # a batch coefficient past this is no longer tracked (int64 arithmetic would wrap)


class ShapeRefused(ValueError):
    """A shape the check cannot determine statically, or a tensor larger than the bounds allow."""


class Batch:
    """c x batch**p (p >= 1, c >= 1): a dimension, or a shape value, that depends on the batch fed."""

    __slots__ = ("c", "p")

    def __init__(self, c, p):
        self.c, self.p = c, p

    def __eq__(self, other):
        return isinstance(other, Batch) and other.c == self.c and other.p == self.p

    def __hash__(self):
        return hash((self.c, self.p))

    def __repr__(self):
        term = "batch" if self.p == 1 else f"batch^{self.p}"
        return term if self.c == 1 else f"{self.c}*{term}"


def _term(d):
    return (d.c, d.p) if isinstance(d, Batch) else (d, 0)


def _make(c, p):
    return c if p == 0 or c == 0 else Batch(c, p)


def _mul(a, b):
    (ca, pa), (cb, pb) = _term(a), _term(b)
    return _make(ca * cb, pa + pb)


def _count(dims):
    """Elements of a tensor of shape `dims` as (c, p): c x batch**p."""
    c, p = 1, 0
    for d in dims:
        dc, dp = _term(d)
        c, p = c * dc, p + dp
    return c, p


def _fmt(dims):
    return "[" + ", ".join(str(d) for d in dims) + "]"


class Info:
    """What the check knows of one tensor: element type, shape, and (small integer tensors) values."""

    __slots__ = ("dtype", "dims", "values")

    def __init__(self, dtype, dims, values=None):
        self.dtype, self.dims, self.values = dtype, tuple(dims), values
        if values is not None and (dtype not in _INTEGER or len(values) > MAX_ONNX_SHAPE_VALUES
                                   or any(isinstance(d, Batch) for d in self.dims)
                                   or any(isinstance(v, Batch) and v.c > _BIG for v in values)):
            self.values = None


class _Node:
    """One node being inferred: its name for messages, its attributes by name."""

    def __init__(self, node):
        self.op = node.get("op_type", "")
        self.name = node.get("name") or "(unnamed)"
        self.attrs = {a.get("name"): a for a in node.get("attribute", [])}
        self.outputs = node.get("output", [])

    def refuse(self, message):
        raise ShapeRefused(f"node {self.name!r} ({self.op}): {message}")

    def need(self, ok, message):
        if not ok:
            self.refuse(message)

    def int_attr(self, name, default=None):
        a = self.attrs.get(name)
        if a is None:
            if default is None:
                self.refuse(f"has no {name!r} attribute")
            return default
        self.need("i" in a, f"attribute {name!r} is not an integer")
        return a["i"]

    def ints_attr(self, name):
        a = self.attrs.get(name)
        return None if a is None else list(a.get("ints", []))

    def str_attr(self, name, default):
        a = self.attrs.get(name)
        return default if a is None else a.get("s", "")

    def axis(self, axis, rank, what="axis"):
        self.need(-rank <= axis < rank, f"{what} {axis} is outside a tensor of rank {rank}")
        return axis + rank if axis < 0 else axis

    def ints(self, info, what, allow_batch=False):
        """The values of a small integer input (a shape, axes, starts ...), or a refusal."""
        self.need(info is not None, f"has no {what} input")
        self.need(info.values is not None and info.dtype in (INT32, INT64),
                  f"its {what} input (shape {_fmt(info.dims)}) is not made of integer constants the check can "
                  "compute, so the output shape cannot be determined statically")
        self.need(len(info.dims) <= 1, f"its {what} input has rank {len(info.dims)}; 0 or 1 is expected")
        if not allow_batch:
            self.need(not any(isinstance(v, Batch) for v in info.values),
                      f"its {what} input depends on the batch size")
        return list(info.values)


def _wrap(value, dtype):
    if isinstance(value, Batch):
        return value
    bits, signed = _BITS[dtype]
    if dtype == BOOL:
        return int(value != 0)
    value &= (1 << bits) - 1
    return value - (1 << bits) if signed and value >> (bits - 1) else value


def _broadcast(n, shapes):
    """Multidirectional (numpy) broadcasting of `shapes`."""
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dim = 1
        for s in shapes:
            j = i - (rank - len(s))
            if j < 0:
                continue
            d = s[j]
            if d == 1 or d == dim:
                continue
            if dim == 1:
                dim = d
            elif isinstance(dim, Batch) and not isinstance(d, Batch):
                dim = d          # valid only where batch**p x c == d: the output has d
            elif not (isinstance(d, Batch) and not isinstance(dim, Batch)):
                n.refuse("cannot broadcast shapes " + " and ".join(_fmt(s) for s in shapes))
        out.append(dim)
    return out


def _elementwise(fn, infos, out_dims, dtype):
    """Values of an elementwise op on small constant inputs (None when any is unknown)."""
    if (any(i.values is None for i in infos) or any(isinstance(d, Batch) for d in out_dims)
            or _count(out_dims)[0] > MAX_ONNX_SHAPE_VALUES):
        return None
    if all(len(i.values) == len(infos[0].values) and _count(i.dims) == _count(out_dims) for i in infos):
        rows = zip(*(i.values for i in infos))         # no broadcasting: pair the values (the common case)
        out = [fn(*args) for args in rows]
        return None if None in out else [_wrap(v, dtype) for v in out]
    rank = len(out_dims)
    strides = []
    for info in infos:
        dims = (1,) * (rank - len(info.dims)) + info.dims
        s, acc = [], 1
        for d in reversed(dims):
            s.append(0 if d == 1 else acc)
            acc *= d
        strides.append(list(reversed(s)))
    out = []
    for index in itertools.product(*(range(d) for d in out_dims)):
        args = [info.values[sum(k * st for k, st in zip(index, s))] for info, s in zip(infos, strides)]
        value = fn(*args)
        if value is None:
            return None
        out.append(_wrap(value, dtype))
    return out


def _add(a, b):
    if isinstance(a, Batch) or isinstance(b, Batch):
        return a if b == 0 else b if a == 0 else None
    return a + b


def _less(a, b):
    return None if isinstance(a, Batch) or isinstance(b, Batch) else int(a < b)


# -- operators: each takes (node, inputs as Info or None) and returns the outputs' Info -----------------
def _same(n, ins):
    return [Info(ins[0].dtype, ins[0].dims)]


def _binary(fn, out_type=None):
    def infer(n, ins):
        a, b = ins[0], ins[1]
        dims = _broadcast(n, [a.dims, b.dims])
        dtype = out_type or a.dtype
        return [Info(dtype, dims, _elementwise(fn, [a, b], dims, dtype) if dtype in _INTEGER else None)]
    return infer


def _not(n, ins):
    x = ins[0]
    return [Info(BOOL, x.dims, None if x.values is None else [int(not v) for v in x.values])]


def _cast(n, ins):
    x, to = ins[0], n.int_attr("to")
    n.need(to in ITEM_BYTES, f"casts to element type {to}, which the check does not size")
    values = None
    if x.values is not None and to in _INTEGER:
        values = [1 if to == BOOL and isinstance(v, Batch) else _wrap(v, to) for v in x.values]
    return [Info(to, x.dims, values)]


def _concat(n, ins):
    rank = len(ins[0].dims)
    n.need(rank > 0, "concatenates scalars")
    axis = n.axis(n.int_attr("axis"), rank)
    dims = list(ins[0].dims)
    terms = []
    for x in ins:
        n.need(len(x.dims) == rank and all(x.dims[i] == dims[i] for i in range(rank) if i != axis),
               "concatenates shapes " + " and ".join(_fmt(i.dims) for i in ins) + f" along axis {axis}")
        terms.append(_term(x.dims[axis]))
    powers = {p for c, p in terms if c}
    n.need(len(powers) <= 1, f"concatenates sizes {[x.dims[axis] for x in ins]}: the result cannot be "
           "determined statically")
    dims[axis] = _make(sum(c for c, _ in terms), powers.pop() if powers else 0)
    values = None
    if rank == 1 and all(x.values is not None for x in ins):
        values = [v for x in ins for v in x.values]
    return [Info(ins[0].dtype, dims, values)]


def _dequantize(n, ins):
    return [Info(FLOAT, ins[0].dims)]


def _dynamic_quantize(n, ins):
    return [Info(UINT8, ins[0].dims), Info(FLOAT, ()), Info(UINT8, ())]


def _target_dims(n, values, what):
    for v in values:
        n.need(isinstance(v, Batch) or v >= 0, f"its {what} {_fmt(values)} holds a negative size")
    return values


def _expand(n, ins):
    shape = _target_dims(n, n.ints(ins[1], "shape", allow_batch=True), "shape")
    return [Info(ins[0].dtype, _broadcast(n, [ins[0].dims, shape]))]


def _gather(n, ins):
    data, indices = ins[0], ins[1]
    n.need(len(data.dims) >= 1, "gathers from a scalar")
    axis = n.axis(n.int_attr("axis", 0), len(data.dims))
    dims = data.dims[:axis] + indices.dims + data.dims[axis + 1:]
    values = None
    if data.values is not None and indices.values is not None and len(data.dims) == 1:
        size = len(data.values)
        for i in indices.values:
            n.need(not isinstance(i, Batch) and -size <= i < size, f"index {i} is outside {size} values")
        values = [data.values[i] for i in indices.values]
    return [Info(data.dtype, dims, values)]


def _lstm_shapes(n, x, hidden, directions, layout):
    n.need(len(x.dims) == 3, f"its input X has shape {_fmt(x.dims)}; rank 3 is expected")
    if layout == 0:
        seq, batch = x.dims[0], x.dims[1]
        outs = [(seq, directions, batch, hidden), (directions, batch, hidden), (directions, batch, hidden)]
    else:
        batch, seq = x.dims[0], x.dims[1]
        outs = [(batch, seq, directions, hidden), (batch, directions, hidden), (batch, directions, hidden)]
    # onnxruntime's LSTM keeps every step's four gates: seq x batch x 4 x hidden floats of scratch
    scratch = Info(FLOAT, (seq, batch, 4 * directions, hidden))
    return [Info(x.dtype, d) for d in outs], scratch


def _lstm_common(n, ins, quantized):
    x = ins[0]
    directions = {"forward": 1, "reverse": 1, "bidirectional": 2}.get(n.str_attr("direction", "forward"))
    n.need(directions is not None, f"direction {n.str_attr('direction', '')!r} is not an LSTM direction")
    hidden = n.int_attr("hidden_size")
    n.need(hidden >= 1, f"hidden_size {hidden} is not positive")
    layout = 0 if quantized else n.int_attr("layout", 0)
    n.need(layout in (0, 1), f"layout {layout} is not 0 or 1")
    n.need(len(ins) >= 3 and ins[1] is not None and ins[2] is not None, "lacks its W or R input")
    n.need(len(x.dims) == 3, f"its input X has shape {_fmt(x.dims)}; rank 3 is expected")
    size = x.dims[2]
    if quantized:   # com.microsoft DynamicQuantizeLSTM keeps W and R transposed
        want = {1: (directions, size, 4 * hidden), 2: (directions, hidden, 4 * hidden)}
    else:
        want = {1: (directions, 4 * hidden, size), 2: (directions, 4 * hidden, hidden)}
    want[3] = (directions, 8 * hidden)
    batch = x.dims[1] if layout == 0 else x.dims[0]
    want[5] = want[6] = (directions, batch, hidden) if layout == 0 else (batch, directions, hidden)
    want[7] = (directions, 3 * hidden)
    for i, dims in want.items():
        if i < len(ins) and ins[i] is not None:
            n.need(ins[i].dims == dims, f"input {i} has shape {_fmt(ins[i].dims)}; with hidden_size {hidden} "
                   f"the operator needs {_fmt(dims)}")
    return _lstm_shapes(n, x, hidden, directions, layout)


def _matmul_dims(n, a, b):
    n.need(len(a) >= 1 and len(b) >= 1, f"multiplies shapes {_fmt(a)} and {_fmt(b)} (a scalar)")
    A = (1,) + tuple(a) if len(a) == 1 else tuple(a)
    B = tuple(b) + (1,) if len(b) == 1 else tuple(b)
    n.need(A[-1] == B[-2], f"multiplies shapes {_fmt(a)} and {_fmt(b)}: inner sizes differ")
    out = _broadcast(n, [A[:-2], B[:-2]]) + [A[-2], B[-1]]
    if len(a) == 1:
        out.pop(-2)
    if len(b) == 1:
        out.pop()
    return out


def _matmul(n, ins):
    return [Info(ins[0].dtype, _matmul_dims(n, ins[0].dims, ins[1].dims))]


def _matmul_integer(n, ins):
    return [Info(INT32, _matmul_dims(n, ins[0].dims, ins[1].dims))]


def _reshape(n, ins):
    x = ins[0]
    target = n.ints(ins[1], "shape", allow_batch=True)
    n.need(len(ins[1].dims) == 1, f"its shape input has rank {len(ins[1].dims)}; 1 is expected")
    allow_zero = n.int_attr("allowzero", 0)
    dims, free = [], None
    for i, v in enumerate(target):
        if v == 0 and not allow_zero:
            n.need(i < len(x.dims), f"target {_fmt(target)} copies dimension {i} of a rank-{len(x.dims)} tensor")
            v = x.dims[i]
        elif v == -1:
            n.need(free is None, f"target {_fmt(target)} has more than one -1")
            free = i
        elif not isinstance(v, Batch):
            n.need(v >= 0, f"target {_fmt(target)} holds a negative size")
        dims.append(v)
    total, known = _count(x.dims), _count(d for i, d in enumerate(dims) if i != free)
    if free is not None:
        n.need(known[0] != 0 and total[0] % known[0] == 0 and total[1] >= known[1],
               f"cannot reshape {_fmt(x.dims)} to {_fmt(target)}")
        dims[free] = _make(total[0] // known[0], total[1] - known[1])
    else:
        n.need(total == known, f"cannot reshape {_fmt(x.dims)} to {_fmt(target)}: the sizes differ")
    return [Info(x.dtype, dims, x.values)]


def _shape(n, ins):
    dims = ins[0].dims
    rank = len(dims)
    start, end = n.int_attr("start", 0), n.int_attr("end", rank)
    start, end = (min(max(v + rank if v < 0 else v, 0), rank) for v in (start, end))
    kept = dims[start:end]
    return [Info(INT64, (len(kept),), list(kept))]


def _slice_range(n, dim, start, end, step):
    """Elements kept along one axis (ONNX Slice clamping rules)."""
    if isinstance(dim, Batch):
        n.need(start == 0 and step == 1 and end >= _INT32_MAX, f"slices [{start}:{end}:{step}] of a batch dimension")
        return dim, None
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        size = max(0, -(-(end - start) // step))
    else:
        start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
        size = max(0, -(-(start - end) // -step))
    return size, range(start, end, step)


def _slice(n, ins):
    x = ins[0]
    rank = len(x.dims)
    starts, ends = n.ints(ins[1], "starts"), n.ints(ins[2], "ends")
    axes = n.ints(ins[3], "axes") if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
    steps = n.ints(ins[4], "steps") if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
    n.need(len(starts) == len(ends) == len(axes) == len(steps), "starts, ends, axes and steps differ in length")
    axes = [n.axis(a, rank) for a in axes]
    n.need(len(set(axes)) == len(axes), f"slices axes {axes} (repeated)")
    dims, picks = list(x.dims), {}
    for axis, start, end, step in zip(axes, starts, ends, steps):
        n.need(step != 0, "has a step of 0")
        dims[axis], picks[axis] = _slice_range(n, dims[axis], start, end, step)
    values = None
    if x.values is not None and rank == 1:
        values = [x.values[i] for i in (picks[0] if 0 in picks else range(len(x.values)))]
    return [Info(x.dtype, dims, values)]


def _split(n, ins):
    x = ins[0]
    axis = n.axis(n.int_attr("axis", 0), len(x.dims))
    count, dim = len(n.outputs), x.dims[axis]
    if len(ins) > 1 and ins[1] is not None:
        sizes = n.ints(ins[1], "split")
        n.need(len(sizes) == count and all(s >= 0 for s in sizes) and sum(sizes) == dim,
               f"splits size {dim} into {sizes} over {count} outputs")
    else:
        n.need(not isinstance(dim, Batch) or count == 1, "splits a batch dimension")
        parts = n.int_attr("num_outputs", 0)
        if isinstance(dim, Batch):
            sizes = [dim]
        elif parts:
            n.need(parts == count, f"num_outputs {parts} but {count} outputs")
            chunk = -(-dim // count)
            sizes = [chunk] * (count - 1) + [dim - chunk * (count - 1)]
            n.need(sizes[-1] >= 0, f"cannot split size {dim} into {count} parts")
        else:
            n.need(dim % count == 0, f"cannot split size {dim} evenly into {count} outputs")
            sizes = [dim // count] * count
    out = []
    for s in sizes:
        dims = list(x.dims)
        dims[axis] = s
        out.append(Info(x.dtype, dims))
    return out


def _squeeze(n, ins):
    x = ins[0]
    rank = len(x.dims)
    if len(ins) > 1 and ins[1] is not None:
        axes = {n.axis(a, rank) for a in n.ints(ins[1], "axes")}
        for a in axes:
            n.need(x.dims[a] == 1, f"squeezes axis {a} of shape {_fmt(x.dims)}, which is not 1")
    else:
        n.need(not any(isinstance(d, Batch) for d in x.dims), "squeezes every 1 of a shape with a batch dimension")
        axes = {i for i, d in enumerate(x.dims) if d == 1}
    return [Info(x.dtype, [d for i, d in enumerate(x.dims) if i not in axes], x.values)]


def _unsqueeze(n, ins):
    x = ins[0]
    values = n.ints(ins[1], "axes")
    rank = len(x.dims) + len(values)
    axes = {n.axis(a, rank) for a in values}
    n.need(len(axes) == len(values), f"unsqueezes axes {values} (repeated)")
    rest = iter(x.dims)
    return [Info(x.dtype, [1 if i in axes else next(rest) for i in range(rank)], x.values)]


def _transpose(n, ins):
    x = ins[0]
    rank = len(x.dims)
    perm = n.ints_attr("perm")
    perm = list(reversed(range(rank))) if perm is None else perm
    n.need(sorted(perm) == list(range(rank)), f"perm {perm} is not a permutation of {rank} axes")
    return [Info(x.dtype, [x.dims[p] for p in perm])]


_OPS = {
    ("ai.onnx", "Add"): (2, _binary(_add)), ("ai.onnx", "Mul"): (2, _binary(lambda a, b: _mul(a, b))),
    ("ai.onnx", "Less"): (2, _binary(_less, BOOL)), ("ai.onnx", "Not"): (1, _not),
    ("ai.onnx", "Cast"): (1, _cast), ("ai.onnx", "Concat"): (1, _concat),
    ("ai.onnx", "DequantizeLinear"): (2, _dequantize), ("ai.onnx", "DynamicQuantizeLinear"): (1, _dynamic_quantize),
    ("ai.onnx", "Expand"): (2, _expand), ("ai.onnx", "Gather"): (2, _gather),
    ("ai.onnx", "LSTM"): (3, lambda n, ins: _lstm_common(n, ins, False)),
    ("com.microsoft", "DynamicQuantizeLSTM"): (3, lambda n, ins: _lstm_common(n, ins, True)),
    ("ai.onnx", "MatMul"): (2, _matmul), ("ai.onnx", "MatMulInteger"): (2, _matmul_integer),
    ("ai.onnx", "Reshape"): (2, _reshape), ("ai.onnx", "Shape"): (1, _shape),
    ("ai.onnx", "Sigmoid"): (1, _same), ("ai.onnx", "Tanh"): (1, _same),
    ("ai.onnx", "Slice"): (3, _slice), ("ai.onnx", "Split"): (1, _split),
    ("ai.onnx", "Squeeze"): (1, _squeeze), ("ai.onnx", "Unsqueeze"): (2, _unsqueeze),
    ("ai.onnx", "Transpose"): (1, _transpose),
}


# -- the graph -------------------------------------------------------------------------------------------
def _initializer(t, data):
    dtype, dims = t.get("data_type", 0), tuple(t.get("dims", []))
    values = None
    elements = _count(dims)[0]
    if dtype in _INTEGER and elements <= MAX_ONNX_SHAPE_VALUES:
        if elements == 0:
            values = []
        elif "raw_data" in t:
            start, end = t["raw_data"]
            values = list(struct.unpack(_INTEGER[dtype][0] + _INTEGER[dtype][1] * elements, data[start:end]))
            values = [int(v) for v in values]
    return Info(dtype, dims, values)


def _graph_input(v):
    name = v.get("name", "?")
    tensor = v.get("type", {}).get("tensor_type", {})
    if "shape" not in tensor:
        raise ShapeRefused(f"graph input {name!r} declares no shape, so no size can be determined statically")
    dims = []
    for i, d in enumerate(tensor["shape"].get("dim", [])):
        if "dim_value" in d:
            dims.append(d["dim_value"])
        elif i == 0:
            dims.append(Batch(1, 1))
        else:
            raise ShapeRefused(f"graph input {name!r} leaves dimension {i} unknown; only the first (the batch) "
                               "may be symbolic")
    return Info(tensor.get("elem_type", 0), dims)


def _order(nodes, known):
    """Node indices in an order where each node's inputs come first (Kahn), or ShapeRefused."""
    producer = {}
    for i, node in enumerate(nodes):
        for out in node.get("output", []):
            if out:
                if out in producer or out in known:
                    raise ShapeRefused(f"tensor {out!r} is produced twice")
                producer[out] = i
    waiting, consumers = [0] * len(nodes), [[] for _ in nodes]
    for i, node in enumerate(nodes):
        for name in set(node.get("input", [])):
            if not name or name in known:
                continue
            if name not in producer:
                raise ShapeRefused(f"node {node.get('name', '?')!r} reads {name!r}, which nothing defines")
            waiting[i] += 1
            consumers[producer[name]].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    order = []
    while ready:
        i = ready.pop()
        order.append(i)
        for j in consumers[i]:
            waiting[j] -= 1
            if not waiting[j]:
                ready.append(j)
    if len(order) != len(nodes):
        raise ShapeRefused("the graph has a cycle")
    return order


def _account(n, output, info, total):
    """Bytes of one node output at batch 1, checked against the bounds; returns the new total."""
    n.need(len(info.dims) <= MAX_ONNX_RANK, f"output {output!r} has rank {len(info.dims)}; at most {MAX_ONNX_RANK}")
    for d in info.dims:
        n.need(isinstance(d, Batch) or d >= 0, f"output {output!r} has shape {_fmt(info.dims)}")
    elements, power = _count(info.dims)
    n.need(power <= 1, f"output {output!r} has shape {_fmt(info.dims)}: it grows as batch^{power}, "
           "faster than the batch (at most linear growth is accepted)")
    size = elements * ITEM_BYTES[info.dtype]
    n.need(size <= MAX_ONNX_TENSOR_BYTES, f"output {output!r} has shape {_fmt(info.dims)}: {size} bytes "
           f"(per batch row); at most {MAX_ONNX_TENSOR_BYTES} bytes per tensor are accepted")
    total += size
    n.need(total <= MAX_ONNX_ACTIVATION_BYTES, f"output {output!r} (shape {_fmt(info.dims)}) brings the tensors "
           f"computed so far to {total} bytes (per batch row); at most {MAX_ONNX_ACTIVATION_BYTES} are accepted")
    return total


def infer_shapes(graph, data):
    """{tensor name: Info} for every tensor of `graph` (a ModelProto graph from runtime/allowlist/onnx.py,
    whose operators are already allowed; `data` the file's bytes, for small integer constants), and the
    bytes all node outputs take at batch 1. ShapeRefused when a shape cannot be determined statically or
    a bound is passed."""
    env = {}
    inputs = {v.get("name") for v in graph.get("input", [])}
    for t in graph.get("initializer", []):
        if t.get("name") not in inputs:     # an input of the same name overrides the initializer
            env[t.get("name")] = _initializer(t, data)
    for v in graph.get("input", []):
        env[v.get("name")] = _graph_input(v)
        _account(_Node({"op_type": "input", "name": v.get("name")}), v.get("name"), env[v.get("name")], 0)
    nodes = graph.get("node", [])
    total = 0
    for i in _order(nodes, env):
        node = nodes[i]
        n = _Node(node)
        domain = node.get("domain") or "ai.onnx"
        needed, infer = _OPS[(domain, n.op)]
        ins = [env[name] if name else None for name in node.get("input", [])]
        n.need(len(ins) >= needed and all(x is not None for x in ins[:needed]),
               f"has {len(ins)} inputs; at least {needed} are needed")
        n.need(all(x.dtype in ITEM_BYTES for x in ins if x is not None),
               "reads a tensor of a type the check does not size")
        result = infer(n, ins)
        extra = None
        if isinstance(result, tuple):
            result, extra = result
        n.need(len(n.outputs) <= len(result), f"has {len(n.outputs)} outputs; the operator makes {len(result)}")
        for name, info in zip(n.outputs, result):
            if name:
                env[name] = info
                total = _account(n, name, info, total)
        if extra is not None:
            total = _account(n, "(scratch)", extra, total)
    return env, total
