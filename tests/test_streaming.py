"""Streaming (issue 7): the one-step model and sessions.

Proofs: the Keras step model over a padded window from the zero state equals the window model; every
exported step variant, through its interpreter and the real session code, equals the window model
(float32 within 1e-5, int8 within its gate); exact-mode sessions equal the window predictor for every
prefix of the evaluation text; stream mode starts from the padded state and keeps context beyond the
window; undo is exact; sessions are independent; the --stream CLI. The legacy interpreter
(tflite-runtime 2.14) is covered by running this file in the legacy environment (scripts/test.sh).

Runs on the committed demo bundle when it holds step variants (then everything but the Keras test
runs in all three environments); otherwise on a bundle exported here from the session's tiny model."""

import json
import os
import threading

import numpy as np
import pytest

from nextword.runtime import Predictor
from nextword.runtime.bundle import Bundle
from nextword.runtime.errors import InputError, VariantUnavailable
from nextword.runtime.session import StepModel, step_probabilities
from support import SEED_BUNDLE, installed_packages, run_cli

PACKAGES = installed_packages()
FORMAT_OF = {"ai-edge-litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx"}
SEED_LINES = ["hello how are you", "hello how is your day", "hello how are your friends", "hello what are you doing"]
GATE = {"float32": {"max_abs_diff": 1e-5, "top1_agreement": 1.0},
        "dynamic-int8": {"max_abs_diff": 0.05, "top1_agreement": 0.97},
        "int8": {"max_abs_diff": 0.1, "top1_agreement": 0.95}}


def _step_names(path):
    try:
        return [n for n, v in Bundle.open(path).manifest.variants.items() if v.kind == "step"]
    except Exception:
        return []


SEED_STEPS = _step_names(SEED_BUNDLE)
if SEED_STEPS:
    STEP_NAMES = SEED_STEPS
    def runtime_test(fn):                             # no TensorFlow needed: the committed bundle is used
        return fn
else:
    from nextword.export.variants import CATALOGUE
    STEP_NAMES = [n for n, s in CATALOGUE.items() if s.kind == "step"]
    runtime_test = pytest.mark.tf                     # the bundle has to be exported here first
STEP_FORMAT = {n: ("onnx" if n.startswith("onnx") else "tflite") for n in STEP_NAMES}
STEP_CASES = [(n, pkg) for n in STEP_NAMES for pkg in PACKAGES if FORMAT_OF[pkg] == STEP_FORMAT[n]]
FLOAT_PAIRS = [(f"{FORMAT_OF[pkg]}-float32", f"{FORMAT_OF[pkg]}-step-float32", pkg) for pkg in PACKAGES
               if f"{FORMAT_OF[pkg]}-step-float32" in STEP_NAMES]


@pytest.fixture(scope="session")
def stream_bundle(request, tmp_path_factory):
    if SEED_STEPS:
        return SEED_BUNDLE
    from nextword.export.pipeline import export_bundle
    model_dir = request.getfixturevalue("tiny_model_dir")
    out = tmp_path_factory.mktemp("bundles") / "stream-bundle"
    export_bundle(model_dir, str(out), variants=["tflite-float32", "onnx-float32"] + STEP_NAMES)
    return str(out)


def _prefixes():
    """Every prefix of the evaluation text (the seed lines), empty included."""
    out = [""]
    for line in SEED_LINES:
        words = line.split()
        out += [" ".join(words[:n]) for n in range(1, len(words) + 1)]
    return out


def _agreement(p, q):
    return float(np.mean(p.argmax(axis=1) == q.argmax(axis=1)))


# -- the Keras step model ----------------------------------------------------------------------
@pytest.mark.tf
def test_keras_step_model_over_a_padded_window_equals_the_window_model(keras_model, tiny_model_dir):
    from nextword.export.step import keras_step_model, run_windows
    x = np.load(os.path.join(tiny_model_dir, "windows.npz"), allow_pickle=False)["x_eval"]
    x = np.concatenate([x, np.zeros((1, x.shape[1]), x.dtype)])          # plus the all-padding window
    ref = keras_model(x, training=False).numpy()
    logits, _ = run_windows(keras_step_model(keras_model, batch=None), x)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    mine = e / e.sum(axis=1, keepdims=True)
    assert np.abs(mine - ref).max() <= 1e-5
    assert _agreement(mine, ref) == 1.0


