"""Per word typed, what the hybrid costs against the LSTM alone (issue 15's goal: at most 1.5x): a
stream session fed the words of held-out text one by one, each followed by its top 6, timed per word,
once with mix="lstm" and once with mix="both", in alternating rounds; medians printed as JSON.

    .venv/bin/python scripts/mix_cost.py BUNDLE CORPUS [--unit paragraph] [--words 4000] [--rounds 3]

The held-out text is the last 10% of the documents (the bench's split). Nothing here is a test."""

import argparse
import json
import statistics
import time

from nextword.runtime import Predictor
from nextword.train.corpus import read_corpus
from nextword.train.windows import split_heldout


def per_word(bundle, mix, words):
    session = Predictor.load(bundle, mix=mix).session()
    times = []
    for word in words:
        t0 = time.perf_counter()
        session.feed(word)
        session.top_k(6)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("corpus", nargs="+")
    ap.add_argument("--unit", default="paragraph", choices=("line", "paragraph"))
    ap.add_argument("--words", type=int, default=4000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    _, test = split_heldout(read_corpus(args.corpus, args.unit).documents, 0.1)
    tokenizer = Predictor.load(args.bundle, mix="lstm").tokenizer
    words = [w for d in test for w in tokenizer.words(d)][:args.words]
    medians = {"lstm": [], "both": []}
    for _ in range(args.rounds):
        for mix in medians:
            medians[mix].append(per_word(args.bundle, mix, words))
    lstm, both = statistics.median(medians["lstm"]), statistics.median(medians["both"])
    print(json.dumps({"words": len(words), "median_us_per_round": medians, "lstm_us": lstm, "both_us": both,
                      "ratio": both / lstm}, indent=1))


if __name__ == "__main__":
    main()
