"""Suggestions that learn from their user (issue 15 item 3): the user model (decay, bounds, forget,
reset), its mixing into a session's top_k, predict_next and complete, and the user file (atomic
under SIGKILL, 0600, refused whole when corrupt, foreign, oversized, of another version or other
tokenizer settings, while the predictor keeps answering). TF-free: real interpreters, artifacts/seed
and rehashed copies of it (tests/lexicon_bundles.py)."""

import json
import os
import random
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest

from nextword.runtime import ArgumentTypeError, InputError, Predictor, UserFileInvalid
from nextword.runtime import user_file as uf
from nextword.runtime.complete import probabilities
from nextword.runtime.limits import (MAX_COMPLETE_K, MAX_USER_BIGRAMS, MAX_USER_CACHE, MAX_USER_FILE_BYTES,
                                     MAX_USER_FILE_VALUES, MAX_USER_WORDS)
from nextword.runtime.tokenizer import Tokenizer
from nextword.runtime.user_model import (BIGRAM_WEIGHT, CACHE_WEIGHT, HALF_LIFE_WORDS, UNIGRAM_WEIGHT, USER_WEIGHT,
                                         USER_WEIGHT_RANGE, USER_WEIGHT_RATE, UserModel)
from lexicon_bundles import extended_bundle
from support import SEED_BUNDLE, SEED_TEXTS, installed_packages, rehashed_copy, run_cli

BACKENDS = installed_packages()
SEED_WORDS = "hello how are you is your day friends what doing".split()
NEW_WORDS = ["wickham", "wicked", "hero", "heroine", "youth", "darcy", "longbourn", "whatnot"]


@pytest.fixture(scope="module")
def predictor():
    return Predictor.load(SEED_BUNDLE)


@pytest.fixture(scope="module")
def lexicon_predictor(tmp_path_factory):
    return Predictor.load(extended_bundle(tmp_path_factory.mktemp("user") / "plain"))


def _words(session_or_suggestions):
    return [x[0] for x in session_or_suggestions]


def _everything(s, word):
    """Every word the session's suggesting methods return now, for every prefix of `word`."""
    out = _words(s.top_k(1000))
    out.append(s.predict_next())
    for i in range(len(word) + 1):
        out += [x.word for x in s.complete(word[:i], MAX_COMPLETE_K)]
    return out


# -- learning -----------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_word_becomes_completable_and_suggested_after_its_usual_predecessor(backend):
    p = Predictor.load(SEED_BUNDLE, backend=backend)
    s = p.session(learn=True)
    s.feed("hello")
    assert s.complete("wi") == [] and "wickham" not in _words(s.top_k(1000))   # control: unknown before
    for _ in range(4):
        s.feed("dear wickham is how are you hello")
    got = s.complete("wi")
    assert [(x.word, x.source) for x in got] == [("wickham", "user")]
    assert 0 < got[0].probability < 1
    s.feed("dear")   # the word it usually follows (unknown to the model: the user's bigram carries it)
    after_dear = dict(s.top_k(1000))
    assert "wickham" in _words(s.top_k(3)) and "wickham" in [x.word for x in s.complete("", 3)]
    s.feed("hello")  # control: after another word it is a far less likely suggestion
    assert dict(s.top_k(1000))["wickham"] < after_dear["wickham"] / 3
    s.reset()   # reset moves the context only: the word stays learnt
    assert [x.word for x in s.complete("wick")] == ["wickham"]
    assert "wickham" not in _words(p.top_k("hello dear", 1000)) and p.complete("wi") == []   # the predictor: unchanged
    assert p.session().complete("wi") == []                                                 # other sessions too


def test_learn_learns_without_moving_the_context(predictor):
    s, plain = predictor.session(learn=True), predictor.session()
    s.feed("hello how")
    plain.feed("hello how")
    steps = s.steps
    assert s.learn("darcy darcy darcy") == 3
    assert s.steps == steps and s.user_model.count("darcy") == pytest.approx(3, rel=1e-3)
    assert s.probabilities().tolist() == plain.probabilities().tolist()   # the model's own distribution
    assert "darcy" in _words(s.top_k(5))


