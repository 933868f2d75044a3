"""The evaluation pieces: the one top-k accuracy and perplexity (train/metrics.py) against a
brute-force reference, on hand-computed cases, ties, exclusion and generated inputs; the latency
summary; the Kneser-Ney trigram baseline (normalisation, hand-checked values, document boundaries,
the same targets as the LSTM's windows) and the held-out split. numpy + hypothesis only: no
TensorFlow."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from nextword.bench.latency import latency_summary
from nextword.bench.ngram import KneserNeyTrigram, targets
from nextword.runtime.windowing import pad_window
from nextword.train.metrics import Scores, mean_nll, perplexity, top_ids, topk_accuracy, true_ranks
from nextword.train.windows import Windows, split_heldout

SMALL = settings(max_examples=50, deadline=None, derandomize=True)
MANY = settings(max_examples=200, deadline=None, derandomize=True)


# -- the reference: the tie and exclusion rules spelled out one row at a time -------------------
def reference_order(row, exclude=()):
    """Ids best first: higher probability first, equal probabilities by lower id; excluded ids dropped."""
    return sorted((i for i in range(len(row)) if i not in set(exclude)), key=lambda i: (-float(row[i]), i))


def reference_topk(probs, y, ks, exclude=()):
    return {k: sum(int(t) in reference_order(row, exclude)[:k] for row, t in zip(probs, y)) / len(y) for k in ks}


def reference_perplexity(probs, y):
    return math.exp(-sum(math.log(max(float(row[t]), 1e-12)) for row, t in zip(probs, y)) / len(y))


# -- hand-checkable cases -----------------------------------------------------------------------
def test_topk_and_perplexity_single_row():
    probs = np.array([[0.5, 0.3, 0.2]])
    y = np.array([1])
    assert topk_accuracy(probs, y) == {1: 0.0, 3: 1.0, 5: 1.0}
    assert topk_accuracy(probs, y, ks=(2,)) == {2: 1.0}
    assert perplexity(probs, y) == pytest.approx(1 / 0.3)
    assert mean_nll(probs, y) == pytest.approx(-math.log(0.3))


def test_topk_and_perplexity_several_rows():
    probs = np.array([[0.1, 0.6, 0.3],    # true 1: rank 0
                      [0.2, 0.3, 0.5],    # true 0: rank 2
                      [0.7, 0.1, 0.2]])   # true 2: rank 1
    y = np.array([1, 0, 2])
    assert list(true_ranks(probs, y)) == [0, 2, 1]
    acc = topk_accuracy(probs, y, ks=(1, 2, 3))
    assert acc == pytest.approx({1: 1 / 3, 2: 2 / 3, 3: 1.0})
    # exp(-(ln .6 + ln .2 + ln .2) / 3) = (.6 * .2 * .2) ** (-1/3)
    assert perplexity(probs, y) == pytest.approx((0.6 * 0.2 * 0.2) ** (-1 / 3))
    assert perplexity(probs.astype(np.float32), y) == pytest.approx((0.6 * 0.2 * 0.2) ** (-1 / 3), rel=1e-6)
    assert top_ids(probs, 2).tolist() == [[1, 2], [2, 1], [0, 2]]


def test_ties_go_to_the_lower_id_whether_that_is_the_truth_or_not():
    probs = np.array([[0.25, 0.25, 0.25, 0.25]])
    assert topk_accuracy(probs, np.array([0]), ks=(1,)) == {1: 1.0}   # the truth is the lowest id: a hit
    assert topk_accuracy(probs, np.array([2]), ks=(1, 2, 3)) == {1: 0.0, 2: 0.0, 3: 1.0}  # 0 and 1 go first
    assert top_ids(probs, 3).tolist() == [[0, 1, 2]]
    # a tie for the top with a higher-id truth is a miss at k=1 (the runtime suggests id 1 first)
    assert list(true_ranks(np.array([[0.1, 0.4, 0.4, 0.1]]), np.array([2]))) == [1]


def test_excluded_ids_are_never_among_the_best_and_never_a_hit():
    probs = np.array([[0.6, 0.3, 0.1]])
    assert topk_accuracy(probs, np.array([1]), ks=(1,)) == {1: 0.0}
    assert topk_accuracy(probs, np.array([1]), ks=(1,), exclude=(0,)) == {1: 1.0}
    assert top_ids(probs, 3, exclude=(0,)).tolist() == [[1, 2]]
    assert probs[0, 0] == 0.6  # the caller's array is untouched
    # a true id that is excluded: rank V, a miss even at k = V
    assert list(true_ranks(probs, np.array([0]), exclude=(0,))) == [3]
    assert topk_accuracy(probs, np.array([0]), ks=(1, 3), exclude=(0,)) == {1: 0.0, 3: 0.0}
    # perplexity scores rows as given: exclusion does not renormalise
    s = Scores(exclude=(0,)).add(probs, np.array([1]))
    assert s.perplexity() == pytest.approx(1 / 0.3)


def test_perplexity_clips_zero_probabilities():
    assert perplexity(np.array([[1.0, 0.0]]), np.array([1])) == pytest.approx(1e12)
    assert perplexity(np.array([[0.0, 1.0]]), np.array([1])) == pytest.approx(1.0)


def test_metrics_reject_bad_input():
    with pytest.raises(ValueError):
        perplexity(np.array([0.5, 0.5]), np.array([0]))
    with pytest.raises(ValueError):
        topk_accuracy(np.array([[0.5, 0.5]]), np.array([2]))
    with pytest.raises(ValueError):
        topk_accuracy(np.array([[0.5, 0.5]]), np.array([0, 1]))
    with pytest.raises(ValueError):
        topk_accuracy(np.array([[0.5, 0.5]]), np.array([0]), ks=(0,))
    with pytest.raises(ValueError):
        topk_accuracy(np.array([[0.5, 0.5]]), np.array([0.0]))
    with pytest.raises(ValueError):
        Scores().summary()                      # nothing scored: no figure to invent


# -- generated inputs against the reference -----------------------------------------------------
@st.composite
def scored_rows(draw):
    """(probs, y, exclude): few distinct probability levels, so ties are common."""
    n = draw(st.integers(1, 12))
    v = draw(st.integers(1, 9))
    levels = st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5])
    probs = draw(hnp.arrays(np.float64, (n, v), elements=levels))
    y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, v - 1)))
    exclude = draw(st.lists(st.integers(0, v - 1), max_size=min(v, 3), unique=True))
    return probs, y, tuple(exclude)


@MANY
@given(scored_rows(), st.lists(st.integers(1, 10), min_size=1, max_size=4, unique=True))
def test_topk_accuracy_matches_the_reference(case, ks):
    probs, y, exclude = case
    assert topk_accuracy(probs, y, ks, exclude) == pytest.approx(reference_topk(probs, y, ks, exclude), abs=1e-12)
    for row, best in zip(probs, top_ids(probs, 10, exclude).tolist()):
        assert best == reference_order(row, exclude)[:10]


@MANY
@given(scored_rows())
def test_perplexity_matches_the_reference(case):
    probs, y, _ = case
    assert perplexity(probs, y) == pytest.approx(reference_perplexity(probs, y), rel=1e-9)


@SMALL
@given(scored_rows(), st.integers(1, 5))
def test_scores_over_batches_equal_the_figures_on_the_whole(case, batch):
    probs, y, exclude = case
    scores = Scores(ks=(1, 3), exclude=exclude)
    for lo in range(0, len(y), batch):
        scores.add(probs[lo:lo + batch], y[lo:lo + batch])
    whole = topk_accuracy(probs, y, (1, 3), exclude)
    assert scores.summary() == pytest.approx({"top1": whole[1], "top3": whole[3],
                                              "perplexity": perplexity(probs, y), "n": len(y)})


def test_true_ranks_chunks_agree_with_one_pass():
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 4, size=(2500, 7)).astype(np.float32)  # > one 1024-row chunk, many ties
    y = rng.integers(0, 7, size=2500)
    ranks = true_ranks(probs, y, exclude=(0, 3))
    assert ranks.tolist() == [reference_order(r, (0, 3)).index(t) if t not in (0, 3) else 7 for r, t in zip(probs, y)]


# -- latency -------------------------------------------------------------------------------------
def test_latency_summary_known_samples():
    samples = [i * 1e-6 for i in range(1, 101)]  # 1 .. 100 microseconds
    s = latency_summary(samples)
    assert s["n"] == 100 and isinstance(s["n"], int)
    assert s["median"] == pytest.approx(50.5)
    assert s["mean"] == pytest.approx(50.5)
    assert s["min"] == pytest.approx(1.0) and s["max"] == pytest.approx(100.0)
    # numpy linear percentiles on 1..100: p = 1 + q/100 * 99
    assert s["p95"] == pytest.approx(1 + 0.95 * 99)
    assert s["p99"] == pytest.approx(1 + 0.99 * 99)
    assert s["iqr"] == pytest.approx((1 + 0.75 * 99) - (1 + 0.25 * 99))
    one = latency_summary([0.002])
    assert one["median"] == one["p99"] == one["min"] == pytest.approx(2000.0) and one["iqr"] == 0.0
    for bad in ([], [float("nan")], [-1.0]):
        with pytest.raises(ValueError):
            latency_summary(bad)


# -- Kneser-Ney trigram ------------------------------------------------------------------------
def test_kn_hand_checked_value():
    """V = 5 (words 1..4), order 3, modified Kneser-Ney (export/ngram.py); each document is read from
    the context (0, 0). Trigrams: (0,0,1) x2, (0,1,2) x2, (1,2,3), (1,2,4), (0,0,2), (0,2,3) x1.

    Discounts per order from count-of-counts n1..n4, Y = n1/(n1+2 n2), D1 = 1-2Y n2/n1,
    D2 = 2-3Y n3/n2, D3+ = 3-4Y n4/n3 (1.5 when n3 = 0), clipped to [0.05, i-0.05]:
      trigram counts {2,2,1,1,1,1}: n1=4 n2=2 n3=0 -> Y=1/2, D1=1/2, D2=2 -> 1.95, D3+=1.5
      bigram continuation counts N1+(.,v,w): (0,1)=1 (1,2)=1 (2,3)=|{1,0}|=2 (2,4)=1 (0,2)=1
        n1=4 n2=1 -> Y=2/3, D1=1-2(2/3)(1/4)=2/3, D2=1.95
      unigram continuation N1+(.,w): w=1:{0} w=2:{1,0} w=3:{2} w=4:{2} -> 1,2,1,1 (total 5)
        n1=3 n2=1 -> Y=3/5, D1=1-2(3/5)(1/3)=0.6, D2=1.95
    p1(w) = (N1+(.,w) - D)/5 + gamma1/4, gamma1 = (3*0.6 + 1.95)/5 = 0.75:
      p1(1) = p1(3) = p1(4) = 0.4/5 + 0.1875 = 0.2675, p1(2) = 0.05/5 + 0.1875 = 0.1975 (sum 1)
    """
    lm = KneserNeyTrigram(5).fit([[1, 2, 3], [1, 2, 4], [2, 3]])
    assert lm.discounts == {"1": [0.6, 1.95, 1.5], "2": [0.666667, 1.95, 1.5], "3": [0.5, 1.95, 1.5]}
    p1 = 0.4 / 5 + 0.75 / 4
    assert p1 == pytest.approx(0.2675)
    # bigram given v=2: (2,3) count 2, (2,4) count 1, total 3; gamma = (1.95 + 2/3)/3
    p2 = (2 - 1.95) / 3 + (1.95 + 2 / 3) / 3 * p1
    # trigram given (1,2): (1,2,3) and (1,2,4) once each, total 2: alpha = (1-0.5)/2, gamma = (0.5+0.5)/2
    p3 = (1 - 0.5) / 2 + 0.5 * p2
    assert p3 == pytest.approx(0.374993, abs=1e-6)
    assert lm.probs([1, 2])[3] == pytest.approx(p3, abs=1e-6)        # float32 storage
    assert lm.probs([4, 1, 2])[3] == pytest.approx(p3, abs=1e-6)     # only the last two ids count
    # unseen context (4, 4) and unseen v=4: everything backs off to the unigram level
    assert lm.probs([4, 4])[3] == pytest.approx(p1, abs=1e-6)
    # first word of a document, context (0, 0): (0,0,1) x2, (0,0,2) x1, total 3:
    #   alpha(1) = (2 - 1.95)/3, gamma = (1.95 + 0.5)/3; bigram v=0: (0,1), (0,2) continuation 1 each,
    #   total 2: alpha = (1 - 2/3)/2, gamma = (2/3 + 2/3)/2
    p2_1 = (1 - 2 / 3) / 2 + (2 / 3) * p1
    assert lm.probs([])[1] == pytest.approx((2 - 1.95) / 3 + 2.45 / 3 * p2_1, abs=1e-6)
    assert np.array_equal(lm.probs([]), lm.probs([0, 0]))
    assert np.array_equal(lm.probs([]), lm.probs([3, 0]))  # nothing before padding counts


@st.composite
def corpus_and_contexts(draw):
    vocab = draw(st.integers(2, 15))
    docs = draw(st.lists(st.lists(st.integers(1, vocab - 1), max_size=10), max_size=8))
    contexts = draw(st.lists(st.lists(st.integers(0, vocab - 1), max_size=4), min_size=1, max_size=6))
    order = draw(st.sampled_from([2, 3, 4]))
    return vocab, docs, contexts, order


@SMALL
@given(corpus_and_contexts())
def test_kn_distributions_sum_to_one(case):
    vocab, docs, contexts, order = case
    lm = KneserNeyTrigram(vocab, order=order).fit(docs)
    batch = lm.probs_batch(contexts)
    assert batch.shape == (len(contexts), vocab)
    for ctx, row in zip(contexts, batch):
        p = lm.probs(ctx)
        np.testing.assert_allclose(p, row, rtol=0, atol=1e-15)
        assert p[0] == 0.0                      # padding is never a word
        assert np.all(p[1:] > 0)                # unseen words keep some mass (uniform floor)
        assert abs(p[1:].sum() - 1.0) < 1e-9


def test_kn_repetitive_corpus_puts_mass_on_the_continuation():
    docs = [[1, 2, 3, 4]] * 50 + [[5, 6, 7], [2, 5, 8]]
    lm = KneserNeyTrigram(10).fit(docs)
    p = lm.probs([1, 2])
    assert int(np.argmax(p)) == 3 and p[3] > 0.9
    assert int(np.argmax(lm.probs([]))) == 1          # documents start with 1
    assert int(np.argmax(lm.probs([3]))) == 4          # (0, 3) is unseen: backs off to v=3 -> 4
    assert int(np.argmax(lm.probs([9, 3]))) == 4


def test_kn_contexts_never_cross_documents():
    V = 10
    split = KneserNeyTrigram(V).fit([[5, 6], [7, 8]])
    joined = KneserNeyTrigram(V).fit([[5, 6, 7, 8]])
    # in `split`, nothing ever follows 6, so (5, 6) backs off to the unigram level like an unseen context
    np.testing.assert_allclose(split.probs([5, 6]), split.probs([9, 9]), rtol=0, atol=1e-15)
    assert joined.probs([5, 6])[7] > 0.5 > split.probs([5, 6])[7]
    # the second document starts from (0, 0), not from the end of the first
    assert split.probs([])[7] > split.probs([])[8]


def test_kn_input_validation():
    with pytest.raises(ValueError):
        KneserNeyTrigram(1)
    with pytest.raises(ValueError):
        KneserNeyTrigram(5, order=6).fit([[1]])
    with pytest.raises(ValueError):
        KneserNeyTrigram(5).fit([[1, 0, 2]])    # 0 is padding, not a word
    with pytest.raises(ValueError):
        KneserNeyTrigram(5).fit([[1, 5]])       # beyond the vocabulary
    with pytest.raises(ValueError):
        KneserNeyTrigram(5).fit([[1, 2]]).probs([1, 9])
    with pytest.raises(RuntimeError):
        KneserNeyTrigram(5).probs([1])
    empty = KneserNeyTrigram(5).fit([[], [3]])  # no trigram at all except (0,0,3)
    assert abs(empty.probs([1, 2]).sum() - 1) < 1e-12


@pytest.mark.parametrize("window", [None, 1, 2, 3])
def test_kn_evaluate_uses_the_lstm_targets(window):
    docs = [[1, 2, 3, 4, 5], [2], [], [3, 1], [4, 4, 4, 2, 1, 3]]
    lm = KneserNeyTrigram(6).fit([[1, 2, 3], [3, 1, 2, 4], [5, 4]])
    win = Windows(docs, window)
    x, y_windows = win.all()
    probs, y = lm.evaluate(docs, window, dtype=np.float64)
    assert np.array_equal(y, y_windows)         # every position j >= 1 of every document, in order
    np.testing.assert_array_equal(probs, lm.probs_batch(x))  # the n-gram sees the LSTM window's tail
    ctx, y2 = targets(docs, window)
    assert np.array_equal(y2, y) and ctx.shape == (len(y), 2)


@st.composite
def documents_and_window(draw):
    docs = draw(st.lists(st.lists(st.integers(1, 20), max_size=9), min_size=1, max_size=6))
    longest = max(map(len, docs))
    window = draw(st.one_of(st.none(), st.integers(1, 10)) if longest >= 2 else st.integers(1, 10))
    return docs, window


@MANY
@given(documents_and_window())
def test_ngram_targets_are_the_training_windows_targets_and_tails(case):
    """bench.ngram.targets promises the targets of train.windows.Windows, in order, with the last two
    ids of each window as context; and each window is the runtime's pad_window of the document so far."""
    docs, window = case
    win = Windows(docs, window)
    x, y = win.all()
    ctx, y_ngram = targets(docs, window)
    assert y_ngram.tolist() == y.tolist()
    if len(y):
        tail = x[:, -2:] if win.window >= 2 else np.concatenate([np.zeros((len(y), 1), x.dtype), x], axis=1)
        assert ctx.tolist() == tail.tolist()
    prefixes = [d[:j] for d in docs for j in range(1, len(d))]
    assert [pad_window(p, win.window).tolist() for p in prefixes] == x.tolist()


# -- held-out split ----------------------------------------------------------------------------
@SMALL
@given(st.integers(2, 200), st.floats(0.01, 0.99))
def test_split_heldout_is_the_tail_without_overlap(n, fraction):
    docs = list(range(n))                       # each document is its own index
    train, held = split_heldout(docs, fraction)
    assert held and train
    assert train + held == docs
    assert held == docs[n - len(held):]         # exactly the tail, never shuffled
    assert not set(train) & set(held)
    assert len(held) == min(n - 1, max(1, round(n * fraction)))


def test_split_heldout_without_fraction_keeps_everything():
    assert split_heldout([[1], [2]], 0) == ([[1], [2]], [])
