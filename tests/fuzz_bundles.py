#!/usr/bin/env python3
"""A structure-aware fuzzer for nextword bundles: it mutates one model file of a bundle (TFLite
flatbuffer fields in place, ONNX protobuf fields re-serialized, plus byte-level edits), rewrites the
manifest's sha256 and size for it ("rehashed": hashes stop accidents, not attacks), and runs the
installed runtime on the result in a child process, so a crash, a hang or a memory blow-up is seen
from outside instead of taking the fuzzer down.

Each case ends in one class: typed (a NextwordError: expected), ok (loaded and answered sanely),
crash (the child died on a signal or exited without a word), hang (no answer within --timeout),
untyped (any other exception: a bug), insane (an answer that is not a vocabulary word, a probability
that is not finite in [0, 1], a wrong count), escape (an ONNX model pointing at external data
loaded: bytes from outside the verified file reached the interpreter).

Case i of seed S is always the same mutation (random.Random(f"{S}:{i}")), so a finding is
reproduced with `--seed S --only i --package P`.

    .venv-runtime/bin/python tests/fuzz_bundles.py --bundle artifacts/seed --cases 2000 --seed 1 --out report.json

Imports only the installed nextword package, numpy and the standard library (tests are not part of
the wheel)."""

import argparse
import copy
import hashlib
import json
import math
import os
import random
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback

from nextword.runtime.backends import available_packages, import_package
from nextword.runtime.errors import NextwordError
from nextword.runtime.predictor import Predictor

BAD = ("crash", "hang", "untyped", "insane", "escape")
OUTCOMES = ("typed", "ok") + BAD
CHILD_MEMORY_BYTES = 3 << 30          # address-space cap of a worker: a blow-up is a MemoryError, not a dead machine
CANARY = "canary.bin"                 # a file in the worker's working directory, named by external-data mutations

# ==========================================================================================
# TFLite: a generic flatbuffer walk over the schema fields nextword's files use
# ==========================================================================================
# field index -> (name, kind, argument); kinds: s scalar (struct code), t table, vt vector of tables,
# vs vector of scalars (struct code), str string, opaque a union table walked without a schema.
TFLITE_SCHEMA = {
    "Model": {0: ("version", "s", "<I"), 1: ("operator_codes", "vt", "OperatorCode"),
              2: ("subgraphs", "vt", "SubGraph"), 3: ("description", "str", None),
              4: ("buffers", "vt", "Buffer"), 5: ("metadata_buffer", "vs", "<i"),
              6: ("metadata", "vt", "Metadata"), 7: ("signature_defs", "vt", "SignatureDef")},
    "OperatorCode": {0: ("deprecated_builtin_code", "s", "<b"), 1: ("custom_code", "str", None),
                     2: ("version", "s", "<i"), 3: ("builtin_code", "s", "<i")},
    "SubGraph": {0: ("tensors", "vt", "Tensor"), 1: ("inputs", "vs", "<i"), 2: ("outputs", "vs", "<i"),
                 3: ("operators", "vt", "Operator"), 4: ("name", "str", None)},
    "Tensor": {0: ("shape", "vs", "<i"), 1: ("type", "s", "<b"), 2: ("buffer", "s", "<I"),
               3: ("name", "str", None), 4: ("quantization", "t", "Quantization"),
               5: ("is_variable", "s", "<B"), 7: ("shape_signature", "vs", "<i"), 8: ("has_rank", "s", "<B")},
    "Quantization": {0: ("min", "vs", "<f"), 1: ("max", "vs", "<f"), 2: ("scale", "vs", "<f"),
                     3: ("zero_point", "vs", "<q"), 6: ("quantized_dimension", "s", "<i")},
    "Operator": {0: ("opcode_index", "s", "<I"), 1: ("inputs", "vs", "<i"), 2: ("outputs", "vs", "<i"),
                 3: ("builtin_options_type", "s", "<B"), 4: ("builtin_options", "opaque", None),
                 5: ("custom_options", "vs", "<B"), 7: ("mutating_variable_inputs", "vs", "<B"),
                 8: ("intermediates", "vs", "<i")},
    "Buffer": {0: ("data", "vs", "<B"), 1: ("offset", "s", "<Q"), 2: ("size", "s", "<Q")},
    "Metadata": {0: ("name", "str", None), 1: ("buffer", "s", "<I")},
    "SignatureDef": {0: ("inputs", "vt", "TensorMap"), 1: ("outputs", "vt", "TensorMap"),
                     2: ("signature_key", "str", None), 4: ("subgraph_index", "s", "<I")},
    "TensorMap": {0: ("name", "str", None), 1: ("tensor_index", "s", "<I")},
}
TFLITE_TYPES = {"FLOAT32": 0, "FLOAT16": 1, "INT32": 2, "UINT8": 3, "INT64": 4, "STRING": 5, "BOOL": 6,
                "INT16": 7, "COMPLEX64": 8, "INT8": 9, "FLOAT64": 10, "COMPLEX128": 11, "UINT64": 12,
                "RESOURCE": 13, "VARIANT": 14, "UINT32": 15, "UINT16": 16, "INT4": 17, "unknown-99": 99}
TFLITE_OPS = {"ADD": 0, "CONCATENATION": 2, "DEQUANTIZE": 6, "FULLY_CONNECTED": 9, "LOGISTIC": 14,
              "MUL": 18, "RESHAPE": 22, "TANH": 28, "CUSTOM": 32, "GATHER": 36, "SPLIT": 49, "LESS": 58,
              "SELECT": 64, "UNPACK": 88, "IF": 118, "WHILE": 119, "CALL_ONCE": 129, "VAR_HANDLE": 142,
              "READ_VARIABLE": 143, "ASSIGN_VARIABLE": 144, "STABLEHLO_WHILE": 200, "unknown-4000": 4000,
              "negative": -1}


class Site:
    """One place in a file a mutation can change: `count` items of struct code `fmt` at byte `pos`."""

    __slots__ = ("tag", "path", "pos", "fmt", "count")

    def __init__(self, tag, path, pos, fmt, count=1):
        self.tag, self.path, self.pos, self.fmt, self.count = tag, path, pos, fmt, count

    def size(self):
        return struct.calcsize(self.fmt)

    def read(self, data, k=0):
        return struct.unpack_from(self.fmt, data, self.pos + k * self.size())[0]

    def write(self, data, value, k=0):
        struct.pack_into(self.fmt, data, self.pos + k * self.size(), value)

    def __repr__(self):
        return f"Site({self.tag} {self.path} @{self.pos} {self.fmt}x{self.count})"