# -- exported step variants --------------------------------------------------------------------
@runtime_test
def test_step_variants_are_in_the_manifest_with_parity(stream_bundle):
    m = Bundle.open(stream_bundle).manifest
    steps = {n: v for n, v in m.variants.items() if v.kind == "step"}
    assert m.variants[m.default_variant].kind == "window"
    assert {"tflite-step-float32", "onnx-step-float32"} <= set(steps)
    assert any(v.format == "tflite" and "int8" in v.quantization for v in steps.values())
    for name, v in steps.items():
        assert [t.name for t in v.inputs] and v.inputs[0].shape[1] == 1 and v.inputs[0].dtype == "int32"
        assert v.inputs[1].shape[-1] == v.inputs[2].shape[-1] == v.outputs[1].shape[-1] == v.outputs[2].shape[-1]
        assert v.outputs[0].shape[-1] == m.vocab_size
        if v.format == "tflite":
            assert all(not op.startswith(("CUSTOM", "Flex")) for op, _ in v.details["ops"])
        else:
            assert [t.name for t in v.inputs] == ["ids", "h", "c"]
            assert [t.name for t in v.outputs] == ["logits", "h_out", "c_out"]
        assert v.parity, name
        for pkg, fig in v.parity.items():
            assert fig["failures"] == [], (name, pkg)
            assert fig["top1_agreement"] >= GATE[v.quantization]["top1_agreement"]
            assert fig["max_abs_diff"] <= GATE[v.quantization]["max_abs_diff"], (name, pkg)


@runtime_test
@pytest.mark.parametrize("variant,package", STEP_CASES)
def test_every_step_variant_equals_the_window_model(stream_bundle, variant, package):
    """Each padded window from the zero state through the step variant on its interpreter, against the
    float32 window model of the same bundle (itself gated against Keras at export)."""
    fmt = STEP_FORMAT[variant]
    p = Predictor.load(stream_bundle, backend=package, variant=f"{fmt}-float32")
    windows = np.stack([p.window_for(t) for t in _prefixes()])
    ref = p.probabilities(windows)
    mine = step_probabilities(stream_bundle, variant, windows, backend=package)
    family = Bundle.open(stream_bundle).manifest.variants[variant].quantization
    assert np.abs(mine - ref).max() <= GATE[family]["max_abs_diff"]
    assert _agreement(mine, ref) >= GATE[family]["top1_agreement"]


# -- exact mode --------------------------------------------------------------------------------
@runtime_test
@pytest.mark.parametrize("window_variant,step_variant,package", FLOAT_PAIRS)
def test_exact_session_equals_the_window_predictor_for_every_prefix(stream_bundle, window_variant, step_variant,
                                                                    package):
    p = Predictor.load(stream_bundle, backend=package, variant=window_variant, step_variant=step_variant)
    assert p.step_model().variant.name == step_variant and p.step_model().package == package
    s = p.session(mode="exact")
    for line in SEED_LINES:
        s.reset()
        typed = []
        for word in [None] + line.split():
            if word is not None:
                s.feed(word)
                typed.append(word)
            text = " ".join(typed)
            want = p.top_k(text, 3)
            got = s.top_k(3)
            assert [w for w, _ in got] == [w for w, _ in want], text
            assert np.allclose([x for _, x in got], [x for _, x in want], atol=1e-5, rtol=0)
            assert s.predict_next() == p.predict_next(text)
            ref = p.probabilities(p.window_for(text)[None])[0]
            assert np.abs(s.probabilities() - ref).max() <= 1e-5
            assert s.context == p.ids(text)[-p.window:]


