"""Building the bundle's n-gram model: interpolated modified Kneser-Ney (Chen & Goodman 1998) over
the bundle tokenizer's ids, pruned to a size budget, written as ngram.npz (format: runtime/ngram.py).

numpy only. A library was considered: kenlm's PyPI package queries models but does not build them
(lmplz is a C++ binary outside the wheel) and works on text, not our ids; NLTK's KneserNeyInterpolated
is pure Python, single-discount and far too slow for a novel. Counting here is a few np.unique passes.

Documents are independent: each starts from the all-padding context (0, ..., 0), the n-gram twin of
the LSTM's pre-padded window, so the first word is predicted from (0, 0), the second from (0, w1).
With c the counts of order k (raw counts at the top order N, continuation counts N1+(., h, w) = the
number of distinct ids seen before (h, w) below it) and D(c) = D1, D2 or D3+ for c = 1, 2, >= 3:

    alpha_k(h, w) = (c(h, w) - D(c(h, w))) / c(h, .)        gamma_k(h) = sum_w D(c(h, w)) / c(h, .)
    p_k(w | h)    = alpha_k(h, w) + gamma_k(h) p_{k-1}(w | h')
    p_1(w)        = alpha_1(w) + gamma_1 / (V - 1)            (uniform floor over the words 1..V-1)

The discounts of each order come from its count-of-counts n1..n4:
    Y = n1 / (n1 + 2 n2),  D1 = 1 - 2Y n2/n1,  D2 = 2 - 3Y n3/n2,  D3+ = 3 - 4Y n4/n3
falling back to FALLBACK_DISCOUNTS when n1 or n2 is 0 (too few counts to estimate; D3+ alone when
n3 is 0), then clipped to [DISCOUNT_FLOOR, i - DISCOUNT_FLOOR] so every seen entry keeps some mass
and every context gives some to the lower order.

Pruning: while the file is over budget, the highest order that still has entries loses its least
useful ones (lowest count first, then lowest alpha, then key order), and each context's gamma is set
to 1 - sum of its remaining alphas: the dropped mass goes to the lower order and every distribution
still sums to 1. A context left without entries is dropped (it backs off fully, like an unseen one)."""

import io
import logging

import numpy as np

from nextword.runtime.errors import InputError
from nextword.runtime.limits import MAX_NGRAM_BYTES, MAX_NGRAM_ORDER
from nextword.runtime.ngram import BOS, FILE, FORMAT_VERSION, KEY_LIMIT, NgramModel

log = logging.getLogger(__name__)

DEFAULT_ORDER = 3
DEFAULT_BUDGET = 2_000_000           # bytes of ngram.npz ("2 MB")
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)
DISCOUNT_FLOOR = 0.05


def flatten(docs_ids):
    """(flat int64 ids, lengths int64) of a list of documents."""
    docs = [np.asarray(d, dtype=np.int64).ravel() for d in docs_ids]
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    flat = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    return flat.astype(np.int64, copy=False), lengths


def positions(lengths):
    """Position of every flat token inside its document."""
    if not len(lengths):
        return np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)


def contexts_before(flat, pos, n, window=None):
    """(T, n) int64: the n ids before every flat token inside its document, 0 (padding) where the
    document (or a `window` of that many tokens, like the LSTM's) has none."""
    out = np.zeros((len(flat), n), np.int64)
    idx = np.arange(len(flat))
    for j in range(1, n + 1):
        ok = (pos >= j) & (window is None or window >= j)
        out[:, n - j] = np.where(ok, flat[np.maximum(idx - j, 0)], BOS) if len(flat) else 0
    return out


def discounts(counts):
    """(D1, D2, D3+) of Chen & Goodman from the count-of-counts of `counts` (see the module docstring)."""
    n1, n2, n3, n4 = (int(np.count_nonzero(counts == i)) for i in (1, 2, 3, 4))
    if n1 == 0 or n2 == 0:
        d = list(FALLBACK_DISCOUNTS)
    else:
        y = n1 / (n1 + 2 * n2)
        d = [1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3 if n3 else FALLBACK_DISCOUNTS[2]]
    return tuple(min(max(x, DISCOUNT_FLOOR), i - DISCOUNT_FLOOR) for i, x in enumerate(d, start=1))


