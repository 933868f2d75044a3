"""bench.json -> goals and bench.md (markdown tables with the ratios spelled out)."""

import json
import math
import os
import sys

GOAL_TEXT = {
    "vs_predict": "TF-free end-to-end `top_k` at least ×1,000 faster than `model.predict`",
    "vs_call": "TF-free end-to-end `top_k` at least ×100 faster than `model(x)`",
    "overhead": "Predictor overhead: end-to-end median at most 2× the bare interpreter call's median",
    "cold": "Cold start of `nextword-predict` at most 1/15 of the TensorFlow process's",
    "rss": "Peak RSS of `nextword-predict` at most 1/8 of the TensorFlow process's",
    "int8_size": "int8 files at most 35% of float32 (same format) at the Pride and Prejudice vocabulary",
    "int8_top1": "int8 top-1 accuracy within 1 point of Keras",
    "lstm_vs_ngram": "LSTM top-3 accuracy above the n-gram baseline's on the held-out slice",
}


# -- formatting ----------------------------------------------------------------------------------
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


# -- derived figures -----------------------------------------------------------------------------
def runtime_rows(res):
    return {k: v for k, v in res["latency"].items() if k != "keras"}


def default_key(res):
    """The row of the bundle's default variant on the first backend that ran it."""
    rows = runtime_rows(res)
    dv = res["bundle"]["default_variant"]
    for k, v in rows.items():
        if v["variant"] == dv:
            return k
    return next(iter(rows), None)


def add_ratios(res):
    keras = res["latency"].get("keras")
    for k, v in runtime_rows(res).items():
        e2e, bare = v["e2e"]["median"], v["bare"]["median"]
        v["overhead"] = e2e / bare
        if keras:
            v["vs_predict"] = keras["predict"]["median"] / e2e
            v["vs_call"] = keras["call"]["median"] / e2e
            v["bare_vs_call"] = keras["call"]["median"] / bare


def _goal(key, figure, ok, detail=""):
    status = "n/a" if ok is None else ("PASS" if ok else "FAIL")
    return {"goal": key, "text": GOAL_TEXT[key], "figure": figure, "status": status, "detail": detail}


