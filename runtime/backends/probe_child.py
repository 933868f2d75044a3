"""Child-process check (started by runtime/backends/probe.py): load model bytes from stdin with one
interpreter package and invoke once on zeros. Exit 0 if that worked; an exception exits 1 with one
line on stderr; a crash shows up as a signal in the parent."""

import sys

import numpy as np

from ..child import run_child
from .packages import import_package


def main(argv):
    package, fmt = argv
    data = sys.stdin.buffer.read()
    module = import_package(package)
    if fmt == "onnx":
        sess = module.InferenceSession(data, providers=["CPUExecutionProvider"])
        feeds = {}
        for i in sess.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in i.shape]
            dtype = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}.get(i.type, np.float32)
            feeds[i.name] = np.zeros(shape, dtype)
        sess.run(None, feeds)
    else:
        interp = module.Interpreter(model_content=data)
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
        interp.invoke()
        for d in interp.get_output_details():
            interp.get_tensor(d["index"])
    print("ok")


if __name__ == "__main__":
    run_child(main)
