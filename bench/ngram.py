"""The bench's count-based baseline for the LSTM: the same interpolated modified Kneser-Ney model the
bundle carries (built by export/ngram.py, read by runtime/ngram.py's NgramModel), fitted on the
training documents' ids with the bundle's tokenizer. One implementation: the bench scores exactly
what `Bundle.ngram()` would load (the arrays are checked the same way), only without the size budget
unless one is given.

It works on the project tokenizer's ids: id 0 is padding and never a word, words are 1..V-1.
Documents are independent, as for the LSTM's windows (train/windows.py): a context never crosses a
document boundary, and every document starts from the all-padding context, so the first word of a
document is predicted from (0, 0), the second from (0, w1), and so on. See export/ngram.py for the
estimates (three discounts per order from count-of-counts, Chen & Goodman) and the pruning."""

import numpy as np

from ..export.ngram import build, contexts_before, flatten, positions


def targets(docs_ids, window=None):
    """The evaluation targets of `docs_ids`, exactly those of train.windows.Windows: every position
    j >= 1 of every document, in order. Returns (contexts (N, 2) int64 = the two ids before j, 0 where
    there is none, y (N,) int64). `window` (the LSTM's T) hides tokens more than T positions back;
    None means no limit (like Windows' default T = longest document - 1)."""
    if window is not None and (isinstance(window, bool) or int(window) != window or window < 1):
        raise ValueError(f"window must be an integer >= 1 or None, got {window!r}")
    flat, lengths = flatten(docs_ids)
    pos = positions(lengths)
    ctx = contexts_before(flat, pos, 2, window)
    keep = pos >= 1
    return ctx[keep], flat[keep]


class KneserNeyTrigram:
    """Interpolated modified Kneser-Ney model over ids 1..vocab_size-1, order 3 unless told:

        lm = KneserNeyTrigram(tok.vocab_size).fit(train_docs_ids)
        p = lm.probs([w1, w2])            # (V,) next-word distribution, p[0] == 0
        probs, y = lm.evaluate(heldout_docs_ids)

    `budget`: prune to at most that many bytes of ngram.npz, as export does (None: no pruning).
    After fit, `model` is the runtime's NgramModel and `built` the export builder's result."""

    def __init__(self, vocab_size, order=3, budget=None):
        if isinstance(vocab_size, bool) or int(vocab_size) != vocab_size or vocab_size < 2:
            raise ValueError(f"vocab_size must be an integer >= 2 (id 0 is padding), got {vocab_size!r}")
        self.vocab_size = int(vocab_size)
        self.order, self.budget = order, budget
        self.fitted = False

    def fit(self, docs_ids):
        """Count the n-grams of `docs_ids` (a list of documents, each a sequence of ids 1..V-1), every
        document starting from the all-padding context. Replaces any previous fit; returns self."""
        self.built = build(docs_ids, self.vocab_size, self.order, self.budget)
        self.model = self.built.model(self.vocab_size)
        self.n_tokens = self.built.info["tokens"]
        self.discounts = self.built.info["discounts"]
        self.size_bytes = len(self.built.data)
        self.fitted = True
        return self

    def probs_batch(self, contexts):
        """(N, V) float64 next-word distributions, one row per context: a 2-D id array (N, T), e.g. LSTM
        windows, or a list of id sequences of any length (the last order-1 ids count, pre-padded with 0).
        Each row sums to 1 over ids 1..V-1; column 0 is 0. Memory: N*V*8 bytes."""
        if not self.fitted:
            raise RuntimeError("call fit() before asking for probabilities")
        return self.model.probs_batch(contexts)

    def probs(self, context_ids):
        """(V,) next-word distribution after `context_ids` ([] and [0, 0] mean "start of a document")."""
        return self.probs_batch([context_ids])[0]

    def evaluate(self, docs_ids, window=None, dtype=np.float32, batch_size=256):
        """(probs (N, V), y (N,)) for every target position j >= 1 of every document in `docs_ids`
        (the same targets, in the same order, as train.windows.Windows). float32 by default: 13k
        targets x 7k words is 364 MB in float32, twice that in float64; bench.quality scores in batches."""
        if not self.fitted:
            raise RuntimeError("call fit() before asking for probabilities")
        flat, lengths = flatten(docs_ids)
        pos = positions(lengths)
        n = max(self.order - 1, 1)
        ctx = contexts_before(flat, pos, n, window)[pos >= 1]
        y = flat[pos >= 1]
        probs = np.empty((len(y), self.vocab_size), dtype=dtype)
        for lo in range(0, len(y), int(batch_size)):
            probs[lo:lo + batch_size] = self.probs_batch(ctx[lo:lo + batch_size])
        return probs, y
