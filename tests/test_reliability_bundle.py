"""Reliability of bundle loading (issue 6, items 2, 3 and 6): a seeded fuzz of the demo bundle's
manifest and vocabulary, paths that try to leave the bundle, special files, and one Predictor shared
by many threads. No TensorFlow: runs in all three environments.

Every fuzz case must end in a typed `NextwordError` or a working predictor, never another exception.
Model-byte damage, which can crash an interpreter, is tested in child processes in
test_runtime_damage.py."""

import copy
import json
import os
import random
import re
import shutil
import subprocess
import sys
import threading

import pytest

from nextword.runtime import Predictor
from nextword.runtime.bundle import MAX_PREFERENCE, Bundle, sha256_bytes
from nextword.runtime.errors import BundleInvalid, NextwordError
from support import SEED_BUNDLE, SEED_TEXTS, installed_packages

PACKAGES = installed_packages()
FORMAT_OF = {"ai-edge-litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx"}

with open(os.path.join(SEED_BUNDLE, "manifest.json"), "rb") as _f:
    MANIFEST_BYTES = _f.read()
MANIFEST = json.loads(MANIFEST_BYTES)
with open(os.path.join(SEED_BUNDLE, "vocab.json"), "rb") as _f:
    VOCAB_BYTES = _f.read()
VOCAB = json.loads(VOCAB_BYTES)
VOCAB_WORDS = {w for w, _ in VOCAB["word_counts"]}
# The variant Predictor.load picks here (the manifest's default, or the fallback where no interpreter for
# the default is installed, e.g. the legacy environment): the targeted mutations damage this one.
CHOSEN = Predictor.load(SEED_BUNDLE).variant.name

# -- helpers -----------------------------------------------------------------------------------
_BASE = {}


def _base_copy(tmp_path_factory):
    """One private copy of the demo bundle per session; cases hard-link its model files."""
    if "dir" not in _BASE:
        base = tmp_path_factory.mktemp("seed-copy") / "seed"
        shutil.copytree(SEED_BUNDLE, base)
        _BASE["dir"] = str(base)
    return _BASE["dir"]


def make_bundle(folder, base, manifest_bytes=None, vocab_bytes=None):
    """A bundle folder: the base's files (hard links, they are only read), with a replaced manifest/vocab."""
    os.makedirs(folder)
    for name in os.listdir(base):
        if name in ("manifest.json", "vocab.json"):
            continue
        try:
            os.link(os.path.join(base, name), os.path.join(folder, name))
        except OSError:
            shutil.copy(os.path.join(base, name), os.path.join(folder, name))
    with open(os.path.join(folder, "manifest.json"), "wb") as f:
        f.write(MANIFEST_BYTES if manifest_bytes is None else manifest_bytes)
    with open(os.path.join(folder, "vocab.json"), "wb") as f:
        f.write(VOCAB_BYTES if vocab_bytes is None else vocab_bytes)
    return folder


def outcome(folder):
    """'ok:<word>' for a working predictor (exercised through every call), else the typed error's class.
    Any other exception propagates and fails the test."""
    try:
        p = Predictor.load(folder)
    except NextwordError as e:
        assert str(e).strip(), "typed errors carry a message"
        return type(e).__name__
    word = p.predict_next("hello how is")
    assert word in VOCAB_WORDS
    best = p.top_k("hello how", k=3)
    assert len(best) == 3 and all(w in VOCAB_WORDS for w, _ in best)
    batch = p.top_k_batch(["hello how", "hello", ""], k=2)
    assert len(batch) == 3 and all(len(b) == 2 for b in batch)
    assert len(p.generate("hello", 2)) == 2
    assert p.info()["variant"] in p.bundle.manifest.variants
    return "ok:" + word


# -- manifest mutations -------------------------------------------------------------------------
WRONG_TYPES = [None, True, False, 0, -1, 1.5, "", "x", [], {}, [1, 2], {"a": 1}, 2 ** 64, -(2 ** 63), 1e308,
               float("nan"), float("inf"), "1", "../vocab.json"]
HOSTILE_NAMES = ["/etc/passwd", "../vocab.json", "..", ".", "", "sub/float32.tflite", "..\\vocab.json",
                 "C:\\vocab.json", "vocab.json\x00", ".hidden", "a" * 300, "float16.tflite", "manifest.json",
                 "/dev/zero", "./vocab.json", "parity.md"]
BAD_DTYPES = ["float64", "string", "INT32", "", "bool", "int4", "complex64"] + ["int8", "int64", "float16", "uint8"]


def _nodes(tree, path=()):
    """Every (path, value) in a JSON tree, root included."""
    yield path, tree
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _nodes(v, path + (i,))


def _set(tree, path, value):
    for p in path[:-1]:
        tree = tree[p]
    tree[path[-1]] = value