def tflite_sites(data):
    """Every field of TFLITE_SCHEMA present in the flatbuffer `data`, as Sites (tags like
    "Tensor.type"; a vector gives one site for its items and one "...#len" for its length word;
    "vtable" sites are field offsets). Raises on a malformed file (the seed files are well formed)."""
    sites, seen = [], set()

    def u(fmt, pos):
        if pos < 0 or pos + struct.calcsize(fmt) > len(data):
            raise ValueError(f"offset {pos} outside the file")
        return struct.unpack_from(fmt, data, pos)[0]

    def fields(pos):
        vt = pos - u("<i", pos)
        vsize, tsize = u("<H", vt), u("<H", vt + 2)
        out = {}
        for i in range((vsize - 4) // 2):
            off = u("<H", vt + 4 + 2 * i)
            if off:
                out[i] = (off, vt + 4 + 2 * i)
        return out, tsize

    def vector(tag, path, p, fmt):
        target = p + u("<I", p)
        count = u("<I", target)
        sites.append(Site(tag + "#len", path, target, "<I"))
        if count:
            sites.append(Site(tag, path, target + 4, fmt, count))
        return target, count

    def table(pos, name, path):
        if (pos, name) in seen:
            return
        seen.add((pos, name))
        sites.append(Site("table:" + name, path, pos, "<i"))
        present, _ = fields(pos)
        for i, (fname, kind, arg) in TFLITE_SCHEMA[name].items():
            if i not in present:
                continue
            off, vt_entry = present[i]
            p, tag, fpath = pos + off, f"{name}.{fname}", f"{path}.{fname}"
            sites.append(Site("vtable", fpath, vt_entry, "<H"))
            if kind == "s":
                sites.append(Site(tag, fpath, p, arg))
            elif kind == "t":
                table(p + u("<I", p), arg, fpath)
            elif kind == "opaque":
                opaque(p + u("<I", p), tag, fpath)
            elif kind == "vt":
                target = p + u("<I", p)
                sites.append(Site(tag + "#len", fpath, target, "<I"))
                for k in range(u("<I", target)):
                    q = target + 4 + 4 * k
                    table(q + u("<I", q), arg, f"{fpath}[{k}]")
            elif kind == "vs":
                vector(tag, fpath, p, arg)
            elif kind == "str":
                vector(tag, fpath, p, "<B")

    def opaque(pos, tag, path):
        """A union table (builtin options) walked by its vtable alone: field widths are guessed from
        the gaps between field offsets (1, 2, 4 or 8 bytes)."""
        present, tsize = fields(pos)
        offs = sorted(off for off, _ in present.values())
        for off in offs:
            later = [o for o in offs if o > off]
            gap = (later[0] if later else tsize) - off
            fmt = {1: "<b", 2: "<h", 3: "<h"}.get(gap, "<i") if gap < 8 else "<i"
            sites.append(Site(tag + ".field", f"{path}@{off}", pos + off, fmt))

    if len(data) < 8 or bytes(data[4:8]) != b"TFL3":
        raise ValueError("not a TFLite file")
    table(u("<I", 0), "Model", "model")
    return sites


def _pick(rng, sites, *tags):
    found = [s for s in sites if s.tag in tags]
    return rng.choice(found) if found else None


def _boundary(rng, fmt, current, valid=None):
    """A value for a field of struct code `fmt`: type limits, 0/±1, a neighbour, another valid index."""
    bits = struct.calcsize(fmt) * 8
    if fmt in ("<f", "<d"):
        return rng.choice([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-45, 3.4e38, -1.0, current * 1000.0])
    signed = fmt.lower() == fmt
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    options = [lo, hi, 0, 1, current + 1, current - 1, current * 2, rng.randint(lo, hi)]
    if signed:
        options.append(-1)
    if valid:
        options += [rng.randrange(valid), valid, valid - 1]
    return min(hi, max(lo, rng.choice(options)))


def _tflite_counts(data, sites):
    """(tensors in subgraph 0, operator codes, buffers) for choosing 'another valid index'."""
    counts = {}
    for s in sites:
        if s.tag in ("Model.operator_codes#len", "Model.buffers#len", "Model.subgraphs#len"):
            counts.setdefault(s.tag[6:-4], s.read(data))
        elif s.tag == "SubGraph.tensors#len" and s.path.startswith("model.subgraphs[0]"):
            counts.setdefault("tensors", s.read(data))
    return counts


def _set(site, data, value, k=0):
    before = site.read(data, k)
    site.write(data, value, k)
    where = f"{site.path}[{k}]" if site.count > 1 else site.path
    return f"{where}: {before!r} -> {value!r}"


def site_at(sites, path, tag=None):
    """The site at `path` (e.g. "model.subgraphs[0].tensors[0].type"), or None."""
    return next((s for s in sites if s.path == path and (tag is None or s.tag == tag) and s.tag != "vtable"), None)


def tflite_force_type(rng, data, sites, name=None, type_name=None):
    """Give a tensor whose type field is absent (FLOAT32, the default, is not written) a type: a copy
    of its vtable is appended to `data` with the type entry pointing at the tensor's has_rank byte,
    which is set to the new type (so has_rank stays true). The file grows by the vtable's size."""
    tables = {s.path: s for s in sites if s.tag == "table:Tensor"}
    typed = {s.path.rsplit(".", 1)[0] for s in sites if s.tag == "Tensor.type"}
    ranks = {s.path.rsplit(".", 1)[0]: s for s in sites if s.tag == "Tensor.has_rank"}
    choices = sorted(p for p in tables if p not in typed and p in ranks)
    if not choices:
        return tflite_mutate_structure(rng, data, sites, {})
    name = name or rng.choice(choices)
    pos, rank = tables[name].pos, ranks[name]
    vt = pos - struct.unpack_from("<i", data, pos)[0]
    vsize = struct.unpack_from("<H", data, vt)[0]
    new_vt = bytearray(data[vt:vt + vsize])
    struct.pack_into("<H", new_vt, 4 + 2 * 1, rank.pos - pos)
    while len(data) % 4:
        data.append(0)
    at = len(data)
    data += new_vt
    struct.pack_into("<i", data, pos, pos - at)
    name_t = type_name or rng.choice(list(TFLITE_TYPES))
    data[rank.pos] = TFLITE_TYPES[name_t] & 0xFF
    return f"tensor type forced on {name} ({name_t}) with a vtable appended at {at}"


def tflite_mutate_structure(rng, data, sites, counts):
    """One in-place (same length) field mutation; returns its description."""
    kinds = ["tensor_type", "tensor_type_forced", "tensor_buffer", "opcode", "opcode_version", "opcode_index",
             "op_io", "op_io_swap",
             "graph_io", "shape", "quantization", "buffer_data", "signature", "options", "vector_len", "vtable",
             "scalar", "string"]
    for _ in range(20):
        kind = rng.choice(kinds)
        if kind == "tensor_type":
            s = _pick(rng, sites, "Tensor.type")
            if s:
                name = rng.choice(list(TFLITE_TYPES))
                return "tensor type " + _set(s, data, TFLITE_TYPES[name]) + f" ({name})"
        elif kind == "tensor_type_forced":
            return tflite_force_type(rng, data, sites)
        elif kind == "tensor_buffer":
            s = _pick(rng, sites, "Tensor.buffer")
            if s:
                return "tensor buffer " + _set(s, data, _boundary(rng, s.fmt, s.read(data), counts.get("buffers")))
        elif kind == "opcode":
            s = _pick(rng, sites, "OperatorCode.builtin_code", "OperatorCode.deprecated_builtin_code")
            if s:
                name = rng.choice(list(TFLITE_OPS))
                value = TFLITE_OPS[name] if s.fmt == "<i" else max(-128, min(127, TFLITE_OPS[name]))
                return "opcode " + _set(s, data, value) + f" ({name})"
        elif kind == "opcode_version":
            s = _pick(rng, sites, "OperatorCode.version")
            if s:
                return "op version " + _set(s, data, rng.choice([0, 1, 2, 3, 4, 5, 7, 12, 99, -1, 2 ** 31 - 1]))
        elif kind == "opcode_index":
            s = _pick(rng, sites, "Operator.opcode_index")
            if s:
                value = _boundary(rng, s.fmt, s.read(data), counts.get("operator_codes"))
                return "opcode_index " + _set(s, data, value)
        elif kind in ("op_io", "graph_io", "shape"):
            tags = {"op_io": ("Operator.inputs", "Operator.outputs", "Operator.intermediates"),
                    "graph_io": ("SubGraph.inputs", "SubGraph.outputs"),
                    "shape": ("Tensor.shape", "Tensor.shape_signature")}[kind]
            s = _pick(rng, sites, *tags)
            if s:
                k = rng.randrange(s.count)
                if kind == "shape":
                    value = rng.choice([0, -1, 1, 2, 3, 1 << 20, 2 ** 31 - 1, -2 ** 31, s.read(data, k) * 2 + 1])
                else:
                    value = _boundary(rng, s.fmt, s.read(data, k), counts.get("tensors"))
                return f"{kind} " + _set(s, data, value, k)
        elif kind == "op_io_swap":
            s = _pick(rng, sites, "Operator.inputs", "Operator.outputs", "SubGraph.inputs", "SubGraph.outputs")
            others = [o for o in sites if o.tag in ("Operator.inputs", "Operator.outputs")]
            if s and others:
                o = rng.choice(others)
                k, j = rng.randrange(s.count), rng.randrange(o.count)
                a, b = s.read(data, k), o.read(data, j)
                s.write(data, b, k)
                o.write(data, a, j)
                return f"swap {s.path}[{k}]={a} with {o.path}[{j}]={b}"
        elif kind == "quantization":
            s = _pick(rng, sites, "Quantization.scale", "Quantization.zero_point", "Quantization.min",
                      "Quantization.max", "Quantization.quantized_dimension")
            if s:
                k = rng.randrange(s.count)
                return "quantization " + _set(s, data, _boundary(rng, s.fmt, s.read(data, k)), k)
        elif kind == "buffer_data":
            s = _pick(rng, sites, "Buffer.data")
            if s and s.count >= 4:
                how = rng.choice(["nan", "inf", "random", "zeros", "ff", "huge"])
                start = rng.randrange(0, s.count - 3) & ~3 if rng.random() < 0.5 else 0
                end = s.count if rng.random() < 0.5 else min(s.count, start + 4 * rng.randint(1, 16))
                end = start + ((end - start) & ~3) or start + 4
                fill = {"nan": struct.pack("<f", math.nan), "inf": struct.pack("<f", math.inf),
                        "zeros": b"\0\0\0\0", "ff": b"\xff\xff\xff\xff", "huge": struct.pack("<f", 3e38)}.get(how)
                for p in range(s.pos + start, s.pos + end, 4):
                    data[p:p + 4] = fill if fill else bytes(rng.getrandbits(8) for _ in range(4))
                return f"buffer data {s.path}[{start}:{end}] of {s.count} bytes := {how}"
        elif kind == "signature":
            s = _pick(rng, sites, "TensorMap.tensor_index", "SignatureDef.subgraph_index", "Metadata.buffer")
            if s:
                return "signature " + _set(s, data, _boundary(rng, s.fmt, s.read(data), counts.get("tensors")))
        elif kind == "options":
            s = _pick(rng, sites, "Operator.builtin_options.field", "Operator.builtin_options_type")
            if s:
                return "options " + _set(s, data, _boundary(rng, s.fmt, s.read(data)))
        elif kind == "vector_len":
            s = rng.choice([x for x in sites if x.tag.endswith("#len")])
            n = s.read(data)
            return "vector length " + _set(s, data, rng.choice([0, n + 1, max(0, n - 1), n * 2, 2 ** 31, 2 ** 32 - 1]))
        elif kind == "vtable":
            s = _pick(rng, sites, "vtable")
            value = rng.choice([0, 2, 4, s.read(data) + 4, 0xFFFF, rng.randrange(64)])
            return "vtable entry of " + _set(s, data, value)
        elif kind == "scalar":
            s = rng.choice([x for x in sites if x.count == 1 and not x.tag.endswith("#len") and x.tag != "vtable"])
            return "scalar " + _set(s, data, _boundary(rng, s.fmt, s.read(data)))
        elif kind == "string":
            s = _pick(rng, sites, "Tensor.name", "TensorMap.name", "SignatureDef.signature_key",
                      "OperatorCode.custom_code", "Metadata.name")
            if s:
                k = rng.randrange(s.count)
                value = rng.choice([0, 0x1B, 0xFF, 0x2F, 0x2E, rng.randrange(256)])
                data[s.pos + k] = value
                return f"string {s.path}[{k}] := {value:#x}"
    raise RuntimeError("no applicable TFLite mutation")


# ==========================================================================================
# ONNX: protobuf wire format as a tree, with the ModelProto fields that name sub-messages
# ==========================================================================================
# message -> {field number: sub-message}; other length-delimited fields stay bytes.
ONNX_SCHEMA = {
    "Model": {7: "Graph", 8: "OpsetId", 14: "Entry", 25: "Function"},
    "OpsetId": {}, "Entry": {},
    "Graph": {1: "Node", 5: "Tensor", 11: "ValueInfo", 12: "ValueInfo", 13: "ValueInfo"},
    "Node": {5: "Attribute"},
    "Attribute": {5: "Tensor", 6: "Graph", 10: "Tensor", 11: "Graph", 14: "Type"},
    "Tensor": {13: "Entry"},
    "ValueInfo": {2: "Type"},
    "Type": {1: "TensorType"},
    "TensorType": {2: "Shape"},
    "Shape": {1: "Dim"},
    "Dim": {},
    "Function": {7: "Node", 9: "OpsetId", 11: "Attribute"},
}
ONNX_TYPES = list(range(0, 24)) + [99]
ONNX_OPS = [b"Loop", b"If", b"Scan", b"NoSuchOp", b"", b"Gather", b"Reshape", b"Identity", b"Cast", b"LSTM",
            b"MatMul", b"Add", b"Shape", b"ConstantOfShape", b"Tile", b"Expand", b"Range", b"TopK", b"Split"]
ONNX_DOMAINS = [b"", b"ai.onnx", b"ai.onnx.ml", b"com.microsoft", b"com.microsoft.nchwc", b"ai.onnx.preview.training",
                b"evil.example", b"\x1b[2J"]
EXTERNAL_LOCATIONS = [CANARY.encode(), b"vocab.json", b"manifest.json", b"../" + CANARY.encode(), b"/etc/hostname",
                      b"missing.bin", b"./" + CANARY.encode()]


class Msg:
    """A parsed protobuf message: a list of [field, wire type, value] in file order; value is an int
    (varint), bytes (fixed32/64 and unparsed length-delimited) or a Msg (a known sub-message)."""

    __slots__ = ("name", "fields")

    def __init__(self, name, fields):
        self.name, self.fields = name, fields

    def get(self, num):
        return [f for f in self.fields if f[0] == num]

    def first(self, num, default=None):
        got = self.get(num)
        return got[0][2] if got else default

    def put(self, num, wire, value):
        """Replace the first occurrence of field `num` (or append it)."""
        for f in self.fields:
            if f[0] == num:
                f[1], f[2] = wire, value
                return
        self.fields.append([num, wire, value])

    def drop(self, num):
        self.fields = [f for f in self.fields if f[0] != num]


def _read_varint(data, pos):
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


def _varint(value):
    value &= (1 << 64) - 1   # negative int64 values take ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_parse(data, name="Model"):
    """The tree of `data` as message `name` (see ONNX_SCHEMA)."""
    fields, pos, sub = [], 0, ONNX_SCHEMA.get(name, {})
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire == 1:
            value, pos = bytes(data[pos:pos + 8]), pos + 8
        elif wire == 5:
            value, pos = bytes(data[pos:pos + 4]), pos + 4
        elif wire == 2:
            n, pos = _read_varint(data, pos)
            if pos + n > len(data):
                raise ValueError("length-delimited field runs past the end")
            value, pos = bytes(data[pos:pos + n]), pos + n
            if num in sub:
                value = pb_parse(value, sub[num])
        else:
            raise ValueError(f"wire type {wire}")
        fields.append([num, wire, value])
    return Msg(name, fields)


def pb_serialize(msg):
    out = bytearray()
    for num, wire, value in msg.fields:
        out += _varint(num << 3 | wire)
        if wire == 0:
            out += _varint(value)
        elif wire == 2:
            body = pb_serialize(value) if isinstance(value, Msg) else value
            out += _varint(len(body)) + body
        else:
            out += value
    return bytes(out)


def pb_walk(msg, path="model"):
    """(message, path) for every message in the tree, depth first."""
    yield msg, path
    for i, (num, _, value) in enumerate(msg.fields):
        if isinstance(value, Msg):
            yield from pb_walk(value, f"{path}.{value.name}#{num}[{i}]")


def pb_ints(msg, num):
    """A repeated int64 field, packed or not, as a list."""
    out = []
    for _, wire, value in msg.get(num):
        if wire == 0:
            out.append(value)
        else:
            pos = 0
            while pos < len(value):
                v, pos = _read_varint(value, pos)
                out.append(v)
    return [v - (1 << 64) if v >= 1 << 63 else v for v in out]


def pb_set_ints(msg, num, values):
    """Rewrite a repeated int64 field (unpacked, where the field stood first)."""
    idx = next((i for i, f in enumerate(msg.fields) if f[0] == num), len(msg.fields))
    msg.fields = [f for f in msg.fields if f[0] != num]
    msg.fields[idx:idx] = [[num, 0, v] for v in values]


def _entry(key, value):
    return Msg("Entry", [[1, 2, key], [2, 2, value]])


def _loop_node(rng, graph, name):
    """A Loop that counts to a huge trip count (the issue's hang) with one loop-carried int64."""
    big, init = f"{name}_M".encode(), f"{name}_v0".encode()
    scalar = lambda n, v: Msg("Tensor", [[2, 0, 7], [8, 2, n], [9, 2, struct.pack("<q", v)]])
    bool_t = Msg("Tensor", [[2, 0, 9], [8, 2, f"{name}_c".encode()], [9, 2, b"\x01"]])
    graph.fields[0:0] = [[5, 2, scalar(big, rng.choice([2 ** 62, 2 ** 40, 10 ** 9]))], [5, 2, scalar(init, 0)],
                         [5, 2, bool_t]]

    def vi(n, elem):   # a scalar: an empty shape
        tensor_type = Msg("TensorType", [[1, 0, elem], [2, 2, Msg("Shape", [])]])
        return Msg("ValueInfo", [[1, 2, n], [2, 2, Msg("Type", [[1, 2, tensor_type]])]])
    body = Msg("Graph", [
        [1, 2, Msg("Node", [[1, 2, b"c_in"], [2, 2, b"c_out"], [4, 2, b"Identity"]])],
        [1, 2, Msg("Node", [[1, 2, b"v_in"], [2, 2, b"v_out"], [4, 2, b"Identity"]])],
        [2, 2, b"body"], [11, 2, vi(b"i", 7)], [11, 2, vi(b"c_in", 9)], [11, 2, vi(b"v_in", 7)],
        [12, 2, vi(b"c_out", 9)], [12, 2, vi(b"v_out", 7)]])
    attr = Msg("Attribute", [[1, 2, b"body"], [20, 0, 5], [6, 2, body]])
    node = Msg("Node", [[1, 2, big], [1, 2, f"{name}_c".encode()], [1, 2, init], [2, 2, f"{name}_out".encode()],
                        [3, 2, name.encode()], [4, 2, b"Loop"], [5, 2, attr]])
    return node


def onnx_mutate_structure(rng, model):
    """One field mutation of the parsed model (in the tree); returns its description."""
    msgs = list(pb_walk(model))
    by = {}
    for m, path in msgs:
        by.setdefault(m.name, []).append((m, path))
    graph = model.first(7)
    kinds = ["op_type", "domain", "opset", "ir_version", "data_type", "dims", "raw_data", "external", "attribute",
             "names", "node_list", "value_info", "initializer_list", "loop"]
    for _ in range(20):
        kind = rng.choice(kinds)
        if kind == "op_type" and "Node" in by:
            m, path = rng.choice(by["Node"])
            new = rng.choice(ONNX_OPS + [rng.choice(by["Node"])[0].first(4, b"")])
            old = m.first(4)
            m.put(4, 2, new)
            return f"{path}.op_type {old!r} -> {new!r}"
        if kind == "domain" and "Node" in by:
            m, path = rng.choice(by["Node"])
            new = rng.choice(ONNX_DOMAINS)
            old = m.first(7)
            m.put(7, 2, new)
            return f"{path}.domain {old!r} -> {new!r}"
        if kind == "opset" and "OpsetId" in by:
            m, path = rng.choice(by["OpsetId"])
            how = rng.choice(["version", "domain", "drop", "duplicate"])
            if how == "version":
                new = rng.choice([0, 1, 7, 13, 16, 18, 21, 22, 99, 2 ** 31, -1])
                m.put(2, 0, new & ((1 << 64) - 1))
                return f"{path}.version -> {new}"
            if how == "domain":
                new = rng.choice(ONNX_DOMAINS)
                m.put(1, 2, new)
                return f"{path}.domain -> {new!r}"
            if how == "drop":
                model.fields = [f for f in model.fields if f[2] is not m]
                return f"{path} dropped"
            model.fields.append([8, 2, copy.deepcopy(m)])
            return f"{path} duplicated"
        if kind == "ir_version":
            new = rng.choice([0, 1, 3, 6, 7, 8, 9, 10, 11, 12, 99, 2 ** 40])
            old = model.first(1)
            model.put(1, 0, new)
            return f"ir_version {old} -> {new}"
        if kind in ("data_type", "dims", "raw_data", "external") and "Tensor" in by:
            m, path = rng.choice(by["Tensor"])
            if kind == "data_type":
                new = rng.choice(ONNX_TYPES)
                old = m.first(2)
                m.put(2, 0, new)
                return f"{path}.data_type {old} -> {new}"
            if kind == "dims":
                dims = pb_ints(m, 1)
                how = rng.choice(["set", "add", "remove"])
                if how == "set" and dims:
                    k = rng.randrange(len(dims))
                    dims[k] = rng.choice([0, -1, 1, 2 ** 31, 2 ** 62, dims[k] * 2, dims[k] + 1])
                elif how == "add" or not dims:
                    dims.insert(rng.randrange(len(dims) + 1), rng.choice([1, 2, 0, 2 ** 40]))
                else:
                    dims.pop(rng.randrange(len(dims)))
                pb_set_ints(m, 1, dims)
                return f"{path}.dims -> {dims}"
            if kind == "raw_data":
                raw = m.first(9)
                if raw is None:
                    continue
                how = rng.choice(["truncate", "extend", "nan", "inf", "random", "empty"])
                if how == "truncate":
                    new = raw[:rng.randrange(len(raw) + 1)] if raw else b""
                elif how == "extend":
                    new = raw + bytes(rng.randrange(1, 64))
                elif how in ("nan", "inf"):
                    pat = struct.pack("<f", math.nan if how == "nan" else math.inf)
                    new = (pat * (len(raw) // 4 + 1))[:len(raw)]
                elif how == "random":
                    new = bytes(rng.getrandbits(8) for _ in range(len(raw)))
                else:
                    new = b""
                m.put(9, 2, new)
                return f"{path}.raw_data ({len(raw)} bytes) := {how} ({len(new)} bytes)"
            loc = rng.choice(EXTERNAL_LOCATIONS)
            entries = [[13, 2, _entry(b"location", loc)]]
            if rng.random() < 0.3:
                entries.append([13, 2, _entry(b"offset", str(rng.choice([0, 4, 2 ** 40])).encode())])
            if rng.random() < 0.5:
                m.drop(9)
            m.drop(13)
            m.fields += entries
            m.put(14, 0, 1)
            return f"{path} external data location={loc!r} (raw_data {'kept' if m.get(9) else 'dropped'}) [external]"
        if kind == "attribute" and "Attribute" in by:
            m, path = rng.choice(by["Attribute"])
            how = rng.choice(["type", "i", "f", "ints", "name", "s"])
            if how == "type":
                new = rng.choice(list(range(0, 15)) + [99])
                m.put(20, 0, new)
                return f"{path}.type -> {new}"
            if how == "i":
                new = rng.choice([0, 1, -1, 2 ** 31, 2 ** 62, 7])
                m.put(3, 0, new & ((1 << 64) - 1))
                return f"{path}.i -> {new}"
            if how == "f":
                new = rng.choice([math.nan, math.inf, -math.inf, 0.0, 1e38])
                m.put(2, 5, struct.pack("<f", new))
                return f"{path}.f -> {new}"
            if how == "ints":
                ints = pb_ints(m, 8) or [0]
                ints[rng.randrange(len(ints))] = rng.choice([0, -1, 2 ** 31, 2 ** 62, 5])
                pb_set_ints(m, 8, ints)
                return f"{path}.ints -> {ints}"
            if how == "name":
                new = rng.choice([b"", b"axis", b"perm", b"direction", b"hidden_size", b"to", b"body", b"zzz"])
                m.put(1, 2, new)
                return f"{path}.name -> {new!r}"
            new = rng.choice([b"", b"reverse", b"bidirectional", bytes(rng.getrandbits(8) for _ in range(8))])
            m.put(4, 2, new)
            return f"{path}.s -> {new!r}"
        if kind == "names" and "Node" in by:
            m, path = rng.choice(by["Node"])
            num = rng.choice([1, 2])
            slots = [f for f in m.fields if f[0] == num]
            if not slots:
                continue
            f = rng.choice(slots)
            pool = [x[2] for n, _ in by["Node"] for x in n.fields if x[0] in (1, 2)]
            new = rng.choice(pool + [b"", b"nonexistent", b"\xff\xfe"])
            old, f[2] = f[2], new
            return f"{path}.{'input' if num == 1 else 'output'} {old!r} -> {new!r}"
        if kind == "node_list" and graph is not None:
            nodes = [i for i, f in enumerate(graph.fields) if f[0] == 1]
            if not nodes:
                continue
            how = rng.choice(["duplicate", "delete", "swap", "reverse"])
            i = rng.choice(nodes)
            if how == "duplicate":
                graph.fields.insert(rng.choice(nodes) if rng.random() < 0.5 else i, copy.deepcopy(graph.fields[i]))
            elif how == "delete":
                del graph.fields[i]
            elif how == "swap":
                j = rng.choice(nodes)
                graph.fields[i], graph.fields[j] = graph.fields[j], graph.fields[i]
            else:
                order = [graph.fields[k] for k in nodes][::-1]
                for k, f in zip(nodes, order):
                    graph.fields[k] = f
            return f"graph node #{nodes.index(i)} of {len(nodes)}: {how}"
        if kind == "value_info" and "TensorType" in by:
            m, path = rng.choice(by["TensorType"])
            how = rng.choice(["elem_type", "dim"])
            if how == "elem_type":
                new = rng.choice(ONNX_TYPES)
                m.put(1, 0, new)
                return f"{path}.elem_type -> {new}"
            shape = m.first(2)
            dims = [f[2] for f in shape.fields if f[0] == 1] if shape else []
            if not dims:
                continue
            d = rng.choice(dims)
            new = rng.choice([0, 1, 2, 2 ** 31, 2 ** 62, -1])
            d.drop(2)
            d.put(1, 0, new & ((1 << 64) - 1))
            return f"{path} dim -> {new}"
        if kind == "initializer_list" and graph is not None:
            inits = [i for i, f in enumerate(graph.fields) if f[0] == 5]
            if not inits:
                continue
            i = rng.choice(inits)
            if rng.random() < 0.5:
                del graph.fields[i]
                return f"initializer #{inits.index(i)} deleted"
            graph.fields.insert(i, copy.deepcopy(graph.fields[i]))
            return f"initializer #{inits.index(i)} duplicated"
        if kind == "loop" and graph is not None and rng.random() < 0.1:
            node = _loop_node(rng, graph, f"fuzz_loop{rng.randrange(100)}")
            first_node = next((i for i, f in enumerate(graph.fields) if f[0] == 1), 0)
            graph.fields.insert(first_node, [1, 2, node])
            return "a Loop node with a huge trip count inserted"
    raise RuntimeError("no applicable ONNX mutation")


# ==========================================================================================
# byte-level mutations (both formats)
# ==========================================================================================
def mutate_bytes(rng, data, donors):
    """One byte-level edit of bytearray `data` (may change its length); returns the new data and a description."""
    how = rng.choice(["bitflip", "byteset", "truncate", "splice", "insert", "zero_run"])
    n = len(data)
    if how == "bitflip":
        flips = [rng.randrange(n * 8) for _ in range(rng.randint(1, 8))]
        for b in flips:
            data[b // 8] ^= 1 << (b % 8)
        return data, f"bitflip at bits {flips}"
    if how == "byteset":
        spots = [rng.randrange(n) for _ in range(rng.randint(1, 4))]
        for p in spots:
            data[p] = rng.choice([0, 0xFF, 0x7F, 0x80, 1])
        return data, f"bytes set at {spots}"
    if how == "truncate":
        cut = rng.choice([rng.randrange(n), n - rng.randint(1, 16), rng.randrange(64)])
        return data[:max(0, cut)], f"truncated to {max(0, cut)} of {n} bytes"
    if how == "splice" and donors:
        name, donor = rng.choice(donors)
        length = rng.randint(4, 512)
        src = rng.randrange(max(1, len(donor) - length))
        dst = src if rng.random() < 0.5 and src + length <= n else rng.randrange(max(1, n - length))
        chunk = donor[src:src + length]
        data[dst:dst + len(chunk)] = chunk
        return data[:n] if len(data) > n else data, f"spliced {len(chunk)} bytes of {name}@{src} at {dst}"
    if how == "insert":
        p = rng.randrange(n)
        junk = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
        return data[:p] + junk + data[p:], f"inserted {len(junk)} bytes at {p}"
    p, length = rng.randrange(n), rng.randint(1, 256)
    data[p:p + length] = bytes(len(data[p:p + length]))
    return data, f"zeroed {length} bytes at {p}"


# ==========================================================================================
# cases: which variant, which mutation, the rehashed bundle
# ==========================================================================================
def load_manifest(bundle):
    with open(os.path.join(bundle, "manifest.json"), "rb") as f:
        return json.load(f)


def variants_for(manifest, package):
    """Variant names (manifest order) in the format `package` runs."""
    fmt = "onnx" if package == "onnxruntime" else "tflite"
    return [n for n, v in manifest["variants"].items() if v["format"] == fmt]


class Mutator:
    """Builds case i of a seed for one bundle: (variant, mutated bytes, description)."""

    def __init__(self, bundle):
        self.bundle = bundle
        self.manifest = load_manifest(bundle)
        self.files, self._sites, self._trees = {}, {}, {}
        for name, v in self.manifest["variants"].items():
            with open(os.path.join(bundle, v["file"]), "rb") as f:
                self.files[name] = f.read()

    def sites(self, name):
        if name not in self._sites:
            data = self.files[name]
            sites = tflite_sites(data)
            self._sites[name] = (sites, _tflite_counts(data, sites))
        return self._sites[name]

    def tree(self, name):
        if name not in self._trees:
            self._trees[name] = pb_parse(self.files[name])
        return self._trees[name]

    def case(self, seed, index, package):
        rng = random.Random(f"{seed}:{index}")
        name = rng.choice(variants_for(self.manifest, package))
        fmt = self.manifest["variants"][name]["format"]
        donors = [(n, d) for n, d in self.files.items()
                  if n != name and self.manifest["variants"][n]["format"] == fmt]
        steps = rng.choice([1, 1, 1, 2, 3])
        structural = [rng.random() < 0.8 for _ in range(steps)]
        descs = []
        if fmt == "tflite":
            data = bytearray(self.files[name])
            sites, counts = self.sites(name)
            for s in structural:
                if s:
                    descs.append(tflite_mutate_structure(rng, data, sites, counts))
        else:
            model = copy.deepcopy(self.tree(name))
            for s in structural:
                if s:
                    descs.append(onnx_mutate_structure(rng, model))
            data = bytearray(pb_serialize(model))
        for s in structural:
            if not s:
                data, d = mutate_bytes(rng, data, donors)
                descs.append(d)
        return name, bytes(data), "; ".join(descs)


def write_case(bundle, manifest, variant, data, folder):
    """A copy of `bundle` in `folder` with `variant`'s file replaced by `data` and the manifest's sha256
    and size rewritten for it (the other files are hard links: they are only read)."""
    os.makedirs(folder)
    target = manifest["variants"][variant]["file"]
    for name in os.listdir(bundle):
        if name in ("manifest.json", target):
            continue
        try:
            os.link(os.path.join(bundle, name), os.path.join(folder, name))
        except OSError:
            shutil.copy(os.path.join(bundle, name), os.path.join(folder, name))
    with open(os.path.join(folder, target), "wb") as f:
        f.write(data)
    m = copy.deepcopy(manifest)
    m["variants"][variant].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(m, f, indent=1)
    return folder


def load_spec(manifest, variant):
    """How a worker loads `variant`: (window variant, step variant or None). A step variant loads
    beside the first unmutated window variant of its format."""
    v = manifest["variants"][variant]
    if v["kind"] == "window":
        return variant, None
    window = next(n for n, x in manifest["variants"].items() if x["kind"] == "window" and x["format"] == v["format"])
    return window, variant


# ==========================================================================================
# the worker: runs cases in a child process, one JSON line per case on a private pipe
# ==========================================================================================
class Insane(Exception):
    """An answer that is not what a working predictor gives."""


def _vocab_words(bundle):
    with open(os.path.join(bundle, "vocab.json"), "rb") as f:
        return [w for w, _ in json.load(f)["word_counts"]]


def _check(answer, k, words, suggestible, what):
    if not isinstance(answer, list) or len(answer) != min(k, suggestible):
        raise Insane(f"{what}: expected {min(k, suggestible)} suggestions, got {answer!r:.200}")
    seen = set()
    for item in answer:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise Insane(f"{what}: not a (word, probability) pair: {item!r:.100}")
        w, p = item
        if w not in words or w in seen:
            raise Insane(f"{what}: {w!r:.60} is not a vocabulary word (or repeated)")
        if not isinstance(p, float) or not math.isfinite(p) or not 0.0 <= p <= 1.0:
            raise Insane(f"{what}: probability {p!r} for {w!r} is not a finite number in [0, 1]")
        seen.add(w)
    total = sum(p for _, p in answer)
    if total > 1.0 + 1e-4:
        raise Insane(f"{what}: probabilities sum to {total}")


def exercise(predictor, words, step_variant, rng):
    """Use a loaded predictor as users do; raises Insane on a wrong answer."""
    wordset = set(words)
    n = len(words)
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 6))) for _ in range(3)]
    texts += ["", " ".join(words), "unknownword " + words[0]]
    if step_variant is None:
        for t in texts:
            _check(predictor.top_k(t, 5), 5, wordset, n, f"top_k({t!r:.60})")
            if predictor.predict_next(t) not in wordset:
                raise Insane(f"predict_next({t!r:.60}) is not a vocabulary word")
        for w in words:   # every vocabulary id reaches the model
            _check(predictor.top_k(w, n + 5), n + 5, wordset, n, f"top_k({w!r})")
        for got in predictor.top_k_batch(texts, 3):
            _check(got, 3, wordset, n, "top_k_batch")
        for g in predictor.generate(texts[0], 3) + predictor.generate(texts[1], 3, strategy="sample", seed=1):
            if g not in wordset:
                raise Insane(f"generate gave {g!r:.60}, not a vocabulary word")
        return
    for mode in ("stream", "exact"):
        s = predictor.session(mode=mode)
        _check(s.top_k(5), 5, wordset, n, f"{mode} session start")
        for w in words + [rng.choice(words) for _ in range(8)]:
            s.feed(w)
            _check(s.top_k(n + 5), n + 5, wordset, n, f"{mode} session after {w!r}")
        s.undo(3)
        if s.predict_next() not in wordset:
            raise Insane(f"{mode} session predict_next is not a vocabulary word")


