"""The benchmark's learning section (bench/learning_bench.py, issue 15 item 4): a second text read
twice, the first half learnt, the second typed. TF-free: artifacts/seed and a rehashed copy of it
with an n-gram (tests/test_mix.py's builder); Presage only where it is installed."""

import json
import math

import pytest

from nextword.bench import learning_bench, presage
from nextword.runtime import InputError, Predictor
from support import SEED_BUNDLE, run_cli
from test_mix import ngram_bundle

# a user who writes about people the model never saw: the second half reuses the first half's words
USER_TEXT = "\n".join([
    "wickham met darcy at netherfield",
    "darcy danced with elizabeth at netherfield",
    "hello how are you wickham",
    "wickham is at longbourn today",
    "darcy met wickham at longbourn",
    "hello how is darcy at netherfield",
    "elizabeth met wickham at netherfield",
    "wickham danced with elizabeth at longbourn",
]) + "\n"


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("learn") / "user.txt"
    path.write_text(USER_TEXT, encoding="utf-8")
    return str(path)


def test_learning_the_first_half_pays_on_the_second(text):
    res = learning_bench.measure(SEED_BUNDLE, text, "line", use_presage=False)
    assert res["status"] == "ok" and res["text"]["documents"] == {"learnt": 4, "typed": 4}
    rows = res["rows"]
    assert set(rows) == {"LSTM alone", "LSTM alone, learning as typed", "LSTM alone + learning"}
    typed = sum(len(line.split()) for line in USER_TEXT.splitlines()[4:])
    assert all(r["words"] == typed for r in rows.values())
    plain, learnt = rows["LSTM alone"], rows["LSTM alone + learning"]
    # the model knows none of the names: only what was learnt can suggest them
    assert learnt["ksr"] > rows["LSTM alone, learning as typed"]["ksr"] > plain["ksr"]
    assert learnt["top3"] > plain["top3"]
    assert all(math.isfinite(r["ppl"]) and r["ppl"] >= 1 for r in rows.values())


def test_a_bundle_with_an_ngram_gets_the_parts_and_the_mixture(text, tmp_path):
    bundle = ngram_bundle(tmp_path / "b")
    rows = learning_bench.measure(bundle, text, "line", use_presage=False)["rows"]
    assert list(rows) == ["LSTM alone", "n-gram alone", "mixture", "mixture, learning as typed", "mixture + learning"]
    assert rows["mixture"]["ksr"] != rows["LSTM alone"]["ksr"] or rows["mixture"]["ppl"] != rows["LSTM alone"]["ppl"]


def test_ppl_uses_the_probabilities_the_session_ranks(text):
    """The row's perplexity, recomputed by hand from Session.probability of the plain predictor."""
    p = Predictor.load(SEED_BUNDLE)
    _, second = learning_bench.halves(USER_TEXT.splitlines(), p.tokenizer)
    s, logs = p.session(), []
    for doc in second:
        s.reset()
        for w in doc:
            wid = p.tokenizer.word_index.get(w, 0)
            if 0 < wid < p.vocab_size:
                logs.append(-math.log(max(s.probability(w), 1e-12)))
            s.feed(w)
    row = learning_bench.quality(p.session, second, p.vocab_size, p.tokenizer.word_index, p.tokenizer.oov_id)
    assert row["ppl_words"] == len(logs) and row["ppl"] == pytest.approx(math.exp(sum(logs) / len(logs)))


def test_too_short_a_text_is_an_input_error(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("hello how\nare you\n", encoding="utf-8")
    with pytest.raises(InputError, match="at least 4 documents"):
        learning_bench.measure(SEED_BUNDLE, str(path), "line", use_presage=False)


def test_cli_refuses_a_missing_learn_text_in_one_line(tmp_path):
    r = run_cli("nextword-bench", SEED_BUNDLE, "--learn-text", str(tmp_path / "nope.txt"), "--quick")
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "--learn-text" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(presage.find_tools() is None, reason="Presage not installed (apt-get install presage libpresage-data)")
def test_presage_learns_the_first_half_into_its_user_database(text):
    train = [line.split() for line in ["hello how are you", "hello how is your day", "hello how are your friends",
                                       "hello what are you doing"]]
    docs = [line.split() for line in USER_TEXT.splitlines()]
    res = presage.run_learnt(train, docs[:4], docs[4:], n=6)
    rows = res["rows"]
    assert res["status"] == "ok" and all(r["keys_match"] for r in rows.values()), json.dumps(res)[:500]
    assert (rows["presage-default, first half learnt"]["ksr"] > rows["presage-default, learning as typed"]["ksr"]
            > rows["presage-ngram"]["ksr"])
