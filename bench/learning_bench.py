"""The benchmark's learning section (issue 15 item 4): what suggestions that learn from their user buy,
measured on a *second* text, one the model was never trained on, read twice. Its documents are cut in
two halves: the first is what the user wrote before (learnt), the second is what the user types now.
So the gain is from the user's words and style, not from memorising the text it is scored on.

Rows, each typing the second half (the bundle tokenizer's words, unknown words included: they count as
misses and cost their letters unless a system suggests them), sessions of the bundle's step variant
with the context reset at each document:
- "LSTM alone", "n-gram alone" (when the bundle has one), "mixture" (the bundle's default): no learning;
- "mixture, learning as typed": learn=True from nothing (as Presage's default set-up learns);
- "mixture + learning": the first half learnt (Session.learn per document, saved to a user file and
  read back), learning going on while the second half is typed.
For each: top-1 and top-3 of Session.top_k over every typed word, perplexity over the typed words the
model knows (Session.probability: the mixture and the user model included, so the rows are comparable
on the same words), keystroke savings at N (bench/ksr.py's simulator through Session.complete).
Presage, when installed, trained on the same training words: its n-gram alone, its default set-up
learning as typed, and its default set-up after its simulator first typed the first half into the same
user database ("first half learnt", its way of reading the user's earlier text)."""

import logging
import math
import os
import tempfile

from nextword.runtime.errors import InputError
from nextword.runtime.predictor import Predictor
from nextword.train.corpus import read_corpus

from . import presage
from .ksr import NextwordCompleter, simulate

log = logging.getLogger(__name__)

MIN_DOCUMENTS = 4   # two halves of at least two documents each


def halves(texts, tokenizer):
    """(first, second): the documents as the tokenizer's words, cut in two by document count."""
    docs = [d for d in (tokenizer.words(t) for t in texts) if d]
    if len(docs) < MIN_DOCUMENTS:
        raise InputError(f"--learn-text needs at least {MIN_DOCUMENTS} documents with words to cut in two halves, "
                         f"got {len(docs)}")
    half = len(docs) // 2
    return docs[:half], docs[half:]


def quality(make_session, docs, vocab_size, word_index, oov):
    """top-1, top-3 over every typed word; perplexity over the typed words the model knows."""
    s = make_session()
    hits1 = hits3 = words = known = 0
    log_sum = 0.0
    for doc in docs:
        s.reset()
        for word in doc:
            best = [w for w, _ in s.top_k(3)]
            hits1 += word in best[:1]
            hits3 += word in best
            words += 1
            wid = word_index.get(word, 0)
            if 0 < wid < vocab_size and wid != oov:
                log_sum -= math.log(max(s.probability(word), 1e-12))
                known += 1
            s.feed(word)
    return {"top1": hits1 / words, "top3": hits3 / words, "ppl": math.exp(log_sum / known) if known else None,
            "words": words, "ppl_words": known}


def measure(bundle_path, text_path, unit, train_words=None, n=6, use_presage=True, tick=lambda label: None):
    """res["learning"]: {"status", "text": {...}, "n", "rows": {name: {top1, top3, ppl, ksr, ...}}, "notes"}."""
    text = read_corpus([text_path], unit)
    default = Predictor.load(bundle_path)
    first, second = halves(text.documents, default.tokenizer)
    tok = default.tokenizer
    out = {"status": "ok", "n": n, "rows": {}, "notes": [],
           "text": {"name": text.name, "sha256": text.sha256, "bytes": text.size_bytes, "unit": unit,
                    "documents": {"learnt": len(first), "typed": len(second)},
                    "words": {"learnt": sum(map(len, first)), "typed": sum(map(len, second))}}}
    try:
        default.session()
    except Exception as e:   # learning needs sessions: a bundle without a step variant has none
        return {"status": "skipped", "note": f"no session on this bundle ({e}): the learning rows need a step variant"}
    rows = out["rows"]
    oov = tok.oov_id
    parts = [("LSTM alone", "lstm")]
    if default.mixer.active:
        parts += [("n-gram alone", "ngram"), ("mixture", "both")]
    else:
        out["notes"].append("the bundle has no n-gram model: the mixture is the LSTM alone")
    with tempfile.TemporaryDirectory(prefix="nextword-learning-") as tmp:
        user = os.path.join(tmp, "user.json")
        learner = default.session(learn=True, user_file=user)
        for doc in first:
            learner.learn(" ".join(doc))
        learner.save_user()
        name = parts[-1][0]
        setups = [(label, Predictor.load(bundle_path, variant=default.variant.name, mix=mix), {}) for label, mix in parts]
        setups += [(f"{name}, learning as typed", default, {"learn": True}),
                   (f"{name} + learning", default, {"learn": True, "user_file": user})]
        for label, p, kw in setups:
            row = quality(lambda: p.session(**kw), second, default.vocab_size, tok.word_index, oov)
            comp = NextwordCompleter(p, **kw)
            row.update(simulate(second, comp, n).as_dict())
            rows[label] = row
            tick(f"learning {label}")
    if use_presage and train_words:
        try:
            p = presage.run_learnt(train_words, first, second, n)
        except Exception as e:   # an optional guest: its failure is a note
            log.warning("Presage failed: %s", e)
            p = {"status": "failed", "note": f"Presage failed: {type(e).__name__}: {e}"}
        tick("learning presage")
        out["presage"] = {k: v for k, v in p.items() if k != "rows"}
        rows.update(p.get("rows", {}))
        if p.get("note"):
            out["notes"].append(p["note"])
    elif use_presage:
        out["notes"].append("Presage rows need the training text: give --corpus")
    return out
