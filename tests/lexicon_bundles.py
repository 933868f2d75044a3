"""Seed bundles with words beyond the model's vocabulary (lexicon-only words), an optional OOV token and
an optional lexicon.json, made by rehashing copies of artifacts/seed (tests/support.py rehashed_copy).

The seed's model has 11 outputs (padding + 10 words). Its vocab.json is rewritten with num_words = 11
(the manifest's tokenizer num_words too), the seed's counts multiplied by 10 (their order, hence their
ids, unchanged) and EXTRA words appended with smaller counts: those get ids >= 11, outside the model.
With oov=True the tokenizer gets an OOV token, which takes id 1 (the model's second output) and
pushes the seed's last word ("doing") out of the model as well."""

import hashlib
import json
import os

from support import SEED_BUNDLE, rehashed_copy

OOV = "<unk>"
# word -> count (all below the seed's smallest count x 10), chosen to share prefixes with model words
EXTRA = {"hallo": 3, "hey": 5, "holiday": 2, "area": 7, "arena": 4, "yourself": 6, "yo": 2, "dayton": 1,
         "i": 9, "elizabeth": 8, "mr": 5, "darcy": 6, "whatever": 3, "dr": 1, "eliza": 2}
LEXICON = {"format": "nextword-lexicon", "format_version": 1,
           "forms": [["darcy", "Darcy"], ["dr", "Dr."], ["elizabeth", "Elizabeth"], ["i", "I"], ["mr", "Mr."]],
           "abbreviations": ["dr", "mr"]}


def seed_vocab():
    with open(os.path.join(SEED_BUNDLE, "vocab.json"), encoding="utf-8") as f:
        return json.load(f)


def extended_vocab(oov=False, extra=EXTRA):
    vocab = seed_vocab()
    vocab["config"]["num_words"] = 11
    vocab["config"]["oov_token"] = OOV if oov else None
    vocab["word_counts"] = [[w, c * 10] for w, c in vocab["word_counts"]] + [[w, c] for w, c in extra.items()]
    vocab["vocab_size"] = 11
    return vocab


def add_file(folder, name, data, key="lexicon"):
    """Write `data` (bytes, or an object written as JSON) as `name` and name it in the manifest under `key`."""
    data = data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode()
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)
    path = os.path.join(folder, "manifest.json")
    with open(path, encoding="utf-8") as f:
        m = json.load(f)
    m[key] = {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(m, f)
    return folder


def extended_bundle(folder, oov=False, lexicon=LEXICON, extra=EXTRA):
    """A rehashed seed copy with lexicon-only words (and an OOV token when oov=True) and, unless
    lexicon is None, a lexicon.json (an object, or raw bytes for crafted files)."""
    def edit(m):
        m["tokenizer"]["num_words"] = 11
        m["tokenizer"]["oov_token"] = OOV if oov else None
    folder = rehashed_copy(folder, vocab=extended_vocab(oov, extra), edit=edit)
    if lexicon is not None:
        add_file(folder, "lexicon.json", lexicon)
    return folder
