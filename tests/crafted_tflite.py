"""A small TFLite flatbuffer WRITER for tests: crafted models are generated here, never committed as
blobs. Pure Python (struct only: no flatbuffers or tensorflow import), so it runs in the runtime and
legacy environments too.

The layout is written parent first: a table, then the tables, vectors and strings it points to, so
every offset points forward (flatbuffer offsets are unsigned). Scalars, vectors and buffer data are
aligned as the format requires. Field slots follow TensorFlow's schema.fbs (version 3).

`window_model()` is a VALID model with the seed bundle's tensors (ids int32 [1, window] ->
logits float32 [1, vocab]): GATHER a row of a float constant per id, UNPACK along the window, answer
the last row -- a bigram table. Keyword arguments add the hostile parts the tests need."""

import struct

FLOAT32, FLOAT16, INT32, UINT8, INT64, STRING, BOOL, INT16 = 0, 1, 2, 3, 4, 5, 6, 7
INT8, FLOAT64, RESOURCE, VARIANT = 9, 10, 13, 14
ITEM = {FLOAT32: "f", FLOAT16: "e", INT32: "i", UINT8: "B", INT64: "q", BOOL: "?", INT16: "h", INT8: "b", FLOAT64: "d"}
ADD, GATHER, UNPACK, CUSTOM, WHILE, MUL = 0, 36, 88, 32, 119, 18
GATHER_OPTIONS, UNPACK_OPTIONS, ADD_OPTIONS = 23, 64, 11
IDS_NAME, LOGITS_NAME = b"serving_default_ids:0", b"StatefulPartitionedCall_1:0"


# -- the flatbuffer layer -------------------------------------------------------------------------------
class Scalar:
    def __init__(self, fmt, value):
        self.fmt, self.value = fmt, value


class Vector:
    """A vector of scalars (`fmt` one struct code), its elements aligned to `align` bytes."""

    def __init__(self, fmt, items, align=None):
        self.fmt, self.items = fmt, list(items)
        self.align = align or max(4, struct.calcsize("<" + fmt))


class Raw(Vector):
    """A [ubyte] vector holding `data` (a constant buffer: 16-byte aligned)."""

    def __init__(self, data, align=16):
        super().__init__("B", (), align)
        self.data = bytes(data)


class String:
    def __init__(self, text):
        self.data = text.encode() if isinstance(text, str) else bytes(text)


class Table:
    """A table: {slot: Scalar | Table | Vector | Raw | String | [Table]}; None values are left out."""

    def __init__(self, fields):
        self.fields = {k: v for k, v in fields.items() if v is not None}


def _size(value):
    return struct.calcsize("<" + value.fmt) if isinstance(value, Scalar) else 4


class _Writer:
    def __init__(self):
        self.buf = bytearray()

    def pad(self, align, extra=0):
        while (len(self.buf) + extra) % align:
            self.buf.append(0)

    def ref(self, value):
        """Write `value` at the end; returns its position."""
        if isinstance(value, Table):
            return self.table(value)
        if isinstance(value, String):
            self.pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(value.data)) + value.data + b"\0"
            return pos
        if isinstance(value, Raw):
            self.pad(value.align, 4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(value.data)) + value.data
            return pos
        if isinstance(value, Vector):
            self.pad(value.align, 4)
            pos = len(self.buf)
            self.buf += struct.pack(f"<I{len(value.items)}{value.fmt}", len(value.items), *value.items)
            return pos
        if isinstance(value, list):     # a vector of tables
            self.pad(4)
            pos = len(self.buf)
            self.buf += struct.pack("<I", len(value)) + bytes(4 * len(value))
            for k, item in enumerate(value):
                self.patch(pos + 4 + 4 * k, self.ref(item))
            return pos
        raise TypeError(f"cannot write {value!r}")

    def patch(self, at, target):
        struct.pack_into("<I", self.buf, at, target - at)

    def table(self, t):
        slots = sorted(t.fields)
        layout, end = {}, 4
        for slot in slots:
            size = _size(t.fields[slot])
            end += -end % size
            layout[slot] = end
            end += size
        end += -end % 4
        vt = [0] * ((max(slots) + 1) if slots else 0)
        for slot in slots:
            vt[slot] = layout[slot]
        self.pad(2)
        vpos = len(self.buf)
        self.buf += struct.pack(f"<HH{len(vt)}H", 4 + 2 * len(vt), end, *vt)
        self.pad(8)
        pos = len(self.buf)
        self.buf += bytes(end)
        struct.pack_into("<i", self.buf, pos, pos - vpos)
        children = []
        for slot in slots:
            v = t.fields[slot]
            if isinstance(v, Scalar):
                struct.pack_into("<" + v.fmt, self.buf, pos + layout[slot], v.value)
            else:
                children.append((pos + layout[slot], v))
        for at, v in children:
            self.patch(at, self.ref(v))
        return pos


