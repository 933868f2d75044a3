"""Presage (0.9.1, the predictive text engine behind several on-screen keyboards) measured with its
own tools, trained on the same text as the model: `text2ngram` builds the n-gram database and
`presage_simulator` types the held-out text and prints its keystroke savings rate.

Both tools are optional: `find_tools()` returns None when either is missing from PATH and the
benchmark goes on with a note.

Same words for every system. Presage splits on its own separator characters (the apostrophe is one)
and counts keys in bytes, so it is never given raw text: it gets the bundle tokenizer's words (the
sequence nextword and the n-gram are scored on), joined by single spaces, one held-out document per
line, no trailing newline (a final newline would add an empty word that costs a key). Characters of
those words other than ASCII letters and digits (the apostrophe of "elizabeth's", accented letters)
are written as one byte each, from the Latin-1 lowercase letters 0xDF..0xFF (but 0xF7), which
Presage counts as word characters, so that "elizabeth's" stays one word of 11 keys; only a 32nd and
later distinct such character falls back to UTF-8 (more bytes: `keys_match` then reports a
mismatch). (Bytes 0xA1..0xBF, neither word characters nor separators for Presage, made its
user-learning predictor fail an assertion, `numerator <= denominator`, after a few hundred words.)
SQLite's LIKE reads each of these lone bytes as U+FFFD, so a typed prefix that holds one also lists
words with another such character there: a few useless candidates, never a missed one. Training: every training document is its own file for text2ngram (-n 1, 2, 3, sqlite,
no -l: the words are already as the tokenizer writes them), so no n-gram spans two documents.

Two set-ups, each a config written from /etc/presage.xml's structure:
- "presage-ngram": DefaultSmoothedNgramPredictor alone (deltas 0.01 0.1 0.89: a smoothed trigram),
  no learning;
- "presage-default": the default predictors (abbreviation expansion, that smoothed n-gram, a
  user-learning n-gram, recency) with online learning, the user database a fresh empty file per run.
Both set SUGGESTIONS = N and REPEAT_SUGGESTIONS = yes (shipped: no, which hides the words already
shown for the current word and shows the next best instead): the issue's accounting looks at the N
best words after each letter, as our simulator does for the other rows (config_xml(repeat=False)
gives the shipped behaviour, for comparison).

Accounting (presage_simulator's source, src/lib/simulator/simulator.cpp): the same as issue 14's
except one detail: `ks` starts at 1, so its KSR counts one key more than ours over the whole text
(1 / kn less). It also books a selection made after typing letters under ki and only selections
before the first letter under ks; the sum ki + ks - 1 equals our keys_typed + keys_selected. Both
KSRs are reported. Unlike the model and the n-gram, Presage's context runs on across document
(line) ends: the simulator feeds one stream.
"""

import logging
import os
import re
import shutil
import subprocess
import tempfile
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

TOOLS = ("text2ngram", "presage_simulator")
SETUPS = ("presage-ngram", "presage-default")
SPARE_BYTES = bytes(b for b in range(0xDF, 0x100) if b != 0xF7)   # 32 Latin-1 letters: word characters for Presage
TIMEOUT = 3600


def find_tools(path=None):
    """{"text2ngram": path, "presage_simulator": path} or None when either is not on PATH."""
    found = {t: shutil.which(t, path=path) for t in TOOLS}
    return found if all(found.values()) else None


class Encoder:
    """Words -> bytes Presage reads as one word with one byte per character (see module docstring)."""

    def __init__(self, documents):
        counts = {}
        for d in documents:
            for w in d:
                for c in w:
                    if not (c.isascii() and c.isalnum()):
                        counts[c] = counts.get(c, 0) + 1
        ranked = sorted(counts, key=lambda c: (-counts[c], c))
        self.table = {c: SPARE_BYTES[i:i + 1] for i, c in enumerate(ranked[:len(SPARE_BYTES)])}
        self.overflow = ranked[len(SPARE_BYTES):]

    def word(self, w):
        if w.isascii() and w.isalnum():
            return w.encode("ascii")
        return b"".join(self.table.get(c) or c.encode("utf-8") for c in w)

    def line(self, doc):
        return b" ".join(self.word(w) for w in doc)


