"""Training run: corpus -> tokenizer -> windows -> fit -> model folder (model.keras, tokenizer.json,
lexicon.json, train-report.json, curves.png, eval windows), written atomically."""

import json
import logging
import os
import platform
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from nextword.runtime.errors import InputError
from nextword.runtime.tokenizer import DEFAULT_FILTERS, Tokenizer

from . import checkpoint, defaults, lexicon
from .atomic import AtomicFolder, check_target
from . import train_ids as train_ids_file
from .corpus import read_corpus
from .metrics import Scores, topk_accuracy
from .examples import Chunks
from .loop import LoopState, Rules, run as run_epochs
from .model import ModelConfig, SequenceConfig, build_model, build_sequence_model, window_model_from
from .quiet_tf import import_keras, import_tensorflow
from .windows import Windows, split_heldout

log = logging.getLogger(__name__)

MODEL_FILE, TOKENIZER_FILE, REPORT_FILE, CURVES_FILE, WINDOWS_FILE = (
    "model.keras", "tokenizer.json", "train-report.json", "curves.png", "windows.npz")
LEXICON_FILE = lexicon.FILE   # display forms of the words (train/lexicon.py), copied into the bundle by export
MAX_EVAL_WINDOWS, MAX_CALIB_WINDOWS = 2000, 500
MAX_VAL_SCORE_CHUNKS = 128   # per-epoch validation top-k: 128 chunks x L positions (~2,500 targets for L=20)


def _val_sample(examples, limit, seed, batch=32):
    """A fixed sample of validation batches for the per-epoch scores, or None."""
    if examples is None:
        return None
    idx = sample(len(examples), limit, seed)
    return [examples.batch(idx[i:i + batch]) for i in range(0, len(idx), batch)]


OBJECTIVES = ("prefix", "sequence")
# the seed notebook's settings: what a run without --corpus uses for every setting not given
SEED_SETTINGS = {"objective": "prefix", "embedding_dim": 10, "units": 50, "epochs": 200, "batch_size": 32,
                 "learning_rate": 0.001, "val_split": 0.0, "test_split": 0.0, "patience": 0, "dropout": 0.0,
                 "lr_decay": 1.0, "stop_on": "loss", "recurrent_dropout": 0.0,
                 "tie": False}
CHOOSABLE = ("objective", "window", "embedding_dim", "units", "epochs", "batch_size", "learning_rate", "val_split",
             "test_split", "patience", "num_words", "oov_token", "chunk_length", "chunk_stride", "dropout", "tie",
             "lr_decay", "stop_on", "recurrent_dropout")