def test_the_mixture_is_the_weighted_sum_of_model_and_user_parts(predictor):
    s = predictor.session(learn=True)
    s.feed("hello wickham hello how are you hello wickham is")
    s.feed("hello")
    um = s.user_model
    p_model = probabilities(s.logits())
    words = um.words()
    p_user = dict(zip(words, um.probs("hello", words)))
    assert sum(p_user.values()) == pytest.approx(1.0)
    # the parts by hand: bigram after "hello", unigram, recency cache (every word here is in it)
    total = sum(um.count(w) for w in words)
    after = {w: um.pair_count("hello", w) for w in words}
    cache = um.cache()
    for w in words:
        want = (BIGRAM_WEIGHT * after[w] / sum(after.values()) + UNIGRAM_WEIGHT * um.count(w) / total
                + CACHE_WEIGHT * cache.count(w) / len(cache)) / (BIGRAM_WEIGHT + UNIGRAM_WEIGHT + CACHE_WEIGHT)
        assert p_user[w] == pytest.approx(want, rel=1e-9)
    got = dict(s.top_k(1000))
    index = predictor.tokenizer.word_index
    for w in SEED_WORDS:
        want = (1 - USER_WEIGHT) * p_model[index[w]] + USER_WEIGHT * p_user.get(w, 0.0)
        assert got[w] == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert got["wickham"] == pytest.approx(USER_WEIGHT * p_user["wickham"])   # user-only: the user part alone
    assert {x.word: x.probability for x in s.complete("", MAX_COMPLETE_K)} == pytest.approx(got)


def test_probability_is_what_top_k_lists_for_every_word(predictor, lexicon_predictor):
    """Session.probability (perplexity with learning) agrees with top_k for model, lexicon and user-only
    words, and is 0 for what is never suggested."""
    for pred, text in ((predictor, "hello wickham hello how are you hello wickham is"),
                       (lexicon_predictor, "hello elizabeth and mr darcy hello elizabeth")):
        plain = pred.session()
        plain.feed("hello how")
        for w, prob in plain.top_k(1000):
            assert plain.probability(w) == pytest.approx(prob, rel=1e-9)
        s = pred.session(learn=True)
        s.feed(text)
        listed = dict(s.top_k(1000))
        assert "wickham" in listed or "elizabeth" in listed
        for w, prob in listed.items():
            assert s.probability(w) == pytest.approx(prob, rel=1e-9, abs=1e-15), w
        assert s.probability("neverseen") == 0.0
        s.forget("hello")
        assert "hello" not in _words(s.top_k(1000)) and s.probability("hello") == 0.0
    with pytest.raises(InputError):
        s.probability("two words")
    with pytest.raises(ArgumentTypeError):
        s.probability(3)


def test_the_user_weight_adapts_to_which_part_predicted_the_word_typed(predictor):
    """mu moves USER_WEIGHT_RATE of the way to the user part's share of the word's mixed probability
    (online EM), only when the suggestions for that word were asked for; it rises for a user typing what
    the model never saw, stays in USER_WEIGHT_RANGE and comes back with reset_learning."""
    s = predictor.session(learn=True)
    s.feed("hello wickham darcy hello")
    assert s.user_weight == USER_WEIGHT
    s.feed("wickham")                                   # no suggestions asked before it: no evidence
    assert s.user_weight == USER_WEIGHT
    index = predictor.tokenizer.word_index
    for word in ["darcy", "hello", "how", "wickham", "darcy", "hello", "wickham"]:
        mu = s.user_weight
        s.top_k(3)                                      # what a keyboard shows before the word
        um = s.user_model
        pu = um.probs(s._learning.prev, [word])[0]
        pm = probabilities(s.logits())[index[word]] if word in index else 0.0
        want = mu + USER_WEIGHT_RATE * (mu * pu / (mu * pu + (1 - mu) * pm) - mu)
        s.feed(word)
        assert s.user_weight == pytest.approx(min(max(want, USER_WEIGHT_RANGE[0]), USER_WEIGHT_RANGE[1]), rel=1e-9)
    assert s.user_weight > USER_WEIGHT                  # the names only the user model predicts
    for _ in range(400):
        s.top_k(1)
        s.feed("wickham")
    assert s.user_weight == pytest.approx(USER_WEIGHT_RANGE[1])
    s.reset_learning()
    assert s.user_weight == 0.0 and s._learning.mu == USER_WEIGHT
    assert predictor.session().user_weight is None


