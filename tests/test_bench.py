"""nextword-bench end to end on the committed demo bundle: the JSON's shape, never absolute times.

The smoke run needs no TensorFlow (it runs in the runtime-only and legacy environments too); it
gets a tiny corpus of its own (the four seed lines), so quality and the n-gram are exercised
without the shared corpora, and a --keras folder whose --keras-python has no TensorFlow, which
must cost one line and no failure. The Keras run is marked tf."""

import json
import os
import stat
import sys

import pytest

from nextword.bench.format import ratio
from nextword.bench.goals import add_ratios, default_key, goals
from nextword.bench.report import console
from nextword.runtime.bundle import Bundle
from support import SEED_BUNDLE, run_cli

from nextword.train.corpus import SEED_LINES

QUICK = ("--quick", "--repeats", "2", "--block-ms", "5", "--cold-runs", "1", "--quiet")
RUNTIME_MEASURES = ("e2e", "bare", "tokenize", "rank", "batch1", "batch8", "batch64")
SUMMARY = ("median", "p95", "p99", "mean", "min", "max", "iqr", "n")
GOALS = ("vs_predict", "vs_call", "overhead", "cold", "rss", "int8_size", "int8_top1", "lstm_vs_ngram",
         "ksr_vs_presage", "ksr_learning_vs_presage")


def _positive_summary(s):
    assert set(SUMMARY) <= set(s)
    assert s["n"] > 0 and s["median"] > 0 and s["p99"] >= s["median"] >= s["min"] > 0


def _check_common(res, out):
    manifest = Bundle.open(SEED_BUNDLE).manifest
    windows = {n for n, v in manifest.variants.items() if v.kind == "window"}
    assert res["format"] == "nextword-bench" and res["tensorflow_imported"] is False
    assert res["machine"]["cores"] >= 1 and res["machine"]["versions"]["numpy"]
    assert res["bundle"]["vocab_size"] == manifest.vocab_size and set(res["bundle"]["variants"]) == windows
    rows = {k: v for k, v in res["latency"].items() if k != "keras"}
    assert rows, res.get("skipped")
    for key, row in rows.items():
        variant, backend = key.split("@")
        assert variant in windows and row["variant"] == variant and row["backend"] == backend
        for m in RUNTIME_MEASURES:
            _positive_summary(row[m])
        for b in (1, 8, 64):
            assert row[f"batch{b}"]["batch"] == b and row[f"batch{b}"]["texts_per_second"] > 0
        assert row["overhead"] > 0
    # every runnable variant has a row, on at least one backend; what did not run says why
    assert {k.split("@")[0] for k in rows} | {s.split("@")[0] for s in res["skipped"]} >= windows
    files = {f["file"]: f for f in res["sizes"]["files"]}
    assert {"manifest.json", "vocab.json"} <= set(files)
    for v in manifest.variants.values():
        assert files[v.file]["bytes"] == v.size > 0 and files[v.file]["vs_float32"] > 0
    cold = res["cold_start"]
    assert "python (empty process)" in cold and any(k.startswith("nextword-predict@") for k in cold)
    for c in cold.values():
        assert c["wall_seconds"]["median"] > 0 and c["peak_rss_mb"]["median"] > 0
    assert [g["goal"] for g in res["goals"]] == list(GOALS)
    verdicts = {g["goal"]: g["status"] for g in res["goals"]}
    d = rows[default_key(res)]   # the default variant's row, else the first that ran (legacy: no ONNX)
    assert verdicts["overhead"] == ("PASS" if d["overhead"] <= 2 else "FAIL")   # the measured figure decides
    md = open(os.path.join(out, "bench.md"), encoding="utf-8").read()
    assert "## Goals" in md and "## Latency" in md and "## Size" in md
    for chart in res["charts"]:
        assert os.path.getsize(os.path.join(out, chart)) > 0


