"""The parity suite: a model trained in this session, exported with every variant, checked against
the real Keras model through the real Predictor on every interpreter; plus the gate failing, bad
input and the bundle's self-description."""

import json
import os
import shutil

import numpy as np
import pytest

from nextword.runtime import Predictor
from nextword.runtime.bundle import Bundle, sha256_file
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
    checked = 0
    for name, v in manifest.variants.items():
        if v.kind != "window":
            continue
        for pkg in PACKAGES:
            if FORMAT_OF[pkg] != v.format:
                continue
            p = Predictor.load(tiny_bundle_dir, backend=pkg, variant=name)
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
            checked += 1
    assert checked >= 6


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
    default = m["variants"][m["default_variant"]]
    assert default["kind"] == "window"
    assert default["size"] == min(v["size"] for v in m["variants"].values() if v["kind"] == "window")
    assert "| tflite-int8 |" in open(os.path.join(tiny_bundle_dir, "parity.md")).read()


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
