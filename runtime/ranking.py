"""From one row of logits to suggestions: softmax and top-k, with padding (id 0), the OOV id and
the words of the predictor's blocklist (runtime/blocklist.py) never suggested. The window predictor and streaming sessions rank through the same object, so a
session's suggestions are ranked exactly as the window path ranks them.

Scores must be finite: a model with NaN or infinite weights answers NaN (its padding word would
come first, with probability nan), so such an answer is a ModelError, never a suggestion. The check
costs two reductions of the row (about a microsecond)."""

import math

import numpy as np

from .errors import ModelError


def softmax(z):
    """Softmax over the last axis (id 0 included, as the Keras model has it)."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def non_finite(source):
    """The ModelError for a model that answered NaN or an infinity."""
    return ModelError(f"{source} answered with non-finite scores (NaN or infinity); its weights are damaged "
                      "or hostile, so it gives no suggestions")


class Ranking:
    """Top-k words of a vocabulary; `never` are the ids that are not words (padding, OOV).
    `source` names the model in errors ("variant X on package Y"). `blocklist` (a Blocklist, shared
    by every Ranking of a predictor, or None) adds the ids of blocked words at each call."""

    def __init__(self, tokenizer, vocab_size, source="the model", blocklist=None):
        self.words = tokenizer.id_to_word_table()
        never = [0] + ([tokenizer.oov_id] if tokenizer.oov_id is not None else [])
        self.never = np.array([i for i in never if i < vocab_size], dtype=np.int64)
        self.suggestible = vocab_size - len(self.never)
        self.source = source
        self.blocklist = blocklist

    def blocked(self):
        """The model ids blocked now (never padding or OOV), an int64 array."""
        return self.blocklist.ids if self.blocklist is not None else self.never[:0]

    def available(self, blocked=None):
        """How many words can be suggested now: the vocabulary minus padding, OOV and blocked words."""
        return self.suggestible - len(self.blocked() if blocked is None else blocked)

    def mask(self, z, value):
        """Set the scores of padding, OOV and blocked ids in `z` (a writable row) to `value`."""
        z[self.never] = value
        blocked = self.blocked()
        if blocked.size:
            z[blocked] = value
        return z

    def check(self, z):
        """z (any shape) if every score is finite, else ModelError."""
        if not np.isfinite(z).all():
            raise non_finite(self.source)
        return z

    def best(self, z, k, owned=False):
        """Top-k (word, probability) from one row of logits, best first.
        `owned`: z is a scratch array of the caller's and may be overwritten (saves two copies)."""
        e = z if owned and z.dtype == np.float32 else z.astype(np.float32)
        top, low = e.max(), e.min()
        if not (math.isfinite(top) and math.isfinite(low)):   # NaN propagates through max
            raise non_finite(self.source)
        e -= top
        np.exp(e, out=e)
        return self._select(e, e.sum(), k)

    def best_probs(self, p, k):
        """Top-k (word, probability) from one row of probabilities that already sums to 1 (the
        mixture of runtime/mix.py): the selection of best() without its exp."""
        e = np.array(p, dtype=np.float32)
        if not np.isfinite(e).all():
            raise non_finite(self.source)
        return self._select(e, 1.0, k)

    def best_weights(self, e, total, k):
        """Top-k (word, e / total) from a scratch row of finite non-negative weights summing to `total`
        (overwritten): the mixture's ranking (runtime/mix.py), which scales only the k it returns."""
        return self._select(e, total, k)

    def _select(self, e, total, k):
        """The k largest of `e` (a scratch row of non-negative weights summing to `total`), never
        padding, the OOV token or a blocked word, as (word, e / total), best first."""
        blocked = self.blocked()   # read once: block() in another thread replaces it as a whole
        e[self.never] = -1.0
        if blocked.size:
            e[blocked] = -1.0
        k = min(k, self.available(blocked))
        if k <= 0:   # every word blocked
            return []
        words = self.words
        if k == 1:
            i = int(e.argmax())
            return [(words[i], float(e[i] / total))]
        if len(e) <= 256:   # small vocabularies: one sort beats partition + sort in call overhead
            top = np.argsort(-e, kind="stable")[:k]
        else:
            top = np.argpartition(e, -k)[-k:]
            top = top[np.argsort(-e[top], kind="stable")]
        return [(words[i], p) for i, p in zip(top.tolist(), (e[top] / total).tolist())]
