"""`python -m nextword.runtime.measure BUNDLE VARIANT PACKAGE [CALLS]`: what one (window variant,
interpreter) costs on this machine, measured through the real Predictor, printed as one JSON line:

    {"cold_start_ms": ..., "load_ms": ..., "peak_rss_mib": ..., "call_us": ..., "calls": N}

cold_start_ms: from the top of this module to the first answer (the package's __init__, numpy
included, is imported just before this module runs and is the same for every pair; the interpreter's
import is inside); load_ms: interpreter import + Predictor.load + first answer alone; peak_rss_mib: the
process's peak resident set; call_us: median of CALLS timed top_k calls over a few texts. TF-free, so
it runs on a device's stack too (including tflite-runtime 2.14 in its own environment); export runs
it as a child per pair and writes the medians into the manifest (the default variant is chosen from
them)."""

import time

_MODULE_START = time.perf_counter()

import json      # noqa: E402  (after the clock: imports are part of the cold start)
import resource  # noqa: E402
import sys       # noqa: E402

from .child import run_child   # noqa: E402
from .predictor import Predictor   # noqa: E402

DEFAULT_CALLS = 200
TEXTS = ("hello", "how are you", "i would like to", "the day was long and", "she said that it")


def memory_mib(field="VmHWM"):
    """A memory figure of this process in MiB from /proc/self/status on Linux: VmHWM (peak resident
    set, the default) or VmRSS (current). Not ru_maxrss there, because it survives fork + exec: a child
    of a 580 MiB exporter reports 580 MiB whatever it loads. Elsewhere ru_maxrss (the peak; KiB on
    Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure(bundle, variant, package, calls=DEFAULT_CALLS):
    load_start = time.perf_counter()
    predictor = Predictor.load(bundle, backend=package, variant=variant)
    predictor.top_k(TEXTS[0], 5)
    ready = time.perf_counter()
    if predictor.package != package or predictor.variant.name != variant:
        raise RuntimeError(f"asked for {variant} on {package}, the Predictor loaded "
                           f"{predictor.variant.name} on {predictor.package}")
    times = []
    for i in range(calls):
        text = TEXTS[i % len(TEXTS)]
        t0 = time.perf_counter_ns()
        predictor.top_k(text, 5)
        times.append(time.perf_counter_ns() - t0)
    times.sort()
    middle = len(times) // 2
    median_ns = times[middle] if len(times) % 2 else (times[middle - 1] + times[middle]) / 2
    return {"cold_start_ms": (ready - _MODULE_START) * 1e3, "load_ms": (ready - load_start) * 1e3,
            "peak_rss_mib": memory_mib(), "call_us": median_ns / 1e3, "calls": calls}


def main(argv):
    if len(argv) not in (3, 4):
        raise SystemExit("usage: python -m nextword.runtime.measure BUNDLE VARIANT PACKAGE [CALLS]")
    calls = int(argv[3]) if len(argv) == 4 else DEFAULT_CALLS
    if not 1 <= calls <= 1_000_000:
        raise ValueError(f"CALLS must be from 1 to 1000000, got {calls}")
    print(json.dumps(measure(argv[0], argv[1], argv[2], calls)))


if __name__ == "__main__":
    run_child(main)
