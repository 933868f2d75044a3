"""Streaming sessions: a keyboard's next-word suggestions at the cost of one LSTM step per typed word.

A bundle's *step* variants (runtime/step.py) hold one LSTM step with explicit state: (token id, h, c) -> (logits, h', c').
A Session keeps that state between calls:

    p = Predictor.load("artifacts/seed")
    s = p.session()                # mode="stream" (default) or mode="exact"
    s.feed("hello how")            # words in, state advanced (one step per known word)
    s.top_k(3)                     # suggestions for the next word
    s.undo(1)                      # the user deleted a word: back one step (bounded history)
    s.reset()

Two context modes:

- ``stream`` (default): starts from the state after a window of padding (the step model run `window`
  times over id 0 from the zero state, computed once per predictor), then each word costs one step
  and the state carries on, so context longer than the window is kept. Often better than the window
  model, never identical to it: even before the window is full the LSTM has seen `window` padding
  steps plus the words, where the window model sees only `window - n` of them.
- ``exact``: each answer re-runs the last `window` ids, pre-padded with 0, through the step model from
  the zero state, so it equals the window model's answer (`window` steps per answer; the parity mode).
  Padding prefixes are cached, so a context of n < window words costs n steps.

Text goes through the bundle's tokenizer exactly as on the window path: unknown words are dropped
(or become the OOV id when the bundle has an OOV token) and make no step; feeding text with no known
words, or empty text, changes nothing. Feed whole words: "hel" then "lo" are two words.
Suggestions never include padding, OOV or a word of the predictor's blocklist (runtime/ranking.py,
as on the window path). `complete(prefix, k)` completes the word being typed after the words fed
(runtime/complete.py): one model step per word, a lookup per keystroke. Whether the next word starts
a sentence (for display forms) is judged from the end of the last text fed that held more than
whitespace; after undo it is known only when the session is back at its start. Sessions are independent and cheap
(a few arrays); one Predictor serves any number of them, its step interpreter guarded by a lock. A
single Session is not meant to be shared between threads.

Long input: text is tokenized in pieces (Tokenizer.iter_ids) and stepped through in chunks of
MAX_FEED_CHUNK ids per hold of the shared step lock, so a session fed a whole book keeps memory
O(history) and lets other sessions' calls in between its chunks; the time is one step per word, as
stream mode needs. Undo goes back at most `history` steps (0 .. MAX_HISTORY). A feed that fails
(ModelError from a damaged model) leaves the session as it was before that feed.

Learning from the user (runtime/learning.py, runtime/user_model.py, runtime/user_file.py):

    s = p.session(learn=True, user_file="~/.local/share/me.nextword-user.json")
    s.feed("I met Wickham")        # learns the words too ("wickham" becomes completable)
    s.learn("text the user wrote") # learns without moving the context
    s.forget("wickham")            # gone from the user model and from every suggestion of this session
    s.reset_learning()             # everything learnt forgotten (the forgotten set too)
    s.save_user()                  # the only time the user file is written (atomically, mode 0600)

top_k, predict_next and complete then mix the user model in: (1 - mu) p_model + mu p_user
(runtime/learning.py); logits() and probabilities() stay the model's own. A user file given with
learn=False is used (and s.learn works) but feeding does not learn. A forgotten word is never
suggested by this session, even a word of the bundle's model, until it is learnt again (typed, or
s.learn). Learning never changes the context; undo and reset move the context only (what was learnt
stays) and leave the previous word unknown, so the user model's pair part waits for the next word.
A session without learn=True or a user_file answers exactly as before.
"""

import collections

import numpy as np

from .complete import SKIPPED, Completer, check_k as check_complete_k, check_prefix, probabilities
from .errors import ArgumentTypeError, InputError, check_int as _check_int
from .learning import Learning
from .limits import MAX_HISTORY, MAX_WORD_CHARS
from .ranking import softmax
from .step import StepModel
from .user_model import USER_WEIGHT

MODES = ("stream", "exact")
DEFAULT_HISTORY = 20


def check_session_args(mode, history):
    if mode not in MODES:
        raise InputError(f"mode must be 'stream' or 'exact', got {mode!r}")
    history = _check_int("history", history, 0)
    if history > MAX_HISTORY:
        raise InputError(f"history (undo depth) must be at most {MAX_HISTORY}, got {history}")
    return history


