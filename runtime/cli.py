"""nextword-predict: next-word suggestions from a bundle, with no TensorFlow."""

import argparse
import errno
import logging
import math
import re
import sys

from . import cliutil
from .errors import InputError, ModelError
from .backends import BACKENDS
from .limits import (MAX_BLOCKLIST_BYTES, MAX_BLOCKLIST_WORDS, MAX_COMPLETE_K, MAX_GENERATE_WORDS, MAX_LINE_BYTES,
                     MAX_NUMBER_CHARS, MAX_SEED, MAX_SKIP_BYTES, MAX_TOP_K, READ_CHUNK_BYTES, THREADS_PER_CORE,
                     max_threads)
from .predictor import Predictor
from .session_cli import stream_loop
from .terminal import check_finite, emit, escape, to_json, utf8_stdout

PROG = "nextword-predict"
COMPLETE_K = 6          # suggestions --complete prints without --top-k (what a keyboard shows)
_FROM_TEXT = object()   # --complete given without a value: complete TEXT, or each stdin line
_WHOLE = re.compile(r"[+-]?[0-9]+")   # ASCII digits only: int() also takes '١٢', '1_000' and ' 12 '


def whole_number(low, high, what=""):
    """An argparse type: a whole number written in ASCII digits, from low to high (high may be a
    function, e.g. max_threads, called when the argument is read)."""
    def parse(text):
        top = high() if callable(high) else high
        if len(text) > MAX_NUMBER_CHARS or not _WHOLE.fullmatch(text) or not low <= int(text) <= top:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low} to {top}{what}, got {text!r}")
        return int(text)
    return parse


