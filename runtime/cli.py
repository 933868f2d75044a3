"""nextword-predict: next-word suggestions from a bundle, with no TensorFlow."""

import argparse
import json
import logging
import sys

from . import cliutil
from .errors import InputError
from .backends import BACKENDS
from .predictor import Predictor
from .session_cli import stream_loop

PROG = "nextword-predict"


def parser():
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Suggest the next word(s) after TEXT using a bundle made by nextword-export. Without TEXT, "
                    "answers each line read from stdin (an interactive session when stdin is a terminal).",
        epilog="Exit codes: 0 ok, 2 bad usage or input, 3 invalid or damaged bundle, 4 no usable interpreter, "
               "130 interrupted. Empty text or text with no known words is answered from an all-padding "
               "window (or OOV ids when the bundle has an OOV token); only the last WINDOW words count.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder (manifest.json, vocab.json, model files)")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the text so far (default: read lines from stdin)")
    p.add_argument("--top-k", type=int, metavar="K", help="print the K most likely next words with probabilities")
    p.add_argument("--generate", type=int, metavar="N", help="continue the text by N words (greedy)")
    p.add_argument("--sample", action="store_true", help="with --generate: sample instead of greedy")
    p.add_argument("--temperature", type=float, default=1.0, help="with --sample: softmax temperature (default 1)")
    p.add_argument("--seed", type=int, help="with --sample: random seed for repeatable output")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="interpreter: auto (the bundle's measured preference on the installed interpreters, "
                        "then its default variant, falling back), tflite, onnx, or a package name "
                        "(ai-edge-litert, tflite-runtime, onnxruntime) to restrict the choice")
    p.add_argument("--variant", metavar="NAME", help="a variant named in the manifest (see --info)")
    p.add_argument("--verbose", action="store_true",
                   help="print to stderr which variant runs on which interpreter and why (measured cost, "
                        "fallback, skipped candidates) before answering; stdout keeps only the answers")
    p.add_argument("--threads", type=int, default=1, metavar="N", help="interpreter threads (default 1)")
    p.add_argument("--stream", action="store_true",
                   help="streaming session: each input line is fed as the next word(s) typed and suggestions "
                        "are printed after each; the LSTM state carries on (needs step variants)")
    p.add_argument("--json", action="store_true", help="one JSON object per answer")
    p.add_argument("--info", action="store_true", help="describe the bundle and the chosen variant/backend, then exit")
    return p


def answer(predictor, text, args):
    """The result for one text, as a dict (JSON) and as a line (plain)."""
    if args.generate is not None:
        words = predictor.generate(text, args.generate, strategy="sample" if args.sample else "greedy",
                                   temperature=args.temperature, seed=args.seed)
        return {"text": text, "generated": words}, " ".join([text.strip()] + words).strip()
    if args.top_k is not None:
        best = predictor.top_k(text, args.top_k)
        return ({"text": text, "top_k": [[w, round(p, 6)] for w, p in best]},
                "  ".join(f"{w} {p:.3f}" for w, p in best))
    word = predictor.predict_next(text)
    return {"text": text, "next": word}, word


def _emit(result, line, args):
    print(json.dumps(result, ensure_ascii=False) if args.json else line, flush=True)


def _lines():
    """stdin lines as (text or None, error); invalid UTF-8 is reported per line, never fatal."""
    interactive = sys.stdin.isatty()
    number = 0
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        raw = sys.stdin.buffer.readline()
        if not raw:
            return
        number += 1
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n"), None
        except UnicodeDecodeError as e:
            yield number, None, f"line {number}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); skipped"


def body(args):
    if args.top_k is not None and args.top_k < 1:
        raise InputError(f"--top-k must be at least 1, got {args.top_k}")
    if args.generate is not None and args.generate < 0:
        raise InputError(f"--generate must be 0 or more, got {args.generate}")
    if args.threads < 1:
        raise InputError(f"--threads must be at least 1, got {args.threads}")
    predictor = Predictor.load(args.bundle, backend=args.backend, variant=args.variant, num_threads=args.threads)
    if args.verbose:
        print(predictor.describe(), file=sys.stderr, flush=True)
    if args.info:
        print(json.dumps(predictor.info(), indent=2, ensure_ascii=False))
        return 0
    if args.stream:
        return stream_loop(predictor, args, _lines)
    if args.text is not None:
        _emit(*answer(predictor, args.text, args), args)
        return 0
    failed = 0
    for number, text, error in _lines():
        if error:
            print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
            failed += 1
            continue
        try:
            _emit(*answer(predictor, text, args), args)
        except InputError as e:
            print(f"{PROG}: error: line {number}: {e}", file=sys.stderr, flush=True)
            failed += 1
    return 2 if failed else 0


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    cliutil.exit_with(PROG, lambda: body(args))


if __name__ == "__main__":
    main()
