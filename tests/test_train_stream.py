"""Streamed corpora (train.sources) and the tf.data pipeline of the sequence objective
(train.stream_data): the same documents, vocabulary and chunks as the in-memory path, whatever the
block size, shard or order. Small corpora are written by the tests into tmp_path."""

import os
import random
from collections import Counter

import numpy as np
import pytest

from nextword.runtime.errors import InputError
from nextword.runtime.tokenizer import Tokenizer
from nextword.train import corpus, lexicon, sources
from nextword.train.corpus import CorpusError
from nextword.train.examples import Chunks

WORDS = ("the cat sat on a mat and then it ran off to see Mr. Darcy who said Well, I never! "
         "Elizabeth smiled at the sea. dog fish ham jam tea sun rain wind").split()


def _text(rng, paragraphs, breaks="\n"):
    out = []
    for _ in range(paragraphs):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 12))) for _ in range(rng.randint(1, 4))]
        out.append(breaks.join(lines))
    return (breaks * 2).join(out) + breaks


@pytest.fixture
def tree(tmp_path):
    """A corpus of folders: a/ (two files), a/deep/ (one), b/ (one file with a BOM and CRLF), notes.md."""
    rng = random.Random(7)
    (tmp_path / "a" / "deep").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "one.txt").write_text(_text(rng, 30), encoding="utf-8")
    (tmp_path / "a" / "two.txt").write_text(_text(rng, 25), encoding="utf-8")
    (tmp_path / "a" / "deep" / "three.txt").write_text(_text(rng, 20, "\r\n"), encoding="utf-8")
    (tmp_path / "b" / "four.txt").write_bytes("\ufeff".encode() + _text(rng, 15).encode())
    (tmp_path / "notes.md").write_text("not a corpus file\n", encoding="utf-8")
    return tmp_path


def _in_memory(files, unit):
    return [d for f in files for d in corpus.split_documents(corpus.read_text(f)[1], unit)]


# -- expand -------------------------------------------------------------------------------------

def test_expand_files_folders_globs_sorted_and_deduplicated(tree):
    everything = sources.expand([str(tree)])
    assert [os.path.relpath(f, tree) for f in everything] == [
        os.path.join("a", "deep", "three.txt"), os.path.join("a", "one.txt"), os.path.join("a", "two.txt"),
        os.path.join("b", "four.txt")]
    # the same files by a glob, a folder, a file and a symlink to one of them: each once
    os.symlink(tree / "a" / "one.txt", tree / "b" / "link.txt")
    again = sources.expand([str(tree / "**" / "*.txt"), str(tree / "a"), str(tree / "a" / "one.txt")])
    assert sorted(map(os.path.realpath, again)) == sorted(map(os.path.realpath, everything))
    assert len(again) == len(everything)
    assert again == sorted(again)
    assert sources.expand(str(tree / "a" / "*.txt")) == [str(tree / "a" / "one.txt"), str(tree / "a" / "two.txt")]
    assert sources.expand([str(tree / "notes.md")]) == [str(tree / "notes.md")]   # a file given by name is read


def test_the_one_process_reader_takes_the_same_globs_in_the_order_given(tree):
    """read_corpus (nextword-train without workers) expands a quoted glob where it stands: the files of
    b/ then a/ in that order, each glob's matches sorted."""
    got = corpus.read_corpus([str(tree / "b" / "*.txt"), str(tree / "a" / "*.txt")], "paragraph")
    files = [tree / "b" / "four.txt", tree / "a" / "one.txt", tree / "a" / "two.txt"]
    assert [f["path"] for f in got.files] == [os.path.abspath(f) for f in files]
    assert got.documents == _in_memory(files, "paragraph")
    with pytest.raises(CorpusError, match="matches no file"):
        corpus.read_corpus([str(tree / "*.csv")], "line")


def test_expand_names_the_pattern_that_matches_nothing(tree):
    with pytest.raises(CorpusError, match=r"\*\.csv.*matches no file"):
        sources.expand([str(tree / "a"), str(tree / "**" / "*.csv")])
    with pytest.raises(CorpusError, match="does not exist"):
        sources.expand([str(tree / "missing.txt")])
    (tree / "empty").mkdir()
    with pytest.raises(CorpusError, match="no .txt files"):
        sources.expand([str(tree / "empty")])
    with pytest.raises(CorpusError, match="1 folder"):
        sources.expand([str(tree / "empt?")])


