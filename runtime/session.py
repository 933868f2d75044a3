"""Streaming sessions: a keyboard's next-word suggestions at the cost of one LSTM step per typed word.

A bundle's *step* variants hold one LSTM step with explicit state: (token id, h, c) -> (logits, h', c').
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
Suggestions never include padding or OOV (runtime/ranking.py, as on the window path). Sessions are independent and cheap
(a few arrays); one Predictor serves any number of them, its step interpreter guarded by a lock. A
single Session is not meant to be shared between threads.
"""

import collections
import logging
import threading

import numpy as np

from .backends import BACKENDS, PACKAGES, open_first, packages_for
from .bundle import Bundle
from .errors import BackendUnavailable, InputError, VariantUnavailable, check_int as _check_int
from .ranking import Ranking, softmax

log = logging.getLogger(__name__)

MODES = ("stream", "exact")
DEFAULT_HISTORY = 20

State = collections.namedtuple("State", "h c z")   # z: logits (V,) for the next word after this state


class StepModel:
    """One step variant on one interpreter package: (id, h, c) -> (logits, h', c'). Thread-safe:
    every interpreter call happens under this object's lock."""

    def __init__(self, bundle, variant, runner, package, num_threads=1):
        self.bundle, self.variant, self.package, self.num_threads = bundle, variant, package, num_threads
        m = bundle.manifest
        self.window, self.vocab_size = m.window, m.vocab_size
        self.tokenizer = bundle.tokenizer
        ids_spec, h_spec, c_spec = variant.inputs
        self.units = int(h_spec.shape[-1])
        if c_spec.shape[-1] != self.units or any(o.shape[-1] != self.units for o in variant.outputs[1:]):
            raise VariantUnavailable(f"variant {variant.name}: h, c, h_out and c_out must have the same width")
        self._runner = runner
        self._lock = threading.Lock()
        self._pads_lock = threading.Lock()
        self._pads = None
        self._ids = np.zeros((1, 1), dtype=np.dtype(ids_spec.dtype))
        self.ranking = Ranking(self.tokenizer, self.vocab_size)   # as the window path ranks

    # -- loading -----------------------------------------------------------------------------
    @classmethod
    def load(cls, bundle, variant, backend="auto", num_threads=1):
        """The named step variant of `bundle` (a Bundle or a folder) on `backend` (auto, a format or a
        package name)."""
        if backend not in BACKENDS:
            raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        bundle = bundle if isinstance(bundle, Bundle) else Bundle.open(bundle)
        v = bundle.manifest.variants.get(variant)
        if v is None or v.kind != "step":
            names = [n for n, x in bundle.manifest.variants.items() if x.kind == "step"]
            raise InputError(f"unknown step variant {variant!r}; this bundle has {', '.join(names) or 'none'}")
        packages = packages_for(backend, v.format)
        if not packages:
            raise BackendUnavailable(f"backend {backend!r} does not run {v.format} files ({v.name})")
        return _open_first(bundle, [(v, packages)], num_threads, strict=True)

    # -- stepping ----------------------------------------------------------------------------
    def zero_state(self):
        h = np.zeros((1, self.units), dtype=np.float32)   # the schema admits float32 states only
        return State(h, h.copy(), None)

    def _step(self, token, h, c):
        """One interpreter call; the caller holds the lock."""
        ids = self._ids
        ids[0, 0] = token
        logits, h, c = self._runner.run([ids, h, c])
        # the interpreters hand back fresh arrays (TFLite get_tensor copies), so no copy is made here
        return State(h, c, np.asarray(logits, dtype=np.float32).reshape(-1))

    def advance(self, state, ids):
        """The states after each id in turn (one step each), starting from `state`."""
        out = []
        with self._lock:
            for token in ids:
                state = self._step(token, state.h, state.c)
                out.append(state)
        return out

    def run(self, ids, state=None):
        """The state after running `ids` from `state` (default: the zero state)."""
        state = self.zero_state() if state is None else state
        with self._lock:
            for token in ids:
                state = self._step(token, state.h, state.c)
        return state

    def pad_state(self, k):
        """The state after k padding steps (id 0) from the zero state, 0 <= k <= window; cached."""
        if self._pads is None:
            with self._pads_lock:
                if self._pads is None:
                    self._pads = [self.zero_state()] + self.advance(self.zero_state(), [0] * self.window)
        return self._pads[k]

    def start_state(self):
        """Where a stream session starts: after a full window of padding."""
        return self.pad_state(self.window)

    def exact_state(self, ids):
        """The state after the window model's input for context `ids`: the last `window` ids,
        pre-padded with 0, from the zero state."""
        ids = list(ids)[-self.window:] if self.window else []
        n = len(ids)
        return self.run(ids, self.pad_state(self.window - n)) if n else self.pad_state(self.window)

    def check_ids(self, ids):
        ids = [int(i) for i in ids]
        if ids and (min(ids) < 0 or max(ids) >= self.vocab_size):
            raise InputError(f"ids must be in 0..{self.vocab_size - 1}")
        return ids