def _window_variants(path):
    try:
        m = json.load(open(os.path.join(path, "manifest.json")))
    except OSError:
        return []
    return [n for n, v in m["variants"].items() if v["kind"] == "window"
            and any(FORMAT_OF[pkg] == v["format"] for pkg in PACKAGES)]


@runtime_test
@pytest.mark.parametrize("window_variant", _window_variants(SEED_BUNDLE) if SEED_STEPS else ["tflite-float32", "onnx-float32"])
def test_predictor_exact_session_agrees_with_its_window_model(stream_bundle, window_variant):
    """The auto-picked step variant is the window variant's sibling (same format, and same quantization
    when the bundle has one): its exact session then agrees with the window model within the family's
    gate. A window variant without a step twin (full int8) gets the closest step variant of its format,
    which must agree on the top word; its probabilities differ by the two quantizations."""
    p = Predictor.load(stream_bundle, variant=window_variant)
    step = p.step_model()
    assert step.variant.format == p.variant.format
    twin = any(v.kind == "step" and v.format == p.variant.format and v.quantization == p.variant.quantization
               for v in p.bundle.manifest.variants.values())
    if twin:
        assert step.variant.quantization == p.variant.quantization
    assert p.step_model() is step                                        # loaded once per predictor
    s = p.session(mode="exact")
    gate = GATE[step.variant.quantization]
    for text in _prefixes():
        s.reset()
        s.feed(text)
        assert s.predict_next() == p.predict_next(text), text
        if twin:
            ref = p.probabilities(p.window_for(text)[None])[0]
            assert np.abs(s.probabilities() - ref).max() <= 2 * gate["max_abs_diff"], text


# -- stream mode -------------------------------------------------------------------------------
@runtime_test
def test_stream_mode_starts_from_the_padded_state_and_keeps_long_context(stream_bundle):
    p = Predictor.load(stream_bundle, variant="tflite-float32" if "tflite-step-float32" in STEP_NAMES
                       else "onnx-float32")
    step, T = p.step_model(), p.window
    stream, exact = p.session(), p.session(mode="exact")
    # before any word both modes answer for an all-padding window: the window model's answer to ""
    assert np.array_equal(stream.probabilities(), exact.probabilities())
    assert np.abs(stream.probabilities() - p.probabilities(p.window_for("")[None])[0]).max() <= 1e-5
    # one step per word from the state after a window of padding: the step model over T pads + the ids
    text = "hello how are you doing hello what is your day"
    ids = p.ids(text)
    assert stream.feed(text) == len(ids) == stream.steps
    ref = step.run([0] * T + ids)
    assert np.array_equal(stream.logits(), ref.z)
    # fed one word at a time: identical state
    one = p.session()
    for w in text.split():
        one.feed(w)
    assert np.array_equal(one.logits(), stream.logits())
    # context longer than the window is kept in stream mode, forgotten in exact mode
    tail = " ".join(text.split()[-T:])
    a, b = p.session(), p.session()
    a.feed("hello what are you doing " + tail)
    b.feed("hello how is your friends " + tail)
    assert not np.allclose(a.probabilities(), b.probabilities())
    ea, eb = p.session(mode="exact"), p.session(mode="exact")
    ea.feed("hello what are you doing " + tail)
    eb.feed("hello how is your friends " + tail)
    assert np.array_equal(ea.probabilities(), eb.probabilities())


@runtime_test
def test_stream_mode_before_the_window_fills_is_padding_plus_words_not_the_window_model(stream_bundle):
    """Documents what stream mode is: after n < window words it has seen T pads + n words, where the
    window model sees T - n pads + n words. They agree only as far as the padding state has settled,
    so stream mode is compared with its own definition, and with exact mode only where n = 0."""
    p = Predictor.load(stream_bundle, variant="tflite-float32" if "tflite-step-float32" in STEP_NAMES
                       else "onnx-float32")
    step, T = p.step_model(), p.window
    s = p.session()
    for n, word in enumerate(SEED_LINES[0].split()[:T], start=1):
        s.feed(word)
        ids = p.ids(" ".join(SEED_LINES[0].split()[:n]))
        assert np.array_equal(s.logits(), step.run([0] * T + ids).z)
        assert np.array_equal(step.exact_state(ids).z, step.run([0] * (T - n) + ids).z)