def _count_pairs(h, w):
    """Distinct (h, w) pairs sorted by (h, w), with how often each occurs."""
    if not len(h):
        return h, w, np.zeros(0, np.int64)
    o = np.lexsort((w, h))
    h, w = h[o], w[o]
    new = np.ones(len(h), bool)
    new[1:] = (h[1:] != h[:-1]) | (w[1:] != w[:-1])
    starts = np.flatnonzero(new)
    return h[starts], w[starts], np.diff(np.append(starts, len(h)))


class Level:
    """One order k >= 2: entries (h, w) sorted by (h, w), their counts and alphas."""

    def __init__(self, h, w, c, d):
        self.h, self.w, self.c = h, w, c
        dc = np.asarray(d)[np.minimum(c, 3) - 1]
        start = np.flatnonzero(np.append(True, h[1:] != h[:-1])) if len(h) else np.zeros(0, np.int64)
        total = np.add.reduceat(c, start) if len(h) else np.zeros(0, np.int64)
        self.alpha = (c - dc) / np.repeat(total, np.diff(np.append(start, len(h))))

    def keep(self, mask):
        self.h, self.w, self.c, self.alpha = self.h[mask], self.w[mask], self.c[mask], self.alpha[mask]

    def arrays(self, k):
        h = self.h
        start = np.flatnonzero(np.append(True, h[1:] != h[:-1])) if len(h) else np.zeros(0, np.int64)
        mass = np.add.reduceat(self.alpha, start) if len(h) else np.zeros(0)
        return {f"ctx{k}": h[start].astype("<i8"), f"ptr{k}": np.append(start, len(h)).astype("<i8"),
                f"gamma{k}": np.clip(1.0 - mass, 0.0, 1.0).astype("<f4"),
                f"word{k}": self.w.astype("<i4"), f"prob{k}": self.alpha.astype("<f4")}


class Built:
    """The result of build(): the arrays of ngram.npz, its bytes and what was pruned."""

    def __init__(self, arrays, data, info):
        self.arrays, self.data, self.info = arrays, data, info

    def model(self, vocab_size=None):
        """The runtime's NgramModel over these arrays (checked exactly as a bundle's file is)."""
        return NgramModel(self.arrays, "built n-gram", vocab_size)


def npz_bytes(arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)       # uncompressed, plain numeric arrays
    return buf.getvalue()


def check_order(order):
    if isinstance(order, bool) or not isinstance(order, int) or not 1 <= order <= MAX_NGRAM_ORDER:
        raise InputError(f"the n-gram order must be an integer from 1 to {MAX_NGRAM_ORDER}, got {order!r}")
    return order


def check_budget(budget):
    if budget is None:
        return MAX_NGRAM_BYTES
    if isinstance(budget, bool) or not isinstance(budget, int) or not 1 <= budget <= MAX_NGRAM_BYTES:
        raise InputError(f"the n-gram budget must be a number of bytes from 1 to {MAX_NGRAM_BYTES}, got {budget!r}")
    return budget


