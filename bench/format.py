"""How the benchmark writes numbers: ratios spelled out, durations, sizes, percentages, markdown tables."""

import math


def ratio(x, faster="faster", slower="slower"):
    """×1,850 faster / ×2.3 slower."""
    if x is None or not math.isfinite(x) or x <= 0:
        return "n/a"
    if x < 1:
        return f"×{1 / x:.1f} {slower}" if 1 / x < 100 else f"×{1 / x:,.0f} {slower}"
    return (f"×{x:,.0f}" if x >= 10 else f"×{x:.1f}") + (f" {faster}" if faster else "")


def us(x):
    if x is None:
        return "n/a"
    if x >= 1e6:
        return f"{x / 1e6:.2f} s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} ms" if x < 1e5 else f"{x / 1e3:.0f} ms"
    return f"{x:.1f} µs" if x < 100 else f"{x:.0f} µs"


def size(n):
    if n is None:
        return "n/a"
    if n >= 1 << 20:
        return f"{n / (1 << 20):.2f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KB"
    return f"{n} B"


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
