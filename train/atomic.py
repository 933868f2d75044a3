"""Folders that appear whole or not at all: build in a temp folder beside the target, rename into
place. A killed run leaves only a temp folder, which the next run removes."""

import ctypes
import logging
import os
import re
import shutil
import uuid

from nextword.runtime.errors import InputError

log = logging.getLogger(__name__)
PREFIX = ".nextword-tmp-"


class OutputExists(InputError):
    """The output folder exists and --force was not given."""


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target):
    """Remove temp folders that earlier, killed runs left beside `target` (their process is gone)."""
    parent, base = os.path.split(os.path.abspath(target))
    if not os.path.isdir(parent):
        return []
    removed = []
    pattern = re.compile(re.escape(PREFIX + base) + r"\.(\d+)\.[0-9a-f]{8}(\.old)?$")
    for name in sorted(os.listdir(parent)):
        match = pattern.match(name)
        if not match or int(match.group(1)) == os.getpid() or _pid_alive(int(match.group(1))):
            continue
        path = os.path.join(parent, name)
        if match.group(2) and not os.path.exists(target):
            os.rename(path, target)  # killed between the two renames of a replacement: put the old one back
            log.warning("restored %s from an interrupted replacement", target)
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(name)
    if removed:
        log.info("removed %d leftover temporary folder(s) beside %s", len(removed), target)
    return removed


class AtomicFolder:
    """with AtomicFolder(out, force) as tmp: write into tmp; on success it becomes `out`."""

    def __init__(self, target, force=False):
        self.target = os.path.abspath(target)
        self.force = force
        check_target(self.target, force)
        parent, base = os.path.split(self.target)
        self.tmp = os.path.join(parent, f"{PREFIX}{base}.{os.getpid()}.{uuid.uuid4().hex[:8]}")

    def __enter__(self):
        os.makedirs(os.path.dirname(self.target), exist_ok=True)
        clean_leftovers(self.target)
        os.mkdir(self.tmp)
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return False
        _fsync_tree(self.tmp)
        check_target(self.target, self.force)
        if not os.path.exists(self.target):
            os.rename(self.tmp, self.target)
        elif _exchange(self.tmp, self.target):
            shutil.rmtree(self.tmp, ignore_errors=True)   # tmp now holds the previous folder
        else:
            old = self.tmp + ".old"
            os.rename(self.target, old)       # no atomic exchange here: two renames, and a run
            os.rename(self.tmp, self.target)  # killed between them is repaired by clean_leftovers
            shutil.rmtree(old, ignore_errors=True)
        return False


def _exchange(a, b):
    """Swap two folders in one step (Linux renameat2 RENAME_EXCHANGE): readers never see a gap."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def check_target(target, force):
    if os.path.exists(target) and not force:
        raise OutputExists(f"{target} already exists; pass --force to replace it")
    if os.path.exists(target) and not os.path.isdir(target):
        raise InputError(f"{target} exists and is not a folder; refusing to replace it")


def _fsync_tree(folder):
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                os.fsync(f.fileno())