def goals(res):
    out = []
    rows = runtime_rows(res)
    dk = default_key(res)
    keras = res["latency"].get("keras")
    d = rows.get(dk)
    where = f"default variant {dk}"
    for key, limit in (("vs_predict", 1000), ("vs_call", 100)):
        if not keras or d is None:
            out.append(_goal(key, "Keras not measured", None))
            continue
        vals = {k: v[key] for k, v in rows.items()}
        lo = min(vals, key=vals.get)
        other = "model.predict" if key == "vs_predict" else "model(x)"
        out.append(_goal(key, f"{ratio(d[key])} than {other} ({where})", d[key] >= limit,
                         f"all variants × backends: {ratio(vals[lo], '')} ({lo}) to {ratio(max(vals.values()), '')}; "
                         f"below ×{limit:,}: {', '.join(k for k, x in vals.items() if x < limit) or 'none'}"))
    if d is not None:
        vals = {k: v["overhead"] for k, v in rows.items()}
        hi = max(vals, key=vals.get)
        out.append(_goal("overhead", f"{d['overhead']:.2f}× ({us(d['e2e']['median'])} vs {us(d['bare']['median'])} bare; {where})",
                         d["overhead"] <= 2, f"worst {vals[hi]:.2f}× ({hi}); above 2×: "
                         f"{', '.join(k for k, x in vals.items() if x > 2) or 'none'}"))
    cold = res.get("cold_start") or {}
    tf = cold.get("tensorflow")
    mine = {k: v for k, v in cold.items() if k.startswith("nextword-predict")}
    if tf and mine:
        pick = next((k for k, v in mine.items() if v.get("variant") == res["bundle"]["default_variant"]), next(iter(mine)))
        for key, field_, limit in (("cold", "wall_seconds", 15), ("rss", "peak_rss_mb", 8)):
            r = {k: tf[field_]["median"] / v[field_]["median"] for k, v in mine.items()}
            unit = "s" if field_ == "wall_seconds" else "MB"
            fmt = (lambda x: f"{x:.2f} s") if unit == "s" else (lambda x: f"{x:.0f} MB")
            out.append(_goal(key, f"1/{r[pick]:.1f} ({fmt(mine[pick][field_]['median'])} vs {fmt(tf[field_]['median'])}; {pick})",
                             r[pick] >= limit, "; ".join(f"{k}: 1/{x:.1f}" for k, x in r.items())))
    else:
        out.append(_goal("cold", "TensorFlow process not measured" if mine else "not measured", None))
        out.append(_goal("rss", "TensorFlow process not measured" if mine else "not measured", None))
    files = [f for f in res["sizes"]["files"] if f.get("quantization") in ("dynamic-int8", "int8") and f.get("kind") == "window"]
    if files:
        worst = max(files, key=lambda f: f["vs_float32"] or 0)
        note = ""
        if res["bundle"]["vocab_size"] < 1000:
            note = f" (the goal is set for the P&P vocabulary of 5,000; this bundle's is {res['bundle']['vocab_size']})"
        out.append(_goal("int8_size", f"worst {pct(worst['vs_float32'])} ({worst['variant']})" + note,
                         all((f["vs_float32"] or 1) <= 0.35 for f in files),
                         "; ".join(f"{f['variant']}: {pct(f['vs_float32'])}" for f in files)))
    q = (res.get("quality") or {}).get("columns")
    if q:
        ref_name = "keras" if "keras" in q else next((n for n in q if n.endswith("float32")), None)
        ints = {n: c for n, c in q.items() if c.get("quantization") in ("dynamic-int8", "int8")}
        if ref_name and ints:
            ref = q[ref_name]["top1"]
            drops = {n: ref - c["top1"] for n, c in ints.items()}
            worst = max(drops, key=drops.get)
            out.append(_goal("int8_top1", f"worst {worst}: {pct(q[worst]['top1'])} vs {ref_name} {pct(ref)} "
                             f"({-100 * drops[worst] + 0.0:+.2f} points)", drops[worst] <= 0.01 + 1e-12,
                             "; ".join(f"{n}: {pct(c['top1'])}" for n, c in ints.items())))
        kn = q.get("ngram-kn3")
        lstm_name = ref_name
        if kn and lstm_name:
            a, b = q[lstm_name]["top3"], kn["top3"]
            heldout = res["quality"]["data"]["source"] == "heldout" or res["quality"]["data"]["split"].get("matches_training")
            out.append(_goal("lstm_vs_ngram", f"{lstm_name} {pct(a)} vs n-gram {pct(b)} ({100 * (a - b):+.1f} points)",
                             a > b if heldout else None,
                             "" if heldout else "not a held-out slice: no verdict"))
    else:
        out.append(_goal("int8_top1", "quality not measured", None))
        out.append(_goal("lstm_vs_ngram", "quality not measured", None))
    return out


