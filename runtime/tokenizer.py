"""The one tokenizer: a pure-Python twin of Keras' legacy `Tokenizer` (word level).

Training, export and the device all use this file, so a word gets the same id everywhere. Its
behaviour is pinned to Keras' by a differential test (tests/test_tokenizer_parity.py). It saves to
versioned JSON, never pickle.
"""

import json
import re
from collections import OrderedDict

from .bundle_files import load_json
from .errors import ArgumentTypeError, BundleInvalid, InputError
from .limits import (MAX_COUNT, MAX_FILTER_CHARS, MAX_SPLIT_CHARS, MAX_VOCAB_VALUES, MAX_VOCAB_WORDS,
                     MAX_WORD_CHARS, TAIL_BLOCK_CHARS)

DEFAULT_FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'
FORMAT = "nextword-tokenizer"
FORMAT_VERSION = 1
# Lone surrogates ('\ud800' in JSON) are the one thing refused inside words and settings: the exporter
# cannot write them (vocab.json is UTF-8) and no UTF-8 terminal or JSON reader can print them. Control
# characters, NUL included, are allowed: a corpus can hold them and Keras keeps all but \t and \n in
# words, so refusing them would refuse bundles the exporter makes; the CLI escapes them on output.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_surrogate(text):
    return not text.isascii() and _SURROGATE.search(text) is not None


def text_to_word_sequence(text, filters=DEFAULT_FILTERS, lower=True, split=" "):
    """Keras' splitting rule: lowercase, turn every filter character into `split`, split, drop empties."""
    if lower:
        text = text.lower()
    text = text.translate(str.maketrans({c: split for c in filters}))
    return [w for w in text.split(split) if w]