def build(docs_ids, vocab_size, order=DEFAULT_ORDER, budget=DEFAULT_BUDGET):
    """Count, discount and prune: a Built whose .data (ngram.npz bytes) is at most `budget` bytes
    (None: only the runtime's MAX_NGRAM_BYTES). `docs_ids`: documents of word ids 1..V-1."""
    V = vocab_size
    if isinstance(V, bool) or not isinstance(V, (int, np.integer)) or V < 2:
        raise InputError(f"vocab_size must be an integer >= 2 (id 0 is padding), got {V!r}")
    V, order, budget = int(V), check_order(order), check_budget(budget)
    if V ** (order - 1) >= KEY_LIMIT:
        raise InputError(f"a vocabulary of {V} ids is too large for order {order} (int64 context keys); "
                         "use a lower --ngram-order")
    flat, lengths = flatten(docs_ids)
    if len(flat) and (flat.min() < 1 or flat.max() >= V):
        bad = flat[(flat < 1) | (flat >= V)][0]
        raise InputError(f"documents must hold word ids 1..{V - 1} (0 is padding), found {bad}")
    n = order - 1
    ctx = contexts_before(flat, positions(lengths), n)
    h = np.zeros(len(flat), np.int64)
    for col in range(n):
        h = h * V + ctx[:, col]

    levels, disc = {}, {}
    if order >= 2:
        h, w, c = _count_pairs(h, flat)                 # top order: raw counts
        for k in range(order, 1, -1):
            disc[k] = discounts(c)
            levels[k] = Level(h, w, c, disc[k])
            h, w, c = _count_pairs(h % V ** (k - 2), w)  # distinct ids before (h', w): continuation counts
        unigram_counts = np.zeros(V, np.int64)         # ... down to N1+(., w): distinct ids before w
        unigram_counts[w] = c
    else:
        unigram_counts = np.bincount(flat, minlength=V)
    unigram_counts[BOS] = 0
    disc[1] = discounts(unigram_counts[unigram_counts > 0])
    unigram = _unigram(unigram_counts, disc[1], V)

    pruned = np.zeros(order, np.int64)
    max_pruned_count = [0] * order
    while True:
        arrays = {"meta": np.array([FORMAT_VERSION, order, V], "<i8"),
                  "discounts": np.array([disc[k] for k in range(1, order + 1)], "<f8"),
                  "pruned": pruned.copy(), "unigram": unigram.astype("<f4")}
        for k, lvl in levels.items():
            arrays.update(lvl.arrays(k))
        data = npz_bytes(arrays)
        if len(data) <= budget:
            break
        top = max((k for k, lvl in levels.items() if len(lvl.c)), default=None)
        if top is None:
            raise InputError(f"the n-gram budget of {budget} bytes is too small: the unigram level of {V} ids "
                             f"alone needs {len(data)}")
        lvl = levels[top]
        order_ = np.lexsort((lvl.w, lvl.h, lvl.alpha, lvl.c))        # least useful first
        drop = _entries_to_drop(lvl, order_, len(data) - budget)
        rank = order_[:drop]
        mask = np.ones(len(lvl.c), bool)
        mask[rank] = False
        max_pruned_count[top - 1] = max(max_pruned_count[top - 1], int(lvl.c[rank].max()))
        pruned[top - 1] += drop
        lvl.keep(mask)
    info = {"order": order, "vocab_size": V, "bytes": len(data), "budget": budget, "tokens": int(len(flat)),
            "documents": int(len(lengths)),
            "discounts": {str(k): [round(x, 6) for x in disc[k]] for k in sorted(disc)},
            "entries": {str(k): int(len(levels[k].c)) for k in sorted(levels)},
            "pruned": {str(k + 1): int(x) for k, x in enumerate(pruned) if x},
            "pruned_max_count": {str(k + 1): x for k, x in enumerate(max_pruned_count) if x}}
    log.info("n-gram order %d: %d bytes (budget %d), pruned %s", order, len(data), budget, info["pruned"] or "nothing")
    return Built(arrays, data, info)


def _entries_to_drop(lvl, ranked, excess):
    """The fewest entries, taken in `ranked` order, whose removal saves `excess` bytes: an entry costs
    8 bytes (word int32 + prob float32), a context left empty 20 more (ctx, ptr int64 + gamma float32)."""
    E = len(ranked)
    where = np.empty(E, np.int64)
    where[ranked] = np.arange(E)
    start = np.flatnonzero(np.append(True, lvl.h[1:] != lvl.h[:-1]))
    last = np.sort(np.maximum.reduceat(where, start))     # a context empties once its last-ranked entry goes
    m = np.arange(1, E + 1)
    saved = 8 * m + 20 * np.searchsorted(last, m, side="left")
    return int(min(E, np.searchsorted(saved, excess, side="left") + 1))


def _unigram(counts, d, V):
    """p_1 over 0..V-1: discounted continuation counts plus gamma_1 spread uniformly over 1..V-1."""
    uniform = np.full(V, 1.0 / (V - 1))
    uniform[BOS] = 0.0
    total = counts.sum()
    if total == 0:
        return uniform                                   # nothing seen: uniform
    seen = counts > 0
    dc = np.zeros(V)
    dc[seen] = np.asarray(d)[np.minimum(counts[seen], 3) - 1]
    p = (counts - dc) / total + (dc.sum() / total) * uniform
    p[BOS] = 0.0
    return p


def manifest_entry(built, sha256):
    """The manifest's top-level "ngram" entry for a written file."""
    return {"file": FILE, "sha256": sha256, "size": len(built.data), "order": built.info["order"],
            "details": {k: v for k, v in built.info.items() if k not in ("order",)}}