@dataclass
class TrainConfig:
    """None = not given: the seed's setting without a corpus, a corpus-aware choice (train.defaults) with one."""
    corpus: list = field(default_factory=list)   # empty: the four seed lines
    unit: str = "line"
    objective: str = None                          # "prefix" (the seed's windows) | "sequence" (chunks)
    window: int = None                             # prefix, seed: longest document - 1 (the seed's way)
    embedding_dim: int = None
    units: int = None
    epochs: int = None
    batch_size: int = None
    learning_rate: float = None
    val_split: float = None                        # validation (early stopping): tail of the non-test documents
    test_split: float = None                       # test: tail of the corpus, never trained on or stopped on
    patience: int = None                           # early stopping patience in epochs; 0 = off
    num_words: int = None
    oov_token: str = None
    chunk_length: int = None                       # sequence objective: inputs per chunk (L; chunks hold L+1)
    chunk_stride: int = None                       # sequence objective: a chunk every S tokens
    dropout: float = None                          # sequence objective: on the embedding and LSTM outputs
    recurrent_dropout: float = None                # sequence objective: on the LSTM's recurrent state
    tie: bool = None                               # sequence objective: output tied to the embedding
    lr_decay: float = None                         # learning rate x this after an epoch without a lower
                                                   # validation loss (1 = constant)
    stop_on: str = None                            # early stopping (best weights kept) on validation "loss"
                                                   # or "accuracy" (top-1 over every validation target)
    seed: int = 0
    lower: bool = True
    filters: str = DEFAULT_FILTERS

    def validate(self):
        def need(ok, msg):
            if not ok:
                raise InputError(msg)

        def given(name):
            return getattr(self, name) is not None
        need(self.objective is None or self.objective in OBJECTIVES,
             f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        need(not given("window") or self.window >= 1, f"--window must be at least 1, got {self.window}")
        need(not given("epochs") or self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        need(not given("batch_size") or self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        need(not given("embedding_dim") or self.embedding_dim >= 1,
             f"--embedding-dim must be at least 1, got {self.embedding_dim}")
        need(not given("units") or self.units >= 1, f"--units must be at least 1, got {self.units}")
        need(not given("learning_rate") or self.learning_rate > 0, f"--learning-rate must be > 0, got {self.learning_rate}")
        need(not given("val_split") or 0 <= self.val_split < 1, f"--val-split must be in [0, 1), got {self.val_split}")
        need(not given("test_split") or 0 <= self.test_split < 1, f"--test-split must be in [0, 1), got {self.test_split}")
        need(not given("patience") or self.patience >= 0, f"--patience must be >= 0, got {self.patience}")
        need(self.stop_on in (None, "loss", "accuracy"), f"--stop-on must be loss or accuracy, got {self.stop_on!r}")
        need(not given("lr_decay") or 0 < self.lr_decay <= 1, f"--lr-decay must be in (0, 1], got {self.lr_decay}")
        need(not given("num_words") or self.num_words >= 2, f"--num-words must be at least 2, got {self.num_words}")
        need(self.oov_token is None or self.oov_token.strip() != "", "--oov-token must not be blank")
        need(not given("chunk_length") or self.chunk_length >= 1, f"--chunk-length must be at least 1, got {self.chunk_length}")
        need(not given("chunk_stride") or self.chunk_stride >= 1, f"--chunk-stride must be at least 1, got {self.chunk_stride}")
        need(not given("dropout") or 0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}")
        need(not given("recurrent_dropout") or 0 <= self.recurrent_dropout < 1,
             f"--recurrent-dropout must be in [0, 1), got {self.recurrent_dropout}")
        need(0 <= self.seed < 2 ** 32, f"--seed must be in 0..{2 ** 32 - 1}, got {self.seed}")  # numpy's range
        return self


def resolve(cfg, documents):
    """(config with every setting filled in, {name: {"value", "why"}} of the chosen ones, test documents,
    the rest). Without a corpus: the seed's settings. With one: train.defaults chooses from the
    statistics of the non-test documents."""
    given = {k: getattr(cfg, k) for k in CHOOSABLE if getattr(cfg, k) is not None}
    out = replace(cfg)
    chosen = {}
    if not cfg.corpus:
        for k, v in SEED_SETTINGS.items():
            if k not in given:
                setattr(out, k, v)
    else:
        if "test_split" not in given:
            out.test_split, why = defaults.default_split(len(documents), defaults.TEST_SPLIT, "test")
            chosen["test_split"] = {"value": out.test_split, "why": why}
        rest, _ = split_heldout(documents, out.test_split)
        words = Tokenizer(lower=cfg.lower, filters=cfg.filters)
        stats = defaults.stats_of(words.words(d) for d in rest)
        if "val_split" not in given:
            out.val_split, why = defaults.default_split(len(rest), defaults.VAL_SPLIT, "validation")
            chosen["val_split"] = {"value": out.val_split, "why": why}
        chosen = choose_settings(out, given, stats, chosen)
    shape_objective(out)
    rest, test = split_heldout(documents, out.test_split)
    return out, chosen, test, rest


def choose_settings(out, given, stats, chosen):
    """Fill `out`'s settings not in `given` from the corpus statistics (train.defaults); returns the
    choices made, with the statistics, as resolve() reports them. Shared with train.distributed."""
    picks = defaults.choose(stats, {**given, "test_split": out.test_split, "val_split": out.val_split})
    for k, v in picks.items():
        setattr(out, k, v["value"])
    return {"stats": asdict(stats), **chosen, **picks}


def shape_objective(out):
    """The chunk settings of the sequence objective, or the seed's network for the prefix one."""
    if out.objective == "sequence":
        out.chunk_length = out.chunk_length or out.window or defaults.WINDOW_CAP
        out.window = out.window or out.chunk_length
        out.chunk_stride = out.chunk_stride or max(1, out.chunk_length // 2)
        if out.chunk_stride > out.chunk_length:
            raise InputError(f"--chunk-stride ({out.chunk_stride}) must not exceed --chunk-length "
                             f"({out.chunk_length}): targets between chunks would never be trained")
    else:
        out.chunk_length = out.chunk_stride = None
        out.dropout, out.recurrent_dropout, out.tie = 0.0, 0.0, False   # the seed's network as it is


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _dataset_class():
    keras = import_keras()

    class Batches(keras.utils.PyDataset):
        """Batches made on demand from examples (Windows: (x, y); Chunks: (x, y, weights)), anything
        with len() and batch(index). Epoch e's order depends on (seed, e) only, set by the loop before
        the epoch starts: a resumed run sees the orders an uninterrupted one would."""

        def __init__(self, examples, batch_size, shuffle, seed):
            super().__init__(workers=1, use_multiprocessing=False)
            self.examples, self.batch_size, self.shuffle, self.seed = examples, batch_size, shuffle, seed
            self.order = np.arange(len(examples))

        def set_epoch(self, epoch):
            if self.shuffle:
                self.order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))

        def __len__(self):
            return -(-len(self.examples) // self.batch_size)

        def __getitem__(self, i):
            return self.examples.batch(self.order[i * self.batch_size:(i + 1) * self.batch_size])

    return Batches


def evaluate_windows(model, windows, batch_size=1024):
    """Held-out top-1/3/5 accuracy and perplexity (train.metrics, no id excluded), a batch at a
    time: memory stays O(batch x vocab)."""
    scores = Scores()
    for start in range(0, len(windows), batch_size):
        x, y = windows.batch(np.arange(start, min(start + batch_size, len(windows))))
        scores.add(model(x, training=False).numpy(), y)
    out = scores.summary()
    return {"windows": out.pop("n"), **out}


def sample(n, limit, seed):
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
            ax.plot(epochs, history["val_" + key], label="validation")
        if key == "accuracy":
            for extra in ("val_top1", "val_top3"):
                if extra in history:
                    ax.plot(epochs, history[extra], label=extra.replace("val_", "validation "))
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("nextword training")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def train(cfg, out, force=False, progress=True, on_defaults=None, resume=False):
    """Run one training; returns (model, tokenizer, report). Nothing appears at `out` unless it all worked.
    The returned and saved model is always the window model (Embedding -> LSTM -> [projection] ->
    Dense softmax) that export reads, whichever objective trained its weights. With a corpus, the
    state after every epoch is kept in <out>.resume until the model folder is written; resume=True
    goes on from there (same corpus and settings; the epoch budget may differ)."""
    cfg.validate()
    resume_dir = checkpoint.resume_folder(out)
    # fail before minutes of training, not after; a resumed run may replace the folder it was interrupted with
    if resume and not cfg.corpus:
        raise InputError("--resume needs the --corpus of the interrupted run (the seed lines train in seconds "
                         "and keep no resume state)")
    if resume and not os.path.isdir(resume_dir):
        raise InputError(f"--resume: there is no {resume_dir} to continue from (it is written after every finished "
                         "epoch of a run with --corpus, and removed when the run completes)")
    force = force or (resume and _interrupted_folder(out))
    check_target(os.path.abspath(out), force)
    started = time.time()
    corpus = read_corpus(cfg.corpus, cfg.unit)
    cfg, chosen, test_docs, rest = resolve(cfg, corpus.documents)
    train_docs, val_docs = split_heldout(rest, cfg.val_split)
    for name, v in chosen.items():
        if name != "stats":
            log.info("default %s = %s: %s", name, v["value"], v["why"])
    tokenizer = Tokenizer(num_words=cfg.num_words, oov_token=cfg.oov_token, lower=cfg.lower, filters=cfg.filters)
    tokenizer.fit_on_texts(rest)   # never the test tail
    train_ids = tokenizer.texts_to_sequences(train_docs)
    n_tokens = sum(map(len, train_ids))
    if n_tokens < 2:
        raise InputError(f"the corpus has {n_tokens} token(s) after tokenizing; at least two are needed to learn a next word")
    windows = Windows(train_ids, cfg.window)
    if len(windows) == 0:
        raise InputError("no training windows: no document has two or more known words (try --unit paragraph)")
    window = windows.window
    val_ids = tokenizer.texts_to_sequences(val_docs) if val_docs else []
    test_ids = tokenizer.texts_to_sequences(test_docs) if test_docs else []
    held_ids = test_ids or val_ids                 # the held-out figures: the test tail, else validation
    held = Windows(held_ids, window) if held_ids else None
    if cfg.objective == "sequence":
        chunks = Chunks(train_ids, cfg.chunk_length, cfg.chunk_stride)
        val = Chunks(val_ids, cfg.chunk_length, cfg.chunk_stride) if val_ids else None
        examples = len(chunks)
        log.info("%d documents, %d tokens, vocabulary %d, %d chunks of %d (+1) every %d; window %d",
                 len(train_docs), n_tokens, tokenizer.vocab_size, len(chunks), cfg.chunk_length, cfg.chunk_stride,
                 window)
    else:
        val = Windows(val_ids, window) if val_ids else None
        examples = len(windows)
        log.info("%d documents, %d tokens, vocabulary %d, %d windows of %d", len(train_docs), n_tokens,
                 tokenizer.vocab_size, len(windows), window)
    val = val if val is not None and len(val) else None

    if on_defaults and chosen:   # only once the corpus is known to be trainable: bad input prints nothing
        on_defaults(chosen)
    keras = import_keras()
    keras.utils.set_random_seed(cfg.seed)
    mcfg = ModelConfig(tokenizer.vocab_size, window, cfg.embedding_dim, cfg.units)
    Batches = _dataset_class()
    if cfg.objective == "sequence":
        scfg = SequenceConfig(tokenizer.vocab_size, cfg.chunk_length, cfg.embedding_dim, cfg.units, cfg.dropout,
                              bool(cfg.tie), cfg.recurrent_dropout)
        trained = build_sequence_model(scfg, cfg.learning_rate)
        train_batches = Batches(chunks, cfg.batch_size, True, cfg.seed)
        val_sample = _val_sample(val, MAX_VAL_SCORE_CHUNKS, cfg.seed)
        model_info = dict(mcfg.to_dict(), objective="sequence", chunk_length=cfg.chunk_length,
                          chunk_stride=cfg.chunk_stride, dropout=cfg.dropout, tied=bool(cfg.tie),
                          recurrent_dropout=cfg.recurrent_dropout)
    else:
        trained = build_model(mcfg, cfg.learning_rate)
        train_batches = Batches(windows, cfg.batch_size, True, cfg.seed)
        val_sample = _val_sample(val, MAX_EVAL_WINDOWS, cfg.seed)
        model_info = mcfg.to_dict()
    train_params = int(trained.count_params())
    rules = Rules(epochs=cfg.epochs, patience=cfg.patience, watch=("val_" if val else "") + (cfg.stop_on or "loss"),
                  mode="max" if cfg.stop_on == "accuracy" else "min", decay=cfg.lr_decay,
                  decay_on="val_loss" if val else "loss")
    meta = {"config": asdict(cfg), "corpus_sha256": corpus.sha256, "vocab_size": tokenizer.vocab_size,
            "keras": keras.__version__}
    state, kept = LoopState(), None
    if resume:
        previous = checkpoint.Resume(resume_dir, meta)
        try:
            state = LoopState.from_dict(previous.loop)
        except (TypeError, ValueError) as e:
            raise checkpoint.damaged(resume_dir, f"holds no usable loop state ({e})") from None
        kept = previous.restore(trained)
        log.warning("resuming after epoch %d of %d from %s", state.epochs_done, cfg.epochs, resume_dir)
    elif os.path.exists(resume_dir) and cfg.corpus:
        log.warning("starting over: %s of an earlier run will be replaced (--resume continues it)", resume_dir)
    resumed_from = state.epochs_done if resume else None

    def save(loop_state, kept_weights):
        checkpoint.save(resume_dir, trained, kept_weights, loop_state.to_dict(), meta)

    fit_started = time.time()
    outcome = run_epochs(trained, train_batches, Batches(val, cfg.batch_size, False, 0) if val else None, val_sample,
                         rules, state, kept, progress, save if cfg.corpus else None)
    history, interrupted = outcome.state.history, outcome.stopped_by is not None
    model = window_model_from(trained, scfg, window) if cfg.objective == "sequence" else trained
    fit_seconds = time.time() - fit_started

    train_eval = sample(len(windows), MAX_EVAL_WINDOWS, cfg.seed)
    x_train, y_train = windows.batch(train_eval)
    train_acc = topk_accuracy(model(x_train, training=False).numpy(), y_train)
    heldout = None
    if held is not None and len(held):
        heldout = evaluate_windows(model, held)
        heldout["source"] = "test" if test_ids else "validation"
        x_eval, y_eval = held.batch(sample(len(held), MAX_EVAL_WINDOWS, cfg.seed))
    else:
        x_eval, y_eval = x_train, y_train
    x_calib, _ = windows.batch(sample(len(windows), MAX_CALIB_WINDOWS, cfg.seed + 1))

    tf = import_tensorflow()
    epochs_run = outcome.state.epochs_done
    best = outcome.state.best_epoch if cfg.patience and outcome.state.best_epoch else epochs_run
    if interrupted:
        log.warning("the model folder holds the best weights of %d completed epoch(s); train-report.json says "
                    "\"interrupted\": true", epochs_run)
    report = {
        "format": "nextword-train-report", "format_version": 1,
        "config": asdict(cfg), "model": model_info, "defaults": chosen,
        "corpus": {"name": corpus.name, "unit": corpus.unit, "sha256": corpus.sha256, "bytes": corpus.size_bytes,
                   "files": corpus.files, "documents": len(corpus.documents), "train_documents": len(train_docs),
                   "heldout_documents": len(test_docs or val_docs), "validation_documents": len(val_docs),
                   "test_documents": len(test_docs), "train_tokens": n_tokens},
        "split": {"test_split": cfg.test_split, "val_split": cfg.val_split,
                  "test": "the last test_split of the documents: never trained on, never used to stop",
                  "validation": "the last val_split of the other documents: early stopping only"},
        "vocab_size": tokenizer.vocab_size, "words_seen": len(tokenizer.word_index), "windows": len(windows),
        "examples": examples, "window": window, "params": int(model.count_params()), "train_params": train_params,
        "history": {k: [float(x) for x in v] for k, v in history.items()},
        "epochs_run": epochs_run, "best_epoch": best, "interrupted": interrupted,
        "stopped_by": outcome.stopped_by, "stopped_early": outcome.state.stopped_early,
        "resumed_from_epoch": resumed_from, "resume_folder": resume_dir if interrupted else None,
        "train_accuracy": {"windows": len(train_eval), "top1": train_acc[1], "top3": train_acc[3]},
        "heldout": heldout, "fit_seconds": fit_seconds, "wall_seconds": None, "peak_rss_mb": None,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "eval_windows": {"source": "heldout" if heldout else "train", "count": int(len(x_eval))},
    }
    write_model_folder(out, force, model, tokenizer, lexicon.build(rest, tokenizer), (train_ids, val_ids),
                       (x_eval, y_eval, x_calib), history, report, started)
    if not interrupted:
        shutil.rmtree(resume_dir, ignore_errors=True)   # the run is complete: nothing left to resume
    return model, tokenizer, report


def write_model_folder(out, force, model, tokenizer, forms, ids, windows, history, report, started):
    """The model folder, whole or not at all (train.atomic): the window model, tokenizer, display
    forms, the n-gram's ids ((train, validation) documents, or None: export then builds no n-gram),
    the eval/calibration windows, curves and report (its wall time and peak RSS filled in here)."""
    x_eval, y_eval, x_calib = windows
    with AtomicFolder(out, force) as tmp:
        model.save(os.path.join(tmp, MODEL_FILE))
        tokenizer.save(os.path.join(tmp, TOKENIZER_FILE))
        forms.save(os.path.join(tmp, LEXICON_FILE))
        if ids is not None:
            train_ids_file.save(os.path.join(tmp, train_ids_file.FILE), *ids)   # the n-gram's (export)
        np.savez(os.path.join(tmp, WINDOWS_FILE), x_eval=x_eval, y_eval=y_eval, x_calib=x_calib)
        plot_curves(history, os.path.join(tmp, CURVES_FILE))
        report["wall_seconds"] = time.time() - started
        report["peak_rss_mb"] = peak_rss_mb()
        with open(os.path.join(tmp, REPORT_FILE), "w", encoding="utf-8") as f:
            json.dump(report, f, indent=2, ensure_ascii=False)


def _interrupted_folder(out):
    """True if `out` is a model folder whose training was interrupted (its report says so)."""
    try:
        with open(os.path.join(out, REPORT_FILE), encoding="utf-8") as f:
            return json.load(f).get("interrupted") is True
    except (OSError, ValueError, AttributeError):
        return False
