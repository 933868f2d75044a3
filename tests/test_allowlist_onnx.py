"""The ONNX allow-list (issue 12, Severe 2 and 4, and the ONNX side of Severe 3): a pure-Python walk of
the ModelProto refuses, before onnxruntime sees a byte, every file that names an external file, uses an
operator, opset, type or structure the exporter never produces, or breaks a bound; and onnxruntime
never receives a thread count outside 1 .. limits.max_threads().

Crafted files come from tests/crafted_onnx.py (a tiny protobuf encoder: no `onnx` package needed). The
controls run the same bytes on raw onnxruntime in a child process and show the attack is real here:
the secret file's bytes come back as weights, the Loop never ends. The allow-list itself is pure Python,
so its tests run in every environment; the onnxruntime cases exist only where onnxruntime is installed
(decided at collection time)."""

import json
import os
import random
import subprocess
import sys
import time

import pytest

import crafted_onnx as C
from nextword.runtime import Predictor, limits
from nextword.runtime.allowlist.onnx import ONNX_OPS, ONNX_OPSETS, OnnxRefused, check_onnx
from nextword.runtime.backends.chain import open_backend
from nextword.runtime.backends.onnx import OnnxBackend
from nextword.runtime.bundle import Bundle
from nextword.runtime.errors import InputError, VariantUnavailable
from support import SEED_BUNDLE, installed_packages, rehashed_copy, run_cli

ORT = "onnxruntime" in installed_packages()


def needs_ort(test):
    """An onnxruntime case, run as package=onnxruntime; not collected where onnxruntime is not installed
    (the legacy stack): decided at collection time, never a skip."""
    return pytest.mark.parametrize("package", ["onnxruntime"])(test) if ORT else None


with open(os.path.join(SEED_BUNDLE, "manifest.json"), encoding="utf-8") as _f:
    MANIFEST = json.load(_f)
ONNX_VARIANTS = sorted(n for n, v in MANIFEST["variants"].items() if v["format"] == "onnx")
SECRET = b"TOP-SECRET-KEY: hunter2; " * 20     # 500 bytes >= one 11 x 11 float32 table (484 bytes)


def _refusal(data):
    """The OnnxRefused message for `data` (fails the test if the file passes or anything else is raised)."""
    with pytest.raises(OnnxRefused) as info:
        check_onnx(data)
    return str(info.value)


# -- what the exporter produces passes -------------------------------------------------------------------
@pytest.mark.parametrize("name", ONNX_VARIANTS)
def test_every_seed_onnx_file_passes_and_its_ops_are_allowed(name):
    v = MANIFEST["variants"][name]
    with open(os.path.join(SEED_BUNDLE, v["file"]), "rb") as f:
        check_onnx(f.read())
    allowed = set().union(*ONNX_OPS.values())
    assert set(v["details"]["ops"]) <= allowed
    for o in v["details"]["opset"]:
        assert o["version"] in ONNX_OPSETS[o["domain"]]


@pytest.mark.tf
def test_every_onnx_file_of_a_fresh_export_passes(tiny_bundle_dir):
    """The exporter as installed now (not only the committed seed) writes files the allow-list accepts."""
    b = Bundle.open(tiny_bundle_dir)
    onnx = [v for v in b.manifest.variants.values() if v.format == "onnx"]
    assert len(onnx) == 4
    for v in onnx:
        check_onnx(b.model_bytes(v))


@pytest.mark.tf
@pytest.mark.parametrize("opset", [13, 18])
def test_the_exporters_opset_range_ends_pass(keras_model, opset):
    """--opset takes 13..18: both ends, every ONNX family and kind, pass (17 is covered above)."""
    from nextword.export.step import convert_step_onnx
    from nextword.export.window import convert_onnx
    for convert in (convert_onnx, convert_step_onnx):
        for family in ("float32", "dynamic-int8"):
            data, _ = convert(keras_model, family, opset=opset)
            check_onnx(data)


def test_the_crafted_benign_model_passes():
    """The encoder's baseline passes: each refusal below is caused by the one part a case changes."""
    assert check_onnx(C.window_model())["graph"]["node"][1]["op_type"] == "Gather"


