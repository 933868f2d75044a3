"""TFLite files, checked against what nextword's exporter produces before any interpreter (the
serving process's or a check process's, ai-edge-litert or tflite-runtime) sees a byte.

A well-formed file is not a safe file: tflite-runtime 2.14 dies with SIGSEGV on a small valid model
that GATHERs from a STRING constant once it is fed a real id, and an interpreter kernel trusts types,
quantization scales and buffer sizes it was never meant to meet. So the rule is an allow-list: the
operators (and their versions) the exporter emits for its variants -- unrolled-LSTM window models and
one-step models, float32, float16 (DEQUANTIZE of FLOAT16 constants), dynamic-range int8 and full int8
-- each with the input/output types it is emitted with, the tensor types it uses, constant buffers
exactly as large as their shapes say, one subgraph, bounded counts (runtime/limits.py), and every
operator's output shapes exactly those its kernel computes from its inputs (tflite_shapes.py: else an
allowed operator amplifies a small file into gigabytes). Anything else is refused with a message
naming the offending operator, tensor or type.

Collected from artifacts/seed and from exports with window 1, 8 and 20 and vocabularies up to 2,000
(TF 2.21 converter); tests/test_allowlist_tflite.py checks a fresh export passes."""

import math

from ..errors import VariantUnavailable
from ..limits import (TFLITE_SCALE_RANGE, TFLITE_MAX_ACTIVATION_BYTES, TFLITE_MAX_METADATA_BYTES, TFLITE_MAX_OPERATOR_TENSORS,
                      TFLITE_MAX_RANK, TFLITE_MAX_SUBGRAPH_ENDS, TFLITE_MAX_TENSOR_BYTES)
from .tflite_names import OPERATOR_NAMES, operator_name, type_name
from .tflite_read import OPTION_FIELDS, read_tflite
from .tflite_shapes import ShapeMismatch, check_shapes

F32, F16, I32, I8, BOOL = 0, 1, 2, 9, 6
ITEM_SIZE = {F32: 4, F16: 2, I32: 4, I8: 1, BOOL: 1}      # the tensor types the exporter uses, and no other
OPTIONAL = None                                            # an optional input (tensor index -1), e.g. FC bias
MANY = "many"                                              # operators with one output per split / time step
SCHEMA_VERSION = 3
PLACEHOLDER_FOR_GREATER_OP_CODES = 127
METADATA_NAMES = {b"min_runtime_version", b"CONVERSION_METADATA", b"reduced_precision_support"}

# operator: (versions, builtin options type, outputs (1 or MANY), [(input types..., output type)]);
# an input position may accept several types ({...}) or be OPTIONAL.
ALLOWED_OPS = {
    "ADD": ({1, 2}, 11, 1, [(F32, F32, F32), (I32, I32, I32), (I8, I8, I8)]),
    "MUL": ({1, 2}, 21, 1, [(F32, F32, F32), (I8, I8, I8)]),
    "LESS": ({1}, 0, 1, [(I32, I32, BOOL)]),
    "SELECT": ({1}, 47, 1, [(BOOL, I32, I32, I32)]),
    "GATHER": ({1, 2}, 23, 1, [(F32, I32, F32), (I8, I32, I8)]),
    "RESHAPE": ({1}, 0, 1, [(F32, I32, F32), (I8, I32, I8)]),
    "FULLY_CONNECTED": ({1, 4, 9}, 8, 1, [(F32, {F32, I8}, {F32, OPTIONAL}, F32), (I8, I8, {I32, OPTIONAL}, I8)]),
    "LOGISTIC": ({1, 2}, 0, 1, [(F32, F32), (I8, I8)]),
    "TANH": ({1, 2}, 0, 1, [(F32, F32), (I8, I8)]),
    "SPLIT": ({1, 2}, 35, MANY, [(I32, F32, F32), (I32, I8, I8)]),
    "UNPACK": ({1, 2}, 64, MANY, [(F32, F32), (I8, I8)]),
    "DEQUANTIZE": ({2, 3}, 0, 1, [(I8, F32), (F16, F32)]),
    "QUANTIZE": ({1}, 0, 1, [(F32, I8)]),
}
OPERATOR_CODES = {OPERATOR_NAMES.index(name): name for name in ALLOWED_OPS}
SUBGRAPH_INPUT_TYPES = {I32, F32}       # ids, and the step model's float32 states
SUBGRAPH_OUTPUT_TYPES = {F32}           # logits (and states): float32, never quantized
ZERO_POINT_RANGE = {I8: (-128, 127), I32: (0, 0)}   # types that may carry per-tensor quantization


class NotAllowed(ValueError):
    """A well-formed TFLite file holding something nextword's exporter never produces."""


def _tensor_label(sg, i):
    t = sg.tensors[i]
    name = t.name.decode("utf-8", "replace")[:60]
    return f"tensor {i} ({name!r}, {type_name(t.type)} {t.shape})"


