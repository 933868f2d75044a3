"""Interrupting and resuming training (train/stop.py, train/loop.py, train/checkpoint.py): a run
interrupted after an epoch and resumed ends exactly where an uninterrupted run ends, and a resume
folder that is missing, damaged or from other settings is refused with a typed error.

The interruption is a real SIGINT to this process, sent by a thread once the first checkpoint is on
disk (a file-system trigger, not a clock); the test's own SIGINT handler stands by so that a late
signal can never stop pytest."""

import json
import os
import shutil
import signal
import threading
import time

import numpy as np
import pytest

from nextword.runtime.errors import InputError
from support import run_cli

pytestmark = pytest.mark.tf


def write_corpus(folder, seed=3, paragraphs=120):
    """Paragraphs of a learnable chain (the next word is usually the following one of 12), so the
    losses move and the learning-rate decay acts within a few epochs."""
    rng = np.random.default_rng(seed)
    paragraphs_text = []
    for _ in range(paragraphs):
        ids = [int(rng.integers(12))]
        for _ in range(13):
            ids.append((ids[-1] + 1) % 12 if rng.random() < 0.7 else int(rng.integers(12)))
        paragraphs_text.append(" ".join(f"w{i}" for i in ids))
    path = folder / "prose.txt"
    path.write_text("\n\n".join(paragraphs_text) + "\n", encoding="utf-8")
    return path


def config(corpus, **over):
    from nextword.train.fit import TrainConfig
    settings = dict(corpus=[str(corpus)], unit="paragraph", epochs=8, embedding_dim=8, units=16, batch_size=8,
                    learning_rate=0.02, stop_on="loss")
    settings.update(over)
    return TrainConfig(**settings)


class SigintAtFirstCheckpoint:
    """Send this process SIGINT as soon as <out>.resume/state.json exists (the first finished epoch)."""

    def __init__(self, out):
        self.state = str(out) + ".resume/state.json"
        self.done = threading.Event()
        self.sent = False

    def _watch(self):
        while not self.done.is_set():
            if os.path.exists(self.state):
                os.kill(os.getpid(), signal.SIGINT)
                self.sent = True
                return
            time.sleep(0.005)

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, lambda *a: None)   # a late signal must not stop pytest
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()
        signal.signal(signal.SIGINT, self.previous)
        return False


def interrupted_run(cfg, out):
    from nextword.train.fit import train
    with SigintAtFirstCheckpoint(out) as trigger:
        _, _, report = train(cfg, str(out), progress=False)
    assert trigger.sent
    return report


def saved_weights(folder):
    import keras
    return keras.saving.load_model(folder / "model.keras").get_weights()


@pytest.mark.parametrize("patience", [0, 3])
def test_a_resumed_run_ends_where_an_uninterrupted_one_ends(tmp_path, patience):
    """Same history figure for figure and the same saved weights: the optimizer state, the learning
    rate, the dropout seeds, the shuffle order of each epoch and the early-stopping record all carry
    over. patience 0 keeps the last epoch's weights, patience 3 the best one's (kept.npz)."""
    from nextword.train.fit import train
    corpus = write_corpus(tmp_path)
    cfg = dict(patience=patience, lr_decay=0.5 if patience else 1.0)
    _, _, whole = train(config(corpus, **cfg), str(tmp_path / "whole"), progress=False)
    assert not os.path.exists(str(tmp_path / "whole") + ".resume")      # a completed run leaves none

    out = tmp_path / "parts"
    first = interrupted_run(config(corpus, **cfg), out)
    assert first["interrupted"] is True and first["stopped_by"] == "SIGINT"
    assert 1 <= first["epochs_run"] < whole["epochs_run"]
    assert os.path.isdir(str(out) + ".resume")
    assert all(len(v) == first["epochs_run"] for v in first["history"].values())

    _, _, resumed = train(config(corpus, **cfg), str(out), progress=False, resume=True)   # no force needed
    assert resumed["resumed_from_epoch"] == first["epochs_run"] and resumed["interrupted"] is False
    assert resumed["epochs_run"] == whole["epochs_run"] and resumed["best_epoch"] == whole["best_epoch"]
    assert set(resumed["history"]) == set(whole["history"])
    for key, values in whole["history"].items():
        np.testing.assert_allclose(resumed["history"][key], values, rtol=1e-5, err_msg=key)
    if patience:
        assert len(set(whole["history"]["learning_rate"])) > 1, "the decay never acted: the test proves less"
    for a, b in zip(saved_weights(out), saved_weights(tmp_path / "whole")):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    assert not os.path.exists(str(out) + ".resume")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """One interrupted run: (corpus, out, the resume folder's pristine copy)."""
    base = tmp_path_factory.mktemp("interrupted")
    corpus = write_corpus(base)
    out = base / "model"
    interrupted_run(config(corpus, patience=2), out)
    pristine = base / "pristine.resume"
    shutil.copytree(str(out) + ".resume", pristine)
    return corpus, out, pristine


