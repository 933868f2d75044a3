"""The sequence objective (train.examples.Chunks, the training model and its copy into the window and
step models), the corpus-aware defaults (train.defaults, pure functions) and the held-out fraction
the benchmark reads. Tiny corpora are written by the tests; nothing outside the repo is read."""

import json

import numpy as np
import pytest

from nextword.bench.quality import heldout_fraction
from nextword.runtime.errors import InputError
from nextword.train import defaults
from nextword.train.examples import Chunks
from support import HAS_TF, run_cli


# -- chunks (no TensorFlow) ------------------------------------------------------------------------

def brute_targets(docs):
    """{(doc, position)} of every target the window objective trains: all but a document's first token."""
    return {(k, j) for k, d in enumerate(docs) for j in range(1, len(d))}


def chunk_targets(docs, chunks):
    """Map each weighted (x, y) position of every chunk back to (doc, position) and check it."""
    x, y, w = chunks.all()
    seen, contexts = set(), {}
    lengths = [len(d) for d in docs]
    for c in range(len(chunks)):
        # recover the document: the chunk's last token is a real token of it
        start = chunks.starts[c] - chunks.length
        k = int(np.searchsorted(np.cumsum(lengths), chunks.doc_start[c], side="right"))
        d = docs[k]
        for t in range(chunks.length):
            pos = start + t + 1          # document position of y[c, t]
            if w[c, t]:
                assert pos >= 1 and y[c, t] == d[pos], (c, t)
                ctx = [tok for tok in x[c, : t + 1]]
                # the context is the document before pos, pre-padded with zeros, never another document
                real = d[max(0, pos - (t + 1)):pos]
                assert ctx == [0] * (t + 1 - len(real)) + list(real)
                seen.add((k, pos))
                contexts[(k, pos)] = max(contexts.get((k, pos), 0), min(pos, t + 1))
            else:
                assert pos <= 0, (c, t)   # only padding and a document's first word are weightless
    return seen, contexts


@pytest.mark.parametrize("length, stride", [(1, 1), (3, 1), (4, 2), (5, 5), (8, 3)])
def test_chunks_cover_every_target_with_its_context(length, stride):
    rng = np.random.default_rng(length * 10 + stride)
    docs = [rng.integers(1, 40, size=int(rng.integers(0, 30))).tolist() for _ in range(25)]
    chunks = Chunks(docs, length, stride)
    seen, contexts = chunk_targets(docs, chunks)
    assert seen == brute_targets(docs)                 # every target, nothing else
    # every target is trained at least once with all the context a window of `length` gives it
    assert all(contexts[(k, j)] >= min(j, length - stride + 1) for k, j in seen)
    x, y, w = chunks.all()
    assert x.dtype == np.int32 and y.dtype == np.int32 and w.dtype == np.float32
    assert x.shape == y.shape == w.shape == (len(chunks), length)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
    assert chunks.targets == len(brute_targets(docs))


def test_chunks_pre_pad_like_the_window_model():
    chunks = Chunks([[5, 6, 7]], 4, 2)
    x, y, w = chunks.all()
    assert x.tolist() == [[0, 0, 5, 6]] and y.tolist() == [[0, 5, 6, 7]] and w.tolist() == [[0, 0, 1, 1]]


def test_chunks_batches_are_any_subset_in_any_order():
    rng = np.random.default_rng(0)
    docs = [rng.integers(1, 9, size=int(rng.integers(2, 40))).tolist() for _ in range(10)]
    chunks = Chunks(docs, 6, 3)
    full = chunks.all()
    idx = rng.permutation(len(chunks))[:7]
    for a, b in zip(chunks.batch(idx), full):
        np.testing.assert_array_equal(a, b[idx])


def test_chunks_reject_a_stride_longer_than_the_chunk():
    with pytest.raises(InputError, match="must not exceed"):
        Chunks([[1, 2, 3]], 2, 3)
    assert len(Chunks([[1], [], [2]], 3, 1)) == 0      # no document with a target: no chunk


# -- corpus-aware defaults (no TensorFlow) ---------------------------------------------------------

