"""Static shape inference in the TFLite allow-list (runtime/allowlist/tflite_shapes.py): an allowed
operator whose kernel would compute output shapes other than the declared ones is refused.

The attack: declared sizes are bounded, but each kernel's Prepare resizes its outputs from its inputs'
shapes. GATHER of a [2, N] constant by an [N] constant index, or ADD of [N, 1] and [1, N] constants,
declares a [1, 1] output and gets [N, N]: N = 32768 is 4 GiB from a file of a few hundred KB. The
controls run the raw interpreters (no allow-list) in a child under an address-space limit: they resize
the output to [N, N] and allocate it, and at N = 32768 they fail (tflite-runtime 2.14 dies with SIGSEGV
on the GATHER). Crafted models come from tests/crafted_tflite.py."""

import json
import os
import resource
import subprocess
import sys

import pytest

import crafted_tflite as C
from nextword.runtime.allowlist.tflite import ALLOWED_OPS, NotAllowed, check_tflite_structure
from nextword.runtime.allowlist.tflite_shapes import RULES
from support import REPO, SEED_BUNDLE, command_path, installed_packages
from test_allowlist_tflite import EXIT_TYPED, LOAD, TARGET, TFLITE_FILES, _json, rehashed_bundle

TFLITE_PACKAGES = [p for p in installed_packages() if p in ("ai-edge-litert", "tflite-runtime")]
F32, I32, BOOL = C.FLOAT32, C.INT32, C.BOOL
ROWS = C.WINDOW_ROWS            # [1, 4, 11] float32, written by the base model's GATHER
BIG, SMALL = 32768, 4096        # [BIG, BIG] float32 is 4 GiB; [SMALL, SMALL] is 64 MiB
ADDRESS_LIMIT = 3 << 29         # 1.5 GiB of address space for every child that may meet an amplifier


def gather_amplifier(n, declared=(1, 1)):
    """GATHER n rows of a [2, n] constant: output [n, n] whatever is declared."""
    return C.op_model(C.GATHER, [([2, n], F32, [1.0] * 2 * n), ([n], I32, [0] * n)], [(list(declared), F32)])


def outer(code, n, ttype=F32, declared=(1, 1)):
    """ADD / MUL / LESS of an [n, 1] and a [1, n] constant: broadcast to [n, n]."""
    one = 1.0 if ttype == F32 else 1
    out = BOOL if code == C.LESS else ttype
    return C.op_model(code, [([n, 1], ttype, [one] * n), ([1, n], ttype, [one] * n)], [(list(declared), out)])


def fc_amplifier(n, declared=(1, 1)):
    """FULLY_CONNECTED of an [n] input with [n, 1] weights: n rows of one, n units -> [n, n]."""
    return C.op_model(C.FULLY_CONNECTED, [([n], F32, [1.0] * n), ([n, 1], F32, [2.0] * n), -1],
                      [(list(declared), F32)])


def reshape(new_shape, declared):
    """RESHAPE the [1, 4, 11] rows by a constant new shape."""
    return C.op_model(C.RESHAPE, [ROWS, ([len(new_shape)], I32, list(new_shape))], [(list(declared), F32)])


def split(axis, parts, declared):
    return C.op_model(C.SPLIT, [([], I32, [axis]), ROWS], [(list(declared), F32)] * parts,
                      {0: C.Scalar("i", parts)})


def unpack(axis, num, declared):
    return C.op_model(C.UNPACK, [ROWS], [(list(declared), F32)] * num, {0: C.Scalar("i", num), 1: C.Scalar("i", axis)})


def select(cond_shape, declared):
    """LESS of two int32 constants (a non-constant bool), then SELECT between two [1, 4] int32 constants."""
    k = 1
    for d in cond_shape:
        k *= d
    return C.ops_model([(C.LESS, [(list(cond_shape), I32, [0] * k), (list(cond_shape), I32, [1] * k)],
                         [(list(cond_shape), BOOL)], None),
                        (C.SELECT, [("out", 0), ([1, 4], I32, [1] * 4), ([1, 4], I32, [2] * 4)],
                         [(list(declared), I32)], None)])


