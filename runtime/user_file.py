"""A session's user file: what a UserModel learnt, on disk.

Format: UTF-8 JSON (ASCII-escaped), {"format": "nextword-user-model", "format_version": 1,
"tokenizer": {"lower", "filters", "split"}, "half_life_words", "learnt", "words": [[word, count]],
"bigrams": [[i, j, count]] (positions in words), "cache": [i], "forgotten": [word]}. Counts are decayed
counts at save time (finite, > 0, at most MAX_USER_COUNT).

Reading: a regular file of at most MAX_USER_FILE_BYTES bytes and MAX_USER_FILE_VALUES JSON values
(counted before json.loads, as runtime/bundle_files.load_json does), every field typed and bounded,
every word one word of the tokenizer as it writes it, learnt with the same tokenizer settings.
Anything else is UserFileInvalid (exit 2), raised before the session exists, so the predictor goes on
without it. A path that does not exist is an empty model (the file is created on the first save).

Writing (only on Session.save_user()): the JSON goes to a temporary file in the same folder
(mode 0600), is flushed and fsync'ed, then os.replace'd over the user file and the folder fsync'ed: a
crash or kill at any moment leaves the old file or the new one, never half of one (a stale temporary
file may stay behind; the next save removes it). A model whose file would pass the bounds is
pruned (lowest counts first) until it fits, so every file written can be read back. A user file
is never inside a bundle folder: a bundle is verified, shared and replaced whole."""

import glob
import json
import math
import os
import stat
import tempfile

from .bundle_files import json_values_bound
from .errors import InputError, UserFileInvalid
from .limits import (MAX_COUNT, MAX_USER_BIGRAMS, MAX_USER_CACHE, MAX_USER_COUNT, MAX_USER_FILE_BYTES,
                     MAX_USER_FILE_VALUES, MAX_USER_FORGOTTEN, MAX_USER_WORDS, MAX_WORD_CHARS)
from .terminal import escape
from .user_model import HALF_LIFE_WORDS

FORMAT = "nextword-user-model"
FORMAT_VERSION = 1
WRITE_CHUNK = 1 << 16


def check_path(path, bundle_path):
    """The user file's path as a str; InputError for a wrong type or a path inside the bundle folder."""
    if not isinstance(path, (str, os.PathLike)):
        raise InputError(f"user_file must be a path (str or os.PathLike), got {type(path).__name__}")
    path = os.fsdecode(path)
    if not path or "\0" in path:
        raise InputError("user_file must be a non-empty path without NUL characters")
    real = os.path.realpath(path)
    bundle = os.path.realpath(bundle_path)
    if os.path.commonpath([bundle, real]) == bundle:
        raise InputError(f"user_file {escape(path)} is inside the bundle folder {escape(bundle_path)}; a bundle is "
                         "verified and replaced whole: keep the user file elsewhere")
    return path


def _bad(path, what):
    return UserFileInvalid(f"user file {escape(path)}: {what}; the session was not opened (move the file away "
                           "to start learning afresh)")


