"""The one top-k accuracy and perplexity, used by training (held-out figures), export (the parity
gates' accuracy) and the benchmark (every quality column) alike. numpy only: it imports in the
runtime-only and legacy environments.

`probs` is an (N, V) array of next-word probabilities (one row per target, one column per id) and
`y` the (N,) true ids. Two rules hold everywhere:

- Ties: equal probabilities are ordered by id, lower id first. That is the order of a stable sort
  on descending probability, the order `Predictor.top_k` suggests words in, so a figure says what a
  user of the runtime would have seen. (A wrong id that ties with the truth and has a lower id
  takes the place ahead of it.)
- Exclusion: ids in `exclude` (e.g. 0 = padding and 1 = OOV, which the runtime never suggests) are
  never among the k best. A target whose true id is excluded is never a hit, for any k.

Rows are scored as given: nothing is renormalised, so a model that puts mass on padding pays for it
in perplexity, and perplexity ignores `exclude`.
"""

import numpy as np

DEFAULT_KS = (1, 3, 5)
PADDING = (0,)  # id 0 pads windows and is never a word: the benchmark excludes it from every ranking
NLL_FLOOR = 1e-12  # probabilities are clipped here before the log: a zero costs -ln(1e-12), not inf
_ROWS_PER_CHUNK = 1024  # bounds the (rows, V) temporaries of true_ranks


def _check(probs, y):
    probs = np.asarray(probs)
    y = np.asarray(y)
    if probs.ndim != 2:
        raise ValueError(f"probs must be a 2-D (N, V) array, got shape {probs.shape}")
    if y.shape != (probs.shape[0],):
        raise ValueError(f"y must have shape ({probs.shape[0]},) to match probs, got {y.shape}")
    if probs.shape[0] == 0:
        raise ValueError("no targets to score (N = 0)")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"y must hold integer ids, got dtype {y.dtype}")
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"y holds ids outside 0..{probs.shape[1] - 1}")
    return probs, y.astype(np.int64)


def _check_ks(ks):
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {ks}")
    return ks


def _excluded(exclude):
    return np.unique(np.asarray(exclude, dtype=np.int64))


def true_ranks(probs, y, exclude=()):
    """0-based rank of each true id in its row under the tie and exclusion rules (0 = best).
    A true id in `exclude` gets rank V (one past the last place): never a hit. O(N*V), no sort."""
    probs, y = _check(probs, y)
    n, v = probs.shape
    exclude = _excluded(exclude)
    ids = np.arange(v)
    ranks = np.empty(n, dtype=np.int64)
    for lo in range(0, n, _ROWS_PER_CHUNK):
        p = probs[lo:lo + _ROWS_PER_CHUNK]
        t = y[lo:lo + _ROWS_PER_CHUNK]
        if len(exclude):
            p = np.array(p, dtype=np.result_type(p.dtype, np.float32))  # a copy: the caller's array is untouched
            p[:, exclude] = -np.inf
        p_true = p[np.arange(len(t)), t][:, None]
        ahead = (p > p_true) | ((p == p_true) & (ids[None, :] < t[:, None]))
        ranks[lo:lo + len(t)] = ahead.sum(axis=1)
    if len(exclude):
        ranks[np.isin(y, exclude)] = v
    return ranks


def top_ids(probs, k, exclude=()):
    """(N, min(k, V - excluded)) ids of each row's k best, best first, under the same rules."""
    probs = np.asarray(probs)
    if probs.ndim != 2:
        raise ValueError(f"probs must be a 2-D (N, V) array, got shape {probs.shape}")
    (k,) = _check_ks([k])
    exclude = _excluded(exclude)
    if len(exclude):
        probs = np.array(probs, dtype=np.result_type(probs.dtype, np.float32))
        probs[:, exclude] = -np.inf
    k = min(k, probs.shape[1] - len(exclude))
    return np.argsort(-probs, axis=1, kind="stable")[:, :k]


def _hits(ranks, k, v):
    """How many ranks are among the k best (rank V, an excluded truth, never is: k is capped at V)."""
    return int(np.sum(ranks < min(k, v)))


def topk_accuracy(probs, y, ks=DEFAULT_KS, exclude=()):
    """{k: fraction of rows whose true id is among the k best}. For probs [[.5, .3, .2]] and
    y [1]: top-1 0.0, top-2 and top-3 1.0."""
    ks = _check_ks(ks)
    ranks = true_ranks(probs, y, exclude)
    v = np.shape(probs)[1]
    return {k: _hits(ranks, k, v) / len(ranks) for k in ks}


def mean_nll(probs, y, floor=NLL_FLOOR):
    """Mean negative natural log of the true id's probability, probabilities clipped at `floor`."""
    probs, y = _check(probs, y)
    p = probs[np.arange(len(y)), y].astype(np.float64)
    return float(-np.mean(np.log(np.clip(p, floor, None))))


def perplexity(probs, y, floor=NLL_FLOOR):
    """exp(mean_nll). 1.0 is perfect; a uniform guess over V ids scores V. For probs [[.5, .3, .2]],
    y [1]: 1/0.3."""
    return float(np.exp(mean_nll(probs, y, floor)))


class Scores:
    """Top-k accuracy and perplexity over many (probs, y) batches, memory O(one batch): the same
    figures as topk_accuracy and perplexity on the batches stacked together."""

    def __init__(self, ks=DEFAULT_KS, exclude=()):
        self.ks = _check_ks(ks)
        self.exclude = tuple(int(i) for i in _excluded(exclude))
        self.hits = {k: 0 for k in self.ks}
        self.nll_sum = 0.0
        self.n = 0

    def add(self, probs, y):
        ranks = true_ranks(probs, y, self.exclude)
        for k in self.ks:
            self.hits[k] += _hits(ranks, k, np.shape(probs)[1])
        self.nll_sum += mean_nll(probs, y) * len(ranks)
        self.n += len(ranks)
        return self

    def topk(self):
        """{k: accuracy}."""
        self._need_targets()
        return {k: self.hits[k] / self.n for k in self.ks}

    def perplexity(self):
        self._need_targets()
        return float(np.exp(self.nll_sum / self.n))

    def summary(self):
        """{"top1": .., "top3": .., ..., "perplexity": .., "n": ..}."""
        out = {f"top{k}": acc for k, acc in self.topk().items()}
        out.update(perplexity=self.perplexity(), n=self.n)
        return out

    def _need_targets(self):
        if not self.n:
            raise ValueError("no targets were scored (every batch was empty or none was added)")
