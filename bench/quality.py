"""Held-out quality: the evaluation windows, top-k accuracy and perplexity of every column (variants,
Keras, the Kneser-Ney trigram), all on the same windows.

The held-out slice is the last `fraction` of the corpus' documents (train.windows.split_heldout),
tokenized with the bundle's own tokenizer and cut into the bundle's windows (train.windows.Windows):
with the model's --test-split (older reports: --val-split) and --unit this is exactly the text
training never saw. A
deterministic subset (at most `max_eval` windows, seed 0) is scored for every column, so batch-1
TFLite variants stay fast and all columns see the same windows.

Figures come from train.metrics (ties by id, lower id first), the same for every column, with
padding (id 0, never a word) excluded from the ranking; the OOV token, when the tokenizer has one,
is ranked like any word. Training's held-out figures (train-report.json) and export's parity
accuracy use the same functions but exclude nothing, so padding may take a place there: the two
agree to the extent the model gives padding no top-k mass (a trained model puts almost none there).
"""

import json
import logging
import os
import time
from dataclasses import dataclass, field

import numpy as np

from nextword.runtime.errors import InputError
from nextword.runtime.mix import Mixer
from nextword.train.corpus import read_corpus
from nextword.train.metrics import PADDING, Scores
from nextword.train.windows import Windows, split_heldout

from .ngram import KneserNeyTrigram

log = logging.getLogger(__name__)
CHUNK = 512


@dataclass
class EvalData:
    source: str                     # "heldout" | "model-windows"
    description: str
    x: np.ndarray                   # (n, T) int32: the scored windows
    y: np.ndarray                   # (n,) true next ids
    total_windows: int              # before the max_eval cap
    train_ids: list = None          # training documents as ids (for the n-gram), or None
    texts: list = field(default_factory=list)   # sample texts for the timing rounds
    split: dict = field(default_factory=dict)
    heldout_ids: list = None        # held-out documents as ids (corpus runs only)
    train_words: list = None        # training documents as the tokenizer's words (corpus runs: KSR, Presage)
    heldout_words: list = None      # held-out documents as the tokenizer's words, every word kept (KSR)


def training_summary(report):
    """How the benchmarked model was trained, from its train-report.json: objective, epochs, time, and
    which settings nextword-train chose from the corpus (no tuning flag) -- None without a report."""
    if not report or report.get("synthetic"):
        return None
    cfg = report.get("config") or {}
    chosen = report.get("defaults") or {}
    return {"objective": cfg.get("objective") or report.get("objective") or "prefix",
            "epochs_run": report.get("epochs_run"), "epochs_budget": cfg.get("epochs"),
            "fit_seconds": report.get("fit_seconds"), "wall_seconds": report.get("wall_seconds"),
            "chosen_from_corpus": sorted(k for k in chosen if k != "stats") if isinstance(chosen, dict) else [],
            "interrupted": bool(report.get("interrupted")),
            "heldout": report.get("heldout")}