def temperature(text):
    """An argparse type: a finite number > 0 (the library's rule, Predictor.generate: scores are shifted
    to max 0 before dividing, so a tiny temperature is greedy sampling, never an overflow)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text!r}")
    return value


def parser():
    p = cliutil.ArgumentParser(
        prog=PROG,
        description="Suggest the next word(s) after TEXT using a bundle made by nextword-export. Without TEXT, "
                    "answers each line read from stdin (an interactive session when stdin is a terminal). With "
                    "--complete, completes the word being typed instead (each stdin line is the text before the "
                    "cursor).",
        epilog=f"{cliutil.EXIT_CODES} Reading stdin, a bad line (not UTF-8, longer than {MAX_LINE_BYTES >> 20} MiB, "
               "or one the model fails on) gets one error line and the others are still answered; the exit code "
               f"then says the worst (5 over 2). A line with no break in {MAX_SKIP_BYTES >> 20} MiB (e.g. /dev/zero) "
               "stops the command (exit 2). Control characters in words and echoed input are printed escaped "
               "(\\x1b, \\u202e). Empty text or text with no known words is answered from an all-padding "
               "window (or OOV ids when the bundle has an OOV token); only the last WINDOW words count.")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle folder (manifest.json, vocab.json, model files)")
    p.add_argument("text", metavar="TEXT", nargs="?", help="the text so far (default: read lines from stdin)")
    p.add_argument("--top-k", type=whole_number(1, MAX_TOP_K), metavar="K",
                   help=f"print the K most likely next words with probabilities (1..{MAX_TOP_K})")
    p.add_argument("--generate", type=whole_number(0, MAX_GENERATE_WORDS), metavar="N",
                   help=f"continue the text by N words (greedy; 0..{MAX_GENERATE_WORDS})")
    p.add_argument("--sample", action="store_true", help="with --generate: sample instead of greedy")
    p.add_argument("--temperature", type=temperature, default=1.0,
                   help="with --sample: softmax temperature, any finite number > 0 (default 1; tiny = greedy)")
    p.add_argument("--seed", type=whole_number(0, MAX_SEED), help="with --sample: random seed for repeatable output "
                                                                  "(0..2**64-1)")
    p.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="interpreter: auto (the bundle's measured preference on the installed interpreters, "
                        "then its default variant, falling back), tflite, onnx, or a package name "
                        "(ai-edge-litert, tflite-runtime, onnxruntime) to restrict the choice")
    p.add_argument("--variant", metavar="NAME", help="a variant named in the manifest (see --info)")
    p.add_argument("--verbose", action="store_true",
                   help="print to stderr which variant runs on which interpreter and why (measured cost, "
                        "fallback, skipped candidates) before answering; stdout keeps only the answers")
    p.add_argument("--threads", type=whole_number(1, max_threads, f" ({THREADS_PER_CORE} per core here)"),
                   default=1, metavar="N", help=f"interpreter threads (default 1, at most {THREADS_PER_CORE} per core)")
    p.add_argument("--stream", action="store_true",
                   help="streaming session: each input line is fed as the next word(s) typed and suggestions "
                        "are printed after each; the LSTM state carries on (needs step variants)")
    p.add_argument("--complete", nargs="?", const=_FROM_TEXT, metavar="TEXT_BEFORE_CURSOR",
                   help="word completion: the most probable words that begin with the word the text ends in "
                        "(case-insensitive), or the next words when it ends with a space or punctuation, shown "
                        "as a person writes them (I, Elizabeth, Mr., a capital at a sentence start), best first, "
                        f"with probabilities; --top-k K sets how many (default {COMPLETE_K}, at most "
                        f"{MAX_COMPLETE_K}). Without a value: completes TEXT, or each stdin line (the text before "
                        "the cursor; an empty line if no word matches). --json gives records with word, display, "
                        "probability and source (model, or lexicon for words beyond the model's vocabulary)")
    p.add_argument("--mix", choices=("both", "lstm", "ngram"), default="both",
                   help="what suggestions are made of: both (default: the LSTM mixed with the bundle's n-gram with "
                        "the share export fitted on validation text; the LSTM alone when the bundle has no n-gram), "
                        "lstm, or ngram")
    p.add_argument("--blocklist", metavar="FILE",
                   help="never suggest the words of FILE (UTF-8, one word a line, blank lines and # comments "
                        f"ignored, at most {MAX_BLOCKLIST_BYTES >> 20} MiB and {MAX_BLOCKLIST_WORDS} words); "
                        "applies to every mode. No list is shipped")
    p.add_argument("--user-file", metavar="PATH",
                   help="with --stream: learn from the lines typed and keep what was learnt in PATH (a user "
                        "file, never inside the bundle; read at start, written atomically with mode 0600 at the "
                        "end of input and on /save); /forget WORD forgets a word. A corrupt, foreign or "
                        "oversized file is refused (exit 2)")
    p.add_argument("--json", action="store_true", help="one JSON object per answer")
    p.add_argument("--info", action="store_true", help="describe the bundle and the chosen variant/backend, then exit")
    return p


def answer(predictor, text, args):
    """The result for one text, as a dict (JSON) and as a line (plain)."""
    if args.complete is not None:
        best = predictor.complete(text, args.top_k if args.top_k is not None else COMPLETE_K)
        check_finite([s.probability for s in best])
        return ({"text": text, "complete": [dict(s.to_dict(), probability=round(s.probability, 6)) for s in best]},
                "  ".join(f"{s.display} {s.probability:.3f}" for s in best))
    if args.generate is not None:
        words = predictor.generate(text, args.generate, strategy="sample" if args.sample else "greedy",
                                   temperature=args.temperature, seed=args.seed)
        return {"text": text, "generated": words}, " ".join([text.strip()] + words).strip()
    if args.top_k is not None:
        best = predictor.top_k(text, args.top_k)
        check_finite([p for _, p in best])
        return ({"text": text, "top_k": [[w, round(p, 6)] for w, p in best]},
                "  ".join(f"{w} {p:.3f}" for w, p in best))
    word = predictor.predict_next(text)
    return {"text": text, "next": word}, word


def say(message):
    cliutil.say(PROG, message)


def _prompt():
    if sys.stderr is not None:
        print("> ", end="", file=sys.stderr, flush=True)


def _lines():
    """stdin lines as (number, text or None, error). A line that is not UTF-8 or longer than
    MAX_LINE_BYTES is reported and skipped, never fatal and never held whole; a line with no break
    in MAX_SKIP_BYTES is not text lines at all (e.g. /dev/zero): InputError, the command stops."""
    if sys.stdin is None:   # started with stdin closed (`<&-`): nothing to read
        return
    interactive = sys.stdin.isatty()
    stdin = sys.stdin.buffer
    number = 0
    while True:
        if interactive:
            _prompt()
        raw = stdin.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        number += 1
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            _skip_rest(stdin, len(raw), number)
            yield number, None, f"line {number}: longer than {MAX_LINE_BYTES} bytes; skipped"
            continue
        try:
            yield number, raw.decode("utf-8").rstrip("\r\n"), None
        except UnicodeDecodeError as e:
            yield number, None, f"line {number}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start}); skipped"


def _skip_rest(stdin, seen, number):
    """Read past the rest of a too-long line, a chunk at a time."""
    while True:
        chunk = stdin.readline(READ_CHUNK_BYTES)
        seen += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return
        if seen > MAX_SKIP_BYTES:
            raise InputError(f"line {number}: no line break in {MAX_SKIP_BYTES} bytes: the input is not lines "
                             "of text; stopped")


def body(args):
    if sys.stdout is None:   # started with stdout closed (`>&-`): print() would drop every answer silently
        raise OSError(errno.EBADF, "stdout is closed: nowhere to write the answers")
    if args.complete is not None and args.complete is not _FROM_TEXT:
        if args.text is not None:
            raise InputError("give the text to complete once: --complete TEXT or TEXT --complete, not both")
        args.text = args.complete
    if args.complete is not None and (args.generate is not None or args.stream):
        raise InputError("--complete does not combine with --generate or --stream")
    if args.user_file is not None and not args.stream:
        raise InputError("--user-file needs --stream: a session learns from the lines it is fed")
    if args.text is None and not args.info and sys.stdin is None:
        raise InputError("no TEXT given and stdin is closed: give TEXT, or lines of text on stdin")
    predictor = Predictor.load(args.bundle, backend=args.backend, variant=args.variant, num_threads=args.threads,
                               blocklist=args.blocklist, mix=args.mix)
    if args.verbose and sys.stderr is not None:
        print("\n".join(escape(line) for line in predictor.describe().split("\n")), file=sys.stderr, flush=True)
    if args.info:
        print(to_json(predictor.info(), ascii_only=not utf8_stdout(), indent=2), flush=True)
        return 0
    if args.stream:
        return stream_loop(predictor, args, _lines)
    if args.text is not None:
        emit(*answer(predictor, args.text, args), args.json)
        return 0
    bad_input = bad_model = 0
    for number, text, error in _lines():
        if error:
            say(error)
            bad_input += 1
            continue
        try:
            emit(*answer(predictor, text, args), args.json)
        except InputError as e:
            say(f"line {number}: {e}")
            bad_input += 1
        except ModelError as e:   # may hold for this input only (a NaN in one word's embedding row)
            say(f"line {number}: {e}")
            bad_model += 1
    return cliutil.worst(bad_input, bad_model)


def _tolerant_stdout():
    """Characters stdout's encoding cannot hold (PYTHONIOENCODING=ascii, a C locale) are written as
    backslash escapes instead of ending the command with UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):
            pass


def main(argv=None):
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _tolerant_stdout()
    args = parser().parse_intermixed_args(argv)   # TEXT may follow options: BUNDLE --top-k 3 TEXT
    cliutil.exit_with(PROG, lambda: body(args), catch_signals=True)


if __name__ == "__main__":
    main()
