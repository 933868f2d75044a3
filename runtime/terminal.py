"""Text for a terminal: what nextword-predict prints is escaped so that nothing a bundle's vocabulary
or a user's input holds can drive the terminal.

A vocabulary word may hold an escape sequence ("\\x1b[2J" clears the screen), a carriage return
that overwrites the line, a bell, C1 controls (U+0080-U+009F, U+009B is a CSI on some terminals),
bidi overrides that reorder what follows (U+202E), line separators, or lone surrogates that an
encoder refuses. Each such character is shown as a Python-style escape: \\t \\n \\r, \\xNN below
U+0100, \\uNNNN above. Everything else (accents, CJK, emoji) is printed as is. A backslash is
not doubled, so a word that literally contains the four characters \\x1b looks like an escaped
ESC: readable output was preferred to an unambiguous one. JSON output is escaped the same way,
as \\uNNNN (valid JSON; json.dumps already escapes C0 controls, not C1, bidi or separators)."""

import codecs
import json
import math
import re
import sys

from .errors import ModelError

# C0 controls, DEL, C1 controls; lone surrogates; line/paragraph separators; the bidi controls
# (arabic letter mark, LRM/RLM, embeddings and overrides LRE..RLO, isolates LRI..PDI).
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# what json.dumps(ensure_ascii=False) leaves raw: it escapes C0 controls inside strings itself, and a
# raw line break in its output is indentation (indent=2), not content
_JSON_UNSAFE = re.compile("[\x7f-\x9f\ud800-\udfff\u2028\u2029\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape_char(match):
    c = match.group()
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def escape(text):
    """`text` with every character that can drive a terminal shown as an escape (see module doc)."""
    text = str(text)
    return UNSAFE.sub(_escape_char, text) if UNSAFE.search(text) else text


def _json_escape_char(match):
    return f"\\u{ord(match.group()):04x}"


def to_json(obj, ascii_only=False, **kw):
    """One JSON text for `obj`, always valid: non-finite numbers are refused (json.dumps would print
    NaN, which no JSON reader takes) with ModelError, since only a misbehaving model produces them;
    C1 controls, bidi controls, separators and lone surrogates are written as \\uNNNN escapes.
    ascii_only: every non-ASCII character escaped (for a stdout whose encoding is not UTF-8)."""
    try:
        text = json.dumps(obj, ensure_ascii=ascii_only, allow_nan=False, **kw)
    except ValueError as e:   # "Out of range float values are not JSON compliant"
        raise ModelError(f"the model answered with a non-finite number (NaN or infinity): {_first_bad(obj)}") from e
    return text if ascii_only else _JSON_UNSAFE.sub(_json_escape_char, text)


def _first_bad(obj, path="answer"):
    """Where the first non-finite number is, for the error message."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return f"{path} = {obj}"
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) else ()
    for key, value in items:
        found = _first_bad(value, f"{path}[{key!r}]")
        if found:
            return found
    return ""


def check_finite(obj):
    """Raise ModelError if `obj` (numbers, lists, dicts) holds a NaN or infinity."""
    found = _first_bad(obj)
    if found:
        raise ModelError(f"the model answered with a non-finite number (NaN or infinity): {escape(found)}")


def utf8_stdout():
    """Whether stdout's encoding holds every character (else JSON is written ASCII-only)."""
    try:
        return codecs.lookup(sys.stdout.encoding).name == "utf-8"
    except (AttributeError, LookupError, TypeError):
        return False


def emit(result, line, as_json):
    """Print one answer: `result` as JSON (always valid: non-finite numbers are a ModelError,
    non-ASCII escaped when stdout is not UTF-8) or the plain `line` with its controls escaped."""
    if as_json:
        text = to_json(result, ascii_only=not utf8_stdout())
    else:
        check_finite(result)
        text = escape(line)
    print(text, flush=True)
