"""The child-process guard: the first load of a file on tflite-runtime happens in a child process
(runtime/backends/probe_child.py), because a malformed flatbuffer or a hostile graph crashes that
interpreter with SIGSEGV, which no exception handler can catch. The child feeds real ids across the
vocabulary, not only zeros. Only a file that survived a child is loaded in this process.

Verdicts, pass AND fail, are remembered by (package, package version, sha256): in this process for
its life (a refused file is not re-checked on every load), and on disk across processes
(runtime/backends/probe_cache.py says why that is safe). The allow-list (runtime/allowlist/) runs
before this on every load whatever is remembered."""

import hashlib
import subprocess
import threading

from ..child import module_argv
from ..errors import VariantUnavailable
from ..limits import PROBE_TIMEOUT_S
from .probe_cache import load as load_verdict, store as store_verdict
from .packages import package_version

_VERDICTS = {}          # (package, version, sha256) -> (ok, message)
_LOCK = threading.Lock()


class _Timeout(VariantUnavailable):
    """A check process that ran out of time: remembered in this process, never on disk."""


def probe_in_child(model_bytes, variant, package, timeout=PROBE_TIMEOUT_S):
    """Load `model_bytes` with `package` in a child and invoke it on real ids (0 .. vocabulary size
    - 1, from the variant's first output); VariantUnavailable if it fails, crashes or times out."""
    vocab_size = int(variant.outputs[0].shape[-1])
    try:
        proc = subprocess.run(module_argv("nextword.runtime.backends.probe_child", package, variant.format, vocab_size),
                              input=bytes(model_bytes), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise _Timeout(f"{package} did not load and run {variant.file} within {timeout} s in a check process") from None
    if proc.returncode < 0:
        raise VariantUnavailable(f"{package} crashed (signal {-proc.returncode}) running {variant.file} in a check "
                                 "process; the file is damaged or not a model this interpreter can run")
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise VariantUnavailable(f"{package} refused {variant.file} in a check process: {last}")


def probe_once(model_bytes, variant, package, sha256=None):
    """probe_in_child, unless a verdict for (package, its version, sha256 of the bytes) is known: a
    remembered failure is raised again (VariantUnavailable), a remembered pass returns at once."""
    key = (package, package_version(package), (sha256 or hashlib.sha256(model_bytes).hexdigest()).lower())
    with _LOCK:
        known = _VERDICTS.get(key)
    if known is None:
        known = load_verdict(key)
        if known is not None:
            with _LOCK:
                known = _VERDICTS.setdefault(key, known)
    if known is None:
        try:
            probe_in_child(model_bytes, variant, package)
            known = (True, "")
            store_verdict(key, *known)
        except _Timeout as e:
            known = (False, str(e))
        except VariantUnavailable as e:
            known = (False, str(e))
            store_verdict(key, *known)
        with _LOCK:
            _VERDICTS[key] = known
    if not known[0]:
        raise VariantUnavailable(known[1])
