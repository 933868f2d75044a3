"""Sequence-objective examples: chunks of L+1 tokens of each pre-padded document, a target at every
position, made on demand from a flat array of token ids.

Why: the window objective re-runs T LSTM steps for ONE target; a chunk trains L targets for the same
L steps (truncated back-propagation through time), so an epoch costs about L/S times less.

Each document is pre-padded with L zeros (as the window model sees the start of a document). Chunks
end at the document's last token and then every S tokens earlier (end-aligned), the last one taken
being the first that reaches into the padding, so every target is trained with its full context up
to the document start at least once and, past that, with at least S tokens of context. Targets that
are padding, or a document's first word (its context is all padding; the window objective never
trains it either), get weight 0: they add exactly nothing to the loss or its gradient. Memory is
O(tokens): the (chunks x L+1) matrix only exists one batch at a time."""

import numpy as np

from nextword.runtime.errors import InputError


class Chunks:
    def __init__(self, docs_ids, length, stride):
        if length < 1 or stride < 1:
            raise InputError(f"chunk length and stride must be at least 1, got {length} and {stride}")
        if stride > length:
            raise InputError(f"--chunk-stride ({stride}) must not exceed --chunk-length ({length}): "
                             "targets between chunks would never be trained")
        self.length, self.stride = int(length), int(stride)
        lengths = np.array([len(d) for d in docs_ids], dtype=np.int64)
        self.flat = np.fromiter((i for d in docs_ids for i in d), dtype=np.int32, count=int(lengths.sum()))
        doc_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        starts, docs = [], []
        for k, n in enumerate(lengths.tolist()):
            # chunk start s in padded coordinates (document token i sits at L + i); first token L + 0
            s = n - 1                     # the chunk that ends on the last token
            while s >= 1:                 # s = 0 would only hold the first word as a target
                starts.append(s)
                docs.append(k)
                if s <= self.length:      # this chunk reaches the padding: every earlier target is in it
                    break
                s -= self.stride
        order = np.lexsort((np.array(starts, np.int64), np.array(docs, np.int64))) if starts else np.zeros(0, np.int64)
        self.starts = np.array(starts, dtype=np.int64)[order]          # in padded coordinates
        self.doc_start = doc_starts[np.array(docs, dtype=np.int64)[order]] if starts else np.zeros(0, np.int64)
        self.targets = int(lengths[lengths >= 2].sum() - (lengths >= 2).sum())   # every token but a document's first

    def __len__(self):
        return len(self.starts)

    def batch(self, index):
        """(x, y, w) for an array of chunk numbers: x, y (n, L) int32 (y = x shifted by one), w (n, L)
        float32, 1 where y is a real target, 0 for padding and a document's first word."""
        index = np.asarray(index, dtype=np.int64)
        offsets = self.starts[index][:, None] + np.arange(self.length + 1)[None, :] - self.length   # doc position
        inside = offsets >= 0
        tokens = np.where(inside, self.flat[np.clip(self.doc_start[index][:, None] + offsets, 0, None)], 0)
        tokens = tokens.astype(np.int32)
        weights = (offsets[:, 1:] >= 1).astype(np.float32)
        return tokens[:, :-1], tokens[:, 1:], weights

    def all(self):
        return self.batch(np.arange(len(self)))
