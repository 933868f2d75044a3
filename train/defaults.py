"""Training settings chosen from the corpus when the user gives none (pure functions, no TensorFlow).

Why: the seed's settings (200 epochs, a window as long as the longest document, every word) do not
finish an epoch on a novel in 10 minutes, and the flags a user would have to find lose to a trigram.
The values below come from measured probes on Pride and Prejudice (paragraphs, 118k training tokens,
2 cores; ../shared/FIELD-NOTES.md "Training objective"): sequence chunks of 21 tokens every 10,
E128 H256 with the output tied to the embedding through a projection, dropout 0.4, Adam 3e-3, batch
32, early stopping on validation loss, beat the Kneser-Ney trigram on top-1, top-3 and perplexity in
two to three minutes. Smaller and larger corpora scale from that point by their training tokens.

`choose(stats, given)` returns {name: {"value": v, "why": text}} for every setting not in `given`
(a dict of the flags the user set, which always win); `default_split` picks the test and validation
tails."""

from dataclasses import dataclass

VOCAB_COVERAGE = 0.98        # the smallest vocabulary covering this share of training tokens ...
VOCAB_CAP = 5000             # ... capped here (the output layer dominates size and cost; 2 MB int8 budget)
OOV_TOKEN = "<oov>"
WINDOW_CAP = 20              # context length for prose; the runtime's cost grows with it
TOKEN_BUDGET = 1_500_000     # epochs x training tokens: ~12 epochs of a novel, ended early by validation
EPOCHS_MIN, EPOCHS_MAX = 3, 30
PATIENCE = 2
LR_DECAY = 0.3
VAL_SPLIT = 0.1
TEST_SPLIT = 0.1
MIN_DOCUMENTS_TO_SPLIT = 10


@dataclass
class CorpusStats:
    """What the chooser looks at: counts over the training part of the corpus (test tail removed)."""
    tokens: int                  # training tokens
    distinct: int                # distinct words among them
    documents: int
    coverage_words: int          # words needed to cover VOCAB_COVERAGE of the tokens
    doc_length_p90: int          # 90th percentile of document length in tokens


def stats_of(docs_words):
    """CorpusStats from documents given as lists of words."""
    counts, lengths = {}, []
    for words in docs_words:
        lengths.append(len(words))
        for w in words:
            counts[w] = counts.get(w, 0) + 1
    ordered = sorted(counts.values(), reverse=True)
    total, running, cover = sum(ordered), 0, len(ordered)
    for i, c in enumerate(ordered):
        running += c
        if running >= VOCAB_COVERAGE * total:
            cover = i + 1
            break
    lengths.sort()
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))] if lengths else 0
    return CorpusStats(total, len(ordered), len(lengths), cover, p90)


def _size_tier(tokens):
    """(embedding, units, dropout, why) by training tokens: less text, smaller model, more dropout."""
    if tokens < 20_000:
        return 32, 64, 0.3, "under 20k training tokens: a small model (E32 H64) and dropout 0.3 against over-fitting"
    if tokens < 50_000:
        return 64, 128, 0.4, "20k-50k training tokens: E64 H128, dropout 0.4"
    if tokens < 1_000_000:
        return 128, 256, 0.4, ("50k-1M training tokens (a novel): E128 H256, dropout 0.4, measured to beat the "
                               "KN trigram on Pride and Prejudice in ~2.5 min")
    return 256, 512, 0.2, "over 1M training tokens: E256 H512; more text regularises, dropout 0.2"


def choose(stats, given=()):
    """{name: {"value", "why"}} for each setting not named in `given`."""
    out = {}

    def put(name, value, why):
        if name not in given:
            out[name] = {"value": value, "why": why}

    put("objective", "sequence", "a target at every position of a chunk: ~L/S times cheaper an epoch than windows")
    words = min(VOCAB_CAP, max(1, stats.coverage_words))
    put("num_words", words + 2, f"{words:,} words cover {VOCAB_COVERAGE:.0%} of {stats.tokens:,} training tokens "
        f"(cap {VOCAB_CAP:,}; {stats.distinct:,} distinct) + padding + OOV")
    put("oov_token", OOV_TOKEN, "rarer words map to one token instead of vanishing from contexts")
    window = max(2, min(WINDOW_CAP, stats.doc_length_p90 - 1))
    if given.get("chunk_length"):
        put("window", given["chunk_length"], "the chunk length given: the model is exported with the context it learnt")
    else:
        put("window", window, f"the exported context: 90% of documents have <= {stats.doc_length_p90} tokens, "
            f"capped at {WINDOW_CAP}")
    length = given.get("window") or window
    put("chunk_length", length, "the exported window: what the model learns to use is what it gets at run time")
    put("chunk_stride", max(1, length // 2), "half a chunk: every target is also trained with >= half a chunk of context")
    emb, units, dropout, why = _size_tier(stats.tokens)
    put("embedding_dim", emb, why)
    put("units", units, why)
    put("dropout", dropout, why)
    put("recurrent_dropout", 0.0, "off: on the novel 0.25 gave perplexity 131.8 instead of 139.4 but 0.4/0.6 "
        "points less top-1/top-3, with 1.6x slower epochs (docs/benchmarks.md)")
    put("tie", True, "output layer tied to the input embedding via a projection (Press & Wolf 2017): fewer "
        "parameters, better perplexity on small corpora")
    put("learning_rate", 0.003, "Adam 3e-3: measured best of 2e-3/3e-3 with dropout on the novel")
    put("lr_decay", LR_DECAY, f"learning rate x {LR_DECAY} after each epoch without a lower validation loss: "
        "the epochs before early stopping fine-tune instead of over-fitting")
    put("batch_size", 32, "32 chunks a step: measured on the novel; larger batches took more epochs")
    epochs = max(EPOCHS_MIN, min(EPOCHS_MAX, round(TOKEN_BUDGET / max(1, stats.tokens))))
    put("epochs", epochs, f"a budget of ~{TOKEN_BUDGET / 1e6:g}M training tokens ({EPOCHS_MIN}-{EPOCHS_MAX} epochs), "
        "ended earlier by early stopping")
    put("stop_on", "accuracy", "early stopping watches validation top-1 (every validation target): it kept rising "
        "for epochs after the validation loss turned, and perplexity had the larger margin over the trigram")
    put("patience", PATIENCE, f"stop after {PATIENCE} epochs without a better validation figure; the best weights "
        "are kept")
    return out


def default_split(documents, fraction, what):
    """(fraction, why) for a held-out tail of `documents`: none when there are too few to spare."""
    if documents < MIN_DOCUMENTS_TO_SPLIT:
        return 0.0, f"only {documents} documents: no {what} tail held out (needs {MIN_DOCUMENTS_TO_SPLIT})"
    if what == "test":
        return fraction, (f"the last {fraction:.0%} of the documents: never trained on nor used to stop; "
                          "the held-out figures and nextword-bench's quality table use it")
    return fraction, f"the last {fraction:.0%} of the remaining documents: its loss decides early stopping"
