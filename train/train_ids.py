"""The token ids an n-gram model is built from: the training documents and, apart, the validation
documents (for fitting mixture weights), never the test documents. nextword-train writes them into
the model folder as train-ids.npz; nextword-export reads them back to build the bundle's ngram.npz."""

import os

import numpy as np

FILE = "train-ids.npz"
PARTS = ("train", "validation")


def _pack(docs):
    docs = [np.asarray(d, dtype=np.int32).ravel() for d in docs]
    flat = np.concatenate(docs) if docs else np.zeros(0, np.int32)
    return flat.astype(np.int32, copy=False), np.array([len(d) for d in docs], dtype=np.int64)


def save(path, train_docs, val_docs):
    """Write {part}_ids (flat int32) and {part}_lengths (int64 per document) for both parts."""
    arrays = {}
    for part, docs in zip(PARTS, (train_docs, val_docs)):
        arrays[f"{part}_ids"], arrays[f"{part}_lengths"] = _pack(docs or [])
    np.savez(path, **arrays)


def _unpack(flat, lengths, path, part):
    if flat.ndim != 1 or lengths.ndim != 1 or flat.dtype.kind not in "iu" or lengths.dtype.kind not in "iu":
        raise ValueError(f"{path}: {part} ids and lengths must be 1-D integer arrays")
    if np.any(lengths < 0) or int(lengths.sum()) != len(flat):
        raise ValueError(f"{path}: {part} lengths do not add up to its {len(flat)} ids")
    return np.split(flat.astype(np.int64), np.cumsum(lengths)[:-1]) if len(lengths) else []


def load(model_dir):
    """(train documents, validation documents) as lists of int64 arrays, or None when the folder was
    trained before nextword wrote the file. ValueError when it is damaged."""
    path = os.path.join(model_dir, FILE)
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return tuple(_unpack(z[f"{part}_ids"], z[f"{part}_lengths"], path, part) for part in PARTS)
    except (OSError, KeyError, ValueError, EOFError) as e:
        raise ValueError(f"{path} is not a readable ids file ({e})") from None
