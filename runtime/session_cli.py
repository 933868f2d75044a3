"""`nextword-predict BUNDLE --stream`: a typing session on stdin.

Each line read is fed as the next word(s) typed (one word a line, or a line at a time) and the
suggestions for the word after it are printed, one line per input line (TEXT, when given, is fed
first and answered the same way). Commands:
"/undo" (or "/undo N") takes back the last word(s) fed, "/reset" starts over. With --user-file the
session learns the lines fed (runtime/learning.py), "/forget WORD" forgets a word and "/save" writes
the user file, which is also written at the end of input. The LSTM state carries
on between lines (stream mode, one step per word; see runtime/session.py)."""

from . import cliutil
from .errors import InputError, ModelError, cap_message
from .limits import MAX_UNDO_STEPS
from .terminal import check_finite, emit

PROG = "nextword-predict"
DEFAULT_K = 3


def _command(text):
    """('undo', n) / ('reset', None) / ('save', None) / ('forget', word) for a command line, else None."""
    parts = text.split()
    if not parts or parts[0] not in ("/undo", "/reset", "/save", "/forget"):
        return None
    if parts[0] in ("/reset", "/save"):
        if len(parts) != 1:
            raise InputError(f"{parts[0]} takes no argument")
        return parts[0][1:], None
    if parts[0] == "/forget":
        if len(parts) != 2:
            raise InputError("expected /forget WORD (one word)")
        return "forget", parts[1]
    if len(parts) == 1:
        return "undo", 1
    # ASCII digits only (str.isdigit takes '²', which int() refuses), and short enough for int()
    arg = parts[1]
    if len(parts) > 2 or len(arg) > len(str(MAX_UNDO_STEPS)) or not arg.isascii() or not arg.isdigit() \
            or int(arg) > MAX_UNDO_STEPS:
        raise InputError(f"expected /undo or /undo N (a whole number from 0 to {MAX_UNDO_STEPS}), "
                         f"got {cap_message(text.strip(), 80)!r}")
    return "undo", int(arg)


def stream_loop(predictor, args, lines):
    """Feed each line to one stream session and print suggestions after it. Returns the exit code:
    a bad line (input or a model failure) gets one error line and the session goes on, as in
    runtime/cli.py's stdin mode."""
    if getattr(args, "generate", None) is not None:
        raise InputError("--generate does not combine with --stream")
    k = args.top_k if args.top_k is not None else DEFAULT_K
    user_file = getattr(args, "user_file", None)
    session = predictor.session(mode="stream", learn=user_file is not None, user_file=user_file)
    bad_input = bad_model = 0

    def typed():
        if getattr(args, "text", None) is not None:   # TEXT on the command line: the first words typed
            yield 0, args.text, None
        yield from lines()
    for number, text, error in typed():
        if error:
            cliutil.say(PROG, error)
            bad_input += 1
            continue
        result = {"text": text}
        try:
            command = _command(text)
            if command is None:
                result["fed"] = session.feed(text)
            elif command[0] == "undo":
                result["undone"] = session.undo(command[1])
            elif command[0] == "forget":
                result["forgotten"] = session.forget(command[1])
            elif command[0] == "save":
                result["saved_bytes"] = session.save_user()
            else:
                session.reset()
                result["reset"] = True
            best = session.top_k(k)
            check_finite([p for _, p in best])
        except InputError as e:
            cliutil.say(PROG, f"line {number}: {e}")
            bad_input += 1
            continue
        except ModelError as e:
            cliutil.say(PROG, f"line {number}: {e}")
            bad_model += 1
            continue
        result["steps"] = session.steps
        result["top_k"] = [[w, round(p, 6)] for w, p in best]
        emit(result, "  ".join(f"{w} {p:.3f}" for w, p in best), args.json)
    if user_file is not None:
        session.save_user()
    return cliutil.worst(bad_input, bad_model)