@needs_ort
def test_the_crafted_benign_model_runs_on_onnxruntime(package):
    import numpy as np
    import onnxruntime as ort
    s = ort.InferenceSession(C.window_model(), providers=["CPUExecutionProvider"])
    out = s.run(None, {"ids": np.array([[0, 0, 0, 5]], np.int32)})[0]
    assert out.shape == (1, C.VOCAB) and abs(out[0, 0] - 5.0) < 1e-6 and abs(out[0, 3] - 5.03) < 1e-6


# -- crafted files, refused before any interpreter ---------------------------------------------------------
_EXTERNAL_TENSOR = C.tensor("x", [1], C.FLOAT, external={"location": "secret.txt", "length": 4}, data_location=1)
_BIG = 1 << 40

REFUSED = [
    # files
    ("external initializer", lambda: C.window_model(table=C.external_table("secret.txt")), "external file"),
    ("external initializer, data_location left DEFAULT", lambda: C.window_model(
        table=C.external_table("secret.txt", data_location=None)), "external file"),
    ("data_location EXTERNAL without entries", lambda: C.window_model(table=C.tensor(
        "table", [C.VOCAB, C.VOCAB], C.FLOAT, data_location=1)), "external file"),
    ("absolute path", lambda: C.window_model(table=C.external_table("/etc/passwd")), "'/etc/passwd'"),
    ("Constant node holding external data", lambda: C.constant_external_model("secret.txt"), "external file"),
    ("external data inside an If branch", lambda: C.if_model(then_inits=[_EXTERNAL_TENSOR]), "external file"),
    ("external data inside a local function", lambda: C.function_model("secret.txt"), "external file"),
    ("external data in a sparse initializer", lambda: C.window_model(graph_extra=C.f_bytes(
        15, C.f_bytes(1, _EXTERNAL_TENSOR) + C.f_bytes(2, C.tensor("i", [1], C.INT64, raw=bytes(8)))
        + C.f_int(3, 1))), "external file"),
    ("EPContext node naming a cache file", lambda: C.window_model(
        opsets=(("", 17), ("com.microsoft", 1)),
        extra_nodes=[C.node("EPContext", ["ids"], ["ctx"], [C.attr("ep_cache_context", C.A_STRING, "secret.txt"),
                                                            C.attr("embed_mode", C.A_INT, 0)],
                            domain="com.microsoft")]), "'EPContext'"),
    # control flow and structure
    ("Loop with a huge trip count", lambda: C.loop_model(), "'Loop'"),
    ("If with subgraphs", lambda: C.if_model(), "'If'"),
    ("Scan with a body", lambda: C.scan_model(), "'Scan'"),
    ("graph attribute on an allowed op", lambda: C.window_model(index_node=C.node(
        "Gather", ["ids", "last"], ["word"], [C.attr("axis", C.A_INT, 1),
                                              C.attr("sneaky", C.A_GRAPH, C.graph([], [], []))])), "GRAPH"),
    ("tensor attribute on an allowed op", lambda: C.window_model(index_node=C.node(
        "Gather", ["ids", "last"], ["word"], [C.attr("axis", C.A_INT, 1),
                                              C.attr("v", C.A_TENSOR, C.tensor("t", [1], C.FLOAT, raw=bytes(4)))])),
        "TENSOR"),
    ("model-local function", lambda: C.function_model(), "local functions"),
    ("unknown domain", lambda: C.window_model(opsets=(("", 17), ("com.evil", 1)), extra_nodes=[
        C.node("Exfiltrate", ["ids"], ["x"], domain="com.evil")]), "'com.evil'"),
    ("custom op in the default domain", lambda: C.window_model(extra_nodes=[C.node("MyOp", ["ids"], ["x"])]),
     "'MyOp'"),
    ("allowed op in an unimported domain", lambda: C.window_model(extra_nodes=[
        C.node("DynamicQuantizeLSTM", ["ids"], ["x"], domain="com.microsoft")]), "does not import"),
    ("opset 99", lambda: C.window_model(opsets=(("", 99),)), "version 99"),
    ("opset 19", lambda: C.window_model(opsets=(("", 19),)), "version 19"),
    ("opset 12", lambda: C.window_model(opsets=(("", 12),)), "version 12"),
    ("ai.onnx imported twice", lambda: C.window_model(opsets=(("", 17), ("ai.onnx", 13))), "twice"),
    ("no opset", lambda: C.window_model(opsets=()), "no ai.onnx opset"),
    ("IR version 99", lambda: C.window_model(ir_version=99), "IR version 99"),
    ("ort_config metadata (session options, threads included)", lambda: C.window_model(model_extra=C.f_bytes(
        14, C.entry("ort_config", '{"session_options": {"intra_op_num_threads": 1000000}}'))), "'ort_config'"),
    ("training info", lambda: C.window_model(model_extra=C.f_bytes(20, b"")), "field 20"),
    # tensors
    ("string tensor", lambda: C.window_model(extra_inits=[C.tensor("s", [2], C.STRING, strings=[b"a", b"b"])]),
     "STRING"),
    ("float16 tensor (no float16 ONNX variant exists)", lambda: C.window_model(extra_inits=[
        C.tensor("h", [1], C.FLOAT16, raw=bytes(2))]), "FLOAT16"),
    ("raw_data shorter than dims", lambda: C.window_model(table=C.tensor(
        "table", [C.VOCAB, C.VOCAB], C.FLOAT, raw=C.table_values()[:-4])), "needs 484 bytes"),
    ("raw_data longer than dims", lambda: C.window_model(table=C.tensor(
        "table", [C.VOCAB, C.VOCAB], C.FLOAT, raw=C.table_values() + bytes(4))), "needs 484 bytes"),
    ("float_data count not matching dims", lambda: C.window_model(table=C.tensor(
        "table", [C.VOCAB, C.VOCAB], C.FLOAT, float_count=3)), "121 values"),
    ("raw_data and float_data both", lambda: C.window_model(table=C.tensor(
        "table", [C.VOCAB, C.VOCAB], C.FLOAT, raw=C.table_values(), float_count=121)), "2 fields"),
    ("shape but no data", lambda: C.window_model(table=C.tensor("table", [C.VOCAB, C.VOCAB], C.FLOAT)),
     "holds no values"),
    ("huge dims", lambda: C.window_model(extra_inits=[C.tensor("big", [_BIG, _BIG], C.FLOAT, raw=b"")]),
     f"dimension {_BIG}"),
    ("negative dim", lambda: C.window_model(extra_inits=[C.tensor("neg", [-1], C.FLOAT, raw=b"")]),
     "dimension -1"),
    ("rank 9", lambda: C.window_model(extra_inits=[C.tensor("r", [1] * 9, C.FLOAT, raw=bytes(4))]),
     "9 dimensions"),
    ("segmented tensor", lambda: C.window_model(table=C.tensor("table", [C.VOCAB, C.VOCAB], C.FLOAT,
                                                                raw=C.table_values(), extra=C.f_bytes(3, b""))),
     "field 3"),
    ("sequence-typed input", lambda: C.window_model(graph_extra=C.f_bytes(
        11, C.f_bytes(1, "seq") + C.f_bytes(2, C.f_bytes(4, b"")))), "field 4"),
    ("huge declared input dimension", lambda: C.window_model(graph_extra=C.f_bytes(
        11, C.value_info("wide", C.FLOAT, [_BIG]))), f"dimension {_BIG}"),
    # wire format
    ("two graph fields (a parser merges them)", lambda: C.window_model() + C.f_bytes(7, C.graph(
        [C.node("Loop", [], [])], [], [])), "appears twice"),
    ("unknown field", lambda: C.window_model(model_extra=C.f_int(99, 1)), "field 99"),
    ("group wire type", lambda: C.window_model(model_extra=C.key(30, 3)), "wire type 3"),
    ("wrong wire type for a known field", lambda: C.window_model(model_extra=C.f_bytes(1, b"8")), "wire type 2"),
    ("non-UTF-8 name", lambda: C.window_model(extra_inits=[C.tensor(b"\xff\xfe", [1], C.FLOAT, raw=bytes(4))]),
     "UTF-8"),
    ("truncated varint", lambda: C.window_model() + b"\x08\x80", "truncated varint"),
    ("over-long varint", lambda: C.window_model() + b"\x08" + b"\xff" * 11, "longer than 10"),
    ("length past the end", lambda: C.window_model() + C.key(6, 2) + C.varint(1 << 40), "claims"),
    ("packed ints with a truncated varint", lambda: C.window_model(table=C.tensor(
        "table", [C.VOCAB], C.INT32) + C.f_bytes(5, b"\x01" * 10 + b"\x80")), "truncated or over-long"),
    ("empty file", lambda: b"", "IR version 0"),
    ("not protobuf", lambda: b"\xff" * 64, "not a protobuf"),
]


