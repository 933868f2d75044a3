"""runtime.tokenizer.Tokenizer against the real Keras legacy Tokenizer, plus its JSON format and the
properties the rest of nextword relies on (issue 6, item 1).

Tests marked `tf` import Keras lazily (inside a fixture), so the rest of this file runs where
TensorFlow is not installed (`pytest -m "not tf"`)."""

import itertools
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextword.runtime.errors import BundleInvalid
from nextword.runtime.tokenizer import DEFAULT_FILTERS, Tokenizer, text_to_word_sequence
from nextword.train.corpus import SEED_LINES

# -- corpora -----------------------------------------------------------------------------------

HOSTILE = [
    "Héllo WÖRLD, École école ÉCOLE!",
    "naïve café ﬁnance Straße STRASSE strasse",
    "ΣΊΣΥΦΟΣ σίσυφος ΟΔΟΣ Σ",                     # final sigma: lowercasing depends on context
    "İstanbul istanbul İ İİ i̇",                    # 'İ'.lower() is two code points
    "١٢٣ ٤٥٦ 123 ½ ² ⅷ 𝟘𝟙 ۳",                      # unicode digits and numerals
    "don't won't 'quoted' rock'n'roll '' ' o'",    # apostrophes are not filtered by default
    "!!!...,,,???;;;:::--__((]]{}}<<>>",            # nothing but filtered punctuation
    "a--b__c...d!e?f",
    "tab\tseparated\twords\t\t",
    "new\nline\r\ncrlf\rcr",
    "multiple    spaces   here  ",
    "emoji 😀 😀😀 👍🏽 family 👨‍👩‍👧 🇫🇷",
    "",
    "   ",
    "\t\n",
    "OOV oov <oov> Oov OOV OOV",                    # words equal to (some spelling of) the OOV tokens
    "\u00a0nbsp\u2003em\u3000ideographic space",  # not ' ', so not a split point
    "zero\u200bwidth joiner\u200d here",
    "mixed CASE Case case cAsE",
    "the the the the a a a b b c",
    "x",
]

UNSEEN = [
    "hello unknown zebra words never seen",
    "Σ ς σ σς",
    "",
    "!!!",
    "the OOV oov <oov> 'quoted'",
    "İİİ i̇",
    "😀 👍🏽 new 🦄",
    "how are you doing today",
    "École   ecole\tÉCOLE",
]


def seed_corpus():
    return SEED_LINES.split("\n")   # includes the empty string after the last newline, as the notebook did


def prose_corpus(paragraphs=400, seed=7):
    """Novel-sized prose made here (no file outside the repository): ~40,000 words drawn 60% Zipf, 40%
    uniform from 9,000 (about 6,400 distinct, so num_words=5000 cuts it), capitals, apostrophes, dashes,
    quotes, punctuation and hard line wraps, in blank-line paragraphs."""
    rng = random.Random(seed)
    vocab = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 9))) for _ in range(9000)]
    vocab += ["don't", "Mr.", "Elizabeth's", "to-morrow", "café", "naïve"]
    out = []
    for _ in range(paragraphs):
        words = []
        for _ in range(rng.randint(20, 180)):
            w = vocab[min(int(rng.paretovariate(0.9)) - 1, len(vocab) - 1)] if rng.random() < 0.6 else rng.choice(vocab)
            if rng.random() < 0.1:
                w = w.capitalize()
            if rng.random() < 0.12:
                w += rng.choice([",", ".", ";", "!", "?", ":", "--", '"'])
            if rng.random() < 0.02:
                w = rng.choice(['"', "'", "("]) + w
            words.append(w)
        lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
        out.append("\n".join(lines))
    return out


def _corpora():
    return [pytest.param(seed_corpus, id="seed"), pytest.param(lambda: list(HOSTILE), id="hostile"),
            pytest.param(prose_corpus, id="prose")]


CORPORA = _corpora()

# -- configurations ----------------------------------------------------------------------------

