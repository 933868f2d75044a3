"""TFLite files, checked before any interpreter sees a byte.

tflite-runtime 2.14 builds its interpreter from an unverified flatbuffer: an offset pointing outside
the file makes it read wild memory, which kills the process with SIGSEGV -- or not, depending on the
heap layout, so a check process can survive a file that then crashes the serving process (seen in
tests/test_runtime_damage.py). This walks what the interpreter follows (tables, vectors, tensor and
operator indices, constant buffer sizes) in pure Python, where a bad offset is an exception.

A later issue turns this into a full allow-list of what the exporter produces (operators, types,
shapes); for now it is the structure walk."""

import struct

_TFLITE_ITEM = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 15: 4, 16: 2}


class _Flat:
    def __init__(self, data):
        self.d, self.n = memoryview(data), len(data)

    def u(self, fmt, pos):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise ValueError(f"offset {pos} is outside the {self.n}-byte file")
        return struct.unpack_from(fmt, self.d, pos)[0]

    def table(self, pos):
        vt = pos - self.u("<i", pos)
        vsize, tsize = self.u("<H", vt), self.u("<H", vt + 2)
        if vsize < 4 or vsize % 2 or tsize < 4 or pos + tsize > self.n or vt + vsize > self.n:
            raise ValueError(f"malformed table at {pos}")
        return pos, vt, vsize, tsize

    def field(self, t, i, size):
        pos, vt, vsize, tsize = t
        off = self.u("<H", vt + 4 + 2 * i) if 4 + 2 * i < vsize else 0
        if off and off + size > tsize:
            raise ValueError(f"field {i} of the table at {pos} lies outside it")
        return pos + off if off else None

    def scalar(self, t, i, fmt):
        p = self.field(t, i, struct.calcsize(fmt))
        return 0 if p is None else self.u(fmt, p)

    def ref(self, t, i):
        p = self.field(t, i, 4)
        return None if p is None else p + self.u("<I", p)

    def vector(self, t, i, item):
        v = self.ref(t, i)
        if v is None:
            return None
        count = self.u("<I", v)
        if v + 4 + count * item > self.n:
            raise ValueError(f"vector at {v} ({count} items) runs past the end of the file")
        return v + 4, count

    def ints(self, t, i, code="i"):
        vec = self.vector(t, i, struct.calcsize(code))
        return list(struct.unpack_from(f"<{vec[1]}{code}", self.d, vec[0])) if vec else []

    def tables(self, t, i):
        vec = self.vector(t, i, 4)
        return [self.table(p + self.u("<I", p)) for p in (vec[0] + 4 * k for k in range(vec[1]))] if vec else []

    def string(self, t, i):
        vec = self.vector(t, i, 1)
        if vec is not None and self.u("<B", vec[0] + vec[1]) != 0:
            raise ValueError("unterminated string")


def check_tflite_structure(data):
    """Raise ValueError if the TFLite flatbuffer has an offset, index or size tflite-runtime would
    follow outside the file (the schema fields it reads: model, operator codes, subgraphs, tensors,
    quantization, operators, buffers, signatures, metadata)."""
    f = _Flat(data)
    if f.n < 8 or bytes(f.d[4:8]) != b"TFL3":
        raise ValueError("no TFL3 file identifier")
    model = f.table(f.u("<I", 0))
    codes = f.tables(model, 1)
    for c in codes:
        f.string(c, 1)
    buffers = []
    for b in f.tables(model, 4):
        vec, off, size = f.vector(b, 0, 1), f.scalar(b, 1, "<Q"), f.scalar(b, 2, "<Q")
        if off > 1 and off + size > f.n:
            raise ValueError("a buffer's data lies outside the file")
        buffers.append(vec[1] if vec else (size if off > 1 else 0))
    subgraphs = f.tables(model, 2)
    if not subgraphs:
        raise ValueError("no subgraph")
    counts = []
    for sg in subgraphs:
        tensors = f.tables(sg, 0)
        nt = len(tensors)
        counts.append(nt)
        for t in tensors:
            shape, ttype, buf = f.ints(t, 0), f.scalar(t, 1, "<b"), f.scalar(t, 2, "<I")
            if any(d < 0 for d in shape) or not 0 <= ttype <= 17 or buf >= max(len(buffers), 1):
                raise ValueError(f"tensor with shape {shape}, type {ttype}, buffer {buf} is out of range")
            f.string(t, 3)
            q = f.ref(t, 4)
            if q is not None:
                q = f.table(q)
                for i, item in ((0, 4), (1, 4), (2, 4), (3, 8)):
                    f.vector(q, i, item)
                if f.ref(q, 5) is not None:
                    f.table(f.ref(q, 5))
            if f.ref(t, 6) is not None:
                f.table(f.ref(t, 6))
            f.ints(t, 7)
            elements = 1
            for d in shape:
                elements *= d
            if buffers and buffers[buf] and ttype in _TFLITE_ITEM and buffers[buf] != elements * _TFLITE_ITEM[ttype]:
                raise ValueError(f"tensor of shape {shape} has {buffers[buf]} bytes of constant data")
        if any(not 0 <= i < nt for i in f.ints(sg, 1) + f.ints(sg, 2)):
            raise ValueError("a subgraph input/output index is out of range")
        for op in f.tables(sg, 3):
            if f.scalar(op, 0, "<I") >= len(codes):
                raise ValueError("an operator's opcode index is out of range")
            if any(not -1 <= i < nt for i in f.ints(op, 1) + f.ints(op, 2) + f.ints(op, 8)):
                raise ValueError("an operator's tensor index is out of range")
            for i in (4, 12):
                if f.ref(op, i) is not None:
                    f.table(f.ref(op, i))
            f.vector(op, 5, 1)
            f.vector(op, 7, 1)
            if f.scalar(op, 9, "<Q") + f.scalar(op, 10, "<Q") > f.n:
                raise ValueError("an operator's custom options lie outside the file")
        f.string(sg, 4)
    for sig in f.tables(model, 7):
        sub = f.scalar(sig, 4, "<I")
        if sub >= len(subgraphs):
            raise ValueError("a signature names a missing subgraph")
        for i in (0, 1):
            for m in f.tables(sig, i):
                f.string(m, 0)
                if f.scalar(m, 1, "<I") >= counts[sub]:
                    raise ValueError("a signature's tensor index is out of range")
        f.string(sig, 2)
    for m in f.tables(model, 6):
        f.string(m, 0)
        if f.scalar(m, 1, "<I") >= len(buffers):
            raise ValueError("a metadata entry names a missing buffer")
    f.ints(model, 5)
    f.string(model, 3)
