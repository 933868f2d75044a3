"""Keystroke savings rate (KSR): how many keys a person types with N suggestions shown, against none.

The accounting is issue 14's (Presage's, see bench/presage.py for the one detail where
presage_simulator differs):

- without prediction a word costs len(word) + 1 keys (its letters and a space);
- with prediction the N suggestions are looked at before the first letter and after each typed
  letter (after the last one too); as soon as the word is among them, selecting it costs 1 key and
  includes the space: a word found after i letters costs i + 1;
- a word never suggested costs all its letters plus the space (len(word) + 1, as without).

    KSR = 1 - (keys typed + keys to select) / (keys without prediction)

`simulate(documents, suggest, n)` drives any predictor through that accounting. `documents` is a
list of word lists; the context is the words before the current one in the same document (it never
crosses a document, as for the model's windows). `suggest(context, prefix, n)` gets the context as a
tuple (the SAME tuple object for every keystroke of one word, so an adapter can cache per context
with an `is` test) and returns up to n words, best first; extra words are ignored.

Adapters: `KneserNeyCompleter` (bench/ngram.py's trigram, completion by filtering its full
distribution by prefix) and `NextwordCompleter` (the runtime's completion API). `PrefixIndex`
serves both kinds of filtering: words sorted once, a prefix is a bisect range.
"""

import bisect
import time
from dataclasses import asdict, dataclass

import numpy as np

from .ngram import KneserNeyTrigram

NS = (1, 3, 6)


@dataclass
class Record:
    """Counts of one simulation; ksr = 1 - (keys_typed + keys_selected) / keys_without."""
    n: int
    words: int = 0
    keys_without: int = 0
    keys_typed: int = 0          # letters typed, plus the space of words never suggested
    keys_selected: int = 0       # one per word taken from the suggestions (the space included)
    words_suggested: int = 0     # words taken from the suggestions (= keys_selected)
    words_suggested_before_first_letter: int = 0
    ksr: float = 0.0
    latency: dict = None         # per suggest call (one keystroke): median_us, p90_us, calls (timed runs)

    def as_dict(self):
        return asdict(self)


