"""What the tests share: paths of the checkout's test data, the seed texts, and how to run the
installed command-line tools. Tests import the *installed* nextword package; nothing here puts the
checkout on sys.path."""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEED_BUNDLE = os.path.join(REPO, "artifacts", "seed")
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


def rehashed_copy(folder, files=None, vocab=None, edit=None, source=SEED_BUNDLE):
    """A copy of the `source` bundle at `folder` with variants' files replaced ({variant name: bytes}),
    vocab.json replaced (bytes, or a dict written as JSON) and/or the manifest changed by `edit(m)`,
    the manifest's sha256 and size rewritten for every replaced file: an attacker's bundle, which the
    hash check lets through. Returns the folder as a str."""
    folder = str(folder)
    shutil.copytree(source, folder)
    with open(os.path.join(folder, "manifest.json"), encoding="utf-8") as f:
        m = json.load(f)
    replaced = [(m["variants"][name], data) for name, data in (files or {}).items()]
    if vocab is not None:
        data = vocab if isinstance(vocab, bytes) else json.dumps(vocab, ensure_ascii=False).encode()
        replaced.append((m["tokenizer"], data))
    for entry, data in replaced:
        with open(os.path.join(folder, entry["file"]), "wb") as f:
            f.write(data)
        entry.update(sha256=hashlib.sha256(data).hexdigest(), size=len(data))
    if edit is not None:
        edit(m)
    with open(os.path.join(folder, "manifest.json"), "w", encoding="utf-8") as f:
        json.dump(m, f)
    return folder


def installed_packages():
    """Interpreter packages importable here, decided at collection time (never a skip)."""
    from nextword.runtime.backends import available_packages
    return sorted(available_packages())


SEED_TEXTS = [" ".join(line.split()[:n]) for line in (
    "hello how are you", "hello how is your day", "hello how are your friends", "hello what are you doing")
    for n in range(1, len(line.split()))]
