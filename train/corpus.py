"""Reading a corpus (files, several files or a folder of .txt) into documents, with errors that say
which file and where. A document is a line (the seed's way) or a blank-line paragraph (prose)."""

import glob
import hashlib
import os
from dataclasses import dataclass, field

from nextword.runtime.errors import InputError

SEED_LINES = (
    "hello how are you\n"
    "hello how is your day\n"
    "hello how are your friends\n"
    "hello what are you doing\n"
)
UNITS = ("line", "paragraph")


class CorpusError(InputError):
    """The corpus cannot be read or holds too little text to train on."""


@dataclass
class Corpus:
    documents: list
    unit: str
    files: list = field(default_factory=list)     # [{"path", "bytes", "sha256"}]
    sha256: str = ""
    size_bytes: int = 0
    name: str = "seed"


def corpus_files(paths):
    """Expand files, folders (their *.txt, sorted, recursively) and glob patterns (quoted on a shell:
    `'books/**/*.txt'`; their matches sorted) into a list of files, in the order given."""
    files = []
    for p in paths:
        p = os.fspath(p)
        if glob.has_magic(p) and not os.path.exists(p):
            files += _matches(p)
        elif os.path.isdir(p):
            found = []
            try:
                for root, dirs, names in os.walk(p, onerror=_raise):
                    dirs.sort()
                    found += [os.path.join(root, n) for n in sorted(names) if n.endswith(".txt")]
            except PermissionError as e:
                raise CorpusError(f"cannot read folder {e.filename}: permission denied") from None
            except OSError as e:
                raise CorpusError(f"cannot read folder {getattr(e, 'filename', p)}: {e.strerror}") from None
            if not found:
                raise CorpusError(f"folder {p} holds no .txt files")
            files += found
        elif os.path.exists(p):
            files.append(p)
        else:
            raise CorpusError(f"corpus path {p} does not exist")
    return files


def _matches(pattern):
    """The files a glob pattern names: matched files, and the *.txt of matched folders."""
    matches = sorted(glob.glob(pattern, recursive=True))
    files = []
    for m in matches:
        if os.path.isdir(m):
            try:
                files += corpus_files([m])
            except CorpusError:
                continue     # a folder the pattern also matched, without .txt files: not an error alone
        else:
            files.append(m)
    if not files:
        raise CorpusError(f"corpus pattern {pattern!r} matches no file"
                          + (f" (it matches {len(matches)} folder(s) without .txt files)" if matches else ""))
    return files


def _raise(err):
    raise err


def open_file(path):
    """A corpus file opened for reading bytes; CorpusError naming it when it cannot be."""
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise CorpusError(f"corpus file {path} disappeared while the corpus was being read") from None
    except IsADirectoryError:
        raise CorpusError(f"{path} is a folder, expected a text file") from None
    except PermissionError:
        raise CorpusError(f"cannot read {path}: permission denied") from None
    except OSError as e:
        raise CorpusError(f"cannot read {path}: {e.strerror}") from None


def read_text(path):
    """A file's text: strict UTF-8 (a BOM is dropped), no NUL bytes; errors name the file and offset."""
    with open_file(path) as f:
        try:
            data = f.read()
        except OSError as e:
            raise CorpusError(f"cannot read {path}: {e.strerror}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise CorpusError(f"{path} holds a NUL byte at offset {nul}: it looks binary, not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CorpusError(f"{path} is not UTF-8: byte 0x{data[e.start]:02x} at offset {e.start} "
                          f"({e.reason}); convert it, e.g. iconv -f latin1 -t utf-8") from None
    return data, text.lstrip("\ufeff")


def split_documents(text, unit):
    """line: every non-blank line is a document. paragraph: blank lines separate documents and the
    lines of one paragraph are joined with spaces (for hard-wrapped prose)."""
    return list(split_lines(text.splitlines(), unit))


def split_lines(lines, unit, max_chars=None, name="text"):
    """split_documents over an iterable of lines (without their line breaks), one document at a time:
    a streamed file (train.sources) gets exactly the documents its whole text would. With max_chars,
    a document longer than that is a CorpusError naming `name` and the line it starts on (memory
    stays bounded by one document)."""
    if unit not in UNITS:
        raise CorpusError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if unit == "line":
        for number, line in enumerate(lines, 1):
            if line.strip():
                if max_chars is not None and len(line) > max_chars:
                    raise _too_long(name, number, max_chars, "break the line")
                yield line
        return
    current, size, first = [], 0, 0
    for number, line in enumerate(lines, 1):
        if line.strip():
            if not current:
                first = number
            current.append(line.strip())
            size += len(current[-1]) + 1
            if max_chars is not None and size - 1 > max_chars:
                raise _too_long(name, first, max_chars, "split it with blank lines or use --unit line")
        elif current:
            yield " ".join(current)
            current, size = [], 0
    if current:
        yield " ".join(current)


def _too_long(name, line, max_chars, hint):
    return CorpusError(f"{name}: the document starting at line {line} is longer than {max_chars} characters "
                       f"(the bound on one document); {hint}")


def read_corpus(paths=None, unit="line"):
    """Documents of the given paths, or of the four seed lines when `paths` is empty."""
    if unit not in UNITS:
        raise CorpusError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if not paths:
        data = SEED_LINES.encode()
        return Corpus(split_documents(SEED_LINES, unit), unit, [{"path": "<seed>", "bytes": len(data),
                      "sha256": hashlib.sha256(data).hexdigest()}], hashlib.sha256(data).hexdigest(), len(data),
                      corpus_name(paths))
    whole = hashlib.sha256()
    docs, files, size = [], [], 0
    for path in corpus_files(paths):
        data, text = read_text(path)
        whole.update(hashlib.sha256(data).digest())
        files.append({"path": os.path.abspath(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
        size += len(data)
        docs += split_documents(text, unit)
    if not docs:
        raise CorpusError(f"the corpus ({', '.join(map(str, paths))}) is empty: no non-blank text")
    return Corpus(docs, unit, files, whole.hexdigest(), size, corpus_name(paths))


def corpus_name(paths):
    """The corpus' short name, from its first path: books/pp.txt -> pp; no paths: seed."""
    if not paths:
        return "seed"
    first = os.path.basename(os.path.normpath(os.fspath(paths[0])))
    return os.path.splitext(first)[0] or "corpus"
