"""What a user types, remembered: a small bounded language model over WORD STRINGS (as the bundle's
tokenizer writes them, so words outside the bundle's vocabulary become known too).

Three parts, each a distribution over the words learnt:

- unigram: decayed counts of each word;
- bigram: decayed counts of (previous word, word), used when the previous word was seen before
  another word;
- recency cache: the last MAX_USER_CACHE words learnt, each position weighing the same (the
  continuous cache of Grave et al. 2017 in its simplest form, a unigram over recent words, as
  Kuhn & De Mori's 1990 cache): a word typed a moment ago gets a boost.

    p_user(w | prev) = (BIGRAM_WEIGHT p_bi(w | prev) + UNIGRAM_WEIGHT p_uni(w) + CACHE_WEIGHT p_cache(w)) / (sum of
                        the weights of the parts that exist for this context)

Decay: every count halves after HALF_LIFE_WORDS more words are learnt (older text weighs less; at
a few hundred words typed a day that is about a month). It costs nothing per word: counts are stored
in units that grow by 2 ** (1 / HALF_LIFE_WORDS) a word, rescaled now and then; only ratios are read.

Bounds (runtime/limits.py): at most MAX_USER_WORDS words and MAX_USER_BIGRAMS pairs; past either,
the lowest decayed counts are dropped down to PRUNE_TO of the bound (words in the recency cache are
kept; a dropped word's pairs go with it). Words longer than MAX_WORD_CHARS are not learnt.

Forgetting: forget(word) removes the word from every part and adds it to the *forgotten* set, which
masks it in the session's suggestions even when the bundle's model knows it; learning the word again
(typing it) takes it out of that set. reset() clears everything, the forgotten set too."""

import bisect
import collections

import numpy as np

from .errors import ArgumentTypeError, InputError, check_int
from .limits import MAX_USER_BIGRAMS, MAX_USER_CACHE, MAX_USER_FORGOTTEN, MAX_USER_WORDS, MAX_WORD_CHARS

HALF_LIFE_WORDS = 20_000      # a count halves after this many more words learnt
BIGRAM_WEIGHT = 0.5           # the user model's parts (renormalised over those a context has)
UNIGRAM_WEIGHT = 0.2
CACHE_WEIGHT = 0.3
USER_WEIGHT = 0.25            # mu: suggestions are (1 - mu) p_model + mu p_user (runtime/learning.py), at the start
USER_WEIGHT_RANGE = (0.05, 0.9)   # mu adapts to how well each part predicted the words typed, within this range
USER_WEIGHT_RATE = 0.02       # ... by this share of the evidence per word typed (a memory of ~50 words)
PRUNE_TO = 0.9                # past a bound, keep this share of it (pruning is amortised, not per word)
_RESCALE_AT = 256.0           # half-lives between rescales of the stored counts (2 ** 256 is far from overflow)


def _after(key):
    """The smallest string greater than every string that starts with `key` (None: no bound)."""
    while key and ord(key[-1]) >= 0x10FFFF:
        key = key[:-1]
    return key[:-1] + chr(ord(key[-1]) + 1) if key else None