NOVEL = defaults.CorpusStats(tokens=117_802, distinct=7_053, documents=2_258, coverage_words=4_697, doc_length_p90=120)
TINY = defaults.CorpusStats(tokens=900, distinct=300, documents=60, coverage_words=280, doc_length_p90=9)
LARGE = defaults.CorpusStats(tokens=5_000_000, distinct=80_000, documents=40_000, coverage_words=30_000,
                             doc_length_p90=200)


def values(chosen):
    return {k: v["value"] for k, v in chosen.items()}


def test_defaults_for_a_novel_are_the_measured_recipe():
    v = values(defaults.choose(NOVEL, {}))
    assert v["objective"] == "sequence" and v["tie"] is True
    assert (v["embedding_dim"], v["units"], v["dropout"], v["learning_rate"]) == (128, 256, 0.4, 0.003)
    assert v["window"] == v["chunk_length"] == 20 and v["chunk_stride"] == 10
    assert v["num_words"] == 4_697 + 2 and v["oov_token"] == "<oov>"
    assert 8 <= v["epochs"] <= 15 and v["patience"] == 2 and v["batch_size"] == 32
    assert v["stop_on"] == "accuracy" and 0 < v["lr_decay"] < 1
    assert v["recurrent_dropout"] == 0.0      # measured: better perplexity, worse top-1/top-3, slower
    assert all(c["why"] for c in defaults.choose(NOVEL, {}).values())


def test_defaults_scale_with_the_corpus():
    tiny, large = values(defaults.choose(TINY, {})), values(defaults.choose(LARGE, {}))
    assert tiny["embedding_dim"] < 128 and tiny["units"] < 256
    assert tiny["window"] == 8 and tiny["chunk_stride"] == 4          # short lines: a short context
    assert tiny["num_words"] == 282 and tiny["epochs"] == defaults.EPOCHS_MAX
    assert large["embedding_dim"] > 128 and large["units"] > 256 and large["dropout"] < 0.4
    assert large["num_words"] == defaults.VOCAB_CAP + 2 and large["epochs"] == defaults.EPOCHS_MIN
    one_line = defaults.CorpusStats(tokens=2, distinct=2, documents=1, coverage_words=2, doc_length_p90=2)
    assert values(defaults.choose(one_line, {}))["window"] == 2


def test_given_flags_are_never_chosen():
    given = {"embedding_dim": 7, "epochs": 1, "tie": False, "window": 5}
    chosen = defaults.choose(NOVEL, given)
    assert not set(given) & set(chosen)
    assert chosen["chunk_length"]["value"] == 5 and chosen["chunk_stride"]["value"] == 2
    assert defaults.choose(NOVEL, {"chunk_length": 12})["window"]["value"] == 12


def test_split_defaults_need_enough_documents():
    assert defaults.default_split(9, 0.1, "test")[0] == 0.0
    assert defaults.default_split(10, 0.1, "test")[0] == 0.1


def test_stats_of_counts_coverage_and_lengths():
    docs = [["a"] * 96 + ["b", "c", "d", "e"], ["a", "b"]]
    s = defaults.stats_of(docs)
    assert (s.tokens, s.distinct, s.documents) == (102, 5, 2)
    assert s.coverage_words == 3          # a + b = 99 < 0.98 * 102 = 99.96 <= a + b + c = 100
    assert s.doc_length_p90 == 100


def test_bench_reads_the_test_split_and_old_reports_still_work():
    assert heldout_fraction({"test_split": 0.1, "val_split": 0.2}) == 0.1
    assert heldout_fraction({"val_split": 0.25}) == 0.25            # a report from before the test split
    assert heldout_fraction({"test_split": 0.0, "val_split": 0.25}) == 0.25
    assert heldout_fraction({}) == 0.0


# -- the training model and its copies (TensorFlow) -------------------------------------------------

def tiny_docs(seed=0, n=40):
    rng = np.random.default_rng(seed)
    words = rng.integers(1, 30, size=400)
    return [words[rng.integers(0, 380):][: int(rng.integers(2, 25))].tolist() for _ in range(n)]


def masked_loss_and_grads(model, x, y, w):
    import tensorflow as tf
    with tf.GradientTape() as tape:
        loss = model.compute_loss(x=x, y=y, y_pred=model(x, training=False), sample_weight=w)
    grads = tape.gradient(loss, model.trainable_weights)
    return float(loss), [np.asarray(tf.convert_to_tensor(g)) for g in grads]   # embedding: IndexedSlices