class Session:
    """One user's typing: context state, suggestions, bounded undo. See the module docstring."""

    def __init__(self, step, mode="stream", history=DEFAULT_HISTORY, completer=None, learn=False, user_file=None):
        self.history = check_session_args(mode, history)
        self.step_model = step
        self.mode = mode
        self._completer = completer or Completer(step.bundle, step.vocab_size, step.ranking.blocklist)
        self._scored = (None, None)   # (state, next-word probabilities) of the last complete()
        self._learning = None
        if not isinstance(learn, bool):
            raise ArgumentTypeError(f"learn must be True or False, got {type(learn).__name__} {learn!r}")
        if learn or user_file is not None:   # UserFileInvalid here: no session, the predictor unharmed
            self._learning = Learning(step, self._completer, learn, user_file, step.bundle.path)
        self.reset()

    def reset(self):
        """Back to the start: no words seen."""
        step = self.step_model
        self._undoable = 0
        self._steps = 0
        self._said = ""   # the end of the last text fed (for sentence starts); "" = nothing yet
        if self._learning is not None:
            self._learning.prev = None
        if self.mode == "stream":
            self._state = step.start_state()
            self._past = collections.deque(maxlen=self.history)
        else:
            self._ids = collections.deque(maxlen=step.window + self.history)
            self._state = None   # computed on demand, cached until the context changes

    # -- input -------------------------------------------------------------------------------
    def feed(self, text):
        """Words typed (whole words); advances the state one step per known word. Returns how many
        steps (ids) it added; unknown words dropped by the tokenizer add none."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be str, got {type(text).__name__}")
        state, (seen, p) = self._state, self._scored
        fed = self._feed(self.step_model.tokenizer.iter_ids(text))
        if self._learning is not None:   # the suggestions' distribution before this text, if they were asked for
            self._learning.fed(text, p if state is not None and seen is state else None)
        said = text[-(MAX_WORD_CHARS + 2):].rstrip(SKIPPED) or text.rstrip(SKIPPED)[-(MAX_WORD_CHARS + 2):]
        if said:
            self._said = said
        return fed

    def feed_ids(self, ids):
        """Token ids instead of text: ints (or a 1-D integer array) in 0..vocab_size-1; 0 is padding."""
        ids = self.step_model.check_ids(ids)
        fed = self._feed([ids])
        if self._learning is not None:
            self._learning.fed_ids(ids)
        if fed:
            self._said = "w"   # a word: the next one does not start a sentence
        return fed

    def _feed(self, pieces):
        """Feed lists of ids in turn; on any error the session is put back as it was."""
        saved = (self._state, self._steps, self._undoable,
                 collections.deque(self._past, maxlen=self.history) if self.mode == "stream" else None,
                 collections.deque(self._ids, maxlen=self._ids.maxlen) if self.mode == "exact" else None)
        fed = 0
        try:
            for ids in pieces:
                if not ids:
                    continue
                if self.mode == "stream":
                    self._state = self.step_model.advance(self._state, ids, self._past)
                else:
                    self._ids.extend(ids)
                    self._state = None
                fed += len(ids)
                self._steps += len(ids)
                self._undoable = min(self._undoable + len(ids), self.history)
        except BaseException:
            self._state, self._steps, self._undoable, past, kept = saved
            if self.mode == "stream":
                self._past = past
            else:
                self._ids = kept
            raise
        return fed

    def undo(self, n=1):
        """Back n steps (the last n known words fed), at most `history` since the last reset.
        Returns how many steps were undone."""
        n = min(_check_int("n", n, 0), self._undoable)
        if not n:
            return 0
        if self.mode == "stream":
            for _ in range(n):
                self._state = self._past.pop()
        else:
            for _ in range(n):
                self._ids.pop()
            self._state = None
        self._undoable -= n
        self._steps -= n
        self._said = "" if self._steps == 0 else "w"
        if self._learning is not None:
            self._learning.prev = None
        return n

    # -- learning (runtime/learning.py) ---------------------------------------------------------
    def _learner(self):
        if self._learning is None:
            raise InputError("this session does not learn: open it with p.session(learn=True) "
                             "(and user_file=PATH to keep what it learns)")
        return self._learning

    @property
    def learning(self):
        """Whether feeding this session learns the words fed."""
        return self._learning is not None and self._learning.learn_on_feed

    @property
    def user_weight(self):
        """mu, the user model's share of the suggestions now (0 while nothing is learnt; None when the
        session does not learn): it starts at user_model.USER_WEIGHT and adapts to the words typed."""
        return None if self._learning is None else self._learning._mu()

    @property
    def user_model(self):
        """The session's UserModel (runtime/user_model.py), or None when it does not learn."""
        return None if self._learning is None else self._learning.model

    def learn(self, text):
        """Learn the words of `text` without moving the context. Returns how many words were learnt."""
        if not isinstance(text, str):
            raise ArgumentTypeError(f"text must be str, got {type(text).__name__}")
        return self._learner().learn(text)

    def forget(self, word):
        """Remove `word` from the user model and never suggest it in this session until it is
        learnt again (also a word of the bundle's model). Returns whether it had been learnt."""
        return self._learner().model.forget(word)

    def reset_learning(self):
        """Forget everything learnt, and the forgotten set (the user file changes at the next save)."""
        learner = self._learner()
        learner.model.reset()
        learner.mu = USER_WEIGHT

    def save_user(self):
        """Write the user file now (atomically; see runtime/user_file.py). Nothing else writes it.
        Returns the bytes written."""
        return self._learner().save()

    # -- answers -----------------------------------------------------------------------------
    @property
    def steps(self):
        """Known words in the context since the last reset (after undo)."""
        return self._steps

    @property
    def context(self):
        """exact mode: the ids the next answer uses (the last `window`, before padding)."""
        if self.mode != "exact":
            raise InputError("context ids are kept in exact mode only; a stream session keeps the LSTM state")
        return list(self._ids)[-self.step_model.window:]

    def _current(self):
        if self._state is None:
            self._state = self.step_model.exact_state(list(self._ids)[-self.step_model.window:])
        return self._state

    def logits(self):
        """Scores (log-probabilities up to a constant) for the next word, (vocab_size,) float32;
        ModelError if the model answered NaN or an infinity."""
        return self.step_model.ranking.check(self._current().z).copy()

    def probabilities(self):
        """Softmax over the vocabulary (id 0 included, as Predictor.probabilities has it)."""
        return softmax(self.step_model.ranking.check(self._current().z))

    def _suggestion_scores(self, state):
        """What suggestions rank: the LSTM's scores mixed with the bundle's n-gram (runtime/mix.py)
        after the ids this state has seen; the LSTM's own when the predictor does not mix."""
        return self.step_model.mixer.scores(self.step_model.ranking.check(state.z), state.recent)

    def top_k(self, k=5):
        """The k most likely next words with their probabilities, best first (as Predictor.top_k)."""
        k = _check_int("k", k, 1)
        if self._learning is not None and self._learning.active():
            return self._learning.top_k(self._distribution(), k)
        state = self._current()
        return self.step_model.mixer.best(self.step_model.ranking, self.step_model.ranking.check(state.z),
                                          state.recent, k)

    def probability(self, word):
        """The probability this session's suggestions give `word` as the next word: the model's, mixed
        with the bundle's n-gram and, when learning, with the user model, as top_k lists it; 0.0 for a
        word it never suggests (padding, the OOV token, blocked, forgotten, unknown). For perplexity
        and calibration; InputError unless `word` is one word."""
        word = self._completer_word(word)
        p = self._distribution()
        if self._learning is not None and self._learning.active():
            return self._learning.probability(p, word)
        ranking = self.step_model.ranking
        wid = self.step_model.tokenizer.word_index.get(word, 0)
        if not 0 < wid < self.step_model.vocab_size or wid in ranking.never or wid in ranking.blocked():
            return 0.0
        return float(p[wid])

    def _completer_word(self, word):
        if not isinstance(word, str):
            raise ArgumentTypeError(f"word must be str, got {type(word).__name__}")
        if len(word) > 4 * MAX_WORD_CHARS:
            raise InputError(f"expected one word of at most {MAX_WORD_CHARS} characters, got {len(word)} characters")
        found = self.step_model.tokenizer.words(word)
        if len(found) != 1:
            raise InputError(f"expected one word, got {len(found)} words in {word[:60]!r}")
        return found[0]

    def predict_next(self):
        """The single most likely next word (InputError if every word is blocked)."""
        best = self.top_k(1)
        if not best:
            raise InputError("every word of the vocabulary is blocked: nothing to suggest")
        return best[0][0]

    def complete(self, prefix="", k=6):
        """The k most probable words after the words fed that begin with `prefix` (case-insensitive;
        "" = the next word): Suggestions, best first, as Predictor.complete; [] when none matches.
        The distribution is the session's current one: a keystroke costs a lookup."""
        prefix = check_prefix(prefix)
        k = check_complete_k(k)
        completer = self._completer
        start = completer.sentence_start(self._said)
        if self._learning is not None and self._learning.active():
            return self._learning.complete(prefix, k, self._distribution, start)
        return completer.suggest(prefix, k, self._distribution, start)

    def _distribution(self):
        """The next-word probabilities (float64 by id) of the current state, kept until it changes."""
        state = self._current()
        seen, p = self._scored
        if seen is not state:
            p = probabilities(self._suggestion_scores(state))
            self._scored = (state, p)
        return p


def step_probabilities(bundle, variant, windows, backend="auto", num_threads=1):
    """Probabilities after running each pre-padded (B, window) id row through the step variant from
    the zero state, through an exact-mode session (export parity and runtime.dump use this)."""
    step = variant if isinstance(variant, StepModel) else StepModel.load(bundle, variant, backend, num_threads)
    windows = np.asarray(windows)
    if windows.ndim != 2 or windows.shape[1] != step.window:
        raise InputError(f"windows must have shape (batch, {step.window}), got {windows.shape}")
    session = Session(step, mode="exact", history=0)
    out = np.empty((len(windows), step.vocab_size), dtype=np.float32)
    for i, row in enumerate(windows):
        session.reset()
        session.feed_ids(row)
        out[i] = session.probabilities()
    return out
