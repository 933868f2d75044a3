"""Where check-process verdicts are remembered across processes: one small JSON file per
(probe protocol, package, package version, sha256) under $NEXTWORD_PROBE_CACHE, else
$XDG_CACHE_HOME/nextword/probe, else ~/.cache/nextword/probe ("off" or "" turns it off).

Why trusting it is safe enough: a verdict is keyed by the sha256 of the exact bytes and by the exact
package version, and the probe protocol (what the check feeds) is part of the key, so a changed
check never reuses an old verdict. A stored pass only spares the check process; the pure-Python
structure check and allow-list (runtime/allowlist/) still run on every load, before any interpreter,
whatever this cache says -- so a forged pass cannot let a refused file through, and anyone who can
write here can already write the user's Python packages. A stored failure only refuses sooner (never
turns a failure into success); time-outs are not stored, since a busy machine is not a bad file.
Entries are written atomically (temporary file + rename), read only when small and well-formed
(anything else is ignored and re-checked), and bounded in number (oldest removed first)."""

import hashlib
import json
import logging
import os
import tempfile

from ..limits import PROBE_CACHE_ENTRY_BYTES, PROBE_CACHE_MAX_ENTRIES

log = logging.getLogger(__name__)

ENV = "NEXTWORD_PROBE_CACHE"
PROTOCOL = 2     # raise when probe_child feeds something else: old verdicts then no longer apply


def cache_dir():
    """The cache folder, or None when turned off."""
    value = os.environ.get(ENV)
    if value is not None:
        return None if value.strip() in ("", "off") else value
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "nextword", "probe")


def _entry(key):
    return {"protocol": PROTOCOL, "package": key[0], "version": key[1], "sha256": key[2]}


def _path(folder, key):
    digest = hashlib.sha256(json.dumps(_entry(key), sort_keys=True).encode()).hexdigest()
    return os.path.join(folder, digest[:40] + ".json")


def load(key):
    """(ok, message) stored for `key`, or None (absent, unreadable, malformed, or for another key)."""
    folder = cache_dir()
    if folder is None:
        return None
    try:
        with open(_path(folder, key), "rb") as f:
            raw = f.read(PROBE_CACHE_ENTRY_BYTES + 1)
        if len(raw) > PROBE_CACHE_ENTRY_BYTES:
            return None
        data = json.loads(raw)
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in _entry(key).items()):
            return None
        ok, message = data.get("ok"), data.get("message")
        if not isinstance(ok, bool) or not isinstance(message, str):
            return None
        return ok, message
    except (OSError, ValueError):
        return None


def store(key, ok, message):
    """Remember a verdict; failures to write are logged, never raised (the cache only saves time)."""
    folder = cache_dir()
    if folder is None:
        return
    data = json.dumps(dict(_entry(key), ok=ok, message=message[:PROBE_CACHE_ENTRY_BYTES // 2])).encode()
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, _path(folder, key))
        except BaseException:
            os.unlink(tmp)
            raise
        _trim(folder)
    except OSError as e:
        log.info("probe cache %s not written: %s", folder, e)


def _trim(folder):
    entries = []
    for name in os.listdir(folder):
        if name.endswith(".json") and not name.startswith(".tmp-"):
            try:
                entries.append((os.stat(os.path.join(folder, name)).st_mtime_ns, name))
            except OSError:
                continue
    for _, name in sorted(entries)[:max(0, len(entries) - PROBE_CACHE_MAX_ENTRIES)]:
        try:
            os.unlink(os.path.join(folder, name))
        except OSError:
            pass
