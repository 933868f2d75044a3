"""What the tests share: paths of the checkout's test data, the seed texts, and how to run the
installed command-line tools. Tests import the *installed* nextword package; nothing here puts the
checkout on sys.path."""

import importlib.util
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_BUNDLE = os.path.join(REPO, "artifacts", "seed")
SHARED_CORPUS = os.path.join(os.path.dirname(REPO), "shared", "corpora", "pride-and-prejudice.txt")
HAS_TF = importlib.util.find_spec("tensorflow") is not None
LEGACY_PYTHON = os.environ.get("NEXTWORD_LEGACY_PYTHON") or None
COMMANDS = ("nextword-train", "nextword-export", "nextword-predict", "nextword-bench")


def command_path(name, python=None):
    """The console script `name` installed beside `python` (default: this interpreter's environment)."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}")
    path = shutil.which(name, path=os.path.dirname(python or sys.executable))
    if path is None:
        raise FileNotFoundError(f"{name} is not installed beside {python or sys.executable}; install the wheel")
    return path


def run_cli(command, *args, stdin=None, timeout=600, env=None, cwd=None):
    """Run an installed `nextword-*` command; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([command_path(command), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or REPO, env=full_env)


def installed_packages():
    """Interpreter packages importable here, decided at collection time (never a skip)."""
    from nextword.runtime.backends import available_packages
    return sorted(available_packages())


SEED_TEXTS = [" ".join(line.split()[:n]) for line in (
    "hello how are you", "hello how is your day", "hello how are your friends", "hello what are you doing")
    for n in range(1, len(line.split()))]
