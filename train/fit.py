"""Training run: corpus -> tokenizer -> windows -> fit -> model folder (model.keras, tokenizer.json,
train-report.json, curves.png, eval windows), written atomically."""

import json
import logging
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from nextword.runtime.errors import InputError
from nextword.runtime.tokenizer import DEFAULT_FILTERS, Tokenizer

from .atomic import AtomicFolder, check_target
from .corpus import read_corpus
from .metrics import Scores, topk_accuracy
from .model import ModelConfig, build_model
from .quiet_tf import import_keras, import_tensorflow
from .windows import Windows, split_heldout

log = logging.getLogger(__name__)

MODEL_FILE, TOKENIZER_FILE, REPORT_FILE, CURVES_FILE, WINDOWS_FILE = (
    "model.keras", "tokenizer.json", "train-report.json", "curves.png", "windows.npz")
MAX_EVAL_WINDOWS, MAX_CALIB_WINDOWS = 2000, 500


@dataclass
class TrainConfig:
    corpus: list = field(default_factory=list)   # empty: the four seed lines
    unit: str = "line"
    window: int = None                             # None: longest document - 1 (the seed's way)
    embedding_dim: int = 10
    units: int = 50
    epochs: int = 200
    batch_size: int = 32
    learning_rate: float = 0.001
    val_split: float = 0.0
    patience: int = 0                              # early stopping patience in epochs; 0 = off
    num_words: int = None
    oov_token: str = None
    seed: int = 0
    lower: bool = True
    filters: str = DEFAULT_FILTERS

    def validate(self):
        def need(ok, msg):
            if not ok:
                raise InputError(msg)
        need(self.window is None or self.window >= 1, f"--window must be at least 1, got {self.window}")
        need(self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        need(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        need(self.embedding_dim >= 1, f"--embedding-dim must be at least 1, got {self.embedding_dim}")
        need(self.units >= 1, f"--units must be at least 1, got {self.units}")
        need(self.learning_rate > 0, f"--learning-rate must be > 0, got {self.learning_rate}")
        need(0 <= self.val_split < 1, f"--val-split must be in [0, 1), got {self.val_split}")
        need(self.patience >= 0, f"--patience must be >= 0, got {self.patience}")
        need(self.num_words is None or self.num_words >= 2, f"--num-words must be at least 2, got {self.num_words}")
        need(self.oov_token is None or self.oov_token.strip() != "", "--oov-token must not be blank")
        need(0 <= self.seed < 2 ** 32, f"--seed must be in 0..{2 ** 32 - 1}, got {self.seed}")  # numpy's range
        return self


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _dataset_class():
    keras = import_keras()

    class WindowBatches(keras.utils.PyDataset):
        """Batches made on demand from Windows; reshuffled every epoch from the run's seed."""

        def __init__(self, windows, batch_size, shuffle, seed):
            super().__init__(workers=1, use_multiprocessing=False)
            self.windows, self.batch_size, self.shuffle = windows, batch_size, shuffle
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(len(windows)) if shuffle else np.arange(len(windows))

        def __len__(self):
            return -(-len(self.windows) // self.batch_size)

        def __getitem__(self, i):
            return self.windows.batch(self.order[i * self.batch_size:(i + 1) * self.batch_size])

        def on_epoch_end(self):
            if self.shuffle:
                self.order = self.rng.permutation(len(self.windows))

    return WindowBatches


def _progress_callback(epochs):
    keras = import_keras()
    from tqdm.auto import tqdm

    class EpochBar(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.bar = tqdm(total=epochs, unit="epoch", desc="training", leave=True)

        def on_epoch_end(self, epoch, logs=None):
            self.bar.set_postfix({k: f"{v:.4f}" for k, v in (logs or {}).items()})
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return EpochBar()


def evaluate_windows(model, windows, batch_size=1024):
    """Held-out top-1/3/5 accuracy and perplexity (train.metrics, no id excluded), a batch at a
    time: memory stays O(batch x vocab)."""
    scores = Scores()
    for start in range(0, len(windows), batch_size):
        x, y = windows.batch(np.arange(start, min(start + batch_size, len(windows))))
        scores.add(model(x, training=False).numpy(), y)
    out = scores.summary()
    return {"windows": out.pop("n"), **out}


def _sample(n, limit, seed):
    """Up to `limit` window numbers, spread evenly and reproducibly."""
    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=limit, replace=False))


def plot_curves(history, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for key, ax in (("loss", a), ("accuracy", b)):
        ax.plot(epochs, history[key], label="train")
        if "val_" + key in history:
            ax.plot(epochs, history["val_" + key], label="held out")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("nextword training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg, out, force=False, progress=True):
    """Run one training; returns (model, tokenizer, report). Nothing appears at `out` unless it all worked."""
    cfg.validate()
    check_target(os.path.abspath(out), force)  # fail before minutes of training, not after
    started = time.time()
    corpus = read_corpus(cfg.corpus, cfg.unit)
    train_docs, val_docs = split_heldout(corpus.documents, cfg.val_split)
    tokenizer = Tokenizer(num_words=cfg.num_words, oov_token=cfg.oov_token, lower=cfg.lower, filters=cfg.filters)
    tokenizer.fit_on_texts(train_docs)
    train_ids = tokenizer.texts_to_sequences(train_docs)
    n_tokens = sum(map(len, train_ids))
    if n_tokens < 2:
        raise InputError(f"the corpus has {n_tokens} token(s) after tokenizing; at least two are needed to learn a next word")
    windows = Windows(train_ids, cfg.window)
    if len(windows) == 0:
        raise InputError("no training windows: every document has a single word (try --unit paragraph)")
    val = Windows(tokenizer.texts_to_sequences(val_docs), windows.window) if val_docs else None
    mcfg = ModelConfig(tokenizer.vocab_size, windows.window, cfg.embedding_dim, cfg.units)
    log.info("%d documents, %d tokens, vocabulary %d, %d windows of %d", len(train_docs), n_tokens,
             mcfg.vocab_size, len(windows), windows.window)

    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    model = build_model(mcfg, cfg.learning_rate)
    Batches = _dataset_class()
    callbacks = [_progress_callback(cfg.epochs)] if progress else []
    if cfg.patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss" if val and len(val) else "loss",
                                                       patience=cfg.patience, restore_best_weights=True))
    fit_started = time.time()
    history = model.fit(Batches(windows, cfg.batch_size, True, cfg.seed), epochs=cfg.epochs, verbose=0,
                        validation_data=Batches(val, cfg.batch_size, False, 0) if val and len(val) else None,
                        callbacks=callbacks).history
    fit_seconds = time.time() - fit_started

    train_eval = _sample(len(windows), MAX_EVAL_WINDOWS, cfg.seed)
    x_train, y_train = windows.batch(train_eval)
    train_acc = topk_accuracy(model(x_train, training=False).numpy(), y_train)
    heldout = None
    if val is not None and len(val):
        heldout = evaluate_windows(model, val)
        x_eval, y_eval = val.batch(_sample(len(val), MAX_EVAL_WINDOWS, cfg.seed))
    else:
        x_eval, y_eval = x_train, y_train
    x_calib, _ = windows.batch(_sample(len(windows), MAX_CALIB_WINDOWS, cfg.seed + 1))

    tf = import_tensorflow()
    report = {
        "format": "nextword-train-report", "format_version": 1,
        "config": asdict(cfg), "model": mcfg.to_dict(),
        "corpus": {"name": corpus.name, "unit": corpus.unit, "sha256": corpus.sha256, "bytes": corpus.size_bytes,
                   "files": corpus.files, "documents": len(corpus.documents), "train_documents": len(train_docs),
                   "heldout_documents": len(val_docs), "train_tokens": n_tokens},
        "vocab_size": mcfg.vocab_size, "words_seen": len(tokenizer.word_index), "windows": len(windows),
        "window": windows.window, "params": int(model.count_params()),
        "history": {k: [float(x) for x in v] for k, v in history.items()},
        "epochs_run": len(history["loss"]),
        "train_accuracy": {"windows": len(train_eval), "top1": train_acc[1], "top3": train_acc[3]},
        "heldout": heldout, "fit_seconds": fit_seconds, "wall_seconds": None, "peak_rss_mb": None,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "eval_windows": {"source": "heldout" if heldout else "train", "count": int(len(x_eval))},
    }
    with AtomicFolder(out, force) as tmp:
        model.save(os.path.join(tmp, MODEL_FILE))
        tokenizer.save(os.path.join(tmp, TOKENIZER_FILE))
        np.savez(os.path.join(tmp, WINDOWS_FILE), x_eval=x_eval, y_eval=y_eval, x_calib=x_calib)
        plot_curves(history, os.path.join(tmp, CURVES_FILE))
        report["wall_seconds"] = time.time() - started
        report["peak_rss_mb"] = peak_rss_mb()
        with open(os.path.join(tmp, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)
    return model, tokenizer, report
