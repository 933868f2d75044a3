"""The parity suite: a model trained in this session, exported with every variant, checked against
the real Keras model through the real Predictor on every interpreter; plus the gate failing, bad
input and the bundle's self-description."""

import json
import os
import re
import shutil
import tempfile

import numpy as np
import pytest

from nextword.runtime import Predictor
from nextword.runtime.bundle import Bundle, sha256_file
from nextword.export.cost import choose_default, rank
from nextword.export.variants import CATALOGUE
from support import LEGACY_PYTHON, SEED_BUNDLE, SEED_TEXTS, installed_packages, run_cli

pytestmark = pytest.mark.tf
PACKAGES = installed_packages()
FORMAT_OF = {"ai-edge-litert": "tflite", "tflite-runtime": "tflite", "onnxruntime": "onnx"}
TOLERANCE = {"float32": 1e-5, "float16": 1e-2, "dynamic-int8": 0.05, "int8": 0.1}


def keras_probs(model, predictor, texts):
    windows = np.stack([predictor.window_for(t) for t in texts])
    return model(windows, training=False).numpy()


def keras_top(probs, predictor, k):
    words = predictor.tokenizer.id_to_word_table()
    p = probs.copy()
    p[0] = -1
    return [words[i] for i in np.argsort(-p, kind="stable")[:k]]


def test_every_variant_on_every_interpreter_matches_keras(tiny_bundle_dir, keras_model):
    """Text in, words and probabilities out, against the Keras model, for each variant x interpreter."""
    manifest = Bundle.open(tiny_bundle_dir).manifest
    windows = [n for n, s in CATALOGUE.items() if s.kind == "window"]
    assert [n for n, v in manifest.variants.items() if v.kind == "window"] == windows
    checked = set()
    for name, v in manifest.variants.items():
        if v.kind != "window":
            continue
        for pkg in PACKAGES:
            if FORMAT_OF[pkg] != v.format:
                continue
            p = Predictor.load(tiny_bundle_dir, backend=pkg, variant=name, mix="lstm")   # the LSTM against Keras
            ref = keras_probs(keras_model, p, SEED_TEXTS)
            mine = p.probabilities(np.stack([p.window_for(t) for t in SEED_TEXTS]))
            assert np.abs(mine - ref).max() <= TOLERANCE[v.quantization], (name, pkg)
            for text, row in zip(SEED_TEXTS, ref):
                got = p.top_k(text, 3)
                assert got[0][0] == keras_top(row, p, 1)[0], (name, pkg, text)
                if v.quantization == "float32":
                    assert [w for w, _ in got] == keras_top(row, p, 3)
                    assert all(abs(pr - row[p.tokenizer.word_index[w]]) < 1e-5 for w, pr in got)
            assert p.predict_next("hello how is") == "your"
            checked.add((name, pkg))
    assert checked == {(n, pkg) for n in windows for pkg in PACKAGES if FORMAT_OF[pkg] == CATALOGUE[n].format}


def test_manifest_records_parity_runtimes_and_hashes(tiny_bundle_dir):
    m = json.load(open(os.path.join(tiny_bundle_dir, "manifest.json")))
    assert m["format_version"] == 1 and m["window"] == 4 and m["vocab_size"] == 11 and m["padding"] == "pre"
    assert {"tensorflow-cpu", "keras", "tf2onnx", "onnx"} <= set(m["producer"])
    assert m["tokenizer"]["num_words"] is None and m["tokenizer"]["lower"] is True
    for name, v in m["variants"].items():
        path = os.path.join(tiny_bundle_dir, v["file"])
        assert sha256_file(path) == v["sha256"] and os.path.getsize(path) == v["size"]
        assert v["parity"], name
        for pkg, fig in v["parity"].items():
            assert fig["failures"] == [] and fig["windows"] == 15
        if v["format"] == "tflite":
            assert all(not op.startswith(("CUSTOM", "Flex")) for op, _ in v["details"]["ops"])
            if LEGACY_PYTHON:
                assert v["runtimes"]["tflite-runtime"]["ok"] and "tflite-runtime" in v["parity"]
        states = v["inputs"][1:] if v["kind"] == "step" else []   # ids, h, c: h and c are LSTM states
        assert all(t["dtype"] == "float32" and "quantization" not in t for t in v["outputs"] + states), name
        # TFLite names them serving_default_h:0, ONNX h
        assert [t["name"].split(":")[0].rsplit("_", 1)[-1] for t in states] == (["h", "c"] if v["kind"] == "step" else [])
    assert m["source"]["model_name"] == "seed-model" and "model_dir" not in m["source"]
    assert "| tflite-int8 |" in open(os.path.join(tiny_bundle_dir, "parity.md")).read()


