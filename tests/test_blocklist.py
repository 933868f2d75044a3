"""The blocklist (issue 14 item 4): a blocked word is never returned by complete, top_k, predict_next,
top_k_batch, generate or a session's methods, whatever was typed (fuzzed with hypothesis,
derandomized); the file format and its bounds; nextword-predict --blocklist. TF-free, real
interpreters, rehashed seed copies with lexicon-only words (tests/lexicon_bundles.py)."""

import os
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from nextword.runtime import ArgumentTypeError, InputError, Predictor
from nextword.runtime.limits import MAX_BLOCKLIST_BYTES, MAX_BLOCKLIST_WORDS, MAX_COMPLETE_K, MAX_WORD_CHARS
from lexicon_bundles import EXTRA, OOV, extended_bundle
from support import SEED_BUNDLE, run_cli

PROG = "nextword-predict"


@pytest.fixture(scope="module")
def predictors(tmp_path_factory):
    root = tmp_path_factory.mktemp("blocklist")
    return {"seed": Predictor.load(SEED_BUNDLE),
            "plain": Predictor.load(extended_bundle(root / "plain")),
            "oov": Predictor.load(extended_bundle(root / "oov", oov=True))}


def _all_words(p):
    return [w for w in p.tokenizer.word_counts if w != p.tokenizer.oov_token]


def _everything(p, text, prefix):
    """Every word any suggesting method returns for this text (and a session fed with it)."""
    out = [s.word for s in p.complete(text + prefix, MAX_COMPLETE_K)]
    out += [s.word for s in p.complete(text, MAX_COMPLETE_K)]
    out += [w for w, _ in p.top_k(text, 20)]
    out += [w for row in p.top_k_batch([text, text + prefix, ""], k=20) for w, _ in row]
    out += p.generate(text, 3)
    out += p.generate(text, 3, strategy="sample", seed=7)
    out += p.generate(text, 2, strategy="sample", top_k=2, seed=1, temperature=0.5)
    try:
        out.append(p.predict_next(text))
    except InputError:   # every in-model word blocked
        pass
    for mode in ("stream", "exact"):
        session = p.session(mode=mode)
        session.feed(text)
        out += [w for w, _ in session.top_k(20)]
        out += [s.word for s in session.complete(prefix, MAX_COMPLETE_K)]
        out += [s.word for s in session.complete("", MAX_COMPLETE_K)]
        try:
            out.append(session.predict_next())
        except InputError:
            pass
    return out


WORDS = sorted({w for line in ["hello how are you is your day friends what doing"] for w in line.split()} | set(EXTRA))


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["seed", "plain", "oov"]),
       blocked=st.lists(st.sampled_from(WORDS), max_size=12),
       context=st.lists(st.sampled_from(WORDS + ["Mr.", ".", "?", "zzz", "HELLO"]), max_size=6),
       prefix=st.text(alphabet="adefhilmorstuwyADEHIY", max_size=4))
def test_blocked_words_are_never_returned_by_any_method(predictors, kind, blocked, context, prefix):
    p = predictors[kind]
    p.unblock(list(p.blocklist.words))
    p.block([w.upper() if i % 2 else w for i, w in enumerate(blocked)])   # the case does not matter
    try:
        returned = _everything(p, " ".join(context) + (" " if context else ""), prefix)
        assert not set(returned) & set(blocked)
        assert "" not in returned and OOV not in returned
    finally:
        p.unblock(blocked)


def test_control_without_a_blocklist_the_methods_do_return_those_words(predictors):
    """The fuzz test above could pass by returning nothing: unblocked, the same calls return every word."""
    for kind in ("plain", "oov"):
        p = predictors[kind]
        assert len(p.blocklist) == 0
        returned = set()
        for text in ("", "hello how ", "what are you "):
            for prefix in ("", "a", "d", "e", "h", "i", "m", "w", "y"):
                returned |= set(_everything(p, text, prefix))
        assert returned == set(WORDS), set(WORDS) - returned


def test_blocking_everything_leaves_nothing_to_suggest(predictors):
    p = predictors["oov"]
    p.block(_all_words(p))
    try:
        assert p.top_k("hello how", 5) == [] and p.complete("hello how ", 5) == [] and p.complete("e") == []
        assert p.top_k_batch(["hello", ""], 3) == [[], []]
        for call in (lambda: p.predict_next("hello"), lambda: p.generate("hello", 2),
                     lambda: p.generate("hello", 2, strategy="sample", seed=0)):
            with pytest.raises(InputError, match="blocked"):
                call()
        session = p.session()
        assert session.top_k(3) == [] and session.complete("") == []
        with pytest.raises(InputError, match="blocked"):
            session.predict_next()
    finally:
        p.unblock(_all_words(p))
    assert len(p.top_k("hello how", 5)) == 5