@pytest.mark.parametrize("case,build,expected", REFUSED, ids=[c[0] for c in REFUSED])
def test_crafted_file_is_refused_with_a_message(case, build, expected):
    data = build()
    started = time.monotonic()
    message = _refusal(data)
    assert time.monotonic() - started < 30
    assert expected in message, message


def test_nesting_is_bounded_without_recursion_errors():
    """3,000 nested graph attributes (9,000 messages deep): a recursive reader without a bound would
    raise RecursionError; this one stops at MAX_ONNX_DEPTH."""
    message = _refusal(C.nested_bytes(3000))
    assert f"deeper than {limits.MAX_ONNX_DEPTH}" in message
    message = _refusal(C.nested_if_model(40))
    assert "deeper" in message or "'If'" in message


def test_field_count_is_bounded():
    """More protobuf fields than MAX_ONNX_FIELDS (one node with a million inputs): refused, in bounded time."""
    many = C.node("Concat", ["ids"] * (limits.MAX_ONNX_FIELDS + 10), ["x"], [C.attr("axis", C.A_INT, 0)])
    started = time.monotonic()
    assert "more protobuf fields" in _refusal(C.window_model(extra_nodes=[many]))
    assert time.monotonic() - started < 30


def test_node_count_is_bounded():
    nodes = [C.node("Not", ["c"], [f"n{i}"]) for i in range(limits.MAX_ONNX_NODES)]
    assert f"at most {limits.MAX_ONNX_NODES}" in _refusal(C.window_model(extra_nodes=nodes))