def read(path):
    """The parsed JSON of the user file at `path`, or None when it does not exist."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _bad(path, f"cannot open it ({e.strerror or e})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):   # on the fd, before fdopen (which refuses folders with OSError)
        os.close(fd)
        raise _bad(path, "not a regular file")
    with os.fdopen(fd, "rb") as f:
        if st.st_size > MAX_USER_FILE_BYTES:
            raise _bad(path, f"{st.st_size} bytes, more than the {MAX_USER_FILE_BYTES} a user file may have")
        raw = f.read(MAX_USER_FILE_BYTES + 1)
    if len(raw) > MAX_USER_FILE_BYTES:
        raise _bad(path, f"more than the {MAX_USER_FILE_BYTES} bytes a user file may have")
    if json_values_bound(raw) > MAX_USER_FILE_VALUES:
        raise _bad(path, f"more than {MAX_USER_FILE_VALUES} JSON values")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(path, f"not valid JSON ({e})") from None


def _count(path, where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 < value <= MAX_USER_COUNT:
        raise _bad(path, f"{where} must be a number > 0 and at most {MAX_USER_COUNT:g}, found {str(value)[:40]}")
    return float(value)


def _list(path, data, key, limit):
    value = data.get(key, [])
    if not isinstance(value, list):
        raise _bad(path, f"{key} must be a list, found {type(value).__name__}")
    if len(value) > limit:
        raise _bad(path, f"{key} has {len(value)} entries, more than {limit}")
    return value


def _word(path, where, value, tokenizer):
    if not isinstance(value, str) or not 0 < len(value) <= MAX_WORD_CHARS or tokenizer.words(value) != [value]:
        raise _bad(path, f"{where} must be one word as the tokenizer writes it, found {escape(repr(value))[:60]}")
    return value


def load(path, model):
    """Fill `model` (a fresh UserModel) from the file at `path`; returns False when there is no file.
    UserFileInvalid for anything but a user file of this format learnt with the model's settings."""
    data = read(path)
    if data is None:
        return False
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise _bad(path, f"not a nextword user file (expected format {FORMAT!r})")
    version = data.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise _bad(path, f"format_version {str(version)[:20]} is not the {FORMAT_VERSION} this runtime reads")
    settings = data.get("tokenizer")
    if settings != model.settings:
        raise _bad(path, "learnt with other tokenizer settings (lower/filters/split) than this bundle's "
                   f"{model.settings!r}; a user file belongs to bundles that split words the same way")
    tokenizer = model.tokenizer
    raw_words = _list(path, data, "words", MAX_USER_WORDS)
    words, seen = [], set()
    for i, pair in enumerate(raw_words):
        if not isinstance(pair, list) or len(pair) != 2:
            raise _bad(path, f"words[{i}] must be a [word, count] pair")
        w = _word(path, f"words[{i}][0]", pair[0], tokenizer)
        if w in seen:
            raise _bad(path, f"words[{i}][0] repeats {escape(repr(w))[:60]}")
        seen.add(w)
        words.append((w, _count(path, f"words[{i}][1]", pair[1])))
    n = len(words)

    def position(where, v):
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise _bad(path, f"{where} must be a position in words (0..{n - 1}), found {str(v)[:40]}")
        return v
    bigrams = []
    for i, row in enumerate(_list(path, data, "bigrams", MAX_USER_BIGRAMS)):
        if not isinstance(row, list) or len(row) != 3:
            raise _bad(path, f"bigrams[{i}] must be an [i, j, count] triple")
        bigrams.append((position(f"bigrams[{i}][0]", row[0]), position(f"bigrams[{i}][1]", row[1]),
                        _count(path, f"bigrams[{i}][2]", row[2])))
    cache = [position(f"cache[{i}]", v) for i, v in enumerate(_list(path, data, "cache", MAX_USER_CACHE))]
    forgotten = [_word(path, f"forgotten[{i}]", v, tokenizer)
                 for i, v in enumerate(_list(path, data, "forgotten", MAX_USER_FORGOTTEN))]
    learnt = data.get("learnt", 0)
    if isinstance(learnt, bool) or not isinstance(learnt, int) or not 0 <= learnt <= MAX_COUNT:
        raise _bad(path, f"learnt must be an integer from 0 to {MAX_COUNT}, found {str(learnt)[:40]}")
    model.restore(words, bigrams, cache, forgotten, learnt)
    return True


def encode(model):
    """The file's bytes for `model`, pruning the model until they fit the reading bounds."""
    while True:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, "tokenizer": model.settings,
                "half_life_words": HALF_LIFE_WORDS}
        body.update(model.to_dict())
        raw = json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")
        if len(raw) <= MAX_USER_FILE_BYTES and json_values_bound(raw) <= MAX_USER_FILE_VALUES:
            return raw
        model.shrink()


def write_atomic(path, raw):
    """Replace the file at `path` by `raw`: temporary file (0600) in the same folder, fsync, rename."""
    folder = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise InputError(f"user file {escape(path)}: cannot write in {escape(folder)} ({e.strerror or e})") from None
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            for i in range(0, len(raw), WRITE_CHUNK):
                f.write(raw[i:i + WRITE_CHUNK])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise InputError(f"user file {escape(path)}: cannot write it ({e.strerror or e})") from None
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    for stale in glob.glob(os.path.join(glob.escape(folder), glob.escape(f".{base}.") + "*.tmp")):
        try:
            os.unlink(stale)
        except OSError:
            pass


def save(path, model):
    """Write `model` to `path` atomically (see the module docstring). Returns the bytes written."""
    raw = encode(model)
    write_atomic(path, raw)
    return len(raw)
