"""Streaming figures for the benchmark (numpy and the runtime only, no TensorFlow):

- `streaming_costs`: per-word cost of a stream session's feed + top_k against context length, next
  to re-running the window model on the growing text (Predictor.top_k), an exact-mode session, and
  the bare step-model interpreter call.
- `streaming_quality`: held-out top-1/top-3 accuracy and perplexity of stream mode against exact
  mode (which equals the window model), scoring every position of every held-out document.
"""

import time

import numpy as np

from nextword.train.metrics import PADDING, Scores

from .latency import latency_summary

DEFAULT_CONTEXTS = (5, 10, 20, 50, 100, 200)
_CHUNK = 512


def _words_for(predictor, n, seed=0):
    """n known words (each one token id, none of them OOV), drawn from the vocabulary."""
    tok = predictor.tokenizer
    table = predictor.tokenizer.id_to_word_table()
    oov = tok.oov_id
    usable = [w for i, w in enumerate(table) if i and i != oov and w and tok.text_to_ids(w) == [i]]
    if not usable:
        raise ValueError("the vocabulary has no word usable for timing")
    rng = np.random.default_rng(seed)
    return [usable[i] for i in rng.integers(0, len(usable), size=n)]


def _median_us(fn, repeats, setup=None):
    samples = []
    for _ in range(repeats):
        if setup is not None:
            setup()
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return latency_summary(samples)


def streaming_costs(predictor, context_lengths=DEFAULT_CONTEXTS, repeats=200, k=3, seed=0, warmup=20):
    """Per-word cost (µs, median and p95 over `repeats`) at each context length L (words already typed):

    - session: stream-mode `feed(word) + top_k(k)` after L-1 words (the state is rolled back with
      undo between repeats, untimed); session_feed: the feed alone (one step, no ranking);
    - exact: the same in exact mode (re-runs min(L, window) steps per answer);
    - window: `predictor.top_k(text of L words, k)`, what a caller without sessions does per word
      (tokenize the growing text, run the window model);
    - step_call: one bare step interpreter call (ids, h, c in; logits, h', c' out), no Python above it.

    The trained window length is always measured; `at_window` gives its row and the ratios."""
    T = predictor.window
    lengths = sorted(set(int(n) for n in context_lengths) | {T})
    if lengths[0] < 1:
        raise ValueError("context lengths must be at least 1 word")
    step = predictor.step_model()
    words = _words_for(predictor, lengths[-1], seed)
    rows = []
    stream, exact = predictor.session(mode="stream", history=2), predictor.session(mode="exact", history=2)
    for _ in range(warmup):
        stream.feed(words[0]); stream.top_k(k); stream.undo(1)
        predictor.top_k(words[0], k)
    for L in lengths:
        before, word = " ".join(words[:L - 1]), words[L - 1]
        text = " ".join(words[:L])
        row = {"context": L}
        for name, s in (("session", stream), ("exact", exact)):
            s.reset()
            s.feed(before)

            def one(s=s):
                s.feed(word)
                s.top_k(k)
            row[name] = _median_us(one, repeats, setup=lambda s=s: s.undo(1) if s.steps >= L else None)
        stream.reset()
        stream.feed(before)
        row["session_feed"] = _median_us(lambda: stream.feed(word), repeats,
                                         setup=lambda: stream.undo(1) if stream.steps >= L else None)
        row["window"] = _median_us(lambda: predictor.top_k(text, k), repeats)
        row["window_over_session"] = row["window"]["median"] / row["session"]["median"]
        rows.append(row)
    state = step.start_state()
    feeds = [np.array([[1]], dtype=step._ids.dtype), state.h, state.c]
    runner = step._runner
    bare = _median_us(lambda: runner.run(feeds), max(repeats, 200))
    at = next(r for r in rows if r["context"] == T)
    return {"window": T, "variant": predictor.variant.name, "step_variant": step.variant.name,
            "package": predictor.package, "step_package": step.package, "k": k, "repeats": repeats,
            "rows": rows, "step_call": bare,
            "at_window": {"context": T, "session_us": at["session"]["median"], "window_us": at["window"]["median"],
                          "session_feed_us": at["session_feed"]["median"],
                          "exact_us": at["exact"]["median"], "step_call_us": bare["median"],
                          "window_over_session": at["window_over_session"],
                          "session_over_step_call": at["session"]["median"] / bare["median"]}}


def _score(session, docs, exclude, max_targets):
    """Scores of the true next id at each position >= 1 of each doc, the session reset at each
    document start."""
    scores, rows, ys = Scores(exclude=exclude), [], []

    def flush():
        if rows:
            scores.add(np.stack(rows), np.asarray(ys, dtype=np.int64))
        rows.clear()
        ys.clear()
    n = 0
    for doc in docs:
        doc = [int(i) for i in doc]
        if len(doc) < 2:
            continue
        session.reset()
        session.feed_ids(doc[:1])
        for j in range(1, len(doc)):
            if max_targets is not None and n >= max_targets:
                break
            rows.append(session.probabilities())
            ys.append(doc[j])
            n += 1
            if len(rows) >= _CHUNK:
                flush()
            session.feed_ids(doc[j:j + 1])
        if max_targets is not None and n >= max_targets:
            break
    flush()
    if not n:
        raise ValueError("no held-out document has two or more ids: nothing to score")
    return scores


def streaming_quality(predictor, heldout_docs_ids, exclude=PADDING, max_targets=None):
    """Top-1/top-3 accuracy and perplexity of stream mode vs exact mode (= the window model) over
    every position >= 1 of each held-out document (a list of id lists, e.g. paragraphs tokenized with
    the bundle's tokenizer). Each document starts a fresh session, as windows never cross documents.
    `max_targets` caps the number of scored positions (the same ones for both modes)."""
    out = {"targets": None, "step_variant": predictor.step_model().variant.name, "window": predictor.window}
    for mode in ("stream", "exact"):
        t0 = time.perf_counter()
        scores = _score(predictor.session(mode=mode, history=0), heldout_docs_ids, exclude, max_targets)
        out["targets"] = scores.n
        out[mode] = {f"top{k}_accuracy": acc for k, acc in scores.topk().items()}
        out[mode].update(perplexity=scores.perplexity(), seconds=time.perf_counter() - t0)
    return out
