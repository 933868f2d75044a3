"""The TF-free predictor on the committed demo bundle: verification, every variant on every installed
interpreter, awkward text, argument errors, fallback and the CLI. Runs in all three environments."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nextword.runtime import Predictor
from nextword.runtime.bundle import Bundle, sha256_file
from nextword.runtime.errors import BackendUnavailable, InputError, VariantUnavailable
from support import REPO, SEED_BUNDLE, SEED_TEXTS, installed_packages, run_cli

PACKAGES = installed_packages()
FORMAT_OF = {"ai-edge-litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx"}


def _window_variants():
    m = Bundle.open(SEED_BUNDLE).manifest
    return [(name, pkg) for name, v in m.variants.items() if v.kind == "window"
            for pkg in PACKAGES if FORMAT_OF[pkg] == v.format]


WINDOW_CASES = _window_variants()


def test_an_interpreter_is_installed():
    assert PACKAGES, "no interpreter package importable: the environment is broken"
    assert WINDOW_CASES


def test_demo_bundle_manifest_and_hashes_verify():
    b = Bundle.open(SEED_BUNDLE)
    m = b.manifest
    assert m.vocab_size == 11 and m.window == 4 and m.output == "logits"
    assert sha256_file(os.path.join(SEED_BUNDLE, "vocab.json")) == m.vocab_sha256
    for v in m.variants.values():
        path = os.path.join(SEED_BUNDLE, v.file)
        assert os.path.getsize(path) == v.size and sha256_file(path) == v.sha256
        assert b.model_bytes(v.name)[:8] == open(path, "rb").read(8)
    assert m.default_variant in m.variants
    # a few hundred KB at most
    assert sum(os.path.getsize(os.path.join(SEED_BUNDLE, f)) for f in os.listdir(SEED_BUNDLE)) < 600_000


@pytest.mark.parametrize("variant,package", WINDOW_CASES)
def test_every_variant_predicts_your(variant, package):
    p = Predictor.load(SEED_BUNDLE, backend=package, variant=variant)
    assert p.info()["backend"] == package and p.info()["variant"] == variant
    assert p.predict_next("hello how is") == "your"


def _independent_reference(variant, package):
    """(float32 variant, package) to check `variant` on `package` against, never the pair itself:
    best the other format's float32 (another converter and another interpreter), else the same
    format's float32 on another package, else, for a quantized variant, its format's float32 on the
    same package (the quantization is then what is measured). None when nothing independent runs
    here: tflite-float32 in the legacy environment, whose parity with Keras export's own legacy
    check (tests/test_export.py) measures."""
    fmt = FORMAT_OF[package]
    other = [(f"{FORMAT_OF[p]}-float32", p) for p in PACKAGES if FORMAT_OF[p] != fmt]
    same = [(f"{fmt}-float32", p) for p in PACKAGES if FORMAT_OF[p] == fmt and p != package]
    own = [(f"{fmt}-float32", package)] if not variant.endswith("-float32") else []
    found = other + same + own
    return found[0] if found else None


PARITY_CASES = [(v, p, _independent_reference(v, p)) for v, p in WINDOW_CASES if _independent_reference(v, p)]


@pytest.mark.parametrize("variant,package,reference", PARITY_CASES)
def test_recorded_parity_is_reproduced_on_this_interpreter(variant, package, reference):
    """The largest probability difference export recorded against Keras for this variant on this
    package is reproduced against an independent float32 reference: by the triangle inequality it is
    at most the recorded difference of the variant plus the reference's own (both against Keras),
    and where export recorded full top-1 agreement the words agree."""
    p = Predictor.load(SEED_BUNDLE, backend=package, variant=variant)
    ref = Predictor.load(SEED_BUNDLE, backend=reference[1], variant=reference[0])
    assert (p.variant.name, p.package) != (ref.variant.name, ref.package)
    windows = np.stack([p.window_for(t) for t in SEED_TEXTS])
    mine, theirs = p.probabilities(windows), ref.probabilities(windows)
    assert np.allclose(mine.sum(axis=1), 1.0, atol=1e-5)
    recorded, recorded_ref = p.variant.parity[package], ref.variant.parity[ref.package]
    assert np.abs(mine - theirs).max() <= recorded["max_abs_diff"] + recorded_ref["max_abs_diff"] + 1e-6
    if recorded["top1_agreement"] == 1.0 and recorded_ref["top1_agreement"] == 1.0:
        assert [p.predict_next(t) for t in SEED_TEXTS] == [ref.predict_next(t) for t in SEED_TEXTS]


def test_top_k_is_sorted_probabilities_and_never_padding():
    p = Predictor.load(SEED_BUNDLE)
    best = p.top_k("hello how", k=10)
    probs = [pr for _, pr in best]
    assert probs == sorted(probs, reverse=True)
    assert len(best) == 10 and "" not in [w for w, _ in best]   # 11 ids minus padding
    full = p.probabilities(p.window_for("hello how")[None])[0]
    assert abs(sum(probs) + full[0] - 1.0) < 1e-5
    words = p.tokenizer.id_to_word_table()
    for w, pr in best:
        assert abs(full[words.index(w)] - pr) < 1e-6


def test_top_k_batch_equals_single_calls():
    p = Predictor.load(SEED_BUNDLE)
    texts = SEED_TEXTS + ["", "zzz unknown", "hello how"]
    assert p.top_k_batch(texts, k=3) == [p.top_k(t, k=3) for t in texts]
    assert p.top_k_batch([], k=3) == []


def test_awkward_text_has_defined_answers():
    p = Predictor.load(SEED_BUNDLE)
    padding = np.zeros(4, dtype=p.window_for("").dtype)
    for text in ("", "   \t\n ", "?!... ,,;", "zebra quantum", "ÜBER 東京 🙂"):
        assert np.array_equal(p.window_for(text), padding), text   # no OOV token in the seed bundle: all padding
        assert p.top_k(text, 3) == p.top_k("", 3)
    long = "blah " * 200_000 + "hello how is"          # about 1 MB: only the last window counts
    assert len(long) > 1_000_000
    assert p.top_k(long, 3) == p.top_k("hello how is", 3)
    assert p.predict_next("HELLO, How IS") == p.predict_next("hello how is")


def test_argument_errors_are_typed():
    p = Predictor.load(SEED_BUNDLE)
    with pytest.raises(TypeError, match="bytes"):
        p.top_k(b"hello")
    with pytest.raises(TypeError, match="NoneType"):
        p.predict_next(None)
    with pytest.raises(InputError):
        p.top_k("hello", k=0)
    assert len(p.top_k("hello", k=1000)) == 10     # k above the vocabulary: every suggestible word
    with pytest.raises(InputError):
        p.generate("hello", n_words=-1)
    assert p.generate("hello", n_words=0) == []
    with pytest.raises(InputError):
        p.generate("hello", 2, strategy="beam")
    with pytest.raises(InputError):
        p.generate("hello", 2, strategy="sample", temperature=0)
    with pytest.raises(InputError, match="unknown variant"):
        Predictor.load(SEED_BUNDLE, variant="tflite-int4")
    with pytest.raises(InputError, match="unknown backend"):
        Predictor.load(SEED_BUNDLE, backend="tensorrt")
    with pytest.raises(InputError):
        Predictor.load(SEED_BUNDLE, num_threads=0)


def test_generate_greedy_and_seeded_sampling():
    p = Predictor.load(SEED_BUNDLE)
    greedy = p.generate("hello", 4)
    assert len(greedy) == 4 and greedy[0] == p.predict_next("hello")
    assert greedy[1] == p.predict_next("hello " + greedy[0])
    a = p.generate("hello", 6, strategy="sample", seed=7, temperature=1.5)
    assert a == p.generate("hello", 6, strategy="sample", seed=7, temperature=1.5)
    runs = {tuple(p.generate("hello", 6, strategy="sample", seed=s, temperature=2.0)) for s in range(20)}
    assert len(runs) > 1
    top1 = {tuple(p.generate("hello", 4, strategy="sample", seed=s, top_k=1)) for s in range(5)}
    assert top1 == {tuple(greedy)}


def test_auto_falls_back_and_says_why(tmp_path):
    """A default variant marked not runnable on an interpreter is skipped with the manifest's reason."""
    bundle = tmp_path / "b"
    shutil.copytree(SEED_BUNDLE, bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    default = manifest["default_variant"]
    fmt = manifest["variants"][default]["format"]
    for pkg in ("ai-edge-litert", "tflite-runtime", "onnxruntime"):
        if FORMAT_OF[pkg] == fmt:
            manifest["variants"][default]["runtimes"][pkg] = {"ok": False, "reason": "test: refused here"}
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    p = Predictor.load(bundle)
    assert p.variant.name != default
    assert any(default in s and "test: refused here" in s for s in p.info()["skipped"])
    with pytest.raises(VariantUnavailable, match="test: refused here"):
        Predictor.load(bundle, variant=default)


# -- the measured preference: which variant on which interpreter, and why ---------------------------
COST = {"cold_start_ms": 12.0, "peak_rss_mib": 31.5, "call_us": 87.0, "runs": 5}
ONNX_FIRST = [("onnx-float32", "onnxruntime"), ("tflite-float16", "ai-edge-litert"), ("tflite-float16", "tflite-runtime")]
TFLITE_FIRST = [("tflite-float16", "ai-edge-litert"), ("tflite-int8", "tflite-runtime"), ("onnx-float32", "onnxruntime")]


def _with_preference(tmp_path, pairs, edit=None):
    """A copy of the demo bundle whose manifest carries `pairs` as its measured preference (and a
    cost for each); model files and vocabulary are untouched, so their hashes still match."""
    bundle = tmp_path / "b"
    shutil.copytree(SEED_BUNDLE, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["preference"] = [{"variant": v, "package": p, "score": float(i + 1)} for i, (v, p) in enumerate(pairs)]
    m["default_variant"] = pairs[0][0]
    for v, p in pairs:
        m["variants"][v].setdefault("cost", {})[p] = COST
    if edit:
        edit(m)
    (bundle / "manifest.json").write_text(json.dumps(m))
    return bundle


@pytest.mark.parametrize("pairs", [ONNX_FIRST, TFLITE_FIRST], ids=["onnx-first", "tflite-first"])
def test_auto_follows_the_measured_preference_on_installed_interpreters(pairs, tmp_path):
    """The first (variant, package) of the preference whose package is installed wins, whatever the
    order of the formats; the description says it came from the measurement and shows the cost."""
    expected = next(pair for pair in pairs if pair[1] in PACKAGES)
    p = Predictor.load(_with_preference(tmp_path, pairs))
    assert (p.variant.name, p.package) == expected
    text = p.describe()
    assert f"variant {expected[0]} on {expected[1]}" in text
    assert "measured preference" in text and "cold start 12 ms, peak RSS 31.5 MiB, 87 us a call" in text
    for v, pkg in pairs[:pairs.index(expected)]:   # the entries before it: skipped with the pip extra to install
        assert any(s.startswith(f"{v} on {pkg}") and "pip install 'nextword[" in s for s in p.skipped)
    info = p.info()
    assert info["reason"] == p.reason and info["cost"] == COST
    assert [(e["variant"], e["package"]) for e in info["preference"]] == pairs


def test_backend_argument_filters_the_preference(tmp_path):
    bundle = _with_preference(tmp_path, ONNX_FIRST)
    tflite = [pkg for pkg in PACKAGES if FORMAT_OF[pkg] == "tflite"]
    p = Predictor.load(bundle, backend="tflite")
    assert (p.variant.name, p.package) == ("tflite-float16", tflite[0])
    assert "with backend=tflite" in p.reason and "measured preference" in p.reason
    assert not any("onnx-float32 on onnxruntime" in s for s in p.skipped)   # filtered out, not tried


def test_preference_that_does_not_load_falls_back_and_says_so(tmp_path):
    def refuse(m):
        for v, pkg in ONNX_FIRST:
            m["variants"][v]["runtimes"][pkg] = {"ok": False, "reason": "test: refused here"}
    p = Predictor.load(_with_preference(tmp_path, ONNX_FIRST, refuse))
    assert (p.variant.name, p.package) not in ONNX_FIRST
    assert p.reason.startswith("fallback: no entry of the bundle's measured preference loads here")
    assert sum("test: refused here" in s for s in p.skipped) == len(ONNX_FIRST)


def test_describe_says_why_without_a_preference_and_when_requested(tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(SEED_BUNDLE, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m.pop("preference", None)    # as exported before costs were measured
    (bundle / "manifest.json").write_text(json.dumps(m))
    p = Predictor.load(bundle)
    assert "the bundle has no measured preference" in p.describe()
    name = WINDOW_CASES[0][0]
    p = Predictor.load(SEED_BUNDLE, variant=name)
    assert p.variant.name == name and f"requested with variant={name}" in p.describe()


def test_a_requested_variant_runs_on_its_measured_best_package_and_shows_the_cost(tmp_path):
    p = Predictor.load(_with_preference(tmp_path, TFLITE_FIRST), variant="tflite-int8")
    tflite = [pkg for pkg in PACKAGES if FORMAT_OF[pkg] == "tflite"]
    # tflite-int8 is measured on tflite-runtime only: there first when installed, else the table's order
    assert p.package == ("tflite-runtime" if "tflite-runtime" in tflite else tflite[0])
    assert p.reason.startswith("requested with variant=tflite-int8")
    assert ("cold start 12 ms" in p.reason) == (p.package == "tflite-runtime")


def test_cli_verbose_explains_on_stderr_and_keeps_stdout_the_answer(tmp_path):
    r = run_cli("nextword-predict", _with_preference(tmp_path, TFLITE_FIRST), "hello how is", "--verbose")
    assert r.returncode == 0 and r.stdout == "your\n"
    assert "measured preference" in r.stderr and "why:" in r.stderr
    assert "--verbose" in run_cli("nextword-predict", "--help").stdout


def test_missing_interpreter_is_backend_unavailable():
    missing = [pkg for pkg in ("ai-edge-litert", "tflite-runtime", "onnxruntime") if pkg not in PACKAGES]
    wanted = missing[0] if missing else None
    if wanted is None:   # every package installed: ask for a format the bundle has but no package runs
        pytest.fail("test environment has all three interpreters; expected at least one missing")
    with pytest.raises(BackendUnavailable, match=wanted):
        Predictor.load(SEED_BUNDLE, backend=wanted)


def test_runtime_never_imports_the_training_stack():
    code = ("import sys, json\n"
            "from nextword.runtime import Predictor\n"
            "from nextword.runtime.backends import available_packages\n"
            f"b = {SEED_BUNDLE!r}\n"
            "out = {}\n"
            "for pkg in available_packages():\n"
            "    fmt = 'onnx' if pkg == 'onnxruntime' else 'tflite'\n"
            "    out[pkg] = Predictor.load(b, backend=pkg).predict_next('hello how is')\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx', 'tf_keras') or m.startswith(('nextword.train', 'nextword.export', 'nextword.bench')))\n"
            "print(json.dumps({'answers': out, 'forbidden': bad}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["forbidden"] == []
    assert set(result["answers"]) == set(PACKAGES) and set(result["answers"].values()) == {"your"}


INTERPRETER_MODULES = {"ai-edge-litert": "ai_edge_litert", "tflite-runtime": "tflite_runtime", "onnxruntime": "onnxruntime"}


@pytest.mark.parametrize("package", PACKAGES)
def test_a_predictor_imports_only_the_interpreter_it_runs_on(package):
    """With one interpreter enough (the litert, onnx and legacy extras install one each), loading,
    predicting and streaming on `package` must not import the others."""
    code = ("import sys, json\n"
            "from nextword.runtime import Predictor\n"
            f"p = Predictor.load({SEED_BUNDLE!r}, backend={package!r})\n"
            "s = p.session(); s.feed('hello how')\n"
            "print(json.dumps({'word': p.predict_next('hello how is'), 'stream': s.top_k(1)[0][0],\n"
            "                  'modules': sorted({m.split('.')[0] for m in sys.modules})}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["word"] == "your" and out["stream"]
    loaded = {pkg for pkg, mod in INTERPRETER_MODULES.items() if mod in out["modules"]}
    assert loaded == {package}


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_answers_text_top_k_json_and_generate():
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello how is")
    assert r.returncode == 0 and r.stdout.strip() == "your"
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello how", "--top-k", "3", "--json")
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["text"] == "hello how" and len(data["top_k"]) == 3
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello", "--generate", "3")
    assert r.returncode == 0 and r.stdout.strip().startswith("hello ") and len(r.stdout.split()) == 4
    # options before TEXT give the same answer (argparse's plain parse_args refused TEXT after an option)
    before = run_cli("nextword-predict", SEED_BUNDLE, "--top-k", "3", "--json", "hello how")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout) == data
    r = run_cli("nextword-predict", SEED_BUNDLE, "--info")
    info = json.loads(r.stdout)
    assert info["variant"] and info["window"] == 4 and info["vocab_size"] == 11


def test_cli_reads_stdin_lines():
    r = run_cli("nextword-predict", SEED_BUNDLE, stdin="hello how is\nhello how\n\n")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "your" and len(r.stdout.splitlines()) == 3


@pytest.mark.parametrize("args,code,needle", [
    (["{bundle}", "x", "--top-k", "0"], 2, "--top-k"),
    (["{bundle}", "x", "--generate", "-1"], 2, "--generate"),
    (["{bundle}", "x", "--variant", "nope"], 2, "unknown variant"),
    (["{bundle}", "x", "--backend", "nope"], 2, "invalid choice"),
    (["/nonexistent/bundle", "x"], 3, "not a bundle folder"),
])
def test_cli_errors_are_one_line_with_exit_codes(args, code, needle):
    r = run_cli("nextword-predict", *[a.format(bundle=SEED_BUNDLE) for a in args])
    assert r.returncode == code
    assert needle in r.stderr and "Traceback" not in r.stderr


def test_cli_damaged_bundle_exits_3(tmp_path):
    bundle = tmp_path / "b"
    shutil.copytree(SEED_BUNDLE, bundle)
    (bundle / "manifest.json").write_text("{not json")
    r = run_cli("nextword-predict", bundle, "hello")
    assert r.returncode == 3 and "not valid JSON" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_missing_interpreter_exits_4_naming_the_pip_extra():
    extra = {"ai-edge-litert": "litert", "tflite-runtime": "legacy", "onnxruntime": "onnx"}
    missing = [pkg for pkg in ("ai-edge-litert", "tflite-runtime", "onnxruntime") if pkg not in PACKAGES]
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello", "--backend", missing[0])
    assert r.returncode == 4 and missing[0] in r.stderr and "Traceback" not in r.stderr
    assert f"pip install 'nextword[{extra[missing[0]]}]'" in r.stderr
