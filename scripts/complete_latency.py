"""Per-keystroke cost of word completion at large lexicons (issue 14 item 2), printed as JSON.

    .venv-runtime/bin/python scripts/complete_latency.py artifacts/seed [--words 10000 100000] [--oov]

For each size N, a temporary copy of BUNDLE gets N synthetic lexicon-only words (random letter strings
with Zipf-like counts, below every model word's count) in vocab.json, num_words set to the model's
vocabulary so the model is unchanged, and the manifest rehashed. Then the keystrokes of typing
sampled words (drawn by count, half of them uniformly) after a fixed context are timed one by one, from
the empty prefix (after the space) to the whole word:
- predictor: Predictor.complete(context + " " + typed) -- tokenizing the context's tail, the cached
  distribution, the prefix range and its ranking, the Suggestion records;
- session: Session.complete(typed) after feeding the context (a keyboard's path).
The first call of each context (the model call plus laying out the scores of all N words) is reported
apart ("context_change_us"), as is the one-off index build. One thread; wall-clock per call with
time.perf_counter_ns; nothing here is a test."""

import argparse
import hashlib
import json
import os
import platform
import random
import shutil
import statistics
import string
import sys
import tempfile
import time

from nextword.runtime import Predictor


def synthetic_bundle(source, folder, n, oov, seed=0):
    """A copy of `source` with n lexicon-only words appended to its vocabulary (manifest rehashed)."""
    shutil.copytree(source, folder)
    with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    size = manifest["vocab_size"]
    rng = random.Random(seed)
    low = min(c for _, c in vocab["word_counts"])
    scale = 1000
    counts = [[w, c * scale * 10] for w, c in vocab["word_counts"]]
    seen = {w for w, _ in counts}
    for rank in range(1, n + 1):
        while True:
            word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(3, 11)))
            if word not in seen:
                break
        seen.add(word)
        counts.append([word, max(1, int(low * scale * 10 / rank))])   # Zipf: count ~ 1/rank
    vocab["word_counts"] = counts
    vocab["config"]["num_words"] = size
    vocab["config"]["oov_token"] = "<oov>" if oov else None
    vocab["vocab_size"] = size
    data = json.dumps(vocab, ensure_ascii=False).encode()
    with open(os.path.join(folder, manifest["tokenizer"]["file"]), "wb") as f:
        f.write(data)
    manifest["tokenizer"].update(sha256=hashlib.sha256(data).hexdigest(), size=len(data), num_words=size,
                                 oov_token=vocab["config"]["oov_token"])
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f)
    return folder


def _stats(ns):
    us = sorted(x / 1000 for x in ns)
    return {"calls": len(us), "median_us": round(statistics.median(us), 1),
            "p90_us": round(us[int(0.9 * (len(us) - 1))], 1), "max_us": round(us[-1], 1)}


def measure(bundle, n, oov, targets, context):
    t0 = time.perf_counter_ns()
    p = Predictor.load(bundle)
    load_ns = time.perf_counter_ns() - t0
    t0 = time.perf_counter_ns()
    p.completer.index()
    build_ns = time.perf_counter_ns() - t0
    rng = random.Random(1)
    tok = p.tokenizer
    pool = [w for w in tok.word_counts if tok.word_index[w] >= p.vocab_size and w != tok.oov_token]
    weights = [tok.word_counts[w] for w in pool]
    words = rng.choices(pool, weights=weights, k=targets // 2) + rng.sample(pool, targets - targets // 2)
    keystroke, change, by_len = [], [], {}
    for i, ctx in enumerate([context, context + " are", context + " are you"]):
        t0 = time.perf_counter_ns()
        p.complete(ctx + " ")                      # a new context: model call + scores of every word
        change.append(time.perf_counter_ns() - t0)
    for word in words:
        for j in range(len(word) + 1):   # before the first letter too (what a keyboard shows after a space)
            text = context + " " + word[:j]
            t0 = time.perf_counter_ns()
            p.complete(text)
            dt = time.perf_counter_ns() - t0
            keystroke.append(dt)
            by_len.setdefault(min(j, 4), []).append(dt)
    session = p.session()
    session.feed(context)
    session.complete("")
    s_ns = []
    for word in words:
        for j in range(len(word) + 1):   # before the first letter too (what a keyboard shows after a space)
            t0 = time.perf_counter_ns()
            session.complete(word[:j])
            s_ns.append(time.perf_counter_ns() - t0)
    return {"lexicon_words": n, "tokenizer_words": len(tok.word_counts), "model_vocab": p.vocab_size,
            "oov_token": oov, "load_ms": round(load_ns / 1e6, 1), "index_build_ms": round(build_ns / 1e6, 1),
            "context_change_us": _stats(change), "predictor_keystroke": _stats(keystroke),
            "predictor_keystroke_by_prefix_len": {("4+" if k == 4 else str(k)): _stats(v) for k, v in sorted(by_len.items())},
            "session_keystroke": _stats(s_ns)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--words", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--oov", action="store_true", help="give the tokenizer an OOV token (lexicon words share its mass)")
    ap.add_argument("--targets", type=int, default=300, help="words typed per size")
    ap.add_argument("--context", default="hello how")
    args = ap.parse_args(argv)
    out = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.words:
            folder = synthetic_bundle(args.bundle, os.path.join(tmp, f"lex{n}"), n, args.oov)
            out["runs"].append(measure(folder, n, args.oov, args.targets, args.context))
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