NUM_WORDS = (None, 2, 3, 5, 50)
OOV_TOKENS = (None, "<oov>", "OOV")
CUSTOM = [
    dict(filters="", split=" "),                            # punctuation kept: '<oov>' can be a word
    dict(filters=".,!?", split="\t"),                       # tab-separated, spaces inside words
    dict(filters=DEFAULT_FILTERS.replace("'", "") + "'", split="--"),   # multi-character split
    dict(filters="aeiou", split="e", lower=False),          # split character also filtered
]


def _configs():
    out = []
    for nw, oov, lower in itertools.product(NUM_WORDS, OOV_TOKENS, (True, False)):
        out.append(dict(num_words=nw, oov_token=oov, lower=lower))
    for custom in CUSTOM:
        for nw, oov in ((None, None), (3, "<oov>"), (50, "OOV")):
            out.append(dict(custom, num_words=nw, oov_token=oov))
    return out


CONFIGS = _configs()
PROSE_CONFIGS = [dict(num_words=None, oov_token=None, lower=True), dict(num_words=50, oov_token="<oov>", lower=True),
                 dict(num_words=5000, oov_token="OOV", lower=False), dict(num_words=2, oov_token=None, lower=False),
                 dict(CUSTOM[0], num_words=None, oov_token="<oov>"), dict(CUSTOM[2], num_words=3, oov_token="OOV")]


def _cfg_id(cfg):
    return ",".join(f"{k}={cfg[k]!r}" for k in sorted(cfg) if k != "filters") + \
        (f",filters={len(cfg['filters'])}ch" if "filters" in cfg else "")


def _cases(configs=CONFIGS, prose_configs=PROSE_CONFIGS):
    for corpus in CORPORA:
        for cfg in prose_configs if corpus.id == "prose" else configs:
            yield pytest.param(corpus.values[0], cfg, id=f"{corpus.id}-{_cfg_id(cfg)}")


# -- helpers -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def keras_tokenizer():
    pytest.importorskip("tensorflow")
    from tensorflow.keras.preprocessing.text import Tokenizer as KerasTokenizer
    return KerasTokenizer


def probe_sequences(*toks):
    """Id sequences that include padding, negative and far out-of-range ids."""
    top = max([max(t.index_word, default=0) for t in toks]) + 3
    return [[], [0], [-1, -5], list(range(-2, top + 1)), [10 ** 9, 1, 1], [top, top - 1, 0, 2, 3],
            list(range(top, -3, -1))]


def assert_same(ours, theirs, texts):
    assert ours.word_index == theirs.word_index
    assert list(ours.word_index.items()) == list(theirs.word_index.items())
    assert ours.index_word == theirs.index_word
    assert list(ours.word_counts.items()) == list(theirs.word_counts.items())
    assert ours.document_count == theirs.document_count
    for batch in (texts, UNSEEN):
        ours_seqs = ours.texts_to_sequences(batch)
        assert ours_seqs == theirs.texts_to_sequences(batch)
        assert ours.sequences_to_texts(ours_seqs) == theirs.sequences_to_texts(ours_seqs)
    probes = probe_sequences(ours, theirs)
    assert ours.sequences_to_texts(probes) == theirs.sequences_to_texts(probes)


def fit_both(keras_cls, cfg, texts):
    ours = Tokenizer(**cfg).fit_on_texts(texts)
    theirs = keras_cls(**cfg)
    theirs.fit_on_texts(texts)
    return ours, theirs


def assert_roundtrip(tok, texts):
    again = Tokenizer.from_json(tok.to_json())
    assert again.config() == tok.config()
    assert again.to_dict() == tok.to_dict()
    assert list(again.word_counts.items()) == list(tok.word_counts.items())
    assert list(again.word_index.items()) == list(tok.word_index.items())
    assert again.index_word == tok.index_word
    assert again.document_count == tok.document_count
    assert again.vocab_size == tok.vocab_size
    assert again.oov_id == tok.oov_id
    assert again.id_to_word_table() == tok.id_to_word_table()
    for batch in (texts, UNSEEN):
        assert again.texts_to_sequences(batch) == tok.texts_to_sequences(batch)
    probes = probe_sequences(tok)
    assert again.sequences_to_texts(probes) == tok.sequences_to_texts(probes)
    return again