def _no_tf_python(tmp_path):
    """A python that cannot see TensorFlow (no site-packages): what --keras meets on a device."""
    script = tmp_path / "python-without-tf"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_bench_smoke_on_the_demo_bundle(tmp_path):
    corpus = tmp_path / "seed.txt"
    corpus.write_text(SEED_LINES)
    fake_model = tmp_path / "model"
    fake_model.mkdir()
    (fake_model / "model.keras").write_bytes(b"")
    out = tmp_path / "out"
    proc = run_cli("nextword-bench", SEED_BUNDLE, *QUICK, "--out", out, "--corpus", corpus, "--unit", "line",
                   "--heldout-fraction", "0.25", "--keras", fake_model, "--keras-python", _no_tf_python(tmp_path),
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "TensorFlow is not importable" in proc.stderr and "continuing without the Keras columns" in proc.stderr
    res = json.loads((out / "bench.json").read_text())
    _check_common(res, out)
    verdicts = {g["goal"]: g["status"] for g in res["goals"]}
    for g in ("vs_predict", "vs_call", "cold", "rss"):   # no Keras figures: no verdict, never a PASS
        assert verdicts[g] == "n/a", res["goals"]
    q = res["quality"]["columns"]
    lstm = next(n for n in q if n.endswith("float32"))
    assert verdicts["lstm_vs_ngram"] == ("PASS" if q[lstm]["top3"] > q["ngram-kn3"]["top3"] else "FAIL")
    for g in res["goals"]:   # the console prints the verdicts of the JSON
        assert f"[{g['status']:4s}] {g['text']}" in proc.stdout
    assert "keras" not in res["latency"] and "tensorflow" not in res["cold_start"]
    assert res["keras"]["status"].startswith("TensorFlow is not importable")
    q = res["quality"]
    assert q["data"]["source"] == "heldout" and q["data"]["split"]["heldout_documents"] == 1
    assert "ngram-kn3" in q["columns"]
    for name, c in q["columns"].items():
        assert 0 <= c["top1"] <= c["top3"] <= c["top5"] <= 1 and c["perplexity"] >= 1 and c["n"] == q["data"]["windows_scored"]
    assert {n for n in q["columns"] if n != "ngram-kn3"} <= set(res["bundle"]["variants"])
    st = res["streaming"]
    if res["bundle"]["step_variants"]:  # bench/streaming.py's figures for bundles with step variants
        assert st["status"] == "ok" and st["costs"] and not st["failed"], st
        for c in st["costs"].values():
            assert c["at_window"]["session_us"] > 0 and c["at_window"]["window_us"] > 0
        assert st["quality"]["targets"] > 0 and 0 <= st["quality"]["stream"]["top3_accuracy"] <= 1
    else:
        assert st is None


@pytest.mark.tf
def test_bench_with_keras_has_the_keras_columns_and_ratios(tmp_path, request):
    model = request.getfixturevalue("tiny_model_dir")  # same corpus and settings as the demo bundle's model
    out = tmp_path / "out"
    proc = run_cli("nextword-bench", SEED_BUNDLE, *QUICK, "--out", out, "--keras", model, "--no-charts",
                   "--legacy-python", "", timeout=300)  # the legacy rows are the smoke test's business
    assert proc.returncode == 0, proc.stderr
    res = json.loads((out / "bench.json").read_text())
    _check_common(res, out)
    keras = res["latency"]["keras"]
    for m in ("predict", "call", "call8", "call64"):
        _positive_summary(keras[m])
    for key, row in res["latency"].items():
        if key != "keras":
            assert row["vs_predict"] > 0 and row["vs_call"] > 0
    assert "faster than model.predict" in proc.stdout or "slower than model.predict" in proc.stdout
    tf = res["cold_start"]["tensorflow"]
    assert tf["wall_seconds"]["median"] > 0 and tf["peak_rss_mb"]["median"] > 0 and tf["answer"]
    assert res["keras"]["versions"]["tensorflow"]
    assert "keras" in res["quality"]["columns"]
    verdicts = {g["goal"]: g["status"] for g in res["goals"]}
    d = res["latency"][default_key(res)]
    assert verdicts["vs_predict"] == ("PASS" if d["vs_predict"] >= 1000 else "FAIL")
    assert verdicts["vs_call"] == ("PASS" if d["vs_call"] >= 100 else "FAIL")
    for g in ("cold", "rss", "int8_top1"):   # measured now: a verdict, not n/a
        assert verdicts[g] in ("PASS", "FAIL"), res["goals"]


def test_ratios_are_spelled_out():
    assert ratio(1850.4) == "×1,850 faster"
    assert ratio(12.3) == "×12 faster"
    assert ratio(2.345) == "×2.3 faster"
    assert ratio(0.5) == "×2.0 slower"
    assert ratio(None) == "n/a"


# -- the goals' verdicts on figures whose right verdict is known ---------------------------------------
def _result(e2e_us=20.0, bare_us=15.0, predict_us=None, call_us=None, cold=None, sizes=(), quality=None,
            source="heldout", vocab=5000):
    """A bench.json as goals() reads it: one runtime row (the default variant), optional Keras row,
    cold starts {name: (seconds, MB)}, int8 sizes as fractions of float32, quality columns."""
    res = {"bundle": {"default_variant": "int8", "vocab_size": vocab},
           "latency": {"int8@onnxruntime": {"variant": "int8", "e2e": {"median": e2e_us}, "bare": {"median": bare_us}}},
           "cold_start": {k: {"variant": "int8" if k.startswith("nextword") else None,
                              "wall_seconds": {"median": s}, "peak_rss_mb": {"median": mb}}
                          for k, (s, mb) in (cold or {}).items()},
           "sizes": {"files": [{"variant": f"v{i}", "kind": "window", "quantization": "int8", "vs_float32": f}
                               for i, f in enumerate(sizes)]},
           "quality": {"columns": quality, "data": {"source": source, "split": {}}} if quality else None}
    if predict_us is not None:
        res["latency"]["keras"] = {"predict": {"median": predict_us}, "call": {"median": call_us}}
    add_ratios(res)
    return res


def _verdicts(res):
    return {g["goal"]: g["status"] for g in goals(res)}


@pytest.mark.parametrize("predict_us, call_us, expect", [
    (20_001.0, 2_001.0, ("PASS", "PASS")),      # x1000.05 and x100.05: just over both lines
    (19_999.0, 2_001.0, ("FAIL", "PASS")),
    (20_001.0, 1_999.0, ("PASS", "FAIL")),
])
def test_speed_goals_pass_only_at_or_above_their_ratio(predict_us, call_us, expect):
    v = _verdicts(_result(e2e_us=20.0, predict_us=predict_us, call_us=call_us))
    assert (v["vs_predict"], v["vs_call"]) == expect


def test_speed_goals_without_keras_have_no_verdict():
    v = _verdicts(_result())
    assert v["vs_predict"] == v["vs_call"] == "n/a"


@pytest.mark.parametrize("e2e_us, bare_us, expect", [(20.0, 10.0, "PASS"), (20.0, 9.9, "FAIL"), (10.0, 10.0, "PASS")])
def test_overhead_goal_is_at_most_twice_the_bare_call(e2e_us, bare_us, expect):
    assert _verdicts(_result(e2e_us=e2e_us, bare_us=bare_us))["overhead"] == expect


@pytest.mark.parametrize("tf, mine, expect", [
    ((3.0, 800.0), (0.19, 90.0), ("PASS", "PASS")),   # 1/15.8 and 1/8.9
    ((3.0, 800.0), (0.21, 90.0), ("FAIL", "PASS")),   # 1/14.3
    ((3.0, 800.0), (0.19, 110.0), ("PASS", "FAIL")),  # 1/7.3
])
def test_cold_start_and_memory_goals(tf, mine, expect):
    v = _verdicts(_result(cold={"tensorflow": tf, "nextword-predict@onnxruntime": mine}))
    assert (v["cold"], v["rss"]) == expect
    v = _verdicts(_result(cold={"nextword-predict@onnxruntime": mine}))   # no TensorFlow process: no verdict
    assert (v["cold"], v["rss"]) == ("n/a", "n/a")


@pytest.mark.parametrize("sizes, expect", [((0.30, 0.35), "PASS"), ((0.30, 0.36), "FAIL")])
def test_int8_size_goal_holds_for_every_int8_file(sizes, expect):
    assert _verdicts(_result(sizes=sizes))["int8_size"] == expect


def _columns(keras_top1, int8_top1, keras_top3=0.30, ngram_top3=0.25):
    return {"keras": {"top1": keras_top1, "top3": keras_top3, "quantization": "float32"},
            "int8": {"top1": int8_top1, "top3": keras_top3, "quantization": "int8"},
            "ngram-kn3": {"top1": 0.1, "top3": ngram_top3}}


@pytest.mark.parametrize("keras_top1, int8_top1, expect", [(0.20, 0.19, "PASS"), (0.20, 0.1899, "FAIL"), (0.20, 0.25, "PASS")])
def test_int8_accuracy_goal_allows_one_point_below_keras(keras_top1, int8_top1, expect):
    assert _verdicts(_result(quality=_columns(keras_top1, int8_top1)))["int8_top1"] == expect


@pytest.mark.parametrize("lstm, ngram, source, expect", [
    (0.30, 0.25, "heldout", "PASS"), (0.25, 0.25, "heldout", "FAIL"), (0.20, 0.25, "heldout", "FAIL"),
    (0.30, 0.25, "model-windows", "n/a"),   # training windows are no held-out slice: no verdict
])
def test_lstm_beats_ngram_goal_only_on_a_heldout_slice(lstm, ngram, source, expect):
    res = _result(quality=_columns(0.2, 0.2, keras_top3=lstm, ngram_top3=ngram), source=source)
    assert _verdicts(res)["lstm_vs_ngram"] == expect


def test_console_prints_each_verdict():
    res = _result(e2e_us=20.0, bare_us=9.0, predict_us=30_000.0, call_us=1_000.0)
    res["goals"] = goals(res)
    text = console(res)
    assert "[PASS] TF-free end-to-end `top_k` at least ×1,000 faster than `model.predict`" in text
    assert "[FAIL] TF-free end-to-end `top_k` at least ×100 faster than `model(x)`" in text
    assert "[FAIL] Predictor overhead" in text and "[n/a ] Cold start" in text


@pytest.mark.parametrize("mine, presage, expect", [(0.585, 0.578, "PASS"), (0.578, 0.578, "FAIL"), (0.50, 0.578, "FAIL"),
                                                   (0.585, None, "n/a"), (None, 0.578, "n/a")])
def test_ksr_goal_compares_nextword_with_presage_trigram_at_six_suggestions(mine, presage, expect):
    res = _result()
    rows = {}
    if mine is not None:
        rows["nextword (tflite-dynamic-int8)"] = {"1": {"ksr": 0.99}, "6": {"ksr": mine}}
    if presage is not None:
        rows["presage-ngram"] = {"1": {"ksr": 0.0}, "6": {"ksr": presage}}
    res["ksr"] = {"rows": rows}
    assert _verdicts(res)["ksr_vs_presage"] == expect


@pytest.mark.parametrize("mine, presage, expect", [(0.60, 0.579, "PASS"), (0.579, 0.579, "FAIL"), (None, 0.579, "n/a"),
                                                   (0.60, None, "n/a")])
def test_ksr_learning_goal_compares_with_presage_default(mine, presage, expect):
    res = _result()
    rows = {"nextword (v)": {"6": {"ksr": 0.99}}}   # the non-learning row must not be taken for it
    if mine is not None:
        rows["nextword (v, learning as typed)"] = {"6": {"ksr": mine}}
    if presage is not None:
        rows["presage-default"] = {"6": {"ksr": presage}}
    res["ksr"] = {"rows": rows}
    assert _verdicts(res)["ksr_learning_vs_presage"] == expect
