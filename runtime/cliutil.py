"""What every nextword command does with errors: one line on stderr and an exit code, no traceback."""

import os
import sys

from .errors import NextwordError


def run(prog, body):
    """Call body() and turn the failures users can cause into (message, exit code)."""
    try:
        return body() or 0
    except NextwordError as e:
        _say(prog, e, e.exit_code)
        return e.exit_code
    except TypeError as e:  # only raised on purpose for wrongly typed API input
        _say(prog, e, 2)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (e.g. `| head -1`): stop quietly, and keep Python from complaining at exit
        _drop_stdout()
        return 0
    except OSError as e:
        # e.g. stdout on a full disk (ENOSPC): one line, no traceback, and no second complaint at exit
        _drop_stdout()
        where = f" ({e.filename})" if e.filename else ""
        _say(prog, f"{e.strerror or e}{where}", 1)
        return 1


def _drop_stdout():
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _say(prog, err, code):
    text = " ".join(str(err).split())
    print(f"{prog}: error: {text}", file=sys.stderr)


def exit_with(prog, body):
    sys.exit(run(prog, body))
