"""The resume folder (<out>.resume): what an interrupted training needs to go on from its last
finished epoch, replaced atomically after every epoch, removed once the model folder is written.

It holds numbers only: state.json (loop state, the run's settings, the corpus hash) and three .npz
files of plain arrays (the training model's variables, dropout seeds included; the optimizer's
variables, step count and learning rate included; the weights kept for the end). They are read with
allow_pickle=False and every array must have the shape and dtype the rebuilt model expects, its
size checked before it is read."""

import json
import os
import zipfile

import numpy as np

from nextword.runtime.errors import InputError

from .atomic import AtomicFolder

FORMAT, FORMAT_VERSION = "nextword-train-resume", 1
STATE_FILE, VARIABLES_FILE, OPTIMIZER_FILE, KEPT_FILE = "state.json", "variables.npz", "optimizer.npz", "kept.npz"
MAX_STATE_BYTES = 64 << 20     # state.json: the history of ~100,000 epochs; a real one is a few KB
NPY_HEADER_SLACK = 4096        # bytes an .npy entry may hold beyond its array's data (its header)
# settings that may differ on --resume: a new epoch budget continues the run further
MAY_DIFFER = ("epochs", "corpus")   # corpus: the paths may be spelled differently; its sha256 is compared


def resume_folder(out):
    """Beside the model folder, not in it: the model folder only appears when training ends."""
    return os.path.abspath(out) + ".resume"


def _save_arrays(path, arrays):
    with open(path, "wb") as f:
        np.savez(f, *arrays)


def save(folder, model, kept, loop, meta):
    """Replace `folder` with this epoch's state (loop: a JSON-able dict; meta: what must match on resume)."""
    with AtomicFolder(folder, force=True) as tmp:
        _save_arrays(os.path.join(tmp, VARIABLES_FILE), [v.numpy() for v in model.variables])
        _save_arrays(os.path.join(tmp, OPTIMIZER_FILE), [v.numpy() for v in model.optimizer.variables])
        if kept is not None:
            _save_arrays(os.path.join(tmp, KEPT_FILE), kept)
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump({"format": FORMAT, "format_version": FORMAT_VERSION, "loop": loop, **meta}, f)


class Resume:
    """A resume folder read and checked against this run: .loop (dict), .restore(model) -> kept or None."""

    def __init__(self, folder, meta):
        self.folder = folder
        state = _read_state(folder)
        _check_meta(folder, state, meta)
        self.loop = state["loop"]
        if not isinstance(self.loop, dict):
            raise damaged(folder, "its loop state is not an object")

    def restore(self, model):
        """Load every variable into `model` (built and compiled like the interrupted run's); returns the
        kept weights (a list matching model.weights) or None."""
        _assign(self.folder, VARIABLES_FILE, model.variables)
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        _assign(self.folder, OPTIMIZER_FILE, model.optimizer.variables)
        if not os.path.exists(os.path.join(self.folder, KEPT_FILE)):
            return None
        return _read_arrays(self.folder, KEPT_FILE, [(tuple(w.shape), np.dtype(w.dtype)) for w in model.weights])


def damaged(folder, what):
    return InputError(f"--resume: {folder} {what}; it is damaged or from another version: start over without --resume")


def _read_state(folder):
    path = os.path.join(folder, STATE_FILE)
    if not os.path.isdir(folder):
        raise InputError(f"--resume: there is no {folder} to continue from (it is written after every finished "
                         "epoch of a run with --corpus, and removed when the run completes)")
    try:
        size = os.path.getsize(path)
        if size > MAX_STATE_BYTES:
            raise damaged(folder, f"has a {STATE_FILE} of {size:,} bytes (at most {MAX_STATE_BYTES:,})")
        with open(path, "rb") as f:
            state = json.loads(f.read().decode("utf-8"))
    except InputError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise damaged(folder, f"has no readable {STATE_FILE} ({type(e).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT or state.get("format_version") != FORMAT_VERSION:
        raise damaged(folder, f"is not a {FORMAT} v{FORMAT_VERSION} folder")
    return state


def _check_meta(folder, state, meta):
    for key, value in meta.items():
        if key == "config":
            saved = state.get("config")
            if not isinstance(saved, dict):
                raise damaged(folder, "records no settings")
            for name, v in value.items():
                if name not in MAY_DIFFER and saved.get(name) != v:
                    raise InputError(f"--resume: the interrupted run used {name}={saved.get(name)!r}, this one "
                                     f"{name}={v!r}; give the same corpus and flags, or start over without --resume")
        elif state.get(key) != value:
            raise InputError(f"--resume: the interrupted run had {key} {state.get(key)!r}, this one {value!r}; "
                             "give the same corpus and flags, or start over without --resume")


def _read_arrays(folder, name, expected):
    """The arrays of an .npz, each checked against (shape, dtype) before it is read."""
    path = os.path.join(folder, name)
    try:
        with zipfile.ZipFile(path) as z:
            entries = z.infolist()
            if len(entries) != len(expected):
                raise damaged(folder, f"has {len(entries)} arrays in {name} where the model has {len(expected)}")
            for i, (shape, dtype) in enumerate(expected):
                info = z.getinfo(f"arr_{i}.npy")
                if info.file_size > int(np.prod(shape, dtype=np.int64)) * dtype.itemsize + NPY_HEADER_SLACK:
                    raise damaged(folder, f"has an array {i} in {name} larger than the model's {shape}")
        arrays = []
        with np.load(path, allow_pickle=False) as data:
            for i, (shape, dtype) in enumerate(expected):
                a = data[f"arr_{i}"]
                if a.shape != shape or a.dtype != dtype:
                    raise damaged(folder, f"has array {i} of {name} as {a.dtype}{list(a.shape)} where the model "
                                           f"has {dtype}{list(shape)} (other settings?)")
                arrays.append(a)
        return arrays
    except InputError:
        raise
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise damaged(folder, f"has no readable {name} ({type(e).__name__})") from None


def _assign(folder, name, variables):
    arrays = _read_arrays(folder, name, [(tuple(v.shape), np.dtype(v.dtype)) for v in variables])
    for v, a in zip(variables, arrays):
        v.assign(a)