def finish(root, identifier=b"TFL3"):
    """The bytes of a flatbuffer whose root table is `root`."""
    w = _Writer()
    w.buf += bytes(4) + identifier
    w.patch(0, w.ref(root))
    return bytes(w.buf)


# -- TFLite tables (schema.fbs field slots) --------------------------------------------------------------
def opcode(code, version=1, custom=None, deprecated=None):
    dep = min(code, 127) if deprecated is None else deprecated
    return Table({0: Scalar("b", dep), 1: None if custom is None else String(custom), 2: Scalar("i", version),
                  3: Scalar("i", code)})


def quantization(scale, zero_point, dimension=0):
    return Table({2: Vector("f", scale), 3: Vector("q", zero_point), 6: Scalar("i", dimension) if dimension else None})


def tensor(shape, ttype, buffer=0, name=b"", quant=None, is_variable=False):
    return Table({0: Vector("i", shape), 1: Scalar("b", ttype), 2: Scalar("I", buffer), 3: String(name),
                  4: quant, 5: Scalar("B", 1) if is_variable else None})


def operator(opcode_index, inputs, outputs, options_type=0, options=None, custom_options=None):
    return Table({0: Scalar("I", opcode_index), 1: Vector("i", inputs), 2: Vector("i", outputs),
                  3: Scalar("B", options_type) if options_type else None, 4: options,
                  5: None if custom_options is None else Raw(custom_options, 4)})


def buffer(data=b""):
    return Table({0: Raw(data) if data else None})


def model(opcodes, subgraphs, buffers, version=3):
    return finish(Table({0: Scalar("I", version), 1: opcodes, 2: subgraphs, 3: String("crafted by tests"),
                         4: buffers}))


def subgraph(tensors, inputs, outputs, operators):
    return Table({0: tensors, 1: Vector("i", inputs), 2: Vector("i", outputs), 3: operators, 4: String("main")})


def pack(ttype, values):
    return struct.pack(f"<{len(values)}{ITEM[ttype]}", *values)


def string_buffer(strings, claimed=None, wild_offsets=False):
    """A TFLite STRING tensor's data: count, count + 1 offsets, the characters. `claimed` overrides
    the count; `wild_offsets` points every offset after the first string far outside the buffer."""
    count = len(strings) if claimed is None else claimed
    head = 4 * (count + 2)
    offsets, at = [], head
    for s in strings:
        offsets.append(at)
        at += len(s)
    offsets.append(at)
    offsets += [at] * (count + 1 - len(offsets))
    if wild_offsets:
        offsets = offsets[:2] + [0x40000000 + 0x1000 * k for k in range(len(offsets) - 2)]
    return struct.pack(f"<i{count + 1}i", count, *offsets[:count + 1]) + b"".join(strings)


