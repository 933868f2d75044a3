"""nextword-bench: speed, memory, size and quality of a bundle's variants against the Keras model
and an n-gram baseline, in one interleaved run. This process never imports TensorFlow."""

import argparse
import logging
import os
import shlex
import sys

from nextword.runtime import cliutil
from nextword.runtime.bundle import Bundle
from nextword.runtime.errors import InputError

from .children import python_has
from .report import console
from .run import Options, run

PROG = "nextword-bench"


def parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Benchmark every variant × backend of BUNDLE: latency of top_k and of the bare interpreter call, "
                    "top_k_batch throughput, cold start and peak RSS of nextword-predict, file sizes, and held-out "
                    "quality (top-1/3/5, perplexity) — against the Keras model (--keras, measured in a TensorFlow "
                    "child process) and an interpolated Kneser-Ney trigram. Writes bench.json, bench.md and PNG charts.",
        epilog="Quality needs --corpus (the held-out slice: the last --heldout-fraction of the --unit documents, as "
               "nextword-train --val-split made it) or --keras (the model folder's evaluation windows). Keystroke "
               "savings need --corpus; Presage's rows need its text2ngram and presage_simulator on PATH (else a "
               "note). Exit codes: "
               "0 ok, 2 bad input, 3 invalid bundle, 4 no usable interpreter.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder made by nextword-export")
    p.add_argument("--keras", metavar="MODEL_DIR", help="the model folder the bundle came from (Keras columns)")
    p.add_argument("--keras-python", metavar="PYTHON", default=sys.executable,
                   help="python with TensorFlow for the Keras child processes (default: this one)")
    p.add_argument("--legacy-python", metavar="PYTHON", default=os.environ.get("NEXTWORD_LEGACY_PYTHON"),
                   help="python with tflite-runtime 2.14: its TFLite rows are measured in a child process "
                        "(default: $NEXTWORD_LEGACY_PYTHON)")
    p.add_argument("--corpus", nargs="+", metavar="PATH", help="the training corpus (files or folders)")
    p.add_argument("--heldout-fraction", type=float, metavar="F",
                   help="held-out fraction of the documents (default: the model's --val-split, else 0.1)")
    p.add_argument("--unit", choices=("line", "paragraph"), help="document unit (default: the model's, else line)")
    p.add_argument("--max-eval", type=int, default=3000, metavar="N",
                   help="score at most N held-out windows, the same subset for every column (0: all; default 3000)")
    p.add_argument("--ksr-words", type=int, default=0, metavar="N",
                   help="keystroke savings (with --corpus): type at most the first N held-out words (default 0: all)")
    p.add_argument("--no-ksr", action="store_true",
                   help="no keystroke-savings table (nextword, the n-gram and, when installed, Presage at N = 1, 3, 6)")
    p.add_argument("--learn-text", metavar="FILE",
                   help="a second text, never trained on (the user's own writing): its first half of documents is "
                        "learnt, its second typed; top-1/3, perplexity and keystroke savings (N = 6) with and without "
                        "learning, and Presage's default set-up after the same first half when installed")
    p.add_argument("--out", metavar="DIR", help="output folder (default: bench-results/<bundle name>)")
    p.add_argument("--repeats", type=int, metavar="N", help="interleaved timing rounds (default 10; --quick 3)")
    p.add_argument("--block-ms", type=float, metavar="MS", help="target length of one block of calls (default 100; --quick 20)")
    p.add_argument("--cold-runs", type=int, metavar="N", help="fresh processes per cold start (default 5; --quick 2)")
    p.add_argument("--quick", action="store_true", help="few repetitions: a smoke run, not figures to quote")
    p.add_argument("--scaling", action="store_true",
                   help="also measure cost against vocabulary (1k, 5k, 20k) and window (5, 20, 50) on random-weight "
                        "models (builds and exports them once: minutes)")
    p.add_argument("--scaling-cache", metavar="DIR", default=os.path.join("bench-results", "scaling-cache"),
                   help="where the scaling models and bundles are kept (default bench-results/scaling-cache)")
    p.add_argument("--no-charts", action="store_true", help="no PNG charts")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def _bar(quiet):
    if quiet:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(desc="bench", unit="step", file=sys.stderr, leave=False)


def body(args, argv):
    for name in ("repeats", "cold_runs", "max_eval", "ksr_words"):
        v = getattr(args, name)
        least = 0 if name in ("max_eval", "ksr_words") else 1
        if v is not None and v < least:
            raise InputError(f"--{name.replace('_', '-')} must be at least {least}, got {v}")
    if args.heldout_fraction is not None and not 0 < args.heldout_fraction < 1:
        raise InputError(f"--heldout-fraction must be between 0 and 1, got {args.heldout_fraction}")
    if args.keras and not os.path.isdir(args.keras):
        raise InputError(f"--keras {args.keras} is not a folder (expected a model folder from nextword-train)")
    if args.learn_text and not os.path.isfile(args.learn_text):
        raise InputError(f"--learn-text {args.learn_text} is not a file (expected a UTF-8 text)")
    Bundle.open(args.bundle)  # a bad bundle is one line before anything starts
    name = os.path.basename(os.path.normpath(args.bundle))
    opt = Options(
        bundle=args.bundle, out=args.out or os.path.join("bench-results", name), keras=args.keras,
        keras_python=args.keras_python, legacy_python=args.legacy_python, corpus=args.corpus,
        heldout_fraction=args.heldout_fraction, unit=args.unit, max_eval=args.max_eval,
        rounds=args.repeats or (3 if args.quick else 10),
        block_seconds=(args.block_ms or (20 if args.quick else 100)) / 1e3,
        keras_min_calls=3 if args.quick else 5, cold_runs=args.cold_runs or (2 if args.quick else 5),
        quick=args.quick, ksr=not args.no_ksr, ksr_words=args.ksr_words, scaling=args.scaling,
        scaling_cache=args.scaling_cache, charts=not args.no_charts, learn_text=args.learn_text,
        command=" ".join([PROG] + [shlex.quote(a) for a in argv]))
    if args.keras:
        if not python_has(args.keras_python, "tensorflow"):
            print(f"{PROG}: TensorFlow is not importable by {args.keras_python}: continuing without the Keras columns",
                  file=sys.stderr)
    bar = _bar(args.quiet)

    def tick(label):
        if bar is not None:
            bar.set_description(label[:50])
            bar.update(1)
    try:
        res = run(opt, tick)
    finally:
        if bar is not None:
            bar.close()
    print(console(res))
    print(f"\nwritten: {os.path.join(opt.out, 'bench.json')}, {os.path.join(opt.out, 'bench.md')}"
          + (", " + ", ".join(res["charts"]) if res["charts"] else ""))
    return 0


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    cliutil.exit_with(PROG, lambda: body(args, argv))


if __name__ == "__main__":
    main()
