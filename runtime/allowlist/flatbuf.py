"""A bounds-checked flatbuffer reader: every offset an interpreter would follow is checked against
the file here, in Python, where a wild offset is a ValueError instead of a read of foreign memory."""

import struct


class FlatReader:
    """Tables, fields, vectors and strings of one flatbuffer, each access checked against its size."""

    def __init__(self, data):
        self.d, self.n = memoryview(data), len(data)

    def u(self, fmt, pos):
        size = struct.calcsize(fmt)
        if pos < 0 or pos + size > self.n:
            raise ValueError(f"offset {pos} is outside the {self.n}-byte file")
        return struct.unpack_from(fmt, self.d, pos)[0]

    def table(self, pos):
        """(pos, vtable, vtable size, table size) of the table at `pos`; every field slot of its vtable
        must point inside the table (an interpreter reads a field at table + slot unchecked)."""
        vt = pos - self.u("<i", pos)
        vsize, tsize = self.u("<H", vt), self.u("<H", vt + 2)
        if vsize < 4 or vsize % 2 or tsize < 4 or pos + tsize > self.n or vt + vsize > self.n:
            raise ValueError(f"malformed table at {pos}")
        for slot in range(4, vsize, 2):
            off = self.u("<H", vt + slot)
            if off and (off < 4 or off >= tsize):
                raise ValueError(f"a field of the table at {pos} lies outside it")
        return pos, vt, vsize, tsize

    def field(self, t, i, size):
        pos, vt, vsize, tsize = t
        off = self.u("<H", vt + 4 + 2 * i) if 4 + 2 * i < vsize else 0
        if off and off + size > tsize:
            raise ValueError(f"field {i} of the table at {pos} lies outside it")
        return pos + off if off else None

    def present(self, t, i):
        """Whether field `i` is set at all (a value equal to its default may still be set)."""
        return self.field(t, i, 1) is not None

    def scalar(self, t, i, fmt, default=0):
        p = self.field(t, i, struct.calcsize(fmt))
        return default if p is None else self.u(fmt, p)

    def ref(self, t, i):
        p = self.field(t, i, 4)
        return None if p is None else p + self.u("<I", p)

    def subtable(self, t, i):
        r = self.ref(t, i)
        return None if r is None else self.table(r)

    def vector(self, t, i, item):
        """(first item position, count) of vector field `i`, or None when absent."""
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

    def tables(self, t, i, limit=None, what="vector"):
        """The tables of vector field `i`; ValueError if there are more than `limit`."""
        vec = self.vector(t, i, 4)
        if not vec:
            return []
        if limit is not None and vec[1] > limit:
            raise ValueError(f"{vec[1]} {what} (at most {limit} allowed)")
        return [self.table(p + self.u("<I", p)) for p in (vec[0] + 4 * k for k in range(vec[1]))]

    def string(self, t, i):
        """The string field `i` as bytes (None when absent); it must be NUL-terminated inside the file."""
        vec = self.vector(t, i, 1)
        if vec is None:
            return None
        if self.u("<B", vec[0] + vec[1]) != 0:
            raise ValueError("unterminated string")
        return bytes(self.d[vec[0]:vec[0] + vec[1]])
