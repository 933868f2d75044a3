"""Interleaved timing: every candidate (variant x backend in this process, the Keras model and other
environments in child processes) is measured in rounds, a block of calls per measure per round,
with the order rotated each round. Machine drift (other jobs, frequency scaling, a cache going cold)
then lands on every column alike instead of on whichever ran last.

A measure is a function n -> list of n per-call durations in seconds, the same texts and windows
for every candidate. Block sizes are calibrated once per measure so a block lasts about
`block_seconds` (between `min_calls` and `max_calls` calls)."""

import gc
import logging
from dataclasses import dataclass, field

import numpy as np

from .latency import latency_summary
from .server import handlers

log = logging.getLogger(__name__)
BATCH_SIZES = (1, 8, 64)
KERAS_BATCHES = (1, 8, 64)


@dataclass
class Candidate:
    key: str                     # "tflite-float32@ai-edge-litert", "keras"
    kind: str                    # "runtime" | "keras"
    measures: dict               # name -> fn(n) -> samples
    min_calls: int = 10
    info: dict = field(default_factory=dict)
    blocks: dict = field(default_factory=dict)     # measure -> calls per block
    samples: dict = field(default_factory=dict)    # measure -> [seconds]
    rounds: dict = field(default_factory=dict)     # measure -> [median per round, µs]


def runtime_measures(fns):
    """e2e, bare, tokenize, rank and batch<B> measures from nextword.bench.server.handlers (in process or over a pipe)."""
    out = {name: (lambda name: lambda n: fns[name](n=n)["samples"])(name) for name in ("e2e", "bare", "tokenize", "rank")}
    for b in BATCH_SIZES:
        out[f"batch{b}"] = (lambda b: lambda n: fns["batch"](n=n, size=b)["samples"])(b)
    return out


def local_candidate(key, predictor, texts):
    c = Candidate(key, "runtime", runtime_measures(handlers(predictor, texts)))
    c.info = {"variant": predictor.variant.name, "backend": predictor.package, "where": "in process"}
    return c


def server_candidate(key, server, variant, package):
    fns = {name: (lambda name: lambda **a: server.ask(name, **a))(name) for name in ("e2e", "bare", "tokenize", "rank", "batch")}
    c = Candidate(key, "runtime", runtime_measures(fns))
    c.info = {"variant": variant, "backend": package, "where": "child process", "server": server}
    return c


def keras_candidate(server, min_calls):
    m = {"predict": lambda n: server.ask("predict", n=n)["samples"]}
    for b in KERAS_BATCHES:
        name = "call" if b == 1 else f"call{b}"
        m[name] = (lambda b: lambda n: server.ask("call", n=n, batch=b)["samples"])(b)
    c = Candidate("keras", "keras", m, min_calls=min_calls)
    c.info = {"where": "child process (TensorFlow)", "server": server}
    return c


def calibrate(c, block_seconds, max_calls, probe_seconds=0.02):
    """Calls per block for each measure of `c`, from a short warm-up probe."""
    for name, fn in c.measures.items():
        fn(min(2, c.min_calls))
        n, spent = 1, 0.0
        while True:
            s = fn(n)
            spent = sum(s)
            if spent >= probe_seconds or n >= 256:
                break
            n *= 4
        per_call = max(spent / n, 1e-7)
        c.blocks[name] = int(min(max_calls, max(c.min_calls, round(block_seconds / per_call))))


def run_rounds(candidates, rounds, tick=None):
    """`rounds` rounds; in round r the candidate order starts at r (mod len): a rotation."""
    for c in candidates:
        c.samples = {m: [] for m in c.measures}
        c.rounds = {m: [] for m in c.measures}
    for r in range(rounds):
        order = candidates[r % len(candidates):] + candidates[:r % len(candidates)]
        for c in order:
            gc.collect()
            for name, fn in c.measures.items():
                s = fn(c.blocks[name])
                c.samples[name].extend(s)
                c.rounds[name].append(float(np.median(s) * 1e6))
            if tick:
                tick(c.key)


def summarize(c):
    """{measure: latency_summary (µs) + per-round medians (+ throughput for batch measures)}."""
    out = {}
    for name, s in c.samples.items():
        d = latency_summary(s)
        d["round_medians"] = c.rounds[name]
        d["calls_per_block"] = c.blocks[name]
        batch = _batch_of(name)
        if batch:
            d["batch"] = batch
            d["texts_per_second"] = batch / (d["median"] * 1e-6)
        out[name] = d
    return out


def _batch_of(name):
    for prefix in ("batch", "call"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            return int(name[len(prefix):])
    return 1 if name == "call" else None
