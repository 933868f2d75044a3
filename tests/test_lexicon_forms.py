"""Display forms (train/lexicon.py, issue 14 item 3): the rules on a crafted corpus, the lexicon.json
reader refusing damaged files, nextword-train writing lexicon.json from the documents the tokenizer
was fitted on, and nextword-export copying it into the bundle with a manifest entry that hashes it.
The pure parts need no TensorFlow and run in every environment; training and export are marked tf."""

import hashlib
import json
import os
import shutil

import pytest

from nextword.runtime.predictor import Predictor
from nextword.runtime.tokenizer import Tokenizer
from nextword.runtime.errors import BundleInvalid
from nextword.train.lexicon import FILE, MIN_ABBREVIATION_COUNT, DisplayForms, build, sentence_mark
from support import SEED_BUNDLE, run_cli

DOCS = [
    "The day was fine, and I said that Elizabeth would walk to London with Mr. Darcy.",
    "Mr. Darcy smiled. The rain began; the road to London was wet, and the cart was slow.",
    '"Yes!" said Elizabeth. Then Mrs. Bennet laughed at Mr. Collins, who had 1811 pounds.',
    "In 1811 the (Netherfield) estate was let to Mr. Bingley, and I was glad. Meanwhile it rained.",
    "Meanwhile the rain--Storm came, and the 2nd cart was late.",
    "Meanwhile, the day ended.",
]


def fitted(docs, **settings):
    return Tokenizer(**settings).fit_on_texts(docs)


@pytest.fixture(scope="module")
def crafted():
    tok = fitted(DOCS)
    return tok, build(DOCS, tok)


def test_capitals_that_are_not_sentence_starts_are_kept(crafted):
    _, lex = crafted
    assert lex.forms["i"] == "I"
    assert lex.forms["elizabeth"] == "Elizabeth"
    assert lex.forms["london"] == "London"
    assert lex.forms["netherfield"] == "Netherfield"   # "(Netherfield)": the brackets are filters, stripped


def test_a_capital_only_at_sentence_starts_is_not_a_display_form(crafted):
    tok, lex = crafted
    assert "the" in tok.word_counts and "the" not in lex.forms          # "The" begins three sentences
    assert "then" in tok.word_counts and "then" not in lex.forms        # "Then" only after "Elizabeth."
    assert "meanwhile" in tok.word_counts and "meanwhile" not in lex.forms   # after "glad." and at starts


def test_abbreviations_get_their_period_and_do_not_end_sentences(crafted):
    _, lex = crafted
    assert lex.abbreviations == ["mr"]
    assert lex.forms["mr"] == "Mr."
    # "Collins" and "Bingley" appear only after "Mr.": not sentence-initial, so their capital is kept;
    # "Darcy" also begins nothing
    assert lex.forms["collins"] == "Collins" and lex.forms["bingley"] == "Bingley" and lex.forms["darcy"] == "Darcy"
    # "Mrs." appears once: fewer than MIN_ABBREVIATION_COUNT times, so a capitalised word, no period
    assert MIN_ABBREVIATION_COUNT > 1 and lex.forms["mrs"] == "Mrs" and "mrs" not in lex.abbreviations


def test_the_same_word_after_a_sentence_end_is_not_counted():
    """Control for the abbreviation case: after "rain." (not an abbreviation) the capital is a sentence start."""
    docs = ["Mr. Darcy came. Mr. Darcy went. Mr. Darcy sat.", "It rained. Darcy left. Darcy ran. Darcy hid."]
    tok = fitted(docs)
    assert build(docs, tok).forms["darcy"] == "Darcy"
    docs_without_mr = ["It rained. Darcy left. Darcy ran. Darcy hid."]
    assert "darcy" not in build(docs_without_mr, fitted(docs_without_mr)).forms


def test_numbers_and_glued_punctuation(crafted):
    tok, lex = crafted
    assert {"1811", "2nd"} <= set(tok.word_counts) and not {"1811", "2nd"} & set(lex.forms)
    # "rain--Storm" is two words to the tokenizer: skipped, never guessed at
    assert "storm" in tok.word_counts and "storm" not in lex.forms
    assert "yes" not in lex.forms                     # '"Yes!"' begins its document


def test_every_form_is_a_tokenizer_word_with_its_case_changed(crafted):
    tok, lex = crafted
    assert lex.forms
    for word, display in lex.forms.items():
        assert word in tok.word_counts
        assert display != word and display.rstrip(".").lower() == word
        assert display.endswith(".") == (word in lex.abbreviations)


