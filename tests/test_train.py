"""The train package: windows, held-out split, corpus reading, the atomic model folder and the CLI.

Only the end-to-end CLI tests (marked `tf`) need TensorFlow; the bad-input CLI runs block the
tensorflow and keras imports, which proves they fail before TensorFlow is loaded."""

import hashlib
import json
import os
import shutil
import zipfile

import numpy as np
import pytest

from nextword.runtime.errors import InputError
from nextword.runtime.tokenizer import Tokenizer
from support import HAS_TF, run_cli
from nextword.train import corpus as corpus_mod
from nextword.train import train_ids
from nextword.train.atomic import PREFIX, AtomicFolder, OutputExists, clean_leftovers
from nextword.train.corpus import SEED_LINES, CorpusError, read_corpus, split_documents
from nextword.train.windows import Windows, split_heldout

DEAD_PID = 2 ** 22 + 12345   # above the largest pid_max Linux allows: never a live process


def seed_ids():
    docs = read_corpus().documents
    tok = Tokenizer().fit_on_texts(docs)
    return tok, tok.texts_to_sequences(docs)


# -- windows -------------------------------------------------------------------------------------

def test_seed_windows():
    tok, ids = seed_ids()
    w = Windows(ids)
    assert len(w) == 15 and w.window == 4
    x, y = w.all()
    assert x.shape == (15, 4) and y.shape == (15,)
    assert x.dtype == np.int32 and y.dtype == np.int32
    assert x[0].tolist() == [0, 0, 0, 1] and y[0] == 2          # 'hello' -> 'how'
    assert x[-1].tolist() == [1, 9, 3, 4] and tok.index_word[int(y[-1])] == "doing"
    assert tok.vocab_size == 11 and x.max() < 11 and y.min() >= 1


def notebook_prefixes(docs_ids):
    """The seed notebook: every prefix of 2+ tokens, pre-padded to the longest, split into X / y."""
    seqs = [d[: i + 1] for d in docs_ids for i in range(1, len(d))]
    width = max(map(len, seqs))
    padded = np.array([[0] * (width - len(s)) + s for s in seqs])
    return padded[:, :-1], padded[:, -1]


def brute_force(docs_ids, window):
    xs, ys = [], []
    for d in docs_ids:
        for j in range(1, len(d)):
            ctx = d[max(0, j - window):j]
            xs.append([0] * (window - len(ctx)) + ctx)
            ys.append(d[j])
    return np.array(xs, dtype=np.int32).reshape(-1, window), np.array(ys, dtype=np.int32)


def test_batch_equals_notebook_prefix_method():
    _, ids = seed_ids()
    w = Windows(ids)
    x_ref, y_ref = notebook_prefixes(ids)
    x, y = w.all()
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)
    order = np.random.default_rng(1).permutation(len(w))
    xb, yb = w.batch(order[:7])
    np.testing.assert_array_equal(xb, x_ref[order[:7]])
    np.testing.assert_array_equal(yb, y_ref[order[:7]])


def test_window_2_slides_within_documents():
    _, ids = seed_ids()
    x, y = Windows(ids, window=2).all()
    ref_x, ref_y = brute_force(ids, 2)
    np.testing.assert_array_equal(x, ref_x)
    np.testing.assert_array_equal(y, ref_y)
    # the first window of every document starts with padding: nothing leaks from the previous line
    firsts = np.cumsum([0] + [len(d) - 1 for d in ids[:-1]])
    assert all(x[i, 0] == 0 and x[i, 1] == ids[k][0] for k, i in enumerate(firsts))
    assert x[4].tolist() == [1, 2] and x[3].tolist() == [0, 1]   # 'hello how' (line 2) then padded 'hello'