@pytest.mark.tf
@pytest.mark.parametrize("tied", [False, True])
def test_padding_targets_add_exactly_nothing(tied):
    from nextword.train.model import SequenceConfig, build_sequence_model
    import keras
    keras.utils.set_random_seed(0)
    chunks = Chunks(tiny_docs(), 6, 3)
    x, y, w = chunks.all()
    assert 0 < w.sum() < w.size
    model = build_sequence_model(SequenceConfig(30, 6, 8, 12, 0.2, tied))
    loss, grads = masked_loss_and_grads(model, x, y, w)
    # the loss is the mean negative log-likelihood over the real targets only
    logp = np.asarray(keras.ops.log_softmax(model(x, training=False), axis=-1))
    nll = -np.take_along_axis(logp, y[..., None].astype(np.int64), axis=-1)[..., 0]
    assert loss == pytest.approx(float((nll * w).sum() / w.sum()), rel=1e-5)
    # any label under a zero weight: the same loss and the same gradient, bit for bit
    y2 = np.where(w == 0, np.random.default_rng(1).integers(1, 30, size=y.shape), y).astype(np.int32)
    assert (y2 != y).any()
    loss2, grads2 = masked_loss_and_grads(model, x, y2, w)
    assert loss2 == loss
    for a, b in zip(grads, grads2):
        np.testing.assert_array_equal(a, b)
    # control: relabelling the weighted targets moves both
    y3 = np.where(w == 1, (y % 29) + 1, y).astype(np.int32)
    loss3, grads3 = masked_loss_and_grads(model, x, y3, w)
    assert loss3 != loss and any(not np.array_equal(a, b) for a, b in zip(grads, grads3))


@pytest.mark.tf
@pytest.mark.parametrize("tied, recurrent_dropout", [(False, 0.0), (True, 0.0), (True, 0.3)])
def test_window_and_step_models_agree_with_the_sequence_model(tied, recurrent_dropout):
    import keras
    from nextword.export.step import keras_step_model, run_windows
    from nextword.export.window import logits_model
    from nextword.train.model import SequenceConfig, build_sequence_model, window_model_from
    keras.utils.set_random_seed(0)
    length = 7
    chunks = Chunks(tiny_docs(1), length, 3)
    x, y, w = chunks.all()
    cfg = SequenceConfig(30, length, 8 if tied else 6, 12, 0.1, tied, recurrent_dropout)
    seq = build_sequence_model(cfg, 0.01)
    seq.fit(x, y, sample_weight=w, batch_size=16, epochs=3, verbose=0)
    window = window_model_from(seq, cfg, length)
    assert len([l for l in window.layers if l.weights]) == (4 if tied else 3)
    # the same pre-padded context: the sequence model's answer at its last position
    want = np.asarray(keras.ops.softmax(seq(x, training=False)[:, -1], axis=-1))
    got = window(x, training=False).numpy()
    assert np.abs(want - want.mean(axis=1, keepdims=True)).max() > 1e-3   # trained: not a flat distribution
    np.testing.assert_allclose(got, want, atol=1e-5)
    logits = logits_model(window, unroll=True, batch=None)(x).numpy()
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits, axis=-1)), want, atol=1e-5)
    step_logits, _ = run_windows(keras_step_model(window, batch=None), x)
    np.testing.assert_allclose(np.asarray(keras.ops.softmax(step_logits, axis=-1)), want, atol=1e-5)
    if tied:   # the output kernel is the embedding, transposed
        np.testing.assert_array_equal(window.get_layer("next_word").get_weights()[0],
                                      window.get_layer("embedding").get_weights()[0].T)


