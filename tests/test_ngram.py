"""The bundle's n-gram model (issue 15): export/ngram.py builds an interpolated modified Kneser-Ney
model, runtime/ngram.py reads ngram.npz with numpy alone, Bundle.ngram() loads it verified. Checked
against a brute-force reference written plainly here, round-tripped through the file, pruned to a
budget, and fed crafted files that must be refused with BundleInvalid."""

import hashlib
import io
import json
import os
import shutil
import zipfile
from collections import defaultdict

import numpy as np
import pytest

from nextword.export import ngram as builder
from nextword.runtime.bundle import Bundle
from nextword.runtime.errors import ArgumentTypeError, BundleError, BundleInvalid, HashMismatch, InputError
from nextword.runtime.limits import MAX_NGRAM_BATCH_BYTES
from nextword.runtime.ngram import NgramModel, read_npz
from nextword.train import train_ids
from support import SEED_BUNDLE, rehashed_copy, run_cli

CORPUS = [[1, 2, 3, 4], [1, 2, 3, 5], [2, 3, 4, 1, 2], [5, 5, 5], [1, 2, 4], [3], [], [4, 1, 2, 3, 4, 5, 6],
          [2, 3, 4], [1, 2, 3, 4], [6, 1, 2]]
V = 8   # ids 1..7; 7 is never seen


# -- a brute-force reference: dictionaries and the formulas as Chen & Goodman write them -------------
def ref_discounts(counts):
    n = [sum(1 for c in counts if c == i) for i in (1, 2, 3, 4)]
    if n[0] == 0 or n[1] == 0:
        d = [0.5, 1.0, 1.5]
    else:
        y = n[0] / (n[0] + 2 * n[1])
        d = [1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2] if n[2] else 1.5]
    return [min(max(x, 0.05), i - 0.05) for i, x in zip((1, 2, 3), d)]


class Reference:
    def __init__(self, docs, vocab, order):
        self.V, self.N = vocab, order
        self.counts = {order: defaultdict(int)}          # counts[k][(h, w)], h a tuple of k-1 ids
        for doc in docs:
            padded = [0] * (order - 1) + list(doc)
            for j, w in enumerate(doc):
                self.counts[order][(tuple(padded[j:j + order - 1]), w)] += 1
        for k in range(order - 1, 0, -1):                # continuation counts: distinct ids before (h, w)
            before = defaultdict(set)
            for (h, w) in self.counts[k + 1]:
                before[(h[1:], w)].add(h[0])
            self.counts[k] = {key: len(xs) for key, xs in before.items()}
        self.d = {k: ref_discounts(list(c.values())) for k, c in self.counts.items()}

    def D(self, k, c):
        return self.d[k][min(c, 3) - 1]

    def p(self, w, h, k):
        entries = {ww: c for (hh, ww), c in self.counts[k].items() if hh == h}
        lower = 1 / (self.V - 1) if k == 1 else self.p(w, h[1:], k - 1)
        if not entries:
            return lower
        total = sum(entries.values())
        alpha = (entries[w] - self.D(k, entries[w])) / total if w in entries else 0.0
        gamma = sum(self.D(k, c) for c in entries.values()) / total
        return alpha + gamma * lower

    def probs(self, context):
        ctx = ([0] * self.N + list(context))[-(self.N - 1):] if self.N > 1 else []
        if 0 in ctx:                                     # nothing before the begin of a document counts
            last = len(ctx) - 1 - ctx[::-1].index(0)
            ctx = [0] * (last + 1) + ctx[last + 1:]
        return np.array([0.0] + [self.p(w, tuple(ctx), self.N) for w in range(1, self.V)])


CONTEXTS = [[], [0], [0, 0], [1], [1, 2], [2, 3], [1, 2, 3], [7, 7], [5, 5], [3, 0, 1], [6, 1, 2, 3, 4, 5],
            [4, 4, 4, 4, 4], [0, 0, 0, 0, 1], [7, 0, 5], [2, 3, 4, 1]]


