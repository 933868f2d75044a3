"""Training windows, made on demand from a flat array of token ids.

The seed's method: every position j >= 1 of a document is a target, and its context is the
document's tokens before j, pre-padded with 0 to the window length T (T = longest document - 1 by
default, as the notebook does; `window` caps it, which turns long documents into sliding windows of
T+1 tokens). Windows never cross a document boundary. Memory is O(tokens): the (windows x T) matrix
only exists one batch at a time."""

import numpy as np

from nextword.runtime.errors import InputError


class Windows:
    def __init__(self, docs_ids, window=None):
        lengths = np.array([len(d) for d in docs_ids], dtype=np.int64)
        if window is None:
            window = int(lengths.max()) - 1 if len(lengths) else 0
        if window < 1:
            raise InputError("the corpus has no document with two or more known words: nothing to learn from")
        self.window = int(window)
        self.flat = np.fromiter((i for d in docs_ids for i in d), dtype=np.int32, count=int(lengths.sum()))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        # every position except a document's first is a target
        keep = np.ones(len(self.flat), dtype=bool)
        keep[starts[lengths > 0]] = False
        self.targets = np.flatnonzero(keep).astype(np.int64)
        doc_of = np.repeat(np.arange(len(lengths)), lengths)
        self.starts = starts[doc_of[self.targets]] if len(self.targets) else np.zeros(0, np.int64)

    def __len__(self):
        return len(self.targets)

    def batch(self, index):
        """(X, y) for an array of window numbers: X (n, T) int32 pre-padded, y (n,) int32."""
        pos = self.targets[index]
        offsets = pos[:, None] - self.window + np.arange(self.window)[None, :]
        inside = offsets >= self.starts[index][:, None]
        x = np.where(inside, self.flat[np.clip(offsets, 0, None)], 0).astype(np.int32)
        return x, self.flat[pos].astype(np.int32)

    def all(self):
        return self.batch(np.arange(len(self)))


def split_heldout(docs, fraction):
    """The last `fraction` of the documents (by count, at least one) is held out; never shuffled,
    so the held-out text is a contiguous tail that training never saw."""
    if not fraction:
        return list(docs), []
    if not 0 < fraction < 1:
        raise InputError(f"the held-out fraction must be between 0 and 1, got {fraction}")
    n = len(docs)
    cut = min(n - 1, max(1, round(n * fraction)))
    if n < 2:
        raise InputError("the corpus has a single document: nothing to hold out (use more text or no split)")
    return list(docs[: n - cut]), list(docs[n - cut:])
