"""Word completion: the k most probable words that begin with what was typed of the current word.

Which words: every word of the tokenizer (vocab.json's word_counts), not only the model's capped
vocabulary. A word whose id is below vocab_size is *in the model* and gets the model's next-word
probability. The others are *lexicon-only*: they are what the model saw as the OOV token, so they
share the OOV token's probability in proportion to their counts,
p(w) = p(OOV) * count(w) / (sum of the counts of all lexicon-only words). A bundle without an OOV
token gives them no probability (0): they come after every model word, most frequent first. Padding
and the OOV token itself are never suggested, nor any word of the predictor's blocklist. Ties are
broken by the tokenizer's rank id (the more frequent word first).

The prefix index: every word's search key (the word lower-cased), sorted once per predictor, so the
words of a prefix are one contiguous range found by two bisections. For each next-word distribution
the scores of all words are laid out in that order once (one numpy gather, cached per context), and a
keystroke costs a partition of its range. The typed prefix is matched case-insensitively.

Text analysis (Predictor.complete): the text before the cursor ends inside a word when its last
character is neither whitespace nor a filter (or split) character of the tokenizer; that last run of
characters is the prefix and the words before it are the context. Otherwise the prefix is empty
(next-word suggestions). Display forms come from the bundle's lexicon (runtime/lexicon.py); at a
sentence start (the text's start, or after . ! ? -- but not after the period of an abbreviation such
as "Mr.") the first letter is capitalised. Closing quotes and brackets between the sentence end and
the word are skipped. Numbers and punctuation are not changed: they are shown as the tokenizer
wrote them (the default filters remove punctuation from words)."""

import bisect
import collections
import threading
from typing import NamedTuple

import numpy as np

from .errors import ArgumentTypeError, InputError, check_int
from .limits import MAX_COMPLETE_CACHE, MAX_COMPLETE_CACHE_BYTES, MAX_COMPLETE_K, MAX_WORD_CHARS, TAIL_BLOCK_CHARS
from .ranking import softmax

SENTENCE_ENDS = ".!?"
# skipped between a sentence end and the next word: whitespace (every character str.isspace() takes,
# spelled out so str.rstrip strips them at C speed) and closing or opening quotes and brackets
WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
              "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
SKIPPED = WHITESPACE + "\"')]}»«“”‘’"


class Suggestion(NamedTuple):
    """One completion: `word` as the tokenizer writes it, `display` as a person expects to see it,
    its `probability` as the next word, and its `source`: "model" or "lexicon" (beyond the model's
    vocabulary, ranked within the OOV mass)."""
    word: str
    display: str
    probability: float
    source: str

    def to_dict(self):
        return {"word": self.word, "display": self.display, "probability": self.probability, "source": self.source}


def check_k(k):
    k = check_int("k", k, 1)
    if k > MAX_COMPLETE_K:
        raise InputError(f"k must be at most {MAX_COMPLETE_K}, got {k}")
    return k


def check_prefix(prefix):
    if not isinstance(prefix, str):
        raise ArgumentTypeError(f"prefix must be str, got {type(prefix).__name__}")
    return prefix


def _after(prefix):
    """The smallest string greater than every string that starts with `prefix` (None: no bound)."""
    while prefix and ord(prefix[-1]) >= 0x10FFFF:
        prefix = prefix[:-1]
    return prefix[:-1] + chr(ord(prefix[-1]) + 1) if prefix else None


class PrefixIndex:
    """Every word of a tokenizer (but the OOV token), sorted by search key, with the arrays ranking needs."""

    def __init__(self, tokenizer, vocab_size):
        oov = tokenizer.oov_id
        entries = []
        for word, count in tokenizer.word_counts.items():
            i = tokenizer.word_index.get(word)
            if i is None or i == oov:   # a word equal to the OOV token is the OOV token
                continue
            entries.append((word.lower(), i, word, count))
        entries.sort()
        self.keys = [e[0] for e in entries]
        self.words = [e[2] for e in entries]
        self.ids = np.array([e[1] for e in entries], dtype=np.int64)
        counts = np.array([float(e[3]) for e in entries], dtype=np.float64)
        self.model = self.ids < vocab_size
        self.model_ids = np.where(self.model, self.ids, 0)
        lexicon = ~self.model
        self.lexicon_only = int(lexicon.sum())
        total = counts[lexicon].sum()
        self.share = np.where(lexicon, counts / total, 0.0) if total > 0 else np.zeros(len(entries))
        self.oov = oov if oov is not None and oov < vocab_size else None
        self.position = {w: j for j, w in enumerate(self.words)}
        self._blocked_version, self._blocked = None, np.empty(0, dtype=np.int64)

    def __len__(self):
        return len(self.words)

    def range(self, key):
        """[lo, hi): the positions of the words whose key starts with `key`."""
        keys = self.keys
        lo = bisect.bisect_left(keys, key)
        after = _after(key)
        hi = len(keys) if after is None else bisect.bisect_left(keys, after, lo)
        return lo, hi

    def scores(self, probabilities):
        """Each word's probability as the next word, in index order (float64): the model's for
        in-model words, the OOV share for lexicon-only ones (0 when there is no OOV token)."""
        p = np.asarray(probabilities, dtype=np.float64)
        s = p[self.model_ids]
        if self.oov is not None:
            np.copyto(s, p[self.oov] * self.share, where=~self.model)
        else:
            s[~self.model] = 0.0
        return s

    def blocked_positions(self, blocklist):
        """Sorted index positions of the blocked words (recomputed when the blocklist changes)."""
        if blocklist is None:
            return self._blocked
        version = blocklist.version
        if version != self._blocked_version:
            words = blocklist.words
            found = sorted(self.position[w] for w in words if w in self.position)
            self._blocked, self._blocked_version = np.array(found, dtype=np.int64), version
        return self._blocked

    def best(self, scores, lo, hi, k, blocked):
        """Index positions of the k best words in [lo, hi): probability first, rank id on ties."""
        seg = scores[lo:hi]
        a, b = np.searchsorted(blocked, [lo, hi])
        if b > a:
            seg = seg.copy()
            seg[blocked[a:b] - lo] = -1.0
        ids = self.ids[lo:hi]
        n = hi - lo
        if n > k:
            kth = np.partition(seg, n - k)[n - k]
            greater = np.flatnonzero(seg > kth)
            tied = np.flatnonzero(seg == kth)
            need = k - len(greater)
            if len(tied) > need:
                tied = tied[np.argpartition(ids[tied], need - 1)[:need]]
            cand = np.concatenate([greater, tied])
        else:
            cand = np.arange(n)
        cand = cand[seg[cand] >= 0]
        order = cand[np.lexsort((ids[cand], -seg[cand]))][:k]
        return order + lo, seg[order]