def check_session_args(mode, history):
    if mode not in MODES:
        raise InputError(f"mode must be 'stream' or 'exact', got {mode!r}")
    return _check_int("history", history, 0)


class Session:
    """One user's typing: context state, suggestions, bounded undo. See the module docstring."""

    def __init__(self, step, mode="stream", history=DEFAULT_HISTORY):
        self.history = check_session_args(mode, history)
        self.step_model = step
        self.mode = mode
        self.reset()

    def reset(self):
        """Back to the start: no words seen."""
        step = self.step_model
        self._undoable = 0
        self._steps = 0
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
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return self._feed(self.step_model.tokenizer.text_to_ids(text))

    def feed_ids(self, ids):
        """Token ids instead of text (0..vocab_size-1; 0 is padding)."""
        return self._feed(self.step_model.check_ids(ids))

    def _feed(self, ids):
        if not ids:
            return 0
        if self.mode == "stream":
            states = self.step_model.advance(self._state, ids)
            self._past.append(self._state)
            self._past.extend(states[:-1])
            self._state = states[-1]
        else:
            self._ids.extend(ids)
            self._state = None
        self._steps += len(ids)
        self._undoable = min(self._undoable + len(ids), self.history)
        return len(ids)

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
        return n

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
        """Scores (log-probabilities up to a constant) for the next word, (vocab_size,) float32."""
        return self._current().z.copy()

    def probabilities(self):
        """Softmax over the vocabulary (id 0 included, as Predictor.probabilities has it)."""
        return softmax(self._current().z)

    def top_k(self, k=5):
        """The k most likely next words with their probabilities, best first (as Predictor.top_k)."""
        k = _check_int("k", k, 1)
        return self.step_model.ranking.best(self._current().z, k)

    def predict_next(self):
        """The single most likely next word."""
        return self.top_k(1)[0][0]


# -- choosing and loading a step variant -------------------------------------------------------
def _open_first(bundle, candidates, num_threads, strict=False):
    """The shared fallback chain (runtime.backends.open_first), for step variants."""
    v, runner, pkg, _ = open_first(bundle, candidates, num_threads, strict=strict, what="step variant")
    return StepModel(bundle, v, runner, pkg, num_threads)


def load_step_for(predictor, name=None):
    """The step model a Predictor's sessions use: `name`, or the step variant closest to the
    predictor's window variant (same format on the same package, then same quantization, then
    float32, then smaller), falling back to other formats."""
    m = predictor.bundle.manifest
    w = predictor.variant
    if name is not None:
        v = m.variants.get(name)
        if v is None or v.kind != "step":
            steps = [n for n, x in m.variants.items() if x.kind == "step"]
            raise InputError(f"unknown step variant {name!r}; this bundle has {', '.join(steps) or 'none'}")
        steps = [v]
    else:
        steps = sorted((v for v in m.variants.values() if v.kind == "step"),
                       key=lambda v: (v.format != w.format, v.quantization != w.quantization,
                                      v.quantization != "float32", v.size))
    if not steps:
        raise VariantUnavailable(f"{predictor.bundle.path} has no step variants, so it cannot stream; "
                                 "re-export it with a current nextword-export (step variants are in the default set)")
    candidates = [(v, (predictor.package,) if v.format == w.format else PACKAGES[v.format]) for v in steps]
    return _open_first(predictor.bundle, candidates, predictor.num_threads, strict=name is not None)


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