# -- markdown -------------------------------------------------------------------------------------
def markdown(res, charts=()):
    b, m = res["bundle"], res["machine"]
    parts = [f"# nextword-bench: {b['name']}", "",
             f"`{res['command']}`", "",
             f"Bundle `{b['path']}`: vocabulary {b['vocab_size']:,}, window {b['window']}, default variant "
             f"`{b['default_variant']}`. Created {res['created']}.", "",
             "## Machine", "",
             f"{m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), {m['memory_mb'] or 0:.0f} MB, {m['system']}; "
             f"Python {m['python']}. Load average at start {m['load_average_start']}, at end {res.get('load_average_end')}.",
             "", "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
             + ("; Keras child: " + ", ".join(f"{k} {v}" for k, v in res["keras"]["versions"].items())
                if res.get("keras", {}).get("versions") else ""), "",
             f"Settings: {res['settings']['rounds']} interleaved rounds, blocks of about "
             f"{res['settings']['block_seconds'] * 1e3:.0f} ms per measure, runtime interpreters on 1 thread "
             "(TensorFlow with its defaults); cold starts: median of "
             f"{res['settings']['cold_runs']} fresh processes.", ""]
    parts += ["## Goals", "", "Judged on the bundle's default variant (what `nextword-predict` picks); the detail "
              "column names every other variant × backend that misses.", "",
              table(["goal", "measured", "status", "detail"],
                    [[g["text"], g["figure"], f"**{g['status']}**", g["detail"]] for g in res["goals"]]), ""]
    parts += latency_section(res) + throughput_section(res) + cold_section(res) + size_section(res)
    parts += quality_section(res) + scaling_section(res) + streaming_section(res)
    if charts:
        parts += ["## Charts", ""] + [f"![{c}]({c})" for c in charts] + [""]
    return "\n".join(parts)


def latency_section(res):
    rows, keras = runtime_rows(res), res["latency"].get("keras")
    out = ["## Latency (one window, batch 1)", "",
           "End to end: `Predictor.top_k(text, k=5)` (tokenize, window, interpreter, softmax, top-k). Bare: the "
           "interpreter call the predictor makes (`runner.run([x])` on a prepared window). Overhead: end-to-end "
           "median / bare median. Tokenize (text to window) and softmax + top-5 (one row of logits) are the "
           "predictor's own steps, timed alone. Same texts and windows for every column; per call.", ""]
    hdr = ["variant", "backend", "end-to-end median", "p95", "p99", "IQR", "bare median", "bare p95", "overhead",
           "tokenize", "softmax + top-5"]
    if keras:
        hdr += ["vs model.predict", "vs model(x)"]
    body = []
    for k, v in rows.items():
        r = [v["variant"], v["backend"] + (" (child)" if v.get("where") == "child process" else ""),
             us(v["e2e"]["median"]), us(v["e2e"]["p95"]), us(v["e2e"]["p99"]), us(v["e2e"]["iqr"]),
             us(v["bare"]["median"]), us(v["bare"]["p95"]), f"{v['overhead']:.2f}×",
             us(v["tokenize"]["median"]), us(v["rank"]["median"])]
        if keras:
            r += [ratio(v["vs_predict"]), ratio(v["vs_call"])]
        body.append(r)
    out += [table(hdr, body), ""]
    if keras:
        out += [table(["Keras", "median", "p95", "p99", "IQR", "calls"],
                      [[f"`{name}`", us(keras[key]["median"]), us(keras[key]["p95"]), us(keras[key]["p99"]),
                        us(keras[key]["iqr"]), keras[key]["n"]]
                       for name, key in (("model.predict(x, verbose=0)", "predict"), ("model(x, training=False)", "call"))]), ""]
    return out


def throughput_section(res):
    rows, keras = runtime_rows(res), res["latency"].get("keras")
    out = ["## Throughput of `top_k_batch`", "",
           "Texts per second at batch sizes 1, 8 and 64 (median call). Variants with a fixed batch of 1 (TFLite) "
           "and dynamic-int8 ONNX (whose activation scales would mix rows) run row by row inside the call.", ""]
    body = [[v["variant"], v["backend"]] + [f"{v[f'batch{b}']['texts_per_second']:,.0f}" for b in (1, 8, 64)]
            for v in rows.values()]
    if keras:
        body.append(["Keras `model(x)` (no tokenizing, no top-k)", "TensorFlow"]
                    + [f"{keras['call' if b == 1 else f'call{b}']['texts_per_second']:,.0f}" for b in (1, 8, 64)])
    out += [table(["variant", "backend", "batch 1", "batch 8", "batch 64"], body), ""]
    return out