# -- undo, reset, independence, input ----------------------------------------------------------
@runtime_test
@pytest.mark.parametrize("mode", ["stream", "exact"])
def test_undo_restores_previous_suggestions_exactly(stream_bundle, mode):
    p = Predictor.load(stream_bundle)
    s = p.session(mode=mode, history=8)
    seen = [(s.top_k(3), s.probabilities())]
    for w in "hello how are you doing".split():
        s.feed(w)
        seen.append((s.top_k(3), s.probabilities()))
    for i in range(len(seen) - 1, 0, -1):
        assert s.undo(1) == 1
        top, probs = seen[i - 1]
        assert s.top_k(3) == top and np.array_equal(s.probabilities(), probs)
    assert s.undo(1) == 0 and s.steps == 0                               # nothing left to undo
    # bounded history
    s = p.session(mode=mode, history=2)
    s.feed("hello how are you")
    assert s.undo(5) == 2 and s.steps == 2
    fresh = p.session(mode=mode)
    fresh.feed("hello how")
    assert np.array_equal(s.probabilities(), fresh.probabilities())
    s.reset()
    assert s.steps == 0 and np.array_equal(s.probabilities(), p.session(mode=mode).probabilities())
    assert p.session(mode=mode, history=0).undo(1) == 0


@runtime_test
def test_sessions_are_independent_and_one_predictor_serves_many_threads(stream_bundle):
    p = Predictor.load(stream_bundle)

    def run(line, mode):
        s = p.session(mode=mode)
        out = []
        for w in (line.split() * 3):
            s.feed(w)
            out.append(s.top_k(3))
        return out
    expected = {(line, mode): run(line, mode) for line in SEED_LINES for mode in ("stream", "exact")}
    # interleaved in one thread
    a, b = p.session(), p.session()
    for wa, wb in zip(SEED_LINES[1].split(), SEED_LINES[3].split()):
        a.feed(wa)
        b.feed(wb)
    a2, b2 = p.session(), p.session()
    a2.feed(SEED_LINES[1])
    b2.feed(SEED_LINES[3])
    assert a.top_k(3) == a2.top_k(3) and b.top_k(3) == b2.top_k(3)
    # many threads, one predictor
    results, errors = {}, []

    def worker(key):
        try:
            for _ in range(5):
                got = run(*key)
                assert got == expected[key]
            results[key] = True
        except Exception as e:   # pragma: no cover - reported below
            errors.append((key, e))
    threads = [threading.Thread(target=worker, args=(key,)) for key in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == len(expected)


@runtime_test
def test_text_follows_the_tokenizer_and_bad_input_is_typed(stream_bundle):
    p = Predictor.load(stream_bundle)
    for mode in ("stream", "exact"):
        s = p.session(mode=mode)
        s.feed("hello")
        before = s.probabilities()
        assert s.feed("") == 0 and s.feed("   ") == 0 and s.feed("xyzzy plugh") == 0     # unknown words: no step
        assert np.array_equal(s.probabilities(), before) and s.steps == 1
        t = p.session(mode=mode)
        t.feed("HELLO,")
        assert np.array_equal(t.probabilities(), before)
        assert s.feed("how xyzzy is") == len(p.ids("how xyzzy is"))
        with pytest.raises(TypeError):
            s.feed(3)
        with pytest.raises(InputError):
            s.top_k(0)
        with pytest.raises(InputError):
            s.undo(-1)
        with pytest.raises(InputError):
            s.feed_ids([p.vocab_size])
    e = p.session(mode="exact")
    e.feed("hello xyzzy how is")
    assert e.context == p.ids("hello xyzzy how is") and e.predict_next() == p.predict_next("hello xyzzy how is")
    with pytest.raises(InputError):
        p.session(mode="window")
    with pytest.raises(TypeError):
        p.session(history="3")
    with pytest.raises(InputError):
        p.session(history=-1)
    with pytest.raises(InputError):
        Predictor.load(stream_bundle, step_variant="tflite-float32")     # a window variant is not a step variant
    with pytest.raises(InputError):
        StepModel.load(stream_bundle, "no-such-step")


@runtime_test
def test_a_bundle_without_step_variants_says_so(stream_bundle, tmp_path):
    import shutil
    bundle = tmp_path / "b"
    shutil.copytree(stream_bundle, bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    m["variants"] = {n: v for n, v in m["variants"].items() if v["kind"] == "window"}
    (bundle / "manifest.json").write_text(json.dumps(m))
    p = Predictor.load(bundle)
    assert p.top_k("hello how", 1)
    with pytest.raises(VariantUnavailable, match="no step variants"):
        p.session()


# -- CLI ---------------------------------------------------------------------------------------
@runtime_test
def test_stream_cli_prints_suggestions_per_line(stream_bundle):
    typed = ["hello", "how", "/undo", "how are", "/reset", "hello what"]
    p = Predictor.load(stream_bundle)
    s = p.session()
    expected = []
    for line in typed:
        if line == "/undo":
            s.undo(1)
        elif line == "/reset":
            s.reset()
        else:
            s.feed(line)
        expected.append(s.top_k(3))
    r = run_cli("nextword-predict", stream_bundle, "--stream", stdin="\n".join(typed) + "\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines == ["  ".join(f"{w} {pr:.3f}" for w, pr in best) for best in expected]
    r = run_cli("nextword-predict", stream_bundle, "--stream", "--json", "--top-k", "2",
                stdin="hello how\n/undo 9\n/undo x\nis\n")
    assert r.returncode == 2 and "line 3" in r.stderr
    rows = [json.loads(line) for line in r.stdout.strip().splitlines()]
    assert [row["text"] for row in rows] == ["hello how", "/undo 9", "is"]
    assert rows[0]["fed"] == 2 and rows[1]["undone"] == 2 and rows[2]["steps"] == 1
    assert all(len(row["top_k"]) == 2 for row in rows)
    r = run_cli("nextword-predict", stream_bundle, "hello how", "--stream", stdin="are\n")    # TEXT is typed first
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["  ".join(f"{w} {pr:.3f}" for w, pr in _stream_top(p, typed))
                                     for typed in (["hello how"], ["hello how", "are"])]
    r = run_cli("nextword-predict", stream_bundle, "--stream", "--generate", "2", stdin="hello\n")
    assert r.returncode == 2 and "--generate" in r.stderr


def _stream_top(p, typed):
    s = p.session()
    for text in typed:
        s.feed(text)
    return s.top_k(3)


# -- the benchmark functions -------------------------------------------------------------------
@runtime_test
def test_bench_streaming_functions_report_costs_and_quality(stream_bundle):
    from nextword.bench.streaming import streaming_costs, streaming_quality
    p = Predictor.load(stream_bundle)
    costs = streaming_costs(p, context_lengths=(2, 8), repeats=5, warmup=2)
    assert [r["context"] for r in costs["rows"]] == sorted({2, 8, p.window})
    assert costs["at_window"]["session_us"] > 0 and costs["step_call"]["median"] > 0
    docs = [p.ids(line) for line in SEED_LINES]
    q = streaming_quality(p, docs)
    assert q["targets"] == sum(len(d) - 1 for d in docs)
    # exact mode is the window model: its top-1 accuracy is the window predictor's
    hits = [p.predict_next(" ".join(line.split()[:j])) == line.split()[j] for line in SEED_LINES
            for j in range(1, len(line.split()))]
    assert q["exact"]["top1_accuracy"] == pytest.approx(np.mean(hits))
    assert set(q["stream"]) >= {"top1_accuracy", "top3_accuracy", "perplexity"}
