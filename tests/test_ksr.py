"""Keystroke savings (bench/ksr.py, bench/presage.py, bench/ksr_bench.py): the simulator against a
hand-counted example, the Kneser-Ney completer against brute force over its full distribution, and
Presage's own simulator against ours on the same suggestions. No TensorFlow.

Presage tests exist only where its tools are installed (defined at module level under a condition:
not collected elsewhere, never skipped); the bench's note for a missing Presage is tested by running
nextword-bench with a PATH that lacks the tools."""

import json
import os
import sys
import tempfile

import numpy as np
import pytest

from nextword.bench import ksr, presage
from nextword.bench.ngram import KneserNeyTrigram
from nextword.runtime.predictor import Predictor
from nextword.runtime.tokenizer import Tokenizer
from nextword.train.corpus import SEED_LINES
from support import SEED_BUNDLE, run_cli

DOCS = [["the", "cat", "sat"], ["a", "dog"]]
SCRIPT = {
    ((), ""): ["the", "a", "x"],
    ((), "a"): ["a"],
    (("the",), ""): ["dog", "car", "cap"],
    (("the",), "c"): ["car", "cap", "cat"],
    (("the",), "ca"): ["car", "cat"],
    (("the", "cat"), ""): ["on"],
    (("the", "cat"), "s"): ["so"],
    (("a",), ""): ["dog"],
}


class Scripted:
    """suggest() from SCRIPT (missing keys: nothing suggested), recording every call."""

    def __init__(self):
        self.calls = []

    def __call__(self, context, prefix, n):
        self.calls.append((context, prefix, n))
        return list(SCRIPT.get((context, prefix), []))


@pytest.mark.parametrize("n, typed, selected, first, ksr_value", [(1, 9, 3, 2, 1 / 3), (2, 6, 4, 3, 4 / 9),
                                                                  (3, 5, 4, 3, 1 / 2)])
def test_simulator_matches_the_hand_count(n, typed, selected, first, ksr_value):
    """Keys without prediction: the 4 + cat 4 + sat 4 + a 2 + dog 4 = 18 (letters + space).

    N = 1 (only the first suggestion counts): "the" is first before any letter: 1 key. "cat": ""
    shows dog, "c" car, "ca" car, "cat" nothing: never suggested, 3 letters + space = 4. "sat": never
    suggested: 4. New document, so "a" sees the empty context again: "" shows "the" (miss), after
    typing "a" it is shown: 1 letter + 1 to select = 2 (no saving). "dog" first before a letter: 1.
    typed 0+4+4+1+0 = 9, selected 1+1+1 = 3 -> KSR 1 - 12/18 = 1/3; before a letter: the, dog.
    N = 2: "cat" appears after "ca" (car, cat): 2 letters + 1 = 3; "a" is second before a letter: 1.
    typed 0+2+4+0+0 = 6, selected 4 -> 1 - 10/18 = 4/9; before a letter: the, a, dog.
    N = 3: "cat" is third after "c": 1 + 1 = 2. typed 5, selected 4 -> 1 - 9/18 = 1/2.
    Suggestions beyond N are ignored ("x", and "cat" at place 3 for N < 3)."""
    s = Scripted()
    rec = ksr.simulate(DOCS, s, n)
    assert (rec.words, rec.keys_without) == (5, 18)
    assert (rec.keys_typed, rec.keys_selected, rec.words_suggested_before_first_letter) == (typed, selected, first)
    assert rec.ksr == pytest.approx(ksr_value)
    assert all(call_n == n for _, _, call_n in s.calls)
    # the context never crosses a document: the second document starts from ()
    assert [c for c, p, _ in s.calls if p == ""] == [(), ("the",), ("the", "cat"), (), ("a",)]


