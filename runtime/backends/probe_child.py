"""Child-process check (started by runtime/backends/probe.py): load model bytes from stdin with one
interpreter package and invoke it on REAL ids across the vocabulary (0, 1, the last id and a spread
between) and, for step models, on zero and non-zero states. Zeros alone are not enough: a model that
gathers from a hostile constant may only fault on a non-zero id. Exit 0 if every call worked; an
exception exits 1 with one line on stderr; a crash shows up as a signal in the parent."""

import sys

import numpy as np

from ..child import run_child
from .packages import import_package

SPREAD = 8          # ids evenly spread over the vocabulary, besides 0, 1 and vocab_size - 1


def probe_ids(vocab_size):
    """The ids fed: 0, 1, vocab_size - 1 and a spread between, each once, ascending."""
    spread = np.linspace(0, vocab_size - 1, SPREAD).round().astype(np.int64).tolist()
    return sorted({0, 1, vocab_size - 1, *spread} & set(range(vocab_size)))


def probe_feeds(inputs, vocab_size):
    """[{input name: array}] to run: `inputs` is [(name, shape, numpy dtype)] as the interpreter
    reports them. Integer inputs get ids (every position the same id, then the ids in turn along the
    window); float inputs (LSTM states) get zeros, then values in [-1, 1]."""
    ids = probe_ids(vocab_size)
    rng = np.random.default_rng(0)
    feeds = []
    for k, token in enumerate(ids + [None]):
        feed = {}
        for name, shape, dtype in inputs:
            shape = [int(d) if d > 0 else 1 for d in shape]
            if np.issubdtype(dtype, np.integer):
                if token is None:   # the ids in turn along the window
                    a = np.resize(np.asarray(ids, dtype), int(np.prod(shape))).reshape(shape)
                else:
                    a = np.full(shape, token, dtype)
            else:
                a = np.zeros(shape, dtype) if k == 0 else rng.uniform(-1.0, 1.0, shape).astype(dtype)
            feed[name] = a
        feeds.append(feed)
    return feeds


def _run_onnx(module, data, vocab_size):
    sess = module.InferenceSession(data, providers=["CPUExecutionProvider"])
    types = {"tensor(int32)": np.int32, "tensor(int64)": np.int64}
    inputs = [(i.name, [d if isinstance(d, int) else 1 for d in i.shape], np.dtype(types.get(i.type, np.float32)))
              for i in sess.get_inputs()]
    for feed in probe_feeds(inputs, vocab_size):
        sess.run(None, feed)


def _run_tflite(module, data, vocab_size):
    interp = module.Interpreter(model_content=data)
    interp.allocate_tensors()
    details = interp.get_input_details()
    inputs = [(d["name"], list(d["shape"]), np.dtype(d["dtype"])) for d in details]
    index = {d["name"]: d["index"] for d in details}
    for feed in probe_feeds(inputs, vocab_size):
        for name, a in feed.items():
            interp.set_tensor(index[name], a)
        interp.invoke()
        for d in interp.get_output_details():
            interp.get_tensor(d["index"])


def main(argv):
    package, fmt, vocab_size = argv
    vocab_size = int(vocab_size)
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be at least 1, got {vocab_size}")
    data = sys.stdin.buffer.read()
    module = import_package(package)
    (_run_onnx if fmt == "onnx" else _run_tflite)(module, data, vocab_size)
    print("ok")


if __name__ == "__main__":
    run_child(main)