def cold_section(res):
    cold = res.get("cold_start") or {}
    if not cold:
        return []
    tf = cold.get("tensorflow")
    out = ["## Cold start and peak memory", "",
           "A fresh process: import, load, first answer, exit; wall time from outside (spawn to exit) and peak RSS of "
           "that process (os.wait4), median of the runs.", ""]
    body = []
    for k, v in cold.items():
        r = [k, f"`{v['command']}`", f"{v['wall_seconds']['median']:.3f} s", f"{v['peak_rss_mb']['median']:.0f} MB"]
        if tf and k.startswith("nextword-predict"):
            r += [ratio(tf["wall_seconds"]["median"] / v["wall_seconds"]["median"]),
                  ratio(tf["peak_rss_mb"]["median"] / v["peak_rss_mb"]["median"], "less")]
        else:
            r += ["", ""]
        body.append(r)
    out += [table(["process", "command", "wall (median)", "peak RSS", "start vs TensorFlow", "memory vs TensorFlow"], body), ""]
    return out


def size_section(res):
    s = res["sizes"]
    out = ["## Size", "", "Every file of the bundle; model files also as a fraction of the float32 file of the same "
           "format.", ""]
    body = [[f["file"], f.get("variant", ""), f"{f['bytes']:,}", size(f["bytes"]), pct(f.get("vs_float32"))]
            for f in s["files"]]
    body.append(["**total**", "", f"{s['total_bytes']:,}", size(s["total_bytes"]), ""])
    if s.get("keras_model_bytes"):
        body.append(["model.keras (training side)", "", f"{s['keras_model_bytes']:,}", size(s["keras_model_bytes"]), ""])
    out += [table(["file", "variant", "bytes", "size", "vs float32"], body), ""]
    return out


def quality_section(res):
    q = res.get("quality") or {}
    if not q.get("columns"):
        return ["## Quality", "", f"Not measured: {q.get('skipped', 'no corpus and no model windows')}.", ""]
    data = q["data"]
    out = ["## Quality", "", f"On {data['description']}. Top-k: the true next word among the k most likely ids "
           "(padding excluded; the OOV token counts as a word, as in training's metrics); perplexity from the full "
           "softmax. TFLite on ai-edge-litert, ONNX on onnxruntime; the n-gram is an interpolated Kneser-Ney "
           "trigram (bench/ngram.py) fitted on the same training documents with the same tokenizer.", ""]
    notes = data.get("split", {}).get("notes") or []
    if notes:
        out += ["Split notes: " + "; ".join(notes) + ".", ""]
    body = []
    for name, c in q["columns"].items():
        body.append([name, pct(c["top1"]), pct(c["top3"]), pct(c["top5"]), f"{c['perplexity']:.1f}",
                     size(c.get("size_bytes")), c["n"]])
    out += [table(["column", "top-1", "top-3", "top-5", "perplexity", "size", "windows"], body), ""]
    return out


def scaling_section(res):
    sc = res.get("scaling")
    if not sc:
        return []
    out = ["## Scaling", "", f"Random-weight models of the default architecture (embedding {sc['embedding_dim']}, LSTM "
           f"{sc['units']}), exported with relaxed gates; one thread; µs per call (median of interleaved rounds).", ""]
    for axis, label in (("vocab", "vocabulary"), ("window", "window")):
        pts = [p for p in sc["points"] if p["axis"] in (axis, "both")]
        body = []
        for p in sorted(pts, key=lambda p: p["vocab_size"] if axis == "vocab" else p["window"]):
            for name, v in p["variants"].items():
                body.append([f"{p['vocab_size']:,}", p["window"], name, v["backend"], us(v["e2e"]), us(v["bare"]),
                             size(v["bytes"]), pct(v.get("vs_float32"))])
        out += [f"### Against the {label}", "",
                table(["vocabulary", "window", "variant", "backend", "end-to-end", "bare", "size", "vs float32"], body), ""]
    if sc.get("failed"):
        out += ["Not built: " + "; ".join(sc["failed"]), ""]
    return out