def test_simulator_times_every_call_and_checks_n():
    rec = ksr.simulate(DOCS, Scripted(), 2, timed=True)
    calls = 1 + 3 + 4 + 1 + 1   # the: "", cat: "" c ca, sat: "" s sa sat, a: "", dog: ""
    assert rec.latency["calls"] == calls and rec.latency["p90_us"] >= rec.latency["median_us"] >= 0
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError):
            ksr.simulate(DOCS, Scripted(), bad)
    assert ksr.simulate([], Scripted(), 3).ksr == 0.0


def test_cap_words_keeps_the_first_words_in_order():
    assert ksr.cap_words(DOCS, 4) == [["the", "cat", "sat"], ["a"]]
    assert ksr.cap_words(DOCS, 0) == DOCS and ksr.cap_words(DOCS, 99) == DOCS


TRAIN = ["the cat sat on the mat", "the cat ate the cake", "a cat can catch the cap",
         "the cap came off the cat", "catalogue of cats and caps", "the mat and the cat"]


def _brute(lm, tok, ctx_words, prefix, n):
    """The reference: the full distribution after the context's last two ids, every in-model word
    starting with the prefix, probability descending, ties by lower id."""
    ids = [i for w in ctx_words for i in tok.text_to_ids(w)][-2:]
    p = lm.probs(ids)
    table = tok.id_to_word_table()
    cands = [i for i in range(1, tok.vocab_size) if table[i] is not None and i != tok.oov_id
             and table[i].startswith(prefix)]
    cands.sort(key=lambda i: (-p[i], i))
    return [table[i] for i in cands[:n]]


@pytest.mark.parametrize("oov", [None, "<oov>"])
def test_kn_completer_equals_brute_force_and_never_offers_lexicon_only_words(oov):
    tok = Tokenizer(num_words=10, oov_token=oov).fit_on_texts(TRAIN)
    train_ids = tok.texts_to_sequences(TRAIN)
    lm = KneserNeyTrigram(tok.vocab_size).fit(train_ids)
    comp = ksr.KneserNeyCompleter(tok, train_ids)
    lexicon_only = [w for w, i in tok.word_index.items() if i >= tok.vocab_size]
    assert lexicon_only   # the cap leaves words outside the model
    rng = np.random.default_rng(0)
    words = list(tok.word_counts)
    checked = 0
    for _ in range(200):
        ctx = tuple(rng.choice(words, size=int(rng.integers(0, 4))))
        target = str(rng.choice(words))
        for prefix in (target[:k] for k in range(len(target) + 1)):
            for n in (1, 3, 6, 50):
                got = comp(ctx, prefix, n)
                assert got == _brute(lm, tok, ctx, prefix, n), (ctx, prefix, n)
                assert not set(got) & set(lexicon_only)
                checked += 1
    assert checked > 1000
    # a lexicon-only word is typed in full: never suggested at any prefix
    rec = ksr.simulate([[lexicon_only[0]]], comp, 6)
    assert rec.keys_typed == len(lexicon_only[0]) + 1 and rec.keys_selected == 0


def test_prefix_index_spans_exactly_the_words_with_the_prefix():
    words = ["cat", "ca", "cab", "dog", "c", "cz", "d\u00e9j\u00e0", "d", ""]
    idx = ksr.PrefixIndex(words)
    for prefix in ["", "c", "ca", "cat", "cats", "d", "d\u00e9", "z", "\U0010ffff"]:
        lo, hi = idx.span(prefix)
        assert sorted(idx.sorted_words[lo:hi]) == sorted(w for w in words if w.startswith(prefix))


def test_parse_result_and_trace_of_presage_output():
    """The format presage_simulator prints (src/lib/simulator/simulator.cpp), written out by hand."""
    out = ("===> the\n   > \nthe\n===> cat\n   > \non\nmat\n===> cat\n   > c\ncat\n\n"
           "============================\nKeystroke Savings Rate (KSR)\n\nki : 2\nks : 2\nkn : 8\n\nKSR: 50\n")
    r = presage.parse_result(out.encode())
    assert (r["ki"], r["ks"], r["kn"]) == (2, 2, 8)
    assert r["presage_ksr"] == pytest.approx(0.5) and r["ksr"] == pytest.approx(1 - 3 / 8)
    assert presage.parse_trace(out.encode()) == [("the", "", ["the"]), ("cat", "", ["on", "mat"]),
                                                 ("cat", "c", ["cat"])]
    with pytest.raises(ValueError):
        presage.parse_result(b"Assertion failed")


