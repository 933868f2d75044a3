"""The sequence objective's input pipeline for corpora that do not fit in memory: tf.data over streamed
files (train.sources), interleaved file reads, a seeded shuffle buffer of chunks, prefetch.

Why: train.examples.Chunks holds the whole corpus' token ids; here each file is read, tokenized (in
Python, by the one Tokenizer, inside Dataset.from_generator) and cut into chunks a few thousand tokens
at a time, by Chunks itself, so every chunk is exactly the one Chunks makes for its document.

Memory is bounded by the pipeline, not the corpus: shuffle_buffer chunks, cycle_length open files
(one read block and one group of GROUP_TOKENS tokens each), ROWS_PER_ELEMENT rows per element and
PREFETCH_BATCHES batches.

Order: epoch e of a shard is a function of (seed, e, num_shards, shard_index) only: the shard's files
in an order drawn from (seed, e), read cycle_length at a time in turn (a deterministic interleave),
chunks through a shuffle buffer seeded from (seed, e). A resumed worker rebuilds epoch e and skips the
batches it already did (dataset.skip(n)). val and test are never shuffled and read one file after
another: their chunks come in Chunks' order over the split's documents."""

import numpy as np

from nextword.runtime.errors import InputError

from .examples import Chunks
from .quiet_tf import import_tensorflow
from .sources import SPLITS, check_splits, file_keys, iter_documents, split_of

DEFAULT = None                   # marker: the module default of a keyword below
DEFAULT_SHUFFLE_BUFFER = 8192    # chunks held for shuffling (L=20: 8192 x 20 x 12 bytes, about 2 MB)
DEFAULT_CYCLE_LENGTH = 4         # files read at once, in turn
GROUP_TOKENS = 4096              # documents are cut into chunks this many tokens (or one document) at a time
ROWS_PER_ELEMENT = 256           # chunk rows per generator element (unbatched in TensorFlow's C++)
PREFETCH_BATCHES = 2


def shard_plan(n_files, num_shards, shard_index):
    """(file numbers this shard reads, chunks kept: (modulus, remainder) of the chunk number in its
    file). By file when there are at least num_shards files, else by record: every num_shards-th
    chunk of every file (chunks, not documents: documents differ in length, and every worker runs the
    steps the smallest shard allows). Either way the shards' union is every chunk once."""
    if isinstance(num_shards, bool) or not isinstance(num_shards, int) or num_shards < 1:
        raise InputError(f"num_shards must be a whole number >= 1, got {num_shards!r}")
    if isinstance(shard_index, bool) or not isinstance(shard_index, int) or not 0 <= shard_index < num_shards:
        raise InputError(f"shard_index must be in 0..{num_shards - 1}, got {shard_index!r}")
    if n_files >= num_shards:
        return list(range(shard_index, n_files, num_shards)), (1, 0)
    return list(range(n_files)), (num_shards, shard_index)


def file_chunks(path, key, unit, tokenizer, chunk_length, chunk_stride, split, val_split, test_split,
                records=(1, 0)):
    """(x, y, w) blocks of at most ROWS_PER_ELEMENT rows: the chunks Chunks makes for each document of
    `path` in `split` that are this shard's records, in document order. Pure Python and numpy."""
    for chunks, kept in _kept_chunks(path, key, unit, tokenizer, chunk_length, chunk_stride, split, val_split,
                                     test_split, records):
        for start in range(0, len(kept), ROWS_PER_ELEMENT):
            yield chunks.batch(kept[start:start + ROWS_PER_ELEMENT])


def _kept_chunks(path, key, unit, tokenizer, chunk_length, chunk_stride, split, val_split, test_split, records):
    """(Chunks of a group of documents, the indices of its chunks this shard keeps): chunk k of the file
    (counted over the groups) is kept when k % modulus == remainder."""
    modulus, remainder = records
    seen = 0
    for group in _groups(path, key, unit, tokenizer, split, val_split, test_split):
        chunks = Chunks(group, chunk_length, chunk_stride)
        yield chunks, np.arange((remainder - seen) % modulus, len(chunks), modulus)
        seen += len(chunks)


def _groups(path, key, unit, tokenizer, split, val_split, test_split):
    """Token ids of the file's documents in `split`, about GROUP_TOKENS at a time."""
    group, tokens = [], 0
    for number, doc in enumerate(iter_documents(path, unit)):
        if split_of((key, number), val_split, test_split) != split:
            continue
        ids = tokenizer.text_to_ids(doc)
        if len(ids) < 2:
            continue                 # no target: Chunks makes no chunk of it
        group.append(ids)
        tokens += len(ids)
        if tokens >= GROUP_TOKENS:
            yield group
            group, tokens = [], 0
    if group:
        yield group


