"""The benchmark's keystroke-savings section: KSR for N = 1, 3, 6 on the held-out words, for the
bundle's default variant (through the runtime's completion API), the Kneser-Ney trigram (same
training ids, same simulator) and, when installed, Presage trained on the same words (its own
simulator), with the per-keystroke latency of nextword's completion.

All rows type the same word sequence: the bundle tokenizer's words of the held-out documents
(lexicon-only and unseen words included: they cost their letters unless a system suggests them),
capped at `max_words`. See bench/ksr.py for the accounting and bench/presage.py for Presage."""

import logging

from nextword.runtime.errors import NextwordError
from nextword.runtime.predictor import Predictor

from . import presage
from .ksr import NS, KneserNeyCompleter, NextwordCompleter, cap_words, simulate, summary_us

log = logging.getLogger(__name__)


def _row(records):
    return {str(r.n): r.as_dict() for r in records}


def measure(bundle, ev, max_words=0, ns=NS, tick=lambda label: None, use_presage=True):
    """res["ksr"]: {"status", "words", "documents", "keys_without", "ns", "rows": {name: {"N": {...ksr...}}},
    "latency" (nextword's complete per keystroke), "notes"}."""
    if ev is None or ev.heldout_words is None:
        return {"status": "skipped", "note": "keystroke savings need the held-out text: give --corpus"}
    docs = [d for d in cap_words(ev.heldout_words, max_words) if d]
    out = {"status": "ok", "ns": list(ns), "documents": len(docs), "words": sum(map(len, docs)),
           "keys_without": sum(len(w) + 1 for d in docs for w in d), "rows": {}, "notes": [], "latency": None,
           "max_words": max_words or None}
    rows = out["rows"]
    try:
        predictor = Predictor.load(bundle.path)
    except NextwordError as e:
        predictor = None
        out["notes"].append(f"nextword: no predictor ({e})")
    if predictor is not None:
        mixing = predictor.mixer.active
        name = f"nextword ({predictor.variant.name}{' + n-gram' if mixing else ''})"
        recs = []
        for n in ns:
            comp = NextwordCompleter(predictor)
            recs.append(simulate(docs, comp, n, timed=True))
            tick(f"ksr nextword N={n}")
        rows[name] = _row(recs)
        latency = comp
        if mixing:   # the LSTM alone, for what the n-gram adds
            alone = Predictor.load(bundle.path, variant=predictor.variant.name, mix="lstm")
            rows[f"nextword ({predictor.variant.name}, LSTM alone)"] = _row(
                [simulate(docs, NextwordCompleter(alone), n) for n in ns])
            tick("ksr nextword LSTM alone")
        learner = [simulate(docs, NextwordCompleter(predictor, learn=True), n) for n in ns]
        rows[f"{name[:-1]}, learning as typed)"] = _row(learner)   # like Presage's default set-up learns
        tick("ksr nextword learning")
        comp = latency
        out["latency"] = dict(summary_us(comp.complete_seconds), n=recs[-1].n, variant=predictor.variant.name,
                              backend=predictor.package, session=comp.session is not None,
                              feed=summary_us(comp.feed_seconds), per_keystroke_with_feed=recs[-1].latency)
    if ev.train_ids is not None:
        kn = KneserNeyCompleter(bundle.tokenizer, ev.train_ids)
        rows["ngram-kn3"] = _row([simulate(docs, kn, n) for n in ns])
        tick("ksr n-gram")
    if not use_presage:
        out["presage"] = {"status": "off"}
        return out
    try:
        p = presage.run(ev.train_words or [], docs, ns=ns)
    except Exception as e:   # Presage is an optional guest: its failure is a note, never the bench's
        log.warning("Presage failed: %s", e)
        p = {"status": "failed", "note": f"Presage failed: {type(e).__name__}: {e}"}
    tick("ksr presage")
    out["presage"] = {k: v for k, v in p.items() if k != "rows"}
    if p["status"] == "ok":
        for setup, by_n in p["rows"].items():
            rows[setup] = {str(n): r for n, r in by_n.items()}
    if p.get("note"):
        out["notes"].append(p["note"])
    return out