def test_encoder_keeps_every_word_one_byte_per_character():
    docs = [["elizabeth's", "d\u00e9j\u00e0", "\u201cwell", "mr"]]
    enc = presage.Encoder(docs)
    for w in docs[0]:
        b = enc.word(w)
        assert len(b) == len(w) and b" " not in b and b"'" not in b
    assert len({enc.word(w) for w in docs[0]}) == 4
    crowded = [["".join(chr(0x100 + i) for i in range(40))]]
    enc = presage.Encoder(crowded)
    assert len(enc.overflow) == 40 - len(presage.SPARE_BYTES)


def test_bench_prints_a_note_when_presage_is_absent(tmp_path):
    corpus = tmp_path / "seed.txt"
    corpus.write_text(SEED_LINES)
    out = tmp_path / "out"
    path = os.path.dirname(sys.executable) + os.pathsep + str(tmp_path / "nothing-here")
    assert presage.find_tools(path) is None
    proc = run_cli("nextword-bench", SEED_BUNDLE, "--quick", "--repeats", "1", "--block-ms", "2", "--cold-runs", "1",
                   "--quiet", "--no-charts", "--out", out, "--corpus", corpus, "--unit", "line",
                   "--heldout-fraction", "0.25", env={"PATH": path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "bench.json").read_text())
    k = res["ksr"]
    assert k["status"] == "ok" and k["presage"]["status"] == "absent"
    assert "Presage is not installed" in proc.stdout
    assert "Presage is not installed" in (out / "bench.md").read_text()
    assert k["words"] == 5 and k["keys_without"] == len("hello what are you doing") + 1
    n6 = k["rows"]["ngram-kn3"]["6"]
    assert 0 <= n6["ksr"] < 1 and n6["keys_without"] == k["keys_without"]
    assert not any(name.startswith("presage") for name in k["rows"])
    mine = k["rows"]["nextword (" + Predictor.load(SEED_BUNDLE).variant.name + ")"]
    assert set(mine) == {"1", "3", "6"} and mine["6"]["keys_without"] == k["keys_without"]
    assert mine["6"]["ksr"] >= mine["1"]["ksr"] and k["latency"]["calls"] > 0
    learning = next(v for name, v in k["rows"].items() if name.endswith("learning as typed)"))
    assert learning["6"]["keys_without"] == k["keys_without"]


