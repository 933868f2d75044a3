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

from nextword.bench.report import ratio
from nextword.runtime.bundle import Bundle
from support import SEED_BUNDLE, run_cli

from nextword.train.corpus import SEED_LINES

QUICK = ("--quick", "--repeats", "2", "--block-ms", "5", "--cold-runs", "1", "--quiet")
RUNTIME_MEASURES = ("e2e", "bare", "tokenize", "rank", "batch1", "batch8", "batch64")
SUMMARY = ("median", "p95", "p99", "mean", "min", "max", "iqr", "n")
GOALS = ("vs_predict", "vs_call", "overhead", "cold", "rss", "int8_size", "int8_top1", "lstm_vs_ngram")


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
    assert all(g["status"] in ("PASS", "FAIL", "n/a") for g in res["goals"])
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
    assert "[PASS]" in proc.stdout or "[FAIL]" in proc.stdout or "[n/a ]" in proc.stdout
    res = json.loads((out / "bench.json").read_text())
    _check_common(res, out)
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
    goals = {g["goal"]: g for g in res["goals"]}
    for g in ("vs_predict", "vs_call", "cold", "rss", "int8_top1"):
        assert goals[g]["status"] in ("PASS", "FAIL"), goals[g]


def test_ratios_are_spelled_out():
    assert ratio(1850.4) == "×1,850 faster"
    assert ratio(12.3) == "×12 faster"
    assert ratio(2.345) == "×2.3 faster"
    assert ratio(0.5) == "×2.0 slower"
    assert ratio(None) == "n/a"
