"""Words never suggested: a user's blocklist, given at load time (a file or a list of words) and
changed at run time (Predictor.block / unblock). One Blocklist is shared by everything that ranks
for a predictor (window top-k, generation, sessions' step model, completion), so a word blocked once
is gone from every answer. Words are normalised as the tokenizer writes them (lower-cased when it
lower-cases, surrounding whitespace removed). No default list of offensive words is shipped.

File format: UTF-8 text, one word a line; blank lines and lines starting with '#' are ignored;
at most MAX_BLOCKLIST_BYTES bytes and MAX_BLOCKLIST_WORDS words. An unreadable file, one that is not
UTF-8 or is too big, or a word longer than any vocabulary word is an InputError."""

import os
import threading

import numpy as np

from .errors import ArgumentTypeError, InputError
from .limits import MAX_BLOCKLIST_BYTES, MAX_BLOCKLIST_WORDS, MAX_WORD_CHARS
from .terminal import escape


def read_file(path):
    """The words of a blocklist file (not yet normalised)."""
    shown = escape(os.fsdecode(path))
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BLOCKLIST_BYTES + 1)
    except OSError as e:
        raise InputError(f"blocklist {shown}: cannot read it ({e.strerror or e})") from None
    if len(raw) > MAX_BLOCKLIST_BYTES:
        raise InputError(f"blocklist {shown}: more than {MAX_BLOCKLIST_BYTES} bytes; a blocklist is one word a line")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"blocklist {shown}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    words = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(line) > MAX_WORD_CHARS:
            raise InputError(f"blocklist {shown}: line {number} is {len(line)} characters, longer than any word "
                             f"({MAX_WORD_CHARS}); the file is one word a line")
        words.append(line)
        if len(words) > MAX_BLOCKLIST_WORDS:
            raise InputError(f"blocklist {shown}: more than {MAX_BLOCKLIST_WORDS} words")
    return words


def check_words(words):
    """`words` (one str, or an iterable of str) as a list; blank entries dropped."""
    if isinstance(words, str):
        words = [words]
    elif isinstance(words, (bytes, bytearray)) or not hasattr(words, "__iter__"):
        raise ArgumentTypeError(f"words must be a str or an iterable of str, got {type(words).__name__}")
    out = []
    for w in words:
        if not isinstance(w, str):
            raise ArgumentTypeError(f"words must be str, got {type(w).__name__} {escape(repr(w))[:60]}")
        w = w.strip()
        if not w:
            continue
        if len(w) > MAX_WORD_CHARS:
            raise InputError(f"a blocked word must be at most {MAX_WORD_CHARS} characters, got {len(w)}")
        out.append(w)
        if len(out) > MAX_BLOCKLIST_WORDS:
            raise InputError(f"at most {MAX_BLOCKLIST_WORDS} words can be blocked")
    return out


class Blocklist:
    """The blocked words of one predictor. `ids` (the model ids of blocked in-model words) and `words`
    are replaced as a whole on each change, so a reader in another thread sees the old or the new
    set, never half of one."""

    def __init__(self, tokenizer, vocab_size):
        self._tokenizer = tokenizer
        self._vocab_size = vocab_size
        self._lock = threading.Lock()
        self.words = frozenset()
        self.ids = np.empty(0, dtype=np.int64)
        self.version = 0

    def normalise(self, word):
        word = word.strip()
        return word.lower() if self._tokenizer.lower else word

    def _set(self, words):
        tok = self._tokenizer
        oov = tok.oov_id
        ids = sorted({i for i in (tok.word_index.get(w) for w in words)
                      if i is not None and 0 < i < self._vocab_size and i != oov})
        self.ids = np.array(ids, dtype=np.int64)
        self.words = frozenset(words)
        self.version += 1

    def block(self, words):
        """Block `words` (a str or an iterable of str). Returns how many were not blocked before."""
        new = {self.normalise(w) for w in check_words(words)}
        with self._lock:
            added = new - self.words
            if len(self.words) + len(added) > MAX_BLOCKLIST_WORDS:
                raise InputError(f"at most {MAX_BLOCKLIST_WORDS} words can be blocked; {len(self.words)} are, "
                                 f"{len(added)} more were asked for")
            if added:
                self._set(self.words | added)
        return len(added)

    def unblock(self, words):
        """Unblock `words`. Returns how many were blocked."""
        gone = {self.normalise(w) for w in check_words(words)} & self.words
        with self._lock:
            gone &= self.words
            if gone:
                self._set(self.words - gone)
        return len(gone)

    def __contains__(self, word):
        return word in self.words

    def __len__(self):
        return len(self.words)
