"""Reading typed, bounded fields out of untrusted JSON (a manifest): every miss is a BundleInvalid
that names the field, says what was expected and shows what was found, cut short (the value may be
megabytes)."""

from .errors import BundleInvalid
from .limits import MAX_INFO_DEPTH, MAX_INFO_VALUES, MAX_NAME_CHARS, MAX_NOTE_CHARS, MAX_PACKAGES


def short(value):
    """A value as a message shows it: its repr, cut to 60 characters (the value may be megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Said(str):
    """A description shown as is in a message (a count), not quoted like the value it stands for."""

    def __repr__(self):
        return str(self)


def _integer(v):
    return isinstance(v, int) and not isinstance(v, bool)


# kind -> (accepts(value), what a message says was expected)
KINDS = {
    "int": (_integer, "an integer"),
    "str": (lambda v: isinstance(v, str), "a string"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "list": (lambda v: isinstance(v, list), "a list"),
    "dict": (lambda v: isinstance(v, dict), "an object"),
    "num": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "int?": (lambda v: v is None or _integer(v), "an integer or null"),
    "str?": (lambda v: v is None or isinstance(v, str), "a string or null"),
}


class Check:
    """Reads typed fields out of untrusted JSON; every miss is a BundleInvalid naming the field."""

    def __init__(self, where):
        self.where = where

    def fail(self, path, expected, got):
        raise BundleInvalid(f"{self.where}: {path} must be {expected}, found {short(got)}; re-export the bundle")

    def obj(self, data, path):
        if not isinstance(data, dict):
            self.fail(path, "an object", data)
        return data

    def get(self, data, key, kind, path, optional=False, default=None):
        if key not in data:
            if optional:
                return default
            raise BundleInvalid(f"{self.where}: missing field {path}.{key}; re-export the bundle")
        value = data[key]
        accepts, expected = KINDS[kind]
        if not accepts(value):
            self.fail(f"{path}.{key}", expected, value)
        return value

    def name(self, value, path, what="a name"):
        """A name the runtime matches and prints: 1..MAX_NAME_CHARS printable characters."""
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_CHARS or not value.isprintable():
            self.fail(path, f"{what} of 1 to {MAX_NAME_CHARS} printable characters", value)
        return value

    def text(self, data, key, path, limit, optional=False):
        value = self.get(data, key, "str", path, optional=optional)
        if value is not None and len(value) > limit:
            self.fail(f"{path}.{key}", f"a string of at most {limit} characters", Said(f"{len(value)} characters"))
        return value

    def keyed(self, data, key, path, optional=True, limit=MAX_PACKAGES):
        """An object keyed by names, with at most `limit` entries."""
        value = self.get(data, key, "dict", path, optional=optional, default={})
        if len(value) > limit:
            self.fail(f"{path}.{key}", f"an object of at most {limit} entries", Said(f"{len(value)} entries"))
        for k in value:
            self.name(k, f"{path}.{key} key", "a package name")
        return value

    def info(self, value, path):
        """An informative JSON value (converter notes, parity figures): read by people, not by the
        runtime, so only bounded: depth, number of values, length of each string."""
        count, stack = 0, [(value, 1)]
        while stack:
            node, depth = stack.pop()
            count += 1
            if count > MAX_INFO_VALUES:
                self.fail(path, f"at most {MAX_INFO_VALUES} JSON values", Said("more"))
            if depth > MAX_INFO_DEPTH:
                self.fail(path, f"nested at most {MAX_INFO_DEPTH} levels deep", Said("deeper nesting"))
            if isinstance(node, str) and len(node) > MAX_NOTE_CHARS:
                self.fail(path, f"strings of at most {MAX_NOTE_CHARS} characters", Said(f"{len(node)} characters"))
            elif isinstance(node, dict):
                stack.extend((k, depth + 1) for k in node)
                stack.extend((v, depth + 1) for v in node.values())
            elif isinstance(node, list):
                stack.extend((v, depth + 1) for v in node)
        return value