def _reference(p, s, prev, prefix, k):
    """Every word (the tokenizer's but the OOV token, and every learnt word) scored by hand."""
    tok, um = p.tokenizer, s.user_model
    probs = probabilities(s.logits())
    mu = USER_WEIGHT if len(um) else 0.0
    lexicon_only = {w: c for w, c in tok.word_counts.items() if tok.word_index[w] >= p.vocab_size}
    total = sum(lexicon_only.values())
    words = set(tok.word_counts) | set(um.words())
    pu = dict(zip(sorted(words), um.probs(prev, sorted(words))))
    rows = []
    for w in words:
        if w == tok.oov_token or not w.lower().startswith(prefix) or w in um.forgotten or w in p.blocklist:
            continue
        i = tok.word_index.get(w)
        if i is None:
            pm, rank, source = 0.0, len(tok.word_index) + 1, "user"
        elif i < p.vocab_size:
            pm, rank, source = float(probs[i]), i, "model"
        else:
            oov = tok.oov_id
            pm, rank, source = (float(probs[oov]) * lexicon_only[w] / total if oov is not None else 0.0), i, "lexicon"
        rows.append(((1 - mu) * pm + mu * pu[w], rank, w, source))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    return rows[:k]


@pytest.mark.parametrize("kind", ["seed", "plain", "oov"])
def test_mixed_completion_equals_brute_force_over_every_word(kind, tmp_path):
    path = SEED_BUNDLE if kind == "seed" else extended_bundle(tmp_path / kind, oov=kind == "oov")
    p = Predictor.load(path)
    p.block("wicked")
    pool = list(p.tokenizer.word_counts) + NEW_WORDS
    rng = random.Random(3)
    checked = 0
    for trial in range(25):
        s = p.session(mode=rng.choice(["stream", "exact"]), learn=True)
        text = " ".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        s.feed(text)
        if rng.random() < 0.5:
            s.forget(rng.choice(pool))
        prev = p.tokenizer.words(text)[-1] if text else None
        for prefix in ("", "h", "w", "wi", "d", "y", "yo", "e", "zz"):
            for k in (1, 3, 6, 50):
                got = s.complete(prefix, k)
                want = _reference(p, s, prev, prefix, k)
                assert [(x.word, x.source) for x in got] == [(w, src) for _, _, w, src in want], (trial, prefix, k)
                assert [x.probability for x in got] == pytest.approx([sc for sc, _, _, _ in want], rel=1e-6, abs=1e-12)
                checked += 1
        want = [(w, sc) for sc, _, w, src in _reference(p, s, prev, "", 10_000) if src in ("model", "user")
                or w in s.user_model]
        assert [w for w, _ in s.top_k(10_000)] == [w for w, _ in want]
        assert [x for _, x in s.top_k(10_000)] == pytest.approx([sc for _, sc in want], rel=1e-6, abs=1e-12)
    assert checked == 25 * 9 * 4


def test_lexicon_words_learnt_keep_their_model_share_and_source(lexicon_predictor):
    s = lexicon_predictor.session(learn=True)
    s.feed("hello elizabeth and mr darcy")   # elizabeth, mr, darcy: tokenizer words beyond the model; "and": new
    sources = {x.word: x.source for x in s.complete("", MAX_COMPLETE_K)}
    assert sources["elizabeth"] == sources["darcy"] == "lexicon" and sources["and"] == "user"
    assert sources["hello"] == "model"