class Completer:
    """Completion for one predictor: the prefix index (built on first use), the bundle's display
    forms, the shared blocklist and an LRU cache of next-word distributions (as index-ordered
    scores) keyed by context ids."""

    def __init__(self, bundle, vocab_size, blocklist=None):
        self.bundle = bundle
        self.tokenizer = bundle.tokenizer
        self.vocab_size = vocab_size
        self.blocklist = blocklist
        self._index = None
        self._lock = threading.Lock()
        self._cache = collections.OrderedDict()
        self._cache_size = None
        bounds = set(self.tokenizer.filters) | set(self.tokenizer.split)
        self._bounds = frozenset(bounds)

    def index(self):
        if self._index is None:
            with self._lock:
                if self._index is None:
                    index = PrefixIndex(self.tokenizer, self.vocab_size)
                    self._cache_size = max(1, min(MAX_COMPLETE_CACHE, MAX_COMPLETE_CACHE_BYTES // max(1, 8 * len(index))))
                    self._index = index
        return self._index

    def lexicon(self):
        return self.bundle.lexicon()

    # -- text ------------------------------------------------------------------------------------
    def _boundary(self, c):
        return c.isspace() or c in self._bounds

    def split(self, text):
        """(context, prefix) of the text before the cursor, or None when its last word is longer than
        any word can be (no completion can match)."""
        end = len(text)
        stop = max(0, end - MAX_WORD_CHARS - 1)
        i = end
        while i > stop and not self._boundary(text[i - 1]):
            i -= 1
        if i == stop and stop > 0:
            return None
        return text[:i], text[i:]

    def sentence_start(self, text):
        """Whether a word typed after `text` starts a sentence (see the module docstring)."""
        tail = text[-TAIL_BLOCK_CHARS:]
        t = tail.rstrip(SKIPPED)
        if not t and len(text) > len(tail):   # a very long run of whitespace: look at the whole text
            t = text.rstrip(SKIPPED)
        if not t:
            return True
        last = t[-1]
        if last in "!?":
            return True
        if last != ".":
            return False
        j = len(t) - 1
        i = j
        while i > max(0, j - MAX_WORD_CHARS - 1) and not self._boundary(t[i - 1]):
            i -= 1
        word = t[i:j]
        if self.tokenizer.lower:
            word = word.lower()
        return not (word and self.lexicon().is_abbreviation(word))

    # -- distributions -----------------------------------------------------------------------------
    def scores(self, key, logits):
        """Index-ordered scores for context `key` (hashable), from `logits()` on a cache miss."""
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        index = self.index()
        s = index.scores(softmax(np.asarray(logits(), dtype=np.float32)))
        with self._lock:
            self._cache[key] = s
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return s

    # -- answers -----------------------------------------------------------------------------------
    def suggest(self, prefix, k, scores, sentence_start):
        """The k best Suggestions for `prefix`; `scores()` gives the distribution (called only when
        some word has the prefix)."""
        index = self.index()
        if len(prefix) > MAX_WORD_CHARS:
            return []
        lo, hi = index.range(prefix.lower())
        if lo >= hi:
            return []
        s = scores()
        positions, probs = index.best(s, lo, hi, k, index.blocked_positions(self.blocklist))
        lexicon = self.lexicon()
        out = []
        for j, p in zip(positions.tolist(), probs.tolist()):
            word = index.words[j]
            display = lexicon.display(word)
            if sentence_start:
                display = display[:1].upper() + display[1:]
            out.append(Suggestion(word, display, p, "model" if index.model[j] else "lexicon"))
        return out
