"""Display forms: how a person expects to see a word the tokenizer lower-cased ("i" -> "I",
"elizabeth" -> "Elizabeth", "mr" -> "Mr.") and which words are abbreviations (a period after them
does not end a sentence). Read from a bundle's optional lexicon.json (written by nextword-train,
copied by nextword-export):

    {"format": "nextword-lexicon", "format_version": 1,
     "forms": [[word, display], ...], "abbreviations": [word, ...]}

The file is untrusted like every bundle file: its size and JSON values are bounded before parsing
(runtime/limits.py), every word must be one of the tokenizer's words, and a display form may only
change the case of the word's letters (plus one trailing "." for an abbreviation), so a crafted
lexicon cannot make a suggestion show text the vocabulary does not hold. Anything else is a
BundleInvalid naming the field. Words without a form are shown as they are."""

from .bundle_files import load_json
from .errors import BundleInvalid, UnsupportedVersion
from .json_fields import short
from .limits import MAX_LEXICON_VALUES, MAX_WORD_CHARS

FORMAT = "nextword-lexicon"
FORMAT_VERSION = 1
WHERE = "lexicon.json"


def _fail(path, expected, got):
    raise BundleInvalid(f"{WHERE}: {path} must be {expected}, found {short(got)}; re-export the bundle")


def consistent(word, display, abbreviation):
    """Whether `display` is `word` with only its letters' case changed (and, for an abbreviation,
    one trailing period added)."""
    base = display
    if abbreviation and display.endswith(".") and len(display) > 1 and not word.endswith("."):
        base = display[:-1]
    return len(base) == len(word) and base.lower() == word.lower()


class Lexicon:
    """word -> display form, and the set of abbreviations. An empty Lexicon shows every word as is."""

    def __init__(self, forms=None, abbreviations=()):
        self.forms = dict(forms or {})
        self.abbreviations = frozenset(abbreviations)

    @classmethod
    def empty(cls):
        return cls()

    def __len__(self):
        return len(self.forms)

    def display(self, word):
        """How `word` (as the tokenizer writes it) is shown to a person."""
        return self.forms.get(word, word)

    def is_abbreviation(self, word):
        """Whether a period after `word` is part of it (Mr., Dr.) rather than a sentence end."""
        return word in self.abbreviations

    @classmethod
    def from_json(cls, raw, tokenizer):
        """Validate lexicon.json (bytes) against `tokenizer` (whose words it must name)."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if not isinstance(raw, (bytes, bytearray)):
            raise BundleInvalid(f"{WHERE}: expected JSON text, got {type(raw).__name__}")
        data = load_json(bytes(raw), MAX_LEXICON_VALUES, WHERE)
        if not isinstance(data, dict):
            _fail("the file", "a JSON object", data)
        if data.get("format") != FORMAT:
            _fail("format", repr(FORMAT), data.get("format"))
        version = data.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int):
            _fail("format_version", "an integer", version)
        if version != FORMAT_VERSION:
            raise UnsupportedVersion(f"{WHERE}: format_version {version} is not supported (this runtime reads "
                                     f"{FORMAT_VERSION}); " + ("upgrade nextword" if version > FORMAT_VERSION
                                                               else "re-export the bundle"))
        known = tokenizer.word_counts
        abbreviations = data.get("abbreviations", [])
        if not isinstance(abbreviations, list):
            _fail("abbreviations", "a list of words", abbreviations)
        abbrev = set()
        for i, word in enumerate(abbreviations):
            if not isinstance(word, str) or word not in known:
                _fail(f"abbreviations[{i}]", "a word of the vocabulary", word)
            if word in abbrev:
                _fail(f"abbreviations[{i}]", "a word not listed before", word)
            abbrev.add(word)
        forms_in = data.get("forms", [])
        if not isinstance(forms_in, list):
            _fail("forms", "a list of [word, display] pairs", forms_in)
        forms = {}
        for i, pair in enumerate(forms_in):
            if (not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str)
                    or not isinstance(pair[1], str)):
                _fail(f"forms[{i}]", "a [word, display] pair of strings", pair)
            word, display = pair
            if word not in known:
                _fail(f"forms[{i}][0]", "a word of the vocabulary", word)
            if word in forms:
                _fail(f"forms[{i}][0]", "a word not listed before", word)
            if len(display) > MAX_WORD_CHARS + 1 or not consistent(word, display, word in abbrev):
                _fail(f"forms[{i}][1]", f"the word {short(word)} with only its letters' case changed "
                      "(and a trailing '.' for an abbreviation)", display)
            forms[word] = display
        return cls(forms, abbrev)