def test_windows_match_brute_force_on_random_documents():
    rng = np.random.default_rng(0)
    checked = 0
    for case in range(300):
        n_docs = int(rng.integers(1, 8))
        docs = [rng.integers(1, 30, size=int(rng.integers(0, 12))).tolist() for _ in range(n_docs)]
        longest = max(map(len, docs))
        window = None if case % 4 == 0 else int(rng.integers(1, 14))
        if (window is None and longest < 2):
            with pytest.raises(InputError):
                Windows(docs, window)
            continue
        w = Windows(docs, window)
        t = longest - 1 if window is None else window
        assert w.window == t
        ref_x, ref_y = brute_force(docs, t)
        assert len(w) == len(ref_y)
        if len(w):
            x, y = w.all()
            np.testing.assert_array_equal(x, ref_x)
            np.testing.assert_array_equal(y, ref_y)
            idx = rng.permutation(len(w))[: int(rng.integers(1, len(w) + 1))]
            xb, yb = w.batch(idx)
            np.testing.assert_array_equal(xb, ref_x[idx])
            np.testing.assert_array_equal(yb, ref_y[idx])
            checked += 1
    assert checked > 150


def test_windows_reject_single_word_documents():
    with pytest.raises(InputError, match="two or more"):
        Windows([[1], [2], [], [3]])
    with pytest.raises(InputError):
        Windows([])


# -- held-out split --------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 4, 7, 10, 101])
@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.25, 0.5, 0.9, 0.99])
def test_split_heldout_is_a_disjoint_tail(n, fraction):
    docs = [f"doc {i}" for i in range(n)]
    train, held = split_heldout(docs, fraction)
    assert train + held == docs                      # the held-out part is the tail, in order
    assert train and held                            # at least one on each side
    assert not set(train) & set(held)
    assert len(held) == min(n - 1, max(1, round(n * fraction)))


def test_split_heldout_edges():
    docs = ["a", "b", "c"]
    assert split_heldout(docs, 0) == (docs, [])
    assert split_heldout(docs, 0.0) == (docs, [])
    for bad in (1, 1.5, -0.1):
        with pytest.raises(InputError):
            split_heldout(docs, bad)
    with pytest.raises(InputError, match="single document"):
        split_heldout(["only"], 0.5)


# -- corpus ----------------------------------------------------------------------------------------

PROSE = "It is a truth universally\nacknowledged, that a single man\n\n\n  in possession  \n\nof a good fortune.\n"


def test_seed_corpus():
    c = read_corpus()
    assert c.documents == SEED_LINES.splitlines() and c.unit == "line" and c.name == "seed"
    assert c.sha256 == hashlib.sha256(SEED_LINES.encode()).hexdigest()
    assert read_corpus(unit="paragraph").documents == [" ".join(SEED_LINES.splitlines())]


def test_line_and_paragraph_units(tmp_path):
    f = tmp_path / "prose.txt"
    f.write_text(PROSE, encoding="utf-8")
    lines = read_corpus([f], "line")
    assert lines.documents == ["It is a truth universally", "acknowledged, that a single man", "  in possession  ",
                               "of a good fortune."]
    paras = read_corpus([f], "paragraph")
    assert paras.documents == ["It is a truth universally acknowledged, that a single man", "in possession",
                               "of a good fortune."]
    assert paras.name == "prose" and paras.size_bytes == len(PROSE.encode())
    assert split_documents("a\r\nb\r\n\r\nc", "paragraph") == ["a b", "c"]
    with pytest.raises(CorpusError):
        read_corpus([f], "sentence")


def test_folder_is_read_recursively_and_sorted(tmp_path):
    root = tmp_path / "books"
    for rel, text in [("b.txt", "bee"), ("sub/z/deep.txt", "deep"), ("a.txt", "\ufeffay"), ("notes.md", "skip me"),
                      ("sub/c.txt", "sea"), ("A2.txt", "upper"), ("sub/a.txt", "sub a"), ("data.TXT.bak", "skip")]:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    files = corpus_mod.corpus_files([root])
    rel = [os.path.relpath(p, root) for p in files]
    assert rel == ["A2.txt", "a.txt", "b.txt", "sub/a.txt", "sub/c.txt", "sub/z/deep.txt"]
    c = read_corpus([root])
    assert c.documents == ["upper", "ay", "bee", "sub a", "sea", "deep"]   # the BOM is gone
    assert c.name == "books" and len(c.files) == 6
    digest = hashlib.sha256(b"".join(hashlib.sha256(open(p, "rb").read()).digest() for p in files)).hexdigest()
    assert c.sha256 == digest


