"""The hybrid predictor (runtime/mix.py): suggestions mix the LSTM with the bundle's n-gram at the
share the manifest records. Proved against the two parts computed separately (the LSTM's own
probabilities, the n-gram's own distribution), on the real interpreters, with a seed bundle copy
that gets an n-gram built by the exporter's builder from the seed lines. TF-free: every environment."""

import hashlib
import json
import math
import os

import numpy as np
import pytest

from nextword.export import ngram as builder
from nextword.runtime import Predictor
from nextword.runtime.errors import BundleInvalid, InputError
from nextword.runtime.mix import FALLBACK_LSTM_WEIGHT
from nextword.train.corpus import SEED_LINES
from support import SEED_BUNDLE, installed_packages, rehashed_copy, run_cli

TEXTS = ["", "hello", "hello how", "hello how are", "what are you", "you are doing", "how is your day"]


def seed_ids():
    p = Predictor.load(SEED_BUNDLE)
    return [p.tokenizer.text_to_ids(line) for line in SEED_LINES.splitlines()]


def ngram_bundle(folder, weight=0.6, order=3, mix_entry=None):
    """A rehashed seed copy with ngram.npz (order `order`, built from the seed lines) and its manifest
    entry; the LSTM's share `weight` (None: no fitted share recorded)."""
    folder = rehashed_copy(folder)
    built = builder.build(seed_ids(), Predictor.load(SEED_BUNDLE).vocab_size, order, None)
    with open(os.path.join(folder, "ngram.npz"), "wb") as f:
        f.write(built.data)
    entry = builder.manifest_entry(built, hashlib.sha256(built.data).hexdigest())
    if mix_entry is not None:
        entry["mix"] = mix_entry
    elif weight is not None:
        entry["mix"] = {"lstm_weight": weight, "fitted_on": "validation", "windows": 10}
    path = os.path.join(folder, "manifest.json")
    with open(path, encoding="utf-8") as f:
        m = json.load(f)
    m["ngram"] = entry
    with open(path, "w", encoding="utf-8") as f:
        json.dump(m, f)
    return folder


@pytest.fixture(scope="module", params=installed_packages())
def package(request):
    return request.param


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return ngram_bundle(tmp_path_factory.mktemp("mix") / "b")


def parts(p, text):
    """(LSTM probabilities, n-gram probabilities) for the next word after `text`, computed apart."""
    window = p.window_for(text)
    lstm = p.probabilities(window[None, :])[0].astype(np.float64)
    ngram = p.bundle.ngram().probs(list(window))
    return lstm, ngram


@pytest.mark.parametrize("text", TEXTS)
def test_top_k_is_the_weighted_sum_of_the_two_parts(bundle, package, text):
    p = Predictor.load(bundle, backend=package)
    lstm, ngram = parts(p, text)
    want = 0.6 * lstm + 0.4 * ngram
    words = p.ranking.words
    got = p.top_k(text, k=p.vocab_size)
    assert len(got) == p.vocab_size - 1
    for word, prob in got:
        assert math.isclose(prob, want[words.index(word)], rel_tol=1e-5), (word, prob)
    # and it differs from either part alone: the test would catch a mixer that returned one of them
    assert not np.allclose([pr for _, pr in got], sorted(lstm[1:], reverse=True), rtol=1e-3)


def test_the_parts_alone(bundle, package):
    lstm_only = Predictor.load(bundle, backend=package, mix="lstm")
    ngram_only = Predictor.load(bundle, backend=package, mix="ngram")
    plain = Predictor.load(SEED_BUNDLE, backend=package)
    for text in TEXTS:
        assert lstm_only.top_k(text, 5) == plain.top_k(text, 5)          # exactly the LSTM, as before
        _, ngram = parts(lstm_only, text)
        got = dict(ngram_only.top_k(text, 10))
        for word, prob in got.items():
            assert math.isclose(prob, ngram[lstm_only.ranking.words.index(word)], rel_tol=1e-5)


def test_generate_predict_next_batch_and_complete_use_the_mixture(bundle, package):
    p = Predictor.load(bundle, backend=package)
    words = p.ranking.words
    for text in TEXTS[1:]:
        lstm, ngram = parts(p, text)
        want = 0.6 * lstm + 0.4 * ngram
        want[0] = -1
        assert p.predict_next(text) == words[int(np.argmax(want))]
        assert p.generate(text, 1) == [words[int(np.argmax(want))]]
        for s in p.complete(text + " ", k=3):
            assert math.isclose(s.probability, want[words.index(s.word)], rel_tol=1e-5)
    assert p.top_k_batch(TEXTS, 4) == [p.top_k(t, 4) for t in TEXTS]