def _control(what):
    """Harness self-checks (tests/test_fuzz_bundles.py): misbehave the ways a runtime can."""
    if what == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif what == "hang":
        time.sleep(3600)
    elif what == "raise":
        raise RuntimeError("control: an untyped exception")
    elif what == "memory":
        return bytearray(8 << 30)   # beyond the address-space cap: MemoryError
    elif what == "exit":
        os._exit(3)


def run_one(case, package, words):
    """(outcome, detail) of one case, in the worker."""
    try:
        if case.get("control"):
            _control(case["control"])
        p = Predictor.load(case["dir"], backend=package, variant=case["window"], step_variant=case["step"])
        exercise(p, words, case["step"], random.Random(case["index"]))
        return "ok", f"{case['step'] or p.variant.name} on {p.package}"
    except NextwordError as e:
        return "typed", f"{type(e).__name__}: {e}"
    except Insane as e:
        return "insane", str(e)
    except Exception as e:   # noqa: BLE001 -- anything else is a finding: report it, do not die
        tb = traceback.extract_tb(e.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 2)[-1]}:{tb[-1].lineno}" if tb else ""
        return "untyped", f"{type(e).__name__}: {str(e)[:400]}{where}"


def worker_main():
    """Child process: cases as JSON on stdin; one JSON line per case start and end on the fd named
    by the parent (stdout is handed to stderr so an interpreter's prints cannot corrupt the protocol)."""
    job = json.loads(sys.stdin.read())
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    resource.setrlimit(resource.RLIMIT_AS, (job["memory"], job["memory"]))
    words = job["words"]
    import_package(job["package"])   # a harness failure shows before any case starts
    out.write(json.dumps({"ready": True}) + "\n")
    for case in job["cases"]:
        out.write(json.dumps({"start": case["index"]}) + "\n")
        outcome, detail = run_one(case, job["package"], words)
        out.write(json.dumps({"index": case["index"], "outcome": outcome, "detail": detail[:600]}) + "\n")
    out.write(json.dumps({"done": True}) + "\n")