def test_file_keys_do_not_depend_on_the_working_directory(tree, monkeypatch):
    files = sources.expand([str(tree)])
    keys = sources.file_keys(files)
    assert keys == ["a/deep/three.txt", "a/one.txt", "a/two.txt", "b/four.txt"]
    monkeypatch.chdir(tree / "a")
    assert sources.file_keys([os.path.relpath(f) for f in files]) == keys


# -- documents ----------------------------------------------------------------------------------

@pytest.mark.parametrize("unit", corpus.UNITS)
@pytest.mark.parametrize("block", [1, 7, 4096])
def test_iter_documents_equals_split_documents(tree, unit, block, monkeypatch):
    """Every block size (1 byte: every multi-byte character and every CRLF is cut), every line break
    str.splitlines knows, BOMs, blank lines made of spaces."""
    monkeypatch.setattr(sources, "BLOCK_BYTES", block)
    odd = tree / "odd.txt"
    odd.write_bytes("\ufeff\ufeffé line\r\rtwo\x0bthree\x0c\x1cfour\u2028five\x85six\r\n  \r\n"
                    "café naïve — “quoted” 日本語\r\nlast without break".encode())
    for path in sources.expand([str(tree)]):
        assert list(sources.iter_documents(path, unit)) == corpus.split_documents(corpus.read_text(path)[1], unit)
    assert list(sources.iter_documents(str(tree / "b" / "four.txt"), unit))[0][0] != "\ufeff"


def test_iter_documents_errors_name_file_and_offset(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "BLOCK_BYTES", 5)
    latin = tmp_path / "latin.txt"
    latin.write_bytes("ok line\ncaf".encode() + b"\xe9 au lait\n")
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"some text\nand a \x00 here\n")
    cut = tmp_path / "cut.txt"
    cut.write_bytes("ends inside é".encode()[:-1])
    for path in (latin, nul, cut):
        with pytest.raises(CorpusError) as whole:
            corpus.read_text(str(path))
        with pytest.raises(CorpusError) as streamed:
            list(sources.iter_documents(str(path), "line"))
        assert str(streamed.value) == str(whole.value)
    assert "offset 11" in str(pytest.raises(CorpusError, corpus.read_text, str(latin)).value)
    with pytest.raises(CorpusError, match="is a folder"):
        list(sources.iter_documents(str(tmp_path), "line"))
    with pytest.raises(CorpusError, match="unit must be one of"):
        list(sources.iter_documents(str(latin), "word"))


def test_a_document_longer_than_the_bound_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "MAX_DOCUMENT_CHARS", 50)
    monkeypatch.setattr(sources, "BLOCK_BYTES", 16)
    path = tmp_path / "long.txt"
    path.write_text("short\n\n" + "word " * 8 + "\n" + "word " * 8 + "\n\n" + "x" * 80 + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"long.txt: the document starting at line 3 is longer than 50"):
        list(sources.iter_documents(str(path), "paragraph"))
    with pytest.raises(CorpusError, match=r"long.txt: line 6 is longer than 50"):
        list(sources.iter_documents(str(path), "line"))


# -- the split rule -----------------------------------------------------------------------------

def test_split_of_is_a_function_of_the_key_with_the_fractions_asked():
    keys = [(f"books/{i % 37}.txt", i) for i in range(20000)]
    first = [sources.split_of(k, 0.1, 0.2) for k in keys]
    shuffled = keys[:]
    random.Random(3).shuffle(shuffled)
    again = dict(zip(shuffled, (sources.split_of(k, 0.1, 0.2) for k in shuffled)))
    assert first == [again[k] for k in keys]
    share = Counter(first)
    assert abs(share["test"] / len(keys) - 0.2) < 0.015 and abs(share["val"] / len(keys) - 0.1) < 0.015
    # test membership does not move with the validation fraction
    assert [s == "test" for s in first] == [sources.split_of(k, 0.3, 0.2) == "test" for k in keys]
    assert {sources.split_of(k, 0, 0) for k in keys[:500]} == {"train"}
    for bad in ((0.6, 0.5), (-0.1, 0), (0, 1)):
        with pytest.raises(InputError):
            sources.split_of(keys[0], *bad)


# -- the vocabulary -----------------------------------------------------------------------------