def test_the_most_frequent_casing_wins_and_ties_go_to_the_word_then_the_first_seen():
    docs = ["so APPLE and apple", "so Apple and APPLE"]
    assert build(docs, fitted(docs)).forms["apple"] == "APPLE"       # 2 APPLE, 1 Apple, 1 apple
    docs = ["so Kiwi and KIWI"]
    assert build(docs, fitted(docs)).forms["kiwi"] == "Kiwi"         # a tie without the word: the first seen
    for docs in (["so Pear and pear"], ["so pear and Pear"]):
        assert "pear" not in build(docs, fitted(docs)).forms         # a tie with the word: the word itself


def test_without_lowercasing_only_abbreviations_have_forms():
    tok = fitted(DOCS, lower=False)
    lex = build(DOCS, tok)
    assert lex.forms == {"Mr": "Mr."} and lex.abbreviations == ["Mr"]
    assert DisplayForms.read(lex.to_json().encode(), tok) == lex


def test_an_abbreviation_seen_only_at_sentence_starts_is_its_word_with_a_period():
    docs = ["Mr. Ab came.", "Mr. Cd went.", "Mr. Ef sat."]
    lex = build(docs, fitted(docs))
    assert lex.forms["mr"] == "mr." and lex.abbreviations == ["mr"]


def test_one_pass_over_the_documents(crafted):
    """The documents may be a one-shot iterator (a stream of a large corpus): the same result."""
    tok, lex = crafted
    assert build(iter(DOCS), tok) == lex


def test_words_outside_the_tokenizer_get_no_form():
    tok = fitted(["hello there"])
    assert build(["Hello London, said I."], tok).forms == {}


@pytest.mark.parametrize("token, mark", [
    ("said.”", "."), ("side,”", ""), ("end._", "."), ("“Yes!”", "!"), ("Mr.", "."), ("1811", ""), ("--", ""),
    ("why?)", "?"), ("word", ""), ("", "")])
def test_sentence_mark(token, mark):
    assert sentence_mark(token) == mark


# -- lexicon.json: the format and its reader ----------------------------------------------------------

def test_the_file_is_the_contract_format(crafted):
    tok, lex = crafted
    data = json.loads(lex.to_json())
    assert data["format"] == "nextword-lexicon" and data["format_version"] == 1
    assert set(data) == {"format", "format_version", "forms", "abbreviations"}
    words = [w for w, _ in data["forms"]]
    assert words == sorted(words) and ["i", "I"] in data["forms"] and ["mr", "Mr."] in data["forms"]
    assert data["abbreviations"] == ["mr"]
    assert DisplayForms.read(lex.to_json().encode(), tok) == lex


def test_the_runtime_reader_refuses_what_the_writer_never_writes():
    """One reader (nextword.runtime.lexicon, tested on crafted files in tests/test_complete.py): a form
    that changes more than the case is refused, and export turns that into an InputError."""
    tok = fitted(DOCS)
    data = build(DOCS, tok).to_dict()
    data["forms"][0] = [data["forms"][0][0], "Someone"]
    with pytest.raises(BundleInvalid, match=r"forms\[0\]\[1\]"):
        DisplayForms.read(json.dumps(data).encode(), tok)


# -- the committed demo bundle (every environment) ---------------------------------------------------

def test_the_demo_bundle_carries_a_hashed_lexicon_the_runtime_ignores_or_reads():
    with open(os.path.join(SEED_BUNDLE, "manifest.json"), encoding="utf-8") as f:
        manifest = json.load(f)
    entry = manifest["lexicon"]
    assert entry["file"] == FILE
    with open(os.path.join(SEED_BUNDLE, FILE), "rb") as f:
        raw = f.read()
    assert entry["size"] == len(raw) and entry["sha256"] == hashlib.sha256(raw).hexdigest()
    tok = Tokenizer.load(os.path.join(SEED_BUNDLE, manifest["tokenizer"]["file"]))
    lex = DisplayForms.read(raw, tok)
    assert lex == DisplayForms({}, [])        # the seed lines are all lower-case: nothing to restore
    assert Predictor.load(SEED_BUNDLE).predict_next("hello how is") == "your"


# -- nextword-train and nextword-export (TensorFlow) ------------------------------------------------

PROSE = ("\n\n".join([
    "Elizabeth walked to London with Mr. Darcy, and I went too.",
    "Mr. Darcy said that Elizabeth and I should stay in London.",
    "Mr. Bingley and Jane came to London, and Elizabeth smiled at Mr. Darcy.",
    "Then I said that London was fine, and Elizabeth and Jane agreed with Mr. Bingley.",
    "so I Went to Zanzibar and Went and Went again"]) + "\n")   # the test tail


