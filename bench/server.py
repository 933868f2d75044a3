"""A predictor in another Python environment, timed over the benchmark's line protocol (train/bench_protocol.py).

    python -m nextword.bench.server BUNDLE VARIANT PACKAGE TEXTS.json

Used for interpreters that cannot share the benchmark's process (tflite-runtime 2.14 needs
numpy<2), so they still take part in the interleaved rounds. Imports only the runtime and numpy.
Commands: e2e n (top_k(text, 5)), bare n (the interpreter call on a prepared window), tokenize n
(text -> window), rank n (softmax + top-5 of one logits row), batch n size (top_k_batch on `size`
texts).
"""

import json
import sys

import numpy as np

from nextword.runtime.backends import package_version
from nextword.runtime.child import run_child
from nextword.runtime.predictor import Predictor

from nextword.train.bench_protocol import protocol_stream, serve, timed


def handlers(predictor, texts):
    """The measures shared by in-process candidates (bench.timing) and this server."""
    n_t = len(texts)
    windows = np.stack([predictor.window_for(t) for t in texts]).astype(predictor._in_dtype)
    singles = [windows[i:i + 1].copy() for i in range(n_t)]
    runner = predictor._runner  # the bare interpreter call, as the predictor makes it

    def e2e(n):
        return {"samples": timed(lambda i: predictor.top_k(texts[i % n_t], 5), int(n))}

    def bare(n):
        return {"samples": timed(lambda i: runner.run([singles[i % n_t]]), int(n))}

    logits = [predictor.logits(w)[0] for w in singles]

    def tokenize(n):  # text -> ids -> pre-padded window: the predictor's work before the interpreter
        return {"samples": timed(lambda i: predictor.window_for(texts[i % n_t]), int(n))}

    def rank(n):  # softmax + top-5 over one row of logits: the predictor's work after it
        return {"samples": timed(lambda i: predictor._best(logits[i % n_t].copy(), 5), int(n))}

    def batch(n, size):
        size = int(size)
        groups = [texts[j:j + size] for j in range(0, n_t - size + 1, size)] or [texts[:size]]
        return {"samples": timed(lambda i: predictor.top_k_batch(groups[i % len(groups)], 5), int(n))}
    return {"e2e": e2e, "bare": bare, "tokenize": tokenize, "rank": rank, "batch": batch}


def main(argv):
    bundle, variant, package, texts_path = argv
    out = protocol_stream()
    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    predictor = Predictor.load(bundle, backend=package, variant=variant)
    h = handlers(predictor, texts)
    for name in ("e2e", "bare"):
        h[name](20)  # warm caches before the first timed round
    hello = {"versions": {"python": sys.version.split()[0], "numpy": np.__version__, package: package_version(package)}}
    serve(h, hello, out=out)


if __name__ == "__main__":
    run_child(main)