def _fitted_documents(files, unit, val, test):
    keys = sources.file_keys(files)
    out = []
    for i, f in enumerate(files):
        for n, d in enumerate(corpus.split_documents(corpus.read_text(f)[1], unit)):
            if sources.split_of((keys[i], n), val, test) != "test":
                out.append(d)
    return out


@pytest.mark.parametrize("unit", corpus.UNITS)
def test_fit_vocabulary_equals_fitting_in_memory(tree, unit, monkeypatch):
    monkeypatch.setattr(sources, "BLOCK_BYTES", 64)
    files = sources.expand([str(tree)])
    streamed = Tokenizer(num_words=20, oov_token="<unk>")
    stats = sources.fit_vocabulary(files, unit, streamed, 0.15, 0.25)
    docs = _fitted_documents(files, unit, 0.15, 0.25)
    held = Tokenizer(num_words=20, oov_token="<unk>").fit_on_texts(docs)
    assert list(streamed.word_index.items()) == list(held.word_index.items())   # ties in first-seen order too
    assert streamed.word_counts == held.word_counts and streamed.document_count == held.document_count
    total = len(_in_memory(files, unit))
    assert stats["documents"]["train"] + stats["documents"]["val"] == len(docs)
    assert sum(stats["documents"].values()) == total and stats["documents"]["test"] > 0
    assert stats["tokens"] == sum(len(held.words(d)) for d in docs)
    assert stats["bytes"] == stats["bytes_read"] == sum(os.path.getsize(f) for f in files)
    assert stats["sampled"] is False and stats["files"] == 4


