"""Static shape inference for the TFLite operators the allow-list admits (runtime/allowlist/tflite.py).

The allow-list bounds the shapes a file DECLARES, but an interpreter does not allocate by them: each
kernel's Prepare recomputes its outputs' shapes from its inputs' shapes and resizes them. So an
allowed operator can amplify: ADD of a [N, 1] and a [1, N] constant resizes its output to [N, N]
whatever the file declares (N = 32768: 4 GiB from 256 KB of weights), GATHER's output is the index
tensor's shape times a row, FULLY_CONNECTED's is [input elements / row, units]. Here every operator's
output shapes are computed as the kernels compute them (TensorFlow Lite's add.cc, mul.cc,
comparisons.cc, select.cc, gather.cc, reshape.cc, fully_connected.cc, split.cc, unpack.cc, and the
element-wise ones) and must EQUAL the declared shapes. The exporter's files are static, so they
always do; with declared sizes bounded, that bounds what the interpreter allocates. An input that
would make an output "dynamic" (sized at run time from data: a RESHAPE shape or SPLIT axis that is
not a constant) is refused, as is any empty dimension (kernels and versions disagree on them).

Operators run in file order (the allow-list checks each reads only tensors already written), and a
mismatch is refused at the first operator, so every input shape seen here is both declared and
what the interpreter computed."""

import struct

INT32 = 2


class ShapeMismatch(ValueError):
    """An operator whose kernel would compute output shapes other than the ones the file declares."""


