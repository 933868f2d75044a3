"""Reading a TFLite flatbuffer in pure Python, every offset checked (schema.fbs, version 3).

tflite-runtime 2.14 builds its interpreter from an unverified flatbuffer: an offset pointing outside
the file makes it read wild memory, which kills the process with SIGSEGV -- or not, depending on the
heap layout, so a check process can survive a file that then crashes the serving process (seen in
tests/test_runtime_damage.py). read_tflite walks everything the interpreter follows (tables,
vectors, tensor and operator indices, constant buffers) and returns it as plain data for the
allow-list (runtime/allowlist/tflite.py). Counts are bounded while reading, so a hostile file with
millions of entries is refused before Python builds lists of them."""

from dataclasses import dataclass

from ..limits import (TFLITE_MAX_BUFFERS, TFLITE_MAX_METADATA, TFLITE_MAX_OPERATOR_CODES, TFLITE_MAX_OPERATORS,
                      TFLITE_MAX_SIGNATURES, TFLITE_MAX_SUBGRAPHS, TFLITE_MAX_TENSORS)
from .flatbuf import FlatReader


# The scalar fields of the builtin options tables the allow-list admits: {options type: [(slot, format)]}
# (AddOptions, MulOptions, GatherOptions, FullyConnectedOptions, SplitOptions, UnpackOptions).
OPTION_FIELDS = {11: [(0, "<b"), (1, "<B")], 21: [(0, "<b")], 23: [(0, "<i"), (1, "<i")],
                 8: [(0, "<b"), (1, "<b"), (2, "<B"), (3, "<B"), (4, "<b")], 35: [(0, "<i")], 64: [(0, "<i"), (1, "<i")]}


@dataclass
class OpCode:
    deprecated_code: int
    builtin_code: int
    version: int
    custom_code: object          # bytes or None

    @property
    def code(self):
        """The operator the interpreter runs: TFLite takes the larger of the two code fields."""
        return max(self.deprecated_code, self.builtin_code)


@dataclass
class Tensor:
    shape: list
    type: int
    buffer: int
    name: bytes
    quantization: object         # None or dict(scale, zero_point, min, max, dimension, details)
    is_variable: bool
    sparse: bool
    shape_signature: list
    variant_tensors: bool


@dataclass
class Operator:
    opcode_index: int
    inputs: list
    outputs: list
    options_type: int
    options: tuple               # values of OPTION_FIELDS[options_type] (defaults where absent), else ()
    options2_type: int
    custom_options: int          # bytes of custom options, inline or "large"
    mutating_variable_inputs: int
    intermediates: list


@dataclass
class Subgraph:
    tensors: list
    inputs: list
    outputs: list
    operators: list


@dataclass
class TfliteModel:
    version: int
    opcodes: list
    subgraphs: list
    buffers: list                # size in bytes of each buffer's data
    buffer_offsets: list         # where each buffer's data starts in the file (None when it has none inline)
    external_buffers: list       # indices of buffers whose data lies outside the flatbuffer (offset/size)
    metadata: list               # [(name, buffer index)]
    signatures: list             # [(subgraph index, [input tensor indices], [output tensor indices])]


def _quantization(f, t):
    q = f.subtable(t, 4)
    if q is None:
        return None
    floats = {k: f.ints(q, i, "f") for k, i in (("min", 0), ("max", 1), ("scale", 2))}
    return dict(floats, zero_point=f.ints(q, 3, "q"), details=f.scalar(q, 4, "<B") or f.ref(q, 5) is not None,
                dimension=f.scalar(q, 6, "<i"))


def _tensor(f, t, n_buffers):
    shape, ttype, buf = f.ints(t, 0), f.scalar(t, 1, "<b"), f.scalar(t, 2, "<I")
    if buf >= max(n_buffers, 1):
        raise ValueError(f"a tensor names buffer {buf} of {n_buffers}")
    return Tensor(shape=shape, type=ttype, buffer=buf, name=f.string(t, 3) or b"", quantization=_quantization(f, t),
                  is_variable=bool(f.scalar(t, 5, "<B")), sparse=f.subtable(t, 6) is not None,
                  shape_signature=f.ints(t, 7),
                  variant_tensors=f.present(t, 9))


