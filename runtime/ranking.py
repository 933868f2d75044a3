"""From one row of logits to suggestions: softmax and top-k, with padding (id 0) and the OOV id
never suggested. The window predictor and streaming sessions rank through the same object, so a
session's suggestions are ranked exactly as the window path ranks them."""

import numpy as np


def softmax(z):
    """Softmax over the last axis (id 0 included, as the Keras model has it)."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Ranking:
    """Top-k words of a vocabulary; `never` are the ids that are not words (padding, OOV)."""

    def __init__(self, tokenizer, vocab_size):
        self.words = tokenizer.id_to_word_table()
        never = [0] + ([tokenizer.oov_id] if tokenizer.oov_id is not None else [])
        self.never = np.array([i for i in never if i < vocab_size], dtype=np.int64)
        self.suggestible = vocab_size - len(self.never)

    def best(self, z, k, owned=False):
        """Top-k (word, probability) from one row of logits, best first.
        `owned`: z is a scratch array of the caller's and may be overwritten (saves two copies)."""
        e = z if owned and z.dtype == np.float32 else z.astype(np.float32)
        e -= e.max()
        np.exp(e, out=e)
        total = e.sum()
        e[self.never] = -1.0
        words = self.words
        if k == 1:
            i = int(e.argmax())
            return [(words[i], float(e[i] / total))]
        k = min(k, self.suggestible)
        if len(e) <= 256:   # small vocabularies: one sort beats partition + sort in call overhead
            top = np.argsort(-e, kind="stable")[:k]
        else:
            top = np.argpartition(e, -k)[-k:]
            top = top[np.argsort(-e[top], kind="stable")]
        return [(words[i], p) for i, p in zip(top.tolist(), (e[top] / total).tolist())]
