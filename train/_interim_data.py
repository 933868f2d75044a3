"""Stand-in for train.sources / train.stream_data (being written by another helper) with the same
signatures, so the distributed loop has one import line to switch. NOT streamed: it reads the corpus
with train.corpus and builds train.examples.Chunks in memory (memory O(corpus)); it keeps the
contract that matters to the loop: the rows of Chunks, in an order fixed by (seed, epoch), dealt to
shards round-robin, so N shards of a global batch hold exactly the rows one shard would.

Split: a document goes to test / validation / train by a hash of its key (file key, number in the
file), not by its position as train.fit does: the rule train.sources has."""

import functools
import glob
import hashlib
import json
import os

import numpy as np

from nextword.runtime.tokenizer import Tokenizer

from .corpus import CorpusError, corpus_files, read_text, split_documents
from .examples import Chunks
from .quiet_tf import import_tensorflow

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


def file_keys(files):
    """Each file's path relative to the files' common folder: the first part of a document's key."""
    if not files:
        return []
    absolute = [os.path.abspath(f) for f in files]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [os.path.relpath(a, root).replace(os.sep, "/") for a in absolute]


def split_of(key, val_split, test_split):
    """"train", "val" or "test" for the document with key (file key, number), from a hash of the key."""
    raw = json.dumps(list(key), ensure_ascii=False) if isinstance(key, (tuple, list)) else str(key)
    u = int.from_bytes(hashlib.blake2b(raw.encode("utf-8"), digest_size=8).digest(), "big") / 2.0 ** 64
    if u < test_split:
        return "test"
    if u < test_split + val_split:
        return "val"
    return "train"


def documents_in(files, unit, splits, val_split, test_split):
    """(file number, document number, text) of the documents whose split is in `splits`."""
    keys = file_keys(files)
    for i, path in enumerate(files):
        for number, doc in enumerate(iter_documents(path, unit)):
            if split_of((keys[i], number), val_split, test_split) in splits:
                yield i, number, doc


def fit_vocabulary(files, unit, tokenizer, val_split, test_split, sample_bytes=None):
    """Fit `tokenizer` on the train and validation documents (never test); returns counts."""
    documents = {"train": 0, "val": 0, "test": 0}
    keys = file_keys(files)

    def fitted():
        for i, path in enumerate(files):
            for number, doc in enumerate(iter_documents(path, unit)):
                split = split_of((keys[i], number), val_split, test_split)
                documents[split] += 1
                if split != "test":
                    yield doc

    before = sum(tokenizer.word_counts.values())
    tokenizer.fit_on_texts(fitted())
    return {"files": len(files), "bytes": sum(os.path.getsize(f) for f in files), "documents": documents,
            "tokens": sum(tokenizer.word_counts.values()) - before, "sampled": False}


def count_chunks(files, unit, tokenizer, chunk_length, chunk_stride, *, split="train", val_split, test_split,
                 num_shards=1, shard_index=0):
    n = len(_chunks(tuple(files), unit, tokenizer.to_json(), chunk_length, chunk_stride, split, val_split, test_split))
    return len(range(shard_index, n, num_shards))


@functools.lru_cache(maxsize=MAX_CACHED)
def _chunks(files, unit, tokenizer_json, chunk_length, chunk_stride, split, val_split, test_split):
    tokenizer = Tokenizer.from_json(tokenizer_json)
    ids = tokenizer.texts_to_sequences([d for _, _, d in documents_in(files, unit, (split,), val_split, test_split)])
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
