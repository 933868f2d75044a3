"""Multi-worker training (train/distributed.py, train/workers.py): TF_CONFIG and launcher flags checked
in one line; two local workers against one with the same global batch; the two-worker model folder
exported with its parity gates; a worker SIGKILLed mid-epoch and the job finishing from its backup.
The corpus is generated here (a few hundred short paragraphs); nothing outside the repo is read."""

import json
import os
import random
import signal
import subprocess
import time

import pytest

from support import HAS_TF, command_path, run_cli

MODEL_FILES = {"model.keras", "tokenizer.json", "lexicon.json", "train-report.json", "curves.png", "windows.npz",
               "train-ids.npz"}
# small and fast: E16 H32, 3 epochs of 10 global steps; dropout 0 so that 1 and 2 workers, and a resumed
# run, follow the very same arithmetic up to the order of float additions
TRAIN_ARGS = ["--unit", "paragraph", "--epochs", "3", "--batch-size", "32", "--dropout", "0", "--embedding-dim", "16",
              "--units", "32", "--patience", "0", "--lr-decay", "1", "--quiet"]
# resumed vs not: every worker's pipeline is a function of (seed, epoch, shard), so a run restored
# mid-epoch repeats the uninterrupted run's arithmetic (only float rounding of all-reduces differs).
LOSS_TOL = 1e-4
# 1 vs 2 workers: the corpus is sharded by file, so the two runs see the same chunks in other batches
# (the same global batch, the same steps): their validation losses agree within noise (observed 0.05%
# apart over 3 epochs) while training lowers them by several percent.
WORKERS_TOL = 0.005
FILES = 4


def write_corpus(path, paragraphs=300, seed=1, files=1):
    """Paragraphs from a little Markov chain over 25 words: something learnable, in ~26 KB; with
    files > 1, a folder of that many files (sharded by file between workers)."""
    if files > 1:
        path.mkdir()
        for i in range(files):
            write_corpus(path / f"part-{i}.txt", paragraphs // files, seed + i)
        return path
    rng = random.Random(seed)
    words = ("the cat sat on a mat and dog ran to big red house with small blue car in park by tree over river "
             "near hill").split()
    paras = []
    for _ in range(paragraphs):
        w = [rng.choice(words)]
        for _ in range(rng.randint(8, 30)):
            w.append(words[(words.index(w[-1]) * 3 + rng.randint(0, 2)) % len(words)])
        paras.append(" ".join(w) + ".")
    path.write_text("\n\n".join(paras) + "\n", encoding="utf-8")
    return path


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for n in needles:
        assert n in lines[0], lines[0]


# -- checked before any TensorFlow work -------------------------------------------------------------

@pytest.mark.parametrize("tf_config, needle", [
    ("{not json", "not valid JSON"),
    ('["worker"]', "not an object"),
    ('{"cluster": {"worker": ["127.0.0.1:2222"]}}', "no task"),
    ('{"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "worker", "index": 1}}', "task.index 1"),
    ('{"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "ps", "index": 0}}', "task.type"),
    ('{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}', "not host:port"),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}', "only workers"),
])
def test_bad_tf_config_is_one_line_and_exit_2(tmp_path, tf_config, needle):
    corpus = write_corpus(tmp_path / "c.txt", 20)
    r = run_cli("nextword-train", "--corpus", corpus, "--out", tmp_path / "m", env={"TF_CONFIG": tf_config})
    one_line_error(r, "TF_CONFIG", needle)
    assert not os.path.exists(tmp_path / "m")


@pytest.mark.parametrize("args, needle", [
    (["--local-workers", "0"], "--local-workers must be from 1 to 8"),
    (["--local-workers", "9"], "--local-workers must be from 1 to 8"),
    (["--local-workers", "2", "--max-restarts", "-1"], "--max-restarts"),
    (["--local-workers", "2", "--resume"], "no --resume"),
])
def test_bad_launcher_flags_are_one_line_and_exit_2(tmp_path, args, needle):
    corpus = write_corpus(tmp_path / "c.txt", 20)
    r = run_cli("nextword-train", "--corpus", corpus, "--out", tmp_path / "m", *args)
    one_line_error(r, needle)
    assert not os.path.exists(tmp_path / "m") and not os.path.exists(tmp_path / "m.workers")


# -- real training (TensorFlow) ---------------------------------------------------------------------