def _get(tree, path):
    for p in path:
        tree = tree[p]
    return tree


def _random_op(rng, m):
    """One structural mutation of manifest dict `m`, in place; returns its description."""
    nodes = [(p, v) for p, v in _nodes(m) if p]
    path, value = rng.choice(nodes)
    op = rng.choice(["delete", "retype", "retype", "huge", "negative", "extra", "shape", "dtype", "file",
                     "default", "sha", "list"])
    if op == "delete":
        parent = _get(m, path[:-1])
        del parent[path[-1]]
    elif op == "retype":
        _set(m, path, copy.deepcopy(rng.choice(WRONG_TYPES)))
    elif op == "huge":
        ints = [(p, v) for p, v in nodes if isinstance(v, int) and not isinstance(v, bool)]
        path, value = rng.choice(ints)
        _set(m, path, rng.choice([2 ** 31, 2 ** 63, 10 ** 30, 10 ** 300, value * 1000 + 1]))
    elif op == "negative":
        ints = [(p, v) for p, v in nodes if isinstance(v, (int, float)) and not isinstance(v, bool)]
        path, value = rng.choice(ints)
        _set(m, path, rng.choice([-1, -2, -value, -(2 ** 40), 0]))
    elif op == "extra":
        dicts = [(p, v) for p, v in _nodes(m) if isinstance(v, dict)]
        path, value = rng.choice(dicts)
        value[rng.choice(["extra", "file", "__proto__", "sha256", "exec", "pickle"])] = rng.choice(WRONG_TYPES)
    elif op == "shape":
        shapes = [p for p, v in nodes if p[-1] == "shape"]
        path = rng.choice(shapes)
        shape = list(_get(m, path))
        choice = rng.randrange(4)
        if choice == 0:
            shape[rng.randrange(len(shape))] = rng.choice([-5, 0, -1, 2 ** 40, 1.0, "4", None, 3, 12])
        elif choice == 1:
            shape.append(rng.choice([1, 4, 11]))
        elif choice == 2:
            shape = shape[:rng.randrange(len(shape))]
        else:
            shape = [rng.choice([-1, 1, 2, 4, 11]) for _ in shape]
        _set(m, path, shape)
    elif op == "dtype":
        path = rng.choice([p for p, v in nodes if p[-1] == "dtype"])
        _set(m, path, rng.choice(BAD_DTYPES))
    elif op == "file":
        path = rng.choice([p for p, v in nodes if p[-1] == "file"])
        _set(m, path, rng.choice(HOSTILE_NAMES))
    elif op == "default":
        m["default_variant"] = rng.choice(list(m["variants"]) + ["tflite-int4", "", "../x", "step-float32"])
    elif op == "sha":
        path = rng.choice([p for p, v in nodes if p[-1] == "sha256"])
        _set(m, path, rng.choice(["0" * 64, "", "zz", MANIFEST["tokenizer"]["sha256"],
                                  next(iter(MANIFEST["variants"].values()))["sha256"]]))
    else:  # list: a whole object replaced by a list of it, or a variant entry swapped with another
        names = list(m["variants"])
        a, b = rng.sample(names, 2)
        m["variants"][a], m["variants"][b] = m["variants"][b], m["variants"][a]
    return f"{op}@{'.'.join(map(str, path))}"