def test_block_and_unblock_at_run_time(predictors):
    p = predictors["plain"]
    before = [w for w, _ in p.top_k("hello how", 3)]
    assert p.block(before[0].upper()) == 1 and p.block([before[0]]) == 0   # normalised like the tokenizer
    assert [w for w, _ in p.top_k("hello how", 2)] == before[1:3]
    assert p.unblock([before[0], "never-blocked"]) == 1
    assert [w for w, _ in p.top_k("hello how", 3)] == before
    # a lexicon-only word; the others keep their probabilities (the OOV mass is not re-shared)
    q = predictors["oov"]
    eliza = {s.word: s.probability for s in q.complete("hello eliz")}
    q.block(["  Elizabeth  ", ""])
    try:
        assert {s.word: s.probability for s in q.complete("hello eliz")} == {"eliza": eliza["eliza"]}
    finally:
        q.unblock("elizabeth")
    assert q.block(OOV) == 1 and OOV not in [w for w, _ in q.top_k("hello", 20)]   # blocking it changes nothing
    q.unblock(OOV)


def test_blocklist_at_load_time_file_path_or_words(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("# my list\n\n  ARE \nis\n# you\n", encoding="utf-8")
    for given_as in (str(path), path, ["Are", "is"], iter(["are", "IS"]), ("are", "is")):
        p = Predictor.load(SEED_BUNDLE, blocklist=given_as)
        assert p.blocklist.words == {"are", "is"}
        assert [w for w, _ in p.top_k("hello how", 2)] == ["you", "how"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing yet\n\n", encoding="utf-8")
    assert len(Predictor.load(SEED_BUNDLE, blocklist=str(empty)).blocklist) == 0   # an empty list blocks nothing
    assert len(Predictor.load(SEED_BUNDLE, blocklist=[]).blocklist) == 0


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def test_bad_blocklists_are_input_errors(tmp_path):
    cases = {
        "missing": (str(tmp_path / "nope.txt"), "cannot read"),
        "folder": (str(tmp_path), "cannot read"),
        "not-utf8": (_write(tmp_path, "latin1.txt", "caf\xe9\n".encode("latin-1")), "not UTF-8"),
        "too-big": (_write(tmp_path, "big.txt", b"a\n" * (MAX_BLOCKLIST_BYTES // 2 + 1)), "more than"),
        "long-word": (_write(tmp_path, "long.txt", b"x" * (MAX_WORD_CHARS + 1) + b"\n"), "longer than any word"),
        "many-words": (_write(tmp_path, "many.txt", b"w\n" * (MAX_BLOCKLIST_WORDS + 1)), "more than"),
    }
    for name, (path, message) in cases.items():
        with pytest.raises(InputError, match=message):
            Predictor.load(SEED_BUNDLE, blocklist=path)
    p = Predictor.load(SEED_BUNDLE)
    for bad in (3, None, b"are", [b"are"], ["are", 1], [["are"]]):
        with pytest.raises(ArgumentTypeError):
            p.block(bad)
    with pytest.raises(ArgumentTypeError):
        Predictor.load(SEED_BUNDLE, blocklist=3)
    with pytest.raises(InputError):
        p.block(["x" * (MAX_WORD_CHARS + 1)])
    with pytest.raises(InputError, match="at most"):
        p.block([f"w{i}" for i in range(MAX_BLOCKLIST_WORDS + 1)])
    assert len(p.blocklist) == 0   # a refused call blocks nothing


def test_cli_blocklist(tmp_path):
    path = tmp_path / "block.txt"
    path.write_text("are\nhow\n", encoding="utf-8")
    r = run_cli(PROG, SEED_BUNDLE, "hello how", "--blocklist", path, "--top-k", "3")
    assert r.returncode == 0 and [x for x in r.stdout.split()[::2]] == ["is", "you", "what"], r
    r = run_cli(PROG, SEED_BUNDLE, "--complete", "hello how a", "--blocklist", path)
    assert r.returncode == 0 and r.stdout == "\n"
    r = run_cli(PROG, SEED_BUNDLE, "--stream", "--blocklist", path, "--top-k", "10", stdin="hello\nhow\n")
    assert r.returncode == 0 and not {"are", "how"} & set(r.stdout.split()[::2]), r.stdout
    r = run_cli(PROG, SEED_BUNDLE, "hello", "--blocklist", path, "--generate", "5")
    assert r.returncode == 0 and not {"are", "how"} & set(r.stdout.split()[1:])
    r = run_cli(PROG, SEED_BUNDLE, "hello", "--blocklist", _write(tmp_path, "bad.txt", b"\xff\n"))
    assert r.returncode == 2 and "not UTF-8" in r.stderr and len(r.stderr.splitlines()) == 1
    r = run_cli(PROG, SEED_BUNDLE, "hello", "--blocklist", tmp_path / "missing.txt")
    assert r.returncode == 2 and "cannot read" in r.stderr and "Traceback" not in r.stderr


def test_pathlike_is_read_as_a_file(tmp_path):
    path = pathlib.Path(tmp_path) / "b.txt"
    path.write_text("hello\n", encoding="utf-8")
    assert Predictor.load(SEED_BUNDLE, blocklist=os.fspath(path)).blocklist.words == {"hello"}
