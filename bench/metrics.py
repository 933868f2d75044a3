"""Accuracy and speed metrics: top-k accuracy, perplexity and a latency summary (numpy only).

`probs` is always an (N, V) array of next-word probabilities (one row per target, one column per
id) and `y` the (N,) true ids. Rows are scored as given: nothing is renormalised, so a model that
puts mass on the padding id 0 pays for it in perplexity. To rank like the runtime (which never
suggests padding or OOV), pass those ids as `exclude` to `topk_accuracy`.
"""

import numpy as np

DEFAULT_KS = (1, 3, 5)
_ROWS_PER_CHUNK = 1024  # bounds the (rows, V) boolean temporaries of topk_accuracy


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


def true_ranks(probs, y, exclude=()):
    """0-based rank of each true id in its row, best first (rank 0 = the most likely id).

    Ties are broken by id, lower id first: the order of a stable sort on descending probability,
    so the result is deterministic. Ids in `exclude` rank after every other id (as if their
    probability were -inf). O(N*V), no sort."""
    probs, y = _check(probs, y)
    n, v = probs.shape
    exclude = np.unique(np.asarray(exclude, dtype=np.int64))
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
    return ranks


def topk_accuracy(probs, y, ks=DEFAULT_KS, exclude=()):
    """{k: fraction of rows whose true id is among the k highest probabilities}.

    Ties are broken by id (see `true_ranks`); ids in `exclude` (e.g. 0, padding) are never
    counted among the k best. For probs [[.5, .3, .2]] and y [1]: top-1 0.0, top-2 and top-3 1.0."""
    ks = [int(k) for k in ks]
    if any(k < 1 for k in ks):
        raise ValueError(f"every k must be >= 1, got {ks}")
    ranks = true_ranks(probs, y, exclude)
    return {k: float(np.mean(ranks < k)) for k in ks}


def mean_nll(probs, y, floor=1e-12):
    """Mean negative natural log of the probability of the true id, probabilities clipped at `floor`."""
    probs, y = _check(probs, y)
    p = probs[np.arange(len(y)), y].astype(np.float64)
    return float(-np.mean(np.log(np.clip(p, floor, None))))


def perplexity(probs, y, floor=1e-12):
    """exp(mean negative log probability of the true id), probabilities clipped at 1e-12.

    1.0 is perfect; a uniform guess over V ids scores V. For probs [[.5, .3, .2]], y [1]: 1/0.3."""
    return float(np.exp(mean_nll(probs, y, floor)))


def latency_summary(samples_seconds):
    """Summary of timing samples given in seconds, reported in microseconds.

    Returns {"median", "p95", "p99", "mean", "min", "max", "iqr", "n"}: percentiles use numpy's
    default linear interpolation, iqr = p75 - p25, n = number of samples (an int)."""
    s = np.asarray(samples_seconds, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("latency_summary needs at least one sample")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("latency samples must be finite, non-negative durations in seconds")
    us = s * 1e6
    p25, p50, p75, p95, p99 = np.percentile(us, [25, 50, 75, 95, 99])
    return {"median": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(us.mean()),
            "min": float(us.min()), "max": float(us.max()), "iqr": float(p75 - p25), "n": int(us.size)}