def streaming_section(res):
    st = res.get("streaming")
    if not st:
        return []
    out = ["## Streaming (step variants)", ""]
    if st.get("status") != "ok":
        return out + [st.get("status", ""), ""]
    out += ["Per typed word: a stream-mode session's `feed(word) + top_k(3)` (one LSTM step), an exact-mode "
            "session's (re-runs the last window through the step model), and `Predictor.top_k(text)` on the whole "
            "text so far (the window model: T steps); median per word, from bench/streaming.py.", ""]
    for name, c in st.get("costs", {}).items():
        a = c["at_window"]
        out += [f"### {name} (window variant {c['variant']} on {c['package']}, step on {c['step_package']})", "",
                f"At the trained window ({a['context']} words): session {us(a['session_us'])} per word, window re-run "
                f"{us(a['window_us'])} ({ratio(a['window_over_session'], 'dearer', 'cheaper')} than the session), exact mode "
                f"{us(a['exact_us'])}; the bare step call is {us(a['step_call_us'])} (session = "
                f"{a['session_over_step_call']:.1f}× it).", "",
                table(["context (words)", "session feed + top_k", "exact session", "window top_k", "window / session"],
                      [[r["context"], us(r["session"]["median"]), us(r["exact"]["median"]), us(r["window"]["median"]),
                        f"{r['window_over_session']:.1f}×"] for r in c["rows"]]), ""]
    q = st.get("quality")
    if q:
        out += [f"### Held-out quality of the two context modes ({q['step_variant']}, {q['targets']:,} positions)", "",
                table(["mode", "top-1", "top-3", "top-5", "perplexity"],
                      [[mode, pct(q[mode]["top1_accuracy"]), pct(q[mode]["top3_accuracy"]), pct(q[mode]["top5_accuracy"]),
                        f"{q[mode]['perplexity']:.1f}"] for mode in ("stream", "exact")]), ""]
    elif st.get("quality_skipped"):
        out += [f"Stream vs exact quality: not measured ({st['quality_skipped']}).", ""]
    if st.get("failed"):
        out += ["Failed: " + "; ".join(f"{k}: {v}" for k, v in st["failed"].items()), ""]
    return out


def console(res):
    """The short table the CLI prints."""
    lines = []
    keras = res["latency"].get("keras")
    for k, v in runtime_rows(res).items():
        line = f"{k:40s} top_k {us(v['e2e']['median']):>9s}  bare {us(v['bare']['median']):>9s}  overhead {v['overhead']:.2f}×"
        if keras:
            line += f"  {ratio(v['vs_predict'])} than model.predict, {ratio(v['vs_call'])} than model(x)"
        lines.append(line)
    if keras:
        lines.append(f"{'keras model.predict':40s} {us(keras['predict']['median'])};  model(x) {us(keras['call']['median'])}")
    q = (res.get("quality") or {}).get("columns") or {}
    for name, c in q.items():
        lines.append(f"{name:40s} top-1 {pct(c['top1'])}  top-3 {pct(c['top3'])}  top-5 {pct(c['top5'])}  ppl {c['perplexity']:.1f}")
    for k, v in (res.get("cold_start") or {}).items():
        lines.append(f"cold {k:35s} {v['wall_seconds']['median']:.3f} s  {v['peak_rss_mb']['median']:.0f} MB")
    lines.append("")
    for g in res["goals"]:
        lines.append(f"[{g['status']:4s}] {g['text']}: {g['figure']}")
    return "\n".join(lines)


def main(argv=None):
    """python -m nextword.bench.report BENCH_JSON: rewrite bench.md beside it from the figures (e.g. after a
    change of wording), with the charts the run made."""
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        res = json.load(f)
    res["goals"] = goals(res)
    path = os.path.join(os.path.dirname(os.path.abspath(argv[0])), "bench.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write(markdown(res, res.get("charts", ())))
    print(path)


if __name__ == "__main__":
    main()