# -- differential tests against Keras ----------------------------------------------------------

@pytest.mark.tf
@pytest.mark.parametrize("corpus, cfg", list(_cases()))
def test_matches_keras(keras_tokenizer, corpus, cfg):
    texts = corpus()
    ours, theirs = fit_both(keras_tokenizer, cfg, texts)
    assert_same(ours, theirs, texts)


@pytest.mark.tf
def test_matches_keras_word_splitting(keras_tokenizer):
    from keras.src.legacy.preprocessing.text import text_to_word_sequence as keras_split
    for text in HOSTILE + UNSEEN:
        for cfg in [{}, dict(lower=False)] + CUSTOM:
            assert text_to_word_sequence(text, **cfg) == keras_split(text, **cfg), (text, cfg)


def test_seed_vocabulary_is_the_notebooks():
    """Pinned, so the parity test cannot pass by both tokenizers agreeing on something else."""
    tok = Tokenizer().fit_on_texts(seed_corpus())
    assert list(tok.word_index) == ["hello", "how", "are", "you", "your", "is", "day", "friends", "what", "doing"]
    assert tok.word_index["hello"] == 1 and tok.vocab_size == 11
    assert tok.texts_to_sequences(["hello how is your day"]) == [[1, 2, 6, 5, 7]]


def test_word_equal_to_oov_token_keeps_keras_ids():
    """Keras' dict(zip(...)): the OOV token keeps its key position but takes the word's (last) id."""
    tok = Tokenizer(oov_token="OOV", lower=False).fit_on_texts(["OOV a a b"])
    assert tok.word_index == {"OOV": 3, "a": 2, "b": 4}
    assert 1 not in tok.index_word and tok.oov_id == 3
    assert tok.texts_to_sequences(["OOV a b zzz"]) == [[3, 2, 4, 3]]
    assert tok.vocab_size == 5                        # ids 1..4 exist (1 unused); len(word_index) + 1 would be 4
    assert tok.id_to_word_table() == ["", "", "a", "OOV", "b"]
    capped = Tokenizer(oov_token="OOV", lower=False, num_words=2).fit_on_texts(["OOV OOV a"])
    assert capped.texts_to_sequences(["a OOV"]) == [[2, 2]] and capped.vocab_size == 3   # OOV id 2 >= num_words
    assert Tokenizer(oov_token="<oov>", num_words=1).fit_on_texts(["a b"]).vocab_size == 2


# hypothesis: arbitrary unicode mixed with a weighted alphabet of separators, punctuation and words,
# so that words repeat (and sometimes equal an OOV token)
WORDS = ["the"] * 4 + ["a"] * 3 + ["The", "THE", "cat", "cats", "OOV", "oov", "<oov>", "İ", "é", "Σ", "ς", "ß",
                                    "١٢", "don't", "😀", "e", "ee"]
SEPS = [" "] * 8 + ["", "  ", "\t", "\n", "\r\n", ".", ",", "'", "!?", "--", "<", ">", "_", " . "]
WORD = st.one_of(st.sampled_from(WORDS), st.sampled_from(WORDS), st.sampled_from(WORDS), st.characters(),
                 st.text(max_size=3))