# ==========================================================================================
# the parent: builds cases, runs workers, classifies, restarts after a crash or hang
# ==========================================================================================
def _run_worker(job, workdir, timeout):
    """Run a worker over job["cases"]; returns ({index: (outcome, detail)}, stopped_at_index or None)."""
    env = dict(os.environ, XDG_CACHE_HOME=os.path.join(workdir, "cache"), PYTHONUNBUFFERED="1")
    errpath = os.path.join(workdir, "worker.stderr")
    with open(errpath, "wb") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=err, cwd=workdir, env=env, start_new_session=True)
    proc.stdin.write(json.dumps(job).encode())
    proc.stdin.close()
    results, buf, current, started, ready = {}, b"", None, time.monotonic(), False
    fd = proc.stdout.fileno()
    while True:
        left = timeout - (time.monotonic() - started)
        ready, _, _ = select.select([fd], [], [], max(0.0, left))
        if not ready:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            results[current] = ("hang", f"no answer within {timeout} s")
            return results, current
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if msg.get("ready"):
                ready, started = True, time.monotonic()
            elif "start" in msg:
                current, started = msg["start"], time.monotonic()
            elif "index" in msg:
                results[msg["index"]] = (msg["outcome"], msg["detail"])
                current, started = None, time.monotonic()
            elif msg.get("done"):
                current = None
    rc = proc.wait()
    try:
        os.killpg(proc.pid, signal.SIGKILL)   # any grandchild left behind
    except ProcessLookupError:
        pass
    if current is None and rc == 0:
        return results, None
    with open(errpath, "rb") as f:
        tail = f.read()[-400:].decode("utf-8", "replace").strip().splitlines()
    if not ready:
        raise RuntimeError(f"the fuzz worker failed before its first case (exit {rc}): {' | '.join(tail[-3:])}")
    how = f"signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit code {rc}"
    results[current] = ("crash", f"worker died: {how}; stderr: {' | '.join(tail[-3:])}")
    return results, current


