"""The hybrid predictor (issue 15): the LSTM's next-word distribution mixed with the bundle's n-gram.

    p(w | context) = lam * p_lstm(w | context) + (1 - lam) * p_ngram(w | context)

at every position, with the LSTM's share `lam` fitted by nextword-export on the validation documents
(the manifest's ngram.mix.lstm_weight: the value of a 0.05 grid with the lowest validation
perplexity). The two models make different mistakes: the LSTM generalises, the n-gram remembers exact
phrases and rare words. Suggestions only: top_k, predict_next, top_k_batch, generate and complete of
a Predictor and of its sessions use the mixture; `logits()` and `probabilities()` stay the LSTM's own
(what the parity gates compare with Keras). The mixed scores are log-probabilities, so every ranking,
softmax and completion path downstream is unchanged.

Modes (Predictor.load(mix=...), nextword-predict --mix): "both" (default; the LSTM alone when the
bundle has no n-gram, and describe() says so), "lstm", "ngram"."""

import numpy as np

from .errors import InputError

MIXES = ("both", "lstm", "ngram")
FALLBACK_LSTM_WEIGHT = 0.7   # a bundle whose manifest records no fitted share (the measured 0.7 / 0.3)
FLOOR = 1e-30                # log of a zero probability (padding in "ngram" mode): a finite, lowest score


def check_mix(mix):
    if mix not in MIXES:
        raise InputError(f"mix must be one of {', '.join(MIXES)}, got {mix!r}")
    return mix


class Mixer:
    """What a predictor (and its sessions) mix: `scores(z, context_ids)` -> the scores to rank."""

    def __init__(self, ngram, mode="both", lstm_weight=None, fitted=None):
        self.requested = check_mix(mode)
        self.ngram = ngram if mode != "lstm" else None
        self.mode = mode if ngram is not None else "lstm"
        fitted_weight = FALLBACK_LSTM_WEIGHT if lstm_weight is None else float(lstm_weight)
        self.lstm_weight = {"lstm": 1.0, "ngram": 0.0}.get(self.mode, fitted_weight)
        self.fitted = fitted if lstm_weight is not None else None

    @property
    def active(self):
        return self.mode != "lstm"

    def probs(self, z, context_ids):
        """The mixture's next-word probabilities (float32, summing to 1) for one row of LSTM logits `z`
        after `context_ids` (the ids before the next word, pre-padded or not). Only when active."""
        q, total = self.ngram.mass(context_ids, np.float32)   # the n-gram's distribution is q / total
        if self.lstm_weight <= 0:
            return (q / total).astype(np.float32)
        e = np.array(z, dtype=np.float32)        # float32 throughout: this runs once per word typed
        e -= e.max()
        np.exp(e, out=e)
        e *= np.float32(self.lstm_weight / e.sum())
        q *= np.float32((1.0 - self.lstm_weight) / total)
        e += q
        return e

    def scores(self, z, context_ids):
        """Scores to rank for one row of LSTM logits `z` after `context_ids`: `z` itself when only the
        LSTM counts, else the log of the mixture (float32), so softmax(scores) is the mixture."""
        if not self.active:
            return z
        e = self.probs(z, context_ids)
        np.maximum(e, FLOOR, out=e)
        return np.log(e, out=e)

    def best(self, ranking, z, context_ids, k):
        """ranking.best of the mixture, or of `z` when not mixing. The path a keyboard runs once per
        word: the LSTM's exp(z - max) is left unnormalised (sum s) and the n-gram added in at the
        matching scale, (1 - w) / w * s, so the row sums to s / w and only the k winners are divided."""
        if not self.active:
            return ranking.best(z, k)
        w = self.lstm_weight
        if w <= 0:
            e = np.zeros(len(z), dtype=np.float32)
            self.ngram.add_into(e, context_ids, 1.0)
            return ranking.best_weights(e, 1.0, k)
        e = np.array(z, dtype=np.float32)
        top, low = e.max(), e.min()
        if not (np.isfinite(top) and np.isfinite(low)):
            return ranking.best_probs(e, k)   # its ModelError: non-finite scores
        e -= top
        np.exp(e, out=e)
        s = float(e.sum())
        self.ngram.add_into(e, context_ids, (1.0 - w) / w * s)
        return ranking.best_weights(e, s / w, k)

    def describe(self):
        """One line for describe(): what the suggestions are made of."""
        if self.mode == "lstm":
            if self.requested == "both":
                return "mix: the LSTM alone (this bundle has no n-gram model)"
            return "mix: the LSTM alone (--mix lstm)"
        order = self.ngram.order
        if self.mode == "ngram":
            return f"mix: the order-{order} n-gram alone (--mix ngram)"
        how = (f"fitted on {self.fitted.get('windows', '?')} validation windows" if self.fitted
               else f"no fitted share in the manifest: the default {FALLBACK_LSTM_WEIGHT}")
        return f"mix: LSTM x {self.lstm_weight:.2f} + order-{order} n-gram x {1 - self.lstm_weight:.2f} ({how})"

    def info(self):
        return {"mode": self.mode, "requested": self.requested, "lstm_weight": self.lstm_weight,
                "ngram_order": self.ngram.order if self.ngram is not None else None, "fitted": self.fitted}