def test_without_learning_a_session_answers_exactly_as_before(predictor, tmp_path):
    """A plain session answers as the window predictor does in exact mode (the path every existing
    test pins), and so does a session with a user model that holds nothing (never filled, or filled
    then reset), call for call."""
    for mode in ("exact", "stream"):
        for text in SEED_TEXTS + ["", "unknown words only"]:
            plain = predictor.session(mode=mode)
            empty = predictor.session(mode=mode, user_file=str(tmp_path / "none.json"))   # no file yet: empty
            cleared = predictor.session(mode=mode, user_file=str(tmp_path / "none.json"))
            cleared.learn("wickham darcy hello")
            cleared.forget("how")
            cleared.reset_learning()
            for s in (plain, empty, cleared):
                s.feed(text)
            for s in (empty, cleared):
                assert s.top_k(1000) == plain.top_k(1000)
                assert s.predict_next() == plain.predict_next()
                for prefix in ("", "h", "ho", "y", "zz"):
                    assert s.complete(prefix, 1000) == plain.complete(prefix, 1000)
            if mode == "exact":
                window = predictor.top_k(text, 1000)
                assert _words(plain.top_k(1000)) == _words(window)
                assert [x for _, x in plain.top_k(1000)] == pytest.approx([x for _, x in window], rel=1e-4)
                assert [x.word for x in plain.complete("h", 50)] == [x.word for x in predictor.complete(text + " h", 50)]
    fresh, plain = predictor.session(learn=True), predictor.session()
    assert fresh.top_k(1000) == plain.top_k(1000) and fresh.complete("", 1000) == plain.complete("", 1000)


# -- decay and bounds ----------------------------------------------------------------------------
def test_counts_halve_after_a_half_life_of_words():
    um = UserModel(Tokenizer())
    um.learn(["rare", "rare"])
    assert um.count("rare") == pytest.approx(2.0, rel=1e-4)
    um.learn(["filler"] * HALF_LIFE_WORDS)
    assert um.count("rare") == pytest.approx(1.0, rel=1e-3)
    assert um.count("filler") == pytest.approx(HALF_LIFE_WORDS / (2 * np.log(2)), rel=1e-3)   # integral of the decay
    um.learn(["filler"] * HALF_LIFE_WORDS)
    assert um.count("rare") == pytest.approx(0.5, rel=1e-3)
    # the same text learnt earlier weighs less than the same text learnt later
    um2 = UserModel(Tokenizer())
    um2.learn(["old"] * 10 + ["x"] * HALF_LIFE_WORDS + ["new"] * 10)
    assert um2.count("old") == pytest.approx(um2.count("new") / 2, rel=1e-2)


def test_feeding_more_than_the_limits_keeps_the_model_within_them(tmp_path):
    rng = random.Random(5)
    um = UserModel(Tokenizer())
    frequent = [f"keep{i}" for i in range(50)]
    n = MAX_USER_WORDS + 20_000
    words = []
    for i in range(n):
        words.append(f"w{i}")
        if i % 10 == 0:
            words.append(rng.choice(frequent))
    um.learn(words)
    assert len(um) <= MAX_USER_WORDS and um.pairs <= MAX_USER_BIGRAMS and len(um.cache()) == MAX_USER_CACHE
    assert all(w in um for w in frequent)                       # the highest counts are kept
    assert f"w{n - 1}" in um and "w0" not in um                 # the newest kept, the oldest single ones dropped
    pool = [f"p{i}" for i in range(700)]                        # > MAX_USER_BIGRAMS distinct pairs
    um.learn([rng.choice(pool) for _ in range(MAX_USER_BIGRAMS + 60_000)])
    assert len(um) <= MAX_USER_WORDS and um.pairs <= MAX_USER_BIGRAMS
    assert all(w in um for w in um.cache())
    raw = uf.encode(um)
    assert len(raw) <= MAX_USER_FILE_BYTES
    path = tmp_path / "full.json"
    uf.save(str(path), um)
    back = UserModel(Tokenizer())
    assert uf.load(str(path), back)
    assert back.words() == um.words() and back.pairs == um.pairs and back.cache() == um.cache()
    assert back.probs("p1", pool[:50]) == pytest.approx(um.probs("p1", pool[:50]), rel=1e-9)


def test_a_model_too_big_for_its_file_is_pruned_until_it_fits():
    um = UserModel(Tokenizer())
    long_words = ["x" * 1000 + str(i) for i in range(20_000)]   # 20 MB of words: past MAX_USER_FILE_BYTES
    um.learn(long_words)
    raw = uf.encode(um)
    assert len(raw) <= MAX_USER_FILE_BYTES and len(um) < 20_000
    assert long_words[-1] in um   # the recency cache is kept


