"""Latency summary of timing samples (numpy only): the benchmark's one way to report a distribution of
durations. Accuracy and perplexity live in train/metrics.py."""

import numpy as np


def latency_summary(samples_seconds):
    """Summary of timing samples given in seconds, reported in microseconds.

    Returns {"median", "p95", "p99", "mean", "min", "max", "iqr", "n"}: percentiles use numpy's
    default linear interpolation, iqr = p75 - p25, n = number of samples (an int)."""
    s = np.asarray(samples_seconds, dtype=np.float64).ravel()
    if s.size == 0:
        raise ValueError("latency_summary needs at least one sample")
    if not np.all(np.isfinite(s)) or np.any(s < 0):
        raise ValueError("latency samples must be finite, non-negative durations in seconds")
    us = s * 1e6
    p25, p50, p75, p95, p99 = np.percentile(us, [25, 50, 75, 95, 99])
    return {"median": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(us.mean()),
            "min": float(us.min()), "max": float(us.max()), "iqr": float(p75 - p25), "n": int(us.size)}
