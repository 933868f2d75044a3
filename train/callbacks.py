"""What a person sees and keeps while training: a progress bar per epoch with an ETA over the epoch
budget, validation top-1 / top-3 / perplexity per epoch (in the history, hence train-report.json,
and in curves.png), the best weights so far (kept on Ctrl-C, restored after early stopping), and a
resume folder rewritten atomically after every epoch so `--resume` continues an interrupted run.

Keras is imported when a callback is first made, not when this module is imported: the CLI's
bad-input runs must fail before TensorFlow loads. tqdm and matplotlib are imported where they are
used for the same reason (the runtime-only environments lack them).

Keras 3.15 behaviour this module relies on (read from keras/src): `model.fit` calls no
`on_train_end` when KeyboardInterrupt escapes an epoch, so EarlyStopping(restore_best_weights=True)
restores nothing on Ctrl-C; it does restore at the end of a run that was not stopped early (Keras 2
did only when it triggered); and its patience count and best value start over in every `fit` call,
so a resumed run would forget them. BestKeeper replaces it: same rule, state that survives a resume.
"""

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from nextword.runtime.cliutil import Stopped
from nextword.runtime.errors import InputError

from .atomic import AtomicFolder
from .quiet_tf import import_keras

log = logging.getLogger(__name__)

SCORE_KEYS = ("top1", "top3", "perplexity")      # what `evaluate(model)` returns; logged as val_<key>
RESUME_SUFFIX = ".resume"                         # <out>.resume/ beside the model folder
RESUME_FORMAT, RESUME_VERSION = "nextword-train-resume", 1
STATE_FILE, RESUME_MODEL_FILE, BEST_WEIGHTS_FILE = "state.json", "model.keras", "best.weights.h5"
MAX_EPOCH_LINES = 30   # a long budget prints a summary line every ceil(epochs / 30) epochs, not 200 lines


def resume_folder(out):
    """Where the run writing the model folder `out` keeps its resume state: `<out>.resume`, a
    sibling (not inside AtomicFolder's temp folder, which the next run deletes as a leftover)."""
    return os.path.abspath(out).rstrip(os.sep) + RESUME_SUFFIX


class KerasCallback:
    """Base of this module's callbacks: a subclass becomes a keras.callbacks.Callback when first
    instantiated (one mixed class per subclass, cached), so importing the module loads no Keras."""

    _mixed = {}

    def __new__(cls, *args, **kwargs):
        base = import_keras().callbacks.Callback
        if not issubclass(cls, base):
            if cls not in KerasCallback._mixed:
                KerasCallback._mixed[cls] = type(cls.__name__, (cls, base),
                                                 {"__module__": cls.__module__, "__doc__": cls.__doc__})
            cls = KerasCallback._mixed[cls]
        return object.__new__(cls)

    def __init__(self):
        super().__init__()


def _fmt_seconds(s):
    if s is None or not math.isfinite(s):
        return "?"
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _is_number(v):
    return isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool)


class ValidationScores(KerasCallback):
    """Adds val_top1, val_top3 and val_perplexity to each epoch's logs from `evaluate(model) ->
    {"top1", "top3", "perplexity"}` (the caller's: e.g. a fixed sample of held-out windows scored
    through train.metrics.Scores). Keras' History then records them, so they reach the report.
    Put it before BestKeeper, Checkpoint and EpochBar: they read the same logs."""

    def __init__(self, evaluate):
        super().__init__()
        self.evaluate = evaluate

    def on_epoch_end(self, epoch, logs=None):
        scores = self.evaluate(self.model)
        missing = [k for k in SCORE_KEYS if k not in scores]
        if missing:
            raise ValueError(f"evaluate(model) must return {list(SCORE_KEYS)}; missing {missing}")
        if logs is not None:
            logs.update({f"val_{k}": float(scores[k]) for k in SCORE_KEYS})