# case: (model, words the refusal must hold: operator, computed shape, declared shape)
AMPLIFIERS = {
    "add-outer-product": (lambda: outer(C.ADD, BIG), ["(ADD)", "[32768, 32768]", "declares [1, 1]"]),
    "add-int32-outer-product": (lambda: outer(C.ADD, BIG, I32), ["(ADD)", "[32768, 32768]", "declares [1, 1]"]),
    "mul-outer-product": (lambda: outer(C.MUL, BIG), ["(MUL)", "[32768, 32768]", "declares [1, 1]"]),
    "less-outer-product": (lambda: outer(C.LESS, BIG, I32), ["(LESS)", "[32768, 32768]", "declares [1, 1]"]),
    "gather-big-index-constant": (lambda: gather_amplifier(BIG), ["(GATHER)", "[32768, 32768]", "declares [1, 1]"]),
    "fully-connected-outer-product": (lambda: fc_amplifier(BIG), ["(FULLY_CONNECTED)", "[32768, 32768]",
                                                                  "declares [1, 1]"]),
    "fully-connected-rows-mismatch": (lambda: C.op_model(C.FULLY_CONNECTED, [ROWS, ([11, 11], F32, [0.5] * 121), -1],
                                                         [([1, 11], F32)]), ["(FULLY_CONNECTED)", "[4, 11]",
                                                                             "declares [1, 11]"]),
    "fully-connected-bias-mismatch": (lambda: C.op_model(C.FULLY_CONNECTED, [ROWS, ([11, 11], F32, [0.5] * 121),
                                                                             ([7], F32, [0.0] * 7)], [([4, 11], F32)]),
                                      ["(FULLY_CONNECTED)", "bias has 7 elements for 11 units"]),
    "reshape-to-a-bigger-shape": (lambda: reshape([1000, 1000], [1000, 1000]), ["(RESHAPE)", "[1000, 1000]",
                                                                                "44 elements"]),
    "reshape-shape-not-declared": (lambda: reshape([2, 22], [4, 11]), ["(RESHAPE)", "[2, 22]", "declares [4, 11]"]),
    "reshape-two-stretch-dims": (lambda: reshape([-1, -1], [4, 11]), ["(RESHAPE)", "at most one -1"]),
    "split-output-not-declared": (lambda: split(1, 2, [1, 4, 11]), ["(SPLIT)", "[1, 2, 11]", "declares [1, 4, 11]"]),
    "split-uneven": (lambda: split(2, 2, [1, 4, 11]), ["(SPLIT)", "cannot be split into 2"]),
    "unpack-output-not-declared": (lambda: unpack(2, 11, [4, 1]), ["(UNPACK)", "[1, 4]", "declares [4, 1]"]),
    "select-output-not-declared": (lambda: select([1, 4], [4, 4]), ["(SELECT)", "[1, 4]", "declares [4, 4]"]),
    "select-shapes-disagree": (lambda: select([3], [1, 4]), ["(SELECT)", "needs equal shapes"]),
    "empty-dimension": (lambda: outer(C.ADD, 4, declared=(4, 0)), ["(ADD)", "empty dimension"]),
}

# the same operators declared honestly (small): allowed, so the rules compute shapes, not refuse ops
HONEST = {
    "add-broadcast": lambda: outer(C.ADD, 8, declared=(8, 8)),
    "add-int32-broadcast": lambda: outer(C.ADD, 8, I32, declared=(8, 8)),
    "mul-broadcast": lambda: outer(C.MUL, 8, declared=(8, 8)),
    "less-broadcast": lambda: outer(C.LESS, 8, I32, declared=(8, 8)),
    "add-vector-to-rows": lambda: C.op_model(C.ADD, [ROWS, ([11], F32, [1.0] * 11)], [([1, 4, 11], F32)]),
    "gather": lambda: gather_amplifier(8, declared=(8, 8)),
    "fully-connected-flattens": lambda: C.op_model(C.FULLY_CONNECTED, [ROWS, ([5, 11], F32, [0.5] * 55),
                                                                       ([5], F32, [0.0] * 5)], [([4, 5], F32)]),
    "fully-connected-outer": lambda: fc_amplifier(8, declared=(8, 8)),
    "reshape": lambda: reshape([4, 11], [4, 11]),
    "reshape-stretch": lambda: reshape([-1, 1, 11], [4, 1, 11]),
    "split": lambda: split(1, 2, [1, 2, 11]),
    "split-negative-axis": lambda: split(-1, 1, [1, 4, 11]),
    "unpack": lambda: unpack(2, 11, [1, 4]),
    "select": lambda: select([1, 4], [1, 4]),
    "select-rank-one-condition": lambda: select([1], [1, 4]),
}


def test_every_allowed_operator_has_a_shape_rule():
    assert set(RULES) == set(ALLOWED_OPS)


@pytest.mark.parametrize("name", TFLITE_FILES)
def test_every_demo_file_computes_its_declared_shapes(name):
    with open(os.path.join(SEED_BUNDLE, name), "rb") as f:
        check_tflite_structure(f.read())


@pytest.mark.parametrize("name", sorted(HONEST))
def test_honestly_declared_shapes_are_allowed(name):
    check_tflite_structure(HONEST[name]())


@pytest.mark.parametrize("name", sorted(AMPLIFIERS))
def test_a_shape_the_kernel_would_not_compute_is_refused_naming_it(name):
    make, words = AMPLIFIERS[name]
    with pytest.raises(NotAllowed) as info:
        check_tflite_structure(make())
    for w in words:
        assert w in str(info.value), (w, str(info.value))


def test_a_reshape_whose_new_shape_is_computed_at_run_time_is_refused():
    """The new shape written by an ADD (not a constant): the kernel would size the output from data."""
    data = C.ops_model([(C.ADD, [([2], I32, [4, 11]), ([2], I32, [0, 0])], [([2], I32)], None),
                        (C.RESHAPE, [ROWS, ("out", 0)], [([4, 11], F32)], None)])
    with pytest.raises(NotAllowed, match=r"\(RESHAPE\).*not a constant int32 tensor"):
        check_tflite_structure(data)