# -- forget and reset ---------------------------------------------------------------------------
def test_forget_removes_a_word_from_every_suggestion_path_fuzzed(predictor):
    rng = random.Random(15)
    pool = SEED_WORDS + NEW_WORDS
    checked = 0
    for trial in range(40):
        s = predictor.session(mode=rng.choice(["stream", "exact"]), learn=True)
        for _ in range(rng.randint(1, 4)):
            s.feed(" ".join(rng.choice(pool) for _ in range(rng.randint(1, 8))))
        suggested = set(_words(s.top_k(rng.randint(1, 12)))) | {x.word for x in s.complete("", 6)}
        word = rng.choice(sorted(suggested))
        assert word in _everything(s, word)                        # control: suggested before
        s.forget(word.upper() if rng.random() < 0.3 else word)     # normalised as the tokenizer writes words
        for _ in range(3):
            assert word not in _everything(s, word), (trial, word)
            s.feed(" ".join(rng.choice([w for w in pool if w != word]) for _ in range(rng.randint(1, 5))))
            checked += 1
        assert word not in s.user_model
        s.feed(word)   # learnt again: the mask is lifted
        assert word not in s.user_model.forgotten
        assert word in {x.word for x in s.complete(word, MAX_COMPLETE_K)}
    assert checked == 120


def test_forget_a_model_word_masks_it_until_learnt_again_and_persists(predictor, tmp_path):
    path = str(tmp_path / "me.json")
    s = predictor.session(learn=True, user_file=path)
    s.feed("hello")
    assert s.predict_next() == "how"                               # control
    assert s.forget("how") is False                                # never learnt, still masked
    assert s.predict_next() != "how" and "how" not in _everything(s, "how")
    s.save_user()
    again = predictor.session(learn=True, user_file=path)
    again.feed("hello")
    assert "how" not in _everything(again, "how")
    again.learn("how")
    assert "how" in _words(again.top_k(3))


def test_reset_learning_gives_back_the_bundles_suggestions(predictor):
    s, plain = predictor.session(learn=True), predictor.session()
    s.feed("hello wickham wickham hello wickham")
    s.forget("how")
    plain.feed("hello wickham wickham hello wickham")
    assert s.top_k(1000) != plain.top_k(1000)
    s.reset_learning()
    assert len(s.user_model) == 0 and not s.user_model.forgotten
    assert s.top_k(1000) == plain.top_k(1000) and s.complete("", 1000) == plain.complete("", 1000)
    assert s.complete("wi") == []
    s.feed("hello darcy darcy hello")                              # learning after a reset: no stale answer
    again = predictor.session(learn=True)                          # the same, never asked before the reset
    again.feed("hello wickham wickham hello wickham")
    again.reset_learning()
    again.feed("hello darcy darcy hello")
    assert s.top_k(1000) == again.top_k(1000) and s.complete("", 50) == again.complete("", 50)


def test_answers_after_reset_learning_are_never_cached_ones(predictor):
    """Caches key on the model's version: a reset must not bring a version (and an answer) back."""
    s, again = predictor.session(learn=True), predictor.session(learn=True)
    for session, ask in ((s, True), (again, False)):
        session.feed("wickham wickham hello")
        if ask:
            session.top_k(5)
            session.complete("", 5)
        session.reset_learning()
        session.feed("darcy hello")
    assert s.top_k(1000) == again.top_k(1000) and s.complete("", 50) == again.complete("", 50)


def test_the_blocklist_wins_over_learning():
    p = Predictor.load(SEED_BUNDLE)
    s = p.session(learn=True)
    s.feed("hello wickham hello wickham hello")
    assert "wickham" in _words(s.top_k(5))                         # control
    p.block(["wickham", "how"])
    for _ in range(3):
        assert "wickham" not in _everything(s, "wickham") and "how" not in _everything(s, "how")
        s.feed("wickham how hello")
    p.unblock("wickham")
    assert "wickham" in _words(s.top_k(5))


def test_learning_api_types_and_misuse(predictor, tmp_path):
    with pytest.raises(ArgumentTypeError):
        predictor.session(learn=1)
    with pytest.raises(InputError, match="user_file must be a path"):
        predictor.session(learn=True, user_file=3)
    plain = predictor.session()
    for call in (lambda: plain.learn("x"), lambda: plain.forget("x"), plain.reset_learning, plain.save_user):
        with pytest.raises(InputError, match="does not learn"):
            call()
    s = predictor.session(learn=True)
    with pytest.raises(InputError, match="no user file"):
        s.save_user()
    with pytest.raises(InputError, match="one word"):
        s.forget("two words")
    with pytest.raises(ArgumentTypeError):
        s.forget(3)
    with pytest.raises(ArgumentTypeError):
        s.learn(b"bytes")
    assert s.learn("") == 0 and s.learn("!!! ...") == 0


