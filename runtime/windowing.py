"""The model's input window, built in one place: the last `window` ids of a context, pre-padded with
id 0 (Keras' pad_sequences with padding="pre", truncating="pre", as the training windows have it).
Every caller that turns ids into a window (predictor, sessions, benchmark) goes through here."""

import numpy as np


def pad_window(ids, window, dtype=np.int32, out=None):
    """(window,) array: the last `window` of `ids`, pre-padded with 0. `out`, if given, is filled
    in place (a (window,) view of a reusable buffer) and returned."""
    tail = list(ids[-window:]) if window > 0 else []
    if out is None:
        out = np.zeros(window, dtype=dtype)
    elif len(tail) < window:
        out[: window - len(tail)] = 0
    if tail:
        out[window - len(tail):] = tail
    return out


def pad_windows(id_lists, window, dtype=np.int32):
    """(len(id_lists), window) array: pad_window of each list of ids."""
    out = np.zeros((len(id_lists), window), dtype=dtype)
    for row, ids in zip(out, id_lists):
        pad_window(ids, window, out=row)
    return out
