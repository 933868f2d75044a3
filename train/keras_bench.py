"""The Keras side of the benchmark, always run as a child process of `nextword-bench` (the bench
process itself never imports TensorFlow: the import boundary stays whole).

    python -m nextword.train.keras_bench --serve MODEL_DIR --windows X.npy
        loads the model, then answers train.bench_protocol requests on stdin/stdout:
        predict n        n calls of model.predict(x, verbose=0), one window each (cycling over X)
        call n batch     n calls of model(x, training=False) on `batch` windows each
        probs x_path out_path   softmax probabilities for the windows in x_path, written as .npy
    python -m nextword.train.keras_bench --cold MODEL_DIR --text TEXT
        a cold TensorFlow process: import, load the .keras model, predict once, print the word
    python -m nextword.train.keras_bench --scaling OUT_DIR --configs V:T ...
        random-weight model folders of the default architecture (Embedding 10, LSTM 50 unless told)
        for the scaling sweep, each exportable by nextword-export; prints {"models": [...]} as JSON
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from nextword.runtime.tokenizer import Tokenizer
from nextword.runtime.windowing import pad_windows

from .atomic import AtomicFolder
from .bench_protocol import protocol_stream, serve as serve_loop, timed
from .model import ModelConfig, build_model
from .quiet_tf import import_keras, import_tensorflow


def _versions():
    keras = import_keras()
    tf = import_tensorflow()
    return {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def serve(model_dir, windows_path):
    out = protocol_stream()
    t0 = time.perf_counter()
    keras = import_keras()
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    loaded = time.perf_counter() - t0
    x = np.load(windows_path, allow_pickle=False).astype(np.int32)
    if len(x) < 64:
        x = np.concatenate([x] * (-(-64 // len(x))))
    n_x = len(x)
    singles = [x[i:i + 1] for i in range(n_x)]
    for i in range(3):  # the first calls trace and build: not what the rounds should see
        model.predict(singles[i], verbose=0)
        model(singles[i], training=False)

    def predict(n):
        return {"samples": timed(lambda i: model.predict(singles[i % n_x], verbose=0), int(n))}

    def call(n, batch=1):
        batch = int(batch)
        blocks = [x[j:j + batch] for j in range(0, n_x - batch + 1, batch)]
        model(blocks[0], training=False)  # a new batch size may trace once more
        return {"samples": timed(lambda i: model(blocks[i % len(blocks)], training=False), int(n))}

    def probs(x_path, out_path):
        xs = np.load(x_path, allow_pickle=False).astype(np.int32)
        p = np.concatenate([model(xs[i:i + 512], training=False).numpy() for i in range(0, len(xs), 512)])
        np.save(out_path, p.astype(np.float32), allow_pickle=False)
        return {"rows": int(len(p))}

    hello = {"versions": _versions(), "load_seconds": loaded, "params": int(model.count_params()),
             "window": int(model.input_shape[1]), "vocab_size": int(model.output_shape[-1])}
    serve_loop({"predict": predict, "call": call, "probs": probs}, hello, out=out)


def cold(model_dir, text):
    """What a TensorFlow user pays in a fresh process for one answer (timed from outside)."""
    keras = import_keras()
    model = keras.saving.load_model(os.path.join(model_dir, "model.keras"))
    tok = Tokenizer.load(os.path.join(model_dir, "tokenizer.json"))
    p = model.predict(pad_windows([tok.text_to_ids(text)], model.input_shape[1]), verbose=0)[0]
    p[0] = 0.0
    print(tok.id_to_word_table()[int(np.argmax(p))])


def scaling(out_dir, configs, embedding_dim, units, seed):
    """One model folder per (vocab, window): random weights, synthetic words, random eval windows."""
    keras = import_keras()
    os.makedirs(out_dir, exist_ok=True)
    made = []
    for vocab, window in configs:
        folder = os.path.join(out_dir, f"v{vocab}-t{window}-model")
        made.append({"vocab_size": vocab, "window": window, "model_dir": folder})
        if os.path.isfile(os.path.join(folder, "train-report.json")):
            continue  # already built by an earlier run: same seed, same weights
        keras.utils.set_random_seed(seed)
        tok = Tokenizer()
        tok.fit_on_texts([" ".join(f"w{i}" for i in range(1, vocab))])  # equal counts: ids in first-seen order
        assert tok.vocab_size == vocab, (tok.vocab_size, vocab)
        cfg = ModelConfig(vocab, window, embedding_dim, units)
        model = build_model(cfg)
        rng = np.random.default_rng(seed)
        x_eval = rng.integers(1, vocab, size=(200, window), dtype=np.int32)
        y_eval = rng.integers(1, vocab, size=200, dtype=np.int32)
        x_calib = rng.integers(1, vocab, size=(100, window), dtype=np.int32)
        report = {"format": "nextword-train-report", "format_version": 1, "synthetic": True,
                  "model": cfg.to_dict(), "vocab_size": vocab, "window": window, "params": int(model.count_params()),
                  "corpus": {"name": "synthetic", "sha256": "synthetic-random-weights"},
                  "eval_windows": {"source": "random", "count": 200}, "versions": _versions()}
        with AtomicFolder(folder, force=True) as tmp:
            model.save(os.path.join(tmp, "model.keras"))
            tok.save(os.path.join(tmp, "tokenizer.json"))
            np.savez(os.path.join(tmp, "windows.npz"), x_eval=x_eval, y_eval=y_eval, x_calib=x_calib)
            with open(os.path.join(tmp, "train-report.json"), "w", encoding="utf-8") as f:
                json.dump(report, f, indent=2)
    print(json.dumps({"models": made}))


def _config(text):
    try:
        v, t = text.split(":")
        return int(v), int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected VOCAB:WINDOW, got {text!r}") from None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m nextword.train.keras_bench", description=__doc__.split("\n\n")[0])
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--serve", metavar="MODEL_DIR")
    mode.add_argument("--cold", metavar="MODEL_DIR")
    mode.add_argument("--scaling", metavar="OUT_DIR")
    p.add_argument("--windows", metavar="X.npy", help="--serve: the id windows every timing cycles over")
    p.add_argument("--text", default="", help="--cold: the text to answer")
    p.add_argument("--configs", nargs="+", type=_config, default=[], metavar="V:T", help="--scaling: models to build")
    p.add_argument("--embedding-dim", type=int, default=10)
    p.add_argument("--units", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.serve:
        if not args.windows:
            p.error("--serve needs --windows")
        serve(args.serve, args.windows)
    elif args.cold:
        cold(args.cold, args.text)
    else:
        scaling(args.scaling, args.configs, args.embedding_dim, args.units, args.seed)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # one line for the parent
        print(f"keras_bench: {type(e).__name__}: {' '.join(str(e).split())[:500]}", file=sys.stderr)
        sys.exit(1)
