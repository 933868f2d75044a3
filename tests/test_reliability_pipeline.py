"""Reliability of the writing side (issue 6 items 4, 5 and the process half of 6): SIGKILL of
nextword-export and nextword-train at chosen points leaves the previous folder byte-identical and
loadable, and the next run removes the leftovers; hostile corpora give clear errors or sensible
training; readers loading a bundle while `nextword-export --force` replaces it see one bundle whole.

Kill points are found by polling the temporary folder where that is reliable (conversion takes
seconds). The short phases (the parity gate, the instant before the rename, writing the model folder)
last milliseconds, so a small wrapper runs the real CLI with one function patched to write a marker
file and wait: the kill then lands exactly in that phase. No product code has test hooks."""

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from nextword.runtime import Predictor
from nextword.runtime.errors import InputError
from support import REPO, SEED_BUNDLE

ENV = {k: v for k, v in os.environ.items() if k != "NEXTWORD_LEGACY_PYTHON"}   # keep these runs short
ENV.update(TF_CPP_MIN_LOG_LEVEL="3")

HOOK = r"""
import os, sys, time
phase, marker, module = sys.argv[1], sys.argv[2], sys.argv[3]

def pause(*_, **__):
    open(marker, "w").close()
    time.sleep(600)

if phase == "parity":            # export: the first Predictor.load of the parity gate
    import nextword.export.pipeline as P
    P.Predictor = type("Paused", (), {"load": staticmethod(pause)})
elif phase == "rename":          # export or train: the complete temp folder, fsynced, just before the rename
    import nextword.train.atomic as A
    fsync = A._fsync_tree
    def fsync_then_pause(folder):
        fsync(folder)
        pause()
    A._fsync_tree = fsync_then_pause
elif phase == "writing":         # train: model.keras written into the temp folder, the rest not yet
    import nextword.train.fit as F
    F.plot_curves = pause
elif phase == "training":        # train: mark after the first epoch and keep training
    import nextword.train.loop as L
    end_epoch = L.end_epoch
    def end_epoch_then_mark(*args, **kwargs):
        kept = end_epoch(*args, **kwargs)
        open(marker, "w").close()
        return kept
    L.end_epoch = end_epoch_then_mark
main = __import__(module, fromlist=["main"]).main
main(sys.argv[4:])
"""