# -- the user file ------------------------------------------------------------------------------
def test_user_file_round_trips_with_mode_0600(predictor, tmp_path):
    path = str(tmp_path / "me.json")
    s = predictor.session(learn=True, user_file=path)
    assert not os.path.exists(path)                                 # nothing written before save_user
    s.feed("hello wickham is how are you hello wickham")
    s.feed("hello")
    s.save_user()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    data = json.loads(open(path, encoding="utf-8").read())
    assert data["format"] == "nextword-user-model" and data["format_version"] == 1
    assert data["tokenizer"] == {"lower": True, "filters": predictor.tokenizer.filters, "split": " "}
    again = predictor.session(user_file=path)                       # learn=False: the file is used, not grown
    again.feed("hello wickham is how are you hello wickham")
    again.feed("hello")
    assert _words(again.top_k(1000)) == _words(s.top_k(1000))
    assert [x for _, x in again.top_k(1000)] == pytest.approx([x for _, x in s.top_k(1000)], rel=1e-9)
    assert [x.word for x in again.complete("wi")] == ["wickham"]
    frozen = predictor.session(user_file=path)                      # a user file without learning: used, not grown
    frozen.feed("hello darcy")
    assert "darcy" not in frozen.user_model and "wickham" in frozen.user_model


def test_user_file_inside_the_bundle_is_refused(tmp_path):
    bundle = rehashed_copy(tmp_path / "b")
    p = Predictor.load(bundle)
    for inside in (os.path.join(bundle, "me.json"), os.path.join(bundle, "sub", "..", "me.json")):
        with pytest.raises(InputError, match="inside the bundle"):
            p.session(learn=True, user_file=inside)
    os.symlink(bundle, tmp_path / "link")
    with pytest.raises(InputError, match="inside the bundle"):
        p.session(learn=True, user_file=str(tmp_path / "link" / "me.json"))
    assert sorted(os.listdir(bundle)) == sorted(os.listdir(SEED_BUNDLE))


def _saved(predictor, folder):
    path = str(folder / "good.json")
    s = predictor.session(learn=True, user_file=path)
    s.feed("hello wickham is how are you hello wickham")
    s.save_user()
    return json.loads(open(path, encoding="utf-8").read())