def build_database(tools, train_docs, encoder, folder, timeout=TIMEOUT):
    """text2ngram -n 1, 2, 3 over one file per training document -> folder/ngram.db."""
    docs_dir = os.path.join(folder, "train")
    os.makedirs(docs_dir, exist_ok=True)
    files = []
    for i, doc in enumerate(d for d in train_docs if d):
        path = os.path.join(docs_dir, f"{i}.txt")
        with open(path, "wb") as f:
            f.write(encoder.line(doc))
        files.append(f"train/{i}.txt")
    db = os.path.join(folder, "ngram.db")
    for n in (1, 2, 3):
        subprocess.run([tools["text2ngram"], "-n", str(n), "-f", "sqlite", "-o", "ngram.db", *files], cwd=folder,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
    return db


def config_xml(setup, db, n, user_db=None, repeat=True):
    """A presage config for one set-up with N suggestions (the structure of /etc/presage.xml).
    repeat=True sets REPEAT_SUGGESTIONS (shipped "no") so that after each letter Presage shows its N
    best words, as the issue's accounting and our simulator do; with "no" it leaves out the words
    it already showed for this word and fills the list with the next ones."""
    if setup == "presage-ngram":
        predictors, learning = "DefaultSmoothedNgramPredictor", "no"
    elif setup == "presage-default":
        predictors, learning = ("DefaultAbbreviationExpansionPredictor DefaultSmoothedNgramPredictor "
                                "UserSmoothedNgramPredictor DefaultRecencyPredictor"), "yes"
    else:
        raise ValueError(f"unknown set-up {setup!r}")
    user = escape(user_db or os.path.join(os.path.dirname(db), "user-unused.db"))
    return f"""<?xml version="1.0" encoding="UTF-8" standalone="no" ?>
<Presage>
  <PredictorRegistry><LOGGER>ERROR</LOGGER><PREDICTORS>{predictors}</PREDICTORS></PredictorRegistry>
  <ContextTracker><LOGGER>ERROR</LOGGER><SLIDING_WINDOW_SIZE>80</SLIDING_WINDOW_SIZE>
    <LOWERCASE_MODE>no</LOWERCASE_MODE><ONLINE_LEARNING>{learning}</ONLINE_LEARNING></ContextTracker>
  <Selector><LOGGER>ERROR</LOGGER><SUGGESTIONS>{int(n)}</SUGGESTIONS><REPEAT_SUGGESTIONS>{"yes" if repeat else "no"}</REPEAT_SUGGESTIONS>
    <GREEDY_SUGGESTION_THRESHOLD>0</GREEDY_SUGGESTION_THRESHOLD></Selector>
  <PredictorActivator><LOGGER>ERROR</LOGGER><PREDICT_TIME>1000</PREDICT_TIME>
    <MAX_PARTIAL_PREDICTION_SIZE>60</MAX_PARTIAL_PREDICTION_SIZE><COMBINATION_POLICY>Meritocracy</COMBINATION_POLICY>
  </PredictorActivator>
  <ProfileManager><LOGGER>ERROR</LOGGER><AUTOPERSIST>false</AUTOPERSIST></ProfileManager>
  <Predictors>
    <DefaultSmoothedNgramPredictor><PREDICTOR>SmoothedNgramPredictor</PREDICTOR><LOGGER>ERROR</LOGGER>
      <DBFILENAME>{escape(db)}</DBFILENAME><DELTAS>0.01 0.1 0.89</DELTAS><LEARN>false</LEARN>
      <DatabaseConnector><LOGGER>ERROR</LOGGER></DatabaseConnector></DefaultSmoothedNgramPredictor>
    <UserSmoothedNgramPredictor><PREDICTOR>SmoothedNgramPredictor</PREDICTOR><LOGGER>ERROR</LOGGER>
      <DBFILENAME>{user}</DBFILENAME><DELTAS>0.01 0.1 0.89</DELTAS><LEARN>true</LEARN>
      <DatabaseConnector><LOGGER>ERROR</LOGGER></DatabaseConnector></UserSmoothedNgramPredictor>
    <DefaultRecencyPredictor><PREDICTOR>RecencyPredictor</PREDICTOR><LOGGER>ERROR</LOGGER>
      <LAMBDA>1</LAMBDA><N_0>1</N_0><CUTOFF_THRESHOLD>20</CUTOFF_THRESHOLD></DefaultRecencyPredictor>
    <DefaultAbbreviationExpansionPredictor><PREDICTOR>AbbreviationExpansionPredictor</PREDICTOR>
      <LOGGER>ERROR</LOGGER><ABBREVIATIONS>/usr/share/presage/abbreviations_en.txt</ABBREVIATIONS>
    </DefaultAbbreviationExpansionPredictor>
  </Predictors>
</Presage>
"""


_FIELD = re.compile(rb"^(ki|ks|kn|KSR)\s*:\s*([-0-9.e+]+)\s*$", re.M)


def parse_result(stdout):
    """{"ki", "ks", "kn", "presage_ksr" (its own, a fraction), "ksr" (issue 14's: ks counted from 0),
    "words_suggested_before_first_letter"} from presage_simulator's output; ValueError when the
    summary is not there."""
    fields = {k.decode(): v for k, v in _FIELD.findall(stdout if isinstance(stdout, bytes) else stdout.encode())}
    if not all(k in fields for k in ("ki", "ks", "kn", "KSR")):
        raise ValueError("presage_simulator printed no ki/ks/kn/KSR summary: " + repr(stdout[-300:]))
    ki, ks, kn = int(fields["ki"]), int(fields["ks"]), int(fields["kn"])
    return {"ki": ki, "ks": ks, "kn": kn, "presage_ksr": float(fields["KSR"]) / 100,
            "ksr": 1 - (ki + ks - 1) / kn if kn else 0.0,
            "words_suggested_before_first_letter": ks - 1}   # ks counts only those selections, from 1


def simulate(tools, setup, db, test_path, n, folder, verbose=False, timeout=TIMEOUT, repeat=True, user_db=None):
    """One presage_simulator run; returns parse_result(...) (+ "stdout" bytes when verbose). The user
    database is a fresh file, or `user_db` as an earlier run left it (what that run learnt)."""
    if user_db is None:
        user_db = os.path.join(folder, f"user-{setup}-{n}.db")
        if os.path.exists(user_db):
            os.unlink(user_db)
    cfg = os.path.join(folder, f"{setup}-{n}.xml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(config_xml(setup, db, n, user_db, repeat))
    argv = [tools["presage_simulator"], "-c", cfg] + ([] if verbose else ["-q"]) + [test_path]
    proc = subprocess.run(argv, cwd=folder, capture_output=True, timeout=timeout,
                          env=dict(os.environ, HOME=folder))
    if proc.returncode != 0:
        raise RuntimeError(f"presage_simulator exited {proc.returncode}: {proc.stderr[-300:]!r}")
    out = parse_result(proc.stdout)
    if verbose:
        out["stdout"] = proc.stdout
    return out


def write_test(heldout_docs, encoder, path):
    """The held-out words, one document per line, no trailing newline."""
    with open(path, "wb") as f:
        f.write(b"\n".join(encoder.line(d) for d in heldout_docs if d))


def run(train_docs, heldout_docs, ns=(1, 3, 6), setups=SETUPS, tools=None, folder=None):
    """KSR of each set-up for each N: {"status": "ok", "rows": {setup: {N: result}}, ...}, or
    {"status": "absent", "note": ...} without the tools. Word lists in, as the tokenizer splits them."""
    tools = tools or find_tools()
    if tools is None:
        return {"status": "absent", "note": "Presage is not installed (text2ngram and presage_simulator not on PATH; "
                                            "apt-get install presage libpresage-data): no Presage rows"}
    keys_without = sum(len(w) + 1 for d in heldout_docs for w in d)
    encoder = Encoder(list(train_docs) + list(heldout_docs))
    with tempfile.TemporaryDirectory(prefix="nextword-presage-", dir=folder) as tmp:
        db = build_database(tools, train_docs, encoder, tmp)
        test = os.path.join(tmp, "heldout.txt")
        write_test(heldout_docs, encoder, test)
        rows = {}
        for setup in setups:
            rows[setup] = {}
            for n in ns:
                r = simulate(tools, setup, db, test, n, tmp)
                r["keys_match"] = r["kn"] == keys_without
                rows[setup][n] = r
                log.info("%s N=%d: KSR %.4f", setup, n, r["ksr"])
    out = {"status": "ok", "rows": rows, "tools": tools, "keys_without": keys_without,
           "overflow_characters": encoder.overflow}
    if any(not r["keys_match"] for s in rows.values() for r in s.values()):
        out["note"] = (f"Presage counted a different number of keys without prediction than the simulator "
                       f"({keys_without}): it split some words differently")
    return out


def run_learnt(train_docs, learn_docs, test_docs, n=6, tools=None, folder=None):
    """The learning section's Presage rows (bench/learning_bench.py), all typing `test_docs` at N = n:
    "presage-ngram"; "presage-default, learning as typed" (a fresh user database); "presage-default,
    first half learnt": its simulator first types `learn_docs` into a user database, then `test_docs`
    with that database (what it learnt from the user's earlier text)."""
    tools = tools or find_tools()
    if tools is None:
        return {"status": "absent", "note": "Presage is not installed (apt-get install presage libpresage-data): "
                                            "no Presage rows"}
    keys_without = sum(len(w) + 1 for d in test_docs for w in d)
    encoder = Encoder(list(train_docs) + list(learn_docs) + list(test_docs))
    with tempfile.TemporaryDirectory(prefix="nextword-presage-", dir=folder) as tmp:
        db = build_database(tools, train_docs, encoder, tmp)
        learn, test = os.path.join(tmp, "learn.txt"), os.path.join(tmp, "test.txt")
        write_test(learn_docs, encoder, learn)
        write_test(test_docs, encoder, test)
        rows = {"presage-ngram": simulate(tools, "presage-ngram", db, test, n, tmp),
                "presage-default, learning as typed": simulate(tools, "presage-default", db, test, n, tmp)}
        user_db = os.path.join(tmp, "user-learnt.db")
        simulate(tools, "presage-default", db, learn, n, tmp, user_db=user_db)
        rows["presage-default, first half learnt"] = simulate(tools, "presage-default", db, test, n, tmp,
                                                              user_db=user_db)
    for r in rows.values():
        r["keys_match"] = r["kn"] == keys_without
    out = {"status": "ok", "rows": rows, "keys_without": keys_without}
    if any(not r["keys_match"] for r in rows.values()):
        out["note"] = (f"Presage counted a different number of keys without prediction than the simulator "
                       f"({keys_without}): it split some words differently")
    return out


def parse_trace(stdout):
    """presage_simulator's verbose output -> [(target word, prefix, [suggestions shown])], one entry per
    prediction, in order. It prints the suggestions only up to the one that matched, so a list ends
    with the target when it was found. Bytes are decoded as Latin-1 (one character per byte)."""
    text = stdout.decode("latin-1") if isinstance(stdout, bytes) else stdout
    lines = text.split("\n")
    events, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("===> ") and i + 1 < len(lines) and lines[i + 1].startswith("   > "):
            target, prefix, shown = line[5:], lines[i + 1][5:], []
            i += 2
            while i < len(lines) and not lines[i].startswith("===> ") and not lines[i].startswith("====="):
                shown.append(lines[i])
                i += 1
            if i < len(lines) and lines[i].startswith("=====") and shown and shown[-1] == "":
                shown.pop()   # the blank line results() prints before its summary
            events.append((target, prefix, shown))
        else:
            i += 1
    return events


class Replay:
    """suggest() for bench.ksr.simulate that hands back Presage's own suggestions from parse_trace, in
    order, checking that each call is for the same word and prefix Presage predicted: simulate() then
    reproduces presage_simulator's counts with our accounting (tests/test_ksr.py)."""

    def __init__(self, events):
        self.events = list(events)
        self.next = 0

    def __call__(self, context, prefix, n):
        target, shown_prefix, shown = self.events[self.next]
        self.next += 1
        if shown_prefix != prefix:
            raise AssertionError(f"Presage predicted after {shown_prefix!r} where the simulator has {prefix!r}")
        return shown[:n]
