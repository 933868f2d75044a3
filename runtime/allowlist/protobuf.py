"""A bounded, schema-driven reader of the protobuf wire format (varints, fixed32/64, length-delimited
fields), in pure Python: enough to walk a whole ONNX ModelProto before onnxruntime parses it.

Why strict: onnxruntime's C++ parser keeps fields it does not know, merges a message field that
appears twice and lets a repeated scalar field arrive packed or not. A checker that read the file
differently from the parser could be fooled (a second `graph` field would be merged in, unseen). So
this reader refuses every field number and wire type its schema does not list, every repeated
occurrence of a singular field, nesting deeper than a bound and more fields than a bound: what it
accepts, it has read exactly as the C++ parser will. A malformed file is a ProtobufError (a
ValueError), never a RecursionError, a MemoryError or a long loop."""

import re
import struct

VARINT, FIXED64, BYTES, FIXED32 = 0, 1, 2, 5
_HIGH_BYTES = bytes(range(0x80, 0x100))
_LONG_VARINT = re.compile(rb"[\x80-\xff]{10}")


class ProtobufError(ValueError):
    """The bytes are not a protobuf message of the expected schema (or break one of its bounds)."""


class Field:
    """One field of a schema. kind: int64 | int32 | float | string | length | message | count_varint |
    count_fixed32 | count_fixed64 | count_bytes. `length` keeps only the byte length; `span` keeps the
    (start, end) offsets of the bytes in the file (raw_data: small integer constants are read later); the
    count_* kinds keep only how many elements a repeated field holds (tensor payloads), so a large
    weight array is measured, never decoded into Python objects."""

    __slots__ = ("name", "kind", "repeated", "schema")

    def __init__(self, name, kind, repeated=False, schema=None):
        self.name, self.kind, self.repeated, self.schema = name, kind, repeated, schema


def _signed(value, bits):
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class Reader:
    """Decode `data` as `schema` (a dict field number -> Field) into nested dicts: singular fields as
    values, repeated ones as lists (or counts). Bounds: `max_depth` nested messages, `max_fields`
    fields in all, `max_string` bytes in one string."""

    def __init__(self, data, max_depth, max_fields, max_string):
        self.data = memoryview(data).cast("B")
        self.max_depth, self.fields_left, self.max_string = max_depth, max_fields, max_string

    def read(self, schema, what="message"):
        return self._message(0, len(self.data), schema, 0, what)

    def _spend(self, n, where):
        self.fields_left -= n
        if self.fields_left < 0:
            raise ProtobufError(f"more protobuf fields than the reader's bound (at {where})")

    def _varint(self, pos, end, where):
        result = shift = 0
        data = self.data
        for _ in range(10):
            if pos >= end:
                raise ProtobufError(f"truncated varint in {where}")
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
        raise ProtobufError(f"varint longer than 10 bytes in {where}")

    def _message(self, pos, end, schema, depth, where):
        if depth > self.max_depth:
            raise ProtobufError(f"messages nested deeper than {self.max_depth} levels (at {where})")
        out = {}
        while pos < end:
            key, pos = self._varint(pos, end, where)
            number, wire = key >> 3, key & 7
            self._spend(1, where)
            field = schema.get(number)
            if field is None:
                raise ProtobufError(f"{where} has field {number} (wire type {wire}), which the exporter never writes")
            at = f"{where}.{field.name}"
            if wire == VARINT:
                raw, pos = self._varint(pos, end, at)
                chunk = None
            elif wire == FIXED32 or wire == FIXED64:
                size = 4 if wire == FIXED32 else 8
                if pos + size > end:
                    raise ProtobufError(f"truncated fixed-size value in {at}")
                raw, chunk, pos = None, (pos, pos + size), pos + size
            elif wire == BYTES:
                length, pos = self._varint(pos, end, at)
                if length > end - pos:
                    raise ProtobufError(f"{at} claims {length} bytes but its message has {end - pos} left")
                raw, chunk, pos = None, (pos, pos + length), pos + length
            else:
                raise ProtobufError(f"{at} uses wire type {wire} (groups or invalid), which the exporter never writes")
            value = self._value(field, wire, raw, chunk, depth, at)
            name = field.name
            if field.repeated:
                if field.kind.startswith("count_"):
                    out[name] = out.get(name, 0) + value
                elif isinstance(value, list):
                    out.setdefault(name, []).extend(value)
                else:
                    out.setdefault(name, []).append(value)
            elif name in out:
                raise ProtobufError(f"{at} appears twice (a parser would merge or overwrite it)")
            else:
                out[name] = value
        return out

    def _value(self, field, wire, raw, chunk, depth, at):
        kind = field.kind
        if kind in ("int64", "int32"):
            bits = 64 if kind == "int64" else 32
            if wire == VARINT:
                return _signed(raw, bits)
            if wire == BYTES and field.repeated:   # packed
                values, pos, end = [], chunk[0], chunk[1]
                while pos < end:
                    self._spend(1, at)
                    raw, pos = self._varint(pos, end, at)
                    values.append(_signed(raw, bits))
                return values
        elif kind == "float" and wire == FIXED32:
            return struct.unpack_from("<f", self.data, chunk[0])[0]
        elif kind == "string" and wire == BYTES:
            if chunk[1] - chunk[0] > self.max_string:
                raise ProtobufError(f"{at} is {chunk[1] - chunk[0]} bytes long; at most {self.max_string} are accepted")
            try:
                return str(self.data[chunk[0]:chunk[1]], "utf-8")
            except UnicodeDecodeError:
                raise ProtobufError(f"{at} is not UTF-8 text") from None
        elif kind == "length" and wire == BYTES:
            return chunk[1] - chunk[0]
        elif kind == "span" and wire == BYTES:
            return chunk
        elif kind == "message" and wire == BYTES:
            return self._message(chunk[0], chunk[1], field.schema, depth + 1, at)
        elif kind == "count_bytes" and wire == BYTES:
            return 1
        elif kind == "count_varint":
            if wire == VARINT:
                return 1
            if wire == BYTES:
                packed = self.data[chunk[0]:chunk[1]]
                if len(packed) and (packed[-1] >= 0x80 or _LONG_VARINT.search(packed)):
                    raise ProtobufError(f"{at} holds a truncated or over-long varint")
                return len(bytes(packed).translate(None, _HIGH_BYTES))
        elif kind in ("count_fixed32", "count_fixed64"):
            size = 4 if kind == "count_fixed32" else 8
            if wire == (FIXED32 if size == 4 else FIXED64):
                return 1
            if wire == BYTES:
                if (chunk[1] - chunk[0]) % size:
                    raise ProtobufError(f"{at} holds {chunk[1] - chunk[0]} bytes, not a whole number of "
                                        f"{size}-byte values")
                return (chunk[1] - chunk[0]) // size
        raise ProtobufError(f"{at} arrives with wire type {wire}, which its type ({kind}) never uses")