def shard_chunk_counts(files, unit, tokenizer, chunk_length, chunk_stride, *, split="train", val_split,
                       test_split, num_shards=1):
    """How many chunks chunk_dataset yields for each of num_shards shards and this split (before
    max_chunks): one pass that tokenizes the corpus once, without TensorFlow (a shard keeps chunks
    k % modulus == remainder of each of its files, so each file's total is enough). Workers that must
    run the same number of steps agree on the smallest count (max_chunks)."""
    check_splits(val_split, test_split)
    keys = file_keys(files)
    totals = [sum(len(kept) for _, kept in _kept_chunks(f, k, unit, tokenizer, chunk_length, chunk_stride, split,
                                                        val_split, test_split, (1, 0)))
              for f, k in zip(files, keys)]
    counts = []
    for index in range(num_shards):
        mine, (modulus, remainder) = shard_plan(len(files), num_shards, index)
        counts.append(sum(len(range(remainder, totals[i], modulus)) for i in mine))
    return counts


def epoch_seed(seed, epoch, salt=0):
    """A 63-bit seed drawn from (seed, epoch, salt): the file order (salt 0) and the shuffle buffer (1)."""
    return int(np.random.default_rng([int(seed), int(epoch), salt]).integers(2 ** 63 - 1))


def chunk_dataset(files, unit, tokenizer, chunk_length, chunk_stride, batch_size, *, split="train",
                  val_split, test_split, seed=0, epoch=0, num_shards=1, shard_index=0,
                  shuffle_buffer=DEFAULT, cycle_length=DEFAULT, max_chunks=None):
    """A tf.data.Dataset of (x int32 [b, L], y int32 [b, L], w float32 [b, L]) batches: exactly the
    chunks train.examples.Chunks makes for each document of `split` (train.sources.split_of), this
    shard's part of them (shard_plan), in the order described in the module docstring. The last batch
    may be smaller. max_chunks: at most that many chunks (after the shuffle), e.g. to give every worker
    the same number of steps. The dataset's auto-sharding is off: it is sharded already."""
    tf = import_tensorflow()
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    check_splits(val_split, test_split)
    Chunks([], chunk_length, chunk_stride)           # checks length and stride
    if batch_size < 1:
        raise InputError(f"batch_size must be at least 1, got {batch_size}")
    shuffle_buffer = DEFAULT_SHUFFLE_BUFFER if shuffle_buffer is DEFAULT else int(shuffle_buffer)
    cycle_length = DEFAULT_CYCLE_LENGTH if cycle_length is DEFAULT else int(cycle_length)
    if shuffle_buffer < 1 or cycle_length < 1:
        raise InputError(f"shuffle_buffer and cycle_length must be at least 1, got {shuffle_buffer} and {cycle_length}")
    files = list(files)
    keys = file_keys(files)
    mine, records = shard_plan(len(files), num_shards, shard_index)
    shuffle = split == "train"
    if shuffle:
        mine = [mine[i] for i in np.random.default_rng(epoch_seed(seed, epoch, 0)).permutation(len(mine))]
    length = int(chunk_length)
    signature = tuple(tf.TensorSpec([None, length], dtype) for dtype in (tf.int32, tf.int32, tf.float32))

    def generate(i):
        i = int(i)
        yield from file_chunks(files[i], keys[i], unit, tokenizer, length, chunk_stride, split, val_split,
                               test_split, records)

    def one_file(i):
        return tf.data.Dataset.from_generator(generate, output_signature=signature, args=(i,))

    ds = tf.data.Dataset.from_tensor_slices(np.array(mine, dtype=np.int64))
    ds = ds.interleave(one_file, cycle_length=cycle_length if shuffle else 1, block_length=1)   # in turn: deterministic
    ds = ds.unbatch()
    if shuffle:
        ds = ds.shuffle(shuffle_buffer, seed=epoch_seed(seed, epoch, 1), reshuffle_each_iteration=False)
    if max_chunks is not None:
        ds = ds.take(int(max_chunks))
    ds = ds.batch(int(batch_size)).prefetch(PREFETCH_BATCHES)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return ds.with_options(options)
