"""A count-based baseline for the LSTM: an interpolated Kneser-Ney trigram model (numpy only).

It works on the project tokenizer's ids: id 0 is padding and never a word, words are 1..V-1.
Documents are independent, as for the LSTM's windows (train/windows.py): a context never crosses
a document boundary, and every document starts from the begin-of-document context (0, 0), the
n-gram twin of the LSTM's all-padding window. So the first word of a document is predicted from
(0, 0), the second from (0, w1), and so on.

With D the discount, c() raw counts and N1+ counts of distinct types (Chen & Goodman's
interpolated Kneser-Ney, one discount for every order):

    trigram  P3(w|u,v) = max(c(u,v,w) - D, 0) / c(u,v,.)    + D * N1+(u,v,.) / c(u,v,.) * P2(w|v)
    bigram   P2(w|v)   = max(N1+(.,v,w) - D, 0) / N1+(.,v,.) + D * N1+(v,.)  / N1+(.,v,.) * P1(w)
    unigram  P1(w)     = max(N1+(.,w) - D, 0) / N1+(.,.)     + D * N1+(.)    / N1+(.,.)   * 1/(V-1)

where N1+(.,v,w) is the number of distinct u seen before (v, w) (the continuation count),
N1+(.,v,.) its sum over w, N1+(v,.) the number of distinct w with N1+(.,v,w) > 0, N1+(.,w) the
number of distinct v seen before w, N1+(.,.) the number of distinct bigrams and N1+(.) the number
of distinct words. An unseen context backs off entirely to the next order (its weight is 1). The
last level is a uniform distribution over the V-1 words, so every word, seen or not, gets a
nonzero probability; id 0 always gets exactly 0, and each distribution sums to 1 over 1..V-1.

All count tables are built once in `fit` (sorted numpy arrays, CSR-style), and `probs_batch`
computes whole (N, V) distributions at once: one outer product for the backed-off mass plus
scattered sparse terms, on the distinct contexts of the batch.
"""

import numpy as np

BOS = 0  # the begin-of-document symbol: the padding id, as the LSTM sees it


def _flatten(docs_ids):
    """(flat int64 ids, lengths int64) of a list of documents."""
    docs = [np.asarray(d, dtype=np.int64).ravel() for d in docs_ids]
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    flat = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    return flat.astype(np.int64, copy=False), lengths