# -- whole models ------------------------------------------------------------------------------------------
def window_model(vocab=11, window=4, string_gather=False, extra_tensors=(), extra_ops=(), opcodes_extra=(),
                 gather_version=1, table_type=FLOAT32, table_data=None, subgraph_copies=1, ids_type=INT32,
                 logits_type=FLOAT32, gather_axis=0, unpack_num=None):
    """A valid window model (ids [1, window] -> logits [1, vocab]) unless the keywords say otherwise.

    string_gather: also GATHER, with the ids, from an [vocab] STRING constant whose offsets past the
      first string point outside it (the issue's crash: fine on id 0, wild reads on any other id).
    extra_tensors / extra_ops: (tensor Table, buffer bytes) pairs and operator Tables appended;
      opcodes_extra: operator-code Tables appended after the two built in (GATHER=0, UNPACK=1)."""
    rows = [[float((r * 7 + c * 3) % 11) for c in range(vocab)] for r in range(vocab)]
    table = table_data if table_data is not None else pack(table_type, [x for row in rows for x in row])
    buffers = [b"", b"", table]
    tensors = [tensor([1, window], ids_type, 0, IDS_NAME),                          # 0 ids
               tensor([vocab, vocab], table_type, 2, b"bigram_table"),             # 1 constant table
               tensor([1, window, vocab], logits_type, 0, b"rows")]                 # 2 gathered rows
    steps = list(range(3, 3 + window))
    tensors += [tensor([1, vocab], logits_type, 0, LOGITS_NAME if k == window - 1 else f"step_{k}".encode())
                for k in range(window)]
    ops = [operator(0, [1, 0], [2], GATHER_OPTIONS, Table({0: Scalar("i", gather_axis)})),
           operator(1, [2], steps, UNPACK_OPTIONS, Table({0: Scalar("i", unpack_num or window), 1: Scalar("i", 1)}))]
    opcodes = [opcode(GATHER, gather_version), opcode(UNPACK, 1), *opcodes_extra]
    if string_gather:
        words = [b"hello"] + [b"w%d" % i for i in range(1, vocab)]
        buffers.append(string_buffer(words[:1], claimed=vocab, wild_offsets=True))
        n = len(tensors)
        tensors += [tensor([vocab], STRING, len(buffers) - 1, b"word_table"), tensor([1, window], STRING, 0, b"words")]
        ops.append(operator(0, [n, 0], [n + 1], GATHER_OPTIONS, Table({0: Scalar("i", 0)})))
    for t, data in extra_tensors:
        if data:
            buffers.append(data)
            t.fields[2] = Scalar("I", len(buffers) - 1)
        tensors.append(t)
    ops += list(extra_ops)
    sg = subgraph(tensors, [0], [steps[-1]], ops)
    return model(opcodes, [sg] * subgraph_copies, [buffer(b) for b in buffers])


def bigram_answer(ids, vocab=11):
    """What window_model() answers for a window ending in ids[-1]: row ids[-1] of its table."""
    return [float((ids[-1] * 7 + c * 3) % 11) for c in range(vocab)]


# -- one extra operator: shape amplifiers (tests/test_tflite_shapes.py) --------------------------------------
FULLY_CONNECTED, RESHAPE, SPLIT, LESS, SELECT = 9, 22, 49, 58, 64
MUL_OPTIONS, FC_OPTIONS, SPLIT_OPTIONS, SELECT_OPTIONS = 21, 8, 35, 47
OPTIONS = {ADD: ADD_OPTIONS, MUL: MUL_OPTIONS, GATHER: GATHER_OPTIONS, FULLY_CONNECTED: FC_OPTIONS,
           SPLIT: SPLIT_OPTIONS, UNPACK: UNPACK_OPTIONS, SELECT: SELECT_OPTIONS}
WINDOW_ROWS = 2         # window_model()'s tensor [1, window, vocab] (GATHER's output): a non-constant input


def ops_model(ops, window=4, vocab=11):
    """window_model() (valid) plus operators `ops` [(code, inputs, outputs, options)], appended in order;
    their outputs are new tensors [(shape, type)] nothing in the base model reads. An input is a tensor
    index of the base model (e.g. WINDOW_ROWS), -1 (absent), ("out", k) for the k-th output written by
    `ops` so far, or (shape, type, values) for a new constant. `options`: the operator's option
    scalars {slot: Scalar} (its options type is set from OPTIONS). Each code gets version 1."""
    base = 3 + window
    extra, written, operators, codes = [], [], [], []
    for code, inputs, outputs, options in ops:
        index = []
        for item in inputs:
            if isinstance(item, int):
                index.append(item)
            elif item[0] == "out":
                index.append(written[item[1]])
            else:
                shape, ttype, values = item
                extra.append((tensor(shape, ttype, 0, b"const_%d" % len(extra)), pack(ttype, values)))
                index.append(base + len(extra) - 1)
        out = []
        for shape, ttype in outputs:
            extra.append((tensor(shape, ttype, 0, b"out_%d" % len(written)), b""))
            out.append(base + len(extra) - 1)
            written.append(out[-1])
        if code not in codes:
            codes.append(code)
        options_type = OPTIONS.get(code, 0)
        operators.append(operator(2 + codes.index(code), index, out, options_type,
                                  Table(options or {}) if options_type else None))
    return window_model(vocab=vocab, window=window, extra_tensors=extra, extra_ops=operators,
                        opcodes_extra=[opcode(c, 1) for c in codes])


def op_model(code, inputs, outputs, options=None, window=4, vocab=11):
    """ops_model() with one operator."""
    return ops_model([(code, inputs, outputs, options)], window=window, vocab=vocab)
