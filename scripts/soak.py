#!/usr/bin/env python3
"""Soak test (issue 6 item 8): many `top_k` calls on one Predictor; calls per second and RSS at the
start and the end. PASS when RSS grew by less than --max-growth-mb (default 5 MB).

    python scripts/soak.py artifacts/seed --calls 200000
    python scripts/soak.py artifacts/pp-bundle --variant tflite-int8 --out soak.json   # 1,000,000 calls

The start RSS is taken after loading and a warm-up (so one-time allocations of the interpreter and
numpy are not counted as growth); RSS is also sampled every --sample calls to report the peak and the
trend. Texts are drawn from the bundle's own vocabulary (1 to 2*window words) with a fixed seed; they
cycle through a pool of --texts distinct strings, so the tokenizer sees varied input. It runs against
the installed nextword package, like the tests."""

import argparse
import gc
import json
import os
import platform
import random
import sys
import time

from nextword.runtime import Predictor
from nextword.runtime.measure import memory_mib


def rss_mb():
    """Current resident set size in MB (Linux /proc; elsewhere the peak from getrusage)."""
    return memory_mib("VmRSS")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", help="bundle folder")
    p.add_argument("--variant", help="variant name (default: the bundle's default, with fallback)")
    p.add_argument("--backend", default="auto", help="auto | tflite | onnx | a package name")
    p.add_argument("--calls", type=int, default=1_000_000, help="number of top_k calls (default 1,000,000)")
    p.add_argument("--k", type=int, default=5, help="k for top_k (default 5)")
    p.add_argument("--texts", type=int, default=1000, help="distinct texts cycled through (default 1000)")
    p.add_argument("--warmup", type=int, default=2000, help="calls before the start RSS is taken (default 2000)")
    p.add_argument("--sample", type=int, default=50_000, help="sample RSS every N calls (default 50,000)")
    p.add_argument("--max-growth-mb", type=float, default=5.0, help="PASS threshold for RSS growth (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the figures as JSON here")
    args = p.parse_args(argv)
    if args.calls < 1 or args.texts < 1:
        p.error("--calls and --texts must be at least 1")

    rss_before_load = rss_mb()
    t0 = time.perf_counter()
    pred = Predictor.load(args.bundle, backend=args.backend, variant=args.variant)
    load_s = time.perf_counter() - t0
    info = pred.info()
    words = [w for w in pred.tokenizer.id_to_word_table() if w]
    rng = random.Random(args.seed)
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 2 * pred.window))) for _ in range(args.texts)]
    rss_after_load = rss_mb()

    top_k, k, n = pred.top_k, args.k, len(texts)
    for i in range(args.warmup):
        top_k(texts[i % n], k)
    gc.collect()
    rss_start = rss_mb()
    samples = [(0, rss_start)]
    print(f"soak: {args.calls:,} top_k(k={k}) calls on {info['variant']} via {info['backend']} "
          f"({info['bundle']}, vocab {info['vocab_size']:,}, window {info['window']})", flush=True)
    print(f"RSS  before load {rss_before_load:.1f} MB, after load {rss_after_load:.1f} MB, "
          f"start (after {args.warmup:,} warm-up calls) {rss_start:.1f} MB", flush=True)

    started = time.perf_counter()
    done = 0
    checksum = 0.0
    while done < args.calls:
        stop = min(args.calls, done + args.sample)
        for i in range(done, stop):
            checksum += top_k(texts[i % n], k)[0][1]
        done = stop
        rss = rss_mb()
        samples.append((done, rss))
        rate = done / (time.perf_counter() - started)
        print(f"  {done:>10,} calls  {rate:>9,.0f} calls/s  RSS {rss:.1f} MB", flush=True)
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_end = rss_mb()
    growth = rss_end - rss_start
    verdict = "PASS" if growth < args.max_growth_mb else "FAIL"
    result = {
        "bundle": info["bundle"], "variant": info["variant"], "backend": info["backend"],
        "backend_version": info["backend_version"], "vocab_size": info["vocab_size"], "window": info["window"],
        "calls": args.calls, "k": k, "distinct_texts": n, "warmup_calls": args.warmup,
        "load_seconds": round(load_s, 4), "seconds": round(elapsed, 3),
        "calls_per_second": round(args.calls / elapsed, 1), "microseconds_per_call": round(1e6 * elapsed / args.calls, 2),
        "rss_mb": {"before_load": round(rss_before_load, 2), "after_load": round(rss_after_load, 2),
                   "start": round(rss_start, 2), "end": round(rss_end, 2), "peak_sampled": round(max(r for _, r in samples), 2),
                   "growth": round(growth, 2)},
        "rss_samples": [[c, round(r, 2)] for c, r in samples],
        "max_growth_mb": args.max_growth_mb, "verdict": verdict, "checksum": round(checksum, 6),
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
    }
    print(f"{args.calls:,} calls in {elapsed:.1f} s: {result['calls_per_second']:,.0f} calls/s "
          f"({result['microseconds_per_call']} µs/call)")
    print(f"RSS start {rss_start:.1f} MB, end {rss_end:.1f} MB, growth {growth:+.2f} MB "
          f"(limit {args.max_growth_mb} MB): {verdict}")
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
        print(f"written {args.out}")
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