@pytest.fixture(scope="module")
def prose_model(tmp_path_factory):
    """A real training run (one epoch, a tiny network) on prose with capitals; the last paragraph is the test tail."""
    from nextword.train.fit import TrainConfig, train
    folder = tmp_path_factory.mktemp("lexicon-prose")
    corpus = folder / "prose.txt"
    corpus.write_text(PROSE, encoding="utf-8")
    out = folder / "model"
    train(TrainConfig(corpus=[str(corpus)], unit="paragraph", epochs=1, units=8, embedding_dim=4, test_split=0.2,
                      val_split=0.0), str(out), progress=False)
    return out


@pytest.mark.tf
def test_every_training_run_writes_lexicon_json(tiny_model_dir):
    """The seed run too: its file is what build() makes of the seed lines."""
    from nextword.train.corpus import SEED_LINES
    tok = Tokenizer.load(os.path.join(tiny_model_dir, "tokenizer.json"))
    with open(os.path.join(tiny_model_dir, FILE), "rb") as f:
        raw = f.read()
    assert DisplayForms.read(raw, tok) == build(SEED_LINES.splitlines(), tok) == DisplayForms({}, [])


@pytest.mark.tf
def test_training_learns_forms_from_the_documents_it_fits_the_tokenizer_on(prose_model):
    tok = Tokenizer.load(os.path.join(prose_model, "tokenizer.json"))
    lex = DisplayForms.read((prose_model / FILE).read_bytes(), tok)
    assert {"i": "I", "elizabeth": "Elizabeth", "london": "London", "mr": "Mr.", "darcy": "Darcy",
            "jane": "Jane", "bingley": "Bingley"}.items() <= lex.forms.items()
    assert lex.abbreviations == ["mr"]
    # the test tail is never read: "went" is lower-case in the training paragraphs, "Went" only in the tail
    assert "zanzibar" not in tok.word_counts and "went" in tok.word_counts and "went" not in lex.forms


@pytest.mark.tf
def test_export_copies_the_lexicon_with_a_manifest_entry_that_hashes_it(tiny_bundle_dir, tiny_model_dir):
    with open(os.path.join(tiny_bundle_dir, "manifest.json"), encoding="utf-8") as f:
        entry = json.load(f)["lexicon"]
    with open(os.path.join(tiny_bundle_dir, FILE), "rb") as f:
        raw = f.read()
    assert entry == {"file": FILE, "sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    with open(os.path.join(tiny_model_dir, FILE), "rb") as f:
        assert raw == f.read()


@pytest.mark.tf
@pytest.mark.slow
def test_export_of_forms_and_of_a_model_folder_without_a_lexicon(prose_model, tmp_path):
    from nextword.export.pipeline import export_bundle
    bundle = tmp_path / "bundle"
    manifest = export_bundle(str(prose_model), str(bundle), ["tflite-float32"])
    raw = (bundle / FILE).read_bytes()
    assert raw == (prose_model / FILE).read_bytes() and b'["elizabeth", "Elizabeth"]' in raw
    assert manifest["lexicon"] == {"file": FILE, "sha256": hashlib.sha256(raw).hexdigest(), "size": len(raw)}
    assert Predictor.load(str(bundle)).top_k("Elizabeth walked to", k=1)   # the runtime loads it
    older = tmp_path / "older-model"
    shutil.copytree(prose_model, older)
    os.unlink(older / FILE)              # a model folder trained before lexicon.json existed
    manifest = export_bundle(str(older), str(tmp_path / "older-bundle"), ["tflite-float32"])
    assert "lexicon" not in manifest and not (tmp_path / "older-bundle" / FILE).exists()


@pytest.mark.tf
@pytest.mark.parametrize("damage, needle", [
    (lambda p: p.write_bytes(b'{"format": "nextword-lexicon", "format_version": 1, "forms": [["zzz", "Zzz"]], '
                             b'"abbreviations": []}'), "a word of the vocabulary"),
    (lambda p: p.write_bytes(b"\x00\x01"), "not valid JSON"),
    (lambda p: (os.unlink(p), os.mkdir(p)), "cannot read"),
])
def test_export_refuses_a_damaged_lexicon_in_one_line(damage, needle, tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    damage(model / FILE)
    r = run_cli("nextword-export", model, "--out", tmp_path / "out", "--quiet")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in r.stderr and "lexicon" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
