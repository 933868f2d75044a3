"""bench.json -> bench.md (markdown tables with the ratios spelled out) and the console summary."""

import json
import os
import sys

from .format import pct, ratio, size, table, us
from .goals import goals, runtime_rows


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
    parts += quality_section(res) + ksr_section(res) + learning_section(res) + scaling_section(res)
    parts += streaming_section(res)
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
           "softmax. TFLite on ai-edge-litert, ONNX on onnxruntime; the n-gram is an interpolated modified "
           "Kneser-Ney trigram (the bundle's n-gram: export/ngram.py builds it, runtime/ngram.py reads it; unpruned "
           "here) fitted on the same training documents with the same tokenizer.", ""]
    notes = data.get("split", {}).get("notes") or []
    if notes:
        out += ["Split notes: " + "; ".join(notes) + ".", ""]
    body = []
    for name, c in q["columns"].items():
        body.append([name, pct(c["top1"]), pct(c["top3"]), pct(c["top5"]), f"{c['perplexity']:.1f}",
                     size(c.get("size_bytes")), c["n"]])
    out += [table(["column", "top-1", "top-3", "top-5", "perplexity", "size", "windows"], body), ""]
    return out + training_lines(q.get("training"))


def learning_section(res):
    """Learning on a second text (bench/learning_bench.py): one row per system."""
    le = res.get("learning")
    if not le:
        return []
    out = ["## Learning from the user: a second text, read twice", ""]
    if le.get("status") != "ok":
        return out + [f"Not measured: {le.get('note', le.get('status'))}.", ""]
    t = le["text"]
    out += [f"The text `{t['name']}` ({t['bytes']:,} bytes, never trained on), cut by {t['unit']}s in two halves: "
            f"the first ({t['documents']['learnt']} documents, {t['words']['learnt']:,} words) is learnt, the second "
            f"({t['documents']['typed']} documents, {t['words']['typed']:,} words) is typed. Top-1/3 over every typed "
            "word, perplexity over the typed words the model knows, keystroke savings at N = "
            f"{le['n']} (bench/learning_bench.py).", ""]
    body = [[name, pct(r["top1"]) if "top1" in r else "", pct(r["top3"]) if "top3" in r else "",
             f"{r['ppl']:.1f}" if r.get("ppl") else "", pct(r["ksr"])] for name, r in le["rows"].items()]
    out += [table(["system", "top-1", "top-3", "perplexity", f"KSR (N = {le['n']})"], body), ""]
    out += [f"Note: {n}" for n in le.get("notes", [])]
    return out + ([""] if le.get("notes") else [])


def ksr_section(res):
    """Keystroke savings (bench/ksr_bench.py): one row per system, one column per N."""
    k = res.get("ksr")
    if not k:
        return []
    out = ["## Keystroke savings", ""]
    if k.get("status") != "ok":
        return out + [f"Not measured: {k.get('note', k.get('status'))}.", ""]
    ns = [str(n) for n in k["ns"]]
    out += [f"KSR = 1 - (keys typed + keys to select) / keys without prediction, typing the {k['words']:,} held-out "
            f"words ({k['documents']} documents, {k['keys_without']:,} keys without prediction) as the bundle's "
            "tokenizer splits them. N suggestions are looked at before the first letter and after each letter; "
            "taking one costs 1 key, the space included; a word never suggested costs its letters and a space "
            "(bench/ksr.py). nextword through its completion API, the n-gram (bench/ngram.py, same training ids) "
            "by filtering its distribution by prefix over its in-vocabulary words; Presage trained by text2ngram "
            "on the same training words and measured by its own presage_simulator (bench/presage.py: its printed "
            "KSR counts one key more over the whole text; ours is shown, its own in the JSON).", ""]
    body = []
    for name, by_n in k["rows"].items():
        r = [name] + [pct(by_n[n]["ksr"]) if n in by_n else "" for n in ns]
        first = by_n.get(ns[-1], {}).get("words_suggested_before_first_letter")
        r.append(pct(first / k["words"]) if first is not None and k["words"] else "")
        body.append(r)
    out += [table(["system"] + [f"N = {n}" for n in ns] + [f"words before a letter (N = {ns[-1]})"], body), ""]
    lat = k.get("latency")
    if lat and lat.get("median_us") is not None:
        how = "Session.complete" if lat.get("session") else "Predictor.complete"
        feed = lat.get("feed") or {}
        out += [f"nextword `{how}` per keystroke ({lat['variant']} on {lat['backend']}, N = {lat['n']}, "
                f"{lat['calls']:,} calls): median {us(lat['median_us'])}, p90 {us(lat['p90_us'])}"
                + (f"; the session's feed of each typed word (one model step): median {us(feed['median_us'])}, "
                   f"p90 {us(feed['p90_us'])}" if feed.get("calls") else "") + ".", ""]
    if k.get("notes"):
        out += ["Notes: " + "; ".join(k["notes"]) + ".", ""]
    return out


def training_lines(t):
    """One paragraph on how the benchmarked model was trained (bench/quality.py training_summary)."""
    if not t:
        return []
    wall = f"{t['wall_seconds']:.0f} s wall" if t.get("wall_seconds") else "time not recorded"
    fit = f" ({t['fit_seconds']:.0f} s fitting)" if t.get("fit_seconds") else ""
    chosen = (f"; chosen from the corpus (no flag given): {', '.join(t['chosen_from_corpus'])}"
              if t.get("chosen_from_corpus") else "")
    stopped = " Interrupted (the best epoch so far was kept)." if t.get("interrupted") else ""
    return [f"The Keras model: {t['objective']} objective, {t.get('epochs_run')} of {t.get('epochs_budget')} epochs, "
            f"{wall}{fit}{chosen}.{stopped}", ""]


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
    ks = res.get("ksr") or {}
    for name, by_n in (ks.get("rows") or {}).items():
        lines.append(f"KSR {name:36s} " + "  ".join(f"N={n} {pct(r['ksr'])}" for n, r in by_n.items()))
    for note in ks.get("notes") or ([ks["note"]] if ks.get("note") else []):
        lines.append(f"KSR: {note}")
    le = res.get("learning") or {}
    for name, r in (le.get("rows") or {}).items():
        extra = f"top-1 {pct(r['top1'])}  top-3 {pct(r['top3'])}  " if "top1" in r else ""
        lines.append(f"learning {name:36s} {extra}KSR N={le['n']} {pct(r['ksr'])}")
    if le.get("status") not in (None, "ok"):
        lines.append(f"learning: {le.get('note', le.get('status'))}")
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