class Workdir:
    """A private working directory for workers: the canary file an external-data escape would
    read, a cache directory, and case folders."""

    def __init__(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="nextword-fuzz-")
        self.path = self._tmp.name
        with open(os.path.join(self.path, CANARY), "wb") as f:
            f.write(struct.pack("<f", 0.5) * 65536)
        os.makedirs(os.path.join(self.path, "cache"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._tmp.cleanup()


def run_cases(cases, package, words, workdir, timeout=20.0, memory=CHILD_MEMORY_BYTES):
    """Run `cases` (dicts: index, dir, window, step) in workers, a new worker after each crash or hang;
    returns {index: (outcome, detail)}."""
    results = {}
    while cases:
        job = {"package": package, "cases": cases, "words": words, "memory": memory}
        got, stopped = _run_worker(job, workdir, timeout)
        results.update(got)
        if stopped is None:
            for c in cases:   # a worker that ended cleanly answered every case
                results.setdefault(c["index"], ("crash", "the worker ended without answering"))
            break
        pos = next(k for k, c in enumerate(cases) if c["index"] == stopped)
        cases = cases[pos + 1:]
    return results


def fuzz(bundle, seed, indices, package, timeout=20.0, chunk=100, log=None, memory=CHILD_MEMORY_BYTES,
         progress=None):
    """Run cases `indices` of `seed` on `package`; returns a list of result dicts. `progress(results)`
    is called after each chunk of cases (a long campaign keeps its report up to date)."""
    mut = Mutator(bundle)
    manifest = mut.manifest
    words = _vocab_words(bundle)
    out = []
    with Workdir() as work:
        todo = list(indices)
        while todo:
            batch, todo = todo[:chunk], todo[chunk:]
            cases, meta = [], {}
            casedir = tempfile.mkdtemp(dir=work.path, prefix="cases-")
            for i in batch:
                variant, data, desc = mut.case(seed, i, package)
                folder = write_case(bundle, manifest, variant, data, os.path.join(casedir, str(i)))
                window, step = load_spec(manifest, variant)
                cases.append({"index": i, "dir": folder, "window": window, "step": step})
                meta[i] = (variant, desc)
            for i, (outcome, detail) in sorted(run_cases(cases, package, words, work.path, timeout, memory).items()):
                variant, desc = meta[i]
                if outcome == "ok" and "[external]" in desc:
                    outcome = "escape"
                out.append({"package": package, "seed": seed, "index": i, "variant": variant,
                            "mutation": desc, "outcome": outcome, "detail": detail})
                if log and outcome in BAD:
                    log(f"{package} seed {seed} case {i} {variant}: {outcome}: {desc} -> {detail}")
            shutil.rmtree(casedir, ignore_errors=True)
            if progress:
                progress(out)
    return out


def summarize(results, seed, elapsed):
    """The JSON report: counts per outcome per package and variant, and every non-typed/non-ok case."""
    packages = {}
    for r in results:
        p = packages.setdefault(r["package"], {"cases": 0, "outcomes": dict.fromkeys(OUTCOMES, 0), "variants": {}})
        p["cases"] += 1
        p["outcomes"][r["outcome"]] += 1
        v = p["variants"].setdefault(r["variant"], dict.fromkeys(OUTCOMES, 0))
        v[r["outcome"]] += 1
    findings = [r for r in sorted(results, key=lambda r: (r["package"], r["index"])) if r["outcome"] in BAD]
    groups = {}
    for r in findings:
        g = groups.setdefault(signature(r), {"count": 0, "first": r["index"]})
        g["count"] += 1
    return {"seed": seed, "cases": len(results), "elapsed_s": round(elapsed, 1), "packages": packages,
            "groups": dict(sorted(groups.items(), key=lambda kv: -kv[1]["count"])), "findings": findings}


def signature(result):
    """A finding's kind, for grouping: package, outcome and its message without numbers and names."""
    detail = re.sub(r"'[^']*'|\"[^\"]*\"|\(.*?\)|\d+", "_", result["detail"].split(" at ")[0])
    return f"{result['package']} {result['outcome']}: {detail[:90]}"


def installed_packages():
    return sorted(available_packages())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                     "artifacts", "seed"))
    ap.add_argument("--cases", type=int, default=100, help="cases per package (indices 0 .. N-1, or from --start)")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--seed", default="0")
    ap.add_argument("--package", action="append", help="interpreter package (repeatable; default: every installed one)")
    ap.add_argument("--only", help="comma-separated case indices (to reproduce a finding)")
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds one case may take before it is a hang")
    ap.add_argument("--out", help="write the JSON report here")
    ap.add_argument("--show", action="store_true", help="print each case's mutation and outcome")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker_main()
        return 0
    indices = [int(x) for x in args.only.split(",")] if args.only else range(args.start, args.start + args.cases)
    packages = args.package or installed_packages()
    t0 = time.monotonic()
    results = []

    def save(partial):
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                json.dump(summarize(results + partial, args.seed, time.monotonic() - t0), f, indent=1)
    for pkg in packages:
        results += fuzz(args.bundle, args.seed, indices, pkg, timeout=args.timeout, progress=save,
                        log=lambda s: print(s, file=sys.stderr, flush=True))
    report = summarize(results, args.seed, time.monotonic() - t0)
    if args.show:
        for r in results:
            print(f"{r['package']} {r['index']} {r['variant']}: {r['outcome']}: {r['mutation']} -> {r['detail'][:200]}")
    for pkg, p in report["packages"].items():
        counts = ", ".join(f"{k} {v}" for k, v in p["outcomes"].items() if v)
        print(f"{pkg}: {p['cases']} cases: {counts}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1)
    return 1 if report["findings"] else 0


if __name__ == "__main__":
    sys.exit(main())
