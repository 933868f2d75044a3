"""Display forms: how a person expects to see each word the tokenizer lower-cases ("I", "Elizabeth",
"Mr."), learnt from the raw training text in one pass and kept in lexicon.json (the bundle's
optional lexicon file; the runtime reads it with nextword.runtime.lexicon).

The rules, over the documents the tokenizer was fitted on:
- Tokens: the raw text split on whitespace. A token's *surface* is the token with leading and
  trailing filter characters (the tokenizer's `filters`) stripped, so `“Well,` -> `“Well` when the
  curly quote is not a filter (it then belongs to the word, as the tokenizer sees it) and `_Mr._` ->
  `Mr`. A surface counts only if the tokenizer makes exactly one word of it and that word is the
  surface lower-cased (the surface itself when lower=False): "well--said" (two words) and a
  glued-on punctuation mark inside a token are skipped, never guessed at.
- Sentence starts: an occurrence is sentence-initial at the start of a document, or after a token
  that ends a sentence: its last character that is a letter, a digit or one of . ! ? is one of
  . ! ? (so `said.”`, `“Yes!”` and `end._` end a sentence, `side,”` does not), unless that token is
  an abbreviation ("Mr. Darcy": "Darcy" is not sentence-initial).
- Display form: the most frequent surface among the word's NON-sentence-initial occurrences (ties:
  the word itself, then the surface seen first); with no such occurrence, the word itself. So "I",
  "Elizabeth", "London" come out capitalised and "The" (capital only at sentence starts) does not.
- Abbreviations: a word of at most MAX_ABBREVIATION_LETTERS letters (letters only), seen at least
  MIN_ABBREVIATION_COUNT times, whose token ends with "." (same last-character rule) in at least
  ABBREVIATION_SHARE of its occurrences: "mr", "mrs", "dr", "st". Its display form is its casing
  plus a trailing ".", and a period after it does not end a sentence.
- lower=False: the tokenizer keeps case, so a word is already displayed as written; only
  abbreviations get a form (their trailing ".").
- Numbers and punctuation: digits have no case and stay exactly as written ("1811" has no form);
  punctuation is never part of a display form except an abbreviation's one trailing "." (characters
  that are not filters, like an apostrophe in "Elizabeth's", are part of the word and keep their
  place).
- Only words of the tokenizer's word_counts whose display differs from the word are written, sorted
  by word: `display.rstrip('.').lower() == word` for every form when lower=True.

Work: one pass over the documents (a dict update per token). Occurrences right after a "." token
whose word could be an abbreviation are held per that word until the pass ends and the
abbreviations are known; memory stays O(distinct surfaces)."""

import json
import logging
from collections import Counter
from dataclasses import dataclass, field

from nextword.runtime.lexicon import FORMAT, FORMAT_VERSION, Lexicon, consistent

log = logging.getLogger(__name__)

FILE = "lexicon.json"
MAX_ABBREVIATION_LETTERS = 4     # mr, mrs, dr, st, esq, capt, col; longer words ending a sentence are words
MIN_ABBREVIATION_COUNT = 3       # one or two dotted occurrences are as likely sentence ends
ABBREVIATION_SHARE = 0.9         # of the word's occurrences end in "."; "me." or "it." end sentences far less often
SENTENCE_MARKS = ".!?"


@dataclass
class DisplayForms:
    """forms: {word: display} (only displays that differ from the word); abbreviations: sorted words."""
    forms: dict = field(default_factory=dict)
    abbreviations: list = field(default_factory=list)

    def to_dict(self):
        return {"format": FORMAT, "format_version": FORMAT_VERSION,
                "forms": [[w, self.forms[w]] for w in sorted(self.forms)],
                "abbreviations": sorted(self.abbreviations)}

    def to_json(self):
        return json.dumps(self.to_dict(), ensure_ascii=False)

    def save(self, path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.to_json())

    @classmethod
    def read(cls, raw, tokenizer):
        """lexicon.json bytes, checked by the runtime's one reader (nextword.runtime.lexicon) against the
        tokenizer of the same run: BundleInvalid/UnsupportedVersion name the field that is wrong."""
        lexicon = Lexicon.from_json(raw, tokenizer)
        return cls(dict(lexicon.forms), sorted(lexicon.abbreviations))


def sentence_mark(token):
    """The . ! or ? that ends `token`, looking past closing quotes, brackets and other marks; '' if none."""
    for c in reversed(token):
        if c in SENTENCE_MARKS:
            return c
        if c.isalnum():
            return ""
    return ""


def _could_abbreviate(word):
    return word is not None and len(word) <= MAX_ABBREVIATION_LETTERS and word.isalpha()


def build(documents, tokenizer):
    """DisplayForms of the raw `documents` (str each) under `tokenizer`'s settings (filters, lower,
    split) and words (its word_counts: forms of other words are dropped). One pass; see the module
    docstring for the rules."""
    filters, lower = tokenizer.filters, tokenizer.lower
    surfaces = {}        # word -> Counter of surfaces at non-initial occurrences
    held = {}            # word w that may abbreviate -> Counter of (word, surface) right after "w."
    seen, dotted = Counter(), Counter()
    for doc in documents:
        state = True     # True: next occurrence is sentence-initial; False: it is not; a word: after "word."
        for token in doc.split():
            surface = token.strip(filters)
            word = None
            if surface:
                words = tokenizer.words(surface)
                if len(words) == 1 and words[0] == (surface.lower() if lower else surface):
                    word = words[0]
            mark = sentence_mark(token)
            if word is not None:
                seen[word] += 1
                if mark == ".":
                    dotted[word] += 1
                if state is False:
                    counts = surfaces.get(word)
                    if counts is None:
                        counts = surfaces[word] = Counter()
                    counts[surface] += 1
                elif state is not True:
                    held.setdefault(state, Counter())[(word, surface)] += 1
            if mark == ".":
                state = word if _could_abbreviate(word) else True
            else:
                state = bool(mark)
    abbreviations = sorted(w for w, n in seen.items()
                           if _could_abbreviate(w) and n >= MIN_ABBREVIATION_COUNT
                           and dotted[w] >= ABBREVIATION_SHARE * n and w in tokenizer.word_counts)
    for w in abbreviations:    # what followed "Mr." was not sentence-initial after all
        for (word, surface), n in held.get(w, {}).items():
            surfaces.setdefault(word, Counter())[surface] += n
    dotted_set, forms = set(abbreviations), {}
    for word, counts in surfaces.items():
        if word not in tokenizer.word_counts:
            continue
        display = max(counts, key=lambda s: (counts[s], s == word)) if lower else word
        if word in dotted_set:
            display += "."
        if display != word and consistent(word, display, word in dotted_set):
            forms[word] = display
    for word in dotted_set.difference(forms):   # only ever seen sentence-initial: its own casing, dotted
        forms[word] = word + "."
    log.info("display forms: %d words, abbreviations %s", len(forms), ", ".join(abbreviations) or "none")
    return DisplayForms(forms, abbreviations)

