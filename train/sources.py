"""Corpora measured in gigabytes: paths and globs -> files, files -> documents streamed a block at a
time, the train/validation/test rule of one document, and the vocabulary counted in one pass.

Why: train.corpus reads every file whole and keeps every document in a list, which is fine for a
novel and impossible for a folder of gigabytes. Here memory is bounded by one read block
(BLOCK_BYTES), one document (MAX_DOCUMENT_CHARS) and the vocabulary, never by the corpus size. The
documents are exactly train.corpus's (same decoding rules, the same splitting code: corpus.split_lines).

The split rule is per document, not a tail: a document's split is a hash of its key (the file's path
relative to the corpus' common folder, the document's number in its file), so every worker, shard
and read order agrees on it without reading the corpus first (see split_of)."""

import codecs
import hashlib
import json
import logging
import os

from nextword.runtime.errors import InputError

from .corpus import CorpusError, corpus_files, open_file, split_lines

log = logging.getLogger(__name__)

BLOCK_BYTES = 1 << 20            # bytes read (and decoded) at a time from one file
MAX_DOCUMENT_CHARS = 1 << 22     # one document (a line, or a paragraph joined) at most 4 Mi characters:
                                 # a longer one is a CorpusError naming the file and line, never cut
SPLITS = ("train", "val", "test")
_LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"   # what str.splitlines() splits on


def expand(patterns):
    """Files of the corpus: files, folders (their *.txt, recursively) and glob patterns (`**` allowed),
    as corpus.corpus_files finds them, sorted by path and de-duplicated by real path. A pattern (or
    path) that matches nothing is a CorpusError naming it."""
    if isinstance(patterns, (str, bytes, os.PathLike)):
        patterns = [patterns]
    seen, out = set(), []
    for path in sorted(corpus_files(patterns)):
        real = os.path.realpath(path)
        if real not in seen:
            seen.add(real)
            out.append(path)
    return out


def file_keys(files):
    """The stable name of each file in document keys: its path relative to the files' common folder,
    with '/' separators. The same corpus gives the same keys from any working directory or mount point."""
    if not files:
        return []
    absolute = [os.path.abspath(f) for f in files]
    root = os.path.commonpath([os.path.dirname(a) for a in absolute])
    return [os.path.relpath(a, root).replace(os.sep, "/") for a in absolute]


