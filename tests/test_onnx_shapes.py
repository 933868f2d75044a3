"""Static ONNX shape inference (issue 12: "no crafted bundle may ... exhaust memory").

Allowed operators amplify: an Expand of a constant to [2**15, 2**15], a broadcasting Add or Mul of
[N, 1] and [1, M] constants, a MatMul outer product, a Gather with a large constant index, a Concat
that doubles a tensor again and again, an Expand whose shape is computed through Shape -> Concat: each
passes the operator allow-list, and onnxruntime then allocates gigabytes (the control shows it on raw
onnxruntime under an address-space limit). runtime/allowlist/onnx_shapes.py computes every node
output's shape in pure Python and refuses what cannot be sized statically or breaks the byte bounds.
The inferred shapes of the seed models are compared with what onnxruntime really produces, every
intermediate exposed as an output, at two batch sizes.

The inference is pure Python: its tests run in every venv; onnxruntime cases only where it exists."""

import json
import os
import struct
import subprocess
import sys
import time

import pytest

import crafted_onnx as C
from nextword.runtime import limits
from nextword.runtime.allowlist.onnx import ONNX_OPS, OnnxRefused, check_onnx, read_model
from nextword.runtime.allowlist.onnx_shapes import _OPS, Batch, infer_shapes
from support import SEED_BUNDLE, installed_packages, rehashed_copy, run_cli

ORT = "onnxruntime" in installed_packages()
def needs_ort(test):
    """Collected only where onnxruntime is installed (decided at collection time, never a skip)."""
    return test if ORT else None

with open(os.path.join(SEED_BUNDLE, "manifest.json"), encoding="utf-8") as _f:
    MANIFEST = json.load(_f)
ONNX_VARIANTS = sorted(n for n, v in MANIFEST["variants"].items() if v["format"] == "onnx")
TENSOR, TOTAL = limits.MAX_ONNX_TENSOR_BYTES, limits.MAX_ONNX_ACTIVATION_BYTES


def seed_bytes(name):
    with open(os.path.join(SEED_BUNDLE, MANIFEST["variants"][name]["file"]), "rb") as f:
        return f.read()


def _refusal(data):
    with pytest.raises(OnnxRefused) as info:
        check_onnx(data)
    return str(info.value)


def _i64(name, values):
    return C.tensor(name, [len(values)], C.INT64, raw=struct.pack(f"<{len(values)}q", *values))


def _zeros(name, dims, dtype=C.FLOAT):
    count = 1
    for d in dims:
        count *= d
    return C.tensor(name, dims, dtype, raw=bytes(count * {C.FLOAT: 4, C.INT64: 8}[dtype]))


def amplifier(nodes, inits, out, elem=C.FLOAT):
    """The benign window model plus `nodes`, whose tensor `out` is a second graph output (so no runtime
    prunes it as unused)."""
    base = C.window_model(extra_nodes=nodes, extra_inits=inits)
    return _add_outputs(base, [(out, elem)])


# -- wire-level edit: extra graph outputs on an existing file ------------------------------------------------
def _add_outputs(model_bytes, outputs):
    """The model with graph outputs (name, element type) appended: type only, no shape (the runtime infers)."""
    return _inject(model_bytes, [], [], outputs)


# -- what the exporter produces passes, with the shapes onnxruntime computes -------------------------------------
def test_every_allowed_operator_has_a_shape_rule():
    allowed = {(d, op) for d, ops in ONNX_OPS.items() for op in ops}
    assert allowed == set(_OPS)


@pytest.mark.parametrize("name", ONNX_VARIANTS)
def test_seed_models_pass_within_the_bounds_and_fast(name):
    data = seed_bytes(name)
    model = read_model(data)
    started = time.perf_counter()
    env, total = infer_shapes(model["graph"], data)
    assert time.perf_counter() - started < 5     # µs in practice (notes); generous: shared CI machines
    assert 0 < total < TOTAL // 1000
    window = MANIFEST["variants"][name]["inputs"][0]["shape"][1]
    vocab = MANIFEST["variants"][name]["outputs"][0]["shape"][1]
    assert env["ids"].dims == (Batch(1, 1), window)
    assert env["logits"].dims == (Batch(1, 1), vocab)


def _at(dims, batch):
    return tuple(d.c * batch ** d.p if isinstance(d, Batch) else d for d in dims)