def fresh_copy(interrupted, tmp_path):
    corpus, out, pristine = interrupted
    target = tmp_path / "model"
    shutil.copytree(out, target)
    shutil.copytree(pristine, str(target) + ".resume")
    return corpus, target


def test_resume_with_other_settings_is_refused(interrupted, tmp_path):
    from nextword.train.fit import train
    corpus, out = fresh_copy(interrupted, tmp_path)
    before = (out / "train-report.json").read_bytes()
    with pytest.raises(InputError, match=r"units=16, this one units=32"):
        train(config(corpus, patience=2, units=32), str(out), progress=False, resume=True)
    assert (out / "train-report.json").read_bytes() == before        # the interrupted folder is untouched


def test_resume_with_another_corpus_is_refused(interrupted, tmp_path):
    from nextword.train.fit import train
    corpus, out = fresh_copy(interrupted, tmp_path)
    other = write_corpus(tmp_path, seed=9)
    with pytest.raises(InputError, match="corpus_sha256"):
        train(config(other, patience=2), str(out), progress=False, resume=True)


def _truncate(path):
    path.write_bytes(path.read_bytes()[:100])


def _wrong_shape(path):
    with np.load(path) as z:
        arrays = [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[1]))]
    arrays[0] = np.zeros((arrays[0].shape[0] + 1,) + arrays[0].shape[1:], arrays[0].dtype)
    with open(path, "wb") as f:
        np.savez(f, *arrays)


def _pickled(path):
    with open(path, "wb") as f:
        np.savez(f, np.array([object()], dtype=object))


def _edit_state(edit):
    def run(path):
        state = json.loads(path.read_text())
        edit(state)
        path.write_text(json.dumps(state))
    return run


DAMAGE = {
    "state.json not JSON": ("state.json", lambda p: p.write_text("{not json")),
    "state.json of another format": ("state.json", _edit_state(lambda s: s.update(format="other"))),
    "history shorter than the epochs": ("state.json", _edit_state(lambda s: s["loop"]["history"]["loss"].pop())),
    "loop state with a string count": ("state.json", _edit_state(lambda s: s["loop"].update(epochs_done="3"))),
    "variables truncated": ("variables.npz", _truncate),
    "variables of another shape": ("variables.npz", _wrong_shape),
    "optimizer missing": ("optimizer.npz", lambda p: p.unlink()),
    "optimizer holding a pickle": ("optimizer.npz", _pickled),
    "kept weights truncated": ("kept.npz", _truncate),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_resume_folder_is_an_input_error(interrupted, tmp_path, case):
    from nextword.train.fit import train
    corpus, out = fresh_copy(interrupted, tmp_path)
    name, damage = DAMAGE[case]
    damage(out.parent / (out.name + ".resume") / name)
    before = (out / "train-report.json").read_bytes()
    with pytest.raises(InputError, match=r"--resume: .*(damaged|not a nextword-train-resume)"):
        train(config(corpus, patience=2), str(out), progress=False, resume=True)
    assert (out / "train-report.json").read_bytes() == before


def test_resume_without_a_resume_folder_is_one_line_exit_2(tmp_path):
    corpus = write_corpus(tmp_path)
    r = run_cli("nextword-train", "--corpus", str(corpus), "--unit", "paragraph", "--out", str(tmp_path / "m"),
                "--resume")
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and "there is no" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()


def test_resume_needs_a_corpus(tmp_path):
    r = run_cli("nextword-train", "--out", str(tmp_path / "m"), "--resume")
    assert r.returncode == 2 and "--resume needs the --corpus" in r.stderr and r.stderr.count("\n") == 1