def test_bench_goes_on_with_a_note_when_presage_crashes(tmp_path):
    """Tools that are found but fail (here: scripts on PATH named like them, the simulator aborting
    as presage_simulator does on a failed assertion) cost a note, never the benchmark."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name, body in (("text2ngram", "exit 0"), ("presage_simulator", "echo 'Assertion failed' >&2; kill -ABRT $$")):
        script = tools / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    corpus = tmp_path / "seed.txt"
    corpus.write_text(SEED_LINES)
    out = tmp_path / "out"
    path = os.pathsep.join([os.path.dirname(sys.executable), str(tools), "/usr/bin", "/bin"])
    proc = run_cli("nextword-bench", SEED_BUNDLE, "--quick", "--repeats", "1", "--block-ms", "2", "--cold-runs", "1",
                   "--quiet", "--no-charts", "--out", out, "--corpus", corpus, "--unit", "line",
                   "--heldout-fraction", "0.25", env={"PATH": path}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    k = json.loads((out / "bench.json").read_text())["ksr"]
    assert k["presage"]["status"] == "failed" and "presage_simulator exited" in k["presage"]["note"]
    assert "ngram-kn3" in k["rows"] and not any(name.startswith("presage") for name in k["rows"])
    assert "Presage failed" in proc.stdout


def test_bench_refuses_a_negative_ksr_words(tmp_path):
    proc = run_cli("nextword-bench", SEED_BUNDLE, "--ksr-words", "-1", "--out", tmp_path / "o")
    assert proc.returncode == 2 and "--ksr-words must be at least 0" in proc.stderr
    assert "Traceback" not in proc.stderr


TOOLS = presage.find_tools()

if TOOLS is not None:
    def test_presage_trained_on_one_sentence_parses():
        docs = [["the", "cat", "sat", "on", "the", "mat"]]
        res = presage.run(docs, [["the", "cat", "sat"]], ns=(1, 6), tools=TOOLS)
        assert res["status"] == "ok" and set(res["rows"]) == set(presage.SETUPS)
        for by_n in res["rows"].values():
            for r in by_n.values():
                assert r["kn"] == res["keys_without"] == 12 and r["keys_match"]
                assert r["ksr"] == pytest.approx(1 - (r["ki"] + r["ks"] - 1) / r["kn"])
                assert r["presage_ksr"] == pytest.approx(1 - (r["ki"] + r["ks"]) / r["kn"], abs=1e-5)
        # every word follows its context in training: found before a letter -> 1 key each
        assert res["rows"]["presage-ngram"][6]["ksr"] == pytest.approx(1 - 3 / 12)

    @pytest.mark.parametrize("n", [1, 2, 6])
    def test_presage_counts_equal_our_accounting_on_its_own_suggestions(n):
        """presage_simulator's verbose trace (every prediction and what it showed) replayed through
        ksr.simulate: the same keys, except Presage's ks that starts at 1."""
        train = [["the", "cat", "sat", "on", "the", "mat"], ["a", "dog", "sat", "on", "a", "log"],
                 ["the", "dog", "ate", "the", "cat's", "food"]]
        test = [["the", "dog", "sat", "on", "the", "zebra", "mat", "cat's", "log"]]
        enc = presage.Encoder(train + test)
        with tempfile.TemporaryDirectory() as tmp:
            db = presage.build_database(TOOLS, train, enc, tmp)
            path = os.path.join(tmp, "test.txt")
            presage.write_test(test, enc, path)
            out = presage.simulate(TOOLS, "presage-ngram", db, path, n, tmp, verbose=True)
        events = presage.parse_trace(out["stdout"])
        decoded = [([enc.word(w).decode("latin-1") for w in d]) for d in test]
        replay = presage.Replay(events)
        rec = ksr.simulate(decoded, replay, n)
        assert replay.next == len(events)   # one call per Presage prediction, in the same order
        assert rec.keys_without == out["kn"] == sum(len(w) + 1 for w in test[0])
        assert rec.keys_typed + rec.keys_selected == out["ki"] + out["ks"] - 1
        assert rec.ksr == pytest.approx(out["ksr"])
        assert rec.words_suggested_before_first_letter == out["words_suggested_before_first_letter"]
        # "zebra" was never seen in training: shown at no prefix, typed in full
        zebra = [shown for target, _, shown in events if target == "zebra"]
        assert len(zebra) == len("zebra") + 1 and not any("zebra" in shown for shown in zebra)


def test_nextword_completer_equals_fresh_sessions():
    """The adapter feeds one word per step and resets at each document: the same suggestions as
    a fresh session fed the whole context, at every keystroke."""
    predictor = Predictor.load(SEED_BUNDLE)
    docs = [line.split() for line in SEED_LINES.splitlines()]

    def fresh(context, prefix, n):
        s = predictor.session()
        if context:
            s.feed(" ".join(context))
        return [x.word for x in s.complete(prefix, n)]
    for n in (1, 3):
        comp = ksr.NextwordCompleter(predictor)
        assert ksr.simulate(docs, comp, n) == ksr.simulate(docs, fresh, n)
        assert comp.complete_seconds and len(comp.feed_seconds) == sum(len(d) - 1 for d in docs)
