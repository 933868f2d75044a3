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
words of a prefix are one contiguous range found by two bisections. A keystroke then scores its range
(small ranges whole; large ones as their in-model words plus the first lexicon-only words in count
order, which is the same in every context), so it never costs a pass over a 100k-word lexicon. The
next-word distribution is cached per context (LRU, runtime/limits.py), so typing inside a word costs
no model call. The typed prefix is matched case-insensitively.

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
SMALL_RANGE = 2048      # a prefix range up to this many words is scored whole (~20 us); larger ones in two parts
LEXICON_CHUNK = 4096    # lexicon-only words looked at per step when a large range is scanned in count order
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


def probabilities(logits):
    """Softmax of one row of logits as Predictor.probabilities computes it (float32), then float64."""
    return softmax(np.asarray(logits, dtype=np.float32)).astype(np.float64)


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
        index = tokenizer.word_index
        words = [w for w in tokenizer.word_counts if index.get(w, oov) != oov]   # a word equal to the OOV token is it
        keys = [w.lower() for w in words]
        order = sorted(range(len(words)), key=keys.__getitem__)   # equal keys (lower=False) in any order: ties use ids
        self.keys = [keys[j] for j in order]
        self.words = [words[j] for j in order]
        self.ids = np.array([index[w] for w in self.words], dtype=np.int64)
        counts = np.array([float(tokenizer.word_counts[w]) for w in self.words], dtype=np.float64)
        self.model = self.ids < vocab_size
        self.model_ids = np.where(self.model, self.ids, 0)
        lexicon = ~self.model
        self.lexicon_only = int(lexicon.sum())
        total = counts[lexicon].sum()
        self.share = np.where(lexicon, counts / total, 0.0) if total > 0 else np.zeros(len(words))
        self.oov = oov if oov is not None and oov < vocab_size else None
        self.position = {w: j for j, w in enumerate(self.words)}
        self.model_pos = np.flatnonzero(self.model)                       # in-model words, index order
        self.lexicon_pos = np.flatnonzero(lexicon)
        self.lexicon_pos = self.lexicon_pos[np.argsort(self.ids[self.lexicon_pos], kind="stable")]   # by count
        self._no_block = np.zeros(len(words), dtype=bool)
        self._blocked = (None, self._no_block)

    def __len__(self):
        return len(self.words)

    def range(self, key):
        """[lo, hi): the positions of the words whose key starts with `key`."""
        keys = self.keys
        lo = bisect.bisect_left(keys, key)
        after = _after(key)
        hi = len(keys) if after is None else bisect.bisect_left(keys, after, lo)
        return lo, hi

    def _scores(self, p, pos):
        """The probabilities of the words at index positions `pos` given the next-word distribution
        `p` (float64, one per model id): the model's for in-model words, the OOV share for
        lexicon-only ones (0 when there is no OOV token)."""
        s = p[self.model_ids[pos]]
        lexical = ~self.model[pos]
        if lexical.any():
            s[lexical] = p[self.oov] * self.share[pos[lexical]] if self.oov is not None else 0.0
        return s

    def blocked_mask(self, blocklist):
        """A bool per index position: blocked now (recomputed when the blocklist changes)."""
        if blocklist is None:
            return self._no_block
        found = self._blocked
        if found[0] != blocklist.version:
            version, words = blocklist.version, blocklist.words
            mask = np.zeros(len(self.words), dtype=bool)
            mask[[self.position[w] for w in words if w in self.position]] = True
            found = self._blocked = (version, mask)
        return found[1]

    def _top(self, pos, s, k):
        """The k best of positions `pos` with scores `s` (blocked ones already < 0): probability
        first, rank id on ties; returns (positions, scores), best first."""
        n = len(pos)
        if n > k:
            kth = np.partition(s, n - k)[n - k]
            greater = np.flatnonzero(s > kth)
            tied = np.flatnonzero(s == kth)
            need = k - len(greater)
            if len(tied) > need:
                tied = tied[np.argpartition(self.ids[pos[tied]], need - 1)[:need]]
            keep = np.concatenate([greater, tied])
            pos, s = pos[keep], s[keep]
        ok = s >= 0
        pos, s = pos[ok], s[ok]
        order = np.lexsort((self.ids[pos], -s))[:k]
        return pos[order], s[order]

    def best(self, p, lo, hi, k, blocked):
        """The k best words in [lo, hi) given the next-word distribution `p` (float64 by model id)
        and the blocked mask: (index positions, probabilities), best first.
        A small range is scored whole. A large one (the empty prefix, one letter at a big lexicon)
        is taken in two parts, so a keystroke never costs a pass over every word: the in-model words
        of the range (at most vocab_size), and the lexicon-only words in count order (the same for
        every context: they all share one OOV probability), scanned until k are found."""
        if hi - lo <= SMALL_RANGE:
            pos = np.arange(lo, hi)
            s = self._scores(p, pos)
            s[blocked[lo:hi]] = -1.0
            return self._top(pos, s, k)
        a, b = np.searchsorted(self.model_pos, [lo, hi])
        pos = self.model_pos[a:b]
        s = p[self.ids[pos]]
        s[blocked[pos]] = -1.0
        pos, s = self._top(pos, s, k)
        found = []
        lexical = self.lexicon_pos
        for i in range(0, len(lexical), LEXICON_CHUNK):
            chunk = lexical[i:i + LEXICON_CHUNK]
            chunk = chunk[(chunk >= lo) & (chunk < hi)]
            chunk = chunk[~blocked[chunk]]
            found.append(chunk[:k])
            k_found = sum(len(f) for f in found)
            if k_found >= k:
                break
        if found:
            extra = np.concatenate(found)[:k]
            pos = np.concatenate([pos, extra])
            s = np.concatenate([s, self._scores(p, extra)])
        return self._top(pos, s, k)