def checked_here(v):
    """The interpreters that should have run variant entry `v` at export in this session."""
    want = {pkg for pkg in PACKAGES if FORMAT_OF[pkg] == v["format"]}
    if LEGACY_PYTHON and v["format"] == "tflite":
        want.add("tflite-runtime")
    return want


def test_every_window_variant_carries_its_measured_cost_and_the_default_is_the_cheapest(tiny_bundle_dir):
    m = json.load(open(os.path.join(tiny_bundle_dir, "manifest.json")))
    pairs = []
    for name, v in m["variants"].items():
        if v["kind"] != "window":
            assert "cost" not in v, name
            continue
        assert set(v["cost"]) == checked_here(v) == {p for p, r in v["runtimes"].items() if r["ok"]}, name
        for pkg, c in v["cost"].items():
            assert set(c) == {"cold_start_ms", "peak_rss_mib", "call_us", "runs"} and c["runs"] == 3
            assert 0 < c["cold_start_ms"] < 60_000 and 1 < c["peak_rss_mib"] < 1024 and 0 < c["call_us"] < 1e6
            pairs.append((name, pkg, c))
    pref = m["preference"]
    assert sorted((p["variant"], p["package"]) for p in pref) == sorted((n, p) for n, p, _ in pairs)
    assert all(set(p) == {"variant", "package", "score"} for p in pref)
    # the score, recomputed here from the cost entries alone
    best = {k: min(c[k] for _, _, c in pairs) for k in ("cold_start_ms", "peak_rss_mib", "call_us")}
    for p in pref:
        c = m["variants"][p["variant"]]["cost"][p["package"]]
        assert p["score"] == pytest.approx(sum(c[k] / best[k] for k in best), abs=1e-5)
    scores = [p["score"] for p in pref]
    assert scores == sorted(scores) and scores[0] >= 3.0 - 1e-9
    assert m["default_variant"] == pref[0]["variant"] and "cost" in m["default_reason"]
    report = open(os.path.join(tiny_bundle_dir, "parity.md")).read()
    assert "best on all three" in report and f"| {pref[0]['variant']} | {pref[0]['package']} |" in report


def test_ranking_follows_the_measured_cost_not_the_file_size():
    def variant(size, agreement, **costs):
        return {"kind": "window", "size": size, "runtimes": {"pkg": {"ok": True}},
                "parity": {"pkg": {"top1_agreement": agreement}},
                "cost": {"pkg": dict(costs, runs=3)}}
    variants = {
        "small-slow": variant(10, 1.0, cold_start_ms=100, peak_rss_mib=60, call_us=200),   # 2 + 2 + 2
        "big-fast": variant(30, 1.0, cold_start_ms=50, peak_rss_mib=30, call_us=100),      # best on all: 3
        "mid": variant(20, 1.0, cold_start_ms=60, peak_rss_mib=30, call_us=150),           # 1.2 + 1 + 1.5
        "tie-less-agreeing": variant(5, 0.9, cold_start_ms=60, peak_rss_mib=30, call_us=150),
    }
    pref = rank(variants)
    assert [p["variant"] for p in pref] == ["big-fast", "mid", "tie-less-agreeing", "small-slow"]
    assert [p["score"] for p in pref] == pytest.approx([3.0, 3.7, 3.7, 6.0])
    assert choose_default(variants, pref)[0] == "big-fast"
    for v in variants.values():
        del v["cost"]
    assert rank(variants) == []
    default, reason = choose_default(variants, [])
    assert default == "tie-less-agreeing" and "could be measured" in reason   # smallest file: the fallback


def test_bundle_text_names_no_path_of_the_building_machine(tiny_bundle_dir, tiny_model_dir):
    forbidden = {p for p in (os.path.abspath(tiny_model_dir), os.path.realpath(tiny_model_dir), os.path.expanduser("~"),
                             tempfile.gettempdir(), os.path.dirname(os.path.abspath(tiny_model_dir))) if len(p) > 1}
    assert os.path.abspath(tiny_model_dir) in forbidden
    texts = 0
    for f in os.listdir(tiny_bundle_dir):
        try:
            text = open(os.path.join(tiny_bundle_dir, f), encoding="utf-8").read()
        except UnicodeDecodeError:
            continue   # model files
        texts += 1
        for path in forbidden:
            assert path not in text, (f, path)
    assert texts >= 3   # manifest.json, vocab.json, parity.md


