"""One variant, converted in its own child process (`python -m nextword.export.convert SPEC.json`).

Converters crash (SIGSEGV in int8 calibration is real), so the parent only ever sees an exit status
and, on success, the model file plus a JSON sidecar describing it. The forms themselves live in
window.py and step.py; this module only dispatches."""

import json
import os

import numpy as np

from nextword.runtime.child import run_child
from nextword.train.quiet_tf import import_keras

from . import step, window
from .onnx_format import ONNX_OPSET


def _corrupt_for_tests(trained):
    """Test hook (NEXTWORD_FAULT_INJECT=<variant>): reverse the output layer of this variant only, so
    the parity gate has something to catch."""
    dense = [l for l in trained.layers if l.weights][-1]
    kernel, bias = dense.get_weights()
    dense.set_weights([kernel[:, ::-1].copy(), bias[::-1].copy()])


def convert(trained, kind, fmt, family, calib, opset):
    """(model bytes, meta) for one catalogue entry."""
    if kind == "step":
        return step.convert_step(trained, fmt, family, opset)
    if fmt == "tflite":
        return window.convert_tflite(trained, family, calib)
    if fmt == "onnx":
        return window.convert_onnx(trained, family, opset)
    raise ValueError(f"unknown format {fmt!r}")


def main(spec_path):
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    trained = import_keras().saving.load_model(os.path.join(spec["model_dir"], "model.keras"))
    calib = np.load(os.path.join(spec["model_dir"], "windows.npz"), allow_pickle=False)["x_calib"]
    if os.environ.get("NEXTWORD_FAULT_INJECT") == spec.get("name"):
        _corrupt_for_tests(trained)
    data, meta = convert(trained, spec["kind"], spec["format"], spec["family"], calib, spec.get("opset", ONNX_OPSET))
    with open(spec["out_file"], "wb") as f:
        f.write(data)
    with open(spec["out_file"] + ".json", "w", encoding="utf-8") as f:
        json.dump(meta, f)


if __name__ == "__main__":
    run_child(lambda argv: main(*argv))
