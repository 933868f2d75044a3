"""train.callbacks: the progress bar and its ETA, per-epoch validation figures, curves.png, Ctrl-C
keeping the best weights, and --resume continuing from the last finished epoch. Tiny Keras models
on random ids (a few seconds each); tests that need Keras are marked `tf`."""

import io
import json
import os
import re
import signal
import struct
import subprocess
import sys

import numpy as np
import pytest

from nextword.runtime import cliutil
from nextword.runtime.errors import InputError
from nextword.train.callbacks import (BEST_WEIGHTS_FILE, RESUME_FORMAT, RESUME_VERSION, STATE_FILE, EpochBar,
                                      load_resume, plot_curves, resume_folder)

V, WINDOW, BATCH = 20, 3, 16
STEPS = 4                                   # 64 training windows / batch 16


def data():
    rng = np.random.default_rng(0)
    x = rng.integers(1, V, (64, WINDOW)).astype("int32")
    y = rng.integers(1, V, 64).astype("int32")
    xv = rng.integers(1, V, (32, WINDOW)).astype("int32")
    yv = rng.integers(1, V, 32).astype("int32")
    return x, y, xv, yv


def tiny_model(seed=0):
    import keras
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((WINDOW,), dtype="int32"), keras.layers.Embedding(V, 4),
                              keras.layers.LSTM(8), keras.layers.Dense(V, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.Adam(0.01))
    return model


def scores_on(x, y):
    """The caller's evaluate(model): held-out windows scored through train.metrics.Scores."""
    from nextword.train.metrics import Scores

    def evaluate(model):
        return Scores().add(model(x, training=False).numpy(), y).summary()
    return evaluate


def scripted(perplexities):
    """An evaluate(model) whose perplexity follows a script, so the best epoch is known in advance."""
    calls = []

    def evaluate(model):
        calls.append(1)
        return {"top1": 0.1, "top3": 0.2, "perplexity": perplexities[len(calls) - 1]}
    return evaluate