def test_every_prefix_of_a_model_is_refused():
    """Truncated anywhere (a half-copied or cut file, rehashed): a typed refusal, never another exception."""
    data = C.window_model()
    for n in range(len(data)):
        _refusal(data[:n])


@pytest.mark.parametrize("name", ONNX_VARIANTS)
def test_byte_flips_in_seed_files_give_a_refusal_or_a_pass_never_a_crash(name):
    with open(os.path.join(SEED_BUNDLE, MANIFEST["variants"][name]["file"]), "rb") as f:
        data = f.read()
    rng = random.Random(name)
    refused = 0
    for _ in range(150):
        flipped = bytearray(data)
        for _ in range(rng.randrange(1, 8)):
            i = rng.randrange(len(flipped))
            flipped[i] ^= 1 << rng.randrange(8)
        try:
            check_onnx(bytes(flipped))
        except OnnxRefused:
            refused += 1
    assert refused > 0


# -- rehashed bundles on the real stack --------------------------------------------------------------------
def _rehashed(root, replacements):
    """A copy of the seed bundle with variant files replaced and the manifest's sha256/size rewritten,
    onnx-float32 tried before onnx-dynamic-int8 whatever the export measured (the cases below replace
    onnx-float32 and expect the other to serve after it is skipped)."""
    return rehashed_copy(os.path.join(str(root), "bundle"), files=replacements, edit=_onnx_float32_first)


def _onnx_float32_first(m):
    pref = m.get("preference", [])
    slots = [i for i, e in enumerate(pref) if e["package"] == "onnxruntime" and i > 0]   # the default stays first
    ordered = sorted((pref[i] for i in slots), key=lambda e: e["variant"] != "onnx-float32")
    for i, e in zip(slots, ordered):
        pref[i] = e


