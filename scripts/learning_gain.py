"""What learning from the user buys (issue 15 item 3), printed as JSON.

    .venv-runtime/bin/python scripts/learning_gain.py pp-bundle pride-and-prejudice.txt

The held-out text is the last `--fraction` (0.1) of the corpus' paragraphs (train.windows.split_heldout,
as the bench splits it). Its first half (by paragraphs) is what the user wrote before; its second
half is typed. Setups, each on fresh sessions of the bundle's step variant (stream mode, the context
reset at each paragraph):

- "model": no learning (today's suggestions);
- "online": learn=True, nothing learnt before: it learns each word once it has been typed;
- "learnt": the first half learnt (s.learn per paragraph, saved to a user file), then frozen
  (user_file=..., learn=False) while the second half is typed;
- "learnt+online": the first half learnt, and it goes on learning while the second half is typed.

For each: top-1 and top-3 of Session.top_k over every word of the second half (every word of the
tokenizer's split, words the model does not know included: they count as misses unless the user model
suggests them) and keystroke savings for N = 6 (bench/ksr.py's simulate, suggestions from
Session.complete; "complete_us" and "feed_us" time those calls apart). --grid tries other mixing weights (user_model.USER_WEIGHT and the part weights)
on the FIRST half alone (learn its first half, measure on its second), so the choice never sees the
text it is reported on. Nothing here is a test."""

import argparse
import itertools
import json
import os
import sys
import tempfile
import time

from nextword.bench.ksr import NextwordCompleter, simulate, summary_us
from nextword.runtime import Predictor
from nextword.runtime import learning, user_model
from nextword.train.corpus import read_corpus
from nextword.train.windows import split_heldout


def top_k_hits(session, docs, ks=(1, 3)):
    hits, words = {k: 0 for k in ks}, 0
    for doc in docs:
        session.reset()
        for word in doc:
            best = [w for w, _ in session.top_k(max(ks))]
            for k in ks:
                hits[k] += word in best[:k]
            words += 1
            session.feed(word)
    return {f"top{k}": hits[k] / words for k in ks}, words


def measure(predictor, docs, make_session, n=6):
    t0 = time.perf_counter()
    figures, words = top_k_hits(make_session(), docs)
    comp = NextwordCompleter(predictor)
    comp.session = make_session()
    rec = simulate(docs, comp, n, timed=True)
    figures.update(words=words, ksr=rec.ksr, keys_without=rec.keys_without, seconds=round(time.perf_counter() - t0, 1),
                   complete_us=summary_us(comp.complete_seconds), feed_us=summary_us(comp.feed_seconds))
    return figures


def run(predictor, learn_docs, test_docs, folder, setups=("model", "online", "learnt", "learnt+online")):
    path = os.path.join(folder, "user.json")
    if os.path.exists(path):
        os.unlink(path)
    s = predictor.session(learn=True, user_file=path)
    for doc in learn_docs:
        s.learn(" ".join(doc))
    s.save_user()
    makers = {"model": lambda: predictor.session(),
              "online": lambda: predictor.session(learn=True),
              "learnt": lambda: predictor.session(user_file=path),
              "learnt+online": lambda: predictor.session(learn=True, user_file=path)}
    return {name: measure(predictor, test_docs, makers[name]) for name in setups}


def set_weights(mu, bigram, unigram, cache):
    learning.USER_WEIGHT = mu
    user_model.BIGRAM_WEIGHT, user_model.UNIGRAM_WEIGHT, user_model.CACHE_WEIGHT = bigram, unigram, cache


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("corpus")
    ap.add_argument("--fraction", type=float, default=0.1)
    ap.add_argument("--grid", action="store_true", help="fit the mixing weights on the first half first")
    args = ap.parse_args(argv)
    predictor = Predictor.load(args.bundle)
    tok = predictor.tokenizer
    _, held = split_heldout(read_corpus([args.corpus], unit="paragraph").documents, args.fraction)
    docs = [d for d in (tok.words(t) for t in held) if d]
    half = len(docs) // 2
    first, second = docs[:half], docs[half:]
    out = {"bundle": os.path.abspath(args.bundle), "corpus": os.path.abspath(args.corpus), "fraction": args.fraction,
           "paragraphs": {"learnt": len(first), "typed": len(second)},
           "words": {"learnt": sum(map(len, first)), "typed": sum(map(len, second))},
           "variant": predictor.variant.name, "backend": predictor.package, "ksr_n": 6}
    with tempfile.TemporaryDirectory() as folder:
        if args.grid:
            q = len(first) // 2
            grid = []
            for mu, (b, u, c) in itertools.product((0.1, 0.2, 0.25, 0.3, 0.4),
                                                   ((0.5, 0.2, 0.3), (0.6, 0.1, 0.3), (0.4, 0.1, 0.5), (0.7, 0.1, 0.2),
                                                    (0.5, 0.0, 0.5))):
                set_weights(mu, b, u, c)
                r = run(predictor, first[:q], first[q:], folder, setups=("learnt+online",))["learnt+online"]
                grid.append({"mu": mu, "bigram": b, "unigram": u, "cache": c, **r})
                print(json.dumps(grid[-1]), file=sys.stderr, flush=True)
            best = max(grid, key=lambda g: (g["ksr"], g["top3"]))
            set_weights(best["mu"], best["bigram"], best["unigram"], best["cache"])
            out["grid"] = grid
        out["weights"] = {"mu": learning.USER_WEIGHT, "bigram": user_model.BIGRAM_WEIGHT,
                          "unigram": user_model.UNIGRAM_WEIGHT, "cache": user_model.CACHE_WEIGHT,
                          "half_life_words": user_model.HALF_LIFE_WORDS}
        out["results"] = run(predictor, first, second, folder)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