class Tokenizer:
    """Word -> id mapping ordered by count (ties in first-seen order); id 0 is padding, never a word."""

    def __init__(self, num_words=None, filters=DEFAULT_FILTERS, lower=True, split=" ", oov_token=None):
        if num_words is not None and (isinstance(num_words, bool) or not isinstance(num_words, int) or num_words < 1):
            raise InputError(f"num_words must be a positive integer or None, got {num_words!r}")
        if not isinstance(split, str) or split == "" or len(split) > MAX_SPLIT_CHARS:
            raise InputError(f"split must be a string of 1 to {MAX_SPLIT_CHARS} characters, got {_describe(split)}")
        if not isinstance(filters, str) or len(filters) > MAX_FILTER_CHARS:
            raise InputError(f"filters must be a string of at most {MAX_FILTER_CHARS} characters, got "
                             f"{type(filters).__name__} {_describe(filters)}")
        if oov_token is not None and (not isinstance(oov_token, str) or len(oov_token) > MAX_WORD_CHARS):
            raise InputError(f"oov_token must be None or a string of at most {MAX_WORD_CHARS} characters, got "
                             f"{type(oov_token).__name__} {_describe(oov_token)}")
        for name, text in (("split", split), ("filters", filters), ("oov_token", oov_token or "")):
            if _has_surrogate(text):
                raise InputError(f"{name} holds a lone surrogate (not a character UTF-8 can encode): {_describe(text)}")
        self.num_words = num_words
        self.filters = filters
        self.lower = bool(lower)
        self.split = split
        self.oov_token = oov_token
        self.document_count = 0
        self.word_counts = OrderedDict()
        self.word_index = {}
        self.index_word = {}
        self._oov_id = None
        self._vocab_size = 1
        self._translate = str.maketrans({c: split for c in filters})

    # -- fitting -----------------------------------------------------------------------------
    def words(self, text):
        """The words of one text, as Keras would split them."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        if self.lower:
            text = text.lower()
        return [w for w in text.translate(self._translate).split(self.split) if w]

    def fit_on_texts(self, texts):
        counts = self.word_counts
        for text in texts:
            self.document_count += 1
            for w in self.words(text):
                counts[w] = counts.get(w, 0) + 1
        self._build_index()
        return self

    def _build_index(self):
        ordered = sorted(self.word_counts.items(), key=lambda wc: wc[1], reverse=True)  # stable: ties keep first-seen order
        vocab = ([self.oov_token] if self.oov_token is not None else []) + [w for w, _ in ordered]
        # dict(zip(...)) exactly as Keras: a word equal to the OOV token keeps its first position, last id.
        self.word_index = dict(zip(vocab, range(1, len(vocab) + 1)))
        self.index_word = {i: w for w, i in self.word_index.items()}
        self._oov_id = self.word_index.get(self.oov_token) if self.oov_token is not None else None
        self._vocab_size = self._compute_vocab_size()

    # -- mapping -----------------------------------------------------------------------------
    @property
    def vocab_size(self):
        """Width of the model's input/output: ids 0 (padding) .. vocab_size-1; every id that
        `text_to_ids` can return is below it. Computed once per fit (it is read on hot paths)."""
        return self._vocab_size

    def _compute_vocab_size(self):
        full = max(self.index_word, default=0) + 1  # not len(word_index)+1: a word equal to the OOV token leaves id 1 unused
        size = min(full, self.num_words) if self.num_words else full
        oov = self._oov_id
        return max(size, oov + 1) if oov is not None else size  # the OOV id can be >= num_words (same case, or num_words=1)

    @property
    def oov_id(self):
        return self._oov_id if self.oov_token is not None else None

    def text_to_ids(self, text):
        """One text -> ids, dropping (or mapping to OOV) unknown words and ids >= num_words."""
        index, num_words, oov = self.word_index, self.num_words, self.oov_id
        out = []
        append = out.append
        for w in self.words(text):
            i = index.get(w)
            if i is not None:
                if num_words and i >= num_words:
                    if oov is not None:
                        append(oov)
                else:
                    append(i)
            elif self.oov_token is not None:
                append(oov)
        return out

    def texts_to_sequences(self, texts):
        return [self.text_to_ids(t) for t in texts]

    def ids_to_words(self, ids):
        index_word, num_words, oov = self.index_word, self.num_words, self.oov_id
        out = []
        for i in ids:
            w = index_word.get(i)
            if w is not None:
                if num_words and i >= num_words:
                    if oov is not None:
                        out.append(index_word[oov])
                else:
                    out.append(w)
            elif self.oov_token is not None:
                out.append(index_word[oov])
        return out

    def sequences_to_texts(self, sequences):
        return [" ".join(self.ids_to_words(seq)) for seq in sequences]

    def id_to_word_table(self):
        """A list indexed by id (0..vocab_size-1) for fast id -> word lookups; id 0 maps to ''."""
        size = self.vocab_size
        table = [""] * size
        for i, w in self.index_word.items():
            if i < size:
                table[i] = w
        return table

    # -- long texts: tokenize only what is needed, piece by piece -----------------------------
    # A text can be cut before position p without changing its words when the character at p-1 becomes
    # the separator (after lowercasing and filtering) and stops Python's one context rule of lower(),
    # the final sigma (a character neither cased nor case-ignorable). Multi-character separators that
    # can overlap themselves ("aa") make matches depend on where the scan starts: no cuts then.
    def _cut_pattern(self):
        """A compiled regex of the characters a text may be cut after, or None (no safe cut)."""
        if "_cut_re" not in self.__dict__:
            split = self.split
            if len(split) == 1:
                chars = set(self.filters) | {split}
            elif any(split[:k] == split[-k:] for k in range(1, len(split))):
                chars = set()      # a self-overlapping separator: word boundaries depend on the whole text
            else:
                chars = set(self.filters)
            ok = []
            for c in sorted(chars):
                low = c.lower() if self.lower else c
                if low.translate(self._translate) != split:
                    continue
                if self.lower and ("A" + c + "\u03a3").lower()[-1] != "\u03c3":   # cased or case-ignorable
                    continue
                ok.append(re.escape(c))
            self._cut_re = re.compile("[" + "".join(ok) + "]") if ok else None
        return self._cut_re

    def _cut_after(self, text, start, end):
        """The smallest p in (start, end) such that text may be cut before p, or None."""
        pattern = self._cut_pattern()
        m = pattern.search(text, start, end - 1) if pattern is not None and end - start > 1 else None
        return None if m is None else m.end()

    def tail_ids(self, text, n, block=TAIL_BLOCK_CHARS):
        """text_to_ids(text)[-n:] without tokenizing the whole text: blocks are tokenized from the end
        (each cut where the words cannot change) until n ids are found. A 100 MB text costs what
        its last few words cost. Falls back to the whole text when the tokenizer allows no cut."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be str, got {type(text).__name__}")
        if n <= 0:
            return []
        if len(text) <= block or self._cut_pattern() is None:
            return self.text_to_ids(text)[-n:]
        pieces, found, end = [], 0, len(text)
        while end > 0 and found < n:
            size = block
            while True:
                start = max(0, end - size)
                cut = 0 if start == 0 else self._cut_after(text, start, end)
                if cut is not None:
                    break
                size *= 2   # no safe cut in this block: take a longer one
            ids = self.text_to_ids(text[cut:end])
            pieces.append(ids)
            found += len(ids)
            end = cut
        out = [i for ids in reversed(pieces) for i in ids]
        return out[-n:]

    def iter_ids(self, text, block=TAIL_BLOCK_CHARS):
        """text_to_ids(text) in pieces, first to last (concatenated they are exactly text_to_ids(text)):
        a long text is never held as one list of ids nor lowercased as a whole."""
        for piece in self._blocks(text, block):
            ids = self.text_to_ids(piece)
            if ids:
                yield ids

    def iter_words(self, text, block=TAIL_BLOCK_CHARS):
        """words(text) in pieces, first to last, cut as iter_ids cuts: a book is never one list of words."""
        for piece in self._blocks(text, block):
            words = self.words(piece)
            if words:
                yield words

    def _blocks(self, text, block):
        """`text` in slices of about `block` characters, cut only where the words cannot change."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be str, got {type(text).__name__}")
        start, total = 0, len(text)
        while start < total:
            cut = self._cut_after(text, start + block - 1, total) if start + block < total else None
            cut = total if cut is None else cut
            yield text[start:cut]
            start = cut

    # -- persistence -------------------------------------------------------------------------
    def config(self):
        return {"num_words": self.num_words, "filters": self.filters, "lower": self.lower,
                "split": self.split, "oov_token": self.oov_token}

    def to_dict(self):
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "config": self.config(),
                "document_count": self.document_count, "vocab_size": self.vocab_size,
                "word_counts": [[w, c] for w, c in self.word_counts.items()]}

    def to_json(self):
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=0)

    @classmethod
    def from_dict(cls, data):
        """Rebuild from `to_dict` output; any shape error or bound crossed (runtime/limits.py,
        vocabulary fields) is a BundleInvalid naming the field."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise BundleInvalid(f"vocabulary: expected a JSON object with format {FORMAT!r}, got {_describe(data)}")
        if data.get("format_version") != FORMAT_VERSION:
            raise BundleInvalid(f"vocabulary: format_version {_describe(data.get('format_version'))} is not "
                                f"{FORMAT_VERSION}; re-export the bundle with this version of nextword")
        cfg, counts = data.get("config"), data.get("word_counts")
        if not isinstance(cfg, dict) or not isinstance(counts, list):
            raise BundleInvalid("vocabulary: 'config' must be an object and 'word_counts' a list")
        if len(counts) > MAX_VOCAB_WORDS:
            raise BundleInvalid(f"vocabulary: word_counts holds {len(counts)} words, more than the {MAX_VOCAB_WORDS} allowed")
        if not isinstance(cfg.get("lower"), bool):
            raise BundleInvalid(f"vocabulary: config 'lower' must be true or false, got {_describe(cfg.get('lower'))}")
        document_count = data.get("document_count", 0)
        if isinstance(document_count, bool) or not isinstance(document_count, int) or not 0 <= document_count <= MAX_COUNT:
            raise BundleInvalid(f"vocabulary: 'document_count' must be an integer from 0 to {MAX_COUNT}, "
                                f"got {_describe(document_count)}")
        try:
            tok = cls(**{k: cfg[k] for k in ("num_words", "filters", "lower", "split", "oov_token")})
        except KeyError as e:
            raise BundleInvalid(f"vocabulary: config lacks {e}") from None
        except (TypeError, InputError) as e:
            raise BundleInvalid(f"vocabulary: bad config ({e})") from None
        word_counts = tok.word_counts
        for i, pair in enumerate(counts):
            if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                    or isinstance(pair[1], bool) or not isinstance(pair[1], int)):
                raise BundleInvalid(f"vocabulary: word_counts[{i}] must be [word, count], got {_describe(pair)}")
            word, count = pair
            if not 1 <= len(word) <= MAX_WORD_CHARS or _has_surrogate(word):
                raise BundleInvalid(f"vocabulary: word_counts[{i}] must hold a word of 1 to {MAX_WORD_CHARS} "
                                    f"characters (no lone surrogates), got {len(word)} characters {_describe(word)}")
            if not 1 <= count <= MAX_COUNT:
                raise BundleInvalid(f"vocabulary: word_counts[{i}] count must be from 1 to {MAX_COUNT}, got {_describe(count)}")
            word_counts[word] = count
        if len(word_counts) != len(counts):
            raise BundleInvalid("vocabulary: a word appears twice in word_counts")
        tok.document_count = document_count
        tok._build_index()
        if "vocab_size" in data and data["vocab_size"] != tok.vocab_size:
            raise BundleInvalid(f"vocabulary: records vocab_size {_describe(data['vocab_size'])} but its words give "
                                f"{tok.vocab_size}; the file was edited or damaged")
        return tok

    @classmethod
    def from_json(cls, text):
        """From the JSON text (str or UTF-8 bytes) of a vocabulary file; at most MAX_VOCAB_VALUES
        JSON values are parsed, so a crafted file cannot cost gigabytes before its fields are read."""
        if isinstance(text, str):
            try:
                text = text.encode("utf-8")
            except UnicodeEncodeError as e:
                raise BundleInvalid(f"vocabulary is not valid text ({e})") from None
        if not isinstance(text, (bytes, bytearray)):
            raise BundleInvalid(f"vocabulary: expected JSON text, got {type(text).__name__}")
        return cls.from_dict(load_json(bytes(text), MAX_VOCAB_VALUES, "vocabulary"))

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def load(cls, path):
        with open(path, "rb") as f:
            return cls.from_json(f.read())


def _describe(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