RAW_ORT = r"""
import sys
import numpy as np
import onnxruntime as ort
data = open(sys.argv[1], "rb").read()
s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
print("loaded", flush=True)
out = s.run(None, {"ids": np.zeros((1, 4), np.int32)})[0]
sys.stdout.write(out.tobytes().hex())
"""

# Predictor.load in a child whose working directory holds the secret; an audit hook records any
# Python-level open of it (a native open by onnxruntime is caught by the FIFO case below).
GUARDED = r"""
import json, os, sys
secret = os.path.abspath("secret.txt")
opened = []
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)) and os.path.abspath(os.fsdecode(args[0])) == secret:
        opened.append(os.fsdecode(args[0]))
sys.addaudithook(hook)
from nextword.runtime import Predictor, NextwordError
bundle, variant = sys.argv[1], (None if sys.argv[2] == "-" else sys.argv[2])
try:
    p = Predictor.load(bundle, backend="onnxruntime", variant=variant)
    out = {"ok": True, "variant": p.info()["variant"], "word": p.predict_next("hello how is"), "skipped": p.skipped}
except NextwordError as e:
    out = {"ok": False, "error": type(e).__name__, "message": str(e)}
out["opened"] = opened
print(json.dumps(out))
"""


def _child(code, *args, cwd, timeout):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env=dict(os.environ))


@pytest.fixture
def secret_cwd(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "secret.txt").write_bytes(SECRET)
    return cwd


