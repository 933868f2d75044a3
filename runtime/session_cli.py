"""`nextword-predict BUNDLE --stream`: a typing session on stdin.

Each line read is fed as the next word(s) typed (one word a line, or a line at a time) and the
suggestions for the word after it are printed, one line per input line (TEXT, when given, is fed
first and answered the same way). Two commands:
"/undo" (or "/undo N") takes back the last word(s) fed, "/reset" starts over. The LSTM state carries
on between lines (stream mode, one step per word; see runtime/session.py)."""

import json
import sys

from .errors import InputError

PROG = "nextword-predict"
DEFAULT_K = 3


def _command(text):
    """('undo', n) / ('reset', None) for a command line, else None."""
    parts = text.split()
    if not parts or parts[0] not in ("/undo", "/reset"):
        return None
    if parts[0] == "/reset":
        if len(parts) != 1:
            raise InputError("/reset takes no argument")
        return "reset", None
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise InputError(f"expected /undo or /undo N (a whole number), got {text.strip()!r}")
    return "undo", int(parts[1]) if len(parts) == 2 else 1


def stream_loop(predictor, args, lines):
    """Feed each line to one stream session and print suggestions after it. Returns the exit code."""
    if getattr(args, "generate", None) is not None:
        raise InputError("--generate does not combine with --stream")
    k = args.top_k if args.top_k is not None else DEFAULT_K
    session = predictor.session(mode="stream")
    failed = 0

    def typed():
        if getattr(args, "text", None) is not None:   # TEXT on the command line: the first words typed
            yield 0, args.text, None
        yield from lines()
    for number, text, error in typed():
        if error:
            print(f"{PROG}: error: {error}", file=sys.stderr, flush=True)
            failed += 1
            continue
        result = {"text": text}
        try:
            command = _command(text)
            if command is None:
                result["fed"] = session.feed(text)
            elif command[0] == "undo":
                result["undone"] = session.undo(command[1])
            else:
                session.reset()
                result["reset"] = True
            best = session.top_k(k)
        except InputError as e:
            print(f"{PROG}: error: line {number}: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        result["steps"] = session.steps
        result["top_k"] = [[w, round(p, 6)] for w, p in best]
        if args.json:
            print(json.dumps(result, ensure_ascii=False), flush=True)
        else:
            print("  ".join(f"{w} {p:.3f}" for w, p in best), flush=True)
    return 2 if failed else 0