def _elements(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _check_opcodes(model):
    for i, c in enumerate(model.opcodes):
        if c.custom_code is not None or c.code == OPERATOR_NAMES.index("CUSTOM"):
            name = (c.custom_code or b"?").decode("utf-8", "replace")[:60]
            raise NotAllowed(f"custom operator {name!r}: the exporter emits builtin operators only")
        if c.builtin_code < PLACEHOLDER_FOR_GREATER_OP_CODES and c.deprecated_code != c.builtin_code:
            raise NotAllowed(f"operator code entry {i} gives two different operators ({operator_name(c.deprecated_code)} "
                             f"and {operator_name(c.builtin_code)})")
        if c.code not in OPERATOR_CODES:
            raise NotAllowed(f"operator {operator_name(c.code)} is not one the exporter produces (allowed: "
                             f"{', '.join(sorted(ALLOWED_OPS))})")
        versions = ALLOWED_OPS[OPERATOR_CODES[c.code]][0]
        if c.version not in versions:
            raise NotAllowed(f"operator {OPERATOR_CODES[c.code]} version {c.version} is not one the exporter produces "
                             f"(allowed: {sorted(versions)})")


def _check_quantization(sg, i):
    t, q = sg.tensors[i], sg.tensors[i].quantization
    if q is None or not (q["scale"] or q["zero_point"] or q["min"] or q["max"] or q["details"] or q["dimension"]):
        return
    if q["min"] or q["max"] or q["details"] or q["dimension"] or len(q["scale"]) != 1 or len(q["zero_point"]) != 1:
        raise NotAllowed(f"{_tensor_label(sg, i)} has quantization the exporter never writes (it writes one scale and "
                         "one zero point per tensor)")
    low, high = ZERO_POINT_RANGE.get(t.type, (1, 0))
    scale, zero = q["scale"][0], q["zero_point"][0]
    least, most = TFLITE_SCALE_RANGE
    if not low <= zero <= high or not (math.isfinite(scale) and least <= scale <= most):
        holds = f"{low} .. {high}" if low <= high else "none: this type carries no quantization"
        raise NotAllowed(f"{_tensor_label(sg, i)} has quantization scale {scale:g} and zero point {zero}; expected a "
                         f"scale in [{least:g}, {most:g}] and a zero point the type can hold ({holds})")


def _check_tensors(model, sg):
    constant = set()
    activation = 0
    for i, t in enumerate(sg.tensors):
        if t.type not in ITEM_SIZE:
            raise NotAllowed(f"{_tensor_label(sg, i)}: type {type_name(t.type)} is not one the exporter produces "
                             f"(allowed: {', '.join(type_name(k) for k in sorted(ITEM_SIZE))})")
        if len(t.shape) > TFLITE_MAX_RANK or any(d < 0 for d in t.shape):
            raise NotAllowed(f"{_tensor_label(sg, i)}: expected at most {TFLITE_MAX_RANK} non-negative dimensions")
        if t.is_variable or t.sparse or t.variant_tensors or (t.shape_signature and t.shape_signature != t.shape):
            raise NotAllowed(f"{_tensor_label(sg, i)} is variable, sparse or dynamically shaped; the exporter writes "
                             "none of these")
        size = _elements(t.shape) * ITEM_SIZE[t.type]
        if size > TFLITE_MAX_TENSOR_BYTES:
            raise NotAllowed(f"{_tensor_label(sg, i)} declares {size} bytes (at most {TFLITE_MAX_TENSOR_BYTES})")
        _check_quantization(sg, i)
        data = model.buffers[t.buffer] if t.buffer else 0
        if data:
            if data != size:
                raise NotAllowed(f"{_tensor_label(sg, i)} has {data} bytes of constant data; its shape and type "
                                 f"need {size}")
            constant.add(i)
        else:
            activation += size
    if activation > TFLITE_MAX_ACTIVATION_BYTES:
        raise NotAllowed(f"the non-constant tensors declare {activation} bytes (at most {TFLITE_MAX_ACTIVATION_BYTES})")
    return constant


def _matches(signature, types):
    *want_in, want_out = signature
    if len(want_in) != len(types):
        return False
    return all(got == want or (isinstance(want, set) and got in want) for got, want in zip(types, want_in))


def _options_ok(name, op, sg):
    """The options the exporter writes: no fused activations, default weight format, GATHER on axis 0,
    SPLIT and UNPACK counts equal to their outputs."""
    values = op.options or tuple(0 for _ in OPTION_FIELDS.get(op.options_type, ()))
    if name in ("ADD", "MUL", "GATHER"):
        return all(v == 0 for v in values)
    if name == "FULLY_CONNECTED":
        fused, weights_format, keep_dims, asymmetric, bias_type = values
        return fused == weights_format == keep_dims == bias_type == 0 and asymmetric in (0, 1)
    if name == "SPLIT":
        return values[0] == len(op.outputs)
    if name == "UNPACK":
        return values[0] == len(op.outputs) and 0 <= values[1] < len(sg.tensors[op.inputs[0]].shape)
    return True


def _check_operators(model, sg, constant):
    ready = set(sg.inputs) | constant          # tensors holding a value before the next operator runs
    for n, op in enumerate(sg.operators):
        name = OPERATOR_CODES[model.opcodes[op.opcode_index].code]
        _, options, outputs, signatures = ALLOWED_OPS[name]
        where = f"operator {n} ({name})"
        if op.options_type != options or op.options2_type or op.custom_options or op.mutating_variable_inputs \
                or op.intermediates:
            raise NotAllowed(f"{where} carries options, custom data or intermediates the exporter never writes")
        if len(op.inputs) + len(op.outputs) > TFLITE_MAX_OPERATOR_TENSORS:
            raise NotAllowed(f"{where} has {len(op.inputs) + len(op.outputs)} tensors "
                             f"(at most {TFLITE_MAX_OPERATOR_TENSORS})")
        if not op.outputs or (outputs == 1 and len(op.outputs) != 1) or -1 in op.outputs:
            raise NotAllowed(f"{where} has {len(op.outputs)} outputs {op.outputs}")
        for i in op.inputs:
            if i >= 0 and i not in ready:
                raise NotAllowed(f"{where} reads {_tensor_label(sg, i)} before anything wrote it")
        for i in op.outputs:
            if i in ready:
                raise NotAllowed(f"{where} writes {_tensor_label(sg, i)}, which is an input, a constant or "
                                 "written by an earlier operator")
            ready.add(i)
        in_types = [None if i < 0 else sg.tensors[i].type for i in op.inputs]
        out_types = {sg.tensors[i].type for i in op.outputs}
        if len(out_types) != 1 or not any(_matches(s, in_types) and s[-1] in out_types for s in signatures):
            got = ", ".join("none" if t is None else type_name(t) for t in in_types)
            raise NotAllowed(f"{where} reads ({got}) and writes {', '.join(type_name(t) for t in sorted(out_types))}; "
                             "the exporter never emits it with those types")
        if not _options_ok(name, op, sg):
            raise NotAllowed(f"{where} has options {op.options} the exporter never writes")
    missing = [i for i in sg.outputs if i not in ready]
    if missing:
        raise NotAllowed(f"the model's output {_tensor_label(sg, missing[0])} is never written")


def _check_ends(sg, constant):
    if not 1 <= len(sg.inputs) <= TFLITE_MAX_SUBGRAPH_ENDS or not 1 <= len(sg.outputs) <= TFLITE_MAX_SUBGRAPH_ENDS \
            or len(set(sg.inputs)) != len(sg.inputs) or len(set(sg.outputs)) != len(sg.outputs):
        raise NotAllowed(f"the model has inputs {sg.inputs} and outputs {sg.outputs}; expected 1 to "
                         f"{TFLITE_MAX_SUBGRAPH_ENDS} distinct tensors each")
    for ends, allowed, what in ((sg.inputs, SUBGRAPH_INPUT_TYPES, "input"), (sg.outputs, SUBGRAPH_OUTPUT_TYPES, "output")):
        for i in ends:
            if sg.tensors[i].type not in allowed or i in constant:
                raise NotAllowed(f"model {what} {_tensor_label(sg, i)} is not a non-constant "
                                 f"{' or '.join(type_name(t) for t in sorted(allowed))} tensor")


def check_tflite_structure(data):
    """Raise ValueError if `data` is not a well-formed TFLite file (an offset, index or size an
    interpreter would follow outside it) or holds anything nextword's exporter never produces
    (NotAllowed, a ValueError). Returns the parsed model."""
    model = read_tflite(data)
    if model.version != SCHEMA_VERSION:
        raise NotAllowed(f"schema version {model.version}; expected {SCHEMA_VERSION}")
    _check_opcodes(model)
    if model.buffers and model.buffers[0]:
        raise NotAllowed("buffer 0 (the empty buffer by convention) holds data")
    if model.external_buffers:
        raise NotAllowed("a buffer's data lies outside the flatbuffer (offset/size); the exporter never writes that")
    for name, buf in model.metadata:
        if name not in METADATA_NAMES or model.buffers[buf] > TFLITE_MAX_METADATA_BYTES:
            shown = (name or b"").decode("utf-8", "replace")[:60]
            raise NotAllowed(f"metadata {shown!r} ({model.buffers[buf]} bytes) is not one the exporter writes")
    sg = model.subgraphs[0]
    constant = _check_tensors(model, sg)
    _check_ends(sg, constant)
    _check_operators(model, sg, constant)
    names = [OPERATOR_CODES[model.opcodes[op.opcode_index].code] for op in sg.operators]
    try:
        check_shapes(model, data, constant, names)
    except ShapeMismatch as e:
        raise NotAllowed(str(e)) from None
    return model


def check_tflite(data, file, package):
    """VariantUnavailable unless `data` passes check_tflite_structure: nothing the exporter did not
    write reaches `package`'s interpreter (nor a check process)."""
    try:
        return check_tflite_structure(data)
    except NotAllowed as e:
        raise VariantUnavailable(f"{file} is refused before {package} sees it: {e}") from None
    except Exception as e:  # pure Python: a malformed file is an exception here, not a crash
        raise VariantUnavailable(f"{file} is not a well-formed TFLite file ({e}); {package} would read outside it, "
                                 "so it is refused") from None