def _show(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _elements(shape):
    n = 1
    for d in shape:
        n *= d
    return n


class _Op:
    """One operator's view of the file: input shapes, constant int32 values, options."""

    def __init__(self, model, data, constant, n, name, op):
        self.model, self.data, self.constant = model, data, constant
        self.sg = model.subgraphs[0]
        self.n, self.name, self.op = n, name, op
        self.inputs = [None if i < 0 else list(self.sg.tensors[i].shape) for i in op.inputs]

    def refuse(self, why):
        shown = ", ".join("none" if s is None else _show(s) for s in self.inputs)
        raise ShapeMismatch(f"operator {self.n} ({self.name}) with input shapes {shown}: {why}")

    def int32_constant(self, k, what):
        """The values of input `k`, which must be a constant int32 tensor (else the kernel sizes its
        outputs at run time, from data)."""
        i = self.op.inputs[k]
        t = self.sg.tensors[i]
        if i not in self.constant or t.type != INT32:
            self.refuse(f"its {what} (tensor {i}) is not a constant int32 tensor, so the interpreter would size "
                        "the output at run time from data; the exporter always writes a constant")
        count = _elements(t.shape)
        return list(struct.unpack_from(f"<{count}i", self.data, self.model.buffer_offsets[t.buffer]))


def _broadcast(op, a, b):
    """CalculateShapeForBroadcast (kernel_util.cc): align from the right, each pair equal or one 1."""
    if a == b:
        return a
    rank = max(len(a), len(b))
    a1, b1 = [1] * (rank - len(a)) + a, [1] * (rank - len(b)) + b
    out = []
    for x, y in zip(a1, b1):
        if not (x == y or x == 1 or y == 1):
            op.refuse(f"{_show(a)} and {_show(b)} do not broadcast")
        out.append(max(x, y))
    return out


def _binary(op):            # ADD, MUL, LESS: equal shapes, else broadcast
    return [_broadcast(op, op.inputs[0], op.inputs[1])]


def _same(op):              # LOGISTIC, TANH, DEQUANTIZE, QUANTIZE
    return [op.inputs[0]]


def _select(op):
    """SELECT (version one, select.cc): all shapes equal, or a scalar condition, or a rank-one
    condition as long as x's first dimension; x and y equal; the output is x's shape."""
    cond, x, y = op.inputs
    if not (cond == x == y):
        low_rank = len(cond) == 0 or (len(cond) == 1 and x and cond[0] == x[0])
        if not low_rank or x != y:
            op.refuse("SELECT needs equal shapes (or a scalar / first-dimension condition)")
    return [x]


def _gather(op):
    """GATHER on axis 0, batch_dims 0 (the only options allowed): indices' shape + a row's shape."""
    params, indices = op.inputs
    if not params:
        op.refuse("GATHER from a scalar")
    return [indices + params[1:]]


def _reshape(op):
    """RESHAPE (reshape.cc) with its new shape in a constant int32 vector: at most one -1, filled in
    so that the element count is unchanged, which the kernel insists on."""
    data, shape_input = op.inputs
    if len(shape_input) != 1:
        op.refuse("the new shape is not a vector; the exporter always writes one")
    shape = op.int32_constant(1, "new shape")
    if shape.count(-1) > 1 or any(d == 0 or d < -1 for d in shape):
        op.refuse(f"new shape {_show(shape)}: expected positive sizes and at most one -1")
    known = _elements(d for d in shape if d != -1)
    if -1 in shape:
        shape[shape.index(-1)] = _elements(data) // known
    if _elements(shape) != _elements(data):
        op.refuse(f"new shape {_show(shape)} does not hold the input's {_elements(data)} elements")
    return [shape]


def _fully_connected(op):
    """FULLY_CONNECTED with keep_num_dims false (the only option allowed): weights [units, n], the
    input flattened to rows of n, output [rows, units]; a bias has `units` elements."""
    data, weights, bias = (op.inputs + [None])[:3]
    if len(weights) != 2 or weights[1] == 0:
        op.refuse("the weights are not a [units, n] matrix with n > 0")
    units, n = weights
    if _elements(data) % n:
        op.refuse(f"the input's {_elements(data)} elements are not rows of {n}")
    if bias is not None and _elements(bias) != units:
        op.refuse(f"the bias has {_elements(bias)} elements for {units} units")
    return [[_elements(data) // n, units]]


def _split(op):
    """SPLIT (split.cc): a constant scalar axis, that dimension divided evenly among the outputs."""
    axis_input, data = op.inputs
    values = op.int32_constant(0, "axis")
    if len(values) != 1:
        op.refuse("the axis is not one value")
    axis = values[0] + len(data) if values[0] < 0 else values[0]
    parts = len(op.op.outputs)
    if not 0 <= axis < len(data) or data[axis] % parts:
        op.refuse(f"axis {values[0]} cannot be split into {parts} equal parts")
    piece = list(data)
    piece[axis] //= parts
    return [piece] * parts


def _unpack(op):
    """UNPACK (unpack.cc): one output per entry along the axis, each the input without that axis."""
    data = op.inputs[0]
    num, axis = op.op.options
    axis = axis + len(data) if axis < 0 else axis
    if not 0 <= axis < len(data) or data[axis] != num:
        op.refuse(f"unpacking {num} entries along axis {axis}")
    return [data[:axis] + data[axis + 1:]] * num


RULES = {"ADD": _binary, "MUL": _binary, "LESS": _binary, "SELECT": _select, "GATHER": _gather,
         "RESHAPE": _reshape, "FULLY_CONNECTED": _fully_connected, "LOGISTIC": _same, "TANH": _same,
         "SPLIT": _split, "UNPACK": _unpack, "DEQUANTIZE": _same, "QUANTIZE": _same}


def check_shapes(model, data, constant, names):
    """ShapeMismatch unless every operator of `model` (parsed from `data`; `constant` the tensors with
    data, `names` each operator's name) computes exactly the output shapes the file declares."""
    sg = model.subgraphs[0]
    for n, (name, op) in enumerate(zip(names, sg.operators)):
        view = _Op(model, data, constant, n, name, op)
        if any(0 in s for s in view.inputs if s is not None) or any(0 in sg.tensors[i].shape for i in op.outputs):
            view.refuse("an empty dimension; the exporter writes none")
        computed = RULES[name](view)
        declared = [list(sg.tensors[i].shape) for i in op.outputs]
        if len(computed) != len(declared):
            view.refuse(f"the interpreter would compute {len(computed)} outputs where the file has {len(declared)}")
        if computed != declared:
            k = next(k for k, (c, d) in enumerate(zip(computed, declared)) if c != d)
            view.refuse(f"the interpreter would compute output shape {_show(computed[k])} "
                        f"({_elements(computed[k])} elements) where the file declares {_show(declared[k])} "
                        f"for tensor {op.outputs[k]}")