def test_bom_dropped_and_files_concatenated(tmp_path):
    one, two = tmp_path / "one.txt", tmp_path / "two.txt"
    one.write_bytes("\ufeffhello world\n".encode("utf-8"))
    two.write_bytes(b"second file\n")
    c = read_corpus([one, two])
    assert c.documents == ["hello world", "second file"]
    assert c.files[0]["bytes"] == len("\ufeffhello world\n".encode())   # the file is hashed as stored


def test_unreadable_folder_reported(tmp_path, monkeypatch):
    """os.walk reports a folder it cannot list through onerror; that becomes one CorpusError."""
    root = tmp_path / "books"
    root.mkdir()
    (root / "a.txt").write_text("a b c")

    def walk(top, onerror=None, **kw):
        err = PermissionError(13, "Permission denied", str(root / "locked"))
        onerror(err)
        yield from ()

    monkeypatch.setattr(corpus_mod.os, "walk", walk)
    with pytest.raises(CorpusError, match="cannot read folder .*locked: permission denied"):
        corpus_mod.corpus_files([root])


# -- atomic folders --------------------------------------------------------------------------------

def snapshot(folder):
    out = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, folder)] = None if os.path.isdir(path) else open(path, "rb").read()
    return out


def make_previous(target):
    (target / "nested").mkdir(parents=True)
    (target / "model.keras").write_bytes(os.urandom(256))
    (target / "nested" / "notes.txt").write_text("old run")
    return snapshot(target)


def test_atomic_folder_keeps_previous_when_body_raises(tmp_path):
    target = tmp_path / "model"
    before = make_previous(target)
    with pytest.raises(RuntimeError, match="boom"):
        with AtomicFolder(target, force=True) as tmp:
            with open(os.path.join(tmp, "model.keras"), "wb") as f:
                f.write(b"half written")
            raise RuntimeError("boom")
    assert snapshot(target) == before
    assert sorted(os.listdir(tmp_path)) == ["model"]          # the temp folder is gone too


def test_atomic_folder_replaces_with_force_and_refuses_without(tmp_path):
    target = tmp_path / "model"
    before = make_previous(target)
    with pytest.raises(OutputExists, match="--force"):
        AtomicFolder(target)
    assert snapshot(target) == before
    with AtomicFolder(target, force=True) as tmp:
        with open(os.path.join(tmp, "new.txt"), "w") as f:
            f.write("new run")
    assert snapshot(target) == {"new.txt": b"new run"}
    assert sorted(os.listdir(tmp_path)) == ["model"]
    fresh = tmp_path / "fresh"
    with AtomicFolder(fresh) as tmp:
        assert not fresh.exists()                           # nothing appears before the body succeeds
        open(os.path.join(tmp, "x"), "w").close()
    assert os.listdir(fresh) == ["x"]


