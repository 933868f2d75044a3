"""PNG charts of a bench result (matplotlib, Agg backend). Returns the file names written."""

import json
import logging
import os
import sys

log = logging.getLogger(__name__)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _color(name):
    """One colour per column name, stable across charts."""
    fixed = {"keras": "#c0392b", "ngram-kn3": "#555555"}
    if name in fixed:
        return fixed[name]
    order = ("tflite-float32", "tflite-float16", "tflite-dynamic-int8", "tflite-int8", "onnx-float32", "onnx-dynamic-int8")
    return f"C{order.index(name)}" if name in order else f"C{(sum(map(ord, name)) % 8) + 2}"


def latency_chart(res, path):
    plt = _plt()
    rows = {k: v for k, v in res["latency"].items() if k != "keras"}
    labels = list(rows)
    e2e = [rows[k]["e2e"]["median"] for k in labels]
    e2e_err = [rows[k]["e2e"]["p95"] - rows[k]["e2e"]["median"] for k in labels]
    bare = [rows[k]["bare"]["median"] for k in labels]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(labels) + 2.2))
    y = range(len(labels))
    ax.barh([i + 0.2 for i in y], e2e, height=0.4, xerr=[[0] * len(labels), e2e_err], label="end-to-end top_k (to p95)",
            color="#3b7dd8", capsize=2)
    ax.barh([i - 0.2 for i in y], bare, height=0.4, label="bare interpreter call", color="#9cc3f5")
    keras = res["latency"].get("keras")
    if keras:
        for key, style, name in (("predict", "--", "Keras model.predict"), ("call", ":", "Keras model(x)")):
            ax.axvline(keras[key]["median"], color="#c0392b", linestyle=style, label=f"{name} ({keras[key]['median'] / 1e3:.1f} ms)")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()  # the table's order, top to bottom
    ax.set_xscale("log")
    ax.set_xlabel("µs per call (median, log scale)")
    ax.set_title(f"{res['bundle']['name']}: latency per variant and backend")
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def size_accuracy_chart(res, path):
    q = (res.get("quality") or {}).get("columns")
    if not q:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    named = sorted(((n, c) for n, c in q.items() if c.get("size_bytes")), key=lambda nc: nc[1]["size_bytes"])
    for ax, metric in zip(axes, ("top1", "top3")):
        for i, (name, c) in enumerate(named):
            marker = "s" if name == "keras" else ("^" if name.startswith("ngram") else "o")
            x, y = c["size_bytes"] / 1024, 100 * c[metric]
            ax.scatter(x, y, marker=marker, s=40, color=_color(name))
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4 if i % 2 else -10), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("size, KB (log scale; n-gram: its count tables in memory)")
        ax.set_ylabel(f"top-{metric[3:]} accuracy, %")
        ax.set_title(f"{res['bundle']['name']}: size against top-{metric[3:]} accuracy")
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def scaling_chart(res, path, axis):
    sc = res.get("scaling")
    if not sc:
        return False
    plt = _plt()
    pts = sorted((p for p in sc["points"] if p["axis"] in (axis, "both")),
                 key=lambda p: p["vocab_size"] if axis == "vocab" else p["window"])
    xs_key = "vocab_size" if axis == "vocab" else "window"
    names = sorted({n for p in pts for n in p["variants"]})
    colors = {n: _color(n) for n in names}
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name in names:
        xs = [p[xs_key] for p in pts if name in p["variants"]]
        a.plot(xs, [p["variants"][name]["e2e"] for p in pts if name in p["variants"]], marker="o", color=colors[name],
               label=f"{name} top_k")
        a.plot(xs, [p["variants"][name]["bare"] for p in pts if name in p["variants"]], marker=".", linestyle="--",
               color=colors[name], label=f"{name} bare")
        b.plot(xs, [p["variants"][name]["bytes"] / 1024 for p in pts if name in p["variants"]], marker="o",
               color=colors[name], label=name)
    label = "vocabulary size" if axis == "vocab" else "window (tokens)"
    fixed = f"window {pts[0]['window']}" if axis == "vocab" else f"vocabulary {pts[0]['vocab_size']:,}"
    for ax, ylab in ((a, "µs per call (median)"), (b, "file size, KB")):
        ax.set_xlabel(label)
        ax.set_ylabel(ylab)
        ax.grid(alpha=0.3, which="both")
        if axis == "vocab":
            ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=6)
    a.set_title(f"latency against {label} ({fixed})")
    b.set_title(f"size against {label}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def streaming_chart(res, path):
    st = res.get("streaming") or {}
    costs = st.get("costs") or {}
    if not costs:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, c in costs.items():
        xs = [r["context"] for r in c["rows"]]
        line = ax.plot(xs, [r["session"]["median"] for r in c["rows"]], marker="o", label=f"{name}: session")[0]
        ax.plot(xs, [r["window"]["median"] for r in c["rows"]], marker="s", linestyle="--", color=line.get_color(),
                label=f"{name}: window re-run")
    ax.axvline(res["bundle"]["window"], color="grey", linestyle=":", label=f"trained window ({res['bundle']['window']})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("context length (words typed so far)")
    ax.set_ylabel("µs per word (median)")
    ax.set_title(f"{res['bundle']['name']}: per-word cost, streaming session vs window re-run")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_all(res, out_dir):
    """Every chart that has data; [] when matplotlib is missing."""
    try:
        _plt()
    except ImportError:
        log.warning("matplotlib is not installed: no charts")
        return []
    stem = res["bundle"]["name"]
    made = []
    f = f"{stem}-latency.png"
    latency_chart(res, os.path.join(out_dir, f))
    made.append(f)
    f = f"{stem}-size-accuracy.png"
    if size_accuracy_chart(res, os.path.join(out_dir, f)):
        made.append(f)
    f = f"{stem}-streaming.png"
    if streaming_chart(res, os.path.join(out_dir, f)):
        made.append(f)
    for axis in ("vocab", "window"):
        f = f"scaling-{axis}.png"
        if scaling_chart(res, os.path.join(out_dir, f), axis):
            made.append(f)
    return made


def main(argv=None):
    """python -m nextword.bench.charts BENCH_JSON [OUT_DIR]: redraw the charts of a finished run."""
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        res = json.load(f)
    for name in write_all(res, argv[1] if len(argv) > 1 else os.path.dirname(os.path.abspath(argv[0]))):
        print(name)


if __name__ == "__main__":
    main()
