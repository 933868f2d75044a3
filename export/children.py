"""The child processes the exporter starts, and how their failures read: a converter per variant
(it may crash), the Predictor in the legacy tflite-runtime environment, and that environment's probe."""

import json
import os
import subprocess
import tempfile

import numpy as np

from nextword.runtime.child import module_argv

CONVERT_TIMEOUT = 1800
LEGACY_TIMEOUT = 600


def failure_reason(proc):
    """One line for a child that did not exit 0: the signal, or its last line of stderr."""
    if proc.returncode < 0:
        return f"crashed with signal {-proc.returncode}"
    lines = [l for l in (proc.stderr or "").strip().splitlines() if l.strip()]
    return lines[-1] if lines else f"exited with {proc.returncode}"


def run_converter(spec, model_dir, folder, opset):
    """Convert one variant in `python -m nextword.export.convert`; returns (meta, None) or (None, reason)."""
    out_file = os.path.join(folder, spec.file)
    job = {"model_dir": os.path.abspath(model_dir), "kind": spec.kind, "format": spec.format,
           "family": spec.family, "out_file": out_file, "name": spec.name, "opset": opset}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(job, f)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        proc = subprocess.run(module_argv("nextword.export.convert", f.name), capture_output=True, text=True,
                              timeout=CONVERT_TIMEOUT, env=env)
    except subprocess.TimeoutExpired:
        return None, f"converter timed out after {CONVERT_TIMEOUT} s"
    finally:
        os.unlink(f.name)
    if proc.returncode < 0:
        return None, f"converter {failure_reason(proc)} (e.g. SIGSEGV in the TF converter)"
    if proc.returncode != 0:
        return None, failure_reason(proc)
    with open(out_file + ".json", encoding="utf-8") as fh:
        meta = json.load(fh)
    os.unlink(out_file + ".json")
    return meta, None


def legacy_probabilities(legacy_python, folder, name, x_path):
    """The Predictor's probabilities for the windows in `x_path`, computed with tflite-runtime in the
    legacy environment (runtime/dump.py); (probs, None) or (None, reason)."""
    out = x_path + f".{name}.npy"
    proc = subprocess.run(module_argv("nextword.runtime.dump", folder, name, "tflite-runtime", x_path, out,
                                      python=legacy_python),
                          capture_output=True, text=True, timeout=LEGACY_TIMEOUT)
    if proc.returncode != 0:
        return None, failure_reason(proc)
    probs = np.load(out, allow_pickle=False)
    os.unlink(out)
    return probs, None


def legacy_version(legacy_python):
    """tflite-runtime's version in the environment of `legacy_python`, or None if it cannot import it."""
    proc = subprocess.run([legacy_python, "-c", "from importlib.metadata import version; print(version('tflite-runtime'))"],
                          capture_output=True, text=True, timeout=120)
    return proc.stdout.strip() if proc.returncode == 0 else None