def test_clean_leftovers(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    dead = tmp_path / f"{PREFIX}model.{DEAD_PID}.0123abcd"
    mine = tmp_path / f"{PREFIX}model.{os.getpid()}.0123abcd"
    alive = tmp_path / f"{PREFIX}model.1.89abcdef"               # pid 1 always exists
    other = tmp_path / f"{PREFIX}other.{DEAD_PID}.0123abcd"       # belongs to another target
    for d in (dead, mine, alive, other):
        d.mkdir()
        (d / "f").write_text("x")
    with pytest.raises(ProcessLookupError):
        os.kill(DEAD_PID, 0)
    assert clean_leftovers(target) == [dead.name]
    assert not dead.exists() and mine.exists() and alive.exists() and other.exists() and target.exists()
    assert clean_leftovers(target) == []


def test_clean_leftovers_restores_interrupted_replacement(tmp_path):
    target = tmp_path / "model"
    old = tmp_path / f"{PREFIX}model.{DEAD_PID}.0123abcd.old"
    old.mkdir()
    (old / "model.keras").write_bytes(b"previous")
    clean_leftovers(target)
    assert (target / "model.keras").read_bytes() == b"previous" and not old.exists()


# -- CLI: bad inputs (no TensorFlow) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def no_tf_env(tmp_path_factory):
    """PYTHONPATH with stand-in tensorflow/keras packages that refuse to import."""
    block = tmp_path_factory.mktemp("block-tf")
    for name in ("tensorflow", "keras"):
        (block / name).mkdir()
        (block / name / "__init__.py").write_text(f"raise ImportError('{name} imported during a bad-input run')\n")
    return {"PYTHONPATH": str(block)}


def run_bad(env, *args):
    r = run_cli("nextword-train", *args, timeout=60, env=env)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and "imported during" not in r.stderr, r.stderr
    assert r.stdout == ""
    return r.stderr


def one_line(stderr):
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("nextword-train: error: "), stderr
    return lines[0]


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name, data, expect", [
    ("empty.txt", b"", "is empty"),
    ("blank.txt", b"\n  \n\t\n\n", "is empty"),
    ("one-word.txt", b"hello\n", "1 token(s)"),
    ("punctuation.txt", b"!!! ... ???\n-- ; --\n", "0 token(s)"),
    ("bom-only.txt", b"\xef\xbb\xbf\n", "is empty"),
    ("nul.txt", b"hello\x00world how are you\n", "NUL byte at offset 5"),
    ("latin1.txt", "hello world\ncaf\u00e9 au lait\n".encode("latin-1"), "byte 0xe9 at offset 15"),
])
def test_cli_bad_corpus(tmp_path, no_tf_env, name, data, expect):
    path = write(tmp_path / name, data)
    line = one_line(run_bad(no_tf_env, "--corpus", path, "--out", tmp_path / "out", "--quiet"))
    assert expect in line
    if name in ("nul.txt", "latin1.txt"):
        assert str(path) in line                            # names the file
    assert not (tmp_path / "out").exists()


def test_cli_words_only_on_separate_lines(tmp_path, no_tf_env):
    path = write(tmp_path / "words.txt", b"hello\nworld\n")
    line = one_line(run_bad(no_tf_env, "--corpus", path, "--out", tmp_path / "out"))
    assert "two or more" in line


def test_cli_missing_path(tmp_path, no_tf_env):
    missing = tmp_path / "nope" / "missing.txt"
    line = one_line(run_bad(no_tf_env, "--corpus", missing, "--out", tmp_path / "out"))
    assert f"corpus path {missing} does not exist" in line


def test_cli_unreadable_folder(tmp_path, no_tf_env):
    root = tmp_path / "locked"
    write(root / "bad.txt", b"hello \xff there\n")
    root.chmod(0)
    try:
        line = one_line(run_bad(no_tf_env, "--corpus", root, "--out", tmp_path / "out"))
        if os.geteuid() == 0:
            # root ignores permissions: the folder is read, so the (real) problem inside it is what fails
            assert f"{root / 'bad.txt'} is not UTF-8: byte 0xff at offset 6" in line
        else:
            assert f"cannot read folder {root}: permission denied" in line
    finally:
        root.chmod(0o755)


def test_cli_folder_with_dangling_link_and_no_txt(tmp_path, no_tf_env):
    """Failures that happen even as root: a .txt that is a dangling link, a folder without .txt files."""
    root = tmp_path / "books"
    write(root / "good.txt", b"hello how are you\n")
    os.symlink(tmp_path / "gone.txt", root / "link.txt")
    line = one_line(run_bad(no_tf_env, "--corpus", root, "--out", tmp_path / "out"))
    assert str(root / "link.txt") in line
    empty = tmp_path / "empty-folder"
    write(empty / "readme.md", b"no text here")
    line = one_line(run_bad(no_tf_env, "--corpus", empty, "--out", tmp_path / "out"))
    assert f"folder {empty} holds no .txt files" in line