@pytest.mark.tf
def test_cli_default_run_on_a_corpus(tmp_path):
    rng = np.random.default_rng(5)
    words = "the cat sat on a mat and then it ran to see my old dog who was by the door".split()
    text = "\n\n".join(" ".join(rng.choice(words, size=int(rng.integers(4, 30)))) for _ in range(40))
    corpus = tmp_path / "prose.txt"
    corpus.write_text(text + "\n", encoding="utf-8")
    out = tmp_path / "model"
    r = run_cli("nextword-train", "--corpus", corpus, "--unit", "paragraph", "--epochs", "2", "--out", out,
                "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "corpus-aware defaults" in r.stdout and "embedding_dim" in r.stdout
    rep = json.loads((out / "train-report.json").read_text(encoding="utf-8"))
    cfg = rep["config"]
    assert cfg["objective"] == "sequence" and cfg["epochs"] == 2 and "epochs" not in rep["defaults"]
    assert rep["defaults"]["tie"]["value"] is True and rep["defaults"]["tie"]["why"]
    assert (cfg["test_split"], cfg["val_split"]) == (0.1, 0.1)
    c = rep["corpus"]
    assert (c["test_documents"], c["validation_documents"], c["train_documents"]) == (4, 4, 32)
    assert rep["heldout"]["source"] == "test" and rep["heldout"]["windows"] > 0
    assert len(rep["history"]["val_loss"]) == 2 and rep["model"]["tied"] is True
    assert heldout_fraction(cfg) == 0.1


@pytest.mark.tf
def test_cli_help_names_both_objectives():
    r = run_cli("nextword-train", "--help", timeout=60)
    assert r.returncode == 0 and "prefix" in r.stdout and "sequence" in r.stdout


@pytest.mark.tf
def test_ctrl_c_after_an_epoch_leaves_a_usable_model_folder_and_resume_finishes_it(tmp_path):
    """SIGINT once the progress bar shows a finished epoch: the run saves the best weights so far as a
    complete model folder marked interrupted (the trigger is the bar's output, not a clock), exit 0;
    `--resume` then finishes the run. Before train/stop.py this crashed with SIGSEGV about one run in
    six: the KeyboardInterrupt landed inside TensorFlow's tensor conversion."""
    import os
    import select
    import signal
    import subprocess
    import time
    from support import REPO, command_path
    corpus = tmp_path / "prose.txt"
    rng = np.random.default_rng(2)
    corpus.write_text("\n\n".join(" ".join(rng.choice(list("abcdefgh"), size=12)) for _ in range(30)) + "\n")
    out = tmp_path / "model"
    proc = subprocess.Popen([command_path("nextword-train"), "--corpus", str(corpus), "--unit", "paragraph",
                             "--epochs", "100000", "--patience", "100000", "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO)
    seen, deadline = b"", time.monotonic() + 240    # generous: "does not hang", not a speed claim
    try:
        while b" 1/100000 " not in seen and time.monotonic() < deadline and proc.poll() is None:
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                seen += os.read(proc.stderr.fileno(), 65536)
        assert b" 1/100000 " in seen, seen[-2000:]
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, (stdout[-2000:], stderr[-2000:])
    assert b"interrupted" in stdout
    rep = json.loads((out / "train-report.json").read_text(encoding="utf-8"))
    assert rep["interrupted"] is True and 1 <= rep["epochs_run"] < 100000
    assert all(len(v) == rep["epochs_run"] for v in rep["history"].values())
    assert {"val_top1", "val_top3", "val_perplexity"} <= set(rep["history"])
    assert rep["stopped_by"] == "SIGINT" and b"--resume" in stdout
    import keras
    model = keras.saving.load_model(out / "model.keras")
    probs = model(np.zeros((1, rep["window"]), np.int32)).numpy()
    assert probs.shape == (1, rep["vocab_size"]) and abs(float(probs.sum()) - 1) < 1e-4

    # --resume goes on from the last finished epoch (a smaller budget is allowed) and replaces the
    # interrupted folder without --force; the resume state is gone once the run completes
    resume_dir = str(out) + ".resume"
    assert os.path.isdir(resume_dir)
    budget = rep["epochs_run"] + 2
    r = subprocess.run([command_path("nextword-train"), "--corpus", str(corpus), "--unit", "paragraph", "--epochs",
                        str(budget), "--patience", "100000", "--out", str(out), "--resume", "--quiet"],
                       capture_output=True, cwd=REPO, timeout=240)
    assert r.returncode == 0, r.stderr[-2000:]
    done = json.loads((out / "train-report.json").read_text(encoding="utf-8"))
    assert done["interrupted"] is False and done["resumed_from_epoch"] == rep["epochs_run"]
    assert done["epochs_run"] == budget and done["history"]["loss"][:rep["epochs_run"]] == rep["history"]["loss"]
    assert not os.path.exists(resume_dir)
