"""Opening a variant on an interpreter, and the fallback chain across (variant, package) candidates."""

import logging

from ..allowlist.tflite import check_tflite
from ..errors import BackendUnavailable, VariantUnavailable, check_threads
from ..limits import MAX_LOAD_ATTEMPTS
from .onnx import OnnxBackend, refuse_unless_allowed
from .packages import PACKAGES, import_package
from .probe import probe_once
from .tflite import TfliteBackend

log = logging.getLogger(__name__)

ADAPTERS = {"tflite": TfliteBackend, "onnx": OnnxBackend}


def open_backend(model_bytes, variant, package, num_threads=1, sha256=None, guard=None):
    """Build the adapter for `package`. The thread count is checked first (1 .. limits.max_threads()).
    A TFLite file must pass the allow-list (runtime/allowlist/tflite.py) before any interpreter, on
    every package. `guard` (default: on for tflite-runtime, whose interpreter trusts the flatbuffer)
    then runs it once in a child process first (runtime/backends/probe.py)."""
    num_threads = check_threads(num_threads)
    if package not in PACKAGES[variant.format]:
        raise BackendUnavailable(f"{package} cannot run {variant.format} files")
    if guard is None:
        guard = package == "tflite-runtime"
    import_package(package)  # a missing package is BackendUnavailable before any probing
    if variant.format == "tflite":
        check_tflite(model_bytes, variant.file, package)
    if guard and variant.format == "onnx":
        refuse_unless_allowed(model_bytes, variant, package)   # a probe's child is an interpreter too
    if guard:
        probe_once(model_bytes, variant, package, sha256)
    return ADAPTERS[variant.format](model_bytes, variant, package, num_threads)


def open_first(bundle, candidates, num_threads=1, strict=False, what="variant"):
    """The fallback chain: candidates are [(variant, packages)], tried in order; the first variant x
    package that loads wins. Returns (variant, runner, package, skipped reasons). A damaged file
    (HashMismatch) is an error, never a reason to fall back; `strict` re-raises an interpreter's refusal.
    Nothing loadable: BackendUnavailable when a package was missing, else VariantUnavailable. At most
    MAX_LOAD_ATTEMPTS files are handed to open_backend (each may cost a check process), so a manifest
    listing many refused variants fails in bounded time."""
    skipped, missing, attempts = [], False, 0
    for v, packages in candidates:
        if not packages:
            skipped.append(f"{v.name}: the requested backend does not run {v.format} files")
            continue
        for pkg in packages:
            ok, reason = v.runnable_on(pkg)
            if not ok:
                skipped.append(f"{v.name} on {pkg}: not runnable there ({reason})")
                continue
            try:
                import_package(pkg)
            except BackendUnavailable as e:
                skipped.append(f"{v.name} on {pkg}: {e}")
                missing = True
                continue
            if attempts == MAX_LOAD_ATTEMPTS:
                raise VariantUnavailable(f"no {what} of {bundle.path} could be loaded in {MAX_LOAD_ATTEMPTS} attempts "
                                         f"(the most one load makes): {'; '.join(skipped)}")
            attempts += 1
            data = bundle.model_bytes(v)
            try:
                runner = open_backend(data, v, pkg, num_threads=num_threads, sha256=v.sha256)
            except VariantUnavailable as e:
                if strict:
                    raise
                skipped.append(f"{v.name} on {pkg}: {e}")
                continue
            log.info("loaded %s %s on %s (%d threads)", what, v.name, pkg, num_threads)
            return v, runner, pkg, skipped
    detail = "; ".join(skipped) or "no candidates"
    if missing:
        raise BackendUnavailable(f"no usable interpreter for a {what} of {bundle.path}: {detail}")
    raise VariantUnavailable(f"no {what} of {bundle.path} can run here: {detail}")
