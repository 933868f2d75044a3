"""TensorFlow's start-up chatter never reaches the user, on any CPU.

Whether `import tensorflow` prints oneDNN/absl lines depends on the CPU (AVX-512, AMX), so these tests
do not rely on the machine: a stand-in `tensorflow` package, put in front of the real one on
PYTHONPATH, writes those lines (copied from a CPU that prints them) to file descriptor 2, as C++ does,
then hands over to the real TensorFlow. Children of the commands inherit it too."""

import os
import subprocess
import sys

import pytest

from support import run_cli

pytestmark = pytest.mark.tf

CHATTER = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
           b"I0000 00:00:1764547200.123456   12345 port.cc:153] oneDNN custom operations are on. You may see slightly "
           b"different numerical results due to floating-point round-off errors from different computation orders. "
           b"To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.\n"
           b"I0000 00:00:1764547200.234567   12345 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
           b"available CPU instructions in performance-critical operations.\n"
           b"To enable the following instructions: AVX512F AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8 AMX_BF16 FMA, in "
           b"other operations, rebuild TensorFlow with the appropriate compiler flags.\n")
REAL = b"W0000 00:00:1764547200.345678   12345 graph_check.cc:42] a real warning the user must see\n"

SHIM = '''import importlib, os, sys
os.write(2, {lines!r})
here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
del sys.modules["tensorflow"]
sys.modules["tensorflow"] = importlib.import_module("tensorflow")
'''


def noisy_env(tmp_path, lines):
    shim = tmp_path / "noisy" / "tensorflow"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text(SHIM.format(lines=lines))
    return {"PYTHONPATH": str(shim.parent), "TF_CPP_MIN_LOG_LEVEL": "2"}


def test_the_stand_in_is_noisy_without_the_guard(tmp_path):
    """The control: a plain `import tensorflow` through the stand-in prints the chatter, so the tests
    below would fail if the commands did not silence it."""
    env = dict(os.environ, **noisy_env(tmp_path, CHATTER))
    r = subprocess.run([sys.executable, "-c", "import tensorflow; print(tensorflow.__version__)"],
                       capture_output=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert CHATTER in r.stderr


def test_guarded_import_drops_chatter_and_keeps_real_warnings(tmp_path):
    env = dict(os.environ, **noisy_env(tmp_path, CHATTER + REAL))
    code = "from nextword.train.quiet_tf import import_keras; print(import_keras().__version__)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == REAL, r.stderr


def test_bad_input_after_the_tensorflow_import_is_one_line(tiny_model_dir, tmp_path):
    """nextword-export refuses a model folder whose tokenizer does not match its model only after
    loading the model with Keras: the one-line error must still be all there is on stderr."""
    import json
    import shutil
    mismatch = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, mismatch)
    tok = json.loads((mismatch / "tokenizer.json").read_text())
    tok["word_counts"].append(["extra", 1])
    tok["vocab_size"] += 1
    (mismatch / "tokenizer.json").write_text(json.dumps(tok))
    r = run_cli("nextword-export", mismatch, "--out", tmp_path / "out", "--quiet", env=noisy_env(tmp_path, CHATTER),
                cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "different runs" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_train_and_export_with_children_print_no_chatter(tmp_path):
    """A whole run (training, then an export whose converters run in child processes) prints nothing
    on stderr when asked to be quiet."""
    env = noisy_env(tmp_path, CHATTER)
    model, bundle = tmp_path / "m", tmp_path / "b"
    r = run_cli("nextword-train", "--out", model, "--epochs", "20", "--quiet", env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    r = run_cli("nextword-export", model, "--out", bundle, "--variants", "tflite-float32", "onnx-float32", "--quiet",
                env=env, cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