@pytest.mark.parametrize("flags, expect", [
    (["--window", "0"], "--window must be at least 1, got 0"),
    (["--epochs", "0"], "--epochs must be at least 1, got 0"),
    (["--epochs", "-3"], "--epochs must be at least 1"),
    (["--num-words", "1"], "--num-words must be at least 2, got 1"),
    (["--val-split", "1.5"], "--val-split must be in [0, 1), got 1.5"),
    (["--val-split", "nan"], "--val-split must be in [0, 1)"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--learning-rate", "0"], "--learning-rate must be > 0"),
    (["--oov-token", " "], "--oov-token must not be blank"),
    (["--seed", "-1"], "--seed"),
    (["--recurrent-dropout", "1"], "--recurrent-dropout must be in [0, 1), got 1.0"),
    (["--dropout", "-0.1"], "--dropout must be in [0, 1), got -0.1"),
])
def test_cli_nonsense_flags(tmp_path, no_tf_env, flags, expect):
    line = one_line(run_bad(no_tf_env, *flags, "--out", tmp_path / "out"))
    assert expect in line


@pytest.mark.parametrize("flags, expect", [
    (["--epochs", "abc"], "argument --epochs: expected a whole number, got 'abc'"),
    (["--val-split", "half"], "argument --val-split: expected a number, got 'half'"),
    (["--unit", "sentence"], "argument --unit: invalid choice"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
])
def test_cli_unparseable_flags(tmp_path, no_tf_env, flags, expect):
    """argparse's own errors: its usage block, then one error line."""
    stderr = run_bad(no_tf_env, *flags, "--out", tmp_path / "out")
    errors = [l for l in stderr.splitlines() if "error:" in l]
    assert len(errors) == 1 and errors[0] == stderr.strip().splitlines()[-1]
    assert errors[0].startswith("nextword-train: error: ") and expect in errors[0]


def test_cli_existing_out_without_force(tmp_path, no_tf_env):
    out = tmp_path / "model"
    before = make_previous(out)
    stat = os.stat(out / "model.keras")
    line = one_line(run_bad(no_tf_env, "--out", out, "--epochs", "1"))
    assert f"{out} already exists; pass --force to replace it" in line
    assert snapshot(out) == before and os.stat(out / "model.keras").st_mtime_ns == stat.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["model"]
    file_out = write(tmp_path / "file-out", b"i am a file")
    line = one_line(run_bad(no_tf_env, "--out", file_out, "--force"))
    assert "not a folder" in line and file_out.read_bytes() == b"i am a file"


# -- CLI end to end (TensorFlow) -------------------------------------------------------------------

MODEL_FILES = {"model.keras", "tokenizer.json", "train-report.json", "curves.png", "windows.npz",
               "lexicon.json", "train-ids.npz"}


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    if not HAS_TF:
        pytest.skip("needs TensorFlow (the train extra)")
    out = tmp_path_factory.mktemp("e2e") / "seed-model"
    r = run_cli("nextword-train", "--out", out, "--quiet", timeout=300)
    return out, r


def report_of(out):
    with open(out / "train-report.json", encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.tf
@pytest.mark.slow
def test_cli_trains_seed_corpus(seed_run):
    out, r = seed_run
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert "'hello how is' -> 'your'" in r.stdout
    assert set(os.listdir(out)) == MODEL_FILES
    rep = report_of(out)
    assert len(rep["history"]["loss"]) == 200 and rep["epochs_run"] == 200
    assert rep["config"]["objective"] == "prefix" and rep["defaults"] == {}   # the notebook's settings, unchanged
    assert rep["history"]["loss"][-1] < rep["history"]["loss"][0]
    assert rep["corpus"]["sha256"] == hashlib.sha256(SEED_LINES.encode()).hexdigest()
    assert rep["vocab_size"] == 11 and rep["windows"] == 15 and rep["window"] == 4
    assert rep["heldout"] is None
    assert rep["model"] == {"vocab_size": 11, "window": 4, "embedding_dim": 10, "units": 50}
    tok = Tokenizer.load(out / "tokenizer.json")
    assert tok.to_dict() == seed_ids()[0].to_dict()
    with np.load(out / "windows.npz") as npz:
        assert npz["x_eval"].shape == (15, 4) and npz["y_eval"].shape == (15,)
        assert npz["x_calib"].shape[1] == 4
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert zipfile.is_zipfile(out / "model.keras")


def generated_prose(rng, paragraphs=8):
    words = "the cat sat on a mat and then it ran to see my old dog who was by the door".split()
    out = []
    for _ in range(paragraphs):
        lines = [" ".join(rng.choice(words, size=int(rng.integers(3, 8)))) for _ in range(int(rng.integers(1, 4)))]
        out.append("\n".join(lines) + ".")
    return "\n\n".join(out) + "\n"


@pytest.mark.tf
@pytest.mark.slow
def test_cli_force_replaces_with_paragraph_run(seed_run, tmp_path):
    seed_out, first = seed_run
    assert first.returncode == 0, first.stderr
    out = tmp_path / "model"
    shutil.copytree(seed_out, out)
    prose = tmp_path / "prose.txt"
    prose.write_text(generated_prose(np.random.default_rng(3)), encoding="utf-8")
    r = run_cli("nextword-train", "--corpus", prose, "--unit", "paragraph", "--window", "3", "--val-split", "0.25",
                "--test-split", "0.25", "--epochs", "2", "--out", out, "--force", "--quiet", timeout=300)
    assert r.returncode == 0, r.stderr
    assert "held out" in r.stdout and "next word" not in r.stdout   # no --predict for a custom corpus
    assert set(os.listdir(out)) == MODEL_FILES
    assert sorted(os.listdir(tmp_path)) == ["model", "prose.txt"]     # no temp or .old folder left behind
    rep = report_of(out)
    assert rep["corpus"]["unit"] == "paragraph" and rep["corpus"]["documents"] == 8
    # the test tail (2 of 8) is held out first, validation (2 of the other 6) is taken from what is left
    assert rep["corpus"]["train_documents"] == 4 and rep["corpus"]["heldout_documents"] == 2
    assert rep["corpus"]["validation_documents"] == 2 and rep["heldout"]["source"] == "test"
    # train-ids.npz (the n-gram's ids): the training and the validation documents, never the test tail
    rest, _test = split_heldout(read_corpus([str(prose)], "paragraph").documents, 0.25)
    train_docs, val_docs = split_heldout(rest, 0.25)
    tok = Tokenizer.load(str(out / "tokenizer.json"))
    kept_train, kept_val = train_ids.load(str(out))
    assert [d.tolist() for d in kept_train] == tok.texts_to_sequences(train_docs)
    assert [d.tolist() for d in kept_val] == tok.texts_to_sequences(val_docs) and len(kept_val) == 2
    assert rep["corpus"]["sha256"] == hashlib.sha256(hashlib.sha256(prose.read_bytes()).digest()).hexdigest()
    assert rep["window"] == 3 and rep["epochs_run"] == 2 and len(rep["history"]["val_loss"]) == 2
    held = rep["heldout"]
    assert held["windows"] > 0 and 0 <= held["top1"] <= held["top3"] <= held["top5"] <= 1
    assert held["perplexity"] > 1
    assert rep["eval_windows"]["source"] == "heldout"
    # and again without --force: refused, the folder is left as it was
    before = snapshot(out)
    again = run_cli("nextword-train", "--corpus", prose, "--out", out, "--epochs", "1", timeout=60)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert one_line(again.stderr).endswith(f"{out} already exists; pass --force to replace it")
    assert snapshot(out) == before