@needs_ort
@pytest.mark.parametrize("name", ONNX_VARIANTS)
def test_inferred_shapes_equal_what_onnxruntime_computes(name):
    """Every node output of a seed model exposed as a graph output; run at batch 1 and 3: each shape
    onnxruntime returns is the inferred one (batch substituted)."""
    import numpy as np
    import onnxruntime as ort
    data = seed_bytes(name)
    model = read_model(data)
    env, _ = infer_shapes(model["graph"], data)
    declared = {o["name"] for o in model["graph"]["output"]}
    produced = [o for n in model["graph"]["node"] for o in n["output"] if o and o not in declared]
    exposed = _add_outputs(data, [(o, env[o].dtype) for o in produced])
    session = ort.InferenceSession(exposed, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    assert set(produced) <= set(names)
    vocab = MANIFEST["variants"][name]["outputs"][0]["shape"][1]
    for batch in (1, 3):
        feed = {}
        for i in session.get_inputs():
            dims = _at(env[i.name].dims, batch)
            feed[i.name] = (np.arange(np.prod(dims)).reshape(dims) % vocab).astype(np.int32) if i.name == "ids" \
                else np.zeros(dims, np.float32)
        results = session.run(names, feed)
        for out, value in zip(names, results):
            assert value.shape == _at(env[out].dims, batch), (out, batch)
        assert len(results) > 20


# -- crafted amplifiers: refused naming the node, the shape and the bound ---------------------------------------
_N = 1 << 15
CASES = [
    ("Expand of a scalar to [2^15, 2^15]",
     lambda: amplifier([C.node("Expand", ["one", "big"], ["boom"], name="expand_bomb")],
                       [_zeros("one", []), _i64("big", [_N, _N])], "boom"),
     ["'expand_bomb'", "[32768, 32768]", str(TENSOR)]),
    ("broadcasting Add of [N, 1] and [1, M] constants",
     lambda: amplifier([C.node("Add", ["col", "row"], ["boom"], name="add_bomb")],
                       [_zeros("col", [_N, 1]), _zeros("row", [1, _N])], "boom"),
     ["'add_bomb'", "[32768, 32768]", str(TENSOR)]),
    ("broadcasting Mul of [N, 1] and [1, M] constants",
     lambda: amplifier([C.node("Mul", ["col", "row"], ["boom"], name="mul_bomb")],
                       [_zeros("col", [_N, 1]), _zeros("row", [1, _N])], "boom"),
     ["'mul_bomb'", "[32768, 32768]", str(TENSOR)]),
    ("MatMul outer product [N, 1] x [1, M]",
     lambda: amplifier([C.node("MatMul", ["col", "row"], ["boom"], name="matmul_bomb")],
                       [_zeros("col", [_N, 1]), _zeros("row", [1, _N])], "boom"),
     ["'matmul_bomb'", "[32768, 32768]", str(TENSOR)]),
    ("Gather of wide rows with a large constant index",
     lambda: amplifier([C.node("Gather", ["wide", "many"], ["boom"], [C.attr("axis", C.A_INT, 0)], name="gather_bomb")],
                       [_zeros("wide", [2, 1 << 16]), _zeros("many", [1 << 12], C.INT64)], "boom"),
     ["'gather_bomb'", "[4096, 65536]", str(TENSOR)]),
    ("Concat doubling a tensor 20 times",
     lambda: amplifier([C.node("Concat", [f"c{i}", f"c{i}"], [f"c{i + 1}"], [C.attr("axis", C.A_INT, 0)],
                               name=f"concat_{i}") for i in range(20)],
                       [_zeros("c0", [1 << 10])], "c20"),
     ["'concat_16'", "[134217728]", str(TENSOR)]),
    ("Expand to a shape computed through Shape -> Concat",
     lambda: amplifier([C.node("Shape", ["ids"], ["s"]),
                        C.node("Concat", ["s", "tail"], ["target"], [C.attr("axis", C.A_INT, 0)]),
                        C.node("Expand", ["one", "target"], ["boom"], name="computed_expand")],
                       [_zeros("one", []), _i64("tail", [1 << 26])], "boom"),
     ["'computed_expand'", "[batch, 4, 67108864]", str(TENSOR)]),
    ("Reshape to a shape computed from the ids (data-dependent)",
     lambda: amplifier([C.node("Cast", ["ids"], ["ids64"], [C.attr("to", C.A_INT, C.INT64)]),
                        C.node("Reshape", ["table", "ids64"], ["boom"], name="data_reshape")], [], "boom"),
     ["'data_reshape'", "cannot be determined statically"]),
    ("a tensor that grows with the square of the batch",
     lambda: amplifier([C.node("Cast", ["ids"], ["f"], [C.attr("to", C.A_INT, C.FLOAT)]),
                        C.node("Transpose", ["f"], ["ft"]),
                        C.node("MatMul", ["f", "ft"], ["boom"], name="batch_square")], [], "boom"),
     ["'batch_square'", "[batch, batch]", "batch^2"]),
    ("many tensors each under the per-tensor bound, over the total",
     lambda: amplifier([C.node("Expand", ["one", "mid"], [f"e{i}"], name=f"expand_{i}") for i in range(8)],
                       [_zeros("one", []), _i64("mid", [TENSOR // 4])], "e7"),
     ["brings the tensors", str(TOTAL)]),
    ("Expand to a batch-dependent shape made by Mul (batch^2)",
     lambda: amplifier([C.node("Shape", ["ids"], ["s"]),
                        C.node("Mul", ["s", "s"], ["s2"]),
                        C.node("Expand", ["one", "s2"], ["boom"], name="square_expand")],
                       [_zeros("one", [])], "boom"),
     ["'square_expand'", "batch^2"]),
    ("LSTM whose gate scratch is huge (sequence from an Expand-free constant input)",
     lambda: amplifier([C.node("LSTM", ["xs", "W", "R"], ["y"], [C.attr("hidden_size", C.A_INT, 64)],
                               name="lstm_bomb")],
                       [_zeros("xs", [1 << 20, 1, 1]), _zeros("W", [1, 256, 1]), _zeros("R", [1, 256, 64])], "y"),
     ["'lstm_bomb'", str(TENSOR)]),
]


@pytest.mark.parametrize("case, build, expected", CASES, ids=[c[0] for c in CASES])
def test_crafted_amplifier_is_refused_naming_node_shape_and_bound(case, build, expected):
    message = _refusal(build())
    for part in expected:
        assert part in message, message
    assert len(message) <= limits.MAX_ERROR_CHARS


def test_a_computed_reshape_within_the_bounds_passes_with_its_shape():
    """tf2onnx's pattern: a target computed as Shape -> Slice -> Concat -> Cast passes and is exact."""
    data = amplifier([C.node("Shape", ["ids"], ["s"]),
                      C.node("Slice", ["s", "zero", "one"], ["b"]),
                      C.node("Concat", ["b", "minus1"], ["t32"], [C.attr("axis", C.A_INT, 0)]),
                      C.node("Cast", ["t32"], ["target"], [C.attr("to", C.A_INT, C.INT64)]),
                      C.node("Cast", ["ids"], ["f"], [C.attr("to", C.A_INT, C.FLOAT)]),
                      C.node("Reshape", ["f", "target"], ["flat"])],
                     [_i64("zero", [0]), _i64("one", [1]), _i64("minus1", [-1])], "flat")
    model = check_onnx(data)
    env, _ = infer_shapes(model["graph"], data)
    assert env["flat"].dims == (Batch(1, 1), C.WINDOW)


def test_the_same_amplifier_under_the_bound_passes():
    """The bound is what refuses: a 1 KiB Expand of the same construction passes."""
    check_onnx(amplifier([C.node("Expand", ["one", "big"], ["boom"])], [_zeros("one", []), _i64("big", [16, 16])],
                         "boom"))


# -- the control: raw onnxruntime really allocates the gigabytes ------------------------------------------------
RAW_ORT_LIMITED = r"""
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
import numpy as np
import onnxruntime as ort
data = open(sys.argv[1], "rb").read()
s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
print("loaded", flush=True)
out = s.run(None, {"ids": np.zeros((1, 4), np.int32)})
print("ran", [o.shape for o in out], flush=True)
"""


@needs_ort
def test_control_raw_onnxruntime_cannot_run_the_expand_bomb_in_2_gib(tmp_path):
    """The 4 GB Expand file (a few hundred bytes) fails on raw onnxruntime in a child limited to 2 GiB of
    address space: the attack is real. The same process shape runs the benign model fine."""
    bomb = amplifier([C.node("Expand", ["one", "big"], ["boom"], name="expand_bomb")],
                     [_zeros("one", []), _i64("big", [_N, _N])], "boom")
    assert len(bomb) < 2000
    for name, data in (("benign.onnx", C.window_model()), ("bomb.onnx", bomb)):
        (tmp_path / name).write_bytes(data)
    ok = subprocess.run([sys.executable, "-c", RAW_ORT_LIMITED, str(tmp_path / "benign.onnx")],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "ran" in ok.stdout, ok.stderr[-2000:]
    proc = subprocess.run([sys.executable, "-c", RAW_ORT_LIMITED, str(tmp_path / "bomb.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "ran" not in proc.stdout
    assert any(w in proc.stderr.lower() for w in ("alloc", "memory", "bad_alloc")), proc.stderr[-2000:]


@needs_ort
def test_rehashed_bundle_with_the_expand_bomb_is_refused_on_the_cli(tmp_path):
    """A seed-shaped variant (ids [N, 3] -> logits [N, 13]) carrying the bomb: one line, exit 3."""
    data = _add_outputs(seed_bytes("onnx-float32"), [])
    bomb = _inject(data, [C.node("Expand", ["one_", "big_"], ["boom"], name="expand_bomb")],
                   [_zeros("one_", []), _i64("big_", [_N, _N])], [("boom", C.FLOAT)])
    folder = rehashed_copy(tmp_path / "bundle", files={"onnx-float32": bomb})
    proc = run_cli("nextword-predict", str(folder), "hello how is", "--backend", "onnxruntime", "--variant",
                   "onnx-float32", timeout=60)
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'expand_bomb'" in proc.stderr and "Traceback" not in proc.stderr


def _inject(model_bytes, nodes, inits, outputs):
    """The model with nodes, initializers and outputs appended to its graph (wire level)."""
    out = b""
    for number, wire, first, value, end in C.fields(model_bytes):
        raw = model_bytes[first:end]
        if number == 7:
            extra = b"".join(C.f_bytes(1, n) for n in nodes) + b"".join(C.f_bytes(5, t) for t in inits)
            extra += b"".join(C.f_bytes(12, C.f_bytes(1, name) + C.f_bytes(2, C.f_bytes(1, C.f_int(1, elem))))
                              for name, elem in outputs)
            raw = C.f_bytes(7, bytes(model_bytes[value:end]) + extra)
        out += raw
    return out