@needs_ort
def test_control_raw_onnxruntime_reads_the_secret_from_the_working_directory(package, secret_cwd, tmp_path):
    """The attack is real here: fed from bytes, onnxruntime loads the table from ./secret.txt."""
    path = tmp_path / "evil.onnx"
    path.write_bytes(C.window_model(table=C.external_table("secret.txt")))
    proc = _child(RAW_ORT, path, cwd=secret_cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    assert SECRET[:4 * C.VOCAB] == bytes.fromhex(proc.stdout.split("loaded")[-1].strip())


@needs_ort
def test_external_data_is_refused_and_the_secret_never_opened(package, secret_cwd, tmp_path):
    evil = C.window_model(table=C.external_table("secret.txt"))
    bundle = _rehashed(tmp_path, {"onnx-float32": evil})
    proc = _child(GUARDED, bundle, "onnx-float32", cwd=secret_cwd, timeout=120)
    assert proc.returncode == 0, proc.stderr[-800:]
    out = json.loads(proc.stdout)
    assert out["ok"] is False and out["error"] == "VariantUnavailable", out
    assert "external file" in out["message"] and "float32.onnx" in out["message"]
    assert out["opened"] == []
    # auto: the hostile file is skipped with its reason, the next ONNX variant serves
    out = json.loads(_child(GUARDED, bundle, "-", cwd=secret_cwd, timeout=120).stdout)
    assert out["ok"] is True and out["variant"] == "onnx-dynamic-int8" and out["word"] == "your", out
    assert any("onnx-float32" in s and "external file" in s for s in out["skipped"]), out["skipped"]
    assert out["opened"] == []


@needs_ort
def test_the_secret_is_never_read_by_native_code_either(package, secret_cwd, tmp_path):
    """The audit hook sees only Python's opens; the file's access time sees every read (relatime updates
    it when it is older than the modification time). Guarded load first: the secret stays unread; then
    raw onnxruntime on the same bytes: it is read (the control, proving the detector works here)."""
    secret = secret_cwd / "secret.txt"
    os.utime(secret, (1000, time.time()))
    evil = C.window_model(table=C.external_table("secret.txt"))
    out = json.loads(_child(GUARDED, _rehashed(tmp_path, {"onnx-float32": evil}), "onnx-float32",
                            cwd=secret_cwd, timeout=120).stdout)
    assert out["error"] == "VariantUnavailable", out
    guarded_atime = os.stat(secret).st_atime
    path = tmp_path / "evil.onnx"
    path.write_bytes(evil)
    assert _child(RAW_ORT, path, cwd=secret_cwd, timeout=120).returncode == 0
    if os.stat(secret).st_atime == 1000:
        pytest.skip("this filesystem does not record reads in the access time (noatime)")
    assert guarded_atime == 1000


@needs_ort
def test_cli_refuses_external_data_in_one_line(package, secret_cwd, tmp_path):
    bundle = _rehashed(tmp_path, {"onnx-float32": C.window_model(table=C.external_table("secret.txt"))})
    proc = run_cli("nextword-predict", bundle, "hello how is", "--backend", "onnxruntime", "--variant",
                   "onnx-float32", cwd=str(secret_cwd), timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "external file" in proc.stderr and proc.stdout == ""
    assert "hunter2" not in proc.stderr + proc.stdout


@needs_ort
def test_control_raw_onnxruntime_never_finishes_the_loop(package, tmp_path):
    """A Loop with trip count 2**62 loads and then runs without end on raw onnxruntime (killed after 5 s)."""
    path = tmp_path / "loop.onnx"
    path.write_bytes(C.loop_model())
    with pytest.raises(subprocess.TimeoutExpired) as info:
        _child(RAW_ORT, path, cwd=tmp_path, timeout=5)
    assert b"loaded" in (info.value.stdout or b"")   # it hangs in run(), not in loading


@needs_ort
def test_loop_is_refused_at_load_on_the_api_and_the_cli(package, tmp_path):
    bundle = _rehashed(tmp_path, {"onnx-float32": C.loop_model()})
    started = time.monotonic()
    out = json.loads(_child(GUARDED, bundle, "onnx-float32", cwd=tmp_path, timeout=60).stdout)
    assert out["error"] == "VariantUnavailable" and "'Loop'" in out["message"], out
    proc = run_cli("nextword-predict", bundle, "hello how is", "--backend", "onnxruntime", "--variant",
                   "onnx-float32", timeout=60)
    assert proc.returncode == 3 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "'Loop'" in proc.stderr and "Traceback" not in proc.stderr
    assert time.monotonic() - started < 60


# -- threads -------------------------------------------------------------------------------------------
@needs_ort
@pytest.mark.parametrize("threads", [10 ** 6, 2 ** 31, limits.max_threads() + 1, 0, -1])
def test_out_of_range_threads_are_an_input_error_before_onnxruntime(package, threads):
    b = Bundle.open(SEED_BUNDLE)
    v = b.manifest.variants["onnx-float32"]
    started = time.monotonic()
    with pytest.raises(InputError) as info:
        OnnxBackend(b.model_bytes(v), v, package, threads)
    assert str(threads) in str(info.value)
    with pytest.raises(InputError):
        Predictor.load(SEED_BUNDLE, backend=package, variant="onnx-float32", num_threads=threads)
    assert time.monotonic() - started < 30


@needs_ort
@pytest.mark.parametrize("threads", [1.5, "2", True])
def test_thread_counts_of_the_wrong_type_are_refused(package, threads):
    b = Bundle.open(SEED_BUNDLE)
    v = b.manifest.variants["onnx-float32"]
    with pytest.raises(TypeError):
        OnnxBackend(b.model_bytes(v), v, package, threads)


@needs_ort
def test_the_largest_thread_count_still_loads(package):
    p = Predictor.load(SEED_BUNDLE, backend=package, variant="onnx-float32", num_threads=limits.max_threads())
    assert p.predict_next("hello how is") == "your"


@needs_ort
def test_a_refused_file_on_an_explicit_guard_never_reaches_the_probe_child(package, tmp_path):
    """open_backend(guard=True) checks ONNX before its child-process probe runs onnxruntime on the bytes."""
    bundle = _rehashed(tmp_path, {"onnx-float32": C.loop_model()})
    b = Bundle.open(bundle)
    v = b.manifest.variants["onnx-float32"]
    started = time.monotonic()
    with pytest.raises(VariantUnavailable, match="'Loop'"):
        open_backend(b.model_bytes(v), v, package, guard=True, sha256=v.sha256)
    assert time.monotonic() - started < 30
