"""Reading a bundle's files: only regular files inside the bundle folder (no links, no FIFOs or
devices, nothing outside), bounded in size, and verified against the manifest's size and sha256
before their bytes go anywhere."""

import hashlib
import json
import os
import stat

from .errors import BundleInvalid, HashMismatch

MANIFEST = "manifest.json"


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_inside(folder, name, limit, where):
    """Read a bundle file as bytes, refusing anything that is not a regular file inside `folder`."""
    path = os.path.join(folder, name)
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(path)
    if os.path.commonpath([real_folder, real]) != real_folder or os.path.islink(path):
        raise BundleInvalid(f"{where}: {name} is a link or leads outside the bundle folder ({real}); refused")
    # O_NONBLOCK: a FIFO (or device) under a bundle name must not block the open; fstat refuses it below
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise BundleInvalid(f"{where}: {name} is missing from {folder}; copy the whole bundle folder") from None
    except OSError as e:
        raise BundleInvalid(f"{where}: cannot open {name} ({e.strerror})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):   # checked on the fd, before fdopen (which refuses folders with OSError)
        os.close(fd)
        raise BundleInvalid(f"{where}: {name} is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > limit:
            raise BundleInvalid(f"{where}: {name} is {st.st_size} bytes, more than the {limit} allowed")
        return f.read(st.st_size + 1)   # not limit + 1: read(n) allocates n bytes up front (1 GiB for a model)


def verified(data, name, size, sha256):
    if len(data) != size:
        raise HashMismatch(f"{name}: expected {size} bytes, found {len(data)} (truncated or half-copied?); "
                           "copy the bundle again")
    digest = sha256_bytes(data)
    if digest != str(sha256).lower():   # hex in any case: the manifest parser accepts both
        raise HashMismatch(f"{name}: sha256 is {digest[:16]}…, the manifest expects {str(sha256)[:16]}…; "
                           "the file is damaged or was changed after export: copy the bundle again")
    return data


def json_values_bound(raw):
    """An upper bound on the values (keys included) json.loads would build from `raw` (bytes): every
    value but the top one follows a '[', '{', ',' or ':'. Counted over all the bytes, those inside
    strings too (a word holding a comma counts one more): no exact count costs as little."""
    return 1 + sum(raw.count(c) for c in (b"[", b"{", b",", b":"))


def load_json(raw, limit, name):
    """Parse a bundle's JSON file (bytes) that may hold at most `limit` values: a file of a few MB
    made of "[]," or "0," would otherwise cost gigabytes in json.loads before any field is checked."""
    if json_values_bound(raw) > limit:
        raise BundleInvalid(f"{name} has more than {limit} JSON values (counting its [ {{ , : characters); an export "
                            "writes far fewer:"
                            " the file is damaged or was crafted")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # RecursionError: absurdly deep nesting
        raise BundleInvalid(f"{name} is not valid JSON ({e}); the bundle is damaged: re-export or copy it again") from None


def folder_identity(path):
    """What changes when a bundle folder is replaced (renamed over, or its manifest rewritten):
    the folder's inode and the manifest's inode, mtime and size. None if it cannot be read."""
    try:
        folder, manifest = os.stat(path), os.stat(os.path.join(path, MANIFEST))
    except (OSError, TypeError, ValueError):
        return None
    return folder.st_dev, folder.st_ino, manifest.st_ino, manifest.st_mtime_ns, manifest.st_size