def _targeted():
    """Hand-picked mutations: each (description, function on a deepcopy of the manifest -> bytes)."""
    d = CHOSEN
    v0 = next(n for n in MANIFEST["variants"] if n != d)
    cases = []

    def js(fn):
        def build():
            m = copy.deepcopy(MANIFEST)
            fn(m)
            return json.dumps(m).encode()
        return build

    def raw(data):
        return lambda: data

    cases += [
        ("format_version newer", js(lambda m: m.update(format_version=2))),
        ("format_version 0", js(lambda m: m.update(format_version=0))),
        ("format_version string", js(lambda m: m.update(format_version="1"))),
        ("format_version float", js(lambda m: m.update(format_version=1.0))),
        ("format_version bool", js(lambda m: m.update(format_version=True))),
        ("format_version missing", js(lambda m: m.pop("format_version"))),
        ("no variants", js(lambda m: m.update(variants={}))),
        ("variants list", js(lambda m: m.update(variants=[]))),
        ("tokenizer missing", js(lambda m: m.pop("tokenizer"))),
        ("vocab_size huge", js(lambda m: m.update(vocab_size=10 ** 30))),
        ("vocab_size negative", js(lambda m: m.update(vocab_size=-11))),
        ("window zero", js(lambda m: m.update(window=0))),
        ("window huge", js(lambda m: m.update(window=2 ** 40))),
        ("window float", js(lambda m: m.update(window=4.0))),
        ("padding post", js(lambda m: m.update(padding="post"))),
        ("output softmax", js(lambda m: m.update(output="softmax"))),
        ("default_variant unknown", js(lambda m: m.update(default_variant="tflite-int4"))),
        ("default_variant null", js(lambda m: m.update(default_variant=None))),
        ("size negative", js(lambda m: m["variants"][d].update(size=-1))),
        ("size huge", js(lambda m: m["variants"][d].update(size=2 ** 62))),
        ("size off by one", js(lambda m: m["variants"][d].update(size=m["variants"][d]["size"] + 1))),
        ("sha256 wrong", js(lambda m: m["variants"][d].update(sha256="0" * 64))),
        ("vocab sha256 wrong", js(lambda m: m["tokenizer"].update(sha256="f" * 64))),
        ("vocab size wrong", js(lambda m: m["tokenizer"].update(size=1))),
        ("input dtype float32", js(lambda m: m["variants"][d]["inputs"][0].update(dtype="float32"))),
        ("input dtype int64 (model is int32)", js(lambda m: m["variants"][d]["inputs"][0].update(dtype="int64"))),
        ("input batch -1 on a fixed model",   # the TFLite files have a fixed batch of 1
         js(lambda m: (m.update(default_variant="tflite-float32", variants={
             n: dict(v, inputs=[dict(v["inputs"][0], shape=[-1, 4])])
             for n, v in m["variants"].items() if v["format"] == "tflite"})))),
        ("input shape negative", js(lambda m: m["variants"][d]["inputs"][0].update(shape=[1, -4]))),
        ("input shape 3-d", js(lambda m: m["variants"][d]["inputs"][0].update(shape=[1, 4, 1]))),
        ("output dtype int8 (model is float32)", js(lambda m: m["variants"][d]["outputs"][0].update(dtype="int8"))),
        ("output quantization on float",
         js(lambda m: m["variants"][d]["outputs"][0].update(quantization={"scale": 0.5, "zero_point": 3}))),
        ("output quantization NaN",
         js(lambda m: m["variants"][d]["outputs"][0].update(dtype="int8", quantization={"scale": float("nan"), "zero_point": 0}))),
        ("tensor name wrong", js(lambda m: m["variants"][d]["inputs"][0].update(name="input_1"))),
        ("kind step", js(lambda m: m["variants"][d].update(kind="step"))),
        ("format exe", js(lambda m: m["variants"][d].update(format="exe"))),
        ("runtimes says not ok everywhere",
         js(lambda m: [r.update(ok=False, reason="fuzz") for v in m["variants"].values() for r in v["runtimes"].values()])),
        ("runtimes entry not object", js(lambda m: m["variants"][d]["runtimes"].update(onnxruntime="yes"))),
        ("extra top-level fields", js(lambda m: m.update(pickle="cos\nsystem\n", eval="__import__('os')", exec=[1]))),
        ("file absolute", js(lambda m: m["variants"][d].update(file=os.path.join(SEED_BUNDLE, m["variants"][d]["file"])))),
        ("file ..", js(lambda m: m["variants"][d].update(file="../seed/" + m["variants"][d]["file"]))),
        ("vocab file ..", js(lambda m: m["tokenizer"].update(file="../vocab.json"))),
        ("vocab file absolute", js(lambda m: m["tokenizer"].update(file=os.path.join(SEED_BUNDLE, "vocab.json")))),
        ("vocab file is manifest", js(lambda m: m["tokenizer"].update(file="manifest.json"))),
        ("two variants share a file", js(lambda m: m["variants"][d].update(file=m["variants"][v0]["file"]))),
        # raw bytes: not JSON, half written, hostile JSON
        ("empty manifest", raw(b"")),
        ("truncated manifest", raw(MANIFEST_BYTES[: len(MANIFEST_BYTES) // 2])),
        ("manifest is a list", raw(b"[]")),
        ("manifest is null", raw(b"null")),
        ("invalid UTF-8", raw(b"\xff\xfe" + MANIFEST_BYTES)),
        ("UTF-8 BOM", raw(b"\xef\xbb\xbf" + MANIFEST_BYTES)),
        ("NUL bytes", raw(MANIFEST_BYTES.replace(b"\n", b"\x00", 3))),
        ("deeply nested JSON", raw(b"[" * 200_000 + b"]" * 200_000)),
        ("5000-digit number", raw(MANIFEST_BYTES.replace(b'"window": 4', b'"window": ' + b"9" * 5000))),
        ("NaN window", raw(MANIFEST_BYTES.replace(b'"window": 4', b'"window": NaN'))),
        ("Infinity size", raw(MANIFEST_BYTES.replace(b'"size": 395', b'"size": Infinity'))),
        ("duplicate keys (last wins)", raw(MANIFEST_BYTES.replace(b'"window": 4', b'"window": 4, "window": 7'))),
        ("over the 4 MB limit", raw(MANIFEST_BYTES[:-2] + b', "pad": "' + b"x" * (4 << 20) + b'"}')),
    ]
    return cases


TARGETED = _targeted()
N_RANDOM = 150 - len(TARGETED)   # the fuzz has a budget of 150 manifest cases in all


def _random_case(i):
    def build():
        rng = random.Random(6000 + i)
        m = copy.deepcopy(MANIFEST)
        for _ in range(rng.choice([1, 1, 2, 3])):
            _random_op(rng, m)
        return json.dumps(m).encode()
    return build


MANIFEST_CASES = TARGETED + [(f"random-{i:03d}", _random_case(i)) for i in range(N_RANDOM)]
RESULTS = {}


@pytest.mark.parametrize("name,build", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_manifest_fuzz_case_is_typed_error_or_working_predictor(name, build, tmp_path, tmp_path_factory):
    folder = make_bundle(str(tmp_path / "b"), _base_copy(tmp_path_factory), manifest_bytes=build())
    RESULTS[name] = result = outcome(folder)
    if name.startswith(("format_version newer",)):
        assert result == "UnsupportedVersion"
    elif name in ("sha256 wrong", "size off by one", "vocab sha256 wrong", "vocab size wrong",
                  "vocab file is manifest", "two variants share a file"):
        assert result == "HashMismatch"
    elif name == "extra top-level fields":   # unknown fields are ignored: the bundle still works
        assert result == "ok:your"
    elif name.startswith(("file ", "vocab file", "input dtype", "output dtype", "output quantization",
                          "tensor name", "input batch", "input shape", "over the", "deeply", "5000",
                          "empty manifest", "truncated", "invalid UTF-8", "NUL bytes", "UTF-8 BOM")):
        assert result == "BundleInvalid", result


def test_manifest_fuzz_summary(tmp_path, tmp_path_factory):
    """The fuzz did not degenerate: most cases are refused, some still work, every kind is typed."""
    for i, (name, build) in enumerate(MANIFEST_CASES):   # run alone (-k): compute the missing cases here
        if name not in RESULTS:
            RESULTS[name] = outcome(make_bundle(str(tmp_path / str(i)), _base_copy(tmp_path_factory), build()))
    kinds = {}
    for r in RESULTS.values():
        kinds[r.split(":")[0]] = kinds.get(r.split(":")[0], 0) + 1
    print("manifest fuzz outcomes:", kinds)
    assert kinds.get("BundleInvalid", 0) >= 60
    assert kinds.get("ok", 0) >= 1
    assert set(kinds) <= {"ok", "BundleInvalid", "HashMismatch", "UnsupportedVersion", "VariantUnavailable",
                          "BackendUnavailable"}


def test_every_fuzz_case_really_changes_its_input():
    """A mutation that silently matched nothing (bytes.replace, an edit that sets the value it found)
    would test the intact bundle under a misleading name."""
    same = [name for name, build in MANIFEST_CASES if build() == MANIFEST_BYTES]
    same += [name for name, data in VOCAB_CASES if data == VOCAB_BYTES]
    assert same == []


# -- what the runtime no longer handles is refused by the schema ---------------------------------
def _first(m, kind):
    return next(v for v in m["variants"].values() if v["kind"] == kind)


def _preference(m, entries):
    m["preference"] = entries
    first = entries[0].get("variant") if entries and isinstance(entries[0], dict) else None
    if first in m["variants"] and m["variants"][first]["kind"] == "window":   # as export writes it
        m["default_variant"] = first


def _pref(variant, package, score=1.0):
    return {"variant": variant, "package": package, "score": score}


TFLITE_WINDOW = next(n for n, v in MANIFEST["variants"].items() if v["kind"] == "window" and v["format"] == "tflite")
STEP = next(n for n, v in MANIFEST["variants"].items() if v["kind"] == "step")
REFUSED = [
    ("output probabilities", lambda m: m.update(output="probabilities"), "output must be 'logits'"),
    ("quantized logits", lambda m: _first(m, "window")["outputs"][0].update(
        dtype="int8", quantization={"scale": 0.5, "zero_point": 3}), "quantization must be absent"),
    ("quantized step state in", lambda m: _first(m, "step")["inputs"][1].update(
        dtype="int8", quantization={"scale": 0.02, "zero_point": 0}), "quantization must be absent"),
    ("int8 step state out", lambda m: _first(m, "step")["outputs"][2].update(dtype="int8"), "float32"),
    ("float16 logits", lambda m: _first(m, "window")["outputs"][0].update(dtype="float16"), "float32"),
    ("preference names an unknown variant", lambda m: _preference(m, [_pref("tflite-int4", "ai-edge-litert")]),
     "preference[0].variant must be a window variant"),
    ("preference names a step variant", lambda m: _preference(m, [_pref(STEP, "onnxruntime")]),
     "preference[0].variant must be a window variant"),
    ("preference package of the other format", lambda m: _preference(m, [_pref(TFLITE_WINDOW, "onnxruntime")]),
     "preference[0].package must be a package that runs tflite files"),
    ("preference too long", lambda m: _preference(m, [_pref(TFLITE_WINDOW, "ai-edge-litert")] * (MAX_PREFERENCE + 1)),
     f"at most {MAX_PREFERENCE} entries"),
    ("preference lists a pair twice", lambda m: _preference(m, [_pref(TFLITE_WINDOW, "ai-edge-litert")] * 2),
     "preference[1] must be a (variant, package) pair not listed before"),
    ("preference score NaN", lambda m: _preference(m, [_pref(TFLITE_WINDOW, "ai-edge-litert", float("nan"))]),
     "score must be a finite number"),
    ("preference disagrees with default_variant", lambda m: (
        _preference(m, [_pref(TFLITE_WINDOW, "ai-edge-litert")]),
        m.update(default_variant=next(n for n, v in m["variants"].items() if v["kind"] == "window" and n != TFLITE_WINDOW))),
     "default_variant must be the first variant of the preference"),
    ("preference is an object", lambda m: m.update(preference={"variant": TFLITE_WINDOW}), "preference must be a list"),
    ("cost keyed by a package of the other format", lambda m: m["variants"][TFLITE_WINDOW].update(
        cost={"onnxruntime": {"cold_start_ms": 1.0, "peak_rss_mib": 30.0, "call_us": 100.0, "runs": 3}}),
     "cost must be keyed by tflite packages"),
    ("cost with a negative time", lambda m: m["variants"][TFLITE_WINDOW].update(
        cost={"ai-edge-litert": {"cold_start_ms": -1.0, "peak_rss_mib": 30.0, "call_us": 100.0, "runs": 3}}),
     "cold_start_ms must be a finite number >= 0"),
    ("cost without runs", lambda m: m["variants"][TFLITE_WINDOW].update(
        cost={"ai-edge-litert": {"cold_start_ms": 1.0, "peak_rss_mib": 30.0, "call_us": 100.0}}),
     "missing field variants." + TFLITE_WINDOW + ".cost.ai-edge-litert.runs"),
]


@pytest.mark.parametrize("name,edit,expected", REFUSED, ids=[r[0] for r in REFUSED])
def test_schema_refuses_what_the_runtime_does_not_handle(name, edit, expected, tmp_path, tmp_path_factory):
    """Every model file and the vocabulary are intact (their hashes match): only the manifest says
    something the runtime has no code for, and it is refused naming what was expected."""
    m = copy.deepcopy(MANIFEST)
    edit(m)
    assert m != MANIFEST
    folder = make_bundle(str(tmp_path / "b"), _base_copy(tmp_path_factory), json.dumps(m).encode())
    with pytest.raises(BundleInvalid, match=re.escape(expected)):
        Bundle.open(folder)


def test_a_measured_preference_and_costs_within_bounds_are_accepted(tmp_path, tmp_path_factory):
    """The control for the refusals above: the same fields, well-formed, load."""
    m = copy.deepcopy(MANIFEST)
    windows = [(n, v["format"]) for n, v in m["variants"].items() if v["kind"] == "window"]
    pkgs = {"tflite": ["ai-edge-litert", "tflite-runtime"], "onnx": ["onnxruntime"]}
    entries = [_pref(n, p, float(i)) for i, (n, f) in enumerate(windows) for p in pkgs[f]][:MAX_PREFERENCE]
    _preference(m, entries)
    for n, f in windows:
        m["variants"][n]["cost"] = {p: {"cold_start_ms": 12.5, "peak_rss_mib": 31.0, "call_us": 99.0, "runs": 5}
                                    for p in pkgs[f]}
    folder = make_bundle(str(tmp_path / "b"), _base_copy(tmp_path_factory), json.dumps(m).encode())
    got = Bundle.open(folder).manifest
    assert [(e.variant, e.package, e.score) for e in got.preference] == [(e["variant"], e["package"], e["score"])
                                                                          for e in entries]
    assert got.variants[windows[0][0]].cost[pkgs[windows[0][1]][0]]["runs"] == 5


# -- vocabulary mutations with a re-computed hash ------------------------------------------------
def _vocab_cases():
    cases = [
        ("vocab not JSON", b"{not json"),
        ("vocab empty object", b"{}"),
        ("vocab list", b"[]"),
        ("vocab deep nesting", b"[" * 100_000 + b"]" * 100_000),
        ("vocab invalid UTF-8", VOCAB_BYTES.replace(b'"hello"', b'"hel\xfflo"')),
        ("vocab one word fewer", None),
        ("vocab one word more", None),
        ("vocab duplicate word", None),
        ("vocab lower not bool", None),
        ("vocab split empty", None),
        ("vocab count zero", None),
        ("vocab word not string", None),
        ("vocab oov token int", None),
        ("vocab num_words huge", None),
        ("vocab num_words zero", None),
        ("vocab format_version 2", None),
        ("vocab filters list", None),
        ("vocab document_count negative", None),
        ("vocab words reordered", None),
    ]
    edits = {
        "vocab one word fewer": lambda v: v["word_counts"].pop(),
        "vocab one word more": lambda v: v["word_counts"].append(["zebra", 1]),
        "vocab duplicate word": lambda v: v["word_counts"].__setitem__(1, ["hello", 3]),
        "vocab lower not bool": lambda v: v["config"].update(lower="yes"),
        "vocab split empty": lambda v: v["config"].update(split=""),
        "vocab count zero": lambda v: v["word_counts"][0].__setitem__(1, 0),
        "vocab word not string": lambda v: v["word_counts"][0].__setitem__(0, 7),
        "vocab oov token int": lambda v: v["config"].update(oov_token=3),
        "vocab num_words huge": lambda v: v["config"].update(num_words=10 ** 40),
        "vocab num_words zero": lambda v: v["config"].update(num_words=0),
        "vocab format_version 2": lambda v: v.update(format_version=2),
        "vocab filters list": lambda v: v["config"].update(filters=["!"]),
        "vocab document_count negative": lambda v: v.update(document_count=-1),
        "vocab words reordered": lambda v: v["word_counts"].reverse(),
    }
    out = []
    for name, data in cases:
        if data is None:
            v = copy.deepcopy(VOCAB)
            edits[name](v)
            data = json.dumps(v).encode()
        out.append((name, data))
    rng = random.Random(66)
    for i in range(21):   # random byte edits of the vocabulary, hash re-computed: 40 vocabulary cases in all
        data = bytearray(VOCAB_BYTES)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        out.append((f"vocab random-{i:02d}", bytes(data)))
    return out


VOCAB_CASES = _vocab_cases()


@pytest.mark.parametrize("name,data", VOCAB_CASES, ids=[c[0] for c in VOCAB_CASES])
def test_rehashed_vocabulary_fuzz_is_typed_error_or_working_predictor(name, data, tmp_path, tmp_path_factory):
    m = copy.deepcopy(MANIFEST)
    m["tokenizer"].update(sha256=sha256_bytes(data), size=len(data))
    folder = make_bundle(str(tmp_path / "b"), _base_copy(tmp_path_factory), json.dumps(m).encode(), data)
    result = outcome(folder)
    if name in ("vocab one word fewer", "vocab one word more"):
        assert result == "BundleInvalid"    # vocabulary width must equal the model's output width
    elif name == "vocab words reordered":
        assert result.startswith("ok")      # consistent in itself: a working (if different) predictor
    elif name == "vocab num_words huge":    # harmless in itself, but the manifest's tokenizer block disagrees
        assert result == "BundleInvalid"    # (agreeing, it loads: test_hardening_bundle.py)
    elif not name.startswith("vocab random"):
        assert result == "BundleInvalid", result


# -- paths: nothing outside the bundle is ever opened ---------------------------------------------
AUDIT_CHILD = r"""
import json, os, sys
root = os.path.realpath(sys.argv[1])
opened = []
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if os.path.realpath(path).startswith(root) or path.startswith(root):
            opened.append(path)
sys.addaudithook(hook)
from nextword.runtime import Predictor, NextwordError
import nextword.runtime.bundle as rb
if sys.argv[3] == "nocheck":   # control: what a loader without the path checks would do
    rb.check_file_name = lambda name, where: name
    rb.read_inside = lambda folder, name, limit, where: open(os.path.join(folder, name), "rb").read()
try:
    p = Predictor.load(sys.argv[2])
    result = "ok:" + p.predict_next("hello how is")
except NextwordError as e:
    result = type(e).__name__ + ": " + str(e)
print(json.dumps({"opened": opened, "result": result}))
"""


def _audit(root, bundle, mode):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, "-c", AUDIT_CHILD, str(root), str(bundle), mode], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _escape_setups():
    """(name, setup(root) -> (bundle, outside file)) for each way a manifest can point outside."""
    def dotdot(root, target="vocab"):
        b = make_bundle(str(root / "b"), SEED_BUNDLE)
        if target == "vocab":
            shutil.copy(os.path.join(SEED_BUNDLE, "vocab.json"), root / "vocab.json")
            m = copy.deepcopy(MANIFEST)
            m["tokenizer"]["file"] = "../vocab.json"
            outside = root / "vocab.json"
        else:
            d = CHOSEN
            name = MANIFEST["variants"][d]["file"]
            shutil.copy(os.path.join(SEED_BUNDLE, name), root / name)
            m = copy.deepcopy(MANIFEST)
            m["variants"][d]["file"] = "../" + name
            outside = root / name
        (root / "b" / "manifest.json").write_text(json.dumps(m))
        return b, outside

    def absolute(root):
        b = make_bundle(str(root / "b"), SEED_BUNDLE)
        shutil.copy(os.path.join(SEED_BUNDLE, "vocab.json"), root / "elsewhere.json")
        m = copy.deepcopy(MANIFEST)
        m["tokenizer"]["file"] = str(root / "elsewhere.json")
        (root / "b" / "manifest.json").write_text(json.dumps(m))
        return b, root / "elsewhere.json"

    def symlink(root, name="vocab.json"):
        b = make_bundle(str(root / "b"), SEED_BUNDLE)
        os.makedirs(root / "outside")
        shutil.copy(os.path.join(SEED_BUNDLE, name), root / "outside" / name)
        os.unlink(root / "b" / name)
        os.symlink(root / "outside" / name, root / "b" / name)
        return b, root / "outside" / name

    def symlink_model(root):
        return symlink(root, MANIFEST["variants"][CHOSEN]["file"])

    def symlink_manifest(root):
        return symlink(root, "manifest.json")

    def relative_symlink(root):
        b, outside = symlink(root)
        os.unlink(root / "b" / "vocab.json")
        os.symlink("../outside/vocab.json", root / "b" / "vocab.json")
        return b, outside

    return [("dotdot-vocab", dotdot), ("dotdot-model", lambda r: dotdot(r, "model")), ("absolute-vocab", absolute),
            ("symlink-vocab", symlink), ("symlink-model", symlink_model), ("symlink-manifest", symlink_manifest),
            ("relative-symlink-vocab", relative_symlink)]


ESCAPES = _escape_setups()


@pytest.mark.parametrize("name,setup", ESCAPES, ids=[e[0] for e in ESCAPES])
def test_paths_leaving_the_bundle_are_refused_and_never_opened(name, setup, tmp_path):
    root = tmp_path.resolve()
    bundle, outside = setup(root)
    outside = str(outside)
    # the sentinel is a valid file: a loader without the checks reads it (and works)
    control = _audit(root, bundle, "nocheck")
    assert outside in control["opened"] or os.path.realpath(outside) in map(os.path.realpath, control["opened"])
    assert control["result"] == "ok:your"
    # the real loader refuses it, and opens nothing outside the bundle folder
    with pytest.raises(BundleInvalid):
        Predictor.load(bundle)
    real = _audit(root, bundle, "check")
    assert real["result"].startswith("BundleInvalid"), real["result"]
    inside = os.path.realpath(bundle) + os.sep
    for path in real["opened"]:
        assert os.path.realpath(path).startswith(inside) and not os.path.islink(path), path
    assert outside not in real["opened"]


def test_symlinked_bundle_folder_itself_is_fine(tmp_path):
    """A link to the whole bundle folder is how deployments swap versions: it must keep working."""
    os.symlink(SEED_BUNDLE, tmp_path / "current")
    assert Predictor.load(tmp_path / "current").predict_next("hello how is") == "your"


FIFO_CHILD = r"""
import sys
from nextword.runtime import Predictor, NextwordError
try:
    Predictor.load(sys.argv[1])
    print("loaded")
except NextwordError as e:
    print(type(e).__name__, e)
"""


@pytest.mark.parametrize("name", ["manifest.json", "vocab.json", "float32.tflite", "directory"])
def test_special_files_under_bundle_names_are_refused_without_blocking(name, tmp_path):
    """A FIFO named vocab.json used to block the loader forever in open(); a folder named like a file
    is refused too. Run in a child with a timeout so a regression fails instead of hanging."""
    b = make_bundle(str(tmp_path / "b"), SEED_BUNDLE)
    m = copy.deepcopy(MANIFEST)
    target = name
    if name == "float32.tflite":
        m["default_variant"] = "tflite-float32"
        m["variants"] = {"tflite-float32": m["variants"]["tflite-float32"]}
        m.pop("preference", None)   # it names variants this manifest no longer has
        (tmp_path / "b" / "manifest.json").write_text(json.dumps(m))
    if name == "directory":
        target = "vocab.json"
        os.unlink(os.path.join(b, target))
        os.mkdir(os.path.join(b, target))
    else:
        os.unlink(os.path.join(b, target))
        os.mkfifo(os.path.join(b, target))
    proc = subprocess.run([sys.executable, "-c", FIFO_CHILD, b], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("BundleInvalid") and "not a regular file" in proc.stdout, proc.stdout


# -- threads ------------------------------------------------------------------------------------
# NEXTWORD_SOAK_SCALE=1 runs the full 16 threads x 5,000 calls; the default 0.1 (500 calls per
# thread, 8,000 in all) keeps the suite fast.
SCALE = float(os.environ.get("NEXTWORD_SOAK_SCALE", "0.1"))
# float32 variants: ONNX float32 takes the batched path of top_k_batch, TFLite's fixed batch the row loop
THREAD_CASES = [(pkg, "tflite-float32" if FORMAT_OF[pkg] == "tflite" else "onnx-float32") for pkg in PACKAGES]
WORDS = sorted(VOCAB_WORDS) + ["zebra", "HELLO,", "?!"]


def _ops(rng, n):
    ops = []
    for _ in range(n):
        kind = rng.choice(["top_k", "top_k", "top_k_batch", "generate", "sample", "predict"])
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 7)))
        if kind == "top_k_batch":
            ops.append((kind, tuple(" ".join(rng.choice(WORDS) for _ in range(rng.randrange(0, 6)))
                                    for _ in range(rng.randrange(1, 5))), rng.randrange(1, 12)))
        elif kind == "sample":
            ops.append((kind, text, rng.randrange(100)))
        else:
            ops.append((kind, text, rng.randrange(1, 12)))
    return ops


def _call(p, op):
    kind, text, arg = op
    if kind == "top_k":
        return p.top_k(text, k=arg)
    if kind == "top_k_batch":
        return p.top_k_batch(list(text), k=arg)
    if kind == "generate":
        return p.generate(text, n_words=arg % 4 + 1)
    if kind == "sample":
        return p.generate(text, n_words=3, strategy="sample", temperature=1.3, top_k=5, seed=arg)
    return p.predict_next(text)


def _hammer(p, per_thread_ops):
    """Run each thread's ops at once on the shared predictor; returns per-thread results and errors."""
    results = [None] * len(per_thread_ops)
    errors = []
    start = threading.Barrier(len(per_thread_ops))

    def worker(i):
        try:
            start.wait()
            results[i] = [_call(p, op) for op in per_thread_ops[i]]
        except BaseException as e:  # noqa: B902 - report anything a thread meets
            errors.append(repr(e))
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(per_thread_ops))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results, errors


