"""Word completion (issue 14 items 1-3, 5): Predictor.complete and Session.complete against a
brute-force reference computed from the full distribution over every word of the tokenizer,
lexicon-only words within the OOV mass, display forms and sentence starts, lexicon.json as an
untrusted bundle file, bad input, and nextword-predict --complete. TF-free: real interpreters,
artifacts/seed and rehashed copies of it (tests/lexicon_bundles.py)."""

import json
import os
import random
import subprocess

import numpy as np
import pytest

from nextword.runtime import ArgumentTypeError, BundleError, BundleInvalid, InputError, Predictor
from nextword.runtime.bundle import Bundle
from nextword.runtime.complete import SMALL_RANGE, Suggestion
from nextword.runtime.errors import HashMismatch, UnsupportedVersion
from nextword.runtime.lexicon import Lexicon
from nextword.runtime.limits import MAX_COMPLETE_K, MAX_LEXICON_BYTES, MAX_WORD_CHARS
from lexicon_bundles import EXTRA, LEXICON, OOV, add_file, extended_bundle, seed_vocab
from support import SEED_BUNDLE, SEED_TEXTS, command_path, installed_packages, rehashed_copy, run_cli

PROG = "nextword-predict"
WINDOW_BACKENDS = installed_packages()


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("complete")
    return {"plain": extended_bundle(root / "plain"), "oov": extended_bundle(root / "oov", oov=True),
            "nolex": extended_bundle(root / "nolex", lexicon=None)}


def reference(p, text, k, blocked=()):
    """Every word of the tokenizer scored from Predictor.probabilities, filtered by prefix, sorted."""
    tok = p.tokenizer
    cut = len(text)
    while cut and not (text[cut - 1].isspace() or text[cut - 1] in tok.filters or text[cut - 1] in tok.split):
        cut -= 1
    context, prefix = text[:cut], text[cut:].lower()
    probs = p.probabilities(p.window_for(context)[None])[0]
    oov = tok.oov_id
    lexicon_only = {w: c for w, c in tok.word_counts.items() if tok.word_index[w] >= p.vocab_size and w != tok.oov_token}
    total = sum(lexicon_only.values())
    rows = []
    for w, c in tok.word_counts.items():
        i = tok.word_index[w]
        if w == tok.oov_token or w in blocked or not w.lower().startswith(prefix):
            continue
        if i < p.vocab_size:
            rows.append((float(probs[i]), i, w, "model"))
        else:
            rows.append((float(probs[oov]) * (c / total) if oov is not None else 0.0, i, w, "lexicon"))
    rows.sort(key=lambda r: (-r[0], r[1]))
    return [(w, prob, source) for prob, _, w, source in rows[:k]]


def cuts(texts):
    """Every prefix of every text (the text before the cursor after each keystroke)."""
    return sorted({t[:n] for t in texts for n in range(len(t) + 1)})


TEXTS = SEED_TEXTS + ["hello how are yourself", "Hello. Elizabeth and Mr. Darcy", "what ever whatever holiday",
                      "are arena area", "HELLO HOW ARE YOU", "you, yo... Yourself!"]


@pytest.mark.parametrize("backend", WINDOW_BACKENDS)
@pytest.mark.parametrize("kind", ["plain", "oov"])
def test_prefix_ranking_equals_brute_force_over_the_full_distribution(bundles, kind, backend):
    p = Predictor.load(bundles[kind], backend=backend)
    checked = 0
    for text in cuts(TEXTS):
        for k in (1, 3, 6, MAX_COMPLETE_K):
            got = p.complete(text, k)
            want = reference(p, text, k)
            assert [(s.word, s.source) for s in got] == [(w, src) for w, _, src in want], text
            assert [s.probability for s in got] == pytest.approx([prob for _, prob, _ in want], rel=1e-6, abs=1e-12)
            checked += 1
    assert checked > 500