def simulate(documents, suggest, n, timed=False):
    """Type `documents` (lists of words) with `suggest(context, prefix, n)`; returns a Record.
    timed: also time every suggest call (one per keystroke looked at) -> Record.latency."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    rec = Record(n=n)
    times = [] if timed else None
    clock = time.perf_counter
    for doc in documents:
        context = ()
        for word in doc:
            length = len(word)
            rec.words += 1
            rec.keys_without += length + 1
            found = None
            for i in range(length + 1):
                if timed:
                    t0 = clock()
                    got = suggest(context, word[:i], n)
                    times.append(clock() - t0)
                else:
                    got = suggest(context, word[:i], n)
                if word in got[:n]:
                    found = i
                    break
            if found is None:
                rec.keys_typed += length + 1
            else:
                rec.keys_typed += found
                rec.keys_selected += 1
                rec.words_suggested += 1
                if found == 0:
                    rec.words_suggested_before_first_letter += 1
            context = context + (word,)
    rec.ksr = 1.0 - (rec.keys_typed + rec.keys_selected) / rec.keys_without if rec.keys_without else 0.0
    if timed:
        rec.latency = summary_us(times)
    return rec


def cap_words(documents, limit):
    """The first `limit` words of `documents` (whole documents, the last one cut); None or 0: all."""
    if not limit:
        return [list(d) for d in documents]
    out, left = [], int(limit)
    for d in documents:
        if left <= 0:
            break
        out.append(list(d[:left]))
        left -= len(out[-1])
    return out


class PrefixIndex:
    """Words sorted once; `span(prefix)` is the (lo, hi) slice of `order` whose words start with it."""

    def __init__(self, words):
        self.order = np.array(sorted(range(len(words)), key=words.__getitem__), dtype=np.int64)
        self.sorted_words = [words[i] for i in self.order]

    def span(self, prefix):
        if not prefix:
            return 0, len(self.sorted_words)
        lo = bisect.bisect_left(self.sorted_words, prefix)
        hi = bisect.bisect_left(self.sorted_words, prefix + "\U0010ffff", lo)
        return lo, hi


def top_in_span(probs_sorted, ids_sorted, lo, hi, n):
    """Positions (into the sorted arrays) of the n best entries in [lo, hi): probability descending,
    ties by lower id (train.metrics' rule), so results never depend on numpy's partition order."""
    seg = probs_sorted[lo:hi]
    if len(seg) > n:
        kth = np.partition(seg, len(seg) - n)[len(seg) - n]
        keep = np.flatnonzero(seg >= kth)
    else:
        keep = np.arange(len(seg))
    best = keep[np.lexsort((ids_sorted[lo:hi][keep], -seg[keep]))][:n]
    return best + lo


class KneserNeyCompleter:
    """suggest() for simulate(): the Kneser-Ney trigram of bench/ngram.py fitted on the training
    documents' ids (the bundle's tokenizer), completing by filtering its full next-word distribution
    by prefix over the in-model words (ids 1..vocab_size-1 but the OOV id).

    Lexicon-only words (rank >= vocab_size: the tokenizer maps them to the OOV id or drops them, so the
    trigram never saw them) and words absent from training are never suggested: they cost all their
    letters plus the space. In the context they are what the model sees: the OOV id, or nothing.
    One distribution per context (cached until the context tuple changes)."""

    def __init__(self, tokenizer, train_ids, lm=None):
        self.tokenizer = tokenizer
        V = tokenizer.vocab_size
        self.lm = lm if lm is not None else KneserNeyTrigram(V).fit(train_ids)
        table = tokenizer.id_to_word_table()
        ids = [i for i in range(1, V) if table[i] is not None and i != tokenizer.oov_id]
        words = [table[i] for i in ids]
        self.index = PrefixIndex(words)
        self.ids_sorted = np.asarray(ids, dtype=np.int64)[self.index.order]
        self._ids = {}
        self._context, self._probs = None, None

    def word_ids(self, word):
        """The ids one word becomes (text_to_ids: [], [id] or [oov]), cached."""
        got = self._ids.get(word)
        if got is None:
            got = self._ids[word] = self.tokenizer.text_to_ids(word)
        return got

    def __call__(self, context, prefix, n):
        if context is not self._context:
            ids = []
            for w in context[::-1]:
                ids[:0] = self.word_ids(w)
                if len(ids) >= 2:
                    break
            self._probs = self.lm.probs(ids[-2:])[self.ids_sorted]
            self._context = context
        lo, hi = self.index.span(prefix)
        best = top_in_span(self._probs, self.ids_sorted, lo, hi, n)
        return [self.index.sorted_words[i] for i in best]


class NextwordCompleter:
    """suggest() for simulate() through the runtime's completion API: a Session (one model step per
    word: `feed(word)`, then `complete(prefix, k)` per keystroke) when the predictor can make one,
    else `Predictor.complete(text_before_cursor, k)`. Returns the suggestions' `word`s (the
    tokenizer's form, as the held-out words are). Times every `complete` call and every `feed`
    apart (`complete_seconds`, `feed_seconds`), so the per-keystroke figure is the API's alone."""

    def __init__(self, predictor, learn=False, user_file=None):
        self.predictor = predictor
        try:   # learn=True: the session learns every word as it is typed (runtime/user_model.py)
            self.session = predictor.session(learn=learn, user_file=user_file)
        except Exception:   # no step variant: the window path, whole text per call
            self.session = None
        self._context = None
        self.complete_seconds, self.feed_seconds = [], []

    def _feed(self, text):
        t0 = time.perf_counter()
        self.session.feed(text)
        self.feed_seconds.append(time.perf_counter() - t0)

    def __call__(self, context, prefix, n):
        clock = time.perf_counter
        if self.session is None:
            text = " ".join(context + (prefix,)) if context else prefix
            t0 = clock()
            got = self.predictor.complete(text, n)
            self.complete_seconds.append(clock() - t0)
            return [s.word for s in got]
        if context is not self._context:
            last = self._context
            if last is not None and len(context) == len(last) + 1 and context[:-1] == last:
                self._feed(context[-1])
            else:
                self.session.reset()
                if context:
                    self._feed(" ".join(context))
            self._context = context
        t0 = clock()
        got = self.session.complete(prefix, n)
        self.complete_seconds.append(clock() - t0)
        return [s.word for s in got]


def summary_us(seconds):
    """{"median_us", "p90_us", "calls"} of a list of durations in seconds."""
    t = np.asarray(seconds, dtype=np.float64) * 1e6
    if not len(t):
        return {"median_us": None, "p90_us": None, "calls": 0}
    return {"median_us": float(np.median(t)), "p90_us": float(np.percentile(t, 90)), "calls": int(len(t))}