def report_of(folder):
    with open(os.path.join(folder, "train-report.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same job on one worker and on two local workers: {workers: model folder}."""
    root = tmp_path_factory.mktemp("distributed")
    corpus = write_corpus(root / "corpus", files=FILES)
    out = {}
    for n in (1, 2):
        folder = root / f"m{n}"
        r = run_cli("nextword-train", "--corpus", corpus, "--out", folder, "--local-workers", n, *TRAIN_ARGS,
                    timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        out[n] = str(folder)
        out[f"stderr{n}"] = r.stderr
    out["corpus"] = str(corpus)
    return out


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason="needs the train extra")
def test_two_workers_match_one_worker_and_the_chief_writes_a_complete_folder(runs):
    one, two = report_of(runs[1]), report_of(runs[2])
    assert set(os.listdir(runs[2])) == MODEL_FILES
    d = two["distributed"]
    assert (d["workers"], d["global_batch"], d["per_worker_batch"], d["restarts"]) == (2, 32, 16, 0)
    assert d["strategy"] == "CollectiveAllReduceStrategy" and d["tokens_per_second"] > 0
    # the same global batch and epochs; two shards of unequal files allow a few steps fewer an epoch
    # (every worker runs what the smaller shard gives)
    s1, s2 = one["distributed"]["steps_per_epoch"], d["steps_per_epoch"]
    assert one["distributed"]["workers"] == 1 and one["distributed"]["global_batch"] == 32 and 0.8 * s1 <= s2 <= s1
    v1, v2 = one["history"]["val_loss"], two["history"]["val_loss"]
    assert len(v1) == len(v2) == 3
    assert all(abs(a - b) <= WORKERS_TOL * abs(a) for a, b in zip(v1, v2)), (v1, v2)
    assert v2[-1] < (1 - 2 * WORKERS_TOL) * v2[0] and v1[-1] < (1 - 2 * WORKERS_TOL) * v1[0]   # both learnt
    # nothing else beside the model folder: no backup, no worker logs, no temporary folders
    parent = os.path.dirname(runs[2])
    assert not [n for n in os.listdir(parent) if n.startswith(("m2.", ".nextword-tmp-m2"))]
    # the workers agree on figures inside a graph: TensorFlow's "eagerly ... overhead" warning never shows
    assert "eagerly" not in runs["stderr2"], runs["stderr2"][-2000:]


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason="needs the train extra")
def test_the_two_worker_model_exports_with_every_gate_passing(runs, tmp_path):
    r = run_cli("nextword-export", runs[2], "--out", tmp_path / "bundle", "--variants", "tflite-float32",
                "onnx-float32", "--quiet", timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(tmp_path / "bundle" / "manifest.json", encoding="utf-8") as f:
        m = json.load(f)
    assert set(m["variants"]) == {"tflite-float32", "onnx-float32"} and not m.get("dropped")
    assert os.path.exists(tmp_path / "bundle" / "ngram.npz")   # train-ids.npz was written and used


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason="needs the train extra")
def test_a_worker_killed_mid_epoch_is_restarted_from_the_backup_and_the_job_finishes(runs, tmp_path):
    out = tmp_path / "m"
    backup, logs = str(out) + ".backup", str(out) + ".workers"
    argv = [command_path("nextword-train"), "--corpus", runs["corpus"], "--out", str(out), "--local-workers", "2",
            "--backup-every", "3", *TRAIN_ARGS]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, seen_partial = None, []
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            if out.exists():
                seen_partial.append(MODEL_FILES - set(os.listdir(out)))   # the folder appears whole or not at all
            if killed is None and os.path.exists(os.path.join(backup, "checkpoint")):
                state = _read_json(os.path.join(logs, "workers.json"))
                if state and state["attempt"] == 0:
                    killed = state["pids"][1]
                    os.kill(killed, signal.SIGKILL)
            time.sleep(0.05)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert killed is not None, "no backup appeared before the job ended"
    assert proc.returncode == 0, stderr[-3000:]
    assert "worker 1 failed (signal SIGKILL)" in stderr and "restarting all 2 workers" in stderr
    assert all(not missing for missing in seen_partial), seen_partial
    assert set(os.listdir(out)) == MODEL_FILES
    report = report_of(out)
    d = report["distributed"]
    assert d["restarts"] == 1 and d["resumed_at"] is not None
    assert (d["resumed_at"]["epoch"], d["resumed_at"]["step"]) != (1, 0)   # restored, not started over
    # the same arithmetic as the uninterrupted two-worker run of the same settings
    uninterrupted = report_of(runs[2])["history"]["val_loss"]
    resumed = report["history"]["val_loss"]
    assert len(resumed) == len(uninterrupted)
    assert all(abs(a - b) <= LOSS_TOL * abs(a) for a, b in zip(uninterrupted, resumed)), (uninterrupted, resumed)
    assert not os.path.exists(backup) and not os.path.exists(logs)
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".nextword-tmp-")]


@pytest.mark.tf
@pytest.mark.skipif(not HAS_TF, reason="needs the train extra")
def test_a_worker_with_bad_input_stops_the_job_without_restarts(runs, tmp_path):
    """A worker's own InputError (found after its vocabulary pass) is exit 2 and never retried."""
    r = run_cli("nextword-train", "--corpus", runs["corpus"], "--out", tmp_path / "m", "--local-workers", "2",
                *TRAIN_ARGS, "--batch-size", "100000", timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "fewer than one batch of 50000" in r.stderr and "restarting" not in r.stderr
    assert not os.path.exists(tmp_path / "m")


def test_a_global_batch_the_workers_cannot_share_is_refused_before_any_worker_starts(tmp_path):
    corpus = write_corpus(tmp_path / "c.txt", 20)
    r = run_cli("nextword-train", "--corpus", corpus, "--out", tmp_path / "m", "--local-workers", "2",
                "--batch-size", "33")
    one_line_error(r, "must be a multiple of the 2 workers")
    assert not os.path.exists(tmp_path / "m.workers")