def snapshot(folder):
    """{file name: sha256} of every file in a folder (names included: a missing or extra file shows)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


def leftovers(target):
    parent, base = os.path.split(os.path.abspath(target))
    return sorted(glob.glob(os.path.join(parent, f".nextword-tmp-{base}.[0-9]*")))   # not {base}.resume's


def start(module, args, phase=None, marker=None, quiet=True):
    argv = [sys.executable, "-m", module, *args] if phase is None else \
        [sys.executable, "-c", HOOK, phase, marker, module, *args]
    return subprocess.Popen(argv, cwd=REPO, env=ENV, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if not quiet else subprocess.DEVNULL)


def kill_when(proc, condition, timeout=240):
    """SIGKILL the process group as soon as condition() holds; fail if the run ends first."""
    end = time.time() + timeout
    try:
        while not condition():
            assert proc.poll() is None, f"the run ended (exit {proc.returncode}) before the kill point"
            assert time.time() < end, "kill point never reached"
            time.sleep(0.02)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def _tmp_has(target, *names, absent=()):
    def check():
        for tmp in leftovers(target):
            try:
                have = set(os.listdir(tmp))
            except FileNotFoundError:
                continue
            if all(n in have for n in names) and not any(n in have for n in absent):
                return True
        return False
    return check


# -- export -----------------------------------------------------------------------------------------
@pytest.mark.tf
def test_export_killed_at_three_points_keeps_the_previous_bundle_and_the_next_run_cleans_up(tmp_path, tiny_model_dir):
    SEED_MODEL = tiny_model_dir  # a model trained in this session: a clean clone has no artifacts/seed-model
    bundle = str(tmp_path / "B")
    shutil.copytree(SEED_BUNDLE, bundle)
    before = snapshot(bundle)
    args = [SEED_MODEL, "--out", bundle, "--force", "--quiet", "--variants", "tflite-float32", "onnx-float32"]
    seen = []

    def check_after_kill():
        left = leftovers(bundle)
        # exactly one temp folder: the killed run's own; it removed the one the run before it left
        assert len(left) == 1 and left[0] not in seen, (left, seen)
        seen.append(left[0])
        assert snapshot(bundle) == before                     # the previous bundle, byte for byte
        assert Predictor.load(bundle).predict_next("hello how is") == "your"

    # 1. during conversion: the temp folder holds the vocabulary but no manifest yet
    proc = start("nextword.export.cli", args)
    kill_when(proc, _tmp_has(bundle, "vocab.json", absent=("manifest.json",)))
    check_after_kill()
    # 2. during the parity gate: both models converted, the provisional manifest written
    marker = str(tmp_path / "parity.marker")
    proc = start("nextword.export.cli", args, "parity", marker)
    kill_when(proc, lambda: os.path.exists(marker))
    assert _tmp_has(bundle, "float32.tflite", "float32.onnx", "manifest.json")()
    check_after_kill()
    # 3. just before the rename: the temp folder is the complete new bundle
    marker = str(tmp_path / "rename.marker")
    proc = start("nextword.export.cli", args, "rename", marker)
    kill_when(proc, lambda: os.path.exists(marker))
    assert _tmp_has(bundle, "parity.md", "manifest.json", "float32.tflite", "float32.onnx")()
    check_after_kill()

    # the next successful run removes the leftovers of the killed runs (their processes are gone)
    proc = subprocess.run([sys.executable, "-m", "nextword.export.cli", SEED_MODEL, "--out", bundle, "--force", "--quiet",
                           "--variants", "tflite-float32"], cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert leftovers(bundle) == []
    manifest = json.load(open(os.path.join(bundle, "manifest.json")))
    assert list(manifest["variants"]) == ["tflite-float32"]
    assert Predictor.load(bundle).predict_next("hello how is") == "your"


def test_interrupted_two_step_replacement_is_restored_by_the_next_run(tmp_path):
    """Without renameat2 the replacement is two renames; a run killed between them leaves no folder at
    the target and the previous one under .old: clean_leftovers puts it back, and drops the new one."""
    from nextword.train.atomic import clean_leftovers
    target = tmp_path / "B"
    dead = 2 ** 22 + 12345   # above the default pid_max: no such process
    old = tmp_path / f".nextword-tmp-B.{dead}.0123abcd.old"
    new = tmp_path / f".nextword-tmp-B.{dead}.0123abcd"
    shutil.copytree(SEED_BUNDLE, old)
    shutil.copytree(SEED_BUNDLE, new)
    (new / "marker").write_text("new")
    before = snapshot(old)
    clean_leftovers(str(target))
    assert snapshot(target) == before
    assert leftovers(target) == []


# -- train ------------------------------------------------------------------------------------------
@pytest.mark.tf
def test_train_killed_while_training_and_while_writing_keeps_the_previous_model(tmp_path, tiny_model_dir):
    SEED_MODEL = tiny_model_dir
    model = str(tmp_path / "M")
    shutil.copytree(SEED_MODEL, model)
    before = snapshot(model)
    args = ["--out", model, "--force", "--epochs", "5000"]

    # 1. while training (after the first epoch): nothing is written yet
    marker = str(tmp_path / "training.marker")
    proc = start("nextword.train.cli", args, "training", marker)
    kill_when(proc, lambda: os.path.exists(marker))
    assert snapshot(model) == before and leftovers(model) == []
    # 2. while writing the model folder: model.keras is in the temp folder, the curves are not
    marker = str(tmp_path / "writing.marker")
    proc = start("nextword.train.cli", args[:-1] + ["3", "--quiet"], "writing", marker)
    kill_when(proc, lambda: os.path.exists(marker))
    assert _tmp_has(model, "model.keras", absent=("train-report.json",))()
    assert snapshot(model) == before
    assert len(leftovers(model)) == 1

    # the old model still exports-ready: its files parse
    json.load(open(os.path.join(model, "train-report.json")))
    from nextword.runtime.tokenizer import Tokenizer
    assert Tokenizer.load(os.path.join(model, "tokenizer.json")).vocab_size == 11

    proc = subprocess.run([sys.executable, "-m", "nextword.train.cli", "--out", model, "--force", "--epochs", "3", "--quiet"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert leftovers(model) == []
    report = json.load(open(os.path.join(model, "train-report.json")))
    assert report["epochs_run"] == 3 and snapshot(model) != before


# -- hostile corpora ----------------------------------------------------------------------------------
def _train_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "nextword.train.cli", *map(str, args), "--quiet"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.tf
@pytest.mark.parametrize("name,data,needle", [
    ("punctuation.txt", b"!!! ... ,,, ??? ;;; --- ((( ))) \n" * 1000, "at least two are needed"),
    ("latin1.txt", "hello how are you\nun caf\xe9 cr\xe8me\n".encode("latin-1"), "not UTF-8: byte 0xe9 at offset 24"),
    ("nul.txt", b"hello how are you\nhello\x00how is\n", "NUL byte at offset 23"),
    ("utf16.txt", "hello how are you\n".encode("utf-16"), "NUL byte at offset 3"),
    ("empty.txt", b"\n\n   \n\t\n", "is empty"),
    ("one-word-lines.txt", b"hello\nhow\nare\nyou\n", "no document has two or more known words"),
])
def test_hostile_corpus_is_a_clear_error_exit_2(tmp_path, name, data, needle):
    path = tmp_path / name
    path.write_bytes(data)
    proc = _train_cli("--corpus", path, "--out", tmp_path / "m", "--epochs", 2)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-1500:])
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nextword-train: error:"), proc.stderr[-1500:]
    assert needle in err[0], err[0]
    if name in ("latin1.txt", "nul.txt", "utf16.txt"):
        assert str(path) in err[0]          # the error names the file
    assert not os.path.exists(tmp_path / "m") and leftovers(tmp_path / "m") == []   # never a silent empty model


@pytest.mark.tf
@pytest.mark.slow
def test_ten_megabyte_single_line_trains_quickly_in_bounded_memory(tmp_path):
    """10 MB on one line, --window 5 --epochs 1: about 1.9 M windows. Memory stays O(tokens) (windows
    are made per batch); a large batch keeps one epoch short on two cores."""
    import random
    words = "the quick brown fox jumps over a lazy dog and runs far away".split()
    rng = random.Random(10)
    text = " ".join(rng.choice(words) for _ in range(2_300_000))[:10_000_000]
    path = tmp_path / "line.txt"
    path.write_text(text)
    assert path.stat().st_size == 10_000_000 and "\n" not in text
    out = tmp_path / "m"
    started = time.time()
    proc = subprocess.Popen([sys.executable, "-m", "nextword.train.cli", "--corpus", str(path), "--window", "5", "--epochs", "1",
                             "--batch-size", "16384", "--units", "8", "--embedding-dim", "4", "--out", str(out), "--quiet"], cwd=REPO, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=600)
    wall = time.time() - started
    assert proc.returncode == 0, stderr[-2000:]
    report = json.load(open(out / "train-report.json"))
    print(f"10 MB line: {report['windows']:,} windows, fit {report['fit_seconds']:.1f} s, wall {wall:.1f} s, "
          f"peak RSS {report['peak_rss_mb']:.0f} MB")
    # 13 words + padding + the OOV token nextword-train adds by default for a corpus
    assert report["windows"] > 1_500_000 and report["window"] == 5 and report["vocab_size"] == 15
    assert report["config"]["oov_token"] == "<oov>" and report["config"]["objective"] == "sequence"
    assert report["peak_rss_mb"] < 2000          # the training process's own peak (getrusage in the child)
    assert wall < 300


def test_read_corpus_names_the_file_and_offset_of_mixed_encodings(tmp_path):
    from nextword.train.corpus import CorpusError, read_corpus
    (tmp_path / "a.txt").write_text("hello how are you\n", encoding="utf-8")
    (tmp_path / "b.txt").write_bytes("d\xe9j\xe0 vu\n".encode("latin-1"))
    with pytest.raises(CorpusError) as e:
        read_corpus([str(tmp_path)])
    assert isinstance(e.value, InputError)
    assert str(tmp_path / "b.txt") in str(e.value) and "offset 1" in str(e.value) and "0xe9" in str(e.value)


def test_a_file_that_disappears_between_listing_and_reading_is_a_clear_error(tmp_path, monkeypatch):
    import nextword.train.corpus as corpus
    for n in ("a.txt", "b.txt", "c.txt"):
        (tmp_path / n).write_text(f"hello how {n}\n")
    real = corpus.corpus_files

    def listing_then_delete(paths):
        files = real(paths)
        os.unlink(files[1])              # gone after the folder was listed, before it is read
        return files
    monkeypatch.setattr(corpus, "corpus_files", listing_then_delete)
    with pytest.raises(corpus.CorpusError, match="b.txt disappeared while the corpus was being read"):
        corpus.read_corpus([str(tmp_path)])


def test_a_name_listed_by_os_walk_that_no_longer_exists_is_a_clear_error(tmp_path, monkeypatch):
    import nextword.train.corpus as corpus
    (tmp_path / "a.txt").write_text("hello how are you\n")
    real_walk = os.walk

    def walk_with_a_ghost(top, *a, **k):
        for root, dirs, names in real_walk(top, *a, **k):
            yield root, dirs, names + ["ghost.txt"]
    monkeypatch.setattr(os, "walk", walk_with_a_ghost)
    with pytest.raises(corpus.CorpusError, match="ghost.txt disappeared"):
        corpus.read_corpus([str(tmp_path)])


def test_a_folder_named_like_a_text_file_and_an_unreadable_file_are_clear_errors(tmp_path):
    from nextword.train.corpus import CorpusError, read_corpus
    (tmp_path / "sub.txt").mkdir()
    (tmp_path / "sub.txt" / "x.txt").write_text("hello how are you\n")
    assert read_corpus([str(tmp_path)]).documents == ["hello how are you"]   # the folder is walked into
    with pytest.raises(CorpusError, match="is a folder"):
        from nextword.train.corpus import read_text
        read_text(str(tmp_path / "sub.txt"))
    locked = tmp_path / "locked.txt"
    locked.write_text("hello\n")
    locked.chmod(0)
    if os.geteuid() != 0:   # root reads anyway: then only the folder case above is checked
        with pytest.raises(CorpusError, match="permission denied"):
            read_corpus([str(locked)])


# -- readers while the bundle is replaced ---------------------------------------------------------------
READER = r"""
import json, os, sys, time
from nextword.runtime import Predictor, NextwordError
bundle, stop, out = sys.argv[1:4]
records = []
while not os.path.exists(stop):
    try:
        p = Predictor.load(bundle)
        records.append({"sha": p.bundle.manifest_sha256, "variant": p.variant.name,
                        "variants": sorted(p.bundle.manifest.variants), "answer": p.top_k("hello how", 3)})
    except NextwordError as e:
        records.append({"error": type(e).__name__, "message": " ".join(str(e).split())})
    time.sleep(0.003)   # leave the exporter some CPU on a two-core machine