def test_fit_vocabulary_from_a_sample_reads_a_share_of_every_file(tree):
    files = sources.expand([str(tree)])
    size = sum(os.path.getsize(f) for f in files)
    tok = Tokenizer()
    stats = sources.fit_vocabulary(files, "line", tok, 0.0, 0.0, sample_bytes=size // 4)
    assert stats["sampled"] is True and stats["bytes_read"] <= size // 4
    assert stats["bytes_read"] >= size // 4 - len(files)
    # each file contributes its first lines: exactly the complete lines of its first share of bytes
    expected = []
    for f in files:
        share = (size // 4) * os.path.getsize(f) // size
        head = open(f, "rb").read()[:share].decode("utf-8", "ignore").lstrip("\ufeff")
        whole = corpus.split_documents(head, "line")
        complete = head.endswith(("\n", "\r")) if head else True
        expected += whole if complete else whole[:-1]
    assert tok.word_index == Tokenizer().fit_on_texts(expected).word_index
    assert stats["documents"]["train"] == len(expected)
    assert sources.fit_vocabulary(files, "line", Tokenizer(), 0, 0, sample_bytes=size)["sampled"] is False


def test_lexicon_build_takes_the_streamed_documents(tree):
    files = sources.expand([str(tree)])
    tok = Tokenizer()
    sources.fit_vocabulary(files, "paragraph", tok, 0.2, 0.2)
    streamed = lexicon.build((d for _, _, d in sources.documents_in(files, "paragraph", ("train", "val"), 0.2, 0.2)), tok)
    held = lexicon.build(_fitted_documents(files, "paragraph", 0.2, 0.2), tok)
    assert streamed == held and streamed.forms.get("elizabeth") == "Elizabeth"


# -- the tf.data pipeline -----------------------------------------------------------------------

L, S = 5, 3


def _expected_rows(files, unit, tok, split, val, test):
    keys = sources.file_keys(files)
    ids = []
    for i, f in enumerate(files):
        for n, d in enumerate(corpus.split_documents(corpus.read_text(f)[1], unit)):
            if sources.split_of((keys[i], n), val, test) == split:
                ids.append(tok.text_to_ids(d))
    return Chunks(ids, L, S).all()


def _rows(ds):
    x, y, w = (np.concatenate(parts) for parts in zip(*((a.numpy(), b.numpy(), c.numpy()) for a, b, c in ds)))
    return x, y, w


def _multiset(x, y, w):
    return Counter(tuple(np.concatenate([a, b, c.astype(np.int32)]).tolist()) for a, b, c in zip(x, y, w))


@pytest.fixture
def fitted(tree):
    files = sources.expand([str(tree)])
    tok = Tokenizer(num_words=25)
    sources.fit_vocabulary(files, "paragraph", tok, 0.2, 0.1)
    return files, tok


@pytest.mark.tf
@pytest.mark.parametrize("shards", [1, 2, 5])      # 2: by file (4 files); 5: by record
def test_chunk_dataset_makes_exactly_the_chunks_of_chunks(fitted, shards, monkeypatch):
    from nextword.train import stream_data
    monkeypatch.setattr(stream_data, "GROUP_TOKENS", 16)      # many groups and elements per file
    monkeypatch.setattr(stream_data, "ROWS_PER_ELEMENT", 3)
    files, tok = fitted
    x, y, w = _expected_rows(files, "paragraph", tok, "train", 0.2, 0.1)
    assert len(x) > 100
    got = Counter()
    sizes = []
    for index in range(shards):
        ds = stream_data.chunk_dataset(files, "paragraph", tok, L, S, 8, val_split=0.2, test_split=0.1, seed=4,
                                       num_shards=shards, shard_index=index, shuffle_buffer=50, cycle_length=2)
        part = _rows(ds)
        assert part[0].dtype == np.int32 and part[2].dtype == np.float32 and part[0].shape[1] == L
        sizes.append(len(part[0]))
        assert stream_data.shard_chunk_counts(files, "paragraph", tok, L, S, val_split=0.2, test_split=0.1,
                                              num_shards=shards)[index] == len(part[0])
        got += _multiset(*part)
    assert got == _multiset(x, y, w)
    assert min(sizes) > 0
    if shards > len(files):    # by record: every shards-th chunk of each file, so the shards differ by a chunk a file
        assert max(sizes) - min(sizes) <= len(files), sizes
    plan = [stream_data.shard_plan(len(files), shards, i) for i in range(shards)]
    assert all(records == ((1, 0) if shards <= len(files) else (shards, i)) for i, (_, records) in enumerate(plan))


@pytest.mark.tf
def test_chunk_dataset_order_is_a_function_of_seed_and_epoch(fitted):
    from nextword.train.stream_data import chunk_dataset
    files, tok = fitted

    def order(**kw):
        return _rows(chunk_dataset(files, "paragraph", tok, L, S, 8, val_split=0.2, test_split=0.1,
                                   shuffle_buffer=64, cycle_length=2, **kw))[0]
    first = order(seed=1, epoch=0)
    assert np.array_equal(first, order(seed=1, epoch=0))
    assert not np.array_equal(first, order(seed=1, epoch=1))
    assert not np.array_equal(first, order(seed=2, epoch=0))
    assert sorted(map(tuple, first.tolist())) == sorted(map(tuple, order(seed=1, epoch=1).tolist()))
    # a resumed worker rebuilds the epoch and skips what it did
    resumed = chunk_dataset(files, "paragraph", tok, L, S, 8, val_split=0.2, test_split=0.1, seed=1, epoch=0,
                            shuffle_buffer=64, cycle_length=2).skip(3)
    assert np.array_equal(_rows(resumed)[0], first[24:])


@pytest.mark.tf
@pytest.mark.parametrize("split", ["val", "test"])
def test_held_out_splits_are_not_shuffled(fitted, split):
    from nextword.train.stream_data import chunk_dataset
    files, tok = fitted
    expected = _expected_rows(files, "paragraph", tok, split, 0.2, 0.1)
    got = _rows(chunk_dataset(files, "paragraph", tok, L, S, 7, split=split, val_split=0.2, test_split=0.1,
                              seed=9, epoch=3))
    assert len(expected[0]) > 10
    for a, b in zip(got, expected):
        assert np.array_equal(a, b)        # Chunks' own order


@pytest.mark.tf
def test_chunk_dataset_max_chunks_and_bad_arguments(fitted):
    from nextword.train.stream_data import chunk_dataset
    files, tok = fitted
    x = _rows(chunk_dataset(files, "paragraph", tok, L, S, 8, val_split=0.2, test_split=0.1, max_chunks=21))[0]
    assert len(x) == 21
    for kw, msg in (({"split": "dev"}, "split must be"), ({"num_shards": 2, "shard_index": 2}, "shard_index"),
                    ({"shuffle_buffer": 0}, "shuffle_buffer")):
        with pytest.raises(InputError, match=msg):
            chunk_dataset(files, "paragraph", tok, L, S, 8, val_split=0.2, test_split=0.1, **kw)
    with pytest.raises(InputError, match="must not exceed"):
        chunk_dataset(files, "paragraph", tok, 3, 4, 8, val_split=0.2, test_split=0.1)