def _positions(lengths):
    """Position of every flat token inside its document."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if len(lengths) else np.zeros(0, np.int64)
    return np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(starts, lengths)


def _two_before(flat, pos, window=None):
    """(u, v): the two ids before every flat token inside its document, BOS (0) where the document
    (or a `window` of that many tokens, like the LSTM's) has none."""
    idx = np.arange(len(flat))
    has1 = pos >= 1
    has2 = (pos >= 2) & (window is None or window >= 2)
    v = np.where(has1, flat[np.maximum(idx - 1, 0)], BOS) if len(flat) else np.zeros(0, np.int64)
    u = np.where(has2, flat[np.maximum(idx - 2, 0)], BOS) if len(flat) else np.zeros(0, np.int64)
    return u, v


def targets(docs_ids, window=None):
    """The evaluation targets of `docs_ids`, exactly those of train.windows.Windows: every position
    j >= 1 of every document, in order. Returns (contexts (N, 2) int64 = the two ids before j, 0 where
    there is none, y (N,) int64). `window` (the LSTM's T) hides tokens more than T positions back;
    None means no limit (like Windows' default T = longest document - 1)."""
    if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
        raise ValueError(f"window must be an integer >= 1 or None, got {window!r}")
    flat, lengths = _flatten(docs_ids)
    pos = _positions(lengths)
    u, v = _two_before(flat, pos, window)
    keep = pos >= 1
    return np.stack([u[keep], v[keep]], axis=1), flat[keep]


def _ranges(starts, ends):
    """(row, k) pairs for row i and every k in starts[i]:ends[i], vectorized."""
    lens = ends - starts
    total = int(lens.sum())
    rows = np.repeat(np.arange(len(starts)), lens)
    first = np.repeat(np.cumsum(lens) - lens, lens)
    return rows, np.repeat(starts, lens) + (np.arange(total) - first)


class KneserNeyTrigram:
    """Interpolated Kneser-Ney trigram model over ids 1..vocab_size-1 (see the module docstring).

        lm = KneserNeyTrigram(tok.vocab_size).fit(train_docs_ids)
        p = lm.probs([w1, w2])            # (V,) next-word distribution, p[0] == 0
        probs, y = lm.evaluate(heldout_docs_ids)
    """

    def __init__(self, vocab_size, discount=0.75):
        if isinstance(vocab_size, bool) or int(vocab_size) != vocab_size or vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2 (id 0 is padding), got {vocab_size!r}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must be strictly between 0 and 1, got {discount!r}")
        if int(vocab_size) ** 3 >= 2 ** 63:
            raise ValueError(f"vocab_size {vocab_size} is too large for int64 trigram keys")
        self.vocab_size = int(vocab_size)
        self.discount = float(discount)
        self.fitted = False

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, docs_ids):
        """Count the trigrams of `docs_ids` (a list of documents, each a sequence of ids 1..V-1),
        every document starting from the context (0, 0). Replaces any previous fit; returns self."""
        V, D = self.vocab_size, self.discount
        flat, lengths = _flatten(docs_ids)
        if len(flat) and (flat.min() < 1 or flat.max() >= V):
            bad = flat[(flat < 1) | (flat >= V)][0]
            raise ValueError(f"documents must hold word ids 1..{V - 1} (0 is padding), found {bad}")
        u, v = _two_before(flat, _positions(lengths))
        self.n_tokens = int(len(flat))

        # trigram level: raw counts, grouped by context (u, v); keys sorted so groups are contiguous
        tri_keys, tri_c = np.unique((u * V + v) * V + flat, return_counts=True)
        ctx_keys, ctx_start, ctx_types = np.unique(tri_keys // V, return_index=True, return_counts=True)
        ctx_total = np.add.reduceat(tri_c, ctx_start) if len(tri_c) else np.zeros(0, np.int64)
        self._ctx3_keys = ctx_keys                                        # u*V + v, sorted
        self._ctx3_ptr = np.append(ctx_start, len(tri_keys)).astype(np.int64)
        self._ctx3_gamma = D * ctx_types / np.maximum(ctx_total, 1)       # D N1+(u,v,.) / c(u,v,.)
        self._tri_w = tri_keys % V
        self._tri_val = (tri_c - D) / np.repeat(ctx_total, ctx_types)     # (c(u,v,w) - D) / c(u,v,.)

        # bigram level: continuation counts N1+(.,v,w) = distinct u per (v, w) = trigram types per (v, w)
        bi_keys, bi_n = np.unique(tri_keys % (V * V), return_counts=True)
        bi_v = bi_keys // V
        n_v = np.bincount(bi_v, weights=bi_n, minlength=V)               # N1+(.,v,.)
        types_v = np.bincount(bi_v, minlength=V)                         # N1+(v,.)
        self._bi_ptr = np.concatenate([[0], np.cumsum(types_v)]).astype(np.int64)
        self._bi_w = bi_keys % V
        self._bi_val = (bi_n - D) / np.maximum(n_v[bi_v], 1)             # (N1+(.,v,w) - D) / N1+(.,v,.)
        self._bi_gamma = np.where(n_v > 0, D * types_v / np.maximum(n_v, 1), 1.0)

        # unigram level: N1+(.,w) = distinct v per w = bigram types ending in w; then uniform over 1..V-1
        n_w = np.bincount(bi_keys % V, minlength=V).astype(np.float64)  # N1+(.,w)
        n_bigrams = len(bi_keys)                                         # N1+(.,.)
        uniform = np.full(V, 1.0 / (V - 1))
        uniform[BOS] = 0.0
        if n_bigrams:
            n_words = int(np.count_nonzero(n_w))                        # N1+(.)
            p1 = np.maximum(n_w - D, 0.0) / n_bigrams + (D * n_words / n_bigrams) * uniform
        else:
            p1 = uniform                                                 # nothing seen: uniform
        p1[BOS] = 0.0
        self._p1 = p1
        self.fitted = True
        return self

    # -- prediction --------------------------------------------------------------------------
    def _as_contexts(self, contexts):
        """(u, v) int64 arrays from a 2-D id array (N, T), e.g. LSTM windows, or a list of id
        sequences of any length: the last two ids, pre-padded with 0."""
        if isinstance(contexts, np.ndarray) and contexts.ndim == 2:
            arr = contexts.astype(np.int64)
        else:
            rows = [np.asarray(c, dtype=np.int64).ravel()[-2:] for c in contexts]
            arr = np.zeros((len(rows), 2), dtype=np.int64)
            for i, r in enumerate(rows):
                if len(r):
                    arr[i, 2 - len(r):] = r
        if arr.shape[1] == 0:
            arr = np.zeros((arr.shape[0], 2), dtype=np.int64)
        elif arr.shape[1] == 1:
            arr = np.concatenate([np.zeros_like(arr), arr], axis=1)
        u, v = arr[:, -2].copy(), arr[:, -1].copy()
        if arr.size and (min(u.min(), v.min()) < 0 or max(u.max(), v.max()) >= self.vocab_size):
            raise ValueError(f"context ids must be in 0..{self.vocab_size - 1}")
        u[v == BOS] = BOS  # nothing before padding counts: (x, 0) is the begin-of-document context
        return u, v

    def probs_batch(self, contexts):
        """(N, V) float64 next-word distributions, one row per context (see `_as_contexts` for the
        accepted shapes). Each row sums to 1 over ids 1..V-1; column 0 is 0. Memory: N*V*8 bytes."""
        if not self.fitted:
            raise RuntimeError("call fit() before asking for probabilities")
        u, v = self._as_contexts(contexts)
        V = self.vocab_size
        keys, inverse = np.unique(u * V + v, return_inverse=True)  # compute each distinct context once
        inverse = inverse.ravel()
        vv = keys % V

        if len(self._ctx3_keys):
            slot = np.minimum(np.searchsorted(self._ctx3_keys, keys), len(self._ctx3_keys) - 1)
            seen = self._ctx3_keys[slot] == keys
        else:
            slot, seen = np.zeros(len(keys), np.int64), np.zeros(len(keys), bool)
        g3 = np.ones(len(keys))
        g3[seen] = self._ctx3_gamma[slot[seen]]                     # 1 for an unseen (u, v): full back-off
        g2 = self._bi_gamma[vv]

        out = (g3 * g2)[:, None] * self._p1[None, :]               # mass that reaches the unigram level
        rows, k = _ranges(self._bi_ptr[vv], self._bi_ptr[vv + 1])  # bigram terms, weighted by g3
        out[rows, self._bi_w[k]] += g3[rows] * self._bi_val[k]     # (row, w) pairs are unique: += is safe
        hit = np.flatnonzero(seen)                                  # trigram terms of seen contexts
        rows, k = _ranges(self._ctx3_ptr[slot[hit]], self._ctx3_ptr[slot[hit] + 1])
        out[hit[rows], self._tri_w[k]] += self._tri_val[k]
        if len(keys) == len(u) and np.array_equal(inverse, np.arange(len(u))):
            return out
        return out[inverse]

    def probs(self, context_ids):
        """(V,) next-word distribution after `context_ids` (its last two ids; a shorter context is
        pre-padded with 0, so [] and [0, 0] mean "start of a document")."""
        return self.probs_batch([context_ids])[0]

    # -- evaluation --------------------------------------------------------------------------
    def evaluate(self, docs_ids, window=None, dtype=np.float32, batch_size=256):
        """(probs (N, V), y (N,)) for every target position j >= 1 of every document in `docs_ids`
        (the same targets, in the same order, as train.windows.Windows). float32 by default: 13k
        targets x 7k words is 364 MB in float32, twice that in float64; bench.quality scores in batches."""
        ctx, y = targets(docs_ids, window)
        probs = np.empty((len(y), self.vocab_size), dtype=dtype)
        for lo in range(0, len(y), int(batch_size)):
            probs[lo:lo + batch_size] = self.probs_batch(ctx[lo:lo + batch_size])
        return probs, y
