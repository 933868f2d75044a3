"""The LSTM's share in the hybrid (runtime/mix.py), fitted at export on the validation documents:
the value of a 0.05 grid with the lowest perplexity of p = lam * p_lstm + (1 - lam) * p_ngram on
their windows (the same targets the LSTM's early stopping watched; never the test documents)."""

import logging

import numpy as np

from nextword.train.windows import Windows

log = logging.getLogger(__name__)

GRID = np.round(np.linspace(0.0, 1.0, 21), 2)
MAX_FIT_WINDOWS = 4000     # enough for a stable perplexity; a sample spread evenly over the documents
BATCH = 512


def fit_lstm_weight(model, ngram_model, val_docs, window, seed=0):
    """{"lstm_weight", "fitted_on", "windows", "perplexity": {"lstm", "ngram", "mix"}}, or None when
    there are no validation windows (then the runtime uses its documented default share)."""
    docs = [d for d in val_docs if len(d) >= 2]
    if not docs:
        return None
    windows = Windows(docs, window)
    n = len(windows)
    index = np.arange(n) if n <= MAX_FIT_WINDOWS else np.sort(
        np.random.default_rng(seed).choice(n, MAX_FIT_WINDOWS, replace=False))
    x, y = windows.batch(index)
    p_lstm, p_ngram = np.zeros(len(y)), np.zeros(len(y))
    for i in range(0, len(y), BATCH):   # only the true next word's probability is kept: memory O(batch x V)
        xs, ys = x[i:i + BATCH], y[i:i + BATCH]
        at = np.arange(len(ys))
        p_lstm[i:i + len(ys)] = model(xs, training=False).numpy()[at, ys]
        p_ngram[i:i + len(ys)] = ngram_model.probs_batch(xs)[at, ys]

    def perplexity(lam):
        p = lam * p_lstm + (1.0 - lam) * p_ngram
        return float(np.exp(-np.mean(np.log(np.maximum(p, 1e-300)))))
    scores = {float(lam): perplexity(lam) for lam in GRID}
    best = min(scores, key=scores.get)
    log.info("mixture: LSTM share %.2f on %d validation windows (perplexity %.1f; LSTM %.1f, n-gram %.1f)",
             best, len(y), scores[best], scores[1.0], scores[0.0])
    return {"lstm_weight": best, "fitted_on": "validation", "windows": int(len(y)),
            "perplexity": {"lstm": scores[1.0], "ngram": scores[0.0], "mix": scores[best]}}