def _operator(f, op, n_codes, n_tensors):
    index = f.scalar(op, 0, "<I")
    if index >= n_codes:
        raise ValueError(f"an operator names operator code {index} of {n_codes}")
    inputs, outputs, intermediates = f.ints(op, 1), f.ints(op, 2), f.ints(op, 8)
    if any(not -1 <= i < n_tensors for i in inputs + outputs + intermediates):
        raise ValueError("an operator's tensor index is out of range")
    options_type, table = f.scalar(op, 3, "<B"), f.subtable(op, 4)
    options = () if table is None else tuple(f.scalar(table, i, fmt) for i, fmt in OPTION_FIELDS.get(options_type, ()))
    f.subtable(op, 12)
    custom = f.vector(op, 5, 1)
    large_off, large_size = f.scalar(op, 9, "<Q"), f.scalar(op, 10, "<Q")
    if large_off + large_size > f.n:
        raise ValueError("an operator's custom options lie outside the file")
    mutating = f.vector(op, 7, 1)
    return Operator(opcode_index=index, inputs=inputs, outputs=outputs, options_type=options_type, options=options,
                    options2_type=f.scalar(op, 11, "<B"), custom_options=(custom[1] if custom else 0) + large_size,
                    mutating_variable_inputs=mutating[1] if mutating else 0, intermediates=intermediates)


def _subgraph(f, sg, n_codes, n_buffers):
    tensors = [_tensor(f, t, n_buffers) for t in f.tables(sg, 0, TFLITE_MAX_TENSORS, "tensors")]
    inputs, outputs = f.ints(sg, 1), f.ints(sg, 2)
    if any(not 0 <= i < len(tensors) for i in inputs + outputs):
        raise ValueError("a subgraph input/output index is out of range")
    operators = [_operator(f, op, n_codes, len(tensors)) for op in f.tables(sg, 3, TFLITE_MAX_OPERATORS, "operators")]
    f.string(sg, 4)
    return Subgraph(tensors=tensors, inputs=inputs, outputs=outputs, operators=operators)


def read_tflite(data):
    """The TfliteModel in `data`; ValueError if any offset, index or size would lead an interpreter
    outside the file, or a count exceeds its limit (runtime/limits.py, section TFLite allow-list)."""
    f = FlatReader(data)
    if f.n < 8 or bytes(f.d[4:8]) != b"TFL3":
        raise ValueError("no TFL3 file identifier")
    model = f.table(f.u("<I", 0))
    opcodes = []
    for c in f.tables(model, 1, TFLITE_MAX_OPERATOR_CODES, "operator codes"):
        opcodes.append(OpCode(deprecated_code=f.scalar(c, 0, "<b"), builtin_code=f.scalar(c, 3, "<i"),
                              version=f.scalar(c, 2, "<i", default=1), custom_code=f.string(c, 1)))
    buffers, offsets, external = [], [], []
    for i, b in enumerate(f.tables(model, 4, TFLITE_MAX_BUFFERS, "buffers")):
        vec, off, size = f.vector(b, 0, 1), f.scalar(b, 1, "<Q"), f.scalar(b, 2, "<Q")
        if off > 1:
            if off + size > f.n:
                raise ValueError("a buffer's data lies outside the file")
            external.append(i)
        buffers.append(vec[1] if vec else (size if off > 1 else 0))
        offsets.append(vec[0] if vec else None)
    raw_subgraphs = f.tables(model, 2, TFLITE_MAX_SUBGRAPHS, "subgraphs")
    if not raw_subgraphs:
        raise ValueError("no subgraph")
    subgraphs = [_subgraph(f, sg, len(opcodes), len(buffers)) for sg in raw_subgraphs]
    signatures = []
    for sig in f.tables(model, 7, TFLITE_MAX_SIGNATURES, "signatures"):
        sub = f.scalar(sig, 4, "<I")
        if sub >= len(subgraphs):
            raise ValueError("a signature names a missing subgraph")
        ends = []
        for i in (0, 1):
            idx = []
            for m in f.tables(sig, i, TFLITE_MAX_TENSORS, "signature tensors"):
                f.string(m, 0)
                idx.append(f.scalar(m, 1, "<I"))
                if idx[-1] >= len(subgraphs[sub].tensors):
                    raise ValueError("a signature's tensor index is out of range")
            ends.append(idx)
        f.string(sig, 2)
        signatures.append((sub, ends[0], ends[1]))
    metadata = []
    for m in f.tables(model, 6, TFLITE_MAX_METADATA, "metadata entries"):
        name, buf = f.string(m, 0), f.scalar(m, 1, "<I")
        if buf >= len(buffers):
            raise ValueError("a metadata entry names a missing buffer")
        metadata.append((name, buf))
    if any(not 0 <= i < len(buffers) for i in f.ints(model, 5)):
        raise ValueError("a metadata buffer index is out of range")
    f.string(model, 3)
    return TfliteModel(version=f.scalar(model, 0, "<I"), opcodes=opcodes, subgraphs=subgraphs, buffers=buffers,
                       buffer_offsets=offsets,
                       external_buffers=external, metadata=metadata, signatures=signatures)
