"""The benchmark's goals: the ratios derived from the measured rows, and a PASS / FAIL verdict (or n/a
when a figure was not measured) for each goal, from a bench.json result."""

from .format import pct, ratio, us

GOAL_TEXT = {
    "vs_predict": "TF-free end-to-end `top_k` at least ×1,000 faster than `model.predict`",
    "vs_call": "TF-free end-to-end `top_k` at least ×100 faster than `model(x)`",
    "overhead": "Predictor overhead: end-to-end median at most 2× the bare interpreter call's median",
    "cold": "Cold start of `nextword-predict` at most 1/15 of the TensorFlow process's",
    "rss": "Peak RSS of `nextword-predict` at most 1/8 of the TensorFlow process's",
    "int8_size": "int8 files at most 35% of float32 (same format) at the Pride and Prejudice vocabulary",
    "int8_top1": "int8 top-1 accuracy within 1 point of Keras",
    "lstm_vs_ngram": "LSTM top-3 accuracy above the n-gram baseline's on the held-out slice",
    "ksr_vs_presage": "Keystroke savings (N = 6) above Presage's smoothed trigram trained on the same text",
    "ksr_learning_vs_presage": "Keystroke savings (N = 6) learning as typed above Presage's default set-up (with its "
                               "learning)",
    "ksr_user_text_vs_presage": "On a second text: keystroke savings (N = 6) after learning its first half above "
                                "Presage's default set-up after the same first half",
}


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
    out.append(_ksr_goal(res.get("ksr")))
    out.append(_ksr_learning_goal(res.get("ksr")))
    if res.get("learning"):
        out.append(_user_text_goal(res["learning"]))
    return out


def _vs_presage(name, mine, theirs, missing, said, where="", detail=""):
    """One KSR goal: nextword's row `mine` above Presage's row `theirs` of the same run (n/a when
    either is missing: `missing` says why when it is ours). `said(a, b)` words the figures."""
    if mine is None or theirs is None:
        return _goal(name, missing if mine is None else "Presage not measured (not installed)", None)
    a, b = mine["ksr"], theirs["ksr"]
    return _goal(name, f"{said(pct(a), pct(b))} ({100 * (a - b):+.1f} points){where}", a > b, detail)


def _user_text_goal(le):
    """The learning section's "+ learning" row against Presage's "first half learnt" (same text, same run)."""
    rows = le.get("rows", {})
    mine = next((v for name, v in rows.items() if name.endswith("+ learning")), None)
    return _vs_presage("ksr_user_text_vs_presage", mine, rows.get("presage-default, first half learnt"),
                       "learning not measured",
                       lambda a, b: f"nextword {a} vs Presage default {b}", f" on {le['text']['name']}")


def _ksr_learning_goal(k):
    """nextword learning as it types against Presage's default set-up (which learns the same way)."""
    rows = (k or {}).get("rows", {})
    mine = next((v.get("6") for name, v in rows.items() if name.startswith("nextword") and "learning" in name), None)
    return _vs_presage("ksr_learning_vs_presage", mine, rows.get("presage-default", {}).get("6"),
                       "learning not measured", lambda a, b: f"nextword learning {a} vs Presage default {b}")


def _ksr_goal(k):
    """nextword's KSR at N = 6 against presage-ngram's, from the same run (n/a without Presage)."""
    rows = (k or {}).get("rows", {})
    mine = next((v.get("6") for name, v in rows.items() if name.startswith("nextword")), None)
    default = rows.get("presage-default", {}).get("6")
    return _vs_presage("ksr_vs_presage", mine, rows.get("presage-ngram", {}).get("6"),
                       "keystroke savings not measured", lambda a, b: f"nextword {a} vs Presage trigram {b}",
                       detail=f"Presage default (with learning) {pct(default['ksr'])}" if default else "")