def _crafted(good):
    """name -> bytes of a bad user file, generated from a good one."""
    def edit(change):
        data = json.loads(json.dumps(good))
        change(data)
        return json.dumps(data).encode()
    manifest = open(os.path.join(SEED_BUNDLE, "manifest.json"), "rb").read()
    return {
        "not json": b'{"format": "nextword-user-model", "format_version": 1, "words": [[',
        "not utf-8": b'{"format": "\xff"}',
        "empty": b"",
        "a list": b"[1, 2, 3]",
        "foreign (a manifest)": manifest,
        "foreign (the vocabulary)": open(os.path.join(SEED_BUNDLE, "vocab.json"), "rb").read(),
        "newer version": edit(lambda d: d.update(format_version=2)),
        "version true": edit(lambda d: d.update(format_version=True)),
        "other settings (lower)": edit(lambda d: d["tokenizer"].update(lower=False)),
        "other settings (filters)": edit(lambda d: d["tokenizer"].update(filters="")),
        "no settings": edit(lambda d: d.pop("tokenizer")),
        "NaN count": json.dumps(good).replace(str(good["words"][0][1]), "NaN").encode(),
        "negative count": edit(lambda d: d["words"][0].__setitem__(1, -1)),
        "huge count": edit(lambda d: d["words"][0].__setitem__(1, 1e300)),
        "string count": edit(lambda d: d["words"][0].__setitem__(1, "3")),
        "word not as the tokenizer writes it": edit(lambda d: d["words"][0].__setitem__(0, "Hello")),
        "two words in one": edit(lambda d: d["words"][0].__setitem__(0, "a b")),
        "repeated word": edit(lambda d: d["words"].append(list(d["words"][0]))),
        "pair out of range": edit(lambda d: d["bigrams"].append([0, 999, 1.0])),
        "pair of bools": edit(lambda d: d["bigrams"].append([True, False, 1.0])),
        "cache out of range": edit(lambda d: d["cache"].append(-1)),
        "cache too long": edit(lambda d: d.update(cache=[0] * (MAX_USER_CACHE + 1))),
        "too many words": edit(lambda d: d.update(words=[[f"w{i}", 1.0] for i in range(MAX_USER_WORDS + 1)])),
        "forgotten not a list": edit(lambda d: d.update(forgotten="how")),
        "learnt negative": edit(lambda d: d.update(learnt=-3)),
        "too many values": b"[" + b"0," * MAX_USER_FILE_VALUES + b"0]",
        "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    }


def test_bad_user_files_are_refused_and_the_predictor_keeps_answering(predictor, tmp_path):
    good = _saved(predictor, tmp_path)
    before = predictor.top_k("hello how", 5)
    plain = predictor.session()
    plain.feed("hello how")
    before_session = plain.top_k(5)
    crafted = _crafted(good)
    for name, raw in crafted.items():
        path = tmp_path / "bad.json"
        path.write_bytes(raw)
        with pytest.raises(UserFileInvalid) as e:
            predictor.session(learn=True, user_file=str(path))
        assert e.value.exit_code == 2 and isinstance(e.value, InputError), name
        assert len(str(e.value)) <= 600 and "bad.json" in str(e.value), name
        assert predictor.top_k("hello how", 5) == before, name
        s = predictor.session()                                      # the bundle works without the file
        s.feed("hello how")
        assert s.top_k(5) == before_session, name
        assert path.read_bytes() == raw, name                        # a refused file is left as it was
    assert len(crafted) == 27
    path = tmp_path / "good.json"
    path.write_text(json.dumps(good))
    predictor.session(learn=True, user_file=str(path))               # control: the good one loads


def test_oversized_fifo_and_folder_user_files_are_refused_without_reading_them(predictor, tmp_path):
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_USER_FILE_BYTES + 1)                           # sparse: costs nothing to make
    with pytest.raises(UserFileInvalid, match="bytes"):
        predictor.session(learn=True, user_file=str(big))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(UserFileInvalid, match="not a regular file"):
        predictor.session(learn=True, user_file=str(fifo))           # no writer: a plain open would block
    assert time.monotonic() - t0 < 30
    with pytest.raises(UserFileInvalid):
        predictor.session(learn=True, user_file=str(tmp_path))
    assert predictor.predict_next("hello") == "how"


CHILD = r"""
import sys, time
from nextword.runtime import Predictor
p = Predictor.load(sys.argv[1])
s = p.session(learn=True, user_file=sys.argv[2])
s.learn(" ".join(f"word{i} w{i % 997}" for i in range(int(sys.argv[3]))))
stop_at = sys.argv[4]   # an audit event of the save: the child says so and waits there to be killed


def hook(event, args):
    if event == stop_at:
        print("at " + event, flush=True)
        time.sleep(600)


sys.addaudithook(hook)
print("learnt", flush=True)
s.save_user()
print("saved", flush=True)
"""

# where the kill lands, told by the save's own audit events (no clock): the temporary file made
# and nothing written yet (os.chmod), every byte written but not yet renamed (os.rename)
KILL_POINTS = {"os.chmod": "empty", "os.rename": "complete"}