def synthetic_words(n, seed=3):
    """n distinct lower-case words with Zipf-like counts below the seed's (many ties among the rare ones)."""
    rng = random.Random(seed)
    seed_words = {w for w, _ in seed_vocab()["word_counts"]}
    words = {}
    while len(words) < n:
        w = "".join(rng.choice("abcdehilmorsuwy") for _ in range(rng.randint(2, 8)))
        if w not in seed_words:
            words.setdefault(w, max(1, min(9, 2000 // (len(words) + 1))))
    return words


@pytest.mark.parametrize("oov", [False, True])
def test_large_ranges_equal_brute_force_with_blocked_words(tmp_path, oov):
    """Ranges above SMALL_RANGE words (the empty prefix, one letter) take the two-part path: in-model
    words plus lexicon-only words in count order; it must rank exactly as the brute force does."""
    extra = synthetic_words(3 * SMALL_RANGE)
    p = Predictor.load(extended_bundle(tmp_path / "big", oov=oov, lexicon=None, extra=extra))
    rng = random.Random(5)
    lexical = list(extra)
    assert min(p.tokenizer.word_index[w] for w in lexical) >= 11   # all beyond the model
    for round_ in range(4):
        blocked = set(rng.sample(lexical[:40], 6)) | ({"how", "are"} if round_ % 2 else set())
        p.unblock(list(p.blocklist.words))
        p.block(blocked)
        for text in ("", "hello how ", "hello h", "hello how a", "what are you d", "hello mo", "e"):
            lo, hi = p.completer.index().range(text.split(" ")[-1])
            for k in (1, 6, 50):
                got = p.complete(text, k)
                want = reference(p, text, k, blocked)
                assert [s.word for s in got] == [w for w, _, _ in want], (text, k)
                assert [s.probability for s in got] == pytest.approx([pr for _, pr, _ in want], rel=1e-9, abs=1e-15)
            if text in ("", "hello how "):
                assert hi - lo > SMALL_RANGE   # the two-part path really ran


def test_lexicon_only_words_share_the_oov_mass_by_count(bundles):
    p = Predictor.load(bundles["oov"])
    tok = p.tokenizer
    assert tok.oov_id == 1 and tok.word_index["doing"] == 11   # pushed out of the model by the OOV token
    for text in ("hello how ", "", "what are you "):
        probs = p.probabilities(p.window_for(text)[None])[0]
        got = p.complete(text, MAX_COMPLETE_K)
        lexical = {s.word: s.probability for s in got if s.source == "lexicon"}
        assert set(lexical) == set(EXTRA) | {"doing"}
        assert sum(lexical.values()) == pytest.approx(float(probs[tok.oov_id]), rel=1e-9)
        total = sum(EXTRA.values()) + 10   # "doing" counts 1 x 10
        assert lexical["elizabeth"] == pytest.approx(float(probs[1]) * 8 / total, rel=1e-12)
        assert lexical["i"] / lexical["yo"] == pytest.approx(9 / 2)
        model = {s.word: s.probability for s in got if s.source == "model"}
        assert OOV not in model and OOV not in lexical and "" not in model
        assert sum(model.values()) + sum(lexical.values()) == pytest.approx(1 - float(probs[0]), rel=1e-5)
    # a completion only the lexicon knows
    assert [s.word for s in p.complete("hello eliz")] == ["elizabeth", "eliza"]
    assert {s.source for s in p.complete("hello eliz")} == {"lexicon"}


def test_without_an_oov_token_lexicon_words_come_after_model_words_by_count(bundles):
    p = Predictor.load(bundles["plain"])
    got = p.complete("hello how ", MAX_COMPLETE_K)
    sources = [s.source for s in got]
    assert sources == sorted(sources, key=lambda s: s != "model")   # every model word first
    lexical = [s for s in got if s.source == "lexicon"]
    assert [s.probability for s in lexical] == [0.0] * len(EXTRA)
    counts = [EXTRA[s.word] for s in lexical]
    assert counts == sorted(counts, reverse=True)
    assert [s.word for s in p.complete("hello how ar")] == ["are", "area", "arena"]


def test_display_forms_and_sentence_starts(bundles):
    p = Predictor.load(bundles["plain"])

    def shown(text, k=MAX_COMPLETE_K):
        return {s.word: s.display for s in p.complete(text, k)}
    assert shown("hello eliz")["elizabeth"] == "Elizabeth"
    assert p.info()["lexicon"]["file"] == "lexicon.json" and p.info()["tokenizer_words"] == 10 + len(EXTRA)
    assert shown("hello how i") == {"i": "I", "is": "is"}
    assert shown("hello m") == {"mr": "Mr."}
    assert shown("i") == {"i": "I", "is": "Is"}                       # text start
    assert shown("hello. i") == {"i": "I", "is": "Is"}                # after a period
    assert shown("hello?  y")["you"] == "You" and shown("hello! y")["your"] == "Your"
    assert shown('He said "hello." y')["you"] == "You"                # a closing quote after the period
    assert shown("hello, y")["you"] == "you" and shown("hello y")["you"] == "you"
    assert shown("hello mr. d") == {"darcy": "Darcy", "day": "day", "doing": "doing", "dayton": "dayton", "dr": "Dr."}
    assert shown("hello MR. d")["day"] == "day"                        # abbreviations are matched as the tokenizer writes them
    assert shown("hello dr. y")["you"] == "you"
    assert shown("hello day. d")["day"] == "Day"                       # "day" is no abbreviation
    assert shown("hello how ")["are"] == "are"
    assert all(d[0].isupper() for d in shown("").values())            # the next word at the text start
    assert shown("Hello. ")["how"] == "How"
    # no lexicon.json: words as the tokenizer writes them, capitalised only at sentence starts
    q = Predictor.load(bundles["nolex"])
    assert {s.word: s.display for s in q.complete("hello eli", 9)} == {"elizabeth": "elizabeth", "eliza": "eliza"}
    assert {s.word: s.display for s in q.complete("hello. eli", 9)} == {"elizabeth": "Elizabeth", "eliza": "Eliza"}
    assert {s.word: s.display for s in q.complete("hello mr. y", 9)}["you"] == "You"   # no abbreviations known
    assert len(q.bundle.lexicon()) == 0 and not q.bundle.lexicon().is_abbreviation("mr")


def test_suggestions_are_records_and_prefixes_with_no_match_give_nothing(bundles):
    p = Predictor.load(bundles["plain"])
    s = p.complete("hello ho")[0]
    assert isinstance(s, Suggestion) and s == ("how", "how", s.probability, "model")
    assert s.to_dict() == {"word": "how", "display": "how", "probability": s.probability, "source": "model"}
    with pytest.raises(AttributeError):
        s.word = "x"
    assert p.complete("hello zq") == [] and p.complete("hello ho", 1) == [s]
    assert p.complete("hello howl") == []


def test_case_insensitive_prefix_on_a_tokenizer_that_keeps_case(tmp_path):
    """lower=False: words keep their case and the typed prefix matches them whatever its case."""
    with open(os.path.join(SEED_BUNDLE, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    vocab["config"]["lower"] = False
    vocab["word_counts"][0][0] = "Hello"

    def edit(m):
        m["tokenizer"]["lower"] = False
    p = Predictor.load(rehashed_copy(tmp_path / "cased", vocab=vocab, edit=edit))
    for typed in ("hel", "HEL", "Hel"):
        assert [s.word for s in p.complete("how " + typed)] == ["Hello"]
    assert p.complete("how hello")[0].display == "Hello"


def test_session_complete_equals_predictor_complete_on_the_same_context(bundles):
    fmt = "tflite" if {"ai-edge-litert", "tflite-runtime"} & set(WINDOW_BACKENDS) else "onnx"
    for kind in ("plain", "oov"):   # float32 window and step variants: the default window variant is int8
        p = Predictor.load(bundles[kind], variant=f"{fmt}-float32", step_variant=f"{fmt}-step-float32")
        session = p.session(mode="exact")
        rng = random.Random(14)
        for context in ["", "hello", "hello how", "hello how are", "what are you", "hello. how", "hello mr."]:
            session.reset()
            session.feed(context)
            for prefix in ["", "h", "ho", "a", "ar", "are", "i", "d", "ELI", "yo", "zz"] + \
                    ["".join(rng.choice("adehiloruwy") for _ in range(rng.randint(1, 3))) for _ in range(5)]:
                text = (context + " " + prefix) if context else prefix
                got = session.complete(prefix, MAX_COMPLETE_K)
                want = p.complete(text, MAX_COMPLETE_K)
                # the step model equals the window model up to float rounding: the same words, displays and
                # sources, and the same probabilities position by position (near-ties may swap)
                assert sorted((s.word, s.display, s.source) for s in got) == \
                    sorted((s.word, s.display, s.source) for s in want), (kind, text)
                assert [s.probability for s in got] == pytest.approx([s.probability for s in want], abs=1e-5)
        # the session's distribution is the one it steps to: complete("") ranks its top_k first
        session.reset()
        session.feed("hello how")
        assert [(s.word, s.probability) for s in session.complete("", 3) if s.source == "model"][:1] == \
            [(w, pytest.approx(prob)) for w, prob in session.top_k(1)]


def test_a_keystroke_with_the_same_context_costs_no_model_call(bundles):
    p = Predictor.load(bundles["plain"])
    calls = []
    real = p._logits_ids

    def counting(ids):
        calls.append(tuple(ids))
        return real(ids)
    p._logits_ids = counting   # count, not replace: the real interpreter still answers
    for text in ("hello how", "hello how a", "hello how ar", "hello how are", "hello how are y", "hello how are yo"):
        p.complete(text)
    assert calls == [(1,), (1, 2), (1, 2, 3)]   # one call per context: "hello", "hello how", "hello how are"
    session = p.session()
    session.feed("hello how")
    steps = session.step_model.calls
    for prefix in ("", "a", "ar", "are"):
        session.complete(prefix)
    assert session.step_model.calls == steps


def test_bad_input_gets_a_typed_error_or_a_sane_answer(bundles):
    p = Predictor.load(bundles["plain"])
    for bad in (None, 3, b"hello", ["hello"]):
        with pytest.raises(ArgumentTypeError):
            p.complete(bad)
    for k, error in ((0, InputError), (-1, InputError), (MAX_COMPLETE_K + 1, InputError), (1.5, ArgumentTypeError),
                     (True, ArgumentTypeError), ("6", ArgumentTypeError)):
        with pytest.raises(error):
            p.complete("hello h", k)
    assert p.complete("h" * 10_000_000) == []                          # one word longer than any word
    assert p.complete("x" * (MAX_WORD_CHARS + 1)) == [] and p.complete("hello " + "y" * MAX_WORD_CHARS) == []
    long = "hello how " * 1_000_000 + "a"                               # 10 MB of context
    assert [s.word for s in p.complete(long)] == [s.word for s in p.complete("hello how a")]
    assert p.complete(" " * 5_000_000 + "y")[0].display[0].isupper()   # still the text start
    for text in ("\x00\x1b[2J hel", "hello \u202e ho", "hello\ud800 ho", "東京 ho", "\n\t\r", "hello \x00"):
        got = p.complete(text)
        assert all(isinstance(s, Suggestion) for s in got)
    assert [s.word for s in p.complete("hello \x00ho")] == []          # NUL is part of the word, so nothing matches
    session = p.session()
    for bad in (None, 1, [""]):
        with pytest.raises(ArgumentTypeError):
            session.complete(bad)
    with pytest.raises(InputError):
        session.complete("a", 0)
    assert session.complete("q" * 5_000_000) == [] and session.complete("hello how") == []


def _crafted(tmp_path, name, lexicon):
    return Predictor.load(extended_bundle(tmp_path / name, lexicon=lexicon))


CRAFTED = {
    "not-json": (b"{nope", "not valid JSON"),
    "not-utf8": (b'{"format": "\xff"}', "not valid JSON"),
    "a-list": ([], "the file must be a JSON object"),
    "format": (dict(LEXICON, format="nextword-tokenizer"), "format must be"),
    "version-type": (dict(LEXICON, format_version="1"), "format_version must be an integer"),
    "forms-type": (dict(LEXICON, forms={"i": "I"}), "forms must be a list"),
    "pair": (dict(LEXICON, forms=[["i"]]), "forms[0] must be a [word, display] pair"),
    "pair-type": (dict(LEXICON, forms=[["i", 1]]), "forms[0] must be a [word, display] pair"),
    "unknown-word": (dict(LEXICON, forms=[["wickham", "Wickham"]]), "forms[0][0] must be a word of the vocabulary"),
    "other-word": (dict(LEXICON, forms=[["elizabeth", "Wickham!!!"]]), "forms[0][1] must be the word"),
    "escape": (dict(LEXICON, forms=[["i", "\x1b[2J"]]), "forms[0][1] must be the word"),
    "longer": (dict(LEXICON, forms=[["i", "I" * 5000]]), "forms[0][1] must be the word"),
    "period-not-abbreviation": (dict(LEXICON, forms=[["i", "I."]]), "forms[0][1] must be the word"),
    "duplicate": (dict(LEXICON, forms=[["i", "I"], ["i", "I"]]), "forms[1][0] must be a word not listed before"),
    "abbreviations-type": (dict(LEXICON, abbreviations="mr"), "abbreviations must be a list"),
    "abbreviation-unknown": (dict(LEXICON, abbreviations=["zz"]), "abbreviations[0] must be a word of the vocabulary"),
    "abbreviation-int": (dict(LEXICON, abbreviations=[1]), "abbreviations[0] must be a word of the vocabulary"),
    "many-values": (b"[" + b"[]," * 3_000_000 + b"[]]", "more than"),
    "deep": (b"[" * 200_000 + b"]" * 200_000, "not valid JSON"),
}


def test_control_deep_json_raises_in_the_parser_the_loader_catches():
    with pytest.raises(RecursionError):
        json.loads(CRAFTED["deep"][0])


@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_a_crafted_lexicon_is_a_bundle_error_naming_the_field(tmp_path, case):
    lexicon, message = CRAFTED[case]
    p = _crafted(tmp_path, case, lexicon)          # the lexicon is read on first use, not at load
    assert p.top_k("hello how", 2)                 # next-word suggestions do not need it
    with pytest.raises(BundleInvalid) as e:
        p.complete("hello how a")
    assert "lexicon.json" in str(e.value) and message in str(e.value), str(e.value)
    with pytest.raises(BundleInvalid):             # read again, refused again
        p.session().complete("a")


def test_lexicon_version_damage_and_manifest_entry(tmp_path):
    with pytest.raises(UnsupportedVersion, match="format_version 2"):
        _crafted(tmp_path, "v2", dict(LEXICON, format_version=2)).complete("i")
    folder = extended_bundle(tmp_path / "damaged")
    with open(os.path.join(folder, "lexicon.json"), "ab") as f:
        f.write(b" ")
    with pytest.raises(HashMismatch):
        Predictor.load(folder).complete("i")
    os.remove(os.path.join(folder, "lexicon.json"))
    with pytest.raises(BundleInvalid, match="missing"):
        Predictor.load(folder).complete("i")
    for name, entry, message in (
            ("outside", {"file": "../vocab.json", "sha256": "0" * 64, "size": 10}, "not a plain file name"),
            ("hidden", {"file": ".lexicon.json", "sha256": "0" * 64, "size": 10}, "not a plain file name"),
            ("big", {"file": "lexicon.json", "sha256": "0" * 64, "size": MAX_LEXICON_BYTES + 1}, "lexicon.size"),
            ("sha", {"file": "lexicon.json", "sha256": "xyz", "size": 10}, "lexicon.sha256"),
            ("type", [1], "lexicon must be an object")):
        def edit(m, entry=entry):
            m["lexicon"] = entry
        with pytest.raises(BundleInvalid, match=message):
            Bundle.open(rehashed_copy(tmp_path / name, edit=edit))
    link = extended_bundle(tmp_path / "link", lexicon=None)
    add_file(link, "lexicon.json", LEXICON)
    os.rename(os.path.join(link, "lexicon.json"), os.path.join(tmp_path, "elsewhere.json"))
    os.symlink(os.path.join(tmp_path, "elsewhere.json"), os.path.join(link, "lexicon.json"))
    with pytest.raises(BundleInvalid, match="link"):
        Predictor.load(link).complete("i")


def test_lexicon_from_json_validates_against_the_tokenizer(bundles):
    tok = Bundle.open(bundles["plain"]).tokenizer
    lex = Lexicon.from_json(json.dumps(LEXICON).encode(), tok)
    assert lex.display("mr") == "Mr." and lex.display("hello") == "hello" and lex.is_abbreviation("dr")
    assert not lex.is_abbreviation("i") and len(lex) == 5
    with pytest.raises(BundleInvalid):
        Lexicon.from_json(12, tok)
    assert Lexicon.empty().display("i") == "i"


def test_every_bundle_error_is_a_bundle_error():
    assert issubclass(BundleInvalid, BundleError) and issubclass(HashMismatch, BundleError)


# -- the command line --------------------------------------------------------------------------------
def test_cli_complete_text_plain_and_json(bundles):
    r = run_cli(PROG, bundles["plain"], "--complete", "Hello. eliz")
    assert r.returncode == 0 and r.stdout.startswith("Elizabeth 0.000  Eliza 0.000"), r
    r = run_cli(PROG, bundles["oov"], "--complete", "hello how ar", "--json", "--top-k", "2")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["text"] == "hello how ar" and [c["word"] for c in out["complete"]] == ["are", "area"]
    assert set(out["complete"][1]) == {"word", "display", "probability", "source"} and out["complete"][1]["source"] == "lexicon"
    r = run_cli(PROG, bundles["plain"], "hello how a", "--complete")   # TEXT, then --complete without a value
    assert r.returncode == 0 and r.stdout.split()[0] == "are"


def test_cli_complete_stdin_lines(bundles):
    r = run_cli(PROG, bundles["plain"], "--complete", "--json", stdin="hello how a\nzzz\n\nHello. i\n")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [len(x["complete"]) for x in lines[:2]] == [3, 0]
    assert lines[2]["complete"][0]["display"][0].isupper() and lines[3]["complete"][0]["display"] in ("I", "Is")
    r = subprocess.run([command_path(PROG), bundles["plain"], "--complete"], input=b"hello h\n\xff\nhello how a\n",
                       capture_output=True, timeout=120)
    assert r.returncode == 2 and len(r.stdout.splitlines()) == 2 and b"line 2: not UTF-8" in r.stderr


def test_cli_complete_errors_are_one_line(tmp_path, bundles):
    r = run_cli(PROG, bundles["plain"], "--complete", "x", "--stream")
    assert r.returncode == 2 and "does not combine" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli(PROG, bundles["plain"], "--complete", "x", "--top-k", str(MAX_COMPLETE_K + 1))
    assert r.returncode == 2 and "at most" in r.stderr and "Traceback" not in r.stderr
    folder = _crafted(tmp_path, "cli", dict(LEXICON, forms=[["i", "\x1b[2J"]])).bundle.path
    r = run_cli(PROG, folder, "--complete", "hello i")
    assert r.returncode == 3 and "forms[0][1]" in r.stderr and "\x1b" not in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli(PROG, bundles["plain"], "--help")
    assert "--complete" in r.stdout and "--blocklist" in r.stdout


def test_seed_bundle_completes_with_its_empty_lexicon_and_without_one(tmp_path):
    """The demo bundle's lexicon.json has no forms (the seed lines are lower-case); a bundle exported
    before lexicon.json existed (no manifest entry) completes the same way."""
    p = Predictor.load(SEED_BUNDLE)
    assert p.bundle.manifest.lexicon["file"] == "lexicon.json" and p.info()["tokenizer_words"] == 10
    assert [s.display for s in p.complete("hello how a")] == ["are"]
    older = rehashed_copy(tmp_path / "older", edit=lambda m: m.pop("lexicon"))
    os.unlink(os.path.join(older, "lexicon.json"))
    q = Predictor.load(older)
    assert q.bundle.manifest.lexicon is None and q.info()["lexicon"] is None
    assert q.complete("hello how a") == p.complete("hello how a")
    assert [s.word for s in p.complete("hello how a")] == ["are"]
    assert np.isclose(p.complete("hello how a")[0].probability, p.top_k("hello how", 1)[0][1], rtol=1e-6)