def test_a_split_whose_axis_is_computed_at_run_time_is_refused():
    data = C.ops_model([(C.ADD, [([], I32, [1]), ([], I32, [0])], [([], I32)], None),
                        (C.SPLIT, [("out", 0), ROWS], [([1, 2, 11], F32)] * 2, {0: C.Scalar("i", 2)})])
    with pytest.raises(NotAllowed, match=r"\(SPLIT\).*not a constant int32 tensor"):
        check_tflite_structure(data)


# -- controls: the raw interpreters really amplify ------------------------------------------------------
# No allow-list: build the interpreter, allocate, run once. Prints the shape the interpreter gave the
# amplified tensor and how much its resident memory grew (Linux /proc), under an address-space limit.
RAW = r"""
import json, resource, sys
def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
limit = int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
import numpy as np
package, path = sys.argv[1], sys.argv[2]
if package == "tflite-runtime":
    from tflite_runtime.interpreter import Interpreter
else:
    from ai_edge_litert.interpreter import Interpreter
before = resident()
it = Interpreter(model_content=open(path, "rb").read())
it.allocate_tensors()
shape = [list(map(int, t["shape"])) for t in it.get_tensor_details() if t["name"] == "out_0"][0]
d = it.get_input_details()[0]
it.set_tensor(d["index"], np.ones(d["shape"], np.int32))
it.invoke()
grew = resident() - before
print(json.dumps({"shape": shape, "grew": grew}))
"""


def _raw(package, data, tmp_path):
    path = tmp_path / "amplifier.tflite"
    path.write_bytes(data)
    return subprocess.run([sys.executable, "-c", RAW, package, str(path), str(ADDRESS_LIMIT)], capture_output=True,
                          text=True, timeout=120)


CONTROLS = {"gather": gather_amplifier, "add-int32": lambda n: outer(C.ADD, n, I32)}


@pytest.mark.parametrize("case", sorted(CONTROLS))
@pytest.mark.parametrize("package", TFLITE_PACKAGES)
def test_control_the_raw_interpreter_allocates_the_computed_shape_not_the_declared_one(package, case, tmp_path):
    """[SMALL, SMALL] declared [1, 1]: the interpreter resizes it and its resident memory grows by
    ~64 MiB, over 1,000 times the file."""
    data = CONTROLS[case](SMALL)
    proc = _raw(package, data, tmp_path)
    assert proc.returncode == 0, proc.stderr[-800:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["shape"] == [SMALL, SMALL], out
    assert out["grew"] > 60 * 2 ** 20 and out["grew"] > 1000 * len(data), (out, len(data))


@pytest.mark.parametrize("case", sorted(CONTROLS))
@pytest.mark.parametrize("package", TFLITE_PACKAGES)
def test_control_the_raw_interpreter_fails_on_the_full_size_amplifier(package, case, tmp_path):
    """[BIG, BIG] = 4 GiB from a file under 400 KB: under a 1.5 GiB address limit the raw interpreter
    fails (RuntimeError / MemoryError) or dies (tflite-runtime 2.14's GATHER: SIGSEGV)."""
    data = CONTROLS[case](BIG)
    assert len(data) < 400_000
    proc = _raw(package, data, tmp_path)
    assert proc.returncode != 0, proc.stdout
    assert proc.returncode < 0 or "MemoryError" in proc.stderr or "RuntimeError" in proc.stderr, proc.stderr[-800:]


# -- through the predictor and the CLI: refused before any interpreter ------------------------------------
def _limited():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_LIMIT, ADDRESS_LIMIT))


@pytest.mark.parametrize("case", sorted(CONTROLS))
@pytest.mark.parametrize("package", TFLITE_PACKAGES)
def test_predictor_refuses_an_amplifier_in_a_rehashed_bundle(package, case, tmp_path):
    folder = rehashed_bundle(tmp_path / "b", TARGET, CONTROLS[case](BIG))
    proc = subprocess.run([sys.executable, "-c", LOAD, folder, package, TARGET], capture_output=True, text=True,
                          timeout=120, preexec_fn=_limited,
                          env=dict(os.environ, NEXTWORD_PROBE_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == EXIT_TYPED, (proc.returncode, proc.stderr[-800:])
    out = _json(proc)
    assert out["error"] == "VariantUnavailable" and "[32768, 32768]" in out["message"], out
    assert "float32.tflite" in out["message"] and "before" in out["message"], out


@pytest.mark.parametrize("package", TFLITE_PACKAGES)
def test_cli_refuses_the_gather_amplifier_in_one_line(package, tmp_path):
    folder = rehashed_bundle(tmp_path / "b", TARGET, gather_amplifier(BIG))
    proc = subprocess.run([command_path("nextword-predict"), folder, "hello how is", "--backend", package, "--variant",
                           TARGET], capture_output=True, text=True, timeout=120, cwd=REPO, preexec_fn=_limited,
                          env=dict(os.environ, NEXTWORD_PROBE_CACHE=str(tmp_path / "cache")))
    assert proc.returncode == 3, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr and "(GATHER)" in lines[0], proc.stderr