def split_of(key, val_split, test_split):
    """"train", "val" or "test" for the document with this key, e.g. (file key, document number in
    its file). A hash (BLAKE2b) of the key gives u uniform in [0, 1): test when u < test_split, val when
    u < test_split + val_split, else train. So: the same answer on every worker and shard, in any read
    order; fractions hold on average (a small corpus may be off by a few documents); a document's test
    membership does not change with val_split."""
    check_splits(val_split, test_split)
    if isinstance(key, (tuple, list)):
        raw = json.dumps([k if isinstance(k, (str, int)) else str(k) for k in key], ensure_ascii=False)
    else:
        raw = str(key)
    u = int.from_bytes(hashlib.blake2b(raw.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big") / 2.0 ** 64
    if u < test_split:
        return "test"
    if u < test_split + val_split:
        return "val"
    return "train"


def check_splits(val_split, test_split):
    for name, v in (("val_split", val_split), ("test_split", test_split)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
            raise InputError(f"{name} must be a number in [0, 1), got {v!r}")
    if val_split + test_split >= 1:
        raise InputError(f"val_split + test_split must be below 1 (nothing left to train on), got "
                         f"{val_split} + {test_split}")


def iter_documents(path, unit):
    """The documents of one file, streamed: exactly corpus.split_documents(corpus.read_text(path)[1], unit)
    (strict UTF-8, errors naming file and byte offset, NUL refused, leading BOMs dropped). Memory: one
    block of BLOCK_BYTES and one document; a document longer than MAX_DOCUMENT_CHARS is a CorpusError
    naming the file and the line it starts on. Documents before a bad byte are yielded before the error
    (the whole-file reader reports a NUL anywhere before a bad UTF-8 byte; here the first in the file)."""
    return split_lines(_lines(path), unit, MAX_DOCUMENT_CHARS, str(path))


def _lines(path, max_bytes=None, counter=None):
    """The lines of a file (str.splitlines() of its text), decoded BLOCK_BYTES at a time. max_bytes:
    read only that many bytes and drop the line they cut, if any (fit_vocabulary's sample). counter: a
    dict whose "bytes" grows by the bytes read."""
    f = open_file(path)
    with f:
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        offset, rest, started, lines, left = 0, "", False, 0, max_bytes
        while True:
            try:
                if left == 0:
                    if f.peek(1):      # the sample ends inside the file: keep its complete lines only
                        if rest and rest[-1] in _LINE_BREAKS:
                            yield from rest.splitlines()
                        return
                    block = b""
                else:
                    block = f.read(BLOCK_BYTES if left is None else min(BLOCK_BYTES, left))
            except OSError as e:
                raise CorpusError(f"cannot read {path}: {e.strerror}") from None
            if left is not None:
                left -= len(block)
            final = not block
            nul = block.find(b"\x00")
            if nul >= 0:
                raise CorpusError(f"{path} holds a NUL byte at offset {offset + nul}: it looks binary, not text")
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=final)
            except UnicodeDecodeError as e:
                raise CorpusError(f"{path} is not UTF-8: byte 0x{e.object[e.start]:02x} at offset "
                                  f"{offset - pending + e.start} ({e.reason}); convert it, e.g. "
                                  "iconv -f latin1 -t utf-8") from None
            offset += len(block)
            if counter is not None:
                counter["bytes"] += len(block)
            if not started:
                text = text.lstrip("\ufeff")
                started = bool(text)
            rest += text
            if final:
                yield from rest.splitlines()
                return
            last = rest.splitlines(True)[-1] if rest else ""
            if last and last[-1] in _LINE_BREAKS and last[-1] != "\r":
                last = ""          # the text ends on a complete line ("\r" waits: "\n" may follow)
            done = rest[:len(rest) - len(last)].splitlines()
            lines += len(done)
            yield from done
            rest = last
            if len(rest) > MAX_DOCUMENT_CHARS:
                raise CorpusError(f"{path}: line {lines + 1} is longer than {MAX_DOCUMENT_CHARS} characters "
                                  "(the bound on one document); break the line")




def documents_in(files, unit, splits, val_split, test_split, keys=None):
    """(file number, document number, text) of every document of `files` whose split (split_of) is in
    `splits`, in file order then document order: what fit_vocabulary fits on when splits is
    ("train", "val"), and what lexicon.build can take (it makes one pass over an iterable)."""
    check_splits(val_split, test_split)
    keys = file_keys(files) if keys is None else keys
    for i, path in enumerate(files):
        for number, doc in enumerate(iter_documents(path, unit)):
            if split_of((keys[i], number), val_split, test_split) in splits:
                yield i, number, doc


def fit_vocabulary(files, unit, tokenizer, val_split, test_split, sample_bytes=None):
    """tokenizer.fit_on_texts over the train and validation documents (never test) in ONE streaming
    pass, in file then document order: the same word_index (ties included) as fitting on those
    documents held in a list. Returns {files, bytes, documents: {train, val, test}, tokens (words
    counted), sampled, bytes_read, sample_bytes}.

    sample_bytes: when below the corpus size, only a sample is counted: from each file its first
    sample_bytes x (file size / corpus size) bytes (the line they cut is dropped), so every file is
    represented in proportion to its size. "sampled": true says so; documents past a file's share are
    neither counted nor assigned."""
    check_splits(val_split, test_split)
    if sample_bytes is not None and (isinstance(sample_bytes, bool) or not isinstance(sample_bytes, int)
                                     or sample_bytes < 1):
        raise InputError(f"sample_bytes must be a positive whole number of bytes, got {sample_bytes!r}")
    sizes = []
    for path in files:
        try:
            sizes.append(os.path.getsize(path))
        except OSError as e:
            raise CorpusError(f"cannot read {path}: {e.strerror}") from None
    total = sum(sizes)
    sampled = sample_bytes is not None and sample_bytes < total
    budgets = [sample_bytes * s // total for s in sizes] if sampled else [None] * len(files)
    keys = file_keys(files)
    documents = {s: 0 for s in SPLITS}
    counter = {"bytes": 0}
    before = sum(tokenizer.word_counts.values())

    def fitted():
        for i, path in enumerate(files):
            if budgets[i] == 0:
                continue
            lines = _lines(path, budgets[i], counter)
            for number, doc in enumerate(split_lines(lines, unit, MAX_DOCUMENT_CHARS, str(path))):
                split = split_of((keys[i], number), val_split, test_split)
                documents[split] += 1
                if split != "test":
                    yield doc

    tokenizer.fit_on_texts(fitted())
    if not sum(documents.values()):
        raise CorpusError(f"the corpus ({len(files)} file(s)) is empty: no non-blank text"
                          + (" in the sample" if sampled else ""))
    stats = {"files": len(files), "bytes": total, "documents": documents,
             "tokens": sum(tokenizer.word_counts.values()) - before, "sampled": sampled,
             "bytes_read": counter["bytes"], "sample_bytes": sample_bytes if sampled else None}
    log.info("vocabulary: %d words from %d train + %d validation documents (%d bytes read%s)",
             len(tokenizer.word_counts), documents["train"], documents["val"], counter["bytes"],
             ", a sample" if sampled else "")
    return stats