TEXT = st.lists(st.tuples(WORD, st.sampled_from(SEPS)), max_size=20).map(lambda ps: "".join(w + s for w, s in ps))
TEXTS = st.lists(st.one_of(TEXT, st.text(max_size=20)), max_size=6)
HYP = settings(max_examples=200, deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.tf
@HYP
@given(texts=TEXTS, unseen=st.lists(TEXT, max_size=3))
def test_matches_keras_on_generated_text(keras_tokenizer, texts, unseen):
    for cfg in CONFIGS:
        ours, theirs = fit_both(keras_tokenizer, cfg, texts)
        assert list(ours.word_counts.items()) == list(theirs.word_counts.items())
        assert list(ours.word_index.items()) == list(theirs.word_index.items())
        assert ours.index_word == theirs.index_word
        for batch in (texts, unseen):
            seqs = ours.texts_to_sequences(batch)
            assert seqs == theirs.texts_to_sequences(batch)
            assert ours.sequences_to_texts(seqs) == theirs.sequences_to_texts(seqs)
        probes = probe_sequences(ours, theirs)
        assert ours.sequences_to_texts(probes) == theirs.sequences_to_texts(probes)


# -- JSON ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("corpus, cfg", list(_cases(CONFIGS[::5], PROSE_CONFIGS[1:2])))
def test_json_roundtrip(corpus, cfg, tmp_path):
    texts = corpus()
    tok = Tokenizer(**cfg).fit_on_texts(texts)
    assert_roundtrip(tok, texts)
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    loaded = Tokenizer.load(path)
    assert loaded.to_dict() == tok.to_dict()
    assert json.loads(path.read_text(encoding="utf-8"))["format"] == "nextword-tokenizer"


@HYP
@given(texts=TEXTS, cfg=st.sampled_from(CONFIGS))
def test_json_roundtrip_generated(texts, cfg):
    tok = Tokenizer(**cfg).fit_on_texts(texts)
    assert_roundtrip(tok, texts)


def _valid():
    return Tokenizer(oov_token="<oov>").fit_on_texts(["a b b c"]).to_dict()


def _with(path, value):
    data = _valid()
    target = data
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(data)


MALFORMED = {
    "empty": "",
    "truncated": json.dumps(_valid())[:-5],
    "not-json": "word_counts: a b c",
    "null": "null",
    "list": "[1, 2, 3]",
    "string": '"nextword-tokenizer"',
    "number": "42",
    "nan": "NaN",
    "deeply-nested": "[" * 100000 + "]" * 100000,
    "keras-format": json.dumps({"class_name": "Tokenizer", "config": {"num_words": None, "word_counts": "{}"}}),
    "no-format": _with(("format",), KeyError),
    "wrong-format": _with(("format",), "keras-tokenizer"),
    "format-list": _with(("format",), ["nextword-tokenizer"]),
    "version-2": _with(("format_version",), 2),
    "version-missing": _with(("format_version",), KeyError),
    "version-string": _with(("format_version",), "1"),
    "config-missing": _with(("config",), KeyError),
    "config-list": _with(("config",), []),
    "config-null": _with(("config",), None),
    "word-counts-missing": _with(("word_counts",), KeyError),
    "word-counts-dict": _with(("word_counts",), {"a": 1}),
    "word-counts-string": _with(("word_counts",), "a b"),
    "num-words-missing": _with(("config", "num_words"), KeyError),
    "num-words-string": _with(("config", "num_words"), "5"),
    "num-words-zero": _with(("config", "num_words"), 0),
    "num-words-negative": _with(("config", "num_words"), -3),
    "num-words-float": _with(("config", "num_words"), 2.5),
    "num-words-bool": _with(("config", "num_words"), True),
    "filters-list": _with(("config", "filters"), ["!", "?"]),
    "filters-null": _with(("config", "filters"), None),
    "split-empty": _with(("config", "split"), ""),
    "split-number": _with(("config", "split"), 1),
    "oov-number": _with(("config", "oov_token"), 7),
    "oov-list": _with(("config", "oov_token"), ["<oov>"]),
    "lower-missing": _with(("config", "lower"), KeyError),
    "lower-string": _with(("config", "lower"), "false"),
    "lower-null": _with(("config", "lower"), None),
    "entry-not-pair": _with(("word_counts",), [["a", 1], ["b"]]),
    "entry-triple": _with(("word_counts",), [["a", 1, 2]]),
    "entry-string": _with(("word_counts",), ["a"]),
    "entry-null": _with(("word_counts",), [None]),
    "entry-dict": _with(("word_counts",), [{"a": 1}]),
    "entry-word-number": _with(("word_counts",), [[1, 1]]),
    "entry-count-zero": _with(("word_counts",), [["a", 0]]),
    "entry-count-negative": _with(("word_counts",), [["a", -1]]),
    "entry-count-float": _with(("word_counts",), [["a", 1.5]]),
    "entry-count-string": _with(("word_counts",), [["a", "3"]]),
    "entry-count-bool": _with(("word_counts",), [["a", True]]),
    "entry-count-null": _with(("word_counts",), [["a", None]]),
    "duplicate-word": _with(("word_counts",), [["a", 2], ["b", 1], ["a", 1]]),
    "document-count-string": _with(("document_count",), "many"),
    "document-count-negative": _with(("document_count",), -1),
    "document-count-float": _with(("document_count",), 1.5),
    "document-count-null": _with(("document_count",), None),
}


@pytest.mark.parametrize("text", list(MALFORMED.values()), ids=list(MALFORMED))
def test_from_json_rejects_malformed(text):
    with pytest.raises(BundleInvalid) as info:
        Tokenizer.from_json(text)
    assert str(info.value).startswith("vocabulary"), str(info.value)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("raw", [b"\xff\xfe{}", b'{"format": "nextword-tokenizer", "x": "\xe9"}', b"\x00" * 10])
def test_load_rejects_non_utf8_and_binary(raw, tmp_path):
    path = tmp_path / "tokenizer.json"
    path.write_bytes(raw)
    with pytest.raises(BundleInvalid):
        Tokenizer.load(path)


def test_from_json_accepts_its_own_output_only():
    """The malformed cases above are edits of a document that does load (else they prove nothing)."""
    tok = Tokenizer.from_json(json.dumps(_valid()))
    assert tok.word_index == {"<oov>": 1, "b": 2, "a": 3, "c": 4}
    assert tok.document_count == 1


# -- properties (issue 6, item 1): no Keras needed ---------------------------------------------

PROPERTY_CONFIG = st.fixed_dictionaries({
    "num_words": st.sampled_from([None, 1, 2, 3, 5, 50]),
    "oov_token": st.sampled_from([None, "<oov>", "OOV", "oov", "the", "a"]),
    "lower": st.booleans(),
    "filters": st.sampled_from([DEFAULT_FILTERS, "", ".,'"]),
})


@HYP
@given(fit=TEXTS, texts=st.lists(st.one_of(TEXT, st.text()), max_size=4), cfg=PROPERTY_CONFIG)
def test_ids_in_range_and_roundtrip_gives_known_words(fit, texts, cfg):
    tok = Tokenizer(**cfg).fit_on_texts(fit)
    vocab = tok.vocab_size
    assert vocab >= 1
    table = tok.id_to_word_table()
    assert len(table) == vocab
    for text in fit + texts:
        ids = tok.text_to_ids(text)
        assert all(isinstance(i, int) and 1 <= i <= vocab - 1 for i in ids), (ids, vocab)
        words = tok.ids_to_words(ids)
        assert len(words) == len(ids)   # every emitted id maps back to a word
        for w in words:
            assert w == tok.oov_token or (w in tok.word_index and tok.word_index[w] < vocab), (w, vocab)
        assert all(table[i] == w for i, w in zip(ids, words))
        [joined] = tok.sequences_to_texts([ids])
        assert joined == " ".join(words)
        if cfg["oov_token"] is None and cfg["num_words"] is None and text in fit:
            assert words == tok.words(text)   # lossless on fitted text when nothing is capped
    if cfg["oov_token"] is not None:
        assert tok.oov_id is not None and 1 <= tok.oov_id < vocab
        unknown = "x" * (1 + max(map(len, tok.word_index)))   # longer than every word: not in the vocabulary
        assert tok.text_to_ids(f"{unknown} {unknown}") == [tok.oov_id] * 2


@HYP
@given(text=st.text())
def test_empty_vocabulary_maps_every_word_to_oov(text):
    tok = Tokenizer(oov_token="<oov>").fit_on_texts([])
    ids = tok.text_to_ids(text)
    assert set(ids) <= {1}
    assert len(ids) == len(tok.words(text))