class BestKeeper(KerasCallback):
    """Keeps a copy of the weights of the best epoch by `monitor` ("val_loss", or "loss" without
    validation). With `patience` > 0 it stops training after that many epochs without improvement
    (EarlyStopping's rule). `restore_at_end` (default: on when patience is) puts the best weights
    back when fit ends normally; `restore(model)` does it on demand (fit_keeping_best calls it on
    Ctrl-C). `state()` / `load_state()` carry the record across a resume."""

    def __init__(self, monitor="loss", mode="min", patience=0, min_delta=0.0, restore_at_end=None):
        super().__init__()
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.monitor, self.mode, self.patience, self.min_delta = monitor, mode, int(patience), float(min_delta)
        self.restore_at_end = self.patience > 0 if restore_at_end is None else bool(restore_at_end)
        self.best_value = self.best_epoch = self.stopped_epoch = None   # epochs 0-based, as Keras counts
        self.best_weights = None
        self.wait = 0

    def _better(self, value):
        if value is None or not math.isfinite(value):
            return False
        if self.best_value is None:
            return True
        if self.mode == "min":
            return value < self.best_value - self.min_delta
        return value > self.best_value + self.min_delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(f"BestKeeper monitors {self.monitor!r}, which this run does not log "
                             f"(it logs {sorted(logs)}); monitor 'loss' when there is no validation data")
        value = float(logs[self.monitor])
        if self._better(value):
            self.best_value, self.best_epoch, self.wait = value, epoch, 0
            self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.restore_at_end:
            self.restore(self.model)

    def restore(self, model):
        """Put the best weights into `model`; False when no epoch has finished yet."""
        if self.best_weights is None:
            return False
        model.set_weights(self.best_weights)
        log.info("restored the weights of epoch %d (%s %.4f)", self.best_epoch + 1, self.monitor, self.best_value)
        return True

    def state(self):
        return {"monitor": self.monitor, "mode": self.mode, "patience": self.patience,
                "best_value": self.best_value, "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state(self, state, best_weights):
        if state.get("monitor") != self.monitor or state.get("mode") != self.mode:
            raise InputError(f"the resume folder tracked {state.get('monitor')!r} ({state.get('mode')}); "
                             f"this run monitors {self.monitor!r} ({self.mode}): resume with the same settings")
        self.best_value, self.best_epoch, self.wait = state["best_value"], state["best_epoch"], int(state["wait"])
        self.best_weights = best_weights
        return self


class EpochBar(KerasCallback):
    """A tqdm bar over the batches of each epoch ("epoch k/N", loss, ETA over the whole epoch
    budget), then a summary line per epoch (loss, validation figures, time, ETA) on stderr: every
    epoch for budgets up to MAX_EPOCH_LINES epochs, every ceil(N / MAX_EPOCH_LINES)-th beyond, and
    the last. `quiet` prints nothing. The ETA assumes the whole budget runs (early stopping may end
    sooner). `file` defaults to sys.stderr at the time of writing."""

    def __init__(self, epochs=None, steps=None, initial_epoch=0, quiet=False, file=None, best=None,
                 max_lines=MAX_EPOCH_LINES, interval=0.1):
        super().__init__()
        self.interval = interval   # seconds between redraws of the bar (tqdm's mininterval)
        self.epochs, self.steps, self.initial_epoch = epochs, steps, int(initial_epoch)
        self.quiet, self.file, self.best, self.max_lines = quiet, file, best, max_lines
        self.bar = None
        self.last_line = None

    def _out(self):
        return self.file or sys.stderr

    def on_train_begin(self, logs=None):
        params = self.params or {}
        self.epochs = self.epochs or params.get("epochs")
        self.steps = self.steps or params.get("steps")
        self.started = time.monotonic()
        self.batches_done = 0
        self.every = max(1, math.ceil((self.epochs - self.initial_epoch) / self.max_lines)) if self.epochs else 1
        self.printed_epoch = None

    def _eta(self, epochs_left_after_this, batches_left_in_this):
        """Seconds left in the budget at the current pace (wall time per batch, validation included)."""
        if not self.batches_done or not self.steps:
            return None
        per_batch = (time.monotonic() - self.started) / self.batches_done
        return per_batch * (batches_left_in_this + epochs_left_after_this * self.steps)

    def on_epoch_begin(self, epoch, logs=None):
        from tqdm.auto import tqdm
        self.close()
        self.epoch, self.epoch_started = epoch, time.monotonic()
        self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="batch", leave=False,
                        file=self._out(), disable=self.quiet, dynamic_ncols=True, mininterval=self.interval)

    def on_train_batch_end(self, batch, logs=None):
        if self.bar is None:
            return
        self.batches_done += 1
        parts = []
        if logs and _is_number(logs.get("loss")):
            parts.append(f"loss {float(logs['loss']):.4f}")
        left = self._eta(self.epochs - self.epoch - 1, max(0, (self.steps or 0) - self.bar.n - 1)) if self.epochs else None
        if left is not None:
            parts.append(f"ETA {_fmt_seconds(left)} for {self.epochs - self.epoch} epoch(s)")
        self.bar.set_postfix_str("  ".join(parts), refresh=False)   # shown by the update, at tqdm's pace
        self.bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        self.close()
        left = self._eta(self.epochs - epoch - 1, 0) if self.epochs else None
        self.last_line = self.summary(epoch, logs or {}, time.monotonic() - self.epoch_started, left)
        if (epoch + 1 - self.initial_epoch) % self.every == 0 or epoch + 1 == self.epochs:
            self._write(self.last_line)
            self.printed_epoch = epoch

    def on_train_end(self, logs=None):
        self.close()
        epoch = getattr(self, "epoch", None)
        if self.last_line and self.printed_epoch != epoch:
            self._write(self.last_line)   # the epoch early stopping ended on
            self.printed_epoch = epoch

    def summary(self, epoch, logs, seconds, eta):
        """One line: epoch k/N, train and validation figures, time, ETA for the rest of the budget."""
        parts = [f"epoch {epoch + 1}/{self.epochs}"]
        for key, label, fmt in (("loss", "loss", "{:.4f}"), ("val_loss", "val_loss", "{:.4f}"),
                                ("val_top1", "val top-1", "{:.1%}"), ("val_top3", "top-3", "{:.1%}"),
                                ("val_perplexity", "perplexity", "{:.1f}")):
            if _is_number(logs.get(key)):
                parts.append(f"{label} {fmt.format(float(logs[key]))}")
        parts.append(f"{seconds:.1f} s")
        if epoch + 1 < (self.epochs or 0):
            parts.append(f"ETA {_fmt_seconds(eta)} for {self.epochs - epoch - 1} more epoch(s)")
        if self.best is not None and self.best.best_epoch == epoch:
            parts.append(f"best {self.best.monitor} so far")
        return "  ".join(parts)

    def _write(self, line):
        if not self.quiet:
            from tqdm.auto import tqdm
            tqdm.write(line, file=self._out())

    def close(self):
        """Close the open bar (fit_keeping_best calls it on Ctrl-C: no on_train_end then)."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Checkpoint(KerasCallback):
    """After every `every`-th epoch, replaces `folder` atomically (AtomicFolder: a temp folder
    renamed into place, so a Ctrl-C or kill leaves the previous checkpoint whole) with:
    model.keras (architecture, weights, optimizer state), best.weights.h5 (the BestKeeper's best
    weights), state.json (epochs done, history so far, the best record, the seed and the numpy
    shuffle generator's state, the caller's `extra` such as the config and corpus hash). No pickle."""

    def __init__(self, folder, best=None, seed=None, extra=None, history=None, rng=None, every=1):
        super().__init__()
        self.folder, self.best, self.seed, self.extra, self.rng, self.every = folder, best, seed, extra or {}, rng, every
        self.history = {k: list(v) for k, v in (history or {}).items()}

    def on_epoch_end(self, epoch, logs=None):
        for k, v in (logs or {}).items():
            if _is_number(v):
                self.history.setdefault(k, []).append(float(v))
        if (epoch + 1) % self.every == 0:
            self.save(epoch + 1)

    def save(self, epochs_done):
        state = {"format": RESUME_FORMAT, "format_version": RESUME_VERSION, "epochs_done": int(epochs_done),
                 "history": self.history, "best": self.best.state() if self.best else None,
                 "seed": self.seed, "rng_state": self.rng.bit_generator.state if self.rng is not None else None,
                 "keras": import_keras().__version__, "extra": self.extra}
        with AtomicFolder(self.folder, force=True) as tmp:
            self.model.save(os.path.join(tmp, RESUME_MODEL_FILE))
            if self.best is not None and self.best.best_weights is not None:
                best_path = os.path.join(tmp, BEST_WEIGHTS_FILE)
                if self.best.best_epoch == epochs_done - 1:
                    self.model.save_weights(best_path)
                else:
                    current = self.model.get_weights()
                    self.model.set_weights(self.best.best_weights)
                    try:
                        self.model.save_weights(best_path)
                    finally:
                        self.model.set_weights(current)
            with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1)
        log.debug("checkpoint after epoch %d written to %s", epochs_done, self.folder)


@dataclass
class ResumeState:
    """What load_resume found: the model (weights and optimizer as saved), the epoch to continue
    from (model.fit's initial_epoch), the history so far, and the best record and weights."""
    folder: str
    model: object
    initial_epoch: int
    history: dict
    best: dict = None
    best_weights: list = None
    seed: int = None
    rng_state: dict = None
    extra: dict = field(default_factory=dict)

    def restore_best(self, keeper):
        """Carry the best record into a fresh BestKeeper (same monitor and mode, or InputError)."""
        if self.best is not None:
            keeper.load_state(self.best, self.best_weights)
        return keeper


def load_resume(folder, custom_objects=None):
    """Read a resume folder written by Checkpoint; a missing or damaged one is an InputError."""
    state_path = os.path.join(folder, STATE_FILE)
    if not os.path.isdir(folder):
        raise InputError(f"nothing to resume: {folder} does not exist (a run writes it after each epoch)")
    try:
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError(f"{state_path} is unreadable: {e}") from None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise InputError(f"{state_path} is not a nextword resume state")
    if state.get("format_version") != RESUME_VERSION:
        raise InputError(f"{state_path} has format_version {state.get('format_version')!r}; this version reads {RESUME_VERSION}")
    done, history = state.get("epochs_done"), state.get("history")
    if not isinstance(done, int) or done < 1 or not isinstance(history, dict) or \
            any(not isinstance(v, list) or len(v) != done for v in history.values()):
        raise InputError(f"{state_path}: epochs_done and history disagree")
    keras = import_keras()
    try:
        model = keras.saving.load_model(os.path.join(folder, RESUME_MODEL_FILE), custom_objects=custom_objects)
        best_weights = None
        best_path = os.path.join(folder, BEST_WEIGHTS_FILE)
        if os.path.exists(best_path):
            current = model.get_weights()
            model.load_weights(best_path)
            best_weights = model.get_weights()
            model.set_weights(current)
    except (OSError, ValueError) as e:
        raise InputError(f"{folder}: the saved model does not load ({e})") from None
    return ResumeState(folder=folder, model=model, initial_epoch=done, history=history, best=state.get("best"),
                       best_weights=best_weights, seed=state.get("seed"), rng_state=state.get("rng_state"),
                       extra=state.get("extra") or {})


@dataclass
class FitResult:
    history: dict           # every epoch of the run, resumed ones included
    interrupted: bool       # Ctrl-C (or SIGTERM, SIGHUP) ended model.fit
    best: object = None     # the BestKeeper, if one was given
    restored_best: bool = False
    stopped_by: str = None  # "SIGINT", "SIGTERM", "SIGHUP" when interrupted

    def report(self):
        """The part of train-report.json that says how training ended and which weights were kept."""
        b = self.best
        return {"interrupted": self.interrupted, "stopped_by": self.stopped_by,
                "stopped_early": bool(b is not None and b.stopped_epoch is not None),
                "epochs_run": len(self.history.get("loss", [])),
                "monitor": b.monitor if b else None,
                "best_epoch": b.best_epoch + 1 if b is not None and b.best_epoch is not None else None,
                "best_value": b.best_value if b else None,
                "weights": "best" if self.restored_best else "last"}


def _raise_stopped(signum, frame):
    signal.signal(signum, signal.SIG_DFL)   # a second SIGTERM while we save ends the process at once
    raise Stopped(signum)


def fit_keeping_best(model, fit_kwargs, best=None, history=None, catch_sigterm=True):
    """model.fit(**fit_kwargs), but Ctrl-C ends it cleanly: the best weights so far go back into
    `model` and the caller writes a model folder marked interrupted. So does SIGTERM (and SIGHUP)
    when cliutil.run(catch_signals=True) already turns them into Stopped, or, with `catch_sigterm`
    on the main thread, when SIGTERM still has its default action (this function then handles it
    while fit runs). `history` (from a resume) is prepended to the new epochs."""
    keras = import_keras()
    recorder = keras.callbacks.History()
    callbacks = list(fit_kwargs.get("callbacks") or [])
    if best is not None and best not in callbacks:
        callbacks.append(best)
    kwargs = dict(fit_kwargs, callbacks=callbacks + [recorder])   # last: it sees every key the others added
    previous = None
    if catch_sigterm and threading.current_thread() is threading.main_thread() \
            and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        previous = signal.signal(signal.SIGTERM, _raise_stopped)
    stopped_by = None
    try:
        model.fit(**kwargs)
    except KeyboardInterrupt:
        stopped_by = "SIGINT"
    except Stopped as e:
        stopped_by = signal.Signals(e.signum).name
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        for cb in callbacks:
            if isinstance(cb, EpochBar):
                cb.close()
    interrupted = stopped_by is not None
    merged = {k: list(v) for k, v in (history or {}).items()}
    for k, v in recorder.history.items():
        merged.setdefault(k, []).extend(float(x) for x in v)
    restored = False
    if best is not None:
        if interrupted:
            restored = best.restore(model)
            log.warning("training interrupted after %d epoch(s); keeping %s", len(merged.get("loss", [])),
                        f"epoch {best.best_epoch + 1} (best {best.monitor})" if restored else "the last weights")
        else:
            restored = best.restore_at_end and best.best_weights is not None
    return FitResult(history=merged, interrupted=interrupted, best=best, restored_best=restored, stopped_by=stopped_by)


def training_callbacks(*, epochs, steps=None, evaluate=None, monitor="loss", mode="min", patience=0,
                       checkpoint_folder=None, seed=None, extra=None, rng=None, resume=None, quiet=False, file=None,
                       bar_interval=0.1):
    """The usual set, in the order that works: [ValidationScores, BestKeeper, Checkpoint, EpochBar].
    Returns (callbacks, best_keeper). `resume` (a ResumeState) carries the best record, the history
    and the starting epoch over."""
    best = BestKeeper(monitor=monitor, mode=mode, patience=patience)
    initial_epoch = 0
    history = None
    if resume is not None:
        resume.restore_best(best)
        initial_epoch, history = resume.initial_epoch, resume.history
    callbacks = [ValidationScores(evaluate)] if evaluate is not None else []
    callbacks.append(best)
    if checkpoint_folder:
        callbacks.append(Checkpoint(checkpoint_folder, best=best, seed=seed, extra=extra, history=history, rng=rng))
    callbacks.append(EpochBar(epochs=epochs, steps=steps, initial_epoch=initial_epoch, quiet=quiet, file=file, best=best,
                             interval=bar_interval))
    return callbacks, best


def plot_curves(history, path, best_epoch=None, title="nextword training"):
    """curves.png: loss (train, held out), top-1 / top-3 (held out; train accuracy if logged) and
    perplexity (held out; exp(train loss), the training perplexity when the loss is the mean NLL).
    `best_epoch` (1-based) draws a dotted line where the kept weights come from."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    n = len(history.get("loss", []))
    epochs = np.arange(1, n + 1)
    fig = Figure(figsize=(14, 4))
    FigureCanvasAgg(fig)
    panels = fig.subplots(1, 3)

    def line(ax, key, label, transform=None, style="-"):
        values = history.get(key)
        if values and len(values) == n:
            v = np.asarray(values, dtype=float)
            ax.plot(epochs, transform(v) if transform else v, style, label=label, marker="." if n < 30 else None)
            return True
        return False

    loss, acc, ppl = panels
    drawn = [line(loss, "loss", "train") | line(loss, "val_loss", "held out"),
             line(acc, "val_top1", "held-out top-1") | line(acc, "val_top3", "held-out top-3")
             | line(acc, "accuracy", "train top-1", style="--"),
             line(ppl, "val_perplexity", "held out")
             | line(ppl, "loss", "train (exp loss)", transform=lambda v: np.exp(np.minimum(v, 50)), style="--")]
    for ax, name, ok in zip(panels, ("loss", "accuracy", "perplexity"), drawn):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", label=f"kept (epoch {best_epoch})")
        if ok:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    if drawn[2]:
        ppl.set_yscale("log")
    acc.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)

