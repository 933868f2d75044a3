"""The child-process guard: the first load of a file on tflite-runtime happens in a child process
(runtime/backends/probe_child.py), because a malformed flatbuffer crashes that interpreter with
SIGSEGV, which no exception handler can catch. Only a file that survived a child is loaded in this
process; survivors are remembered by (package, sha256) for the life of the process."""

import subprocess
import threading

from ..child import module_argv
from ..errors import VariantUnavailable

_PROBED = set()
_PROBED_LOCK = threading.Lock()


def probe_in_child(model_bytes, variant, package, timeout=120):
    """Load and invoke `model_bytes` once with `package` in a child; VariantUnavailable if it fails or crashes."""
    try:
        proc = subprocess.run(module_argv("nextword.runtime.backends.probe_child", package, variant.format),
                              input=bytes(model_bytes), capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise VariantUnavailable(f"{package} did not load {variant.file} within {timeout} s in a check process") from None
    if proc.returncode < 0:
        raise VariantUnavailable(f"{package} crashed (signal {-proc.returncode}) loading {variant.file} in a check "
                                 "process; the file is damaged or not a model this interpreter can run")
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no message"])[-1]
        raise VariantUnavailable(f"{package} refused {variant.file}: {last}")


def probe_once(model_bytes, variant, package, sha256):
    """probe_in_child, unless this (package, sha256) already survived one in this process."""
    key = (package, sha256)
    with _PROBED_LOCK:
        if key in _PROBED:
            return
    probe_in_child(model_bytes, variant, package)
    with _PROBED_LOCK:
        _PROBED.add(key)