class UserModel:
    """The user model of one session (see the module docstring). `tokenizer` gives the settings words
    are normalised with (lower, filters, split) and the ids of the words it knows."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.settings = {"lower": tokenizer.lower, "filters": tokenizer.filters, "split": tokenizer.split}
        self.reset()

    # -- state -------------------------------------------------------------------------------
    def reset(self):
        """Forget everything learnt, and the forgotten set."""
        self._slot = {}                      # word -> slot
        self._words = []                     # slot -> word (None: free)
        self._free = []
        self._uni = np.zeros(64, dtype=np.float64)
        self._tid = np.zeros(64, dtype=np.int64)   # slot -> tokenizer id (0: not a word of the tokenizer)
        self._bi = {}                        # prev slot -> {slot: stored count}
        self._bi_total = {}                  # prev slot -> sum of its pairs
        self._into = {}                      # slot -> set of prev slots it has a pair with
        self._pairs = 0
        self._cache = collections.deque(maxlen=MAX_USER_CACHE)   # slots, oldest first
        self._cache_count = collections.Counter()
        self._keys, self._key_words = [], []  # search keys (lower-cased words), sorted; the word of each
        self._key_slots = []                 # ... and its slot
        self._slot_array = (None, None)      # (words version, np.array of _key_slots)
        self._words_version = 0
        self._t = 0.0                        # words learnt since the counts' time origin
        self._total = 0.0
        self.learnt = 0                      # words learnt in all (informative)
        self.forgotten = frozenset()
        self.version = getattr(self, "version", 0) + 1   # bumped on every change, never back (caches key on it)

    def __len__(self):
        return len(self._slot)

    def __contains__(self, word):
        return word in self._slot

    @property
    def pairs(self):
        return self._pairs

    def words(self):
        """The words learnt, sorted by search key."""
        return list(self._key_words)

    def cache(self):
        """The recency cache, oldest first."""
        return [self._words[s] for s in self._cache]

    def _unit(self):
        return 2.0 ** (self._t / HALF_LIFE_WORDS)

    def count(self, word):
        """The decayed count of `word` (0.0 if not learnt): 1 for a word learnt just now."""
        s = self._slot.get(word)
        return 0.0 if s is None else float(self._uni[s] / self._unit())

    def pair_count(self, prev, word):
        s, p = self._slot.get(word), self._slot.get(prev)
        if s is None or p is None:
            return 0.0
        return float(self._bi.get(p, {}).get(s, 0.0) / self._unit())

    def normalise(self, word):
        """`word` as the tokenizer writes it (InputError if it is not one word)."""
        if not isinstance(word, str):
            raise ArgumentTypeError(f"word must be str, got {type(word).__name__}")
        if len(word) > 4 * MAX_WORD_CHARS:   # lower() can grow a word; beyond this it cannot be one word
            raise InputError(f"expected one word of at most {MAX_WORD_CHARS} characters, got {len(word)} characters")
        found = self.tokenizer.words(word)
        if len(found) == 1 and len(found[0]) > MAX_WORD_CHARS:
            raise InputError(f"expected one word of at most {MAX_WORD_CHARS} characters, got {len(found[0])} characters")
        if len(found) != 1:
            raise InputError(f"expected one word, got {len(found)} words in {word[:60]!r}")
        return found[0]

    # -- learning ----------------------------------------------------------------------------
    def _add_word(self, word):
        if self._free:
            s = self._free.pop()
            self._words[s] = word
        else:
            s = len(self._words)
            self._words.append(word)
            if s >= len(self._uni):
                self._uni = np.concatenate([self._uni, np.zeros(len(self._uni))])
                self._tid = np.concatenate([self._tid, np.zeros(len(self._tid), dtype=np.int64)])
        self._slot[word] = s
        self._uni[s] = 0.0
        self._tid[s] = self.tokenizer.word_index.get(word, 0)
        key = word.lower()
        i = bisect.bisect_left(self._keys, key)
        self._keys.insert(i, key)
        self._key_words.insert(i, word)
        self._key_slots.insert(i, s)
        self._words_version += 1
        return s

    def _drop_word(self, word):
        s = self._slot.pop(word)
        self._total -= self._uni[s]
        self._uni[s] = 0.0
        self._words[s] = None
        self._free.append(s)
        key = word.lower()
        i = bisect.bisect_left(self._keys, key)
        while self._key_words[i] != word:
            i += 1
        del self._keys[i], self._key_words[i], self._key_slots[i]
        self._words_version += 1
        for nxt in self._bi.pop(s, {}):
            self._pairs -= 1
            self._into[nxt].discard(s)
        self._bi_total.pop(s, None)
        for p in self._into.pop(s, ()):
            row = self._bi.get(p)
            c = row.pop(s, None) if row is not None else None
            if c is not None:
                self._pairs -= 1
                self._bi_total[p] -= c
                if not row:
                    del self._bi[p], self._bi_total[p]
        if s in self._cache_count:
            self._cache = collections.deque((x for x in self._cache if x != s), maxlen=MAX_USER_CACHE)
            del self._cache_count[s]

    def learn(self, words, prev=None):
        """Learn `words` (a list of word strings as the tokenizer writes them), in order; `prev` is
        the word typed before the first (for its pair), or None. Returns how many were learnt."""
        unit = self._unit()
        step = 2.0 ** (1.0 / HALF_LIFE_WORDS)
        p = self._slot.get(prev) if prev is not None else None
        n = 0
        forgotten = self.forgotten
        for word in words:
            if len(word) > MAX_WORD_CHARS:
                p = None
                continue
            if word in forgotten:
                forgotten = forgotten - {word}
            s = self._slot.get(word)
            if s is None:
                s = self._add_word(word)
            self._t += 1.0
            unit *= step
            self._uni[s] += unit
            self._total += unit
            if p is not None:
                row = self._bi.setdefault(p, {})
                if s not in row:
                    self._pairs += 1
                    self._into.setdefault(s, set()).add(p)
                row[s] = row.get(s, 0.0) + unit
                self._bi_total[p] = self._bi_total.get(p, 0.0) + unit
            if len(self._cache) == self._cache.maxlen:
                old = self._cache[0]
                self._cache_count[old] -= 1
                if not self._cache_count[old]:
                    del self._cache_count[old]
            self._cache.append(s)
            self._cache_count[s] += 1
            p = s
            n += 1
            if self._t >= _RESCALE_AT * HALF_LIFE_WORDS:
                self._rescale()
                unit = self._unit()
            if len(self._slot) > MAX_USER_WORDS:
                self._prune_words(int(MAX_USER_WORDS * PRUNE_TO))
                if p is not None and self._words[p] is None:   # cannot happen: cache words are kept
                    p = None
            if self._pairs > MAX_USER_BIGRAMS:
                self._prune_pairs(int(MAX_USER_BIGRAMS * PRUNE_TO))
        self.forgotten = forgotten
        self.learnt += n
        if n:
            self.version += 1
        return n

    def _rescale(self):
        """Divide every stored count by the current unit and move the time origin to now."""
        unit = self._unit()
        self._uni /= unit
        for p, row in self._bi.items():
            for s in row:
                row[s] /= unit
            self._bi_total[p] = sum(row.values())
        self._total = float(self._uni.sum())
        self._t = 0.0

    def _prune_words(self, keep):
        """Drop the words of lowest decayed count (never one in the recency cache) down to `keep`."""
        live = np.array(list(self._slot.values()), dtype=np.int64)
        protected = np.array([s in self._cache_count for s in live.tolist()], dtype=bool)
        candidates = live[~protected]
        drop = len(live) - keep
        if drop <= 0 or not len(candidates):
            return
        drop = min(drop, len(candidates))
        order = np.argsort(self._uni[candidates], kind="stable")[:drop]
        for s in candidates[order].tolist():
            self._drop_word(self._words[s])
        self._total = float(self._uni[[s for s in self._slot.values()]].sum()) if self._slot else 0.0
        self.version += 1

    def _prune_pairs(self, keep):
        """Drop the pairs of lowest decayed count down to `keep`."""
        rows = [(c, p, s) for p, row in self._bi.items() for s, c in row.items()]
        drop = len(rows) - keep
        if drop <= 0:
            return
        counts = np.array([r[0] for r in rows])
        for i in np.argpartition(counts, drop - 1)[:drop].tolist():
            _, p, s = rows[i]
            row = self._bi[p]
            del row[s]
            self._into[s].discard(p)
            self._pairs -= 1
            if not row:
                del self._bi[p], self._bi_total[p]
        for p, row in self._bi.items():
            self._bi_total[p] = sum(row.values())
        self.version += 1

    def forget(self, word):
        """Remove `word` (normalised as the tokenizer writes it) from every part and mask it from
        suggestions until it is learnt again. Returns whether it had been learnt."""
        word = self.normalise(word)
        known = word in self._slot
        if known:
            self._drop_word(word)
        if word not in self.forgotten:
            if len(self.forgotten) >= MAX_USER_FORGOTTEN:
                raise InputError(f"at most {MAX_USER_FORGOTTEN} words can be forgotten at once; "
                                 "reset_learning() clears them")
            self.forgotten = self.forgotten | {word}
        self.version += 1
        return known

    # -- answers -----------------------------------------------------------------------------
    def slots(self):
        """The slots of every word learnt, in search-key order (an int64 array, cached until a word
        is added or dropped)."""
        version, arr = self._slot_array
        if version != self._words_version:
            arr = np.array(self._key_slots, dtype=np.int64)
            self._slot_array = (self._words_version, arr)
        return arr

    def slot(self, word):
        return self._slot.get(word)

    def word_at(self, slot):
        return self._words[slot]

    def token_ids(self, slots):
        """The tokenizer ids of the words at `slots` (0: a word the tokenizer does not know)."""
        return self._tid[slots]

    def vector(self, prev):
        """p_user(. | prev) by slot (float64, as long as the slot table; free slots 0). All zeros
        when nothing is learnt."""
        n = len(self._words)
        out = np.zeros(n, dtype=np.float64)
        parts = 0.0
        if self._total > 0:
            out += UNIGRAM_WEIGHT * (self._uni[:n] / self._total)
            parts += UNIGRAM_WEIGHT
        p = self._slot.get(prev) if prev is not None else None
        row = self._bi.get(p) if p is not None else None
        if row:
            total = self._bi_total[p]
            idx = np.fromiter(row.keys(), dtype=np.int64, count=len(row))
            val = np.fromiter(row.values(), dtype=np.float64, count=len(row))
            out[idx] += BIGRAM_WEIGHT * (val / total)
            parts += BIGRAM_WEIGHT
        if self._cache:
            m = len(self._cache)
            idx = np.fromiter(self._cache_count.keys(), dtype=np.int64, count=len(self._cache_count))
            val = np.fromiter(self._cache_count.values(), dtype=np.float64, count=len(self._cache_count))
            out[idx] += CACHE_WEIGHT * (val / m)
            parts += CACHE_WEIGHT
        return out / parts if parts else out

    def probs(self, prev, words):
        """p_user(w | prev) for each of `words` (0 for a word not learnt), float64."""
        vec = self.vector(prev)
        return np.array([vec[self._slot[w]] if w in self._slot else 0.0 for w in words], dtype=np.float64)

    def prefix_slots(self, key):
        """The slots of the learnt words whose search key (the word lower-cased) starts with `key`."""
        lo = bisect.bisect_left(self._keys, key)
        after = _after(key)
        hi = len(self._keys) if after is None else bisect.bisect_left(self._keys, after, lo)
        return self.slots()[lo:hi]

    def shrink(self):
        """Halve what is kept (pairs, words outside the cache, forgotten words, cache): the user file
        prunes with it until the file fits its bounds."""
        before = (self._pairs, len(self._slot), len(self.forgotten), len(self._cache))
        self._prune_pairs(self._pairs // 2)
        self._prune_words(len(self._slot) // 2)
        if (self._pairs, len(self._slot)) == before[:2]:
            self.forgotten = frozenset(sorted(self.forgotten)[:len(self.forgotten) // 2])
            if len(self.forgotten) == before[2]:
                keep = list(self._cache)[len(self._cache) // 2:]
                self._cache = collections.deque(keep, maxlen=MAX_USER_CACHE)
                self._cache_count = collections.Counter(keep)
                if not keep and not before[1]:
                    raise InputError("the user model cannot be made small enough to save")
        self.version += 1

    # -- persistence (runtime/user_file.py reads and writes the file) --------------------------
    def to_dict(self):
        """A JSON-ready snapshot: decayed counts (time origin moved to now), pairs by word position."""
        unit = self._unit()
        words = self.words()
        pos = {w: i for i, w in enumerate(words)}
        uni = [[w, float(self._uni[self._slot[w]] / unit)] for w in words]
        pairs = sorted([pos[self._words[p]], pos[self._words[s]], c / unit]
                       for p, row in self._bi.items() for s, c in row.items())
        return {"words": uni, "bigrams": pairs, "cache": [pos[self._words[s]] for s in self._cache],
                "forgotten": sorted(self.forgotten), "learnt": self.learnt}

    def restore(self, words, bigrams, cache, forgotten, learnt):
        """Replace the state by checked data (runtime/user_file.py validated it): words = [(word,
        count)], bigrams = [(i, j, count)] by position in words, cache = [position], forgotten = [word]."""
        self.reset()
        for w, c in words:
            s = self._add_word(w)
            self._uni[s] = c
        self._total = float(sum(c for _, c in words))
        slots = [self._slot[w] for w, _ in words]
        for i, j, c in bigrams:
            p, s = slots[i], slots[j]
            row = self._bi.setdefault(p, {})
            if s not in row:
                self._pairs += 1
                self._into.setdefault(s, set()).add(p)
            row[s] = row.get(s, 0.0) + c
            self._bi_total[p] = self._bi_total.get(p, 0.0) + c
        for i in cache:
            self._cache.append(slots[i])
            self._cache_count[slots[i]] += 1
        self.forgotten = frozenset(forgotten)
        self.learnt = check_int("learnt", learnt, 0)
        self.version += 1
        if len(self._slot) > MAX_USER_WORDS:
            self._prune_words(MAX_USER_WORDS)
        if self._pairs > MAX_USER_BIGRAMS:
            self._prune_pairs(MAX_USER_BIGRAMS)