def read_report(model_dir):
    """train-report.json of a model folder, or None."""
    if not model_dir:
        return None
    path = os.path.join(model_dir, "train-report.json")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def subset(n, limit, seed=0):
    """Up to `limit` window numbers out of n, the same for a given (n, limit); limit <= 0: all."""
    if limit <= 0 or n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def sample_texts(docs, tokenizer, window, n=64):
    """n texts of up to `window` words taken from documents (spread over them), for timing."""
    words = [w for w in (tokenizer.words(d) for d in docs) if len(w) >= 2]
    if not words:
        return []
    out = []
    for i in range(n):
        w = words[(i * len(words)) // n if len(words) >= n else i % len(words)]
        start = (i * 7) % max(1, len(w) - window) if len(w) > window + 1 else 0
        out.append(" ".join(w[start:start + max(1, min(window, len(w) - 1))]))
    return out


def synthetic_texts(tokenizer, window, n=64, seed=0):
    """n texts of `window` known words drawn from the vocabulary, for bundles without a corpus."""
    table = tokenizer.id_to_word_table()
    ids = [i for i in range(1, len(table)) if table[i] and i != tokenizer.oov_id]
    rng = np.random.default_rng(seed)
    return [" ".join(table[i] for i in rng.choice(ids, size=window)) for _ in range(n)]


def heldout_fraction(cfg):
    """The tail of the corpus training never saw, from a train-report's config: its test split (the
    sequence-era protocol), else its validation split (older reports, or a run without a test tail)."""
    return float(cfg.get("test_split") or cfg.get("val_split") or 0.0)


def _corpus_of_report(report):
    """(paths or None for the seed lines, unit, fraction) that trained the model, if still readable."""
    if not report or report.get("synthetic"):
        return None
    files = [f["path"] for f in report.get("corpus", {}).get("files", [])]
    cfg = report.get("config", {})
    if files == ["<seed>"]:
        return None, cfg.get("unit", "line"), heldout_fraction(cfg)
    if files and all(os.path.isfile(p) for p in files):
        return files, cfg.get("unit", "line"), heldout_fraction(cfg)
    return False


def from_corpus(paths, unit, fraction, tokenizer, window, max_eval, manifest_source, report):
    corpus = read_corpus(paths, unit)
    train_docs, held = split_heldout(corpus.documents, fraction)
    held_ids = tokenizer.texts_to_sequences(held)
    wins = Windows(held_ids, window)
    if len(wins) == 0:
        raise InputError(f"the held-out slice (last {fraction:g} of {len(corpus.documents)} documents) has no document "
                         "with two known words: nothing to score; use a larger --heldout-fraction")
    idx = subset(len(wins), max_eval)
    x, y = wins.batch(idx)
    notes, matches = [], True
    if manifest_source.get("corpus_sha256") and manifest_source["corpus_sha256"] != corpus.sha256:
        matches = False
        notes.append("the corpus differs from the one the bundle was trained on (sha256)")
    if report and not report.get("synthetic"):
        cfg = report.get("config", {})
        if cfg.get("unit") != unit or abs(heldout_fraction(cfg) - fraction) > 1e-12:
            matches = False
            notes.append(f"training used --unit {cfg.get('unit')} and held out {heldout_fraction(cfg):g}: "
                         "held-out text may have been seen in training")
        held_report = (report.get("heldout") or {}).get("windows")
        if held_report is not None and held_report != len(wins):
            matches = False
            notes.append(f"training held out {held_report} windows, this split has {len(wins)}")
    elif report is None:
        notes.append("no train-report.json to compare the split with")
    split = {"corpus": [os.path.abspath(p) for p in paths], "corpus_sha256": corpus.sha256, "unit": unit,
             "heldout_fraction": fraction, "documents": len(corpus.documents), "train_documents": len(train_docs),
             "heldout_documents": len(held), "heldout_tokens": int(sum(map(len, held_ids))),
             "heldout_windows": len(wins), "matches_training": matches, "notes": notes}
    desc = (f"last {fraction:g} of {len(corpus.documents)} {unit} documents ({len(held)} documents, "
            f"{len(wins)} windows; {len(idx)} scored)")
    return EvalData("heldout", desc, x, y, len(wins), tokenizer.texts_to_sequences(train_docs),
                    sample_texts(held, tokenizer, window), split, held_ids,
                    [tokenizer.words(d) for d in train_docs], [tokenizer.words(d) for d in held])


def from_model_windows(model_dir, tokenizer, window, max_eval, report):
    """The model folder's evaluation windows (windows.npz), when no corpus is given."""
    with np.load(os.path.join(model_dir, "windows.npz"), allow_pickle=False) as data:
        x_all, y_all = data["x_eval"], data["y_eval"]
    if x_all.shape[1] != window:
        raise ValueError(f"{model_dir}/windows.npz has windows of {x_all.shape[1]}, the bundle's are {window}")
    idx = subset(len(x_all), max_eval)
    source = (report or {}).get("eval_windows", {}).get("source", "unknown")
    train_ids, texts, split = None, [], {"notes": []}
    found = _corpus_of_report(report)
    if found:
        paths, unit, fraction = found
        corpus = read_corpus(paths, unit)
        train_docs, held = split_heldout(corpus.documents, fraction)
        train_ids = tokenizer.texts_to_sequences(train_docs)
        texts = sample_texts(held or train_docs, tokenizer, window)
        split.update({"unit": unit, "heldout_fraction": fraction, "documents": len(corpus.documents)})
    else:
        split["notes"].append("the training corpus is not readable here: no n-gram baseline")
    what = "held-out windows" if source == "heldout" else "training windows, which the model saw: not a held-out score"
    split.update({"source": source, "matches_training": source == "heldout"})
    return EvalData("model-windows", f"{len(idx)} of the model's {len(x_all)} evaluation windows ({what})",
                    x_all[idx].astype(np.int32), y_all[idx].astype(np.int64), len(x_all), train_ids, texts, split)


# -- scoring ---------------------------------------------------------------------------------
def score_batches(batches):
    """{"top1", "top3", "top5", "perplexity", "n"} over (probs, y) batches, every column the same way
    (train.metrics.Scores: ties by id, padding never ranked)."""
    scores = Scores(exclude=PADDING)
    for probs, y in batches:
        scores.add(probs, y)
    return scores.summary()


def score_predictor(predictor, x, y):
    t0 = time.perf_counter()
    res = score_batches((predictor.probabilities(x[i:i + CHUNK]), y[i:i + CHUNK]) for i in range(0, len(x), CHUNK))
    res["seconds"] = time.perf_counter() - t0
    return res


def score_probs(probs, y):
    return score_batches((probs[i:i + CHUNK], y[i:i + CHUNK]) for i in range(0, len(y), CHUNK))


def score_hybrid(predictor, x, y):
    """The bundle's own n-gram (ngram.npz) and the mixture the runtime suggests from
    (runtime/mix.py: lstm_weight x the LSTM + the rest x the n-gram) on the same windows, or {}
    when the bundle has no n-gram. The LSTM part is `predictor`'s variant."""
    lm = predictor.bundle.ngram()
    if lm is None:
        return {}
    entry = predictor.bundle.manifest.ngram
    lam = entry["lstm_weight"] if entry["lstm_weight"] is not None else Mixer(lm).lstm_weight
    ngram_rows, mixed_rows = [], []
    for i in range(0, len(x), CHUNK):
        q = lm.probs_batch(x[i:i + CHUNK])
        ngram_rows.append((q, y[i:i + CHUNK]))
        mixed_rows.append((lam * predictor.probabilities(x[i:i + CHUNK]) + (1 - lam) * q, y[i:i + CHUNK]))
    return {"ngram-bundle": dict(score_batches(ngram_rows), order=lm.order, size_bytes=entry["size"],
                                 quantization="counts", format="npz"),
            "mixture": dict(score_batches(mixed_rows), lstm_weight=lam, variant=predictor.variant.name,
                            quantization=predictor.variant.quantization, format="mixture",
                            size_bytes=predictor.variant.size + entry["size"])}


def ngram_baseline(train_ids, vocab_size, x, y):
    """Fit the interpolated Kneser-Ney trigram on the training documents and score it on the same
    windows (their last two ids are its context; pre-padding marks the start of a document)."""
    t0 = time.perf_counter()
    lm = KneserNeyTrigram(vocab_size).fit(train_ids)
    fit_seconds = time.perf_counter() - t0
    res = score_batches((lm.probs_batch(x[i:i + 256]), y[i:i + 256]) for i in range(0, len(x), 256))
    res.update(fit_seconds=fit_seconds, size_bytes=lm.size_bytes, train_tokens=lm.n_tokens,
               discounts=lm.discounts, order=lm.order)
    one = x[:1]
    lm.probs_batch(one)
    t = []
    for i in range(min(200, len(x))):
        t0 = time.perf_counter()
        lm.probs_batch(x[i:i + 1])
        t.append(time.perf_counter() - t0)
    res["seconds_per_window"] = float(np.median(t))
    return res