@pytest.mark.parametrize("package,variant", THREAD_CASES)
def test_sixteen_threads_mixed_calls_equal_serial_answers(package, variant):
    p = Predictor.load(SEED_BUNDLE, backend=package, variant=variant)
    rng = random.Random(16)
    calls = max(20, int(5000 * SCALE))
    pool = _ops(rng, 600)            # distinct calls; each thread draws its own sequence from the pool
    per_thread = [[rng.choice(pool) for _ in range(calls)] for _ in range(16)]
    # serial answers, computed once per distinct call before the threads start
    expected = {op: _call(p, op) for op in pool}
    results, errors = _hammer(p, per_thread)
    assert not errors, errors[:3]
    mismatches = sum(r != expected[op] for ops, res in zip(per_thread, results) for op, r in zip(ops, res))
    assert mismatches == 0, f"{mismatches} of {16 * calls} answers differ from serial use"


@pytest.mark.parametrize("package", PACKAGES)
def test_eight_threads_two_thousand_predictions_each(package):
    """Issue 4: 8 threads x 2,000 predictions give the same answers as serial use."""
    p = Predictor.load(SEED_BUNDLE, backend=package)
    texts = SEED_TEXTS + ["", "zebra", "hello how are your"]
    serial = {t: p.predict_next(t) for t in texts}
    per_thread = [[("predict", texts[(i * 7 + j) % len(texts)], 0) for j in range(2000)] for i in range(8)]
    results, errors = _hammer(p, per_thread)
    assert not errors, errors[:3]
    got = [r for res in results for r in res]
    assert len(got) == 16_000
    assert got == [serial[op[1]] for ops in per_thread for op in ops]


RLIMIT_CHILD = r"""
import resource, sys
from nextword.runtime import Predictor
from nextword.runtime.backends import available_packages
available_packages()                         # interpreters imported first: their own mappings count
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize")) * 1024
limit = vm + (256 << 20)                     # 256 MB of address space to spare for the load
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
print(Predictor.load(sys.argv[1]).predict_next("hello how is"))
"""


def test_loading_fits_in_a_small_address_space():
    """Reading a model used to call read(1 GiB + 1), which allocates that much up front: under a
    memory limit (ulimit -v, small devices without overcommit) every load failed with MemoryError."""
    proc = subprocess.run([sys.executable, "-c", RLIMIT_CHILD, SEED_BUNDLE], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-800:]
    assert proc.stdout.strip().splitlines()[-1] == "your"