json.dump(records, open(out, "w"))
"""


@pytest.mark.tf
def test_readers_see_the_old_or_the_new_bundle_whole_while_export_replaces_it(tmp_path, tiny_model_dir):
    SEED_MODEL = tiny_model_dir
    bundle = str(tmp_path / "B")
    shutil.copytree(SEED_BUNDLE, bundle)
    old = Predictor.load(bundle)
    old_sha, old_variant, old_count = old.bundle.manifest_sha256, old.variant.name, len(old.bundle.manifest.variants)
    old_answer = json.loads(json.dumps(old.top_k("hello how", 3)))      # as the readers report it (JSON)
    stop = str(tmp_path / "stop")
    readers = [subprocess.Popen([sys.executable, "-c", READER, bundle, stop, str(tmp_path / f"r{i}.json")],
                                cwd=REPO, env=ENV) for i in range(2)]
    try:
        writer = subprocess.run([sys.executable, "-m", "nextword.export.cli", SEED_MODEL, "--out", bundle, "--force", "--quiet",
                                 "--variants", "tflite-float32"], cwd=REPO, env=ENV, capture_output=True, text=True,
                                timeout=600)
        time.sleep(1.0)   # let the readers load the new bundle a few times
    finally:
        open(stop, "w").close()
        for r in readers:
            r.wait(timeout=120)
    assert writer.returncode == 0, writer.stderr[-2000:]
    new = Predictor.load(bundle)
    new_sha, new_answer = new.bundle.manifest_sha256, json.loads(json.dumps(new.top_k("hello how", 3)))
    assert new_sha != old_sha and new.variant.name == "tflite-float32"

    records = [rec for i in range(2) for rec in json.load(open(tmp_path / f"r{i}.json"))]
    loads = [r for r in records if "sha" in r]
    errors = [r for r in records if "error" in r]
    olds = [r for r in loads if r["sha"] == old_sha]
    news = [r for r in loads if r["sha"] == new_sha]
    print(f"readers: {len(records)} loads, {len(olds)} old, {len(news)} new, {len(errors)} typed errors "
          f"{sorted({e['error'] + ': ' + e['message'][:90] for e in errors})}")
    assert len(olds) + len(news) == len(loads), "a load saw a manifest that is neither the old nor the new one"
    bad = [r for r in olds if (r["answer"], r["variant"], len(r["variants"])) != (old_answer, old_variant, old_count)]
    bad += [r for r in news if (r["answer"], r["variants"]) != (new_answer, ["tflite-float32"])]
    assert not bad, f"{len(bad)} loads mixed the two bundles: {bad[:3]} (old {old_answer}, new {new_answer})"
    assert olds and news, "the readers did not overlap the replacement"
    assert not errors, f"{len(errors)} loads failed during the swap: {errors[:3]}"


@pytest.mark.tf
def test_train_killed_after_an_epoch_resumes_from_its_last_checkpoint(tmp_path):
    """kill -9 during a corpus run: <out>.resume (replaced atomically after every epoch) holds the last
    finished epoch, and the same command with --resume finishes the run from there."""
    corpus = tmp_path / "prose.txt"
    words = [f"w{i}" for i in range(9)]
    corpus.write_text("\n\n".join(" ".join(words[(k + j) % 9] for j in range(12)) for k in range(30)) + "\n")
    model = str(tmp_path / "M")
    args = ["--corpus", str(corpus), "--unit", "paragraph", "--out", model, "--patience", "0", "--quiet"]
    state = os.path.join(model + ".resume", "state.json")
    proc = start("nextword.train.cli", args + ["--epochs", "5000"])
    kill_when(proc, lambda: os.path.exists(state))
    assert not os.path.exists(model)                       # no model folder: the run never finished
    done = json.load(open(state))["loop"]["epochs_done"]
    assert done >= 1
    proc = subprocess.run([sys.executable, "-m", "nextword.train.cli", *args, "--epochs", str(done + 2), "--resume"],
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.load(open(os.path.join(model, "train-report.json")))
    assert report["resumed_from_epoch"] == done and report["epochs_run"] == done + 2
    assert not os.path.exists(model + ".resume") and leftovers(model) == []