class Completer:
    """Completion for one predictor: the prefix index (built on first use), the bundle's display
    forms, the shared blocklist and an LRU cache of next-word distributions keyed by context ids."""

    def __init__(self, bundle, vocab_size, blocklist=None):
        self.bundle = bundle
        self.tokenizer = bundle.tokenizer
        self.vocab_size = vocab_size
        self.blocklist = blocklist
        self._index = None
        self._lock = threading.Lock()
        self._cache = collections.OrderedDict()
        self._cache_size = max(1, min(MAX_COMPLETE_CACHE, MAX_COMPLETE_CACHE_BYTES // (8 * vocab_size)))
        bounds = set(self.tokenizer.filters) | set(self.tokenizer.split)
        self._bounds = frozenset(bounds)

    def index(self):
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = PrefixIndex(self.tokenizer, self.vocab_size)
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
        if last not in SENTENCE_ENDS:
            return False
        if last != ".":
            return True
        j = len(t) - 1
        i = j
        while i > max(0, j - MAX_WORD_CHARS - 1) and not self._boundary(t[i - 1]):
            i -= 1
        word = t[i:j]
        if self.tokenizer.lower:
            word = word.lower()
        return not (word and self.lexicon().is_abbreviation(word))

    # -- distributions -----------------------------------------------------------------------------
    def distribution(self, key, logits):
        """The next-word probabilities (float64 by model id) for context `key` (hashable), from
        `logits()` on a cache miss; the last MAX_COMPLETE_CACHE contexts are kept."""
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
                return found
        s = probabilities(logits())
        with self._lock:
            self._cache[key] = s
            self._cache.move_to_end(key)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return s

    # -- answers -----------------------------------------------------------------------------------
    def suggest(self, prefix, k, distribution, sentence_start):
        """The k best Suggestions for `prefix`; `distribution()` gives the next-word probabilities
        (called only when some word has the prefix)."""
        index = self.index()
        if len(prefix) > MAX_WORD_CHARS:
            return []
        lo, hi = index.range(prefix.lower())
        if lo >= hi:
            return []
        positions, probs = index.best(distribution(), lo, hi, k, index.blocked_mask(self.blocklist))
        lexicon = self.lexicon()
        out = []
        for j, p in zip(positions.tolist(), probs.tolist()):
            word = index.words[j]
            display = lexicon.display(word)
            if sentence_start:
                display = display[:1].upper() + display[1:]
            out.append(Suggestion(word, display, p, "model" if index.model[j] else "lexicon"))
        return out
