"""The epoch loop: one model.fit call per epoch, so the loop itself owns everything a resume needs (the
epoch's shuffle order, the best weights and patience, the learning-rate decay, when to stop) instead
of Keras callbacks that start afresh at every fit call and whose state is not saved.

Early stopping follows Keras' EarlyStopping(restore_best_weights=True) and the decay
ReduceLROnPlateau(patience=0), rule for rule: the figures measured with them still hold."""

import logging
import math
import signal
from dataclasses import asdict, dataclass, field

from nextword.runtime.cliutil import Stopped

from .metrics import Scores
from .quiet_tf import import_keras
from .stop import StopRequested, StopSignals, stop_check_callback

log = logging.getLogger(__name__)

DECAY_MIN_DELTA = 1e-4   # ReduceLROnPlateau's default: the loss must drop by this much to count as lower


@dataclass
class Rules:
    epochs: int               # the budget, counted from the first epoch of the run (resumes included)
    patience: int             # early stopping after this many epochs without a better `watch`; 0 = off
    watch: str                # e.g. "val_accuracy", "val_loss", "loss"
    mode: str                 # "max" or "min"
    decay: float              # learning rate x this after an epoch without a lower `decay_on`; 1 = off
    decay_on: str             # "val_loss" or "loss"


@dataclass
class LoopState:
    """Where a run is after its last finished epoch: all a resume needs besides the variables."""
    epochs_done: int = 0
    history: dict = field(default_factory=dict)
    best: float = None        # best value of rules.watch so far
    best_epoch: int = 0       # 1-based; 0: none yet
    wait: int = 0             # epochs since the best (Keras' EarlyStopping counter)
    decay_best: float = None  # lowest rules.decay_on so far (Keras' ReduceLROnPlateau)
    stopped_early: bool = False

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, d):
        """Checked: a resume folder is read from disk (ValueError when it does not hold a loop state)."""
        names = set(cls.__dataclass_fields__)
        if set(d) != names:
            raise ValueError(f"loop state keys {sorted(d)} are not {sorted(names)}")
        state = cls(**d)
        ints = (state.epochs_done, state.best_epoch, state.wait)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints):
            raise ValueError("epoch counts must be whole numbers >= 0")
        if not isinstance(state.history, dict) or not all(
                isinstance(v, list) and len(v) == state.epochs_done and all(isinstance(x, (int, float)) for x in v)
                for v in state.history.values()):
            raise ValueError("the history must hold one number per finished epoch for every figure")
        for v in (state.best, state.decay_best):
            if v is not None and not isinstance(v, (int, float)):
                raise ValueError("best values must be numbers")
        if not isinstance(state.stopped_early, bool):
            raise ValueError("stopped_early must be true or false")
        return state


@dataclass
class Outcome:
    state: LoopState
    stopped_by: str = None    # the signal that interrupted the run ("SIGINT", ...), None if it ran its course


def validation_scores(model, batches):
    """Top-1, top-3 and perplexity on a fixed sample of validation batches (x, y[, weights]), scored
    with train.metrics: the same figures as the held-out ones, on the objective's own contexts."""
    if not batches:
        return {}
    keras = import_keras()
    scores = Scores()
    for b in batches:
        out = keras.ops.convert_to_numpy(model(b[0], training=False))
        if out.ndim == 3:   # sequence model: logits at every position, only weighted ones count
            keep = b[2].reshape(-1) > 0
            probs = keras.ops.convert_to_numpy(keras.ops.softmax(out.reshape(-1, out.shape[-1])[keep]))
            scores.add(probs, b[1].reshape(-1)[keep])
        else:
            scores.add(out, b[1])
    if not scores.n:
        return {}
    figures = scores.summary()
    return {"val_top1": figures["top1"], "val_top3": figures["top3"], "val_perplexity": figures["perplexity"]}


def _improved(value, best, mode, min_delta=0.0):
    if value is None or not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best + min_delta if mode == "max" else value < best - min_delta


def end_epoch(model, state, rules, logs, kept):
    """Record one finished epoch (Keras' rules for decay and early stopping); returns the kept weights:
    the best epoch's when early stopping is on, else None (the last epoch's are the model's own)."""
    epoch = state.epochs_done
    for k, v in logs.items():
        state.history.setdefault(k, []).append(float(v))
    state.epochs_done += 1
    if rules.decay < 1 and rules.decay_on in logs:
        if _improved(logs[rules.decay_on], state.decay_best, "min", DECAY_MIN_DELTA):
            state.decay_best = logs[rules.decay_on]
        else:
            model.optimizer.learning_rate = float(model.optimizer.learning_rate.numpy()) * rules.decay
    if rules.patience:
        state.wait += 1
        if _improved(logs.get(rules.watch), state.best, rules.mode):
            state.best, state.best_epoch, state.wait = float(logs[rules.watch]), epoch + 1, 0
            kept = model.get_weights()
        elif state.wait >= rules.patience and epoch > 0:
            state.stopped_early = True
    return kept


def run(model, train_batches, val_batches, val_sample, rules, state, kept=None, progress=True, save=None):
    """Train epochs state.epochs_done+1 .. rules.epochs. A stop signal ends it between two batches: the
    unfinished epoch is dropped and the model gets the weights of the last finished one (the best one
    with early stopping). save(state, kept) runs after every epoch. Returns an Outcome."""
    keras = import_keras()
    last = model.get_weights() if state.epochs_done else None
    stopped_by = None
    with StopSignals() as stop:
        fit_callbacks = [stop_check_callback(stop)]
        bar = _bar(rules.epochs, state.epochs_done) if progress else None
        try:
            while state.epochs_done < rules.epochs and not state.stopped_early:
                stop.check()
                train_batches.set_epoch(state.epochs_done)
                lr = float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
                history = model.fit(train_batches, epochs=1, verbose=0, shuffle=False, validation_data=val_batches,
                                    callbacks=fit_callbacks)
                logs = {k: float(v[-1]) for k, v in history.history.items()}
                logs.update(validation_scores(model, val_sample))
                logs["learning_rate"] = lr
                kept = end_epoch(model, state, rules, logs, kept)
                last = None if rules.patience else model.get_weights()
                if save is not None:
                    save(state, kept)
                if bar is not None:
                    bar.set_postfix({k: f"{v:.4f}" for k, v in logs.items()})
                    bar.update(1)
        except StopRequested as e:
            stopped_by = e.signame
            log.warning("%s: stopping; the unfinished epoch is dropped", e.signame)
        finally:
            if bar is not None:
                bar.close()
    if stopped_by is not None and not state.epochs_done:
        _reraise(stopped_by)   # not one epoch done: nothing worth keeping
    if rules.patience and kept is not None:
        model.set_weights(kept)
    elif stopped_by is not None and last is not None:
        model.set_weights(last)
    return Outcome(state, stopped_by)


def _reraise(signame):
    """Stopped before anything was learnt: end as the signal would (cliutil: exit 130, 143 or 129)."""
    if signame == "SIGINT":
        raise KeyboardInterrupt
    raise Stopped(getattr(signal, signame))


def _bar(epochs, done):
    from tqdm.auto import tqdm
    return tqdm(total=epochs, initial=done, unit="epoch", desc="training", leave=True)
