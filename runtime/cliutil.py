"""What every nextword command does with errors: one line on stderr and an exit code, no traceback.

A failure the user can cause or meet is a NextwordError with its own exit code; anything else that
escapes is a bug of ours, reported as one line that says so (exit 70) instead of being passed off as
the user's fault. Every line is escaped (runtime/terminal.py) and capped (errors.cap_message)."""

import argparse
import os
import signal
import sys
import traceback

from .errors import INTERNAL_EXIT_CODE, InputError, ModelError, NextwordError, cap_message
from .terminal import escape

DEBUG_ENV = "NEXTWORD_DEBUG"
OUTPUT_EXIT_CODE = 1
EXIT_CODES = (f"Exit codes: 0 ok; {OUTPUT_EXIT_CODE} output failed (e.g. a full disk); 2 bad usage or input; "
              "3 invalid or damaged bundle; 4 no usable interpreter; 5 the model misbehaved at run time "
              f"(non-finite scores, an interpreter error); {INTERNAL_EXIT_CODE} internal error, a bug in "
              f"nextword ({DEBUG_ENV}=1 prints its traceback); 130 interrupted (Ctrl-C); 129 hangup (SIGHUP); "
              "143 terminated (SIGTERM).")
SIGNAL_WORDS = {signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}


class Stopped(BaseException):
    """A signal asked us to stop (SIGTERM, SIGHUP): unwinds like KeyboardInterrupt does for SIGINT."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a usage error as ONE line (escaped, capped) and exit code 2."""

    def error(self, message):
        say(self.prog, f"{message} (see {self.prog} --help)")
        sys.exit(2)


def _stop(signum, frame):
    # the first one unwinds the program (finally blocks run, stdout is flushed); a second one of the
    # same kind while it does gets the default action, which ends the process at once
    signal.signal(signum, signal.SIG_DFL)
    raise Stopped(signum)


def _catch_signals():
    for signum in SIGNAL_WORDS:
        try:
            if signal.getsignal(signum) is not signal.SIG_IGN:   # nohup: keep ignoring SIGHUP
                signal.signal(signum, _stop)
        except (ValueError, OSError):   # not the main thread
            pass


def run(prog, body, catch_signals=False):
    """Call body() and turn every failure into one line on stderr and an exit code (see EXIT_CODES).
    catch_signals: SIGTERM and SIGHUP also end it that way (exit 143, 129) instead of killing it silently."""
    if catch_signals:
        _catch_signals()
    try:
        return body() or 0
    except Stopped as e:
        _flush_stdout()
        say(prog, SIGNAL_WORDS.get(e.signum, f"signal {e.signum}"), kind="")
        return 128 + e.signum
    except NextwordError as e:
        say(prog, e)
        return e.exit_code
    except KeyboardInterrupt:
        _flush_stdout()
        _write_err("\n")
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head -1`): stop quietly, and keep Python from complaining at exit
        _drop(sys.stdout)
        return 0
    except OSError as e:
        # e.g. stdout on a full disk (ENOSPC): one line, no traceback, and no second complaint at exit
        _drop(sys.stdout)
        where = f" ({e.filename})" if e.filename else ""
        say(prog, f"{e.strerror or e}{where}")
        return OUTPUT_EXIT_CODE
    except Exception as e:   # noqa: BLE001 - anything we did not raise on purpose is a bug of ours
        if os.environ.get(DEBUG_ENV):
            _write_err(traceback.format_exc())
        hint = "" if os.environ.get(DEBUG_ENV) else f"; run with {DEBUG_ENV}=1 to print the traceback"
        say(prog, f"{type(e).__name__}: {e} -- this is a bug in nextword, please report it{hint}",
            kind="internal error")
        return INTERNAL_EXIT_CODE


def say(prog, err, kind="error"):
    """`prog: kind: message` on stderr as one line: whitespace folded, controls escaped, length capped."""
    text = cap_message(escape(" ".join(str(err).split())))
    _write_err(f"{prog}: {kind}: {text}\n" if kind else f"{prog}: {text}\n")


def _write_err(text):
    """Write to stderr; a closed or hung-up stderr (SIGHUP on a terminal) is not worth a traceback."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):
        _drop(stream)


def _flush_stdout():
    if sys.stdout is None:
        return
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _drop(sys.stdout)


def _drop(stream):
    """Point `stream`'s descriptor at /dev/null, so the flush at exit neither fails nor complains
    (a failed flush at exit would also change the exit code to 120)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def worst(input_errors, model_errors):
    """The exit code of a session that answered every line it could: 5 if the model failed on some
    line, else 2 if some line was bad input, else 0."""
    return ModelError.exit_code if model_errors else InputError.exit_code if input_errors else 0


def exit_with(prog, body, catch_signals=False):
    try:
        code = run(prog, body, catch_signals)
    except Stopped as e:   # arrived while an error was being reported: the exit code still says so
        code = 128 + e.signum
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