@pytest.mark.parametrize("order", [2, 3, 4])
def test_equals_a_brute_force_modified_kneser_ney(order):
    ref = Reference(CORPUS, V, order)
    built = builder.build(CORPUS, V, order, budget=None)
    lm = NgramModel.from_bytes(built.data)
    assert lm.order == order and lm.vocab_size == V
    np.testing.assert_allclose(built.arrays["discounts"], [ref.d[k] for k in range(1, order + 1)], atol=1e-12)
    for ctx in CONTEXTS:
        np.testing.assert_allclose(lm.probs(ctx), ref.probs(ctx), atol=2e-6, err_msg=str(ctx))
    # the discounts really differ per count class on this corpus (not a single discount in disguise)
    assert len({round(x, 6) for x in ref.d[order]}) > 1


def test_round_trip_through_the_file_gives_the_builders_probabilities(tmp_path):
    rng = np.random.default_rng(1)
    docs = [rng.integers(1, 40, rng.integers(0, 25)) for _ in range(150)]
    built = builder.build(docs, 40, 3, budget=None)
    path = tmp_path / "ngram.npz"
    path.write_bytes(built.data)
    with np.load(path, allow_pickle=False) as z:        # plain numeric arrays: numpy reads it without pickle
        assert set(z.files) == set(built.arrays)
    lm = NgramModel.from_bytes(path.read_bytes())
    ctx = rng.integers(0, 40, (300, 5))
    np.testing.assert_array_equal(lm.probs_batch(ctx), built.model().probs_batch(ctx))
    for name, a in read_npz(path.read_bytes()).items():
        np.testing.assert_array_equal(a, built.arrays[name])
        assert a.dtype == built.arrays[name].dtype and not a.flags.writeable


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5])
def test_distributions_sum_to_one_and_never_name_padding(order):
    rng = np.random.default_rng(order)
    docs = [rng.integers(1, 30, rng.integers(0, 20)) for _ in range(80)]
    lm = builder.build(docs, 30, order, budget=None).model()
    seen = [list(d[max(0, j - 4):j]) for d in docs[:10] for j in range(len(d))]
    unseen = [list(rng.integers(1, 30, 4)) for _ in range(20)]
    long = [list(rng.integers(0, 30, 40)) for _ in range(5)]   # longer than any order
    contexts = seen + unseen + long + [[], [0], [0] * 6, [5, 0]]
    batch = lm.probs_batch(contexts)
    assert batch.shape == (len(contexts), 30) and batch.dtype == np.float64
    assert np.all(batch[:, 0] == 0)
    np.testing.assert_allclose(batch[:, 1:].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(batch[:, 1:] > 0)                        # every word keeps the uniform floor's share
    for ctx, row in zip(contexts, batch):   # the one-context path adds the same terms in another order
        np.testing.assert_allclose(lm.probs(ctx), row, rtol=1e-12, atol=1e-15)
        q, total = lm.mass(ctx)
        np.testing.assert_allclose(q / total, row, rtol=1e-12, atol=1e-15)
        q32, total32 = lm.mass(ctx, np.float32)   # the mixer's float32 path
        assert q32.dtype == np.float32
        np.testing.assert_allclose(q32 / total32, row, rtol=1e-5, atol=1e-9)
        base = np.linspace(0, 1, 30, dtype=np.float32)           # the ranking path: added in place, scaled
        np.testing.assert_allclose(lm.add_into(base.copy(), ctx, 2.5), base + 2.5 * row, rtol=1e-5, atol=1e-7)
    # a 2-D window array (the LSTM's) means the same as the list of its rows
    windows = np.array([([0] * 6 + c)[-6:] for c in seen[:20]])
    np.testing.assert_array_equal(lm.probs_batch(windows), lm.probs_batch(seen[:20]))


def test_begin_of_document_and_context_length():
    lm = builder.build(CORPUS, V, 3, budget=None).model()
    np.testing.assert_array_equal(lm.probs([]), lm.probs([0, 0]))
    np.testing.assert_array_equal(lm.probs([]), lm.probs([3, 0]))        # nothing before padding counts
    np.testing.assert_array_equal(lm.probs([1, 2]), lm.probs([6, 6, 1, 2]))  # only the last order-1 ids
    assert int(np.argmax(lm.probs([1, 2]))) == 3
    assert not np.array_equal(lm.probs([1, 2]), lm.probs([2]))


def test_pruning_fits_the_budget_drops_low_counts_first_and_still_sums_to_one():
    rng = np.random.default_rng(7)
    docs = [rng.integers(1, 60, rng.integers(5, 40)) for _ in range(300)] + [[1, 2, 3, 4]] * 30
    full = builder.build(docs, 60, 3, budget=None)
    for fraction in (0.8, 0.4, 0.15):
        budget = int(len(full.data) * fraction)
        built = builder.build(docs, 60, 3, budget=budget)
        assert len(built.data) <= budget and built.info["bytes"] == len(built.data)
        assert len(built.data) > budget - 200          # pruned to fit, not far below (header slack only)
        assert sum(built.info["pruned"].values()) == int(built.arrays["pruned"].sum()) > 0
        lm = NgramModel.from_bytes(built.data)
        batch = lm.probs_batch(rng.integers(0, 60, (200, 3)))
        np.testing.assert_allclose(batch[:, 1:].sum(axis=1), 1.0, atol=1e-12)
        assert np.all(batch[:, 0] == 0) and np.all(batch[:, 1:] > 0)
        if built.info["entries"]["3"]:   # the repeated phrase (count 30) is the last trigram to go
            assert int(np.argmax(lm.probs([1, 2]))) == 3 and lm.probs([1, 2])[3] > 0.5
            kept = built.arrays["ctx3"]
            assert (1 * 60 + 2) in kept.tolist()
    assert built.info["pruned"].get("2", 0) > 0     # at 15% the whole top order went, then bigrams
    with pytest.raises(InputError, match="too small"):
        builder.build(docs, 60, 3, budget=100)


def test_builder_input_checks():
    with pytest.raises(InputError):
        builder.build([[1, 0, 2]], 5)                  # 0 is padding, not a word
    with pytest.raises(InputError):
        builder.build([[1, 5]], 5)                     # beyond the vocabulary
    for order in (0, 6, 2.0, True):
        with pytest.raises(InputError):
            builder.build([[1]], 5, order)
    with pytest.raises(InputError):
        builder.build([[1]], 5, 3, budget=0)
    with pytest.raises(InputError, match="too large"):
        builder.build([[1]], 1 << 22, 5)               # 2^88 context keys do not fit in int64
    empty = builder.build([], 5, 3, None).model()      # nothing seen: uniform over the words
    np.testing.assert_allclose(empty.probs([1, 2]), [0, .25, .25, .25, .25])


def test_probs_input_checks():
    lm = builder.build(CORPUS, V, 3, None).model()
    with pytest.raises(InputError):
        lm.probs([1, V])
    with pytest.raises(InputError):
        lm.probs([-1, 2])
    with pytest.raises(ArgumentTypeError):
        lm.probs(["a", "b"])
    with pytest.raises(ArgumentTypeError):
        lm.probs([1.5, 2.0])
    with pytest.raises(ArgumentTypeError):
        lm.probs_batch("12")
    with pytest.raises(ArgumentTypeError):
        lm.probs_batch(np.zeros((2, 2), np.float32))
    with pytest.raises(InputError, match="smaller batches"):
        lm.probs_batch(np.zeros((MAX_NGRAM_BATCH_BYTES // (8 * V) + 1, 2), np.int64))
    assert lm.probs_batch([]).shape == (0, V)


def test_train_ids_file_round_trips_and_refuses_damage(tmp_path):
    assert train_ids.load(str(tmp_path)) is None
    train_ids.save(str(tmp_path / train_ids.FILE), [[1, 2], [], [3]], [[4, 5, 6]])
    train, val = train_ids.load(str(tmp_path))
    assert [d.tolist() for d in train] == [[1, 2], [], [3]] and [d.tolist() for d in val] == [[4, 5, 6]]
    np.savez(tmp_path / train_ids.FILE, train_ids=np.arange(3, dtype=np.int32), train_lengths=np.array([5]),
             validation_ids=np.zeros(0, np.int32), validation_lengths=np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="do not add up"):
        train_ids.load(str(tmp_path))


# -- the bundle: manifest entry, verification, crafted files ------------------------------------------
SEED_V = Bundle.open(SEED_BUNDLE).manifest.vocab_size


def seed_docs():
    rng = np.random.default_rng(3)
    return [rng.integers(1, SEED_V, rng.integers(1, 12)) for _ in range(40)]


def good_arrays(order=3):
    return {k: np.array(v) for k, v in builder.build(seed_docs(), SEED_V, order, None).arrays.items()}


def npz(arrays, compressed=False):
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def bundle_with(tmp_path, data, **entry):
    """A copy of the seed bundle holding `data` as ngram.npz, its manifest entry rehashed to match."""
    folder = str(tmp_path / "bundle")

    def edit(m):
        with open(os.path.join(folder, "ngram.npz"), "wb") as f:
            f.write(data)
        m["ngram"] = dict({"file": "ngram.npz", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "order": 3}, **entry)
    return rehashed_copy(folder, edit=edit)


def test_seed_bundle_has_no_ngram_and_stays_valid():
    assert Bundle.open(SEED_BUNDLE).ngram() is None


def test_bundle_loads_a_valid_ngram_lazily(tmp_path):
    arrays = good_arrays()
    b = Bundle.open(bundle_with(tmp_path, npz(arrays)))
    lm = b.ngram()
    assert lm is b.ngram() and lm.order == 3 and lm.vocab_size == SEED_V
    np.testing.assert_allclose(lm.probs([]), NgramModel(arrays).probs([]))


def _edit(name, value):
    def f(a):
        a[name] = value(a[name]) if callable(value) else value
    return f


def _header(shape, dtype="<i8"):
    """A .npy member that declares `shape` but holds 16 bytes."""
    head = repr({"descr": dtype, "fortran_order": False, "shape": shape}).encode()
    head += b" " * (63 - (len(head) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(head).to_bytes(2, "little") + head + b"\0" * 16


def _pickled():
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    return buf.getvalue()


def _many_members(n):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for i in range(n):
            out.writestr(f"a{i}.npy", b"")
    return buf.getvalue()


def _zip_with(arrays, name, raw, comment=b""):
    """The npz of `arrays` with member `name`.npy replaced by raw bytes (None: kept)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(npz(arrays))) as src, zipfile.ZipFile(buf, "w") as out:
        out.comment = comment
        for info in src.infolist():
            replace = raw is not None and info.filename == name + ".npy"
            out.writestr(info.filename, raw if replace else src.read(info))
    return buf.getvalue()


ARRAY_EDITS = {
    "unsorted context keys": (_edit("ctx3", lambda a: a[::-1].copy()), "strictly increasing"),
    "NaN probability": (_edit("prob3", lambda a: np.where(np.arange(len(a)) == 0, np.nan, a).astype("<f4")), "NaN"),
    "negative back-off weight": (_edit("gamma2", lambda a: (a - 2).astype("<f4")), "outside"),
    "probabilities over 1": (_edit("unigram", lambda a: (a * 3).astype("<f4")), "outside|sum"),
    "mass not summing to 1": (_edit("prob2", lambda a: (a * 0.5).astype("<f4")), "sum to"),
    "word id out of range": (_edit("word3", lambda a: np.full_like(a, SEED_V)), "outside"),
    "padding as a word": (_edit("word2", lambda a: np.zeros_like(a)), "outside"),
    "words repeated in a context": (_edit("word3", lambda a: np.sort(a)[::-1].copy()), "strictly increasing"),
    "pointer past the entries": (_edit("ptr3", lambda a: a + 1), "ptr3"),
    "wrong dtype (float64 unigram)": (_edit("unigram", lambda a: a.astype("<f8")), "expected <f4"),
    "big-endian keys": (_edit("ctx2", lambda a: a.astype(">i8")), "expected <i8"),
    "wrong order in meta": (_edit("meta", np.array([1, 4, SEED_V], "<i8")), "do not match|order"),
    "order 6": (_edit("meta", np.array([1, 6, SEED_V], "<i8")), "order 6"),
    "future format version": (_edit("meta", np.array([2, 3, SEED_V], "<i8")), "format version"),
    "other vocabulary": (_edit("meta", np.array([1, 3, SEED_V + 1], "<i8")), "ids|unigram"),
    "2-D unigram": (_edit("unigram", lambda a: a.reshape(1, -1)), "unigram"),
}


@pytest.mark.parametrize("case", sorted(ARRAY_EDITS))
def test_crafted_arrays_are_refused(tmp_path, case):
    edit, message = ARRAY_EDITS[case]
    arrays = good_arrays()
    edit(arrays)
    b = Bundle.open(bundle_with(tmp_path, npz(arrays)))    # the manifest itself is fine
    with pytest.raises(BundleInvalid, match=message):
        b.ngram()


def test_crafted_files_are_refused(tmp_path):
    arrays = good_arrays()
    cases = {
        "missing member": npz({k: v for k, v in arrays.items() if k != "gamma3"}),
        "extra member": npz(dict(arrays, extra=np.zeros(2))),
        "compressed": npz(arrays, compressed=True),
        "pickled object array": _zip_with(arrays, "prob3", _pickled()),
        "huge declared shape": _zip_with(arrays, "ctx3", _header((1 << 40,))),
        "shape larger than the bytes": _zip_with(arrays, "ctx3", _header((3,))),
        "not a zip": b"PK\x03\x04 this is not an npz" * 10,
        "truncated": npz(arrays)[: len(npz(arrays)) // 2],
        "not an npy member": _zip_with(arrays, "prob3", b"hello"),
        "negative shape whose product fits": _zip_with(arrays, "ctx3", _header((-4, -4), "|u1")),
        "text array": npz(dict(arrays, prob3=np.array(["0.5"] * len(arrays["prob3"])))),
        "thousands of members": _many_members(5000),
        "zip comment after the end record": _zip_with(arrays, "prob3", None, comment=b"x" * 40),
    }
    for i, (case, data) in enumerate(cases.items()):
        b = Bundle.open(bundle_with(tmp_path / str(i), data))
        with pytest.raises(BundleInvalid) as info:
            b.ngram()
        assert "ngram.npz" in str(info.value), case


def test_controls_the_unguarded_reader_really_fails(tmp_path):
    """What the checks stop: numpy's own reader either executes the pickle (allow_pickle=True) or tries to
    allocate the declared 8 TiB before noticing that the bytes are missing."""
    arrays = good_arrays()
    with np.load(io.BytesIO(_zip_with(arrays, "prob3", _pickled())), allow_pickle=True) as z:
        assert z["prob3"].dtype == object                 # unpickled: code from the file ran
    with np.load(io.BytesIO(_zip_with(arrays, "ctx3", _header((1 << 40,)))), allow_pickle=False) as z:
        with pytest.raises((MemoryError, ValueError)) as info:
            z["ctx3"]
        assert not isinstance(info.value, BundleError)


@pytest.mark.parametrize("entry, message", [
    ({"file": "../ngram.npz"}, "plain file name"),
    ({"size": 0}, "ngram.size"),
    ({"size": 1 << 40}, "ngram.size"),
    ({"order": 6}, "ngram.order"),
    ({"order": "3"}, "ngram.order"),
    ({"sha256": "xyz"}, "sha256"),
])
def test_crafted_manifest_entries_are_refused_at_open(tmp_path, entry, message):
    with pytest.raises(BundleInvalid, match=message):
        Bundle.open(bundle_with(tmp_path, npz(good_arrays()), **entry))


def test_manifest_order_must_match_the_file_and_hash_must_match(tmp_path):
    b = Bundle.open(bundle_with(tmp_path / "a", npz(good_arrays(2))))   # manifest says 3
    with pytest.raises(BundleInvalid, match="order"):
        b.ngram()
    folder = bundle_with(tmp_path / "b", npz(good_arrays()))
    with open(os.path.join(folder, "ngram.npz"), "r+b") as f:
        f.seek(200)
        f.write(b"\xff")
    with pytest.raises(HashMismatch):
        Bundle.open(folder).ngram()
    folder = bundle_with(tmp_path / "c", npz(good_arrays()))
    os.remove(os.path.join(folder, "ngram.npz"))
    with pytest.raises(BundleInvalid, match="missing"):
        Bundle.open(folder).ngram()


# -- a real export (TensorFlow) ----------------------------------------------------------------------
@pytest.mark.tf
def test_export_writes_ngram_with_a_matching_manifest_entry(tiny_model_dir, tiny_bundle_dir):
    assert os.path.exists(os.path.join(tiny_model_dir, train_ids.FILE))
    with open(os.path.join(tiny_bundle_dir, "manifest.json"), encoding="utf-8") as f:
        entry = json.load(f)["ngram"]
    data = open(os.path.join(tiny_bundle_dir, entry["file"]), "rb").read()
    assert entry["size"] == len(data) <= builder.DEFAULT_BUDGET
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["order"] == 3
    b = Bundle.open(tiny_bundle_dir)
    lm = b.ngram()
    train, _ = train_ids.load(tiny_model_dir)
    ref = builder.build(train, b.manifest.vocab_size, 3).model()
    np.testing.assert_array_equal(lm.probs([]), ref.probs([]))      # built from the training ids
    np.testing.assert_allclose(lm.probs([1, 2])[1:].sum(), 1.0, atol=1e-12)


@pytest.mark.tf
def test_a_model_folder_without_training_ids_exports_without_ngram(tiny_model_dir, tmp_path, caplog):
    from nextword.export.pipeline import build_ngram
    from nextword.runtime.tokenizer import Tokenizer
    old = str(tmp_path / "old-model")
    shutil.copytree(tiny_model_dir, old)
    os.remove(os.path.join(old, train_ids.FILE))
    tok = Tokenizer.load(os.path.join(old, "tokenizer.json"))
    assert build_ngram(old, tok, 3, builder.DEFAULT_BUDGET) == (None, [])
    assert "no n-gram" in caplog.text
    built, val_docs = build_ngram(tiny_model_dir, tok, 2, 10_000)
    assert built.info["order"] == 2 and len(built.data) <= 10_000
    assert val_docs == []       # the seed run holds no validation documents: no mixture share is fitted


@pytest.mark.tf
def test_export_cli_ngram_flags(tiny_model_dir, tmp_path):
    out = tmp_path / "b4"
    r = run_cli("nextword-export", tiny_model_dir, "--out", out, "--variants", "onnx-float32", "--quiet",
                "--ngram-order", "4", "--ngram-budget", "5K", timeout=600)
    assert r.returncode == 0, r.stderr
    entry = json.loads((out / "manifest.json").read_text())["ngram"]
    assert entry["order"] == 4 and entry["size"] <= 5000 and entry["details"]["budget"] == 5000
    assert entry["details"]["pruned"] and "n-gram: order 4" in r.stdout   # the seed's order-4 file is 5.7 KB unpruned
    assert Bundle.open(str(out)).ngram().order == 4
    r = run_cli("nextword-export", tiny_model_dir, "--out", tmp_path / "none", "--variants", "onnx-float32",
                "--quiet", "--no-ngram", timeout=600)
    assert r.returncode == 0, r.stderr
    assert "ngram" not in json.loads((tmp_path / "none" / "manifest.json").read_text())
    assert not (tmp_path / "none" / "ngram.npz").exists() and Bundle.open(str(tmp_path / "none")).ngram() is None
    for flags in (["--ngram-budget", "0"], ["--ngram-budget", "lots"], ["--ngram-order", "6"]):
        r = run_cli("nextword-export", tiny_model_dir, "--out", tmp_path / "bad", *flags, timeout=120)
        assert r.returncode == 2 and "Traceback" not in r.stderr, (flags, r.stderr)
        assert not (tmp_path / "bad").exists()
