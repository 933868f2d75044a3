"""Stand-in for train.sources / train.stream_data (being written by another helper) with the same
signatures, so the distributed loop has one import line to switch. NOT streamed: it reads the corpus
with train.corpus and builds train.examples.Chunks in memory (memory O(corpus)); it keeps the
contract that matters to the loop: the rows of Chunks, in an order fixed by (seed, epoch), dealt to
shards round-robin, so N shards of a global batch hold exactly the rows one shard would.

Split: a document goes to test / validation / train by a hash of its text (split_of), not by its
position as train.fit does."""

import functools
import glob
import hashlib
import os

import numpy as np

from .corpus import CorpusError, corpus_files, read_text, split_documents
from .examples import Chunks
from .quiet_tf import import_tensorflow

HASH_BUCKETS = 1 << 32
MAX_CACHED = 4          # built Chunks kept between epochs (one per split and settings)


def expand(patterns):
    """Files of `patterns` (files, folders of .txt, globs), sorted per pattern; CorpusError on no match."""
    paths = []
    for p in patterns:
        p = os.fspath(p)
        if glob.has_magic(p):
            found = sorted(glob.glob(p, recursive=True))
            if not found:
                raise CorpusError(f"corpus pattern {p} matches nothing")
            paths += found
        else:
            paths.append(p)
    return corpus_files(paths)


def iter_documents(path, unit):
    _, text = read_text(path)
    yield from split_documents(text, unit)


def split_of(key, val_split, test_split):
    """"train", "val" or "test" for a document, from a hash of `key`: stable across runs and workers."""
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") % HASH_BUCKETS
    u = h / HASH_BUCKETS
    if u < test_split:
        return "test"
    if u < test_split + val_split * (1 - test_split):
        return "val"
    return "train"


def documents(files, unit, split, val_split, test_split):
    for path in files:
        for doc in iter_documents(path, unit):
            if split is None or split_of(doc, val_split, test_split) == split:
                yield doc


def fit_vocabulary(files, unit, tokenizer, val_split, test_split, sample_bytes=None):
    """Fit `tokenizer` on the train and validation documents (never test) in one pass; returns the
    counts train.defaults chooses from (train.defaults.CorpusStats fields) and the corpus fingerprint."""
    whole, size, n_files = hashlib.sha256(), 0, []
    lengths = []
    for path in files:
        data, _ = read_text(path)
        whole.update(hashlib.sha256(data).digest())
        size += len(data)
        n_files.append({"path": os.path.abspath(path), "bytes": len(data)})
    docs = [d for d in documents(files, unit, None, val_split, test_split)
            if split_of(d, val_split, test_split) != "test"]
    tokenizer.fit_on_texts(docs)
    for d in docs:
        lengths.append(len(tokenizer.words(d)))
    counts = sorted(tokenizer.word_counts.values(), reverse=True)
    total, running, cover = sum(counts), 0, len(counts)
    for i, c in enumerate(counts):
        running += c
        if running >= 0.98 * total:
            cover = i + 1
            break
    lengths.sort()
    return {"tokens": total, "distinct": len(counts), "documents": len(docs), "coverage_words": cover,
            "doc_length_p90": lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))] if lengths else 0,
            "sha256": whole.hexdigest(), "bytes": size, "files": n_files, "sampled": False}


@functools.lru_cache(maxsize=MAX_CACHED)
def _chunks(files, unit, tokenizer_json, chunk_length, chunk_stride, split, val_split, test_split):
    from nextword.runtime.tokenizer import Tokenizer
    tokenizer = Tokenizer.from_json(tokenizer_json)
    ids = tokenizer.texts_to_sequences(list(documents(files, unit, split, val_split, test_split)))
    return Chunks(ids, chunk_length, chunk_stride)


def chunk_dataset(files, unit, tokenizer, chunk_length, chunk_stride, batch_size, *, split="train", val_split,
                  test_split, seed=0, epoch=0, num_shards=1, shard_index=0, shuffle_buffer=None, cycle_length=None,
                  max_chunks=None):
    """tf.data.Dataset of (x, y, w) batches: Chunks' rows of `split`, shuffled by (seed, epoch) for
    "train", the first `max_chunks` of that order, row i going to shard i % num_shards."""
    tf = import_tensorflow()
    chunks = _chunks(tuple(files), unit, tokenizer.to_json(), chunk_length, chunk_stride, split, val_split, test_split)
    n = len(chunks)
    order = np.random.default_rng([seed, epoch]).permutation(n) if split == "train" else np.arange(n)
    if max_chunks is not None:
        order = order[:max_chunks]
    x, y, w = chunks.batch(order[shard_index::num_shards])
    return tf.data.Dataset.from_tensor_slices((x, y, w)).batch(batch_size)
