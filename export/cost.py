"""What each (window variant, interpreter) costs on the exporting machine, and the order of
preference the bundle's default comes from.

Each pair is measured by `python -m nextword.runtime.measure` in a child (the legacy interpreter's
own python for tflite-runtime), RUNS times; the manifest keeps the medians. The score of a pair,
lower is better:

    score = cold_start_ms / best cold_start_ms + peak_rss_mib / best peak_rss_mib
            + call_us / best call_us

with each "best" the lowest over all measured pairs, so 3.0 means best on all three. Ties go to the
higher parity top-1 agreement, then the smaller file."""

import json
import logging
import statistics
import subprocess

from nextword.runtime.child import module_argv
from nextword.runtime.limits import MAX_PREFERENCE   # the runtime refuses longer lists

from .children import failure_reason

log = logging.getLogger(__name__)
RUNS = 3
CALLS = 200
TIMEOUT = 300
METRICS = ("cold_start_ms", "peak_rss_mib", "call_us")
SCORE_RULE = ("score = cold_start_ms / best + peak_rss_mib / best + call_us / best over all measured (variant, "
              "interpreter) pairs, lower is better (3.0 = best on all three); ties: higher parity top-1 "
              "agreement, then smaller file")


def measure_once(folder, variant, package, python=None, calls=CALLS):
    """One child's figures, or (None, reason)."""
    try:
        proc = subprocess.run(module_argv("nextword.runtime.measure", folder, variant, package, calls, python=python),
                              capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT} s"
    if proc.returncode != 0:
        return None, failure_reason(proc)
    try:
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        return {k: float(figures[k]) for k in METRICS}, None
    except (ValueError, KeyError, IndexError) as e:
        return None, f"unreadable output ({e}): {proc.stdout[-200:]!r}"


def measure(folder, variant, package, python=None, runs=RUNS):
    """The manifest's cost entry for one pair: medians of `runs` children, or (None, reason)."""
    got = []
    for _ in range(runs):
        figures, why = measure_once(folder, variant, package, python)
        if figures is None:
            return None, why
        got.append(figures)
    entry = {k: round(statistics.median(f[k] for f in got), 3) for k in METRICS}
    entry["runs"] = len(got)
    return entry, None


def rank(variants):
    """The preference list, best first, from manifest variant entries that carry "cost":
    [{"variant", "package", "score"}], at most MAX_PREFERENCE entries (empty when nothing was measured)."""
    pairs = [(name, pkg, cost) for name, v in variants.items() for pkg, cost in v.get("cost", {}).items()]
    if not pairs:
        return []
    best = {k: min(cost[k] for _, _, cost in pairs) for k in METRICS}
    scored = []
    for name, pkg, cost in pairs:
        score = sum(cost[k] / best[k] for k in METRICS)
        agreement = variants[name].get("parity", {}).get(pkg, {}).get("top1_agreement", 0.0)
        scored.append((score, -agreement, variants[name]["size"], name, pkg))
    scored.sort()
    return [{"variant": name, "package": pkg, "score": round(score, 6)}
            for score, _, _, name, pkg in scored[:MAX_PREFERENCE]]


def smallest_runnable(variants):
    """The fallback rule when nothing could be measured: the smallest window variant that ran on
    every interpreter that tried it (or the smallest at all)."""
    windows = {n: v for n, v in variants.items() if v["kind"] == "window"}
    everywhere = [n for n, v in windows.items() if all(r["ok"] for r in v["runtimes"].values())]
    return min(everywhere or windows, key=lambda n: windows[n]["size"])


def choose_default(variants, preference):
    """(default variant, reason written to the manifest)."""
    if preference:
        top = preference[0]
        return top["variant"], (f"lowest measured cost score {top['score']:g} on {top['package']} "
                                f"({SCORE_RULE})")
    return smallest_runnable(variants), ("no (variant, interpreter) pair could be measured here: the smallest "
                                         "window variant that runs everywhere it was checked")
