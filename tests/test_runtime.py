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


@pytest.mark.parametrize("variant,package", WINDOW_CASES)
def test_recorded_parity_is_reproduced_on_this_interpreter(variant, package):
    """Words and probabilities for every seed prefix agree across the bundle's float32 reference and this variant."""
    p = Predictor.load(SEED_BUNDLE, backend=package, variant=variant)
    ref_name = "tflite-float32" if p.variant.format == "tflite" else "onnx-float32"
    ref = Predictor.load(SEED_BUNDLE, backend=package, variant=ref_name)
    windows = np.stack([p.window_for(t) for t in SEED_TEXTS])
    mine, theirs = p.probabilities(windows), ref.probabilities(windows)
    assert np.allclose(mine.sum(axis=1), 1.0, atol=1e-5)
    tol = {"float32": 1e-5, "float16": 1e-2}.get(p.variant.quantization, 0.06)
    assert np.abs(mine - theirs).max() <= tol
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


def test_missing_interpreter_is_backend_unavailable():
    missing = [pkg for pkg in ("ai-edge-litert", "tflite-runtime", "onnxruntime") if pkg not in PACKAGES]
    wanted = missing[0] if missing else None
    if wanted is None:   # every package installed: ask for a format the bundle has but no package runs
        pytest.fail("test environment has all three interpreters; expected at least one missing")
    with pytest.raises(BackendUnavailable, match=wanted):
        Predictor.load(SEED_BUNDLE, backend=wanted)


def test_quantized_outputs_are_dequantized_from_the_manifest():
    p = Predictor.load(SEED_BUNDLE)

    class FakeRunner:
        def run(self, arrays):
            return [np.array([[10, 20] + [0] * 9], dtype=np.int8)]
    p._runner, p._batched = FakeRunner(), False
    p._out_scale, p._out_zero = 0.5, 10
    z = p.logits(np.zeros((1, 4), dtype=np.int32))
    assert np.allclose(z[0, :2], [0.0, 5.0]) and np.allclose(z[0, 2:], -5.0)


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


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_answers_text_top_k_json_and_generate():
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello how is")
    assert r.returncode == 0 and r.stdout.strip() == "your"
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello how", "--top-k", "3", "--json")
    data = json.loads(r.stdout)
    assert r.returncode == 0 and data["text"] == "hello how" and len(data["top_k"]) == 3
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello", "--generate", "3")
    assert r.returncode == 0 and r.stdout.strip().startswith("hello ") and len(r.stdout.split()) == 4
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


def test_cli_missing_interpreter_exits_4():
    missing = [pkg for pkg in ("ai-edge-litert", "tflite-runtime", "onnxruntime") if pkg not in PACKAGES]
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello", "--backend", missing[0])
    assert r.returncode == 4 and missing[0] in r.stderr and "Traceback" not in r.stderr