def test_the_user_file_is_the_old_or_the_new_after_a_sigkill_during_save(predictor, tmp_path):
    path = str(tmp_path / "me.json")
    s = predictor.session(learn=True, user_file=path)
    s.feed("hello wickham")
    s.save_user()
    old = open(path, "rb").read()
    for event, temporary in KILL_POINTS.items():
        before = {n for n in os.listdir(tmp_path) if n.endswith(".tmp")}   # earlier kills' leftovers
        child = subprocess.Popen([sys.executable, "-c", CHILD, SEED_BUNDLE, path, "40000", event],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert child.stdout.readline().strip() == "learnt", child.stderr.read()
        assert child.stdout.readline().strip() == f"at {event}", child.stderr.read()
        tmps = [n for n in os.listdir(tmp_path) if n.endswith(".tmp") and n not in before]
        sizes = [os.stat(tmp_path / n).st_size for n in tmps]
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        assert child.returncode == -signal.SIGKILL
        assert len(tmps) == 1 and (sizes[0] == 0) == (temporary == "empty") and sizes[0] < 10 ** 8
        assert open(path, "rb").read() == old                  # the kill mid-save left the old file whole
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert len(predictor.session(learn=True, user_file=path).user_model) == len(s.user_model)
    # no kill: the same child saves the new file, which loads whole
    child = subprocess.run([sys.executable, "-c", CHILD, SEED_BUNDLE, path, "40000", "none"],
                           capture_output=True, text=True, timeout=300)
    assert child.stdout.split() == ["learnt", "saved"], child.stderr
    assert len(predictor.session(learn=True, user_file=path).user_model) > 40_000
    assert [n for n in os.listdir(tmp_path) if n.endswith(".tmp")] == []   # the save removed the killed ones' leftovers
    s.save_user()
    assert open(path, "rb").read() == old


def test_user_file_errors_are_exit_code_2():
    assert UserFileInvalid.exit_code == 2 and issubclass(UserFileInvalid, InputError)


# -- the command line -----------------------------------------------------------------------------
def _stream(*args, stdin):
    return run_cli("nextword-predict", SEED_BUNDLE, "--stream", "--json", "--top-k", "20", *args, stdin=stdin, timeout=120)


def test_stream_cli_learns_forgets_and_keeps_a_user_file(tmp_path):
    path = str(tmp_path / "me.json")
    r = _stream("--user-file", path, stdin="hello wickham\nhello wickham\n/save\nhello\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert lines[2]["saved_bytes"] > 0 and "wickham" in [w for w, _ in lines[3]["top_k"]]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    r = _stream("--user-file", path, stdin="hello\n/forget wickham\nhello\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert "wickham" in [w for w, _ in lines[0]["top_k"]]            # read back from the file
    assert lines[1]["forgotten"] is True and "wickham" not in [w for w, _ in lines[2]["top_k"]]
    r = _stream("--user-file", path, stdin="hello\n")                 # saved at the end of input: still forgotten
    assert "wickham" not in [w for w, _ in json.loads(r.stdout.splitlines()[0])["top_k"]]
    plain = _stream(stdin="hello\n/forget how\n/save\n")             # no --user-file: an error line each, exit 2
    assert plain.returncode == 2 and len(plain.stderr.splitlines()) == 2 and "does not learn" in plain.stderr


def test_stream_cli_refuses_a_bad_user_file_with_exit_2(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_bytes(open(os.path.join(SEED_BUNDLE, "manifest.json"), "rb").read())
    for args in (("--user-file", str(bad)), ("--user-file", os.path.join(SEED_BUNDLE, "me.json"))):
        r = _stream(*args, stdin="hello\n")
        assert r.returncode == 2 and r.stdout == "", r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert not os.path.exists(os.path.join(SEED_BUNDLE, "me.json"))
    r = run_cli("nextword-predict", SEED_BUNDLE, "hello", "--user-file", str(tmp_path / "x.json"))
    assert r.returncode == 2 and "--stream" in r.stderr
    assert bad.read_bytes() == open(os.path.join(SEED_BUNDLE, "manifest.json"), "rb").read()


def test_a_long_text_learns_as_its_words_one_by_one(predictor):
    """Text is learnt in blocks (never one list of a book's words); pairs across block cuts count."""
    text = " ".join(f"w{i % 3000}" for i in range(30_000))   # ~180 KB: dozens of blocks
    s, t = predictor.session(learn=True), predictor.session(learn=True)
    assert s.learn(text) == 30_000
    t.user_model.learn(predictor.tokenizer.words(text))
    a, b = s.user_model.to_dict(), t.user_model.to_dict()
    assert [w for w, _ in a["words"]] == [w for w, _ in b["words"]] and a["cache"] == b["cache"]
    assert [c for _, c in a["words"]] == pytest.approx([c for _, c in b["words"]], rel=1e-9)
    assert [r[:2] for r in a["bigrams"]] == [r[:2] for r in b["bigrams"]]
    fed = predictor.session(learn=True)
    fed.feed(text)
    assert fed.user_model.pairs == s.user_model.pairs and fed.user_model.words() == s.user_model.words()
    with pytest.raises(InputError, match="at most"):
        s.forget("x" * 100_000)