def recorders(stop_at=None):
    """[snapshots of the weights after every epoch, a callback raising KeyboardInterrupt at
    (epoch, batch) = stop_at, as Ctrl-C would inside model.fit]."""
    import keras
    snaps = {}

    class Snap(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snaps[epoch] = self.model.get_weights()

    class CtrlC(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if stop_at == (self.epoch, batch):
                raise KeyboardInterrupt

    return snaps, [Snap(), CtrlC()]


def same(a, b, **tol):
    return len(a) == len(b) and all(np.allclose(u, v, **tol) if tol else np.array_equal(u, v) for u, v in zip(a, b))


# -- no Keras needed -----------------------------------------------------------------------------

def test_importing_the_module_loads_no_tensorflow():
    code = "import sys, nextword.train.callbacks; print(sorted(m for m in ('tensorflow', 'keras', 'tqdm', 'matplotlib') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_resume_folder_is_a_sibling_of_the_model_folder(tmp_path):
    out = tmp_path / "m"
    assert resume_folder(str(out) + "/") == str(out) + ".resume"


def _state(**over):
    s = {"format": RESUME_FORMAT, "format_version": RESUME_VERSION, "epochs_done": 2,
         "history": {"loss": [2.0, 1.5]}, "best": None, "seed": 0, "rng_state": None, "extra": {}}
    s.update(over)
    return s


@pytest.mark.parametrize("state, expect", [
    (None, "does not exist"),
    ("{not json", "unreadable"),
    (json.dumps(["a"]), "not a nextword resume state"),
    (json.dumps(_state(format="other")), "not a nextword resume state"),
    (json.dumps(_state(format_version=99)), "format_version 99"),
    (json.dumps(_state(epochs_done=3)), "disagree"),
    (json.dumps(_state(epochs_done=0, history={})), "disagree"),
])
def test_a_missing_or_damaged_resume_folder_is_an_input_error(tmp_path, state, expect):
    folder = tmp_path / "m.resume"
    if state is not None:
        folder.mkdir()
        (folder / STATE_FILE).write_text(state)
    with pytest.raises(InputError, match=expect):
        load_resume(str(folder))


# -- with Keras (and tqdm, matplotlib: the train extra) -------------------------------------------

@pytest.mark.tf
def test_a_long_budget_prints_a_line_every_few_epochs():
    """100 epochs: a summary line every ceil(100/30) = 4 epochs and the last, not 100 lines; with an
    ETA while epochs remain, and nothing at all when quiet. (The bar's hooks driven directly.)"""
    out, quiet = io.StringIO(), io.StringIO()
    for f, q in ((out, False), (quiet, True)):
        bar = EpochBar(epochs=100, steps=2, file=f, quiet=q)
        bar.on_train_begin()
        for e in range(100):
            bar.on_epoch_begin(e)
            for b in range(2):
                bar.on_train_batch_end(b, {"loss": 1.0})
            bar.on_epoch_end(e, {"loss": 1.0})
        bar.on_train_end()
    lines = [ln for ln in out.getvalue().splitlines() if re.match(r"^epoch \d+/100  loss", ln)]
    assert [int(ln.split()[1].split("/")[0]) for ln in lines] == list(range(4, 101, 4))
    assert all(re.search(r"ETA \d+:\d\d:\d\d for \d+ more epoch", ln) for ln in lines[:-1])
    assert quiet.getvalue() == ""


@pytest.mark.tf
def test_curves_png_has_three_panels(tmp_path):
    n = 6
    history = {"loss": list(np.linspace(4, 2, n)), "val_loss": list(np.linspace(4.2, 2.6, n)),
               "val_top1": list(np.linspace(0.05, 0.15, n)), "val_top3": list(np.linspace(0.1, 0.28, n)),
               "val_perplexity": list(np.exp(np.linspace(4.2, 2.6, n)))}
    path = tmp_path / "curves.png"
    plot_curves(history, str(path), best_epoch=5)
    raw = path.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    width, height = struct.unpack(">II", raw[16:24])
    assert (width, height) == (1400, 400)              # three 14x4-inch panels at 100 dpi
    assert len(raw) > 20_000
    plot_curves({"loss": [3.0, 2.0]}, str(tmp_path / "train-only.png"))   # no validation: still a figure
    assert (tmp_path / "train-only.png").read_bytes()[:4] == b"\x89PNG"


def fit(model, callbacks, best, epochs, initial_epoch=0, history=None, val=True):
    from nextword.train.callbacks import fit_keeping_best
    x, y, xv, yv = data()
    kwargs = dict(x=x, y=y, batch_size=BATCH, epochs=epochs, initial_epoch=initial_epoch, shuffle=False,
                  verbose=0, callbacks=callbacks, validation_data=(xv, yv) if val else None)
    return fit_keeping_best(model, kwargs, best=best, history=history)


@pytest.mark.tf
def test_validation_figures_and_progress_reach_history_and_stderr(capsys):
    from nextword.train.callbacks import training_callbacks
    x, y, xv, yv = data()
    evaluate = scores_on(xv, yv)
    model = tiny_model()
    cbs, best = training_callbacks(epochs=3, evaluate=evaluate, monitor="val_loss", bar_interval=0)
    result = fit(model, cbs, best, epochs=3)
    h = result.history
    assert {"loss", "val_loss", "val_top1", "val_top3", "val_perplexity"} <= set(h)
    assert all(len(v) == 3 for v in h.values())
    now = evaluate(model)      # patience 0: the last weights stay, and they scored the last epoch
    assert h["val_top1"][-1] == now["top1"] and h["val_perplexity"][-1] == pytest.approx(now["perplexity"])
    assert not result.interrupted and result.report()["weights"] == "last"
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "epoch 3/3" in err
    bar = err.replace("\r", "\n")
    assert re.search(r"^epoch 2/3: .*\| 3/4 \[.*loss [\d.]+  ETA \d+:\d\d:\d\d for 2 epoch\(s\)\]", bar, re.M), bar
    assert re.search(r"ETA \d+:\d\d:\d\d for \d+ (more )?epoch", err), err
    assert re.search(r"epoch 3/3  loss [\d.]+  val_loss [\d.]+  val top-1 [\d.]+%  top-3 [\d.]+%  perplexity [\d.]+", err), err

    cbs, best = training_callbacks(epochs=2, evaluate=evaluate, monitor="val_loss", quiet=True)
    fit(tiny_model(), cbs, best, epochs=2)
    assert "epoch" not in capsys.readouterr().err


@pytest.mark.tf
def test_ctrl_c_keeps_the_best_epoch_weights():
    from nextword.train.callbacks import training_callbacks
    model = tiny_model()
    snaps, extra = recorders(stop_at=(3, 1))                 # Ctrl-C inside the 4th epoch
    cbs, best = training_callbacks(epochs=6, evaluate=scripted([5.0, 3.0, 4.0, 6.0, 7.0, 8.0]),
                                   monitor="val_perplexity", quiet=True)
    result = fit(model, cbs + extra, best, epochs=6)
    assert result.interrupted
    assert len(result.history["loss"]) == 3                   # the three finished epochs
    assert same(model.get_weights(), snaps[1])               # epoch 2 had the best perplexity
    assert not same(snaps[1], snaps[2])
    assert result.report() == {"interrupted": True, "stopped_by": "SIGINT", "stopped_early": False, "epochs_run": 3,
                               "monitor": "val_perplexity", "best_epoch": 2, "best_value": 3.0, "weights": "best"}


@pytest.mark.tf
def test_keras_early_stopping_alone_keeps_nothing_on_ctrl_c():
    """The control: why BestKeeper exists. Keras 3 calls no on_train_end when KeyboardInterrupt
    escapes model.fit, so EarlyStopping(restore_best_weights=True) leaves the half-trained weights."""
    import keras
    x, y, xv, yv = data()
    model = tiny_model()
    snaps, extra = recorders(stop_at=(3, 1))
    es = keras.callbacks.EarlyStopping(monitor="val_loss", patience=10, restore_best_weights=True)
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=6, shuffle=False, verbose=0, validation_data=(xv, yv),
                  callbacks=[es] + extra)
    assert es.best_weights is not None
    assert not any(same(model.get_weights(), s) for s in snaps.values())


@pytest.mark.tf
def test_early_stopping_restores_the_best_weights_at_the_end():
    from nextword.train.callbacks import training_callbacks
    model = tiny_model()
    snaps, extra = recorders()
    cbs, best = training_callbacks(epochs=10, evaluate=scripted([3.0, 2.0, 4.0, 5.0, 6.0]),
                                   monitor="val_perplexity", patience=2, quiet=True)
    result = fit(model, cbs + extra, best, epochs=10)
    assert not result.interrupted
    assert len(result.history["loss"]) == 4                   # epochs 3 and 4 did not improve on 2
    assert same(model.get_weights(), snaps[1])
    r = result.report()
    assert r["stopped_early"] and r["best_epoch"] == 2 and r["weights"] == "best"


@pytest.mark.tf
def test_resume_continues_from_the_last_finished_epoch(tmp_path):
    """Interrupt inside epoch 3 of 4, resume: the history ends with 4 epochs, the resumed model
    starts from epoch 2's weights and optimizer state, and ends where an uninterrupted run ends.
    The control (epoch 2's weights with a fresh optimizer) ends elsewhere: the optimizer state matters."""
    from nextword.train.callbacks import training_callbacks
    x, y, xv, yv = data()
    evaluate = scores_on(xv, yv)

    ref = tiny_model()
    cbs, best = training_callbacks(epochs=4, evaluate=evaluate, monitor="val_loss",
                                   checkpoint_folder=str(tmp_path / "ref.resume"), quiet=True)
    ref_result = fit(ref, cbs, best, epochs=4)

    folder = resume_folder(str(tmp_path / "model"))
    model = tiny_model()
    fresh = model.get_weights()
    snaps, extra = recorders(stop_at=(2, 1))
    cbs, best = training_callbacks(epochs=4, evaluate=evaluate, monitor="val_loss", checkpoint_folder=folder,
                                   seed=7, extra={"config": {"units": 8}}, quiet=True)
    first = fit(model, cbs + extra, best, epochs=4)
    assert first.interrupted and len(first.history["loss"]) == 2
    assert os.path.exists(os.path.join(folder, BEST_WEIGHTS_FILE))
    assert [n for n in os.listdir(tmp_path) if n.startswith(".nextword-tmp-")] == []

    state = load_resume(folder)
    assert state.initial_epoch == 2 and state.seed == 7 and state.extra == {"config": {"units": 8}}
    assert state.history == {k: v[:2] for k, v in ref_result.history.items()}
    assert same(state.model.get_weights(), snaps[1]) and not same(snaps[1], fresh)
    assert int(state.model.optimizer.iterations.numpy()) == 2 * STEPS

    cbs, best = training_callbacks(epochs=4, evaluate=evaluate, monitor="val_loss", checkpoint_folder=folder,
                                   resume=state, quiet=True)
    assert best.best_epoch == state.best["best_epoch"] and best.best_weights is not None
    resumed = fit(state.model, cbs, best, epochs=4, initial_epoch=state.initial_epoch, history=state.history)
    assert not resumed.interrupted
    assert all(len(v) == 4 for v in resumed.history.values())
    assert resumed.history["loss"][:2] == first.history["loss"]
    np.testing.assert_allclose(resumed.history["loss"], ref_result.history["loss"], rtol=1e-4)
    assert same(state.model.get_weights(), ref.get_weights(), rtol=1e-4, atol=1e-6)
    assert json.load(open(os.path.join(folder, STATE_FILE)))["epochs_done"] == 4

    control = tiny_model()
    control.set_weights(snaps[1])                           # the same weights, a new optimizer
    control.fit(x, y, batch_size=BATCH, epochs=4, initial_epoch=2, shuffle=False, verbose=0)
    assert not same(control.get_weights(), ref.get_weights(), rtol=1e-4, atol=1e-6)


@pytest.mark.tf
def test_resume_with_another_monitor_is_refused(tmp_path):
    from nextword.train.callbacks import training_callbacks
    folder = str(tmp_path / "m.resume")
    cbs, best = training_callbacks(epochs=1, monitor="loss", checkpoint_folder=folder, quiet=True)
    fit(tiny_model(), cbs, best, epochs=1, val=False)
    state = load_resume(folder)
    with pytest.raises(InputError, match="same settings"):
        training_callbacks(epochs=2, monitor="val_loss", resume=state)


KILLED_RUN = """
import os, signal, sys
import keras, numpy as np
from nextword.train.callbacks import fit_keeping_best, training_callbacks
sig = getattr(signal, sys.argv[2])
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(20, 4), keras.layers.LSTM(8),
                          keras.layers.Dense(20, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
rng = np.random.default_rng(0)
x, y = rng.integers(1, 20, (64, 3)), rng.integers(1, 20, 64)

class Kill(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 2:
            os.kill(os.getpid(), sig)

cbs, best = training_callbacks(epochs=5, checkpoint_folder=sys.argv[1], quiet=True)
result = fit_keeping_best(model, dict(x=x, y=y, batch_size=16, epochs=5, verbose=0, callbacks=cbs + [Kill()]), best=best)
print(result.report())
"""


@pytest.mark.tf
def test_a_killed_run_leaves_its_last_finished_epoch(tmp_path):
    """SIGKILL gives no chance to clean up: the resume folder of epoch 2 must already be whole."""
    folder = str(tmp_path / "m.resume")
    r = subprocess.run([sys.executable, "-c", KILLED_RUN, folder, "SIGKILL"], capture_output=True, text=True, timeout=300)
    assert r.returncode == -9, (r.returncode, r.stderr)
    state = load_resume(folder)
    assert state.initial_epoch == 2 and len(state.history["loss"]) == 2
    assert int(state.model.optimizer.iterations.numpy()) == 2 * STEPS


@pytest.mark.tf
def test_sigterm_ends_training_like_ctrl_c():
    """With SIGTERM at its default (a library caller) and with cliutil's handler (the CLI)."""
    import keras
    from nextword.train.callbacks import training_callbacks

    class Term(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    try:
        for handler in (signal.SIG_DFL, cliutil._stop):
            signal.signal(signal.SIGTERM, handler)
            cbs, best = training_callbacks(epochs=5, quiet=True)
            result = fit(tiny_model(), cbs + [Term()], best, epochs=5, val=False)
            assert result.interrupted and result.report()["epochs_run"] == 2
            assert result.stopped_by == "SIGTERM"
            if handler is signal.SIG_DFL:
                assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL     # ours is put back
    finally:
        signal.signal(signal.SIGTERM, previous)