def test_cli_shows_a_bar_with_a_total_and_prints_the_tables_after_it(tiny_model_dir, tmp_path):
    names = ["tflite-float32", "onnx-dynamic-int8", "tflite-step-float32"]
    r = run_cli("nextword-export", tiny_model_dir, "--out", tmp_path / "bundle", "--variants", *names)
    assert r.returncode == 0, r.stderr
    expected = sum(1 + len(checked_here({"format": CATALOGUE[n].format})) * (2 if CATALOGUE[n].kind == "window" else 1)
                   for n in names)
    states = re.findall(r"(\d+)/(\d+) \[", r.stderr)
    assert states and states[-1] == (str(expected), str(expected)), r.stderr[-500:]
    assert r.stderr.endswith("\n")   # the bar's last state ends its line: nothing can be glued to it
    for label in ("convert tflite-float32", "parity onnx-dynamic-int8 on onnxruntime",
                  "parity tflite-step-float32 on ai-edge-litert", "cost tflite-float32 on ai-edge-litert"):
        assert label in r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("| variant | kind | size |")
    assert any(l.startswith("| variant | interpreter | cold start |") for l in lines)
    m = json.load(open(tmp_path / "bundle" / "manifest.json"))
    assert f"default variant: {m['default_variant']} (" in r.stdout


def test_onnx_files_carry_metadata_and_pass_the_full_checker(tiny_bundle_dir):
    import onnx
    m = json.load(open(os.path.join(tiny_bundle_dir, "manifest.json")))
    onnx_files = [v["file"] for v in m["variants"].values() if v["format"] == "onnx"]
    assert onnx_files
    for f in onnx_files:
        proto = onnx.load(os.path.join(tiny_bundle_dir, f))
        meta = {p.key: p.value for p in proto.metadata_props}
        assert meta["vocab_size"] == "11" and meta["nextword_format_version"] == "1"
        onnx.checker.check_model(proto, full_check=True)


def test_committed_demo_bundle_matches_a_fresh_keras_model_of_the_same_recipe(keras_model):
    """The demo bundle was built from the default corpus with seed 0; the session's tiny model uses
    the same recipe, so on this machine their float32 answers agree."""
    p = Predictor.load(SEED_BUNDLE, variant="onnx-float32" if "onnxruntime" in PACKAGES else "tflite-float32")
    ref = keras_probs(keras_model, p, SEED_TEXTS)
    assert [p.predict_next(t) for t in SEED_TEXTS] == [keras_top(r, p, 1)[0] for r in ref]


def test_gate_failure_keeps_the_previous_bundle(tiny_model_dir, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(SEED_BUNDLE, out)
    before = {f: sha256_file(out / f) for f in os.listdir(out)}
    r = run_cli("nextword-export", tiny_model_dir, "--out", out, "--force", "--variants", "tflite-float32", "tflite-int8",
                "--quiet", env={"NEXTWORD_FAULT_INJECT": "tflite-int8"})
    assert r.returncode == 1, r.stderr
    assert "tflite-int8" in r.stderr and "top1_agreement" in r.stderr
    assert "FAIL" in r.stdout                                           # the table of what failed
    assert {f: sha256_file(out / f) for f in os.listdir(out)} == before
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".nextword-tmp-")]
    # --drop-failing leaves the variant out and records why
    r = run_cli("nextword-export", tiny_model_dir, "--out", out, "--force", "--variants", "tflite-float32", "tflite-int8",
                "--quiet", "--drop-failing", env={"NEXTWORD_FAULT_INJECT": "tflite-int8"})
    assert r.returncode == 0, r.stderr
    m = json.load(open(out / "manifest.json"))
    assert list(m["variants"]) == ["tflite-float32"] and "tflite-int8" in m["dropped"]
    assert not (out / "int8.tflite").exists()
    assert Predictor.load(out).predict_next("hello how is") == "your"


@pytest.mark.parametrize("args,needle", [
    (["/nonexistent/model"], "does not exist"),
    (["{empty}"], "not a trained model folder"),
    (["{model}", "--variants", "tflite-int4"], "unknown variant"),
    (["{model}", "--opset", "21"], "opset 21"),
    (["{mismatch}"], "different runs"),
    (["{model}", "--out", "{existing}"], "--force"),
    (["{model}", "--gate", "int8.speed=3"], "unknown gate"),
])
def test_bad_input_is_one_line_exit_2(args, needle, tiny_model_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    mismatch = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, mismatch)
    tok = json.load(open(mismatch / "tokenizer.json"))
    tok["word_counts"].append(["extra", 1])
    tok["vocab_size"] += 1
    (mismatch / "tokenizer.json").write_text(json.dumps(tok))
    existing = tmp_path / "existing"
    existing.mkdir()
    args = [a.format(model=tiny_model_dir, empty=empty, mismatch=mismatch, existing=existing) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "out")]
    r = run_cli("nextword-export", *args, "--quiet")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