@pytest.mark.parametrize("mode", ["stream", "exact"])
def test_sessions_mix_after_the_ids_they_were_fed(bundle, package, mode):
    p = Predictor.load(bundle, backend=package)
    s = p.session(mode=mode)
    fed = []
    for word in "hello how are you doing".split():
        s.feed(word)
        fed.append(word)
        ids = p.tokenizer.text_to_ids(" ".join(fed))
        want = 0.6 * s.probabilities().astype(np.float64) + 0.4 * p.bundle.ngram().probs(ids)
        for w, prob in s.top_k(5):
            assert math.isclose(prob, want[p.ranking.words.index(w)], rel_tol=1e-5), (mode, fed, w)
        for sug in s.complete("", 3):
            assert math.isclose(sug.probability, want[p.ranking.words.index(sug.word)], rel_tol=1e-5)
    s.undo(2)   # the n-gram context goes back with the state
    ids = p.tokenizer.text_to_ids("hello how are")
    want = 0.6 * s.probabilities().astype(np.float64) + 0.4 * p.bundle.ngram().probs(ids)
    w, prob = s.top_k(1)[0]
    assert math.isclose(prob, want[p.ranking.words.index(w)], rel_tol=1e-5)


def test_session_probability_is_the_mixture_top_k_lists(bundle, package):
    p = Predictor.load(bundle, backend=package)
    s = p.session()
    for text in ("hello", "how are", "you"):
        s.feed(text)
        listed = dict(s.top_k(p.vocab_size))
        assert listed, text
        for w, prob in listed.items():
            assert math.isclose(s.probability(w), prob, rel_tol=1e-6), (text, w)
        assert s.probability("zzzunknown") == 0.0


def test_a_bundle_without_ngram_behaves_exactly_as_before(package):
    p = Predictor.load(SEED_BUNDLE, backend=package)
    assert p.bundle.manifest.ngram is None and p.info()["mix"]["mode"] == "lstm"
    assert "the LSTM alone (this bundle has no n-gram model)" in p.describe()
    window = p.window_for("hello how")
    lstm = p.probabilities(window[None, :])[0]
    assert [w for w, _ in p.top_k("hello how", 3)] == [p.ranking.words[i] for i in np.argsort(-lstm[1:])[:3] + 1]
    with pytest.raises(InputError, match="needs a bundle with an n-gram"):
        Predictor.load(SEED_BUNDLE, backend=package, mix="ngram")
    with pytest.raises(InputError, match="mix must be one of"):
        Predictor.load(SEED_BUNDLE, mix="average")


def test_describe_and_info_say_what_is_mixed(bundle, tmp_path):
    p = Predictor.load(bundle)
    assert "LSTM x 0.60 + order-3 n-gram x 0.40 (fitted on 10 validation windows)" in p.describe()
    assert p.info()["mix"]["lstm_weight"] == 0.6
    unfitted = Predictor.load(ngram_bundle(tmp_path / "u", weight=None))
    assert unfitted.mixer.lstm_weight == FALLBACK_LSTM_WEIGHT and "default 0.7" in unfitted.describe()


@pytest.mark.parametrize("weight", [1.5, -0.1, "0.5", None, float("nan")])
def test_a_share_outside_zero_to_one_is_refused(tmp_path, weight):
    folder = ngram_bundle(tmp_path / "bad", mix_entry={"lstm_weight": weight})
    with pytest.raises(BundleInvalid, match="ngram.mix.lstm_weight"):
        Predictor.load(folder)


def test_cli_mix_flag(bundle):
    both = run_cli("nextword-predict", bundle, "hello how", "--top-k", "3", "--json")
    lstm = run_cli("nextword-predict", bundle, "hello how", "--top-k", "3", "--json", "--mix", "lstm")
    plain = run_cli("nextword-predict", SEED_BUNDLE, "hello how", "--top-k", "3", "--json")
    assert both.returncode == lstm.returncode == plain.returncode == 0
    assert json.loads(lstm.stdout) == json.loads(plain.stdout) != json.loads(both.stdout)
    bad = run_cli("nextword-predict", SEED_BUNDLE, "hello", "--mix", "ngram")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "n-gram" in bad.stderr


def test_bench_scores_the_bundle_ngram_and_the_mixture(bundle, tmp_path):
    """nextword-bench's quality table gains the bundle's own n-gram and the mixture the runtime
    suggests from, on the same held-out windows as every other column."""
    corpus = tmp_path / "seed.txt"
    corpus.write_text(SEED_LINES)
    out = tmp_path / "out"
    proc = run_cli("nextword-bench", bundle, "--quick", "--repeats", "1", "--block-ms", "2", "--cold-runs", "1",
                   "--quiet", "--no-charts", "--no-ksr", "--out", out, "--corpus", corpus, "--unit", "line",
                   "--heldout-fraction", "0.5", timeout=300)
    assert proc.returncode == 0, proc.stderr
    cols = json.loads((out / "bench.json").read_text())["quality"]["columns"]
    mixed, ngram = cols["mixture"], cols["ngram-bundle"]
    assert mixed["lstm_weight"] == 0.6 and ngram["order"] == 3
    lstm = cols[mixed["variant"]]
    assert mixed["n"] == ngram["n"] == lstm["n"] > 0
    # perplexity is convex in the mixture: never worse than the worse part
    assert mixed["perplexity"] <= max(lstm["perplexity"], ngram["perplexity"]) + 1e-9
    assert "mixture" in (out / "bench.md").read_text()
