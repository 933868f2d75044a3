"""How the package starts a Python child on one of its own modules.

`python -m nextword.x` puts the working directory first on sys.path, so a user's own nextword.py
(or train.py, export.py, ...) there would be imported instead of ours. The launcher below drops the
working directory from sys.path and runs the module as __main__: children find the *installed*
package, never the checkout or the caller's folder, and need no PYTHONPATH."""

import sys

_LAUNCHER = ("import os, runpy, sys; "
             "sys.path[:] = [p for p in sys.path if p not in ('', '.', os.getcwd())]; "
             "sys.argv = sys.argv[1:]; "
             "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)")


def module_argv(module, *args, python=None):
    """argv that runs `module` (a dotted name under nextword) as a script in `python` (default: this one)."""
    if not module.startswith("nextword."):
        raise ValueError(f"module must be one of nextword's, got {module!r}")
    return [python or sys.executable, "-c", _LAUNCHER, module, *map(str, args)]


def run_child(main):
    """A child module's entry point: main(sys.argv[1:]); any exception becomes one line on stderr (at
    most 500 characters, which the parent reports) and exit status 1. A crash shows as a signal."""
    try:
        main(sys.argv[1:])
    except Exception as e:
        print(f"{type(e).__name__}: {' '.join(str(e).split())}"[:500], file=sys.stderr)
        sys.exit(1)


def readable_argv(argv):
    """`argv` as a person would type it: the launcher shown as `-m MODULE`."""
    argv = list(argv)
    if len(argv) >= 4 and argv[1] == "-c" and argv[2] == _LAUNCHER:
        return [argv[0], "-m", *argv[3:]]
    return argv
